//! Workspaces: a bare mirror cache per repo, and a fresh clone per run on the task's branch.
//!
//! Owns every git command slipway runs on the host. A run's git directory lives outside its
//! work tree (`$SLIPWAY_DATA_DIR/gitdirs/<run>`); host git always names it with `--git-dir`,
//! so nothing the agent writes into the work tree can become git config, hooks or attributes
//! drivers that host git would execute. The sandbox sees it read-only at `/workspace/.git`.
//! Host git also ignores global and system config, and runs with hooks and fsmonitor off.
//! No credential is ever written into a clone's config: clones have no remote at all, and
//! pushes name their destination on the command line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use tokio::process::Command;
use tokio::sync::Mutex;

use crate::repos::MergeMethod;
use crate::task::RepoRef;

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
}

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

/// A file changed between the base and HEAD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    pub path: String,
    pub added: usize,
    pub deleted: usize,
    pub binary: bool,
}

/// Patterns added to each clone's `.git/info/exclude`: caches that tools write during checks
/// and that no one means to commit. They only affect untracked files.
const RUN_EXCLUDES: &str =
    "__pycache__/\n*.pyc\n.pytest_cache/\n.mypy_cache/\n.ruff_cache/\nnode_modules/\n/target/\n";

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
    pub fn new(data_dir: &Path) -> Self {
        Self {
            mirrors: data_dir.join("mirrors"),
            worktrees: data_dir.join("worktrees"),
            gitdirs: data_dir.join("gitdirs"),
            locks: Arc::default(),
            credentials: None,
        }
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

    /// Resolves a `--repo` argument: a local path becomes absolute (so pushes work from any
    /// directory), a URL is kept. Returns the name used in reports.
    pub fn resolve_source(arg: &str) -> Result<(String, String)> {
        let is_url = arg.contains("://") || arg.starts_with("git@");
        if is_url {
            let name = repo_name_from_url(arg);
            return Ok((arg.to_string(), name));
        }
        let path = std::fs::canonicalize(arg).map_err(|_| WorkspaceError::NotFound(arg.into()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().trim_end_matches(".git").to_string())
            .unwrap_or_else(|| "repo".into());
        Ok((path.display().to_string(), name))
    }

    fn mirror_path(&self, source: &str) -> PathBuf {
        let mut key: String = source
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        if key.len() > 180 {
            key = key[key.len() - 180..].to_string();
        }
        self.mirrors.join(format!("{key}.git"))
    }

    fn lock_for(&self, mirror: &Path) -> Arc<Mutex<()>> {
        let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(mirror.to_path_buf()).or_default().clone()
    }

    /// Brings the mirror of `repo.source` up to date (cloning it the first time) and returns
    /// its path. A failed first clone leaves nothing behind.
    pub async fn refresh_mirror(&self, repo: &RepoRef) -> Result<PathBuf> {
        let mirror = self.mirror_path(&repo.source);
        let lock = self.lock_for(&mirror);
        let _guard = lock.lock().await;
        mkdir(&self.mirrors)?;
        let env = self.auth_env(&repo.source).await?;
        if mirror.join("HEAD").exists() {
            git_env(&mirror, &["fetch", "--prune", "--quiet", "origin"], &env)
                .await
                .map_err(|e| not_found_or(e, &repo.source))?;
        } else {
            let tmp = self.mirrors.join(format!(".tmp-{}", crate::task::new_id()));
            let res = git_env(
                &self.mirrors,
                &[
                    "clone",
                    "--mirror",
                    "--quiet",
                    "--",
                    &repo.source,
                    &tmp.display().to_string(),
                ],
                &env,
            )
            .await;
            if let Err(e) = res {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(not_found_or(e, &repo.source));
            }
            std::fs::rename(&tmp, &mirror).map_err(|source| WorkspaceError::Io {
                path: mirror.clone(),
                source,
            })?;
        }
        Ok(mirror)
    }

    /// A fresh clone for `run_id` on `branch`: from the branch's tip when it already exists
    /// (a later revision), else from `repo.base`. Commits of `revision` itself already on the
    /// branch (an earlier, interrupted or rerun attempt at it) are set aside: the run redoes
    /// the revision from where it started, and the push replaces them (`--force-with-lease`).
    /// On error, nothing is left behind.
    pub async fn prepare(
        &self,
        repo: &RepoRef,
        branch: &str,
        run_id: &str,
        revision: u32,
    ) -> Result<Worktree> {
        let mirror = self.refresh_mirror(repo).await?;
        let heads = git(
            &mirror,
            &["for-each-ref", "--format=%(refname:short)", "refs/heads"],
        )
        .await?;
        let heads: Vec<&str> = heads.lines().collect();
        if heads.is_empty() {
            return Err(WorkspaceError::Empty(repo.source.clone()));
        }
        if !heads.contains(&repo.base.as_str()) {
            let mut known: Vec<&str> = heads
                .iter()
                .copied()
                .filter(|h| !h.starts_with("slipway/"))
                .take(20)
                .collect();
            known.sort();
            return Err(WorkspaceError::UnknownBase {
                repo: repo.source.clone(),
                base: repo.base.clone(),
                known: known.join(", "),
            });
        }
        let branch_exists = heads.contains(&branch);
        let start = if branch_exists { branch } else { &repo.base };
        mkdir(&self.worktrees)?;
        mkdir(&self.gitdirs)?;
        let wt = Worktree {
            path: self.worktrees.join(run_id),
            git_dir: self.gitdirs.join(run_id),
            branch: branch.to_string(),
            base_sha: String::new(),
            start_sha: String::new(),
            replaces: None,
        };
        let made = async {
            self.clone_into(&mirror, start, branch_exists, &wt).await?;
            let base_ref = format!("refs/heads/{}^{{commit}}", repo.base);
            let base_sha = git(&mirror, &["rev-parse", &base_ref])
                .await?
                .trim()
                .to_string();
            let tip = wt_git(&wt, &["rev-parse", "HEAD"])
                .await?
                .trim()
                .to_string();
            let mut start_sha = tip.clone();
            let mut replaces = None;
            if branch_exists {
                let log = wt_git(
                    &wt,
                    &[
                        "log",
                        "--first-parent",
                        "--format=%H%x09%(trailers:key=Slipway-Revision,valueonly,separator=%x2C)",
                        &format!("{base_sha}..HEAD"),
                    ],
                )
                .await?;
                let own: Vec<&str> = log
                    .lines()
                    .map_while(|l| {
                        let (sha, rev) = l.split_once('\t')?;
                        (rev.trim() == revision.to_string()).then_some(sha)
                    })
                    .collect();
                if let Some(oldest) = own.last() {
                    let parent = format!("{oldest}^");
                    wt_git(&wt, &["reset", "--quiet", "--hard", &parent]).await?;
                    start_sha = wt_git(&wt, &["rev-parse", "HEAD"])
                        .await?
                        .trim()
                        .to_string();
                    replaces = Some(tip);
                }
            }
            Ok::<_, WorkspaceError>((base_sha, start_sha, replaces))
        }
        .await;
        match made {
            Ok((base_sha, start_sha, replaces)) => Ok(Worktree {
                base_sha,
                start_sha,
                replaces,
                ..wt
            }),
            Err(e) => {
                self.remove(&wt);
                Err(e)
            }
        }
    }

    async fn clone_into(
        &self,
        mirror: &Path,
        start: &str,
        branch_exists: bool,
        wt: &Worktree,
    ) -> Result<()> {
        // --no-hardlinks: the sandbox may write into the work tree; objects hardlinked with
        // the shared mirror must not be reachable from there.
        git(
            &self.worktrees,
            &[
                "clone",
                "--quiet",
                "--no-hardlinks",
                "--separate-git-dir",
                &wt.git_dir.display().to_string(),
                "--branch",
                start,
                "--",
                &mirror.display().to_string(),
                &wt.path.display().to_string(),
            ],
        )
        .await?;
        // The work tree's `.git` pointer file goes: host git names the git dir explicitly and
        // the sandbox gets it mounted read-only in its place.
        let pointer = wt.path.join(".git");
        std::fs::remove_file(&pointer).map_err(|source| WorkspaceError::Io {
            path: pointer,
            source,
        })?;
        if !branch_exists {
            wt_git(wt, &["checkout", "--quiet", "-b", &wt.branch]).await?;
        }
        wt_git(wt, &["remote", "remove", "origin"]).await?;
        let exclude = wt.git_dir.join("info/exclude");
        if let Some(dir) = exclude.parent() {
            mkdir(dir)?;
        }
        let mut text = std::fs::read_to_string(&exclude).unwrap_or_default();
        text.push_str(RUN_EXCLUDES);
        std::fs::write(&exclude, text).map_err(|source| WorkspaceError::Io {
            path: exclude.clone(),
            source,
        })
    }

    /// Stages everything and commits as the bot, with the requester in a trailer. Returns
    /// the new commit, or `None` when there was nothing to commit.
    pub async fn commit(
        &self,
        wt: &Worktree,
        subject: &str,
        body: &str,
        trailers: &[(&str, &str)],
    ) -> Result<Option<String>> {
        wt_git(wt, &["add", "--all"]).await?;
        let staged = wt_git(wt, &["diff", "--cached", "--name-only"]).await?;
        if staged.trim().is_empty() {
            return Ok(None);
        }
        let mut message = format!("{subject}\n\n{body}\n\n");
        for (k, v) in trailers {
            message.push_str(&format!("{k}: {v}\n"));
        }
        let args: Vec<&str> = BOT_IDENT
            .iter()
            .copied()
            .chain(["commit", "--quiet", "--no-verify", "--file=-"])
            .collect();
        wt_git_with_input(wt, &args, &message).await?;
        Ok(Some(
            wt_git(wt, &["rev-parse", "HEAD"]).await?.trim().to_string(),
        ))
    }

    /// The unified diff of what the branch adds to the base (`base...HEAD`: from their merge
    /// base, so base commits made since are not shown as reverted). Call after
    /// [`Workspaces::commit`]. Forced to text (`--text`, no external drivers, no textconv)
    /// and with paths unquoted, so neither a `.gitattributes` `-diff` nor an unusual file
    /// name can hide a line from the gates.
    pub async fn diff(&self, wt: &Worktree) -> Result<String> {
        let range = format!("{}...HEAD", wt.base_sha);
        let args: Vec<&str> = GATE_DIFF
            .iter()
            .copied()
            .chain(["--no-renames", "--no-color", range.as_str()])
            .collect();
        wt_git(wt, &args).await
    }

    /// True when the change is only formatting: nothing but end-of-line whitespace and blank
    /// lines, or, when no indentation-sensitive file (Python, YAML, Makefile) is touched, no
    /// whitespace at all.
    pub async fn whitespace_only(&self, wt: &Worktree, changes: &[FileChange]) -> Result<bool> {
        let range = format!("{}...HEAD", wt.base_sha);
        let base: Vec<&str> = GATE_DIFF
            .iter()
            .copied()
            .chain(["--numstat", "-z"])
            .collect();
        let strict = wt_git(wt, &[&base[..], &[range.as_str()]].concat()).await?;
        if strict.trim_matches('\0').is_empty() {
            return Ok(false);
        }
        let only_zero = |out: &str| {
            out.split('\0')
                .filter(|r| !r.is_empty())
                .all(|r| r.starts_with("0\t0\t") || !r.contains('\t'))
        };
        let eol = wt_git(
            wt,
            &[
                &base[..],
                &[
                    "--ignore-space-at-eol",
                    "--ignore-blank-lines",
                    "--ignore-cr-at-eol",
                    &range,
                ],
            ]
            .concat(),
        )
        .await?;
        if only_zero(&eol) {
            return Ok(true);
        }
        let sensitive = changes.iter().any(|c| {
            let name = c.path.rsplit('/').next().unwrap_or(&c.path);
            name.ends_with(".py")
                || name.ends_with(".yaml")
                || name.ends_with(".yml")
                || name == "Makefile"
                || name.ends_with(".mk")
        });
        if sensitive {
            return Ok(false);
        }
        let all = wt_git(
            wt,
            &[
                &base[..],
                &["--ignore-all-space", "--ignore-blank-lines", &range],
            ]
            .concat(),
        )
        .await?;
        Ok(only_zero(&all))
    }

    /// Pushes the branch to `destination` (a path or URL given on the command line, never
    /// stored in config).
    pub async fn push(&self, wt: &Worktree, destination: &str) -> Result<()> {
        let env = self.auth_env(destination).await?;
        let refspec = format!("HEAD:refs/heads/{}", wt.branch);
        let lease = wt
            .replaces
            .as_ref()
            .map(|tip| format!("--force-with-lease=refs/heads/{}:{tip}", wt.branch));
        let mut args = vec!["push", "--quiet"];
        args.extend(lease.as_deref());
        args.extend(["--", destination, &refspec]);
        let mut cmd = wt_command(wt, &args);
        cmd.envs(env);
        finish(&mut cmd, &args, None).await.map(|_| ())
    }

    /// Commits a revert of `merge_commit` on the work tree's branch: `-m 1` for a merge
    /// commit, else the last `commits` commits of the base (a squash is one, a rebase merge
    /// its PR's count). Returns the new commit. A conflict is [`WorkspaceError::Conflict`].
    pub async fn revert(
        &self,
        wt: &Worktree,
        merge_commit: &str,
        commits: u32,
        message: &str,
    ) -> Result<String> {
        let parents = wt_git(wt, &["rev-list", "--parents", "-n", "1", merge_commit]).await?;
        let parents = parents.split_whitespace().count().saturating_sub(1);
        let range = format!("{merge_commit}~{}..{merge_commit}", commits.max(1));
        let mut args: Vec<&str> = BOT_IDENT.to_vec();
        args.extend(["revert", "--no-commit"]);
        if parents > 1 {
            args.extend(["-m", "1", merge_commit]);
        } else if commits > 1 {
            args.push(&range);
        } else {
            args.push(merge_commit);
        }
        wt_git(wt, &args).await.map_err(|e| match e {
            WorkspaceError::Git { stderr, .. } => WorkspaceError::Conflict {
                branch: wt.branch.clone(),
                base: merge_commit.to_string(),
                detail: crate::task::truncate_chars(&stderr, 300),
            },
            other => other,
        })?;
        let args: Vec<&str> = BOT_IDENT
            .iter()
            .copied()
            .chain(["commit", "--quiet", "--no-verify", "--file=-"])
            .collect();
        wt_git_with_input(wt, &args, message).await?;
        Ok(wt_git(wt, &["rev-parse", "HEAD"]).await?.trim().to_string())
    }

    /// Deletes a run's work tree and git directory.
    pub fn remove(&self, wt: &Worktree) {
        for dir in [&wt.path, &wt.git_dir] {
            if let Err(e) = std::fs::remove_dir_all(dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %dir.display(), error = %e, "could not remove run directory");
            }
        }
    }

    /// Merges `branch` into `repo.base` in the source repo with `method`, only if the branch
    /// is still at `tested` (the commit the gates passed). Works in a fresh clone of the
    /// mirror, pushes the base fast-forward only, and returns the new base commit.
    pub async fn merge_into_base(
        &self,
        repo: &RepoRef,
        branch: &str,
        tested: &str,
        method: MergeMethod,
        message: &str,
    ) -> Result<String> {
        let mirror = self.refresh_mirror(repo).await?;
        let actual = git(
            &mirror,
            &["rev-parse", &format!("refs/heads/{branch}^{{commit}}")],
        )
        .await?
        .trim()
        .to_string();
        if actual != tested {
            return Err(WorkspaceError::HeadMoved {
                branch: branch.into(),
                tested: tested.into(),
                actual,
            });
        }
        // Only a change tested on top of the current base merges: if the base moved since,
        // the merged result was never tested.
        let base_ref = format!("refs/heads/{}^{{commit}}", repo.base);
        let base_tip = git(&mirror, &["rev-parse", &base_ref])
            .await?
            .trim()
            .to_string();
        if git(&mirror, &["merge-base", "--is-ancestor", &base_tip, tested])
            .await
            .is_err()
        {
            return Err(WorkspaceError::BaseMoved {
                base: repo.base.clone(),
                tip: base_tip,
            });
        }
        mkdir(&self.worktrees)?;
        let dir = self
            .worktrees
            .join(format!("merge-{}", crate::task::new_id()));
        let result = self
            .merge_in(&mirror, &dir, repo, branch, tested, method, message)
            .await;
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn merge_in(
        &self,
        mirror: &Path,
        dir: &Path,
        repo: &RepoRef,
        branch: &str,
        tested: &str,
        method: MergeMethod,
        message: &str,
    ) -> Result<String> {
        let dir_s = dir.display().to_string();
        git(
            &self.worktrees,
            &[
                "clone",
                "--quiet",
                "--branch",
                &repo.base,
                "--",
                &mirror.display().to_string(),
                &dir_s,
            ],
        )
        .await?;
        let conflict = |e: WorkspaceError| match e {
            WorkspaceError::Git { stderr, .. } => WorkspaceError::Conflict {
                branch: branch.into(),
                base: repo.base.clone(),
                detail: crate::task::truncate_chars(&stderr, 300),
            },
            other => other,
        };
        let ident = BOT_IDENT;
        let with_ident = |args: &[&str]| -> Vec<String> {
            ident
                .iter()
                .chain(args.iter())
                .map(|s| s.to_string())
                .collect()
        };
        let run = |args: Vec<String>| async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            git(dir, &refs).await
        };
        match method {
            MergeMethod::Squash => {
                run(with_ident(&["merge", "--squash", "--quiet", tested]))
                    .await
                    .map_err(conflict)?;
                run(with_ident(&[
                    "commit",
                    "--quiet",
                    "--no-verify",
                    "-m",
                    message,
                ]))
                .await?;
            }
            MergeMethod::Merge => {
                run(with_ident(&[
                    "merge",
                    "--no-ff",
                    "--quiet",
                    "--no-verify",
                    "-m",
                    message,
                    tested,
                ]))
                .await
                .map_err(conflict)?;
            }
            MergeMethod::Rebase => {
                run(with_ident(&[
                    "checkout",
                    "--quiet",
                    "-B",
                    "slipway-rebase",
                    tested,
                ]))
                .await?;
                run(with_ident(&["rebase", "--quiet", &repo.base]))
                    .await
                    .map_err(conflict)?;
                run(with_ident(&["checkout", "--quiet", &repo.base])).await?;
                run(with_ident(&[
                    "merge",
                    "--ff-only",
                    "--quiet",
                    "slipway-rebase",
                ]))
                .await?;
            }
        }
        let sha = git(dir, &["rev-parse", "HEAD"]).await?.trim().to_string();
        git(dir, &["push", "--quiet", "--", &repo.source, &format!("HEAD:refs/heads/{}", repo.base)])
            .await
            .map_err(|e| match e {
                WorkspaceError::Git { stderr, .. } => WorkspaceError::BaseRejected {
                    repo: repo.source.clone(),
                    base: repo.base.clone(),
                    detail: if stderr.contains("checked out") {
                        format!("{} is checked out there; serve local-forge repos as bare repositories (git clone --bare)", repo.base)
                    } else {
                        crate::task::truncate_chars(&stderr, 300)
                    },
                },
                other => other,
            })?;
        Ok(sha)
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

/// `owner/name` from a clone URL (`https://host/owner/name.git`, `git@host:owner/name.git`).
pub fn repo_name_from_url(url: &str) -> String {
    let trimmed = url.trim_end_matches('/').trim_end_matches(".git");
    let parts: Vec<&str> = trimmed
        .split(['/', ':'])
        .filter(|p| !p.is_empty())
        .collect();
    match parts.as_slice() {
        [.., owner, name] => format!("{owner}/{name}"),
        [name] => (*name).to_string(),
        [] => "repo".into(),
    }
}

/// Undoes git's C-style quoting of a path (`"a\\303\\251.txt"` → `aé.txt`).
pub fn unquote_path(p: &str) -> String {
    let Some(inner) = p.strip_prefix('"').and_then(|q| q.strip_suffix('"')) else {
        return p.to_string();
    };
    let mut bytes = Vec::new();
    let mut it = inner.bytes().peekable();
    while let Some(b) = it.next() {
        if b != b'\\' {
            bytes.push(b);
            continue;
        }
        match it.next() {
            Some(b'n') => bytes.push(b'\n'),
            Some(b't') => bytes.push(b'\t'),
            Some(b'r') => bytes.push(b'\r'),
            Some(d @ b'0'..=b'7') => {
                let mut v = u32::from(d - b'0');
                for _ in 0..2 {
                    if let Some(&n @ b'0'..=b'7') = it.peek() {
                        v = v * 8 + u32::from(n - b'0');
                        it.next();
                    }
                }
                bytes.push(v as u8);
            }
            Some(other) => bytes.push(other),
            None => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Per-file added and deleted lines of a unified diff (`git diff --text` output).
pub fn changes_from_diff(diff: &str) -> Vec<FileChange> {
    let mut out: Vec<FileChange> = Vec::new();
    let mut in_header = false;
    let mut old_path: Option<String> = None;
    for line in diff.lines() {
        if line.starts_with("diff --git ") {
            in_header = true;
            old_path = None;
            continue;
        }
        if in_header {
            if let Some(p) = line.strip_prefix("--- ") {
                old_path = (p != "/dev/null")
                    .then(|| unquote_path(p).trim_start_matches("a/").to_string());
            } else if let Some(p) = line.strip_prefix("+++ ") {
                let path = if p == "/dev/null" {
                    old_path.clone().unwrap_or_default()
                } else {
                    unquote_path(p).trim_start_matches("b/").to_string()
                };
                out.push(FileChange {
                    path,
                    added: 0,
                    deleted: 0,
                    binary: false,
                });
            } else if line.starts_with("Binary files ") {
                // Only without --text; kept for completeness.
                if let Some(rest) = line.strip_prefix("Binary files ") {
                    let path = rest
                        .rsplit(" and ")
                        .next()
                        .unwrap_or("")
                        .trim_end_matches(" differ");
                    out.push(FileChange {
                        path: unquote_path(path).trim_start_matches("b/").to_string(),
                        added: 0,
                        deleted: 0,
                        binary: true,
                    });
                }
            } else if line.starts_with("@@") {
                in_header = false;
            }
            continue;
        }
        if let Some(last) = out.last_mut() {
            if line.starts_with('+') {
                last.added += 1;
            } else if line.starts_with('-') {
                last.deleted += 1;
            }
        }
    }
    out
}

/// How the gates read a diff: as text (no `.gitattributes -diff`, no external diff drivers
/// or textconv) with paths unquoted.
const GATE_DIFF: [&str; 6] = [
    "-c",
    "core.quotePath=false",
    "diff",
    "--text",
    "--no-ext-diff",
    "--no-textconv",
];

/// Commits are authored by the bot (the requester goes in a trailer), never signed.
const BOT_IDENT: [&str; 6] = [
    "-c",
    "user.name=slipway[bot]",
    "-c",
    "user.email=slipway-bot@users.noreply.local",
    "-c",
    "commit.gpgsign=false",
];

/// Base arguments for every host git command: no hooks, no fsmonitor, no prompts.
const GIT_SAFETY: &[&str] = &[
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "protocol.file.allow=always",
];

fn git_command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .args(GIT_SAFETY)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn finish(cmd: &mut Command, args: &[&str], input: Option<&str>) -> Result<String> {
    use tokio::io::AsyncWriteExt;
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().map_err(|source| WorkspaceError::Io {
        path: PathBuf::from("git"),
        source,
    })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .await
            .map_err(|source| WorkspaceError::Io {
                path: PathBuf::from("git stdin"),
                source,
            })?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|source| WorkspaceError::Io {
            path: PathBuf::from("git"),
            source,
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(WorkspaceError::Git {
            args: args.join(" "),
            code: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Runs `git args` in `dir` and returns stdout.
pub async fn git(dir: &Path, args: &[&str]) -> Result<String> {
    finish(&mut git_command(dir, args), args, None).await
}

/// [`git`] with extra environment (credentials for one command).
async fn git_env(dir: &Path, args: &[&str], env: &[(String, String)]) -> Result<String> {
    let mut cmd = git_command(dir, args);
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    finish(&mut cmd, args, None).await
}

/// `git --git-dir=<git_dir> --work-tree=<path> args` for a run's clone, not yet run.
fn wt_command(wt: &Worktree, args: &[&str]) -> Command {
    let mut cmd = git_command(&wt.path, &[]);
    cmd.arg(format!("--git-dir={}", wt.git_dir.display()))
        .arg(format!("--work-tree={}", wt.path.display()))
        .args(args);
    cmd
}

async fn wt_git(wt: &Worktree, args: &[&str]) -> Result<String> {
    finish(&mut wt_command(wt, args), args, None).await
}

async fn wt_git_with_input(wt: &Worktree, args: &[&str], input: &str) -> Result<String> {
    finish(&mut wt_command(wt, args), args, Some(input)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_urls() {
        assert_eq!(
            repo_name_from_url("https://github.com/acme/calc.git"),
            "acme/calc"
        );
        assert_eq!(
            repo_name_from_url("git@github.com:acme/calc.git"),
            "acme/calc"
        );
        assert_eq!(repo_name_from_url("file:///srv/git/calc.git"), "git/calc");
    }

    #[test]
    fn changes_count_from_the_diff_with_unusual_names() {
        let diff = "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1,2 +1,3 @@\n-x\n+y\n+++z\n ctx\ndiff --git \"a/.github/workflows/\\303\\251.yml\" \"b/.github/workflows/\\303\\251.yml\"\nnew file mode 100644\n--- /dev/null\n+++ \"b/.github/workflows/\\303\\251.yml\"\n@@ -0,0 +1 @@\n+on: push\ndiff --git a/gone.txt b/gone.txt\ndeleted file mode 100644\n--- a/gone.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n";
        let c = changes_from_diff(diff);
        assert_eq!(c.len(), 3);
        assert_eq!(
            (c[0].path.as_str(), c[0].added, c[0].deleted),
            ("a.py", 2, 1)
        );
        assert_eq!(c[1].path, ".github/workflows/é.yml");
        assert_eq!((c[2].path.as_str(), c[2].deleted), ("gone.txt", 1));
    }
}
