//! Environments: what a repo's checks need must be there before the agent starts. (Open
//! issue "Environments"; this file grows with it.)

use slipway::agent::llm::settings::LlmProvider;
use slipway::report::{Decision, GateStatus};
use slipway::sandbox::Backend;
use slipway::task::TaskState;
use tokio_util::sync::CancellationToken;

use crate::support::{Harness, git_repo};

const GO_MOD: &str = "module example.com/calc\n\ngo 1.22\n";
const GO_TEST: &str = "package calc\n\nimport \"testing\"\n\nfunc TestAdd(t *testing.T) {\n\tif 2+3 != 5 {\n\t\tt.Fatal(\"no\")\n\t}\n}\n";

/// A Python repo whose declared test command needs `go`, which the sandbox lacks.
const GO_CHECK: &str = "[checks]\ntest = \"go test ./...\"\n";

async fn a_check_that_cannot_start_halts_before_the_agent(backend: Backend) {
    let h = Harness::new(backend, LlmProvider::Openai, vec![]).await;
    let repo = h.repo_path();
    std::fs::create_dir_all(repo.join(".slipway")).unwrap();
    std::fs::write(repo.join(".slipway/policy.toml"), GO_CHECK).unwrap();
    crate::support::sh(&repo, "git add -A && git commit -qm 'tests need go'");
    for blueprint in ["code_change", "checks_only"] {
        let mut task = h.task("make add() faster");
        let report = h
            .runner
            .run(&mut task, blueprint, CancellationToken::new(), None)
            .await
            .unwrap();
        // Detected `go vet` / `go test`, but the sandbox has no `go`: halt, no model call.
        assert_eq!(report.decision, Decision::Halt, "{report:#?}");
        assert!(
            report.reasons[0].contains("`go` is not in the sandbox")
                && report.reasons[0].contains("setup failed, so the agent did not start"),
            "{:?}",
            report.reasons
        );
        let setup = report.gates.iter().find(|g| g.name == "setup").unwrap();
        assert_eq!(setup.status, GateStatus::Fail);
        assert!(
            setup
                .detail
                .contains("tests check `go test ./...` (.slipway/policy.toml)"),
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
    std::fs::remove_dir_all(&repo).unwrap();
    git_repo(&repo, &[("go.mod", GO_MOD), ("calc_test.go", GO_TEST)]);
    let mut task = h.task("make add() faster");
    let report = h.run(&mut task).await.unwrap();
    // `go mod download` is detected from go.mod; `go` is missing: halt at setup.
    assert_eq!(report.decision, Decision::Halt, "{report:#?}");
    let setup = report.gates.iter().find(|g| g.name == "setup").unwrap();
    assert_eq!(setup.status, GateStatus::Fail);
    assert!(
        setup.detail.contains("`go mod download`") && setup.detail.contains("cannot start"),
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
