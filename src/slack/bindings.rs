//! The Slack front end's records in the store, typed: which task a thread drives
//! (`slack/thread/<channel>/<thread_ts>` → task ID), a task's thread and status message
//! (`slack/task/<task id>` → [`SlackThread`]) and the messages reactions act on
//! (`slack/msg/<channel>/<ts>` → [`ReportMessage`]). Keys and serde shapes are a contract
//! with existing stores: change neither.
//!
//! Owns only the keys and their (de)serialisation; must not call Slack or decide anything.
#![warn(missing_docs)]

use serde::{Deserialize, Serialize};

use crate::report::Decision;
use crate::store::{Store, StoreError};
use crate::task::Task;

/// What the bot keeps per Slack-started task (binding `slack/task/<id>`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SlackThread {
    /// The task (also the key).
    pub task_id: String,
    /// The thread's channel ID.
    pub channel: String,
    /// The thread's root message `ts`.
    pub thread_ts: String,
    /// The status message of the current (or last) run.
    pub status: Option<StatusMessage>,
    /// A status message posted for a queued revision; the run that starts next takes it.
    #[serde(default)]
    pub pending: Option<StatusMessage>,
}

impl SlackThread {
    /// The record of task `task_id`'s thread `(channel, thread_ts)`, no status message yet.
    pub fn new(channel: &str, thread_ts: &str, task_id: &str) -> Self {
        Self {
            task_id: task_id.into(),
            channel: channel.into(),
            thread_ts: thread_ts.into(),
            status: None,
            pending: None,
        }
    }
}

/// One run's status message, edited in place.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StatusMessage {
    /// The message's Slack timestamp; empty for one posted through the outbox (see `key`).
    #[serde(default)]
    pub ts: String,
    /// Its outbox key (`crate::slack::outbox`): edits name it by this, so an edit written
    /// before the post was sent still finds it. `None` for records from before the outbox.
    #[serde(default)]
    pub key: Option<String>,
    /// The revision the run executes.
    pub revision: u32,
    /// The run, once it started.
    pub run_id: Option<String>,
    /// One line per finished node.
    pub lines: Vec<String>,
    /// When the run started, Unix milliseconds.
    pub started_ms: u64,
    /// The run reached its end (report or failure posted).
    pub done: bool,
    /// The run's model cost so far, USD (`RunEvent::Cost`), shown with the next update.
    #[serde(default)]
    pub cost_usd: Option<f64>,
}

/// A report (or failure, or status) message, for reactions (binding
/// `slack/msg/<channel>/<ts>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportMessage {
    /// The task the message is about.
    pub task_id: String,
    /// The run it reports; `None` on status and failure messages.
    pub run_id: Option<String>,
    /// The tested commit the report is about; `None` on status and failure messages.
    pub commit: Option<String>,
    /// The report's decision; `None` on status and failure messages.
    pub decision: Option<Decision>,
}

impl ReportMessage {
    /// A status or failure message of `task_id`: a target for ❌ and 🔁, not for ✅ (it has
    /// no tested commit).
    pub fn status(task_id: &str) -> Self {
        Self {
            task_id: task_id.into(),
            run_id: None,
            commit: None,
            decision: None,
        }
    }
}

fn thread_key(channel: &str, thread_ts: &str) -> String {
    format!("slack/thread/{channel}/{thread_ts}")
}
fn task_key(task_id: &str) -> String {
    format!("slack/task/{task_id}")
}
fn msg_key(channel: &str, ts: &str) -> String {
    format!("slack/msg/{channel}/{ts}")
}

/// Typed access to the Slack bindings of one store. Cheap to clone.
#[derive(Clone)]
pub struct Bindings {
    store: Store,
}

impl Bindings {
    /// The bindings in `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The task the thread drives, if it is bound and still stored.
    pub fn task_for_thread(
        &self,
        channel: &str,
        thread_ts: &str,
    ) -> Result<Option<Task>, StoreError> {
        let id: Option<String> = self.store.binding(&thread_key(channel, thread_ts))?;
        Ok(match id {
            Some(id) => self.store.get_task(&id)?,
            None => None,
        })
    }

    /// Makes the thread drive `task_id` (replies refine it).
    pub async fn bind_thread(
        &self,
        channel: &str,
        thread_ts: &str,
        task_id: &str,
    ) -> Result<(), StoreError> {
        self.store
            .put_binding(&thread_key(channel, thread_ts), &task_id)
            .await
    }

    /// The task's thread record.
    pub fn slack_thread(&self, task_id: &str) -> Result<Option<SlackThread>, StoreError> {
        self.store.binding(&task_key(task_id))
    }

    /// Stores the task's thread record (under its `task_id`).
    pub async fn put_slack_thread(&self, bound: &SlackThread) -> Result<(), StoreError> {
        self.store
            .put_binding(&task_key(&bound.task_id), bound)
            .await
    }

    /// The report message at `(channel, ts)`, if it is one of ours.
    pub fn message(&self, channel: &str, ts: &str) -> Result<Option<ReportMessage>, StoreError> {
        self.store.binding(&msg_key(channel, ts))
    }

    /// Records the message at `(channel, ts)` as a reaction target.
    pub async fn bind_message(
        &self,
        channel: &str,
        ts: &str,
        msg: &ReportMessage,
    ) -> Result<(), StoreError> {
        self.store.put_binding(&msg_key(channel, ts), msg).await
    }
}
