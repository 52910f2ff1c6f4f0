//! A hand-written recursive-descent parser for packetdrill's language (scannerless: the notation is
//! context-sensitive, `S.` is a flag set, `.1` a time, `...` an ellipsis or a blocking-time separator).

use super::ast::*;
use super::diag::{nearest, ScriptError};
use super::options;
use super::preprocess::preprocess;
use std::collections::BTreeMap;
use std::sync::Arc;
use tcpdrill_stack::wire::TcpFlags;

/// What the parser needs to know besides the text.
#[derive(Debug, Clone, Default)]
pub struct ParseOptions {
    /// `-D NAME[=value]` symbols and the predefined ones (`Linux`, `tcpdrill_ref`, ...): they select `#ifdef`
    /// blocks, and a symbol with a value replaces identifiers of that name in expressions and numbers.
    pub defines: BTreeMap<String, String>,
}

impl ParseOptions {
    /// With the given symbols defined (value empty).
    pub fn with_symbols<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        ParseOptions { defines: names.into_iter().map(|n| (n.to_string(), String::new())).collect() }
    }
}

/// Parses a script. `file` names it in diagnostics.
pub fn parse(file: &str, text: &str, opts: &ParseOptions) -> Result<Script, ScriptError> {
    let file: Arc<str> = Arc::from(file);
    let pre = preprocess(text, &opts.defines).map_err(|(span, msg, help)| {
        let e = ScriptError::new(file.clone(), Arc::from(text), span, msg, "here");
        match help {
            Some(h) => e.with_help(h),
            None => e,
        }
    })?;
    let source: Arc<str> = Arc::from(pre.as_str());
    let mut p = Parser { src: &pre, pos: 0, file, source, defines: &opts.defines, depth: 0 };
    let script = p.script()?;
    p.no_replacement_characters(&script)?;
    Ok(script)
}

/// TCP option names, for hints.
pub const OPTION_NAMES: &[&str] =
    &["nop", "eol", "mss", "wscale", "sackOK", "sack", "TS", "FO", "FOEXP", "md5", "opt", "bytes"];

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    file: Arc<str>,
    source: Arc<str>,
    defines: &'a BTreeMap<String, String>,
    /// How many expressions enclose the one being parsed.
    depth: usize,
}

type R<T> = Result<T, ScriptError>;

/// How deep `[`, `{` and calls may nest in a syscall argument. packetdrill's own scripts go three deep; the
/// bound keeps a hostile script from exhausting the stack of the parser, the printer or the executor, which all
/// recurse over expressions.
pub const MAX_NESTING: usize = 32;

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl<'a> Parser<'a> {
    // ---- low level ---------------------------------------------------------------------------------------

    fn err(&self, span: Span, msg: impl Into<String>, label: impl Into<String>) -> ScriptError {
        ScriptError::new(self.file.clone(), self.source.clone(), span, msg, label)
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek2(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }

    fn at(&self, s: &str) -> bool {
        self.rest().starts_with(s)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, s: &str) -> bool {
        if self.at(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    /// Skips blanks only (no newlines, no comments).
    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\r')) {
            self.pos += 1;
        }
    }

    /// Skips whitespace, newlines and comments. Returns an error for an unterminated `/*`.
    fn skip_ws(&mut self) -> R<()> {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some('/') if self.peek2() == Some('/') => {
                    while !matches!(self.peek(), None | Some('\n')) {
                        self.bump();
                    }
                }
                Some('/') if self.peek2() == Some('*') => {
                    let start = self.pos;
                    match self.rest()[2..].find("*/") {
                        Some(i) => self.pos += 2 + i + 2,
                        None => {
                            return Err(self
                                .err(Span::new(start, start + 2), "unterminated comment", "opened here")
                                .with_help("close it with */"))
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// The span of the token at the cursor: up to whitespace or punctuation, at least one whole character (the
    /// script_parse fuzzer found a one-byte span cutting a multi-byte character in two), empty at end of file.
    fn token_span(&self) -> Span {
        let rest = self.rest();
        let len = rest.find(|c: char| c.is_whitespace() || ",()[]{}<>".contains(c)).unwrap_or(rest.len());
        let len = if len == 0 { rest.chars().next().map_or(0, char::len_utf8) } else { len };
        Span::new(self.pos, self.pos + len)
    }

    fn expected(&self, what: &str) -> ScriptError {
        let span = self.token_span();
        let found = match self.peek() {
            None => "end of file".to_string(),
            Some(_) => format!("{:?}", &self.src[span.start..span.end]),
        };
        self.err(span, format!("expected {what}, found {found}"), format!("expected {what}"))
    }

    fn expect(&mut self, s: &str, what: &str) -> R<Span> {
        let before = self.pos;
        self.skip_ws()?;
        let start = self.pos;
        if self.eat(s) {
            return Ok(Span::new(start, self.pos));
        }
        if self.peek().is_none() || self.src[before..self.pos].contains('\n') {
            // The thing is missing at the end of a line: point there, not at whatever starts the next line.
            let at = Span::new(before, before);
            return Err(self.err(at, format!("expected {what}"), format!("expected {what} here")));
        }
        Err(self.expected(what))
    }

    fn ident(&mut self) -> Option<(String, Span)> {
        let start = self.pos;
        if !self.peek().is_some_and(is_ident_start) {
            return None;
        }
        while self.peek().is_some_and(is_ident_char) {
            self.bump();
        }
        Some((self.src[start..self.pos].to_string(), Span::new(start, self.pos)))
    }

    /// An unsigned integer, decimal or 0x hex, or a `-D` symbol standing for one.
    fn uint(&mut self, what: &str) -> R<(u64, Span)> {
        self.skip_ws()?;
        let start = self.pos;
        if let Some(v) = self.defined_value() {
            let span = Span::new(start, self.pos);
            return v.trim().parse::<u64>().map(|n| (n, span)).map_err(|_| {
                self.err(span, format!("{what} expected, but this symbol is defined as {v:?}"), "not a number")
            });
        }
        let (digits, radix) = if self.eat("0x") || self.eat("0X") { (self.pos, 16) } else { (self.pos, 10) };
        while self.peek().is_some_and(|c| c.is_digit(radix)) {
            self.bump();
        }
        let text = &self.src[digits..self.pos];
        if text.is_empty() {
            self.pos = start;
            return Err(self.expected(what));
        }
        let span = Span::new(start, self.pos);
        u64::from_str_radix(text, radix)
            .map(|n| (n, span))
            .map_err(|_| self.err(span, format!("{what} is too large"), "out of range"))
    }

    /// A number written as packetdrill's grammar has it there: hex with `0x` (`tos 0x10`, `flowlabel 0x1`) or
    /// decimal (`ttl 64`); a `-D` symbol may stand for it in either form.
    fn radix_uint(&mut self, what: &str, radix: u32) -> R<(u64, Span)> {
        self.skip_blanks();
        let start = self.pos;
        if let Some(v) = self.defined_value() {
            let span = Span::new(start, self.pos);
            let v = v.trim();
            let n = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
                Some(h) => u64::from_str_radix(h, 16).ok(),
                None => v.parse::<u64>().ok(),
            };
            return n.map(|n| (n, span)).ok_or_else(|| {
                self.err(span, format!("{what} expected, but this symbol is defined as {v:?}"), "not a number")
            });
        }
        let hex = self.at("0x") || self.at("0X");
        if hex != (radix == 16) {
            let form = if radix == 16 { "in hex, as 0x10" } else { "in decimal, as 64" };
            return Err(self.expected(&format!("{what} {form} (packetdrill's grammar)")));
        }
        self.uint(what)
    }

    fn u32_(&mut self, what: &str) -> R<(u32, Span)> {
        let (v, span) = self.uint(what)?;
        u32::try_from(v)
            .map(|v| (v, span))
            .map_err(|_| self.err(span, format!("{what} does not fit 32 bits"), "out of range"))
    }

    /// If an identifier defined with `-D NAME=value` stands here, consumes it and returns the value.
    fn defined_value(&mut self) -> Option<String> {
        let save = self.pos;
        let (name, _) = self.ident()?;
        match self.defines.get(&name).filter(|v| !v.is_empty()) {
            Some(v) => Some(v.clone()),
            None => {
                self.pos = save;
                None
            }
        }
    }

    // ---- script ------------------------------------------------------------------------------------------

    fn script(&mut self) -> R<Script> {
        let mut s = Script::default();
        loop {
            self.skip_ws()?;
            let start = self.pos;
            if self.peek().is_none() {
                break;
            }
            if self.at("--") {
                if !s.events.is_empty() || !s.init.is_empty() {
                    return Err(self
                        .err(self.token_span(), "header option after the first event", "options go first")
                        .with_help("move --options to the top of the script"));
                }
                s.options.push(self.header_option()?);
            } else if self.at("`") {
                let c = self.command()?;
                if s.events.is_empty() {
                    s.init.push(c);
                } else {
                    s.cleanup.push(c);
                }
            } else {
                if !s.cleanup.is_empty() {
                    return Err(self
                        .err(s.cleanup[0].span, "untimed command between events", "needs a time")
                        .with_help("give the command a time, e.g. `+0 `...``, or move it to the end"));
                }
                let e = self.event()?;
                debug_assert!(e.span.start >= start);
                s.events.push(e);
            }
        }
        self.check_timeline(&s)?;
        Ok(s)
    }

    fn header_option(&mut self) -> R<HeaderOption> {
        let start = self.pos;
        self.pos += 2;
        let (name, _) = self.ident_dashed().ok_or_else(|| self.expected("an option name after --"))?;
        let value = if self.eat("=") {
            let line_end = self.rest().find('\n').unwrap_or(self.rest().len());
            let raw = self.rest()[..line_end].split("//").next().unwrap_or("").trim();
            self.pos += line_end;
            Some(raw.trim_matches('"').to_string())
        } else {
            None
        };
        let span = Span::new(start, self.pos);
        let Some(spec) = options::spec(&name) else {
            let known = options::HEADER_OPTIONS.iter().map(|o| o.name);
            let mut e =
                self.err(span, format!("unknown header option --{name}"), "not an option packetdrill or tcpdrill has");
            if let Some(n) = nearest(&name, known) {
                e = e.with_help(format!("did you mean --{n}?"));
            }
            return Err(e);
        };
        if let Err(why) = spec.check(value.as_deref()) {
            let mut e = self.err(span, why, "this option");
            if let (options::Value::Choice(words), Some(v)) = (spec.value, value.as_deref()) {
                if let Some(n) = nearest(v, words.iter().copied()) {
                    e = e.with_help(format!("did you mean --{name}={n}?"));
                }
            }
            return Err(e);
        }
        Ok(HeaderOption { name, value, span })
    }

    fn ident_dashed(&mut self) -> Option<(String, Span)> {
        let start = self.pos;
        while self.peek().is_some_and(|c| is_ident_char(c) || c == '-') {
            self.bump();
        }
        (self.pos > start).then(|| (self.src[start..self.pos].to_string(), Span::new(start, self.pos)))
    }

    fn command(&mut self) -> R<Command> {
        let start = self.pos;
        self.pos += 1;
        match self.rest().find('`') {
            Some(i) => {
                let text = self.rest()[..i].to_string();
                self.pos += i + 1;
                Ok(Command { text, span: Span::new(start, self.pos) })
            }
            None => Err(self
                .err(Span::new(start, start + 1), "unterminated backquote command", "opened here")
                .with_help("close the command with another `")),
        }
    }

    // ---- time --------------------------------------------------------------------------------------------

    /// Seconds as written (`0`, `.1`, `1.25`) to microseconds.
    fn seconds(&mut self) -> R<i64> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
        }
        // A dot belongs to the number unless it starts `...`.
        if self.peek() == Some('.') && self.peek2() != Some('.') {
            self.bump();
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.bump();
            }
        }
        let text = &self.src[start..self.pos];
        if !text.chars().any(|c| c.is_ascii_digit()) {
            self.pos = start;
            return Err(self.expected("a time"));
        }
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        let int: i64 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| self.err(Span::new(start, self.pos), "time too large", "here"))?
        };
        let mut frac_us = 0i64;
        for (i, d) in frac.chars().take(6).enumerate() {
            frac_us += i64::from(d.to_digit(10).unwrap_or(0) as u8) * 10i64.pow(5 - i as u32);
        }
        int.checked_mul(1_000_000)
            .and_then(|v| v.checked_add(frac_us))
            .ok_or_else(|| self.err(Span::new(start, self.pos), "time too large", "here"))
    }

    fn time_point(&mut self) -> R<TimePoint> {
        let relative = self.eat("+");
        if relative {
            self.skip_blanks();
        }
        Ok(TimePoint { micros: self.seconds()?, relative })
    }

    fn time(&mut self) -> R<(TimeSpec, Span)> {
        let start = self.pos;
        if self.eat("*") {
            return Ok((TimeSpec::Any, Span::new(start, self.pos)));
        }
        if !(self.peek().is_some_and(|c| c.is_ascii_digit() || c == '.' || c == '+')) {
            return Err(self.expected("an event time (0, +0.1, *, a~b) or a header option"));
        }
        let a = self.time_point()?;
        let spec = if self.eat("~") {
            let b = self.time_point()?;
            if a.relative != b.relative {
                // packetdrill's grammar: `time '~' time` or `'+' time '~' '+' time`.
                let (fix, what) = if a.relative { ("+", "relative") } else { ("", "absolute") };
                return Err(self
                    .err(Span::new(start, self.pos), "the two ends of a time range differ: one is relative", "range")
                    .with_help(format!(
                        "write both ends {what}, as packetdrill requires: {}~{fix}{}",
                        super::printer::point(a),
                        fmt_secs(b.micros)
                    )));
            }
            TimeSpec::Range(a, b)
        } else if self.eat("...") {
            let b = self.time_point()?;
            if b.relative {
                return Err(self
                    .err(Span::new(start, self.pos), "the end of a blocking call is written without +", "end time")
                    .with_help(format!(
                        "in {}...{} the end counts from the same event as the start, as in packetdrill",
                        super::printer::point(a),
                        fmt_secs(b.micros)
                    )));
            }
            TimeSpec::Blocking(a, b)
        } else {
            TimeSpec::At(a)
        };
        Ok((spec, Span::new(start, self.pos)))
    }

    // ---- events ------------------------------------------------------------------------------------------

    fn event(&mut self) -> R<Event> {
        let start = self.pos;
        let (time, time_span) = self.time()?;
        self.skip_ws()?;
        let action = match self.peek() {
            Some('<' | '>') => Action::Packet(self.packet()?),
            Some('`') => Action::Shell(self.command()?),
            Some('%') if self.at("%{") => {
                let s = self.pos;
                self.pos += 2;
                match self.rest().find("}%") {
                    Some(i) => {
                        let text = self.rest()[..i].to_string();
                        self.pos += i + 2;
                        Action::Code(Code { text, span: Span::new(s, self.pos) })
                    }
                    None => {
                        return Err(self
                            .err(Span::new(s, s + 2), "unterminated %{ code block", "opened here")
                            .with_help("close the block with }%"))
                    }
                }
            }
            Some(c) if is_ident_start(c) => Action::Syscall(self.syscall()?),
            _ => return Err(self.expected("a packet (< or >), a syscall, a `command` or a %{ block }%")),
        };
        match (&time, &action) {
            (TimeSpec::Blocking(..), Action::Syscall(_)) => {}
            (TimeSpec::Blocking(..), _) => {
                return Err(self
                    .err(time_span, "a blocking time (a...b) only goes with a syscall", "blocking time")
                    .with_help("write a single time, or a~b for an outbound packet"))
            }
            (TimeSpec::Any | TimeSpec::Range(..), Action::Packet(p)) if p.direction == Direction::Outbound => {}
            (TimeSpec::Any | TimeSpec::Range(..), _) => {
                return Err(self
                    .err(time_span, "a time range or * only goes with an outbound (>) packet", "inexact time")
                    .with_help("the harness decides when inbound packets and syscalls happen: give an exact time"))
            }
            _ => {}
        }
        Ok(Event { time, time_span, action, span: Span::new(start, self.pos) })
    }

    /// A script is read as UTF-8 with bytes that are not UTF-8 as U+FFFD (`report::read_script`), so that a
    /// Latin-1 comment does no harm, as in packetdrill. Elsewhere such a byte would reach a string, a command or a
    /// Python block changed: an error at the byte, rather than a silent change.
    fn no_replacement_characters(&self, s: &Script) -> R<()> {
        let mut texts: Vec<(&str, Span)> = Vec::new();
        texts.extend(s.init.iter().chain(&s.cleanup).map(|c| (c.text.as_str(), c.span)));
        for e in &s.events {
            match &e.action {
                Action::Shell(c) => texts.push((c.text.as_str(), c.span)),
                Action::Code(c) => texts.push((c.text.as_str(), c.span)),
                Action::Syscall(_) if !e.span.is_empty() => texts.push((&self.src[e.span.start..e.span.end], e.span)),
                _ => {}
            }
        }
        for (text, span) in texts {
            if text.contains('\u{FFFD}') {
                // The text starts inside its span, after the delimiter: find the character in the source.
                let at = self.src[span.start..].find('\u{FFFD}').map_or(span.start, |j| span.start + j);
                return Err(self
                    .err(Span::new(at, at + '\u{FFFD}'.len_utf8()), "bytes that are not UTF-8 here", "not UTF-8")
                    .with_help("tcpdrill reads scripts as UTF-8; only comments may hold other bytes"));
            }
        }
        Ok(())
    }

    fn check_timeline(&self, s: &Script) -> R<()> {
        let mut prev: Option<i64> = None;
        for e in &s.events {
            if e.time == TimeSpec::Any {
                // Whenever it comes, from the previous event on (from 0 as the first event).
                prev.get_or_insert(0);
                continue;
            }
            let base = prev.unwrap_or(0);
            let (t0, t1) = e.time.window(base);
            if prev.is_none() && t0 != 0 {
                // packetdrill's clock starts at the first event, which must be at 0 (run.c, `get_next_event`).
                return Err(self
                    .err(
                        e.time_span,
                        format!("the first event is at {} s; scripts start at 0", fmt_secs(t0)),
                        "first event",
                    )
                    .with_help(
                        "start the script at 0 (or +0), as packetdrill requires, and give later events their times",
                    ));
            }
            if let Some(p) = prev {
                if t0 < p {
                    return Err(self
                        .err(
                            e.time_span,
                            format!("time goes backwards: {} s after an event at {} s", fmt_secs(t0), fmt_secs(p)),
                            "earlier than the previous event",
                        )
                        .with_help("use a relative time (+0.1) or a later absolute time"));
                }
            }
            if t1 < t0 {
                return Err(self.err(e.time_span, "the end of this time range is before its start", "reversed range"));
            }
            // The events after a blocking call describe what happens while it blocks (upstream scripts:
            // `1.00...6.00 connect()` then `+1.00 > S ...`): time continues from the call's start, as it does
            // from the start of a range.
            prev = Some(t0);
        }
        Ok(())
    }

    // ---- packets -----------------------------------------------------------------------------------------

    fn packet(&mut self) -> R<Packet> {
        let start = self.pos;
        let direction = if self.bump() == Some('<') { Direction::Inbound } else { Direction::Outbound };
        self.skip_ws()?;
        let ip = if matches!(self.peek(), Some('[' | '(')) { self.ip_info()? } else { IpInfo::default() };
        let body = if self.at("udp") && !self.rest()[3..].starts_with(is_ident_char) {
            self.pos += 3;
            self.expect("(", "( after udp")?;
            let (len, _) = self.u32_("a UDP payload length")?;
            self.expect(")", ")")?;
            PacketBody::Udp { len }
        } else if self.at("icmp") && !self.rest()[4..].starts_with(is_ident_char) {
            self.pos += 4;
            let mut words = Vec::new();
            loop {
                self.skip_blanks();
                if matches!(self.peek(), None | Some('\n')) || self.at("//") {
                    break;
                }
                let s = self.pos;
                while !matches!(self.peek(), None | Some(' ' | '\t' | '\n' | '\r')) {
                    self.bump();
                }
                words.push(self.src[s..self.pos].to_string());
            }
            PacketBody::Icmp { words }
        } else {
            PacketBody::Tcp(self.tcp(direction)?)
        };
        if direction == Direction::Inbound {
            if let PacketBody::Tcp(t) = &body {
                if t.seq.is_none() {
                    return Err(self.err(
                        t.seq_span,
                        "an inbound packet needs a sequence number",
                        "`...` only on > packets",
                    ));
                }
            }
        }
        Ok(Packet { direction, ip, body, span: Span::new(start, self.pos) })
    }

    /// packetdrill's `ip_info` in `[...]` or `(...)`: an ECN mark, `tos 0x..`, `flowlabel 0x..`, `ttl N`, and
    /// nplab's IPv6 spellings `class 0x..` (the traffic class, IPv6's TOS) and `hlim N` (the hop limit, its TTL):
    /// one of them, or a TOS and a flow label, as packetdrill's grammar has it.
    fn ip_info(&mut self) -> R<IpInfo> {
        const WORDS: [&str; 10] = ["noecn", "ect0", "ect1", "ect01", "ce", "tos", "class", "flowlabel", "ttl", "hlim"];
        let close = if self.bump() == Some('[') { "]" } else { ")" };
        let mut ip = IpInfo::default();
        loop {
            self.skip_blanks();
            let (name, span) = self.ident().ok_or_else(|| {
                self.expected("an IP field: an ECN mark (noecn, ect0, ect1, ect01, ce), tos, flowlabel or ttl")
            })?;
            match name.as_str() {
                "noecn" | "ect0" | "ect1" | "ect01" | "ce" => {
                    ip.tos = Some(Tos::Ecn(match name.as_str() {
                        "noecn" => Ecn::NoEcn,
                        "ect0" => Ecn::Ect0,
                        "ect1" => Ecn::Ect1,
                        "ect01" => Ecn::Ect01,
                        _ => Ecn::Ce,
                    }));
                }
                "tos" | "class" => {
                    let (v, vspan) = self.radix_uint(&format!("a {name} value"), 16)?;
                    let v = u8::try_from(v)
                        .map_err(|_| self.err(vspan, format!("{name} out of range for 8 bits"), "out of range"))?;
                    ip.tos = Some(Tos::Byte(v));
                }
                "flowlabel" => {
                    let (v, vspan) = self.radix_uint("a flow label", 16)?;
                    if v >= 1 << 20 {
                        return Err(self.err(vspan, "flowlabel out of range for 20 bits", "out of range"));
                    }
                    ip.flow_label = Some(v as u32);
                }
                "ttl" | "hlim" => {
                    let (v, vspan) = self.radix_uint(&format!("a {name} value"), 10)?;
                    let v = u8::try_from(v)
                        .map_err(|_| self.err(vspan, format!("{name} out of range for 8 bits"), "out of range"))?;
                    ip.ttl = Some(v);
                }
                _ => {
                    let mut e = self.err(span, format!("unknown IP field {name:?}"), "not an IP field");
                    if let Some(n) = nearest(&name, WORDS) {
                        e = e.with_help(format!("did you mean {n}?"));
                    }
                    return Err(e);
                }
            }
            self.skip_blanks();
            let comma = self.pos;
            if !self.eat(",") {
                break;
            }
            // packetdrill's ip_info: one field alone, or a TOS (or ECN mark) and then a flow label.
            self.skip_blanks();
            if !(ip.tos.is_some() && ip.flow_label.is_none() && ip.ttl.is_none() && self.at("flowlabel")) {
                return Err(self
                    .err(Span::new(comma, comma + 1), "these IP fields do not go together", "here")
                    .with_help(
                        "packetdrill takes one of tos, an ECN mark, flowlabel or ttl, or a TOS then a flowlabel",
                    ));
            }
        }
        self.expect(close, &format!("{close} after the IP fields"))?;
        self.skip_ws()?;
        Ok(ip)
    }

    fn tcp(&mut self, direction: Direction) -> R<TcpSpec> {
        // Optional explicit ports `src>dst`.
        let mut ports = None;
        if self.peek().is_some_and(|c| c.is_ascii_digit()) {
            let save = self.pos;
            let digits = self.rest().find(|c: char| !c.is_ascii_digit()).unwrap_or(0);
            if self.rest()[digits..].starts_with('>') {
                let (a, sa) = self.uint("a port")?;
                self.eat(">");
                let (b, sb) = self.uint("a port")?;
                let a = u16::try_from(a).map_err(|_| self.err(sa, "port out of range", "not a port"))?;
                let b = u16::try_from(b).map_err(|_| self.err(sb, "port out of range", "not a port"))?;
                ports = Some((a, b));
                self.skip_ws()?;
            } else {
                self.pos = save;
            }
        }
        let fstart = self.pos;
        while self.peek().is_some_and(|c| !c.is_whitespace()) {
            self.bump();
        }
        let raw = &self.src[fstart..self.pos];
        let flags_span = Span::new(fstart, self.pos);
        let flags = normalize_flags(raw).map_err(|bad| {
            self.err(flags_span, format!("bad TCP flags {raw:?}"), format!("{bad:?} is not a flag")).with_help(
                "flags are F S R P . U E W A (. is ACK; p: PSH either way), or - for none; e.g. S. for a SYN-ACK",
            )
        })?;
        self.skip_ws()?;
        let sstart = self.pos;
        let seq = if self.eat("...") {
            None
        } else {
            let (start_seq, _) = self.u32_("a sequence number (start:end(len))")?;
            self.expect(":", ": in start:end(len)")?;
            let (end_seq, _) = self.u32_("the end sequence number")?;
            self.skip_ws()?;
            if self.peek() != Some('(') {
                return Err(self.expected("(len) after start:end"));
            }
            let save = self.pos;
            self.bump();
            let (len, _) = self.u32_("a payload length")?;
            self.expect(")", ")")?;
            if end_seq.wrapping_sub(start_seq) != len {
                return Err(self
                    .err(
                        Span::new(sstart, self.pos),
                        format!(
                            "inconsistent sequence numbers: {start_seq}:{end_seq} covers {} bytes, not {len}",
                            end_seq.wrapping_sub(start_seq)
                        ),
                        "end - start must equal len",
                    )
                    .with_help(format!("write {start_seq}:{}({len})", start_seq.wrapping_add(len))));
            }
            self.pos = save;
            Some(start_seq)
        };
        self.expect("(", "(len)")?;
        let (len, _) = self.u32_("a payload length")?;
        self.expect(")", ")")?;
        let seq_span = Span::new(sstart, self.pos);
        let mut t = TcpSpec {
            ports,
            flags,
            flags_span,
            seq,
            len,
            seq_span,
            ack: None,
            win: None,
            urg: None,
            options: None,
            bad_csum: false,
        };
        loop {
            self.skip_blanks();
            let save = self.pos;
            if self.at("//") || self.at("/*") || matches!(self.peek(), None | Some('\n')) {
                break;
            }
            if self.peek() == Some('<') {
                t.options = Some(self.options()?);
                continue;
            }
            let Some((word, span)) = self.ident() else { break };
            if word == "bad_csum" {
                if direction == Direction::Outbound {
                    return Err(self
                        .err(span, "bad_csum only goes on inbound packets", "on an outbound packet")
                        .with_help("bad_csum makes tcpdrill send a wrong checksum; what the stack sends is checked"));
                }
                t.bad_csum = true;
                continue;
            }
            let slot = match word.as_str() {
                "ack" => &mut t.ack,
                "win" => &mut t.win,
                "urg" => &mut t.urg,
                _ => {
                    self.pos = save;
                    let mut e = self.err(span, format!("unexpected {word:?} in a TCP packet"), "not a packet field");
                    if let Some(n) = nearest(&word, ["ack", "win", "urg"]) {
                        e = e.with_help(format!("did you mean {n}?"));
                    } else {
                        e = e.with_help("after seq:end(len) come ack N, win N, urg N, <options> and bad_csum");
                    }
                    return Err(e);
                }
            };
            let (v, vspan) = self.u32_(&format!("a number after {word}"))?;
            if slot.replace(v).is_some() {
                return Err(self.err(vspan, format!("{word} given twice"), "again"));
            }
        }
        Ok(t)
    }

    fn options(&mut self) -> R<Options> {
        let start = self.pos;
        self.bump(); // <
        self.skip_ws()?;
        if self.eat("...") {
            self.expect(">", "> after <...")?;
            return Ok(Options::Any);
        }
        let mut opts = Vec::new();
        loop {
            self.skip_ws()?;
            if self.eat(">") {
                break;
            }
            if !opts.is_empty() {
                if !self.eat(",") {
                    return Err(self.expected(", or > in the option list"));
                }
                self.skip_ws()?;
            }
            opts.push(self.option()?);
        }
        Ok(Options::List(opts, Span::new(start, self.pos)))
    }

    fn option(&mut self) -> R<TcpOpt> {
        let (name, span) = self.ident().ok_or_else(|| self.expected("a TCP option"))?;
        let byte = |p: &mut Self, what: &str| -> R<u8> {
            let (v, s) = p.uint(what)?;
            u8::try_from(v).map_err(|_| p.err(s, format!("{what} must be below 256"), "too large"))
        };
        Ok(match name.as_str() {
            "nop" => TcpOpt::Nop,
            "eol" => TcpOpt::Eol,
            "sackOK" => TcpOpt::SackOk,
            "mss" => {
                let (v, s) = self.uint("an MSS value")?;
                TcpOpt::Mss(u16::try_from(v).map_err(|_| self.err(s, "MSS must fit 16 bits", "too large"))?)
            }
            "wscale" => TcpOpt::WScale(byte(self, "a window scale shift")?),
            "sack" => {
                let mut blocks = Vec::new();
                loop {
                    self.skip_blanks();
                    if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                        break;
                    }
                    let (l, _) = self.u32_("a SACK block start")?;
                    self.expect(":", ": in a SACK block")?;
                    let (r, _) = self.u32_("a SACK block end")?;
                    blocks.push((l, r));
                }
                if blocks.len() > 4 {
                    return Err(self.err(span, "at most 4 SACK blocks fit in a TCP header", "too many blocks"));
                }
                TcpOpt::Sack(blocks)
            }
            "TS" => {
                self.skip_ws()?;
                self.ident().filter(|(w, _)| w == "val").ok_or_else(|| self.expected("val after TS"))?;
                let val = self.num_or_ellipsis("a TSval")?;
                self.skip_ws()?;
                self.ident().filter(|(w, _)| w == "ecr").ok_or_else(|| self.expected("ecr in TS val N ecr N"))?;
                let ecr = self.num_or_ellipsis("a TSecr")?;
                TcpOpt::Ts { val, ecr }
            }
            "FO" | "FOEXP" | "md5" => {
                self.skip_blanks();
                let s = self.pos;
                // A cookie may be a `-D` symbol (upstream's TFO scripts: `FOEXP TFO_COOKIE`, run with
                // `-D TFO_COOKIE=3021b9d1a1f2ed64`), given in hex like one written out.
                let bytes = if let Some(v) = self.defined_value() {
                    let v = v.trim();
                    crate::hex::decode(v.strip_prefix("0x").unwrap_or(v)).map_err(|e| {
                        self.err(Span::new(s, self.pos), format!("bad cookie in this symbol's value {v:?}: {e}"), "-D")
                    })?
                } else {
                    let _ = self.eat("0x") || self.eat("0X");
                    while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                        self.bump();
                    }
                    if self.peek().is_some_and(is_ident_char) {
                        // A word, not hex: most likely a -D symbol the command line did not define.
                        let word_end =
                            self.rest().find(|c: char| !is_ident_char(c)).map_or(self.src.len(), |n| self.pos + n);
                        let span = Span::new(s, word_end);
                        return Err(self
                            .err(
                                span,
                                format!("{name} wants a hex cookie, found {:?}", &self.src[s..word_end]),
                                "not hex",
                            )
                            .with_help(format!("define it on the command line: -D {}=<hex>", &self.src[s..word_end])));
                    }
                    let hex = &self.src[s..self.pos];
                    crate::hex::decode(hex)
                        .map_err(|e| self.err(Span::new(s, self.pos), format!("bad cookie: {e}"), "hex bytes"))?
                };
                match name.as_str() {
                    "FO" => TcpOpt::FastOpen(bytes),
                    "FOEXP" => TcpOpt::FastOpenExp(bytes),
                    _ => TcpOpt::Md5(bytes),
                }
            }
            "bytes" => {
                self.skip_blanks();
                let s = self.pos;
                if !self.eat("0x") {
                    return Err(self.err(Span::new(s, s + 1), "expected 0x and hex bytes after bytes", "here"));
                }
                let h = self.pos;
                while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                    self.bump();
                }
                let data = crate::hex::decode(&self.src[h..self.pos])
                    .map_err(|e| self.err(Span::new(s, self.pos), format!("bad option bytes: {e}"), "hex bytes"))?;
                TcpOpt::Bytes(data)
            }
            "opt" => {
                let kind = byte(self, "an option kind")?;
                self.skip_blanks();
                let mut data = Vec::new();
                if self.eat("0x") {
                    let s = self.pos;
                    while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                        self.bump();
                    }
                    data = crate::hex::decode(&self.src[s..self.pos])
                        .map_err(|e| self.err(Span::new(s, self.pos), format!("bad option data: {e}"), "hex bytes"))?;
                }
                TcpOpt::Raw { kind, data }
            }
            _ => {
                let mut e = self.err(span, format!("unknown TCP option {name:?}"), "not an option");
                e = match nearest(&name, OPTION_NAMES.iter().copied()) {
                    Some(n) => e.with_help(format!("did you mean {n}?")),
                    None => e.with_help(format!("known options: {}", OPTION_NAMES.join(", "))),
                };
                return Err(e);
            }
        })
    }

    fn num_or_ellipsis(&mut self, what: &str) -> R<Option<u32>> {
        self.skip_ws()?;
        if self.eat("...") {
            Ok(None)
        } else {
            Ok(Some(self.u32_(what)?.0))
        }
    }

    // ---- syscalls ----------------------------------------------------------------------------------------

    fn syscall(&mut self) -> R<Syscall> {
        let (name, name_span) = self.ident().ok_or_else(|| self.expected("a syscall name"))?;
        self.skip_ws()?;
        if self.peek() != Some('(') {
            return Err(self.expected(&format!("( after {name}")));
        }
        let args = self.call_args()?;
        self.expect("=", "= and the expected result")?;
        self.skip_ws()?;
        let result = self.expr()?;
        let mut errno = None;
        let mut note = None;
        self.skip_blanks();
        if self.peek().is_some_and(|c| c == 'E') {
            let (e, span) = self.ident().ok_or_else(|| self.expected("an errno name"))?;
            errno = Some((e, span));
            self.skip_blanks();
        }
        if self.peek() == Some('(') {
            let s = self.pos;
            let mut depth = 0;
            let mut close = None;
            while let Some(c) = self.bump() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            close = Some(self.pos - 1);
                            break;
                        }
                    }
                    '\n' => break,
                    _ => {}
                }
            }
            // Found by the script_parse fuzzer: a note running to the end of the line or file has no `)` to
            // slice up to (and the byte before the end may sit inside a multi-byte character).
            let Some(close) = close else {
                return Err(self
                    .err(Span::new(s, s + 1), "unclosed ( in the result note", "opened here")
                    .with_help("close the note with ), e.g. = -1 ECONNREFUSED (Connection refused)"));
            };
            note = Some(self.src[s + 1..close].to_string());
        }
        Ok(Syscall { name, name_span, args, result, errno, note })
    }

    fn call_args(&mut self) -> R<Vec<Expr>> {
        self.bump(); // (
        let mut args = Vec::new();
        loop {
            self.skip_ws()?;
            if self.eat(")") {
                return Ok(args);
            }
            if !args.is_empty() {
                if !self.eat(",") {
                    return Err(self.expected(", or ) in the argument list"));
                }
                self.skip_ws()?;
            }
            args.push(self.expr()?);
        }
    }

    fn expr(&mut self) -> R<Expr> {
        if self.depth >= MAX_NESTING {
            let at = Span::new(self.pos, (self.pos + 1).min(self.src.len()));
            return Err(self
                .err(at, format!("this argument nests more than {MAX_NESTING} levels deep"), "too deep")
                .with_help("packetdrill's arguments nest a few levels ([{...}]); flatten this one"));
        }
        self.depth += 1;
        let e = self.or_expr();
        self.depth -= 1;
        e
    }

    fn or_expr(&mut self) -> R<Expr> {
        let first = self.primary()?;
        let mut parts = vec![first];
        loop {
            let save = self.pos;
            self.skip_ws()?;
            if self.eat("|") {
                self.skip_ws()?;
                parts.push(self.primary()?);
            } else {
                self.pos = save;
                break;
            }
        }
        if parts.len() == 1 {
            return Ok(parts.pop().expect("one part"));
        }
        let span = parts[0].span.to(parts[parts.len() - 1].span);
        Ok(Expr { kind: ExprKind::Or(parts), span })
    }

    fn primary(&mut self) -> R<Expr> {
        self.skip_ws()?;
        let start = self.pos;
        let kind = match self.peek() {
            Some('.') if self.at("...") => {
                self.pos += 3;
                ExprKind::Ellipsis
            }
            Some('-') => {
                self.bump();
                let (v, s) = self.uint("a number after -")?;
                let v = i64::try_from(v).map_err(|_| self.err(s, "number out of range", "too large"))?;
                ExprKind::Int(-v)
            }
            Some(c) if c.is_ascii_digit() => {
                let (v, s) = self.uint("a number")?;
                ExprKind::Int(i64::try_from(v).map_err(|_| self.err(s, "number out of range", "too large"))?)
            }
            Some('"') => {
                self.bump();
                let mut out = String::new();
                loop {
                    match self.bump() {
                        None | Some('\n') => {
                            return Err(self.err(Span::new(start, self.pos), "unterminated string", "opened here"))
                        }
                        Some('"') => break,
                        Some('\\') => match self.bump() {
                            Some('n') => out.push('\n'),
                            Some('t') => out.push('\t'),
                            Some('0') => out.push('\0'),
                            Some(c) => out.push(c),
                            None => return Err(self.err(Span::new(start, self.pos), "unterminated string", "here")),
                        },
                        Some(c) => out.push(c),
                    }
                }
                ExprKind::Str(out)
            }
            Some('[') => {
                self.bump();
                let mut items = Vec::new();
                loop {
                    self.skip_ws()?;
                    if self.eat("]") {
                        break;
                    }
                    if !items.is_empty() {
                        if !self.eat(",") {
                            return Err(self.expected(", or ] in the list"));
                        }
                        self.skip_ws()?;
                    }
                    items.push(self.expr()?);
                }
                ExprKind::List(items)
            }
            Some('{') => {
                self.bump();
                let mut fields = Vec::new();
                loop {
                    self.skip_ws()?;
                    if self.eat("}") {
                        break;
                    }
                    if !fields.is_empty() {
                        if !self.eat(",") {
                            return Err(self.expected(", or } in the struct"));
                        }
                        self.skip_ws()?;
                    }
                    let first = self.expr()?;
                    let save = self.pos;
                    self.skip_ws()?;
                    if self.eat("=") {
                        let value = self.expr()?;
                        fields.push((Some(first), value));
                    } else {
                        self.pos = save;
                        fields.push((None, first));
                    }
                }
                ExprKind::Struct(fields)
            }
            Some(c) if is_ident_start(c) => {
                let (name, span) = self.ident().expect("starts an identifier");
                if let Some(v) = self.defines.get(&name).filter(|v| !v.is_empty()) {
                    // `-D NAME=value`: the value stands where the name is written.
                    let sub = ParseOptions::default();
                    let mut p = Parser {
                        src: v,
                        pos: 0,
                        file: self.file.clone(),
                        source: Arc::from(v.as_str()),
                        defines: &sub.defines,
                        depth: self.depth,
                    };
                    let mut e = p
                        .expr()
                        .map_err(|_| self.err(span, format!("-D {name}={v:?} is not an expression"), "defined here"))?;
                    e.span = span;
                    return Ok(e);
                }
                // A call is written `htons(8080)`, the parenthesis touching the name: `= SYMBOL (text)` is a
                // result followed by its note (found by the print/parse property test).
                if self.peek() == Some('(') {
                    ExprKind::Call(name, self.call_args()?)
                } else {
                    ExprKind::Symbol(name)
                }
            }
            _ => return Err(self.expected("an expression (number, symbol, \"string\", [list], {struct} or ...)")),
        };
        Ok(Expr { kind, span: Span::new(start, self.pos) })
    }
}

/// Validates flag letters and writes them in packetdrill's order (F S R P . U E W A), `-` for none.
pub fn normalize_flags(raw: &str) -> Result<String, char> {
    // `p` is tcpdrill's "PSH either way" for outbound packets: RFC 9293 leaves PSH to the sender except on the
    // last segment of the queued data (MUST-61), so portable scripts may wildcard it on the others.
    // The stack's letters (TcpFlags::TABLE), in their order, with `p` beside `P`; no allocation but the result,
    // as this runs for every packet line.
    let known = |c: char| c == 'p' || TcpFlags::TABLE.iter().any(|&(_, l, _)| l == c);
    if raw.contains('P') && raw.contains('p') {
        return Err('p');
    }
    if raw == "-" {
        return Ok("-".to_string());
    }
    if raw.is_empty() {
        return Err(' ');
    }
    if let Some(bad) = raw.chars().find(|c| !known(*c)) {
        return Err(bad);
    }
    let mut out = String::with_capacity(raw.len());
    for &(_, l, _) in &TcpFlags::TABLE {
        if raw.contains(l) {
            out.push(l);
        }
        if l == 'P' && raw.contains('p') {
            out.push('p');
        }
    }
    Ok(out)
}

/// Seconds with up to six decimals, trailing zeros dropped (`0`, `0.1`, `1.000001`).
pub fn fmt_secs(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    let (s, f) = (m / 1_000_000, m % 1_000_000);
    if f == 0 {
        format!("{sign}{s}")
    } else {
        let frac = format!("{f:06}");
        format!("{sign}{s}.{}", frac.trim_end_matches('0'))
    }
}
