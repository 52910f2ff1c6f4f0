//! The differential fuzzer's generator, coverage-guided: see `tcpdrill::fuzzing::differential`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tcpdrill::fuzzing::differential(data));
