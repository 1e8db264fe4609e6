//! The `dependency_update` blueprint:
//! workspace → lookup → bump → setup → [sandbox → checks ⇄ (prefetch → fix, ≤ 2) → commit →
//! sandbox_gates → gates → publish] → ci ⇄ (the same pass with ci_fix, ≤ 2) → merge.
//!
//! Deterministic first: the lookup finds the group's updates, the ecosystems' own tools
//! apply them (network, no secrets, over the base commit) and the bump is committed on its
//! own. The agent runs only when the bumped versions break the checks, with the failing
//! output and the packages' release notes, inside the usual walls.

use crate::nodes::fix::{MAX_CI_ROUNDS, MAX_FIX_ROUNDS};
use crate::nodes::{
    Bump, Checks, Ci, CiFix, Commit, DepsFix, Gates, Lookup, Merge, Prefetch, PrefetchForFix,
    Publish, Sandbox, SandboxGates, Setup, Workspace,
};
use crate::run::{Blueprint, RunCtx, Step};
use crate::task::BlueprintId;

/// The steps of `dependency_update`.
pub fn blueprint() -> Blueprint {
    let mut steps = vec![
        Step::node(Workspace),
        Step::node(Lookup),
        Step::node(Bump),
        Step::node(Setup),
        Step::node(Sandbox),
        Step::Rounds {
            check: vec![Step::node(Checks)],
            fix: vec![Step::node(PrefetchForFix), Step::node(DepsFix)],
            again: needs_fix,
            rounds: |cx| &mut cx.fix_rounds,
            max: MAX_FIX_ROUNDS,
        },
    ];
    steps.extend(tail());
    steps.push(Step::Rounds {
        check: vec![Step::node(Ci)],
        fix: ci_pass(),
        again: |cx| cx.ci_failures.is_some(),
        rounds: |cx| &mut cx.ci_rounds,
        max: MAX_CI_ROUNDS,
    });
    steps.push(Step::node(Merge));
    Blueprint {
        id: BlueprintId::DependencyUpdate,
        steps,
    }
}

/// Commit → sandbox gates → gates → publish.
fn tail() -> Vec<Step> {
    vec![
        Step::node(Commit),
        Step::node(SandboxGates),
        Step::node(Gates),
        Step::node(Publish),
    ]
}

/// A CI fix pass: a fresh sandbox, the tools, the CI fix round, checks ⇄ fix, then the tail.
fn ci_pass() -> Vec<Step> {
    let mut v = vec![
        Step::node(Sandbox),
        Step::node(Prefetch),
        Step::node(CiFix),
        Step::Rounds {
            check: vec![Step::node(Checks)],
            fix: vec![Step::node(DepsFix)],
            again: needs_fix,
            rounds: |cx| &mut cx.fix_rounds,
            max: MAX_FIX_ROUNDS,
        },
    ];
    v.extend(tail());
    v
}

/// A check failed, and the agent (if it ran) finished: the shape that asks for a fix round.
fn needs_fix(cx: &RunCtx<'_>) -> bool {
    use crate::gates::checks::CheckStatus;
    let failed = cx.results.iter().any(|r| r.status == CheckStatus::Fail);
    failed
        && match &cx.end {
            None => true,
            Some(end) => matches!(end, crate::agent::AgentEnd::Finished { .. }),
        }
}
