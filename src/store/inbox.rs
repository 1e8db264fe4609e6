//! The inbox: every Socket Mode envelope is written here, and flushed, *before* it is
//! acked. Slack never redelivers an acked envelope (`shared/fixtures/slack/socket_mode.md`),
//! so an envelope acked but not yet handled must survive a crash: the bot handles entries
//! from the inbox and removes each one only when its handler has finished; a restart
//! handles what is left, oldest first.
//!
//! Also here: queueing a task's revision together with the task's state (and, for a task
//! created from a message, the message's idempotency record) in **one** sled transaction,
//! so a crash can never leave a queued task without its queue item, or a created task that
//! a resumed inbox entry would create again.

use super::{QueueItem, Result, Store, TaskTxn};
use crate::task::Task;
use serde::{Deserialize, Serialize};

/// One acked envelope waiting for (or in) its handler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboxEntry {
    /// Slack's `envelope_id`.
    pub envelope_id: String,
    /// 0 for the first delivery; 1, 2, 3 for Slack's redeliveries.
    pub retry_attempt: u64,
    /// Slack's `retry_reason` (`timeout`, …), empty on the first delivery.
    pub retry_reason: String,
    /// The envelope's `payload` (the event callback).
    pub payload: serde_json::Value,
    /// When it was read off the socket, unix ms.
    pub received_ms: u64,
}

impl Store {
    /// Writes `entry` to the inbox and flushes; returns its key (monotonic, so the inbox
    /// is handled in arrival order). Call before acking the envelope. Latency: one sled
    /// insert plus one `fsync` (measured in the README, "Reliability").
    pub async fn inbox_put(&self, entry: &InboxEntry) -> Result<u64> {
        let id = self.db.generate_id()?;
        self.inbox.insert(id.to_be_bytes(), Self::encode(entry))?;
        self.flush().await?;
        Ok(id)
    }

    /// The inbox, oldest first: envelopes acked whose handler has not finished.
    pub fn inbox(&self) -> Result<Vec<(u64, InboxEntry)>> {
        self.inbox
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                Ok((key_u64(&k), Self::decode("inbox entry", &v)?))
            })
            .collect()
    }

    /// Removes inbox entry `key` (its handler finished), then flushes.
    pub async fn inbox_done(&self, key: u64) -> Result<()> {
        self.inbox.remove(key.to_be_bytes())?;
        self.flush().await
    }

    /// Stores `task` and queues `item` in one transaction, then flushes: both or neither
    /// survive a crash. With `idempotency = Some(k)` (a Slack message's `channel/ts`), the
    /// task is stored only if no earlier call used `k`; `Ok(Err(task_id))` names the task
    /// that call stored, and nothing is written.
    pub async fn put_task_queued(
        &self,
        task: &Task,
        item: &QueueItem,
        idempotency: Option<&str>,
    ) -> Result<std::result::Result<u64, String>> {
        let queue = |_: &mut Task| Ok::<_, std::convert::Infallible>(Some(item.clone()));
        match self
            .txn(&task.id, idempotency, None, Some(task), queue)
            .await?
        {
            TaskTxn::Done { queued, .. } => Ok(Ok(queued.unwrap_or_default())),
            TaskTxn::Refused(never) => match never {},
            // `Missing` cannot happen: a task not stored is started from `task`.
            TaskTxn::Duplicate | TaskTxn::Missing => Ok(Err(self
                .created_by(idempotency.unwrap_or_default())?
                .unwrap_or_default())),
        }
    }

    /// The task a message created (see [`Store::put_task_queued`]'s idempotency key).
    pub fn created_by(&self, idempotency: &str) -> Result<Option<String>> {
        self.bindings
            .get(format!("created/{idempotency}").as_bytes())?
            .map(|b| Self::decode("idempotency record", &b))
            .transpose()
    }
}

/// A big-endian u64 key (shorter keys read as zero-padded).
pub(super) fn key_u64(k: &[u8]) -> u64 {
    let mut key = [0u8; 8];
    let n = 8.min(k.len());
    key[..n].copy_from_slice(&k[..n]);
    u64::from_be_bytes(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{Origin, RepoRef};

    fn task() -> Task {
        let repo = RepoRef {
            name: "o/n".into(),
            source: "/x".into(),
            base: "main".into(),
            forge: Default::default(),
        };
        Task::new(repo, "alice", Origin::Cli, "fix it")
    }

    #[tokio::test]
    async fn inbox_entries_survive_reopening_until_done() {
        let dir = tempfile::tempdir().unwrap();
        let entry = |id: &str| InboxEntry {
            envelope_id: id.into(),
            retry_attempt: 0,
            retry_reason: String::new(),
            payload: serde_json::json!({"event_id": id}),
            received_ms: 1,
        };
        let (a, b) = {
            let store = Store::open(dir.path()).unwrap();
            let a = store.inbox_put(&entry("E1")).await.unwrap();
            let b = store.inbox_put(&entry("E2")).await.unwrap();
            store.inbox_done(a).await.unwrap();
            (a, b)
        };
        let store = Store::open(dir.path()).unwrap();
        let left = store.inbox().unwrap();
        assert_eq!(left, vec![(b, entry("E2"))]);
        assert!(a < b);
    }

    #[tokio::test]
    async fn a_queued_task_and_its_item_are_written_together_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let t = task();
        let item = QueueItem {
            task_id: t.id.clone(),
            revision: 1,
            enqueued_ms: 1,
            reruns: 0,
        };
        let first = store
            .put_task_queued(&t, &item, Some("C1/1.0"))
            .await
            .unwrap();
        assert!(first.is_ok());
        let mut other = task();
        other.id = "other".into();
        let again = store
            .put_task_queued(&other, &item, Some("C1/1.0"))
            .await
            .unwrap();
        assert_eq!(again, Err(t.id.clone()));
        assert!(store.get_task("other").unwrap().is_none());
        assert_eq!(store.queued().unwrap().len(), 1);
        assert_eq!(store.created_by("C1/1.0").unwrap(), Some(t.id.clone()));
    }
}
