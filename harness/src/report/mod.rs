//! Running scripts and presenting the results: [`runner`] runs files on backends, [`diff`] compares two runs,
//! and the rest presents them: the failure text, the requirements report, the ladder diagram and the pcap file.

pub mod coverage;
pub mod diagram;
mod diff;
pub mod formats;
pub mod html;
pub mod mutants;
pub mod pcap;
mod runner;

pub use diff::{divergence, Divergence};
pub use runner::{
    collect_scripts, read_script, run_file, run_file_with, run_parallel, run_parallel_watched, run_text, run_text_with,
    BackendKind, Job, ScriptResult,
};

use crate::run::{Outcome, Verdict};

/// The text shown for a failed script: packetdrill's lines, then the located diagnostic.
pub fn failure_text(r: &ScriptResult) -> Option<String> {
    match &r.outcome {
        Err(parse) => Some(parse.clone()),
        Ok(Outcome { verdict: Verdict::Fail(f), .. }) => Some(format!("{}\n{}", f.text(), f.diagnostic.render_plain())),
        _ => None,
    }
}
