//! `commit`: the pass's change as one commit by `slipway[bot]`, with `Requested-by`,
//! `Revision-by` (when someone other than the requester wrote the revision), `Slipway-Task`,
//! `Slipway-Run` and `Slipway-Revision` trailers; then the diff the gates judge, computed once.

use async_trait::async_trait;

use crate::agent::AgentEnd;
use crate::run::{FlowError, NodeName, Outcome, RunCtx};
use crate::task::short_sha;

/// The commit node.
pub struct Commit;

#[async_trait]
impl crate::run::Node for Commit {
    fn name(&self) -> NodeName {
        NodeName::Commit
    }

    async fn run(&self, cx: &mut RunCtx<'_>) -> Result<Outcome, FlowError> {
        // The agent rounds of this pass are over.
        cx.close_tools().await;
        let svc = cx.svc;
        let rev = cx.task.current();
        let subject = if rev.number == 1 {
            cx.task.title()
        } else {
            format!("{} (revision {})", cx.task.title(), rev.number)
        };
        let body = match &cx.end {
            Some(AgentEnd::Finished { summary }) => summary.clone(),
            Some(AgentEnd::Budget { kind }) => {
                format!("Unfinished: {}", cx.budget.describe(*kind))
            }
            Some(AgentEnd::Stopped { text }) => format!("Unfinished: the agent stopped. {text}"),
            Some(AgentEnd::PolicyViolation { reason }) => format!("Halted: {reason}"),
            Some(AgentEnd::OverBudget { reading }) => format!("Unfinished: {reading}"),
            None => "Unfinished: no agent ran".into(),
        };
        let rev_s = rev.number.to_string();
        let author = cx.task.author_of(rev);
        let mut trailers = vec![("Requested-by", cx.task.requester.as_str())];
        if author != cx.task.requester {
            trailers.push(("Revision-by", author));
        }
        trailers.extend([
            ("Slipway-Task", cx.task.id.as_str()),
            ("Slipway-Run", cx.run_id.as_str()),
            ("Slipway-Revision", rev_s.as_str()),
        ]);
        let wt = cx.wt()?;
        // A pass that changes nothing keeps the commit it started from.
        if let Some(c) = svc
            .workspaces
            .commit(wt, &subject, &body, &trailers)
            .await?
        {
            cx.commit = Some(c);
        }
        let wt = cx.wt()?;
        let diff = svc.workspaces.diff(wt).await?;
        let changes = svc.workspaces.changes(wt, &diff).await?;
        let whitespace_only = svc.workspaces.whitespace_only(wt, &changes).await?;
        let detail = match &cx.commit {
            Some(c) if cx.commit != cx.pass_start_commit => {
                format!("{} ({} files)", short_sha(c), changes.len())
            }
            _ => "nothing to commit".into(),
        };
        cx.evidence.diff = diff;
        cx.evidence.changes = changes;
        cx.evidence.whitespace_only = whitespace_only;
        Ok(Outcome::ok(detail))
    }
}
