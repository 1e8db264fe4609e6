//! Which repos this forge resolved: clone URL ↔ `owner/name`, learnt from the API once per
//! repo, and the git credentials that go only to those URLs.
//!
//! Owns that cache and the credential hook handed to the workspaces; it must not push.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::GithubForge;
use super::client::{GithubClient, Method};
use crate::forge::ForgeError;
use crate::workspace::GitCredentials;

/// What slipway reads of `GET /repos/{o}/{r}`.
#[derive(Debug, Deserialize)]
struct RepoInfo {
    clone_url: String,
}

/// Clone URL → `owner/name`, for the repos this process resolved through the API (once
/// each): the forge's cache, and the only URLs git credentials go to.
#[derive(Clone, Default)]
pub(super) struct KnownRepos(Arc<std::sync::Mutex<HashMap<String, String>>>);

impl KnownRepos {
    pub(super) fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn repo_of(&self, url: &str) -> Option<String> {
        self.map().get(url).cloned()
    }

    pub(super) fn url_of(&self, repo: &str) -> Option<String> {
        self.map()
            .iter()
            .find(|(_, r)| *r == repo)
            .map(|(u, _)| u.clone())
    }
}

/// HTTPS git credentials for the repos the forge resolved: `x-access-token:<token>`
/// (a GitHub App's installation token is refreshed before it expires).
pub(super) struct GitAuth {
    pub(super) client: GithubClient,
    pub(super) known: KnownRepos,
}

#[async_trait]
impl GitCredentials for GitAuth {
    async fn header(&self, url: &str) -> Result<Option<String>, String> {
        match self.known.repo_of(url) {
            Some(repo) => self
                .client
                .git_header(&repo)
                .await
                .map(Some)
                .map_err(|e| e.to_string()),
            None => Ok(None),
        }
    }
}

impl GithubForge {
    /// The repo's clone URL: from the API the first time, then from [`KnownRepos`].
    pub(super) async fn clone_url_of(&self, repo: &str) -> Result<String, ForgeError> {
        if let Some(url) = self.known.url_of(repo) {
            return Ok(url);
        }
        let info: RepoInfo = self
            .call(repo, Method::Get, format!("/repos/{repo}"), None)
            .await?;
        self.known
            .map()
            .insert(info.clone_url.clone(), repo.to_string());
        Ok(info.clone_url)
    }
}
