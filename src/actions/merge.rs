//! Merging a tested change: [`merge_tested`] (the forge merge, the `Merged` state and the
//! audit entry; shared by the ✅ reaction and the blueprint's auto-merge node) and
//! [`Actions::approve_merge`] (the checks a person's approval must pass first: a finished,
//! latest, tested report; [`authorize`]; one merge at a time).
//!
//! Must not say anything to anyone: refusals and failures come back typed
//! ([`MergeRefusal`], [`ActionError`]) for the front end to word.
#![warn(missing_docs)]

use super::approval::{Approval, Authors, authorize};
use super::{ActionError, Actions, audit};
use crate::forge::{Forge, ForgeError, MergeRequest, Merged};
use crate::report::RunReport;
use crate::repos::MergeMethod;
use crate::repos::RepoConfig;
use crate::store::{AuditEvent, RunState, Store, TaskTxn};
use crate::task::{MergeIntent, Task, TaskState, now_ms};

/// Why an approval did not merge. The `Display` text is the reason (audited as
/// `merge_refused {"reason"}` and told to the approver after "Not merged: ").
#[derive(Debug, thiserror::Error)]
pub enum MergeRefusal {
    /// The task is merged already.
    #[error("it is merged already.")]
    AlreadyMerged,
    /// The task was closed (❌).
    #[error("the task was closed; react 🔁 to run it again first.")]
    Closed,
    /// The last run failed: nothing tested to merge.
    #[error("the last run failed, so there is no tested change; reply in the thread to try again.")]
    LastRunFailed,
    /// Another merge of the task is in flight (or was, when slipway stopped: a restart
    /// asks the forge and records it).
    #[error("a merge of this task is in progress already.")]
    MergeInProgress,
    /// A run of the task is queued or running.
    #[error("a run of this task is queued or in progress; react ✅ on its report when it is done.")]
    RunInProgress,
    /// No finished run reported a tested commit.
    #[error("there is no tested commit to merge; reply in the thread to try again.")]
    NoTestedCommit,
    /// The approval was given on a message without a tested commit (a status message).
    #[error("react ✅ on the report (the message with the gates), not on this one.")]
    NotAReport,
    /// The approval names a commit or revision that is no longer the newest.
    #[error("this report is not the latest one; react ✅ on the newest report.")]
    NotLatest,
    /// [`authorize`] said no; its reason.
    #[error("{0}")]
    NotAuthorized(String),
    /// [`authorize`] said no because the approver wrote revision `revision` of the change
    /// (a merge includes every revision) and `[slack] allow_self_approval` is off.
    #[error("{approver} wrote revision {revision} of this change, so cannot approve it.")]
    OwnRevision {
        /// The approver's user ID.
        approver: String,
        /// The newest revision they wrote.
        revision: u32,
    },
    /// The task's forge is not configured.
    #[error("{0}")]
    NoForge(ForgeError),
}

/// Who authorised a merge; decides the audit entry [`merge_tested`] writes.
#[derive(Debug, Clone, Copy)]
pub enum MergeAuthority<'a> {
    /// A person's approval. Audit: action `merged`, actor `approver`, no run id, detail
    /// `{"tested", "merge_commit", "requester", "approver"}`.
    Approval {
        /// The approver's user ID.
        approver: &'a str,
    },
    /// The `[policy] auto_merge` decision of run `run_id`. Audit: action `merge`, actor
    /// `slipway`, run id `run_id`, detail `{"decision": "auto_merge", "tested",
    /// "merge_commit", "method"}`.
    AutoMerge {
        /// The run whose decision merges.
        run_id: &'a str,
    },
}

impl MergeAuthority<'_> {
    fn actor(&self) -> &str {
        match self {
            Self::Approval { approver } => approver,
            Self::AutoMerge { .. } => "slipway",
        }
    }
    fn run_id(&self) -> Option<&str> {
        match self {
            Self::Approval { .. } => None,
            Self::AutoMerge { run_id } => Some(run_id),
        }
    }
}

pub use super::approval::ApproverGroups;

/// The merge method of repo `name` in `repos`, else the default (squash).
pub fn merge_method(repos: &[RepoConfig], name: &str) -> MergeMethod {
    repos
        .iter()
        .find(|r| r.name == name)
        .map(|r| r.merge_method)
        .unwrap_or_default()
}

/// The request that merges `task` at `tested`, approved by `approver` (a user ID, or
/// `slipway ([policy] auto_merge)`): method and branch deletion from `[[repos]]` (branch
/// deleted unless the repo says `delete_branch = false`), the thread URL from the task.
pub fn merge_request<'a>(
    repos: &[RepoConfig],
    task: &'a Task,
    tested: &'a str,
    approver: &'a str,
) -> MergeRequest<'a> {
    MergeRequest {
        tested,
        method: merge_method(repos, &task.repo.name),
        approver,
        thread_url: task.thread_url.as_deref(),
        delete_branch: repos
            .iter()
            .find(|r| r.name == task.repo.name)
            .is_none_or(|r| r.delete_branch),
    }
}

/// Merges `task`'s branch at `req.tested` through `forge`, then records it. Durable: the
/// intent is stored first (state `Merging`, [`crate::task::MergeIntent`]), so a crash or
/// an answer lost in transit is settled later by asking the forge ([`settle_merges`]).
///
/// On success: the stored task gets `state = Merged`, `merge_commit = merged.sha`,
/// `merged_commits = merged.commits`, no intent; the audit entry of `authority` is written
/// (see [`MergeAuthority`]); returns the forge's [`Merged`]. The caller's `task` value is
/// not changed.
///
/// On a forge error the forge is asked whether the merge happened anyway (a 502 after
/// GitHub merged): if so it is recorded as a success; if not, the task goes back to the
/// state it had, audit `merge_failed {"error"}`, `Err(ActionError::Forge(e))`. A task the
/// state machine does not let merge (merged, merging, closed, running a revision) is
/// `Err(MergeRefused(_))` and the forge is not asked.
///
/// Performs no authority checks (see [`Actions::approve_merge`] and the blueprint's
/// decision) and says nothing to anyone. Audit write failures are logged, not returned.
pub async fn merge_tested(
    forge: &dyn Forge,
    store: &Store,
    task: &Task,
    req: &MergeRequest<'_>,
    authority: MergeAuthority<'_>,
) -> Result<Merged, ActionError> {
    let (actor, run_id) = (authority.actor(), authority.run_id());
    let approval = matches!(authority, MergeAuthority::Approval { .. });
    let intent = |t: &mut Task| {
        // A person approves only a finished run's change; only the run itself (auto-merge)
        // merges from Running.
        if !t.state.can_become(TaskState::Merging)
            || (approval && !matches!(t.state, TaskState::Ready | TaskState::Halted))
        {
            return Err(t.state);
        }
        t.merging = Some(MergeIntent {
            tested: req.tested.to_string(),
            from: t.state,
            actor: actor.to_string(),
            run_id: run_id.map(str::to_owned),
            at_ms: now_ms(),
        });
        t.state = TaskState::Merging;
        t.updated_ms = now_ms();
        Ok(None)
    };
    match store.transact_task(&task.id, None, intent).await? {
        TaskTxn::Done { .. } => {}
        TaskTxn::Refused(state) => return Err(ActionError::MergeRefused(refusal_for(state))),
        TaskTxn::Missing | TaskTxn::Duplicate => {
            return Err(ActionError::MergeRefused(MergeRefusal::NoTestedCommit));
        }
    }
    let merged = match forge.merge(task, req).await {
        Ok(m) => m,
        Err(e) => match forge.merged_at(task, req.tested).await {
            Ok(Some(m)) => {
                tracing::warn!(error = %e, task_id = task.id, "the merge call failed, but the forge merged the tested commit");
                m
            }
            // Known not merged: back to where it was.
            Ok(None) | Err(ForgeError::Unsupported(_)) => {
                undo_intent(store, &task.id).await?;
                let event = AuditEvent::MergeFailed {
                    error: e.to_string(),
                };
                audit(store, &task.id, run_id, actor, event).await;
                return Err(ActionError::Forge(e));
            }
            // Unknown (the forge cannot be read either): the intent stays, and
            // `settle_merges` asks again later; until then ✅ answers "in progress".
            Err(lookup) => {
                tracing::warn!(error = %e, lookup = %lookup, task_id = task.id, "cannot tell whether the merge happened; it is settled later");
                let event = AuditEvent::MergeFailed {
                    error: format!("{e} (whether it merged is checked again shortly)"),
                };
                audit(store, &task.id, run_id, actor, event).await;
                return Err(ActionError::Forge(e));
            }
        },
    };
    record_merge(store, task, &merged, req, authority).await?;
    Ok(merged)
}

/// The refusal for a task in `state` that the state machine does not let merge.
fn refusal_for(state: TaskState) -> MergeRefusal {
    match state {
        TaskState::Merged => MergeRefusal::AlreadyMerged,
        TaskState::Merging => MergeRefusal::MergeInProgress,
        TaskState::Cancelled => MergeRefusal::Closed,
        TaskState::Failed => MergeRefusal::LastRunFailed,
        _ => MergeRefusal::RunInProgress,
    }
}

mod settle;
pub use settle::{SettledMerge, settle_merges};
use settle::{record_merge, undo_intent};

/// A merge a person approved.
#[derive(Debug, Clone)]
pub struct ApprovedMerge {
    /// The task as read just before the merge.
    pub task: Task,
    /// The commit that was tested and merged.
    pub tested: String,
    /// What the forge did.
    pub merged: Merged,
}

impl Actions {
    /// A person's approval (✅ on a report) of task `task_id`: merges when every check
    /// passes, one approval-merge at a time, on a fresh read of the task.
    ///
    /// `reacted_commit` is the tested commit of the message approved (`None` for a status
    /// message); `approver` a user ID; `groups` resolves the approver's user groups (only
    /// asked once the task, report and message checks passed).
    ///
    /// Returns `Ok(None)` when the task is not stored (nothing said, nothing audited),
    /// `Ok(Some(_))` after [`merge_tested`] with [`MergeAuthority::Approval`],
    /// `Err(MergeRefused(_))` (audited `merge_refused {"reason"}`), `Err(Forge(_))` (audited
    /// `merge_failed`) or `Err(Store(_))`.
    pub async fn approve_merge(
        &self,
        task_id: &str,
        reacted_commit: Option<&str>,
        approver: &str,
        groups: &dyn ApproverGroups,
    ) -> Result<Option<ApprovedMerge>, ActionError> {
        let _merging = self.inner.merging.lock().await;
        let Some(task) = self.inner.store.get_task(task_id)? else {
            return Ok(None);
        };
        match self
            .check_approval(&task, reacted_commit, approver, groups)
            .await?
        {
            Err(refusal) => {
                self.audit(
                    task_id,
                    approver,
                    AuditEvent::MergeRefused {
                        reason: refusal.to_string(),
                    },
                )
                .await;
                Err(ActionError::MergeRefused(refusal))
            }
            Ok((forge, tested)) => {
                let req = merge_request(&self.inner.settings.repos, &task, &tested, approver);
                let authority = MergeAuthority::Approval { approver };
                let merged =
                    merge_tested(forge.as_ref(), &self.inner.store, &task, &req, authority).await?;
                Ok(Some(ApprovedMerge {
                    task,
                    tested,
                    merged,
                }))
            }
        }
    }

    /// The approval checks, in the order their refusals are told: task state, a tested
    /// commit, the message approved, the newest report, [`authorize`] (over every revision's
    /// author, see [`Authors::of`]), a forge.
    async fn check_approval(
        &self,
        task: &Task,
        reacted_commit: Option<&str>,
        approver: &str,
        groups: &dyn ApproverGroups,
    ) -> Result<Result<(std::sync::Arc<dyn Forge>, String), MergeRefusal>, ActionError> {
        let store = &self.inner.store;
        let queued = store.queued()?.iter().any(|(_, i)| i.task_id == task.id);
        let blocked = match task.state {
            TaskState::Merged => Some(MergeRefusal::AlreadyMerged),
            TaskState::Merging => Some(MergeRefusal::MergeInProgress),
            TaskState::Cancelled => Some(MergeRefusal::Closed),
            TaskState::Failed => Some(MergeRefusal::LastRunFailed),
            _ if queued || self.inner.queue.is_running(&task.id) => {
                Some(MergeRefusal::RunInProgress)
            }
            TaskState::Ready | TaskState::Halted => None,
            TaskState::Queued | TaskState::Running => Some(MergeRefusal::RunInProgress),
        };
        if let Some(r) = blocked {
            return Ok(Err(r));
        }
        let latest = latest_report(store, task)?;
        let (Some(report), Some(commit)) = (
            latest.as_ref(),
            latest.as_ref().and_then(|r| r.commit.clone()),
        ) else {
            return Ok(Err(MergeRefusal::NoTestedCommit));
        };
        if reacted_commit.is_none() {
            return Ok(Err(MergeRefusal::NotAReport));
        }
        if reacted_commit != Some(commit.as_str()) || report.revision != task.current().number {
            return Ok(Err(MergeRefusal::NotLatest));
        }
        let groups = groups.groups_of(approver).await;
        let settings = &self.inner.settings;
        match authorize(
            approver,
            &groups,
            Authors::of(task),
            &settings.slack,
            report.decision,
        ) {
            Approval::Merge => {}
            Approval::Refuse(why) => return Ok(Err(MergeRefusal::NotAuthorized(why))),
            Approval::OwnRevision { revision } => {
                return Ok(Err(MergeRefusal::OwnRevision {
                    approver: approver.to_string(),
                    revision,
                }));
            }
        }
        match self.inner.forges.of(task) {
            Ok(f) => Ok(Ok((f.clone(), commit))),
            Err(e) => Ok(Err(MergeRefusal::NoForge(e))),
        }
    }
}

/// The report of the task's newest finished run.
fn latest_report(store: &Store, task: &Task) -> Result<Option<RunReport>, ActionError> {
    for run_id in task.runs.iter().rev() {
        if let Some(run) = store.get_run(run_id)?
            && run.state != RunState::Running
        {
            return Ok(run.report);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use serde_json::json;

    use crate::forge::{Publication, PullRequestContent};
    use crate::task::{Origin, RepoRef};
    use crate::workspace::Worktree;

    /// A forge whose merge answers `result`.
    struct FakeForge {
        result: Result<Merged, &'static str>,
    }

    #[async_trait]
    impl Forge for FakeForge {
        fn kind(&self) -> &'static str {
            "fake"
        }
        fn has_pull_requests(&self) -> bool {
            true
        }
        async fn clone_url(&self, repo: &crate::task::RepoRef) -> Result<String, ForgeError> {
            Ok(repo.source.clone())
        }
        async fn publish(
            &self,
            _wt: &Worktree,
            _task: &Task,
            _content: &PullRequestContent,
        ) -> Result<Publication, ForgeError> {
            Err(ForgeError::Unsupported("publish"))
        }
        async fn merge(&self, _task: &Task, _req: &MergeRequest<'_>) -> Result<Merged, ForgeError> {
            self.result.clone().map_err(ForgeError::Unsupported)
        }
    }

    fn task() -> Task {
        let repo = RepoRef {
            name: "acme/calc".into(),
            source: "/srv/calc.git".into(),
            base: "main".into(),
            forge: Default::default(),
        };
        let mut t = Task::new(repo, "U0ALICE", Origin::Cli, "fix it");
        t.state = TaskState::Ready;
        t
    }

    /// A store holding `task()`, and a forge whose merge answers `result`.
    async fn stored(
        result: Result<Merged, &'static str>,
    ) -> (tempfile::TempDir, Store, Task, FakeForge) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let task = task();
        store.put_task(&task).await.unwrap();
        (dir, store, task, FakeForge { result })
    }

    fn merged() -> Merged {
        Merged {
            sha: "b".repeat(40),
            commits: 2,
        }
    }

    #[tokio::test]
    async fn an_approved_merge_stores_merged_and_audits_merged_by_the_approver() {
        let (_dir, store, task, forge) = stored(Ok(merged())).await;
        let tested = "a".repeat(40);
        let req = merge_request(&[], &task, &tested, "U0BOB");
        let authority = MergeAuthority::Approval { approver: "U0BOB" };
        let m = merge_tested(&forge, &store, &task, &req, authority)
            .await
            .unwrap();
        assert_eq!(m, merged());
        let stored = store.get_task(&task.id).unwrap().unwrap();
        assert_eq!(stored.state, TaskState::Merged);
        assert_eq!(stored.merge_commit.as_deref(), Some(m.sha.as_str()));
        assert_eq!(stored.merged_commits, 2);
        let audit = store.audit_log(Some(&task.id)).unwrap();
        let e = audit.iter().find(|e| e.action == "merged").unwrap();
        assert_eq!(e.actor, "U0BOB");
        assert_eq!(e.run_id, None);
        assert_eq!(
            e.detail,
            json!({"tested": tested, "merge_commit": m.sha, "requester": "U0ALICE", "approver": "U0BOB"})
        );
    }

    #[tokio::test]
    async fn an_auto_merge_audits_merge_with_its_run_and_method() {
        let (_dir, store, task, forge) = stored(Ok(merged())).await;
        let tested = "a".repeat(40);
        let req = merge_request(&[], &task, &tested, "slipway ([policy] auto_merge)");
        let authority = MergeAuthority::AutoMerge { run_id: "r1" };
        merge_tested(&forge, &store, &task, &req, authority)
            .await
            .unwrap();
        let audit = store.audit_log(Some(&task.id)).unwrap();
        let e = audit.iter().find(|e| e.action == "merge").unwrap();
        assert_eq!(
            (e.actor.as_str(), e.run_id.as_deref()),
            ("slipway", Some("r1"))
        );
        assert_eq!(
            e.detail,
            json!({"decision": "auto_merge", "tested": tested, "merge_commit": "b".repeat(40), "method": req.method})
        );
        assert_eq!(
            store.get_task(&task.id).unwrap().unwrap().state,
            TaskState::Merged
        );
    }

    #[tokio::test]
    async fn a_failed_merge_changes_nothing_and_audits_merge_failed() {
        let (_dir, store, task, forge) = stored(Err("no merge today")).await;
        let req = merge_request(&[], &task, "abc", "U0BOB");
        let authority = MergeAuthority::Approval { approver: "U0BOB" };
        let err = merge_tested(&forge, &store, &task, &req, authority)
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            ActionError::Forge(ForgeError::Unsupported(_))
        ));
        assert_eq!(
            store.get_task(&task.id).unwrap().unwrap().state,
            TaskState::Ready
        );
        let audit = store.audit_log(Some(&task.id)).unwrap();
        let e = audit.iter().find(|e| e.action == "merge_failed").unwrap();
        assert_eq!(e.detail, json!({"error": "no merge today"}));
    }

    #[tokio::test]
    async fn a_secret_in_a_forge_error_is_redacted_from_the_audit_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path())
            .unwrap()
            .with_redaction(vec!["merge".to_string()]);
        let task = task();
        store.put_task(&task).await.unwrap();
        // The fake's error text, "no merge today", holds the "secret" `merge`.
        let forge = FakeForge {
            result: Err("no merge today"),
        };
        let req = merge_request(&[], &task, "abc", "slipway ([policy] auto_merge)");
        let authority = MergeAuthority::AutoMerge { run_id: "r1" };
        merge_tested(&forge, &store, &task, &req, authority)
            .await
            .unwrap_err();
        let audit = store.audit_log(Some(&task.id)).unwrap();
        let e = audit.iter().find(|e| e.action == "merge_failed").unwrap();
        assert_eq!(e.detail, json!({"error": "no <redacted> today"}));
    }

    #[test]
    fn a_merge_request_takes_method_and_branch_deletion_from_the_repo() {
        let task = task();
        let repo: RepoConfig = toml::from_str(
            "name = \"acme/calc\"\nmerge_method = \"rebase\"\ndelete_branch = false",
        )
        .unwrap();
        let req = merge_request(std::slice::from_ref(&repo), &task, "abc", "U0BOB");
        assert_eq!(req.method, MergeMethod::Rebase);
        assert!(!req.delete_branch);
        let req = merge_request(&[], &task, "abc", "U0BOB");
        assert_eq!(req.method, MergeMethod::default());
        assert!(req.delete_branch);
    }
}
