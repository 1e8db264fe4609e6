//! How every host git command is built and run: no hooks, no fsmonitor, no prompts, no
//! global or system config, and a run's git directory always named explicitly.
//!
//! Owns spawning `git`; it must not decide what to run (the sibling files do).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use super::{Result, WorkspaceError, Worktree};

/// Commits are authored by the bot (the requester goes in a trailer), never signed.
pub(super) const BOT_IDENT: [&str; 6] = [
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

pub(super) fn git_command(dir: &Path, args: &[&str]) -> Command {
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

pub(super) async fn finish(
    cmd: &mut Command,
    args: &[&str],
    input: Option<&str>,
) -> Result<String> {
    let out = finish_bytes(cmd, args, input).await?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// [`finish`], returning stdout's bytes as git wrote them (for `-z` output, whose paths
/// need not be UTF-8).
pub(super) async fn finish_bytes(
    cmd: &mut Command,
    args: &[&str],
    input: Option<&str>,
) -> Result<Vec<u8>> {
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
        Ok(out.stdout)
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
pub(super) async fn git_env(dir: &Path, args: &[&str], env: &[(String, String)]) -> Result<String> {
    let mut cmd = git_command(dir, args);
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    finish(&mut cmd, args, None).await
}

/// `git --git-dir=<git_dir> --work-tree=<path> args` for a run's clone, not yet run.
pub(super) fn wt_command(wt: &Worktree, args: &[&str]) -> Command {
    let mut cmd = git_command(&wt.path, &[]);
    cmd.arg(format!("--git-dir={}", wt.git_dir.display()))
        .arg(format!("--work-tree={}", wt.path.display()))
        .args(args);
    cmd
}

pub(super) async fn wt_git(wt: &Worktree, args: &[&str]) -> Result<String> {
    finish(&mut wt_command(wt, args), args, None).await
}

/// [`wt_git`], returning stdout's bytes unconverted.
pub(super) async fn wt_git_bytes(wt: &Worktree, args: &[&str]) -> Result<Vec<u8>> {
    finish_bytes(&mut wt_command(wt, args), args, None).await
}

pub(super) async fn wt_git_with_input(wt: &Worktree, args: &[&str], input: &str) -> Result<String> {
    finish(&mut wt_command(wt, args), args, Some(input)).await
}
