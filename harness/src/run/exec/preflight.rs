//! What a backend cannot run, found before the clock starts: header options tcpdrill does not honour, commands
//! and blocks the backend has no way to run, packets and calls it does not support. Such a script is skipped with
//! the reason, never failed or half run.

use super::*;

impl Exec<'_> {
    pub(super) fn preflight(&mut self, s: &Script) -> Option<String> {
        let caps = self.backend.capabilities();
        let name = self.backend.name();
        for (opt, value) in self.opts.header_options(&s.options) {
            let v = value.as_deref().unwrap_or("");
            // The parser (and the drop-in command line) let through only known options with well-formed values.
            if let Some(why) = crate::script::options::spec(&opt).and_then(|spec| spec.unsupported) {
                return Some(why.to_string());
            }
            let address = |want: IpAddr| v.parse::<IpAddr>().ok() == Some(want);
            match opt.as_str() {
                "tolerance_usecs" => self.opts.tolerance_usecs = v.parse().unwrap_or(self.opts.tolerance_usecs),
                "tolerance_percent" => self.opts.tolerance_percent = v.parse().unwrap_or(self.opts.tolerance_percent),
                "tcp_ts_tick_usecs" => self.ts_tick_usecs = v.parse().ok().filter(|t| *t > 0),
                "bind_port" => self.opts.port = v.parse().unwrap_or(self.opts.port),
                "connect_port" => self.opts.connect_port = v.parse().unwrap_or(self.opts.connect_port),
                "strict_segments" => self.opts.strict_segments = true,
                "gateway_ip" if address(crate::backend::GATEWAY_IP6.into()) && self.local_ip.is_ipv6() => {}
                "local_ip" | "gateway_ip" if !address(self.local_ip) => {
                    return Some(format!("--{opt}={v}: the {name} backend's stack has address {}", self.local_ip))
                }
                "remote_ip" if !address(self.remote_ip) => {
                    return Some(format!("--remote_ip={v}: the {name} backend's peer has address {}", self.remote_ip))
                }
                "netmask_ip" if v != "255.255.0.0" => {
                    return Some(format!("--netmask_ip={v}: the {name} backend's link is a /16 (255.255.0.0)"))
                }
                // The backend was made for the version the options give (report::run_text_with).
                "ip_version" if v != self.backend.ip_version().name() => {
                    return Some(format!(
                        "--ip_version={v}: the {name} backend was set up for {}",
                        self.backend.ip_version().name()
                    ))
                }
                "mtu" => {
                    if let Err(e) = self.backend.set_knob("mtu", v) {
                        return Some(format!("--mtu={v}: {e}"));
                    }
                }
                // tcpdrill's own: `--tso=off` makes the Linux backend's TUN show segments as they go on the wire
                // instead of packetdrill's TSO super-packets, for scripts that check segmentation.
                "tso" => {
                    if let Err(e) = self.backend.set_knob("tso", v) {
                        return Some(format!("--tso={v}: {e}"));
                    }
                }
                _ => {}
            }
        }
        let commands = s.init.iter().chain(&s.cleanup).map(|c| (c, true));
        let timed = s.events.iter().filter_map(|e| match &e.action {
            Action::Shell(c) => Some((c, false)),
            _ => None,
        });
        for (c, _untimed) in commands.chain(timed).filter(|_| !caps.shell) {
            let line = self.line(c.span);
            match self.settings(c) {
                Err(why) => return Some(format!("needs the linux backend (shell command at line {line}: {why})")),
                Ok(settings) => {
                    if let Some(Setting::Refuse(why)) = settings.into_iter().find(|s| matches!(s, Setting::Refuse(_))) {
                        return Some(why);
                    }
                }
            }
        }
        for e in &s.events {
            let line = self.line(e.span);
            if let Action::Syscall(c) = &e.action {
                let option = c.args.get(2).and_then(|o| self.sockopt(o).ok());
                let args: Vec<Option<i64>> = c.args.iter().map(|a| self.int(a).ok()).collect();
                if let Some(why) = self.backend.refuses(&c.name, option, &args) {
                    return Some(format!("{} (line {line}): {why}", c.name));
                }
            }
            match &e.action {
                Action::Code(_) if !caps.python => {
                    return Some(format!("needs the linux backend (%{{ }}% block at line {line})"));
                }
                Action::Code(_) if crate::backend::linux::python3().is_none() => {
                    return Some(format!("needs python3 to run the %{{ }}% block at line {line}; none is installed"));
                }
                Action::Code(c) => {
                    if let Some(names) = self.backend.tcp_info_names() {
                        if let Some(missing) = tcpi_names(&c.text).find(|n| !names.contains(n)) {
                            return Some(format!(
                                "{missing} (%{{ }}% block at line {line}) is not in the {name} backend's TCP_INFO"
                            ));
                        }
                    }
                }
                Action::Packet(p) if !p.outer.is_empty() => {
                    let what = match &p.outer[0] {
                        Encap::Ipv4 { .. } | Encap::Ipv6 { .. } => "IP-in-IP",
                        Encap::Gre(_) => "GRE",
                        Encap::Mpls(_) => "MPLS",
                    };
                    return Some(format!("{what} encapsulation (line {line}) is parsed but no backend runs it yet"));
                }
                Action::Packet(p) => match &p.body {
                    PacketBody::Udp { .. } => {
                        return Some(format!("UDP packets (line {line}) are parsed but no backend runs them yet"));
                    }
                    PacketBody::Icmp(_) if p.direction == Direction::Outbound => {
                        return Some(format!(
                            "expecting an ICMP packet (line {line}) is not supported yet; injecting one is"
                        ));
                    }
                    PacketBody::Icmp(_) if !caps.icmp => {
                        return Some(format!("ICMP (line {line}) is not modelled by the {name} backend"));
                    }
                    PacketBody::Icmp(i)
                        if !matches!(
                            i.echoed,
                            None | Some(Echoed::Raw(_)) | Some(Echoed::Tcp { udp_encap: None, .. })
                        ) =>
                    {
                        return Some(format!(
                            "ICMP quoting a non-TCP packet (line {line}) needs UDP or SCTP sockets, which tcpdrill's \
                             backends do not drive"
                        ));
                    }
                    PacketBody::Tcp(t) if t.psp_spi.is_some() => {
                        return Some(format!("PSP encapsulation (line {line}) is parsed but no backend runs it"));
                    }
                    PacketBody::Tcp(t) if t.udp_encap.is_some() => {
                        return Some(format!("TCP over UDP (line {line}) is parsed but no backend runs it yet"));
                    }
                    PacketBody::Tcp(t) if p.direction == Direction::Inbound && t.win.is_none() => {
                        return Some(format!("inbound packet without win at line {line}"));
                    }
                    PacketBody::Tcp(t) if p.direction == Direction::Inbound => {
                        // A real link carries no more than its MTU (a TUN device or the reference stack take
                        // anything): a larger datagram cannot be sent, so the script cannot run there.
                        let Some(mtu) = self.backend.link_mtu() else { continue };
                        let ip = if self.backend.ip_version() == crate::backend::IpVersion::V6 { 40 } else { 20 };
                        let options = match &t.options {
                            Some(Options::List(l, _)) => l.iter().map(TcpOpt::wire_len).sum(),
                            _ => 0,
                        };
                        let size = ip + 20 + options + t.len as usize;
                        if size > mtu as usize {
                            return Some(format!(
                                "the {size}-byte datagram at line {line} is more than the {name} backend's link \
                                 carries (MTU {mtu})"
                            ));
                        }
                    }
                    _ => {}
                },
                Action::Syscall(c) if !caps.calls && !c.name.starts_with("tcp_isn_") => {
                    return Some(format!(
                        "{} (line {line}) is a socket call, and the {name} backend makes them only through an agent \
                         on the stack's host (--agent HOST:PORT)",
                        c.name
                    ));
                }
                Action::Syscall(c) if freebsd_symbol(c).is_some() => {
                    let (sym, _) = freebsd_symbol(c).unwrap_or_default();
                    return Some(format!(
                        "{sym} (line {line}) is FreeBSD's; the {name} backend has Linux's socket API"
                    ));
                }
                Action::Syscall(c) if !crate::script::symbols::executor_runs(&c.name) => {
                    return Some(format!("syscall {} (line {line}) is not supported on the {name} backend", c.name));
                }
                Action::Syscall(c) if c.name == "epoll_ctl" && !caps.linux_api => {
                    let events = match c.args.get(3).map(|e| &e.kind) {
                        Some(ExprKind::Struct(f)) => f
                            .iter()
                            .find(|(k, _)| k.as_ref().and_then(Expr::as_symbol) == Some("events"))
                            .and_then(|(_, v)| self.int(v).ok())
                            .unwrap_or(0),
                        _ => 0,
                    };
                    // EPOLLET, EPOLLONESHOT, EPOLLEXCLUSIVE, EPOLLWAKEUP: only level-triggered epoll is modelled.
                    if events & 0xf000_0000 != 0 {
                        return Some(format!(
                            "epoll flags {:#x} (line {line}) are not modelled by the {name} backend: only \
                             level-triggered epoll is",
                            events & 0xf000_0000
                        ));
                    }
                }
                Action::Syscall(c) if c.name == "sendmsg" || c.name == "recvmsg" => {
                    let Some(Ok((_, msg_flags, control))) = c.args.get(1).map(|m| self.msghdr(m)) else { continue };
                    let flags = c.args.get(2).and_then(|f| self.int(f).ok()).unwrap_or(0);
                    if control {
                        return Some(format!("control messages (msg_control, line {line}) are not supported yet"));
                    }
                    if c.name == "recvmsg" && flags & 0x2000 != 0 {
                        return Some(format!(
                            "reading the error queue (MSG_ERRQUEUE, line {line}) is not supported yet"
                        ));
                    }
                    if c.name == "recvmsg" && msg_flags != 0 {
                        return Some(format!(
                            "checking the msg_flags recvmsg returns (line {line}) is not supported yet"
                        ));
                    }
                    const MODELLED: i64 = 0x40 | 0x4000 | 0x2; // MSG_DONTWAIT | MSG_NOSIGNAL | MSG_PEEK
                    if !caps.linux_api && flags & !MODELLED != 0 {
                        return Some(format!(
                            "{} flags {flags:#x} (line {line}) are not modelled by the {name} backend",
                            c.name
                        ));
                    }
                }
                Action::Syscall(c) if !caps.linux_api && (c.name == "send" || c.name == "sendto") => {
                    // The reference stack's send honours only these two (and MSG_DONTWAIT is the executor's).
                    const MODELLED: i64 = 0x40 | 0x4000; // MSG_DONTWAIT | MSG_NOSIGNAL
                    let flags = c.args.get(3).and_then(|f| self.int(f).ok()).unwrap_or(0);
                    if flags & 0x2000_0000 != 0 {
                        return Some(format!("TCP Fast Open (line {line}) is not modelled by the {name} backend"));
                    }
                    if flags & !MODELLED != 0 {
                        return Some(format!(
                            "send flags {flags:#x} (line {line}) are not modelled by the {name} backend"
                        ));
                    }
                }
                Action::Syscall(c)
                    if !caps.linux_api
                        && (c.name == "setsockopt" || c.name == "getsockopt")
                        && c.args.get(2).is_some_and(|o| self.sockopt(o).is_err()) =>
                {
                    let o = c.args.get(2).map(printer::expr).unwrap_or_default();
                    return Some(format!("socket option {o} (line {line}) is not modelled by the {name} backend"));
                }
                _ => {}
            }
        }
        None
    }
}

/// What a backend without a shell does with one setting of a command.
pub(super) enum Setting {
    /// Sets the knob.
    Apply(String, String),
    /// Leaves it out, reported with the reason: what a shared shell file sets that the stack has no counterpart
    /// for, a command with nothing to do without a kernel.
    Ignore(String),
    /// The script's own setting, which the stack cannot honour: the script is skipped with the reason.
    Refuse(String),
}

impl Exec<'_> {
    /// A command as a backend without a shell runs it (see [`crate::run::shell`]); `Err` where it needs a shell.
    pub(super) fn settings(&self, c: &Command) -> Result<Vec<Setting>, String> {
        use crate::run::shell::{freebsd_equivalent, interpret, Origin, Step};
        let line = self.line(c.span);
        let mut out = Vec::new();
        for step in interpret(&c.text, self.opts.script_dir.as_deref())? {
            let (name, value, origin) = match step {
                Step::Ignored { what, why } => {
                    out.push(Setting::Ignore(format!("`{what}`: {why}")));
                    continue;
                }
                Step::Sysctl { name, value, origin } => (name, value, origin),
            };
            let (own, from) = match &origin {
                Origin::Script => (true, String::new()),
                Origin::File(f) => (false, format!(" (from {})", f.display())),
            };
            let linux = if name.starts_with("net.inet.") || name.starts_with("kern.") {
                match freebsd_equivalent(&name, &value) {
                    Some(l) => l,
                    None => {
                        let why = format!("{name}={value} is FreeBSD's, and Linux has no sysctl of that meaning");
                        out.push(if own {
                            Setting::Refuse(format!("line {line}: {why}"))
                        } else {
                            Setting::Ignore(why)
                        });
                        continue;
                    }
                }
            } else {
                vec![(name, value)]
            };
            for (k, v) in linux {
                match self.backend.check_knob(&k, &v) {
                    Ok(()) => out.push(Setting::Apply(k, v)),
                    Err(e) if own => out.push(Setting::Refuse(format!("the script sets {k}={v} (line {line}): {e}"))),
                    Err(e) => out.push(Setting::Ignore(format!("sysctl {k}={v}{from}: {e}"))),
                }
            }
        }
        Ok(out)
    }
}

/// The first FreeBSD-only name a call uses (in its arguments, result or errno).
fn freebsd_symbol(c: &Syscall) -> Option<(String, Span)> {
    use crate::script::symbols::{is_freebsd_only, symbols_in};
    let mut found = c.errno.clone().filter(|(e, _)| is_freebsd_only(e));
    for a in c.args.iter().chain(std::iter::once(&c.result)) {
        symbols_in(a, &mut |s, span| {
            if found.is_none() && is_freebsd_only(s) {
                found = Some((s.to_string(), span));
            }
        });
    }
    found
}

/// `sysctl [-q] [-w] a.b.c=v ...` as (name, value) pairs; `None` if the command is anything else.
pub(super) fn sysctl_assignments(cmd: &str) -> Option<Vec<(String, String)>> {
    let words = shlex::split(cmd)?;
    let mut words = words.iter();
    if words.next()? != "sysctl" {
        return None;
    }
    let mut out = Vec::new();
    for w in words {
        if w.starts_with('-') {
            if !["-q", "-w", "-qw", "-wq", "-e"].contains(&w.as_str()) {
                return None;
            }
            continue;
        }
        let (k, v) = w.split_once('=')?;
        out.push((k.to_string(), v.to_string()));
    }
    (!out.is_empty()).then_some(out)
}

/// The `tcpi_*` identifiers a `%{ }%` block reads.
fn tcpi_names(code: &str) -> impl Iterator<Item = &str> {
    code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("tcpi_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_lines_split_as_the_shell_splits_them() {
        let kv = |c: &str| sysctl_assignments(c).map(|v| v.into_iter().collect::<Vec<_>>());
        assert_eq!(
            kv(r#"sysctl -q net.ipv4.ip_local_port_range="40000 40000" net.ipv4.tcp_sack=0"#),
            Some(vec![
                ("net.ipv4.ip_local_port_range".to_string(), "40000 40000".to_string()),
                ("net.ipv4.tcp_sack".to_string(), "0".to_string())
            ])
        );
        assert_eq!(
            kv("sysctl -w 'net.ipv4.tcp_rmem=4096 131072 6291456'"),
            Some(vec![("net.ipv4.tcp_rmem".to_string(), "4096 131072 6291456".to_string())])
        );
        // Not a plain assignment list: left to a shell (the linux backend) or skipped.
        assert_eq!(kv("sysctl -a"), None);
        assert_eq!(kv(r#"sysctl -q net.ipv4.tcp_sack="0"#), None, "an unterminated quote");
        assert_eq!(kv("ip tcp_metrics flush"), None);
    }
}
