//! Script diagnostics: `file:line:col: error: message`, the line with a caret under the offending token, and a
//! hint where one helps. Rendered by miette.

use super::ast::Span;
use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, NamedSource, SourceSpan};
use std::fmt;
use std::sync::Arc;

/// A problem found in a script, located in its source. Boxed inside, so that results carrying it stay small.
#[derive(Debug)]
pub struct ScriptError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    message: String,
    span: Span,
    help: Option<String>,
    label: String,
    file: Arc<str>,
    source: Arc<str>,
    named: NamedSource<Arc<str>>,
}

impl Clone for ScriptError {
    fn clone(&self) -> Self {
        let i = &self.0;
        let e = ScriptError::new(i.file.clone(), i.source.clone(), i.span, i.message.clone(), i.label.clone());
        match &i.help {
            Some(h) => e.with_help(h.clone()),
            None => e,
        }
    }
}

impl ScriptError {
    /// An error at `span` of `source` (named `file`).
    pub fn new(
        file: Arc<str>,
        source: Arc<str>,
        span: Span,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> Self {
        let named = NamedSource::new(&*file, source.clone());
        ScriptError(Box::new(Inner {
            message: message.into(),
            span,
            help: None,
            label: label.into(),
            file,
            source,
            named,
        }))
    }

    /// Adds a hint.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.0.help = Some(help.into());
        self
    }

    /// What is wrong.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// Where, in the source.
    pub fn span(&self) -> Span {
        self.0.span
    }

    /// The hint, if any.
    pub fn help_text(&self) -> Option<&str> {
        self.0.help.as_deref()
    }

    /// The file's name.
    pub fn file(&self) -> &str {
        &self.0.file
    }

    /// Line and column (both 1-based, column in characters) of the span's start.
    pub fn line_col(&self) -> (usize, usize) {
        line_col(&self.0.source, self.0.span.start)
    }

    /// packetdrill's first line: `file:line: error: message`, with the column added.
    pub fn headline(&self) -> String {
        let (l, c) = self.line_col();
        format!("{}:{l}:{c}: error: {}", self.0.file, self.0.message)
    }

    /// The full diagnostic without colours (stable, for tests and logs).
    pub fn render_plain(&self) -> String {
        let mut out = String::new();
        let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor()).with_width(100);
        let _ = handler.render_report(&mut out, self);
        format!("{}\n{out}", self.headline())
    }
}

/// 1-based line and character column of byte `offset` in `src`.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = src.get(..offset).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for ScriptError {}

impl Diagnostic for ScriptError {
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.0.named)
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.0.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let span: SourceSpan = self.0.span.into();
        Some(Box::new(std::iter::once(miette::LabeledSpan::new_with_span(Some(self.0.label.clone()), span))))
    }
}

/// The closest of `candidates` to `word`, if any is close enough to be a likely typo.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(&word.to_ascii_lowercase(), &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}
