//! The smoltcp report (`docs/smoltcp.md`): what the smoltcp backend does with each script of the suite and of the
//! sample of upstream scripts (the records `scripts/smoltcp-outcomes.tsv` and `scripts/smoltcp-corpus-outcomes.tsv`,
//! which the `smoltcp::` cases check), and why it fails where it fails (`scripts/smoltcp-triage.tsv`, written by
//! hand from RFC 9293 and smoltcp's code: every failure has its line there, and every line a failure).

use std::collections::BTreeMap;

/// What a failure is, as the triage file's second column names it.
const CLASSES: &[(&str, &str, &str)] = &[
    (
        "bug",
        "smoltcp bugs",
        "smoltcp breaks a rule of the RFCs for something it implements. Each has a write-up with a minimal \
         script, ready to send upstream, in [`docs/smoltcp-bugs/`](smoltcp-bugs/).",
    ),
    (
        "design",
        "smoltcp design choices",
        "What smoltcp documents it does not implement (its README's list, a comment in its code), or chose to do \
         otherwise.",
    ),
    (
        "choice",
        "The script asserts another stack's choice",
        "The script asserts what Linux (or FreeBSD) chose where the RFCs leave the choice to the implementation \
         (the layout of options, a window's scale, a timer's length, when to acknowledge), or where Linux departs \
         from them; smoltcp's choice is as good.",
    ),
    ("mapping", "Mapping limitations", "What the mapping of the BSD calls onto smoltcp's API cannot express."),
];

/// One record line: script, verdict, detail.
pub struct Outcome<'a> {
    pub name: &'a str,
    pub verdict: &'a str,
    pub detail: &'a str,
}

/// The record's lines, comments left out.
pub fn outcomes(text: &str) -> Vec<Outcome<'_>> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let mut f = l.splitn(3, '\t');
            Outcome { name: f.next().unwrap_or(""), verdict: f.next().unwrap_or(""), detail: f.next().unwrap_or("") }
        })
        .collect()
}

/// The triage file: script -> (class, reason).
pub fn triage(text: &str) -> Result<BTreeMap<&str, (&str, &str)>, String> {
    let mut m = BTreeMap::new();
    for (i, l) in text.lines().enumerate() {
        if l.starts_with('#') || l.trim().is_empty() {
            continue;
        }
        let mut f = l.splitn(3, '\t');
        let (Some(name), Some(class), Some(reason)) = (f.next(), f.next(), f.next()) else {
            return Err(format!("scripts/smoltcp-triage.tsv:{}: want name<TAB>class<TAB>reason", i + 1));
        };
        if !CLASSES.iter().any(|(c, _, _)| *c == class) {
            return Err(format!("scripts/smoltcp-triage.tsv:{}: unknown class {class:?}", i + 1));
        }
        if m.insert(name, (class, reason)).is_some() {
            return Err(format!("scripts/smoltcp-triage.tsv:{}: {name} triaged twice", i + 1));
        }
    }
    Ok(m)
}

/// `text` without its ` (line N)`s.
fn without_lines(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(" (line ") {
        let after = &rest[i + 7..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && after[digits..].starts_with(')') {
            out.push_str(&rest[..i]);
            rest = &after[digits + 1..];
        } else {
            out.push_str(&rest[..i + 7]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Markdown's table cells hold no pipes or newlines.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The report, or what is wrong with the triage (a failure without a reason, a reason without a failure).
/// `corpus` is `None` where the sample of upstream scripts is not here (its record is then left out).
pub fn report(suite: &str, corpus: Option<&str>, triage_text: &str) -> Result<String, String> {
    let triage = triage(triage_text)?;
    let suite = outcomes(suite);
    let corpus = corpus.map(outcomes).unwrap_or_default();
    let failures: Vec<&Outcome> =
        suite.iter().chain(&corpus).filter(|o| o.verdict != "pass" && o.verdict != "skipped").collect();
    let untriaged: Vec<&str> = failures.iter().filter(|o| !triage.contains_key(o.name)).map(|o| o.name).collect();
    if !untriaged.is_empty() {
        return Err(format!(
            "smoltcp fails {} without a line in scripts/smoltcp-triage.tsv saying why: {}",
            untriaged.len(),
            untriaged.join(", ")
        ));
    }
    let stale: Vec<&str> = triage
        .keys()
        .filter(|n| !failures.iter().any(|o| o.name == **n))
        .filter(|n| !corpus.is_empty() || suite.iter().any(|o| o.name == **n))
        .copied()
        .collect();
    if !stale.is_empty() {
        return Err(format!(
            "scripts/smoltcp-triage.tsv explains failures smoltcp no longer has: {}",
            stale.join(", ")
        ));
    }
    let mut out = String::from(
        "# smoltcp 0.14 on tcpdrill\n\n\
         Generated by `TCPDRILL_BLESS=1 cargo test -p tcpdrill --test conformance -- smoltcp` from what the smoltcp \
         backend does (`scripts/smoltcp-outcomes.tsv`, `scripts/smoltcp-corpus-outcomes.tsv`) and why it fails \
         where it fails (`scripts/smoltcp-triage.tsv`, written from RFC 9293 and smoltcp's code); the `smoltcp::` \
         cases of `cargo test` check all three. Do not edit.\n\n",
    );
    let count = |os: &[Outcome], v: &str| os.iter().filter(|o| o.verdict == v).count();
    out.push_str("| scripts | run | pass | fail | skipped |");
    for (c, _, _) in CLASSES {
        out.push_str(&format!(" fail: {c} |"));
    }
    out.push_str("\n|---|---:|---:|---:|---:|");
    out.push_str(&"---:|".repeat(CLASSES.len()));
    out.push('\n');
    let mut sets = vec![("the conformance suite (`scripts/`)", &suite)];
    if !corpus.is_empty() {
        sets.push(("the sample of upstream packetdrill scripts", &corpus));
    }
    for (what, os) in &sets {
        let fails: Vec<&&Outcome> = failures.iter().filter(|f| os.iter().any(|o| o.name == f.name)).collect();
        out.push_str(&format!(
            "| {what} | {} | {} | {} | {} |",
            os.len() - count(os, "skipped"),
            count(os, "pass"),
            fails.len(),
            count(os, "skipped")
        ));
        for (c, _, _) in CLASSES {
            out.push_str(&format!(" {} |", fails.iter().filter(|f| triage[f.name].0 == *c).count()));
        }
        out.push('\n');
    }
    if corpus.is_empty() {
        out.push_str("\n(The sample of upstream scripts, `../shared/packetdrill-corpus`, was not here.)\n");
    }
    for (what, os) in &sets {
        out.push_str(&format!("\n## Failures on {what}\n"));
        for (c, title, about) in CLASSES {
            let mine: Vec<&Outcome> =
                os.iter().filter(|o| failures.iter().any(|f| f.name == o.name) && triage[o.name].0 == *c).collect();
            if mine.is_empty() {
                continue;
            }
            out.push_str(&format!(
                "\n### {title} ({})\n\n{about}\n\n| script | where it failed | why |\n|---|---|---|\n",
                mine.len()
            ));
            for o in mine {
                out.push_str(&format!("| `{}` | {} | {} |\n", o.name, cell(o.detail), cell(triage[o.name].1)));
            }
        }
        let mut reasons: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for o in os.iter().filter(|o| o.verdict == "skipped") {
            // One reason for the scripts that differ only in the line they are stopped at.
            let reason = without_lines(o.detail);
            reasons.entry(reason).or_default().push(o.name);
        }
        out.push_str(&format!("\n## Skipped on {what}, by reason\n\n| reason | scripts |\n|---|---|\n"));
        for (reason, names) in &reasons {
            out.push_str(&format!(
                "| {} | {} |\n",
                cell(reason),
                names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(" ")
            ));
        }
        let passed: Vec<String> = os.iter().filter(|o| o.verdict == "pass").map(|o| format!("`{}`", o.name)).collect();
        out.push_str(&format!("\n## Passed on {what} ({})\n\n{}\n", passed.len(), passed.join(" ")));
    }
    Ok(out)
}
