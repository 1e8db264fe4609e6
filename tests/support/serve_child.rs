//! The real `slipway serve` binary as a child process, pointed by its documented environment
//! (`DESIGN.md` §3 "Environment": `SLACK_API_URL`, `SLACK_APP_TOKEN`, `SLACK_BOT_TOKEN`,
//! `GITHUB_API_URL`, `GITHUB_TOKEN`, `SLIPWAY_LLM_*`, `SLIPWAY_DATA_DIR`, `SLIPWAY_SANDBOX`)
//! at loopback fakes that live in this process: [`FakeSlack`] (Web API and Socket Mode),
//! [`FakeGithub`] (REST and git smart HTTP over a bare repo) and [`FakeLlm`].
//!
//! A [`World`] keeps one data dir and one `slipway.toml` across restarts, so a child killed
//! with SIGKILL comes back on the same store, as a crashed service would. It reads the
//! store only through the CLI (`slipway tasks list --json`, `slipway tasks show ID`), and only
//! while no child runs: sled allows one process per data dir (`FIELD_NOTES.md`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use super::fake_github::{FakeGithub, TOKEN};
use super::fake_llm::{FakeLlm, Turn};
use super::fake_slack::{self, FakeSlack};
use super::{git_repo, sh};

/// The channel whose default repo is `acme/calc`.
pub const DEV: &str = "C0DEV";
/// Starts tasks and may refine them.
pub const REQUESTER: &str = "U0ALICE";
/// The configured approver (not the requester).
pub const APPROVER: &str = "U0BOB";

/// A small Python repo whose tests pass on `main` (so every run can reach a report).
pub const CALC: &str = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n";

/// How the child is set up.
#[derive(Clone, Debug)]
pub struct WorldOpts {
    /// `bwrap` or `docker` (`SLIPWAY_SANDBOX`).
    pub backend: String,
    /// `[queue] concurrency`.
    pub concurrency: usize,
    /// `local` (a bare repo the service merges into) or `github` (the fake GitHub).
    pub forge: String,
}

impl Default for WorldOpts {
    fn default() -> Self {
        Self {
            backend: "bwrap".into(),
            concurrency: 2,
            forge: "github".into(),
        }
    }
}

/// The fakes, the data dir, and the child (when one runs).
pub struct World {
    pub slack: FakeSlack,
    pub github: FakeGithub,
    pub llm: FakeLlm,
    /// Holds `data/` (`SLIPWAY_DATA_DIR`), `slipway.toml`, `calc.git` and `serve.log`.
    pub dir: tempfile::TempDir,
    pub opts: WorldOpts,
    bin: PathBuf,
    child: Option<tokio::process::Child>,
    /// Children started so far.
    pub starts: usize,
}

/// The model every run meets: on a conversation's first request it writes a new file (a path
/// unique to the request, so revisions and merges never conflict) and finishes in the same
/// turn; on any later request (tool results came back) it finishes.
pub fn note_writer(n: u64, body: &Value) -> Turn {
    let answered = body["messages"]
        .as_array()
        .is_some_and(|m| m.iter().any(|m| m["role"] == "tool"));
    if answered {
        return Turn::call("finish", json!({"summary": "Done."}));
    }
    Turn::Tools(vec![
        (
            "write_file".into(),
            json!({"path": format!("notes/note_{n}.md"), "content": format!("Note {n}.\n")})
                .to_string(),
        ),
        (
            "finish".into(),
            json!({"summary": format!("Added notes/note_{n}.md.")}).to_string(),
        ),
    ])
}

impl World {
    /// Starts the fakes and writes the config; no child yet. `bin` is the `slipway` binary.
    pub async fn new(bin: &Path, opts: WorldOpts) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        git_repo(
            &src,
            &[
                ("calc.py", CALC),
                ("test_calc.py", super::TEST_CALC),
                ("AGENTS.md", "Keep functions pure.\n"),
            ],
        );
        sh(dir.path(), "git clone -q --bare src calc.git");
        let github = FakeGithub::start(&dir.path().join("calc.git"), "acme", "calc").await;
        let slack = FakeSlack::start().await;
        let llm = FakeLlm::start(vec![]).await;
        llm.respond_with(note_writer);
        let url = match opts.forge.as_str() {
            "local" => format!("url = \"{}\"\n", dir.path().join("calc.git").display()),
            _ => String::new(),
        };
        let toml = format!(
            r#"[slack]
approvers = ["{APPROVER}"]

[[repos]]
name = "acme/calc"
channels = ["{DEV}"]
forge = "{forge}"
{url}base = "main"
merge_method = "squash"

[queue]
concurrency = {concurrency}

[sandbox]
command_timeout_s = 120

[github]
ci_timeout_s = 120
ci_poll_ms = 50
ci_poll_max_ms = 200
max_retries = 4
retry_base_ms = 20
max_rate_limit_wait_s = 5
"#,
            forge = opts.forge,
            concurrency = opts.concurrency,
        );
        std::fs::write(dir.path().join("slipway.toml"), toml).unwrap();
        Self {
            slack,
            github,
            llm,
            dir,
            opts,
            bin: bin.to_path_buf(),
            child: None,
            starts: 0,
        }
    }

    /// `SLIPWAY_DATA_DIR`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The children's stderr, all starts appended.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("serve.log")
    }

    fn command(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.bin);
        c.arg("--config")
            .arg(self.dir.path().join("slipway.toml"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("SLACK_API_URL", &self.slack.api_url)
            .env("SLACK_APP_TOKEN", fake_slack::APP_TOKEN)
            .env("SLACK_BOT_TOKEN", fake_slack::BOT_TOKEN)
            .env("GITHUB_API_URL", self.github.api_url())
            .env("GITHUB_TOKEN", TOKEN)
            .env("SLIPWAY_LLM_PROVIDER", "openai")
            .env(
                "SLIPWAY_LLM_BASE_URL",
                format!("http://{}/v1", self.llm.addr),
            )
            .env("SLIPWAY_LLM_MODEL", "scripted-model")
            .env("SLIPWAY_LLM_API_KEY", "sk-test-fake-llm-key")
            .env("SLIPWAY_DATA_DIR", self.data_dir())
            .env("SLIPWAY_SANDBOX", &self.opts.backend)
            .current_dir(self.dir.path());
        if let Ok(h) = std::env::var("DOCKER_HOST") {
            c.env("DOCKER_HOST", h);
        }
        c
    }

    /// Starts `slipway serve` and waits for its Socket Mode connection (a new one).
    pub async fn spawn(&mut self) {
        assert!(self.child.is_none(), "a child is running already");
        let before = self.slack.connections();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = self
            .command()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.starts += 1;
        loop {
            if self.slack.connections() > before && self.slack.socket_open() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "slipway serve exited at start ({status}); see {}",
                    self.log_path().display()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether a child runs.
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL, then reaps the child.
    pub async fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
    }

    /// SIGTERM (graceful shutdown), then waits up to `grace` for the exit; returns its exit
    /// code, or `None` when it had to be killed with SIGKILL after `grace`.
    pub async fn stop(&mut self, grace: Duration) -> Option<i32> {
        let mut c = self.child.take()?;
        if let Some(pid) = c.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        match tokio::time::timeout(grace, c.wait()).await {
            Ok(status) => status.ok().and_then(|s| s.code()),
            Err(_) => {
                let _ = c.start_kill();
                let _ = c.wait().await;
                None
            }
        }
    }

    /// `slipway tasks list --json` (no child may run).
    pub async fn tasks(&self) -> Vec<Value> {
        self.cli_json(&["tasks", "list", "--json"])
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// `slipway tasks show ID`: `{"task", "runs", "audit"}` (no child may run).
    pub async fn show(&self, id: &str) -> Value {
        self.cli_json(&["tasks", "show", id]).await
    }

    async fn cli_json(&self, args: &[&str]) -> Value {
        assert!(self.child.is_none(), "sled allows one process per data dir");
        let out = self.command().args(args).output().await.unwrap();
        assert!(
            out.status.success(),
            "slipway {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if out.stdout.is_empty() {
            return Value::Null;
        }
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// The Slack thread a stored task came from (`origin.thread_ts`), if any.
pub fn thread_of(task: &Value) -> Option<String> {
    task["origin"]["thread_ts"].as_str().map(str::to_owned)
}

/// p-quantile (nearest rank) of `v`.
pub fn pct(mut v: Vec<f64>, q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1]
}
