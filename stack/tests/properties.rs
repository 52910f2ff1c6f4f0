//! Property tests of the stack as a whole (DESIGN section 6):
//! (a) random sequences of segments (in and out of window, any flags, any options), socket calls and time jumps
//!     never panic and keep the invariants (`sim::run_ops` checks them after every step);
//! (b) two hosts over a link that drops, duplicates, delays and reorders (seeded) move random data both ways,
//!     every byte exactly once and in order, and both close cleanly through TIME-WAIT.
//!
//! (b) runs with retry budgets raised (tcp_retries2, tcp_orphan_retries, SYN and SYN-ACK retries) so that bad
//! luck cannot exhaust them: with Linux's defaults an orphan gives up after 8 retransmissions, and 200,000 cases at
//! 15% loss did produce a run whose six ACKs in a row were all lost; that give-up is correct behaviour, not a
//! recovery bug, and the property is about recovery. Default budgets are exercised by `sim::tests`.

use arbitrary::{Arbitrary, Unstructured};
use proptest::prelude::*;
use std::time::Duration;
use tcpdrill_stack::sim::{run_ops, transfer, with_handshake, LinkConfig, Op};
use tcpdrill_stack::Config;

/// The case count: `default` unless PROPTEST_CASES asks for another (for long stress runs).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn ops_from(bytes: &[u8]) -> Vec<Op> {
    let mut u = Unstructured::new(bytes);
    Vec::<Op>::arbitrary(&mut u).unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(512), ..ProptestConfig::default() })]

    #[test]
    fn random_events_keep_invariants(bytes in proptest::collection::vec(any::<u8>(), 0..3000), passive in any::<bool>()) {
        let ops = with_handshake(ops_from(&bytes), passive);
        if let Err(e) = run_ops(&ops) {
            prop_assert!(false, "{e}\nops: {ops:#?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(48), ..ProptestConfig::default() })]

    #[test]
    fn lossy_link_delivers_everything_once_in_order(
        seed in any::<u64>(),
        a_len in 0usize..40_000,
        b_len in 0usize..40_000,
        drop in 0u16..150,
        dup in 0u16..100,
        min_ms in 1u64..20,
        spread_ms in 0u64..80,
    ) {
        let a: Vec<u8> = (0..a_len).map(|i| (i as u64).wrapping_mul(seed | 1) as u8).collect();
        let b: Vec<u8> = (0..b_len).map(|i| (i as u64 ^ seed).wrapping_mul(31) as u8).collect();
        let link = LinkConfig {
            drop_permille: drop,
            dup_permille: dup,
            min_delay: Duration::from_millis(min_ms),
            max_delay: Duration::from_millis(min_ms + spread_ms),
        };
        let config = Config {
            tcp_retries2: 60,
            tcp_orphan_retries: 60,
            tcp_syn_retries: 60,
            tcp_synack_retries: 60,
            ..Config::default()
        };
        if let Err(e) = transfer(config, seed, link, [&a, &b], 2_000_000) {
            prop_assert!(false, "seed {seed}, link {link:?}: {e}");
        }
    }
}

/// Time going backwards into a host is the caller's bug: debug builds say so at once.
#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "time went backwards")]
fn time_going_backwards_is_asserted() {
    use tcpdrill_stack::{Config, Host, Instant};
    let mut h = Host::new(Config::default(), &["192.168.0.1".parse().unwrap()], 1);
    h.on_timeout(Instant::from_micros(2_000_000));
    h.on_timeout(Instant::from_micros(1_000_000));
}
