//! Building and sending segments: options, the advertised window, data segmentation with Nagle, ACKs and RSTs.

use super::congestion::CongestionControl;
use super::{Ctx, Tcb, TcpState, Timer, DELACK_MIN};
use crate::isn::FourTuple;
use crate::seq::SeqNum;
use crate::wire::{SackBlocks, TcpDatagram, TcpFlags, TcpOption, TcpOptions, TcpRepr};

/// Linux's TCP_MAX_WSCALE and RFC 7323's limit.
pub const MAX_WSCALE: u8 = 14;
/// Bytes the timestamps option takes on every segment once negotiated (nop, nop, TS).
pub const TS_OPTION_LEN: u16 = 12;

/// Encodes a datagram, which cannot fail for the reprs this stack builds (options <= 40 bytes, small payloads).
pub(crate) fn datagram(tuple: &FourTuple, tcp: TcpRepr<'_>) -> Vec<u8> {
    TcpDatagram::new(tuple.local.ip(), tuple.remote.ip(), tcp).to_vec().unwrap_or_default()
}

/// The RST RFC 9293 3.10.7.1 prescribes in reply to `seg` when no connection (or no acceptable one) exists:
/// `<SEQ=SEG.ACK><CTL=RST>` if the segment had ACK, else `<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>`. `tuple` is
/// ours (local = the segment's destination). Never sent in reply to an RST (the caller checks).
pub(crate) fn reset_for(tuple: &FourTuple, seg: &TcpRepr<'_>) -> Vec<u8> {
    let (seq, ack, flags) = if seg.flags.ack() {
        (seg.ack, SeqNum(0), TcpFlags::RST)
    } else {
        (SeqNum(0), seg.seq + seg.segment_len(), TcpFlags::RST | TcpFlags::ACK)
    };
    datagram(
        tuple,
        TcpRepr {
            src_port: tuple.local.port(),
            dst_port: tuple.remote.port(),
            seq,
            ack,
            flags,
            window: 0,
            urgent: 0,
            options: TcpOptions::EMPTY,
            payload: &[],
        },
    )
}

/// Our window-scale shift: enough to advertise the largest buffer the socket may grow to (Linux's
/// tcp_select_initial_window: ilog2(space) - 15, clamped to 0..=14).
pub(crate) fn wscale_for(space: u32) -> u8 {
    (space.max(1).ilog2().saturating_sub(15) as u8).min(MAX_WSCALE)
}

impl Tcb {
    /// Our TSval: a millisecond clock (Linux's since 4.13) from a per-connection offset.
    pub(crate) fn tsval(&self, ctx: &Ctx<'_>) -> u32 {
        (ctx.now.millis() as u32).wrapping_add(self.ts_offset)
    }

    /// The buffer space the window may advertise (Linux's tcp_win_from_space with tcp_adv_win_scale).
    pub(crate) fn rcv_space(&self, ctx: &Ctx<'_>) -> u32 {
        let buf = self.rcvbuf_cap as u32;
        match ctx.config.tcp_adv_win_scale {
            s if s > 0 => buf - (buf >> s),
            s => buf >> (-s).min(31),
        }
    }

    fn buffered(&self) -> u32 {
        (self.recv_buf.len() + self.reasm.bytes()) as u32
    }

    /// Window for a non-SYN segment, in bytes, before scaling: free space, never moving the right edge left.
    pub(crate) fn rcv_window(&self, ctx: &Ctx<'_>) -> u32 {
        let max = u32::from(u16::MAX) << self.opts.rcv_wscale;
        let free = self.rcv_space(ctx).saturating_sub(self.buffered()).min(max);
        let granule = 1u32 << self.opts.rcv_wscale;
        let free = free / granule * granule;
        let promised = (self.rcv_adv - self.rcv_nxt).max(0) as u32;
        free.max(promised)
    }

    /// RCV.WND for acceptability tests: what we last advertised.
    pub(crate) fn rcv_wnd(&self) -> u32 {
        (self.rcv_adv - self.rcv_nxt).max(0) as u32
    }

    /// The window field of a SYN or SYN-ACK (never scaled, RFC 7323 2.2): as Linux, the space rounded down to a
    /// multiple of the MSS (less the timestamp option once it is known to be on).
    fn syn_window(&self, ctx: &Ctx<'_>) -> u16 {
        let mss = u32::from(self.adv_mss.saturating_sub(if self.opts.timestamps { TS_OPTION_LEN } else { 0 })).max(1);
        let space = self.rcv_space(ctx).min(u32::from(u16::MAX));
        ((space / mss * mss).max(mss.min(space))) as u16
    }

    /// Options of our SYN (active open: what we offer) or SYN-ACK (what the SYN offered and we accept), in
    /// Linux's layout: mss, then sackOK+TS or nop,nop,TS or nop,nop,sackOK, then nop,wscale.
    pub(crate) fn syn_options(&self, ctx: &Ctx<'_>) -> TcpOptions {
        let c = ctx.config;
        let (sack, ts, ws) = if self.state == TcpState::SynSent {
            (c.tcp_sack != 0, c.tcp_timestamps != 0, c.tcp_window_scaling != 0)
        } else {
            (self.opts.sack, self.opts.timestamps, self.opts.window_scaling)
        };
        let mut o = Vec::with_capacity(8);
        o.push(TcpOption::Mss(self.adv_mss));
        let tsopt = TcpOption::Timestamps { tsval: self.tsval(ctx), tsecr: if ts { self.ts_recent } else { 0 } };
        match (ts, sack) {
            (true, true) => o.extend([TcpOption::SackPermitted, tsopt]),
            (true, false) => o.extend([TcpOption::Nop, TcpOption::Nop, tsopt]),
            (false, true) => o.extend([TcpOption::Nop, TcpOption::Nop, TcpOption::SackPermitted]),
            (false, false) => {}
        }
        if ws {
            o.extend([TcpOption::Nop, TcpOption::WindowScale(self.opts.rcv_wscale)]);
        }
        TcpOptions::from_options(&o).unwrap_or_default()
    }

    /// Options of a non-SYN segment: timestamps if negotiated, SACK blocks if permitted and data is missing.
    fn segment_options(&self, ctx: &Ctx<'_>, with_sack: bool) -> TcpOptions {
        let mut o = TcpOptions::EMPTY;
        if self.opts.timestamps {
            let _ = o.push(&TcpOption::Nop);
            let _ = o.push(&TcpOption::Nop);
            let _ = o.push(&TcpOption::Timestamps { tsval: self.tsval(ctx), tsecr: self.ts_recent });
        }
        if with_sack && self.opts.sack && !self.reasm.is_empty() {
            let room = (40 - o.len() - 4) / 8;
            let blocks = self.reasm.sack_blocks(room.min(4));
            if let Some(b) = SackBlocks::new(&blocks) {
                let _ = o.push(&TcpOption::Nop);
                let _ = o.push(&TcpOption::Nop);
                let _ = o.push(&TcpOption::Sack(b));
            }
        }
        o
    }

    /// Sends one segment from this connection. With ACK set the acknowledgment is RCV.NXT and the ACK owed is
    /// paid (delayed-ACK timer stopped).
    pub(crate) fn send_segment(&mut self, ctx: &mut Ctx<'_>, flags: TcpFlags, seq: SeqNum, payload: &[u8]) {
        let syn = flags.syn();
        let options = if syn { self.syn_options(ctx) } else { self.segment_options(ctx, flags.ack() && !flags.rst()) };
        let window = if flags.rst() && !flags.ack() {
            0
        } else if syn {
            self.syn_window(ctx)
        } else {
            let w = self.rcv_window(ctx);
            self.rcv_adv = self.rcv_nxt + w;
            (w >> self.opts.rcv_wscale).min(u32::from(u16::MAX)) as u16
        };
        if syn {
            self.rcv_adv = self.rcv_nxt + u32::from(window);
        }
        let ack = if flags.ack() { self.rcv_nxt } else { SeqNum(0) };
        if flags.ack() {
            self.last_ack_sent = self.rcv_nxt;
            self.unacked_segs = 0;
            self.ack_now = false;
            self.clear_timer(Timer::DelayedAck);
        }
        if !syn && !flags.rst() && (!payload.is_empty() || flags.fin()) {
            let end = seq + payload.len() + u32::from(flags.fin());
            self.note_sent(ctx.now, seq, end);
        }
        let repr = TcpRepr {
            src_port: self.tuple.local.port(),
            dst_port: self.tuple.remote.port(),
            seq,
            ack,
            flags,
            window,
            urgent: 0,
            options,
            payload,
        };
        ctx.tx.push(datagram(&self.tuple, repr));
    }

    /// (Re)sends our SYN (SYN-SENT) or SYN-ACK (SYN-RECEIVED), always from ISS.
    pub(crate) fn send_syn(&mut self, ctx: &mut Ctx<'_>) {
        let flags = if self.state == TcpState::SynSent { TcpFlags::SYN } else { TcpFlags::SYN | TcpFlags::ACK };
        self.send_segment(ctx, flags, self.iss, &[]);
        if self.snd_nxt == self.iss {
            self.snd_nxt = self.iss + 1u32;
            self.snd_max = self.snd_max.max_seq(self.snd_nxt);
        }
        if self.rtt_probe.is_none() && !self.syn_retransmitted {
            self.rtt_probe = Some((self.iss + 1u32, ctx.now));
        }
        if !self.xmit_timer_armed() {
            self.set_timer(Timer::Retransmit, ctx.now + self.rtt.rto());
        }
    }

    /// An empty ACK `<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>`. The RFC's SND.NXT is our `snd_max`: after a timeout
    /// `snd_nxt` goes back to resend, but an ACK stamped with that older number would lie before the peer's
    /// RCV.NXT, fail its acceptability test and be dropped with the acknowledgment it carries (two stacks that
    /// both went back would then never learn of each other's progress: found by the lossy-link property test).
    pub(crate) fn send_ack(&mut self, ctx: &mut Ctx<'_>) {
        self.send_segment(ctx, TcpFlags::ACK, self.snd_max, &[]);
    }

    /// An ACK for an out-of-window or otherwise invalid segment, limited to one per `tcp_invalid_ratelimit`
    /// (Linux's tcp_oow_rate_limited; data segments without SYN are exempt, as on Linux, because they cannot
    /// be part of an ACK loop). Returns whether it was sent.
    pub(crate) fn send_oow_ack(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>) -> bool {
        let is_data = !seg.payload.is_empty() || seg.flags.fin();
        if (seg.flags.syn() || !is_data) && self.oow_rate_limited(ctx) {
            return false;
        }
        self.send_ack(ctx);
        true
    }

    fn oow_rate_limited(&mut self, ctx: &Ctx<'_>) -> bool {
        let gap = core::time::Duration::from_millis(u64::from(ctx.config.tcp_invalid_ratelimit));
        if let Some(last) = self.last_oow_ack {
            if ctx.now < last + gap {
                return true;
            }
        }
        self.last_oow_ack = Some(ctx.now);
        false
    }

    /// RFC 5961 challenge ACK, limited per connection (`tcp_invalid_ratelimit`) and host-wide
    /// (`tcp_challenge_ack_limit` per second).
    pub(crate) fn send_challenge_ack(&mut self, ctx: &mut Ctx<'_>) {
        if self.oow_rate_limited(ctx) {
            return;
        }
        let limit = ctx.config.tcp_challenge_ack_limit;
        let now = ctx.now;
        if let Some(budget) = ctx.challenge_acks.as_deref_mut() {
            if !budget.take(now, limit) {
                return;
            }
        }
        self.send_ack(ctx);
    }

    /// Our reset of an open connection: `<SEQ=SND.NXT><ACK=RCV.NXT><CTL=RST,ACK>` (Linux's
    /// tcp_send_active_reset).
    pub(crate) fn send_active_reset(&mut self, ctx: &mut Ctx<'_>) {
        self.send_segment(ctx, TcpFlags::RST | TcpFlags::ACK, self.snd_max, &[]);
    }

    fn may_send_data(&self) -> bool {
        matches!(
            self.state,
            TcpState::Established | TcpState::CloseWait | TcpState::FinWait1 | TcpState::Closing | TcpState::LastAck
        )
    }

    /// Sends what the windows allow: data segmented at the MSS, Nagle's algorithm unless TCP_NODELAY, the FIN
    /// after the last byte, then an ACK if one is owed and nothing carried it.
    pub(crate) fn output(&mut self, ctx: &mut Ctx<'_>) {
        self.output_within(ctx, self.cc.send_window());
    }

    /// [`Tcb::output`] with `cwnd` as the congestion window (a fast retransmission sends one segment).
    pub(crate) fn output_within(&mut self, ctx: &mut Ctx<'_>, cwnd: u32) {
        if self.output_segments(ctx, cwnd, false) {
            // RFC 8985 7.2: new data arms the loss probe (one per tail loss episode: not for the probe itself).
            self.schedule_loss_probe(ctx, false);
        }
    }

    /// One segment, whatever the congestion window, Nagle and silly window avoidance: a loss probe of new data
    /// (RFC 8985 7.3), or the persist timer's segment into an open window too small for a full one.
    pub(crate) fn output_probe(&mut self, ctx: &mut Ctx<'_>) {
        let cwnd = self.in_flight() + u32::from(self.snd_mss);
        self.output_segments(ctx, cwnd, true);
    }

    /// Sends what `cwnd` and the peer's window allow; `probe` sends one segment and skips Nagle. Whether new data
    /// went out.
    fn output_segments(&mut self, ctx: &mut Ctx<'_>, cwnd: u32, probe: bool) -> bool {
        let mut sent_any = false;
        let mut sent_new = false;
        while self.may_send_data() {
            if self.snd_nxt < self.snd_buf_seq && self.snd_una == self.iss {
                break; // our SYN is not acknowledged yet: nothing after it can go
            }
            let data_end = self.snd_buf_seq + self.send_buf.len();
            let unsent = (data_end - self.snd_nxt).max(0) as u32;
            let fin_pending = self.fin_queued && self.snd_nxt <= data_end;
            if unsent == 0 && !fin_pending {
                break;
            }
            let wnd = self.snd_wnd.min(cwnd.max(u32::from(self.snd_mss)));
            let usable = wnd.saturating_sub(self.in_flight());
            let len = unsent.min(u32::from(self.snd_mss)).min(usable);
            // A FIN needs room in the peer's window like an octet of data (Linux's tcp_snd_wnd_test counts its
            // sequence number): behind a window already filled it waits, the persist timer probing the window,
            // rather than going out at once into a zero window (found by `tcpdrill fuzz` against Linux).
            // (A FIN sent before and due again after an RTO waits the same way: the persist timer probes.)
            let window_full = self.snd_nxt >= self.snd_una + self.snd_wnd;
            if unsent == 0 && window_full {
                self.arm_persist_if_idle(ctx);
                break;
            }
            if unsent > 0 && len == 0 {
                if self.snd_wnd == 0 {
                    self.arm_persist_if_idle(ctx);
                }
                break;
            }
            let is_last = len == unsent;
            // Retransmissions are never held back: what was sent before goes again as far as the window reaches,
            // however short that is (SHLD-16: "retransmit normally the old unacknowledged data between SND.UNA
            // and SND.UNA+SND.WND").
            let new_data = self.snd_nxt >= self.snd_max;
            // Sender-side silly window avoidance (RFC 9293 3.8.6.2.1): a short segment of new data goes out only
            // if it empties the queue or fills half the largest window the peer offered.
            if len < u32::from(self.snd_mss) && !is_last && len * 2 < self.max_snd_wnd && !probe && new_data {
                // With nothing in flight no ACK is coming to open the window (the peer's update may have been
                // lost: ACKs are not retransmitted), so the persist timer sends what fits when it expires: RFC
                // 9293's override timeout, Linux's probe timer and tcp_write_wakeup. Without it a stale window
                // smaller than a segment stalled a transfer for good.
                self.arm_persist_if_idle(ctx);
                break;
            }
            // The FIN rides on the last data only if there is room for it after the data; otherwise the data goes
            // alone and the FIN waits (above), as Linux splits the segment at the window's edge.
            let fin = fin_pending && is_last && self.snd_nxt + len < self.snd_una + self.snd_wnd;
            if len == 0 && !fin {
                break; // nothing to carry: an empty segment here would loop for ever
            }
            // Nagle with Minshall's modification (Linux's tcp_nagle_check): a short segment waits only while an
            // earlier short segment is unacknowledged.
            let small = len > 0 && len < u32::from(self.snd_mss);
            if small && new_data && self.snd_sml > self.snd_una && !self.sockopts.nodelay && !fin && !probe {
                break;
            }
            let off = (self.snd_nxt - self.snd_buf_seq).max(0) as usize;
            let payload: Vec<u8> = self.send_buf.range(off..off + len as usize).copied().collect();
            let mut flags = TcpFlags::ACK;
            let end = self.snd_nxt + len;
            if len > 0 && (is_last || self.push_ends.contains(&end)) {
                flags |= TcpFlags::PSH;
                if self.push_ends.back().is_none_or(|&e| e < end) {
                    self.push_ends.push_back(end);
                }
            }
            if fin {
                flags |= TcpFlags::FIN;
            }
            let seq = self.snd_nxt;
            let retransmission = seq < self.snd_max;
            self.send_segment(ctx, flags, seq, &payload);
            sent_any = true;
            sent_new |= !retransmission;
            self.snd_nxt = seq + len + u32::from(fin);
            if small {
                self.snd_sml = self.snd_nxt;
            }
            self.snd_max = self.snd_max.max_seq(self.snd_nxt);
            if !retransmission && self.rtt_probe.is_none() {
                self.rtt_probe = Some((self.snd_nxt, ctx.now));
            }
            // The retransmission budget (tcp_retries2, TCP_USER_TIMEOUT) counts from the first retransmission,
            // as Linux's retrans_stamp does (measured on 6.18: a 1 s user timeout ends the connection 1 s after
            // the first retransmission, not after the original send).
            if retransmission && self.retrans_stamp.is_none() {
                self.retrans_stamp = Some(ctx.now);
            }
            if !self.xmit_timer_armed() {
                self.set_timer(Timer::Retransmit, ctx.now + self.rtt.rto());
            }
            self.clear_timer(Timer::Persist);
            if fin || probe {
                break;
            }
        }
        if !sent_any && self.ack_now {
            self.send_ack(ctx);
        }
        sent_new
    }

    /// Arms the persist timer (at a fresh backoff) if nothing is in flight and it is not armed yet: with nothing in
    /// flight no ACK is coming to reopen the window, so without it data or a FIN held back would wait for ever.
    fn arm_persist_if_idle(&mut self, ctx: &Ctx<'_>) {
        if self.in_flight() == 0 && !self.timers.is_armed(Timer::Persist) {
            self.persist_probes = 0;
            self.persist_shift = 0;
            self.set_timer(Timer::Persist, ctx.now + self.rtt.rto());
        }
    }

    /// Sends `[start, end)` of what was sent before again: the data in it, and the FIN if it ends with the FIN.
    /// Whether a segment went out.
    pub(crate) fn resend_range(&mut self, ctx: &mut Ctx<'_>, start: SeqNum, end: SeqNum) -> bool {
        let data_end = self.snd_buf_seq + self.send_buf.len();
        if start < self.snd_buf_seq || end <= start || end > self.snd_max {
            return false;
        }
        let data_stop = end.min_seq(data_end);
        let payload: Vec<u8> = if start < data_stop {
            let off = (start - self.snd_buf_seq) as usize;
            self.send_buf.range(off..off + (data_stop - start) as usize).copied().collect()
        } else {
            Vec::new()
        };
        let fin = self.fin_seq().is_some_and(|f| end == f + 1u32);
        if payload.is_empty() && !fin {
            return false;
        }
        let mut flags = TcpFlags::ACK;
        if !payload.is_empty() && self.push_ends.contains(&data_stop) {
            flags |= TcpFlags::PSH;
        }
        if fin {
            flags |= TcpFlags::FIN;
        }
        self.send_segment(ctx, flags, start, &payload);
        // Karn: an ACK of what was timed may now answer either transmission.
        self.rtt_probe = None;
        if self.retrans_stamp.is_none() {
            self.retrans_stamp = Some(ctx.now);
        }
        if !self.xmit_timer_armed() {
            self.set_timer(Timer::Retransmit, ctx.now + self.rtt.rto());
        }
        true
    }

    /// Schedules or sends the ACK for data just received: at once for out-of-order data, a filled hole, a
    /// FIN, quick-ACK mode or every second segment; otherwise after the delayed-ACK timeout.
    pub(crate) fn ack_policy(&mut self, ctx: &mut Ctx<'_>, immediate: bool) {
        self.unacked_segs += 1;
        if immediate || self.unacked_segs >= 2 {
            self.ack_now = true;
        } else if self.quickacks > 0 {
            self.quickacks -= 1;
            self.ack_now = true;
        } else if !self.timers.is_armed(Timer::DelayedAck) {
            self.set_timer(Timer::DelayedAck, ctx.now + DELACK_MIN);
        }
    }
}
