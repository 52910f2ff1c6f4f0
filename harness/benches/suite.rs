//! Wall time of the whole `scripts/` suite on the reference backend (parse + run every script), against the sum
//! of the script time its scripts cover: what the virtual clock saves over running them in real time.
//!
//! `cargo bench -p tcpdrill --bench suite`

use criterion::{criterion_group, criterion_main, Criterion};
use std::path::Path;
use tcpdrill::report::{collect_scripts, run_file, BackendKind};
use tcpdrill::run::RunOptions;
use tcpdrill::script::ParseOptions;

fn bench(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts");
    let files = collect_scripts(&[dir]).expect("scripts/ is readable");
    let (popts, ropts) = (ParseOptions::default(), RunOptions::default());
    let run_all = || {
        files
            .iter()
            .map(|f| run_file(f, "s.pkt", BackendKind::Reference, &popts, &ropts))
            .map(|r| r.outcome.map_or(0, |o| o.script_micros))
            .sum::<i64>()
    };
    let script_micros = run_all();
    eprintln!("{} scripts covering {:.1} s of script time", files.len(), script_micros as f64 / 1e6);
    c.bench_function("suite_reference", |b| b.iter(run_all));
}

criterion_group!(benches, bench);
criterion_main!(benches);
