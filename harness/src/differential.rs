//! Differential fuzzing (`tcpdrill fuzz`): random but meaningful scripts run on two backends, whose first
//! disagreement is shrunk to a short script a person can read and re-run.
//!
//! A case is a *stimulus*: a handshake prefix (passive or active), then inbound segments near the edges of the
//! sequence and acknowledgment spaces, socket calls and time steps, with no `>` line and no result that matters.
//! It runs on the first backend in record mode ([`crate::run::RunOptions::record`]), which takes every segment the
//! stack sent and every call's result into the trace. [`render`] writes that recording down as an ordinary script:
//! the stimulus, each call with the result it got, and each segment as a `>` line at the time it came (flags,
//! sequence and acknowledgment numbers, length; the window and options are wildcarded, being the stack's own
//! choice). That script passes on the first backend by construction (checked: a case where it does not is
//! counted as unstable, a harness finding of its own, not as a divergence) and runs on the second with packetdrill's semantics, so a divergence
//! is an ordinary failure at a line, with what each backend did there.
//!
//! Divergences are grouped by [`Signature`]: the first backend's state before the divergent line, the stimulus
//! that preceded it, and what differed. The first case of each signature is shrunk (delta debugging over the
//! events after the prefix, then simpler fields of the inbound segments) while its signature holds, and written
//! to the output folder; later cases with the same signature are only counted. Cases come from a seed: the same
//! seed generates the same scripts.

use crate::report::{self, BackendKind, ScriptResult};
use crate::run::{Outcome, RunOptions, TraceEntry, Verdict};
use crate::script::ParseOptions;
use arbitrary::Unstructured;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One event of a stimulus: its delay after the previous one and its text without the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Microseconds after the previous event.
    pub delay: i64,
    /// `< . 1:1(0) ack 1 win 65535`, `write(4, ..., 1000) = 0`.
    pub text: String,
}

impl Line {
    fn new(delay: i64, text: impl Into<String>) -> Line {
        Line { delay, text: text.into() }
    }

    fn inbound(&self) -> bool {
        self.text.starts_with('<')
    }
}

/// A generated case: the handshake prefix, which shrinking keeps, and the events after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stimulus {
    /// The prefix: socket, (bind, listen or connect), the handshake.
    pub prefix: Vec<Line>,
    /// The events under test.
    pub body: Vec<Line>,
}

/// Seconds as a script's relative time writes them: `+0`, `+0.010`.
fn delay_text(us: i64) -> String {
    format!("+{}", crate::script::parser::fmt_secs(us))
}

impl Stimulus {
    /// Every event, prefix first.
    pub fn lines(&self) -> impl Iterator<Item = &Line> {
        self.prefix.iter().chain(&self.body)
    }

    /// The stimulus as a script (relative times), the form record mode runs.
    pub fn text(&self) -> String {
        let mut s = String::from("--tso=off\n");
        for (i, l) in self.lines().enumerate() {
            let t = if i == 0 { "0".to_string() } else { delay_text(l.delay) };
            let _ = writeln!(s, "{t:<8} {}", l.text);
        }
        s
    }
}

/// The generator's picture of the connection so far, for numbers near the edges of the windows.
struct Conn {
    /// The script's next sequence number (relative to its ISN, 0).
    nxt: u32,
    /// Bytes the stack's application wrote: what the stack may have sent, so the ACKs worth trying.
    written: u32,
    /// The stack's application shut down its sending side (its FIN may have gone).
    shut: bool,
    /// The stack's descriptor.
    fd: u8,
}

fn pick<'a, T>(u: &mut Unstructured<'_>, xs: &'a [T]) -> arbitrary::Result<&'a T> {
    u.choose(xs)
}

/// A random but meaningful case (`max_body` events at most after the prefix) from `u`: what both the command
/// line's seeded generator and a coverage-guided fuzz target drive.
pub fn generate(u: &mut Unstructured<'_>, max_body: usize) -> arbitrary::Result<Stimulus> {
    let win = *pick(u, &[65535u32, 65535, 32768, 1000, 0])?;
    let mss = *pick(u, &[1460u32, 1460, 1000, 536])?;
    let mut opts = format!("mss {mss}");
    // Padded to whole words, as packetdrill insists.
    if u.ratio(1, 2)? {
        opts.push_str(",nop,nop,sackOK");
    }
    if u.ratio(1, 3)? {
        let _ = write!(opts, ",nop,wscale {}", pick(u, &[0u8, 2, 7, 14])?);
    }
    let passive = u.ratio(2, 3)?;
    let mut prefix = vec![Line::new(0, "socket(..., SOCK_STREAM, IPPROTO_TCP) = 3")];
    let fd = if passive {
        prefix.extend([
            Line::new(0, "setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0"),
            Line::new(0, "bind(3, ..., ...) = 0"),
            Line::new(0, "listen(3, 1) = 0"),
            Line::new(0, format!("< S 0:0(0) win {} <{opts}>", win.max(1000))),
            Line::new(10_000, format!("< . 1:1(0) ack 1 win {win}")),
            Line::new(0, "accept(3, ..., ...) = 4"),
            Line::new(0, "fcntl(4, F_SETFL, O_RDWR|O_NONBLOCK) = 0"),
        ]);
        4
    } else {
        prefix.extend([
            Line::new(0, "fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0"),
            Line::new(0, "connect(3, ..., ...) = -1 EINPROGRESS"),
            Line::new(10_000, format!("< S. 0:0(0) ack 1 win {} <{opts}>", win.max(1000))),
        ]);
        3
    };
    let mut c = Conn { nxt: 1, written: 0, shut: false, fd };
    let n = u.int_in_range(1..=max_body.max(1))?;
    let mut body = Vec::new();
    for _ in 0..n {
        if u.is_empty() {
            break;
        }
        let delay = *pick(u, &[10_000i64, 10_000, 10_000, 50_000, 200_000, 500_000, 1_000_000, 3_000_000])?;
        let text = match u.int_in_range(0..=19)? {
            0..=9 => segment(u, &mut c)?,
            10..=15 => call(u, &mut c)?,
            _ => "tcp_state() = TCP_ESTABLISHED".to_string(),
        };
        body.push(Line::new(delay, text));
    }
    // A last look a while later: what the stack did by itself (retransmissions, timers) is part of the case.
    body.push(Line::new(*pick(u, &[10_000i64, 300_000, 1_000_000])?, "tcp_state() = TCP_ESTABLISHED"));
    Ok(Stimulus { prefix, body })
}

fn segment(u: &mut Unstructured<'_>, c: &mut Conn) -> arbitrary::Result<String> {
    let flags = *pick(u, &[".", ".", ".", "P.", "P.", "F.", "FP.", "R.", "R", "S", "S.", "F", "P"])?;
    let len: u32 = if flags.contains('R') || flags.contains('S') {
        *pick(u, &[0, 0, 0, 10])?
    } else {
        *pick(u, &[0, 0, 1, 10, 100, 1000, 1460])?
    };
    let seq = match u.int_in_range(0..=9)? {
        0..=5 => c.nxt,
        6 => c.nxt.wrapping_sub(1),
        7 => c.nxt.wrapping_add(1),
        8 => c.nxt.wrapping_add(*pick(u, &[1000u32, 65535, 65536, 1 << 30])?),
        _ => c.nxt.wrapping_sub(*pick(u, &[10u32, 1000, 1 << 30])?),
    };
    let stack_end = 1 + c.written + u32::from(c.shut);
    let ack = match u.int_in_range(0..=9)? {
        0..=4 => stack_end,
        5 => 1,
        6 => stack_end.wrapping_add(1),
        7 => stack_end.wrapping_sub(1).max(1),
        8 => stack_end.wrapping_add(*pick(u, &[1000u32, 1 << 20, 1 << 31])?),
        _ => 0,
    };
    let win = *pick(u, &[65535u32, 65535, 65535, 32768, 1000, 1, 0])?;
    // Only a segment with ACK is taken (RFC 9293 3.10.7.4, fifth check): only then does the script's side move on.
    if seq == c.nxt && flags.contains('.') && !flags.contains('R') && !flags.contains('S') {
        c.nxt = c.nxt.wrapping_add(len + u32::from(flags.contains('F')));
    }
    let end = seq.wrapping_add(len);
    let acking = flags.contains('.');
    Ok(if acking {
        format!("< {flags} {seq}:{end}({len}) ack {ack} win {win}")
    } else {
        format!("< {flags} {seq}:{end}({len}) win {win}")
    })
}

fn call(u: &mut Unstructured<'_>, c: &mut Conn) -> arbitrary::Result<String> {
    let fd = c.fd;
    Ok(match u.int_in_range(0..=9)? {
        0..=3 => {
            let n = *pick(u, &[1u32, 10, 1000, 1460, 5000])?;
            if !c.shut {
                c.written += n;
            }
            format!("write({fd}, ..., {n}) = {n}")
        }
        4..=6 => format!("read({fd}, ..., 2000) = 0"),
        7 => {
            c.shut = true;
            format!("shutdown({fd}, SHUT_WR) = 0")
        }
        8 => format!("shutdown({fd}, {}) = 0", pick(u, &["SHUT_RD", "SHUT_RDWR"])?),
        _ => {
            c.shut = true;
            format!("close({fd}) = 0")
        }
    })
}

/// Options for record and check runs: a short time limit (a case is seconds long).
fn run_options(record: bool, backend: BackendKind) -> RunOptions {
    // Tolerances doubled on a real clock, as the conformance suite runs the linux backend: its timers tick in
    // jiffies, a few milliseconds late.
    let tolerance_scale = if backend.info().real_time { 2.0 } else { 1.0 };
    RunOptions { record, timeout: Duration::from_secs(60), tolerance_scale, ..RunOptions::default() }
}

fn run(text: &str, name: &str, backend: BackendKind, record: bool) -> ScriptResult {
    report::run_text(Path::new(name), name, text, backend, &ParseOptions::default(), &run_options(record, backend))
}

/// A segment line as a check writes it: flags, numbers and length kept; PSH (`p`: either), the window and the
/// options, which are the stack's own choice, wildcarded.
fn expected_segment(text: &str) -> String {
    let mut out = Vec::new();
    let mut words = text.split(' ').peekable();
    let mut first = words.next().map(str::to_string);
    // Ports come first where they are not the connection's (`8080>40124 S. ...`).
    if let Some(ports) = first.take_if(|w| w.contains('>')) {
        out.push(ports);
        first = words.next().map(str::to_string);
    }
    // PSH left open (`p`) on every segment with data: where a sender sets it is its own affair.
    let data = text.split_whitespace().any(|w| w.contains(':') && w.ends_with(')') && !w.ends_with("(0)"));
    out.extend(first.map(|f| match (f.contains('P'), data) {
        (true, _) => f.replace('P', "p"),
        (false, true) => match f.find('.') {
            Some(i) => format!("{}p{}", &f[..i], &f[i..]),
            None => format!("{f}p"),
        },
        (false, false) => f,
    }));
    while let Some(w) = words.next() {
        if w == "win" {
            words.next();
            continue;
        }
        if w.starts_with('<') {
            break; // options run to the end of the line
        }
        out.push(w.to_string());
    }
    format!("{} <...>", out.join(" "))
}

/// The time of the n-th stimulus line, from its delays.
fn times(s: &Stimulus) -> Vec<i64> {
    s.lines()
        .scan(0i64, |t, l| {
            *t += l.delay;
            Some(*t)
        })
        .collect()
}

fn secs(t: i64) -> String {
    crate::run::trace::secs(t)
}

/// Writes a recording (the outcome of `s` in record mode) down as a complete script: each stimulus line at its
/// time (calls with the results they got), each segment the stack sent as a `>` line at the time it came. `Err`
/// when the recording does not account for every line (the run stopped early: the stimulus cannot run there).
pub fn render(s: &Stimulus, rec: &Outcome) -> Result<String, String> {
    if let Verdict::Fail(f) = &rec.verdict {
        return Err(f.headline.clone());
    }
    if let Verdict::Skipped(why) = &rec.verdict {
        return Err(format!("skipped: {why}"));
    }
    let at = times(s);
    let lines: Vec<&Line> = s.lines().collect();
    let mut next = 0usize;
    let mut out = String::from("--tso=off\n");
    let mut last = 0i64;
    fn emit(out: &mut String, last: &mut i64, t: i64, text: &str) {
        *last = (*last).max(t);
        let _ = writeln!(out, "{:<9} {text}", secs(*last));
    }
    // When each sequence range was last sent: a retransmission's time is checked against the interval since
    // then (below).
    let mut sent: BTreeMap<String, i64> = BTreeMap::new();
    for e in &rec.trace.entries {
        match e {
            TraceEntry::Inbound { .. } | TraceEntry::Call { .. } => {
                // Every inbound and call line leaves one entry, in order: each entry is the next line.
                let inbound = matches!(e, TraceEntry::Inbound { .. });
                let Some(l) = lines.get(next) else {
                    return Err(format!("the recording has more events than the stimulus: {e}"));
                };
                if l.inbound() != inbound {
                    return Err(format!("the recording skipped line {}: {}", next + 1, l.text));
                }
                let i = next;
                next += 1;
                let text = match e {
                    TraceEntry::Call { text, .. } => {
                        let got = text.rsplit(" -> ").next().unwrap_or_default();
                        let call = lines[i].text.rsplit_once(" = ").map_or(lines[i].text.as_str(), |(c, _)| c);
                        format!("{call} = {got}")
                    }
                    _ => lines[i].text.clone(),
                };
                emit(&mut out, &mut last, at[i], &text);
            }
            TraceEntry::Outbound { t, text, .. } => {
                let line = expected_segment(text);
                // A retransmission comes when a backed-off timer armed at the previous transmission expires: its
                // time is written as a range of 12.5% of that interval either side (packetdrill's
                // --tolerance_percent, taken over the timer's own interval rather than the gap since the last
                // event), so that one stack's timer granularity, doubled at every backoff, is not a divergence.
                // Only what takes sequence space is retransmitted: pure ACKs repeat their numbers without being
                // retransmissions.
                let mut words = line.split_whitespace().skip_while(|w| w.contains('>'));
                let flags = words.next().unwrap_or_default();
                let range = words.next().unwrap_or_default().to_string();
                let occupies = !range.ends_with("(0)") || flags.contains(['S', 'F']);
                // A timer's doing, not an answer to the stimulus line just before (a fast retransmission answers
                // duplicate ACKs and is timed as packetdrill times any segment). A zero-window probe is one too:
                // the same empty segment again.
                let quiet = next.checked_sub(1).and_then(|i| at.get(i)).is_some_and(|&s| *t - s > 5_000);
                // Keyed by where it starts: a retransmission may be cut shorter (to a shrunk window) or longer.
                let key = if occupies { range.split(':').next().unwrap_or_default().to_string() } else { line.clone() };
                let previous = if occupies || quiet { sent.insert(key, *t) } else { None };
                match previous.filter(|&p| *t - p > 0 && quiet) {
                    Some(p) if *t >= last => {
                        let slack = (*t - p) / 8;
                        let lo = (*t - slack).max(last);
                        // Not past the next stimulus line: the executor would wait for the segment before it.
                        let hi = (*t + slack).min(at.get(next).copied().unwrap_or(i64::MAX)).max(*t);
                        last = *t;
                        let _ = writeln!(out, "{}~{} > {line}", secs(lo), secs(hi));
                    }
                    _ => emit(&mut out, &mut last, *t, &format!("> {line}")),
                }
            }
            TraceEntry::State { .. } | TraceEntry::Note { .. } => {}
        }
    }
    if next != lines.len() {
        return Err(format!("the recording stops before line {}: {}", next + 1, lines[next].text));
    }
    Ok(out)
}

/// What a divergence is about, so that thousands of cases become a short list: the first backend's state before
/// the divergent line, the stimulus that preceded it, and what differed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Signature {
    /// `TCP_ESTABLISHED`.
    pub state: String,
    /// `< FIN with data`, `< ACK without ACK`... (the segment's strongest flag), `write`, `time`.
    pub stimulus: String,
    /// `tcp_ack_seq`, `payload length`, `timing`, `missing packet`, `extra packet`, `write result`.
    pub field: String,
}

impl std::fmt::Display for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} / {} / {}", self.state, self.stimulus, self.field)
    }
}

/// A divergence: the script that shows it and what each backend did at its first divergent line.
#[derive(Debug, Clone)]
pub struct Finding {
    /// What it is about.
    pub signature: Signature,
    /// The rendered script (the first backend's behaviour, which the second does not match).
    pub script: String,
    /// The divergent line, 1-based in `script`.
    pub line: usize,
    /// Its text.
    pub source: String,
    /// What the first backend did there.
    pub first: String,
    /// What the second did.
    pub second: String,
    /// The stimulus it came from.
    pub stimulus: Stimulus,
}

/// The kind of stimulus a rendered line is: an inbound segment's flags, a call's name, a time step.
fn stimulus_kind(line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().skip(1).collect();
    match words.first() {
        Some(&"<") => {
            // Classes of flags rather than the flags themselves: PSH says nothing of the state machine, and a
            // segment's strongest flag decides its path through RFC 9293 3.10.7.
            let flags = words.get(1).copied().unwrap_or_default();
            let class = ['S', 'R', 'F'].into_iter().find(|&f| flags.contains(f)).map_or("ACK", |f| match f {
                'S' => "SYN",
                'R' => "RST",
                _ => "FIN",
            });
            let no_ack = if flags.contains('.') { "" } else { " without ACK" };
            let data = if words.get(2).is_some_and(|w| !w.ends_with("(0)")) { " with data" } else { "" };
            format!("< {class}{no_ack}{data}")
        }
        Some(w) if w.starts_with("tcp_state") => "time".into(),
        Some(w) => w.split('(').next().unwrap_or_default().to_string(),
        None => String::new(),
    }
}

/// What differed, from the second backend's failure message.
fn field_of(msg: &str) -> String {
    if let Some(rest) = msg.split("live packet field ").nth(1) {
        return rest.split(':').next().unwrap_or_default().to_string();
    }
    for (needle, field) in [
        ("live packet payload", "payload length"),
        ("timing error", "timing"),
        ("Timed out waiting for packet", "missing packet"),
        ("unexpected outbound packet", "extra packet"),
        ("skipped", "skipped"),
    ] {
        if msg.contains(needle) {
            return field.into();
        }
    }
    if let Some((call, _)) = msg.split_once(" returned") {
        return format!("{} result", call.split_whitespace().last().unwrap_or(call));
    }
    if msg.contains("tcp_state") {
        return "state".into();
    }
    msg.split(|c: char| c.is_ascii_digit()).next().unwrap_or(msg).trim().to_string()
}

/// The first backend's state at script time `t` of its recording.
fn state_at(rec: &Outcome, t: i64) -> String {
    // The entries are in the order they were collected, which for state changes can be later than they happened:
    // the latest change by `t`, whatever its place.
    let mut latest: Option<(i64, &'static str)> = None;
    for e in &rec.trace.entries {
        if let TraceEntry::State { t: at, to, .. } = e {
            if *at <= t && latest.is_none_or(|(l, _)| *at >= l) {
                latest = Some((*at, to.linux_name()));
            }
        }
    }
    latest.map_or("TCP_CLOSE", |(_, s)| s).to_string()
}

/// Why a case produced no finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoFinding {
    /// Both backends did the same.
    Agree,
    /// The stimulus could not run to its end on the first backend, or the second could not run or skips it:
    /// nothing to compare.
    Unusable(String),
    /// The rendering of the first backend's recording did not pass on that backend again: the recording or
    /// its rendering is wrong, or the backend does not do the same twice. A harness finding, counted apart.
    Unstable(String),
}

/// Runs stimulus `s` on `a` (recording) and its rendering on `a` and `b`: the divergence, if they part.
pub fn check(s: &Stimulus, a: BackendKind, b: BackendKind) -> Result<Finding, NoFinding> {
    let rec = run(&s.text(), "stimulus.pkt", a, true);
    let rec = match rec.outcome {
        Ok(o) => o,
        Err(e) => return Err(NoFinding::Unusable(e)),
    };
    let script = render(s, &rec).map_err(NoFinding::Unusable)?;
    let on_a = run(&script, "case.pkt", a, false);
    if on_a.failed() || on_a.skipped() || on_a.outcome.is_err() {
        return Err(NoFinding::Unstable(format!("{}: {}\n{script}", a.name(), on_a.status())));
    }
    let on_b = run(&script, "case.pkt", b, false);
    if let Err(e) = &on_b.outcome {
        // The second backend could not run it at all (its setup failed): nothing about TCP.
        return Err(NoFinding::Unusable(format!("{} could not run it: {e}", b.name())));
    }
    if let Ok(Outcome { verdict: Verdict::Skipped(why), .. }) = &on_b.outcome {
        // Not a difference in behaviour: the second backend cannot express a call of the case.
        return Err(NoFinding::Unusable(format!("skipped on {}: {why}", b.name())));
    }
    let report::Divergence::At { line, source, first, second } = report::divergence(&script, &on_a, &on_b) else {
        return Err(NoFinding::Agree);
    };
    let lines: Vec<&str> = script.lines().collect();
    // The stimulus this line answers: the nearest inbound segment or call at or before it.
    let stimulus = lines[..line.min(lines.len())]
        .iter()
        .rev()
        .find(|l| l.split_whitespace().nth(1).is_none_or(|w| w != ">"))
        .map(|l| stimulus_kind(l))
        .unwrap_or_default();
    let t = lines
        .get(line.saturating_sub(1))
        .and_then(|l| l.split_whitespace().next())
        // A range (`0.203750~0.256250`) counts from its start.
        .and_then(|t| t.split('~').next().unwrap_or(t).parse::<f64>().ok())
        .map_or(0, |s| (s * 1e6) as i64);
    let signature = Signature { state: state_at(&rec, t - 1), stimulus, field: field_of(&second) };
    Ok(Finding { signature, script, line, source, first, second, stimulus: s.clone() })
}

/// Shrinks `f` while its signature holds: delta debugging over the events after the prefix, then simpler inbound
/// segments (no data, a full window). At most `budget` checks, none started after `deadline`.
pub fn shrink(f: Finding, a: BackendKind, b: BackendKind, budget: usize, deadline: Instant) -> Finding {
    let mut best = f;
    let mut tries = 0usize;
    let attempt = |body: Vec<Line>, best: &mut Finding, tries: &mut usize| -> bool {
        if *tries >= budget || Instant::now() >= deadline {
            return false;
        }
        *tries += 1;
        let s = Stimulus { prefix: best.stimulus.prefix.clone(), body };
        match check(&s, a, b) {
            Ok(g) if g.signature == best.signature => {
                *best = g;
                true
            }
            _ => false,
        }
    };
    // ddmin: remove chunks of halving size while any removal keeps the divergence. The last event, the final
    // look a while later, stays: without an event after it, what the stack did last would not be recorded.
    let removable = |f: &Finding| f.stimulus.body.len().saturating_sub(1);
    let mut chunk = removable(&best).div_ceil(2).max(1);
    loop {
        let mut removed = false;
        let mut start = 0;
        while start < removable(&best) {
            let mut body = best.stimulus.body.clone();
            let end = (start + chunk).min(removable(&best));
            body.drain(start..end);
            if attempt(body, &mut best, &mut tries) {
                removed = true;
            } else {
                start += chunk;
            }
        }
        if !removed {
            if chunk == 1 {
                break;
            }
            chunk = chunk.div_ceil(2);
        }
        if tries >= budget || Instant::now() >= deadline {
            break;
        }
    }
    // Fields: each inbound segment without data, with a full window; each delay as short as the generator makes.
    // Each simplification from the line as it now is, so that an accepted one is kept by the next.
    for i in 0..best.stimulus.body.len() {
        let mut k = 0;
        while let Some(simpler) = simpler_lines(&best.stimulus.body[i]).into_iter().nth(k) {
            let mut body = best.stimulus.body.clone();
            body[i] = simpler;
            if !attempt(body, &mut best, &mut tries) {
                k += 1;
            }
        }
    }
    best
}

fn simpler_lines(l: &Line) -> Vec<Line> {
    let mut out = Vec::new();
    if l.delay > 10_000 {
        out.push(Line::new(10_000, l.text.clone()));
    }
    if l.inbound() {
        let words: Vec<&str> = l.text.split(' ').collect();
        if let Some(range) = words.get(2).filter(|w| !w.ends_with("(0)")) {
            if let Some((seq, _)) = range.split_once(':') {
                let mut w: Vec<String> = words.iter().map(|s| s.to_string()).collect();
                w[2] = format!("{seq}:{seq}(0)");
                out.push(Line::new(l.delay, w.join(" ")));
            }
        }
        if let Some(i) = words.iter().position(|&w| w == "win").filter(|&i| words.get(i + 1) != Some(&"65535")) {
            let mut w: Vec<String> = words.iter().map(|s| s.to_string()).collect();
            w[i + 1] = "65535".into();
            out.push(Line::new(l.delay, w.join(" ")));
        }
    }
    out
}

/// Bytes for case `i` of a campaign seeded `seed` (xorshift, so that a seed names the same cases everywhere).
pub fn case_bytes(seed: u64, i: u64) -> Vec<u8> {
    use rand_core::{Rng, SeedableRng};
    let mut rng = rand_xorshift::XorShiftRng::seed_from_u64(seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut bytes = vec![0u8; 2048];
    rng.fill_bytes(&mut bytes);
    bytes
}

/// A campaign's settings.
#[derive(Debug, Clone)]
pub struct Campaign {
    /// The backend whose behaviour the scripts record.
    pub first: BackendKind,
    /// The backend they are checked on.
    pub second: BackendKind,
    /// The seed of case 0 and all after it.
    pub seed: u64,
    /// Stop after this many cases.
    pub cases: u64,
    /// Or after this long.
    pub time: Duration,
    /// Worker threads.
    pub jobs: usize,
    /// Events after the prefix, at most.
    pub max_events: usize,
    /// Checks a shrink may spend.
    pub shrink_budget: usize,
    /// Where findings go (one `.pkt` per signature, and `SUMMARY.md`); `None`: nowhere.
    pub out: Option<PathBuf>,
}

/// What a campaign found.
#[derive(Debug, Default)]
pub struct Results {
    /// Cases run.
    pub cases: u64,
    /// Cases with nothing to compare ([`NoFinding::Unusable`]).
    pub unusable: u64,
    /// Cases whose rendering failed where it was recorded ([`NoFinding::Unstable`]), with the first one's script.
    pub unstable: (u64, Option<String>),
    /// Why, by the reason's first words (numbers and names left out), with how many cases each.
    pub unusable_why: BTreeMap<String, u64>,
    /// Each signature: its shrunk finding, how many cases showed it, and the file it was written to.
    pub findings: BTreeMap<Signature, (Finding, u64, Option<PathBuf>)>,
}

/// The header a finding's file starts with: what each backend did at the first divergent line.
pub fn header(f: &Finding, c: &Campaign) -> String {
    let mut h = String::new();
    let _ =
        writeln!(h, "// tcpdrill fuzz --backends {},{}: they part at line {{LINE}}.", c.first.name(), c.second.name());
    let _ = writeln!(h, "// signature: {}", f.signature);
    let _ = writeln!(h, "// line {{LINE}}: {}", f.source);
    let _ = writeln!(h, "//   {}: {}", c.first.name(), f.first);
    let _ = writeln!(h, "//   {}: {}", c.second.name(), f.second);
    let _ = writeln!(
        h,
        "// The script asserts what {} did; `tcpdrill diff --backends {},{} FILE` shows it again.",
        c.first.name(),
        c.first.name(),
        c.second.name()
    );
    let lines = h.lines().count();
    h.replace("{LINE}", &(f.line + lines).to_string())
}

fn slug(s: &Signature) -> String {
    let stimulus = s.stimulus.replace('<', "in");
    let raw = format!("{}-{}-{}", s.state, stimulus, s.field).to_lowercase();
    let mut out = String::new();
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').trim_start_matches("tcp-").to_string()
}

/// Runs a campaign: cases from the seed on `jobs` threads until the count or the time is reached; each new
/// signature shrunk and written. `progress` is called after each case with the results so far.
pub fn campaign(c: &Campaign, progress: &(dyn Fn(&Results) + Sync)) -> Results {
    let results = Mutex::new(Results::default());
    let next = AtomicU64::new(0);
    let started = Instant::now();
    // A shrink may go on past the campaign's time by a tenth of it at most.
    let shrink_deadline = started + c.time + c.time / 10;
    let shrinking = Mutex::new(std::collections::BTreeSet::new());
    std::thread::scope(|scope| {
        for _ in 0..c.jobs.max(1) {
            scope.spawn(|| loop {
                if started.elapsed() >= c.time {
                    return;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= c.cases {
                    return;
                }
                let bytes = case_bytes(c.seed, i);
                let Ok(s) = generate(&mut Unstructured::new(&bytes), c.max_events) else { continue };
                // A panic in a case (a backend's or the harness's) is a finding of its own, not the campaign's end.
                let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&s, c.first, c.second)))
                    .unwrap_or_else(|p| {
                        let what = p
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        Err(NoFinding::Unstable(format!("panicked: {what}\n{}", s.text())))
                    });
                let new = match &found {
                    Ok(f) => shrinking.lock().unwrap_or_else(|e| e.into_inner()).insert(f.signature.clone()),
                    Err(_) => false,
                };
                // The first case of a signature is shrunk; later ones, found meanwhile by other workers, only count.
                let found = match found {
                    Ok(f) if new => {
                        let shrunk = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            shrink(f.clone(), c.first, c.second, c.shrink_budget, shrink_deadline)
                        }));
                        Ok((shrunk.unwrap_or(f), true))
                    }
                    Ok(f) => Ok((f, false)),
                    Err(n) => Err(n),
                };
                let mut r = results.lock().unwrap_or_else(|e| e.into_inner());
                r.cases += 1;
                match found {
                    Err(NoFinding::Unusable(why)) => {
                        r.unusable += 1;
                        *r.unusable_why.entry(reason_kind(&why)).or_default() += 1;
                    }
                    Err(NoFinding::Unstable(why)) => {
                        r.unstable.0 += 1;
                        r.unstable.1.get_or_insert(why);
                    }
                    Err(NoFinding::Agree) => {}
                    Ok((f, shrunk)) => {
                        let entry = r.findings.entry(f.signature.clone()).or_insert_with(|| (f.clone(), 0, None));
                        entry.1 += 1;
                        if shrunk {
                            entry.2 = c.out.as_ref().and_then(|dir| write_finding(dir, &f, c).ok());
                            entry.0 = f;
                        }
                    }
                }
                progress(&r);
            });
        }
    });
    let r = results.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(dir) = &c.out {
        let _ = std::fs::write(dir.join("SUMMARY.md"), summary(&r, c));
    }
    r
}

/// A reason without what varies from case to case: the file and line, numbers, the call's arguments.
fn reason_kind(why: &str) -> String {
    let why = why.split_once(".pkt:").map_or(why, |(_, rest)| rest);
    let kept: String = why.chars().filter(|c| !c.is_ascii_digit()).collect();
    let kept = kept.trim_start_matches(':').trim();
    kept.split(['(', '\n']).next().unwrap_or(kept).chars().take(90).collect::<String>().trim().to_string()
}

fn write_finding(dir: &Path, f: &Finding, c: &Campaign) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let base = slug(&f.signature);
    let mut path = dir.join(format!("{base}.pkt"));
    for n in 2.. {
        if !path.exists() {
            break;
        }
        path = dir.join(format!("{base}-{n}.pkt"));
    }
    std::fs::write(&path, format!("{}{}", header(f, c), f.script))?;
    Ok(path)
}

/// The campaign's table: one row per signature, with its count and file.
pub fn summary(r: &Results, c: &Campaign) -> String {
    let mut s = format!(
        "# tcpdrill fuzz --backends {},{} --seed {}\n\n{} cases, {} unusable, {} unstable, {} distinct divergences.\n\n",
        c.first.name(),
        c.second.name(),
        c.seed,
        r.cases,
        r.unusable,
        r.unstable.0,
        r.findings.len()
    );
    if let Some(first) = &r.unstable.1 {
        // A harness bug (or a backend that does not do the same twice): the first case, to run again.
        let _ =
            writeln!(s, "The first unstable case (its rendering failed where it was recorded):\n\n```\n{first}\n```\n");
    }
    if !r.unusable_why.is_empty() {
        s.push_str("Unusable cases (the stimulus could not run to its end on the first backend, or the second skips a call):\n\n");
        let mut why: Vec<_> = r.unusable_why.iter().collect();
        why.sort_by_key(|w| std::cmp::Reverse(*w.1));
        for (w, n) in why.iter().take(8) {
            let _ = writeln!(s, "- {n}: {w}");
        }
        s.push('\n');
    }
    s.push_str("| signature | cases | events | script |\n|---|---|---|---|\n");
    let mut rows: Vec<_> = r.findings.values().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    for (f, n, path) in rows {
        let file = path.as_ref().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().to_string());
        let _ = writeln!(s, "| {} | {n} | {} | {} |", f.signature, f.stimulus.body.len(), file.unwrap_or_default());
    }
    s
}
