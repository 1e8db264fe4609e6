//! `[github]` (CI waits, API retries) and the GitHub endpoint and credentials from
//! `GITHUB_*` ([`GithubEndpoint`], built by `config`; its `Debug` never prints a secret).

use serde::{Deserialize, Serialize};

/// `[github]` (added): how the GitHub forge waits for CI and retries the API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GithubConfig {
    /// Longest wait for CI on one pushed commit, seconds; then the `ci` gate warns.
    pub ci_timeout_s: u64,
    /// First CI poll interval, ms; doubles up to `ci_poll_max_ms` (a webhook wakes it early).
    pub ci_poll_ms: u64,
    /// Longest CI poll interval, ms.
    pub ci_poll_max_ms: u64,
    /// Retries of one API call after a 5xx, a secondary rate limit or a transport error.
    pub max_retries: u32,
    /// First retry delay, ms, doubling; `Retry-After` / `x-ratelimit-reset` win when present.
    pub retry_base_ms: u64,
    /// Longest single wait for a rate limit to reset, seconds; beyond it the call fails and the
    /// task stays resumable.
    pub max_rate_limit_wait_s: u64,
}

impl Default for GithubConfig {
    fn default() -> Self {
        Self {
            ci_timeout_s: 1800,
            ci_poll_ms: 5_000,
            ci_poll_max_ms: 60_000,
            max_retries: 4,
            retry_base_ms: 1_000,
            max_rate_limit_wait_s: 300,
        }
    }
}

/// Where GitHub is and how slipway authenticates. Its `Debug` never prints a secret.
#[derive(Clone, Default)]
pub struct GithubEndpoint {
    /// REST base without a trailing slash (`GITHUB_API_URL`; default `https://api.github.com`).
    pub api_url: String,
    pub auth: Option<GithubAuth>,
    /// (added) `GITHUB_WEBHOOK_SECRET`: enables `POST /webhooks/github`, verified by
    /// `X-Hub-Signature-256`.
    pub webhook_secret: Option<String>,
}

/// GitHub credentials, from the environment only.
#[derive(Clone)]
pub enum GithubAuth {
    /// `GITHUB_TOKEN`: a PAT or an Actions/installation token.
    Token(String),
    /// `GITHUB_APP_ID` + `GITHUB_APP_PRIVATE_KEY` (PEM): JWT → installation token per repo.
    App { app_id: u64, private_key: String },
}

/// GitHub's REST base (`DESIGN.md` §3, `GITHUB_API_URL`).
pub const DEFAULT_GITHUB_API_URL: &str = "https://api.github.com";

impl std::fmt::Debug for GithubEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let auth = match &self.auth {
            None => "none".to_string(),
            Some(GithubAuth::Token(_)) => "token <redacted>".to_string(),
            Some(GithubAuth::App { app_id, .. }) => format!("app {app_id}, key <redacted>"),
        };
        f.debug_struct("GithubEndpoint")
            .field("api_url", &self.api_url)
            .field("auth", &auth)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}
