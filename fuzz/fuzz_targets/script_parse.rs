//! Arbitrary text and token soups into the script parser; see `tcpdrill::fuzzing::script_parse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tcpdrill::fuzzing::script_parse(data));
