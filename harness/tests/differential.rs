//! The differential fuzzer (`tcpdrill fuzz`, `tcpdrill::differential`) against a planted divergence: the reference
//! stack behind a wrapper that loses every inbound segment carrying both FIN and PSH, compared with the reference
//! stack itself. The fuzzer must find it, and shrink it to the handshake and a few events; and two stacks that are
//! the same must show no divergence at all.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;
use tcpdrill::backend::{Backend, BackendInfo, Call, CallResult, Capabilities, IpVersion, Micros};
use tcpdrill::differential::{self, Campaign};
use tcpdrill::report::BackendKind;
use tcpdrill_stack::host::SockOptName;
use tcpdrill_stack::wire::{Checksums, TcpDatagram};
use tcpdrill_stack::{FourTuple, TcpState};

/// The reference backend, except that inbound segments with FIN and PSH never reach the stack.
struct Planted(Box<dyn Backend>);

impl Backend for Planted {
    fn name(&self) -> &'static str {
        "planted"
    }
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    fn addresses(&self) -> (IpAddr, IpAddr) {
        self.0.addresses()
    }
    fn ip_version(&self) -> IpVersion {
        self.0.ip_version()
    }
    fn now(&self) -> Micros {
        self.0.now()
    }
    fn advance_to(&mut self, t: Micros) {
        self.0.advance_to(t)
    }
    fn next_event_time(&self) -> Option<Micros> {
        self.0.next_event_time()
    }
    fn inject(&mut self, datagram: &[u8]) -> Result<(), String> {
        let fin_psh =
            TcpDatagram::parse(datagram, Checksums::Ignore).is_ok_and(|d| d.tcp.flags.fin() && d.tcp.flags.psh());
        if fin_psh {
            return Ok(());
        }
        self.0.inject(datagram)
    }
    fn next_outbound(&mut self, deadline: Micros) -> Option<(Micros, Vec<u8>)> {
        self.0.next_outbound(deadline)
    }
    fn call(&mut self, call: &Call) -> CallResult {
        self.0.call(call)
    }
    fn ready(&mut self, call: &Call) -> bool {
        self.0.ready(call)
    }
    fn set_knob(&mut self, name: &str, value: &str) -> Result<(), String> {
        self.0.set_knob(name, value)
    }
    fn check_knob(&self, name: &str, value: &str) -> Result<(), String> {
        self.0.check_knob(name, value)
    }
    fn shell(&mut self, cmd: &str, cwd: Option<&Path>, deadline: std::time::Instant) -> Result<(), String> {
        self.0.shell(cmd, cwd, deadline)
    }
    fn start_clock(&mut self) {
        self.0.start_clock()
    }
    fn refuses(&self, call: &str, option: Option<SockOptName>, args: &[Option<i64>]) -> Option<String> {
        self.0.refuses(call, option, args)
    }
    fn tcp_state(&mut self, tuple: &FourTuple) -> Option<TcpState> {
        self.0.tcp_state(tuple)
    }
    fn state_changes(&mut self) -> Vec<(Micros, FourTuple, TcpState, TcpState)> {
        self.0.state_changes()
    }
}

static PLANTED: BackendInfo = BackendInfo {
    name: "planted",
    symbols: Vec::new,
    netns: false,
    real_time: false,
    exclusive: || false,
    on_request: false,
    runs: |_| Ok(()),
    available: || Ok(()),
    make: |ip| Ok(Box::new(Planted((BackendKind::Reference.info().make)(ip)?))),
};

fn campaign(second: BackendKind, cases: u64) -> Campaign {
    Campaign {
        first: BackendKind::Reference,
        second,
        seed: 7,
        cases,
        time: Duration::from_secs(120),
        jobs: 2,
        max_events: 8,
        shrink_budget: 300,
        out: None,
    }
}

#[test]
fn finds_and_shrinks_a_planted_divergence() {
    let out = std::env::temp_dir().join(format!("tcpdrill-planted-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let c = Campaign { out: Some(out.clone()), ..campaign(BackendKind::of(&PLANTED), 400) };
    let r = differential::campaign(&c, &|_| {});
    assert!(
        r.findings.keys().any(|s| s.stimulus.starts_with("< FIN")),
        "no divergence right after a FIN+PSH segment in {} cases: {:?}",
        r.cases,
        r.findings.keys()
    );
    for (s, (f, n, path)) in &r.findings {
        let lines: Vec<&str> = f.script.lines().collect();
        // A FIN+PSH segment, which the planted stack never saw, comes before the divergent line: the wrapper
        // changes nothing else. (The divergence shows at the reference's answer to it, or later, when the
        // numbers that segment moved are used.)
        assert!(
            lines[..f.line].iter().any(|l| l.contains("< FP")),
            "{s}: no FIN+PSH segment before line {}:\n{}",
            f.line,
            f.script
        );
        // The segment, what makes the stack answer it, and the final look.
        assert!(f.stimulus.body.len() <= 4, "shrunk to {} events ({n} cases):\n{}", f.stimulus.body.len(), f.script);
        // The written file: the header names the divergent line, which is that line of the file.
        let written = std::fs::read_to_string(path.as_ref().expect("written")).expect("readable");
        let named: usize = written
            .lines()
            .next()
            .and_then(|l| l.rsplit("line ").next())
            .and_then(|n| n.trim_end_matches('.').parse().ok())
            .expect("the header names a line");
        assert_eq!(written.lines().nth(named - 1), Some(lines[f.line - 1]), "{written}");
    }
    assert!(out.join("SUMMARY.md").exists());
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_stack_does_not_diverge_from_itself() {
    let r = differential::campaign(&campaign(BackendKind::Reference, 300), &|_| {});
    assert_eq!(r.cases, 300);
    assert!(r.findings.is_empty(), "{:?}", r.findings.keys());
    assert_eq!(
        (r.unusable, r.unstable.0),
        (0, 0),
        "every case usable and stable: {:?} {:?}",
        r.unusable_why,
        r.unstable.1
    );
}

#[test]
fn cases_repeat_from_their_seed() {
    let gen = |seed, i| {
        let bytes = differential::case_bytes(seed, i);
        differential::generate(&mut arbitrary::Unstructured::new(&bytes), 8).expect("a case")
    };
    assert_eq!(gen(3, 5), gen(3, 5));
    assert_ne!(gen(3, 5), gen(3, 6));
    assert_ne!(gen(3, 5), gen(4, 5));
}

/// The rendered script of a recording passes on the stack it recorded: checked for many cases, since everything
/// else rests on it.
#[test]
fn a_recording_renders_as_a_script_that_passes_where_it_was_recorded() {
    let mut rendered = 0;
    for i in 0..200 {
        let bytes = differential::case_bytes(11, i);
        let s = differential::generate(&mut arbitrary::Unstructured::new(&bytes), 8).expect("a case");
        match differential::check(&s, BackendKind::Reference, BackendKind::Reference) {
            Err(differential::NoFinding::Agree) => rendered += 1,
            Err(differential::NoFinding::Unusable(why) | differential::NoFinding::Unstable(why)) => {
                panic!("case {i}: {why}\n{}", s.text())
            }
            Ok(f) => panic!("case {i} diverges from itself: {}\n{}", f.signature, f.script),
        }
    }
    assert_eq!(rendered, 200);
}
