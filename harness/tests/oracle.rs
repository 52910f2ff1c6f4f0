//! packetdrill as the oracle of what a script means. Each `tests/oracle/*.pkt` is a small script of ours whose
//! first line records upstream packetdrill's verdict on this kernel (`// oracle: pass` or `// oracle: fail`),
//! cases that must fail included; a failing one's second line, `// oracle-reason: WORDS`, what both tools' failure
//! text says (`A | B` where packetdrill says A and tcpdrill B), so that a failure for another reason is caught.
//! Three cases per script:
//! - `packetdrill::NAME` runs upstream packetdrill on it (built from `../shared/packetdrill-src`: `.ci/run` does
//!   it, or point `PACKETDRILL` at a binary), in a network namespace of its own, and checks the recorded verdict;
//! - `linux::NAME` runs tcpdrill's linux backend on it: the verdict must be packetdrill's;
//! - `reference::NAME` runs the reference backend, where the script does not depend on how Linux cuts data
//!   (`// oracle-reference: no` with the reason opts a script out).
//!
//! Without root the first two are ignored with the reason printed; without a packetdrill binary the first is.
//! tcpdrill's deliberate differences from packetdrill (README, "Where tcpdrill differs from packetdrill") are
//! kept out of this table.

use libtest_mimic::{Arguments, Failed, Trial};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tcpdrill::report::{self, BackendKind};
use tcpdrill::run::{RunOptions, Verdict};
use tcpdrill::script::ParseOptions;

fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle")
}

/// The upstream binary: `$PACKETDRILL`, or where `.ci/run` builds it.
fn packetdrill() -> Result<PathBuf, String> {
    let p = match std::env::var_os("PACKETDRILL") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/packetdrill/packetdrill"),
    };
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "no packetdrill binary at {} (build it as .ci/run does, from ../shared/packetdrill-src, or set PACKETDRILL)",
            p.display()
        ))
    }
}

/// The recorded verdict (true for pass) and, for a failure, what packetdrill's and tcpdrill's texts say.
fn recorded(path: &Path) -> Result<(bool, Option<(String, String)>), Failed> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut lines = text.lines();
    let pass = match lines.next() {
        Some("// oracle: pass") => true,
        Some("// oracle: fail") => false,
        other => {
            let p = path.display();
            return Err(
                format!("{p}: the first line must be `// oracle: pass` or `// oracle: fail`, not {other:?}").into()
            );
        }
    };
    let reason = lines.next().and_then(|l| l.strip_prefix("// oracle-reason: ")).map(|r| match r.split_once(" | ") {
        Some((a, b)) => (a.to_string(), b.to_string()),
        None => (r.to_string(), r.to_string()),
    });
    if !pass && reason.is_none() {
        return Err(
            format!("{}: a failing case needs `// oracle-reason: ...` on its second line", path.display()).into()
        );
    }
    Ok((pass, reason))
}

fn word(pass: bool) -> &'static str {
    if pass {
        "pass"
    } else {
        "fail"
    }
}

/// packetdrill's verdict, run the way its run_all.py runs a script (IPv4 variant), in a namespace of its own.
fn run_packetdrill(bin: &Path, path: &Path) -> Result<(bool, String), Failed> {
    let name = path.file_name().expect("a file").to_string_lossy().to_string();
    let script = format!(
        "ip link set lo up && cd {} && exec timeout 60 {} --send_omit_free --ip_version=ipv4 --local_ip=192.168.0.1 \
         --gateway_ip=192.168.0.1 --netmask_ip=255.255.0.0 --remote_ip=192.0.2.1 {name}",
        folder().display(),
        bin.display()
    );
    let out = Command::new("unshare").args(["-n", "bash", "-c", &script]).output().map_err(|e| e.to_string())?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), text))
}

fn run_tcpdrill(path: &Path, backend: BackendKind) -> Result<(bool, String), Failed> {
    let name = format!("tests/oracle/{}", path.file_name().expect("a file").to_string_lossy());
    let opts = RunOptions { timeout: Duration::from_secs(60), ..RunOptions::default() };
    let r = report::run_file(path, &name, backend, &ParseOptions::default(), &opts);
    Ok(match r.outcome {
        Err(parse) => (false, parse),
        Ok(o) => match o.verdict {
            Verdict::Pass => (true, String::new()),
            Verdict::Fail(f) => (false, f.text()),
            Verdict::Skipped(reason) => return Err(format!("skipped: {reason}").into()),
        },
    })
}

/// Whose output is checked: packetdrill's own, or tcpdrill's.
#[derive(Clone, Copy, PartialEq)]
enum Tool {
    Packetdrill,
    Tcpdrill,
}

fn check(path: &Path, got: (bool, String), who: &str, tool: Tool) -> Result<(), Failed> {
    let (want, reason) = recorded(path)?;
    if got.0 != want {
        return Err(
            format!("packetdrill's verdict is {} but {who} says {}:\n{}", word(want), word(got.0), got.1).into()
        );
    }
    if let Some((theirs, ours)) = reason {
        let words = if tool == Tool::Packetdrill { theirs } else { ours };
        if !got.1.contains(&words) {
            return Err(format!("{who} fails, but not for the recorded reason ({words:?}):\n{}", got.1).into());
        }
    }
    Ok(())
}

/// A real-time run checked up to three times when it misses only on time: packetdrill itself (and so tcpdrill's
/// linux backend) fails a script whose event runs 4 ms late, which a busy two-CPU machine does now and then (seen
/// once in some hundred runs). Any other disagreement fails at once.
fn real_time(mut attempt: impl FnMut() -> Result<(), Failed>) -> Result<(), Failed> {
    let mut tries = 1;
    loop {
        match attempt() {
            Err(f) if tries < 3 && format!("{f:?}").contains("timing error") => tries += 1,
            Err(f) if tries > 1 => return Err(format!("after {tries} runs: {f:?}").into()),
            other => return other,
        }
    }
}

fn main() {
    let mut args = Arguments::from_args();
    if args.test_threads.is_none() {
        // One at a time: packetdrill checks that every event runs on time (4 ms at least), and on two CPUs
        // shared with other real-time runs it measurably ran 20 ms late.
        args.test_threads = Some(1);
    }
    let root = tcpdrill::backend::linux::available();
    if let Err(why) = &root {
        eprintln!("packetdrill::* and linux::* cases ignored: {why}");
    }
    let bin = packetdrill();
    if let Err(why) = &bin {
        eprintln!("packetdrill::* cases ignored: {why}");
    }
    let scripts = report::collect_scripts(&[folder()]).expect("tests/oracle is readable");
    let mut trials = Vec::new();
    for path in scripts {
        let name = path.file_stem().expect("a file").to_string_lossy().to_string();
        let (p, b) = (path.clone(), bin.clone());
        trials.push(
            Trial::test(format!("packetdrill::{name}"), move || {
                let bin = b.map_err(Failed::from)?;
                real_time(|| check(&p, run_packetdrill(&bin, &p)?, "packetdrill on this machine", Tool::Packetdrill))
            })
            .with_ignored_flag(root.is_err() || bin.is_err()),
        );
        let p = path.clone();
        trials.push(
            Trial::test(format!("linux::{name}"), move || {
                real_time(|| {
                    check(&p, run_tcpdrill(&p, BackendKind::Linux)?, "tcpdrill's linux backend", Tool::Tcpdrill)
                })
            })
            .with_ignored_flag(root.is_err()),
        );
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if !text.contains("// oracle-reference: no") {
            let p = path.clone();
            trials.push(Trial::test(format!("reference::{name}"), move || {
                check(&p, run_tcpdrill(&p, BackendKind::Reference)?, "tcpdrill's reference backend", Tool::Tcpdrill)
            }));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
