//! Forges: where branches and PRs live. Everything here runs on the host, outside any
//! sandbox: pushing, opening PRs and merging are never the agent's.
//!
//! Backends: [`local::LocalForge`] (the source repo itself; a branch, no PR, no CI) and
//! [`github::GithubForge`] (octocrab: PRs, CI, merges through the API). [`Forges`] routes each
//! task to its repo's backend (`[[repos]] forge`).

pub mod github;
pub mod local;

use std::sync::Arc;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::repos::ForgeKind;
use crate::repos::MergeMethod;
use crate::task::Task;
use crate::workspace::{WorkspaceError, Worktree};

/// Forge failures. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    #[error(transparent)]
    Git(#[from] WorkspaceError),
    #[error(
        "the local forge can only publish to a local path or file:// URL, not {0}; set forge = \"github\" for this repo"
    )]
    NotLocal(String),
    #[error("{err}; {advice}", advice = .0.advice(), err = .0)]
    Github(#[from] github::client::GithubError),
    #[error(
        "{0} is not configured; an operator sets GITHUB_TOKEN (or the GitHub App variables) and restarts slipway"
    )]
    NotConfigured(&'static str),
    /// GitHub `PUT …/merge` answered 405.
    #[error("GitHub will not merge {pr}: {reason}")]
    NotMergeable { pr: String, reason: String },
    /// GitHub `PUT …/merge` answered 409, or the PR's head is not the tested commit.
    #[error(
        "{pr} moved: its head is {actual}, not the tested {tested}; nothing was merged. React ✅ on the newest report"
    )]
    HeadMoved {
        pr: String,
        tested: String,
        actual: String,
    },
    /// GitHub `PUT …/merge` answered 422.
    #[error("GitHub refused the merge of {pr}: {message}")]
    MergeInvalid { pr: String, message: String },
    #[error("{pr} is already {state}; nothing was merged")]
    NotOpen { pr: String, state: String },
    #[error("{0}")]
    Unsupported(&'static str),
}

impl ForgeError {
    /// True when the forge is down or throttling: the task stays resumable.
    pub fn is_outage(&self) -> bool {
        matches!(self, Self::Github(e) if e.is_outage())
    }
}

/// What a PR says: a title and a Markdown body (`gates::render::markdown`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestContent {
    pub title: String,
    pub body: String,
    /// Labels beside the forge's own `slipway` label, added when the PR is opened
    /// (`dependencies`; `security` for an advisory fix).
    pub labels: Vec<String>,
}

/// What publishing produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// The PR, when the forge has PRs.
    pub pr_url: Option<String>,
    pub pr_number: Option<u64>,
    /// Where the branch now lives, for reports.
    pub location: String,
    /// True when this call opened the PR (false: it updated an existing one).
    pub opened: bool,
}

/// A merge request: what was tested and who approved it.
#[derive(Debug, Clone)]
pub struct MergeRequest<'a> {
    /// The commit the gates passed; the forge merges only while the branch is still there.
    pub tested: &'a str,
    pub method: MergeMethod,
    /// Slack user ID of the approver, or `slipway (auto_merge policy)`.
    pub approver: &'a str,
    /// The Slack thread, for the audit comment.
    pub thread_url: Option<&'a str>,
    /// Delete the branch after the merge (`[[repos]] delete_branch`).
    pub delete_branch: bool,
}

/// A merge that went through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The base branch's new commit.
    pub sha: String,
    /// How many commits the merge put on the base (1, or the PR's count for rebase).
    pub commits: u32,
}

/// CI's verdict on a pushed commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CiOutcome {
    /// The forge has no CI (local), or nothing reported on the commit.
    NoCi {
        detail: String,
    },
    Passed {
        detail: String,
    },
    /// `failures` is the text the agent's CI fix round gets.
    Failed {
        detail: String,
        failures: String,
    },
    /// CI did not finish within `[github] ci_timeout_s`.
    TimedOut {
        detail: String,
    },
}

/// A forge backend.
#[async_trait]
pub trait Forge: Send + Sync {
    /// `local` or `github`.
    fn kind(&self) -> &'static str;
    /// Whether pushed commits get CI ([`Forge::wait_ci`] means something).
    fn has_ci(&self) -> bool {
        false
    }
    /// Whether the forge has pull requests: a branch can become a reviewed PR, and a merge
    /// can be undone by a revert PR (⏪). Local: false (a branch in the source repo); GitHub:
    /// true. Distinct from [`Forge::has_ci`], though both backends answer alike today.
    fn has_pull_requests(&self) -> bool;
    /// The URL git fetches `repo` from (local: its source; GitHub: the API's `clone_url`).
    async fn clone_url(&self, repo: &crate::task::RepoRef) -> Result<String, ForgeError>;
    /// Pushes the task's branch, and opens its PR or updates the existing one (found by its
    /// number, else by its head branch: never two PRs for one task).
    async fn publish(
        &self,
        wt: &Worktree,
        task: &Task,
        content: &PullRequestContent,
    ) -> Result<Publication, ForgeError>;
    /// Rewrites the PR's title and body (after CI, with the final report); the PR is
    /// `task.pr_number`, else found by head branch. No-op without PRs.
    async fn describe(
        &self,
        _task: &Task,
        _content: &PullRequestContent,
    ) -> Result<(), ForgeError> {
        Ok(())
    }
    /// Waits for CI on `sha` (the task's pushed head). `cancel` ends the wait early.
    async fn wait_ci(
        &self,
        _task: &Task,
        _sha: &str,
        _cancel: &CancellationToken,
    ) -> Result<CiOutcome, ForgeError> {
        Ok(CiOutcome::NoCi {
            detail: format!("the {} forge has no CI", self.kind()),
        })
    }
    /// Merges the task's branch into its base, only while the branch is still at the tested
    /// commit.
    async fn merge(&self, task: &Task, req: &MergeRequest<'_>) -> Result<Merged, ForgeError>;
    /// Whether the task's change was merged at `tested` already (a merge whose answer was
    /// lost: a 502 after GitHub merged, or a crash after the request): the merge when so,
    /// `None` when it was not. Forges that cannot tell answer `Unsupported`.
    async fn merged_at(&self, _task: &Task, _tested: &str) -> Result<Option<Merged>, ForgeError> {
        Err(ForgeError::Unsupported("looking up a merge"))
    }
    /// A verified webhook said CI changed somewhere: poll now instead of at the next tick.
    fn nudge(&self) {}
    /// The forge's security advisory `id` (a `GHSA-…` id) as its JSON document, for
    /// `crate::deps::advisory::from_github`. Forges without an advisory database answer
    /// `Unsupported` (the message says to give an OSV file instead).
    async fn advisory(&self, _repo: &str, _id: &str) -> Result<String, ForgeError> {
        Err(ForgeError::Unsupported(
            "this forge has no advisory database: give the advisory as an OSV JSON file (slipway run --osv FILE)",
        ))
    }
    /// Closes the task's PR (❌ on a finished task). Returns what was closed, if anything.
    async fn close(&self, _task: &Task, _by: &str) -> Result<Option<String>, ForgeError> {
        Ok(None)
    }
}

/// Routes each task to its repo's forge.
#[derive(Clone)]
pub struct Forges {
    pub local: Arc<dyn Forge>,
    /// Present when GitHub credentials are configured.
    pub github: Option<Arc<dyn Forge>>,
}

/// What the forges are built from: GitHub's endpoint and credentials (`GITHUB_*`) and the
/// `[github]` section.
pub struct ForgeSettings<'a> {
    pub endpoint: &'a github::settings::GithubEndpoint,
    pub github: &'a github::settings::GithubConfig,
}

impl Forges {
    /// The forges `settings` ask for: always local; GitHub when `GITHUB_*` credentials are
    /// set. Returns the workspaces to run with (they carry the GitHub git credentials).
    /// `config` builds the settings from the whole configuration (`From<&Config>`).
    pub fn build<'a>(
        settings: impl Into<ForgeSettings<'a>>,
        workspaces: crate::workspace::Workspaces,
    ) -> Result<(Self, crate::workspace::Workspaces), ForgeError> {
        let cfg = settings.into();
        let local: Arc<dyn Forge> = Arc::new(local::LocalForge::new(workspaces.clone()));
        if cfg.endpoint.auth.is_none() {
            return Ok((
                Self {
                    local,
                    github: None,
                },
                workspaces,
            ));
        }
        let client = github::client::GithubClient::new(cfg.endpoint, cfg.github)?;
        let (gh, workspaces) = github::GithubForge::new(client, workspaces, cfg.github);
        Ok((
            Self {
                local,
                github: Some(Arc::new(gh)),
            },
            workspaces,
        ))
    }

    /// The backend for `kind`, or why there is none.
    pub fn get(&self, kind: ForgeKind) -> Result<&Arc<dyn Forge>, ForgeError> {
        match kind {
            ForgeKind::Local => Ok(&self.local),
            ForgeKind::Github => self
                .github
                .as_ref()
                .ok_or(ForgeError::NotConfigured("forge = \"github\"")),
        }
    }

    /// The backend of `task`'s repo.
    pub fn of(&self, task: &Task) -> Result<&Arc<dyn Forge>, ForgeError> {
        self.get(task.repo.forge)
    }
}
