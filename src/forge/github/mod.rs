//! The GitHub forge: branches pushed over HTTPS with a token handed to git through its
//! environment, one PR per task (found by number, else by head branch), CI read from check
//! runs and the combined status, merges with the tested SHA, audit comments, closes.
//!
//! REST paths and answers follow GitHub's REST docs (pulls, issues, checks, statuses, branch
//! protection, git refs); `shared/FIELD_NOTES.md` lists the octocrab traps this avoids (the
//! combined status and check-run status are read raw; `mergeable` is `null` just after a
//! push).
//!
//! This file holds the forge, its construction and the `Forge` implementation, which
//! delegates the longer jobs to sibling files: `repos` (clone URLs and git credentials),
//! `pulls` (PR lookup, opening, text and comments), `ci_wait` (polling CI for a commit),
//! `merge` (the merge with the tested SHA and why GitHub refused it), plus `ci` (pure CI
//! evaluation), `client` (the REST client) and `webhook`. It must not run git itself (the
//! workspaces push) and must not decide whether a change may merge (the gates and approvals
//! do).

pub mod ci;
mod ci_wait;
pub mod client;
mod merge;
mod pulls;
mod repos;
pub mod settings;
pub mod webhook;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use self::client::{GithubClient, Method};
use self::repos::{GitAuth, KnownRepos};
use super::{CiOutcome, Forge, ForgeError, MergeRequest, Merged, Publication, PullRequestContent};
use crate::forge::github::settings::GithubConfig;
use crate::task::{RepoRef, Task};
use crate::workspace::{Workspaces, Worktree};

/// The label every slipway PR carries.
pub const LABEL: &str = "slipway";

/// The GitHub backend.
pub struct GithubForge {
    client: GithubClient,
    workspaces: Workspaces,
    cfg: GithubConfig,
    known: KnownRepos,
    /// Woken by the webhook route on check and status events: CI is polled at once.
    ci_wake: Notify,
}

impl GithubForge {
    /// The forge and the workspaces it pushes with (`workspaces` gains the git credentials).
    pub fn new(
        client: GithubClient,
        workspaces: Workspaces,
        cfg: &GithubConfig,
    ) -> (Self, Workspaces) {
        let known = KnownRepos::default();
        let workspaces = workspaces.with_credentials(Arc::new(GitAuth {
            client: client.clone(),
            known: known.clone(),
        }));
        (
            Self {
                client,
                workspaces: workspaces.clone(),
                cfg: cfg.clone(),
                known,
                ci_wake: Notify::new(),
            },
            workspaces,
        )
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        repo: &str,
        method: Method,
        path: String,
        body: Option<Value>,
    ) -> Result<T, ForgeError> {
        Ok(self.client.call(repo, method, &path, body.as_ref()).await?)
    }
}

#[async_trait]
impl Forge for GithubForge {
    fn kind(&self) -> &'static str {
        "github"
    }

    fn has_ci(&self) -> bool {
        true
    }

    fn has_pull_requests(&self) -> bool {
        true
    }

    fn nudge(&self) {
        self.ci_wake.notify_waiters();
    }

    async fn clone_url(&self, repo: &RepoRef) -> Result<String, ForgeError> {
        self.clone_url_of(&repo.name).await
    }

    async fn publish(
        &self,
        wt: &Worktree,
        task: &Task,
        content: &PullRequestContent,
    ) -> Result<Publication, ForgeError> {
        let url = self.clone_url_of(&task.repo.name).await?;
        self.workspaces.push(wt, &url).await?;
        let (pr, opened) = match self.find(task).await? {
            Some(p) if p.is_merged() => {
                return Err(ForgeError::NotOpen {
                    pr: p.html_url,
                    state: "merged".into(),
                });
            }
            Some(p) => {
                // A revision (or a retry after a crash): same PR, fresh text; a PR closed by
                // ❌ is reopened by the run a person asked for.
                let mut body = json!({"title": content.title, "body": content.body});
                if p.state != "open" {
                    body["state"] = json!("open");
                }
                (self.patch(task, p.number, body).await?, false)
            }
            None => self.open(task, content).await?,
        };
        Ok(Publication {
            location: format!("{} (branch {})", pr.html_url, wt.branch),
            pr_url: Some(pr.html_url),
            pr_number: Some(pr.number),
            opened,
        })
    }

    async fn describe(&self, task: &Task, content: &PullRequestContent) -> Result<(), ForgeError> {
        let number = match task.pr_number {
            Some(n) => n,
            None => match self.find(task).await? {
                Some(pr) => pr.number,
                None => return Ok(()),
            },
        };
        self.patch(
            task,
            number,
            json!({"title": content.title, "body": content.body}),
        )
        .await
        .map(|_| ())
    }

    async fn wait_ci(
        &self,
        task: &Task,
        sha: &str,
        cancel: &CancellationToken,
    ) -> Result<CiOutcome, ForgeError> {
        self.wait_for_ci(task, sha, cancel).await
    }

    async fn merge(&self, task: &Task, req: &MergeRequest<'_>) -> Result<Merged, ForgeError> {
        self.merge_pull(task, req).await
    }

    async fn merged_at(&self, task: &Task, tested: &str) -> Result<Option<Merged>, ForgeError> {
        self.merged_at_tested(task, tested).await
    }

    async fn close(&self, task: &Task, by: &str) -> Result<Option<String>, ForgeError> {
        let Some(pr) = self.find(task).await? else {
            return Ok(None);
        };
        if pr.state != "open" {
            return Ok(None);
        }
        self.comment(
            task,
            pr.number,
            &format!("Closed from Slack by {by}: no more runs or merges for this task."),
        )
        .await?;
        self.patch(task, pr.number, json!({"state": "closed"}))
            .await?;
        Ok(Some(pr.html_url))
    }

    /// `GET /advisories/{ghsa_id}` (REST API, "Global security advisories"), with the
    /// repo's credentials.
    async fn advisory(&self, repo: &str, id: &str) -> Result<String, ForgeError> {
        let v: serde_json::Value = self
            .client
            .call(repo, Method::Get, &format!("/advisories/{id}"), None)
            .await?;
        Ok(v.to_string())
    }
}
