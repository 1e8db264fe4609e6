//! The `slipway` binary as operators use it: the contract's exit statuses, `--json` report,
//! `tasks`, and clear errors for bad input that leave nothing behind. Each child process
//! gets its own environment; the test process's is never changed.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::fake_llm::{FakeLlm, Turn};
use crate::support::{docker_host, fix_script, git_repo, python_repo, sh};
use serde_json::{Value, json};

fn slipway(data: &Path, extra_env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("SLIPWAY_DATA_DIR", data)
        .env("DOCKER_HOST", docker_host())
        .env("USER", "U0CLI")
        .current_dir(data);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn llm_env(fake: &FakeLlm) -> Vec<(&'static str, String)> {
    vec![
        ("SLIPWAY_LLM_PROVIDER", "openai".into()),
        ("SLIPWAY_LLM_BASE_URL", format!("http://{}/v1", fake.addr)),
        ("SLIPWAY_LLM_MODEL", "scripted-model".into()),
        (
            "SLIPWAY_LLM_API_KEY",
            "sk-live-do-not-leak-1234567890".into(),
        ),
    ]
}

fn env_refs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, s)| (*k, s.as_str())).collect()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_json_prints_the_report_and_exits_0_and_no_secret_reaches_the_sandbox() {
    // The agent dumps its environment into the repo; the branch must not hold the token.
    let mut script = vec![Turn::call("run", json!({"command": "env > env-dump.txt"}))];
    script.extend(fix_script());
    let fake = FakeLlm::start(script).await;
    let data = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    python_repo(repo.path());
    let mut env = llm_env(&fake);
    env.push((
        "GITHUB_TOKEN",
        "ghp_faketoken1234567890abcdefABCDEF0000".into(),
    ));
    env.push(("SLIPWAY_SANDBOX", "bwrap".into()));
    let repo_arg = repo.path().display().to_string();
    let out = slipway(
        data.path(),
        &env_refs(&env),
        &[
            "run", "--repo", &repo_arg, "--json", "fix", "add()", "in", "calc.py",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "task_id",
        "revision",
        "run_id",
        "repo",
        "base",
        "branch",
        "commit",
        "pr_url",
        "blueprint",
        "decision",
        "reasons",
        "classification",
        "gates",
        "tools",
        "fix_rounds",
        "agent",
        "timings_ms",
        "sandbox",
    ] {
        assert!(report.get(key).is_some(), "missing {key}");
    }
    assert_eq!(report["decision"], "needs_approval");
    assert_eq!(report["sandbox"]["backend"], "bwrap");
    assert!(
        stderr(&out).contains("implement"),
        "progress goes to stderr"
    );
    let branch = report["branch"].as_str().unwrap();
    let dump = sh(repo.path(), &format!("git show {branch}:env-dump.txt"));
    assert!(dump.contains("HOME=/home/sandbox"));
    assert!(
        !dump.contains("ghp_faketoken") && !dump.contains("GITHUB_TOKEN"),
        "{dump}"
    );
    assert!(!dump.contains("sk-live-do-not-leak"), "{dump}");

    // The store knows the task, and never holds the key.
    let list = slipway(data.path(), &[], &["tasks", "list"]);
    let task_id = report["task_id"].as_str().unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains(task_id));
    let show = slipway(data.path(), &[], &["tasks", "show", task_id]);
    let shown: Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(shown["runs"][0]["report"]["run_id"], report["run_id"]);
    assert!(
        shown["audit"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "decision")
    );
    let store_bytes = sh(
        data.path(),
        "cat store/db store/snap.* 2>/dev/null | strings | grep -c sk-live-do-not-leak || true",
    );
    assert_eq!(store_bytes.trim(), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halted_run_exits_1() {
    let fake = FakeLlm::start(vec![]).await;
    fake.repeat_forever(Turn::call("finish", json!({"summary": "did nothing"})));
    let data = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    python_repo(repo.path());
    let mut env = llm_env(&fake);
    env.push(("SLIPWAY_SANDBOX", "bwrap".into()));
    let repo_arg = repo.path().display().to_string();
    let out = slipway(
        data.path(),
        &env_refs(&env),
        &["run", "--repo", &repo_arg, "--json", "do nothing"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["decision"], "halt");
    assert!(
        report["reasons"].to_string().contains("no change"),
        "{}",
        report["reasons"]
    );
    assert_eq!(report["fix_rounds"], 2);
}

/// Bad input: exit 2, one clear line, and no task, worktree or container left behind.
fn assert_rejected(data: &Path, out: &Output, needle: &str) {
    assert_eq!(out.status.code(), Some(2), "{}", stderr(out));
    assert!(
        stderr(out).contains(needle),
        "expected {needle:?} in: {}",
        stderr(out)
    );
    let worktrees = data.join("worktrees");
    let left = std::fs::read_dir(&worktrees)
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "worktrees left behind");
    let list = slipway(data, &[], &["tasks", "list"]);
    assert!(
        String::from_utf8_lossy(&list.stdout).trim().is_empty(),
        "a task was stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_error_and_leaves_nothing_behind() {
    let fake = FakeLlm::start(vec![]).await;
    let data = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    python_repo(repo.path());
    let mut env = llm_env(&fake);
    env.push(("SLIPWAY_SANDBOX", "bwrap".into()));
    let env = env_refs(&env);
    let repo_arg = repo.path().display().to_string();

    let out = slipway(
        data.path(),
        &env,
        &["run", "--repo", "/nonexistent/repo", "fix it"],
    );
    assert_rejected(data.path(), &out, "does not exist");

    let not_git = tempfile::tempdir().unwrap();
    let out = slipway(
        data.path(),
        &env,
        &[
            "run",
            "--repo",
            &not_git.path().display().to_string(),
            "fix it",
        ],
    );
    assert_rejected(data.path(), &out, "not a git repository");

    let empty = tempfile::tempdir().unwrap();
    sh(empty.path(), "git init -q -b main .");
    let out = slipway(
        data.path(),
        &env,
        &[
            "run",
            "--repo",
            &empty.path().display().to_string(),
            "fix it",
        ],
    );
    assert_rejected(data.path(), &out, "is empty");

    let out = slipway(
        data.path(),
        &env,
        &["run", "--repo", &repo_arg, "--base", "release-9", "fix it"],
    );
    assert_rejected(
        data.path(),
        &out,
        "base branch \"release-9\" does not exist",
    );
    assert!(stderr(&out).contains("branches: main"));

    let out = slipway(data.path(), &env, &["run", "--repo", &repo_arg, "   "]);
    assert_rejected(data.path(), &out, "the task is empty");

    let out = slipway(
        data.path(),
        &[("SLIPWAY_SANDBOX", "bwrap")],
        &["run", "--repo", &repo_arg, "fix it"],
    );
    assert_rejected(data.path(), &out, "SLIPWAY_LLM_PROVIDER");

    let out = slipway(
        data.path(),
        &[
            ("SLIPWAY_LLM_PROVIDER", "anthropic"),
            ("SLIPWAY_LLM_MODEL", "m"),
        ],
        &["run", "--repo", &repo_arg, "fix it"],
    );
    assert_rejected(data.path(), &out, "SLIPWAY_LLM_API_KEY");

    let out = slipway(
        data.path(),
        &env,
        &["run", "--repo", &repo_arg, "--blueprint", "nope", "fix it"],
    );
    assert_rejected(data.path(), &out, "unknown blueprint");

    assert!(fake.requests().is_empty(), "no model call for bad input");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_is_named_with_the_command_that_builds_it() {
    let fake = FakeLlm::start(vec![]).await;
    let data = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    git_repo(repo.path(), &[("a.py", "x = 1\n")]);
    std::fs::write(
        data.path().join("slipway.toml"),
        "[sandbox]\nbackend = \"docker\"\nimage = \"slipway-no-such-image:none\"\n",
    )
    .unwrap();
    let env = llm_env(&fake);
    let out = slipway(
        data.path(),
        &env_refs(&env),
        &[
            "run",
            "--repo",
            &repo.path().display().to_string(),
            "fix it",
        ],
    );
    assert_rejected(data.path(), &out, "slipway sandbox build");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_config_key_is_named() {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("slipway.toml"), "[agent]\nmax_stepz = 3\n").unwrap();
    let out = slipway(data.path(), &[], &["tasks", "list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("max_stepz") && stderr(&out).contains("slipway.toml"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_reports_each_dependency() {
    let fake = FakeLlm::start(vec![]).await;
    let data = tempfile::tempdir().unwrap();
    let env = llm_env(&fake);
    let out = slipway(data.path(), &env_refs(&env), &["doctor"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    for line in ["config", "git", "sandbox", "llm", "slack", "github"] {
        assert!(err.contains(line), "{err}");
    }
    assert!(err.contains("docker (slipway-sandbox:local)"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_proves_each_sandbox_by_starting_one_and_leaves_nothing_behind() {
    let fake = FakeLlm::start(vec![]).await;
    let data = tempfile::tempdir().unwrap();
    let mut env = llm_env(&fake);
    env.push(("SLIPWAY_SANDBOX", "docker".into()));
    let out = slipway(data.path(), &env_refs(&env), &["doctor"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let line = |name: &str| {
        err.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_default()
            .to_string()
    };
    let docker = line("sandbox");
    assert!(docker.starts_with("ok"), "{err}");
    assert!(docker.contains("a sandbox started, ran a command with no network, and was removed"));
    let bwrap = line("bwrap");
    assert!(bwrap.starts_with("ok"), "{err}");
    // The smoke sandboxes' directories and containers are gone.
    let doctor_dirs = std::fs::read_dir(data.path().join("doctor"))
        .unwrap()
        .count();
    assert_eq!(doctor_dirs, 0);
    assert!(
        crate::support::containers_labelled("slipway.run")
            .await
            .iter()
            .all(|c| !c.contains("doctor")),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_mid_run_the_store_reopens_and_the_container_is_reaped() {
    let fake = FakeLlm::start(vec![Turn::call("run", json!({"command": "sleep 120"}))]).await;
    fake.repeat_forever(Turn::call("finish", json!({"summary": "x"})));
    let data = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    python_repo(repo.path());
    let mut env = llm_env(&fake);
    env.push(("SLIPWAY_SANDBOX", "docker".into()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway"));
    cmd.args([
        "run",
        "--repo",
        &repo.path().display().to_string(),
        "fix add()",
    ])
    .env_clear()
    .env("PATH", std::env::var("PATH").unwrap_or_default())
    .env("SLIPWAY_DATA_DIR", data.path())
    .env("DOCKER_HOST", docker_host())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .current_dir(data.path());
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    // Wait until the agent's `sleep 120` is running in the container.
    for _ in 0..300 {
        if fake.requests().len() >= 2 {
            break;
        }
        if fake.requests().len() == 1 {
            tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        fake.requests().len(),
        1,
        "the run should be inside its `run` call"
    );
    // While the run lives, its container exists (labelled with the run's process id).
    let owner = format!("slipway.pid={}", child.id());
    assert_eq!(
        crate::support::containers_labelled(&owner).await.len(),
        1,
        "the live run's container"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let list = slipway(data.path(), &[], &["tasks", "list", "--json"]);
    assert_eq!(list.status.code(), Some(0), "{}", stderr(&list));
    let tasks: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(tasks[0]["state"], "running");
    let run_id = tasks[0]["runs"][0].as_str().unwrap().to_string();
    // (Any slipway connecting to the engine now may already reap it: that is the point.)

    // The next slipway that connects to the engine removes containers of dead processes.
    let doctor = slipway(data.path(), &env_refs(&llm_env(&fake)), &["doctor"]);
    assert_eq!(doctor.status.code(), Some(0), "{}", stderr(&doctor));
    assert!(crate::support::containers_of(&run_id).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_relative_data_dir_works() {
    let fake = FakeLlm::start(fix_script()).await;
    let cwd = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    python_repo(repo.path());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway"));
    cmd.args([
        "run",
        "--repo",
        &repo.path().display().to_string(),
        "fix add()",
    ])
    .env_clear()
    .env("PATH", std::env::var("PATH").unwrap_or_default())
    .env("SLIPWAY_SANDBOX", "bwrap")
    .current_dir(cwd.path());
    for (k, v) in llm_env(&fake) {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(cwd.path().join(".slipway/store").is_dir());
    assert!(cwd.path().join(".slipway/mirrors").is_dir());
}
