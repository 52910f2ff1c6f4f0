//! Inbound packets: a `<` line made into the datagram the harness injects, its numbers mapped from script space to
//! live ones (packetdrill's `map_inbound_packet`).

use super::*;
use crate::script::icmp;
use tcpdrill_stack::wire::{checksum, tcp, Ipv4Repr, Ipv6Repr};

impl Exec<'_> {
    /// The connection a packet line is on, as (stack's port, harness's port): the ports it names (`inbound`: as
    /// the harness sends them), or the script's connection.
    pub(super) fn default_tuple(&self, ports: Option<(u16, u16)>, inbound: bool) -> (u16, u16) {
        match ports {
            Some((a, b)) if inbound => (b, a),
            Some((a, b)) => (a, b),
            None => (self.local_port.unwrap_or(self.opts.port), self.remote_port),
        }
    }

    pub(super) fn inject(&mut self, e: &Event, p: &Packet) -> Res<()> {
        if let PacketBody::Icmp(icmp) = &p.body {
            return self.inject_icmp(e, p, icmp);
        }
        let PacketBody::Tcp(t) = &p.body else { unreachable!("preflight skips other packets") };
        let (lp, rp) = self.default_tuple(t.ports, true);
        let flags = TcpFlags::from_letters(&t.flags);
        if flags.syn() {
            self.space.inbound_syn((lp, rp), flags.ack(), t.seq.unwrap_or(0));
        }
        let (seq_offset, ack_offset) =
            (self.space.remote_offset((lp, rp), flags.syn()), self.space.local_offset((lp, rp), flags.syn()));
        let mut options = TcpOptions::EMPTY;
        if let Some(Options::List(list, lspan)) = &t.options {
            for o in list {
                let acc_ecn = o.acc_ecn_wire();
                let opt = match o {
                    TcpOpt::Bytes(b) => {
                        options = TcpOptions::from_bytes(&[options.as_bytes(), b].concat()).map_err(|err| {
                            self.fail(*lspan, "error handling packet", format!("{err}"), vec![], "these options")
                        })?;
                        continue;
                    }
                    TcpOpt::Nop => TcpOption::Nop,
                    TcpOpt::Eol => TcpOption::Eol,
                    TcpOpt::Mss(v) => TcpOption::Mss(*v),
                    TcpOpt::WScale(v) => TcpOption::WindowScale(*v),
                    TcpOpt::SackOk => TcpOption::SackPermitted,
                    TcpOpt::Sack(b) => {
                        // Inbound SACK blocks acknowledge the stack's data: relative to its ISN.
                        let blocks: Vec<_> = b
                            .iter()
                            .map(|(l, r)| (SeqNum(ack_offset.wrapping_add(*l)), SeqNum(ack_offset.wrapping_add(*r))))
                            .collect();
                        TcpOption::Sack(SackBlocks::new(&blocks).unwrap_or_default())
                    }
                    TcpOpt::Ts { val, ecr } => TcpOption::Timestamps {
                        tsval: val.unwrap_or(0),
                        tsecr: ecr.map_or(0, |v| {
                            if v == 0 {
                                0
                            } else {
                                v.wrapping_add(self.space.ts_offset().unwrap_or(0))
                            }
                        }),
                    },
                    TcpOpt::FastOpen(c) => TcpOption::FastOpen(c),
                    TcpOpt::FastOpenExp(c) => TcpOption::FastOpenExp(c),
                    TcpOpt::Md5(c) => {
                        let mut d = [0u8; 16];
                        d[..c.len().min(16)].copy_from_slice(&c[..c.len().min(16)]);
                        TcpOption::Md5(d)
                    }
                    TcpOpt::Raw { kind, data } => TcpOption::Unknown { kind: *kind, data },
                    TcpOpt::AccEcn { .. } => {
                        let (kind, data) = acc_ecn.as_ref().expect("an AccECN option has its wire form");
                        TcpOption::Unknown { kind: *kind, data }
                    }
                };
                options.push(&opt).map_err(|err| {
                    self.fail(*lspan, "error handling packet", format!("{err}"), vec![], "these options")
                })?;
            }
        } else if let Some(Options::Any) = t.options {
            return Err(self.fail(
                p.span,
                "error handling packet",
                "<...> only goes on outbound packets".into(),
                vec![],
                "inbound",
            ));
        }
        let payload = vec![0u8; t.len as usize];
        let repr = TcpRepr {
            src_port: rp,
            dst_port: lp,
            seq: SeqNum(t.seq.unwrap_or(0).wrapping_add(seq_offset)),
            // As packetdrill maps it (map_inbound_packet): only a segment with ACK set has its number shifted.
            ack: SeqNum(t.ack.map_or(0, |a| if flags.ack() { ack_offset.wrapping_add(a) } else { a })),
            flags,
            window: t.win.unwrap_or(0).min(u32::from(u16::MAX)) as u16,
            urgent: t.urg.unwrap_or(0) as u16,
            options,
            payload: &payload,
        };
        let mut d = TcpDatagram::new(self.remote_ip, self.local_ip, repr);
        // packetdrill's ip_info (set_ip_header): the TOS byte (IPv6's traffic class) or its ECN bits (`[ect01]`
        // is 0 inbound, as its grammar gives it no value), and the TTL (IPv6's hop limit), 255 unless the script
        // sets one (0 meaning unset too); a flow label is IPv6's and ignored on IPv4, as packetdrill does.
        let tos = match p.ip.tos {
            Some(Tos::Ecn(e)) => Some(match e {
                Ecn::NoEcn | Ecn::Ect01 => 0,
                Ecn::Ect1 => 1,
                Ecn::Ect0 => 2,
                Ecn::Ce => 3,
            }),
            Some(Tos::Byte(b)) => Some(b),
            Some(Tos::Dscp { dscp, .. }) => Some(dscp << 2),
            None => None,
        };
        let ttl = p.ip.ttl.filter(|&t| t != 0).unwrap_or(255);
        match &mut d.ip {
            IpRepr::V4(ip) => {
                ip.tos = tos.unwrap_or(ip.tos);
                ip.ttl = ttl;
            }
            IpRepr::V6(ip) => {
                ip.traffic_class = tos.unwrap_or(ip.traffic_class);
                ip.hop_limit = ttl;
                ip.flow_label = p.ip.flow_label.unwrap_or(ip.flow_label);
            }
        }
        let mut bytes = d
            .to_vec()
            .map_err(|err| self.fail(p.span, "error handling packet", err.to_string(), vec![], "this packet"))?;
        if t.bad_csum {
            corrupt_tcp_checksum(&mut bytes);
        }
        let t_now = self.backend.now();
        self.seen.insert((SocketAddr::new(self.local_ip, lp), SocketAddr::new(self.remote_ip, rp)));
        self.trace.entries.push(TraceEntry::Inbound { t: t_now, text: printer::tcp(t), bytes: bytes.clone() });
        self.backend.inject(&bytes).map_err(|err| {
            self.fail(e.span, "error handling packet", format!("injecting failed: {err}"), vec![], "this packet")
        })?;
        self.collect_states();
        Ok(())
    }
}

impl Exec<'_> {
    /// An ICMP error (or echo) about the script's connection, as packetdrill's new_icmp_packet builds it and
    /// map_inbound_icmp_tcp_packet fills it in: from the harness's address, quoting the IP header of a segment
    /// the stack sent (its addresses, TCP) and the first 8 bytes of its TCP header (the stack's port, the
    /// harness's, and the sequence number written, relative to the stack's ISN); `[raw(N)]` is N bytes of ICMP
    /// message, zeros after the header.
    fn inject_icmp(&mut self, e: &Event, p: &Packet, icmp: &IcmpSpec) -> Res<()> {
        // IPv4-mapped IPv6 runs put IPv4 on the wire, so the wire's family is the one that counts.
        let v6 = self.local_ip.is_ipv6();
        let fail = |x: &Self, why: String| x.fail(p.span, "error handling packet", why, vec![], "this packet");
        let (kind, code) = icmp::resolve(v6, &icmp.kind, icmp.code.as_deref()).map_err(|why| fail(self, why))?;
        // Bytes 5 to 8: the next-hop MTU (RFC 1191 section 4, RFC 4443 section 3.2), or the echo identifier.
        let mut rest = [0u8; 4];
        if let Some(mtu) = icmp.mtu {
            match (v6, kind, code) {
                (false, 3, 4) => {
                    let m = u16::try_from(mtu).map_err(|_| fail(self, "ICMPv4 MTU out of 16-bit range".into()))?;
                    rest[2..].copy_from_slice(&m.to_be_bytes());
                }
                (true, 2, 0) => rest = mtu.to_be_bytes(),
                (false, ..) => return Err(fail(self, "ICMPv4 MTU is only valid for unreachable-frag_needed".into())),
                (true, ..) => return Err(fail(self, "ICMPv6 MTU is only valid for packet_too_big-0".into())),
            }
        }
        if let Some(id) = icmp.id.filter(|id| *id > 0) {
            rest[..2].copy_from_slice(&(id as u16).to_be_bytes());
        }
        let (lp, rp) = self.default_tuple(None, false);
        let mut message = vec![kind, code, 0, 0];
        message.extend_from_slice(&rest);
        let (seq, len) = match &icmp.echoed {
            None => (0, 0),
            Some(Echoed::Tcp { seq, len, udp_encap: None }) => (*seq, *len),
            Some(Echoed::Raw(n)) => {
                message.resize((*n as usize).max(message.len()), 0);
                (0, 0)
            }
            Some(_) => unreachable!("preflight skips ICMP quoting other packets"),
        };
        if !matches!(icmp.echoed, Some(Echoed::Raw(_))) {
            let quoted_len = 20 + len as usize;
            let mut quoted = ip_header(self.local_ip, self.remote_ip, tcp::PROTOCOL, quoted_len, 0, 255, 0)
                .map_err(|why| fail(self, why))?;
            quoted.extend_from_slice(&lp.to_be_bytes());
            quoted.extend_from_slice(&rp.to_be_bytes());
            let live = seq.wrapping_add(self.space.local_offset((lp, rp), false));
            quoted.extend_from_slice(&live.to_be_bytes());
            message.extend_from_slice(&quoted);
        }
        let protocol = if v6 { 58 } else { 1 };
        let tos = match p.ip.tos {
            Some(Tos::Ecn(e)) => e.bits(),
            Some(Tos::Byte(b)) => b,
            Some(Tos::Dscp { dscp, .. }) => dscp << 2,
            None => 0,
        };
        let ttl = p.ip.ttl.filter(|&t| t != 0).unwrap_or(255);
        let mut bytes =
            ip_header(self.remote_ip, self.local_ip, protocol, message.len(), tos, ttl, p.ip.flow_label.unwrap_or(0))
                .map_err(|why| fail(self, why))?;
        // ICMPv6's checksum covers a pseudo-header (RFC 4443 section 2.3); ICMPv4's only the message.
        let pseudo = match (self.remote_ip, self.local_ip) {
            (IpAddr::V6(s), IpAddr::V6(d)) if v6 => checksum::pseudo_header_v6(s, d, protocol, message.len() as u32),
            _ => 0,
        };
        let sum = checksum::finish(checksum::combine(&[pseudo, checksum::sum(&message)]));
        message[2..4].copy_from_slice(&sum.to_be_bytes());
        bytes.extend_from_slice(&message);
        let t_now = self.backend.now();
        let text = printer::packet(p);
        self.trace.entries.push(TraceEntry::Inbound {
            t: t_now,
            text: text[1..].trim_start().to_string(),
            bytes: bytes.clone(),
        });
        self.backend.inject(&bytes).map_err(|err| {
            self.fail(e.span, "error handling packet", format!("injecting failed: {err}"), vec![], "this packet")
        })?;
        self.collect_states();
        Ok(())
    }
}

/// An IP header for a payload of `len` bytes of `protocol`, as the stack's wire layer writes one (IPv4 with DF
/// clear, as an ICMP error's sender would not set it for us).
fn ip_header(
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    len: usize,
    tos: u8,
    ttl: u8,
    flow_label: u32,
) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; 40];
    let n = match (src, dst) {
        (IpAddr::V4(src_addr), IpAddr::V4(dst_addr)) => {
            let r = Ipv4Repr { src_addr, dst_addr, protocol, payload_len: len, ttl, tos, ident: 0, dont_frag: false };
            r.emit(&mut buf).map_err(|e| e.to_string())?;
            20
        }
        (s, d) => {
            let r = Ipv6Repr {
                src_addr: to_v6(s),
                dst_addr: to_v6(d),
                next_header: protocol,
                payload_len: len,
                hop_limit: ttl,
                traffic_class: tos,
                flow_label,
            };
            r.emit(&mut buf).map_err(|e| e.to_string())?;
            40
        }
    };
    buf.truncate(n);
    Ok(buf)
}

fn to_v6(a: IpAddr) -> std::net::Ipv6Addr {
    match a {
        IpAddr::V6(a) => a,
        IpAddr::V4(a) => a.to_ipv6_mapped(),
    }
}

/// Makes the TCP checksum of an IPv4 or IPv6 datagram wrong. Flipping the lowest bit never lands on the other
/// one's-complement form of the same sum (0x0000 and 0xffff differ in every bit), so the result is always wrong.
pub(super) fn corrupt_tcp_checksum(datagram: &mut [u8]) {
    let ip_len = match datagram.first().map(|b| b >> 4) {
        Some(4) => usize::from(datagram[0] & 0x0f) * 4,
        _ => 40,
    };
    if let Some(b) = datagram.get_mut(ip_len + 17) {
        *b ^= 1;
    }
}
