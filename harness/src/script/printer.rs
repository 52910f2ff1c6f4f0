//! Prints an AST back in canonical packetdrill notation: one event per line, absolute times as written, flags
//! in packetdrill's order, comments dropped. `parse(print(ast)) == ast` (spans aside) is a tested property.

use super::ast::*;
use super::parser::fmt_secs;
use std::fmt::Write;
use tcpdrill_stack::wire::notation::Layout;

/// The canonical text of a script.
pub fn print(s: &Script) -> String {
    let mut out = String::new();
    for o in &s.options {
        match &o.value {
            Some(v) => writeln!(out, "--{}={}", o.name, quote_if_needed(v)),
            None => writeln!(out, "--{}", o.name),
        }
        .expect("writing to a String");
    }
    for c in &s.init {
        writeln!(out, "`{}`", c.text).expect("writing to a String");
    }
    for e in &s.events {
        writeln!(out, "{} {}", time(&e.time), action(&e.action)).expect("writing to a String");
    }
    for c in &s.cleanup {
        writeln!(out, "`{}`", c.text).expect("writing to a String");
    }
    out
}

fn quote_if_needed(v: &str) -> String {
    if v.contains(char::is_whitespace) || v.contains("//") {
        format!("\"{v}\"")
    } else {
        v.to_string()
    }
}

/// A time point as packetdrill writes it (`0.1`, `+0.1`).
pub fn point(p: TimePoint) -> String {
    format!("{}{}", if p.relative { "+" } else { "" }, fmt_secs(p.micros))
}

/// A time as packetdrill writes it.
pub fn time(t: &TimeSpec) -> String {
    match t {
        TimeSpec::At(p) => point(*p),
        TimeSpec::Any => "*".into(),
        TimeSpec::Range(a, b) => format!("{}~{}", point(*a), point(*b)),
        TimeSpec::Blocking(a, b) => format!("{}...{}", point(*a), point(*b)),
    }
}

/// An action as packetdrill writes it.
pub fn action(a: &Action) -> String {
    match a {
        Action::Packet(p) => packet(p),
        Action::Syscall(s) => syscall(s),
        Action::Shell(c) => format!("`{}`", c.text),
        Action::Code(c) => format!("%{{{}}}%", c.text),
    }
}

/// The IP fields of a packet line, canonically: `[ect0]` for an ECN mark alone (as upstream scripts write it),
/// else `(tos 0x2)`, `(ttl 64)`, `(flowlabel 0x1)` or `(ect0, flowlabel 0x1)`, the forms packetdrill's grammar
/// has, and nplab's `dscp 0x2e` (with `, ecn ect01`) where the script checks the DSCP alone.
pub fn ip_info(ip: &IpInfo) -> String {
    if let (Some(Tos::Ecn(e)), None, None) = (ip.tos, ip.flow_label, ip.ttl) {
        return format!("[{}]", e.name());
    }
    let mut parts = Vec::new();
    match ip.tos {
        Some(Tos::Ecn(e)) => parts.push(e.name().to_string()),
        Some(Tos::Byte(b)) => parts.push(format!("tos {b:#x}")),
        Some(Tos::Dscp { dscp, ect01 }) => {
            parts.push(format!("dscp {dscp:#x}"));
            if ect01 {
                parts.push("ecn ect01".into());
            }
        }
        None => {}
    }
    if let Some(f) = ip.flow_label {
        parts.push(format!("flowlabel {f:#x}"));
    }
    if let Some(t) = ip.ttl {
        parts.push(format!("ttl {t}"));
    }
    format!("({})", parts.join(", "))
}

/// An outer header of an encapsulated packet line, with its `:`.
pub fn encap(e: &Encap) -> String {
    let ip = |i: &IpInfo| if i.is_empty() { String::new() } else { format!("{} ", ip_info(i)) };
    match e {
        Encap::Ipv4 { ip: i, src, dst } => format!("ipv4 {}{src} > {dst}:", ip(i)),
        Encap::Ipv6 { ip: i, src, dst } => format!("ipv6 {}{src} > {dst}:", ip(i)),
        Encap::Gre(None) => "gre:".into(),
        Encap::Gre(Some(h)) => {
            let names = [
                (GreHeader::CHECKSUM, "checksum present"),
                (GreHeader::KEY, "key present"),
                (GreHeader::SEQUENCE, "sequence# present"),
            ];
            let flags = if h.flags & !(GreHeader::CHECKSUM | GreHeader::KEY | GreHeader::SEQUENCE) != 0 {
                format!("{:#x}", h.flags)
            } else if h.flags == 0 {
                "[none]".into()
            } else {
                let set: Vec<&str> = names.iter().filter(|(b, _)| h.flags & b != 0).map(|(_, n)| *n).collect();
                format!("[{}]", set.join(", "))
            };
            format!("gre flags {flags}, sum {}, off {}, key {}, seq {}:", h.sum, h.off, h.key, h.seq)
        }
        Encap::Mpls(entries) => {
            let mut out = String::from("mpls");
            for m in entries {
                let s = if m.bottom { "[S], " } else { "" };
                write!(out, " (label {}, tc {}, {s}ttl {})", m.label, m.tc, m.ttl).expect("writing to a String");
            }
            out.push(':');
            out
        }
    }
}

/// A packet line without its time.
pub fn packet(p: &Packet) -> String {
    let mut out = String::from(if p.direction == Direction::Inbound { "<" } else { ">" });
    for e in &p.outer {
        out.push(' ');
        out.push_str(&encap(e));
    }
    if !p.ip.is_empty() {
        out.push(' ');
        out.push_str(&ip_info(&p.ip));
    }
    match &p.body {
        PacketBody::Tcp(t) => {
            out.push(' ');
            out.push_str(&tcp(t));
        }
        PacketBody::Udp { ports: None, len } => write!(out, " udp ({len})").expect("writing to a String"),
        PacketBody::Udp { ports: Some((a, b)), len } => {
            write!(out, " udp {a}>{b} ({len})").expect("writing to a String")
        }
        PacketBody::Icmp(i) => {
            write!(out, " icmp {}", i.kind).expect("writing to a String");
            if let Some(c) = &i.code {
                write!(out, " {c}").expect("writing to a String");
            }
            if let Some(m) = i.mtu {
                write!(out, " mtu {m}").expect("writing to a String");
            }
            if let Some(id) = i.id {
                write!(out, " id {id}").expect("writing to a String");
            }
            let udp = |u: &Option<(u16, u16)>| u.map_or(String::new(), |(a, b)| format!(" /udp({a}>{b})"));
            match &i.echoed {
                None => {}
                Some(Echoed::Tcp { seq, len, udp_encap }) => {
                    { write!(out, " [{seq}:{}({len}){}]", seq.wrapping_add(*len), udp(udp_encap)) }
                        .expect("writing to a String")
                }
                Some(Echoed::Udp(n)) => write!(out, " [udp({n})]").expect("writing to a String"),
                Some(Echoed::Raw(n)) => write!(out, " [raw({n})]").expect("writing to a String"),
                Some(Echoed::Sctp { tag, udp_encap }) => {
                    write!(out, " [sctp({tag}){}]", udp(udp_encap)).expect("writing to a String")
                }
                Some(Echoed::UdpLite(n, c)) => write!(out, " [udplite({n}, {c})]").expect("writing to a String"),
            }
        }
    }
    out
}

/// The TCP part of a packet line, in the one layout every packet notation shares
/// ([`tcpdrill_stack::wire::notation::Layout`]).
pub fn tcp(t: &TcpSpec) -> String {
    let mut out = String::new();
    if let Some(spi) = t.psp_spi {
        write!(out, "encap psp spi {spi} ").expect("writing to a String");
    }
    if let Some((a, b)) = t.ports {
        write!(out, "{a}>{b} ").expect("writing to a String");
    }
    let options = match &t.options {
        None => None,
        Some(Options::Any) => Some("...".to_string()),
        Some(Options::List(opts, _)) => Some(opts.iter().map(option).collect::<Vec<_>>().join(",")),
    };
    let layout = Layout {
        flags: &t.flags,
        seq: t.seq,
        len: t.len,
        ack: t.ack,
        win: t.win,
        urg: t.urg,
        options: options.as_ref().map(|o| o as &dyn std::fmt::Display),
    };
    write!(out, "{layout}").expect("writing to a String");
    if let Some((a, b)) = t.udp_encap {
        write!(out, " /udp({a}>{b})").expect("writing to a String");
    }
    if t.bad_csum {
        out.push_str(" bad_csum");
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One option as packetdrill writes it.
pub fn option(o: &TcpOpt) -> String {
    let opt_num = |v: Option<u32>| v.map_or("...".to_string(), |v| v.to_string());
    match o {
        TcpOpt::Nop => "nop".into(),
        TcpOpt::Eol => "eol".into(),
        TcpOpt::Mss(v) => format!("mss {v}"),
        TcpOpt::WScale(v) => format!("wscale {v}"),
        TcpOpt::SackOk => "sackOK".into(),
        TcpOpt::Sack(b) => {
            let blocks: String = b.iter().map(|(l, r)| format!(" {l}:{r}")).collect();
            format!("sack{blocks}")
        }
        TcpOpt::Ts { val, ecr } => format!("TS val {} ecr {}", opt_num(*val), opt_num(*ecr)),
        TcpOpt::FastOpen(c) if c.is_empty() => "FO".into(),
        TcpOpt::FastOpen(c) => format!("FO {}", hex(c)),
        TcpOpt::FastOpenExp(c) if c.is_empty() => "FOEXP".into(),
        TcpOpt::FastOpenExp(c) => format!("FOEXP {}", hex(c)),
        TcpOpt::Md5(c) if c.is_empty() => "md5".into(),
        TcpOpt::Md5(c) => format!("md5 {}", hex(c)),
        TcpOpt::AccEcn { order1, counters } => {
            let names = if *order1 { ["e1b", "ceb", "e0b"] } else { ["e0b", "ceb", "e1b"] };
            let fields: String = names.iter().zip(counters).map(|(n, v)| format!(" {n} {v}")).collect();
            format!("ECN{fields}")
        }
        TcpOpt::Bytes(b) => format!("bytes 0x{}", hex(b)),
        TcpOpt::Raw { kind, data } if data.is_empty() => format!("opt {kind}"),
        TcpOpt::Raw { kind, data } => format!("opt {kind} 0x{}", hex(data)),
    }
}

/// A syscall line without its time.
pub fn syscall(s: &Syscall) -> String {
    let args: Vec<String> = s.args.iter().map(expr).collect();
    let mut out = format!("{}({}) = {}", s.name, args.join(", "), expr(&s.result));
    if let Some((e, _)) = &s.errno {
        write!(out, " {e}").expect("writing to a String");
    }
    if let Some(n) = &s.note {
        write!(out, " ({n})").expect("writing to a String");
    }
    out
}

/// An expression as written.
pub fn expr(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Ellipsis => "...".into(),
        ExprKind::Int(i) => i.to_string(),
        ExprKind::Symbol(s) => s.clone(),
        ExprKind::Str(s) => {
            let escaped: String = s
                .chars()
                .flat_map(|c| match c {
                    '"' => vec!['\\', '"'],
                    '\\' => vec!['\\', '\\'],
                    '\n' => vec!['\\', 'n'],
                    '\t' => vec!['\\', 't'],
                    '\0' => vec!['\\', '0'],
                    c => vec![c],
                })
                .collect();
            format!("\"{escaped}\"")
        }
        ExprKind::List(items) => format!("[{}]", items.iter().map(expr).collect::<Vec<_>>().join(", ")),
        ExprKind::Struct(fields) => {
            let f: Vec<String> = fields
                .iter()
                .map(|(n, v)| match n {
                    Some(n) => format!("{}={}", expr(n), expr(v)),
                    None => expr(v),
                })
                .collect();
            format!("{{{}}}", f.join(", "))
        }
        ExprKind::Or(parts) => parts.iter().map(expr).collect::<Vec<_>>().join("|"),
        ExprKind::Call(n, args) => format!("{n}({})", args.iter().map(expr).collect::<Vec<_>>().join(", ")),
    }
}
