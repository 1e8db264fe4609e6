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
    api: WebApi,
    bindings: Bindings,
    store: Store,
    /// Only for `was_interrupted`: a run stopped by a graceful shutdown is told so.
    queue: Queue,
    /// Secret values redacted from every text posted (an error quoting a URL with a token).
    secrets: SecretValues,
    /// Serialises egress per process, so status edits keep their order; binding writes
    /// take it too. A tokio mutex: it is held across Slack calls.
    order: tokio::sync::Mutex<()>,
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
                api,
                bindings: Bindings::new(store.clone()),
                store,
                queue,
                secrets,
                order: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Waits for the egress message in flight, if any.
    pub async fn quiesce(&self) {
        drop(self.inner.order.lock().await);
    }

    fn redact(&self, text: &str) -> String {
        self.inner.secrets.redact(text)
    }

    /// Posts `text` in a thread; returns the message's `ts`, or `None` after logging a
    /// failure (there is nowhere else to say it).
    pub async fn say(&self, channel: &str, thread_ts: &str, text: &str) -> Option<String> {
        // Errors quoted into the thread must not carry a secret (a token in a URL, say).
        let text = self.redact(text);
        match self.inner.api.post(channel, thread_ts, &text, None).await {
            Ok(ts) => Some(ts),
            Err(e) => {
                tracing::error!(error = %e, advice = e.advice(), channel, "could not post in the thread");
                None
            }
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

    /// Makes a status message a target for ❌ and 🔁 (it has no tested commit, so ✅ on it
    /// is answered, not merged).
    async fn bind_status(&self, channel: &str, ts: &str, task_id: &str) -> Result<(), EgressError> {
        self.inner
            .bindings
            .bind_message(channel, ts, &ReportMessage::status(task_id))
            .await?;
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
        let posted = self.say(channel, thread_ts, text).await;
        if let Some(ts) = &posted {
            self.bind_status(channel, ts, task_id).await?;
        }
        let _order = self.inner.order.lock().await;
        let bindings = &self.inner.bindings;
        let mut bound = bindings.slack_thread(task_id)?.unwrap_or(SlackThread {
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
                    let ts = match bound.pending.take() {
                        Some(s) => s.ts,
                        None => match self.say(&channel, &thread_ts, copy::STARTING).await {
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
                RunEvent::RunFinished { .. } | RunEvent::RunFailed { .. }
                    if self.inner.queue.was_interrupted(&task_id) =>
                {
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

    /// Posts every final report the threads are missing: for each Slack task whose newest
    /// run has ended (and which is not queued or running again), the run's report, unless
    /// one was posted for that run (the `reported/<run id>` record [`Egress::post_report`]
    /// writes). Runs on a lagging event stream and at every start, so a report lost to lag
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
        let mut posted = 0;
        for task in store.list_tasks()? {
            if matches!(
                task.state,
                crate::task::TaskState::Queued | crate::task::TaskState::Running
            ) || self.inner.queue.is_running(&task.id)
            {
                continue;
            }
            let Some(run) = task
                .runs
                .last()
                .and_then(|id| store.get_run(id).ok().flatten())
            else {
                continue;
            };
            let (Some(report), Some(finished)) = (run.report.as_ref(), run.finished_ms) else {
                continue;
            };
            if finished < since
                || store
                    .binding::<String>(&format!("reported/{}", run.run_id))?
                    .is_some()
            {
                continue;
            }
            let Some(mut bound) = self.inner.bindings.slack_thread(&task.id)? else {
                continue;
            };
            let (channel, thread_ts) = (bound.channel.clone(), bound.thread_ts.clone());
            let headline = copy::finished_headline(report.decision);
            self.close_status(&channel, &mut bound, &headline).await;
            self.inner.bindings.put_slack_thread(&bound).await?;
            self.post_report(&channel, &thread_ts, &task.id, report)
                .await?;
            posted += 1;
        }
        if posted > 0 {
            tracing::info!(
                reports = posted,
                "posted final reports the threads were missing"
            );
        }
        Ok(posted)
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
        let text = copy::status(s.revision, s.run_id.as_deref(), state, elapsed, &s.lines);
        let text = self.redact(&text);
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
    ) -> Result<(), EgressError> {
        // Everything posted is redacted, the Block Kit as well as its text fallback.
        let kit = render::block_kit(report);
        let kit: Value = serde_json::from_str(&self.redact(&kit.to_string())).unwrap_or(kit);
        let text = kit
            .get("text")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| self.redact(&render::plain_text(report)));
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
            .bindings
            .bind_message(
                channel,
                &ts,
                &ReportMessage {
                    task_id: task_id.into(),
                    run_id: Some(report.run_id.clone()),
                    commit: report.commit.clone(),
                    decision: Some(report.decision),
                },
            )
            .await?;
        // Reported: a reconcile never posts this run's report again.
        self.inner
            .store
            .put_binding(&format!("reported/{}", report.run_id), &ts)
            .await?;
        self.audit(
            task_id,
            "slipway",
            AuditEvent::SlackReport {
                ts,
                decision: report.decision,
            },
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
    ) -> Result<(), EgressError> {
        if let Some(ts) = self.say(channel, thread_ts, &copy::run_failed(error)).await {
            self.bind_status(channel, &ts, task_id).await?;
        }
        Ok(())
    }
}
