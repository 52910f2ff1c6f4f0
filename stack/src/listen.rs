//! LISTEN sockets (RFC 9293 3.10.7.2): the SYN queue, the accept queue, their overflow policy, and SYN cookies.
//!
//! Queue rules follow Linux (tcp_conn_request, tcp_check_req), so that scripts pass on both:
//! - the SYN queue (children in SYN-RECEIVED) is full when it holds more than `backlog` entries (measured on
//!   6.18: `listen(fd, 0)` still answers one SYN); a SYN finding it full gets a cookie
//!   if `tcp_syncookies` >= 1, else it is dropped. `tcp_syncookies = 2` always answers with a cookie;
//! - the accept queue is full when it holds more than `backlog` (Linux's `sk_acceptq_is_full` is `>`): a SYN
//!   is then dropped, and a third ACK is dropped too (the child stays in SYN-RECEIVED and its SYN-ACK timer
//!   keeps running) or, with `tcp_abort_on_overflow = 1`, answered with a RST;
//! - with cookies off, a SYN is also dropped once fewer than a quarter of `tcp_max_syn_backlog` slots are free.
//!
//! The listener decides and builds; the host files what it returns (the child into its demux table and the SYN
//! queue) and sends what it put in the context.

use crate::config::Config;
use crate::isn::{FourTuple, IsnGenerator, TupleHasher};
use crate::seq::SeqNum;
use crate::tcb::output::reset_for;
use crate::tcb::{Ctx, SockOpts, Tcb, TcpState};
use crate::time::Instant;
use crate::wire::{TcpFlags, TcpRepr};
use core::net::SocketAddr;
use std::collections::{BTreeSet, VecDeque};

/// MSS values a SYN cookie can encode (Linux's msstab).
pub const COOKIE_MSS: [u16; 4] = [536, 1300, 1440, 1460];
/// The same for IPv6 (Linux's msstab of syncookies.c for IPv6: 1280, 1480, 1500 and 9000 less 60 octets of
/// headers).
pub const COOKIE_MSS_IPV6: [u16; 4] = [1220, 1420, 1440, 8940];

/// The MSS table of a cookie for connection `t`.
fn cookie_table(t: &FourTuple) -> &'static [u16; 4] {
    if t.local.is_ipv4() {
        &COOKIE_MSS
    } else {
        &COOKIE_MSS_IPV6
    }
}
/// A cookie's time counter ticks every 64 s; a cookie is accepted during the tick it was made and the next.
const COOKIE_TICK_SECS: u64 = 64;

/// One listening socket.
#[derive(Debug, Clone)]
pub struct Listener {
    /// The address it listens on (IP may be unspecified).
    pub local: SocketAddr,
    /// listen()'s backlog, capped at `somaxconn`.
    pub backlog: u32,
    /// Children in SYN-RECEIVED.
    pub syn_queue: BTreeSet<FourTuple>,
    /// Children established and not yet accepted, oldest first.
    pub accept_queue: VecDeque<FourTuple>,
    /// Options children inherit.
    pub sockopts: SockOpts,
}

impl Listener {
    pub(crate) fn new(local: SocketAddr, backlog: u32, sockopts: SockOpts) -> Listener {
        Listener { local, backlog, syn_queue: BTreeSet::new(), accept_queue: VecDeque::new(), sockopts }
    }

    /// Linux's `sk_acceptq_is_full`.
    pub fn accept_queue_full(&self) -> bool {
        self.accept_queue.len() > self.backlog as usize
    }

    /// Linux's `inet_csk_reqsk_queue_is_full` (`>`, as measured on 6.18).
    pub fn syn_queue_full(&self) -> bool {
        self.syn_queue.len() > self.backlog as usize
    }
}

/// What a listener did with one segment; the segments it answers with are in the [`Ctx`].
#[derive(Debug)]
pub(crate) struct Listened {
    /// A new connection for the SYN queue (a SYN answered), or already established (a cookie's ACK).
    pub child: Option<Tcb>,
    /// A SYN cookie was sent, or came back valid.
    pub cookie: Option<CookieUse>,
}

/// A SYN cookie's two moments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CookieUse {
    /// A SYN-ACK went out with a cookie as its ISS.
    Sent,
    /// An ACK returned a valid cookie.
    Accepted,
}

/// What a full accept queue does to the third ACK of a handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overflow {
    /// Dropped: the child stays in SYN-RECEIVED and may complete later.
    Drop,
    /// `tcp_abort_on_overflow = 1`: answered with a RST, the child deleted.
    Reset,
}

impl Listener {
    /// RFC 9293 3.10.7.2, LISTEN. `reopen_iss` is set when TIME-WAIT handed over a SYN that reopens its
    /// connection (RFC 6191): that SYN is answered with the given ISS and bypasses the queue limits.
    pub(crate) fn segment_arrives(
        &self,
        ctx: &mut Ctx<'_>,
        cookies: &SynCookies,
        isn: &IsnGenerator,
        tuple: FourTuple,
        seg: &TcpRepr<'_>,
        reopen_iss: Option<SeqNum>,
    ) -> Listened {
        let mut out = Listened { child: None, cookie: None };
        let f = seg.flags;
        let cfg = ctx.config;
        // "First, check for a RST: An incoming RST segment could not be valid ... it should be ignored."
        if f.rst() {
            return out;
        }
        // "Second, check for an ACK: Any acknowledgment is bad if it arrives on a connection still in the LISTEN
        // state. An acceptable reset segment should be formed for any arriving ACK-bearing segment." A valid
        // SYN cookie is the exception: it opens the connection the SYN asked for.
        if f.ack() {
            if !f.syn() && cfg.tcp_syncookies != 0 {
                if let Some(mss) = cookies.check(ctx.now, &tuple, seg.seq, seg.ack) {
                    out.cookie = Some(CookieUse::Accepted);
                    if !self.accept_queue_full() {
                        // Else as Linux: the ACK is dropped; the peer's retransmission may find room.
                        out.child = Some(Tcb::from_cookie(ctx, tuple, self.sockopts, seg, mss));
                    }
                    return out;
                }
            }
            ctx.tx.push(reset_for(&tuple, seg));
            return out;
        }
        // "Third, check for a SYN". "Fourth, other data or control: ... drop the segment, and return."
        if !f.syn() {
            return out;
        }
        let mut want_cookie = false;
        if reopen_iss.is_none() && (cfg.tcp_syncookies == 2 || self.syn_queue_full()) {
            if cfg.tcp_syncookies == 0 {
                return out; // SYN queue full, no cookies: drop
            }
            want_cookie = true;
        }
        if self.accept_queue_full() {
            return out;
        }
        if !want_cookie && reopen_iss.is_none() && cfg.tcp_syncookies == 0 {
            let max = cfg.tcp_max_syn_backlog as usize;
            if max.saturating_sub(self.syn_queue.len()) < max >> 2 {
                return out;
            }
        }
        if want_cookie {
            send_cookie_syn_ack(ctx, cookies, tuple, seg);
            out.cookie = Some(CookieUse::Sent);
            return out;
        }
        let iss = reopen_iss.unwrap_or_else(|| SeqNum(isn.isn(ctx.now, &tuple)));
        out.child = Some(Tcb::from_syn(ctx, tuple, iss, self.sockopts, seg));
        out
    }

    /// The third ACK of a handshake finds the accept queue full (Linux's tcp_check_req -> listen_overflow).
    pub(crate) fn third_ack_overflow(&self, config: &Config, child: &Tcb, seg: &TcpRepr<'_>) -> Option<Overflow> {
        let f = seg.flags;
        let third_ack = child.state == TcpState::SynReceived && child.passive && f.ack() && !f.rst() && !f.syn();
        if !(third_ack && child.acks_our_syn(seg) && self.accept_queue_full()) {
            return None;
        }
        // Dropping leaves the child in SYN-RECEIVED, its SYN-ACK timer running (Linux's `acked` request socket):
        // a later ACK or data segment may still find room.
        Some(if config.tcp_abort_on_overflow != 0 { Overflow::Reset } else { Overflow::Drop })
    }
}

impl Tcb {
    /// The child a SYN opens in LISTEN: "Set RCV.NXT to SEG.SEQ+1, IRS is set to SEG.SEQ ... ISS should be
    /// selected and a SYN segment sent of the form: <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>" and the state is
    /// SYN-RECEIVED. Data on a SYN is not queued (as Linux without TFO).
    fn from_syn(ctx: &mut Ctx<'_>, tuple: FourTuple, iss: SeqNum, sockopts: SockOpts, seg: &TcpRepr<'_>) -> Tcb {
        let mut t = Tcb::new(tuple, iss, ctx.now, ctx.config, sockopts);
        t.passive = true;
        t.init_receive_side(ctx);
        t.take_peer_syn(ctx, seg);
        t.set_state(TcpState::SynReceived);
        t.send_syn(ctx);
        t
    }

    /// The connection a valid cookie's ACK opens: the SYN-RECEIVED child that SYN would have made (without the
    /// options a cookie cannot carry), then the ACK processed as SYN-RECEIVED processes it.
    fn from_cookie(ctx: &mut Ctx<'_>, tuple: FourTuple, sockopts: SockOpts, seg: &TcpRepr<'_>, mss: u16) -> Tcb {
        let mut t = Tcb::new(tuple, seg.ack - 1u32, ctx.now, ctx.config, sockopts);
        t.passive = true;
        t.init_receive_side(ctx);
        t.opts.rcv_wscale = 0;
        t.adv_mss = t.adv_mss.min(1460);
        t.irs = seg.seq - 1u32;
        t.rcv_nxt = seg.seq;
        t.opts.peer_mss = mss;
        t.update_snd_mss(ctx);
        t.snd_nxt = t.iss + 1u32;
        t.snd_max = t.snd_nxt;
        t.rcv_adv = t.rcv_nxt + (t.rcv_space(ctx).min(65_535));
        t.set_state(TcpState::SynReceived);
        t.segment_arrives(ctx, seg);
        t
    }
}

/// A SYN-ACK whose ISS is a cookie; no state is kept. It offers only the MSS: the other options would need state
/// (Linux encodes them in the timestamp; the reference stack does not).
fn send_cookie_syn_ack(ctx: &mut Ctx<'_>, cookies: &SynCookies, tuple: FourTuple, seg: &TcpRepr<'_>) {
    let peer_mss = seg.options.mss().unwrap_or(crate::tcb::default_mss(&tuple.local));
    let iss = cookies.make(ctx.now, &tuple, seg.seq, peer_mss);
    let mut t = Tcb::new(tuple, iss, ctx.now, ctx.config, SockOpts::default());
    t.init_receive_side(ctx);
    t.rcv_nxt = seg.seq + 1u32;
    t.opts.rcv_wscale = 0;
    // Not a state change anyone sees: this TCB only shapes the one segment and is dropped.
    t.state = TcpState::SynReceived;
    t.send_segment(ctx, TcpFlags::SYN | TcpFlags::ACK, iss, &[]);
}

/// SYN cookies: the ISS of a SYN-ACK sent without keeping state encodes a coarse time, the MSS index and a keyed
/// hash of the 4-tuple and the peer's ISN; the ACK's SEG.ACK - 1 gives it back.
///
/// Layout: 5 bits of time counter, 2 bits of MSS index, 25 bits of hash.
#[derive(Debug, Clone)]
pub struct SynCookies {
    hasher: TupleHasher,
}

impl SynCookies {
    /// Keyed from the host's seed.
    pub fn new(seed: u64) -> SynCookies {
        SynCookies { hasher: TupleHasher::new(seed, 0xc00c1e) }
    }

    fn tick(now: Instant) -> u64 {
        now.micros() / 1_000_000 / COOKIE_TICK_SECS
    }

    fn hash(&self, t: &FourTuple, tick: u64, mss_idx: u32, irs: SeqNum) -> u32 {
        (self.hasher.hash(t, (tick << 40) ^ (u64::from(mss_idx) << 32) ^ u64::from(irs.0)) as u32) & 0x01ff_ffff
    }

    /// The cookie ISS for a SYN with sequence number `irs` announcing `peer_mss`.
    pub fn make(&self, now: Instant, t: &FourTuple, irs: SeqNum, peer_mss: u16) -> SeqNum {
        let mss_idx = cookie_table(t).iter().rposition(|&m| m <= peer_mss).unwrap_or(0) as u32;
        let tick = Self::tick(now);
        SeqNum((((tick & 0x1f) as u32) << 27) | (mss_idx << 25) | self.hash(t, tick, mss_idx, irs))
    }

    /// Checks the cookie an ACK returns (`ack - 1`, for a SYN with sequence `seq - 1`); gives the MSS it encodes.
    pub fn check(&self, now: Instant, t: &FourTuple, seq: SeqNum, ack: SeqNum) -> Option<u16> {
        let cookie = (ack - 1u32).0;
        let irs = seq - 1u32;
        let mss_idx = (cookie >> 25) & 3;
        let now_tick = Self::tick(now);
        [now_tick, now_tick.wrapping_sub(1)]
            .into_iter()
            .filter(|tick| (tick & 0x1f) as u32 == cookie >> 27)
            .any(|tick| self.hash(t, tick, mss_idx, irs) == cookie & 0x01ff_ffff)
            .then_some(cookie_table(t)[mss_idx as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple() -> FourTuple {
        FourTuple { local: "192.168.0.1:8080".parse().unwrap(), remote: "192.0.2.1:50000".parse().unwrap() }
    }

    #[test]
    fn cookie_round_trip_and_expiry() {
        let c = SynCookies::new(42);
        let t = tuple();
        let irs = SeqNum(1000);
        let iss = c.make(Instant::from_secs(100), &t, irs, 1460);
        assert_eq!(c.check(Instant::from_secs(101), &t, irs + 1u32, iss + 1u32), Some(1460));
        assert_eq!(c.check(Instant::from_secs(100 + 64), &t, irs + 1u32, iss + 1u32), Some(1460), "next tick");
        assert_eq!(c.check(Instant::from_secs(100 + 200), &t, irs + 1u32, iss + 1u32), None, "expired");
        assert_eq!(c.check(Instant::from_secs(101), &t, irs + 2u32, iss + 1u32), None, "another peer ISN");
        assert_eq!(c.check(Instant::from_secs(101), &t, irs + 1u32, iss + 2u32), None, "another cookie");
        let other = FourTuple { remote: "192.0.2.1:50001".parse().unwrap(), ..t };
        assert_eq!(c.check(Instant::from_secs(101), &other, irs + 1u32, iss + 1u32), None, "another tuple");
        let small = c.make(Instant::from_secs(100), &t, irs, 1000);
        assert_eq!(c.check(Instant::from_secs(100), &t, irs + 1u32, small + 1u32), Some(536), "MSS rounds down");
    }
}
