//! Workspaces: a bare mirror cache per repo, and a fresh clone per run on the task's branch.
//!
//! Owns every git command slipway runs on the host. A run's git directory lives outside its
//! work tree (`$SLIPWAY_DATA_DIR/gitdirs/<run>`); host git always names it with `--git-dir`,
//! so nothing the agent writes into the work tree can become git config, hooks or attributes
//! drivers that host git would execute. The sandbox sees it read-only at `/workspace/.git`.
//! Host git also ignores global and system config, and runs with hooks and fsmonitor off.
//! No credential is ever written into a clone's config: clones have no remote at all, and
//! pushes name their destination on the command line.
//!
//! This file holds the shared types ([`Workspaces`], [`Worktree`], [`FileChange`], the error)
//! and the credential hook; each sibling file adds one job to [`Workspaces`]: `mirror`
//! (the cache), `worktree` (a run's clone), `commit` (commit and push), `diff` (what the
//! gates read), `changes` (the file list the gates judge), `whitespace` (the formatting-only
//! check), `merge` (merges into the base and reverts), and `git` (how every host git command
//! is built and run). It must not touch the forge's API, the sandbox or the store: callers
//! hand it paths, branches and URLs.

mod base;
mod changes;
mod commit;
mod diff;
mod git;
mod merge;
mod mirror;
mod whitespace;
mod worktree;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Mutex;

pub use self::diff::unquote_path;
pub use self::git::git;
pub use self::mirror::repo_name_from_url;

/// Workspace failures. The first four are the user's to fix; the message says how.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error(
        "repository {0} does not exist or is not a git repository; pass --repo a path or clone URL"
    )]
    NotFound(String),
    #[error("repository {0} is empty (no branches yet); push a first commit, then run again")]
    Empty(String),
    #[error("base branch {base:?} does not exist in {repo}; branches: {known}")]
    UnknownBase {
        repo: String,
        base: String,
        known: String,
    },
    #[error("git {args} failed (exit {code:?}): {stderr}")]
    Git {
        args: String,
        code: Option<i32>,
        stderr: String,
    },
    #[error("{branch} moved: it is at {actual}, not the tested {tested}; nothing was merged")]
    HeadMoved {
        branch: String,
        tested: String,
        actual: String,
    },
    #[error("{branch} does not merge cleanly into {base}: {detail}")]
    Conflict {
        branch: String,
        base: String,
        detail: String,
    },
    #[error("{base} moved to {tip} since the change was tested; rerun to test it on the new base")]
    BaseMoved { base: String, tip: String },
    #[error("cannot update {base} in {repo}: {detail}")]
    BaseRejected {
        repo: String,
        base: String,
        detail: String,
    },
    #[error("no git credential for {url}: {detail}")]
    Credentials { url: String, detail: String },
    #[error("workspace I/O failed at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The change names a path that is not UTF-8 (shown lossily): the gates match paths as
    /// text, so it cannot be judged. Not retried: the same commit gives the same answer.
    #[error(
        "the change names a file that is not UTF-8 ({0:?}); slipway cannot judge it, so nothing was published: use a UTF-8 name"
    )]
    NonUtf8Path(String),
    /// Git's file list and its unified diff disagree, or git printed something unexpected.
    /// Fails closed: no gate runs on a list that may be incomplete.
    #[error("cannot read the change's file list from git: {0}")]
    UnreadableChanges(String),
}

/// The workspace's result type.
pub type Result<T, E = WorkspaceError> = std::result::Result<T, E>;

/// One run's clone.
#[derive(Debug, Clone)]
pub struct Worktree {
    /// Host path of the work tree (mounted at `/workspace` in the sandbox).
    pub path: PathBuf,
    /// Host path of its git directory, outside the work tree.
    pub git_dir: PathBuf,
    pub branch: String,
    /// The base commit the diff is measured against.
    pub base_sha: String,
    /// HEAD when the run started (the base, or the branch tip of the previous revision).
    pub start_sha: String,
    /// The branch tip this run replaces: set when an earlier attempt at the same revision
    /// was pushed. The push then overwrites exactly that tip (`--force-with-lease`).
    pub replaces: Option<String>,
}

/// How a file changed between the base and HEAD (git's `--raw` status letter; renames and
/// copies are never detected, so they show as a deletion and an addition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// `A`: the file is new.
    Added,
    /// `D`: the file is gone.
    Deleted,
    /// `M`: its content or its mode changed.
    Modified,
    /// `T`: its type changed (a file became a symlink, or the reverse).
    TypeChanged,
}

/// A file changed between the base and HEAD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// Path from the repo root, exactly as git stores it (any character but NUL).
    pub path: String,
    pub kind: ChangeKind,
    /// Git's mode before and after, as octal numbers: `0o100644` a file, `0o100755` an
    /// executable, `0o120000` a symlink, `0o160000` a submodule; 0 where there is no file.
    pub old_mode: u32,
    pub new_mode: u32,
    /// Lines added and deleted in the text diff the gates read (`--text`: a binary file's
    /// lines count too).
    pub added: usize,
    pub deleted: usize,
    /// Whether git sees the file as binary (its content or a `.gitattributes` `-diff`).
    /// Informational: the counts above do not depend on it.
    pub binary: bool,
}

impl FileChange {
    /// True when more than the file's content changes: it appears, disappears, or changes
    /// type or mode. Such a change is never mere formatting.
    pub fn is_structural(&self) -> bool {
        self.kind != ChangeKind::Modified || self.old_mode != self.new_mode
    }

    /// A content change to a regular file, for tests.
    #[cfg(test)]
    pub(crate) fn modified(path: &str, added: usize, deleted: usize) -> Self {
        Self {
            path: path.into(),
            kind: ChangeKind::Modified,
            old_mode: 0o100644,
            new_mode: 0o100644,
            added,
            deleted,
            binary: false,
        }
    }
}

/// Credentials for git over HTTPS, asked for per command and handed to git only through
/// its environment (`GIT_CONFIG_COUNT` → `http.<url>.extraHeader`): never written to a config
/// file, never in a work tree, never in a sandbox.
#[async_trait::async_trait]
pub trait GitCredentials: Send + Sync {
    /// The `Authorization` header value for `url` (e.g. `Basic …`), or `None` when this
    /// provider holds nothing for it.
    async fn header(&self, url: &str) -> std::result::Result<Option<String>, String>;
}

/// Mirrors and clones under `$SLIPWAY_DATA_DIR`.
#[derive(Clone)]
pub struct Workspaces {
    mirrors: PathBuf,
    worktrees: PathBuf,
    gitdirs: PathBuf,
    /// One lock per mirror: two runs on the same repo must not fetch into it at once.
    locks: Arc<std::sync::Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>>,
    credentials: Option<Arc<dyn GitCredentials>>,
}

impl Workspaces {
    /// Workspaces under `data_dir` (`mirrors/`, `worktrees/`, `gitdirs/`), made on first use.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            mirrors: data_dir.join("mirrors"),
            worktrees: data_dir.join("worktrees"),
            gitdirs: data_dir.join("gitdirs"),
            locks: Arc::default(),
            credentials: None,
        }
    }

    /// A claim on a scratch name of this process (`merge-<id>`, `.tmp-<id>`), so the startup
    /// sweep of another slipway sharing the data dir leaves the directory alone while it is
    /// in use ([`crate::sweep`]). `None` (logged) when the claim cannot be written: the work
    /// goes on, only unprotected from such a sweep.
    fn claim(&self, name: &str) -> Option<crate::sweep::Claim> {
        let data_dir = self.worktrees.parent()?;
        crate::sweep::Claim::take(data_dir, name)
            .inspect_err(|e| tracing::warn!(name, error = %e, "cannot claim a scratch directory"))
            .ok()
    }

    /// The same workspaces, authenticating HTTPS git with `credentials`.
    pub fn with_credentials(mut self, credentials: Arc<dyn GitCredentials>) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// The environment that gives git the credential for `url`, scoped to that URL so a
    /// redirect elsewhere does not carry it. Empty when there is none.
    async fn auth_env(&self, url: &str) -> Result<Vec<(String, String)>> {
        let Some(c) = &self.credentials else {
            return Ok(Vec::new());
        };
        match c.header(url).await {
            Ok(Some(h)) => Ok(vec![
                ("GIT_CONFIG_COUNT".into(), "1".into()),
                ("GIT_CONFIG_KEY_0".into(), format!("http.{url}.extraHeader")),
                ("GIT_CONFIG_VALUE_0".into(), format!("Authorization: {h}")),
            ]),
            Ok(None) => Ok(Vec::new()),
            Err(detail) => Err(WorkspaceError::Credentials {
                url: url.to_string(),
                detail,
            }),
        }
    }
}

fn mkdir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|source| WorkspaceError::Io {
        path: p.to_path_buf(),
        source,
    })
}

fn not_found_or(e: WorkspaceError, source: &str) -> WorkspaceError {
    match &e {
        WorkspaceError::Git { stderr, .. }
            if stderr.contains("does not exist")
                || stderr.contains("not a git repository")
                || stderr.contains("does not appear to be a git repository")
                || stderr.contains("not found")
                || stderr.contains("Could not read from remote") =>
        {
            WorkspaceError::NotFound(source.to_string())
        }
        _ => e,
    }
}
