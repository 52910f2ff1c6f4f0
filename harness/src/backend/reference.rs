//! The reference backend: tcpdrill's own stack in-process, on a virtual clock that jumps straight to the next
//! script event or stack timer. Deterministic, instant (a 60 s TIME-WAIT costs microseconds), no privileges.

use super::{Backend, Call, CallResult, Capabilities, IpVersion, Micros};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use tcpdrill_stack::host::{pollbits, Domain, Host, HostEvent, SockOptName, SockOptValue};
use tcpdrill_stack::wire::WireError;
use tcpdrill_stack::{Config, Errno, FourTuple, Instant, TcpState};

/// The reference backend in the registry.
pub const INFO: super::BackendInfo = super::BackendInfo {
    name: "reference",
    // `tcpdrill_virtual_clock` for what only a virtual clock can show (a timer exact to the microsecond, two hours
    // of idleness): the reference stack served on a real clock is `tcpdrill_ref` without it.
    symbols: || vec!["tcpdrill_ref", "tcpdrill_virtual_clock"],
    netns: false,
    real_time: false,
    exclusive: || false,
    on_request: false,
    runs: |_| Ok(()),
    available: || Ok(()),
    make: |ip| Ok(Box::new(Reference::new_for(Config::default(), ip))),
};

/// The stack's seed (ISNs, cookies, ports): fixed, so that runs repeat.
pub const SEED: u64 = 0x7cd0_1122;

/// Script time 0 on the stack's clock: a little after its epoch, so that timers and ISNs look ordinary.
const EPOCH: u64 = 1_000_000;

/// The reference stack on a virtual clock.
pub struct Reference {
    host: Host,
    now: Micros,
    /// Datagrams the stack sent and nobody has taken yet, with their times.
    out: VecDeque<(Micros, Vec<u8>)>,
    /// Trace notes not yet taken (SYN cookies).
    notes: Vec<(Micros, String)>,
    /// The IP version it was made for.
    ip: IpVersion,
    /// How the script's calls become the host's.
    calls: HostCalls,
}

/// A script's socket calls made on a reference [`Host`], as the reference backend makes them and the served
/// stack's agent endpoint (`tcpdrill serve --agent-listen`) too: the calls the host has, poll and epoll on top
/// of its readiness, and tcp_state from its connection table.
#[derive(Debug, Default)]
pub struct HostCalls {
    /// The IP version of the run: with IPv4-mapped addresses an AF_INET6 socket is made as an AF_INET one.
    ip: IpVersion,
    /// epoll instances (descriptors from [`EPOLL_FD_BASE`] up, outside the stack's fd table): each watched
    /// descriptor with its events and data, in the order added.
    epolls: std::collections::BTreeMap<i32, Vec<(i32, u32, u64)>>,
}

/// Where the reference backend numbers its epoll instances: the stack's sockets never get that far.
const EPOLL_FD_BASE: i32 = 1 << 20;

impl HostCalls {
    /// Calls for a run in IP version `ip`.
    pub fn new(ip: IpVersion) -> HostCalls {
        HostCalls { ip, epolls: Default::default() }
    }

    /// Whether `fd` is one of the epoll instances these calls made.
    pub fn is_epoll(&self, fd: i32) -> bool {
        self.epolls.contains_key(&fd)
    }

    /// poll()'s `revents` for one pollfd as Linux's poll() reports it: the socket's readiness with POLLRDNORM
    /// beside POLLIN and POLLWRNORM beside POLLOUT (tcp_poll sets them together), masked by the events asked for
    /// plus POLLERR and POLLHUP, which are always reported; POLLNVAL for a descriptor that is not open.
    fn revents(h: &Host, fd: i32, events: i16) -> i16 {
        let Ok(mut bits) = h.poll(fd) else { return super::POLLNVAL as i16 };
        if bits & pollbits::IN != 0 {
            bits |= super::POLLRDNORM;
        }
        if bits & pollbits::OUT != 0 {
            bits |= super::POLLWRNORM;
        }
        (bits & (events as u16 | pollbits::ERR | pollbits::HUP)) as i16
    }

    /// A connection's state; with remote port 0, the listener on the local address (as the kernel's sock_diag
    /// lookup answers for the Linux backend).
    fn state_of(h: &Host, t: &FourTuple) -> Option<TcpState> {
        if let Some(s) = h.tcp_state(t) {
            return Some(s);
        }
        let any = SocketAddr::new(IpAddr::from([0, 0, 0, 0]), t.local.port());
        (t.remote.port() == 0 && (h.is_listening(&t.local) || h.is_listening(&any))).then_some(TcpState::Listen)
    }

    /// Makes `call` on `h` at `now`. What it sends is left in the host's queue.
    pub fn call(&mut self, h: &mut Host, now: Instant, call: &Call) -> CallResult {
        let res = match call {
            Call::Socket(Domain::Inet6) if self.ip == IpVersion::V4MappedV6 => h.socket(Domain::Inet).map(i64::from),
            Call::Socket(d) => h.socket(*d).map(i64::from),
            Call::Bind(fd, a) => h.bind(*fd, *a).map(|()| 0),
            Call::Listen(fd, b) => h.listen(*fd, *b).map(|()| 0),
            Call::Accept(fd) => h.accept(*fd).map(|(f, _)| i64::from(f)),
            Call::Connect(fd, a) => h.connect(now, *fd, *a).map(|()| 0),
            Call::Read { fd, len, null: true, .. } => match h.read(now, *fd, *len, true) {
                Ok(d) if !d.is_empty() => Err(Errno::EFAULT),
                other => other.map(|d| d.len() as i64),
            },
            Call::Read { fd, len, peek, null: false } => h.read(now, *fd, *len, *peek).map(|d| d.len() as i64),
            // A NULL buffer: whatever the socket's state says first (EPIPE, ENOTCONN, EAGAIN, end of stream),
            // else the copy from or to it fails, as in Linux's tcp_sendmsg / tcp_recvmsg.
            Call::Write { fd, len, null: true, .. } => match h.write(now, *fd, &[]) {
                Ok(_) if *len > 0 => Err(Errno::EFAULT),
                other => other.map(|n| n as i64),
            },
            Call::Write { fd, len, null: false, .. } => h.write(now, *fd, &vec![0u8; *len]).map(|n| n as i64),
            Call::Shutdown(fd, how) => h.shutdown(now, *fd, *how).map(|()| 0),
            Call::Close(fd) if self.epolls.remove(fd).is_some() => Ok(0),
            Call::Close(fd) => {
                let r = h.close(now, *fd).map(|()| 0);
                if r.is_ok() {
                    self.epolls.values_mut().for_each(|l| l.retain(|(f, ..)| f != fd));
                }
                r
            }
            Call::SetSockOpt(fd, n, v) => h.setsockopt(now, *fd, *n, *v).map(|()| 0),
            // The executor skips a script with an option the stack does not model (preflight) before it runs.
            Call::SetSockOptRaw { .. } | Call::GetSockOptRaw { .. } => Err(Errno::ENOPROTOOPT),
            Call::GetSockOpt(fd, n) => {
                return h.getsockopt(*fd, *n).map(CallResult::Value).unwrap_or_else(CallResult::Err);
            }
            Call::GetFl(fd) => h.is_nonblocking(*fd).map(|nb| 0o2 | if nb { 0o4000 } else { 0 }),
            Call::SetNonBlocking(fd, on) => h.set_nonblocking(*fd, *on).map(|()| 0),
            Call::BytesReadable(fd) => {
                // ioctl returns 0 and writes the count into its argument.
                return match h.read(now, *fd, usize::MAX, true) {
                    Ok(d) => CallResult::Value(SockOptValue::Int(d.len() as i64)),
                    Err(Errno::EAGAIN) => CallResult::Value(SockOptValue::Int(0)),
                    Err(e) => CallResult::Err(e),
                };
            }
            Call::Poll { fds, .. } => {
                return CallResult::Polled(fds.iter().map(|&(fd, events)| Self::revents(h, fd, events)).collect());
            }
            Call::EpollCreate(size) if *size <= 0 => Err(Errno::EINVAL),
            Call::EpollCreate(_) => {
                let fd = self.epolls.keys().next_back().map_or(EPOLL_FD_BASE, |k| k + 1);
                self.epolls.insert(fd, Vec::new());
                Ok(i64::from(fd))
            }
            Call::EpollCtl { epfd, op, fd, events, data } => {
                // Linux's ep_insert / ep_remove / ep_modify errors, level-triggered only (preflight skips
                // EPOLLET and EPOLLONESHOT here).
                let open = h.poll(*fd).is_ok();
                match self.epolls.get_mut(epfd) {
                    None => Err(Errno::EBADF),
                    Some(_) if !open => Err(Errno::EBADF),
                    Some(list) => {
                        let at = list.iter().position(|(f, ..)| f == fd);
                        match (*op, at) {
                            (1, Some(_)) => Err(Errno::EEXIST),
                            (1, None) => {
                                list.push((*fd, *events, *data));
                                Ok(0)
                            }
                            (2 | 3, None) => Err(Errno::ENOENT),
                            (2, Some(i)) => {
                                list.remove(i);
                                Ok(0)
                            }
                            (3, Some(i)) => {
                                list[i] = (*fd, *events, *data);
                                Ok(0)
                            }
                            _ => Err(Errno::EINVAL),
                        }
                    }
                }
            }
            Call::EpollWait { epfd, max, .. } => {
                let Some(list) = self.epolls.get(epfd) else { return CallResult::Err(Errno::EBADF) };
                if *max <= 0 {
                    return CallResult::Err(Errno::EINVAL);
                }
                // ep_item_poll asks the socket as poll does; a closed socket leaves the set (close() removes it
                // from every epoll in Linux).
                let ready: Vec<(u32, u64)> = list
                    .iter()
                    .filter_map(|&(fd, events, data)| {
                        let r = Self::revents(h, fd, (events & 0xffff) as u16 as i16);
                        (r != 0 && r != super::POLLNVAL as i16).then_some((r as u16 as u32, data))
                    })
                    .take(*max as usize)
                    .collect();
                return CallResult::Epolled(ready);
            }
            Call::TcpState(t) => {
                let s = Self::state_of(h, t).unwrap_or(TcpState::Closed);
                return CallResult::Value(SockOptValue::Int(i64::from(s.linux_number())));
            }
        };
        match res {
            Ok(v) => CallResult::Ok(v),
            Err(e) => CallResult::Err(e),
        }
    }

    /// Whether a call that would block can make progress now.
    pub fn ready(h: &Host, call: &Call) -> bool {
        let fd = match call {
            Call::Accept(fd) | Call::Connect(fd, _) | Call::Read { fd, .. } | Call::Write { fd, .. } => *fd,
            _ => return true,
        };
        let Ok(bits) = h.poll(fd) else { return true };
        match call {
            Call::Accept(_) | Call::Read { .. } => bits & (pollbits::IN | pollbits::ERR | pollbits::HUP) != 0,
            Call::Write { .. } => bits & (pollbits::OUT | pollbits::ERR | pollbits::HUP) != 0,
            Call::Connect(..) => {
                let state = h.fd_connection(fd).map(|t| t.state());
                !matches!(state, Some(TcpState::SynSent | TcpState::SynReceived))
            }
            _ => true,
        }
    }
}

impl Reference {
    /// A fresh IPv4 host with `config` and a fixed seed (runs are reproducible).
    pub fn new(config: Config) -> Reference {
        Reference::new_for(config, IpVersion::V4)
    }

    /// The same in IP version `ip`. With IPv4-mapped addresses the wire is IPv4, so the host is an IPv4 one and
    /// the script's AF_INET6 sockets are made as AF_INET ones: the stack's connections are the same either way.
    pub fn new_for(config: Config, ip: IpVersion) -> Reference {
        let host = Host::new(config, &[ip.local_ip()], SEED);
        Reference { host, now: 0, out: VecDeque::new(), notes: Vec::new(), ip, calls: HostCalls::new(ip) }
    }

    /// Script time of a stack instant.
    fn script_time(at: Instant) -> Micros {
        at.micros() as i64 - EPOCH as i64
    }

    /// The host, for inspection.
    pub fn host(&self) -> &Host {
        &self.host
    }

    fn instant(&self) -> Instant {
        Instant::from_micros(EPOCH + self.now as u64)
    }

    fn collect(&mut self) {
        while let Some(d) = self.host.poll_transmit() {
            self.out.push_back((self.now, d));
        }
    }

    /// Fires timers up to `t`, collecting what they send.
    fn run_until(&mut self, t: Micros) {
        let limit = Instant::from_micros(EPOCH + t.max(0) as u64);
        // Bounded: each round fires at least one timer; a stack bug that re-arms at the same instant stops here.
        for _ in 0..1_000_000 {
            match self.host.poll_timeout() {
                Some(at) if at <= limit => {
                    self.now = self.now.max(at.micros() as i64 - EPOCH as i64);
                    self.host.on_timeout(self.instant());
                    self.collect();
                }
                _ => break,
            }
        }
        self.now = self.now.max(t);
    }
}

/// The `tcpi_*` fields the reference stack's TCP_INFO has, in Linux's units (tcpi_unacked is not among them: the
/// stack counts bytes in flight, Linux segments).
pub const TCP_INFO_NAMES: &[&str] = &[
    "tcpi_state",
    "tcpi_retransmits",
    "tcpi_probes",
    "tcpi_snd_wscale",
    "tcpi_rcv_wscale",
    "tcpi_rto",
    "tcpi_snd_mss",
    "tcpi_rtt",
    "tcpi_rttvar",
    "tcpi_snd_cwnd",
];

impl Backend for Reference {
    fn name(&self) -> &'static str {
        "reference"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { shell: false, python: true, real_time: false, linux_api: false, icmp: false, calls: true }
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
        self.run_until(t);
    }

    fn next_event_time(&self) -> Option<Micros> {
        self.host.poll_timeout().map(|at| at.micros() as i64 - EPOCH as i64)
    }

    fn tcp_info(&mut self, fd: i32) -> Result<Vec<(&'static str, i64)>, String> {
        match self.host.getsockopt(fd, SockOptName::Info) {
            Ok(SockOptValue::Info(i)) => Ok(TCP_INFO_NAMES
                .iter()
                .zip([
                    i64::from(i.state),
                    i64::from(i.retransmits),
                    i64::from(i.probes),
                    i64::from(i.snd_wscale),
                    i64::from(i.rcv_wscale),
                    i.rto_us as i64,
                    i64::from(i.snd_mss),
                    i.rtt_us as i64,
                    i.rttvar_us as i64,
                    i64::from(i.snd_cwnd),
                ])
                .map(|(n, v)| (*n, v))
                .collect()),
            Ok(_) => Err("TCP_INFO read back as another option".to_string()),
            Err(e) => Err(format!("getsockopt(TCP_INFO) on fd {fd}: {e:?}")),
        }
    }

    fn tcp_info_names(&self) -> Option<&'static [&'static str]> {
        Some(TCP_INFO_NAMES)
    }

    fn inject(&mut self, datagram: &[u8]) -> Result<(), String> {
        let now = self.instant();
        let r = match self.host.receive(now, datagram) {
            // A wrong checksum (bad_csum) is the stack's to drop, as a kernel drops it: not a harness error.
            Err(WireError::BadTcpChecksum) => Ok(()),
            r => r.map_err(|e| e.to_string()),
        };
        self.collect();
        r
    }

    fn next_outbound(&mut self, deadline: Micros) -> Option<(Micros, Vec<u8>)> {
        loop {
            if let Some(p) = self.out.pop_front() {
                return Some(p);
            }
            match self.host.poll_timeout() {
                Some(at) if (at.micros() as i64 - EPOCH as i64) <= deadline => {
                    self.run_until(at.micros() as i64 - EPOCH as i64);
                }
                _ => {
                    self.now = self.now.max(deadline);
                    return None;
                }
            }
        }
    }

    fn call(&mut self, call: &Call) -> CallResult {
        let now = self.instant();
        let r = self.calls.call(&mut self.host, now, call);
        self.collect();
        r
    }

    fn ready(&mut self, call: &Call) -> bool {
        HostCalls::ready(&self.host, call)
    }

    fn set_knob(&mut self, name: &str, value: &str) -> Result<(), String> {
        if name == "tso" {
            // The reference stack sends wire-sized segments only; there is no offload to turn on or off.
            return match value {
                "on" | "off" => Ok(()),
                _ => Err(format!("expected on or off, not {value:?}")),
            };
        }
        if name == "mtu" {
            // packetdrill's --mtu: the link MTU, not a sysctl.
            let mtu: u32 = value.trim().parse().map_err(|_| format!("bad MTU {value:?}"))?;
            if !(576..=65_535).contains(&mtu) {
                return Err(format!("MTU {mtu} out of range 576..=65535"));
            }
            self.host.config_mut().mtu = mtu;
            return Ok(());
        }
        self.host.set_knob(name, value).map_err(|e| e.to_string())
    }

    fn check_knob(&self, name: &str, value: &str) -> Result<(), String> {
        if name == "tso" || name == "mtu" {
            return Ok(());
        }
        check_knob(name, value)
    }

    fn shell(&mut self, cmd: &str, _cwd: Option<&std::path::Path>, _: std::time::Instant) -> Result<(), String> {
        Err(format!("the reference backend runs no shell commands ({cmd:?})"))
    }

    fn exercised(&self) -> Vec<(TcpState, tcpdrill_stack::coverage::Stimulus)> {
        self.host.exercised().iter().copied().collect()
    }

    fn tcp_state(&mut self, tuple: &FourTuple) -> Option<TcpState> {
        HostCalls::state_of(&self.host, tuple)
    }

    fn state_changes(&mut self) -> Vec<(Micros, FourTuple, TcpState, TcpState)> {
        let mut v = Vec::new();
        while let Some(event) = self.host.poll_event() {
            match event {
                HostEvent::StateChange { at, tuple, from, to } => v.push((Self::script_time(at), tuple, from, to)),
                HostEvent::SynCookie { at, tuple, accepted } => {
                    let what = if accepted { "the ACK of a SYN cookie opens" } else { "SYN cookie sent for" };
                    self.notes.push((Self::script_time(at), format!("{what} {} > {}", tuple.remote, tuple.local)));
                }
            }
        }
        v
    }

    fn notes(&mut self) -> Vec<(Micros, String)> {
        std::mem::take(&mut self.notes)
    }
}

/// Whether the reference stack has knob `name` and takes `value` for it: why not, as a skip's reason (a knob
/// it does not model) or an error (a typo, a bad value).
pub fn check_knob(name: &str, value: &str) -> Result<(), String> {
    use tcpdrill_stack::config::ConfigError;
    match tcpdrill_stack::Config::default().set(name, value) {
        Ok(()) => Ok(()),
        // A near miss is a typo, not a missing feature.
        Err(e @ ConfigError::UnknownName { suggestion: Some(_), .. }) => Err(e.to_string()),
        Err(ConfigError::UnknownName { .. }) => Err(match crate::run::shell::unmodelled_feature(name) {
            Some(feature) => format!("{name} has no knob in the reference stack: {feature} is not modelled"),
            None => format!("{name} has no counterpart in the reference stack"),
        }),
        Err(e) => Err(e.to_string()),
    }
}
