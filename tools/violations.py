#!/usr/bin/env python3
"""Builds the reference stack with one deliberate requirement violation at a time and runs the scripts written
to reject it: the hand-made complement of cargo-mutants (whose operators do not write "keep-alives on by default"
or "a 59 s TIME-WAIT"). Every case must end "FAIL (caught)"; the exit status is 1 otherwise.

    python3 tools/violations.py                 # every case (a release build each, ~20 s)
    python3 tools/violations.py TIME-WAIT       # the cases whose name contains TIME-WAIT

Each case: (name, file, old text, new text, scripts that must fail). The file is restored after each case; do not
interrupt it (an interrupted run leaves the last case's change in the tree: `git checkout stack/`). Not while
cargo-mutants runs: one build at a time."""
import subprocess, sys
CASES = [
  ("ISN without its clock", "stack/src/isn.rs",
   "let m = (now.micros() / 4) as u32;", "let m = 0u32 & (now.micros() as u32);",
   ["scripts/isn/same-four-tuple-isn-follows-the-clock.pkt"]),
  ("send MSS ignores the path MTU", "stack/src/tcb/input.rs",
   "let mut mss = self.opts.peer_mss.min(ctx.config.mtu.saturating_sub(ip_tcp).min(65_535) as u16);",
   "let _ = ip_tcp;\n        let mut mss = self.opts.peer_mss;",
   ["scripts/options/mss-path-limits-segment-size.pkt"]),
  ("answered zero-window probes count toward giving up", "stack/src/tcb/input.rs",
   "            self.persist_probes = 1;\n", "",
   ["scripts/timers/zero-window-answered-probes-never-give-up.pkt"]),
  ("zero-window probe interval stops growing once answered", "stack/src/tcb/input.rs",
   "            self.persist_probes = 1;\n", "            self.persist_probes = 1;\n            self.persist_shift = 1;\n",
   ["scripts/timers/zero-window-persist.pkt"]),
  ("RFC 5961 5.2 bound off by one (SEG.ACK = SND.UNA - MAX.SND.WND rejected)", "stack/src/tcb/input.rs",
   "if seg.ack > self.snd_max || seg.ack < lower {", "if seg.ack > self.snd_max || seg.ack <= lower {",
   ["scripts/reset/ack-bound-at-max-snd-wnd.pkt"]),
  ("RFC 5961 5.2 bound at 64 x MAX.SND.WND", "stack/src/tcb/input.rs",
   "let lower = self.snd_una - self.max_snd_wnd;", "let lower = self.snd_una - self.max_snd_wnd.saturating_mul(64);",
   ["scripts/reset/ack-bound-at-max-snd-wnd.pkt"]),
  ("our own SYN's window scaled", "stack/src/tcb/output.rs",
   "((space / mss * mss).max(mss.min(space))) as u16", "(((space / mss * mss).max(mss.min(space))) >> self.opts.rcv_wscale) as u16",
   ["scripts/options/syn-window-never-scaled.pkt", "scripts/options/window-scale-both-offer.pkt"]),
  ("any SYN reopens TIME-WAIT", "stack/src/tcb/input.rs",
   "(seg.seq > self.rcv_nxt || newer_ts)", "true",
   ["scripts/time-wait/old-syn-does-not-reopen.pkt"]),
  ("a SYN at RCV.NXT reopens TIME-WAIT", "stack/src/tcb/input.rs",
   "(seg.seq > self.rcv_nxt || newer_ts)", "(seg.seq >= self.rcv_nxt || newer_ts)",
   ["scripts/time-wait/old-syn-does-not-reopen.pkt"]),
  ("a SYN with an older timestamp reopens TIME-WAIT", "stack/src/tcb/input.rs",
   "&& !paws_reject && (seg.seq > self.rcv_nxt || newer_ts)", "&& (seg.seq > self.rcv_nxt || newer_ts)",
   ["scripts/time-wait/old-timestamp-syn-does-not-reopen.pkt"]),
  ("SYN-RECEIVED forgets it came from an active OPEN", "stack/src/tcb/input.rs",
   "            TcpState::SynReceived if self.passive => {", "            TcpState::SynReceived if self.passive || true => {",
   ["scripts/reset/rst-in-syn-received-active.pkt"]),
  ("keep-alives on by default", "stack/src/tcb/mod.rs",
   "pub struct SockOpts {\n    /// SO_KEEPALIVE.\n    pub keepalive: bool,", None,
   ["scripts/timers/keepalive-off-by-default-on-the-wire.pkt"]),
  ("TIME-WAIT lasts 59 s", "stack/src/tcb/mod.rs",
   "pub const TIME_WAIT_LEN: Duration = Duration::from_secs(60);", "pub const TIME_WAIT_LEN: Duration = Duration::from_secs(59);",
   ["scripts/close/active-close.pkt", "scripts/close/simultaneous-close.pkt", "scripts/time-wait/lasts-2msl-active-opener.pkt"]),
  ("a 60 s keep-alive idle time by default", "stack/src/config.rs",
   "tcp_keepalive_time: 7200", "tcp_keepalive_time: 60",
   ["scripts/timers/keepalive-default-two-hours.pkt"]),
]
only = sys.argv[1:]
bad = 0
for name, path, old, new, scripts in CASES:
    if only and not any(o in name for o in only):
        continue
    src = open(path).read()
    if new is None:
        # keep-alive default: SockOpts derives Default; flip it in Tcb::new's use instead
        mutated = src.replace("        Tcb {\n            tuple,", "        let sockopts = SockOpts { keepalive: true, ..sockopts };\n        Tcb {\n            tuple,", 1)
    else:
        if old not in src:
            print(f"!! {name}: pattern not found in {path}"); bad += 1; continue
        mutated = src.replace(old, new, 1)
    open(path, "w").write(mutated)
    try:
        b = subprocess.run(["cargo", "build", "--release", "-q", "-p", "tcpdrill"], capture_output=True, text=True)
        if b.returncode != 0:
            print(f"!! {name}: does not build\n{b.stderr[-800:]}"); bad += 1; continue
        for s in scripts:
            r = subprocess.run(["target/release/tcpdrill", "run", s], capture_output=True, text=True)
            first = next((l for l in r.stdout.splitlines() + r.stderr.splitlines() if "error" in l), "")
            verdict = "FAIL (caught)" if r.returncode == 1 else f"exit {r.returncode} (NOT caught)"
            if r.returncode != 1: bad += 1
            print(f"{name}: {s}: {verdict}\n    {first[:200]}")
    finally:
        open(path, "w").write(src)
subprocess.run(["cargo", "build", "--release", "-q", "-p", "tcpdrill"])
sys.exit(1 if bad else 0)
