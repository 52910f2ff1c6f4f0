//! Running scripts from files: finding them, reading them, making the backend a script runs on (in a network
//! namespace of its own where the registry says so) and running many at once.

use crate::backend::linux;
use crate::backend::{Backend, BackendInfo, IpVersion};
use crate::run::{self, Outcome, RunOptions, Verdict};
use crate::script::{self, ParseOptions};
use std::path::{Path, PathBuf};

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

/// A script's text. Bytes that are not UTF-8 (a Latin-1 comment, say) read as U+FFFD, as packetdrill reads
/// such files as bytes: a script fails on them only where they matter, with a located error.
pub fn read_script(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    Ok(match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// Which implementation a script runs against: a handle on an entry of the backend registry
/// ([`crate::backend::REGISTRY`]), compared and ordered by name.
#[derive(Debug, Clone, Copy)]
pub struct BackendKind(&'static BackendInfo);

// The two backends tests and the CLI name most, as constants in the case of the variants they were.
#[allow(non_upper_case_globals)]
impl BackendKind {
    /// tcpdrill's reference stack on a virtual clock.
    pub const Reference: BackendKind = BackendKind(&crate::backend::reference::INFO);
    /// The Linux kernel through a TUN device in a network namespace of the script's own.
    pub const Linux: BackendKind = BackendKind(&crate::backend::linux::INFO);
    /// Any stack on a link, through raw frames and an agent on its host ([`crate::backend::raw::configure`]).
    pub const Raw: BackendKind = BackendKind(&crate::backend::raw::INFO);
}

impl PartialEq for BackendKind {
    fn eq(&self, other: &BackendKind) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for BackendKind {}

impl PartialOrd for BackendKind {
    fn partial_cmp(&self, other: &BackendKind) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for BackendKind {
    fn cmp(&self, other: &BackendKind) -> std::cmp::Ordering {
        self.0.name.cmp(other.0.name)
    }
}

impl BackendKind {
    /// The backend named `name` in the registry.
    pub fn by_name(name: &str) -> Option<BackendKind> {
        crate::backend::lookup(name).map(BackendKind)
    }

    /// A backend described by `info` whether or not the registry lists it: a test's wrapper of another, as the
    /// differential fuzzer's planted divergence is.
    pub fn of(info: &'static BackendInfo) -> BackendKind {
        BackendKind(info)
    }

    /// Every backend in the registry.
    pub fn all() -> impl Iterator<Item = BackendKind> {
        crate::backend::REGISTRY.iter().map(|b| BackendKind(b))
    }

    /// The name scripts' `#ifdef`s and the CLI use.
    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// What the registry says of it.
    pub fn info(self) -> &'static BackendInfo {
        self.0
    }

    fn make(self, sysctls: &[(String, String)], ip: IpVersion) -> Result<Box<dyn Backend>, String> {
        let mut b = (self.0.make)(ip)?;
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
    /// How long it took, parse included (wall time).
    pub wall: std::time::Duration,
}

impl ScriptResult {
    /// `ok`, `FAIL` or `skipped (reason)`.
    pub fn status(&self) -> String {
        match &self.outcome {
            Err(_) => "FAIL".into(),
            Ok(o) => match &o.verdict {
                Verdict::Pass if o.ignored.is_empty() => "ok".into(),
                Verdict::Pass => format!("ok ({} ignored: -v lists them)", plural(o.ignored.len(), "setting")),
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

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
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
    let text = match read_script(path) {
        Ok(t) => t,
        Err(e) => {
            return ScriptResult {
                path: path.into(),
                outcome: Err(format!("{name}: {e}")),
                wall: std::time::Duration::ZERO,
            }
        }
    };
    // A backend with one link and one agent runs one script at a time, whatever the number of workers.
    static EXCLUSIVE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = (backend.info().exclusive)().then(|| EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner()));
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
    let started = std::time::Instant::now();
    let mut opts = opts.clone();
    if opts.script_dir.is_none() {
        opts.script_dir =
            path.parent().map(|d| if d.as_os_str().is_empty() { Path::new(".").into() } else { d.into() });
    }
    let opts = &opts;
    let mut popts = defines.clone();
    for s in crate::backend::predefined(backend.name()) {
        popts.defines.entry(s.to_string()).or_default();
    }
    let parsed = script::check(name, text, &popts)
        .map_err(|errs| errs.iter().map(|e| e.render_plain()).collect::<Vec<_>>().join("\n"));
    let ip = match &parsed {
        Ok(s) => {
            let own = || s.options.iter().map(|o| (o.name.as_str(), o.value.as_deref()));
            match (opts.variant, IpVersion::of_script(own())) {
                (Some(v), Ok(mine)) if own().any(|(n, _)| n == "ip_version") && mine != v => {
                    let skip = Outcome {
                        verdict: Verdict::Skipped(format!(
                            "runs in {} only: its header sets --ip_version={}",
                            mine.name(),
                            mine.name()
                        )),
                        trace: Default::default(),
                        script_micros: 0,
                        exercised: Vec::new(),
                        ignored: Vec::new(),
                    };
                    return ScriptResult { path: path.into(), outcome: Ok(skip), wall: started.elapsed() };
                }
                _ => IpVersion::of_script(
                    opts.header_options(&s.options).iter().map(|(n, v)| (n.as_str(), v.as_deref())),
                ),
            }
        }
        Err(_) => Ok(IpVersion::V4),
    };
    let outcome = match (parsed, ip) {
        (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        (Ok(s), Ok(ip)) if backend.info().netns => {
            // A thread of its own, moved into a fresh network namespace: the script's sockets, TUN device and
            // sysctls live there and vanish with it.
            let (name, text, opts, sysctls) = (name.to_string(), text.to_string(), opts.clone(), sysctls.to_vec());
            std::thread::spawn(move || {
                if let Err(why) = linux::unshare_netns() {
                    return Ok(Outcome {
                        verdict: Verdict::Skipped(why),
                        trace: Default::default(),
                        script_micros: 0,
                        exercised: Vec::new(),
                        ignored: Vec::new(),
                    });
                }
                let mut b = backend.make(&sysctls, ip)?;
                Ok(run::run(&name, &text, &s, b.as_mut(), opts))
            })
            .join()
            .unwrap_or_else(|_| Err(format!("the {} backend's thread panicked", backend.name())))
        }
        (Ok(_), Ok(ip)) if (backend.info().runs)(ip).is_err() => Ok(Outcome {
            verdict: Verdict::Skipped((backend.info().runs)(ip).unwrap_err()),
            trace: Default::default(),
            script_micros: 0,
            exercised: Vec::new(),
            ignored: Vec::new(),
        }),
        (Ok(s), Ok(ip)) => match backend.make(sysctls, ip) {
            Ok(mut b) => Ok(run::run(name, text, &s, b.as_mut(), opts.clone())),
            Err(e) => Err(e),
        },
    };
    ScriptResult { path: path.into(), outcome, wall: started.elapsed() }
}

/// One script on one backend, for [`run_parallel`].
#[derive(Debug, Clone)]
pub struct Job {
    /// The script file.
    pub path: PathBuf,
    /// The name shown for it.
    pub name: String,
    /// Where it runs.
    pub backend: BackendKind,
    /// The IP version it runs in when chosen for the run (`--ip-version`), as run_all.py's flags for it: a
    /// script whose own header sets another is skipped with that reason. `None`: whatever the script says.
    pub variant: Option<IpVersion>,
}

/// Runs `jobs` on up to `workers` threads at once (each linux job in a namespace of its own) and hands every
/// result to `done` in job order, each as soon as it and all before it have finished, so output reads as if the
/// run were sequential.
pub fn run_parallel(
    jobs: &[Job],
    workers: usize,
    defines: &ParseOptions,
    opts: &RunOptions,
    sysctls: &[(String, String)],
    done: impl FnMut(usize, ScriptResult),
) {
    run_parallel_watched(jobs, workers, defines, opts, sysctls, |_, _| {}, done)
}

/// As [`run_parallel`], also telling `finished` of each job as it finishes, in whatever order (for progress:
/// `done` waits for the jobs before, one of which may take minutes).
pub fn run_parallel_watched(
    jobs: &[Job],
    workers: usize,
    defines: &ParseOptions,
    opts: &RunOptions,
    sysctls: &[(String, String)],
    mut finished: impl FnMut(usize, &ScriptResult),
    mut done: impl FnMut(usize, ScriptResult),
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, jobs.len().max(1)) {
            let (tx, next) = (tx.clone(), &next);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(j) = jobs.get(i) else { break };
                let r = match j.variant {
                    None => run_file_with(&j.path, &j.name, j.backend, defines, opts, sysctls),
                    Some(v) => {
                        let mut o = opts.clone();
                        o.variant = Some(v);
                        run_file_with(&j.path, &j.name, j.backend, defines, &o, sysctls)
                    }
                };
                if tx.send((i, r)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut held = std::collections::BTreeMap::new();
        let mut want = 0;
        for (i, r) in rx {
            finished(i, &r);
            held.insert(i, r);
            while let Some(r) = held.remove(&want) {
                done(want, r);
                want += 1;
            }
        }
    });
}
