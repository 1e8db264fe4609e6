//! Egress: everything the bot writes into threads. [`Egress::follow`] renders the queue's
//! [`QueueEvent`]s (one status message per run, edited in place as nodes finish; the final
//! report as Block Kit with a plain-text fallback; every failure said in the thread), and
//! the handlers post through [`Egress::say`] and [`Egress::new_status`].
//!
//! Owns the order of thread writes (one egress lock per process, so status edits keep
//! their order; binding writes of a task's thread record take it too). Must not decide
//! anything about tasks, and takes its words from `super::copy`.
#![warn(missing_docs)]

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast;

use super::api::WebApi;
use super::bindings::{Bindings, ReportMessage, SlackThread, StatusMessage};
use super::copy;
use super::outbox::{AfterPost, Outbox, Target};
use crate::config::SecretValues;
use crate::gates::render;
use crate::queue::{Queue, QueueEvent};
use crate::report::RunReport;
use crate::run::RunEvent;
use crate::store::{AuditEvent, Store, StoreError};
use crate::task::now_ms;

/// Failures of a thread write that are not Slack's (Slack failures are logged where they
/// happen: there is nowhere else to say them).
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    #[error(transparent)]
    /// A binding could not be read or written.
    Store(#[from] StoreError),
}

struct Inner {
    bindings: Bindings,
    store: Store,
    /// Only for `was_interrupted`: a run stopped by a graceful shutdown is told so.
    queue: Queue,
    /// Secret values redacted from every text posted (an error quoting a URL with a token).
    secrets: SecretValues,
    /// Serialises egress per process, so status edits are written in order; binding
    /// writes take it too. A tokio mutex: it is held across store writes.
    order: tokio::sync::Mutex<()>,
    /// Where every thread write goes first.
    outbox: Outbox,
}

/// The bot's voice in threads. Cheap to clone.
#[derive(Clone)]
pub struct Egress {
    inner: Arc<Inner>,
}

impl Egress {
    /// Egress through `api`, recording reaction targets in `store`; `queue` is asked only
    /// whether it is shutting down; `secrets` are redacted from every post.
    pub fn new(api: WebApi, store: Store, queue: Queue, secrets: SecretValues) -> Self {
        Self {
            inner: Arc::new(Inner {
                bindings: Bindings::new(store.clone()),
                outbox: Outbox::new(api, store.clone()),
                store,
                queue,
                secrets,
                order: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Waits until every thread message written so far was sent, at most `limit`; true
    /// when the outbox is empty.
    pub async fn quiesce(&self, limit: std::time::Duration) -> bool {
        drop(self.inner.order.lock().await);
        self.inner.outbox.flushed(limit).await
    }

    /// The outbox every thread write goes through; run its drain with [`Outbox::run`].
    pub fn outbox(&self) -> &Outbox {
        &self.inner.outbox
    }

    fn redact(&self, text: &str) -> String {
        self.inner.secrets.redact(text)
    }

    /// Posts `text` in a thread, through the outbox (sent in order, retried until Slack
    /// takes it). A store failure is logged: there is nowhere else to say it.
    pub async fn say(&self, channel: &str, thread_ts: &str, text: &str) {
        self.post(
            channel,
            thread_ts,
            format!("say/{}", uuid::Uuid::new_v4()),
            text,
            AfterPost::Nothing,
        )
        .await;
    }

    /// Posts `text` under the idempotency key `key`, unless a message with that key was
    /// sent or waits in the outbox already (a handler resumed after a crash, and a restart's
    /// own settling, say the same thing once).
    pub async fn say_once(&self, channel: &str, thread_ts: &str, key: &str, text: &str) {
        if !self.said(key) {
            self.post(
                channel,
                thread_ts,
                key.to_string(),
                text,
                AfterPost::Nothing,
            )
            .await;
        }
    }

    /// Whether the message with idempotency key `key` was sent or waits in the outbox.
    pub fn said(&self, key: &str) -> bool {
        self.inner.store.sent(key).ok().flatten().is_some()
            || self
                .inner
                .outbox
                .pending_keys()
                .is_ok_and(|k| k.contains(key))
    }

    /// Writes a post to the outbox; a store failure is logged.
    async fn post(&self, channel: &str, thread_ts: &str, key: String, text: &str, then: AfterPost) {
        // Errors quoted into the thread must not carry a secret (a token in a URL, say).
        let text = self.redact(text);
        if let Err(e) = self
            .inner
            .outbox
            .post(channel, thread_ts, key, text, None, then)
            .await
        {
            tracing::error!(error = %e, channel, "could not queue a thread message");
        }
    }

    /// Writes a front-end audit entry; a failure is logged.
    pub async fn audit(&self, task_id: &str, actor: &str, event: AuditEvent) {
        let action = event.action();
        if let Err(e) = self
            .inner
            .store
            .audit_now(Some(task_id), None, actor, event)
            .await
        {
            tracing::error!(error = %e, action, "could not write the audit log");
        }
    }

    /// Posts a status message of `task_id` under a fresh key, made a target for ❌ and 🔁
    /// once posted (it has no tested commit, so ✅ on it is answered, not merged); returns
    /// the key.
    async fn post_status(
        &self,
        channel: &str,
        thread_ts: &str,
        task_id: &str,
        revision: u32,
        text: &str,
    ) -> String {
        let key = format!("status/{task_id}/{revision}/{}", uuid::Uuid::new_v4());
        let then = AfterPost::Bind(ReportMessage::status(task_id));
        self.post(channel, thread_ts, key.clone(), text, then).await;
        key
    }

    /// Stores the task's thread record if it has none yet, so every event of the task finds
    /// its thread even if slipway stops before the status message is written. Call before
    /// the task is queued.
    pub async fn bind_task_thread(
        &self,
        channel: &str,
        thread_ts: &str,
        task_id: &str,
    ) -> Result<(), EgressError> {
        let _order = self.inner.order.lock().await;
        let bindings = &self.inner.bindings;
        if bindings.slack_thread(task_id)?.is_none() {
            bindings
                .put_slack_thread(&SlackThread::new(channel, thread_ts, task_id))
                .await?;
        }
        Ok(())
    }

    /// Posts a fresh status message for the task's next run (revision `revision`), and
    /// stores the task's thread record (created here for a new task, even when the post
    /// failed, so egress still finds it).
    pub async fn new_status(
        &self,
        channel: &str,
        thread_ts: &str,
        task_id: &str,
        revision: u32,
        text: &str,
    ) -> Result<(), EgressError> {
        let _order = self.inner.order.lock().await;
        let key = self
            .post_status(channel, thread_ts, task_id, revision, text)
            .await;
        let bindings = &self.inner.bindings;
        let mut bound = bindings
            .slack_thread(task_id)?
            .unwrap_or_else(|| SlackThread::new(channel, thread_ts, task_id));
        bound.pending = Some(StatusMessage {
            key: Some(key),
            revision,
            started_ms: now_ms(),
            ..Default::default()
        });
        bindings.put_slack_thread(&bound).await?;
        Ok(())
    }

    /// Renders queue events into the threads of Slack-started tasks until the channel
    /// closes. Call with a receiver subscribed before `Queue::recover`, so interruptions are
    /// told.
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
                        "Slack egress fell behind; some status edits were skipped, final reports are posted from the store"
                    );
                    if let Err(err) = self.reconcile().await {
                        tracing::error!(error = %err, "could not post the reports egress missed");
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    async fn egress(&self, e: QueueEvent) -> Result<(), EgressError> {
        let _order = self.inner.order.lock().await;
        let task_id = match &e {
            QueueEvent::Run { task_id, .. }
            | QueueEvent::Interrupted { task_id, .. }
            | QueueEvent::Failed { task_id, .. } => task_id.clone(),
        };
        let Some(mut bound) = self.inner.bindings.slack_thread(&task_id)? else {
            return Ok(()); // not a Slack task
        };
        let (channel, thread_ts) = (bound.channel.clone(), bound.thread_ts.clone());
        match e {
            QueueEvent::Run { event, .. } => match event {
                RunEvent::RunStarted {
                    run_id, revision, ..
                } => {
                    let (ts, key) = match bound.pending.take() {
                        Some(s) => (s.ts, s.key),
                        None => {
                            let key = self
                                .post_status(
                                    &channel,
                                    &thread_ts,
                                    &task_id,
                                    revision,
                                    copy::STARTING,
                                )
                                .await;
                            (String::new(), Some(key))
                        }
                    };
                    bound.status = Some(StatusMessage {
                        ts,
                        key,
                        revision,
                        run_id: Some(run_id),
                        lines: Vec::new(),
                        started_ms: now_ms(),
                        done: false,
                        cost_usd: None,
                    });
                    self.edit_status(&channel, &bound, copy::RUNNING_HEADLINE)
                        .await;
                }
                RunEvent::NodeProgress { node, detail } => {
                    if let Some(s) = bound.status.as_mut() {
                        s.lines.push(copy::progress_line(&node, &detail));
                    }
                    self.edit_status(&channel, &bound, copy::RUNNING_HEADLINE)
                        .await;
                }
                RunEvent::NodeFinished {
                    node,
                    ok,
                    detail,
                    duration_ms,
                    ..
                } => {
                    if let Some(s) = bound.status.as_mut() {
                        // The node's progress line gives way to its result.
                        let progress = copy::progress_line(&node, "");
                        s.lines.retain(|l| !l.starts_with(progress.trim_end()));
                        s.lines
                            .push(copy::node_line(&node, ok, &detail, duration_ms));
                    }
                    self.edit_status(&channel, &bound, copy::RUNNING_HEADLINE)
                        .await;
                }
                RunEvent::RunFinished { ref report }
                    if self.paused(&task_id, Some(&report.run_id)) =>
                {
                    // Stopped by a graceful shutdown: it reruns after the restart.
                    self.close_status(&channel, &mut bound, copy::PAUSED_HEADLINE)
                        .await;
                    self.say(&channel, &thread_ts, copy::RESTARTING).await;
                }
                RunEvent::RunFailed { .. } if self.paused(&task_id, None) => {
                    // Stopped by a graceful shutdown: it reruns after the restart.
                    self.close_status(&channel, &mut bound, copy::PAUSED_HEADLINE)
                        .await;
                    self.say(&channel, &thread_ts, copy::RESTARTING).await;
                }
                RunEvent::RunFinished { report } => {
                    let headline = copy::finished_headline(report.decision);
                    self.close_status(&channel, &mut bound, &headline).await;
                    self.post_report(&channel, &thread_ts, &task_id, &report)
                        .await?;
                }
                RunEvent::RunFailed { error } => {
                    self.close_status(&channel, &mut bound, copy::FAILED_HEADLINE)
                        .await;
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
                        s.lines.push(copy::pr_line(&url));
                    }
                    self.edit_status(&channel, &bound, copy::RUNNING_HEADLINE)
                        .await;
                }
                RunEvent::Cost { usd, .. } => {
                    // Kept for the next status edit (a node event): not one edit per turn.
                    match bound.status.as_mut() {
                        Some(s) => s.cost_usd = Some(usd),
                        None => return Ok(()),
                    }
                }
                RunEvent::BudgetWarning { limit, spent, max } => {
                    let run = bound.status.as_ref().and_then(|s| s.run_id.clone());
                    let key = format!("budget/{}/{}", run.unwrap_or_default(), limit.key());
                    self.say_once(
                        &channel,
                        &thread_ts,
                        &key,
                        &copy::budget_warning(limit, spent, max),
                    )
                    .await;
                    return Ok(());
                }
                RunEvent::NodeStarted { .. } | RunEvent::Published { .. } => return Ok(()),
            },
            QueueEvent::Interrupted { rerun, .. } => {
                self.say(&channel, &thread_ts, copy::interrupted(rerun))
                    .await;
                if rerun {
                    bound.status = None;
                }
            }
            QueueEvent::Failed { error, .. } => {
                if bound.status.as_ref().is_some_and(|s| s.done) {
                    return Ok(()); // the run's own failure was told already
                }
                self.close_status(&channel, &mut bound, copy::FAILED_HEADLINE)
                    .await;
                self.post_failure(&channel, &thread_ts, &task_id, &error)
                    .await?;
            }
        }
        self.inner.bindings.put_slack_thread(&bound).await?;
        Ok(())
    }

    /// Posts every final report the threads are missing: for each finished run of a Slack
    /// task (a newer run queued or running does not hide an older one's report), unless
    /// one was posted for that run or waits in the outbox (its key, `report/<run id>`). Runs on a lagging event stream and at every start, so a report lost to lag
    /// or a crash between a run's end and its post reaches the thread; runs that ended
    /// before this record existed (`egress/since`) are left alone.
    pub async fn reconcile(&self) -> Result<usize, EgressError> {
        let _order = self.inner.order.lock().await;
        let store = &self.inner.store;
        let since = match store.binding::<u64>("egress/since")? {
            Some(t) => t,
            None => {
                let now = now_ms();
                store.put_binding("egress/since", &now).await?;
                now
            }
        };
        let pending = self.inner.outbox.pending_keys()?;
        let mut posted = 0;
        for task in store.list_tasks()? {
            let Some(mut bound) = self.inner.bindings.slack_thread(&task.id)? else {
                continue; // not a Slack task
            };
            // Every run that finished (a report, a halt included) since reports are tracked;
            // a run still going, or one a restart interrupted, has nothing to report.
            for run_id in &task.runs {
                let Some(run) = store.get_run(run_id)? else {
                    continue;
                };
                let (crate::store::RunState::Finished, Some(report), Some(finished)) =
                    (run.state, run.report.as_ref(), run.finished_ms)
                else {
                    continue;
                };
                let key = report_key(&run.run_id);
                if finished < since || store.sent(&key)?.is_some() || pending.contains(&key) {
                    continue;
                }
                let (channel, thread_ts) = (bound.channel.clone(), bound.thread_ts.clone());
                // Its status message, if it is still the thread's current one, ends too.
                if bound
                    .status
                    .as_ref()
                    .is_some_and(|s| s.run_id.as_deref() == Some(run_id.as_str()) && !s.done)
                {
                    let headline = copy::finished_headline(report.decision);
                    self.close_status(&channel, &mut bound, &headline).await;
                    self.inner.bindings.put_slack_thread(&bound).await?;
                }
                self.post_report(&channel, &thread_ts, &task.id, report)
                    .await?;
                posted += 1;
            }
        }
        if posted > 0 {
            tracing::info!(
                reports = posted,
                "posted final reports the threads were missing"
            );
        }
        Ok(posted)
    }

    /// Whether the task's run that just ended was stopped by the shutdown at the end of the
    /// grace period (so it reruns after the restart): the queue interrupted it, and it did
    /// not finish by itself (its record, when there is one, ended cancelled or failed).
    fn paused(&self, task_id: &str, run_id: Option<&str>) -> bool {
        if !self.inner.queue.was_interrupted(task_id) {
            return false;
        }
        match run_id.map(|id| self.inner.store.get_run(id)) {
            Some(Ok(Some(run))) => matches!(
                run.state,
                crate::store::RunState::Cancelled | crate::store::RunState::Failed
            ),
            _ => true,
        }
    }

    /// Marks the run's status message done and writes its last headline.
    async fn close_status(&self, channel: &str, bound: &mut SlackThread, state: &str) {
        if let Some(s) = bound.status.as_mut() {
            s.done = true;
        }
        self.edit_status(channel, bound, state).await;
    }

    /// Rewrites the status message: a headline, then one line per finished node. Through
    /// the outbox: only the newest of several waiting edits is sent.
    async fn edit_status(&self, channel: &str, bound: &SlackThread, state: &str) {
        let Some(s) = &bound.status else { return };
        let elapsed = now_ms().saturating_sub(s.started_ms) as f64 / 1000.0;
        let state = copy::with_cost(state, s.cost_usd);
        let text = copy::status(s.revision, s.run_id.as_deref(), &state, elapsed, &s.lines);
        let text = self.redact(&text);
        let of = match &s.key {
            Some(k) => Target::Key(k.clone()),
            None => Target::Ts(s.ts.clone()),
        };
        if let Err(e) = self
            .inner
            .outbox
            .edit(channel, &bound.thread_ts, of, text)
            .await
        {
            tracing::error!(error = %e, "could not queue a status edit");
        }
    }

    /// Writes the final report to the outbox under the key `report/<run id>` (so it is
    /// posted once): Block Kit with its text fallback, redacted; once posted it is a ✅
    /// target and audited `slack_report`.
    async fn post_report(
        &self,
        channel: &str,
        thread_ts: &str,
        task_id: &str,
        report: &RunReport,
    ) -> Result<(), EgressError> {
        // Everything posted is redacted, the Block Kit as well as its text fallback.
        let kit = render::block_kit(report);
        let kit: Value = serde_json::from_str(&self.redact(&kit.to_string())).unwrap_or(kit);
        let text = kit
            .get("text")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| self.redact(&render::plain_text(report)));
        let then = AfterPost::Report {
            message: ReportMessage {
                task_id: task_id.into(),
                run_id: Some(report.run_id.clone()),
                commit: report.commit.clone(),
                decision: Some(report.decision),
            },
            decision: report.decision,
        };
        self.inner
            .outbox
            .post(
                channel,
                thread_ts,
                report_key(&report.run_id),
                text,
                kit.get("blocks").cloned(),
                then,
            )
            .await?;
        Ok(())
    }

    async fn post_failure(
        &self,
        channel: &str,
        thread_ts: &str,
        task_id: &str,
        error: &str,
    ) -> Result<(), EgressError> {
        let key = format!("failure/{task_id}/{}", uuid::Uuid::new_v4());
        let then = AfterPost::Bind(ReportMessage::status(task_id));
        self.post(channel, thread_ts, key, &copy::run_failed(error), then)
            .await;
        Ok(())
    }
}

/// The outbox key of run `run_id`'s final report.
fn report_key(run_id: &str) -> String {
    format!("report/{run_id}")
}
