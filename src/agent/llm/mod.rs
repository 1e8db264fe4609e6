//! LLM providers behind one small trait, [`Llm`]: a neutral conversation in, one assistant
//! turn out. One file per wire format: [`anthropic`] (Messages API) and [`openai`] (Chat
//! Completions; also vLLM, Ollama, llama.cpp, LiteLLM).
//!
//! The shared HTTP core here retries 429, 5xx and Anthropic's 529 with exponential backoff,
//! honouring `Retry-After` (seconds), with connect and read timeouts and `TCP_NODELAY`.
//! Errors a user can fix name the variable to set.

pub mod anthropic;
pub mod openai;
pub mod settings;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::agent::llm::settings::LlmEndpoint;
use crate::agent::llm::settings::LlmPrices;
use crate::agent::llm::settings::LlmProvider;

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// One block of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Text {
        text: String,
    },
    /// A tool call from the model. `arguments` is the raw JSON text, which may be invalid:
    /// the dispatcher tells the model so.
    ToolUse {
        id: String,
        name: String,
        arguments: String,
    },
    /// The result of a tool call, sent back in a user message.
    ToolResult {
        tool_use_id: String,
        content: String,
        is_error: bool,
    },
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: Vec<Block>,
}

/// The text blocks of `blocks`, joined by newlines (tool blocks are skipped).
pub fn text_of(blocks: &[Block]) -> String {
    blocks
        .iter()
        .filter_map(|b| match b {
            Block::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Message {
    pub fn user_text(text: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: vec![Block::Text { text: text.into() }],
        }
    }
}

/// A tool as the model sees it (owned by the tool registry, which makes them).
pub use crate::tools::ToolSpec;

/// One completion request.
#[derive(Debug, Clone, Serialize)]
pub struct CompletionRequest {
    pub system: String,
    pub messages: Vec<Message>,
    pub tools: Vec<ToolSpec>,
    /// Reply size limit, tokens.
    pub max_tokens: u32,
}

/// Tokens of one completion.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// Why the model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndTurn,
    ToolUse,
    MaxTokens,
    Other,
}

/// One assistant turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    pub content: Vec<Block>,
    pub stop_reason: StopReason,
    pub usage: Usage,
}

/// Provider failures. Each says what to do; none is retried further by the caller.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// Not configured (the message names the variable).
    #[error("{0}")]
    NotConfigured(String),
    #[error("no API key for {provider}: set {var}")]
    MissingKey { provider: String, var: String },
    #[error("the model endpoint {url} is unreachable ({detail}); check SLIPWAY_LLM_BASE_URL")]
    Unreachable { url: String, detail: String },
    #[error("the model endpoint rejected the API key (HTTP {status}); check {var}")]
    Unauthorized { status: u16, var: String },
    #[error("model {model:?} is unknown to {url} (HTTP {status}); check SLIPWAY_LLM_MODEL")]
    UnknownModel {
        model: String,
        url: String,
        status: u16,
    },
    #[error("the model endpoint answered HTTP {status}: {body}")]
    Http { status: u16, body: String },
    #[error("gave up after {attempts} attempts; last: HTTP {status}: {body}")]
    RetriesExhausted {
        attempts: u32,
        status: u16,
        body: String,
    },
    #[error("the model endpoint sent a response slipway cannot read: {0}")]
    Decode(String),
}

/// A chat model.
#[async_trait]
pub trait Llm: Send + Sync {
    /// `provider/model`, for reports and logs.
    fn describe(&self) -> String;
    /// One assistant turn for `req`.
    async fn complete(&self, req: &CompletionRequest) -> Result<Completion, LlmError>;
}

/// The model of a process with none configured: blueprints with no agent node
/// (`checks_only`, `env_build`) run without one; any call answers
/// [`LlmError::NotConfigured`] with the original reason.
pub struct Unconfigured(pub String);

#[async_trait]
impl Llm for Unconfigured {
    fn describe(&self) -> String {
        "none".into()
    }

    async fn complete(&self, _req: &CompletionRequest) -> Result<Completion, LlmError> {
        Err(LlmError::NotConfigured(self.0.clone()))
    }
}

/// Builds the configured provider.
pub fn from_config(
    endpoint: &Result<LlmEndpoint, settings::NoModel>,
    prices: &LlmPrices,
) -> Result<Arc<dyn Llm>, LlmError> {
    let ep = endpoint.clone().map_err(|e| LlmError::NotConfigured(e.0))?;
    let http = HttpCore::new(&ep, prices)?;
    Ok(match ep.provider {
        LlmProvider::Anthropic => {
            if ep.api_key.is_none() {
                return Err(LlmError::MissingKey {
                    provider: "anthropic".into(),
                    var: "SLIPWAY_LLM_API_KEY (or ANTHROPIC_API_KEY)".into(),
                });
            }
            Arc::new(anthropic::Anthropic::new(http))
        }
        LlmProvider::Openai => {
            if ep.api_key.is_none() && ep.base_url.contains("api.openai.com") {
                return Err(LlmError::MissingKey {
                    provider: "openai".into(),
                    var: "SLIPWAY_LLM_API_KEY (or OPENAI_API_KEY)".into(),
                });
            }
            Arc::new(openai::OpenAi::new(http))
        }
    })
}

/// Cost in USD of `usage` at `prices`.
pub fn cost_usd(usage: Usage, prices: &LlmPrices) -> f64 {
    (usage.input_tokens as f64 * prices.input_usd_per_mtok
        + usage.output_tokens as f64 * prices.output_usd_per_mtok)
        / 1_000_000.0
}

/// HTTP plumbing shared by the providers: client, endpoint, retries.
pub struct HttpCore {
    client: reqwest::Client,
    endpoint: LlmEndpoint,
    max_retries: u32,
    retry_base: Duration,
}

impl HttpCore {
    pub fn new(endpoint: &LlmEndpoint, prices: &LlmPrices) -> Result<Self, LlmError> {
        crate::tls::ensure_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(prices.request_timeout_s))
            .tcp_nodelay(true)
            .user_agent(concat!("slipway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| LlmError::Unreachable {
                url: endpoint.base_url.clone(),
                detail: format!("cannot build HTTP client: {e}"),
            })?;
        Ok(Self {
            client,
            endpoint: endpoint.clone(),
            max_retries: prices.max_retries,
            retry_base: Duration::from_millis(prices.retry_base_ms),
        })
    }

    pub fn endpoint(&self) -> &LlmEndpoint {
        &self.endpoint
    }

    /// POSTs `body` to `url` with `headers`; retries what is retryable; returns the JSON.
    pub async fn post_json(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, LlmError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut req = self.client.post(url).json(body);
            for (k, v) in headers {
                req = req.header(*k, v);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) if attempt <= self.max_retries && (e.is_timeout() || e.is_connect()) => {
                    tracing::warn!(attempt, error = %e, "model request failed; retrying");
                    tokio::time::sleep(self.backoff(attempt, None)).await;
                    continue;
                }
                Err(e) => {
                    return Err(LlmError::Unreachable {
                        url: url.to_string(),
                        detail: e.to_string(),
                    });
                }
            };
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .map(|s| Duration::from_secs_f64(s.clamp(0.0, 120.0)));
            let text = resp.text().await.map_err(|e| LlmError::Unreachable {
                url: url.to_string(),
                detail: e.to_string(),
            })?;
            if (200..300).contains(&status) {
                return serde_json::from_str(&text).map_err(|e| {
                    LlmError::Decode(format!("{e}: {}", crate::task::truncate_chars(&text, 300)))
                });
            }
            let retryable = matches!(status, 408 | 429 | 529) || (500..600).contains(&status);
            let body = crate::task::truncate_chars(&text, 500);
            if retryable {
                if attempt > self.max_retries {
                    return Err(LlmError::RetriesExhausted {
                        attempts: attempt,
                        status,
                        body,
                    });
                }
                let wait = self.backoff(attempt, retry_after);
                tracing::warn!(
                    attempt,
                    status,
                    wait_ms = wait.as_millis() as u64,
                    "model endpoint busy; retrying"
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            return Err(match status {
                401 | 403 => LlmError::Unauthorized {
                    status,
                    var: self.endpoint.api_key_var.to_string(),
                },
                404 => LlmError::UnknownModel {
                    model: self.endpoint.model.clone(),
                    url: url.to_string(),
                    status,
                },
                400 if text.contains("model_not_found")
                    || text.contains("does not exist")
                    || (text.contains("model") && text.contains("not found")) =>
                {
                    LlmError::UnknownModel {
                        model: self.endpoint.model.clone(),
                        url: url.to_string(),
                        status,
                    }
                }
                _ => LlmError::Http { status, body },
            });
        }
    }

    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        retry_after.unwrap_or_else(|| {
            self.retry_base * 2u32.saturating_pow(attempt.saturating_sub(1)).min(64)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_uses_the_price_table() {
        let p = LlmPrices::default();
        let c = cost_usd(
            Usage {
                input_tokens: 1_000_000,
                output_tokens: 100_000,
            },
            &p,
        );
        assert!((c - 4.5).abs() < 1e-9);
    }

    #[test]
    fn an_unconfigured_model_names_the_variable() {
        let e = from_config(
            &Err("set SLIPWAY_LLM_PROVIDER".into()),
            &LlmPrices::default(),
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("SLIPWAY_LLM_PROVIDER"));
    }
}
