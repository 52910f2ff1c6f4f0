//! Deterministic simulation for tests, fuzzing and benchmarks.
//!
//! - [`Link`]: a seeded link that drops, duplicates and delays (and so reorders) datagrams.
//! - [`Pair`]: two hosts on one virtual clock over a link (quinn-proto's test `Pair`): [`Pair::step`] jumps to
//!   the next delivery or timer, [`transfer`] runs a whole connection: handshake, data both ways, close.
//! - [`Op`] and [`run_ops`]: arbitrary sequences of segments, socket calls and time steps into one host, with
//!   the stack's invariants checked after every step; the `stack_events` fuzz target and a property test.

use crate::config::Config;
use crate::errno::Errno;
use crate::host::{Domain, Fd, Host, HostEvent, Shutdown, SockOptName, SockOptValue};
use crate::isn::{splitmix, FourTuple};
use crate::seq::SeqNum;
use crate::tcb::TcpState;
use crate::time::Instant;
use crate::wire::{Checksums, TcpDatagram, TcpFlags, TcpOption, TcpOptions, TcpRepr};
use arbitrary::Arbitrary;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;
use std::collections::BTreeMap;

/// A small deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        splitmix(self.0)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// True with probability `permille / 1000`.
    pub fn chance(&mut self, permille: u16) -> bool {
        self.below(1000) < u64::from(permille)
    }
}

/// How a [`Link`] mistreats datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkConfig {
    /// Drop probability, per mille.
    pub drop_permille: u16,
    /// Duplicate probability, per mille.
    pub dup_permille: u16,
    /// Least one-way delay.
    pub min_delay: Duration,
    /// Most one-way delay; a spread between min and max reorders datagrams.
    pub max_delay: Duration,
}

impl LinkConfig {
    /// A perfect link with a fixed delay.
    pub const fn perfect(delay: Duration) -> LinkConfig {
        LinkConfig { drop_permille: 0, dup_permille: 0, min_delay: delay, max_delay: delay }
    }
}

/// Datagrams in flight between two hosts.
#[derive(Debug, Clone)]
pub struct Link {
    cfg: LinkConfig,
    rng: Rng,
    /// (arrival, order of sending, destination host, bytes).
    queue: Vec<(Instant, u64, usize, Vec<u8>)>,
    sent: u64,
    /// Datagrams handed to the link, dropped, duplicated.
    pub stats: [u64; 3],
}

impl Link {
    /// A link with its own seed.
    pub fn new(cfg: LinkConfig, seed: u64) -> Link {
        Link { cfg, rng: Rng::new(seed), queue: Vec::new(), sent: 0, stats: [0; 3] }
    }

    /// Puts a datagram on the link towards host `dst` at `now`.
    pub fn send(&mut self, now: Instant, dst: usize, d: Vec<u8>) {
        self.stats[0] += 1;
        if self.rng.chance(self.cfg.drop_permille) {
            self.stats[1] += 1;
            return;
        }
        let copies = if self.rng.chance(self.cfg.dup_permille) { 2 } else { 1 };
        self.stats[2] += copies - 1;
        for _ in 0..copies {
            let spread = (self.cfg.max_delay.saturating_sub(self.cfg.min_delay)).as_micros() as u64;
            let delay = self.cfg.min_delay + Duration::from_micros(self.rng.below(spread + 1));
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
        self.queue.sort_by_key(|q| (q.0, q.1));
        let n = self.queue.iter().take_while(|q| q.0 <= now).count();
        self.queue.drain(..n).map(|q| (q.2, q.3)).collect()
    }

    /// Datagrams still in flight.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }
}

/// Address of host 0 in a [`Pair`].
pub const ADDR_A: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 1);
/// Address of host 1 in a [`Pair`].
pub const ADDR_B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// Two hosts on one virtual clock over a [`Link`].
#[derive(Debug, Clone)]
pub struct Pair {
    /// Host 0 (192.168.0.1) and host 1 (192.0.2.1).
    pub hosts: [Host; 2],
    /// The link between them.
    pub link: Link,
    /// The shared clock.
    pub now: Instant,
}

impl Pair {
    /// Two hosts with `config`, keyed from `seed`.
    pub fn new(config: Config, seed: u64, link: LinkConfig) -> Pair {
        Pair {
            hosts: [
                Host::new(config.clone(), &[IpAddr::V4(ADDR_A)], seed),
                Host::new(config, &[IpAddr::V4(ADDR_B)], seed.wrapping_add(1)),
            ],
            link: Link::new(link, seed ^ 0x11c),
            now: Instant::from_secs(1),
        }
    }

    /// Moves what the hosts transmit onto the link.
    pub fn collect(&mut self) {
        for (i, h) in self.hosts.iter_mut().enumerate() {
            while let Some(d) = h.poll_transmit() {
                self.link.send(self.now, 1 - i, d);
            }
        }
    }

    /// The next delivery or timer.
    pub fn next_event(&self) -> Option<Instant> {
        [self.link.next_arrival(), self.hosts[0].poll_timeout(), self.hosts[1].poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Jumps to the next event (not past `limit`) and processes it; false when there was none.
    pub fn step(&mut self, limit: Instant) -> bool {
        self.collect();
        let Some(at) = self.next_event().filter(|at| *at <= limit) else { return false };
        self.now = at.max(self.now);
        for (dst, d) in self.link.due(self.now) {
            let _ = self.hosts[dst].receive(self.now, &d);
        }
        for h in &mut self.hosts {
            if h.poll_timeout().is_some_and(|t| t <= self.now) {
                h.on_timeout(self.now);
            }
        }
        self.collect();
        true
    }
}

/// What [`transfer`] measured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransferReport {
    /// Virtual time from connect() to both sides closed.
    pub duration: Duration,
    /// Simulation steps taken.
    pub steps: u64,
    /// Datagrams put on the link, dropped, duplicated.
    pub link: [u64; 3],
}

/// Runs one connection over a [`Pair`]: host 0 connects to host 1, each side sends its data, shuts down
/// writing, reads to end of stream and closes. Checks that every byte arrives exactly once and in order and that
/// both sides end in CLOSED or TIME-WAIT, then that TIME-WAIT expires. Bounded by `max_steps` and a day of
/// virtual time.
pub fn transfer(
    config: Config,
    seed: u64,
    link: LinkConfig,
    data: [&[u8]; 2],
    max_steps: u64,
) -> Result<TransferReport, String> {
    let mut p = Pair::new(config, seed, link);
    let start = p.now;
    let limit = start + Duration::from_secs(86_400);
    let server = SocketAddr::new(IpAddr::V4(ADDR_B), 8080);
    let l = p.hosts[1].socket(Domain::Inet).map_err(|e| e.to_string())?;
    p.hosts[1].bind(l, server).map_err(|e| e.to_string())?;
    p.hosts[1].listen(l, 16).map_err(|e| e.to_string())?;
    let c = p.hosts[0].socket(Domain::Inet).map_err(|e| e.to_string())?;
    match p.hosts[0].connect(p.now, c, server) {
        Err(Errno::EINPROGRESS) => {}
        other => return Err(format!("connect: {other:?}")),
    }
    let mut fds: [Option<Fd>; 2] = [None, None];
    let mut written = [0usize; 2];
    let mut received: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut eof = [false; 2];
    let mut shut = [false; 2];
    let mut closed = [false; 2];
    let mut steps = 0;
    let mut done_at = None;
    loop {
        // The applications: accept, write what fits, read what there is, shut down, close.
        // As a blocking connect() would: the client starts once the handshake completed (shutting down in
        // SYN-SENT would abort the attempt, as on Linux).
        if fds[0].is_none() {
            match p.hosts[0].connect(p.now, c, server) {
                Ok(()) => fds[0] = Some(c),
                Err(Errno::EALREADY) => {}
                Err(e) => return Err(format!("connect: {e}")),
            }
        }
        if fds[1].is_none() {
            if let Ok((fd, _)) = p.hosts[1].accept(l) {
                fds[1] = Some(fd);
            }
        }
        for i in 0..2 {
            let Some(fd) = fds[i].filter(|_| !closed[i]) else { continue };
            let now = p.now;
            let h = &mut p.hosts[i];
            while written[i] < data[i].len() {
                match h.write(now, fd, &data[i][written[i]..]) {
                    Ok(n) => written[i] += n,
                    Err(Errno::EAGAIN) => break,
                    Err(e) => return Err(format!("host {i} write: {e}")),
                }
            }
            if written[i] == data[i].len() && !shut[i] {
                match h.shutdown(now, fd, Shutdown::Write) {
                    Ok(()) => shut[i] = true,
                    Err(e) => return Err(format!("host {i} shutdown: {e}")),
                }
            }
            loop {
                match h.read(now, fd, 65_536, false) {
                    Ok(d) if d.is_empty() => {
                        eof[i] = true;
                        break;
                    }
                    Ok(d) => received[i].extend_from_slice(&d),
                    Err(Errno::EAGAIN) => break,
                    Err(e) => return Err(format!("host {i} read: {e} after {} bytes", received[i].len())),
                }
            }
            if eof[i] && shut[i] {
                h.close(now, fd).map_err(|e| e.to_string())?;
                closed[i] = true;
            }
        }
        for h in &p.hosts {
            h.check_invariants()?;
        }
        if closed == [true, true] && done_at.is_none() {
            done_at = Some(p.now);
        }
        let live = |h: &Host| h.connections().filter(|t| t.state() != TcpState::TimeWait).count();
        if done_at.is_some() && live(&p.hosts[0]) == 0 && live(&p.hosts[1]) == 0 {
            break;
        }
        steps += 1;
        if steps > max_steps {
            return Err(format!("no end after {max_steps} steps: states {:?}", states(&p)));
        }
        if !p.step(limit) {
            return Err(format!("stuck at {}: states {:?}, closed {closed:?}", p.now, states(&p)));
        }
    }
    for (i, want) in [(1, data[0]), (0, data[1])] {
        if received[i] != want {
            let first = received[i].iter().zip(want).position(|(a, b)| a != b);
            return Err(format!(
                "host {i} received {} bytes, expected {}; first difference at {first:?}",
                received[i].len(),
                want.len()
            ));
        }
    }
    let report =
        TransferReport { duration: done_at.unwrap_or(p.now).saturating_since(start), steps, link: p.link.stats };
    // TIME-WAIT ends after 2 MSL.
    while p.step(limit) {}
    if p.hosts.iter().any(|h| h.connections().count() > 0) {
        return Err(format!("connections left after TIME-WAIT: {:?}", states(&p)));
    }
    Ok(report)
}

fn states(p: &Pair) -> Vec<Vec<(FourTuple, TcpState)>> {
    p.hosts.iter().map(|h| h.connections().map(|t| (t.tuple, t.state())).collect()).collect()
}

/// A sequence or acknowledgment number relative to the connection it is aimed at.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum SeqChoice {
    /// RCV.NXT plus a small offset (in-window and just-outside cases).
    RcvNxt(i16),
    /// SND.UNA plus a small offset.
    SndUna(i16),
    /// SND.NXT plus a small offset.
    SndNxt(i16),
    /// Anything.
    Raw(u32),
}

/// Options an injected segment may carry.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum OptChoice {
    /// None.
    None,
    /// MSS.
    Mss(u16),
    /// MSS, SACK-permitted, timestamps, window scale.
    Full(u8, u32, u32),
    /// Timestamps.
    Ts(u32, u32),
    /// A SACK block relative to SND.UNA.
    Sack(u16, u16),
    /// Raw bytes, malformed options included.
    Raw([u8; 8]),
}

/// One step of a [`run_ops`] sequence.
#[derive(Debug, Clone, Arbitrary)]
pub enum Op {
    /// A segment from the peer 192.0.2.1 (port 50000 + `port % 4`) to 192.168.0.1.
    Segment {
        /// Which peer port.
        port: u8,
        /// Flag bits (12 bits used).
        flags: u16,
        /// Sequence number.
        seq: SeqChoice,
        /// Acknowledgment number.
        ack: SeqChoice,
        /// Window.
        window: u16,
        /// Payload length.
        len: u8,
        /// Options.
        opts: OptChoice,
    },
    /// `socket(); connect()` to the peer port.
    Connect(u8),
    /// A listener on 8080 with this backlog (if none yet).
    Listen(u8),
    /// `accept()`.
    Accept,
    /// `write()` of `len` bytes on the fd picked by `fd`.
    Write(u8, u16),
    /// `read()`.
    Read(u8, u16, bool),
    /// `shutdown()`.
    Shutdown(u8, u8),
    /// `close()`.
    Close(u8),
    /// A socket option.
    SetOpt(u8, u8, u16),
    /// Time passes, in milliseconds (timers fire on the way).
    Advance(u16),
    /// Time passes, in seconds.
    AdvanceSecs(u8),
    /// A sysctl changes.
    Sysctl(u8, u8),
}

/// Peer address used by [`run_ops`].
pub const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The peer's ISN in [`run_ops`]: payload byte at sequence number `s` is [`stream_byte`]`(s)`.
pub const PEER_ISN: u32 = 0x4000_0000;

/// The byte the peer sends at sequence number `s`, whatever segment carries it: delivered data can then be
/// checked for duplication and order by position alone.
pub fn stream_byte(s: SeqNum) -> u8 {
    (s.0.wrapping_mul(0x9e37_79b1) >> 24) as u8
}

/// Applies `ops` to a fresh host and checks after every step: no panic; the host's invariants (SND.UNA <=
/// SND.NXT, queues consistent); every state change along RFC 9293's diagram; RCV.NXT never going back; every
/// byte the application reads is the peer's byte for that position (nothing delivered twice or out of order).
pub fn run_ops(ops: &[Op]) -> Result<(), String> {
    let local = IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1));
    let mut h = Host::new(Config::default(), &[local], 7);
    let mut now = Instant::from_secs(1);
    let mut listener: Option<Fd> = None;
    let mut fds: Vec<Fd> = Vec::new();
    let mut read_pos: BTreeMap<Fd, u64> = BTreeMap::new();
    let mut rcv_nxt_seen: BTreeMap<(FourTuple, u32, u32), SeqNum> = BTreeMap::new();
    let pick = |fds: &[Fd], i: u8| (!fds.is_empty()).then(|| fds[usize::from(i) % fds.len()]);
    for (step, op) in ops.iter().enumerate() {
        let ctx = |e: String| format!("step {step} ({op:?}): {e}");
        match *op {
            Op::Segment { port, flags, seq, ack, window, len, opts } => {
                let remote = SocketAddr::new(IpAddr::V4(PEER), 50_000 + u16::from(port % 4));
                let tcb = h.connections().find(|t| t.tuple.remote == remote);
                let local_port = tcb.map_or(8080, |t| t.tuple.local.port());
                let (snd_una, snd_nxt, _, rcv_nxt) =
                    tcb.map_or((SeqNum(0), SeqNum(0), 0, SeqNum(PEER_ISN)), |t| t.seq_vars());
                let resolve = |c: SeqChoice| match c {
                    SeqChoice::RcvNxt(d) => rcv_nxt + d as i32 as u32,
                    SeqChoice::SndUna(d) => snd_una + d as i32 as u32,
                    SeqChoice::SndNxt(d) => snd_nxt + d as i32 as u32,
                    SeqChoice::Raw(v) => SeqNum(v),
                };
                let flags = TcpFlags(flags & 0x0fff);
                let seq = if flags.syn() && !flags.ack() && tcb.is_none() { SeqNum(PEER_ISN) } else { resolve(seq) };
                let ack = resolve(ack);
                let data_start = seq + u32::from(flags.syn());
                let payload: Vec<u8> = (0..u32::from(len)).map(|i| stream_byte(data_start + i)).collect();
                let mut options = match opts {
                    OptChoice::None => TcpOptions::EMPTY,
                    OptChoice::Mss(m) => TcpOptions::from_options(&[TcpOption::Mss(m)]).unwrap_or_default(),
                    OptChoice::Full(ws, v, e) => TcpOptions::from_options(&[
                        TcpOption::Mss(1460),
                        TcpOption::SackPermitted,
                        TcpOption::Timestamps { tsval: v, tsecr: e },
                        TcpOption::Nop,
                        TcpOption::WindowScale(ws),
                    ])
                    .unwrap_or_default(),
                    OptChoice::Ts(v, e) => TcpOptions::from_options(&[
                        TcpOption::Nop,
                        TcpOption::Nop,
                        TcpOption::Timestamps { tsval: v, tsecr: e },
                    ])
                    .unwrap_or_default(),
                    OptChoice::Sack(a, b) => {
                        let blocks = crate::wire::SackBlocks::new(&[(
                            snd_una + u32::from(a),
                            snd_una + u32::from(a) + u32::from(b),
                        )]);
                        blocks
                            .and_then(|b| {
                                TcpOptions::from_options(&[TcpOption::Nop, TcpOption::Nop, TcpOption::Sack(b)]).ok()
                            })
                            .unwrap_or_default()
                    }
                    OptChoice::Raw(b) => TcpOptions::from_bytes(&b).unwrap_or_default(),
                };
                options.pad();
                let repr = TcpRepr {
                    src_port: remote.port(),
                    dst_port: local_port,
                    seq,
                    ack,
                    flags,
                    window,
                    urgent: 0,
                    options,
                    payload: &payload,
                };
                let d = TcpDatagram::new(IpAddr::V4(PEER), local, repr).to_vec().map_err(|e| ctx(e.to_string()))?;
                h.receive(now, &d).map_err(|e| ctx(format!("our own datagram was refused: {e}")))?;
            }
            Op::Connect(port) => {
                if let Ok(fd) = h.socket(Domain::Inet) {
                    let _ = h.connect(now, fd, SocketAddr::new(IpAddr::V4(PEER), 50_000 + u16::from(port % 4)));
                    fds.push(fd);
                }
            }
            Op::Listen(backlog) => {
                if listener.is_none() {
                    let fd = h.socket(Domain::Inet).map_err(|e| ctx(e.to_string()))?;
                    let _ = h.setsockopt(now, fd, SockOptName::ReuseAddr, SockOptValue::Int(1));
                    if h.bind(fd, SocketAddr::new(local, 8080)).is_ok() && h.listen(fd, i32::from(backlog % 8)).is_ok()
                    {
                        listener = Some(fd);
                    } else {
                        let _ = h.close(now, fd);
                    }
                }
            }
            Op::Accept => {
                if let Some(l) = listener {
                    if let Ok((fd, _)) = h.accept(l) {
                        fds.push(fd);
                    }
                }
            }
            Op::Write(i, len) => {
                if let Some(fd) = pick(&fds, i) {
                    let _ = h.write(now, fd, &vec![0xab; usize::from(len)]);
                }
            }
            Op::Read(i, len, peek) => {
                if let Some(fd) = pick(&fds, i) {
                    let irs = h.fd_connection(fd).map(|t| t.isn_pair().1);
                    if let (Ok(data), Some(irs)) = (h.read(now, fd, usize::from(len), peek), irs) {
                        let pos = read_pos.entry(fd).or_insert(0);
                        for (k, b) in data.iter().enumerate() {
                            let s = irs + 1u32 + (*pos as u32).wrapping_add(k as u32);
                            if *b != stream_byte(s) {
                                return Err(ctx(format!(
                                    "byte {} of fd {fd} is {b:#x}, the peer sent {:#x} there",
                                    *pos + k as u64,
                                    stream_byte(s)
                                )));
                            }
                        }
                        if !peek {
                            *pos += data.len() as u64;
                        }
                    }
                }
            }
            Op::Shutdown(i, how) => {
                if let Some(fd) = pick(&fds, i) {
                    let how = [Shutdown::Read, Shutdown::Write, Shutdown::Both][usize::from(how % 3)];
                    let _ = h.shutdown(now, fd, how);
                }
            }
            Op::Close(i) => {
                if let Some(fd) = pick(&fds, i) {
                    let _ = h.close(now, fd);
                    fds.retain(|f| *f != fd);
                    read_pos.remove(&fd);
                }
            }
            Op::SetOpt(i, which, v) => {
                if let Some(fd) = pick(&fds, i) {
                    let (name, val) = match which % 7 {
                        0 => (SockOptName::KeepAlive, SockOptValue::Int(i64::from(v & 1))),
                        1 => (SockOptName::KeepIdle, SockOptValue::Int(i64::from(v % 100 + 1))),
                        2 => {
                            (SockOptName::Linger, SockOptValue::Linger { onoff: v & 1 == 1, linger: u32::from(v >> 8) })
                        }
                        3 => (SockOptName::NoDelay, SockOptValue::Int(i64::from(v & 1))),
                        4 => (SockOptName::UserTimeout, SockOptValue::Int(i64::from(v))),
                        5 => (SockOptName::RcvBuf, SockOptValue::Int(i64::from(v))),
                        _ => (SockOptName::MaxSeg, SockOptValue::Int(i64::from(v))),
                    };
                    let _ = h.setsockopt(now, fd, name, val);
                    let _ = h.getsockopt(fd, SockOptName::Info);
                }
            }
            Op::Advance(ms) => now = advance(&mut h, now, Duration::from_millis(u64::from(ms))),
            Op::AdvanceSecs(s) => now = advance(&mut h, now, Duration::from_secs(u64::from(s))),
            Op::Sysctl(which, v) => {
                let (name, val) = match which % 5 {
                    0 => ("tcp_rfc1337", v % 2),
                    1 => ("tcp_syncookies", v % 3),
                    2 => ("tcp_abort_on_overflow", v % 2),
                    3 => ("tcp_timestamps", v % 2),
                    _ => ("tcp_sack", v % 2),
                };
                h.set_knob(name, &val.to_string()).map_err(|e| ctx(e.to_string()))?;
            }
        }
        while let Some(d) = h.poll_transmit() {
            TcpDatagram::parse(&d, Checksums::Verify)
                .map_err(|e| ctx(format!("the stack sent a bad datagram: {e}")))?;
        }
        h.check_invariants().map_err(ctx)?;
        while let Some(event) = h.poll_event() {
            let HostEvent::StateChange { from, to, tuple, .. } = event else { continue };
            if !from.may_become(to) {
                return Err(ctx(format!("{tuple}: {from} -> {to} is not in RFC 9293's diagram")));
            }
            if to == TcpState::Closed || from == TcpState::Closed {
                // A connection ended or a new incarnation began: RCV.NXT starts afresh. (At the same virtual
                // instant RFC 6528 gives a new incarnation the same ISS, so the key alone cannot tell them apart:
                // found by the stack_events fuzzer.)
                rcv_nxt_seen.retain(|(t, _, _), _| *t != tuple);
            }
        }
        for t in h.connections() {
            let (iss, irs) = t.isn_pair();
            let (_, _, _, rcv_nxt) = t.seq_vars();
            if t.state().is_synchronized() {
                let key = (t.tuple, iss.0, irs.0);
                if let Some(prev) = rcv_nxt_seen.insert(key, rcv_nxt) {
                    if rcv_nxt - prev < 0 {
                        return Err(ctx(format!("{}: RCV.NXT went back from {prev} to {rcv_nxt}", t.tuple)));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Puts a handshake in front of `ops` (passive: listen, SYN, ACK, accept; active: connect, SYN-ACK), so that most
/// of the random segments meet a synchronized connection.
pub fn with_handshake(mut ops: Vec<Op>, passive: bool) -> Vec<Op> {
    let seg = |flags, seq, ack, opts| Op::Segment { port: 0, flags, seq, ack, window: 65535, len: 0, opts };
    let mut pre = if passive {
        vec![
            Op::Listen(4),
            seg(0x002, SeqChoice::Raw(0), SeqChoice::Raw(0), OptChoice::Full(7, 100, 0)),
            seg(0x010, SeqChoice::RcvNxt(0), SeqChoice::SndNxt(0), OptChoice::Ts(101, 0)),
            Op::Accept,
        ]
    } else {
        vec![Op::Connect(0), seg(0x012, SeqChoice::Raw(PEER_ISN), SeqChoice::SndNxt(0), OptChoice::Full(7, 100, 0))]
    };
    pre.append(&mut ops);
    pre
}

fn advance(h: &mut Host, now: Instant, d: Duration) -> Instant {
    let end = now + d;
    let mut t = now;
    // Bounded: each call fires at least one timer or stops.
    for _ in 0..10_000 {
        match h.poll_timeout() {
            Some(at) if at <= end => {
                t = at.max(t);
                h.on_timeout(t);
                while h.poll_transmit().is_some() {}
            }
            _ => break,
        }
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_link_transfer() {
        let a: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let b: Vec<u8> = (0..30_000u32).map(|i| (i * 7) as u8).collect();
        let r =
            transfer(Config::default(), 1, LinkConfig::perfect(Duration::from_millis(10)), [&a, &b], 100_000).unwrap();
        assert_eq!(r.link[1], 0);
        assert!(r.duration < Duration::from_secs(5), "{r:?}");
    }

    #[test]
    fn lossy_link_transfer() {
        let a: Vec<u8> = (0..50_000u32).map(|i| (i * 13) as u8).collect();
        let cfg = LinkConfig {
            drop_permille: 100,
            dup_permille: 50,
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(60),
        };
        let r = transfer(Config::default(), 9, cfg, [&a, b"reply"], 1_000_000).unwrap();
        assert!(r.link[1] > 0 && r.link[2] > 0, "the link did drop and duplicate: {r:?}");
    }
}
