//! A minimal in-process backend, to copy when testing your own TCP stack with tcpdrill (docs/backends.md).
//!
//! "Your stack" here is tcpdrill's reference `Host`, driven only through what any sans-IO stack has: take a
//! datagram, give the datagrams it wants sent, tell when its next timer is due, fire it, and make the socket calls.
//! Replace the `Host` calls with your stack's and keep the shape: the executor owns time (a virtual clock that
//! jumps to the next event), hands you datagrams with `inject`, asks for what you sent with `next_outbound`, and
//! never expects a call to block (return EAGAIN / EINPROGRESS; it asks `ready` and calls again).
//!
//! Run it: `cargo run -p tcpdrill --example my_stack -- scripts/handshake/passive-open.pkt`. `cargo test` runs
//! its test, which runs two of the suite's handshake scripts through it.

use std::collections::VecDeque;
use std::net::IpAddr;
use tcpdrill::backend::{Backend, Call, CallResult, Capabilities, IpVersion, Micros};
use tcpdrill::run::{RunOptions, Verdict};
use tcpdrill::script::{parse, ParseOptions};
use tcpdrill_stack::host::{pollbits, Host, SockOptValue};
use tcpdrill_stack::{Config, FourTuple, Instant, TcpState};

/// Script time 0 on the stack's clock (any value will do; a little after zero looks ordinary).
const EPOCH: u64 = 1_000_000;

/// Your stack, and what the executor needs around it.
struct MyStack {
    stack: Host,
    /// The executor's clock: microseconds since the script's start.
    now: Micros,
    /// What the stack sent and the executor has not taken yet, with when.
    out: VecDeque<(Micros, Vec<u8>)>,
}

impl MyStack {
    fn new() -> MyStack {
        // The executor's addresses: the stack is packetdrill's 192.168.0.1, the peer it plays 192.0.2.1.
        let stack = Host::new(Config::default(), &[IpVersion::V4.local_ip()], 1);
        MyStack { stack, now: 0, out: VecDeque::new() }
    }

    fn instant(&self) -> Instant {
        Instant::from_micros(EPOCH + self.now as u64)
    }

    /// Takes what the stack wants sent, stamped with the current time.
    fn collect(&mut self) {
        while let Some(d) = self.stack.poll_transmit() {
            self.out.push_back((self.now, d));
        }
    }

    /// The stack's next timer, in script time.
    fn next_timer(&self) -> Option<Micros> {
        self.stack.poll_timeout().map(|t| t.micros() as Micros - EPOCH as Micros)
    }

    /// Fires the stack's timers due by `t`, moving the clock to each: bounded, as every loop of a harness is.
    fn run_until(&mut self, t: Micros) {
        for _ in 0..100_000 {
            match self.next_timer() {
                Some(at) if at <= t => {
                    self.now = self.now.max(at);
                    let now = self.instant();
                    self.stack.on_timeout(now);
                    self.collect();
                }
                _ => break,
            }
        }
        self.now = self.now.max(t);
    }
}

impl Backend for MyStack {
    fn name(&self) -> &'static str {
        "my-stack"
    }

    fn capabilities(&self) -> Capabilities {
        // Socket calls, on a virtual clock; no shell, no python blocks, no ICMP, not Linux's socket API (scripts
        // using options it does not have are skipped, not failed).
        Capabilities { calls: true, ..Capabilities::default() }
    }

    fn addresses(&self) -> (IpAddr, IpAddr) {
        (IpVersion::V4.local_ip(), IpVersion::V4.remote_ip())
    }

    fn now(&self) -> Micros {
        self.now
    }

    fn advance_to(&mut self, t: Micros) {
        self.run_until(t);
    }

    fn next_event_time(&self) -> Option<Micros> {
        self.next_timer()
    }

    fn inject(&mut self, datagram: &[u8]) -> Result<(), String> {
        let now = self.instant();
        // A datagram your stack drops (a bad checksum) is not an error of the harness: report only what should
        // never happen.
        let _ = self.stack.receive(now, datagram);
        self.collect();
        Ok(())
    }

    fn next_outbound(&mut self, deadline: Micros) -> Option<(Micros, Vec<u8>)> {
        for _ in 0..100_000 {
            if let Some(p) = self.out.pop_front() {
                return Some(p);
            }
            match self.next_timer() {
                Some(at) if at <= deadline => self.run_until(at),
                _ => break,
            }
        }
        self.now = self.now.max(deadline);
        None
    }

    fn call(&mut self, call: &Call) -> CallResult {
        let now = self.instant();
        let s = &mut self.stack;
        let r = match call {
            Call::Socket(d) => s.socket(*d).map(i64::from),
            Call::Bind(fd, a) => s.bind(*fd, *a).map(|()| 0),
            Call::Listen(fd, backlog) => s.listen(*fd, *backlog).map(|()| 0),
            Call::Accept(fd) => s.accept(*fd).map(|(f, _)| i64::from(f)),
            Call::Connect(fd, a) => s.connect(now, *fd, *a).map(|()| 0),
            Call::Read { fd, len, peek, .. } => s.read(now, *fd, *len, *peek).map(|d| d.len() as i64),
            Call::Write { fd, len, .. } => s.write(now, *fd, &vec![0u8; *len]).map(|n| n as i64),
            Call::Shutdown(fd, how) => s.shutdown(now, *fd, *how).map(|()| 0),
            Call::Close(fd) => s.close(now, *fd).map(|()| 0),
            Call::SetSockOpt(fd, name, value) => s.setsockopt(now, *fd, *name, *value).map(|()| 0),
            Call::SetNonBlocking(fd, on) => s.set_nonblocking(*fd, *on).map(|()| 0),
            // The script's `tcp_state()`: the connection's state by its four-tuple (a remote port of 0 means the
            // listener), as Linux's number.
            Call::TcpState(t) => {
                let listening = t.remote.port() == 0 && s.is_listening(&t.local);
                let state = s.tcp_state(t).unwrap_or(if listening { TcpState::Listen } else { TcpState::Closed });
                return CallResult::Value(SockOptValue::Int(i64::from(state.linux_number())));
            }
            // What your stack has no counterpart for: say so. (Better still, refuse it before the run with
            // `Backend::refuses`, so that the script is skipped with the reason rather than failed.)
            _ => Err(tcpdrill_stack::Errno::ENOSYS),
        };
        self.collect();
        match r {
            Ok(v) => CallResult::Ok(v),
            Err(e) => CallResult::Err(e),
        }
    }

    fn ready(&mut self, call: &Call) -> bool {
        // Whether a call the script makes blocking could make progress now; the executor then calls again.
        let fd = match call {
            Call::Accept(fd) | Call::Connect(fd, _) | Call::Read { fd, .. } | Call::Write { fd, .. } => *fd,
            _ => return true,
        };
        let Ok(bits) = self.stack.poll(fd) else { return true };
        match call {
            Call::Connect(..) => !matches!(
                self.stack.fd_connection(fd).map(|t| t.state()),
                Some(TcpState::SynSent | TcpState::SynReceived)
            ),
            Call::Write { .. } => bits & (pollbits::OUT | pollbits::ERR | pollbits::HUP) != 0,
            _ => bits & (pollbits::IN | pollbits::ERR | pollbits::HUP) != 0,
        }
    }

    fn set_knob(&mut self, name: &str, value: &str) -> Result<(), String> {
        self.check_knob(name, value)?;
        if name == "mtu" {
            // The link's MTU (packetdrill's --mtu; 1520 for the IPv6 variant): give it to your stack's interface.
            self.stack.config_mut().mtu = value.trim().parse().map_err(|_| format!("bad MTU {value:?}"))?;
        }
        Ok(())
    }

    fn check_knob(&self, name: &str, value: &str) -> Result<(), String> {
        match name {
            // Two header options come here as knobs too: the link's MTU, and TSO, an offload an in-process stack
            // does not have (its segments are wire-sized whatever the script asks).
            "mtu" => value.trim().parse::<u32>().map(|_| ()).map_err(|_| format!("bad MTU {value:?}")),
            "tso" => Ok(()),
            // A sysctl your stack has no counterpart for: the script that sets it is skipped with this reason.
            _ => Err(format!("{name} has no counterpart in my stack")),
        }
    }

    fn shell(&mut self, cmd: &str, _cwd: Option<&std::path::Path>, _: std::time::Instant) -> Result<(), String> {
        Err(format!("my stack runs no shell commands ({cmd:?})"))
    }

    fn tcp_state(&mut self, tuple: &FourTuple) -> Option<TcpState> {
        self.stack.tcp_state(tuple)
    }
}

/// Runs one script file on a fresh stack.
fn run_file(path: &std::path::Path) -> Result<Verdict, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = path.display().to_string();
    let script = parse(&name, &text, &ParseOptions::default()).map_err(|e| e.to_string())?;
    let mut stack = MyStack::new();
    Ok(tcpdrill::run::run(&name, &text, &script, &mut stack, RunOptions::default()).verdict)
}

fn main() -> std::process::ExitCode {
    let mut failed = false;
    for p in std::env::args().skip(1) {
        match run_file(p.as_ref()) {
            Ok(Verdict::Pass) => println!("{p}: ok"),
            Ok(Verdict::Skipped(why)) => println!("{p}: skipped ({why})"),
            Ok(Verdict::Fail(f)) => {
                println!("{p}: FAIL\n{}", f.text());
                failed = true;
            }
            Err(e) => {
                println!("{p}: {e}");
                failed = true;
            }
        }
    }
    std::process::ExitCode::from(u8::from(failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts").join(name)
    }

    #[test]
    fn the_handshake_scripts_pass_through_the_example_backend() {
        for s in ["handshake/passive-open.pkt", "handshake/active-open.pkt"] {
            match run_file(&script(s)) {
                Ok(Verdict::Pass) => {}
                other => panic!("{s}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_script_that_sets_a_sysctl_is_skipped_with_the_reason() {
        let p = script("handshake/syn-retransmission-timeout.pkt");
        match run_file(&p) {
            Ok(Verdict::Skipped(why)) => assert!(why.contains("has no counterpart in my stack"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
