//! Domain actions shared by every front end: merge ([`merge`]), close ([`close`]), rerun
//! ([`rerun`]) and revert ([`revert`]), plus who may merge ([`approval`]).
//!
//! Owns each action's checks, its task-state writes in the store and its audit entries, so
//! a Slack reaction, a web button and the blueprint's merge node all do the same thing.
//! Must not touch a front end: no Slack API, no HTTP, no rendering. An action returns a
//! typed outcome or an [`ActionError`]; the front end turns it into words (Slack:
//! `slack::copy`). Handles are narrow: the [`Store`], the [`Forges`], the queue through
//! [`TaskQueue`] and the config bits in [`Settings`].
#![warn(missing_docs)]

pub mod approval;
pub mod close;
pub mod deps;
pub mod merge;
pub mod rerun;
pub mod revert;

use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{Config, SlackConfig};
use crate::forge::{ForgeError, Forges};
use crate::queue::Queue;
use crate::repos::RepoConfig;
use crate::store::{AuditEvent, Store, StoreError};
use crate::task::Task;

pub use approval::ApproverGroups;
pub use merge::{MergeAuthority, MergeRefusal, merge_tested};

/// Why an action did not happen. Variants say whether anything changed.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The actor is neither the task's requester nor an approver (listed, or in a listed user
    /// group). Nothing changed and nothing was audited; the front end names the requester.
    #[error("only the requester ({requester}) or an approver may do this")]
    NotTrusted {
        /// The task's requester (a Slack user ID).
        requester: String,
    },
    /// A merge was refused before reaching the forge; audited as `merge_refused` with this
    /// text as `reason`. Nothing changed. Not retryable as is.
    #[error("{0}")]
    MergeRefused(MergeRefusal),
    /// The forge failed the merge; audited as `merge_failed`. Nothing merged. Retryable
    /// when [`ForgeError::is_outage`].
    #[error(transparent)]
    Forge(ForgeError),
    /// The store (or the queue's store) failed; the action may be half done. Logged by the
    /// front end, never shown with internals.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The queue as actions see it: enqueue and cancel, nothing about how runs execute.
/// Implemented by [`Queue`]; tests may fake it.
#[async_trait]
pub trait TaskQueue: Send + Sync {
    /// Stores `task` (state queued) and queues its current revision; returns the queue key.
    async fn submit(&self, task: &mut Task) -> Result<u64, StoreError>;
    /// Queues the task's current revision again, if its state allows
    /// ([`crate::queue::Queue::rerun`]).
    async fn rerun(&self, task_id: &str) -> Result<crate::queue::Refined, StoreError>;
    /// Whether the task has a run in progress.
    fn is_running(&self, task_id: &str) -> bool;
    /// Cancels the task's running run; false when none is running.
    fn cancel(&self, task_id: &str) -> bool;
}

#[async_trait]
impl TaskQueue for Queue {
    async fn submit(&self, task: &mut Task) -> Result<u64, StoreError> {
        Queue::submit(self, task).await
    }
    async fn rerun(&self, task_id: &str) -> Result<crate::queue::Refined, StoreError> {
        Queue::rerun(self, task_id).await
    }
    fn is_running(&self, task_id: &str) -> bool {
        Queue::is_running(self, task_id)
    }
    fn cancel(&self, task_id: &str) -> bool {
        Queue::cancel(self, task_id)
    }
}

/// The config bits actions read: `[slack]` (approvers, self-approval) and `[[repos]]`
/// (merge method, branch deletion). Built once at wiring time.
///
/// Who is an approver is one rule for every right an approver has: a user listed in
/// `[slack] approvers`, or a member of a user group (`S…`) listed there, resolved through
/// [`ApproverGroups`]. An approver approves merges ([`approval::authorize`]), refines a task
/// by replying in its thread, is trusted context in a thread, and may ❌ close, 🔁 rerun and
/// ⏪ revert ([`Settings::is_trusted`]).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `[slack]`: who is an approver (user IDs and user groups), and self-approval.
    pub slack: SlackConfig,
    /// `[[repos]]`.
    pub repos: Vec<RepoConfig>,
    /// `[budgets]`: new tasks over a daily limit are refused.
    pub budgets: crate::budget::BudgetsConfig,
}

impl Settings {
    /// The bits of `cfg` actions read.
    pub fn from_config(cfg: &Config) -> Self {
        Self {
            slack: cfg.file.slack.clone(),
            repos: cfg.file.repos.clone(),
            budgets: cfg.file.budgets,
        }
    }

    /// Whether `user` is an approver: listed in `[slack] approvers` by user ID, or a member
    /// of a user group listed there. `groups` is asked only when the ID is not listed.
    pub async fn is_approver(&self, user: &str, groups: &dyn ApproverGroups) -> bool {
        let approvers = &self.slack.approvers;
        if approval::is_approver(user, &[], approvers) {
            return true;
        }
        let theirs = groups.groups_of(user).await;
        approval::is_approver(user, &theirs, approvers)
    }

    /// Whether `user` may drive `task` (refine it by a reply, be trusted context in its
    /// thread, ❌ close, 🔁 rerun, ⏪ revert): its requester or an approver
    /// ([`Settings::is_approver`], user groups included, the same rule as for merges).
    pub async fn is_trusted(&self, user: &str, task: &Task, groups: &dyn ApproverGroups) -> bool {
        user == task.requester || self.is_approver(user, groups).await
    }

    /// The approvers among `users` (each asked once, in order; duplicates dropped): what a
    /// thread's trusted/untrusted split needs, with groups expanded.
    pub async fn approvers_among(
        &self,
        users: &[&str],
        groups: &dyn ApproverGroups,
    ) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for &u in users {
            if seen.insert(u) && self.is_approver(u, groups).await {
                out.push(u.to_string());
            }
        }
        out
    }

    /// `Err(NotTrusted)` unless [`Settings::is_trusted`].
    async fn check_trusted(
        &self,
        user: &str,
        task: &Task,
        groups: &dyn ApproverGroups,
    ) -> Result<(), ActionError> {
        if self.is_trusted(user, task, groups).await {
            Ok(())
        } else {
            Err(ActionError::NotTrusted {
                requester: task.requester.clone(),
            })
        }
    }
}

struct Inner {
    store: Store,
    forges: Forges,
    queue: Arc<dyn TaskQueue>,
    settings: Arc<Settings>,
    /// One approval-merge at a time: two ✅ at once merge once (the second sees `Merged`).
    /// A tokio mutex because it is held across the forge call.
    merging: tokio::sync::Mutex<()>,
}

/// The actions with their handles. Cheap to clone.
#[derive(Clone)]
pub struct Actions {
    inner: Arc<Inner>,
}

impl Actions {
    /// Actions over `store`, `forges` and `queue`, reading `settings`.
    pub fn new(
        store: Store,
        forges: Forges,
        queue: Arc<dyn TaskQueue>,
        settings: Arc<Settings>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                forges,
                queue,
                settings,
                merging: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The config bits the actions read.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Writes an audit entry; a failure is logged, not returned (the action itself happened).
    async fn audit(&self, task_id: &str, actor: &str, event: AuditEvent) {
        audit(&self.inner.store, task_id, None, actor, event).await;
    }
}

/// Appends an audit entry for `task_id` (and `run_id`); a store failure is logged, not
/// returned, because the audited action already happened.
async fn audit(store: &Store, task_id: &str, run_id: Option<&str>, actor: &str, event: AuditEvent) {
    let action = event.action();
    if let Err(e) = store.audit_now(Some(task_id), run_id, actor, event).await {
        tracing::error!(error = %e, action, task_id, "could not write the audit log");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{Origin, RepoRef};

    /// User groups from a table; counts the lookups.
    struct Groups {
        table: Vec<(&'static str, &'static str)>,
        asked: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl ApproverGroups for Groups {
        async fn groups_of(&self, user: &str) -> Vec<String> {
            self.asked
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.table
                .iter()
                .filter(|(_, u)| *u == user)
                .map(|(g, _)| g.to_string())
                .collect()
        }
    }

    fn settings() -> Settings {
        Settings {
            slack: SlackConfig {
                approvers: vec!["U0BOB".into(), "S0LEADS".into()],
                allow_self_approval: false,
            },
            repos: vec![],
            budgets: Default::default(),
        }
    }

    fn task() -> Task {
        let repo = RepoRef {
            name: "acme/calc".into(),
            source: "/srv/calc.git".into(),
            base: "main".into(),
            forge: Default::default(),
        };
        Task::new(repo, "U0ALICE", Origin::Cli, "fix it")
    }

    #[tokio::test]
    async fn a_member_of_an_approver_group_is_trusted_like_a_listed_approver() {
        let groups = Groups {
            table: vec![("S0LEADS", "U0CAROL"), ("S0OTHER", "U0DAVE")],
            asked: Default::default(),
        };
        let (s, t) = (settings(), task());
        assert!(s.is_trusted("U0ALICE", &t, &groups).await, "the requester");
        assert!(
            s.is_trusted("U0BOB", &t, &groups).await,
            "a listed approver"
        );
        assert_eq!(
            groups.asked.load(std::sync::atomic::Ordering::Relaxed),
            0,
            "listed people need no group lookup"
        );
        assert!(s.is_trusted("U0CAROL", &t, &groups).await, "a lead");
        assert!(
            !s.is_trusted("U0DAVE", &t, &groups).await,
            "not an approver group"
        );
        assert!(!s.is_trusted("U0EVE", &t, &groups).await);
        assert!(matches!(
            s.check_trusted("U0DAVE", &t, &groups).await,
            Err(ActionError::NotTrusted { requester }) if requester == "U0ALICE"
        ));
        assert_eq!(
            s.approvers_among(
                &["U0ALICE", "U0CAROL", "U0DAVE", "U0BOB", "U0CAROL"],
                &groups
            )
            .await,
            vec!["U0CAROL".to_string(), "U0BOB".to_string()]
        );
    }
}
