//! A reaction on one of our messages (a report, status or failure message): ✅ approves and
//! merges, ❌ cancels or closes, 🔁 reruns, ⏪ reverts a merged task. Each is a call into
//! `crate::actions`; this file only finds the task, audits the reaction and words the
//! outcome. Must not change task state itself.
#![warn(missing_docs)]

use std::sync::Arc;

use super::{HandlerError, SlackGroups};
use crate::actions::close::CloseOutcome;
use crate::actions::merge::MergeRefusal;
use crate::actions::rerun::RerunOutcome;
use crate::actions::revert::RevertOutcome;
use crate::actions::{ActionError, Actions, Settings};
use crate::slack::api::WebApi;
use crate::slack::bindings::{Bindings, ReportMessage};
use crate::slack::copy;
use crate::slack::egress::Egress;
use crate::store::{AuditEvent, Store};
use crate::task::{Origin, Task};

/// ✅ approves and merges (Slack sends reaction names without colons).
pub const APPROVE: &str = "white_check_mark";
/// ❌ cancels a run or closes the task.
pub const CANCEL: &str = "x";
/// 🔁 reruns.
pub const RERUN: &str = "repeat";
/// ⏪ reverts a merged task.
pub const REVERT: &str = "rewind";

/// The reaction handler's handles. Cheap to clone.
#[derive(Clone)]
pub struct Reaction {
    /// Only for user-group membership (`usergroups.users.list`) of approvers, for ✅ ❌ 🔁 ⏪
    /// alike.
    pub api: WebApi,
    /// Posts and status messages.
    pub egress: Egress,
    /// Message → task; thread → revert task.
    pub bindings: Bindings,
    /// Reads the task a message is about.
    pub store: Store,
    /// Merge, close, rerun, revert.
    pub actions: Actions,
    /// Approver groups (`S…`) to resolve.
    pub settings: Arc<Settings>,
    /// Held across an approval and its answer, so answers to two ✅ at once reach the
    /// thread in merge order ("✅ Merged" before "Not merged: it is merged already."). The
    /// action has its own lock for the merge itself. A tokio mutex: held across awaits.
    pub answering: Arc<tokio::sync::Mutex<()>>,
}

impl Reaction {
    /// `user` added `reaction` to message `item_ts` in `channel`.
    pub async fn run(
        &self,
        channel: &str,
        item_ts: &str,
        user: &str,
        reaction: &str,
    ) -> Result<(), HandlerError> {
        if ![APPROVE, CANCEL, RERUN, REVERT].contains(&reaction) {
            return Ok(());
        }
        let Some(msg) = self.bindings.message(channel, item_ts)? else {
            // Not one of our reports: reactions elsewhere mean nothing.
            tracing::debug!(
                channel,
                item_ts,
                reaction,
                "reaction on a message that is not a report"
            );
            return Ok(());
        };
        let Some(task) = self.store.get_task(&msg.task_id)? else {
            return Ok(());
        };
        let (ch, thread_ts) = match &task.origin {
            Origin::Slack { channel, thread_ts } => (channel.clone(), thread_ts.clone()),
            Origin::Cli => (channel.to_string(), item_ts.to_string()),
        };
        self.egress
            .audit(
                &task.id,
                user,
                AuditEvent::SlackReaction {
                    reaction: reaction.to_string(),
                    message_ts: item_ts.to_string(),
                },
            )
            .await;
        match reaction {
            APPROVE => self.approve(&ch, &thread_ts, &task, &msg, user).await,
            CANCEL => {
                let groups = SlackGroups::new(&self.api, &self.settings);
                close(
                    &self.actions,
                    &self.egress,
                    &ch,
                    &thread_ts,
                    &task,
                    user,
                    &groups,
                )
                .await
            }
            RERUN => self.rerun(&ch, &thread_ts, &task, user).await,
            _ => self.revert(&ch, &thread_ts, &task, user).await,
        }
    }

    /// ✅: [`Actions::approve_merge`], its outcome told in the thread.
    async fn approve(
        &self,
        channel: &str,
        thread_ts: &str,
        task: &Task,
        msg: &ReportMessage,
        user: &str,
    ) -> Result<(), HandlerError> {
        let _answering = self.answering.lock().await;
        let groups = SlackGroups::new(&self.api, &self.settings);
        let key = crate::slack::serve::merged_key(&task.id);
        let text = match self
            .actions
            .approve_merge(&task.id, msg.commit.as_deref(), user, &groups)
            .await
        {
            Ok(None) => return Ok(()),
            Ok(Some(m)) => {
                let text = copy::merged(&m.task, &m.tested, &m.merged.sha, user);
                self.egress.say_once(channel, thread_ts, &key, &text).await;
                return Ok(());
            }
            // This ✅ merged it before a crash cut it off: say so now, once.
            Err(ActionError::MergeRefused(MergeRefusal::AlreadyMerged))
                if !self.egress.said(&key) && self.merged_by(&task.id, user)? =>
            {
                let stored = self
                    .store
                    .get_task(&task.id)?
                    .unwrap_or_else(|| task.clone());
                let tested = msg.commit.clone().unwrap_or_default();
                let sha = stored.merge_commit.clone().unwrap_or_default();
                let text = copy::merged(&stored, &tested, &sha, user);
                self.egress.say_once(channel, thread_ts, &key, &text).await;
                return Ok(());
            }
            Err(e) => say_error(e, "merge")?,
        };
        self.egress.say(channel, thread_ts, &text).await;
        Ok(())
    }

    /// Whether the audit log says `user` approved the merge of task `task_id`.
    fn merged_by(&self, task_id: &str, user: &str) -> Result<bool, HandlerError> {
        Ok(self
            .store
            .audit_log(Some(task_id))?
            .iter()
            .any(|r| r.action == "merged" && r.actor == user))
    }

    /// 🔁: [`Actions::rerun`]; a queued rerun gets a fresh status message.
    async fn rerun(
        &self,
        channel: &str,
        thread_ts: &str,
        task: &Task,
        user: &str,
    ) -> Result<(), HandlerError> {
        let groups = SlackGroups::new(&self.api, &self.settings);
        let text = match self.actions.rerun(task, user, &groups).await {
            Ok(RerunOutcome::Queued(t)) => {
                let n = t.current().number;
                self.egress
                    .new_status(channel, thread_ts, &t.id, n, &copy::rerun_queued(n, user))
                    .await?;
                return Ok(());
            }
            Ok(RerunOutcome::Gone) => return Ok(()),
            Ok(RerunOutcome::AlreadyQueued) => copy::RERUN_BUSY.to_string(),
            Ok(RerunOutcome::Merged) => copy::RERUN_MERGED.to_string(),
            Err(e) => say_error(e, "rerun")?,
        };
        self.egress.say(channel, thread_ts, &text).await;
        Ok(())
    }

    /// ⏪ on a merged task's report: a revert task (`git revert` of the merge, the repo's
    /// checks, then a PR), followed in the same thread. One revert per merged task.
    async fn revert(
        &self,
        channel: &str,
        thread_ts: &str,
        task: &Task,
        user: &str,
    ) -> Result<(), HandlerError> {
        let groups = SlackGroups::new(&self.api, &self.settings);
        let text = match self.actions.plan_revert(task, user, &groups).await {
            Ok(RevertOutcome::Planned(plan)) => {
                // Replies in the thread now refine the revert; bound before it queues, so
                // its first event finds the thread.
                let id = plan.revert.id.clone();
                self.bindings.bind_thread(channel, thread_ts, &id).await?;
                self.egress
                    .bind_task_thread(channel, thread_ts, &id)
                    .await?;
                // Stored and queued before the thread is told.
                let text = copy::reverting(&plan.of, &plan.merge_commit, user, &id);
                self.actions.start_revert(plan, user).await?;
                self.egress
                    .new_status(channel, thread_ts, &id, 1, &text)
                    .await?;
                return Ok(());
            }
            Ok(RevertOutcome::Gone) => return Ok(()),
            Ok(RevertOutcome::NoPullRequests) => copy::REVERT_NEEDS_PRS.to_string(),
            Ok(RevertOutcome::NotMerged(state)) => copy::revert_not_merged(state),
            Ok(RevertOutcome::Exists(id)) => copy::revert_exists(&id),
            Err(e) => say_error(e, "revert")?,
        };
        self.egress.say(channel, thread_ts, &text).await;
        Ok(())
    }
}

/// ❌ (or `@slipway cancel`): [`Actions::close`], its outcome told in the thread; `groups`
/// resolves user-group approvers.
pub async fn close(
    actions: &Actions,
    egress: &Egress,
    channel: &str,
    thread_ts: &str,
    task: &Task,
    user: &str,
    groups: &SlackGroups<'_>,
) -> Result<(), HandlerError> {
    let text = match actions.close(task, user, groups).await {
        Ok(CloseOutcome::RunCancelled) => copy::cancelling(user),
        Ok(CloseOutcome::AlreadyMerged) => copy::CLOSE_MERGED.to_string(),
        Ok(CloseOutcome::Gone) => return Ok(()),
        Ok(CloseOutcome::Closed { pr }) => copy::closed(task, user, &pr),
        Err(e) => say_error(e, "cancel")?,
    };
    egress.say(channel, thread_ts, &text).await;
    Ok(())
}

/// The words for an action's error, or the error itself when it is not for the thread.
fn say_error(e: ActionError, verb: &str) -> Result<String, HandlerError> {
    copy::action_error(&e, verb).ok_or(HandlerError::Action(e))
}
