//! The bot's intake: an acked Socket Mode envelope → dedupe → the thread's lock → the
//! handler for its normalised [`Ingress`].
//!
//! Dedupe: on the envelope's `event_id` and on the normalised key (`(channel, ts)` for
//! messages, so the `app_mention`/`message` pair of one mention counts once), both persisted
//! with a time-to-live. Mentions and replies of one thread run one at a time (a reply waits
//! for the mention that creates its task).
//!
//! Owns only that routing; must not word messages (`super::copy`), act on tasks
//! (`super::handlers`, `crate::actions`) or render queue events (`super::egress`).
#![warn(missing_docs)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::bindings::Bindings;
use super::egress::Egress;
use super::handlers::mention::{MentionEvent, MentionsSeen};
use super::handlers::{HandlerError, Handlers};
use super::ingress::{BotIdentity, Ingress, normalize};
use super::socket::Envelope;
use crate::store::{Store, StoreError};
use crate::task::Origin;
use crate::task::now_ms;

/// How often, and how far apart, a reaction on a message not bound yet is tried again.
const NOT_YET_TRIES: u32 = 15;
const NOT_YET_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// How one envelope's handling went.
enum Handled {
    Done,
    /// A reaction on a message that may become one of ours in a moment.
    NotYet,
}

/// Thread locks kept before unused ones are pruned.
const THREAD_LOCKS: usize = 10_000;

/// What the bot is built from, chosen at wiring time (`serve`).
pub struct BotParts {
    /// Dedupe records.
    pub store: Store,
    /// Who the bot is (from `auth.test`), so its own messages are ignored.
    pub me: BotIdentity,
    /// How long a seen event is remembered, milliseconds (`[queue] dedupe_ttl_s` × 1000).
    pub dedupe_ttl_ms: u64,
    /// One handler per ingress kind.
    pub handlers: Handlers,
    /// The thread voice, only to wait for the message in flight ([`Bot::quiesce`]).
    pub egress: Egress,
    /// The 👀 counter the mention handler bumps.
    pub mentions: MentionsSeen,
}

struct Inner {
    /// Dedupe records.
    store: Store,
    me: BotIdentity,
    dedupe_ttl_ms: u64,
    /// One handler at a time per thread (`channel/thread_ts`). A std mutex: held only to
    /// find the thread's own (tokio) lock, never across an `.await`.
    threads: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    handlers: Handlers,
    egress: Egress,
    seen: MentionsSeen,
}

/// The Slack bot. Cheap to clone.
#[derive(Clone)]
pub struct Bot {
    inner: Arc<Inner>,
}

impl Bot {
    /// The bot over `parts`.
    pub fn new(parts: BotParts) -> Self {
        let BotParts {
            store,
            me,
            dedupe_ttl_ms,
            handlers,
            egress,
            mentions: seen,
        } = parts;
        Self {
            inner: Arc::new(Inner {
                store,
                me,
                dedupe_ttl_ms,
                threads: Mutex::default(),
                handlers,
                egress,
                seen,
            }),
        }
    }

    /// Mentions acknowledged with 👀 since start.
    pub fn mentions_seen(&self) -> u64 {
        self.inner.seen.get()
    }

    /// Waits until every thread message written so far was sent, at most `limit`; true
    /// when none is left.
    pub async fn quiesce(&self, limit: std::time::Duration) -> bool {
        self.inner.egress.quiesce(limit).await
    }

    /// Holds the thread's lock for the duration of one handler.
    async fn lock_thread(&self, key: String) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.inner.threads.lock().unwrap_or_else(|p| p.into_inner());
            if map.len() > THREAD_LOCKS {
                map.retain(|_, l| Arc::strong_count(l) > 1);
            }
            map.entry(key).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// Handles one acked envelope, then removes it from the inbox. Never fails: problems
    /// are told in the thread or logged. A crash before the end leaves the inbox entry, and
    /// [`Bot::resume`] handles it again after the restart (handlers are idempotent per
    /// message: the task or revision a message created is recorded with it).
    pub async fn handle(&self, env: Envelope) {
        let mut tries = 0;
        loop {
            match self.try_handle(&env).await {
                Ok(Handled::Done) => break,
                // A reaction on a message whose post is still being recorded: wait for it.
                Ok(Handled::NotYet) if tries < NOT_YET_TRIES => {
                    tries += 1;
                    tokio::time::sleep(NOT_YET_WAIT).await;
                }
                Ok(Handled::NotYet) => {
                    tracing::info!(
                        envelope = env.envelope_id,
                        "a reaction on a message that never became a report; ignored"
                    );
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, envelope = env.envelope_id, "Slack event handling failed");
                    break;
                }
            }
        }
        if let Err(e) = self.inner.store.inbox_done(env.inbox_key).await {
            tracing::error!(error = %e, envelope = env.envelope_id, "could not clear the inbox entry; it is handled again (idempotently) after a restart");
        }
    }

    /// The envelopes acked before the last stop whose handling did not finish, oldest first:
    /// hand each to [`Bot::handle`] before taking new ones.
    pub fn resume(&self) -> Result<Vec<Envelope>, StoreError> {
        Ok(self
            .inner
            .store
            .inbox()?
            .into_iter()
            .map(|(inbox_key, e)| Envelope {
                inbox_key,
                envelope_id: e.envelope_id,
                retry_attempt: e.retry_attempt,
                retry_reason: e.retry_reason,
                payload: e.payload,
                received: std::time::Instant::now(),
            })
            .collect())
    }

    /// The thread lock a reaction needs: the thread of the task its message belongs to
    /// (so ✅, ❌, 🔁 and ⏪ are serialised with that thread's replies and mentions).
    fn reaction_thread(
        &self,
        channel: &str,
        item_ts: &str,
    ) -> Result<Option<String>, HandlerError> {
        let bindings = Bindings::new(self.inner.store.clone());
        let Some(msg) = bindings.message(channel, item_ts)? else {
            return Ok(None);
        };
        Ok(self
            .inner
            .store
            .get_task(&msg.task_id)?
            .map(|t| match t.origin {
                Origin::Slack { channel, thread_ts } => format!("{channel}/{thread_ts}"),
                Origin::Cli => format!("{channel}/{item_ts}"),
            }))
    }

    async fn try_handle(&self, env: &Envelope) -> Result<Handled, HandlerError> {
        let p = &env.payload;
        tracing::debug!(
            envelope = env.envelope_id,
            retry_attempt = env.retry_attempt,
            "Slack envelope"
        );
        if p.get("type").and_then(Value::as_str) != Some("event_callback") {
            tracing::debug!("envelope without an event callback ignored");
            return Ok(Handled::Done);
        }
        let (store, ttl) = (&self.inner.store, self.inner.dedupe_ttl_ms);
        let now = now_ms();
        let owner = Some(env.inbox_key);
        if let Some(event_id) = p.get("event_id").and_then(Value::as_str)
            && !store
                .first_sighting_by(&format!("event/{event_id}"), ttl, now, owner)
                .await?
        {
            tracing::info!(
                event_id,
                retry_attempt = env.retry_attempt,
                retry_reason = env.retry_reason,
                "duplicate Slack event ignored"
            );
            return Ok(Handled::Done);
        }
        let event = p.get("event").cloned().unwrap_or(Value::Null);
        let ingress = normalize(&event, &self.inner.me);
        let Some(key) = ingress.dedupe_key() else {
            if let Ingress::Ignore(why) = &ingress {
                tracing::debug!(reason = why, "Slack event ignored");
            }
            return Ok(Handled::Done);
        };
        if !store.first_sighting_by(&key, ttl, now, owner).await? {
            tracing::debug!(key, "Slack message already handled");
            return Ok(Handled::Done);
        }
        let _thread = match &ingress {
            Ingress::Mention {
                channel, thread_ts, ..
            }
            | Ingress::ThreadReply {
                channel, thread_ts, ..
            } => Some(self.lock_thread(format!("{channel}/{thread_ts}")).await),
            Ingress::Reaction {
                channel, item_ts, ..
            } => match self.reaction_thread(channel, item_ts)? {
                Some(thread) => Some(self.lock_thread(thread).await),
                // Maybe one of ours whose post is not recorded yet (the outbox records it
                // right after Slack answers): try again shortly.
                None if self.inner.egress.outbox().has_pending_post(channel) => {
                    return Ok(Handled::NotYet);
                }
                None => None,
            },
            Ingress::Ignore(_) => None,
        };
        // A message whose task or revision is stored was handled (before a crash, say).
        if let Ingress::Mention { channel, ts, .. } | Ingress::ThreadReply { channel, ts, .. } =
            &ingress
            && let Some(task_id) = store.created_by(&format!("{channel}/{ts}"))?
        {
            tracing::info!(task_id, ts, "Slack message handled before; not again");
            return Ok(Handled::Done);
        }
        let handled = match ingress {
            Ingress::Mention {
                channel,
                ts,
                thread_ts,
                user,
                text,
                ..
            } => {
                let m = MentionEvent {
                    channel: &channel,
                    ts: &ts,
                    thread_ts: &thread_ts,
                    user: &user,
                    text: &text,
                    received: env.received,
                };
                self.inner.handlers.mention.run(m).await
            }
            Ingress::ThreadReply {
                channel,
                ts,
                thread_ts,
                user,
                ..
            } => {
                self.inner
                    .handlers
                    .reply
                    .run(&channel, &ts, &thread_ts, &user)
                    .await
            }
            Ingress::Reaction {
                channel,
                item_ts,
                user,
                reaction,
                ..
            } => {
                self.inner
                    .handlers
                    .reaction
                    .run(&channel, &item_ts, &user, &reaction)
                    .await
            }
            Ingress::Ignore(_) => Ok(()),
        };
        handled.map(|()| Handled::Done)
    }
}
