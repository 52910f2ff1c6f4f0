//! What a backend without a shell (the reference stack) makes of a script's shell commands. Upstream scripts set
//! their environment with sysctl lines, directly or in a shell file (`` `../common/defaults.sh` ``) or through
//! packetdrill's `set_sysctls.py`; this reads those forms, without running anything, into the sysctls they set
//! and the commands that have no counterpart in a stack without a kernel (`ip tcp_metrics flush`, `tc qdisc`),
//! which are reported as ignored. Anything else is not guessed at: the script is skipped with the line.
//!
//! The shell language read is a small, fixed subset: one command per line (a trailing `\` joins lines), `#`
//! comments, words quoted as the shell quotes them, `$((...))` integer arithmetic, and output redirections,
//! which are dropped except `echo VALUE > /proc/sys/...` (how set_sysctls.py's restore files set a value).

use std::path::{Path, PathBuf};

/// Where a setting was written: in the script itself, or in a file a command of it ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The script's own command line.
    Script,
    /// A shell file it runs (`defaults.sh`): the shared environment of a suite, not the script's own need.
    File(PathBuf),
}

/// One thing a command does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Sets sysctl `name` (dotted, `net.ipv4.tcp_sack`) to `value`.
    Sysctl {
        /// The sysctl's dotted name.
        name: String,
        /// The value as written.
        value: String,
        /// Where it was written.
        origin: Origin,
    },
    /// A command that has no counterpart without a kernel, and why.
    Ignored {
        /// The command as written.
        what: String,
        /// Why it makes no difference to a stack without a kernel.
        why: &'static str,
    },
}

/// How deep shell files may run other shell files.
const MAX_DEPTH: usize = 4;

/// The steps of `cmd` (a command's text, which may hold several lines), relative to `dir` (the script's folder);
/// `Err` with the reason where it does something a stack without a shell cannot do or tcpdrill cannot read.
pub fn interpret(cmd: &str, dir: Option<&Path>) -> Result<Vec<Step>, String> {
    let mut out = Vec::new();
    lines(cmd, dir.unwrap_or(Path::new(".")), &Origin::Script, 0, &mut out)?;
    Ok(out)
}

fn lines(text: &str, dir: &Path, origin: &Origin, depth: usize, out: &mut Vec<Step>) -> Result<(), String> {
    let mut pending = String::new();
    for raw in text.lines() {
        if let Some(head) = raw.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(raw);
        let line = std::mem::take(&mut pending);
        command(line.trim(), dir, origin, depth, out)?;
    }
    command(pending.trim(), dir, origin, depth, out)
}

fn command(line: &str, dir: &Path, origin: &Origin, depth: usize, out: &mut Vec<Step>) -> Result<(), String> {
    if line.is_empty() || line.starts_with('#') {
        return Ok(());
    }
    // Pipes, lists, substitutions and variables would need a shell to mean anything; the one variable read is
    // the restore file's `${PPID}`, whose value does not matter here.
    if ["|", ";", "&&", "$(", "`"].iter().any(|op| line.replace("$((", "").contains(op))
        || line.replace("$((", "").replace("${PPID}", "").contains('$')
    {
        return Err(format!("`{line}` needs a shell (pipes, lists, substitutions or variables)"));
    }
    let expanded = arithmetic(line)?;
    let mut words = shlex::split(&expanded).ok_or_else(|| format!("`{line}`: unbalanced quotes"))?;
    if let Some(i) = words.iter().position(|w| w.starts_with('#')) {
        words.truncate(i);
    }
    let (words, redirect) = redirections(words);
    let Some(first) = words.first() else { return Ok(()) };
    let proc_sys = |path: &str| path.strip_prefix("/proc/sys/").map(|n| n.trim_end_matches('/').replace('/', "."));
    match first.as_str() {
        "true" | ":" => {}
        "sysctl" => {
            for w in &words[1..] {
                if w.starts_with('-') {
                    if !["-q", "-w", "-qw", "-wq", "-e"].contains(&w.as_str()) {
                        return Err(format!("`{line}`: sysctl {w} only reads or lists"));
                    }
                    continue;
                }
                let Some((k, v)) = w.split_once('=') else {
                    return Err(format!("`{line}`: sysctl {w} reads a value, it sets none"));
                };
                out.push(Step::Sysctl { name: k.replace('/', "."), value: v.to_string(), origin: origin.clone() });
            }
        }
        // set_sysctls.py's restore file: `echo "VALUE" > /proc/sys/...`.
        "echo" => {
            if let Some(name) = redirect.as_deref().and_then(proc_sys) {
                out.push(Step::Sysctl { name, value: words[1..].join(" "), origin: origin.clone() });
            }
        }
        "ip" if words.get(1).is_some_and(|w| w == "tcp_metrics" || w == "tcpmetrics") => {
            out.push(Step::Ignored {
                what: line.to_string(),
                why: "the reference stack keeps no per-destination TCP metrics (cached RTTs, Fast Open cookies)",
            });
        }
        // A suite's defaults file sets a qdisc to keep pacing out of the timing; a script's own `tc` line is
        // usually its point (`tc qdisc ... pfifo limit 0` drops every packet), which the stack cannot model.
        "tc" if *origin == Origin::Script => {
            return Err(format!("`{line}` changes the link's queueing, which the reference stack does not model"))
        }
        "tc" => out.push(Step::Ignored {
            what: line.to_string(),
            why: "the reference stack sends without a queueing discipline (no qdisc, no pacing)",
        }),
        w if w.ends_with("set_sysctls.py") => {
            // packetdrill's helper: each argument is /proc/sys/PATH=VALUE, and it writes a restore file.
            for a in &words[1..] {
                let name = a.split_once('=').and_then(|(p, v)| Some((proc_sys(p)?, v)));
                let Some((name, value)) = name else {
                    return Err(format!("`{line}`: set_sysctls.py takes /proc/sys/PATH=VALUE, not {a}"));
                };
                out.push(Step::Sysctl { name, value: value.to_string(), origin: origin.clone() });
            }
        }
        w if w.starts_with("/tmp/sysctl_restore_") => out.push(Step::Ignored {
            what: line.to_string(),
            why: "it restores what set_sysctls.py changed, and every reference run starts from the defaults",
        }),
        w if w.ends_with(".sh") && words.len() == 1 => {
            if depth >= MAX_DEPTH {
                return Err(format!("`{line}`: shell files nested more than {MAX_DEPTH} deep"));
            }
            // Relative to the working directory (the script's folder) as a shell resolves it, in a nested file
            // too.
            let path = dir.join(w);
            let text = std::fs::read(&path).map_err(|e| format!("`{line}`: {}: {e}", path.display()))?;
            lines(&String::from_utf8_lossy(&text), dir, &Origin::File(path.clone()), depth + 1, out)?;
        }
        _ => return Err(format!("`{line}` has no meaning without a shell")),
    }
    Ok(())
}

/// The words without their output redirections, and the target of a `>` / `>>` of standard output, if any.
fn redirections(words: Vec<String>) -> (Vec<String>, Option<String>) {
    let mut keep = Vec::new();
    let mut target = None;
    let mut it = words.into_iter();
    while let Some(w) = it.next() {
        let bare = w.trim_start_matches(['1', '2', '&']);
        if let Some(rest) = bare.strip_prefix(">>").or_else(|| bare.strip_prefix('>')) {
            if rest.starts_with('&') {
                continue; // 2>&1
            }
            let t = if rest.is_empty() { it.next().unwrap_or_default() } else { rest.to_string() };
            if !w.starts_with('2') {
                target = Some(t);
            }
            continue;
        }
        keep.push(w);
    }
    (keep, target)
}

/// `line` with each `$((EXPR))` replaced by its integer value.
fn arithmetic(line: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find("$((") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 3..];
        let end = after.find("))").ok_or_else(|| format!("`{line}`: $(( without ))"))?;
        let v = eval(&after[..end]).ok_or_else(|| format!("`{line}`: cannot evaluate $(({}))", &after[..end]))?;
        out.push_str(&v.to_string());
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Integer `+ - * / %` with parentheses, as the shell's `$((...))` evaluates them (64-bit, left to right within a
/// precedence level); `None` for anything else or an overflow.
fn eval(expr: &str) -> Option<i64> {
    let tokens: Vec<char> = expr.chars().filter(|c| !c.is_whitespace()).collect();
    let mut pos = 0;
    let v = sum(&tokens, &mut pos)?;
    (pos == tokens.len()).then_some(v)
}

fn sum(t: &[char], pos: &mut usize) -> Option<i64> {
    let mut v = product(t, pos)?;
    while let Some(&op) = t.get(*pos).filter(|c| **c == '+' || **c == '-') {
        *pos += 1;
        let r = product(t, pos)?;
        v = if op == '+' { v.checked_add(r)? } else { v.checked_sub(r)? };
    }
    Some(v)
}

fn product(t: &[char], pos: &mut usize) -> Option<i64> {
    let mut v = atom(t, pos)?;
    while let Some(&op) = t.get(*pos).filter(|c| matches!(c, '*' | '/' | '%')) {
        *pos += 1;
        let r = atom(t, pos)?;
        v = match op {
            '*' => v.checked_mul(r)?,
            '/' => v.checked_div(r)?,
            _ => v.checked_rem(r)?,
        };
    }
    Some(v)
}

fn atom(t: &[char], pos: &mut usize) -> Option<i64> {
    match t.get(*pos)? {
        '(' => {
            *pos += 1;
            let v = sum(t, pos)?;
            (t.get(*pos) == Some(&')')).then(|| *pos += 1)?;
            Some(v)
        }
        '-' => {
            *pos += 1;
            atom(t, pos)?.checked_neg()
        }
        c if c.is_ascii_digit() => {
            let start = *pos;
            while t.get(*pos).is_some_and(char::is_ascii_digit) {
                *pos += 1;
            }
            t[start..*pos].iter().collect::<String>().parse().ok()
        }
        _ => None,
    }
}

/// The reference stack's counterpart of FreeBSD's sysctl `name` (`net.inet.tcp.*`, `kern.ipc.maxsockbuf`) set to
/// `value`: the Linux
/// sysctls of the same meaning, with the value in their units; `None` where Linux (and so the reference stack)
/// has none.
pub fn freebsd_equivalent(name: &str, value: &str) -> Option<Vec<(String, String)>> {
    let v = value.trim();
    let ms_to_s = || v.parse::<u64>().ok().map(|ms| ms.div_ceil(1000).max(1).to_string());
    let linux = |n: &str, v: String| (format!("net.ipv4.{n}"), v);
    if name == "kern.ipc.maxsockbuf" {
        // The largest socket buffer, as Linux's rmem_max caps SO_RCVBUF.
        return Some(vec![("net.core.rmem_max".to_string(), v.to_string())]);
    }
    Some(match name.strip_prefix("net.inet.tcp.")? {
        // The default buffer sizes: the middle of Linux's triples (whose minimum and maximum are Linux's defaults).
        "sendspace" => vec![linux("tcp_wmem", format!("4096 {v} {}", v.parse::<u64>().ok()?.max(4_194_304)))],
        "recvspace" => vec![linux("tcp_rmem", format!("4096 {v} {}", v.parse::<u64>().ok()?.max(6_291_456)))],
        // RFC 5961's checks, which Linux always makes; RFC 6298's initial RTO of 1 s, which Linux uses.
        "insecure_rst" | "insecure_syn" if v == "0" => Vec::new(),
        "rexmit_initial" if v == "1000" => Vec::new(),
        // RFC 1323's two options, which FreeBSD switches together (other values pick one of them on some
        // FreeBSD versions: not mapped).
        "rfc1323" if v == "0" || v == "1" => {
            vec![linux("tcp_timestamps", v.to_string()), linux("tcp_window_scaling", v.to_string())]
        }
        // Settings that ask for what Linux (and the reference stack) always does: a RST for a segment to a closed
        // port, SYN options kept on retransmission, and no host cache to purge.
        "blackhole" | "rexmit_drop_options" if v == "0" => Vec::new(),
        "hostcache.purgenow" => Vec::new(),
        "sack.enable" => vec![linux("tcp_sack", v.to_string())],
        "ecn.enable" => vec![linux("tcp_ecn", v.to_string())],
        "syncookies" => vec![linux("tcp_syncookies", v.to_string())],
        // FreeBSD counts these in milliseconds, Linux in seconds.
        "keepidle" => vec![linux("tcp_keepalive_time", ms_to_s()?)],
        "keepintvl" => vec![linux("tcp_keepalive_intvl", ms_to_s()?)],
        "keepcnt" => vec![linux("tcp_keepalive_probes", v.to_string())],
        _ => return None,
    })
}

/// What a Linux sysctl the reference stack has no knob for controls, for the report, where it is known.
pub fn unmodelled_feature(name: &str) -> Option<&'static str> {
    Some(match name.rsplit('.').next().unwrap_or(name) {
        "tcp_frto" => "F-RTO (RFC 5682)",
        "tcp_fack" => "forward acknowledgement",
        "tcp_reordering" | "tcp_max_reordering" => "reordering-adaptive loss recovery",
        "tcp_slow_start_after_idle" => "congestion window validation after idle (RFC 7661)",
        "tcp_tso_win_divisor" | "tcp_min_tso_segs" | "tcp_autocorking" => "segmentation offload (TSO)",
        "tcp_ecn_option" | "tcp_ecn_option_beacon" => "accurate ECN",
        "tcp_pacing_ss_ratio" | "tcp_pacing_ca_ratio" => "pacing",
        "tcp_notsent_lowat" => "the unsent-data low watermark (TCP_NOTSENT_LOWAT)",
        "tcp_fastopen" | "tcp_fastopen_key" | "tcp_fastopen_blackhole_timeout_sec" => "TCP Fast Open (RFC 7413)",
        "tcp_mtu_probing" | "tcp_base_mss" => "packetization-layer path MTU discovery (RFC 4821)",
        "tcp_moderate_rcvbuf" => "receive buffer autotuning",
        "tcp_no_metrics_save" => "the per-destination metrics cache",
        "tcp_thin_linear_timeouts" => "thin-stream timeouts",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sysctls(steps: &[Step]) -> Vec<(String, String)> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Sysctl { name, value, .. } => Some((name.clone(), value.clone())),
                Step::Ignored { .. } => None,
            })
            .collect()
    }

    #[test]
    fn a_shell_file_of_sysctls_is_read_with_its_arithmetic_and_redirections() {
        let dir = std::env::temp_dir().join(format!("tcpdrill-shell-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("common")).unwrap();
        std::fs::create_dir_all(dir.join("x")).unwrap();
        std::fs::write(
            dir.join("common/env.sh"),
            "#!/bin/bash\n# comment\nip tcp_metrics flush all > /dev/null 2>&1\n\
             sysctl -q net.ipv4.tcp_rmem=\"4096 540000 $((15*1024*1024))\"\n\
             sysctl -q net.ipv4.tcp_sack=1 \\\n  net.ipv4.tcp_syn_retries=$(( (2+3) * 2 - 4 ))\n\
             sysctl -q net.ipv4.tcp_notsent_lowat=4294967295 > /dev/null 2>&1\ntc qdisc add dev tun0 root pfifo\n",
        )
        .unwrap();
        let steps =
            interpret("../common/env.sh\n set_sysctls.py /proc/sys/net/ipv4/tcp_timestamps=0", Some(&dir.join("x")))
                .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            sysctls(&steps),
            [
                ("net.ipv4.tcp_rmem", "4096 540000 15728640"),
                ("net.ipv4.tcp_sack", "1"),
                ("net.ipv4.tcp_syn_retries", "6"),
                ("net.ipv4.tcp_notsent_lowat", "4294967295"),
                ("net.ipv4.tcp_timestamps", "0"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        assert_eq!(steps.iter().filter(|s| matches!(s, Step::Ignored { .. })).count(), 2);
        // The file's settings are the environment's; the set_sysctls.py line is the script's own.
        assert!(matches!(&steps[1], Step::Sysctl { origin: Origin::File(_), .. }));
        assert!(matches!(steps.last(), Some(Step::Sysctl { origin: Origin::Script, .. })));
    }

    #[test]
    fn what_a_shell_would_be_needed_for_is_refused_with_the_line() {
        for (cmd, why) in [
            ("ip route change 192.0.2.2 via 192.168.0.2 dev tun0 advmss 1430", "has no meaning without a shell"),
            ("sysctl -a", "only reads or lists"),
            ("sysctl net.ipv4.tcp_sack", "reads a value"),
            ("missing.sh", "missing.sh"),
            ("sysctl -q net.ipv4.tcp_rmem=$((1<<20))", "cannot evaluate"),
            ("echo 'unterminated", "unbalanced quotes"),
            ("echo 1 | tee /proc/sys/net/ipv4/tcp_sack", "needs a shell"),
            ("sysctl -q net.ipv4.tcp_sack=1; reboot", "needs a shell"),
            ("sysctl -q net.ipv4.tcp_sack=$SACK", "needs a shell"),
            ("tc qdisc add dev tun0 root pfifo limit 0", "does not model"),
        ] {
            let e = interpret(cmd, None).unwrap_err();
            assert!(e.contains(why), "{cmd}: {e}");
        }
        // The restore file set_sysctls.py writes, and the command that runs it.
        let steps =
            interpret("echo \"1\" > /proc/sys/net/ipv4/tcp_sack\n/tmp/sysctl_restore_${PPID}.sh", None).unwrap();
        assert_eq!(sysctls(&steps), [("net.ipv4.tcp_sack".to_string(), "1".to_string())]);
        assert!(matches!(steps[1], Step::Ignored { .. }));
    }

    #[test]
    fn shell_arithmetic() {
        assert_eq!(eval("15*1024*1024"), Some(15_728_640));
        assert_eq!(eval("1 + 2 * 3"), Some(7));
        assert_eq!(eval("(1 + 2) * 3 - -1"), Some(10));
        assert_eq!(eval("7 / 2 % 2"), Some(1));
        assert_eq!(eval("1 / 0"), None);
        assert_eq!(eval("2 ** 3"), None);
        assert_eq!(eval("(1"), None);
    }

    #[test]
    fn freebsd_sysctls_map_to_linux_ones_of_the_same_meaning() {
        let m = |n: &str, v: &str| freebsd_equivalent(n, v);
        assert_eq!(
            m("net.inet.tcp.rfc1323", "0"),
            Some(vec![
                ("net.ipv4.tcp_timestamps".into(), "0".into()),
                ("net.ipv4.tcp_window_scaling".into(), "0".into())
            ])
        );
        assert_eq!(
            m("net.inet.tcp.keepidle", "7200000"),
            Some(vec![("net.ipv4.tcp_keepalive_time".into(), "7200".into())])
        );
        assert_eq!(
            m("net.inet.tcp.keepintvl", "1500"),
            Some(vec![("net.ipv4.tcp_keepalive_intvl".into(), "2".into())])
        );
        assert_eq!(m("net.inet.tcp.msl", "30000"), None);
        assert_eq!(m("net.inet.tcp.rfc1323", "2"), None, "one of the two options only: not mapped");
        assert_eq!(m("net.inet.tcp.blackhole", "0"), Some(vec![]), "what Linux always does");
        assert_eq!(m("net.inet.tcp.blackhole", "2"), None);
        assert_eq!(
            m("net.inet.tcp.sendspace", "32768"),
            Some(vec![("net.ipv4.tcp_wmem".into(), "4096 32768 4194304".into())])
        );
        assert_eq!(m("kern.ipc.maxsockbuf", "2097152"), Some(vec![("net.core.rmem_max".into(), "2097152".into())]));
        assert_eq!(m("net.inet.tcp.rexmit_slop", "200"), None, "no Linux setting of that meaning");
        assert_eq!(m("net.inet.tcp.sack.enable", "0"), Some(vec![("net.ipv4.tcp_sack".into(), "0".into())]));
        assert_eq!(m("net.inet.tcp.keepcnt", "5"), Some(vec![("net.ipv4.tcp_keepalive_probes".into(), "5".into())]));
        assert_eq!(m("net.ipv4.tcp_sack", "1"), None);
    }
}
