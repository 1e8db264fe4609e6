//! The gates for a run: each piece of [`Evidence`] turned into a [`Gate`] with its status
//! and a line of evidence, in report order.
//!
//! Owns what every gate says; it must not decide (see `decide`).

use globset::{Glob, GlobSetBuilder};

use super::Evidence;
use super::checks::{CheckKind, CheckStatus};
use crate::agent::AgentEnd;
use crate::report::{Gate, GateName, GateStatus};
use crate::workspace::FileChange;

fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("[exit code"))
        .map(|l| crate::task::truncate_chars(l, 200))
        .unwrap_or_default()
}

/// The gates for `ev`, in report order: agent, format, lint, tests, diff, scope,
/// forbidden_paths, secrets, dependencies, coverage, ci, policy.
pub fn evaluate(ev: &Evidence<'_>) -> Vec<Gate> {
    let mut gates = Vec::new();
    gates.push(match ev.agent_end {
        None => Gate::new(
            GateName::Agent,
            GateStatus::Skip,
            "no agent ran: the change passed its checks without one",
        ),
        Some(AgentEnd::Finished { .. }) => {
            Gate::new(GateName::Agent, GateStatus::Pass, "the agent finished")
        }
        Some(AgentEnd::Budget { kind }) => Gate::new(
            GateName::Agent,
            GateStatus::Fail,
            format!("the agent stopped: {kind:?} budget exhausted").to_lowercase(),
        ),
        Some(AgentEnd::Stopped { .. }) => Gate::new(
            GateName::Agent,
            GateStatus::Fail,
            "the agent stopped without calling finish",
        ),
        Some(AgentEnd::PolicyViolation { reason }) => {
            Gate::new(GateName::Agent, GateStatus::Fail, reason.clone())
        }
        Some(AgentEnd::OverBudget { reading }) => {
            Gate::new(GateName::Agent, GateStatus::Fail, reading.to_string())
        }
    });
    for kind in [CheckKind::Format, CheckKind::Lint, CheckKind::Tests] {
        gates.push(check_gate(ev, kind));
    }
    let files = ev.changes.len();
    let lines: usize = ev.changes.iter().map(|c| c.added + c.deleted).sum();
    let added: usize = ev.changes.iter().map(|c| c.added).sum();
    let deleted: usize = ev.changes.iter().map(|c| c.deleted).sum();
    gates.push(if files == 0 {
        Gate::new(GateName::Diff, GateStatus::Fail, "the agent made no change")
    } else if !ev.committed {
        Gate::new(
            GateName::Diff,
            GateStatus::Fail,
            "this revision made no change (the branch holds only earlier revisions' work)",
        )
    } else {
        Gate::new(
            GateName::Diff,
            GateStatus::Pass,
            format!("{files} file(s), +{added} −{deleted}"),
        )
    });
    let mut scope = Vec::new();
    if files > ev.policy.max_files {
        scope.push(format!(
            "{files} files changed, over max_files {}",
            ev.policy.max_files
        ));
    }
    if lines > ev.policy.max_lines {
        scope.push(format!(
            "{lines} lines changed, over max_lines {}",
            ev.policy.max_lines
        ));
    }
    // The check commands are fixed before the agent runs, but what they run is not: a change
    // to a file that defines the checks (a conftest.py, a package.json script, a Makefile
    // target) could make the tests gate pass on its own. Such a change always needs approval.
    let mut defining = matching(&check_defining_globs(), ev.changes);
    defining.retain(|p| !ev.deterministic.iter().any(|d| d == p));
    if !defining.is_empty() {
        scope.push(format!(
            "changes file(s) that define the checks or the environment (the checks ran them as changed; setup runs them with network once merged): {}",
            defining.join(", ")
        ));
    }
    let review = matching(&ev.policy.review_paths, ev.changes);
    if !review.is_empty() {
        scope.push(format!(
            "touches review-required path(s): {}",
            review.join(", ")
        ));
    }
    gates.push(if scope.is_empty() {
        Gate::new(
            GateName::Scope,
            GateStatus::Pass,
            format!(
                "{files}/{} files, {lines}/{} lines",
                ev.policy.max_files, ev.policy.max_lines
            ),
        )
    } else {
        Gate::new(GateName::Scope, GateStatus::Warn, scope.join("; "))
    });
    let forbidden = matching(&ev.policy.forbidden_paths, ev.changes);
    gates.push(if forbidden.is_empty() {
        Gate::new(
            GateName::ForbiddenPaths,
            GateStatus::Pass,
            "no forbidden path touched",
        )
    } else {
        Gate::new(
            GateName::ForbiddenPaths,
            GateStatus::Fail,
            format!("forbidden path(s) changed: {}", forbidden.join(", ")),
        )
    });
    gates.push(if ev.secrets.is_empty() {
        Gate::new(
            GateName::Secrets,
            GateStatus::Pass,
            format!("no credentials in {} added line(s)", ev.added_lines),
        )
    } else {
        let list: Vec<String> = ev
            .secrets
            .iter()
            .take(10)
            .map(|f| format!("{} at {}:{} ({})", f.rule, f.path, f.line, f.redacted))
            .collect();
        Gate::new(
            GateName::Secrets,
            GateStatus::Fail,
            format!(
                "{} credential(s) added: {}",
                ev.secrets.len(),
                list.join("; ")
            ),
        )
    });
    gates.push(ev.dependencies.clone().unwrap_or_else(|| {
        Gate::new(
            GateName::Dependencies,
            GateStatus::Skip,
            "no manifest or lockfile changed",
        )
    }));
    gates.push(ev.coverage.clone().unwrap_or_else(|| {
        Gate::new(
            GateName::Coverage,
            GateStatus::Skip,
            "no coverage command in .slipway/policy.toml [checks]",
        )
    }));
    gates.push(
        ev.ci
            .clone()
            .unwrap_or_else(|| Gate::new(GateName::Ci, GateStatus::Skip, "the forge has no CI")),
    );
    gates.push(Gate::new(
        GateName::Policy,
        GateStatus::Pass,
        if ev.policy.notes.is_empty() {
            "server policy".to_string()
        } else {
            ev.policy.notes.join("; ")
        },
    ));
    gates
}

fn check_gate(ev: &Evidence<'_>, kind: CheckKind) -> Gate {
    let name = kind.gate_name();
    match ev.checks.iter().find(|r| r.check.kind == kind) {
        Some(r) => match r.status {
            CheckStatus::Pass => Gate::new(
                name,
                GateStatus::Pass,
                format!("`{}` passed", r.check.command),
            ),
            CheckStatus::Fail => {
                let after = if ev.fix_rounds > 0 {
                    format!(" after {} fix round(s)", ev.fix_rounds)
                } else {
                    String::new()
                };
                let why = if r.timed_out {
                    "timed out".to_string()
                } else {
                    format!("exit {}", r.exit_code.unwrap_or(-1))
                };
                Gate::new(
                    name,
                    GateStatus::Fail,
                    format!(
                        "`{}` failed{after} ({why}): {}",
                        r.check.command,
                        last_line(&r.output)
                    ),
                )
            }
            CheckStatus::Unavailable => Gate::new(
                name,
                GateStatus::Warn,
                format!(
                    "`{}` could not run: command not found in the sandbox; add it to the image or .slipway/setup.sh",
                    r.check.command
                ),
            ),
        },
        None if ev.commands.iter().any(|c| c.kind == kind) => {
            Gate::new(name, GateStatus::Skip, "not run")
        }
        None => Gate::new(
            name,
            GateStatus::Skip,
            format!("no {name} command in .slipway/policy.toml [checks] or detected"),
        ),
    }
}

/// Files that define what the format, lint and test commands do, in any ecosystem slipway
/// detects: test runner configuration and fixtures, task runners, build scripts, lint and
/// format configuration.
pub const CHECK_DEFINING: &[&str] = &[
    "**/conftest.py",
    "**/pytest.ini",
    "**/tox.ini",
    "**/noxfile.py",
    "**/setup.cfg",
    "**/pyproject.toml",
    "**/package.json",
    "**/Makefile",
    "**/GNUmakefile",
    "**/makefile",
    "**/justfile",
    "**/.cargo/config",
    "**/.cargo/config.toml",
    "**/build.rs",
    "**/Cargo.toml",
    "**/jest.config.*",
    "**/vitest.config.*",
    "**/.mocharc*",
    "**/karma.conf.*",
    "**/.eslintrc*",
    "**/eslint.config.*",
    "**/.prettierrc*",
    "**/ruff.toml",
    "**/.ruff.toml",
    "**/.flake8",
    "**/mypy.ini",
    "**/rustfmt.toml",
    "**/.rustfmt.toml",
    "**/clippy.toml",
    "**/.golangci.yml",
    "**/.golangci.yaml",
    // What defines the environment: once merged, it runs in setup with network.
    ".devcontainer/**",
    ".devcontainer.json",
    "**/Dockerfile",
    // Manifests and lockfiles are the `dependencies` gate's (a lockfile-only bump may be
    // auto-merged by policy), not listed here.
];

fn check_defining_globs() -> Vec<String> {
    CHECK_DEFINING.iter().map(|g| g.to_string()).collect()
}

/// Paths of `changes` matching any of `globs` (invalid globs were refused at load).
fn matching<'c>(globs: &[String], changes: &'c [FileChange]) -> Vec<&'c str> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        if let Ok(g) = Glob::new(g) {
            b.add(g);
        }
    }
    let Ok(set) = b.build() else {
        return Vec::new();
    };
    changes
        .iter()
        .map(|c| c.path.as_str())
        .filter(|p| set.is_match(p))
        .collect()
}
