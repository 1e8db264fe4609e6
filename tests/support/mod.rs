//! Test support: real git repos, real sled, real sandboxes (Podman via its Docker API, and
//! bubblewrap), and a fake model server on loopback. Nothing here mutates the process
//! environment.

#![allow(dead_code)]

pub mod chaos;
pub mod fake_github;
pub mod fake_llm;
pub mod fake_slack;
pub mod real_projects;
pub mod registries;
pub mod serve_child;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use fake_llm::{FakeLlm, Turn};
use slipway::agent::llm::settings::LlmProvider;
use slipway::config::Config;
use slipway::forge::Forges;
use slipway::report::RunReport;
use slipway::runner::{RunError, Runner};
use slipway::sandbox::bwrap::BwrapSandbox;
use slipway::sandbox::docker::DockerSandbox;
use slipway::sandbox::{Backend, Sandbox};
use slipway::store::Store;
use slipway::task::{Origin, RepoRef, Task};
use slipway::workspace::Workspaces;

/// The sandbox image tests use (`slipway sandbox build` makes it; `.ci/run` builds it when
/// absent).
pub const IMAGE: &str = "slipway-sandbox:local";

/// The engine socket: `DOCKER_HOST` when set, else Podman's rootful socket.
pub fn docker_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///run/podman/podman.sock".into())
}

/// Runs a command and panics with its output on failure.
pub fn sh(dir: &Path, cmd: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Creates a git repo at `dir` with `files` committed on `main`.
pub fn git_repo(dir: &Path, files: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).unwrap();
    sh(
        dir,
        "git init -q -b main . && git config user.email t@example.com && git config user.name tester",
    );
    for (path, content) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    sh(dir, "git add -A && git commit -qm initial");
}

pub const CALC_BUGGY: &str =
    "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n";
pub const TEST_CALC: &str = "import unittest\n\nfrom calc import add, mul\n\n\nclass CalcTest(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n\n    def test_mul(self):\n        self.assertEqual(mul(2, 3), 6)\n\n\nif __name__ == \"__main__\":\n    unittest.main()\n";

/// A small Python repo whose `add` subtracts; `python3 -m unittest` fails on it.
pub fn python_repo(dir: &Path) {
    git_repo(
        dir,
        &[
            ("calc.py", CALC_BUGGY),
            ("test_calc.py", TEST_CALC),
            ("AGENTS.md", "Keep functions pure.\n"),
        ],
    );
}

/// The scripted turns that add a docstring to `mul` and finish.
pub fn document_mul_turns() -> Vec<Turn> {
    vec![
        Turn::call(
            "edit_file",
            json!({"path": "calc.py", "old_text": "def mul(a, b):", "new_text": "def mul(a, b):\n    \"\"\"Multiplies.\"\"\""}),
        ),
        Turn::call("finish", json!({"summary": "Documented mul()."})),
    ]
}

/// Two runs' worth of turns: the add() fix, then a docstring for mul().
pub fn fix_then_document_script() -> Vec<Turn> {
    let mut script = fix_script();
    script.extend(document_mul_turns());
    script
}

/// The scripted agent that fixes `add`.
pub fn fix_script() -> Vec<Turn> {
    vec![
        Turn::call("read_file", json!({"path": "calc.py"})),
        Turn::call(
            "edit_file",
            json!({"path": "calc.py", "old_text": "return a - b", "new_text": "return a + b"}),
        ),
        Turn::call("run", json!({"command": "python3 -m unittest"})),
        Turn::call(
            "finish",
            json!({"summary": "add() subtracted; it adds now."}),
        ),
    ]
}

/// Connects to the test engine, or fails with what to do.
pub async fn docker() -> DockerSandbox {
    let d = DockerSandbox::connect(Some(&docker_host()), IMAGE)
        .await
        .unwrap_or_else(|e| panic!("these tests need a container engine: {e}. Run `bash .ci/run`, which installs Podman and starts its API socket."));
    assert!(
        d.image_exists(IMAGE).await.unwrap(),
        "the sandbox image {IMAGE} is missing: run `cargo run -- sandbox build` (or `bash .ci/run`)"
    );
    d
}

pub async fn sandbox(backend: Backend) -> Arc<dyn Sandbox> {
    match backend {
        Backend::Docker => Arc::new(docker().await),
        Backend::Bwrap => Arc::new(
            BwrapSandbox::detect().expect("bubblewrap is needed: apt-get install bubblewrap"),
        ),
    }
}

/// A runner against a fresh data dir, a fake model and a real sandbox.
pub struct Harness {
    pub runner: Runner,
    pub fake: FakeLlm,
    pub data: tempfile::TempDir,
    pub repo_dir: tempfile::TempDir,
}

impl Harness {
    /// `configure` may adjust the config before the runner is built.
    pub async fn with(
        backend: Backend,
        provider: LlmProvider,
        script: Vec<Turn>,
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        Self::with_repo(backend, provider, script, python_repo, configure).await
    }

    /// Like [`Harness::with`], but `make_repo` lays out and commits the repo (on `main`) in
    /// the empty directory it is given instead of the small Python calc repo.
    pub async fn with_repo(
        backend: Backend,
        provider: LlmProvider,
        script: Vec<Turn>,
        make_repo: impl FnOnce(&Path),
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        let fake = FakeLlm::start(script).await;
        let data = tempfile::tempdir().unwrap();
        let repo_dir = tempfile::tempdir().unwrap();
        make_repo(repo_dir.path());
        let mut cfg = Config::for_test(data.path(), Some(fake.endpoint(provider)));
        cfg.file.sandbox.command_timeout_s = 60;
        configure(&mut cfg);
        let cfg = Arc::new(cfg);
        let store = Store::open(&data.path().join("store")).unwrap();
        let (forges, workspaces) = Forges::build(&cfg, Workspaces::new(data.path())).unwrap();
        let llm = slipway::agent::llm::from_config(&cfg.llm, &cfg.file.llm).unwrap();
        let (registry, mcp) = slipway::tools::load_registry(&cfg, &[], true).await;
        let sandbox = sandbox(backend).await;
        let pool = slipway::env::pool::WarmPool::new(
            data.path(),
            cfg.file.sandbox.warm,
            std::time::Duration::from_secs(cfg.file.sandbox.env_ttl_h * 3600),
            sandbox.clone(),
        );
        let runner = Runner {
            cfg,
            store,
            workspaces,
            pool,
            sandbox,
            llm,
            forges,
            registry: Arc::new(registry),
            mcp,
        };
        Self {
            runner,
            fake,
            data,
            repo_dir,
        }
    }

    pub async fn new(backend: Backend, provider: LlmProvider, script: Vec<Turn>) -> Self {
        Self::with(backend, provider, script, |_| {}).await
    }

    pub fn repo_path(&self) -> PathBuf {
        std::fs::canonicalize(self.repo_dir.path()).unwrap()
    }

    pub fn task(&self, text: &str) -> Task {
        let repo = RepoRef {
            name: "acme/calc".into(),
            source: self.repo_path().display().to_string(),
            base: "main".into(),
            forge: Default::default(),
        };
        Task::new(repo, "U0ALICE", Origin::Cli, text)
    }

    pub async fn run(&self, task: &mut Task) -> Result<RunReport, RunError> {
        self.runner
            .run(task, "code_change", CancellationToken::new(), None)
            .await
    }

    /// Entries under the data dir's `worktrees/`, `gitdirs/`, `homes/` and the environment
    /// store's scratch (`envs/.bases`, `envs/.building`): none after a run.
    pub fn leftovers(&self) -> Vec<PathBuf> {
        [
            "worktrees",
            "gitdirs",
            "homes",
            "envs/.bases",
            "envs/.building",
        ]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(self.data.path().join(d))
                .into_iter()
                .flatten()
        })
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect()
    }
}

/// Names of containers labelled with `run_id`, running or not.
pub async fn containers_of(run_id: &str) -> Vec<String> {
    containers_labelled(&format!("slipway.run={run_id}")).await
}

/// Names of containers carrying `label` (`key=value`), running or not.
pub async fn containers_labelled(label: &str) -> Vec<String> {
    use bollard::query_parameters::ListContainersOptionsBuilder;
    use std::collections::HashMap;
    // A raw client: `DockerSandbox::connect` would reap orphans and hide what we look for.
    let host = docker_host();
    let path = host.trim_start_matches("unix://");
    let d = bollard::Docker::connect_with_unix(path, 30, bollard::API_DEFAULT_VERSION)
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
    let filters: HashMap<&str, Vec<&str>> = HashMap::from([("label", vec![label])]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    // Podman 4.3 reports a container being removed as state "stopped", which bollard's
    // state enum does not know (a JSON error): list again, a bounded number of times.
    let mut tries = 0;
    loop {
        match d.list_containers(Some(options.clone())).await {
            Ok(list) => return list.into_iter().filter_map(|c| c.id).collect(),
            Err(bollard::errors::Error::JsonDataError { .. }) if tries < 20 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("listing containers: {e}"),
        }
    }
}
