//! How a `dependency_update` change is classified and decided, on top of
//! [`decide`](super::decide):
//! - a bump alone (manifests and lockfiles) is `dependency_update`; once the agent edits
//!   code, its part is classified too and the riskier class decides ([`riskier`]);
//! - `renovate.json` can only tighten: `automerge: false` removes the auto-merge the server
//!   policy allows, while `automerge: true` cannot add one the policy does not list (a repo
//!   file never loosens server policy, as with `.slipway/policy.toml`);
//! - a major update always needs an approval, whatever the policy says;
//! - a halt names the packages and versions that still fail.

use super::decide::decide;
use super::policy::EffectivePolicy;
use crate::report::{Classification, Decision, Gate, GateStatus};

/// What the decision needs to know of the group.
#[derive(Debug, Clone, Default)]
pub struct GroupFacts {
    /// `name from → to` of every update (for reasons).
    pub named: String,
    /// The majors, `name from → to` each (empty: none).
    pub majors: Vec<String>,
    /// What `renovate.json` says of auto-merge for the group.
    pub automerge: Option<bool>,
    /// Fix rounds the agent spent.
    pub fix_rounds: u32,
    /// The class of what the agent changed after the bump, when it changed anything: its
    /// change auto-merges only when `[policy] auto_merge` lists that class too (an agent
    /// that skips a test to make a bump pass never merges as a mere `dependency_update`).
    pub agent_class: Option<Classification>,
}

/// Risk rank of a class: higher is riskier (the order of `classify`'s checks).
pub fn risk(c: Classification) -> u8 {
    match c {
        Classification::Formatting => 0,
        Classification::Docs => 1,
        Classification::Tests => 2,
        Classification::DependencyUpdate => 3,
        Classification::Config => 4,
        Classification::Refactor => 5,
        Classification::Feature => 6,
        Classification::Infra => 7,
        Classification::Migration => 8,
        Classification::Security => 9,
    }
}

/// The riskier of two classes.
pub fn riskier(a: Classification, b: Classification) -> Classification {
    if risk(b) > risk(a) { b } else { a }
}

/// The decision and reasons for a dependency group's change classified `class`.
pub fn decide_update(
    class: Classification,
    gates: &[Gate],
    policy: &EffectivePolicy,
    facts: &GroupFacts,
) -> (Decision, Vec<String>) {
    let mut policy = policy.clone();
    let listed = policy
        .auto_merge
        .contains(&Classification::DependencyUpdate);
    if facts.automerge == Some(false) && listed {
        policy
            .auto_merge
            .retain(|c| *c != Classification::DependencyUpdate);
    }
    let (mut decision, mut reasons) = decide(class, gates, &policy);
    match decision {
        Decision::Halt => {
            let failing = gates.iter().any(|g| {
                g.status == GateStatus::Fail
                    && matches!(g.name.as_str(), "tests" | "lint" | "format")
            });
            if failing {
                reasons.insert(
                    0,
                    format!(
                        "the checks still fail with {} after {} fix round(s)",
                        facts.named, facts.fix_rounds
                    ),
                );
            }
        }
        _ if !facts.majors.is_empty() => {
            if decision == Decision::AutoMerge {
                decision = Decision::NeedsApproval;
                reasons.retain(|r| !r.contains("[policy] auto_merge"));
            }
            reasons.push(format!(
                "a major update needs an approval: {}",
                facts.majors.join(", ")
            ));
        }
        _ => {}
    }
    if let Some(c) = facts.agent_class
        && decision == Decision::AutoMerge
        && !policy.auto_merge.contains(&c)
    {
        decision = Decision::NeedsApproval;
        reasons.retain(|r| !r.contains("[policy] auto_merge"));
        reasons.push(format!(
            "the agent changed code after the bump ({}), and [policy] auto_merge does not list {}",
            c.as_str(),
            c.as_str()
        ));
    }
    if facts.automerge == Some(false) && listed {
        reasons.push("renovate.json sets automerge: false for this group".into());
    }
    if facts.automerge == Some(true) && !listed && decision == Decision::NeedsApproval {
        reasons.push(
            "renovate.json asks for automerge, but [policy] auto_merge does not list dependency_update (a repo file never loosens server policy)"
                .into(),
        );
    }
    (decision, reasons)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::policy::{PolicyConfig, effective};
    use crate::report::GateName;

    fn policy(auto: &[&str]) -> EffectivePolicy {
        effective(
            &PolicyConfig {
                auto_merge: auto.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
            None,
        )
    }

    fn passing() -> Vec<Gate> {
        vec![Gate::new(GateName::Tests, GateStatus::Pass, "`pytest`")]
    }

    #[test]
    fn a_patch_auto_merges_only_where_the_server_allows_and_renovate_does_not_forbid() {
        let facts = GroupFacts::default();
        let d = |auto: &[&str], f: &GroupFacts| {
            decide_update(
                Classification::DependencyUpdate,
                &passing(),
                &policy(auto),
                f,
            )
            .0
        };
        assert_eq!(d(&["dependency_update"], &facts), Decision::AutoMerge);
        assert_eq!(d(&[], &facts), Decision::NeedsApproval);
        let no = GroupFacts {
            automerge: Some(false),
            ..Default::default()
        };
        assert_eq!(d(&["dependency_update"], &no), Decision::NeedsApproval);
        let yes = GroupFacts {
            automerge: Some(true),
            ..Default::default()
        };
        let (dec, reasons) = decide_update(
            Classification::DependencyUpdate,
            &passing(),
            &policy(&[]),
            &yes,
        );
        assert_eq!(dec, Decision::NeedsApproval);
        assert!(
            reasons.iter().any(|r| r.contains("never loosens")),
            "{reasons:?}"
        );
    }

    #[test]
    fn a_major_needs_approval_and_a_halt_names_the_package() {
        let facts = GroupFacts {
            named: "toy 1.0.0 → 2.0.0".into(),
            majors: vec!["toy 1.0.0 → 2.0.0".into()],
            automerge: Some(true),
            fix_rounds: 2,
            agent_class: None,
        };
        let (dec, reasons) = decide_update(
            Classification::DependencyUpdate,
            &passing(),
            &policy(&["dependency_update"]),
            &facts,
        );
        assert_eq!(dec, Decision::NeedsApproval);
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("major update needs an approval: toy"))
        );
        let failing = vec![Gate::new(GateName::Tests, GateStatus::Fail, "`pytest`")];
        let (dec, reasons) = decide_update(
            Classification::DependencyUpdate,
            &failing,
            &policy(&["dependency_update"]),
            &facts,
        );
        assert_eq!(dec, Decision::Halt);
        assert!(
            reasons[0].contains("toy 1.0.0 → 2.0.0 after 2 fix round(s)"),
            "{reasons:?}"
        );
    }

    #[test]
    fn an_agent_edit_auto_merges_only_when_its_own_class_may() {
        let facts = GroupFacts {
            agent_class: Some(Classification::Tests),
            ..Default::default()
        };
        let (dec, reasons) = decide_update(
            Classification::DependencyUpdate,
            &passing(),
            &policy(&["dependency_update"]),
            &facts,
        );
        assert_eq!(dec, Decision::NeedsApproval);
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("the agent changed code after the bump (tests)")),
            "{reasons:?}"
        );
        let (dec, _) = decide_update(
            Classification::DependencyUpdate,
            &passing(),
            &policy(&["dependency_update", "tests"]),
            &facts,
        );
        assert_eq!(dec, Decision::AutoMerge);
    }

    #[test]
    fn the_riskier_class_decides() {
        assert_eq!(
            riskier(Classification::DependencyUpdate, Classification::Refactor),
            Classification::Refactor
        );
        assert_eq!(
            riskier(Classification::DependencyUpdate, Classification::Docs),
            Classification::DependencyUpdate
        );
    }
}
