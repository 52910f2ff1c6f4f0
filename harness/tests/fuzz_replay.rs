//! Replays every fuzz corpus and crash file through the same checks the fuzz targets run, on stable, so that
//! CI catches a regression without nightly or cargo-fuzz. Corpus files live in `fuzz/corpus/<target>/`,
//! minimised crash reproducers in `fuzz/artifacts/<target>/`.

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files = Vec::new();
    for dir in ["corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        files.extend(entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()));
    }
    files.sort();
    files
}

fn replay(target: &str, check: fn(&[u8])) -> usize {
    let files = inputs(target);
    for f in &files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("reading {}: {e}", f.display()));
        if let Err(panic) = std::panic::catch_unwind(|| check(&data)) {
            let msg = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(non-string panic)");
            panic!("{target}: {} fails: {msg}", f.display());
        }
    }
    files.len()
}

#[test]
fn segment_parse_corpus() {
    let n = replay("segment_parse", tcpdrill::fuzzing::segment_parse);
    // The seed corpus is committed; an empty directory would make this test vacuous.
    assert!(n >= 10, "expected the committed segment_parse corpus, found {n} files");
    println!("replayed {n} segment_parse inputs");
}

#[test]
fn stack_events_corpus() {
    let n = replay("stack_events", tcpdrill::fuzzing::stack_events);
    assert!(n >= 10, "expected the committed stack_events corpus, found {n} files");
    println!("replayed {n} stack_events inputs");
}

#[test]
fn script_parse_corpus() {
    let n = replay("script_parse", tcpdrill::fuzzing::script_parse);
    assert!(n >= 10, "expected the committed script_parse corpus, found {n} files");
    println!("replayed {n} script_parse inputs");
}

#[test]
fn differential_corpus() {
    let n = replay("differential", tcpdrill::fuzzing::differential);
    assert!(n >= 10, "expected the committed differential corpus, found {n} files");
    println!("replayed {n} differential inputs");
}
