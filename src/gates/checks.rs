//! The repo's own checks (format, lint, tests): which commands, and running them in the
//! sandbox with no network.
//!
//! Commands come from `.slipway/policy.toml` `[checks]` (read from the base commit, before
//! the agent runs, so the agent cannot loosen them) or are detected from the repo's files as
//! `DESIGN.md` §3 "Target-repo conventions" says.
//!
//! Owns choosing and running the check commands; it must not judge their results (that is
//! `evaluate`) nor give them network.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::policy::{REPO_POLICY_PATH, RepoPolicy};
use crate::report::GateName;
use crate::sandbox::{SandboxError, Session};

/// Exit status of a shell whose command was not found.
const COMMAND_NOT_FOUND: i64 = 127;

/// Which check; also the gate's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    Format,
    Lint,
    Tests,
}

impl CheckKind {
    /// The gate this check's result becomes.
    pub fn gate_name(self) -> GateName {
        match self {
            Self::Format => GateName::Format,
            Self::Lint => GateName::Lint,
            Self::Tests => GateName::Tests,
        }
    }
}

/// One command to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckCommand {
    pub kind: CheckKind,
    pub command: String,
    /// Where it came from: `.slipway/policy.toml` or `detected from <file>`.
    pub source: String,
}

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Pass,
    Fail,
    /// The command does not exist in the sandbox (exit 127): not a pass, not the agent's fault.
    Unavailable,
}

/// Result of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub check: CheckCommand,
    pub status: CheckStatus,
    pub exit_code: Option<i64>,
    pub timed_out: bool,
    /// Rendered, capped output.
    pub output: String,
    pub duration_ms: u64,
}

/// The checks for the repo at `root`: its policy's `[checks]` when it has one, else detected
/// from its files.
pub fn detect(root: &Path, repo: Option<&RepoPolicy>) -> Vec<CheckCommand> {
    if let Some(c) = repo.and_then(|r| r.checks.as_ref())
        && (c.test.is_some() || c.lint.is_some() || c.format.is_some())
    {
        let src = REPO_POLICY_PATH;
        return [
            (CheckKind::Format, &c.format),
            (CheckKind::Lint, &c.lint),
            (CheckKind::Tests, &c.test),
        ]
        .into_iter()
        .filter_map(|(kind, cmd)| {
            cmd.as_ref()
                .filter(|c| !c.trim().is_empty())
                .map(|command| CheckCommand {
                    kind,
                    command: command.clone(),
                    source: src.into(),
                })
        })
        .collect();
    }
    detect_from_files(root)
}

fn cmd(kind: CheckKind, command: &str, file: &str) -> CheckCommand {
    CheckCommand {
        kind,
        command: command.to_string(),
        source: format!("detected from {file}"),
    }
}

fn detect_from_files(root: &Path) -> Vec<CheckCommand> {
    use CheckKind::*;
    let has = |f: &str| root.join(f).is_file();
    if has("Cargo.toml") {
        return vec![
            cmd(Format, "cargo fmt --check", "Cargo.toml"),
            cmd(Lint, "cargo clippy", "Cargo.toml"),
            cmd(Tests, "cargo test", "Cargo.toml"),
        ];
    }
    if has("package.json") {
        let mut out = Vec::new();
        let scripts = std::fs::read_to_string(root.join("package.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .map(|v| v["scripts"].clone())
            .unwrap_or_default();
        if scripts["lint"].is_string() {
            out.push(cmd(Lint, "npm run lint", "package.json"));
        }
        let placeholder = scripts["test"]
            .as_str()
            .is_some_and(|s| s.contains("no test specified"));
        if scripts["test"].is_string() && !placeholder {
            out.push(cmd(Tests, "npm test", "package.json"));
        }
        return out;
    }
    // Packaging metadata (`[tool.pytest]`, `[tool.pytest.ini_options]` or none) or pytest's
    // own files: pytest, which setup puts in the venv first on PATH (`crate::env`).
    if let Some(file) = ["pyproject.toml", "setup.cfg", "pytest.ini", "conftest.py"]
        .into_iter()
        .find(|f| has(f))
    {
        return vec![cmd(Tests, "python3 -m pytest -q", file)];
    }
    if has("go.mod") {
        return vec![
            cmd(Lint, "go vet ./...", "go.mod"),
            cmd(Tests, "go test ./...", "go.mod"),
        ];
    }
    if has("Makefile") {
        let text = std::fs::read_to_string(root.join("Makefile")).unwrap_or_default();
        let mut out = Vec::new();
        if text.lines().any(|l| l.starts_with("lint:")) {
            out.push(cmd(Lint, "make lint", "Makefile"));
        }
        if text.lines().any(|l| l.starts_with("test:")) {
            out.push(cmd(Tests, "make test", "Makefile"));
        }
        if !out.is_empty() {
            return out;
        }
    }
    // Plain Python without packaging metadata: the standard library's runner.
    let has_py = std::fs::read_dir(root)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .any(|e| e.path().extension().is_some_and(|x| x == "py"))
        })
        .unwrap_or(false);
    if has_py {
        return vec![cmd(Tests, "python3 -m unittest", "*.py")];
    }
    Vec::new()
}

/// Runs every check in order (format, lint, tests), all of them even after a failure, so a
/// fix round sees everything at once.
pub async fn run_all(
    session: &dyn Session,
    checks: &[CheckCommand],
    timeout: Duration,
    output_cap: usize,
    cancel: &CancellationToken,
) -> Result<Vec<CheckResult>, SandboxError> {
    let mut out = Vec::new();
    for c in checks {
        let r = session.exec(&c.command, timeout, cancel).await?;
        let status = if r.success() {
            CheckStatus::Pass
        } else if r.exit_code == Some(COMMAND_NOT_FOUND) && not_found(&c.command, &r.output) {
            CheckStatus::Unavailable
        } else {
            CheckStatus::Fail
        };
        out.push(CheckResult {
            check: c.clone(),
            status,
            exit_code: r.exit_code,
            timed_out: r.timed_out,
            output: r.render(output_cap),
            duration_ms: r.duration_ms,
        });
    }
    Ok(out)
}

/// Whether the shell said the command's own program was not found (exit 127 alone could be
/// a test suite's own status).
pub fn not_found(command: &str, output: &str) -> bool {
    let program = command.split_whitespace().next().unwrap_or("");
    output
        .lines()
        .any(|l| l.contains(program) && (l.contains("not found") || l.contains("No such file")))
}

/// The failing checks as text for a fix round: command and output of each.
pub fn failures_text(results: &[CheckResult]) -> String {
    results
        .iter()
        .filter(|r| r.status == CheckStatus::Fail)
        .map(|r| {
            format!(
                "### {} failed: `{}`\n```text\n{}\n```\n",
                r.check.kind.gate_name(),
                r.check.command,
                r.output.trim_end()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_follows_the_contract() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        let detect = |p: &Path| detect(p, RepoPolicy::load(p).unwrap().as_ref());
        assert!(detect(p).is_empty());
        std::fs::write(p.join("calc.py"), "").unwrap();
        assert_eq!(detect(p)[0].command, "python3 -m unittest");
        std::fs::write(p.join("pyproject.toml"), "").unwrap();
        assert_eq!(detect(p)[0].command, "python3 -m pytest -q");
        std::fs::write(p.join("package.json"), r#"{"scripts":{"test":"echo \"Error: no test specified\" && exit 1","lint":"eslint ."}}"#).unwrap();
        let c = detect(p);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].command, "npm run lint");
        std::fs::write(p.join("Cargo.toml"), "").unwrap();
        let c = detect(p);
        assert_eq!(
            c.iter().map(|c| c.command.as_str()).collect::<Vec<_>>(),
            ["cargo fmt --check", "cargo clippy", "cargo test"]
        );
        std::fs::create_dir_all(p.join(".slipway")).unwrap();
        std::fs::write(
            p.join(".slipway/policy.toml"),
            "[checks]\ntest = \"make check\"\n",
        )
        .unwrap();
        let c = detect(p);
        assert_eq!(
            c,
            vec![CheckCommand {
                kind: CheckKind::Tests,
                command: "make check".into(),
                source: ".slipway/policy.toml".into()
            }]
        );
    }

    #[test]
    fn python_projects_run_pytest_from_their_config() {
        for (file, text) in [
            ("pyproject.toml", "[tool.pytest]\nminversion = \"9.0\"\n"),
            (
                "pyproject.toml",
                "[tool.pytest.ini_options]\naddopts = \"-q\"\n",
            ),
            ("pytest.ini", "[pytest]\n"),
            ("conftest.py", ""),
        ] {
            let d = tempfile::tempdir().unwrap();
            std::fs::write(d.path().join(file), text).unwrap();
            std::fs::write(d.path().join("test_x.py"), "").unwrap();
            let c = detect(d.path(), None);
            assert_eq!(c.len(), 1);
            assert_eq!(c[0].command, "python3 -m pytest -q", "{file}");
            assert_eq!(c[0].source, format!("detected from {file}"));
        }
    }

    #[test]
    fn makefile_targets_are_found() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("Makefile"), "lint:\n\ttrue\ntest:\n\ttrue\n").unwrap();
        let c = detect(d.path(), None);
        assert_eq!(
            c.iter().map(|c| c.command.as_str()).collect::<Vec<_>>(),
            ["make lint", "make test"]
        );
    }
}
