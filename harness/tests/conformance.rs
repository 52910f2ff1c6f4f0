//! The conformance suite as tests: every `scripts/**/*.pkt` is a test case of its own, named after its path
//! (`reference::handshake/active-open`), so `cargo test` lists each script and `cargo nextest run` can shard them.
//! A second case per script (`golden::...`) compares its trace on the reference backend with the insta snapshot
//! in `golden/` (`cargo insta review` accepts intended changes). A third (`linux::...`) runs the script against the
//! kernel in a network namespace of its own: for real where that is allowed (root, as in CI), otherwise ignored
//! with the reason printed.

use libtest_mimic::{Arguments, Failed, Trial};
use std::path::{Path, PathBuf};
use tcpdrill::report::{self, BackendKind};
use tcpdrill::run::{RunOptions, Verdict};
use tcpdrill::script::ParseOptions;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn name_of(path: &Path) -> String {
    let rel = path.strip_prefix(root().join("scripts")).unwrap_or(path);
    rel.with_extension("").to_string_lossy().replace('\\', "/")
}

fn run_reference(path: &Path) -> Result<report::ScriptResult, Failed> {
    let name = format!("scripts/{}.pkt", name_of(path));
    Ok(report::run_file(path, &name, BackendKind::Reference, &ParseOptions::default(), &RunOptions::default()))
}

fn run_linux(path: &Path) -> Result<(), Failed> {
    let name = format!("scripts/{}.pkt", name_of(path));
    let r = report::run_file(path, &name, BackendKind::Linux, &ParseOptions::default(), &RunOptions::default());
    match r.outcome {
        Err(e) => Err(e.into()),
        Ok(o) => match o.verdict {
            Verdict::Pass => Ok(()),
            Verdict::Fail(f) => Err(format!("{}\n{}", f.text(), f.diagnostic.render_plain()).into()),
            Verdict::Skipped(reason) => Err(format!("skipped on the linux backend: {reason}").into()),
        },
    }
}

fn main() {
    let args = Arguments::from_args();
    let linux = tcpdrill::backend::linux::available();
    if let Err(why) = &linux {
        eprintln!("linux::* cases ignored: {why}");
    }
    let scripts = report::collect_scripts(&[root().join("scripts")]).expect("scripts/ is readable");
    let mut trials = Vec::new();
    for path in scripts {
        let name = name_of(&path);
        let p = path.clone();
        trials.push(Trial::test(format!("reference::{name}"), move || {
            let r = run_reference(&p)?;
            match r.outcome {
                Err(parse) => Err(parse.into()),
                Ok(o) => match o.verdict {
                    Verdict::Pass => Ok(()),
                    Verdict::Fail(f) => Err(format!("{}\n{}", f.text(), f.diagnostic.render_plain()).into()),
                    Verdict::Skipped(reason) => Err(format!("skipped on the reference backend: {reason}").into()),
                },
            }
        }));
        let p = path.clone();
        trials.push(Trial::test(format!("linux::{name}"), move || run_linux(&p)).with_ignored_flag(linux.is_err()));
        let p = path.clone();
        let n = name.clone();
        trials.push(Trial::test(format!("golden::{name}"), move || {
            let r = run_reference(&p)?;
            let trace = match r.outcome {
                Ok(o) => o.trace.to_string(),
                Err(parse) => return Err(parse.into()),
            };
            let snapshot = n.replace('/', "__");
            let snap = snapshot.clone();
            let description = format!("trace of scripts/{n}.pkt on the reference backend");
            let result = std::panic::catch_unwind(move || {
                let mut settings = insta::Settings::clone_current();
                settings.set_snapshot_path(root().join("golden"));
                settings.set_prepend_module_to_snapshot(false);
                settings.set_omit_expression(true);
                settings.set_description(description);
                settings.bind(|| insta::assert_snapshot!(snap, trace));
            });
            result.map_err(|_| {
                Failed::from(format!(
                    "the trace of scripts/{n}.pkt differs from golden/{snapshot}.snap: review with cargo insta review"
                ))
            })
        }));
    }
    libtest_mimic::run(&args, trials).exit();
}
