//! Comparing two backends' runs of one script, for `tcpdrill diff`.

use super::ScriptResult;
use crate::run::{Outcome, Verdict};

/// How two backends' runs of one script compare, for `tcpdrill diff`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Divergence {
    /// Same verdict, and where both failed, at the same line for the same reason.
    None,
    /// The first line where they part: its number and text, and what each backend did there.
    At {
        /// Script line; 0 when a backend skipped the script.
        line: usize,
        /// The line's text.
        source: String,
        /// What the first backend did at that line.
        first: String,
        /// What the second did.
        second: String,
    },
}

fn what_happened(r: &ScriptResult, line: usize) -> String {
    match &r.outcome {
        Err(parse) => parse.lines().next().unwrap_or("does not parse").to_string(),
        Ok(o) => match &o.verdict {
            Verdict::Fail(f) if f.line == line || line == 0 => {
                let first = f.headline.lines().next().unwrap_or_default();
                let msg = first.splitn(3, ": ").nth(2).unwrap_or(first).to_string();
                match f.details.iter().find(|d| d.starts_with("actual packet")) {
                    Some(actual) => format!("{msg} ({})", actual.split_whitespace().collect::<Vec<_>>().join(" ")),
                    None => msg,
                }
            }
            Verdict::Skipped(why) => format!("skipped: {why}"),
            Verdict::Pass if line == 0 => "ok".to_string(),
            _ => o.trace.at_line(line).map_or("as the script says".to_string(), str::to_string),
        },
    }
}

/// Compares two runs of the same script (`text`): the first line at which one of them failed, with what each did
/// there.
pub fn divergence(text: &str, a: &ScriptResult, b: &ScriptResult) -> Divergence {
    let fail_line = |r: &ScriptResult| match &r.outcome {
        Ok(Outcome { verdict: Verdict::Fail(f), .. }) => Some(f.line),
        Err(_) => Some(1),
        _ => None,
    };
    // Two failures agree only for the same reason at the same line: the headline says both.
    let key = |r: &ScriptResult| match &r.outcome {
        Ok(Outcome { verdict: Verdict::Fail(f), .. }) => format!("FAIL {}", f.headline),
        Err(parse) => format!("FAIL {parse}"),
        _ => r.status(),
    };
    if key(a) == key(b) {
        return Divergence::None;
    }
    if a.skipped() || b.skipped() {
        // A skip is not a line of the script: the reason is the whole story.
        return Divergence::At {
            line: 0,
            source: String::new(),
            first: what_happened(a, 0),
            second: what_happened(b, 0),
        };
    }
    let line = match (fail_line(a), fail_line(b)) {
        (Some(x), Some(y)) => x.min(y),
        (Some(x), None) | (None, Some(x)) => x,
        (None, None) => 0,
    };
    Divergence::At {
        line,
        source: text.lines().nth(line.saturating_sub(1)).unwrap_or("").trim().to_string(),
        first: what_happened(a, line),
        second: what_happened(b, line),
    }
}
