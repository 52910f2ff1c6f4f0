//! tcpdrill's reference TCP stack.
//!
//! The crate is sans-IO: it owns no sockets, reads no clock and starts no threads. Everything that happens to
//! it comes in as a value (a datagram, a point in time, a socket call) and everything it does comes out as a
//! value. That makes every run deterministic, which is what a conformance reference and a fuzz target need.
//!
//! Layers, lowest first:
//! - [`wire`]: IPv4, IPv6 and TCP headers as zero-copy views and as `Repr`s (the meaning), with checksums and
//!   packetdrill's one-line notation.
//! - [`seq`]: sequence-number arithmetic modulo 2^32 (RFC 9293 section 3.4).
//! - [`tcb`]: one connection, RFC 9293 section 3.10 (segment arrival per state, output, timers).
//! - [`listen`]: LISTEN sockets, SYN and accept queues, SYN cookies.
//! - [`host`]: addresses, demux, the fd table and the BSD-like socket API; the type a user drives.
//! - [`config`]: every knob, under the name of the Linux sysctl it mirrors.
//! - [`sim`]: deterministic simulation: a lossy link, two hosts on one clock, and the event-sequence checker the
//!   fuzzer and the property tests share.
//!
//! # Example: two hosts, one connection
//!
//! The caller is the wire and the clock: it moves each host's datagrams to the other and tells both the time.
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr, SocketAddr};
//! use std::time::Duration;
//! use tcpdrill_stack::{Config, Domain, Errno, Host, Instant, TcpState};
//!
//! let (ip_a, ip_b) = (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)));
//! let mut a = Host::new(Config::default(), &[ip_a], 1);
//! let mut b = Host::new(Config::default(), &[ip_b], 2);
//! let mut now = Instant::from_secs(1);
//!
//! // A wire with a millisecond's delay each way, and the timers each host asks for.
//! fn run(a: &mut Host, b: &mut Host, now: &mut Instant) {
//!     for _ in 0..1000 {
//!         let (to_b, to_a): (Vec<_>, Vec<_>) =
//!             (std::iter::from_fn(|| a.poll_transmit()).collect(), std::iter::from_fn(|| b.poll_transmit()).collect());
//!         if to_b.is_empty() && to_a.is_empty() {
//!             return;
//!         }
//!         *now += Duration::from_millis(1);
//!         for d in to_b {
//!             b.receive(*now, &d).expect("a well-formed datagram");
//!         }
//!         for d in to_a {
//!             a.receive(*now, &d).expect("a well-formed datagram");
//!         }
//!         for h in [&mut *a, &mut *b] {
//!             if h.poll_timeout().is_some_and(|t| t <= *now) {
//!                 h.on_timeout(*now);
//!             }
//!         }
//!     }
//! }
//!
//! // B listens on port 7; A connects: the socket calls never block (EINPROGRESS, then EAGAIN until data).
//! let listener = b.socket(Domain::Inet)?;
//! b.bind(listener, SocketAddr::new(ip_b, 7))?;
//! b.listen(listener, 8)?;
//! let client = a.socket(Domain::Inet)?;
//! assert_eq!(a.connect(now, client, SocketAddr::new(ip_b, 7)), Err(Errno::EINPROGRESS));
//! run(&mut a, &mut b, &mut now);
//! let (server, _peer) = b.accept(listener)?;
//! assert_eq!(a.fd_connection(client).map(|t| t.state()), Some(TcpState::Established));
//!
//! // Data one way, then A closes: B reads the bytes and then the end of the stream.
//! assert_eq!(a.write(now, client, b"hello")?, 5);
//! a.close(now, client)?;
//! run(&mut a, &mut b, &mut now);
//! assert_eq!(b.read(now, server, 100, false)?, b"hello");
//! assert_eq!(b.read(now, server, 100, false)?, b"");
//! # Ok::<(), Errno>(())
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod coverage;
pub mod errno;
pub mod host;
pub mod isn;
pub mod listen;
pub mod seq;
pub mod sim;
pub mod tcb;
pub mod time;
pub mod wire;

pub use config::Config;
pub use errno::Errno;
pub use host::{Domain, Fd, Host, HostEvent, Shutdown, SockOptName, SockOptValue};
pub use isn::FourTuple;
pub use seq::SeqNum;
pub use tcb::TcpState;
pub use time::Instant;
