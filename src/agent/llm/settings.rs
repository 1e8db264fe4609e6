//! `[llm]` (prices and retries) and the model endpoint the environment names
//! (`SLIPWAY_LLM_*`), owned by the LLM clients. `config` reads the environment and builds
//! [`LlmEndpoint`]; nothing here reads it.

use serde::{Deserialize, Serialize};

/// `[llm]`: the price table for cost reporting, USD per million tokens, and retry tuning.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmPrices {
    pub input_usd_per_mtok: f64,
    pub output_usd_per_mtok: f64,
    /// Retries after a 429, 5xx or 529 before the run fails.
    pub max_retries: u32,
    /// First backoff, ms; doubled each retry unless the server sent `Retry-After`.
    pub retry_base_ms: u64,
    /// Time to wait for one response, seconds.
    pub request_timeout_s: u64,
}

impl Default for LlmPrices {
    fn default() -> Self {
        Self {
            input_usd_per_mtok: 3.0,
            output_usd_per_mtok: 15.0,
            max_retries: 4,
            retry_base_ms: 1000,
            request_timeout_s: 300,
        }
    }
}

/// LLM wire format (`SLIPWAY_LLM_PROVIDER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LlmProvider {
    /// Anthropic Messages API.
    Anthropic,
    /// OpenAI Chat Completions, or any compatible server (vLLM, Ollama, llama.cpp, LiteLLM).
    Openai,
}

/// The model endpoint, from `SLIPWAY_LLM_*`. Absent until a provider is named: `run`
/// reports that with the variable to set.
#[derive(Clone)]
pub struct LlmEndpoint {
    pub provider: LlmProvider,
    /// Base URL in the vendor SDK's convention (OpenAI-style includes `/v1`).
    pub base_url: String,
    pub model: String,
    /// Never logged, never stored, never given to a sandbox.
    pub api_key: Option<String>,
    /// The variable the key came from, for error messages.
    pub api_key_var: &'static str,
}

impl std::fmt::Debug for LlmEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmEndpoint")
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Why no model is configured; the message names the variable to set. Derefs to the
/// message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NoModel(pub String);

impl std::ops::Deref for NoModel {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for NoModel {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}
