//! Gates that run the repo's own tools in the offline sandbox: `dependencies` (the resolver
//! or lockfile check of each ecosystem whose manifest changed) and `coverage` (a repo's
//! coverage command, before and after the change).
//!
//! Owns these two gates; it must not run the repo's format, lint or test commands (that is
//! `checks`) nor decide.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::report::{Gate, GateName, GateStatus};
use crate::sandbox::{SandboxError, Session};
use crate::workspace::FileChange;

/// Exit status of a shell whose command was not found.
const COMMAND_NOT_FOUND: i64 = 127;

/// (file name patterns, check command) per ecosystem. The commands resolve offline: the
/// sandbox has no network.
const RESOLVERS: &[(&[&str], &str)] = &[
    (
        &["Cargo.toml", "Cargo.lock"],
        "cargo metadata --offline --locked --format-version 1 >/dev/null",
    ),
    (
        &["package.json", "package-lock.json"],
        "npm ci --dry-run --offline --no-audit --no-fund",
    ),
    (
        &[
            "requirements.txt",
            "requirements-dev.txt",
            "pyproject.toml",
            "setup.cfg",
            "poetry.lock",
            "Pipfile.lock",
        ],
        // The project venv (detected setup makes it with uv, which installs no pip into it):
        // uv checks it; elsewhere pip checks the interpreter's packages.
        "if [ -n \"$VIRTUAL_ENV\" ] && command -v uv >/dev/null; then uv pip check; else python3 -m pip check; fi",
    ),
    (&["go.mod", "go.sum"], "go mod verify"),
];

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The resolver commands for the manifests `changes` touches, in a stable order.
pub fn resolver_commands(changes: &[FileChange]) -> Vec<&'static str> {
    RESOLVERS
        .iter()
        .filter(|(files, _)| changes.iter().any(|c| files.contains(&file_name(&c.path))))
        .map(|(_, cmd)| *cmd)
        .collect()
}

/// The `dependencies` gate: `None` when no manifest changed.
pub async fn dependencies(
    session: &dyn Session,
    changes: &[FileChange],
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<Option<Gate>, SandboxError> {
    let commands = resolver_commands(changes);
    if commands.is_empty() {
        return Ok(None);
    }
    let mut passed = Vec::new();
    let mut unavailable = Vec::new();
    for cmd in commands {
        let out = session.exec(cmd, timeout, cancel).await?;
        if out.success() {
            passed.push(cmd);
        } else if (out.exit_code == Some(COMMAND_NOT_FOUND)
            && super::checks::not_found(cmd, &out.output))
            || out.output.contains("No module named pip")
        {
            unavailable.push(cmd);
        } else {
            let tail: String = out
                .output
                .lines()
                .rev()
                .take(3)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join(" ⏎ ");
            return Ok(Some(Gate::new(
                GateName::Dependencies,
                GateStatus::Fail,
                format!(
                    "`{cmd}` failed: {}",
                    crate::task::truncate_chars(&tail, 300)
                ),
            )));
        }
    }
    Ok(Some(if unavailable.is_empty() {
        Gate::new(
            GateName::Dependencies,
            GateStatus::Pass,
            format!("{} resolved", passed.join(", ")),
        )
    } else {
        Gate::new(
            GateName::Dependencies,
            GateStatus::Warn,
            format!(
                "could not check: {} (tool not in the sandbox image)",
                unavailable.join(", ")
            ),
        )
    }))
}

/// The last percentage (`NN%` or `NN.N%`) a coverage command printed.
pub fn parse_percent(output: &str) -> Option<f64> {
    let re = regex::Regex::new(r"(\d{1,3}(?:\.\d+)?)\s*%").ok()?;
    re.captures_iter(output)
        .filter_map(|c| c[1].parse::<f64>().ok())
        .filter(|p| *p <= 100.0)
        .last()
}

/// Runs the coverage command; the percentage, or why there is none.
pub async fn coverage_percent(
    session: &dyn Session,
    command: &str,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<Result<f64, String>, SandboxError> {
    let out = session.exec(command, timeout, cancel).await?;
    if !out.success() {
        return Ok(Err(format!(
            "`{command}` failed (exit {})",
            out.exit_code.unwrap_or(-1)
        )));
    }
    Ok(parse_percent(&out.output).ok_or_else(|| format!("`{command}` printed no percentage")))
}

/// The `coverage` gate from a before and after measurement: a drop warns (a person decides).
pub fn coverage_gate(before: Result<f64, String>, after: Result<f64, String>) -> Gate {
    match (before, after) {
        (Ok(b), Ok(a)) if a + 0.005 < b => Gate::new(
            GateName::Coverage,
            GateStatus::Warn,
            format!("coverage dropped from {b:.2}% to {a:.2}%"),
        ),
        (Ok(b), Ok(a)) => Gate::new(
            GateName::Coverage,
            GateStatus::Pass,
            format!("coverage {b:.2}% → {a:.2}%"),
        ),
        (Err(e), _) | (_, Err(e)) => Gate::new(
            GateName::Coverage,
            GateStatus::Warn,
            format!("coverage could not be measured: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_pick_their_resolver() {
        let ch = |p: &str| FileChange::modified(p, 1, 1);
        assert_eq!(
            resolver_commands(&[ch("sub/Cargo.lock")]),
            vec![RESOLVERS[0].1]
        );
        assert_eq!(
            resolver_commands(&[ch("requirements.txt"), ch("go.sum")]),
            vec![RESOLVERS[2].1, RESOLVERS[3].1]
        );
        assert!(resolver_commands(&[ch("src/main.rs")]).is_empty());
    }

    #[test]
    fn coverage_reads_the_last_percentage_and_warns_on_a_drop() {
        assert_eq!(
            parse_percent("a.py 50%\nTOTAL   120   30   75.5%\n"),
            Some(75.5)
        );
        assert_eq!(parse_percent("no numbers"), None);
        assert_eq!(coverage_gate(Ok(80.0), Ok(79.0)).status, GateStatus::Warn);
        assert_eq!(coverage_gate(Ok(80.0), Ok(80.0)).status, GateStatus::Pass);
        assert_eq!(
            coverage_gate(Err("x".into()), Ok(80.0)).status,
            GateStatus::Warn
        );
    }
}
