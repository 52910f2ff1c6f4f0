//! RACK-TLP (RFC 8985), in Linux's form (tcp_recovery.c; tcp_schedule_loss_probe and tcp_send_loss_probe in
//! tcp_output.c), for connections that negotiated SACK:
//!
//! - RACK: a segment is lost when a segment sent after it has been delivered (cumulatively acknowledged or
//!   SACKed) and more than RACK.rtt plus a reordering window has passed since it was sent. A lost retransmission
//!   is found the same way, which the three-duplicate rule never finds; the reordering timer waits for the
//!   segments whose time is not up yet.
//! - TLP: after new data, a probe timer of about two round trips replaces the retransmission timer; it sends new
//!   data or the last segment again, so that a tail loss is repaired by a SACK-driven recovery instead of a
//!   timeout.
//!
//! RACK is the only loss detection of a SACK connection, as on Linux 6.18, whose `tcp_recovery=0` no longer turns
//! it off (measured: `data/rack-*` pass on the kernel with it); RFC 6675's rule of three SACKed segments above a
//! hole lives on as the zero reordering window at three SACKed segments, which `tcp_recovery`'s bit 0x4 removes.
//! `tcp_early_retrans` 3 or 4 turns the loss probe on.
//!
//! Simplifications, each where Linux's choice does not change what is sent on a path without DSACKs: min_rtt is
//! the minimum over the connection's life (Linux windows it over `tcp_min_rtt_wlen`, 300 s); the reordering window
//! does not grow with DSACK rounds (the reference stack sends and counts none); times are not rounded to jiffies.

use super::congestion::CongestionControl;
use super::{Ctx, Tcb, TcpState, Timer};
use crate::seq::SeqNum;
use crate::time::Instant;
use core::time::Duration;

/// Linux's TCP_TIMEOUT_MIN: two jiffies at CONFIG_HZ=250 (the kernel the suite is checked on), added to the
/// reordering timer.
pub(crate) const TIMEOUT_MIN: Duration = Duration::from_millis(8);
/// Linux's TCP_TIMEOUT_MIN_US, added to a loss probe's two round trips when more than one segment is out.
pub(crate) const TLP_MIN: Duration = Duration::from_millis(2);
/// The probe timeout before any RTT sample (Linux's TCP_TIMEOUT_INIT).
const TLP_NO_RTT: Duration = Duration::from_secs(1);
/// SACKed segments that set the reordering window to zero (Linux's default `tcp_reordering`).
const REORDERING: usize = 3;

/// One transmitted segment's record, in sequence order beside the send buffer (Linux keeps the same in its
/// retransmission queue's skbs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sent {
    pub start: SeqNum,
    /// One past the segment's last sequence number (its FIN included).
    pub end: SeqNum,
    /// When it was last (re)transmitted.
    pub xmit: Instant,
    pub retransmitted: bool,
    pub sacked: bool,
    /// Marked lost and not retransmitted since.
    pub lost: bool,
}

/// RACK's and TLP's state (RFC 8985 5.2's variables).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Rack {
    /// RACK.xmit_ts and RACK.end_seq: the most recently sent segment known delivered.
    xmit: Option<Instant>,
    end: SeqNum,
    /// RACK.rtt: the round trip of the last delivered segment counted.
    rtt: Duration,
    /// Something was delivered since the last loss detection.
    advanced: bool,
    min_rtt: Option<Duration>,
    /// RACK.reordering_seen.
    reordering_seen: bool,
    /// The highest end of a SACKed segment (RACK.fack).
    fack: Option<SeqNum>,
    /// TLP.end_seq: SND.NXT when the outstanding probe was sent.
    pub(crate) tlp_high_seq: Option<SeqNum>,
    /// The outstanding probe retransmitted data (rather than sending new data).
    tlp_retrans: bool,
}

/// RFC 8985's "sent after": by transmission time, then by sequence.
fn sent_after(t1: Instant, end1: SeqNum, t2: Instant, end2: SeqNum) -> bool {
    t1 > t2 || (t1 == t2 && end1 > end2)
}

impl Tcb {
    fn tlp_on(&self, ctx: &Ctx<'_>) -> bool {
        self.opts.sack && matches!(ctx.config.tcp_early_retrans, 3 | 4)
    }

    /// Records a data or FIN segment `[start, end)` leaving at `now`: new records beyond what was sent, and a
    /// retransmission's records (split at its edges) stamped again.
    pub(crate) fn note_sent(&mut self, now: Instant, start: SeqNum, end: SeqNum) {
        if !self.opts.sack || end <= start {
            return;
        }
        let recorded = self.sent.back().map_or(start, |s| s.end);
        if start < recorded {
            let re_end = end.min_seq(recorded);
            self.split_sent_at(start);
            self.split_sent_at(re_end);
            let i = self.sent.partition_point(|s| s.start < start);
            for s in self.sent.range_mut(i..) {
                if s.start >= re_end {
                    break;
                }
                s.xmit = now;
                s.retransmitted = true;
                s.lost = false;
            }
        }
        let new_start = start.max_seq(recorded);
        if new_start < end {
            self.sent.push_back(Sent {
                start: new_start,
                end,
                xmit: now,
                retransmitted: false,
                sacked: false,
                lost: false,
            });
        }
    }

    fn split_sent_at(&mut self, at: SeqNum) {
        let i = self.sent.partition_point(|s| s.end <= at);
        if let Some(s) = self.sent.get_mut(i) {
            if s.start < at && at < s.end {
                let mut tail = *s;
                s.end = at;
                tail.start = at;
                self.sent.insert(i + 1, tail);
            }
        }
    }

    /// Drops the records the cumulative ACK `ack` covers (a straddling one is trimmed).
    pub(crate) fn forget_acked(&mut self, ack: SeqNum) {
        while self.sent.front().is_some_and(|s| s.end <= ack) {
            self.sent.pop_front();
        }
        if let Some(s) = self.sent.front_mut() {
            s.start = s.start.max_seq(ack);
        }
        // The same for RACK.fack: once acknowledged it says nothing, and left behind it would wrap.
        if self.rack.fack.is_some_and(|f| f <= ack) {
            self.rack.fack = None;
        }
    }

    /// After a retransmission timeout the scoreboard is forgotten (RFC 2018 8), and so are the records' marks.
    pub(crate) fn rack_on_timeout(&mut self) {
        for s in &mut self.sent {
            s.sacked = false;
            s.lost = false;
        }
        self.rack.tlp_high_seq = None;
        self.rack.fack = None;
    }

    /// An RTT sample from the RFC 6298 estimator or from a delivered segment: min_rtt for the reordering window.
    pub(crate) fn note_min_rtt(&mut self, rtt: Duration) {
        self.rack.min_rtt = Some(self.rack.min_rtt.map_or(rtt, |m| m.min(rtt)));
    }

    /// RFC 8985 6.2 steps 1-2 for an ACK whose SACK blocks are already in the scoreboard and whose cumulative
    /// `ack` is not yet applied: every segment it delivers advances RACK, and one delivered below the highest
    /// SACKed one, never retransmitted, shows reordering.
    ///
    /// Returns the ACK's RFC 6298 sample, as Linux takes one from every ACK that delivers a segment sent once
    /// (Karn's rule): the oldest one acknowledged cumulatively unless retransmitted data is acknowledged too, else
    /// the oldest one newly SACKed. Timing one segment per round trip instead, as the stack does without SACK,
    /// leaves a lossy connection without samples (any retransmission voids the timed one) and its backed-off RTO
    /// never comes down again.
    pub(crate) fn rack_update(&mut self, now: Instant, ack: SeqNum) -> Option<Duration> {
        if !self.opts.sack {
            return None;
        }
        let mut delivered: Vec<Sent> = Vec::new();
        let fack = self.rack.fack;
        for s in self.sent.iter() {
            if s.end > ack {
                break;
            }
            if !s.sacked {
                // Acknowledged cumulatively though never retransmitted, below a SACKed segment: it came late.
                if !s.retransmitted && fack.is_some_and(|f| s.end < f) {
                    self.rack.reordering_seen = true;
                }
                delivered.push(*s);
            }
        }
        let acked = delivered.len();
        for &(l, r) in &self.sacked {
            let i = self.sent.partition_point(|s| s.start < l);
            for s in self.sent.range_mut(i..) {
                if s.start >= r {
                    break;
                }
                if s.end <= r && !s.sacked {
                    s.sacked = true;
                    s.lost = false;
                    // Only a segment sent once shows reordering: a retransmission below fack was simply late.
                    if !s.retransmitted && self.rack.fack.is_some_and(|f| s.end < f) {
                        self.rack.reordering_seen = true;
                    }
                    self.rack.fack = Some(self.rack.fack.map_or(s.end, |f| f.max_seq(s.end)));
                    delivered.push(*s);
                }
            }
        }
        let cumulative = &delivered[..acked];
        let seq_rtt = if cumulative.iter().any(|s| s.retransmitted) {
            None
        } else {
            cumulative.first().map(|s| now.saturating_since(s.xmit))
        };
        let sack_rtt = delivered[acked..].iter().filter(|s| !s.retransmitted).map(|s| s.xmit).min();
        let sample = seq_rtt.or(sack_rtt.map(|x| now.saturating_since(x)));
        for s in delivered {
            let rtt = now.saturating_since(s.xmit);
            // Which transmission was delivered is ambiguous for a retransmission; one delivered sooner than the
            // path allows answered an earlier transmission and says nothing (RFC 8985 6.2 step 1).
            if s.retransmitted && self.rack.min_rtt.is_none_or(|m| rtt < m) {
                continue;
            }
            if !s.retransmitted {
                self.note_min_rtt(rtt);
            }
            self.rack.advanced = true;
            self.rack.rtt = rtt;
            match self.rack.xmit {
                Some(x) if !sent_after(s.xmit, s.end, x, self.rack.end) => {}
                _ => {
                    self.rack.xmit = Some(s.xmit);
                    self.rack.end = s.end;
                }
            }
        }
        sample
    }

    /// Loss recovery of some kind is under way (Linux's CA states Recovery and Loss).
    pub(crate) fn in_loss_recovery(&self) -> bool {
        self.cc.in_recovery() || self.snd_una < self.rto_high_data
    }

    /// RFC 8985 6.2 step 4's reordering window (Linux's tcp_rack_reo_wnd).
    fn reo_wnd(&self, ctx: &Ctx<'_>) -> Duration {
        if !self.rack.reordering_seen {
            if self.in_loss_recovery() {
                return Duration::ZERO;
            }
            let sacked = self.sent.iter().filter(|s| s.sacked).count();
            if sacked >= REORDERING && ctx.config.tcp_recovery & 4 == 0 {
                return Duration::ZERO;
            }
        }
        let quarter = self.rack.min_rtt.unwrap_or_default() / 4;
        quarter.min(self.rtt.srtt_us().map_or(Duration::ZERO, Duration::from_micros))
    }

    /// RFC 8985 6.2 step 5 (Linux's tcp_rack_detect_loss): marks lost every segment sent before RACK's whose time
    /// is up; returns whether any was newly marked, and the longest wait of those whose time is not up.
    fn rack_detect_loss(&mut self, ctx: &Ctx<'_>) -> (bool, Option<Duration>) {
        let Some(rack_xmit) = self.rack.xmit else { return (false, None) };
        let reo_wnd = self.reo_wnd(ctx);
        let (rack_end, rack_rtt, now) = (self.rack.end, self.rack.rtt, ctx.now);
        let mut lost = false;
        let mut wait: Option<Duration> = None;
        for s in self.sent.iter_mut() {
            if s.sacked || s.lost || !sent_after(rack_xmit, rack_end, s.xmit, s.end) {
                continue;
            }
            let deadline = s.xmit + rack_rtt + reo_wnd;
            if deadline <= now {
                s.lost = true;
                lost = true;
            } else {
                let w = deadline.saturating_since(now);
                wait = Some(wait.map_or(w, |m| m.max(w)));
            }
        }
        (lost, wait)
    }

    /// RACK's part of an ACK's processing (Linux's tcp_rack_mark_lost): after something was delivered, detect
    /// losses and arm the reordering timer for the rest. Whether that timer was armed.
    pub(crate) fn rack_mark_lost(&mut self, ctx: &mut Ctx<'_>) -> bool {
        if !self.opts.sack || !self.rack.advanced {
            return false;
        }
        self.rack.advanced = false;
        let (_, wait) = self.rack_detect_loss(ctx);
        if let Some(w) = wait {
            self.set_timer(Timer::ReoTimeout, ctx.now + w + TIMEOUT_MIN);
        }
        wait.is_some()
    }

    /// The lowest segment RACK has marked lost and not retransmitted: its start and end.
    pub(crate) fn first_rack_lost(&self) -> Option<(SeqNum, SeqNum)> {
        self.sent.iter().find(|s| s.lost && !s.sacked).map(|s| (s.start, s.end))
    }

    /// Bytes in the network by RACK's accounting (Linux's packets_in_flight in bytes): sent, neither delivered
    /// nor lost.
    pub(crate) fn rack_pipe(&self) -> u32 {
        self.sent.iter().filter(|s| !s.sacked && !s.lost).map(|s| (s.end - s.start) as u32).sum()
    }

    /// The reordering timer fired (Linux's tcp_rack_reo_timeout): what is lost now starts or continues the
    /// recovery, then the retransmission timer takes the slot again.
    pub(crate) fn reo_timeout(&mut self, ctx: &mut Ctx<'_>) {
        let (lost, _) = self.rack_detect_loss(ctx);
        if lost {
            self.loss_recovery(ctx);
        }
        if !self.timers.is_armed(Timer::Retransmit) {
            self.rearm_rto_from_head(ctx);
        }
    }

    /// The retransmission timer from when the oldest outstanding segment was last sent (Linux's tcp_rearm_rto
    /// after a probe or reordering timer: "offset the time elapsed").
    pub(crate) fn rearm_rto_from_head(&mut self, ctx: &mut Ctx<'_>) {
        if self.snd_una == self.snd_max {
            self.clear_timer(Timer::Retransmit);
            return;
        }
        let head = self.sent.front().map_or(ctx.now, |s| s.xmit);
        let at = (head + self.rtt.rto()).max(ctx.now);
        self.set_timer(Timer::Retransmit, at);
    }

    /// After an ACK of new data (Linux's tcp_set_xmit_timer): the loss probe if it may be armed, else the
    /// retransmission timer from now (RFC 6298 5.3).
    pub(crate) fn set_xmit_timer(&mut self, ctx: &mut Ctx<'_>) {
        if !self.schedule_loss_probe(ctx, true) {
            self.set_timer(Timer::Retransmit, ctx.now + self.rtt.rto());
        }
    }

    /// RFC 8985 7.2 (Linux's tcp_schedule_loss_probe): with data outstanding and no recovery or disorder, the probe
    /// timer takes the retransmission timer's place: 2 SRTT, plus the minimum RTO when one segment is out (its ACK
    /// may be delayed) or two milliseconds, 1 s without an RTT sample; never later than the retransmission timer
    /// would fire (a full RTO from now after an ACK, `advancing_rto`, else from the oldest segment's sending).
    pub(crate) fn schedule_loss_probe(&mut self, ctx: &mut Ctx<'_>, advancing_rto: bool) -> bool {
        let sending = matches!(
            self.state,
            TcpState::Established | TcpState::CloseWait | TcpState::FinWait1 | TcpState::Closing | TcpState::LastAck
        );
        // Linux probes only in the Open state: not in Disorder either (something SACKed, marked lost or
        // retransmitted is outstanding), where the reordering timer or the RTO is already the right timer.
        let disorder = self.sent.iter().any(|r| r.sacked || r.lost || r.retransmitted);
        if !self.tlp_on(ctx) || !sending || self.sent.is_empty() || self.in_loss_recovery() || disorder {
            return false;
        }
        let mut timeout = match self.rtt.srtt_us() {
            Some(srtt) => {
                let extra = if self.sent.len() == 1 {
                    Duration::from_micros(u64::from(ctx.config.tcp_rto_min_us))
                } else {
                    TLP_MIN
                };
                Duration::from_micros(2 * srtt) + extra
            }
            None => TLP_NO_RTT,
        };
        let rto_delta = if advancing_rto {
            self.rtt.rto()
        } else {
            let head = self.sent.front().map_or(ctx.now, |s| s.xmit);
            (head + self.rtt.rto()).saturating_since(ctx.now)
        };
        if !rto_delta.is_zero() {
            timeout = timeout.min(rto_delta);
        }
        self.set_timer(Timer::LossProbe, ctx.now + timeout);
        true
    }

    /// The probe timer fired (RFC 8985 7.3, Linux's tcp_send_loss_probe): one probe at a time, new data if the
    /// peer's window takes a segment (congestion window and Nagle aside), else the last segment again; then the
    /// retransmission timer, a whole RTO from now once a probe went out.
    pub(crate) fn loss_probe_timeout(&mut self, ctx: &mut Ctx<'_>) {
        if self.rack.tlp_high_seq.is_some() || self.sent.is_empty() || self.in_loss_recovery() {
            return self.rearm_rto_from_head(ctx);
        }
        let data_end = self.snd_buf_seq + self.send_buf.len();
        let unsent = (data_end - self.snd_nxt).max(0) as u32;
        let room = (self.snd_una + self.snd_wnd - self.snd_nxt).max(0) as u32;
        let sent_before = self.snd_max;
        let mut probed = false;
        if unsent > 0 && room >= unsent.min(u32::from(self.snd_mss)) {
            self.output_probe(ctx);
            probed = self.snd_max > sent_before;
            self.rack.tlp_retrans = false;
        }
        if !probed {
            let Some(&last) = self.sent.back() else { return self.rearm_rto_from_head(ctx) };
            let start = last.start.max_seq(last.end - u32::from(self.snd_mss));
            probed = self.resend_range(ctx, start, last.end);
            self.rack.tlp_retrans = true;
        }
        if !probed {
            return self.rearm_rto_from_head(ctx);
        }
        self.rack.tlp_high_seq = Some(self.snd_nxt.max_seq(self.snd_max));
        self.set_timer(Timer::Retransmit, ctx.now + self.rtt.rto());
    }

    /// RFC 8985 7.4 (Linux's tcp_process_tlp_ack): after a retransmitted probe, a D-SACK of it (`dsack`: the
    /// probe was a duplicate, RFC 2883) or a pure duplicate ACK ends the episode without a loss; an ACK beyond
    /// the probe means one of the two was needed, a loss: the congestion window is halved as for a recovery. An
    /// ACK of just the probe's end leaves the episode open (the next probe waits for its end), as on Linux. An
    /// ACK of a probe of new data ends it.
    pub(crate) fn tlp_ack(&mut self, ack: SeqNum, pure_dupack: bool, dsack: Option<(SeqNum, SeqNum)>) {
        let Some(high) = self.rack.tlp_high_seq else { return };
        if ack < high {
            return;
        }
        // Linux's FLAG_DSACK_TLP (tcp_dsack_seen): the D-SACK is of one segment at most, ending at the probe's end.
        let duplicate = dsack.is_some_and(|(l, r)| r == high && r - l <= i32::from(self.snd_mss));
        if !self.rack.tlp_retrans || duplicate {
            self.rack.tlp_high_seq = None;
        } else if ack > high {
            self.rack.tlp_high_seq = None;
            self.cc.on_probe_loss(u32::from(self.snd_mss));
        } else if pure_dupack {
            self.rack.tlp_high_seq = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sent_after_orders_by_time_then_sequence() {
        let t = Instant::from_secs(1);
        assert!(sent_after(t + Duration::from_millis(1), SeqNum(1), t, SeqNum(100)));
        assert!(sent_after(t, SeqNum(200), t, SeqNum(100)), "same time: the later sequence");
        assert!(!sent_after(t, SeqNum(100), t, SeqNum(100)));
    }
}
