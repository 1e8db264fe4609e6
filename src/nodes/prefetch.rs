//! `prefetch`: starts this run's sandboxed MCP servers, then ranks the registry and offers
//! the ≤ k tools this task needs (built-ins always in).

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;

use crate::run::ctx::Offered;
use crate::run::{FlowError, NodeName, Outcome, RunCtx};
use crate::tools::prefetch::{Index, RepoSignals, Request};
use crate::tools::registry::ToolEntry;

/// The prefetch node; a revert runs no agent, so it offers no tools.
pub struct Prefetch;

#[async_trait]
impl crate::run::Node for Prefetch {
    fn name(&self) -> NodeName {
        NodeName::Prefetch
    }

    fn skip(&self, cx: &RunCtx<'_>) -> bool {
        cx.task.revert_of.is_some()
    }

    async fn run(&self, cx: &mut RunCtx<'_>) -> Result<Outcome, FlowError> {
        let svc = cx.svc;
        let cfg = &svc.cfg;
        // Read before any sandboxed MCP server runs, so none can change what is read.
        let signals = RepoSignals::from_dir(&cx.wt()?.path);
        let hub = svc.mcp.fork().await;
        let mut registry = svc.registry.clone();
        let (tools, problems) = super::sidecar::start(cx, &hub).await?;
        if !tools.is_empty() || !problems.is_empty() {
            for p in &problems {
                tracing::warn!(problem = %p, "MCP server");
            }
            registry = Arc::new(svc.registry.extended(tools, problems));
        }
        let live = hub.servers().await;
        let callable = |e: &ToolEntry| e.server.as_ref().is_none_or(|s| live.contains(s));
        let rev = cx.task.current();
        let mut context = rev.context.join("\n");
        context.push('\n');
        context.push_str(&rev.links.join("\n"));
        let index = Index::new(&registry);
        let selection = index.select(&Request {
            task: &rev.instructions,
            context: &context,
            repo: Some(&signals),
            k: cfg.file.prefetch.k,
            always: crate::tools::builtins::NAMES,
            allow_destructive: cfg.file.prefetch.allow_destructive,
            callable: Some(&callable),
        });
        cx.tracker
            .log
            .transcript("prefetch", 0, json!({"picks": selection.picks, "withheld": selection.withheld, "problems": registry.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>()}))
            .await?;
        let mut specs = Vec::new();
        let mut routes = crate::tools::Routes::new();
        for p in &selection.picks {
            if let Some(e) = registry.get(&p.name) {
                specs.push(crate::tools::spec_of(e));
                if let Some(server) = &e.server {
                    routes.insert(e.name.clone(), (server.clone(), e.original.clone()));
                }
            }
        }
        let detail = format!(
            "{} tools ({} MCP) of {} known",
            specs.len(),
            routes.len(),
            registry.entries().len()
        );
        cx.tools = specs.iter().map(|s| s.name.clone()).collect();
        cx.offered = Some(Offered { specs, routes, hub });
        Ok(Outcome::ok(detail))
    }
}
