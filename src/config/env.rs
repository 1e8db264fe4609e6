//! The environment, read once: [`Env`] (a snapshot of the variables) and the readers that
//! turn `GITHUB_*`, `SLACK_*` and `SLIPWAY_LLM_*` into typed endpoints, each failing with
//! the variable to fix.

use std::collections::BTreeMap;

use super::{ConfigError, DEFAULT_SLACK_API_URL, Result, SlackEndpoint};
use crate::agent::llm::settings::{LlmEndpoint, LlmProvider, NoModel};
use crate::forge::github::settings::{DEFAULT_GITHUB_API_URL, GithubAuth, GithubEndpoint};

/// A snapshot of the environment variables slipway understands. Built once in `main`
/// (`Env::from_process`) or from explicit pairs in tests (`Env::from_pairs`).
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// Reads the process environment. Call once, in `main`.
    pub fn from_process() -> Self {
        Self::from_pairs(std::env::vars())
    }

    /// Builds an environment from explicit pairs; empty values count as unset.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let vars = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        Self { vars }
    }

    /// The value of `name`, if set and non-empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }
}

/// Reads `GITHUB_*`. The API URL must be http(s); an App needs both its ID (a number) and
/// its PEM key; `GITHUB_TOKEN` wins when both are set.
pub(super) fn github_endpoint(env: &Env) -> Result<GithubEndpoint> {
    let raw = env.get("GITHUB_API_URL").unwrap_or(DEFAULT_GITHUB_API_URL);
    if !(raw.starts_with("https://") || raw.starts_with("http://")) {
        return Err(ConfigError::Invalid {
            name: "GITHUB_API_URL".into(),
            value: raw.into(),
            expected:
                "an http(s) URL such as https://api.github.com or https://ghe.example.com/api/v3"
                    .into(),
        });
    }
    let auth = match (
        env.get("GITHUB_TOKEN"),
        env.get("GITHUB_APP_ID"),
        env.get("GITHUB_APP_PRIVATE_KEY"),
    ) {
        (Some(t), _, _) => Some(GithubAuth::Token(t.to_string())),
        (None, Some(id), Some(key)) => {
            let app_id = id.trim().parse().map_err(|_| ConfigError::Invalid {
                name: "GITHUB_APP_ID".into(),
                value: id.into(),
                expected: "the App's numeric ID".into(),
            })?;
            if !key.contains("-----BEGIN") {
                return Err(ConfigError::Invalid {
                    name: "GITHUB_APP_PRIVATE_KEY".into(),
                    value: String::new(),
                    expected:
                        "the App's private key in PEM form (-----BEGIN RSA PRIVATE KEY-----…)"
                            .into(),
                });
            }
            Some(GithubAuth::App {
                app_id,
                private_key: key.to_string(),
            })
        }
        (None, Some(_), None) | (None, None, Some(_)) => {
            return Err(ConfigError::Invalid {
                name: "GITHUB_APP_ID / GITHUB_APP_PRIVATE_KEY".into(),
                value: String::new(),
                expected: "both set (a GitHub App), or neither".into(),
            });
        }
        (None, None, None) => None,
    };
    Ok(GithubEndpoint {
        api_url: raw.trim_end_matches('/').to_string(),
        auth,
        webhook_secret: env.get("GITHUB_WEBHOOK_SECRET").map(str::to_owned),
    })
}

/// Reads `SLACK_*`. The API URL must be http(s); a missing trailing slash is added.
pub(super) fn slack_endpoint(env: &Env) -> Result<SlackEndpoint> {
    let raw = env.get("SLACK_API_URL").unwrap_or(DEFAULT_SLACK_API_URL);
    if !(raw.starts_with("https://") || raw.starts_with("http://")) {
        return Err(ConfigError::Invalid {
            name: "SLACK_API_URL".into(),
            value: raw.into(),
            expected: "an http(s) URL such as https://slack.com/api/".into(),
        });
    }
    let api_url = if raw.ends_with('/') {
        raw.to_string()
    } else {
        format!("{raw}/")
    };
    let token = |name: &str, prefix: &str| -> Result<Option<String>> {
        match env.get(name) {
            Some(t) if !t.starts_with(prefix) => Err(ConfigError::Invalid {
                name: name.into(),
                value: String::new(),
                expected: format!("a token starting with {prefix}"),
            }),
            other => Ok(other.map(str::to_owned)),
        }
    };
    Ok(SlackEndpoint {
        api_url,
        app_token: token("SLACK_APP_TOKEN", "xapp-")?,
        bot_token: token("SLACK_BOT_TOKEN", "xox")?,
    })
}

/// Reads `SLIPWAY_LLM_*`. `Ok(Err(msg))` means "not configured", which only matters for
/// commands that call a model; `Err` means a value is wrong.
pub(super) fn llm_endpoint(env: &Env) -> Result<std::result::Result<LlmEndpoint, NoModel>> {
    let Some(provider) = env.get("SLIPWAY_LLM_PROVIDER") else {
        return Ok(Err(NoModel(
            "no model configured: set SLIPWAY_LLM_PROVIDER to anthropic or openai, and SLIPWAY_LLM_MODEL"
                .into(),
        )));
    };
    let provider = match provider {
        "anthropic" => LlmProvider::Anthropic,
        "openai" => LlmProvider::Openai,
        other => {
            return Err(ConfigError::Invalid {
                name: "SLIPWAY_LLM_PROVIDER".into(),
                value: other.into(),
                expected: "anthropic or openai (any OpenAI-compatible server uses openai)".into(),
            });
        }
    };
    let Some(model) = env.get("SLIPWAY_LLM_MODEL") else {
        return Ok(Err(NoModel(
            "no model named: set SLIPWAY_LLM_MODEL (e.g. claude-sonnet-4-5, gpt-4.1, qwen2.5-coder)"
                .into(),
        )));
    };
    let (default_url, vendor_key) = match provider {
        LlmProvider::Anthropic => ("https://api.anthropic.com", "ANTHROPIC_API_KEY"),
        LlmProvider::Openai => ("https://api.openai.com/v1", "OPENAI_API_KEY"),
    };
    let (api_key, api_key_var) = match (env.get("SLIPWAY_LLM_API_KEY"), env.get(vendor_key)) {
        (Some(k), _) => (Some(k.to_string()), "SLIPWAY_LLM_API_KEY"),
        (None, Some(k)) => (Some(k.to_string()), vendor_key),
        (None, None) => (None, "SLIPWAY_LLM_API_KEY"),
    };
    let base_url = env
        .get("SLIPWAY_LLM_BASE_URL")
        .unwrap_or(default_url)
        .trim_end_matches('/')
        .to_string();
    if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
        return Err(ConfigError::Invalid {
            name: "SLIPWAY_LLM_BASE_URL".into(),
            value: base_url,
            expected: "an http:// or https:// URL".into(),
        });
    }
    Ok(Ok(LlmEndpoint {
        provider,
        base_url,
        model: model.to_string(),
        api_key,
        api_key_var,
    }))
}
