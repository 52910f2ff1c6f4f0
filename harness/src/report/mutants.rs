//! `scripts/MUTANTS.md` from a cargo-mutants run: how many deliberately broken reference stacks the conformance
//! suite rejects, by file, and every one it lets pass, with the argument why (from `scripts/mutants-explained.md`)
//! or marked as wanting a script.
//!
//! The input is cargo-mutants' own `mutants.out/outcomes.json`; the explanations are a markdown table a person
//! edits, keyed by function (`Host::ephemeral_port`) or by one mutant (`stack/src/host.rs: replace > with >= in
//! Host::advance`, the name without its line and column, so it survives edits above it).

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;

/// What became of one mutant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fate {
    /// A script failed: the suite rejects this broken stack.
    Caught,
    /// A script ran past its time limit: the broken stack hangs, which fails the suite too.
    Timeout,
    /// Every script passed.
    Missed,
    /// It did not build: not a stack at all.
    Unviable,
}

/// One mutant of the stack and its fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutant {
    /// cargo-mutants' name: `stack/src/host.rs:397:16: replace > with == in Host::advance`.
    pub name: String,
    /// The file.
    pub file: String,
    /// The function it is in (`Host::advance`), if any.
    pub function: Option<String>,
    /// What happened.
    pub fate: Fate,
    /// cargo-mutants' log of its build and test, relative to the output folder.
    pub log_path: Option<String>,
    /// The scripts whose reference case failed on it, from that log (filled in by [`rejecting_scripts`]).
    pub rejected_by: Vec<String>,
}

impl Mutant {
    /// The name without `:line:col`, stable across edits elsewhere in the file.
    pub fn key(&self) -> String {
        match self.name.split_once(": ") {
            Some((place, what)) => format!("{}: {what}", place.split(':').next().unwrap_or(place)),
            None => self.name.clone(),
        }
    }
}

/// The mutants a run had to test, by name: its `mutants.json` (a run stopped early, or one shard, tests fewer
/// than that; an `--iterate` run lists only those it tried again).
pub fn found_names(mutants_json: &str) -> Result<Vec<String>, String> {
    let v: Value = serde_json::from_str(mutants_json).map_err(|e| format!("not cargo-mutants' mutants.json: {e}"))?;
    let list = v.as_array().ok_or("not a list of mutants")?;
    Ok(list.iter().map(|m| m.get("name").and_then(Value::as_str).unwrap_or_default().to_string()).collect())
}

/// The outcomes of several runs as one: shards add up, and a later run's verdict on a mutant (an `--iterate`
/// run after new scripts) replaces an earlier one's.
pub fn merge_runs(runs: Vec<Vec<Mutant>>) -> Vec<Mutant> {
    let mut out: Vec<Mutant> = Vec::new();
    let mut at: BTreeMap<String, usize> = BTreeMap::new();
    for m in runs.into_iter().flatten() {
        match at.get(&m.name) {
            Some(&i) => out[i] = m,
            None => {
                at.insert(m.name.clone(), out.len());
                out.push(m);
            }
        }
    }
    out
}

/// Reads cargo-mutants' `outcomes.json`; the baseline (if it ran) is left out.
pub fn read_outcomes(json: &str) -> Result<Vec<Mutant>, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("not cargo-mutants' outcomes.json: {e}"))?;
    read_outcomes_value(&v)
}

fn read_outcomes_value(v: &Value) -> Result<Vec<Mutant>, String> {
    let outcomes = v.get("outcomes").and_then(Value::as_array).ok_or("no \"outcomes\" array")?;
    let mut out = Vec::new();
    for o in outcomes {
        let Some(m) = o.pointer("/scenario/Mutant") else { continue };
        let fate = match o.get("summary").and_then(Value::as_str) {
            Some("CaughtMutant") => Fate::Caught,
            Some("MissedMutant") => Fate::Missed,
            Some("Timeout") => Fate::Timeout,
            Some("Unviable") => Fate::Unviable,
            other => return Err(format!("unknown outcome {other:?}")),
        };
        let s = |p: &str| m.pointer(p).and_then(Value::as_str).map(str::to_string);
        out.push(Mutant {
            name: s("/name").ok_or("a mutant without a name")?,
            file: s("/file").unwrap_or_default(),
            function: s("/function/function_name"),
            fate,
            log_path: o.get("log_path").and_then(Value::as_str).map(str::to_string),
            rejected_by: Vec::new(),
        });
    }
    Ok(out)
}

/// The scripts a mutant's log shows failing: the conformance harness's `test reference::NAME ... FAILED` lines.
pub fn rejecting_scripts(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("test reference::")?;
            let (name, verdict) = rest.split_once(" ... ")?;
            (verdict.trim() == "FAILED").then(|| name.trim().to_string())
        })
        .collect()
}

/// `scripts/mutants-kills.tsv`: for each script, how many mutants it rejects, how many of those no other script
/// rejects, and the mutant it is the most specific witness for (the one the fewest scripts reject). `tcpdrill
/// coverage` reads it to tell an asserted requirement from an exercised one.
pub fn kills_tsv(mutants: &[Mutant], source: &str) -> String {
    // Per script: (rejected, rejected by it alone, (how many scripts reject its most specific mutant, which)).
    type Tally<'a> = (usize, usize, Option<(usize, &'a str)>);
    let mut per: BTreeMap<&str, Tally<'_>> = BTreeMap::new();
    for m in mutants.iter().filter(|m| m.fate == Fate::Caught) {
        let n = m.rejected_by.len();
        for sc in &m.rejected_by {
            let e = per.entry(sc.as_str()).or_default();
            e.0 += 1;
            e.1 += usize::from(n == 1);
            let what = m.name.split_once(": ").map_or(m.name.as_str(), |(_, w)| w);
            if e.2.is_none_or(|(k, w)| (n, what) < (k, w)) {
                e.2 = Some((n, what));
            }
        }
    }
    let mut out = format!(
        "# Generated by `tcpdrill mutants-report --kills` ({source}). Do not edit by hand.\n\
         # script\trejected\trejected by it alone\tits most specific mutant (file: what)\n"
    );
    for (sc, (all, alone, ex)) in per {
        let ex = ex.map_or("", |(_, w)| w);
        let file = mutants.iter().find(|m| m.name.ends_with(ex)).map_or("", |m| m.file.as_str());
        let _ = writeln!(out, "{sc}\t{all}\t{alone}\t{file}: {ex}");
    }
    out
}

/// The explanations: `| key | why |` rows of a markdown table (the header and separator rows are skipped).
pub fn read_explanations(md: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in md.lines() {
        // Cells split at unescaped bars: a mutant's name may hold `\|\|`, written escaped as markdown wants.
        let mut cells: Vec<String> = vec![String::new()];
        let mut chars = line.trim().trim_start_matches('|').chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&'|') => {
                    cells.last_mut().expect("one cell").push(chars.next().expect("peeked"))
                }
                '|' => cells.push(String::new()),
                c => cells.last_mut().expect("one cell").push(c),
            }
        }
        let cells: Vec<&str> = cells.iter().map(|c| c.trim()).filter(|c| !c.is_empty()).collect();
        if cells.len() < 2 || cells[0].starts_with("---") || cells[0] == "where" {
            continue;
        }
        out.insert(cells[0].trim_matches('`').to_string(), cells[1..].join("|").trim().to_string());
    }
    out
}

/// The explanation that applies to `m`: one for the mutant itself, else one for its function.
pub fn explanation<'a>(m: &Mutant, explained: &'a BTreeMap<String, String>) -> Option<&'a str> {
    explained.get(&m.key()).or_else(|| m.function.as_ref().and_then(|f| explained.get(f))).map(String::as_str)
}

/// The report. `source` says where the run came from (commit and command), for the header; `total` is how many
/// mutants the run (all its shards) had to test, so that a partial run says so.
pub fn report(mutants: &[Mutant], total_found: usize, explained: &BTreeMap<String, String>, source: &str) -> String {
    let mut by_file: BTreeMap<&str, [usize; 4]> = BTreeMap::new();
    for m in mutants {
        by_file.entry(&m.file).or_default()[m.fate as usize] += 1;
    }
    let total = by_file.values().fold([0; 4], |a, c| [a[0] + c[0], a[1] + c[1], a[2] + c[2], a[3] + c[3]]);
    let survivors: Vec<&Mutant> = mutants.iter().filter(|m| m.fate == Fate::Missed).collect();
    let unexplained = survivors.iter().filter(|m| explanation(m, explained).is_none()).count();
    let pct = |c: [usize; 4]| {
        let viable = c[0] + c[1] + c[2];
        if viable == 0 {
            "-".to_string()
        } else {
            format!("{:.1}%", 100.0 * (c[0] + c[1]) as f64 / viable as f64)
        }
    };
    let mut s = String::new();
    let w = &mut s;
    writeln!(w, "# Mutation testing: the broken stacks the suite rejects\n").ok();
    writeln!(
        w,
        "Generated by `tcpdrill mutants-report` from cargo-mutants' `outcomes.json` ({source}); the explanations of \
         the survivors come from `scripts/mutants-explained.md`. Each mutant is the reference stack with one \
         deliberate change, judged only by the conformance suite on the reference backend (`.cargo/mutants.toml`). \
         Do not edit by hand.\n"
    )
    .ok();
    if total_found > mutants.len() {
        writeln!(
            w,
            "**A partial run: {} of the {total_found} mutants were tested.** The counts below are of those.\n",
            mutants.len()
        )
        .ok();
    }
    writeln!(
        w,
        "{} viable mutants, {} rejected by the suite (caught, or hung past the time limit): {}. {} survive: {} \
         argued equivalent or not observable below, {unexplained} waiting for a script.\n",
        total[0] + total[1] + total[2],
        total[0] + total[1],
        pct(total),
        survivors.len(),
        survivors.len() - unexplained,
    )
    .ok();
    writeln!(w, "| file | caught | hung | survived | unviable | rejected |\n|---|---|---|---|---|---|").ok();
    for (f, c) in &by_file {
        writeln!(w, "| `{f}` | {} | {} | {} | {} | {} |", c[0], c[1], c[2], c[3], pct(*c)).ok();
    }
    writeln!(w, "| all | {} | {} | {} | {} | {} |\n", total[0], total[1], total[2], total[3], pct(total)).ok();
    writeln!(w, "## Survivors\n").ok();
    if survivors.is_empty() {
        writeln!(w, "None.").ok();
    }
    let mut last_file = "";
    for m in survivors {
        if m.file != last_file {
            writeln!(w, "\n### `{}`\n", m.file).ok();
            last_file = &m.file;
        }
        let what = m.name.split_once(": ").map_or(m.name.as_str(), |(_, w)| w);
        match explanation(m, explained) {
            Some(why) => writeln!(w, "- `{what}`: {why}").ok(),
            None => writeln!(w, "- `{what}`: **no script rejects it yet**").ok(),
        };
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTCOMES: &str = r#"{"outcomes": [
        {"scenario": "Baseline", "summary": "Success"},
        {"scenario": {"Mutant": {"name": "stack/src/host.rs:397:16: replace > with == in Host::advance",
            "file": "stack/src/host.rs", "function": {"function_name": "Host::advance"}}}, "summary": "MissedMutant"},
        {"scenario": {"Mutant": {"name": "stack/src/host.rs:660:9: replace Host::ephemeral_port -> Result<u16, Errno> with Ok(0)",
            "file": "stack/src/host.rs", "function": {"function_name": "Host::ephemeral_port"}}}, "summary": "MissedMutant"},
        {"scenario": {"Mutant": {"name": "stack/src/isn.rs:67:9: replace IsnGenerator::isn -> u32 with 0",
            "file": "stack/src/isn.rs", "function": {"function_name": "IsnGenerator::isn"}}}, "summary": "CaughtMutant"},
        {"scenario": {"Mutant": {"name": "stack/src/isn.rs:70:1: replace + with - in IsnGenerator::isn",
            "file": "stack/src/isn.rs", "function": {"function_name": "IsnGenerator::isn"}}}, "summary": "Timeout"},
        {"scenario": {"Mutant": {"name": "stack/src/isn.rs:71:1: replace Tcb::x with ()",
            "file": "stack/src/isn.rs", "function": {"function_name": "Tcb::x"}}}, "summary": "Unviable"}
    ]}"#;

    #[test]
    fn outcomes_are_read_with_their_fate_and_the_baseline_is_left_out() {
        let m = read_outcomes(OUTCOMES).unwrap();
        let fates: Vec<Fate> = m.iter().map(|m| m.fate).collect();
        assert_eq!(fates, [Fate::Missed, Fate::Missed, Fate::Caught, Fate::Timeout, Fate::Unviable]);
        assert_eq!(m[0].key(), "stack/src/host.rs: replace > with == in Host::advance");
        assert!(read_outcomes("{}").is_err());
        assert_eq!(found_names(r#"[{"name": "a"}, {"name": "b"}]"#), Ok(vec!["a".to_string(), "b".to_string()]));
        // A later run's verdict replaces an earlier one's; shards add up.
        let mut again = m[0].clone();
        again.fate = Fate::Caught;
        let merged = merge_runs(vec![m.clone(), vec![again]]);
        assert_eq!((merged.len(), merged[0].fate), (m.len(), Fate::Caught));
        assert!(read_outcomes("not json").unwrap_err().contains("outcomes.json"));
    }

    #[test]
    fn kills_name_each_scripts_most_specific_mutant() {
        let log = "test reference::close/active-close ... ok\ntest reference::isn/clock ... FAILED\n\
                   test reference::isn/distinct   ... FAILED\ntest linux::isn/clock ... FAILED\n";
        assert_eq!(rejecting_scripts(log), ["isn/clock", "isn/distinct"]);
        let mut m = read_outcomes(OUTCOMES).unwrap();
        m[2].rejected_by = vec!["isn/clock".into(), "isn/distinct".into()];
        m[1].fate = Fate::Caught;
        m[1].rejected_by = vec!["isn/clock".into()];
        let t = kills_tsv(&m, "test");
        assert!(t.contains("\nisn/clock\t2\t1\tstack/src/host.rs: replace Host::ephemeral_port"), "{t}");
        assert!(t.contains("\nisn/distinct\t1\t0\tstack/src/isn.rs: replace IsnGenerator::isn -> u32 with 0"), "{t}");
    }

    #[test]
    fn explanations_match_a_mutant_or_its_function_and_the_rest_are_flagged() {
        let m = read_outcomes(OUTCOMES).unwrap();
        let ex = read_explanations(
            "| where | why |\n|---|---|\n| `Host::ephemeral_port` | RFC 6056: scripts wildcard the port |\n",
        );
        assert_eq!(explanation(&m[1], &ex), Some("RFC 6056: scripts wildcard the port"));
        assert_eq!(explanation(&m[0], &ex), None);
        let esc = read_explanations("| `stack/src/host.rs: replace \\|\\| with && in Host::listen` | bind() first |\n");
        assert_eq!(
            esc.get("stack/src/host.rs: replace || with && in Host::listen").map(String::as_str),
            Some("bind() first")
        );
        let r = report(&m, 5, &ex, "test");
        assert!(!r.contains("partial"), "{r}");
        assert!(report(&m, 9, &ex, "test").contains("A partial run: 5 of the 9 mutants were tested"));
        assert!(
            r.contains("4 viable mutants, 2 rejected by the suite (caught, or hung past the time limit): 50.0%"),
            "{r}"
        );
        assert!(r.contains("1 argued equivalent or not observable below, 1 waiting for a script"), "{r}");
        assert!(r.contains("| `stack/src/isn.rs` | 1 | 1 | 0 | 1 | 100.0% |"), "{r}");
        assert!(r.contains("- `replace > with == in Host::advance`: **no script rejects it yet**"), "{r}");
        assert!(r.contains("- `replace Host::ephemeral_port -> Result<u16, Errno> with Ok(0)`: RFC 6056"), "{r}");
    }
}
