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

#[cfg(test)]
mod tests {
    use super::*;

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
