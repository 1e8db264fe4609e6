//! Can the repo's checks start in this sandbox? Run once, in the first pass's sandbox,
//! before any agent: a check whose program (or `python3 -m` module) is missing is a setup
//! failure that halts the run with no model spend, not a `warn` an approver is asked to
//! merge past (open issue "Environments": "a test command that cannot run is not a warning").

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::gates::checks::CheckCommand;
use crate::sandbox::{SandboxError, Session};

/// Shell words that are not programs to look up.
const BUILTINS: &[&str] = &[
    "cd", "export", "source", ".", "true", "false", "exec", "env", "set", "test", "[", "if", "for",
    "while", "(", "{", "eval",
];

/// The probe of one check command: a shell snippet that exits 0 when the command's program
/// (and, for `python3 -m X`, the module `X`) is present, and what it looks for. `None` when
/// there is nothing plain to probe (a builtin or a subshell first).
pub fn probe_for(command: &str) -> Option<(String, String)> {
    let words = shlex::split(command)?;
    let mut it = words.iter();
    let program = it.next()?;
    // Only a plain program word is probed: a leading assignment (`PATH=… pytest`) changes
    // where it is found, and shell syntax (`(cd web && npm test)`, `~/bin/x`, globs,
    // functions, expansions) is the shell's to resolve. Those run as they are.
    if program.contains('=')
        || BUILTINS.contains(&program.as_str())
        || program.contains([
            '$', '`', '(', ')', '{', '}', ';', '&', '|', '<', '>', '~', '*', '?',
        ])
    {
        return None;
    }
    let quoted = shlex::try_quote(program).ok()?;
    let mut probe = format!("command -v {quoted} >/dev/null 2>&1");
    let mut what = format!("`{program}`");
    if let (Some(flag), Some(module)) = (it.next(), it.next())
        && flag == "-m"
        && program.starts_with("python")
    {
        let m = shlex::try_quote(module).ok()?;
        probe.push_str(&format!(
            " && {quoted} -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec(sys.argv[1]) is None)' {m}"
        ));
        what = format!("`{program} -m {module}` (the module {module})");
    }
    Some((probe, what))
}

/// The checks among `cmds` that cannot start in `session`, as sentences naming the command
/// and what is missing. Errors: the sandbox itself failed (or the run was cancelled).
pub async fn missing(
    session: &dyn Session,
    cmds: &[CheckCommand],
    cancel: &CancellationToken,
) -> Result<Vec<String>, SandboxError> {
    let mut missing = Vec::new();
    for c in cmds {
        let Some((probe, what)) = probe_for(&c.command) else {
            continue;
        };
        let out = session
            .exec(&probe, Duration::from_secs(60), cancel)
            .await?;
        if !out.success() {
            missing.push(format!(
                "{} check `{}` ({}) cannot start: {what} is not in the sandbox",
                c.kind.gate_name(),
                c.command,
                c.source
            ));
        }
    }
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_and_a_python_module_are_probed() {
        let (p, w) = probe_for("go test ./...").unwrap_or_default();
        assert_eq!(p, "command -v go >/dev/null 2>&1");
        assert_eq!(w, "`go`");
        let (p, w) = probe_for("python3 -m pytest -q").unwrap_or_default();
        assert!(
            p.starts_with("command -v python3 >/dev/null 2>&1 && python3 -c "),
            "{p}"
        );
        assert!(p.ends_with(" pytest"), "{p}");
        assert_eq!(w, "`python3 -m pytest` (the module pytest)");
        assert!(probe_for("cd sub && make test").is_none());
        assert!(probe_for("PATH=$HOME/.local/bin:$PATH pytest").is_none());
        assert!(probe_for("(cd web && npm test)").is_none());
        assert!(probe_for("~/.local/bin/ruff check .").is_none());
        assert!(probe_for("f(){ true; }; f").is_none());
        assert!(probe_for("$TOOL test").is_none());
        assert!(probe_for("").is_none());
    }
}
