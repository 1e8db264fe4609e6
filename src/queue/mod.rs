//! The task queue: every revision to run is persisted in the store before anything else
//! happens, runs with bounded concurrency (a `Semaphore` permit per run), and survives a
//! restart. One run per task at a time: a refinement that arrives while its task runs waits
//! behind it and is not lost. An interrupted run (slipway stopped mid-run) is reported and
//! rerun once. Front ends (`slipway serve`, tests) observe [`QueueEvent`]s.
//!
//! The queue runs an [`Executor`] and never reaches into it; front ends get the queue's own
//! handles (submit, refine, rerun, cancel, status, events), never the executor's services.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, Semaphore, broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::report::RunReport;
use crate::run::{RunError, RunEvent};
use crate::store::{AuditEvent, QueueItem, RunState, Store, StoreError};
use crate::task::{Task, TaskState, now_ms};

/// What the queue runs: one revision of a task through the task's blueprint. Implemented by
/// `crate::runner::Runner`; tests may put anything behind it.
#[async_trait::async_trait]
pub trait Executor: Send + Sync {
    /// The store the queue persists its items and task states in (the executor's own, so the
    /// two never disagree).
    fn store(&self) -> &Store;

    /// Runs `task`'s current revision. `events` (bounded) receives progress; `cancel` stops
    /// the run. Errors as `crate::run::lifecycle::execute`: only failures before the run was
    /// stored.
    async fn execute(
        &self,
        task: &mut Task,
        cancel: CancellationToken,
        events: mpsc::Sender<RunEvent>,
    ) -> Result<RunReport, RunError>;
}

/// What the queue tells its observers, per task.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum QueueEvent {
    /// Progress of a run.
    Run { task_id: String, event: RunEvent },
    /// A run was interrupted by a restart; `rerun` says whether it runs again.
    Interrupted { task_id: String, rerun: bool },
    /// A run could not start or failed before it stored a report (e.g. the repo is gone).
    Failed { task_id: String, error: String },
}

/// Queue and running tasks, for `status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueStatus {
    /// Task ids waiting for a run, oldest first.
    pub queued: Vec<String>,
    /// Task ids running now.
    pub running: Vec<String>,
}

struct Inner {
    exec: Arc<dyn Executor>,
    store: Store,
    /// Every spawned run, so shutdown can wait for them to end.
    runs: TaskTracker,
    permits: Arc<Semaphore>,
    wake: Notify,
    /// Running tasks and their cancel tokens.
    active: Mutex<HashMap<String, CancellationToken>>,
    /// Queue keys already handed to a run.
    dispatched: Mutex<HashSet<u64>>,
    /// Tasks whose run a person cancelled (❌, `cancel`): not an interruption to resume.
    user_cancelled: Mutex<HashSet<String>>,
    events: broadcast::Sender<QueueEvent>,
    shutdown: CancellationToken,
}

/// The queue. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

impl Queue {
    /// A queue running at most `concurrency` runs at once through `exec`.
    pub fn new(exec: impl Executor + 'static, concurrency: usize) -> Self {
        let (events, _) = broadcast::channel(1024);
        let store = exec.store().clone();
        Self {
            inner: Arc::new(Inner {
                exec: Arc::new(exec),
                store,
                runs: TaskTracker::new(),
                permits: Arc::new(Semaphore::new(concurrency.max(1))),
                wake: Notify::new(),
                active: Mutex::default(),
                dispatched: Mutex::default(),
                user_cancelled: Mutex::default(),
                events,
                shutdown: CancellationToken::new(),
            }),
        }
    }

    /// Observes every task's events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<QueueEvent> {
        self.inner.events.subscribe()
    }

    fn emit(&self, e: QueueEvent) {
        // No subscriber is fine.
        let _ = self.inner.events.send(e);
    }

    /// Stores `task` (state queued) and queues its current revision.
    pub async fn submit(&self, task: &mut Task) -> Result<u64, StoreError> {
        let store = &self.inner.store;
        task.state = TaskState::Queued;
        task.updated_ms = now_ms();
        store.put_task(task).await?;
        self.enqueue_current(task).await
    }

    /// Queues the task's current revision and wakes the dispatcher.
    async fn enqueue_current(&self, task: &Task) -> Result<u64, StoreError> {
        let item = QueueItem {
            task_id: task.id.clone(),
            revision: task.current().number,
            enqueued_ms: now_ms(),
            reruns: 0,
        };
        let key = self.inner.store.enqueue(&item).await?;
        self.inner.wake.notify_one();
        Ok(key)
    }

    /// Adds revision n+1 to a stored task (atomically, so a run saving the task meanwhile does
    /// not lose it) and queues it. It runs after the task's current run, on the same branch.
    pub async fn refine(
        &self,
        task_id: &str,
        revision: crate::task::Revision,
    ) -> Result<Option<Task>, StoreError> {
        let store = &self.inner.store;
        let Some(stored) = store.get_task(task_id)? else {
            return Ok(None);
        };
        let running = self.is_running(task_id);
        let task = store
            .update_task(&stored, |t| {
                let mut r = revision.clone();
                r.number = t.revisions.len() as u32 + 1;
                t.revisions.push(r);
                if !running {
                    t.state = TaskState::Queued;
                }
                t.updated_ms = now_ms();
            })
            .await?;
        self.enqueue_current(&task).await?;
        Ok(Some(task))
    }

    /// Queues the task's current revision again (🔁 in Slack). `None` when the task is not
    /// stored.
    pub async fn rerun(&self, task_id: &str) -> Result<Option<Task>, StoreError> {
        let store = &self.inner.store;
        let Some(stored) = store.get_task(task_id)? else {
            return Ok(None);
        };
        let task = store
            .update_task(&stored, |t| {
                t.state = TaskState::Queued;
                t.updated_ms = now_ms();
            })
            .await?;
        self.enqueue_current(&task).await?;
        Ok(Some(task))
    }

    /// Whether the task has a run in progress.
    pub fn is_running(&self, task_id: &str) -> bool {
        self.inner
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(task_id)
    }

    /// True once [`Queue::shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutdown.is_cancelled()
    }

    /// After [`Queue::shutdown`]: waits until every run has ended and observers have read
    /// every event, at most `limit`; true when idle in time.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        self.inner.runs.close();
        if tokio::time::timeout_at(deadline, self.inner.runs.wait())
            .await
            .is_err()
        {
            return false;
        }
        // The last events may still be on their way to the egress (bounded by `limit`).
        while !self.inner.events.is_empty() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Cancels the task's running run; false when it is not running.
    pub fn cancel(&self, task_id: &str) -> bool {
        let active = self.inner.active.lock().unwrap_or_else(|p| p.into_inner());
        match active.get(task_id) {
            Some(t) => {
                self.inner
                    .user_cancelled
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(task_id.to_string());
                t.cancel();
                true
            }
            None => false,
        }
    }

    /// What is queued and what is running.
    pub fn status(&self) -> Result<QueueStatus, StoreError> {
        let running: Vec<String> = self
            .inner
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        let queued = self
            .inner
            .store
            .queued()?
            .into_iter()
            .map(|(_, i)| i.task_id)
            .filter(|t| !running.contains(t))
            .collect();
        Ok(QueueStatus { queued, running })
    }

    /// After a restart: queue items whose task was mid-run were interrupted. Each is reported
    /// and rerun once; a second interruption fails the task. Call before [`Queue::run`].
    pub async fn recover(&self) -> Result<Vec<String>, StoreError> {
        let store = &self.inner.store;
        let mut interrupted = Vec::new();
        for (key, mut item) in store.queued()? {
            let Some(mut task) = store.get_task(&item.task_id)? else {
                store.dequeue(key).await?;
                continue;
            };
            if task.state != TaskState::Running {
                continue;
            }
            // Its last run never ended: record that.
            if let Some(run_id) = task.runs.last()
                && let Some(mut run) = store.get_run(run_id)?
                && run.state == RunState::Running
            {
                run.state = RunState::Failed;
                run.error = Some("interrupted: slipway stopped during the run".into());
                run.finished_ms = Some(now_ms());
                store.put_run(&run).await?;
            }
            let rerun = item.reruns == 0;
            store.dequeue(key).await?;
            if rerun {
                item.reruns += 1;
                task.state = TaskState::Queued;
                store.put_task(&task).await?;
                store.enqueue(&item).await?;
            } else {
                task.state = TaskState::Failed;
                store.put_task(&task).await?;
            }
            store
                .audit_now(
                    Some(&task.id),
                    None,
                    "slipway",
                    AuditEvent::RunInterrupted { rerun },
                )
                .await?;
            self.emit(QueueEvent::Interrupted {
                task_id: task.id.clone(),
                rerun,
            });
            interrupted.push(task.id);
        }
        Ok(interrupted)
    }

    /// Stops dispatching; running runs are cancelled (their sandboxes stop).
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
        for t in self
            .inner
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            t.cancel();
        }
        self.inner.wake.notify_waiters();
    }

    /// Dispatches queued work until [`Queue::shutdown`].
    pub async fn run(&self) {
        while !self.inner.shutdown.is_cancelled() {
            if let Err(e) = self.dispatch().await {
                tracing::error!(error = %e, "queue dispatch failed");
            }
            tokio::select! {
                _ = self.inner.wake.notified() => {}
                _ = self.inner.shutdown.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    }

    async fn dispatch(&self) -> Result<(), StoreError> {
        let store = self.inner.store.clone();
        let items = store.queued()?;
        for (i, (key, item)) in items.iter().enumerate() {
            if self
                .inner
                .dispatched
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(key)
            {
                continue;
            }
            if self
                .inner
                .active
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(&item.task_id)
            {
                continue;
            }
            let Some(task) = store.get_task(&item.task_id)? else {
                store.dequeue(*key).await?;
                continue;
            };
            // An older revision with a newer one queued behind it: the newer one covers it.
            let superseded = items[i + 1..]
                .iter()
                .any(|(_, later)| later.task_id == item.task_id);
            if superseded || matches!(task.state, TaskState::Cancelled | TaskState::Merged) {
                store.dequeue(*key).await?;
                continue;
            }
            let Ok(permit) = self.inner.permits.clone().try_acquire_owned() else {
                break;
            };
            let cancel = CancellationToken::new();
            self.inner
                .active
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(item.task_id.clone(), cancel.clone());
            // A ❌ that raced the end of an earlier run must not mark this one.
            self.inner
                .user_cancelled
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&item.task_id);
            self.inner
                .dispatched
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(*key);
            let me = self.clone();
            let key = *key;
            self.inner.runs.spawn(async move {
                me.execute(key, task, cancel).await;
                drop(permit);
                me.inner.wake.notify_one();
            });
        }
        Ok(())
    }

    async fn execute(&self, key: u64, mut task: Task, cancel: CancellationToken) {
        let task_id = task.id.clone();
        let (tx, mut rx) = mpsc::channel::<RunEvent>(64);
        let forward = {
            let me = self.clone();
            let task_id = task_id.clone();
            tokio::spawn(async move {
                while let Some(event) = rx.recv().await {
                    me.emit(QueueEvent::Run {
                        task_id: task_id.clone(),
                        event,
                    });
                }
            })
        };
        let result = self.inner.exec.execute(&mut task, cancel, tx).await;
        let _ = forward.await;
        let store = &self.inner.store;
        if let Err(e) = result {
            // Failed before anything was stored: say so, keep the task (state failed).
            // Only the state: a refinement stored meanwhile must survive.
            let saved = store
                .update_task(&task, |t| {
                    t.state = TaskState::Failed;
                    t.updated_ms = now_ms();
                })
                .await;
            if let Err(se) = saved {
                tracing::error!(error = %se, task_id, "could not store a failed task");
            }
            self.emit(QueueEvent::Failed {
                task_id: task_id.clone(),
                error: e.to_string(),
            });
        }
        let by_user = self
            .inner
            .user_cancelled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&task_id);
        // Only a run the shutdown stopped (cancelled, or failed as it was torn down) is an
        // interruption. One that ended by itself during the grace period (a report, an
        // auto-merge) keeps its result and its state.
        let interrupted = self.inner.shutdown.is_cancelled()
            && !by_user
            && matches!(
                store.get_task(&task_id),
                Ok(Some(t)) if matches!(t.state, TaskState::Cancelled | TaskState::Failed)
            );
        if interrupted {
            // The item stays queued and the task counts as interrupted, so the next start
            // reports it and reruns it once.
            let saved = store
                .update_task(&task, |t| t.state = TaskState::Running)
                .await;
            if let Err(e) = saved {
                tracing::error!(error = %e, task_id, "could not checkpoint an interrupted task");
            }
        } else if let Err(e) = store.dequeue(key).await {
            tracing::error!(error = %e, task_id, "could not dequeue a finished run");
        }
        self.inner
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&task_id);
        self.inner
            .dispatched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
    }
}

#[cfg(test)]
mod tests;
