//! Outbound packets: where a `>` line is matched. The stack's segments are read (merged as packetdrill merges
//! them), their numbers mapped into script space (the ISN offsets of socket.h), then checked field by field in
//! packetdrill's order, then for time.

use super::*;

impl Exec<'_> {
    pub(super) fn outbound_text(&self, d: &[u8]) -> String {
        self.outbound_text_ports(d, false)
    }

    /// As [`Exec::outbound_text`], with the ports written out always when `ports` is set.
    pub(super) fn outbound_text_ports(&self, d: &[u8], ports: bool) -> String {
        match TcpDatagram::parse(d, Checksums::Ignore) {
            Ok(p) => {
                let (tuple, syn) = ((p.tcp.src_port, p.tcp.dst_port), p.tcp.flags.syn());
                let text = p.tcp.notation(self.numbering(tuple, syn)).to_string();
                // The ports, as the script's per-packet syntax writes them, when they are not the connection's.
                if tuple == self.default_tuple(None, false) && !ports {
                    text
                } else {
                    format!("{}>{} {text}", tuple.0, tuple.1)
                }
            }
            Err(e) => format!("(unparsable: {e})"),
        }
    }

    /// Script space for a segment of `tuple` the stack sent: its sequence numbers less our ISN, its ACK numbers
    /// less the script's, TSval less the learned origin.
    fn numbering(&self, tuple: (u16, u16), syn: bool) -> Numbering {
        Numbering {
            seq_offset: self.space.local_offset(tuple, syn),
            ack_offset: self.space.remote_offset(tuple, syn),
            ts_offset: self.space.ts_offset().unwrap_or(0),
        }
    }

    pub(super) fn expect_packet(&mut self, e: &Event, p: &Packet, start: Micros, end: Micros) -> Res<()> {
        let PacketBody::Tcp(t) = &p.body else { unreachable!("preflight skips other packets") };
        let tol = if matches!(e.time, TimeSpec::Any) { 0 } else { self.tolerance(start) };
        let deadline = if end == Micros::MAX {
            Micros::MAX / 2
        } else {
            end.saturating_add(tol).saturating_add(self.opts.packet_timeout_usecs)
        };
        let script_text = printer::tcp(t);
        let (actual, bytes) = self.sniff(e, deadline, &script_text, start)?;
        let first_len = self.check_wire(e, &bytes)?.tcp.payload.len();
        // Merged segments are traced as they come; a single one once its numbers are learned (below).
        let merging = first_len < t.len as usize && !self.opts.strict_segments;
        let (actual, bytes) = if merging {
            self.merge(e, (actual, bytes), t.len as usize, deadline, &script_text, start)?
        } else {
            (actual, bytes)
        };
        let live = TcpDatagram::parse(&bytes, Checksums::Verify).expect("checked by check_wire or built by merge");
        // Learn the stack's ISN, port and TS offset from this packet where the script fixes them.
        let ports = (live.tcp.src_port, live.tcp.dst_port);
        if live.tcp.flags.syn() {
            self.space.outbound_syn(ports, live.tcp.flags.ack(), live.tcp.seq.0, t.seq, actual);
            if !live.tcp.flags.ack() {
                self.local_port = Some(live.tcp.src_port);
                self.remote_port = live.tcp.dst_port;
            }
        }
        if let (Some((v, _)), Some(Options::List(list, _))) = (live.tcp.options.timestamps(), &t.options) {
            if let Some(sv) = list.iter().find_map(|o| match o {
                TcpOpt::Ts { val: Some(sv), .. } => Some(*sv),
                _ => None,
            }) {
                self.space.outbound_tsval(v, sv);
            }
        }
        if !merging {
            self.trace_outbound(actual, &bytes);
        }
        let text = self.outbound_text(&bytes);
        self.trace.lines.push((self.line(e.span), format!("{} > {text}", secs(actual))));
        self.space.outbound_end(ports, live.tcp.seq.0.wrapping_add(live.tcp.segment_len() as u32));
        let details = |x: &Self| {
            vec![
                format!("script packet:  {} {script_text}", secs(start)),
                format!("actual packet:  {} {}", secs(actual), x.outbound_text(&bytes)),
            ]
        };
        // packetdrill's TSval tolerance grows with the time since the script's start, not since the last event.
        self.ts_tolerance_usecs = self.tolerance_over(start);
        // packetdrill compares the payload's length first, before any header field (do_outbound_script_packet).
        if live.tcp.payload.len() != t.len as usize {
            let msg =
                format!("live packet payload: expected {} bytes vs actual {} bytes", t.len, live.tcp.payload.len());
            let mut d = details(self);
            if live.tcp.payload.len() > t.len as usize && self.real_time {
                d.push(
                    "hint: a packet longer than the line may be a TSO super-packet (several MSS handed over as one, \
                     as packetdrill's TUN device has it); the header option --tso=off shows the segments as they go \
                     on the wire"
                        .into(),
                );
            }
            return Err(self.fail(e.span, "error handling packet", msg, d, "this packet"));
        }
        if let Err(m) = self.check_fields(t, &p.ip, &live) {
            let msg = format!("live packet field {}: expected: {} vs actual: {}", m.field, m.expected, m.actual);
            let mut d = details(self);
            if m.field.ends_with("_port") {
                d[1] = format!("actual packet:  {} {}", secs(actual), self.outbound_text_ports(&bytes, true));
            }
            return Err(self.fail(e.span, "error handling packet", msg, d, "this packet"));
        }
        // Timing.
        let ok = match e.time {
            TimeSpec::Any => true,
            _ => actual >= start.saturating_sub(tol) && actual <= end.saturating_add(tol),
        };
        if !ok {
            let msg = timing_error("outbound packet", start, end, actual, tol);
            return Err(self.fail(e.time_span, "error handling packet", msg, details(self), "expected time"));
        }
        Ok(())
    }

    /// The next packet the stack sends, by `deadline`; packetdrill's "Timed out waiting for packet" without one.
    pub(super) fn sniff(
        &mut self,
        e: &Event,
        deadline: Micros,
        script_text: &str,
        start: Micros,
    ) -> Res<(Micros, Vec<u8>)> {
        let got = self.backend.next_outbound(self.bounded(deadline));
        self.collect_states();
        if let Some(p) = got {
            return Ok(p);
        }
        self.within_limit()?;
        Err(self.fail(
            e.span,
            "error handling packet",
            "Timed out waiting for packet".into(),
            vec![format!("script packet: {} {script_text}", secs(start))],
            "expected this packet",
        ))
    }

    /// What every segment the stack sends must be, whatever the script expects: a well-formed datagram with
    /// valid checksums and a well-formed option area.
    pub(super) fn check_wire<'b>(&self, e: &Event, bytes: &'b [u8]) -> Res<TcpDatagram<'b>> {
        let bad = |x: &Self, m: String| x.fail(e.span, "error handling packet", m, vec![], "while expecting this");
        let live = TcpDatagram::parse(bytes, Checksums::Verify)
            .map_err(|err| bad(self, format!("the stack sent a malformed datagram: {err}")))?;
        if let Some(problem) = options_problem(&live.tcp.options) {
            return Err(bad(self, format!("the stack sent malformed options: {problem}")));
        }
        Ok(live)
    }

    /// In record mode, takes what the stack has sent by now into the trace, learning its ISN and ports from its
    /// SYN as a `>` line numbering it 0 would, so that later inbound lines' ACK numbers count from it.
    pub(super) fn record_outbound(&mut self) {
        if !self.opts.record {
            return;
        }
        let now = self.backend.now();
        while let Some((t, bytes)) = self.backend.next_outbound(now) {
            self.collect_states();
            if let Ok(live) = TcpDatagram::parse(&bytes, Checksums::Ignore) {
                let ports = (live.tcp.src_port, live.tcp.dst_port);
                if live.tcp.flags.syn() {
                    self.space.outbound_syn(ports, live.tcp.flags.ack(), live.tcp.seq.0, Some(0), t);
                    if !live.tcp.flags.ack() {
                        self.local_port = Some(live.tcp.src_port);
                        self.remote_port = live.tcp.dst_port;
                    }
                }
                self.space.outbound_end(ports, live.tcp.seq.0.wrapping_add(live.tcp.segment_len() as u32));
            }
            self.trace_outbound(t, &bytes);
        }
    }

    pub(super) fn trace_outbound(&mut self, t: Micros, bytes: &[u8]) {
        if let Ok(d) = TcpDatagram::parse(bytes, Checksums::Ignore) {
            let (src, dst) = (d.ip.src_addr(), d.ip.dst_addr());
            self.seen.insert((SocketAddr::new(src, d.tcp.src_port), SocketAddr::new(dst, d.tcp.dst_port)));
        }
        let text = self.outbound_text(bytes);
        self.trace.entries.push(TraceEntry::Outbound { t, text, bytes: bytes.to_vec() });
    }

    /// packetdrill's merging of consecutive segments into one expected packet (run_packet.c,
    /// `do_outbound_script_packet` and `verify_packet_fragments`; packet.c, `aggregate_packets`), so that data cut
    /// by TSO/GSO, the MSS or the congestion window matches a line that sends it whole. Segments are read while
    /// their payloads add up to less than `want`; each must continue the previous one (its sequence number where
    /// the previous one ended; the same SYN, RST, ACK, URG, ECE and AE flags, ACK number, window, urgent pointer
    /// and option length; FIN, PSH and CWR may differ) and, unless it is the last, be as long as the previous
    /// one. The packet checked is the last segment with the first one's sequence number and CWR flag and all
    /// the payload, at the last one's time. `--strict_segments` turns this off.
    pub(super) fn merge(
        &mut self,
        e: &Event,
        first: (Micros, Vec<u8>),
        want: usize,
        deadline: Micros,
        script_text: &str,
        start: Micros,
    ) -> Res<(Micros, Vec<u8>)> {
        self.trace_outbound(first.0, &first.1);
        let mut segments = vec![first];
        let mut total = self.check_wire(e, &segments[0].1)?.tcp.payload.len();
        while total < want {
            let Some((t, bytes)) = self.backend.next_outbound(self.bounded(deadline)) else {
                self.collect_states();
                self.within_limit()?;
                let msg = format!("live packet payload: expected {want} bytes vs actual {total} bytes");
                let mut details = vec![format!("script packet:  {} {script_text}", secs(start))];
                for (i, (t, b)) in segments.iter().enumerate() {
                    details.push(format!("actual #{}:      {} {}", i + 1, secs(*t), self.outbound_text(b)));
                }
                details.push(format!(
                    "no further segment came by {} s to merge with these (--strict_segments matches one segment a line)",
                    secs(deadline)
                ));
                return Err(self.fail(e.span, "error handling packet", msg, details, "this packet"));
            };
            self.collect_states();
            self.trace_outbound(t, &bytes);
            let cur = self.check_wire(e, &bytes)?;
            let prev_bytes = &segments.last().expect("one at least").1;
            let prev = TcpDatagram::parse(prev_bytes, Checksums::Ignore).expect("checked when read");
            let (p, c) = (&prev.tcp, &cur.tcp);
            // Segment k+1 continues segment k: the same connection, every flag but FIN, PSH and CWR (which the
            // last segment's or the first's stand for), the next sequence number, the same other fields.
            let continues = || -> Result<(), Mismatch> {
                if (c.src_port, c.dst_port) != (p.src_port, p.dst_port) || cur.ip.src_addr() != prev.ip.src_addr() {
                    let ports = |x: &TcpRepr<'_>| format!("{}:{}", x.src_port, x.dst_port);
                    return Err(Mismatch::new("the connection", ports(p), ports(c)));
                }
                for (f, _, _) in TcpFlags::TABLE {
                    if ![TcpFlags::FIN, TcpFlags::PSH, TcpFlags::CWR].contains(&f) {
                        check_field(field_name(f), Some(u8::from(p.flags.contains(f))), u8::from(c.flags.contains(f)))?;
                    }
                }
                // In script numbers, as the rest of the report.
                let tuple = (c.src_port, c.dst_port);
                let (local, remote) = (self.space.local_offset(tuple, false), self.space.remote_offset(tuple, false));
                let next = (p.seq + p.payload.len() as u32).0.wrapping_sub(local);
                check_field("tcp_seq", Some(next), c.seq.0.wrapping_sub(local))?;
                check_field("tcp_ack_seq", Some(p.ack.0.wrapping_sub(remote)), c.ack.0.wrapping_sub(remote))?;
                check_field("tcp_window", Some(p.window), c.window)?;
                check_field("tcp_urg_ptr", Some(p.urgent), c.urgent)?;
                let len = |x: &TcpRepr<'_>| x.options.as_bytes().len() as u64;
                check_field("tcp_options length", Some(len(p)), len(c))
            };
            let differs = continues().err();
            let n = segments.len() + 1;
            let shown = |x: &Self| {
                let mut d = vec![format!("script packet:  {} {script_text}", secs(start))];
                for (i, (t, b)) in segments.iter().enumerate() {
                    d.push(format!("actual #{}:      {} {}", i + 1, secs(*t), x.outbound_text(b)));
                }
                d.push(format!("actual #{n}:      {} {}", secs(t), x.outbound_text(&bytes)));
                d
            };
            if let Some(m) = differs {
                let msg = format!(
                    "segment {n} does not continue segment {} of this packet: {}: expected: {} vs actual: {}",
                    n - 1,
                    m.field,
                    m.expected,
                    m.actual
                );
                return Err(self.fail(e.span, "error handling packet", msg, shown(self), "this packet"));
            }
            let len = c.payload.len();
            if len < want - total && len != p.payload.len() {
                let msg = format!(
                    "fragment payload: expected {} bytes vs actual {len} bytes; total payload: expected {want} bytes vs \
                     actual {} bytes",
                    p.payload.len(),
                    total + len
                );
                return Err(self.fail(e.span, "error handling packet", msg, shown(self), "this packet"));
            }
            total += len;
            segments.push((t, bytes));
        }
        let firsts = TcpDatagram::parse(&segments[0].1, Checksums::Ignore).expect("checked when read");
        let (t, last_bytes) = segments.last().expect("one at least");
        let last = TcpDatagram::parse(last_bytes, Checksums::Ignore).expect("checked when read");
        let mut payload = Vec::with_capacity(total);
        for (_, b) in &segments {
            payload.extend_from_slice(TcpDatagram::parse(b, Checksums::Ignore).expect("checked when read").tcp.payload);
        }
        let flags = TcpFlags((last.tcp.flags.0 & !TcpFlags::CWR.0) | (firsts.tcp.flags.0 & TcpFlags::CWR.0));
        let tcp = TcpRepr { seq: firsts.tcp.seq, flags, payload: &payload, ..last.tcp };
        let merged = TcpDatagram { ip: last.ip, tcp }.to_vec().map_err(|err| {
            let msg = format!("the merged packet cannot be built: {err}");
            let d = vec![format!("{} segments, {total} bytes", segments.len())];
            self.fail(e.span, "error handling packet", msg, d, "this packet")
        })?;
        Ok((*t, merged))
    }

    /// Checks the live packet against the script line field by field, in the order of packetdrill's checks (IP,
    /// ports, ECN, flags, then the numbers mapped into script space, then options); the first difference is the
    /// error. Where packetdrill reports the IP total length (options of another length), tcpdrill names the options.
    pub(super) fn check_fields(&self, t: &TcpSpec, ip: &IpInfo, live: &TcpDatagram<'_>) -> Result<(), Mismatch> {
        let l = &live.tcp;
        let (lp, rp) = self.default_tuple(t.ports, false);
        if live.ip.dst_addr() != self.remote_ip {
            return Err(Mismatch::new("ip_dst", self.remote_ip, live.ip.dst_addr()));
        }
        let port_known = t.ports.is_some() || self.local_port.is_some();
        check_field("tcp_src_port", port_known.then_some(lp), l.src_port)?;
        check_field("tcp_dst_port", Some(rp), l.dst_port)?;
        // packetdrill's verify_outbound_live_tos and verify_outbound_live_ttl_or_hl, whose words (tos, ttl) name
        // IPv6's traffic class and hop limit too.
        match (ip.tos, &live.ip) {
            (Some(Tos::Byte(b)), IpRepr::V4(l)) => check_field("tos", Some(b), l.tos)?,
            (Some(Tos::Byte(b)), IpRepr::V6(l)) => check_field("tos", Some(b), l.traffic_class)?,
            (Some(Tos::Dscp { dscp, ect01 }), ip) => {
                let byte = match ip {
                    IpRepr::V4(l) => l.tos,
                    IpRepr::V6(l) => l.traffic_class,
                };
                check_field("dscp", Some(dscp), byte >> 2)?;
                if ect01 && !matches!(byte & 3, 1 | 2) {
                    return Err(Mismatch::new(
                        "ip_ecn",
                        "ect01",
                        ["noecn", "ect1", "ect0", "ce"][usize::from(byte & 3)],
                    ));
                }
            }
            _ => {}
        }
        if let (Some(f), IpRepr::V6(l)) = (ip.flow_label, &live.ip) {
            self.check_flow_label(f, l.flow_label)?;
        }
        if let Some(e) = ip.ecn() {
            let got = live.ip.ecn();
            let ok = match e {
                Ecn::NoEcn => got == 0,
                Ecn::Ect1 => got == 1,
                Ecn::Ect0 => got == 2,
                Ecn::Ect01 => got == 1 || got == 2,
                Ecn::Ce => got == 3,
            };
            if !ok {
                return Err(Mismatch::new("ip_ecn", e.name(), ["noecn", "ect1", "ect0", "ce"][usize::from(got & 3)]));
            }
        }
        // 0 and 255 are packetdrill's "not checked" (TTL_CHECK_NONE).
        match (ip.ttl, &live.ip) {
            (Some(ttl @ 1..=254), IpRepr::V4(l)) => check_field("ttl", Some(ttl), l.ttl)?,
            (Some(hl @ 1..=254), IpRepr::V6(l)) => check_field("ttl", Some(hl), l.hop_limit)?,
            _ => {}
        }
        let want = TcpFlags::from_letters(&t.flags);
        let psh_either = t.flags.contains('p');
        for (bit, _, _) in TcpFlags::TABLE {
            if !(psh_either && bit == TcpFlags::PSH) {
                check_field(field_name(bit), Some(u8::from(want.contains(bit))), u8::from(l.flags.contains(bit)))?;
            }
        }
        // The live numbers in script space, on a copy: sequence numbers less our ISN, an ACK number (with ACK set
        // only, as packetdrill maps it) less the script's.
        let (tuple, syn) = ((l.src_port, l.dst_port), l.flags.syn());
        let remote_offset = self.space.remote_offset(tuple, syn);
        let seq = l.seq.0.wrapping_sub(self.space.local_offset(tuple, syn));
        let ack = if l.flags.ack() { l.ack.0.wrapping_sub(remote_offset) } else { l.ack.0 };
        check_field("tcp_seq", t.seq, seq)?;
        // An omitted ACK number is 0, and checked, as packetdrill's parser leaves it.
        check_field("tcp_ack_seq", Some(t.ack.unwrap_or(0)), ack)?;
        check_field("tcp_window", t.win, u32::from(l.window))?;
        check_field("tcp_urg_ptr", t.urg, u32::from(l.urgent))?;
        match &t.options {
            Some(Options::Any) => {}
            None if !l.options.is_empty() => {
                return Err(Mismatch::new("tcp_options", "<>", format_args!("<{}>", l.options)));
            }
            None => {}
            Some(Options::List(list, _)) => {
                let got: Vec<TcpOption<'_>> = l.options.iter().map_while(Result::ok).collect();
                let same = got.len() == list.len()
                    && got.iter().zip(list).all(|(g, w)| match (g, w) {
                        (TcpOption::Nop, TcpOpt::Nop)
                        | (TcpOption::Eol, TcpOpt::Eol)
                        | (TcpOption::SackPermitted, TcpOpt::SackOk) => true,
                        (TcpOption::Mss(a), TcpOpt::Mss(b)) => a == b,
                        (TcpOption::WindowScale(a), TcpOpt::WScale(b)) => a == b,
                        (TcpOption::Sack(a), TcpOpt::Sack(b)) => {
                            let script = |x: SeqNum| x.0.wrapping_sub(remote_offset);
                            a.as_slice().iter().map(|(l, r)| (script(*l), script(*r))).eq(b.iter().copied())
                        }
                        (TcpOption::Timestamps { tsval, tsecr }, TcpOpt::Ts { val, ecr }) => {
                            let val_ok = match (self.ts_tick_usecs, val) {
                                // Within the tolerance, in ticks of --tcp_ts_tick_usecs, as packetdrill checks it.
                                (Some(tick), Some(v)) => self.space.ts_offset().is_none_or(|o| {
                                    let off = i64::from(tsval.wrapping_sub(o).wrapping_sub(*v) as i32);
                                    off.abs() * tick <= self.ts_tolerance_usecs
                                }),
                                _ => true,
                            };
                            val_ok && ecr.is_none_or(|e| *tsecr == e)
                        }
                        (TcpOption::FastOpen(a), TcpOpt::FastOpen(b))
                        | (TcpOption::FastOpenExp(a), TcpOpt::FastOpenExp(b)) => a == &b.as_slice(),
                        (TcpOption::Md5(a), TcpOpt::Md5(b)) => b.is_empty() || a.as_slice() == b.as_slice(),
                        (TcpOption::Unknown { kind, data }, TcpOpt::Raw { kind: k, data: d }) => {
                            kind == k && data == &d.as_slice()
                        }
                        (TcpOption::Unknown { kind, data }, w @ TcpOpt::AccEcn { .. }) => {
                            w.acc_ecn_wire().is_some_and(|(k, d)| *kind == k && *data == d.as_slice())
                        }
                        _ => false,
                    });
                if !same {
                    let want: Vec<String> = list.iter().map(printer::option).collect();
                    let numbering = Numbering {
                        ack_offset: remote_offset,
                        ts_offset: self.space.ts_offset().unwrap_or(0),
                        ..Numbering::ABSOLUTE
                    };
                    let got_text = l.options.notation(numbering);
                    return Err(Mismatch::new(
                        "tcp_options",
                        format_args!("<{}>", want.join(",")),
                        format_args!("<{got_text}>"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The first field where a live packet differs from its script line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Mismatch {
    /// packetdrill's name for the field (`tcp_seq`, `tcp_options`, ...).
    pub field: String,
    /// What the script says.
    pub expected: String,
    /// What the packet has, in script space.
    pub actual: String,
}

impl Exec<'_> {
    /// packetdrill's verify_outbound_live_ipv6_flowlabel: a script's flow label names one the stack chose, not a
    /// value. 0 is not checked; the live one must be set; a label the script used before must come back as the
    /// same live label, and a new one as a different live label (the stack rotated it). One mapping per run, where
    /// packetdrill keeps one per socket (its scripts check labels on one connection).
    fn check_flow_label(&self, script: u32, live: u32) -> Result<(), Mismatch> {
        if script == 0 {
            return Ok(());
        }
        if live == 0 {
            return Err(Mismatch::new("flowlabel", format!("{script:#x} (any label)"), "unmarked (0)"));
        }
        match self.flow_labels.get() {
            Some((s, l)) if s == script && l != live => {
                Err(Mismatch::new("flowlabel", format!("{l:#x} (as before for {s:#x})"), format!("{live:#x}")))
            }
            Some((s, l)) if s != script && l == live => Err(Mismatch::new(
                "flowlabel",
                format!("a label other than {l:#x} (the script's {script:#x} is new)"),
                format!("{live:#x}"),
            )),
            _ => {
                self.flow_labels.set(Some((script, live)));
                Ok(())
            }
        }
    }
}

impl Mismatch {
    fn new(field: impl Into<String>, expected: impl std::fmt::Display, actual: impl std::fmt::Display) -> Mismatch {
        Mismatch { field: field.into(), expected: expected.to_string(), actual: actual.to_string() }
    }
}

/// packetdrill's name for a flag's field: `tcp_` and its `struct tcphdr` name.
fn field_name(flag: TcpFlags) -> String {
    let name = TcpFlags::TABLE.iter().find(|(f, _, _)| *f == flag).map_or("flags", |(_, _, n)| n);
    format!("tcp_{name}")
}

/// One numeric field: `expected` None is a wildcard. Numbers print as packetdrill's do, `N (0xN)`.
fn check_field<T: Into<u64> + Copy>(field: impl Into<String>, expected: Option<T>, actual: T) -> Result<(), Mismatch> {
    let num = |v: u64| format!("{v} ({v:#x})");
    match expected {
        Some(e) if e.into() != actual.into() => Err(Mismatch::new(field, num(e.into()), num(actual.into()))),
        _ => Ok(()),
    }
}

/// What is wrong with a stack's option area, checked on every segment it sends: each option but EOL and NOP carries
/// a length that fits (RFC 9293 MUST-68), and whatever follows EOL is zero padding (MUST-69).
pub(super) fn options_problem(options: &TcpOptions) -> Option<String> {
    for o in options.iter() {
        match o {
            Err(e) => return Some(format!("{e} (RFC 9293 MUST-68)")),
            Ok(TcpOption::Padding(p)) => {
                return Some(format!("non-zero bytes {p:02x?} after EOL (RFC 9293 MUST-69: padding is zeros)"))
            }
            Ok(_) => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbound_options_need_lengths_and_zero_padding() {
        let ok = |b: &[u8]| options_problem(&TcpOptions::from_bytes(b).expect("fits in an option area"));
        assert_eq!(ok(&[2, 4, 5, 0xb4, 1, 1, 0, 0]), None, "MSS, NOP, NOP, EOL and zero padding");
        assert!(ok(&[2, 4, 5, 0xb4, 0, 0, 7, 0]).unwrap().contains("MUST-69"), "a non-zero byte after EOL");
        assert!(ok(&[1, 1, 1, 99]).unwrap().contains("MUST-68"), "kind 99 without its length byte");
        assert!(ok(&[99, 1, 1, 1]).unwrap().contains("MUST-68"), "a length below 2");
    }
}
