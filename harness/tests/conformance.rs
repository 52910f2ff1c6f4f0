//! The conformance suite as tests: every `scripts/**/*.pkt` is a test case of its own per backend of the
//! registry, named after the backend and its path (`reference::handshake/active-open`, `linux::...`), so `cargo
//! test` lists each script and `cargo nextest run` can shard them. A backend that cannot run here (the linux
//! backend without root) has its cases ignored with the reason printed. Each also runs over IPv6 and with
//! IPv4-mapped addresses (`reference-ipv6::...`, `linux-mapped::...`), unless its header chooses its IP version
//! (the suite's IPv4-only scripts, which say why). The raw backend's cases (`raw::...`) run each script over a
//! testbed of its own (`tcpdrill::backend::testbed`: the kernel and an agent in one namespace, the raw backend
//! in another, a veth pair between), and pass where the linux ones do, except the scripts of [`RAW_SKIPS`],
//! which must be skipped there for the reason given. The `served::...` cases run each script on the raw backend
//! against the reference stack served on a TAP device with its own call endpoint (`testbed::run_served`), and
//! pass when the verdict is the in-process one. One more case per script (`golden::...`) compares its trace on
//! the reference backend with the insta snapshot in `golden/` (`cargo insta review` accepts intended changes),
//! and one (`smoltcp::...`) its outcome on the smoltcp backend with the record in `scripts/smoltcp-outcomes.tsv`.

mod smoltcp_report;

use libtest_mimic::{Arguments, Failed, Trial};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tcpdrill::backend::{testbed, IpVersion};
use tcpdrill::report::{self, coverage, BackendKind};
use tcpdrill::run::{RunOptions, Verdict};
use tcpdrill::script::ParseOptions;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn name_of(path: &Path) -> String {
    let rel = path.strip_prefix(root().join("scripts")).unwrap_or(path);
    rel.with_extension("").to_string_lossy().replace('\\', "/")
}

fn run_on(backend: BackendKind, path: &Path) -> report::ScriptResult {
    run_in(backend, path, None)
}

/// As [`run_on`], in IP version `ip` as `tcpdrill run --ip-version` runs it (`None`: the script's own).
fn run_in(backend: BackendKind, path: &Path, ip: Option<IpVersion>) -> report::ScriptResult {
    let name = format!("scripts/{}.pkt", name_of(path));
    let opts = RunOptions { variant: ip, ..RunOptions::default() };
    report::run_file(path, &name, backend, &ParseOptions::default(), &opts)
}

/// The IP versions besides IPv4 a script runs in: IPv6 and IPv4-mapped, unless its header chooses one itself.
fn other_versions(text: &str) -> Vec<(IpVersion, &'static str)> {
    if text.lines().any(|l| l.trim_start().starts_with("--ip_version=")) {
        return Vec::new();
    }
    vec![(IpVersion::V6, "ipv6"), (IpVersion::V4MappedV6, "mapped")]
}

/// Each stack's passed, failed and skipped scripts (IPv4 runs), for the README's table of stacks.
static TALLY: Mutex<BTreeMap<&'static str, [usize; 3]>> = Mutex::new(BTreeMap::new());

/// Counts a result word (`coverage::status_word`) in `row` of the table of stacks.
fn tally(row: &'static str, word: &str) {
    let column = match word {
        "pass" => 0,
        "skipped" => 2,
        _ => 1,
    };
    TALLY.lock().expect("not poisoned").entry(row).or_default()[column] += 1;
}

/// The rows of the README's table of stacks: the tally's key, the stack, and how it was run.
const STACK_ROWS: &[(&str, &str, &str)] = &[
    ("reference", "tcpdrill's reference stack", "in-process, virtual clock (`--backend reference`)"),
    ("linux", "the Linux kernel", "TUN device in a namespace per script (`--backend linux`)"),
    ("raw", "the Linux kernel over a link", "`--backend raw` on a veth pair, calls through `tcpdrill agent`"),
    ("served", "the reference stack over a link", "`--backend raw` against `tcpdrill serve --tap --agent-listen`"),
    ("smoltcp", "smoltcp 0.14", "in-process, virtual clock (`--backend smoltcp`); [report](docs/smoltcp.md)"),
];

/// The README's table of stacks from this run's tally, or `None` while some row's cases did not all run.
fn stacks_table(scripts: usize) -> Option<String> {
    let tally = TALLY.lock().expect("not poisoned");
    let mut t = String::from("| stack | run | pass | fail | skipped |\n|---|---|---:|---:|---:|\n");
    for (key, stack, how) in STACK_ROWS {
        let [p, f, s] = *tally.get(key)?;
        if p + f + s != scripts {
            return None;
        }
        t.push_str(&format!("| {stack} | {how} | {p} | {f} | {s} |\n"));
    }
    Some(t)
}

/// The README's table of stacks must be this run's (`TCPDRILL_BLESS=1` writes it), between its markers.
fn check_stacks_table(table: &str) -> Result<(), String> {
    let (begin, end) = ("<!-- stacks: made by the conformance tests -->\n", "<!-- /stacks -->");
    let file = root().join("README.md");
    let readme = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
    let (Some(a), Some(b)) = (readme.find(begin), readme.find(end)) else {
        return Err("README.md has no table of stacks between its markers".into());
    };
    let (a, b) = (a + begin.len(), b);
    if readme[a..b] == *table {
        return Ok(());
    }
    if std::env::var_os("TCPDRILL_BLESS").is_some() {
        let new = format!("{}{table}{}", &readme[..a], &readme[b..]);
        return std::fs::write(&file, new).map_err(|e| e.to_string());
    }
    Err(format!(
        "README.md's table of stacks is not this run's: regenerate it with `sudo TCPDRILL_BLESS=1 cargo test -p \
         tcpdrill --test conformance` (a complete run)\nthis run's:\n{table}"
    ))
}

/// Each script's result word per backend, for the REQUIREMENTS.md check after all cases ran.
type Results = Arc<Mutex<BTreeMap<(String, BackendKind), &'static str>>>;

/// One script on one backend: passes only on a pass (a skip is a failure here: every script of the suite must
/// run on every backend of the registry).
///
/// A real-time backend's case that fails on a timing error gets two more tries, each reported on standard error.
/// This machine is a VM whose vCPUs the host deschedules: a thread sleeping 1 ms at a time on an idle guest
/// overslept by more than 3 ms 127 times in 30 s, once by 13 ms (`/proc/stat` counts the steal), and 3 of 7
/// full runs had one of the ~4,000 timed linux events late by 5 to 20 ms, against packetdrill's 4 ms tolerance.
/// packetdrill fails the same way there (the kernel's selftests widen its tolerance to 14 ms on slow machines,
/// KSFT_MACHINE_SLOW); a retry keeps the 4 ms and still fails a stack whose timing is wrong, because that fails
/// every try.
fn case(backend: BackendKind, path: &Path, results: &Results) -> Result<(), Failed> {
    case_in(backend, path, None, Some(results))
}

/// [`case`] in IP version `ip`; the results of IPv4 runs only are kept for REQUIREMENTS.md.
fn case_in(backend: BackendKind, path: &Path, ip: Option<IpVersion>, results: Option<&Results>) -> Result<(), Failed> {
    let r = if backend.info().real_time {
        with_timing_retries(backend.name(), path, || run_in(backend, path, ip))
    } else {
        run_in(backend, path, ip)
    };
    if let Some(results) = results {
        results.lock().expect("not poisoned").insert((name_of(path), backend), coverage::status_word(&r));
        tally(backend.name(), coverage::status_word(&r));
    }
    match r.outcome {
        Err(e) => Err(e.into()),
        Ok(o) => match o.verdict {
            Verdict::Pass => Ok(()),
            Verdict::Fail(f) => Err(format!("{}\n{}", f.text(), f.diagnostic.render_plain()).into()),
            Verdict::Skipped(reason) => Err(format!("skipped on the {} backend: {reason}", backend.name()).into()),
        },
    }
}

/// The scripts the raw backend skips on its testbed, with (a part of) the reason it gives: what they need the
/// link to be is the user's to set, not the script's. The README lists them.
const RAW_SKIPS: &[(&str, &str)] = &[
    // Inbound datagrams longer than the link's MTU of 1500 (coalesced out-of-order data; a TUN device takes them).
    ("data/acks-at-once-for-out-of-order-gap-and-duplicate", "more than the raw backend's link carries (MTU"),
    ("data/out-of-order-overlaps-and-fin", "more than the raw backend's link carries (MTU"),
    ("data/out-of-order-overlaps-at-range-edges", "more than the raw backend's link carries (MTU"),
    // `--mtu=N` other than the link's.
    ("options/mss-announced-from-mtu", "set the MTU on the link, not from the script"),
    ("options/mss-sent-even-when-default", "set the MTU on the link, not from the script"),
];

/// One script on the raw backend, on a testbed of its own (MTU 1520 for IPv6, as run_all.py's `--mtu=1520`
/// makes the linux backend's TUN device; 1500 otherwise), with twice the timing tolerance (8 ms): every socket
/// call is a round trip to the agent (`cargo bench --bench raw`), and a script with seven events at time 0 before
/// an absolute one (handshake/passive-open) had them take 11 ms on a loaded CI machine three tries in a row.
fn raw_case(path: &Path, ip: Option<IpVersion>) -> Result<(), Failed> {
    let raw = BackendKind::all().find(|b| b.name() == "raw").expect("the raw backend is in the registry");
    let mtu = if ip == Some(IpVersion::V6) { 1520 } else { 1500 };
    let expected = RAW_SKIPS.iter().find(|(n, _)| *n == name_of(path)).map(|(_, why)| *why);
    let p = path.to_path_buf();
    let r = testbed::run(mtu, move |_| {
        let name = format!("scripts/{}.pkt", name_of(&p));
        let opts = RunOptions { variant: ip, tolerance_scale: 2.0, ..RunOptions::default() };
        with_timing_retries("raw", &p, || report::run_file(&p, &name, raw, &ParseOptions::default(), &opts))
    })?;
    if ip.is_none() {
        tally("raw", coverage::status_word(&r));
    }
    match (r.outcome, expected) {
        (Err(e), _) => Err(e.into()),
        (Ok(o), None) => match o.verdict {
            Verdict::Pass => Ok(()),
            Verdict::Fail(f) => Err(format!("{}\n{}", f.text(), f.diagnostic.render_plain()).into()),
            Verdict::Skipped(reason) => Err(format!("skipped on the raw backend: {reason}").into()),
        },
        (Ok(o), Some(why)) => match o.verdict {
            Verdict::Skipped(reason) if reason.contains(why) => Ok(()),
            other => Err(format!("expected a skip on the raw backend ({why}), got {other:?}").into()),
        },
    }
}

/// The scripts the served stack skips besides [`RAW_SKIPS`]: IPv6 ones (its one address is IPv4's).
const SERVED_SKIPS: &[(&str, &str)] = &[
    ("options/mss-absent-defaults-to-1220-on-ipv6", "the raw backend's link has no IPv6 addresses"),
    ("queues/syncookie-keeps-mss-on-ipv6", "the raw backend's link has no IPv6 addresses"),
];

/// One script on the raw backend against the reference stack served on a TAP device with its own call endpoint
/// (`testbed::run_served`): the verdict over the wire must be the one the reference backend gives in-process,
/// except for the scripts of [`RAW_SKIPS`] and [`SERVED_SKIPS`], which it must skip for the reason given.
fn served_case(path: &Path) -> Result<(), Failed> {
    let raw = BackendKind::all().find(|b| b.name() == "raw").expect("the raw backend is in the registry");
    let expected = RAW_SKIPS.iter().chain(SERVED_SKIPS).find(|(n, _)| *n == name_of(path)).map(|(_, why)| *why);
    let in_process = run_on(BackendKind::Reference, path);
    let p = path.to_path_buf();
    let r = testbed::run_served(move |_| {
        let name = format!("scripts/{}.pkt", name_of(&p));
        let opts = RunOptions { tolerance_scale: 2.0, ..RunOptions::default() };
        with_timing_retries("served", &p, || report::run_file(&p, &name, raw, &ParseOptions::default(), &opts))
    })?;
    let word = coverage::status_word(&r);
    tally("served", word);
    match (r.outcome, expected) {
        (Err(e), _) => Err(e.into()),
        (Ok(o), Some(why)) => match o.verdict {
            Verdict::Skipped(reason) if reason.contains(why) => Ok(()),
            other => Err(format!("expected a skip on the raw backend ({why}), got {other:?}").into()),
        },
        (Ok(_), None) if word == coverage::status_word(&in_process) => Ok(()),
        (Ok(o), None) => Err(match o.verdict {
            Verdict::Fail(f) => format!(
                "{} in-process, failed over the wire: {}\n{}",
                coverage::status_word(&in_process),
                f.text(),
                f.diagnostic.render_plain()
            ),
            other => format!("{} in-process, {other:?} over the wire", coverage::status_word(&in_process)),
        }
        .into()),
    }
}

/// Where the smoltcp backend's outcome on each script is recorded: a change in smoltcp's behaviour or in the
/// mapping shows up as a `smoltcp::` case failing. `TCPDRILL_BLESS=1 cargo test --test conformance -- smoltcp::`
/// writes what the backend does now.
fn smoltcp_outcomes_file() -> PathBuf {
    root().join("scripts/smoltcp-outcomes.tsv")
}

/// The smoltcp backend's outcome on each script of the sample of upstream scripts, where that is here.
fn smoltcp_corpus_outcomes_file() -> PathBuf {
    root().join("scripts/smoltcp-corpus-outcomes.tsv")
}

/// The workplace's sample of upstream packetdrill scripts (google's, nplab's, FreeBSD's tcp-testsuite): other
/// projects' files, read where they are and never copied here.
fn sample_folder() -> PathBuf {
    root().join("../shared/packetdrill-corpus")
}

/// A sample script's name in the record: its path in the sample, without `.pkt`.
fn sample_name(path: &Path) -> String {
    let rel = path.strip_prefix(sample_folder()).unwrap_or(path);
    rel.with_extension("").to_string_lossy().replace('\\', "/")
}

/// The report the records and the triage make (`docs/smoltcp.md`).
fn smoltcp_report_file() -> PathBuf {
    root().join("docs/smoltcp.md")
}

fn smoltcp_report_now() -> Result<String, String> {
    let read = |p: PathBuf| std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()));
    let corpus = if sample_folder().is_dir() { Some(read(smoltcp_corpus_outcomes_file())?) } else { None };
    smoltcp_report::report(
        &read(smoltcp_outcomes_file())?,
        corpus.as_deref(),
        &read(root().join("scripts/smoltcp-triage.tsv"))?,
    )
}

/// The smoltcp bug reports (`docs/smoltcp-bugs/*.md` but its README), each with the script it names on its
/// line `Script: \`PATH\`` (a suite script, or one beside the report): (report, script).
fn smoltcp_bug_reports() -> Vec<(PathBuf, Result<PathBuf, String>)> {
    let dir = root().join("docs/smoltcp-bugs");
    let mut v: Vec<(PathBuf, Result<PathBuf, String>)> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "md") && !p.ends_with("README.md"))
                .map(|p| {
                    let md = std::fs::read_to_string(&p).unwrap_or_default();
                    let script = md
                        .lines()
                        .find_map(|l| l.strip_prefix("Script: `").and_then(|r| r.strip_suffix('`')))
                        .map(|s| root().join(s))
                        .ok_or_else(|| format!("{} has no line `Script: \\`PATH\\``", p.display()));
                    (p, script)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A bug report's script fails on smoltcp at the line the report names (`smoltcp fails at line N`) and passes on
/// `backend` (the reference stack, Linux: what the RFC asks is what a real stack does); the report quotes the
/// script as it is.
fn smoltcp_bug_case(report: &Path, script: &Path, backend: BackendKind) -> Result<(), Failed> {
    let text = std::fs::read_to_string(script).map_err(|e| format!("{}: {e}", script.display()))?;
    let md = std::fs::read_to_string(report).map_err(|e| format!("{}: {e}", report.display()))?;
    if !md.contains(text.trim_end()) {
        return Err(format!("{} does not quote {} as it is", report.display(), script.display()).into());
    }
    let name = script.strip_prefix(root()).unwrap_or(script).display().to_string();
    let run = || report::run_file(script, &name, backend, &ParseOptions::default(), &RunOptions::default());
    let r = if backend.info().real_time { with_timing_retries(backend.name(), script, run) } else { run() };
    let o = r.outcome.map_err(|e| e.to_string())?;
    match (backend.name(), o.verdict) {
        ("smoltcp", Verdict::Fail(f)) => {
            let said = format!("smoltcp fails at line {}", f.line);
            if md.contains(&said) {
                Ok(())
            } else {
                Err(format!("{} should say \"{said}\": {}", report.display(), f.headline).into())
            }
        }
        ("smoltcp", other) => Err(format!("smoltcp no longer fails it: {other:?}").into()),
        (_, Verdict::Pass) => Ok(()),
        (b, Verdict::Fail(f)) => Err(format!("fails on {b}: {}\n{}", f.text(), f.diagnostic.render_plain()).into()),
        (b, Verdict::Skipped(why)) => Err(format!("skipped on {b}: {why}").into()),
    }
}

/// [`smoltcp_run`]'s line for a sample script, run as packetdrill's runner runs it (its header's flags).
fn smoltcp_sample_outcome(path: &Path) -> String {
    let name = sample_name(path);
    let r = report::run_file(path, &name, smoltcp_kind(), &ParseOptions::default(), &RunOptions::default());
    format!("{name}\t{}", outcome_fields(&r))
}

/// One script's outcome on the smoltcp backend as a line of the record (name, verdict, and where it failed: the
/// line and the headline without the file; or why it was skipped), and the run's word for REQUIREMENTS.md's
/// smoltcp column.
fn smoltcp_run(path: &Path) -> (String, &'static str) {
    let smoltcp = smoltcp_kind();
    let r = run_on(smoltcp, path);
    let word = coverage::status_word(&r);
    (format!("{}\t{}", name_of(path), outcome_fields(&r)), word)
}

/// The record's verdict and detail for a result.
fn outcome_fields(r: &report::ScriptResult) -> String {
    match &r.outcome {
        Err(e) => format!("error\t{}", e.to_string().lines().next().unwrap_or("")),
        Ok(o) => match &o.verdict {
            Verdict::Pass => "pass\t".to_string(),
            Verdict::Fail(f) => {
                let headline = f.headline.split_once(": ").map_or(f.headline.as_str(), |(_, h)| h);
                format!("FAIL\tline {}: {headline}", f.line)
            }
            Verdict::Skipped(why) => format!("skipped\t{why}"),
        },
    }
}

fn smoltcp_kind() -> BackendKind {
    BackendKind::all().find(|b| b.name() == "smoltcp").expect("the smoltcp backend is in the registry")
}

/// The outcomes recorded in `file`, by script name.
fn smoltcp_recorded(file: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split_once('\t').map(|(n, _)| (n.to_string(), l.to_string())))
        .collect()
}

/// `run`, tried twice more while it fails on a timing error (see [`case`] for why), each retry reported as
/// `PREFIX::NAME` on standard error.
fn with_timing_retries(prefix: &str, path: &Path, run: impl Fn() -> report::ScriptResult) -> report::ScriptResult {
    let mut r = run();
    for retry in 1..=2 {
        let Some(why) = timing_failure(&r) else { break };
        eprintln!("{prefix}::{}: timing error on try {retry} ({why}): trying again", name_of(path));
        r = run();
    }
    r
}

/// The headline of a failure that is about when something happened, not what.
fn timing_failure(r: &report::ScriptResult) -> Option<String> {
    match &r.outcome {
        Ok(o) => match &o.verdict {
            Verdict::Fail(f) if f.headline.contains("timing error") => Some(f.headline.clone()),
            _ => None,
        },
        Err(_) => None,
    }
}

/// `scripts/REQUIREMENTS.md` must be what `tcpdrill coverage scripts/` makes of the tags and of this run's
/// results; checked only when every case ran (no filter, linux cases not ignored).
fn check_requirements(results: &Results, scripts: &[PathBuf]) -> Result<(), String> {
    let results = results.lock().expect("not poisoned");
    let mut statuses = Vec::new();
    for p in scripts {
        let text = std::fs::read_to_string(p).map_err(|e| e.to_string())?;
        let unknown = coverage::unknown_tags(&text);
        if !unknown.is_empty() {
            return Err(format!("{}: unknown requirement tags {unknown:?}", p.display()));
        }
        let n = name_of(p);
        let get = |b| results.get(&(n.clone(), b)).copied();
        // The columns `tcpdrill coverage` gives without a link: every backend that runs here without one (the
        // smoltcp backend's too, which is on request but needs nothing).
        let per_backend: Vec<(&'static str, Option<&str>)> = BackendKind::all()
            .filter(|b| !b.info().on_request || (b.info().available)().is_ok())
            .map(|b| (b.name(), get(b)))
            .collect();
        statuses.push(coverage::ScriptStatus::of(n.clone(), &text, &per_backend));
    }
    let evidence = coverage::Evidence::load(&root().join("scripts"))?;
    let want = coverage::requirements_markdown(&statuses, &evidence);
    let file = root().join("scripts/REQUIREMENTS.md");
    let have = std::fs::read_to_string(&file).unwrap_or_default();
    if have == want {
        Ok(())
    } else {
        Err(format!(
            "{} is out of date: regenerate it with `sudo tcpdrill coverage scripts/ --output scripts/REQUIREMENTS.md`",
            file.display()
        ))
    }
}

fn main() {
    let mut args = Arguments::from_args();
    // The linux cases spend their time waiting on real timers (TIME-WAIT alone is a minute), not on the CPU: run
    // many at once unless told otherwise.
    if args.test_threads.is_none() {
        args.test_threads = Some(8);
    }
    let results: Results = Arc::default();
    let complete = args.filter.is_none() && args.skip.is_empty() && !args.list && !args.ignored;
    // The raw backend runs on testbeds the cases make, not on the command line's link.
    let available = |b: BackendKind| if b.name() == "raw" { testbed::available() } else { (b.info().available)() };
    let mut unavailable: Vec<(BackendKind, String)> =
        BackendKind::all().filter_map(|b| available(b).err().map(|why| (b, why))).collect();
    for (b, why) in &unavailable {
        eprintln!("{}::* cases ignored: {why}", b.name());
    }
    let scripts = report::collect_scripts(&[root().join("scripts")]).expect("scripts/ is readable");
    // How long each script runs, from its run on the reference backend's virtual clock (all of them take about a
    // second of real time): the real-time cases that take half a minute or more start first, longest first, so
    // that the one that takes 150 s does not start last and keep the run going after the others are done. The
    // rest keep their order: sorted by length, all the short scripts would come at the end together, and their
    // burst of namespaces made and torn down stalled this 2-vCPU VM often enough to triple the timing retries.
    let lasts = |p: &Path| run_on(BackendKind::Reference, p).outcome.map_or(0, |o| o.script_micros);
    let real_time_ignored =
        BackendKind::all().filter(|b| b.info().real_time).all(|b| unavailable.iter().any(|(u, _)| *u == b));
    let real_time_order: Vec<(i64, PathBuf)> = if args.list || args.exact || real_time_ignored {
        Vec::new()
    } else {
        let long = |micros: i64| if micros >= 30_000_000 { micros } else { 0 };
        let mut v: Vec<(i64, PathBuf)> = scripts.iter().map(|p| (long(lasts(p)), p.clone())).collect();
        v.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        v
    };
    let mut trials = Vec::new();
    let mut real_time_trials = Vec::new();
    let samples = if sample_folder().is_dir() {
        report::collect_scripts(&[sample_folder()]).expect("the sample is readable")
    } else {
        eprintln!("smoltcp-sample::* cases not made: {} is not here", sample_folder().display());
        Vec::new()
    };
    if std::env::var_os("TCPDRILL_BLESS").is_some() {
        let header = |what: &str| {
            format!(
                "# The smoltcp backend's outcome on each {what} (name, verdict, where it failed or why it was skipped), \
                 checked by the\n# conformance tests' smoltcp:: cases; regenerate with TCPDRILL_BLESS=1 cargo test -p \
                 tcpdrill --test conformance -- smoltcp\n"
            )
        };
        let mut text = header("suite script");
        for p in &scripts {
            text.push_str(&smoltcp_run(p).0);
            text.push('\n');
        }
        std::fs::write(smoltcp_outcomes_file(), text).expect("scripts/ is writable");
        if !samples.is_empty() {
            let mut text = header("script of the sample of upstream scripts (../shared/packetdrill-corpus)");
            for p in &samples {
                text.push_str(&smoltcp_sample_outcome(p));
                text.push('\n');
            }
            std::fs::write(smoltcp_corpus_outcomes_file(), text).expect("scripts/ is writable");
        }
        match smoltcp_report_now() {
            Ok(r) => std::fs::write(smoltcp_report_file(), r).expect("docs/ is writable"),
            Err(e) => eprintln!("docs/smoltcp.md not written: {e}"),
        }
    }
    trials.push(Trial::test("smoltcp::report", || {
        let want = smoltcp_report_now()?;
        let have = std::fs::read_to_string(smoltcp_report_file()).unwrap_or_default();
        if have == want {
            Ok(())
        } else {
            Err("docs/smoltcp.md is out of date: TCPDRILL_BLESS=1 cargo test -p tcpdrill --test conformance -- smoltcp"
                .into())
        }
    }));
    // A suite script's linux run is a linux:: case already; a report's own script runs on Linux here.
    for (report, script) in smoltcp_bug_reports() {
        let name = report.file_stem().unwrap_or_default().to_string_lossy().to_string();
        let own = script.as_ref().is_ok_and(|s| !s.starts_with(root().join("scripts")));
        for b in ["smoltcp", "reference", "linux"].into_iter().filter(|b| own || *b != "linux") {
            let kind = BackendKind::by_name(b).expect("in the registry");
            let ignored = unavailable.iter().any(|(u, _)| *u == kind);
            let (r, s) = (report.clone(), script.clone());
            let trial = Trial::test(format!("smoltcp-bug::{name}::{b}"), move || smoltcp_bug_case(&r, &s?, kind))
                .with_ignored_flag(ignored);
            trials.push(trial);
        }
    }
    let sample_recorded = Arc::new(smoltcp_recorded(&smoltcp_corpus_outcomes_file()));
    for p in samples {
        let rec = sample_recorded.clone();
        trials.push(Trial::test(format!("smoltcp-sample::{}", sample_name(&p)), move || {
            let now = smoltcp_sample_outcome(&p);
            match rec.get(&sample_name(&p)) {
                Some(was) if *was == now => Ok(()),
                Some(was) => Err(format!("recorded: {was}\nnow:      {now}").into()),
                None => Err(format!("not recorded in {}: {now}", smoltcp_corpus_outcomes_file().display()).into()),
            }
        }));
    }
    let recorded = Arc::new(smoltcp_recorded(&smoltcp_outcomes_file()));
    for path in scripts.clone() {
        let name = name_of(&path);
        let (p, rec, res) = (path.clone(), recorded.clone(), results.clone());
        trials.push(Trial::test(format!("smoltcp::{name}"), move || {
            let (now, word) = smoltcp_run(&p);
            tally("smoltcp", word);
            res.lock().expect("not poisoned").insert((name_of(&p), smoltcp_kind()), word);
            match rec.get(&name_of(&p)) {
                Some(was) if *was == now => Ok(()),
                Some(was) => Err(format!("recorded: {was}\nnow:      {now}").into()),
                None => Err(format!("not recorded in {}: {now}", smoltcp_outcomes_file().display()).into()),
            }
        }));
        for b in BackendKind::all().filter(|b| b.name() != "smoltcp") {
            let (p, res) = (path.clone(), results.clone());
            let ignored = unavailable.iter().any(|(u, _)| *u == b);
            let raw = b.name() == "raw";
            let trial =
                Trial::test(
                    format!("{}::{name}", b.name()),
                    move || {
                        if raw {
                            raw_case(&p, None)
                        } else {
                            case(b, &p, &res)
                        }
                    },
                )
                .with_ignored_flag(ignored);
            let rank = real_time_order.iter().position(|(_, q)| *q == path).unwrap_or(0);
            if b.info().real_time {
                real_time_trials.push((rank, trial));
            } else {
                trials.push(trial);
            }
            // The same script over IPv6 and with IPv4-mapped addresses (`reference-ipv6::...`), as run_all.py runs
            // every script in the three.
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for (ip, tag) in other_versions(&text) {
                // The raw backend's IPv4-mapped runs differ from its IPv4 ones only in the agent's addresses
                // (the wire is IPv4 either way): a sample of the folders whose calls take addresses is enough,
                // and the load of a full third set of testbeds made the machine late for the other real-time cases.
                if raw && ip == IpVersion::V4MappedV6 && !["handshake/", "close/"].iter().any(|d| name.starts_with(d)) {
                    continue;
                }
                let p = path.clone();
                let trial = Trial::test(format!("{}-{tag}::{name}", b.name()), move || {
                    if raw {
                        raw_case(&p, Some(ip))
                    } else {
                        case_in(b, &p, Some(ip), None)
                    }
                })
                .with_ignored_flag(ignored);
                if b.info().real_time {
                    real_time_trials.push((rank, trial));
                } else {
                    trials.push(trial);
                }
            }
        }
        let p = path.clone();
        let n = name.clone();
        trials.push(Trial::test(format!("golden::{name}"), move || {
            let trace = match run_on(BackendKind::Reference, &p).outcome {
                Ok(o) => o.trace.to_string(),
                Err(parse) => return Err(parse.into()),
            };
            let snapshot = n.replace('/', "__");
            let snap = snapshot.clone();
            let description = format!("trace of scripts/{n}.pkt on the reference backend");
            let result = std::panic::catch_unwind(move || {
                let mut settings = insta::Settings::clone_current();
                settings.set_snapshot_path(root().join("golden"));
                settings.set_prepend_module_to_snapshot(false);
                settings.set_omit_expression(true);
                settings.set_description(description);
                settings.bind(|| insta::assert_snapshot!(snap, trace));
            });
            result.map_err(|_| {
                Failed::from(format!(
                    "the trace of scripts/{n}.pkt differs from golden/{snapshot}.snap: review with cargo insta review"
                ))
            })
        }));
    }
    // The reference stack served on a TAP device, under the raw backend: as in-process (IPv4 only, the served
    // stack's one address).
    let served_ignored = testbed::available().err();
    if let Some(why) = &served_ignored {
        eprintln!("served::* cases ignored: {why}");
    }
    for path in &scripts {
        let p = path.clone();
        let rank = real_time_order.iter().position(|(_, q)| q == path).unwrap_or(0);
        let trial = Trial::test(format!("served::{}", name_of(path)), move || served_case(&p))
            .with_ignored_flag(served_ignored.is_some());
        real_time_trials.push((rank, trial));
    }
    // The in-process cases first (they take a second), then the real-time ones, longest first.
    real_time_trials.sort_by_key(|(rank, _)| *rank);
    trials.extend(real_time_trials.into_iter().map(|(_, t)| t));
    let conclusion = libtest_mimic::run(&args, trials);
    // The columns of REQUIREMENTS.md are the backends that run without a link of the user's.
    unavailable.retain(|(b, _)| !b.info().on_request);
    if complete && unavailable.is_empty() && !conclusion.has_failed() {
        match check_requirements(&results, &scripts) {
            Ok(()) => println!("scripts/REQUIREMENTS.md is up to date"),
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(101);
            }
        }
        match stacks_table(scripts.len()) {
            Some(table) => {
                if let Err(e) = check_stacks_table(&table) {
                    eprintln!("{e}");
                    std::process::exit(101);
                }
                println!("README.md's table of stacks is up to date");
            }
            None => println!("README.md's table of stacks not checked: the served cases did not all run"),
        }
    } else if complete && !unavailable.is_empty() {
        let names: Vec<&str> = unavailable.iter().map(|(b, _)| b.name()).collect();
        println!("scripts/REQUIREMENTS.md not checked: its {} column needs those cases", names.join(", "));
    }
    conclusion.exit();
}
