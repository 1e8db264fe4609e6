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

/// The snapshot entries of the test repo: (key directory, number of setup builds recorded in
/// its `/env/builds`).
fn snapshots(h: &Harness) -> Vec<(std::path::PathBuf, usize)> {
    let envs = h.data.path().join("envs");
    let dir = std::fs::read_dir(&envs)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("acme_calc-"))
        })
        .unwrap_or_else(|| envs.join("acme_calc-none"));
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| {
            let builds = std::fs::read_to_string(e.path().join("env/builds")).unwrap_or_default();
            (e.path(), builds.lines().count())
        })
        .collect();
    out.sort();
    out
}

async fn checks_only(h: &Harness) -> slipway::report::RunReport {
    let mut task = h.task("does it set up?");
    h.runner
        .run(&mut task, "checks_only", CancellationToken::new(), None)
        .await
        .unwrap()
}

fn gate<'r>(report: &'r slipway::report::RunReport, name: &str) -> &'r slipway::report::Gate {
    report
        .gates
        .iter()
        .find(|g| g.name == name)
        .unwrap_or_else(|| panic!("no {name} gate: {report:#?}"))
}

/// Setup runs once per environment key: a second run reuses the snapshot, and a lockfile
/// change on the base builds a new one.
async fn the_environment_is_built_once_and_rebuilt_when_a_lockfile_changes(backend: Backend) {
    let h = Harness::new(backend, LlmProvider::Openai, vec![]).await;
    let repo = h.repo_path();
    std::fs::create_dir_all(repo.join(".slipway")).unwrap();
    std::fs::write(
        repo.join(".slipway/setup.sh"),
        "echo built >> /env/builds\necho ready > /env/greeting\n",
    )
    .unwrap();
    std::fs::write(
        repo.join(".slipway/policy.toml"),
        "[checks]\ntest = \"grep -q ready /env/greeting && ! touch /env/agent-was-here\"\n",
    )
    .unwrap();
    std::fs::write(repo.join("requirements.txt"), "# no dependencies yet\n").unwrap();
    sh(&repo, "git add -A && git commit -qm 'setup script'");

    let first = checks_only(&h).await;
    assert_eq!(gate(&first, "tests").status, GateStatus::Pass, "{first:#?}");
    let setup = gate(&first, "setup");
    assert_eq!(setup.status, GateStatus::Pass);
    assert!(
        setup.detail.contains(".slipway/setup.sh") && setup.detail.contains("built in"),
        "{}",
        setup.detail
    );
    assert_eq!(snapshots(&h).iter().map(|s| s.1).collect::<Vec<_>>(), [1]);

    let second = checks_only(&h).await;
    let setup = gate(&second, "setup");
    assert!(setup.detail.contains("cached"), "{}", setup.detail);
    assert_eq!(gate(&second, "tests").status, GateStatus::Pass);
    assert_eq!(
        snapshots(&h).iter().map(|s| s.1).collect::<Vec<_>>(),
        [1],
        "the hit ran no setup"
    );

    // A dependency change on the base is a new environment.
    std::fs::write(repo.join("requirements.txt"), "# one more line\n").unwrap();
    sh(&repo, "git commit -qam 'lockfile changed'");
    let third = checks_only(&h).await;
    assert!(
        gate(&third, "setup").detail.contains("built in"),
        "{}",
        gate(&third, "setup").detail
    );
    assert_eq!(
        snapshots(&h).iter().map(|s| s.1).collect::<Vec<_>>(),
        [1, 1],
        "two keys, each built once"
    );
    assert!(h.leftovers().is_empty(), "{:?}", h.leftovers());
    assert!(h.fake.requests().is_empty(), "no model spend");
}

#[tokio::test]
async fn the_environment_is_built_once_and_rebuilt_when_a_lockfile_changes_bwrap() {
    the_environment_is_built_once_and_rebuilt_when_a_lockfile_changes(Backend::Bwrap).await;
}

#[tokio::test]
async fn the_environment_is_built_once_and_rebuilt_when_a_lockfile_changes_docker() {
    the_environment_is_built_once_and_rebuilt_when_a_lockfile_changes(Backend::Docker).await;
}

/// Revision 2 onwards, the branch tip holds agent-written commits. Setup must come from the
/// base commit: an agent-added `-e ./pkg` requirement (whose `setup.py` would run with
/// network and plant a `usercustomize.py` that every later Python process runs) never runs.
async fn setup_never_runs_what_an_earlier_revision_wrote(backend: Backend) {
    let h = Harness::new(backend, LlmProvider::Openai, vec![]).await;
    let repo = h.repo_path();
    std::fs::create_dir_all(repo.join(".slipway")).unwrap();
    std::fs::write(repo.join("requirements.txt"), "# none\n").unwrap();
    std::fs::write(
        repo.join(".slipway/policy.toml"),
        "[checks]\ntest = \"python3 -c 'import sys; sys.exit(0)'\"\n",
    )
    .unwrap();
    sh(&repo, "git add -A && git commit -qm base");
    let task = h.task("does it set up?");
    // What an earlier revision's agent pushed to the task's branch.
    let plant = r#"import os, pathlib
for d in [os.environ.get("HOME", "/tmp"), "/env", "/workspace"]:
    try:
        pathlib.Path(d, "PWNED").write_text("setup ran agent code")
    except OSError:
        pass
site = pathlib.Path(os.environ.get("HOME", "/tmp"), ".local/lib/python3/site-packages")
site.mkdir(parents=True, exist_ok=True)
(site / "usercustomize.py").write_text("open('/workspace/PWNED-CHECK','w').write('x')\n")
from setuptools import setup
setup(name="evil", version="1")
"#;
    sh(
        &repo,
        &format!(
            "git checkout -qb {branch} && mkdir -p evil && printf '%s' \"$PLANT\" > evil/setup.py \
             && printf -- '-e ./evil\\n' >> requirements.txt && git add -A \
             && git commit -qm 'agent: add a dependency' && git checkout -q main",
            branch = task.branch
        )
        .replace("$PLANT", &plant.replace('\'', "'\\''").replace('"', "\\\"")),
    );
    let mut task = task;
    let report = h
        .runner
        .run(&mut task, "checks_only", CancellationToken::new(), None)
        .await
        .unwrap();
    let setup = gate(&report, "setup");
    assert_eq!(setup.status, GateStatus::Pass, "{report:#?}");
    assert_eq!(
        gate(&report, "tests").status,
        GateStatus::Pass,
        "{report:#?}"
    );
    let planted: Vec<_> = walk(h.data.path())
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("PWNED"))
        })
        .collect();
    assert!(
        planted.is_empty(),
        "agent code ran during setup or checks: {planted:?}"
    );
    let transcript = h.runner.store.transcript(&report.run_id).unwrap();
    let text = format!("{transcript:?}");
    assert!(
        !text.contains("evil"),
        "setup saw the agent's requirement: {text}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
    {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn setup_never_runs_what_an_earlier_revision_wrote_bwrap() {
    setup_never_runs_what_an_earlier_revision_wrote(Backend::Bwrap).await;
}

#[tokio::test]
async fn setup_never_runs_what_an_earlier_revision_wrote_docker() {
    setup_never_runs_what_an_earlier_revision_wrote(Backend::Docker).await;
}

/// Commits `files` to the test repo (paths with folders allowed).
fn commit_files(h: &Harness, files: &[(&str, &str)]) {
    let repo = h.repo_path();
    for (path, text) in files {
        let p = repo.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    sh(&repo, "git add -A && git commit -qm environment");
}

/// A devcontainer whose image is built from its Dockerfile (with a build arg), whose
/// `postCreateCommand` is the setup and whose `containerEnv` reaches the checks. Comments
/// and trailing commas are JSONC; `forwardPorts` is ignored with a note.
#[tokio::test]
async fn a_devcontainer_with_a_dockerfile_builds_its_image_and_runs_its_setup() {
    let h = Harness::new(Backend::Docker, LlmProvider::Openai, vec![]).await;
    commit_files(
        &h,
        &[
            (
                ".devcontainer/devcontainer.json",
                r#"{
  // the team's dev environment
  "build": { "dockerfile": "Dockerfile", "args": { "FLAVOUR": "baked" }, },
  "postCreateCommand": "echo made-by-post-create > /env/made",
  "containerEnv": { "GREETING": "hi" },
  "forwardPorts": [8000],
}"#,
            ),
            (
                ".devcontainer/Dockerfile",
                "FROM slipway-sandbox:local\nARG FLAVOUR\nRUN echo \"$FLAVOUR\" > /etc/flavour\n",
            ),
            (
                ".slipway/policy.toml",
                "[checks]\ntest = \"test \\\"$GREETING\\\" = hi && grep -q baked /etc/flavour && grep -q made-by-post-create /env/made\"\n",
            ),
        ],
    );
    let report = checks_only(&h).await;
    let setup = gate(&report, "setup");
    assert_eq!(setup.status, GateStatus::Pass, "{report:#?}");
    assert!(
        setup.detail.contains(".devcontainer/devcontainer.json")
            && setup
                .detail
                .contains("image localhost/slipway-env-acme-calc:")
            && setup.detail.contains("forwardPorts"),
        "{}",
        setup.detail
    );
    assert_eq!(
        gate(&report, "tests").status,
        GateStatus::Pass,
        "{report:#?}"
    );
    // The second run reuses the built image and the snapshot.
    let again = checks_only(&h).await;
    assert!(gate(&again, "setup").detail.contains("cached"));
    assert_eq!(gate(&again, "tests").status, GateStatus::Pass);
}

/// Bad environment input halts before the agent (no model spend), names the file or the
/// command in the setup gate and the reason, and leaves nothing behind.
async fn bad_input_halts_naming_the_cause(
    files: &[(&str, &str)],
    configure: impl FnOnce(&mut slipway::config::Config),
    want: &[&str],
) {
    let h = Harness::with(Backend::Docker, LlmProvider::Openai, vec![], configure).await;
    commit_files(&h, files);
    let mut task = h.task("make add() faster");
    let report = h.run(&mut task).await.unwrap();
    assert_eq!(report.decision, Decision::Halt, "{report:#?}");
    let text = format!(
        "{} {}",
        gate(&report, "setup").detail,
        report.reasons.join(" ")
    );
    for w in want {
        assert!(text.contains(w), "{w:?} not in: {text}");
    }
    assert_eq!(gate(&report, "setup").status, GateStatus::Fail);
    assert!(h.fake.requests().is_empty(), "no model spend");
    assert!(h.leftovers().is_empty(), "{:?}", h.leftovers());
    let stored = h.runner.store.get_task(&task.id).unwrap().unwrap();
    assert_eq!(
        stored.state,
        TaskState::Failed,
        "resumable by 🔁 or a reply"
    );
}

#[tokio::test]
async fn an_invalid_devcontainer_json_halts_naming_the_file_and_line() {
    bad_input_halts_naming_the_cause(
        &[(
            ".devcontainer.json",
            "{\n  \"image\": \"x\"\n  \"postCreateCommand\": 1\n}\n",
        )],
        |_| {},
        &["invalid .devcontainer.json: line 2, column 15"],
    )
    .await;
}

#[tokio::test]
async fn a_dockerfile_that_fails_to_build_halts_naming_it() {
    bad_input_halts_naming_the_cause(
        &[
            (
                ".devcontainer/devcontainer.json",
                "{\"build\": {\"dockerfile\": \"Dockerfile\"}}",
            ),
            (
                ".devcontainer/Dockerfile",
                "FROM slipway-sandbox:local\nRUN echo broken-step && exit 3\n",
            ),
        ],
        |_| {},
        &["building Dockerfile failed", "fix the Dockerfile"],
    )
    .await;
}

#[tokio::test]
async fn a_lockfile_out_of_sync_with_its_manifest_halts_naming_the_command() {
    bad_input_halts_naming_the_cause(
        &[
            (
                "package.json",
                r#"{"name": "calc-web", "version": "1.0.0", "dependencies": {"left-pad": "1.3.0"}, "scripts": {"test": "node -e 0"}}"#,
            ),
            (
                "package-lock.json",
                r#"{"name": "calc-web", "version": "1.0.0", "lockfileVersion": 3, "requires": true, "packages": {"": {"name": "calc-web", "version": "1.0.0"}}}"#,
            ),
        ],
        |_| {},
        &["`npm ci --ignore-scripts --no-audit --no-fund` failed", "setup failed, so the agent did not start"],
    )
    .await;
}

#[tokio::test]
async fn a_setup_that_times_out_halts_and_is_not_cached() {
    bad_input_halts_naming_the_cause(
        &[(".slipway/setup.sh", "echo slow > /env/partial\nsleep 30\n")],
        |cfg| cfg.file.sandbox.setup_timeout_s = 2,
        &["`sh .slipway/setup.sh` timed out", "setup_timeout_s"],
    )
    .await;
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_halts_naming_it() {
    bad_input_halts_naming_the_cause(
        &[("NOTES.md", "the repo names an image\n")],
        |cfg| {
            cfg.file.repos.push(
                toml::from_str(
                    "name = \"acme/calc\"\nimage = \"localhost/slipway-test-no-such-image:1\"\n",
                )
                .unwrap(),
            )
        },
        &[
            "localhost/slipway-test-no-such-image:1",
            "could not be pulled",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_dockerfile_that_fetches_from_a_url_is_refused() {
    // The engine would fetch it itself, from the host's network, where nothing is fenced.
    bad_input_halts_naming_the_cause(
        &[
            (
                ".devcontainer/devcontainer.json",
                "{\"build\": {\"dockerfile\": \"Dockerfile\"}}",
            ),
            (
                ".devcontainer/Dockerfile",
                "FROM slipway-sandbox:local\nADD http://169.254.169.254/latest/meta-data/ /creds\n",
            ),
        ],
        |_| {},
        &[".devcontainer/Dockerfile line 2: ADD from a URL is not supported"],
    )
    .await;
}

/// Setup's git directory holds the base commit alone: no agent commit of an earlier revision
/// can be read (or installed from) through it.
async fn setup_sees_only_the_base_commit_in_git(backend: Backend) {
    let h = Harness::new(backend, LlmProvider::Openai, vec![]).await;
    commit_files(
        &h,
        &[(
            ".slipway/setup.sh",
            "git -C /workspace log -1 --format=%s > /env/head\n\
             git -C /workspace rev-list --all | wc -l > /env/commits\n\
             git -C /workspace status --porcelain | wc -l > /env/dirty\n",
        )],
    );
    let task = h.task("does it set up?");
    let repo = h.repo_path();
    sh(
        &repo,
        &format!(
            "git checkout -qb {} && echo secret-plan > agent.txt && git add -A \
             && git commit -qm 'agent: revision 1' && git checkout -q main",
            task.branch
        ),
    );
    let mut task = task;
    let report = h
        .runner
        .run(&mut task, "checks_only", CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(
        gate(&report, "setup").status,
        GateStatus::Pass,
        "{report:#?}"
    );
    let (dir, _) = snapshots(&h).pop().expect("a snapshot");
    let read = |f: &str| std::fs::read_to_string(dir.join("env").join(f)).unwrap();
    assert_eq!(
        read("head").trim(),
        "environment",
        "HEAD is the base commit"
    );
    assert_eq!(read("commits").trim(), "1", "only the base commit is there");
    assert_eq!(read("dirty").trim(), "0", "the index is the base tree's");
}

#[tokio::test]
async fn setup_sees_only_the_base_commit_in_git_bwrap() {
    setup_sees_only_the_base_commit_in_git(Backend::Bwrap).await;
}

#[tokio::test]
async fn setup_sees_only_the_base_commit_in_git_docker() {
    setup_sees_only_the_base_commit_in_git(Backend::Docker).await;
}
