//! The Linux backend: the kernel's own TCP, reached through a TUN device inside a network namespace that
//! tcpdrill creates for each script.
//!
//! Isolation: the script runs on a thread of its own that `unshare(CLONE_NEWNET)`s itself (namespaces are
//! per-thread on Linux; commands it spawns inherit the namespace). Inside: `lo` up, `tun0` (no packet-info
//! header) with 192.168.0.1/16, a route to 192.0.2.0/24 through it. Nothing outside the namespace is touched: no
//! host interface, route or sysctl. The namespace disappears with the thread's last reference to it.
//!
//! Calls are real libc calls on sockets that are non-blocking at the OS level; the script's own O_NONBLOCK is
//! tracked here, so the executor emulates blocking exactly as on the reference backend. Time is real.
#![allow(unsafe_code)]

use super::{netlink, Backend, Call, CallResult, Capabilities, IpVersion, Micros};
use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use tcpdrill_stack::host::{Domain, Shutdown, SockOptName, SockOptValue, TcpInfo};
use tcpdrill_stack::{Errno, FourTuple, TcpState};

use super::LOCAL_IP;

const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
/// `_IOW('T', 203, int)`: keep the device when its last descriptor closes.
const TUNSETPERSIST: libc::c_ulong = 0x4004_54cb;
const TUN_F_CSUM_TSO4_TSO6: libc::c_uint = 0x1 | 0x2 | 0x4;

/// The one sentence printed when the privilege is missing.
pub const NEED_PRIVILEGE: &str =
    "the linux backend needs CAP_NET_ADMIN to create a network namespace: run it as root (sudo tcpdrill run --backend linux ...)";

/// Moves the calling thread into a fresh network namespace.
pub fn unshare_netns() -> Result<(), String> {
    // SAFETY: unshare takes flags only; it affects the calling thread.
    let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    if r == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) {
        Err(NEED_PRIVILEGE.to_string())
    } else {
        Err(format!("unshare(CLONE_NEWNET) failed: {e}"))
    }
}

/// The linux backend in the registry.
pub const INFO: super::BackendInfo = super::BackendInfo {
    name: "linux",
    symbols: &["Linux"],
    netns: true,
    real_time: true,
    available,
    make: |ip| Ok(Box::new(Linux::new(ip)?)),
};

/// Whether this process may run the linux backend (tried on a throwaway thread, so nothing else moves).
pub fn available() -> Result<(), String> {
    std::thread::spawn(unshare_netns).join().unwrap_or_else(|_| Err("the privilege check panicked".into()))
}

fn errno() -> Errno {
    let n = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    Errno::from_number(n).unwrap_or(Errno::EINVAL)
}

/// The kernel behind a TUN device in this thread's namespace.
pub struct Linux {
    tun: tun::Device,
    start: Instant,
    out: VecDeque<(Micros, Vec<u8>)>,
    script_nonblocking: BTreeMap<i32, bool>,
    fds: Vec<i32>,
    /// The fds of AF_INET6 sockets, whose addresses are IPv4-mapped in [`IpVersion::V4MappedV6`].
    inet6: std::collections::BTreeSet<i32>,
    /// The IP version the namespace was set up for.
    ip: IpVersion,
    /// This thread's network namespace is not the host's (init's), so the TUN device may be left to it.
    own_netns: bool,
    /// Checksum offload on: the kernel may hand over partial checksums, which `pump` completes. Off
    /// (`--tso=off`), every checksum is the kernel's own and the executor verifies it (RFC 9293 MUST-2).
    offload: bool,
}

impl Linux {
    /// Sets up the namespace this thread is in (call [`unshare_netns`] first) for IP version `ip`: `tun0` with the
    /// stack's address (192.168.0.1/16, or fd3d:a0b:17d6::1/64) and a route to the peer's network through it.
    pub fn new(ip: IpVersion) -> Result<Linux, String> {
        let mut rtnl = netlink::Rtnl::open()?;
        rtnl.link_up(netlink::index("lo")?)?;
        let mut cfg = tun::Configuration::default();
        cfg.tun_name("tun0");
        if ip != IpVersion::V6 {
            cfg.address(LOCAL_IP).netmask((255, 255, 0, 0));
        }
        let tun = tun::create(&cfg).map_err(|e| format!("creating the TUN device: {e}"))?;
        let tun0 = netlink::index("tun0")?;
        if ip == IpVersion::V6 {
            // The device's IPv6 is only the script's address: no link-local one with its duplicate address
            // detection and router solicitations, whose setup raced the first segment (one SYN in five went
            // unanswered).
            for (knob, v) in [("addr_gen_mode", "1"), ("accept_dad", "0"), ("router_solicitations", "0")] {
                let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/tun0/{knob}"), v);
            }
        }
        rtnl.link_up(tun0)?;
        if ip == IpVersion::V6 {
            rtnl.add_address(tun0, ip.local_ip(), 64)?;
            rtnl.add_route(IpAddr::V6(std::net::Ipv6Addr::new(0xfd3d, 0xfa7b, 0xd17d, 0, 0, 0, 0, 0)), 64, tun0)?;
            wait_for_local_route(ip.local_ip())?;
        } else {
            rtnl.add_route(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 0)), 24, tun0)?;
            // No IPv6 chatter (router solicitations) on the device.
            let _ = std::fs::write("/proc/sys/net/ipv6/conf/tun0/disable_ipv6", "1");
        }
        // SAFETY: fcntl and ioctl on a descriptor we own.
        unsafe {
            let fd = tun.as_raw_fd();
            let fl = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
            // Not inherited by the commands other scripts' threads fork (see the sockets in `call`).
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            // As packetdrill's TUN: checksum and TSO offload, so a write of several MSS leaves as one TSO
            // "super-packet" (`P. 1:11001(11000)`), which is what upstream scripts expect to see. The checksums
            // the kernel then leaves partial are completed in `pump`.
            libc::ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM_TSO4_TSO6);
        }
        Ok(Linux {
            tun,
            start: Instant::now(),
            out: VecDeque::new(),
            script_nonblocking: BTreeMap::new(),
            fds: Vec::new(),
            inet6: std::collections::BTreeSet::new(),
            offload: true,
            ip,
            own_netns: own_netns(),
        })
    }

    /// Reads what the kernel sent, waiting at most `wait`.
    fn pump(&mut self, wait: Duration) {
        let fd = self.tun.as_raw_fd();
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        let ms = wait.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n <= 0 {
            return;
        }
        let mut buf = vec![0u8; 65_536];
        while let Ok(len) = self.tun.read(&mut buf) {
            let d = &buf[..len];
            // Only TCP belongs to the test; anything else the kernel says (IPv6's neighbour and multicast
            // chatter) is ignored, as packetdrill does.
            let tcp = match d.first().map(|b| b >> 4) {
                Some(4) => len >= 20 && d[9] == 6,
                Some(6) => len >= 40 && d[6] == 6,
                _ => false,
            };
            if tcp {
                let t = self.now();
                let mut d = d.to_vec();
                if self.offload {
                    complete_checksums(&mut d);
                }
                self.out.push_back((t, d));
            }
        }
    }

    /// `a` as a sockaddr for socket `fd`: IPv4-mapped for an AF_INET6 socket in [`IpVersion::V4MappedV6`].
    fn sockaddr(&self, fd: i32, a: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
        let a = if self.inet6.contains(&fd) { super::socket_addr(self.ip, *a) } else { *a };
        // SAFETY: all-zero bytes are a valid sockaddr_storage, and each arm writes a smaller sockaddr into it.
        let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let len = match a.ip() {
            IpAddr::V4(v4) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(v4.octets()) },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
                unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
                std::mem::size_of::<libc::sockaddr_in>()
            }
            IpAddr::V6(v6) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: 0,
                    sin6_addr: libc::in6_addr { s6_addr: v6.octets() },
                    sin6_scope_id: 0,
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
                unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        (ss, len as libc::socklen_t)
    }

    fn opt(name: SockOptName) -> (libc::c_int, libc::c_int) {
        match name {
            SockOptName::ReuseAddr => (libc::SOL_SOCKET, libc::SO_REUSEADDR),
            SockOptName::KeepAlive => (libc::SOL_SOCKET, libc::SO_KEEPALIVE),
            SockOptName::Linger => (libc::SOL_SOCKET, libc::SO_LINGER),
            SockOptName::Error => (libc::SOL_SOCKET, libc::SO_ERROR),
            SockOptName::RcvBuf => (libc::SOL_SOCKET, libc::SO_RCVBUF),
            SockOptName::SndBuf => (libc::SOL_SOCKET, libc::SO_SNDBUF),
            SockOptName::NoDelay => (libc::IPPROTO_TCP, libc::TCP_NODELAY),
            SockOptName::MaxSeg => (libc::IPPROTO_TCP, libc::TCP_MAXSEG),
            SockOptName::KeepIdle => (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
            SockOptName::KeepIntvl => (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
            SockOptName::KeepCnt => (libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
            SockOptName::UserTimeout => (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT),
            SockOptName::Info => (libc::IPPROTO_TCP, libc::TCP_INFO),
        }
    }

    fn ret(r: isize) -> Result<i64, Errno> {
        if r < 0 {
            Err(errno())
        } else {
            Ok(r as i64)
        }
    }

    /// The state of `t` by an exact sock_diag lookup (NETLINK_SOCK_DIAG, no dump): it finds established,
    /// TIME-WAIT and SYN-RECEIVED request sockets in the namespace's hash table directly. Reading /proc/net/tcp
    /// instead walks the whole host-wide table and takes ~8 ms even when empty, which distorts a script's timing.
    /// `Err` when netlink itself failed (the caller falls back to /proc); `Ok(None)` when there is no such socket.
    fn diag_state(t: &FourTuple) -> Result<Option<TcpState>, ()> {
        // IPv4 connections (of IPv4-mapped AF_INET6 sockets too, which the kernel keeps in its IPv4 table) are
        // asked for as AF_INET, IPv6 ones as AF_INET6 with their 16-byte addresses.
        let (family, src, dst): (u8, Vec<u8>, Vec<u8>) = match (t.local.ip(), t.remote.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => (libc::AF_INET as u8, s.octets().to_vec(), d.octets().to_vec()),
            (IpAddr::V6(s), IpAddr::V6(d)) => (libc::AF_INET6 as u8, s.octets().to_vec(), d.octets().to_vec()),
            _ => return Err(()),
        };
        // struct nlmsghdr (16 bytes) + struct inet_diag_req_v2 (56 bytes).
        let mut msg = [0u8; 72];
        msg[0..4].copy_from_slice(&72u32.to_ne_bytes());
        msg[4..6].copy_from_slice(&20u16.to_ne_bytes()); // SOCK_DIAG_BY_FAMILY
        msg[6..8].copy_from_slice(&1u16.to_ne_bytes()); // NLM_F_REQUEST: one socket, not a dump
        msg[8..12].copy_from_slice(&1u32.to_ne_bytes());
        msg[16] = family;
        msg[17] = libc::IPPROTO_TCP as u8;
        msg[20..24].copy_from_slice(&u32::MAX.to_ne_bytes()); // every state
        msg[24..26].copy_from_slice(&t.local.port().to_be_bytes());
        msg[26..28].copy_from_slice(&t.remote.port().to_be_bytes());
        msg[28..28 + src.len()].copy_from_slice(&src);
        msg[44..44 + dst.len()].copy_from_slice(&dst);
        msg[64..72].copy_from_slice(&[0xff; 8]); // INET_DIAG_NOCOOKIE
        let mut reply = [0u8; 512];
        // SAFETY: a netlink socket of our own, buffers that outlive the calls.
        let n = unsafe {
            let fd = libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, libc::NETLINK_SOCK_DIAG);
            if fd < 0 {
                return Err(());
            }
            let mut sa: libc::sockaddr_nl = std::mem::zeroed();
            sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
            let sent = libc::sendto(
                fd,
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            );
            let n = if sent < 0 { -1 } else { libc::recv(fd, reply.as_mut_ptr().cast(), reply.len(), 0) };
            libc::close(fd);
            n
        };
        if n < 18 {
            return Err(());
        }
        match u16::from_ne_bytes([reply[4], reply[5]]) {
            // NLMSG_ERROR: ENOENT means no such socket; anything else is a netlink failure.
            2 => {
                let err = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
                if err == -libc::ENOENT {
                    Ok(None)
                } else {
                    Err(())
                }
            }
            // struct inet_diag_msg: family, state, timer, retrans, then the socket's id (sport, dport, ...). The
            // kernel's lookup falls back to a listener on the port when the connection is gone: only a socket
            // with the peer's port is the connection asked about.
            20 => {
                let dport = u16::from_be_bytes([reply[22], reply[23]]);
                Ok((dport == t.remote.port()).then(|| TcpState::from_linux_number(reply[17])).flatten())
            }
            _ => Err(()),
        }
    }

    /// The state of `t` in this thread's namespace, fd-less connections included.
    fn proc_state(t: &FourTuple) -> Option<TcpState> {
        if let Ok(s) = Self::diag_state(t) {
            return s;
        }
        Self::proc_table_state(t)
    }

    /// `/proc/net/tcp` as this thread's namespace sees it (slow: see [`Linux::diag_state`]).
    fn proc_table_state(t: &FourTuple) -> Option<TcpState> {
        // The kernel prints each 32-bit word of an address in host order.
        let hex = |a: &SocketAddr| match a.ip() {
            IpAddr::V4(v4) => format!("{:08X}:{:04X}", u32::from_le_bytes(v4.octets()), a.port()),
            IpAddr::V6(v6) => {
                let words: String = v6
                    .octets()
                    .chunks(4)
                    .map(|w| format!("{:08X}", u32::from_le_bytes([w[0], w[1], w[2], w[3]])))
                    .collect();
                format!("{words}:{:04X}", a.port())
            }
        };
        let (l, r) = (hex(&t.local), hex(&t.remote));
        let file = if t.local.is_ipv6() { "/proc/thread-self/net/tcp6" } else { "/proc/thread-self/net/tcp" };
        let table = std::fs::read_to_string(file).ok()?;
        table
            .lines()
            .skip(1)
            .find_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                (f.len() > 3 && f[1] == l && f[2] == r).then(|| u8::from_str_radix(f[3], 16).ok()).flatten()
            })
            .and_then(TcpState::from_linux_number)
    }
}

/// Whether the calling thread's network namespace differs from init's (the host's).
fn own_netns() -> bool {
    use std::os::unix::fs::MetadataExt;
    let ino = |p: &str| std::fs::metadata(p).map(|m| (m.dev(), m.ino()));
    matches!((ino("/proc/thread-self/ns/net"), ino("/proc/1/ns/net")), (Ok(a), Ok(b)) if a != b)
}

/// Waits until the kernel delivers packets to IPv6 address `addr` here. The local route that does so is added
/// by addrconf's work queue after the address (even with no duplicate address detection), a millisecond or so
/// later; a segment injected before it was lost (3 first SYNs in 20 went unanswered).
fn wait_for_local_route(addr: IpAddr) -> Result<(), String> {
    let IpAddr::V6(v6) = addr else { return Ok(()) };
    let key: String = v6.octets().iter().map(|b| format!("{b:02x}")).collect::<String>() + " 80 ";
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(2) {
        let table = std::fs::read_to_string("/proc/thread-self/net/ipv6_route").unwrap_or_default();
        if table.lines().any(|l| l.starts_with(&key)) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    Err(format!("the kernel did not make {addr} local within 2 s"))
}

/// Fills in the IPv4 and TCP checksums of a datagram the kernel handed over with checksum offload (the TCP one
/// then holds only the pseudo-header sum). Datagrams too broken to parse are left as they are for the executor
/// to report.
fn complete_checksums(d: &mut [u8]) {
    use tcpdrill_stack::wire::{Ipv4Packet, Ipv6Packet, TcpSegment};
    if d.first().is_some_and(|b| b >> 4 == 6) {
        let Ok(ip) = Ipv6Packet::new_checked(&d[..]) else { return };
        let (src, dst) = (IpAddr::V6(ip.src_addr()), IpAddr::V6(ip.dst_addr()));
        let end = (40 + usize::from(ip.payload_len())).min(d.len());
        if let Ok(mut tcp) = TcpSegment::new_checked(&mut d[40..end]) {
            tcp.fill_checksum(src, dst);
        }
        return;
    }
    let Ok(mut ip) = Ipv4Packet::new_checked(&mut d[..]) else { return };
    ip.fill_checksum();
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    if let Ok(mut tcp) = TcpSegment::new_checked(ip.payload_mut()) {
        tcp.fill_checksum(IpAddr::V4(src), IpAddr::V4(dst));
    }
}

/// The python3 interpreter `%{ }%` blocks run with, if one is installed: found once per process and only when a
/// script has such a block, and resolved to the interpreter itself (`sys.executable`), so that a version
/// manager's shim on `PATH` (pyenv's costs some 100 ms a start) is gone through only that once.
pub fn python3() -> Option<&'static std::path::Path> {
    static FOUND: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    FOUND
        .get_or_init(|| {
            let out = std::process::Command::new("python3")
                .args(["-c", "import sys; print(sys.executable)"])
                .output()
                .ok()
                .filter(|o| o.status.success())?;
            let exe = String::from_utf8_lossy(&out.stdout).trim().to_string();
            Some(if exe.is_empty() { "python3".into() } else { exe.into() })
        })
        .as_deref()
}

/// `struct tcp_info` (include/uapi/linux/tcp.h) as names and values, as far as the kernel filled it in: older
/// kernels return a shorter struct, and fields past the returned length are left out rather than made up.
pub fn tcp_info_fields(b: &[u8]) -> Vec<(&'static str, i64)> {
    const U8: &[(&str, usize)] = &[
        ("tcpi_state", 0),
        ("tcpi_ca_state", 1),
        ("tcpi_retransmits", 2),
        ("tcpi_probes", 3),
        ("tcpi_backoff", 4),
        ("tcpi_options", 5),
    ];
    const U32: &[(&str, usize)] = &[
        ("tcpi_rto", 8),
        ("tcpi_ato", 12),
        ("tcpi_snd_mss", 16),
        ("tcpi_rcv_mss", 20),
        ("tcpi_unacked", 24),
        ("tcpi_sacked", 28),
        ("tcpi_lost", 32),
        ("tcpi_retrans", 36),
        ("tcpi_fackets", 40),
        ("tcpi_last_data_sent", 44),
        ("tcpi_last_ack_sent", 48),
        ("tcpi_last_data_recv", 52),
        ("tcpi_last_ack_recv", 56),
        ("tcpi_pmtu", 60),
        ("tcpi_rcv_ssthresh", 64),
        ("tcpi_rtt", 68),
        ("tcpi_rttvar", 72),
        ("tcpi_snd_ssthresh", 76),
        ("tcpi_snd_cwnd", 80),
        ("tcpi_advmss", 84),
        ("tcpi_reordering", 88),
        ("tcpi_rcv_rtt", 92),
        ("tcpi_rcv_space", 96),
        ("tcpi_total_retrans", 100),
        ("tcpi_segs_out", 136),
        ("tcpi_segs_in", 140),
        ("tcpi_notsent_bytes", 144),
        ("tcpi_min_rtt", 148),
        ("tcpi_data_segs_in", 152),
        ("tcpi_data_segs_out", 156),
        ("tcpi_delivered", 192),
        ("tcpi_delivered_ce", 196),
        ("tcpi_dsack_dups", 216),
        ("tcpi_reord_seen", 220),
        ("tcpi_rcv_ooopack", 224),
        ("tcpi_snd_wnd", 228),
        ("tcpi_rcv_wnd", 232),
        ("tcpi_rehash", 236),
    ];
    const U64: &[(&str, usize)] = &[
        ("tcpi_pacing_rate", 104),
        ("tcpi_max_pacing_rate", 112),
        ("tcpi_bytes_acked", 120),
        ("tcpi_bytes_received", 128),
        ("tcpi_delivery_rate", 160),
        ("tcpi_busy_time", 168),
        ("tcpi_rwnd_limited", 176),
        ("tcpi_sndbuf_limited", 184),
        ("tcpi_bytes_sent", 200),
        ("tcpi_bytes_retrans", 208),
    ];
    let mut out = Vec::new();
    for &(n, o) in U8 {
        if let Some(v) = b.get(o) {
            out.push((n, i64::from(*v)));
        }
    }
    if let Some(w) = b.get(6) {
        out.push(("tcpi_snd_wscale", i64::from(w & 0x0f)));
        out.push(("tcpi_rcv_wscale", i64::from(w >> 4)));
    }
    if let Some(f) = b.get(7) {
        out.push(("tcpi_delivery_rate_app_limited", i64::from(f & 1)));
        out.push(("tcpi_fastopen_client_fail", i64::from((f >> 1) & 3)));
    }
    for &(n, o) in U32 {
        if let Some(v) = b.get(o..o + 4) {
            out.push((n, i64::from(u32::from_ne_bytes(v.try_into().expect("four bytes")))));
        }
    }
    for &(n, o) in U64 {
        if let Some(v) = b.get(o..o + 8) {
            out.push((n, u64::from_ne_bytes(v.try_into().expect("eight bytes")) as i64));
        }
    }
    if let Some(v) = b.get(240..242) {
        out.push(("tcpi_total_rto", i64::from(u16::from_ne_bytes([v[0], v[1]]))));
    }
    if let Some(v) = b.get(242..244) {
        out.push(("tcpi_total_rto_recoveries", i64::from(u16::from_ne_bytes([v[0], v[1]]))));
    }
    if let Some(v) = b.get(244..248) {
        out.push(("tcpi_total_rto_time", i64::from(u32::from_ne_bytes(v.try_into().expect("four bytes")))));
    }
    out
}

impl Drop for Linux {
    fn drop(&mut self) {
        // At the end every connection goes: our fds are closed with SO_LINGER {1, 0}, which resets them.
        for fd in self.fds.drain(..) {
            let l = libc::linger { l_onoff: 1, l_linger: 0 };
            // SAFETY: plain setsockopt/close on descriptors this backend opened.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&l as *const libc::linger).cast(),
                    std::mem::size_of::<libc::linger>() as u32,
                );
                libc::close(fd);
            }
        }
        // Closing a TUN device's last descriptor unregisters the device there and then, which waits for RCU grace
        // periods: some 40 ms, most of a short script's cost. Made persistent, the close only detaches it, and the
        // kernel deletes it with the namespace, which it tears down on a workqueue of its own once this thread, the
        // namespace's last user, is gone.
        // Only in a namespace of our own: in the host's (a `Linux` made without `unshare_netns`) a persistent
        // device would outlive the run.
        if self.own_netns {
            // SAFETY: an ioctl with an integer argument on our TUN descriptor.
            unsafe { libc::ioctl(self.tun.as_raw_fd(), TUNSETPERSIST, 1) };
        }
    }
}

impl Backend for Linux {
    fn name(&self) -> &'static str {
        "linux"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { shell: true, python: true, real_time: true, linux_api: true, icmp: true }
    }

    fn addresses(&self) -> (IpAddr, IpAddr) {
        (self.ip.local_ip(), self.ip.remote_ip())
    }

    fn ip_version(&self) -> IpVersion {
        self.ip
    }

    fn now(&self) -> Micros {
        self.start.elapsed().as_micros() as Micros
    }

    fn start_clock(&mut self) {
        self.start = Instant::now();
        // Whatever the init commands made the kernel say belongs to no event of the script.
        self.pump(Duration::ZERO);
        self.out.clear();
    }

    fn tcp_info(&mut self, fd: i32) -> Result<Vec<(&'static str, i64)>, String> {
        let mut buf = [0u8; 512];
        let mut len = buf.len() as u32;
        // SAFETY: getsockopt into a buffer of ours with its length.
        let r = unsafe { libc::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO, buf.as_mut_ptr().cast(), &mut len) };
        if r < 0 {
            return Err(format!("getsockopt(TCP_INFO) on fd {fd}: {}", std::io::Error::last_os_error()));
        }
        Ok(tcp_info_fields(&buf[..len as usize]))
    }

    fn advance_to(&mut self, t: Micros) {
        // Bounded by the target time: each round waits at most until then, and at most 20 ms at a time, because
        // Linux lets poll() wake up late by 0.1% of its timeout (select_estimate_accuracy): one 30 s wait came
        // back 28 ms late and failed a script's timing.
        loop {
            let now = self.now();
            if now >= t {
                self.pump(Duration::ZERO);
                return;
            }
            self.pump(Duration::from_micros((t - now).min(20_000) as u64));
        }
    }

    fn inject(&mut self, datagram: &[u8]) -> Result<(), String> {
        self.pump(Duration::ZERO);
        self.tun.write_all(datagram).map_err(|e| format!("writing to the TUN device: {e}"))
    }

    fn next_outbound(&mut self, deadline: Micros) -> Option<(Micros, Vec<u8>)> {
        loop {
            self.pump(Duration::ZERO);
            if let Some(p) = self.out.pop_front() {
                return Some(p);
            }
            let now = self.now();
            if now >= deadline {
                return None;
            }
            self.pump(Duration::from_micros((deadline - now).min(20_000) as u64));
        }
    }

    fn call(&mut self, call: &Call) -> CallResult {
        let r: Result<i64, Errno> = unsafe {
            // SAFETY: each arm is a libc call with buffers and structs that live across the call.
            match call {
                Call::Socket(domain) => {
                    let family = if *domain == Domain::Inet6 { libc::AF_INET6 } else { libc::AF_INET };
                    let r = Self::ret(libc::socket(
                        family,
                        // CLOEXEC: the script runs on a thread of a process that forks commands (shell
                        // lines, python3) for other scripts; a socket a child inherited would outlive close(), and
                        // a script saw CLOSING after an abortive close while a neighbour's `ip` held its socket.
                        libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                        libc::IPPROTO_TCP,
                    ) as isize);
                    if let Ok(fd) = r {
                        self.fds.push(fd as i32);
                        if family == libc::AF_INET6 {
                            self.inet6.insert(fd as i32);
                        }
                    }
                    r
                }
                Call::Bind(fd, a) => {
                    let (sa, len) = self.sockaddr(*fd, a);
                    Self::ret(libc::bind(*fd, (&sa as *const libc::sockaddr_storage).cast(), len) as isize)
                }
                Call::Listen(fd, b) => Self::ret(libc::listen(*fd, *b) as isize),
                Call::Accept(fd) => {
                    let r = Self::ret(libc::accept4(
                        *fd,
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                        libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                    ) as isize);
                    if let Ok(new) = r {
                        self.fds.push(new as i32);
                        if self.inet6.contains(fd) {
                            self.inet6.insert(new as i32);
                        }
                    }
                    r
                }
                Call::Connect(fd, a) => {
                    let (sa, len) = self.sockaddr(*fd, a);
                    Self::ret(libc::connect(*fd, (&sa as *const libc::sockaddr_storage).cast(), len) as isize)
                }
                Call::Read { fd, len, peek, null } => {
                    let mut buf = vec![0u8; if *null { 0 } else { (*len).min(1 << 24) }];
                    let ptr = if *null { std::ptr::null_mut() } else { buf.as_mut_ptr().cast() };
                    let flags = libc::MSG_DONTWAIT | if *peek { libc::MSG_PEEK } else { 0 };
                    Self::ret(libc::recv(*fd, ptr, (*len).min(1 << 24), flags))
                }
                Call::Write { fd, len, null, flags, to } => {
                    let buf = vec![0u8; if *null { 0 } else { *len }];
                    let ptr = if *null { std::ptr::null() } else { buf.as_ptr().cast() };
                    let flags = flags | libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
                    match to {
                        Some(a) => {
                            let (sa, salen) = self.sockaddr(*fd, a);
                            Self::ret(libc::sendto(
                                *fd,
                                ptr,
                                *len,
                                flags,
                                (&sa as *const libc::sockaddr_storage).cast(),
                                salen,
                            ))
                        }
                        None => Self::ret(libc::send(*fd, ptr, *len, flags)),
                    }
                }
                Call::SetSockOptRaw { fd, level, name, value } => Self::ret(libc::setsockopt(
                    *fd,
                    *level,
                    *name,
                    value.as_ptr().cast(),
                    value.len() as libc::socklen_t,
                ) as isize),
                Call::GetSockOptRaw { fd, level, name, string: Some(optlen) } => {
                    let mut buf = vec![0u8; (*optlen).min(4096)];
                    let mut len = buf.len() as u32;
                    return match Self::ret(
                        libc::getsockopt(*fd, *level, *name, buf.as_mut_ptr().cast(), &mut len) as isize
                    ) {
                        Ok(_) => CallResult::Bytes(buf[..len as usize].to_vec()),
                        Err(e) => CallResult::Err(e),
                    };
                }
                Call::GetSockOptRaw { fd, level, name, string: None } => {
                    let mut v: libc::c_int = 0;
                    let mut len = 4u32;
                    return match Self::ret(libc::getsockopt(
                        *fd,
                        *level,
                        *name,
                        (&mut v as *mut libc::c_int).cast(),
                        &mut len,
                    ) as isize)
                    {
                        Ok(_) => CallResult::Value(SockOptValue::Int(i64::from(v))),
                        Err(e) => CallResult::Err(e),
                    };
                }
                Call::Shutdown(fd, how) => {
                    let h = match how {
                        Shutdown::Read => libc::SHUT_RD,
                        Shutdown::Write => libc::SHUT_WR,
                        Shutdown::Both => libc::SHUT_RDWR,
                    };
                    Self::ret(libc::shutdown(*fd, h) as isize)
                }
                Call::Close(fd) => {
                    self.fds.retain(|f| f != fd);
                    self.inet6.remove(fd);
                    Self::ret(libc::close(*fd) as isize)
                }
                Call::SetSockOpt(fd, name, value) => {
                    let (level, opt) = Self::opt(*name);
                    match value {
                        SockOptValue::Linger { onoff, linger } => {
                            let l = libc::linger { l_onoff: i32::from(*onoff), l_linger: *linger as i32 };
                            Self::ret(libc::setsockopt(
                                *fd,
                                level,
                                opt,
                                (&l as *const libc::linger).cast(),
                                std::mem::size_of::<libc::linger>() as u32,
                            ) as isize)
                        }
                        SockOptValue::Int(v) => {
                            let v = *v as libc::c_int;
                            Self::ret(libc::setsockopt(*fd, level, opt, (&v as *const libc::c_int).cast(), 4) as isize)
                        }
                        SockOptValue::Info(_) => Err(Errno::ENOPROTOOPT),
                    }
                }
                Call::GetSockOpt(fd, name) => {
                    let (level, opt) = Self::opt(*name);
                    return match name {
                        SockOptName::Linger => {
                            let mut l = libc::linger { l_onoff: 0, l_linger: 0 };
                            let mut len = std::mem::size_of::<libc::linger>() as u32;
                            match Self::ret(libc::getsockopt(
                                *fd,
                                level,
                                opt,
                                (&mut l as *mut libc::linger).cast(),
                                &mut len,
                            ) as isize)
                            {
                                Ok(_) => CallResult::Value(SockOptValue::Linger {
                                    onoff: l.l_onoff != 0,
                                    linger: l.l_linger as u32,
                                }),
                                Err(e) => CallResult::Err(e),
                            }
                        }
                        SockOptName::Info => {
                            let mut buf = [0u8; 256];
                            let mut len = buf.len() as u32;
                            match Self::ret(
                                libc::getsockopt(*fd, level, opt, buf.as_mut_ptr().cast(), &mut len) as isize
                            ) {
                                Ok(_) => CallResult::Value(SockOptValue::Info(TcpInfo {
                                    state: buf[0],
                                    ..TcpInfo::default()
                                })),
                                Err(e) => CallResult::Err(e),
                            }
                        }
                        _ => {
                            let mut v: libc::c_int = 0;
                            let mut len = 4u32;
                            match Self::ret(libc::getsockopt(
                                *fd,
                                level,
                                opt,
                                (&mut v as *mut libc::c_int).cast(),
                                &mut len,
                            ) as isize)
                            {
                                Ok(_) => CallResult::Value(SockOptValue::Int(i64::from(v))),
                                Err(e) => CallResult::Err(e),
                            }
                        }
                    };
                }
                Call::GetFl(fd) => {
                    let r = Self::ret(libc::fcntl(*fd, libc::F_GETFL) as isize);
                    // The socket is non-blocking underneath; report the flag the script set.
                    r.map(|fl| {
                        (fl & !i64::from(libc::O_NONBLOCK))
                            | if self.script_nonblocking.get(fd).copied().unwrap_or(false) {
                                i64::from(libc::O_NONBLOCK)
                            } else {
                                0
                            }
                    })
                }
                Call::SetNonBlocking(fd, on) => {
                    let r = Self::ret(libc::fcntl(*fd, libc::F_GETFL) as isize);
                    if r.is_ok() {
                        self.script_nonblocking.insert(*fd, *on);
                    }
                    r.map(|_| 0)
                }
                Call::BytesReadable(fd) => {
                    let mut n: libc::c_int = 0;
                    return match Self::ret(libc::ioctl(*fd, libc::FIONREAD, &mut n as *mut libc::c_int) as isize) {
                        Ok(_) => CallResult::Value(SockOptValue::Int(i64::from(n))),
                        Err(e) => CallResult::Err(e),
                    };
                }
                Call::Poll { fds, .. } => {
                    // Never a blocking poll: the executor waits, so that a poll on packetdrill's syscall thread
                    // and the script's own events go on side by side as for any other blocking call.
                    let mut pfds: Vec<libc::pollfd> =
                        fds.iter().map(|&(fd, events)| libc::pollfd { fd, events, revents: 0 }).collect();
                    if let Err(e) = Self::ret(libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, 0) as isize) {
                        return CallResult::Err(e);
                    }
                    self.pump(Duration::ZERO);
                    return CallResult::Polled(pfds.iter().map(|p| p.revents).collect());
                }
                Call::EpollCreate(size) => Self::ret(libc::epoll_create(*size) as isize),
                Call::EpollCtl { epfd, op, fd, events, data } => {
                    let mut ev = libc::epoll_event { events: *events, u64: *data };
                    Self::ret(libc::epoll_ctl(*epfd, *op, *fd, &mut ev) as isize)
                }
                Call::EpollWait { epfd, max, .. } => {
                    // Never a blocking wait: the executor waits, as for poll.
                    let n = (*max).clamp(1, 1024) as usize;
                    let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; n];
                    let r = libc::epoll_wait(*epfd, evs.as_mut_ptr(), *max, 0);
                    if let Err(e) = Self::ret(r as isize) {
                        return CallResult::Err(e);
                    }
                    self.pump(Duration::ZERO);
                    return CallResult::Epolled(evs[..r as usize].iter().map(|e| (e.events, e.u64)).collect());
                }
                Call::TcpState(t) => {
                    let s = Self::proc_state(t).unwrap_or(TcpState::Closed);
                    return CallResult::Value(SockOptValue::Int(i64::from(s.linux_number())));
                }
            }
        };
        self.pump(Duration::ZERO);
        match r {
            Ok(v) => CallResult::Ok(v),
            Err(e) => CallResult::Err(e),
        }
    }

    fn ready(&mut self, call: &Call) -> bool {
        let (fd, events) = match call {
            Call::Accept(fd) | Call::Read { fd, .. } => (*fd, libc::POLLIN),
            Call::Write { fd, .. } | Call::Connect(fd, _) => (*fd, libc::POLLOUT),
            _ => return true,
        };
        let mut pfd = libc::pollfd { fd, events, revents: 0 };
        // SAFETY: one valid pollfd, no wait.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        n > 0 && pfd.revents & (events | libc::POLLERR | libc::POLLHUP) != 0
    }

    fn set_knob(&mut self, name: &str, value: &str) -> Result<(), String> {
        if name == "mtu" {
            let mtu = value.parse().map_err(|_| format!("the MTU must be a number, not {value:?}"))?;
            return netlink::Rtnl::open()?.set_mtu(netlink::index("tun0")?, mtu);
        }
        if name == "tso" {
            let flags = match value {
                "on" => TUN_F_CSUM_TSO4_TSO6,
                "off" => 0,
                _ => return Err(format!("expected on or off, not {value:?}")),
            };
            // SAFETY: an ioctl with an integer argument on our TUN descriptor.
            let r = unsafe { libc::ioctl(self.tun.as_raw_fd(), TUNSETOFFLOAD, flags) };
            if r < 0 {
                return Err(format!("TUNSETOFFLOAD: {}", std::io::Error::last_os_error()));
            }
            self.offload = flags != 0;
            return Ok(());
        }
        // Only the namespace's own /proc/sys/net (this thread's namespace): never the host's.
        let path = format!("/proc/sys/{}", name.replace('.', "/"));
        if !path.starts_with("/proc/sys/net/") {
            return Err(format!("{name} is not a per-namespace network sysctl"));
        }
        std::fs::write(&path, value).map_err(|e| format!("{path}: {e}"))
    }

    fn shell(&mut self, cmd: &str, cwd: Option<&std::path::Path>, deadline: std::time::Instant) -> Result<(), String> {
        // The child is forked from this thread, so it starts in this thread's namespace.
        let mut c = std::process::Command::new("sh");
        c.arg("-c").arg(cmd);
        // packetdrill exports its pid to commands; upstream helpers (set_sysctls.py) name files after it.
        c.env("PACKETDRILL_PID", std::process::id().to_string());
        if let Some(dir) = cwd.filter(|d| d.is_dir()) {
            c.current_dir(dir);
        }
        let out = super::output_within(&mut c, deadline)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("exit status {}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()))
        }
    }

    fn tcp_state(&mut self, tuple: &FourTuple) -> Option<TcpState> {
        Self::proc_state(tuple)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::REMOTE_IP;

    #[test]
    fn tcp_info_fields_read_the_kernel_layout_and_stop_at_its_length() {
        let mut b = vec![0u8; 248];
        b[0] = 1; // TCP_ESTABLISHED
        b[6] = 0x7a; // rcv_wscale 7, snd_wscale 10
        b[16..20].copy_from_slice(&1448u32.to_ne_bytes()); // snd_mss
        b[80..84].copy_from_slice(&10u32.to_ne_bytes()); // snd_cwnd
        b[120..128].copy_from_slice(&5000u64.to_ne_bytes()); // bytes_acked
        b[240..242].copy_from_slice(&3u16.to_ne_bytes()); // total_rto
        let f: BTreeMap<&str, i64> = tcp_info_fields(&b).into_iter().collect();
        assert_eq!(f["tcpi_state"], 1);
        assert_eq!(f["tcpi_snd_wscale"], 10);
        assert_eq!(f["tcpi_rcv_wscale"], 7);
        assert_eq!(f["tcpi_snd_mss"], 1448);
        assert_eq!(f["tcpi_snd_cwnd"], 10);
        assert_eq!(f["tcpi_bytes_acked"], 5000);
        assert_eq!(f["tcpi_total_rto"], 3);
        // An older kernel's shorter struct: nothing past its end is made up.
        let short: BTreeMap<&str, i64> = tcp_info_fields(&b[..104]).into_iter().collect();
        assert!(short.contains_key("tcpi_total_retrans") && !short.contains_key("tcpi_pacing_rate"));
    }

    #[test]
    fn offloaded_checksums_are_completed() {
        use tcpdrill_stack::wire::{Checksums, TcpDatagram, TcpFlags, TcpOptions, TcpRepr};
        use tcpdrill_stack::SeqNum;
        let tcp = TcpRepr {
            src_port: 8080,
            dst_port: 40000,
            seq: SeqNum(7),
            ack: SeqNum(0),
            flags: TcpFlags::SYN,
            window: 64240,
            urgent: 0,
            options: TcpOptions::EMPTY,
            payload: b"",
        };
        // A SYN with both checksums zeroed, as the kernel hands it over with offload on.
        let mut d = TcpDatagram::new(IpAddr::V4(LOCAL_IP), IpAddr::V4(REMOTE_IP), tcp).to_vec().unwrap();
        d[10] = 0;
        d[11] = 0;
        d[36] = 0;
        d[37] = 0;
        assert!(TcpDatagram::parse(&d, Checksums::Verify).is_err());
        complete_checksums(&mut d);
        assert!(TcpDatagram::parse(&d, Checksums::Verify).is_ok());
    }
}
