//! The local forge: the source repo is the forge. A run's branch is pushed back to it;
//! its checked-out branch is never touched (git refuses a push to it, and slipway only ever
//! pushes `slipway/…` branches).

use async_trait::async_trait;

use super::{Forge, ForgeError, MergeRequest, Merged, Publication, PullRequestContent};
use crate::task::Task;
use crate::workspace::{Workspaces, Worktree};

pub struct LocalForge {
    workspaces: Workspaces,
}

impl LocalForge {
    pub fn new(workspaces: Workspaces) -> Self {
        Self { workspaces }
    }
}

fn is_local(source: &str) -> bool {
    source.starts_with('/') || source.starts_with("file://")
}

#[async_trait]
impl Forge for LocalForge {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn has_pull_requests(&self) -> bool {
        false
    }

    async fn clone_url(&self, repo: &crate::task::RepoRef) -> Result<String, ForgeError> {
        Ok(repo.source.clone())
    }

    async fn publish(
        &self,
        wt: &Worktree,
        task: &Task,
        _content: &PullRequestContent,
    ) -> Result<Publication, ForgeError> {
        if !is_local(&task.repo.source) {
            return Err(ForgeError::NotLocal(task.repo.source.clone()));
        }
        self.workspaces.push(wt, &task.repo.source).await?;
        Ok(Publication {
            pr_url: None,
            pr_number: None,
            opened: false,
            location: format!("{} (branch {})", task.repo.source, wt.branch),
        })
    }

    async fn merge(&self, task: &Task, req: &MergeRequest<'_>) -> Result<Merged, ForgeError> {
        let (tested, method) = (req.tested, req.method);
        if !is_local(&task.repo.source) {
            return Err(ForgeError::NotLocal(task.repo.source.clone()));
        }
        let message = format!(
            "{}\n\nMerged by slipway from {} (tested {}).\n\nRequested-by: {}\nSlipway-Task: {}\n",
            task.title(),
            task.branch,
            tested,
            task.requester,
            task.id
        );
        let sha = self
            .workspaces
            .merge_into_base(&task.repo, &task.branch, tested, method, &message)
            .await?;
        Ok(Merged { sha, commits: 1 })
    }

    async fn merged_at(&self, task: &Task, tested: &str) -> Result<Option<Merged>, ForgeError> {
        if !is_local(&task.repo.source) {
            return Err(ForgeError::NotLocal(task.repo.source.clone()));
        }
        let sha = self
            .workspaces
            .find_merge(&task.repo, &task.id, tested)
            .await?;
        Ok(sha.map(|sha| Merged { sha, commits: 1 }))
    }
}
