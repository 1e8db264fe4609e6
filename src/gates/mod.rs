//! Gates and the decision. The model does not decide what merges; this module does, from
//! evidence: the checks' results, the diff, the agent's ending and the policy.
//!
//! [`evaluate`] turns evidence into [`Gate`]s; [`decide`] is the one function that turns
//! classification, gates and policy into a [`Decision`](crate::report::Decision) with
//! reasons. It fails closed: a failed gate halts; anything not proven fine needs approval.
//!
//! This file holds the [`Evidence`] type and the decision tests over both functions;
//! `evaluate` builds the gates and `decide` makes the decision. The submodules own the
//! pieces: `checks` (the repo's commands), `classify`, `policy`, `secrets`, `sandboxed`
//! (gates computed in the sandbox), `render` (the gate report as text). Nothing here runs
//! the agent, touches the forge or changes the work tree: it judges what it is handed.

pub mod checks;
pub mod classify;
pub mod deps;
pub mod policy;
pub mod render;
pub mod sandboxed;
pub mod secrets;

mod decide;
mod evaluate;

use crate::agent::AgentEnd;
use crate::report::Gate;
use crate::workspace::FileChange;
use checks::{CheckCommand, CheckResult};
use policy::EffectivePolicy;
use secrets::Finding;

pub use self::decide::decide;
pub use self::evaluate::evaluate;

/// Everything the gates look at.
pub struct Evidence<'a> {
    /// Results of the last check round.
    pub checks: &'a [CheckResult],
    /// The commands that were configured or detected (a kind without one is skipped).
    pub commands: &'a [CheckCommand],
    pub changes: &'a [FileChange],
    /// How the agent ended; `None` when no agent ran (a dependency bump that passed its
    /// checks): the `agent` gate is skipped then.
    pub agent_end: Option<&'a AgentEnd>,
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
    /// Files changed only by slipway's own deterministic code (a dependency bump made by
    /// the ecosystem's tool), untouched by the agent: not counted as check-defining changes.
    pub deterministic: &'a [String],
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::checks::{CheckKind, CheckStatus};
    use crate::gates::policy::PolicyConfig;
    use crate::report::Classification as C;
    use crate::report::{Decision, GateName, GateStatus};

    fn change(path: &str, added: usize, deleted: usize) -> FileChange {
        FileChange::modified(path, added, deleted)
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
                agent_end: Some(&c.end),
                deterministic: &[],
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
            agent_end: Some(&finished()),
            deterministic: &[],
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

    /// The gates of a finished run with passing tests that changed `changes`.
    fn gates_of(changes: &[FileChange], p: &EffectivePolicy) -> Vec<Gate> {
        evaluate(&Evidence {
            checks: &passing_tests(),
            commands: &[],
            changes,
            agent_end: Some(&finished()),
            deterministic: &[],
            fix_rounds: 0,
            policy: p,
            secrets: &[],
            added_lines: changes.iter().map(|c| c.added).sum(),
            committed: true,
            dependencies: None,
            coverage: None,
            ci: None,
        })
    }

    #[test]
    fn a_change_to_what_defines_the_checks_always_needs_approval() {
        let p = policy::effective(&with_auto(&["tests", "docs"]), None);
        for path in [
            "tests/conftest.py",
            "package.json",
            "Makefile",
            ".cargo/config.toml",
        ] {
            let (d, reasons) = decide(C::Tests, &gates_of(&[change(path, 3, 0)], &p), &p);
            assert_eq!(d, Decision::NeedsApproval, "{path}: {reasons:?}");
            assert!(
                reasons
                    .iter()
                    .any(|r| r.contains("define the checks") && r.contains(path)),
                "{path}: {reasons:?}"
            );
        }
        // An ordinary test file is still auto-mergeable when policy says so.
        let gates = gates_of(&[change("tests/test_calc.py", 3, 0)], &p);
        assert_eq!(decide(C::Tests, &gates, &p).0, Decision::AutoMerge);
    }

    #[test]
    fn red_or_pending_ci_blocks_auto_merge() {
        let p = policy::effective(&with_auto(&["docs"]), None);
        let mut gates = vec![
            Gate::new(GateName::Tests, GateStatus::Pass, "ok"),
            Gate::new(GateName::Ci, GateStatus::Fail, "build failed"),
        ];
        assert_eq!(decide(C::Docs, &gates, &p).0, Decision::Halt);
        gates[1].status = GateStatus::Warn;
        assert_eq!(decide(C::Docs, &gates, &p).0, Decision::NeedsApproval);
        gates[1].status = GateStatus::Pass;
        assert_eq!(decide(C::Docs, &gates, &p).0, Decision::AutoMerge);
    }
}
