//! Known syscalls and symbols with their Linux values, and the name check `tcpdrill check` runs after parsing
//! (an unknown name gets the nearest known one as a hint).

use super::ast::*;
use super::diag::{nearest, ScriptError};
use std::sync::Arc;
use tcpdrill_stack::Errno;

/// A syscall scripts may name: what parses, and what the executor can make (a script with a call it cannot make is
/// skipped with that reason). One table for both views, so that they cannot drift apart.
#[derive(Debug, Clone, Copy)]
pub struct Syscall {
    /// Its name as scripts write it.
    pub name: &'static str,
    /// The executor translates it into a backend call.
    pub runs: bool,
}

/// Every syscall scripts may call. `tcp_state` and `tcp_isn_*` are tcpdrill's extensions (see the README).
pub const SYSCALLS: &[Syscall] = &[
    Syscall { name: "socket", runs: true },
    Syscall { name: "bind", runs: true },
    Syscall { name: "listen", runs: true },
    Syscall { name: "accept", runs: true },
    Syscall { name: "connect", runs: true },
    Syscall { name: "read", runs: true },
    Syscall { name: "write", runs: true },
    Syscall { name: "recv", runs: true },
    Syscall { name: "send", runs: true },
    Syscall { name: "recvfrom", runs: true },
    Syscall { name: "sendto", runs: true },
    Syscall { name: "recvmsg", runs: false },
    Syscall { name: "sendmsg", runs: false },
    Syscall { name: "readv", runs: false },
    Syscall { name: "writev", runs: false },
    Syscall { name: "shutdown", runs: true },
    Syscall { name: "close", runs: true },
    Syscall { name: "setsockopt", runs: true },
    Syscall { name: "getsockopt", runs: true },
    Syscall { name: "fcntl", runs: true },
    Syscall { name: "ioctl", runs: true },
    Syscall { name: "poll", runs: true },
    Syscall { name: "getsockname", runs: false },
    Syscall { name: "getpeername", runs: false },
    Syscall { name: "splice", runs: false },
    Syscall { name: "sendfile", runs: false },
    Syscall { name: "epoll_create", runs: false },
    Syscall { name: "epoll_ctl", runs: false },
    Syscall { name: "epoll_wait", runs: false },
    Syscall { name: "pipe", runs: false },
    Syscall { name: "open", runs: false },
    Syscall { name: "tcp_state", runs: true },
    Syscall { name: "tcp_isn_distinct", runs: true },
    Syscall { name: "tcp_isn_beyond_previous", runs: true },
    Syscall { name: "tcp_isn_clock_within", runs: true },
];

/// Whether the executor can make the syscall `name`.
pub fn executor_runs(name: &str) -> bool {
    SYSCALLS.iter().any(|s| s.name == name && s.runs)
}

/// Symbols and their Linux values (x86-64 userspace ABI).
pub const SYMBOLS: &[(&str, i64)] = &[
    ("AF_INET", 2),
    ("AF_INET6", 10),
    ("AF_UNSPEC", 0),
    ("PF_INET", 2),
    ("PF_INET6", 10),
    ("SOCK_STREAM", 1),
    ("SOCK_DGRAM", 2),
    ("SOCK_RAW", 3),
    ("SOCK_NONBLOCK", 0o4000),
    ("SOCK_CLOEXEC", 0o2000000),
    ("IPPROTO_IP", 0),
    ("IPPROTO_TCP", 6),
    ("IPPROTO_UDP", 17),
    ("IPPROTO_IPV6", 41),
    ("SOL_SOCKET", 1),
    ("SOL_TCP", 6),
    ("SOL_IP", 0),
    ("SOL_IPV6", 41),
    ("SO_DEBUG", 1),
    ("SO_REUSEADDR", 2),
    ("SO_TYPE", 3),
    ("SO_ERROR", 4),
    ("SO_DONTROUTE", 5),
    ("SO_BROADCAST", 6),
    ("SO_SNDBUF", 7),
    ("SO_RCVBUF", 8),
    ("SO_KEEPALIVE", 9),
    ("SO_OOBINLINE", 10),
    ("SO_LINGER", 13),
    ("SO_REUSEPORT", 15),
    ("SO_RCVLOWAT", 18),
    ("SO_SNDLOWAT", 19),
    ("SO_RCVTIMEO", 20),
    ("SO_SNDTIMEO", 21),
    ("SO_ZEROCOPY", 60),
    ("TCP_NODELAY", 1),
    ("TCP_MAXSEG", 2),
    ("TCP_CORK", 3),
    ("TCP_KEEPIDLE", 4),
    ("TCP_KEEPINTVL", 5),
    ("TCP_KEEPCNT", 6),
    ("TCP_SYNCNT", 7),
    ("TCP_LINGER2", 8),
    ("TCP_DEFER_ACCEPT", 9),
    ("TCP_WINDOW_CLAMP", 10),
    ("TCP_INFO", 11),
    ("TCP_QUICKACK", 12),
    ("TCP_CONGESTION", 13),
    ("TCP_MD5SIG", 14),
    ("TCP_USER_TIMEOUT", 18),
    ("TCP_FASTOPEN", 23),
    ("TCP_NOTSENT_LOWAT", 25),
    ("TCP_FASTOPEN_CONNECT", 30),
    ("TCP_NOOPT", 100_001),
    ("TCP_KEEPINIT", 100_002),
    ("O_RDONLY", 0),
    ("O_WRONLY", 1),
    ("O_RDWR", 2),
    ("O_NONBLOCK", 0o4000),
    ("F_GETFD", 1),
    ("F_SETFD", 2),
    ("F_GETFL", 3),
    ("F_SETFL", 4),
    ("SHUT_RD", 0),
    ("SHUT_WR", 1),
    ("SHUT_RDWR", 2),
    ("MSG_OOB", 1),
    ("MSG_PEEK", 2),
    ("MSG_DONTWAIT", 0x40),
    ("MSG_WAITALL", 0x100),
    ("MSG_NOSIGNAL", 0x4000),
    ("MSG_MORE", 0x8000),
    ("MSG_ZEROCOPY", 0x0400_0000),
    ("MSG_FASTOPEN", 0x2000_0000),
    ("SIOCINQ", 0x541B),
    ("FIONREAD", 0x541B),
    ("SIOCOUTQ", 0x5411),
    ("SIOCOUTQNSD", 0x894B),
    ("POLLIN", 0x001),
    ("POLLPRI", 0x002),
    ("POLLOUT", 0x004),
    ("POLLERR", 0x008),
    ("POLLHUP", 0x010),
    ("POLLNVAL", 0x020),
    ("POLLRDNORM", 0x040),
    ("POLLRDBAND", 0x080),
    ("POLLWRNORM", 0x100),
    ("POLLWRBAND", 0x200),
    ("POLLMSG", 0x400),
    ("POLLRDHUP", 0x2000),
    ("TCP_ESTABLISHED", 1),
    ("TCP_SYN_SENT", 2),
    ("TCP_SYN_RECV", 3),
    ("TCP_FIN_WAIT1", 4),
    ("TCP_FIN_WAIT2", 5),
    ("TCP_TIME_WAIT", 6),
    ("TCP_CLOSE", 7),
    ("TCP_CLOSE_WAIT", 8),
    ("TCP_LAST_ACK", 9),
    ("TCP_LISTEN", 10),
    ("TCP_CLOSING", 11),
    ("TCPI_OPT_TIMESTAMPS", 1),
    ("TCPI_OPT_SACK", 2),
    ("TCPI_OPT_WSCALE", 4),
    ("TCPI_OPT_ECN", 8),
    ("INADDR_ANY", 0),
    ("NULL", 0),
];

/// A symbol's value: the table above, or an errno name (its Linux number).
pub fn symbol_value(name: &str) -> Option<i64> {
    SYMBOLS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .or_else(|| Errno::from_name(name).map(|e| i64::from(e.number())))
}

fn all_symbol_names() -> impl Iterator<Item = &'static str> {
    SYMBOLS.iter().map(|(n, _)| *n).chain(Errno::ALL.iter().map(|e| e.name()))
}

/// Checks syscall, symbol and errno names; returns one error per unknown name.
pub fn check_names(file: &Arc<str>, source: &Arc<str>, script: &Script) -> Vec<ScriptError> {
    let mut errs = Vec::new();
    let err = |span: Span, msg: String, hint: Option<&str>, generic: &str| {
        let e = ScriptError::new(file.clone(), source.clone(), span, msg, "unknown");
        match hint {
            Some(h) => e.with_help(format!("did you mean {h}?")),
            None => e.with_help(generic.to_string()),
        }
    };
    for ev in &script.events {
        let Action::Syscall(s) = &ev.action else { continue };
        if !SYSCALLS.iter().any(|k| k.name == s.name) {
            let hint = nearest(&s.name, SYSCALLS.iter().map(|k| k.name));
            errs.push(err(
                s.name_span,
                format!("unknown syscall {:?}", s.name),
                hint,
                "see the README for the syscalls tcpdrill runs",
            ));
        }
        if let Some((e, span)) = &s.errno {
            if Errno::from_name(e).is_none() {
                let hint = nearest(e, Errno::ALL.iter().map(|e| e.name()));
                errs.push(err(
                    *span,
                    format!("unknown errno {e:?}"),
                    hint,
                    "errno names are Linux's, e.g. ECONNREFUSED",
                ));
            }
        }
        for a in s.args.iter().chain(std::iter::once(&s.result)) {
            symbols_in(a, &mut |name, span| {
                if symbol_value(name).is_none() {
                    let hint = nearest(name, all_symbol_names());
                    errs.push(err(
                        span,
                        format!("unknown symbol {name:?}"),
                        hint,
                        "symbols are Linux's constants, e.g. SOCK_STREAM",
                    ));
                }
            });
        }
    }
    errs
}

/// Calls `f` for every symbol used as a value (struct field names and call names are not values).
fn symbols_in(e: &Expr, f: &mut dyn FnMut(&str, Span)) {
    match &e.kind {
        ExprKind::Symbol(s) => f(s, e.span),
        ExprKind::List(v) | ExprKind::Or(v) | ExprKind::Call(_, v) => v.iter().for_each(|x| symbols_in(x, f)),
        ExprKind::Struct(fields) => fields.iter().for_each(|(_, v)| symbols_in(v, f)),
        _ => {}
    }
}
