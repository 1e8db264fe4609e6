//! The queue's shutdown semantics on the real store, with a gated `Executor`.

use super::*;
use crate::report::RunReport;
use crate::task::{Origin, RepoRef};
use tokio::sync::Notify;

/// An executor that signals when a run starts, waits to be released, then ends the way
/// the lifecycle does: `Cancelled` when its token stopped it, else `Ready`. With
/// `mid_node`, cancellation is only seen after the node in progress (like an auto-merge's
/// PUT), so the run ends by itself.
struct Gated {
    store: Store,
    entered: Arc<Notify>,
    release: Arc<Notify>,
    mid_node: bool,
}

#[async_trait::async_trait]
impl Executor for Gated {
    fn store(&self) -> &Store {
        &self.store
    }

    async fn execute(
        &self,
        task: &mut Task,
        cancel: CancellationToken,
        _events: mpsc::Sender<RunEvent>,
    ) -> Result<RunReport, RunError> {
        self.entered.notify_one();
        let stopped = if self.mid_node {
            self.release.notified().await;
            false
        } else {
            tokio::select! {
                _ = self.release.notified() => false,
                _ = cancel.cancelled() => true,
            }
        };
        let state = if stopped {
            TaskState::Cancelled
        } else {
            TaskState::Ready
        };
        self.store.update_task(task, |t| t.state = state).await?;
        let report = serde_json::from_value(serde_json::json!({
            "task_id": task.id, "revision": 1, "run_id": "r", "repo": "a/b", "base": "main",
            "branch": task.branch, "commit": null, "pr_url": null, "blueprint": "code_change",
            "decision": "needs_approval", "reasons": [], "classification": "docs", "gates": [],
            "tools": [], "fix_rounds": 0,
            "agent": {"steps": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0},
            "timings_ms": {"workspace": 0, "sandbox": 0, "agent": 0, "checks": 0, "total": 0},
            "sandbox": {"backend": "bwrap", "image": "-", "network": false}
        }))
        .map_err(|e| RunError::Internal(e.to_string()))?;
        Ok(report)
    }
}

/// A queue over a [`Gated`] executor (`mid_node` as there) with one task submitted and its
/// run entered; `release` lets the run end.
struct Started {
    _dir: tempfile::TempDir,
    q: Queue,
    store: Store,
    task: Task,
    release: Arc<Notify>,
}

async fn gated_run(mid_node: bool) -> Started {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let q = Queue::new(
        Gated {
            store: store.clone(),
            entered: entered.clone(),
            release: release.clone(),
            mid_node,
        },
        1,
    );
    let repo = RepoRef {
        name: "a/b".into(),
        source: "/nowhere".into(),
        base: "main".into(),
        forge: Default::default(),
    };
    let mut task = Task::new(repo, "U0ALICE", Origin::Cli, "do it");
    q.submit(&mut task).await.unwrap();
    tokio::spawn({
        let q = q.clone();
        async move { q.run().await }
    });
    entered.notified().await;
    Started {
        _dir: dir,
        q,
        store,
        task,
        release,
    }
}

async fn started(how: &str) -> (Started, Queue, Store, Task) {
    let s = gated_run(how == "finishes").await;
    let (q, store, task, release) = (
        s.q.clone(),
        s.store.clone(),
        s.task.clone(),
        s.release.clone(),
    );
    match how {
        // The run ends by itself during the grace period.
        "finishes" => {
            q.shutdown();
            release.notify_one();
        }
        // A person cancels it, then the service stops.
        "user_cancel" => {
            q.cancel(&task.id);
            q.shutdown();
        }
        // The shutdown stops it.
        _ => q.shutdown(),
    }
    // The run the shutdown stops is still running at the end of a short grace period.
    let grace = if how == "shutdown" { 200 } else { 10_000 };
    assert!(q.wait_idle(Duration::from_millis(grace)).await);
    (s, q, store, task)
}

#[tokio::test]
async fn a_run_that_finishes_during_shutdown_keeps_its_result() {
    let (_dir, _q, store, task) = started("finishes").await;
    let stored = store.get_task(&task.id).unwrap().unwrap();
    assert_eq!(stored.state, TaskState::Ready);
    assert!(
        store.queued().unwrap().is_empty(),
        "not rerun after restart"
    );
}

#[tokio::test]
async fn a_run_the_shutdown_stops_is_checkpointed_to_rerun() {
    let (_dir, _q, store, task) = started("shutdown").await;
    let stored = store.get_task(&task.id).unwrap().unwrap();
    assert_eq!(stored.state, TaskState::Running);
    assert_eq!(store.queued().unwrap().len(), 1);
}

#[tokio::test]
async fn a_run_a_person_cancelled_stays_cancelled_through_shutdown() {
    let (_dir, _q, store, task) = started("user_cancel").await;
    let stored = store.get_task(&task.id).unwrap().unwrap();
    assert_eq!(stored.state, TaskState::Cancelled);
    assert!(store.queued().unwrap().is_empty());
}

/// A run still going at the end of the grace period whose cancel it cannot see (an
/// auto-merge's PUT under way) and that then finishes by itself keeps its result: it is not
/// checkpointed to run again.
#[tokio::test]
async fn a_run_that_finishes_by_itself_after_the_deadline_keeps_its_result() {
    let Started {
        _dir,
        q,
        store,
        task,
        release,
    } = gated_run(true).await;
    q.shutdown();
    let idle = tokio::spawn({
        let q = q.clone();
        async move { q.wait_idle(Duration::from_millis(100)).await }
    });
    // Past the deadline (its cancel was sent and went unseen), the run ends by itself.
    while !q.was_interrupted(&task.id) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    release.notify_one();
    assert!(idle.await.unwrap());
    let stored = store.get_task(&task.id).unwrap().unwrap();
    assert_eq!(stored.state, TaskState::Ready, "its result stands");
    assert!(
        store.queued().unwrap().is_empty(),
        "not rerun after restart"
    );
}
