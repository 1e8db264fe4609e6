//! A merge's record: the intent undone when the forge did not merge, the merge recorded
//! when it did, and [`settle_merges`], which asks the forge about every task a stop left
//! `Merging`. Shared by [`super::merge_tested`] and the restart.

use super::{MergeAuthority, merge_request};
use crate::actions::{ActionError, audit};
use crate::forge::{MergeRequest, Merged};
use crate::report::Decision;
use crate::repos::RepoConfig;
use crate::store::{AuditEvent, Store, TaskTxn};
use crate::task::{MergeIntent, Task, TaskState, now_ms};

/// Back to the state before the intent (the forge did not merge).
pub(super) async fn undo_intent(store: &Store, task_id: &str) -> Result<(), ActionError> {
    store
        .transact_task(task_id, None, |t| {
            let Some(i) = t.merging.take().filter(|_| t.state == TaskState::Merging) else {
                return Err(());
            };
            t.state = i.from;
            t.updated_ms = now_ms();
            Ok(None)
        })
        .await?;
    Ok(())
}

/// Records a merge the forge made: `Merged`, the merge commit, no intent; then the audit
/// entry of `authority`.
pub(super) async fn record_merge(
    store: &Store,
    task: &Task,
    merged: &Merged,
    req: &MergeRequest<'_>,
    authority: MergeAuthority<'_>,
) -> Result<(), ActionError> {
    // The forge merged: that is the truth, whatever the stored state says now.
    let recorded = store
        .transact_task(&task.id, None, |t| {
            if t.state == TaskState::Merged {
                return Err(t.state);
            }
            if t.state != TaskState::Merging {
                tracing::error!(task_id = t.id, state = ?t.state, "the forge merged a task that was not merging; recording the merge");
            }
            t.state = TaskState::Merged;
            t.merge_commit = Some(merged.sha.clone());
            t.merged_commits = merged.commits;
            t.merging = None;
            t.updated_ms = now_ms();
            Ok(None)
        })
        .await?;
    if matches!(recorded, TaskTxn::Refused(_)) {
        return Ok(());
    }
    let event = match authority {
        MergeAuthority::Approval { approver } => AuditEvent::Merged {
            tested_sha: req.tested.to_string(),
            merge_commit: merged.sha.clone(),
            requester: task.requester.clone(),
            approver: approver.to_string(),
        },
        MergeAuthority::AutoMerge { .. } => AuditEvent::AutoMerged {
            decision: Decision::AutoMerge,
            tested_sha: req.tested.to_string(),
            merge_commit: merged.sha.clone(),
            method: req.method,
        },
    };
    audit(
        store,
        &task.id,
        authority.run_id(),
        authority.actor(),
        event,
    )
    .await;
    Ok(())
}

/// A merge [`settle_merges`] found done after a restart.
#[derive(Debug, Clone)]
pub struct SettledMerge {
    /// The task, as stored before it was settled.
    pub task: Task,
    /// Its intent: who asked, and the tested commit.
    pub intent: MergeIntent,
    /// What the forge did.
    pub merged: Merged,
}

/// After a restart: every task left `Merging` (slipway stopped between the intent and
/// recording the outcome) is settled by asking its forge. Merged at the tested commit: it
/// is recorded (audited as the intent's actor) and returned, so the front end can tell the
/// thread. Not merged: the task goes back to its earlier state. The forge cannot tell or
/// fails: the task stays `Merging` (✅ answers "in progress") until the next start.
pub async fn settle_merges(
    store: &Store,
    forges: &crate::forge::Forges,
    repos: &[RepoConfig],
) -> Result<Vec<SettledMerge>, ActionError> {
    let mut settled = Vec::new();
    for task in store.list_tasks()? {
        let (TaskState::Merging, Some(intent)) = (task.state, task.merging.clone()) else {
            continue;
        };
        let Ok(forge) = forges.of(&task) else {
            continue;
        };
        match forge.merged_at(&task, &intent.tested).await {
            Ok(Some(merged)) => {
                let req = merge_request(repos, &task, &intent.tested, &intent.actor);
                let authority = match &intent.run_id {
                    Some(run_id) => MergeAuthority::AutoMerge { run_id },
                    None => MergeAuthority::Approval {
                        approver: &intent.actor,
                    },
                };
                record_merge(store, &task, &merged, &req, authority).await?;
                settled.push(SettledMerge {
                    task: task.clone(),
                    intent: intent.clone(),
                    merged,
                });
            }
            Ok(None) => undo_intent(store, &task.id).await?,
            Err(e) => {
                tracing::warn!(error = %e, task_id = task.id, "cannot tell whether an interrupted merge happened; the task stays merging");
            }
        }
    }
    Ok(settled)
}
