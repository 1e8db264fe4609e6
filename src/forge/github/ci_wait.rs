//! Waiting for CI on a pushed commit: the base's required checks, check runs and commit
//! statuses polled with backoff (woken early by the webhook), and annotations of failures.
//!
//! Owns the polling; the verdict over runs and statuses is `ci::evaluate`. It must not
//! change the PR or the branch.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::GithubForge;
use super::ci::{self, CheckRun, CiState, CommitStatus};
use super::client::{GithubError, Method};
use crate::forge::{CiOutcome, ForgeError};
use crate::task::{Task, short_sha};

impl GithubForge {
    /// CI's outcome on `sha`, polled until it is decided, the timeout passes or `cancel`
    /// fires.
    pub(super) async fn wait_for_ci(
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
}
