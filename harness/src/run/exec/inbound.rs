//! Inbound packets: a `<` line made into the datagram the harness injects, its numbers mapped from script space to
//! live ones (packetdrill's `map_inbound_packet`).

use super::*;

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
