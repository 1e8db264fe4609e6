//! The tool registry and prefetch end to end: the 436 fixture tools, a real MCP server over
//! stdio (tests/support/mcp_server.py) discovered, offered and called in scripted runs on
//! the host and inside both sandboxes, and the `slipway tools` commands.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::support::fake_llm::Turn;
use crate::support::{Harness, fix_script, sh};
use slipway::agent::llm::settings::LlmProvider;
use slipway::report::Decision;
use slipway::sandbox::Backend;
use slipway::tools::registry::{Registry, expand_globs};
use slipway::tools::settings::McpServerConfig;

fn fixtures_glob() -> String {
    format!(
        "{}/../shared/fixtures/tools/*.json",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn server_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/mcp_server.py")
}

#[test]
fn every_fixture_catalog_loads_and_collisions_are_namespaced() {
    let mut problems = Vec::new();
    let files = expand_globs(&[fixtures_glob()], &mut problems);
    assert_eq!(files.len(), 32);
    let r = Registry::load(&files, Vec::new());
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!(r.entries().len(), 436 + 7);
    let names: Vec<&str> = r.entries().iter().map(|e| e.name.as_str()).collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "names are unique");
    assert!(names.iter().all(|n| {
        n.len() <= 64
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    }));
    // A built-in keeps its name; servers' same-named tools are namespaced.
    assert_eq!(r.get("read_file").unwrap().server, None);
    assert!(names.contains(&"filesystem-mcp-server__read_file"));
    assert!(names.contains(&"buildkite__get_job_logs") && names.contains(&"github__get_job_logs"));
    assert!(names.contains(&"actions_get"), "a unique name stays bare");
    // The Docker-registry parameter lists became object schemas.
    let s = &r.get("search_events").unwrap().input_schema;
    assert_eq!(s["type"], "object");
}

fn tracker(command: Vec<String>, host_side: bool) -> McpServerConfig {
    McpServerConfig {
        name: "tracker".into(),
        command,
        url: None,
        host_side,
        env: vec![],
    }
}

/// A bwrap harness with tests/support/mcp_server.py configured as a host-side server.
async fn host_tracker_harness(script: Vec<Turn>) -> Harness {
    let cmd = vec!["python3".to_string(), server_script().display().to_string()];
    Harness::with(Backend::Bwrap, LlmProvider::Anthropic, script, |c| {
        c.file.mcp_servers = vec![tracker(cmd, true)]
    })
    .await
}

#[tokio::test]
async fn a_stdio_mcp_server_is_discovered_offered_and_called() {
    let mut script = vec![Turn::call("lookup_ticket", json!({"id": "CALC-42"}))];
    script.extend(fix_script());
    let h = host_tracker_harness(script).await;
    let mut task = h.task("fix the bug from ticket CALC-42 in the tracker");
    let report = h.run(&mut task).await.unwrap();
    assert_eq!(report.decision, Decision::NeedsApproval, "{report:#?}");
    assert!(
        report.tools.contains(&"lookup_ticket".to_string()),
        "{:?}",
        report.tools
    );
    assert!(
        !report.tools.contains(&"drop_database".to_string()),
        "destructive tools are withheld by default"
    );
    assert!(
        !report.tools.contains(&"close_ticket".to_string()),
        "a host-side tool not marked read-only is withheld by default"
    );
    // The model was offered the tool with its schema, and got the server's answer back.
    let reqs = h.fake.requests();
    let offered: Vec<&str> = reqs[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(offered.contains(&"lookup_ticket"));
    assert!(
        reqs[1]
            .body
            .to_string()
            .contains("add() subtracts instead of adding (status: open)")
    );
    let audit = h.runner.store.audit_log(Some(&task.id)).unwrap();
    assert!(audit.iter().any(|e| e.action == "tool_call"
        && e.detail["tool"] == "lookup_ticket"
        && e.detail["ok"] == true));
    let prefetch = h
        .runner
        .store
        .transcript(&report.run_id)
        .unwrap()
        .into_iter()
        .find(|e| e.kind == "prefetch")
        .unwrap();
    let withheld = prefetch.body["withheld"].to_string();
    assert!(
        withheld.contains("drop_database") && withheld.contains("destructive"),
        "{withheld}"
    );
    assert!(
        withheld.contains("close_ticket") && withheld.contains("readOnlyHint"),
        "{withheld}"
    );
}

/// A harness whose repo carries tests/support/mcp_server.py as `tools/mcp_server.py`,
/// configured as a sandboxed (not host-side) server.
async fn sandboxed_tracker_harness(backend: Backend, script: Vec<Turn>) -> Harness {
    let cmd = vec!["python3".to_string(), "tools/mcp_server.py".to_string()];
    let h = Harness::with(backend, LlmProvider::Openai, script, |c| {
        c.file.mcp_servers = vec![tracker(cmd, false)]
    })
    .await;
    let repo = h.repo_path();
    std::fs::create_dir_all(repo.join("tools")).unwrap();
    std::fs::copy(server_script(), repo.join("tools/mcp_server.py")).unwrap();
    sh(&repo, "git add -A && git commit -qm 'tracker mcp server'");
    h
}

async fn in_sandbox_server_has_no_network_and_no_secrets(backend: Backend) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = vec![
        Turn::call("whoami", json!({"port": port})),
        Turn::call("write_file", json!({"path": "NOTE.md", "content": "n\n"})),
        Turn::call("finish", json!({"summary": "note"})),
    ];
    let h = sandboxed_tracker_harness(backend, script).await;
    let mut task = h.task("ask the ticket tracker server whoami about its environment");
    let report = h.run(&mut task).await.unwrap();
    assert!(
        report.tools.contains(&"whoami".to_string()),
        "{:?}",
        report.tools
    );
    let answer = h.fake.requests()[1].body.to_string();
    assert!(
        answer.contains(&format!("loopback port {port}: unreachable")),
        "{answer}"
    );
    assert!(answer.contains("secret-looking vars: []"), "{answer}");
    drop(listener);
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
async fn an_in_sandbox_mcp_server_has_no_network_under_bwrap() {
    in_sandbox_server_has_no_network_and_no_secrets(Backend::Bwrap).await;
}

#[tokio::test]
async fn an_in_sandbox_mcp_server_has_no_network_under_docker() {
    in_sandbox_server_has_no_network_and_no_secrets(Backend::Docker).await;
}

#[tokio::test]
async fn a_crashing_server_gives_a_tool_error_and_the_run_goes_on() {
    let mut script = vec![
        Turn::call("crash", json!({})),
        Turn::call("lookup_ticket", json!({"id": "X-1"})),
    ];
    script.extend(fix_script());
    let h = host_tracker_harness(script).await;
    let mut task = h.task("crash the ticket tracker, then look up ticket X-1, then fix add()");
    let report = h.run(&mut task).await.unwrap();
    assert_eq!(report.decision, Decision::NeedsApproval, "{report:#?}");
    let reqs = h.fake.requests();
    let after_crash = reqs[1].body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .to_string();
    assert!(
        after_crash.contains("tracker") && after_crash.contains("is_error\":true"),
        "{after_crash}"
    );
    let after_lookup = reqs[2].body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .to_string();
    assert!(
        after_lookup.contains("not connected"),
        "later calls fail fast: {after_lookup}"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_initialize_is_reported_and_skipped() {
    let cfg = slipway::config::Config::for_test(Path::new("/tmp"), None);
    let mut cfg = cfg;
    cfg.file.mcp_servers = vec![tracker(
        vec![
            "python3".into(),
            server_script().display().to_string(),
            "--silent".into(),
        ],
        true,
    )];
    let started = std::time::Instant::now();
    let (reg, hub) = slipway::tools::load_registry(&cfg, &[fixtures_glob()], true).await;
    let problems: Vec<String> = reg.problems.iter().map(|p| p.to_string()).collect();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("tracker") && p.contains("did not answer initialize")),
        "{problems:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert_eq!(reg.entries().len(), 443, "the catalogs still load");
    assert!(hub.servers().await.is_empty());
}

fn slipway_cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn tools_explain_shows_scores_and_evidence() {
    let glob = fixtures_glob();
    let (code, out, err) = slipway_cli(&[
        "tools",
        "explain",
        "--catalog",
        &glob,
        "the nightly buildkite pipeline is red, pull the failed job logs",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("buildkite__get_job_logs"), "{out}");
    assert!(
        out.contains("bm25") && out.contains("server buildkite named in the task"),
        "{out}"
    );
    assert!(out.contains("always included (blueprint)"));
    let (_, json_out, _) = slipway_cli(&[
        "tools",
        "explain",
        "--json",
        "--catalog",
        &glob,
        "list the open pull requests",
    ]);
    let v: Value = serde_json::from_str(&json_out).unwrap();
    assert!(v["picks"].as_array().unwrap().len() <= 15);
}

#[test]
fn tools_eval_prints_the_contract_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mini.jsonl");
    std::fs::write(&file, "{\"query\": \"show me the failing buildkite job logs\", \"tools\": [\"buildkite__get_job_logs\"]}\n{\"query\": \"open a pull request with the fix\", \"tools\": [\"create_pull_request\"]}\n").unwrap();
    let glob = fixtures_glob();
    let (code, out, err) = slipway_cli(&[
        "tools",
        "eval",
        &file.display().to_string(),
        "--catalog",
        &glob,
        "--k",
        "15",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    for key in ["k", "queries", "recall", "completeness", "mrr", "ndcg"] {
        assert!(v.get(key).is_some(), "missing {key}: {out}");
    }
    assert_eq!(v["k"], 15);
    assert_eq!(v["queries"], 2);
    let (code, _, err) = slipway_cli(&["tools", "eval", "/nonexistent.jsonl"]);
    assert_eq!(code, 2, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamable_http_mcp_server_is_discovered_and_called() {
    use tokio::io::AsyncBufReadExt;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/mcp_http_server.py");
    let mut child = tokio::process::Command::new("python3")
        .arg(script)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines.next_line().await.unwrap().unwrap();
    let mut cfg = slipway::config::Config::for_test(Path::new("/tmp"), None);
    cfg.file.mcp_servers = vec![McpServerConfig {
        name: "tracker-http".into(),
        command: vec![],
        url: Some(url),
        host_side: false,
        env: vec![],
    }];
    let (reg, hub) = slipway::tools::load_registry(&cfg, &[], true).await;
    assert!(reg.problems.is_empty(), "{:?}", reg.problems);
    let e = reg.get("lookup_ticket").expect("discovered over HTTP");
    assert_eq!(e.server.as_deref(), Some("tracker-http"));
    assert_eq!(e.read_only, Some(true));
    let answer = hub
        .call("tracker-http", "lookup_ticket", r#"{"id": "CALC-7"}"#)
        .await
        .unwrap();
    assert!(answer.contains("CALC-7: over HTTP"), "{answer}");
    hub.close().await;
}

/// Issue "Reliability" #8: a sandboxed server the agent crashes is that run's loss only; the
/// next run starts a fresh one and is offered its tools again.
#[tokio::test]
async fn a_sandboxed_server_crashed_in_one_run_is_back_in_the_next() {
    let mut script = vec![
        Turn::call("crash", json!({})),
        Turn::call("finish", json!({"summary": "crashed it"})),
    ];
    script.extend([
        Turn::call("lookup_ticket", json!({"id": "X-2"})),
        Turn::call("finish", json!({"summary": "looked it up"})),
    ]);
    let h = sandboxed_tracker_harness(Backend::Bwrap, script).await;
    let mut first = h.task("crash the ticket tracker");
    let report = h.run(&mut first).await.unwrap();
    assert!(
        report.tools.contains(&"crash".to_string()),
        "{:?}",
        report.tools
    );
    let mut second = h.task("look up ticket X-2 in the ticket tracker");
    let report = h.run(&mut second).await.unwrap();
    assert!(
        report.tools.contains(&"lookup_ticket".to_string()),
        "the tracker is offered again: {:?}",
        report.tools
    );
    let reqs = h.fake.requests();
    let answer = reqs.last().unwrap().body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .to_string();
    assert!(
        answer.contains("X-2") && !answer.contains("is_error\":true"),
        "{answer}"
    );
}

/// Issue "Security hardening" #4: a file the agent makes huge inside the sandbox (1 GiB is
/// allowed by the fsize limit) reaches the host-side file tools as a capped result or a tool
/// error; the slipway process keeps its memory and the run goes on.
#[tokio::test]
async fn a_huge_file_made_in_the_sandbox_gets_capped_tool_results_and_the_run_goes_on() {
    let mut script = vec![
        Turn::call(
            "run",
            json!({"command": "truncate -s 1G big.bin && yes '' | head -c 64M > lines.txt"}),
        ),
        Turn::call("read_file", json!({"path": "lines.txt"})),
        Turn::call("read_file", json!({"path": "big.bin"})),
        Turn::call("search", json!({"pattern": "return a"})),
        Turn::call(
            "edit_file",
            json!({"path": "big.bin", "old_text": "x", "new_text": "y"}),
        ),
        Turn::call("run", json!({"command": "rm big.bin lines.txt"})),
    ];
    script.extend(fix_script());
    let h = Harness::new(Backend::Bwrap, LlmProvider::Anthropic, script).await;
    let mut task = h.task("fix add() in calc.py");
    let report = h.run(&mut task).await.unwrap();
    assert_eq!(report.decision, Decision::NeedsApproval, "{report:#?}");
    let reqs = h.fake.requests();
    let answer = |i: usize| {
        reqs[i].body["messages"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .to_string()
    };
    let read = answer(2);
    assert!(
        read.contains("lines.txt is 64.0 MiB; showing lines 1–2000")
            && read.contains("start_line 2001")
            && !read.contains("is_error\":true"),
        "{}",
        &read[read.len().saturating_sub(400)..]
    );
    let binary = answer(3);
    assert!(
        binary.contains("big.bin is a binary file (1.0 GiB)") && binary.contains("is_error\":true"),
        "{binary}"
    );
    let search = answer(4);
    assert!(
        search.contains("calc.py:2:    return a - b")
            && search.contains("skipped 2 files over 8.0 MiB")
            && search.contains("big.bin")
            && search.contains("lines.txt"),
        "{search}"
    );
    let edit = answer(5);
    assert!(
        edit.contains("big.bin is 1.0 GiB") && edit.contains("is_error\":true"),
        "{edit}"
    );
}
