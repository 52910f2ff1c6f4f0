//! `--html DIR`: a static report a person opens in a browser, with nothing to fetch at view time (styles inline,
//! no script). Per run: the ladder diagram as SVG (tcpdrill on the left, the stack on the right, each segment an
//! arrow sloping down with time and labelled in packetdrill notation, the stack's calls and states beside its
//! timeline, a failure in red with the expected and actual packets) and the script's text, its requirement tags
//! linked to their RFC sections and the failing line marked. `index.html` lists every run.

use super::formats::Record;
use crate::run::trace::{secs, Trace, TraceEntry};
use crate::run::{Failure, Verdict};

/// Escapes text for HTML and SVG.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// `s` cut to `n` characters, with an ellipsis where it was cut.
fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

// The ladder's geometry, in pixels: the two timelines, the gutter of times, the column of the stack's calls and
// states, and the monospace font's advance (12 px DejaVu Sans Mono: 7.2 px).
const TIME_X: usize = 8;
const LEFT_X: usize = 150;
const RIGHT_X: usize = 790;
const NOTE_X: usize = 806;
const WIDTH: usize = 1180;
const CHAR: f64 = 7.3;
/// How far an arrow falls from one timeline to the other, so that it reads as taking time.
const DROP: usize = 16;

/// The ladder of `trace` as an SVG document: `peer` and `stack` label the timelines, and `failure` (if any) is
/// drawn in red below the last arrow.
pub fn ladder_svg(trace: &Trace, peer: &str, stack: &str, failure: Option<&Failure>) -> String {
    let arrow_chars = ((RIGHT_X - LEFT_X - 20) as f64 / CHAR) as usize;
    let note_chars = ((WIDTH - NOTE_X - 8) as f64 / CHAR) as usize;
    let mut body = String::new();
    let mut y = 70usize;
    let mut last_t: Option<i64> = None;
    // In time order: a backend may hand over a packet after later events (one the script expected later), and
    // an arrow must not run back up the page.
    let mut entries: Vec<&TraceEntry> = trace.entries.iter().collect();
    entries.sort_by_key(|e| e.time());
    for e in entries {
        let t = e.time();
        if let Some(prev) = last_t.filter(|p| t - p >= 1_000_000) {
            // A long wait: a gap in the timelines, with how long.
            body.push_str(&format!(
                "<text x=\"{}\" y=\"{}\" class=\"gap\">⋮ {:.1} s later</text>\n",
                (LEFT_X + RIGHT_X) / 2 - 40,
                y + 4,
                (t - prev) as f64 / 1e6
            ));
            y += 22;
        }
        last_t = Some(t);
        let time = format!("<text x=\"{TIME_X}\" y=\"{}\" class=\"time\">{}</text>\n", y + 4, esc(&secs(t)));
        match e {
            TraceEntry::Inbound { text, .. } | TraceEntry::Outbound { text, .. } => {
                let inbound = matches!(e, TraceEntry::Inbound { .. });
                let (x1, x2) = if inbound { (LEFT_X, RIGHT_X) } else { (RIGHT_X, LEFT_X) };
                let class = if inbound { "in" } else { "out" };
                body.push_str(&time);
                body.push_str(&format!(
                    "<g class=\"{class}\"><title>{}</title><line x1=\"{x1}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{}\" \
                     marker-end=\"url(#head-{class})\"/>\n<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text></g>\n",
                    esc(text),
                    y + DROP,
                    (LEFT_X + RIGHT_X) / 2,
                    y - 2,
                    esc(&cut(text, arrow_chars)),
                ));
                y += DROP + 22;
            }
            TraceEntry::Call { text, .. } => {
                body.push_str(&time);
                body.push_str(&format!(
                    "<text x=\"{NOTE_X}\" y=\"{}\" class=\"call\"><title>{}</title>{}</text>\n",
                    y + 4,
                    esc(text),
                    esc(&cut(text, note_chars))
                ));
                y += 20;
            }
            TraceEntry::State { from, to, .. } => {
                let label = format!("{} → {}", from.rfc_name(), to.rfc_name());
                let w = (label.chars().count() as f64 * CHAR) as usize + 12;
                body.push_str(&time);
                body.push_str(&format!(
                    "<g class=\"state\"><rect x=\"{NOTE_X}\" y=\"{}\" width=\"{w}\" height=\"18\" rx=\"9\"/>\
                     <text x=\"{}\" y=\"{}\">{}</text></g>\n",
                    y - 9,
                    NOTE_X + 6,
                    y + 4,
                    esc(&label)
                ));
                y += 24;
            }
            TraceEntry::Note { text, .. } => {
                body.push_str(&time);
                body.push_str(&format!(
                    "<text x=\"{NOTE_X}\" y=\"{}\" class=\"note\"><title>{}</title># {}</text>\n",
                    y + 4,
                    esc(text),
                    esc(&cut(text, note_chars.saturating_sub(2)))
                ));
                y += 20;
            }
        }
    }
    let axis_end = y;
    if let Some(f) = failure {
        y += 8;
        let lines: Vec<String> =
            std::iter::once(format!("line {}: {}", f.line, headline(f))).chain(f.details.iter().cloned()).collect();
        let h = 14 + 18 * lines.len();
        body.push_str(&format!(
            "<g class=\"fail\"><rect x=\"{LEFT_X}\" y=\"{y}\" width=\"{}\" height=\"{h}\" rx=\"4\"/>\n",
            WIDTH - LEFT_X - 8
        ));
        let fail_chars = ((WIDTH - LEFT_X - 24) as f64 / CHAR) as usize;
        for (i, l) in lines.iter().enumerate() {
            body.push_str(&format!(
                "<text x=\"{}\" y=\"{}\"><title>{}</title>{}</text>\n",
                LEFT_X + 8,
                y + 20 + 18 * i,
                esc(l),
                esc(&cut(l, fail_chars))
            ));
        }
        body.push_str("</g>\n");
        y += h;
    }
    let height = y + 20;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" \
         font-family=\"DejaVu Sans Mono, monospace\" font-size=\"12\">\n\
         <style>\n\
         .axis {{ stroke: #333; stroke-width: 2 }}\n\
         .in line {{ stroke: #1f5fa8; stroke-width: 1.5 }} .in text {{ fill: #1f5fa8 }}\n\
         .out line {{ stroke: #2e7d32; stroke-width: 1.5 }} .out text {{ fill: #2e7d32 }}\n\
         .time {{ fill: #777 }} .call {{ fill: #333 }} .note {{ fill: #888; font-style: italic }}\n\
         .gap {{ fill: #999 }} .head {{ font-weight: bold; font-size: 13px }}\n\
         .state rect {{ fill: #fff3cd; stroke: #c9a227 }} .state text {{ fill: #5c4400 }}\n\
         .fail rect {{ fill: #fdecea; stroke: #c62828 }} .fail text {{ fill: #b71c1c }}\n\
         </style>\n\
         <defs>\n\
         <marker id=\"head-in\" markerWidth=\"10\" markerHeight=\"8\" refX=\"9\" refY=\"4\" orient=\"auto\">\
         <path d=\"M0,0 L10,4 L0,8 z\" fill=\"#1f5fa8\"/></marker>\n\
         <marker id=\"head-out\" markerWidth=\"10\" markerHeight=\"8\" refX=\"9\" refY=\"4\" orient=\"auto\">\
         <path d=\"M0,0 L10,4 L0,8 z\" fill=\"#2e7d32\"/></marker>\n\
         </defs>\n\
         <text x=\"{LEFT_X}\" y=\"24\" text-anchor=\"middle\" class=\"head\">tcpdrill</text>\n\
         <text x=\"{LEFT_X}\" y=\"40\" text-anchor=\"middle\" class=\"time\">{}</text>\n\
         <text x=\"{RIGHT_X}\" y=\"24\" text-anchor=\"middle\" class=\"head\">stack under test</text>\n\
         <text x=\"{RIGHT_X}\" y=\"40\" text-anchor=\"middle\" class=\"time\">{}</text>\n\
         <line x1=\"{LEFT_X}\" y1=\"48\" x2=\"{LEFT_X}\" y2=\"{axis_end}\" class=\"axis\"/>\n\
         <line x1=\"{RIGHT_X}\" y1=\"48\" x2=\"{RIGHT_X}\" y2=\"{axis_end}\" class=\"axis\"/>\n\
         {body}</svg>\n",
        esc(peer),
        esc(stack),
    )
}

/// A failure's headline without the `file:line: ` packetdrill puts first.
fn headline(f: &Failure) -> String {
    f.headline.split_once(": ").map_or(f.headline.clone(), |(_, h)| h.to_string())
}

/// The peer's and the stack's addresses in a trace: from its first state change, or its first packet (a backend
/// may report no states).
fn ends(trace: &Trace) -> (String, String) {
    use tcpdrill_stack::wire::{Checksums, TcpDatagram};
    trace
        .entries
        .iter()
        .find_map(|e| match e {
            TraceEntry::State { tuple, .. } => Some((tuple.remote.to_string(), tuple.local.to_string())),
            _ => None,
        })
        .or_else(|| {
            trace.entries.iter().find_map(|e| {
                let (bytes, inbound) = match e {
                    TraceEntry::Inbound { bytes, .. } => (bytes, true),
                    TraceEntry::Outbound { bytes, .. } => (bytes, false),
                    _ => return None,
                };
                let d = TcpDatagram::parse(bytes, Checksums::Ignore).ok()?;
                let src = std::net::SocketAddr::new(d.ip.src_addr(), d.tcp.src_port).to_string();
                let dst = std::net::SocketAddr::new(d.ip.dst_addr(), d.tcp.dst_port).to_string();
                Some(if inbound { (src, dst) } else { (dst, src) })
            })
        })
        .unwrap_or_default()
}

/// A requirement tag's link: RFC 9293 Appendix B's ids and the other RFCs' rules, to their section.
fn requirement_link(id: &str) -> Option<String> {
    let (_, source, summary) = super::coverage::REQUIREMENTS.iter().find(|(i, _, _)| *i == id)?;
    let mut words = source.split_whitespace();
    let (Some("RFC"), Some(num), section) = (words.next(), words.next(), words.next()) else { return None };
    let anchor = section.map(|s| format!("#section-{s}")).unwrap_or_default();
    Some(format!(
        "<a href=\"https://www.rfc-editor.org/rfc/rfc{num}.html{anchor}\" title=\"{}: {}\">{}</a>",
        esc(source),
        esc(summary),
        esc(id)
    ))
}

/// The script's text with line numbers, its requirement tags linked, and line `failed` marked.
fn script_html(text: &str, failed: Option<usize>) -> String {
    let mut out = String::from("<pre class=\"script\">");
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let mut l = esc(line);
        if let Some(rest) = line.trim().strip_prefix("//").map(str::trim) {
            if rest.starts_with("requirement:") {
                for id in super::coverage::tags(line) {
                    if let Some(link) = requirement_link(&id) {
                        l = l.replacen(&esc(&id), &link, 1);
                    }
                }
            }
        }
        let class = if Some(n) == failed { " class=\"failed\"" } else { "" };
        out.push_str(&format!("<span{class} id=\"L{n}\"><i>{n:>4}</i> {l}\n</span>"));
    }
    out.push_str("</pre>");
    out
}

const STYLE: &str = "body { font-family: DejaVu Sans, sans-serif; margin: 24px; color: #222 }\n\
    h1 { font-size: 20px } h2 { font-size: 16px; margin-top: 28px }\n\
    .pass { color: #2e7d32 } .fail { color: #c62828 } .skipped { color: #8d6e00 } .error { color: #c62828 }\n\
    pre.script { font-family: DejaVu Sans Mono, monospace; font-size: 13px; background: #f7f7f7; padding: 8px; }\n\
    pre.script span { display: block } pre.script i { color: #999; font-style: normal }\n\
    pre.script .failed { background: #fdecea; color: #b71c1c; font-weight: bold }\n\
    table { border-collapse: collapse } td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left }\n\
    .why { font-family: DejaVu Sans Mono, monospace; font-size: 13px }";

fn verdict_word(r: &Record) -> (&'static str, String) {
    match &r.result.outcome {
        Err(e) => ("error", e.lines().next().unwrap_or("").to_string()),
        Ok(o) => match &o.verdict {
            Verdict::Pass => ("pass", String::new()),
            Verdict::Fail(f) => ("fail", f.headline.clone()),
            Verdict::Skipped(why) => ("skipped", why.clone()),
        },
    }
}

/// The page of one run.
pub fn run_page(r: &Record, text: &str) -> String {
    let (word, why) = verdict_word(r);
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} on {}</title>\
         <style>{STYLE}</style></head><body>\n<p><a href=\"index.html\">all runs</a></p>\n\
         <h1>{} on {}: <span class=\"{word}\">{word}</span></h1>\n",
        esc(r.name),
        esc(r.backend),
        esc(r.name),
        esc(r.backend)
    );
    if !why.is_empty() {
        out.push_str(&format!("<p class=\"why {word}\">{}</p>\n", esc(&why)));
    }
    let failure: Option<&Failure> = match &r.result.outcome {
        Ok(o) => match &o.verdict {
            Verdict::Fail(f) => Some(f.as_ref()),
            _ => None,
        },
        Err(_) => None,
    };
    if let Ok(o) = &r.result.outcome {
        if !o.trace.entries.is_empty() {
            let (peer, stack) = ends(&o.trace);
            out.push_str("<h2>What happened</h2>\n");
            out.push_str(&ladder_svg(&o.trace, &peer, &stack, failure));
        }
    }
    out.push_str("<h2>The script</h2>\n");
    out.push_str(&script_html(text, failure.map(|f| f.line)));
    out.push_str("\n</body></html>\n");
    out
}

/// A run's page file name: its script's path and backend, made safe.
pub fn page_name(r: &Record) -> String {
    let base: String = r
        .name
        .trim_end_matches(".pkt")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    match r.ip_version {
        Some(v) => format!("{base}.{}.{v}.html", r.backend),
        None => format!("{base}.{}.html", r.backend),
    }
}

/// The index of every run: the summary, and a row per run linking its page (and `suite.html` where written).
pub fn index(records: &[Record], suite: bool) -> String {
    let count = |w: &str| records.iter().filter(|r| verdict_word(r).0 == w).count();
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>tcpdrill results</title>\
         <style>{STYLE}</style></head><body>\n<h1>tcpdrill: {} runs</h1>\n<p><span class=\"pass\">{} passed</span>, \
         <span class=\"fail\">{} failed</span>, <span class=\"skipped\">{} skipped</span>, \
         <span class=\"error\">{} did not run</span>{}</p>\n<table>\n<tr><th>script</th><th>backend</th><th>result</th>\
         <th>time</th><th>why</th></tr>\n",
        records.len(),
        count("pass"),
        count("fail"),
        count("skipped"),
        count("error"),
        if suite { ". <a href=\"suite.html\">The suite's coverage and requirements</a>" } else { "" }
    );
    for r in records {
        let (word, why) = verdict_word(r);
        out.push_str(&format!(
            "<tr><td><a href=\"{}\">{}</a></td><td>{}</td><td class=\"{word}\">{word}</td><td>{:.3} s</td>\
             <td class=\"why\">{}</td></tr>\n",
            esc(&page_name(r)),
            esc(r.name),
            esc(r.backend),
            r.result.wall.as_secs_f64(),
            esc(&cut(&why, 140))
        ));
    }
    out.push_str("</table>\n</body></html>\n");
    out
}

/// Writes `index.html` and a page per run into `dir` (made if missing); the number of pages.
pub fn write(dir: &std::path::Path, records: &[Record]) -> Result<usize, String> {
    write_with(dir, records, false)
}

fn write_with(dir: &std::path::Path, records: &[Record], suite: bool) -> Result<usize, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for r in records {
        let text = super::read_script(&r.result.path).unwrap_or_default();
        let page = dir.join(page_name(r));
        std::fs::write(&page, run_page(r, &text)).map_err(|e| format!("{}: {e}", page.display()))?;
    }
    let index_file = dir.join("index.html");
    std::fs::write(&index_file, index(records, suite)).map_err(|e| format!("{}: {e}", index_file.display()))?;
    Ok(records.len())
}

/// Where each state sits in the state diagram, as in RFC 9293's Figure 5 (column, row).
fn diagram_place(s: tcpdrill_stack::TcpState) -> (usize, usize) {
    use tcpdrill_stack::TcpState::*;
    match s {
        Closed => (1, 0),
        Listen => (1, 1),
        SynReceived => (0, 2),
        SynSent => (2, 2),
        Established => (1, 3),
        FinWait1 => (0, 4),
        CloseWait => (2, 4),
        FinWait2 => (0, 5),
        Closing => (1, 5),
        LastAck => (2, 5),
        TimeWait => (1, 6),
    }
}

/// A heat colour from white (nothing driven) to green (everything the RFC defines driven).
fn heat(fraction: f64) -> String {
    let f = fraction.clamp(0.0, 1.0);
    let mix = |a: f64, b: f64| (a + (b - a) * f).round() as u8;
    format!("#{:02x}{:02x}{:02x}", mix(255.0, 56.0), mix(255.0, 142.0), mix(255.0, 60.0))
}

/// RFC 9293's state diagram with each state coloured by how many of the stimuli RFC 9293 3.10 defines for it
/// the suite drove the reference stack through (the `coverage --transitions` cells), and its main transitions.
pub fn state_diagram_svg(
    cells: &std::collections::BTreeSet<(tcpdrill_stack::TcpState, tcpdrill_stack::coverage::Stimulus)>,
) -> String {
    use tcpdrill_stack::coverage::Stimulus;
    use tcpdrill_stack::TcpState;
    let (bw, bh, gx, gy, x0, y0) = (170usize, 44usize, 250usize, 78usize, 50usize, 20usize);
    let center = |s: TcpState| {
        let (c, r) = diagram_place(s);
        (x0 + c * gx + bw / 2, y0 + r * gy + bh / 2)
    };
    // The transitions of Figure 5, as (from, to, label).
    use TcpState::*;
    let edges: [(TcpState, TcpState, &str); 17] = [
        (Closed, Listen, "passive OPEN"),
        (Closed, SynSent, "active OPEN / snd SYN"),
        (Listen, SynReceived, "rcv SYN / snd SYN,ACK"),
        (Listen, SynSent, "SEND / snd SYN"),
        (SynSent, SynReceived, "rcv SYN / snd ACK"),
        (SynSent, Established, "rcv SYN,ACK / snd ACK"),
        (SynReceived, Established, "rcv ACK of SYN"),
        (SynReceived, FinWait1, "CLOSE / snd FIN"),
        (Established, FinWait1, "CLOSE / snd FIN"),
        (Established, CloseWait, "rcv FIN / snd ACK"),
        (FinWait1, FinWait2, "rcv ACK of FIN"),
        (FinWait1, Closing, "rcv FIN / snd ACK"),
        (CloseWait, LastAck, "CLOSE / snd FIN"),
        (FinWait2, TimeWait, "rcv FIN / snd ACK"),
        (Closing, TimeWait, "rcv ACK of FIN"),
        (LastAck, Closed, "rcv ACK of FIN"),
        (TimeWait, Closed, "2 MSL timeout"),
    ];
    let width = x0 * 2 + 2 * gx + bw + 40;
    let height = y0 * 2 + 6 * gy + bh;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" \
         font-family=\"DejaVu Sans, sans-serif\" font-size=\"12\">\n<defs><marker id=\"tip\" markerWidth=\"10\" \
         markerHeight=\"8\" refX=\"9\" refY=\"4\" orient=\"auto\"><path d=\"M0,0 L10,4 L0,8 z\" fill=\"#555\"/></marker></defs>\n"
    );
    // Labels on a white halo, so that a crossing line does not strike them through.
    let label_at = |x: f64, y: f64, label: &str| {
        format!(
            "<text x=\"{x:.0}\" y=\"{y:.0}\" fill=\"#444\" font-size=\"10\" text-anchor=\"middle\" stroke=\"white\" \
             stroke-width=\"4\" paint-order=\"stroke\">{}</text>",
            esc(label)
        )
    };
    for (from, to, label) in edges {
        let ((x1, y1), (x2, y2)) = (center(from), center(to));
        // The two back to CLOSED go round the outside: straight, they would cross the whole diagram.
        if to == Closed {
            let (cx, cy) = center(Closed);
            let right = from == LastAck;
            let side = if right { width - 10 } else { 10 };
            let (fx, closed_x) = if right { (x1 + bw / 2, cx + bw / 2) } else { (x1 - bw / 2, cx - bw / 2) };
            out.push_str(&format!(
                "<g><title>{}</title><polyline points=\"{fx},{y1} {side},{y1} {side},{cy} {},{cy}\" fill=\"none\" \
                 stroke=\"#555\" marker-end=\"url(#tip)\"/>{}</g>\n",
                esc(label),
                if right { closed_x + 6 } else { closed_x - 6 },
                // Along the side line, turned, where nothing else is written.
                {
                    let (lx, ly) = (if right { side as f64 - 4.0 } else { side as f64 + 12.0 }, (y1 + cy) as f64 / 2.0);
                    label_at(lx, ly, label).replacen(
                        "<text ",
                        &format!("<text transform=\"rotate(-90 {lx:.0} {ly:.0})\" "),
                        1,
                    )
                }
            ));
            continue;
        }
        // From the edge of one box to the edge of the other, along the line between their centres.
        let (dx, dy) = (x2 as f64 - x1 as f64, y2 as f64 - y1 as f64);
        let t = |w: f64, h: f64| {
            let tx = if dx == 0.0 { f64::INFINITY } else { w / 2.0 / dx.abs() };
            let ty = if dy == 0.0 { f64::INFINITY } else { h / 2.0 / dy.abs() };
            tx.min(ty)
        };
        let k = t(bw as f64 + 8.0, bh as f64 + 8.0);
        let (sx, sy) = (x1 as f64 + dx * k, y1 as f64 + dy * k);
        let (ex, ey) = (x2 as f64 - dx * k, y2 as f64 - dy * k);
        // Two arrows meet at ESTABLISHED from above: their labels sit nearer where they start.
        // CLOSED -> SYN-SENT passes by LISTEN: its label goes past it.
        let at = match (from, to) {
            (_, Established) => 0.3,
            (Closed, SynSent) => 0.72,
            _ => 0.5,
        };
        out.push_str(&format!(
            "<g><title>{}</title><line x1=\"{sx:.0}\" y1=\"{sy:.0}\" x2=\"{ex:.0}\" y2=\"{ey:.0}\" stroke=\"#555\" \
             marker-end=\"url(#tip)\"/>{}</g>\n",
            esc(label),
            label_at(sx + (ex - sx) * at, sy + (ey - sy) * at - 3.0, label)
        ));
    }
    for s in TcpState::ALL {
        let defined: Vec<Stimulus> = Stimulus::all().filter(|c| super::coverage::rfc_defined(s, *c)).collect();
        let hit = defined.iter().filter(|c| cells.contains(&(s, **c))).count();
        let (c, r) = diagram_place(s);
        let (x, y) = (x0 + c * gx, y0 + r * gy);
        out.push_str(&format!(
            "<g><title>{}: {hit} of {} stimuli RFC 9293 3.10 defines were driven</title>\
             <rect x=\"{x}\" y=\"{y}\" width=\"{bw}\" height=\"{bh}\" rx=\"6\" fill=\"{}\" stroke=\"#333\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-weight=\"bold\">{}</text>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#333\">{hit}/{} driven</text></g>\n",
            s.rfc_name(),
            defined.len(),
            heat(hit as f64 / defined.len().max(1) as f64),
            x + bw / 2,
            y + 18,
            s.rfc_name(),
            x + bw / 2,
            y + 35,
            defined.len()
        ));
    }
    out.push_str("</svg>\n");
    out
}

/// The state x stimulus matrix as a table: driven cells green, cells RFC 9293 defines but the suite did not
/// drive pale, the rest blank.
fn matrix_html(
    cells: &std::collections::BTreeSet<(tcpdrill_stack::TcpState, tcpdrill_stack::coverage::Stimulus)>,
) -> String {
    use tcpdrill_stack::coverage::Stimulus;
    let cols: Vec<Stimulus> = Stimulus::all().collect();
    let mut out = String::from("<table class=\"matrix\"><tr><th>state</th>");
    for c in &cols {
        out.push_str(&format!("<th>{}</th>", esc(&c.to_string())));
    }
    out.push_str("</tr>\n");
    for s in tcpdrill_stack::TcpState::ALL {
        out.push_str(&format!("<tr><th>{}</th>", s.rfc_name()));
        for c in &cols {
            let (class, mark) = match (cells.contains(&(s, *c)), super::coverage::rfc_defined(s, *c)) {
                (true, _) => ("hit", "✓"),
                (false, true) => ("miss", "·"),
                (false, false) => ("none", ""),
            };
            out.push_str(&format!(
                "<td class=\"{class}\" title=\"{} × {}\">{mark}</td>",
                s.rfc_name(),
                esc(&c.to_string())
            ));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

/// `coverage --html DIR`: the run pages and index of [`write`], and `suite.html`: the requirements report (the
/// markdown `coverage` writes, as a table) and the state diagram and matrix of what the suite drove.
pub fn write_suite(
    dir: &std::path::Path,
    records: &[Record],
    requirements_markdown: &str,
    cells: &std::collections::BTreeSet<(tcpdrill_stack::TcpState, tcpdrill_stack::coverage::Stimulus)>,
) -> Result<usize, String> {
    let n = write_with(dir, records, true)?;
    let mut md = String::new();
    pulldown_cmark::html::push_html(
        &mut md,
        pulldown_cmark::Parser::new_ext(requirements_markdown, pulldown_cmark::Options::ENABLE_TABLES),
    );
    let page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>tcpdrill: the suite</title>\
         <style>{STYLE}\n.matrix td {{ width: 22px; text-align: center }} .matrix .hit {{ background: #388e3c; \
         color: white }} .matrix .miss {{ background: #fff3e0 }} .matrix th {{ font-size: 11px }}</style></head>\
         <body>\n<p><a href=\"index.html\">all runs</a></p>\n<h1>What the suite drove the reference stack \
         through</h1>\n<p>RFC 9293's state diagram (Figure 5): each state by how many of the stimuli RFC 9293 3.10 \
         defines for it some script drove (segment kinds, calls, timers).</p>\n{}\n<h2>State × stimulus</h2>\n{}\n\
         <h2>Requirements</h2>\n{md}\n</body></html>\n",
        state_diagram_svg(cells),
        matrix_html(cells)
    );
    let file = dir.join("suite.html");
    std::fs::write(&file, page).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(n)
}
