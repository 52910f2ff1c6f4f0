//! The script language: every upstream packetdrill script parses and round-trips through the printer; each
//! construct parses to what it means; broken scripts get located diagnostics (insta snapshots); generated ASTs
//! survive print -> parse.

use proptest::prelude::*;
use std::path::{Path, PathBuf};
use tcpdrill::script::{self, ast::*, parse, print, ParseOptions};

fn corpus() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/packetdrill-corpus");
    p.is_dir().then_some(p)
}

fn pkt_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            pkt_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "pkt") {
            out.push(p);
        }
    }
}

#[test]
fn every_upstream_script_parses_and_round_trips() {
    let Some(dir) = corpus() else {
        println!("skipped: ../shared/packetdrill-corpus is not present beside the repository");
        return;
    };
    let mut files = Vec::new();
    pkt_files(&dir, &mut files);
    assert!(files.len() >= 60, "found only {} scripts", files.len());
    for backend in ["reference", "linux"] {
        let opts = ParseOptions::with_symbols(tcpdrill::backend::predefined(backend));
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            let s = script::check(&f.display().to_string(), &text, &opts)
                .unwrap_or_else(|e| panic!("{}", e.iter().map(|e| e.render_plain()).collect::<String>()));
            let printed = print(&s);
            let again = parse("printed", &printed, &opts).unwrap_or_else(|e| panic!("{}\n{printed}", e.render_plain()));
            assert_eq!(again, s, "{} does not round-trip:\n{printed}", f.display());
        }
    }
    println!("{} upstream scripts parse and round-trip", files.len());
}

fn one(src: &str) -> Event {
    let s = parse("t.pkt", src, &ParseOptions::default()).unwrap_or_else(|e| panic!("{}", e.render_plain()));
    assert_eq!(s.events.len(), 1, "{src}");
    s.events.into_iter().next().unwrap()
}

fn tcp(src: &str) -> (Direction, TcpSpec) {
    match one(src).action {
        Action::Packet(Packet { direction, body: PacketBody::Tcp(t), .. }) => (direction, t),
        other => panic!("not a TCP packet: {other:?}"),
    }
}

#[test]
fn packet_lines() {
    let (d, t) = tcp("0 < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>");
    assert_eq!(d, Direction::Inbound);
    assert_eq!((t.flags.as_str(), t.seq, t.len, t.ack, t.win), ("S", Some(0), 0, None, Some(65535)));
    let Some(Options::List(opts, _)) = t.options else { panic!() };
    assert_eq!(
        opts,
        [
            TcpOpt::Mss(1460),
            TcpOpt::SackOk,
            TcpOpt::Ts { val: Some(100), ecr: Some(0) },
            TcpOpt::Nop,
            TcpOpt::WScale(7)
        ]
    );
    let (d, t) = tcp("0 > P. 1:1001(1000) ack 1 <...>");
    assert_eq!(d, Direction::Outbound);
    assert_eq!((t.flags.as_str(), t.len, t.ack, t.win, t.options), ("P.", 1000, Some(1), None, Some(Options::Any)));
    assert_eq!(tcp("0 > .P 1:1(0) ack 1").1.flags, "P.", "flags normalised to packetdrill's order");
    assert_eq!(tcp("0 < - 0:0(0) win 100").1.flags, "-");
    assert_eq!(tcp("0 > S. ...(0) ack 65538 win 65535").1.seq, None, "nplab's unchecked seq");
    assert_eq!(tcp("0 < 50000>8080 S 0:0(0) win 1").1.ports, Some((50000, 8080)));
    assert!(tcp("0 < S 0:0(0) win 1 <mss 1460> bad_csum").1.bad_csum);
    assert!(!tcp("0 < S 0:0(0) win 1 <mss 1460>").1.bad_csum);
    let (_, t) = tcp("0 > . 1:1(0) ack 1 <nop,nop,sack 1001:2001 3001:4001>");
    let Some(Options::List(o, _)) = t.options else { panic!() };
    assert_eq!(o[2], TcpOpt::Sack(vec![(1001, 2001), (3001, 4001)]));
    let (_, t) = tcp("0 > S. 0:0(0) ack 1 <mss 1460,TS val ... ecr 100,FO abcd1234,opt 253 0x0102>");
    let Some(Options::List(o, _)) = t.options else { panic!() };
    assert_eq!(o[1], TcpOpt::Ts { val: None, ecr: Some(100) });
    assert_eq!(o[2], TcpOpt::FastOpen(vec![0xab, 0xcd, 0x12, 0x34]));
    assert_eq!(o[3], TcpOpt::Raw { kind: 253, data: vec![1, 2] });
    match one("0 > [ect0] . 1:1(0) ack 1").action {
        Action::Packet(p) => assert_eq!(p.ip.ecn(), Some(Ecn::Ect0)),
        _ => panic!(),
    }
    // packetdrill's ip_info, and nplab's IPv6 spellings of the same fields.
    match one("0 < (tos 0x2, flowlabel 0x12345) S 0:0(0) win 1").action {
        Action::Packet(p) => {
            assert_eq!(p.ip, IpInfo { tos: Some(Tos::Byte(2)), flow_label: Some(0x12345), ttl: None })
        }
        _ => panic!(),
    }
    match one("0 > (hlim 255) S. 0:0(0) ack 1").action {
        Action::Packet(p) => assert_eq!(p.ip, IpInfo { tos: None, flow_label: None, ttl: Some(255) }),
        _ => panic!(),
    }
    match one("0 > [class 0x1] S. 0:0(0) ack 1").action {
        Action::Packet(p) => assert_eq!(p.ip.tos, Some(Tos::Byte(1))),
        _ => panic!(),
    }
}

/// The rest of packetdrill's and nplab's packet grammar, each construct to what it means on the wire.
#[test]
fn encapsulation_accecn_udp_icmp_lines() {
    let packet = |src: &str| match one(src).action {
        Action::Packet(p) => p,
        a => panic!("{src}: {a:?}"),
    };
    let p = packet("0 < ipv4 (tos 0x2) 192.0.2.1 > 192.0.2.2: gre: mpls (label 16, tc 3, [S], ttl 9): S 0:0(0) win 9");
    assert_eq!(
        p.outer,
        vec![
            Encap::Ipv4 {
                ip: IpInfo { tos: Some(Tos::Byte(2)), ..IpInfo::default() },
                src: [192, 0, 2, 1].into(),
                dst: [192, 0, 2, 2].into()
            },
            Encap::Gre(None),
            Encap::Mpls(vec![MplsEntry { label: 16, tc: 3, bottom: true, ttl: 9 }]),
        ]
    );
    let p = packet("0 < ipv6 2001:db8::1 > 2001:db8::: gre flags [key present, sequence# present], sum 1, off 2, key = 3, seq 4: S 0:0(0) win 9");
    let Encap::Ipv6 { dst, .. } = &p.outer[0] else { panic!("{:?}", p.outer) };
    assert_eq!(dst.to_string(), "2001:db8::");
    assert_eq!(
        p.outer[1],
        Encap::Gre(Some(GreHeader { flags: GreHeader::KEY | GreHeader::SEQUENCE, sum: 1, off: 2, key: 3, seq: 4 }))
    );
    // The ACE digit: ECE is its 1, CWR its 2, AE its 4 (RFC 9768); AccECN counters 24 bits big-endian.
    let (_, t) = tcp("0 > S.6 0:0(0) ack 1 <ECN e1b 1 ceb 2 e0b 3, nop>");
    let f = tcpdrill_stack::wire::TcpFlags::from_letters(&t.flags);
    assert!(f.syn() && f.ack() && f.contains(tcpdrill_stack::wire::TcpFlags::CWR));
    assert!(!f.contains(tcpdrill_stack::wire::TcpFlags::ECE) && f.contains(tcpdrill_stack::wire::TcpFlags::AE));
    let Some(Options::List(list, _)) = &t.options else { panic!() };
    assert_eq!(list[0].acc_ecn_wire(), Some((174, vec![0, 0, 1, 0, 0, 2, 0, 0, 3])));
    let (_, t) = tcp("0 > S 0:0(0) <ECN e0b 258, nop, nop, nop>");
    let Some(Options::List(list, _)) = &t.options else { panic!() };
    assert_eq!(list[0].acc_ecn_wire(), Some((172, vec![0, 1, 2])));
    // PSP, and nplab's TCP over UDP.
    let (_, t) = tcp("0 < encap psp spi 77 1>2 S 0:0(0) win 9 <nop,nop,nop,nop> /udp(9899>9898)");
    assert_eq!((t.psp_spi, t.ports, t.udp_encap), (Some(77), Some((1, 2)), Some((9899, 9898))));
    // nplab's IP fields: dscp (names from the RFCs), ecn, hlim, three at once.
    let p = packet("0 > (dscp af41, ecn ect01, flowlabel 0x5, hlim 3) S. 0:0(0) ack 1");
    assert_eq!(p.ip, IpInfo { tos: Some(Tos::Dscp { dscp: 34, ect01: true }), flow_label: Some(5), ttl: Some(3) });
    assert_eq!(packet("0 > (dscp ef, ecn ce) S. 0:0(0) ack 1").ip.tos, Some(Tos::Byte(46 << 2 | 3)));
    assert_eq!(packet("0 > (ecn ect1) S. 0:0(0) ack 1").ip.tos, Some(Tos::Ecn(Ecn::Ect1)));
    // UDP and ICMP.
    assert_eq!(packet("0 < udp 53>5353 (12)").body, PacketBody::Udp { ports: Some((53, 5353)), len: 12 });
    let PacketBody::Icmp(i) = packet("0 < icmp unreachable frag_needed mtu 1200 [1:1461(1460)]").body else { panic!() };
    assert_eq!(
        i,
        IcmpSpec {
            kind: "unreachable".into(),
            code: Some("frag_needed".into()),
            mtu: Some(1200),
            id: None,
            echoed: Some(Echoed::Tcp { seq: 1, len: 1460, udp_encap: None })
        }
    );
    let PacketBody::Icmp(i) = packet("0 < icmp echo_request id 7").body else { panic!() };
    assert_eq!((i.code, i.id, i.echoed), (None, Some(7), None));
}

/// Malformed IP fields: a clear error at the field, never a packet with a default in its place.
#[test]
fn ip_info_errors() {
    for (src, msg) in [
        ("0 < (tos 0x100) S 0:0(0) win 1", "tos out of range for 8 bits"),
        ("0 < (flowlabel 0x100000) S 0:0(0) win 1", "flowlabel out of range for 20 bits"),
        ("0 < (ttl 64, tos 0x1) S 0:0(0) win 1", "these IP fields do not go together"),
        ("0 < (tos 0x1, flowlabel 0x1, flowlabel 0x2) S 0:0(0) win 1", "these IP fields do not go together"),
        ("0 < (dscp 0x40) S 0:0(0) win 1", "dscp out of range for 6 bits"),
        ("0 < (dscp af44) S 0:0(0) win 1", "unknown DSCP name \"af44\""),
        ("0 < (ecn ect2) S 0:0(0) win 1", "unknown ECN mark \"ect2\""),
        ("0 < [ect01] S 0:0(0) win 1", "[ect01] can only be used with outbound packets"),
        ("0 < [ce] udp (10)", "ECN can only be used with TCP packets"),
        ("0 < [ect0, tos 0x1] S 0:0(0) win 1", "these IP fields do not go together"),
        ("0 < (tll 64) S 0:0(0) win 1", "unknown IP field \"tll\""),
        ("0 < (ttl 64 S 0:0(0) win 1", "expected ) after the IP fields"),
        // packetdrill's grammar: TOS in hex, TTL in decimal.
        ("0 < (tos 16) S 0:0(0) win 1", "a tos value in hex, as 0x10"),
        ("0 < (ttl 0x40) S 0:0(0) win 1", "a ttl value in decimal, as 64"),
    ] {
        let e = parse("t", src, &ParseOptions::default()).expect_err(src).render_plain();
        assert!(e.contains(msg), "{src}: {e}");
    }
}

#[test]
fn times() {
    assert_eq!(one("0 close(3) = 0").time, TimeSpec::At(TimePoint { micros: 0, relative: false }));
    let s =
        parse("t", "0 close(3) = 0\n+.1 close(3) = 0\n+ 0.25 close(3) = 0\n2 close(3) = 0\n", &ParseOptions::default())
            .unwrap();
    let t: Vec<_> = s.events.iter().map(|e| e.time).collect();
    assert_eq!(t[1], TimeSpec::At(TimePoint { micros: 100_000, relative: true }));
    assert_eq!(t[2], TimeSpec::At(TimePoint { micros: 250_000, relative: true }));
    let s = parse(
        "t",
        "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 > S 0:0(0)\n* > . 1:1(0) ack 1\n+1~+2 > F. 1:1(0) ack 1\n",
        &ParseOptions::default(),
    )
    .unwrap();
    assert_eq!(s.events[2].time, TimeSpec::Any);
    assert!(matches!(
        s.events[3].time,
        TimeSpec::Range(
            TimePoint { micros: 1_000_000, relative: true },
            TimePoint { micros: 2_000_000, relative: true }
        )
    ));
    assert!(matches!(
        one("0...0.2 connect(3, ..., ...) = 0").time,
        TimeSpec::Blocking(_, TimePoint { micros: 200_000, .. })
    ));
}

#[test]
fn syscall_lines() {
    let Action::Syscall(s) = one("0 setsockopt(4, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0").action else {
        panic!()
    };
    assert_eq!(s.name, "setsockopt");
    assert!(
        matches!(&s.args[3].kind, ExprKind::Struct(f) if f.len() == 2 && f[0].0.as_ref().and_then(Expr::as_symbol) == Some("onoff"))
    );
    let Action::Syscall(s) = one("0 connect(3, ..., ...) = -1 ECONNREFUSED (Connection refused)").action else {
        panic!()
    };
    assert_eq!(
        (s.result.as_int(), s.errno.map(|e| e.0), s.note.as_deref()),
        (Some(-1), Some("ECONNREFUSED".into()), Some("Connection refused"))
    );
    let Action::Syscall(s) = one("0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0").action else { panic!() };
    assert!(matches!(&s.args[2].kind, ExprKind::Or(v) if v.len() == 2));
    let Action::Syscall(s) = one("0 fcntl(3, F_GETFL) = 0x802 (flags O_RDWR|O_NONBLOCK)").action else { panic!() };
    assert_eq!(s.result.as_int(), Some(0x802));
    let Action::Syscall(s) =
        one("0 bind(3, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr(\"192.168.0.1\")}, 16) = 0").action
    else {
        panic!()
    };
    assert!(
        matches!(&s.args[1].kind, ExprKind::Struct(f) if matches!(&f[1].1.kind, ExprKind::Call(n, _) if n == "htons"))
    );
    let Action::Syscall(s) = one("0 getsockopt(3, SOL_SOCKET, SO_ERROR, [ECONNRESET], [4]) = 0").action else {
        panic!()
    };
    assert!(matches!(&s.args[3].kind, ExprKind::List(v) if v[0].as_symbol() == Some("ECONNRESET")));
}

#[test]
fn commands_code_options_and_ifdef() {
    let src = "--tolerance_usecs=75000\n--ip_version=ipv4\n`init.sh`\n0 `sysctl -q net.ipv4.tcp_rfc1337=1`\n+0 %{ assert tcpi_state == 1 }%\n#ifdef Linux\n+0 close(3) = 0\n#else\n+0 close(3) = -1 EBADF (Bad file descriptor)\n#endif\n`cleanup.sh`\n";
    let s = parse("t", src, &ParseOptions::with_symbols(["Linux"])).unwrap();
    assert_eq!(s.options.len(), 2);
    assert_eq!(s.options[0].value.as_deref(), Some("75000"));
    assert_eq!(s.init[0].text, "init.sh");
    assert_eq!(s.cleanup[0].text, "cleanup.sh");
    assert!(matches!(&s.events[0].action, Action::Shell(c) if c.text.starts_with("sysctl")));
    assert!(matches!(&s.events[1].action, Action::Code(c) if c.text.contains("tcpi_state")));
    assert!(matches!(&s.events[2].action, Action::Syscall(c) if c.result.as_int() == Some(0)));
    let s = parse("t", src, &ParseOptions::default()).unwrap();
    assert!(matches!(&s.events[2].action, Action::Syscall(c) if c.result.as_int() == Some(-1)), "#else branch");
}

#[test]
fn defines_substitute() {
    let mut opts = ParseOptions::default();
    opts.defines.insert("MSS".into(), "1100".into());
    opts.defines.insert("FLAGS".into(), "O_RDWR|O_NONBLOCK".into());
    let s = parse("t", "0 fcntl(3, F_SETFL, FLAGS) = 0\n+0 > S 0:0(0) <mss MSS>\n", &opts).unwrap();
    assert!(matches!(&s.events[0].action, Action::Syscall(c) if matches!(&c.args[2].kind, ExprKind::Or(_))));
    assert!(print(&s).contains("<mss 1100>"));
    // Inside an option list too: a TFO cookie given on the command line, as upstream's TFO scripts are run.
    opts.defines.insert("TFO_COOKIE".into(), "3021b9d1a1f2ed64".into());
    let s = parse("t", "0 < S 0:0(0) win 1 <mss 1460,FOEXP TFO_COOKIE>\n", &opts).unwrap();
    assert!(print(&s).contains("FOEXP 3021b9d1a1f2ed64"), "{}", print(&s));
    let e = parse("t", "0 < S 0:0(0) win 1 <FO NO_SUCH_COOKIE>\n", &opts).unwrap_err().render_plain();
    assert!(e.contains("FO wants a hex cookie") && e.contains("-D NO_SUCH_COOKIE="), "{e}");
}

/// Every name of packetdrill's Linux symbol table is known, errno aliases included, with Linux's values.
#[test]
fn packetdrill_symbols_known() {
    let src = "0 setsockopt(3, SOL_SOCKET, SO_MARK, [1], 4) = 0\n\
               +0 getsockopt(3, SOL_TCP, TCP_INQ, [0], [4]) = 0\n\
               +0 send(3, ..., 10, MSG_EOR) = 10\n\
               +0 read(3, ..., 10) = -1 EWOULDBLOCK (Resource temporarily unavailable)\n\
               +0 recv(3, ..., 10, MSG_ERRQUEUE) = -1 EMSGSIZE (Message too long)\n\
               +0 setsockopt(3, SOL_SOCKET, SO_TIMESTAMPING, [SOF_TIMESTAMPING_TX_ACK|SOF_TIMESTAMPING_OPT_ID], 4) = 0\n\
               +0 epoll_ctl(5, EPOLL_CTL_ADD, 3, {events=EPOLLIN|EPOLLET, fd=3}) = 0\n";
    if let Err(errs) = script::check("t.pkt", src, &ParseOptions::default()) {
        panic!("{}", errs.iter().map(|e| e.render_plain()).collect::<Vec<_>>().join("\n"));
    }
    use tcpdrill::script::symbols::symbol_value;
    // The values are Linux's: libc's own constants for the ones it has (x86-64, the machine the table is for).
    for (name, linux) in [
        ("MSG_EOR", i64::from(libc::MSG_EOR)),
        ("MSG_ERRQUEUE", i64::from(libc::MSG_ERRQUEUE)),
        ("SO_MARK", i64::from(libc::SO_MARK)),
        ("SO_TIMESTAMPING", i64::from(libc::SO_TIMESTAMPING)),
        ("TCP_INQ", i64::from(libc::TCP_INQ)),
        ("TCP_FASTOPEN_KEY", i64::from(libc::TCP_FASTOPEN_KEY)),
        ("EPOLLET", i64::from(libc::EPOLLET as u32)),
        ("EPOLL_CTL_MOD", i64::from(libc::EPOLL_CTL_MOD)),
        ("IP_TOS", i64::from(libc::IP_TOS)),
        ("IP_MTU_DISCOVER", i64::from(libc::IP_MTU_DISCOVER)),
        ("IPV6_TCLASS", i64::from(libc::IPV6_TCLASS)),
        ("O_NOFOLLOW", i64::from(libc::O_NOFOLLOW)),
        ("F_SETOWN", i64::from(libc::F_SETOWN)),
        ("EMSGSIZE", i64::from(libc::EMSGSIZE)),
        ("ENOTSUP", i64::from(libc::ENOTSUP)),
    ] {
        assert_eq!(symbol_value(name), Some(linux), "{name}");
    }
    // Every name of packetdrill's Linux table (read from the workplace's copy of its source, where it is).
    let table = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/packetdrill-src/symbols_linux.c");
    if let Ok(c) = std::fs::read_to_string(&table) {
        let names: Vec<&str> = c
            .split('"')
            .skip(1)
            .step_by(2)
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'))
            .collect();
        assert!(names.len() > 350, "{} names read from {}", names.len(), table.display());
        let unknown: Vec<&&str> = names.iter().filter(|n| symbol_value(n).is_none()).collect();
        assert!(unknown.is_empty(), "not in tcpdrill's table: {unknown:?}");
    } else {
        eprintln!("packetdrill's symbol table not checked: no {}", table.display());
    }
    assert_eq!(symbol_value("EWOULDBLOCK"), symbol_value("EAGAIN"));
    // FreeBSD's own names parse (FreeBSD's suite does), with no Linux value to give them.
    let src = "0 setsockopt(3, SOL_SOCKET, SO_LISTENQLIMIT, [1], 4) = -1 ENOTCAPABLE (x)\n";
    assert!(script::check("t.pkt", src, &ParseOptions::default()).is_ok());
    assert_eq!(symbol_value("SO_LISTENQLIMIT"), None);
}

fn diag(src: &str) -> String {
    let opts = ParseOptions::default();
    match script::check("broken.pkt", src, &opts) {
        Ok(_) => panic!("expected an error for {src:?}"),
        Err(errs) => errs.iter().map(|e| e.render_plain()).collect::<Vec<_>>().join("\n"),
    }
}

#[test]
fn diagnostics() {
    let cases = [
        ("bad_flags", "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 < SX 0:0(0) win 100\n"),
        ("inconsistent_seq", "0 < . 1:1001(100) ack 1 win 100\n"),
        ("unknown_option", "0 < S 0:0(0) win 100 <mss 1460,sackok>\n"),
        ("unknown_field", "0 < S 0:0(0) window 100\n"),
        ("bad_csum_outbound", "0 > S 0:0(0) <...> bad_csum\n"),
        ("unknown_syscall", "0 sockte(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"),
        ("unknown_symbol", "0 socket(..., SOCK_STREEM, IPPROTO_TCP) = 3\n"),
        ("unknown_errno", "0 connect(3, ..., ...) = -1 ECONREFUSED\n"),
        ("time_backwards", "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n1 close(3) = 0\n0.5 close(3) = 0\n"),
        ("first_not_zero", "1 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"),
        ("range_mixed", "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 > S 0:0(0) <...>\n+1~2 > S 0:0(0) <...>\n"),
        ("blocking_end_signed", "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0...+1 connect(3, ..., ...) = 0\n"),
        ("range_inbound", "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n0~1 < S 0:0(0) win 100\n"),
        ("unterminated_command", "0 `sysctl -q net.ipv4.tcp_rfc1337=1\n"),
        ("unterminated_comment", "0 close(3) = 0 /* forever\n"),
        ("missing_result", "0 close(3)\n"),
        ("ifdef_unclosed", "#ifdef Linux\n0 close(3) = 0\n"),
        ("garbage_event", "0 ??? \n"),
        ("unclosed_note", "0 close(3) = -1 EBADF (Bad file d\u{e9}scriptor"),
        ("options_unpadded", "0 < S 0:0(0) win 100 <mss 1460,nop>\n"),
        ("outer_address", "0 < ipv6 2001:db8::1 > 192.0.2.1: S 0:0(0) win 100\n"),
        ("gre_flag", "0 < gre flags [crc present] sum 0 off 0 key 0 seq 0: S 0:0(0) win 100\n"),
    ];
    let mut all = String::new();
    for (name, src) in cases {
        all.push_str(&format!("===== {name}\n{}\n", diag(src)));
    }
    insta::assert_snapshot!(all);
}

// ---- print -> parse property --------------------------------------------------------------------------

fn sp() -> Span {
    Span::default()
}

fn time_point() -> impl Strategy<Value = TimePoint> {
    (0i64..5_000_000, any::<bool>()).prop_map(|(micros, relative)| TimePoint { micros, relative })
}

fn tcp_opt() -> impl Strategy<Value = TcpOpt> {
    prop_oneof![
        Just(TcpOpt::Nop),
        Just(TcpOpt::Eol),
        any::<u16>().prop_map(TcpOpt::Mss),
        any::<u8>().prop_map(TcpOpt::WScale),
        Just(TcpOpt::SackOk),
        proptest::collection::vec(any::<(u32, u32)>(), 0..4).prop_map(TcpOpt::Sack),
        (proptest::option::of(any::<u32>()), proptest::option::of(any::<u32>()))
            .prop_map(|(val, ecr)| TcpOpt::Ts { val, ecr }),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(TcpOpt::FastOpen),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(TcpOpt::FastOpenExp),
        (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..6)).prop_map(|(kind, data)| TcpOpt::Raw { kind, data }),
        (any::<bool>(), proptest::collection::vec(0u32..1 << 24, 1..=3))
            .prop_map(|(order1, counters)| TcpOpt::AccEcn { order1, counters }),
    ]
}

fn encap() -> BoxedStrategy<Encap> {
    let gre = (any::<u16>(), any::<u16>(), any::<u16>(), any::<u32>(), any::<u32>())
        .prop_map(|(flags, sum, off, key, seq)| GreHeader { flags, sum, off, key, seq });
    let mpls = (0u32..1 << 20, 0u8..8, any::<bool>(), any::<u8>()).prop_map(|(label, tc, bottom, ttl)| MplsEntry {
        label,
        tc,
        bottom,
        ttl,
    });
    prop_oneof![
        (ip_info(), any::<[u8; 4]>(), any::<[u8; 4]>()).prop_map(|(ip, s, d)| Encap::Ipv4 {
            ip,
            src: s.into(),
            dst: d.into()
        }),
        (ip_info(), any::<[u8; 16]>(), any::<[u8; 16]>()).prop_map(|(ip, s, d)| Encap::Ipv6 {
            ip,
            src: s.into(),
            dst: d.into()
        }),
        proptest::option::of(gre).prop_map(Encap::Gre),
        proptest::collection::vec(mpls, 0..3).prop_map(Encap::Mpls),
    ]
    .boxed()
}

fn non_tcp_body() -> BoxedStrategy<PacketBody> {
    let echoed = prop_oneof![
        (any::<u32>(), 0u32..70_000, proptest::option::of(any::<(u16, u16)>()))
            .prop_map(|(seq, len, udp_encap)| Echoed::Tcp { seq, len, udp_encap }),
        any::<u32>().prop_map(Echoed::Udp),
        any::<u32>().prop_map(Echoed::Raw),
        (any::<u32>(), proptest::option::of(any::<(u16, u16)>()))
            .prop_map(|(tag, udp_encap)| Echoed::Sctp { tag, udp_encap }),
        (any::<u32>(), any::<u32>()).prop_map(|(l, c)| Echoed::UdpLite(l, c)),
    ];
    let words = prop_oneof![Just("unreachable"), Just("frag_needed"), Just("echo_request"), Just("port_unreachable")];
    prop_oneof![
        // At most 64 KiB with the IPv4 and UDP headers, as packetdrill allows (tests/grammar/reject-udp-*.pkt).
        (proptest::option::of(any::<(u16, u16)>()), 0u32..=65_508)
            .prop_map(|(ports, len)| PacketBody::Udp { ports, len }),
        (
            words.clone(),
            proptest::option::of(words),
            proptest::option::of(any::<u32>()),
            proptest::option::of(0u32..=0xffff),
            proptest::option::of(echoed)
        )
            .prop_map(|(kind, code, mtu, id, echoed)| PacketBody::Icmp(IcmpSpec {
                kind: kind.into(),
                code: code.map(Into::into),
                mtu,
                id,
                echoed
            })),
    ]
    .boxed()
}

fn packet() -> impl Strategy<Value = (Packet, bool)> {
    let letters = proptest::sample::subsequence(vec!['F', 'S', 'R', 'P', '.', 'U', 'E', 'W', 'A'], 0..4);
    // packetdrill's ACE digit stands in for E, W and A together.
    let flags = (letters, proptest::option::of(0u8..8)).prop_map(|(v, ace)| {
        let mut f: String = v.into_iter().filter(|c| ace.is_none() || !matches!(c, 'E' | 'W' | 'A')).collect();
        f.extend(ace.map(|d| char::from(b'0' + d)));
        if f.is_empty() {
            "-".to_string()
        } else {
            f
        }
    });
    (
        any::<bool>(),
        ip_info(),
        proptest::option::of(any::<(u16, u16)>()),
        flags,
        proptest::option::of(any::<u32>()),
        0u32..70_000,
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(prop_oneof![Just(None), proptest::collection::vec(tcp_opt(), 1..6).prop_map(Some)]),
        any::<bool>(),
        (
            proptest::collection::vec(encap(), 0..3),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<(u16, u16)>()),
            proptest::option::of(non_tcp_body()),
        ),
    )
        .prop_map(
            |(
                outbound,
                ip,
                ports,
                flags,
                seq,
                len,
                ack,
                win,
                urg,
                opts,
                bad_csum,
                (outer, psp_spi, udp_encap, other),
            )| {
                let seq = if outbound { seq } else { Some(seq.unwrap_or(0)) };
                let options = opts.map(|o| match o {
                    None => Options::Any,
                    Some(mut list) => {
                        // packetdrill's rule: whole 32-bit words of options.
                        let len: usize = list.iter().map(TcpOpt::wire_len).sum();
                        list.extend(std::iter::repeat_n(TcpOpt::Nop, (4 - len % 4) % 4));
                        Options::List(list, sp())
                    }
                });
                let bad_csum = bad_csum && !outbound;
                let t = TcpSpec {
                    ports,
                    flags,
                    flags_span: sp(),
                    seq,
                    len,
                    seq_span: sp(),
                    ack,
                    win,
                    urg,
                    options,
                    bad_csum,
                    psp_spi,
                    udp_encap,
                };
                let direction = if outbound { Direction::Outbound } else { Direction::Inbound };
                // [ect01] is outbound only, and UDP takes no ECN mark (packetdrill's semantic checks).
                let mut ip = ip;
                if !outbound && matches!(ip.tos, Some(Tos::Ecn(Ecn::Ect01)) | Some(Tos::Dscp { ect01: true, .. })) {
                    ip.tos = None;
                }
                let body = match other {
                    Some(b @ PacketBody::Udp { .. }) if matches!(ip.tos, Some(Tos::Ecn(_))) => {
                        ip.tos = None;
                        b
                    }
                    Some(b) => b,
                    None => PacketBody::Tcp(t),
                };
                (Packet { direction, outer, ip, body, span: sp() }, outbound)
            },
        )
}

fn ip_info() -> BoxedStrategy<IpInfo> {
    let ecn = prop_oneof![Just(Ecn::Ect0), Just(Ecn::Ect1), Just(Ecn::Ect01), Just(Ecn::Ce), Just(Ecn::NoEcn)];
    let tos = prop_oneof![
        ecn.prop_map(Tos::Ecn),
        any::<u8>().prop_map(Tos::Byte),
        (0u8..64, any::<bool>()).prop_map(|(dscp, ect01)| Tos::Dscp { dscp, ect01 }),
    ];
    // Any of the three fields (nplab's grammar has every combination in this order).
    (proptest::option::of(tos), proptest::option::of(0u32..1 << 20), proptest::option::of(any::<u8>()))
        .prop_map(|(tos, flow_label, ttl)| IpInfo { tos, flow_label, ttl })
        .boxed()
}

fn expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        Just(ExprKind::Ellipsis),
        any::<i64>().prop_filter("i64::MIN has no literal", |v| *v != i64::MIN).prop_map(ExprKind::Int),
        "[A-Z][A-Z_]{0,12}".prop_map(ExprKind::Symbol),
        "[ -~]{0,10}".prop_map(ExprKind::Str),
    ]
    .prop_map(|kind| Expr { kind, span: sp() });
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(ExprKind::List),
            proptest::collection::vec((proptest::option::of("[a-z_]{1,8}"), inner.clone()), 0..4).prop_map(|f| {
                ExprKind::Struct(
                    f.into_iter()
                        .map(|(n, v)| (n.map(|n| Expr { kind: ExprKind::Symbol(n), span: sp() }), v))
                        .collect(),
                )
            }),
            proptest::collection::vec(inner.clone(), 2..4).prop_map(|v| {
                // `a|b` nests flat: an Or never holds an Or.
                ExprKind::Or(v.into_iter().filter(|e| !matches!(e.kind, ExprKind::Or(_))).collect())
            }),
            ("[a-z_]{1,8}", proptest::collection::vec(inner, 0..3)).prop_map(|(n, a)| ExprKind::Call(n, a)),
        ]
        .prop_filter("an Or needs two parts", |k| !matches!(k, ExprKind::Or(v) if v.len() < 2))
        .prop_map(|kind| Expr { kind, span: sp() })
    })
}

fn event() -> impl Strategy<Value = Event> {
    fn syscall() -> impl Strategy<Value = Action> {
        (
            "[a-z_]{1,10}",
            proptest::collection::vec(expr(), 0..4),
            expr(),
            proptest::option::of("E[A-Z]{2,8}"),
            proptest::option::of("[a-zA-Z ]{1,12}"),
        )
            .prop_map(|(name, args, result, errno, note)| {
                Action::Syscall(Syscall { name, name_span: sp(), args, result, errno: errno.map(|e| (e, sp())), note })
            })
    }
    prop_oneof![
        (time_point(), packet()).prop_map(|(t, (p, _))| (TimeSpec::At(t), Action::Packet(p))),
        (
            prop_oneof![Just(None), (time_point(), time_point()).prop_map(Some)],
            packet().prop_filter("outbound", |(_, o)| *o)
        )
            .prop_map(|(r, (p, _))| (r.map_or(TimeSpec::Any, |(a, b)| TimeSpec::Range(a, b)), Action::Packet(p))),
        (time_point(), syscall()).prop_map(|(t, s)| (TimeSpec::At(t), s)),
        (time_point(), time_point(), syscall()).prop_map(|(a, b, s)| (TimeSpec::Blocking(a, b), s)),
        (time_point(), "[a-z -]{1,20}")
            .prop_map(|(t, c)| (TimeSpec::At(t), Action::Shell(Command { text: c, span: sp() }))),
        (time_point(), "[a-z =;]{1,20}")
            .prop_map(|(t, c)| (TimeSpec::At(t), Action::Code(Code { text: c, span: sp() }))),
    ]
    .prop_map(|(time, action)| Event { time, time_span: sp(), action, span: sp() })
}

/// Makes a generated timeline valid: first event at 0, every later one relative and non-negative.
fn fix_times(events: &mut [Event]) {
    for (i, e) in events.iter_mut().enumerate() {
        let fix = |p: &mut TimePoint| {
            p.relative = i > 0 || p.relative;
            if i == 0 {
                p.micros = 0;
            }
        };
        match &mut e.time {
            TimeSpec::At(a) => fix(a),
            // packetdrill's forms: `a~b` or `+a~+b`; `a...b` or `+a...b` (the end never signed).
            TimeSpec::Range(a, b) => {
                fix(a);
                b.relative = a.relative;
                b.micros = b.micros.max(a.micros);
            }
            TimeSpec::Blocking(a, b) => {
                fix(a);
                b.relative = false;
                b.micros = b.micros.max(a.micros);
            }
            TimeSpec::Any => {}
        }
    }
}

proptest! {
    #[test]
    fn print_then_parse_is_identity(mut events in proptest::collection::vec(event(), 1..12)) {
        fix_times(&mut events);
        let script = Script { options: vec![], init: vec![], events, cleanup: vec![] };
        let text = print(&script);
        let back = parse("generated.pkt", &text, &ParseOptions::default());
        match back {
            Ok(b) => prop_assert_eq!(b, script, "\n{}", text),
            Err(e) => prop_assert!(false, "{}\n{}", e.render_plain(), text),
        }
    }
}

#[test]
fn canonical_print_of_tricky_lines() {
    // Spacing, flag order, hex, relative/absolute/range/blocking times, #ifdef, comments, untimed commands.
    let src = r#"--tolerance_usecs=7000
--remote_ip="192.0.2.2"
`../common/defaults.sh
more init`
0.000   socket(..., SOCK_STREAM, IPPROTO_TCP) = 3   // a comment
+ .25   fcntl(3, F_SETFL, O_RDWR |O_NONBLOCK) = 0
+0      fcntl(3, F_GETFL) = 0x802 (flags O_RDWR|O_NONBLOCK)
0.25...0.500 connect(3, ..., ...) = -1 ECONNREFUSED (Connection refused)
0.25    > S  0:0(0)   <mss 1460, sackOK,TS val ... ecr 0, nop,wscale 7>
0.3~0.5 > .P 1:1001(1000) ack 1
*       > [ect01] FP. 1001:1001(0) ack 1 win 257 urg 3 <nop,nop,sack 1:2 3:4>
0.6     < 50000>8080 SEW 0:0(0) win 1 <FO abcd1234,FOEXP,opt 253 0x0102,md5,eol,nop,nop,nop>
#ifdef Linux
+0 /* inline */ setsockopt(3, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0
#else
+0 setsockopt(3, SOL_SOCKET, SO_LINGER, {onoff=0, linger=5}, 8) = 0
#endif
+0      %{ assert tcpi_state == 1,
tcpi_state }%
+0      `sysctl -q net.ipv4.tcp_rfc1337=1`
+0      tcp_state({local_port=8080, remote_port=50000}) = TCP_TIME_WAIT
`cleanup`
"#;
    let s = parse("tricky.pkt", src, &ParseOptions::with_symbols(["Linux"]))
        .unwrap_or_else(|e| panic!("{}", e.render_plain()));
    insta::assert_snapshot!(print(&s));
}

#[test]
fn header_options_are_known_and_well_formed() {
    let err = |text: &str| parse("t.pkt", text, &ParseOptions::default()).map(|_| ()).unwrap_err().render_plain();
    let e = err("--tso=of\n0 close(3) = 0\n");
    assert!(e.contains("t.pkt:1:1") && e.contains("did you mean --tso=off?"), "{e}");
    let e = err("--bogus_flag=1\n0 close(3) = 0\n");
    assert!(e.contains("unknown header option --bogus_flag"), "{e}");
    let e = err("--tolerance_usec=1000\n0 close(3) = 0\n");
    assert!(e.contains("did you mean --tolerance_usecs?"), "{e}");
    let e = err("--tolerance_usecs=abc\n0 close(3) = 0\n");
    assert!(e.contains("--tolerance_usecs=\"abc\" is not a whole number"), "{e}");
    let e = err("--strict_segments=1\n0 close(3) = 0\n");
    assert!(e.contains("--strict_segments takes no value"), "{e}");
    let e = err("--ip_version=ipv5\n0 close(3) = 0\n");
    assert!(e.contains("is not one of ipv4, ipv6, ipv4-mapped-ipv6"), "{e}");
    for ok in ["--strict_segments", "--tolerance_percent=2.5", "--local_ip=192.168.0.1", "--ip_version=ipv6"] {
        assert!(parse("t.pkt", &format!("{ok}\n0 close(3) = 0\n"), &ParseOptions::default()).is_ok(), "{ok}");
    }
}

proptest! {
    /// However deep a syscall argument nests `[`, `{` and calls, parsing ends in a result: a script within
    /// MAX_NESTING parses, a deeper one gets the located nesting error (never a stack overflow).
    #[test]
    fn nesting_is_bounded(openers in proptest::collection::vec(0usize..3, 0..400)) {
        let (open, close) = (["[", "{x=", "htons("], ["]", "}", ")"]);
        let mut arg = String::new();
        for &o in &openers {
            arg.push_str(open[o]);
        }
        arg.push('1');
        for &o in openers.iter().rev() {
            arg.push_str(close[o]);
        }
        let text = format!("0 setsockopt(3, SOL_SOCKET, SO_LINGER, {arg}, 8) = 0\n");
        let got = parse("t.pkt", &text, &ParseOptions::default());
        // The argument itself is one level; each opener adds one.
        if openers.len() < tcpdrill::script::parser::MAX_NESTING {
            prop_assert!(got.is_ok(), "{}", got.unwrap_err().render_plain());
        } else {
            let e = got.unwrap_err().render_plain();
            prop_assert!(e.contains("nests more than") && e.contains("t.pkt:1:"), "{}", e);
        }
    }
}
