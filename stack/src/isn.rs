//! Initial sequence numbers per RFC 6528: `ISN = M + F(localip, localport, remoteip, remoteport, secretkey)`,
//! M a clock ticking every 4 microseconds, F a keyed SipHash-2-4. The key comes from the host's seed, so runs
//! are reproducible; the hash makes ISNs unguessable across 4-tuples; the clock makes them grow for one 4-tuple,
//! so that a new incarnation starts beyond the sequence space of the last one.

use crate::time::Instant;
use core::hash::Hasher;
use core::net::{IpAddr, SocketAddr};
use siphasher::sip::SipHasher24;

/// A connection's identity: local and remote socket addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FourTuple {
    /// Our address and port.
    pub local: SocketAddr,
    /// The peer's address and port.
    pub remote: SocketAddr,
}

impl core::fmt::Display for FourTuple {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} <-> {}", self.local, self.remote)
    }
}

/// Keyed hashing of 4-tuples, for ISNs and SYN cookies.
#[derive(Debug, Clone)]
pub struct TupleHasher {
    k0: u64,
    k1: u64,
}

impl TupleHasher {
    /// A hasher whose key is derived from `seed` and a purpose label, so ISNs and cookies use different keys.
    pub fn new(seed: u64, purpose: u64) -> TupleHasher {
        TupleHasher { k0: splitmix(seed ^ purpose), k1: splitmix(seed.rotate_left(17) ^ !purpose) }
    }

    /// Hash of a 4-tuple and an extra word.
    pub fn hash(&self, t: &FourTuple, extra: u64) -> u64 {
        let mut h = SipHasher24::new_with_keys(self.k0, self.k1);
        for a in [t.local, t.remote] {
            match a.ip() {
                IpAddr::V4(ip) => h.write(&ip.octets()),
                IpAddr::V6(ip) => h.write(&ip.octets()),
            }
            h.write_u16(a.port());
        }
        h.write_u64(extra);
        h.finish()
    }
}

/// The RFC 6528 generator.
#[derive(Debug, Clone)]
pub struct IsnGenerator {
    hasher: TupleHasher,
}

impl IsnGenerator {
    /// A generator keyed from `seed`.
    pub fn new(seed: u64) -> IsnGenerator {
        IsnGenerator { hasher: TupleHasher::new(seed, 0x6528) }
    }

    /// The ISN for a connection opened at `now`.
    pub fn isn(&self, now: Instant, t: &FourTuple) -> u32 {
        let m = (now.micros() / 4) as u32;
        m.wrapping_add(self.hasher.hash(t, 0) as u32)
    }
}

/// SplitMix64: expands a seed into well-mixed words (also the host's deterministic random source).
pub fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seq::SeqNum;

    fn tuple(port: u16) -> FourTuple {
        FourTuple { local: "192.168.0.1:8080".parse().unwrap(), remote: SocketAddr::from(([192, 0, 2, 1], port)) }
    }

    #[test]
    fn different_tuples_different_isns() {
        let g = IsnGenerator::new(1);
        let now = Instant::from_secs(5);
        assert_ne!(g.isn(now, &tuple(50000)), g.isn(now, &tuple(50001)));
        assert_eq!(g.isn(now, &tuple(50000)), IsnGenerator::new(1).isn(now, &tuple(50000)), "same seed, same ISN");
        assert_ne!(g.isn(now, &tuple(50000)), IsnGenerator::new(2).isn(now, &tuple(50000)), "the key matters");
    }

    #[test]
    fn one_tuple_advances_with_the_clock() {
        let g = IsnGenerator::new(7);
        let t = tuple(50000);
        let a = SeqNum(g.isn(Instant::from_secs(10), &t));
        let b = SeqNum(g.isn(Instant::from_secs(70), &t));
        // 60 s at one tick per 4 us: 15,000,000 ticks later, as RFC 6528's clock requires.
        assert_eq!(b - a, 15_000_000);
    }
}
