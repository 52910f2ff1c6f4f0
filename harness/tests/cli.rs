//! The `tcpdrill` command as a user runs it: exit statuses (README, "Exit status"), files and folders alike,
//! errors located in the script, and bad input that must neither pass silently nor hang.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn tcpdrill(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tcpdrill")).args(args).output().expect("the binary runs")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A fresh folder of its own for each test.
fn folder(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tcpdrill-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(dir: &Path, name: &str, body: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

mod common;
use common::PASSIVE;

#[test]
fn exit_statuses() {
    let d = folder("exit");
    let empty = d.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = empty.display().to_string();
    // Nothing selected: 3, for run and check alike.
    for cmd in ["run", "check"] {
        let o = tcpdrill(&[cmd, &e]);
        assert_eq!(code(&o), 3, "{cmd} on an empty folder: {}", text(&o));
        assert!(text(&o).contains("no .pkt script in"), "{}", text(&o));
    }
    // A path that does not exist: 2.
    let o = tcpdrill(&["run", &d.join("nope.pkt").display().to_string()]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    // Pass: 0; failure: 1.
    let good = write(&d, "good.pkt", PASSIVE.as_bytes());
    assert_eq!(code(&tcpdrill(&["run", &good])), 0);
    let bad = write(&d, "bad.pkt", format!("{PASSIVE}+0 write(4, ..., 10) = 10\n+0 > P. 1:11(10) ack 2\n").as_bytes());
    let o = tcpdrill(&["run", &bad]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    // Every script skipped: 4 (a %{ }% block reads what the reference stack's TCP_INFO lacks).
    let skipped = folder("skipped");
    write(&skipped, "py.pkt", format!("{PASSIVE}+0 %{{ assert tcpi_ca_state == 0 }}%\n").as_bytes());
    let o = tcpdrill(&["run", &skipped.display().to_string()]);
    assert_eq!(code(&o), 4, "{}", text(&o));
    assert!(text(&o).contains("every script was skipped"), "{}", text(&o));
    // Bad arguments: 2.
    assert_eq!(code(&tcpdrill(&["run", "--timeout", "0", &good])), 2);
    assert_eq!(code(&tcpdrill(&["run", "--backend", "bsd", &good])), 2);
}

#[test]
fn check_takes_folders_as_run_does() {
    let d = folder("check");
    write(&d, "a.pkt", PASSIVE.as_bytes());
    std::fs::create_dir_all(d.join("sub")).unwrap();
    write(&d.join("sub"), "b.pkt", PASSIVE.as_bytes());
    let o = tcpdrill(&["check", &d.display().to_string()]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(text(&o).matches(": ok (").count(), 2, "{}", text(&o));
    write(&d.join("sub"), "c.pkt", b"0 socket(..., SOCK_STREEM, IPPROTO_TCP) = 3\n");
    let o = tcpdrill(&["check", &d.display().to_string()]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(text(&o).contains("c.pkt:1:"), "located: {}", text(&o));
}

#[test]
fn header_option_typos_are_located_errors() {
    let d = folder("options");
    let f = write(&d, "t.pkt", format!("--tso=of\n{PASSIVE}").as_bytes());
    let o = tcpdrill(&["run", &f]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(text(&o).contains("t.pkt:1:1") && text(&o).contains("did you mean --tso=off?"), "{}", text(&o));
}

#[test]
fn non_utf8_bytes_in_a_comment_are_read_as_packetdrill_reads_them() {
    let d = folder("latin1");
    // "// café" in Latin-1: 0xe9 is not UTF-8.
    let mut body = b"// caf\xe9: a comment written in Latin-1\n".to_vec();
    body.extend_from_slice(PASSIVE.as_bytes());
    let f = write(&d, "latin1.pkt", &body);
    let o = tcpdrill(&["run", &f]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    // Outside a comment such a byte is an error on its line, not a file-level one.
    let mut body = PASSIVE.as_bytes().to_vec();
    body.extend_from_slice(b"+0 close(4\xe9) = 0\n");
    let f = write(&d, "latin1-bad.pkt", &body);
    let o = tcpdrill(&["check", &f]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(text(&o).contains("latin1-bad.pkt:9:"), "{}", text(&o));
}

#[test]
fn decode_reads_tcpdump_output_and_reports_bad_lines() {
    // A SYN 192.0.2.1:8080 > 192.168.0.1:40000 as `tcpdump -x` prints it, then a line of Latin-1 garbage.
    let input = b"12:00:00.000000 IP 192.0.2.1.8080 > 192.168.0.1.40000: Flags [S], length 0
\t0x0000:  4500 0028 0000 4000 4006 b7c6 c000 0201
\t0x0010:  c0a8 0001 1f90 9c40 0000 0000 0000 0000
\t0x0020:  5002 2000 910f 0000
caf\xe9
";
    let mut child = Command::new(env!("CARGO_BIN_EXE_tcpdrill"))
        .args(["decode", "--ignore-checksums"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(text(&o).contains("192.0.2.1:8080 > 192.168.0.1:40000 S 0:0(0)"), "{}", text(&o));
    assert!(text(&o).contains("line 5:"), "the bad line is reported: {}", text(&o));
}

#[test]
fn a_huge_wait_fails_at_the_time_limit_on_a_real_clock() {
    if let Err(why) = tcpdrill::backend::linux::available() {
        eprintln!("skipped: {why}");
        return;
    }
    let d = folder("timeout");
    let f = write(&d, "wait.pkt", b"0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+99999999999 close(3) = 0\n");
    let started = std::time::Instant::now();
    let o = tcpdrill(&["run", "--backend", "linux", "--timeout", "2", &f]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(text(&o).contains("ran past its time limit of 2 s (--timeout)"), "{}", text(&o));
    // Not a speed check: a guard that the run stopped at its limit instead of sleeping for 3,000 years.
    assert!(started.elapsed().as_secs() < 60, "it stopped at the limit");
}

#[test]
fn non_utf8_bytes_in_a_command_are_an_error_at_the_byte() {
    let d = folder("latin1-cmd");
    let mut body = b"0 `echo caf\xe9`\n".to_vec();
    body.extend_from_slice(b"+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n");
    let f = write(&d, "cmd.pkt", &body);
    let o = tcpdrill(&["check", &f]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(text(&o).contains("cmd.pkt:1:12") && text(&o).contains("not UTF-8"), "{}", text(&o));
}

/// `mutants-report` reads a cargo-mutants output folder and the explanations; without a run it says what to do.
#[test]
fn mutants_report_from_a_run_and_without_one() {
    let d = folder("mutants");
    let none = tcpdrill(&["mutants-report", d.to_str().unwrap()]);
    assert_eq!(code(&none), 2);
    assert!(text(&none).contains("run cargo mutants first"), "{}", text(&none));
    write(
        &d,
        "outcomes.json",
        br#"{"outcomes": [{"scenario": {"Mutant": {"name": "stack/src/isn.rs:67:9: replace IsnGenerator::isn -> u32 with 0",
            "file": "stack/src/isn.rs", "function": {"function_name": "IsnGenerator::isn"}}}, "summary": "MissedMutant"}]}"#,
    );
    write(
        &d,
        "mutants.json",
        br#"[{"name": "stack/src/isn.rs:67:9: replace IsnGenerator::isn -> u32 with 0"}, {"name": "another"}]"#,
    );
    let ex = write(&d, "explained.md", b"| where | why |\n|---|---|\n");
    let out = d.join("MUTANTS.md");
    let r = tcpdrill(&["mutants-report", d.to_str().unwrap(), "--explained", &ex, "--output", out.to_str().unwrap()]);
    assert_eq!(code(&r), 0, "{}", text(&r));
    let md = std::fs::read_to_string(out).unwrap();
    assert!(md.contains("A partial run: 1 of the 2 mutants were tested"), "{md}");
    assert!(md.contains("`replace IsnGenerator::isn -> u32 with 0`: **no script rejects it yet**"), "{md}");
}

/// packetdrill's command line (README, "packetdrill's command line"): a passing script prints nothing and exits
/// 0, a failing one prints packetdrill's error text and exits 1, on the linux backend as packetdrill runs on the
/// local kernel; `--dry_run` only parses.
#[test]
fn packetdrill_invocations_run_as_packetdrill_runs_them() {
    let d = folder("dropin");
    let oracle = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle");
    let failing = oracle.join("ack-omitted-fail.pkt");
    let bad = write(&d, "bad.pkt", b"0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 bogus(3) = 0\n");
    let o = tcpdrill(&["--dry_run", &bad]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(text(&o).contains("unknown syscall \"bogus\""), "{}", text(&o));
    let o = tcpdrill(&["--dry_run", "--ip_version=ipv4", failing.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let o = tcpdrill(&["--tolerance_usec=1", failing.to_str().unwrap()]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(text(&o).contains("did you mean --tolerance_usecs?"), "{}", text(&o));
    if let Err(why) = tcpdrill::backend::linux::available() {
        eprintln!("the runs skipped: {why}");
        return;
    }
    let ok = oracle.join("ip-info-tos-ttl-pass.pkt");
    let o = tcpdrill(&["--send_omit_free", "--ip_version=ipv4", "--local_ip=192.168.0.1", ok.to_str().unwrap()]);
    assert_eq!((code(&o), text(&o)), (0, String::new()));
    let o = tcpdrill(&["--send_omit_free", failing.to_str().unwrap()]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(text(&o).contains("error handling packet"), "{}", text(&o));
    // A flag packetdrill has and tcpdrill does not honour: refused with its reason, never ignored.
    let o = tcpdrill(&["--non_fatal=packet", ok.to_str().unwrap()]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(text(&o).contains("--non_fatal is not supported"), "{}", text(&o));
}

/// packetdrill's own runner, run_all.py (from the workplace's copy of packetdrill's source), with tcpdrill in
/// packetdrill's place: it finds the scripts, runs each in a namespace of its own through its in_netns.sh, and
/// counts tcpdrill's exit statuses as packetdrill's.
#[test]
fn run_all_py_drives_tcpdrill() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/packetdrill-src");
    if !src.join("run_all.py").is_file() {
        eprintln!("skipped: no run_all.py in {}", src.display());
        return;
    }
    if let Err(why) = tcpdrill::backend::linux::available() {
        eprintln!("skipped: {why}");
        return;
    }
    if Command::new("python3").arg("-c").arg("pass").output().is_err() || Command::new("ip").arg("-V").output().is_err()
    {
        eprintln!("skipped: run_all.py needs python3 and ip");
        return;
    }
    let d = folder("run-all");
    let tools = d.join("packetdrill");
    std::fs::create_dir_all(&tools).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_tcpdrill"), tools.join("packetdrill")).unwrap();
    std::fs::copy(src.join("in_netns.sh"), tools.join("in_netns.sh")).unwrap();
    let scripts = d.join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    let oracle = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle");
    for s in ["ip-info-tos-ttl-pass", "errno-alias-pass", "blocking-relative-pass", "ack-wrong-fail"] {
        std::fs::copy(oracle.join(format!("{s}.pkt")), scripts.join(format!("{s}.pkt"))).unwrap();
    }
    let o = Command::new("python3")
        .arg(src.join("run_all.py"))
        .args(["-4", "-v", "-l", "scripts"])
        .current_dir(&d)
        .output()
        .expect("python3 runs");
    let out = text(&o);
    assert!(out.contains("Ran    4 tests:    3 passing,    1 failing,    0 timed out"), "{out}");
    assert!(out.contains("/scripts/ack-wrong-fail.pkt (ipv4)]"), "{out}");
    assert!(out.contains("error handling packet: live packet field tcp_ack_seq"), "packetdrill's error text: {out}");
    assert_eq!(o.status.code(), Some(1), "run_all.py exits 1 when a script failed: {out}");
}

/// `run --ip-version all` runs each script as run_all.py does: in the three versions, but a `*v4.pkt` not in
/// IPv6, a `*v6.pkt` only in IPv6, and one whose header sets its version only in that one (the others listed as
/// skipped with the reason).
#[test]
fn ip_version_all_runs_each_script_as_run_all_py_does() {
    let d = folder("ipv");
    write(&d, "any.pkt", PASSIVE.as_bytes());
    write(&d, "onlyv4.pkt", PASSIVE.as_bytes());
    write(&d, "onlyv6.pkt", PASSIVE.as_bytes());
    write(&d, "header.pkt", format!("--ip_version=ipv6\n{PASSIVE}").as_bytes());
    let o = tcpdrill(&["run", "--ip-version", "all", d.to_str().unwrap()]);
    let out = text(&o);
    assert_eq!(code(&o), 0, "{out}");
    let mut lines: Vec<String> =
        out.lines().filter(|l| l.contains(".pkt")).map(|l| l.replace(&format!("{}/", d.display()), "")).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "any.pkt [ipv4-mapped-ipv6]: ok",
            "any.pkt [ipv4]: ok",
            "any.pkt [ipv6]: ok",
            "header.pkt [ipv4-mapped-ipv6]: skipped (runs in ipv6 only: its header sets --ip_version=ipv6)",
            "header.pkt [ipv4]: skipped (runs in ipv6 only: its header sets --ip_version=ipv6)",
            "header.pkt [ipv6]: ok",
            "onlyv4.pkt [ipv4-mapped-ipv6]: ok",
            "onlyv4.pkt [ipv4]: ok",
            "onlyv6.pkt [ipv6]: ok",
        ]
    );
    // Without the option a script runs in its own version, whatever its name; coverage has one column per
    // backend and refuses the option.
    let o = tcpdrill(&["run", &d.join("onlyv6.pkt").display().to_string()]);
    assert!(text(&o).contains("onlyv6.pkt: ok"), "{}", text(&o));
    let o = tcpdrill(&["coverage", "--ip-version", "ipv6", d.to_str().unwrap()]);
    assert_eq!(code(&o), 2, "{}", text(&o));
}

/// The raw backend's options: half a pair, mixed versions, a stray agent flag and an unknown OS are told, with
/// what to give instead, before anything runs.
#[test]
fn raw_options_are_checked() {
    let d = folder("raw");
    let good = write(&d, "good.pkt", PASSIVE.as_bytes());
    for (args, want) in [
        (&["--interface", "va", "--local-ip", "192.168.0.1"][..], "go in pairs of the same IP version"),
        (&["--interface", "va", "--local-ip", "192.168.0.1", "--remote-ip", "2001:db8::1"][..], "go in pairs"),
        (
            &[
                "--interface",
                "va",
                "--local-ip",
                "192.168.0.1",
                "--local-ip",
                "192.168.0.2",
                "--remote-ip",
                "192.0.2.1",
            ][..],
            "one IPv4 address at most",
        ),
        (&["--interface", "va"][..], "needs --local-ip"),
        (&["--local-ip", "192.168.0.1", "--remote-ip", "192.0.2.1"][..], "give --interface too"),
        (
            &["--interface", "va", "--local-ip", "192.168.0.1", "--remote-ip", "192.0.2.1", "--stack-os", "plan9"][..],
            "--stack-os \"plan9\"",
        ),
    ] {
        let mut all = vec!["run", "--backend", "raw"];
        all.extend_from_slice(args);
        all.push(&good);
        let o = tcpdrill(&all);
        assert_eq!(code(&o), 2, "{args:?}: {}", text(&o));
        assert!(text(&o).contains(want), "{args:?}: {}", text(&o));
    }
}

/// `serve --syn-flood`: bad values are refused before anything is made, and a flood served for real is met by
/// SYN cookies once the SYN queue is full, with the queue bounded (a backlog of 1024 admits 1025, Linux's `>`
/// test, as `interop::syn_flood_is_met_by_cookies` checks in the library).
#[test]
fn serve_syn_flood_is_checked_and_met_by_cookies() {
    for (args, says) in [
        (&["--syn-flood", "0"][..], "--syn-flood 0: from 1 to 10000000 SYNs"),
        (&["--syn-flood", "10", "--syn-flood-rate", "0"][..], "--syn-flood-rate 0: from 1 to 1000"),
        (&["--syn-flood", "10", "--address", "203.0.113.5"][..], "the stack's own network"),
    ] {
        let o = tcpdrill(&[&["serve", "--netns", "tcpdrill-cli-unused", "--duration", "1"][..], args].concat());
        assert_eq!(code(&o), 2, "{args:?}: {}", text(&o));
        assert!(text(&o).contains(says), "{args:?}: {}", text(&o));
    }
    assert!(!Path::new("/run/netns/tcpdrill-cli-unused").exists(), "a refused run made nothing");
    if let Err(why) = tcpdrill::backend::linux::available() {
        eprintln!("the flood skipped: {why}");
        return;
    }
    let netns = format!("tcpdrill-cli-flood-{}", std::process::id());
    let o = tcpdrill(&["serve", "--netns", &netns, "--duration", "2", "--syn-flood", "2000", "--service", "echo:7"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("SYN flood: 2000 SYNs injected"), "{t}");
    assert!(t.contains("at most 1025 connections in SYN-RECEIVED at once"), "{t}");
    let cookies: u64 = t
        .split("answers swallowed; ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a cookie count in {t}"));
    assert!(cookies >= 2000 - 1025, "every SYN past the full queue got a cookie: {t}");
    assert!(!Path::new("/run/netns").join(&netns).exists(), "the namespace went with the run");
}

/// `-v` on the linux backend shows the kernel's state changes as the reference backend's trace shows its own,
/// from sock_diag, so that the two traces read alike.
#[test]
fn linux_traces_show_state_changes() {
    if let Err(why) = tcpdrill::backend::linux::available() {
        eprintln!("skipped: {why}");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/close/passive-close.pkt");
    let o = tcpdrill(&["run", "--backend", "linux", "-v", script.to_str().unwrap()]);
    let t = text(&o);
    assert_eq!(code(&o), 0, "{t}");
    for change in [
        "TCP_CLOSE -> TCP_SYN_RECV",
        "TCP_SYN_RECV -> TCP_ESTABLISHED",
        "TCP_ESTABLISHED -> TCP_CLOSE_WAIT",
        "TCP_CLOSE_WAIT -> TCP_LAST_ACK",
        "TCP_LAST_ACK -> TCP_CLOSE",
    ] {
        assert!(t.contains(&format!("state 192.0.2.1:40123 {change}")), "{change} missing:\n{t}");
    }
}
