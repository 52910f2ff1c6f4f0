//! Hex text to bytes, for `tcpdrill decode` and test fixtures written out from captures.

use std::fmt;

/// Why a hex string did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HexError {
    /// A character that is not a hex digit, with its byte offset in the input.
    BadDigit {
        /// The character.
        ch: char,
        /// Its byte offset in the input.
        offset: usize,
    },
    /// An odd number of hex digits.
    OddLength,
}

impl fmt::Display for HexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HexError::BadDigit { ch, offset } => {
                write!(f, "{ch:?} at offset {offset} is not a hex digit")
            }
            HexError::OddLength => f.write_str("odd number of hex digits"),
        }
    }
}

impl std::error::Error for HexError {}

/// Decodes hex digits, ignoring whitespace, `:` separators and a leading `0x`, so that both tcpdump's `-x`
/// Lower-case hex of `bytes`, two digits each.
pub fn encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// output and `xxd -p` output paste in as they are.
pub fn decode(text: &str) -> Result<Vec<u8>, HexError> {
    let text = text.trim();
    let body = text.strip_prefix("0x").unwrap_or(text);
    let skipped = text.len() - body.len();
    let mut out = Vec::with_capacity(body.len() / 2);
    let mut high: Option<u8> = None;
    for (i, ch) in body.char_indices() {
        if ch.is_whitespace() || ch == ':' {
            continue;
        }
        let d = ch.to_digit(16).ok_or(HexError::BadDigit { ch, offset: i + skipped })? as u8;
        match high.take() {
            None => high = Some(d),
            Some(h) => out.push(h << 4 | d),
        }
    }
    if high.is_some() {
        return Err(HexError::OddLength);
    }
    Ok(out)
}

/// The datagrams in a capture pasted as text, with the line each starts on: `tcpdump -x` / `-xx` / `-X` output
/// (header lines, `0x0000:` offsets and an ASCII column are skipped; offset 0 starts a datagram), `xxd -p`
/// output (wrapped lines join up), or one datagram of hex per line. A datagram ends at a blank line, at a new
/// tcpdump packet, or once it holds the length its IP header gives.
pub fn datagrams(text: &str) -> Vec<(usize, Result<Vec<u8>, String>)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, Vec<u8>)> = None;
    let flush = |cur: &mut Option<(usize, Vec<u8>)>, out: &mut Vec<_>| {
        if let Some((line, bytes)) = cur.take() {
            out.push((line, Ok(bytes)));
        }
    };
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() {
            flush(&mut cur, &mut out);
            continue;
        }
        let (hex, restart) = match tcpdump_offset(line) {
            // tcpdump: at most eight groups of four digits after the offset; the ASCII column of -X follows.
            Some((offset, rest)) => {
                let groups: Vec<&str> = rest
                    .split_whitespace()
                    .take_while(|g| g.len() <= 4 && g.chars().all(|c| c.is_ascii_hexdigit()))
                    .take(8)
                    .collect();
                (groups.concat(), offset == 0)
            }
            None if line.chars().all(|c| c.is_ascii_hexdigit() || c.is_whitespace() || c == ':') => {
                (line.to_string(), false)
            }
            None if line.contains(" IP ") || line.contains(" IP6 ") => {
                // A tcpdump packet line: its bytes follow.
                flush(&mut cur, &mut out);
                continue;
            }
            None => {
                flush(&mut cur, &mut out);
                let bad = line.chars().find(|c| !(c.is_ascii_hexdigit() || c.is_whitespace() || *c == ':'));
                out.push((
                    n,
                    Err(format!("{:?} is not a hex digit, and the line is not tcpdump output", bad.unwrap_or('?'))),
                ));
                continue;
            }
        };
        if restart {
            flush(&mut cur, &mut out);
        }
        match decode(&hex) {
            Ok(bytes) => cur.get_or_insert((n, Vec::new())).1.extend(bytes),
            Err(e) => {
                cur = None;
                out.push((n, Err(e.to_string())));
                continue;
            }
        }
        // A datagram ends where its IP header says; what follows on the line (xxd -p of a capture holds them
        // back to back) starts the next one.
        while let Some((start, b)) = cur.take() {
            match ip_length(&b).filter(|&len| len > 0 && b.len() >= len) {
                Some(len) => {
                    let rest = b[len..].to_vec();
                    out.push((start, Ok(b[..len].to_vec())));
                    cur = (!rest.is_empty()).then_some((n, rest));
                }
                None => {
                    cur = Some((start, b));
                    break;
                }
            }
        }
    }
    flush(&mut cur, &mut out);
    out
}

/// `0x0010:  4500 ...` as (0x10, the rest).
fn tcpdump_offset(line: &str) -> Option<(usize, &str)> {
    let rest = line.strip_prefix("0x")?;
    let (digits, after) = rest.split_once(':')?;
    let offset = usize::from_str_radix(digits, 16).ok()?;
    Some((offset, after))
}

/// The length an IPv4 or IPv6 header says its datagram has, once enough of it is there to say.
fn ip_length(b: &[u8]) -> Option<usize> {
    match b.first()? >> 4 {
        4 if b.len() >= 4 => Some(usize::from(u16::from_be_bytes([b[2], b[3]]))),
        6 if b.len() >= 6 => Some(40 + usize::from(u16::from_be_bytes([b[4], b[5]]))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 40-byte IPv4/TCP SYN (192.0.2.1:8080 > 192.168.0.1:40000).
    const SYN: &str = "45000028000040004006b7c6c0000201c0a800011f909c40000000000000000050022000910f0000";

    #[test]
    fn reads_tcpdump_and_xxd_output() {
        let ok = |text: &str| -> Vec<Vec<u8>> { datagrams(text).into_iter().map(|(_, r)| r.unwrap()).collect() };
        let syn = decode(SYN).unwrap();
        // tcpdump -x: a packet line, then offsets; two packets.
        let groups: Vec<String> = SYN.as_bytes().chunks(4).map(|c| String::from_utf8(c.to_vec()).unwrap()).collect();
        let lines: Vec<String> =
            groups.chunks(8).enumerate().map(|(i, g)| format!("\t0x{:04x}:  {}", i * 16, g.join(" "))).collect();
        let dump = format!("12:00:00.000000 IP 192.0.2.1.8080 > 192.168.0.1.40000: Flags [S]\n{}\n", lines.join("\n"));
        assert_eq!(ok(&format!("{dump}{dump}")), vec![syn.clone(), syn.clone()]);
        // tcpdump -X: the ASCII column is not hex.
        let x = dump.replace(
            "0x0000:  4500 0028 0000 4000 4006 b7c6 c000 0201",
            "0x0000:  4500 0028 0000 4000 4006 b7c6 c000 0201  E..(..@.@.......",
        );
        assert_eq!(ok(&x), vec![syn.clone()]);
        // xxd -p: 60 digits a line; the IP length says where a datagram ends, so two follow each other.
        let xxd = format!("{}\n{}{}\n{}\n", &SYN[..60], &SYN[60..], &SYN[..40], &SYN[40..]);
        assert_eq!(ok(&xxd), vec![syn.clone(), syn.clone()]);
        // One datagram a line, as before.
        assert_eq!(ok(&format!("{SYN}\n{SYN}\n")), vec![syn.clone(), syn]);
        // Garbage is an error on its line.
        let got = datagrams(&format!("{SYN}\nhello world\n1 hello\n"));
        assert_eq!(got[1].0, 2);
        assert!(got[1].1.as_ref().unwrap_err().contains("not a hex digit"));
        assert_eq!(got[2].0, 3, "a line starting with a digit is no tcpdump packet line");
    }

    #[test]
    fn decodes_with_separators() {
        assert_eq!(decode("0x45 00:0a\nFF").unwrap(), vec![0x45, 0x00, 0x0a, 0xff]);
    }

    #[test]
    fn reports_bad_digit_offset() {
        assert_eq!(decode("45 0g").unwrap_err(), HexError::BadDigit { ch: 'g', offset: 4 });
        assert_eq!(decode("450").unwrap_err(), HexError::OddLength);
    }
}
