//! Arbitrary bytes into the IPv4/IPv6/TCP parsers; see `tcpdrill::fuzzing::segment_parse` for the properties.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tcpdrill::fuzzing::segment_parse(data));
