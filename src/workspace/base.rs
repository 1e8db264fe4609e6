//! The base commit's side of a run: its tree exported for setup, a git directory holding it
//! alone, and what setup generated in that tree. Setup only ever sees these, never the
//! branch tip an agent wrote to.

use std::path::{Path, PathBuf};

use super::git::{finish, finish_bytes, git_command, wt_command};
use super::{Result, Workspaces, Worktree};

impl Workspaces {
    /// Writes the tree of the run's base commit (`wt.base_sha`: the base branch's tip, which
    /// only people changed) into `dest`, an empty directory: every tracked file, symlinks as
    /// symlinks, no `.git`, submodules left empty. Setup runs from this copy, never from the
    /// branch tip an agent wrote to. Uses a private index, kept at `<dest>.index` (the caller
    /// removes it) so the files setup generates can be listed afterwards; the run's own index
    /// is untouched. Unlike `git archive`, `export-ignore` attributes do not drop files.
    pub async fn export_base(&self, wt: &Worktree, dest: &Path) -> Result<()> {
        let index = dest.with_extension("index");
        let dest_arg = format!("--work-tree={}", dest.display());
        let run = |args: &'static [&'static str]| {
            let mut cmd = wt_command(wt, &[]);
            cmd.arg(&dest_arg).args(args);
            cmd.env("GIT_INDEX_FILE", &index);
            cmd
        };
        let sha = wt.base_sha.clone();
        let mut read = wt_command(wt, &["read-tree", &sha]);
        read.env("GIT_INDEX_FILE", &index);
        let res = async {
            finish(&mut read, &["read-tree"], None).await?;
            finish(
                &mut run(&["checkout-index", "--all", "--force"]),
                &["checkout-index"],
                None,
            )
            .await?;
            Ok(())
        }
        .await;
        if res.is_err() {
            let _ = std::fs::remove_file(&index);
        }
        res
    }

    /// Makes `dir/.git`: a git directory holding only the run's base commit (fetched
    /// shallow from the run's git directory), HEAD detached at it and `index` (the exported
    /// base tree's) as its index. Setup mounts it, so no agent commit can be read (or
    /// installed from) through git. Returns the git directory's path.
    pub async fn base_git_dir(&self, wt: &Worktree, dir: &Path, index: &Path) -> Result<PathBuf> {
        let parent = dir.parent().unwrap_or(dir);
        let dir_s = dir.display().to_string();
        let init = ["init", "-q", "--template=", dir_s.as_str()];
        finish(&mut git_command(parent, &init), &init, None).await?;
        let gd = dir.join(".git");
        let gd_arg = format!("--git-dir={}", gd.display());
        let from = wt.git_dir.display().to_string();
        let fetch = [
            gd_arg.as_str(),
            "fetch",
            "-q",
            "--no-tags",
            "--depth=1",
            from.as_str(),
            wt.base_sha.as_str(),
        ];
        finish(&mut git_command(dir, &fetch), &fetch, None).await?;
        let head = [
            gd_arg.as_str(),
            "update-ref",
            "--no-deref",
            "HEAD",
            wt.base_sha.as_str(),
        ];
        finish(&mut git_command(dir, &head), &head, None).await?;
        if index.is_file() {
            std::fs::copy(index, gd.join("index")).map_err(|source| super::WorkspaceError::Io {
                path: gd.join("index"),
                source,
            })?;
        }
        Ok(gd)
    }

    /// The untracked, git-ignored files in `tree` (an exported base tree after setup ran in
    /// it), against `index` (its private index) and the repo's ignore rules: repo-relative
    /// paths, in git's order.
    pub async fn ignored_files(
        &self,
        wt: &Worktree,
        tree: &Path,
        index: &Path,
    ) -> Result<Vec<String>> {
        let args = [
            "ls-files",
            "-z",
            "--others",
            "--ignored",
            "--exclude-standard",
        ];
        let mut cmd = wt_command(wt, &[]);
        cmd.arg(format!("--work-tree={}", tree.display()))
            .args(args)
            .current_dir(tree)
            .env("GIT_INDEX_FILE", index);
        let out = finish_bytes(&mut cmd, &args, None).await?;
        Ok(out
            .split(|b| *b == 0)
            .filter(|r| !r.is_empty())
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect())
    }
}
