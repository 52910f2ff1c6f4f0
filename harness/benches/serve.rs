//! The served reference stack as a real TCP, measured: bulk throughput and CPU per byte of Linux <-> the
//! reference stack over `tcpdrill serve`'s TUN device (both directions), next to Linux <-> Linux over a veth
//! pair between two namespaces in the same run (the ratio is the figure to watch), and the heap the served stack
//! holds per established connection (1,000 idle connections from Linux clients, counted by this binary's
//! allocator). CPU is this process's user + system time over the transfer (getrusage): both ends run in it, the
//! kernel's side included, so the Linux <-> Linux figure is two kernels' work, the TUN figure one kernel's and the
//! reference stack's. Then criterion groups for one transfer each, so a regression shows up. Needs root
//! (CAP_NET_ADMIN) and `ip`; without them, prints why and measures nothing.
//!
//! `sudo cargo bench -p tcpdrill --bench serve`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tcpdrill::serve::{self, Payload, ServeConfig, Served};

/// The heap in use, for the memory per connection.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call goes to the system allocator unchanged; only a counter is kept beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// This process's CPU time so far (user + system, every thread).
fn cpu() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let r = unsafe {
        let mut r: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut r);
        r
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(r.ru_utime) + tv(r.ru_stime)
}

/// Wall and CPU time of `f`.
fn timed(f: impl FnOnce()) -> (Duration, Duration) {
    let (t0, c0) = (Instant::now(), cpu());
    f();
    (t0.elapsed(), cpu() - c0)
}

/// A listener that reads each connection to its end and drops the bytes.
fn linux_sink(addr: SocketAddr) -> SocketAddr {
    let l = TcpListener::bind(addr).expect("a Linux listener");
    let at = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c, &mut std::io::sink());
            });
        }
    });
    at
}

/// Writes `n` bytes to `to` and half-closes; returns once the far end has closed.
fn send(to: SocketAddr, n: usize) {
    let chunk = vec![0x5au8; 1 << 16];
    let mut c = TcpStream::connect_timeout(&to, Duration::from_secs(10)).expect("connects");
    let mut left = n;
    while left > 0 {
        let k = left.min(chunk.len());
        c.write_all(&chunk[..k]).expect("writes");
        left -= k;
    }
    c.shutdown(Shutdown::Write).unwrap();
    let _ = c.read_to_end(&mut Vec::new());
}

/// Linux to the served stack's sink, `n` bytes.
fn to_stack(s: &Served, n: usize) {
    send("192.0.2.2:5001".parse().unwrap(), n);
    let r = s.sinks.recv_timeout(Duration::from_secs(120)).expect("the sink reports");
    assert_eq!(r.bytes, n as u64);
}

/// The served stack to a Linux sink on the kernel's address, `n` bytes.
fn from_stack(s: &Served, sink: SocketAddr, n: usize) {
    let r = s.connect(sink, Payload::Pattern(n as u64)).recv_timeout(Duration::from_secs(120)).expect("a report");
    assert_eq!((r.error, r.sent), (None, n as u64));
}

/// Runs `f` in a fresh namespace with the stack served on its defaults there.
fn in_served<R: Send + 'static>(f: impl FnOnce(&Served) -> R + Send + 'static) -> R {
    std::thread::spawn(move || {
        tcpdrill::backend::linux::unshare_netns().expect("a namespace");
        let s = serve::start(ServeConfig::default()).expect("serving");
        let r = f(&s);
        s.stop().expect("served without error");
        r
    })
    .join()
    .expect("no panic")
}

fn ip(args: &[&str]) {
    let o = std::process::Command::new("ip").args(args).output().expect("ip runs");
    assert!(o.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr));
}

/// Runs `f` in a fresh namespace joined by a veth pair (198.51.100.2/30 here) to another fresh one
/// (198.51.100.1/30), where a Linux sink listens; `f` is given the sink's address.
fn in_veth<R: Send + 'static>(f: impl FnOnce(SocketAddr) -> R + Send + 'static) -> R {
    std::thread::spawn(move || {
        tcpdrill::backend::linux::unshare_netns().expect("a namespace");
        let (tx, rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let far = std::thread::spawn(move || {
            tcpdrill::backend::linux::unshare_netns().expect("a namespace");
            // SAFETY: gettid has no preconditions.
            tx.send(unsafe { libc::gettid() }).unwrap();
            go_rx.recv().unwrap();
            ip(&["link", "set", "lo", "up"]);
            ip(&["addr", "add", "198.51.100.1/30", "dev", "xb"]);
            ip(&["link", "set", "xb", "up"]);
            tx.send(linux_sink("198.51.100.1:5001".parse().unwrap()).port() as i32).unwrap();
            // The namespace lives while its thread does.
            let _ = done_rx.recv();
        });
        let tid = rx.recv().unwrap().to_string();
        ip(&["link", "add", "xa", "type", "veth", "peer", "name", "xb", "netns", &tid]);
        ip(&["addr", "add", "198.51.100.2/30", "dev", "xa"]);
        ip(&["link", "set", "xa", "up"]);
        go_tx.send(()).unwrap();
        let port = rx.recv().unwrap() as u16;
        // Carrier comes a moment after both ends are up.
        let to: SocketAddr = format!("198.51.100.1:{port}").parse().unwrap();
        let t0 = Instant::now();
        while TcpStream::connect_timeout(&to, Duration::from_millis(200)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(5), "the veth pair carries");
        }
        let r = f(to);
        let _ = done_tx.send(());
        far.join().unwrap();
        r
    })
    .join()
    .expect("no panic")
}

const BYTES: usize = 256 << 20;

fn report(name: &str, (wall, cpu): (Duration, Duration)) -> f64 {
    let mbit = BYTES as f64 * 8.0 / wall.as_secs_f64() / 1e6;
    eprintln!(
        "{name:<34} {mbit:>8.0} Mbit/s   {:>6.2} ns of CPU per byte ({:.2} s wall, {:.2} s CPU)",
        cpu.as_nanos() as f64 / BYTES as f64,
        wall.as_secs_f64(),
        cpu.as_secs_f64()
    );
    mbit
}

fn bench(c: &mut Criterion) {
    if let Err(why) = tcpdrill::backend::testbed::available() {
        eprintln!("serve benchmarks skipped: {why}");
        return;
    }
    eprintln!("{} MiB each, one connection, perfect link:", BYTES >> 20);
    let up = report("linux -> reference (tun)", in_served(|s| timed(|| to_stack(s, BYTES))));
    let down = report(
        "reference -> linux (tun)",
        in_served(|s| {
            let sink = linux_sink("192.0.2.1:0".parse().unwrap());
            timed(|| from_stack(s, sink, BYTES))
        }),
    );
    let veth = report("linux -> linux (veth)", in_veth(|to| timed(|| send(to, BYTES))));
    eprintln!("ratios to linux -> linux: linux -> reference {:.3}, reference -> linux {:.3}", up / veth, down / veth);

    // Memory: 1,000 established, idle connections to the discard service; the heap they add, per connection.
    let per = in_served(|s| {
        // Settled first: one connection made and closed, so that the tables' first growth is not counted.
        drop(TcpStream::connect("192.0.2.2:9").unwrap());
        std::thread::sleep(Duration::from_millis(100));
        let _ = s;
        let before = LIVE.load(Ordering::Relaxed);
        let conns: Vec<TcpStream> = (0..1000).map(|_| TcpStream::connect("192.0.2.2:9").unwrap()).collect();
        std::thread::sleep(Duration::from_millis(200));
        let after = LIVE.load(Ordering::Relaxed);
        drop(conns);
        (after - before) as f64 / 1000.0
    });
    eprintln!("heap per established connection (1,000 idle, reference stack served): {per:.0} bytes");

    let n = 64 << 20;
    let mut g = c.benchmark_group("bulk_64MiB");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(n as u64));
    g.bench_function("linux_to_reference_tun", |b| {
        b.iter_custom(|iters| in_served(move |s| (0..iters).map(|_| timed(|| to_stack(s, n)).0).sum()))
    });
    g.bench_function("linux_to_linux_veth", |b| {
        b.iter_custom(|iters| in_veth(move |to| (0..iters).map(|_| timed(|| send(to, n)).0).sum()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
