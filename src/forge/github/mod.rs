//! The GitHub forge: branches pushed over HTTPS with a token handed to git through its
//! environment, one PR per task (found by number, else by head branch), CI read from check
//! runs and the combined status, merges with the tested SHA, audit comments, closes.
//!
//! REST paths and answers follow GitHub's REST docs (pulls, issues, checks, statuses, branch
//! protection, git refs); `shared/FIELD_NOTES.md` lists the octocrab traps this avoids (the
//! combined status and check-run status are read raw; `mergeable` is `null` just after a
//! push).

pub mod ci;
pub mod client;
pub mod settings;
pub mod webhook;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use self::ci::{CheckRun, CiState, CommitStatus};
use self::client::{GithubClient, GithubError, Method};
use super::{CiOutcome, Forge, ForgeError, MergeRequest, Merged, Publication, PullRequestContent};
use crate::forge::github::settings::GithubConfig;
use crate::repos::MergeMethod;
use crate::task::{RepoRef, Task, short_sha};
use crate::workspace::{GitCredentials, Workspaces, Worktree};

/// The label every slipway PR carries.
pub const LABEL: &str = "slipway";

/// What slipway reads of `GET /repos/{o}/{r}`.
#[derive(Debug, Deserialize)]
struct RepoInfo {
    clone_url: String,
}

/// What slipway reads of a pull request (`GET /repos/{o}/{r}/pulls/{n}` and list entries).
#[derive(Debug, Clone, Deserialize)]
struct Pull {
    number: u64,
    html_url: String,
    state: String,
    #[serde(default)]
    merged: bool,
    #[serde(default)]
    merged_at: Option<String>,
    head: Head,
    #[serde(default)]
    mergeable: Option<bool>,
    #[serde(default)]
    mergeable_state: Option<String>,
    #[serde(default)]
    commits: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
struct Head {
    #[serde(rename = "ref")]
    branch: String,
    sha: String,
}

impl Pull {
    fn is_merged(&self) -> bool {
        self.merged || self.merged_at.is_some()
    }
}

/// Clone URL → `owner/name`, for the repos this process resolved through the API (once
/// each): the forge's cache, and the only URLs git credentials go to.
#[derive(Clone, Default)]
struct KnownRepos(Arc<std::sync::Mutex<HashMap<String, String>>>);

impl KnownRepos {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn repo_of(&self, url: &str) -> Option<String> {
        self.map().get(url).cloned()
    }

    fn url_of(&self, repo: &str) -> Option<String> {
        self.map()
            .iter()
            .find(|(_, r)| *r == repo)
            .map(|(u, _)| u.clone())
    }
}

/// HTTPS git credentials for the repos the forge resolved: `x-access-token:<token>`
/// (a GitHub App's installation token is refreshed before it expires).
struct GitAuth {
    client: GithubClient,
    known: KnownRepos,
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

    /// The repo's clone URL: from the API the first time, then from [`KnownRepos`].
    async fn clone_url_of(&self, repo: &str) -> Result<String, ForgeError> {
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

    /// The task's PR: by its stored number, else the newest PR whose head is the task's
    /// branch (open ones first).
    async fn find(&self, task: &Task) -> Result<Option<Pull>, ForgeError> {
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
    async fn open(
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
                    Some(json!({"labels": [LABEL]})),
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

    async fn patch(&self, task: &Task, n: u64, body: Value) -> Result<Pull, ForgeError> {
        let repo = &task.repo.name;
        self.call(
            repo,
            Method::Patch,
            format!("/repos/{repo}/pulls/{n}"),
            Some(body),
        )
        .await
    }

    async fn comment(&self, task: &Task, n: u64, body: &str) -> Result<(), ForgeError> {
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

    /// Required check names from the base's branch protection; `None` when the branch is not
    /// protected or protection is unreadable (a token without admin rights gets 403/404).
    async fn required_checks(
        &self,
        repo: &str,
        base: &str,
    ) -> Result<Option<Vec<String>>, ForgeError> {
        let got = self
            .client
            .call::<Value>(
                repo,
                Method::Get,
                &format!("/repos/{repo}/branches/{base}/protection"),
                None,
            )
            .await;
        let p = match got {
            Ok(p) => p,
            Err(GithubError::Status {
                status: 403 | 404, ..
            }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let rsc = &p["required_status_checks"];
        if rsc.is_null() {
            return Ok(None);
        }
        let mut names: Vec<String> = rsc["contexts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str().map(str::to_owned))
            .collect();
        for c in rsc["checks"].as_array().into_iter().flatten() {
            if let Some(n) = c["context"].as_str()
                && !names.iter().any(|x| x == n)
            {
                names.push(n.to_string());
            }
        }
        Ok(if names.is_empty() { None } else { Some(names) })
    }

    /// Check runs and commit statuses on `sha`: two calls.
    async fn ci_state(
        &self,
        repo: &str,
        sha: &str,
        required: Option<&[String]>,
    ) -> Result<CiState, ForgeError> {
        #[derive(Deserialize)]
        struct Runs {
            #[serde(default)]
            check_runs: Vec<CheckRun>,
        }
        #[derive(Deserialize)]
        struct Combined {
            #[serde(default)]
            statuses: Vec<CommitStatus>,
        }
        let runs: Runs = self
            .call(
                repo,
                Method::Get,
                format!("/repos/{repo}/commits/{sha}/check-runs?per_page=100"),
                None,
            )
            .await?;
        let combined: Combined = self
            .call(
                repo,
                Method::Get,
                format!("/repos/{repo}/commits/{sha}/status"),
                None,
            )
            .await?;
        Ok(ci::evaluate(&runs.check_runs, &combined.statuses, required))
    }

    /// Annotations of up to three failing check runs, as `path:line message` lines.
    async fn annotations(
        &self,
        repo: &str,
        failures: &[ci::CiFailure],
    ) -> Vec<(String, Vec<String>)> {
        let mut out = Vec::new();
        for f in failures.iter().filter(|f| f.check_run_id.is_some()).take(3) {
            let Some(id) = f.check_run_id else { continue };
            match self
                .call::<Vec<Value>>(
                    repo,
                    Method::Get,
                    format!("/repos/{repo}/check-runs/{id}/annotations?per_page=50"),
                    None,
                )
                .await
            {
                Ok(list) => out.push((
                    f.name.clone(),
                    list.iter()
                        .map(|a| {
                            format!(
                                "{}:{} {}",
                                a["path"].as_str().unwrap_or("?"),
                                a["start_line"].as_u64().unwrap_or(0),
                                a["message"].as_str().unwrap_or("")
                            )
                        })
                        .collect(),
                )),
                Err(e) => tracing::warn!(check = f.name, error = %e, "could not read annotations"),
            }
        }
        out
    }

    /// Why GitHub answered 405, from the PR's `mergeable_state` (polled while `null`).
    async fn why_unmergeable(&self, task: &Task, n: u64, message: &str) -> String {
        let repo = &task.repo.name;
        let mut state = None;
        for _ in 0..3 {
            match self
                .call::<Pull>(repo, Method::Get, format!("/repos/{repo}/pulls/{n}"), None)
                .await
            {
                Ok(p) if p.mergeable.is_some() => {
                    state = p.mergeable_state;
                    break;
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(self.cfg.retry_base_ms)).await,
                Err(_) => break,
            }
        }
        let base = &task.repo.base;
        match state.as_deref() {
            Some("dirty") => format!(
                "it conflicts with {base}. Reply in the thread to refine it, or react 🔁 to redo it on the new {base}"
            ),
            Some("blocked") => "branch protection blocks it (required reviews or required checks). Satisfy them on GitHub, then react ✅ again".into(),
            Some("behind") => format!("{base} requires branches to be up to date. React 🔁 to redo it on the new {base}"),
            Some("unstable") => "required checks are failing on it. Reply in the thread to fix them".into(),
            Some("draft") => "it is a draft".into(),
            _ => format!("{message}. Check the PR on GitHub"),
        }
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
        let repo = &task.repo.name;
        let required = self.required_checks(repo, &task.repo.base).await?;
        let scope = match &required {
            Some(r) => format!("required checks {}", r.join(", ")),
            None => "all checks (the base has no readable required checks)".into(),
        };
        let started = Instant::now();
        let timeout = Duration::from_secs(self.cfg.ci_timeout_s);
        let mut delay = Duration::from_millis(self.cfg.ci_poll_ms);
        let mut polls = 0u32;
        loop {
            // Registered before polling, so a webhook arriving mid-poll is not missed.
            let woken = self.ci_wake.notified();
            polls += 1;
            match self.ci_state(repo, sha, required.as_deref()).await? {
                CiState::Passed { names } => {
                    return Ok(CiOutcome::Passed {
                        detail: format!(
                            "{} passed on {} ({scope})",
                            names.join(", "),
                            short_sha(sha)
                        ),
                    });
                }
                CiState::Failed { failures } => {
                    let notes = self.annotations(repo, &failures).await;
                    let names: Vec<String> = failures
                        .iter()
                        .map(|f| format!("{} ({})", f.name, f.conclusion))
                        .collect();
                    return Ok(CiOutcome::Failed {
                        detail: format!("{} failed on {}", names.join(", "), short_sha(sha)),
                        failures: ci::failures_text(&failures, &notes, 6_000),
                    });
                }
                // GitHub creates check suites a few seconds after a push: give it three polls.
                CiState::None if polls >= 3 => {
                    return Ok(CiOutcome::NoCi {
                        detail: format!(
                            "no check or status reported on {} after {} s",
                            short_sha(sha),
                            started.elapsed().as_secs()
                        ),
                    });
                }
                CiState::Pending { waiting } if started.elapsed() >= timeout => {
                    return Ok(CiOutcome::TimedOut {
                        detail: format!(
                            "still waiting for {} after {} s",
                            waiting.join(", "),
                            timeout.as_secs()
                        ),
                    });
                }
                CiState::None | CiState::Pending { .. } => {}
            }
            tokio::select! {
                _ = cancel.cancelled() => return Ok(CiOutcome::TimedOut { detail: "cancelled".into() }),
                _ = tokio::time::sleep(delay) => {}
                _ = woken => {}
            }
            delay = (delay * 2).min(Duration::from_millis(self.cfg.ci_poll_max_ms));
        }
    }

    async fn merge(&self, task: &Task, req: &MergeRequest<'_>) -> Result<Merged, ForgeError> {
        let repo = &task.repo.name;
        let Some(pr) = self.find(task).await? else {
            return Err(ForgeError::NotOpen {
                pr: format!("the PR of {}", task.branch),
                state: "gone (no PR has this branch as head)".into(),
            });
        };
        if pr.is_merged() || pr.state != "open" {
            let state = if pr.is_merged() {
                "merged".into()
            } else {
                pr.state.clone()
            };
            return Err(ForgeError::NotOpen {
                pr: pr.html_url,
                state,
            });
        }
        if pr.head.sha != req.tested {
            return Err(ForgeError::HeadMoved {
                pr: pr.html_url,
                tested: short_sha(req.tested).into(),
                actual: short_sha(&pr.head.sha).into(),
            });
        }
        let method = match req.method {
            MergeMethod::Merge => "merge",
            MergeMethod::Squash => "squash",
            MergeMethod::Rebase => "rebase",
        };
        let put = self
            .client
            .call::<Value>(
                repo,
                Method::Put,
                &format!("/repos/{repo}/pulls/{}/merge", pr.number),
                Some(&json!({
                    "sha": req.tested,
                    "merge_method": method,
                    "commit_title": format!("{} (#{})", task.title(), pr.number),
                    "commit_message": format!("Approved by {} in Slack; requested by {}.\n\nSlipway-Task: {}\nTested: {}", req.approver, task.requester, task.id, req.tested),
                })),
            )
            .await;
        let sha = match put {
            Ok(v) => v["sha"].as_str().unwrap_or_default().to_string(),
            Err(GithubError::Status {
                status: 405,
                message,
                ..
            }) => {
                let reason = self.why_unmergeable(task, pr.number, &message).await;
                return Err(ForgeError::NotMergeable {
                    pr: pr.html_url,
                    reason,
                });
            }
            Err(GithubError::Status { status: 409, .. }) => {
                let actual = match self.find(task).await {
                    Ok(Some(p)) => short_sha(&p.head.sha).to_string(),
                    _ => "unknown".into(),
                };
                return Err(ForgeError::HeadMoved {
                    pr: pr.html_url,
                    tested: short_sha(req.tested).into(),
                    actual,
                });
            }
            Err(GithubError::Status {
                status: 422,
                message,
                ..
            }) => {
                return Err(ForgeError::MergeInvalid {
                    pr: pr.html_url,
                    message,
                });
            }
            Err(e) => return Err(e.into()),
        };
        let thread = req
            .thread_url
            .map(|u| format!(" ([Slack thread]({u}))"))
            .unwrap_or_default();
        let note = format!(
            "Merged by slipway as `{}` ({method}) after approval.\n\n- Approved by: {} (Slack)\n- Requested by: {} (Slack){thread}\n- Tested commit: `{}`",
            short_sha(&sha),
            req.approver,
            task.requester,
            req.tested
        );
        // The merge happened: what follows is bookkeeping, logged when it fails.
        if let Err(e) = self.comment(task, pr.number, &note).await {
            tracing::warn!(error = %e, pr = pr.number, "could not comment on the merged PR");
        }
        if req.delete_branch {
            let path = format!("/repos/{repo}/git/refs/heads/{}", task.branch);
            match self
                .client
                .call::<Value>(repo, Method::Delete, &path, None)
                .await
            {
                Ok(_)
                | Err(GithubError::Status {
                    status: 422 | 404, ..
                }) => {}
                Err(e) => {
                    tracing::warn!(error = %e, branch = task.branch, "could not delete the merged branch")
                }
            }
        }
        Ok(Merged {
            sha,
            commits: match req.method {
                MergeMethod::Rebase => pr.commits.unwrap_or(1),
                _ => 1,
            },
        })
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
}
