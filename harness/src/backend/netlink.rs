//! Links, addresses and routes of the linux backend's namespace, set through rtnetlink (the `netlink-packet-route`
//! messages `ip` itself sends) instead of spawning `ip`: each spawn cost 10 to 20 ms, most of a short script's
//! fixed cost. Every request asks for the kernel's acknowledgement, so a refusal is reported with its errno.
//!
//! Only the calling thread's network namespace is touched: the netlink socket is opened by the thread that
//! `unshare`d itself, and a socket belongs to the namespace it was created in.

#![allow(unsafe_code)]

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol};
use netlink_packet_route::route::{RouteScope, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::net::IpAddr;

/// An rtnetlink socket in the calling thread's namespace.
pub struct Rtnl {
    socket: Socket,
    seq: u32,
}

/// The index of interface `name` in the calling thread's namespace.
pub fn index(name: &str) -> Result<u32, String> {
    let c = std::ffi::CString::new(name).map_err(|_| format!("{name:?} is not an interface name"))?;
    // SAFETY: a NUL-terminated name that outlives the call.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(format!("no interface {name}: {}", std::io::Error::last_os_error())),
        i => Ok(i),
    }
}

fn family(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

impl Rtnl {
    /// Opens an rtnetlink socket in the calling thread's namespace, whose replies are waited for 2 s at most.
    pub fn open() -> Result<Rtnl, String> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| format!("opening an rtnetlink socket: {e}"))?;
        let timeout = libc::timeval { tv_sec: 2, tv_usec: 0 };
        // SAFETY: setsockopt on a descriptor the socket owns, with a timeval that outlives the call.
        unsafe {
            use std::os::fd::AsRawFd;
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            );
        }
        socket.bind_auto().map_err(|e| format!("binding the rtnetlink socket: {e}"))?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(|e| format!("connecting the rtnetlink socket: {e}"))?;
        Ok(Rtnl { socket, seq: 0 })
    }

    /// Sends `msg` and waits for the kernel's acknowledgement; `what` names the request in an error.
    fn request(&mut self, msg: RouteNetlinkMessage, create: bool, what: &str) -> Result<(), String> {
        self.seq += 1;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | if create { NLM_F_CREATE | NLM_F_EXCL } else { 0 };
        header.sequence_number = self.seq;
        let mut m = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        m.finalize();
        let mut buf = vec![0u8; m.buffer_len()];
        m.serialize(&mut buf);
        self.socket.send(&buf, 0).map_err(|e| format!("{what}: sending to rtnetlink: {e}"))?;
        let mut reply = vec![0u8; 8192];
        loop {
            let n = self.socket.recv(&mut &mut reply[..], 0).map_err(|e| format!("{what}: reading rtnetlink: {e}"))?;
            let got = <NetlinkMessage<RouteNetlinkMessage>>::deserialize(&reply[..n])
                .map_err(|e| format!("{what}: a reply rtnetlink could not decode: {e}"))?;
            if got.header.sequence_number != self.seq {
                continue;
            }
            return match got.payload {
                NetlinkPayload::Error(e) if e.code.is_some() => Err(format!("{what}: {}", e.to_io())),
                _ => Ok(()),
            };
        }
    }

    /// `ip link set DEV up`.
    pub fn link_up(&mut self, index: u32) -> Result<(), String> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(m), false, "setting the link up")
    }

    /// `ip link set DEV mtu MTU`.
    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<(), String> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes.push(LinkAttribute::Mtu(mtu));
        self.request(RouteNetlinkMessage::SetLink(m), false, &format!("setting the MTU to {mtu}"))
    }

    /// `ip addr add ADDR/PREFIX dev DEV` (`nodad`: no duplicate address detection, for IPv6, so the address is
    /// usable at once).
    pub fn add_address(&mut self, index: u32, addr: IpAddr, prefix: u8) -> Result<(), String> {
        let mut m = AddressMessage::default();
        m.header.family = family(addr);
        m.header.prefix_len = prefix;
        m.header.index = index;
        m.attributes.push(AddressAttribute::Local(addr));
        m.attributes.push(AddressAttribute::Address(addr));
        if addr.is_ipv6() {
            use netlink_packet_route::address::AddressFlags;
            m.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        self.request(RouteNetlinkMessage::NewAddress(m), true, &format!("adding the address {addr}/{prefix}"))
    }

    /// `ip route add DST/PREFIX dev DEV`.
    pub fn add_route(&mut self, dst: IpAddr, prefix: u8, index: u32) -> Result<(), String> {
        let mut m = RouteMessage::default();
        m.header.address_family = family(dst);
        m.header.destination_prefix_length = prefix;
        m.header.table = RouteHeader::RT_TABLE_MAIN;
        m.header.protocol = RouteProtocol::Boot;
        m.header.scope = RouteScope::Link;
        m.header.kind = RouteType::Unicast;
        m.attributes.push(RouteAttribute::Destination(RouteAddress::from(dst)));
        m.attributes.push(RouteAttribute::Oif(index));
        self.request(RouteNetlinkMessage::NewRoute(m), true, &format!("adding a route to {dst}/{prefix}"))
    }
}
