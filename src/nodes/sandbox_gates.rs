//! `sandbox_gates`: the gates that run the repo's own tools in the pass's sandbox
//! (dependencies, coverage); then the pass's sandbox closes.

use async_trait::async_trait;

use crate::gates::sandboxed;
use crate::run::{FlowError, NodeName, Outcome, RunCtx};

/// The sandbox_gates node.
pub struct SandboxGates;

#[async_trait]
impl crate::run::Node for SandboxGates {
    fn name(&self) -> NodeName {
        NodeName::SandboxGates
    }

    async fn run(&self, cx: &mut RunCtx<'_>) -> Result<Outcome, FlowError> {
        let timeout = cx.svc.cfg.command_timeout();
        let session = cx.session()?;
        let dependencies =
            sandboxed::dependencies(session, &cx.evidence.changes, timeout, &cx.cancel).await?;
        let coverage = match (&cx.coverage_cmd, cx.coverage_baseline.clone()) {
            (Some(cmd), Some(before)) => {
                let after = sandboxed::coverage_percent(session, cmd, timeout, &cx.cancel).await?;
                Some(sandboxed::coverage_gate(before, after))
            }
            _ => None,
        };
        let detail: Vec<String> = [&dependencies, &coverage]
            .into_iter()
            .flatten()
            .map(|g| format!("{} {:?}", g.name, g.status).to_lowercase())
            .collect();
        cx.evidence.dependencies = dependencies;
        cx.evidence.coverage = coverage;
        cx.close_sandbox().await;
        Ok(Outcome::ok(if detail.is_empty() {
            "nothing to check".into()
        } else {
            detail.join(", ")
        }))
    }
}
