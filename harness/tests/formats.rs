//! `tcpdrill run --format junit|json|tap|ktap`, read back as the tools that consume them read them: JUnit by
//! quick-junit's deserializer (quick-xml) and by Python's junitparser, JSON by serde_json and against
//! `docs/results.schema.json` with Python's jsonschema, TAP by Python's tap.py parser. A Python reader that is
//! not installed is skipped with the reason printed (CI installs them: `.ci/run`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A pass, a failure and a skip on smoltcp, a pass on the reference stack, and a script that does not parse:
/// every verdict the formats carry. Returns the output of `run --format FORMAT` with the extra arguments.
fn run(format: &str, extra: &[&str]) -> (String, i32) {
    let bad =
        std::env::temp_dir().join(format!("tcpdrill-formats-{}-{format}-{}.pkt", std::process::id(), extra.len()));
    std::fs::write(&bad, "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = \n").expect("temp is writable");
    let o = Command::new(env!("CARGO_BIN_EXE_tcpdrill"))
        .current_dir(root())
        .args(["run", "--backend", "reference,smoltcp", "--format", format])
        .args(extra)
        .args([
            "scripts/handshake/passive-open.pkt",
            "scripts/close/close-in-syn-sent.pkt",
            "scripts/options/tcp-maxseg-before-the-synack.pkt",
        ])
        .arg(&bad)
        .output()
        .expect("the binary runs");
    let _ = std::fs::remove_file(&bad);
    (String::from_utf8_lossy(&o.stdout).into_owned(), o.status.code().unwrap_or(-1))
}

/// Runs a Python check on `input`; `None` (with the reason printed) where the module is not installed.
fn python(module: &str, program: &str, input: &str) -> Option<String> {
    let probe = Command::new("python3").args(["-c", &format!("import {module}")]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped the {module} check: python3 with {module} is not installed (pip install {module})");
        return None;
    }
    // One file per check: the tests run in parallel.
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tcpdrill-formats-py-{}-{module}-{n}", std::process::id()));
    std::fs::write(&dir, input).expect("temp is writable");
    let o = Command::new("python3").args(["-c", program]).arg(&dir).arg(root()).output().expect("python3 runs");
    let _ = std::fs::remove_file(&dir);
    assert!(o.status.success(), "{module}: {}", String::from_utf8_lossy(&o.stderr));
    Some(String::from_utf8_lossy(&o.stdout).trim().to_string())
}

#[test]
fn junit_reads_back() {
    let (xml, code) = run("junit", &[]);
    assert_eq!(code, 1, "a failure is a failure whatever the format");
    let report = quick_junit::Report::deserialize_from_str(&xml).expect("JUnit XML quick-junit reads");
    assert_eq!(report.test_suites.len(), 2, "one testsuite per backend");
    let (mut failures, mut errors, mut skipped) = (0, 0, 0);
    for suite in &report.test_suites {
        assert_eq!(suite.test_cases.len(), 4);
        for case in &suite.test_cases {
            match &case.status {
                quick_junit::TestCaseStatus::NonSuccess { kind, message, .. } => {
                    match kind {
                        quick_junit::NonSuccessKind::Failure => failures += 1,
                        _ => errors += 1,
                    }
                    assert!(message.as_ref().is_some_and(|m| m.contains(".pkt:")), "{message:?}");
                }
                quick_junit::TestCaseStatus::Skipped { message, .. } => {
                    skipped += 1;
                    assert!(message.as_ref().is_some_and(|m| m.contains("MaxSeg")), "{message:?}");
                }
                quick_junit::TestCaseStatus::Success { .. } => {}
            }
        }
    }
    // smoltcp fails close-in-syn-sent and skips the TCP_MAXSEG script; the bad script is an error on both.
    assert_eq!((failures, errors, skipped), (1, 2, 1));
    let counted = python(
        "junitparser",
        "import sys, junitparser\n\
         x = junitparser.JUnitXml.fromfile(sys.argv[1])\n\
         n = {'pass': 0, 'failure': 0, 'error': 0, 'skipped': 0}\n\
         for s in x:\n\
         \x20   for c in s:\n\
         \x20       r = c.result\n\
         \x20       k = 'pass' if not r else type(r[0]).__name__.lower()\n\
         \x20       n[k] += 1\n\
         print(n['pass'], n['failure'], n['error'], n['skipped'])",
        &xml,
    );
    if let Some(c) = counted {
        assert_eq!(c, "4 1 2 1", "junitparser's counts: pass failure error skipped");
    }
}

#[test]
fn json_follows_its_schema() {
    let (text, _) = run("json", &["--with-trace"]);
    let doc: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(doc["schema"], "tcpdrill-results/1");
    let results = doc["results"].as_array().expect("results");
    assert_eq!(results.len(), 8);
    let fail = results.iter().find(|r| r["verdict"] == "fail").expect("smoltcp fails close-in-syn-sent");
    assert_eq!(fail["backend"], "smoltcp");
    assert_eq!(fail["line"], 10, "the RST line");
    assert!(fail["trace"].as_array().is_some_and(|t| !t.is_empty()));
    assert_eq!(results.iter().filter(|r| r["verdict"] == "error").count(), 2);
    let valid = python(
        "jsonschema",
        "import sys, json, jsonschema\n\
         schema = json.load(open(sys.argv[2] + '/docs/results.schema.json'))\n\
         jsonschema.Draft202012Validator.check_schema(schema)\n\
         jsonschema.validate(json.load(open(sys.argv[1])), schema, cls=jsonschema.Draft202012Validator)\n\
         print('valid')",
        &text,
    );
    if let Some(v) = valid {
        assert_eq!(v, "valid");
    }
}

#[test]
fn tap_and_ktap_parse() {
    let (tap, _) = run("tap", &[]);
    let mut lines = tap.lines();
    assert_eq!(lines.next(), Some("TAP version 13"));
    assert_eq!(lines.next(), Some("1..8"));
    assert_eq!(tap.lines().filter(|l| l.starts_with("not ok ")).count(), 3);
    assert_eq!(tap.lines().filter(|l| l.contains(" # SKIP ")).count(), 1);
    let (ktap, _) = run("ktap", &[]);
    assert!(ktap.starts_with("KTAP version 1\n1..8\n"), "{ktap}");
    let counted = python(
        "tap",
        "import sys\n\
         from tap.parser import Parser\n\
         n = {'ok': 0, 'not ok': 0, 'skip': 0, 'plan': 0}\n\
         for l in Parser().parse_file(sys.argv[1]):\n\
         \x20   if l.category == 'test':\n\
         \x20       n['skip' if l.skip else ('ok' if l.ok else 'not ok')] += 1\n\
         \x20       assert l.ok or '.pkt' in l.yaml_block['message'], l.yaml_block\n\
         \x20   elif l.category == 'plan':\n\
         \x20       n['plan'] = l.expected_tests\n\
         print(n['plan'], n['ok'], n['not ok'], n['skip'])",
        &tap,
    );
    if let Some(c) = counted {
        assert_eq!(c, "8 4 3 1", "tap.py's plan, passes, failures, skips");
    }
}

#[test]
fn output_file_keeps_the_human_lines() {
    let out = std::env::temp_dir().join(format!("tcpdrill-formats-out-{}.xml", std::process::id()));
    let (stdout, _) = run("junit", &["--output", out.to_str().expect("utf-8")]);
    let xml = std::fs::read_to_string(&out).expect("--output wrote the file");
    let _ = std::fs::remove_file(&out);
    assert!(xml.starts_with("<?xml"));
    assert!(stdout.contains("passed,") && !stdout.contains("<?xml"), "{stdout}");
}

/// `tcpdrill ARGS` from the repository's root: standard output and exit status.
fn tcpdrill(args: &[&str]) -> (String, i32) {
    let o = Command::new(env!("CARGO_BIN_EXE_tcpdrill")).current_dir(root()).args(args).output().expect("runs");
    (String::from_utf8_lossy(&o.stdout).into_owned(), o.status.code().unwrap_or(-1))
}

const TWO: [&str; 2] = ["scripts/handshake/passive-open.pkt", "scripts/close/close-in-syn-sent.pkt"];

#[test]
fn diff_formats_read_back() {
    let diff = |f: &str| tcpdrill(&["diff", "--backends", "reference,smoltcp", "--format", f, TWO[0], TWO[1]]);
    let (xml, code) = diff("junit");
    assert_eq!(code, 1, "a divergence fails the diff whatever the format");
    let report = quick_junit::Report::deserialize_from_str(&xml).expect("JUnit XML");
    let suite = &report.test_suites[0];
    assert_eq!((suite.tests, suite.failures), (2, 1), "one testcase per script, failed where the backends part");
    if let Some(c) = python(
        "junitparser",
        "import sys, junitparser\n\
         x = junitparser.JUnitXml.fromfile(sys.argv[1])\n\
         print(sum(1 for s in x for c in s if c.result and 'line 10' in c.result[0].message))",
        &xml,
    ) {
        assert_eq!(c, "1", "the failure names the line where they part");
    }
    let (text, _) = diff("json");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let parted = doc["scripts"].as_array().expect("scripts").iter().find(|s| s["agree"] == false).expect("one parts");
    assert_eq!(parted["divergence"]["backend"], "smoltcp");
    assert_eq!(parted["divergence"]["line"], 10);
    if let Some(v) = python(
        "jsonschema",
        "import sys, json, jsonschema\n\
         d = json.load(open(sys.argv[1]))\n\
         jsonschema.validate(d, json.load(open(sys.argv[2] + '/docs/diff.schema.json')))\n\
         r = json.load(open(sys.argv[2] + '/docs/results.schema.json'))\n\
         for s in d['scripts']:\n\
         \x20   jsonschema.validate({'schema': 'tcpdrill-results/1', 'results': s['results']}, r)\n\
         print('valid')",
        &text,
    ) {
        assert_eq!(v, "valid");
    }
    let (tap, _) = diff("tap");
    assert!(
        tap.starts_with("TAP version 13\n1..2\n") && tap.contains("not ok 1 scripts/close/close-in-syn-sent.pkt\n"),
        "{tap}"
    );
}

#[test]
fn coverage_formats_carry_its_runs() {
    let (xml, _) = tcpdrill(&["coverage", "--backends", "reference,smoltcp", "--format", "junit", TWO[0], TWO[1]]);
    let report = quick_junit::Report::deserialize_from_str(&xml).expect("JUnit XML, not the markdown report");
    assert_eq!(report.test_suites.len(), 2);
    assert_eq!(report.test_suites.iter().map(|s| s.failures).sum::<usize>(), 1);
    let (text, _) = tcpdrill(&["coverage", "--backends", "reference,smoltcp", "--format", "json", TWO[0], TWO[1]]);
    if let Some(v) = python(
        "jsonschema",
        "import sys, json, jsonschema\n\
         jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2] + '/docs/results.schema.json')))\n\
         print('valid')",
        &text,
    ) {
        assert_eq!(v, "valid");
    }
}
