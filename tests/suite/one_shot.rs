//! One-shot runs end to end: real git, sled and sandboxes; a scripted model.

use serde_json::json;

use crate::support::fake_llm::Turn;
use crate::support::{self, CALC_BUGGY, Harness, fix_script, sh};
use slipway::agent::llm::settings::LlmProvider;
use slipway::report::{Decision, GateStatus, RunReport};
use slipway::sandbox::Backend;
use slipway::task::TaskState;

fn gate<'a>(r: &'a RunReport, name: &str) -> &'a slipway::report::Gate {
    r.gates
        .iter()
        .find(|g| g.name == name)
        .unwrap_or_else(|| panic!("no {name} gate in {:?}", r.gates))
}

async fn a_scripted_agent_fixes_the_bug(backend: Backend, provider: LlmProvider) {
    let h = Harness::new(backend, provider, fix_script()).await;
    let repo = h.repo_path();
    let main_before = sh(&repo, "git rev-parse main");
    let mut task = h.task("fix add() in calc.py: it subtracts");
    let report = h.run(&mut task).await.unwrap();

    assert_eq!(report.decision, Decision::NeedsApproval, "{report:#?}");
    assert_eq!(gate(&report, "tests").status, GateStatus::Pass);
    assert_eq!(gate(&report, "diff").status, GateStatus::Pass);
    assert_eq!(report.fix_rounds, 0);
    assert_eq!(report.sandbox.backend, backend.as_str());
    assert!(!report.sandbox.network);
    assert_eq!(report.agent.steps, 4);
    assert_eq!(report.agent.input_tokens, 4000);
    assert!(report.agent.cost_usd > 0.0);
    assert!(report.tools.contains(&"edit_file".to_string()));
    assert!(report.timings_ms.total >= report.timings_ms.agent);

    // The branch holds the fix; main and the checked-out tree are untouched.
    let branch = &report.branch;
    assert!(branch.starts_with("slipway/"));
    assert!(sh(&repo, &format!("git show {branch}:calc.py")).contains("return a + b"));
    assert_eq!(sh(&repo, "git rev-parse main"), main_before);
    assert_eq!(
        std::fs::read_to_string(repo.join("calc.py")).unwrap(),
        CALC_BUGGY
    );
    assert_eq!(sh(&repo, "git branch --show-current").trim(), "main");
    let commit = sh(
        &repo,
        &format!("git log -1 --format='%an <%ae>%n%B' {branch}"),
    );
    assert!(commit.contains("slipway[bot]"), "{commit}");
    assert!(commit.contains("Requested-by: U0ALICE"), "{commit}");
    assert_eq!(
        sh(&repo, &format!("git rev-parse {branch}")).trim(),
        report.commit.clone().unwrap()
    );

    // The model saw the repo's rules and a well-formed conversation in its own wire format.
    let reqs = h.fake.requests();
    assert_eq!(reqs.len(), 4);
    assert!(h.fake.violations().is_empty(), "{:?}", h.fake.violations());
    let expected_path = match provider {
        LlmProvider::Anthropic => "/v1/messages",
        LlmProvider::Openai => "/v1/chat/completions",
    };
    assert!(reqs.iter().all(|r| r.path == expected_path));
    assert!(reqs[0].body.to_string().contains("Keep functions pure."));
    // The run tool's output (from inside the sandbox) reached the model.
    assert!(reqs[3].body.to_string().contains("OK"), "{}", reqs[3].body);

    // Stored: the task, the run with its nodes, the transcript and the audit trail.
    let store = &h.runner.store;
    let stored = store.get_task(&task.id).unwrap().unwrap();
    assert_eq!(stored.state, TaskState::Ready);
    let run = store.get_run(&report.run_id).unwrap().unwrap();
    let nodes: Vec<&str> = run.nodes.iter().map(|n| n.node.as_str()).collect();
    assert_eq!(
        nodes,
        [
            "workspace",
            "sandbox",
            "prefetch",
            "implement",
            "checks",
            "commit",
            "sandbox_gates",
            "gates",
            "publish"
        ]
    );
    assert_eq!(run.report.as_ref().unwrap(), &report);
    let transcript = store.transcript(&report.run_id).unwrap();
    assert_eq!(
        transcript
            .iter()
            .filter(|e| e.kind == "llm_request")
            .count(),
        4
    );
    assert_eq!(
        transcript.iter().filter(|e| e.kind == "tool_call").count(),
        4
    );
    let audit = store.audit_log(Some(&task.id)).unwrap();
    assert!(audit.iter().any(|e| e.action == "push"));
    assert_eq!(audit.iter().filter(|e| e.action == "tool_call").count(), 4);

    // Nothing left behind.
    assert!(h.leftovers().is_empty(), "{:?}", h.leftovers());
    if backend == Backend::Docker {
        assert!(support::containers_of(&report.run_id).await.is_empty());
    }
}

#[tokio::test]
async fn a_scripted_agent_fixes_a_python_bug_in_a_container_over_anthropic() {
    a_scripted_agent_fixes_the_bug(Backend::Docker, LlmProvider::Anthropic).await;
}

#[tokio::test]
async fn a_scripted_agent_fixes_a_python_bug_in_a_container_over_openai() {
    a_scripted_agent_fixes_the_bug(Backend::Docker, LlmProvider::Openai).await;
}

#[tokio::test]
async fn a_scripted_agent_fixes_a_python_bug_under_bwrap_over_anthropic() {
    a_scripted_agent_fixes_the_bug(Backend::Bwrap, LlmProvider::Anthropic).await;
}

#[tokio::test]
async fn a_scripted_agent_fixes_a_python_bug_under_bwrap_over_openai() {
    a_scripted_agent_fixes_the_bug(Backend::Bwrap, LlmProvider::Openai).await;
}

fn wrong_fix() -> Vec<Turn> {
    vec![
        Turn::call(
            "edit_file",
            json!({"path": "calc.py", "old_text": "return a - b", "new_text": "return a * b"}),
        ),
        Turn::call("finish", json!({"summary": "changed add"})),
    ]
}

#[tokio::test]
async fn a_failing_check_gets_a_fix_round_with_the_failure_output() {
    let mut script = wrong_fix();
    script.extend([
        Turn::call("edit_file", json!({"path": "calc.py", "old_text": "def add(a, b):\n    return a * b", "new_text": "def add(a, b):\n    return a + b"})),
        Turn::call("finish", json!({"summary": "add adds now"})),
    ]);
    let h = Harness::new(Backend::Docker, LlmProvider::Anthropic, script).await;
    let mut task = h.task("fix add()");
    let report = h.run(&mut task).await.unwrap();
    assert_eq!(report.fix_rounds, 1);
    assert_eq!(report.decision, Decision::NeedsApproval, "{report:#?}");
    assert_eq!(gate(&report, "tests").status, GateStatus::Pass);
    // The fix round's prompt carried the failing test's output from the sandbox.
    let fix_request = &h.fake.requests()[2];
    let text = fix_request.body.to_string();
    assert!(text.contains("fix round 1 of at most 2"), "{text}");
    assert!(
        text.contains("AssertionError") && text.contains("test_add"),
        "{text}"
    );
    assert!(h.fake.violations().is_empty());
}

#[tokio::test]
async fn a_third_failure_halts_after_two_fix_rounds_and_publishes_nothing() {
    let mut script = wrong_fix();
    for _ in 0..2 {
        script.push(Turn::call("run", json!({"command": "true"})));
        script.push(Turn::call("finish", json!({"summary": "tried again"})));
    }
    let h = Harness::new(Backend::Bwrap, LlmProvider::Openai, script).await;
    let mut task = h.task("fix add()");
    let report = h.run(&mut task).await.unwrap();
    assert_eq!(report.fix_rounds, 2);
    assert_eq!(report.decision, Decision::Halt);
    assert_eq!(gate(&report, "tests").status, GateStatus::Fail);
    assert!(
        gate(&report, "tests")
            .detail
            .contains("after 2 fix round(s)")
    );
    assert!(
        report
            .reasons
            .iter()
            .any(|r| r.contains("tests gate failed"))
    );
    assert_eq!(h.fake.remaining(), 0);
    // Halted work is not pushed; its diff is kept in the transcript.
    let branches = sh(&h.repo_path(), "git branch --list 'slipway/*'");
    assert!(branches.trim().is_empty(), "{branches}");
    let t = h.runner.store.transcript(&report.run_id).unwrap();
    assert!(
        t.iter()
            .any(|e| e.kind == "halted_diff" && e.body["diff"].as_str().unwrap().contains("a * b"))
    );
    assert_eq!(
        h.runner.store.get_task(&task.id).unwrap().unwrap().state,
        TaskState::Halted
    );
}

#[tokio::test]
async fn a_model_that_loops_is_stopped_by_the_step_budget() {
    let h = Harness::with(Backend::Bwrap, LlmProvider::Anthropic, vec![], |c| {
        c.file.agent.max_steps = 5
    })
    .await;
    h.fake
        .repeat_forever(Turn::call("list_dir", json!({"path": "."})));
    let mut task = h.task("do something forever");
    let report = h.run(&mut task).await.unwrap();
    assert_eq!(report.agent.steps, 5);
    assert_eq!(report.decision, Decision::Halt);
    assert_eq!(gate(&report, "agent").status, GateStatus::Fail);
    assert!(
        report.reasons.iter().any(|r| r.contains("steps budget")),
        "{:?}",
        report.reasons
    );
    assert_eq!(h.fake.requests().len(), 5);
}

#[tokio::test]
async fn a_model_that_burns_tokens_is_stopped_by_the_token_budget() {
    let h = Harness::with(Backend::Bwrap, LlmProvider::Openai, vec![], |c| {
        c.file.agent.max_tokens = 3000
    })
    .await;
    h.fake
        .repeat_forever(Turn::call("list_dir", json!({"path": "."})));
    let mut task = h.task("loop");
    let report = h.run(&mut task).await.unwrap();
    // Each scripted turn costs 1100 tokens: three turns pass 3000.
    assert_eq!(report.agent.steps, 3);
    assert_eq!(report.decision, Decision::Halt);
    assert!(
        gate(&report, "agent").detail.contains("tokens"),
        "{:?}",
        gate(&report, "agent")
    );
}

#[tokio::test]
async fn bad_tool_calls_go_back_to_the_model_and_the_run_goes_on() {
    let mut script = vec![
        Turn::call("delete_everything", json!({})),
        Turn::Tools(vec![("read_file".into(), "{\"path\": ".into())]),
        Turn::call("read_file", json!({"path": "../../etc/passwd"})),
        Turn::call("write_file", json!({"path": "/etc/evil", "content": "x"})),
        Turn::call(
            "write_file",
            json!({"path": ".git/hooks/pre-commit", "content": "#!/bin/sh\ntouch /tmp/pwned\n"}),
        ),
        Turn::call(
            "edit_file",
            json!({"path": "calc.py", "old_text": "return", "new_text": "return"}),
        ),
        Turn::call(
            "edit_file",
            json!({"path": "calc.py", "old_text": "nope", "new_text": "x"}),
        ),
        Turn::Text("thinking...".into()),
    ];
    script.extend(fix_script());
    let h = Harness::new(Backend::Bwrap, LlmProvider::Openai, script).await;
    let mut task = h.task("fix add()");
    let report = h.run(&mut task).await.unwrap();
    assert_eq!(report.decision, Decision::NeedsApproval, "{report:#?}");
    let reqs = h.fake.requests();
    let tool_reply = |i: usize| -> String {
        let msgs = reqs[i].body["messages"].as_array().unwrap();
        msgs.last().unwrap()["content"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert!(tool_reply(1).contains("unknown tool \"delete_everything\""));
    assert!(tool_reply(2).contains("invalid arguments"));
    assert!(tool_reply(3).contains("escapes the repo root"));
    assert!(tool_reply(4).contains("is absolute"));
    assert!(tool_reply(5).contains("inside .git"));
    assert!(tool_reply(6).contains("occurs 2 times"));
    assert!(tool_reply(7).contains("does not occur"));
    assert!(tool_reply(8).contains("call `finish`"));
    assert!(!h.repo_path().join(".git/hooks/pre-commit").exists());
    assert!(h.fake.violations().is_empty(), "{:?}", h.fake.violations());
}

#[tokio::test]
async fn a_second_revision_adds_a_commit_to_the_same_branch() {
    let mut script = fix_script();
    script.extend([
        Turn::call(
            "write_file",
            json!({"path": "README.md", "content": "# calc\n\n`add(a, b)` adds.\n"}),
        ),
        Turn::call("finish", json!({"summary": "documented add"})),
    ]);
    let h = Harness::new(Backend::Bwrap, LlmProvider::Anthropic, script).await;
    let mut task = h.task("fix add()");
    let first = h.run(&mut task).await.unwrap();
    task.revisions.push(slipway::task::Revision {
        number: 2,
        instructions: "also document add in the README".into(),
        context: vec![],
        untrusted_context: vec![],
        links: vec![],
        created_ms: 0,
        author: None,
    });
    let second = h.run(&mut task).await.unwrap();
    assert_eq!(second.revision, 2);
    assert_eq!(second.branch, first.branch);
    let repo = h.repo_path();
    let parent = sh(&repo, &format!("git rev-parse {}^", second.branch));
    assert_eq!(parent.trim(), first.commit.clone().unwrap());
    assert!(sh(&repo, &format!("git show {}:calc.py", second.branch)).contains("a + b"));
    // The model saw the earlier revision's summary.
    let reqs = h.fake.requests();
    assert!(
        reqs[4]
            .body
            .to_string()
            .contains("add() subtracted; it adds now.")
    );
    let stored = h.runner.store.get_task(&task.id).unwrap().unwrap();
    assert_eq!(stored.runs.len(), 2);
}

#[tokio::test]
async fn a_setup_step_runs_with_network_and_its_cache_reaches_the_offline_sandbox() {
    // Setup's outputs reach the offline sandbox through the environment directory (`/env`,
    // read-only there), no longer through a home shared with the agent.
    let h = Harness::new(
        Backend::Docker,
        LlmProvider::Anthropic,
        vec![
            Turn::call("run", json!({"command": "cat /env/fetched.txt; echo SETUP:$(cat /env/setup-net.txt); echo AGENT:$(cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ,)"})),
            Turn::call("write_file", json!({"path": "NOTE.md", "content": "note\n"})),
            Turn::call("finish", json!({"summary": "note"})),
        ],
    )
    .await;
    let repo = h.repo_path();
    std::fs::create_dir_all(repo.join(".slipway")).unwrap();
    std::fs::write(
        repo.join(".slipway/setup.sh"),
        "echo fetched-by-setup > /env/fetched.txt\ncat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' , > /env/setup-net.txt\n",
    )
    .unwrap();
    sh(&repo, "git add -A && git commit -qm setup");
    let mut task = h.task("add a note");
    let report = h.run(&mut task).await.unwrap();
    assert_eq!(
        gate(&report, "setup").status,
        GateStatus::Pass,
        "{report:#?}"
    );
    let reqs = h.fake.requests();
    let seen = reqs[1].body.to_string();
    assert!(seen.contains("fetched-by-setup"), "{seen}");
    // Setup had a network; the agent's sandbox has loopback only.
    assert!(seen.contains("SETUP:eth0,lo,"), "{seen}");
    assert!(seen.contains("AGENT:lo,"), "{seen}");
    let setup_entry = h
        .runner
        .store
        .transcript(&report.run_id)
        .unwrap()
        .into_iter()
        .find(|e| e.kind == "setup")
        .unwrap();
    assert_eq!(setup_entry.body["command"], "sh .slipway/setup.sh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_run_stops_its_sandbox_and_reports_it() {
    let h = Harness::new(
        Backend::Docker,
        LlmProvider::Anthropic,
        vec![Turn::call("run", json!({"command": "sleep 300"}))],
    )
    .await;
    let mut task = h.task("take forever");
    let cancel = tokio_util::sync::CancellationToken::new();
    let trigger = cancel.clone();
    let fake = h.fake.clone();
    tokio::spawn(async move {
        while fake.requests().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(800)).await;
        trigger.cancel();
    });
    let report = h
        .runner
        .run(&mut task, "code_change", cancel, None)
        .await
        .unwrap();
    assert_eq!(report.decision, Decision::Halt);
    assert!(
        report.reasons[0].contains("cancelled"),
        "{:?}",
        report.reasons
    );
    let stored = h.runner.store.get_task(&task.id).unwrap().unwrap();
    assert_eq!(stored.state, TaskState::Cancelled);
    let run = h.runner.store.get_run(&report.run_id).unwrap().unwrap();
    assert_eq!(run.state, slipway::store::RunState::Cancelled);
    assert!(support::containers_of(&report.run_id).await.is_empty());
    assert!(h.leftovers().is_empty(), "{:?}", h.leftovers());
}
