//! Closing a task (❌, or `cancel` in its thread): a running run is cancelled; otherwise
//! the task becomes `Cancelled` (queued runs of it are dropped by the dispatcher) and its
//! PR is closed. Must not word anything: the outcome is typed.
#![warn(missing_docs)]

use super::{ActionError, Actions, ApproverGroups};
use crate::forge::ForgeError;
use crate::store::{AuditEvent, TaskTxn};
use crate::task::{Task, TaskState};

/// What closing did.
#[derive(Debug)]
pub enum CloseOutcome {
    /// A run was in progress and is being cancelled (audited `cancel_requested`); its
    /// sandbox stops now. The task's state is the run's to write.
    RunCancelled,
    /// The task is merged (or a merge of it is in flight): nothing was changed.
    AlreadyMerged,
    /// The task is no longer stored: nothing was changed.
    Gone,
    /// The task is `Cancelled` in the store (audited `closed {"pr_closed", "error"}`).
    /// `pr` is the forge's answer: the URL of the PR it closed, `None` when there was none
    /// (or the forge has no PRs), or why it could not close it.
    Closed {
        /// The forge's answer to closing the PR.
        pr: Result<Option<String>, ForgeError>,
    },
}

impl Actions {
    /// `user` closes `task` (as the front end last read it). Errors: `NotTrusted` (nothing
    /// changed; `groups` resolves user-group approvers) or `Store`.
    pub async fn close(
        &self,
        task: &Task,
        user: &str,
        groups: &dyn ApproverGroups,
    ) -> Result<CloseOutcome, ActionError> {
        self.inner
            .settings
            .check_trusted(user, task, groups)
            .await?;
        let queue = &self.inner.queue;
        if queue.cancel(&task.id) {
            self.audit(&task.id, user, AuditEvent::CancelRequested {})
                .await;
            return Ok(CloseOutcome::RunCancelled);
        }
        // Through the state machine: a task merged (or merging) since the caller read it
        // stays merged.
        match self
            .inner
            .store
            .transition(&task.id, TaskState::Cancelled, |_| {})
            .await?
        {
            TaskTxn::Done { .. } => {}
            TaskTxn::Refused(_) => return Ok(CloseOutcome::AlreadyMerged),
            TaskTxn::Missing | TaskTxn::Duplicate => return Ok(CloseOutcome::Gone),
        }
        // A run dispatched between the first check and the state change is stopped too.
        queue.cancel(&task.id);
        let pr = match self.inner.forges.of(task) {
            Ok(f) => f.close(task, user).await,
            Err(e) => Err(e),
        };
        self.audit(
            &task.id,
            user,
            AuditEvent::Closed {
                pr_closed: pr.as_ref().ok().cloned().flatten(),
                error: pr.as_ref().err().map(|e| e.to_string()),
            },
        )
        .await;
        Ok(CloseOutcome::Closed { pr })
    }
}
