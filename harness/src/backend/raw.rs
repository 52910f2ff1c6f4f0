//! The raw backend: any stack on an Ethernet-like link. The harness impersonates the peer on the user's
//! interface through an AF_PACKET channel (pnet_datalink): it answers ARP and IPv6 neighbour solicitations for
//! the impersonated address only, learns the stack's MAC address (from its ARP or neighbour discovery, by asking,
//! or `--stack-mac`), sends the script's segments in frames to it and takes from the link only the stack's TCP to
//! that address. The script's socket calls go to
//! `tcpdrill agent` on the stack's host (`--agent`); without one, only scripts without calls run (probes of a
//! stack already listening), the others are skipped with that reason.
//!
//! Nothing on the harness's host is changed. Its own kernel must not answer the impersonated flows: it must not
//! hold the impersonated address (checked: the backend refuses to start), and it drops what it receives for an
//! address not its own as long as it does not forward (checked too). IPv4, IPv4-mapped IPv6 (the stack's sockets
//! AF_INET6, IPv4 on the wire) and IPv6, as the link's addresses allow.

use super::{Backend, BackendInfo, Call, CallResult, Capabilities, IpVersion, Micros};
use crate::agent::AgentClient;
use pnet_datalink::{Channel, DataLinkReceiver, DataLinkSender, MacAddr, NetworkInterface};
use pnet_packet::arp::{ArpHardwareTypes, ArpOperations, ArpPacket, MutableArpPacket};
use pnet_packet::ethernet::{EtherTypes, EthernetPacket, MutableEthernetPacket};
use pnet_packet::icmpv6::ndp::{
    MutableNeighborAdvertPacket, MutableNeighborSolicitPacket, NdpOption, NdpOptionTypes, NeighborAdvertFlags,
    NeighborAdvertPacket, NeighborSolicitPacket,
};
use pnet_packet::icmpv6::{self, Icmpv6Packet, Icmpv6Types};
use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::ipv6::MutableIpv6Packet;
use pnet_packet::Packet;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tcpdrill_stack::{Errno, FourTuple, TcpState};

/// Where the raw backend is pointed: the link, the addresses and the agent.
#[derive(Debug, Clone)]
pub struct RawConfig {
    /// The interface on the stack's link (a veth end, a tap, a NIC).
    pub interface: String,
    /// The stack's IPv4 address and the one the harness impersonates, for IPv4 and IPv4-mapped runs.
    pub v4: Option<(Ipv4Addr, Ipv4Addr)>,
    /// The stack's IPv6 address and the one the harness impersonates, for IPv6 runs.
    pub v6: Option<(Ipv6Addr, Ipv6Addr)>,
    /// The stack's MAC address, when it should not be learned by ARP or neighbour discovery.
    pub stack_mac: Option<MacAddr>,
    /// `tcpdrill agent` on the stack's host, and its token.
    pub agent: Option<(SocketAddr, String)>,
    /// The stack's OS as scripts' `#ifdef`s name it (`Linux`, `FreeBSD`), when known: from `--stack-os` or the
    /// agent's hello.
    pub os: Option<&'static str>,
}

/// The `#ifdef` name of an OS as Rust's `std::env::consts::OS` (and the agent's hello) names it, or as a user
/// writes it in any case.
pub fn os_symbol(os: &str) -> Option<&'static str> {
    match os.to_ascii_lowercase().as_str() {
        "linux" => Some("Linux"),
        "freebsd" => Some("FreeBSD"),
        "netbsd" => Some("NetBSD"),
        "openbsd" => Some("OpenBSD"),
        "macos" | "darwin" => Some("__APPLE__"),
        // The reference stack served by `tcpdrill serve --agent-listen`, as the reference backend predefines it.
        "tcpdrill_ref" => Some("tcpdrill_ref"),
        _ => None,
    }
}

static CONFIG: OnceLock<RawConfig> = OnceLock::new();

thread_local! {
    /// A link of this thread's own (see [`with_link`]), before the process's.
    static LINK: RefCell<Option<RawConfig>> = const { RefCell::new(None) };
}

/// Points the raw backend of this process at a link (once: the command line's).
pub fn configure(cfg: RawConfig) -> Result<(), String> {
    CONFIG.set(cfg).map_err(|_| "the raw backend is configured already".to_string())
}

/// Runs `f` with the raw backend pointed at `cfg` for the scripts this thread runs, before the process's link:
/// a program with several links (the tests: one pair of namespaces per script) runs one script on each at once.
pub fn with_link<R>(cfg: RawConfig, f: impl FnOnce() -> R) -> R {
    struct Reset(Option<RawConfig>);
    impl Drop for Reset {
        fn drop(&mut self) {
            LINK.with(|l| *l.borrow_mut() = self.0.take());
        }
    }
    let _reset = Reset(LINK.with(|l| l.borrow_mut().replace(cfg)));
    f()
}

fn config() -> Option<RawConfig> {
    LINK.with(|l| l.borrow().clone()).or_else(|| CONFIG.get().cloned())
}

/// The raw backend in the registry.
pub const INFO: BackendInfo = BackendInfo {
    name: "raw",
    // The stack's OS, as packetdrill's builds for it predefine it (`#ifdef Linux`), when known.
    symbols: || config().and_then(|c| c.os).into_iter().collect(),
    netns: false,
    real_time: true,
    // The process's one link and agent session take one script at a time; a thread's own link is its alone.
    exclusive: || LINK.with(|l| l.borrow().is_none()),
    on_request: true,
    runs,
    available,
    make: |ip| Ok(Box::new(Raw::new(ip)?)),
};

/// Whether the raw backend has a link to work on.
pub fn available() -> Result<(), String> {
    match config() {
        None => Err("the raw backend needs a link: give --interface, --local-ip and --remote-ip (and --agent for \
                     scripts with socket calls)"
            .into()),
        Some(_) => Ok(()),
    }
}

/// Whether the link has addresses of IP version `ip`.
fn runs(ip: IpVersion) -> Result<(), String> {
    let cfg = config().ok_or_else(|| available().unwrap_err())?;
    match ip {
        IpVersion::V4 | IpVersion::V4MappedV6 if cfg.v4.is_none() => Err(format!(
            "the raw backend's link has no IPv4 addresses for {}: give --local-ip and --remote-ip an IPv4 address",
            ip.name()
        )),
        IpVersion::V6 if cfg.v6.is_none() => {
            Err("the raw backend's link has no IPv6 addresses: give --local-ip and --remote-ip an IPv6 address".into())
        }
        _ => Ok(()),
    }
}

/// One script's run on the link.
pub struct Raw {
    cfg: RawConfig,
    ip: IpVersion,
    /// The stack's address and the impersonated one, in the run's version on the wire.
    local: IpAddr,
    remote: IpAddr,
    tx: Box<dyn DataLinkSender>,
    rx: Box<dyn DataLinkReceiver>,
    our_mac: MacAddr,
    stack_mac: Option<MacAddr>,
    start: Instant,
    out: VecDeque<(Micros, Vec<u8>)>,
    agent: Option<AgentClient>,
    /// The sysctls this run changed on the stack's host, with the values they had.
    restore: Vec<(String, String)>,
    /// On the process's link (not a thread's own, see [`with_link`]): the stack takes one run after another.
    shared: bool,
}

impl Drop for Raw {
    fn drop(&mut self) {
        if let Some(a) = self.agent.as_mut() {
            let kv: Vec<String> = self
                .restore
                .drain(..)
                .filter_map(|(name, old)| shlex::try_quote(&format!("{name}={old}")).ok().map(|q| q.into_owned()))
                .collect();
            if !kv.is_empty() {
                let _ = a.shell(&format!("sysctl -q -w {}", kv.join(" ")));
            }
        }
    }
}

fn interface(name: &str) -> Result<NetworkInterface, String> {
    pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.name == name)
        .ok_or_else(|| format!("no interface {name:?} here (see `ip link`)"))
}

/// The MTU of interface `name` in this thread's network namespace (`/sys/class/net` shows the namespace sysfs
/// was mounted in, not this thread's).
fn link_mtu(name: &str) -> Option<u32> {
    // SAFETY: all-zero bytes are a valid ifreq.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    interface_ioctl(name, libc::SIOCGIFMTU, &mut req).ok()?;
    // SAFETY: SIOCGIFMTU filled in the union's MTU.
    Some(unsafe { req.ifr_ifru.ifru_mtu } as u32)
}

/// Makes interface ioctl `request` (SIOCGIFMTU, SIOCETHTOOL, ...) about interface `name` in this thread's
/// namespace, with `req`'s union as the caller filled it; the name is written here.
pub(crate) fn interface_ioctl(name: &str, request: libc::c_ulong, req: &mut libc::ifreq) -> std::io::Result<()> {
    if name.len() >= req.ifr_name.len() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{name}: too long a name")));
    }
    req.ifr_name = [0; libc::IFNAMSIZ];
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: a datagram socket only to make the ioctl, on an ifreq with a NUL-terminated name; what the union
    // points to (for SIOCETHTOOL) is the caller's and outlives the call.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let r = libc::ioctl(fd, request, req as *mut libc::ifreq);
        let e = std::io::Error::last_os_error();
        libc::close(fd);
        if r == 0 {
            Ok(())
        } else {
            Err(e)
        }
    }
}

/// The Ethernet group (RFC 2464 7) and solicited-node multicast address (RFC 4291 2.7.1) of `a`.
fn solicited_node(a: Ipv6Addr) -> (MacAddr, Ipv6Addr) {
    let o = a.octets();
    let ip = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | u16::from(o[13]), u16::from_be_bytes([o[14], o[15]]));
    (MacAddr::new(0x33, 0x33, 0xff, o[13], o[14], o[15]), ip)
}

/// Completes the TCP checksum of a datagram whose stack left it to the NIC (CHECKSUM_PARTIAL, which a veth or tap
/// passes on as it is): the field then holds the folded pseudo-header sum (Linux's `__tcp_v4_send_check`), which a
/// checksum the stack computed wrongly would match once in 65,536 wrong values at most. Any other wrong checksum
/// is left for the executor to report (RFC 9293 MUST-2), which the linux backend cannot do with offload on, since
/// it completes every checksum. The IP header's checksum is never offloaded.
fn complete_partial_checksum(d: &mut [u8]) {
    use tcpdrill_stack::wire::{checksum, Ipv4Packet, Ipv6Packet, TcpSegment};
    // `frame` cut the datagram to its length already.
    let (src, dst, start) = if d.first().is_some_and(|b| b >> 4 == 6) {
        let Ok(ip) = Ipv6Packet::new_checked(&d[..]) else { return };
        (IpAddr::V6(ip.src_addr()), IpAddr::V6(ip.dst_addr()), 40)
    } else {
        let Ok(ip) = Ipv4Packet::new_checked(&d[..]) else { return };
        (IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr()), ip.header_len())
    };
    let end = d.len();
    let Some(seg) = d.get_mut(start..end) else { return };
    let Ok(mut tcp) = TcpSegment::new_checked(seg) else { return };
    if tcp.verify_checksum(src, dst) {
        return;
    }
    let len = (end - start) as u32;
    let pseudo = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => checksum::pseudo_header_v4(s, d, 6, len),
        (IpAddr::V6(s), IpAddr::V6(d)) => checksum::pseudo_header_v6(s, d, 6, len),
        _ => return,
    };
    let folded = !checksum::finish(pseudo);
    if tcp.checksum() == folded {
        tcp.fill_checksum(src, dst);
    }
}

impl Raw {
    /// Opens the channel and, when one is named, the agent's session.
    pub fn new(ip: IpVersion) -> Result<Raw, String> {
        let cfg = config().ok_or_else(|| available().unwrap_err())?;
        runs(ip)?;
        let (local, remote) = match (ip, cfg.v4, cfg.v6) {
            (IpVersion::V6, _, Some((l, r))) => (IpAddr::V6(l), IpAddr::V6(r)),
            (_, Some((l, r)), _) => (IpAddr::V4(l), IpAddr::V4(r)),
            _ => unreachable!("runs() checked the link has the version's addresses"),
        };
        let iface = interface(&cfg.interface)?;
        // The harness's kernel must not be the one answering: not with the impersonated address, not by
        // forwarding what the stack sends to it.
        if let Some(holder) = pnet_datalink::interfaces().iter().find(|i| i.ips.iter().any(|n| n.ip() == remote)) {
            return Err(format!(
                "this host holds {remote} (on {}), so its own kernel would answer the stack: impersonate an address \
                 no interface here has",
                holder.name
            ));
        }
        let (knob, forward) = if remote.is_ipv6() {
            ("net.ipv6.conf.all.forwarding", "/proc/sys/net/ipv6/conf/all/forwarding")
        } else {
            ("net.ipv4.ip_forward", "/proc/sys/net/ipv4/ip_forward")
        };
        if std::fs::read_to_string(forward).is_ok_and(|v| v.trim() != "0") {
            return Err(format!(
                "this host forwards {} ({knob}=1), so its kernel would route the stack's segments on: run the \
                 harness in a namespace or on a host that does not forward",
                if remote.is_ipv6() { "IPv6" } else { "IPv4" }
            ));
        }
        let our_mac =
            iface.mac.ok_or_else(|| format!("{} has no MAC address: the raw backend needs Ethernet", cfg.interface))?;
        // A zero read timeout: reads never wait, `pump` does (the executor's clock decides how long). Promiscuous
        // for the channel's life (the kernel drops the membership with the socket): the stack's neighbour
        // solicitations go to a multicast group the interface need not have joined.
        let config = pnet_datalink::Config { read_timeout: Some(Duration::ZERO), ..Default::default() };
        let (tx, rx) = match pnet_datalink::channel(&iface, config) {
            Ok(Channel::Ethernet(tx, rx)) => (tx, rx),
            Ok(_) => return Err(format!("{} is not an Ethernet channel", cfg.interface)),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err("the raw backend needs CAP_NET_RAW to open the interface: run it as root".into())
            }
            Err(e) => return Err(format!("opening {}: {e}", cfg.interface)),
        };
        let agent = match &cfg.agent {
            Some((addr, token)) => Some(AgentClient::connect_for(*addr, token, Duration::from_secs(5), ip)?),
            None => None,
        };
        Ok(Raw {
            stack_mac: cfg.stack_mac,
            cfg,
            ip,
            local,
            remote,
            tx,
            rx,
            our_mac,
            start: Instant::now(),
            out: VecDeque::new(),
            agent,
            restore: Vec::new(),
            shared: LINK.with(|l| l.borrow().is_none()),
        })
    }

    /// The impersonated IPv4 address, in an IPv4 run.
    fn remote_v4(&self) -> Option<Ipv4Addr> {
        match self.remote {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }
    }

    fn arp(&mut self, op: pnet_packet::arp::ArpOperation, target_mac: MacAddr, target_ip: Ipv4Addr) {
        let Some(remote) = self.remote_v4() else { return };
        let mut buf = [0u8; 42];
        {
            let mut eth = MutableEthernetPacket::new(&mut buf).expect("42 bytes hold a frame");
            eth.set_destination(if op == ArpOperations::Request { MacAddr::broadcast() } else { target_mac });
            eth.set_source(self.our_mac);
            eth.set_ethertype(EtherTypes::Arp);
        }
        {
            let mut arp = MutableArpPacket::new(&mut buf[14..]).expect("28 bytes hold ARP");
            arp.set_hardware_type(ArpHardwareTypes::Ethernet);
            arp.set_protocol_type(EtherTypes::Ipv4);
            arp.set_hw_addr_len(6);
            arp.set_proto_addr_len(4);
            arp.set_operation(op);
            arp.set_sender_hw_addr(self.our_mac);
            arp.set_sender_proto_addr(remote);
            arp.set_target_hw_addr(target_mac);
            arp.set_target_proto_addr(target_ip);
        }
        let _ = self.tx.send_to(&buf, None);
    }

    /// Sends a neighbour solicitation (`advert`: false) for the stack's address, or an advertisement of the
    /// impersonated one to `to` (RFC 4861 4.3, 4.4), from the impersonated address with our MAC address as its
    /// link-layer option. An advertisement to all nodes (the answer to duplicate address detection) is not
    /// solicited (RFC 4861 7.2.4).
    fn ndp(&mut self, advert: bool, to: (MacAddr, Ipv6Addr)) {
        let (IpAddr::V6(remote), IpAddr::V6(local)) = (self.remote, self.local) else { return };
        // ICMPv6 header, flags, target, and one 8-byte link-layer address option.
        const ICMP: usize = 32;
        let mut buf = [0u8; 14 + 40 + ICMP];
        let option = [NdpOption {
            option_type: if advert { NdpOptionTypes::TargetLLAddr } else { NdpOptionTypes::SourceLLAddr },
            length: 1,
            data: self.our_mac.octets().to_vec(),
        }];
        {
            let icmp = &mut buf[54..];
            if advert {
                let mut na = MutableNeighborAdvertPacket::new(icmp).expect("room for an advertisement");
                na.set_icmpv6_type(Icmpv6Types::NeighborAdvert);
                let solicited = if to.1.is_multicast() { 0 } else { NeighborAdvertFlags::Solicited };
                na.set_flags(solicited | NeighborAdvertFlags::Override);
                na.set_target_addr(remote);
                na.set_options(&option);
            } else {
                let mut ns = MutableNeighborSolicitPacket::new(icmp).expect("room for a solicitation");
                ns.set_icmpv6_type(Icmpv6Types::NeighborSolicit);
                ns.set_target_addr(local);
                ns.set_options(&option);
            }
            let sum = icmpv6::checksum(&Icmpv6Packet::new(icmp).expect("room for ICMPv6"), &remote, &to.1);
            icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        }
        {
            let mut ip = MutableIpv6Packet::new(&mut buf[14..]).expect("room for IPv6");
            ip.set_version(6);
            ip.set_payload_length(ICMP as u16);
            ip.set_next_header(IpNextHeaderProtocols::Icmpv6);
            // Neighbour discovery is dropped unless it comes with hop limit 255 (RFC 4861 7.1).
            ip.set_hop_limit(255);
            ip.set_source(remote);
            ip.set_destination(to.1);
        }
        {
            let mut eth = MutableEthernetPacket::new(&mut buf).expect("room for a frame");
            eth.set_destination(to.0);
            eth.set_source(self.our_mac);
            eth.set_ethertype(EtherTypes::Ipv6);
        }
        let _ = self.tx.send_to(&buf, None);
    }

    /// Takes what the link carries for `wait` at most (what is there already, for none): ARP and neighbour
    /// solicitations are answered, the stack's TCP to us queued. Returns once a datagram of the stack's is queued,
    /// or the stack's MAC address learned, so that waiting for one costs no more than its arrival.
    fn pump(&mut self, wait: Duration) {
        let until = Instant::now() + wait;
        let (queued, known) = (self.out.len(), self.stack_mac.is_some());
        loop {
            match self.rx.next() {
                Ok(f) => {
                    let f = f.to_vec();
                    self.frame(&f);
                    if !wait.is_zero() && (self.out.len() > queued || self.stack_mac.is_some() != known) {
                        return;
                    }
                }
                Err(_) => {
                    let now = Instant::now();
                    if now >= until {
                        return;
                    }
                    std::thread::sleep((until - now).min(Duration::from_micros(200)));
                }
            }
        }
    }

    fn frame(&mut self, frame: &[u8]) {
        let Some(eth) = EthernetPacket::new(frame) else { return };
        let to_us = eth.get_destination() == self.our_mac;
        let d = eth.payload();
        match eth.get_ethertype() {
            EtherTypes::Arp => {
                let (Some(arp), Some(remote)) = (ArpPacket::new(d), self.remote_v4()) else { return };
                if IpAddr::V4(arp.get_sender_proto_addr()) == self.local && self.cfg.stack_mac.is_none() {
                    self.stack_mac = Some(arp.get_sender_hw_addr());
                }
                if arp.get_operation() == ArpOperations::Request && arp.get_target_proto_addr() == remote {
                    self.arp(ArpOperations::Reply, arp.get_sender_hw_addr(), arp.get_sender_proto_addr());
                }
            }
            EtherTypes::Ipv4 if to_us => {
                // Version 4, TCP, from the stack, to the impersonated address; Ethernet may pad a short one.
                if d.len() < 20 || d[0] >> 4 != 4 || d[9] != 6 {
                    return;
                }
                let (src, dst) = (<[u8; 4]>::try_from(&d[12..16]), <[u8; 4]>::try_from(&d[16..20]));
                let (Ok(src), Ok(dst)) = (src, dst) else { return };
                if IpAddr::from(src) != self.local || IpAddr::from(dst) != self.remote {
                    return;
                }
                let total = usize::from(u16::from_be_bytes([d[2], d[3]]));
                // A TSO super-packet says 0 or a wrong total on a link with offloads: keep what came.
                let len = if (20..=d.len()).contains(&total) { total } else { d.len() };
                self.queue(d[..len].to_vec());
            }
            EtherTypes::Ipv6 => {
                if d.len() < 40 || d[0] >> 4 != 6 {
                    return;
                }
                let (src, dst) = (<[u8; 16]>::try_from(&d[8..24]), <[u8; 16]>::try_from(&d[24..40]));
                let (Ok(src), Ok(dst)) = (src, dst) else { return };
                let (src, dst) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
                let end = (40 + usize::from(u16::from_be_bytes([d[4], d[5]]))).min(d.len());
                match d[6] {
                    58 => self.neighbour(eth.get_source(), src, &d[40..end]),
                    6 if to_us && IpAddr::V6(src) == self.local && IpAddr::V6(dst) == self.remote => {
                        // As for IPv4: a super-packet's payload length may not be its own.
                        let len = if end > 40 { end } else { d.len() };
                        self.queue(d[..len].to_vec());
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// The stack's neighbour discovery: a solicitation for the impersonated address is answered; the stack's own
    /// solicitations and advertisements say its MAC address.
    fn neighbour(&mut self, from: MacAddr, src: Ipv6Addr, icmp: &[u8]) {
        let (IpAddr::V6(remote), IpAddr::V6(local)) = (self.remote, self.local) else { return };
        let Some(kind) = Icmpv6Packet::new(icmp).map(|p| p.get_icmpv6_type()) else { return };
        if kind == Icmpv6Types::NeighborSolicit {
            let Some(ns) = NeighborSolicitPacket::new(icmp) else { return };
            if src == local && self.cfg.stack_mac.is_none() {
                self.stack_mac = Some(from);
            }
            if ns.get_target_addr() == remote {
                // A solicitation from the unspecified address (duplicate address detection) is answered to all
                // nodes (RFC 4861 7.2.4).
                let to = if src.is_unspecified() {
                    (MacAddr::new(0x33, 0x33, 0, 0, 0, 1), Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1))
                } else {
                    (from, src)
                };
                self.ndp(true, to);
            }
        } else if kind == Icmpv6Types::NeighborAdvert {
            let Some(na) = NeighborAdvertPacket::new(icmp) else { return };
            if na.get_target_addr() == local && self.cfg.stack_mac.is_none() {
                self.stack_mac = Some(from);
            }
        }
    }

    /// Queues a datagram of the stack's, its TCP checksum completed if the stack left it to the NIC.
    fn queue(&mut self, mut datagram: Vec<u8>) {
        complete_partial_checksum(&mut datagram);
        let t = self.now();
        self.out.push_back((t, datagram));
    }

    /// The stack's MAC address: known, learned, or asked for (one second at most).
    fn stack_mac(&mut self) -> Result<MacAddr, String> {
        let limit = Instant::now() + Duration::from_secs(1);
        let mut asked: Option<Instant> = None;
        while self.stack_mac.is_none() {
            if Instant::now() >= limit {
                let how = if self.local.is_ipv6() { "neighbour discovery" } else { "ARP" };
                return Err(format!(
                    "{} did not answer {how} on {}: is the stack up there (or give --stack-mac)?",
                    self.local, self.cfg.interface
                ));
            }
            if asked.is_none_or(|a| a.elapsed() >= Duration::from_millis(200)) {
                match self.local {
                    IpAddr::V4(l) => self.arp(ArpOperations::Request, MacAddr::zero(), l),
                    IpAddr::V6(l) => self.ndp(false, solicited_node(l)),
                }
                asked = Some(Instant::now());
            }
            self.pump(Duration::from_millis(10));
        }
        Ok(self.stack_mac.expect("learned above"))
    }

    /// Whether the stack on the link is the reference stack served by `tcpdrill serve --agent-listen`: its knobs,
    /// options and TCP_INFO fields are the reference backend's.
    fn served(&self) -> bool {
        self.cfg.os == Some("tcpdrill_ref")
    }

    fn agent(&mut self) -> Result<&mut AgentClient, Errno> {
        self.agent.as_mut().ok_or(Errno::ENOSYS)
    }
}

impl Backend for Raw {
    fn name(&self) -> &'static str {
        "raw"
    }

    fn capabilities(&self) -> Capabilities {
        let agent = self.agent.is_some();
        let served = self.served();
        Capabilities {
            shell: false,
            // Blocks run here, on TCP_INFO snapshots the agent takes: Linux's layout, so a Linux stack's, or the
            // served reference stack's (its fields in Linux's layout).
            python: agent && (self.cfg.os == Some("Linux") || served),
            real_time: true,
            // The agent is tcpdrill's, on Linux, and takes options by number; the served reference stack's
            // endpoint takes the options the reference stack has, as the reference backend does.
            linux_api: agent && !served,
            icmp: true,
            calls: agent,
        }
    }

    fn addresses(&self) -> (IpAddr, IpAddr) {
        (self.local, self.remote)
    }

    fn ip_version(&self) -> IpVersion {
        self.ip
    }

    fn link_mtu(&self) -> Option<u32> {
        link_mtu(&self.cfg.interface)
    }

    fn remote_port(&self) -> Option<u16> {
        // On the command line's link one stack takes every script in turn, and a script that leaves a TIME-WAIT
        // (60 s on Linux) would meet the next one's SYN on the same four-tuple: each run its own port instead,
        // from 40123 up through 16,384 ports. A testbed's stack is the script's alone, and keeps the usual one.
        static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
        self.shared.then(|| 40_123 + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 16_384)
    }

    fn now(&self) -> Micros {
        self.start.elapsed().as_micros() as Micros
    }

    fn start_clock(&mut self) {
        self.start = Instant::now();
        self.pump(Duration::ZERO);
        self.out.clear();
    }

    fn advance_to(&mut self, t: Micros) {
        loop {
            let now = self.now();
            if now >= t {
                return;
            }
            self.pump(Duration::from_micros((t - now).min(20_000) as u64));
        }
    }

    fn inject(&mut self, datagram: &[u8]) -> Result<(), String> {
        self.pump(Duration::ZERO);
        let dst = self.stack_mac()?;
        let mut frame = vec![0u8; 14 + datagram.len()];
        {
            let mut eth = MutableEthernetPacket::new(&mut frame).expect("room for a header");
            eth.set_destination(dst);
            eth.set_source(self.our_mac);
            let v6 = datagram.first().is_some_and(|b| b >> 4 == 6);
            eth.set_ethertype(if v6 { EtherTypes::Ipv6 } else { EtherTypes::Ipv4 });
        }
        frame[14..].copy_from_slice(datagram);
        match self.tx.send_to(&frame, None) {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) if e.raw_os_error() == Some(libc::EMSGSIZE) => Err(format!(
                "a {}-byte datagram is more than {} carries (its MTU): a real link cannot send it",
                datagram.len(),
                self.cfg.interface
            )),
            Some(Err(e)) => Err(format!("sending on {}: {e}", self.cfg.interface)),
            None => Err(format!("sending on {}: no room", self.cfg.interface)),
        }
    }

    fn next_outbound(&mut self, deadline: Micros) -> Option<(Micros, Vec<u8>)> {
        loop {
            if let Some(p) = self.out.pop_front() {
                return Some(p);
            }
            let now = self.now();
            if now >= deadline {
                self.pump(Duration::ZERO);
                return self.out.pop_front();
            }
            self.pump(Duration::from_micros((deadline - now).min(20_000) as u64));
        }
    }

    fn call(&mut self, call: &Call) -> CallResult {
        let r = match self.agent() {
            Ok(a) => a.call(call),
            Err(e) => CallResult::Err(e),
        };
        self.pump(Duration::ZERO);
        r
    }

    fn ready(&mut self, call: &Call) -> bool {
        self.agent().is_ok_and(|a| a.ready(call))
    }

    fn set_knob(&mut self, name: &str, value: &str) -> Result<(), String> {
        self.set_knobs(&[(name.to_string(), value.to_string())])
    }

    fn set_knobs(&mut self, knobs: &[(String, String)]) -> Result<(), String> {
        for (k, v) in knobs {
            self.check_knob(k, v).map_err(|e| format!("sysctl {k}={v}: {e}"))?;
        }
        // The MTU was checked to be the link's already, and TSO is the link's.
        let knobs: Vec<&(String, String)> = knobs.iter().filter(|(k, _)| k != "mtu" && k != "tso").collect();
        if knobs.is_empty() {
            return Ok(());
        }
        // The agent's own sysctl requests take microseconds (a shell command, milliseconds: a script that sets a
        // sysctl at 0 and calls at 0 would be late), and it puts the old values back itself.
        if let Some(a) = self.agent.as_mut().filter(|a| a.allows_sysctl()) {
            for (k, v) in knobs {
                a.sysctl(k, v).map_err(|e| format!("sysctl {k}={v}: {e}"))?;
            }
            return Ok(());
        }
        let quote = |s: &str| shlex::try_quote(s).map(|q| q.into_owned()).map_err(|e| e.to_string());
        // A run's settings are its own, as in the linux backend's namespace: the old values go back at the end.
        // One shell command reads the values not saved yet and sets them all, one round trip to the agent.
        let mut new: Vec<&str> = Vec::new();
        for (k, _) in &knobs {
            if !self.restore.iter().any(|(n, _)| n == k) && !new.contains(&k.as_str()) {
                new.push(k);
            }
        }
        let read = new.iter().map(|k| quote(k)).collect::<Result<Vec<_>, _>>()?;
        let write = knobs.iter().map(|(k, v)| quote(&format!("{k}={v}"))).collect::<Result<Vec<_>, _>>()?;
        let agent = self.agent.as_mut().ok_or("no agent")?;
        // The old values first and saved, then the writes: a write failing halfway leaves what it did
        // restorable.
        if !read.is_empty() {
            let (_, old) = agent.shell(&format!("sysctl -n {}", read.join(" ")))?;
            let old: Vec<&str> = old.lines().collect();
            if old.len() != new.len() {
                return Err(format!(
                    "`sysctl -n` on the agent's host gave {} values for {} names",
                    old.len(),
                    new.len()
                ));
            }
            for (k, v) in new.iter().zip(old) {
                self.restore.push((k.to_string(), v.trim().replace('\t', " ")));
            }
        }
        agent.shell(&format!("sysctl -q -w {}", write.join(" ")))?;
        Ok(())
    }

    fn check_knob(&self, name: &str, value: &str) -> Result<(), String> {
        // The script's MTU is the link's, or the script cannot run here.
        if name == "mtu" {
            let have = link_mtu(&self.cfg.interface);
            return match have {
                Some(m) if value.parse() == Ok(m) => Ok(()),
                Some(m) => Err(format!(
                    "the link's MTU is {m} ({}'s): set the MTU on the link, not from the script",
                    self.cfg.interface
                )),
                None => Err(format!("the MTU of {} is unknown here", self.cfg.interface)),
            };
        }
        // `--tso=off` asks to see segments as a wire carries them, which is what a link shows, unless the
        // stack's end of it is a veth or tap with segmentation offload on: that is the link's to set (`ethtool -K
        // IFACE tso off gso off` there; the testbed does).
        if name == "tso" {
            return match value {
                "off" | "on" => Ok(()),
                _ => Err(format!("--tso={value}: on or off")),
            };
        }
        if self.served() && self.agent.is_some() {
            return super::reference::check_knob(name, value);
        }
        match &self.agent {
            Some(a) if (a.allows_sysctl() || a.allows_shell()) && name.starts_with("net.") => Ok(()),
            Some(_) => Err(format!(
                "{name}={value}: the raw backend sets the stack's sysctls through its agent, and this agent runs \
                 without --allow-sysctl (or --allow-shell)"
            )),
            None => Err(format!("{name}={value}: the raw backend sets the stack's sysctls only through an agent")),
        }
    }

    fn shell(&mut self, cmd: &str, _cwd: Option<&std::path::Path>, _deadline: Instant) -> Result<(), String> {
        Err(format!("the raw backend runs no shell commands ({cmd})"))
    }

    fn tcp_info(&mut self, fd: i32) -> Result<Vec<(&'static str, i64)>, String> {
        let call = Call::GetSockOptRaw { fd, level: libc::IPPROTO_TCP, name: libc::TCP_INFO, string: Some(512) };
        match self.agent().map_err(|_| "no agent".to_string())?.call(&call) {
            CallResult::Bytes(b) => Ok(super::linux::tcp_info_fields(&b)),
            other => Err(format!("getsockopt(TCP_INFO) on the agent's fd {fd}: {other:?}")),
        }
    }

    fn tcp_info_names(&self) -> Option<&'static [&'static str]> {
        self.served().then_some(super::reference::TCP_INFO_NAMES)
    }

    fn tcp_state(&mut self, tuple: &FourTuple) -> Option<TcpState> {
        match self.agent().ok()?.call(&Call::TcpState(*tuple)) {
            CallResult::Value(tcpdrill_stack::host::SockOptValue::Int(n)) => {
                TcpState::from_linux_number(n as u8).filter(|s| *s != TcpState::Closed)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::complete_partial_checksum;
    use std::net::IpAddr;
    use tcpdrill_stack::wire::{checksum, TcpDatagram, TcpFlags, TcpOptions, TcpRepr};
    use tcpdrill_stack::SeqNum;

    /// A datagram with a right checksum, in both IP versions, and where its TCP checksum field is.
    fn datagrams() -> Vec<(Vec<u8>, usize, IpAddr, IpAddr)> {
        let pairs: [(IpAddr, IpAddr); 2] = [
            ("192.168.0.1".parse().unwrap(), "192.0.2.1".parse().unwrap()),
            ("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap()),
        ];
        pairs
            .into_iter()
            .map(|(src, dst)| {
                let tcp = TcpRepr {
                    src_port: 8080,
                    dst_port: 40000,
                    seq: SeqNum(1),
                    ack: SeqNum(2),
                    flags: TcpFlags::ACK,
                    window: 1000,
                    urgent: 0,
                    options: TcpOptions::default(),
                    payload: b"hello",
                };
                let d = TcpDatagram::new(src, dst, tcp).to_vec().unwrap();
                let field = if src.is_ipv6() { 40 + 16 } else { 20 + 16 };
                (d, field, src, dst)
            })
            .collect()
    }

    #[test]
    fn completes_only_what_the_stack_left_to_the_nic() {
        for (good, field, src, dst) in datagrams() {
            let mut d = good.clone();
            complete_partial_checksum(&mut d);
            assert_eq!(d, good, "a right checksum stays");
            // CHECKSUM_PARTIAL: the folded pseudo-header sum.
            let len = (good.len() - field + 16) as u32;
            let pseudo = match (src, dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => checksum::pseudo_header_v4(s, d, 6, len),
                (IpAddr::V6(s), IpAddr::V6(d)) => checksum::pseudo_header_v6(s, d, 6, len),
                _ => unreachable!(),
            };
            let mut d = good.clone();
            d[field..field + 2].copy_from_slice(&(!checksum::finish(pseudo)).to_be_bytes());
            complete_partial_checksum(&mut d);
            assert_eq!(d, good, "a partial checksum is completed ({src})");
            // Anything else wrong is the stack's, and stays for the executor to report.
            let mut d = good.clone();
            d[field] ^= 0x10;
            let bad = d.clone();
            complete_partial_checksum(&mut d);
            assert_eq!(d, bad, "a wrong checksum stays wrong ({src})");
        }
    }
}
