//! `tcpdrill agent` as the remote-control surface it is: it refuses a harness without the token, a second
//! harness, requests outside the socket API and descriptors it did not open; it limits a session's sockets; it
//! closes everything when the harness goes; and the calls it makes are the kernel's. Each test runs in a network
//! namespace of its own (root; skipped with the reason otherwise), so the agent's loopback is not the host's.

use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use tcpdrill::agent::{serve, AgentClient, AgentConfig};
use tcpdrill::backend::{Call, CallResult};
use tcpdrill_stack::host::{Domain, SockOptName, SockOptValue};
use tcpdrill_stack::Errno;

const TOKEN: &str = "correct horse battery staple";

/// Runs `test` on a thread in a fresh namespace with `lo` up and an agent serving there.
fn in_netns(max_sockets: usize, allow_shell: bool, test: impl FnOnce(SocketAddr) + Send + 'static) {
    in_netns_with(max_sockets, allow_shell, false, test)
}

/// As [`in_netns`], with the agent's `--allow-sysctl` as given.
fn in_netns_with(
    max_sockets: usize,
    allow_shell: bool,
    allow_sysctl: bool,
    test: impl FnOnce(SocketAddr) + Send + 'static,
) {
    if let Err(why) = tcpdrill::backend::linux::available() {
        println!("skipped: {why}");
        return;
    }
    std::thread::spawn(move || {
        tcpdrill::backend::linux::unshare_netns().expect("a namespace");
        let mut rtnl = tcpdrill::backend::netlink::Rtnl::open().expect("rtnetlink");
        rtnl.link_up(tcpdrill::backend::netlink::index("lo").expect("lo")).expect("lo up");
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let cfg = AgentConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            token: TOKEN.into(),
            allow_shell,
            allow_sysctl,
            max_sockets,
            idle: Duration::from_secs(5),
        };
        let s = stop.clone();
        let agent = std::thread::spawn(move || serve(cfg, s, |a| tx.send(a).unwrap()));
        let addr = rx.recv_timeout(Duration::from_secs(5)).expect("the agent listens");
        test(addr);
        stop.store(true, Ordering::Relaxed);
        agent.join().unwrap().unwrap();
    })
    .join()
    .unwrap();
}

fn client(addr: SocketAddr) -> AgentClient {
    AgentClient::connect(addr, TOKEN, Duration::from_secs(5)).expect("the agent takes the right token")
}

/// A session after one that just ended: the agent may still be winding the last one up ("busy").
fn next_session(addr: SocketAddr) -> AgentClient {
    let limit = Instant::now() + Duration::from_secs(5);
    loop {
        match AgentClient::connect(addr, TOKEN, Duration::from_secs(5)) {
            Ok(c) => return c,
            Err(e) if e.contains("busy") && Instant::now() < limit => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("{e}"),
        }
    }
}

/// Retries a call that the kernel completes a moment later (the agent never blocks).
fn until_done(c: &mut AgentClient, call: &Call) -> CallResult {
    let limit = Instant::now() + Duration::from_secs(5);
    loop {
        let r = c.call(call);
        if !matches!(r, CallResult::Err(Errno::EAGAIN | Errno::EINPROGRESS | Errno::EALREADY)) || Instant::now() > limit
        {
            return r;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn fd(r: CallResult) -> i32 {
    match r {
        CallResult::Ok(n) => n as i32,
        other => panic!("expected a descriptor, got {other:?}"),
    }
}

#[test]
fn refuses_a_wrong_token_and_a_second_harness() {
    in_netns(64, false, |addr| {
        let e = AgentClient::connect(addr, "wrong", Duration::from_secs(5)).unwrap_err();
        assert!(e.contains("refused"), "{e}");
        let e = AgentClient::connect(addr, "", Duration::from_secs(5)).unwrap_err();
        assert!(e.contains("refused"), "{e}");
        let _first = client(addr);
        let e = AgentClient::connect(addr, TOKEN, Duration::from_secs(5)).unwrap_err();
        assert!(e.contains("busy"), "{e}");
    });
}

#[test]
fn refuses_what_is_not_a_socket_call_and_descriptors_it_did_not_open() {
    in_netns(64, false, |addr| {
        let mut c = client(addr);
        let e = c.request(json!({"op": "shell", "cmd": "touch /tmp/tcpdrill-agent-was-here"})).unwrap_err();
        assert!(e.contains("--allow-shell"), "{e}");
        assert!(!std::path::Path::new("/tmp/tcpdrill-agent-was-here").exists());
        let e = c.request(json!({"op": "execve", "path": "/bin/sh"})).unwrap_err();
        assert!(e.contains("not a call this agent makes"), "{e}");
        // fd 0, 1, 2 and the agent's own listener are not the harness's to touch.
        for n in [0, 1, 2, 3, 4] {
            assert_eq!(c.call(&Call::Close(n)), CallResult::Err(Errno::EBADF), "close({n})");
            assert_eq!(
                c.call(&Call::Write { fd: n, len: 1, null: false, flags: 0, to: None }),
                CallResult::Err(Errno::EBADF)
            );
        }
        // Still answering afterwards.
        let s = fd(c.call(&Call::Socket(Domain::Inet)));
        assert_eq!(c.call(&Call::Close(s)), CallResult::Ok(0));
    });
}

#[test]
fn shell_runs_only_when_allowed() {
    in_netns(64, true, |addr| {
        let mut c = client(addr);
        let r = c.request(json!({"op": "shell", "cmd": "exit 3"})).unwrap();
        assert_eq!(r["ok"], 3);
    });
}

#[test]
fn sysctls_only_when_allowed_only_net_ones_and_put_back_when_the_harness_goes() {
    let rfc1337 = "/proc/sys/net/ipv4/tcp_rfc1337";
    in_netns(64, false, |addr| {
        let mut c = client(addr);
        let e = c.sysctl("net.ipv4.tcp_rfc1337", "1").unwrap_err();
        assert!(e.contains("--allow-sysctl"), "{e}");
    });
    in_netns_with(64, false, true, move |addr| {
        let before = std::fs::read_to_string(rfc1337).unwrap();
        let flipped = if before.trim() == "1" { "0" } else { "1" };
        {
            let mut c = client(addr);
            assert!(c.allows_sysctl());
            for bad in ["kernel.hostname", "net.ipv4/../../kernel/hostname", "net", "net..ipv4", "vm.swappiness"] {
                let e = c.sysctl(bad, "x").unwrap_err();
                assert!(e.contains("not a net.* sysctl"), "{bad}: {e}");
            }
            c.sysctl("net.ipv4.tcp_rfc1337", flipped).unwrap();
            assert_eq!(std::fs::read_to_string(rfc1337).unwrap().trim(), flipped, "set in the agent's namespace");
        }
        // The session is over once the agent takes a new one; by then the old value is back.
        let limit = Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(rfc1337).unwrap() != before && Instant::now() < limit {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(std::fs::read_to_string(rfc1337).unwrap(), before, "put back when the harness went");
    });
}

#[test]
fn limits_the_sockets_of_a_session() {
    in_netns(3, false, |addr| {
        let mut c = client(addr);
        for _ in 0..3 {
            fd(c.call(&Call::Socket(Domain::Inet)));
        }
        assert_eq!(c.call(&Call::Socket(Domain::Inet)), CallResult::Err(Errno::EMFILE));
        assert_eq!(c.call(&Call::EpollCreate(1)), CallResult::Err(Errno::EMFILE));
    });
}

#[test]
fn makes_the_kernels_calls_and_closes_everything_when_the_harness_goes() {
    in_netns(64, false, |addr| {
        let port = 40_123;
        let at: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        {
            let mut c = client(addr);
            let l = fd(c.call(&Call::Socket(Domain::Inet)));
            assert_eq!(c.call(&Call::Bind(l, at)), CallResult::Ok(0));
            assert_eq!(c.call(&Call::Listen(l, 4)), CallResult::Ok(0));
            let s = fd(c.call(&Call::Socket(Domain::Inet)));
            assert_eq!(c.call(&Call::SetSockOpt(s, SockOptName::NoDelay, SockOptValue::Int(1))), CallResult::Ok(0));
            assert_eq!(c.call(&Call::GetSockOpt(s, SockOptName::NoDelay)), CallResult::Value(SockOptValue::Int(1)));
            let r = until_done(&mut c, &Call::Connect(s, at));
            assert!(matches!(r, CallResult::Ok(0) | CallResult::Err(Errno::EISCONN)), "{r:?}");
            let a = fd(until_done(&mut c, &Call::Accept(l)));
            assert_eq!(
                c.call(&Call::Write { fd: s, len: 1000, null: false, flags: 0, to: None }),
                CallResult::Ok(1000)
            );
            let mut got = 0;
            let limit = Instant::now() + Duration::from_secs(5);
            while got < 1000 && Instant::now() < limit {
                if let CallResult::Ok(n) =
                    until_done(&mut c, &Call::Read { fd: a, len: 4096, peek: false, null: false })
                {
                    got += n;
                }
            }
            assert_eq!(got, 1000, "the bytes written arrive");
            assert!(!c.ready(&Call::Read { fd: a, len: 1, peek: false, null: false }), "nothing more to read");
            assert!(c.ready(&Call::Write { fd: s, len: 1, null: false, flags: 0, to: None }), "room to write");
            assert_eq!(c.call(&Call::BytesReadable(a)), CallResult::Value(SockOptValue::Int(0)));
            let state =
                c.call(&Call::TcpState(tcpdrill_stack::FourTuple { local: at, remote: SocketAddr::new(at.ip(), 0) }));
            assert_eq!(state, CallResult::Value(SockOptValue::Int(10)), "the listener is in LISTEN");
            // The harness goes without closing anything.
        }
        // A new session can bind the same port at once: the agent reset and closed the first one's sockets
        // (and a reset connection leaves no TIME-WAIT behind).
        let mut c = next_session(addr);
        let l = fd(c.call(&Call::Socket(Domain::Inet)));
        assert_eq!(c.call(&Call::Bind(l, at)), CallResult::Ok(0), "the first session's listener is gone");
    });
}

/// What a session's connections leave behind once closed (here a TIME-WAIT on the listening port, from the
/// accepted end closing first) goes with the session, so that the next harness can bind the port again; without
/// the clean-up the bind fails with EADDRINUSE (checked first in the same session).
#[test]
fn leaves_no_time_wait_behind() {
    in_netns(64, false, |addr| {
        let at: SocketAddr = "127.0.0.1:40124".parse().unwrap();
        {
            let mut c = client(addr);
            let l = fd(c.call(&Call::Socket(Domain::Inet)));
            assert_eq!(c.call(&Call::Bind(l, at)), CallResult::Ok(0));
            assert_eq!(c.call(&Call::Listen(l, 4)), CallResult::Ok(0));
            let s = fd(c.call(&Call::Socket(Domain::Inet)));
            let r = until_done(&mut c, &Call::Connect(s, at));
            assert!(matches!(r, CallResult::Ok(0) | CallResult::Err(Errno::EISCONN)), "{r:?}");
            let a = fd(until_done(&mut c, &Call::Accept(l)));
            // The accepted end closes first and ends in TIME-WAIT once the client's FIN comes.
            assert_eq!(c.call(&Call::Close(a)), CallResult::Ok(0));
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(c.call(&Call::Close(s)), CallResult::Ok(0));
            assert_eq!(c.call(&Call::Close(l)), CallResult::Ok(0));
            std::thread::sleep(Duration::from_millis(50));
            let other = fd(c.call(&Call::Socket(Domain::Inet)));
            assert_eq!(c.call(&Call::Bind(other, at)), CallResult::Err(Errno::EADDRINUSE), "the TIME-WAIT holds it");
        }
        let mut c = next_session(addr);
        let l = fd(c.call(&Call::Socket(Domain::Inet)));
        assert_eq!(c.call(&Call::Bind(l, at)), CallResult::Ok(0), "the first session's TIME-WAIT is gone");
    });
}
