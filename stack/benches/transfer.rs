//! Segments processed per second for a bulk transfer between two reference hosts in memory (perfect link,
//! 1 ms one-way delay), and the same over a lossy, reordering link.
//!
//! `cargo bench -p tcpdrill-stack --bench transfer`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;
use tcpdrill_stack::sim::{transfer, LinkConfig};
use tcpdrill_stack::Config;

const BYTES: usize = 4 << 20;

fn bench(c: &mut Criterion) {
    let data: Vec<u8> = (0..BYTES).map(|i| (i * 7) as u8).collect();
    let config = Config { tcp_wmem: [4096, 1 << 20, 4 << 20], ..Config::default() };
    let cases = [
        ("perfect_1ms", LinkConfig::perfect(Duration::from_millis(1))),
        (
            "lossy_2pct_reorder",
            LinkConfig {
                drop_permille: 20,
                dup_permille: 5,
                min_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(5),
            },
        ),
    ];
    let mut g = c.benchmark_group("bulk_transfer_4MiB");
    g.sample_size(10);
    for (name, link) in cases {
        // Count the segments once (the run is deterministic), so throughput is reported in segments/s.
        let report = transfer(config.clone(), 1, link, [&data, b""], 10_000_000).expect("transfer completes");
        let segments = report.link[0];
        eprintln!("{name}: {segments} datagrams on the link, {:?} of virtual time, {report:?}", report.duration);
        g.throughput(Throughput::Elements(segments));
        g.bench_function(name, |b| {
            b.iter(|| transfer(config.clone(), 1, link, [&data, b""], 10_000_000).expect("transfer completes"))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
