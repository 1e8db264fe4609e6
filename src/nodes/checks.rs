//! `checks`: the repo's format, lint and test commands in the pass's offline sandbox.

use async_trait::async_trait;
use serde_json::json;

use crate::gates::checks::{self, CheckStatus};
use crate::run::{FlowError, NodeName, Outcome, RunCtx};

/// The checks node.
pub struct Checks;

#[async_trait]
impl crate::run::Node for Checks {
    fn name(&self) -> NodeName {
        NodeName::Checks
    }

    async fn run(&self, cx: &mut RunCtx<'_>) -> Result<Outcome, FlowError> {
        // Nothing but the checks may change the tree from here to the commit.
        super::sidecar::stop(cx).await?;
        let cfg = &cx.svc.cfg;
        let results = checks::run_all(
            cx.session()?,
            &cx.check_cmds,
            cfg.command_timeout(),
            cfg.file.sandbox.output_cap_bytes,
            &cx.cancel,
        )
        .await?;
        for r in &results {
            cx.tracker
                .log
                .transcript("check", r.duration_ms, json!({"kind": r.check.kind, "command": r.check.command, "status": r.status, "output": r.output}))
                .await?;
        }
        let summary: Vec<String> = results
            .iter()
            .map(|r| format!("{} {:?}", r.check.kind.gate_name(), r.status).to_lowercase())
            .collect();
        let ok = results.iter().all(|r| r.status != CheckStatus::Fail);
        let detail = if summary.is_empty() {
            "no checks configured or detected".to_string()
        } else {
            summary.join(", ")
        };
        cx.results = results;
        Ok(Outcome {
            ok,
            detail,
            stop: None,
        })
    }
}
