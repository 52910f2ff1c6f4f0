//! The event loop: events in order, time, the run's limit. See the parent module for the semantics. Each stage of
//! an event has a file of its own: `preflight` (what a backend cannot run), `inbound` (`<` lines), `outbound`
//! (where a `>` line is matched), `calls` (syscalls), `python` (`%{ }%` blocks).

mod calls;
mod inbound;
mod outbound;
mod preflight;
mod python;
mod space;

use calls::*;
use preflight::*;
use space::ScriptSpace;

use super::trace::{secs, Trace, TraceEntry};
use super::{Failure, Outcome, Verdict};
use crate::backend::{Backend, Call, CallResult, IpVersion, Micros};
use crate::script::ast::*;
use crate::script::printer;
use crate::script::symbols::symbol_value;
use crate::script::ScriptError;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tcpdrill_stack::host::{Domain, Shutdown, SockOptName, SockOptValue};
use tcpdrill_stack::wire::{
    Checksums, IpRepr, Numbering, SackBlocks, TcpDatagram, TcpFlags, TcpOption, TcpOptions, TcpRepr,
};
use tcpdrill_stack::{Errno, FourTuple, SeqNum, TcpState};

/// Knobs of a run, from the CLI and the script's header options.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// `--tolerance_usecs`: the least timing tolerance.
    pub tolerance_usecs: i64,
    /// `--tolerance_percent`: tolerance as a share of the gap since the previous event.
    pub tolerance_percent: f64,
    /// Multiplies every tolerance (for slow machines running a real-time backend).
    pub tolerance_scale: f64,
    /// How long past its expected time an outbound packet is waited for before "timed out".
    pub packet_timeout_usecs: i64,
    /// The port `bind(..., ...)` gives the stack (packetdrill's --bind_port).
    pub port: u16,
    /// The port `connect(..., ...)` goes to (packetdrill's --connect_port).
    pub connect_port: u16,
    /// The harness's own port for passive scripts; a backend that needs one of its own per run
    /// (`Backend::remote_port`: the raw backend on a shared link) overrides it.
    pub remote_port: u16,
    /// The script's folder: shell commands run there, as packetdrill's runners do.
    pub script_dir: Option<std::path::PathBuf>,
    /// The run's time limit (`--timeout`), in wall time and, for a call blocked in place, in script time: a
    /// script that needs longer fails alone with that reason. packetdrill's runner allows 180 s.
    pub timeout: std::time::Duration,
    /// `--strict_segments`: an outbound packet line matches exactly one segment; by default consecutive segments
    /// whose sequence ranges join are taken together, as packetdrill does for TSO/GSO and cwnd-cut data.
    pub strict_segments: bool,
    /// Header options given on the command line (packetdrill's flags, `tcpdrill --tolerance_usecs=10000
    /// SCRIPT`), which override the script's own as packetdrill's command line does.
    pub header: Vec<(String, Option<String>)>,
    /// The IP version the run chose for the script (`--ip-version`), applied as run_all.py's flags for it.
    pub variant: Option<crate::backend::IpVersion>,
    /// Record rather than check (`tcpdrill fuzz`): the stack's segments are taken into the trace as they come
    /// (learning its ISN from its SYN as a `>` line at 0 would) and no call result is compared; a script of
    /// inbound packets and calls then records what the stack did, for [`crate::differential`] to write down as
    /// the lines of a complete script.
    pub record: bool,
}

impl RunOptions {
    /// Every header option a script runs with, in the order they apply (a later one wins): the flags of the IP
    /// version the run chose (`--ip_version`, and run_all.py's `--mtu=1520` for IPv6), which the script may
    /// override; then the script's own; then the command line's, which override the script's as packetdrill's
    /// (config.c: "Command line options overwrite options in script").
    pub fn header_options(&self, script: &[HeaderOption]) -> Vec<(String, Option<String>)> {
        let mut out = Vec::new();
        if let Some(v) = self.variant {
            out.push(("ip_version".to_string(), Some(v.name().to_string())));
            if v == crate::backend::IpVersion::V6 {
                out.push(("mtu".to_string(), Some("1520".to_string())));
            }
        }
        out.extend(script.iter().map(|o| (o.name.clone(), o.value.clone())));
        out.extend(self.header.iter().cloned());
        out
    }
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            tolerance_usecs: 4_000,
            tolerance_percent: 12.5,
            tolerance_scale: 1.0,
            packet_timeout_usecs: 2_000_000,
            port: 8080,
            connect_port: 8080,
            remote_port: 40_123,
            script_dir: None,
            timeout: std::time::Duration::from_secs(180),
            strict_segments: false,
            header: Vec::new(),
            variant: None,
            record: false,
        }
    }
}

struct Exec<'a> {
    /// The script's name, as failures show it.
    file: Arc<str>,
    /// The script's text, for located diagnostics.
    source: Arc<str>,
    /// The stack under test.
    backend: &'a mut dyn Backend,
    opts: RunOptions,
    /// What happened, in order, for `-v`, diagrams and golden traces.
    trace: Trace,
    /// The stack's address (packetdrill's local_ip).
    local_ip: IpAddr,
    /// The address the script speaks from (packetdrill's remote_ip).
    remote_ip: IpAddr,
    /// The stack's port for the script's connection (learned from its SYN for active opens).
    local_port: Option<u16>,
    /// The script's port for its connection.
    remote_port: u16,
    /// The script<->live numbering of every connection.
    space: ScriptSpace,
    /// `--tcp_ts_tick_usecs`: TSval is checked within the tolerance in ticks of this length, when set.
    ts_tick_usecs: Option<i64>,
    /// The TSval tolerance of the packet being checked, microseconds.
    ts_tolerance_usecs: i64,
    /// Script fd -> the backend's fd (packetdrill maps them the same way: scripts write the numbers they expect).
    fds: BTreeMap<i64, i32>,
    /// Script fds closed since they were opened: poll() refuses them as packetdrill's to_live_fd does.
    closed_fds: std::collections::BTreeSet<i64>,
    /// Backend fds set O_NONBLOCK: their calls return EAGAIN instead of blocking.
    nonblocking: BTreeMap<i32, bool>,
    /// A blocking call still running (written `t1...t2`).
    pending: Option<Pending>,
    /// The socket `%{ }%` blocks look at (packetdrill's socket under test): the last accepted or connecting fd.
    under_test: Option<i32>,
    /// `%{ }%` blocks with their TCP_INFO snapshots, run by python3 once the script has passed.
    code: Vec<(Code, Vec<(&'static str, i64)>)>,
    /// Script time the previous event was due at (the start of its window): tolerance gaps count from it.
    prev: Micros,
    /// The previous event was an inbound packet: a relative inbound packet right after it counts from its script
    /// time rather than from the clock, as packetdrill anchors them.
    prev_inbound: bool,
    /// The latest backend time an event ran at: the script's length, reported in the outcome.
    last_time: Micros,
    /// When the run's time limit runs out, on the wall clock.
    deadline: std::time::Instant,
    /// The backend runs on the real clock (its waits take wall time).
    real_time: bool,
    /// The backend's socket API is Linux's: options and flags the stack does not model go to it by number.
    linux_api: bool,
    /// What the backend (without a shell) left out of the script's commands, with why.
    ignored: Vec<String>,
    /// The last (script, live) IPv6 flow label pair an outbound packet matched.
    flow_labels: std::cell::Cell<Option<(u32, u32)>>,
    /// Live fds of sockets made and not yet connected or listening: a Fast Open sendto() on one is its connect()
    /// (fd numbers are reused, so the socket under test's number does not tell).
    fresh: std::collections::BTreeSet<i32>,
    /// The event being run, for failures found while waiting.
    current: Span,
    /// Byte offsets where the script's lines start.
    line_starts: Vec<usize>,
    /// Every (stack, harness) address pair a segment went between, for tcp_state's "no such connection".
    seen: std::collections::BTreeSet<(SocketAddr, SocketAddr)>,
}

/// A call written `t1...t2` that blocked: it runs on meanwhile, as on packetdrill's syscall thread.
struct Pending {
    /// The call, translated for the backend.
    call: Call,
    /// Its script line.
    event: Event,
    /// Its `t2`.
    end: Micros,
    /// When it was started, backend time.
    start: Micros,
}

type Res<T> = Result<T, Box<Failure>>;

/// Runs `script` (parsed from `text`, named `file`) on `backend`.
pub fn run(file: &str, text: &str, script: &Script, backend: &mut dyn Backend, opts: RunOptions) -> Outcome {
    let (local_ip, remote_ip) = backend.addresses();
    let (real_time, linux_api) = (backend.capabilities().real_time, backend.capabilities().linux_api);
    let deadline = std::time::Instant::now() + opts.timeout;
    let mut x = Exec {
        file: Arc::from(file),
        source: Arc::from(text),
        backend,
        opts,
        trace: Trace::default(),
        local_ip,
        remote_ip,
        local_port: None,
        remote_port: 0,
        space: ScriptSpace::default(),
        ts_tick_usecs: None,
        ts_tolerance_usecs: 0,
        fds: BTreeMap::new(),
        closed_fds: std::collections::BTreeSet::new(),
        nonblocking: BTreeMap::new(),
        pending: None,
        under_test: None,
        code: Vec::new(),
        prev: 0,
        prev_inbound: false,
        last_time: 0,
        deadline,
        real_time,
        linux_api,
        fresh: Default::default(),
        ignored: Vec::new(),
        flow_labels: Default::default(),
        current: Span::default(),
        seen: Default::default(),
        line_starts: std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect(),
    };
    x.remote_port = x.backend.remote_port().unwrap_or(x.opts.remote_port);
    if let Some(reason) = x.preflight(script) {
        return Outcome {
            verdict: Verdict::Skipped(reason),
            trace: x.trace,
            script_micros: 0,
            exercised: Vec::new(),
            ignored: Vec::new(),
        };
    }
    let verdict = match x.events(script) {
        Ok(()) => Verdict::Pass,
        Err(f) => Verdict::Fail(f),
    };
    x.collect_states();
    let exercised = x.backend.exercised();
    Outcome { verdict, trace: x.trace, script_micros: x.last_time, exercised, ignored: x.ignored }
}

fn is_linux_knob(name: &str) -> bool {
    name.starts_with("net.ipv4.") || name.starts_with("net.core.") || name.starts_with("net/ipv4/")
}

impl<'a> Exec<'a> {
    /// The 1-based script line a span starts on; by binary search, so that a long script runs in linear time.
    fn line(&self, span: Span) -> usize {
        self.line_starts.partition_point(|&start| start <= span.start)
    }

    fn fail(&self, span: Span, headline_kind: &str, msg: String, details: Vec<String>, label: &str) -> Box<Failure> {
        let line = self.line(span);
        let headline = format!("{}:{line}: {headline_kind}: {msg}", self.file);
        let mut diag = ScriptError::new(self.file.clone(), self.source.clone(), span, msg, label);
        if !details.is_empty() {
            diag = diag.with_help(details.join("\n"));
        }
        Box::new(Failure { line, headline, details, diagnostic: diag })
    }

    /// packetdrill's tolerance for something due at `expected` (run.c, `verify_time`): the larger of
    /// --tolerance_usecs and --tolerance_percent of the gap since the previous event.
    fn tolerance(&self, expected: Micros) -> Micros {
        self.tolerance_over(expected - self.prev)
    }

    fn tolerance_over(&self, gap: Micros) -> Micros {
        let t = (self.opts.tolerance_usecs as f64).max(self.opts.tolerance_percent / 100.0 * gap.max(0) as f64);
        (t * self.opts.tolerance_scale) as Micros
    }

    /// Fails once the run has used up its time limit (`--timeout`).
    fn within_limit(&self) -> Res<()> {
        if std::time::Instant::now() < self.deadline {
            return Ok(());
        }
        Err(self.out_of_time())
    }

    fn out_of_time(&self) -> Box<Failure> {
        let msg = format!("the script ran past its time limit of {} s (--timeout)", self.opts.timeout.as_secs_f64());
        self.fail(self.current, "error running script", msg, vec![], "still running here")
    }

    /// The latest script time a wait may reach: on a real clock, no later than the time limit allows; a virtual
    /// clock's jumps take no time.
    fn bounded(&self, t: Micros) -> Micros {
        if !self.real_time {
            return t;
        }
        let left = self.deadline.saturating_duration_since(std::time::Instant::now()).as_micros();
        t.min(self.backend.now().saturating_add(i64::try_from(left).unwrap_or(i64::MAX)))
    }

    /// packetdrill's check that an event ran when it was due (run.c, `check_event_time`): one can run late only
    /// after a call that blocked the script (or on a busy machine, on a real clock).
    fn check_on_time(&self, e: &Event, due: Micros) -> Res<()> {
        let now = self.backend.now();
        let tol = self.tolerance(due);
        if now <= due.saturating_add(tol) {
            return Ok(());
        }
        let what = match &e.action {
            Action::Packet(_) => "inbound packet",
            Action::Syscall(_) => "system call start",
            Action::Shell(_) => "command",
            Action::Code(_) => "data collection for code",
        };
        Err(self.fail(e.time_span, "error handling event", timing_error(what, due, due, now, tol), vec![], "due here"))
    }

    fn events(&mut self, s: &Script) -> Res<()> {
        for c in &s.init {
            self.shell_or_sysctl(c)?;
        }
        self.backend.start_clock();
        // The init commands ran before the clock started: they belong at its 0, not at the times they took.
        for e in &mut self.trace.entries {
            if let TraceEntry::Note { t, .. } = e {
                *t = 0;
            }
        }
        for (i, e) in s.events.iter().enumerate() {
            self.current = e.span;
            self.within_limit()?;
            // packetdrill's base for relative times (run.c, `adjust_relative_event_times`): the clock when the
            // event comes up, so that a real-time stack's small lateness does not add up over a chain of events
            // (after an outbound packet that is when it came; after a call, when it returned), except that an
            // inbound packet right after another counts from that one's script time.
            let inbound = matches!(&e.action, Action::Packet(p) if p.direction == Direction::Inbound);
            let base = if inbound && self.prev_inbound { self.prev } else { self.backend.now() };
            let (start, end) = e.time.window(base);
            let on_time = |x: &Self| if i == 0 { Ok(()) } else { x.check_on_time(e, start) };
            match &e.action {
                Action::Packet(p) if p.direction == Direction::Outbound => {
                    self.expect_packet(e, p, start, end)?;
                }
                Action::Packet(p) => {
                    self.advance(start)?;
                    self.record_outbound();
                    on_time(self)?;
                    self.inject(e, p)?;
                }
                Action::Syscall(c) => {
                    self.advance(start)?;
                    self.record_outbound();
                    on_time(self)?;
                    let expected_end = matches!(e.time, TimeSpec::Blocking(..)).then_some(end);
                    self.syscall(e, c, start, expected_end)?;
                }
                Action::Shell(c) => {
                    self.advance(start)?;
                    on_time(self)?;
                    self.shell_or_sysctl(c)?;
                }
                Action::Code(code) => {
                    self.advance(start)?;
                    on_time(self)?;
                    self.snapshot(code)?;
                }
            }
            self.prev = start;
            self.prev_inbound = inbound;
            self.last_time = self.last_time.max(self.backend.now());
            self.poll_pending()?;
        }
        // As packetdrill stops its syscall thread (`syscalls_free`): a call still blocked has a second to return.
        let idle = self.await_pending()?;
        self.record_outbound();
        // Anything the stack sent up to the last event that no line accounted for.
        let last = self.backend.now();
        if let Some((t, d)) = self.backend.next_outbound(last) {
            let text = self.outbound_text(&d);
            let span = s.events.last().map_or(Span::default(), |e| e.span);
            self.trace.entries.push(TraceEntry::Outbound { t, text: text.clone(), bytes: d });
            return Err(self.fail(
                span,
                "error handling packet",
                "unexpected outbound packet".into(),
                vec![format!("actual packet: {} {text}", secs(t)), "no > line of the script expects it".into()],
                "after this event",
            ));
        }
        if let Some(p) = self.pending.take().filter(|_| !idle) {
            let e = &p.event;
            return Err(self.fail(
                e.span,
                "error handling syscall",
                format!("runtime error: exiting while a blocking system call is in progress ({})", call_name(&p.call)),
                vec![
                    format!("it started at {} s and was due back at {} s", secs(p.start), secs(p.end)),
                    "packetdrill waits one second after the last event for it, as tcpdrill does".into(),
                ],
                "still blocked at the end of the script",
            ));
        }
        for c in &s.cleanup {
            self.shell_or_sysctl(c)?;
        }
        self.run_python()
    }

    fn collect_states(&mut self) {
        for (t, tuple, from, to) in self.backend.state_changes() {
            self.trace.entries.push(TraceEntry::State { t, tuple, from, to });
        }
        for (t, text) in self.backend.notes() {
            self.trace.entries.push(TraceEntry::Note { t, text });
        }
    }

    /// Lets time pass to `t`. While a call is blocked, time stops at every wake-up of the stack on the way so
    /// that the call returns at the exact moment it can.
    fn advance(&mut self, t: Micros) -> Res<()> {
        while self.pending.is_some() {
            self.within_limit()?;
            let now = self.backend.now();
            // A waiting poll() returns at its timeout: a virtual clock stops there too.
            let timeout =
                self.pending.as_ref().and_then(|p| calls::poll_until(&p.call)).filter(|&u| u >= now && u <= t);
            if let Some(u) = timeout.filter(|_| !self.real_time) {
                if self.backend.next_event_time().is_none_or(|w| w > u || w < now) {
                    self.backend.advance_to(u);
                    self.collect_states();
                    self.poll_pending()?;
                    continue;
                }
            }
            match self.backend.next_event_time() {
                // A real-time backend cannot say when the stack will act: look every 5 ms.
                None if now < t => {
                    self.backend.advance_to((now + 5_000).min(t));
                    self.collect_states();
                    self.poll_pending()?;
                }
                Some(w) if w <= t && w >= now => {
                    self.backend.advance_to(w);
                    self.collect_states();
                    self.poll_pending()?;
                    if self.backend.next_event_time() == Some(w) {
                        break; // nothing fired: do not spin
                    }
                }
                _ => break,
            }
        }
        self.backend.advance_to(self.bounded(t));
        self.collect_states();
        if self.backend.now() < t {
            return Err(self.out_of_time());
        }
        self.poll_pending()
    }

    fn shell_or_sysctl(&mut self, c: &Command) -> Res<()> {
        let t = self.backend.now();
        if !self.backend.capabilities().shell {
            // What preflight read (and found runnable) of the command, done now.
            let settings = self
                .settings(c)
                .map_err(|m| self.fail(c.span, "error executing command", m, vec![], "this command"))?;
            if let Some(why) = settings.iter().find_map(|s| match s {
                Setting::Refuse(why) => Some(why.clone()),
                _ => None,
            }) {
                return Err(self.fail(c.span, "error executing command", why, vec![], "this command"));
            }
            // All of a command's settings at once: the raw backend makes them one round trip to its agent.
            let apply: Vec<(String, String)> = settings
                .iter()
                .filter_map(|s| match s {
                    Setting::Apply(k, v) => Some((k.clone(), v.clone())),
                    _ => None,
                })
                .collect();
            self.backend
                .set_knobs(&apply)
                .map_err(|m| self.fail(c.span, "error executing command", m, vec![], "this sysctl"))?;
            for s in settings {
                match s {
                    Setting::Apply(k, v) => {
                        self.trace.entries.push(TraceEntry::Note { t, text: format!("sysctl {k}={v}") });
                    }
                    Setting::Ignore(why) => {
                        self.trace.entries.push(TraceEntry::Note { t, text: format!("ignored: {why}") });
                        self.trace.lines.push((self.line(c.span), format!("{} ignored: {why}", secs(t))));
                        self.ignored.push(why);
                    }
                    Setting::Refuse(_) => {}
                }
            }
            return Ok(());
        }
        if let Some(kv) = sysctl_assignments(&c.text).filter(|kv| kv.iter().all(|(k, _)| is_linux_knob(k))) {
            for (k, v) in kv {
                self.backend.set_knob(&k, &v).map_err(|e| {
                    self.fail(c.span, "error executing command", format!("sysctl {k}={v}: {e}"), vec![], "this sysctl")
                })?;
                self.trace.entries.push(TraceEntry::Note { t, text: format!("sysctl {k}={v}") });
            }
            return Ok(());
        }
        let cwd = self.opts.script_dir.clone();
        self.backend.shell(&c.text, cwd.as_deref(), self.deadline).map_err(|e| {
            self.fail(c.span, "error executing command", format!("`{}` failed: {e}", c.text), vec![], "this command")
        })?;
        self.trace.entries.push(TraceEntry::Note { t, text: format!("`{}`", c.text) });
        Ok(())
    }
}

/// packetdrill's words for something that came outside its window (run.c, `verify_time`).
fn timing_error(what: &str, start: Micros, end: Micros, actual: Micros, tol: Micros) -> String {
    let when =
        if start == end { format!("at {}", secs(start)) } else { format!("in [{}, {}]", secs(start), secs(end)) };
    format!(
        "timing error: expected {what} {when} sec but happened at {} sec; tolerance {} sec",
        secs(actual),
        secs(tol)
    )
}
