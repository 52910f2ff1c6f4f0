//! What happened during a run, in order: packets both ways, calls with their results, TCP state changes.

use std::fmt;
use tcpdrill_stack::{FourTuple, TcpState};

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceEntry {
    /// A packet the harness injected, in script notation.
    Inbound {
        /// When (script microseconds).
        t: i64,
        /// `S 0:0(0) win 65535 <...>`.
        text: String,
        /// The datagram.
        bytes: Vec<u8>,
    },
    /// A packet the stack sent, in script notation (its numbers relative to its ISN).
    Outbound {
        /// When.
        t: i64,
        /// Notation.
        text: String,
        /// The datagram.
        bytes: Vec<u8>,
    },
    /// A call and what it returned.
    Call {
        /// When it returned.
        t: i64,
        /// `connect(3, ..., ...) = -1 ECONNREFUSED`.
        text: String,
    },
    /// A connection changed state.
    State {
        /// When.
        t: i64,
        /// Which connection.
        tuple: FourTuple,
        /// Old state.
        from: TcpState,
        /// New state.
        to: TcpState,
    },
    /// A sysctl or other setup step.
    Note {
        /// When.
        t: i64,
        /// What.
        text: String,
    },
}

impl TraceEntry {
    /// When it happened.
    pub fn time(&self) -> i64 {
        match self {
            TraceEntry::Inbound { t, .. }
            | TraceEntry::Outbound { t, .. }
            | TraceEntry::Call { t, .. }
            | TraceEntry::State { t, .. }
            | TraceEntry::Note { t, .. } => *t,
        }
    }
}

/// Seconds with six decimals, as packetdrill prints times.
pub fn secs(t: i64) -> String {
    let sign = if t < 0 { "-" } else { "" };
    let a = t.unsigned_abs();
    format!("{sign}{}.{:06}", a / 1_000_000, a % 1_000_000)
}

impl fmt::Display for TraceEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceEntry::Inbound { t, text, .. } => write!(f, "{} < {text}", secs(*t)),
            TraceEntry::Outbound { t, text, .. } => write!(f, "{} > {text}", secs(*t)),
            TraceEntry::Call { t, text } => write!(f, "{} {text}", secs(*t)),
            TraceEntry::State { t, tuple, from, to } => {
                // The peer as a socket address prints it: `[fd3d:fa7b:d17d::1]:40123` for IPv6.
                write!(f, "{} state {} {} -> {}", secs(*t), tuple.remote, from.linux_name(), to.linux_name())
            }
            TraceEntry::Note { t, text } => write!(f, "{} # {text}", secs(*t)),
        }
    }
}

/// A run's trace.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// The entries, in time order.
    pub entries: Vec<TraceEntry>,
    /// What the stack did at each script line that checked it (`>` packets, call results), keyed by line: lets
    /// `tcpdrill diff` show what one backend did where the other failed.
    pub lines: Vec<(usize, String)>,
}

impl Trace {
    /// What the stack did at script line `line`, if that line checked something.
    pub fn at_line(&self, line: usize) -> Option<&str> {
        self.lines.iter().find(|(l, _)| *l == line).map(|(_, s)| s.as_str())
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.entries {
            writeln!(f, "{e}")?;
        }
        Ok(())
    }
}
