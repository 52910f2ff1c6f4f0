//! The raw backend on a testbed of its own (two namespaces and a veth pair, `tcpdrill::backend::testbed`): a
//! probe without an agent against a stack already listening, the refusals that keep the harness's own kernel
//! from answering the stack, and the host untouched by all of it. Needs root and `ip`; skipped with the reason
//! printed otherwise. (The suite itself runs on raw as the `raw::` cases of the conformance tests.)

use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tcpdrill::agent::AgentClient;
use tcpdrill::backend::raw::{with_link, RawConfig};
use tcpdrill::backend::testbed;
use tcpdrill::report::{run_text, BackendKind, ScriptResult};
use tcpdrill::run::{RunOptions, Verdict};
use tcpdrill::script::ParseOptions;

fn raw() -> BackendKind {
    BackendKind::all().find(|b| b.name() == "raw").expect("in the registry")
}

fn run(text: &str) -> ScriptResult {
    run_text(Path::new("t.pkt"), "t.pkt", text, raw(), &ParseOptions::default(), &RunOptions::default())
}

fn verdict(r: &ScriptResult) -> &Verdict {
    &r.outcome.as_ref().expect("the script parses").verdict
}

fn skip_unless_possible() -> bool {
    match testbed::available() {
        Ok(()) => false,
        Err(why) => {
            println!("skipped: {why}");
            true
        }
    }
}

/// A listener on `at` (the stack's address, port 8080), made through the testbed's agent by the test itself:
/// the session must stay open for the listener to live, so it is returned.
fn listen_on(cfg: &RawConfig, at: &str) -> AgentClient {
    let (addr, token) = cfg.agent.clone().expect("the testbed has an agent");
    let mut a = AgentClient::connect(addr, &token, Duration::from_secs(5)).expect("the agent takes its token");
    let family = if at.starts_with('[') { 6 } else { 4 };
    let fd = a.request(json!({"op": "socket", "family": family})).expect("socket")["ok"].as_i64().expect("an fd");
    for req in [json!({"op": "bind", "fd": fd, "addr": at}), json!({"op": "listen", "fd": fd, "backlog": 8})] {
        let r = a.request(req.clone()).expect("answered");
        assert_eq!(r["ok"], 0, "{req} answered {r}");
    }
    a
}

/// SYN to a listening port, its SYN-ACK's options, then a RST inside the window but not at RCV.NXT and the
/// challenge ACK RFC 5961 3.2 requires: no socket call, so no agent needed.
const PROBE: &str = "\
0 < S 0:0(0) win 65535 <mss 1460,sackOK,nop,nop,nop,wscale 7>
+0 > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 10>
+0.01 < R 1000:1000(0) win 0
+0 > . 1:1(0) ack 1
";

#[test]
fn probes_a_listening_stack_without_an_agent() {
    if skip_unless_possible() {
        return;
    }
    testbed::run(1500, |cfg| {
        let no_agent = RawConfig { agent: None, ..cfg.clone() };
        // Nothing listens yet: the stack answers the SYN with a RST, and the probe fails on it.
        let r = with_link(no_agent.clone(), || run(PROBE));
        assert!(matches!(verdict(&r), Verdict::Fail(_)), "{:?}", verdict(&r));
        let _listener = listen_on(cfg, "192.168.0.1:8080");
        let r = with_link(no_agent.clone(), || run(PROBE));
        assert!(matches!(verdict(&r), Verdict::Pass), "{:?}", verdict(&r));
        // A script with calls needs the agent, and says so.
        let r = with_link(no_agent, || run("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"));
        match verdict(&r) {
            Verdict::Skipped(why) => assert!(why.contains("agent"), "{why}"),
            v => panic!("expected a skip, got {v:?}"),
        }
    })
    .expect("a testbed");
}

#[test]
fn the_probe_runs_over_ipv6_with_neighbour_discovery() {
    if skip_unless_possible() {
        return;
    }
    testbed::run(1520, |cfg| {
        let _listener = listen_on(cfg, "[fd3d:a0b:17d6::1]:8080");
        let opts = RunOptions { variant: Some(tcpdrill::backend::IpVersion::V6), ..RunOptions::default() };
        let no_agent = RawConfig { agent: None, ..cfg.clone() };
        // MSS 1460 from the link's MTU of 1520 less 60 bytes of headers.
        let r = with_link(no_agent, || {
            run_text(Path::new("t.pkt"), "t.pkt", PROBE, raw(), &ParseOptions::default(), &opts)
        });
        assert!(matches!(verdict(&r), Verdict::Pass), "{:?}", verdict(&r));
    })
    .expect("a testbed");
}

#[test]
fn refuses_to_start_where_this_kernel_would_answer() {
    if skip_unless_possible() {
        return;
    }
    // Inside the testbed's harness namespace only (this closure runs there): the impersonated address held
    // here, then forwarding on.
    testbed::run(1500, |_| {
        let ip = |args: &[&str]| assert!(Command::new("ip").args(args).status().expect("ip").success());
        ip(&["addr", "add", "192.0.2.1/32", "dev", "lo"]);
        let r = run(PROBE);
        let Err(e) = &r.outcome else { panic!("expected a refusal") };
        assert!(e.contains("holds 192.0.2.1"), "{e}");
        ip(&["addr", "del", "192.0.2.1/32", "dev", "lo"]);
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").expect("this namespace's own sysctl");
        let r = run(PROBE);
        let Err(e) = &r.outcome else { panic!("expected a refusal") };
        assert!(e.contains("ip_forward=1"), "{e}");
    })
    .expect("a testbed");
}

const SYSCTLS: &[&str] = &[
    "net/ipv4/tcp_rfc1337",
    "net/ipv4/tcp_syn_retries",
    "net/ipv4/tcp_timestamps",
    "net/ipv4/ip_forward",
    "net/ipv6/conf/all/forwarding",
    "net/core/somaxconn",
];

/// The host's links, addresses, routes and neighbours, without what changes by itself: address lifetimes and
/// route expiry counting down, and neighbour states (REACHABLE goes STALE on its own).
fn host_snapshot() -> String {
    let mut s = String::new();
    for args in [&["-o", "link"][..], &["-o", "addr"][..], &["route"][..], &["-6", "route"][..], &["neigh"][..]] {
        let out = Command::new("ip").args(args).output().expect("ip runs");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let mut words = line.split_whitespace().peekable();
            while let Some(w) = words.next() {
                if matches!(w, "valid_lft" | "preferred_lft" | "expires") {
                    words.next();
                    continue;
                }
                let state = ["REACHABLE", "STALE", "DELAY", "PROBE", "FAILED", "INCOMPLETE", "NOARP", "PERMANENT"];
                if args[0] == "neigh" && state.contains(&w) {
                    continue;
                }
                s.push_str(w);
                s.push(' ');
            }
            s.push('\n');
        }
    }
    for k in SYSCTLS {
        s.push_str(&format!("{k}={}", std::fs::read_to_string(format!("/proc/sys/{k}")).unwrap_or_default()));
    }
    s
}

#[test]
fn host_is_untouched() {
    if skip_unless_possible() {
        return;
    }
    let before = host_snapshot();
    // Sysctls set through the agent in the stack's namespace, sockets, a connection refused and one set up.
    let text = "0 `sysctl -q net.ipv4.tcp_rfc1337=1 net.ipv4.tcp_syn_retries=2 net.ipv4.tcp_timestamps=0`
+0 `sysctl -q net.core.somaxconn=7`
+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
0...0.1 connect(3, ..., ...) = -1 ECONNREFUSED (Connection refused)
0 > S 0:0(0) <...>
0.1 < R. 0:0(0) ack 1 win 0
+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 4
+0 setsockopt(4, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0 bind(4, ..., ...) = 0
+0 listen(4, 1) = 0
+0 < S 0:0(0) win 32792 <mss 1000,nop,wscale 7>
+0 > S. 0:0(0) ack 1 <...>
+0.1 < . 1:1(0) ack 1 win 257
+0 accept(4, ..., ...) = 5
";
    for ipv6 in [false, true] {
        let opts = RunOptions { variant: ipv6.then_some(tcpdrill::backend::IpVersion::V6), ..RunOptions::default() };
        let r = testbed::run(if ipv6 { 1520 } else { 1500 }, move |_| {
            run_text(Path::new("t.pkt"), "t.pkt", text, raw(), &ParseOptions::default(), &opts)
        })
        .expect("a testbed");
        let v = r.outcome.expect("parses").verdict;
        assert!(matches!(v, Verdict::Pass), "ipv6 {ipv6}: {v:?}");
    }
    assert_eq!(host_snapshot(), before, "the host's interfaces, addresses, routes, neighbours or sysctls changed");
}

/// The reference stack served on a TAP device with its own call endpoint (`testbed::run_served`) is what the
/// raw backend tests there: with one knob of the served stack flipped (`serve --sysctl`), the script that reads
/// it fails over the wire, at the line that reads it, while it passes in-process and on the stack as served by
/// default. (The whole suite runs over it as the conformance tests' `served::` cases.)
#[test]
fn the_served_stack_is_the_one_tested() {
    if skip_unless_possible() {
        return;
    }
    let script = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/timers/keepalive-default-two-hours.pkt"
    ))
    .expect("the script");
    let text = script.clone();
    let r = testbed::run_served(move |_| run(&text)).expect("a served testbed");
    assert!(matches!(verdict(&r), Verdict::Pass), "{:?}", verdict(&r));
    let knobs = vec![("net.ipv4.tcp_keepalive_time".to_string(), "100".to_string())];
    let r = testbed::run_served_with(knobs, move |_| run(&script)).expect("a served testbed");
    match verdict(&r) {
        Verdict::Fail(f) => {
            assert!(f.text().contains("getsockopt returned value 100 but expected [7200]"), "{}", f.text())
        }
        other => panic!("expected the keep-alive default's line to fail, got {other:?}"),
    }
}

/// A session of the served stack's call endpoint sees only its own descriptors, and when it ends its sockets
/// are reset and closed, what their connections left destroyed (a TIME-WAIT) and the knobs it set put back, so
/// that the next session finds the stack as the last one did.
#[test]
fn served_sessions_leave_nothing_behind() {
    if skip_unless_possible() {
        return;
    }
    // The active close leaves the served stack in TIME-WAIT for 60 s; the session ends right after.
    const CLOSE: &str = "\
0    socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0   bind(3, ..., ...) = 0
+0   listen(3, 1) = 0
+0   < S 0:0(0) win 65535 <mss 1460>
+0   > S. 0:0(0) ack 1 <...>
+.01 < . 1:1(0) ack 1 win 65535
+0   accept(3, ..., ...) = 4
+0   close(4) = 0
+0   > F. 1:1(0) ack 1
+.01 < F. 1:1(0) ack 2 win 65535
+0   > . 2:2(0) ack 2
+0   tcp_state() = TCP_TIME_WAIT
";
    let r = testbed::run_served(move |cfg| {
        let first = run(CLOSE);
        let (addr, token) = cfg.agent.clone().expect("the endpoint");
        let mut a = AgentClient::connect(addr, &token, Duration::from_secs(5)).expect("the endpoint takes its token");
        let hello_os = a.os().to_string();
        // The last session's connection: gone. (The raw backend impersonates port 40123, as packetdrill.)
        let state = a
            .request(json!({"op": "tcp_state", "local": "192.168.0.1:8080", "remote": "192.0.2.1:40123"}))
            .expect("answered");
        let closed = a.request(json!({"op": "close", "fd": 3})).expect("answered");
        let old = a.request(json!({"op": "sysctl", "name": "net.ipv4.tcp_fin_timeout", "value": "5"})).expect("set");
        drop(a);
        let mut b = AgentClient::connect(addr, &token, Duration::from_secs(5)).expect("a second session");
        let now = b.request(json!({"op": "sysctl", "name": "net.ipv4.tcp_fin_timeout"})).expect("read");
        (first, hello_os, state, closed, old, now)
    })
    .expect("a served testbed");
    let (first, os, state, closed, old, now) = r;
    assert!(matches!(verdict(&first), Verdict::Pass), "{:?}", verdict(&first));
    assert_eq!(os, "tcpdrill_ref");
    assert_eq!(state["value"], 7, "TCP_CLOSE (no connection): {state}");
    assert_eq!(closed["name"], "EBADF", "a descriptor of another session's: {closed}");
    assert_eq!(old["value"], "60");
    assert_eq!(now["value"], "60", "the first session's knob went back");
}
