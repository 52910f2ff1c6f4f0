//! The `tcpdrill` command.

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use tcpdrill::script::{self, ParseOptions};
use tcpdrill_stack::wire::{Checksums, TcpDatagram};

mod dropin;

#[derive(Parser)]
#[command(name = "tcpdrill", version, about = "TCP conformance and fuzz test harness")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scripts (files, or folders searched recursively for .pkt) and report each one and a summary.
    Run {
        /// Scripts or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The TCP to test: reference (tcpdrill's own stack, virtual clock), linux (the kernel, in a network
        /// namespace of each script's own; needs root), raw (any stack on the link --interface names, see the
        /// raw backend's options), smoltcp (the smoltcp crate's TCP, in-process, virtual clock), a comma-separated
        /// list of them, or both (reference and linux).
        #[arg(long, default_value = "reference")]
        backend: String,
        /// Scripts run at once (each linux run in a namespace of its own); default: the number of CPUs.
        #[arg(long, short = 'j', value_name = "N")]
        jobs: Option<usize>,
        /// Print every injected and sniffed packet, call and state change with its time.
        #[arg(long, short)]
        verbose: bool,
        /// Define a symbol for #ifdef and substitution: -D NAME or -D NAME=VALUE.
        #[arg(short = 'D', value_name = "NAME[=VALUE]")]
        define: Vec<String>,
        /// Set a sysctl before each script starts, e.g. --sysctl net.ipv4.tcp_rfc1337=1 (repeatable).
        #[arg(long, value_name = "NAME=VALUE")]
        sysctl: Vec<String>,
        /// Print a ladder diagram of each run: tcpdrill | stack, one arrow per segment, states and calls.
        #[arg(long)]
        diagram: bool,
        /// Write the packets to a pcap file (for several scripts: a folder with one FILE/<script>.pcap each).
        #[arg(long, value_name = "FILE")]
        pcap: Option<PathBuf>,
        /// Multiply every timing tolerance (for a slow machine running the real-time linux backend).
        #[arg(long, default_value_t = 1.0, value_name = "FACTOR")]
        tolerance_scale: f64,
        #[command(flatten)]
        report: ReportArgs,
        #[command(flatten)]
        limits: Limits,
    },
    /// Run each script on the reference stack and on Linux and print a table script x backend; for scripts whose
    /// results differ, the first divergent line and what each backend did there. Exit 1 if any script differs.
    Diff {
        /// Scripts or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Scripts run at once; default: the number of CPUs.
        #[arg(long, short = 'j', value_name = "N")]
        jobs: Option<usize>,
        /// Define a symbol for #ifdef and substitution: -D NAME or -D NAME=VALUE.
        #[arg(short = 'D', value_name = "NAME[=VALUE]")]
        define: Vec<String>,
        /// Set a sysctl on both backends before each script starts (repeatable).
        #[arg(long, value_name = "NAME=VALUE")]
        sysctl: Vec<String>,
        /// Multiply every timing tolerance.
        #[arg(long, default_value_t = 1.0, value_name = "FACTOR")]
        tolerance_scale: f64,
        /// The backends to compare, the first against each of the others.
        #[arg(long, default_value = "reference,linux", value_name = "A,B,...")]
        backends: String,
        #[command(flatten)]
        report: ReportArgs,
        #[command(flatten)]
        limits: Limits,
    },
    /// Differential fuzzing: generate random but meaningful scripts (a handshake, then segments near the windows'
    /// edges, calls and time steps), record what the first backend does with each, check the second against
    /// that, and shrink each distinct divergence to a short script written to --out with what each backend did
    /// at its first divergent line. Cases repeat from --seed. Exit 1 if anything diverged.
    Fuzz {
        /// FIRST,SECOND: scripts record what FIRST does and are checked on SECOND.
        #[arg(long, default_value = "reference,smoltcp", value_name = "A,B")]
        backends: String,
        /// The seed cases are generated from.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Stop after this many seconds (shrinking a last finding may take a little longer).
        #[arg(long, default_value_t = 60.0, value_name = "SECS")]
        time: f64,
        /// Stop after this many cases.
        #[arg(long, value_name = "N")]
        cases: Option<u64>,
        /// Cases at once; default: the number of CPUs.
        #[arg(long, short = 'j', value_name = "N")]
        jobs: Option<usize>,
        /// Events after the handshake, at most.
        #[arg(long, default_value_t = 8, value_name = "N")]
        max_events: usize,
        /// Checks one shrink may spend.
        #[arg(long, default_value_t = 300, value_name = "N")]
        shrink_budget: usize,
        /// Where each distinct divergence's script goes, and SUMMARY.md.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Report what the suite covers: the RFC requirements its scripts are tagged with (`// requirement: MUST-13`)
    /// and each script's result on both backends, as markdown; or, with --transitions, the state x stimulus matrix
    /// the reference stack went through.
    Coverage {
        /// Scripts or folders (names in the report are relative to a single folder given).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print the transition matrix instead (terminal table; markdown with --output).
        #[arg(long)]
        transitions: bool,
        /// Write the markdown report to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Compare the report with FILE and exit 1 if it differs (for CI).
        #[arg(long, value_name = "FILE", conflicts_with = "output")]
        check: Option<PathBuf>,
        /// Scripts run at once; default: the number of CPUs.
        #[arg(long, short = 'j', value_name = "N")]
        jobs: Option<usize>,
        /// The backends with a column (comma-separated, e.g. reference,linux,raw); default: every one that can run
        /// here (raw only when pointed at a link).
        #[arg(long, value_name = "LIST")]
        backends: Option<String>,
        /// The runs' results for machines on standard output (JUnit, JSON, TAP, KTAP: as `run --format`), in
        /// place of the markdown report, which --output still writes.
        #[arg(long, value_enum, default_value = "human", conflicts_with = "transitions")]
        format: tcpdrill::report::formats::Format,
        /// With --format json: each run's trace too.
        #[arg(long)]
        with_trace: bool,
        /// Write a static HTML report into DIR: a page per run (as `run --html`), and suite.html with the
        /// requirements table and the state diagram and matrix of what the suite drove the reference stack through.
        #[arg(long, value_name = "DIR", conflicts_with = "transitions")]
        html: Option<PathBuf>,
        #[command(flatten)]
        limits: Limits,
    },
    /// Parse scripts (files, or folders searched recursively for .pkt) and report problems with
    /// file:line:column and a caret; exit 1 if any has an error.
    Check {
        /// Scripts or folders.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print each script back in canonical notation.
        #[arg(long)]
        print: bool,
        /// Define a symbol for #ifdef and substitution: -D NAME or -D NAME=VALUE.
        #[arg(short = 'D', value_name = "NAME[=VALUE]")]
        define: Vec<String>,
        /// Backend whose predefined symbols apply (reference: tcpdrill_ref, linux: Linux).
        #[arg(long, default_value = "reference")]
        backend: String,
    },
    /// Write the mutation-testing report (scripts/MUTANTS.md) from a cargo-mutants run: the broken reference
    /// stacks the suite rejects, by file, and every survivor with its explanation from --explained or marked as
    /// wanting a script. See the README's "Mutation testing".
    MutantsReport {
        /// cargo-mutants' output folders (each holding outcomes.json; several for the shards of one run).
        #[arg(default_value = "mutants.out")]
        dirs: Vec<PathBuf>,
        /// The markdown table of explanations for survivors.
        #[arg(long, default_value = "scripts/mutants-explained.md", value_name = "FILE")]
        explained: PathBuf,
        /// Where the run came from, for the report's header (say the commit and the command).
        #[arg(long, default_value = "", value_name = "TEXT")]
        source: String,
        /// Write the report to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Also write, for each script, the mutants it rejects (read from the runs' logs), for `coverage`'s
        /// asserted column: scripts/mutants-kills.tsv.
        #[arg(long, value_name = "FILE")]
        kills: Option<PathBuf>,
        /// The mutants of the commit reported on (`cargo mutants --list --json > FILE`): verdicts from runs at an
        /// earlier commit count only for the mutants it still has, and the total is its length.
        #[arg(long, value_name = "FILE")]
        current: Option<PathBuf>,
    },
    /// Print IP/TCP datagrams given as hex in packetdrill notation (one datagram per argument, or one per
    /// line on standard input when no argument is given).
    Decode {
        /// Hex bytes of an IPv4 or IPv6 datagram; whitespace and ':' are ignored.
        hex: Vec<String>,
        /// Accept datagrams whose checksums do not verify (captures taken with checksum offload).
        #[arg(long)]
        ignore_checksums: bool,
    },
    /// Serve the reference stack as a real TCP on the real clock, behind a TUN device in a network namespace of
    /// its own, with echo (RFC 862), discard (863), chargen (864) and a sink that prints each connection's byte
    /// count and SHA-256; talk to it from that namespace (`ip netns exec tcpdrill-serve nc 192.0.2.2 7`). Runs
    /// until interrupted or --duration is over. Needs root.
    Serve {
        #[command(flatten)]
        stack: StackArgs,
        /// A service and its port (repeatable; default: echo:7 discard:9 chargen:19 sink:5001).
        #[arg(long = "service", value_name = "NAME:PORT")]
        services: Vec<String>,
        /// Stop after this many seconds.
        #[arg(long, value_name = "SECS")]
        duration: Option<f64>,
        /// Inject a SYN flood of N SYNs from spoofed 203.0.113.0/24 addresses, through the shim, towards the
        /// stack (its answers are swallowed and counted): what SYN cookies and the SYN queue are for.
        #[arg(long, value_name = "N")]
        syn_flood: Option<u32>,
        /// The port the flood's SYNs go to (default: the first service's).
        #[arg(long, value_name = "PORT", requires = "syn_flood")]
        syn_flood_port: Option<u16>,
        /// The flood's rate, in SYNs per millisecond.
        #[arg(long, default_value_t = 10, value_name = "N", requires = "syn_flood")]
        syn_flood_rate: u32,
        /// Also listen here (in the namespace) for the agent protocol (docs/agent-protocol.md), making a
        /// harness's socket calls on the served stack, as `tcpdrill agent` makes them on a kernel: with --tap,
        /// the raw backend then tests the served stack (`--agent` there).
        #[arg(long = "agent-listen", value_name = "ADDR:PORT", requires = "agent_secret")]
        agent_listen: Option<std::net::SocketAddr>,
        #[command(flatten)]
        agent_secret: AgentSecret,
    },
    /// Make the reference stack a client, as `serve` makes it a server: it connects from its namespace to a
    /// server there (the kernel's address, 192.0.2.1, is a server's in that namespace), sends bytes, half-closes,
    /// reads what comes back until the server closes, and prints the counts and SHA-256 of both; with --echo, what
    /// came back must be what was sent. Needs root.
    Connect {
        /// The server, as ADDR:PORT.
        to: std::net::SocketAddr,
        #[command(flatten)]
        stack: StackArgs,
        /// How many bytes of RFC 864's character pattern to send (suffixes K, M, G: powers of 1000; Ki, Mi, Gi:
        /// of 1024).
        #[arg(long, default_value = "1M", value_name = "N", conflicts_with = "file")]
        bytes: String,
        /// Send this file instead.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
        /// Connections at once, each sending the same bytes.
        #[arg(long, default_value_t = 1, value_name = "N")]
        connections: u32,
        /// The server is an echo server: fail unless each connection got back exactly what it sent.
        #[arg(long)]
        echo: bool,
        /// Give up (and fail) after this many seconds.
        #[arg(long, default_value_t = 300.0, value_name = "SECS")]
        timeout: f64,
    },
    /// Run on the host of a stack under test and make a harness's socket calls there (for the raw backend):
    /// one harness at a time, which must present the token; only socket calls, on the sockets it opened. The
    /// protocol is in docs/agent-protocol.md.
    Agent {
        /// The control address to listen on (an address of this host's, not the test link's impersonated one).
        #[arg(long, value_name = "ADDR:PORT")]
        listen: std::net::SocketAddr,
        /// The shared secret a harness must present.
        #[arg(long, conflicts_with = "token_file", required_unless_present = "token_file")]
        token: Option<String>,
        /// A file holding the shared secret (its first line), kept out of the process list.
        #[arg(long, value_name = "PATH")]
        token_file: Option<PathBuf>,
        /// Also run `shell` requests (sh -c, 60 s limit): off unless given.
        #[arg(long)]
        allow_shell: bool,
        /// Also set `net.*` sysctls a harness asks for (a script's `sysctl -w`), put back when its session ends:
        /// off unless given. Sysctls that are not per network namespace are the host's.
        #[arg(long)]
        allow_sysctl: bool,
        /// How many sockets one harness may hold open.
        #[arg(long, default_value_t = 64)]
        max_sockets: usize,
        /// End a harness's session, closing its sockets, after this many silent seconds.
        #[arg(long, default_value_t = 600, value_name = "SECS")]
        idle_timeout: u64,
    },
}

/// Options every command that runs scripts takes.
/// Where and how `serve` and `connect` run the reference stack.
#[derive(clap::Args, Clone)]
struct StackArgs {
    /// The network namespace: made with `ip netns add` if it is not there (and then removed at the end).
    #[arg(long, default_value = "tcpdrill-serve", value_name = "NAME")]
    netns: String,
    /// The reference stack's address; the kernel has the first address of its /24 on the device.
    #[arg(long, default_value = "192.0.2.2", value_name = "ADDR")]
    address: std::net::Ipv4Addr,
    /// The kernel's address on the device (default: the first of the stack's /24), or `none`: the device is a
    /// link for a harness that impersonates peers on it (the raw backend), and the stack may then also take
    /// 192.168.0.1, packetdrill's stack address, which scripts name.
    #[arg(long = "kernel-address", value_name = "ADDR|none")]
    kernel_address: Option<String>,
    /// A TAP device (Ethernet frames; the stack answers ARP for its address) instead of a TUN device: the link
    /// the raw backend works on.
    #[arg(long)]
    tap: bool,
    /// Set one of the stack's sysctl-named knobs (repeatable), as `run --sysctl` does.
    #[arg(long, value_name = "NAME=VALUE")]
    sysctl: Vec<String>,
    /// The link shim: per cent of datagrams dropped, each way (new data by byte position: a 1448-byte segment is
    /// lost at this rate, a shorter one less often; see harness/src/serve/shim.rs).
    #[arg(long, default_value_t = 0.0, value_name = "PERCENT")]
    loss: f64,
    /// Per cent duplicated.
    #[arg(long, default_value_t = 0.0, value_name = "PERCENT")]
    duplicate: f64,
    /// Least one-way delay, in milliseconds.
    #[arg(long, default_value_t = 0.0, value_name = "MS")]
    delay: f64,
    /// Extra random delay up to this many milliseconds, which reorders.
    #[arg(long, default_value_t = 0.0, value_name = "MS")]
    jitter: f64,
    /// The shim's and the stack's seed: the same seed, the same drops for the same datagrams.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Record every datagram handed to the shim (both ways, as sent: before the shim's drops) to a pcap file.
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
}

/// The call endpoint's shared secret.
#[derive(clap::Args, Clone, Debug)]
#[group(id = "agent_secret", multiple = false)]
struct AgentSecret {
    /// The secret a harness must present to the call endpoint.
    #[arg(long = "agent-token", value_name = "SECRET")]
    agent_token: Option<String>,
    /// Read it from the first line of this file.
    #[arg(long = "agent-token-file", value_name = "FILE")]
    agent_token_file: Option<PathBuf>,
}

#[derive(clap::Args, Clone)]
struct Limits {
    /// Each script's time limit in seconds (wall time; on the reference backend also the script time a call may
    /// block in place): a script that needs longer fails alone with that reason.
    #[arg(long, default_value_t = 180.0, value_name = "SECS")]
    timeout: f64,
    /// Match each outbound packet line to exactly one segment, as packetdrill's --strict_segments; by default
    /// consecutive segments whose sequence ranges join are taken together (TSO, GSO, cwnd-cut data).
    #[arg(long, alias = "strict_segments")]
    strict_segments: bool,
    /// The IP version to run each script in: ipv4, ipv6 (with packetdrill's run_all.py's --mtu=1520, so that the
    /// MSS stays 1460), ipv4-mapped-ipv6, or all (each script in the three, as run_all.py runs them: a script
    /// named *v4.pkt only in ipv4 and ipv4-mapped-ipv6, *v6.pkt only in ipv6, and one whose header sets
    /// --ip_version only in that one).
    /// Without it, each script runs in the version its own header says (IPv4 unless it says otherwise).
    #[arg(long = "ip-version", alias = "ip_version", value_name = "VERSION")]
    ip_version: Option<String>,
    /// The raw backend's link: the interface the stack under test is on (a veth end, a tap, a NIC).
    #[arg(long, value_name = "IFACE", help_heading = "Raw backend")]
    interface: Option<String>,
    /// The raw backend's stack address, which the scripts' connections go to: IPv4 (for IPv4 and IPv4-mapped
    /// runs), IPv6, or one of each (repeat the flag).
    #[arg(long = "local-ip", value_name = "ADDR", help_heading = "Raw backend")]
    local_ip: Vec<std::net::IpAddr>,
    /// The address the raw backend impersonates on the link, of the same version as --local-ip (one of each when
    /// that has both); no interface of this host may hold it.
    #[arg(long = "remote-ip", value_name = "ADDR", help_heading = "Raw backend")]
    remote_ip: Vec<std::net::IpAddr>,
    /// The stack's MAC address (aa:bb:cc:dd:ee:ff), instead of learning it by ARP.
    #[arg(long = "stack-mac", value_name = "MAC", help_heading = "Raw backend")]
    stack_mac: Option<String>,
    /// The stack's OS as scripts' `#ifdef`s name it (Linux, FreeBSD, ...): without it, the agent's (asked once),
    /// or none.
    #[arg(long = "stack-os", value_name = "OS", help_heading = "Raw backend")]
    stack_os: Option<String>,
    /// `tcpdrill agent` on the stack's host, which makes the scripts' socket calls there.
    #[arg(long, value_name = "HOST:PORT", help_heading = "Raw backend")]
    agent: Option<std::net::SocketAddr>,
    /// The agent's token (or --agent-token-file).
    #[arg(long = "agent-token", value_name = "TOKEN", help_heading = "Raw backend")]
    agent_token: Option<String>,
    /// A file whose first line is the agent's token.
    #[arg(long = "agent-token-file", value_name = "PATH", help_heading = "Raw backend")]
    agent_token_file: Option<PathBuf>,
}

impl Limits {
    /// Points the raw backend at the link the arguments name, if they name one.
    fn configure_raw(&self) -> Result<(), String> {
        let Some(interface) = self.interface.clone() else {
            return match (self.local_ip.is_empty() && self.remote_ip.is_empty(), &self.agent) {
                (true, None) => Ok(()),
                _ => Err("--local-ip, --remote-ip and --agent are the raw backend's: give --interface too".into()),
            };
        };
        let (v4, v6) = address_pairs(&self.local_ip, &self.remote_ip)?;
        let stack_mac = match &self.stack_mac {
            None => None,
            Some(m) => Some(m.parse().map_err(|_| format!("--stack-mac {m:?}: expected aa:bb:cc:dd:ee:ff"))?),
        };
        let agent = match (self.agent, &self.agent_token, &self.agent_token_file) {
            (None, None, None) => None,
            (None, ..) => return Err("--agent-token goes with --agent HOST:PORT".into()),
            (Some(a), Some(t), _) => Some((a, t.clone())),
            (Some(a), None, Some(f)) => {
                let t = std::fs::read_to_string(f).map_err(|e| format!("reading {}: {e}", f.display()))?;
                Some((a, t.lines().next().unwrap_or("").trim().to_string()))
            }
            (Some(_), None, None) => return Err("--agent needs the agent's --agent-token or --agent-token-file".into()),
        };
        use tcpdrill::backend::raw::os_symbol;
        let os =
            match (&self.stack_os, &agent) {
                (Some(os), _) => Some(os_symbol(os).ok_or_else(|| {
                    format!("--stack-os {os:?}: expected one of Linux, FreeBSD, NetBSD, OpenBSD, macOS")
                })?),
                (None, Some((addr, token))) => {
                    let a = tcpdrill::agent::AgentClient::connect(*addr, token, std::time::Duration::from_secs(5))?;
                    os_symbol(a.os())
                }
                (None, None) => None,
            };
        tcpdrill::backend::raw::configure(tcpdrill::backend::raw::RawConfig { interface, v4, v6, stack_mac, agent, os })
    }
}

/// The raw backend's (stack, impersonated) address pairs, IPv4 and IPv6, from --local-ip and --remote-ip.
type AddressPairs =
    (Option<(std::net::Ipv4Addr, std::net::Ipv4Addr)>, Option<(std::net::Ipv6Addr, std::net::Ipv6Addr)>);

fn address_pairs(local: &[std::net::IpAddr], remote: &[std::net::IpAddr]) -> Result<AddressPairs, String> {
    use std::net::IpAddr;
    let one = |v6: bool, list: &[IpAddr], flag: &str| -> Result<Option<IpAddr>, String> {
        let mut of: Vec<IpAddr> = list.iter().copied().filter(|a| a.is_ipv6() == v6).collect();
        if of.len() > 1 {
            return Err(format!("{flag} takes one {} address at most", if v6 { "IPv6" } else { "IPv4" }));
        }
        Ok(of.pop())
    };
    let pair = |v6: bool| -> Result<Option<(IpAddr, IpAddr)>, String> {
        match (one(v6, local, "--local-ip")?, one(v6, remote, "--remote-ip")?) {
            (Some(l), Some(r)) => Ok(Some((l, r))),
            (None, None) => Ok(None),
            (Some(a), None) | (None, Some(a)) => Err(format!(
                "{a}: --local-ip (the stack's address) and --remote-ip (the one the harness impersonates) go in \
                 pairs of the same IP version"
            )),
        }
    };
    let v4 = match pair(false)? {
        Some((IpAddr::V4(l), IpAddr::V4(r))) => Some((l, r)),
        _ => None,
    };
    let v6 = match pair(true)? {
        Some((IpAddr::V6(l), IpAddr::V6(r))) => Some((l, r)),
        _ => None,
    };
    if v4.is_none() && v6.is_none() {
        return Err("the raw backend needs --local-ip (the stack's address) and --remote-ip (the one the harness \
                    impersonates) with --interface"
            .into());
    }
    Ok((v4, v6))
}

/// The exit statuses, as the README lists them.
mod exit {
    /// Every script selected passed (some may have been skipped).
    pub const PASS: u8 = 0;
    /// A script failed or did not parse.
    pub const FAIL: u8 = 1;
    /// Bad arguments, an unreadable path or a missing privilege.
    pub const USAGE: u8 = 2;
    /// The paths hold no script.
    pub const NOTHING: u8 = 3;
    /// Every script was skipped: nothing was tested.
    pub const ALL_SKIPPED: u8 = 4;
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
    if dropin::is_packetdrill_invocation(&args) {
        return dropin::main(&args);
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Decode { hex, ignore_checksums } => decode(hex, ignore_checksums),
        Command::Serve {
            stack,
            services,
            duration,
            syn_flood,
            syn_flood_port,
            syn_flood_rate,
            agent_listen,
            agent_secret,
        } => {
            let flood = syn_flood.map(|syns| (syns, syn_flood_port, syn_flood_rate));
            match serve(stack, services, duration, flood, agent_listen.map(|a| (a, agent_secret))) {
                Ok(()) => ExitCode::from(exit::PASS),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(exit::USAGE)
                }
            }
        }
        Command::Connect { to, stack, bytes, file, connections, echo, timeout } => {
            match connect(to, stack, &bytes, file, connections, echo, timeout) {
                Ok(true) => ExitCode::from(exit::PASS),
                Ok(false) => ExitCode::from(exit::FAIL),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(exit::USAGE)
                }
            }
        }
        Command::Agent { listen, token, token_file, allow_shell, allow_sysctl, max_sockets, idle_timeout } => {
            let token = match (token, token_file) {
                (Some(t), _) => t,
                (None, Some(f)) => match std::fs::read_to_string(&f) {
                    Ok(t) => t.lines().next().unwrap_or("").trim().to_string(),
                    Err(e) => {
                        eprintln!("error: reading the token file {}: {e}", f.display());
                        return ExitCode::from(exit::USAGE);
                    }
                },
                (None, None) => unreachable!("clap requires one"),
            };
            if token.is_empty() {
                eprintln!("error: the token is empty: give the agent a secret (--token or --token-file)");
                return ExitCode::from(exit::USAGE);
            }
            let cfg = tcpdrill::agent::AgentConfig {
                listen,
                token,
                allow_shell,
                allow_sysctl,
                max_sockets,
                idle: std::time::Duration::from_secs(idle_timeout.max(1)),
            };
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            match tcpdrill::agent::serve(cfg, stop, |a| eprintln!("tcpdrill agent: listening on {a}")) {
                Ok(()) => ExitCode::from(exit::PASS),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(exit::USAGE)
                }
            }
        }
        Command::MutantsReport { dirs, explained, source, output, kills, current } => {
            mutants_report(&dirs, &explained, &source, output.as_deref(), kills.as_deref(), current.as_deref())
        }
        Command::Check { files, print, define, backend } => check(&files, print, &define, &backend),
        Command::Run {
            paths,
            backend,
            jobs,
            verbose,
            define,
            sysctl,
            diagram,
            pcap,
            tolerance_scale,
            report,
            limits,
        } => match Setup::new(&paths, &define, &sysctl, tolerance_scale, jobs, limits) {
            Ok(setup) => run(&setup, &backend, Show { verbose, diagram, pcap }, &report),
            Err(code) => code,
        },
        Command::Coverage {
            paths,
            transitions,
            output,
            check,
            jobs,
            backends: chosen,
            format,
            with_trace,
            html,
            limits,
        } => {
            if limits.ip_version.is_some() {
                // REQUIREMENTS.md has one result per script and backend: the IPv4 run's.
                eprintln!("coverage runs each script in IPv4 only; use run --ip-version for the other versions");
                return ExitCode::from(exit::USAGE);
            }
            match Setup::new(&paths, &[], &[], 1.0, jobs, limits) {
                Ok(setup) => {
                    let chosen = match chosen.as_deref().map(backends).transpose() {
                        Ok(c) => c,
                        Err(code) => return code,
                    };
                    let machine = ReportArgs { format, output: None, with_trace, html };
                    coverage(&setup, &paths, transitions, output.as_deref(), check.as_deref(), chosen, &machine)
                }
                Err(code) => code,
            }
        }
        Command::Fuzz { backends: names, seed, time, cases, jobs, max_events, shrink_budget, out } => {
            fuzz(&names, seed, time, cases, jobs, max_events, shrink_budget, out)
        }
        Command::Diff { paths, jobs, define, sysctl, tolerance_scale, backends, report, limits } => {
            match Setup::new(&paths, &define, &sysctl, tolerance_scale, jobs, limits) {
                Ok(setup) => diff(&setup, &backends, &report),
                Err(code) => code,
            }
        }
    }
}

fn mutants_report(
    dirs: &[PathBuf],
    explained: &std::path::Path,
    source: &str,
    out: Option<&std::path::Path>,
    kills: Option<&std::path::Path>,
    current: Option<&std::path::Path>,
) -> ExitCode {
    use tcpdrill::report::mutants;
    let mut runs = Vec::new();
    let mut found = std::collections::BTreeSet::new();
    for dir in dirs {
        let file = dir.join("outcomes.json");
        let read = std::fs::read_to_string(&file)
            .map_err(|e| format!("{e} (run cargo mutants first; see the README's \"Mutation testing\")"));
        let names = std::fs::read_to_string(dir.join("mutants.json"))
            .map_err(|e| format!("mutants.json: {e}"))
            .and_then(|t| mutants::found_names(&t));
        match read.and_then(|t| mutants::read_outcomes(&t)).and_then(|l| Ok((l, names?))) {
            Ok((mut l, n)) => {
                for m in &mut l {
                    // A log that cannot be read names no script: the mutant still counts, it only witnesses less.
                    let log = m.log_path.as_ref().and_then(|p| std::fs::read_to_string(dir.join(p)).ok());
                    m.rejected_by = log.as_deref().map(mutants::rejecting_scripts).unwrap_or_default();
                }
                runs.push(l);
                found.extend(n);
            }
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                return ExitCode::from(exit::USAGE);
            }
        }
    }
    let mut list = mutants::merge_runs(runs);
    let mut total = found.len().max(list.len());
    if let Some(c) = current {
        match std::fs::read_to_string(c).map_err(|e| e.to_string()).and_then(|t| mutants::found_names(&t)) {
            Ok(names) => {
                let names: std::collections::BTreeSet<String> = names.into_iter().collect();
                list.retain(|m| names.contains(&m.name));
                total = names.len();
            }
            Err(e) => {
                eprintln!("{}: {e}", c.display());
                return ExitCode::from(exit::USAGE);
            }
        }
    }
    let ex = match std::fs::read_to_string(explained) {
        Ok(t) => mutants::read_explanations(&t),
        Err(e) => {
            eprintln!("{}: {e}", explained.display());
            return ExitCode::from(exit::USAGE);
        }
    };
    let source = if source.is_empty() {
        dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
    } else {
        source.to_string()
    };
    if let Some(k) = kills {
        if let Err(e) = std::fs::write(k, mutants::kills_tsv(&list, &source)) {
            eprintln!("{}: {e}", k.display());
            return ExitCode::from(exit::USAGE);
        }
        eprintln!("wrote {}", k.display());
    }
    emit(&mutants::report(&list, total, &ex, &source), out)
}

/// A report to `--output FILE` (saying so on standard error) or to standard output.
fn emit(text: &str, out: Option<&std::path::Path>) -> ExitCode {
    match out {
        Some(p) => match std::fs::write(p, text) {
            Ok(()) => {
                eprintln!("wrote {}", p.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", p.display());
                ExitCode::from(exit::USAGE)
            }
        },
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
    }
}

fn decode(args: Vec<String>, ignore_checksums: bool) -> ExitCode {
    // Arguments are a datagram each; standard input is a capture as text (tcpdump -x, xxd -p, hex lines).
    let inputs: Vec<(String, Result<Vec<u8>, String>)> = if args.is_empty() {
        let mut raw = Vec::new();
        if let Err(e) = std::io::Read::read_to_end(&mut std::io::stdin(), &mut raw) {
            eprintln!("standard input: {e}");
            return ExitCode::from(exit::USAGE);
        }
        // Bytes that are not UTF-8 become U+FFFD, so such a line is reported where it is, not the end of input.
        let text = String::from_utf8_lossy(&raw);
        tcpdrill::hex::datagrams(&text).into_iter().map(|(line, r)| (format!("line {line}"), r)).collect()
    } else {
        args.iter()
            .enumerate()
            .map(|(i, a)| (format!("datagram {}", i + 1), tcpdrill::hex::decode(a).map_err(|e| e.to_string())))
            .collect()
    };
    if inputs.is_empty() {
        eprintln!("no datagram on standard input");
        return ExitCode::from(exit::NOTHING);
    }
    let checksums = if ignore_checksums { Checksums::Ignore } else { Checksums::Verify };
    let mut failed = false;
    for (n, input) in inputs {
        let bytes = match input {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{n}: {e}");
                failed = true;
                continue;
            }
        };
        match TcpDatagram::parse(&bytes, checksums) {
            Ok(d) => {
                println!("{d}");
                if let Err(e) = d.tcp.options.validate() {
                    eprintln!("{n}: warning: {e}");
                }
            }
            Err(e) => {
                eprintln!("{n}: {e}");
                failed = true;
            }
        }
    }
    ExitCode::from(if failed { exit::FAIL } else { exit::PASS })
}

fn parse_options(defines: &[String], backend: &str) -> ParseOptions {
    let mut opts = ParseOptions::with_symbols(tcpdrill::backend::predefined(backend));
    for d in defines {
        let (k, v) = d.split_once('=').unwrap_or((d, ""));
        opts.defines.insert(k.to_string(), v.to_string());
    }
    opts
}

fn render(e: &script::ScriptError) -> String {
    if std::io::stderr().is_terminal() {
        let mut out = String::new();
        let _ = miette::GraphicalReportHandler::new().render_report(&mut out, e);
        format!("{}\n{out}", e.headline())
    } else {
        e.render_plain()
    }
}

fn check(paths: &[PathBuf], print: bool, defines: &[String], backend: &str) -> ExitCode {
    let opts = parse_options(defines, backend);
    let files = match scripts_in(paths) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let mut failed = false;
    for f in &files {
        let name = f.display().to_string();
        let text = match tcpdrill::report::read_script(f) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{name}: {e}");
                failed = true;
                continue;
            }
        };
        match script::check(&name, &text, &opts) {
            Ok(s) => {
                if print {
                    print!("{}", script::print(&s));
                } else {
                    println!("{name}: ok ({} events)", s.events.len());
                }
            }
            Err(errs) => {
                failed = true;
                for e in errs {
                    eprintln!("{}", render(&e));
                }
            }
        }
    }
    ExitCode::from(if failed { exit::FAIL } else { exit::PASS })
}

/// The scripts under `paths`: exit 2 for a path that does not exist, 3 when they hold none.
fn scripts_in(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ExitCode> {
    let files = tcpdrill::report::collect_scripts(paths).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(exit::USAGE)
    })?;
    if files.is_empty() {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        eprintln!("no .pkt script in {}", shown.join(", "));
        return Err(ExitCode::from(exit::NOTHING));
    }
    Ok(files)
}

/// The results for machines: format and file.
#[derive(clap::Args, Clone)]
struct ReportArgs {
    /// The results as human lines, JUnit XML (one testsuite per backend, one testcase per script), JSON (schema
    /// docs/results.schema.json), TAP version 13 or KTAP: on standard output instead of the human lines, or in
    /// --output's file beside them.
    #[arg(long, value_enum, default_value = "human")]
    format: tcpdrill::report::formats::Format,
    /// Write --format's results to FILE; the human lines stay on standard output.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// With --format json: each run's trace too (its lines, as -v prints them).
    #[arg(long)]
    with_trace: bool,
    /// Write a static HTML report into DIR (made if missing): index.html, and a page per run with its ladder
    /// diagram (SVG) and its script.
    #[arg(long, value_name = "DIR")]
    html: Option<PathBuf>,
}

impl ReportArgs {
    /// Whether the human lines go to standard output.
    fn human(&self) -> bool {
        self.format == tcpdrill::report::formats::Format::Human || self.output.is_some()
    }

    /// Writes the records in the format asked for (nothing for human), to --output's file or standard output.
    fn write(&self, records: &[tcpdrill::report::formats::Record]) -> Result<(), String> {
        use tcpdrill::report::formats::{self, Format};
        let text = match self.format {
            Format::Human => return Ok(()),
            Format::Junit => formats::junit(records),
            Format::Json => formats::json(records, self.with_trace),
            Format::Tap => formats::tap(records, false),
            Format::Ktap => formats::tap(records, true),
        };
        self.emit(&text)
    }

    /// Writes a format's text to --output's file, or to standard output.
    fn emit(&self, text: &str) -> Result<(), String> {
        match &self.output {
            Some(f) => std::fs::write(f, text).map_err(|e| format!("--output {}: {e}", f.display())),
            None => {
                print!("{text}");
                Ok(())
            }
        }
    }
}

/// What `tcpdrill run` shows besides the verdicts.
struct Show {
    verbose: bool,
    diagram: bool,
    pcap: Option<PathBuf>,
}

fn write_pcap(trace: &tcpdrill::run::Trace, path: &std::path::Path) -> Result<usize, String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    tcpdrill::report::pcap::write(trace, std::io::BufWriter::new(f))
}

/// What `run` and `diff` share: the scripts, defines, sysctls, run options and parallelism.
struct Setup {
    files: Vec<PathBuf>,
    defines: ParseOptions,
    knobs: Vec<(String, String)>,
    opts: tcpdrill::run::RunOptions,
    jobs: usize,
    /// The IP versions each script runs in (`--ip-version`); empty: the one its header says.
    variants: Vec<tcpdrill::backend::IpVersion>,
}

impl Setup {
    /// Checks the arguments; the exit status (after printing why) if they do not do.
    fn new(
        paths: &[PathBuf],
        defines: &[String],
        sysctls: &[String],
        scale: f64,
        jobs: Option<usize>,
        limits: Limits,
    ) -> Result<Setup, ExitCode> {
        let usage = |msg: &str| {
            eprintln!("{msg}");
            ExitCode::from(exit::USAGE)
        };
        if !(scale.is_finite() && scale > 0.0) {
            return Err(usage("--tolerance-scale must be a positive number, e.g. --tolerance-scale 2"));
        }
        if jobs == Some(0) {
            return Err(usage("--jobs must be at least 1"));
        }
        if !(limits.timeout.is_finite() && limits.timeout > 0.0) {
            return Err(usage("--timeout must be a positive number of seconds, e.g. --timeout 60"));
        }
        if let Err(e) = limits.configure_raw() {
            return Err(usage(&format!("error: {e}")));
        }
        let files = scripts_in(paths)?;
        let mut opts = ParseOptions::default();
        for d in defines {
            let (k, v) = d.split_once('=').unwrap_or((d, ""));
            opts.defines.insert(k.to_string(), v.to_string());
        }
        let mut knobs = Vec::new();
        for kv in sysctls {
            match kv.split_once('=') {
                Some((k, v)) => knobs.push((k.to_string(), v.to_string())),
                None => {
                    return Err(usage(&format!(
                        "--sysctl {kv:?}: expected NAME=VALUE, e.g. --sysctl net.ipv4.tcp_rfc1337=1"
                    )))
                }
            }
        }
        use tcpdrill::backend::IpVersion;
        let variants = match limits.ip_version.as_deref() {
            None => Vec::new(),
            Some("all") => IpVersion::ALL.to_vec(),
            Some(v) => match IpVersion::from_name(v) {
                Some(v) => vec![v],
                None => {
                    return Err(usage(&format!("--ip-version {v:?}: expected ipv4, ipv6, ipv4-mapped-ipv6 or all")))
                }
            },
        };
        let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let opts_run = tcpdrill::run::RunOptions {
            tolerance_scale: scale,
            timeout: std::time::Duration::from_secs_f64(limits.timeout),
            strict_segments: limits.strict_segments,
            ..Default::default()
        };
        Ok(Setup { files, defines: opts, knobs, opts: opts_run, jobs, variants })
    }

    /// One job per script, IP version it runs in (run_all.py's naming rule) and backend, grouped by script and
    /// version; names carry the version when there are several.
    fn jobs_for(&self, kinds: &[tcpdrill::report::BackendKind]) -> Vec<tcpdrill::report::Job> {
        use tcpdrill::backend::IpVersion;
        let mut jobs = Vec::new();
        let chosen: Vec<Option<IpVersion>> =
            if self.variants.is_empty() { vec![None] } else { self.variants.iter().copied().map(Some).collect() };
        for f in &self.files {
            let file = f.to_string_lossy();
            for &variant in &chosen {
                // run_all.py's rule, where the run chose versions: *v4.pkt not in IPv6, *v6.pkt only in it.
                let by_name = match variant {
                    None => true,
                    Some(IpVersion::V6) => !file.ends_with("v4.pkt"),
                    Some(_) => !file.ends_with("v6.pkt"),
                };
                if !by_name {
                    continue;
                }
                let name = match variant {
                    Some(v) if chosen.len() > 1 => format!("{} [{}]", f.display(), v.name()),
                    _ => f.display().to_string(),
                };
                for &backend in kinds {
                    jobs.push(tcpdrill::report::Job { path: f.clone(), name: name.clone(), backend, variant });
                }
            }
        }
        jobs
    }
}

/// How a run of at least `min` jobs shows it is alive: a bar on a terminal; elsewhere (a CI log) a line on standard
/// error every [`PROGRESS_EVERY`], with the scripts done and the failures so far, from a thread of its own so that
/// a script that takes minutes still shows the run is alive.
enum Progress {
    Bar(indicatif::ProgressBar),
    Lines {
        /// Scripts done, failed.
        counts: std::sync::Arc<[std::sync::atomic::AtomicUsize; 2]>,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
        ticker: std::thread::JoinHandle<()>,
    },
    Off,
}

/// How often a run not on a terminal says how far it is.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

impl Progress {
    fn new(len: usize, min: usize) -> Progress {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        if len < min {
            return Progress::Off;
        }
        if std::io::stderr().is_terminal() {
            let b = indicatif::ProgressBar::new(len as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}").expect("a valid template"),
            );
            return Progress::Bar(b);
        }
        let counts = std::sync::Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (c, s) = (counts.clone(), stop.clone());
        let ticker = std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let mut next = PROGRESS_EVERY;
            while !s.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(100));
                if started.elapsed() >= next && !s.load(Ordering::Relaxed) {
                    let (done, failed) = (c[0].load(Ordering::Relaxed), c[1].load(Ordering::Relaxed));
                    eprintln!("{done}/{len} scripts done, {failed} failed, {} s", started.elapsed().as_secs());
                    next += PROGRESS_EVERY;
                }
            }
        });
        Progress::Lines { counts, stop, ticker }
    }

    /// A line of the run's output, above the bar where there is one.
    fn println(&self, line: String) {
        match self {
            Progress::Bar(b) => b.println(line),
            _ => println!("{line}"),
        }
    }

    /// One job done (`name`), failed or not.
    fn step(&self, name: &str, failed: bool) {
        use std::sync::atomic::Ordering;
        match self {
            Progress::Bar(b) => {
                b.set_message(name.to_string());
                b.inc(1);
            }
            Progress::Lines { counts, .. } => {
                counts[0].fetch_add(1, Ordering::Relaxed);
                counts[1].fetch_add(usize::from(failed), Ordering::Relaxed);
            }
            Progress::Off => {}
        }
    }

    fn finish(self) {
        match self {
            Progress::Bar(b) => b.finish_and_clear(),
            Progress::Lines { stop, ticker, .. } => {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                let _ = ticker.join();
            }
            Progress::Off => {}
        }
    }
}

/// The backends `--backend` names: one from the registry, a comma-separated list, or `both` (reference and
/// linux); exit 2 for an unknown name or one this machine cannot run (with the sentence saying why).
fn backends(arg: &str) -> Result<Vec<tcpdrill::report::BackendKind>, ExitCode> {
    use tcpdrill::report::BackendKind;
    let names: Vec<&str> = if arg == "both" { vec!["reference", "linux"] } else { arg.split(',').collect() };
    let mut kinds = Vec::new();
    for n in names {
        let Some(k) = BackendKind::by_name(n.trim()) else {
            let known: Vec<&str> = BackendKind::all().map(BackendKind::name).collect();
            eprintln!("unknown backend {n:?}: use --backend {}, a comma-separated list, or both", known.join(", "));
            return Err(ExitCode::from(exit::USAGE));
        };
        if let Err(why) = (k.info().available)() {
            eprintln!("{why}");
            return Err(ExitCode::from(exit::USAGE));
        }
        kinds.push(k);
    }
    Ok(kinds)
}

fn run(setup: &Setup, backend: &str, show: Show, out: &ReportArgs) -> ExitCode {
    use tcpdrill::report;
    let kinds = match backends(backend) {
        Ok(k) => k,
        Err(code) => return code,
    };
    let jobs = setup.jobs_for(&kinds);
    let both = kinds.len() > 1;
    let human = out.human();
    let bar = Progress::new(jobs.len(), 2);
    let mut results = Vec::new();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    // Each backend's passed, failed and skipped, for a summary line of its own when there are several.
    let mut per_backend: Vec<(&str, [usize; 3])> = kinds.iter().map(|k| (k.name(), [0; 3])).collect();
    let mut failures = Vec::new();
    let watch = |i: usize, r: &report::ScriptResult| bar.step(&jobs[i].name, r.failed());
    report::run_parallel_watched(&jobs, setup.jobs, &setup.defines, &setup.opts, &setup.knobs, watch, |i, r| {
        let job = &jobs[i];
        let f = &job.path;
        let name = if both { format!("{} [{}]", job.name, job.backend.name()) } else { job.name.clone() };
        let line = format!("{name}: {}", r.status());
        if human {
            bar.println(line);
        }
        if let Ok(o) = &r.outcome {
            if show.verbose && human {
                print!("{}", o.trace);
            }
            if show.diagram && human {
                let (peer, stack) = o
                    .trace
                    .entries
                    .iter()
                    .find_map(|e| match e {
                        tcpdrill::run::TraceEntry::State { tuple, .. } => {
                            Some((tuple.remote.to_string(), tuple.local.to_string()))
                        }
                        _ => None,
                    })
                    .unwrap_or_default();
                print!("{}", report::diagram::ladder(&o.trace, &peer, &stack));
            }
            if let Some(p) = &show.pcap {
                let target = if jobs.len() == 1 {
                    p.clone()
                } else {
                    // One file per script, and per backend and IP version where the run has several.
                    let mut name = f.file_stem().unwrap_or_default().to_string_lossy().to_string();
                    if both {
                        name = format!("{name}.{}", job.backend.name());
                    }
                    if let (Some(v), true) = (job.variant, setup.variants.len() > 1) {
                        name = format!("{name}.{}", v.name());
                    }
                    p.join(format!("{name}.pcap"))
                };
                match write_pcap(&o.trace, &target) {
                    Ok(n) => eprintln!("wrote {n} packets to {}", target.display()),
                    Err(e) => eprintln!("--pcap: {e}"),
                }
            }
        }
        let column = if r.failed() {
            failed += 1;
            failures.push(report::failure_text(&r).unwrap_or_default());
            1
        } else if r.skipped() {
            skipped += 1;
            2
        } else {
            passed += 1;
            0
        };
        if let Some((_, n)) = per_backend.iter_mut().find(|(b, _)| *b == job.backend.name()) {
            n[column] += 1;
        }
        results.push((i, r));
    });
    bar.finish();
    let variants: Vec<Option<&str>> = jobs.iter().map(|j| j.variant.map(|v| v.name())).collect();
    let records: Vec<tcpdrill::report::formats::Record> = results
        .iter()
        .map(|(i, r)| tcpdrill::report::formats::Record {
            name: &jobs[*i].name,
            backend: jobs[*i].backend.name(),
            ip_version: variants[*i],
            result: r,
        })
        .collect();
    if let Err(e) = out.write(&records) {
        eprintln!("{e}");
        return ExitCode::from(exit::USAGE);
    }
    if let Some(dir) = &out.html {
        match tcpdrill::report::html::write(dir, &records) {
            Ok(n) => eprintln!("wrote {n} pages and {}", dir.join("index.html").display()),
            Err(e) => {
                eprintln!("--html: {e}");
                return ExitCode::from(exit::USAGE);
            }
        }
    }
    if human {
        for f in &failures {
            println!("\n{f}");
        }
        println!();
        if both {
            for (b, [p, f, s]) in &per_backend {
                println!("{b}: {p} passed, {f} failed, {s} skipped");
            }
        }
        println!("{passed} passed, {failed} failed, {skipped} skipped");
    }
    if failed > 0 {
        ExitCode::from(exit::FAIL)
    } else if passed == 0 {
        eprintln!("every script was skipped: nothing was tested");
        ExitCode::from(exit::ALL_SKIPPED)
    } else {
        ExitCode::from(exit::PASS)
    }
}

#[allow(clippy::too_many_arguments)]
fn fuzz(
    names: &str,
    seed: u64,
    time: f64,
    cases: Option<u64>,
    jobs: Option<usize>,
    max_events: usize,
    shrink_budget: usize,
    out: PathBuf,
) -> ExitCode {
    use tcpdrill::differential::{self, Campaign};
    let kinds = match backends(names) {
        Ok(k) if k.len() == 2 => k,
        Ok(_) => {
            eprintln!("--backends takes two backends, FIRST,SECOND, e.g. --backends reference,smoltcp");
            return ExitCode::from(exit::USAGE);
        }
        Err(code) => return code,
    };
    if !(time.is_finite() && time > 0.0) {
        eprintln!("--time takes a positive number of seconds, not {time}");
        return ExitCode::from(exit::USAGE);
    }
    let c = Campaign {
        first: kinds[0],
        second: kinds[1],
        seed,
        cases: cases.unwrap_or(u64::MAX),
        time: std::time::Duration::from_secs_f64(time),
        jobs: jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        max_events,
        shrink_budget,
        out: Some(out.clone()),
    };
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("{}: {e}", out.display());
        return ExitCode::from(exit::USAGE);
    }
    let last = std::sync::Mutex::new(std::time::Instant::now());
    let progress = |r: &differential::Results| {
        let mut l = last.lock().unwrap_or_else(|e| e.into_inner());
        if l.elapsed() >= std::time::Duration::from_secs(5) {
            *l = std::time::Instant::now();
            eprintln!("{} cases, {} distinct divergences, {} unusable", r.cases, r.findings.len(), r.unusable);
        }
    };
    let r = differential::campaign(&c, &progress);
    print!("{}", differential::summary(&r, &c));
    println!("\nwritten to {}", out.display());
    if r.findings.is_empty() {
        ExitCode::from(exit::PASS)
    } else {
        ExitCode::from(exit::FAIL)
    }
}

fn diff(setup: &Setup, backends_arg: &str, out: &ReportArgs) -> ExitCode {
    use tcpdrill::report::{self, Divergence};
    let kinds = match backends(backends_arg) {
        Ok(k) if k.len() >= 2 => k,
        Ok(_) => {
            eprintln!("--backends needs two backends at least, e.g. --backends reference,linux");
            return ExitCode::from(exit::USAGE);
        }
        Err(code) => return code,
    };
    let jobs = setup.jobs_for(&kinds);
    let human = out.human();
    let bar = Progress::new(jobs.len(), 1);
    let width = jobs.iter().map(|j| j.name.len()).max().unwrap_or(6).max(6);
    let names: Vec<String> = kinds.iter().map(|k| format!("{:9}", k.name())).collect();
    if human {
        println!("{:width$}  {}  first divergence", "script", names.join("  "));
    }
    // Each script's runs (from its first job's index) and where they part, for --format.
    type Compared<'a> = (usize, Vec<report::ScriptResult>, Option<(&'a str, Divergence)>);
    let mut compared: Vec<Compared> = Vec::new();
    let mut held: Vec<report::ScriptResult> = Vec::new();
    let (mut same, mut differ) = (0, 0);
    let watch = |i: usize, r: &report::ScriptResult| bar.step(&jobs[i].name, r.failed());
    report::run_parallel_watched(&jobs, setup.jobs, &setup.defines, &setup.opts, &setup.knobs, watch, |i, r| {
        // Jobs come grouped by script, one per backend in the order given.
        held.push(r);
        if held.len() < kinds.len() {
            return;
        }
        let results = std::mem::take(&mut held);
        let text = tcpdrill::report::read_script(&jobs[i].path).unwrap_or_default();
        let cells: Vec<String> = results.iter().map(|r| format!("{:9}", short(r))).collect();
        let row = format!("{:width$}  {}", jobs[i].name, cells.join("  "));
        // The first backend that parts from the first one, and where.
        let parted =
            results.iter().zip(&kinds).skip(1).find_map(|(r, k)| match report::divergence(&text, &results[0], r) {
                Divergence::None => None,
                d => Some((k.name(), d)),
            });
        let out = match &parted {
            None => {
                same += 1;
                row.trim_end().to_string()
            }
            Some((other, Divergence::At { line, source, first, second })) => {
                differ += 1;
                let at = if *line == 0 { String::new() } else { format!("  line {line}: {source}") };
                let (a, b) = (format!("{}:", kinds[0].name()), format!("{other}:"));
                let w = a.len().max(b.len());
                format!("{row}{at}\n{:width$}  {a:w$} {first}\n{:width$}  {b:w$} {second}", "", "")
            }
            Some((_, Divergence::None)) => unreachable!("filtered above"),
        };
        if human {
            bar.println(out);
        }
        compared.push((i + 1 - kinds.len(), results, parted));
    });
    bar.finish();
    use tcpdrill::report::formats::{self, Comparison, Format, Parted, Record};
    let comparisons: Vec<Comparison> = compared
        .iter()
        .map(|(first, results, parted)| Comparison {
            name: &jobs[*first].name,
            runs: results
                .iter()
                .enumerate()
                .map(|(k, r)| Record {
                    name: &jobs[first + k].name,
                    backend: jobs[first + k].backend.name(),
                    ip_version: jobs[first + k].variant.map(|v| v.name()),
                    result: r,
                })
                .collect(),
            parted: parted.as_ref().and_then(|(b, d)| match d {
                Divergence::At { line, source, first, second } => {
                    Some(Parted { backend: b, line: *line, source, first, second })
                }
                Divergence::None => None,
            }),
        })
        .collect();
    let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
    let text = match out.format {
        Format::Human => None,
        Format::Junit => Some(formats::junit_diff(&names, &comparisons)),
        Format::Json => Some(formats::json_diff(&names, &comparisons, out.with_trace)),
        Format::Tap => Some(formats::tap_diff(&names, &comparisons, false)),
        Format::Ktap => Some(formats::tap_diff(&names, &comparisons, true)),
    };
    if let Some(text) = text {
        if let Err(e) = out.emit(&text) {
            eprintln!("{e}");
            return ExitCode::from(exit::USAGE);
        }
    }
    if human {
        println!("\n{same} agree, {differ} differ");
    }
    ExitCode::from(if differ > 0 { exit::FAIL } else { exit::PASS })
}

/// `ok`, `FAIL` or `skipped` for a table cell.
fn short(r: &tcpdrill::report::ScriptResult) -> &'static str {
    if r.failed() {
        "FAIL"
    } else if r.skipped() {
        "skipped"
    } else {
        "ok"
    }
}

fn coverage(
    setup: &Setup,
    paths: &[PathBuf],
    transitions: bool,
    output: Option<&std::path::Path>,
    check: Option<&std::path::Path>,
    chosen: Option<Vec<tcpdrill::report::BackendKind>>,
    machine: &ReportArgs,
) -> ExitCode {
    use tcpdrill::report::coverage as cov;
    use tcpdrill::report::{self, BackendKind};
    let root = match paths {
        [one] if one.is_dir() => Some(one.clone()),
        _ => None,
    };
    let name_of = |p: &std::path::Path| {
        let rel = root.as_ref().and_then(|r| p.strip_prefix(r).ok()).unwrap_or(p);
        rel.with_extension("").to_string_lossy().replace('\\', "/")
    };
    let mut texts = Vec::new();
    let mut bad_tags = false;
    for f in &setup.files {
        let text = report::read_script(f).unwrap_or_default();
        for t in cov::unknown_tags(&text) {
            eprintln!("{}: unknown requirement tag {t:?} (see `tcpdrill coverage --help`)", f.display());
            bad_tags = true;
        }
        texts.push(text);
    }
    if bad_tags {
        return ExitCode::from(exit::USAGE);
    }
    let report = if transitions {
        let mut cells = std::collections::BTreeSet::new();
        let jobs = setup.jobs_for(&[BackendKind::Reference]);
        report::run_parallel(&jobs, setup.jobs, &setup.defines, &setup.opts, &setup.knobs, |_, r| {
            if let Ok(o) = &r.outcome {
                cells.extend(o.exercised.iter().copied());
            }
        });
        cov::transitions_table(&cells, output.is_some() || check.is_some())
    } else {
        // Every backend of the registry that can run here has its column (or those chosen, in their order); the
        // others are left empty, with why.
        let columns: Vec<BackendKind> = chosen.clone().unwrap_or_else(|| BackendKind::all().collect());
        let mut kinds = Vec::new();
        for &b in &columns {
            match (b.info().available)() {
                Ok(()) => kinds.push(b),
                Err(why) => eprintln!("{} column not run: {why}", b.name()),
            }
        }
        let jobs = setup.jobs_for(&kinds);
        let mut results: std::collections::BTreeMap<(usize, BackendKind), &'static str> = Default::default();
        let per = kinds.len();
        let mut runs = Vec::new();
        let bar = Progress::new(jobs.len(), 2);
        let watch = |i: usize, r: &report::ScriptResult| bar.step(&jobs[i].name, r.failed());
        report::run_parallel_watched(&jobs, setup.jobs, &setup.defines, &setup.opts, &setup.knobs, watch, |i, r| {
            results.insert((i / per, jobs[i].backend), cov::status_word(&r));
            runs.push((i, r));
        });
        bar.finish();
        let records: Vec<tcpdrill::report::formats::Record> = runs
            .iter()
            .map(|(i, r)| tcpdrill::report::formats::Record {
                name: &jobs[*i].name,
                backend: jobs[*i].backend.name(),
                ip_version: jobs[*i].variant.map(|v| v.name()),
                result: r,
            })
            .collect();
        if let Err(e) = machine.write(&records) {
            eprintln!("{e}");
            return ExitCode::from(exit::USAGE);
        }
        let scripts: Vec<cov::ScriptStatus> = setup
            .files
            .iter()
            .zip(&texts)
            .enumerate()
            .map(|(i, (f, text))| {
                let get = |b| results.get(&(i, b)).copied();
                let per_backend: Vec<(&'static str, Option<&str>)> = columns
                    .iter()
                    .filter(|b| chosen.is_some() || !b.info().on_request || kinds.contains(b))
                    .map(|&b| (b.name(), get(b)))
                    .collect();
                cov::ScriptStatus::of(name_of(f), text, &per_backend)
            })
            .collect();
        let evidence = match root.as_deref().map(cov::Evidence::load).transpose() {
            Ok(e) => e.unwrap_or_default(),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(exit::USAGE);
            }
        };
        let markdown = cov::requirements_markdown(&scripts, &evidence);
        if let Some(dir) = &machine.html {
            let cells: std::collections::BTreeSet<_> = records
                .iter()
                .filter(|r| r.backend == "reference")
                .filter_map(|r| r.result.outcome.as_ref().ok())
                .flat_map(|o| o.exercised.iter().copied())
                .collect();
            match report::html::write_suite(dir, &records, &markdown, &cells) {
                Ok(n) => eprintln!("wrote {n} pages and {}", dir.join("suite.html").display()),
                Err(e) => {
                    eprintln!("--html: {e}");
                    return ExitCode::from(exit::USAGE);
                }
            }
        }
        markdown
    };
    if let Some(file) = check {
        let current = std::fs::read_to_string(file).unwrap_or_default();
        if current == report {
            println!("{} is up to date", file.display());
            return ExitCode::from(exit::PASS);
        }
        eprintln!(
            "{} is out of date: regenerate it with tcpdrill coverage {} --output {}",
            file.display(),
            paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" "),
            file.display()
        );
        return ExitCode::from(exit::FAIL);
    }
    if machine.format != tcpdrill::report::formats::Format::Human && output.is_none() {
        // Standard output had the machines' results.
        return ExitCode::from(exit::PASS);
    }
    emit(&report, output)
}

/// Set by SIGINT and SIGTERM: serving stops and the namespace goes.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn interrupted(_: libc::c_int) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// The serving configuration `a` describes, with `services`.
fn serve_config(
    a: &StackArgs,
    services: Vec<(tcpdrill::serve::Service, u16)>,
) -> Result<tcpdrill::serve::ServeConfig, String> {
    let permille = |what: &str, p: f64| {
        if (0.0..=100.0).contains(&p) {
            Ok((p * 10.0).round() as u16)
        } else {
            Err(format!("--{what} {p}: a percentage from 0 to 100"))
        }
    };
    let ms = |what: &str, v: f64| {
        if v.is_finite() && (0.0..=10_000.0).contains(&v) {
            Ok(std::time::Duration::from_micros((v * 1000.0) as u64))
        } else {
            Err(format!("--{what} {v}: milliseconds from 0 to 10000"))
        }
    };
    let min_delay = ms("delay", a.delay)?;
    let link = tcpdrill_stack::sim::LinkConfig {
        drop_permille: permille("loss", a.loss)?,
        dup_permille: permille("duplicate", a.duplicate)?,
        min_delay,
        max_delay: min_delay + ms("jitter", a.jitter)?,
    };
    let mut knobs = Vec::new();
    for kv in &a.sysctl {
        let (k, v) = kv.split_once('=').ok_or_else(|| format!("--sysctl {kv:?}: expected NAME=VALUE"))?;
        knobs.push((k.to_string(), v.to_string()));
    }
    let o = a.address.octets();
    let kernel_ip = match a.kernel_address.as_deref() {
        Some("none") => None,
        Some(k) => Some(
            k.parse::<std::net::Ipv4Addr>().map_err(|_| format!("--kernel-address {k:?}: an IPv4 address or none"))?,
        ),
        None => Some(std::net::Ipv4Addr::new(o[0], o[1], o[2], 1)),
    };
    // Only the documentation ranges (RFC 5737): the namespace may be the user's, and its addresses must not
    // collide with real ones; packetdrill's stack address too where the kernel there has none (the scripts
    // that bind it by name then run as under packetdrill).
    let documentation = |o: [u8; 4]| matches!(&o[..3], [192, 0, 2] | [198, 51, 100] | [203, 0, 113]);
    let packetdrills = kernel_ip.is_none() && o == [192, 168, 0, 1];
    if !documentation(o) && !packetdrills {
        return Err(format!(
            "--address {}: the served stack takes an address of the documentation ranges 192.0.2.0/24, \
             198.51.100.0/24 or 203.0.113.0/24 (or 192.168.0.1 with --kernel-address none)",
            a.address
        ));
    }
    if let Some(k) = kernel_ip {
        if !documentation(k.octets()) || k.octets()[..3] != o[..3] || k == a.address {
            return Err(format!(
                "--kernel-address {k}: another address of the stack's /24 ({}.{}.{}.0/24), or none",
                o[0], o[1], o[2]
            ));
        }
    }
    Ok(tcpdrill::serve::ServeConfig {
        stack_ip: a.address,
        kernel_ip,
        tap: a.tap,
        agent: None,
        services,
        knobs,
        link,
        seed: a.seed,
        pcap: a.pcap.clone(),
        flood: None,
    })
}

/// Runs `body` with the stack served as `cfg` says, in namespace `netns` (made for the run and removed after
/// it, if it was not there), until `body` returns; SIGINT and SIGTERM set [`INTERRUPTED`] for `body` to see.
fn in_served_namespace<T: Send + 'static>(
    netns: &str,
    cfg: tcpdrill::serve::ServeConfig,
    body: impl FnOnce(&tcpdrill::serve::Served, &tcpdrill::serve::ServeConfig) -> Result<T, String> + Send + 'static,
) -> Result<(T, tcpdrill::serve::ServeStats), String> {
    tcpdrill::backend::linux::available()?;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, interrupted as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, interrupted as *const () as libc::sighandler_t);
    }
    // On a thread of its own, which moves into the namespace: this one stays where it was, to remove it after
    // if it was made for this run, whatever happened.
    let existed = std::path::Path::new("/run/netns").join(netns).exists();
    let name = netns.to_string();
    let worker = std::thread::spawn(move || {
        tcpdrill::serve::enter_named_netns(&name)?;
        let served = tcpdrill::serve::start(cfg.clone())?;
        let out = body(&served, &cfg);
        let (stats, late) = served.finish()?;
        for r in late {
            println!("sink: {} sent {} bytes, sha256 {}", r.peer, r.bytes, r.sha256);
        }
        Ok((out?, stats))
    });
    let r = worker.join().unwrap_or_else(|_| Err("the serving thread panicked".to_string()));
    if !existed {
        let _ = std::process::Command::new("ip").args(["netns", "del", netns]).status();
    }
    r
}

/// `tcpdrill serve`; `flood` is `--syn-flood`'s (SYNs, port, per millisecond).
fn serve(
    a: StackArgs,
    services: Vec<String>,
    duration: Option<f64>,
    flood: Option<(u32, Option<u16>, u32)>,
    agent: Option<(std::net::SocketAddr, AgentSecret)>,
) -> Result<(), String> {
    use tcpdrill::serve::{ServeConfig, Service};
    let mut list = Vec::new();
    for s in &services {
        let (name, port) = s.split_once(':').ok_or_else(|| format!("--service {s:?}: expected NAME:PORT"))?;
        let service = match name {
            "echo" => Service::Echo,
            "discard" => Service::Discard,
            "chargen" => Service::Chargen,
            "sink" => Service::Sink,
            _ => return Err(format!("--service {s:?}: the services are echo, discard, chargen and sink")),
        };
        let port = port.parse().map_err(|_| format!("--service {s:?}: {port:?} is not a port"))?;
        list.push((service, port));
    }
    let mut cfg = serve_config(&a, if list.is_empty() { ServeConfig::default().services } else { list })?;
    if let Some((syns, port, per_ms)) = flood {
        let port = port.or(cfg.services.first().map(|s| s.1)).unwrap_or(7);
        let f = tcpdrill::serve::Flood { syns, port, per_ms };
        // Refused here, before the namespace is made, as start() would refuse it inside.
        f.check(cfg.stack_ip)?;
        cfg.flood = Some(f);
    }
    if let Some(d) = duration.filter(|d| !(d.is_finite() && *d > 0.0 && *d < 1e9)) {
        return Err(format!("--duration {d}: a positive number of seconds"));
    }
    if let Some((listen, secret)) = agent {
        let token = match (secret.agent_token, secret.agent_token_file) {
            (Some(t), _) => t,
            (None, Some(f)) => std::fs::read_to_string(&f)
                .map_err(|e| format!("reading the token file {}: {e}", f.display()))?
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string(),
            (None, None) => String::new(),
        };
        if token.is_empty() {
            return Err("the call endpoint needs a secret: give --agent-token or --agent-token-file".into());
        }
        cfg.agent = Some(tcpdrill::agent::AgentConfig {
            listen,
            token,
            allow_shell: false,
            // The served stack's knobs, put back when the session ends; nothing of the host's.
            allow_sysctl: true,
            max_sockets: 64,
            idle: std::time::Duration::from_secs(600),
        });
    }
    let deadline = duration.map(|d| std::time::Instant::now() + std::time::Duration::from_secs_f64(d));
    let netns = a.netns.clone();
    let ((), stats) = in_served_namespace(&a.netns, cfg, move |served, cfg| {
        let list: Vec<String> =
            cfg.services.iter().map(|(s, p)| format!("{} {}:{p}", s.name(), cfg.stack_ip)).collect();
        let device = if cfg.tap { "TAP" } else { "TUN" };
        match cfg.kernel_ip {
            Some(k) => eprintln!(
                "serving the reference stack on {device} device {} in network namespace {netns}: {}; the kernel there \
                 is {k} (try `ip netns exec {netns} nc {} {}`)",
                tcpdrill::serve::DEVICE,
                list.join(", "),
                cfg.stack_ip,
                cfg.services.first().map_or(7, |s| s.1)
            ),
            None => eprintln!(
                "serving the reference stack on {device} device {} in network namespace {netns}: {}; the kernel there \
                 has no address on it",
                tcpdrill::serve::DEVICE,
                list.join(", ")
            ),
        }
        if let Some(a) = served.agent_addr {
            eprintln!(
                "call endpoint (agent protocol) on {a} in {netns}: `ip netns exec {netns} tcpdrill run --backend raw \
                 --interface {} --local-ip {} --remote-ip ADDR --agent {a} --agent-token ...`",
                tcpdrill::serve::DEVICE,
                cfg.stack_ip
            );
        }
        let over = || {
            INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed)
                || deadline.is_some_and(|d| std::time::Instant::now() >= d)
        };
        while !over() {
            while let Ok(r) = served.sinks.try_recv() {
                println!("sink: {} sent {} bytes, sha256 {}", r.peer, r.bytes, r.sha256);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(())
    })?;
    eprintln!(
        "stopped: {} connections accepted (at most {} at once); the shim took {} datagrams, dropped {}, duplicated {}",
        stats.accepted, stats.peak_connections, stats.link[0], stats.link[1], stats.link[2]
    );
    if flood.is_some() {
        eprintln!(
            "SYN flood: {} SYNs injected, {} answers swallowed; {} SYN cookies sent, {} connections opened by one; \
             at most {} connections in SYN-RECEIVED at once",
            stats.flood[0], stats.flood[1], stats.cookies[0], stats.cookies[1], stats.peak_syn_received
        );
    }
    Ok(())
}

/// A byte count with an optional SI (K, M, G) or binary (Ki, Mi, Gi) suffix.
fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let mult: u64 = match unit.trim_end_matches(['B', 'b']) {
        "" => 1,
        "K" | "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => return Err(format!("--bytes {s:?}: a count with an optional K, M, G, Ki, Mi or Gi")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("--bytes {s:?}: a count with an optional K, M, G, Ki, Mi or Gi"))
}

/// `tcpdrill connect`: whether every connection ended cleanly (and echoed, with `echo`).
fn connect(
    to: std::net::SocketAddr,
    a: StackArgs,
    bytes: &str,
    file: Option<PathBuf>,
    connections: u32,
    echo: bool,
    timeout: f64,
) -> Result<bool, String> {
    use tcpdrill::serve::Payload;
    let n = parse_bytes(bytes)?;
    if !(timeout.is_finite() && timeout > 0.0 && timeout < 1e9) {
        return Err(format!("--timeout {timeout}: a positive number of seconds"));
    }
    if !(1..=10_000).contains(&connections) {
        return Err(format!("--connections {connections}: from 1 to 10000"));
    }
    if !to.is_ipv4() {
        return Err(format!("{to}: the served stack speaks IPv4"));
    }
    // Checked here, so that a missing file is a usage error before any namespace is made; each connection
    // opens it when it starts.
    if let Some(path) = &file {
        std::fs::File::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    }
    let o = a.address.octets();
    if let std::net::IpAddr::V4(t) = to.ip() {
        if t.octets()[..3] != o[..3] {
            return Err(format!(
                "{to}: the served stack reaches its device's network only, {}.{}.{}.0/24 (the kernel there is {}.{}.{}.1)",
                o[0], o[1], o[2], o[0], o[1], o[2]
            ));
        }
    }
    let cfg = serve_config(&a, Vec::new())?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(timeout);
    let (ok, stats) = in_served_namespace(&a.netns, cfg, move |served, cfg| {
        eprintln!("the reference stack ({}) connects to {to}", cfg.stack_ip);
        let payload = || file.clone().map_or(Payload::Pattern(n), Payload::File);
        let reports: Vec<_> = (0..connections).map(|_| served.connect(to, payload())).collect();
        let mut ok = true;
        for r in reports {
            let report = loop {
                match r.recv_timeout(std::time::Duration::from_millis(100)) {
                    Ok(report) => break Some(report),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        if INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed) {
                            return Err("interrupted".to_string());
                        }
                        if std::time::Instant::now() >= deadline {
                            break None;
                        }
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                        return Err("the serving thread stopped".to_string())
                    }
                }
            };
            let Some(report) = report else {
                eprintln!("error: not over after --timeout {timeout} s; the stack's connections:");
                for c in served.dump() {
                    eprintln!("  {c}");
                }
                return Ok(false);
            };
            let from = report.tuple.map_or_else(|| cfg.stack_ip.to_string(), |t| t.local.to_string());
            let secs = report.elapsed.as_secs_f64();
            println!(
                "{from} -> {to}: sent {} bytes (sha256 {}), received {} bytes (sha256 {}) in {secs:.3} s ({:.1} Mbit/s \
                 each way)",
                report.sent,
                report.sent_sha256,
                report.received,
                report.received_sha256,
                report.sent.max(report.received) as f64 * 8.0 / secs.max(1e-6) / 1e6
            );
            if let Some(e) = &report.error {
                println!("  failed: {e}");
                ok = false;
            } else if echo && (report.received, &report.received_sha256) != (report.sent, &report.sent_sha256) {
                println!("  failed: the echo differs from what was sent");
                ok = false;
            }
        }
        Ok(ok)
    })?;
    eprintln!(
        "{}; the shim took {} datagrams, dropped {}, duplicated {}; {}",
        if ok { "done" } else { "FAILED" },
        stats.link[0],
        stats.link[1],
        stats.link[2],
        losses_digest(&stats.losses)
    );
    Ok(ok)
}

/// What new data the shim dropped, as a count and a digest, so that two runs with one seed can be seen to have
/// lost the same bytes (a marked byte's first crossing, whatever the segment boundaries and timing).
fn losses_digest(losses: &[tcpdrill::serve::shim::Loss]) -> String {
    use sha2::Digest;
    let mut l = losses.to_vec();
    l.sort_unstable();
    let mut h = sha2::Sha256::new();
    for (dst, conn, offset) in &l {
        h.update([*dst]);
        h.update(conn.to_be_bytes());
        h.update(offset.to_be_bytes());
    }
    let hex: String = h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("new data lost at {} marked bytes (digest {hex})", l.len())
}
