//! The store: tasks, runs, node results, transcripts and the append-only audit log, in sled.
//!
//! All sled use lives here, behind this API, so the engine can be replaced without touching
//! callers (FIELD_NOTES: sled 0.34 is beta). Every value is JSON wrapped as `{"v":1,"data":…}`
//! and every state change is flushed before the call returns, so what a caller was told is
//! stored survives a crash. Inserts hit sled's page cache and return at once; the flush,
//! the only slow part, is group committed on the blocking pool (`store/flush.rs`: sled
//! 0.34's `flush_async` deadlocks when called concurrently).
//!
//! The audit log's vocabulary lives in `store/audit.rs`: writers pass an [`AuditEvent`],
//! readers get [`AuditRecord`]s whose `action` and `detail` are that event's serde spelling.

use std::path::Path;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::report::RunReport;
use crate::task::{Task, now_ms};

mod audit;
mod flush;
mod inbox;
mod outbox;
mod redact;
mod schedules;
mod spend;
mod txn;

pub use audit::{AuditEvent, AuditRecord, SecretFinding};
pub use inbox::InboxEntry;
pub use schedules::ScheduleRecord;
pub use spend::SpendKeys;
pub use txn::{IllegalTransition, TaskTxn};

/// Store failures. None is the user's doing; all mean the data dir is unusable or corrupt.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {source} (is another slipway using it?)")]
    Open { path: String, source: sled::Error },
    #[error("store I/O failed: {0}")]
    Sled(#[from] sled::Error),
    #[error("a stored record is unreadable ({what}): {source}")]
    Decode {
        what: String,
        source: serde_json::Error,
    },
    /// A value that cannot be written as JSON. A bug, not bad data: none of our audit
    /// events can fail to serialise; reported rather than storing a wrong entry.
    #[error("cannot encode {what}: {source}")]
    Encode {
        what: String,
        source: serde_json::Error,
    },
    #[error("store worker failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Version of every stored value's shape.
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    v: u32,
    data: T,
}

/// Lifecycle of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Finished,
    Failed,
    Cancelled,
}

/// The result of one blueprint node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRecord {
    pub node: String,
    /// `deterministic` or `agent`.
    pub kind: String,
    pub ok: bool,
    pub detail: String,
    pub started_ms: u64,
    pub duration_ms: u64,
}

/// One run of a revision through a blueprint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub task_id: String,
    pub revision: u32,
    pub blueprint: crate::task::BlueprintId,
    pub state: RunState,
    pub nodes: Vec<NodeRecord>,
    /// Set when the run ends with a report (also on halt).
    pub report: Option<RunReport>,
    /// Set when the run failed before it could report.
    pub error: Option<String>,
    /// The agent's `finish` summary, shown to the model in the next revision.
    #[serde(default)]
    pub summary: Option<String>,
    pub started_ms: u64,
    pub finished_ms: Option<u64>,
}

/// One transcript entry: a model request or response, or a tool call, with timing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TranscriptEntry {
    /// `llm_request`, `llm_response`, `tool_call`.
    pub kind: String,
    pub at_ms: u64,
    pub duration_ms: u64,
    pub body: serde_json::Value,
}

/// Handle to the sled database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    tasks: sled::Tree,
    runs: sled::Tree,
    transcripts: sled::Tree,
    audit: sled::Tree,
    /// Queued work, keyed by a monotonic id (so iteration is FIFO).
    queue: sled::Tree,
    /// Seen event keys → expiry (unix ms), for deduplication.
    dedupe: sled::Tree,
    /// Front-end bindings (Slack threads and messages ↔ tasks), keyed by the front end.
    bindings: sled::Tree,
    /// Acked Socket Mode envelopes not yet handled (see `store/inbox.rs`).
    inbox: sled::Tree,
    /// Front-end messages not yet sent (see `store/outbox.rs`).
    outbox: sled::Tree,
    /// Secret values redacted from every audit detail written (see [`Store::with_redaction`]).
    secrets: std::sync::Arc<[String]>,
    /// One flush at a time, group committed (`store/flush.rs`).
    flushes: std::sync::Arc<flush::Flushes>,
}

/// One queued revision run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueItem {
    pub task_id: String,
    pub revision: u32,
    pub enqueued_ms: u64,
    /// Reruns after an interruption (a restart mid-run); rerun at most once.
    #[serde(default)]
    pub reruns: u32,
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        // sled's file lock outlives a dropped `Db` by a moment (its flusher thread lets go
        // last): a reopen right after a close, as in a restart, waits for it, up to 2 s.
        let mut tries = 0;
        let db = loop {
            match sled::Config::new()
                .path(dir)
                .mode(sled::Mode::LowSpace)
                .open()
            {
                Ok(db) => break db,
                Err(e) if tries < 40 && e.to_string().contains("could not acquire lock") => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(source) => {
                    return Err(StoreError::Open {
                        path: dir.display().to_string(),
                        source,
                    });
                }
            }
        };
        Ok(Self {
            tasks: db.open_tree("tasks")?,
            runs: db.open_tree("runs")?,
            transcripts: db.open_tree("transcripts")?,
            audit: db.open_tree("audit")?,
            queue: db.open_tree("queue")?,
            dedupe: db.open_tree("dedupe")?,
            bindings: db.open_tree("bindings")?,
            inbox: db.open_tree("inbox")?,
            outbox: db.open_tree("outbox")?,
            secrets: std::sync::Arc::from(Vec::new()),
            flushes: Default::default(),
            db,
        })
    }

    /// The same store, redacting `secrets` (values of the host's secret variables) from the
    /// detail of every audit entry it writes, whoever writes it.
    pub fn with_redaction(mut self, secrets: Vec<String>) -> Self {
        self.secrets = std::sync::Arc::from(secrets);
        self
    }

    fn encode<T: Serialize>(value: &T) -> Vec<u8> {
        // Serialising our own plain structs into JSON cannot fail (no maps with non-string
        // keys, no custom serialisers); fall back to an empty object rather than panic.
        serde_json::to_vec(&Envelope {
            v: VERSION,
            data: value,
        })
        .unwrap_or_else(|_| b"{}".to_vec())
    }

    fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
        let env: Envelope<T> =
            serde_json::from_slice(bytes).map_err(|source| StoreError::Decode {
                what: what.to_string(),
                source,
            })?;
        Ok(env.data)
    }

    /// Inserts or replaces a task, then flushes.
    pub async fn put_task(&self, task: &Task) -> Result<()> {
        self.tasks.insert(task.id.as_bytes(), Self::encode(task))?;
        self.flush().await
    }

    pub fn get_task(&self, id: &str) -> Result<Option<Task>> {
        self.tasks
            .get(id.as_bytes())?
            .map(|b| Self::decode(&format!("task {id}"), &b))
            .transpose()
    }

    /// All tasks, newest first.
    pub fn list_tasks(&self) -> Result<Vec<Task>> {
        let mut out: Vec<Task> = self
            .tasks
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                Self::decode(&format!("task {}", String::from_utf8_lossy(&k)), &v)
            })
            .collect::<Result<_>>()?;
        out.sort_by_key(|t| std::cmp::Reverse(t.created_ms));
        Ok(out)
    }

    /// Changes a stored task atomically: `change` runs on the freshest copy (maybe more than
    /// once, so it must only set fields), then the result is stored and flushed. For a task
    /// that is not stored yet, `change` runs on `fallback`. Concurrent writers (a run saving
    /// its state, a refinement appending a revision) never lose each other's changes.
    pub async fn update_task(&self, fallback: &Task, change: impl Fn(&mut Task)) -> Result<Task> {
        loop {
            let current = self.tasks.get(fallback.id.as_bytes())?;
            let mut task = match &current {
                Some(bytes) => Self::decode::<Task>(&format!("task {}", fallback.id), bytes)?,
                None => fallback.clone(),
            };
            change(&mut task);
            let swapped = self.tasks.compare_and_swap(
                fallback.id.as_bytes(),
                current,
                Some(Self::encode(&task)),
            )?;
            if swapped.is_ok() {
                self.flush().await?;
                return Ok(task);
            }
        }
    }

    /// Inserts or replaces a run, then flushes.
    pub async fn put_run(&self, run: &RunRecord) -> Result<()> {
        self.runs.insert(run.run_id.as_bytes(), Self::encode(run))?;
        self.flush().await
    }

    pub fn get_run(&self, id: &str) -> Result<Option<RunRecord>> {
        self.runs
            .get(id.as_bytes())?
            .map(|b| Self::decode(&format!("run {id}"), &b))
            .transpose()
    }

    /// Appends a transcript entry under `run_id`, then flushes.
    pub async fn append_transcript(&self, run_id: &str, entry: &TranscriptEntry) -> Result<()> {
        let seq = self.db.generate_id()?;
        let mut key = run_id.as_bytes().to_vec();
        key.push(b'/');
        key.extend_from_slice(&seq.to_be_bytes());
        self.transcripts.insert(key, Self::encode(entry))?;
        self.flush().await
    }

    /// A run's transcript, in order.
    pub fn transcript(&self, run_id: &str) -> Result<Vec<TranscriptEntry>> {
        let mut prefix = run_id.as_bytes().to_vec();
        prefix.push(b'/');
        self.transcripts
            .scan_prefix(prefix)
            .map(|kv| {
                let (_, v) = kv?;
                Self::decode("transcript entry", &v)
            })
            .collect()
    }

    /// Appends to the audit log, then flushes. Keys are sled's monotonic ids, so iteration
    /// order is append order. Private: writers go through [`Store::audit_now`] or
    /// [`RunLog::audit`], so every stored action is an [`AuditEvent`].
    async fn append_audit(&self, record: AuditRecord) -> Result<()> {
        let id = self.db.generate_id()?;
        self.audit.insert(id.to_be_bytes(), Self::encode(&record))?;
        self.flush().await
    }

    /// Appends `item` to the queue, then flushes. Returns its key.
    pub async fn enqueue(&self, item: &QueueItem) -> Result<u64> {
        let id = self.db.generate_id()?;
        self.queue.insert(id.to_be_bytes(), Self::encode(item))?;
        self.flush().await?;
        Ok(id)
    }

    /// The queue, oldest first.
    pub fn queued(&self) -> Result<Vec<(u64, QueueItem)>> {
        self.queue
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                let mut key = [0u8; 8];
                key.copy_from_slice(&k[..8.min(k.len())]);
                Ok((u64::from_be_bytes(key), Self::decode("queue item", &v)?))
            })
            .collect()
    }

    /// Removes a queue entry (its run finished), then flushes.
    pub async fn dequeue(&self, key: u64) -> Result<()> {
        self.queue.remove(key.to_be_bytes())?;
        self.flush().await
    }

    /// Records `key` as seen until `now_ms + ttl_ms`. Returns true the first time (or after
    /// the earlier record expired), false for a duplicate. Atomic: two deliveries racing each
    /// other see one `true`.
    pub async fn first_sighting(&self, key: &str, ttl_ms: u64, now_ms: u64) -> Result<bool> {
        self.first_sighting_by(key, ttl_ms, now_ms, None).await
    }

    /// [`Store::first_sighting`] on behalf of inbox entry `owner`: a key that `owner`
    /// itself recorded counts as unseen, so an entry resumed after a crash is handled again
    /// (its handler is idempotent), while every other delivery of the event is a duplicate.
    pub async fn first_sighting_by(
        &self,
        key: &str,
        ttl_ms: u64,
        now_ms: u64,
        owner: Option<u64>,
    ) -> Result<bool> {
        let mut record = (now_ms + ttl_ms).to_be_bytes().to_vec();
        if let Some(o) = owner {
            record.extend_from_slice(&o.to_be_bytes());
        }
        loop {
            let current = self.dedupe.get(key.as_bytes())?;
            let live = current.as_ref().is_some_and(|v| inbox::key_u64(v) > now_ms);
            let mine = current
                .as_ref()
                .is_some_and(|v| v.len() >= 16 && Some(inbox::key_u64(&v[8..])) == owner);
            if mine {
                return Ok(true);
            }
            if live {
                return Ok(false);
            }
            let swapped =
                self.dedupe
                    .compare_and_swap(key.as_bytes(), current, Some(&record[..]))?;
            if swapped.is_ok() {
                self.flush().await?;
                return Ok(true);
            }
        }
    }

    /// Stores a front end's binding under `key` (e.g. a Slack thread → its task), then
    /// flushes.
    pub async fn put_binding<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        self.bindings.insert(key.as_bytes(), Self::encode(value))?;
        self.flush().await
    }

    /// Stores `value` under `key` only if nothing is there (atomic: of two callers racing,
    /// one wins), then flushes. Returns the value already there, if any (nothing written).
    pub async fn claim_binding<T: Serialize + DeserializeOwned>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<Option<T>> {
        match self.bindings.compare_and_swap(
            key.as_bytes(),
            None as Option<&[u8]>,
            Some(Self::encode(value)),
        )? {
            Ok(()) => {
                self.flush().await?;
                Ok(None)
            }
            Err(e) => e
                .current
                .map(|b| Self::decode(&format!("binding {key}"), &b))
                .transpose(),
        }
    }

    /// The binding under `key`.
    pub fn binding<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.bindings
            .get(key.as_bytes())?
            .map(|b| Self::decode(&format!("binding {key}"), &b))
            .transpose()
    }

    /// Drops expired dedupe records; returns how many.
    pub async fn sweep_dedupe(&self, now_ms: u64) -> Result<usize> {
        let mut removed = 0;
        for kv in self.dedupe.iter() {
            let (k, v) = kv?;
            let mut b = [0u8; 8];
            b.copy_from_slice(&v[..8.min(v.len())]);
            if u64::from_be_bytes(b) <= now_ms {
                self.dedupe.remove(k)?;
                removed += 1;
            }
        }
        self.flush().await?;
        Ok(removed)
    }

    /// Appends `event` by `actor` (a Slack user ID, `slipway` or `agent`) to the audit log
    /// at the current time, then flushes. Stored as an [`AuditRecord`] whose `action` and
    /// `detail` are the event's serde spelling.
    pub async fn audit_now(
        &self,
        task_id: Option<&str>,
        run_id: Option<&str>,
        actor: &str,
        event: AuditEvent,
    ) -> Result<()> {
        let (action, detail) = event.into_parts()?;
        let detail = redact::redact_json(&self.secrets, detail);
        self.append_audit(AuditRecord {
            at_ms: now_ms(),
            task_id: task_id.map(str::to_owned),
            run_id: run_id.map(str::to_owned),
            action,
            actor: actor.to_string(),
            detail,
        })
        .await
    }

    /// The audit log, oldest first; `task_id` filters to one task.
    pub fn audit_log(&self, task_id: Option<&str>) -> Result<Vec<AuditRecord>> {
        self.audit
            .iter()
            .map(|kv| {
                let (_, v) = kv?;
                Self::decode::<AuditRecord>("audit event", &v)
            })
            .filter(|e| match (e, task_id) {
                (Ok(e), Some(t)) => e.task_id.as_deref() == Some(t),
                _ => true,
            })
            .collect()
    }
}

/// The store scoped to one run: transcript and audit writes with secret values redacted.
#[derive(Clone)]
pub struct RunLog {
    pub store: Store,
    pub task_id: String,
    pub run_id: String,
    secrets: Vec<String>,
}

impl RunLog {
    pub fn new(store: Store, task_id: &str, run_id: &str, secrets: Vec<String>) -> Self {
        Self {
            store,
            task_id: task_id.to_string(),
            run_id: run_id.to_string(),
            secrets,
        }
    }

    fn redact(&self, v: serde_json::Value) -> serde_json::Value {
        redact::redact_json(&self.secrets, v)
    }

    /// Appends a transcript entry (`llm_request`, `llm_response`, `tool_call`).
    pub async fn transcript(
        &self,
        kind: &str,
        duration_ms: u64,
        body: serde_json::Value,
    ) -> Result<()> {
        let entry = TranscriptEntry {
            kind: kind.to_string(),
            at_ms: now_ms(),
            duration_ms,
            body: self.redact(body),
        };
        self.store.append_transcript(&self.run_id, &entry).await
    }

    /// Appends `event` by `actor` for this run, with secret values redacted from its
    /// serialised detail.
    pub async fn audit(&self, actor: &str, event: AuditEvent) -> Result<()> {
        let (action, detail) = event.into_parts()?;
        self.store
            .append_audit(AuditRecord {
                at_ms: now_ms(),
                task_id: Some(self.task_id.clone()),
                run_id: Some(self.run_id.clone()),
                action,
                actor: actor.to_string(),
                detail: self.redact(detail),
            })
            .await
    }
}

#[cfg(test)]
mod tests;
