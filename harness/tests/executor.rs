//! The executor must catch what is wrong: each case is a script with one deliberate error, and the test checks
//! the verdict and packetdrill's wording of the failure. Plus skips for what the reference backend cannot run.

use std::path::Path;
use tcpdrill::report::{run_text, BackendKind};
use tcpdrill::run::{RunOptions, Verdict};
use tcpdrill::script::ParseOptions;
use tcpdrill_stack::wire::{Checksums, TcpDatagram, WireError};

mod common;
use common::{run_reference as run_whole, LISTENER, PASSIVE};

/// Runs `tail` after an established passive open.
fn run(tail: &str) -> Verdict {
    run_whole(&format!("{PASSIVE}{tail}"))
}

/// The failure text of a whole script that must fail.
fn failure_whole(text: &str) -> String {
    match run_whole(text) {
        Verdict::Fail(f) => f.text(),
        other => panic!("expected a failure for {text:?}, got {other:?}"),
    }
}

fn failure(tail: &str) -> String {
    failure_whole(&format!("{PASSIVE}{tail}"))
}

/// Runs `tail` after an established passive open; the verdict and the bytes of the last segment injected.
fn last_injected(tail: &str) -> (Verdict, Vec<u8>) {
    let text = format!("{PASSIVE}{tail}");
    let r = run_text(
        Path::new("t.pkt"),
        "t.pkt",
        &text,
        BackendKind::Reference,
        &ParseOptions::default(),
        &RunOptions::default(),
    );
    let o = r.outcome.expect("parses");
    let injected = o
        .trace
        .entries
        .iter()
        .filter_map(|e| match e {
            tcpdrill::run::TraceEntry::Inbound { bytes, .. } => Some(bytes.clone()),
            _ => None,
        })
        .next_back()
        .expect("an inbound packet");
    (o.verdict, injected)
}

/// A listener with two handshakes half done, from ports 40001 and 40002.
const TWO_SYNS: &str = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0 bind(3, ..., ...) = 0
+0 listen(3, 2) = 0
+0 < 40001>8080 S 0:0(0) win 65535 <mss 1460>
+0 > 8080>40001 S. 0:0(0) ack 1 <...>
+0 < 40002>8080 S 0:0(0) win 65535 <mss 1460>
+0 > 8080>40002 S. 0:0(0) ack 1 <...>
";

#[test]
fn the_base_script_passes() {
    assert!(matches!(run(""), Verdict::Pass));
}

#[test]
fn wrong_ack_is_reported_like_packetdrill() {
    let f = failure("+0 write(4, ..., 10) = 10\n+0 > P. 1:11(10) ack 2\n");
    assert!(
        f.starts_with(
            "t.pkt:10: error handling packet: live packet field tcp_ack_seq: expected: 2 (0x2) vs actual: 1 (0x1)"
        ),
        "{f}"
    );
    assert!(f.contains("script packet:  0.100000 P. 1:11(10) ack 2"), "{f}");
    assert!(f.contains("actual packet:  0.100000 P. 1:11(10) ack 1"), "{f}");
}

#[test]
fn wrong_flags_seq_len_window_options() {
    assert!(failure("+0 write(4, ..., 10) = 10\n+0 > . 1:11(10) ack 1\n")
        .contains("live packet field tcp_psh: expected: 0 (0x0) vs actual: 1 (0x1)"));
    assert!(failure("+0 write(4, ..., 10) = 10\n+0 > P. 2:12(10) ack 1\n")
        .contains("live packet field tcp_seq: expected: 2 (0x2) vs actual: 1 (0x1)"));
    // A short segment is the start of a merged packet (packetdrill's default); what comes next here is its
    // retransmission, which does not continue it.
    assert!(failure("+0 write(4, ..., 10) = 10\n+0 > P. 1:12(11) ack 1\n").contains(
        "segment 2 does not continue segment 1 of this packet: tcp_seq: expected: 11 (0xb) vs actual: 1 (0x1)"
    ));
    assert!(failure("+0 write(4, ..., 10) = 10\n+0 < . 1:1(0) ack 11 win 65535\n+0 > P. 1:12(11) ack 1\n")
        .contains("live packet payload: expected 11 bytes vs actual 10 bytes"));
    assert!(failure("+0 write(4, ..., 10) = 10\n+0 > P. 1:10(9) ack 1\n")
        .contains("live packet payload: expected 9 bytes vs actual 10 bytes"));
    assert!(failure_whole(&format!("--strict_segments\n{PASSIVE}+0 write(4, ..., 10) = 10\n+0 > P. 1:12(11) ack 1\n"))
        .contains("live packet payload: expected 11 bytes vs actual 10 bytes"));
    assert!(failure("+0 write(4, ..., 10) = 10\n+0 > P. 1:11(10) ack 1 win 1\n")
        .contains("live packet field tcp_window: expected: 1"));
    assert!(failure("+0 write(4, ..., 10) = 10\n+0 > P. 1:11(10) ack 1 <nop,nop,nop,nop>\n")
        .contains("live packet field tcp_options: expected: <nop,nop,nop,nop> vs actual: <>"));
    // nplab's DSCP checks the six bits; with `ecn ect01`, either ECT as well. The reference stack sends TOS 0.
    assert!(failure("+0 write(4, ..., 10) = 10\n+0 > (dscp ef) P. 1:11(10) ack 1\n")
        .contains("live packet field dscp: expected: 46 (0x2e) vs actual: 0 (0x0)"));
    assert!(failure("+0 write(4, ..., 10) = 10\n+0 > (dscp 0x0, ecn ect01) P. 1:11(10) ack 1\n")
        .contains("ip_ecn: expected: ect01 vs actual: noecn"));
    // The ACE digit is AE, CWR and ECE together: 1 is ECE, which the stack does not send here.
    assert!(failure("+0 write(4, ..., 10) = 10\n+0 > P.1 1:11(10) ack 1\n").contains("tcp_ece"));
}

#[test]
fn late_packet_is_a_timing_error() {
    // The data goes out at 0.1; the script expects it at 0.5.
    let f = failure("+0 write(4, ..., 10) = 10\n+.4 > P. 1:11(10) ack 1\n");
    assert!(f.contains("timing error: expected outbound packet at 0.500000 sec but happened at 0.100000 sec; tolerance 0.050000 sec"), "{f}");
}

#[test]
fn missing_packet_times_out() {
    let f = failure("+0 > P. 1:11(10) ack 1\n");
    assert!(f.contains("Timed out waiting for packet"), "{f}");
}

#[test]
fn unexpected_packet_fails_unlike_packetdrill() {
    let f = failure("+0 write(4, ..., 10) = 10\n");
    assert!(f.contains("unexpected outbound packet"), "{f}");
    assert!(f.contains("actual packet: 0.100000 P. 1:11(10) ack 1"), "{f}");
}

#[test]
fn syscall_result_and_errno_checked() {
    assert!(failure("+0 write(4, ..., 10) = 9\n+0 > P. 1:11(10) ack 1\n").contains("write returned 10 but expected 9"));
    assert!(failure("+0 close(9) = 0\n").contains("close returned -1 EBADF (Bad file descriptor) but expected 0"));
    assert!(failure("+0 close(9) = -1 ENOTCONN\n").contains("errno EBADF (Bad file descriptor) but expected ENOTCONN"));
    assert!(failure("+0 getsockopt(4, SOL_TCP, TCP_MAXSEG, [1000], [4]) = 0\n")
        .contains("getsockopt returned value 1460 but expected [1000]"));
    assert!(failure("+0 tcp_state() = TCP_CLOSE_WAIT\n")
        .contains("tcp_state: expected TCP_CLOSE_WAIT but the connection is in TCP_ESTABLISHED"));
}

#[test]
fn blocking_call_timing_and_never_returning() {
    // read() blocks until data arrives 0.2 s after the handshake, but the script says it returns after 0.1 s (both
    // ends of `+0...0.1` count from the previous event, at 0.1).
    let f = failure("+0...0.1 read(4, ..., 10) = 5\n+.2 < P. 1:6(5) ack 1 win 65535\n+0 > . 1:1(0) ack 6\n");
    assert!(f.contains("timing error: expected read to return at 0.200000 sec but happened at 0.300000 sec"), "{f}");
    // packetdrill gives a call still blocked one second after the last event (run_system_call.c, syscalls_free).
    let f = failure("+0...0.2 read(4, ..., 10) = 5\n");
    assert!(f.contains("runtime error: exiting while a blocking system call is in progress (read)"), "{f}");
    // A connect() that gives up at 3 s returns within that second after an event at 2.5 s, not after one at 1.9 s.
    let head = "0 `sysctl -q net.ipv4.tcp_syn_retries=1 net.ipv4.tcp_syn_linear_timeouts=0`
+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
0...3 connect(3, ..., ...) = -1 ETIMEDOUT (Connection timed out)
0 > S 0:0(0) <...>
1 > S 0:0(0) <...>
";
    assert!(matches!(run_whole(&format!("{head}2.5 tcp_state() = TCP_SYN_SENT\n")), Verdict::Pass));
    let f = failure_whole(&format!("{head}1.9 tcp_state() = TCP_SYN_SENT\n"));
    assert!(f.contains("exiting while a blocking system call is in progress (connect)"), "{f}");
}

#[test]
fn skips_what_the_reference_backend_cannot_run() {
    for (tail, reason) in [
        (
            "+0 `ip link show`\n",
            "needs the linux backend (shell command at line 9: `ip link show` has no meaning without a shell)",
        ),
        (
            "+0 %{ assert tcpi_ca_state == TCP_CA_Open }%\n",
            "tcpi_ca_state (%{ }% block at line 9) is not in the reference backend's TCP_INFO",
        ),
        (
            "+0 `sysctl -w net.inet.tcp.msl=30000`\n",
            "line 9: net.inet.tcp.msl=30000 is FreeBSD's, and Linux has no sysctl of that meaning",
        ),
        (
            "+0 `sysctl -q net.ipv4.tcp_fastopen=1`\n",
            "the script sets net.ipv4.tcp_fastopen=1 (line 9): net.ipv4.tcp_fastopen has no knob in the reference \
             stack: TCP Fast Open (RFC 7413) is not modelled",
        ),
        (
            "+0 `sysctl -q net.ipv4.tcp_congestion_control=cubic`\n",
            "the script sets net.ipv4.tcp_congestion_control=cubic (line 9): bad value \"cubic\" for \
             net.ipv4.tcp_congestion_control: expected reno (the reference stack's only congestion control)",
        ),
        ("+0 < udp (10)\n", "UDP packets (line 9) are parsed but no backend runs them yet"),
        ("+0 < icmp unreachable frag_needed mtu 1200\n", "ICMP (line 9) is not modelled by the reference backend"),
        ("+0 > icmp unreachable port_unreachable\n", "expecting an ICMP packet (line 9) is not supported yet; injecting one is"),
        (
            "+0 < ipv4 192.0.2.9 > 192.168.0.1: S 0:0(0) win 1\n",
            "IP-in-IP encapsulation (line 9) is parsed but no backend runs it yet",
        ),
        ("+0 < gre: S 0:0(0) win 1\n", "GRE encapsulation (line 9) is parsed but no backend runs it yet"),
        ("+0 < encap psp spi 1 S 0:0(0) win 1\n", "PSP encapsulation (line 9) is parsed but no backend runs it"),
        ("+0 < S 0:0(0) win 1 /udp(1>2)\n", "TCP over UDP (line 9) is parsed but no backend runs it yet"),
        (
            "+0 recvmsg(4, {msg_name(...)=..., msg_iov(1)=[{..., 9}], msg_flags=0}, MSG_ERRQUEUE) = 9\n",
            "reading the error queue (MSG_ERRQUEUE, line 9) is not supported yet",
        ),
        (
            "+0 recvmsg(4, {msg_name(...)=..., msg_iov(1)=[{..., 9}], msg_flags=MSG_EOR}, 0) = 9\n",
            "checking the msg_flags recvmsg returns (line 9) is not supported yet",
        ),
        (
            "+0 sendmsg(4, {msg_name(...)=..., msg_iov(1)=[{..., 9}], msg_flags=0, msg_control=[{cmsg_level=SOL_SOCKET, cmsg_type=SO_MARK, cmsg_data=1}]}, 0) = 9\n",
            "control messages (msg_control, line 9) are not supported yet",
        ),
        (
            "+0 setsockopt(4, SOL_SOCKET, SO_LISTENQLIMIT, [1], 4) = 0\n",
            "SO_LISTENQLIMIT (line 9) is FreeBSD's; the reference backend has Linux's socket API",
        ),
        (
            "+0 setsockopt(4, SOL_TCP, TCP_CORK, [1], 4) = 0\n",
            "socket option TCP_CORK (line 9) is not modelled by the reference backend",
        ),
        (
            "+0 getsockopt(4, SOL_TCP, TCP_FASTOPEN, [0], [4]) = 0\n",
            "socket option TCP_FASTOPEN (line 9) is not modelled by the reference backend",
        ),
        (
            "+0 sendto(4, ..., 10, MSG_FASTOPEN, ..., ...) = 10\n",
            "TCP Fast Open (line 9) is not modelled by the reference backend",
        ),
    ] {
        match run(tail) {
            Verdict::Skipped(r) => assert_eq!(r, reason),
            other => panic!("{tail:?}: expected a skip, got {other:?}"),
        }
    }
}

/// packetdrill's ip_info on outbound packets: the TOS byte and the TTL are compared (the reference stack sends
/// TOS 0 and TTL 64, as Linux does by default), and a mismatch names the field.
#[test]
fn ip_fields_are_checked_outbound() {
    let ack = |ip: &str| format!("+0 < P. 1:2(1) ack 1 win 65535\n+0 > {ip} . 1:1(0) ack 2\n");
    // 0 and 255 are packetdrill's TTL_CHECK_NONE: not checked.
    for ip in ["(ttl 64)", "(tos 0x0)", "(ttl 255)", "(ttl 0)"] {
        assert!(matches!(run(&ack(ip)), Verdict::Pass), "{ip}");
    }
    for (ip, why) in [
        ("(ttl 63)", "live packet field ttl: expected: 63 (0x3f) vs actual: 64 (0x40)"),
        ("(tos 0x4)", "live packet field tos: expected: 4 (0x4) vs actual: 0 (0x0)"),
    ] {
        let f = failure(&ack(ip));
        assert!(f.contains(why), "{ip}: {f}");
    }
}

/// And inbound: the TOS byte and the TTL go into the injected header.
#[test]
fn ip_fields_are_set_inbound() {
    let (v, bytes) = last_injected("+0 < (tos 0x10) P. 1:2(1) ack 1 win 65535\n+0 > . 1:1(0) ack 2\n");
    assert!(matches!(v, Verdict::Pass), "{v:?}");
    assert_eq!(bytes[1], 0x10, "TOS byte");
    let (_, bytes) = last_injected("+0 < (ttl 7) P. 1:2(1) ack 1 win 65535\n+0 > . 1:1(0) ack 2\n");
    assert_eq!(bytes[8], 7, "TTL");
    // Unset (or 0) is packetdrill's 255. (`[ect01]` inbound is a parse error, as packetdrill's semantic check
    // has it: tests/grammar/reject-ect01-inbound.pkt.)
    for line in ["+0 < P. 1:2(1) ack 1 win 65535\n", "+0 < (ttl 0) P. 1:2(1) ack 1 win 65535\n"] {
        let (_, bytes) = last_injected(&format!("{line}+0 > . 1:1(0) ack 2\n"));
        assert_eq!(bytes[8], 255, "{line}");
    }
    // nplab's DSCP: the six bits, ECN zero.
    let (_, bytes) = last_injected("+0 < (dscp ef) P. 1:2(1) ack 1 win 65535\n+0 > . 1:1(0) ack 2\n");
    assert_eq!(bytes[1], 46 << 2, "DSCP EF");
}

#[test]
fn python_blocks_see_the_reference_stacks_tcp_info() {
    // Each block sees its own snapshot: the handshake done, ten segments of window, the peer's MSS.
    let ok = "+0 %{ assert (tcpi_state, tcpi_snd_cwnd, tcpi_snd_mss) == (1, 10, 1460), tcpi_snd_cwnd }%\n";
    assert!(matches!(run(ok), Verdict::Pass), "{:?}", run(ok));
    let f = failure("+0 %{ assert tcpi_snd_cwnd == 4, tcpi_snd_cwnd }%\n");
    assert!(f.contains("AssertionError: 10"), "{f}");
}

#[test]
fn sysctl_lines_set_the_stack() {
    // With tcp_syn_retries=1 and no linear timeouts, a SYN is retransmitted once (1 s) and connect fails at 3 s.
    let text = "0 `sysctl -q net.ipv4.tcp_syn_retries=1 net.ipv4.tcp_syn_linear_timeouts=0`
+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
0...3 connect(3, ..., ...) = -1 ETIMEDOUT (Connection timed out)
0 > S 0:0(0) <...>
1 > S 0:0(0) <...>
3 close(3) = 0
";
    let r = run_text(
        Path::new("t.pkt"),
        "t.pkt",
        text,
        BackendKind::Reference,
        &ParseOptions::default(),
        &RunOptions::default(),
    );
    let v = r.outcome.unwrap().verdict;
    assert!(matches!(v, Verdict::Pass), "{v:?}");
}

#[test]
fn tolerance_scale_widens_timing() {
    // The data goes out at 0.1 but the script says 0.11: 10 ms off, outside the 4 ms tolerance, inside 3x.
    let text = format!("{PASSIVE}+0 write(4, ..., 10) = 10\n+.01 > P. 1:11(10) ack 1\n");
    let run_with = |scale: f64| {
        let opts = RunOptions { tolerance_scale: scale, ..RunOptions::default() };
        run_text(Path::new("t.pkt"), "t.pkt", &text, BackendKind::Reference, &ParseOptions::default(), &opts)
            .outcome
            .unwrap()
            .verdict
    };
    assert!(matches!(run_with(1.0), Verdict::Fail(_)));
    assert!(matches!(run_with(3.0), Verdict::Pass));
}

#[test]
fn lowercase_p_accepts_psh_either_way_but_uppercase_insists() {
    // The reference stack sets PSH on the last segment of a write.
    assert!(matches!(run("+0 write(4, ..., 100) = 100\n+0 > p. 1:101(100) ack 1\n"), Verdict::Pass));
    assert!(matches!(run("+0 write(4, ..., 100) = 100\n+0 > P. 1:101(100) ack 1\n"), Verdict::Pass));
    let f = failure("+0 write(4, ..., 100) = 100\n+0 > . 1:101(100) ack 1\n");
    assert!(f.contains("live packet field tcp_psh: expected: 0 (0x0) vs actual: 1 (0x1)"), "{f}");
}

#[test]
fn bytes_option_reaches_the_stack_as_written() {
    let (_, injected) = last_injected("+0 < P. 1:11(10) ack 1 win 65535 <bytes 0x6300,nop,nop>\n");
    // IPv4 header 20 bytes, TCP header 20 bytes, then the options area exactly as written.
    assert_eq!(&injected[40..44], &[0x63, 0x00, 0x01, 0x01]);
    assert_eq!(injected[32] >> 4, 6, "data offset covers the 4 option bytes");
}

#[test]
fn bad_csum_sends_a_wrong_checksum_the_stack_drops() {
    // With bad_csum the data is dropped: no ACK comes, and the script's expected ACK makes the run fail.
    let f = failure("+0 < P. 1:11(10) ack 1 win 65535 bad_csum\n+0~+.2 > . 1:1(0) ack 11\n");
    assert!(f.contains("Timed out waiting for packet"), "{f}");
    let (verdict, injected) =
        last_injected("+0 < P. 1:11(10) ack 1 win 65535 bad_csum\n+.1 ioctl(4, SIOCINQ, [0]) = 0\n");
    assert!(matches!(verdict, Verdict::Pass), "{verdict:?}");
    assert_eq!(
        TcpDatagram::parse(&injected, Checksums::Verify).err(),
        Some(WireError::BadTcpChecksum),
        "the checksum on the wire is wrong"
    );
    assert!(TcpDatagram::parse(&injected, Checksums::Ignore).is_ok(), "and only the checksum");
}

#[test]
fn blocking_end_time_shifts_with_a_relative_start() {
    // packetdrill: in `+.1...0.2` both ends count from the previous event (5 s here), so connect() returns at 5.2.
    let script = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+5 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+.1...0.2 connect(3, ..., ...) = 0
+0 > S 0:0(0) <...>
+.1 < S. 0:0(0) ack 1 win 65535 <mss 1460>
+0 > . 1:1(0) ack 1
";
    assert!(matches!(run_whole(script), Verdict::Pass));
    // Absolute ends stay absolute.
    let absolute = script.replace("+.1...0.2 connect", "5.1...5.3 connect");
    let f = failure_whole(&absolute);
    assert!(f.contains("expected connect to return at 5.300000"), "{f}");
}

#[test]
fn isn_extensions_compare_learned_isns() {
    assert!(matches!(run_whole(&format!("{TWO_SYNS}+0 tcp_isn_distinct() = 1\n")), Verdict::Pass));
    let f = failure_whole(&format!("{TWO_SYNS}+0 tcp_isn_distinct() = 0\n"));
    assert!(f.contains("tcp_isn_distinct() = 1 but the script expects 0"), "{f}");
    // With one connection there is nothing to compare: an error, not a pass.
    let f = failure("+0 tcp_isn_distinct() = 1\n");
    assert!(f.contains("needs two connections"), "{f}");
    let f = failure("+0 tcp_isn_beyond_previous() = 1\n");
    assert!(f.contains("no earlier incarnation"), "{f}");
}

#[test]
fn inbound_acks_are_relative_to_their_own_connections_isn() {
    // Two handshakes in flight; each third ACK (ack 1) must complete its own connection.
    let text = format!(
        "{TWO_SYNS}+.1 < 40001>8080 . 1:1(0) ack 1 win 65535
+0 tcp_state({{local_port=8080, remote_port=40001}}) = TCP_ESTABLISHED
+0 < 40002>8080 . 1:1(0) ack 1 win 65535
+0 tcp_state({{local_port=8080, remote_port=40002}}) = TCP_ESTABLISHED
"
    );
    assert!(matches!(run_whole(&text), Verdict::Pass));
}

#[test]
fn divergence_names_the_first_line_where_two_runs_part() {
    use tcpdrill::report::{divergence, run_text_with, Divergence};
    let text = format!("{PASSIVE}+0 close(4) = 0\n+0 > F. 1:1(0) ack 1\n+.1 < F. 1:1(0) ack 2 win 65535\n+0 > . 2:2(0) ack 2\n+1 < R 2:2(0) win 0\n+0 tcp_state() = TCP_CLOSE\n");
    let go = |knobs: &[(String, String)]| {
        run_text_with(
            Path::new("t.pkt"),
            "t.pkt",
            &text,
            BackendKind::Reference,
            &ParseOptions::default(),
            &RunOptions::default(),
            knobs,
        )
    };
    let default = go(&[]);
    let rfc1337 = go(&[("net.ipv4.tcp_rfc1337".to_string(), "1".to_string())]);
    assert_eq!(divergence(&text, &default, &default), Divergence::None);
    match divergence(&text, &default, &rfc1337) {
        Divergence::At { line, source, first, second } => {
            assert_eq!(line, 14);
            assert_eq!(source, "+0 tcp_state() = TCP_CLOSE");
            assert!(first.contains("tcp_state() = TCP_CLOSE -> TCP_CLOSE"), "{first}");
            assert!(second.contains("expected TCP_CLOSE but the connection is in TCP_TIME_WAIT"), "{second}");
        }
        Divergence::None => panic!("tcp_rfc1337=1 keeps TIME-WAIT: the runs must differ"),
    }
}

#[test]
fn tsval_is_checked_within_the_tolerance_in_ticks() {
    // With --tcp_ts_tick_usecs the stack's TSval is checked (relative to its first one) within packetdrill's
    // tolerance: 4 ms at 1 ms per tick allows 4 ticks either way, not 50.
    let base = "--tcp_ts_tick_usecs=1000
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 100 ecr 0>
+0 > S. 0:0(0) ack 1 <mss 1460,sackOK,TS val 100 ecr 100>
+.1 < . 1:1(0) ack 1 win 65535 <nop,nop,TS val 200 ecr 100>
+0 accept(3, ..., ...) = 4
+0 write(4, ..., 10) = 10
";
    // 100 ms after the SYN-ACK at 1 ms per tick the stack's TSval is 200.
    let exact = format!("{base}+0 > P. 1:11(10) ack 1 <nop,nop,TS val 200 ecr 200>\n");
    assert!(matches!(run_whole(&exact), Verdict::Pass));
    let near = format!("{base}+0 > P. 1:11(10) ack 1 <nop,nop,TS val 203 ecr 200>\n");
    assert!(matches!(run_whole(&near), Verdict::Pass));
    let f = failure_whole(&format!("{base}+0 > P. 1:11(10) ack 1 <nop,nop,TS val 250 ecr 200>\n"));
    assert!(f.contains("live packet field tcp_options"), "{f}");
}

#[test]
fn inbound_numbers_after_a_nonzero_syn_are_relative_to_the_scripts_isn() {
    // packetdrill (socket.h, remote_seq_script_to_live_offset): a SYN's numbers are as written, every other
    // segment's count from the script's ISN; the SYN-ACK's ACK of it is absolute, later ACKs relative.
    let text = &format!(
        "{LISTENER}+0 < S 1000:1000(0) win 65535 <mss 1460>
+0 > S. 0:0(0) ack 1001 <...>
+.1 < . 1:1(0) ack 1 win 65535
+0 accept(3, ..., ...) = 4
+0 < P. 1:11(10) ack 1 win 65535
+0 > . 1:1(0) ack 11
"
    );
    assert!(matches!(run_whole(text), Verdict::Pass), "{}", failure_whole(&text.replace("ack 11\n", "ack 1011\n")));
    let r = run_text(
        Path::new("t.pkt"),
        "t.pkt",
        text,
        BackendKind::Reference,
        &ParseOptions::default(),
        &RunOptions::default(),
    );
    let seqs: Vec<u32> = r
        .outcome
        .expect("parses")
        .trace
        .entries
        .iter()
        .filter_map(|e| match e {
            tcpdrill::run::TraceEntry::Inbound { bytes, .. } => {
                Some(TcpDatagram::parse(bytes, Checksums::Verify).expect("valid").tcp.seq.0)
            }
            _ => None,
        })
        .collect();
    assert_eq!(seqs, [1000, 1001, 1001], "live sequence numbers of the SYN, the ACK and the data");
    // A SYN in ESTABLISHED does not change the script's ISN: the challenge ACK's number stays relative to 1000.
    let syn = text.replace(
        "+0 > . 1:1(0) ack 11\n",
        "+0 > . 1:1(0) ack 11\n+.1 < S 5000:5000(0) win 65535 <mss 1460>\n+0 > . 1:1(0) ack 11\n",
    );
    assert!(matches!(run_whole(&syn), Verdict::Pass), "{}", failure_whole(&syn.replace("ack 11\n", "ack 1\n")));
}

#[test]
fn a_null_buffer_is_efault() {
    // Linux: tcp_sendmsg / tcp_recvmsg fail to copy from or to NULL (measured on 6.18 by the oracle case).
    assert!(matches!(run("+0 write(4, NULL, 1000) = -1 EFAULT (Bad address)\n"), Verdict::Pass));
    assert!(matches!(run("+0 write(4, NULL, 0) = 0\n"), Verdict::Pass));
    let read =
        "+0 < P. 1:11(10) ack 1 win 65535\n+0 > . 1:1(0) ack 11\n+0 read(4, NULL, 10) = -1 EFAULT (Bad address)\n";
    assert!(matches!(run(read), Verdict::Pass), "{}", failure(&read.replace("EFAULT (Bad address)", "EAGAIN")));
    assert!(failure("+0 write(4, NULL, 1000) = 1000\n").contains("EFAULT"));
}

#[test]
fn header_options_tcpdrill_cannot_honour_skip_the_script_with_a_reason() {
    for (header, why) in [
        ("--non_fatal=packet", "every mismatch fails"),
        ("--local_ip=10.0.0.1", "has address 192.168.0.1"),
        ("--remote_ip=198.51.100.1", "has address 192.0.2.1"),
        ("--mss=1000", "--mss"),
    ] {
        match run_whole(&format!("{header}\n{PASSIVE}")) {
            Verdict::Skipped(r) => assert!(r.contains(why), "{header}: {r}"),
            other => panic!("{header}: {other:?}"),
        }
    }
    // The defaults packetdrill's runner passes are honoured as they are.
    assert!(matches!(run_whole(&format!("--local_ip=192.168.0.1\n--remote_ip=192.0.2.1\n{PASSIVE}")), Verdict::Pass));
}

#[test]
fn tcp_state_of_a_connection_that_never_was_says_so() {
    let f = failure("+0 tcp_state({local_port=8080, remote_port=44444}) = TCP_CLOSE\n");
    assert!(
        f.contains("no such connection: no segment between 192.168.0.1:8080 (the stack) and 192.0.2.1:44444"),
        "{f}"
    );
    // Addresses name any four-tuple; the script's own connection, named in full, is established.
    let full = "+0 tcp_state({local_ip=\"192.168.0.1\", remote_ip=\"192.0.2.1\", local_port=8080, remote_port=40123}) = TCP_ESTABLISHED\n";
    assert!(matches!(run(full), Verdict::Pass), "{}", failure(&full.replace("ESTABLISHED", "CLOSE")));
    let f = failure("+0 tcp_state({remote_ip=\"198.51.100.7\"}) = TCP_ESTABLISHED\n");
    assert!(f.contains("no such connection") && f.contains("198.51.100.7:40123"), "{f}");
    // A connection that existed and ended is CLOSED.
    let closed = "+0 close(4) = 0\n+0 > F. 1:1(0) ack 1\n+0 < R 1:1(0) win 0\n+0 tcp_state() = TCP_CLOSE\n";
    assert!(matches!(run(closed), Verdict::Pass), "{}", failure(closed));
}

#[test]
fn traces_show_what_the_stack_really_sent() {
    // A retransmitted SYN-ACK carries the first one's sequence number, 0 in script terms.
    let text = &format!(
        "{LISTENER}+0 < S 0:0(0) win 65535 <mss 1460>
+0 > S. 0:0(0) ack 1 <...>
+1 > S. 1:1(0) ack 1 <...>
"
    );
    let f = failure_whole(text);
    assert!(f.contains("tcp_seq: expected: 1 (0x1) vs actual: 0 (0x0)"), "{f}");
    assert!(f.contains("actual packet:  1.000000 S. 0:0(0) ack 1"), "{f}");
    // A packet of another connection shows its ports, as the script would write them.
    let f = failure("+0 write(4, ..., 10) = 10\n+0 > 8080>40124 P. 1:11(10) ack 1\n");
    assert!(f.contains("tcp_dst_port: expected: 40124") && f.contains("actual packet:  0.100000 8080>40123 P."), "{f}");
}

#[test]
fn a_descriptor_is_never_closed_under_a_blocked_call() {
    let f = failure("+0...1 read(4, ..., 10) = 10\n+.1 close(4) = 0\n+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 4\n");
    assert!(f.contains("close() of a descriptor on which read from line 9 is still blocked"), "{f}");
}

#[test]
fn a_syn_that_reopens_time_wait_starts_the_numbers_afresh_on_both_sides() {
    // tcpdrill's new incarnations: the SYN-ACK gives the stack's new ISN, the SYN the script's; after them both
    // sides count from 1 again, as on a first connection.
    let reopen = "+0 close(4) = 0
+0 > F. 1:1(0) ack 1
+.1 < F. 1:1(0) ack 2 win 65535
+0 > . 2:2(0) ack 2
+0 tcp_state() = TCP_TIME_WAIT
+1 < S 50000:50000(0) win 65535 <mss 1460>
+0 > S. 0:0(0) ack 50001 <...>
+.1 < . 1:1(0) ack 1 win 65535
+0 accept(3, ..., ...) = 4
+0 < P. 1:11(10) ack 1 win 65535
+0 > . 1:1(0) ack 11
";
    assert!(matches!(run(reopen), Verdict::Pass), "{}", failure(reopen));
}

/// An IPv6 flow label on a `>` line names one the stack chose (packetdrill's mapping): the reference stack
/// leaves the label 0, which fails such a line as unmarked; a label of 0 in the script is not checked.
#[test]
fn ipv6_flow_labels_are_checked_as_packetdrill_maps_them() {
    let base = "--ip_version=ipv6\n0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 bind(3, ..., ...) = 0\n\
                +0 listen(3, 1) = 0\n+0 < S 0:0(0) win 65535 <mss 1440>\n";
    let f = failure_whole(&format!("{base}+0 > (flowlabel 0x1) S. 0:0(0) ack 1 <...>\n"));
    assert!(f.contains("live packet field flowlabel: expected: 0x1 (any label) vs actual: unmarked (0)"), "{f}");
    assert!(matches!(run_whole(&format!("{base}+0 > (flowlabel 0x0) S. 0:0(0) ack 1 <...>\n")), Verdict::Pass));
}
