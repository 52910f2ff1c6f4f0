//! What the harness's tests and benchmarks share: a passive open to start scripts from, and a run of a script's
//! text on the reference backend. (`#[path]`-included by benches; not every user needs every item.)
#![allow(dead_code)]

use std::path::Path;
use tcpdrill::report::{run_text, BackendKind};
use tcpdrill::run::{RunOptions, Verdict};
use tcpdrill::script::ParseOptions;

macro_rules! listener {
    () => {
        "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
"
    };
}

macro_rules! handshake {
    () => {
        concat!(
            listener!(),
            "+0 < S 0:0(0) win 65535 <mss 1460>
+0 > S. 0:0(0) ack 1 <...>
+.1 < . 1:1(0) ack 1 win 65535
"
        )
    };
}

/// fd 3 listening on 8080 at 0 s.
pub const LISTENER: &str = listener!();

/// A listener on 8080 and a passive handshake from 40123, up to its last ACK at 0.1 s (not yet accepted).
pub const HANDSHAKE: &str = handshake!();

/// [`HANDSHAKE`] and its accept(): fd 4 is an established connection at 0.1 s.
pub const PASSIVE: &str = concat!(handshake!(), "+0 accept(3, ..., ...) = 4\n");

/// Runs a whole script's text on the reference backend with the default options; a parse error panics.
pub fn run_reference(text: &str) -> Verdict {
    run_reference_with(text, &RunOptions::default())
}

/// As [`run_reference`], with these options.
pub fn run_reference_with(text: &str, opts: &RunOptions) -> Verdict {
    let r = run_text(Path::new("t.pkt"), "t.pkt", text, BackendKind::Reference, &ParseOptions::default(), opts);
    r.outcome.unwrap_or_else(|e| panic!("did not parse: {e}\n{text}")).verdict
}
