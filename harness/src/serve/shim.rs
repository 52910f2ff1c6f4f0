//! The link shim between the TUN device and the served stack: [`LinkConfig`]'s drops, duplicates and delays (the
//! simulator's semantics), decided so that a run repeats from its seed on a real clock. The simulator's link
//! draws from one random sequence in the order datagrams come, which on a real clock depends on timing (how the
//! kernel's ACKs fall, when a timer fires); here each decision is a hash of the seed and of what the datagram
//! is: its direction, its connection (numbered in the order their SYNs came), its sequence and acknowledgment
//! numbers relative to the two initial sequence numbers (which are random on Linux and clock-driven on the
//! stack), its flags and length, and how many times that same segment has crossed before.
//!
//! New data is lost by position, not by segment: a sender cuts its bytes into segments as timing lets it (a
//! write that found the buffer full, a corked tail), so segment boundaries move between runs. Each 64-byte cell
//! of each direction's sequence space has one byte that the seed marks with the probability that makes a
//! 1448-byte segment (1500-byte MTU, timestamps) lost at `drop_permille`, and the first crossing of new data is
//! dropped when it holds a marked byte. So one seed loses the same bytes' first transmission in every run;
//! everything else (retransmissions, ACKs, duplication, delay) gets the per-datagram decision.

use std::collections::HashMap;
use std::time::Duration;
use tcpdrill_stack::sim::LinkConfig;
use tcpdrill_stack::Instant;

/// A TCP/IPv4 datagram's connection, as (source, destination) address and port.
type Flow = ([u8; 4], u16, [u8; 4], u16);

/// What a datagram is, for its fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    dst: u8,
    connection: u32,
    seq: u32,
    ack: u32,
    flags: u8,
    len: u32,
    crossing: u32,
}

/// A marked byte whose new data the shim dropped: the destination, the connection and the byte's offset from its
/// direction's ISN. What a run's losses were, to compare runs by.
pub type Loss = (u8, u32, u32);

/// The sequence-space cell that has one marked byte.
const CELL: u32 = 64;

/// The most entries a table of the shim holds before it starts afresh (some 100 MB of datagrams' worth).
const MAX_ENTRIES: usize = 1 << 20;

/// The shim.
pub struct Shim {
    cfg: LinkConfig,
    seed: u64,
    /// Each connection's number and the initial sequence numbers of its two directions (source first).
    connections: HashMap<Flow, (u32, u32)>,
    count: u32,
    crossings: HashMap<Key, u32>,
    /// The end of the data sent so far in each direction of each connection (relative).
    sent_up_to: HashMap<(u32, u8), u32>,
    /// (arrival, order of sending, destination, bytes).
    queue: Vec<(Instant, u64, usize, Vec<u8>)>,
    sent: u64,
    /// Datagrams handed to the shim, dropped, duplicated.
    pub stats: [u64; 3],
    /// The marked bytes whose new data was dropped.
    pub losses: Vec<Loss>,
    /// Per million: the chance that a cell has a marked byte.
    mark_ppm: u64,
}

/// SplitMix64's finalizer: a well-mixed 64-bit hash step.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Shim {
    /// A shim doing what `cfg` says, its decisions keyed by `seed`.
    pub fn new(cfg: LinkConfig, seed: u64) -> Shim {
        Shim {
            cfg,
            seed,
            connections: HashMap::new(),
            count: 0,
            crossings: HashMap::new(),
            sent_up_to: HashMap::new(),
            queue: Vec::new(),
            sent: 0,
            stats: [0; 3],
            losses: Vec::new(),
            // 1 - (1 - p)^(CELL / 1448): a 1448-byte segment spans that many cells.
            mark_ppm: ((1.0 - (1.0 - f64::from(cfg.drop_permille) / 1000.0).powf(f64::from(CELL) / 1448.0)) * 1e6)
                .round() as u64,
        }
    }

    /// The marked bytes of new data `k` holds.
    fn marks(&self, k: &Key) -> Vec<u32> {
        // In u64, so that a segment that wraps the 32-bit space is one range; cells are numbered modulo the
        // sequence space (2^32 / CELL of them), so positions past 4 GiB wrap as sequence numbers do.
        let (start, end) = (u64::from(k.seq), u64::from(k.seq) + u64::from(k.len));
        let cells = (1u64 << 32) / u64::from(CELL);
        (start / u64::from(CELL)..=(end - 1) / u64::from(CELL))
            .filter_map(|c| {
                let h = mix(mix(self.seed ^ 0x4d41_524b) ^ u64::from(k.dst)) ^ u64::from(k.connection);
                let h = mix(mix(h) ^ (c % cells));
                let at = c * u64::from(CELL) + (h >> 32) % u64::from(CELL);
                ((h % 1_000_000) < self.mark_ppm && (start..end).contains(&at)).then_some(at as u32)
            })
            .collect()
    }

    /// The key of TCP/IPv4 datagram `d` towards `dst`, or `None` for anything else (decided by a counter).
    fn key(&mut self, dst: usize, d: &[u8]) -> Option<Key> {
        let ihl = usize::from(*d.first()? & 0x0f) * 4;
        if d[0] >> 4 != 4 || d.get(9) != Some(&6) || d.len() < ihl + 20 {
            return None;
        }
        let t = &d[ihl..];
        let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let (src, dst_ip) = ([d[12], d[13], d[14], d[15]], [d[16], d[17], d[18], d[19]]);
        let (sport, dport) = (u16::from_be_bytes([t[0], t[1]]), u16::from_be_bytes([t[2], t[3]]));
        let (seq, ack, flags) = (be32(&t[4..]), be32(&t[8..]), t[13]);
        let len = (d.len() - ihl - usize::from(t[12] >> 4) * 4) as u32;
        let flow = (src, sport, dst_ip, dport);
        let back = (dst_ip, dport, src, sport);
        if flags & 0x02 != 0 {
            // A SYN fixes its direction's initial sequence number; a SYN-ACK joins its connection; a SYN sent
            // again keeps its number.
            let known = self.connections.get(&flow).filter(|c| c.1 == seq).map(|c| c.0);
            let connection = match (known, self.connections.get(&back)) {
                (Some(n), _) => n,
                (None, Some(&(n, _))) if flags & 0x10 != 0 => n,
                _ => {
                    self.count += 1;
                    self.count
                }
            };
            if self.connections.len() >= MAX_ENTRIES {
                self.connections.clear();
                self.sent_up_to.clear();
            }
            self.connections.insert(flow, (connection, seq));
        }
        let (connection, isn) = *self.connections.get(&flow)?;
        let peer_isn = self.connections.get(&back).map_or(0, |c| c.1);
        // A data segment is its bytes: the ACK it carries and its PSH depend on when the sender wrote and what
        // had arrived, which timing decides. An ACK alone is the acknowledgment it carries.
        let key = Key {
            dst: dst as u8,
            connection,
            seq: seq.wrapping_sub(isn),
            ack: if flags & 0x10 != 0 && len == 0 { ack.wrapping_sub(peer_isn) } else { 0 },
            flags: if len == 0 { flags } else { flags & 0x07 },
            len,
            crossing: 0,
        };
        if self.crossings.len() >= MAX_ENTRIES {
            // A bound on a long serve's memory: repeats are counted afresh from here on.
            self.crossings.clear();
        }
        let n = self.crossings.entry(key).or_insert(0);
        *n += 1;
        Some(Key { crossing: *n, ..key })
    }

    /// Three independent draws in 0..1000, 0..1000 and 0..=u64::MAX for `d`.
    fn draws(&mut self, dst: usize, d: &[u8]) -> (u64, Option<Key>) {
        let key = self.key(dst, d);
        let h = match key {
            Some(k) => {
                let mut h = mix(self.seed ^ 0x5348_494d);
                for v in [k.dst as u32, k.connection, k.seq, k.ack, k.flags as u32, k.len, k.crossing] {
                    h = mix(h ^ u64::from(v));
                }
                h
            }
            None => mix(self.seed ^ self.stats[0]),
        };
        (h, key)
    }

    /// Puts a datagram on the shim towards `dst` (0 the stack, 1 the kernel) at `now`.
    pub fn send(&mut self, now: Instant, dst: usize, d: Vec<u8>) {
        self.stats[0] += 1;
        let (h, key) = self.draws(dst, &d);
        let mut new_data = false;
        if let Some(k) = key.filter(|k| k.len > 0) {
            // Relative sequence numbers compared as sequence numbers: they wrap after 4 GiB.
            let end = self.sent_up_to.entry((k.connection, k.dst)).or_insert(0);
            new_data = k.seq.wrapping_sub(*end) as i32 >= 0;
            let this_end = k.seq.wrapping_add(k.len);
            if this_end.wrapping_sub(*end) as i32 > 0 {
                *end = this_end;
            }
        }
        let lost = match key.filter(|_| new_data) {
            Some(k) => {
                let marks = self.marks(&k);
                if self.losses.len() < MAX_ENTRIES {
                    self.losses.extend(marks.iter().map(|&at| (k.dst, k.connection, at)));
                }
                !marks.is_empty()
            }
            None => (h % 1000) < u64::from(self.cfg.drop_permille),
        };
        if lost {
            self.stats[1] += 1;
            return;
        }
        let copies = if ((h >> 10) % 1000) < u64::from(self.cfg.dup_permille) { 2 } else { 1 };
        self.stats[2] += copies - 1;
        let spread = self.cfg.max_delay.saturating_sub(self.cfg.min_delay).as_micros() as u64;
        for copy in 0..copies {
            let delay = self.cfg.min_delay + Duration::from_micros(mix(h ^ (copy + 1)) % (spread + 1));
            self.sent += 1;
            self.queue.push((now + delay, self.sent, dst, d.clone()));
        }
    }

    /// When the next datagram arrives.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.queue.iter().map(|q| q.0).min()
    }

    /// Takes every datagram due at `now`, in arrival order.
    pub fn due(&mut self, now: Instant) -> Vec<(usize, Vec<u8>)> {
        if self.queue.iter().all(|q| q.0 > now) {
            return Vec::new();
        }
        self.queue.sort_by_key(|q| (q.0, q.1));
        let n = self.queue.iter().take_while(|q| q.0 <= now).count();
        self.queue.drain(..n).map(|q| (q.2, q.3)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};
    use tcpdrill_stack::wire::{TcpDatagram, TcpFlags, TcpOptions, TcpRepr};
    use tcpdrill_stack::SeqNum;

    fn segment(sport: u16, seq: u32, flags: TcpFlags, len: usize) -> Vec<u8> {
        let payload = vec![0u8; len];
        let tcp = TcpRepr {
            src_port: sport,
            dst_port: 7,
            seq: SeqNum(seq),
            ack: SeqNum(0),
            flags,
            window: 1000,
            urgent: 0,
            options: TcpOptions::EMPTY,
            payload: &payload,
        };
        let (a, b) = (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)));
        TcpDatagram::new(a, b, tcp).to_vec().unwrap()
    }

    /// One connection's 200,000 bytes in `len`-byte segments from initial sequence number `isn`, through a 10%
    /// lossy shim: the marked bytes lost.
    fn losses(seed: u64, isn: u32, port: u16, len: u32) -> Vec<Loss> {
        let cfg =
            LinkConfig { drop_permille: 100, dup_permille: 0, min_delay: Duration::ZERO, max_delay: Duration::ZERO };
        let mut s = Shim::new(cfg, seed);
        let now = Instant::from_secs(1);
        s.send(now, 0, segment(port, isn, TcpFlags::SYN, 0));
        for i in 0..200_000 / len {
            s.send(now, 0, segment(port, isn.wrapping_add(1 + i * len), TcpFlags::ACK, len as usize));
        }
        s.losses
    }

    #[test]
    fn the_same_bytes_are_lost_for_a_seed_whatever_the_isn_and_port() {
        let a = losses(7, 1_000, 40_000, 1000);
        assert!((8..35).contains(&a.len()), "about 10% of 200 1000-byte segments: {}", a.len());
        assert_eq!(a, losses(7, 3_000_000_000, 51_234, 1000), "relative to the ISN, on any port");
        assert_ne!(a, losses(8, 1_000, 40_000, 1000), "another seed, other losses");
        // Cut otherwise (the same 200,000 bytes in 500-byte segments): the same bytes are lost.
        assert_eq!(a, losses(7, 1_000, 40_000, 500), "by position, whatever the segments");
    }

    /// Each crossing of a segment draws anew: at 50% loss some segments are lost on their second crossing too
    /// and get through on a later one. Were the crossing not in the key, a segment lost twice would be lost for
    /// ever.
    #[test]
    fn a_retransmission_has_a_fate_of_its_own() {
        let cfg =
            LinkConfig { drop_permille: 500, dup_permille: 0, min_delay: Duration::ZERO, max_delay: Duration::ZERO };
        let mut s = Shim::new(cfg, 1);
        let now = Instant::from_secs(1);
        s.send(now, 0, segment(1, 0, TcpFlags::SYN, 0));
        let _ = s.due(now);
        let mut most = 0;
        for i in 0..100u32 {
            let mut tries = 0;
            loop {
                tries += 1;
                assert!(tries < 40, "segment {i} never gets through");
                s.send(now, 0, segment(1, 1 + i * 100, TcpFlags::ACK, 100));
                if !s.due(now).is_empty() {
                    break;
                }
            }
            most = most.max(tries);
        }
        assert!(most >= 3, "some segment was lost on its first two crossings: at most {most} tries");
    }
}
