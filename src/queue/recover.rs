//! What a restart finds in the queue: runs the last process left mid-way (each is
//! reported and rerun once; a second interruption fails the task), and items a finished run
//! already served (a crash between a run's end and its dequeue), which must not run twice.

use super::{Queue, QueueEvent};
use crate::store::{AuditEvent, QueueItem, RunState, Store, StoreError, TaskTxn};
use crate::task::{Task, TaskState, now_ms};

impl Queue {
    /// After a restart: queue items whose task was mid-run were interrupted. Each is reported
    /// and rerun once; a second interruption fails the task. Call before [`Queue::run`].
    pub async fn recover(&self) -> Result<Vec<String>, StoreError> {
        let store = &self.inner.store;
        let mut interrupted = Vec::new();
        // Every run record left running ended with the process, whatever its task says now
        // (a task closed or merging meanwhile keeps its state).
        for task in store.list_tasks()? {
            if let Some(run_id) = task.runs.last()
                && let Some(mut run) = store.get_run(run_id)?
                && run.state == RunState::Running
            {
                run.state = RunState::Failed;
                run.error = Some("interrupted: slipway stopped during the run".into());
                run.finished_ms = Some(now_ms());
                store.put_run(&run).await?;
            }
        }
        for (key, item) in store.queued()? {
            let Some(task) = store.get_task(&item.task_id)? else {
                store.dequeue(key).await?;
                continue;
            };
            if task.state != TaskState::Running {
                continue;
            }
            let rerun = item.reruns == 0;
            // The old item goes and the task's new state (with its new item) comes in one
            // transaction: a crash in between cannot strand the task.
            let done = store
                .transact_task_dequeue(&task.id, key, |t| {
                    if t.state != TaskState::Running {
                        return Err(());
                    }
                    t.updated_ms = now_ms();
                    if rerun {
                        t.state = TaskState::Queued;
                        Ok(Some(QueueItem {
                            reruns: item.reruns + 1,
                            enqueued_ms: now_ms(),
                            ..item.clone()
                        }))
                    } else {
                        t.state = TaskState::Failed;
                        Ok(None)
                    }
                })
                .await?;
            if !matches!(done, TaskTxn::Done { .. }) {
                continue;
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
}

/// Whether `item` was run already: a run of its task that covered the item's revision
/// (or a later one) ended after the item was queued. A crash between a run's end and its
/// dequeue leaves such an item behind, and so does a refinement the run took up when it
/// started; neither must run twice. An item queued after that run ended (🔁) is new work.
pub(super) fn served(store: &Store, task: &Task, item: &QueueItem) -> Result<bool, StoreError> {
    for run_id in task.runs.iter().rev() {
        let Some(run) = store.get_run(run_id)? else {
            continue;
        };
        let ended_after = run.finished_ms.is_some_and(|f| f >= item.enqueued_ms);
        if !ended_after {
            return Ok(false);
        }
        // An interrupted or failed run served nothing (its rerun is the point).
        if run.revision >= item.revision
            && matches!(run.state, RunState::Finished | RunState::Cancelled)
        {
            return Ok(true);
        }
    }
    Ok(false)
}
