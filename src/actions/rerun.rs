//! Rerunning a task (🔁): its current revision is queued again. Must not word anything:
//! the outcome is typed.
#![warn(missing_docs)]

use super::{ActionError, Actions, ApproverGroups};
use crate::store::AuditEvent;
use crate::task::{Task, TaskState};

/// What a rerun did.
#[derive(Debug)]
pub enum RerunOutcome {
    /// Queued again (audited `rerun {"revision"}`); the task as stored now.
    Queued(Box<Task>),
    /// A run of the task is queued or running already: nothing changed.
    AlreadyQueued,
    /// The task is merged: nothing changed.
    Merged,
    /// The task is no longer stored: nothing changed.
    Gone,
}

impl Actions {
    /// `user` reruns `task` (as the front end last read it). Errors: `NotTrusted` (nothing
    /// changed; `groups` resolves user-group approvers) or `Store`.
    pub async fn rerun(
        &self,
        task: &Task,
        user: &str,
        groups: &dyn ApproverGroups,
    ) -> Result<RerunOutcome, ActionError> {
        self.inner
            .settings
            .check_trusted(user, task, groups)
            .await?;
        let queue = &self.inner.queue;
        if queue.is_running(&task.id) || task.state == TaskState::Queued {
            return Ok(RerunOutcome::AlreadyQueued);
        }
        if task.state == TaskState::Merged {
            return Ok(RerunOutcome::Merged);
        }
        let Some(t) = queue.rerun(&task.id).await? else {
            return Ok(RerunOutcome::Gone);
        };
        self.audit(
            &t.id,
            user,
            AuditEvent::Rerun {
                revision: t.current().number,
            },
        )
        .await;
        Ok(RerunOutcome::Queued(Box::new(t)))
    }
}
