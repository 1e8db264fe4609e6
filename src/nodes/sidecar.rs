//! The run's sandboxed MCP servers: started for each agent round of a pass, stopped before
//! the checks (issue "Security hardening" #13, item 3).
//!
//! A sandboxed stdio MCP server has `/workspace` read-write. Left running, it could change
//! the tree while the checks run, or between the checks and the commit, so the committed
//! tree could differ from the tested one. So `stop` ends them (the docker sidecar is
//! removed; under bwrap their process trees are killed and waited for) before every
//! `checks` node, and a `fix` round, which needs the tools again, `start`s them afresh:
//! a restart, not a read-only mount, because a server's tools may write (that is what the
//! agent asked for) and every one of those writes is then made before the checks look.
//!
//! This module owns the start and stop; prefetch decides which tools are offered.

use crate::run::{FlowError, RunCtx};
use crate::sandbox::{Backend, NetworkAccess, Session};
use crate::tools::mcp::{self, McpHub};
use crate::tools::registry::{CatalogProblem, ServerTools};

/// Starts the configured sandboxed MCP servers and connects them to `hub`: under docker in
/// a sidecar container with the agent's policy (every command in the agent's container ends
/// the processes it leaves behind), under bwrap in the pass's sandbox. Nothing to do (and
/// empty lists) when none is configured.
pub(crate) async fn start(
    cx: &mut RunCtx<'_>,
    hub: &McpHub,
) -> Result<(Vec<ServerTools>, Vec<CatalogProblem>), FlowError> {
    let svc = cx.svc;
    let sandboxed: Vec<_> = svc
        .cfg
        .file
        .mcp_servers
        .iter()
        .filter(|c| !mcp::runs_on_host(c))
        .cloned()
        .collect();
    if sandboxed.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    if svc.sandbox.backend() == Backend::Docker && cx.mcp_session.is_none() {
        let side = svc.sandbox.start(&cx.spec(NetworkAccess::None)?).await?;
        cx.mcp_session = Some(side);
    }
    let host: &dyn Session = match cx.mcp_session.as_deref() {
        Some(side) => side,
        None => cx.session()?,
    };
    Ok(hub.connect_sandboxed(host, &sandboxed).await)
}

/// Stops every sandboxed MCP server of the run and returns once none runs: the hub's
/// connections are closed, the docker sidecar is removed, and bwrap's server processes are
/// killed and waited for. Host-side servers stay connected.
pub(crate) async fn stop(cx: &mut RunCtx<'_>) -> Result<(), FlowError> {
    if let Some(o) = &cx.offered {
        o.hub.close().await;
    }
    if let Some(side) = cx.mcp_session.take() {
        side.close().await?;
    }
    if let Some(session) = cx.session.as_deref() {
        session.stop_stdio().await?;
    }
    Ok(())
}

/// Starts the sandboxed servers again for a fix round, into the hub the prefetch made, so
/// the tools it offered answer again.
pub(crate) async fn restart(cx: &mut RunCtx<'_>) -> Result<(), FlowError> {
    let Some(hub) = cx.offered.as_ref().map(|o| o.hub.clone()) else {
        return Ok(());
    };
    let (_, problems) = start(cx, &hub).await?;
    for p in &problems {
        tracing::warn!(problem = %p, "MCP server (restarted for a fix round)");
    }
    Ok(())
}
