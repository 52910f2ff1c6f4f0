//! LISTEN sockets (RFC 9293 3.10.7.2): the SYN queue, the accept queue, their overflow policy, and SYN cookies.
//!
//! Queue rules follow Linux (tcp_conn_request, tcp_check_req), so that scripts pass on both:
//! - the SYN queue (children in SYN-RECEIVED) is full when it holds more than `backlog` entries (measured on
//!   6.18: `listen(fd, 0)` still answers one SYN); a SYN finding it full gets a cookie
//!   if `tcp_syncookies` >= 1, else it is dropped. `tcp_syncookies = 2` always answers with a cookie;
//! - the accept queue is full when it holds more than `backlog` (Linux's `sk_acceptq_is_full` is `>`): a SYN
//!   is then dropped, and a third ACK is dropped too (the child stays in SYN-RECEIVED and its SYN-ACK timer
//!   keeps running) or, with `tcp_abort_on_overflow = 1`, answered with a RST;
//! - with cookies off, a SYN is also dropped once fewer than a quarter of `tcp_max_syn_backlog` slots are free.

use crate::isn::{FourTuple, TupleHasher};
use crate::seq::SeqNum;
use crate::tcb::SockOpts;
use crate::time::Instant;
use core::net::SocketAddr;
use std::collections::{BTreeSet, VecDeque};

/// MSS values a SYN cookie can encode (Linux's msstab).
pub const COOKIE_MSS: [u16; 4] = [536, 1300, 1440, 1460];
/// A cookie's time counter ticks every 64 s; a cookie is accepted during the tick it was made and the next.
const COOKIE_TICK_SECS: u64 = 64;

/// One listening socket.
#[derive(Debug, Clone)]
pub struct Listener {
    /// The address it listens on (IP may be unspecified).
    pub local: SocketAddr,
    /// listen()'s backlog, capped at `somaxconn`.
    pub backlog: u32,
    /// Children in SYN-RECEIVED.
    pub syn_queue: BTreeSet<FourTuple>,
    /// Children established and not yet accepted, oldest first.
    pub accept_queue: VecDeque<FourTuple>,
    /// Options children inherit.
    pub sockopts: SockOpts,
}

impl Listener {
    pub(crate) fn new(local: SocketAddr, backlog: u32, sockopts: SockOpts) -> Listener {
        Listener { local, backlog, syn_queue: BTreeSet::new(), accept_queue: VecDeque::new(), sockopts }
    }

    /// Linux's `sk_acceptq_is_full`.
    pub fn accept_queue_full(&self) -> bool {
        self.accept_queue.len() > self.backlog as usize
    }

    /// Linux's `inet_csk_reqsk_queue_is_full` (`>`, as measured on 6.18).
    pub fn syn_queue_full(&self) -> bool {
        self.syn_queue.len() > self.backlog as usize
    }
}

/// SYN cookies: the ISS of a SYN-ACK sent without keeping state encodes a coarse time, the MSS index and a keyed
/// hash of the 4-tuple and the peer's ISN; the ACK's SEG.ACK - 1 gives it back.
///
/// Layout: 5 bits of time counter, 2 bits of MSS index, 25 bits of hash.
#[derive(Debug, Clone)]
pub struct SynCookies {
    hasher: TupleHasher,
}

impl SynCookies {
    /// Keyed from the host's seed.
    pub fn new(seed: u64) -> SynCookies {
        SynCookies { hasher: TupleHasher::new(seed, 0xc00c1e) }
    }

    fn tick(now: Instant) -> u64 {
        now.micros() / 1_000_000 / COOKIE_TICK_SECS
    }

    fn hash(&self, t: &FourTuple, tick: u64, mss_idx: u32, irs: SeqNum) -> u32 {
        (self.hasher.hash(t, (tick << 40) ^ (u64::from(mss_idx) << 32) ^ u64::from(irs.0)) as u32) & 0x01ff_ffff
    }

    /// The cookie ISS for a SYN with sequence number `irs` announcing `peer_mss`.
    pub fn make(&self, now: Instant, t: &FourTuple, irs: SeqNum, peer_mss: u16) -> SeqNum {
        let mss_idx = COOKIE_MSS.iter().rposition(|&m| m <= peer_mss).unwrap_or(0) as u32;
        let tick = Self::tick(now);
        SeqNum((((tick & 0x1f) as u32) << 27) | (mss_idx << 25) | self.hash(t, tick, mss_idx, irs))
    }

    /// Checks the cookie an ACK returns (`ack - 1`, for a SYN with sequence `seq - 1`); gives the MSS it encodes.
    pub fn check(&self, now: Instant, t: &FourTuple, seq: SeqNum, ack: SeqNum) -> Option<u16> {
        let cookie = (ack - 1u32).0;
        let irs = seq - 1u32;
        let mss_idx = (cookie >> 25) & 3;
        let now_tick = Self::tick(now);
        [now_tick, now_tick.wrapping_sub(1)]
            .into_iter()
            .filter(|tick| (tick & 0x1f) as u32 == cookie >> 27)
            .any(|tick| self.hash(t, tick, mss_idx, irs) == cookie & 0x01ff_ffff)
            .then_some(COOKIE_MSS[mss_idx as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple() -> FourTuple {
        FourTuple { local: "192.168.0.1:8080".parse().unwrap(), remote: "192.0.2.1:50000".parse().unwrap() }
    }

    #[test]
    fn cookie_round_trip_and_expiry() {
        let c = SynCookies::new(42);
        let t = tuple();
        let irs = SeqNum(1000);
        let iss = c.make(Instant::from_secs(100), &t, irs, 1460);
        assert_eq!(c.check(Instant::from_secs(101), &t, irs + 1u32, iss + 1u32), Some(1460));
        assert_eq!(c.check(Instant::from_secs(100 + 64), &t, irs + 1u32, iss + 1u32), Some(1460), "next tick");
        assert_eq!(c.check(Instant::from_secs(100 + 200), &t, irs + 1u32, iss + 1u32), None, "expired");
        assert_eq!(c.check(Instant::from_secs(101), &t, irs + 2u32, iss + 1u32), None, "another peer ISN");
        assert_eq!(c.check(Instant::from_secs(101), &t, irs + 1u32, iss + 2u32), None, "another cookie");
        let other = FourTuple { remote: "192.0.2.1:50001".parse().unwrap(), ..t };
        assert_eq!(c.check(Instant::from_secs(101), &other, irs + 1u32, iss + 1u32), None, "another tuple");
        let small = c.make(Instant::from_secs(100), &t, irs, 1000);
        assert_eq!(c.check(Instant::from_secs(100), &t, irs + 1u32, small + 1u32), Some(536), "MSS rounds down");
    }
}
