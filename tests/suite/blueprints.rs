//! Blueprints are data: `checks_only` (a shipped blueprint of four steps) and a blueprint
//! with a node of its own, both written outside the run lifecycle and run end to end on the
//! real sandbox, git and store.

use async_trait::async_trait;
use slipway::agent::llm::settings::LlmProvider;
use slipway::blueprints;
use slipway::nodes::{Checks, Sandbox, Setup, Workspace};
use slipway::report::{Decision, GateStatus};
use slipway::run::{Blueprint, FlowError, Node, NodeName, Outcome, RunCtx, Step};
use slipway::sandbox::Backend;
use slipway::task::{BlueprintId, TaskState};
use tokio_util::sync::CancellationToken;

use crate::support::{Harness, sh};

fn node_names(h: &Harness, run_id: &str) -> Vec<String> {
    let run = h.runner.store.get_run(run_id).unwrap().unwrap();
    run.nodes.into_iter().map(|n| n.node).collect()
}

async fn checks_only_on(backend: Backend) {
    let h = Harness::new(backend, LlmProvider::Openai, vec![]).await;
    let mut task = h.task("do the tests pass?");
    let report = h
        .runner
        .run(&mut task, "checks_only", CancellationToken::new(), None)
        .await
        .unwrap();
    // The sample repo's add() subtracts: its own tests fail, and nothing is published.
    assert_eq!(report.blueprint, "checks_only");
    let tests = report.gates.iter().find(|g| g.name == "tests").unwrap();
    assert_eq!(tests.status, GateStatus::Fail, "{report:?}");
    assert_eq!(report.decision, Decision::Halt);
    assert_eq!(report.agent.steps, 0);
    assert!(h.fake.requests().is_empty(), "no model call in checks_only");
    assert_eq!(
        node_names(&h, &report.run_id),
        ["workspace", "sandbox", "checks"]
    );
    let stored = h.runner.store.get_task(&task.id).unwrap().unwrap();
    assert_eq!(stored.blueprint, BlueprintId::ChecksOnly);
    assert_eq!(stored.state, TaskState::Halted);
    assert!(h.leftovers().is_empty(), "{:?}", h.leftovers());

    // Fixed upstream, the same blueprint passes and still publishes nothing.
    sh(
        &h.repo_path(),
        "sed -i 's/a - b/a + b/' calc.py && git commit -qam fix",
    );
    let mut task = h.task("and now?");
    let report = h
        .runner
        .run(&mut task, "checks_only", CancellationToken::new(), None)
        .await
        .unwrap();
    let tests = report.gates.iter().find(|g| g.name == "tests").unwrap();
    assert_eq!(tests.status, GateStatus::Pass, "{report:?}");
    assert_eq!(report.decision, Decision::NeedsApproval);
    assert_eq!(report.commit, None);
    let branches = sh(&h.repo_path(), "git branch --list 'slipway/*'");
    assert!(branches.trim().is_empty(), "nothing is pushed: {branches}");
}

#[tokio::test]
async fn checks_only_runs_the_repos_checks_without_an_agent_bwrap() {
    checks_only_on(Backend::Bwrap).await;
}

#[tokio::test]
async fn checks_only_runs_the_repos_checks_without_an_agent_docker() {
    checks_only_on(Backend::Docker).await;
}

/// A node written outside the crate: counts the files of the work tree.
struct CountFiles;

#[async_trait]
impl Node for CountFiles {
    fn name(&self) -> NodeName {
        NodeName::Prefetch
    }

    async fn run(&self, cx: &mut RunCtx<'_>) -> Result<Outcome, FlowError> {
        let n = std::fs::read_dir(&cx.wt()?.path)
            .map(|d| d.count())
            .unwrap_or(0);
        Ok(Outcome::ok(format!("{n} entries")))
    }
}

#[tokio::test]
async fn a_blueprint_is_a_list_of_steps_and_may_bring_its_own_node() {
    let h = Harness::new(Backend::Bwrap, LlmProvider::Openai, vec![]).await;
    let blueprint = Blueprint {
        id: BlueprintId::ChecksOnly,
        steps: vec![
            Step::node(Workspace),
            Step::node(CountFiles),
            Step::node(Setup),
            Step::node(Sandbox),
            Step::node(Checks),
        ],
    };
    let mut task = h.task("count, then check");
    let report = h
        .runner
        .run_blueprint(&mut task, &blueprint, CancellationToken::new(), None)
        .await
        .unwrap();
    let run = h.runner.store.get_run(&report.run_id).unwrap().unwrap();
    let counted = run.nodes.iter().find(|n| n.node == "prefetch").unwrap();
    // calc.py, test_calc.py and AGENTS.md: the git dir lives outside the work tree.
    assert_eq!(counted.detail, "3 entries");
    assert_eq!(
        node_names(&h, &report.run_id),
        ["workspace", "prefetch", "sandbox", "checks"]
    );
    // The shipped blueprint has exactly the steps its file lists.
    assert_eq!(blueprints::get(BlueprintId::ChecksOnly).steps.len(), 4);
}

#[tokio::test]
async fn a_run_cancelled_before_it_starts_is_stored_as_cancelled_with_no_failed_node() {
    let h = Harness::new(Backend::Bwrap, LlmProvider::Openai, vec![]).await;
    let mut task = h.task("cancelled at once");
    let cancel = CancellationToken::new();
    cancel.cancel();
    let report = h
        .runner
        .run(&mut task, "code_change", cancel, None)
        .await
        .unwrap();
    // The work tree is made, the run recorded, and the first node after it ends the run.
    assert_eq!(report.decision, Decision::Halt);
    assert_eq!(report.reasons, ["run failed: the run was cancelled"]);
    let stored = h.runner.store.get_task(&task.id).unwrap().unwrap();
    assert_eq!(stored.state, TaskState::Cancelled);
    let run = h.runner.store.get_run(&report.run_id).unwrap().unwrap();
    assert_eq!(run.state, slipway::store::RunState::Cancelled);
    assert_eq!(node_names(&h, &report.run_id), ["workspace"]);
    assert!(h.fake.requests().is_empty());
    assert!(h.leftovers().is_empty(), "{:?}", h.leftovers());
}
