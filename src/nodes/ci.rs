//! `ci`: waits for the forge's CI on the pushed commit. A failure asks for a CI fix round
//! (at most [`MAX_CI_ROUNDS`]); otherwise CI's verdict replaces the `ci` gate and the run is
//! judged again.

use async_trait::async_trait;
use serde_json::json;

use super::fix::MAX_CI_ROUNDS;
use super::nothing_to_publish;
use crate::agent::AgentEnd;
use crate::forge::CiOutcome;
use crate::report::{Gate, GateName, GateStatus};
use crate::run::{FlowError, NodeName, Outcome, RunCtx, RunError};
use crate::store::AuditEvent;

/// The ci node; skipped when nothing was published or the forge has no CI.
pub struct Ci;

fn after_rounds(n: u32) -> String {
    match n {
        0 => String::new(),
        1 => " after 1 CI fix round".to_string(),
        n => format!(" after {n} CI fix rounds"),
    }
}

#[async_trait]
impl crate::run::Node for Ci {
    fn name(&self) -> NodeName {
        NodeName::Ci
    }

    fn skip(&self, cx: &RunCtx<'_>) -> bool {
        nothing_to_publish(cx) || cx.forge.as_ref().is_none_or(|f| !f.has_ci())
    }

    async fn run(&self, cx: &mut RunCtx<'_>) -> Result<Outcome, FlowError> {
        let forge = cx.forge()?;
        let sha = cx.commit.clone().unwrap_or_default();
        let outcome = forge.wait_ci(cx.task, &sha, &cx.cancel).await;
        if cx.cancel.is_cancelled() {
            return Err(FlowError::Cancelled);
        }
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => return Ok(Outcome::stopped(RunError::from(e))),
        };
        let (gate, retry) = match outcome {
            CiOutcome::NoCi { detail } => (Gate::new(GateName::Ci, GateStatus::Skip, detail), None),
            CiOutcome::Passed { detail } => (
                Gate::new(
                    GateName::Ci,
                    GateStatus::Pass,
                    format!("{detail}{}", after_rounds(cx.ci_rounds)),
                ),
                None,
            ),
            CiOutcome::TimedOut { detail } => {
                (Gate::new(GateName::Ci, GateStatus::Warn, detail), None)
            }
            CiOutcome::Failed { detail, failures } => {
                cx.tracker
                    .log
                    .transcript(
                        "ci_failure",
                        0,
                        json!({"commit": sha, "failures": failures}),
                    )
                    .await?;
                let may_fix = cx.ci_rounds < MAX_CI_ROUNDS
                    && cx.task.revert_of.is_none()
                    && matches!(cx.end, Some(AgentEnd::Finished { .. }));
                let detail = if may_fix {
                    detail
                } else {
                    format!(
                        "{detail}{}; no CI fix rounds left",
                        after_rounds(cx.ci_rounds)
                    )
                };
                (
                    Gate::new(GateName::Ci, GateStatus::Fail, detail),
                    may_fix.then_some(failures),
                )
            }
        };
        cx.tracker
            .log
            .audit(
                "slipway",
                AuditEvent::Ci {
                    commit: sha.clone(),
                    status: gate.status,
                    detail: gate.detail.clone(),
                },
            )
            .await?;
        let outcome = Outcome {
            ok: gate.status != GateStatus::Fail,
            detail: gate.detail.clone(),
            stop: None,
        };
        match retry {
            Some(failures) => cx.ci_failures = Some(failures),
            None => {
                if let Some(j) = cx.judged.take() {
                    cx.judged = Some(j.with_ci(gate, &cx.policy));
                }
            }
        }
        Ok(outcome)
    }
}
