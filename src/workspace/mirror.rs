//! The mirror cache: one bare mirror per source repo under `$SLIPWAY_DATA_DIR/mirrors`,
//! fetched under a per-mirror lock, and how a `--repo` argument names its source.
//!
//! Owns the `mirrors` directory only; it must not create work trees (see `worktree`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Mutex;

use super::git::git_env;
use super::{Result, WorkspaceError, Workspaces, mkdir, not_found_or};
use crate::task::RepoRef;

impl Workspaces {
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
            let name = format!(".tmp-{}", crate::task::new_id());
            let tmp = self.mirrors.join(&name);
            let _claim = self.claim(&name);
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
}
