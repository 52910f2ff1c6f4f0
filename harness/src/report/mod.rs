//! Running scripts from files and presenting the results: the per-script line, the failure text, the summary,
//! the ladder diagram and the pcap file.

pub mod diagram;
pub mod pcap;

use crate::backend::linux::{self, Linux};
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
    /// The Linux kernel through a TUN device in a network namespace of the script's own.
    Linux,
}

impl BackendKind {
    /// The name scripts' `#ifdef`s and the CLI use.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Reference => "reference",
            BackendKind::Linux => "linux",
        }
    }

    fn make(self, sysctls: &[(String, String)]) -> Result<Box<dyn Backend>, String> {
        let mut b: Box<dyn Backend> = match self {
            BackendKind::Reference => Box::new(Reference::new(Config::default())),
            BackendKind::Linux => Box::new(Linux::new()?),
        };
        for (k, v) in sysctls {
            b.set_knob(k, v).map_err(|e| format!("--sysctl {k}={v}: {e}"))?;
        }
        Ok(b)
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
    run_file_with(path, name, backend, defines, opts, &[])
}

/// As [`run_file`], with sysctls applied to the backend before the script starts (`tcpdrill run --sysctl`).
pub fn run_file_with(
    path: &Path,
    name: &str,
    backend: BackendKind,
    defines: &ParseOptions,
    opts: &RunOptions,
    sysctls: &[(String, String)],
) -> ScriptResult {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return ScriptResult { path: path.into(), outcome: Err(format!("{name}: cannot read: {e}")) },
    };
    run_text_with(path, name, &text, backend, defines, opts, sysctls)
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
    run_text_with(path, name, text, backend, defines, opts, &[])
}

/// As [`run_text`], with sysctls applied first.
pub fn run_text_with(
    path: &Path,
    name: &str,
    text: &str,
    backend: BackendKind,
    defines: &ParseOptions,
    opts: &RunOptions,
    sysctls: &[(String, String)],
) -> ScriptResult {
    let mut popts = defines.clone();
    for s in script::predefined(backend.name()) {
        popts.defines.entry(s.to_string()).or_default();
    }
    let outcome = match script::check(name, text, &popts) {
        Err(errs) => Err(errs.iter().map(|e| e.render_plain()).collect::<Vec<_>>().join("\n")),
        Ok(s) if backend == BackendKind::Linux => {
            // A thread of its own, moved into a fresh network namespace: the script's sockets, TUN device and
            // sysctls live there and vanish with it.
            let (name, text, opts, sysctls) = (name.to_string(), text.to_string(), opts.clone(), sysctls.to_vec());
            std::thread::spawn(move || {
                if let Err(why) = linux::unshare_netns() {
                    return Ok(Outcome { verdict: Verdict::Skipped(why), trace: Default::default(), script_micros: 0 });
                }
                let mut b = backend.make(&sysctls)?;
                Ok(run::run(&name, &text, &s, b.as_mut(), opts))
            })
            .join()
            .unwrap_or_else(|_| Err("the linux backend's thread panicked".to_string()))
        }
        Ok(s) => match backend.make(sysctls) {
            Ok(mut b) => Ok(run::run(name, text, &s, b.as_mut(), opts.clone())),
            Err(e) => Err(e),
        },
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
