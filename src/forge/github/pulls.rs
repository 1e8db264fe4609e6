//! The task's pull request: finding it (by number, else by head branch), opening it with
//! its label, updating its text and state, and commenting on it.
//!
//! Owns the PR and issue endpoints other than the merge; it must not merge or read CI.

use serde::Deserialize;
use serde_json::{Value, json};

use super::client::{GithubError, Method};
use super::{GithubForge, LABEL};
use crate::forge::{ForgeError, PullRequestContent};
use crate::task::Task;

/// What slipway reads of a pull request (`GET /repos/{o}/{r}/pulls/{n}` and list entries).
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Pull {
    pub(super) number: u64,
    pub(super) html_url: String,
    pub(super) state: String,
    #[serde(default)]
    pub(super) merged: bool,
    #[serde(default)]
    pub(super) merged_at: Option<String>,
    pub(super) head: Head,
    #[serde(default)]
    pub(super) mergeable: Option<bool>,
    #[serde(default)]
    pub(super) mergeable_state: Option<String>,
    #[serde(default)]
    pub(super) commits: Option<u32>,
    /// The merge's commit on the base, once merged.
    #[serde(default)]
    pub(super) merge_commit_sha: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct Head {
    #[serde(rename = "ref")]
    pub(super) branch: String,
    pub(super) sha: String,
}

impl Pull {
    pub(super) fn is_merged(&self) -> bool {
        self.merged || self.merged_at.is_some()
    }
}

impl GithubForge {
    /// The task's PR: by its stored number, else the newest PR whose head is the task's
    /// branch (open ones first).
    pub(super) async fn find(&self, task: &Task) -> Result<Option<Pull>, ForgeError> {
        let repo = &task.repo.name;
        if let Some(n) = task.pr_number {
            return self
                .call(repo, Method::Get, format!("/repos/{repo}/pulls/{n}"), None)
                .await
                .map(Some);
        }
        let owner = repo.split('/').next().unwrap_or_default();
        let mut pulls: Vec<Pull> = self
            .call(
                repo,
                Method::Get,
                format!(
                    "/repos/{repo}/pulls?head={owner}:{}&state=all&per_page=10",
                    task.branch
                ),
                None,
            )
            .await?;
        pulls.retain(|p| p.head.branch == task.branch);
        pulls.sort_by_key(|p| (p.state == "open", p.number));
        Ok(pulls.pop())
    }

    /// Opens the PR, or (when GitHub says one exists for the head) finds it.
    pub(super) async fn open(
        &self,
        task: &Task,
        content: &PullRequestContent,
    ) -> Result<(Pull, bool), ForgeError> {
        let repo = &task.repo.name;
        let created = self
            .client
            .call::<Pull>(
                repo,
                Method::Post,
                &format!("/repos/{repo}/pulls"),
                Some(&json!({
                    "title": content.title,
                    "head": task.branch,
                    "base": task.repo.base,
                    "body": content.body,
                    "maintainer_can_modify": false,
                })),
            )
            .await;
        match created {
            Ok(p) => {
                self.call::<Value>(
                    repo,
                    Method::Post,
                    format!("/repos/{repo}/issues/{}/labels", p.number),
                    Some(json!({"labels": std::iter::once(LABEL.to_string())
                        .chain(content.labels.iter().cloned())
                        .collect::<Vec<_>>()})),
                )
                .await?;
                Ok((p, true))
            }
            // Idempotent by head branch: a PR made by an earlier attempt is this task's PR.
            Err(GithubError::Status {
                status: 422,
                message,
                ..
            }) if message.contains("already exists") => {
                match self
                    .find(&Task {
                        pr_number: None,
                        ..task.clone()
                    })
                    .await?
                {
                    Some(p) => Ok((p, false)),
                    None => Err(ForgeError::Github(GithubError::Status {
                        method: "POST",
                        path: format!("/repos/{repo}/pulls"),
                        status: 422,
                        message,
                    })),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn patch(&self, task: &Task, n: u64, body: Value) -> Result<Pull, ForgeError> {
        let repo = &task.repo.name;
        self.call(
            repo,
            Method::Patch,
            format!("/repos/{repo}/pulls/{n}"),
            Some(body),
        )
        .await
    }

    pub(super) async fn comment(&self, task: &Task, n: u64, body: &str) -> Result<(), ForgeError> {
        let repo = &task.repo.name;
        self.call::<Value>(
            repo,
            Method::Post,
            format!("/repos/{repo}/issues/{n}/comments"),
            Some(json!({"body": body})),
        )
        .await
        .map(|_| ())
    }
}
