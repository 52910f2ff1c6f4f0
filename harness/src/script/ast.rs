//! The typed AST of a script. Every node carries its byte span in the source. Spans never take part in
//! equality: two ASTs are equal when they mean the same script, wherever its pieces were written.

use core::fmt;

/// A byte range in the (preprocessed, same-length) source. Equality ignores it; see the module docs.
#[derive(Clone, Copy, Default)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// The range `start..end`.
    pub const fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }
    /// Smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end) }
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }
    /// Whether the span is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl PartialEq for Span {
    fn eq(&self, _: &Span) -> bool {
        true
    }
}

impl Eq for Span {}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(s: Span) -> miette::SourceSpan {
        (s.start, s.len()).into()
    }
}

/// A whole script.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Script {
    /// `--name=value` header lines.
    pub options: Vec<HeaderOption>,
    /// Untimed backquote commands before the first event (packetdrill's init commands).
    pub init: Vec<Command>,
    /// The timed events.
    pub events: Vec<Event>,
    /// Untimed backquote commands after the last event.
    pub cleanup: Vec<Command>,
}

/// A `--name=value` header line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderOption {
    /// The name without dashes.
    pub name: String,
    /// The value as written (quotes removed), if any.
    pub value: Option<String>,
    /// Where.
    pub span: Span,
}

/// A backquote shell command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The text between the backquotes.
    pub text: String,
    /// Where.
    pub span: Span,
}

/// One point of script time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimePoint {
    /// Microseconds.
    pub micros: i64,
    /// Written with `+`: relative to the previous event.
    pub relative: bool,
}

/// When an event happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSpec {
    /// `0.1` or `+0.1`.
    At(TimePoint),
    /// `*`: any time (outbound packets only).
    Any,
    /// `a~b`: any time in the range (outbound packets only).
    Range(TimePoint, TimePoint),
    /// `a...b`: a blocking syscall started at `a` that returns at `b`.
    Blocking(TimePoint, TimePoint),
}

impl TimePoint {
    /// The script time this point names when relative times count from `base`.
    pub fn at(self, base: i64) -> i64 {
        if self.relative {
            base.saturating_add(self.micros)
        } else {
            self.micros
        }
    }
}

impl TimeSpec {
    /// The window `(start, end)` of script time this event is due in, microseconds, by packetdrill's rules
    /// (run.c, `adjust_relative_event_times`), where `base` is the time relative times count from: one offset
    /// moves both ends of `+a~+b` (`[base+a, base+b]`) and the end of a blocking `+a...b` (`base+b`), while
    /// `a~b` and `a...b` are absolute. `*` is `(base, i64::MAX)`. The parser admits only these forms
    /// (packetdrill's grammar has no `+a~b`, `a~+b` or `...+b`).
    pub fn window(&self, base: i64) -> (i64, i64) {
        match *self {
            TimeSpec::At(p) => (p.at(base), p.at(base)),
            TimeSpec::Any => (base, i64::MAX),
            TimeSpec::Range(a, b) => (a.at(base), b.at(base)),
            TimeSpec::Blocking(a, b) => {
                let end = TimePoint { relative: a.relative, ..b };
                (a.at(base), end.at(base))
            }
        }
    }
}

/// A timed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// When.
    pub time: TimeSpec,
    /// Span of the time.
    pub time_span: Span,
    /// What.
    pub action: Action,
    /// The whole event.
    pub span: Span,
}

/// What an event does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `<` or `>` packet.
    Packet(Packet),
    /// A socket call and its expected result.
    Syscall(Syscall),
    /// A backquote command.
    Shell(Command),
    /// A `%{ python }%` block, kept verbatim.
    Code(Code),
}

/// A `%{ ... }%` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    /// The text between the delimiters.
    pub text: String,
    /// Where.
    pub span: Span,
}

/// Packet direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `<`: the script injects it.
    Inbound,
    /// `>`: the stack must send it.
    Outbound,
}

/// ECN codepoint marks: `[noecn]`, `[ect0]`, `[ect1]`, `[ce]`, and `[ect01]` (either ECT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ecn {
    /// Not-ECT.
    NoEcn,
    /// ECT(0).
    Ect0,
    /// ECT(1).
    Ect1,
    /// Either ECT codepoint (outbound only).
    Ect01,
    /// Congestion experienced.
    Ce,
}

impl Ecn {
    /// The two ECN bits of the TOS byte (RFC 3168); `ect01` sets none.
    pub const fn bits(self) -> u8 {
        match self {
            Ecn::NoEcn | Ecn::Ect01 => 0,
            Ecn::Ect1 => 1,
            Ecn::Ect0 => 2,
            Ecn::Ce => 3,
        }
    }

    /// The notation.
    pub const fn name(self) -> &'static str {
        match self {
            Ecn::NoEcn => "noecn",
            Ecn::Ect0 => "ect0",
            Ecn::Ect1 => "ect1",
            Ecn::Ect01 => "ect01",
            Ecn::Ce => "ce",
        }
    }
}

/// What a packet line says of its IP header's TOS (IPv6: traffic class) byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tos {
    /// Only the two ECN bits: `ect0`, `ce`, ...
    Ecn(Ecn),
    /// The whole byte: `tos 0x2` (nplab's `class 0x2` for IPv6 says the same).
    Byte(u8),
    /// nplab's `dscp 0x2e` / `dscp ef`: the six DSCP bits only (the ECN bits unchecked outbound, zero inbound);
    /// with `ecn ect01` beside it, also either ECT codepoint (outbound only).
    Dscp {
        /// The DSCP value (0..64).
        dscp: u8,
        /// `, ecn ect01`.
        ect01: bool,
    },
}

/// packetdrill's `ip_info`: the IP-layer fields a packet line sets (inbound) or checks (outbound), written in
/// parentheses or brackets after the direction, `< [ect0] S ...`, `> (tos 0x2, flowlabel 0x1) ...`,
/// `< (ttl 64) ...`. Unwritten fields are the defaults inbound and unchecked outbound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IpInfo {
    /// The TOS byte or its ECN bits.
    pub tos: Option<Tos>,
    /// IPv6 flow label (20 bits); packetdrill ignores it on IPv4, and so does tcpdrill.
    pub flow_label: Option<u32>,
    /// IPv4 TTL or IPv6 hop limit (`ttl N`, nplab's `hlim N`).
    pub ttl: Option<u8>,
}

impl IpInfo {
    /// Nothing written.
    pub fn is_empty(&self) -> bool {
        *self == IpInfo::default()
    }

    /// The ECN mark, when the TOS is written as one.
    pub fn ecn(&self) -> Option<Ecn> {
        match self.tos {
            Some(Tos::Ecn(e)) => Some(e),
            _ => None,
        }
    }
}

/// An outer header of an encapsulated packet line, written before the packet's own IP fields (packetdrill's
/// `packet_prefix`): `< ipv4 192.0.2.1 > 192.0.2.2: gre: S 0:0(0) win 1000`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encap {
    /// `ipv4 [ip_info] SRC > DST:`.
    Ipv4 {
        /// The outer header's TOS and TTL.
        ip: IpInfo,
        /// Source.
        src: std::net::Ipv4Addr,
        /// Destination.
        dst: std::net::Ipv4Addr,
    },
    /// `ipv6 [ip_info] SRC > DST:`.
    Ipv6 {
        /// The outer header's traffic class and hop limit.
        ip: IpInfo,
        /// Source.
        src: std::net::Ipv6Addr,
        /// Destination.
        dst: std::net::Ipv6Addr,
    },
    /// `gre:` or `gre flags [...] sum N off N key N seq N:`.
    Gre(Option<GreHeader>),
    /// `mpls (label N, tc N, [S], ttl N) ...:`.
    Mpls(Vec<MplsEntry>),
}

/// The fields of a GRE header written out (packetdrill's `gre_header_expression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GreHeader {
    /// The flag bits: `flags [checksum present, key present, sequence# present]` or `flags 0x..`.
    pub flags: u16,
    /// `sum N`.
    pub sum: u16,
    /// `off N`.
    pub off: u16,
    /// `key N`.
    pub key: u32,
    /// `seq N`.
    pub seq: u32,
}

impl GreHeader {
    /// Checksum present (RFC 2784).
    pub const CHECKSUM: u16 = 0x8000;
    /// Key present (RFC 2890).
    pub const KEY: u16 = 0x2000;
    /// Sequence number present (RFC 2890).
    pub const SEQUENCE: u16 = 0x1000;
}

/// One MPLS label stack entry (RFC 3032).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MplsEntry {
    /// 20-bit label.
    pub label: u32,
    /// 3-bit traffic class.
    pub tc: u8,
    /// `[S]`: the bottom of the stack.
    pub bottom: bool,
    /// TTL.
    pub ttl: u8,
}

/// A packet line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// `<` or `>`.
    pub direction: Direction,
    /// Outer headers, outermost first (empty for the usual packet line).
    pub outer: Vec<Encap>,
    /// The IP-layer fields written before the transport part.
    pub ip: IpInfo,
    /// The transport part.
    pub body: PacketBody,
    /// Where.
    pub span: Span,
}

/// The transport part of a packet line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketBody {
    /// TCP.
    Tcp(TcpSpec),
    /// `udp [src>dst] (len)`.
    Udp {
        /// Explicit ports.
        ports: Option<(u16, u16)>,
        /// Payload length.
        len: u32,
    },
    /// `icmp TYPE [CODE] [mtu N] [id N] [[echoed]]`.
    Icmp(IcmpSpec),
}

/// An ICMP (ICMPv6 under `--ip_version=ipv6`) packet line, as packetdrill's `icmp_packet_spec` has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcmpSpec {
    /// The type's name (`unreachable`, `time_exceeded`, `echo_request`, ...: packetdrill's icmp_packet.c names).
    pub kind: String,
    /// The code's name (`frag_needed`, `port_unreachable`, ...), if written.
    pub code: Option<String>,
    /// `mtu N` (fragmentation needed / packet too big).
    pub mtu: Option<u32>,
    /// `id N` (echo).
    pub id: Option<u32>,
    /// What the ICMP message quotes, in brackets; TCP `[0:0(0)]` when not written, as packetdrill has it.
    pub echoed: Option<Echoed>,
}

/// The packet an ICMP error quotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Echoed {
    /// `[start:end(len)]`, nplab's `[start:end(len) /udp(a>b)]` for TCP over UDP.
    Tcp {
        /// Start sequence number.
        seq: u32,
        /// Payload length.
        len: u32,
        /// nplab's UDP encapsulation ports.
        udp_encap: Option<(u16, u16)>,
    },
    /// `[udp(len)]`.
    Udp(u32),
    /// `[raw(len)]`.
    Raw(u32),
    /// nplab's `[sctp(tag)]` (with its `/udp(a>b)`).
    Sctp {
        /// Verification tag.
        tag: u32,
        /// nplab's UDP encapsulation ports.
        udp_encap: Option<(u16, u16)>,
    },
    /// nplab's `[udplite(len, coverage)]`.
    UdpLite(u32, u32),
}

/// A TCP packet line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSpec {
    /// Explicit `src>dst` ports.
    pub ports: Option<(u16, u16)>,
    /// Flag letters, normalised to packetdrill's order (`-` for none).
    pub flags: String,
    /// Span of the flags.
    pub flags_span: Span,
    /// Start sequence number; `None` for nplab's `...(N)` (unchecked).
    pub seq: Option<u32>,
    /// Payload length.
    pub len: u32,
    /// Span of `seq:end(len)`.
    pub seq_span: Span,
    /// `ack N`.
    pub ack: Option<u32>,
    /// `win N`; omitted on `>` means unchecked.
    pub win: Option<u32>,
    /// `urg N`.
    pub urg: Option<u32>,
    /// The option list; `None` when absent (no options), `Some(Options::Any)` for `<...>`.
    pub options: Option<Options>,
    /// tcpdrill's `bad_csum`: an inbound segment sent with a wrong TCP checksum (RFC 9293 MUST-3).
    pub bad_csum: bool,
    /// packetdrill's `encap psp spi N` (PSP encryption, after the IP fields).
    pub psp_spi: Option<u32>,
    /// nplab's `/udp(src>dst)` after the options: TCP over UDP (RFC 8229-style encapsulation, FreeBSD's
    /// `net.inet.tcp.udp_tunneling_port`).
    pub udp_encap: Option<(u16, u16)>,
}

/// A TCP option list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Options {
    /// `<...>`: options unchecked.
    Any,
    /// The listed options in order, with the span of the list.
    List(Vec<TcpOpt>, Span),
}

/// One TCP option as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpOpt {
    /// `nop`.
    Nop,
    /// `eol`.
    Eol,
    /// `mss N`.
    Mss(u16),
    /// `wscale N`.
    WScale(u8),
    /// `sackOK`.
    SackOk,
    /// `sack a:b c:d`.
    Sack(Vec<(u32, u32)>),
    /// `TS val N ecr N`; `...` (None) is unchecked.
    Ts {
        /// TSval.
        val: Option<u32>,
        /// TSecr.
        ecr: Option<u32>,
    },
    /// `FO [hex]`.
    FastOpen(Vec<u8>),
    /// `FOEXP [hex]`.
    FastOpenExp(Vec<u8>),
    /// `md5 [hex]`.
    Md5(Vec<u8>),
    /// tcpdrill's `bytes 0xHEX`: raw bytes put into the options area as they are, length bytes included, to craft
    /// malformed options (inbound packets only).
    Bytes(Vec<u8>),
    /// packetdrill's AccECN option, `ECN e0b N ceb N e1b N` (kind 172, AccECN0) or `ECN e1b N ceb N e0b N`
    /// (kind 174, AccECN1): the byte counters in the order written, one to three of them, 24 bits each.
    AccEcn {
        /// Whether the first counter is EE1B (AccECN1) rather than EE0B.
        order1: bool,
        /// The counters present.
        counters: Vec<u32>,
    },
    /// tcpdrill's `opt KIND [0xHEX]` for any other kind.
    Raw {
        /// Kind.
        kind: u8,
        /// Data after the length byte.
        data: Vec<u8>,
    },
}

impl TcpOpt {
    /// AccECN0's option kind (RFC 9768 section 3.2.3).
    pub const ACCECN0: u8 = 172;
    /// AccECN1's option kind.
    pub const ACCECN1: u8 = 174;

    /// The option's length on the wire, as packetdrill builds it (`md5` is always its 18 bytes).
    pub fn wire_len(&self) -> usize {
        match self {
            TcpOpt::Nop | TcpOpt::Eol => 1,
            TcpOpt::Mss(_) => 4,
            TcpOpt::WScale(_) => 3,
            TcpOpt::SackOk => 2,
            TcpOpt::Sack(b) => 2 + 8 * b.len(),
            TcpOpt::Ts { .. } => 10,
            TcpOpt::FastOpen(c) => 2 + c.len(),
            TcpOpt::FastOpenExp(c) => 4 + c.len(),
            TcpOpt::Md5(_) => 18,
            TcpOpt::AccEcn { counters, .. } => 2 + 3 * counters.len(),
            TcpOpt::Raw { data, .. } => 2 + data.len(),
            TcpOpt::Bytes(b) => b.len(),
        }
    }

    /// The kind and data bytes of an AccECN option: its counters, 24 bits each, big-endian.
    pub fn acc_ecn_wire(&self) -> Option<(u8, Vec<u8>)> {
        match self {
            TcpOpt::AccEcn { order1, counters } => Some((
                if *order1 { Self::ACCECN1 } else { Self::ACCECN0 },
                counters.iter().flat_map(|c| c.to_be_bytes()[1..].to_vec()).collect(),
            )),
            _ => None,
        }
    }
}

/// A socket call with its expected outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syscall {
    /// The call's name.
    pub name: String,
    /// Span of the name.
    pub name_span: Span,
    /// Arguments.
    pub args: Vec<Expr>,
    /// Expected return value.
    pub result: Expr,
    /// Expected errno, e.g. `ECONNREFUSED`.
    pub errno: Option<(String, Span)>,
    /// The parenthesised text after the result (`(Connection refused)`), ignored when checking.
    pub note: Option<String>,
}

/// An expression in a syscall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where.
    pub span: Span,
}

/// The kinds of expressions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExprKind {
    /// `...`: anything / the harness fills it in.
    Ellipsis,
    /// An integer (decimal, hex or negative).
    Int(i64),
    /// A symbol such as `SOCK_STREAM`.
    Symbol(String),
    /// A string literal.
    Str(String),
    /// `[a, b]`.
    List(Vec<Expr>),
    /// `{name=value, ...}`; a field name is itself an expression (`msg_iov(1)=...`).
    Struct(Vec<(Option<Expr>, Expr)>),
    /// `a | b | c`.
    Or(Vec<Expr>),
    /// `htons(8080)`, `inet_addr("1.2.3.4")`.
    Call(String, Vec<Expr>),
}

impl Expr {
    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self.kind {
            ExprKind::Int(i) => Some(i),
            _ => None,
        }
    }
    /// The symbol, if this is one.
    pub fn as_symbol(&self) -> Option<&str> {
        match &self.kind {
            ExprKind::Symbol(s) => Some(s),
            _ => None,
        }
    }
}
