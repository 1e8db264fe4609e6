//! A reply in a task's thread: from the requester or an approver (listed, or in a listed
//! user group) it becomes revision n+1 on the same branch and PR, written by that person;
//! from anyone else it is left as untrusted context for the next revision. Must not start
//! tasks or act on reactions.
#![warn(missing_docs)]

use std::sync::Arc;

use super::{HandlerError, SlackGroups, read_thread};
use crate::actions::Settings;
use crate::queue::{Queue, Refined};
use crate::slack::api::WebApi;
use crate::slack::bindings::Bindings;
use crate::slack::copy;
use crate::slack::egress::Egress;
use crate::slack::thread::revision_from_thread;
use crate::store::AuditEvent;
use crate::task::{Task, TaskState};

/// The reply handler's handles. Cheap to clone.
#[derive(Clone)]
pub struct Reply {
    /// Reads the thread back (`conversations.replies`).
    pub api: WebApi,
    /// Posts and status messages.
    pub egress: Egress,
    /// Thread → task.
    pub bindings: Bindings,
    /// Refines queued tasks.
    pub queue: Queue,
    /// Approvers (who may refine besides the requester; groups resolved through `api`).
    pub settings: Arc<Settings>,
}

impl Reply {
    /// `user`'s reply `ts` in thread `(channel, thread_ts)`.
    pub async fn run(
        &self,
        channel: &str,
        ts: &str,
        thread_ts: &str,
        user: &str,
    ) -> Result<(), HandlerError> {
        let Some(task) = self.bindings.task_for_thread(channel, thread_ts)? else {
            return Ok(());
        };
        let groups = SlackGroups::new(&self.api, &self.settings);
        if !self.settings.is_trusted(user, &task, &groups).await {
            // Context for the next revision, never an instruction.
            tracing::debug!(
                task_id = task.id,
                user,
                "reply from someone else kept as untrusted context"
            );
            return Ok(());
        }
        self.refine(channel, ts, thread_ts, user, &task, &groups)
            .await
    }

    /// Queues revision n+1 of `task` from the thread as it reads now: message `ts` by `user`
    /// is the trigger, and `user` becomes the revision's author (audited as
    /// the actor of `slack_revision`). The caller checked that `user` is trusted. The
    /// thread's other authors are trusted context when they are the requester or approvers
    /// (`groups` resolves user groups), untrusted otherwise. Also used by a trusted mention
    /// in a task's thread.
    pub async fn refine(
        &self,
        channel: &str,
        ts: &str,
        thread_ts: &str,
        user: &str,
        task: &Task,
        groups: &SlackGroups<'_>,
    ) -> Result<(), HandlerError> {
        if matches!(task.state, TaskState::Merged | TaskState::Merging) {
            self.egress
                .say(channel, thread_ts, copy::REFINE_MERGED)
                .await;
            return Ok(());
        }
        let (messages, _) = read_thread(&self.api, channel, thread_ts, ts, None, user).await;
        let authors: Vec<&str> = messages
            .iter()
            .filter(|m| !m.from_bot)
            .map(|m| m.user.as_str())
            .collect();
        let approvers = self.settings.approvers_among(&authors, groups).await;
        let Some(mut revision) = revision_from_thread(&messages, ts, &task.requester, &approvers)
        else {
            self.egress
                .say(channel, thread_ts, copy::REPLY_NOT_FOUND)
                .await;
            return Ok(());
        };
        if revision.instructions.trim().is_empty() {
            return Ok(());
        }
        // The event's user is who asked, whatever the thread's copy of the message says.
        revision.author = Some(user.to_string());
        let running = self.queue.is_running(&task.id);
        let idempotency = format!("{channel}/{ts}");
        let updated = match self
            .queue
            .refine(&task.id, revision, Some(&idempotency))
            .await?
        {
            Refined::Queued(t) => *t,
            Refined::Refused(_) => {
                // Merged (or merging) since the caller read it.
                self.egress
                    .say(channel, thread_ts, copy::REFINE_MERGED)
                    .await;
                return Ok(());
            }
            Refined::Duplicate | Refined::Missing => return Ok(()),
        };
        let n = updated.current().number;
        let text = if running {
            copy::revision_queued_behind(n)
        } else {
            copy::revision_queued(n, &updated.branch)
        };
        self.egress
            .new_status(channel, thread_ts, &updated.id, n, &text)
            .await?;
        self.egress
            .audit(
                &updated.id,
                user,
                AuditEvent::SlackRevision {
                    revision: n,
                    ts: ts.to_string(),
                },
            )
            .await;
        Ok(())
    }
}
