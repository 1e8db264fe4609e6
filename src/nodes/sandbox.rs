//! `sandbox`: starts the offline sandbox of one pass (agent, checks, sandboxed gates), and
//! measures the coverage baseline once per run.

use async_trait::async_trait;

use crate::gates::sandboxed;
use crate::run::{FlowError, NodeName, Outcome, RunCtx};
use crate::sandbox::NetworkAccess;

/// The sandbox node.
pub struct Sandbox;

#[async_trait]
impl crate::run::Node for Sandbox {
    fn name(&self) -> NodeName {
        NodeName::Sandbox
    }

    async fn run(&self, cx: &mut RunCtx<'_>) -> Result<Outcome, FlowError> {
        let svc = cx.svc;
        let session = svc.sandbox.start(&cx.spec(NetworkAccess::None)?).await?;
        cx.session = Some(session);
        cx.pass_start_commit = cx.commit.clone();
        if cx.coverage_baseline.is_none()
            && let Some(cmd) = cx.coverage_cmd.clone()
        {
            let timeout = svc.cfg.command_timeout();
            cx.coverage_baseline =
                Some(sandboxed::coverage_percent(cx.session()?, &cmd, timeout, &cx.cancel).await?);
        }
        Ok(Outcome::ok(format!(
            "{} ({}), no network",
            svc.sandbox.backend().as_str(),
            svc.sandbox.image()
        )))
    }
}
