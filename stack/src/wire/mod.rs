//! The wire format: IPv4, IPv6 and TCP, parsed and emitted.
//!
//! Two levels, as in smoltcp: `*Packet` / [`TcpSegment`] are checked views over bytes with getters and
//! setters (the harness uses them to build broken packets on purpose); `*Repr` are the meaning, with `parse`,
//! `emit` and `buffer_len`. [`TcpDatagram`] ties an IP header to its TCP segment, which is what travels
//! between the harness and a stack.

pub mod checksum;
mod error;
pub mod ipv4;
pub mod ipv6;
pub mod notation;
pub mod tcp;

pub use error::{Result, WireError};
pub use ipv4::{Ipv4Packet, Ipv4Repr};
pub use ipv6::{Ipv6Packet, Ipv6Repr};
pub use notation::Numbering;
pub use tcp::{Checksums, SackBlocks, TcpFlags, TcpOption, TcpOptionIter, TcpOptions, TcpRepr, TcpSegment};

use core::fmt;
use core::net::IpAddr;

/// Either IP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpRepr {
    /// IPv4.
    V4(Ipv4Repr),
    /// IPv6.
    V6(Ipv6Repr),
}

impl IpRepr {
    /// A plain header for a TCP payload of `payload_len` bytes: TTL/hop limit 64, DF set on IPv4, no ECN.
    pub fn tcp(src: IpAddr, dst: IpAddr, payload_len: usize) -> IpRepr {
        match (src, dst) {
            (IpAddr::V4(src_addr), IpAddr::V4(dst_addr)) => IpRepr::V4(Ipv4Repr {
                src_addr,
                dst_addr,
                protocol: tcp::PROTOCOL,
                payload_len,
                ttl: 64,
                tos: 0,
                ident: 0,
                dont_frag: true,
            }),
            (s, d) => IpRepr::V6(Ipv6Repr {
                src_addr: to_v6(s),
                dst_addr: to_v6(d),
                next_header: tcp::PROTOCOL,
                payload_len,
                hop_limit: 64,
                traffic_class: 0,
                flow_label: 0,
            }),
        }
    }

    /// Source address.
    pub fn src_addr(&self) -> IpAddr {
        match self {
            IpRepr::V4(r) => r.src_addr.into(),
            IpRepr::V6(r) => r.src_addr.into(),
        }
    }

    /// Destination address.
    pub fn dst_addr(&self) -> IpAddr {
        match self {
            IpRepr::V4(r) => r.dst_addr.into(),
            IpRepr::V6(r) => r.dst_addr.into(),
        }
    }

    /// The ECN codepoint of the TOS / traffic class byte.
    pub fn ecn(&self) -> u8 {
        match self {
            IpRepr::V4(r) => r.tos & 3,
            IpRepr::V6(r) => r.traffic_class & 3,
        }
    }

    /// Payload length.
    pub fn payload_len(&self) -> usize {
        match self {
            IpRepr::V4(r) => r.payload_len,
            IpRepr::V6(r) => r.payload_len,
        }
    }

    fn set_payload_len(&mut self, len: usize) {
        match self {
            IpRepr::V4(r) => r.payload_len = len,
            IpRepr::V6(r) => r.payload_len = len,
        }
    }

    /// Header length.
    pub fn buffer_len(&self) -> usize {
        match self {
            IpRepr::V4(r) => r.buffer_len(),
            IpRepr::V6(r) => r.buffer_len(),
        }
    }

    fn emit(&self, buf: &mut [u8]) -> Result<()> {
        match self {
            IpRepr::V4(r) => r.emit(buf),
            IpRepr::V6(r) => r.emit(buf),
        }
    }
}

fn to_v6(a: IpAddr) -> core::net::Ipv6Addr {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// An IP datagram carrying one TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpDatagram<'a> {
    /// The IP header.
    pub ip: IpRepr,
    /// The TCP segment.
    pub tcp: TcpRepr<'a>,
}

impl<'a> TcpDatagram<'a> {
    /// Parses an IPv4 or IPv6 datagram (chosen by the version nibble) whose payload is TCP.
    #[inline]
    pub fn parse(bytes: &'a [u8], checksums: Checksums) -> Result<TcpDatagram<'a>> {
        let Some(&first) = bytes.first() else {
            return Err(WireError::Truncated { what: "IP header", needed: 1, got: 0 });
        };
        let (ip, payload): (IpRepr, &'a [u8]) = match first >> 4 {
            4 => {
                let p = Ipv4Packet::new_checked(bytes)?;
                let r = Ipv4Repr::parse(&p, checksums == Checksums::Verify)?;
                if r.protocol != tcp::PROTOCOL {
                    return Err(WireError::NotTcp(r.protocol));
                }
                let start = p.header_len();
                (IpRepr::V4(r), &bytes[start..start + r.payload_len])
            }
            6 => {
                let p = Ipv6Packet::new_checked(bytes)?;
                let r = Ipv6Repr::parse(&p)?;
                if r.next_header != tcp::PROTOCOL {
                    return Err(WireError::NotTcp(r.next_header));
                }
                (IpRepr::V6(r), &bytes[ipv6::HEADER_LEN..ipv6::HEADER_LEN + r.payload_len])
            }
            v => return Err(WireError::BadVersion(v)),
        };
        let seg = TcpSegment::new_checked(payload)?;
        let tcp = TcpRepr::parse(&seg, ip.src_addr(), ip.dst_addr(), checksums)?;
        Ok(TcpDatagram { ip, tcp })
    }

    /// A datagram with a plain IP header (see [`IpRepr::tcp`]) around `tcp`.
    pub fn new(src: IpAddr, dst: IpAddr, tcp: TcpRepr<'a>) -> TcpDatagram<'a> {
        TcpDatagram { ip: IpRepr::tcp(src, dst, tcp.buffer_len()), tcp }
    }

    /// Bytes [`TcpDatagram::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        self.ip.buffer_len() + self.tcp.buffer_len()
    }

    /// Writes the datagram with correct checksums and lengths; the IP payload length is taken from the TCP
    /// segment, whatever `self.ip` says. Returns the bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let total = self.buffer_len();
        if buf.len() < total {
            return Err(WireError::BufferTooSmall { needed: total, got: buf.len() });
        }
        let mut ip = self.ip;
        ip.set_payload_len(self.tcp.buffer_len());
        let hl = ip.buffer_len();
        ip.emit(&mut buf[..hl])?;
        self.tcp.emit(&mut buf[hl..total], ip.src_addr(), ip.dst_addr())?;
        Ok(total)
    }

    /// Emits into a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v)?;
        Ok(v)
    }
}

/// `192.0.2.1:8080 > 192.168.0.1:50000 S. 0:0(0) ack 1 win 65535 <...>`, with `[ect0]`-style ECN marks as
/// packetdrill writes them.
impl fmt::Display for TcpDatagram<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, d) = (self.ip.src_addr(), self.ip.dst_addr());
        let (sp, dp) = (self.tcp.src_port, self.tcp.dst_port);
        match (s, d) {
            (IpAddr::V6(s), IpAddr::V6(d)) => write!(f, "[{s}]:{sp} > [{d}]:{dp} {}", self.tcp)?,
            _ => write!(f, "{s}:{sp} > {d}:{dp} {}", self.tcp)?,
        }
        match self.ip.ecn() {
            1 => f.write_str(" [ect1]"),
            2 => f.write_str(" [ect0]"),
            3 => f.write_str(" [ce]"),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
