//! Writes a run's packets, both directions, to a pcap file (raw IP link type) that Wireshark and tshark read.
//! Timestamps are the run's times: on the reference backend, virtual time from the script's start.

use crate::run::trace::{Trace, TraceEntry};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;
use std::io::Write;
use std::time::Duration;

/// Writes every packet of `trace` to `out`; returns how many.
pub fn write<W: Write>(trace: &Trace, out: W) -> Result<usize, String> {
    let header = PcapHeader { datalink: DataLink::RAW, ..PcapHeader::default() };
    let mut w = PcapWriter::with_header(out, header).map_err(|e| e.to_string())?;
    let mut n = 0;
    for e in &trace.entries {
        let (t, bytes) = match e {
            TraceEntry::Inbound { t, bytes, .. } | TraceEntry::Outbound { t, bytes, .. } => (*t, bytes),
            _ => continue,
        };
        let ts = Duration::from_micros(t.max(0) as u64);
        w.write_packet(&PcapPacket::new(ts, bytes.len() as u32, bytes)).map_err(|e| e.to_string())?;
        n += 1;
    }
    Ok(n)
}
