//! A link for the raw backend made on this machine: two fresh network namespaces joined by veth pairs, the
//! Linux kernel as the stack under test in one of them with `tcpdrill agent` beside it, and the raw backend in
//! the other. The tests run the conformance suite over it (`raw::` cases, one testbed per script, so one
//! script's TIME-WAIT or sysctl never meets the next) and the benchmarks measure the raw backend on it.
//!
//! The stack's namespace has the addresses run_all.py gives packetdrill's stack (192.168.0.1/16 and
//! fd3d:a0b:17d6::1/64 on `vb`, routes to the peers 192.0.2.1 and fd3d:fa7b:d17d::1 through it), because the
//! suite's scripts name 192.168.0.1; the agent listens on a second veth pair, 198.51.100.1/30 (the harness's end
//! is 198.51.100.2), a documentation range. Both namespaces belong to threads of this process: nothing is
//! created in the host's namespace, and everything goes when the threads end. Needs root and `ip` (iproute2), for
//! the veth pairs.

use super::raw::{interface_ioctl, with_link, RawConfig};
use super::{linux, netlink};
use crate::agent::{serve, AgentConfig};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// The harness's end of the test link.
pub const INTERFACE: &str = "va";

/// Whether testbeds can be made here: why not, in one sentence, if not.
pub fn available() -> Result<(), String> {
    linux::available()?;
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err("the raw backend's testbed needs `ip` (iproute2) to make its veth pairs: install iproute2".into()),
    }
}

/// Runs `f` on a thread in a fresh namespace holding the harness's end of a new testbed whose link has MTU
/// `mtu`, with the raw backend pointed at it ([`with_link`]); `f` is given the link's configuration. The
/// testbed is gone when this returns.
pub fn run<R: Send + 'static>(mtu: u32, f: impl FnOnce(&RawConfig) -> R + Send + 'static) -> Result<R, String> {
    std::thread::spawn(move || {
        linux::unshare_netns()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tid_tx, tid_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (addr_tx, addr_rx) = mpsc::channel();
        let token = token();
        let (s, t) = (stop.clone(), token.clone());
        let stack = std::thread::spawn(move || -> Result<(), String> {
            linux::unshare_netns()?;
            // SAFETY: gettid has no preconditions.
            let _ = tid_tx.send(unsafe { libc::gettid() });
            go_rx.recv_timeout(Duration::from_secs(10)).map_err(|_| "the harness's side of the testbed gave up")?;
            stack_side()?;
            let cfg = AgentConfig {
                listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)), 0),
                token: t,
                // The scripts' sysctls, set in this namespace only; no shell.
                allow_shell: false,
                allow_sysctl: true,
                max_sockets: 64,
                idle: Duration::from_secs(300),
            };
            serve(cfg, s, |a| {
                let _ = addr_tx.send(a);
            })
        });
        let built = (|| {
            let tid = tid_rx.recv_timeout(Duration::from_secs(10)).map_err(|_| "the stack's namespace failed")?;
            harness_side(tid, mtu)?;
            let _ = go_tx.send(());
            let agent =
                addr_rx.recv_timeout(Duration::from_secs(10)).map_err(|_| "the testbed's agent did not start")?;
            // Both veth pairs carry once both ends are up; a segment sent before is lost, and the agent's SYN
            // would wait a second for its retransmission.
            wait_running(INTERFACE)?;
            wait_running("ca")?;
            Ok::<SocketAddr, String>(agent)
        })();
        // The agent stops however `f` ends, a panic included (a test's assertion), so that the thread and its
        // namespaces go.
        struct Stop(Arc<AtomicBool>);
        impl Drop for Stop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let stopper = Stop(stop.clone());
        let result = built.map(|agent| {
            let cfg = RawConfig {
                interface: INTERFACE.into(),
                v4: Some((super::LOCAL_IP, super::REMOTE_IP)),
                v6: Some((v6(super::IpVersion::V6.local_ip()), v6(super::IpVersion::V6.remote_ip()))),
                stack_mac: None,
                agent: Some((agent, token)),
                os: Some("Linux"),
            };
            with_link(cfg.clone(), || f(&cfg))
        });
        drop(stopper);
        drop(go_tx);
        let stacked = stack.join().unwrap_or_else(|_| Err("the testbed's agent panicked".into()));
        // The stack side's own error says more than the harness side's "did not start".
        match (result, stacked) {
            (Ok(r), Ok(())) => Ok(r),
            (_, Err(e)) => Err(format!("the testbed's stack side: {e}")),
            (Err(e), Ok(())) => Err(e),
        }
    })
    .join()
    .unwrap_or_else(|_| Err("the testbed's thread panicked".into()))
}

/// Runs `f` on a thread in a fresh namespace where the reference stack is served on a TAP device
/// (`tcpdrill serve --tap --kernel-address none --agent-listen`), with the raw backend pointed at that device
/// and the serve process's own call endpoint as its agent: the same scripts, over a wire and on the real clock,
/// that the reference backend runs in-process. The stack has the scripts' address (192.168.0.1), its seed the
/// reference backend's, no services, and its calls' endpoint on the namespace's loopback. IPv4 only: the served
/// stack has one IPv4 address.
pub fn run_served<R: Send + 'static>(f: impl FnOnce(&RawConfig) -> R + Send + 'static) -> Result<R, String> {
    run_served_with(Vec::new(), f)
}

/// As [`run_served`], with the served stack's sysctl-named `knobs` set (`serve --sysctl`): each session of the
/// call endpoint starts from them.
pub fn run_served_with<R: Send + 'static>(
    knobs: Vec<(String, String)>,
    f: impl FnOnce(&RawConfig) -> R + Send + 'static,
) -> Result<R, String> {
    std::thread::spawn(move || {
        linux::unshare_netns()?;
        let token = token();
        let served = crate::serve::start(crate::serve::ServeConfig {
            stack_ip: super::LOCAL_IP,
            kernel_ip: None,
            tap: true,
            agent: Some(AgentConfig {
                listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
                token: token.clone(),
                allow_shell: false,
                allow_sysctl: true,
                max_sockets: 64,
                idle: Duration::from_secs(300),
            }),
            services: Vec::new(),
            knobs,
            seed: super::reference::SEED,
            ..crate::serve::ServeConfig::default()
        })?;
        wait_running(crate::serve::DEVICE)?;
        let cfg = RawConfig {
            interface: crate::serve::DEVICE.into(),
            v4: Some((super::LOCAL_IP, super::REMOTE_IP)),
            v6: None,
            stack_mac: None,
            agent: Some((served.agent_addr.ok_or("the served stack has no call endpoint")?, token)),
            os: Some("tcpdrill_ref"),
        };
        let r = with_link(cfg.clone(), || f(&cfg));
        served.stop()?;
        Ok(r)
    })
    .join()
    .unwrap_or_else(|_| Err("the served testbed's thread panicked".into()))
}

fn v6(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V6(a) => a,
        IpAddr::V4(a) => a.to_ipv6_mapped(),
    }
}

/// A token nobody outside this process knows (the agent listens only inside the testbed anyway).
fn token() -> String {
    let mut b = [0u8; 16];
    // SAFETY: getrandom fills the buffer it is given, at most its length.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        b = (now.as_nanos() ^ u128::from(std::process::id())).to_le_bytes();
    }
    crate::hex::encode(&b)
}

/// Turns TSO and GSO off on interface `name` (the legacy ethtool ioctls, which need no ethtool program).
fn no_segmentation_offload(name: &str) -> Result<(), String> {
    const ETHTOOL_STSO: u32 = 0x1f;
    const ETHTOOL_SGSO: u32 = 0x24;
    /// The kernel's struct ethtool_value.
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    for cmd in [ETHTOOL_STSO, ETHTOOL_SGSO] {
        let mut v = EthtoolValue { cmd, data: 0 };
        // SAFETY: all-zero bytes are a valid ifreq.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        req.ifr_ifru.ifru_data = (&mut v as *mut EthtoolValue).cast();
        interface_ioctl(name, libc::SIOCETHTOOL, &mut req)
            .map_err(|e| format!("turning segmentation offload off on {name}: {e}"))?;
    }
    Ok(())
}

/// Waits until interface `name` (in this thread's namespace) has carrier (IFF_RUNNING), two seconds at most.
fn wait_running(name: &str) -> Result<(), String> {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(2) {
        // SAFETY: all-zero bytes are a valid ifreq.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        // SAFETY: SIOCGIFFLAGS filled in the union's flags.
        if interface_ioctl(name, libc::SIOCGIFFLAGS, &mut req).is_ok()
            && unsafe { req.ifr_ifru.ifru_flags } & libc::IFF_RUNNING as i16 != 0
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    Err(format!("{name} had no carrier within 2 s"))
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("running ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// In the harness's namespace: the veth pairs, their far ends moved into the stack's (thread `tid`'s); the test
/// link without IPv6 of its own (this kernel must not answer the stack's neighbour solicitations, nor chatter);
/// the control link with its address.
fn harness_side(tid: i32, mtu: u32) -> Result<(), String> {
    let (tid, mtu) = (tid.to_string(), mtu.to_string());
    let mut rtnl = netlink::Rtnl::open()?;
    rtnl.link_up(netlink::index("lo")?)?;
    ip(&["link", "add", INTERFACE, "mtu", &mtu, "type", "veth", "peer", "name", "vb", "mtu", &mtu, "netns", &tid])?;
    ip(&["link", "add", "ca", "type", "veth", "peer", "name", "cb", "netns", &tid])?;
    for dev in [INTERFACE, "ca"] {
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{dev}/disable_ipv6"), "1");
        rtnl.link_up(netlink::index(dev)?)?;
    }
    rtnl.add_address(netlink::index("ca")?, IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2)), 30)
}

/// In the stack's namespace: the stack's addresses and routes on the test link (IPv6 without duplicate address
/// detection or router solicitations, as the linux backend's TUN device), the agent's address on the control
/// link.
fn stack_side() -> Result<(), String> {
    let mut rtnl = netlink::Rtnl::open()?;
    rtnl.link_up(netlink::index("lo")?)?;
    let vb = netlink::index("vb")?;
    for (knob, v) in [("addr_gen_mode", "1"), ("accept_dad", "0"), ("router_solicitations", "0")] {
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/vb/{knob}"), v);
    }
    // Segments on the test link as a wire carries them, not as TSO/GSO super-packets: the veth passes the
    // stack's super-packets on whole otherwise, which no real link does.
    no_segmentation_offload("vb")?;
    rtnl.add_address(vb, IpAddr::V4(super::LOCAL_IP), 16)?;
    rtnl.link_up(vb)?;
    rtnl.add_route(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 0)), 24, vb)?;
    rtnl.add_address(vb, super::IpVersion::V6.local_ip(), 64)?;
    rtnl.add_route(IpAddr::V6(Ipv6Addr::new(0xfd3d, 0xfa7b, 0xd17d, 0, 0, 0, 0, 0)), 64, vb)?;
    linux::wait_for_local_route(super::IpVersion::V6.local_ip())?;
    let cb = netlink::index("cb")?;
    let _ = std::fs::write("/proc/sys/net/ipv6/conf/cb/disable_ipv6", "1");
    rtnl.add_address(cb, IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)), 30)?;
    rtnl.link_up(cb)
}
