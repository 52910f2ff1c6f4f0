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
