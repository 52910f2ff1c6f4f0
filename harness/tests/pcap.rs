//! `tcpdrill run --pcap` writes a file tshark reads without error, with every packet of the run in order.

use std::path::Path;
use std::process::Command;
use tcpdrill::report::{pcap, run_file, BackendKind};
use tcpdrill::run::{RunOptions, TraceEntry};
use tcpdrill::script::ParseOptions;

#[test]
fn tshark_reads_the_pcap() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/close/passive-close.pkt");
    let r = run_file(
        &script,
        "passive-close.pkt",
        BackendKind::Reference,
        &ParseOptions::default(),
        &RunOptions::default(),
    );
    let trace = r.outcome.expect("parses").trace;
    let packets: Vec<&TraceEntry> = trace
        .entries
        .iter()
        .filter(|e| matches!(e, TraceEntry::Inbound { .. } | TraceEntry::Outbound { .. }))
        .collect();
    let file = std::env::temp_dir().join(format!("tcpdrill-pcap-test-{}.pcap", std::process::id()));
    let n = pcap::write(&trace, std::fs::File::create(&file).unwrap()).unwrap();
    assert_eq!(n, packets.len());
    let out = match Command::new("tshark")
        .args(["-r"])
        .arg(&file)
        .args(["-T", "fields", "-e", "frame.time_relative", "-e", "tcp.flags.str"])
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            println!("skipped: tshark is not installed ({e}); install it with `apt-get install tshark`");
            return;
        }
    };
    let _ = std::fs::remove_file(&file);
    assert!(out.status.success(), "tshark failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), n, "tshark sees every packet:\n{text}");
    // The first is the harness's SYN at 0 s, the last its ACK of our FIN at 10.3 s (virtual time).
    assert!(rows[0].contains("S"), "{}", rows[0]);
    assert!(rows[n - 1].trim_start().starts_with("10.3"), "{}", rows[n - 1]);
}
