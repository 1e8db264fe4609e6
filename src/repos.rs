//! The `[[repos]]` section and the leaf types every layer shares about a repo: which forge
//! it lives on ([`ForgeKind`]) and how its PRs merge ([`MergeMethod`]).
//!
//! A leaf: imports nothing from the crate, so anything may import it.

use serde::{Deserialize, Serialize};

/// Where branches and PRs live (`DESIGN.md` §2, "forge").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForgeKind {
    Github,
    #[default]
    Local,
}

/// How an approved PR is merged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MergeMethod {
    Merge,
    #[default]
    Squash,
    Rebase,
}

/// One `[[repos]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    /// `owner/name` on the forge.
    pub name: String,
    /// Channels whose tasks default to this repo.
    #[serde(default)]
    pub channels: Vec<String>,
    #[serde(default)]
    pub forge: ForgeKind,
    /// Clone URL or path; with `forge = "local"` the repo itself.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default = "default_base")]
    pub base: String,
    #[serde(default)]
    pub merge_method: MergeMethod,
    /// (added) Delete the task's branch after its PR merges (GitHub forge).
    #[serde(default = "default_true")]
    pub delete_branch: bool,
}

fn default_true() -> bool {
    true
}

fn default_base() -> String {
    "main".into()
}
