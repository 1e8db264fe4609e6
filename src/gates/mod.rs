//! Gates and the decision. The model does not decide what merges; this module does, from
//! evidence: the checks' results, the diff, the agent's ending and the policy.
//!
//! [`evaluate`] turns evidence into [`Gate`]s; [`decide`] is the one function that turns
//! classification, gates and policy into a [`Decision`] with reasons. It fails closed: a
//! failed gate halts; anything not proven fine needs approval.

pub mod checks;
pub mod classify;
pub mod policy;
pub mod render;
pub mod sandboxed;
pub mod secrets;

use globset::{Glob, GlobSetBuilder};

use crate::agent::AgentEnd;
use crate::report::{Classification, Decision, Gate, GateStatus};
use crate::workspace::FileChange;
use checks::{CheckCommand, CheckKind, CheckResult, CheckStatus};
use policy::EffectivePolicy;
use secrets::Finding;

/// Everything the gates look at.
pub struct Evidence<'a> {
    /// Results of the last check round.
    pub checks: &'a [CheckResult],
    /// The commands that were configured or detected (a kind without one is skipped).
    pub commands: &'a [CheckCommand],
    pub changes: &'a [FileChange],
    pub agent_end: &'a AgentEnd,
    pub fix_rounds: u32,
    pub policy: &'a EffectivePolicy,
    /// Credentials found in the added lines.
    pub secrets: &'a [Finding],
    /// Lines the change adds (the secrets gate's evidence).
    pub added_lines: usize,
    /// Whether this run made a commit (a later revision with no new commit changed nothing,
    /// even though the branch differs from the base).
    pub committed: bool,
    /// Gates computed in the sandbox or by the forge; `None` means not applicable here.
    pub dependencies: Option<Gate>,
    pub coverage: Option<Gate>,
    pub ci: Option<Gate>,
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
/// forbidden_paths, secrets, dependencies, coverage, ci, policy.
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
        AgentEnd::PolicyViolation { reason } => {
            Gate::new("agent", GateStatus::Fail, reason.clone())
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
        Gate::new("diff", GateStatus::Fail, "the agent made no change")
    } else if !ev.committed {
        Gate::new(
            "diff",
            GateStatus::Fail,
            "this revision made no change (the branch holds only earlier revisions' work)",
        )
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
    let review = matching(&ev.policy.review_paths, ev.changes);
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
    gates.push(if ev.secrets.is_empty() {
        Gate::new(
            "secrets",
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
            "secrets",
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
            "dependencies",
            GateStatus::Skip,
            "no manifest or lockfile changed",
        )
    }));
    gates.push(ev.coverage.clone().unwrap_or_else(|| {
        Gate::new(
            "coverage",
            GateStatus::Skip,
            "no coverage command in .slipway/policy.toml [checks]",
        )
    }));
    gates.push(
        ev.ci
            .clone()
            .unwrap_or_else(|| Gate::new("ci", GateStatus::Skip, "the forge has no CI")),
    );
    gates.push(Gate::new(
        "policy",
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

/// The decision, with every reason behind it, in one place. Fails closed:
/// - any failed gate (including an errored check, a forbidden path, a secret, an agent that
///   broke policy) → `halt`;
/// - any warning, or a required gate that did not pass → `needs_approval`;
/// - `auto_merge` only when the class is in the policy's `auto_merge`, every required gate
///   passed and CI is not red or pending (`ci` skip means the forge has no CI);
/// - everything else → `needs_approval`.
pub fn decide(
    class: Classification,
    gates: &[Gate],
    policy: &EffectivePolicy,
) -> (Decision, Vec<String>) {
    let failed: Vec<String> = gates
        .iter()
        .filter(|g| g.status == GateStatus::Fail)
        .map(|g| format!("{} gate failed: {}", g.name, g.detail))
        .collect();
    let mut notes: Vec<String> = policy.notes.clone();
    if !failed.is_empty() {
        let mut r = failed;
        r.append(&mut notes);
        return (Decision::Halt, r);
    }
    let mut reasons: Vec<String> = gates
        .iter()
        .filter(|g| g.status == GateStatus::Warn)
        .map(|g| format!("{}: {}", g.name, g.detail))
        .collect();
    for required in &policy.required_gates {
        match gates.iter().find(|g| &g.name == required) {
            Some(g) if g.status == GateStatus::Pass => {}
            Some(g) if g.status == GateStatus::Warn => {}
            Some(g) => reasons.push(format!(
                "required gate {} did not pass ({})",
                g.name, g.detail
            )),
            None => reasons.push(format!("required gate {required} did not run")),
        }
    }
    let decision = if !reasons.is_empty() {
        Decision::NeedsApproval
    } else if policy.auto_merge.contains(&class) {
        reasons.push(format!(
            "{} is in [policy] auto_merge and every required gate passed",
            class.as_str()
        ));
        Decision::AutoMerge
    } else {
        reasons.push(format!(
            "{} changes need an approval ([policy] auto_merge does not list it)",
            class.as_str()
        ));
        Decision::NeedsApproval
    };
    reasons.append(&mut notes);
    (decision, reasons)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::policy::PolicyConfig;
    use crate::report::Classification as C;

    fn change(path: &str, added: usize, deleted: usize) -> FileChange {
        FileChange {
            path: path.into(),
            added,
            deleted,
            binary: false,
        }
    }

    fn passing_tests() -> Vec<CheckResult> {
        vec![CheckResult {
            check: CheckCommand {
                kind: CheckKind::Tests,
                command: "pytest".into(),
                source: "test".into(),
            },
            status: CheckStatus::Pass,
            exit_code: Some(0),
            timed_out: false,
            output: "ok".into(),
            duration_ms: 1,
        }]
    }

    struct Case {
        name: &'static str,
        changes: Vec<FileChange>,
        server: PolicyConfig,
        tests_pass: bool,
        secret: bool,
        end: AgentEnd,
        want_class: C,
        want: Decision,
        want_reason: &'static str,
    }

    fn finished() -> AgentEnd {
        AgentEnd::Finished {
            summary: "s".into(),
        }
    }

    fn with_auto(classes: &[&str]) -> PolicyConfig {
        PolicyConfig {
            auto_merge: classes.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        }
    }

    /// Classification × gates × policy → decision, the failure modes the field has seen.
    #[test]
    fn decisions_over_classification_gates_and_policy() {
        let forty: Vec<FileChange> = (0..40)
            .map(|i| change(&format!("src/m{i}.py"), 3, 1))
            .collect();
        let cases = vec![
            Case {
                name: "and→or under an auth path",
                changes: vec![change("src/auth/session.py", 1, 1)],
                server: with_auto(&["refactor"]),
                tests_pass: true,
                secret: false,
                end: finished(),
                want_class: C::Security,
                want: Decision::NeedsApproval,
                want_reason: "review-required",
            },
            Case {
                name: "edit to a forbidden path",
                changes: vec![change(".github/workflows/ci.yml", 1, 1)],
                server: with_auto(&["infra"]),
                tests_pass: true,
                secret: false,
                end: finished(),
                want_class: C::Infra,
                want: Decision::Halt,
                want_reason: "forbidden_paths gate failed",
            },
            Case {
                name: "an AWS key pair added",
                changes: vec![change("app/config.py", 2, 0)],
                server: with_auto(&["feature", "refactor"]),
                tests_pass: true,
                secret: true,
                end: finished(),
                want_class: C::Refactor,
                want: Decision::Halt,
                want_reason: "secrets gate failed",
            },
            Case {
                name: "lockfile-only bump, auto-merge allowed",
                changes: vec![change("Cargo.lock", 8, 8)],
                server: with_auto(&["dependency_update"]),
                tests_pass: true,
                secret: false,
                end: finished(),
                want_class: C::DependencyUpdate,
                want: Decision::AutoMerge,
                want_reason: "in [policy] auto_merge",
            },
            Case {
                name: "lockfile-only bump, auto-merge not allowed",
                changes: vec![change("Cargo.lock", 8, 8)],
                server: with_auto(&[]),
                tests_pass: true,
                secret: false,
                end: finished(),
                want_class: C::DependencyUpdate,
                want: Decision::NeedsApproval,
                want_reason: "need an approval",
            },
            Case {
                name: "docs only, auto-merge allowed",
                changes: vec![change("README.md", 3, 1)],
                server: with_auto(&["docs"]),
                tests_pass: true,
                secret: false,
                end: finished(),
                want_class: C::Docs,
                want: Decision::AutoMerge,
                want_reason: "docs is in [policy] auto_merge",
            },
            Case {
                name: "docs only but tests failing",
                changes: vec![change("README.md", 3, 1)],
                server: with_auto(&["docs"]),
                tests_pass: false,
                secret: false,
                end: finished(),
                want_class: C::Docs,
                want: Decision::Halt,
                want_reason: "tests gate failed",
            },
            Case {
                name: "a 40-file change",
                changes: forty,
                server: with_auto(&["feature", "refactor"]),
                tests_pass: true,
                secret: false,
                end: finished(),
                want_class: C::Feature,
                want: Decision::NeedsApproval,
                want_reason: "over max_files 15",
            },
            Case {
                name: "the agent edited .slipway/policy.toml",
                changes: vec![change(".slipway/policy.toml", 1, 1)],
                server: with_auto(&["config"]),
                tests_pass: true,
                secret: false,
                end: finished(),
                want_class: C::Config,
                want: Decision::Halt,
                want_reason: "forbidden path(s) changed: .slipway/policy.toml",
            },
            Case {
                name: "the agent broke policy",
                changes: vec![change("calc.py", 1, 1)],
                server: with_auto(&["refactor"]),
                tests_pass: true,
                secret: false,
                end: AgentEnd::PolicyViolation {
                    reason: "tried .slipway".into(),
                },
                want_class: C::Refactor,
                want: Decision::Halt,
                want_reason: "agent gate failed",
            },
            Case {
                name: "a migration",
                changes: vec![change("db/migrations/0003_add.py", 10, 0)],
                server: PolicyConfig {
                    forbidden_paths: vec![],
                    auto_merge: vec!["migration".into()],
                    ..Default::default()
                },
                tests_pass: true,
                secret: false,
                end: finished(),
                want_class: C::Migration,
                want: Decision::AutoMerge,
                want_reason: "migration is in",
            },
        ];
        for c in cases {
            let policy = policy::effective(&c.server, None);
            let checks = if c.tests_pass {
                passing_tests()
            } else {
                vec![CheckResult {
                    status: CheckStatus::Fail,
                    exit_code: Some(1),
                    ..passing_tests().remove(0)
                }]
            };
            let findings = if c.secret {
                secrets::Scanner::new().scan_diff("+++ b/app/config.py\n@@ -0,0 +1,2 @@\n+AWS_ACCESS_KEY_ID = 'AKIAIOSFODNN7EXAMPLQ'\n+aws_secret_access_key = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKZ'\n")
            } else {
                vec![]
            };
            if c.secret {
                assert_eq!(findings.len(), 2, "{}: both halves of the key pair", c.name);
            }
            let gates = evaluate(&Evidence {
                checks: &checks,
                commands: &[],
                changes: &c.changes,
                agent_end: &c.end,
                fix_rounds: 0,
                policy: &policy,
                secrets: &findings,
                added_lines: 2,
                committed: true,
                dependencies: None,
                coverage: None,
                ci: None,
            });
            let class = classify::classify(&c.changes, false, "").class;
            assert_eq!(class, c.want_class, "{}", c.name);
            let (d, reasons) = decide(class, &gates, &policy);
            assert_eq!(d, c.want, "{}: {reasons:?}", c.name);
            assert!(
                reasons.iter().any(|r| r.contains(c.want_reason)),
                "{}: {reasons:?}",
                c.name
            );
        }
    }

    #[test]
    fn a_repo_policy_that_loosens_is_ignored_and_reported() {
        let repo = policy::RepoPolicy {
            max_files: Some(100),
            auto_merge: Some(vec!["feature".into()]),
            ..Default::default()
        };
        let p = policy::effective(&with_auto(&["docs"]), Some(&repo));
        let changes: Vec<FileChange> = (0..20).map(|i| change(&format!("m{i}.py"), 5, 0)).collect();
        let gates = evaluate(&Evidence {
            checks: &passing_tests(),
            commands: &[],
            changes: &changes,
            agent_end: &finished(),
            fix_rounds: 0,
            policy: &p,
            secrets: &[],
            added_lines: 100,
            committed: true,
            dependencies: None,
            coverage: None,
            ci: None,
        });
        let (d, reasons) = decide(C::Feature, &gates, &p);
        assert_eq!(d, Decision::NeedsApproval);
        assert!(
            reasons.iter().any(|r| r.contains("over max_files 15")),
            "{reasons:?}"
        );
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("tried to loosen") && r.contains("max_files = 100")),
            "{reasons:?}"
        );
        let pg = gates.iter().find(|g| g.name == "policy").unwrap();
        assert!(pg.detail.contains("ignored"));
    }

    #[test]
    fn red_or_pending_ci_blocks_auto_merge() {
        let p = policy::effective(&with_auto(&["docs"]), None);
        let mut gates = vec![
            Gate::new("tests", GateStatus::Pass, "ok"),
            Gate::new("ci", GateStatus::Fail, "build failed"),
        ];
        assert_eq!(decide(C::Docs, &gates, &p).0, Decision::Halt);
        gates[1].status = GateStatus::Warn;
        assert_eq!(decide(C::Docs, &gates, &p).0, Decision::NeedsApproval);
        gates[1].status = GateStatus::Pass;
        assert_eq!(decide(C::Docs, &gates, &p).0, Decision::AutoMerge);
    }
}
