//! The event loop. See the parent module for the semantics.

use super::trace::{secs, Trace, TraceEntry};
use super::{Failure, Outcome, Verdict};
use crate::backend::{Backend, Call, CallResult, Micros};
use crate::script::ast::*;
use crate::script::printer;
use crate::script::symbols::symbol_value;
use crate::script::ScriptError;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tcpdrill_stack::host::{Domain, Shutdown, SockOptName, SockOptValue};
use tcpdrill_stack::wire::{Checksums, IpRepr, SackBlocks, TcpDatagram, TcpFlags, TcpOption, TcpOptions, TcpRepr};
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
    /// The harness's own port for passive scripts.
    pub remote_port: u16,
    /// The script's folder: shell commands run there, as packetdrill's runners do.
    pub script_dir: Option<std::path::PathBuf>,
    /// The run's time limit (`--timeout`), in wall time and, for a call blocked in place, in script time: a
    /// script that needs longer fails alone with that reason. packetdrill's runner allows 180 s.
    pub timeout: std::time::Duration,
    /// `--strict_segments`: an outbound packet line matches exactly one segment; by default consecutive segments
    /// whose sequence ranges join are taken together, as packetdrill does for TSO/GSO and cwnd-cut data.
    pub strict_segments: bool,
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
        }
    }
}

struct Exec<'a> {
    file: Arc<str>,
    source: Arc<str>,
    backend: &'a mut dyn Backend,
    opts: RunOptions,
    trace: Trace,
    local_ip: IpAddr,
    remote_ip: IpAddr,
    /// The stack's port for the script's connection (learned from its SYN for active opens).
    local_port: Option<u16>,
    remote_port: u16,
    /// The stack's ISN last learned: numbers of a connection whose own ISN is unknown are relative to it.
    local_isn: Option<Isn>,
    /// The stack's ISN of every connection seen, by (stack port, harness port): each connection's numbers are
    /// relative to its own, as packetdrill keeps one per socket.
    isns: BTreeMap<(u16, u16), Isn>,
    /// The script's (the harness's) ISN last set by an inbound SYN or SYN-ACK, and each connection's.
    remote_isn: Option<u32>,
    remote_isns: BTreeMap<(u16, u16), u32>,
    /// A connect() started a connection whose SYN-ACK has not come yet: the next inbound SYN-ACK sets the script's
    /// ISN for it.
    awaiting_synack: bool,
    /// The tuple and script ISN of a SYN sent on a tuple already in use: they become the connection's when the
    /// stack answers with a SYN-ACK, as the stack's own ISN is learned afresh then (tcpdrill's new incarnations).
    reopening: Option<((u16, u16), u32)>,
    /// The 4-tuple (stack port, harness port) the ISN was learned on: a later SYN on the same tuple (a
    /// simultaneous open's SYN-ACK) is checked against it, not learned from.
    isn_tuple: Option<(u16, u16)>,
    /// Whether the ISN in use was learned from a bare SYN (an active open).
    isn_from_syn: bool,
    /// A new connection may have begun since the ISN was learned (a connect() call or an inbound SYN): the next SYN
    /// on the same tuple belongs to a new incarnation with an ISN of its own, unless it is the SYN-ACK of a
    /// simultaneous open.
    new_incarnation: bool,
    /// Every ISN learned, in order, with its tuple and the end of the sequence space the stack used from it: the
    /// `tcp_isn_*()` extensions compare them.
    isn_history: Vec<((u16, u16), u32, u32)>,
    ts_offset: Option<u32>,
    ts_tick_usecs: Option<i64>,
    /// The TSval tolerance of the packet being checked, microseconds.
    ts_tolerance_usecs: i64,
    fds: BTreeMap<i64, i32>,
    nonblocking: BTreeMap<i32, bool>,
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
    last_time: Micros,
    /// When the run's time limit runs out, on the wall clock.
    deadline: std::time::Instant,
    /// The backend runs on the real clock (its waits take wall time).
    real_time: bool,
    /// The event being run, for failures found while waiting.
    current: Span,
    /// Byte offsets where the script's lines start.
    line_starts: Vec<usize>,
    /// Every (stack, harness) address pair a segment went between, for tcp_state's "no such connection".
    seen: std::collections::BTreeSet<(SocketAddr, SocketAddr)>,
}

/// The stack's ISN on one connection: the live one, and the sequence number the script's SYN line gave it.
#[derive(Debug, Clone, Copy)]
struct Isn {
    live: u32,
    script: u32,
}

/// A call written `t1...t2` that blocked: it runs on meanwhile, as on packetdrill's syscall thread.
struct Pending {
    call: Call,
    event: Event,
    /// Its `t2`.
    end: Micros,
    start: Micros,
}

type Res<T> = Result<T, Box<Failure>>;

/// Runs `script` (parsed from `text`, named `file`) on `backend`.
pub fn run(file: &str, text: &str, script: &Script, backend: &mut dyn Backend, opts: RunOptions) -> Outcome {
    let (local_ip, remote_ip) = backend.addresses();
    let real_time = backend.capabilities().real_time;
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
        local_isn: None,
        isns: BTreeMap::new(),
        remote_isn: None,
        remote_isns: BTreeMap::new(),
        awaiting_synack: false,
        reopening: None,
        isn_tuple: None,
        isn_from_syn: false,
        new_incarnation: false,
        isn_history: Vec::new(),
        ts_offset: None,
        ts_tick_usecs: None,
        ts_tolerance_usecs: 0,
        fds: BTreeMap::new(),
        nonblocking: BTreeMap::new(),
        pending: None,
        under_test: None,
        code: Vec::new(),
        prev: 0,
        prev_inbound: false,
        last_time: 0,
        deadline,
        real_time,
        current: Span::default(),
        seen: Default::default(),
        line_starts: std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect(),
    };
    x.remote_port = x.opts.remote_port;
    if let Some(reason) = x.preflight(script) {
        return Outcome { verdict: Verdict::Skipped(reason), trace: x.trace, script_micros: 0, exercised: Vec::new() };
    }
    let verdict = match x.events(script) {
        Ok(()) => Verdict::Pass,
        Err(f) => Verdict::Fail(f),
    };
    x.collect_states();
    let exercised = x.backend.exercised();
    Outcome { verdict, trace: x.trace, script_micros: x.last_time, exercised }
}

/// A Python string literal holding `s`.
fn py_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 || !c.is_ascii() => out.push_str(&format!("\\U{:08x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The program that runs the `%{ }%` blocks: packetdrill's names (`tcpi_*`, `TCP_CA_*`, `TCPI_OPT_*`) bound to
/// each block's own snapshot, each block dedented and run by itself.
fn python_program(blocks: &[(Code, Vec<(&'static str, i64)>)]) -> String {
    let mut p = String::from(
        "import sys, textwrap, traceback\n\
         base = dict(TCP_CA_Open=0, TCP_CA_Disorder=1, TCP_CA_CWR=2, TCP_CA_Recovery=3, TCP_CA_Loss=4,\n\
         \x20           TCPI_OPT_TIMESTAMPS=1, TCPI_OPT_SACK=2, TCPI_OPT_WSCALE=4, TCPI_OPT_ECN=8,\n\
         \x20           TCPI_OPT_ECN_SEEN=16, TCPI_OPT_SYN_DATA=32)\n\
         blocks = []\n",
    );
    for (code, vars) in blocks {
        let env: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
        p.push_str(&format!("blocks.append((dict({}), {}))\n", env.join(", "), py_str(&code.text)));
    }
    p.push_str(
        "for n, (env, code) in enumerate(blocks):\n\
         \x20   g = dict(base)\n\
         \x20   g.update(env)\n\
         \x20   try:\n\
         \x20       exec(compile(textwrap.dedent(code).strip(), 'block %d' % n, 'exec'), g)\n\
         \x20   except Exception as e:\n\
         \x20       msg = ''.join(traceback.format_exception_only(type(e), e)).strip().replace(chr(10), ' ')\n\
         \x20       print('block %d: %s' % (n, msg), file=sys.stderr)\n\
         \x20       sys.exit(1)\n",
    );
    p
}

/// `sysctl [-q] [-w] a.b.c=v ...` as (name, value) pairs; `None` if the command is anything else.
fn sysctl_assignments(cmd: &str) -> Option<Vec<(String, String)>> {
    let mut words = cmd.split_whitespace();
    if words.next()? != "sysctl" {
        return None;
    }
    let mut out = Vec::new();
    for w in words {
        if w.starts_with('-') {
            if !["-q", "-w", "-qw", "-wq", "-e"].contains(&w) {
                return None;
            }
            continue;
        }
        let (k, v) = w.split_once('=')?;
        out.push((k.to_string(), v.trim_matches('"').to_string()));
    }
    (!out.is_empty()).then_some(out)
}

fn is_linux_knob(name: &str) -> bool {
    name.starts_with("net.ipv4.") || name.starts_with("net.core.") || name.starts_with("net/ipv4/")
}

impl<'a> Exec<'a> {
    // ---- failures ----------------------------------------------------------------------------------------

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

    // ---- what the backend cannot do ----------------------------------------------------------------------

    fn preflight(&mut self, s: &Script) -> Option<String> {
        let caps = self.backend.capabilities();
        let name = self.backend.name();
        for o in &s.options {
            let v = o.value.as_deref().unwrap_or("");
            // The parser let through only known options with well-formed values.
            if let Some(why) = crate::script::options::spec(&o.name).and_then(|spec| spec.unsupported) {
                return Some(why.to_string());
            }
            let address = |want: IpAddr| v.parse::<IpAddr>().ok() == Some(want);
            match o.name.as_str() {
                "tolerance_usecs" => self.opts.tolerance_usecs = v.parse().unwrap_or(self.opts.tolerance_usecs),
                "tolerance_percent" => self.opts.tolerance_percent = v.parse().unwrap_or(self.opts.tolerance_percent),
                "tcp_ts_tick_usecs" => self.ts_tick_usecs = v.parse().ok().filter(|t| *t > 0),
                "bind_port" => self.opts.port = v.parse().unwrap_or(self.opts.port),
                "connect_port" => self.opts.connect_port = v.parse().unwrap_or(self.opts.connect_port),
                "strict_segments" => self.opts.strict_segments = true,
                "local_ip" | "gateway_ip" if !address(self.local_ip) => {
                    return Some(format!("--{}={v}: the {name} backend's stack has address {}", o.name, self.local_ip))
                }
                "remote_ip" if !address(self.remote_ip) => {
                    return Some(format!("--remote_ip={v}: the {name} backend's peer has address {}", self.remote_ip))
                }
                "netmask_ip" if v != "255.255.0.0" => {
                    return Some(format!("--netmask_ip={v}: the {name} backend's link is a /16 (255.255.0.0)"))
                }
                "ip_version" if v != "ipv4" => {
                    return Some(format!("--ip_version={v}: the {name} backend runs IPv4 scripts only for now"))
                }
                "mtu" => {
                    if let Err(e) = self.backend.set_knob("mtu", v) {
                        return Some(format!("--mtu={v}: {e}"));
                    }
                }
                // tcpdrill's own: `--tso=off` makes the Linux backend's TUN show segments as they go on the wire
                // instead of packetdrill's TSO super-packets, for scripts that check segmentation.
                "tso" => {
                    if let Err(e) = self.backend.set_knob("tso", v) {
                        return Some(format!("--tso={v}: {e}"));
                    }
                }
                _ => {}
            }
        }
        let commands = s.init.iter().chain(&s.cleanup).map(|c| (c, true));
        let timed = s.events.iter().filter_map(|e| match &e.action {
            Action::Shell(c) => Some((c, false)),
            _ => None,
        });
        for (c, _untimed) in commands.chain(timed) {
            let line = self.line(c.span);
            match sysctl_assignments(&c.text) {
                Some(kv) if kv.iter().all(|(k, _)| is_linux_knob(k)) => {}
                Some(kv) if !caps.shell => {
                    let bad = kv.iter().find(|(k, _)| !is_linux_knob(k)).map(|(k, _)| k.clone()).unwrap_or_default();
                    return Some(format!("{bad} (line {line}) is not a Linux sysctl"));
                }
                None if !caps.shell => {
                    return Some(format!("needs the linux backend (shell command at line {line})"));
                }
                _ => {}
            }
        }
        for e in &s.events {
            let line = self.line(e.span);
            match &e.action {
                Action::Code(_) if !caps.python && caps.shell => {
                    return Some(format!("needs python3 to run the %{{ }}% block at line {line}; none is installed"));
                }
                Action::Code(_) if !caps.python => {
                    return Some(format!("needs the linux backend (%{{ }}% block at line {line})"));
                }
                Action::Packet(p) => match &p.body {
                    PacketBody::Udp { .. } | PacketBody::Icmp { .. } => {
                        return Some(format!("UDP and ICMP packets are not supported yet (line {line})"));
                    }
                    PacketBody::Tcp(t) if p.direction == Direction::Inbound && t.win.is_none() => {
                        return Some(format!("inbound packet without win at line {line}"));
                    }
                    _ => {}
                },
                Action::Syscall(c) if !SUPPORTED.contains(&c.name.as_str()) => {
                    return Some(format!("syscall {} (line {line}) is not supported on the {name} backend", c.name));
                }
                Action::Syscall(c)
                    if c.args.iter().any(|a| matches!(&a.kind, ExprKind::Symbol(s) if s == "MSG_FASTOPEN")) =>
                {
                    return Some(format!("TCP Fast Open (line {line}) is not supported on the {name} backend"));
                }
                _ => {}
            }
        }
        None
    }

    // ---- the loop ----------------------------------------------------------------------------------------

    /// packetdrill's tolerance for something due at `expected` (run.c, `verify_time`): the larger of
    /// --tolerance_usecs and --tolerance_percent of the gap since the previous event.
    fn tolerance(&self, expected: Micros) -> Micros {
        self.tolerance_over(expected - self.prev)
    }

    fn tolerance_over(&self, gap: Micros) -> Micros {
        let t = (self.opts.tolerance_usecs as f64).max(self.opts.tolerance_percent / 100.0 * gap.max(0) as f64);
        (t * self.opts.tolerance_scale) as Micros
    }

    // ---- the time limit ----------------------------------------------------------------------------------

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
                    on_time(self)?;
                    self.inject(e, p)?;
                }
                Action::Syscall(c) => {
                    self.advance(start)?;
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

    /// Takes the TCP_INFO snapshot a `%{ }%` block will see.
    fn snapshot(&mut self, code: &Code) -> Res<()> {
        let fd = self.under_test.or_else(|| self.fds.values().next_back().copied());
        let vars = match fd {
            Some(fd) => self.backend.tcp_info(fd),
            None => Err("no socket to take a TCP_INFO snapshot of".to_string()),
        }
        .map_err(|m| self.fail(code.span, "error handling code", m, vec![], "this block"))?;
        let t = self.backend.now();
        self.trace.entries.push(TraceEntry::Note { t, text: format!("TCP_INFO snapshot of fd {}", fd.unwrap_or(-1)) });
        self.code.push((code.clone(), vars));
        Ok(())
    }

    /// Runs the `%{ }%` blocks, as packetdrill does after the last event: each block sees the `tcpi_*` values
    /// of its own snapshot; the first failing assertion fails the script at that block.
    fn run_python(&mut self) -> Res<()> {
        if self.code.is_empty() {
            return Ok(());
        }
        let program = python_program(&self.code);
        let path = std::env::temp_dir().join(format!("tcpdrill-{}-{:p}.py", std::process::id(), &self.code));
        let fail_at = |x: &Self, span: Span, m: String| x.fail(span, "error executing code", m, vec![], "this block");
        let first = self.code[0].0.span;
        std::fs::write(&path, program).map_err(|e| fail_at(self, first, format!("{}: {e}", path.display())))?;
        let out = crate::backend::output_within(std::process::Command::new("python3").arg(&path), self.deadline);
        let _ = std::fs::remove_file(&path);
        let out = out.map_err(|e| fail_at(self, first, format!("python3: {e}")))?;
        if out.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        // The program prints "block N: <error>" for the block that failed.
        let (span, msg) = err
            .lines()
            .find_map(|l| {
                let rest = l.strip_prefix("block ")?;
                let (n, m) = rest.split_once(": ")?;
                Some((self.code.get(n.parse::<usize>().ok()?)?.0.span, m.to_string()))
            })
            .unwrap_or((first, err.trim().to_string()));
        Err(fail_at(self, span, msg))
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

    // ---- inbound packets ---------------------------------------------------------------------------------

    fn default_tuple(&self, ports: Option<(u16, u16)>, inbound: bool) -> (u16, u16) {
        // (stack's port, harness's port)
        match ports {
            Some((a, b)) if inbound => (b, a),
            Some((a, b)) => (a, b),
            None => (self.local_port.unwrap_or(self.opts.port), self.remote_port),
        }
    }

    fn inject(&mut self, e: &Event, p: &Packet) -> Res<()> {
        let PacketBody::Tcp(t) = &p.body else { unreachable!("preflight skips other packets") };
        let (lp, rp) = self.default_tuple(t.ports, true);
        let flags = flags_of(&t.flags);
        // The script's own ISN for a connection comes from the inbound SYN that opens it or the SYN-ACK that
        // answers its connect(), as packetdrill sets it when it creates a socket for them; a later SYN on the same
        // connection (a SYN in ESTABLISHED, a retransmission) changes nothing.
        let opens = if flags.ack() { self.awaiting_synack } else { !self.remote_isns.contains_key(&(lp, rp)) };
        if flags.syn() && opens {
            let isn = t.seq.unwrap_or(0);
            self.remote_isn = Some(isn);
            self.remote_isns.insert((lp, rp), isn);
            self.awaiting_synack &= !flags.ack();
        } else if flags.syn() && !flags.ack() {
            // A bare SYN on a tuple already in use opens a new incarnation only if the stack answers it with a
            // SYN-ACK (a SYN that reopens TIME-WAIT); in ESTABLISHED it gets a challenge ACK and changes nothing.
            self.reopening = Some(((lp, rp), t.seq.unwrap_or(0)));
        }
        let (seq_offset, ack_offset) =
            (self.remote_offset((lp, rp), flags.syn()), self.local_offset((lp, rp), flags.syn()));
        let mut options = TcpOptions::EMPTY;
        if let Some(Options::List(list, lspan)) = &t.options {
            for o in list {
                let opt = match o {
                    TcpOpt::Bytes(b) => {
                        options = TcpOptions::from_bytes(&[options.as_bytes(), b].concat()).map_err(|err| {
                            self.fail(*lspan, "error handling packet", format!("{err}"), vec![], "these options")
                        })?;
                        continue;
                    }
                    TcpOpt::Nop => TcpOption::Nop,
                    TcpOpt::Eol => TcpOption::Eol,
                    TcpOpt::Mss(v) => TcpOption::Mss(*v),
                    TcpOpt::WScale(v) => TcpOption::WindowScale(*v),
                    TcpOpt::SackOk => TcpOption::SackPermitted,
                    TcpOpt::Sack(b) => {
                        // Inbound SACK blocks acknowledge the stack's data: relative to its ISN.
                        let blocks: Vec<_> = b
                            .iter()
                            .map(|(l, r)| (SeqNum(ack_offset.wrapping_add(*l)), SeqNum(ack_offset.wrapping_add(*r))))
                            .collect();
                        TcpOption::Sack(SackBlocks::new(&blocks).unwrap_or_default())
                    }
                    TcpOpt::Ts { val, ecr } => TcpOption::Timestamps {
                        tsval: val.unwrap_or(0),
                        tsecr: ecr.map_or(0, |v| if v == 0 { 0 } else { v.wrapping_add(self.ts_offset.unwrap_or(0)) }),
                    },
                    TcpOpt::FastOpen(c) => TcpOption::FastOpen(c),
                    TcpOpt::FastOpenExp(c) => TcpOption::FastOpenExp(c),
                    TcpOpt::Md5(c) => {
                        let mut d = [0u8; 16];
                        d[..c.len().min(16)].copy_from_slice(&c[..c.len().min(16)]);
                        TcpOption::Md5(d)
                    }
                    TcpOpt::Raw { kind, data } => TcpOption::Unknown { kind: *kind, data },
                };
                options.push(&opt).map_err(|err| {
                    self.fail(*lspan, "error handling packet", format!("{err}"), vec![], "these options")
                })?;
            }
        } else if let Some(Options::Any) = t.options {
            return Err(self.fail(
                p.span,
                "error handling packet",
                "<...> only goes on outbound packets".into(),
                vec![],
                "inbound",
            ));
        }
        let payload = vec![0u8; t.len as usize];
        let repr = TcpRepr {
            src_port: rp,
            dst_port: lp,
            seq: SeqNum(t.seq.unwrap_or(0).wrapping_add(seq_offset)),
            // As packetdrill maps it (map_inbound_packet): only a segment with ACK set has its number shifted.
            ack: SeqNum(t.ack.map_or(0, |a| if flags.ack() { ack_offset.wrapping_add(a) } else { a })),
            flags,
            window: t.win.unwrap_or(0).min(u32::from(u16::MAX)) as u16,
            urgent: t.urg.unwrap_or(0) as u16,
            options,
            payload: &payload,
        };
        let mut d = TcpDatagram::new(self.remote_ip, self.local_ip, repr);
        if let (Some(ecn), IpRepr::V4(ip)) = (p.ecn, &mut d.ip) {
            ip.tos = match ecn {
                Ecn::NoEcn => 0,
                Ecn::Ect1 => 1,
                Ecn::Ect0 | Ecn::Ect01 => 2,
                Ecn::Ce => 3,
            };
        }
        let mut bytes = d
            .to_vec()
            .map_err(|err| self.fail(p.span, "error handling packet", err.to_string(), vec![], "this packet"))?;
        if t.bad_csum {
            corrupt_tcp_checksum(&mut bytes);
        }
        let t_now = self.backend.now();
        self.seen.insert((SocketAddr::new(self.local_ip, lp), SocketAddr::new(self.remote_ip, rp)));
        self.trace.entries.push(TraceEntry::Inbound { t: t_now, text: printer::tcp(t), bytes: bytes.clone() });
        if flags.syn() && !flags.ack() {
            self.new_incarnation = true;
        }
        self.backend.inject(&bytes).map_err(|err| {
            self.fail(e.span, "error handling packet", format!("injecting failed: {err}"), vec![], "this packet")
        })?;
        self.collect_states();
        Ok(())
    }

    // ---- outbound packets --------------------------------------------------------------------------------

    /// What to add to a script number of the stack's sequence space on connection (stack port, harness port) to
    /// get the live one (packetdrill's `local_seq_script_to_live_offset`): a SYN's numbers are the script's SYN
    /// line's, every other segment's count from the live ISN as 0. A connection whose ISN is unknown uses the
    /// last one learned (a reset to an unknown tuple echoes numbers the script wrote relative to it).
    fn local_offset(&self, tuple: (u16, u16), syn: bool) -> u32 {
        let isn = self.isns.get(&tuple).copied().or(self.local_isn).unwrap_or(Isn { live: 0, script: 0 });
        if syn {
            isn.live.wrapping_sub(isn.script)
        } else {
            isn.live
        }
    }

    /// The same for the harness's sequence space (`remote_seq_script_to_live_offset`): SYNs as written, every
    /// other segment relative to the ISN of the script's inbound SYN or SYN-ACK.
    fn remote_offset(&self, tuple: (u16, u16), syn: bool) -> u32 {
        if syn {
            0
        } else {
            self.remote_isns.get(&tuple).copied().or(self.remote_isn).unwrap_or(0)
        }
    }

    /// The stack's packet in script notation: its numbers relative to its ISN, ours as they are.
    fn outbound_text(&self, d: &[u8]) -> String {
        self.outbound_text_ports(d, false)
    }

    /// As [`Exec::outbound_text`], with the ports written out always when `ports` is set.
    fn outbound_text_ports(&self, d: &[u8], ports: bool) -> String {
        match TcpDatagram::parse(d, Checksums::Ignore) {
            Ok(p) => {
                let (tuple, syn) = ((p.tcp.src_port, p.tcp.dst_port), p.tcp.flags.syn());
                let text = script_notation(
                    &p.tcp,
                    self.local_offset(tuple, syn),
                    self.remote_offset(tuple, syn),
                    self.ts_offset,
                );
                // The ports, as the script's per-packet syntax writes them, when they are not the connection's.
                if tuple == self.default_tuple(None, false) && !ports {
                    text
                } else {
                    format!("{}>{} {text}", tuple.0, tuple.1)
                }
            }
            Err(e) => format!("(unparsable: {e})"),
        }
    }

    fn expect_packet(&mut self, e: &Event, p: &Packet, start: Micros, end: Micros) -> Res<()> {
        let PacketBody::Tcp(t) = &p.body else { unreachable!("preflight skips other packets") };
        let tol = if matches!(e.time, TimeSpec::Any) { 0 } else { self.tolerance(start) };
        let deadline = if end == Micros::MAX {
            Micros::MAX / 2
        } else {
            end.saturating_add(tol).saturating_add(self.opts.packet_timeout_usecs)
        };
        let script_text = printer::tcp(t);
        let (actual, bytes) = self.sniff(e, deadline, &script_text, start)?;
        let first_len = self.check_wire(e, &bytes)?.tcp.payload.len();
        // Merged segments are traced as they come; a single one once its numbers are learned (below).
        let merging = first_len < t.len as usize && !self.opts.strict_segments;
        let (actual, bytes) = if merging {
            self.merge(e, (actual, bytes), t.len as usize, deadline, &script_text, start)?
        } else {
            (actual, bytes)
        };
        let live = TcpDatagram::parse(&bytes, Checksums::Verify).expect("checked by check_wire or built by merge");
        // Learn the stack's ISN, port and TS offset from this packet where the script fixes them.
        if live.tcp.flags.syn() {
            let tuple = (live.tcp.src_port, live.tcp.dst_port);
            let simultaneous_open = self.isn_from_syn && live.tcp.flags.ack();
            let relearn = self.isn_tuple != Some(tuple) || (self.new_incarnation && !simultaneous_open);
            if let Some(s) = t.seq.filter(|_| relearn) {
                let isn = Isn { live: live.tcp.seq.0, script: s };
                self.local_isn = Some(isn);
                self.isns.insert(tuple, isn);
                if let Some((_, remote)) = self.reopening.take().filter(|(t, _)| *t == tuple) {
                    self.remote_isn = Some(remote);
                    self.remote_isns.insert(tuple, remote);
                }
                self.isn_tuple = Some(tuple);
                self.isn_from_syn = !live.tcp.flags.ack();
                self.new_incarnation = false;
                self.isn_history.push((tuple, live.tcp.seq.0, live.tcp.seq.0));
            }
            if !live.tcp.flags.ack() {
                self.local_port = Some(live.tcp.src_port);
                self.remote_port = live.tcp.dst_port;
            }
        }
        if self.ts_offset.is_none() {
            if let (Some((v, _)), Some(Options::List(list, _))) = (live.tcp.options.timestamps(), &t.options) {
                if let Some(sv) = list.iter().find_map(|o| match o {
                    TcpOpt::Ts { val: Some(sv), .. } => Some(*sv),
                    _ => None,
                }) {
                    self.ts_offset = Some(v.wrapping_sub(sv));
                }
            }
        }
        if !merging {
            self.trace_outbound(actual, &bytes);
        }
        let text = self.outbound_text(&bytes);
        self.trace.lines.push((self.line(e.span), format!("{} > {text}", secs(actual))));
        if let Some(h) = self.isn_history.last_mut().filter(|h| h.0 == (live.tcp.src_port, live.tcp.dst_port)) {
            let end = live.tcp.seq.0.wrapping_add(live.tcp.segment_len() as u32);
            if SeqNum(end) > SeqNum(h.2) {
                h.2 = end;
            }
        }
        let details = |x: &Self| {
            vec![
                format!("script packet:  {} {script_text}", secs(start)),
                format!("actual packet:  {} {}", secs(actual), x.outbound_text(&bytes)),
            ]
        };
        // packetdrill's TSval tolerance grows with the time since the script's start, not since the last event.
        self.ts_tolerance_usecs = self.tolerance_over(start);
        // packetdrill compares the payload's length first, before any header field (do_outbound_script_packet).
        if live.tcp.payload.len() != t.len as usize {
            let msg =
                format!("live packet payload: expected {} bytes vs actual {} bytes", t.len, live.tcp.payload.len());
            let mut d = details(self);
            if live.tcp.payload.len() > t.len as usize && self.real_time {
                d.push(
                    "hint: a packet longer than the line may be a TSO super-packet (several MSS handed over as one, \
                     as packetdrill's TUN device has it); the header option --tso=off shows the segments as they go \
                     on the wire"
                        .into(),
                );
            }
            return Err(self.fail(e.span, "error handling packet", msg, d, "this packet"));
        }
        if let Some((field, want, got)) = self.mismatch(t, p.ecn, &live) {
            let msg = format!("live packet field {field}: expected: {want} vs actual: {got}");
            let mut d = details(self);
            if field.ends_with("_port") {
                d[1] = format!("actual packet:  {} {}", secs(actual), self.outbound_text_ports(&bytes, true));
            }
            return Err(self.fail(e.span, "error handling packet", msg, d, "this packet"));
        }
        // Timing.
        let ok = match e.time {
            TimeSpec::Any => true,
            _ => actual >= start.saturating_sub(tol) && actual <= end.saturating_add(tol),
        };
        if !ok {
            let msg = timing_error("outbound packet", start, end, actual, tol);
            return Err(self.fail(e.time_span, "error handling packet", msg, details(self), "expected time"));
        }
        Ok(())
    }

    /// The next packet the stack sends, by `deadline`; packetdrill's "Timed out waiting for packet" without one.
    fn sniff(&mut self, e: &Event, deadline: Micros, script_text: &str, start: Micros) -> Res<(Micros, Vec<u8>)> {
        let got = self.backend.next_outbound(self.bounded(deadline));
        self.collect_states();
        if let Some(p) = got {
            return Ok(p);
        }
        self.within_limit()?;
        Err(self.fail(
            e.span,
            "error handling packet",
            "Timed out waiting for packet".into(),
            vec![format!("script packet: {} {script_text}", secs(start))],
            "expected this packet",
        ))
    }

    /// What every segment the stack sends must be, whatever the script expects: a well-formed datagram with
    /// valid checksums and a well-formed option area.
    fn check_wire<'b>(&self, e: &Event, bytes: &'b [u8]) -> Res<TcpDatagram<'b>> {
        let bad = |x: &Self, m: String| x.fail(e.span, "error handling packet", m, vec![], "while expecting this");
        let live = TcpDatagram::parse(bytes, Checksums::Verify)
            .map_err(|err| bad(self, format!("the stack sent a malformed datagram: {err}")))?;
        if let Some(problem) = options_problem(&live.tcp.options) {
            return Err(bad(self, format!("the stack sent malformed options: {problem}")));
        }
        Ok(live)
    }

    fn trace_outbound(&mut self, t: Micros, bytes: &[u8]) {
        if let Ok(d) = TcpDatagram::parse(bytes, Checksums::Ignore) {
            let (src, dst) = (d.ip.src_addr(), d.ip.dst_addr());
            self.seen.insert((SocketAddr::new(src, d.tcp.src_port), SocketAddr::new(dst, d.tcp.dst_port)));
        }
        let text = self.outbound_text(bytes);
        self.trace.entries.push(TraceEntry::Outbound { t, text, bytes: bytes.to_vec() });
    }

    /// packetdrill's merging of consecutive segments into one expected packet (run_packet.c,
    /// `do_outbound_script_packet` and `verify_packet_fragments`; packet.c, `aggregate_packets`), so that data cut
    /// by TSO/GSO, the MSS or the congestion window matches a line that sends it whole. Segments are read while
    /// their payloads add up to less than `want`; each must continue the previous one (its sequence number where
    /// the previous one ended; the same SYN, RST, ACK, URG, ECE and AE flags, ACK number, window, urgent pointer
    /// and option length; FIN, PSH and CWR may differ) and, unless it is the last, be as long as the previous
    /// one. The packet checked is the last segment with the first one's sequence number and CWR flag and all
    /// the payload, at the last one's time. `--strict_segments` turns this off.
    fn merge(
        &mut self,
        e: &Event,
        first: (Micros, Vec<u8>),
        want: usize,
        deadline: Micros,
        script_text: &str,
        start: Micros,
    ) -> Res<(Micros, Vec<u8>)> {
        self.trace_outbound(first.0, &first.1);
        let mut segments = vec![first];
        let mut total = self.check_wire(e, &segments[0].1)?.tcp.payload.len();
        while total < want {
            let Some((t, bytes)) = self.backend.next_outbound(self.bounded(deadline)) else {
                self.collect_states();
                self.within_limit()?;
                let msg = format!("live packet payload: expected {want} bytes vs actual {total} bytes");
                let mut details = vec![format!("script packet:  {} {script_text}", secs(start))];
                for (i, (t, b)) in segments.iter().enumerate() {
                    details.push(format!("actual #{}:      {} {}", i + 1, secs(*t), self.outbound_text(b)));
                }
                details.push(format!(
                    "no further segment came by {} s to merge with these (--strict_segments matches one segment a line)",
                    secs(deadline)
                ));
                return Err(self.fail(e.span, "error handling packet", msg, details, "this packet"));
            };
            self.collect_states();
            self.trace_outbound(t, &bytes);
            let cur = self.check_wire(e, &bytes)?;
            let prev_bytes = &segments.last().expect("one at least").1;
            let prev = TcpDatagram::parse(prev_bytes, Checksums::Ignore).expect("checked when read");
            let (p, c) = (&prev.tcp, &cur.tcp);
            let num = |v: u64| format!("{v} ({v:#x})");
            // Every flag but FIN, PSH and CWR, which the last segment's or the first's stand for.
            let same = |f: TcpFlags| ![TcpFlags::FIN, TcpFlags::PSH, TcpFlags::CWR].contains(&f);
            let flags: Vec<(TcpFlags, &str)> = FLAG_FIELDS.into_iter().filter(|(f, _)| same(*f)).collect();
            let differs = if (c.src_port, c.dst_port) != (p.src_port, p.dst_port)
                || cur.ip.src_addr() != prev.ip.src_addr()
            {
                Some((
                    "the connection".to_string(),
                    format!("{}:{}", p.src_port, p.dst_port),
                    format!("{}:{}", c.src_port, c.dst_port),
                ))
            } else if let Some((_, name)) = flags.iter().find(|(f, _)| p.flags.contains(*f) != c.flags.contains(*f)) {
                let bit = |x: &TcpRepr<'_>| u64::from(flags.iter().any(|(f, n)| n == name && x.flags.contains(*f)));
                Some((name.to_string(), num(bit(p)), num(bit(c))))
            } else if c.seq != p.seq + p.payload.len() as u32 {
                // In script numbers, as the rest of the report.
                let off = self.local_offset((c.src_port, c.dst_port), false);
                let next = (p.seq + p.payload.len() as u32).0.wrapping_sub(off);
                Some(("tcp_seq".into(), num(u64::from(next)), num(u64::from(c.seq.0.wrapping_sub(off)))))
            } else if c.ack != p.ack {
                let off = self.remote_offset((c.src_port, c.dst_port), false);
                let script = |x: SeqNum| num(u64::from(x.0.wrapping_sub(off)));
                Some(("tcp_ack_seq".into(), script(p.ack), script(c.ack)))
            } else if c.window != p.window {
                Some(("tcp_window".into(), num(u64::from(p.window)), num(u64::from(c.window))))
            } else if c.urgent != p.urgent {
                Some(("tcp_urg_ptr".into(), num(u64::from(p.urgent)), num(u64::from(c.urgent))))
            } else if c.options.as_bytes().len() != p.options.as_bytes().len() {
                let len = |x: &TcpRepr<'_>| num(x.options.as_bytes().len() as u64);
                Some(("tcp_options length".into(), len(p), len(c)))
            } else {
                None
            };
            let n = segments.len() + 1;
            let shown = |x: &Self| {
                let mut d = vec![format!("script packet:  {} {script_text}", secs(start))];
                for (i, (t, b)) in segments.iter().enumerate() {
                    d.push(format!("actual #{}:      {} {}", i + 1, secs(*t), x.outbound_text(b)));
                }
                d.push(format!("actual #{n}:      {} {}", secs(t), x.outbound_text(&bytes)));
                d
            };
            if let Some((field, was, got)) = differs {
                let msg = format!(
                    "segment {n} does not continue segment {} of this packet: {field}: expected: {was} vs actual: {got}",
                    n - 1
                );
                return Err(self.fail(e.span, "error handling packet", msg, shown(self), "this packet"));
            }
            let len = c.payload.len();
            if len < want - total && len != p.payload.len() {
                let msg = format!(
                    "fragment payload: expected {} bytes vs actual {len} bytes; total payload: expected {want} bytes vs \
                     actual {} bytes",
                    p.payload.len(),
                    total + len
                );
                return Err(self.fail(e.span, "error handling packet", msg, shown(self), "this packet"));
            }
            total += len;
            segments.push((t, bytes));
        }
        let firsts = TcpDatagram::parse(&segments[0].1, Checksums::Ignore).expect("checked when read");
        let (t, last_bytes) = segments.last().expect("one at least");
        let last = TcpDatagram::parse(last_bytes, Checksums::Ignore).expect("checked when read");
        let mut payload = Vec::with_capacity(total);
        for (_, b) in &segments {
            payload.extend_from_slice(TcpDatagram::parse(b, Checksums::Ignore).expect("checked when read").tcp.payload);
        }
        let flags = TcpFlags((last.tcp.flags.0 & !TcpFlags::CWR.0) | (firsts.tcp.flags.0 & TcpFlags::CWR.0));
        let tcp = TcpRepr { seq: firsts.tcp.seq, flags, payload: &payload, ..last.tcp };
        let merged = TcpDatagram { ip: last.ip, tcp }.to_vec().map_err(|err| {
            let msg = format!("the merged packet cannot be built: {err}");
            let d = vec![format!("{} segments, {total} bytes", segments.len())];
            self.fail(e.span, "error handling packet", msg, d, "this packet")
        })?;
        Ok((*t, merged))
    }

    /// The first field where the live packet differs from the script, in the order of packetdrill's TCP checks.
    /// Where packetdrill reports the IP total length (options of another length), tcpdrill names the options.
    fn mismatch(&self, t: &TcpSpec, ecn: Option<Ecn>, live: &TcpDatagram<'_>) -> Option<(String, String, String)> {
        let num = |v: u64| format!("{v} ({v:#x})");
        let l = &live.tcp;
        let (lp, rp) = self.default_tuple(t.ports, false);
        if live.ip.dst_addr() != self.remote_ip {
            return Some(("ip_dst".into(), self.remote_ip.to_string(), live.ip.dst_addr().to_string()));
        }
        if (t.ports.is_some() || self.local_port.is_some()) && l.src_port != lp {
            return Some(("tcp_src_port".into(), num(u64::from(lp)), num(u64::from(l.src_port))));
        }
        if l.dst_port != rp {
            return Some(("tcp_dst_port".into(), num(u64::from(rp)), num(u64::from(l.dst_port))));
        }
        if let Some(e) = ecn {
            let got = live.ip.ecn();
            let ok = match e {
                Ecn::NoEcn => got == 0,
                Ecn::Ect1 => got == 1,
                Ecn::Ect0 => got == 2,
                Ecn::Ect01 => got == 1 || got == 2,
                Ecn::Ce => got == 3,
            };
            if !ok {
                return Some((
                    "ip_ecn".into(),
                    e.name().into(),
                    ["noecn", "ect1", "ect0", "ce"][usize::from(got & 3)].into(),
                ));
            }
        }
        let want = flags_of(&t.flags);
        let psh_either = t.flags.contains('p');
        for (bit, name) in FLAG_FIELDS {
            let (w, g) = (want.contains(bit), l.flags.contains(bit));
            if w != g && !(psh_either && bit == TcpFlags::PSH) {
                return Some((name.into(), num(u64::from(w)), num(u64::from(g))));
            }
        }
        let (tuple, syn) = ((l.src_port, l.dst_port), l.flags.syn());
        let remote_offset = self.remote_offset(tuple, syn);
        if let Some(s) = t.seq {
            let got = l.seq.0.wrapping_sub(self.local_offset(tuple, syn));
            if got != s {
                return Some(("tcp_seq".into(), num(u64::from(s)), num(u64::from(got))));
            }
        }
        // An omitted ACK number is 0, and checked, as packetdrill's parser leaves it (only a segment with ACK set
        // has its number mapped into script space).
        let want_ack = t.ack.unwrap_or(0);
        let got = if l.flags.ack() { l.ack.0.wrapping_sub(remote_offset) } else { l.ack.0 };
        if got != want_ack {
            return Some(("tcp_ack_seq".into(), num(u64::from(want_ack)), num(u64::from(got))));
        }
        if let Some(w) = t.win {
            if u32::from(l.window) != w {
                return Some(("tcp_window".into(), num(u64::from(w)), num(u64::from(l.window))));
            }
        }
        if let Some(u) = t.urg {
            if u32::from(l.urgent) != u {
                return Some(("tcp_urg_ptr".into(), num(u64::from(u)), num(u64::from(l.urgent))));
            }
        }
        match &t.options {
            Some(Options::Any) => {}
            None if !l.options.is_empty() => {
                return Some(("tcp_options".into(), "<>".into(), format!("<{}>", l.options)));
            }
            None => {}
            Some(Options::List(list, _)) => {
                let got: Vec<TcpOption<'_>> = l.options.iter().map_while(Result::ok).collect();
                let same = got.len() == list.len()
                    && got.iter().zip(list).all(|(g, w)| match (g, w) {
                        (TcpOption::Nop, TcpOpt::Nop)
                        | (TcpOption::Eol, TcpOpt::Eol)
                        | (TcpOption::SackPermitted, TcpOpt::SackOk) => true,
                        (TcpOption::Mss(a), TcpOpt::Mss(b)) => a == b,
                        (TcpOption::WindowScale(a), TcpOpt::WScale(b)) => a == b,
                        (TcpOption::Sack(a), TcpOpt::Sack(b)) => {
                            let script = |x: SeqNum| x.0.wrapping_sub(remote_offset);
                            a.as_slice().iter().map(|(l, r)| (script(*l), script(*r))).eq(b.iter().copied())
                        }
                        (TcpOption::Timestamps { tsval, tsecr }, TcpOpt::Ts { val, ecr }) => {
                            let val_ok = match (self.ts_tick_usecs, val) {
                                // Within the tolerance, in ticks of --tcp_ts_tick_usecs, as packetdrill checks it.
                                (Some(tick), Some(v)) => self.ts_offset.is_none_or(|o| {
                                    let off = i64::from(tsval.wrapping_sub(o).wrapping_sub(*v) as i32);
                                    off.abs() * tick <= self.ts_tolerance_usecs
                                }),
                                _ => true,
                            };
                            val_ok && ecr.is_none_or(|e| *tsecr == e)
                        }
                        (TcpOption::FastOpen(a), TcpOpt::FastOpen(b))
                        | (TcpOption::FastOpenExp(a), TcpOpt::FastOpenExp(b)) => a == &b.as_slice(),
                        (TcpOption::Md5(a), TcpOpt::Md5(b)) => b.is_empty() || a.as_slice() == b.as_slice(),
                        (TcpOption::Unknown { kind, data }, TcpOpt::Raw { kind: k, data: d }) => {
                            kind == k && data == &d.as_slice()
                        }
                        _ => false,
                    });
                if !same {
                    let want: Vec<String> = list.iter().map(printer::option).collect();
                    let got_text = script_notation_options(&l.options, remote_offset, self.ts_offset);
                    return Some(("tcp_options".into(), format!("<{}>", want.join(",")), format!("<{got_text}>")));
                }
            }
        }
        None
    }

    // ---- syscalls ----------------------------------------------------------------------------------------

    fn int(&self, e: &Expr) -> Result<i64, String> {
        match &e.kind {
            ExprKind::Int(i) => Ok(*i),
            ExprKind::Symbol(s) => symbol_value(s).ok_or_else(|| format!("unknown symbol {s}")),
            ExprKind::Or(v) => v.iter().try_fold(0, |acc, x| Ok(acc | self.int(x)?)),
            ExprKind::List(v) if v.len() == 1 => self.int(&v[0]),
            ExprKind::Call(n, a) if (n == "htons" || n == "htonl" || n == "ntohs") && a.len() == 1 => self.int(&a[0]),
            _ => Err(format!("{} is not a number", printer::expr(e))),
        }
    }

    fn fd(&self, e: &Expr) -> Result<i32, String> {
        let n = self.int(e)?;
        Ok(self.fds.get(&n).copied().unwrap_or(n as i32))
    }

    fn sockaddr(&self, e: &Expr, default: SocketAddr) -> Result<SocketAddr, String> {
        match &e.kind {
            ExprKind::Ellipsis => Ok(default),
            ExprKind::Struct(fields) => {
                let mut a = default;
                for (name, v) in fields {
                    match name.as_ref().and_then(Expr::as_symbol) {
                        Some("sin_port" | "sin6_port") => a.set_port(self.int(v)? as u16),
                        Some("sin_addr" | "sin6_addr") => {
                            if let ExprKind::Call(f, args) = &v.kind {
                                if let (Some("inet_addr" | "inet_pton"), Some(ExprKind::Str(s))) =
                                    (Some(f.as_str()), args.last().map(|x| &x.kind))
                                {
                                    a.set_ip(s.parse().map_err(|_| format!("bad address {s:?}"))?);
                                }
                            }
                        }
                        _ => {}
                    }
                }
                Ok(a)
            }
            _ => Err(format!("{} is not a socket address", printer::expr(e))),
        }
    }

    fn sockopt(&self, name: &Expr) -> Result<SockOptName, String> {
        Ok(match name.as_symbol().unwrap_or("") {
            "SO_REUSEADDR" => SockOptName::ReuseAddr,
            "SO_KEEPALIVE" => SockOptName::KeepAlive,
            "SO_LINGER" => SockOptName::Linger,
            "SO_ERROR" => SockOptName::Error,
            "SO_RCVBUF" => SockOptName::RcvBuf,
            "SO_SNDBUF" => SockOptName::SndBuf,
            "TCP_NODELAY" => SockOptName::NoDelay,
            "TCP_MAXSEG" => SockOptName::MaxSeg,
            "TCP_KEEPIDLE" => SockOptName::KeepIdle,
            "TCP_KEEPINTVL" => SockOptName::KeepIntvl,
            "TCP_KEEPCNT" => SockOptName::KeepCnt,
            "TCP_USER_TIMEOUT" => SockOptName::UserTimeout,
            "TCP_INFO" => SockOptName::Info,
            other => return Err(format!("socket option {other} is not supported")),
        })
    }

    fn optval(&self, e: &Expr) -> Result<SockOptValue, String> {
        match &e.kind {
            ExprKind::Struct(fields) => {
                let get = |n: &str| {
                    fields
                        .iter()
                        .find(|(k, _)| k.as_ref().and_then(Expr::as_symbol) == Some(n))
                        .map(|(_, v)| self.int(v))
                };
                Ok(SockOptValue::Linger {
                    onoff: get("onoff").or_else(|| get("l_onoff")).transpose()?.unwrap_or(0) != 0,
                    linger: get("linger").or_else(|| get("l_linger")).transpose()?.unwrap_or(0) as u32,
                })
            }
            _ => Ok(SockOptValue::Int(self.int(e)?)),
        }
    }

    /// The live call for a script syscall.
    fn translate(&mut self, c: &Syscall) -> Result<Call, String> {
        let a = &c.args;
        let arg = |i: usize| a.get(i).ok_or_else(|| format!("{} needs argument {}", c.name, i + 1));
        let local = SocketAddr::new(self.local_ip, self.opts.port);
        let remote = SocketAddr::new(self.remote_ip, self.opts.connect_port);
        Ok(match c.name.as_str() {
            "socket" => {
                let d = match arg(0)?.kind {
                    ExprKind::Ellipsis => Domain::Inet,
                    _ if self.int(arg(0)?)? == 10 => Domain::Inet6,
                    _ => Domain::Inet,
                };
                Call::Socket(d)
            }
            "bind" => {
                let addr = self.sockaddr(arg(1)?, local)?;
                self.local_port = Some(addr.port());
                Call::Bind(self.fd(arg(0)?)?, addr)
            }
            "listen" => Call::Listen(self.fd(arg(0)?)?, self.int(arg(1)?)? as i32),
            "accept" => Call::Accept(self.fd(arg(0)?)?),
            "connect" => {
                let addr = self.sockaddr(arg(1)?, remote)?;
                let fd = self.fd(arg(0)?)?;
                // A new connection's port is learned from its SYN; connect() again on the same socket (EALREADY,
                // EISCONN) keeps the one already learned.
                if self.under_test != Some(fd) {
                    self.local_port = None;
                }
                self.remote_port = addr.port();
                Call::Connect(fd, addr)
            }
            "read" | "recv" | "recvfrom" => {
                let peek = c.name != "read" && a.get(3).and_then(|f| self.int(f).ok()).is_some_and(|f| f & 2 != 0);
                Call::Read { fd: self.fd(arg(0)?)?, len: self.int(arg(2)?)? as usize, peek, null: is_null(arg(1)?) }
            }
            "write" | "send" | "sendto" => {
                Call::Write { fd: self.fd(arg(0)?)?, len: self.int(arg(2)?)? as usize, null: is_null(arg(1)?) }
            }
            "shutdown" => {
                let how = match self.int(arg(1)?)? {
                    0 => Shutdown::Read,
                    1 => Shutdown::Write,
                    _ => Shutdown::Both,
                };
                Call::Shutdown(self.fd(arg(0)?)?, how)
            }
            "close" => Call::Close(self.fd(arg(0)?)?),
            "setsockopt" => Call::SetSockOpt(self.fd(arg(0)?)?, self.sockopt(arg(2)?)?, self.optval(arg(3)?)?),
            "getsockopt" => Call::GetSockOpt(self.fd(arg(0)?)?, self.sockopt(arg(2)?)?),
            "fcntl" => match arg(1)?.as_symbol() {
                Some("F_GETFL") => Call::GetFl(self.fd(arg(0)?)?),
                Some("F_SETFL") => Call::SetNonBlocking(self.fd(arg(0)?)?, self.int(arg(2)?)? & 0o4000 != 0),
                other => return Err(format!("fcntl {} is not supported", other.unwrap_or("?"))),
            },
            "ioctl" => match arg(1)?.as_symbol() {
                Some("SIOCINQ" | "FIONREAD") => Call::BytesReadable(self.fd(arg(0)?)?),
                other => return Err(format!("ioctl {} is not supported", other.unwrap_or("?"))),
            },
            "tcp_state" => {
                let (lp, rp) = self.default_tuple(None, false);
                let mut t = FourTuple {
                    local: SocketAddr::new(self.local_ip, lp),
                    remote: SocketAddr::new(self.remote_ip, rp),
                };
                if let Some(ExprKind::Struct(fields)) = a.first().map(|e| &e.kind) {
                    let ip = |v: &Expr| match &v.kind {
                        ExprKind::Str(s) => s.parse::<IpAddr>().map_err(|_| format!("{s:?} is not an IP address")),
                        ExprKind::Call(f, args) if f == "inet_addr" || f == "inet_pton" => match args.last() {
                            Some(Expr { kind: ExprKind::Str(s), .. }) => {
                                s.parse::<IpAddr>().map_err(|_| format!("{s:?} is not an IP address"))
                            }
                            _ => Err(format!("{} is not an IP address", printer::expr(v))),
                        },
                        _ => Err(format!("{} is not an IP address: write it in quotes", printer::expr(v))),
                    };
                    for (n, v) in fields {
                        match n.as_ref().and_then(Expr::as_symbol) {
                            Some("local_port") => t.local.set_port(self.int(v)? as u16),
                            Some("remote_port") => t.remote.set_port(self.int(v)? as u16),
                            Some("local_ip") => t.local.set_ip(ip(v)?),
                            Some("remote_ip") => t.remote.set_ip(ip(v)?),
                            _ => {
                                return Err("tcp_state takes {local_ip=\"A\", remote_ip=\"B\", local_port=N, \
                                            remote_port=N}, each optional"
                                    .into())
                            }
                        }
                    }
                }
                Call::TcpState(t)
            }
            other => return Err(format!("syscall {other} is not supported")),
        })
    }

    fn syscall(&mut self, e: &Event, c: &Syscall, start: Micros, expected_end: Option<Micros>) -> Res<()> {
        if c.name.starts_with("tcp_isn_") {
            return self.isn_extension(e, c);
        }
        // packetdrill makes every call after waiting up to a second for one still blocked on its syscall thread
        // (tcp_state is tcpdrill's own observation, not a call, and waits for nothing).
        let idle = if c.name == "tcp_state" { self.pending.is_none() } else { self.await_pending()? };
        let ports = (self.local_port, self.remote_port);
        let call =
            self.translate(c).map_err(|m| self.fail(e.span, "error handling syscall", m, vec![], "this call"))?;
        if let (Call::Close(fd), Some(p)) = (&call, &self.pending) {
            if self.call_fd(&p.call) == Some(*fd) {
                // Closing it would let the next socket() take the same descriptor, and the blocked call would then
                // complete on a socket it was never made on.
                let what = format!("{} from line {}", call_name(&p.call), self.line(p.event.span));
                return Err(self.fail(
                    e.span,
                    "error handling syscall",
                    format!("close() of a descriptor on which {what} is still blocked"),
                    vec![format!("let {what} return first (its end time is {} s)", secs(p.end))],
                    "this close",
                ));
            }
        }
        let res = self.backend.call(&call);
        self.collect_states();
        if let Call::Connect(fd, _) = call {
            if matches!(res, CallResult::Err(Errno::EISCONN | Errno::EBADF | Errno::EINVAL)) {
                // A connect() refused outright (say on an accepted socket) started no connection: the script's
                // connection stays the one it was.
                (self.local_port, self.remote_port) = ports;
            } else {
                self.under_test = Some(fd);
                self.new_incarnation = true;
                self.awaiting_synack = true;
            }
        }
        let blocks = matches!(res, CallResult::Err(Errno::EAGAIN | Errno::EINPROGRESS | Errno::EALREADY))
            && matches!(call, Call::Accept(_) | Call::Connect(..) | Call::Read { .. } | Call::Write { .. })
            && !self.call_fd(&call).is_some_and(|fd| self.nonblocking.get(&fd).copied().unwrap_or(false));
        if blocks {
            let Some(end) = expected_end else {
                return self.block_in_place(e, c, call, start);
            };
            // packetdrill runs a blocking call on a thread of its own, one at a time.
            if !idle {
                return Err(self.fail(
                    e.span,
                    "error handling syscall",
                    "blocking system call while another blocking system call is already in progress".into(),
                    vec!["packetdrill waits one second for the first to return, as tcpdrill did".into()],
                    "this call",
                ));
            }
            self.pending = Some(Pending { call, event: e.clone(), end, start });
            return Ok(());
        }
        if let Some(end) = expected_end {
            // A call written as blocking that returned at once.
            self.check_return_time(e, &c.name, start, end, start)?;
        }
        self.check_result(e, c, &call, res)
    }

    /// A call written without `t1...t2` that blocks. packetdrill makes such a call on its main thread, so the
    /// script stops with it: time goes on, the stack's timers fire, and the call returns when the stack completes
    /// it by itself; the events after it then run late and fail packetdrill's timing check. A call that nothing
    /// but the script's own later events could complete fails here, where packetdrill would hang.
    fn block_in_place(&mut self, e: &Event, c: &Syscall, call: Call, start: Micros) -> Res<()> {
        let limit = start.saturating_add(i64::try_from(self.opts.timeout.as_micros()).unwrap_or(i64::MAX));
        loop {
            if let Some(res) = self.try_complete(&call) {
                return self.check_result(e, c, &call, res);
            }
            self.within_limit()?;
            let now = self.backend.now();
            let next = match self.backend.next_event_time() {
                None if self.real_time => Some(now + 5_000),
                Some(w) if w >= now => Some(w.max(now + 1)),
                _ => None,
            };
            match next.filter(|&w| w <= limit) {
                Some(w) => {
                    self.backend.advance_to(w);
                    self.collect_states();
                    // A call blocked on packetdrill's syscall thread returns meanwhile, at its own time.
                    self.poll_pending()?;
                }
                None => {
                    let why = if next.is_some() {
                        format!("it was still blocked {} s later (--timeout)", self.opts.timeout.as_secs_f64())
                    } else {
                        "nothing the stack does by itself can complete it, and the later events cannot run while it \
                         blocks"
                            .to_string()
                    };
                    return Err(self.fail(
                        e.span,
                        "error handling syscall",
                        format!("{} blocks the script: {why}", c.name),
                        vec![
                            "a call written without an end time runs on the script's own thread, as in packetdrill"
                                .into(),
                            format!(
                                "write `{}...END {}(...)` to let later events run while it blocks",
                                secs(start),
                                c.name
                            ),
                        ],
                        "blocks",
                    ));
                }
            }
        }
    }

    /// packetdrill's `await_idle_thread`: lets up to one second pass for a call blocked on the syscall thread to
    /// return, as packetdrill does before any other call and at the end of the script. Whether it returned.
    fn await_pending(&mut self) -> Res<bool> {
        let limit = self.backend.now().saturating_add(1_000_000);
        while self.pending.is_some() {
            self.within_limit()?;
            let now = self.backend.now();
            if now >= limit {
                return Ok(false);
            }
            let step = match self.backend.next_event_time() {
                _ if self.real_time => now + 5_000,
                Some(w) if w >= now => w.max(now + 1),
                _ => limit,
            };
            self.backend.advance_to(step.min(limit));
            self.collect_states();
            self.poll_pending()?;
        }
        Ok(true)
    }

    /// Makes a blocked call again if the backend says it can make progress; `None` while it still blocks.
    fn try_complete(&mut self, call: &Call) -> Option<CallResult> {
        if !self.backend.ready(call) {
            return None;
        }
        let res = self.backend.call(call);
        self.collect_states();
        match (call, &res) {
            // connect() again after the handshake: 0 once, as Linux's inet_stream_connect reports.
            (Call::Connect(..), CallResult::Err(Errno::EALREADY | Errno::EINPROGRESS)) => None,
            _ => Some(res),
        }
    }

    /// tcpdrill's ISN extensions, answered from the ISNs the executor learned (the stack's sequence numbers are
    /// otherwise only seen relative to them): `tcp_isn_distinct()` is 1 when every connection so far had an ISN of
    /// its own; `tcp_isn_beyond_previous()` is 1 when the current connection's ISN lies beyond (RFC 1982) the last
    /// sequence number the previous incarnation of the same four-tuple used.
    fn isn_extension(&mut self, e: &Event, c: &Syscall) -> Res<()> {
        let fail = |x: &Self, m: String| x.fail(e.span, "error handling syscall", m, vec![], "this call");
        let got: i64 = match c.name.as_str() {
            "tcp_isn_distinct" => {
                if self.isn_history.len() < 2 {
                    return Err(fail(self, "tcp_isn_distinct() needs two connections whose ISNs were seen".into()));
                }
                let mut isns: Vec<u32> = self.isn_history.iter().map(|h| h.1).collect();
                isns.sort_unstable();
                isns.dedup();
                i64::from(isns.len() == self.isn_history.len())
            }
            "tcp_isn_beyond_previous" => {
                let Some((cur, earlier)) = self.isn_history.split_last() else {
                    return Err(fail(self, "tcp_isn_beyond_previous(): no ISN seen yet".into()));
                };
                let Some(prev) = earlier.iter().rev().find(|h| h.0 == cur.0) else {
                    return Err(fail(
                        self,
                        "tcp_isn_beyond_previous(): no earlier incarnation of this four-tuple".into(),
                    ));
                };
                i64::from(SeqNum(cur.1) > SeqNum(prev.2))
            }
            other => return Err(fail(self, format!("unknown extension {other}()"))),
        };
        let t = self.backend.now();
        let text = format!("{}() -> {got}", c.name);
        self.trace.lines.push((self.line(e.span), format!("{} {text}", secs(t))));
        self.trace.entries.push(TraceEntry::Call { t, text });
        let want = self.int(&c.result).map_err(|m| fail(self, m))?;
        if want != got {
            return Err(fail(self, format!("{}() = {got} but the script expects {want}", c.name)));
        }
        Ok(())
    }

    /// A blocking call (`t1...t2`) must return at `t2`, within the tolerance of its own duration.
    fn check_return_time(&self, e: &Event, name: &str, start: Micros, end: Micros, returned: Micros) -> Res<()> {
        let tol = self.tolerance_over(end - start);
        if returned.abs_diff(end) <= tol.unsigned_abs() {
            return Ok(());
        }
        let msg = timing_error(&format!("{name} to return"), end, end, returned, tol);
        Err(self.fail(e.time_span, "error handling syscall", msg, vec![], "expected return time"))
    }

    fn call_fd(&self, call: &Call) -> Option<i32> {
        match call {
            Call::Accept(fd) | Call::Connect(fd, _) | Call::Read { fd, .. } | Call::Write { fd, .. } => Some(*fd),
            _ => None,
        }
    }

    fn poll_pending(&mut self) -> Res<()> {
        let Some(call) = self.pending.as_ref().map(|p| p.call.clone()) else { return Ok(()) };
        let Some(res) = self.try_complete(&call) else { return Ok(()) };
        let p = self.pending.take().expect("checked above");
        let e = &p.event;
        let Action::Syscall(c) = &e.action else { unreachable!("pending calls come from syscall events") };
        self.check_return_time(e, &c.name, p.start, p.end, self.backend.now())?;
        self.check_result(e, c, &p.call, res)
    }

    fn check_result(&mut self, e: &Event, c: &Syscall, call: &Call, res: CallResult) -> Res<()> {
        let t = self.backend.now();
        let got_text = match (&res, call) {
            (CallResult::Value(SockOptValue::Int(n)), Call::TcpState(_)) => {
                TcpState::from_linux_number(*n as u8).map_or(n.to_string(), |s| s.linux_name().to_string())
            }
            (CallResult::Value(SockOptValue::Int(n)), _) => format!("0 [{n}]"),
            (CallResult::Value(SockOptValue::Linger { onoff, linger }), _) => {
                format!("0 {{onoff={}, linger={linger}}}", u8::from(*onoff))
            }
            (CallResult::Value(SockOptValue::Info(i)), _) => format!("0 {{tcpi_state={}}}", i.state),
            (CallResult::Ok(v), _) => v.to_string(),
            (CallResult::Err(err), _) => format!("-1 {}", err.name()),
        };
        let mut shown = c.clone();
        shown.note = None;
        let text = format!("{} -> {got_text}", printer::syscall(&shown));
        self.trace.lines.push((self.line(e.span), format!("{} {text}", secs(t))));
        self.trace.entries.push(TraceEntry::Call { t, text });
        let fail = |x: &Self, msg: String| x.fail(e.span, "error handling syscall", msg, vec![], "this call");
        if let Call::SetNonBlocking(fd, on) = call {
            self.nonblocking.insert(*fd, *on);
        }
        // tcp_state compares the state named in the result.
        if let (Call::TcpState(tuple), CallResult::Value(SockOptValue::Int(n))) = (call, &res) {
            let want = self.int(&c.result).map_err(|m| fail(self, m))?;
            let closed = i64::from(TcpState::Closed.linux_number());
            if *n == closed && !self.seen.contains(&(tuple.local, tuple.remote)) {
                // CLOSED would be true of any tuple; say that this one never carried a segment instead.
                return Err(fail(
                    self,
                    format!(
                        "tcp_state: no such connection: no segment between {} (the stack) and {} was sent or \
                         received",
                        tuple.local, tuple.remote
                    ),
                ));
            }
            if want != *n {
                let name = |v: i64| {
                    TcpState::from_linux_number(v as u8).map_or("?".to_string(), |s| s.linux_name().to_string())
                };
                return Err(fail(
                    self,
                    format!("tcp_state: expected {} but the connection is in {}", name(want), name(*n)),
                ));
            }
            return Ok(());
        }
        let expected = match &c.result.kind {
            ExprKind::Ellipsis => None,
            _ => Some(self.int(&c.result).map_err(|m| fail(self, m))?),
        };
        match (&res, expected) {
            (_, None) => {}
            (CallResult::Err(err), Some(-1)) => {
                if let Some((want, _)) = &c.errno {
                    if want != err.name() {
                        return Err(fail(
                            self,
                            format!("{} returned -1 with errno {} but expected {want}", c.name, err),
                        ));
                    }
                }
            }
            (CallResult::Err(err), Some(v)) => {
                return Err(fail(self, format!("{} returned -1 {} but expected {v}", c.name, err)));
            }
            (CallResult::Ok(_) | CallResult::Value(_), Some(-1)) => {
                let got = if let CallResult::Ok(g) = res { g } else { 0 };
                let want = c.errno.as_ref().map_or(String::new(), |(e, _)| format!(" {e}"));
                return Err(fail(self, format!("{} returned {got} but expected -1{want}", c.name)));
            }
            (CallResult::Ok(got), Some(want)) => {
                if matches!(call, Call::Socket(_) | Call::Accept(_)) {
                    self.fds.insert(want, *got as i32);
                    if matches!(call, Call::Accept(_)) {
                        self.under_test = Some(*got as i32);
                    }
                } else if *got != want {
                    return Err(fail(self, format!("{} returned {got} but expected {want}", c.name)));
                }
            }
            (CallResult::Value(_), Some(0)) => {}
            (CallResult::Value(_), Some(want)) => {
                return Err(fail(self, format!("{} returned 0 but expected {want}", c.name)))
            }
        }
        // getsockopt / ioctl values.
        match (call, &res) {
            (Call::GetSockOpt(..), CallResult::Value(v)) => {
                let Some(want) = c.args.get(3) else { return Ok(()) };
                if matches!(want.kind, ExprKind::Ellipsis) {
                    return Ok(());
                }
                let ok = match (v, &want.kind) {
                    (SockOptValue::Int(g), _) => self.int(want).map_err(|m| fail(self, m))? == *g,
                    (SockOptValue::Linger { onoff, linger }, ExprKind::Struct(_)) => {
                        self.optval(want).map_err(|m| fail(self, m))?
                            == SockOptValue::Linger { onoff: *onoff, linger: *linger }
                    }
                    _ => true,
                };
                if !ok {
                    let got = match v {
                        SockOptValue::Int(g) => g.to_string(),
                        other => format!("{other:?}"),
                    };
                    return Err(fail(
                        self,
                        format!("getsockopt returned value {got} but expected {}", printer::expr(want)),
                    ));
                }
            }
            (Call::BytesReadable(_), CallResult::Value(SockOptValue::Int(n))) => {
                if let Some(want) = c.args.get(2).filter(|w| !matches!(w.kind, ExprKind::Ellipsis)) {
                    let w = self.int(want).map_err(|m| fail(self, m))?;
                    if w != *n {
                        return Err(fail(self, format!("ioctl returned {n} bytes readable but expected {w}")));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The TCP flags as packetdrill's checks name them, in its order.
const FLAG_FIELDS: [(TcpFlags, &str); 9] = [
    (TcpFlags::FIN, "tcp_fin"),
    (TcpFlags::SYN, "tcp_syn"),
    (TcpFlags::RST, "tcp_rst"),
    (TcpFlags::PSH, "tcp_psh"),
    (TcpFlags::ACK, "tcp_ack"),
    (TcpFlags::URG, "tcp_urg"),
    (TcpFlags::ECE, "tcp_ece"),
    (TcpFlags::CWR, "tcp_cwr"),
    (TcpFlags::AE, "tcp_ae"),
];

/// Syscalls the executor translates.
pub const SUPPORTED: &[&str] = &[
    "socket",
    "bind",
    "listen",
    "accept",
    "connect",
    "read",
    "recv",
    "recvfrom",
    "write",
    "send",
    "sendto",
    "shutdown",
    "close",
    "setsockopt",
    "getsockopt",
    "fcntl",
    "ioctl",
    "tcp_state",
    "tcp_isn_distinct",
    "tcp_isn_beyond_previous",
];

fn call_name(c: &Call) -> &'static str {
    match c {
        Call::Accept(_) => "accept",
        Call::Connect(..) => "connect",
        Call::Read { .. } => "read",
        Call::Write { .. } => "write",
        _ => "call",
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

/// A buffer argument written `NULL` (or 0), which must reach the stack as a null pointer.
fn is_null(e: &Expr) -> bool {
    matches!(&e.kind, ExprKind::Symbol(s) if s == "NULL") || matches!(e.kind, ExprKind::Int(0))
}

fn flags_of(s: &str) -> TcpFlags {
    let mut f = TcpFlags::NONE;
    for c in s.chars() {
        f |= match c {
            'F' => TcpFlags::FIN,
            'S' => TcpFlags::SYN,
            'R' => TcpFlags::RST,
            'P' => TcpFlags::PSH,
            '.' => TcpFlags::ACK,
            'U' => TcpFlags::URG,
            'E' => TcpFlags::ECE,
            'W' => TcpFlags::CWR,
            'A' => TcpFlags::AE,
            _ => TcpFlags::NONE,
        };
    }
    f
}

fn script_notation_options(o: &TcpOptions, ack_offset: u32, ts_offset: Option<u32>) -> String {
    o.iter()
        .map(|x| match x {
            Ok(TcpOption::Timestamps { tsval, tsecr }) => {
                format!("TS val {} ecr {tsecr}", tsval.wrapping_sub(ts_offset.unwrap_or(0)))
            }
            Ok(TcpOption::Sack(blocks)) => {
                let b: Vec<String> = blocks
                    .as_slice()
                    .iter()
                    .map(|(l, r)| format!("{}:{}", l.0.wrapping_sub(ack_offset), r.0.wrapping_sub(ack_offset)))
                    .collect();
                format!("sack {}", b.join(" "))
            }
            Ok(other) => other.to_string(),
            Err(e) => format!("bad({e})"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A stack's segment in script notation: the sequence number less `seq_offset`, the ACK number (and SACK blocks)
/// less `ack_offset`, TSval relative to the learned offset.
fn script_notation(t: &TcpRepr<'_>, seq_offset: u32, ack_offset: u32, ts_offset: Option<u32>) -> String {
    let seq = t.seq.0.wrapping_sub(seq_offset);
    let len = t.payload.len() as u32;
    let mut s = format!("{} {seq}:{}({len})", t.flags.without_reserved(), seq.wrapping_add(len));
    if t.flags.ack() {
        s.push_str(&format!(" ack {}", t.ack.0.wrapping_sub(ack_offset)));
    }
    s.push_str(&format!(" win {}", t.window));
    if !t.options.is_empty() {
        s.push_str(&format!(" <{}>", script_notation_options(&t.options, ack_offset, ts_offset)));
    }
    s
}

/// What is wrong with a stack's option area, checked on every segment it sends: each option but EOL and NOP carries
/// a length that fits (RFC 9293 MUST-68), and whatever follows EOL is zero padding (MUST-69).
fn options_problem(options: &TcpOptions) -> Option<String> {
    for o in options.iter() {
        match o {
            Err(e) => return Some(format!("{e} (RFC 9293 MUST-68)")),
            Ok(TcpOption::Padding(p)) => {
                return Some(format!("non-zero bytes {p:02x?} after EOL (RFC 9293 MUST-69: padding is zeros)"))
            }
            Ok(_) => {}
        }
    }
    None
}

/// Makes the TCP checksum of an IPv4 or IPv6 datagram wrong. Flipping the lowest bit never lands on the other
/// one's-complement form of the same sum (0x0000 and 0xffff differ in every bit), so the result is always wrong.
fn corrupt_tcp_checksum(datagram: &mut [u8]) {
    let ip_len = match datagram.first().map(|b| b >> 4) {
        Some(4) => usize::from(datagram[0] & 0x0f) * 4,
        _ => 40,
    };
    if let Some(b) = datagram.get_mut(ip_len + 17) {
        *b ^= 1;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn outbound_options_need_lengths_and_zero_padding() {
        use super::{options_problem, TcpOptions};
        let ok = |b: &[u8]| options_problem(&TcpOptions::from_bytes(b).expect("fits in an option area"));
        assert_eq!(ok(&[2, 4, 5, 0xb4, 1, 1, 0, 0]), None, "MSS, NOP, NOP, EOL and zero padding");
        assert!(ok(&[2, 4, 5, 0xb4, 0, 0, 7, 0]).unwrap().contains("MUST-69"), "a non-zero byte after EOL");
        assert!(ok(&[1, 1, 1, 99]).unwrap().contains("MUST-68"), "kind 99 without its length byte");
        assert!(ok(&[99, 1, 1, 1]).unwrap().contains("MUST-68"), "a length below 2");
    }

    use super::*;

    fn block(text: &str) -> Code {
        Code { text: text.to_string(), span: Span::default() }
    }

    #[test]
    fn python_program_runs_each_block_with_its_own_snapshot() {
        if std::process::Command::new("python3").arg("-c").arg("pass").output().is_err() {
            eprintln!("python3 not installed: skipped");
            return;
        }
        let run = |blocks: &[(Code, Vec<(&'static str, i64)>)]| {
            let p = std::env::temp_dir().join(format!("tcpdrill-test-{}.py", std::process::id()));
            std::fs::write(&p, python_program(blocks)).unwrap();
            let out = std::process::Command::new("python3").arg(&p).output().unwrap();
            let _ = std::fs::remove_file(&p);
            (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string())
        };
        // Indented, continued and quoted text as packetdrill scripts write it.
        let ok = [
            (
                block(" assert tcpi_state == 1, tcpi_state; \\\n      assert tcpi_ca_state == TCP_CA_Open "),
                vec![("tcpi_state", 1), ("tcpi_ca_state", 0)],
            ),
            (block("assert tcpi_snd_cwnd == 10, \"cwnd\""), vec![("tcpi_snd_cwnd", 10)]),
        ];
        assert_eq!(run(&ok), (true, String::new()));
        // The second block sees its own snapshot, not the first one's: its assertion fails and names block 1.
        let bad = [
            (block("assert tcpi_snd_cwnd == 10"), vec![("tcpi_snd_cwnd", 10)]),
            (block("assert tcpi_snd_cwnd == 10, tcpi_snd_cwnd"), vec![("tcpi_snd_cwnd", 4)]),
        ];
        let (pass, err) = run(&bad);
        assert!(!pass);
        assert!(err.starts_with("block 1: AssertionError: 4"), "{err}");
    }
}
