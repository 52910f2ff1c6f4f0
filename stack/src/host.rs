//! A host: addresses, the 4-tuple demux, listeners, the fd table and a BSD-socket-like API.
//!
//! The surface has quinn-proto's four families:
//! - getters: [`Host::tcp_state`], [`Host::connections`], [`Host::poll`], ...
//! - input, each taking `now`: [`Host::receive`], [`Host::on_timeout`];
//! - application calls, each taking `now`: [`Host::socket`], [`Host::connect`], [`Host::write`], ...;
//! - output: [`Host::poll_transmit`], [`Host::poll_timeout`], [`Host::poll_event`].
//!
//! After any input or call, drain `poll_transmit` and ask `poll_timeout` when to call `on_timeout` next.
//! Calls never block: where a BSD call would, they return `EAGAIN` / `EINPROGRESS` / `EALREADY`, and the caller
//! (the harness's executor) waits on `poll`.

use crate::config::Config;
use crate::coverage::{CallKind, SegmentKind, Stimulus, TimerKind};
use crate::errno::Errno;
use crate::isn::{splitmix, FourTuple, IsnGenerator};
use crate::listen::{CookieUse, Listener, Overflow, SynCookies};
use crate::seq::SeqNum;
use crate::tcb::input::Arrival;
use crate::tcb::output::reset_for;
use crate::tcb::{ChallengeAckBudget, Ctx, SockOpts, Tcb, TcpState, Timer};
use crate::time::Instant;
use crate::wire::{Checksums, TcpDatagram, TcpRepr, WireError};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A file descriptor, as the application sees it. The first is 3, as in a process with stdin/out/err open.
pub type Fd = i32;

/// Address families of `socket()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// AF_INET.
    Inet,
    /// AF_INET6.
    Inet6,
}

/// `shutdown()`'s `how`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// SHUT_RD.
    Read,
    /// SHUT_WR.
    Write,
    /// SHUT_RDWR.
    Both,
}

/// Socket options tcpdrill scripts use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockOptName {
    /// SOL_SOCKET SO_REUSEADDR.
    ReuseAddr,
    /// SOL_SOCKET SO_KEEPALIVE.
    KeepAlive,
    /// SOL_SOCKET SO_LINGER.
    Linger,
    /// SOL_SOCKET SO_ERROR (read-only; reading clears it).
    Error,
    /// SOL_SOCKET SO_RCVBUF.
    RcvBuf,
    /// SOL_SOCKET SO_SNDBUF.
    SndBuf,
    /// IPPROTO_TCP TCP_NODELAY.
    NoDelay,
    /// IPPROTO_TCP TCP_MAXSEG.
    MaxSeg,
    /// IPPROTO_TCP TCP_KEEPIDLE.
    KeepIdle,
    /// IPPROTO_TCP TCP_KEEPINTVL.
    KeepIntvl,
    /// IPPROTO_TCP TCP_KEEPCNT.
    KeepCnt,
    /// IPPROTO_TCP TCP_USER_TIMEOUT.
    UserTimeout,
    /// IPPROTO_TCP TCP_INFO (read-only).
    Info,
}

/// A socket option's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockOptValue {
    /// An int option.
    Int(i64),
    /// `struct linger`.
    Linger {
        /// l_onoff.
        onoff: bool,
        /// l_linger, seconds.
        linger: u32,
    },
    /// `struct tcp_info` (the fields scripts check).
    Info(TcpInfo),
}

/// The parts of Linux's `struct tcp_info` the reference stack fills in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpInfo {
    /// tcpi_state, Linux numbering.
    pub state: u8,
    /// tcpi_retransmits.
    pub retransmits: u32,
    /// tcpi_probes.
    pub probes: u32,
    /// tcpi_snd_wscale.
    pub snd_wscale: u8,
    /// tcpi_rcv_wscale.
    pub rcv_wscale: u8,
    /// tcpi_rto, microseconds.
    pub rto_us: u64,
    /// tcpi_snd_mss.
    pub snd_mss: u32,
    /// tcpi_rtt, microseconds.
    pub rtt_us: u64,
    /// tcpi_rttvar, microseconds.
    pub rttvar_us: u64,
    /// tcpi_snd_cwnd, segments.
    pub snd_cwnd: u32,
    /// tcpi_unacked, bytes here (Linux counts segments).
    pub unacked: u32,
}

/// `poll()` readiness bits, Linux values.
pub mod pollbits {
    /// POLLIN.
    pub const IN: u16 = 0x001;
    /// POLLOUT.
    pub const OUT: u16 = 0x004;
    /// POLLERR.
    pub const ERR: u16 = 0x008;
    /// POLLHUP.
    pub const HUP: u16 = 0x010;
    /// POLLRDHUP.
    pub const RDHUP: u16 = 0x2000;
}

/// Something that happened inside the host, for traces and coverage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostEvent {
    /// A connection changed state.
    StateChange {
        /// When.
        at: Instant,
        /// Which connection.
        tuple: FourTuple,
        /// Old state.
        from: TcpState,
        /// New state.
        to: TcpState,
    },
    /// A listener answered a SYN with a SYN cookie (its SYN queue was full, or `tcp_syncookies=2`), or opened a
    /// connection from the ACK of one.
    SynCookie {
        /// When.
        at: Instant,
        /// Which connection.
        tuple: FourTuple,
        /// The ACK of a cookie opened the connection (else: a cookie SYN-ACK was sent).
        accepted: bool,
    },
}

#[derive(Debug, Clone)]
enum SockState {
    Fresh {
        bound: Option<SocketAddr>,
    },
    Listening {
        local: SocketAddr,
    },
    Conn {
        tuple: FourTuple,
        connect_reported: bool,
    },
    /// The connection ended while the application still holds the fd: unread data, then the error, then EOF.
    Dead(Box<Tcb>),
}

#[derive(Debug, Clone)]
struct Socket {
    domain: Domain,
    state: SockState,
    opts: SockOpts,
    nonblocking: bool,
}

/// The reference TCP host. See the module documentation for the calling convention.
#[derive(Debug, Clone)]
pub struct Host {
    config: Config,
    addrs: Vec<IpAddr>,
    isn: IsnGenerator,
    cookies: SynCookies,
    rng: u64,
    conns: BTreeMap<FourTuple, Tcb>,
    /// Closed children still waiting in an accept queue.
    limbo: BTreeMap<FourTuple, Tcb>,
    listeners: BTreeMap<SocketAddr, Listener>,
    sockets: BTreeMap<Fd, Socket>,
    tx: VecDeque<Vec<u8>>,
    events: VecDeque<HostEvent>,
    challenge: ChallengeAckBudget,
    now: Instant,
    /// Datagrams dropped because they did not parse.
    malformed: u64,
    /// Every (state, stimulus) met, for the transition matrix.
    exercised: BTreeSet<(TcpState, Stimulus)>,
}

const LOOPBACK_LIMIT: usize = 10_000;

impl Host {
    /// A host with `addrs` as its own addresses; `seed` keys the ISN and cookie hashes and the port choice.
    pub fn new(config: Config, addrs: &[IpAddr], seed: u64) -> Host {
        Host {
            config,
            addrs: addrs.to_vec(),
            isn: IsnGenerator::new(seed),
            cookies: SynCookies::new(seed),
            rng: splitmix(seed ^ 0x5eed),
            conns: BTreeMap::new(),
            limbo: BTreeMap::new(),
            listeners: BTreeMap::new(),
            sockets: BTreeMap::new(),
            tx: VecDeque::new(),
            events: VecDeque::new(),
            challenge: ChallengeAckBudget::default(),
            now: Instant::ZERO,
            malformed: 0,
            exercised: BTreeSet::new(),
        }
    }

    /// Every (state, stimulus) pair this host has handled: segments by kind in the state of the connection (or
    /// LISTEN, or CLOSED) they reached, user calls in the state of their socket, timers in their connection's state.
    pub fn exercised(&self) -> &BTreeSet<(TcpState, Stimulus)> {
        &self.exercised
    }

    fn fd_state(&self, fd: Fd) -> TcpState {
        match self.sockets.get(&fd).map(|s| &s.state) {
            Some(SockState::Conn { tuple, .. }) => self.conns.get(tuple).map_or(TcpState::Closed, Tcb::state),
            Some(SockState::Listening { .. }) => TcpState::Listen,
            _ => TcpState::Closed,
        }
    }

    fn note_call(&mut self, fd: Fd, call: CallKind) {
        if self.sockets.contains_key(&fd) {
            let st = self.fd_state(fd);
            self.exercised.insert((st, Stimulus::Call(call)));
        }
    }

    // The `note_` methods are the stack's bookkeeping for the harness (coverage cells, trace events, counters):
    // nothing the stack does reads them back, and `.cargo/mutants.toml` leaves them out of mutation testing.

    /// close() in the coverage table as the RFC names it: ABORT when it resets (SO_LINGER {1, 0}, or unread
    /// data, RFC 2525 2.17), else CLOSE; the TCB decides which it does by itself.
    fn note_close(&mut self, fd: Fd, linger0: bool) {
        let aborts = linger0 || self.fd_connection(fd).is_some_and(|t| !t.recv_buf.is_empty());
        self.note_call(fd, if aborts { CallKind::Abort } else { CallKind::Close });
    }

    /// The (state, segment) coverage cell of a segment for `tuple`, before it is processed.
    fn note_segment(&mut self, tuple: &FourTuple, seg: &TcpRepr<'_>) {
        let st = match self.conns.get(tuple) {
            Some(t) => t.state,
            None if self.listener_for(&tuple.local).is_some() => TcpState::Listen,
            None => TcpState::Closed,
        };
        self.exercised.insert((st, Stimulus::Segment(SegmentKind::of(seg.flags, seg.payload.len()))));
    }

    /// The (state, timeout) coverage cells of the timers of `tuple` due at `now`.
    fn note_due_timers(&mut self, now: Instant, tuple: &FourTuple) {
        if let Some(t) = self.conns.get(tuple) {
            for timer in Timer::ALL {
                if t.timer(timer).is_some_and(|at| at <= now) {
                    self.exercised.insert((t.state, Stimulus::Timeout(TimerKind::of(timer))));
                }
            }
        }
    }

    /// A SYN cookie sent or accepted, for traces.
    fn note_cookie(&mut self, now: Instant, tuple: FourTuple, c: CookieUse) {
        self.events.push_back(HostEvent::SynCookie { at: now, tuple, accepted: c == CookieUse::Accepted });
    }

    /// A datagram dropped as malformed, for the fuzz checks' count.
    fn note_malformed(&mut self) {
        self.malformed += 1;
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Changes a knob by sysctl name (`net.ipv4.tcp_syn_retries`); see [`Config::set`].
    pub fn set_knob(&mut self, name: &str, value: &str) -> Result<(), crate::config::ConfigError> {
        self.config.set(name, value)
    }

    /// Mutable configuration.
    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.config
    }

    /// The host's addresses.
    pub fn addrs(&self) -> &[IpAddr] {
        &self.addrs
    }

    // ---- output ------------------------------------------------------------------------------------------

    /// The next datagram to put on the wire.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.tx.pop_front()
    }

    /// When [`Host::on_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.conns.values().filter_map(Tcb::poll_timeout).min()
    }

    /// The next internal event (state changes).
    pub fn poll_event(&mut self) -> Option<HostEvent> {
        self.events.pop_front()
    }

    // ---- getters -----------------------------------------------------------------------------------------

    /// The TCP state of any connection, fd-less ones included (TIME-WAIT, orphans, SYN-RECEIVED children).
    /// `None` when no such connection exists (CLOSED has no TCB).
    pub fn tcp_state(&self, tuple: &FourTuple) -> Option<TcpState> {
        self.conns.get(tuple).map(Tcb::state)
    }

    /// Forgets connection `tuple` at once, sending nothing, as Linux's sock_diag SOCK_DESTROY does to what a
    /// session left behind (a TIME-WAIT, an orphan): for a host that serves one harness after another, so that
    /// the next finds it as the last did. Whether there was such a connection.
    pub fn destroy(&mut self, tuple: &FourTuple) -> bool {
        for l in self.listeners.values_mut() {
            l.accept_queue.retain(|q| q != tuple);
        }
        let in_limbo = self.limbo.remove(tuple).is_some();
        let Some(t) = self.conns.get_mut(tuple) else { return in_limbo };
        t.close_now();
        self.settle(self.now, *tuple);
        true
    }

    /// The state of a listening address, if it listens.
    pub fn is_listening(&self, local: &SocketAddr) -> bool {
        self.listeners.contains_key(local)
    }

    /// Every live connection.
    pub fn connections(&self) -> impl Iterator<Item = &Tcb> {
        self.conns.values()
    }

    /// One connection.
    pub fn connection(&self, tuple: &FourTuple) -> Option<&Tcb> {
        self.conns.get(tuple)
    }

    /// The connection behind an fd, live or ended.
    pub fn fd_connection(&self, fd: Fd) -> Option<&Tcb> {
        match &self.sockets.get(&fd)?.state {
            SockState::Conn { tuple, .. } => self.conns.get(tuple),
            SockState::Dead(t) => Some(t),
            _ => None,
        }
    }

    /// The 4-tuple behind an fd.
    pub fn fd_tuple(&self, fd: Fd) -> Option<FourTuple> {
        match &self.sockets.get(&fd)?.state {
            SockState::Conn { tuple, .. } => Some(*tuple),
            SockState::Dead(t) => Some(t.tuple),
            _ => None,
        }
    }

    /// The local address of an fd (bound, listening or connected).
    pub fn fd_local(&self, fd: Fd) -> Option<SocketAddr> {
        match &self.sockets.get(&fd)?.state {
            SockState::Fresh { bound } => *bound,
            SockState::Listening { local } => Some(*local),
            SockState::Conn { tuple, .. } => Some(tuple.local),
            SockState::Dead(t) => Some(t.tuple.local),
        }
    }

    /// Open fds.
    pub fn fds(&self) -> impl Iterator<Item = Fd> + '_ {
        self.sockets.keys().copied()
    }

    /// The listener on `local`.
    pub fn listener(&self, local: &SocketAddr) -> Option<&Listener> {
        self.listeners.get(local)
    }

    /// Datagrams dropped as malformed so far.
    pub fn malformed_count(&self) -> u64 {
        self.malformed
    }

    /// Whether an fd is in non-blocking mode.
    pub fn is_nonblocking(&self, fd: Fd) -> Result<bool, Errno> {
        Ok(self.sock(fd)?.nonblocking)
    }

    /// `poll()` readiness of an fd (bits in [`pollbits`]).
    pub fn poll(&self, fd: Fd) -> Result<u16, Errno> {
        use pollbits::*;
        let s = self.sock(fd)?;
        Ok(match &s.state {
            SockState::Fresh { .. } => OUT | HUP,
            SockState::Listening { local } => {
                let ready = self.listeners.get(local).is_some_and(|l| !l.accept_queue.is_empty());
                if ready {
                    IN
                } else {
                    0
                }
            }
            SockState::Conn { tuple, .. } => match self.conns.get(tuple) {
                Some(t) => conn_readiness(t),
                None => HUP,
            },
            SockState::Dead(t) => conn_readiness(t),
        })
    }

    // ---- input -------------------------------------------------------------------------------------------

    fn ctx_parts(&mut self, now: Instant) -> (Ctx<'_>, &mut BTreeMap<FourTuple, Tcb>) {
        let ctx = Ctx { now, config: &self.config, tx: Vec::new(), challenge_acks: Some(&mut self.challenge) };
        (ctx, &mut self.conns)
    }

    /// Every input carries `now`; time never goes back. An earlier `now` than the host has seen is a caller bug
    /// (debug builds assert it, as quinn-proto does); release builds keep the later time.
    fn advance(&mut self, now: Instant) {
        debug_assert!(now >= self.now, "time went backwards: {now:?} after {:?}", self.now);
        // Never backwards: an earlier time from the caller (which the assertion above stops in debug builds)
        // leaves the clock where it is.
        self.now = self.now.max(now);
    }

    /// Feeds one IP datagram from the wire. A datagram that does not parse (or is not for one of our
    /// addresses) is dropped; the error says why.
    pub fn receive(&mut self, now: Instant, datagram: &[u8]) -> Result<(), WireError> {
        self.advance(now);
        let d = match TcpDatagram::parse(datagram, Checksums::Verify) {
            Ok(d) => d,
            Err(e) => {
                self.note_malformed();
                return Err(e);
            }
        };
        self.deliver(now, &d);
        self.loop_back(now);
        Ok(())
    }

    fn deliver(&mut self, now: Instant, d: &TcpDatagram<'_>) {
        let dst = d.ip.dst_addr();
        if !self.addrs.contains(&dst) {
            return;
        }
        let seg = &d.tcp;
        let tuple = FourTuple {
            local: SocketAddr::new(dst, seg.dst_port),
            remote: SocketAddr::new(d.ip.src_addr(), seg.src_port),
        };
        self.note_segment(&tuple, seg);
        if self.conns.contains_key(&tuple) {
            if let Some(reopen) = self.deliver_to_connection(now, tuple, seg) {
                // TIME-WAIT accepted a new SYN: the old incarnation goes, the listener takes the SYN.
                self.remove_conn(tuple);
                if let Some(lkey) = self.listener_for(&tuple.local) {
                    self.listen_segment(now, lkey, tuple, seg, Some(reopen));
                } else {
                    let tx = reset_for(&tuple, seg);
                    self.tx.push_back(tx);
                }
            }
            return;
        }
        if let Some(lkey) = self.listener_for(&tuple.local) {
            self.listen_segment(now, lkey, tuple, seg, None);
            return;
        }
        // RFC 9293 3.10.7.1, CLOSED: "An incoming segment containing a RST is discarded. An incoming segment not
        // containing a RST causes a RST to be sent in response."
        if !seg.flags.rst() {
            self.tx.push_back(reset_for(&tuple, seg));
        }
    }

    /// Hands a segment to its connection; returns the ISS for a TIME-WAIT reopen.
    fn deliver_to_connection(&mut self, now: Instant, tuple: FourTuple, seg: &TcpRepr<'_>) -> Option<SeqNum> {
        let lkey = self.listener_for(&tuple.local);
        let tcb = self.conns.get(&tuple)?;
        let overflow =
            lkey.and_then(|k| self.listeners.get(&k)).and_then(|l| l.third_ack_overflow(&self.config, tcb, seg));
        if let Some(overflow) = overflow {
            if overflow == Overflow::Reset {
                self.tx.push_back(reset_for(&tuple, seg));
                if let Some(t) = self.conns.get_mut(&tuple) {
                    t.close_now();
                }
                self.settle(now, tuple);
            }
            return None;
        }
        let (mut ctx, conns) = self.ctx_parts(now);
        let tcb = conns.get_mut(&tuple)?;
        let arrival = tcb.segment_arrives(&mut ctx, seg);
        let tx = ctx.tx;
        self.tx.extend(tx);
        self.settle(now, tuple);
        match arrival {
            Arrival::Done => None,
            Arrival::Reopen { iss } => Some(iss),
        }
    }

    fn listener_for(&self, local: &SocketAddr) -> Option<SocketAddr> {
        if self.listeners.contains_key(local) {
            return Some(*local);
        }
        let any = SocketAddr::new(
            if local.is_ipv4() { IpAddr::V4(Ipv4Addr::UNSPECIFIED) } else { IpAddr::V6(Ipv6Addr::UNSPECIFIED) },
            local.port(),
        );
        self.listeners.contains_key(&any).then_some(any)
    }

    /// A segment for a listener (RFC 9293 3.10.7.2, decided in [`Listener`]): a child it opens is filed.
    fn listen_segment(
        &mut self,
        now: Instant,
        lkey: SocketAddr,
        tuple: FourTuple,
        seg: &TcpRepr<'_>,
        reopen_iss: Option<SeqNum>,
    ) {
        let Some(l) = self.listeners.get(&lkey) else { return };
        let mut ctx = Ctx { now, config: &self.config, tx: Vec::new(), challenge_acks: Some(&mut self.challenge) };
        let out = l.segment_arrives(&mut ctx, &self.cookies, &self.isn, tuple, seg, reopen_iss);
        let tx = ctx.tx;
        if let Some(c) = out.cookie {
            self.note_cookie(now, tuple, c);
        }
        match out.child {
            Some(child) => self.adopt_child(now, lkey, child, tx),
            None => self.tx.extend(tx),
        }
    }

    /// Files a new passive child under its listener: into the demux table and the SYN queue, its segments out,
    /// then `settle` moves it on if it is already established (a cookie's ACK).
    fn adopt_child(&mut self, now: Instant, lkey: SocketAddr, t: Tcb, tx: Vec<Vec<u8>>) {
        let tuple = t.tuple;
        self.conns.insert(tuple, t);
        self.tx.extend(tx);
        if let Some(l) = self.listeners.get_mut(&lkey) {
            l.syn_queue.insert(tuple);
        }
        self.settle(now, tuple);
    }

    /// Fires the timers due at `now`.
    pub fn on_timeout(&mut self, now: Instant) {
        self.advance(now);
        let due: Vec<FourTuple> =
            self.conns.iter().filter(|(_, t)| t.poll_timeout().is_some_and(|at| at <= now)).map(|(k, _)| *k).collect();
        for tuple in due {
            self.note_due_timers(now, &tuple);
            let (mut ctx, conns) = self.ctx_parts(now);
            if let Some(t) = conns.get_mut(&tuple) {
                t.on_timeout(&mut ctx);
            }
            let tx = ctx.tx;
            self.tx.extend(tx);
            self.settle(now, tuple);
        }
        self.loop_back(now);
    }

    /// Delivers datagrams addressed to ourselves (self-connect, two sockets of one host) without putting them
    /// on the wire; bounded so that a bug cannot spin forever.
    fn loop_back(&mut self, now: Instant) {
        for _ in 0..LOOPBACK_LIMIT {
            let Some(i) = self.tx.iter().position(|d| {
                TcpDatagram::parse(d, Checksums::Ignore).is_ok_and(|p| self.addrs.contains(&p.ip.dst_addr()))
            }) else {
                return;
            };
            let Some(d) = self.tx.remove(i) else { return };
            if let Ok(p) = TcpDatagram::parse(&d, Checksums::Verify) {
                self.deliver(now, &p);
            }
        }
    }

    /// After a connection changed: record transitions, move children between queues, bury closed TCBs.
    fn settle(&mut self, now: Instant, tuple: FourTuple) {
        let Some(t) = self.conns.get_mut(&tuple) else { return };
        for (from, to) in t.transitions.drain(..) {
            self.events.push_back(HostEvent::StateChange { at: now, tuple, from, to });
        }
        let (state, passive) = (t.state, t.passive);
        if passive {
            if let Some(lkey) = self.listener_for(&tuple.local) {
                let l = self.listeners.get_mut(&lkey).expect("listener_for found it");
                if state != TcpState::SynReceived && l.syn_queue.remove(&tuple) && state != TcpState::Closed {
                    l.accept_queue.push_back(tuple);
                }
            }
        }
        if state == TcpState::Closed {
            self.remove_conn(tuple);
        }
    }

    fn remove_conn(&mut self, tuple: FourTuple) {
        let Some(t) = self.conns.remove(&tuple) else { return };
        for l in self.listeners.values_mut() {
            l.syn_queue.remove(&tuple);
        }
        let queued = self.listeners.values().any(|l| l.accept_queue.contains(&tuple));
        if let Some((_, s)) =
            self.sockets.iter_mut().find(|(_, s)| matches!(s.state, SockState::Conn { tuple: tu, .. } if tu == tuple))
        {
            s.state = SockState::Dead(Box::new(t));
        } else if queued {
            self.limbo.insert(tuple, t);
        }
    }

    // ---- application calls -------------------------------------------------------------------------------

    fn sock(&self, fd: Fd) -> Result<&Socket, Errno> {
        self.sockets.get(&fd).ok_or(Errno::EBADF)
    }

    fn sock_mut(&mut self, fd: Fd) -> Result<&mut Socket, Errno> {
        self.sockets.get_mut(&fd).ok_or(Errno::EBADF)
    }

    fn alloc_fd(&self) -> Fd {
        (3..).find(|fd| !self.sockets.contains_key(fd)).unwrap_or(3)
    }

    /// `socket(domain, SOCK_STREAM, IPPROTO_TCP)`.
    pub fn socket(&mut self, domain: Domain) -> Result<Fd, Errno> {
        let fd = self.alloc_fd();
        self.sockets.insert(
            fd,
            Socket { domain, state: SockState::Fresh { bound: None }, opts: SockOpts::default(), nonblocking: false },
        );
        Ok(fd)
    }

    /// `fcntl(fd, F_SETFL, O_NONBLOCK)` and its opposite.
    pub fn set_nonblocking(&mut self, fd: Fd, on: bool) -> Result<(), Errno> {
        self.sock_mut(fd)?.nonblocking = on;
        Ok(())
    }

    fn port_in_use(&self, addr: SocketAddr, reuse: bool, except: Fd) -> bool {
        let overlaps = |a: SocketAddr| {
            a.port() == addr.port() && (a.ip() == addr.ip() || a.ip().is_unspecified() || addr.ip().is_unspecified())
        };
        for (fd, s) in &self.sockets {
            if *fd == except {
                continue;
            }
            let (local, listening) = match &s.state {
                SockState::Fresh { bound: Some(b) } => (*b, false),
                SockState::Listening { local } => (*local, true),
                SockState::Conn { tuple, .. } => (tuple.local, false),
                _ => continue,
            };
            if overlaps(local) && (listening || !(reuse && s.opts.reuseaddr)) {
                return true;
            }
        }
        // Connections without fds (TIME-WAIT, orphans, children) hold their port unless both they (their socket,
        // when it had one) and the new socket set SO_REUSEADDR, as Linux's inet_csk_bind_conflict() decides.
        self.conns.iter().any(|(t, tcb)| overlaps(t.local) && !(reuse && tcb.sockopts.reuseaddr))
    }

    fn ephemeral_port(&mut self, ip: IpAddr, remote: Option<SocketAddr>) -> Result<u16, Errno> {
        let [lo, hi] = self.config.ip_local_port_range;
        let span = u32::from(hi - lo) + 1;
        self.rng = splitmix(self.rng);
        let start = (self.rng % u64::from(span)) as u32;
        for i in 0..span {
            let port = lo + ((start + i) % span) as u16;
            let local = SocketAddr::new(ip, port);
            let taken = match remote {
                Some(r) => {
                    self.conns.contains_key(&FourTuple { local, remote: r }) || self.port_in_use(local, true, -1)
                }
                None => self.port_in_use(local, false, -1),
            };
            if !taken {
                return Ok(port);
            }
        }
        Err(Errno::EADDRNOTAVAIL)
    }

    fn default_ip(&self, domain: Domain) -> Result<IpAddr, Errno> {
        self.addrs.iter().copied().find(|a| a.is_ipv4() == (domain == Domain::Inet)).ok_or(Errno::EADDRNOTAVAIL)
    }

    /// `bind(fd, addr)`; port 0 picks an ephemeral port.
    pub fn bind(&mut self, fd: Fd, addr: SocketAddr) -> Result<(), Errno> {
        let s = self.sock(fd)?;
        let (domain, reuse) = (s.domain, s.opts.reuseaddr);
        if !matches!(s.state, SockState::Fresh { bound: None }) {
            return Err(Errno::EINVAL);
        }
        if addr.is_ipv4() != (domain == Domain::Inet) {
            return Err(Errno::EAFNOSUPPORT);
        }
        if !addr.ip().is_unspecified() && !self.addrs.contains(&addr.ip()) {
            return Err(Errno::EADDRNOTAVAIL);
        }
        let port = if addr.port() == 0 { self.ephemeral_port(addr.ip(), None)? } else { addr.port() };
        let addr = SocketAddr::new(addr.ip(), port);
        if self.port_in_use(addr, reuse, fd) {
            return Err(Errno::EADDRINUSE);
        }
        self.sock_mut(fd)?.state = SockState::Fresh { bound: Some(addr) };
        Ok(())
    }

    /// `listen(fd, backlog)`; the backlog is capped at `somaxconn`.
    pub fn listen(&mut self, fd: Fd, backlog: i32) -> Result<(), Errno> {
        self.note_call(fd, CallKind::OpenPassive);
        let s = self.sock(fd)?;
        let backlog = (backlog.max(0) as u32).min(self.config.somaxconn);
        let (domain, opts) = (s.domain, s.opts);
        let current = match &s.state {
            SockState::Listening { local } => Some(Ok(*local)),
            SockState::Fresh { bound } => bound.map(Err),
            _ => return Err(Errno::EINVAL),
        };
        let local = match current {
            Some(Ok(local)) => {
                if let Some(l) = self.listeners.get_mut(&local) {
                    l.backlog = backlog;
                }
                return Ok(());
            }
            Some(Err(b)) => b,
            None => {
                let ip = if domain == Domain::Inet {
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
                } else {
                    IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                };
                SocketAddr::new(ip, self.ephemeral_port(ip, None)?)
            }
        };
        let clash = self.listeners.keys().any(|l| {
            l.port() == local.port() && (l.ip() == local.ip() || l.ip().is_unspecified() || local.ip().is_unspecified())
        });
        if clash {
            return Err(Errno::EADDRINUSE);
        }
        self.listeners.insert(local, Listener::new(local, backlog, opts));
        self.sock_mut(fd)?.state = SockState::Listening { local };
        Ok(())
    }

    /// `accept(fd)`: the oldest established child, or `EAGAIN`.
    pub fn accept(&mut self, fd: Fd) -> Result<(Fd, SocketAddr), Errno> {
        let s = self.sock(fd)?;
        let domain = s.domain;
        let SockState::Listening { local } = s.state else { return Err(Errno::EINVAL) };
        let l = self.listeners.get_mut(&local).ok_or(Errno::EINVAL)?;
        let tuple = l.accept_queue.pop_front().ok_or(Errno::EAGAIN)?;
        let opts = l.sockopts;
        let new = self.alloc_fd();
        let state = match self.limbo.remove(&tuple) {
            Some(t) => SockState::Dead(Box::new(t)),
            None => SockState::Conn { tuple, connect_reported: true },
        };
        self.sockets.insert(new, Socket { domain, state, opts, nonblocking: false });
        Ok((new, tuple.remote))
    }

    /// `connect(fd, addr)`: starts the handshake and returns `EINPROGRESS`; later calls return `EALREADY`
    /// while it runs, then `Ok` once (or the error), then `EISCONN`, as Linux's inet_stream_connect does.
    pub fn connect(&mut self, now: Instant, fd: Fd, remote: SocketAddr) -> Result<(), Errno> {
        self.advance(now);
        self.note_call(fd, CallKind::OpenActive);
        let s = self.sock(fd)?;
        let (domain, opts) = (s.domain, s.opts);
        let bound = match &s.state {
            SockState::Fresh { bound } => *bound,
            SockState::Listening { .. } => return Err(Errno::EISCONN),
            SockState::Conn { tuple, connect_reported } => {
                let state = self.conns.get(tuple).map_or(TcpState::Closed, Tcb::state);
                return match state {
                    TcpState::SynSent | TcpState::SynReceived => Err(Errno::EALREADY),
                    _ if !connect_reported => {
                        let tuple = *tuple;
                        self.sock_mut(fd)?.state = SockState::Conn { tuple, connect_reported: true };
                        Ok(())
                    }
                    _ => Err(Errno::EISCONN),
                };
            }
            SockState::Dead(t) => {
                let (err, local) = (t.error, t.tuple.local);
                return match err {
                    Some(e) if !t.aborted || t.state == TcpState::Closed => {
                        // The failed attempt is reported once; the socket may then connect again (Linux).
                        let fresh_bound = if self.port_in_use(local, true, fd) { None } else { Some(local) };
                        self.sock_mut(fd)?.state = SockState::Fresh { bound: fresh_bound };
                        Err(e)
                    }
                    _ => Err(Errno::EISCONN),
                };
            }
        };
        if remote.is_ipv4() != (domain == Domain::Inet) {
            return Err(Errno::EAFNOSUPPORT);
        }
        if is_multicast_or_broadcast(remote.ip()) {
            // RFC 9293 MUST-46: an OPEN to a broadcast or multicast address is an error; Linux's tcp_v4_connect
            // says ENETUNREACH.
            return Err(Errno::ENETUNREACH);
        }
        let local = match bound {
            Some(b) if !b.ip().is_unspecified() => b,
            Some(b) => SocketAddr::new(self.default_ip(domain)?, b.port()),
            None => {
                let ip = self.default_ip(domain)?;
                SocketAddr::new(ip, self.ephemeral_port(ip, Some(remote))?)
            }
        };
        let tuple = FourTuple { local, remote };
        if self.conns.contains_key(&tuple) {
            return Err(Errno::EADDRNOTAVAIL);
        }
        let iss = SeqNum(self.isn.isn(now, &tuple));
        let (mut ctx, conns) = self.ctx_parts(now);
        let t = Tcb::open_active(&mut ctx, tuple, iss, opts);
        let tx = ctx.tx;
        conns.insert(tuple, t);
        self.tx.extend(tx);
        self.sock_mut(fd)?.state = SockState::Conn { tuple, connect_reported: false };
        self.settle(now, tuple);
        self.loop_back(now);
        Err(Errno::EINPROGRESS)
    }

    /// `write(fd, data)` / `send()`: queues what fits in the send buffer and returns how much, or `EAGAIN`.
    pub fn write(&mut self, now: Instant, fd: Fd, data: &[u8]) -> Result<usize, Errno> {
        self.advance(now);
        self.note_call(fd, CallKind::Send);
        let tuple = match &mut self.sock_mut(fd)?.state {
            SockState::Conn { tuple, .. } => *tuple,
            SockState::Dead(t) => return Err(t.error.take().unwrap_or(Errno::EPIPE)),
            // Linux: a socket that is neither connected nor connecting cannot send (sk_stream_wait_connect).
            _ => return Err(Errno::EPIPE),
        };
        let (mut ctx, conns) = self.ctx_parts(now);
        let t = conns.get_mut(&tuple).ok_or(Errno::EPIPE)?;
        let n = t.send(&mut ctx, data)?;
        let tx = ctx.tx;
        self.tx.extend(tx);
        self.settle(now, tuple);
        self.loop_back(now);
        Ok(n)
    }

    /// `read(fd, len)` / `recv()` (with `peek`, MSG_PEEK): data, or an empty vector at end of stream, or `EAGAIN`.
    pub fn read(&mut self, now: Instant, fd: Fd, len: usize, peek: bool) -> Result<Vec<u8>, Errno> {
        self.advance(now);
        self.note_call(fd, CallKind::Receive);
        let tuple = match &mut self.sock_mut(fd)?.state {
            SockState::Conn { tuple, .. } => *tuple,
            SockState::Dead(t) => return t.read_buffered(len, peek, true),
            SockState::Listening { .. } | SockState::Fresh { .. } => return Err(Errno::ENOTCONN),
        };
        let (mut ctx, conns) = self.ctx_parts(now);
        let t = conns.get_mut(&tuple).ok_or(Errno::ENOTCONN)?;
        let out = t.receive(&mut ctx, len, peek);
        let tx = ctx.tx;
        self.tx.extend(tx);
        self.loop_back(now);
        out
    }

    /// `shutdown(fd, how)`.
    pub fn shutdown(&mut self, now: Instant, fd: Fd, how: Shutdown) -> Result<(), Errno> {
        self.advance(now);
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            self.note_call(fd, CallKind::Close);
        }
        let tuple = match &self.sock(fd)?.state {
            SockState::Conn { tuple, .. } => *tuple,
            _ => return Err(Errno::ENOTCONN),
        };
        let (mut ctx, conns) = self.ctx_parts(now);
        let t = conns.get_mut(&tuple).ok_or(Errno::ENOTCONN)?;
        t.shutdown(
            &mut ctx,
            matches!(how, Shutdown::Read | Shutdown::Both),
            matches!(how, Shutdown::Write | Shutdown::Both),
        );
        let tx = ctx.tx;
        self.tx.extend(tx);
        self.settle(now, tuple);
        self.loop_back(now);
        Ok(())
    }

    /// `close(fd)`.
    pub fn close(&mut self, now: Instant, fd: Fd) -> Result<(), Errno> {
        self.advance(now);
        // SO_LINGER {1, 0} makes close() the RFC's ABORT in every state, a fresh or listening socket's included.
        let linger0 = self.sockets.get(&fd).is_some_and(|s| s.opts.linger == Some(0));
        self.note_close(fd, linger0);
        let s = self.sockets.remove(&fd).ok_or(Errno::EBADF)?;
        match s.state {
            SockState::Fresh { .. } | SockState::Dead(_) => {}
            SockState::Listening { local } => self.close_listener(now, local),
            SockState::Conn { tuple, .. } => {
                let (mut ctx, conns) = self.ctx_parts(now);
                if let Some(t) = conns.get_mut(&tuple) {
                    t.close(&mut ctx, linger0);
                }
                let tx = ctx.tx;
                self.tx.extend(tx);
                self.settle(now, tuple);
            }
        }
        self.loop_back(now);
        Ok(())
    }

    fn close_listener(&mut self, now: Instant, local: SocketAddr) {
        let Some(l) = self.listeners.remove(&local) else { return };
        // Children never accepted: the established ones are reset (Linux's inet_csk_listen_stop), the
        // embryonic ones dropped.
        for tuple in l.accept_queue {
            self.limbo.remove(&tuple);
            let (mut ctx, conns) = self.ctx_parts(now);
            if let Some(t) = conns.get_mut(&tuple) {
                t.abort_by_user(&mut ctx);
            }
            let tx = ctx.tx;
            self.tx.extend(tx);
            self.settle(now, tuple);
        }
        for tuple in l.syn_queue {
            if let Some(t) = self.conns.get_mut(&tuple) {
                t.close_now();
            }
            self.settle(now, tuple);
        }
    }

    /// `setsockopt(fd, level, name, value)` at `now`: a timer it arms (SO_KEEPALIVE's idle time) counts from then.
    pub fn setsockopt(&mut self, now: Instant, fd: Fd, name: SockOptName, value: SockOptValue) -> Result<(), Errno> {
        self.advance(now);
        let int = |v: SockOptValue| match v {
            SockOptValue::Int(i) => Ok(i),
            _ => Err(Errno::EINVAL),
        };
        let tuple = self.fd_tuple(fd);
        let s = self.sock_mut(fd)?;
        let o = &mut s.opts;
        match name {
            SockOptName::ReuseAddr => o.reuseaddr = int(value)? != 0,
            SockOptName::KeepAlive => o.keepalive = int(value)? != 0,
            SockOptName::Linger => match value {
                SockOptValue::Linger { onoff, linger } => o.linger = onoff.then_some(linger),
                _ => return Err(Errno::EINVAL),
            },
            // Linux doubles the value to leave room for bookkeeping, and getsockopt shows the doubled value.
            SockOptName::RcvBuf => o.rcvbuf = Some((int(value)?.clamp(1152, i32::MAX as i64) as u32).saturating_mul(2)),
            SockOptName::SndBuf => o.sndbuf = Some((int(value)?.clamp(2304, i32::MAX as i64) as u32).saturating_mul(2)),
            SockOptName::NoDelay => o.nodelay = int(value)? != 0,
            SockOptName::MaxSeg => {
                let v = int(value)?;
                // Linux's bounds: TCP_MIN_MSS (88) to MAX_TCP_WINDOW (32767), or 0 for "no clamp".
                if !(0..=32_767).contains(&v) || (v > 0 && v < 88) {
                    return Err(Errno::EINVAL);
                }
                o.user_mss = v as u16;
            }
            SockOptName::KeepIdle => o.keepidle = Some(positive(int(value)?)?),
            SockOptName::KeepIntvl => o.keepintvl = Some(positive(int(value)?)?),
            SockOptName::KeepCnt => o.keepcnt = Some(positive(int(value)?)?),
            SockOptName::UserTimeout => o.user_timeout_ms = u32::try_from(int(value)?).map_err(|_| Errno::EINVAL)?,
            SockOptName::Error | SockOptName::Info => return Err(Errno::ENOPROTOOPT),
        }
        let opts = *o;
        let listening = match s.state {
            SockState::Listening { local } => Some(local),
            _ => None,
        };
        if let Some(local) = listening {
            if let Some(l) = self.listeners.get_mut(&local) {
                l.sockopts = opts;
            }
        }
        if let Some(t) = tuple.and_then(|tu| self.conns.get_mut(&tu)) {
            let rearm = matches!(name, SockOptName::KeepAlive | SockOptName::KeepIdle);
            t.apply_sockopts(opts, rearm, &self.config, self.now);
        }
        Ok(())
    }

    /// `getsockopt(fd, level, name)`. Reading `SO_ERROR` clears the pending error, as on Linux.
    pub fn getsockopt(&mut self, fd: Fd, name: SockOptName) -> Result<SockOptValue, Errno> {
        let config_rmem = self.config.tcp_rmem[1];
        let config_wmem = self.config.tcp_wmem[1];
        let tuple = self.fd_tuple(fd);
        let s = self.sockets.get_mut(&fd).ok_or(Errno::EBADF)?;
        let o = s.opts;
        let listening = matches!(s.state, SockState::Listening { .. });
        let tcb: Option<&mut Tcb> = match &mut s.state {
            SockState::Dead(t) => Some(t),
            _ => tuple.and_then(|tu| self.conns.get_mut(&tu)),
        };
        let int = |v: i64| Ok(SockOptValue::Int(v));
        match name {
            SockOptName::ReuseAddr => int(i64::from(o.reuseaddr)),
            SockOptName::KeepAlive => int(i64::from(o.keepalive)),
            SockOptName::Linger => {
                Ok(SockOptValue::Linger { onoff: o.linger.is_some(), linger: o.linger.unwrap_or(0) })
            }
            SockOptName::Error => int(tcb.and_then(|t| t.error.take()).map_or(0, |e| i64::from(e.number()))),
            SockOptName::RcvBuf => int(i64::from(o.rcvbuf.unwrap_or(config_rmem))),
            SockOptName::SndBuf => int(i64::from(o.sndbuf.unwrap_or(config_wmem))),
            SockOptName::NoDelay => int(i64::from(o.nodelay)),
            SockOptName::MaxSeg => int(match tcb {
                // Linux reads mss_cache, which outlives the connection: after a reset it is still the MSS learned,
                // unless TCP_MAXSEG was set, which a CLOSED socket reads back.
                Some(t) if t.state == TcpState::Closed && o.user_mss > 0 => i64::from(o.user_mss),
                Some(t) if t.was_synchronized => i64::from(t.snd_mss),
                // Before the peer's SYN (and after a refused connect), Linux's mss_cache is the MSS clamp
                // (TCP_MAXSEG, or the 536 of RFC 9293's default) less the timestamp option our SYN offers
                // (tcp_connect_init; measured on 6.18: 524).
                Some(t) if matches!(t.state, TcpState::SynSent | TcpState::Closed) => {
                    let clamp = if o.user_mss > 0 { o.user_mss } else { crate::tcb::default_mss(&t.tuple.local) };
                    let ip_tcp = if t.tuple.local.is_ipv4() { 40 } else { 60 };
                    let mss = u32::from(clamp).min(self.config.mtu.saturating_sub(ip_tcp));
                    let ts = if self.config.tcp_timestamps != 0 { 12 } else { 0 };
                    i64::from(mss.saturating_sub(ts))
                }
                _ if o.user_mss > 0 => i64::from(o.user_mss),
                _ => i64::from(crate::tcb::DEFAULT_MSS),
            }),
            SockOptName::KeepIdle => int(i64::from(o.keepidle.unwrap_or(self.config.tcp_keepalive_time))),
            SockOptName::KeepIntvl => int(i64::from(o.keepintvl.unwrap_or(self.config.tcp_keepalive_intvl))),
            SockOptName::KeepCnt => int(i64::from(o.keepcnt.unwrap_or(self.config.tcp_keepalive_probes))),
            SockOptName::UserTimeout => int(i64::from(o.user_timeout_ms)),
            SockOptName::Info => {
                let mut info = TcpInfo {
                    state: if listening { TcpState::Listen.linux_number() } else { TcpState::Closed.linux_number() },
                    ..TcpInfo::default()
                };
                if let Some(t) = tcb {
                    info = TcpInfo {
                        state: t.state.linux_number(),
                        retransmits: t.retransmits,
                        probes: t.keepalive_probes_out.max(t.persist_probes),
                        snd_wscale: t.opts.snd_wscale,
                        rcv_wscale: t.opts.rcv_wscale,
                        rto_us: t.rtt.rto().as_micros() as u64,
                        snd_mss: u32::from(t.snd_mss),
                        rtt_us: t.rtt.srtt_us().unwrap_or(0),
                        rttvar_us: t.rtt.rttvar_us(),
                        snd_cwnd: t.cwnd() / u32::from(t.snd_mss).max(1),
                        unacked: t.in_flight(),
                    };
                }
                Ok(SockOptValue::Info(info))
            }
        }
    }

    /// Checks every connection's invariants and the queues' consistency.
    pub fn check_invariants(&self) -> Result<(), String> {
        for t in self.conns.values() {
            t.check_invariants().map_err(|e| format!("{}: {e}", t.tuple))?;
        }
        for l in self.listeners.values() {
            for tu in &l.syn_queue {
                match self.conns.get(tu).map(Tcb::state) {
                    Some(TcpState::SynReceived) => {}
                    other => return Err(format!("{tu} in the SYN queue of {} but {other:?}", l.local)),
                }
            }
        }
        Ok(())
    }
}

fn positive(v: i64) -> Result<u32, Errno> {
    if (1..=32_767).contains(&v) {
        Ok(v as u32)
    } else {
        Err(Errno::EINVAL)
    }
}

/// A connection's poll() readiness as Linux's tcp_poll computes it: the receive side shut (the peer's FIN,
/// shutdown(SHUT_RD), or the connection ended) reads as POLLIN and POLLRDHUP; both sides shut, or the connection
/// closed, is POLLHUP; a shut send side is writable (a write fails at once with EPIPE rather than block); before
/// the handshake completes nothing but those is reported.
fn conn_readiness(t: &Tcb) -> u16 {
    use pollbits::*;
    // A connection that ended (reset, timed out, closed in order) has both sides shut, as tcp_done leaves it; one
    // dropped by shutdown() in SYN-SENT has neither (tcp_disconnect), so it is only hung up.
    let ended = t.state == TcpState::Closed && !t.disconnected;
    let rcv_shut = t.fin_received || t.shut_rd || ended;
    let snd_shut = t.shut_wr || ended;
    let mut r = 0;
    if rcv_shut {
        r |= IN | RDHUP;
    }
    if (rcv_shut && snd_shut) || t.state == TcpState::Closed {
        r |= HUP;
    }
    if !matches!(t.state, TcpState::SynSent | TcpState::SynReceived) {
        if !t.recv_buf.is_empty() {
            r |= IN;
        }
        // sk_stream_is_writeable: free space of at least half what is queued.
        let queued = t.send_buf.len();
        if snd_shut || t.sndbuf_cap.saturating_sub(queued) >= queued / 2 {
            r |= OUT;
        }
    }
    if t.error.is_some() {
        r |= ERR;
    }
    r
}

/// A group or broadcast destination, which TCP must never open to (RFC 9293 MUST-46).
fn is_multicast_or_broadcast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => v6.is_multicast(),
    }
}
