//! TCP segments (RFC 9293 section 3.1): flags, options, a checked zero-copy view and the repr.
//!
//! Options are kept as the exact bytes of the option area ([`TcpOptions`]), with a typed iterator over them.
//! Two reasons: parse -> emit must reproduce the original bytes, padding and odd alignments included (the
//! harness compares what a stack sent with what a script expects, byte for byte), and a repr of fixed size with
//! no heap allocation keeps the parse path fast and the type `Copy`.

use super::checksum;
use super::ipv4::be16;
use super::{Result, WireError};
use crate::seq::SeqNum;
use core::fmt;
use core::net::IpAddr;

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = 20;
/// Most option bytes a header can carry (data offset 15 x 4 - 20).
pub const MAX_OPTIONS_LEN: usize = 40;
/// IP protocol number of TCP.
pub const PROTOCOL: u8 = 6;

/// Option kinds (IANA "TCP Option Kind Numbers").
pub mod kind {
    /// End of option list (RFC 9293).
    pub const EOL: u8 = 0;
    /// No-operation (RFC 9293).
    pub const NOP: u8 = 1;
    /// Maximum segment size (RFC 9293).
    pub const MSS: u8 = 2;
    /// Window scale (RFC 7323).
    pub const WINDOW_SCALE: u8 = 3;
    /// SACK permitted (RFC 2018).
    pub const SACK_PERMITTED: u8 = 4;
    /// SACK blocks (RFC 2018).
    pub const SACK: u8 = 5;
    /// Timestamps (RFC 7323).
    pub const TIMESTAMPS: u8 = 8;
    /// TCP MD5 signature (RFC 2385).
    pub const MD5: u8 = 19;
    /// TCP Fast Open cookie (RFC 7413).
    pub const FAST_OPEN: u8 = 34;
    /// Experimental option (RFC 6994); Fast Open used it with magic 0xF989 before kind 34 was assigned.
    pub const EXPERIMENTAL: u8 = 254;
}

/// The experiment identifier of pre-RFC Fast Open under kind 254 (RFC 6994 ExID).
pub const FAST_OPEN_EXP_MAGIC: u16 = 0xF989;

/// The 12 bits after the data offset: three reserved bits, AE, and the eight classic flags. Reserved bits
/// are kept so that a segment that sets them round-trips and can be shown.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u16);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: TcpFlags = TcpFlags(0x001);
    /// Synchronize sequence numbers.
    pub const SYN: TcpFlags = TcpFlags(0x002);
    /// Reset the connection.
    pub const RST: TcpFlags = TcpFlags(0x004);
    /// Push function.
    pub const PSH: TcpFlags = TcpFlags(0x008);
    /// Acknowledgment field is significant.
    pub const ACK: TcpFlags = TcpFlags(0x010);
    /// Urgent pointer field is significant.
    pub const URG: TcpFlags = TcpFlags(0x020);
    /// ECN-Echo (RFC 3168).
    pub const ECE: TcpFlags = TcpFlags(0x040);
    /// Congestion Window Reduced (RFC 3168).
    pub const CWR: TcpFlags = TcpFlags(0x080);
    /// Accurate ECN (RFC 9768; formerly the NS bit of RFC 3540).
    pub const AE: TcpFlags = TcpFlags(0x100);
    /// The three bits still reserved by RFC 9293.
    pub const RESERVED: TcpFlags = TcpFlags(0xe00);
    /// No flag.
    pub const NONE: TcpFlags = TcpFlags(0);

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }
    /// Whether any bit of `other` is set.
    pub const fn intersects(self, other: TcpFlags) -> bool {
        self.0 & other.0 != 0
    }
    /// FIN set.
    pub const fn fin(self) -> bool {
        self.intersects(Self::FIN)
    }
    /// SYN set.
    pub const fn syn(self) -> bool {
        self.intersects(Self::SYN)
    }
    /// RST set.
    pub const fn rst(self) -> bool {
        self.intersects(Self::RST)
    }
    /// PSH set.
    pub const fn psh(self) -> bool {
        self.intersects(Self::PSH)
    }
    /// ACK set.
    pub const fn ack(self) -> bool {
        self.intersects(Self::ACK)
    }
    /// URG set.
    pub const fn urg(self) -> bool {
        self.intersects(Self::URG)
    }
    /// The bits without the reserved ones.
    pub const fn without_reserved(self) -> TcpFlags {
        TcpFlags(self.0 & !Self::RESERVED.0)
    }

    /// Each flag with packetdrill's letter for it and its name in Linux's `struct tcphdr` (packetdrill's checks
    /// call the field `tcp_<name>`), in the order the notation writes them (`S.` is a SYN-ACK): the one table the
    /// stack's `Display`, the script parser and the executor share.
    pub const TABLE: [(TcpFlags, char, &'static str); 9] = [
        (TcpFlags::FIN, 'F', "fin"),
        (TcpFlags::SYN, 'S', "syn"),
        (TcpFlags::RST, 'R', "rst"),
        (TcpFlags::PSH, 'P', "psh"),
        (TcpFlags::ACK, '.', "ack"),
        (TcpFlags::URG, 'U', "urg"),
        (TcpFlags::ECE, 'E', "ece"),
        (TcpFlags::CWR, 'W', "cwr"),
        (TcpFlags::AE, 'A', "ae"),
    ];

    /// The flags written in packetdrill's letters (`"S."`); other characters (`-`, tcpdrill's `p`) set nothing.
    /// A digit 0..7 is packetdrill's ACE field (AccECN, RFC 9768 section 3.2.2): ECE is its 1 bit, CWR its 2
    /// and AE its 4.
    pub fn from_letters(s: &str) -> TcpFlags {
        let mut f = TcpFlags::NONE;
        for (flag, c, _) in TcpFlags::TABLE {
            if s.contains(c) {
                f |= flag;
            }
        }
        if let Some(ace) = s.chars().find_map(|c| c.to_digit(8)) {
            for (bit, flag) in [(1, TcpFlags::ECE), (2, TcpFlags::CWR), (4, TcpFlags::AE)] {
                if ace & bit != 0 {
                    f |= flag;
                }
            }
        }
        f
    }
}

impl core::ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl core::ops::BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0;
    }
}

/// packetdrill's notation: `F S R P . U E W A` in that order, `-` for none (`S.` is a SYN-ACK). Reserved bits
/// have no letter; they show in `Debug`.
impl fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut any = false;
        for (flag, c, _) in TcpFlags::TABLE {
            if self.contains(flag) {
                fmt::Write::write_char(f, c)?;
                any = true;
            }
        }
        if !any {
            f.write_str("-")?;
        }
        Ok(())
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TcpFlags({self}")?;
        if self.intersects(Self::RESERVED) {
            write!(f, " reserved {:#x}", (self.0 & Self::RESERVED.0) >> 9)?;
        }
        f.write_str(")")
    }
}

/// Up to four SACK blocks (RFC 2018: at most four fit beside nothing else in 40 bytes), each `left:right`
/// with `right` the first sequence number after the block.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SackBlocks {
    blocks: [(SeqNum, SeqNum); 4],
    len: u8,
}

impl SackBlocks {
    /// Builds from a slice; `None` when it holds more than four blocks.
    pub fn new(blocks: &[(SeqNum, SeqNum)]) -> Option<SackBlocks> {
        if blocks.len() > 4 {
            return None;
        }
        let mut s = SackBlocks::default();
        s.blocks[..blocks.len()].copy_from_slice(blocks);
        s.len = blocks.len() as u8;
        Some(s)
    }
    /// The blocks.
    pub fn as_slice(&self) -> &[(SeqNum, SeqNum)] {
        &self.blocks[..usize::from(self.len)]
    }
}

impl fmt::Debug for SackBlocks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice().iter().map(|(l, r)| (l.0, r.0))).finish()
    }
}

/// One TCP option, typed. Borrowed data points into the option bytes it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpOption<'a> {
    /// End of option list (kind 0, one byte).
    Eol,
    /// No-operation (kind 1, one byte), used for alignment.
    Nop,
    /// Maximum segment size (kind 2, length 4).
    Mss(u16),
    /// Window scale shift count (kind 3, length 3). Not clamped here: RFC 7323 clamping to 14 is the
    /// receiver's job, and the harness must be able to send 15.
    WindowScale(u8),
    /// SACK permitted (kind 4, length 2).
    SackPermitted,
    /// SACK blocks (kind 5, length 2 + 8n, 1 <= n <= 4).
    Sack(SackBlocks),
    /// Timestamps (kind 8, length 10).
    Timestamps {
        /// TSval.
        tsval: u32,
        /// TSecr.
        tsecr: u32,
    },
    /// TCP MD5 signature (kind 19, length 18).
    Md5([u8; 16]),
    /// TCP Fast Open cookie, kind 34 (RFC 7413); empty for a cookie request.
    FastOpen(&'a [u8]),
    /// TCP Fast Open cookie under the experimental kind 254 with magic 0xF989.
    FastOpenExp(&'a [u8]),
    /// Any other kind, with the bytes after its length byte.
    Unknown {
        /// Option kind.
        kind: u8,
        /// The option's data (length byte excluded).
        data: &'a [u8],
    },
    /// Non-zero bytes after an EOL. RFC 9293 calls what follows EOL padding, which must be zero, but a
    /// received segment can carry anything there and the bytes are kept so the segment re-emits exactly.
    Padding(&'a [u8]),
}

impl TcpOption<'_> {
    /// Encoded length in bytes.
    pub fn buffer_len(&self) -> usize {
        match self {
            TcpOption::Eol | TcpOption::Nop => 1,
            TcpOption::Mss(_) => 4,
            TcpOption::WindowScale(_) => 3,
            TcpOption::SackPermitted => 2,
            TcpOption::Sack(b) => 2 + 8 * b.as_slice().len(),
            TcpOption::Timestamps { .. } => 10,
            TcpOption::Md5(_) => 18,
            TcpOption::FastOpen(c) => 2 + c.len(),
            TcpOption::FastOpenExp(c) => 4 + c.len(),
            TcpOption::Unknown { data, .. } => 2 + data.len(),
            TcpOption::Padding(p) => p.len(),
        }
    }

    /// Writes the option at the start of `buf` (which must hold `buffer_len()` bytes) and returns its length.
    fn emit(&self, buf: &mut [u8]) -> usize {
        let len = self.buffer_len();
        let tlv = |buf: &mut [u8], k: u8| {
            buf[0] = k;
            buf[1] = len as u8;
        };
        match *self {
            TcpOption::Eol => buf[0] = kind::EOL,
            TcpOption::Nop => buf[0] = kind::NOP,
            TcpOption::Mss(v) => {
                tlv(buf, kind::MSS);
                buf[2..4].copy_from_slice(&v.to_be_bytes());
            }
            TcpOption::WindowScale(s) => {
                tlv(buf, kind::WINDOW_SCALE);
                buf[2] = s;
            }
            TcpOption::SackPermitted => tlv(buf, kind::SACK_PERMITTED),
            TcpOption::Sack(b) => {
                tlv(buf, kind::SACK);
                for (i, (l, r)) in b.as_slice().iter().enumerate() {
                    buf[2 + 8 * i..6 + 8 * i].copy_from_slice(&l.0.to_be_bytes());
                    buf[6 + 8 * i..10 + 8 * i].copy_from_slice(&r.0.to_be_bytes());
                }
            }
            TcpOption::Timestamps { tsval, tsecr } => {
                tlv(buf, kind::TIMESTAMPS);
                buf[2..6].copy_from_slice(&tsval.to_be_bytes());
                buf[6..10].copy_from_slice(&tsecr.to_be_bytes());
            }
            TcpOption::Md5(d) => {
                tlv(buf, kind::MD5);
                buf[2..18].copy_from_slice(&d);
            }
            TcpOption::FastOpen(c) => {
                tlv(buf, kind::FAST_OPEN);
                buf[2..len].copy_from_slice(c);
            }
            TcpOption::FastOpenExp(c) => {
                tlv(buf, kind::EXPERIMENTAL);
                buf[2..4].copy_from_slice(&FAST_OPEN_EXP_MAGIC.to_be_bytes());
                buf[4..len].copy_from_slice(c);
            }
            TcpOption::Unknown { kind: k, data } => {
                tlv(buf, k);
                buf[2..len].copy_from_slice(data);
            }
            TcpOption::Padding(p) => buf[..len].copy_from_slice(p),
        }
        len
    }
}

/// packetdrill's option notation: `mss 1460`, `sackOK`, `TS val 1 ecr 0`, `nop`, `wscale 7`, `eol`,
/// `sack 1:2 3:4`, `FO abcd1234`, `FOEXP abcd1234`, `md5 <hex>`; tcpdrill adds `opt KIND 0xHEX` for other kinds.
impl fmt::Display for TcpOption<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
            bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
        }
        match self {
            TcpOption::Eol => f.write_str("eol"),
            TcpOption::Nop => f.write_str("nop"),
            TcpOption::Mss(v) => write!(f, "mss {v}"),
            TcpOption::WindowScale(s) => write!(f, "wscale {s}"),
            TcpOption::SackPermitted => f.write_str("sackOK"),
            TcpOption::Sack(b) => {
                f.write_str("sack")?;
                b.as_slice().iter().try_for_each(|(l, r)| write!(f, " {l}:{r}"))
            }
            TcpOption::Timestamps { tsval, tsecr } => write!(f, "TS val {tsval} ecr {tsecr}"),
            TcpOption::Md5(d) => {
                f.write_str("md5 ")?;
                hex(f, d)
            }
            TcpOption::FastOpen(c) | TcpOption::FastOpenExp(c) => {
                f.write_str(if matches!(self, TcpOption::FastOpen(_)) { "FO" } else { "FOEXP" })?;
                if !c.is_empty() {
                    f.write_str(" ")?;
                    hex(f, c)?;
                }
                Ok(())
            }
            TcpOption::Unknown { kind, data } => {
                write!(f, "opt {kind}")?;
                if !data.is_empty() {
                    f.write_str(" 0x")?;
                    hex(f, data)?;
                }
                Ok(())
            }
            TcpOption::Padding(p) => {
                f.write_str("padding 0x")?;
                hex(f, p)
            }
        }
    }
}

/// Iterates the options of an option area. Yields an error and then stops at the first malformed option
/// (RFC 9293 MUST-7: survive it; what to do next is the caller's policy).
#[derive(Debug, Clone)]
pub struct TcpOptionIter<'a> {
    bytes: &'a [u8],
    offset: usize,
    after_eol: bool,
    failed: bool,
}

impl<'a> TcpOptionIter<'a> {
    /// Iterates `bytes`, an option area.
    #[inline]
    pub fn new(bytes: &'a [u8]) -> Self {
        TcpOptionIter { bytes, offset: 0, after_eol: false, failed: false }
    }
}

impl<'a> Iterator for TcpOptionIter<'a> {
    type Item = Result<TcpOption<'a>>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.bytes.get(self.offset..).filter(|r| !r.is_empty())?;
        if self.failed {
            return None;
        }
        if self.after_eol {
            // What follows EOL is padding: show zero bytes as further EOLs (packetdrill writes `eol,eol`),
            // anything else as one raw run so that nothing is lost.
            if rest[0] == 0 {
                self.offset += 1;
                return Some(Ok(TcpOption::Eol));
            }
            self.offset = self.bytes.len();
            return Some(Ok(TcpOption::Padding(rest)));
        }
        let k = rest[0];
        match k {
            kind::EOL => {
                self.offset += 1;
                self.after_eol = true;
                return Some(Ok(TcpOption::Eol));
            }
            kind::NOP => {
                self.offset += 1;
                return Some(Ok(TcpOption::Nop));
            }
            _ => {}
        }
        let fail = |this: &mut Self, e| {
            this.failed = true;
            Some(Err(e))
        };
        let Some(&len) = rest.get(1) else {
            return fail(self, WireError::OptionOverrun { kind: k, offset: self.offset });
        };
        if len < 2 {
            return fail(self, WireError::OptionLengthTooSmall { kind: k, len });
        }
        let Some(body) = rest.get(..usize::from(len)) else {
            return fail(self, WireError::OptionOverrun { kind: k, offset: self.offset });
        };
        let data = &body[2..];
        let bad_len = WireError::BadOptionLength { kind: k, len };
        let opt = match k {
            kind::MSS if len == 4 => TcpOption::Mss(be16(data)),
            kind::WINDOW_SCALE if len == 3 => TcpOption::WindowScale(data[0]),
            kind::SACK_PERMITTED if len == 2 => TcpOption::SackPermitted,
            kind::SACK if len >= 10 && (len - 2) % 8 == 0 && len <= 34 => {
                let mut blocks = SackBlocks::default();
                for (i, c) in data.chunks_exact(8).enumerate() {
                    blocks.blocks[i] = (SeqNum(be32(&c[..4])), SeqNum(be32(&c[4..])));
                }
                blocks.len = (len - 2) / 8;
                TcpOption::Sack(blocks)
            }
            kind::TIMESTAMPS if len == 10 => TcpOption::Timestamps { tsval: be32(&data[..4]), tsecr: be32(&data[4..]) },
            kind::MD5 if len == 18 => {
                let mut d = [0u8; 16];
                d.copy_from_slice(data);
                TcpOption::Md5(d)
            }
            kind::FAST_OPEN => TcpOption::FastOpen(data),
            kind::EXPERIMENTAL if data.len() >= 2 && be16(data) == FAST_OPEN_EXP_MAGIC => {
                TcpOption::FastOpenExp(&data[2..])
            }
            kind::MSS | kind::WINDOW_SCALE | kind::SACK_PERMITTED | kind::SACK | kind::TIMESTAMPS | kind::MD5 => {
                return fail(self, bad_len);
            }
            _ => TcpOption::Unknown { kind: k, data },
        };
        self.offset += usize::from(len);
        Some(Ok(opt))
    }
}

/// The option area of a TCP header: up to 40 bytes, kept exactly as they are (or will be) on the wire.
///
/// Build one from typed options with [`TcpOptions::push`] / [`TcpOptions::from_options`], or from raw bytes
/// with [`TcpOptions::from_bytes`] (which accepts malformed areas, so the harness can send them).
/// [`TcpOptions::validate`] reports the first malformed option.
#[derive(Clone, Copy)]
pub struct TcpOptions {
    bytes: [u8; MAX_OPTIONS_LEN],
    len: u8,
}

impl TcpOptions {
    /// No options.
    pub const EMPTY: TcpOptions = TcpOptions { bytes: [0; MAX_OPTIONS_LEN], len: 0 };

    /// Raw option bytes; fails only if there are more than 40.
    #[inline]
    pub fn from_bytes(bytes: &[u8]) -> Result<TcpOptions> {
        if bytes.len() > MAX_OPTIONS_LEN {
            return Err(WireError::OptionsTooLong(bytes.len()));
        }
        let mut o = TcpOptions::EMPTY;
        o.bytes[..bytes.len()].copy_from_slice(bytes);
        o.len = bytes.len() as u8;
        Ok(o)
    }

    /// Encodes a list of options, in order, without padding.
    pub fn from_options(opts: &[TcpOption<'_>]) -> Result<TcpOptions> {
        let mut o = TcpOptions::EMPTY;
        for opt in opts {
            o.push(opt)?;
        }
        Ok(o)
    }

    /// Appends one option.
    pub fn push(&mut self, opt: &TcpOption<'_>) -> Result<()> {
        let at = usize::from(self.len);
        let n = opt.buffer_len();
        if at + n > MAX_OPTIONS_LEN {
            return Err(WireError::OptionsTooLong(at + n));
        }
        self.bytes[at..at + n].fill(0);
        opt.emit(&mut self.bytes[at..at + n]);
        self.len = (at + n) as u8;
        Ok(())
    }

    /// Appends EOL bytes until the length is a multiple of four, as a header needs.
    pub fn pad(&mut self) {
        while self.len % 4 != 0 {
            self.bytes[usize::from(self.len)] = kind::EOL;
            self.len += 1;
        }
    }

    /// The bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether there are no option bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Typed iteration; see [`TcpOptionIter`].
    #[inline]
    pub fn iter(&self) -> TcpOptionIter<'_> {
        TcpOptionIter::new(self.as_bytes())
    }

    /// Checks every option (MUST-7 lengths, known kinds' lengths).
    pub fn validate(&self) -> Result<()> {
        self.iter().try_for_each(|o| o.map(drop))
    }

    /// The well-formed options before the first malformed one: what a receiver that, like Linux, stops
    /// reading at a bad length acts on.
    pub fn well_formed(&self) -> impl Iterator<Item = TcpOption<'_>> {
        self.iter().map_while(|o| o.ok())
    }

    /// The MSS option's value, if present.
    pub fn mss(&self) -> Option<u16> {
        self.well_formed().find_map(|o| if let TcpOption::Mss(v) = o { Some(v) } else { None })
    }

    /// The window scale option's shift, if present (not clamped).
    pub fn window_scale(&self) -> Option<u8> {
        self.well_formed().find_map(|o| if let TcpOption::WindowScale(v) = o { Some(v) } else { None })
    }

    /// Whether SACK-permitted is present.
    pub fn sack_permitted(&self) -> bool {
        self.well_formed().any(|o| o == TcpOption::SackPermitted)
    }

    /// The timestamps option's (TSval, TSecr), if present.
    pub fn timestamps(&self) -> Option<(u32, u32)> {
        self.well_formed().find_map(|o| match o {
            TcpOption::Timestamps { tsval, tsecr } => Some((tsval, tsecr)),
            _ => None,
        })
    }

    /// The SACK blocks, if present.
    pub fn sack_blocks(&self) -> Option<SackBlocks> {
        self.well_formed().find_map(|o| if let TcpOption::Sack(b) = o { Some(b) } else { None })
    }
}

impl Default for TcpOptions {
    fn default() -> Self {
        TcpOptions::EMPTY
    }
}

impl PartialEq for TcpOptions {
    fn eq(&self, other: &TcpOptions) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for TcpOptions {}

impl core::hash::Hash for TcpOptions {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl fmt::Debug for TcpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TcpOptions<{self}>")
    }
}

/// The options in packetdrill notation, comma separated, without the angle brackets. A malformed option
/// shows as `bad(<reason>)` and ends the list. Absolute numbers; see [`TcpOptions::notation`].
impl fmt::Display for TcpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.notation(super::notation::Numbering::ABSOLUTE).fmt(f)
    }
}

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ: Range<usize> = 4..8;
    pub const ACK: Range<usize> = 8..12;
    pub const OFF_FLAGS: Range<usize> = 12..14;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

/// A view of a TCP segment (header and payload) over any byte buffer; the buffer is exactly the IP payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSegment<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpSegment<T> {
    /// Wraps a buffer without checking anything.
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpSegment { buffer }
    }

    /// Wraps a buffer after checking that the header and its data offset fit, so no accessor can go out of
    /// bounds.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let s = TcpSegment { buffer };
        s.check_len()?;
        Ok(s)
    }

    fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated { what: "TCP header", needed: HEADER_LEN, got: b.len() });
        }
        let off = b[field::OFF_FLAGS.start] >> 4;
        if off < 5 || usize::from(off) * 4 > b.len() {
            return Err(WireError::BadDataOffset(off));
        }
        Ok(())
    }

    /// Gives back the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::SRC_PORT])
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::DST_PORT])
    }
    /// Sequence number.
    pub fn seq_number(&self) -> SeqNum {
        SeqNum(be32(&self.buffer.as_ref()[field::SEQ]))
    }
    /// Acknowledgment number (meaningful only with ACK set).
    pub fn ack_number(&self) -> SeqNum {
        SeqNum(be32(&self.buffer.as_ref()[field::ACK]))
    }
    /// Data offset field, in 32-bit words.
    pub fn data_offset(&self) -> u8 {
        self.buffer.as_ref()[field::OFF_FLAGS.start] >> 4
    }
    /// Header length in bytes.
    pub fn header_len(&self) -> usize {
        usize::from(self.data_offset()) * 4
    }
    /// Flags, reserved bits included.
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(be16(&self.buffer.as_ref()[field::OFF_FLAGS]) & 0x0fff)
    }
    /// Window field (unscaled).
    pub fn window_len(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::WINDOW])
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }
    /// Urgent pointer field.
    pub fn urgent_at(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::URGENT])
    }
    /// The raw option area.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }
    /// Typed iteration over the options.
    pub fn options_iter(&self) -> TcpOptionIter<'_> {
        TcpOptionIter::new(self.options())
    }
    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
    /// Whether the checksum verifies for the given pseudo-header addresses.
    #[inline]
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        let b = self.buffer.as_ref();
        let pseudo = pseudo_header(src, dst, b.len());
        checksum::finish(checksum::combine(&[pseudo, checksum::sum(b)])) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpSegment<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, v: u16) {
        self.buffer.as_mut()[field::SRC_PORT].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets the destination port.
    pub fn set_dst_port(&mut self, v: u16) {
        self.buffer.as_mut()[field::DST_PORT].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets the sequence number.
    pub fn set_seq_number(&mut self, v: SeqNum) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&v.0.to_be_bytes());
    }
    /// Sets the acknowledgment number.
    pub fn set_ack_number(&mut self, v: SeqNum) {
        self.buffer.as_mut()[field::ACK].copy_from_slice(&v.0.to_be_bytes());
    }
    /// Sets the data offset (in words) and the 12 flag bits.
    pub fn set_data_offset_and_flags(&mut self, data_offset: u8, flags: TcpFlags) {
        let v = (u16::from(data_offset & 0x0f) << 12) | (flags.0 & 0x0fff);
        self.buffer.as_mut()[field::OFF_FLAGS].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets the window field.
    pub fn set_window_len(&mut self, v: u16) {
        self.buffer.as_mut()[field::WINDOW].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets the checksum field to any value.
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets the urgent pointer.
    pub fn set_urgent_at(&mut self, v: u16) {
        self.buffer.as_mut()[field::URGENT].copy_from_slice(&v.to_be_bytes());
    }
    /// Computes and stores the checksum for the given pseudo-header addresses.
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let pseudo = pseudo_header(src, dst, b.len());
        let c = checksum::finish(checksum::combine(&[pseudo, checksum::sum(b)]));
        self.set_checksum(c);
    }
}

#[inline]
fn pseudo_header(src: IpAddr, dst: IpAddr, len: usize) -> checksum::PartialSum {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => checksum::pseudo_header_v4(s, d, PROTOCOL, len as u32),
        // A mixed pair cannot come off the wire; treat it as IPv6 with the v4 address mapped rather than panic.
        (s, d) => checksum::pseudo_header_v6(v6(s), v6(d), PROTOCOL, len as u32),
    }
}

fn v6(a: IpAddr) -> core::net::Ipv6Addr {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// Whether a parse verifies checksums. Captures of a sender with checksum offload carry unfilled checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Checksums {
    /// Verify, and fail with [`WireError::BadIpChecksum`] / [`WireError::BadTcpChecksum`].
    #[default]
    Verify,
    /// Do not look at checksums.
    Ignore,
}

/// The meaning of a TCP segment. The payload borrows from the parsed buffer. Sequence and acknowledgment
/// numbers are kept raw (the acknowledgment number even without ACK) so that emit reproduces the original.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpRepr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: SeqNum,
    /// Acknowledgment number.
    pub ack: SeqNum,
    /// Flags, reserved bits included.
    pub flags: TcpFlags,
    /// Window field, unscaled.
    pub window: u16,
    /// Urgent pointer.
    pub urgent: u16,
    /// The option area.
    pub options: TcpOptions,
    /// The data.
    pub payload: &'a [u8],
}

impl<'a> TcpRepr<'a> {
    /// Parses a checked view, verifying the checksum against `src`/`dst` unless told not to. Malformed options
    /// do not fail the parse (a receiver must survive them, RFC 9293 MUST-7); see [`TcpOptions::validate`].
    #[inline]
    pub fn parse(seg: &TcpSegment<&'a [u8]>, src: IpAddr, dst: IpAddr, checksums: Checksums) -> Result<TcpRepr<'a>> {
        seg.check_len()?;
        if checksums == Checksums::Verify && !seg.verify_checksum(src, dst) {
            return Err(WireError::BadTcpChecksum);
        }
        let b: &'a [u8] = seg.buffer;
        let header_len = seg.header_len();
        Ok(TcpRepr {
            src_port: seg.src_port(),
            dst_port: seg.dst_port(),
            seq: seg.seq_number(),
            ack: seg.ack_number(),
            flags: seg.flags(),
            window: seg.window_len(),
            urgent: seg.urgent_at(),
            options: TcpOptions::from_bytes(&b[HEADER_LEN..header_len])?,
            payload: &b[header_len..],
        })
    }

    /// Header length this repr emits: 20 plus the options rounded up to a multiple of four.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.len().div_ceil(4) * 4
    }

    /// Bytes this repr emits: header and payload.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// Sequence space the segment occupies: payload plus one for SYN and one for FIN (RFC 9293 3.4).
    pub fn segment_len(&self) -> usize {
        self.payload.len() + usize::from(self.flags.syn()) + usize::from(self.flags.fin())
    }

    /// Writes the segment into `buf[..buffer_len()]` with its checksum for `src`/`dst`; the option area is
    /// padded with zero (EOL) bytes to a multiple of four. Returns the number of bytes written.
    pub fn emit(&self, buf: &mut [u8], src: IpAddr, dst: IpAddr) -> Result<usize> {
        let total = self.buffer_len();
        if buf.len() < total {
            return Err(WireError::BufferTooSmall { needed: total, got: buf.len() });
        }
        let header_len = self.header_len();
        let buf = &mut buf[..total];
        buf[HEADER_LEN..HEADER_LEN + self.options.len()].copy_from_slice(self.options.as_bytes());
        buf[HEADER_LEN + self.options.len()..header_len].fill(0);
        buf[header_len..].copy_from_slice(self.payload);
        let mut s = TcpSegment::new_unchecked(buf);
        s.set_src_port(self.src_port);
        s.set_dst_port(self.dst_port);
        s.set_seq_number(self.seq);
        s.set_ack_number(self.ack);
        s.set_data_offset_and_flags((header_len / 4) as u8, self.flags);
        s.set_window_len(self.window);
        s.set_urgent_at(self.urgent);
        s.fill_checksum(src, dst);
        Ok(total)
    }
}

/// packetdrill's notation with absolute numbers: `S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK>` (see
/// [`TcpRepr::notation`] for relative numbers).
impl fmt::Display for TcpRepr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.notation(super::notation::Numbering::ABSOLUTE).fmt(f)
    }
}

#[inline]
pub(crate) fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
