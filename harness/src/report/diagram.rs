//! The ladder (sequence) diagram of a run, the way textbooks draw the handshake: tcpdrill on the left, the stack
//! under test on the right, one arrow per segment, the stack's calls and state changes written on its side.

use crate::run::trace::{secs, Trace, TraceEntry};

/// Width of the arrow between the two columns.
const ARROW: usize = 64;

fn arrow(text: &str, rightwards: bool) -> String {
    let body = format!(" {text} ");
    let n = body.chars().count();
    // Long segments (many options) still get an arrow; they just make it longer.
    let pad = ARROW.saturating_sub(n + 2).max(4);
    let left = pad / 2;
    let right = pad - left;
    if rightwards {
        format!("{}{body}{}>", "-".repeat(left), "-".repeat(right))
    } else {
        format!("<{}{body}{}", "-".repeat(left), "-".repeat(right))
    }
}

/// Draws `trace`. `peer` and `stack` label the columns.
pub fn ladder(trace: &Trace, peer: &str, stack: &str) -> String {
    let mut out = String::new();
    let gutter = 10;
    let (left, right) = (format!("tcpdrill {peer}"), format!("stack {stack}"));
    out.push_str(&format!("{:gutter$}{left:<w$} {right}\n", "", w = ARROW - 1));
    out.push_str(&format!("{:gutter$}{:<w$} {}\n", "", "|", "|", w = ARROW - 1));
    for e in &trace.entries {
        let t = secs(e.time());
        let t = &t[..t.len().min(gutter - 1)];
        let line = match e {
            TraceEntry::Inbound { text, .. } => format!("{t:<gutter$}{} |", arrow(text, true)),
            TraceEntry::Outbound { text, .. } => format!("{t:<gutter$}{} |", arrow(text, false)),
            TraceEntry::Call { text, .. } => format!("{t:<gutter$}{:<w$} | {text}", "", w = ARROW - 1),
            TraceEntry::State { from, to, .. } => {
                format!("{t:<gutter$}{:<w$} | [{} -> {}]", "", from.rfc_name(), to.rfc_name(), w = ARROW - 1)
            }
            TraceEntry::Note { text, .. } => format!("{t:<gutter$}{:<w$} | # {text}", "", w = ARROW - 1),
        };
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tcpdrill_stack::{FourTuple, TcpState};

    #[test]
    fn draws_arrows_both_ways_and_states() {
        let tuple =
            FourTuple { local: "192.168.0.1:8080".parse().unwrap(), remote: "192.0.2.1:40123".parse().unwrap() };
        let trace = Trace {
            entries: vec![
                TraceEntry::Inbound { t: 0, text: "S 0:0(0) win 65535".into(), bytes: vec![] },
                TraceEntry::State { t: 0, tuple, from: TcpState::Listen, to: TcpState::SynReceived },
                TraceEntry::Outbound { t: 0, text: "S. 0:0(0) ack 1".into(), bytes: vec![] },
                TraceEntry::Call { t: 100_000, text: "accept(3, ..., ...) = 4".into() },
            ],
            lines: vec![],
        };
        let d = ladder(&trace, "192.0.2.1:40123", "192.168.0.1:8080");
        let lines: Vec<&str> = d.lines().collect();
        assert!(
            lines[2].starts_with("0.000000")
                && lines[2].contains("- S 0:0(0) win 65535 -")
                && lines[2].ends_with("> |")
        );
        assert!(lines[3].ends_with("| [LISTEN -> SYN-RECEIVED]"));
        assert!(lines[4].contains("<-") && lines[4].contains(" S. 0:0(0) ack 1 "));
        assert!(lines[5].starts_with("0.100000") && lines[5].ends_with("| accept(3, ..., ...) = 4"));
        // Arrows, calls and states all meet the stack's column.
        let col = lines[2].find(" |").unwrap();
        assert_eq!(lines[1].rfind(" |"), Some(col), "header bar");
        for l in &lines[2..] {
            assert_eq!(l.find(" |"), Some(col), "{l}");
        }
    }
}
