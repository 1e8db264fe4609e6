//! Gates and the decision. The model does not decide what merges; this module does, from
//! evidence: the checks' results, the diff, the agent's ending and the policy.
//!
//! [`evaluate`] turns evidence into [`Gate`]s; [`decide`] is the one function that turns
//! classification, gates and policy into a [`Decision`] with reasons. It fails closed: a
//! failed gate halts; anything not proven fine needs approval.

pub mod checks;
pub mod classify;

use globset::{Glob, GlobSetBuilder};

use crate::agent::AgentEnd;
use crate::config::PolicyConfig;
use crate::report::{Classification, Decision, Gate, GateStatus};
use crate::workspace::FileChange;
use checks::{CheckCommand, CheckKind, CheckResult, CheckStatus};

/// Everything the gates look at.
pub struct Evidence<'a> {
    /// Results of the last check round.
    pub checks: &'a [CheckResult],
    /// The commands that were configured or detected (a kind without one is skipped).
    pub commands: &'a [CheckCommand],
    pub changes: &'a [FileChange],
    pub agent_end: &'a AgentEnd,
    pub fix_rounds: u32,
    pub max_fix_rounds: u32,
    pub policy: &'a PolicyConfig,
}

fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("[exit code"))
        .map(|l| crate::task::truncate_chars(l, 200))
        .unwrap_or_default()
}

/// The gates for `ev`, in report order: agent, format, lint, tests, diff, scope,
/// forbidden_paths.
pub fn evaluate(ev: &Evidence<'_>) -> Vec<Gate> {
    let mut gates = Vec::new();
    gates.push(match ev.agent_end {
        AgentEnd::Finished { .. } => Gate::new("agent", GateStatus::Pass, "the agent finished"),
        AgentEnd::Budget { kind } => Gate::new(
            "agent",
            GateStatus::Fail,
            format!("the agent stopped: {kind:?} budget exhausted").to_lowercase(),
        ),
        AgentEnd::Stopped { .. } => Gate::new(
            "agent",
            GateStatus::Fail,
            "the agent stopped without calling finish",
        ),
    });
    for kind in [CheckKind::Format, CheckKind::Lint, CheckKind::Tests] {
        let name = kind.gate_name();
        let result = ev.checks.iter().find(|r| r.check.kind == kind);
        let gate = match result {
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
        };
        gates.push(gate);
    }
    let files = ev.changes.len();
    let lines: usize = ev.changes.iter().map(|c| c.added + c.deleted).sum();
    let added: usize = ev.changes.iter().map(|c| c.added).sum();
    let deleted: usize = ev.changes.iter().map(|c| c.deleted).sum();
    gates.push(if files == 0 {
        Gate::new("diff", GateStatus::Fail, "the agent made no change")
    } else {
        Gate::new(
            "diff",
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
    let review: Vec<&str> = matching(&ev.policy.review_paths, ev.changes);
    if !review.is_empty() {
        scope.push(format!(
            "touches review-required path(s): {}",
            review.join(", ")
        ));
    }
    gates.push(if scope.is_empty() {
        Gate::new(
            "scope",
            GateStatus::Pass,
            format!(
                "{files}/{} files, {lines}/{} lines",
                ev.policy.max_files, ev.policy.max_lines
            ),
        )
    } else {
        Gate::new("scope", GateStatus::Warn, scope.join("; "))
    });
    let forbidden = matching(&ev.policy.forbidden_paths, ev.changes);
    gates.push(if forbidden.is_empty() {
        Gate::new(
            "forbidden_paths",
            GateStatus::Pass,
            "no forbidden path touched",
        )
    } else {
        Gate::new(
            "forbidden_paths",
            GateStatus::Fail,
            format!("forbidden path(s) changed: {}", forbidden.join(", ")),
        )
    });
    gates
}

/// Paths of `changes` matching any of `globs` (invalid globs match nothing; config loading
/// validates them).
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

/// The decision, with every reason behind it. Fails closed.
pub fn decide(
    class: Classification,
    gates: &[Gate],
    policy: &PolicyConfig,
) -> (Decision, Vec<String>) {
    let failed: Vec<String> = gates
        .iter()
        .filter(|g| g.status == GateStatus::Fail)
        .map(|g| format!("{} gate failed: {}", g.name, g.detail))
        .collect();
    if !failed.is_empty() {
        return (Decision::Halt, failed);
    }
    let mut reasons: Vec<String> = gates
        .iter()
        .filter(|g| g.status == GateStatus::Warn)
        .map(|g| format!("{}: {}", g.name, g.detail))
        .collect();
    if gates
        .iter()
        .any(|g| g.name == "tests" && g.status == GateStatus::Skip)
    {
        reasons.push("no tests ran, so a person must judge the change".into());
    }
    if !reasons.is_empty() {
        return (Decision::NeedsApproval, reasons);
    }
    if policy.auto_merge.iter().any(|c| c == class.as_str()) {
        (
            Decision::AutoMerge,
            vec![format!(
                "{} is in [policy] auto_merge and every gate passed",
                class.as_str()
            )],
        )
    } else {
        (
            Decision::NeedsApproval,
            vec![format!(
                "{} changes need an approval ([policy] auto_merge does not list it)",
                class.as_str()
            )],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(path: &str) -> FileChange {
        FileChange {
            path: path.into(),
            added: 1,
            deleted: 1,
            binary: false,
        }
    }

    fn run(
        changes: &[FileChange],
        end: AgentEnd,
        policy: &PolicyConfig,
    ) -> (Vec<Gate>, Decision, Vec<String>) {
        let gates = evaluate(&Evidence {
            checks: &[],
            commands: &[],
            changes,
            agent_end: &end,
            fix_rounds: 0,
            max_fix_rounds: 2,
            policy,
        });
        let (d, r) = decide(Classification::Docs, &gates, policy);
        (gates, d, r)
    }

    #[test]
    fn an_empty_diff_halts() {
        let (_, d, r) = run(
            &[],
            AgentEnd::Finished {
                summary: "s".into(),
            },
            &PolicyConfig::default(),
        );
        assert_eq!(d, Decision::Halt);
        assert!(r[0].contains("no change"));
    }

    #[test]
    fn a_forbidden_path_halts_and_a_review_path_needs_approval() {
        let p = PolicyConfig::default();
        let (_, d, _) = run(
            &[change(".github/workflows/ci.yml")],
            AgentEnd::Finished {
                summary: "s".into(),
            },
            &p,
        );
        assert_eq!(d, Decision::Halt);
        let (_, d, r) = run(
            &[change("src/auth/x.py")],
            AgentEnd::Finished {
                summary: "s".into(),
            },
            &p,
        );
        assert_eq!(d, Decision::NeedsApproval);
        assert!(r.iter().any(|r| r.contains("review-required")));
    }

    #[test]
    fn auto_merge_needs_the_class_in_policy_and_passing_tests() {
        let p = PolicyConfig {
            auto_merge: vec!["docs".into()],
            ..Default::default()
        };
        let gates = vec![
            Gate::new("tests", GateStatus::Pass, "ok"),
            Gate::new("diff", GateStatus::Pass, "1 file"),
        ];
        assert_eq!(
            decide(Classification::Docs, &gates, &p).0,
            Decision::AutoMerge
        );
        assert_eq!(
            decide(Classification::Feature, &gates, &p).0,
            Decision::NeedsApproval
        );
        let skipped = vec![Gate::new("tests", GateStatus::Skip, "none")];
        assert_eq!(
            decide(Classification::Docs, &skipped, &p).0,
            Decision::NeedsApproval
        );
    }

    #[test]
    fn a_budget_stop_halts() {
        let (_, d, r) = run(
            &[change("a.py")],
            AgentEnd::Budget {
                kind: crate::agent::BudgetKind::Steps,
            },
            &PolicyConfig::default(),
        );
        assert_eq!(d, Decision::Halt);
        assert!(r[0].contains("steps budget"), "{r:?}");
    }
}
