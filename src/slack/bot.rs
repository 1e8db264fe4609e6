//! The bot: Slack events in, queue work and thread messages out.
//!
//! Ingress ([`Bot::handle`]): an acked envelope is deduplicated on its `event_id` and on its
//! normalised key (`(channel, ts)` for messages, so the `app_mention`/`message` pair of one
//! mention counts once), both persisted with a time-to-live. Then:
//! - a mention runs a command (`help`, `status`, `cancel`) or starts a task (👀 at once, the
//!   repo from the text or the channel, the whole thread read as context);
//! - a reply in a task's thread from the requester or an approver becomes revision n+1;
//! - a reaction on a report message merges (✅), cancels or closes (❌) or reruns (🔁).
//!
//! Egress ([`Bot::follow`]): one status message per run, edited in place as nodes finish;
//! the final report as Block Kit with a plain-text fallback; every failure said in the
//! thread. Every action is written to the audit log.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::api::{SlackError, WebApi};
use super::approval::{Approval, authorize};
use super::ingress::{BotIdentity, Ingress, normalize};
use super::socket::Envelope;
use super::thread::{
    Command, RepoChoice, ThreadMessage, choose_repo, parse_command, revision_from_thread,
    strip_mentions,
};
use crate::config::Config;
use crate::forge::{ForgeError, MergeRequest};
use crate::gates::render;
use crate::queue::{Queue, QueueEvent};
use crate::report::{Decision, RunReport};
use crate::repos::ForgeKind;
use crate::repos::RepoConfig;
use crate::run::RunEvent;
use crate::store::{RunState, Store, StoreError};
use crate::task::{Origin, RepoRef, Revision, Task, TaskState, now_ms, short_sha, truncate_chars};

/// Reaction names (Slack sends them without colons).
pub const APPROVE: &str = "white_check_mark";
pub const CANCEL: &str = "x";
pub const RERUN: &str = "repeat";
pub const REVERT: &str = "rewind";
/// The bot's acknowledgement on a mention.
pub const SEEN: &str = "eyes";

/// What the bot keeps per Slack-started task (store binding `slack/task/<id>`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SlackThread {
    pub task_id: String,
    pub channel: String,
    pub thread_ts: String,
    /// The status message of the current (or last) run.
    pub status: Option<StatusMessage>,
    /// A status message posted for a queued revision; the run that starts next takes it.
    #[serde(default)]
    pub pending: Option<StatusMessage>,
}

/// One run's status message, edited in place.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StatusMessage {
    pub ts: String,
    pub revision: u32,
    pub run_id: Option<String>,
    /// One line per finished node.
    pub lines: Vec<String>,
    pub started_ms: u64,
    /// The run reached its end (report or failure posted).
    pub done: bool,
}

/// A report (or failure) message, for reactions (binding `slack/msg/<channel>/<ts>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportMessage {
    pub task_id: String,
    pub run_id: Option<String>,
    /// The tested commit the report is about.
    pub commit: Option<String>,
    pub decision: Option<Decision>,
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

/// Failures inside the bot. Each handler reports its own in the thread; these reach logs.
#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error(transparent)]
    Slack(#[from] SlackError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct Inner {
    forges: crate::forge::Forges,
    cfg: Arc<Config>,
    api: WebApi,
    queue: Queue,
    store: Store,
    me: BotIdentity,
    /// Mentions acknowledged with 👀.
    seen: std::sync::atomic::AtomicU64,
    /// Serialises egress per process, so status edits keep their order; binding writes take
    /// it too.
    egress: tokio::sync::Mutex<()>,
    /// One handler at a time per thread (`channel/thread_ts`): a reply waits for the mention
    /// that creates its task.
    threads: Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// One merge at a time: two ✅ at once merge once.
    merging: tokio::sync::Mutex<()>,
}

/// Thread locks kept before unused ones are pruned.
const THREAD_LOCKS: usize = 10_000;

/// The Slack bot. Cheap to clone.
#[derive(Clone)]
pub struct Bot {
    inner: Arc<Inner>,
}

const HELP: &str = "I turn a thread into a reviewed change.\n\
• `@slipway in owner/name: <what to change>` starts a task (in a channel with a default repo, the repo can be left out).\n\
• Reply in the task's thread to refine it: a new commit on the same branch.\n\
• On my report: ✅ merges (approvers only), ❌ cancels a run or closes the change, 🔁 runs it again.\n\
• `@slipway status` shows the queue; `@slipway cancel` in a task's thread stops its run.";

impl Bot {
    /// A bot for identity `me` (from `auth.test`).
    pub fn new(
        cfg: Arc<Config>,
        api: WebApi,
        queue: Queue,
        me: BotIdentity,
        store: Store,
        forges: crate::forge::Forges,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                forges,
                cfg,
                api,
                queue,
                store,
                me,
                seen: Default::default(),
                egress: tokio::sync::Mutex::new(()),
                threads: Mutex::default(),
                merging: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Mentions acknowledged with 👀 since start.
    pub fn mentions_seen(&self) -> u64 {
        self.inner.seen.load(std::sync::atomic::Ordering::Relaxed)
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

    /// Waits for the egress message in flight, if any.
    pub async fn quiesce(&self) {
        drop(self.inner.egress.lock().await);
    }

    fn ttl_ms(&self) -> u64 {
        self.inner.cfg.file.queue.dedupe_ttl_s * 1000
    }

    /// Handles one acked envelope. Never fails: problems are told in the thread or logged.
    pub async fn handle(&self, env: Envelope) {
        if let Err(e) = self.try_handle(&env).await {
            tracing::error!(error = %e, envelope = env.envelope_id, "Slack event handling failed");
        }
    }

    async fn try_handle(&self, env: &Envelope) -> Result<(), BotError> {
        let p = &env.payload;
        tracing::debug!(
            envelope = env.envelope_id,
            retry_attempt = env.retry_attempt,
            "Slack envelope"
        );
        if p.get("type").and_then(Value::as_str) != Some("event_callback") {
            tracing::debug!("envelope without an event callback ignored");
            return Ok(());
        }
        let store = &self.inner.store;
        let now = now_ms();
        if let Some(event_id) = p.get("event_id").and_then(Value::as_str)
            && !store
                .first_sighting(&format!("event/{event_id}"), self.ttl_ms(), now)
                .await?
        {
            tracing::info!(
                event_id,
                retry_attempt = env.retry_attempt,
                retry_reason = env.retry_reason,
                "duplicate Slack event ignored"
            );
            return Ok(());
        }
        let event = p.get("event").cloned().unwrap_or(Value::Null);
        let ingress = normalize(&event, &self.inner.me);
        let Some(key) = ingress.dedupe_key() else {
            if let Ingress::Ignore(why) = &ingress {
                tracing::debug!(reason = why, "Slack event ignored");
            }
            return Ok(());
        };
        if !store.first_sighting(&key, self.ttl_ms(), now).await? {
            tracing::debug!(key, "Slack message already handled");
            return Ok(());
        }
        let _thread = match &ingress {
            Ingress::Mention {
                channel, thread_ts, ..
            }
            | Ingress::ThreadReply {
                channel, thread_ts, ..
            } => Some(self.lock_thread(format!("{channel}/{thread_ts}")).await),
            _ => None,
        };
        match ingress {
            Ingress::Mention {
                channel,
                ts,
                thread_ts,
                user,
                text,
                ..
            } => {
                self.on_mention(&channel, &ts, &thread_ts, &user, &text, env.received)
                    .await
            }
            Ingress::ThreadReply {
                channel,
                ts,
                thread_ts,
                user,
                ..
            } => self.on_reply(&channel, &ts, &thread_ts, &user).await,
            Ingress::Reaction {
                channel,
                item_ts,
                user,
                reaction,
                ..
            } => self.on_reaction(&channel, &item_ts, &user, &reaction).await,
            Ingress::Ignore(_) => Ok(()),
        }
    }

    /// Posts in a thread; a failure is logged (there is nowhere else to say it).
    async fn say(&self, channel: &str, thread_ts: &str, text: &str) -> Option<String> {
        // Errors quoted into the thread must not carry a secret (a token in a URL, say).
        let text = self.inner.cfg.redact(text);
        match self.inner.api.post(channel, thread_ts, &text, None).await {
            Ok(ts) => Some(ts),
            Err(e) => {
                tracing::error!(error = %e, advice = e.advice(), channel, "could not post in the thread");
                None
            }
        }
    }

    async fn audit(&self, task_id: Option<&str>, action: &str, actor: &str, detail: Value) {
        if let Err(e) = self
            .inner
            .store
            .audit_now(task_id, None, action, actor, detail)
            .await
        {
            tracing::error!(error = %e, action, "could not write the audit log");
        }
    }

    fn task_for_thread(&self, channel: &str, thread_ts: &str) -> Result<Option<Task>, BotError> {
        let id: Option<String> = self.inner.store.binding(&thread_key(channel, thread_ts))?;
        Ok(match id {
            Some(id) => self.inner.store.get_task(&id)?,
            None => None,
        })
    }

    fn is_trusted(&self, user: &str, task: &Task) -> bool {
        user == task.requester
            || self
                .inner
                .cfg
                .file
                .slack
                .approvers
                .iter()
                .any(|a| a == user)
    }

    async fn on_mention(
        &self,
        channel: &str,
        ts: &str,
        thread_ts: &str,
        user: &str,
        text: &str,
        received: Instant,
    ) -> Result<(), BotError> {
        match self.inner.api.react(channel, ts, SEEN).await {
            Ok(()) => {
                self.inner
                    .seen
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(
                    ms = received.elapsed().as_millis() as u64,
                    "mention acknowledged with 👀"
                );
            }
            Err(e) => tracing::warn!(error = %e, advice = e.advice(), "could not add 👀"),
        }
        let existing = self.task_for_thread(channel, thread_ts)?;
        match parse_command(text) {
            Command::Help => {
                self.say(channel, thread_ts, HELP).await;
            }
            Command::Status => {
                let text = self.status_text()?;
                self.say(channel, thread_ts, &text).await;
            }
            Command::Cancel => match existing {
                Some(task) => self.cancel(channel, thread_ts, &task, user).await?,
                None => {
                    self.say(
                        channel,
                        thread_ts,
                        "There is no task in this thread to cancel. Say `@slipway cancel` in the task's own thread.",
                    )
                    .await;
                }
            },
            Command::Empty => {
                self.say(
                    channel,
                    thread_ts,
                    "Tell me what to change, e.g. `@slipway in acme/api: make the retry limit configurable`. Say `@slipway help` for more.",
                )
                .await;
            }
            Command::Task(_) => match existing {
                Some(task) => {
                    if self.is_trusted(user, &task) {
                        self.refine(channel, ts, thread_ts, &task).await?;
                    } else {
                        self.say(
                            channel,
                            thread_ts,
                            &format!("Only the requester (<@{}>) or an approver can change this task; your message is passed on as context.", task.requester),
                        )
                        .await;
                    }
                }
                None => self.start(channel, ts, thread_ts, user, text).await?,
            },
        }
        Ok(())
    }

    fn status_text(&self) -> Result<String, BotError> {
        let s = self.inner.queue.status()?;
        let describe = |ids: &[String]| -> Result<String, BotError> {
            let mut out = Vec::new();
            for id in ids {
                if let Some(t) = self.inner.store.get_task(id)? {
                    out.push(format!(
                        "• `{}` {} ({}, rev {})",
                        t.id,
                        truncate_chars(&t.title(), 60),
                        t.repo.name,
                        t.current().number
                    ));
                }
            }
            Ok(if out.is_empty() {
                "• none".into()
            } else {
                out.join("\n")
            })
        };
        Ok(format!(
            "*Running* ({} of at most {})\n{}\n*Queued* ({})\n{}",
            s.running.len(),
            self.inner.cfg.file.queue.concurrency,
            describe(&s.running)?,
            s.queued.len(),
            describe(&s.queued)?
        ))
    }

    /// Reads the thread; on failure the trigger's own text stands in and the reason is kept.
    async fn read_thread(
        &self,
        channel: &str,
        thread_ts: &str,
        trigger_ts: &str,
        trigger_text: Option<&str>,
        user: &str,
    ) -> (Vec<ThreadMessage>, Option<SlackError>) {
        let trigger = trigger_text.map(|t| ThreadMessage {
            user: user.into(),
            text: t.into(),
            ts: trigger_ts.into(),
            files: vec![],
            from_bot: false,
        });
        match self.inner.api.replies(channel, thread_ts).await {
            Ok(m) if m.iter().any(|x| x.ts == trigger_ts) => (m, None),
            Ok(mut m) => {
                // A reply can race the thread's index; keep it.
                m.extend(trigger);
                (m, None)
            }
            Err(e) => {
                tracing::warn!(error = %e, advice = e.advice(), "could not read the thread");
                (trigger.into_iter().collect(), Some(e))
            }
        }
    }

    async fn start(
        &self,
        channel: &str,
        ts: &str,
        thread_ts: &str,
        user: &str,
        text: &str,
    ) -> Result<(), BotError> {
        let repos = &self.inner.cfg.file.repos;
        let known = || {
            if repos.is_empty() {
                "none yet: an operator adds `[[repos]]` to slipway.toml".to_string()
            } else {
                repos
                    .iter()
                    .map(|r| format!("`{}`", r.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let repo = match choose_repo(text, channel, repos) {
            RepoChoice::Named(r) | RepoChoice::ChannelDefault(r) => r,
            RepoChoice::Unknown(name) => {
                self.say(
                    channel,
                    thread_ts,
                    &format!("I don't know the repo `{name}`. I know: {}. Mention me again with one of those.", known()),
                )
                .await;
                return Ok(());
            }
            RepoChoice::Missing => {
                self.say(
                    channel,
                    thread_ts,
                    &format!("Which repo? This channel has no default. Mention me again with `in owner/name: …`; I know: {}.", known()),
                )
                .await;
                return Ok(());
            }
        };
        if instruction_without_repo(text, &repo.name).is_empty() {
            self.say(
                channel,
                thread_ts,
                &format!(
                    "What should I change in `{}`? Mention me again with the change, e.g. `@slipway in {}: fix the flaky test`.",
                    repo.name, repo.name
                ),
            )
            .await;
            return Ok(());
        }
        let source = match repo_source(&repo) {
            Ok(_) if repo.forge == ForgeKind::Github && self.inner.forges.github.is_none() => {
                let msg = format!(
                    "`{}` uses forge = \"github\", but slipway has no GitHub credentials. An operator sets GITHUB_TOKEN (or GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY) and restarts slipway; then mention me again.",
                    repo.name
                );
                self.say(channel, thread_ts, &msg).await;
                return Ok(());
            }
            Ok(s) => s,
            Err(msg) => {
                self.say(channel, thread_ts, &msg).await;
                return Ok(());
            }
        };
        let (messages, read_error) = self
            .read_thread(channel, thread_ts, ts, Some(text), user)
            .await;
        let approvers = &self.inner.cfg.file.slack.approvers;
        let Some(revision) = revision_from_thread(&messages, ts, user, approvers) else {
            self.say(
                channel,
                thread_ts,
                "I could not find your message in the thread; mention me again.",
            )
            .await;
            return Ok(());
        };
        let repo_ref = RepoRef {
            name: repo.name.clone(),
            source,
            base: repo.base.clone(),
            forge: repo.forge,
        };
        let origin = Origin::Slack {
            channel: channel.into(),
            thread_ts: thread_ts.into(),
        };
        let instructions = strip_repo_prefix(&revision.instructions, &repo.name);
        let mut task = Task::new(repo_ref, user, origin, &instructions);
        // For the PR body and the merge comment; a task without it only lacks the link.
        task.thread_url = match self.inner.api.permalink(channel, thread_ts).await {
            Ok(u) => Some(u),
            Err(e) => {
                tracing::warn!(error = %e, "no permalink for the thread");
                None
            }
        };
        task.revisions[0] = Revision {
            number: 1,
            instructions,
            ..revision
        };
        // Bind before queueing, so the run's first event finds its thread.
        self.inner
            .store
            .put_binding(&thread_key(channel, thread_ts), &task.id)
            .await?;
        let note = read_error
            .map(|e| {
                format!(
                    "\n_(I could not read the rest of the thread: {e}; {})_",
                    e.advice()
                )
            })
            .unwrap_or_default();
        let status_text = format!(
            "⏳ Queued `{}` in `{}` (task `{}`).{note}",
            truncate_chars(&task.title(), 80),
            task.repo.name,
            task.id
        );
        self.new_status(channel, thread_ts, &task.id, 1, &status_text)
            .await?;
        if let Err(e) = self.inner.queue.submit(&mut task).await {
            self.say(
                channel,
                thread_ts,
                &format!("❌ I could not queue this task: {e}. Nothing will run; mention me again in a minute, or ask an operator to check slipway's store."),
            )
            .await;
            return Err(e.into());
        }
        self.audit(
            Some(&task.id),
            "slack_task_created",
            user,
            json!({"channel": channel, "ts": ts, "repo": task.repo.name}),
        )
        .await;
        Ok(())
    }

    async fn on_reply(
        &self,
        channel: &str,
        ts: &str,
        thread_ts: &str,
        user: &str,
    ) -> Result<(), BotError> {
        let Some(task) = self.task_for_thread(channel, thread_ts)? else {
            return Ok(());
        };
        if !self.is_trusted(user, &task) {
            // Context for the next revision, never an instruction.
            tracing::debug!(
                task_id = task.id,
                user,
                "reply from someone else kept as untrusted context"
            );
            return Ok(());
        }
        self.refine(channel, ts, thread_ts, &task).await
    }

    async fn refine(
        &self,
        channel: &str,
        ts: &str,
        thread_ts: &str,
        task: &Task,
    ) -> Result<(), BotError> {
        if task.state == TaskState::Merged {
            self.say(
                channel,
                thread_ts,
                "This task is merged already. Start a new thread for a follow-up change.",
            )
            .await;
            return Ok(());
        }
        let (messages, _) = self
            .read_thread(channel, thread_ts, ts, None, &task.requester)
            .await;
        let approvers = &self.inner.cfg.file.slack.approvers;
        let Some(revision) = revision_from_thread(&messages, ts, &task.requester, approvers) else {
            self.say(
                channel,
                thread_ts,
                "I could not read your reply from the thread, so nothing changed. Try again in a moment.",
            )
            .await;
            return Ok(());
        };
        if revision.instructions.trim().is_empty() {
            return Ok(());
        }
        let running = self.inner.queue.is_running(&task.id);
        let Some(updated) = self.inner.queue.refine(&task.id, revision).await? else {
            return Ok(());
        };
        let n = updated.current().number;
        let text = if running {
            format!("⏳ Revision {n} queued: it runs on the same branch after the current run.")
        } else {
            format!("⏳ Revision {n} queued on `{}`.", updated.branch)
        };
        self.new_status(channel, thread_ts, &updated.id, n, &text)
            .await?;
        self.audit(
            Some(&updated.id),
            "slack_revision",
            &updated.requester,
            json!({"revision": n, "ts": ts}),
        )
        .await;
        Ok(())
    }

    /// Makes a status message a target for ❌ and 🔁 (it has no tested commit, so ✅ on it
    /// is answered, not merged).
    async fn bind_status(&self, channel: &str, ts: &str, task_id: &str) -> Result<(), BotError> {
        self.inner
            .store
            .put_binding(
                &msg_key(channel, ts),
                &ReportMessage {
                    task_id: task_id.into(),
                    run_id: None,
                    commit: None,
                    decision: None,
                },
            )
            .await?;
        Ok(())
    }

    /// Posts a fresh status message for the task's next run, and stores the task's binding
    /// (created here for a new task, even when the post failed, so egress still finds it).
    async fn new_status(
        &self,
        channel: &str,
        thread_ts: &str,
        task_id: &str,
        revision: u32,
        text: &str,
    ) -> Result<(), BotError> {
        let posted = self.say(channel, thread_ts, text).await;
        if let Some(ts) = &posted {
            self.bind_status(channel, ts, task_id).await?;
        }
        let _order = self.inner.egress.lock().await;
        let store = &self.inner.store;
        let mut bound: SlackThread = store.binding(&task_key(task_id))?.unwrap_or(SlackThread {
            task_id: task_id.into(),
            channel: channel.into(),
            thread_ts: thread_ts.into(),
            status: None,
            pending: None,
        });
        if let Some(ts) = posted {
            bound.pending = Some(StatusMessage {
                ts,
                revision,
                started_ms: now_ms(),
                ..Default::default()
            });
        }
        store.put_binding(&task_key(task_id), &bound).await?;
        Ok(())
    }

    async fn on_reaction(
        &self,
        channel: &str,
        item_ts: &str,
        user: &str,
        reaction: &str,
    ) -> Result<(), BotError> {
        if ![APPROVE, CANCEL, RERUN, REVERT].contains(&reaction) {
            return Ok(());
        }
        let Some(msg) = self
            .inner
            .store
            .binding::<ReportMessage>(&msg_key(channel, item_ts))?
        else {
            // Not one of our reports: reactions elsewhere mean nothing.
            tracing::debug!(
                channel,
                item_ts,
                reaction,
                "reaction on a message that is not a report"
            );
            return Ok(());
        };
        let Some(task) = self.inner.store.get_task(&msg.task_id)? else {
            return Ok(());
        };
        let (ch, thread_ts) = match &task.origin {
            Origin::Slack { channel, thread_ts } => (channel.clone(), thread_ts.clone()),
            Origin::Cli => (channel.to_string(), item_ts.to_string()),
        };
        self.audit(
            Some(&task.id),
            "slack_reaction",
            user,
            json!({"reaction": reaction, "message_ts": item_ts}),
        )
        .await;
        match reaction {
            APPROVE => self.merge(&ch, &thread_ts, &task, &msg, user).await,
            CANCEL => self.cancel(&ch, &thread_ts, &task, user).await,
            RERUN => self.rerun(&ch, &thread_ts, &task, user).await,
            _ => self.revert(&ch, &thread_ts, &task, user).await,
        }
    }

    /// ⏪ on a merged task's report: a revert task (`git revert` of the merge, the repo's
    /// checks, then a PR), followed in the same thread. One revert per merged task.
    async fn revert(
        &self,
        channel: &str,
        thread_ts: &str,
        task: &Task,
        user: &str,
    ) -> Result<(), BotError> {
        if !self.allowed(channel, thread_ts, task, user, "revert").await {
            return Ok(());
        }
        let has_prs = self.inner.forges.of(task).is_ok_and(|f| f.has_ci());
        if !has_prs {
            self.say(channel, thread_ts, "⏪ A revert needs a forge with pull requests (forge = \"github\"); with the local forge, revert the merge commit in the repo.").await;
            return Ok(());
        }
        let Some(task) = self.inner.store.get_task(&task.id)? else {
            return Ok(());
        };
        let (TaskState::Merged, Some(merge_commit)) = (task.state, task.merge_commit.clone())
        else {
            self.say(
                channel,
                thread_ts,
                &format!(
                    "⏪ Only a merged task can be reverted; this one is {:?}. To drop an open PR, react ❌.",
                    task.state
                )
                .to_lowercase(),
            )
            .await;
            return Ok(());
        };
        let key = format!("slack/revert/{}", task.id);
        if let Some(existing) = self.inner.store.binding::<String>(&key)? {
            self.say(
                channel,
                thread_ts,
                &format!("⏪ A revert of this task exists already (task `{existing}`)."),
            )
            .await;
            return Ok(());
        }
        let mut revert = Task::new(
            task.repo.clone(),
            user,
            task.origin.clone(),
            &format!("Revert \"{}\"", task.title()),
        );
        revert.thread_url = task.thread_url.clone();
        revert.revert_of = Some(crate::task::RevertOf {
            task_id: task.id.clone(),
            pr_url: task.pr_url.clone(),
            merge_commit: merge_commit.clone(),
            commits: task.merged_commits.max(1),
        });
        self.inner.store.put_binding(&key, &revert.id).await?;
        // Replies in the thread now refine the revert.
        self.inner
            .store
            .put_binding(&thread_key(channel, thread_ts), &revert.id)
            .await?;
        let text = format!(
            "⏪ Reverting `{}` (merge `{}`), asked by <@{user}>: the repo's checks run on the revert before its PR opens (task `{}`).",
            truncate_chars(&task.title(), 80),
            short_sha(&merge_commit),
            revert.id
        );
        self.new_status(channel, thread_ts, &revert.id, 1, &text)
            .await?;
        self.inner.queue.submit(&mut revert).await?;
        self.audit(
            Some(&task.id),
            "revert_requested",
            user,
            json!({"revert_task": revert.id, "merge_commit": merge_commit}),
        )
        .await;
        Ok(())
    }

    /// The user groups (`S…` approvers) that `user` belongs to.
    async fn groups_of(&self, user: &str) -> Vec<String> {
        let mut out = Vec::new();
        for g in self
            .inner
            .cfg
            .file
            .slack
            .approvers
            .iter()
            .filter(|a| a.starts_with('S'))
        {
            match self.inner.api.group_members(g).await {
                Ok(members) if members.iter().any(|m| m == user) => out.push(g.clone()),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(group = g, error = %e, advice = e.advice(), "could not read a user group")
                }
            }
        }
        out
    }

    async fn merge(
        &self,
        channel: &str,
        thread_ts: &str,
        task: &Task,
        msg: &ReportMessage,
        user: &str,
    ) -> Result<(), BotError> {
        let refuse = |why: String| async move {
            self.say(channel, thread_ts, &format!("Not merged: {why}"))
                .await;
            self.audit(
                Some(&task.id),
                "merge_refused",
                user,
                json!({"reason": why}),
            )
            .await;
        };
        // One merge at a time, on the freshest copy of the task.
        let _merging = self.inner.merging.lock().await;
        let Some(task) = &self.inner.store.get_task(&task.id)? else {
            return Ok(());
        };
        let queued = self
            .inner
            .store
            .queued()?
            .iter()
            .any(|(_, i)| i.task_id == task.id);
        let blocked = match task.state {
            TaskState::Merged => Some("it is merged already."),
            TaskState::Cancelled => Some("the task was closed; react 🔁 to run it again first."),
            TaskState::Failed => Some(
                "the last run failed, so there is no tested change; reply in the thread to try again.",
            ),
            _ if queued || self.inner.queue.is_running(&task.id) => Some(
                "a run of this task is queued or in progress; react ✅ on its report when it is done.",
            ),
            TaskState::Ready | TaskState::Halted => None,
            TaskState::Queued | TaskState::Running => Some(
                "a run of this task is queued or in progress; react ✅ on its report when it is done.",
            ),
        };
        if let Some(why) = blocked {
            refuse(why.into()).await;
            return Ok(());
        }
        let latest = self.latest_report(task)?;
        let (Some(report), Some(commit)) = (
            latest.as_ref(),
            latest.as_ref().and_then(|r| r.commit.clone()),
        ) else {
            refuse("there is no tested commit to merge; reply in the thread to try again.".into())
                .await;
            return Ok(());
        };
        if msg.commit.is_none() {
            refuse("react ✅ on the report (the message with the gates), not on this one.".into())
                .await;
            return Ok(());
        }
        if msg.commit.as_deref() != Some(commit.as_str())
            || report.revision != task.current().number
        {
            refuse("this report is not the latest one; react ✅ on the newest report.".into())
                .await;
            return Ok(());
        }
        let groups = self.groups_of(user).await;
        match authorize(
            user,
            &groups,
            &task.requester,
            &self.inner.cfg.file.slack,
            report.decision,
        ) {
            Approval::Refuse(why) => {
                refuse(why).await;
                return Ok(());
            }
            Approval::Merge => {}
        }
        let forge = match self.inner.forges.of(task) {
            Ok(f) => f.clone(),
            Err(e) => {
                refuse(e.to_string()).await;
                return Ok(());
            }
        };
        let req = MergeRequest {
            tested: &commit,
            method: self.inner.cfg.merge_method(&task.repo.name),
            approver: user,
            thread_url: task.thread_url.as_deref(),
            delete_branch: self
                .inner
                .cfg
                .repo(&task.repo.name)
                .is_none_or(|r| r.delete_branch),
        };
        match forge.merge(task, &req).await {
            Ok(merged) => {
                self.inner
                    .store
                    .update_task(task, |t| {
                        t.state = TaskState::Merged;
                        t.merge_commit = Some(merged.sha.clone());
                        t.merged_commits = merged.commits;
                        t.updated_ms = now_ms();
                    })
                    .await?;
                self.audit(
                    Some(&task.id),
                    "merged",
                    user,
                    json!({"tested": commit, "merge_commit": merged.sha, "requester": task.requester, "approver": user}),
                )
                .await;
                self.say(
                    channel,
                    thread_ts,
                    &format!(
                        "✅ Merged `{}` into `{}` as `{}`: approved by <@{user}>, requested by <@{}>.",
                        short_sha(&commit),
                        task.repo.base,
                        short_sha(&merged.sha),
                        task.requester
                    ),
                )
                .await;
            }
            Err(e) => {
                self.audit(
                    Some(&task.id),
                    "merge_failed",
                    user,
                    json!({"error": e.to_string()}),
                )
                .await;
                let next = match &e {
                    ForgeError::HeadMoved { .. }
                    | ForgeError::NotMergeable { .. }
                    | ForgeError::NotOpen { .. } => String::new(),
                    e if e.is_outage() => " GitHub is unavailable; nothing is lost: react ✅ again in a few minutes.".into(),
                    _ => " Reply in the thread to refine the change, or 🔁 to rerun it on the new base.".into(),
                };
                self.say(channel, thread_ts, &format!("❌ Not merged: {e}.{next}"))
                    .await;
            }
        }
        Ok(())
    }

    /// The report of the task's newest finished run.
    fn latest_report(&self, task: &Task) -> Result<Option<RunReport>, BotError> {
        for run_id in task.runs.iter().rev() {
            if let Some(run) = self.inner.store.get_run(run_id)?
                && run.state != RunState::Running
            {
                return Ok(run.report);
            }
        }
        Ok(None)
    }

    /// Whether `user` may `verb` the task (the requester or an approver); if not, says so
    /// in the thread.
    async fn allowed(
        &self,
        channel: &str,
        thread_ts: &str,
        task: &Task,
        user: &str,
        verb: &str,
    ) -> bool {
        if self.is_trusted(user, task) {
            return true;
        }
        self.say(
            channel,
            thread_ts,
            &format!(
                "Only the requester (<@{}>) or an approver can {verb} this task.",
                task.requester
            ),
        )
        .await;
        false
    }

    async fn cancel(
        &self,
        channel: &str,
        thread_ts: &str,
        task: &Task,
        user: &str,
    ) -> Result<(), BotError> {
        if !self.allowed(channel, thread_ts, task, user, "cancel").await {
            return Ok(());
        }
        if self.inner.queue.cancel(&task.id) {
            self.audit(Some(&task.id), "cancel_requested", user, json!({}))
                .await;
            self.say(
                channel,
                thread_ts,
                &format!("🛑 Cancelling the run (asked by <@{user}>); its sandbox stops now."),
            )
            .await;
            return Ok(());
        }
        if task.state == TaskState::Merged {
            self.say(channel, thread_ts, "This task is merged; there is nothing to close. To undo it, revert the merge commit.").await;
            return Ok(());
        }
        // Queued or finished: close it. The dispatcher drops queued runs of a cancelled task.
        self.inner
            .store
            .update_task(task, |t| {
                t.state = TaskState::Cancelled;
                t.updated_ms = now_ms();
            })
            .await?;
        // A run dispatched between the first check and the state change is stopped too.
        self.inner.queue.cancel(&task.id);
        let closed = match self.inner.forges.of(task) {
            Ok(f) => f.close(task, user).await,
            Err(e) => Err(e),
        };
        self.audit(
            Some(&task.id),
            "closed",
            user,
            json!({"pr_closed": closed.as_ref().ok().cloned().flatten(), "error": closed.as_ref().err().map(|e| e.to_string())}),
        )
        .await;
        let what = match (&closed, &task.pr_url) {
            (Ok(Some(u)), _) => format!("its pull request {u} is closed"),
            (Err(e), Some(u)) => {
                format!("the pull request {u} could not be closed ({e}); close it on GitHub")
            }
            (_, Some(u)) => format!("the pull request {u} stays as it is"),
            _ => format!("the branch `{}` stays in the repo", task.branch),
        };
        self.say(
            channel,
            thread_ts,
            &format!("Closed by <@{user}>: nothing more will run or merge for this task; {what}."),
        )
        .await;
        Ok(())
    }

    async fn rerun(
        &self,
        channel: &str,
        thread_ts: &str,
        task: &Task,
        user: &str,
    ) -> Result<(), BotError> {
        if !self.allowed(channel, thread_ts, task, user, "rerun").await {
            return Ok(());
        }
        if self.inner.queue.is_running(&task.id) || task.state == TaskState::Queued {
            self.say(
                channel,
                thread_ts,
                "A run of this task is already queued or running.",
            )
            .await;
            return Ok(());
        }
        if task.state == TaskState::Merged {
            self.say(
                channel,
                thread_ts,
                "This task is merged; start a new thread for more changes.",
            )
            .await;
            return Ok(());
        }
        let Some(t) = self.inner.queue.rerun(&task.id).await? else {
            return Ok(());
        };
        self.audit(
            Some(&t.id),
            "rerun",
            user,
            json!({"revision": t.current().number}),
        )
        .await;
        self.new_status(
            channel,
            thread_ts,
            &t.id,
            t.current().number,
            &format!(
                "🔁 Rerun of revision {} queued (asked by <@{user}>).",
                t.current().number
            ),
        )
        .await
    }

    /// Renders queue events into the threads of Slack-started tasks until the channel closes.
    /// Call with a receiver subscribed before [`Queue::recover`], so interruptions are told.
    pub async fn follow(&self, mut rx: broadcast::Receiver<QueueEvent>) {
        loop {
            match rx.recv().await {
                Ok(e) => {
                    if let Err(err) = self.egress(e).await {
                        tracing::error!(error = %err, "could not report to Slack");
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(
                        missed = n,
                        "Slack egress fell behind; some status edits were skipped"
                    )
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    async fn egress(&self, e: QueueEvent) -> Result<(), BotError> {
        let _order = self.inner.egress.lock().await;
        let task_id = match &e {
            QueueEvent::Run { task_id, .. }
            | QueueEvent::Interrupted { task_id, .. }
            | QueueEvent::Failed { task_id, .. } => task_id.clone(),
        };
        let store = &self.inner.store;
        let Some(mut bound) = store.binding::<SlackThread>(&task_key(&task_id))? else {
            return Ok(()); // not a Slack task
        };
        let (channel, thread_ts) = (bound.channel.clone(), bound.thread_ts.clone());
        match e {
            QueueEvent::Run { event, .. } => match event {
                RunEvent::RunStarted {
                    run_id, revision, ..
                } => {
                    let ts = match bound.pending.take() {
                        Some(s) => s.ts,
                        None => match self.say(&channel, &thread_ts, "⏳ Starting…").await {
                            Some(ts) => {
                                self.bind_status(&channel, &ts, &task_id).await?;
                                ts
                            }
                            None => return Ok(()),
                        },
                    };
                    bound.status = Some(StatusMessage {
                        ts,
                        revision,
                        run_id: Some(run_id),
                        lines: Vec::new(),
                        started_ms: now_ms(),
                        done: false,
                    });
                    self.edit_status(&channel, &bound, "running").await;
                }
                RunEvent::NodeFinished {
                    node,
                    ok,
                    detail,
                    duration_ms,
                    ..
                } => {
                    if let Some(s) = bound.status.as_mut() {
                        let mark = if ok { "✓" } else { "✗" };
                        let detail = if ok || detail.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", truncate_chars(&detail, 120))
                        };
                        s.lines.push(format!(
                            "{mark} {node} {:.1} s{detail}",
                            duration_ms as f64 / 1000.0
                        ));
                    }
                    self.edit_status(&channel, &bound, "running").await;
                }
                RunEvent::RunFinished { .. } | RunEvent::RunFailed { .. }
                    if self.inner.queue.is_shutting_down() =>
                {
                    // Stopped by a graceful shutdown: it reruns after the restart.
                    self.close_status(&channel, &mut bound, "paused: slipway is restarting")
                        .await;
                    self.say(
                        &channel,
                        &thread_ts,
                        "⏸ slipway is restarting, so this run stopped here. It runs again after the restart.",
                    )
                    .await;
                }
                RunEvent::RunFinished { report } => {
                    let headline = format!("finished: {}", report.decision);
                    self.close_status(&channel, &mut bound, &headline).await;
                    self.post_report(&channel, &thread_ts, &task_id, &report)
                        .await?;
                }
                RunEvent::RunFailed { error } => {
                    self.close_status(&channel, &mut bound, "failed").await;
                    self.post_failure(&channel, &thread_ts, &task_id, &error)
                        .await?;
                }
                RunEvent::Published {
                    pr_url: Some(url), ..
                } => {
                    // The PR link reaches the thread as soon as it exists, before CI.
                    if let Some(s) = bound.status.as_mut()
                        && !s.lines.iter().any(|l| l.contains(url.as_str()))
                    {
                        s.lines.push(format!("🔗 <{url}|pull request>"));
                    }
                    self.edit_status(&channel, &bound, "running").await;
                }
                RunEvent::NodeStarted { .. } | RunEvent::Published { .. } => return Ok(()),
            },
            QueueEvent::Interrupted { rerun, .. } => {
                let text = if rerun {
                    "⚠️ slipway restarted while this task was running. It runs again now, from a fresh checkout."
                } else {
                    "⚠️ slipway restarted during this task's run a second time, so it stays stopped. React 🔁 on the last report, or reply in the thread, to try again."
                };
                self.say(&channel, &thread_ts, text).await;
                if rerun {
                    bound.status = None;
                }
            }
            QueueEvent::Failed { error, .. } => {
                if bound.status.as_ref().is_some_and(|s| s.done) {
                    return Ok(()); // the run's own failure was told already
                }
                self.close_status(&channel, &mut bound, "failed").await;
                self.post_failure(&channel, &thread_ts, &task_id, &error)
                    .await?;
            }
        }
        store.put_binding(&task_key(&task_id), &bound).await?;
        Ok(())
    }

    /// Marks the run's status message done and writes its last headline.
    async fn close_status(&self, channel: &str, bound: &mut SlackThread, state: &str) {
        if let Some(s) = bound.status.as_mut() {
            s.done = true;
        }
        self.edit_status(channel, bound, state).await;
    }

    /// Rewrites the status message: a headline, then one line per finished node.
    async fn edit_status(&self, channel: &str, bound: &SlackThread, state: &str) {
        let Some(s) = &bound.status else { return };
        let elapsed = now_ms().saturating_sub(s.started_ms) as f64 / 1000.0;
        let run = s
            .run_id
            .as_deref()
            .map(|r| format!(" · run `{r}`"))
            .unwrap_or_default();
        let mut text = format!("*Revision {}*{run} · {state} · {elapsed:.1} s", s.revision);
        for l in &s.lines {
            text.push('\n');
            text.push_str(l);
        }
        if let Err(e) = self.inner.api.update(channel, &s.ts, &text, None).await {
            tracing::warn!(error = %e, advice = e.advice(), "could not edit the status message");
        }
    }

    async fn post_report(
        &self,
        channel: &str,
        thread_ts: &str,
        task_id: &str,
        report: &RunReport,
    ) -> Result<(), BotError> {
        let kit = render::block_kit(report);
        let text = kit
            .get("text")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| render::plain_text(report));
        let ts = match self
            .inner
            .api
            .post(channel, thread_ts, &text, kit.get("blocks"))
            .await
        {
            Ok(ts) => ts,
            Err(e) => {
                // The report must reach the thread: fall back to the plain text.
                tracing::warn!(error = %e, "Block Kit report failed; posting plain text");
                match self.say(channel, thread_ts, &text).await {
                    Some(ts) => ts,
                    None => return Ok(()),
                }
            }
        };
        self.inner
            .store
            .put_binding(
                &msg_key(channel, &ts),
                &ReportMessage {
                    task_id: task_id.into(),
                    run_id: Some(report.run_id.clone()),
                    commit: report.commit.clone(),
                    decision: Some(report.decision),
                },
            )
            .await?;
        self.audit(
            Some(task_id),
            "slack_report",
            "slipway",
            json!({"ts": ts, "decision": report.decision}),
        )
        .await;
        Ok(())
    }

    async fn post_failure(
        &self,
        channel: &str,
        thread_ts: &str,
        task_id: &str,
        error: &str,
    ) -> Result<(), BotError> {
        let text = format!(
            "❌ The run failed: {}\nReply in the thread to refine the task, or react 🔁 here to run it again.",
            truncate_chars(error, 1500)
        );
        if let Some(ts) = self.say(channel, thread_ts, &text).await {
            self.bind_status(channel, &ts, task_id).await?;
        }
        Ok(())
    }
}

/// A task's instruction with the mention, the repo name and filler words removed: empty
/// means the mention named only a repo.
fn instruction_without_repo(text: &str, repo: &str) -> String {
    let t = strip_mentions(text);
    // ASCII lowering keeps byte offsets, so the index is valid in `t`.
    let lower = t.to_ascii_lowercase();
    let without = match lower.find(&repo.to_ascii_lowercase()) {
        Some(i) => format!("{}{}", &t[..i], &t[i + repo.len()..]),
        None => t,
    };
    without
        .split_whitespace()
        .filter(|w| {
            let core = w.to_lowercase();
            let core = core.trim_matches(|c: char| c.is_ascii_punctuation());
            !matches!(core, "" | "in" | "on" | "for" | "repo")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The instruction without a leading "in owner/name:" (the repo is the task's, not part of
/// what to change).
fn strip_repo_prefix(text: &str, repo: &str) -> String {
    let t = text.trim_start();
    let lower = t.to_ascii_lowercase();
    let after_in = ["in ", "on ", "for "]
        .iter()
        .find_map(|p| lower.strip_prefix(p).map(|_| p.len()))
        .unwrap_or(0);
    if lower[after_in..].starts_with(&repo.to_ascii_lowercase()) {
        let rest = &t[after_in + repo.len()..];
        let rest = rest.trim_start_matches([':', ',', '-', ' ']);
        if !rest.trim().is_empty() {
            return rest.trim().to_string();
        }
    }
    text.trim().to_string()
}

/// Where a configured repo is fetched from, or the message for the thread. A GitHub repo's
/// clone URL comes from the API at each run; this is only its placeholder.
fn repo_source(repo: &RepoConfig) -> Result<String, String> {
    if repo.forge == ForgeKind::Github {
        return Ok(format!("https://github.com/{}.git", repo.name));
    }
    let Some(url) = &repo.url else {
        return Err(format!(
            "`{}` has no `url` in slipway.toml, so I cannot fetch it. An operator adds the repo's path or clone URL.",
            repo.name
        ));
    };
    crate::workspace::Workspaces::resolve_source(url)
        .map(|(source, _)| source)
        .map_err(|e| {
            format!(
                "I cannot fetch `{}`: {e}. An operator fixes its `url` in slipway.toml.",
                repo.name
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repo_prefix_is_not_part_of_the_instruction() {
        assert_eq!(
            strip_repo_prefix("in acme/api: fix it", "acme/api"),
            "fix it"
        );
        assert_eq!(strip_repo_prefix("acme/api, fix it", "acme/api"), "fix it");
        assert_eq!(
            strip_repo_prefix("fix acme/api retries", "acme/api"),
            "fix acme/api retries"
        );
    }

    #[test]
    fn a_mention_holding_only_a_repo_has_no_instruction() {
        assert_eq!(
            instruction_without_repo("<@U0BOT> acme/api", "acme/api"),
            ""
        );
        assert_eq!(
            instruction_without_repo("<@U0BOT> in acme/api:", "acme/api"),
            ""
        );
        assert_eq!(
            instruction_without_repo("<@U0BOT> in acme/api: fix the retries 🚀", "acme/api"),
            "fix the retries 🚀"
        );
        assert_eq!(
            instruction_without_repo("<@U0BOT> in Acme/API: ünïcode", "acme/api"),
            "ünïcode"
        );
    }
}
