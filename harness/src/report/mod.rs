//! Running scripts from files and presenting the results: the per-script line, the failure text, the summary.

use crate::backend::reference::Reference;
use crate::backend::Backend;
use crate::run::{self, Outcome, RunOptions, Verdict};
use crate::script::{self, ParseOptions};
use std::path::{Path, PathBuf};
use tcpdrill_stack::Config;

/// Every `.pkt` file under `paths` (files as given, folders recursively), sorted.
pub fn collect_scripts(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out).map_err(|e| format!("{}: {e}", p.display()))?;
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            return Err(format!("{}: no such file or folder", p.display()));
        }
    }
    out.sort();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "pkt") {
            out.push(p);
        }
    }
    Ok(())
}

/// Which implementation a script runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// tcpdrill's reference stack on a virtual clock.
    Reference,
}

impl BackendKind {
    /// The name scripts' `#ifdef`s and the CLI use.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Reference => "reference",
        }
    }

    fn make(self) -> Box<dyn Backend> {
        match self {
            BackendKind::Reference => Box::new(Reference::new(Config::default())),
        }
    }
}

/// A script file's result: the outcome, or the parse error text.
pub struct ScriptResult {
    /// The file.
    pub path: PathBuf,
    /// The run, if the script parsed.
    pub outcome: Result<Outcome, String>,
}

impl ScriptResult {
    /// `ok`, `FAIL` or `skipped (reason)`.
    pub fn status(&self) -> String {
        match &self.outcome {
            Err(_) => "FAIL".into(),
            Ok(o) => match &o.verdict {
                Verdict::Pass => "ok".into(),
                Verdict::Fail(_) => "FAIL".into(),
                Verdict::Skipped(r) => format!("skipped ({r})"),
            },
        }
    }

    /// Whether it failed.
    pub fn failed(&self) -> bool {
        matches!(&self.outcome, Err(_) | Ok(Outcome { verdict: Verdict::Fail(_), .. }))
    }

    /// Whether it was skipped.
    pub fn skipped(&self) -> bool {
        matches!(&self.outcome, Ok(Outcome { verdict: Verdict::Skipped(_), .. }))
    }
}

/// Parses and runs one script file on `backend`.
pub fn run_file(
    path: &Path,
    name: &str,
    backend: BackendKind,
    defines: &ParseOptions,
    opts: &RunOptions,
) -> ScriptResult {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return ScriptResult { path: path.into(), outcome: Err(format!("{name}: cannot read: {e}")) },
    };
    run_text(path, name, &text, backend, defines, opts)
}

/// Parses and runs a script's text.
pub fn run_text(
    path: &Path,
    name: &str,
    text: &str,
    backend: BackendKind,
    defines: &ParseOptions,
    opts: &RunOptions,
) -> ScriptResult {
    let mut popts = defines.clone();
    for s in script::predefined(backend.name()) {
        popts.defines.entry(s.to_string()).or_default();
    }
    let outcome = match script::check(name, text, &popts) {
        Err(errs) => Err(errs.iter().map(|e| e.render_plain()).collect::<Vec<_>>().join("\n")),
        Ok(s) => {
            let mut b = backend.make();
            Ok(run::run(name, text, &s, b.as_mut(), opts.clone()))
        }
    };
    ScriptResult { path: path.into(), outcome }
}

/// The text shown for a failed script: packetdrill's lines, then the located diagnostic.
pub fn failure_text(r: &ScriptResult) -> Option<String> {
    match &r.outcome {
        Err(parse) => Some(parse.clone()),
        Ok(Outcome { verdict: Verdict::Fail(f), .. }) => Some(format!("{}\n{}", f.text(), f.diagnostic.render_plain())),
        _ => None,
    }
}
