//! The merge: the PR merged with the tested SHA (GitHub refuses if the head moved), the
//! reason GitHub gave when it refused, then the audit comment and the branch deletion.
//!
//! Owns `PUT …/pulls/{n}/merge` and what follows it; it must not decide whether to merge.

use std::time::Duration;

use serde_json::{Value, json};

use super::GithubForge;
use super::client::{GithubError, Method};
use super::pulls::Pull;
use crate::forge::{ForgeError, MergeRequest, Merged};
use crate::repos::MergeMethod;
use crate::task::{Task, short_sha};

impl GithubForge {
    /// Merges the task's PR at `req.tested`; see `Forge::merge`.
    pub(super) async fn merge_pull(
        &self,
        task: &Task,
        req: &MergeRequest<'_>,
    ) -> Result<Merged, ForgeError> {
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
        // Never retried blindly: a merge that answered 5xx or was cut off may have
        // happened; the PR says whether it did.
        let put = self
            .client
            .call_once::<Value>(
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
            Err(
                e @ (GithubError::Transport { .. } | GithubError::Status { status: 500.., .. }),
            ) => match self.merged_pull(task, req.tested).await {
                Ok(Some(p)) => {
                    tracing::warn!(error = %e, pr = p.number, "the merge call failed, but the PR is merged at the tested commit");
                    p.merge_commit_sha.unwrap_or_default()
                }
                _ => return Err(e.into()),
            },
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

    /// The task's PR if it is merged with its head at `tested`.
    async fn merged_pull(&self, task: &Task, tested: &str) -> Result<Option<Pull>, ForgeError> {
        Ok(self
            .find(task)
            .await?
            .filter(|p| p.is_merged() && p.head.sha == tested))
    }

    /// [`crate::forge::Forge::merged_at`]: the PR merged at `tested`, as a [`Merged`].
    pub(super) async fn merged_at_tested(
        &self,
        task: &Task,
        tested: &str,
    ) -> Result<Option<Merged>, ForgeError> {
        Ok(self.merged_pull(task, tested).await?.map(|p| Merged {
            sha: p.merge_commit_sha.unwrap_or_default(),
            commits: p.commits.unwrap_or(1),
        }))
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
