//! Backends: what a script runs against. The executor speaks to them only through [`Backend`], in script
//! terms already resolved to live values (addresses, fds, numbers).

pub mod linux;
pub mod netlink;
pub mod raw;
pub mod reference;
pub mod smoltcp;
pub mod sockets;
pub mod testbed;

/// A backend as the runner, the CLI and the tests know it before making one. Adding a backend is a file in
/// `backend/` with its `Backend` impl and an `INFO` of this type, and a line in [`REGISTRY`].
#[derive(Debug)]
pub struct BackendInfo {
    /// Its name, as `--backend` spells it.
    pub name: &'static str,
    /// The symbols its scripts see predefined for `#ifdef`, besides `tcpdrill` (nplab's packetdrill predefines
    /// the OS name the same way).
    pub symbols: fn() -> Vec<&'static str>,
    /// It runs each script on a thread of its own that first moves into a fresh network namespace (and so needs
    /// root).
    pub netns: bool,
    /// It runs on the real clock (as [`Capabilities::real_time`] says of one made), so its timing verdicts are
    /// subject to the machine's scheduling.
    pub real_time: bool,
    /// Whether its runs on the calling thread must go one at a time (the raw backend on the command line's one
    /// link and agent): the runner then serialises them whatever `-j` says.
    pub exclusive: fn() -> bool,
    /// It runs only where the command line points it (the raw backend, at a link): `coverage` gives it a column
    /// only then, and `scripts/REQUIREMENTS.md` (made without one) has none.
    pub on_request: bool,
    /// Whether it runs scripts in IP version `v`: why not, for a skip, if it does not.
    pub runs: fn(IpVersion) -> Result<(), String>,
    /// Why it cannot run on this machine, if it cannot: one sentence saying what to do instead.
    pub available: fn() -> Result<(), String>,
    /// Makes one, for one script in IP version `ip`.
    pub make: fn(IpVersion) -> Result<Box<dyn Backend>, String>,
}

/// The IP version a script runs in, as packetdrill's `--ip_version` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum IpVersion {
    /// IPv4 sockets and IPv4 on the wire.
    #[default]
    V4,
    /// IPv6 sockets and IPv6 on the wire.
    V6,
    /// IPv6 sockets (AF_INET6) with IPv4-mapped addresses (`::ffff:192.168.0.1`), IPv4 on the wire.
    V4MappedV6,
}

impl IpVersion {
    /// All three, in run_all.py's order.
    pub const ALL: [IpVersion; 3] = [IpVersion::V4, IpVersion::V4MappedV6, IpVersion::V6];

    /// From `--ip_version=`'s value.
    pub fn from_name(s: &str) -> Option<IpVersion> {
        match s {
            "ipv4" => Some(IpVersion::V4),
            "ipv6" => Some(IpVersion::V6),
            "ipv4-mapped-ipv6" => Some(IpVersion::V4MappedV6),
            _ => None,
        }
    }

    /// `--ip_version=`'s value.
    pub fn name(self) -> &'static str {
        match self {
            IpVersion::V4 => "ipv4",
            IpVersion::V6 => "ipv6",
            IpVersion::V4MappedV6 => "ipv4-mapped-ipv6",
        }
    }

    /// packetdrill's command-line flags for this version as its run_all.py passes them (gtests/net/packetdrill):
    /// the addresses, IPv6's `--mtu=1520`, and the `-D` defines its scripts expect.
    pub fn run_all_flags(self) -> &'static [&'static str] {
        match self {
            IpVersion::V4 => &[
                "--send_omit_free",
                "--ip_version=ipv4",
                "--local_ip=192.168.0.1",
                "--gateway_ip=192.168.0.1",
                "--netmask_ip=255.255.0.0",
                "--remote_ip=192.0.2.1",
                "-D",
                "TFO_COOKIE=3021b9d889017eeb",
                "-D",
                "CODE=host_unreachable",
                "-D",
                "CMSG_LEVEL_IP=SOL_IP",
                "-D",
                "CMSG_TYPE_RECVERR=IP_RECVERR",
            ],
            IpVersion::V6 => &[
                "--send_omit_free",
                "--ip_version=ipv6",
                "--mtu=1520",
                "--local_ip=fd3d:0a0b:17d6::1",
                "--gateway_ip=fd3d:0a0b:17d6:8888::1",
                "--remote_ip=fd3d:fa7b:d17d::1",
                "-D",
                "TFO_COOKIE=c1d1e9742a47a9bc",
                "-D",
                "CMSG_LEVEL_IP=SOL_IPV6",
                "-D",
                "CMSG_TYPE_RECVERR=IPV6_RECVERR",
            ],
            IpVersion::V4MappedV6 => &[
                "--send_omit_free",
                "--ip_version=ipv4-mapped-ipv6",
                "--local_ip=192.168.0.1",
                "--gateway_ip=192.168.0.1",
                "--netmask_ip=255.255.0.0",
                "--remote_ip=192.0.2.1",
                "-D",
                "TFO_COOKIE=3021b9d889017eeb",
                "-D",
                "CODE=host_unreachable",
                "-D",
                "CMSG_LEVEL_IP=SOL_IPV6",
                "-D",
                "CMSG_TYPE_RECVERR=IPV6_RECVERR",
            ],
        }
    }

    /// The stack's address on the wire: packetdrill's default `--local_ip` (run_all.py's for IPv6).
    pub fn local_ip(self) -> std::net::IpAddr {
        match self {
            IpVersion::V6 => LOCAL_IP6.into(),
            _ => LOCAL_IP.into(),
        }
    }

    /// The peer's address on the wire, as [`IpVersion::local_ip`].
    pub fn remote_ip(self) -> std::net::IpAddr {
        match self {
            IpVersion::V6 => REMOTE_IP6.into(),
            _ => REMOTE_IP.into(),
        }
    }

    /// The version a list of header options sets (the last `--ip_version` wins: see
    /// [`crate::run::RunOptions::header_options`] for their order); `Err` for a value packetdrill does not know.
    pub fn of_script<'a>(options: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> Result<IpVersion, String> {
        let mut v = IpVersion::V4;
        for (name, value) in options {
            if name == "ip_version" {
                let value = value.unwrap_or("");
                v = IpVersion::from_name(value)
                    .ok_or_else(|| format!("--ip_version={value}: expected ipv4, ipv6 or ipv4-mapped-ipv6"))?;
            }
        }
        Ok(v)
    }
}

/// A socket address as the stack's socket API sees `wire` in IP version `ip`: IPv4-mapped in
/// [`IpVersion::V4MappedV6`], unchanged otherwise.
pub fn socket_addr(ip: IpVersion, wire: std::net::SocketAddr) -> std::net::SocketAddr {
    match (ip, wire.ip()) {
        (IpVersion::V4MappedV6, std::net::IpAddr::V4(v4)) => {
            std::net::SocketAddr::new(v4.to_ipv6_mapped().into(), wire.port())
        }
        _ => wire,
    }
}

/// Every backend tcpdrill has.
pub const REGISTRY: &[&BackendInfo] = &[&reference::INFO, &linux::INFO, &raw::INFO, &smoltcp::INFO];

/// The backend named `name`.
pub fn lookup(name: &str) -> Option<&'static BackendInfo> {
    REGISTRY.iter().copied().find(|b| b.name == name)
}

/// The symbols a script sees predefined on backend `name`: `tcpdrill` always, plus the backend's own.
pub fn predefined(name: &str) -> Vec<&'static str> {
    let own = lookup(name).map_or(Vec::new(), |b| (b.symbols)());
    std::iter::once("tcpdrill").chain(own).collect()
}

use std::net::SocketAddr;
use tcpdrill_stack::host::{Domain, Shutdown, SockOptName, SockOptValue};
use tcpdrill_stack::{Errno, FourTuple, TcpState};

/// poll()'s POLLNVAL: the descriptor is not open.
pub const POLLNVAL: u16 = 0x020;
/// poll()'s POLLRDNORM, which Linux reports with POLLIN.
pub const POLLRDNORM: u16 = 0x040;
/// poll()'s POLLWRNORM, which Linux reports with POLLOUT.
pub const POLLWRNORM: u16 = 0x100;

/// Microseconds since the script's start.
pub type Micros = i64;

/// The stack's address in every backend: packetdrill's default `--local_ip`.
pub const LOCAL_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(192, 168, 0, 1);
/// The peer the harness plays: packetdrill's default `--remote_ip`.
pub const REMOTE_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(192, 0, 2, 1);
/// The stack's IPv6 address: run_all.py's `--local_ip` for its IPv6 variant.
pub const LOCAL_IP6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0xfd3d, 0x0a0b, 0x17d6, 0, 0, 0, 0, 1);
/// The IPv6 gateway run_all.py passes (`--gateway_ip`), accepted as it: the TUN link routes without one.
pub const GATEWAY_IP6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0xfd3d, 0x0a0b, 0x17d6, 0x8888, 0, 0, 0, 1);
/// The peer's IPv6 address: run_all.py's `--remote_ip` for its IPv6 variant.
pub const REMOTE_IP6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0xfd3d, 0xfa7b, 0xd17d, 0, 0, 0, 0, 1);

/// Runs a command to its end or until `deadline`, whichever comes first; at the deadline its whole process group
/// is killed (a shell's children too) and the error says so. Commands and `%{ }%` blocks run this way, so that
/// `--timeout` bounds them as it bounds the script.
pub fn output_within(
    cmd: &mut std::process::Command,
    deadline: std::time::Instant,
) -> Result<std::process::Output, String> {
    use std::os::unix::process::CommandExt;
    let mut child = cmd
        .process_group(0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(_) => return child.wait_with_output().map_err(|e| e.to_string()),
            None if std::time::Instant::now() >= deadline => {
                // SAFETY: a signal to the process group this child leads; it was made above for this.
                unsafe { libc::killpg(child.id() as libc::pid_t, libc::SIGKILL) };
                let _ = child.wait();
                return Err("killed at the script's time limit (--timeout)".into());
            }
            None => std::thread::sleep(std::time::Duration::from_millis(5)),
        }
    }
}

/// A socket call with live arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `socket(domain, SOCK_STREAM, IPPROTO_TCP)`.
    Socket(Domain),
    /// `bind(fd, addr)`.
    Bind(i32, SocketAddr),
    /// `listen(fd, backlog)`.
    Listen(i32, i32),
    /// `accept(fd)`.
    Accept(i32),
    /// `connect(fd, addr)`.
    Connect(i32, SocketAddr),
    /// `read(fd, len)` / `recv(fd, len, flags)`; `peek` is MSG_PEEK.
    Read {
        /// fd.
        fd: i32,
        /// Buffer length.
        len: usize,
        /// MSG_PEEK.
        peek: bool,
        /// The script passed NULL for the buffer: it reaches the stack as NULL (Linux answers EFAULT).
        null: bool,
    },
    /// `write(fd, len)` / `send()` / `sendto()`: `len` bytes of zeros.
    Write {
        /// fd.
        fd: i32,
        /// Bytes to send.
        len: usize,
        /// The script passed NULL for the buffer, as for [`Call::Read`].
        null: bool,
        /// send()'s and sendto()'s flags as the script wrote them (Linux numbering); 0 for write(). Only a
        /// backend with [`Capabilities::linux_api`] sees flags other than MSG_DONTWAIT and MSG_NOSIGNAL.
        flags: i32,
        /// sendto()'s address: as packetdrill, always the script's remote address (Linux uses it only to
        /// connect, with MSG_FASTOPEN).
        to: Option<SocketAddr>,
    },
    /// `shutdown(fd, how)`.
    Shutdown(i32, Shutdown),
    /// `close(fd)`.
    Close(i32),
    /// `setsockopt(fd, level, name, value)`.
    SetSockOpt(i32, SockOptName, SockOptValue),
    /// `getsockopt(fd, level, name)`.
    GetSockOpt(i32, SockOptName),
    /// `setsockopt(fd, level, name, value)` of an option the reference stack does not model, by its Linux numbers,
    /// for a backend with [`Capabilities::linux_api`]: `value` holds the bytes the call passes (an int in host
    /// order, or a string).
    SetSockOptRaw {
        /// fd.
        fd: i32,
        /// The level (`SOL_TCP`, `SOL_SOCKET`, `SOL_IP`, ...).
        level: i32,
        /// The option's number.
        name: i32,
        /// optval's bytes; optlen is their count.
        value: Vec<u8>,
    },
    /// `getsockopt(fd, level, name)` of such an option, read as an int, or as a string when the script expects
    /// one (`TCP_CONGESTION`).
    GetSockOptRaw {
        /// The socket's fd.
        fd: i32,
        /// The level (`SOL_TCP`, `SOL_SOCKET`, ...).
        level: i32,
        /// The option's number.
        name: i32,
        /// Read the value as a string of this optlen ([`CallResult::Bytes`]); `None`: an int.
        string: Option<usize>,
    },
    /// `fcntl(fd, F_GETFL)`.
    GetFl(i32),
    /// `fcntl(fd, F_SETFL, flags)`: the O_NONBLOCK bit.
    SetNonBlocking(i32, bool),
    /// `ioctl(fd, SIOCINQ)`: bytes readable.
    BytesReadable(i32),
    /// tcpdrill's `tcp_state(...)`: the state of a connection, fd-less ones included.
    TcpState(FourTuple),
    /// `poll(fds, nfds, timeout)`: each fd with the events asked for. A call that finds nothing ready waits
    /// until `until` (script time; `None` for a zero timeout, `Some(i64::MAX)` for a negative one, which waits
    /// for ever) and then returns 0.
    Poll {
        /// (fd, events) in the script's order.
        fds: Vec<(i32, i16)>,
        /// When a poll that finds nothing ready returns anyway.
        until: Option<Micros>,
    },
    /// `epoll_create(size)`: a new epoll instance's descriptor.
    EpollCreate(i32),
    /// `epoll_ctl(epfd, op, fd, {events=E, data})`.
    EpollCtl {
        /// The epoll instance.
        epfd: i32,
        /// EPOLL_CTL_ADD, _DEL or _MOD.
        op: i32,
        /// The descriptor watched.
        fd: i32,
        /// The events (EPOLLIN, EPOLLET, ...).
        events: u32,
        /// What epoll_wait gives back with them (the live fd for packetdrill's `fd=N`).
        data: u64,
    },
    /// `epoll_wait(epfd, events, maxevents, timeout)`: the events ready now, as [`Call::Poll`] waits: until
    /// `until` when none is.
    EpollWait {
        /// The epoll instance.
        epfd: i32,
        /// maxevents.
        max: i32,
        /// When a wait that finds nothing ready returns anyway.
        until: Option<Micros>,
    },
}

/// What a call returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallResult {
    /// A non-negative return value (a new fd, a byte count, 0).
    Ok(i64),
    /// A value read out (getsockopt, tcp_state) with return value 0.
    Value(SockOptValue),
    /// `-1` with errno.
    Err(Errno),
    /// poll()'s `revents`, one per pollfd in the call's order; the return value is how many are not zero.
    Polled(Vec<i16>),
    /// A value read out as bytes (a string option), with return value 0.
    Bytes(Vec<u8>),
    /// epoll_wait()'s events, (events, data) each; the return value is how many.
    Epolled(Vec<(u32, u64)>),
}

/// What a backend can do, so that a script needing more is skipped with a reason instead of failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// Runs arbitrary shell commands (`` `...` ``) in the test's environment.
    pub shell: bool,
    /// Runs `%{ python }%` blocks (with python3, where one is installed).
    pub python: bool,
    /// Runs on the real clock: waiting takes as long as it says, so the executor bounds every wait by the run's
    /// time limit. A virtual clock jumps instead.
    pub real_time: bool,
    /// Its socket API is Linux's own: every socket option and send flag of packetdrill's Linux symbol table
    /// reaches it by number ([`Call::SetSockOptRaw`]), TCP Fast Open included. Without it a script using an
    /// option or flag the reference stack does not model is skipped with that reason.
    pub linux_api: bool,
    /// Takes the ICMP messages the harness injects about its connections (`< icmp unreachable frag_needed mtu
    /// 1200 [...]`) and acts on them as its stack does.
    pub icmp: bool,
    /// Makes socket calls (the raw backend does only through an agent on the stack's host); without it a script
    /// with calls is skipped with that reason.
    pub calls: bool,
}

/// A TCP implementation under test.
pub trait Backend {
    /// Its name, as `--backend` spells it.
    fn name(&self) -> &'static str;
    /// What it can do.
    fn capabilities(&self) -> Capabilities;
    /// Our address (the stack's) and the peer address the harness impersonates, as on the wire.
    fn addresses(&self) -> (std::net::IpAddr, std::net::IpAddr);
    /// The IP version it was made for.
    fn ip_version(&self) -> IpVersion {
        IpVersion::V4
    }
    /// The largest datagram its link carries towards the stack, where there is a limit (a real link's MTU);
    /// `None` for any size (a TUN device, an in-process stack). A script injecting more is skipped.
    fn link_mtu(&self) -> Option<u32> {
        None
    }
    /// The harness's port for passive scripts when the backend needs one of its own rather than the run's
    /// (`RunOptions::remote_port`): on a stack shared by one run after another, the last run's TIME-WAIT may still
    /// hold the usual four-tuple.
    fn remote_port(&self) -> Option<u16> {
        None
    }
    /// The backend's clock, microseconds since the script's start.
    fn now(&self) -> Micros;
    /// Lets time pass until `t` (a virtual clock jumps; a real one sleeps), processing whatever happens on the way.
    fn advance_to(&mut self, t: Micros);
    /// When the stack next does something by itself (a timer), if the backend can tell; lets the executor stop
    /// there while a blocking call is waiting, so that its return time is exact. Real-time backends return `None`.
    fn next_event_time(&self) -> Option<Micros> {
        None
    }
    /// Puts a datagram on the wire towards the stack.
    fn inject(&mut self, datagram: &[u8]) -> Result<(), String>;
    /// The next datagram the stack sends, waiting until `deadline` at most; with the time it was sent.
    fn next_outbound(&mut self, deadline: Micros) -> Option<(Micros, Vec<u8>)>;
    /// Makes a call. `Err(EAGAIN)`-like results are returned as they are: the executor decides about blocking.
    fn call(&mut self, call: &Call) -> CallResult;
    /// Whether a blocking call on `fd` could make progress now (readable / writable / connected / error).
    fn ready(&mut self, call: &Call) -> bool;
    /// Changes a sysctl (`net.ipv4.tcp_rfc1337`) for this run only.
    fn set_knob(&mut self, name: &str, value: &str) -> Result<(), String>;
    /// Changes several sysctls for this run only, in order, as one shell command's `sysctl -w a=1 b=2` asks;
    /// the error says which one failed.
    fn set_knobs(&mut self, knobs: &[(String, String)]) -> Result<(), String> {
        for (k, v) in knobs {
            self.set_knob(k, v).map_err(|e| format!("sysctl {k}={v}: {e}"))?;
        }
        Ok(())
    }
    /// Whether [`Backend::set_knob`] would take `name=value`, without setting anything: the reason it would not,
    /// naming what the stack does not model. Checked before a script runs, so that one depending on a setting the
    /// backend cannot honour is skipped rather than half run.
    fn check_knob(&self, name: &str, value: &str) -> Result<(), String> {
        let _ = (name, value);
        Ok(())
    }
    /// Runs a shell command, if the backend can, in `cwd` (the script's folder, as packetdrill's runners do, so
    /// that `` `../common/defaults.sh` `` resolves).
    /// It is killed at `deadline` (the run's time limit).
    fn shell(&mut self, cmd: &str, cwd: Option<&std::path::Path>, deadline: std::time::Instant) -> Result<(), String>;
    /// Restarts the clock at 0: called once the init commands (untimed commands before the first event) have
    /// run, because packetdrill starts the script's clock after them.
    fn start_clock(&mut self) {}
    /// A `TCP_INFO` snapshot of `fd` as `tcpi_*` names and values, for `%{ python }%` blocks.
    fn tcp_info(&mut self, fd: i32) -> Result<Vec<(&'static str, i64)>, String> {
        let _ = fd;
        Err(format!("the {} backend takes no TCP_INFO snapshots", self.name()))
    }
    /// Why this backend's stack cannot express syscall `call` (with socket option `option` for set/getsockopt,
    /// and its integer arguments as far as they are constants), if it cannot: the script is then skipped with
    /// that reason before it runs, never failed on a mapping the stack does not have.
    fn refuses(&self, _call: &str, _option: Option<SockOptName>, _args: &[Option<i64>]) -> Option<String> {
        None
    }
    /// The `tcpi_*` names its snapshots hold, when not every one of Linux's: a block that reads another is
    /// skipped with that reason rather than failed. `None`: all of them.
    fn tcp_info_names(&self) -> Option<&'static [&'static str]> {
        None
    }
    /// The state of any connection, fd-less ones included; `None` for CLOSED (no connection).
    fn tcp_state(&mut self, tuple: &FourTuple) -> Option<TcpState>;
    /// The (state, stimulus) pairs the stack handled so far, for `tcpdrill coverage --transitions`; empty where
    /// the backend cannot tell.
    fn exercised(&self) -> Vec<(TcpState, tcpdrill_stack::coverage::Stimulus)> {
        Vec::new()
    }
    /// State changes since the last call, for traces: (time, tuple, from, to).
    fn state_changes(&mut self) -> Vec<(Micros, FourTuple, TcpState, TcpState)> {
        Vec::new()
    }
    /// Other things the stack did worth a line in a trace (a SYN cookie sent), since the last call; read after
    /// [`Backend::state_changes`].
    fn notes(&mut self) -> Vec<(Micros, String)> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::IpVersion;

    /// The flags are run_all.py's own (read from the workplace's copy of packetdrill, where it is there).
    #[test]
    fn run_all_flags_are_run_all_pys() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/packetdrill-src/run_all.py");
        let Ok(text) = std::fs::read_to_string(path) else {
            eprintln!("{path} absent: run_all.py's flags not compared");
            return;
        };
        for (v, function) in [
            (IpVersion::V4, "def CmdTestIPv4("),
            (IpVersion::V6, "def CmdTestIPv6("),
            (IpVersion::V4MappedV6, "def CmdTestIPv4Mappedv6("),
        ] {
            let start = text.find(function).expect("run_all.py defines it");
            let body = &text[start..start + text[start..].find("\n  def ").unwrap_or(text.len() - start)];
            let flags = v.run_all_flags();
            for (i, f) in flags.iter().enumerate() {
                if *f == "-D" || *f == "--send_omit_free" {
                    continue;
                }
                let written =
                    if flags.get(i.wrapping_sub(1)) == Some(&"-D") { format!("-D {f}") } else { f.to_string() };
                assert!(body.contains(&written), "{}: {written} is not in run_all.py's {function}", v.name());
            }
        }
    }
}
