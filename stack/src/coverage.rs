//! What the stack was asked to handle, for `tcpdrill coverage --transitions`: every (state, stimulus) pair the host
//! met, where a stimulus is an arriving segment (by RFC 9293 3.10.7's kinds), a user call (3.10.1-3.10.6) or a
//! timeout (3.10.8). Recording is a set insertion per event: cheap enough to stay on.

use crate::tcb::Timer;
use crate::wire::TcpFlags;
use core::fmt;

/// The kinds of arriving segment the transition matrix distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SegmentKind {
    /// SYN without ACK.
    Syn,
    /// SYN with ACK.
    SynAck,
    /// ACK without data, SYN, FIN or RST.
    Ack,
    /// A segment carrying data (and neither SYN, FIN nor RST).
    Data,
    /// FIN without ACK.
    Fin,
    /// FIN with ACK.
    FinAck,
    /// RST without ACK.
    Rst,
    /// RST with ACK.
    RstAck,
    /// No SYN, ACK, FIN or RST at all.
    Bare,
}

impl SegmentKind {
    /// Every kind, in matrix order.
    pub const ALL: [SegmentKind; 9] = [
        SegmentKind::Syn,
        SegmentKind::SynAck,
        SegmentKind::Ack,
        SegmentKind::Data,
        SegmentKind::Fin,
        SegmentKind::FinAck,
        SegmentKind::Rst,
        SegmentKind::RstAck,
        SegmentKind::Bare,
    ];

    /// The kind of a segment with these flags and payload length. RST wins over everything, then SYN, then FIN.
    pub fn of(flags: TcpFlags, payload_len: usize) -> SegmentKind {
        let ack = flags.ack();
        if flags.rst() {
            return if ack { SegmentKind::RstAck } else { SegmentKind::Rst };
        }
        if flags.syn() {
            return if ack { SegmentKind::SynAck } else { SegmentKind::Syn };
        }
        if flags.fin() {
            return if ack { SegmentKind::FinAck } else { SegmentKind::Fin };
        }
        match (ack, payload_len > 0) {
            (_, true) => SegmentKind::Data,
            (true, false) => SegmentKind::Ack,
            (false, false) => SegmentKind::Bare,
        }
    }
}

/// The user calls of RFC 9293 3.10, as the socket API makes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CallKind {
    /// OPEN, active: `connect()`.
    OpenActive,
    /// OPEN, passive: `listen()`.
    OpenPassive,
    /// SEND: `write()`.
    Send,
    /// RECEIVE: `read()`.
    Receive,
    /// CLOSE: `close()` or `shutdown(SHUT_WR)`.
    Close,
    /// ABORT: `close()` with SO_LINGER {1, 0} or with unread data.
    Abort,
}

impl CallKind {
    /// Every call, in matrix order.
    pub const ALL: [CallKind; 6] = [
        CallKind::OpenActive,
        CallKind::OpenPassive,
        CallKind::Send,
        CallKind::Receive,
        CallKind::Close,
        CallKind::Abort,
    ];
}

/// One thing that happened to a connection (or a listener, or CLOSED).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stimulus {
    /// A segment arrived.
    Segment(SegmentKind),
    /// The application called.
    Call(CallKind),
    /// A timer fired.
    Timeout(TimerKind),
}

/// The timers, as the matrix names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKind {
    /// Retransmission (RFC 9293 3.10.8), SYN and SYN-ACK included.
    Retransmit,
    /// Delayed ACK.
    DelayedAck,
    /// Zero-window probe.
    Persist,
    /// Keep-alive.
    Keepalive,
    /// TIME-WAIT's 2 MSL (RFC 9293 3.10.8).
    TimeWait,
    /// Orphaned FIN-WAIT-2 (`tcp_fin_timeout`).
    FinWait2,
}

impl TimerKind {
    /// Every timer, in matrix order.
    pub const ALL: [TimerKind; 6] = [
        TimerKind::Retransmit,
        TimerKind::DelayedAck,
        TimerKind::Persist,
        TimerKind::Keepalive,
        TimerKind::TimeWait,
        TimerKind::FinWait2,
    ];

    pub(crate) fn of(t: Timer) -> TimerKind {
        match t {
            // The probe and reordering timers are the retransmission timer's other uses (Linux arms them in its
            // place): the RFC's state machine knows one retransmission timeout.
            Timer::Retransmit | Timer::LossProbe | Timer::ReoTimeout => TimerKind::Retransmit,
            Timer::DelayedAck => TimerKind::DelayedAck,
            Timer::Persist => TimerKind::Persist,
            Timer::Keepalive => TimerKind::Keepalive,
            Timer::TimeWait => TimerKind::TimeWait,
            Timer::FinWait2 => TimerKind::FinWait2,
        }
    }
}

impl Stimulus {
    /// Every stimulus, in matrix column order.
    pub fn all() -> impl Iterator<Item = Stimulus> {
        SegmentKind::ALL
            .into_iter()
            .map(Stimulus::Segment)
            .chain(CallKind::ALL.into_iter().map(Stimulus::Call))
            .chain(TimerKind::ALL.into_iter().map(Stimulus::Timeout))
    }
}

impl fmt::Display for Stimulus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stimulus::Segment(SegmentKind::Syn) => "SYN",
            Stimulus::Segment(SegmentKind::SynAck) => "SYN-ACK",
            Stimulus::Segment(SegmentKind::Ack) => "ACK",
            Stimulus::Segment(SegmentKind::Data) => "data",
            Stimulus::Segment(SegmentKind::Fin) => "FIN",
            Stimulus::Segment(SegmentKind::FinAck) => "FIN-ACK",
            Stimulus::Segment(SegmentKind::Rst) => "RST",
            Stimulus::Segment(SegmentKind::RstAck) => "RST-ACK",
            Stimulus::Segment(SegmentKind::Bare) => "no flags",
            Stimulus::Call(CallKind::OpenActive) => "connect",
            Stimulus::Call(CallKind::OpenPassive) => "listen",
            Stimulus::Call(CallKind::Send) => "send",
            Stimulus::Call(CallKind::Receive) => "receive",
            Stimulus::Call(CallKind::Close) => "close",
            Stimulus::Call(CallKind::Abort) => "abort",
            Stimulus::Timeout(TimerKind::Retransmit) => "RTO",
            Stimulus::Timeout(TimerKind::DelayedAck) => "delack",
            Stimulus::Timeout(TimerKind::Persist) => "persist",
            Stimulus::Timeout(TimerKind::Keepalive) => "keepalive",
            Stimulus::Timeout(TimerKind::TimeWait) => "2MSL",
            Stimulus::Timeout(TimerKind::FinWait2) => "fin_timeout",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_kinds_follow_rst_then_syn_then_fin() {
        let (a, s, f, r) = (TcpFlags::ACK, TcpFlags::SYN, TcpFlags::FIN, TcpFlags::RST);
        assert_eq!(SegmentKind::of(s, 0), SegmentKind::Syn);
        assert_eq!(SegmentKind::of(s | a, 0), SegmentKind::SynAck);
        assert_eq!(SegmentKind::of(a, 0), SegmentKind::Ack);
        assert_eq!(SegmentKind::of(a, 10), SegmentKind::Data);
        assert_eq!(SegmentKind::of(f | a, 10), SegmentKind::FinAck);
        assert_eq!(SegmentKind::of(f, 0), SegmentKind::Fin);
        assert_eq!(SegmentKind::of(r | a | s, 0), SegmentKind::RstAck);
        assert_eq!(SegmentKind::of(r, 0), SegmentKind::Rst);
        assert_eq!(SegmentKind::of(TcpFlags::NONE, 0), SegmentKind::Bare);
    }
}
