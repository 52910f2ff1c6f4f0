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
