//! Starting a dependency update (a Slack request, `slipway run --blueprint
//! dependency_update`, a schedule): the request is planned against the base commit first,
//! so it becomes **one task per group** (one branch, one PR each), and a group that already
//! has an open task is rerun there instead of opening twice. Must not word anything: front
//! ends turn [`Started`] into words.
#![warn(missing_docs)]

use crate::deps::advisory::{self, AdvisoryError};
use crate::deps::lookup::{Lookup, PlanError, plan_tree};
use crate::deps::plan::Plan;
use crate::deps::{AdvisoryInput, DepsRequest, Group, UpdateType};
use crate::forge::{ForgeError, Forges};
use crate::store::{Store, StoreError};
use crate::task::{BlueprintId, Origin, RepoRef, Task, TaskState};
use crate::workspace::{WorkspaceError, Workspaces};

/// Update PRs one request opens at most (Renovate's `prConcurrentLimit` default is 10 too).
pub const MAX_GROUPS: usize = 10;

/// Why a dependency update could not be planned. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum DepsStartError {
    /// The repo's base could not be fetched.
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    /// The forge could not be asked (its clone URL, or the advisory).
    #[error(transparent)]
    Forge(#[from] ForgeError),
    /// The advisory cannot be used.
    #[error(transparent)]
    Advisory(#[from] AdvisoryError),
    /// A manifest, `renovate.json` or a registry stopped the plan.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A group and the task that carries it.
#[derive(Debug, Clone)]
pub enum GroupTask {
    /// A new task (not stored yet): the caller stores, binds and queues it.
    New(Box<Task>),
    /// The group's open task: the caller reruns it in place (same branch, same PR).
    Open {
        /// The stored task.
        task: Box<Task>,
        /// The group as planned now.
        group: Group,
    },
}

/// What a request turned into.
#[derive(Debug, Clone)]
pub struct Started {
    /// One entry per group, in the plan's order.
    pub groups: Vec<GroupTask>,
    /// The plan (held back updates and warnings included).
    pub plan: Plan,
}

/// Plans dependency updates and makes their tasks. Cheap to clone.
#[derive(Clone)]
pub struct DepsPlanner {
    /// Mirrors and work trees (a throwaway tree of the base is planned on).
    pub workspaces: Workspaces,
    /// Clone URLs and advisories.
    pub forges: Forges,
    /// Open tasks of a group.
    pub store: Store,
    /// Registries and the release-age cooldown.
    pub lookup: Lookup,
}

impl DepsPlanner {
    /// Plans `request` on `repo`'s base and returns one task per group. A GHSA advisory is
    /// looked up on the repo's forge first and each affected package tried in turn.
    pub async fn start(
        &self,
        repo: &RepoRef,
        requester: &str,
        origin: &Origin,
        request: &DepsRequest,
    ) -> Result<Started, DepsStartError> {
        let forge = self.forges.get(repo.forge)?;
        let resolved = RepoRef {
            source: forge.clone_url(repo).await?,
            ..repo.clone()
        };
        let id = crate::task::new_id();
        let wt = self
            .workspaces
            .prepare(
                &resolved,
                &format!("slipway/plan-{id}"),
                &format!("plan-{id}"),
                1,
            )
            .await?;
        let planned = async {
            let mut requests = vec![request.clone()];
            if let Some(AdvisoryInput::Ghsa { id }) = &request.advisory {
                let json = forge.advisory(&repo.name, id).await?;
                requests = advisory::from_github(&json)?
                    .into_iter()
                    .map(|a| a.request(request))
                    .collect();
            }
            let mut last = None;
            for r in requests {
                let plan = plan_tree(&wt.path, &r, &self.lookup).await?;
                let found = !plan.groups.is_empty();
                last = Some((r, plan));
                if found {
                    break;
                }
            }
            Ok::<_, DepsStartError>(last)
        }
        .await;
        self.workspaces.remove(&wt);
        let Some((request, plan)) = planned? else {
            return Ok(Started {
                groups: Vec::new(),
                plan: Plan::default(),
            });
        };
        let open = self.store.list_tasks()?;
        let groups = plan
            .groups
            .iter()
            .map(
                |g| match open.iter().find(|t| is_open_for(t, &repo.name, &g.slug)) {
                    Some(t) => GroupTask::Open {
                        task: Box::new(t.clone()),
                        group: g.clone(),
                    },
                    None => {
                        GroupTask::New(Box::new(task_for(repo, requester, origin, &request, g)))
                    }
                },
            )
            .collect();
        Ok(Started { groups, plan })
    }
}

/// True for a task of `repo` carrying group `slug` that is not finished for good (merged,
/// merging or closed): a rerun updates its branch and PR in place.
fn is_open_for(t: &Task, repo: &str, slug: &str) -> bool {
    t.repo.name == repo
        && t.blueprint == BlueprintId::DependencyUpdate
        && t.deps.as_ref().and_then(|d| d.group.as_deref()) == Some(slug)
        && !matches!(
            t.state,
            TaskState::Merged | TaskState::Merging | TaskState::Cancelled
        )
}

/// The one-line instruction of a group's task: `Update lodash from 4.17.20 to 4.17.21`,
/// `Update 3 dependencies (all non-major): a, b, c`, with `[security]` for an advisory.
pub fn title(g: &Group) -> String {
    let security = g.updates.iter().any(|u| u.advisory.is_some());
    let prefix = if security { "Security fix: " } else { "" };
    match g.updates.as_slice() {
        [u] => format!(
            "{prefix}Update {} from {} to {}{}",
            u.dep.name,
            u.dep.current,
            u.to,
            if u.update_type == UpdateType::Major {
                " (major)"
            } else {
                ""
            }
        ),
        many => format!(
            "{prefix}Update {} dependencies ({}): {}",
            many.len(),
            g.title,
            many.iter()
                .map(|u| u.dep.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A new task for group `g`: blueprint `dependency_update`, the request pinned to the
/// group, and a branch named after it (`slipway/deps-<slug>-<id8>`).
pub fn task_for(
    repo: &RepoRef,
    requester: &str,
    origin: &Origin,
    request: &DepsRequest,
    g: &Group,
) -> Task {
    let mut task = Task::new(repo.clone(), requester, origin.clone(), &title(g));
    task.blueprint = BlueprintId::DependencyUpdate;
    task.deps = Some(DepsRequest {
        group: Some(g.slug.clone()),
        ..request.clone()
    });
    let slug = crate::task::truncate_chars(&g.slug, 40);
    task.branch = format!(
        "slipway/deps-{}-{}",
        slug.trim_end_matches('-'),
        &task.id[..8]
    );
    task
}
