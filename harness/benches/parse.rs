//! Parse throughput (MB/s and lines/s) over the upstream packetdrill scripts in `../shared/packetdrill-corpus`
//! (read in place, never copied), or over the fuzz seed scripts when that folder is absent.
//!
//! `cargo bench -p tcpdrill --bench parse`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use tcpdrill::script::{parse, ParseOptions};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "pkt") {
            out.push(p);
        }
    }
}

fn corpus() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    collect(&root.join("../../shared/packetdrill-corpus"), &mut files);
    if files.is_empty() {
        eprintln!("../shared/packetdrill-corpus absent: benchmarking the fuzz seed scripts instead");
        let seeds = root.join("../fuzz/corpus/script_parse");
        for e in std::fs::read_dir(seeds).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with("own-") {
                files.push(e.path());
            }
        }
        return files.iter().map(|f| String::from_utf8_lossy(&std::fs::read(f).unwrap()[1..]).into_owned()).collect();
    }
    files.iter().map(|f| std::fs::read_to_string(f).unwrap()).collect()
}

fn bench(c: &mut Criterion) {
    let scripts = corpus();
    let opts = ParseOptions::with_symbols(["tcpdrill", "Linux"]);
    let bytes: usize = scripts.iter().map(String::len).sum();
    let lines: usize = scripts.iter().map(|s| s.lines().count()).sum();
    eprintln!("{} scripts, {bytes} bytes, {lines} lines", scripts.len());
    let mut g = c.benchmark_group("parse_corpus");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("bytes", |b| {
        b.iter(|| {
            scripts.iter().map(|s| parse("bench.pkt", black_box(s), &opts).map_or(0, |s| s.events.len())).sum::<usize>()
        })
    });
    g.throughput(Throughput::Elements(lines as u64));
    g.bench_function("lines", |b| {
        b.iter(|| {
            scripts.iter().map(|s| parse("bench.pkt", black_box(s), &opts).map_or(0, |s| s.events.len())).sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
