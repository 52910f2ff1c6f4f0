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

use super::sockets::Sockets;
use super::{netlink, Backend, Call, CallResult, Capabilities, IpVersion, Micros};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use tcpdrill_stack::{FourTuple, TcpState};

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
    symbols: || vec!["Linux"],
    netns: true,
    real_time: true,
    exclusive: || false,
    on_request: false,
    runs: |_| Ok(()),
    available,
    make: |ip| Ok(Box::new(Linux::new(ip)?)),
};

/// Whether this process may run the linux backend (tried on a throwaway thread, so nothing else moves).
pub fn available() -> Result<(), String> {
    std::thread::spawn(unshare_netns).join().unwrap_or_else(|_| Err("the privilege check panicked".into()))
}

/// The kernel behind a TUN device in this thread's namespace.
pub struct Linux {
    tun: tun::Device,
    start: Instant,
    out: VecDeque<(Micros, Vec<u8>)>,
    /// The script's sockets.
    sockets: Sockets,
    /// The IP version the namespace was set up for.
    ip: IpVersion,
    /// This thread's network namespace is not the host's (init's), so the TUN device may be left to it.
    own_netns: bool,
    /// Checksum offload on: the kernel may hand over partial checksums, which `pump` completes. Off
    /// (`--tso=off`), every checksum is the kernel's own and the executor verifies it (RFC 9293 MUST-2).
    offload: bool,
    /// Every four-tuple the link has carried (from the stack's side), and each one's state when
    /// [`Backend::state_changes`] last looked.
    states: std::collections::BTreeMap<FourTuple, TcpState>,
}

impl Linux {
    /// Notes the connection a datagram belongs to (`outbound`: the stack sent it), for [`Backend::state_changes`].
    fn learn_tuple(&mut self, datagram: &[u8], outbound: bool) {
        use tcpdrill_stack::wire::{Checksums, TcpDatagram};
        let Ok(d) = TcpDatagram::parse(datagram, Checksums::Ignore) else { return };
        let (src, dst) = (
            std::net::SocketAddr::new(d.ip.src_addr(), d.tcp.src_port),
            std::net::SocketAddr::new(d.ip.dst_addr(), d.tcp.dst_port),
        );
        let t = if outbound { FourTuple { local: src, remote: dst } } else { FourTuple { local: dst, remote: src } };
        // Bounded: a script's connections are few, and each costs a lookup after every event; a flood of ports (a
        // SYN-queue test) must not slow the script down (256 of them made one late by 30 ms).
        if self.states.len() < 8 {
            self.states.entry(t).or_insert(TcpState::Closed);
        }
    }

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
            sockets: Sockets::new(ip),
            offload: true,
            states: Default::default(),
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
                self.learn_tuple(&d, true);
                self.out.push_back((t, d));
            }
        }
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
pub(crate) fn wait_for_local_route(addr: IpAddr) -> Result<(), String> {
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
pub(crate) fn complete_checksums(d: &mut [u8]) {
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
        // At the end every connection goes: reset, while the device still carries what the kernel sends.
        self.sockets.close_all();
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
        Capabilities { shell: true, python: true, real_time: true, linux_api: true, icmp: true, calls: true }
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
        self.learn_tuple(datagram, false);
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
        let r = self.sockets.call(call);
        self.pump(Duration::ZERO);
        r
    }

    fn ready(&mut self, call: &Call) -> bool {
        self.sockets.ready(call)
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
        Sockets::proc_state(tuple)
    }

    /// What changed since the last look for each connection the link has carried: the kernel does not say when,
    /// so each change has the time it was seen (after the event the executor just handled), and a state passed
    /// through between two looks does not show. Each is one sock_diag lookup (a dump of the namespace's table, or
    /// `/proc/net/tcp`, walks the kernel's whole hash: about 6 ms here, more than the timing tolerance).
    fn state_changes(&mut self) -> Vec<(Micros, FourTuple, TcpState, TcpState)> {
        let now = self.now();
        let mut v = Vec::new();
        for (t, was) in self.states.iter_mut() {
            let st = Sockets::diag_state_of(t).unwrap_or(TcpState::Closed);
            if st != *was {
                v.push((now, *t, *was, st));
                *was = st;
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::REMOTE_IP;
    use std::collections::BTreeMap;

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
