//! The script language: packetdrill's notation, parsed by hand into a typed AST with byte spans, printed back
//! canonically, and diagnosed with a caret and a hint.
//!
//! - [`parse`] (with [`ParseOptions`] for `-D` symbols and `#ifdef`), [`check`] for parse + name checks;
//! - [`ast`]: the tree; [`printer`]: canonical text; [`diag`]: the error type;
//! - [`symbols`]: syscalls and constants with their Linux values.

pub mod ast;
pub mod diag;
pub mod icmp;
pub mod options;
pub mod parser;
mod preprocess;
pub mod printer;
pub mod symbols;

pub use ast::*;
pub use diag::ScriptError;
pub use parser::{parse, ParseOptions};
pub use printer::print;

use std::sync::Arc;

/// Parses and checks names; returns the script or every error found (parse errors stop at the first).
pub fn check(file: &str, text: &str, opts: &ParseOptions) -> Result<Script, Vec<ScriptError>> {
    let script = parse(file, text, opts).map_err(|e| vec![e])?;
    let errs = symbols::check_names(&Arc::from(file), &Arc::from(text), &script);
    if errs.is_empty() {
        Ok(script)
    } else {
        Err(errs)
    }
}
