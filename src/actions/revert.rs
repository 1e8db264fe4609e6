//! Reverting a merged task (⏪): a new task whose run is a `git revert` of the merge, the
//! repo's checks, then a PR. One revert per merged task, remembered under the store key
//! `slack/revert/<task id>` (the name predates other front ends and is kept).
//!
//! Two steps, so the front end can bind its thread before the revert's first event:
//! [`Actions::plan_revert`] checks and reserves, [`Actions::start_revert`] queues and audits.
//! Must not word anything: the outcome is typed.
#![warn(missing_docs)]

use super::{ActionError, Actions, ApproverGroups};
use crate::store::AuditEvent;
use crate::task::{RevertOf, Task, TaskState};

/// What asking for a revert found.
#[derive(Debug)]
pub enum RevertOutcome {
    /// Reserved: the revert task exists (not yet stored or queued); pass it to
    /// [`Actions::start_revert`].
    Planned(Box<RevertPlan>),
    /// The task's forge has no pull requests (the local forge): nothing changed.
    NoPullRequests,
    /// The task is not merged (its state is given): nothing changed.
    NotMerged(TaskState),
    /// A revert of this task was asked for before (its task ID): nothing changed.
    Exists(String),
    /// The task is no longer stored: nothing changed.
    Gone,
}

/// A reserved revert.
#[derive(Debug, Clone)]
pub struct RevertPlan {
    /// The merged task, as stored.
    pub of: Task,
    /// The merge commit to revert.
    pub merge_commit: String,
    /// The revert task: same repo, origin and thread URL; requested by the asker.
    pub revert: Task,
}

fn revert_key(task_id: &str) -> String {
    format!("slack/revert/{task_id}")
}

impl Actions {
    /// `user` asks to revert `task` (as the front end last read it; it is read again).
    /// On `Planned`, the reservation `slack/revert/<id>` is stored. Errors: `NotTrusted`
    /// (nothing changed; `groups` resolves user-group approvers) or `Store`.
    pub async fn plan_revert(
        &self,
        task: &Task,
        user: &str,
        groups: &dyn ApproverGroups,
    ) -> Result<RevertOutcome, ActionError> {
        self.inner
            .settings
            .check_trusted(user, task, groups)
            .await?;
        let has_prs = self
            .inner
            .forges
            .of(task)
            .is_ok_and(|f| f.has_pull_requests());
        if !has_prs {
            return Ok(RevertOutcome::NoPullRequests);
        }
        let store = &self.inner.store;
        let Some(task) = store.get_task(&task.id)? else {
            return Ok(RevertOutcome::Gone);
        };
        let (TaskState::Merged, Some(merge_commit)) = (task.state, task.merge_commit.clone())
        else {
            return Ok(RevertOutcome::NotMerged(task.state));
        };
        let key = revert_key(&task.id);
        let instruction = format!("Revert \"{}\"", task.title());
        let mut revert = Task::new(task.repo.clone(), user, task.origin.clone(), &instruction);
        revert.thread_url = task.thread_url.clone();
        revert.revert_of = Some(RevertOf {
            task_id: task.id.clone(),
            pr_url: task.pr_url.clone(),
            merge_commit: merge_commit.clone(),
            commits: task.merged_commits.max(1),
        });
        // Claimed atomically: of two ⏪ at once, one plans the revert, the other is told.
        if let Some(existing) = store.claim_binding(&key, &revert.id).await? {
            if store.get_task(&existing)?.is_some() {
                return Ok(RevertOutcome::Exists(existing));
            }
            // Reserved by a ⏪ that was cut off (a crash) before it stored the revert: this
            // one finishes it, under the reserved id.
            revert.branch = crate::task::branch_name(&existing, &instruction);
            revert.id = existing;
        }
        Ok(RevertOutcome::Planned(Box::new(RevertPlan {
            of: task,
            merge_commit,
            revert,
        })))
    }

    /// Stores and queues a planned revert, then audits `revert_requested {"revert_task",
    /// "merge_commit"}` on the merged task. Returns the revert task as queued. Errors:
    /// `Store` (the reservation stays; the revert did not queue).
    pub async fn start_revert(
        &self,
        plan: Box<RevertPlan>,
        user: &str,
    ) -> Result<Task, ActionError> {
        let RevertPlan {
            of,
            merge_commit,
            mut revert,
        } = *plan;
        self.inner.queue.submit(&mut revert).await?;
        self.audit(
            &of.id,
            user,
            AuditEvent::RevertRequested {
                revert_task: revert.id.clone(),
                merge_commit,
            },
        )
        .await;
        Ok(revert)
    }
}
