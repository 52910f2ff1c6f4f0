//! The timer table (quinn-proto's shape: one `Option<Instant>` per timer, the earliest is the next wake-up) and
//! what each expiry does.

use super::congestion::CongestionControl;
use super::{Ctx, Tcb, TcpState, RTO_INITIAL};
use crate::errno::Errno;
use crate::time::Instant;
use crate::wire::TcpFlags;
use core::time::Duration;

/// A connection's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// RFC 6298 retransmission timer; in SYN-SENT and SYN-RECEIVED it retransmits the SYN or SYN-ACK.
    Retransmit = 0,
    /// Delayed ACK (RFC 9293 3.8.6.3, < 0.5 s).
    DelayedAck = 1,
    /// Zero-window probes (RFC 9293 3.8.6.1).
    Persist = 2,
    /// Keepalive probes (RFC 9293 3.8.4, RFC 1122 4.2.3.6).
    Keepalive = 3,
    /// TIME-WAIT's 2 MSL.
    TimeWait = 4,
    /// `tcp_fin_timeout` for an orphaned FIN-WAIT-2.
    FinWait2 = 5,
    /// RFC 8985's tail loss probe, armed in the retransmission timer's place.
    LossProbe = 6,
    /// RFC 8985's RACK reordering timer, armed in the retransmission timer's place.
    ReoTimeout = 7,
}

impl Timer {
    /// Number of timers.
    pub const COUNT: usize = 8;
    /// All timers, in table order.
    pub const ALL: [Timer; Timer::COUNT] = [
        Timer::Retransmit,
        Timer::DelayedAck,
        Timer::Persist,
        Timer::Keepalive,
        Timer::TimeWait,
        Timer::FinWait2,
        Timer::LossProbe,
        Timer::ReoTimeout,
    ];

    /// The three uses of the retransmission timer, one at a time (Linux's icsk_pending): RTO, loss probe and
    /// RACK's reordering timer replace one another.
    pub const XMIT: [Timer; 3] = [Timer::Retransmit, Timer::LossProbe, Timer::ReoTimeout];
}

/// A connection's timer table: one deadline per [`Timer`]; the earliest is when the host must call back.
///
/// Private to the TCB so that "stop every timer" and "the next wake-up" are written once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TimerTable([Option<Instant>; Timer::COUNT]);

impl TimerTable {
    /// Arms `t` for `at`, replacing any earlier deadline.
    pub(crate) fn set(&mut self, t: Timer, at: Instant) {
        self.0[t as usize] = Some(at);
    }

    /// Disarms `t`.
    pub(crate) fn clear(&mut self, t: Timer) {
        self.0[t as usize] = None;
    }

    /// Disarms every timer.
    pub(crate) fn clear_all(&mut self) {
        self.0 = [None; Timer::COUNT];
    }

    /// When `t` fires, if armed.
    pub(crate) fn get(&self, t: Timer) -> Option<Instant> {
        self.0[t as usize]
    }

    /// Whether `t` is armed.
    pub(crate) fn is_armed(&self, t: Timer) -> bool {
        self.0[t as usize].is_some()
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }

    /// Disarms and returns true when `t` is due at `now`.
    pub(crate) fn take_due(&mut self, t: Timer, now: Instant) -> bool {
        let due = self.0[t as usize].is_some_and(|at| at <= now);
        if due {
            self.0[t as usize] = None;
        }
        due
    }
}

/// Linux's tcp_model_timeout: the time `boundary` exponential retransmissions take from `rto_base`, with the
/// RTO capped at `rto_max`. tcp_retries2 = 15 with a 200 ms base gives 924.6 s.
pub(crate) fn model_timeout(boundary: u32, rto_base: Duration, rto_max: Duration) -> Duration {
    let thresh = (rto_max.as_micros() / rto_base.as_micros().max(1)).max(1).ilog2();
    if boundary <= thresh {
        rto_base * ((2u32 << boundary) - 1)
    } else {
        rto_base * ((2u32 << thresh) - 1) + rto_max * (boundary - thresh)
    }
}

impl Tcb {
    /// Arms `t`; arming one of [`Timer::XMIT`] disarms the other two.
    pub(crate) fn set_timer(&mut self, t: Timer, at: Instant) {
        if Timer::XMIT.contains(&t) {
            for x in Timer::XMIT {
                self.timers.clear(x);
            }
        }
        self.timers.set(t, at);
    }

    /// Whether one of [`Timer::XMIT`] is armed.
    pub(crate) fn xmit_timer_armed(&self) -> bool {
        Timer::XMIT.iter().any(|&t| self.timers.is_armed(t))
    }

    /// Disarms all of [`Timer::XMIT`]: nothing is outstanding.
    pub(crate) fn clear_xmit_timer(&mut self) {
        for x in Timer::XMIT {
            self.timers.clear(x);
        }
    }

    pub(crate) fn clear_timer(&mut self, t: Timer) {
        self.timers.clear(t);
    }

    /// The earliest armed timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// When `t` fires, if armed.
    pub fn timer(&self, t: Timer) -> Option<Instant> {
        self.timers.get(t)
    }

    fn rto_max(ctx: &Ctx<'_>) -> Duration {
        Duration::from_millis(u64::from(ctx.config.tcp_rto_max_ms))
    }

    /// Fires every timer due at `ctx.now`.
    pub(crate) fn on_timeout(&mut self, ctx: &mut Ctx<'_>) {
        for t in Timer::ALL {
            if self.state == TcpState::Closed {
                return;
            }
            if self.timers.take_due(t, ctx.now) {
                match t {
                    Timer::Retransmit => self.retransmit_timeout(ctx),
                    Timer::DelayedAck => self.send_ack(ctx),
                    Timer::Persist => self.persist_timeout(ctx),
                    Timer::Keepalive => self.keepalive_timeout(ctx),
                    Timer::TimeWait | Timer::FinWait2 => self.close_now(),
                    Timer::LossProbe => self.loss_probe_timeout(ctx),
                    Timer::ReoTimeout => self.reo_timeout(ctx),
                }
            }
        }
    }

    fn retransmit_timeout(&mut self, ctx: &mut Ctx<'_>) {
        let rto_max = Self::rto_max(ctx);
        match self.state {
            TcpState::SynSent => {
                // Linux 6.x (measured on 6.18): tcp_syn_retries + tcp_syn_linear_timeouts retransmissions; the
                // first `linear` waits stay at the initial RTO, then they double. Defaults: SYNs at 0, 1, 2, 3,
                // 4, 5, 7, 11, 19, 35, 67 s and ETIMEDOUT at 131 s. With linear = 0: 0, 1, 3, ... 63, fail at 127 s.
                let linear = ctx.config.tcp_syn_linear_timeouts;
                if self.retransmits >= ctx.config.tcp_syn_retries + linear {
                    return self.abort(Errno::ETIMEDOUT);
                }
                self.retransmits += 1;
                self.syn_retransmitted = true;
                self.rtt_probe = None;
                self.send_syn(ctx);
                let wait = if self.retransmits <= linear {
                    RTO_INITIAL
                } else {
                    RTO_INITIAL * (1u32 << (self.retransmits - linear).min(20))
                };
                self.rtt.set_rto(wait.min(rto_max));
                self.set_timer(Timer::Retransmit, ctx.now + self.rtt.rto());
            }
            TcpState::SynReceived => {
                let limit = if self.passive { ctx.config.tcp_synack_retries } else { ctx.config.tcp_syn_retries };
                if self.retransmits >= limit {
                    // A passive child just disappears (Linux drops the request sock without a RST).
                    return if self.passive { self.close_now() } else { self.abort(Errno::ETIMEDOUT) };
                }
                self.retransmits += 1;
                self.syn_retransmitted = true;
                self.rtt_probe = None;
                self.send_syn(ctx);
                self.rtt.back_off(rto_max);
                self.set_timer(Timer::Retransmit, ctx.now + self.rtt.rto());
            }
            TcpState::Established
            | TcpState::CloseWait
            | TcpState::FinWait1
            | TcpState::Closing
            | TcpState::LastAck => {
                if self.snd_una == self.snd_max {
                    return; // nothing outstanding
                }
                if self.retransmissions_exhausted(ctx) {
                    return self.abort(Errno::ETIMEDOUT);
                }
                if self.snd_una == self.iss {
                    // Closed in SYN-RECEIVED before our SYN-ACK was acknowledged: that SYN-ACK is what is
                    // outstanding (found by the random-events property test). It counts against the budget like
                    // any retransmission: without the stamp an orphan whose peer fell silent was never given up
                    // (`close/orphan-closed-in-syn-received-gives-up`).
                    if self.retrans_stamp.is_none() {
                        self.retrans_stamp = Some(ctx.now);
                    }
                    self.retransmits += 1;
                    self.syn_retransmitted = true;
                    self.rtt_probe = None;
                    self.rtt.back_off(rto_max);
                    self.send_segment(ctx, TcpFlags::SYN | TcpFlags::ACK, self.iss, &[]);
                    self.set_timer(Timer::Retransmit, ctx.now + self.rtt.rto());
                    return;
                }
                // RFC 6298 5.5-5.6 and RFC 5681 3.1: back off, collapse the window, go back to SND.UNA.
                self.cc.on_retransmit_timeout(self.in_flight(), u32::from(self.snd_mss));
                // RFC 2018 8: "after a retransmit timeout the data sender SHOULD turn off all of the SACKed
                // bits", the receiver being free to have discarded what it SACKed.
                self.sacked.clear();
                self.rack_on_timeout();
                self.rto_high_data = self.snd_max;
                self.retransmits += 1;
                self.rtt_probe = None; // Karn's algorithm
                self.rtt.back_off(rto_max);
                self.snd_nxt = self.snd_una;
                self.output(ctx);
                let wait = self.clamp_to_user_timeout(ctx, self.rtt.rto());
                self.set_timer(Timer::Retransmit, ctx.now + wait);
            }
            _ => {}
        }
    }

    /// The next retransmission timeout, cut short so that it fires when TCP_USER_TIMEOUT runs out rather than a
    /// whole backed-off RTO later (Linux's tcp_clamp_rto_to_user_timeout): the abort then comes on time.
    fn clamp_to_user_timeout(&self, ctx: &Ctx<'_>, rto: Duration) -> Duration {
        let (Some(start), uto) = (self.retrans_stamp, self.sockopts.user_timeout_ms) else { return rto };
        if uto == 0 {
            return rto;
        }
        let left = Duration::from_millis(u64::from(uto)).saturating_sub(ctx.now.saturating_since(start));
        // Past the deadline: fire at once (Linux: one jiffy).
        rto.min(left.max(Duration::from_millis(1)))
    }

    /// Whether the data retransmission budget is spent: TCP_USER_TIMEOUT if set, else tcp_retries2 (or
    /// tcp_orphan_retries for an orphan) turned into time as Linux does.
    fn retransmissions_exhausted(&self, ctx: &Ctx<'_>) -> bool {
        let since = self.retrans_stamp.map_or(Duration::ZERO, |s| ctx.now.saturating_since(s));
        if self.sockopts.user_timeout_ms > 0 {
            return since >= Duration::from_millis(u64::from(self.sockopts.user_timeout_ms));
        }
        let retries = if self.orphan {
            match ctx.config.tcp_orphan_retries {
                0 => 8,
                n => n,
            }
        } else {
            ctx.config.tcp_retries2
        };
        let base = Duration::from_micros(u64::from(ctx.config.tcp_rto_min_us));
        // Time alone, as Linux's retransmits_timed_out (after at least one retransmission): with an RTO above the
        // model's base the budget runs out after fewer than `retries` retransmissions (measured on 6.18: an RTO
        // of 2.85 s and tcp_retries2=3 give up at the second expiry).
        self.retransmits > 0 && since >= model_timeout(retries, base, Self::rto_max(ctx))
    }

    fn persist_timeout(&mut self, ctx: &mut Ctx<'_>) {
        // Data waits, or a FIN not sent yet (it waits behind a zero window like data).
        let fin_waiting = self.fin_seq().is_some_and(|f| self.snd_max <= f);
        if self.snd_wnd > 0 || (self.send_buf.is_empty() && !fin_waiting) {
            self.persist_probes = 0;
            self.persist_shift = 0;
            // An open window smaller than a segment, held back by silly window avoidance with nothing in
            // flight: one segment of what fits (Linux's tcp_write_wakeup).
            return self.output_probe(ctx);
        }
        // Linux's tcp_probe_timer: tcp_retries2 unanswered probes, then the connection is given up at the next
        // expiry (MUST-37 protects only a peer that answers).
        if self.persist_probes >= ctx.config.tcp_retries2 {
            return self.abort(Errno::ETIMEDOUT);
        }
        // Linux's zero-window probe: an ACK carrying the already acknowledged byte SND.UNA - 1, which forces
        // the peer to answer with its current window.
        self.send_segment(ctx, TcpFlags::ACK, self.snd_una - 1u32, &[]);
        self.persist_probes += 1;
        // RFC 9293 SHLD-30: the interval doubles with every probe, up to the RTO's maximum (Linux's
        // tcp_probe0_when: RTO << icsk_backoff, at most TCP_RTO_MAX; the shift stops growing at tcp_retries2).
        if self.persist_shift < ctx.config.tcp_retries2 {
            self.persist_shift += 1;
        }
        let wait = (self.rtt.rto() * (1u32 << self.persist_shift.min(16))).min(Self::rto_max(ctx));
        self.set_timer(Timer::Persist, ctx.now + wait);
    }

    pub(crate) fn keepalive_idle(&self, ctx: &Ctx<'_>) -> Duration {
        Duration::from_secs(u64::from(self.sockopts.keepidle.unwrap_or(ctx.config.tcp_keepalive_time)))
    }

    fn keepalive_timeout(&mut self, ctx: &mut Ctx<'_>) {
        // As Linux's tcp_keepalive_timer: every synchronized state with nothing of ours outstanding, a half-closed
        // FIN-WAIT-2 included (an orphaned one has tcp_fin_timeout instead); FIN-WAIT-1, CLOSING and LAST-ACK
        // always have their FIN in flight.
        let probing = match self.state {
            TcpState::Established | TcpState::CloseWait => true,
            TcpState::FinWait2 => !self.orphan,
            _ => false,
        };
        if !self.sockopts.keepalive || !probing {
            return;
        }
        let idle = self.keepalive_idle(ctx);
        // "It is alive without keepalive": data in flight or waiting has the retransmission timer; look again a
        // whole idle time later.
        if self.keepalive_probes_out == 0 && (self.in_flight() > 0 || !self.send_buf.is_empty()) {
            return self.set_timer(Timer::Keepalive, ctx.now + idle);
        }
        let intvl = Duration::from_secs(u64::from(self.sockopts.keepintvl.unwrap_or(ctx.config.tcp_keepalive_intvl)));
        let probes = self.sockopts.keepcnt.unwrap_or(ctx.config.tcp_keepalive_probes);
        let idle_for = ctx.now.saturating_since(self.last_rcv);
        if idle_for < idle && self.keepalive_probes_out == 0 {
            return self.set_timer(Timer::Keepalive, self.last_rcv + idle);
        }
        if self.keepalive_probes_out >= probes {
            self.send_active_reset(ctx);
            return self.abort(Errno::ETIMEDOUT);
        }
        // RFC 1122 4.2.3.6: a probe carries SEG.SEQ = SND.NXT - 1 so that the peer must acknowledge it.
        self.send_segment(ctx, TcpFlags::ACK, self.snd_max - 1u32, &[]);
        self.keepalive_probes_out += 1;
        self.set_timer(Timer::Keepalive, ctx.now + intvl);
    }

    /// Ends the connection with an error for the application; sends nothing (callers send a RST first when the
    /// RFC asks for one).
    pub(crate) fn abort(&mut self, err: Errno) {
        self.error = Some(err);
        self.aborted = true;
        self.close_now();
    }

    /// "Delete the TCB, enter the CLOSED state": every timer stops. The host buries the TCB when it settles.
    pub(crate) fn close_now(&mut self) {
        self.timers.clear_all();
        self.set_state(TcpState::Closed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_table_next_is_the_earliest_and_due_timers_are_taken_once() {
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        t.set(Timer::Keepalive, Instant::from_secs(7200));
        t.set(Timer::Retransmit, Instant::from_secs(1));
        t.set(Timer::DelayedAck, Instant::from_secs(2));
        assert_eq!(t.next(), Some(Instant::from_secs(1)));
        assert!(!t.take_due(Timer::DelayedAck, Instant::from_secs(1)), "not due yet");
        assert!(t.take_due(Timer::Retransmit, Instant::from_secs(1)), "due at its deadline");
        assert!(!t.take_due(Timer::Retransmit, Instant::from_secs(1)), "taken once");
        assert_eq!(t.next(), Some(Instant::from_secs(2)));
        t.set(Timer::DelayedAck, Instant::from_secs(3));
        assert_eq!(t.get(Timer::DelayedAck), Some(Instant::from_secs(3)), "set replaces");
        t.clear(Timer::DelayedAck);
        assert!(!t.is_armed(Timer::DelayedAck));
        t.clear_all();
        assert_eq!(t.next(), None);
    }

    #[test]
    fn linux_retries2_give_up_time() {
        // Linux documents tcp_retries2 = 15 as "a hypothetical timeout of 924.6 seconds" with a 200 ms RTO.
        let t = model_timeout(15, Duration::from_millis(200), Duration::from_secs(120));
        assert_eq!(t, Duration::from_millis(924_600));
        // tcp_syn_retries = 6 with a 1 s base: the classic 127 s.
        assert_eq!(model_timeout(6, Duration::from_secs(1), Duration::from_secs(120)), Duration::from_secs(127));
    }
}
