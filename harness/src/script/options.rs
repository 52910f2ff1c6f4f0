//! The header options a script may set (`--tolerance_usecs=10000`): packetdrill's command-line options
//! (config.c) plus tcpdrill's own, each with the value it takes. The parser refuses any other name (with the
//! nearest known one) and any malformed value; the executor honours each known option or skips the script with
//! the sentence [`HeaderOptionSpec::unsupported`] gives, never ignoring one silently.

/// What an option's value must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// No value (`--strict_segments`).
    Flag,
    /// A whole number in the range.
    Int(i64, i64),
    /// A non-negative decimal number.
    Number,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// An IPv4 or IPv6 address.
    Address,
    /// Any text.
    Text,
}

/// One header option.
#[derive(Debug, Clone, Copy)]
pub struct HeaderOptionSpec {
    /// Its name without dashes.
    pub name: &'static str,
    /// What its value must be.
    pub value: Value,
    /// Why tcpdrill's backends cannot honour it, if they cannot; `None` if the executor does what it says.
    pub unsupported: Option<&'static str>,
}

const fn honoured(name: &'static str, value: Value) -> HeaderOptionSpec {
    HeaderOptionSpec { name, value, unsupported: None }
}

const fn refused(name: &'static str, value: Value, why: &'static str) -> HeaderOptionSpec {
    HeaderOptionSpec { name, value, unsupported: Some(why) }
}

/// Every option a script header may carry.
pub const HEADER_OPTIONS: &[HeaderOptionSpec] = &[
    honoured("ip_version", Value::Choice(&["ipv4", "ipv6", "ipv4-mapped-ipv6"])),
    honoured("bind_port", Value::Int(1, 65_535)),
    honoured("connect_port", Value::Int(1, 65_535)),
    // The addresses are honoured when they are the ones tcpdrill's backends use (packetdrill's defaults).
    honoured("local_ip", Value::Address),
    honoured("remote_ip", Value::Address),
    honoured("gateway_ip", Value::Address),
    honoured("netmask_ip", Value::Address),
    honoured("mtu", Value::Int(68, 65_535)),
    honoured("tolerance_usecs", Value::Int(0, i64::MAX / 4)),
    honoured("tolerance_percent", Value::Number),
    honoured("tcp_ts_tick_usecs", Value::Int(1, 1_000_000_000)),
    // tcpdrill always maps an inbound TS ecr by the learned offset, which is what this flag asks for.
    honoured("tcp_ts_ecr_scaled", Value::Flag),
    honoured("strict_segments", Value::Flag),
    // About packetdrill's own memory and output; nothing for a backend to do.
    honoured("send_omit_free", Value::Flag),
    honoured("verbose", Value::Flag),
    honoured("debug", Value::Flag),
    // tcpdrill's own: `--tso=off` shows the linux backend's segments as they go on the wire.
    honoured("tso", Value::Choice(&["on", "off"])),
    refused("mss", Value::Int(1, 65_535), "--mss (the GSO size of injected packets) is not supported"),
    refused("speed", Value::Int(0, i64::MAX), "--speed (the TUN device's link speed) is not supported"),
    refused("init_scripts", Value::Text, "--init_scripts is not supported: put the commands in the script"),
    refused("non_fatal", Value::Text, "--non_fatal is not supported: in tcpdrill every mismatch fails the script"),
    refused("dry_run", Value::Flag, "--dry_run: use `tcpdrill check` to parse a script without running it"),
    refused("is_anyip", Value::Flag, "--is_anyip is not supported"),
    refused("define", Value::Text, "--define in a script header is not supported: use -D on the command line"),
    refused("code_command", Value::Text, "--code_command is not supported: %{ }% blocks run with python3"),
    refused("code_format", Value::Text, "--code_format is not supported: %{ }% blocks are Python"),
    refused("code_sockopt", Value::Text, "--code_sockopt is not supported: %{ }% blocks see TCP_INFO"),
    refused("so_filename", Value::Text, "--so_filename (a stack as a shared object) is not supported"),
    refused("so_flags", Value::Text, "--so_flags (a stack as a shared object) is not supported"),
    refused("psp_udp_port", Value::Int(1, 65_535), "--psp_udp_port (PSP encryption) is not supported"),
    refused("wire_client", Value::Flag, "packetdrill's wire client is not supported"),
    refused("wire_server", Value::Flag, "packetdrill's wire server is not supported"),
    refused("wire_server_ip", Value::Address, "packetdrill's wire client is not supported"),
    refused("wire_server_at", Value::Text, "packetdrill's wire client is not supported"),
    refused("wire_server_port", Value::Int(1, 65_535), "packetdrill's wire client is not supported"),
    refused("wire_client_dev", Value::Text, "packetdrill's wire client is not supported"),
    refused("wire_server_dev", Value::Text, "packetdrill's wire server is not supported"),
];

/// The option named `name`.
pub fn spec(name: &str) -> Option<&'static HeaderOptionSpec> {
    HEADER_OPTIONS.iter().find(|o| o.name == name)
}

impl HeaderOptionSpec {
    /// Why `value` does not fit, if it does not.
    pub fn check(&self, value: Option<&str>) -> Result<(), String> {
        let name = self.name;
        let v = match (self.value, value) {
            (Value::Flag, None) => return Ok(()),
            (Value::Flag, Some(v)) => return Err(format!("--{name} takes no value (found ={v})")),
            (_, None) => return Err(format!("--{name} needs a value: --{name}=...")),
            (_, Some(v)) => v,
        };
        match self.value {
            Value::Flag | Value::Text => Ok(()),
            Value::Int(lo, hi) => match v.parse::<i64>() {
                Ok(n) if (lo..=hi).contains(&n) => Ok(()),
                Ok(n) => Err(format!("--{name}={n} is out of range ({lo} to {hi})")),
                Err(_) => Err(format!("--{name}={v:?} is not a whole number")),
            },
            Value::Number => match v.parse::<f64>() {
                Ok(n) if n.is_finite() && n >= 0.0 => Ok(()),
                _ => Err(format!("--{name}={v:?} is not a non-negative number")),
            },
            Value::Choice(words) if words.contains(&v) => Ok(()),
            Value::Choice(words) => Err(format!("--{name}={v:?} is not one of {}", words.join(", "))),
            Value::Address => {
                v.parse::<std::net::IpAddr>().map(|_| ()).map_err(|_| format!("--{name}={v:?} is not an IP address"))
            }
        }
    }
}
