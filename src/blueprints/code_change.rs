//! The `code_change` blueprint:
//! workspace → setup → [sandbox → (revert | prefetch → implement) → checks ⇄ fix (≤ 2) →
//! commit → sandbox_gates → gates → publish] → ci ⇄ (the same pass with ci_fix, ≤ 2) →
//! merge.
//!
//! Deterministic nodes do everything that needs no judgement. The agent gets the repo in an
//! offline sandbox with the prefetched tools and a budget. Nothing the agent does decides
//! what is pushed: the gates do.

use crate::nodes::fix::{MAX_CI_ROUNDS, MAX_FIX_ROUNDS};
use crate::nodes::{
    Checks, Ci, CiFix, Commit, Fix, Gates, Implement, Merge, Prefetch, Publish, Revert, Sandbox,
    SandboxGates, Setup, Workspace,
};
use crate::run::{Blueprint, Node, RunCtx, Step};
use crate::task::BlueprintId;

/// The steps of `code_change`.
pub fn blueprint() -> Blueprint {
    let mut steps = vec![Step::node(Workspace), Step::node(Setup)];
    // The first pass implements (or reverts); each CI round fixes what CI reported.
    steps.extend(pass(Implement));
    steps.push(Step::Rounds {
        check: vec![Step::node(Ci)],
        fix: pass(CiFix),
        again: |cx| cx.ci_failures.is_some(),
        rounds: |cx| &mut cx.ci_rounds,
        max: MAX_CI_ROUNDS,
    });
    steps.push(Step::node(Merge));
    Blueprint {
        id: BlueprintId::CodeChange,
        steps,
    }
}

/// One pass in a fresh offline sandbox, with `agent` as its first agent node.
fn pass(agent: impl Node + 'static) -> Vec<Step> {
    vec![
        Step::node(Sandbox),
        Step::node(Revert),
        Step::node(Prefetch),
        Step::node(agent),
        Step::Rounds {
            check: vec![Step::node(Checks)],
            fix: vec![Step::node(Fix)],
            again: needs_fix,
            rounds: |cx| &mut cx.fix_rounds,
            max: MAX_FIX_ROUNDS,
        },
        Step::node(Commit),
        Step::node(SandboxGates),
        Step::node(Gates),
        Step::node(Publish),
    ]
}

/// The agent finished but a check failed (a revert gets no agent rounds).
fn needs_fix(cx: &RunCtx<'_>) -> bool {
    cx.task.revert_of.is_none() && cx.checks_failed_after_finish()
}
