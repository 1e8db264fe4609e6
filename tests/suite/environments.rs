//! Environments: what a repo's checks need must be there before the agent starts. (Open
//! issue "Environments"; this file grows with it.)

use slipway::agent::llm::settings::LlmProvider;
use slipway::report::{Decision, GateStatus};
use slipway::sandbox::Backend;
use slipway::task::TaskState;
use tokio_util::sync::CancellationToken;

use crate::support::{Harness, sh};

/// A program no sandbox image or host has (bwrap mounts the host's `/usr`, so a real
/// toolchain name would make the test depend on the machine).
const MISSING: &str = "slipway-test-no-such-toolchain";

async fn a_check_that_cannot_start_halts_before_the_agent(backend: Backend) {
    let h = Harness::new(backend, LlmProvider::Openai, vec![]).await;
    let repo = h.repo_path();
    std::fs::create_dir_all(repo.join(".slipway")).unwrap();
    let checks = format!("[checks]\ntest = \"{MISSING} test ./...\"\n");
    std::fs::write(repo.join(".slipway/policy.toml"), checks).unwrap();
    sh(
        &repo,
        "git add -A && git commit -qm 'tests need a toolchain'",
    );
    for blueprint in ["code_change", "checks_only"] {
        let mut task = h.task("make add() faster");
        let report = h
            .runner
            .run(&mut task, blueprint, CancellationToken::new(), None)
            .await
            .unwrap();
        // The declared test command's program is not in the sandbox: halt, no model call.
        assert_eq!(report.decision, Decision::Halt, "{report:#?}");
        assert!(
            report.reasons[0].contains(&format!("`{MISSING}` is not in the sandbox"))
                && report.reasons[0].contains("setup failed, so the agent did not start"),
            "{:?}",
            report.reasons
        );
        let setup = report.gates.iter().find(|g| g.name == "setup").unwrap();
        assert_eq!(setup.status, GateStatus::Fail);
        assert!(
            setup.detail.contains(&format!(
                "tests check `{MISSING} test ./...` (.slipway/policy.toml)"
            )),
            "{}",
            setup.detail
        );
        let run = h.runner.store.get_run(&report.run_id).unwrap().unwrap();
        let nodes: Vec<&str> = run.nodes.iter().map(|n| n.node.as_str()).collect();
        assert_eq!(nodes, ["workspace", "sandbox"], "{blueprint}");
        assert!(!run.nodes[1].ok);
        let stored = h.runner.store.get_task(&task.id).unwrap().unwrap();
        assert_eq!(stored.state, TaskState::Failed);
        assert!(h.leftovers().is_empty(), "{:?}", h.leftovers());
    }
    assert!(h.fake.requests().is_empty(), "no model spend");
}

#[tokio::test]
async fn a_check_that_cannot_start_halts_before_the_agent_bwrap() {
    a_check_that_cannot_start_halts_before_the_agent(Backend::Bwrap).await;
}

#[tokio::test]
async fn a_check_that_cannot_start_halts_before_the_agent_docker() {
    a_check_that_cannot_start_halts_before_the_agent(Backend::Docker).await;
}

async fn a_setup_that_cannot_start_halts_before_the_agent(backend: Backend) {
    let h = Harness::new(backend, LlmProvider::Openai, vec![]).await;
    let repo = h.repo_path();
    std::fs::create_dir_all(repo.join(".slipway")).unwrap();
    std::fs::write(
        repo.join(".slipway/setup.sh"),
        format!("echo fetching\n{MISSING} install\n"),
    )
    .unwrap();
    sh(
        &repo,
        "git add -A && git commit -qm 'setup needs a toolchain'",
    );
    let mut task = h.task("make add() faster");
    let report = h.run(&mut task).await.unwrap();
    // The setup script calls a program the sandbox lacks: halt at setup.
    assert_eq!(report.decision, Decision::Halt, "{report:#?}");
    let setup = report.gates.iter().find(|g| g.name == "setup").unwrap();
    assert_eq!(setup.status, GateStatus::Fail);
    assert!(
        setup.detail.contains("`sh .slipway/setup.sh`")
            && setup
                .detail
                .contains("a program it needs is not in the sandbox")
            && setup.detail.contains(MISSING),
        "{}",
        setup.detail
    );
    let run = h.runner.store.get_run(&report.run_id).unwrap().unwrap();
    let nodes: Vec<&str> = run.nodes.iter().map(|n| n.node.as_str()).collect();
    assert_eq!(nodes, ["workspace", "setup"]);
    assert!(h.fake.requests().is_empty(), "no model spend");
}

#[tokio::test]
async fn a_setup_that_cannot_start_halts_before_the_agent_bwrap() {
    a_setup_that_cannot_start_halts_before_the_agent(Backend::Bwrap).await;
}

#[tokio::test]
async fn a_setup_that_cannot_start_halts_before_the_agent_docker() {
    a_setup_that_cannot_start_halts_before_the_agent(Backend::Docker).await;
}
