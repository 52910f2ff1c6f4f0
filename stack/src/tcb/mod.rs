//! One TCP connection: its state, the RFC 9293 section 3.3.1 variables, its buffers and timers.
//!
//! - `input`: segment arrival, RFC 9293 section 3.10.7: `segment_arrives_syn_sent`, the eight steps of the
//!   synchronized states (`segment_arrives_synchronized`), TIME-WAIT (`segment_arrives_time_wait`).
//! - `output`: building and sending segments, options, window advertisement, Nagle.
//! - `timers`: the timer table and what each expiry does.
//! - `user`: the user calls of RFC 9293 3.10.1-3.10.5 (OPEN, SEND, RECEIVE, CLOSE, ABORT) on one connection.
//! - `rtt`, `congestion`, `reassembly`: the RFC 6298 estimator, congestion control (Reno), the out-of-order queue.
//! - `rack`: RACK-TLP (RFC 8985), time-based loss detection and the tail loss probe.
//!
//! A `Tcb` never does I/O: it appends datagrams to the `Ctx` it is handed and reads the time from it.

mod congestion;
pub(crate) mod input;
pub(crate) mod output;
mod rack;
mod reassembly;
mod rtt;
pub(crate) mod timers;
mod user;

use crate::config::Config;
use crate::errno::Errno;
use crate::isn::FourTuple;
use crate::seq::SeqNum;
use crate::time::Instant;
use core::fmt;
use core::time::Duration;
use std::collections::VecDeque;

use congestion::{CongestionControl, Reno};
use reassembly::Reassembly;
use rtt::RttEstimator;
pub use timers::Timer;
use timers::TimerTable;

/// The eleven states of RFC 9293 section 3.3.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TcpState {
    /// No connection.
    Closed,
    /// Waiting for a connection request.
    Listen,
    /// SYN sent, waiting for a matching SYN.
    SynSent,
    /// SYN received and SYN sent, waiting for the ACK of our SYN.
    SynReceived,
    /// Open: data flows both ways.
    Established,
    /// We closed; waiting for the ACK of our FIN or the peer's FIN.
    FinWait1,
    /// Our FIN is acknowledged; waiting for the peer's FIN.
    FinWait2,
    /// The peer closed; waiting for our application to close.
    CloseWait,
    /// Both closed at once; waiting for the ACK of our FIN.
    Closing,
    /// The peer closed, then we did; waiting for the ACK of our FIN.
    LastAck,
    /// Both closed; waiting 2 MSL so that the peer surely got our last ACK.
    TimeWait,
}

impl TcpState {
    /// Every state, in RFC order.
    pub const ALL: [TcpState; 11] = [
        TcpState::Closed,
        TcpState::Listen,
        TcpState::SynSent,
        TcpState::SynReceived,
        TcpState::Established,
        TcpState::FinWait1,
        TcpState::FinWait2,
        TcpState::CloseWait,
        TcpState::Closing,
        TcpState::LastAck,
        TcpState::TimeWait,
    ];

    /// Linux's number for the state (`tcpi_state`, `/proc/net/tcp`): TCP_ESTABLISHED = 1 ... TCP_CLOSING = 11.
    pub const fn linux_number(self) -> u8 {
        match self {
            TcpState::Established => 1,
            TcpState::SynSent => 2,
            TcpState::SynReceived => 3,
            TcpState::FinWait1 => 4,
            TcpState::FinWait2 => 5,
            TcpState::TimeWait => 6,
            TcpState::Closed => 7,
            TcpState::CloseWait => 8,
            TcpState::LastAck => 9,
            TcpState::Listen => 10,
            TcpState::Closing => 11,
        }
    }

    /// The state for a Linux number.
    pub fn from_linux_number(n: u8) -> Option<TcpState> {
        TcpState::ALL.into_iter().find(|s| s.linux_number() == n)
    }

    /// The RFC's name, e.g. `SYN-RECEIVED`.
    pub const fn rfc_name(self) -> &'static str {
        match self {
            TcpState::Closed => "CLOSED",
            TcpState::Listen => "LISTEN",
            TcpState::SynSent => "SYN-SENT",
            TcpState::SynReceived => "SYN-RECEIVED",
            TcpState::Established => "ESTABLISHED",
            TcpState::FinWait1 => "FIN-WAIT-1",
            TcpState::FinWait2 => "FIN-WAIT-2",
            TcpState::CloseWait => "CLOSE-WAIT",
            TcpState::Closing => "CLOSING",
            TcpState::LastAck => "LAST-ACK",
            TcpState::TimeWait => "TIME-WAIT",
        }
    }

    /// Linux's name, e.g. `TCP_SYN_RECV`, as scripts and `ss` spell it.
    pub const fn linux_name(self) -> &'static str {
        match self {
            TcpState::Closed => "TCP_CLOSE",
            TcpState::Listen => "TCP_LISTEN",
            TcpState::SynSent => "TCP_SYN_SENT",
            TcpState::SynReceived => "TCP_SYN_RECV",
            TcpState::Established => "TCP_ESTABLISHED",
            TcpState::FinWait1 => "TCP_FIN_WAIT1",
            TcpState::FinWait2 => "TCP_FIN_WAIT2",
            TcpState::CloseWait => "TCP_CLOSE_WAIT",
            TcpState::Closing => "TCP_CLOSING",
            TcpState::LastAck => "TCP_LAST_ACK",
            TcpState::TimeWait => "TCP_TIME_WAIT",
        }
    }

    /// Parses the RFC name, the Linux name, or the Linux name without `TCP_` (any case).
    pub fn from_name(name: &str) -> Option<TcpState> {
        let n = name.trim().to_ascii_uppercase().replace('_', "-");
        let n = n.strip_prefix("TCP-").unwrap_or(&n);
        TcpState::ALL
            .into_iter()
            .find(|s| s.rfc_name() == n || s.linux_name().trim_start_matches("TCP_").replace('_', "-") == n)
    }

    /// Whether the state is one of the synchronized states (RFC 9293 3.10.7.4 applies), SYN-RECEIVED included.
    pub const fn is_synchronized(self) -> bool {
        !matches!(self, TcpState::Closed | TcpState::Listen | TcpState::SynSent)
    }

    /// Whether RFC 9293's state diagram (plus the aborts every state has) allows `self -> to`.
    pub fn may_become(self, to: TcpState) -> bool {
        use TcpState::*;
        if to == Closed {
            return true; // ABORT, RST and timeouts reach CLOSED from anywhere
        }
        matches!(
            (self, to),
            (Closed, SynSent | Listen | SynReceived)
                | (Listen, SynSent | SynReceived)
                | (SynSent, SynReceived | Established)
                | (SynReceived, Established | FinWait1 | CloseWait | Listen)
                | (Established, FinWait1 | CloseWait)
                | (FinWait1, FinWait2 | Closing | TimeWait)
                | (FinWait2, TimeWait)
                | (CloseWait, LastAck)
                | (Closing, TimeWait)
                | (TimeWait, SynReceived)
        )
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.rfc_name())
    }
}

/// What a connection's processing of one input reports back to the host.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    pub now: Instant,
    pub config: &'a Config,
    /// Datagrams to transmit, in order.
    pub tx: Vec<Vec<u8>>,
    /// Host-wide challenge ACK budget for the current second (RFC 5961 section 7).
    pub challenge_acks: Option<&'a mut ChallengeAckBudget>,
}

/// RFC 5961 section 7: a host-wide limit on challenge ACKs per second (`tcp_challenge_ack_limit`).
#[derive(Debug, Default, Clone)]
pub struct ChallengeAckBudget {
    second: u64,
    used: u32,
}

impl ChallengeAckBudget {
    fn take(&mut self, now: Instant, limit: u32) -> bool {
        let s = now.micros() / 1_000_000;
        if s != self.second {
            self.second = s;
            self.used = 0;
        }
        if self.used >= limit {
            return false;
        }
        self.used += 1;
        true
    }
}

/// Options the connection negotiated on its SYNs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Negotiated {
    /// Window scaling on (both SYNs carried the option).
    pub window_scaling: bool,
    /// Shift we apply to the peer's advertised windows (the peer's option, clamped to 14).
    pub snd_wscale: u8,
    /// Shift the peer applies to our windows (our option).
    pub rcv_wscale: u8,
    /// SACK permitted in both directions.
    pub sack: bool,
    /// Timestamps on every segment.
    pub timestamps: bool,
    /// The MSS the peer announced (536 if it announced none).
    pub peer_mss: u16,
}

/// User-visible socket options that shape a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SockOpts {
    /// SO_KEEPALIVE.
    pub keepalive: bool,
    /// TCP_KEEPIDLE in seconds (None: the sysctl).
    pub keepidle: Option<u32>,
    /// TCP_KEEPINTVL in seconds (None: the sysctl).
    pub keepintvl: Option<u32>,
    /// TCP_KEEPCNT (None: the sysctl).
    pub keepcnt: Option<u32>,
    /// SO_LINGER: `Some(secs)` when l_onoff is 1.
    pub linger: Option<u32>,
    /// TCP_NODELAY.
    pub nodelay: bool,
    /// TCP_MAXSEG (0: none).
    pub user_mss: u16,
    /// TCP_USER_TIMEOUT in milliseconds (0: none).
    pub user_timeout_ms: u32,
    /// SO_RCVBUF as stored (Linux doubles the value given).
    pub rcvbuf: Option<u32>,
    /// SO_SNDBUF as stored (Linux doubles the value given).
    pub sndbuf: Option<u32>,
    /// SO_REUSEADDR.
    pub reuseaddr: bool,
}

/// One connection.
#[derive(Debug, Clone)]
pub struct Tcb {
    /// Addresses and ports.
    pub tuple: FourTuple,
    pub(crate) state: TcpState,
    /// Opened by a listener (passive): an RST in SYN-RECEIVED drops it silently (RFC 9293 3.10.7.4).
    pub(crate) passive: bool,
    /// Closed by the application (or never accepted): no fd refers to it.
    pub(crate) orphan: bool,

    // RFC 9293 3.3.1 send sequence variables.
    pub(crate) iss: SeqNum,
    pub(crate) snd_una: SeqNum,
    pub(crate) snd_nxt: SeqNum,
    /// Highest sequence number sent; SND.NXT goes back to SND.UNA on a retransmission timeout.
    pub(crate) snd_max: SeqNum,
    /// Send window in bytes (already scaled).
    pub(crate) snd_wnd: u32,
    pub(crate) snd_wl1: SeqNum,
    pub(crate) snd_wl2: SeqNum,
    /// Largest window the peer ever offered (RFC 5961 section 5.2's MAX.SND.WND).
    pub(crate) max_snd_wnd: u32,

    // Receive sequence variables.
    pub(crate) irs: SeqNum,
    pub(crate) rcv_nxt: SeqNum,
    /// Right edge of the window we last advertised: it never moves left (RFC 9293 SHLD-14).
    pub(crate) rcv_adv: SeqNum,

    pub(crate) opts: Negotiated,
    /// MSS we announced on our SYN.
    pub(crate) adv_mss: u16,
    /// Segment size for data we send: peer MSS, our MTU, TCP_MAXSEG, minus option bytes on every segment.
    pub(crate) snd_mss: u16,
    /// TS.Recent and Last.ACK.sent of RFC 7323 section 4.3.
    pub(crate) ts_recent: u32,
    pub(crate) ts_recent_stamp: Instant,
    pub(crate) last_ack_sent: SeqNum,
    /// Our TSval clock's origin (a per-connection offset, as Linux randomises it).
    pub(crate) ts_offset: u32,

    // Data.
    /// Bytes from `snd_buf_seq` on: sent-unacknowledged, then unsent.
    pub(crate) send_buf: VecDeque<u8>,
    /// Sequence number of `send_buf[0]`.
    pub(crate) snd_buf_seq: SeqNum,
    pub(crate) sndbuf_cap: usize,
    /// The application is done sending (close or SHUT_WR): a FIN follows the last byte.
    pub(crate) fin_queued: bool,
    /// In-order bytes not yet read by the application.
    pub(crate) recv_buf: VecDeque<u8>,
    pub(crate) rcvbuf_cap: usize,
    /// Out-of-order bytes beyond RCV.NXT.
    pub(crate) reasm: Reassembly,
    /// The peer's FIN has been processed: reads return end of file after the buffer.
    pub(crate) fin_received: bool,
    pub(crate) shut_rd: bool,
    pub(crate) shut_wr: bool,

    // Timers and retransmission (RFC 6298).
    pub(crate) timers: TimerTable,
    pub(crate) rtt: RttEstimator,
    /// Consecutive timeouts of the retransmission timer (reset by a new ACK).
    pub(crate) retransmits: u32,
    /// When the segment at SND.UNA was first sent (for the give-up time).
    pub(crate) retrans_stamp: Option<Instant>,
    /// Segment being timed for RTT: (sequence number it must cover, when it was sent). Karn: cleared on retransmit.
    pub(crate) rtt_probe: Option<(SeqNum, Instant)>,
    /// The peer's SACK blocks above SND.UNA, merged and in order (RFC 6675's scoreboard): empty without SACK.
    pub(crate) sacked: Vec<(SeqNum, SeqNum)>,
    /// Without SACK, the end of the last segment retransmitted in this recovery: a NewReno partial ACK below it
    /// retransmits nothing again (with SACK, RACK's records say what was resent).
    pub(crate) high_rxt: SeqNum,
    /// SND.MAX when the retransmission timer last fired, kept up with SND.UNA: below it no RACK recovery, loss
    /// probe or reordering window (RFC 6675 5.1; Linux's Loss state), the go-back-N resending everything.
    pub(crate) rto_high_data: SeqNum,
    /// Every data or FIN segment sent and not yet cumulatively acknowledged, in sequence order (RACK's records;
    /// kept only with SACK).
    pub(crate) sent: VecDeque<rack::Sent>,
    /// RACK-TLP's state (RFC 8985).
    pub(crate) rack: rack::Rack,
    /// A SYN or SYN-ACK was retransmitted (RFC 6298 5.7: RTO falls back to 3 s without an RTT sample).
    pub(crate) syn_retransmitted: bool,
    pub(crate) keepalive_probes_out: u32,
    /// Zero-window probes since the peer last answered one, plus one once it has (the give-up count: MUST-37 lets
    /// an answered window stay shut forever).
    pub(crate) persist_probes: u32,
    /// Doublings of the zero-window probe interval (SHLD-30); kept while the window stays shut, answered or not,
    /// as Linux's icsk_backoff; cleared when it opens.
    pub(crate) persist_shift: u32,
    /// Last time anything arrived (keepalive idle clock).
    pub(crate) last_rcv: Instant,
    /// Last time an ACK went out for an invalid segment (tcp_invalid_ratelimit).
    pub(crate) last_oow_ack: Option<Instant>,

    // Congestion control (RFC 5681 Reno).
    pub(crate) cc: Reno,
    /// End of the last sub-MSS segment sent (Minshall's variant of Nagle, as Linux's tcp_minshall_check).
    pub(crate) snd_sml: SeqNum,
    /// Where unacknowledged segments sent with PSH end, oldest first: a retransmission keeps its PSH, as Linux's
    /// retransmission of the same skb does (the flag belongs to the segment, not to when it is sent).
    pub(crate) push_ends: VecDeque<SeqNum>,

    // Acknowledgment policy.
    /// Segments received since the last ACK we sent.
    pub(crate) unacked_segs: u32,
    /// Linux starts in quick-ACK mode: the first segments are acknowledged at once.
    pub(crate) quickacks: u32,
    pub(crate) ack_now: bool,

    /// Error to report to the application (SO_ERROR, or the next call).
    pub(crate) error: Option<Errno>,
    /// The connection was reset or timed out (as opposed to closed in order).
    pub(crate) aborted: bool,
    /// The connection reached a synchronized state at some time (TCP_MAXSEG reads the MSS it learned after).
    pub(crate) was_synchronized: bool,
    /// shutdown() during SYN-SENT dropped the connection (Linux's tcp_disconnect): CLOSED with no side shut.
    pub(crate) disconnected: bool,
    pub(crate) sockopts: SockOpts,
    /// State changes not yet collected by the host: (from, to).
    pub(crate) transitions: Vec<(TcpState, TcpState)>,
}

/// Linux's TCP_TIMEOUT_INIT: the initial RTO.
pub const RTO_INITIAL: Duration = Duration::from_secs(1);
/// RFC 6298 5.7 / Linux's TCP_TIMEOUT_FALLBACK.
pub const RTO_FALLBACK: Duration = Duration::from_secs(3);
/// TIME-WAIT length (Linux's TCP_TIMEWAIT_LEN; 2 MSL with MSL = 30 s).
pub const TIME_WAIT_LEN: Duration = Duration::from_secs(60);
/// Minimum delayed-ACK timeout (Linux's TCP_DELACK_MIN).
pub const DELACK_MIN: Duration = Duration::from_millis(40);
/// Upper bound for the delayed-ACK timeout: RFC 9293 MUST-40 says less than 0.5 s.
pub const DELACK_MAX: Duration = Duration::from_millis(200);
/// Linux's TCP_MAX_QUICKACKS.
pub const MAX_QUICKACKS: u32 = 16;
/// Default MSS when the peer sends none (RFC 9293 MUST-15 / RFC 1122: 536 for IPv4).
pub const DEFAULT_MSS: u16 = 536;
/// The same for IPv6 (RFC 9293 MUST-15 via RFC 8200's 1280-octet minimum MTU: 1280 - 40 - 20 = 1220), which
/// Linux uses too (tcp_v6_connect, tcp_request_sock_ipv6_ops.mss_clamp).
pub const DEFAULT_MSS_IPV6: u16 = 1220;

/// The default MSS of a connection whose local address is `local`.
pub fn default_mss(local: &core::net::SocketAddr) -> u16 {
    if local.is_ipv4() {
        DEFAULT_MSS
    } else {
        DEFAULT_MSS_IPV6
    }
}
/// Initial congestion window in segments (RFC 6928, Linux's TCP_INIT_CWND).
pub const INIT_CWND_SEGS: u32 = 10;

impl Tcb {
    /// A fresh TCB in CLOSED for `tuple`, with ISS `iss`.
    pub(crate) fn new(tuple: FourTuple, iss: SeqNum, now: Instant, config: &Config, sockopts: SockOpts) -> Tcb {
        let rcvbuf = sockopts.rcvbuf.unwrap_or(config.tcp_rmem[1]) as usize;
        let sndbuf = sockopts.sndbuf.unwrap_or(config.tcp_wmem[1]) as usize;
        Tcb {
            tuple,
            state: TcpState::Closed,
            passive: false,
            orphan: false,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wnd: 0,
            snd_wl1: SeqNum(0),
            snd_wl2: SeqNum(0),
            max_snd_wnd: 0,
            irs: SeqNum(0),
            rcv_nxt: SeqNum(0),
            rcv_adv: SeqNum(0),
            opts: Negotiated { peer_mss: DEFAULT_MSS, ..Negotiated::default() },
            adv_mss: 0,
            snd_mss: DEFAULT_MSS,
            ts_recent: 0,
            ts_recent_stamp: now,
            last_ack_sent: SeqNum(0),
            ts_offset: iss.0.rotate_left(13),
            send_buf: VecDeque::new(),
            snd_buf_seq: iss + 1u32,
            sndbuf_cap: sndbuf,
            fin_queued: false,
            recv_buf: VecDeque::new(),
            rcvbuf_cap: rcvbuf,
            reasm: Reassembly::default(),
            fin_received: false,
            shut_rd: false,
            shut_wr: false,
            timers: TimerTable::default(),
            rtt: RttEstimator::default(),
            retransmits: 0,
            retrans_stamp: None,
            rtt_probe: None,
            sacked: Vec::new(),
            high_rxt: iss,
            rto_high_data: iss,
            sent: VecDeque::new(),
            rack: rack::Rack::default(),
            syn_retransmitted: false,
            keepalive_probes_out: 0,
            persist_probes: 0,
            persist_shift: 0,
            last_rcv: now,
            last_oow_ack: None,
            cc: Reno::default(),
            snd_sml: iss,
            push_ends: VecDeque::new(),
            unacked_segs: 0,
            quickacks: 0,
            ack_now: false,
            error: None,
            aborted: false,
            was_synchronized: false,
            disconnected: false,
            sockopts,
            transitions: Vec::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> TcpState {
        self.state
    }

    /// Options negotiated on the SYNs.
    pub fn negotiated(&self) -> Negotiated {
        self.opts
    }

    /// The congestion window in bytes.
    pub fn cwnd(&self) -> u32 {
        self.cc.cwnd()
    }

    /// Send variables (SND.UNA, SND.NXT, SND.WND) and receive variables (RCV.NXT), for tests and traces.
    pub fn seq_vars(&self) -> (SeqNum, SeqNum, u32, SeqNum) {
        (self.snd_una, self.snd_nxt, self.snd_wnd, self.rcv_nxt)
    }

    /// ISS and IRS.
    pub fn isn_pair(&self) -> (SeqNum, SeqNum) {
        (self.iss, self.irs)
    }

    /// What a person debugging a stuck connection asks first, on a few lines: the state, the sequence variables
    /// relative to the ISNs, the buffers, the windows, the armed timers, the retransmission and recovery state.
    pub fn summary(&self) -> String {
        let lost = self.sent.iter().filter(|r| r.lost).count();
        let rexmit = self.sent.iter().filter(|r| r.retransmitted).count();
        let sacked_recs = self.sent.iter().filter(|r| r.sacked).count();
        format!(
            "{} {}: snd.una {} snd.nxt {} snd.max {} snd.wnd {} (max {}), send buffer {} bytes from {}{}; rcv.nxt {} \
             rcv.adv {}, receive buffer {} bytes, reassembly (at, len) {:?}{}\n  mss {}, {:?}, rto {:?} srtt {:?} us, \
             retransmits {}, rto_high_data {}, high_rxt {}, sacked {:?}\n  records {} (lost {lost}, retransmitted \
             {rexmit}, sacked {sacked_recs}), {:?}\n  timers {:?}",
            self.tuple,
            self.state,
            self.snd_una - self.iss,
            self.snd_nxt - self.iss,
            self.snd_max - self.iss,
            self.snd_wnd,
            self.max_snd_wnd,
            self.send_buf.len(),
            self.snd_buf_seq - self.iss,
            if self.fin_queued { ", FIN queued" } else { "" },
            self.rcv_nxt - self.irs,
            self.rcv_adv - self.irs,
            self.recv_buf.len(),
            self.reasm.blocks().map(|(at, d)| (at - self.irs, d.len())).collect::<Vec<_>>(),
            if self.fin_received { ", FIN received" } else { "" },
            self.snd_mss,
            self.cc,
            self.rtt.rto(),
            self.rtt.srtt_us(),
            self.retransmits,
            self.rto_high_data - self.iss,
            self.high_rxt - self.iss,
            self.sacked.iter().map(|(a, b)| (*a - self.iss, *b - self.iss)).collect::<Vec<_>>(),
            self.sent.len(),
            self.rack,
            self.timers,
        )
    }

    pub(crate) fn set_state(&mut self, to: TcpState) {
        let from = self.state;
        if from == to {
            return;
        }
        debug_assert!(from.may_become(to), "{}: {from} -> {to} is not in RFC 9293's diagram", self.tuple);
        self.state = to;
        self.was_synchronized |= to.is_synchronized();
        self.transitions.push((from, to));
    }

    /// Bytes of data sent and not yet acknowledged, SYN and FIN excluded.
    pub(crate) fn in_flight(&self) -> u32 {
        (self.snd_nxt - self.snd_una).max(0) as u32
    }

    /// Whether our FIN has been sent and acknowledged.
    pub(crate) fn fin_acked(&self) -> bool {
        self.fin_queued && self.fin_seq().is_some_and(|f| self.snd_una > f)
    }

    /// Sequence number of our FIN once the application has queued it.
    pub(crate) fn fin_seq(&self) -> Option<SeqNum> {
        self.fin_queued.then(|| self.snd_buf_seq + self.send_buf.len())
    }

    /// Checks the invariants the property tests and fuzzers rely on; `Err` names the broken one.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.state == TcpState::Closed || self.state == TcpState::Listen {
            return Ok(());
        }
        if self.snd_nxt - self.snd_una < 0 {
            return Err(format!("SND.UNA {} > SND.NXT {}", self.snd_una, self.snd_nxt));
        }
        if self.snd_max - self.snd_nxt < 0 {
            return Err(format!("SND.NXT {} > SND.MAX {}", self.snd_nxt, self.snd_max));
        }
        if self.state.is_synchronized() && self.state != TcpState::SynReceived && self.snd_buf_seq > self.snd_una + 1u32
        {
            return Err(format!("send buffer starts at {} beyond SND.UNA {}", self.snd_buf_seq, self.snd_una));
        }
        for (start, data) in self.reasm.blocks() {
            if start - self.rcv_nxt <= 0 || data.is_empty() {
                return Err(format!("out-of-order block at {start} not beyond RCV.NXT {}", self.rcv_nxt));
            }
        }
        Ok(())
    }
}
