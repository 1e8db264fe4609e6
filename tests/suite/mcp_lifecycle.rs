//! A sandboxed MCP server keeps `/workspace` writable; it must be gone before the checks, so
//! the tree that is committed is the tree the checks saw (issue "Security hardening" #13,
//! item 3), on both backends.

use std::path::Path;

use serde_json::json;

use crate::support::fake_llm::Turn;
use crate::support::{Harness, fix_script, python_repo, sh};
use slipway::agent::llm::settings::LlmProvider;
use slipway::sandbox::Backend;
use slipway::tools::settings::McpServerConfig;

/// The checks print the scribble file's size, wait, print it again, then run the tests.
const CHECKS: &str = "[checks]\ntest = \"a=$(wc -c < scribble.log); sleep 1; b=$(wc -c < scribble.log); echo scribble-at-checks $a $b; python3 -m unittest -q\"\n";

fn repo_with_scribbler(dir: &Path) {
    python_repo(dir);
    std::fs::create_dir_all(dir.join("tools")).unwrap();
    std::fs::create_dir_all(dir.join(".slipway")).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/mcp_server.py"),
        dir.join("tools/mcp_server.py"),
    )
    .unwrap();
    std::fs::write(dir.join(".slipway/policy.toml"), CHECKS).unwrap();
    sh(dir, "git add -A && git commit -qm 'scribbling mcp server'");
}

async fn the_committed_tree_is_the_tree_the_checks_saw(backend: Backend) {
    // The agent first finishes without fixing add(), so the checks fail and a fix round
    // runs; in it the sandboxed server answers again (restarted), then add() is fixed.
    let mut script = vec![
        Turn::call("lookup_ticket", json!({"id": "CALC-1"})),
        Turn::call("finish", json!({"summary": "looked"})),
        Turn::call("lookup_ticket", json!({"id": "CALC-2"})),
    ];
    script.extend(fix_script());
    let h = Harness::with_repo(
        backend,
        LlmProvider::Openai,
        script,
        repo_with_scribbler,
        |c| {
            c.file.mcp_servers = vec![McpServerConfig {
                name: "tracker".into(),
                command: [
                    "python3",
                    "tools/mcp_server.py",
                    "--scribble",
                    "scribble.log",
                ]
                .map(String::from)
                .to_vec(),
                url: None,
                host_side: false,
                env: vec![],
            }]
        },
    )
    .await;
    let mut task = h.task("look up ticket CALC-1 in the tracker and fix add()");
    let report = h.run(&mut task).await.unwrap();
    assert!(
        report.tools.contains(&"lookup_ticket".to_string()),
        "the sandboxed server was offered: {:?}",
        report.tools
    );
    let checks: Vec<String> = h
        .runner
        .store
        .transcript(&report.run_id)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "check")
        .map(|e| e.body["output"].as_str().unwrap_or_default().to_string())
        .collect();
    let pairs: Vec<Vec<u64>> = checks
        .iter()
        .filter_map(|o| o.split("scribble-at-checks ").nth(1))
        .filter_map(|rest| rest.lines().next())
        .map(|line| {
            line.split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty())
                .take(2)
                .map(|s| s.parse().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(
        pairs.len(),
        2,
        "the checks ran twice (a fix round): {checks:?}"
    );
    for p in &pairs {
        assert!(p[0] > 0, "the server scribbled while the agent ran");
        assert_eq!(
            p[0], p[1],
            "nothing changed the tree during the checks: {pairs:?}"
        );
    }
    assert!(
        pairs[1][0] > pairs[0][0],
        "the server was back (and scribbling) in the fix round: {pairs:?}"
    );
    let fix_round_lookup = h.fake.requests()[3].body.to_string();
    assert!(
        fix_round_lookup.contains("CALC-2: add() subtracts"),
        "the sandboxed tool answered in the fix round: {fix_round_lookup}"
    );
    let sizes = &pairs[1];
    let committed = sh(
        &h.repo_path(),
        &format!("git show {}:scribble.log | wc -c", report.branch),
    );
    assert_eq!(
        committed.trim().parse::<u64>().unwrap(),
        sizes[1],
        "the committed file is the one the checks saw"
    );
    if backend == Backend::Docker {
        assert!(
            crate::support::containers_of(&report.run_id)
                .await
                .is_empty(),
            "the MCP sidecar is gone"
        );
    }
}

#[tokio::test]
async fn a_sandboxed_mcp_server_cannot_change_the_tree_after_the_agent_under_docker() {
    the_committed_tree_is_the_tree_the_checks_saw(Backend::Docker).await;
}

#[tokio::test]
async fn a_sandboxed_mcp_server_cannot_change_the_tree_after_the_agent_under_bwrap() {
    the_committed_tree_is_the_tree_the_checks_saw(Backend::Bwrap).await;
}
