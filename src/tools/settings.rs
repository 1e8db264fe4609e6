//! `[prefetch]` and `[[mcp_servers]]`, owned by the tool registry, and the environment a
//! host-side MCP server may receive ([`McpEnv`], built by `config` from the process env).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `[prefetch]`: how many tools one run is offered.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrefetchConfig {
    /// Tools offered per run, built-ins included.
    pub k: usize,
    /// Catalog globs, relative to the working directory.
    pub catalogs: Vec<String>,
    /// Offer tools marked `destructiveHint: true` (withheld by default).
    pub allow_destructive: bool,
}

impl Default for PrefetchConfig {
    fn default() -> Self {
        Self {
            k: 15,
            catalogs: vec!["prompts/tools/*.json".into()],
            allow_destructive: false,
        }
    }
}

/// One `[[mcp_servers]]` entry (used by the tool registry).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    pub name: String,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub host_side: bool,
    /// Host variables passed to a host-side stdio server (its environment is otherwise only
    /// PATH, HOME and LANG).
    #[serde(default)]
    pub env: Vec<String>,
}

/// Environment passed to host-side MCP servers.
#[derive(Clone, Default)]
pub struct McpEnv(pub BTreeMap<String, String>);

impl std::fmt::Debug for McpEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}
