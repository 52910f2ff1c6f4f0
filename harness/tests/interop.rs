//! The reference stack as a real TCP: `tcpdrill serve`'s stack behind a TUN device, on the real clock, with the
//! Linux kernel of the same (fresh) network namespace as its peer through std sockets. Every byte must arrive
//! exactly once and in order (SHA-256 compared), over a perfect link and through the shim's loss, duplication
//! and reordering; both sides must close cleanly (FIN both ways, no RST, TIME-WAIT on Linux, the active closer).
//! Needs root (CAP_NET_ADMIN); skipped with the reason printed otherwise.

use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;
use tcpdrill::serve::{self, chargen_byte, ServeConfig, Served};
use tcpdrill_stack::sim::LinkConfig;

fn skip() -> bool {
    match tcpdrill::backend::linux::available() {
        Ok(()) => false,
        Err(why) => {
            println!("skipped: {why}");
            true
        }
    }
}

/// Where a run's capture goes: kept for a look when a test fails.
fn pcap(seed: u64) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("tcpdrill-interop-{}-{seed}.pcap", std::process::id()))
}

/// Seeds from here on are for the 100 MB transfers through loss, which are not captured.
const BIG_SEEDS: u64 = 1000;

/// Runs `f` on a thread in a fresh namespace where the stack is served with `link`, recording to [`pcap`] if the
/// link loses datagrams.
fn served<R: Send + 'static>(
    link: LinkConfig,
    seed: u64,
    f: impl FnOnce(&Served) -> R + Send + 'static,
) -> (R, serve::ServeStats) {
    // Captured through loss only, and not for the 100 MB transfers (`big_seed`): a quarter of a gigabyte of
    // capture each; their runs repeat from the seed with `tcpdrill connect --pcap` instead.
    let capture = (link.drop_permille > 0 && seed < BIG_SEEDS).then(|| pcap(seed));
    served_as(ServeConfig { link, seed, pcap: capture, ..ServeConfig::default() }, f)
}

/// Runs `f` on a thread in a fresh namespace where the stack is served as `cfg` says.
fn served_as<R: Send + 'static>(
    cfg: ServeConfig,
    f: impl FnOnce(&Served) -> R + Send + 'static,
) -> (R, serve::ServeStats) {
    std::thread::spawn(move || {
        tcpdrill::backend::linux::unshare_netns().expect("a namespace");
        let s = serve::start(cfg).expect("serving");
        let r = f(&s);
        (r, s.stop().expect("served without error"))
    })
    .join()
    .expect("no panic")
}

/// `n` bytes no two runs of which line up by accident (a counter through a multiplicative hash).
fn data(n: usize, seed: u64) -> Vec<u8> {
    (0..n as u64).map(|i| ((i.wrapping_add(seed)).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8).collect()
}

fn sha(b: &[u8]) -> String {
    Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect_timeout(&format!("192.0.2.2:{port}").parse().unwrap(), Duration::from_secs(10))
        .expect("the reference stack accepts");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
    s
}

/// The Linux side's TCP states towards port `port` of the stack (from /proc/thread-self/net/tcp: this thread's
/// namespace), as the kernel's state numbers.
fn linux_states(port: u16) -> Vec<u8> {
    // IPv4 addresses print as the u32 in host order: 192.0.2.2 is 020200C0 on a little-endian machine.
    linux_table(2, &format!("{:08X}:{port:04X}", u32::from_ne_bytes([192, 0, 2, 2])))
}

/// The states of Linux's connections from its port `port` to the stack (the server side of [`stack_as_client`]).
fn linux_states_from(port: u16) -> Vec<u8> {
    linux_table(1, &format!("{:08X}:{port:04X}", u32::from_ne_bytes([192, 0, 2, 1])))
        .into_iter()
        .filter(|&s| s != 10) // the listener
        .collect()
}

/// The state numbers of the rows of /proc/thread-self/net/tcp whose column `col` (1 local, 2 remote) is `addr`.
fn linux_table(col: usize, addr: &str) -> Vec<u8> {
    let table = std::fs::read_to_string("/proc/thread-self/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(col) == Some(&addr)).then(|| u8::from_str_radix(f[3], 16).unwrap_or(0))
        })
        .collect()
}

/// Sends `n` bytes to the sink, closes, and checks its report and the close (FIN both ways); the Linux side's
/// states towards the sink afterwards.
fn sink(s: &Served, n: usize, seed: u64) -> Vec<u8> {
    let d = data(n, seed);
    let mut c = connect(5001);
    c.write_all(&d).expect("the stack takes it all");
    c.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).expect("the stack closes its side");
    assert!(rest.is_empty(), "the sink sends nothing");
    let r = s.sinks.recv_timeout(Duration::from_secs(60)).expect("the sink reports");
    assert_eq!((r.bytes, r.sha256), (n as u64, sha(&d)), "every byte once, in order");
    drop(c);
    linux_states(5001)
}

/// Linux, the active closer, waits in TIME-WAIT (6 in the kernel's numbering), unless one of the stack's stray
/// RSTs (see [`no_rst`]) reached it there and ended it, as Linux lets a RST do (tcp_rfc1337=0, RFC 1337's
/// "TIME-WAIT assassination", which a reordering link makes possible).
fn time_wait(states: &[u8], stats: &serve::ServeStats) {
    assert!(
        states == [6] || (states.is_empty() && stats.rst[1] > 0),
        "Linux's states towards the sink: {states:?}, with {} stray RSTs",
        stats.rst[1]
    );
}

/// Echo, both directions at once: a writer thread and this reader.
fn echo(n: usize, seed: u64) {
    let d = data(n, seed);
    let c = connect(7);
    let mut w = c.try_clone().unwrap();
    let sent = d.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(&sent).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::with_capacity(n);
    (&c).read_to_end(&mut back).expect("the echo closes after the last byte");
    writer.join().unwrap();
    assert_eq!(back.len(), n, "as many bytes back as sent");
    assert!(back == d, "the same bytes back, in order");
}

fn chargen(n: usize) {
    let mut c = connect(19);
    let mut got = vec![0u8; n];
    c.read_exact(&mut got).expect("chargen keeps sending");
    let want: Vec<u8> = (0..n as u64).map(chargen_byte).collect();
    assert!(got == want, "RFC 864's pattern");
    c.shutdown(Shutdown::Both).unwrap();
}

/// No connection was reset: neither side sent a RST while it had the connection. A RST without ACK is an
/// answer to a segment for a connection its sender no longer has (RFC 9293 3.10.7.1), which a reordering link
/// makes when a stale duplicate arrives after the close: allowed, from either side.
fn no_rst(stats: &serve::ServeStats, seed: u64) {
    let [aborts, _, kernel_aborts, _] = stats.rst;
    assert_eq!((aborts, kernel_aborts), (0, 0), "RSTs (stack aborts, Linux's): see {}", pcap(seed).display());
}

#[test]
fn perfect_link() {
    if skip() {
        return;
    }
    let (states, stats) = served(LinkConfig::perfect(Duration::ZERO), 1, |s| {
        let states = sink(s, 16 << 20, 1);
        echo(100_000_000, 2);
        states
    });
    assert_eq!(states, [6], "Linux, the active closer, waits in TIME-WAIT on a perfect link");
    assert_eq!(stats.accepted, 2);
    assert_eq!(stats.link[1], 0, "no loss asked for");
    no_rst(&stats, 1);
    let _ = std::fs::remove_file(pcap(1));
}

/// Chargen until Linux has read enough; Linux then closes with data unread, which it answers with a RST
/// (RFC 2525 2.17), so no RST count here.
#[test]
fn chargen_pattern() {
    if skip() {
        return;
    }
    let _ = served(LinkConfig::perfect(Duration::ZERO), 3, |_| chargen(1 << 20));
}

/// Loss per mille, 0.5% duplicated, up to 2 ms of delay each way (which reorders).
fn lossy(loss: u16) -> LinkConfig {
    LinkConfig { drop_permille: loss, dup_permille: 5, min_delay: Duration::ZERO, max_delay: Duration::from_millis(2) }
}

/// Through `loss` per mille with duplication and reordering: the stack as the client of a Linux echo server,
/// 100 MB each way at once, then Linux as the client (a 4 MiB sink transfer, then a 2 MiB echo both ways at once).
/// The first is what `tcpdrill connect 192.0.2.1:7 --bytes 100M --echo --loss L --duplicate 0.5 --jitter 2 --seed S`
/// does from the command line with a Linux echo server in the namespace (README), where a run repeats its losses
/// of new data from the seed.
fn lossy_link(loss: u16, seed: u64) {
    if skip() {
        return;
    }
    let t0 = std::time::Instant::now();
    let n = 100_000_000;
    let big = BIG_SEEDS + seed;
    let (report, stats) = stack_client(lossy(loss), big, n);
    client_closed_cleanly(&report, n);
    assert!(stats.link[1] > 0 && stats.link[2] > 0, "the shim dropped and duplicated: {:?}", stats.link);
    no_rst(&stats, big);
    eprintln!("loss {}%: 100 MB each way in {:.1} s (seed {big})", f64::from(loss) / 10.0, t0.elapsed().as_secs_f64());
    let (states, stats) = served(lossy(loss), seed, move |s| {
        let states = sink(s, 4 << 20, seed);
        echo(2 << 20, seed + 1);
        states
    });
    time_wait(&states, &stats);
    assert!(stats.link[1] > 0 && stats.link[2] > 0, "the shim dropped and duplicated: {:?}", stats.link);
    no_rst(&stats, seed);
    let _ = std::fs::remove_file(pcap(seed));
}

/// 1% loss (RACK-TLP, RFC 8985, finds most losses within a round trip; README: "The reference stack as a real
/// TCP").
#[test]
fn lossy_link_1_percent() {
    lossy_link(10, 11);
}

/// 5% loss.
#[test]
fn lossy_link_5_percent() {
    lossy_link(50, 12);
}

/// 10% loss.
#[test]
fn lossy_link_10_percent() {
    lossy_link(100, 13);
}

/// Two runs with one seed lose the same segments of new data (the shim's decisions are keyed by what a segment
/// is, not by when it comes); another seed loses others.
#[test]
fn lossy_runs_repeat_from_their_seed() {
    if skip() {
        return;
    }
    let run = |seed: u64| {
        let (_, stats) = served(lossy(50), seed, move |s| sink(s, 1 << 20, 1));
        let _ = std::fs::remove_file(pcap(seed));
        // Towards the stack: Linux's data, cut at the MSS whatever the timing.
        let mut l: Vec<_> = stats.losses.into_iter().filter(|l| l.0 == 0).collect();
        l.sort();
        l
    };
    let first = run(21);
    assert!(first.len() > 10, "5% of some 720 segments: {first:?}");
    let again = run(21);
    let only = |a: &[serve::shim::Loss], b: &[serve::shim::Loss]| -> Vec<serve::shim::Loss> {
        a.iter().filter(|x| !b.contains(x)).copied().collect()
    };
    assert!(
        again == first,
        "the same seed, the same losses: only in the first {:?}, only in the second {:?}",
        only(&first, &again),
        only(&again, &first)
    );
    assert_ne!(run(22), first, "another seed, other losses");
}

/// A Linux echo server on `port` of the namespace this thread is in: a thread per connection, which writes
/// back what it reads and closes after the client's FIN.
fn linux_echo_server(port: u16) {
    let l = std::net::TcpListener::bind(("0.0.0.0", port)).expect("a Linux listener");
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            std::thread::spawn(move || {
                let mut back = c.try_clone().unwrap();
                let _ = std::io::copy(&mut c, &mut back);
                let _ = back.shutdown(Shutdown::Write);
            });
        }
    });
}

/// The stack's client sends `n` bytes of the pattern to a Linux echo server (both directions at once), half-closes,
/// reads the echo until Linux's FIN and closes: its report, and the serving's statistics.
fn stack_client(link: LinkConfig, seed: u64, n: u64) -> (serve::ClientReport, serve::ServeStats) {
    let ((report, linux), stats) = served(link, seed, move |s| {
        linux_echo_server(7007);
        let r = s.connect("192.0.2.1:7007".parse().unwrap(), serve::Payload::Pattern(n));
        let report = r.recv_timeout(Duration::from_secs(900)).expect("the client reports");
        // Linux, the passive closer, goes through LAST-ACK to CLOSED once the stack's ACK of its FIN is in.
        let t0 = std::time::Instant::now();
        while !linux_states_from(7007).is_empty() && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        (report, linux_states_from(7007))
    });
    assert!(linux.is_empty(), "Linux's connection is closed, not {linux:?}");
    (report, stats)
}

/// Every byte of the pattern sent and echoed back in order, and the stack, the active closer, in TIME-WAIT.
fn client_closed_cleanly(report: &serve::ClientReport, n: u64) {
    let want: Vec<u8> = (0..n).map(chargen_byte).collect();
    assert_eq!(report.error, None, "{report:?}");
    assert_eq!((report.sent, &report.sent_sha256), (n, &sha(&want)), "the pattern sent");
    assert_eq!((report.received, &report.received_sha256), (n, &sha(&want)), "all of it back, once, in order");
    assert_eq!(report.state_after_close, Some(tcpdrill_stack::TcpState::TimeWait), "the active closer");
}

/// The reference stack as the client, 100 MB each way at once over a perfect link.
#[test]
fn stack_as_client() {
    if skip() {
        return;
    }
    let (report, stats) = stack_client(LinkConfig::perfect(Duration::ZERO), 4, 100_000_000);
    client_closed_cleanly(&report, 100_000_000);
    no_rst(&stats, 4);
    let _ = std::fs::remove_file(pcap(4));
}

/// 1,000 connections from Linux clients held open at once, each echoing 4 KB: 50 threads of 20 connections.
#[test]
fn a_thousand_connections_at_once() {
    if skip() {
        return;
    }
    let ((), stats) = served(LinkConfig::perfect(Duration::ZERO), 5, |_| {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(50));
        let threads: Vec<_> = (0..50u64)
            .map(|t| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let conns: Vec<TcpStream> = (0..20).map(|_| connect(7)).collect();
                    // Every connection is open before any closes.
                    barrier.wait();
                    for (i, mut c) in conns.iter().enumerate() {
                        c.write_all(&data(4096, t * 20 + i as u64)).unwrap();
                    }
                    for (i, c) in conns.into_iter().enumerate() {
                        let mut back = vec![0u8; 4096];
                        (&c).read_exact(&mut back).expect("the echo");
                        assert!(back == data(4096, t * 20 + i as u64), "each connection's own bytes back");
                        c.shutdown(Shutdown::Write).unwrap();
                        let mut rest = Vec::new();
                        (&c).read_to_end(&mut rest).expect("the stack closes its side");
                        assert!(rest.is_empty());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("a client thread");
        }
    });
    assert_eq!(stats.accepted, 1000);
    assert!(stats.peak_connections >= 1000, "{} at once", stats.peak_connections);
    no_rst(&stats, 5);
    let _ = std::fs::remove_file(pcap(5));
}

/// 10,000 SYNs from spoofed addresses at 10 a millisecond (the shim swallows the stack's answers) while a Linux
/// client connects and echoes: the SYN queue fills (a backlog of 1024 admits 1,025, Linux's `>` test), the
/// client's SYN gets a cookie (tcp_syncookies=1, Linux's default) and its connection opens from the cookie's
/// ACK. The stack's state stays bounded by the queue: at most 1,025 connections in SYN-RECEIVED, whatever the
/// flood's size.
#[test]
fn syn_flood_meets_syn_cookies() {
    if skip() {
        return;
    }
    let flood = serve::Flood { syns: 10_000, port: 7, per_ms: 10 };
    let cfg = ServeConfig { flood: Some(flood), seed: 6, ..ServeConfig::default() };
    let (echoed, stats) = served_as(cfg, |_| {
        // A quarter of the flood in: the queue is full.
        std::thread::sleep(Duration::from_millis(250));
        let d = data(64 << 10, 6);
        let mut c = connect(7);
        c.write_all(&d).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).expect("the echo, and the stack's FIN");
        // Past the flood's end (1 s) before stopping, so that all of it was offered.
        std::thread::sleep(Duration::from_millis(1200));
        back == d
    });
    assert!(echoed, "the client's bytes came back");
    assert_eq!(stats.flood[0], 10_000, "the whole flood was injected");
    assert!(stats.flood[1] >= 1025, "the stack answered the flood: {:?}", stats.flood);
    assert!(stats.cookies[0] > 0 && stats.cookies[1] >= 1, "a cookie opened a connection: {:?}", stats.cookies);
    assert_eq!(stats.peak_syn_received, 1025, "the SYN queue's bound");
    assert!(stats.peak_connections <= 1027, "{} connections at once", stats.peak_connections);
}
