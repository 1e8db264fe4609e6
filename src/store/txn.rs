//! Task changes as one sled transaction: the task's new value, its queue item (if the change
//! queues a run) and the idempotency record of the message that asked for it are written
//! together or not at all. sled transactions hold its write lock, so no other write (a
//! `compare_and_swap` included) interleaves: the change sees the freshest task.
//!
//! State changes go through [`Store::transition`], which allows only the moves of
//! [`TaskState::can_become`] (the one state-machine table, `src/task/state.rs`).

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::{QueueItem, Result, Store, StoreError};
use crate::task::{Task, TaskState, now_ms};

/// What a task transaction did.
#[derive(Debug, Clone)]
pub enum TaskTxn<R> {
    /// Written: the task as stored, and the queue key when an item was queued.
    Done {
        /// The task after the change.
        task: Box<Task>,
        /// The new queue item's key, if the change queued one.
        queued: Option<u64>,
    },
    /// The change refused (nothing written): its reason.
    Refused(R),
    /// The idempotency key was used before: the message was handled; nothing written.
    Duplicate,
    /// No such task.
    Missing,
}

/// Why the state machine refused a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a task that is {from:?} cannot become {to:?}")]
pub struct IllegalTransition {
    /// The stored state.
    pub from: TaskState,
    /// The state asked for.
    pub to: TaskState,
}

enum Abort<R> {
    Refused(R),
    Duplicate,
    Missing,
}

impl Store {
    /// Runs `change` on the stored task `id` inside one transaction. `change` returns
    /// `Ok(Some(item))` to also queue `item`, `Ok(None)` to only store the task, or `Err(r)` to
    /// refuse (nothing written). With `idempotency = Some(k)`, a `k` used before gives
    /// [`TaskTxn::Duplicate`], and otherwise `k` is recorded with the change. `change` may run
    /// more than once (sled retries conflicts); it must only compute. Flushes before it
    /// returns [`TaskTxn::Done`].
    pub async fn transact_task<R>(
        &self,
        id: &str,
        idempotency: Option<&str>,
        change: impl Fn(&mut Task) -> std::result::Result<Option<QueueItem>, R>,
    ) -> Result<TaskTxn<R>> {
        self.txn(id, idempotency, None, None, change).await
    }

    /// [`Store::transact_task`] that also removes queue item `dequeue` in the same
    /// transaction (a restart re-queueing an interrupted run: the old item goes, the new
    /// one comes, or neither).
    pub async fn transact_task_dequeue<R>(
        &self,
        id: &str,
        dequeue: u64,
        change: impl Fn(&mut Task) -> std::result::Result<Option<QueueItem>, R>,
    ) -> Result<TaskTxn<R>> {
        self.txn(id, None, Some(dequeue), None, change).await
    }

    /// The one task transaction: `new` is the task to start from when `id` is not stored
    /// (a task being created), else a missing task is [`TaskTxn::Missing`].
    pub(super) async fn txn<R>(
        &self,
        id: &str,
        idempotency: Option<&str>,
        dequeue: Option<u64>,
        new: Option<&Task>,
        change: impl Fn(&mut Task) -> std::result::Result<Option<QueueItem>, R>,
    ) -> Result<TaskTxn<R>> {
        let qkey = self.db.generate_id()?;
        let idem = idempotency.map(|k| format!("created/{k}"));
        let done = (&self.tasks, &self.queue, &self.bindings).transaction(|(tasks, queue, b)| {
            if let Some(k) = &idem
                && b.get(k.as_bytes())?.is_some()
            {
                return Err(ConflictableTransactionError::Abort(Abort::Duplicate));
            }
            let stored = tasks
                .get(id.as_bytes())?
                .and_then(|bytes| Self::decode::<Task>(&format!("task {id}"), &bytes).ok());
            let Some(mut task) = stored.or_else(|| new.cloned()) else {
                return Err(ConflictableTransactionError::Abort(Abort::Missing));
            };
            let item = change(&mut task)
                .map_err(|r| ConflictableTransactionError::Abort(Abort::Refused(r)))?;
            tasks.insert(id.as_bytes(), Self::encode(&task))?;
            if let Some(old) = dequeue {
                queue.remove(&old.to_be_bytes())?;
            }
            let queued = match item {
                Some(item) => {
                    queue.insert(qkey.to_be_bytes().to_vec(), Self::encode(&item))?;
                    Some(qkey)
                }
                None => None,
            };
            if let Some(k) = &idem {
                b.insert(k.as_bytes(), Self::encode(&task.id))?;
            }
            Ok((task, queued))
        });
        match done {
            Ok((task, queued)) => {
                self.flush().await?;
                Ok(TaskTxn::Done {
                    task: Box::new(task),
                    queued,
                })
            }
            Err(TransactionError::Abort(Abort::Refused(r))) => Ok(TaskTxn::Refused(r)),
            Err(TransactionError::Abort(Abort::Duplicate)) => Ok(TaskTxn::Duplicate),
            Err(TransactionError::Abort(Abort::Missing)) => Ok(TaskTxn::Missing),
            Err(TransactionError::Storage(e)) => Err(StoreError::Sled(e)),
        }
    }

    /// Moves task `id` to state `to` if the state machine allows it from the stored state
    /// ([`TaskState::can_become`]), applying `change` to the other fields in the same
    /// write. `Refused` names the stored state; nothing is written then.
    pub async fn transition(
        &self,
        id: &str,
        to: TaskState,
        change: impl Fn(&mut Task),
    ) -> Result<TaskTxn<IllegalTransition>> {
        self.transact_task(id, None, |t| {
            if !t.state.can_become(to) {
                return Err(IllegalTransition { from: t.state, to });
            }
            t.state = to;
            t.updated_ms = now_ms();
            change(t);
            Ok(None)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{Origin, RepoRef};

    async fn stored(state: TaskState) -> (tempfile::TempDir, Store, Task) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let repo = RepoRef {
            name: "o/n".into(),
            source: "/x".into(),
            base: "main".into(),
            forge: Default::default(),
        };
        let mut t = Task::new(repo, "alice", Origin::Cli, "fix it");
        t.state = state;
        store.put_task(&t).await.unwrap();
        (dir, store, t)
    }

    #[tokio::test]
    async fn a_transition_the_table_forbids_writes_nothing() {
        let (_d, store, t) = stored(TaskState::Merged).await;
        let r = store
            .transition(&t.id, TaskState::Running, |t| t.pr_number = Some(9))
            .await
            .unwrap();
        assert!(matches!(
            r,
            TaskTxn::Refused(IllegalTransition {
                from: TaskState::Merged,
                to: TaskState::Running
            })
        ));
        let now = store.get_task(&t.id).unwrap().unwrap();
        assert_eq!((now.state, now.pr_number), (TaskState::Merged, None));
    }

    #[tokio::test]
    async fn a_change_with_its_queue_item_lands_together_and_once_per_message() {
        let (_d, store, t) = stored(TaskState::Ready).await;
        let change = |task: &mut Task| -> std::result::Result<Option<QueueItem>, ()> {
            task.state = TaskState::Queued;
            Ok(Some(QueueItem {
                task_id: task.id.clone(),
                revision: 2,
                enqueued_ms: 1,
                reruns: 0,
            }))
        };
        let first = store
            .transact_task(&t.id, Some("C1/2.0"), change)
            .await
            .unwrap();
        assert!(matches!(
            first,
            TaskTxn::Done {
                queued: Some(_),
                ..
            }
        ));
        let again = store
            .transact_task(&t.id, Some("C1/2.0"), change)
            .await
            .unwrap();
        assert!(matches!(again, TaskTxn::Duplicate));
        assert_eq!(store.queued().unwrap().len(), 1);
        assert_eq!(
            store.get_task(&t.id).unwrap().unwrap().state,
            TaskState::Queued
        );
    }
}
