//! packetdrill's notation for a TCP segment, written once: `S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK>`.
//!
//! [`Layout`] is the field order and spelling; [`TcpRepr::notation`] fills it from a live segment with a
//! [`Numbering`] (absolute, as `Display` shows it, or relative to a connection's ISNs and TSval origin, as scripts
//! write it); the harness's script printer fills it from a script line, wildcards and all.

use super::tcp::{TcpFlags, TcpOption, TcpOptions, TcpRepr};
use core::fmt;

/// How a segment's numbers are shown: each is printed less its offset (wrapping), so the zero numbering is the
/// wire's and a connection's ISNs make packetdrill's relative numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Numbering {
    /// Subtracted from the sequence number (the sender's ISN).
    pub seq_offset: u32,
    /// Subtracted from the acknowledgment number and the SACK blocks (the receiver's ISN).
    pub ack_offset: u32,
    /// Subtracted from TSval (the sender's timestamp clock origin).
    pub ts_offset: u32,
}

impl Numbering {
    /// The numbers as they are on the wire.
    pub const ABSOLUTE: Numbering = Numbering { seq_offset: 0, ack_offset: 0, ts_offset: 0 };
}

/// One packet line's TCP fields in packetdrill's order: flags, `seq:end(len)` (or `...(len)`), `ack`, `win`,
/// `urg`, `<options>`; a field that is `None` is left out.
pub struct Layout<'a> {
    /// The flags as letters (`S.`, `P.`, `-`).
    pub flags: &'a dyn fmt::Display,
    /// The starting sequence number; `None` prints `...`.
    pub seq: Option<u32>,
    /// Payload length.
    pub len: u32,
    /// The acknowledgment number.
    pub ack: Option<u32>,
    /// The window field.
    pub win: Option<u32>,
    /// The urgent pointer.
    pub urg: Option<u32>,
    /// What goes between `<` and `>`.
    pub options: Option<&'a dyn fmt::Display>,
}

impl fmt::Display for Layout<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seq {
            Some(s) => write!(f, "{} {s}:{}({})", self.flags, s.wrapping_add(self.len), self.len)?,
            None => write!(f, "{} ...({})", self.flags, self.len)?,
        }
        if let Some(a) = self.ack {
            write!(f, " ack {a}")?;
        }
        if let Some(w) = self.win {
            write!(f, " win {w}")?;
        }
        if let Some(u) = self.urg {
            write!(f, " urg {u}")?;
        }
        if let Some(o) = self.options {
            write!(f, " <{o}>")?;
        }
        Ok(())
    }
}

/// A live segment in packetdrill's notation under a [`Numbering`]: `ack` only with ACK set, `urg` only with URG
/// set, the option list only when there are options.
#[derive(Debug, Clone, Copy)]
pub struct SegmentNotation<'a> {
    seg: &'a TcpRepr<'a>,
    numbering: Numbering,
}

impl fmt::Display for SegmentNotation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (t, n) = (self.seg, self.numbering);
        let options = OptionsNotation { options: &t.options, numbering: n };
        let flags: TcpFlags = t.flags;
        Layout {
            flags: &flags,
            seq: Some(t.seq.0.wrapping_sub(n.seq_offset)),
            len: t.payload.len() as u32,
            ack: t.flags.ack().then(|| t.ack.0.wrapping_sub(n.ack_offset)),
            win: Some(u32::from(t.window)),
            urg: t.flags.urg().then_some(u32::from(t.urgent)),
            options: (!t.options.is_empty()).then_some(&options as &dyn fmt::Display),
        }
        .fmt(f)
    }
}

/// An option area in packetdrill's notation under a [`Numbering`]: TSval and SACK blocks are renumbered, an
/// option that does not parse shows as `bad(reason)`.
#[derive(Debug, Clone, Copy)]
pub struct OptionsNotation<'a> {
    options: &'a TcpOptions,
    numbering: Numbering,
}

impl fmt::Display for OptionsNotation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.numbering;
        for (i, o) in self.options.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match o {
                Ok(TcpOption::Timestamps { tsval, tsecr }) => {
                    write!(f, "TS val {} ecr {tsecr}", tsval.wrapping_sub(n.ts_offset))?
                }
                Ok(TcpOption::Sack(blocks)) => {
                    f.write_str("sack")?;
                    for (l, r) in blocks.as_slice() {
                        write!(f, " {}:{}", l.0.wrapping_sub(n.ack_offset), r.0.wrapping_sub(n.ack_offset))?;
                    }
                }
                Ok(o) => write!(f, "{o}")?,
                Err(e) => write!(f, "bad({e})")?,
            }
        }
        Ok(())
    }
}

impl<'a> TcpRepr<'a> {
    /// This segment in packetdrill's notation under `numbering`.
    pub fn notation(&'a self, numbering: Numbering) -> SegmentNotation<'a> {
        SegmentNotation { seg: self, numbering }
    }
}

impl TcpOptions {
    /// The option list in packetdrill's notation under `numbering`.
    pub fn notation(&self, numbering: Numbering) -> OptionsNotation<'_> {
        OptionsNotation { options: self, numbering }
    }
}
