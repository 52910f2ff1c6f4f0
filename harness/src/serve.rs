//! `tcpdrill serve`: the reference stack as a real TCP, on the real clock, behind a TUN device, so that the Linux
//! kernel (any program through its sockets) talks to it. Between the device and the stack, a seeded link shim
//! drops, duplicates, delays and reorders as the simulator's [`LinkConfig`] says (this kernel has no netem), and
//! `--pcap` records what crossed it. The stack runs small standard services: echo (RFC 862), discard (RFC 863),
//! chargen (RFC 864) and a sink that reports the byte count and SHA-256 of what each connection sent it. It is also
//! a client ([`Served::connect`], `tcpdrill connect`): it sends a server bytes and reports what came back.
//!
//! The device lives in the network namespace of the thread that starts serving (the command line makes one of
//! its own): the kernel there has `kernel_ip/24` on it, and the stack answers for `stack_ip` beyond it. Nothing
//! outside that namespace is touched.

mod endpoint;
pub mod ether;
pub mod shim;

use crate::backend::netlink;
use crate::backend::CallResult;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;
use tcpdrill_stack::host::{Domain, Host, Shutdown};
use tcpdrill_stack::sim::LinkConfig;
use tcpdrill_stack::{Config, Errno, FourTuple, Instant, TcpState};

/// A service the served stack runs on a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// RFC 862: sends back what it receives.
    Echo,
    /// RFC 863: reads and drops.
    Discard,
    /// RFC 864: sends the character pattern until the peer closes.
    Chargen,
    /// Reads everything and reports its length and SHA-256 when the peer closes.
    Sink,
}

impl Service {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Service::Echo => "echo",
            Service::Discard => "discard",
            Service::Chargen => "chargen",
            Service::Sink => "sink",
        }
    }
}

/// What serving is set up with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The reference stack's address.
    pub stack_ip: Ipv4Addr,
    /// The kernel's address on the device (a /24 with `stack_ip`), or none (the device is a link for a harness
    /// that impersonates peers on it: the raw backend).
    pub kernel_ip: Option<Ipv4Addr>,
    /// A TAP device (Ethernet frames, ARP for the stack's address) instead of a TUN device (IP datagrams).
    pub tap: bool,
    /// The call endpoint: the agent protocol, its calls made on the served stack (`--agent-listen`).
    pub agent: Option<crate::agent::AgentConfig>,
    /// The services and their ports.
    pub services: Vec<(Service, u16)>,
    /// Sysctl-named knobs of the stack (`net.ipv4.tcp_syncookies=2`).
    pub knobs: Vec<(String, String)>,
    /// What the shim does to datagrams, each way.
    pub link: LinkConfig,
    /// The shim's seed (and the stack's).
    pub seed: u64,
    /// Where to record what crossed the shim.
    pub pcap: Option<PathBuf>,
    /// SYNs from spoofed addresses the shim injects towards the stack.
    pub flood: Option<Flood>,
}

/// A SYN flood the shim injects: SYNs to the stack's `port` from addresses of 203.0.113.0/24 (RFC 5737's third
/// documentation range, never the kernel's), none of which answers; the stack's answers to them are swallowed
/// by the shim and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flood {
    /// How many SYNs.
    pub syns: u32,
    /// To which port of the stack.
    pub port: u16,
    /// How many per millisecond.
    pub per_ms: u32,
}

impl Flood {
    /// Whether this flood may run against a stack at `stack_ip`: bounded like every traffic loop (at most ten
    /// million SYNs, a thousand per millisecond), and from addresses that are not the stack's own network.
    pub fn check(&self, stack_ip: Ipv4Addr) -> Result<(), String> {
        if !(1..=10_000_000).contains(&self.syns) {
            return Err(format!("--syn-flood {}: from 1 to 10000000 SYNs", self.syns));
        }
        if !(1..=1000).contains(&self.per_ms) {
            return Err(format!("--syn-flood-rate {}: from 1 to 1000 SYNs per millisecond", self.per_ms));
        }
        if spoofed(stack_ip.octets()) {
            return Err(format!(
                "--syn-flood: the flood's SYNs come from 203.0.113.0/24, the stack's own network at --address \
                 {stack_ip}: give the stack an address of 192.0.2.0/24 or 198.51.100.0/24"
            ));
        }
        Ok(())
    }
}

/// Whether `ip` is one a [`Flood`] spoofs.
fn spoofed(ip: [u8; 4]) -> bool {
    ip[..3] == [203, 0, 113]
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            stack_ip: Ipv4Addr::new(192, 0, 2, 2),
            kernel_ip: Some(Ipv4Addr::new(192, 0, 2, 1)),
            tap: false,
            agent: None,
            services: vec![(Service::Echo, 7), (Service::Discard, 9), (Service::Chargen, 19), (Service::Sink, 5001)],
            knobs: Vec::new(),
            link: LinkConfig::perfect(Duration::ZERO),
            seed: 1,
            pcap: None,
            flood: None,
        }
    }
}

/// What a sink connection received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkReport {
    /// The peer.
    pub peer: SocketAddr,
    /// Bytes received.
    pub bytes: u64,
    /// Their SHA-256, in hex.
    pub sha256: String,
}

/// What a serving run did, when it stops.
#[derive(Debug, Clone, Default)]
pub struct ServeStats {
    /// Datagrams the shim was handed, dropped and duplicated.
    pub link: [u64; 3],
    /// Connections accepted.
    pub accepted: u64,
    /// The most connections the stack held at once.
    pub peak_connections: usize,
    /// Segments with RST: the stack's with ACK (an abort, or the answer to a segment without ACK), the stack's
    /// without (RFC 9293 3.10.7.1's answer to a segment with an ACK for no connection: a stray duplicate after
    /// the close, which a reordering link delivers), and the kernel's of each kind (Linux aborts with ACK too).
    pub rst: [u64; 4],
    /// SYN cookies the stack sent, and connections opened by the ACK of one.
    pub cookies: [u64; 2],
    /// Flood SYNs injected, and the stack's datagrams to their spoofed sources, which the shim swallowed.
    pub flood: [u64; 2],
    /// The most connections in SYN-RECEIVED at once.
    pub peak_syn_received: usize,
    /// The data segments the shim dropped on their first crossing (see [`shim::Loss`]): the same for a seed in
    /// every run of the same transfer.
    pub losses: Vec<shim::Loss>,
}

/// Whether a datagram is an IPv4 TCP segment with RST: with ACK (`Some(true)`) or without.
fn rst_kind(d: &[u8]) -> Option<bool> {
    let ihl = usize::from(d.first().map_or(0, |b| b & 0x0f)) * 4;
    let flags = *d.get(ihl + 13)?;
    (d[0] >> 4 == 4 && d.get(9) == Some(&6) && flags & 0x04 != 0).then_some(flags & 0x10 != 0)
}

/// What a client connection sends.
#[derive(Debug)]
pub enum Payload {
    /// This many bytes of RFC 864's character pattern ([`chargen_byte`]).
    Pattern(u64),
    /// A file's contents (opened when the connection starts).
    File(PathBuf),
}

/// What a client connection of the served stack did, once it is over.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientReport {
    /// The server.
    pub to: SocketAddr,
    /// The connection's four-tuple, once it had one.
    pub tuple: Option<FourTuple>,
    /// Bytes sent and their SHA-256.
    pub sent: u64,
    /// The SHA-256 of what was sent, in hex.
    pub sent_sha256: String,
    /// Bytes received back.
    pub received: u64,
    /// Their SHA-256, in hex.
    pub received_sha256: String,
    /// Why the connection failed (a refused connect, a reset, a timeout, an unreadable file); `None` when it
    /// ended with the server's FIN after ours.
    pub error: Option<String>,
    /// The stack's state for the connection just after it closed it (TIME-WAIT for the active closer).
    pub state_after_close: Option<TcpState>,
    /// From the connect call to the close.
    pub elapsed: Duration,
}

impl ClientReport {
    /// The report of a connection that failed before it had a four-tuple.
    fn never_connected(to: SocketAddr, error: String) -> ClientReport {
        ClientReport {
            to,
            tuple: None,
            sent: 0,
            sent_sha256: hex(Sha256::new()),
            received: 0,
            received_sha256: hex(Sha256::new()),
            error: Some(error),
            state_after_close: None,
            elapsed: Duration::ZERO,
        }
    }
}

/// A request to the serving thread.
enum Request {
    Connect(SocketAddr, Payload, mpsc::Sender<ClientReport>),
    Agent(endpoint::Op, mpsc::Sender<endpoint::Answer>),
    Dump(mpsc::Sender<Vec<String>>),
}

/// A stack being served; stopped (and its device gone) when dropped or [`Served::stop`]ped.
pub struct Served {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<ServeStats, String>>>,
    agent: Option<std::thread::JoinHandle<Result<(), String>>>,
    /// Where the call endpoint listens, when there is one.
    pub agent_addr: Option<SocketAddr>,
    requests: mpsc::Sender<Request>,
    /// Each sink connection's report, as it closes.
    pub sinks: mpsc::Receiver<SinkReport>,
}

impl Served {
    /// Opens a connection from the stack to `to` that sends `payload`, half-closes, reads until the server
    /// closes and then closes: its report arrives on the receiver when it is over.
    pub fn connect(&self, to: SocketAddr, payload: Payload) -> mpsc::Receiver<ClientReport> {
        let (tx, rx) = mpsc::channel();
        // A stopped server drops the sender: the receiver then reports a disconnect.
        let _ = self.requests.send(Request::Connect(to, payload, tx));
        rx
    }

    /// Each connection of the stack as [`tcpdrill_stack::Tcb::summary`] writes it, with any invariant it
    /// breaks: what a stuck transfer's report shows.
    pub fn dump(&self) -> Vec<String> {
        let (tx, rx) = mpsc::channel();
        if self.requests.send(Request::Dump(tx)).is_err() {
            return Vec::new();
        }
        rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default()
    }

    /// Stops serving: what it did, or why it failed.
    pub fn stop(self) -> Result<ServeStats, String> {
        self.finish().map(|(stats, _)| stats)
    }

    /// Stops serving: what it did and the sink reports not taken yet, or why it failed.
    pub fn finish(mut self) -> Result<(ServeStats, Vec<SinkReport>), String> {
        self.stop.store(true, Ordering::Relaxed);
        let t = self.thread.take().expect("joined once");
        let stats = t.join().unwrap_or_else(|_| Err("the serving thread panicked".into()));
        if let Some(a) = self.agent.take() {
            a.join().unwrap_or_else(|_| Err("the call endpoint panicked".into()))?;
        }
        let stats = stats?;
        Ok((stats, self.sinks.try_iter().collect()))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(a) = self.agent.take() {
            let _ = a.join();
        }
    }
}

/// The stack's clock at the start of a run: the wall clock's microseconds since 1970. A real TCP's ISN and
/// timestamp clocks run on between runs (RFC 9293 3.4.1, RFC 7323 5.4); restarted at one value, a run's ISNs and
/// timestamps would repeat the last run's, on the same four-tuple when the seed is the same, and a peer still
/// holding that connection (LAST-ACK, TIME-WAIT) would answer the new SYN with an ACK instead.
fn epoch() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1_000_000, |d| d.as_micros() as u64)
}

/// Creates the TUN device in this thread's namespace and serves on a thread of its own (in the same
/// namespace), until stopped.
pub fn start(cfg: ServeConfig) -> Result<Served, String> {
    if let Some(f) = &cfg.flood {
        f.check(cfg.stack_ip)?;
    }
    if cfg.agent.as_ref().is_some_and(|a| a.allow_shell) {
        return Err("the served stack's call endpoint runs no shell commands".into());
    }
    let tun = device(&cfg)?;
    let (tx, sinks) = mpsc::channel();
    let (requests, rx) = mpsc::channel();
    let wake = Arc::new(endpoint::Wake::new()?);
    let agent_cfg = cfg.agent.clone();
    let server = Server::new(cfg, tun, tx, rx, wake.clone())?;
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::spawn(move || server.run(&s));
    let mut served =
        Served { stop: stop.clone(), thread: Some(thread), agent: None, agent_addr: None, requests, sinks };
    if let Some(a) = agent_cfg {
        let r = served.requests.clone();
        let make: crate::agent::MakeTarget =
            Arc::new(move |ip| Box::new(endpoint::Remote::new(r.clone(), wake.clone(), ip)));
        let (addr_tx, addr_rx) = mpsc::channel();
        served.agent = Some(std::thread::spawn(move || {
            crate::agent::serve_on(
                a,
                stop,
                |addr| {
                    let _ = addr_tx.send(addr);
                },
                "tcpdrill_ref",
                make,
            )
        }));
        match addr_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(addr) => served.agent_addr = Some(addr),
            Err(_) => {
                let why = served.agent.take().map(|a| a.join());
                return Err(match why {
                    Some(Ok(Err(e))) => format!("the call endpoint: {e}"),
                    _ => "the call endpoint did not start".into(),
                });
            }
        }
    }
    Ok(served)
}

/// The device's name.
pub const DEVICE: &str = "tdserve0";

fn device(cfg: &ServeConfig) -> Result<tun::Device, String> {
    let mut rtnl = netlink::Rtnl::open()?;
    rtnl.link_up(netlink::index("lo")?)?;
    let mut t = tun::Configuration::default();
    t.tun_name(DEVICE);
    if cfg.tap {
        t.layer(tun::Layer::L2);
    }
    if let Some(ip) = cfg.kernel_ip {
        t.address(ip).netmask((255, 255, 255, 0));
    }
    let tun = tun::create(&t).map_err(|e| format!("creating the TUN device: {e}"))?;
    // No IPv6 chatter on the device (off before it is up, or its router solicitation goes out first); the kernel
    // segments and checksums what it sends (no offload asked for).
    let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{DEVICE}/disable_ipv6"), "1");
    rtnl.link_up(netlink::index(DEVICE)?)?;
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let fd = tun.as_raw_fd();
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
    }
    Ok(tun)
}

/// One connection of a service.
struct Conn {
    fd: i32,
    service: Service,
    peer: SocketAddr,
    /// Bytes read and not yet sent back (echo).
    pending: Vec<u8>,
    /// The peer closed its side.
    eof: bool,
    /// The connection failed (reset, timed out): nothing more to do but close it.
    dead: bool,
    /// Sink and client: bytes received and their hash so far. Chargen: where in the pattern.
    bytes: u64,
    hash: Sha256,
    /// The call error that ended the connection.
    error: Option<Errno>,
    /// The stack's own connection, when it is one.
    client: Option<Box<Client>>,
}

impl Conn {
    fn new(fd: i32, service: Service, peer: SocketAddr, client: Option<Box<Client>>) -> Conn {
        Conn {
            fd,
            service,
            peer,
            pending: Vec::new(),
            eof: false,
            dead: false,
            bytes: 0,
            hash: Sha256::new(),
            error: None,
            client,
        }
    }
}

/// The sending side of a connection the stack opened.
struct Client {
    to: SocketAddr,
    source: Source,
    /// Bytes of the payload written to the stack so far, and their hash.
    sent: u64,
    sent_hash: Sha256,
    /// The payload is all sent and our FIN asked for.
    shut: bool,
    /// A payload that could not be read.
    failure: Option<String>,
    started: std::time::Instant,
    report: mpsc::Sender<ClientReport>,
}

/// Where a client's bytes come from.
enum Source {
    Pattern(u64),
    File(std::fs::File),
}

impl Client {
    /// The next bytes of the payload, at most `max`; empty at its end.
    fn take(&mut self, max: usize) -> Vec<u8> {
        let chunk = match &mut self.source {
            Source::Pattern(total) => {
                // Taken only when what was taken before is all written.
                let n = (*total - self.sent).min(max as u64);
                (self.sent..self.sent + n).map(chargen_byte).collect()
            }
            Source::File(f) => {
                let mut b = vec![0u8; max];
                match f.read(&mut b) {
                    Ok(n) => b.truncate(n),
                    Err(e) => {
                        self.failure = Some(format!("reading the file to send: {e}"));
                        b.clear();
                    }
                }
                b
            }
        };
        chunk
    }
}

fn hex(h: Sha256) -> String {
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

struct Server {
    host: Host,
    tun: tun::Device,
    link: shim::Shim,
    start: std::time::Instant,
    epoch: u64,
    listeners: Vec<(i32, Service)>,
    conns: Vec<Conn>,
    sinks: mpsc::Sender<SinkReport>,
    requests: mpsc::Receiver<Request>,
    flood: Option<Flood>,
    stack_ip: Ipv4Addr,
    pcap: Option<pcap_file::pcap::PcapWriter<std::io::BufWriter<std::fs::File>>>,
    stats: ServeStats,
    /// The Ethernet end of a TAP device.
    ether: Option<ether::Ether>,
    /// The call endpoint's session, while a harness is connected.
    session: Option<endpoint::Session>,
    /// What the call endpoint wakes this thread with.
    wake: Arc<endpoint::Wake>,
}

/// RFC 864's pattern: 72-character lines, each starting one character further along the 95 printable ASCII
/// characters.
pub fn chargen_byte(pos: u64) -> u8 {
    let (line, col) = (pos / 74, pos % 74);
    match col {
        72 => b'\r',
        73 => b'\n',
        _ => b' ' + ((line + col) % 95) as u8,
    }
}

impl Server {
    fn new(
        cfg: ServeConfig,
        tun: tun::Device,
        sinks: mpsc::Sender<SinkReport>,
        requests: mpsc::Receiver<Request>,
        wake: Arc<endpoint::Wake>,
    ) -> Result<Server, String> {
        let mut host = Host::new(Config::default(), &[IpAddr::V4(cfg.stack_ip)], cfg.seed);
        for (k, v) in &cfg.knobs {
            host.set_knob(k, v).map_err(|e| format!("--sysctl {k}={v}: {e}"))?;
        }
        let mut listeners = Vec::new();
        for (service, port) in &cfg.services {
            let e = |e: Errno| format!("{} on port {port}: {e:?}", service.name());
            let fd = host.socket(Domain::Inet).map_err(e)?;
            host.set_nonblocking(fd, true).map_err(e)?;
            host.bind(fd, SocketAddr::new(IpAddr::V4(cfg.stack_ip), *port)).map_err(e)?;
            host.listen(fd, 1024).map_err(e)?;
            listeners.push((fd, *service));
        }
        let pcap = match &cfg.pcap {
            None => None,
            Some(p) => {
                let f = std::fs::File::create(p).map_err(|e| format!("creating {}: {e}", p.display()))?;
                let header = pcap_file::pcap::PcapHeader {
                    datalink: pcap_file::DataLink::IPV4,
                    ..pcap_file::pcap::PcapHeader::default()
                };
                Some(
                    pcap_file::pcap::PcapWriter::with_header(std::io::BufWriter::new(f), header)
                        .map_err(|e| e.to_string())?,
                )
            }
        };
        let link = shim::Shim::new(cfg.link, cfg.seed);
        Ok(Server {
            host,
            tun,
            link,
            start: std::time::Instant::now(),
            epoch: epoch(),
            listeners,
            conns: Vec::new(),
            sinks,
            requests,
            flood: cfg.flood,
            stack_ip: cfg.stack_ip,
            pcap,
            stats: ServeStats::default(),
            ether: cfg.tap.then(|| ether::Ether::new(cfg.stack_ip)),
            session: None,
            wake,
        })
    }

    fn now(&self) -> Instant {
        Instant::from_micros(self.epoch + self.start.elapsed().as_micros() as u64)
    }

    /// Counts a RST in [`ServeStats::rst`]: the stack's from index 0, the kernel's from 2; with ACK first.
    fn count_rst(&mut self, d: &[u8], from: usize) {
        if let Some(ack) = rst_kind(d) {
            self.stats.rst[from + usize::from(!ack)] += 1;
        }
    }

    fn record(&mut self, d: &[u8]) {
        if let Some(w) = self.pcap.as_mut() {
            let t = self.start.elapsed();
            let _ = w.write_packet(&pcap_file::pcap::PcapPacket::new(t, d.len() as u32, d));
        }
    }

    fn run(mut self, stop: &AtomicBool) -> Result<ServeStats, String> {
        let mut buf = vec![0u8; 65_536];
        // Once stopped, what the shim holds is still delivered (for at most a second): the stack's last ACK of a
        // peer's FIN, held there for a moment, would otherwise leave the peer in LAST-ACK.
        let mut drain_until = None;
        loop {
            if stop.load(Ordering::Relaxed) {
                let until = *drain_until.get_or_insert_with(|| std::time::Instant::now() + Duration::from_secs(1));
                if self.link.next_arrival().is_none() || std::time::Instant::now() >= until {
                    break;
                }
            }
            let now = self.now();
            self.exchange(now, &mut buf, true)?;
            if self.host.poll_timeout().is_some_and(|t| t <= now) {
                self.host.on_timeout(now);
            }
            self.wake.drain();
            // The calls below, and the services after them, at one time no earlier than the host's own clock:
            // a request handled at a later time than the services' would take the host's clock backwards.
            let now = self.now();
            while let Ok(r) = self.requests.try_recv() {
                match r {
                    Request::Connect(to, payload, report) => self.connect(now, to, payload, report),
                    Request::Dump(answer) => {
                        let all = self
                            .host
                            .connections()
                            .map(|t| match t.check_invariants() {
                                Ok(()) => t.summary(),
                                Err(e) => format!("{}\n  BROKEN INVARIANT: {e}", t.summary()),
                            })
                            .collect();
                        let _ = answer.send(all);
                    }
                    Request::Agent(op, answer) => {
                        // What the harness put on the link before it made this call reaches the stack first (the
                        // call came by another way, and may overtake it): a RST injected, then tcp_state().
                        self.exchange(now, &mut buf, false)?;
                        let a = self.agent(now, op);
                        let _ = answer.send(a);
                    }
                }
            }
            self.services(now);
            while let Some(d) = self.host.poll_transmit() {
                // Recorded as sent, before the shim, as the kernel's are.
                self.record(&d);
                self.count_rst(&d, 0);
                self.link.send(now, 1, d);
            }
            while let Some(e) = self.host.poll_event() {
                if let tcpdrill_stack::HostEvent::SynCookie { accepted, .. } = e {
                    self.stats.cookies[usize::from(accepted)] += 1;
                }
            }
            let (mut all, mut syn_received) = (0, 0);
            for t in self.host.connections() {
                all += 1;
                syn_received += usize::from(t.state() == TcpState::SynReceived);
            }
            self.stats.peak_connections = self.stats.peak_connections.max(all);
            self.stats.peak_syn_received = self.stats.peak_syn_received.max(syn_received);
            self.wait();
        }
        if let Some(w) = self.pcap.take() {
            w.into_writer().flush().map_err(|e| format!("writing the pcap file: {e}"))?;
        }
        self.stats.link = self.link.stats;
        self.stats.losses = std::mem::take(&mut self.link.losses);
        Ok(self.stats)
    }

    /// What the device has, onto the shim towards the stack (and the flood's SYNs, when `flood`); then what the
    /// shim delivers by `now`, to the stack or out through the device.
    fn exchange(&mut self, now: Instant, buf: &mut [u8], flood: bool) -> Result<(), String> {
        // From the kernel, onto the shim towards the stack.
        loop {
            match self.tun.read(buf) {
                Ok(n) if n > 0 => {
                    let d = match self.ether.as_mut() {
                        None => buf[..n].to_vec(),
                        Some(e) => {
                            let got = e.receive(&buf[..n]);
                            for f in got.send {
                                let _ = self.tun.write(&f);
                            }
                            match got.datagram {
                                Some(d) => d,
                                None => continue,
                            }
                        }
                    };
                    self.record(&d);
                    self.count_rst(&d, 2);
                    self.link.send(now, 0, d);
                }
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(format!("reading the TUN device: {e}")),
            }
        }
        if flood {
            self.inject_flood(now);
        }
        // What the shim delivers now: to the stack, or out through the device.
        for (dst, d) in self.link.due(now) {
            if dst == 1 && d.len() >= 20 && spoofed([d[16], d[17], d[18], d[19]]) {
                self.stats.flood[1] += 1;
            } else if dst == 0 {
                // A malformed datagram is the stack's to count, not a reason to stop.
                let _ = self.host.receive(now, &d);
            } else if let Some(e) = self.ether.as_mut() {
                for f in e.send(d, std::time::Instant::now()) {
                    let _ = self.tun.write(&f);
                }
            } else {
                let _ = self.tun.write(&d);
            }
        }
        Ok(())
    }

    /// One request of the call endpoint's session, at `now`.
    fn agent(&mut self, now: Instant, op: endpoint::Op) -> endpoint::Answer {
        use endpoint::{Answer, Op, Session};
        match op {
            Op::Begin(ip) => {
                // One harness at a time: a session not ended (its agent thread gone) ends here.
                if let Some(old) = self.session.take() {
                    old.end(&mut self.host, now);
                }
                self.session = Some(Session::begin(&self.host, ip));
                Answer::Done
            }
            Op::End => {
                if let Some(s) = self.session.take() {
                    s.end(&mut self.host, now);
                }
                Answer::Done
            }
            op => match self.session.as_mut() {
                Some(s) => s.answer(&mut self.host, now, op),
                None => Answer::Call(CallResult::Err(Errno::EBADF)),
            },
        }
    }

    /// Hands the shim the flood's SYNs due by now: `per_ms` for each millisecond since serving began.
    fn inject_flood(&mut self, now: Instant) {
        let Some(f) = self.flood else { return };
        let due = (self.start.elapsed().as_millis() as u64 * u64::from(f.per_ms)).min(u64::from(f.syns));
        while self.stats.flood[0] < due {
            let i = self.stats.flood[0];
            // 254 hosts and ports from 1024 up: distinct four-tuples for 16 million SYNs, then again.
            let src = std::net::Ipv4Addr::new(203, 0, 113, 1 + (i % 254) as u8);
            let tcp = tcpdrill_stack::wire::TcpRepr {
                src_port: 1024 + ((i / 254) % 64_512) as u16,
                dst_port: f.port,
                seq: tcpdrill_stack::SeqNum((i as u32).wrapping_mul(0x9e37_79b9)),
                ack: tcpdrill_stack::SeqNum(0),
                flags: tcpdrill_stack::wire::TcpFlags::SYN,
                window: 64240,
                urgent: 0,
                options: tcpdrill_stack::wire::TcpOptions::EMPTY,
                payload: b"",
            };
            let d = tcpdrill_stack::wire::TcpDatagram::new(IpAddr::V4(src), IpAddr::V4(self.stack_ip), tcp);
            if let Ok(d) = d.to_vec() {
                self.link.send(now, 0, d);
            }
            self.stats.flood[0] += 1;
        }
    }

    /// Sleeps until the device has something, the call endpoint a request, the stack's next timer or the shim's
    /// next arrival, 5 ms at most.
    fn wait(&self) {
        let now = self.now();
        let next = [self.host.poll_timeout(), self.link.next_arrival()].into_iter().flatten().min();
        let until = next.map_or(Duration::from_millis(5), |t| t.saturating_since(now)).min(Duration::from_millis(5));
        if until.is_zero() && next.is_some() {
            return;
        }
        let mut pfds = [
            libc::pollfd { fd: self.tun.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: self.wake.fd(), events: libc::POLLIN, revents: 0 },
        ];
        let ms = until.as_micros().div_ceil(1000) as i32;
        // SAFETY: two valid pollfds.
        unsafe { libc::poll(pfds.as_mut_ptr(), 2, ms) };
    }

    /// Starts a client connection (its report goes at once if the connect call fails).
    fn connect(&mut self, now: Instant, to: SocketAddr, payload: Payload, report: mpsc::Sender<ClientReport>) {
        let (source, opening) = match payload {
            Payload::Pattern(n) => (Source::Pattern(n), Ok(())),
            Payload::File(path) => match std::fs::File::open(&path) {
                Ok(f) => (Source::File(f), Ok(())),
                Err(e) => (Source::Pattern(0), Err(format!("opening {}: {e}", path.display()))),
            },
        };
        let client = Client {
            to,
            source,
            sent: 0,
            sent_hash: Sha256::new(),
            shut: false,
            failure: None,
            started: std::time::Instant::now(),
            report,
        };
        if let Err(e) = opening {
            let _ = client.report.send(ClientReport::never_connected(to, e));
            return;
        }
        let opened = self.host.socket(Domain::Inet).and_then(|fd| {
            self.host.set_nonblocking(fd, true)?;
            match self.host.connect(now, fd, to) {
                Ok(()) | Err(Errno::EINPROGRESS) => Ok(fd),
                Err(e) => {
                    let _ = self.host.close(now, fd);
                    Err(e)
                }
            }
        });
        match opened {
            // A client reads what comes back as a sink does.
            Ok(fd) => self.conns.push(Conn::new(fd, Service::Sink, to, Some(Box::new(client)))),
            Err(e) => {
                let _ = client.report.send(ClientReport::never_connected(to, format!("connect: {e:?}")));
            }
        }
    }

    /// Accepts what the listeners have and moves each connection's data along.
    fn services(&mut self, now: Instant) {
        for &(l, service) in &self.listeners {
            while let Ok((fd, peer)) = self.host.accept(l) {
                let _ = self.host.set_nonblocking(fd, true);
                self.stats.accepted += 1;
                self.conns.push(Conn::new(fd, service, peer, None));
            }
        }
        let host = &mut self.host;
        let sinks = &self.sinks;
        self.conns.retain_mut(|c| {
            // Bounded rounds: a fast peer must not keep the loop from the device.
            for _ in 0..64 {
                if !step(host, now, c) {
                    break;
                }
            }
            // Chargen sends until the peer closes (RFC 864), so it is done at the peer's FIN too; a client is done
            // when the server has closed, whatever it had left to send.
            let done = c.dead || (c.eof && (c.pending.is_empty() || c.client.is_some()));
            if done {
                if let Some(client) = c.client.take() {
                    let tuple = host.fd_tuple(c.fd);
                    let _ = host.close(now, c.fd);
                    let error = client.failure.clone().or_else(|| c.error.map(|e| format!("{e:?}"))).or_else(|| {
                        (!client.shut).then(|| {
                            format!("the server closed after {} of the bytes to send had been sent", client.sent)
                        })
                    });
                    let _ = client.report.send(ClientReport {
                        to: client.to,
                        tuple,
                        sent: client.sent,
                        sent_sha256: hex(client.sent_hash),
                        received: c.bytes,
                        received_sha256: hex(std::mem::take(&mut c.hash)),
                        error,
                        state_after_close: tuple.and_then(|t| host.tcp_state(&t)),
                        elapsed: client.started.elapsed(),
                    });
                    return false;
                }
                // A sink reports what it had, also when the connection failed before the peer's FIN.
                if c.service == Service::Sink {
                    let sha256 = std::mem::take(&mut c.hash).finalize().iter().map(|b| format!("{b:02x}")).collect();
                    let _ = sinks.send(SinkReport { peer: c.peer, bytes: c.bytes, sha256 });
                }
                let _ = host.close(now, c.fd);
            }
            !done
        });
    }
}

/// Anything but "not now" from a call means the connection is gone (reset, timed out, closed under us).
fn failed(e: Errno, c: &mut Conn) {
    if e != Errno::EAGAIN {
        c.dead = true;
        c.error.get_or_insert(e);
    }
}

/// One round of a connection's service; whether it made progress.
fn step(host: &mut Host, now: Instant, c: &mut Conn) -> bool {
    let mut progress = false;
    if let Some(client) = c.client.as_mut() {
        if c.pending.is_empty() && !client.shut {
            c.pending = client.take(65_536);
            if client.failure.is_some() {
                c.dead = true;
                return false;
            }
            if c.pending.is_empty() {
                client.shut = true;
                if let Err(e) = host.shutdown(now, c.fd, Shutdown::Write) {
                    failed(e, c);
                }
            }
        }
    }
    if !c.pending.is_empty() {
        match host.write(now, c.fd, &c.pending) {
            Ok(n) if n > 0 => {
                if let Some(client) = c.client.as_mut() {
                    client.sent += n as u64;
                    client.sent_hash.update(&c.pending[..n]);
                }
                c.pending.drain(..n);
                progress = true;
            }
            Ok(_) => {}
            Err(e) => failed(e, c),
        }
    }
    if c.service == Service::Chargen && !c.eof && !c.dead {
        let chunk: Vec<u8> = (c.bytes..c.bytes + 16_384).map(chargen_byte).collect();
        match host.write(now, c.fd, &chunk) {
            Ok(n) => {
                c.bytes += n as u64;
                progress |= n > 0;
            }
            Err(e) => failed(e, c),
        }
    }
    if c.dead {
        return false;
    }
    // Echo reads only while what it read has gone back, so a peer that does not read is flow-controlled.
    if c.dead || c.eof || (c.service == Service::Echo && !c.pending.is_empty()) {
        return progress;
    }
    match host.read(now, c.fd, 65_536, false) {
        Ok(data) if data.is_empty() => {
            c.eof = true;
            if c.service == Service::Chargen {
                let _ = host.shutdown(now, c.fd, Shutdown::Write);
                c.pending.clear();
            }
            true
        }
        Ok(data) => {
            match c.service {
                Service::Echo => c.pending.extend_from_slice(&data),
                Service::Sink => {
                    c.bytes += data.len() as u64;
                    c.hash.update(&data);
                }
                Service::Discard | Service::Chargen => {}
            }
            true
        }
        Err(e) => {
            failed(e, c);
            progress
        }
    }
}

/// Moves the calling thread into network namespace `name` (`ip netns add` makes it if it is not there), for
/// `tcpdrill serve --netns`.
pub fn enter_named_netns(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(format!("{name:?} is not a network namespace name"));
    }
    let path = std::path::Path::new("/run/netns").join(name);
    if !path.exists() {
        let o = std::process::Command::new("ip")
            .args(["netns", "add", name])
            .output()
            .map_err(|e| format!("running ip netns add: {e} (install iproute2)"))?;
        if !o.status.success() {
            return Err(format!("ip netns add {name}: {}", String::from_utf8_lossy(&o.stderr).trim()));
        }
    }
    let f = std::fs::File::open(&path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    // SAFETY: setns on a namespace file we opened; it affects this thread only.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!("entering {name}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}
