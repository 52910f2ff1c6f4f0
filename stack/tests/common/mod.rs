//! Test fixtures: a `Host` at 192.168.0.1 driven by hand-built segments from a peer at 192.0.2.1, smoltcp-style.
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

    /// Passive open with an MSS-only SYN; returns (listener fd, accepted fd, our ISS).
    pub fn established_passive(&mut self) -> (Fd, Fd, u32) {
        self.established_passive_with(&[TcpOption::Mss(1460)], 65535)
    }

    /// Passive open whose SYN carries `syn_options` and whose third segment announces `window`.
    pub fn established_passive_with(&mut self, syn_options: &[TcpOption<'_>], window: u16) -> (Fd, Fd, u32) {
        let l = self.listen(5);
        self.send(S, PEER_ISN, 0, 65535, syn_options, b"");
        let synack = self.recv().expect("SYN-ACK");
        assert_eq!(synack.flags, S | A);
        self.send(A, PEER_ISN + 1, synack.seq + 1, window, &[], b"");
        let (fd, _) = self.host.accept(l).unwrap();
        (l, fd, synack.seq)
    }

    /// Active open without options on the peer's side; returns (fd, our ISS).
    pub fn established_active(&mut self) -> (Fd, u32) {
        let fd = self.host.socket(Domain::Inet).unwrap();
        self.host.bind(fd, SocketAddr::new(LOCAL_IP.into(), self.local_port)).unwrap();
        assert_eq!(
            self.host.connect(self.now, fd, SocketAddr::new(REMOTE_IP.into(), self.remote_port)),
            Err(Errno::EINPROGRESS)
        );
        let syn = self.recv().expect("SYN");
        self.send(S | A, PEER_ISN, syn.seq + 1, 65535, &[TcpOption::Mss(1460)], b"");
        let ack = self.recv().expect("ACK of the SYN-ACK");
        assert_eq!((ack.flags, ack.seq, ack.ack), (A, syn.seq + 1, PEER_ISN + 1));
        (fd, syn.seq)
    }
}

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
