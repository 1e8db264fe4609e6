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
        let spec = cx.spec(NetworkAccess::None)?;
        // The first pass adopts the warm pool's container when it is this very sandbox
        // (same environment, image and policy); a slot started for another environment is
        // closed, never used.
        let mut warm = false;
        if let Some(slot) = cx.warm.take() {
            if slot.fits(&spec) {
                // The slot's clone was made after its container started: give it to the
                // sandbox user now.
                crate::sandbox::user::hand_over_spec_async(&spec).await?;
                cx.session = Some(slot.session);
                cx.warm_used = true;
                warm = true;
            } else if let Err(e) = slot.session.close().await {
                tracing::warn!(error = %e, "could not close an outdated warm sandbox");
            }
        }
        if !warm {
            cx.session = Some(svc.sandbox.start(&spec).await?);
        }
        svc.pool.remember(&cx.task.repo.name, &spec);
        cx.pass_start_commit = cx.commit.clone();
        // Once per run, before any agent: every check must be able to start.
        if !cx.checks_probed {
            cx.checks_probed = true;
            let missing = super::probe::missing(cx.session()?, &cx.check_cmds, &cx.cancel).await?;
            if !missing.is_empty() {
                let detail = missing.join("; ");
                // The report's `setup` gate says why nothing ran.
                let reason = format!(
                    "{detail}; add the toolchain to the sandbox image or .slipway/setup.sh"
                );
                return Ok(cx.halt_at_setup(detail, reason));
            }
        }
        if cx.coverage_baseline.is_none()
            && let Some(cmd) = cx.coverage_cmd.clone()
        {
            let timeout = svc.cfg.command_timeout();
            cx.coverage_baseline =
                Some(sandboxed::coverage_percent(cx.session()?, &cmd, timeout, &cx.cancel).await?);
        }
        let mut detail = format!(
            "{} ({}), no network",
            svc.sandbox.backend().as_str(),
            svc.sandbox.image()
        );
        if warm {
            let id = cx.session()?.container_id().unwrap_or_default();
            detail.push_str(&format!(
                "; {} (container {})",
                crate::report::WARM_POOL,
                &id[..12.min(id.len())]
            ));
        }
        Ok(Outcome::ok(detail))
    }
}
