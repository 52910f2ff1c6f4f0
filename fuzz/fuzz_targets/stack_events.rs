//! Structured sequences of segments, socket calls and time steps into a reference `Host`; see
//! `tcpdrill::fuzzing::stack_events` for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tcpdrill::fuzzing::stack_events(data));
