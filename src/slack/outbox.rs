//! Every thread write goes through the persisted outbox (`crate::store`'s outbox): egress
//! writes the message first, then one drain task ([`Outbox::run`]) sends it, in order,
//! until Slack took it. So a lagging event stream, a 429 storm or a restart loses nothing.
//!
//! Nothing is sent twice: each message has an idempotency key, remembered with the `ts`
//! Slack answered in the same store transaction that removes it from the outbox. A message
//! that may have reached Slack without that record (a crash right after the post, a
//! transport error after the request left) is looked for in the thread
//! (`conversations.replies`, the bot's message with the same text) before it is posted
//! again. Edits name the post they edit by its key, so an edit written before its post was
//! sent still finds it; of several edits of one message waiting, only the newest is sent.
//!
//! Slack facts (`shared/fixtures/slack/`): HTTP 429 carries `Retry-After` in seconds;
//! `channel_not_found`, `not_in_channel`, `is_archived`, `message_not_found` and the like
//! do not heal by retrying.
#![warn(missing_docs)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::api::{SlackError, WebApi};
use super::bindings::{Bindings, ReportMessage};
use crate::report::Decision;
use crate::store::{AuditEvent, Store, StoreError};
use crate::task::now_ms;

/// Attempts before a message that keeps failing for other reasons is given up (logged).
const MAX_ATTEMPTS: u32 = 8;
/// Longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Slack error codes that retrying cannot fix.
const PERMANENT: &[&str] = &[
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "msg_too_long",
    "no_text",
    "thread_not_found",
    "message_not_found",
    "cant_update_message",
    "edit_window_closed",
    "restricted_action",
    "invalid_auth",
    "account_inactive",
    "token_revoked",
    "missing_scope",
];

/// One message waiting in the outbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outgoing {
    /// Idempotency key: `report/<run id>`, `status/<task>/<revision>/<uuid>`, `say/<uuid>`.
    pub key: String,
    /// Channel ID.
    pub channel: String,
    /// The thread it belongs to.
    pub thread_ts: String,
    /// What to send.
    pub message: Message,
    /// When it was written, unix ms.
    pub created_ms: u64,
}

/// A post or an edit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Message {
    /// `chat.postMessage` in the thread; `blocks` (Block Kit) falls back to `text` alone if
    /// Slack refuses it. `then` is recorded once it is posted.
    Post {
        /// Notification and fallback text (redacted already).
        text: String,
        /// Block Kit layout (redacted already).
        blocks: Option<Value>,
        /// What the posted message becomes.
        then: AfterPost,
    },
    /// `reactions.add` on a message (👀 on a mention): `already_reacted` counts as done.
    React {
        /// The message's `ts`.
        ts: String,
        /// The reaction's name, without colons.
        name: String,
    },
    /// `chat.update` of an earlier message.
    Edit {
        /// The message edited.
        of: Target,
        /// Its new text (redacted already).
        text: String,
    },
}

/// The message an edit edits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "by", content = "value", rename_all = "snake_case")]
pub enum Target {
    /// A post sent through the outbox, by its key.
    Key(String),
    /// A message by its `ts` (status messages recorded before the outbox).
    Ts(String),
}

/// What a post becomes once Slack took it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AfterPost {
    /// Nothing to record.
    Nothing,
    /// A reaction target (a status or failure message: ❌ and 🔁).
    Bind(ReportMessage),
    /// A final report: a reaction target (✅ on it merges), audited `slack_report`.
    Report {
        /// Its binding.
        message: ReportMessage,
        /// The run's decision, for the audit entry.
        decision: Decision,
    },
}

/// How one attempt went.
enum Attempt {
    Sent(String),
    /// Try again after `wait`. `uncertain`: it may have reached Slack (look before sending
    /// again). `counts`: a failure towards [`MAX_ATTEMPTS`] (rate limits and transport
    /// errors are waited out instead).
    Retry {
        wait: Duration,
        uncertain: bool,
        counts: bool,
    },
    Drop(String),
}

struct Inner {
    api: WebApi,
    store: Store,
    bindings: Bindings,
    wake: Notify,
    /// Notified whenever the drain finds the outbox empty.
    idle: Notify,
}

/// The outbox's writer and drain. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

impl Outbox {
    /// The outbox of `store`, sent through `api`.
    pub fn new(api: WebApi, store: Store) -> Self {
        Self {
            inner: Arc::new(Inner {
                api,
                bindings: Bindings::new(store.clone()),
                store,
                wake: Notify::new(),
                idle: Notify::new(),
            }),
        }
    }

    /// Writes a post (flushed) and wakes the drain. `key` must be unique per message.
    pub async fn post(
        &self,
        channel: &str,
        thread_ts: &str,
        key: String,
        text: String,
        blocks: Option<Value>,
        then: AfterPost,
    ) -> Result<(), StoreError> {
        self.push(Outgoing {
            key,
            channel: channel.into(),
            thread_ts: thread_ts.into(),
            message: Message::Post { text, blocks, then },
            created_ms: now_ms(),
        })
        .await
    }

    /// Writes a reaction `name` on message `ts` (flushed) and wakes the drain; it is sent
    /// before anything written later in the same thread.
    pub async fn react(
        &self,
        channel: &str,
        thread_ts: &str,
        ts: &str,
        name: &str,
    ) -> Result<(), StoreError> {
        self.push(Outgoing {
            key: format!("react/{channel}/{ts}/{name}"),
            channel: channel.into(),
            thread_ts: thread_ts.into(),
            message: Message::React {
                ts: ts.into(),
                name: name.into(),
            },
            created_ms: now_ms(),
        })
        .await
    }

    /// Writes an edit of `of` (flushed) and wakes the drain.
    pub async fn edit(
        &self,
        channel: &str,
        thread_ts: &str,
        of: Target,
        text: String,
    ) -> Result<(), StoreError> {
        self.push(Outgoing {
            key: format!("edit/{}", uuid::Uuid::new_v4()),
            channel: channel.into(),
            thread_ts: thread_ts.into(),
            message: Message::Edit { of, text },
            created_ms: now_ms(),
        })
        .await
    }

    async fn push(&self, e: Outgoing) -> Result<(), StoreError> {
        self.inner.store.outbox_push(&e).await?;
        self.inner.wake.notify_one();
        Ok(())
    }

    /// The keys of the messages still waiting.
    pub fn pending_keys(&self) -> Result<HashSet<String>, StoreError> {
        Ok(self
            .inner
            .store
            .outbox::<Outgoing>()?
            .into_iter()
            .map(|(_, e)| e.key)
            .collect())
    }

    /// Whether a post to `channel` waits in the outbox (a reaction on a message not bound
    /// yet may be on it).
    pub fn has_pending_post(&self, channel: &str) -> bool {
        self.inner
            .store
            .outbox::<Outgoing>()
            .map(|o| {
                o.iter()
                    .any(|(_, e)| e.channel == channel && matches!(e.message, Message::Post { .. }))
            })
            .unwrap_or(false)
    }

    /// Waits until the outbox is empty, at most `limit`; true when it is.
    pub async fn flushed(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let idle = self.inner.idle.notified();
            if self
                .inner
                .store
                .outbox::<Outgoing>()
                .map(|o| o.is_empty())
                .unwrap_or(true)
            {
                return true;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return false;
            }
        }
    }

    /// Sends what the outbox holds, oldest first, until `stop` fires. Messages already in
    /// the outbox when it starts may have been sent by the previous process: they are looked
    /// for in their thread first.
    pub async fn run(&self, stop: CancellationToken) {
        let mut uncertain: HashSet<u64> = match self.inner.store.outbox::<Outgoing>() {
            Ok(o) => o.into_iter().map(|(id, _)| id).collect(),
            Err(_) => HashSet::new(),
        };
        let mut failures: HashMap<u64, u32> = HashMap::new();
        // Threads waiting out a failure, and until when. Order is kept per thread: a thread
        // whose message failed sends nothing else until that one went out, while other
        // threads go on.
        let mut blocked: HashMap<(String, String), (tokio::time::Instant, Duration)> =
            HashMap::new();
        loop {
            let entries = match self.inner.store.outbox::<Outgoing>() {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the outbox");
                    Vec::new()
                }
            };
            if entries.is_empty() {
                self.inner.idle.notify_waiters();
            }
            let now = tokio::time::Instant::now();
            blocked.retain(|_, (until, _)| *until > now);
            let mut held: HashSet<(String, String)> = blocked.keys().cloned().collect();
            for (i, (id, e)) in entries.iter().enumerate() {
                if stop.is_cancelled() {
                    return;
                }
                let thread = (e.channel.clone(), e.thread_ts.clone());
                if held.contains(&thread) {
                    continue;
                }
                // Of several edits of one message, only the newest is worth sending.
                if let Message::Edit { of, .. } = &e.message
                    && entries[i + 1..].iter().any(
                        |(_, later)| matches!(&later.message, Message::Edit { of: o, .. } if o == of),
                    )
                {
                    let _ = self.inner.store.outbox_drop(*id).await;
                    continue;
                }
                match self.attempt(e, uncertain.contains(id)).await {
                    Attempt::Sent(ts) => {
                        match self.record(*id, e, &ts).await {
                            Ok(()) => {
                                uncertain.remove(id);
                                failures.remove(id);
                                blocked.remove(&thread);
                            }
                            Err(err) => {
                                // Sent but not recorded: look before sending it again.
                                tracing::error!(error = %err, key = e.key, "sent, but could not record it");
                                uncertain.insert(*id);
                                held.insert(thread);
                            }
                        }
                    }
                    Attempt::Drop(why) => {
                        tracing::error!(
                            key = e.key,
                            channel = e.channel,
                            reason = why,
                            "a thread message cannot be sent; dropped"
                        );
                        let _ = self.inner.store.outbox_drop(*id).await;
                    }
                    Attempt::Retry {
                        wait,
                        uncertain: maybe_sent,
                        counts,
                    } => {
                        if counts {
                            let n = failures.entry(*id).or_default();
                            *n += 1;
                            if *n >= MAX_ATTEMPTS {
                                tracing::error!(
                                    key = e.key,
                                    channel = e.channel,
                                    attempts = *n,
                                    "a thread message keeps failing; dropped"
                                );
                                let _ = self.inner.store.outbox_drop(*id).await;
                                continue;
                            }
                        }
                        if maybe_sent {
                            uncertain.insert(*id);
                        }
                        let backoff = blocked
                            .get(&thread)
                            .map(|(_, b)| (*b * 2).min(MAX_BACKOFF))
                            .unwrap_or(Duration::from_millis(500));
                        let wait = wait.max(backoff);
                        blocked.insert(
                            thread.clone(),
                            (tokio::time::Instant::now() + wait, backoff),
                        );
                        held.insert(thread);
                    }
                }
            }
            // Sleep until something is new or a blocked thread may go again.
            let next = blocked.values().map(|(until, _)| *until).min();
            let wake = self.inner.wake.notified();
            let pause = match next {
                Some(until) => until.saturating_duration_since(tokio::time::Instant::now()),
                None if entries.is_empty() => Duration::from_secs(5),
                None => continue,
            };
            tokio::select! {
                _ = wake => {}
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One try at sending `e`.
    async fn attempt(&self, e: &Outgoing, uncertain: bool) -> Attempt {
        let store = &self.inner.store;
        if let Ok(Some(ts)) = store.sent(&e.key) {
            return Attempt::Sent(ts);
        }
        match &e.message {
            Message::Post { text, blocks, .. } => {
                if uncertain {
                    match self.find_posted(e, text).await {
                        Ok(Some(ts)) => return Attempt::Sent(ts),
                        Ok(None) => {}
                        // Cannot tell whether it is there: do not risk a second copy.
                        Err(err) => {
                            tracing::warn!(error = %err, key = e.key, "cannot read the thread to check a message; waiting");
                            return Attempt::Retry {
                                wait: Duration::from_secs(2),
                                uncertain: true,
                                counts: false,
                            };
                        }
                    }
                }
                let api = &self.inner.api;
                let r = match api
                    .post(&e.channel, &e.thread_ts, text, blocks.as_ref())
                    .await
                {
                    // Slack refused the layout: the report must still reach the thread.
                    Err(SlackError::Api { code, .. })
                        if blocks.is_some() && !PERMANENT.contains(&code.as_str()) =>
                    {
                        tracing::warn!(code, "Block Kit post refused; posting plain text");
                        api.post(&e.channel, &e.thread_ts, text, None).await
                    }
                    r => r,
                };
                self.judge(r)
            }
            Message::React { ts, name } => {
                let r = self
                    .inner
                    .api
                    .react(&e.channel, ts, name)
                    .await
                    .map(|()| ts.clone());
                self.judge(r)
            }
            Message::Edit { of, text } => {
                let ts = match of {
                    Target::Ts(ts) => ts.clone(),
                    Target::Key(k) => match store.sent(k) {
                        Ok(Some(ts)) => ts,
                        _ => {
                            return Attempt::Drop(format!(
                                "the message it edits ({k}) was never posted"
                            ));
                        }
                    },
                };
                let r = self
                    .inner
                    .api
                    .update(&e.channel, &ts, text, None)
                    .await
                    .map(|()| ts);
                self.judge(r)
            }
        }
    }

    fn judge(&self, r: Result<String, SlackError>) -> Attempt {
        match r {
            Ok(ts) => Attempt::Sent(ts),
            // Rate limits are waited out however long they last; Slack did not post.
            Err(SlackError::RateLimited { retry_after_s, .. }) => Attempt::Retry {
                wait: Duration::from_secs(retry_after_s.unwrap_or(1)),
                uncertain: false,
                counts: false,
            },
            // The request may have reached Slack: look before sending again.
            Err(SlackError::Transport { message, .. }) => {
                tracing::warn!(error = message, "Slack unreachable; the message waits");
                Attempt::Retry {
                    wait: Duration::from_secs(1),
                    uncertain: true,
                    counts: false,
                }
            }
            Err(SlackError::Api { code, .. }) if PERMANENT.contains(&code.as_str()) => {
                Attempt::Drop(code)
            }
            // `ok: false`: Slack answered and did not post. Retried a few times, then
            // dropped (a code slipway does not know may never heal).
            Err(e) => {
                tracing::warn!(error = %e, "Slack refused a thread message; retrying");
                Attempt::Retry {
                    wait: Duration::from_secs(1),
                    uncertain: false,
                    counts: true,
                }
            }
        }
    }

    /// The `ts` of the bot's message in `e`'s thread with exactly `text`, posted no earlier
    /// than `e` was written: a post that reached Slack before slipway could record it.
    async fn find_posted(&self, e: &Outgoing, text: &str) -> Result<Option<String>, SlackError> {
        let replies = self.inner.api.replies(&e.channel, &e.thread_ts).await?;
        let after = e.created_ms as f64 / 1000.0 - 1.0;
        // Slack stores `&`, `<` and `>` escaped (its "formatting" rules).
        let escaped = text
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        // The newest such message that is no other entry's: two reports of one task can
        // share their text, and the older one is the other run's.
        let store = &self.inner.store;
        Ok(replies
            .into_iter()
            .rev()
            .filter(|m| m.from_bot && (m.text == text || m.text == escaped))
            .filter(|m| m.ts.parse::<f64>().is_ok_and(|t| t >= after))
            .find(|m| {
                store
                    .sent_as(&e.channel, &m.ts)
                    .ok()
                    .flatten()
                    .is_none_or(|k| k == e.key)
            })
            .map(|m| m.ts))
    }

    /// Records a sent message: its binding and audit entry (idempotent writes), then the key
    /// and the outbox entry's removal in one transaction.
    async fn record(&self, id: u64, e: &Outgoing, ts: &str) -> Result<(), StoreError> {
        if let Message::Post { then, .. } = &e.message {
            match then {
                AfterPost::Nothing => {}
                AfterPost::Bind(m) => self.inner.bindings.bind_message(&e.channel, ts, m).await?,
                AfterPost::Report { message, decision } => {
                    self.inner
                        .bindings
                        .bind_message(&e.channel, ts, message)
                        .await?;
                    self.inner
                        .store
                        .audit_now(
                            Some(&message.task_id),
                            None,
                            "slipway",
                            AuditEvent::SlackReport {
                                ts: ts.to_string(),
                                decision: *decision,
                            },
                        )
                        .await?;
                }
            }
        }
        // Only posts are named later (by edits, by `said`): an edit's key is not kept.
        let key = matches!(e.message, Message::Post { .. }).then_some(e.key.as_str());
        self.inner.store.outbox_sent(id, key, &e.channel, ts).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_keep_their_wire_shape() {
        let e = Outgoing {
            key: "report/r1".into(),
            channel: "C1".into(),
            thread_ts: "1.0".into(),
            message: Message::Edit {
                of: Target::Key("status/t/1/u".into()),
                text: "done".into(),
            },
            created_ms: 5,
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["message"]["kind"], "edit");
        assert_eq!(v["message"]["of"]["by"], "key");
        let back: Outgoing = serde_json::from_value(v).unwrap();
        assert!(
            matches!(back.message, Message::Edit { of: Target::Key(k), .. } if k == "status/t/1/u")
        );
    }
}
