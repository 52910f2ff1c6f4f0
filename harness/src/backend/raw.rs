//! The raw backend: any stack on an Ethernet-like link. The harness impersonates the peer on the user's
//! interface through an AF_PACKET channel (pnet_datalink): it answers ARP for the impersonated address only,
//! learns the stack's MAC address (from its ARP, by asking, or `--stack-mac`), sends the script's segments in
//! frames to it and takes from the link only the stack's IPv4 TCP to that address. The script's socket calls go to
//! `tcpdrill agent` on the stack's host (`--agent`); without one, only scripts without calls run (probes of a
//! stack already listening), the others are skipped with that reason.
//!
//! Nothing on the harness's host is changed. Its own kernel must not answer the impersonated flows: it must not
//! hold the impersonated address (checked: the backend refuses to start), and it drops what it receives for an
//! address not its own as long as it does not forward (checked too). IPv4 only so far.

use super::{Backend, BackendInfo, Call, CallResult, Capabilities, IpVersion, Micros};
use crate::agent::AgentClient;
use pnet_datalink::{Channel, DataLinkReceiver, DataLinkSender, MacAddr, NetworkInterface};
use pnet_packet::arp::{ArpHardwareTypes, ArpOperations, ArpPacket, MutableArpPacket};
use pnet_packet::ethernet::{EtherTypes, EthernetPacket, MutableEthernetPacket};
use pnet_packet::Packet;
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tcpdrill_stack::{Errno, FourTuple, TcpState};

/// Where the raw backend is pointed: the link, the two addresses and the agent.
#[derive(Debug, Clone)]
pub struct RawConfig {
    /// The interface on the stack's link (a veth end, a tap, a NIC).
    pub interface: String,
    /// The stack's address.
    pub local_ip: Ipv4Addr,
    /// The address the harness impersonates.
    pub remote_ip: Ipv4Addr,
    /// The stack's MAC address, when it should not be learned by ARP.
    pub stack_mac: Option<MacAddr>,
    /// `tcpdrill agent` on the stack's host, and its token.
    pub agent: Option<(SocketAddr, String)>,
}

static CONFIG: OnceLock<RawConfig> = OnceLock::new();

/// Points the raw backend of this process at a link (once: the command line's, or a test's).
pub fn configure(cfg: RawConfig) -> Result<(), String> {
    CONFIG.set(cfg).map_err(|_| "the raw backend is configured already".to_string())
}

/// The raw backend in the registry.
pub const INFO: BackendInfo = BackendInfo {
    name: "raw",
    symbols: &[],
    netns: false,
    real_time: true,
    exclusive: true,
    ip_versions: &[IpVersion::V4],
    available,
    make: |ip| Ok(Box::new(Raw::new(ip)?)),
};

/// Whether the raw backend has a link to work on.
pub fn available() -> Result<(), String> {
    match CONFIG.get() {
        None => Err("the raw backend needs a link: give --interface, --local-ip and --remote-ip (and --agent for \
                     scripts with socket calls)"
            .into()),
        Some(_) => Ok(()),
    }
}

/// One script's run on the link.
pub struct Raw {
    cfg: RawConfig,
    tx: Box<dyn DataLinkSender>,
    rx: Box<dyn DataLinkReceiver>,
    our_mac: MacAddr,
    stack_mac: Option<MacAddr>,
    start: Instant,
    out: VecDeque<(Micros, Vec<u8>)>,
    agent: Option<AgentClient>,
    /// The sysctls this run changed on the stack's host, with the values they had.
    restore: Vec<(String, String)>,
}

impl Drop for Raw {
    fn drop(&mut self) {
        if let Some(a) = self.agent.as_mut() {
            for (name, old) in self.restore.drain(..).rev() {
                if let Ok(kv) = shlex::try_quote(&format!("{name}={old}")) {
                    let _ = a.shell(&format!("sysctl -q -w {kv}"));
                }
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

impl Raw {
    /// Opens the channel and, when one is named, the agent's session.
    pub fn new(ip: IpVersion) -> Result<Raw, String> {
        let cfg = CONFIG.get().cloned().ok_or_else(|| available().unwrap_err())?;
        if ip != IpVersion::V4 {
            return Err("the raw backend runs IPv4 only so far".into());
        }
        let iface = interface(&cfg.interface)?;
        // The harness's kernel must not be the one answering: not with the impersonated address, not by
        // forwarding what the stack sends to it.
        if let Some(holder) =
            pnet_datalink::interfaces().iter().find(|i| i.ips.iter().any(|n| n.ip() == IpAddr::V4(cfg.remote_ip)))
        {
            return Err(format!(
                "this host holds {} (on {}), so its own kernel would answer the stack: impersonate an address no \
                 interface here has",
                cfg.remote_ip, holder.name
            ));
        }
        if std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").is_ok_and(|v| v.trim() != "0") {
            return Err("this host forwards IPv4 (net.ipv4.ip_forward=1), so its kernel would route the stack's \
                        segments on: run the harness in a namespace or on a host that does not forward"
                .into());
        }
        let our_mac =
            iface.mac.ok_or_else(|| format!("{} has no MAC address: the raw backend needs Ethernet", cfg.interface))?;
        // A zero read timeout: reads never wait, `pump` does (the executor's clock decides how long).
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
            Some((addr, token)) => Some(AgentClient::connect(*addr, token, Duration::from_secs(5))?),
            None => None,
        };
        Ok(Raw {
            stack_mac: cfg.stack_mac,
            cfg,
            tx,
            rx,
            our_mac,
            start: Instant::now(),
            out: VecDeque::new(),
            agent,
            restore: Vec::new(),
        })
    }

    fn arp(&mut self, op: pnet_packet::arp::ArpOperation, target_mac: MacAddr, target_ip: Ipv4Addr) {
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
            arp.set_sender_proto_addr(self.cfg.remote_ip);
            arp.set_target_hw_addr(target_mac);
            arp.set_target_proto_addr(target_ip);
        }
        let _ = self.tx.send_to(&buf, None);
    }

    /// Takes what the link carries for `wait` at most (what is there already, for none): ARP is answered, the
    /// stack's TCP to us queued. Returns once a datagram of the stack's is queued, or the stack's MAC address
    /// learned, so that waiting for one costs no more than its arrival.
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
        match eth.get_ethertype() {
            EtherTypes::Arp => {
                let Some(arp) = ArpPacket::new(eth.payload()) else { return };
                if arp.get_sender_proto_addr() == self.cfg.local_ip && self.cfg.stack_mac.is_none() {
                    self.stack_mac = Some(arp.get_sender_hw_addr());
                }
                if arp.get_operation() == ArpOperations::Request && arp.get_target_proto_addr() == self.cfg.remote_ip {
                    self.arp(ArpOperations::Reply, arp.get_sender_hw_addr(), arp.get_sender_proto_addr());
                }
            }
            EtherTypes::Ipv4 if eth.get_destination() == self.our_mac => {
                let d = eth.payload();
                // Version 4, TCP, from the stack, to the impersonated address; Ethernet may pad a short one.
                if d.len() < 20 || d[0] >> 4 != 4 || d[9] != 6 || d[12..16] != self.cfg.local_ip.octets() {
                    return;
                }
                if d[16..20] != self.cfg.remote_ip.octets() {
                    return;
                }
                let total = usize::from(u16::from_be_bytes([d[2], d[3]]));
                // A TSO super-packet says 0 or a wrong total on a link with offloads: keep what came.
                let len = if (20..=d.len()).contains(&total) { total } else { d.len() };
                let mut datagram = d[..len].to_vec();
                // Checksums may be left to the NIC (CHECKSUM_PARTIAL across a veth): completed, as the linux
                // backend does for its TUN device, since AF_PACKET does not say which ones are.
                super::linux::complete_checksums(&mut datagram);
                let t = self.now();
                self.out.push_back((t, datagram));
            }
            _ => {}
        }
    }

    /// The stack's MAC address: known, learned, or asked for (one second at most).
    fn stack_mac(&mut self) -> Result<MacAddr, String> {
        let limit = Instant::now() + Duration::from_secs(1);
        let mut asked: Option<Instant> = None;
        while self.stack_mac.is_none() {
            if Instant::now() >= limit {
                return Err(format!(
                    "{} did not answer ARP on {}: is the stack up there (or give --stack-mac)?",
                    self.cfg.local_ip, self.cfg.interface
                ));
            }
            if asked.is_none_or(|a| a.elapsed() >= Duration::from_millis(200)) {
                self.arp(ArpOperations::Request, MacAddr::zero(), self.cfg.local_ip);
                asked = Some(Instant::now());
            }
            self.pump(Duration::from_millis(10));
        }
        Ok(self.stack_mac.expect("learned above"))
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
        Capabilities {
            shell: false,
            python: false,
            real_time: true,
            // The agent is tcpdrill's, on Linux, and takes options by number.
            linux_api: agent,
            icmp: true,
            calls: agent,
        }
    }

    fn addresses(&self) -> (IpAddr, IpAddr) {
        (IpAddr::V4(self.cfg.local_ip), IpAddr::V4(self.cfg.remote_ip))
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
            eth.set_ethertype(EtherTypes::Ipv4);
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
        self.check_knob(name, value)?;
        let agent = self.agent.as_mut().ok_or("no agent")?;
        // A run's settings are its own, as in the linux backend's namespace: the old value goes back at the end.
        let name_q = shlex::try_quote(name).map_err(|e| e.to_string())?;
        if !self.restore.iter().any(|(n, _)| n == name) {
            let (_, old) = agent.shell(&format!("sysctl -n {name_q}"))?;
            self.restore.push((name.to_string(), old.trim().replace('\t', " ")));
        }
        let kv = shlex::try_quote(&format!("{name}={value}")).map_err(|e| e.to_string())?.into_owned();
        agent.shell(&format!("sysctl -q -w {kv}")).map(|_| ())
    }

    fn check_knob(&self, name: &str, value: &str) -> Result<(), String> {
        if matches!(name, "mtu" | "tso") {
            return Err(format!(
                "--{name}={value}: the link is the user's interface; set its {name} there, not from the script"
            ));
        }
        match &self.agent {
            Some(a) if a.allows_shell() && name.starts_with("net.") => Ok(()),
            Some(_) => Err(format!(
                "{name}={value}: the raw backend sets the stack's sysctls through its agent's shell, and this agent \
                 runs without --allow-shell"
            )),
            None => Err(format!("{name}={value}: the raw backend sets the stack's sysctls only through an agent")),
        }
    }

    fn shell(&mut self, cmd: &str, _cwd: Option<&std::path::Path>, _deadline: Instant) -> Result<(), String> {
        Err(format!("the raw backend runs no shell commands ({cmd})"))
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
