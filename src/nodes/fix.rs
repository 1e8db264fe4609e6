//! `fix` and `ci_fix`: agent rounds on the same conversation, given what failed (the checks'
//! output, or CI's). The blueprint's `Rounds` step counts the rounds and stops at the limit.

use async_trait::async_trait;

use super::{agent_round, end_detail};
use crate::agent::{AgentEnd, prompt};
use crate::gates::checks;
use crate::run::{FlowError, NodeKind, NodeName, Outcome, RunCtx};

/// Fix rounds after failed checks (the contract's "at most two").
pub const MAX_FIX_ROUNDS: u32 = 2;
/// Agent rounds after failed CI, per revision (issue 4: "at most 2 CI rounds").
pub const MAX_CI_ROUNDS: u32 = 2;

/// A fix round after failed checks.
pub struct Fix;

#[async_trait]
impl crate::run::Node for Fix {
    fn name(&self) -> NodeName {
        NodeName::Fix
    }

    fn kind(&self) -> NodeKind {
        NodeKind::Agent
    }

    async fn run(&self, cx: &mut RunCtx<'_>) -> Result<Outcome, FlowError> {
        let round = cx.fix_rounds;
        let text = prompt::fix(round, MAX_FIX_ROUNDS, &failures(cx));
        // The checks stopped the sandboxed MCP servers; the agent gets them back.
        super::sidecar::restart(cx).await?;
        fix_round(cx, text, format!("round {round}")).await
    }
}

/// The failed checks' output, redacted like every tool result before the model sees it
/// (check output is the repo's code talking: a test may print a file it read).
pub(crate) fn failures(cx: &RunCtx<'_>) -> String {
    cx.svc
        .cfg
        .secret_values
        .redact(&checks::failures_text(&cx.results))
}

/// One agent round with `text`, recorded as `<label>: <how it ended>`; the ending is kept
/// for the next `Rounds` decision.
pub(crate) async fn fix_round(
    cx: &mut RunCtx<'_>,
    text: String,
    label: String,
) -> Result<Outcome, FlowError> {
    let end = match agent_round(cx, text).await {
        Ok(end) => end,
        Err(e) => return Ok(Outcome::stopped(e)),
    };
    let outcome = Outcome {
        ok: matches!(end, AgentEnd::Finished { .. }),
        detail: format!("{label}: {}", end_detail(&end, &cx.budget)),
        stop: None,
    };
    cx.end = Some(end);
    Ok(outcome)
}

/// A fix round after failed CI: it continues the conversation, so the model remembers what
/// it did.
pub struct CiFix;

#[async_trait]
impl crate::run::Node for CiFix {
    fn name(&self) -> NodeName {
        NodeName::CiFix
    }

    fn kind(&self) -> NodeKind {
        NodeKind::Agent
    }

    async fn run(&self, cx: &mut RunCtx<'_>) -> Result<Outcome, FlowError> {
        let round = cx.ci_rounds;
        let failures = cx.ci_failures.take().unwrap_or_default();
        let failures = cx.svc.cfg.secret_values.redact(&failures);
        let text = prompt::ci_fix(round, MAX_CI_ROUNDS, &failures);
        fix_round(cx, text, format!("CI round {round}")).await
    }
}
