//! `tcpdrill agent`: makes a script's socket calls on the host of a stack under test, for a harness that drives
//! the stack's segments from elsewhere (the raw backend). The protocol is in `docs/agent-protocol.md`: one JSON
//! object per line over TCP, a `hello` with the shared token first, then one request per call, each answered
//! before the next is read.
//!
//! The agent is a remote-control surface, so it does only what the protocol names: the socket calls of
//! [`Call`] (no shell unless `--allow-shell`, no `net.*` sysctl unless `--allow-sysctl`), on descriptors this session opened (any other is EBADF), at most
//! `max_sockets` at a time (EMFILE beyond), for one harness at a time (a second is told so and closed), and
//! every descriptor of a session is reset and closed when the harness goes or is silent for `idle` time. No call
//! blocks the agent: sockets are non-blocking underneath and the harness waits, asking `ready`.

use crate::backend::sockets::Sockets;
use crate::backend::{Call, CallResult, IpVersion};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tcpdrill_stack::host::{Domain, Shutdown, SockOptName, SockOptValue, TcpInfo};
use tcpdrill_stack::{Errno, FourTuple};

/// The protocol version this build speaks.
pub const VERSION: u64 = 1;

/// The longest request line the agent reads; anything longer ends the session.
pub const MAX_LINE: u64 = 64 * 1024;

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The control address it listens on (never a wildcard unless the user wrote one).
    pub listen: SocketAddr,
    /// The shared secret a harness must present.
    pub token: String,
    /// Whether `shell` requests run (`--allow-shell`).
    pub allow_shell: bool,
    /// Whether `sysctl` requests set `net.*` sysctls (`--allow-sysctl`); the old values go back when the session
    /// ends.
    pub allow_sysctl: bool,
    /// Descriptors one session may hold open.
    pub max_sockets: usize,
    /// A session silent this long is ended and its sockets closed.
    pub idle: Duration,
}

/// Compares without an early exit, so that the time taken says nothing about how much of a token was right.
fn same_token(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

/// What a session's calls are made on: this host's kernel sockets (`tcpdrill agent`), or a stack a process
/// serves itself (the reference stack of `tcpdrill serve --agent-listen`). A session's target is its own: it
/// knows the descriptors the session opened and undoes what the session did when it ends.
pub trait Target: Send {
    /// Makes `call`; never blocks (EAGAIN / EINPROGRESS instead).
    fn call(&mut self, call: &Call) -> CallResult;
    /// Whether a call that would block can make progress now.
    fn ready(&mut self, call: &Call) -> bool;
    /// Whether `fd` is a descriptor of this session's.
    fn owns(&self, fd: i32) -> bool;
    /// How many descriptors the session holds.
    fn count(&self) -> usize;
    /// Reads `net.*` sysctl `name` and sets it to `value` when one is given: the value it had (put back when
    /// the session ends).
    fn sysctl(&mut self, name: &str, value: Option<&str>) -> Result<String, String>;
    /// The session is over: every descriptor it holds is reset and closed, what their connections left
    /// destroyed, its sysctls put back.
    fn end(&mut self);
}

/// The kernel's sockets, for `tcpdrill agent`.
struct Kernel {
    sockets: Sockets,
    sysctls: Sysctls,
}

impl Target for Kernel {
    fn call(&mut self, call: &Call) -> CallResult {
        self.sockets.call(call)
    }

    fn ready(&mut self, call: &Call) -> bool {
        self.sockets.ready(call)
    }

    fn owns(&self, fd: i32) -> bool {
        self.sockets.owns(fd)
    }

    fn count(&self) -> usize {
        self.sockets.count()
    }

    fn sysctl(&mut self, name: &str, value: Option<&str>) -> Result<String, String> {
        let path = sysctl_path(name).ok_or_else(|| format!("refused: {name:?} is not a net.* sysctl"))?;
        let old = std::fs::read_to_string(&path).map_err(|e| format!("reading {name}: {e}"))?;
        if let Some(value) = value {
            std::fs::write(&path, value).map_err(|e| format!("setting {name}={value}: {e}"))?;
            if !self.sysctls.0.iter().any(|(p, _)| *p == path) {
                self.sysctls.0.push((path, old.clone()));
            }
        }
        Ok(old.trim_end().to_string())
    }

    fn end(&mut self) {
        self.sockets.destroy_leftovers();
        self.sysctls = Sysctls::default();
    }
}

/// Makes a session's [`Target`] for a run in an IP version.
pub type MakeTarget = Arc<dyn Fn(IpVersion) -> Box<dyn Target> + Send + Sync>;

/// Binds the control address and serves harnesses one at a time, for ever (or until `stop` is set), making
/// their calls on this host's kernel sockets.
pub fn serve(cfg: AgentConfig, stop: Arc<AtomicBool>, ready: impl FnOnce(SocketAddr)) -> Result<(), String> {
    let kernel: MakeTarget = Arc::new(|ip| Box::new(Kernel { sockets: Sockets::new(ip), sysctls: Sysctls::default() }));
    serve_on(cfg, stop, ready, std::env::consts::OS, kernel)
}

/// As [`serve`], making the calls on the targets `target` makes; `os` is what the hello says the stack's OS is.
pub fn serve_on(
    cfg: AgentConfig,
    stop: Arc<AtomicBool>,
    ready: impl FnOnce(SocketAddr),
    os: &'static str,
    target: MakeTarget,
) -> Result<(), String> {
    let listener = TcpListener::bind(cfg.listen).map_err(|e| format!("binding {}: {e}", cfg.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    ready(local);
    let busy = Arc::new(AtomicBool::new(false));
    while !stop.load(Ordering::Relaxed) {
        let (mut stream, peer) = match listener.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => return Err(format!("accepting on {local}: {e}")),
        };
        let _ = stream.set_nonblocking(false);
        // A harness running scripts one after another reconnects as soon as it closed the last session, which
        // may take this agent a moment to wind up: a little patience before calling it a second harness.
        let patience = std::time::Instant::now() + Duration::from_secs(1);
        while busy.load(Ordering::SeqCst) && std::time::Instant::now() < patience {
            std::thread::sleep(Duration::from_millis(2));
        }
        if busy.swap(true, Ordering::SeqCst) {
            let _ = writeln!(stream, "{}", json!({"error": "busy: another harness is connected"}));
            continue;
        }
        let (cfg, busy, target) = (cfg.clone(), busy.clone(), target.clone());
        std::thread::spawn(move || {
            if let Err(e) = session(&cfg, stream, os, &target) {
                eprintln!("tcpdrill agent: session with {peer} ended: {e}");
            }
            busy.store(false, Ordering::SeqCst);
        });
    }
    Ok(())
}

/// One harness: the hello, then its requests until it goes.
fn session(cfg: &AgentConfig, stream: TcpStream, os: &str, target: &MakeTarget) -> Result<(), String> {
    stream.set_read_timeout(Some(cfg.idle)).map_err(|e| e.to_string())?;
    // Each answer is one small write the harness waits for: no Nagle delay behind its delayed ACK.
    let _ = stream.set_nodelay(true);
    let mut out = stream.try_clone().map_err(|e| e.to_string())?;
    let mut input = BufReader::new(stream);
    let mut reply = |v: Value| out.write_all(format!("{v}\n").as_bytes()).map_err(|e| format!("writing: {e}"));
    let Some(hello) = read_request(&mut input)? else { return Ok(()) };
    let token = hello.get("token").and_then(Value::as_str).unwrap_or("");
    if hello.get("op").and_then(Value::as_str) != Some("hello") || !same_token(token, &cfg.token) {
        reply(json!({"error": "refused: the first request must be a hello with the agent's token"}))?;
        return Err("refused a harness without the token".into());
    }
    if hello.get("version").and_then(Value::as_u64) != Some(VERSION) {
        reply(json!({"error": format!("unsupported protocol version: this agent speaks {VERSION}")}))?;
        return Err("refused another protocol version".into());
    }
    reply(
        json!({"ok": 0, "agent": "tcpdrill", "version": VERSION, "shell": cfg.allow_shell, "sysctl": cfg.allow_sysctl,
            "os": os}),
    )?;
    // The run's IP version decides how an AF_INET6 socket's IPv4 addresses are written (IPv4-mapped); a harness
    // that says none runs IPv4.
    let ip = hello.get("ip").and_then(Value::as_str).and_then(IpVersion::from_name).unwrap_or(IpVersion::V4);
    // The sockets go with the session, however it ends: reset and closed, and what is left of their connections
    // (TIME-WAIT, orphans) destroyed, so that the next harness finds the stack as this one did; the sysctls it
    // set go back.
    let mut target = target(ip);
    let mut serve = || -> Result<(), String> {
        while let Some(req) = read_request(&mut input)? {
            let id = req.get("id").cloned().unwrap_or(Value::Null);
            let mut v = if req.get("op").and_then(Value::as_str) == Some("sysctl") {
                sysctl(cfg, target.as_mut(), &req)
            } else {
                handle(cfg, target.as_mut(), &req)
            };
            v["id"] = id;
            reply(v)?;
        }
        Ok(())
    };
    let r = serve();
    target.end();
    r
}

/// The sysctls a session changed, with the values they had, put back when it ends.
#[derive(Default)]
struct Sysctls(Vec<(std::path::PathBuf, String)>);

impl Drop for Sysctls {
    fn drop(&mut self) {
        for (path, old) in self.0.drain(..).rev() {
            let _ = std::fs::write(&path, old);
        }
    }
}

/// The file of sysctl `name` (`net.ipv4.tcp_rfc1337`), if it is a `net.*` one in plain dotted form.
pub fn sysctl_path(name: &str) -> Option<std::path::PathBuf> {
    let parts: Vec<&str> = name.split('.').collect();
    let plain = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    (parts.len() >= 2 && parts[0] == "net" && parts.iter().all(plain))
        .then(|| std::path::Path::new("/proc/sys").join(parts.join("/")))
}

/// A `sysctl` request: reads `name`, and sets it to `value` when one is given (the target remembers the old
/// value).
fn sysctl(cfg: &AgentConfig, target: &mut dyn Target, req: &Value) -> Value {
    if !cfg.allow_sysctl {
        return json!({"error": "refused: sysctls need the agent's --allow-sysctl"});
    }
    let Some(name) = req.get("name").and_then(Value::as_str) else { return json!({"error": "name is missing"}) };
    if sysctl_path(name).is_none() {
        return json!({"error": format!("refused: {name:?} is not a net.* sysctl")});
    }
    match target.sysctl(name, req.get("value").and_then(Value::as_str)) {
        Ok(old) => json!({"ok": 0, "value": old}),
        Err(e) => json!({"error": e}),
    }
}

/// The next request, or `None` at the end of the stream; too long a line or bad JSON ends the session.
fn read_request(input: &mut BufReader<TcpStream>) -> Result<Option<Value>, String> {
    let mut line = String::new();
    let n = input.by_ref().take(MAX_LINE + 1).read_line(&mut line).map_err(|e| format!("reading: {e}"))?;
    if n == 0 {
        return Ok(None);
    }
    if n as u64 > MAX_LINE {
        return Err(format!("a request longer than {MAX_LINE} bytes"));
    }
    serde_json::from_str(&line).map(Some).map_err(|e| format!("a request that is not JSON: {e}"))
}

fn field_i64(req: &Value, k: &str) -> Result<i64, String> {
    req.get(k).and_then(Value::as_i64).ok_or_else(|| format!("{k} (an integer) is missing"))
}

fn field_addr(req: &Value, k: &str) -> Result<SocketAddr, String> {
    let s = req.get(k).and_then(Value::as_str).ok_or_else(|| format!("{k} (\"ADDR:PORT\") is missing"))?;
    s.parse().map_err(|_| format!("{k}: {s:?} is not ADDR:PORT"))
}

/// A request as the [`Call`] the agent makes, or why it refuses it.
fn to_call(req: &Value) -> Result<Call, String> {
    let op = req.get("op").and_then(Value::as_str).ok_or("op is missing")?;
    let fd = || field_i64(req, "fd").map(|v| v as i32);
    let flag = |k: &str| req.get(k).and_then(Value::as_bool).unwrap_or(false);
    Ok(match op {
        "socket" => match field_i64(req, "family")? {
            4 => Call::Socket(Domain::Inet),
            6 => Call::Socket(Domain::Inet6),
            f => return Err(format!("family {f}: 4 or 6")),
        },
        "bind" => Call::Bind(fd()?, field_addr(req, "addr")?),
        "connect" => Call::Connect(fd()?, field_addr(req, "addr")?),
        "listen" => Call::Listen(fd()?, field_i64(req, "backlog")? as i32),
        "accept" => Call::Accept(fd()?),
        "read" => Call::Read {
            fd: fd()?,
            len: field_i64(req, "len")?.clamp(0, 1 << 24) as usize,
            peek: flag("peek"),
            null: flag("null"),
        },
        "write" => Call::Write {
            fd: fd()?,
            len: field_i64(req, "len")?.clamp(0, 1 << 24) as usize,
            null: flag("null"),
            flags: req.get("flags").and_then(Value::as_i64).unwrap_or(0) as i32,
            to: match req.get("to") {
                Some(Value::Null) | None => None,
                Some(_) => Some(field_addr(req, "to")?),
            },
        },
        "shutdown" => Call::Shutdown(
            fd()?,
            match field_i64(req, "how")? {
                0 => Shutdown::Read,
                1 => Shutdown::Write,
                2 => Shutdown::Both,
                h => return Err(format!("how {h}: 0, 1 or 2")),
            },
        ),
        "close" => Call::Close(fd()?),
        "setsockopt" => {
            let hex = req.get("value").and_then(Value::as_str).ok_or("value (hex bytes) is missing")?;
            let value = crate::hex::decode(hex).map_err(|e| format!("value: {e}"))?;
            Call::SetSockOptRaw {
                fd: fd()?,
                level: field_i64(req, "level")? as i32,
                name: field_i64(req, "name")? as i32,
                value,
            }
        }
        "getsockopt" => Call::GetSockOptRaw {
            fd: fd()?,
            level: field_i64(req, "level")? as i32,
            name: field_i64(req, "name")? as i32,
            string: Some(field_i64(req, "len")?.clamp(0, 4096) as usize),
        },
        "getfl" => Call::GetFl(fd()?),
        "setnonblock" => Call::SetNonBlocking(fd()?, flag("on")),
        "fionread" => Call::BytesReadable(fd()?),
        "poll" => {
            let fds = req.get("fds").and_then(Value::as_array).ok_or("fds ([[fd, events], ...]) is missing")?;
            let fds = fds
                .iter()
                .map(|p| match p.as_array().map(Vec::as_slice) {
                    Some([f, e]) => Ok((f.as_i64().unwrap_or(-1) as i32, e.as_i64().unwrap_or(0) as i16)),
                    _ => Err("fds: each one [fd, events]".to_string()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Call::Poll { fds, until: None }
        }
        "tcp_state" => {
            Call::TcpState(FourTuple { local: field_addr(req, "local")?, remote: field_addr(req, "remote")? })
        }
        "epoll_create" => Call::EpollCreate(field_i64(req, "size")? as i32),
        "epoll_ctl" => Call::EpollCtl {
            epfd: field_i64(req, "epfd")? as i32,
            op: field_i64(req, "ctl")? as i32,
            fd: fd()?,
            events: field_i64(req, "events")? as u32,
            data: req.get("data").and_then(Value::as_u64).unwrap_or(0),
        },
        "epoll_wait" => {
            Call::EpollWait { epfd: field_i64(req, "epfd")? as i32, max: field_i64(req, "max")? as i32, until: None }
        }
        other => return Err(format!("refused: {other:?} is not a call this agent makes")),
    })
}

/// The descriptors a call works on, which must be the session's own.
fn call_fds(call: &Call) -> Vec<i32> {
    match call {
        Call::Socket(_) | Call::TcpState(_) | Call::EpollCreate(_) => vec![],
        Call::Bind(fd, _)
        | Call::Connect(fd, _)
        | Call::Listen(fd, _)
        | Call::Accept(fd)
        | Call::Shutdown(fd, _)
        | Call::Close(fd)
        | Call::GetFl(fd)
        | Call::SetNonBlocking(fd, _)
        | Call::BytesReadable(fd)
        | Call::SetSockOpt(fd, ..)
        | Call::GetSockOpt(fd, _)
        | Call::Read { fd, .. }
        | Call::Write { fd, .. }
        | Call::SetSockOptRaw { fd, .. }
        | Call::GetSockOptRaw { fd, .. } => vec![*fd],
        Call::Poll { fds, .. } => fds.iter().map(|(f, _)| *f).collect(),
        Call::EpollCtl { epfd, fd, .. } => vec![*epfd, *fd],
        Call::EpollWait { epfd, .. } => vec![*epfd],
    }
}

fn errno_reply(e: Errno) -> Value {
    json!({"errno": e as i32, "name": e.name()})
}

/// One request's answer.
fn handle(cfg: &AgentConfig, sockets: &mut dyn Target, req: &Value) -> Value {
    let op = req.get("op").and_then(Value::as_str).unwrap_or("");
    if op == "shell" {
        if !cfg.allow_shell {
            return json!({"error": "refused: shell commands need the agent's --allow-shell"});
        }
        let Some(cmd) = req.get("cmd").and_then(Value::as_str) else { return json!({"error": "cmd is missing"}) };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut c = std::process::Command::new("sh");
        c.arg("-c").arg(cmd);
        return match crate::backend::output_within(&mut c, deadline) {
            Ok(o) => {
                let text = |b: &[u8]| String::from_utf8_lossy(&b[..b.len().min(16 * 1024)]).into_owned();
                json!({"ok": o.status.code().unwrap_or(-1), "stdout": text(&o.stdout), "stderr": text(&o.stderr)})
            }
            Err(e) => json!({"error": e}),
        };
    }
    if op == "ready" {
        let (Ok(fd), Ok(events)) = (field_i64(req, "fd"), field_i64(req, "events")) else {
            return json!({"error": "ready takes fd and events"});
        };
        if !sockets.owns(fd as i32) {
            return errno_reply(Errno::EBADF);
        }
        let call = if events & i64::from(libc::POLLOUT) != 0 {
            Call::Write { fd: fd as i32, len: 0, null: false, flags: 0, to: None }
        } else {
            Call::Read { fd: fd as i32, len: 0, peek: false, null: false }
        };
        return json!({"ok": i64::from(sockets.ready(&call))});
    }
    let call = match to_call(req) {
        Ok(c) => c,
        Err(e) => return json!({"error": e}),
    };
    if call_fds(&call).iter().any(|fd| !sockets.owns(*fd)) {
        return errno_reply(Errno::EBADF);
    }
    if matches!(call, Call::Socket(_) | Call::Accept(_) | Call::EpollCreate(_)) && sockets.count() >= cfg.max_sockets {
        return errno_reply(Errno::EMFILE);
    }
    match sockets.call(&call) {
        CallResult::Ok(v) => json!({"ok": v}),
        CallResult::Err(e) => errno_reply(e),
        CallResult::Value(SockOptValue::Int(v)) => json!({"ok": 0, "value": v}),
        CallResult::Value(SockOptValue::Linger { onoff, linger }) => json!({"ok": 0, "linger": [onoff, linger]}),
        CallResult::Value(SockOptValue::Info(i)) => json!({"ok": 0, "tcpi_state": i.state}),
        CallResult::Bytes(b) => json!({"ok": 0, "bytes": crate::hex::encode(&b)}),
        CallResult::Polled(r) => json!({"revents": r}),
        CallResult::Epolled(r) => json!({"events": r.iter().map(|(e, d)| json!([e, d])).collect::<Vec<_>>()}),
    }
}

/// The harness's end: a session with an agent, making [`Call`]s there.
#[derive(Debug)]
pub struct AgentClient {
    input: BufReader<TcpStream>,
    out: TcpStream,
    next: u64,
    shell: bool,
    sysctl: bool,
    os: String,
}

impl AgentClient {
    /// Connects to the agent at `addr` and presents `token`, for an IPv4 run.
    pub fn connect(addr: SocketAddr, token: &str, timeout: Duration) -> Result<AgentClient, String> {
        AgentClient::connect_for(addr, token, timeout, IpVersion::V4)
    }

    /// As [`AgentClient::connect`], for a run in IP version `ip` (which decides how the agent writes an AF_INET6
    /// socket's IPv4 addresses: IPv4-mapped in [`IpVersion::V4MappedV6`]).
    pub fn connect_for(addr: SocketAddr, token: &str, timeout: Duration, ip: IpVersion) -> Result<AgentClient, String> {
        // An agent started a moment ago may not listen yet: refusals are retried until `timeout`.
        let limit = std::time::Instant::now() + timeout;
        let s = loop {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(s) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused && std::time::Instant::now() < limit => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(format!("connecting to the agent at {addr}: {e}")),
            }
        };
        s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
        let _ = s.set_nodelay(true);
        let out = s.try_clone().map_err(|e| e.to_string())?;
        let mut c =
            AgentClient { input: BufReader::new(s), out, next: 1, shell: false, sysctl: false, os: String::new() };
        let v = c.request(json!({"op": "hello", "version": VERSION, "token": token, "ip": ip.name()}))?;
        if v.get("agent").and_then(Value::as_str) != Some("tcpdrill") {
            return Err(format!("the agent at {addr} said {v}"));
        }
        c.shell = v.get("shell").and_then(Value::as_bool).unwrap_or(false);
        c.sysctl = v.get("sysctl").and_then(Value::as_bool).unwrap_or(false);
        c.os = v.get("os").and_then(Value::as_str).unwrap_or("").to_string();
        Ok(c)
    }

    /// Whether the agent runs shell commands (it was started with `--allow-shell`).
    pub fn allows_shell(&self) -> bool {
        self.shell
    }

    /// The agent's OS as it says (Rust's name for it: `linux`, `freebsd`), or empty.
    pub fn os(&self) -> &str {
        &self.os
    }

    /// Whether the agent sets `net.*` sysctls (it was started with `--allow-sysctl`).
    pub fn allows_sysctl(&self) -> bool {
        self.sysctl
    }

    /// Sets sysctl `name` to `value` on the agent's host until the session ends.
    pub fn sysctl(&mut self, name: &str, value: &str) -> Result<(), String> {
        self.request(json!({"op": "sysctl", "name": name, "value": value})).map(|_| ())
    }

    /// Runs `cmd` with `sh -c` on the agent's host: its exit status and standard output.
    pub fn shell(&mut self, cmd: &str) -> Result<(i64, String), String> {
        let r = self.request(json!({"op": "shell", "cmd": cmd}))?;
        let status = r.get("ok").and_then(Value::as_i64).unwrap_or(-1);
        let stdout = r.get("stdout").and_then(Value::as_str).unwrap_or("").to_string();
        if status != 0 {
            let stderr = r.get("stderr").and_then(Value::as_str).unwrap_or("").trim().to_string();
            return Err(format!("`{cmd}` exited with {status} on the agent's host: {stderr}"));
        }
        Ok((status, stdout))
    }

    /// Sends one request and reads its answer; a protocol-level refusal (`error`) is an `Err`.
    pub fn request(&mut self, mut v: Value) -> Result<Value, String> {
        v["id"] = json!(self.next);
        self.next += 1;
        // One write per request (with TCP_NODELAY): a call's latency is a round trip, not a delayed ACK.
        self.out.write_all(format!("{v}\n").as_bytes()).map_err(|e| format!("writing to the agent: {e}"))?;
        let mut line = String::new();
        let n = self
            .input
            .by_ref()
            .take(MAX_LINE + 1)
            .read_line(&mut line)
            .map_err(|e| format!("reading from the agent: {e}"))?;
        if n == 0 {
            return Err("the agent closed the connection".into());
        }
        let r: Value = serde_json::from_str(&line).map_err(|e| format!("the agent's answer is not JSON: {e}"))?;
        match r.get("error").and_then(Value::as_str) {
            Some(e) => Err(format!("the agent refused: {e}")),
            None => Ok(r),
        }
    }

    /// Makes `call` on the agent's host. Typed socket options go as their Linux (level, name) and bytes.
    pub fn call(&mut self, call: &Call) -> CallResult {
        let req = match request_for(call) {
            Ok(r) => r,
            Err(e) => return CallResult::Err(e),
        };
        let r = match self.request(req) {
            Ok(r) => r,
            Err(_) => return CallResult::Err(Errno::EIO),
        };
        if let Some(n) = r.get("errno").and_then(Value::as_i64) {
            return CallResult::Err(Errno::from_number(n as i32).unwrap_or(Errno::EINVAL));
        }
        if let Some(rev) = r.get("revents").and_then(Value::as_array) {
            return CallResult::Polled(rev.iter().map(|x| x.as_i64().unwrap_or(0) as i16).collect());
        }
        if let Some(evs) = r.get("events").and_then(Value::as_array) {
            let pair = |x: &Value| {
                let a = x.as_array();
                let g = |i: usize| a.and_then(|a| a.get(i)).and_then(Value::as_u64).unwrap_or(0);
                (g(0) as u32, g(1))
            };
            return CallResult::Epolled(evs.iter().map(pair).collect());
        }
        if let Some(hex) = r.get("bytes").and_then(Value::as_str) {
            let b = crate::hex::decode(hex).unwrap_or_default();
            return match call {
                Call::GetSockOpt(_, SockOptName::Linger) if b.len() >= 8 => CallResult::Value(SockOptValue::Linger {
                    onoff: i32::from_ne_bytes([b[0], b[1], b[2], b[3]]) != 0,
                    linger: i32::from_ne_bytes([b[4], b[5], b[6], b[7]]) as u32,
                }),
                Call::GetSockOpt(_, SockOptName::Info) => CallResult::Value(SockOptValue::Info(TcpInfo {
                    state: b.first().copied().unwrap_or(0),
                    ..TcpInfo::default()
                })),
                Call::GetSockOpt(..) | Call::GetSockOptRaw { string: None, .. } if b.len() >= 4 => {
                    CallResult::Value(SockOptValue::Int(i64::from(i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))))
                }
                _ => CallResult::Bytes(b),
            };
        }
        if let Some(v) = r.get("value").and_then(Value::as_i64) {
            return CallResult::Value(SockOptValue::Int(v));
        }
        match (call, r.get("ok").and_then(Value::as_i64)) {
            (Call::TcpState(_), Some(n)) => CallResult::Value(SockOptValue::Int(n)),
            (_, Some(n)) => CallResult::Ok(n),
            _ => CallResult::Err(Errno::EIO),
        }
    }

    /// Whether a call that would block can make progress now, asked of the agent.
    pub fn ready(&mut self, call: &Call) -> bool {
        let (fd, events) = match call {
            Call::Accept(fd) | Call::Read { fd, .. } => (*fd, libc::POLLIN),
            Call::Write { fd, .. } | Call::Connect(fd, _) => (*fd, libc::POLLOUT),
            _ => return true,
        };
        self.request(json!({"op": "ready", "fd": fd, "events": events}))
            .ok()
            .and_then(|r| r.get("ok").and_then(Value::as_i64))
            .is_some_and(|v| v != 0)
    }
}

/// The protocol's request for a call.
fn request_for(call: &Call) -> Result<Value, Errno> {
    let addr = |a: &SocketAddr| a.to_string();
    Ok(match call {
        Call::Socket(d) => json!({"op": "socket", "family": if *d == Domain::Inet6 { 6 } else { 4 }}),
        Call::Bind(fd, a) => json!({"op": "bind", "fd": fd, "addr": addr(a)}),
        Call::Connect(fd, a) => json!({"op": "connect", "fd": fd, "addr": addr(a)}),
        Call::Listen(fd, b) => json!({"op": "listen", "fd": fd, "backlog": b}),
        Call::Accept(fd) => json!({"op": "accept", "fd": fd}),
        // (`null` in json! is JSON's null, hence the other name.)
        Call::Read { fd, len, peek, null: is_null } => {
            json!({"op": "read", "fd": fd, "len": len, "peek": peek, "null": is_null})
        }
        Call::Write { fd, len, null: is_null, flags, to } => {
            json!({"op": "write", "fd": fd, "len": len, "null": is_null, "flags": flags, "to": to.as_ref().map(addr)})
        }
        Call::Shutdown(fd, how) => {
            let how = match how {
                Shutdown::Read => 0,
                Shutdown::Write => 1,
                Shutdown::Both => 2,
            };
            json!({"op": "shutdown", "fd": fd, "how": how})
        }
        Call::Close(fd) => json!({"op": "close", "fd": fd}),
        Call::SetSockOpt(fd, name, value) => {
            let (level, opt) = Sockets::opt(*name);
            let bytes = match value {
                SockOptValue::Int(v) => (*v as i32).to_ne_bytes().to_vec(),
                SockOptValue::Linger { onoff, linger } => {
                    [i32::from(*onoff).to_ne_bytes(), (*linger as i32).to_ne_bytes()].concat()
                }
                SockOptValue::Info(_) => return Err(Errno::ENOPROTOOPT),
            };
            json!({"op": "setsockopt", "fd": fd, "level": level, "name": opt, "value": crate::hex::encode(&bytes)})
        }
        Call::SetSockOptRaw { fd, level, name, value } => {
            json!({"op": "setsockopt", "fd": fd, "level": level, "name": name, "value": crate::hex::encode(value)})
        }
        Call::GetSockOpt(fd, name) => {
            let (level, opt) = Sockets::opt(*name);
            let len = match name {
                SockOptName::Linger => 8,
                SockOptName::Info => 256,
                _ => 4,
            };
            json!({"op": "getsockopt", "fd": fd, "level": level, "name": opt, "len": len})
        }
        Call::GetSockOptRaw { fd, level, name, string } => {
            json!({"op": "getsockopt", "fd": fd, "level": level, "name": name, "len": string.unwrap_or(4)})
        }
        Call::GetFl(fd) => json!({"op": "getfl", "fd": fd}),
        Call::SetNonBlocking(fd, on) => json!({"op": "setnonblock", "fd": fd, "on": on}),
        Call::BytesReadable(fd) => json!({"op": "fionread", "fd": fd}),
        Call::Poll { fds, .. } => {
            json!({"op": "poll", "fds": fds.iter().map(|(f, e)| json!([f, e])).collect::<Vec<_>>()})
        }
        Call::TcpState(t) => json!({"op": "tcp_state", "local": addr(&t.local), "remote": addr(&t.remote)}),
        Call::EpollCreate(size) => json!({"op": "epoll_create", "size": size}),
        Call::EpollCtl { epfd, op, fd, events, data } => {
            json!({"op": "epoll_ctl", "epfd": epfd, "ctl": op, "fd": fd, "events": events, "data": data})
        }
        Call::EpollWait { epfd, max, .. } => json!({"op": "epoll_wait", "epfd": epfd, "max": max}),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("s3cret", "s3cret"));
        assert!(!same_token("s3cret", "s3cre"));
        assert!(!same_token("s3cret", "s3cret!"));
        assert!(!same_token("", "x"));
        assert!(!same_token("s3cret", "S3cret"));
    }
}
