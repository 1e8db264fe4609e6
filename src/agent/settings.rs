//! `[agent]`: the agent's budgets, owned here with their defaults.

use serde::{Deserialize, Serialize};

/// `[agent]`: budgets of one agent node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Most model turns per agent node.
    pub max_steps: u32,
    /// Most tokens (input + output, summed over turns) per run.
    pub max_tokens: u64,
    /// Wall-clock budget per run, minutes.
    pub max_minutes: u64,
    /// `max_tokens` sent with each completion request (the reply size limit).
    pub max_output_tokens: u32,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            max_steps: 40,
            max_tokens: 400_000,
            max_minutes: 30,
            max_output_tokens: 8192,
        }
    }
}
