//! `implement`: the agent loop on the task, with the prefetched tools, in the pass's offline
//! sandbox. The agent's wall-clock budget starts here, not before setup.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{agent_round, end_detail};
use crate::agent::{AgentEnd, prompt};
use crate::run::{FlowError, NodeKind, NodeName, Outcome, RunCtx};

/// The implement node; a revert has no agent.
pub struct Implement;

#[async_trait]
impl crate::run::Node for Implement {
    fn name(&self) -> NodeName {
        NodeName::Implement
    }

    fn kind(&self) -> NodeKind {
        NodeKind::Agent
    }

    fn skip(&self, cx: &RunCtx<'_>) -> bool {
        cx.task.revert_of.is_some()
    }

    async fn run(&self, cx: &mut RunCtx<'_>) -> Result<Outcome, FlowError> {
        let minutes = cx.svc.cfg.file.agent.max_minutes;
        cx.budget.deadline = Instant::now() + Duration::from_secs(minutes * 60);
        let text = prompt::task(cx.task.current(), cx.previous_summary.take().as_deref());
        let text = prompt::with_unrun(&std::mem::take(&mut cx.unrun), text);
        let end = match agent_round(cx, text).await {
            Ok(end) => end,
            Err(e) => return Ok(Outcome::stopped(e)),
        };
        let outcome = Outcome {
            ok: matches!(end, AgentEnd::Finished { .. }),
            detail: end_detail(&end, &cx.budget),
            stop: None,
        };
        cx.end = Some(end);
        Ok(outcome)
    }
}
