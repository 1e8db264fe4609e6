//! Commits as the bot and pushes a run's branch.
//!
//! Owns writing history on a run's branch and sending it to a destination named on the
//! command line; it must not store a credential or a remote in the clone.

use super::git::{BOT_IDENT, finish, wt_command, wt_git, wt_git_with_input};
use super::{Result, Workspaces, Worktree};

impl Workspaces {
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
}
