//! Every knob of the reference stack, named after the Linux sysctl it mirrors, with Linux's default.
//!
//! Defaults are those of a fresh network namespace on Linux 6.18 (read from `/proc/sys` inside `unshare -n`),
//! so that a script passes on the reference stack and on the kernel alike. Where Linux breaks an RFC MUST
//! (SYN give-up before 180 s, RST killing TIME-WAIT), the default still follows Linux and the conformance suite
//! documents the divergence.

use core::fmt;

/// The stack's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `net.ipv4.tcp_syn_retries`: SYN retransmissions before an active open gives up (plus
    /// `tcp_syn_linear_timeouts`, as Linux counts them).
    pub tcp_syn_retries: u32,
    /// `net.ipv4.tcp_synack_retries`: SYN-ACK retransmissions before a passive open is dropped.
    pub tcp_synack_retries: u32,
    /// `net.ipv4.tcp_syn_linear_timeouts`: SYN retransmissions made at a fixed RTO before backoff starts.
    pub tcp_syn_linear_timeouts: u32,
    /// `net.ipv4.tcp_fin_timeout`: seconds an orphaned FIN-WAIT-2 connection lives.
    pub tcp_fin_timeout: u32,
    /// `net.ipv4.tcp_keepalive_time`: idle seconds before the first keepalive probe.
    pub tcp_keepalive_time: u32,
    /// `net.ipv4.tcp_keepalive_intvl`: seconds between keepalive probes.
    pub tcp_keepalive_intvl: u32,
    /// `net.ipv4.tcp_keepalive_probes`: unanswered probes before the connection is reset.
    pub tcp_keepalive_probes: u32,
    /// `net.ipv4.tcp_rfc1337`: 1 ignores RST in TIME-WAIT (RFC 1337); 0 lets it kill TIME-WAIT (Linux).
    pub tcp_rfc1337: u32,
    /// `net.ipv4.tcp_syncookies`: 0 never, 1 when the SYN queue is full, 2 always.
    pub tcp_syncookies: u32,
    /// `net.ipv4.tcp_max_syn_backlog`: SYN queue bound (connections in SYN-RECEIVED) per listener.
    pub tcp_max_syn_backlog: u32,
    /// `net.core.somaxconn`: cap on listen()'s backlog.
    pub somaxconn: u32,
    /// `net.core.rmem_max`: with `tcp_rmem[2]`, sets the window-scale shift Linux announces.
    pub rmem_max: u32,
    /// `net.ipv4.tcp_abort_on_overflow`: 1 answers a third ACK that finds the accept queue full with RST.
    pub tcp_abort_on_overflow: u32,
    /// `net.ipv4.tcp_timestamps`: 1 enables RFC 7323 timestamps.
    pub tcp_timestamps: u32,
    /// `net.ipv4.tcp_window_scaling`: 1 enables RFC 7323 window scaling.
    pub tcp_window_scaling: u32,
    /// `net.ipv4.tcp_sack`: 1 offers and accepts SACK-permitted.
    pub tcp_sack: u32,
    /// `net.ipv4.tcp_recovery`: bit 0x4 keeps RACK's reordering window when three segments are SACKed (Linux's
    /// TCP_RACK_NO_DUPTHRESH). Bit 0x1 (RACK itself) is recorded only: RACK is always on for SACK connections, as
    /// on Linux 6.18 (measured: tcp_recovery=0 leaves it on there); 0x2 (a static window) is what the stack has.
    pub tcp_recovery: u32,
    /// `net.ipv4.tcp_early_retrans`: 3 or 4 turn on the tail loss probe (RFC 8985 section 7).
    pub tcp_early_retrans: u32,
    /// `net.ipv4.tcp_challenge_ack_limit`: host-wide challenge ACKs per second (RFC 5961 section 7).
    pub tcp_challenge_ack_limit: u32,
    /// `net.ipv4.tcp_invalid_ratelimit`: milliseconds between two ACKs a connection sends for invalid segments.
    pub tcp_invalid_ratelimit: u32,
    /// `net.ipv4.tcp_rmem`: min, default and max receive buffer bytes.
    pub tcp_rmem: [u32; 3],
    /// `net.ipv4.tcp_wmem`: min, default and max send buffer bytes.
    pub tcp_wmem: [u32; 3],
    /// `net.ipv4.tcp_retries2`: data retransmissions before an established connection gives up.
    pub tcp_retries2: u32,
    /// `net.ipv4.tcp_orphan_retries`: retransmissions for orphaned connections (0 means 8, as on Linux).
    pub tcp_orphan_retries: u32,
    /// `net.ipv4.tcp_rto_min_us`: lower bound of the RTO, microseconds.
    pub tcp_rto_min_us: u32,
    /// `net.ipv4.tcp_rto_max_ms`: upper bound of the RTO, milliseconds.
    pub tcp_rto_max_ms: u32,
    /// `net.ipv4.tcp_tw_reuse`: 0 off, 1 on, 2 loopback only. Only recorded: outgoing connections never reuse
    /// a TIME-WAIT 4-tuple in this stack (the loopback-only default has the same effect here).
    pub tcp_tw_reuse: u32,
    /// `net.ipv4.tcp_ecn`: recorded; the reference stack does not negotiate ECN.
    pub tcp_ecn: u32,
    /// `net.ipv4.tcp_min_snd_mss`: lowest MSS accepted from a peer.
    pub tcp_min_snd_mss: u32,
    /// `net.ipv4.tcp_adv_win_scale`: share of the receive buffer advertised as window (1: half).
    pub tcp_adv_win_scale: i32,
    /// `net.ipv4.ip_local_port_range`: ephemeral ports for connect() and bind(port 0).
    pub ip_local_port_range: [u16; 2],
    /// Link MTU of the host's interface (not a sysctl): the MSS offered is MTU - 40 (IPv4) or - 60 (IPv6).
    pub mtu: u32,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            tcp_syn_retries: 6,
            tcp_synack_retries: 5,
            tcp_syn_linear_timeouts: 4,
            tcp_fin_timeout: 60,
            tcp_keepalive_time: 7200,
            tcp_keepalive_intvl: 75,
            tcp_keepalive_probes: 9,
            tcp_rfc1337: 0,
            tcp_syncookies: 1,
            tcp_max_syn_backlog: 2048,
            somaxconn: 4096,
            rmem_max: 4_194_304,
            tcp_abort_on_overflow: 0,
            tcp_timestamps: 1,
            tcp_window_scaling: 1,
            tcp_sack: 1,
            tcp_recovery: 1,
            tcp_early_retrans: 3,
            tcp_challenge_ack_limit: i32::MAX as u32,
            tcp_invalid_ratelimit: 500,
            tcp_rmem: [4096, 131_072, 33_554_432],
            tcp_wmem: [4096, 16_384, 4_194_304],
            tcp_retries2: 15,
            tcp_orphan_retries: 0,
            tcp_rto_min_us: 200_000,
            tcp_rto_max_ms: 120_000,
            tcp_tw_reuse: 2,
            tcp_ecn: 2,
            tcp_min_snd_mss: 48,
            tcp_adv_win_scale: 1,
            ip_local_port_range: [32768, 60999],
            mtu: 1500,
        }
    }
}

/// Why [`Config::set`] refused a setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// No knob has that name.
    UnknownName {
        /// The name given.
        name: String,
        /// The closest known name, if any is close.
        suggestion: Option<&'static str>,
    },
    /// The value does not parse or is out of range for the knob.
    BadValue {
        /// The knob.
        name: &'static str,
        /// The value given.
        value: String,
        /// What the knob takes.
        expected: &'static str,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::UnknownName { name, suggestion: Some(s) } => {
                write!(f, "unknown sysctl {name:?} (did you mean {s}?)")
            }
            ConfigError::UnknownName { name, suggestion: None } => write!(f, "unknown sysctl {name:?}"),
            ConfigError::BadValue { name, value, expected } => {
                write!(f, "bad value {value:?} for {name}: expected {expected}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

type Setter = fn(&mut Config, &str) -> Result<(), &'static str>;

fn num<T: core::str::FromStr + PartialOrd>(v: &str, lo: T, hi: T) -> Result<T, &'static str> {
    match v.trim().parse::<T>() {
        Ok(n) if n >= lo && n <= hi => Ok(n),
        _ => Err("a number in range"),
    }
}

fn triple(v: &str) -> Result<[u32; 3], &'static str> {
    let parts: Vec<u32> =
        v.split_whitespace().map(str::parse).collect::<Result<_, _>>().map_err(|_| "three numbers")?;
    match parts[..] {
        [a, b, c] if a <= b && b <= c => Ok([a, b, c]),
        _ => Err("three ascending numbers (min default max)"),
    }
}

macro_rules! knobs {
    ($($path:literal => $field:ident : $lo:expr, $hi:expr;)*) => {
        const KNOBS: &[(&str, Setter)] = &[
            $(($path, |c, v| { c.$field = num(v, $lo, $hi)?; Ok(()) }),)*
            ("net.ipv4.tcp_rmem", |c, v| { c.tcp_rmem = triple(v)?; Ok(()) }),
            ("net.ipv4.tcp_wmem", |c, v| { c.tcp_wmem = triple(v)?; Ok(()) }),
            ("net.ipv4.ip_local_port_range", |c, v| {
                let p: Vec<u16> = v.split_whitespace().map(str::parse).collect::<Result<_, _>>().map_err(|_| "two ports")?;
                match p[..] { [a, b] if 0 < a && a <= b => { c.ip_local_port_range = [a, b]; Ok(()) } _ => Err("two ascending ports") }
            }),
            // Accepted so that a script can ask Linux for Reno (a fresh namespace runs BBR) and the same line means
            // the same on both backends; anything else would silently test a different algorithm.
            ("net.ipv4.tcp_congestion_control", |_, v| match v.trim() {
                "reno" => Ok(()),
                _ => Err("reno (the reference stack's only congestion control)"),
            }),
            // The same for D-SACK (RFC 2883), which the reference stack does not send: a script turns it off on
            // Linux to compare the SACK blocks both stacks must send.
            ("net.ipv4.tcp_dsack", |_, v| match v.trim() {
                "0" => Ok(()),
                _ => Err("0 (the reference stack sends no D-SACK blocks)"),
            }),
        ];
        const GETTERS: &[(&str, fn(&Config) -> String)] = &[
            $(($path, |c| c.$field.to_string()),)*
            ("net.ipv4.tcp_rmem", |c| format!("{}\t{}\t{}", c.tcp_rmem[0], c.tcp_rmem[1], c.tcp_rmem[2])),
            ("net.ipv4.tcp_wmem", |c| format!("{}\t{}\t{}", c.tcp_wmem[0], c.tcp_wmem[1], c.tcp_wmem[2])),
            ("net.ipv4.ip_local_port_range", |c| format!("{}\t{}", c.ip_local_port_range[0], c.ip_local_port_range[1])),
            ("net.ipv4.tcp_congestion_control", |_| "reno".to_string()),
            ("net.ipv4.tcp_dsack", |_| "0".to_string()),
        ];
    };
}

knobs! {
    "net.ipv4.tcp_syn_retries" => tcp_syn_retries: 1, 127;
    "net.ipv4.tcp_synack_retries" => tcp_synack_retries: 0, 255;
    "net.ipv4.tcp_syn_linear_timeouts" => tcp_syn_linear_timeouts: 0, 10;
    "net.ipv4.tcp_fin_timeout" => tcp_fin_timeout: 0, 86_400;
    "net.ipv4.tcp_keepalive_time" => tcp_keepalive_time: 1, 32_767;
    "net.ipv4.tcp_keepalive_intvl" => tcp_keepalive_intvl: 1, 32_767;
    "net.ipv4.tcp_keepalive_probes" => tcp_keepalive_probes: 1, 127;
    "net.ipv4.tcp_rfc1337" => tcp_rfc1337: 0, 1;
    "net.ipv4.tcp_syncookies" => tcp_syncookies: 0, 2;
    "net.ipv4.tcp_max_syn_backlog" => tcp_max_syn_backlog: 1, 1 << 24;
    "net.core.somaxconn" => somaxconn: 0, 1 << 24;
    "net.core.rmem_max" => rmem_max: 2048, i32::MAX as u32;
    "net.ipv4.tcp_abort_on_overflow" => tcp_abort_on_overflow: 0, 1;
    "net.ipv4.tcp_timestamps" => tcp_timestamps: 0, 2;
    "net.ipv4.tcp_window_scaling" => tcp_window_scaling: 0, 1;
    "net.ipv4.tcp_sack" => tcp_sack: 0, 1;
    "net.ipv4.tcp_recovery" => tcp_recovery: 0, 7;
    "net.ipv4.tcp_early_retrans" => tcp_early_retrans: 0, 4;
    "net.ipv4.tcp_challenge_ack_limit" => tcp_challenge_ack_limit: 0, u32::MAX;
    "net.ipv4.tcp_invalid_ratelimit" => tcp_invalid_ratelimit: 0, 3_600_000;
    "net.ipv4.tcp_retries2" => tcp_retries2: 0, 255;
    "net.ipv4.tcp_orphan_retries" => tcp_orphan_retries: 0, 255;
    "net.ipv4.tcp_rto_min_us" => tcp_rto_min_us: 1, 120_000_000;
    "net.ipv4.tcp_rto_max_ms" => tcp_rto_max_ms: 1_000, 120_000;
    "net.ipv4.tcp_tw_reuse" => tcp_tw_reuse: 0, 2;
    "net.ipv4.tcp_ecn" => tcp_ecn: 0, 5;
    "net.ipv4.tcp_min_snd_mss" => tcp_min_snd_mss: 48, 65_535;
    "net.ipv4.tcp_adv_win_scale" => tcp_adv_win_scale: -31, 31;
}

impl Config {
    /// Sets a knob by its sysctl name, as `sysctl -w` would: `net.ipv4.tcp_syn_retries`, or with slashes
    /// (`net/ipv4/tcp_syn_retries`), or the bare `tcp_syn_retries`.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let full = Self::canonical(name)
            .ok_or_else(|| ConfigError::UnknownName { name: name.to_string(), suggestion: Self::nearest(name) })?;
        let (knob, setter) = KNOBS.iter().find(|(n, _)| *n == full).expect("canonical names are knobs");
        setter(self, value).map_err(|expected| ConfigError::BadValue { name: knob, value: value.to_string(), expected })
    }

    /// Reads a knob by its sysctl name, formatted as `sysctl -n` prints it.
    pub fn get(&self, name: &str) -> Option<String> {
        let full = Self::canonical(name)?;
        GETTERS.iter().find(|(n, _)| *n == full).map(|(_, g)| g(self))
    }

    /// Every knob's full sysctl name.
    pub fn names() -> impl Iterator<Item = &'static str> {
        KNOBS.iter().map(|(n, _)| *n)
    }

    fn canonical(name: &str) -> Option<&'static str> {
        let dotted = name.trim().replace('/', ".");
        KNOBS.iter().map(|(n, _)| *n).find(|n| *n == dotted || n.rsplit('.').next() == Some(dotted.as_str()))
    }

    fn nearest(name: &str) -> Option<&'static str> {
        let bare = name.rsplit(['.', '/']).next().unwrap_or(name);
        Self::names()
            .map(|n| (strsim::levenshtein(bare, n.rsplit('.').next().unwrap_or(n)), n))
            .filter(|(d, _)| *d <= 3)
            .min()
            .map(|(_, n)| n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_by_any_spelling() {
        let mut c = Config::default();
        c.set("net.ipv4.tcp_syn_retries", "2").unwrap();
        assert_eq!(c.tcp_syn_retries, 2);
        c.set("net/ipv4/tcp_rfc1337", "1").unwrap();
        assert_eq!(c.tcp_rfc1337, 1);
        c.set("tcp_rmem", "4096 87380 6291456").unwrap();
        assert_eq!(c.tcp_rmem, [4096, 87380, 6_291_456]);
        assert_eq!(c.get("tcp_rmem").as_deref(), Some("4096\t87380\t6291456"));
        c.set("net.core.somaxconn", "5").unwrap();
        assert_eq!(c.get("somaxconn").as_deref(), Some("5"));
    }

    #[test]
    fn clear_errors() {
        let mut c = Config::default();
        let e = c.set("net.ipv4.tcp_syn_retrys", "2").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown sysctl \"net.ipv4.tcp_syn_retrys\" (did you mean net.ipv4.tcp_syn_retries?)"
        );
        let e = c.set("net.ipv4.tcp_syncookies", "3").unwrap_err();
        assert!(matches!(e, ConfigError::BadValue { name: "net.ipv4.tcp_syncookies", .. }), "{e}");
        assert!(c.set("tcp_rmem", "1 2").is_err());
        assert!(c.set("net.inet.tcp.rfc1323", "1").is_err(), "FreeBSD names are not Linux knobs");
        assert!(c.set("tcp_congestion_control", "cubic").is_err(), "only the algorithm the stack has");
        c.set("tcp_congestion_control", "reno").unwrap();
        assert_eq!(c.get("tcp_congestion_control").as_deref(), Some("reno"));
        assert_eq!(c, Config::default(), "failed sets change nothing");
    }
}
