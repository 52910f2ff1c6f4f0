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
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod seq;
pub mod wire;

pub use seq::SeqNum;
