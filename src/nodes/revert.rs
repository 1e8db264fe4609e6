//! `revert`: a revert task's change: `git revert` of the merge on the host (no agent). The
//! repo's checks then run in the sandbox before anything is published.

use async_trait::async_trait;

use crate::agent::AgentEnd;
use crate::run::{FlowError, NodeName, Outcome, RunCtx, RunError};
use crate::task::short_sha;

/// The revert node; runs only on a revert task.
pub struct Revert;

#[async_trait]
impl crate::run::Node for Revert {
    fn name(&self) -> NodeName {
        NodeName::Revert
    }

    fn skip(&self, cx: &RunCtx<'_>) -> bool {
        cx.task.revert_of.is_none()
    }

    async fn run(&self, cx: &mut RunCtx<'_>) -> Result<Outcome, FlowError> {
        let Some(of) = cx.task.revert_of.clone() else {
            return Ok(Outcome::ok("nothing to revert"));
        };
        let task = &cx.task;
        let what = of
            .pr_url
            .clone()
            .unwrap_or_else(|| format!("task {}", of.task_id));
        let summary = format!(
            "Reverts {what} (merge commit {}), as asked in Slack by {}.",
            short_sha(&of.merge_commit),
            task.requester
        );
        let message = format!(
            "{}\n\n{summary}\n\nRequested-by: {}\nSlipway-Task: {}\nSlipway-Reverts: {}\n",
            task.title(),
            task.requester,
            task.id,
            of.task_id
        );
        let reverted = cx
            .svc
            .workspaces
            .revert(cx.wt()?, &of.merge_commit, of.commits, &message)
            .await;
        let c = match reverted {
            Ok(c) => c,
            Err(e) => return Ok(Outcome::stopped(RunError::from(e))),
        };
        cx.end = Some(AgentEnd::Finished { summary });
        let detail = short_sha(&c).to_string();
        cx.commit = Some(c);
        Ok(Outcome::ok(detail))
    }
}
