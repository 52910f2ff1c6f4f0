//! The raw backend's per-script overhead next to the linux backend's, on the same scripts in the same run: a
//! script's wall time less its script time, the median over the suite's short scripts (script time under 5 s),
//! each backend as `tcpdrill run` makes it (linux: a namespace and TUN device per script; raw: an AF_PACKET
//! channel and an agent session per script, on one testbed made beforehand). Then criterion groups for one
//! script on each backend, and for making a testbed. Needs root (CAP_NET_ADMIN) and `ip`; without them, prints
//! why and measures nothing.
//!
//! `sudo cargo bench -p tcpdrill --bench raw`

use criterion::{criterion_group, criterion_main, Criterion};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tcpdrill::backend::testbed;
use tcpdrill::report::{collect_scripts, run_file, BackendKind};
use tcpdrill::run::RunOptions;
use tcpdrill::script::ParseOptions;

fn raw() -> BackendKind {
    BackendKind::all().find(|b| b.name() == "raw").expect("in the registry")
}

fn short_scripts() -> Vec<(PathBuf, i64)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts");
    let files = collect_scripts(&[dir]).expect("scripts/ is readable");
    let (p, r) = (ParseOptions::default(), RunOptions::default());
    files
        .into_iter()
        .filter_map(|f| {
            let t = run_file(&f, "s.pkt", BackendKind::Reference, &p, &r).outcome.ok()?.script_micros;
            (t < 5_000_000).then_some((f, t))
        })
        .collect()
}

/// Wall time less script time of each script on `backend`, sorted, and how many did not pass.
fn overheads(backend: BackendKind, scripts: &[(PathBuf, i64)]) -> (Vec<f64>, usize) {
    let (p, r) = (ParseOptions::default(), RunOptions::default());
    let mut failed = 0;
    let mut v: Vec<f64> = scripts
        .iter()
        .map(|(f, script)| {
            let t0 = Instant::now();
            let res = run_file(f, "s.pkt", backend, &p, &r);
            failed += usize::from(res.failed());
            t0.elapsed().as_secs_f64() - *script as f64 / 1e6
        })
        .collect();
    v.sort_by(f64::total_cmp);
    (v, failed)
}

fn bench(c: &mut Criterion) {
    if let Err(why) = testbed::available() {
        eprintln!("raw backend benchmarks skipped: {why}");
        return;
    }
    let scripts = short_scripts();
    let (linux, linux_failed) = overheads(BackendKind::Linux, &scripts);
    let list = scripts.clone();
    let (on_raw, raw_failed) = testbed::run(1500, move |_| overheads(raw(), &list)).expect("a testbed");
    let median = |v: &[f64]| v[v.len() / 2] * 1e3;
    eprintln!(
        "{} short scripts, median wall-time overhead per script: linux {:.1} ms ({} failed), raw {:.1} ms ({} \
         failed, one testbed for all), raw/linux {:.2}",
        scripts.len(),
        median(&linux),
        linux_failed,
        median(&on_raw),
        raw_failed,
        median(&on_raw) / median(&linux)
    );
    let passive = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/handshake/passive-open.pkt");
    let mut g = c.benchmark_group("script_handshake_passive_open_0.1s");
    g.sample_size(10);
    g.bench_function("linux", |b| {
        b.iter(|| run_file(&passive, "s.pkt", BackendKind::Linux, &ParseOptions::default(), &RunOptions::default()))
    });
    g.bench_function("raw", |b| {
        b.iter_custom(|iters| {
            let p = passive.clone();
            testbed::run(1500, move |_| {
                let t0 = Instant::now();
                for _ in 0..iters {
                    run_file(&p, "s.pkt", raw(), &ParseOptions::default(), &RunOptions::default());
                }
                t0.elapsed()
            })
            .expect("a testbed")
        })
    });
    g.finish();
    let mut g = c.benchmark_group("raw_testbed");
    g.sample_size(10);
    g.bench_function("make_and_tear_down", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t0 = Instant::now();
                testbed::run(1500, |_| ()).expect("a testbed");
                total += t0.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
