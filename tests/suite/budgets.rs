//! `[budgets]` end to end: a task over `task_usd` is stopped before its next model call and
//! halts with reason `budget`, publishing nothing; 80% of a limit is a warning event; a
//! requester over `requester_daily_usd` is refused in the thread with the figure, and no
//! task is created; the status message shows the run's cost.
//!
//! Each scripted model turn reports 1000 input and 100 output tokens: $0.0045 at the
//! default `[llm]` prices ($3 and $15 per million tokens).

use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::slack::{Bot, DEV, settle};
use crate::support::fake_llm::Turn;
use crate::support::{Harness, fix_script, sh};
use slipway::agent::llm::settings::LlmProvider;
use slipway::budget::{Limit, Spend};
use slipway::report::{Decision, GateStatus, RunReport};
use slipway::run::RunEvent;
use slipway::sandbox::Backend;
use slipway::store::SpendKeys;
use slipway::task::{Task, now_ms};

/// Runs `task` and collects every event of the run.
async fn run_with_events(h: &Harness, task: &mut Task) -> (RunReport, Vec<RunEvent>) {
    let (tx, mut rx) = mpsc::channel(16);
    let collect = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Some(e) = rx.recv().await {
            all.push(e);
        }
        all
    });
    let report = h
        .runner
        .run(task, "code_change", CancellationToken::new(), Some(tx))
        .await
        .unwrap();
    (report, collect.await.unwrap())
}

fn warnings(events: &[RunEvent]) -> Vec<(Limit, f64, f64)> {
    events
        .iter()
        .filter_map(|e| match e {
            RunEvent::BudgetWarning { limit, spent, max } => Some((*limit, *spent, *max)),
            _ => None,
        })
        .collect()
}

fn agent_gate(r: &RunReport) -> &slipway::report::Gate {
    r.gates.iter().find(|g| g.name == "agent").unwrap()
}

#[tokio::test]
async fn a_task_over_task_usd_stops_before_the_next_model_call_and_publishes_nothing() {
    // $0.0045 a turn: two turns are 90% of $0.01 (a warning), the third crosses it.
    let h = Harness::with(Backend::Bwrap, LlmProvider::Anthropic, vec![], |c| {
        c.file.budgets.task_usd = 0.01
    })
    .await;
    h.fake
        .repeat_forever(Turn::call("list_dir", json!({"path": "."})));
    let mut task = h.task("list forever");
    let (report, events) = run_with_events(&h, &mut task).await;

    assert_eq!(h.fake.requests().len(), 3, "no model call after the limit");
    assert_eq!(report.decision, Decision::Halt);
    let gate = agent_gate(&report);
    assert_eq!(gate.status, GateStatus::Fail);
    assert_eq!(gate.detail, "budget: task_usd $0.0135 of $0.0100");
    assert!(
        report.reasons.iter().any(|r| r.contains("budget")),
        "{:?}",
        report.reasons
    );
    assert!(report.pr_url.is_none());
    let branches = sh(&h.repo_path(), "git branch --list 'slipway/*'");
    assert!(branches.trim().is_empty(), "nothing pushed: {branches}");
    // Warned once, at the second turn; the cost went out after every turn.
    let warned = warnings(&events);
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert_eq!(warned[0].0, Limit::TaskUsd);
    assert!((warned[0].1 - 0.009).abs() < 1e-9);
    let costs = events
        .iter()
        .filter(|e| matches!(e, RunEvent::Cost { .. }))
        .count();
    assert_eq!(costs, 3);

    // The ledger holds it (a restart reopens the same store), and the task's next run
    // counts it: the agent stops before any model call.
    let keys = SpendKeys {
        task_id: task.id.clone(),
        requester: task.requester.clone(),
        repo: task.repo.name.clone(),
    };
    let spent = h
        .runner
        .store
        .spend(&keys, &slipway::budget::utc_day(now_ms()))
        .unwrap();
    assert_eq!(spent.task.tokens, 3300);
    assert_eq!(spent.requester_day, spent.task);
    let again = h.run(&mut task).await.unwrap();
    assert_eq!(
        h.fake.requests().len(),
        3,
        "the second run made no model call"
    );
    assert_eq!(again.decision, Decision::Halt);
    assert!(agent_gate(&again).detail.starts_with("budget: task_usd"));
}

#[tokio::test]
async fn eighty_percent_of_a_limit_is_one_warning_and_the_run_goes_on() {
    // fix_script is four turns: $0.018 of $0.02 is 90%.
    let h = Harness::with(Backend::Bwrap, LlmProvider::Anthropic, fix_script(), |c| {
        c.file.budgets.task_usd = 0.02
    })
    .await;
    let mut task = h.task("fix add() in calc.py: it subtracts");
    let (report, events) = run_with_events(&h, &mut task).await;
    assert_eq!(report.decision, Decision::NeedsApproval, "{report:#?}");
    let warned = warnings(&events);
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert_eq!(warned[0].0, Limit::TaskUsd);
    assert!((warned[0].1 - 0.018).abs() < 1e-9 && (warned[0].2 - 0.02).abs() < 1e-9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requester_over_the_daily_budget_is_refused_with_the_figure_and_nothing_starts() {
    let bot = Bot::start(Backend::Bwrap, vec![], |c| {
        c.file.budgets.requester_daily_usd = 0.01
    })
    .await;
    // Alice spent $0.0123 today on an earlier task.
    let keys = SpendKeys {
        task_id: "0123456789ab".into(),
        requester: "U0ALICE".into(),
        repo: "acme/calc".into(),
    };
    bot.h
        .runner
        .store
        .record_spend(
            &keys,
            &slipway::budget::utc_day(now_ms()),
            "earlier/1",
            Spend {
                usd: 0.0123,
                tokens: 3000,
            },
        )
        .await
        .unwrap();
    let p = bot.mention("<@U0BOT> fix add() in calc.py").await;
    let said = bot.wait_post(&p.ts, "🚫").await.text;
    assert!(
        said.contains(
            "requester_daily_usd is $0.0100 and U0ALICE spent $0.0123 today; an operator raises [budgets] requester_daily_usd in slipway.toml"
        ),
        "{said}"
    );
    settle().await;
    assert!(bot.tasks().is_empty(), "no task was created");
    assert_eq!(bot.h.fake.requests().len(), 0);
    let refused: Vec<_> = bot
        .h
        .runner
        .store
        .audit_log(None)
        .unwrap()
        .into_iter()
        .filter(|a| a.action == "task_refused")
        .collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].detail["reason"], "budget");
    assert_eq!(refused[0].actor, "U0ALICE");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_message_shows_the_runs_cost_and_80_percent_is_said_once() {
    // Four turns, $0.018 of $0.02: one warning in the thread, and the run goes on.
    let bot = Bot::start(Backend::Bwrap, fix_script(), |c| {
        c.file.budgets.task_usd = 0.02
    })
    .await;
    let thread = bot
        .mention("<@U0BOT> in acme/calc: add() subtracts; make it add")
        .await;
    bot.wait_reports(&thread, 1).await;
    settle().await;
    let status = &bot.slack.bot_posts(DEV, &thread.ts)[0];
    let text = bot.slack.text_of(DEV, &status.ts).unwrap();
    // Four turns at $0.0045.
    assert!(text.contains("· $0.0180"), "{text}");
    let warned: Vec<_> = bot
        .slack
        .bot_posts(DEV, &thread.ts)
        .into_iter()
        .filter(|p| p.text.contains("⚠️"))
        .collect();
    assert_eq!(warned.len(), 1, "{warned:#?}");
    assert!(
        warned[0]
            .text
            .contains("90% of `[budgets] task_usd`: $0.0180 of $0.0200"),
        "{}",
        warned[0].text
    );
    assert!(
        bot.slack.reports(DEV, &thread.ts)[0]
            .text
            .contains("needs_approval")
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slipway_run_refuses_with_exit_2_when_the_requesters_day_is_spent() {
    let data = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    crate::support::python_repo(repo.path());
    std::fs::write(
        data.path().join("slipway.toml"),
        "[budgets]\nrequester_daily_usd = 1.0\n",
    )
    .unwrap();
    {
        // What an earlier process recorded for U0CLI today.
        let store = slipway::store::Store::open(&data.path().join("store")).unwrap();
        let keys = SpendKeys {
            task_id: "0123456789ab".into(),
            requester: "U0CLI".into(),
            repo: "elsewhere".into(),
        };
        let day = slipway::budget::utc_day(now_ms());
        let usd = Spend {
            usd: 1.25,
            tokens: 100,
        };
        store
            .record_spend(&keys, &day, "earlier/1", usd)
            .await
            .unwrap();
    }
    let fake = crate::support::fake_llm::FakeLlm::start(vec![]).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args([
            "run",
            "--repo",
            &repo.path().display().to_string(),
            "fix add()",
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("SLIPWAY_DATA_DIR", data.path())
        .env("SLIPWAY_SANDBOX", "bwrap")
        .env("USER", "U0CLI")
        .env("SLIPWAY_LLM_PROVIDER", "openai")
        .env("SLIPWAY_LLM_BASE_URL", format!("http://{}/v1", fake.addr))
        .env("SLIPWAY_LLM_MODEL", "scripted-model")
        .env("SLIPWAY_LLM_API_KEY", "sk-test")
        .current_dir(data.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("requester_daily_usd is $1.00 and U0CLI spent $1.25 today"),
        "{err}"
    );
    assert_eq!(fake.requests().len(), 0);
}
