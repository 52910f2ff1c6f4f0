//! `tcpdrill coverage`: which requirements the suite tests (from `// requirement: ID` tags in the scripts) with
//! each script's result on each backend, and the state x stimulus matrix the reference stack went through.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use tcpdrill_stack::coverage::Stimulus;
use tcpdrill_stack::TcpState;

/// The requirements the report lists: RFC 9293 Appendix B's connection-management rows, then rules of the RFCs
/// the reference stack implements. (id, source, summary).
pub const REQUIREMENTS: &[(&str, &str, &str)] = &[
    ("MUST-2", "RFC 9293 3.1", "Sender computes the checksum"),
    ("MUST-3", "RFC 9293 3.1", "Receiver checks the checksum"),
    ("MUST-4", "RFC 9293 3.1", "Support the mandatory option set (EOL, NOP, MSS)"),
    ("MUST-5", "RFC 9293 3.1", "Receive a TCP option in any segment"),
    ("MUST-6", "RFC 9293 3.1", "Ignore options not implemented"),
    ("MUST-7", "RFC 9293 3.1", "Cope with an illegal option length"),
    ("MUST-8", "RFC 9293 3.4.1", "Clock-driven ISN selection"),
    ("MUST-9", "RFC 9293 3.4.1", "ISN function not computable from outside"),
    ("MUST-10", "RFC 9293 3.5", "Support simultaneous open attempts"),
    ("MUST-11", "RFC 9293 3.5", "SYN-RECEIVED remembers whether it came from a passive or an active OPEN"),
    ("MUST-12", "RFC 9293 3.5.3", "Inform the application of an aborted connection"),
    ("MUST-13", "RFC 9293 3.6.1", "Stay in TIME-WAIT for 2 MSL"),
    ("MUST-14", "RFC 9293 3.7.1", "Send and receive the MSS option"),
    ("MUST-15", "RFC 9293 3.7.1", "Send MSS defaults to 536 (IPv4) / 1220 (IPv6) without the option"),
    ("MUST-16", "RFC 9293 3.7.1", "Effective send MSS is the smaller of send MSS and path limits"),
    ("MUST-17", "RFC 9293 3.7.4", "The application can turn Nagle's algorithm off"),
    ("MUST-18", "RFC 9293 3.8.1", "RTO by RFC 6298, with Karn's algorithm for the samples"),
    ("MUST-19", "RFC 9293 3.8.2", "Slow start, congestion avoidance and RTO backoff (RFC 5681, RFC 6298)"),
    ("MUST-20", "RFC 9293 3.8.3", "Close the connection after R2 retransmissions (negative advice at R1)"),
    ("MUST-21", "RFC 9293 3.8.3", "The application can set R2"),
    ("MUST-22", "RFC 9293 3.8.3", "The same mechanism for SYN retransmissions"),
    ("MUST-23", "RFC 9293 3.8.3", "R2 for a SYN at least 3 minutes"),
    ("MUST-24", "RFC 9293 3.8.4", "The application can turn keep-alives on"),
    ("MUST-25", "RFC 9293 3.8.4", "Keep-alives are off by default"),
    ("MUST-26", "RFC 9293 3.8.4", "Keep-alives only after an idle interval"),
    ("MUST-27", "RFC 9293 3.8.4", "The keep-alive interval is configurable"),
    ("MUST-28", "RFC 9293 3.8.4", "The keep-alive interval defaults to at least two hours"),
    ("MUST-29", "RFC 9293 3.8.4", "Keep-alives tolerate lost ACKs"),
    ("MUST-34", "RFC 9293 3.8.6", "Robust against a shrinking window"),
    ("MUST-35", "RFC 9293 3.8.6.1", "Zero-window probing uses the standard logic"),
    ("MUST-36", "RFC 9293 3.8.6.1", "Probe a zero window"),
    ("MUST-37", "RFC 9293 3.8.6.1", "Let a window stay zero indefinitely while probes are answered"),
    ("MUST-38", "RFC 9293 3.8.6.2.1", "Sender silly window syndrome avoidance"),
    ("MUST-39", "RFC 9293 3.8.6.2.2", "Receiver silly window syndrome avoidance"),
    ("MUST-40", "RFC 9293 3.8.6.3", "A delayed ACK comes within 0.5 s"),
    ("MUST-41", "RFC 9293 3.9.1.1", "A passive OPEN does not affect existing connections"),
    ("MUST-42", "RFC 9293 3.9.1.1", "LISTEN on a port used by a connection in SYN-SENT/SYN-RECEIVED"),
    ("MUST-43", "RFC 9293 3.9.1.1", "OPEN takes an optional local IP address"),
    ("MUST-44", "RFC 9293 3.9.1.1", "Ask IP for a source address before the first SYN"),
    ("MUST-45", "RFC 9293 3.9.1.1", "Otherwise use the connection's local address"),
    ("MUST-46", "RFC 9293 3.9.1.1", "Reject an OPEN to a broadcast or multicast address"),
    ("MUST-57", "RFC 9293 3.9.2.3", "Silently discard a SYN to a broadcast or multicast address"),
    ("MUST-63", "RFC 9293 3.9.2.3", "Ignore a SYN from an invalid source address"),
    ("MUST-59", "RFC 9293 3.10.7.4", "Process all queued segments before sending an ACK"),
    ("MUST-64", "RFC 9293 3.1", "Process options regardless of word alignment"),
    ("MUST-65", "RFC 9293 3.7.1", "No MSS option on non-SYN segments"),
    ("MUST-66", "RFC 9293 3.4", "Process RST and URG even with a zero window"),
    ("MUST-67", "RFC 9293 3.7.1", "MSS announced from MMS_R"),
    ("MUST-68", "RFC 9293 3.1", "Every option but EOL and NOP has a length"),
    ("MUST-69", "RFC 9293 3.1", "Pad the options with zeros"),
    ("SHLD-1", "RFC 9293 3.4.1", "ISN generator with a keyed pseudo-random function (RFC 6528)"),
    ("SHLD-2", "RFC 9293 3.5.3", "A RST may carry data"),
    ("SHLD-3", "RFC 9293 3.6", "Send a RST to show that data was lost on close"),
    ("SHLD-4", "RFC 9293 3.6.1", "Use timestamps to shorten TIME-WAIT (RFC 6191)"),
    ("SHLD-5", "RFC 9293 3.7.1", "Send the MSS option unless it is the default"),
    ("SHLD-7", "RFC 9293 3.7.4", "Nagle's algorithm"),
    ("SHLD-9", "RFC 9293 3.8.3", "Inform the application between R1 and R2"),
    ("SHLD-10", "RFC 9293 3.8.3", "R1 of at least 3 retransmissions"),
    ("SHLD-11", "RFC 9293 3.8.3", "R2 of at least 100 seconds"),
    ("SHLD-12", "RFC 9293 3.8.4", "Keep-alive segments carry no data"),
    ("SHLD-16", "RFC 9293 3.8.6", "Retransmit the old data inside a shrunk window"),
    ("SHLD-18", "RFC 9293 3.8.6.3", "Delay ACKs"),
    ("SHLD-19", "RFC 9293 3.8.6.3", "ACK at least every second full-sized segment"),
    ("SHLD-29", "RFC 9293 3.8.6.1", "First zero-window probe after one RTO"),
    ("SHLD-30", "RFC 9293 3.8.6.1", "Zero-window probes back off exponentially"),
    ("SHLD-31", "RFC 9293 3.10.7.4", "Queue out-of-order segments"),
    ("MAY-1", "RFC 9293 3.6", "Half-duplex close"),
    ("MAY-2", "RFC 9293 3.6.1", "Accept a SYN in TIME-WAIT for a new incarnation"),
    ("MAY-3", "RFC 9293 3.7.1", "Always send the MSS option"),
    ("MAY-5", "RFC 9293 3.8.4", "Keep-alives"),
    ("MAY-6", "RFC 9293 3.8.4", "Keep-alive with one garbage octet"),
    ("MAY-12", "RFC 9293 3.10.7.4", "RFC 5961 blind-attack protection"),
    ("RFC5961-3", "RFC 5961 3.2", "RST: reset at RCV.NXT, challenge ACK in window, drop outside"),
    ("RFC5961-4", "RFC 5961 4.2", "SYN in a synchronized state: challenge ACK"),
    ("RFC5961-5", "RFC 5961 5.2", "ACK outside [SND.UNA - MAX.SND.WND, SND.NXT]: drop with an ACK"),
    ("RFC5961-7", "RFC 5961 7", "Challenge ACKs are rate-limited"),
    ("RFC6191", "RFC 6191 2", "A SYN in TIME-WAIT opens a new incarnation if its timestamp or sequence is newer"),
    ("RFC1337", "RFC 1337 3", "TIME-WAIT assassination: a RST in TIME-WAIT (tcp_rfc1337)"),
    ("RFC7323-WS", "RFC 7323 2", "Window scale: both SYNs must offer it; SYN windows unscaled"),
    ("RFC7323-TS", "RFC 7323 3", "Timestamps: negotiated in the SYNs, TSecr echoes the last TSval"),
    ("RFC7323-PAWS", "RFC 7323 5", "PAWS: a segment with a TSval older than TS.Recent is dropped with an ACK"),
    ("RFC2018-4", "RFC 2018 4", "SACK blocks: the newest segment's first, then the most recently reported"),
    ("RFC5681-SS", "RFC 5681 3.1", "Slow start from the initial window; one segment after a timeout"),
    ("RFC5681-ACK", "RFC 5681 4.2", "An immediate ACK for out-of-order data, for filling a gap, for a duplicate"),
    ("RFC5681-FR", "RFC 5681 3.2", "Fast retransmit on the third duplicate ACK, then fast recovery"),
    ("RFC3042-LT", "RFC 3042 2", "Limited Transmit: a new segment on each of the first two duplicate ACKs"),
    ("RFC6675-LOSS", "RFC 6675 5", "SACK-based loss recovery: a hole with three segments SACKed above it is lost"),
    (
        "RFC8985-RACK",
        "RFC 8985 6",
        "RACK: a segment is lost a round trip plus a reordering window after a later one is delivered",
    ),
    ("RFC8985-TLP", "RFC 8985 7", "Tail loss probe: two round trips after new data, the last segment again"),
    ("RFC6298-RTO", "RFC 6298 2", "RTO from SRTT and RTTVAR, 1 s before a measurement"),
    ("RFC6298-BACKOFF", "RFC 6298 5.5", "The RTO doubles on each expiry"),
];

/// The `// requirement: ID` tags of a script, in order, each once.
pub fn tags(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.trim().strip_prefix("//").map(str::trim) {
            if let Some(ids) = rest.strip_prefix("requirement:") {
                for id in ids.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty()) {
                    // "MUST-10 (comment)": the id ends at the first parenthesis.
                    if id.starts_with('(') {
                        break;
                    }
                    if !out.iter().any(|o| o == id) {
                        out.push(id.to_string());
                    }
                }
            }
        }
    }
    out
}

/// Tags that name no requirement of [`REQUIREMENTS`] (a typo would otherwise silently cover nothing).
pub fn unknown_tags(text: &str) -> Vec<String> {
    tags(text).into_iter().filter(|t| !REQUIREMENTS.iter().any(|(id, _, _)| id == t)).collect()
}

/// One script as the requirements report sees it.
#[derive(Debug, Clone)]
pub struct ScriptStatus {
    /// `handshake/active-open`.
    pub name: String,
    /// Its requirement tags.
    pub tags: Vec<String>,
    /// Its result on each backend, in the registry's order: `pass`, `FAIL`, `skipped` or `not run`.
    pub results: Vec<(&'static str, String)>,
    /// Whether it records a Linux divergence (`#ifdef Linux`).
    pub linux_divergence: bool,
}

fn summary(results: &[&str]) -> String {
    let pass = results.iter().filter(|r| **r == "pass").count();
    if pass == results.len() {
        return format!("{pass}/{} pass", results.len());
    }
    let others: BTreeSet<&str> = results.iter().copied().filter(|r| *r != "pass").collect();
    format!("{pass}/{} pass ({})", results.len(), others.into_iter().collect::<Vec<_>>().join(", "))
}

impl ScriptStatus {
    /// A script's row data from its text (tags, whether it records a Linux divergence) and its result on each
    /// backend (`None`: not run).
    pub fn of(name: String, text: &str, results: &[(&'static str, Option<&str>)]) -> ScriptStatus {
        ScriptStatus {
            name,
            tags: tags(text),
            results: results.iter().map(|(b, r)| (*b, r.unwrap_or("not run").to_string())).collect(),
            linux_divergence: text.contains("#ifdef Linux"),
        }
    }
}

/// A script result as the report words it.
pub fn status_word(r: &super::ScriptResult) -> &'static str {
    if r.failed() {
        "FAIL"
    } else if r.skipped() {
        "skipped"
    } else {
        "pass"
    }
}

/// What shows a requirement asserted (a stack that violates it fails a script) rather than merely exercised, read
/// from files beside the scripts: the mutants each script rejects (`tcpdrill mutants-report --kills`), the
/// hand-made violations `tools/violations.py` saw caught, and the arguments for what no script can assert.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    /// Script name -> (mutants it rejects, how many of them no other script does, its most specific mutant).
    pub kills: BTreeMap<String, (usize, usize, String)>,
    /// Hand-made violations the suite caught: (what was broken, requirement ids, the scripts that failed).
    pub violations: Vec<(String, Vec<String>, Vec<String>)>,
    /// Requirement id -> why no script asserts it (not black-box testable, or Linux and the RFC part ways).
    pub argued: BTreeMap<String, String>,
}

impl Evidence {
    /// The mutants each script rejects, in `scripts/`.
    pub const KILLS: &'static str = "mutants-kills.tsv";
    /// The hand-made violations caught, in `scripts/`.
    pub const VIOLATIONS: &'static str = "violations-caught.tsv";
    /// The arguments, in `scripts/`.
    pub const ARGUED: &'static str = "requirements-argued.md";

    /// Reads the three files from the scripts folder `dir`; a missing one is empty evidence, an unreadable line an
    /// error naming the file and line.
    pub fn load(dir: &std::path::Path) -> Result<Evidence, String> {
        let read = |name: &str| match std::fs::read_to_string(dir.join(name)) {
            Ok(t) => Ok(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(format!("{}: {e}", dir.join(name).display())),
        };
        Evidence::parse(&read(Self::KILLS)?, &read(Self::VIOLATIONS)?, &read(Self::ARGUED)?)
    }

    /// [`Evidence::load`] on the files' texts.
    pub fn parse(kills: &str, violations: &str, argued: &str) -> Result<Evidence, String> {
        let rows = |text: &str| -> Vec<(usize, Vec<String>)> {
            text.lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
                .map(|(i, l)| (i + 1, l.split('\t').map(str::to_string).collect()))
                .collect()
        };
        let mut e = Evidence::default();
        for (line, f) in rows(kills) {
            let bad = || format!("{}:{line}: expected script, rejected, alone, mutant", Self::KILLS);
            let [sc, all, alone, ex] = &f[..] else { return Err(bad()) };
            let n = |v: &str| v.parse::<usize>().map_err(|_| bad());
            e.kills.insert(sc.clone(), (n(all)?, n(alone)?, ex.clone()));
        }
        for (line, f) in rows(violations) {
            let [what, reqs, scripts] = &f[..] else {
                return Err(format!("{}:{line}: expected violation, requirements, scripts", Self::VIOLATIONS));
            };
            let list = |v: &str| v.split([',', ' ']).filter(|x| !x.is_empty()).map(str::to_string).collect();
            e.violations.push((what.clone(), list(reqs), list(scripts)));
        }
        for line in argued.lines() {
            let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
            if cells.len() >= 2 && REQUIREMENTS.iter().any(|(id, _, _)| *id == cells[0]) {
                e.argued.insert(cells[0].to_string(), cells[1..].join("|").trim().to_string());
            }
        }
        Ok(e)
    }

    /// What asserts requirement `id`, tested by `scripts`: ("asserted" by a violation of it | "mutants" its
    /// scripts reject, which may break it or something else | "argued" | "exercised", the evidence).
    fn of(&self, id: &str, scripts: &[&ScriptStatus]) -> (&'static str, String) {
        if let Some((what, _, by)) = self.violations.iter().find(|(_, reqs, _)| reqs.iter().any(|r| r == id)) {
            return ("asserted", format!("violation \"{what}\" fails {}", by.join(", ")));
        }
        let best = scripts
            .iter()
            .filter_map(|s| self.kills.get(&s.name).map(|k| (s.name.as_str(), k)))
            .filter(|(_, k)| k.0 > 0)
            .max_by_key(|(name, k)| (k.1, k.0, std::cmp::Reverse(*name)));
        if let Some((name, (all, alone, ex))) = best {
            let alone = if *alone > 0 { format!(", {alone} by it alone") } else { String::new() };
            return ("mutants", format!("{name} rejects {all} mutants{alone}, e.g. `{ex}`"));
        }
        match self.argued.get(id) {
            Some(why) => ("argued", why.clone()),
            None => ("exercised", String::new()),
        }
    }
}

/// `scripts/REQUIREMENTS.md`: each requirement with the scripts that test it, whether a broken stack is shown to
/// fail them (asserted) or they only run through it (exercised), and their results on each backend.
pub fn requirements_markdown(scripts: &[ScriptStatus], evidence: &Evidence) -> String {
    let mut by_req: BTreeMap<&str, Vec<&ScriptStatus>> = BTreeMap::new();
    for s in scripts {
        for t in &s.tags {
            by_req.entry(t.as_str()).or_default().push(s);
        }
    }
    let covered = REQUIREMENTS.iter().filter(|(id, _, _)| by_req.contains_key(id)).count();
    let mut out = String::new();
    out.push_str("# Requirements covered by the conformance suite\n\n");
    out.push_str(
        "Generated by `tcpdrill coverage scripts/ --output scripts/REQUIREMENTS.md` from the `// requirement: ID` \
         tags in the scripts and\nthe scripts' results on each backend; `cargo test` checks that it is up to date. \
         Do not edit by hand.\n\n",
    );
    let judged: Vec<(&str, String)> = REQUIREMENTS
        .iter()
        .map(|(id, _, _)| {
            let (word, why) = evidence.of(id, by_req.get(id).map_or(&[][..], Vec::as_slice));
            match (word, by_req.contains_key(id)) {
                ("exercised", false) => ("uncovered", "not covered".to_string()),
                ("exercised", true) => (word, "exercised only".to_string()),
                (w, _) => (w, format!("{w}: {why}")),
            }
        })
        .collect();
    let count = |w: &str| judged.iter().filter(|(x, _)| *x == w).count();
    let _ = writeln!(
        out,
        "{covered} of {} requirements have at least one script. {} are asserted: a stack built to break them \
         (`python3 tools/violations.py`) fails their scripts; for {} more, their scripts reject mutants of the \
         stack (`scripts/MUTANTS.md`), which shows the scripts can fail but not that those mutants break the \
         requirement; {} are argued to be beyond a black-box test or not what Linux does; {} are only \
         exercised; {} have neither a script nor an argument.\n",
        REQUIREMENTS.len(),
        count("asserted"),
        count("mutants"),
        count("argued"),
        count("exercised"),
        count("uncovered"),
    );
    // A column per backend, as the scripts' results list them (every backend of the registry).
    let backends: Vec<&str> = scripts.first().map_or(Vec::new(), |s| s.results.iter().map(|(b, _)| *b).collect());
    let _ = writeln!(out, "| requirement | source | what | scripts | asserted by | {} |", backends.join(" | "));
    let _ = writeln!(out, "|---|---|---|---|---|{}", "---|".repeat(backends.len()));
    for ((id, src, what), (_, judged)) in REQUIREMENTS.iter().zip(&judged) {
        match by_req.get(id) {
            None => {
                let _ = writeln!(out, "| {id} | {src} | {what} | | {judged} |{}", " |".repeat(backends.len()));
            }
            Some(list) => {
                let names: Vec<String> = list
                    .iter()
                    .map(|s| {
                        let mark = if s.linux_divergence { " (Linux differs)" } else { "" };
                        format!("[{}]({}.pkt){mark}", s.name, s.name)
                    })
                    .collect();
                let columns: Vec<String> = (0..backends.len())
                    .map(|i| summary(&list.iter().map(|s| s.results[i].1.as_str()).collect::<Vec<_>>()))
                    .collect();
                let _ = writeln!(
                    out,
                    "| {id} | {src} | {what} | {} | {judged} | {} |",
                    names.join("<br>"),
                    columns.join(" | ")
                );
            }
        }
    }
    out
}

/// Whether RFC 9293 section 3.10 says what happens for this (state, stimulus): every segment kind in every state
/// (3.10.7), every user call in every state (3.10.1-3.10.6), the retransmission timeout where something can be
/// outstanding and TIME-WAIT's timeout in TIME-WAIT (3.10.8). The other timers are not part of 3.10.
pub fn rfc_defined(state: TcpState, s: Stimulus) -> bool {
    use tcpdrill_stack::coverage::TimerKind;
    match s {
        Stimulus::Segment(_) | Stimulus::Call(_) => true,
        Stimulus::Timeout(TimerKind::Retransmit) => {
            !matches!(state, TcpState::Closed | TcpState::Listen | TcpState::FinWait2 | TcpState::TimeWait)
        }
        Stimulus::Timeout(TimerKind::TimeWait) => state == TcpState::TimeWait,
        Stimulus::Timeout(_) => false,
    }
}

/// The transition matrix as a terminal table (`x` exercised, `.` defined by RFC 9293 3.10 but not exercised,
/// blank: outside 3.10) and as markdown, with the count of RFC-defined cells covered.
pub fn transitions_table(cells: &BTreeSet<(TcpState, Stimulus)>, markdown: bool) -> String {
    let cols: Vec<Stimulus> = Stimulus::all().collect();
    let mut out = String::new();
    let (mut defined, mut hit) = (0, 0);
    for st in TcpState::ALL {
        for c in &cols {
            if rfc_defined(st, *c) {
                defined += 1;
                hit += usize::from(cells.contains(&(st, *c)));
            }
        }
    }
    let extra = cells.iter().filter(|(st, c)| !rfc_defined(*st, *c)).count();
    if markdown {
        out.push_str("| state |");
        for c in &cols {
            let _ = write!(out, " {c} |");
        }
        out.push_str("\n|---|");
        out.push_str(&"---|".repeat(cols.len()));
        out.push('\n');
        for st in TcpState::ALL {
            let _ = write!(out, "| {} |", st.linux_name().trim_start_matches("TCP_"));
            for c in &cols {
                let mark = match (cells.contains(&(st, *c)), rfc_defined(st, *c)) {
                    (true, _) => "x",
                    (false, true) => ".",
                    (false, false) => " ",
                };
                let _ = write!(out, " {mark} |");
            }
            out.push('\n');
        }
    } else {
        let w = 12;
        let _ = write!(out, "{:w$}", "");
        for c in &cols {
            let _ = write!(out, " {:>4}", short(*c));
        }
        out.push('\n');
        for st in TcpState::ALL {
            let _ = write!(out, "{:w$}", st.linux_name().trim_start_matches("TCP_"));
            for c in &cols {
                let mark = match (cells.contains(&(st, *c)), rfc_defined(st, *c)) {
                    (true, _) => "x",
                    (false, true) => ".",
                    (false, false) => " ",
                };
                let _ = write!(out, " {mark:>4}");
            }
            out.push('\n');
        }
        out.push_str("\ncolumns: ");
        out.push_str(&cols.iter().map(|c| format!("{}={c}", short(*c))).collect::<Vec<_>>().join(" "));
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "\n{hit} of {defined} cells defined by RFC 9293 3.10 exercised (x; . not yet); {extra} further cells (other timers) exercised."
    );
    out
}

fn short(s: Stimulus) -> &'static str {
    use tcpdrill_stack::coverage::{CallKind as C, SegmentKind as K, TimerKind as T};
    match s {
        Stimulus::Segment(K::Syn) => "S",
        Stimulus::Segment(K::SynAck) => "S.",
        Stimulus::Segment(K::Ack) => ".",
        Stimulus::Segment(K::Data) => "D",
        Stimulus::Segment(K::Fin) => "F",
        Stimulus::Segment(K::FinAck) => "F.",
        Stimulus::Segment(K::Rst) => "R",
        Stimulus::Segment(K::RstAck) => "R.",
        Stimulus::Segment(K::Bare) => "-",
        Stimulus::Call(C::OpenActive) => "con",
        Stimulus::Call(C::OpenPassive) => "lis",
        Stimulus::Call(C::Send) => "snd",
        Stimulus::Call(C::Receive) => "rcv",
        Stimulus::Call(C::Close) => "cls",
        Stimulus::Call(C::Abort) => "abt",
        Stimulus::Timeout(T::Retransmit) => "rto",
        Stimulus::Timeout(T::DelayedAck) => "dack",
        Stimulus::Timeout(T::Persist) => "pers",
        Stimulus::Timeout(T::Keepalive) => "kali",
        Stimulus::Timeout(T::TimeWait) => "2msl",
        Stimulus::Timeout(T::FinWait2) => "fin2",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_read_from_requirement_comments_only() {
        let text = "// requirement: MUST-13\n// requirement: MAY-2, SHLD-4\n// not a requirement: MUST-1\n\
                    // requirement: MUST-10 (SYN-RECEIVED -> ESTABLISHED)\n0 socket(...) = 3 // requirement: MUST-99\n";
        assert_eq!(tags(text), vec!["MUST-13", "MAY-2", "SHLD-4", "MUST-10"]);
        assert_eq!(unknown_tags("// requirement: MUST-13 MUST-999\n"), vec!["MUST-999"]);
    }

    #[test]
    fn report_lists_uncovered_requirements_and_results_per_backend() {
        let s = ScriptStatus {
            name: "close/x".into(),
            tags: vec!["MUST-13".into()],
            results: vec![("reference", "pass".into()), ("linux", "FAIL".into())],
            linux_divergence: true,
        };
        let md = requirements_markdown(std::slice::from_ref(&s), &Evidence::default());
        assert!(md.contains("| MUST-13 | RFC 9293 3.6.1 | Stay in TIME-WAIT for 2 MSL | [close/x](close/x.pkt) (Linux differs) | exercised only | 1/1 pass | 0/1 pass (FAIL) |"), "{md}");
        assert!(md.contains("| MUST-2 | RFC 9293 3.1 | Sender computes the checksum | | not covered | | |"));
        assert!(
            md.contains(&format!("1 of {} requirements have at least one script. 0 are asserted", REQUIREMENTS.len()))
        );
        // Asserted by a mutant its script rejects, by a hand-made violation, or argued.
        let e = Evidence::parse(
            "# header\nclose/x\t7\t2\tstack/src/tcb/timers.rs: replace + with - in Tcb::enter_time_wait\n",
            "TIME-WAIT lasts 59 s\tMUST-13\tclose/x\nkeep-alives on\tMUST-25,MUST-26\ttimers/a timers/b\n",
            "| id | why |\n|---|---|\n| MUST-9 | not black-box testable |\n| MUST-999 | no such row |\n",
        )
        .unwrap();
        assert_eq!(e.violations[1].1, ["MUST-25", "MUST-26"]);
        assert_eq!(e.violations[1].2, ["timers/a", "timers/b"]);
        let md = requirements_markdown(std::slice::from_ref(&s), &e);
        assert!(md.contains("| asserted: violation \"TIME-WAIT lasts 59 s\" fails close/x |"), "{md}");
        assert!(md.contains("| MUST-9 | RFC 9293 3.4.1 | ISN function not computable from outside | | argued: not black-box testable |"), "{md}");
        assert!(md.contains("3 are asserted"), "{md}");
        // All but the four above (MUST-13, MUST-25, MUST-26 asserted, MUST-9 argued) have neither.
        let neither = format!("0 are only exercised; {} have neither", REQUIREMENTS.len() - 4);
        assert!(
            md.contains(&format!("1 are argued to be beyond a black-box test or not what Linux does; {neither}")),
            "{md}"
        );
        let only_kills = Evidence { violations: vec![], ..e.clone() };
        let md = requirements_markdown(&[s], &only_kills);
        assert!(md.contains("| mutants: close/x rejects 7 mutants, 2 by it alone, e.g. `stack/src/tcb/timers.rs: replace + with - in Tcb::enter_time_wait` |"), "{md}");
        assert!(md.contains("0 are asserted: a stack built to break them (`python3 tools/violations.py`) fails their scripts; for 1 more"), "{md}");
        assert!(Evidence::parse("close/x\tseven\t2\tm\n", "", "").unwrap_err().contains("mutants-kills.tsv:1:"));
        assert!(Evidence::parse("", "just one field\n", "").is_err());
    }

    #[test]
    fn matrix_marks_exercised_defined_and_undefined_cells() {
        use tcpdrill_stack::coverage::{SegmentKind, TimerKind};
        let mut cells = BTreeSet::new();
        cells.insert((TcpState::Listen, Stimulus::Segment(SegmentKind::Syn)));
        cells.insert((TcpState::Established, Stimulus::Timeout(TimerKind::Keepalive)));
        let md = transitions_table(&cells, true);
        let listen = md.lines().find(|l| l.starts_with("| LISTEN |")).unwrap();
        assert!(listen.starts_with("| LISTEN | x | . |"), "{listen}");
        // The keep-alive timer is outside RFC 9293 3.10: counted apart.
        assert!(md.contains("1 further cells"), "{md}");
        assert!(!rfc_defined(TcpState::Listen, Stimulus::Timeout(TimerKind::Retransmit)));
        assert!(rfc_defined(TcpState::TimeWait, Stimulus::Timeout(TimerKind::TimeWait)));
    }
}
