//! Syscalls: a script call translated into a live one, made (blocking on packetdrill's syscall thread, or in place
//! on its main thread), and its result checked.

use super::*;

/// send()'s MSG_FASTOPEN (Linux): connect and send in one call, the data in the SYN when a cookie is cached.
const MSG_FASTOPEN: i32 = 0x2000_0000;

impl Exec<'_> {
    pub(super) fn int(&self, e: &Expr) -> Result<i64, String> {
        match &e.kind {
            ExprKind::Int(i) => Ok(*i),
            ExprKind::Symbol(s) => symbol_value(s).ok_or_else(|| format!("unknown symbol {s}")),
            ExprKind::Or(v) => v.iter().try_fold(0, |acc, x| Ok(acc | self.int(x)?)),
            ExprKind::List(v) if v.len() == 1 => self.int(&v[0]),
            ExprKind::Call(n, a) if (n == "htons" || n == "htonl" || n == "ntohs") && a.len() == 1 => self.int(&a[0]),
            _ => Err(format!("{} is not a number", printer::expr(e))),
        }
    }

    pub(super) fn fd(&self, e: &Expr) -> Result<i32, String> {
        let n = self.int(e)?;
        // A script fd closed before names no descriptor: -1, so that the call fails EBADF as it does in
        // packetdrill's process, rather than reaching whatever reused the live number (on the linux backend,
        // another script's socket on another thread of `run -j`: found by `tcpdrill fuzz`, as EPIPE).
        if self.closed_fds.contains(&n) {
            return Ok(-1);
        }
        Ok(self.fds.get(&n).copied().unwrap_or(n as i32))
    }

    pub(super) fn sockaddr(&self, e: &Expr, default: SocketAddr) -> Result<SocketAddr, String> {
        match &e.kind {
            ExprKind::Ellipsis => Ok(default),
            ExprKind::Struct(fields) => {
                let mut a = default;
                for (name, v) in fields {
                    match name.as_ref().and_then(Expr::as_symbol) {
                        Some("sin_port" | "sin6_port") => a.set_port(self.int(v)? as u16),
                        Some("sin_addr" | "sin6_addr") => {
                            if let ExprKind::Call(f, args) = &v.kind {
                                if let (Some("inet_addr" | "inet_pton"), Some(ExprKind::Str(s))) =
                                    (Some(f.as_str()), args.last().map(|x| &x.kind))
                                {
                                    a.set_ip(s.parse().map_err(|_| format!("bad address {s:?}"))?);
                                }
                            }
                        }
                        _ => {}
                    }
                }
                Ok(a)
            }
            _ => Err(format!("{} is not a socket address", printer::expr(e))),
        }
    }

    pub(super) fn sockopt(&self, name: &Expr) -> Result<SockOptName, String> {
        Ok(match name.as_symbol().unwrap_or("") {
            "SO_REUSEADDR" => SockOptName::ReuseAddr,
            "SO_KEEPALIVE" => SockOptName::KeepAlive,
            "SO_LINGER" => SockOptName::Linger,
            "SO_ERROR" => SockOptName::Error,
            "SO_RCVBUF" => SockOptName::RcvBuf,
            "SO_SNDBUF" => SockOptName::SndBuf,
            "TCP_NODELAY" => SockOptName::NoDelay,
            "TCP_MAXSEG" => SockOptName::MaxSeg,
            "TCP_KEEPIDLE" => SockOptName::KeepIdle,
            "TCP_KEEPINTVL" => SockOptName::KeepIntvl,
            "TCP_KEEPCNT" => SockOptName::KeepCnt,
            "TCP_USER_TIMEOUT" => SockOptName::UserTimeout,
            "TCP_INFO" => SockOptName::Info,
            other => return Err(format!("socket option {other} is not supported")),
        })
    }

    pub(super) fn optval(&self, e: &Expr) -> Result<SockOptValue, String> {
        match &e.kind {
            ExprKind::Struct(fields) => {
                let get = |n: &str| {
                    fields
                        .iter()
                        .find(|(k, _)| k.as_ref().and_then(Expr::as_symbol) == Some(n))
                        .map(|(_, v)| self.int(v))
                };
                Ok(SockOptValue::Linger {
                    onoff: get("onoff").or_else(|| get("l_onoff")).transpose()?.unwrap_or(0) != 0,
                    linger: get("linger").or_else(|| get("l_linger")).transpose()?.unwrap_or(0) as u32,
                })
            }
            _ => Ok(SockOptValue::Int(self.int(e)?)),
        }
    }

    /// The bytes of an option value passed by number ([`Call::SetSockOptRaw`]): an int (`[1]`, `1`, a symbol) as
    /// many bytes of it in host order as optlen says (4 when it says nothing), or a string's bytes, zero-padded to
    /// optlen.
    pub(super) fn raw_optval(&self, v: &Expr, optlen: Option<&Expr>) -> Result<Vec<u8>, String> {
        let optlen = match optlen.map(|e| &e.kind) {
            None | Some(ExprKind::Ellipsis) => None,
            Some(_) => Some(self.int(optlen.expect("matched"))?),
        };
        let len = |default: usize| -> Result<usize, String> {
            match optlen {
                None => Ok(default),
                Some(n) if (0..=4096).contains(&n) => Ok(n as usize),
                Some(n) => Err(format!("optlen {n} is out of range")),
            }
        };
        match &v.kind {
            ExprKind::Str(s) => {
                let mut b = s.as_bytes().to_vec();
                b.resize(len(b.len())?, 0);
                Ok(b)
            }
            _ => {
                let n = self.int(v)?;
                Ok(match len(4)? {
                    1 => vec![n as u8],
                    2 => (n as i16).to_ne_bytes().to_vec(),
                    4 => (n as i32).to_ne_bytes().to_vec(),
                    8 => n.to_ne_bytes().to_vec(),
                    l => return Err(format!("optlen {l} does not fit the integer {n}")),
                })
            }
        }
    }

    /// poll()'s first argument: `[{fd=N, events=FLAGS, revents=FLAGS}, ...]`, as packetdrill writes it.
    pub(super) fn pollfds<'e>(&self, e: &'e Expr) -> Result<Vec<PollFd<'e>>, String> {
        let shape = "poll takes [{fd=N, events=FLAGS, revents=FLAGS}, ...]";
        let items = match &e.kind {
            ExprKind::List(v) => v,
            _ => return Err(shape.into()),
        };
        items
            .iter()
            .map(|item| {
                let ExprKind::Struct(fields) = &item.kind else { return Err(shape.to_string()) };
                let get = |n: &str| {
                    fields
                        .iter()
                        .find(|(k, _)| k.as_ref().and_then(Expr::as_symbol) == Some(n))
                        .map(|(_, v)| v)
                        .ok_or_else(|| format!("{shape}: {n} is missing"))
                };
                Ok(PollFd { fd: get("fd")?, events: get("events")?, revents: get("revents")? })
            })
            .collect()
    }

    /// The byte count of an iovec array, `[{iov_base=..., iov_len=N}, ...]`, whose element count the script also
    /// gives (`count`, as writev's iovcnt or msghdr's msg_iov(N)); packetdrill's iovec_new.
    pub(super) fn iovec_total(&self, iov: &Expr, count: &Expr, what: &str) -> Result<usize, String> {
        // packetdrill writes an iovec `{..., N}`, nplab's fork `{iov_base=..., iov_len=N}`.
        let shape = "an iovec array is [{..., N}, ...] (or nplab's [{iov_base=..., iov_len=N}, ...])";
        let ExprKind::List(items) = &iov.kind else { return Err(shape.into()) };
        let mut total = 0usize;
        for item in items {
            let len = match &item.kind {
                ExprKind::Struct(f) if f.len() == 2 && f.iter().all(|(k, _)| k.is_none()) => &f[1].1,
                ExprKind::Struct(f) => f
                    .iter()
                    .find(|(k, _)| k.as_ref().and_then(Expr::as_symbol) == Some("iov_len"))
                    .map(|(_, v)| v)
                    .ok_or_else(|| format!("{shape}: iov_len is missing"))?,
                _ => return Err(shape.into()),
            };
            let len = usize::try_from(self.int(len)?).map_err(|_| "iov_len must not be negative".to_string())?;
            total = total.saturating_add(len);
        }
        let n = self.int(count)?;
        if n != items.len() as i64 {
            return Err(format!("{what} {n} does not match {}-element iovec array", items.len()));
        }
        Ok(total)
    }

    /// A msghdr, `{msg_name(...)=..., msg_iov(N)=[...], msg_flags=F[, msg_control=[...]]}`: its iovecs' byte
    /// count, the msg_flags written and whether it has control messages.
    pub(super) fn msghdr(&self, m: &Expr) -> Result<(usize, i64, bool), String> {
        let shape = "a msghdr is {msg_name(...)=..., msg_iov(N)=[{..., LEN}], msg_flags=F}";
        let ExprKind::Struct(fields) = &m.kind else { return Err(shape.into()) };
        let mut iov = None;
        let (mut flags, mut control) = (0, false);
        for (k, v) in fields {
            match k.as_ref().map(|k| &k.kind) {
                Some(ExprKind::Call(n, args)) if n == "msg_iov" => {
                    let count = args.first().ok_or_else(|| format!("{shape}: msg_iov(N) gives the count"))?;
                    iov = Some(self.iovec_total(v, count, "msg_iovlen")?);
                }
                Some(ExprKind::Call(n, _)) if n == "msg_name" => {}
                Some(ExprKind::Symbol(n)) if n == "msg_flags" => flags = self.int(v)?,
                // packetdrill writes `msg_control=[...]`, nplab `msg_control(N)=[...]`.
                Some(ExprKind::Symbol(n) | ExprKind::Call(n, _)) if n == "msg_control" => {
                    control = !matches!(&v.kind, ExprKind::List(l) if l.is_empty());
                }
                _ => return Err(shape.into()),
            }
        }
        Ok((iov.ok_or_else(|| format!("{shape}: msg_iov is missing"))?, flags, control))
    }

    /// packetdrill's epoll_event, `{events=E, fd=N}` (or `ptr=`, `u32=`, `u64=`): the events and the data. For
    /// `fd=N` the data is N's live descriptor, and in epoll_ctl N must be the call's own fd (`ctl_fd`), as
    /// packetdrill's get_epoll_event_from_expr requires.
    pub(super) fn epoll_event(&self, e: &Expr, ctl_fd: Option<i64>) -> Result<(u32, EpollData), String> {
        let shape = "an epoll_event is {events=FLAGS, fd=N} (or ptr=, u32=, u64= for the data)";
        let ExprKind::Struct(fields) = &e.kind else { return Err(shape.into()) };
        let get =
            |n: &str| fields.iter().find(|(k, _)| k.as_ref().and_then(Expr::as_symbol) == Some(n)).map(|(_, v)| v);
        let events = self.int(get("events").ok_or_else(|| format!("{shape}: events is missing"))?)? as u32;
        let data = if let Some(v) = get("fd") {
            let n = self.int(v)?;
            if ctl_fd.is_some_and(|c| c != n) {
                return Err("wrong fd specified in epoll_event".into());
            }
            EpollData { value: self.live_fd(n)? as u32 as u64, kind: "fd", fd: true }
        } else if let Some((k, v)) = ["ptr", "u32", "u64"].iter().find_map(|k| get(k).map(|v| (*k, v))) {
            let n = self.int(v)?;
            let value = if k == "u32" { n as u32 as u64 } else { n as u64 };
            EpollData { value, kind: k, fd: false }
        } else {
            return Err(format!("{shape}: the data (fd=, ptr=, u32= or u64=) is missing"));
        };
        Ok((events, data))
    }

    /// When a poll() or epoll_wait() that finds nothing ready returns, from its timeout in milliseconds: at once
    /// (`None`) for 0, never (`Micros::MAX`) for a negative one.
    fn wait_until(&self, timeout: &Expr) -> Result<Option<Micros>, String> {
        let t = self.int(timeout)?;
        let t = i32::try_from(t).map_err(|_| format!("timeout {t} out of range"))?;
        Ok(match t {
            0 => None,
            t if t < 0 => Some(Micros::MAX),
            t => Some(self.backend.now().saturating_add(i64::from(t) * 1000)),
        })
    }

    /// packetdrill's to_live_fd: the live descriptor of script fd `n`, which the script opened and has not closed
    /// (a raw number could be one of the harness's own on the linux backend).
    fn live_fd(&self, n: i64) -> Result<i32, String> {
        self.fds
            .get(&n)
            .filter(|_| !self.closed_fds.contains(&n))
            .copied()
            .ok_or_else(|| format!("unable to find fd with script fd {n}"))
    }

    /// The live call for a script syscall.
    pub(super) fn translate(&mut self, c: &Syscall) -> Result<Call, String> {
        let a = &c.args;
        let arg = |i: usize| a.get(i).ok_or_else(|| format!("{} needs argument {}", c.name, i + 1));
        let local = SocketAddr::new(self.local_ip, self.opts.port);
        let remote = SocketAddr::new(self.remote_ip, self.opts.connect_port);
        Ok(match c.name.as_str() {
            "socket" => {
                let d = match arg(0)?.kind {
                    // As packetdrill: `...` is the run's family, AF_INET6 for IPv6 and for IPv4-mapped addresses.
                    ExprKind::Ellipsis if self.backend.ip_version() == IpVersion::V4 => Domain::Inet,
                    ExprKind::Ellipsis => Domain::Inet6,
                    _ if self.int(arg(0)?)? == 10 => Domain::Inet6,
                    _ => Domain::Inet,
                };
                Call::Socket(d)
            }
            "bind" => {
                let addr = self.sockaddr(arg(1)?, local)?;
                self.local_port = Some(addr.port());
                Call::Bind(self.fd(arg(0)?)?, addr)
            }
            "listen" => Call::Listen(self.fd(arg(0)?)?, self.int(arg(1)?)? as i32),
            "accept" => Call::Accept(self.fd(arg(0)?)?),
            "connect" => {
                let addr = self.sockaddr(arg(1)?, remote)?;
                let fd = self.fd(arg(0)?)?;
                // A new connection's port is learned from its SYN; connect() again on the same socket (EALREADY,
                // EISCONN) keeps the one already learned.
                if self.under_test != Some(fd) {
                    self.local_port = None;
                }
                self.remote_port = addr.port();
                Call::Connect(fd, addr)
            }
            "read" | "recv" | "recvfrom" => {
                let peek = c.name != "read" && a.get(3).and_then(|f| self.int(f).ok()).is_some_and(|f| f & 2 != 0);
                Call::Read { fd: self.fd(arg(0)?)?, len: self.int(arg(2)?)? as usize, peek, null: is_null(arg(1)?) }
            }
            "write" | "send" | "sendto" => {
                let fd = self.fd(arg(0)?)?;
                let flags = if c.name == "write" { 0 } else { self.int(arg(3)?)? as i32 };
                let to = match c.name.as_str() {
                    // As packetdrill: sendto() always passes the script's remote address; an address family in
                    // its place (AF_UNSPEC, to disconnect) is not modelled.
                    "sendto" if matches!(arg(4)?.kind, ExprKind::Ellipsis) => Some(remote),
                    "sendto" => return Err("sendto() takes ... for its address".into()),
                    _ => None,
                };
                if flags & MSG_FASTOPEN != 0 && self.fresh.contains(&fd) {
                    // A Fast Open sendto() on a new socket is its connect(): the connection's ports are learned
                    // from the SYN it sends.
                    self.local_port = None;
                    self.remote_port = remote.port();
                }
                Call::Write { fd, len: self.int(arg(2)?)? as usize, null: is_null(arg(1)?), flags, to }
            }
            // As one write or read of the iovecs' bytes: TCP sends and receives them as one stream either way.
            "writev" => {
                let fd = self.fd(arg(0)?)?;
                let len = self.iovec_total(arg(1)?, arg(2)?, "iov_count")?;
                Call::Write { fd, len, null: false, flags: 0, to: None }
            }
            "readv" => {
                let fd = self.fd(arg(0)?)?;
                Call::Read { fd, len: self.iovec_total(arg(1)?, arg(2)?, "iov_count")?, peek: false, null: false }
            }
            "sendmsg" | "recvmsg" => {
                let fd = self.fd(arg(0)?)?;
                // Control messages, MSG_ERRQUEUE and msg_flags the stack must return are refused by preflight.
                let (len, _, _) = self.msghdr(arg(1)?)?;
                let flags = self.int(arg(2)?)? as i32;
                if c.name == "sendmsg" {
                    // packetdrill's msg_name is zeroed: the socket's own peer is the destination.
                    Call::Write { fd, len, null: false, flags, to: None }
                } else {
                    Call::Read { fd, len, peek: flags & 2 != 0, null: false }
                }
            }
            "shutdown" => {
                let how = match self.int(arg(1)?)? {
                    0 => Shutdown::Read,
                    1 => Shutdown::Write,
                    _ => Shutdown::Both,
                };
                Call::Shutdown(self.fd(arg(0)?)?, how)
            }
            "close" => Call::Close(self.fd(arg(0)?)?),
            "setsockopt" | "getsockopt" => {
                let fd = self.fd(arg(0)?)?;
                match (self.sockopt(arg(2)?), c.name == "setsockopt") {
                    (Ok(n), true) => Call::SetSockOpt(fd, n, self.optval(arg(3)?)?),
                    (Ok(n), false) => Call::GetSockOpt(fd, n),
                    (Err(_), set) if self.linux_api => {
                        let (level, name) = (self.int(arg(1)?)? as i32, self.int(arg(2)?)? as i32);
                        if set {
                            Call::SetSockOptRaw { fd, level, name, value: self.raw_optval(arg(3)?, a.get(4))? }
                        } else {
                            // A string value is read with the script's optlen, as packetdrill reads it.
                            let string = match a.get(3).map(|v| &v.kind) {
                                Some(ExprKind::Str(_)) => Some(self.int(arg(4)?)?.clamp(0, 4096) as usize),
                                _ => None,
                            };
                            Call::GetSockOptRaw { fd, level, name, string }
                        }
                    }
                    (Err(m), _) => return Err(m),
                }
            }
            "fcntl" => match arg(1)?.as_symbol() {
                Some("F_GETFL") => Call::GetFl(self.fd(arg(0)?)?),
                Some("F_SETFL") => Call::SetNonBlocking(self.fd(arg(0)?)?, self.int(arg(2)?)? & 0o4000 != 0),
                other => return Err(format!("fcntl {} is not supported", other.unwrap_or("?"))),
            },
            "ioctl" => match arg(1)?.as_symbol() {
                Some("SIOCINQ" | "FIONREAD") => Call::BytesReadable(self.fd(arg(0)?)?),
                other => return Err(format!("ioctl {} is not supported", other.unwrap_or("?"))),
            },
            "poll" => {
                let items = self.pollfds(arg(0)?)?;
                let nfds = self.int(arg(1)?)?;
                if nfds != items.len() as i64 {
                    return Err(format!("nfds {nfds} does not match {}-element pollfd array", items.len()));
                }
                let fds = items
                    .iter()
                    .map(|f| {
                        // As packetdrill's to_live_fd: a pollfd names a descriptor the script opened and has not
                        // closed (a raw number could be one of the harness's own on the linux backend).
                        let live = self.live_fd(self.int(f.fd)?)?;
                        let events = self.int(f.events)?;
                        let events = i16::try_from(events).map_err(|_| format!("events {events:#x} out of range"))?;
                        Ok((live, events))
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                let until = self.wait_until(arg(2)?)?;
                Call::Poll { fds, until }
            }
            "epoll_create" => Call::EpollCreate(self.int(arg(0)?)? as i32),
            "epoll_ctl" => {
                let (epfd, op, script_fd) = (self.fd(arg(0)?)?, self.int(arg(1)?)? as i32, self.int(arg(2)?)?);
                let fd = self.fd(arg(2)?)?;
                let (events, data) = self.epoll_event(arg(3)?, Some(script_fd))?;
                Call::EpollCtl { epfd, op, fd, events, data: data.value }
            }
            "epoll_wait" => {
                let epfd = self.fd(arg(0)?)?;
                // The expected event is checked with the result; here only that it is well formed.
                self.epoll_event(arg(1)?, None)?;
                let max = self.int(arg(2)?)? as i32;
                let until = self.wait_until(arg(3)?)?;
                Call::EpollWait { epfd, max, until }
            }
            "tcp_state" => {
                let (lp, rp) = self.default_tuple(None, false);
                let mut t = FourTuple {
                    local: SocketAddr::new(self.local_ip, lp),
                    remote: SocketAddr::new(self.remote_ip, rp),
                };
                if let Some(ExprKind::Struct(fields)) = a.first().map(|e| &e.kind) {
                    let ip = |v: &Expr| match &v.kind {
                        ExprKind::Str(s) => s.parse::<IpAddr>().map_err(|_| format!("{s:?} is not an IP address")),
                        ExprKind::Call(f, args) if f == "inet_addr" || f == "inet_pton" => match args.last() {
                            Some(Expr { kind: ExprKind::Str(s), .. }) => {
                                s.parse::<IpAddr>().map_err(|_| format!("{s:?} is not an IP address"))
                            }
                            _ => Err(format!("{} is not an IP address", printer::expr(v))),
                        },
                        _ => Err(format!("{} is not an IP address: write it in quotes", printer::expr(v))),
                    };
                    for (n, v) in fields {
                        match n.as_ref().and_then(Expr::as_symbol) {
                            Some("local_port") => t.local.set_port(self.int(v)? as u16),
                            Some("remote_port") => t.remote.set_port(self.int(v)? as u16),
                            Some("local_ip") => t.local.set_ip(ip(v)?),
                            Some("remote_ip") => t.remote.set_ip(ip(v)?),
                            _ => {
                                return Err("tcp_state takes {local_ip=\"A\", remote_ip=\"B\", local_port=N, \
                                            remote_port=N}, each optional"
                                    .into())
                            }
                        }
                    }
                }
                Call::TcpState(t)
            }
            other => return Err(format!("syscall {other} is not supported")),
        })
    }

    pub(super) fn syscall(&mut self, e: &Event, c: &Syscall, start: Micros, expected_end: Option<Micros>) -> Res<()> {
        if c.name.starts_with("tcp_isn_") {
            return self.isn_extension(e, c);
        }
        // packetdrill makes every call after waiting up to a second for one still blocked on its syscall thread
        // (tcp_state is tcpdrill's own observation, not a call, and waits for nothing).
        let idle = if c.name == "tcp_state" { self.pending.is_none() } else { self.await_pending()? };
        let ports = (self.local_port, self.remote_port);
        let call =
            self.translate(c).map_err(|m| self.fail(e.span, "error handling syscall", m, vec![], "this call"))?;
        if let (Call::Close(fd), Some(p)) = (&call, &self.pending) {
            let watched = match &p.call {
                Call::Poll { fds, .. } => fds.iter().any(|&(f, _)| f == *fd),
                Call::EpollWait { epfd, .. } => epfd == fd,
                other => self.call_fd(other) == Some(*fd),
            };
            if watched {
                // Closing it would let the next socket() take the same descriptor, and the blocked call would then
                // complete on a socket it was never made on.
                let what = format!("{} from line {}", call_name(&p.call), self.line(p.event.span));
                return Err(self.fail(
                    e.span,
                    "error handling syscall",
                    format!("close() of a descriptor on which {what} is still blocked"),
                    vec![format!("let {what} return first (its end time is {} s)", secs(p.end))],
                    "this close",
                ));
            }
        }
        let res = self.backend.call(&call);
        self.collect_states();
        let connects = match call {
            Call::Connect(fd, _) => Some(fd),
            Call::Write { fd, flags, .. } if flags & MSG_FASTOPEN != 0 && self.fresh.contains(&fd) => Some(fd),
            _ => None,
        };
        // A socket stops being fresh once a connect, listen or send on it did something (a failed write() leaves
        // it free to be Fast Open's connect later); closed, its number may come back as another socket.
        let started = !matches!(res, CallResult::Err(_)) || matches!(res, CallResult::Err(Errno::EINPROGRESS));
        if let Call::Close(fd) = call {
            self.fresh.remove(&fd);
        } else if let Call::Connect(fd, _) | Call::Listen(fd, _) | Call::Write { fd, .. } = call {
            if started {
                self.fresh.remove(&fd);
            }
        }
        if let Some(fd) = connects {
            if matches!(res, CallResult::Err(Errno::EISCONN | Errno::EBADF | Errno::EINVAL | Errno::EOPNOTSUPP)) {
                // A connect() refused outright (say on an accepted socket) started no connection: the script's
                // connection stays the one it was.
                (self.local_port, self.remote_port) = ports;
            } else {
                self.under_test = Some(fd);
                self.space.connecting();
            }
        }
        let blocks = (matches!(res, CallResult::Err(Errno::EAGAIN | Errno::EINPROGRESS | Errno::EALREADY))
            && matches!(call, Call::Accept(_) | Call::Connect(..) | Call::Read { .. } | Call::Write { .. })
            && !self.call_fd(&call).is_some_and(|fd| self.nonblocking.get(&fd).copied().unwrap_or(false)))
            // poll() with a timeout waits for an event whatever O_NONBLOCK says.
            || matches!((&call, &res), (Call::Poll { until: Some(_), .. }, CallResult::Polled(r)) if r.iter().all(|&x| x == 0))
            || matches!((&call, &res), (Call::EpollWait { until: Some(_), .. }, CallResult::Epolled(r)) if r.is_empty());
        if blocks {
            let Some(end) = expected_end else {
                return self.block_in_place(e, c, call, start);
            };
            // packetdrill runs a blocking call on a thread of its own, one at a time.
            if !idle {
                return Err(self.fail(
                    e.span,
                    "error handling syscall",
                    "blocking system call while another blocking system call is already in progress".into(),
                    vec!["packetdrill waits one second for the first to return, as tcpdrill did".into()],
                    "this call",
                ));
            }
            self.pending = Some(Pending { call, event: e.clone(), end, start });
            return Ok(());
        }
        if let Some(end) = expected_end {
            // A call written as blocking that returned at once.
            self.check_return_time(e, &c.name, start, end, start)?;
        }
        self.check_result(e, c, &call, res)
    }

    /// A call written without `t1...t2` that blocks. packetdrill makes such a call on its main thread, so the
    /// script stops with it: time goes on, the stack's timers fire, and the call returns when the stack completes
    /// it by itself; the events after it then run late and fail packetdrill's timing check. A call that nothing
    /// but the script's own later events could complete fails here, where packetdrill would hang.
    pub(super) fn block_in_place(&mut self, e: &Event, c: &Syscall, call: Call, start: Micros) -> Res<()> {
        let limit = start.saturating_add(i64::try_from(self.opts.timeout.as_micros()).unwrap_or(i64::MAX));
        loop {
            if let Some(res) = self.try_complete(&call) {
                return self.check_result(e, c, &call, res);
            }
            self.within_limit()?;
            let now = self.backend.now();
            let next = match self.backend.next_event_time() {
                None if self.real_time => Some(now + 5_000),
                Some(w) if w >= now => Some(w.max(now + 1)),
                _ => None,
            };
            let next =
                earliest(earliest(next, poll_until(&call)), self.pending.as_ref().and_then(|p| poll_until(&p.call)));
            match next.filter(|&w| w <= limit) {
                Some(w) => {
                    self.backend.advance_to(w);
                    self.collect_states();
                    // A call blocked on packetdrill's syscall thread returns meanwhile, at its own time.
                    self.poll_pending()?;
                }
                None => {
                    let why = if next.is_some() {
                        format!("it was still blocked {} s later (--timeout)", self.opts.timeout.as_secs_f64())
                    } else {
                        "nothing the stack does by itself can complete it, and the later events cannot run while it \
                         blocks"
                            .to_string()
                    };
                    return Err(self.fail(
                        e.span,
                        "error handling syscall",
                        format!("{} blocks the script: {why}", c.name),
                        vec![
                            "a call written without an end time runs on the script's own thread, as in packetdrill"
                                .into(),
                            format!(
                                "write `{}...END {}(...)` to let later events run while it blocks",
                                secs(start),
                                c.name
                            ),
                        ],
                        "blocks",
                    ));
                }
            }
        }
    }

    /// packetdrill's `await_idle_thread`: lets up to one second pass for a call blocked on the syscall thread to
    /// return, as packetdrill does before any other call and at the end of the script. Whether it returned.
    pub(super) fn await_pending(&mut self) -> Res<bool> {
        let limit = self.backend.now().saturating_add(1_000_000);
        while self.pending.is_some() {
            self.within_limit()?;
            let now = self.backend.now();
            if now >= limit {
                return Ok(false);
            }
            let step = match self.backend.next_event_time() {
                _ if self.real_time => now + 5_000,
                Some(w) if w >= now => w.max(now + 1),
                _ => limit,
            };
            let step = earliest(Some(step), self.pending.as_ref().and_then(|p| poll_until(&p.call))).unwrap_or(step);
            self.backend.advance_to(step.min(limit));
            self.collect_states();
            self.poll_pending()?;
        }
        Ok(true)
    }

    /// Makes a blocked call again if the backend says it can make progress; `None` while it still blocks.
    pub(super) fn try_complete(&mut self, call: &Call) -> Option<CallResult> {
        if let Call::Poll { until, .. } | Call::EpollWait { until, .. } = call {
            // A poll is its own readiness test, the same on every backend: done when an fd has an event, or at
            // its timeout (epoll_wait likewise).
            let res = self.backend.call(call);
            self.collect_states();
            let now = self.backend.now();
            let done = match &res {
                CallResult::Polled(r) => r.iter().any(|&x| x != 0),
                CallResult::Epolled(r) => !r.is_empty(),
                _ => true,
            } || until.is_none_or(|u| now >= u);
            return done.then_some(res);
        }
        if !self.backend.ready(call) {
            return None;
        }
        let res =
            match call {
                // A blocking Fast Open sendto() whose SYN went without data sends it once connected, as Linux's
                // tcp_sendmsg goes on after the connect it waited for.
                Call::Write { fd, len, null, flags, to } if flags & MSG_FASTOPEN != 0 => self
                    .backend
                    .call(&Call::Write { fd: *fd, len: *len, null: *null, flags: flags & !MSG_FASTOPEN, to: *to }),
                _ => self.backend.call(call),
            };
        self.collect_states();
        match (call, &res) {
            // connect() again after the handshake: 0 once, as Linux's inet_stream_connect reports.
            (Call::Connect(..), CallResult::Err(Errno::EALREADY | Errno::EINPROGRESS)) => None,
            _ => Some(res),
        }
    }

    /// tcpdrill's ISN extensions, answered from the ISNs the executor learned (the stack's sequence numbers are
    /// otherwise only seen relative to them): `tcp_isn_distinct()` is 1 when every connection so far had an ISN of
    /// its own; `tcp_isn_beyond_previous()` is 1 when the current connection's ISN lies beyond (RFC 1982) the last
    /// sequence number the previous incarnation of the same four-tuple used; `tcp_isn_clock_within(rate, percent)`
    /// is 1 when the ISN clock ran at `rate` ticks a second, within `percent`, between those two incarnations.
    pub(super) fn isn_extension(&mut self, e: &Event, c: &Syscall) -> Res<()> {
        let fail = |x: &Self, m: String| x.fail(e.span, "error handling syscall", m, vec![], "this call");
        let got: i64 = match c.name.as_str() {
            "tcp_isn_distinct" => match self.space.isns_distinct() {
                Some(d) => i64::from(d),
                None => return Err(fail(self, "tcp_isn_distinct() needs two connections whose ISNs were seen".into())),
            },
            "tcp_isn_beyond_previous" => match self.space.isn_beyond_previous() {
                Ok(b) => i64::from(b),
                Err(why) => return Err(fail(self, format!("tcp_isn_beyond_previous(): {why}"))),
            },
            "tcp_isn_clock_within" => {
                let [rate, pct] = &c.args[..] else {
                    return Err(fail(self, "tcp_isn_clock_within(rate, percent) takes two numbers".into()));
                };
                let (rate, pct) =
                    (self.int(rate).map_err(|m| fail(self, m))?, self.int(pct).map_err(|m| fail(self, m))?);
                match self.space.isn_clock_within(rate as f64, pct as f64) {
                    Ok(b) => i64::from(b),
                    Err(why) => return Err(fail(self, format!("tcp_isn_clock_within(): {why}"))),
                }
            }
            other => return Err(fail(self, format!("unknown extension {other}()"))),
        };
        let t = self.backend.now();
        let text = format!("{}() -> {got}", c.name);
        self.trace.lines.push((self.line(e.span), format!("{} {text}", secs(t))));
        self.trace.entries.push(TraceEntry::Call { t, text });
        let want = self.int(&c.result).map_err(|m| fail(self, m))?;
        if want != got {
            return Err(fail(self, format!("{}() = {got} but the script expects {want}", c.name)));
        }
        Ok(())
    }

    /// A blocking call (`t1...t2`) must return at `t2`, within the tolerance of its own duration.
    pub(super) fn check_return_time(
        &self,
        e: &Event,
        name: &str,
        start: Micros,
        end: Micros,
        returned: Micros,
    ) -> Res<()> {
        let tol = self.tolerance_over(end - start);
        if returned.abs_diff(end) <= tol.unsigned_abs() {
            return Ok(());
        }
        let msg = timing_error(&format!("{name} to return"), end, end, returned, tol);
        Err(self.fail(e.time_span, "error handling syscall", msg, vec![], "expected return time"))
    }

    pub(super) fn call_fd(&self, call: &Call) -> Option<i32> {
        match call {
            Call::Accept(fd) | Call::Connect(fd, _) | Call::Read { fd, .. } | Call::Write { fd, .. } => Some(*fd),
            _ => None,
        }
    }

    pub(super) fn poll_pending(&mut self) -> Res<()> {
        let Some(call) = self.pending.as_ref().map(|p| p.call.clone()) else { return Ok(()) };
        let Some(res) = self.try_complete(&call) else { return Ok(()) };
        let p = self.pending.take().expect("checked above");
        let e = &p.event;
        let Action::Syscall(c) = &e.action else { unreachable!("pending calls come from syscall events") };
        self.check_return_time(e, &c.name, p.start, p.end, self.backend.now())?;
        self.check_result(e, c, &p.call, res)
    }

    pub(super) fn check_result(&mut self, e: &Event, c: &Syscall, call: &Call, res: CallResult) -> Res<()> {
        let checked = self.compare_result(e, c, call, res);
        // Record mode takes the result into the trace and compares nothing.
        if self.opts.record {
            return Ok(());
        }
        checked
    }

    fn compare_result(&mut self, e: &Event, c: &Syscall, call: &Call, res: CallResult) -> Res<()> {
        let t = self.backend.now();
        let got_text = match (&res, call) {
            (CallResult::Value(SockOptValue::Int(n)), Call::TcpState(_)) => {
                TcpState::from_linux_number(*n as u8).map_or(n.to_string(), |s| s.linux_name().to_string())
            }
            (CallResult::Value(SockOptValue::Int(n)), _) => format!("0 [{n}]"),
            (CallResult::Value(SockOptValue::Linger { onoff, linger }), _) => {
                format!("0 {{onoff={}, linger={linger}}}", u8::from(*onoff))
            }
            (CallResult::Value(SockOptValue::Info(i)), _) => format!("0 {{tcpi_state={}}}", i.state),
            (CallResult::Bytes(b), _) => format!("0 {:?}", bytes_text(b)),
            (CallResult::Ok(v), _) => v.to_string(),
            (CallResult::Err(err), _) => format!("-1 {}", err.name()),
            (CallResult::Polled(r), _) => format!(
                "{} [{}]",
                r.iter().filter(|&&x| x != 0).count(),
                r.iter().map(|&x| poll_flags(x)).collect::<Vec<_>>().join(", ")
            ),
            (CallResult::Epolled(r), _) => format!(
                "{} [{}]",
                r.len(),
                r.iter()
                    .map(|&(ev, d)| format!("{{events={}, data={d}}}", poll_flags(ev as i16)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut shown = c.clone();
        shown.note = None;
        let text = format!("{} -> {got_text}", printer::syscall(&shown));
        self.trace.lines.push((self.line(e.span), format!("{} {text}", secs(t))));
        self.trace.entries.push(TraceEntry::Call { t, text });
        let fail = |x: &Self, msg: String| x.fail(e.span, "error handling syscall", msg, vec![], "this call");
        if let Call::SetNonBlocking(fd, on) = call {
            self.nonblocking.insert(*fd, *on);
        }
        if let (Call::Close(_), CallResult::Ok(_)) = (call, &res) {
            if let Ok(n) = c.args.first().map_or(Err(String::new()), |a| self.int(a)) {
                self.closed_fds.insert(n);
            }
        }
        // tcp_state compares the state named in the result.
        if let (Call::TcpState(tuple), CallResult::Value(SockOptValue::Int(n))) = (call, &res) {
            let want = self.int(&c.result).map_err(|m| fail(self, m))?;
            let closed = i64::from(TcpState::Closed.linux_number());
            if *n == closed && !self.seen.contains(&(tuple.local, tuple.remote)) {
                // CLOSED would be true of any tuple; say that this one never carried a segment instead.
                return Err(fail(
                    self,
                    format!(
                        "tcp_state: no such connection: no segment between {} (the stack) and {} was sent or \
                         received",
                        tuple.local, tuple.remote
                    ),
                ));
            }
            if want != *n {
                let name = |v: i64| {
                    TcpState::from_linux_number(v as u8).map_or("?".to_string(), |s| s.linux_name().to_string())
                };
                return Err(fail(
                    self,
                    format!("tcp_state: expected {} but the connection is in {}", name(want), name(*n)),
                ));
            }
            return Ok(());
        }
        let expected = match &c.result.kind {
            ExprKind::Ellipsis => None,
            _ => Some(self.int(&c.result).map_err(|m| fail(self, m))?),
        };
        if let CallResult::Polled(got) = &res {
            // packetdrill: the return value exactly, then each pollfd's revents exactly.
            let n = got.iter().filter(|&&x| x != 0).count() as i64;
            if let Some(want) = expected.filter(|&w| w != n) {
                return Err(fail(self, format!("poll returned {n} but expected {want}")));
            }
            let items = self.pollfds(&c.args[0]).map_err(|m| fail(self, m))?;
            for (i, (item, &g)) in items.iter().zip(got).enumerate() {
                if matches!(item.revents.kind, ExprKind::Ellipsis) {
                    continue;
                }
                let want = self.int(item.revents).map_err(|m| fail(self, m))? as i16;
                if want != g {
                    return Err(fail(
                        self,
                        format!("Expected revents of {} but got {} for pollfd {i}", poll_flags(want), poll_flags(g)),
                    ));
                }
            }
            return Ok(());
        }
        if let CallResult::Epolled(got) = &res {
            // packetdrill: the return value exactly, then the first event (all zeros when none came) against the
            // script's, its events and its data as the script names it.
            if let Some(want) = expected.filter(|&w| w != got.len() as i64) {
                return Err(fail(self, format!("epoll_wait returned {} but expected {want}", got.len())));
            }
            let (want_events, want_data) = self.epoll_event(&c.args[1], None).map_err(|m| fail(self, m))?;
            let (events, data) = got.first().copied().unwrap_or((0, 0));
            if events != want_events {
                return Err(fail(
                    self,
                    format!(
                        "epoll_event->events does not match script: expected: {want_events:#x} actual: {events:#x}"
                    ),
                ));
            }
            let data = if want_data.kind == "u32" || want_data.fd { data as u32 as u64 } else { data };
            if data != want_data.value {
                return Err(fail(
                    self,
                    format!(
                        "epoll_event->data does not match script: expected: {} actual: {data} ({})",
                        want_data.value, want_data.kind
                    ),
                ));
            }
            return Ok(());
        }
        match (&res, expected) {
            (_, None) => {}
            (CallResult::Err(err), Some(-1)) => {
                if let Some((want, _)) = &c.errno {
                    // By number, as packetdrill compares errno: EWOULDBLOCK is EAGAIN.
                    if Errno::from_name(want) != Some(*err) {
                        return Err(fail(
                            self,
                            format!("{} returned -1 with errno {} but expected {want}", c.name, err),
                        ));
                    }
                }
            }
            (CallResult::Err(err), Some(v)) => {
                return Err(fail(self, format!("{} returned -1 {} but expected {v}", c.name, err)));
            }
            (CallResult::Polled(_) | CallResult::Epolled(_), _) => unreachable!("checked above"),
            (CallResult::Ok(_) | CallResult::Value(_) | CallResult::Bytes(_), Some(-1)) => {
                let got = if let CallResult::Ok(g) = res { g } else { 0 };
                let want = c.errno.as_ref().map_or(String::new(), |(e, _)| format!(" {e}"));
                return Err(fail(self, format!("{} returned {got} but expected -1{want}", c.name)));
            }
            (CallResult::Ok(got), Some(want)) => {
                if matches!(call, Call::Socket(_) | Call::Accept(_) | Call::EpollCreate(_)) {
                    self.fds.insert(want, *got as i32);
                    if matches!(call, Call::Socket(_)) {
                        self.fresh.insert(*got as i32);
                    }
                    self.closed_fds.remove(&want);
                    if matches!(call, Call::Accept(_)) {
                        self.under_test = Some(*got as i32);
                    }
                } else if *got != want {
                    return Err(fail(self, format!("{} returned {got} but expected {want}", c.name)));
                }
            }
            (CallResult::Value(_) | CallResult::Bytes(_), Some(0)) => {}
            (CallResult::Value(_) | CallResult::Bytes(_), Some(want)) => {
                return Err(fail(self, format!("{} returned 0 but expected {want}", c.name)))
            }
        }
        // getsockopt / ioctl values.
        match (call, &res) {
            (Call::GetSockOpt(..) | Call::GetSockOptRaw { .. }, CallResult::Value(v)) => {
                let Some(want) = c.args.get(3) else { return Ok(()) };
                if matches!(want.kind, ExprKind::Ellipsis) {
                    return Ok(());
                }
                let ok = match (v, &want.kind) {
                    (SockOptValue::Int(g), _) => self.int(want).map_err(|m| fail(self, m))? == *g,
                    (SockOptValue::Linger { onoff, linger }, ExprKind::Struct(_)) => {
                        self.optval(want).map_err(|m| fail(self, m))?
                            == SockOptValue::Linger { onoff: *onoff, linger: *linger }
                    }
                    _ => true,
                };
                if !ok {
                    let got = match v {
                        SockOptValue::Int(g) => g.to_string(),
                        other => format!("{other:?}"),
                    };
                    return Err(fail(
                        self,
                        format!("getsockopt returned value {got} but expected {}", printer::expr(want)),
                    ));
                }
            }
            (Call::GetSockOptRaw { string: Some(optlen), .. }, CallResult::Bytes(b)) => {
                // As packetdrill compares a string option: the length the kernel returned must be the script's
                // optlen, which must be the string's, and the bytes the same.
                if b.len() != *optlen {
                    return Err(fail(self, format!("Bad getsockopt optlen: expected: {optlen} actual: {}", b.len())));
                }
                if let Some(ExprKind::Str(want)) = c.args.get(3).map(|w| &w.kind) {
                    if want.len() != *optlen {
                        return Err(fail(
                            self,
                            format!(
                                "Bad getsockopt optval: expected optlen ({optlen} bytes) does not match length of \
                                 expected optval string '{want}' ({} bytes)",
                                want.len()
                            ),
                        ));
                    }
                    if b != want.as_bytes() {
                        return Err(fail(
                            self,
                            format!("getsockopt returned value {:?} but expected {want:?}", bytes_text(b)),
                        ));
                    }
                }
            }
            (Call::BytesReadable(_), CallResult::Value(SockOptValue::Int(n))) => {
                if let Some(want) = c.args.get(2).filter(|w| !matches!(w.kind, ExprKind::Ellipsis)) {
                    let w = self.int(want).map_err(|m| fail(self, m))?;
                    if w != *n {
                        return Err(fail(self, format!("ioctl returned {n} bytes readable but expected {w}")));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// A string option's bytes as text: up to the first NUL.
fn bytes_text(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// The time a waiting poll() returns by itself.
pub(super) fn poll_until(c: &Call) -> Option<Micros> {
    match c {
        Call::Poll { until: Some(u), .. } | Call::EpollWait { until: Some(u), .. } if *u < Micros::MAX => Some(*u),
        _ => None,
    }
}

fn earliest(a: Option<Micros>, b: Option<Micros>) -> Option<Micros> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// An epoll_event's data as the script names it.
pub(super) struct EpollData {
    /// The value (a live fd for `fd=`).
    pub(super) value: u64,
    /// `fd`, `ptr`, `u32` or `u64`.
    pub(super) kind: &'static str,
    /// Whether it names a descriptor.
    pub(super) fd: bool,
}

/// One pollfd as the script writes it.
pub(super) struct PollFd<'e> {
    pub(super) fd: &'e Expr,
    pub(super) events: &'e Expr,
    pub(super) revents: &'e Expr,
}

/// poll flags as packetdrill prints them (`POLLIN|POLLOUT`), named from the symbol table.
fn poll_flags(v: i16) -> String {
    let names =
        crate::script::symbols::SYMBOLS.iter().filter(|(n, b)| n.starts_with("POLL") && *b > 0 && b & (b - 1) == 0);
    let mut parts = Vec::new();
    let mut rest = v;
    for (n, b) in names {
        if v as i64 & b != 0 {
            parts.push(n.to_string());
            rest &= !(*b as i16);
        }
    }
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    if parts.is_empty() {
        "0".into()
    } else {
        parts.join("|")
    }
}

pub(super) fn call_name(c: &Call) -> &'static str {
    match c {
        Call::Poll { .. } => "poll",
        Call::EpollCreate(_) => "epoll_create",
        Call::EpollCtl { .. } => "epoll_ctl",
        Call::EpollWait { .. } => "epoll_wait",
        Call::Accept(_) => "accept",
        Call::Connect(..) => "connect",
        Call::Read { .. } => "read",
        Call::Write { .. } => "write",
        _ => "call",
    }
}

/// A buffer argument written `NULL` (or 0), which must reach the stack as a null pointer.
pub(super) fn is_null(e: &Expr) -> bool {
    matches!(&e.kind, ExprKind::Symbol(s) if s == "NULL") || matches!(e.kind, ExprKind::Int(0))
}
