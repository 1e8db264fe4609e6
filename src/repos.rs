//! The `[[repos]]` section and the leaf types every layer shares about a repo: which forge
//! it lives on ([`ForgeKind`]) and how its PRs merge ([`MergeMethod`]).
//!
//! A leaf: imports nothing from the crate, so anything may import it.

use serde::{Deserialize, Serialize};

/// Where branches and PRs live (`DESIGN.md` §2, "forge").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForgeKind {
    /// GitHub (or GitHub Enterprise) through its REST API.
    Github,
    /// A bare repo on this machine: branches pushed to it, merges done by git.
    #[default]
    Local,
}

/// How an approved PR is merged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MergeMethod {
    /// A merge commit.
    Merge,
    /// One squashed commit (the default).
    #[default]
    Squash,
    /// The commits rebased onto the base.
    Rebase,
}

/// One `[[repos]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    /// `owner/name` on the forge.
    pub name: String,
    /// Channels whose tasks default to this repo; with [`RepoConfig::restrict_to_channels`]
    /// also the only conversations its tasks may start from.
    #[serde(default)]
    pub channels: Vec<String>,
    /// (added) New tasks for this repo start only from its `channels` (a DM or any other
    /// channel is refused, `crate::access`). Default false: `channels` only picks the default.
    #[serde(default)]
    pub restrict_to_channels: bool,
    /// (added) Slack user IDs that may start tasks for this repo; empty means anyone.
    /// Refinements and reactions follow the approver rules, not this list.
    #[serde(default)]
    pub requesters: Vec<String>,
    /// Where its branches and PRs live.
    #[serde(default)]
    pub forge: ForgeKind,
    /// Clone URL or path; with `forge = "local"` the repo itself.
    #[serde(default)]
    pub url: Option<String>,
    /// The branch changes are based on (default `main`).
    #[serde(default = "default_base")]
    pub base: String,
    /// How its PRs merge.
    #[serde(default)]
    pub merge_method: MergeMethod,
    /// (added) Delete the task's branch after its PR merges (GitHub forge).
    #[serde(default = "default_true")]
    pub delete_branch: bool,
    /// (added) The docker image this repo's sandbox runs (`ghcr.io/acme/dev:latest`), over
    /// its devcontainer's image and `[sandbox] image` (`crate::env`, `DESIGN.md` §5). Unset
    /// or empty: not named here.
    #[serde(default)]
    pub image: Option<String>,
    /// (added) The shell command that sets this repo's environment up (`make deps`), run in
    /// the base commit's tree with network and no secrets, over the devcontainer's commands,
    /// `.slipway/setup.sh` and detection. `""` means nothing to set up.
    #[serde(default)]
    pub setup: Option<String>,
}

fn default_true() -> bool {
    true
}

fn default_base() -> String {
    "main".into()
}
