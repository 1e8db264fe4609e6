//! Tools the agent may call: the built-ins, path confinement, and the prefetch that decides
//! which ≤ k tools a run is offered. (The MCP tool registry plugs in here.)

pub mod beneath;
pub mod builtins;
pub mod eval;
pub mod files;
pub mod guard;
pub mod mcp;
pub mod paths;
pub mod prefetch;
pub mod registry;
pub mod settings;
pub mod text;

use std::collections::HashMap;

use crate::sandbox::SandboxError;
use builtins::{ToolContext, ToolOutcome};
use registry::ToolEntry;
use serde::{Deserialize, Serialize};

/// Where a non-built-in tool's calls go: exposed name → (server, name on the server).
pub type Routes = HashMap<String, (String, String)>;

/// The model-facing spec of a registry entry.
pub fn spec_of(e: &ToolEntry) -> ToolSpec {
    ToolSpec {
        name: e.name.clone(),
        description: e.description.clone(),
        input_schema: e.input_schema.clone(),
    }
}

/// Runs one tool call: built-ins here, MCP tools through their server. `Err` only for
/// sandbox failures, which stop the run.
pub async fn dispatch(
    ctx: &ToolContext<'_>,
    name: &str,
    args: &str,
) -> Result<ToolOutcome, SandboxError> {
    if builtins::NAMES.contains(&name) {
        return builtins::call(ctx, name, args).await;
    }
    match (ctx.mcp, ctx.routes.get(name)) {
        (Some(hub), Some((server, tool))) => Ok(match hub.call(server, tool, args).await {
            Ok(text) => ToolOutcome::Output(text),
            Err(e) => ToolOutcome::Error(e),
        }),
        _ => Ok(ToolOutcome::Error(format!("unknown tool {name:?}"))),
    }
}

/// What the registry is loaded from: the `[prefetch]` catalogs, the `[[mcp_servers]]`, the
/// environment a host-side server may receive and the secret values to redact from its
/// results. `config` builds it from the whole configuration (`From<&Config>`).
pub struct RegistrySources<'a> {
    pub catalogs: &'a [String],
    pub servers: &'a [settings::McpServerConfig],
    pub env: &'a settings::McpEnv,
    pub secrets: &'a [String],
}

/// A tool as the model sees it: what every model API's tool definition carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments (an object schema).
    pub input_schema: serde_json::Value,
}

/// The registry a process starts with: built-ins, the catalogs (`catalog_globs`, or the
/// sources' `[prefetch] catalogs` when empty) and the host-side MCP servers, connected.
pub async fn load_registry<'a>(
    sources: impl Into<RegistrySources<'a>>,
    catalog_globs: &[String],
    connect_live: bool,
) -> (registry::Registry, mcp::McpHub) {
    let src = sources.into();
    let mut problems = Vec::new();
    let globs = if catalog_globs.is_empty() {
        src.catalogs
    } else {
        catalog_globs
    };
    let files = registry::expand_globs(globs, &mut problems);
    // A catalog glob that matches nothing is worth a warning, except the default one
    // (`prompts/tools/*.json`) on a checkout that ships no catalogs.
    if files.is_empty() && *globs != crate::tools::settings::PrefetchConfig::default().catalogs {
        problems.push(registry::CatalogProblem {
            file: globs.join(", "),
            entry: None,
            message: "no catalog file matches".into(),
        });
    }
    let (hub, live, live_problems) = if connect_live {
        mcp::McpHub::connect_host(src.servers, &src.env.0, src.secrets.to_vec()).await
    } else {
        (mcp::McpHub::default(), Vec::new(), Vec::new())
    };
    let mut reg = registry::Registry::load(&files, live);
    problems.extend(live_problems);
    reg.problems.splice(0..0, problems);
    (reg, hub)
}
