//! Results for machines: JUnit XML (what GitLab, Jenkins and GitHub's test reporters read), JSON (one object per
//! script and backend, schema in `docs/results.schema.json`) and TAP version 13 (what packetdrill's runner and,
//! with the KTAP header, the kernel selftests' harness read).
//!
//! `--format F` writes F to standard output instead of the human lines, so that it can be piped; with `--output
//! FILE` it goes to the file and the human lines stay on standard output, so that a CI log stays readable while
//! the file is published.

use super::ScriptResult;
use crate::run::{Outcome, Verdict};

/// The `--format` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Lines for people (the default).
    Human,
    /// JUnit XML: one testsuite per backend, one testcase per script.
    Junit,
    /// JSON, schema `docs/results.schema.json`.
    Json,
    /// TAP version 13.
    Tap,
    /// KTAP (the kernel selftests' TAP): TAP 13 with KTAP's version line.
    Ktap,
}

/// The version of the JSON results' schema, which changes when a field changes meaning or goes.
pub const JSON_SCHEMA: &str = "tcpdrill-results/1";

/// One script's run on one backend, as a report names it.
pub struct Record<'a> {
    /// The script's name as the run printed it (its path as given).
    pub name: &'a str,
    /// The backend's registry name.
    pub backend: &'a str,
    /// The IP version it ran in, when the run chose one (`--ip-version`).
    pub ip_version: Option<&'a str>,
    /// What happened.
    pub result: &'a ScriptResult,
}

/// What a result comes to, in the words every format uses.
enum Kind<'a> {
    Pass,
    /// A verdict against the stack: the failure.
    Fail(&'a crate::run::Failure),
    Skipped(&'a str),
    /// The script did not run (it did not parse, or the backend could not be made).
    Error(&'a str),
}

fn kind(r: &ScriptResult) -> Kind<'_> {
    match &r.outcome {
        Err(e) => Kind::Error(e),
        Ok(Outcome { verdict: Verdict::Pass, .. }) => Kind::Pass,
        Ok(Outcome { verdict: Verdict::Fail(f), .. }) => Kind::Fail(f),
        Ok(Outcome { verdict: Verdict::Skipped(why), .. }) => Kind::Skipped(why),
    }
}

/// A record's test name: the script, and the IP version where the run has several.
fn test_name(r: &Record) -> String {
    match r.ip_version {
        Some(v) => format!("{} [{v}]", r.name),
        None => r.name.to_string(),
    }
}

/// JUnit XML: a testsuite per backend (in the order they first appear), a testcase per script with its time; a
/// failure carries packetdrill's message and the script line with its caret; a skip its reason; a script that
/// did not run is an error.
pub fn junit(records: &[Record]) -> String {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut report = Report::new("tcpdrill");
    let mut backends: Vec<&str> = Vec::new();
    for r in records {
        if !backends.contains(&r.backend) {
            backends.push(r.backend);
        }
    }
    let mut total = std::time::Duration::ZERO;
    for b in backends {
        let mut suite = TestSuite::new(b);
        let mut time = std::time::Duration::ZERO;
        for r in records.iter().filter(|r| r.backend == b) {
            let status = match kind(r.result) {
                Kind::Pass => TestCaseStatus::success(),
                Kind::Fail(f) => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message(f.headline.as_str()).set_type("verdict").set_description(format!(
                        "{}\n\n{}",
                        f.text(),
                        f.diagnostic.render_plain()
                    ));
                    s
                }
                Kind::Skipped(why) => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(why);
                    s
                }
                Kind::Error(e) => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                    s.set_message(e.lines().next().unwrap_or("")).set_type("script").set_description(e);
                    s
                }
            };
            let mut case = TestCase::new(test_name(r), status);
            case.set_classname(format!("tcpdrill.{b}")).set_time(r.result.wall);
            time += r.result.wall;
            suite.add_test_case(case);
        }
        suite.set_time(time);
        total += time;
        report.add_test_suite(suite);
    }
    report.set_time(total);
    // Serializing a report made of strings only cannot fail; an empty document would be read as no tests.
    report.to_string().unwrap_or_default()
}

/// JSON: `{"schema": "tcpdrill-results/1", "results": [...]}`, one object per record (see
/// `docs/results.schema.json`); with `trace`, each run's trace as its lines.
pub fn json(records: &[Record], trace: bool) -> String {
    let doc = serde_json::json!({ "schema": JSON_SCHEMA, "results": json_results(records, trace) });
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

/// The `results` array of [`json`]: one object per record.
fn json_results(records: &[Record], trace: bool) -> Vec<serde_json::Value> {
    use serde_json::json;
    records
        .iter()
        .map(|r| {
            let mut o = json!({
                "path": r.result.path.display().to_string(),
                "name": r.name,
                "backend": r.backend,
                "ip_version": r.ip_version,
                "duration_s": r.result.wall.as_secs_f64(),
            });
            let (verdict, reason, line, column, details) = match kind(r.result) {
                Kind::Pass => ("pass", None, None, None, Vec::new()),
                Kind::Fail(f) => {
                    let (l, c) = f.diagnostic.line_col();
                    ("fail", Some(f.headline.clone()), Some(l), Some(c), f.details.clone())
                }
                Kind::Skipped(why) => ("skipped", Some(why.to_string()), None, None, Vec::new()),
                Kind::Error(e) => ("error", Some(e.to_string()), error_line(e), None, Vec::new()),
            };
            o["verdict"] = json!(verdict);
            o["reason"] = json!(reason);
            o["line"] = json!(line);
            o["column"] = json!(column);
            o["details"] = json!(details);
            if trace {
                let lines: Vec<String> = match &r.result.outcome {
                    Ok(out) => out.trace.to_string().lines().map(str::to_string).collect(),
                    Err(_) => Vec::new(),
                };
                o["trace"] = json!(lines);
            }
            o
        })
        .collect()
}

/// The line a parse error names (`file:LINE:COL: ...`), where it names one.
fn error_line(e: &str) -> Option<usize> {
    let first = e.lines().next()?;
    let mut parts = first.split(':');
    parts.next()?;
    parts.next()?.trim().parse().ok()
}

/// TAP version 13 (KTAP's version line with `ktap`): a plan, then `ok N name`, `not ok N name` with a YAML block
/// saying where and why, `ok N name # SKIP reason`.
pub fn tap(records: &[Record], ktap: bool) -> String {
    let mut out = String::from(if ktap { "KTAP version 1\n" } else { "TAP version 13\n" });
    out.push_str(&format!("1..{}\n", records.len()));
    for (i, r) in records.iter().enumerate() {
        let n = i + 1;
        // A `#` in a name would start a directive.
        let name = format!("{} [{}]", test_name(r), r.backend).replace('#', "\\#");
        match kind(r.result) {
            Kind::Pass => out.push_str(&format!("ok {n} {name}\n")),
            Kind::Skipped(why) => out.push_str(&format!("ok {n} {name} # SKIP {}\n", one_line(why))),
            Kind::Fail(f) => {
                out.push_str(&format!("not ok {n} {name}\n  ---\n"));
                out.push_str(&format!("  message: {}\n", yaml_string(&f.headline)));
                out.push_str(&format!("  line: {}\n", f.line));
                for d in &f.details {
                    out.push_str(&format!("  # {}\n", one_line(d)));
                }
                out.push_str("  ...\n");
            }
            Kind::Error(e) => {
                out.push_str(&format!("not ok {n} {name}\n  ---\n  message: {}\n  ...\n", yaml_string(e)));
            }
        }
    }
    out
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

/// A YAML double-quoted scalar (JSON's string syntax is one).
fn yaml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// The version of `diff --format json`'s schema (`docs/diff.schema.json`).
pub const DIFF_JSON_SCHEMA: &str = "tcpdrill-diff/1";

/// Where a script's runs part, for `diff`'s formats.
pub struct Parted<'a> {
    /// The backend that parts from the first one.
    pub backend: &'a str,
    /// The script line (0 when a backend skipped the script).
    pub line: usize,
    /// The line's text.
    pub source: &'a str,
    /// What the first backend did there.
    pub first: &'a str,
    /// What this one did.
    pub second: &'a str,
}

/// One script of a `diff`: its runs, one per backend in the order given, and where they part.
pub struct Comparison<'a> {
    /// The script as the run names it.
    pub name: &'a str,
    /// Its runs, one per backend in the order given.
    pub runs: Vec<Record<'a>>,
    /// Where a backend first parts from the first one; `None` when all agree.
    pub parted: Option<Parted<'a>>,
}

fn parted_text(p: &Parted, first_backend: &str) -> String {
    let at = if p.line == 0 { String::new() } else { format!("line {}: {}; ", p.line, p.source) };
    format!("{at}{first_backend}: {}; {}: {}", p.first, p.backend, p.second)
}

/// `diff` as JUnit: one testsuite, a testcase per script that fails where the backends part.
pub fn junit_diff(backends: &[&str], scripts: &[Comparison]) -> String {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut suite = TestSuite::new(format!("diff {}", backends.join(",")));
    let mut total = std::time::Duration::ZERO;
    for c in scripts {
        let status = match &c.parted {
            None => TestCaseStatus::success(),
            Some(p) => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(parted_text(p, backends.first().copied().unwrap_or(""))).set_type("divergence");
                s
            }
        };
        let time: std::time::Duration = c.runs.iter().map(|r| r.result.wall).sum();
        total += time;
        let mut case = TestCase::new(c.name, status);
        case.set_classname("tcpdrill.diff").set_time(time);
        suite.add_test_case(case);
    }
    suite.set_time(total);
    let mut report = Report::new("tcpdrill");
    report.add_test_suite(suite).set_time(total);
    report.to_string().unwrap_or_default()
}

/// `diff` as JSON (`docs/diff.schema.json`): per script, whether the backends agree, where they part, and each
/// run as `run --format json` gives it.
pub fn json_diff(backends: &[&str], scripts: &[Comparison], trace: bool) -> String {
    use serde_json::{json, Value};
    let list: Vec<Value> = scripts
        .iter()
        .map(|c| {
            let runs = json_results(&c.runs, trace);
            json!({
                "name": c.name,
                "agree": c.parted.is_none(),
                "divergence": c.parted.as_ref().map(|p| json!({
                    "backend": p.backend,
                    "line": (p.line > 0).then_some(p.line),
                    "source": p.source,
                    "first": p.first,
                    "second": p.second,
                })),
                "results": runs,
            })
        })
        .collect();
    let doc = json!({ "schema": DIFF_JSON_SCHEMA, "backends": backends, "scripts": list });
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

/// `diff` as TAP: a test per script, not ok where the backends part (the YAML block says where).
pub fn tap_diff(backends: &[&str], scripts: &[Comparison], ktap: bool) -> String {
    let mut out = String::from(if ktap { "KTAP version 1\n" } else { "TAP version 13\n" });
    out.push_str(&format!("1..{}\n", scripts.len()));
    for (i, c) in scripts.iter().enumerate() {
        let name = c.name.replace('#', "\\#");
        match &c.parted {
            None => out.push_str(&format!("ok {} {name}\n", i + 1)),
            Some(p) => {
                let first = backends.first().copied().unwrap_or("");
                out.push_str(&format!("not ok {} {name}\n  ---\n", i + 1));
                out.push_str(&format!("  message: {}\n", yaml_string(&parted_text(p, first))));
                out.push_str(&format!("  line: {}\n  ...\n", p.line));
            }
        }
    }
    out
}
