//! Live MCP servers (`[[mcp_servers]]`) through the official Rust SDK, `rmcp`, as a client:
//! stdio (a child process) and streamable HTTP. Discovers each server's tools and routes the
//! agent's calls to them.
//!
//! Placement: a server with `host_side = true`, or a `url`, is reached from the host (it may
//! need network or credentials). Any other stdio server runs inside the run's sandbox, with no
//! network, through [`Session::spawn_stdio`]. A server that does not answer `initialize`
//! within [`INIT_TIMEOUT`] is reported and skipped; one that crashes or times out during a
//! call gives the model a tool error and the run goes on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};
use serde_json::Value;
use tokio::sync::Mutex;

use super::registry::{CatalogProblem, RawTool, ServerTools, ToolSource, sanitize_server};
use crate::sandbox::{Session, StdioProcess};
use crate::tools::settings::McpServerConfig;

/// How long a server may take to answer `initialize` and `tools/list`.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one tool call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Most bytes of one result returned to the model.
pub const RESULT_CAP: usize = 32 * 1024;

type Client = RunningService<RoleClient, ()>;
type Peer = rmcp::service::Peer<RoleClient>;

/// Where a configured server runs.
pub fn runs_on_host(cfg: &McpServerConfig) -> bool {
    cfg.host_side || cfg.url.is_some()
}

/// Names of servers whose transport failed.
type DeadSet = Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>;

/// Connected servers, by (sanitised) name. A run works on a [`McpHub::fork`] of the host
/// hub, so its sandboxed servers never leak into other runs.
#[derive(Default, Clone)]
pub struct McpHub {
    /// Who answers calls for each server.
    peers: Arc<Mutex<HashMap<String, Peer>>>,
    /// The connections this hub owns (closed by [`McpHub::close`]).
    owned: Arc<Mutex<Vec<Client>>>,
    /// Keeps sandboxed server processes alive as long as the hub.
    guards: Arc<std::sync::Mutex<Vec<Box<dyn std::any::Any + Send + Sync>>>>,
    /// Servers whose transport failed, for this hub. A fork starts from its parent's set and
    /// keeps its own: a sandboxed server that one run's agent crashed is that run's loss only
    /// (the next run starts a fresh one).
    dead: DeadSet,
    /// The parent's dead set and the servers this fork shares with it (host-side and URL
    /// servers): their failure is the parent's too, so later runs skip them.
    parent: Option<(DeadSet, std::collections::BTreeSet<String>)>,
    /// Secret values redacted from every result before the model sees it.
    secrets: Arc<Vec<String>>,
}

impl McpHub {
    /// Connects the host-side and URL servers of `cfgs`; returns their tools and problems.
    pub async fn connect_host(
        cfgs: &[McpServerConfig],
        env: &std::collections::BTreeMap<String, String>,
        secrets: Vec<String>,
    ) -> (Self, Vec<ServerTools>, Vec<CatalogProblem>) {
        let hub = Self {
            secrets: Arc::new(secrets),
            ..Self::default()
        };
        let mut tools = Vec::new();
        let mut problems = Vec::new();
        for cfg in cfgs.iter().filter(|c| runs_on_host(c)) {
            let name = sanitize_server(&cfg.name);
            let connected = match (&cfg.url, cfg.command.split_first()) {
                (Some(url), _) => {
                    crate::tls::ensure_provider();
                    let transport =
                        rmcp::transport::StreamableHttpClientTransport::from_uri(url.as_str());
                    tokio::time::timeout(INIT_TIMEOUT, ().serve(transport))
                        .await
                        .map(|r| r.map_err(|e| e.to_string()))
                }
                (None, Some((program, args))) => {
                    // A cleared environment: only PATH, HOME, LANG and the variables this server's
                    // `env` names reach it (slipway's own tokens never do).
                    let mut cmd = tokio::process::Command::new(program);
                    cmd.args(args).env_clear();
                    for var in ["PATH", "HOME", "LANG"]
                        .iter()
                        .map(|s| s.to_string())
                        .chain(cfg.env.iter().cloned())
                    {
                        if let Some(v) = env.get(&var) {
                            cmd.env(&var, v);
                        }
                    }
                    let spawned = rmcp::transport::TokioChildProcess::builder(cmd)
                        .stderr(std::process::Stdio::null())
                        .spawn()
                        .map(|(t, _)| t);
                    match spawned {
                        Ok(t) => tokio::time::timeout(INIT_TIMEOUT, ().serve(t))
                            .await
                            .map(|r| r.map_err(|e| e.to_string())),
                        Err(e) => Ok(Err(format!("cannot start {program}: {e}"))),
                    }
                }
                (None, None) => Ok(Err("neither `command` nor `url` is set".into())),
            };
            hub.admit(&name, connected, true, &mut tools, &mut problems)
                .await;
        }
        (hub, tools, problems)
    }

    /// Starts the in-sandbox servers of `cfgs` in `session` and adds them to this hub.
    pub async fn connect_sandboxed(
        &self,
        session: &dyn Session,
        cfgs: &[McpServerConfig],
    ) -> (Vec<ServerTools>, Vec<CatalogProblem>) {
        let mut tools = Vec::new();
        let mut problems = Vec::new();
        for cfg in cfgs
            .iter()
            .filter(|c| !runs_on_host(c) && c.command.is_empty())
        {
            problems.push(CatalogProblem {
                file: format!("[[mcp_servers]] {}", cfg.name),
                entry: None,
                message: "neither `command` nor `url` is set; skipped".into(),
            });
        }
        for cfg in cfgs
            .iter()
            .filter(|c| !runs_on_host(c) && !c.command.is_empty())
        {
            let name = sanitize_server(&cfg.name);
            let connected = match session.spawn_stdio(&cfg.command).await {
                Ok(StdioProcess {
                    stdout,
                    stdin,
                    guard,
                }) => {
                    self.guards
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(guard);
                    tokio::time::timeout(INIT_TIMEOUT, ().serve((stdout, stdin)))
                        .await
                        .map(|r| r.map_err(|e| e.to_string()))
                }
                Err(e) => Ok(Err(e.to_string())),
            };
            self.admit(&name, connected, false, &mut tools, &mut problems)
                .await;
        }
        (tools, problems)
    }

    async fn admit(
        &self,
        name: &str,
        connected: Result<Result<Client, String>, tokio::time::error::Elapsed>,
        host_side: bool,
        tools: &mut Vec<ServerTools>,
        problems: &mut Vec<CatalogProblem>,
    ) {
        let problem = |message: String| CatalogProblem {
            file: format!("[[mcp_servers]] {name}"),
            entry: None,
            message,
        };
        let client = match connected {
            Err(_) => {
                problems.push(problem(format!(
                    "did not answer initialize within {} s; skipped",
                    INIT_TIMEOUT.as_secs()
                )));
                return;
            }
            Ok(Err(e)) => {
                problems.push(problem(format!("could not connect: {e}; skipped")));
                return;
            }
            Ok(Ok(c)) => c,
        };
        match tokio::time::timeout(INIT_TIMEOUT, client.list_all_tools()).await {
            Ok(Ok(list)) => {
                let raw = list
                    .into_iter()
                    .map(|t| RawTool {
                        name: t.name.to_string(),
                        description: t.description.map(|d| d.to_string()).unwrap_or_default(),
                        input_schema: Value::Object((*t.input_schema).clone()),
                        read_only: t.annotations.as_ref().and_then(|a| a.read_only_hint),
                        destructive: t.annotations.as_ref().and_then(|a| a.destructive_hint),
                    })
                    .collect();
                tools.push(ServerTools {
                    server: name.to_string(),
                    source: ToolSource::Live,
                    tools: raw,
                    host_side,
                });
                self.peers
                    .lock()
                    .await
                    .insert(name.to_string(), client.peer().clone());
                self.owned.lock().await.push(client);
            }
            Ok(Err(e)) => problems.push(problem(format!("tools/list failed: {e}; skipped"))),
            Err(_) => problems.push(problem("tools/list did not answer in time; skipped".into())),
        }
    }

    /// A hub for one run: it can call this hub's servers, and owns only what it adds.
    pub async fn fork(&self) -> Self {
        let peers = self.peers.lock().await.clone();
        let shared = peers.keys().cloned().collect();
        let dead = self.dead.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Self {
            peers: Arc::new(Mutex::new(peers)),
            dead: Arc::new(std::sync::Mutex::new(dead)),
            parent: Some((self.dead.clone(), shared)),
            secrets: self.secrets.clone(),
            ..Self::default()
        }
    }

    /// Names of connected servers.
    pub async fn servers(&self) -> Vec<String> {
        let dead = self.dead.lock().unwrap_or_else(|p| p.into_inner()).clone();
        self.peers
            .lock()
            .await
            .keys()
            .filter(|k| !dead.contains(*k))
            .cloned()
            .collect()
    }

    /// Calls `tool` (its name on the server) with raw JSON `args`. `Ok` is the text for the
    /// model, capped; `Err` is a tool error for the model. Never ends the run.
    pub async fn call(&self, server: &str, tool: &str, args: &str) -> Result<String, String> {
        let arguments =
            match serde_json::from_str::<Value>(if args.trim().is_empty() { "{}" } else { args }) {
                Ok(Value::Object(m)) => m,
                Ok(_) => return Err("invalid arguments: expected a JSON object".into()),
                Err(e) => return Err(format!("invalid arguments: {e}")),
            };
        // Clone the peer so a slow call does not hold the map.
        let peer = {
            let peers = self.peers.lock().await;
            match peers.get(server) {
                Some(p) => p.clone(),
                None => return Err(format!("MCP server {server} is not connected")),
            }
        };
        let params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
        let result = match tokio::time::timeout(CALL_TIMEOUT, peer.call_tool(params)).await {
            Err(_) => {
                return Err(format!(
                    "MCP server {server} did not answer within {} s",
                    CALL_TIMEOUT.as_secs()
                ));
            }
            Ok(Err(e)) => {
                // A transport failure means the server is gone: drop it so later calls fail fast.
                self.peers.lock().await.remove(server);
                self.dead
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(server.to_string());
                if let Some((parent, shared)) = &self.parent
                    && shared.contains(server)
                {
                    parent
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(server.to_string());
                }
                return Err(format!(
                    "MCP server {server} failed: {e}; it is unavailable for the rest of this run"
                ));
            }
            Ok(Ok(r)) => r,
        };
        let mut text = String::new();
        for block in &result.content {
            match block.as_text() {
                Some(t) => text.push_str(&t.text),
                None => text.push_str("[non-text content omitted]"),
            }
            text.push('\n');
        }
        if text.trim().is_empty()
            && let Some(s) = &result.structured_content
        {
            text = s.to_string();
        }
        if let Some(redacted) = crate::redact::replace_spellings(&text, self.secrets.to_vec()) {
            text = redacted;
        }
        let capped = crate::task::cap_bytes(&text, RESULT_CAP);
        if result.is_error == Some(true) {
            Err(capped)
        } else {
            Ok(capped)
        }
    }

    /// Closes the connections this hub owns.
    pub async fn close(&self) {
        let owned: Vec<Client> = std::mem::take(&mut *self.owned.lock().await);
        for c in owned {
            let _ = c.cancel().await;
        }
        self.guards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}
