//! The checks behind the fuzz targets, shared with the stable tests that replay the fuzz corpora.
//!
//! Each function takes the fuzzer's input and panics when a property is violated: that is how libFuzzer
//! learns of a finding, and how the replay test (`tests/fuzz_replay.rs`) fails on stable. The parser itself
//! never panics; only these oracles do.

use arbitrary::{Arbitrary, Unstructured};
use core::net::{IpAddr, Ipv4Addr};
use etherparse::TcpOptionElement as Ep;
use pnet_packet::Packet as _;
use tcpdrill_stack::wire::{Checksums, IpRepr, Ipv4Packet, Ipv6Packet, TcpDatagram, TcpOption, TcpRepr, TcpSegment};

/// Tokens for `script_parse`'s token-soup mode: fragments of real scripts, so that the fuzzer reaches deep into
/// the grammar instead of failing at the first character.
const SCRIPT_TOKENS: &[&str] = &[
    "0",
    "+0",
    "+.1",
    "0.100",
    "*",
    "~",
    "...",
    "<",
    ">",
    "S",
    "S.",
    ".",
    "P.",
    "F.",
    "R",
    "-",
    "0:0(0)",
    "1:1(0)",
    "1:1001(1000)",
    "...(0)",
    "ack",
    "win",
    "urg",
    "1",
    "65535",
    "<mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>",
    "<...>",
    "<",
    ",",
    "nop",
    "eol",
    "mss",
    "sack",
    "1:2",
    "TS",
    "val",
    "ecr",
    "FO",
    "abcd",
    "opt",
    "253",
    "0x0102",
    "[ect0]",
    "[ce]",
    "socket",
    "(",
    ")",
    "..., SOCK_STREAM, IPPROTO_TCP",
    "=",
    "3",
    "-1",
    "ECONNREFUSED",
    "(Connection refused)",
    "connect",
    "setsockopt",
    "{onoff=1, linger=0}",
    "[1]",
    "|",
    "O_RDWR",
    "htons(8080)",
    "\"str\"",
    "`sysctl -q net.ipv4.tcp_rfc1337=1`",
    "%{ assert tcpi_state == 1 }%",
    "--tolerance_usecs=7000",
    "#ifdef Linux",
    "#else",
    "#endif",
    "// c",
    "/* c */",
    "\n",
    " ",
    "udp (10)",
    "icmp unreachable",
    "50000>8080",
    // Nesting, which the parser bounds (MAX_NESTING): a run of these must give a diagnostic, not a stack overflow.
    "[[[[[[[[",
    "{{{{{{{{",
    "htons(htons(",
    "]",
    "}",
];

/// `script_parse`: the parser on arbitrary text (first byte even) or on a soup of script tokens (odd). It must
/// never panic; whatever parses must print and parse back to the same AST.
pub fn script_parse(data: &[u8]) {
    use crate::script::{parse, print, ParseOptions};
    let Some((&mode, rest)) = data.split_first() else { return };
    let text = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let mut t = String::new();
        for &b in rest {
            t.push_str(SCRIPT_TOKENS[usize::from(b) % SCRIPT_TOKENS.len()]);
            t.push(if b & 0x80 != 0 { '\n' } else { ' ' });
        }
        t
    };
    for opts in [ParseOptions::default(), ParseOptions::with_symbols(["Linux"])] {
        if let Ok(script) = parse("fuzz.pkt", &text, &opts) {
            let printed = print(&script);
            match parse("printed.pkt", &printed, &opts) {
                Ok(again) => assert_eq!(again, script, "print/parse round trip changed the script:\n{printed}"),
                Err(e) => panic!("the printer wrote a script that does not parse:\n{}\n{printed}", e.render_plain()),
            }
        }
    }
}

/// `stack_events`: the input is read (with `arbitrary`) as a sequence of segments, socket calls, sysctls and
/// time steps applied to a reference `Host`, after a handshake when the first byte is odd (passive) or even
/// (active). `tcpdrill_stack::sim::run_ops` checks after every step: no panic, the host's invariants, state changes
/// only along RFC 9293's diagram, RCV.NXT never going back, every byte read being the peer's byte for its position.
pub fn stack_events(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut u = Unstructured::new(rest);
    let ops = Vec::<tcpdrill_stack::sim::Op>::arbitrary(&mut u).unwrap_or_default();
    let ops = if mode % 3 == 2 { ops } else { tcpdrill_stack::sim::with_handshake(ops, mode % 3 == 1) };
    if let Err(e) = tcpdrill_stack::sim::run_ops(&ops) {
        panic!("stack_events: {e}");
    }
}

/// `segment_parse`: arbitrary bytes into the IPv4/IPv6/TCP parsers.
///
/// - never a panic, with or without checksum verification;
/// - a successful parse emits bytes that parse back to the same reprs;
/// - for an input with valid checksums, no IP options and no trailing bytes, re-emitting gives the input back;
/// - pnet_packet and etherparse, reading the same bytes, see the same header fields, agree on whether each
///   checksum verifies, and etherparse decodes the same options up to the first one it does not know.
pub fn segment_parse(data: &[u8]) {
    for checksums in [Checksums::Verify, Checksums::Ignore] {
        let Ok(d) = TcpDatagram::parse(data, checksums) else {
            continue;
        };
        let _ = d.to_string();
        let bytes = d.to_vec().expect("a parsed datagram always re-emits");
        let again = TcpDatagram::parse(&bytes, Checksums::Verify).expect("re-emitted datagram parses");
        assert_eq!(again, d, "parse(emit(repr)) != repr");
        if checksums == Checksums::Verify && reemits_exactly(data) {
            assert_eq!(bytes, with_positive_zero_checksums(data), "emit(parse(bytes)) != bytes for a valid datagram");
        }
        match d.ip {
            IpRepr::V4(_) => differential_v4(data, &d),
            IpRepr::V6(_) => differential_v6(data, &d),
        }
    }
    // The same bytes as a bare TCP segment (no IP header), as the harness sees a segment it builds.
    let (src, dst): (IpAddr, IpAddr) = (Ipv4Addr::new(192, 0, 2, 1).into(), Ipv4Addr::new(192, 168, 0, 1).into());
    if let Ok(seg) = TcpSegment::new_checked(data) {
        let repr = TcpRepr::parse(&seg, src, dst, Checksums::Ignore).expect("checked view parses");
        let mut out = vec![0; repr.buffer_len()];
        repr.emit(&mut out, src, dst).expect("emits into a buffer of buffer_len()");
        let back = TcpRepr::parse(&TcpSegment::new_checked(&out[..]).unwrap(), src, dst, Checksums::Verify)
            .expect("re-emitted segment verifies");
        assert_eq!(back, repr);
        tcp_fields_agree(data, &repr);
    }
}

/// A datagram our reprs describe completely: no IPv4 options, no reserved IPv4 flag, no bytes past the IP
/// length. (IP options and the reserved flag are deliberately not part of `Ipv4Repr`.)
fn reemits_exactly(data: &[u8]) -> bool {
    match data[0] >> 4 {
        4 => {
            data[0] & 0x0f == 5
                && data[6] & 0x80 == 0
                && usize::from(u16::from_be_bytes([data[2], data[3]])) == data.len()
        }
        _ => 40 + usize::from(u16::from_be_bytes([data[4], data[5]])) == data.len(),
    }
}

/// `data` with a checksum field of 0xffff written 0x0000. Both are the one's complement zero and a receiver
/// summing the header with its checksum (RFC 1071 section 1) accepts either, so a datagram carrying 0xffff is
/// valid; but RFC 1071's computation never gives 0xffff for an IPv4 header or a TCP segment (their sums cover
/// non-zero protocol and version fields, and end-around carry makes a non-zero sum 0x0001..0xffff, whose
/// complement is at most 0xfffe): 0xffff only comes from an incremental update (RFC 1624 section 3), and an
/// emitter that computes the checksum afresh writes 0x0000. The fuzzer found this (a TCP checksum of 0xffff).
fn with_positive_zero_checksums(data: &[u8]) -> Vec<u8> {
    let mut d = data.to_vec();
    let ip_len = if data[0] >> 4 == 4 { usize::from(data[0] & 0x0f) * 4 } else { 40 };
    let fields = if data[0] >> 4 == 4 { vec![10, ip_len + 16] } else { vec![ip_len + 16] };
    for at in fields {
        if d.get(at..at + 2) == Some(&[0xff, 0xff][..]) {
            d[at..at + 2].copy_from_slice(&[0, 0]);
        }
    }
    d
}

/// pnet recomputes a checksum and compares bits, but 0x0000 and 0xffff are the two one's complement zeros: a
/// receiver summing the whole header (RFC 1071 section 1, as Linux does) accepts either. The fuzzer found a
/// segment carrying 0xffff where the recomputed value is 0x0000.
fn same_checksum(computed: u16, field: u16) -> bool {
    computed == field || (computed | field == 0xffff && computed & field == 0 && (computed == 0 || field == 0))
}

fn differential_v4(data: &[u8], d: &TcpDatagram<'_>) {
    let ours = Ipv4Packet::new_checked(data).expect("parsed, so the view is valid");
    let theirs = pnet_packet::ipv4::Ipv4Packet::new(data).expect("pnet takes any 20 bytes");
    assert_eq!(theirs.get_version(), ours.version());
    assert_eq!(usize::from(theirs.get_header_length()) * 4, ours.header_len());
    assert_eq!(theirs.get_total_length(), ours.total_len());
    assert_eq!(theirs.get_identification(), ours.ident());
    assert_eq!(theirs.get_ttl(), ours.ttl());
    assert_eq!(theirs.get_next_level_protocol().0, ours.protocol());
    assert_eq!(theirs.get_source(), ours.src_addr());
    assert_eq!(theirs.get_destination(), ours.dst_addr());
    assert_eq!(
        same_checksum(pnet_packet::ipv4::checksum(&theirs), theirs.get_checksum()),
        ours.verify_checksum(),
        "pnet and tcpdrill disagree on the IPv4 header checksum"
    );
    let ep = etherparse::Ipv4HeaderSlice::from_slice(data).expect("etherparse accepts what we accept");
    assert_eq!(ep.total_len(), ours.total_len());
    assert_eq!(ep.dont_fragment(), ours.dont_frag());
    assert_eq!(ep.source_addr(), ours.src_addr());
    let seg = ours.payload();
    tcp_fields_agree(seg, &d.tcp);
    let (IpAddr::V4(s), IpAddr::V4(t)) = (d.ip.src_addr(), d.ip.dst_addr()) else { unreachable!() };
    let pt = pnet_packet::tcp::TcpPacket::new(seg).expect("at least 20 bytes");
    let pnet_ok = same_checksum(pnet_packet::tcp::ipv4_checksum(&pt, &s, &t), pt.get_checksum());
    let ours_ok = TcpSegment::new_unchecked(seg).verify_checksum(s.into(), t.into());
    assert_eq!(pnet_ok, ours_ok, "pnet and tcpdrill disagree on the TCP checksum");
}

fn differential_v6(data: &[u8], d: &TcpDatagram<'_>) {
    let ours = Ipv6Packet::new_checked(data).expect("parsed, so the view is valid");
    let theirs = pnet_packet::ipv6::Ipv6Packet::new(data).expect("pnet takes any 40 bytes");
    assert_eq!(theirs.get_payload_length(), ours.payload_len());
    assert_eq!(theirs.get_flow_label(), ours.flow_label());
    assert_eq!(theirs.get_traffic_class(), ours.traffic_class());
    assert_eq!(theirs.get_hop_limit(), ours.hop_limit());
    assert_eq!(theirs.get_source(), ours.src_addr());
    assert_eq!(theirs.get_destination(), ours.dst_addr());
    let seg = ours.payload();
    tcp_fields_agree(seg, &d.tcp);
    let pt = pnet_packet::tcp::TcpPacket::new(seg).expect("at least 20 bytes");
    let pnet_ok =
        same_checksum(pnet_packet::tcp::ipv6_checksum(&pt, &ours.src_addr(), &ours.dst_addr()), pt.get_checksum());
    let ours_ok = TcpSegment::new_unchecked(seg).verify_checksum(ours.src_addr().into(), ours.dst_addr().into());
    assert_eq!(pnet_ok, ours_ok, "pnet and tcpdrill disagree on the TCP checksum (IPv6)");
}

/// Header fields and options of a TCP segment as pnet and etherparse read them.
fn tcp_fields_agree(seg: &[u8], repr: &TcpRepr<'_>) {
    let p = pnet_packet::tcp::TcpPacket::new(seg).expect("at least 20 bytes");
    assert_eq!(p.get_source(), repr.src_port);
    assert_eq!(p.get_destination(), repr.dst_port);
    assert_eq!(p.get_sequence(), repr.seq.0);
    assert_eq!(p.get_acknowledgement(), repr.ack.0);
    assert_eq!(u16::from(p.get_reserved()) << 8 | u16::from(p.get_flags()), repr.flags.0, "flags differ");
    assert_eq!(p.get_window(), repr.window);
    assert_eq!(p.get_urgent_ptr(), repr.urgent);
    assert_eq!(usize::from(p.get_data_offset()) * 4, repr.header_len());
    assert_eq!(p.payload(), repr.payload, "pnet sees another payload");

    let e = etherparse::TcpHeaderSlice::from_slice(seg).expect("etherparse accepts what we accept");
    assert_eq!(e.sequence_number(), repr.seq.0);
    assert_eq!(e.window_size(), repr.window);
    assert_eq!(
        (e.syn(), e.fin(), e.rst(), e.ack()),
        (repr.flags.syn(), repr.flags.fin(), repr.flags.rst(), repr.flags.ack())
    );
    assert_eq!(e.options(), repr.options.as_bytes());
    let mut theirs = e.options_iterator();
    for ours in repr.options.iter() {
        let want = match ours {
            Err(_) => {
                assert!(matches!(theirs.next(), Some(Err(_))), "we reject an option etherparse accepts");
                return;
            }
            // etherparse ends the list at EOL and errors on kinds it does not know: compare no further.
            Ok(TcpOption::Eol) => {
                assert!(theirs.next().is_none(), "etherparse continues past EOL");
                return;
            }
            Ok(TcpOption::Nop) => Ep::Noop,
            Ok(TcpOption::Mss(v)) => Ep::MaximumSegmentSize(v),
            Ok(TcpOption::WindowScale(v)) => Ep::WindowScale(v),
            Ok(TcpOption::SackPermitted) => Ep::SelectiveAcknowledgementPermitted,
            Ok(TcpOption::Timestamps { tsval, tsecr }) => Ep::Timestamp(tsval, tsecr),
            Ok(TcpOption::Sack(b)) => {
                let b: Vec<(u32, u32)> = b.as_slice().iter().map(|(l, r)| (l.0, r.0)).collect();
                let mut rest = [None; 3];
                for (slot, blk) in rest.iter_mut().zip(&b[1..]) {
                    *slot = Some(*blk);
                }
                Ep::SelectiveAcknowledgement(b[0], rest)
            }
            Ok(_) => return,
        };
        match theirs.next() {
            Some(Ok(got)) => assert_eq!(got, want, "etherparse decodes another option"),
            other => panic!("etherparse gives {other:?} where we decode {want:?}"),
        }
    }
}

/// The differential fuzzer's generator driven by the fuzzer's bytes (target `differential`): a stimulus is
/// recorded on the reference stack, written down as a script ([`crate::differential::render`]), and that script
/// must pass on the reference stack again. A failure is a harness bug (the recording or its rendering is wrong) or
/// the reference stack not doing the same twice; either way the panic carries the script, ready to run.
pub fn differential(data: &[u8]) {
    use crate::differential::{check, generate, NoFinding};
    use crate::report::BackendKind;
    let Ok(s) = generate(&mut Unstructured::new(data), 8) else { return };
    match check(&s, BackendKind::Reference, BackendKind::Reference) {
        Err(NoFinding::Agree) => {}
        Err(NoFinding::Unusable(why) | NoFinding::Unstable(why)) => {
            panic!("the reference stack's own recording is unusable: {why}\n{}", s.text())
        }
        Ok(f) => panic!("the reference stack diverges from its own recording: {}\n{}", f.signature, f.script),
    }
}
