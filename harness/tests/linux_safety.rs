//! The linux backend never changes anything outside the namespaces it creates: the host's interfaces,
//! addresses, routes and TCP sysctls are the same before and after scripts that create a TUN device, set sysctls
//! and open connections. Skipped, with the reason printed, where namespaces cannot be created.

use std::path::Path;
use std::process::Command;
use tcpdrill::report::{run_file, run_text, BackendKind};
use tcpdrill::run::{RunOptions, Verdict};
use tcpdrill::script::ParseOptions;

const SYSCTLS: &[&str] = &[
    "net/ipv4/tcp_rfc1337",
    "net/ipv4/tcp_syn_retries",
    "net/ipv4/tcp_syncookies",
    "net/ipv4/tcp_timestamps",
    "net/ipv4/ip_forward",
    "net/core/somaxconn",
];

fn host_snapshot() -> String {
    let mut s = String::new();
    for args in [&["-o", "link"][..], &["-o", "addr"][..], &["route"][..], &["-6", "route"][..]] {
        let out = Command::new("ip").args(args).output().expect("ip runs");
        s.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    for k in SYSCTLS {
        s.push_str(&format!("{k}={}", std::fs::read_to_string(format!("/proc/sys/{k}")).unwrap_or_default()));
    }
    s
}

#[test]
fn host_is_untouched() {
    if let Err(why) = tcpdrill::backend::linux::available() {
        println!("skipped: {why}");
        return;
    }
    let before = host_snapshot();
    // A script that changes the very sysctls checked above, inside its namespace.
    let text = "0 `sysctl -q net.ipv4.tcp_rfc1337=1 net.ipv4.tcp_syn_retries=2 net.ipv4.tcp_timestamps=0`
+0 `sysctl -q net.ipv4.tcp_syncookies=2 net.core.somaxconn=7 net.ipv4.ip_forward=1`
+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
0...0.1 connect(3, ..., ...) = -1 ECONNREFUSED (Connection refused)
0 > S 0:0(0) <...>
0.1 < R. 0:0(0) ack 1 win 0
";
    let r = run_text(
        Path::new("t.pkt"),
        "t.pkt",
        text,
        BackendKind::Linux,
        &ParseOptions::default(),
        &RunOptions::default(),
    );
    let v = r.outcome.expect("parses").verdict;
    assert!(matches!(v, Verdict::Pass), "{v:?}");
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts");
    for s in ["handshake/passive-open.pkt", "handshake/active-open.pkt", "reset/syn-to-closed-port.pkt"] {
        let r = run_file(&scripts.join(s), s, BackendKind::Linux, &ParseOptions::default(), &RunOptions::default());
        assert!(matches!(r.outcome.as_ref().map(|o| &o.verdict), Ok(Verdict::Pass)), "{s} failed on linux");
    }
    assert_eq!(host_snapshot(), before, "the host's interfaces, routes or sysctls changed");
}
