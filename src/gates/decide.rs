//! The decision: classification, gates and policy in, `auto_merge`, `needs_approval` or
//! `halt` out, with every reason.
//!
//! Owns [`decide`], the one place that turns gates into a decision; it must not compute gates.

use super::policy::EffectivePolicy;
use crate::report::{Classification, Decision, Gate, GateStatus};

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
        match gates.iter().find(|g| g.name == required.as_str()) {
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
    // A repo with no test command is said first: nothing tested this change.
    if let Some(t) = gates
        .iter()
        .find(|g| g.name == "tests" && g.status == GateStatus::Skip)
    {
        reasons.insert(0, format!("untested: {}", t.detail));
    }
    reasons.append(&mut notes);
    (decision, reasons)
}
