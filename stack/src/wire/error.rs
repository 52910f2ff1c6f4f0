//! The typed error of the wire layer: what was wrong with a datagram, precisely enough to print.

use core::fmt;

/// Why a datagram or segment could not be parsed or emitted. Parsing never panics on any byte string; it
/// returns one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WireError {
    /// Fewer bytes than the fixed header needs.
    Truncated {
        /// Which header was cut short.
        what: &'static str,
        /// Bytes the header needs.
        needed: usize,
        /// Bytes that were there.
        got: usize,
    },
    /// The IP version nibble is neither 4 nor 6 (or not the one the caller asked for).
    BadVersion(u8),
    /// IPv4 IHL below 5 or past the end of the datagram.
    BadIhl(u8),
    /// The IP length field disagrees with the buffer (longer than the bytes received, or shorter than the
    /// header it describes).
    BadTotalLength {
        /// Length the header claims.
        claimed: usize,
        /// Bytes actually available.
        available: usize,
    },
    /// TCP data offset below 5 or past the end of the segment.
    BadDataOffset(u8),
    /// The IPv4 header checksum does not verify.
    BadIpChecksum,
    /// The TCP checksum does not verify.
    BadTcpChecksum,
    /// A fragment: tcpdrill does not reassemble IP fragments.
    Fragmented,
    /// The IP payload is not TCP (protocol or next-header value given).
    NotTcp(u8),
    /// An option other than EOL or NOP whose length byte is 0 or 1: RFC 9293 MUST-7 says a receiver must
    /// survive it; we report it rather than loop forever or guess.
    OptionLengthTooSmall {
        /// Option kind.
        kind: u8,
        /// The length byte found.
        len: u8,
    },
    /// An option whose length runs past the end of the TCP header (MUST-7), or whose length byte is missing.
    OptionOverrun {
        /// Option kind.
        kind: u8,
        /// Offset of the option inside the option area.
        offset: usize,
    },
    /// A known option with a length that its definition does not allow (e.g. MSS with length 3).
    BadOptionLength {
        /// Option kind.
        kind: u8,
        /// The length byte found.
        len: u8,
    },
    /// On emit: the options do not fit the 40 bytes a TCP header has room for.
    OptionsTooLong(usize),
    /// On emit: the buffer is smaller than `buffer_len()`.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// On emit: the payload does not fit a 16-bit IP length field.
    PayloadTooLong(usize),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WireError::Truncated { what, needed, got } => {
                write!(f, "truncated {what}: needs {needed} bytes, got {got}")
            }
            WireError::BadVersion(v) => write!(f, "bad IP version {v}"),
            WireError::BadIhl(v) => write!(f, "bad IPv4 header length (IHL {v})"),
            WireError::BadTotalLength { claimed, available } => {
                write!(f, "bad IP length: header says {claimed} bytes, {available} available")
            }
            WireError::BadDataOffset(v) => write!(f, "bad TCP data offset {v}"),
            WireError::BadIpChecksum => f.write_str("bad IPv4 header checksum"),
            WireError::BadTcpChecksum => f.write_str("bad TCP checksum"),
            WireError::Fragmented => f.write_str("IP fragment (fragments are not reassembled)"),
            WireError::NotTcp(p) => write!(f, "not TCP (protocol {p})"),
            WireError::OptionLengthTooSmall { kind, len } => {
                write!(f, "TCP option kind {kind} has length {len} (must be at least 2)")
            }
            WireError::OptionOverrun { kind, offset } => {
                write!(f, "TCP option kind {kind} at option offset {offset} runs past the header")
            }
            WireError::BadOptionLength { kind, len } => {
                write!(f, "TCP option kind {kind} has invalid length {len}")
            }
            WireError::OptionsTooLong(n) => write!(f, "TCP options take {n} bytes, at most 40 fit"),
            WireError::BufferTooSmall { needed, got } => {
                write!(f, "buffer too small: needs {needed} bytes, got {got}")
            }
            WireError::PayloadTooLong(n) => {
                write!(f, "payload of {n} bytes does not fit an IP datagram")
            }
        }
    }
}

impl std::error::Error for WireError {}

/// Shorthand for results of the wire layer.
pub type Result<T> = core::result::Result<T, WireError>;
