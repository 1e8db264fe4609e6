//! A run's clone: made fresh from the mirror on the task's branch, with its git directory
//! outside the work tree and no remote, and removed when the run ends.
//!
//! Owns the `worktrees` and `gitdirs` directories of runs; it must not push or merge.

use std::path::Path;

use super::git::{git, wt_git};
use super::{Result, WorkspaceError, Workspaces, Worktree, mkdir};
use crate::task::RepoRef;

/// Patterns added to each clone's `.git/info/exclude`: caches that tools write during checks
/// and that no one means to commit. They only affect untracked files.
const RUN_EXCLUDES: &str =
    "__pycache__/\n*.pyc\n.pytest_cache/\n.mypy_cache/\n.ruff_cache/\nnode_modules/\n/target/\n";

impl Workspaces {
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

    /// Puts `wt` back on its base commit when it holds earlier runs' commits (a
    /// `dependency_update` rerun redoes its bump from the base): the push then replaces the
    /// old tip (`--force-with-lease` on it). Returns whether anything was reset.
    pub async fn reset_to_base(&self, wt: &mut Worktree) -> Result<bool> {
        let head = wt_git(wt, &["rev-parse", "HEAD"]).await?.trim().to_string();
        if head == wt.base_sha {
            return Ok(false);
        }
        wt_git(wt, &["reset", "--quiet", "--hard", &wt.base_sha]).await?;
        if wt.replaces.is_none() {
            wt.replaces = Some(head);
        }
        wt.start_sha = wt.base_sha.clone();
        Ok(true)
    }

    /// Paths changed in the work tree against `HEAD`: tracked files that differ, and new
    /// files that are not ignored (a lockfile a tool created), sorted.
    pub async fn dirty_paths(&self, wt: &Worktree) -> Result<Vec<String>> {
        let changed = wt_git(wt, &["diff", "--name-only", "HEAD"]).await?;
        let new = wt_git(wt, &["ls-files", "--others", "--exclude-standard"]).await?;
        let mut v: Vec<String> = changed
            .lines()
            .chain(new.lines())
            .map(String::from)
            .collect();
        v.sort();
        v.dedup();
        Ok(v)
    }

    /// Paths changed between `from` and `HEAD`, sorted.
    pub async fn changed_since(&self, wt: &Worktree, from: &str) -> Result<Vec<String>> {
        self.changed_between(wt, from, "HEAD").await
    }

    /// Paths changed between commits `from` and `to`, sorted.
    pub async fn changed_between(
        &self,
        wt: &Worktree,
        from: &str,
        to: &str,
    ) -> Result<Vec<String>> {
        let range = format!("{from}..{to}");
        let out = wt_git(wt, &["diff", "--no-renames", "--name-only", &range]).await?;
        let mut v: Vec<String> = out.lines().map(String::from).collect();
        v.sort();
        Ok(v)
    }

    /// Discards `paths` (from [`Self::dirty_paths`]): tracked ones go back to `HEAD`, new
    /// ones are removed. Ignored files are left alone.
    pub async fn discard(&self, wt: &Worktree, paths: &[String]) -> Result<()> {
        if paths.is_empty() {
            return Ok(());
        }
        let tracked = wt_git(wt, &["ls-files", "--"]).await?;
        let tracked: std::collections::HashSet<&str> = tracked.lines().collect();
        let (old, new): (Vec<&String>, Vec<&String>) =
            paths.iter().partition(|p| tracked.contains(p.as_str()));
        if !old.is_empty() {
            let mut args = vec!["checkout", "--quiet", "HEAD", "--"];
            args.extend(old.iter().map(|p| p.as_str()));
            wt_git(wt, &args).await?;
        }
        if !new.is_empty() {
            let mut args = vec!["clean", "-fq", "--"];
            args.extend(new.iter().map(|p| p.as_str()));
            wt_git(wt, &args).await?;
        }
        Ok(())
    }

    /// [`Self::prepare`], with the clone moved into `ws` and its git directory into `git`:
    /// existing directories (a warm pool slot's, already bound into a running container) that
    /// are filled, never replaced, so the container sees the files. `ws` may hold empty
    /// mount-point directories the runtime made (`.git`, a carried `node_modules`): they are
    /// left alone, and a tracked top-level entry with the same name is an error
    /// ([`WorkspaceError::Io`], `AlreadyExists`), so the caller can start a sandbox the usual
    /// way. On error, the run's own directories are removed; `ws`/`git` are the caller's.
    pub async fn prepare_at(
        &self,
        repo: &RepoRef,
        branch: &str,
        run_id: &str,
        revision: u32,
        ws: &Path,
        git: &Path,
    ) -> Result<Worktree> {
        let wt = self.prepare(repo, branch, run_id, revision).await?;
        let moved = move_children(&wt.path, ws).and_then(|()| move_children(&wt.git_dir, git));
        self.remove(&wt);
        moved?;
        Ok(Worktree {
            path: ws.to_path_buf(),
            git_dir: git.to_path_buf(),
            ..wt
        })
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
}

/// Moves every entry of `from` into the existing directory `to` (renames: the same file
/// system), leaving `to` itself, and what it held, in place.
fn move_children(from: &Path, to: &Path) -> Result<()> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| WorkspaceError::Io { path, source }
    };
    for entry in std::fs::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let dest = to.join(entry.file_name());
        if std::fs::symlink_metadata(&dest).is_ok() {
            return Err(WorkspaceError::Io {
                path: dest,
                source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            });
        }
        std::fs::rename(entry.path(), &dest).map_err(io(&entry.path()))?;
    }
    Ok(())
}
