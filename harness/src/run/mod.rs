//! The executor: runs a parsed script against a [`Backend`] with packetdrill's semantics, and records a trace.
//!
//! - Time: events happen at their script times; an outbound packet must arrive within
//!   `max(--tolerance_usecs, --tolerance_percent x gap since the previous event)` of its time (or anywhere in
//!   `a~b`, or at any time for `*`); relative times after `*`/`a~b` count from when the packet really came.
//! - Numbers: the remote side's (the script's own) sequence numbers, ports and TSvals are used as written; the
//!   stack's side is relative to its ISN, learned from its first SYN or SYN-ACK. Inbound ACK numbers and SACK
//!   blocks are shifted by that ISN, inbound TS ecr by the stack's TSval offset learned from its first TS option.
//! - Outbound packets are checked field by field in packetdrill's order and the first mismatch is reported in
//!   packetdrill's words. Unlike packetdrill, a packet the stack sent that no `>` line accounts for, up to the
//!   last event, fails the run.
//! - Blocking calls (fd without O_NONBLOCK) that would block are completed when the backend can complete them,
//!   and their return time is checked against `t1...t2`.

mod exec;
pub mod shell;
pub mod trace;

pub use exec::{run, RunOptions};
pub use trace::{Trace, TraceEntry};

use crate::script::ScriptError;

/// How a run ended.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Everything matched.
    Pass,
    /// The first mismatch.
    Fail(Box<Failure>),
    /// The script needs what the backend lacks.
    Skipped(String),
}

/// A failed expectation, in packetdrill's shape plus a located diagnostic.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The script line it is about.
    pub line: usize,
    /// `file:line: error handling packet: live packet field tcp_ack_seq: expected: 1 (0x1) vs actual: 0 (0x0)`.
    pub headline: String,
    /// Further lines: `script packet:  ...`, `actual packet:  ...`.
    pub details: Vec<String>,
    /// The same, located in the script with a caret.
    pub diagnostic: ScriptError,
}

impl Failure {
    /// The packetdrill-shaped text: headline and details.
    pub fn text(&self) -> String {
        let mut s = self.headline.clone();
        for d in &self.details {
            s.push('\n');
            s.push_str(d);
        }
        s
    }
}

/// A run's result.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Pass, fail or skip.
    pub verdict: Verdict,
    /// What happened, in order.
    pub trace: Trace,
    /// Script time covered (the last event's time), microseconds.
    pub script_micros: i64,
    /// The (state, stimulus) pairs the stack handled, where the backend can tell (the reference stack).
    pub exercised: Vec<(tcpdrill_stack::TcpState, tcpdrill_stack::coverage::Stimulus)>,
    /// What a backend without a shell left out of the script's commands, each with why (`ip tcp_metrics flush`,
    /// a shared defaults file's sysctl for a feature the stack does not model).
    pub ignored: Vec<String>,
}
