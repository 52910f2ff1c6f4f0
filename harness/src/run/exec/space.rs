//! Script space: how the script's numbers map to live ones, per connection, as packetdrill keeps them per
//! socket (socket.h). The stack's ISN is learned from its SYN or SYN-ACK; the script's own from the inbound SYN
//! that opens a connection or the SYN-ACK that answers its connect(); the stack's TSval offset from its first
//! timestamp the script gives a value for. A SYN's numbers are the script's as written; every other segment's
//! count from the ISNs as 0. tcpdrill adds new incarnations: a second connection on the same four-tuple (a SYN
//! that reopens TIME-WAIT, a new connect()) starts both sides' numbers afresh when the stack answers it.

use std::collections::BTreeMap;
use tcpdrill_stack::SeqNum;

/// A connection as (stack's port, harness's port).
pub(super) type Ports = (u16, u16);

/// The stack's ISN on one connection: the live one, and the sequence number the script's SYN line gave it.
#[derive(Debug, Clone, Copy, Default)]
struct Isn {
    live: u32,
    script: u32,
}

/// One connection's stack ISN as learned, with the end of the sequence space the stack used from it, for the
/// `tcp_isn_*()` extensions.
#[derive(Debug, Clone, Copy)]
struct Incarnation {
    ports: Ports,
    isn: u32,
    end: u32,
    /// When the stack sent the SYN it was learned from, microseconds of the script's clock.
    at: i64,
}

/// The numbering of every connection of a run.
#[derive(Debug, Default)]
pub(super) struct ScriptSpace {
    /// The stack's ISN of every connection seen; `last_isn` serves a connection whose own is unknown (a reset to
    /// an unknown tuple echoes numbers the script wrote relative to it).
    isns: BTreeMap<Ports, Isn>,
    last_isn: Option<Isn>,
    /// The script's own ISN of every connection, and the last one set.
    remote_isns: BTreeMap<Ports, u32>,
    last_remote_isn: Option<u32>,
    /// The connection the stack's ISN in use was learned on, and whether from a bare SYN (an active open): a later
    /// SYN on it (a simultaneous open's SYN-ACK) is checked against it, not learned from.
    isn_ports: Option<Ports>,
    isn_from_syn: bool,
    /// A new connection may have begun since (a connect() or an inbound SYN): the next SYN on the same tuple is a
    /// new incarnation with an ISN of its own, unless it is the SYN-ACK of a simultaneous open.
    new_incarnation: bool,
    /// A connect() started a connection whose SYN-ACK has not come: the next inbound SYN-ACK sets its script ISN.
    awaiting_synack: bool,
    /// A SYN sent on a tuple already in use: its ISN becomes the script's when the stack answers with a SYN-ACK.
    reopening: Option<(Ports, u32)>,
    /// The stack's TSval minus the script's, once known.
    ts_offset: Option<u32>,
    history: Vec<Incarnation>,
}

impl ScriptSpace {
    /// What to add to a script number of the stack's sequence space to get the live one (packetdrill's
    /// `local_seq_script_to_live_offset`): a SYN's numbers are the script's SYN line's, every other segment's count
    /// from the live ISN as 0.
    pub(super) fn local_offset(&self, ports: Ports, syn: bool) -> u32 {
        let isn = self.isns.get(&ports).copied().or(self.last_isn).unwrap_or_default();
        if syn {
            isn.live.wrapping_sub(isn.script)
        } else {
            isn.live
        }
    }

    /// The same for the harness's sequence space (`remote_seq_script_to_live_offset`): SYNs as written, every
    /// other segment relative to the script's ISN.
    pub(super) fn remote_offset(&self, ports: Ports, syn: bool) -> u32 {
        if syn {
            0
        } else {
            self.remote_isns.get(&ports).copied().or(self.last_remote_isn).unwrap_or(0)
        }
    }

    /// The stack's TSval offset, once known.
    pub(super) fn ts_offset(&self) -> Option<u32> {
        self.ts_offset
    }

    /// A connect() started a connection.
    pub(super) fn connecting(&mut self) {
        self.new_incarnation = true;
        self.awaiting_synack = true;
    }

    /// The harness is about to send a segment with SYN set (`ack`: a SYN-ACK) and sequence number `seq`.
    pub(super) fn inbound_syn(&mut self, ports: Ports, ack: bool, seq: u32) {
        // packetdrill sets the script's ISN when it creates a socket: for the SYN that opens a connection or the
        // SYN-ACK that answers a connect(); a later SYN on the same connection (in ESTABLISHED, a retransmission)
        // changes nothing.
        let opens = if ack { self.awaiting_synack } else { !self.remote_isns.contains_key(&ports) };
        if opens {
            self.set_remote_isn(ports, seq);
            self.awaiting_synack &= !ack;
        } else if !ack {
            // A new incarnation only if the stack answers with a SYN-ACK (a SYN that reopens TIME-WAIT); in
            // ESTABLISHED it gets a challenge ACK.
            self.reopening = Some((ports, seq));
        }
        if !ack {
            self.new_incarnation = true;
        }
    }

    fn set_remote_isn(&mut self, ports: Ports, isn: u32) {
        self.last_remote_isn = Some(isn);
        self.remote_isns.insert(ports, isn);
    }

    /// The stack sent a SYN (`ack`: a SYN-ACK) with live sequence number `live` where the script's line says
    /// `script`: learns its ISN if this starts a connection (or an incarnation) the space does not know yet.
    pub(super) fn outbound_syn(&mut self, ports: Ports, ack: bool, live: u32, script: Option<u32>, at: i64) {
        let simultaneous_open = self.isn_from_syn && ack;
        let relearn = self.isn_ports != Some(ports) || (self.new_incarnation && !simultaneous_open);
        let Some(script) = script.filter(|_| relearn) else { return };
        let isn = Isn { live, script };
        self.last_isn = Some(isn);
        self.isns.insert(ports, isn);
        if let Some((_, remote)) = self.reopening.take().filter(|(p, _)| *p == ports) {
            self.set_remote_isn(ports, remote);
        }
        self.isn_ports = Some(ports);
        self.isn_from_syn = !ack;
        self.new_incarnation = false;
        self.history.push(Incarnation { ports, isn: live, end: live, at });
    }

    /// The stack's TSval `live` where the script says `script`, the first time one is seen.
    pub(super) fn outbound_tsval(&mut self, live: u32, script: u32) {
        self.ts_offset.get_or_insert(live.wrapping_sub(script));
    }

    /// The stack sent a segment whose sequence space ends at `end` (live): the current incarnation reached it.
    pub(super) fn outbound_end(&mut self, ports: Ports, end: u32) {
        if let Some(h) = self.history.last_mut().filter(|h| h.ports == ports) {
            if SeqNum(end) > SeqNum(h.end) {
                h.end = end;
            }
        }
    }

    /// `tcp_isn_distinct()`: whether every connection so far had an ISN of its own; `None` before two were seen.
    pub(super) fn isns_distinct(&self) -> Option<bool> {
        if self.history.len() < 2 {
            return None;
        }
        let mut isns: Vec<u32> = self.history.iter().map(|h| h.isn).collect();
        isns.sort_unstable();
        isns.dedup();
        Some(isns.len() == self.history.len())
    }

    /// `tcp_isn_beyond_previous()`: whether the current connection's ISN lies beyond (RFC 1982) the last sequence
    /// number the previous incarnation of the same four-tuple used; why not, if it cannot tell.
    pub(super) fn isn_beyond_previous(&self) -> Result<bool, &'static str> {
        let (cur, earlier) = self.history.split_last().ok_or("no ISN seen yet")?;
        let prev =
            earlier.iter().rev().find(|h| h.ports == cur.ports).ok_or("no earlier incarnation of this four-tuple")?;
        Ok(SeqNum(cur.isn) > SeqNum(prev.end))
    }
}

impl ScriptSpace {
    /// `tcp_isn_clock_within(rate, percent)`: whether the ISN clock ran at `rate` ticks a second, within
    /// `percent`, between the previous incarnation of this four-tuple and the current one. Their ISNs share the
    /// four-tuple's secret offset (RFC 6528's F), so their difference is the clock's advance alone. Why not, if it
    /// cannot tell.
    pub(super) fn isn_clock_within(&self, rate: f64, percent: f64) -> Result<bool, String> {
        let (cur, earlier) = self.history.split_last().ok_or("no ISN seen yet")?;
        let prev =
            earlier.iter().rev().find(|h| h.ports == cur.ports).ok_or("no earlier incarnation of this four-tuple")?;
        let dt = cur.at - prev.at;
        if dt < 100_000 {
            return Err(format!("the two ISNs were sent {dt} us apart; a rate needs at least 0.1 s"));
        }
        let measured = f64::from(cur.isn.wrapping_sub(prev.isn)) * 1e6 / dt as f64;
        Ok((measured - rate).abs() <= rate * percent / 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: Ports = (8080, 40123);

    #[test]
    fn syn_lines_are_absolute_and_the_rest_relative_to_the_isns() {
        let mut s = ScriptSpace::default();
        // < S 1000:1000(0): the script's ISN is 1000.
        s.inbound_syn(C, false, 1000);
        assert_eq!(s.remote_offset(C, true), 0, "a SYN's sequence number as written");
        assert_eq!(s.remote_offset(C, false), 1000, "`< . 1:1(0)` is seq 1001");
        // > S. 0:0(0) from live ISN 7000.
        s.outbound_syn(C, true, 7000, Some(0), 0);
        assert_eq!(s.local_offset(C, false), 7000, "`ack 1` on a later segment is 7001");
        assert_eq!(s.local_offset(C, true), 7000, "the SYN-ACK line's 0 is 7000");
        // A script that writes `> S. 100:100(0)` keeps 100 for SYNs only (socket.h): later numbers count from 0.
        let mut t = ScriptSpace::default();
        t.outbound_syn(C, true, 7000, Some(100), 0);
        assert_eq!((t.local_offset(C, true), t.local_offset(C, false)), (6900, 7000));
    }

    #[test]
    fn a_syn_on_a_connection_in_use_changes_nothing_unless_the_stack_answers_it_with_a_syn_ack() {
        let mut s = ScriptSpace::default();
        s.inbound_syn(C, false, 0);
        s.outbound_syn(C, true, 7000, Some(0), 0);
        // A SYN in ESTABLISHED (answered by a challenge ACK): nothing moves.
        s.inbound_syn(C, false, 5000);
        assert_eq!((s.remote_offset(C, false), s.local_offset(C, false)), (0, 7000));
        // A SYN that reopens TIME-WAIT, answered by a SYN-ACK: both sides start afresh.
        s.inbound_syn(C, false, 50_000);
        s.outbound_syn(C, true, 9000, Some(0), 0);
        assert_eq!((s.remote_offset(C, false), s.local_offset(C, false)), (50_000, 9000));
        assert_eq!(s.isns_distinct(), Some(true));
    }

    #[test]
    fn a_simultaneous_opens_syn_ack_is_checked_not_learned() {
        let mut s = ScriptSpace::default();
        s.connecting();
        s.outbound_syn(C, false, 7000, Some(0), 0);
        s.inbound_syn(C, false, 0);
        // Our SYN-ACK repeats our SYN's sequence number: the ISN stays the SYN's.
        s.outbound_syn(C, true, 7000, Some(0), 0);
        assert_eq!(s.isns_distinct(), None, "one connection, one ISN");
        assert_eq!(s.local_offset(C, false), 7000);
    }

    #[test]
    fn the_isn_clock_rate_is_measured_between_incarnations_of_one_four_tuple() {
        let mut t = ScriptSpace::default();
        t.outbound_syn(C, false, 1000, Some(0), 0);
        t.connecting();
        t.outbound_syn(C, false, 2000, Some(0), 50_000);
        assert!(t.isn_clock_within(250_000.0, 1.0).unwrap_err().contains("50000 us apart"));
        let mut s = ScriptSpace::default();
        s.outbound_syn(C, false, u32::MAX - 100_000, Some(0), 0);
        assert!(s.isn_clock_within(250_000.0, 1.0).unwrap_err().contains("no earlier incarnation"));
        s.connecting();
        // 250,000 ticks in one second, across the 2^32 wrap.
        s.outbound_syn(C, false, 150_000 - 1, Some(0), 1_000_000);
        assert_eq!(s.isn_clock_within(250_000.0, 1.0), Ok(true));
        assert_eq!(s.isn_clock_within(15_625_000.0, 1.0), Ok(false));
    }

    #[test]
    fn the_next_incarnation_must_start_beyond_the_previous_ones_sequence_space() {
        let mut s = ScriptSpace::default();
        s.outbound_syn(C, false, 1000, Some(0), 0);
        s.outbound_end(C, 5000);
        assert_eq!(s.isn_beyond_previous(), Err("no earlier incarnation of this four-tuple"));
        s.connecting();
        s.outbound_syn(C, false, 4000, Some(0), 0);
        assert_eq!(s.isn_beyond_previous(), Ok(false), "4000 lies inside 1000..5000");
        s.connecting();
        s.outbound_syn(C, false, 6000, Some(0), 0);
        assert_eq!(s.isn_beyond_previous(), Ok(true));
    }
}
