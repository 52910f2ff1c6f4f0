//! tcpdrill: a TCP conformance and fuzz test harness.
//!
//! This crate holds the harness around the reference stack (`tcpdrill-stack`): the command-line tool and the
//! checks that the fuzz targets and their stable replay tests share ([`fuzzing`]).
#![warn(missing_docs)]

pub mod agent;
pub mod backend;
pub mod differential;
pub mod fuzzing;
pub mod hex;
pub mod report;
pub mod run;
pub mod script;
pub mod serve;
