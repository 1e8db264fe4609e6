//! The task queue: persisted, bounded, serial per task, and resumed after a restart.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use crate::support::Harness;
use crate::support::fake_llm::Turn;
use slipway::agent::llm::settings::LlmProvider;
use slipway::queue::{Queue, QueueEvent};
use slipway::run::RunEvent;
use slipway::sandbox::Backend;
use slipway::store::QueueItem;
use slipway::task::TaskState;

/// Every run sleeps a little in the sandbox, twice, then hits its step budget.
async fn slow_harness() -> Harness {
    let h = Harness::with(Backend::Bwrap, LlmProvider::Anthropic, vec![], |c| {
        c.file.agent.max_steps = 2
    })
    .await;
    h.fake
        .repeat_forever(Turn::call("run", json!({"command": "sleep 0.5"})));
    h
}

/// Waits until `n` runs have finished, tracking the most runs ever active at once.
async fn watch(
    rx: &mut tokio::sync::broadcast::Receiver<QueueEvent>,
    n: usize,
) -> (usize, Vec<String>) {
    let mut active: HashSet<String> = HashSet::new();
    let mut most = 0;
    let mut finished = Vec::new();
    while finished.len() < n {
        let e = tokio::time::timeout(Duration::from_secs(120), rx.recv())
            .await
            .expect("queue stalled")
            .unwrap();
        match e {
            QueueEvent::Run {
                task_id,
                event: RunEvent::RunStarted { .. },
            } => {
                active.insert(task_id);
                most = most.max(active.len());
            }
            QueueEvent::Run {
                task_id,
                event: RunEvent::RunFinished { .. } | RunEvent::RunFailed { .. },
            } => {
                active.remove(&task_id);
                finished.push(task_id);
            }
            _ => {}
        }
    }
    (most, finished)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_tasks_run_with_bounded_concurrency() {
    let h = slow_harness().await;
    let q = Queue::new(h.runner.clone(), 2);
    let mut rx = q.subscribe();
    let mut ids = Vec::new();
    for i in 0..3 {
        let mut t = h.task(&format!("task number {i}"));
        q.submit(&mut t).await.unwrap();
        ids.push(t.id);
    }
    let runner = tokio::spawn({
        let q = q.clone();
        async move { q.run().await }
    });
    let (most, finished) = watch(&mut rx, 3).await;
    assert!((1..=2).contains(&most), "at most 2 at once, saw {most}");
    let mut finished_sorted = finished.clone();
    finished_sorted.sort();
    ids.sort();
    assert_eq!(finished_sorted, ids);
    for id in &ids {
        assert_eq!(
            h.runner.store.get_task(id).unwrap().unwrap().state,
            TaskState::Halted,
            "budget stop → halt"
        );
    }
    for _ in 0..200 {
        if h.runner.store.queued().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        h.runner.store.queued().unwrap().is_empty(),
        "finished runs leave the queue"
    );
    q.shutdown();
    runner.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refinement_waits_behind_its_running_task_and_is_not_lost() {
    let h = slow_harness().await;
    let q = Queue::new(h.runner.clone(), 2);
    let mut rx = q.subscribe();
    let mut t = h.task("first version");
    q.submit(&mut t).await.unwrap();
    let runner = tokio::spawn({
        let q = q.clone();
        async move { q.run().await }
    });
    // Wait for the first run to start, then refine.
    loop {
        if let QueueEvent::Run {
            event: RunEvent::RunStarted { .. },
            ..
        } = rx.recv().await.unwrap()
        {
            break;
        }
    }
    let refinement = slipway::task::Revision {
        number: 0,
        instructions: "also do the second thing".into(),
        context: vec![],
        untrusted_context: vec![],
        links: vec![],
        created_ms: 0,
        author: None,
    };
    // The running task is not run twice at once: the refinement waits.
    let slipway::queue::Refined::Queued(refined) = q.refine(&t.id, refinement, None).await.unwrap()
    else {
        panic!("refused")
    };
    assert_eq!(refined.current().number, 2);
    assert_eq!(q.status().unwrap().running, vec![t.id.clone()]);
    let (most, finished) = watch(&mut rx, 2).await;
    assert_eq!(most, 1, "one run per task at a time");
    assert_eq!(finished, vec![t.id.clone(), t.id.clone()]);
    let stored = h.runner.store.get_task(&t.id).unwrap().unwrap();
    assert_eq!(stored.runs.len(), 2);
    let second = h.runner.store.get_run(&stored.runs[1]).unwrap().unwrap();
    assert_eq!(second.revision, 2);
    q.shutdown();
    runner.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_queued_tasks_go_on_and_an_interrupted_run_reruns_once() {
    let h = slow_harness().await;
    let store = h.runner.store.clone();
    // A task queued before the restart, never started.
    let mut waiting = h.task("queued before the restart");
    Queue::new(h.runner.clone(), 2)
        .submit(&mut waiting)
        .await
        .unwrap();
    // A task that was mid-run when slipway stopped: state running, item still queued.
    let mut interrupted = h.task("interrupted once");
    interrupted.state = TaskState::Running;
    store.put_task(&interrupted).await.unwrap();
    store
        .enqueue(&QueueItem {
            task_id: interrupted.id.clone(),
            revision: 1,
            enqueued_ms: 0,
            reruns: 0,
        })
        .await
        .unwrap();
    // One interrupted twice already: reported, not rerun.
    let mut twice = h.task("interrupted twice");
    twice.state = TaskState::Running;
    store.put_task(&twice).await.unwrap();
    store
        .enqueue(&QueueItem {
            task_id: twice.id.clone(),
            revision: 1,
            enqueued_ms: 0,
            reruns: 1,
        })
        .await
        .unwrap();

    // "Restart": a new queue over the same store.
    let q = Queue::new(h.runner.clone(), 2);
    let mut rx = q.subscribe();
    let mut recovered = q.recover().await.unwrap();
    recovered.sort();
    let mut expected = vec![interrupted.id.clone(), twice.id.clone()];
    expected.sort();
    assert_eq!(recovered, expected);
    let mut reported = Vec::new();
    for _ in 0..2 {
        if let QueueEvent::Interrupted { task_id, rerun } = rx.recv().await.unwrap() {
            reported.push((task_id, rerun));
        }
    }
    assert!(reported.contains(&(interrupted.id.clone(), true)));
    assert!(reported.contains(&(twice.id.clone(), false)));
    assert_eq!(
        store.get_task(&twice.id).unwrap().unwrap().state,
        TaskState::Failed
    );

    let runner = tokio::spawn({
        let q = q.clone();
        async move { q.run().await }
    });
    let (_, finished) = watch(&mut rx, 2).await;
    assert!(
        finished.contains(&waiting.id) && finished.contains(&interrupted.id),
        "{finished:?}"
    );
    assert!(!finished.contains(&twice.id));
    // The item leaves the queue just after its run reports; wait for that (bounded).
    for _ in 0..200 {
        if store.queued().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(store.queued().unwrap().is_empty());
    q.shutdown();
    runner.await.unwrap();
}

/// A task closed (❌) after the queue handed its run over, before the run started: the
/// run re-reads the stored task and does not start (no sandbox, no model call), and the
/// task stays closed instead of being overwritten with Running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_a_task_closed_since_dispatch_does_not_start() {
    let h = slow_harness().await;
    let mut task = h.task("do the thing");
    task.state = TaskState::Cancelled;
    h.runner.store.put_task(&task).await.unwrap();
    task.state = TaskState::Queued; // what the dispatcher read a moment before
    let err = h.run(&mut task).await.unwrap_err();
    assert!(
        matches!(err, slipway::run::RunError::NotRunnable(_)),
        "{err}"
    );
    let stored = h.runner.store.get_task(&task.id).unwrap().unwrap();
    assert_eq!(stored.state, TaskState::Cancelled);
    assert!(stored.runs.is_empty(), "no run was recorded");
    assert_eq!(h.fake.requests().len(), 0, "the model was never called");
    assert!(h.leftovers().is_empty(), "{:?}", h.leftovers());
}
