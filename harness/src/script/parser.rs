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
    &["nop", "eol", "mss", "wscale", "sackOK", "sack", "TS", "FO", "FOEXP", "md5", "ECN", "opt", "bytes"];

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
            // ASCII whitespace, nearly all there is, a byte at a time; the rest below.
            while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.src.as_bytes().get(self.pos) {
                self.pos += 1;
            }
            match self.peek() {
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some('/') if self.peek2() == Some('/') => {
                    self.pos += self.rest().find('\n').unwrap_or(self.rest().len());
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
        let mut outer = Vec::new();
        // Outer headers are rare: look for one only where a word that starts one could stand.
        while matches!(self.peek(), Some('i' | 'g' | 'm')) {
            let Some(e) = self.encap()? else { break };
            outer.push(e);
            self.skip_ws()?;
        }
        let ip = if matches!(self.peek(), Some('[' | '(')) { self.ip_info()? } else { IpInfo::default() };
        let body = if self.at_word("udp") {
            self.pos += 3;
            self.skip_ws()?;
            let ports = self.opt_ports()?;
            self.expect("(", "( after udp")?;
            let (len, lspan) = self.u32_("a UDP payload length")?;
            if len > 0xffff {
                return Err(self.err(lspan, "UDP payload size out of range", "above 65535"));
            }
            // packetdrill's new_udp_packet: at most 64 KiB with the headers (IPv4's 20 bytes here; IPv6's 40
            // leave 20 fewer, which packetdrill checks once it knows the address family).
            if len + 8 + 20 > 64 * 1024 {
                return Err(self.err(lspan, "UDP datagram too large", "over 64 KiB with its headers"));
            }
            self.expect(")", ")")?;
            PacketBody::Udp { ports, len }
        } else if self.at_word("icmp") {
            self.pos += 4;
            PacketBody::Icmp(self.icmp()?)
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
            if matches!(ip.tos, Some(Tos::Ecn(Ecn::Ect01)) | Some(Tos::Dscp { ect01: true, .. })) {
                return Err(self
                    .err(Span::new(start, self.pos), "[ect01] can only be used with outbound packets", "inbound")
                    .with_help("an inbound packet carries one codepoint: write ect0 or ect1"));
            }
        }
        if matches!(body, PacketBody::Udp { .. }) && matches!(ip.tos, Some(Tos::Ecn(_))) {
            return Err(self
                .err(Span::new(start, self.pos), "ECN can only be used with TCP packets", "a UDP packet")
                .with_help("packetdrill's grammar allows tos 0x.. on UDP, not an ECN mark"));
        }
        Ok(Packet { direction, outer, ip, body, span: Span::new(start, self.pos) })
    }

    /// Whether the word `w` (and not a longer identifier) stands at the cursor.
    fn at_word(&self, w: &str) -> bool {
        self.at(w) && !self.rest()[w.len()..].starts_with(is_ident_char)
    }

    /// `N>M` ports, if written.
    fn opt_ports(&mut self) -> R<Option<(u16, u16)>> {
        if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
            return Ok(None);
        }
        let digits = self.rest().find(|c: char| !c.is_ascii_digit()).unwrap_or(0);
        if !self.rest()[digits..].trim_start_matches([' ', '\t']).starts_with('>') {
            return Ok(None);
        }
        let (a, sa) = self.uint("a port")?;
        self.expect(">", ">")?;
        let (b, sb) = self.uint("a port")?;
        let a = u16::try_from(a).map_err(|_| self.err(sa, "src port out of range", "not a port"))?;
        let b = u16::try_from(b).map_err(|_| self.err(sb, "dst port out of range", "not a port"))?;
        self.skip_ws()?;
        Ok(Some((a, b)))
    }

    /// nplab's `/udp(src>dst)`: the UDP header a TCP (or SCTP) packet is tunnelled in.
    fn opt_udp_encap(&mut self) -> R<Option<(u16, u16)>> {
        self.skip_blanks();
        if !(self.at("/") && self.rest()[1..].trim_start_matches([' ', '\t', '\r']).starts_with("udp")) {
            return Ok(None);
        }
        self.bump();
        self.skip_blanks();
        self.pos += 3;
        self.expect("(", "( after /udp")?;
        self.skip_ws()?;
        let ports = self.opt_ports()?.ok_or_else(|| self.expected("UDP ports src>dst"))?;
        self.expect(")", ") after the UDP ports")?;
        Ok(Some(ports))
    }

    /// One outer header of packetdrill's `packet_prefix`, if one starts here.
    fn encap(&mut self) -> R<Option<Encap>> {
        if self.at_word("ipv4") || self.at_word("ipv6") {
            let v6 = self.at("ipv6");
            self.pos += 4;
            self.skip_ws()?;
            let ip = if matches!(self.peek(), Some('[' | '(')) { self.ip_info()? } else { IpInfo::default() };
            let (src, _) = self.ip_addr(v6, false)?;
            self.expect(">", "> between the outer addresses")?;
            self.skip_ws()?;
            let (dst, _) = self.ip_addr(v6, true)?;
            self.expect(":", ": after the outer header")?;
            return Ok(Some(match (src, dst) {
                (std::net::IpAddr::V4(src), std::net::IpAddr::V4(dst)) => Encap::Ipv4 { ip, src, dst },
                (std::net::IpAddr::V6(src), std::net::IpAddr::V6(dst)) => Encap::Ipv6 { ip, src, dst },
                _ => unreachable!("ip_addr parses the family asked for"),
            }));
        }
        if self.at_word("gre") {
            self.pos += 3;
            self.skip_blanks();
            let _ = self.eat(",");
            self.skip_ws()?;
            if self.eat(":") {
                return Ok(Some(Encap::Gre(None)));
            }
            let h = self.gre_header()?;
            self.expect(":", ": after the GRE header")?;
            return Ok(Some(Encap::Gre(Some(h))));
        }
        if self.at_word("mpls") {
            self.pos += 4;
            let mut entries = Vec::new();
            loop {
                self.skip_ws()?;
                if self.eat(":") {
                    break;
                }
                if self.peek() != Some('(') {
                    return Err(self.expected("(label N, tc N, [S], ttl N) or : after mpls"));
                }
                entries.push(self.mpls_entry()?);
            }
            return Ok(Some(Encap::Mpls(entries)));
        }
        Ok(None)
    }

    /// An address of the family asked for. The destination of an outer header runs into its `:` (`> 2001:db8::2:`),
    /// which the address does not take, as packetdrill's lexer does not.
    fn ip_addr(&mut self, v6: bool, before_colon: bool) -> R<(std::net::IpAddr, Span)> {
        let start = self.pos;
        let len =
            self.rest().find(|c: char| !(c.is_ascii_hexdigit() || c == ':' || c == '.')).unwrap_or(self.rest().len());
        let mut text = &self.src[start..start + len];
        // `2001:db8::1:` and `2001:db8:::` both end in the header's own `:`.
        if before_colon && text.ends_with(':') {
            let shorter = &text[..text.len() - 1];
            if if v6 {
                shorter.parse::<std::net::Ipv6Addr>().is_ok()
            } else {
                shorter.parse::<std::net::Ipv4Addr>().is_ok()
            } {
                text = shorter;
            }
        }
        let span = Span::new(start, start + text.len());
        let parsed = if v6 {
            text.parse::<std::net::Ipv6Addr>().map(std::net::IpAddr::V6).ok()
        } else {
            text.parse::<std::net::Ipv4Addr>().map(std::net::IpAddr::V4).ok()
        };
        let Some(a) = parsed else {
            let what = if v6 { "an IPv6 address" } else { "an IPv4 address" };
            return Err(self.err(
                if text.is_empty() { self.token_span() } else { span },
                format!("expected {what}"),
                what,
            ));
        };
        self.pos = span.end;
        Ok((a, span))
    }

    /// packetdrill's `gre_header_expression`: `flags [..] sum N off N key N seq N`, commas optional.
    fn gre_header(&mut self) -> R<GreHeader> {
        let word = |p: &mut Self, w: &str| -> R<()> {
            p.skip_ws()?;
            let _ = p.eat(",");
            p.skip_ws()?;
            if p.at_word(w) {
                p.pos += w.len();
                Ok(())
            } else {
                Err(p.expected(&format!("{w} in the GRE header (flags, sum, off, key, seq)")))
            }
        };
        let num = |p: &mut Self, what: &str, max: u64| -> R<u64> {
            let (v, s) = p.uint(what)?;
            if v > max {
                return Err(p.err(s, format!("{what} out of range"), "too large"));
            }
            Ok(v)
        };
        word(self, "flags")?;
        self.skip_ws()?;
        let flags = if self.eat("[") {
            let mut f = 0u16;
            loop {
                self.skip_ws()?;
                let (w, span) = self.ident().ok_or_else(|| self.expected("none, checksum, key or sequence#"))?;
                let bit = match w.as_str() {
                    "none" => 0,
                    "checksum" => GreHeader::CHECKSUM,
                    "key" => GreHeader::KEY,
                    "sequence" if self.eat("#") => GreHeader::SEQUENCE,
                    _ => {
                        return Err(self
                            .err(span, format!("unknown GRE flag {w:?}"), "not a GRE flag")
                            .with_help("GRE flags are none, checksum present, key present, sequence# present"))
                    }
                };
                if bit != 0 {
                    self.skip_ws()?;
                    if !self.at_word("present") {
                        return Err(self.expected("present after the GRE flag"));
                    }
                    self.pos += "present".len();
                }
                f |= bit;
                self.skip_ws()?;
                if self.eat("]") {
                    break;
                }
                self.expect(",", ", or ] in the GRE flags")?;
            }
            f
        } else {
            num(self, "GRE flags", 0xffff)? as u16
        };
        word(self, "sum")?;
        let sum = num(self, "GRE checksum", 0xffff)? as u16;
        word(self, "off")?;
        let off = num(self, "GRE offset", 0xffff)? as u16;
        word(self, "key")?;
        self.skip_ws()?;
        let _ = self.eat("=");
        let key = num(self, "GRE key", u64::from(u32::MAX))? as u32;
        word(self, "seq")?;
        let seq = num(self, "GRE sequence number", u64::from(u32::MAX))? as u32;
        Ok(GreHeader { flags, sum, off, key, seq })
    }

    /// `(label N, tc N, [S], ttl N)`.
    fn mpls_entry(&mut self) -> R<MplsEntry> {
        self.bump(); // (
        let field = |p: &mut Self, w: &str| -> R<(u64, Span)> {
            p.skip_ws()?;
            if !p.at_word(w) {
                return Err(p.expected(&format!("{w} N in the MPLS label stack entry")));
            }
            p.pos += w.len();
            p.uint(&format!("an MPLS {w}"))
        };
        let (label, ls) = field(self, "label")?;
        if label >= 1 << 20 {
            return Err(self.err(ls, "MPLS label out of range for 20 bits", "too large"));
        }
        self.expect(",", ", after the label")?;
        let (tc, ts) = field(self, "tc")?;
        if tc >= 8 {
            return Err(self.err(ts, "MPLS traffic class out of range for 3 bits", "too large"));
        }
        self.expect(",", ", after the traffic class")?;
        self.skip_ws()?;
        let mut bottom = false;
        if self.eat("[") {
            self.skip_ws()?;
            if !self.eat("S") {
                return Err(self.expected("[S] for MPLS label stack bottom"));
            }
            self.expect("]", "] after S")?;
            self.expect(",", ", after [S]")?;
            bottom = true;
        }
        let (ttl, tts) = field(self, "ttl")?;
        let ttl = u8::try_from(ttl).map_err(|_| self.err(tts, "MPLS TTL out of range for 8 bits", "too large"))?;
        self.expect(")", ") after the MPLS label stack entry")?;
        Ok(MplsEntry { label: label as u32, tc: tc as u8, bottom, ttl })
    }

    /// An ICMP type or code name either IP version knows, or packetdrill's `type_N` / `code_N`; which version
    /// is checked when the script runs.
    fn known_icmp_name(&self, w: &str, span: Span, what: &str) -> R<()> {
        let numbered = w.strip_prefix(&format!("{what}_")).is_some_and(|n| n.parse::<u8>().is_ok());
        if numbered || super::icmp::known_names().any(|n| n == w) {
            return Ok(());
        }
        let mut e = self.err(span, format!("bad ICMP {what} {w}"), format!("not an ICMP {what}"));
        e = match nearest(w, super::icmp::known_names()) {
            Some(n) => e.with_help(format!("did you mean {n}? ({what}_N gives a number)")),
            None => e.with_help(format!("write a name packetdrill knows, or {what}_N")),
        };
        Err(e)
    }

    /// packetdrill's `icmp_packet_spec` after `icmp`.
    fn icmp(&mut self) -> R<IcmpSpec> {
        self.skip_blanks();
        let (kind, kspan) =
            self.ident().ok_or_else(|| self.expected("an ICMP type (unreachable, echo_request, ...)"))?;
        self.known_icmp_name(&kind, kspan, "type")?;
        self.skip_blanks();
        let mut spec = IcmpSpec { kind, code: None, mtu: None, id: None, echoed: None };
        if !self.at_word("mtu") && !self.at_word("id") {
            if let Some((code, cspan)) = self.ident() {
                self.known_icmp_name(&code, cspan, "code")?;
                spec.code = Some(code);
            }
        }
        self.skip_blanks();
        if self.at_word("mtu") {
            self.pos += 3;
            spec.mtu = Some(self.u32_("an MTU")?.0);
            self.skip_blanks();
        }
        if self.at_word("id") {
            self.pos += 2;
            let (id, s) = self.u32_("an echo id")?;
            if id > 0xffff {
                return Err(self.err(s, "ICMP echo id out of range for 16 bits", "too large"));
            }
            spec.id = Some(id);
            self.skip_blanks();
        }
        if self.eat("[") {
            self.skip_ws()?;
            let paren_num = |p: &mut Self, what: &str| -> R<u32> {
                p.expect("(", &format!("( and {what}"))?;
                let (v, _) = p.u32_(what)?;
                p.expect(")", ")")?;
                Ok(v)
            };
            let echoed = if self.at_word("udplite") {
                self.pos += 7;
                self.expect("(", "( after udplite")?;
                let (len, _) = self.u32_("a UDPLite payload length")?;
                self.expect(",", ", and the checksum coverage")?;
                let (cov, _) = self.u32_("a UDPLite checksum coverage")?;
                self.expect(")", ")")?;
                Echoed::UdpLite(len, cov)
            } else if self.at_word("udp") {
                self.pos += 3;
                Echoed::Udp(paren_num(self, "a UDP payload length")?)
            } else if self.at_word("raw") {
                self.pos += 3;
                Echoed::Raw(paren_num(self, "a payload length")?)
            } else if self.at_word("sctp") {
                self.pos += 4;
                let tag = paren_num(self, "a verification tag")?;
                Echoed::Sctp { tag, udp_encap: self.opt_udp_encap()? }
            } else {
                let sstart = self.pos;
                let (seq, _) = self.u32_("the quoted packet: start:end(len), udp(N) or raw(N)")?;
                self.expect(":", ": in start:end(len)")?;
                let (end, _) = self.u32_("the end sequence number")?;
                self.expect("(", "(len) after start:end")?;
                let (len, _) = self.u32_("a payload length")?;
                self.expect(")", ")")?;
                if end.wrapping_sub(seq) != len {
                    return Err(self.err(
                        Span::new(sstart, self.pos),
                        "inconsistent TCP sequence numbers and payload size",
                        "end - start must equal len",
                    ));
                }
                Echoed::Tcp { seq, len, udp_encap: self.opt_udp_encap()? }
            };
            self.expect("]", "] after the quoted packet")?;
            spec.echoed = Some(echoed);
        }
        Ok(spec)
    }

    /// packetdrill's `ip_info` in `[...]` or `(...)`: an ECN mark, `tos 0x..`, `flowlabel 0x..`, `ttl N`, and
    /// nplab's forms: `class 0x..` (IPv6's name for the TOS), `hlim N` (the hop limit, its TTL), `ecn MARK`,
    /// `dscp 0x..` or `dscp NAME` (with `, ecn MARK` after it), and up to three fields in the order TOS, flow
    /// label, TTL.
    fn ip_info(&mut self) -> R<IpInfo> {
        const WORDS: [&str; 12] =
            ["noecn", "ect0", "ect1", "ect01", "ce", "ecn", "tos", "class", "dscp", "flowlabel", "ttl", "hlim"];
        let close = if self.bump() == Some('[') { "]" } else { ")" };
        let mut ip = IpInfo::default();
        // 0: nothing yet, 1: a TOS, 2: a flow label, 3: a TTL; each field after the ones before it.
        let mut rank = 0;
        loop {
            self.skip_blanks();
            let (name, span) = self.ident().ok_or_else(|| {
                self.expected("an IP field: an ECN mark (noecn, ect0, ect1, ect01, ce), tos, flowlabel or ttl")
            })?;
            let this = match name.as_str() {
                "noecn" | "ect0" | "ect1" | "ect01" | "ce" | "ecn" | "tos" | "class" | "dscp" => 1,
                "flowlabel" => 2,
                "ttl" | "hlim" => 3,
                _ => 0,
            };
            if this != 0 && this <= rank {
                return Err(self
                    .err(span, "these IP fields do not go together", "here")
                    .with_help("write at most one of each: the TOS (or ECN mark or DSCP), then flowlabel, then ttl"));
            }
            rank = this;
            match name.as_str() {
                "noecn" | "ect0" | "ect1" | "ect01" | "ce" => ip.tos = Some(Tos::Ecn(ecn_mark(&name))),
                "ecn" => ip.tos = Some(Tos::Ecn(self.ecn_word()?)),
                "tos" | "class" => {
                    let (v, vspan) = self.radix_uint(&format!("a {name} value"), 16)?;
                    let v = u8::try_from(v)
                        .map_err(|_| self.err(vspan, format!("{name} out of range for 8 bits"), "out of range"))?;
                    ip.tos = Some(Tos::Byte(v));
                }
                "dscp" => {
                    self.skip_blanks();
                    let dscp = if self.at("0x") || self.at("0X") {
                        let (v, vspan) = self.radix_uint("a DSCP value", 16)?;
                        u8::try_from(v)
                            .ok()
                            .filter(|v| *v < 64)
                            .ok_or_else(|| self.err(vspan, "dscp out of range for 6 bits", "out of range"))?
                    } else {
                        let (w, wspan) =
                            self.ident().ok_or_else(|| self.expected("a DSCP value (0x2e) or name (ef)"))?;
                        dscp_name(&w).ok_or_else(|| {
                            self.err(wspan, format!("unknown DSCP name {w:?}"), "not a DSCP name").with_help(
                                "DSCP names: cs0..cs7, af11..af43, ef, voice_admit, le (RFC 2474, 2597, 3246, 5865, 8622)",
                            )
                        })?
                    };
                    ip.tos = Some(Tos::Dscp { dscp, ect01: false });
                    let save = self.pos;
                    self.skip_blanks();
                    if self.eat(",") {
                        self.skip_blanks();
                        if self.at_word("ecn") {
                            self.pos += 3;
                            match self.ecn_word()? {
                                Ecn::Ect01 => ip.tos = Some(Tos::Dscp { dscp, ect01: true }),
                                e => ip.tos = Some(Tos::Byte(dscp << 2 | e.bits())),
                            }
                        } else {
                            self.pos = save;
                        }
                    } else {
                        self.pos = save;
                    }
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
            if !self.eat(",") {
                break;
            }
        }
        self.expect(close, &format!("{close} after the IP fields"))?;
        self.skip_ws()?;
        Ok(ip)
    }

    /// The mark after nplab's `ecn`.
    fn ecn_word(&mut self) -> R<Ecn> {
        self.skip_blanks();
        match self.ident() {
            Some((w, _)) if matches!(w.as_str(), "noecn" | "ect0" | "ect1" | "ect01" | "ce") => Ok(ecn_mark(&w)),
            Some((w, span)) => Err(self
                .err(span, format!("unknown ECN mark {w:?}"), "not an ECN mark")
                .with_help("ECN marks: noecn, ect0, ect1, ect01, ce")),
            None => Err(self.expected("an ECN mark (noecn, ect0, ect1, ect01, ce)")),
        }
    }

    fn tcp(&mut self, direction: Direction) -> R<TcpSpec> {
        // packetdrill's `encap psp spi N` (PSP, after the IP fields).
        let mut psp_spi = None;
        if self.peek() == Some('e') && self.at_word("encap") {
            self.pos += 5;
            self.skip_ws()?;
            if !self.at_word("psp") {
                return Err(self.expected("psp after encap (the only encapsulation packetdrill names there)"));
            }
            self.pos += 3;
            self.skip_ws()?;
            if !self.at_word("spi") {
                return Err(self.expected("spi N after encap psp"));
            }
            self.pos += 3;
            psp_spi = Some(self.u32_("a PSP SPI")?.0);
            self.skip_ws()?;
        }
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
                "flags are F S R P . U E W A (. is ACK; p: PSH either way), or - for none, e.g. S. for a SYN-ACK; \
                 a digit 0-7 is AccECN's ACE field in place of E W A",
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
            psp_spi,
            udp_encap: None,
        };
        loop {
            self.skip_blanks();
            let save = self.pos;
            if self.at("//") || self.at("/*") || matches!(self.peek(), None | Some('\n')) {
                break;
            }
            if self.at("/") {
                let s = self.pos;
                match self.opt_udp_encap()? {
                    Some(ports) if t.udp_encap.is_none() => t.udp_encap = Some(ports),
                    Some(_) => return Err(self.err(Span::new(s, self.pos), "/udp given twice", "again")),
                    None => return Err(self.expected("/udp(src>dst) (nplab's TCP over UDP)")),
                }
                continue;
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
        let span = Span::new(start, self.pos);
        // packetdrill's new_tcp_packet: the options must fill whole 32-bit words (tcpdrill's `bytes`, made to
        // craft malformed options, is exempt; the stack pads what it is given).
        if !opts.iter().any(|o| matches!(o, TcpOpt::Bytes(_))) {
            let len: usize = opts.iter().map(TcpOpt::wire_len).sum();
            if len % 4 != 0 {
                return Err(self
                    .err(
                        span,
                        format!(
                            "TCP options are not padded correctly to ensure TCP header is a multiple of 4 bytes: \
                             {} excess bytes",
                            len % 4
                        ),
                        format!("{len} bytes of options"),
                    )
                    .with_help(format!("add {} nop option(s)", 4 - len % 4)));
            }
        }
        Ok(Options::List(opts, span))
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
            "ECN" => {
                // AccECN (packetdrill's accecn_option): the first counter's name picks the option kind, then
                // ceb and the other ECT counter may follow, in that order.
                let mut counters = Vec::new();
                let mut order1 = false;
                for (i, first) in [["e0b", "e1b"], ["ceb", "ceb"], ["e1b", "e0b"]].iter().enumerate() {
                    self.skip_blanks();
                    let want = if i == 0 { None } else { Some(first[usize::from(order1)]) };
                    let word = match want {
                        None if self.at_word("e0b") => "e0b",
                        None if self.at_word("e1b") => {
                            order1 = true;
                            "e1b"
                        }
                        None => return Err(self.expected("e0b N or e1b N after ECN (AccECN)")),
                        Some(w) if self.at_word(w) => w,
                        Some(_) => break,
                    };
                    self.pos += word.len();
                    let (v, vs) = self.u32_(&format!("an AccECN {word} counter"))?;
                    if v >= 1 << 24 {
                        return Err(self.err(vs, "AccECN counters are 24 bits", "too large"));
                    }
                    counters.push(v);
                }
                TcpOpt::AccEcn { order1, counters }
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

fn ecn_mark(w: &str) -> Ecn {
    match w {
        "noecn" => Ecn::NoEcn,
        "ect0" => Ecn::Ect0,
        "ect1" => Ecn::Ect1,
        "ect01" => Ecn::Ect01,
        _ => Ecn::Ce,
    }
}

/// The DSCP code points by name: class selectors (RFC 2474), assured forwarding (RFC 2597), expedited
/// forwarding (RFC 3246), VOICE-ADMIT (RFC 5865) and lower effort (RFC 8622).
fn dscp_name(w: &str) -> Option<u8> {
    let v = match w.to_ascii_lowercase().as_str() {
        "ef" => 46,
        "voice_admit" => 44,
        "le" => 1,
        n => {
            if let Some(d) = n.strip_prefix("cs").and_then(|d| d.parse::<u8>().ok()).filter(|d| *d < 8) {
                d << 3
            } else {
                let d = n.strip_prefix("af")?.as_bytes();
                match d {
                    [c @ b'1'..=b'4', p @ b'1'..=b'3'] => ((c - b'0') << 3) | ((p - b'0') << 1),
                    _ => return None,
                }
            }
        }
    };
    Some(v)
}

/// Validates flag letters and writes them in packetdrill's order (F S R P . U E W A), `-` for none.
pub fn normalize_flags(raw: &str) -> Result<String, char> {
    // `p` is tcpdrill's "PSH either way" for outbound packets: RFC 9293 leaves PSH to the sender except on the
    // last segment of the queued data (MUST-61), so portable scripts may wildcard it on the others.
    // The stack's letters (TcpFlags::TABLE), in their order, with `p` beside `P`; no allocation but the result,
    // as this runs for every packet line.
    let known = |c: char| c == 'p' || ('0'..='7').contains(&c) || TcpFlags::TABLE.iter().any(|&(_, l, _)| l == c);
    // packetdrill's ACE field (AccECN, RFC 9768): one digit 0..7 standing for AE, CWR and ECE together, never
    // beside those letters or a second digit.
    let mut digits = raw.chars().filter(char::is_ascii_digit);
    let ace = digits.next();
    if let Some(second) = digits.next() {
        return Err(second);
    }
    if let Some(bad) = ace.and_then(|_| raw.chars().find(|c| matches!(c, 'E' | 'W' | 'A'))) {
        return Err(bad);
    }
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
    out.extend(ace);
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
