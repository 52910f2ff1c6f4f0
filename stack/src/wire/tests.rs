//! Wire tests: datagrams captured from Linux 6.18 (through a TUN device, so checksums are real), every error
//! the parser reports, and round-trip properties against an encoder written independently in this file.

use super::*;
use crate::seq::SeqNum;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use proptest::prelude::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Linux 6.18 active open: `connect()` from 192.168.0.1 to 192.0.2.1:8080, read off the TUN device.
const LINUX_SYN: &str = "4500003c7c05400040063c0cc0a80001c00002019e381f90dee4257200000000a002faf0333a0000\
                         020405b40402080a0b3fc9c8000000000103030a";
/// Linux 6.18 passive open: its SYN-ACK to a SYN (seq 0, TS val 100) from 192.0.2.1:50000.
const LINUX_SYN_ACK: &str = "4500003c000040004006b811c0a80001c00002011f90c3503326cccf00000001a012fe886a780000\
                             020405b40402080ae72191e3000000640103030a";
/// Linux 6.18 answer to a SYN (seq 1000) for closed port 9: RST/ACK, seq 0, ack 1001 (RFC 9293 3.10.7.1).
const LINUX_RST_ACK: &str = "45000028000040004006b825c0a80001c00002010009c35100000000000003e95014000065e20000";
/// Linux 6.18 IPv6 active open from fd00::1 to [fd00:2::1]:8080.
const LINUX_SYN6: &str = "600f99d300280640fd000000000000000000000000000001fd000002000000000000000000000001\
                          b28e1f909336d07500000000a002fd2072a50000020405a00402080ae075c804000000000103030a";
/// Linux 6.18 on loopback, 18 bytes of data, captured with checksum offload: the TCP checksum field holds
/// only the pseudo-header sum, so it verifies only with checksums ignored.
const LINUX_LO_DATA_OFFLOADED: &str = "4500004675e740004006c6c87f0000017f000001c19e1f90b823e8e9ab6021d2801800\
    3ffe3a00000101080a329a4744352293e3474554202f20485454502f312e300d0a0d0a";

#[test]
fn linux_syn_every_field() {
    let bytes = hex(LINUX_SYN);
    let ip = Ipv4Packet::new_checked(&bytes[..]).unwrap();
    assert_eq!(ip.header_len(), 20);
    assert_eq!(ip.total_len(), 60);
    assert_eq!(ip.ident(), 0x7c05);
    assert!(ip.dont_frag() && !ip.more_frags());
    assert_eq!(ip.ttl(), 64);
    assert_eq!(ip.protocol(), 6);
    assert!(ip.verify_checksum());
    assert_eq!(ip.src_addr(), Ipv4Addr::new(192, 168, 0, 1));
    assert_eq!(ip.dst_addr(), Ipv4Addr::new(192, 0, 2, 1));

    let seg = TcpSegment::new_checked(ip.payload()).unwrap();
    assert_eq!(seg.src_port(), 40504);
    assert_eq!(seg.dst_port(), 8080);
    assert_eq!(seg.seq_number(), SeqNum(3_739_493_746));
    assert_eq!(seg.ack_number(), SeqNum(0));
    assert_eq!(seg.data_offset(), 10);
    assert_eq!(seg.flags(), TcpFlags::SYN);
    assert_eq!(seg.window_len(), 64240);
    assert_eq!(seg.checksum(), 0x333a);
    assert_eq!(seg.urgent_at(), 0);
    assert!(seg.payload().is_empty());
    let opts: Vec<_> = seg.options_iter().collect::<Result<_>>().unwrap();
    assert_eq!(
        opts,
        [
            TcpOption::Mss(1460),
            TcpOption::SackPermitted,
            TcpOption::Timestamps { tsval: 188_729_800, tsecr: 0 },
            TcpOption::Nop,
            TcpOption::WindowScale(10),
        ],
        "Linux's SYN option order: mss, sackOK, TS, nop, wscale"
    );

    let d = TcpDatagram::parse(&bytes, Checksums::Verify).unwrap();
    assert_eq!(d.tcp.options.mss(), Some(1460));
    assert_eq!(d.tcp.options.window_scale(), Some(10));
    assert!(d.tcp.options.sack_permitted());
    assert_eq!(d.tcp.options.timestamps(), Some((188_729_800, 0)));
    assert_eq!(d.tcp.segment_len(), 1, "a SYN occupies one sequence number");
    assert_eq!(d.to_vec().unwrap(), bytes, "re-emitting reproduces the kernel's bytes exactly");
}

#[test]
fn linux_syn_ack_and_rst_ack() {
    let b = hex(LINUX_SYN_ACK);
    let d = TcpDatagram::parse(&b, Checksums::Verify).unwrap();
    assert_eq!(d.tcp.flags, TcpFlags::SYN | TcpFlags::ACK);
    assert_eq!(d.tcp.ack, SeqNum(1), "acknowledges the SYN with seq 0");
    assert_eq!(d.tcp.options.timestamps(), Some((3_877_736_931, 100)), "TSecr echoes the SYN's TSval");
    assert_eq!(d.to_vec().unwrap(), b);

    let b = hex(LINUX_RST_ACK);
    let d = TcpDatagram::parse(&b, Checksums::Verify).unwrap();
    assert_eq!(d.tcp.flags, TcpFlags::RST | TcpFlags::ACK);
    assert_eq!((d.tcp.seq, d.tcp.ack, d.tcp.window), (SeqNum(0), SeqNum(1001), 0));
    assert!(d.tcp.options.is_empty());
    assert_eq!(d.to_vec().unwrap(), b);
}

#[test]
fn linux_ipv6_syn() {
    let b = hex(LINUX_SYN6);
    let d = TcpDatagram::parse(&b, Checksums::Verify).unwrap();
    let IpRepr::V6(ip) = d.ip else { panic!("not IPv6") };
    assert_eq!(ip.src_addr, "fd00::1".parse::<Ipv6Addr>().unwrap());
    assert_eq!(ip.dst_addr, "fd00:2::1".parse::<Ipv6Addr>().unwrap());
    assert_eq!(ip.flow_label, 0xf99d3);
    assert_eq!(ip.hop_limit, 64);
    assert_eq!(d.tcp.options.mss(), Some(1440), "IPv6 MSS is 1500 - 40 - 20");
    assert_eq!(d.to_vec().unwrap(), b);
}

#[test]
fn offloaded_checksum_needs_ignore() {
    let b = hex(LINUX_LO_DATA_OFFLOADED);
    assert_eq!(TcpDatagram::parse(&b, Checksums::Verify), Err(WireError::BadTcpChecksum));
    let d = TcpDatagram::parse(&b, Checksums::Ignore).unwrap();
    assert_eq!(d.tcp.payload, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(d.tcp.flags, TcpFlags::PSH | TcpFlags::ACK);
}

#[test]
fn display_in_packetdrill_notation() {
    let syn = hex(LINUX_SYN);
    let d = TcpDatagram::parse(&syn, Checksums::Verify).unwrap();
    assert_eq!(
        d.tcp.to_string(),
        "S 3739493746:3739493746(0) win 64240 <mss 1460,sackOK,TS val 188729800 ecr 0,nop,wscale 10>"
    );
    assert_eq!(
        d.to_string(),
        "192.168.0.1:40504 > 192.0.2.1:8080 S 3739493746:3739493746(0) win 64240 \
         <mss 1460,sackOK,TS val 188729800 ecr 0,nop,wscale 10>"
    );
    let rst = hex(LINUX_RST_ACK);
    assert_eq!(TcpDatagram::parse(&rst, Checksums::Verify).unwrap().tcp.to_string(), "R. 0:0(0) ack 1001 win 0");
    assert_eq!(TcpFlags::NONE.to_string(), "-");
    assert_eq!((TcpFlags::FIN | TcpFlags::PSH | TcpFlags::ACK).to_string(), "FP.");
    assert_eq!((TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR).to_string(), "SEW");
}

#[test]
fn notation_renumbers_seq_ack_sack_and_tsval() {
    let syn = hex(LINUX_SYN);
    let d = TcpDatagram::parse(&syn, Checksums::Verify).unwrap();
    let n = Numbering { seq_offset: 3_739_493_746, ack_offset: 0, ts_offset: 188_729_000 };
    assert_eq!(
        d.tcp.notation(n).to_string(),
        "S 0:0(0) win 64240 <mss 1460,sackOK,TS val 800 ecr 0,nop,wscale 10>",
        "seq less the sender's ISN, TSval less its origin, TSecr as it is"
    );
    let blocks = SackBlocks::new(&[(SeqNum(1100), SeqNum(1200))]).unwrap();
    let mut opts = TcpOptions::EMPTY;
    opts.push(&TcpOption::Sack(blocks)).unwrap();
    let ack = TcpRepr {
        src_port: 1,
        dst_port: 2,
        seq: SeqNum(5),
        ack: SeqNum(1001),
        flags: TcpFlags::ACK | TcpFlags::URG,
        window: 10,
        urgent: 3,
        options: opts,
        payload: b"",
    };
    let n = Numbering { seq_offset: 4, ack_offset: 1000, ts_offset: 0 };
    assert_eq!(ack.notation(n).to_string(), ".U 1:1(0) ack 1 win 10 urg 3 <sack 100:200>");
    assert_eq!(ack.to_string(), ".U 5:5(0) ack 1001 win 10 urg 3 <sack 1100:1200>", "Display is the zero numbering");
}

#[test]
fn flags_keep_reserved_bits() {
    let mut b = hex(LINUX_SYN);
    b[20 + 12] |= 0x0e; // the three reserved bits, below the data offset nibble
    let ip = Ipv4Packet::new_checked(&mut b[..]).unwrap();
    let mut seg = TcpSegment::new_unchecked(ip.into_inner()[20..].to_vec());
    seg.fill_checksum(Ipv4Addr::new(192, 168, 0, 1).into(), Ipv4Addr::new(192, 0, 2, 1).into());
    let fixed = seg.into_inner();
    b[20..].copy_from_slice(&fixed);
    let d = TcpDatagram::parse(&b, Checksums::Verify).unwrap();
    assert_eq!(d.tcp.flags.0 & TcpFlags::RESERVED.0, 0xe00);
    assert!(format!("{:?}", d.tcp.flags).contains("reserved 0x7"));
    assert_eq!(d.to_vec().unwrap(), b);
}

#[test]
fn both_ones_complement_zeros_verify() {
    // Make the computed checksum 0x0000: put its complement into the (unused) urgent pointer word.
    let mut b = hex(LINUX_RST_ACK);
    b[36..38].copy_from_slice(&[0, 0]);
    let (src, dst): (IpAddr, IpAddr) = (Ipv4Addr::new(192, 168, 0, 1).into(), Ipv4Addr::new(192, 0, 2, 1).into());
    let mut seg = TcpSegment::new_unchecked(&mut b[20..]);
    seg.fill_checksum(src, dst);
    let c = seg.checksum();
    seg.set_urgent_at(c);
    seg.fill_checksum(src, dst);
    assert_eq!(seg.checksum(), 0x0000);
    assert!(seg.verify_checksum(src, dst));
    // RFC 1071: the receiver sums everything and expects all ones, so -0 (0xffff) is as valid as +0.
    seg.set_checksum(0xffff);
    assert!(seg.verify_checksum(src, dst));
    seg.set_checksum(0x0001);
    assert!(!seg.verify_checksum(src, dst));
}

fn ipv4_with(tcp: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; 20 + tcp.len()];
    IpRepr::tcp(Ipv4Addr::new(192, 0, 2, 1).into(), Ipv4Addr::new(192, 168, 0, 1).into(), tcp.len())
        .emit(&mut v)
        .unwrap();
    v[20..].copy_from_slice(tcp);
    v
}

#[test]
fn every_parse_error() {
    let syn = hex(LINUX_SYN);
    let err = |b: &[u8]| TcpDatagram::parse(b, Checksums::Ignore).unwrap_err();
    assert_eq!(err(&[]), WireError::Truncated { what: "IP header", needed: 1, got: 0 });
    assert_eq!(err(&syn[..19]), WireError::Truncated { what: "IPv4 header", needed: 20, got: 19 });
    assert_eq!(err(&[0x50; 40]), WireError::BadVersion(5));
    let mut b = syn.clone();
    b[0] = 0x44;
    assert_eq!(err(&b), WireError::BadIhl(4));
    b[0] = 0x4f; // 60-byte header in a 60-byte datagram: nothing left for TCP
    assert_eq!(err(&b), WireError::Truncated { what: "TCP header", needed: 20, got: 0 });
    let mut b = syn.clone();
    b[3] = 61;
    assert_eq!(err(&b), WireError::BadTotalLength { claimed: 61, available: 60 });
    let mut b = syn.clone();
    b[6] = 0x20; // More Fragments
    assert_eq!(err(&b), WireError::Fragmented);
    let mut b = syn.clone();
    b[9] = 17;
    assert_eq!(err(&b), WireError::NotTcp(17));
    let mut b = syn.clone();
    b[32] = 0x40; // data offset 4
    assert_eq!(err(&b), WireError::BadDataOffset(4));
    b[32] = 0xb0; // data offset 11 = 44 bytes > 40 available
    assert_eq!(err(&b), WireError::BadDataOffset(11));
    let mut b = syn.clone();
    b[10] ^= 0xff;
    assert_eq!(TcpDatagram::parse(&b, Checksums::Verify), Err(WireError::BadIpChecksum));
    assert!(TcpDatagram::parse(&b, Checksums::Ignore).is_ok(), "ignoring checksums ignores both");
    let mut b = syn.clone();
    b[59] ^= 1;
    assert_eq!(TcpDatagram::parse(&b, Checksums::Verify), Err(WireError::BadTcpChecksum));
    let v6 = hex(LINUX_SYN6);
    assert_eq!(err(&v6[..39]), WireError::Truncated { what: "IPv6 header", needed: 40, got: 39 });
    let mut b = v6.clone();
    b[5] += 1;
    assert_eq!(err(&b), WireError::BadTotalLength { claimed: 81, available: 80 });
}

#[test]
fn malformed_options_are_reported_not_fatal() {
    // MUST-7: an option with length 0 or 1, or running past the header, must not crash the receiver.
    let cases: [(&[u8], WireError); 5] = [
        (&[0x02, 0x00, 0x01, 0x01], WireError::OptionLengthTooSmall { kind: 2, len: 0 }),
        (&[0x1e, 0x01, 0x01, 0x01], WireError::OptionLengthTooSmall { kind: 30, len: 1 }),
        (&[0x01, 0x01, 0x01, 0x08], WireError::OptionOverrun { kind: 8, offset: 3 }),
        (&[0x08, 0x0a, 0x00, 0x00], WireError::OptionOverrun { kind: 8, offset: 0 }),
        (&[0x02, 0x03, 0x05, 0x00], WireError::BadOptionLength { kind: 2, len: 3 }),
    ];
    for (area, want) in cases {
        let mut tcp = vec![0u8; 20];
        tcp[12] = 0x60;
        tcp[13] = 0x10;
        tcp.extend_from_slice(area);
        let d = ipv4_with(&tcp);
        let parsed = TcpDatagram::parse(&d, Checksums::Ignore).unwrap();
        assert_eq!(parsed.tcp.options.validate(), Err(want), "option area {area:02x?}");
        assert_eq!(parsed.tcp.options.as_bytes(), area, "kept verbatim");
        assert!(parsed.tcp.options.to_string().contains("bad("));
    }
    // Linux stops at the bad option and acts on what came before it.
    let o = TcpOptions::from_bytes(&[0x02, 0x04, 0x05, 0xb4, 0x03, 0x01, 0x00, 0x00]).unwrap();
    assert_eq!(o.mss(), Some(1460));
    assert_eq!(o.window_scale(), None);
}

#[test]
fn padding_after_eol() {
    let o = TcpOptions::from_bytes(&[0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x00, 0x00]).unwrap();
    assert_eq!(o.to_string(), "mss 1460,sackOK,eol,eol", "as the FreeBSD suite writes it");
    let o = TcpOptions::from_bytes(&[0x00, 0xde, 0xad, 0x00]).unwrap();
    let v: Vec<_> = o.iter().collect::<Result<_>>().unwrap();
    assert_eq!(v, [TcpOption::Eol, TcpOption::Padding(&[0xde, 0xad, 0x00])]);
}

#[test]
fn emit_errors() {
    let mut o = TcpOptions::EMPTY;
    for _ in 0..4 {
        o.push(&TcpOption::Timestamps { tsval: 1, tsecr: 2 }).unwrap();
    }
    assert_eq!(o.push(&TcpOption::Timestamps { tsval: 1, tsecr: 2 }), Err(WireError::OptionsTooLong(50)));
    assert_eq!(o.len(), 40, "a failed push leaves the options as they were");
    assert_eq!(TcpOptions::from_bytes(&[1; 41]), Err(WireError::OptionsTooLong(41)));
    let repr = TcpRepr {
        src_port: 1,
        dst_port: 2,
        seq: SeqNum(0),
        ack: SeqNum(0),
        flags: TcpFlags::SYN,
        window: 0,
        urgent: 0,
        options: TcpOptions::EMPTY,
        payload: &[],
    };
    let a: IpAddr = Ipv4Addr::LOCALHOST.into();
    assert_eq!(repr.emit(&mut [0u8; 19], a, a), Err(WireError::BufferTooSmall { needed: 20, got: 19 }));
    let big = vec![0u8; 70_000];
    let d = TcpDatagram::new(a, a, TcpRepr { payload: &big, ..repr });
    assert_eq!(d.to_vec(), Err(WireError::PayloadTooLong(70_020)));
}

// ---- property tests --------------------------------------------------------------------------------------

/// An option as the test's own encoder sees it; `encode` is written from RFC 9293 / 7323 / 2018 / 7413,
/// independently of `TcpOption::emit`.
#[derive(Debug, Clone)]
enum Spec {
    Nop,
    Mss(u16),
    Ws(u8),
    SackOk,
    Sack(Vec<(u32, u32)>),
    Ts(u32, u32),
    Md5([u8; 16]),
    Fo(Vec<u8>),
    FoExp(Vec<u8>),
    Unknown(u8, Vec<u8>),
}

impl Spec {
    fn encode(&self) -> Vec<u8> {
        let tlv = |k: u8, body: &[u8]| [&[k, body.len() as u8 + 2][..], body].concat();
        match self {
            Spec::Nop => vec![1],
            Spec::Mss(v) => tlv(2, &v.to_be_bytes()),
            Spec::Ws(s) => tlv(3, &[*s]),
            Spec::SackOk => tlv(4, &[]),
            Spec::Sack(b) => {
                tlv(5, &b.iter().flat_map(|(l, r)| [l.to_be_bytes(), r.to_be_bytes()]).flatten().collect::<Vec<_>>())
            }
            Spec::Ts(a, b) => tlv(8, &[a.to_be_bytes(), b.to_be_bytes()].concat()),
            Spec::Md5(d) => tlv(19, d),
            Spec::Fo(c) => tlv(34, c),
            Spec::FoExp(c) => tlv(254, &[&[0xf9, 0x89][..], c].concat()),
            Spec::Unknown(k, d) => tlv(*k, d),
        }
    }

    fn typed(&self) -> TcpOption<'_> {
        match self {
            Spec::Nop => TcpOption::Nop,
            Spec::Mss(v) => TcpOption::Mss(*v),
            Spec::Ws(s) => TcpOption::WindowScale(*s),
            Spec::SackOk => TcpOption::SackPermitted,
            Spec::Sack(b) => {
                let v: Vec<_> = b.iter().map(|&(l, r)| (SeqNum(l), SeqNum(r))).collect();
                TcpOption::Sack(SackBlocks::new(&v).unwrap())
            }
            Spec::Ts(a, b) => TcpOption::Timestamps { tsval: *a, tsecr: *b },
            Spec::Md5(d) => TcpOption::Md5(*d),
            Spec::Fo(c) => TcpOption::FastOpen(c),
            Spec::FoExp(c) => TcpOption::FastOpenExp(c),
            Spec::Unknown(k, d) => TcpOption::Unknown { kind: *k, data: d },
        }
    }
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        Just(Spec::Nop),
        any::<u16>().prop_map(Spec::Mss),
        any::<u8>().prop_map(Spec::Ws),
        Just(Spec::SackOk),
        proptest::collection::vec(any::<(u32, u32)>(), 1..=4).prop_map(Spec::Sack),
        any::<(u32, u32)>().prop_map(|(a, b)| Spec::Ts(a, b)),
        any::<[u8; 16]>().prop_map(Spec::Md5),
        proptest::collection::vec(any::<u8>(), 0..=16).prop_map(Spec::Fo),
        proptest::collection::vec(any::<u8>(), 0..=16).prop_map(Spec::FoExp),
        (prop_oneof![6u8..=7, 9u8..=18], proptest::collection::vec(any::<u8>(), 0..=8))
            .prop_map(|(k, d)| Spec::Unknown(k, d)),
        (35u8..=253, proptest::collection::vec(any::<u8>(), 0..=8)).prop_map(|(k, d)| Spec::Unknown(k, d)),
    ]
}

/// Option lists that fit in 40 bytes once padded with EOLs to a multiple of four.
fn spec_list() -> impl Strategy<Value = Vec<Spec>> {
    proptest::collection::vec(spec(), 0..10).prop_map(|mut v| {
        while v.iter().map(|s| s.encode().len()).sum::<usize>().div_ceil(4) * 4 > 40 {
            v.pop();
        }
        v
    })
}

fn padded_area(specs: &[Spec]) -> Vec<u8> {
    let mut a: Vec<u8> = specs.iter().flat_map(Spec::encode).collect();
    while a.len() % 4 != 0 {
        a.push(0);
    }
    a
}

/// A TCP segment assembled byte by byte, with the checksum from the naive RFC 1071 sum.
fn raw_segment(h: &Header, area: &[u8], payload: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(&h.sport.to_be_bytes());
    s.extend_from_slice(&h.dport.to_be_bytes());
    s.extend_from_slice(&h.seq.to_be_bytes());
    s.extend_from_slice(&h.ack.to_be_bytes());
    let off = ((20 + area.len()) / 4) as u16;
    s.extend_from_slice(&((off << 12) | (h.flags & 0x0fff)).to_be_bytes());
    s.extend_from_slice(&h.win.to_be_bytes());
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(&h.urg.to_be_bytes());
    s.extend_from_slice(area);
    s.extend_from_slice(payload);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&(s.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(&s);
    let c = !(checksum::naive_sum(&pseudo) as u16);
    s[16..18].copy_from_slice(&c.to_be_bytes());
    s
}

#[derive(Debug, Clone)]
struct Header {
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u16,
    win: u16,
    urg: u16,
}

fn header() -> impl Strategy<Value = Header> {
    (any::<(u16, u16, u32, u32)>(), 0u16..0x1000, any::<(u16, u16)>())
        .prop_map(|((sport, dport, seq, ack), flags, (win, urg))| Header { sport, dport, seq, ack, flags, win, urg })
}

const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const DST: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 1);

proptest! {
    /// Bytes -> repr -> bytes is the identity for well-formed segments with any option layout.
    #[test]
    fn emit_of_parse_is_identity(h in header(), specs in spec_list(),
                                 payload in proptest::collection::vec(any::<u8>(), 0..200)) {
        let area = padded_area(&specs);
        let seg = raw_segment(&h, &area, &payload, SRC, DST);
        let view = TcpSegment::new_checked(&seg[..]).unwrap();
        let repr = TcpRepr::parse(&view, SRC.into(), DST.into(), Checksums::Verify).unwrap();
        // The typed view of the options is what the independent encoder put there.
        let typed: Vec<_> = repr.options.iter().collect::<Result<_>>().unwrap();
        let mut want: Vec<_> = specs.iter().map(Spec::typed).collect();
        want.extend(std::iter::repeat_n(TcpOption::Eol, area.len() - specs.iter().map(|s| s.encode().len()).sum::<usize>()));
        prop_assert_eq!(typed, want);
        let mut out = vec![0u8; repr.buffer_len()];
        repr.emit(&mut out, SRC.into(), DST.into()).unwrap();
        prop_assert_eq!(out, seg);
    }

    /// Even a malformed option area (any bytes) survives parse -> emit unchanged.
    #[test]
    fn arbitrary_option_bytes_round_trip(h in header(), words in 0usize..=10, fill in any::<[u8; 40]>()) {
        let area = &fill[..words * 4];
        let seg = raw_segment(&h, area, b"data", SRC, DST);
        let view = TcpSegment::new_checked(&seg[..]).unwrap();
        let repr = TcpRepr::parse(&view, SRC.into(), DST.into(), Checksums::Verify).unwrap();
        let mut out = vec![0u8; repr.buffer_len()];
        repr.emit(&mut out, SRC.into(), DST.into()).unwrap();
        prop_assert_eq!(out, seg);
    }

    /// Repr -> bytes -> repr is the identity, for both IP versions.
    #[test]
    fn parse_of_emit_is_identity(h in header(), specs in spec_list(), v6 in any::<bool>(),
                                 payload in proptest::collection::vec(any::<u8>(), 0..200)) {
        let typed: Vec<_> = specs.iter().map(Spec::typed).collect();
        let mut options = TcpOptions::from_options(&typed).unwrap();
        options.pad();
        let tcp = TcpRepr {
            src_port: h.sport, dst_port: h.dport, seq: SeqNum(h.seq), ack: SeqNum(h.ack),
            flags: TcpFlags(h.flags), window: h.win, urgent: h.urg, options, payload: &payload,
        };
        let (src, dst): (IpAddr, IpAddr) = if v6 {
            ("2001:db8::1".parse::<Ipv6Addr>().unwrap().into(), "2001:db8::2".parse::<Ipv6Addr>().unwrap().into())
        } else {
            (SRC.into(), DST.into())
        };
        let d = TcpDatagram::new(src, dst, tcp);
        let bytes = d.to_vec().unwrap();
        let back = TcpDatagram::parse(&bytes, Checksums::Verify).unwrap();
        prop_assert_eq!(back, d);
    }

    /// No byte string makes the parser panic, with or without checksum verification.
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..120), v in 0u8..3) {
        let mut bytes = bytes;
        if let Some(b) = bytes.first_mut() {
            *b = (*b & 0x0f) | [0x40, 0x60, 0x50][usize::from(v)];
        }
        for c in [Checksums::Verify, Checksums::Ignore] {
            if let Ok(d) = TcpDatagram::parse(&bytes, c) {
                let _ = d.to_string();
            }
        }
    }
}
