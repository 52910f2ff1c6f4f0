//! The smoltcp backend: smoltcp's TCP (crates.io, the most used Rust TCP/IP stack) in-process, on the executor's
//! virtual clock (smoltcp takes time as a value), behind a device that hands IP datagrams to and from the
//! executor: deterministic, instant, no privileges.
//!
//! The script's BSD calls map onto smoltcp's socket API as a smoltcp user would write them. smoltcp has no
//! accept queue: a listening socket becomes the connection. So `listen()` makes one listening socket, and each time
//! it leaves LISTEN (a SYN came) it joins the descriptor's queue of connections and a new listening socket takes
//! its place; `accept()` takes the oldest that is ESTABLISHED (or CLOSE-WAIT), as Linux's accept queue holds
//! only those. `shutdown(SHUT_WR)` is `close()` (a FIN), `close()` with SO_LINGER {1, 0} is `abort()` (a RST).
//! Options smoltcp has: TCP_NODELAY (Nagle), SO_KEEPALIVE with TCP_KEEPIDLE (its keep-alive interval); the
//! others, and sysctls, have no counterpart and make the script skip with that reason (`check_knob`, the
//! preflight's `unsupported_call`).

use super::{Backend, BackendInfo, Call, CallResult, Capabilities, IpVersion, Micros};
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration as SDuration, Instant as SInstant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint, IpListenEndpoint};
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use tcpdrill_stack::host::{pollbits, Domain, Shutdown, SockOptName, SockOptValue};
use tcpdrill_stack::{Errno, FourTuple, TcpState};

/// The smoltcp backend in the registry.
pub const INFO: BackendInfo = BackendInfo {
    name: "smoltcp",
    symbols: || vec!["smoltcp"],
    netns: false,
    real_time: false,
    exclusive: || false,
    // A stack under test, not a reference: its results are a report of their own (`smoltcp::` cases), not a
    // column every script must pass in.
    on_request: true,
    runs: |_| Ok(()),
    available: || Ok(()),
    make: |ip| Ok(Box::new(Smoltcp::new(ip))),
};

/// A gateway on the stack's /16 (packetdrill's netmask): any address does on a link without neighbours.
const GATEWAY_IP4: std::net::Ipv4Addr = std::net::Ipv4Addr::new(192, 168, 0, 2);

/// Script time 0 on smoltcp's clock.
const EPOCH: i64 = 1_000_000;

/// Each socket's buffers unless `net.ipv4.tcp_rmem` / `tcp_wmem` say otherwise. smoltcp offers its free buffer
/// as its window, so this is its first window: Linux's (44 segments of 1460 bytes), which scripts written for
/// Linux expect; a larger buffer would also change smoltcp's window scale (0 up to 64 KiB).
const BUFFER: usize = 64_240;

/// The sysctls that have a counterpart in smoltcp, as they stand.
#[derive(Debug, Clone, Copy)]
struct Knobs {
    /// `net.ipv4.tcp_timestamps`: whether new sockets get smoltcp's timestamp generator (smoltcp's default is no;
    /// Linux's, which the scripts assume, yes).
    timestamps: bool,
    /// The default of `net.ipv4.tcp_rmem` and `tcp_wmem`: new sockets' buffer sizes.
    rcvbuf: usize,
    sndbuf: usize,
    /// `net.ipv4.tcp_keepalive_time`: TCP_KEEPIDLE's default, in seconds.
    keepidle: u64,
}

impl Default for Knobs {
    fn default() -> Knobs {
        Knobs { timestamps: true, rcvbuf: BUFFER, sndbuf: BUFFER, keepidle: 7200 }
    }
}

/// The device: datagrams the executor injected, and those smoltcp sent.
#[derive(Debug, Default)]
struct Queue {
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
    mtu: usize,
}

struct Rx(Vec<u8>);

impl RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

struct Tx<'a>(&'a mut VecDeque<Vec<u8>>);

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut b = vec![0u8; len];
        let r = f(&mut b);
        self.0.push_back(b);
        r
    }
}

impl Device for Queue {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _: SInstant) -> Option<(Rx, Tx<'_>)> {
        let d = self.rx.pop_front()?;
        Some((Rx(d), Tx(&mut self.tx)))
    }

    fn transmit(&mut self, _: SInstant) -> Option<Tx<'_>> {
        Some(Tx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ip;
        c.max_transmission_unit = self.mtu;
        c
    }
}

/// What a descriptor is.
#[derive(Debug)]
enum Sock {
    Fresh { bound: Option<SocketAddr> },
    Listening { listener: SocketHandle, queue: VecDeque<SocketHandle> },
    Conn { handle: SocketHandle, connect_reported: bool },
}

#[derive(Debug)]
struct Fd {
    sock: Sock,
    domain: Domain,
    nonblocking: bool,
    linger0: bool,
    nagle: bool,
    keepalive: bool,
    keepidle: u64,
    reuseaddr: bool,
    /// The address it was bound to (or connected from).
    local: Option<SocketAddr>,
}

impl Fd {
    fn new(domain: Domain, keepidle: u64) -> Fd {
        Fd {
            sock: Sock::Fresh { bound: None },
            domain,
            nonblocking: false,
            linger0: false,
            nagle: true,
            keepalive: false,
            keepidle,
            reuseaddr: false,
            local: None,
        }
    }
}

/// The socket options the mapping carries onto smoltcp's socket (or keeps for it).
const OPTIONS: [SockOptName; 5] =
    [SockOptName::ReuseAddr, SockOptName::Linger, SockOptName::NoDelay, SockOptName::KeepAlive, SockOptName::KeepIdle];

/// smoltcp's interface on `dev`, with the executor's address for `ip` and a default route to the peer. It takes
/// the device's MTU when it is made (smoltcp keeps a copy of the capabilities): the `mtu` knob makes a new one.
fn interface(dev: &mut Queue, ip: IpVersion) -> Interface {
    let mut iface = Interface::new(IfaceConfig::new(HardwareAddress::Ip), dev, SInstant::from_micros(EPOCH));
    let local = ip.local_ip();
    let prefix = if local.is_ipv6() { 64 } else { 16 };
    iface.update_ip_addrs(|a| {
        let _ = a.push(IpCidr::new(to_ip(local), prefix));
    });
    // The peer is on another network: a default route through the link (Medium::Ip needs no neighbour).
    match local {
        IpAddr::V4(_) => {
            let _ = iface.routes_mut().add_default_ipv4_route(GATEWAY_IP4);
        }
        IpAddr::V6(_) => {
            let _ = iface.routes_mut().add_default_ipv6_route(super::GATEWAY_IP6);
        }
    }
    iface
}

/// smoltcp on a virtual clock.
pub struct Smoltcp {
    iface: Interface,
    dev: Queue,
    sockets: SocketSet<'static>,
    fds: BTreeMap<i32, Fd>,
    now: Micros,
    out: VecDeque<(Micros, Vec<u8>)>,
    ip: IpVersion,
    next_port: u16,
    /// When smoltcp next wants to be polled, as of the last poll.
    next_at: Option<Micros>,
    /// Sockets no descriptor holds any more (closed, on their way to CLOSED through FIN-WAIT or TIME-WAIT), with
    /// the SO_REUSEADDR their descriptor had: they still hold their port for `bind`.
    orphans: BTreeMap<SocketHandle, bool>,
    knobs: Knobs,
    /// What the knobs set that smoltcp does otherwise, for the trace.
    notes: Vec<(Micros, String)>,
}

thread_local! {
    /// The virtual clock in milliseconds, for smoltcp's timestamp generator, which is a plain `fn() -> u32` and
    /// so cannot hold a reference to the backend: set before every poll, on the thread that polls.
    static CLOCK_MS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// TSval as Linux's (a millisecond clock): the executor maps outbound TSvals as packetdrill does, so only their
/// progress with time matters.
fn tsval() -> u32 {
    CLOCK_MS.with(|c| c.get())
}

fn to_ip(a: IpAddr) -> IpAddress {
    match a {
        IpAddr::V4(v) => IpAddress::Ipv4(v),
        IpAddr::V6(v) => match v.to_ipv4_mapped() {
            Some(v4) => IpAddress::Ipv4(v4),
            None => IpAddress::Ipv6(v),
        },
    }
}

fn from_ip(a: IpAddress) -> IpAddr {
    match a {
        IpAddress::Ipv4(v) => IpAddr::V4(v),
        IpAddress::Ipv6(v) => IpAddr::V6(v),
    }
}

/// smoltcp's state as RFC 9293 names it.
fn state(s: tcp::State) -> TcpState {
    match s {
        tcp::State::Closed => TcpState::Closed,
        tcp::State::Listen => TcpState::Listen,
        tcp::State::SynSent => TcpState::SynSent,
        tcp::State::SynReceived => TcpState::SynReceived,
        tcp::State::Established => TcpState::Established,
        tcp::State::FinWait1 => TcpState::FinWait1,
        tcp::State::FinWait2 => TcpState::FinWait2,
        tcp::State::CloseWait => TcpState::CloseWait,
        tcp::State::Closing => TcpState::Closing,
        tcp::State::LastAck => TcpState::LastAck,
        tcp::State::TimeWait => TcpState::TimeWait,
    }
}

impl Smoltcp {
    /// smoltcp with the executor's addresses for IP version `ip` (IPv4 on the wire for IPv4-mapped runs).
    pub fn new(ip: IpVersion) -> Smoltcp {
        let mut dev = Queue { mtu: 1500, ..Queue::default() };
        let iface = interface(&mut dev, ip);
        Smoltcp {
            iface,
            dev,
            sockets: SocketSet::new(Vec::new()),
            fds: BTreeMap::new(),
            now: 0,
            out: VecDeque::new(),
            ip,
            next_port: 40_000,
            next_at: None,
            orphans: BTreeMap::new(),
            knobs: Knobs::default(),
            notes: Vec::new(),
        }
    }

    fn instant(&self) -> SInstant {
        SInstant::from_micros(EPOCH + self.now)
    }

    /// Lets smoltcp do what is due now, then moves the descriptors' listeners along and takes what it sent.
    fn pump(&mut self) {
        for _ in 0..64 {
            let t = self.instant();
            CLOCK_MS.with(|c| c.set(t.total_millis() as u32));
            let changed = self.iface.poll(t, &mut self.dev, &mut self.sockets);
            let spawned = self.maintain();
            if changed == smoltcp::iface::PollResult::None && !spawned {
                break;
            }
        }
        while let Some(d) = self.dev.tx.pop_front() {
            self.out.push_back((self.now, d));
        }
        // Closed sockets no descriptor holds are gone.
        let held: Vec<SocketHandle> = self.fds.values().flat_map(|f| f.handles()).collect();
        let gone: Vec<SocketHandle> = self
            .sockets
            .iter()
            .filter_map(|(h, s)| match s {
                smoltcp::socket::Socket::Tcp(t) if t.state() == tcp::State::Closed && !held.contains(&h) => Some(h),
                _ => None,
            })
            .collect();
        for h in gone {
            self.sockets.remove(h);
            self.orphans.remove(&h);
        }
        let t = self.instant();
        self.next_at = self.iface.poll_at(t, &self.sockets).map(|at| (at.total_micros() - EPOCH).max(self.now));
    }

    /// A listening socket that left LISTEN is a connection: it joins its descriptor's queue and a new
    /// listening socket takes its place. Whether any did.
    fn maintain(&mut self) -> bool {
        let mut any = false;
        for f in self.fds.values_mut() {
            let Sock::Listening { listener, queue } = &mut f.sock else { continue };
            let s = self.sockets.get_mut::<tcp::Socket>(*listener);
            if s.state() == tcp::State::Listen {
                continue;
            }
            let ep = s.listen_endpoint();
            let mut fresh = new_socket(&self.knobs);
            if fresh.listen(ep).is_err() {
                continue;
            }
            queue.push_back(*listener);
            *listener = self.sockets.add(fresh);
            any = true;
        }
        any
    }

    fn ephemeral(&mut self) -> u16 {
        self.next_port = if self.next_port >= 60_999 { 40_000 } else { self.next_port + 1 };
        self.next_port
    }

    fn socket(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(h)
    }

    fn do_call(&mut self, call: &Call) -> Result<i64, Errno> {
        match call {
            Call::Socket(d) => {
                let fd = (3..).find(|f| !self.fds.contains_key(f)).unwrap_or(3);
                self.fds.insert(fd, Fd::new(*d, self.knobs.keepidle));
                Ok(i64::from(fd))
            }
            Call::Bind(fd, a) => {
                let me = self.fds.get(fd).ok_or(Errno::EBADF)?;
                if !matches!(me.sock, Sock::Fresh { bound: None }) {
                    return Err(Errno::EINVAL);
                }
                if !a.ip().is_unspecified() && to_ip(a.ip()) != to_ip(self.ip.local_ip()) {
                    return Err(Errno::EADDRNOTAVAIL);
                }
                // The port's other users, as Linux's inet_csk_bind_conflict sees them: the same port on an
                // overlapping address, unless both set SO_REUSEADDR and the other is not listening. (smoltcp
                // itself has no bind; its user keeps this table.)
                let overlap = |l: IpAddr| l.is_unspecified() || a.ip().is_unspecified() || to_ip(l) == to_ip(a.ip());
                let by_fd = self.fds.iter().any(|(other, f)| {
                    let Some(l) = f.local else { return false };
                    let listening = matches!(f.sock, Sock::Listening { .. });
                    other != fd
                        && l.port() == a.port()
                        && overlap(l.ip())
                        && !(me.reuseaddr && f.reuseaddr && !listening)
                });
                let by_orphan = self.orphans.iter().any(|(h, reuse)| {
                    let s = self.sockets.get::<tcp::Socket>(*h);
                    s.state() != tcp::State::Closed
                        && s.local_endpoint().is_some_and(|e| e.port == a.port())
                        && !(me.reuseaddr && *reuse)
                });
                let conflict = a.port() != 0 && (by_fd || by_orphan);
                if conflict {
                    return Err(Errno::EADDRINUSE);
                }
                let port = if a.port() == 0 { self.ephemeral() } else { a.port() };
                let bound = SocketAddr::new(a.ip(), port);
                let f = self.fds.get_mut(fd).ok_or(Errno::EBADF)?;
                f.sock = Sock::Fresh { bound: Some(bound) };
                f.local = Some(bound);
                Ok(0)
            }
            Call::Listen(fd, _) => {
                let f = self.fds.get(fd).ok_or(Errno::EBADF)?;
                if matches!(f.sock, Sock::Listening { .. }) {
                    return Ok(0);
                }
                let Sock::Fresh { bound } = f.sock else { return Err(Errno::EINVAL) };
                // An unbound socket listens on a port of the ephemeral range, as Linux's inet_autobind.
                let local = match bound {
                    Some(b) => b,
                    None => SocketAddr::new(IpAddr::from([0, 0, 0, 0]), self.ephemeral()),
                };
                // Two listeners on one port and overlapping addresses: EADDRINUSE, SO_REUSEADDR or not (Linux's
                // inet_csk_get_port at listen time).
                let taken = self.fds.iter().any(|(other, o)| {
                    let same = o.local.is_some_and(|l| {
                        l.port() == local.port()
                            && (l.ip().is_unspecified() || local.ip().is_unspecified() || l.ip() == local.ip())
                    });
                    other != fd && same && matches!(o.sock, Sock::Listening { .. })
                });
                if taken {
                    return Err(Errno::EADDRINUSE);
                }
                let mut s = new_socket(&self.knobs);
                let addr = (!local.ip().is_unspecified()).then(|| to_ip(local.ip()));
                s.listen(IpListenEndpoint { addr, port: local.port() }).map_err(|_| Errno::EINVAL)?;
                let listener = self.sockets.add(s);
                let f = self.fds.get_mut(fd).ok_or(Errno::EBADF)?;
                f.sock = Sock::Listening { listener, queue: VecDeque::new() };
                f.local = Some(local);
                Ok(0)
            }
            Call::Accept(fd) => {
                let f = self.fds.get(fd).ok_or(Errno::EBADF)?;
                let Sock::Listening { queue, .. } = &f.sock else { return Err(Errno::EINVAL) };
                let ready = queue.iter().position(|h| {
                    matches!(
                        self.sockets.get::<tcp::Socket>(*h).state(),
                        tcp::State::Established | tcp::State::CloseWait
                    )
                });
                let Some(i) = ready else { return Err(Errno::EAGAIN) };
                // The child has the listener's options, as Linux's sk_clone_lock gives it.
                let (domain, nagle, reuseaddr, linger0, keepalive, keepidle) =
                    (f.domain, f.nagle, f.reuseaddr, f.linger0, f.keepalive, f.keepidle);
                let Some(Fd { sock: Sock::Listening { queue, .. }, .. }) = self.fds.get_mut(fd) else {
                    return Err(Errno::EBADF);
                };
                let h = queue.remove(i).ok_or(Errno::EAGAIN)?;
                let new = (3..).find(|f| !self.fds.contains_key(f)).unwrap_or(3);
                let local = self.socket(h).local_endpoint().map(|e| SocketAddr::new(from_ip(e.addr), e.port));
                self.fds.insert(
                    new,
                    Fd {
                        sock: Sock::Conn { handle: h, connect_reported: true },
                        nagle,
                        reuseaddr,
                        linger0,
                        keepalive,
                        keepidle,
                        local,
                        ..Fd::new(domain, self.knobs.keepidle)
                    },
                );
                Ok(i64::from(new))
            }
            Call::Connect(fd, remote) => {
                let f = self.fds.get_mut(fd).ok_or(Errno::EBADF)?;
                match &mut f.sock {
                    Sock::Conn { handle, connect_reported } => {
                        let h = *handle;
                        let reported = *connect_reported;
                        let st = self.socket(h).state();
                        return match st {
                            tcp::State::SynSent | tcp::State::SynReceived => Err(Errno::EALREADY),
                            tcp::State::Closed if !reported => {
                                self.mark_reported(*fd);
                                Err(Errno::ECONNREFUSED)
                            }
                            _ if !reported => {
                                self.mark_reported(*fd);
                                Ok(0)
                            }
                            _ => Err(Errno::EISCONN),
                        };
                    }
                    Sock::Listening { .. } => return Err(Errno::EISCONN),
                    Sock::Fresh { .. } => {}
                }
                let Sock::Fresh { bound } = f.sock else { return Err(Errno::EINVAL) };
                let (nagle, keepalive, keepidle) = (f.nagle, f.keepalive, f.keepidle);
                let port = match bound.map(|b| b.port()) {
                    Some(p) if p != 0 => p,
                    _ => self.ephemeral(),
                };
                let mut s = new_socket(&self.knobs);
                s.set_nagle_enabled(nagle);
                if keepalive {
                    s.set_keep_alive(Some(SDuration::from_secs(keepidle)));
                }
                let local = IpListenEndpoint { addr: Some(to_ip(self.ip.local_ip())), port };
                let remote = IpEndpoint::new(to_ip(remote.ip()), remote.port());
                s.connect(self.iface.context(), remote, local).map_err(|e| match e {
                    tcp::ConnectError::InvalidState => Errno::EISCONN,
                    tcp::ConnectError::Unaddressable => Errno::ENETUNREACH,
                })?;
                let handle = self.sockets.add(s);
                let f = self.fds.get_mut(fd).ok_or(Errno::EBADF)?;
                f.sock = Sock::Conn { handle, connect_reported: false };
                f.local = Some(SocketAddr::new(self.ip.local_ip(), port));
                Err(Errno::EINPROGRESS)
            }
            Call::Read { fd, len, peek, null } => {
                let h = self.conn(*fd)?;
                let s = self.socket(h);
                let mut buf = vec![0u8; (*len).min(1 << 20)];
                let r = if *peek { s.peek_slice(&mut buf) } else { s.recv_slice(&mut buf) };
                match r {
                    // Nothing to read yet, a zero-length read included (Linux's tcp_recvmsg: EAGAIN; with data
                    // queued, a zero-length read returns 0).
                    Ok(0) if *len > 0 || s.recv_queue() == 0 => Err(Errno::EAGAIN),
                    Ok(n) if *null && n > 0 => Err(Errno::EFAULT),
                    Ok(n) => Ok(n as i64),
                    Err(tcp::RecvError::Finished) => Ok(0),
                    Err(tcp::RecvError::InvalidState) => Err(match s.state() {
                        tcp::State::SynSent | tcp::State::SynReceived => Errno::EAGAIN,
                        _ => Errno::ECONNRESET,
                    }),
                }
            }
            Call::Write { fd, len, null, .. } => {
                // Linux's sk_stream_wait_connect: a stream socket that is not connecting is a broken pipe.
                let h = match self.fds.get(fd).ok_or(Errno::EBADF)?.sock {
                    Sock::Conn { handle, .. } => handle,
                    _ => return Err(Errno::EPIPE),
                };
                let s = self.socket(h);
                if !s.may_send() {
                    return Err(match s.state() {
                        tcp::State::SynSent | tcp::State::SynReceived => Errno::EAGAIN,
                        // Reset after the peer's FIN (CLOSE-WAIT): Linux's tcp_reset reports EPIPE there.
                        tcp::State::Closed if matches!(s.recv_slice(&mut []), Err(tcp::RecvError::Finished)) => {
                            Errno::EPIPE
                        }
                        tcp::State::Closed => Errno::ECONNRESET,
                        _ => Errno::EPIPE,
                    });
                }
                if *null && *len > 0 {
                    return Err(Errno::EFAULT);
                }
                match s.send_slice(&vec![0u8; *len]) {
                    Ok(0) if *len > 0 => Err(Errno::EAGAIN),
                    Ok(n) => Ok(n as i64),
                    Err(_) => Err(Errno::EPIPE),
                }
            }
            Call::Shutdown(fd, how) => {
                let h = self.conn(*fd)?;
                match how {
                    Shutdown::Write | Shutdown::Both => {
                        self.socket(h).close();
                        Ok(0)
                    }
                    Shutdown::Read => Err(Errno::EOPNOTSUPP),
                }
            }
            Call::Close(fd) => {
                let f = self.fds.remove(fd).ok_or(Errno::EBADF)?;
                match f.sock {
                    Sock::Fresh { .. } => {}
                    Sock::Listening { listener, queue } => {
                        // Linux's inet_csk_listen_stop: children never accepted are reset.
                        self.sockets.remove(listener);
                        for h in queue {
                            self.socket(h).abort();
                        }
                    }
                    Sock::Conn { handle, .. } => {
                        let st = self.socket(handle).state();
                        let quiet = matches!(
                            st,
                            tcp::State::SynSent | tcp::State::Closing | tcp::State::LastAck | tcp::State::TimeWait
                        );
                        if f.linger0 && quiet {
                            // RFC 9293 3.10.5: ABORT in these states deletes the TCB and sends nothing (Linux's
                            // tcp_need_reset); smoltcp's abort() always sends a RST, so the socket goes instead.
                            self.sockets.remove(handle);
                        } else {
                            // A close() with data unread resets (RFC 9293 3.6 SHLD-3 for a CLOSE after which
                            // nothing can be read: BSD's close(), where smoltcp's close() is a half-close).
                            let s = self.socket(handle);
                            if f.linger0 || s.recv_queue() > 0 {
                                s.abort();
                            } else {
                                s.close();
                            }
                            self.orphans.insert(handle, f.reuseaddr);
                        }
                    }
                }
                Ok(0)
            }
            Call::SetSockOpt(fd, name, value) => {
                let v = match value {
                    SockOptValue::Int(i) => *i,
                    SockOptValue::Linger { onoff, linger } => i64::from(*onoff && *linger == 0),
                    SockOptValue::Info(_) => return Err(Errno::EINVAL),
                };
                let f = self.fds.get_mut(fd).ok_or(Errno::EBADF)?;
                match name {
                    SockOptName::ReuseAddr => f.reuseaddr = v != 0,
                    SockOptName::Linger => f.linger0 = v != 0,
                    SockOptName::NoDelay => f.nagle = v == 0,
                    SockOptName::KeepAlive => f.keepalive = v != 0,
                    SockOptName::KeepIdle if v > 0 => f.keepidle = v as u64,
                    _ => return Err(Errno::ENOPROTOOPT),
                }
                let (nagle, keepalive, keepidle) = (f.nagle, f.keepalive, f.keepidle);
                if let Sock::Conn { handle, .. } = f.sock {
                    let s = self.socket(handle);
                    s.set_nagle_enabled(nagle);
                    s.set_keep_alive(keepalive.then(|| SDuration::from_secs(keepidle)));
                }
                Ok(0)
            }
            Call::BytesReadable(fd) => {
                let h = self.conn(*fd)?;
                Ok(self.socket(h).recv_queue() as i64)
            }
            Call::GetFl(fd) => {
                let f = self.fds.get(fd).ok_or(Errno::EBADF)?;
                Ok(0o2 | if f.nonblocking { 0o4000 } else { 0 })
            }
            Call::SetNonBlocking(fd, on) => {
                self.fds.get_mut(fd).ok_or(Errno::EBADF)?.nonblocking = *on;
                Ok(0)
            }
            _ => Err(Errno::ENOSYS),
        }
    }

    /// New data for a connection closed with close() (an orphan in FIN-WAIT) resets it (RFC 9293 3.6 SHLD-3:
    /// nobody will read it), as Linux's tcp_rcv_state_process does: the orphan goes, and smoltcp answers the
    /// segment as one for no connection, <SEQ=SEG.ACK><CTL=RST>. (smoltcp does not say what RCV.NXT is, so a
    /// retransmission of data it had also counts as new.)
    fn reset_orphan_for(&mut self, datagram: &[u8]) {
        use smoltcp::wire::{Ipv4Packet, Ipv6Packet, TcpPacket};
        let (src, dst, tcp) = match datagram.first().map(|b| b >> 4) {
            Some(4) => match Ipv4Packet::new_checked(datagram) {
                Ok(p) if p.next_header() == smoltcp::wire::IpProtocol::Tcp => {
                    (IpAddress::Ipv4(p.src_addr()), IpAddress::Ipv4(p.dst_addr()), p.payload().to_vec())
                }
                _ => return,
            },
            Some(6) => match Ipv6Packet::new_checked(datagram) {
                Ok(p) if p.next_header() == smoltcp::wire::IpProtocol::Tcp => {
                    (IpAddress::Ipv6(p.src_addr()), IpAddress::Ipv6(p.dst_addr()), p.payload().to_vec())
                }
                _ => return,
            },
            _ => return,
        };
        let Ok(t) = TcpPacket::new_checked(&tcp[..]) else { return };
        if t.payload().is_empty() {
            return;
        }
        let hit = self.orphans.keys().copied().find(|h| {
            let s = self.sockets.get::<tcp::Socket>(*h);
            matches!(s.state(), tcp::State::FinWait1 | tcp::State::FinWait2)
                && s.local_endpoint() == Some(IpEndpoint::new(dst, t.dst_port()))
                && s.remote_endpoint() == Some(IpEndpoint::new(src, t.src_port()))
        });
        if let Some(h) = hit {
            self.sockets.remove(h);
            self.orphans.remove(&h);
        }
    }

    fn mark_reported(&mut self, fd: i32) {
        if let Some(Fd { sock: Sock::Conn { connect_reported, .. }, .. }) = self.fds.get_mut(&fd) {
            *connect_reported = true;
        }
    }

    fn conn(&self, fd: i32) -> Result<SocketHandle, Errno> {
        match &self.fds.get(&fd).ok_or(Errno::EBADF)?.sock {
            Sock::Conn { handle, .. } => Ok(*handle),
            _ => Err(Errno::ENOTCONN),
        }
    }

    /// poll()'s bits for `fd`, as the reference stack's `Host::poll` gives them.
    fn poll_bits(&self, fd: i32) -> Option<u16> {
        let f = self.fds.get(&fd)?;
        Some(match &f.sock {
            Sock::Fresh { .. } => pollbits::OUT | pollbits::HUP,
            Sock::Listening { queue, .. } => {
                let ready = queue.iter().any(|h| {
                    matches!(
                        self.sockets.get::<tcp::Socket>(*h).state(),
                        tcp::State::Established | tcp::State::CloseWait
                    )
                });
                if ready {
                    pollbits::IN
                } else {
                    0
                }
            }
            Sock::Conn { handle, .. } => {
                let s = self.sockets.get::<tcp::Socket>(*handle);
                let mut b = 0;
                if s.can_recv() || (!s.may_recv() && s.state() != tcp::State::SynSent) {
                    b |= pollbits::IN;
                }
                if s.can_send()
                    || (!s.may_send() && !matches!(s.state(), tcp::State::SynSent | tcp::State::SynReceived))
                {
                    b |= pollbits::OUT;
                }
                if s.state() == tcp::State::Closed {
                    b |= pollbits::HUP;
                }
                b
            }
        })
    }

    fn find(&self, t: &FourTuple) -> Option<TcpState> {
        let (local, remote) = (to_ip(t.local.ip()), to_ip(t.remote.ip()));
        for (_, s) in self.sockets.iter() {
            // (TCP sockets only: the socket set holds no other kind.)
            let smoltcp::socket::Socket::Tcp(s) = s;
            if s.state() == tcp::State::Listen {
                let ep = s.listen_endpoint();
                if t.remote.port() == 0 && ep.port == t.local.port() && ep.addr.is_none_or(|a| a == local) {
                    return Some(TcpState::Listen);
                }
                continue;
            }
            let (Some(l), Some(r)) = (s.local_endpoint(), s.remote_endpoint()) else { continue };
            if l.addr == local && l.port == t.local.port() && r.addr == remote && r.port == t.remote.port() {
                return Some(state(s.state()));
            }
        }
        None
    }
}

impl Fd {
    fn handles(&self) -> Vec<SocketHandle> {
        match &self.sock {
            Sock::Fresh { .. } => Vec::new(),
            Sock::Listening { listener, queue } => std::iter::once(*listener).chain(queue.iter().copied()).collect(),
            Sock::Conn { handle, .. } => vec![*handle],
        }
    }
}

/// A socket with the knobs' buffers, and smoltcp's timestamps when `net.ipv4.tcp_timestamps` asks for them.
fn new_socket(k: &Knobs) -> tcp::Socket<'static> {
    let mut s =
        tcp::Socket::new(tcp::SocketBuffer::new(vec![0u8; k.rcvbuf]), tcp::SocketBuffer::new(vec![0u8; k.sndbuf]));
    s.set_tsval_generator(k.timestamps.then_some(tsval as smoltcp::wire::TcpTimestampGenerator));
    s
}

impl Backend for Smoltcp {
    fn name(&self) -> &'static str {
        "smoltcp"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { shell: false, python: false, real_time: false, linux_api: false, icmp: false, calls: true }
    }

    fn addresses(&self) -> (IpAddr, IpAddr) {
        (self.ip.local_ip(), self.ip.remote_ip())
    }

    fn ip_version(&self) -> IpVersion {
        self.ip
    }

    fn now(&self) -> Micros {
        self.now
    }

    fn advance_to(&mut self, t: Micros) {
        // Bounded: each round moves the clock to smoltcp's next deadline.
        for _ in 0..1_000_000 {
            match self.next_event_time() {
                Some(at) if at <= t => {
                    self.now = self.now.max(at);
                    self.pump();
                    if self.next_event_time().is_some_and(|n| n <= self.now) {
                        // Due again at once: a microsecond on, so time always moves.
                        self.now += 1;
                    }
                }
                _ => break,
            }
        }
        self.now = self.now.max(t);
        self.pump();
    }

    fn next_event_time(&self) -> Option<Micros> {
        self.next_at
    }

    fn inject(&mut self, datagram: &[u8]) -> Result<(), String> {
        self.reset_orphan_for(datagram);
        self.dev.rx.push_back(datagram.to_vec());
        self.pump();
        Ok(())
    }

    fn next_outbound(&mut self, deadline: Micros) -> Option<(Micros, Vec<u8>)> {
        for _ in 0..1_000_000 {
            if let Some(p) = self.out.pop_front() {
                return Some(p);
            }
            match self.next_event_time() {
                Some(at) if at <= deadline => {
                    let before = self.now;
                    self.now = self.now.max(at);
                    self.pump();
                    if self.out.is_empty() && self.now == before {
                        self.now += 1;
                    }
                }
                _ => break,
            }
        }
        self.now = self.now.max(deadline);
        None
    }

    fn call(&mut self, call: &Call) -> CallResult {
        let r = match call {
            Call::TcpState(t) => {
                let s = self.find(t).unwrap_or(TcpState::Closed);
                return CallResult::Value(SockOptValue::Int(i64::from(s.linux_number())));
            }
            Call::Poll { fds, .. } => {
                let r = fds
                    .iter()
                    .map(|&(fd, ev)| match self.poll_bits(fd) {
                        None => super::POLLNVAL as i16,
                        Some(b) => (b & (ev as u16 | pollbits::ERR | pollbits::HUP)) as i16,
                    })
                    .collect();
                return CallResult::Polled(r);
            }
            Call::GetSockOpt(fd, name) => {
                let Some(f) = self.fds.get(fd) else { return CallResult::Err(Errno::EBADF) };
                return CallResult::Value(match name {
                    SockOptName::ReuseAddr => SockOptValue::Int(i64::from(f.reuseaddr)),
                    SockOptName::NoDelay => SockOptValue::Int(i64::from(!f.nagle)),
                    SockOptName::KeepAlive => SockOptValue::Int(i64::from(f.keepalive)),
                    SockOptName::KeepIdle => SockOptValue::Int(f.keepidle as i64),
                    SockOptName::Linger => SockOptValue::Linger { onoff: f.linger0, linger: 0 },
                    // The buffer the socket has, or will have when it connects or listens.
                    SockOptName::RcvBuf | SockOptName::SndBuf => {
                        let rcv = *name == SockOptName::RcvBuf;
                        SockOptValue::Int(match &f.sock {
                            Sock::Conn { handle, .. } => {
                                let s = self.sockets.get::<tcp::Socket>(*handle);
                                (if rcv { s.recv_capacity() } else { s.send_capacity() }) as i64
                            }
                            _ => (if rcv { self.knobs.rcvbuf } else { self.knobs.sndbuf }) as i64,
                        })
                    }
                    _ => return CallResult::Err(Errno::ENOPROTOOPT),
                });
            }
            Call::BytesReadable(_) => match self.do_call(call) {
                Ok(n) => return CallResult::Value(SockOptValue::Int(n)),
                Err(e) => return CallResult::Err(e),
            },
            c => self.do_call(c),
        };
        self.pump();
        match r {
            Ok(v) => CallResult::Ok(v),
            Err(e) => CallResult::Err(e),
        }
    }

    fn ready(&mut self, call: &Call) -> bool {
        let fd = match call {
            Call::Accept(fd) | Call::Connect(fd, _) | Call::Read { fd, .. } | Call::Write { fd, .. } => *fd,
            _ => return true,
        };
        match call {
            Call::Connect(..) => match self.conn(fd) {
                Ok(h) => !matches!(self.socket(h).state(), tcp::State::SynSent | tcp::State::SynReceived),
                Err(_) => true,
            },
            Call::Accept(_) | Call::Read { .. } => {
                self.poll_bits(fd).is_none_or(|b| b & (pollbits::IN | pollbits::HUP) != 0)
            }
            _ => self.poll_bits(fd).is_none_or(|b| b & (pollbits::OUT | pollbits::HUP) != 0),
        }
    }

    fn set_knob(&mut self, name: &str, value: &str) -> Result<(), String> {
        self.check_knob(name, value)?;
        let v = value.trim();
        let middle = || v.split_whitespace().nth(1).and_then(|m| m.parse().ok());
        match name {
            "mtu" => {
                self.dev.mtu = v.parse().map_err(|_| format!("bad MTU {value:?}"))?;
                // Knobs come before the first socket: nothing is lost with the old interface.
                self.iface = interface(&mut self.dev, self.ip);
            }
            "net.ipv4.tcp_timestamps" => self.knobs.timestamps = v != "0",
            "net.ipv4.tcp_rmem" => self.knobs.rcvbuf = middle().unwrap_or(BUFFER),
            "net.ipv4.tcp_wmem" => self.knobs.sndbuf = middle().unwrap_or(BUFFER),
            "net.ipv4.tcp_keepalive_time" => self.knobs.keepidle = v.parse().unwrap_or(7200),
            "net.ipv4.tcp_ecn" if v == "2" => self.notes.push((
                self.now,
                "net.ipv4.tcp_ecn=2 is 0 here: smoltcp has no ECN, and answers an ECN-setup SYN as any other".into(),
            )),
            _ => {}
        }
        Ok(())
    }

    /// A sysctl with a counterpart in smoltcp, or one whose value asks for what smoltcp always does; any other
    /// makes the script skip, with this reason.
    fn check_knob(&self, name: &str, value: &str) -> Result<(), String> {
        let v = value.trim();
        let buffers = |v: &str| {
            let n: Vec<Option<usize>> = v.split_whitespace().map(|x| x.parse().ok()).collect();
            n.len() == 3 && n.iter().all(|x| x.is_some_and(|x| x > 0))
        };
        match (name, v) {
            ("tso", _) => Ok(()),
            ("mtu", _) => v.parse::<usize>().map(|_| ()).map_err(|_| format!("bad MTU {value:?}")),
            // Linux's 2 (timestamps without the random offset) is 1 here: smoltcp has no offset.
            ("net.ipv4.tcp_timestamps", "0" | "1" | "2") => Ok(()),
            // What smoltcp always does: window scaling, SACK from a peer that offers it, no ECN of its own (and
            // with 2, none for a peer that asks: noted in the trace).
            ("net.ipv4.tcp_window_scaling" | "net.ipv4.tcp_sack", "1") | ("net.ipv4.tcp_ecn", "0" | "2") => Ok(()),
            ("net.ipv4.tcp_rmem" | "net.ipv4.tcp_wmem", v) if buffers(v) => Ok(()),
            // The cap on SO_RCVBUF / SO_SNDBUF, which the mapping does not have (scripts setting them skip):
            // any value leaves smoltcp as it is.
            ("net.core.rmem_max" | "net.core.wmem_max", v) if v.parse::<u64>().is_ok() => Ok(()),
            ("net.ipv4.tcp_keepalive_time", v) if v.parse::<u64>().is_ok_and(|s| s > 0) => Ok(()),
            ("net.ipv4.tcp_window_scaling" | "net.ipv4.tcp_sack", _) => {
                Err(format!("{name}={v}: smoltcp always does it and cannot be told not to"))
            }
            ("net.ipv4.tcp_ecn", _) => Err(format!("{name}={v}: smoltcp has no ECN")),
            _ => Err(format!("{name} has no counterpart in smoltcp")),
        }
    }

    fn notes(&mut self) -> Vec<(Micros, String)> {
        std::mem::take(&mut self.notes)
    }

    fn shell(&mut self, cmd: &str, _cwd: Option<&std::path::Path>, _: std::time::Instant) -> Result<(), String> {
        Err(format!("the smoltcp backend runs no shell commands ({cmd:?})"))
    }

    fn tcp_state(&mut self, tuple: &FourTuple) -> Option<TcpState> {
        self.find(tuple)
    }

    fn refuses(&self, call: &str, option: Option<SockOptName>, args: &[Option<i64>]) -> Option<String> {
        match call {
            "setsockopt" | "getsockopt" => match option {
                Some(o) if OPTIONS.contains(&o) => None,
                // Fixed when smoltcp's socket is made: read, not set.
                Some(SockOptName::RcvBuf | SockOptName::SndBuf) if call == "getsockopt" => None,
                Some(o) => Some(format!("smoltcp's TCP socket has no counterpart of {o:?}")),
                None => Some("smoltcp's TCP socket has no counterpart of this option".into()),
            },
            // SHUT_RD: smoltcp's close() is a half-close of the sending side only.
            "shutdown" if args.get(1) == Some(&Some(0)) => Some("smoltcp has no shutdown of the receiving side".into()),
            "epoll_create" | "epoll_ctl" | "epoll_wait" => Some("smoltcp's sockets have no epoll".into()),
            "sendmsg" | "recvmsg" | "sendto" | "recvfrom" | "writev" | "readv" | "sendfile" | "splice" | "open" => {
                Some("the smoltcp backend maps read, write, send and recv only".into())
            }
            _ => None,
        }
    }
}
