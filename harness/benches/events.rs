//! Executor throughput: events per second of one long script on the reference backend, at 10,000 and 100,000
//! events. Equal rates at both sizes show the executor is linear in the script's length (it was quadratic: a
//! 50,000-event script took 27 s, 0.17 s after the fix).
//!
//! `cargo bench -p tcpdrill --bench events`

#[path = "../tests/common/mod.rs"]
mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::path::Path;
use tcpdrill::report::{run_text, BackendKind};
use tcpdrill::run::{RunOptions, Verdict};
use tcpdrill::script::ParseOptions;

/// A passive open, then `n` events: write, the segment it sends, its ACK 1 ms later, over and over.
fn script(n: usize) -> String {
    let mut s = String::from(common::PASSIVE);
    let mut seq = 1u64;
    for _ in 0..n / 3 {
        let end = (seq + 10) % (1 << 32);
        s.push_str(&format!(
            "+0 write(4, ..., 10) = 10\n+0 > P. {seq}:{end}(10) ack 1\n+.001 < . 1:1(0) ack {end} win 65535\n"
        ));
        seq = end;
    }
    s
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("executor_events");
    g.sample_size(10);
    for n in [10_000, 100_000] {
        let text = script(n);
        let run = || {
            run_text(
                Path::new("long.pkt"),
                "long.pkt",
                &text,
                BackendKind::Reference,
                &ParseOptions::default(),
                &RunOptions::default(),
            )
        };
        let r = run();
        assert!(matches!(r.outcome.as_ref().map(|o| &o.verdict), Ok(Verdict::Pass)), "the long script must pass");
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| b.iter(run));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
