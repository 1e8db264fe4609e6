//! Rerunning a task (🔁): its current revision is queued again. Must not word anything:
//! the outcome is typed.
#![warn(missing_docs)]

use super::{ActionError, Actions, ApproverGroups};
use crate::queue::Refined;
use crate::store::AuditEvent;
use crate::task::{Task, TaskState};

/// What a rerun did.
#[derive(Debug)]
pub enum RerunOutcome {
    /// Queued again (audited `rerun {"revision"}`); the task as stored now.
    Queued(Box<Task>),
    /// A run of the task is queued or running already: nothing changed.
    AlreadyQueued,
    /// The task is merged (or merging): nothing changed.
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
        let t = match self.inner.queue.rerun(&task.id).await? {
            Refined::Queued(t) => *t,
            Refined::Refused(TaskState::Merged | TaskState::Merging) => {
                return Ok(RerunOutcome::Merged);
            }
            Refined::Refused(_) | Refined::Duplicate => return Ok(RerunOutcome::AlreadyQueued),
            Refined::Missing => return Ok(RerunOutcome::Gone),
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
