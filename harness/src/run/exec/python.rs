//! `%{ python }%` blocks: a TCP_INFO snapshot when a block's time comes, and the blocks run by python3 after the
//! last event, as packetdrill runs them.

use super::*;

impl Exec<'_> {
    /// Takes the TCP_INFO snapshot a `%{ }%` block will see.
    pub(super) fn snapshot(&mut self, code: &Code) -> Res<()> {
        let fd = self.under_test.or_else(|| self.fds.values().next_back().copied());
        let vars = match fd {
            Some(fd) => self.backend.tcp_info(fd),
            None => Err("no socket to take a TCP_INFO snapshot of".to_string()),
        }
        .map_err(|m| self.fail(code.span, "error handling code", m, vec![], "this block"))?;
        let t = self.backend.now();
        self.trace.entries.push(TraceEntry::Note { t, text: format!("TCP_INFO snapshot of fd {}", fd.unwrap_or(-1)) });
        self.code.push((code.clone(), vars));
        Ok(())
    }

    /// Runs the `%{ }%` blocks, as packetdrill does after the last event: each block sees the `tcpi_*` values
    /// of its own snapshot; the first failing assertion fails the script at that block.
    pub(super) fn run_python(&mut self) -> Res<()> {
        if self.code.is_empty() {
            return Ok(());
        }
        let program = python_program(&self.code);
        let path = std::env::temp_dir().join(format!("tcpdrill-{}-{:p}.py", std::process::id(), &self.code));
        let fail_at = |x: &Self, span: Span, m: String| x.fail(span, "error executing code", m, vec![], "this block");
        let first = self.code[0].0.span;
        std::fs::write(&path, program).map_err(|e| fail_at(self, first, format!("{}: {e}", path.display())))?;
        let out = crate::backend::output_within(
            std::process::Command::new(crate::backend::linux::python3().unwrap_or("python3".as_ref())).arg(&path),
            self.deadline,
        );
        let _ = std::fs::remove_file(&path);
        let out = out.map_err(|e| fail_at(self, first, format!("python3: {e}")))?;
        if out.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        // The program prints "block N: <error>" for the block that failed.
        let (span, msg) = err
            .lines()
            .find_map(|l| {
                let rest = l.strip_prefix("block ")?;
                let (n, m) = rest.split_once(": ")?;
                Some((self.code.get(n.parse::<usize>().ok()?)?.0.span, m.to_string()))
            })
            .unwrap_or((first, err.trim().to_string()));
        Err(fail_at(self, span, msg))
    }
}

/// A Python string literal holding `s`.
pub(super) fn py_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 || !c.is_ascii() => out.push_str(&format!("\\U{:08x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The program that runs the `%{ }%` blocks: packetdrill's names (`tcpi_*`, `TCP_CA_*`, `TCPI_OPT_*`) bound to
/// each block's own snapshot, each block dedented and run by itself.
pub(super) fn python_program(blocks: &[(Code, Vec<(&'static str, i64)>)]) -> String {
    let mut p = String::from(
        "import sys, textwrap, traceback\n\
         base = dict(TCP_CA_Open=0, TCP_CA_Disorder=1, TCP_CA_CWR=2, TCP_CA_Recovery=3, TCP_CA_Loss=4,\n\
         \x20           TCPI_OPT_TIMESTAMPS=1, TCPI_OPT_SACK=2, TCPI_OPT_WSCALE=4, TCPI_OPT_ECN=8,\n\
         \x20           TCPI_OPT_ECN_SEEN=16, TCPI_OPT_SYN_DATA=32)\n\
         blocks = []\n",
    );
    for (code, vars) in blocks {
        let env: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
        p.push_str(&format!("blocks.append((dict({}), {}))\n", env.join(", "), py_str(&code.text)));
    }
    p.push_str(
        "for n, (env, code) in enumerate(blocks):\n\
         \x20   g = dict(base)\n\
         \x20   g.update(env)\n\
         \x20   try:\n\
         \x20       exec(compile(textwrap.dedent(code).strip(), 'block %d' % n, 'exec'), g)\n\
         \x20   except Exception as e:\n\
         \x20       msg = ''.join(traceback.format_exception_only(type(e), e)).strip().replace(chr(10), ' ')\n\
         \x20       print('block %d: %s' % (n, msg), file=sys.stderr)\n\
         \x20       sys.exit(1)\n",
    );
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(text: &str) -> Code {
        Code { text: text.to_string(), span: Span::default() }
    }

    #[test]
    fn python_program_runs_each_block_with_its_own_snapshot() {
        if std::process::Command::new("python3").arg("-c").arg("pass").output().is_err() {
            eprintln!("python3 not installed: skipped");
            return;
        }
        let run = |blocks: &[(Code, Vec<(&'static str, i64)>)]| {
            let p = std::env::temp_dir().join(format!("tcpdrill-test-{}.py", std::process::id()));
            std::fs::write(&p, python_program(blocks)).unwrap();
            let out = std::process::Command::new("python3").arg(&p).output().unwrap();
            let _ = std::fs::remove_file(&p);
            (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string())
        };
        // Indented, continued and quoted text as packetdrill scripts write it.
        let ok = [
            (
                block(" assert tcpi_state == 1, tcpi_state; \\\n      assert tcpi_ca_state == TCP_CA_Open "),
                vec![("tcpi_state", 1), ("tcpi_ca_state", 0)],
            ),
            (block("assert tcpi_snd_cwnd == 10, \"cwnd\""), vec![("tcpi_snd_cwnd", 10)]),
        ];
        assert_eq!(run(&ok), (true, String::new()));
        // The second block sees its own snapshot, not the first one's: its assertion fails and names block 1.
        let bad = [
            (block("assert tcpi_snd_cwnd == 10"), vec![("tcpi_snd_cwnd", 10)]),
            (block("assert tcpi_snd_cwnd == 10, tcpi_snd_cwnd"), vec![("tcpi_snd_cwnd", 4)]),
        ];
        let (pass, err) = run(&bad);
        assert!(!pass);
        assert!(err.starts_with("block 1: AssertionError: 4"), "{err}");
    }
}
