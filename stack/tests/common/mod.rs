//! Test fixtures: a `Host` at 192.168.0.1 driven by hand-built segments from a peer at 192.0.2.1, smoltcp-style.
//!
//! [`T`] holds the host and the virtual clock; `recv!` and `recv_nothing!` check what it sends. One fixture per
//! RFC 9293 state a test starts from, each a method on `T` that asserts the state it reached: `syn_sent`,
//! `syn_received`, `established_passive` / `established_active`, `fin_wait_1`, `fin_wait_2`, `close_wait`,
//! `closing`, `last_ack`, `time_wait`. The peer's ISN is always [`PEER_ISN`]; the fixtures return our ISS.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tcpdrill_stack::host::{Domain, Fd, Host};
use tcpdrill_stack::wire::{Checksums, TcpDatagram, TcpFlags, TcpOption, TcpOptions, TcpRepr};
use tcpdrill_stack::{Config, Errno, FourTuple, Instant, SeqNum, TcpState};

pub const LOCAL_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 1);
pub const REMOTE_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const LOCAL_PORT: u16 = 8080;
pub const REMOTE_PORT: u16 = 50000;
/// The peer's ISN in these tests.
pub const PEER_ISN: u32 = 1_000_000;

pub const S: TcpFlags = TcpFlags::SYN;
pub const A: TcpFlags = TcpFlags::ACK;
pub const F: TcpFlags = TcpFlags::FIN;
pub const R: TcpFlags = TcpFlags::RST;
pub const P: TcpFlags = TcpFlags::PSH;

/// Asserts the next segment's flags, seq and ack.
#[macro_export]
macro_rules! recv {
    ($t:expr, $flags:expr, $seq:expr, $ack:expr) => {{
        let s = $t.recv().unwrap_or_else(|| panic!("expected {} seq {} ack {}, got nothing", $flags, $seq, $ack));
        assert_eq!((s.flags, s.seq, s.ack), ($flags, $seq, $ack), "got {s}");
        s
    }};
}

/// Asserts that nothing was sent.
#[macro_export]
macro_rules! recv_nothing {
    ($t:expr) => {{
        if let Some(s) = $t.recv() {
            panic!("expected nothing, got {s}");
        }
    }};
}

/// A segment as the tests see it: owned, with absolute numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seg {
    pub src_port: u16,
    pub dst_port: u16,
    pub flags: TcpFlags,
    pub seq: u32,
    pub ack: u32,
    pub win: u16,
    pub options: TcpOptions,
    pub payload: Vec<u8>,
}

impl Seg {
    pub fn opts(&self) -> Vec<String> {
        self.options.iter().map(|o| o.unwrap().to_string()).collect()
    }
}

impl std::fmt::Display for Seg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}:{}({}) ack {} win {} <{}>",
            self.flags,
            self.seq,
            self.seq as usize + self.payload.len(),
            self.payload.len(),
            self.ack,
            self.win,
            self.options
        )
    }
}

pub struct T {
    pub host: Host,
    pub now: Instant,
    pub remote_port: u16,
    pub local_port: u16,
}

impl T {
    pub fn new() -> T {
        T::with_config(Config::default())
    }

    pub fn with_config(config: Config) -> T {
        T {
            host: Host::new(config, &[IpAddr::V4(LOCAL_IP)], 1),
            now: Instant::from_secs(1),
            remote_port: REMOTE_PORT,
            local_port: LOCAL_PORT,
        }
    }

    pub fn tuple(&self) -> FourTuple {
        FourTuple {
            local: SocketAddr::new(LOCAL_IP.into(), self.local_port),
            remote: SocketAddr::new(REMOTE_IP.into(), self.remote_port),
        }
    }

    pub fn state(&self) -> Option<TcpState> {
        self.host.tcp_state(&self.tuple())
    }

    /// Injects a segment from the peer.
    pub fn send(&mut self, flags: TcpFlags, seq: u32, ack: u32, win: u16, opts: &[TcpOption<'_>], payload: &[u8]) {
        let mut options = TcpOptions::from_options(opts).unwrap();
        options.pad();
        let tcp = TcpRepr {
            src_port: self.remote_port,
            dst_port: self.local_port,
            seq: SeqNum(seq),
            ack: SeqNum(if flags.ack() { ack } else { 0 }),
            flags,
            window: win,
            urgent: 0,
            options,
            payload,
        };
        let d = TcpDatagram::new(REMOTE_IP.into(), LOCAL_IP.into(), tcp).to_vec().unwrap();
        self.host.receive(self.now, &d).unwrap();
    }

    /// The next segment the host sends, if any.
    pub fn recv(&mut self) -> Option<Seg> {
        let d = self.host.poll_transmit()?;
        let p = TcpDatagram::parse(&d, Checksums::Verify).expect("the stack emits valid datagrams");
        assert_eq!(p.ip.src_addr(), IpAddr::V4(LOCAL_IP));
        let t = p.tcp;
        Some(Seg {
            src_port: t.src_port,
            dst_port: t.dst_port,
            flags: t.flags,
            seq: t.seq.0,
            ack: t.ack.0,
            win: t.window,
            options: t.options,
            payload: t.payload.to_vec(),
        })
    }

    /// Advances virtual time by `d`, firing every timer due on the way, in order.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(at) = self.host.poll_timeout().filter(|at| *at <= end) {
            self.now = at.max(self.now);
            self.host.on_timeout(self.now);
        }
        self.now = end;
    }

    /// Advances to the next timer and fires it; returns how long that took.
    pub fn next_timer(&mut self) -> Option<Duration> {
        let at = self.host.poll_timeout()?;
        let waited = at.saturating_since(self.now);
        self.now = at.max(self.now);
        self.host.on_timeout(self.now);
        Some(waited)
    }

    /// A listening socket on 8080 with SO_REUSEADDR; returns its fd.
    pub fn listen(&mut self, backlog: i32) -> Fd {
        let fd = self.host.socket(Domain::Inet).unwrap();
        self.host.bind(fd, SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), self.local_port)).unwrap();
        self.host.listen(fd, backlog).unwrap();
        fd
    }

    // ---- one fixture per starting state, in RFC 9293's order --------------------------------------------

    /// SYN-SENT: an active open from LOCAL_IP:`local_port` to the peer; our SYN has been read.
    /// Returns (fd, our ISS).
    pub fn syn_sent(&mut self) -> (Fd, u32) {
        let fd = self.host.socket(Domain::Inet).unwrap();
        self.host.bind(fd, SocketAddr::new(LOCAL_IP.into(), self.local_port)).unwrap();
        assert_eq!(
            self.host.connect(self.now, fd, SocketAddr::new(REMOTE_IP.into(), self.remote_port)),
            Err(Errno::EINPROGRESS)
        );
        let syn = self.recv().expect("SYN");
        assert_eq!(syn.flags, S);
        assert_eq!(self.state(), Some(TcpState::SynSent));
        (fd, syn.seq)
    }

    /// SYN-RECEIVED (passive): a listener (backlog 5) got the peer's SYN, without options, and its SYN-ACK has
    /// been read. Returns (listener fd, our ISS).
    pub fn syn_received(&mut self) -> (Fd, u32) {
        let l = self.listen(5);
        self.send(S, PEER_ISN, 0, 65535, &[], b"");
        let sa = self.recv().expect("SYN-ACK");
        assert_eq!((sa.flags, sa.ack), (S | A, PEER_ISN + 1));
        assert_eq!(self.state(), Some(TcpState::SynReceived));
        (l, sa.seq)
    }

    /// ESTABLISHED by a passive open with an MSS-only SYN; returns (listener fd, accepted fd, our ISS).
    pub fn established_passive(&mut self) -> (Fd, Fd, u32) {
        self.established_passive_with(&[TcpOption::Mss(1460)], 65535)
    }

    /// ESTABLISHED by a passive open whose SYN carries `syn_options` and whose third segment announces `window`.
    pub fn established_passive_with(&mut self, syn_options: &[TcpOption<'_>], window: u16) -> (Fd, Fd, u32) {
        let l = self.listen(5);
        self.send(S, PEER_ISN, 0, 65535, syn_options, b"");
        let synack = self.recv().expect("SYN-ACK");
        assert_eq!(synack.flags, S | A);
        self.send(A, PEER_ISN + 1, synack.seq + 1, window, &[], b"");
        let (fd, _) = self.host.accept(l).unwrap();
        assert_eq!(self.state(), Some(TcpState::Established));
        (l, fd, synack.seq)
    }

    /// ESTABLISHED by an active open ([`T::syn_sent`]) answered by a SYN-ACK with MSS 1460; returns (fd, our ISS).
    pub fn established_active(&mut self) -> (Fd, u32) {
        let (fd, iss) = self.syn_sent();
        self.send(S | A, PEER_ISN, iss + 1, 65535, &[TcpOption::Mss(1460)], b"");
        let ack = self.recv().expect("ACK of the SYN-ACK");
        assert_eq!((ack.flags, ack.seq, ack.ack), (A, iss + 1, PEER_ISN + 1));
        assert_eq!(self.state(), Some(TcpState::Established));
        (fd, iss)
    }

    /// FIN-WAIT-1: [`T::established_passive`], then close() (the accepted fd is gone); our FIN has been read and
    /// is unacknowledged. Returns our ISS.
    pub fn fin_wait_1(&mut self) -> u32 {
        let (_l, fd, iss) = self.established_passive();
        self.host.close(self.now, fd).unwrap();
        recv!(self, F | A, iss + 1, PEER_ISN + 1);
        assert_eq!(self.state(), Some(TcpState::FinWait1));
        iss
    }

    /// FIN-WAIT-2: [`T::fin_wait_1`], then the peer's ACK of our FIN. Orphaned (closed by the application).
    /// Returns our ISS.
    pub fn fin_wait_2(&mut self) -> u32 {
        let iss = self.fin_wait_1();
        self.send(A, PEER_ISN + 1, iss + 2, 65535, &[], b"");
        assert_eq!(self.state(), Some(TcpState::FinWait2));
        iss
    }

    /// CLOSE-WAIT: [`T::established_passive`], then the peer's FIN, acknowledged at once (no data came before).
    /// Returns (listener fd, accepted fd, our ISS).
    pub fn close_wait(&mut self) -> (Fd, Fd, u32) {
        let (l, fd, iss) = self.established_passive();
        self.send(F | A, PEER_ISN + 1, iss + 1, 65535, &[], b"");
        recv!(self, A, iss + 1, PEER_ISN + 2);
        assert_eq!(self.state(), Some(TcpState::CloseWait));
        (l, fd, iss)
    }

    /// CLOSING: [`T::fin_wait_1`], then the peer's FIN that does not acknowledge ours (simultaneous close).
    /// Returns our ISS.
    pub fn closing(&mut self) -> u32 {
        let iss = self.fin_wait_1();
        self.send(F | A, PEER_ISN + 1, iss + 1, 65535, &[], b"");
        recv!(self, A, iss + 2, PEER_ISN + 2);
        assert_eq!(self.state(), Some(TcpState::Closing));
        iss
    }

    /// LAST-ACK: [`T::close_wait`], then close() (the accepted fd is gone); our FIN has been read and is
    /// unacknowledged. Returns our ISS.
    pub fn last_ack(&mut self) -> u32 {
        let (_l, fd, iss) = self.close_wait();
        self.host.close(self.now, fd).unwrap();
        recv!(self, F | A, iss + 1, PEER_ISN + 2);
        assert_eq!(self.state(), Some(TcpState::LastAck));
        iss
    }

    /// TIME-WAIT: [`T::fin_wait_1`], then the peer's FIN acknowledging ours, and our ACK of it. Returns our ISS.
    pub fn time_wait(&mut self) -> u32 {
        let iss = self.fin_wait_1();
        self.send(F | A, PEER_ISN + 1, iss + 2, 65535, &[], b"");
        recv!(self, A, iss + 2, PEER_ISN + 2);
        assert_eq!(self.state(), Some(TcpState::TimeWait));
        iss
    }
}
