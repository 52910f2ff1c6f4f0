//! Segment arrival, RFC 9293 section 3.10.7. CLOSED and LISTEN have no TCB and live in the host and the
//! listener; here are SYN-SENT (3.10.7.3), the synchronized states' eight steps (3.10.7.4), and TIME-WAIT,
//! which follows Linux's tcp_timewait_state_process (RFC 9293 plus RFC 6191 reopening and the RFC 1337 knob).

use super::congestion::{CongestionControl, OnAck};
use super::output::{reset_for, wscale_for, TS_OPTION_LEN};
use super::{Ctx, Tcb, TcpState, Timer, DEFAULT_MSS, MAX_QUICKACKS, RTO_FALLBACK};
use crate::errno::Errno;
use crate::seq::SeqNum;
use crate::time::Instant;
use crate::wire::TcpRepr;
use core::time::Duration;

/// What the host must do after a TCB processed a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// Nothing beyond what the TCB did.
    Done,
    /// TIME-WAIT accepted a new SYN (RFC 6191 / RFC 9293 MAY-2): drop the TIME-WAIT TCB and hand the SYN to the
    /// listener with this ISS, beyond the old connection's sequence space.
    Reopen { iss: SeqNum },
}

/// RFC 7323 5.5: TS.Recent older than 24 days no longer rejects.
const PAWS_IDLE: Duration = Duration::from_secs(24 * 24 * 3600);
/// How much older than TS.Recent a TSval may be and pass: none, by RFC 7323 5.3 R1 ("SEG.TSval < TS.Recent ...
/// treat the arriving segment as not acceptable"). Linux tolerates one tick (TCP_PAWS_WINDOW); the reference stack
/// keeps the RFC's rule and `options/paws-rejects-one-tick-older` records the difference.
const PAWS_WINDOW: i32 = 0;

impl Tcb {
    /// Feeds one segment addressed to this connection.
    pub(crate) fn segment_arrives(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>) -> Arrival {
        self.last_rcv = ctx.now;
        match self.state {
            TcpState::SynSent => self.segment_arrives_syn_sent(ctx, seg),
            TcpState::TimeWait => return self.segment_arrives_time_wait(ctx, seg),
            TcpState::Closed | TcpState::Listen => {}
            _ => self.segment_arrives_synchronized(ctx, seg),
        }
        Arrival::Done
    }

    /// Records what the peer's SYN offers and settles the options (RFC 9293 3.7.1, RFC 7323, RFC 2018).
    pub(crate) fn negotiate(&mut self, ctx: &Ctx<'_>, syn: &TcpRepr<'_>) {
        let c = ctx.config;
        let o = &syn.options;
        let we_offer_ws = c.tcp_window_scaling != 0;
        let peer_ws = o.window_scale();
        self.opts.window_scaling = we_offer_ws && peer_ws.is_some();
        // RFC 7323 2.3: a shift above 14 is used as 14.
        self.opts.snd_wscale = if self.opts.window_scaling { peer_ws.unwrap_or(0).min(14) } else { 0 };
        if !self.opts.window_scaling {
            self.opts.rcv_wscale = 0;
        }
        self.opts.sack = c.tcp_sack != 0 && o.sack_permitted();
        let ts = o.timestamps();
        self.opts.timestamps = c.tcp_timestamps != 0 && ts.is_some();
        if let (true, Some((tsval, _))) = (self.opts.timestamps, ts) {
            self.ts_recent = tsval;
            self.ts_recent_stamp = ctx.now;
        }
        // RFC 9293 MUST-15: 536 (IPv6: 1220) when the SYN has no MSS option. Linux ignores values below
        // tcp_min_snd_mss.
        let peer_mss = o
            .mss()
            .unwrap_or(super::default_mss(&self.tuple.local))
            .max(c.tcp_min_snd_mss.min(u32::from(u16::MAX)) as u16);
        self.opts.peer_mss = peer_mss;
        self.update_snd_mss(ctx);
    }

    /// Effective send MSS: the peer's MSS, bounded by our MTU and TCP_MAXSEG, less option bytes carried by every
    /// segment (RFC 9293 3.7.1 / RFC 6691).
    pub(crate) fn update_snd_mss(&mut self, ctx: &Ctx<'_>) {
        let ip_tcp = if self.tuple.local.is_ipv4() { 40 } else { 60 };
        let mut mss = self.opts.peer_mss.min(ctx.config.mtu.saturating_sub(ip_tcp).min(65_535) as u16);
        if self.sockopts.user_mss > 0 {
            mss = mss.min(self.sockopts.user_mss);
        }
        if self.opts.timestamps {
            mss = mss.saturating_sub(TS_OPTION_LEN);
        }
        // Sender-side silly window avoidance as Linux does it (tcp_bound_to_half_wnd): no segment larger than half
        // the largest window the peer has offered (the whole of it below 536 bytes), never below 68 bytes of
        // header and data; a peer with a 1000-byte window gets 500-byte segments.
        let cutoff = if self.max_snd_wnd > u32::from(DEFAULT_MSS) { self.max_snd_wnd / 2 } else { self.max_snd_wnd };
        if cutoff > 0 && u32::from(mss) > cutoff {
            let header = 20 + if self.opts.timestamps { TS_OPTION_LEN } else { 0 };
            mss = (cutoff as u16).max(68 - header);
        }
        self.snd_mss = mss.max(8);
    }

    /// Our receive-side settings before the first SYN leaves: advertised MSS and window-scale shift.
    pub(crate) fn init_receive_side(&mut self, ctx: &Ctx<'_>) {
        let ip_tcp = if self.tuple.local.is_ipv4() { 40 } else { 60 };
        let mut mss = ctx.config.mtu.saturating_sub(ip_tcp).min(65_535) as u16;
        if self.sockopts.user_mss > 0 {
            mss = mss.min(self.sockopts.user_mss);
        }
        self.adv_mss = mss;
        let space = match self.sockopts.rcvbuf {
            Some(b) => b,
            None => ctx.config.tcp_rmem[2].max(ctx.config.rmem_max),
        };
        self.opts.rcv_wscale = if ctx.config.tcp_window_scaling != 0 { wscale_for(space) } else { 0 };
    }

    /// Takes an RTT sample (RFC 6298 2.2-2.3, in [`RttEstimator`]).
    fn rtt_sample(&mut self, ctx: &Ctx<'_>, r: Duration) {
        let rto_min = Duration::from_micros(u64::from(ctx.config.tcp_rto_min_us));
        let rto_max = Duration::from_millis(u64::from(ctx.config.tcp_rto_max_ms));
        self.rtt.sample(r, rto_min, rto_max);
        self.note_min_rtt(r);
    }

    /// Common to SYN-SENT -> ESTABLISHED and SYN-RECEIVED -> ESTABLISHED.
    fn become_established(&mut self, ctx: &mut Ctx<'_>) {
        self.set_state(TcpState::Established);
        self.retransmits = 0;
        self.retrans_stamp = None;
        self.clear_timer(Timer::Retransmit);
        if let Some((_, sent)) = self.rtt_probe.take().filter(|_| !self.syn_retransmitted) {
            self.rtt_sample(ctx, ctx.now.saturating_since(sent));
        } else if self.syn_retransmitted && !self.rtt.has_sample() {
            // RFC 6298 5.7: the SYN was retransmitted, so no sample: data starts with a 3 s RTO.
            self.rtt.set_rto(RTO_FALLBACK);
        }
        self.cc.on_established(u32::from(self.snd_mss));
        self.quickacks = MAX_QUICKACKS;
        if self.sockopts.keepalive {
            let at = ctx.now + self.keepalive_idle(ctx);
            self.set_timer(Timer::Keepalive, at);
        }
    }

    /// What every SYN we accept sets, in LISTEN and in SYN-SENT: "RCV.NXT is set to SEG.SEQ+1, IRS is set to
    /// SEG.SEQ", the options it offers, and the send window from its (never scaled, RFC 7323 2.2) window field.
    pub(crate) fn take_peer_syn(&mut self, ctx: &Ctx<'_>, seg: &TcpRepr<'_>) {
        self.irs = seg.seq;
        self.rcv_nxt = seg.seq + 1u32;
        self.negotiate(ctx, seg);
        self.snd_wnd = u32::from(seg.window);
        self.max_snd_wnd = self.snd_wnd;
        self.update_snd_mss(ctx);
        self.snd_wl1 = seg.seq;
        self.snd_wl2 = seg.ack;
    }

    /// SYN-RECEIVED's test of an ACK (3.10.7.4, fifth step): "If SND.UNA < SEG.ACK =< SND.NXT".
    pub(crate) fn acks_our_syn(&self, seg: &TcpRepr<'_>) -> bool {
        self.snd_una < seg.ack && seg.ack <= self.snd_max
    }

    /// RFC 9293 3.10.7.3, SYN-SENT.
    fn segment_arrives_syn_sent(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>) {
        let f = seg.flags;
        // "First, check the ACK bit: If the ACK bit is set, If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset
        // (unless the RST bit is set, if so drop the segment and return) <SEQ=SEG.ACK><CTL=RST>".
        let mut ack_ok = false;
        if f.ack() {
            if seg.ack <= self.iss || seg.ack > self.snd_max {
                if !f.rst() {
                    ctx.tx.push(reset_for(&self.tuple, seg));
                }
                return;
            }
            ack_ok = true;
        }
        // "Second, check the RST bit: If the ACK was acceptable, then signal to the user 'error: connection
        // reset', drop the segment, enter CLOSED state ... Otherwise (no ACK), drop the segment and return."
        // RFC 5961 3.2 for SYN-SENT is the same test: the RST must acknowledge our SYN.
        if f.rst() {
            if ack_ok {
                self.abort(Errno::ECONNREFUSED);
            }
            return;
        }
        // "Fourth, check the SYN bit" (the third, security, does not apply). "If neither of the SYN or RST bits
        // is set, then drop the segment and return."
        if !f.syn() {
            return;
        }
        // Choice: SND.WND, WL1 and WL2 are set from this SYN in both branches, as the RFC's SYN-RECEIVED branch
        // says; later segments update them as usual.
        self.take_peer_syn(ctx, seg);
        if ack_ok {
            self.snd_una = seg.ack;
        }
        if self.snd_una > self.iss {
            // "If SND.UNA > ISS (our SYN has been ACKed), change the connection state to ESTABLISHED, form an ACK
            // segment <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> and send it."
            self.become_established(ctx);
            // Data or FIN on the SYN-ACK: "continue processing at the sixth step below".
            self.process_text_and_fin(ctx, seg, seg.seq + 1u32);
            self.ack_now = true;
            self.output(ctx);
        } else {
            // Simultaneous open: "enter SYN-RECEIVED, form a SYN,ACK segment <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>
            // and send it." Data on the SYN is not queued (Linux drops it; the peer retransmits it).
            self.set_state(TcpState::SynReceived);
            self.send_syn(ctx);
        }
    }

    fn paws_reject(&self, now: Instant, tsval: u32) -> bool {
        self.opts.timestamps
            && (self.ts_recent.wrapping_sub(tsval) as i32) > PAWS_WINDOW
            && now.saturating_since(self.ts_recent_stamp) < PAWS_IDLE
    }

    /// RFC 9293 3.10.7.4 "First, check sequence number": the four cases of segment acceptability.
    fn acceptable(&self, seg: &TcpRepr<'_>) -> bool {
        let len = seg.segment_len() as u32;
        let wnd = self.rcv_wnd();
        match (len, wnd) {
            (0, 0) => seg.seq == self.rcv_nxt,
            (0, _) => seg.seq.in_window(self.rcv_nxt, wnd),
            (_, 0) => false,
            (_, _) => seg.seq.in_window(self.rcv_nxt, wnd) || (seg.seq + (len - 1)).in_window(self.rcv_nxt, wnd),
        }
    }

    /// RFC 9293 3.10.7.4: SYN-RECEIVED, ESTABLISHED, FIN-WAIT-1/2, CLOSE-WAIT, CLOSING, LAST-ACK.
    fn segment_arrives_synchronized(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>) {
        // Simultaneous open: our SYN-RECEIVED gets the peer's SYN-ACK, whose SYN (SEQ = IRS) we already counted.
        // RFC 793 p.69 trims such a SYN off as lying before the window; Linux has the same explicit exception.
        // Without it the literal acceptability test would reject the segment that completes the handshake.
        let trimmed;
        let seg = if self.state == TcpState::SynReceived
            && !self.passive
            && seg.flags.syn()
            && seg.flags.ack()
            && seg.seq + 1u32 == self.rcv_nxt
            && seg.ack == self.snd_nxt
        {
            // Linux acknowledges that SYN-ACK (it carried a SYN, sequence space to acknowledge; measured on
            // 6.18); RFC 9293's figure 8 draws no such ACK but nothing forbids it, so the default follows Linux.
            self.ack_now = true;
            trimmed = TcpRepr { seq: self.rcv_nxt, flags: crate::wire::TcpFlags(seg.flags.0 & !0x002), ..*seg };
            &trimmed
        } else {
            seg
        };
        let f = seg.flags;
        // A retransmitted SYN for a passive SYN-RECEIVED: the SYN-ACK was lost, send it again (Linux's
        // tcp_check_req; the RFC reaches the same through the retransmission timer).
        if self.state == TcpState::SynReceived && f.syn() && !f.ack() && !f.rst() && seg.seq == self.irs {
            self.send_syn(ctx);
            return;
        }
        // RFC 7323 5.3 PAWS, before the sequence check. A RST is exempt (R1 footnote; Linux agrees).
        let ts = if self.opts.timestamps { seg.options.timestamps() } else { None };
        if let Some((tsval, _)) = ts {
            if !f.rst() && self.paws_reject(ctx.now, tsval) {
                if f.syn() {
                    self.send_challenge_ack(ctx);
                } else {
                    self.send_oow_ack(ctx, seg);
                }
                return;
            }
        }
        // First: sequence number.
        if !self.acceptable(seg) {
            // "If an incoming segment is not acceptable, an acknowledgment should be sent in reply (unless the RST
            // bit is set, if so drop the segment and return)". RFC 5961 3.2: an out-of-window RST is dropped.
            if f.rst() {
                if self.rst_matches_after_fin(seg) {
                    self.reset_by_peer();
                }
                return;
            }
            if f.syn() {
                self.syn_in_synchronized_state(ctx, seg);
                return;
            }
            self.send_oow_ack(ctx, seg);
            return;
        }
        // RFC 7323 4.3: TS.Recent follows the segment that covers Last.ACK.sent.
        if let Some((tsval, _)) = ts {
            if seg.seq <= self.last_ack_sent && (self.ts_recent.wrapping_sub(tsval) as i32) <= 0 {
                self.ts_recent = tsval;
                self.ts_recent_stamp = ctx.now;
            }
        }
        // Second: the RST bit (RFC 5961 3.2): reset only on an exact match, else a challenge ACK.
        if f.rst() {
            if seg.seq == self.rcv_nxt || self.rst_matches_after_fin(seg) {
                self.reset_by_peer();
            } else {
                self.send_challenge_ack(ctx);
            }
            return;
        }
        // Fourth: the SYN bit (RFC 5961 4.2: challenge ACK whatever the sequence number).
        if f.syn() {
            self.syn_in_synchronized_state(ctx, seg);
            return;
        }
        // Fifth: the ACK field. "if the ACK bit is off, drop the segment and return".
        if !f.ack() {
            return;
        }
        if self.state == TcpState::SynReceived {
            // "If SND.UNA < SEG.ACK =< SND.NXT, then enter ESTABLISHED state ... If the segment acknowledgment is
            // not acceptable, form a reset segment <SEQ=SEG.ACK><CTL=RST> and send it."
            if !self.acks_our_syn(seg) {
                ctx.tx.push(reset_for(&self.tuple, seg));
                return;
            }
            self.snd_una = seg.ack;
            self.snd_wnd = u32::from(seg.window) << self.opts.snd_wscale;
            // The largest window starts afresh from this first scaled one, as Linux's child socket does
            // (tcp_create_openreq_child): the SYN's unscaled window says nothing about the windows to come, and
            // counting it would hold back every short segment (sender SWS avoidance) on a small scaled window.
            self.max_snd_wnd = self.snd_wnd;
            self.update_snd_mss(ctx);
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = seg.ack;
            self.become_established(ctx);
        } else if !self.process_ack(ctx, seg) {
            return;
        }
        match self.state {
            TcpState::FinWait1 if self.fin_acked() => {
                self.set_state(TcpState::FinWait2);
                if self.orphan {
                    let at = ctx.now + Duration::from_secs(u64::from(ctx.config.tcp_fin_timeout));
                    self.set_timer(Timer::FinWait2, at);
                }
            }
            TcpState::Closing if self.fin_acked() => {
                self.enter_time_wait(ctx);
                return;
            }
            TcpState::LastAck if self.fin_acked() => {
                self.close_now();
                return;
            }
            _ => {}
        }
        // Data after the application closed: Linux answers with a RST and drops the connection (tcp_rcv_state_process,
        // FIN-WAIT-1/2 with RCV_SHUTDOWN); the RFC would keep receiving, but there is no reader any more.
        let data_end = seg.seq + seg.payload.len();
        if self.orphan
            && matches!(self.state, TcpState::FinWait1 | TcpState::FinWait2)
            && !seg.payload.is_empty()
            && data_end > self.rcv_nxt
        {
            ctx.tx.push(reset_for(&self.tuple, seg));
            self.abort(Errno::ECONNRESET);
            return;
        }
        // Sixth (URG) is not implemented: urgent data is delivered inline as ordinary data.
        // Seventh and eighth: text and FIN.
        self.process_text_and_fin(ctx, seg, seg.seq);
        self.output(ctx);
    }

    /// Linux's tcp_reset_check: after the peer's FIN (CLOSE-WAIT, CLOSING, LAST-ACK) a RST carrying the FIN's
    /// sequence number, RCV.NXT - 1, is also accepted.
    fn rst_matches_after_fin(&self, seg: &TcpRepr<'_>) -> bool {
        matches!(self.state, TcpState::CloseWait | TcpState::Closing | TcpState::LastAck)
            && seg.seq == self.rcv_nxt - 1u32
    }

    /// An acceptable RST, per state (RFC 9293 3.10.7.4 second step; error codes as Linux's tcp_reset).
    fn reset_by_peer(&mut self) {
        match self.state {
            // "If this connection was initiated with a passive OPEN ... return this connection to LISTEN": the
            // child is dropped and the listener stays; nobody is told.
            TcpState::SynReceived if self.passive => {
                self.close_now();
            }
            // "If this connection was initiated with an active OPEN ... the connection was refused".
            TcpState::SynReceived => self.abort(Errno::ECONNREFUSED),
            // Linux reports EPIPE in CLOSE-WAIT (the peer had already closed), ECONNRESET elsewhere.
            TcpState::CloseWait => self.abort(Errno::EPIPE),
            _ => self.abort(Errno::ECONNRESET),
        }
    }

    fn syn_in_synchronized_state(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>) {
        if self.state == TcpState::SynReceived && self.passive {
            // Linux's tcp_check_req answers a SYN other than the retransmitted one with a RST and drops the
            // embryonic connection (RFC 9293: "return this connection to LISTEN").
            ctx.tx.push(reset_for(&self.tuple, seg));
            self.close_now();
            return;
        }
        // RFC 5961 4.2 / RFC 9293 3.10.7.4: "TCP endpoints MUST send a 'challenge ACK'" and drop the segment.
        self.send_challenge_ack(ctx);
    }

    /// Fifth step for the synchronized states after SYN-RECEIVED. Returns false when the segment must be dropped.
    fn process_ack(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>) -> bool {
        // RFC 5961 5.2: acceptable ACKs lie in (SND.UNA - MAX.SND.WND) =< SEG.ACK =< SND.NXT; others get a
        // challenge ACK and the segment is dropped.
        let lower = self.snd_una - self.max_snd_wnd;
        if seg.ack > self.snd_max || seg.ack < lower {
            self.send_challenge_ack(ctx);
            return false;
        }
        let window = u32::from(seg.window) << self.opts.snd_wscale;
        let dsack = self.dsack(seg);
        let newly_sacked = self.update_scoreboard(seg);
        if let Some(r) = self.rack_update(ctx.now, seg.ack) {
            self.rtt_sample(ctx, r);
        }
        let acked_new = seg.ack > self.snd_una;
        let dupack = !acked_new
            && seg.ack == self.snd_una
            && seg.payload.is_empty()
            && !seg.flags.fin()
            && window == self.snd_wnd
            && self.snd_max > self.snd_una;
        if acked_new {
            self.ack_new_data(ctx, seg.ack);
        } else if dupack {
            self.duplicate_ack(ctx);
        }
        // Linux's pure duplicate for the probe's episode: no new ACK, data, window update or SACKed data; data
        // need not be outstanding (a second ACK of everything after the probe's).
        let pure_dup =
            !acked_new && seg.payload.is_empty() && !seg.flags.fin() && window == self.snd_wnd && !newly_sacked;
        self.tlp_ack(seg.ack, pure_dup, dsack);
        // As Linux's tcp_ack_is_dubious: loss detection runs for duplicates, SACK news, or during a recovery.
        let dubious = newly_sacked || dupack || !self.sacked.is_empty() || self.in_loss_recovery();
        let reo_armed = dubious && self.rack_mark_lost(ctx);
        if dubious {
            self.loss_recovery(ctx);
        }
        // RFC 6298 5.3 (or the loss probe in its place), unless RACK's reordering timer holds the slot.
        if acked_new && !reo_armed && self.snd_una != self.snd_max {
            self.set_xmit_timer(ctx);
        }
        // "If SND.UNA =< SEG.ACK =< SND.NXT, the send window should be updated. If (SND.WL1 < SEG.SEQ or
        // (SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK)), set SND.WND <- SEG.WND, set SND.WL1 <- SEG.SEQ, and set
        // SND.WL2 <- SEG.ACK."
        if self.snd_una <= seg.ack && (self.snd_wl1 < seg.seq || (self.snd_wl1 == seg.seq && self.snd_wl2 <= seg.ack)) {
            let opened = self.snd_wnd == 0 && window > 0;
            self.snd_wnd = window;
            if window > self.max_snd_wnd {
                self.max_snd_wnd = window;
                self.update_snd_mss(ctx);
            }
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = seg.ack;
            if opened {
                self.clear_timer(Timer::Persist);
                self.persist_probes = 0;
                self.persist_shift = 0;
            }
        }
        // MUST-37: any ACK answers the probes: the connection is alive, and while the window stays zero the
        // probing goes on, its interval still growing (SHLD-30; Linux's tcp_ack zeroes icsk_probes_out, and
        // tcp_ack_probe keeps icsk_backoff).
        self.persist_probes = 0;
        self.keepalive_probes_out = 0;
        if self.sockopts.keepalive {
            let at = ctx.now + self.keepalive_idle(ctx);
            self.set_timer(Timer::Keepalive, at);
        }
        true
    }

    fn ack_new_data(&mut self, ctx: &mut Ctx<'_>, ack: SeqNum) {
        let acked = (ack - self.snd_una) as u32;
        // Karn: only a segment sent once is timed (the probe is cleared on retransmission). With SACK the records
        // give every ACK's sample instead (`rack_update`).
        if let Some((covers, sent)) = self.rtt_probe.filter(|_| !self.opts.sack) {
            if ack >= covers {
                self.rtt_probe = None;
                self.rtt_sample(ctx, ctx.now.saturating_since(sent));
            }
        }
        // Drop acknowledged bytes; the FIN, if acknowledged, occupies no buffer.
        let data_acked = ((ack - self.snd_buf_seq).max(0) as usize).min(self.send_buf.len());
        self.send_buf.drain(..data_acked);
        self.snd_buf_seq += data_acked;
        self.snd_una = ack;
        // Kept up with SND.UNA: a mark left behind would, 2 GiB of sequence space later, compare as ahead of it
        // again and hold the connection in "after a timeout" for the next 2 GiB (no RACK recovery, no probe).
        self.rto_high_data = self.rto_high_data.max_seq(ack);
        while self.push_ends.front().is_some_and(|&e| e <= ack) {
            self.push_ends.pop_front();
        }
        if self.snd_nxt < self.snd_una {
            self.snd_nxt = self.snd_una;
        }
        self.retransmits = 0;
        self.retrans_stamp = None;
        self.forget_acked(ack);
        // A partial ACK's next hole, unless the scoreboard had it retransmitted already in this recovery. With
        // RACK, what is lost is what RACK marks (Linux retransmits nothing else for a SACK connection).
        if self.cc.on_ack(ack, acked, u32::from(self.snd_mss)) == OnAck::RetransmitNextHole
            && self.snd_una >= self.high_rxt
            && !self.opts.sack
        {
            self.snd_nxt = self.snd_una;
            self.output_one(ctx);
            self.high_rxt = self.high_rxt.max_seq(self.snd_una + u32::from(self.snd_mss));
        }
        // RFC 6298 5.2: everything acknowledged stops the timer (5.3's restart is the caller's, after RACK).
        // (A loss probe's episode outlives it: RFC 8985 7.4 ends it on a later ACK, see `tlp_ack`.)
        if self.snd_una == self.snd_max {
            self.clear_xmit_timer();
        }
    }

    /// Sends one segment from SND.NXT whatever the congestion window (a fast retransmission), then lets SND.NXT
    /// resume where new data stood.
    fn output_one(&mut self, ctx: &mut Ctx<'_>) {
        let in_flight_before = self.snd_max;
        self.output_within(ctx, u32::from(self.snd_mss));
        self.snd_nxt = self.snd_nxt.max_seq(in_flight_before).min_seq(self.snd_max);
    }

    /// RFC 5681 3.2: the third duplicate ACK triggers fast retransmit and fast recovery.
    /// With SACK the count only feeds Limited Transmit and the window's inflation: what is lost is what RACK marks
    /// (Linux's tcp_time_to_recover counts no duplicates for a SACK connection).
    fn duplicate_ack(&mut self, ctx: &mut Ctx<'_>) {
        let may_recover = !self.opts.sack;
        if self.cc.on_duplicate_ack(self.in_flight(), self.snd_max, u32::from(self.snd_mss), may_recover) {
            let resume = self.snd_nxt;
            self.snd_nxt = self.snd_una;
            self.output_one(ctx);
            self.snd_nxt = resume.max_seq(self.snd_nxt);
            self.high_rxt = self.snd_una + u32::from(self.snd_mss);
        }
    }

    /// The D-SACK block of `seg` (RFC 2883 4: a first block below the cumulative ACK, or inside the second
    /// block), the range that arrived twice.
    fn dsack(&self, seg: &TcpRepr<'_>) -> Option<(SeqNum, SeqNum)> {
        if !self.opts.sack {
            return None;
        }
        let blocks = seg.options.sack_blocks()?;
        let b = blocks.as_slice();
        let &(l, r) = b.first()?;
        let below = l < seg.ack;
        let inside = b.get(1).is_some_and(|&(l2, r2)| l2 <= l && r <= r2);
        (r > l && (below || inside)).then_some((l, r))
    }

    /// RFC 6675's Update(): the SACK blocks of an acceptable ACK, within (SND.UNA, SND.MAX], merged into the
    /// scoreboard, which keeps only what lies above SND.UNA. Whether a block told something new.
    fn update_scoreboard(&mut self, seg: &TcpRepr<'_>) -> bool {
        let una = seg.ack.max_seq(self.snd_una);
        self.sacked.retain_mut(|b| {
            b.0 = b.0.max_seq(una);
            b.1 > b.0
        });
        if !self.opts.sack {
            return false;
        }
        let Some(blocks) = seg.options.sack_blocks() else { return false };
        let mut news = false;
        for &(l, r) in blocks.as_slice() {
            let l = l.max_seq(una);
            // A block below SND.UNA (a D-SACK), past what was sent, or empty says nothing about loss.
            if r <= l || r > self.snd_max {
                continue;
            }
            if self.sacked.iter().any(|b| b.0 <= l && r <= b.1) {
                continue;
            }
            news = true;
            self.sacked.push((l, r));
            self.sacked.sort_by_key(|b| b.0 - una);
            let mut merged: Vec<(SeqNum, SeqNum)> = Vec::with_capacity(self.sacked.len());
            for b in self.sacked.drain(..) {
                match merged.last_mut() {
                    Some(m) if b.0 <= m.1 => m.1 = m.1.max_seq(b.1),
                    _ => merged.push(b),
                }
            }
            self.sacked = merged;
        }
        news
    }

    /// Loss recovery with RACK (RFC 8985 with RFC 6675's pipe, as Linux's tcp_xmit_retransmit_queue): a segment
    /// marked lost starts a recovery, whose first retransmission goes at once; then the lost segments go again,
    /// oldest first, while what is in the network stays below the congestion window. A lost retransmission is
    /// marked lost again by RACK and so sent again, which RFC 6675's HighRxt never allows.
    pub(crate) fn loss_recovery(&mut self, ctx: &mut Ctx<'_>) {
        // RFC 6675 5.1: after a retransmission timeout the go-back-N resends everything anyway.
        if self.snd_una < self.rto_high_data || self.first_rack_lost().is_none() {
            return;
        }
        let mss = u32::from(self.snd_mss);
        let mut first = self.cc.on_sack_loss(self.in_flight(), self.snd_max, mss);
        if first {
            self.rack.tlp_high_seq = None;
        }
        let mut sent = false;
        for _ in 0..self.sent.len() + 1 {
            let Some((start, end)) = self.first_rack_lost() else { break };
            if !first && self.rack_pipe() >= self.cc.cwnd() {
                break;
            }
            first = false;
            let end = end.min_seq(start + mss);
            if !self.resend_range(ctx, start, end) {
                break;
            }
            sent = true;
        }
        // The retransmission timer takes the slot back from a loss probe (Linux's tcp_xmit_retransmit_queue
        // rearms it), unless RACK's reordering timer waits for more.
        if sent && !self.timers.is_armed(Timer::ReoTimeout) {
            self.rearm_rto_from_head(ctx);
        }
    }

    /// Seventh and eighth steps: deliver in-window text (with reassembly) and process the FIN.
    /// `data_seq` is the sequence number of the first payload byte.
    fn process_text_and_fin(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>, data_seq: SeqNum) {
        let receiving = matches!(self.state, TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2);
        let mut immediate = false;
        let mut got_data = false;
        if receiving && !seg.payload.is_empty() {
            // Trim to the window: bytes before RCV.NXT were delivered already; bytes past the window are dropped.
            let skip = ((self.rcv_nxt - data_seq).max(0) as usize).min(seg.payload.len());
            let room = self.rcv_wnd() as usize;
            let start = data_seq + skip;
            let offset = (start - self.rcv_nxt).max(0) as usize;
            let end = seg.payload.len().min(skip + room.saturating_sub(offset));
            if skip < end {
                got_data = true;
                let data = &seg.payload[skip..end];
                if start == self.rcv_nxt {
                    immediate |= !self.reasm.is_empty();
                    self.recv_buf.extend(data);
                    self.rcv_nxt += data.len();
                    self.rcv_nxt = self.reasm.pull(self.rcv_nxt, &mut self.recv_buf);
                } else {
                    immediate = true; // RFC 5681 4.2: out-of-order data is acknowledged at once
                    self.reasm.insert(self.rcv_nxt, start, data);
                }
            }
            // Otherwise every byte is old, and the segment was acceptable only for the FIN at RCV.NXT after
            // them (a retransmission that now ends the stream): the FIN below is new and acknowledged as a FIN,
            // after data with a delay as Linux does (its tcp_data_queue treats it as a partial segment, not a
            // duplicate; measured on 6.18: +44 ms), `data/retransmission-ending-with-a-new-fin`.
        }
        // Eighth: the FIN, when every byte before it has arrived.
        let fin_seq = data_seq + seg.payload.len();
        if seg.flags.fin() && self.state.is_synchronized() {
            if fin_seq == self.rcv_nxt {
                // A segment that fills a gap is acknowledged at once, FIN or not (RFC 5681 4.2).
                self.ack_now |= immediate;
                self.process_fin(ctx);
                return;
            } else if fin_seq > self.rcv_nxt && receiving {
                // An out-of-order FIN is an out-of-order segment: duplicate ACK at once (RFC 5681 4.2).
                got_data = true;
                immediate = true;
                self.reasm.set_fin(fin_seq);
            }
        }
        if self.reasm.fin() == Some(self.rcv_nxt) && receiving {
            self.ack_now = true; // the data just filled the gap before an out-of-order FIN
            self.process_fin(ctx);
            return;
        }
        if got_data {
            self.ack_policy(ctx, immediate);
        }
    }

    fn process_fin(&mut self, ctx: &mut Ctx<'_>) {
        // Nothing follows a FIN: out-of-order bytes beyond it are invalid and dropped (found by the stack_events
        // fuzzer: left in place, they would start exactly at the new RCV.NXT without ever being delivered).
        self.reasm.clear();
        // "advance RCV.NXT over the FIN, and send an acknowledgment for the FIN".
        let had_data = self.rcv_nxt - self.irs > 1;
        self.rcv_nxt += 1u32;
        self.fin_received = true;
        match self.state {
            TcpState::SynReceived | TcpState::Established => {
                self.set_state(TcpState::CloseWait);
                // When (MUST-40 only bounds it by 0.5 s): Linux's tcp_fin enters ping-pong mode and delays the ACK
                // by the ATO, 40 ms once data has arrived, the next tick before (measured on 6.18: +40.8 ms after
                // data, +3.4 ms without). The application's close() within that time carries it on its FIN.
                if had_data {
                    if !self.timers.is_armed(Timer::DelayedAck) {
                        self.set_timer(Timer::DelayedAck, ctx.now + super::DELACK_MIN);
                    }
                } else {
                    self.ack_now = true;
                }
            }
            // "If our FIN has been ACKed (perhaps in this segment), then enter TIME-WAIT ... otherwise enter the
            // CLOSING state."
            TcpState::FinWait1 if self.fin_acked() => {
                self.ack_now = true;
                self.enter_time_wait(ctx);
            }
            TcpState::FinWait1 => {
                self.ack_now = true;
                self.set_state(TcpState::Closing);
            }
            TcpState::FinWait2 => {
                self.ack_now = true;
                self.enter_time_wait(ctx);
            }
            _ => self.ack_now = true,
        }
        self.output(ctx);
    }

    /// Enters TIME-WAIT (from FIN-WAIT-1, FIN-WAIT-2 or CLOSING, whose last ACK or FIN arrived): every other timer
    /// stops and the 2 MSL timer starts; `segment_arrives_time_wait` below restarts it, and its expiry (in
    /// `timers.rs`) deletes the TCB.
    pub(crate) fn enter_time_wait(&mut self, ctx: &mut Ctx<'_>) {
        self.set_state(TcpState::TimeWait);
        self.timers.clear_all();
        self.set_timer(Timer::TimeWait, ctx.now + super::TIME_WAIT_LEN);
    }

    /// TIME-WAIT, as Linux's tcp_timewait_state_process: an in-order RST kills it unless tcp_rfc1337; a new SYN
    /// beyond the old sequence space (or with a newer timestamp) reopens (RFC 6191); anything else is ACKed and
    /// restarts the 2 MSL timer when it carries an ACK (a retransmitted FIN does).
    fn segment_arrives_time_wait(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>) -> Arrival {
        let f = seg.flags;
        let ts = if self.opts.timestamps { seg.options.timestamps() } else { None };
        let paws_reject = ts.is_some_and(|(v, _)| self.paws_reject(ctx.now, v));
        let end_seq = seg.seq + seg.segment_len();
        if !paws_reject && seg.seq == self.rcv_nxt && (seg.seq == end_seq || f.rst()) {
            if f.rst() {
                if ctx.config.tcp_rfc1337 == 0 {
                    // RFC 9293: "If the RST bit is set then, enter the CLOSED state". RFC 1337 calls this TIME-WAIT
                    // assassination; tcp_rfc1337=1 ignores it.
                    self.close_now();
                    return Arrival::Done;
                }
            } else {
                self.set_timer(Timer::TimeWait, ctx.now + super::TIME_WAIT_LEN);
            }
            if let Some((v, _)) = ts {
                self.ts_recent = v;
                self.ts_recent_stamp = ctx.now;
            }
            return Arrival::Done;
        }
        let newer_ts = ts.is_some_and(|(v, _)| (self.ts_recent.wrapping_sub(v) as i32) < 0);
        if f.syn() && !f.rst() && !f.ack() && !paws_reject && (seg.seq > self.rcv_nxt || newer_ts) {
            // Linux: the new ISS is SND.NXT + 65535 + 2, beyond anything the old connection sent.
            let mut iss = self.snd_nxt + 65_537u32;
            if iss.0 == 0 {
                iss = SeqNum(1);
            }
            return Arrival::Reopen { iss };
        }
        if !f.rst() {
            if paws_reject || f.ack() {
                self.set_timer(Timer::TimeWait, ctx.now + super::TIME_WAIT_LEN);
            }
            self.send_oow_ack(ctx, seg);
        }
        Arrival::Done
    }
}
