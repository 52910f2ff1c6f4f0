//! The served stack's call endpoint (`tcpdrill serve --agent-listen`): the agent protocol of
//! `docs/agent-protocol.md`, with each call made on the served reference stack instead of on the kernel's
//! sockets, so that the raw backend drives the served stack's segments on its link and its socket API through
//! this endpoint, as it drives a kernel through `tcpdrill agent`.
//!
//! The session runs on the agent's thread and hands each call to the serving thread (the host is that
//! thread's alone), which makes it at once: a pipe wakes the serving thread from its wait, so a call costs a
//! thread hop, not the wait's 5 ms. A session sees only the descriptors it opened (the services' are not its
//! own); when it ends, its descriptors are reset and closed, what their connections left (TIME-WAIT, orphans)
//! destroyed and the stack's knobs put back, as the kernel agent does.

use super::Request;
use crate::agent::Target;
use crate::backend::reference::HostCalls;
use crate::backend::{Call, CallResult, IpVersion};
use std::collections::BTreeSet;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{mpsc, Arc};
use std::time::Duration;
use tcpdrill_stack::host::{Host, SockOptName, SockOptValue, TcpInfo};
use tcpdrill_stack::{Config, Errno, FourTuple, Instant};

/// What a session asks of the serving thread.
#[derive(Debug)]
pub(super) enum Op {
    /// A session starts, for a run in this IP version.
    Begin(IpVersion),
    /// A call to make.
    Call(Call),
    /// Whether a call that would block can make progress now.
    Ready(Call),
    /// A knob to read (and set).
    Sysctl(String, Option<String>),
    /// The session is over.
    End,
}

/// The serving thread's answer.
#[derive(Debug)]
pub(super) enum Answer {
    Call(CallResult),
    Ready(bool),
    Sysctl(Result<String, String>),
    Done,
}

/// A pipe that wakes the serving thread from its poll.
#[derive(Debug)]
pub(super) struct Wake {
    read: OwnedFd,
    write: OwnedFd,
}

impl Wake {
    pub(super) fn new() -> Result<Wake, String> {
        let mut fds = [0i32; 2];
        // SAFETY: pipe2 fills two descriptors, which we then own.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(format!("making the endpoint's wake-up pipe: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: both were just opened and are ours alone.
        Ok(unsafe { Wake { read: OwnedFd::from_raw_fd(fds[0]), write: OwnedFd::from_raw_fd(fds[1]) } })
    }

    /// The end to poll.
    pub(super) fn fd(&self) -> i32 {
        self.read.as_raw_fd()
    }

    fn wake(&self) {
        // A full pipe already wakes the thread: a failed write loses nothing.
        // SAFETY: one byte from a valid buffer to a descriptor we own.
        unsafe { libc::write(self.write.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
    }

    /// Empties the pipe.
    pub(super) fn drain(&self) {
        let mut buf = [0u8; 64];
        // SAFETY: reads into a valid buffer from a non-blocking descriptor we own.
        while unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
    }
}

/// A session's [`Target`]: its calls go to the serving thread.
pub(super) struct Remote {
    requests: mpsc::Sender<Request>,
    wake: Arc<Wake>,
    fds: BTreeSet<i32>,
}

/// How long a session waits for the serving thread: it answers in microseconds unless it has stopped.
const PATIENCE: Duration = Duration::from_secs(10);

impl Remote {
    pub(super) fn new(requests: mpsc::Sender<Request>, wake: Arc<Wake>, ip: IpVersion) -> Remote {
        let mut r = Remote { requests, wake, fds: BTreeSet::new() };
        r.ask(Op::Begin(ip));
        r
    }

    fn ask(&mut self, op: Op) -> Option<Answer> {
        let (tx, rx) = mpsc::channel();
        self.requests.send(Request::Agent(op, tx)).ok()?;
        self.wake.wake();
        rx.recv_timeout(PATIENCE).ok()
    }
}

impl Target for Remote {
    fn call(&mut self, call: &Call) -> CallResult {
        let r = match self.ask(Op::Call(call.clone())) {
            Some(Answer::Call(r)) => r,
            _ => return CallResult::Err(Errno::EIO),
        };
        match (call, &r) {
            (Call::Socket(_) | Call::Accept(_) | Call::EpollCreate(_), CallResult::Ok(fd)) => {
                self.fds.insert(*fd as i32);
            }
            (Call::Close(fd), CallResult::Ok(_)) => {
                self.fds.remove(fd);
            }
            _ => {}
        }
        r
    }

    fn ready(&mut self, call: &Call) -> bool {
        matches!(self.ask(Op::Ready(call.clone())), Some(Answer::Ready(true)))
    }

    fn owns(&self, fd: i32) -> bool {
        self.fds.contains(&fd)
    }

    fn count(&self) -> usize {
        self.fds.len()
    }

    fn sysctl(&mut self, name: &str, value: Option<&str>) -> Result<String, String> {
        match self.ask(Op::Sysctl(name.to_string(), value.map(str::to_string))) {
            Some(Answer::Sysctl(r)) => r,
            _ => Err("the served stack is gone".into()),
        }
    }

    fn end(&mut self) {
        self.ask(Op::End);
        self.fds.clear();
    }
}

/// A session on the serving thread: what it opened and what to put back.
#[derive(Debug)]
pub(super) struct Session {
    calls: HostCalls,
    fds: BTreeSet<i32>,
    /// The connections its descriptors had, to destroy what is left of them at the end.
    tuples: BTreeSet<FourTuple>,
    /// The stack's knobs when it began.
    config: Config,
}

impl Session {
    pub(super) fn begin(host: &Host, ip: IpVersion) -> Session {
        Session {
            calls: HostCalls::new(ip),
            fds: BTreeSet::new(),
            tuples: BTreeSet::new(),
            config: host.config().clone(),
        }
    }

    /// Answers `op` at `now` ([`Op::Begin`] and [`Op::End`] are the serving thread's to handle).
    pub(super) fn answer(&mut self, host: &mut Host, now: Instant, op: Op) -> Answer {
        match op {
            Op::Begin(_) | Op::End => Answer::Done,
            Op::Ready(call) => Answer::Ready(HostCalls::ready(host, &call)),
            Op::Sysctl(name, value) => Answer::Sysctl(sysctl(host, &name, value.as_deref())),
            Op::Call(call) => {
                if let Call::Close(fd) = &call {
                    self.tuples.extend(host.fd_tuple(*fd));
                }
                let r = match typed(&call) {
                    Ok(Typed::Same) => self.calls.call(host, now, &call),
                    Ok(Typed::Set(fd, name, value)) => self.calls.call(host, now, &Call::SetSockOpt(fd, name, value)),
                    Ok(Typed::Get(fd, name, len)) => match self.calls.call(host, now, &Call::GetSockOpt(fd, name)) {
                        CallResult::Value(v) => CallResult::Bytes(linux_bytes(v, len)),
                        other => other,
                    },
                    Err(e) => CallResult::Err(e),
                };
                match (&call, &r) {
                    (Call::Socket(_) | Call::Accept(_) | Call::EpollCreate(_), CallResult::Ok(fd)) => {
                        self.fds.insert(*fd as i32);
                    }
                    (Call::Close(fd), CallResult::Ok(_)) => {
                        self.fds.remove(fd);
                    }
                    _ => {}
                }
                Answer::Call(r)
            }
        }
    }

    /// Resets and closes what the session holds, destroys what its connections left, puts the knobs back.
    pub(super) fn end(mut self, host: &mut Host, now: Instant) {
        let linger0 = SockOptValue::Linger { onoff: true, linger: 0 };
        for fd in std::mem::take(&mut self.fds) {
            self.tuples.extend(host.fd_tuple(fd));
            if !self.calls.is_epoll(fd) {
                let _ = host.setsockopt(now, fd, SockOptName::Linger, linger0);
            }
            let _ = self.calls.call(host, now, &Call::Close(fd));
        }
        for t in &self.tuples {
            host.destroy(t);
        }
        *host.config_mut() = self.config;
    }
}

/// A knob of the served stack by its sysctl name: the value it had, after setting it to `value` if given.
fn sysctl(host: &mut Host, name: &str, value: Option<&str>) -> Result<String, String> {
    let old = host.config().get(name).ok_or_else(|| format!("{name} has no counterpart in the reference stack"))?;
    if let Some(v) = value {
        host.set_knob(name, v).map_err(|e| e.to_string())?;
    }
    Ok(old)
}

/// A call as the served stack takes it.
enum Typed {
    /// As it is.
    Same,
    /// A setsockopt of an option the stack has, with its value.
    Set(i32, SockOptName, SockOptValue),
    /// A getsockopt of one, and the length of the caller's buffer.
    Get(i32, SockOptName, usize),
}

/// The options the agent protocol carries by their Linux numbers, back as the stack's own.
fn typed(call: &Call) -> Result<Typed, Errno> {
    use crate::backend::sockets::Sockets;
    const NAMES: [SockOptName; 13] = [
        SockOptName::ReuseAddr,
        SockOptName::KeepAlive,
        SockOptName::Linger,
        SockOptName::Error,
        SockOptName::RcvBuf,
        SockOptName::SndBuf,
        SockOptName::NoDelay,
        SockOptName::MaxSeg,
        SockOptName::KeepIdle,
        SockOptName::KeepIntvl,
        SockOptName::KeepCnt,
        SockOptName::UserTimeout,
        SockOptName::Info,
    ];
    let find = |level: i32, name: i32| {
        NAMES.iter().copied().find(|n| Sockets::opt(*n) == (level, name)).ok_or(Errno::ENOPROTOOPT)
    };
    let int = |b: &[u8]| -> Result<i64, Errno> {
        let b: [u8; 4] = b.get(..4).and_then(|b| b.try_into().ok()).ok_or(Errno::EINVAL)?;
        Ok(i64::from(i32::from_ne_bytes(b)))
    };
    Ok(match call {
        Call::SetSockOptRaw { fd, level, name, value } => {
            let n = find(*level, *name)?;
            let v = if n == SockOptName::Linger {
                let linger = int(value.get(4..).unwrap_or_default())?;
                SockOptValue::Linger { onoff: int(value)? != 0, linger: linger.max(0) as u32 }
            } else {
                SockOptValue::Int(int(value)?)
            };
            Typed::Set(*fd, n, v)
        }
        Call::GetSockOptRaw { fd, level, name, string } => Typed::Get(*fd, find(*level, *name)?, string.unwrap_or(4)),
        _ => Typed::Same,
    })
}

/// An option's value in Linux's layout, cut to the caller's `len` bytes: an int, `struct linger`, or the
/// fields of `struct tcp_info` the stack has (the others zero).
fn linux_bytes(v: SockOptValue, len: usize) -> Vec<u8> {
    let mut b = match v {
        SockOptValue::Int(i) => (i as i32).to_ne_bytes().to_vec(),
        SockOptValue::Linger { onoff, linger } => {
            [i32::from(onoff).to_ne_bytes(), (linger as i32).to_ne_bytes()].concat()
        }
        SockOptValue::Info(i) => tcp_info(&i),
    };
    b.truncate(len);
    b
}

/// Linux's `struct tcp_info` (include/uapi/linux/tcp.h), 240 bytes, from the stack's.
fn tcp_info(i: &TcpInfo) -> Vec<u8> {
    let mut b = vec![0u8; 240];
    b[0] = i.state;
    b[2] = i.retransmits.min(255) as u8;
    b[3] = i.probes.min(255) as u8;
    b[6] = (i.snd_wscale & 0x0f) | (i.rcv_wscale << 4);
    let mut put = |at: usize, v: u64| b[at..at + 4].copy_from_slice(&(v.min(u64::from(u32::MAX)) as u32).to_ne_bytes());
    put(8, i.rto_us);
    put(16, u64::from(i.snd_mss));
    put(68, i.rtt_us);
    put(72, i.rttvar_us);
    put(80, u64::from(i.snd_cwnd));
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_info_reads_back_as_the_linux_backend_reads_it() {
        let i = TcpInfo {
            state: 1,
            retransmits: 2,
            probes: 3,
            snd_wscale: 7,
            rcv_wscale: 8,
            rto_us: 201_000,
            snd_mss: 1448,
            rtt_us: 1500,
            rttvar_us: 750,
            snd_cwnd: 10,
            unacked: 0,
        };
        let f: std::collections::BTreeMap<_, _> =
            crate::backend::linux::tcp_info_fields(&tcp_info(&i)).into_iter().collect();
        let want = [
            ("tcpi_state", 1),
            ("tcpi_retransmits", 2),
            ("tcpi_probes", 3),
            ("tcpi_snd_wscale", 7),
            ("tcpi_rcv_wscale", 8),
            ("tcpi_rto", 201_000),
            ("tcpi_snd_mss", 1448),
            ("tcpi_rtt", 1500),
            ("tcpi_rttvar", 750),
            ("tcpi_snd_cwnd", 10),
        ];
        for (n, v) in want {
            assert_eq!(f[n], v, "{n}");
        }
    }

    #[test]
    fn options_by_linux_number_come_back_typed() {
        let set = Call::SetSockOptRaw {
            fd: 3,
            level: libc::SOL_SOCKET,
            name: libc::SO_LINGER,
            value: [1i32.to_ne_bytes(), 0i32.to_ne_bytes()].concat(),
        };
        assert!(matches!(
            typed(&set),
            Ok(Typed::Set(3, SockOptName::Linger, SockOptValue::Linger { onoff: true, linger: 0 }))
        ));
        let get = Call::GetSockOptRaw { fd: 3, level: libc::IPPROTO_TCP, name: libc::TCP_NODELAY, string: Some(4) };
        assert!(matches!(typed(&get), Ok(Typed::Get(3, SockOptName::NoDelay, 4))));
        let unknown = Call::GetSockOptRaw { fd: 3, level: libc::IPPROTO_TCP, name: libc::TCP_CORK, string: Some(4) };
        assert!(matches!(typed(&unknown), Err(Errno::ENOPROTOOPT)));
        assert_eq!(linux_bytes(SockOptValue::Int(-2), 4), (-2i32).to_ne_bytes());
    }
}
