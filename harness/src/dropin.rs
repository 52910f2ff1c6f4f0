//! packetdrill's own command line, so that what drives packetdrill drives tcpdrill unchanged (its `run_all.py`,
//! the kernel selftests' `ksft_runner.sh`): `tcpdrill [packetdrill flags] SCRIPT...` runs each script on the
//! linux backend as `packetdrill [flags] SCRIPT` runs it on the local kernel, prints nothing when it passes and
//! packetdrill's error text on standard error when it fails, and exits as packetdrill does: 0 when every script
//! passed, 1 otherwise (a script that cannot run here exits 1 too, with the reason, since a runner would count
//! packetdrill's refusal as a failure).

use std::path::Path;
use std::process::ExitCode;
use tcpdrill::report::{self, BackendKind};
use tcpdrill::run::{RunOptions, Verdict};
use tcpdrill::script::options::{self, Value};
use tcpdrill::script::ParseOptions;

/// Whether `args` (without the program name) are a packetdrill invocation rather than a tcpdrill subcommand: they
/// start with a flag other than tcpdrill's own `-h`/`-V`, or with a script.
pub fn is_packetdrill_invocation(args: &[String]) -> bool {
    match args.first().map(String::as_str) {
        None | Some("-h" | "--help" | "-V" | "--version") => false,
        Some(a) => a.starts_with('-') || a.ends_with(".pkt"),
    }
}

/// What the command line asked for.
#[derive(Debug, Default)]
struct Invocation {
    defines: ParseOptions,
    header: Vec<(String, Option<String>)>,
    verbose: bool,
    dry_run: bool,
    backend: Option<String>,
    scripts: Vec<String>,
}

/// Reads packetdrill's flags as its getopt_long does: `--name=value` or `--name value` for an option that takes a
/// value, `-D NAME=VALUE` (also `-DNAME=VALUE`, `--define=NAME=VALUE`), `-v` (repeatable). Every other option
/// must be one of the header options scripts may set ([`options::HEADER_OPTIONS`]), with a value that fits it;
/// tcpdrill's one addition is `--backend=NAME` (default linux, what packetdrill tests).
fn parse(args: &[String]) -> Result<Invocation, String> {
    let mut inv = Invocation::default();
    let mut it = args.iter();
    let define = |inv: &mut Invocation, d: &str| {
        let (k, v) = d.split_once('=').unwrap_or((d, ""));
        inv.defines.defines.insert(k.to_string(), v.to_string());
    };
    while let Some(a) = it.next() {
        if a == "-D" {
            let d = it.next().ok_or("-D needs NAME or NAME=VALUE")?;
            define(&mut inv, d);
        } else if let Some(d) = a.strip_prefix("-D") {
            define(&mut inv, d);
        } else if a.len() > 1 && a.strip_prefix('-').is_some_and(|v| v.chars().all(|c| c == 'v')) {
            inv.verbose = true;
        } else if let Some(rest) = a.strip_prefix("--") {
            let (name, inline) = match rest.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (rest, None),
            };
            match name {
                "define" => {
                    let d = inline.or_else(|| it.next().cloned()).ok_or("--define needs NAME or NAME=VALUE")?;
                    define(&mut inv, &d);
                }
                "dry_run" => inv.dry_run = true,
                "verbose" => inv.verbose = true,
                "backend" => inv.backend = Some(inline.or_else(|| it.next().cloned()).ok_or("--backend needs a name")?),
                _ => {
                    let spec = options::spec(name).ok_or_else(|| {
                        let names = options::HEADER_OPTIONS.iter().map(|o| o.name);
                        match tcpdrill::script::diag::nearest(name, names) {
                            Some(n) => format!("unknown option --{name} (did you mean --{n}?)"),
                            None => format!("unknown option --{name}"),
                        }
                    })?;
                    let value = if spec.value == Value::Flag { inline } else { inline.or_else(|| it.next().cloned()) };
                    spec.check(value.as_deref())?;
                    inv.header.push((name.to_string(), value));
                }
            }
        } else if a.starts_with('-') && a.len() > 1 {
            return Err(format!("unknown option {a}"));
        } else {
            inv.scripts.push(a.clone());
        }
    }
    if inv.scripts.is_empty() {
        return Err("no script given: tcpdrill [packetdrill flags] SCRIPT...".into());
    }
    Ok(inv)
}

/// Runs a packetdrill invocation; see the module documentation.
pub fn main(args: &[String]) -> ExitCode {
    let inv = match parse(args) {
        Ok(inv) => inv,
        Err(e) => {
            eprintln!("tcpdrill: {e}");
            return ExitCode::from(1);
        }
    };
    let name = inv.backend.as_deref().unwrap_or("linux");
    let Some(backend) = BackendKind::by_name(name) else {
        eprintln!("tcpdrill: no backend named {name:?}");
        return ExitCode::from(1);
    };
    if !inv.dry_run {
        if let Err(why) = (backend.info().available)() {
            eprintln!("tcpdrill: {why}");
            return ExitCode::from(1);
        }
    }
    let opts = RunOptions { header: inv.header.clone(), ..RunOptions::default() };
    let mut failed = false;
    for s in &inv.scripts {
        let path = Path::new(s);
        if inv.dry_run {
            // packetdrill's --dry_run: parse the script and stop.
            let text = match report::read_script(path) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("{s}: {e}");
                    failed = true;
                    continue;
                }
            };
            if let Err(errs) = tcpdrill::script::check(s, &text, &inv.defines) {
                for e in errs {
                    eprintln!("{}", e.render_plain());
                }
                failed = true;
            }
            continue;
        }
        let r = report::run_file(path, s, backend, &inv.defines, &opts);
        match r.outcome {
            Err(parse) => {
                eprintln!("{parse}");
                failed = true;
            }
            Ok(o) => {
                if inv.verbose {
                    print!("{}", o.trace);
                }
                match o.verdict {
                    Verdict::Pass => {}
                    Verdict::Fail(f) => {
                        eprintln!("{}", f.text());
                        failed = true;
                    }
                    Verdict::Skipped(why) => {
                        eprintln!("{s}: cannot run on the {} backend: {why}", backend.name());
                        failed = true;
                    }
                }
            }
        }
    }
    ExitCode::from(u8::from(failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn reads_run_all_py_invocations() {
        let inv = parse(&args(
            "--send_omit_free --ip_version=ipv4 --local_ip=192.168.0.1 --gateway_ip=192.168.0.1 \
             --netmask_ip=255.255.0.0 --remote_ip=192.0.2.1 -D TFO_COOKIE=3021b9d889017eeb -D CODE=host_unreachable \
             -vv --tolerance_usecs 10000 x.pkt",
        ))
        .unwrap();
        assert_eq!(inv.scripts, ["x.pkt"]);
        assert_eq!(inv.defines.defines["TFO_COOKIE"], "3021b9d889017eeb");
        assert!(inv.verbose);
        assert!(inv.header.contains(&("tolerance_usecs".into(), Some("10000".into()))));
        assert!(inv.header.contains(&("send_omit_free".into(), None)));
        assert!(is_packetdrill_invocation(&args("--ip_version=ipv4 x.pkt")));
        assert!(is_packetdrill_invocation(&args("x.pkt")));
        assert!(!is_packetdrill_invocation(&args("run x.pkt")));
        assert!(!is_packetdrill_invocation(&args("--help")));
    }

    #[test]
    fn refuses_what_packetdrill_would_not_take() {
        for (a, why) in [
            ("--tolerance_usec=1 x.pkt", "did you mean --tolerance_usecs?"),
            ("--mtu=10 x.pkt", "--mtu=10 is out of range"),
            ("--strict_segments=1 x.pkt", "takes no value"),
            ("--ip_version=ipv5 x.pkt", "is not one of"),
            ("-x x.pkt", "unknown option -x"),
            ("--ip_version=ipv4", "no script given"),
        ] {
            let e = parse(&args(a)).unwrap_err();
            assert!(e.contains(why), "{a}: {e}");
        }
    }
}
