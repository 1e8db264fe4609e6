//! The GitHub REST client: octocrab for transport and authentication (personal or
//! installation token, GitHub App JWT → installation token, refreshed before it expires),
//! with slipway's own retry policy on top.
//!
//! Every call goes through [`GithubClient::call`], which:
//! - retries 5xx answers and transport errors with exponential backoff;
//! - retries rate limits (429, or 403 with `Retry-After`, `x-ratelimit-remaining: 0` or a
//!   "secondary rate limit" message), waiting as GitHub says: `Retry-After` seconds, else
//!   until `x-ratelimit-reset` (GitHub REST docs, "Rate limits for the REST API");
//! - gives up with [`GithubError::RateLimited`] when the wait would exceed
//!   `[github] max_rate_limit_wait_s`, so the task stays resumable instead of hanging;
//!
//! Bodies are read into lenient local models (only the fields slipway uses), so a field GitHub
//! adds or an Enterprise version omits cannot make a PR unreadable.
//!
//! Owns transport, authentication and retries; it must not know tasks, PRs or the merge
//! flow (the sibling files do).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use octocrab::Octocrab;
use octocrab::models::{AppId, InstallationId};
use octocrab::secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::forge::github::settings::GithubAuth;
use crate::forge::github::settings::GithubConfig;
use crate::forge::github::settings::GithubEndpoint;

/// GitHub API failures. [`GithubError::is_outage`] tells a GitHub problem (retry later) from
/// a refusal (something to fix).
#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    #[error("no GitHub credentials: set GITHUB_TOKEN, or GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY")]
    NotConfigured,
    #[error("GitHub App credentials are unusable: {0}")]
    Credentials(String),
    #[error("GitHub answered {method} {path} with {status}: {message}")]
    Status {
        method: &'static str,
        path: String,
        status: u16,
        message: String,
    },
    #[error(
        "GitHub rate limit on {method} {path}: it resets in {wait_s} s, longer than slipway waits ([github] max_rate_limit_wait_s)"
    )]
    RateLimited {
        method: &'static str,
        path: String,
        wait_s: u64,
    },
    #[error("GitHub is unreachable ({method} {path}): {detail}")]
    Transport {
        method: &'static str,
        path: String,
        detail: String,
    },
    #[error("GitHub answered {method} {path} with JSON slipway cannot read: {detail}")]
    Decode {
        method: &'static str,
        path: String,
        detail: String,
    },
}

impl GithubError {
    /// The HTTP status GitHub answered, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True when GitHub (or the way to it) is down or throttling: nothing for a user to fix,
    /// and the same call later may work.
    pub fn is_outage(&self) -> bool {
        match self {
            Self::Status { status, .. } => *status >= 500,
            Self::RateLimited { .. } | Self::Transport { .. } => true,
            _ => false,
        }
    }

    /// What a person should do about it, for the thread.
    pub fn advice(&self) -> &'static str {
        match self {
            Self::NotConfigured | Self::Credentials(_) => {
                "an operator sets GITHUB_TOKEN, or GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY"
            }
            Self::Status { status: 401, .. } => {
                "the GitHub credential was rejected; an operator renews GITHUB_TOKEN or the App key"
            }
            Self::Status { status: 403, .. } | Self::Status { status: 404, .. } => {
                "the GitHub credential cannot see or write this repo; give it contents, pull requests and checks access"
            }
            _ if self.is_outage() => {
                "GitHub is unavailable right now; nothing is lost: react 🔁 on the report to resume"
            }
            _ => "see GitHub's message",
        }
    }
}

/// HTTP methods the client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Patch,
    Put,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Patch => "PATCH",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
        }
    }
}

enum Auth {
    Token {
        crab: Arc<Octocrab>,
        token: SecretString,
    },
    App {
        app: Box<Octocrab>,
        /// `owner/name` → the installation's client (octocrab refreshes its token). Shared,
        /// never cloned: cloning an `Octocrab` copies its token cache, and each copy would
        /// mint its own installation token (octocrab 0.54.9, `impl Clone for CachedToken`).
        installs: Mutex<HashMap<String, Arc<Octocrab>>>,
    },
}

/// A GitHub REST client for one API base. Cheap to clone.
#[derive(Clone)]
pub struct GithubClient {
    auth: Arc<Auth>,
    cfg: GithubConfig,
}

/// An installation token is refreshed when it has less than this left (GitHub: tokens live
/// one hour).
const TOKEN_MIN_LIFE: i64 = 10 * 60;

impl GithubClient {
    /// A client for `endpoint`. Errors: [`GithubError::NotConfigured`] without credentials,
    /// [`GithubError::Credentials`] for an unreadable App key or API URL.
    pub fn new(endpoint: &GithubEndpoint, cfg: &GithubConfig) -> Result<Self, GithubError> {
        let builder = || {
            Octocrab::builder()
                .base_uri(endpoint.api_url.as_str())
                .map_err(|e| GithubError::Credentials(format!("GITHUB_API_URL: {e}")))
                .map(|b| {
                    b.set_connect_timeout(Some(Duration::from_secs(10)))
                        .set_read_timeout(Some(Duration::from_secs(60)))
                })
        };
        let auth = match &endpoint.auth {
            None => return Err(GithubError::NotConfigured),
            Some(GithubAuth::Token(t)) => Auth::Token {
                crab: Arc::new(
                    builder()?
                        .personal_token(t.clone())
                        .build()
                        .map_err(|e| GithubError::Credentials(e.to_string()))?,
                ),
                token: SecretString::from(t.clone()),
            },
            Some(GithubAuth::App {
                app_id,
                private_key,
            }) => {
                let key =
                    octocrab::EncodingKey::from_rsa_pem(private_key.as_bytes()).map_err(|e| {
                        GithubError::Credentials(format!("GITHUB_APP_PRIVATE_KEY: {e}"))
                    })?;
                Auth::App {
                    app: Box::new(
                        builder()?
                            .app(AppId(*app_id), key)
                            .build()
                            .map_err(|e| GithubError::Credentials(e.to_string()))?,
                    ),
                    installs: Mutex::default(),
                }
            }
        };
        Ok(Self {
            auth: Arc::new(auth),
            cfg: cfg.clone(),
        })
    }

    /// The client acting for `repo` (`owner/name`): the token's, or the App installation's
    /// (found with `GET /repos/{repo}/installation` once, then cached).
    async fn crab_for(&self, repo: &str) -> Result<Arc<Octocrab>, GithubError> {
        match self.auth.as_ref() {
            Auth::Token { crab, .. } => Ok(crab.clone()),
            Auth::App { app, installs } => {
                let mut installs = installs.lock().await;
                if let Some(c) = installs.get(repo) {
                    return Ok(c.clone());
                }
                let found: Value = self
                    .send(
                        app,
                        Method::Get,
                        &format!("/repos/{repo}/installation"),
                        None,
                        self.cfg.max_retries,
                    )
                    .await?;
                let id = found["id"].as_u64().ok_or_else(|| GithubError::Decode {
                    method: "GET",
                    path: format!("/repos/{repo}/installation"),
                    detail: "no installation id".into(),
                })?;
                let crab = Arc::new(
                    app.installation(InstallationId(id))
                        .map_err(|e| GithubError::Credentials(e.to_string()))?,
                );
                installs.insert(repo.to_string(), crab.clone());
                Ok(crab)
            }
        }
    }

    /// The token git uses for `repo` over HTTPS (as `x-access-token:<token>`). An
    /// installation token is minted or refreshed when it has under 10 minutes left.
    pub async fn git_token(&self, repo: &str) -> Result<SecretString, GithubError> {
        match self.auth.as_ref() {
            Auth::Token { token, .. } => Ok(token.clone()),
            Auth::App { .. } => {
                let crab = self.crab_for(repo).await?;
                crab.installation_token_with_buffer(chrono::Duration::seconds(TOKEN_MIN_LIFE))
                    .await
                    .map_err(|e| GithubError::Transport {
                        method: "POST",
                        path: "/app/installations/{id}/access_tokens".into(),
                        detail: e.to_string(),
                    })
            }
        }
    }

    /// `git`'s `Authorization` header for `repo`: Basic `x-access-token:<token>` (GitHub:
    /// "Authenticating as an installation", HTTP-based Git access).
    pub async fn git_header(&self, repo: &str) -> Result<String, GithubError> {
        let token = self.git_token(repo).await?;
        Ok(basic_auth_header(token.expose_secret()))
    }

    /// One REST call for `repo` with retries; the body parsed as `T` (JSON `null` for an
    /// empty body). `path` starts with `/`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        repo: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, GithubError> {
        self.call_with(repo, method, path, body, self.cfg.max_retries)
            .await
    }

    /// [`GithubClient::call`] without any retry: for a call that must not be repeated
    /// blindly (a merge that succeeded but answered 502 would get 405 the second time). The
    /// caller reads the resource to learn what happened.
    pub async fn call_once<T: DeserializeOwned>(
        &self,
        repo: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, GithubError> {
        self.call_with(repo, method, path, body, 0).await
    }

    async fn call_with<T: DeserializeOwned>(
        &self,
        repo: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        max_retries: u32,
    ) -> Result<T, GithubError> {
        let crab = self.crab_for(repo).await?;
        self.send(&crab, method, path, body, max_retries).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        crab: &Octocrab,
        method: Method,
        path: &str,
        body: Option<&Value>,
        max_retries: u32,
    ) -> Result<T, GithubError> {
        let m = method.as_str();
        let mut attempt = 0u32;
        loop {
            let sent = match method {
                Method::Get => crab._get(path).await,
                Method::Post => crab._post(path, body).await,
                Method::Patch => crab._patch(path, body).await,
                Method::Put => crab._put(path, body).await,
                Method::Delete => crab._delete(path, body).await,
            };
            let wait = match sent {
                Err(e) => {
                    let err = GithubError::Transport {
                        method: m,
                        path: path.to_string(),
                        detail: e.to_string(),
                    };
                    if attempt >= max_retries {
                        return Err(err);
                    }
                    tracing::warn!(error = %err, attempt, "GitHub call failed; retrying");
                    self.backoff(attempt)
                }
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    let text =
                        crab.body_to_string(resp)
                            .await
                            .map_err(|e| GithubError::Transport {
                                method: m,
                                path: path.to_string(),
                                detail: e.to_string(),
                            })?;
                    if status.is_success() {
                        let v = if text.trim().is_empty() {
                            "null"
                        } else {
                            text.as_str()
                        };
                        return serde_json::from_str(v).map_err(|e| GithubError::Decode {
                            method: m,
                            path: path.to_string(),
                            detail: e.to_string(),
                        });
                    }
                    let err = GithubError::Status {
                        method: m,
                        path: path.to_string(),
                        status: status.as_u16(),
                        message: error_message(&text),
                    };
                    let wait = match retry_after(status, &headers, &text, now_s()) {
                        Some(Retry::At(wait_s)) => {
                            if wait_s > self.cfg.max_rate_limit_wait_s {
                                return Err(GithubError::RateLimited {
                                    method: m,
                                    path: path.to_string(),
                                    wait_s,
                                });
                            }
                            Duration::from_secs(wait_s)
                        }
                        Some(Retry::Backoff) => self.backoff(attempt),
                        None => return Err(err),
                    };
                    if attempt >= max_retries {
                        return Err(err);
                    }
                    tracing::warn!(error = %err, attempt, wait_ms = wait.as_millis() as u64, "GitHub call failed; retrying");
                    wait
                }
            };
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        Duration::from_millis(self.cfg.retry_base_ms.saturating_mul(1 << attempt.min(10)))
    }
}

/// `Authorization: Basic base64("x-access-token:<token>")`, git's header for GitHub HTTPS.
pub fn basic_auth_header(token: &str) -> String {
    use base64::Engine;
    let raw = format!("x-access-token:{token}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// GitHub's error `message` (plus the first validation error's), or the raw text.
fn error_message(text: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => {
            let mut m = v["message"].as_str().unwrap_or("").to_string();
            if let Some(e) = v["errors"].as_array().and_then(|a| a.first()) {
                let detail = e["message"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| e.to_string());
                m = format!("{m}: {detail}");
            }
            if m.is_empty() { text.to_string() } else { m }
        }
        Err(_) => crate::task::truncate_chars(text.trim(), 300),
    }
}

/// How to retry a failed call.
#[derive(Debug, PartialEq, Eq)]
enum Retry {
    /// Wait this many seconds (GitHub said so).
    At(u64),
    /// Exponential backoff.
    Backoff,
}

/// Whether and when to retry. GitHub REST docs ("Rate limits for the REST API"): a primary
/// limit answers 403/429 with `x-ratelimit-remaining: 0` and `x-ratelimit-reset` (epoch s);
/// a secondary limit answers 403/429, with `retry-after` when GitHub gives one, and a
/// message naming the secondary rate limit. 5xx are retried with backoff.
fn retry_after(
    status: StatusCode,
    headers: &http::HeaderMap,
    text: &str,
    now: i64,
) -> Option<Retry> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if status.is_server_error() {
        return Some(match header("retry-after").and_then(|v| v.parse().ok()) {
            Some(s) => Retry::At(s),
            None => Retry::Backoff,
        });
    }
    if status != StatusCode::FORBIDDEN && status != StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    if let Some(s) = header("retry-after").and_then(|v| v.parse().ok()) {
        return Some(Retry::At(s));
    }
    let remaining = header("x-ratelimit-remaining").and_then(|v| v.parse::<u64>().ok());
    let reset = header("x-ratelimit-reset").and_then(|v| v.parse::<i64>().ok());
    if remaining == Some(0)
        && let Some(reset) = reset
    {
        return Some(Retry::At((reset - now).max(1) as u64));
    }
    let lower = text.to_ascii_lowercase();
    if status == StatusCode::TOO_MANY_REQUESTS || lower.contains("rate limit") {
        // GitHub: without headers, wait at least a minute before retrying a secondary limit.
        return Some(Retry::At(60));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn retries_follow_githubs_rate_limit_rules() {
        let now = 1_000;
        let none = headers(&[]);
        assert_eq!(
            retry_after(StatusCode::BAD_GATEWAY, &none, "", now),
            Some(Retry::Backoff)
        );
        assert_eq!(
            retry_after(
                StatusCode::SERVICE_UNAVAILABLE,
                &headers(&[("retry-after", "7")]),
                "",
                now
            ),
            Some(Retry::At(7))
        );
        // Primary limit: wait until the reset.
        let primary = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1030"),
        ]);
        assert_eq!(
            retry_after(
                StatusCode::FORBIDDEN,
                &primary,
                "API rate limit exceeded",
                now
            ),
            Some(Retry::At(30))
        );
        // Secondary limit with Retry-After.
        let secondary = headers(&[("retry-after", "3")]);
        assert_eq!(
            retry_after(StatusCode::FORBIDDEN, &secondary, "", now),
            Some(Retry::At(3))
        );
        // Secondary limit named only in the message: a minute.
        assert_eq!(
            retry_after(
                StatusCode::FORBIDDEN,
                &none,
                r#"{"message":"You have exceeded a secondary rate limit."}"#,
                now
            ),
            Some(Retry::At(60))
        );
        // A plain 403 is a refusal, not a limit; 404 and 422 are never retried.
        assert_eq!(
            retry_after(
                StatusCode::FORBIDDEN,
                &none,
                r#"{"message":"Resource not accessible by integration"}"#,
                now
            ),
            None
        );
        assert_eq!(retry_after(StatusCode::NOT_FOUND, &none, "", now), None);
        assert_eq!(
            retry_after(StatusCode::UNPROCESSABLE_ENTITY, &none, "", now),
            None
        );
    }

    #[test]
    fn error_messages_include_the_first_validation_error() {
        let text = r#"{"message":"Validation Failed","errors":[{"resource":"PullRequest","code":"custom","message":"A pull request already exists for acme:slipway/x."}]}"#;
        assert_eq!(
            error_message(text),
            "Validation Failed: A pull request already exists for acme:slipway/x."
        );
        assert_eq!(
            error_message("<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
    }

    #[test]
    fn git_header_is_basic_x_access_token() {
        assert_eq!(basic_auth_header("abc"), "Basic eC1hY2Nlc3MtdG9rZW46YWJj");
    }
}
