//! Parse + validate (both checksums verified, header fields read, options walked typed) for a corpus of
//! realistic segments, with tcpdrill, pnet_packet and etherparse side by side in one run.
//!
//! `cargo bench -p tcpdrill-stack --bench wire`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use tcpdrill_stack::wire::{Checksums, SackBlocks, TcpDatagram, TcpFlags, TcpOption, TcpOptions, TcpRepr};
use tcpdrill_stack::SeqNum;

fn segment(flags: TcpFlags, opts: &[TcpOption<'_>], payload: &[u8]) -> Vec<u8> {
    let mut options = TcpOptions::from_options(opts).unwrap();
    options.pad();
    let tcp = TcpRepr {
        src_port: 40504,
        dst_port: 8080,
        seq: SeqNum(3_739_493_746),
        ack: SeqNum(858_180_816),
        flags,
        window: 502,
        urgent: 0,
        options,
        payload,
    };
    let (s, d): (IpAddr, IpAddr) = (Ipv4Addr::new(192, 168, 0, 1).into(), Ipv4Addr::new(192, 0, 2, 1).into());
    TcpDatagram::new(s, d, tcp).to_vec().unwrap()
}

fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let ts = TcpOption::Timestamps { tsval: 188_729_800, tsecr: 3_877_736_931 };
    let data = vec![0x5a; 1460];
    let sack = SackBlocks::new(&[(SeqNum(1000), SeqNum(2460)), (SeqNum(3920), SeqNum(5380))]).unwrap();
    vec![
        (
            "syn_options",
            segment(
                TcpFlags::SYN,
                &[
                    TcpOption::Mss(1460),
                    TcpOption::SackPermitted,
                    TcpOption::Timestamps { tsval: 188_729_800, tsecr: 0 },
                    TcpOption::Nop,
                    TcpOption::WindowScale(10),
                ],
                &[],
            ),
        ),
        ("pure_ack", segment(TcpFlags::ACK, &[TcpOption::Nop, TcpOption::Nop, ts], &[])),
        ("data_1460", segment(TcpFlags::ACK | TcpFlags::PSH, &[TcpOption::Nop, TcpOption::Nop, ts], &data)),
        (
            "sack_ack",
            segment(
                TcpFlags::ACK,
                &[TcpOption::Nop, TcpOption::Nop, ts, TcpOption::Nop, TcpOption::Nop, TcpOption::Sack(sack)],
                &[],
            ),
        ),
    ]
}

fn tcpdrill(bytes: &[u8]) -> u64 {
    let d = TcpDatagram::parse(bytes, Checksums::Verify).expect("valid");
    let mut acc =
        u64::from(d.tcp.seq.0) ^ u64::from(d.tcp.ack.0) ^ u64::from(d.tcp.window) ^ d.tcp.payload.len() as u64;
    for o in d.tcp.options.iter() {
        acc = acc.wrapping_add(match o.expect("valid") {
            TcpOption::Mss(v) => u64::from(v),
            TcpOption::Timestamps { tsval, tsecr } => u64::from(tsval ^ tsecr),
            TcpOption::Sack(b) => b.as_slice().len() as u64,
            _ => 1,
        });
    }
    acc
}

fn pnet(bytes: &[u8]) -> u64 {
    use pnet_packet::tcp::{TcpOptionNumbers as N, TcpPacket};
    use pnet_packet::Packet;
    let ip = pnet_packet::ipv4::Ipv4Packet::new(bytes).expect("valid");
    assert!(ip.get_version() == 4 && usize::from(ip.get_total_length()) <= bytes.len());
    assert_eq!(pnet_packet::ipv4::checksum(&ip), ip.get_checksum());
    let seg = &bytes[usize::from(ip.get_header_length()) * 4..usize::from(ip.get_total_length())];
    let tcp = TcpPacket::new(seg).expect("valid");
    assert_eq!(pnet_packet::tcp::ipv4_checksum(&tcp, &ip.get_source(), &ip.get_destination()), tcp.get_checksum());
    let mut acc = u64::from(tcp.get_sequence())
        ^ u64::from(tcp.get_acknowledgement())
        ^ u64::from(tcp.get_window())
        ^ tcp.payload().len() as u64;
    for o in tcp.get_options_iter() {
        let p = o.payload();
        acc = acc.wrapping_add(match o.get_number() {
            N::MSS => u64::from(u16::from_be_bytes([p[0], p[1]])),
            N::TIMESTAMPS => {
                u64::from(u32::from_be_bytes([p[0], p[1], p[2], p[3]]) ^ u32::from_be_bytes([p[4], p[5], p[6], p[7]]))
            }
            N::SACK => (p.len() / 8) as u64,
            _ => 1,
        });
    }
    acc
}

fn etherparse(bytes: &[u8]) -> u64 {
    use etherparse::{Ipv4HeaderSlice, TcpHeaderSlice, TcpOptionElement as E};
    let ip = Ipv4HeaderSlice::from_slice(bytes).expect("valid");
    assert_eq!(ip.to_header().calc_header_checksum(), ip.header_checksum());
    let seg = &bytes[ip.slice().len()..usize::from(ip.total_len())];
    let tcp = TcpHeaderSlice::from_slice(seg).expect("valid");
    let payload = &seg[tcp.slice().len()..];
    assert_eq!(tcp.calc_checksum_ipv4(&ip, payload).unwrap(), tcp.checksum());
    let mut acc = u64::from(tcp.sequence_number())
        ^ u64::from(tcp.acknowledgment_number())
        ^ u64::from(tcp.window_size())
        ^ payload.len() as u64;
    for o in tcp.options_iterator() {
        acc = acc.wrapping_add(match o.expect("valid") {
            E::MaximumSegmentSize(v) => u64::from(v),
            E::Timestamp(a, b) => u64::from(a ^ b),
            E::SelectiveAcknowledgement(_, rest) => 1 + rest.iter().flatten().count() as u64,
            _ => 1,
        });
    }
    acc
}

fn bench(c: &mut Criterion) {
    let corpus = corpus();
    // The three must agree on every segment, or the comparison is meaningless.
    for (name, b) in &corpus {
        assert_eq!(tcpdrill(b), pnet(b), "{name}: pnet reads another value");
        assert_eq!(tcpdrill(b), etherparse(b), "{name}: etherparse reads another value");
    }
    type Parser = fn(&[u8]) -> u64;
    let parsers: [(&str, Parser); 3] = [("tcpdrill", tcpdrill), ("pnet_packet", pnet), ("etherparse", etherparse)];
    let mut g = c.benchmark_group("parse_validate");
    for (name, bytes) in &corpus {
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        for (who, f) in parsers {
            g.bench_with_input(BenchmarkId::new(who, name), bytes, |b, bytes| b.iter(|| f(black_box(bytes))));
        }
    }
    g.finish();
    let mut g = c.benchmark_group("parse_validate_mix");
    g.throughput(Throughput::Elements(corpus.len() as u64));
    for (who, f) in parsers {
        g.bench_function(who, |b| b.iter(|| corpus.iter().map(|(_, bytes)| f(black_box(bytes))).sum::<u64>()));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
