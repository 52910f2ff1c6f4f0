//! Every time form of packetdrill's grammar, each row with the result packetdrill's rules give for it, read from
//! its source: run.c (`adjust_relative_event_times` for the window, `verify_time` for the tolerance,
//! `check_event_time` for events that run late) and run_system_call.c for blocking calls. The rows that can be
//! run on a real clock without a margin problem also run under packetdrill itself in `tests/oracle/` (ranges,
//! tolerances, blocking calls); the rest are rows of the same rules with numbers packetdrill's clock could not
//! hit exactly. One row differs on purpose: a call without `...` that only later events could complete fails
//! here with the reason, where packetdrill hangs until its runner kills it (README, "Where tcpdrill differs").

use tcpdrill::run::Verdict;
use tcpdrill::script::{parse, ParseOptions};

mod common;
use common::{run_reference as run, HANDSHAKE as PASSIVE};

fn verdict_name(v: &Verdict) -> String {
    match v {
        Verdict::Pass => "pass".into(),
        Verdict::Fail(f) => format!("fail: {}", f.headline),
        Verdict::Skipped(r) => format!("skip: {r}"),
    }
}

/// The event's window (start, end) in seconds when relative times count from 5 s.
fn window(time: &str) -> (f64, f64) {
    let text = format!("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n{time} > S 0:0(0) <...>\n");
    let text = if time.contains("...") { text.replace("> S 0:0(0) <...>", "close(3) = 0") } else { text };
    let s = parse("t.pkt", &text, &ParseOptions::default()).unwrap_or_else(|e| panic!("{time}: {}", e.render_plain()));
    let (a, b) = s.events[1].time.window(5_000_000);
    (a as f64 / 1e6, if b == i64::MAX { f64::INFINITY } else { b as f64 / 1e6 })
}

#[test]
fn windows_are_packetdrills() {
    // (form, packetdrill's window with the previous event at 5 s)
    let rows: &[(&str, (f64, f64))] = &[
        ("7", (7.0, 7.0)),           // absolute
        ("+0.25", (5.25, 5.25)),     // relative: from the previous event
        ("*", (5.0, f64::INFINITY)), // any time from the previous event on
        ("6~7", (6.0, 7.0)),         // absolute range
        ("+0.5~+0.6", (5.5, 5.6)),   // relative range: one offset moves both ends
        ("6...7", (6.0, 7.0)),       // blocking call, absolute
        ("+0.1...0.3", (5.1, 5.3)),  // blocking call: the end counts from the same event as the start
        ("+0...0", (5.0, 5.0)),      // a blocking call that returns at once
    ];
    for (form, want) in rows {
        assert_eq!(window(form), *want, "{form}");
    }
}

#[test]
fn forms_packetdrill_does_not_have_are_errors() {
    // parser.y: `time '~' time | '+' time '~' '+' time`, and `ELLIPSIS time` with no sign.
    for form in ["+1~2", "1~+2", "+1...+2", "0...+1"] {
        let text = format!("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n{form} close(3) = 0\n");
        let text = if form.contains('~') { text.replace("close(3) = 0", "> S 0:0(0) <...>") } else { text };
        let e = parse("t.pkt", &text, &ParseOptions::default()).expect_err(form);
        assert!(e.render_plain().contains("t.pkt:2:"), "{form}: located: {}", e.render_plain());
    }
}

/// An active open whose SYN the stack retransmits 1 s after the first (initial RTO 1 s, RFC 6298 2.1), with
/// `line` expecting the retransmission.
fn syn_retransmission(header: &str, line: &str) -> String {
    let text = format!(
        "{header}0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
+0 > S 0:0(0) <...>
{line} > S 0:0(0) <...>
"
    );
    verdict_name(&run(&text))
}

#[test]
fn outbound_times_and_tolerances_are_packetdrills() {
    // (header, time of the retransmission line, packetdrill's verdict for a packet that comes at 1.0 s)
    // Tolerance: max(--tolerance_usecs = 4 ms, --tolerance_percent = 12.5 % of the gap since the previous event).
    let rows: &[(&str, &str, bool)] = &[
        ("", "+1", true),
        ("", "1", true),
        ("", "*", true),
        ("", "+0.5~+1.5", true),
        ("", "+0.5~+0.6", false), // [0.5, 0.6] + 62.5 ms: 1.0 is well out
        ("", "0.5~1.5", true),
        ("", "0.5~0.6", false),
        ("", "+0.9", true),                          // 0.9 + 112.5 ms
        ("", "+0.8", false),                         // 0.8 + 100 ms
        ("", "+1.1", true),                          // 1.1 - 137.5 ms
        ("", "+1.2", false),                         // 1.2 - 150 ms
        ("--tolerance_percent=0\n", "+0.999", true), // 1 ms off, 4 ms allowed
        ("--tolerance_percent=0\n", "+0.99", false), // 10 ms off
        ("--tolerance_percent=0\n--tolerance_usecs=20000\n", "+0.99", true),
    ];
    for (header, line, pass) in rows {
        let got = syn_retransmission(header, line);
        assert_eq!(got == "pass", *pass, "{header}{line}: {got}");
        if !pass {
            assert!(got.contains("timing error"), "{line}: {got}");
        }
    }
}

#[test]
fn blocking_calls_are_packetdrills() {
    // (events after the handshake's last ACK at 0.1 s, packetdrill's verdict)
    let rows: &[(&str, bool)] = &[
        // accept() returns at once: the connection is established.
        ("+0 accept(3, ..., ...) = 4\n", true),
        ("+0...0 accept(3, ..., ...) = 4\n", true),
        // read() blocks until data comes 0.2 s later; the end counts from the same event as the start.
        ("+0 accept(3, ..., ...) = 4\n+0...0.2 read(4, ..., 10) = 10\n+.2 < P. 1:11(10) ack 1 win 65535\n+0 > . 1:1(0) ack 11\n", true),
        ("+0 accept(3, ..., ...) = 4\n+0...0.3 read(4, ..., 10) = 10\n+.2 < P. 1:11(10) ack 1 win 65535\n+0 > . 1:1(0) ack 11\n", false),
        ("+0 accept(3, ..., ...) = 4\n0.1...0.3 read(4, ..., 10) = 10\n+.2 < P. 1:11(10) ack 1 win 65535\n+0 > . 1:1(0) ack 11\n", true),
        // The return time's tolerance is 12.5 % of the call's own duration (2 s: 250 ms), not of the last gap.
        ("+0 accept(3, ..., ...) = 4\n+0...2.2 read(4, ..., 10) = 10\n+2 < P. 1:11(10) ack 1 win 65535\n+0 > . 1:1(0) ack 11\n", true),
        // Without `...` a call that blocks stops the script, as on packetdrill's main thread: the data it
        // waits for can never come (packetdrill hangs; tcpdrill fails with the reason).
        ("+0 accept(3, ..., ...) = 4\n+0 read(4, ..., 10) = 10\n+.2 < P. 1:11(10) ack 1 win 65535\n", false),
    ];
    for (tail, pass) in rows {
        let got = verdict_name(&run(&format!("{PASSIVE}{tail}")));
        assert_eq!(got == "pass", *pass, "{tail}: {got}");
    }
}

#[test]
fn a_call_blocked_in_place_returns_when_the_stack_completes_it_and_later_events_run_late() {
    // connect() without `...` blocks the script until the stack gives up (one retransmission 1 s after the SYN,
    // then 2 s more: ETIMEDOUT at 3 s); the SYNs it sent meanwhile are there to be read, with their times.
    let head = "0 `sysctl -q net.ipv4.tcp_syn_retries=1`
+0 `sysctl -q net.ipv4.tcp_syn_linear_timeouts=0`
+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 connect(3, ..., ...) = -1 ETIMEDOUT (Connection timed out)
0 > S 0:0(0) <...>
1 > S 0:0(0) <...>
";
    assert_eq!(verdict_name(&run(head)), "pass");
    // An event due while the call blocked runs when it returns, late: packetdrill's timing error.
    let late = head.replace("0 > S 0:0(0) <...>\n", "+0 > S 0:0(0) <...>\n");
    let got = verdict_name(&run(&late));
    assert!(got.contains("timing error: expected outbound packet at 3.000000 sec but happened at 0.000000"), "{got}");
    let got = verdict_name(&run(&head.replace("0 > S 0:0(0) <...>\n", "1 close(3) = 0\n")));
    assert!(got.contains("timing error: expected system call start at 1.000000 sec but happened at 3.000000"), "{got}");
}

#[test]
fn a_call_nothing_can_complete_fails_with_a_reason() {
    let got = verdict_name(&run(&format!("{PASSIVE}+0 accept(3, ..., ...) = 4\n+0 read(4, ..., 10) = 10\n")));
    assert!(got.contains("read blocks the script: nothing the stack does by itself can complete it"), "{got}");
}
