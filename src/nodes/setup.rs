//! `setup`: the repo's dependency fetch (`.slipway/setup.sh` or detected), with network and
//! no secrets, before the agent starts. A failure halts the run with no model spend.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use crate::report::{Gate, GateName, GateStatus};
use crate::run::{FlowError, NodeName, Outcome, RunCtx, RunError};
use crate::sandbox::NetworkAccess;

/// The setup node; skipped when there is nothing to set up.
pub struct Setup;

#[async_trait]
impl crate::run::Node for Setup {
    fn name(&self) -> NodeName {
        NodeName::Setup
    }

    fn skip(&self, cx: &RunCtx<'_>) -> bool {
        cx.setup_cmd.is_none()
    }

    async fn run(&self, cx: &mut RunCtx<'_>) -> Result<Outcome, FlowError> {
        let Some(setup) = cx.setup_cmd.clone() else {
            return Ok(Outcome::ok("nothing to set up"));
        };
        let cfg = &cx.svc.cfg;
        let session = cx
            .svc
            .sandbox
            .start(&cx.spec(NetworkAccess::Setup)?)
            .await?;
        let timeout = Duration::from_secs(cfg.file.sandbox.setup_timeout_s);
        let out = session.exec(&setup.command, timeout, &cx.cancel).await;
        session.close().await?;
        let out = out?;
        let gate = if out.success() {
            Gate::new(
                GateName::Setup,
                GateStatus::Pass,
                format!("`{}` ({})", setup.command, setup.source),
            )
        } else if out.exit_code == Some(127) {
            // A setup that cannot start is a setup failure, not a warning: the agent would
            // work without the repo's dependencies.
            Gate::new(
                GateName::Setup,
                GateStatus::Fail,
                format!(
                    "`{}` ({}) cannot run: a program it needs is not in the sandbox ({}); add the toolchain to the image or .slipway/setup.sh",
                    setup.command,
                    setup.source,
                    out.output
                        .lines()
                        .rev()
                        .find(|l| l.contains("not found"))
                        .or_else(|| out.output.lines().last())
                        .unwrap_or("exit 127")
                        .trim()
                ),
            )
        } else {
            Gate::new(
                GateName::Setup,
                GateStatus::Fail,
                format!(
                    "`{}` failed: {}",
                    setup.command,
                    out.output.lines().last().unwrap_or("")
                ),
            )
        };
        cx.tracker
            .log
            .transcript(
                "setup",
                out.duration_ms,
                json!({"command": setup.command, "output": out.render(cfg.file.sandbox.output_cap_bytes)}),
            )
            .await?;
        let failed = gate.status == GateStatus::Fail;
        let detail = gate.detail.clone();
        cx.extra_gates.push(gate);
        if failed {
            // Without its dependencies the agent would only burn tokens.
            let error = RunError::Setup {
                detail: detail.clone(),
            };
            return Ok(Outcome::stopped_with(detail, error));
        }
        Ok(Outcome::ok(detail))
    }
}
