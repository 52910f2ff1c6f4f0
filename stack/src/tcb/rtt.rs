//! The retransmission timeout, RFC 6298: smoothed RTT, its variation, and the RTO they give.

use super::RTO_INITIAL;
use core::time::Duration;

/// RFC 6298's estimator, in Linux's form: RTO = SRTT + max(4 RTTVAR, rto_min), capped at rto_max.
///
/// Karn's algorithm (which segments may be timed) is the caller's: it only hands in samples of segments sent once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RttEstimator {
    srtt_us: Option<u64>,
    rttvar_us: u64,
    rto: Duration,
}

impl Default for RttEstimator {
    fn default() -> RttEstimator {
        // RFC 6298 2.1: "Until a round-trip time (RTT) measurement has been made ... the sender SHOULD set RTO <- 1
        // second".
        RttEstimator { srtt_us: None, rttvar_us: 0, rto: RTO_INITIAL }
    }
}

impl RttEstimator {
    /// Takes one measurement `r` (RFC 6298 2.2 for the first, 2.3 after).
    pub(crate) fn sample(&mut self, r: Duration, rto_min: Duration, rto_max: Duration) {
        let r = r.as_micros() as u64;
        let (srtt, rttvar) = match self.srtt_us {
            // 2.2: SRTT <- R, RTTVAR <- R/2.
            None => (r, r / 2),
            // 2.3: RTTVAR <- (1 - 1/4) * RTTVAR + 1/4 * |SRTT - R'|, SRTT <- (1 - 1/8) * SRTT + 1/8 * R'.
            Some(s) => ((7 * s + r) / 8, (3 * self.rttvar_us + s.abs_diff(r)) / 4),
        };
        self.srtt_us = Some(srtt);
        self.rttvar_us = rttvar;
        let rto_min = rto_min.as_micros() as u64;
        let rto_max = rto_max.as_micros() as u64;
        self.rto = Duration::from_micros((srtt + (4 * rttvar).max(rto_min)).min(rto_max));
    }

    /// RFC 6298 5.5: "set RTO <- RTO * 2 ("back off the timer")", bounded by `rto_max` (2.5's maximum).
    pub(crate) fn back_off(&mut self, rto_max: Duration) {
        self.rto = (self.rto * 2).min(rto_max);
    }

    /// Sets the RTO outright: the SYN schedule Linux follows, and RFC 6298 5.7's 3 s after a retransmitted SYN.
    pub(crate) fn set_rto(&mut self, rto: Duration) {
        self.rto = rto;
    }

    /// The current retransmission timeout.
    pub(crate) fn rto(&self) -> Duration {
        self.rto
    }

    /// Whether a measurement was ever taken.
    pub(crate) fn has_sample(&self) -> bool {
        self.srtt_us.is_some()
    }

    /// SRTT in microseconds, once measured.
    pub(crate) fn srtt_us(&self) -> Option<u64> {
        self.srtt_us
    }

    /// RTTVAR in microseconds.
    pub(crate) fn rttvar_us(&self) -> u64 {
        self.rttvar_us
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(120);

    #[test]
    fn first_sample_sets_srtt_and_half_of_it_as_rttvar() {
        let mut e = RttEstimator::default();
        assert_eq!(e.rto(), Duration::from_secs(1), "RFC 6298 2.1");
        e.sample(Duration::from_millis(100), MIN, MAX);
        assert_eq!((e.srtt_us(), e.rttvar_us()), (Some(100_000), 50_000));
        // 100 ms + max(4 * 50 ms, 200 ms) = 300 ms.
        assert_eq!(e.rto(), Duration::from_millis(300));
    }

    #[test]
    fn later_samples_use_the_gains_of_2_3() {
        let mut e = RttEstimator::default();
        e.sample(Duration::from_millis(100), MIN, MAX);
        e.sample(Duration::from_millis(180), MIN, MAX);
        // RTTVAR = 3/4 * 50 + 1/4 * |100 - 180| = 57.5 ms; SRTT = 7/8 * 100 + 1/8 * 180 = 110 ms.
        assert_eq!((e.srtt_us(), e.rttvar_us()), (Some(110_000), 57_500));
        assert_eq!(e.rto(), Duration::from_millis(340));
    }

    #[test]
    fn rto_min_is_a_floor_on_the_variance_term_and_rto_max_a_cap() {
        let mut e = RttEstimator::default();
        e.sample(Duration::from_millis(1), MIN, MAX);
        assert_eq!(e.rto(), Duration::from_micros(1_000 + 200_000), "Linux: SRTT + max(4 RTTVAR, rto_min)");
        e.sample(Duration::from_secs(400), MIN, MAX);
        assert_eq!(e.rto(), MAX);
    }

    #[test]
    fn back_off_doubles_up_to_the_cap() {
        let mut e = RttEstimator::default();
        e.back_off(MAX);
        assert_eq!(e.rto(), Duration::from_secs(2));
        e.set_rto(Duration::from_secs(100));
        e.back_off(MAX);
        assert_eq!(e.rto(), MAX);
    }
}
