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
use crate::store::{QueueItem, Store, StoreError, TaskTxn};
use crate::task::{Task, TaskState, now_ms};

/// How long runs cancelled at the end of a shutdown's grace period get to stop (their
/// sandboxes and worktrees are removed on the way).
pub const STOP_WITHIN: Duration = Duration::from_secs(20);

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

/// What [`Queue::store_new`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// Stored and queued under this queue key.
    Queued(u64),
    /// The idempotency key had created this task already; nothing was written.
    Exists(String),
}

/// What [`Queue::refine`] and [`Queue::rerun`] did.
#[derive(Debug, Clone)]
pub enum Refined {
    /// Queued; the task as stored now.
    Queued(Box<Task>),
    /// Not queued: the task's state does not allow it (merging or merged; for a rerun also
    /// queued, running or a queue item waiting).
    Refused(TaskState),
    /// The message that asked was handled before: nothing changed.
    Duplicate,
    /// The task is not stored.
    Missing,
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
    /// Tasks whose run the shutdown cancelled at the end of the grace period.
    interrupted: Mutex<HashSet<String>>,
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
                interrupted: Mutex::default(),
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

    /// Stores `task` (state queued) and queues its current revision, in one transaction,
    /// and wakes the dispatcher.
    pub async fn submit(&self, task: &mut Task) -> Result<u64, StoreError> {
        let key = match self.store_new(task, None).await? {
            Submitted::Queued(k) => k,
            // Without an idempotency key nothing can have created the task before.
            Submitted::Exists(_) => 0,
        };
        self.wake();
        Ok(key)
    }

    /// Stores a new `task` (state queued) and queues its current revision in one
    /// transaction, unless `idempotency` (e.g. the Slack message `channel/ts` that asked
    /// for it) already created a task: then nothing is written and that task's id comes
    /// back. Does not wake the dispatcher: call [`Queue::wake`] once the task has been
    /// announced, so no run event precedes the announcement (the dispatcher's own poll,
    /// every 2 s, picks it up otherwise).
    pub async fn store_new(
        &self,
        task: &mut Task,
        idempotency: Option<&str>,
    ) -> Result<Submitted, StoreError> {
        task.state = TaskState::Queued;
        task.updated_ms = now_ms();
        let item = QueueItem {
            task_id: task.id.clone(),
            revision: task.current().number,
            enqueued_ms: now_ms(),
            reruns: 0,
        };
        Ok(
            match self
                .inner
                .store
                .put_task_queued(task, &item, idempotency)
                .await?
            {
                Ok(key) => Submitted::Queued(key),
                Err(id) => Submitted::Exists(id),
            },
        )
    }

    /// Wakes the dispatcher (after [`Queue::store_new`]).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Adds revision n+1 to a stored task and queues it, in one transaction (a run saving
    /// the task meanwhile does not lose it). It runs after the task's current run, on the
    /// same branch. `idempotency` (the Slack message `channel/ts` that asked) makes a
    /// repeat a [`Refined::Duplicate`]. A task that is merging or merged is not refined
    /// ([`Refined::Refused`] names its state).
    pub async fn refine(
        &self,
        task_id: &str,
        revision: crate::task::Revision,
        idempotency: Option<&str>,
    ) -> Result<Refined, StoreError> {
        let running = self.is_running(task_id);
        let done = self
            .inner
            .store
            .transact_task(task_id, idempotency, |t| {
                if matches!(t.state, TaskState::Merging | TaskState::Merged) {
                    return Err(t.state);
                }
                let mut r = revision.clone();
                r.number = t.revisions.len() as u32 + 1;
                t.revisions.push(r);
                if !running && t.state != TaskState::Running {
                    t.state = TaskState::Queued;
                }
                t.updated_ms = now_ms();
                Ok(Some(QueueItem {
                    task_id: t.id.clone(),
                    revision: t.current().number,
                    enqueued_ms: now_ms(),
                    reruns: 0,
                }))
            })
            .await?;
        Ok(self.queued(done))
    }

    /// Queues the task's current revision again (🔁 in Slack), in one transaction with its
    /// state. Refused (with the stored state) unless the state machine lets the task
    /// become `Queued`, or while it has a queue item.
    pub async fn rerun(&self, task_id: &str) -> Result<Refined, StoreError> {
        let queued: HashSet<String> = self
            .inner
            .store
            .queued()?
            .into_iter()
            .map(|(_, i)| i.task_id)
            .collect();
        let running = self.is_running(task_id);
        let done = self
            .inner
            .store
            .transact_task(task_id, None, |t| {
                if running || queued.contains(&t.id) || !t.state.can_become(TaskState::Queued) {
                    return Err(t.state);
                }
                t.state = TaskState::Queued;
                t.updated_ms = now_ms();
                Ok(Some(QueueItem {
                    task_id: t.id.clone(),
                    revision: t.current().number,
                    enqueued_ms: now_ms(),
                    reruns: 0,
                }))
            })
            .await?;
        Ok(self.queued(done))
    }

    /// Wakes the dispatcher after a queued change, and names the outcome.
    fn queued(&self, done: TaskTxn<TaskState>) -> Refined {
        match done {
            TaskTxn::Done { task, .. } => {
                self.inner.wake.notify_one();
                Refined::Queued(task)
            }
            TaskTxn::Refused(state) => Refined::Refused(state),
            TaskTxn::Duplicate => Refined::Duplicate,
            TaskTxn::Missing => Refined::Missing,
        }
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

    /// After [`Queue::shutdown`]: lets running runs go on for at most `grace`; runs still
    /// running then are cancelled and counted as interrupted (they keep their queue item
    /// and rerun once after the next start), and get at most [`STOP_WITHIN`] more to stop.
    /// A run that ends by itself within `grace` keeps its result (a report, an auto-merge).
    /// Then waits until observers have read every event (within the same bound). True when
    /// every run ended and every event was read.
    pub async fn wait_idle(&self, grace: Duration) -> bool {
        self.inner.runs.close();
        let deadline = tokio::time::Instant::now() + grace;
        if tokio::time::timeout_at(deadline, self.inner.runs.wait())
            .await
            .is_err()
        {
            let active = self.inner.active.lock().unwrap_or_else(|p| p.into_inner());
            let mut interrupted = self
                .inner
                .interrupted
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for (task_id, token) in active.iter() {
                interrupted.insert(task_id.clone());
                token.cancel();
            }
        }
        let deadline = tokio::time::Instant::now() + STOP_WITHIN;
        if tokio::time::timeout_at(deadline, self.inner.runs.wait())
            .await
            .is_err()
        {
            return false;
        }
        // The last events may still be on their way to the egress.
        while !self.inner.events.is_empty() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Whether the shutdown interrupted the task's run at the end of the grace period (it
    /// reruns after the restart; its end is not a result to report).
    pub fn was_interrupted(&self, task_id: &str) -> bool {
        self.inner
            .interrupted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(task_id)
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
        let (running, waiting) = self.waiting()?;
        let queued = waiting.into_iter().map(|i| i.task_id).collect();
        Ok(QueueStatus { queued, running })
    }

    /// The tasks running now, and the stored queue items of every other task.
    fn waiting(&self) -> Result<(Vec<String>, Vec<QueueItem>), StoreError> {
        let running: Vec<String> = self
            .inner
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        let waiting = self
            .inner
            .store
            .queued()?
            .into_iter()
            .map(|(_, i)| i)
            .filter(|i| !running.contains(&i.task_id))
            .collect();
        Ok((running, waiting))
    }

    /// When the oldest queue item that is not running was queued (`enqueued_ms`, ms since
    /// the Unix epoch), or `None` when nothing waits. Errors: the store could not be read.
    pub fn oldest_waiting_ms(&self) -> Result<Option<u64>, StoreError> {
        Ok(self.waiting()?.1.into_iter().map(|i| i.enqueued_ms).min())
    }

    /// Stops dispatching. Running runs go on: [`Queue::wait_idle`] gives them the grace
    /// period, then interrupts the rest.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
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
            // An older revision with a newer one queued behind it: the newer one covers it
            // (its run is told every revision not yet run, `Task::unrun_revisions`).
            let superseded = items[i + 1..]
                .iter()
                .any(|(_, later)| later.task_id == item.task_id);
            if superseded || recover::served(&store, &task, item)? {
                store.dequeue(*key).await?;
                continue;
            }
            let Ok(permit) = self.inner.permits.clone().try_acquire_owned() else {
                break;
            };
            // Started only through the state machine, on the stored task: a task closed
            // (❌), merging or merged since it was queued does not run.
            let task = match store
                .transition(&item.task_id, TaskState::Running, |_| {})
                .await?
            {
                TaskTxn::Done { task, .. } => *task,
                // A merge in flight: the item waits for its outcome (a failed merge leaves
                // the task Ready, and the revision runs then).
                TaskTxn::Refused(why) if why.from == TaskState::Merging => continue,
                TaskTxn::Refused(why) => {
                    tracing::info!(task_id = item.task_id, reason = %why, "queued run not started");
                    store.dequeue(*key).await?;
                    continue;
                }
                TaskTxn::Duplicate | TaskTxn::Missing => {
                    store.dequeue(*key).await?;
                    continue;
                }
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
            let saved = store.transition(&task.id, TaskState::Failed, |_| {}).await;
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
        // Only a run the shutdown stopped at the end of the grace period is an
        // interruption. One that ended by itself (a report, an auto-merge) keeps its result
        // and its state.
        // Checkpointed only if the shutdown's cancel is what ended it: the run ended
        // cancelled (or failed as it was torn down). A run that finished by itself after
        // the deadline (an auto-merge already under way) keeps its result.
        let interrupted = !by_user
            && self.was_interrupted(&task_id)
            && match store
                .transact_task(&task_id, None, |t| {
                    if !matches!(t.state, TaskState::Cancelled | TaskState::Failed) {
                        return Err(());
                    }
                    // The one move outside the state table: the run's own end wrote
                    // Cancelled, which is not what happened to the task. The item stays
                    // queued, so the next start reports it and reruns it once.
                    t.state = TaskState::Running;
                    Ok(None)
                })
                .await
            {
                Ok(TaskTxn::Done { .. }) => true,
                Ok(_) => false,
                Err(e) => {
                    tracing::error!(error = %e, task_id, "could not checkpoint an interrupted task");
                    true
                }
            };
        if !interrupted && let Err(e) = store.dequeue(key).await {
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

mod recover;
#[cfg(test)]
mod tests;
