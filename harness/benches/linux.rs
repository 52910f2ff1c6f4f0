//! The linux backend's own cost: creating a network namespace with its TUN device, and a script's wall time
//! against its script time. Also, printed before the criterion groups: the median per-script overhead over the
//! suite's short scripts (script time under 5 s) and their wall time with `--jobs 1` against `--jobs 2`.
//! And the fixed cost of one script as a runner pays it: tcpdrill's packetdrill command line next to upstream
//! packetdrill (built as `.ci/run` builds it, or `$PACKETDRILL`) run as its run_all.py runs it, a process each, on
//! the same two-line script. Needs root (CAP_NET_ADMIN); without it, prints why and measures nothing.
//!
//! `sudo cargo bench -p tcpdrill --bench linux`

use criterion::{criterion_group, criterion_main, Criterion};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tcpdrill::backend::linux::{self, Linux};
use tcpdrill::report::{collect_scripts, run_file, run_parallel, BackendKind, Job};
use tcpdrill::run::RunOptions;
use tcpdrill::script::ParseOptions;

fn short_scripts() -> Vec<(PathBuf, i64)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts");
    let files = collect_scripts(&[dir]).expect("scripts/ is readable");
    let (p, r) = (ParseOptions::default(), RunOptions::default());
    // Script time from the reference backend, which covers the same script time instantly.
    files
        .into_iter()
        .filter_map(|f| {
            let t = run_file(&f, "s.pkt", BackendKind::Reference, &p, &r).outcome.ok()?.script_micros;
            (t < 5_000_000).then_some((f, t))
        })
        .collect()
}

fn suite_figures(scripts: &[(PathBuf, i64)]) {
    let (p, r) = (ParseOptions::default(), RunOptions::default());
    let mut overhead: Vec<f64> = scripts
        .iter()
        .map(|(f, script)| {
            let t0 = Instant::now();
            let _ = run_file(f, "s.pkt", BackendKind::Linux, &p, &r);
            t0.elapsed().as_secs_f64() - *script as f64 / 1e6
        })
        .collect();
    overhead.sort_by(f64::total_cmp);
    let median = overhead[overhead.len() / 2];
    let script_total: f64 = scripts.iter().map(|(_, t)| *t as f64 / 1e6).sum();
    eprintln!(
        "{} short scripts, {:.2} s of script time: median wall-time overhead per script {:.1} ms (min {:.1}, max {:.1})",
        scripts.len(),
        script_total,
        median * 1e3,
        overhead[0] * 1e3,
        overhead[overhead.len() - 1] * 1e3
    );
    let jobs: Vec<Job> = scripts
        .iter()
        .map(|(f, _)| Job { path: f.clone(), name: "s.pkt".into(), backend: BackendKind::Linux, variant: None })
        .collect();
    for n in [1, 2] {
        let t0 = Instant::now();
        let mut failed = 0;
        run_parallel(&jobs, n, &p, &r, &[], |_, res| failed += usize::from(res.failed()));
        eprintln!("short scripts with --jobs {n}: {:.2} s wall ({failed} failed)", t0.elapsed().as_secs_f64());
    }
}

fn bench(c: &mut Criterion) {
    if let Err(why) = linux::available() {
        eprintln!("linux backend benchmarks skipped: {why}");
        return;
    }
    let scripts = short_scripts();
    suite_figures(&scripts);
    c.bench_function("linux_namespace_and_tun_setup", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += std::thread::spawn(|| {
                    let t0 = Instant::now();
                    linux::unshare_netns().expect("checked above");
                    let l = Linux::new(tcpdrill::backend::IpVersion::V4).expect("TUN device");
                    drop(l);
                    t0.elapsed()
                })
                .join()
                .expect("no panic");
            }
            total
        })
    });
    fixed_cost(c);
    let passive = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/handshake/passive-open.pkt");
    let mut g = c.benchmark_group("linux_script");
    g.sample_size(10);
    g.bench_function("handshake_passive_open_0.1s", |b| {
        b.iter(|| run_file(&passive, "s.pkt", BackendKind::Linux, &ParseOptions::default(), &RunOptions::default()))
    });
    g.finish();
}

/// One process per script, as run_all.py starts them: `tcpdrill FLAGS two.pkt` (which makes its own namespace)
/// against `unshare -n sh -c 'ip link set lo up && packetdrill FLAGS two.pkt'` (in_netns.sh's work, minus its
/// `ip netns` bookkeeping).
fn fixed_cost(c: &mut Criterion) {
    let flags = tcpdrill::backend::IpVersion::V4.run_all_flags();
    let dir = std::env::temp_dir().join(format!("tcpdrill-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    std::fs::write(dir.join("two.pkt"), "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 close(3) = 0\n")
        .expect("the script");
    let run = |cmd: &mut std::process::Command| {
        let out = cmd.current_dir(&dir).output().expect("the process starts");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let mut g = c.benchmark_group("fixed_cost_two_line_script");
    g.sample_size(20);
    g.bench_function("tcpdrill", |b| {
        b.iter(|| run(std::process::Command::new(env!("CARGO_BIN_EXE_tcpdrill")).args(flags).arg("two.pkt")))
    });
    let pd = std::env::var_os("PACKETDRILL")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/packetdrill/packetdrill"));
    if pd.is_file() {
        let line = format!("ip link set lo up && exec {} {} two.pkt", pd.display(), flags.join(" "));
        g.bench_function("packetdrill", |b| {
            b.iter(|| run(std::process::Command::new("unshare").args(["-n", "sh", "-c", &line])))
        });
    } else {
        eprintln!("no packetdrill at {}: its half of fixed_cost is not measured", pd.display());
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
