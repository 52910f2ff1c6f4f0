//! Congestion control behind a small trait: what the TCB tells it (ACKs, duplicate ACKs, timeouts) and the one
//! thing it asks back (the window). Reno with NewReno's recovery (RFC 5681, RFC 6582) is the only one so far.

use super::INIT_CWND_SEGS;
use crate::seq::SeqNum;

/// What a congestion controller answers to an ACK of new data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnAck {
    /// Nothing for the sender to do beyond sending what the window now allows.
    Continue,
    /// A partial ACK during fast recovery (RFC 6582 3.2 step 5): retransmit the first unacknowledged segment now.
    RetransmitNextHole,
}

/// The events a congestion controller sees, in the units the TCB has (bytes, its send MSS).
pub(crate) trait CongestionControl {
    /// The handshake completed: the initial window (RFC 5681 3.1 / RFC 6928).
    fn on_established(&mut self, mss: u32);
    /// `acked` new bytes are acknowledged, up to `ack`.
    fn on_ack(&mut self, ack: SeqNum, acked: u32, mss: u32) -> OnAck;
    /// A duplicate ACK (RFC 5681 2's definition) with `in_flight` bytes outstanding up to `snd_max`; true asks the
    /// TCB for a fast retransmit of SND.UNA now. Without `may_recover` (a SACK connection, whose losses RACK
    /// finds) the third starts nothing.
    fn on_duplicate_ack(&mut self, in_flight: u32, snd_max: SeqNum, mss: u32, may_recover: bool) -> bool;
    /// RACK marked a segment lost (RFC 8985 6.2) with `in_flight` bytes outstanding up to `snd_max`: true if that
    /// starts a loss recovery (the caller then resends what RACK marked lost), false if one is under way.
    fn on_sack_loss(&mut self, in_flight: u32, snd_max: SeqNum, mss: u32) -> bool;
    /// The retransmission timer fired with `in_flight` bytes outstanding (RFC 5681 3.1, equation 4).
    fn on_retransmit_timeout(&mut self, in_flight: u32, mss: u32);
    /// A tail loss probe's retransmission was needed (RFC 8985 7.4.2): the window is reduced once, as for a loss
    /// repaired without a recovery (Linux: CWR, cwnd = ssthresh).
    fn on_probe_loss(&mut self, mss: u32);
    /// A fast recovery is under way.
    fn in_recovery(&self) -> bool;
    /// The congestion window in bytes.
    fn cwnd(&self) -> u32;
    /// What the sender may have outstanding: the congestion window and any allowance beyond it (RFC 3042's).
    fn send_window(&self) -> u32;
}

/// RFC 5681 Reno with RFC 6582 NewReno recovery, as the reference stack has always done it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reno {
    cwnd: u32,
    ssthresh: u32,
    dup_acks: u32,
    /// RFC 6582's "recover": the highest sequence number sent when fast recovery began.
    recover: Option<SeqNum>,
    /// The send MSS, for Limited Transmit's allowance.
    mss: u32,
    /// FlightSize when the first duplicate came: what RFC 5681 3.2 step 2 halves, since "the amount of data
    /// sent via Limited Transmit MUST NOT be included in this calculation".
    flight_before_dups: u32,
}

impl Default for Reno {
    fn default() -> Reno {
        // RFC 5681 3.1: "The initial value of ssthresh SHOULD be set arbitrarily high".
        Reno { cwnd: 0, ssthresh: u32::MAX, dup_acks: 0, recover: None, mss: 0, flight_before_dups: 0 }
    }
}

impl CongestionControl for Reno {
    fn on_established(&mut self, mss: u32) {
        self.cwnd = INIT_CWND_SEGS * mss;
        self.mss = mss;
    }

    fn on_ack(&mut self, ack: SeqNum, acked: u32, mss: u32) -> OnAck {
        let mut out = OnAck::Continue;
        if let Some(recover) = self.recover {
            if ack >= recover {
                // RFC 6582 3.2 step 3, full ACK: leave recovery, deflate the window to ssthresh.
                self.recover = None;
                self.cwnd = self.ssthresh;
            } else {
                out = OnAck::RetransmitNextHole;
            }
        } else if self.cwnd < self.ssthresh {
            // RFC 5681 3.1 slow start: cwnd += min(N, SMSS).
            self.cwnd += acked.min(mss);
        } else {
            // Congestion avoidance, equation 3: cwnd += SMSS*SMSS/cwnd, at least one byte.
            self.cwnd += (mss * mss / self.cwnd.max(1)).max(1);
        }
        self.dup_acks = 0;
        out
    }

    fn on_duplicate_ack(&mut self, in_flight: u32, snd_max: SeqNum, mss: u32, may_recover: bool) -> bool {
        self.dup_acks += 1;
        if self.dup_acks == 1 {
            self.flight_before_dups = in_flight;
        }
        if self.recover.is_some() {
            // RFC 5681 3.2 step 4: inflate by one segment for each further duplicate.
            self.cwnd += mss;
            false
        } else if self.dup_acks == 3 && may_recover {
            // Steps 2-3: ssthresh = max(FlightSize / 2, 2*SMSS), retransmit, cwnd = ssthresh + 3*SMSS.
            self.ssthresh = (self.flight_before_dups / 2).max(2 * mss);
            self.recover = Some(snd_max);
            self.cwnd = self.ssthresh + 3 * mss;
            true
        } else {
            false
        }
    }

    fn on_sack_loss(&mut self, in_flight: u32, snd_max: SeqNum, mss: u32) -> bool {
        if self.recover.is_some() {
            return false;
        }
        // As the third duplicate: the loss is the same event, seen through the SACK blocks (which data-carrying
        // ACKs bring too, where no duplicate is counted).
        let flight = if self.dup_acks > 0 { self.flight_before_dups.min(in_flight) } else { in_flight };
        self.ssthresh = (flight / 2).max(2 * mss);
        self.recover = Some(snd_max);
        self.cwnd = self.ssthresh + 3 * mss;
        true
    }

    fn on_retransmit_timeout(&mut self, in_flight: u32, mss: u32) {
        self.ssthresh = (in_flight / 2).max(2 * mss);
        // "cwnd MUST be set to no more than the loss window, LW, which equals 1 full-sized segment".
        self.cwnd = mss;
        self.dup_acks = 0;
        self.recover = None;
    }

    fn on_probe_loss(&mut self, mss: u32) {
        // Reno's ssthresh (Linux's tcp_reno_ssthresh: half the window, at least two segments).
        self.ssthresh = (self.cwnd / 2).max(2 * mss);
        self.cwnd = self.ssthresh;
    }

    fn in_recovery(&self) -> bool {
        self.recover.is_some()
    }

    fn cwnd(&self) -> u32 {
        self.cwnd
    }

    fn send_window(&self) -> u32 {
        // RFC 3042 Limited Transmit: on each of the first two duplicate ACKs, one new segment beyond cwnd ("the
        // amount of outstanding data would remain less than or equal to the congestion window plus 2*SMSS"),
        // cwnd itself unchanged, so that a small window still gets its three duplicates.
        if self.recover.is_none() {
            self.cwnd + self.dup_acks.min(2) * self.mss
        } else {
            self.cwnd
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;

    fn established() -> Reno {
        let mut r = Reno::default();
        r.on_established(MSS);
        r
    }

    #[test]
    fn slow_start_grows_by_at_most_one_segment_per_ack() {
        let mut r = established();
        assert_eq!(r.cwnd(), 10 * MSS, "RFC 6928 initial window");
        assert_eq!(r.on_ack(SeqNum(5000), 5000, MSS), OnAck::Continue);
        assert_eq!(r.cwnd(), 11 * MSS, "min(N, SMSS)");
        r.on_ack(SeqNum(5100), 100, MSS);
        assert_eq!(r.cwnd(), 11 * MSS + 100);
    }

    #[test]
    fn third_duplicate_ack_halves_and_enters_recovery_until_recover_is_acked() {
        let mut r = established();
        assert!(!r.on_duplicate_ack(8 * MSS, SeqNum(8000), MSS, true));
        assert!(!r.on_duplicate_ack(8 * MSS, SeqNum(8000), MSS, true));
        assert!(r.on_duplicate_ack(8 * MSS, SeqNum(8000), MSS, true), "fast retransmit on the third");
        assert_eq!(r.cwnd(), 4 * MSS + 3 * MSS, "ssthresh = FlightSize/2, cwnd = ssthresh + 3*SMSS");
        assert!(!r.on_duplicate_ack(8 * MSS, SeqNum(8000), MSS, true));
        assert_eq!(r.cwnd(), 8 * MSS, "inflated by one segment");
        assert_eq!(r.on_ack(SeqNum(3000), 1000, MSS), OnAck::RetransmitNextHole, "partial ACK (RFC 6582)");
        assert_eq!(r.on_ack(SeqNum(8000), 5000, MSS), OnAck::Continue);
        assert_eq!(r.cwnd(), 4 * MSS, "full ACK deflates to ssthresh");
        r.on_ack(SeqNum(9000), 1000, MSS);
        assert_eq!(r.cwnd(), 4 * MSS + MSS / 4, "congestion avoidance: SMSS*SMSS/cwnd");
    }

    #[test]
    fn limited_transmit_allows_one_segment_more_for_each_of_the_first_two_duplicates() {
        let mut r = established();
        r.on_duplicate_ack(10 * MSS, SeqNum(10_000), MSS, true);
        assert_eq!(r.send_window(), 11 * MSS, "RFC 3042: one new segment on the first duplicate");
        r.on_duplicate_ack(11 * MSS, SeqNum(11_000), MSS, true);
        assert_eq!(r.send_window(), 12 * MSS, "and one on the second: cwnd + 2*SMSS outstanding at most");
        assert_eq!(r.cwnd(), 10 * MSS, "cwnd itself unchanged");
        assert!(r.on_duplicate_ack(12 * MSS, SeqNum(12_000), MSS, true), "the third");
        assert_eq!(r.cwnd(), 5 * MSS + 3 * MSS, "ssthresh halves the flight before Limited Transmit's two");
    }

    #[test]
    fn with_sack_duplicates_start_no_recovery_and_a_needed_probe_halves_the_window() {
        let mut r = established();
        for _ in 0..5 {
            assert!(!r.on_duplicate_ack(10 * MSS, SeqNum(10_000), MSS, false), "RACK decides what is lost");
        }
        assert!(!r.in_recovery());
        assert!(r.on_sack_loss(10 * MSS, SeqNum(10_000), MSS), "a segment RACK marked lost starts it");
        assert!(r.in_recovery());
        assert!(!r.on_sack_loss(10 * MSS, SeqNum(10_000), MSS), "once per recovery");
        let mut r = established();
        r.on_probe_loss(MSS);
        assert_eq!(r.cwnd(), 5 * MSS, "RFC 8985 7.4.2: ssthresh = cwnd / 2, and cwnd with it");
        assert!(!r.in_recovery(), "no recovery: the probe repaired it");
    }

    #[test]
    fn timeout_collapses_to_one_segment_with_ssthresh_at_least_two() {
        let mut r = established();
        r.on_retransmit_timeout(MSS, MSS);
        assert_eq!(r.cwnd(), MSS);
        r.on_ack(SeqNum(1000), 1000, MSS);
        assert_eq!(r.cwnd(), 2 * MSS, "slow start again below ssthresh = 2*SMSS");
        r.on_ack(SeqNum(2000), 1000, MSS);
        assert_eq!(r.cwnd(), 2 * MSS + MSS / 2, "then congestion avoidance");
    }
}
