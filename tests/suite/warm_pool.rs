//! The warm pool (`[sandbox] warm = N`): a repo's next run finds its sandbox already
//! started, with the clone and the environment snapshot in it; a slot started for another
//! environment is never used; nothing outlives the pool.

use slipway::agent::llm::settings::LlmProvider;
use slipway::report::{GateStatus, RunReport};
use slipway::sandbox::Backend;
use slipway::store::RunRecord;
use tokio_util::sync::CancellationToken;

use crate::support::fake_llm::Turn;
use crate::support::{Harness, containers_labelled, fix_script, sh};

/// The pre-started containers of this harness's pool (tests run side by side, all on
/// `acme/calc`): each slot directory's container, labelled `slipway.run=pool-<slot>`, and
/// checked to carry `slipway.pool=acme/calc`.
async fn warm_containers(h: &Harness) -> Vec<String> {
    let mut out = Vec::new();
    for dir in slot_dirs(h) {
        let slot = dir.file_name().unwrap().to_string_lossy().into_owned();
        let label = format!("slipway.run=pool-{slot}");
        let ids = containers_labelled(&label).await;
        let pooled = containers_labelled("slipway.pool=acme/calc").await;
        assert!(ids.iter().all(|id| pooled.contains(id)), "{ids:?}");
        out.extend(ids);
    }
    out
}

/// Whether the engine still has container `id`.
async fn exists(id: &str) -> bool {
    containers_labelled("slipway.managed=1")
        .await
        .iter()
        .any(|c| c == id)
}

/// A docker harness with `warm` slots and a repo whose setup writes `/env/greeting` and
/// whose test needs the snapshot, the clone and its git directory inside the sandbox.
async fn harness(warm: u32) -> Harness {
    let h = Harness::with(Backend::Docker, LlmProvider::Openai, vec![], |c| {
        c.file.sandbox.warm = warm;
    })
    .await;
    let repo = h.repo_path();
    std::fs::create_dir_all(repo.join(".slipway")).unwrap();
    std::fs::write(
        repo.join(".slipway/setup.sh"),
        "echo ready > /env/greeting\n",
    )
    .unwrap();
    std::fs::write(
        repo.join(".slipway/policy.toml"),
        "[checks]\ntest = \"grep -q ready /env/greeting && grep -q 'def add' calc.py && test -f .git/HEAD\"\n",
    )
    .unwrap();
    std::fs::write(repo.join("requirements.txt"), "# none\n").unwrap();
    sh(&repo, "git add -A && git commit -qm 'setup script'");
    h
}

async fn checks_only(h: &Harness) -> (RunReport, RunRecord) {
    let mut task = h.task("does it set up?");
    let report = h
        .runner
        .run(&mut task, "checks_only", CancellationToken::new(), None)
        .await
        .unwrap();
    let run = h.runner.store.get_run(&report.run_id).unwrap().unwrap();
    assert_eq!(
        report
            .gates
            .iter()
            .find(|g| g.name == "tests")
            .map(|g| g.status),
        Some(GateStatus::Pass),
        "{report:#?}"
    );
    (report, run)
}

fn sandbox_detail(run: &RunRecord) -> &str {
    &run.nodes
        .iter()
        .find(|n| n.node == "sandbox")
        .unwrap()
        .detail
}

/// Slot directories under `<data>/pool/acme_calc`.
fn slot_dirs(h: &Harness) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(h.data.path().join("pool/acme_calc"))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect()
}

#[tokio::test]
async fn a_second_mention_finds_its_sandbox_already_started() {
    let h = harness(1).await;
    let (_, first) = checks_only(&h).await;
    assert!(!sandbox_detail(&first).contains("warm pool"), "{first:#?}");
    h.runner.pool.settled().await;
    assert_eq!(h.runner.pool.idle("acme/calc"), 1);
    let warm = warm_containers(&h).await;
    assert_eq!(warm.len(), 1, "one pre-started container: {warm:?}");

    // The second run's sandbox is that container, with the clone and the snapshot in it.
    let (_, second) = checks_only(&h).await;
    let detail = sandbox_detail(&second);
    assert!(
        detail.contains(&format!("warm pool (container {})", &warm[0][..12])),
        "{detail}"
    );
    assert!(h.leftovers().is_empty(), "{:?}", h.leftovers());

    // Topped back up: one fresh slot, a new container; the used one is gone.
    h.runner.pool.settled().await;
    assert_eq!(h.runner.pool.idle("acme/calc"), 1);
    let refilled = warm_containers(&h).await;
    assert_eq!(refilled.len(), 1, "{refilled:?}");
    assert_ne!(refilled[0], warm[0]);
    assert_eq!(slot_dirs(&h).len(), 1, "{:?}", slot_dirs(&h));

    // Shutdown empties the pool: no container, no directory.
    h.runner.pool.shutdown().await;
    assert!(!exists(&refilled[0]).await);
    assert!(!exists(&warm[0]).await);
    assert!(!h.data.path().join("pool").exists());
    assert!(h.leftovers().is_empty(), "{:?}", h.leftovers());
}

#[tokio::test]
async fn a_warm_sandbox_of_an_outdated_environment_is_not_used() {
    let h = harness(1).await;
    checks_only(&h).await;
    h.runner.pool.settled().await;
    let old = warm_containers(&h).await;
    assert_eq!(old.len(), 1, "{old:?}");

    // A dependency change on the base: a new environment key, so the slot (started with the
    // old snapshot mounted) must not run this revision.
    let repo = h.repo_path();
    std::fs::write(repo.join("requirements.txt"), "# one more line\n").unwrap();
    sh(&repo, "git commit -qam 'dependencies changed'");
    let (report, run) = checks_only(&h).await;
    assert!(
        report
            .gates
            .iter()
            .any(|g| g.name == "setup" && g.detail.contains("built in")),
        "{report:#?}"
    );
    assert!(!sandbox_detail(&run).contains("warm pool"), "{run:#?}");
    h.runner.pool.settled().await;
    let now = warm_containers(&h).await;
    assert_eq!(
        now.len(),
        1,
        "the outdated slot was closed, a new one started: {now:?}"
    );
    assert_ne!(now[0], old[0]);
    assert_eq!(slot_dirs(&h).len(), 1);

    // The new slot carries the new environment: the next run takes it.
    assert!(!exists(&old[0]).await);
    let (_, next) = checks_only(&h).await;
    assert!(sandbox_detail(&next).contains("warm pool"), "{next:#?}");
    h.runner.pool.settled().await;
    let last = warm_containers(&h).await;
    h.runner.pool.shutdown().await;
    assert!(last.len() == 1 && !exists(&last[0]).await, "{last:?}");
    assert!(!h.data.path().join("pool").exists());
}

#[tokio::test]
async fn a_warm_sandbox_whose_snapshot_was_pruned_is_not_used() {
    let h = harness(1).await;
    checks_only(&h).await;
    h.runner.pool.settled().await;
    let old = warm_containers(&h).await;
    assert_eq!(old.len(), 1, "{old:?}");
    // `slipway env prune --all`: the next run rebuilds the same key at the same path, but
    // the slot still binds the deleted directory.
    let store =
        slipway::env::snapshot::EnvStore::new(h.data.path(), std::time::Duration::from_secs(3600));
    assert_eq!(store.prune(true, 0).unwrap().len(), 1);
    let (report, run) = checks_only(&h).await;
    assert!(
        report
            .gates
            .iter()
            .any(|g| g.name == "setup" && g.detail.contains("built in")),
        "{report:#?}"
    );
    assert!(!sandbox_detail(&run).contains("warm pool"), "{run:#?}");
    h.runner.pool.settled().await;
    let now = warm_containers(&h).await;
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now[0], old[0]);
    assert!(!exists(&old[0]).await);
    h.runner.pool.shutdown().await;
    assert!(!exists(&now[0]).await);
}

/// The agent's second revision runs in the pre-started container: its edits, its `run`
/// commands and the commit all go through the slot's directories.
#[tokio::test]
async fn a_refinement_runs_the_agent_in_the_warm_sandbox() {
    let mut script = fix_script();
    script.extend([
        Turn::call(
            "write_file",
            serde_json::json!({"path": "README.md", "content": "# calc\n"}),
        ),
        Turn::call(
            "run",
            serde_json::json!({"command": "test -f README.md && python3 -m unittest"}),
        ),
        Turn::call("finish", serde_json::json!({"summary": "documented"})),
    ]);
    let h = Harness::with(Backend::Docker, LlmProvider::Openai, script, |c| {
        c.file.sandbox.warm = 1;
    })
    .await;
    let mut task = h.task("fix add()");
    let first = h.run(&mut task).await.unwrap();
    assert!(!first.sandbox.warm);
    h.runner.pool.settled().await;
    let warm = warm_containers(&h).await;
    assert_eq!(warm.len(), 1, "{warm:?}");
    task.revisions.push(slipway::task::Revision {
        number: 2,
        instructions: "also write a README".into(),
        context: vec![],
        untrusted_context: vec![],
        links: vec![],
        created_ms: 0,
        author: None,
    });
    let second = h.run(&mut task).await.unwrap();
    assert!(second.sandbox.warm, "{second:#?}");
    assert!(second.to_text().contains("sandbox docker (warm pool)"));
    assert_eq!(
        second
            .gates
            .iter()
            .find(|g| g.name == "tests")
            .map(|g| g.status),
        Some(GateStatus::Pass),
        "{second:#?}"
    );
    let repo = h.repo_path();
    let parent = sh(&repo, &format!("git rev-parse {}^", second.branch));
    assert_eq!(parent.trim(), first.commit.clone().unwrap());
    assert!(sh(&repo, &format!("git show {}:README.md", second.branch)).contains("# calc"));
    assert!(h.leftovers().is_empty(), "{:?}", h.leftovers());
    h.runner.pool.settled().await;
    let refilled = warm_containers(&h).await;
    h.runner.pool.shutdown().await;
    assert!(!exists(&warm[0]).await);
    assert!(refilled.iter().all(|c| c != &warm[0]), "{refilled:?}");
    for c in refilled {
        assert!(!exists(&c).await);
    }
}
