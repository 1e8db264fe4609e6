//! Merges into the base (the local forge's merge, in a throwaway clone of the mirror, pushed
//! fast-forward only) and reverts of merged changes on a run's branch.
//!
//! Owns changing a base branch and writing reverts; it only merges the exact commit that was
//! tested, on top of the base it was tested on.

use std::path::Path;

use super::git::{BOT_IDENT, git, wt_git, wt_git_with_input};
use super::{Result, WorkspaceError, Workspaces, Worktree, mkdir};
use crate::repos::MergeMethod;
use crate::task::RepoRef;

impl Workspaces {
    /// The base's commit that merged task `task_id` at `tested` (the local forge's merge
    /// message names both: `Slipway-Task:` and `(tested …)`; a rebase merge has no message
    /// but puts `tested` itself on the base), if there is one.
    pub async fn find_merge(
        &self,
        repo: &RepoRef,
        task_id: &str,
        tested: &str,
    ) -> Result<Option<String>> {
        let mirror = self.refresh_mirror(repo).await?;
        let out = git(
            &mirror,
            &[
                "log",
                "--format=%H",
                "-F",
                "--all-match",
                &format!("--grep=Slipway-Task: {task_id}"),
                &format!("--grep=(tested {tested})"),
                &format!("refs/heads/{}", repo.base),
                "--",
            ],
        )
        .await?;
        if let Some(sha) = out.lines().next() {
            return Ok(Some(sha.trim().to_string()));
        }
        // A rebase merge fast-forwards the base to the tested commit itself: no message.
        let base = format!("refs/heads/{}", repo.base);
        Ok(
            git(&mirror, &["merge-base", "--is-ancestor", tested, &base])
                .await
                .ok()
                .map(|_| tested.to_string()),
        )
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
        let name = format!("merge-{}", crate::task::new_id());
        let dir = self.worktrees.join(&name);
        let _claim = self.claim(&name);
        let result = self
            .merge_in(&mirror, &dir, repo, branch, tested, method, message)
            .await;
        crate::sweep::remove_tree(&dir);
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
