//! Forges: where branches and PRs live. Everything here runs on the host, outside any
//! sandbox: pushing and merging are never the agent's.
//!
//! Backends: [`local::LocalForge`] (the source repo itself; a branch, no PR). The GitHub
//! backend plugs in behind the same trait.

pub mod local;

use async_trait::async_trait;

use crate::config::MergeMethod;
use crate::task::Task;
use crate::workspace::{WorkspaceError, Worktree};

/// Forge failures.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    #[error(transparent)]
    Git(#[from] WorkspaceError),
    #[error(
        "the local forge can only publish to a local path or file:// URL, not {0}; set forge = \"github\" for this repo"
    )]
    NotLocal(String),
}

/// What publishing produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// The PR, when the forge has PRs.
    pub pr_url: Option<String>,
    /// Where the branch now lives, for reports.
    pub location: String,
}

/// A merge that went through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The base branch's new commit.
    pub sha: String,
}

/// A forge backend.
#[async_trait]
pub trait Forge: Send + Sync {
    /// `local` or `github`.
    fn kind(&self) -> &'static str;
    /// Pushes the task's branch (and opens or updates its PR where the forge has PRs).
    async fn publish(&self, wt: &Worktree, task: &Task) -> Result<Publication, ForgeError>;
    /// Merges the task's branch into its base, only while the branch is still at `tested`.
    async fn merge(
        &self,
        task: &Task,
        tested: &str,
        method: MergeMethod,
    ) -> Result<Merged, ForgeError>;
}
