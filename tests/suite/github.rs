//! The GitHub forge end to end: a fake GitHub on loopback (REST shapes from
//! `shared/fixtures/github`, real git smart HTTP through `git http-backend` behind Basic
//! auth), the real runner, git, sled and bubblewrap, and a scripted model.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::slack::{Bot, DEV, settle};
use crate::support::fake_github::{Call, Ci, FakeGithub, TOKEN};
use crate::support::fake_llm::Turn;
use crate::support::{
    Harness, document_mul_turns, fix_script, fix_then_document_script, python_repo, sh,
};
use slipway::agent::llm::settings::LlmProvider;
use slipway::config::Config;
use slipway::forge::github::settings::GithubAuth;
use slipway::forge::github::settings::GithubConfig;
use slipway::forge::github::settings::GithubEndpoint;
use slipway::forge::{ForgeError, MergeRequest};
use slipway::report::{Decision, GateStatus, RunReport};
use slipway::repos::ForgeKind;
use slipway::repos::MergeMethod;
use slipway::repos::RepoConfig;
use slipway::sandbox::Backend;
use slipway::task::{Origin, RepoRef, Revision, Task, TaskState};

const THREAD_URL: &str = "https://acme.slack.com/archives/C0DEV/p1700000000000100";

/// The bare repo GitHub serves: the harness's Python repo.
fn bare_repo(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    python_repo(&src);
    sh(dir, "git clone -q --bare src calc.git");
    dir.join("calc.git")
}

/// Points `cfg` at the fake with fast polls and retries. The token is a known secret, so
/// redaction covers it as it would in production.
pub(crate) fn github_config(cfg: &mut Config, fake: &FakeGithub) {
    cfg.github = GithubEndpoint {
        api_url: fake.api_url(),
        auth: Some(GithubAuth::Token(TOKEN.into())),
        webhook_secret: None,
    };
    cfg.file.github = GithubConfig {
        ci_timeout_s: 60,
        ci_poll_ms: 50,
        ci_poll_max_ms: 200,
        max_retries: 4,
        retry_base_ms: 20,
        max_rate_limit_wait_s: 5,
    };
    cfg.secret_values.0.push(TOKEN.into());
}

struct Gh {
    h: Harness,
    fake: FakeGithub,
    _dir: tempfile::TempDir,
}

impl Gh {
    async fn start(script: Vec<Turn>) -> Self {
        Self::with(script, |_| {}).await
    }

    async fn with(script: Vec<Turn>, tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bare = bare_repo(dir.path());
        let fake = FakeGithub::start(&bare, "acme", "calc").await;
        let h = Harness::with(Backend::Bwrap, LlmProvider::Anthropic, script, |cfg| {
            github_config(cfg, &fake);
            tweak(cfg);
        })
        .await;
        Self { h, fake, _dir: dir }
    }

    fn task(&self, text: &str) -> Task {
        let repo = RepoRef {
            name: "acme/calc".into(),
            source: "https://github.com/acme/calc.git".into(),
            base: "main".into(),
            forge: ForgeKind::Github,
        };
        let mut t = Task::new(repo, "U0ALICE", Origin::Cli, text);
        t.thread_url = Some(THREAD_URL.into());
        t
    }

    fn calls(&self, method: &str, path_suffix: &str) -> Vec<Call> {
        self.fake
            .api_calls()
            .into_iter()
            .filter(|c| c.method == method && c.path.ends_with(path_suffix))
            .collect()
    }

    fn pr(&self) -> Value {
        let pulls = self.fake.pulls();
        assert_eq!(pulls.len(), 1, "exactly one PR: {pulls:#?}");
        pulls[0].clone()
    }
}

fn gate<'a>(r: &'a RunReport, name: &str) -> &'a slipway::report::Gate {
    r.gates
        .iter()
        .find(|g| g.name == name)
        .unwrap_or_else(|| panic!("no {name} gate in {:?}", r.gates))
}

/// A CI fix round's turns: a change (so there is something new to push), then finish.
fn ci_fix_turns(n: u32) -> Vec<Turn> {
    vec![
        Turn::call(
            "write_file",
            json!({"path": format!("ci_fix_{n}.txt"), "content": format!("round {n}\n")}),
        ),
        Turn::call("finish", json!({"summary": format!("CI fix {n}.")})),
    ]
}

fn failing_ci(n: u32) -> Ci {
    Ci::Fail {
        check: "test".into(),
        summary: format!("1 test failed (CI run {n})"),
        text: format!("AssertionError: mul(2, 3) != 6 in test_calc.py (CI run {n})"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_opens_one_labelled_pr_with_the_gate_report_and_a_revision_updates_it() {
    let gh = Gh::start(fix_then_document_script()).await;
    let mut task = gh.task("fix add() in calc.py: it subtracts");
    let report = gh.h.run(&mut task).await.unwrap();

    assert_eq!(report.decision, Decision::NeedsApproval, "{report:#?}");
    let ci = gate(&report, "ci");
    assert_eq!(ci.status, GateStatus::Pass, "{ci:?}");
    assert!(
        ci.detail.contains("build") && ci.detail.contains("test"),
        "{ci:?}"
    );
    let pr = gh.pr();
    assert_eq!(report.pr_url.as_deref(), pr["html_url"].as_str());
    assert_eq!(pr["head"]["ref"], json!(task.branch));
    assert_eq!(pr["base"]["ref"], json!("main"));
    assert_eq!(
        pr["title"],
        json!("slipway: fix add() in calc.py: it subtracts")
    );
    assert!(
        pr["labels"].to_string().contains("\"slipway\""),
        "{}",
        pr["labels"]
    );
    // The body: summary, thread link, gate report (with CI's verdict), cost, tool calls.
    let body = pr["body"].as_str().unwrap();
    for needle in [
        "add() subtracted; it adds now.",
        THREAD_URL,
        "| tests | ✅ pass",
        "| ci | ✅ pass",
        "$0.",
        "<details><summary>Tool calls (4)</summary>",
        "`edit_file`",
    ] {
        assert!(
            body.contains(needle),
            "{needle:?} not in the PR body:\n{body}"
        );
    }
    assert_eq!(
        gh.fake.ref_sha(&task.branch).as_deref(),
        report.commit.as_deref(),
        "the pushed branch is the tested commit"
    );
    let stored = gh.h.runner.store.get_task(&task.id).unwrap().unwrap();
    assert_eq!(stored.pr_number, Some(1));
    let first_calls = gh.fake.api_calls().len();
    let run = gh.h.runner.store.get_run(&report.run_id).unwrap().unwrap();
    let publish = run.nodes.iter().find(|n| n.node == "publish").unwrap();
    eprintln!("publish (push + PR) took {} ms", publish.duration_ms);

    // Revision 2: same branch, same PR, new body.
    task.revisions.push(Revision {
        number: 2,
        instructions: "also document mul()".into(),
        context: vec![],
        untrusted_context: vec![],
        links: vec![],
        created_ms: 0,
        author: None,
    });
    let second = gh.h.run(&mut task).await.unwrap();
    assert_eq!(second.pr_url, report.pr_url);
    assert_eq!(
        gh.calls("POST", "/repos/acme/calc/pulls").len(),
        1,
        "never a second PR"
    );
    let pr = gh.pr();
    let body = pr["body"].as_str().unwrap();
    assert!(
        body.contains("revision 2") && body.contains("Documented mul()."),
        "{body}"
    );
    assert_eq!(
        gh.fake.ref_sha(&task.branch).as_deref(),
        second.commit.as_deref()
    );
    let bare = gh._dir.path().join("calc.git");
    let commits = sh(
        &bare,
        &format!("git rev-list --count main..{}", task.branch),
    );
    assert_eq!(commits.trim(), "2");
    eprintln!(
        "GitHub API calls: first run {first_calls}, revision {}",
        gh.fake.api_calls().len() - first_calls
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_fails_once_then_a_fix_round_makes_it_pass() {
    let mut script = fix_script();
    script.extend(ci_fix_turns(1));
    let gh = Gh::start(script).await;
    gh.fake.push_ci(Ci::PendingThen(Box::new(failing_ci(1))));
    gh.fake.push_ci(Ci::Pass);
    let mut task = gh.task("fix add() in calc.py: it subtracts");
    let report = gh.h.run(&mut task).await.unwrap();

    let ci = gate(&report, "ci");
    assert_eq!(ci.status, GateStatus::Pass, "{report:#?}");
    assert!(ci.detail.contains("after 1 CI fix round"), "{ci:?}");
    assert_eq!(report.fix_rounds, 1);
    assert_eq!(report.decision, Decision::NeedsApproval);
    // The model saw the failing check's output in its CI fix turn, in the same conversation.
    let reqs = gh.h.fake.requests();
    let fix_turn = reqs
        .iter()
        .find(|r| r.body.to_string().contains("CI fix round 1 of at most 2"))
        .expect("a CI fix turn");
    let text = fix_turn.body.to_string();
    assert!(text.contains("AssertionError: mul(2, 3) != 6 in test_calc.py (CI run 1)"));
    assert!(
        text.contains("add() subtracted; it adds now."),
        "the conversation continues"
    );
    let run = gh.h.runner.store.get_run(&report.run_id).unwrap().unwrap();
    let nodes: Vec<&str> = run.nodes.iter().map(|n| n.node.as_str()).collect();
    assert!(nodes.contains(&"ci_fix"), "{nodes:?}");
    assert_eq!(nodes.iter().filter(|n| **n == "ci").count(), 2, "{nodes:?}");
    // Both commits were pushed to the one PR; the final head is the fixed one.
    assert_eq!(
        gh.fake.ref_sha(&task.branch).as_deref(),
        report.commit.as_deref()
    );
    assert_eq!(gh.calls("POST", "/repos/acme/calc/pulls").len(), 1);
    assert!(
        gh.pr()["body"]
            .as_str()
            .unwrap()
            .contains("after 1 CI fix round")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_ci_failure_stops_the_run() {
    let mut script = fix_script();
    script.extend(ci_fix_turns(1));
    script.extend(ci_fix_turns(2));
    let gh = Gh::start(script).await;
    for n in 1..=3 {
        gh.fake.push_ci(failing_ci(n));
    }
    let mut task = gh.task("fix add() in calc.py: it subtracts");
    let report = gh.h.run(&mut task).await.unwrap();

    assert_eq!(report.decision, Decision::Halt, "{report:#?}");
    let ci = gate(&report, "ci");
    assert_eq!(ci.status, GateStatus::Fail);
    assert!(ci.detail.contains("no CI fix rounds left"), "{ci:?}");
    assert_eq!(report.fix_rounds, 2);
    assert_eq!(gh.h.fake.remaining(), 0, "exactly two CI fix rounds ran");
    let stored = gh.h.runner.store.get_task(&task.id).unwrap().unwrap();
    assert_eq!(stored.state, TaskState::Halted);
    // The PR says why it stopped.
    assert!(
        gh.pr()["body"]
            .as_str()
            .unwrap()
            .contains("no CI fix rounds left")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_sends_the_exact_tested_sha_and_405_409_are_typed() {
    let gh = Gh::start(fix_script()).await;
    let mut task = gh.task("fix add() in calc.py: it subtracts");
    let report = gh.h.run(&mut task).await.unwrap();
    let task = gh.h.runner.store.get_task(&task.id).unwrap().unwrap();
    let tested = report.commit.clone().unwrap();
    let forge = gh.h.runner.forges.of(&task).unwrap().clone();
    let req = MergeRequest {
        tested: &tested,
        method: MergeMethod::Squash,
        approver: "U0BOB",
        thread_url: Some(THREAD_URL),
        delete_branch: true,
    };

    gh.fake.set_mergeable(Some(false));
    gh.fake
        .set_merge_response(405, "Pull Request is not mergeable");
    match forge.merge(&task, &req).await {
        Err(ForgeError::NotMergeable { reason, .. }) => {
            assert!(reason.contains("conflicts with main"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    gh.fake.set_mergeable(Some(true));
    gh.fake.set_merge_response(
        409,
        "Head branch was modified. Review and try the merge again.",
    );
    assert!(matches!(
        forge.merge(&task, &req).await,
        Err(ForgeError::HeadMoved { .. })
    ));
    let main_before = gh.fake.ref_sha("main");

    let before = gh.fake.api_calls().len();
    let merged = forge.merge(&task, &req).await.unwrap();
    eprintln!("merge API calls: {}", gh.fake.api_calls().len() - before);
    let puts = gh.calls("PUT", "/pulls/1/merge");
    assert_eq!(puts.len(), 3);
    for p in &puts {
        assert_eq!(
            p.body["sha"],
            json!(tested),
            "every merge names the tested SHA"
        );
        assert_eq!(p.body["merge_method"], json!("squash"));
    }
    assert_eq!(gh.fake.ref_sha("main"), Some(merged.sha.clone()));
    assert_ne!(gh.fake.ref_sha("main"), main_before);
    let bare = gh._dir.path().join("calc.git");
    assert!(sh(&bare, "git show main:calc.py").contains("return a + b"));
    let comments = gh.fake.comments(1);
    assert!(
        comments.iter().any(|c| c.contains("Approved by: U0BOB")
            && c.contains("Requested by: U0ALICE")
            && c.contains(&tested)),
        "{comments:?}"
    );
    assert_eq!(gh.fake.ref_sha(&task.branch), None, "the branch is deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_502_and_rate_limits_are_retried() {
    let gh = Gh::start(fix_script()).await;
    gh.fake.fail_next(
        "GET",
        "/repos/acme/calc",
        502,
        vec![],
        json!({"message": "Server Error"}),
    );
    gh.fake.fail_next(
        "POST",
        "/repos/acme/calc/pulls",
        403,
        vec![("retry-after".into(), "1".into())],
        json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}),
    );
    let reset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    gh.fake.fail_next(
        "GET",
        "/check-runs",
        403,
        vec![
            ("x-ratelimit-remaining".into(), "0".into()),
            ("x-ratelimit-reset".into(), reset.to_string()),
        ],
        json!({"message": "API rate limit exceeded for installation ID 1."}),
    );
    let mut task = gh.task("fix add() in calc.py: it subtracts");
    let report = gh.h.run(&mut task).await.unwrap();
    assert_eq!(gate(&report, "ci").status, GateStatus::Pass, "{report:#?}");
    assert!(report.pr_url.is_some());
    let statuses = |m: &str, suffix: &str| -> Vec<u16> {
        gh.calls(m, suffix).iter().map(|c| c.status).collect()
    };
    assert_eq!(statuses("GET", "/repos/acme/calc")[..2], [502, 200]);
    assert_eq!(statuses("POST", "/repos/acme/calc/pulls"), [403, 201]);
    assert_eq!(statuses("GET", "/check-runs")[..2], [403, 200]);
    assert_eq!(gh.fake.pulls().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pr_creation_is_idempotent_after_a_crash_between_push_and_pr() {
    let mut script = fix_script();
    script.extend(fix_script());
    script.extend(fix_script());
    let gh = Gh::start(script).await;
    // GitHub fails every attempt to open the PR: the push happened, the PR did not.
    for _ in 0..5 {
        gh.fake.fail_next(
            "POST",
            "/repos/acme/calc/pulls",
            502,
            vec![],
            json!({"message": "Server Error"}),
        );
    }
    let mut task = gh.task("fix add() in calc.py: it subtracts");
    let failed = gh.h.run(&mut task).await.unwrap();
    assert_eq!(failed.decision, Decision::Halt);
    assert!(
        failed.reasons[0].contains("react 🔁 on the report to resume")
            || failed.reasons[0].contains("502"),
        "{:?}",
        failed.reasons
    );
    assert!(gh.fake.ref_sha(&task.branch).is_some(), "pushed");
    assert!(gh.fake.pulls().is_empty());

    // The rerun opens exactly one PR.
    let again = gh.h.run(&mut task).await.unwrap();
    assert!(again.pr_url.is_some(), "{again:#?}");
    assert_eq!(gh.fake.pulls().len(), 1);

    // The store loses the PR number: the PR is found by its head branch, not opened again.
    let t = gh.h.runner.store.get_task(&task.id).unwrap().unwrap();
    let mut task =
        gh.h.runner
            .store
            .update_task(&t, |t| t.pr_number = None)
            .await
            .unwrap();
    let third = gh.h.run(&mut task).await.unwrap();
    assert_eq!(third.pr_url, again.pr_url);
    assert_eq!(gh.fake.pulls().len(), 1);
    let creates: Vec<u16> = gh
        .calls("POST", "/repos/acme/calc/pulls")
        .iter()
        .map(|c| c.status)
        .collect();
    assert_eq!(
        creates.iter().filter(|s| **s == 201).count(),
        1,
        "{creates:?}"
    );
    assert!(
        gh.calls("GET", "/repos/acme/calc/pulls")
            .iter()
            .any(|c| c.query.contains("head=acme:slipway/")),
        "looked up by head branch"
    );
}

/// A `tracing` writer into a shared buffer, so a test can read every log line.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                hits.push(p);
            }
        }
    }
    hits
}

#[tokio::test(flavor = "current_thread")]
async fn the_token_never_reaches_git_config_the_sandbox_logs_or_the_store() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let probe = "env; cat /workspace/.git/config; git -C /workspace config --list; ls -la ~ /workspace/.git";
    let mut script = fix_script();
    script.insert(2, Turn::call("run", json!({"command": probe})));
    let gh = Gh::start(script).await;
    let mut task = gh.task("fix add() in calc.py: it subtracts");
    let report = gh.h.run(&mut task).await.unwrap();
    assert!(report.pr_url.is_some(), "{report:#?}");

    let basic = crate::support::fake_github::basic_auth(TOKEN);
    let encoded = basic.trim_start_matches("Basic ").to_string();
    // git really authenticated (the fake refuses git without the header)…
    let git: Vec<Call> = gh
        .fake
        .calls()
        .into_iter()
        .filter(|c| c.path.starts_with("/git/"))
        .collect();
    assert!(
        git.iter().any(|c| c.path.ends_with("git-upload-pack")),
        "fetched over HTTP"
    );
    assert!(
        git.iter().any(|c| c.path.ends_with("git-receive-pack")),
        "pushed over HTTP"
    );
    assert!(
        git.iter()
            .filter(|c| c.status == 200)
            .all(|c| c.auth == basic)
    );
    // …and the sandbox saw neither the token nor the header: the probe's output went to the
    // model, and no request to it contains them.
    let probe_seen =
        gh.h.fake.requests().iter().any(|r| {
            r.body.to_string().contains("GIT_CONFIG") || r.body.to_string().contains("HOME=")
        });
    assert!(probe_seen, "the probe ran in the sandbox");
    for r in gh.h.fake.requests() {
        let b = r.body.to_string();
        assert!(
            !b.contains(TOKEN) && !b.contains(&encoded),
            "the sandbox leaked it: {b}"
        );
        assert!(!b.contains("extraHeader"), "{b}");
    }
    // Nothing on disk under the data dir (store, mirrors' and clones' git config, homes).
    for needle in [TOKEN.as_bytes(), encoded.as_bytes()] {
        let hits = files_containing(gh.h.data.path(), needle);
        assert!(hits.is_empty(), "found in {hits:?}");
    }
    // Not in the logs, which did record the run.
    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).to_string();
    assert!(text.contains("acme/calc"), "logs were captured");
    assert!(
        !text.contains(TOKEN) && !text.contains(&encoded),
        "the logs leaked it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_app_mints_an_installation_token_for_the_api_and_git() {
    let dir = tempfile::tempdir().unwrap();
    sh(
        dir.path(),
        "openssl genrsa -traditional -out app.pem 2048 2>/dev/null || openssl genrsa -out app.pem 2048",
    );
    let key = std::fs::read_to_string(dir.path().join("app.pem")).unwrap();
    let gh = Gh::with(fix_script(), |cfg| {
        cfg.github.auth = Some(GithubAuth::App {
            app_id: 4242,
            private_key: key.clone(),
        });
    })
    .await;
    gh.fake.enable_app(4242, 77);
    let mut task = gh.task("fix add() in calc.py: it subtracts");
    let report = gh.h.run(&mut task).await.unwrap();
    assert!(report.pr_url.is_some(), "{report:#?}");
    let calls = gh.fake.calls();
    let lookup = calls
        .iter()
        .find(|c| c.path == "/repos/acme/calc/installation")
        .expect("the installation is looked up");
    assert!(lookup.auth.starts_with("Bearer ey"), "JWT: {}", lookup.auth);
    assert!(
        calls
            .iter()
            .any(|c| c.path == "/app/installations/77/access_tokens" && c.status == 201)
    );
    let tokens = gh.fake.installation_tokens();
    assert!(!tokens.is_empty());
    let pulls = calls
        .iter()
        .find(|c| c.path == "/repos/acme/calc/pulls" && c.method == "POST")
        .unwrap();
    assert_eq!(pulls.auth, format!("Bearer {}", tokens[0]));
    let git = calls
        .iter()
        .find(|c| c.path.ends_with("git-receive-pack"))
        .unwrap();
    assert_eq!(
        git.auth,
        crate::support::fake_github::basic_auth(&tokens[0])
    );
}

/// Slack ✅ through GitHub: 405 and 409 answered in the thread, then a merge; ⏪ opens a
/// revert PR after the checks ran on it; ❌ closes that PR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_merge_refusals_merge_revert_and_close_go_through_github() {
    let dir = tempfile::tempdir().unwrap();
    let bare = bare_repo(dir.path());
    // main's tests pass, so the revert of the change below passes them too.
    sh(
        dir.path(),
        "cd src && sed -i 's/return a - b/return a + b/' calc.py && git commit -qam 'fix add' && git push -q ../calc.git main",
    );
    let fake = FakeGithub::start(&bare, "acme", "calc").await;
    let bot = Bot::start(Backend::Bwrap, document_mul_turns(), |cfg| {
        github_config(cfg, &fake);
        cfg.file.repos = vec![RepoConfig {
            name: "acme/calc".into(),
            channels: vec![DEV.into()],
            forge: ForgeKind::Github,
            url: None,
            base: "main".into(),
            merge_method: MergeMethod::Squash,
            delete_branch: true,
            restrict_to_channels: false,
            requesters: vec![],
            image: None,
            setup: None,
        }];
    })
    .await;
    let thread = bot.mention("<@U0BOT> document mul() in calc.py").await;
    bot.wait_reports(&thread, 1).await;
    let report = bot.slack.reports(DEV, &thread.ts)[0].clone();
    assert!(
        report.text.contains("github.com/acme/calc/pull/1"),
        "{}",
        report.text
    );
    // The PR link reached the status message before the report (at push time).
    let status = bot.slack.bot_posts(DEV, &thread.ts)[0].clone();
    let status_text = bot.slack.text_of(DEV, &status.ts).unwrap();
    assert!(
        status_text.contains("🔗 <https://github.com/acme/calc/pull/1|pull request>"),
        "{status_text}"
    );
    let task = bot.tasks()[0].clone();
    assert_eq!(
        task.thread_url.as_deref().map(|u| u.is_empty()),
        Some(false)
    );
    assert!(
        fake.pulls()[0]["body"]
            .as_str()
            .unwrap()
            .contains(task.thread_url.as_deref().unwrap())
    );

    fake.set_mergeable(Some(false));
    fake.set_merge_response(405, "Pull Request is not mergeable");
    bot.react("U0BOB", "white_check_mark", &report.ts).await;
    let said = bot.wait_post(&thread.ts, "GitHub will not merge").await;
    assert!(said.text.contains("conflicts with main"), "{}", said.text);
    fake.set_mergeable(Some(true));
    fake.set_merge_response(
        409,
        "Head branch was modified. Review and try the merge again.",
    );
    bot.react("U0BOB", "white_check_mark", &report.ts).await;
    let said = bot.wait_post(&thread.ts, "nothing was merged").await;
    assert!(said.text.contains("moved"), "{}", said.text);
    bot.react("U0BOB", "white_check_mark", &report.ts).await;
    bot.wait_post(&thread.ts, "✅ Merged").await;
    let merged = bot.tasks().into_iter().find(|t| t.id == task.id).unwrap();
    assert_eq!(merged.state, TaskState::Merged);
    assert_eq!(merged.merge_commit, fake.ref_sha("main"));

    // ⏪: a revert task runs the checks on the revert, then opens PR #2.
    bot.react("U0ALICE", "rewind", &report.ts).await;
    bot.wait_reports(&thread, 2).await;
    let revert_report = bot.slack.reports(DEV, &thread.ts)[1].clone();
    assert!(
        revert_report.text.contains("/pull/2"),
        "{}",
        revert_report.text
    );
    let pulls = fake.pulls();
    let revert_pr = pulls.iter().find(|p| p["number"] == json!(2)).unwrap();
    assert!(
        revert_pr["title"].as_str().unwrap().starts_with("Revert"),
        "{revert_pr}"
    );
    assert!(
        revert_pr["body"]
            .as_str()
            .unwrap()
            .contains("| tests | ✅ pass")
    );
    let head = revert_pr["head"]["ref"].as_str().unwrap();
    let reverted = sh(&bare, &format!("git show {head}:calc.py"));
    assert!(
        !reverted.contains("Multiplies.") && reverted.contains("return a + b"),
        "{reverted}"
    );
    // A second ⏪ does not open another.
    bot.react("U0ALICE", "rewind", &report.ts).await;
    bot.wait_post(&thread.ts, "A revert of this task exists already")
        .await;

    // ❌ on the revert's report closes its PR.
    bot.react("U0ALICE", "x", &revert_report.ts).await;
    bot.wait_post(&thread.ts, "is closed").await;
    settle().await;
    let pulls = fake.pulls();
    let revert_pr = pulls.iter().find(|p| p["number"] == json!(2)).unwrap();
    assert_eq!(revert_pr["state"], json!("closed"));
    bot.stop().await;
}

/// A merge GitHub performed but answered 502 is recorded as merged: the PUT is not retried
/// (a retry would get 405, "not mergeable"), the PR is read instead. And a merge intent left
/// by a crash is settled from the PR at the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_whose_answer_is_lost_is_recorded_once_and_an_interrupted_one_is_settled() {
    use slipway::actions::merge::{MergeAuthority, merge_request, merge_tested, settle_merges};
    let gh = Gh::start(fix_script()).await;
    let mut task = gh.task("fix add() in calc.py: it subtracts");
    let report = gh.h.run(&mut task).await.unwrap();
    let store = gh.h.runner.store.clone();
    let task = store.get_task(&task.id).unwrap().unwrap();
    assert_eq!(task.state, TaskState::Ready, "{report:#?}");
    let tested = report.commit.clone().unwrap();
    let forge = gh.h.runner.forges.of(&task).unwrap().clone();
    let repos: Vec<RepoConfig> = vec![];
    let req = merge_request(&repos, &task, &tested, "U0BOB");

    gh.fake.merge_then_answer(502);
    let merged = merge_tested(
        forge.as_ref(),
        &store,
        &task,
        &req,
        MergeAuthority::Approval { approver: "U0BOB" },
    )
    .await
    .expect("the merge happened, whatever the answer said");
    assert_eq!(
        gh.calls("PUT", "/pulls/1/merge").len(),
        1,
        "never retried blindly"
    );
    let stored = store.get_task(&task.id).unwrap().unwrap();
    assert_eq!(stored.state, TaskState::Merged);
    assert_eq!(stored.merge_commit.as_deref(), Some(merged.sha.as_str()));
    assert_eq!(stored.merging, None);
    assert_eq!(Some(merged.sha.clone()), gh.fake.ref_sha("main"));

    // A crash between the intent and its record: the task is left merging. The next start
    // asks GitHub (merged at the tested commit) and records it, audited as the approver.
    store
        .update_task(&stored, |t| {
            t.state = TaskState::Merging;
            t.merge_commit = None;
            t.merging = Some(slipway::task::MergeIntent {
                tested: tested.clone(),
                from: TaskState::Ready,
                actor: "U0BOB".into(),
                run_id: None,
                at_ms: 1,
            });
        })
        .await
        .unwrap();
    let settled = settle_merges(&store, &gh.h.runner.forges, &repos)
        .await
        .unwrap();
    assert_eq!(settled.len(), 1);
    let stored = store.get_task(&task.id).unwrap().unwrap();
    assert_eq!(
        (stored.state, stored.merge_commit.as_deref()),
        (TaskState::Merged, Some(merged.sha.as_str()))
    );
    // Settling twice does nothing more.
    assert!(
        settle_merges(&store, &gh.h.runner.forges, &repos)
            .await
            .unwrap()
            .is_empty()
    );
}
