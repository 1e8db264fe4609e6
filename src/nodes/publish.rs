//! `publish`: pushes the branch and opens or updates the PR with the report so far. Only a
//! change that may go on (not `halt`, with a commit) leaves slipway's data dir.

use async_trait::async_trait;

use super::nothing_to_publish;
use crate::run::lifecycle::pr_content;
use crate::run::{FlowError, NodeName, Outcome, RunCtx, RunError, RunEvent};
use crate::store::AuditEvent;

/// The publish node.
pub struct Publish;

#[async_trait]
impl crate::run::Node for Publish {
    fn name(&self) -> NodeName {
        NodeName::Publish
    }

    fn skip(&self, cx: &RunCtx<'_>) -> bool {
        nothing_to_publish(cx)
    }

    async fn run(&self, cx: &mut RunCtx<'_>) -> Result<Outcome, FlowError> {
        let forge = cx.forge()?;
        let report = cx.report(cx.judged.as_ref());
        let content = pr_content(cx, &report);
        let p = match forge.publish(cx.wt()?, cx.task, &content).await {
            Ok(p) => p,
            Err(e) => return Ok(Outcome::stopped(RunError::from(e))),
        };
        cx.pr_url = p.pr_url.clone();
        cx.pr_number = p.pr_number;
        // Stored at once: a crash after this point finds the same PR.
        if p.pr_number.is_some() {
            let (url, number) = (p.pr_url.clone(), p.pr_number);
            cx.svc
                .store
                .update_task(cx.task, |t| {
                    t.pr_url = url.clone();
                    t.pr_number = number;
                })
                .await?;
        }
        let branch = cx.wt()?.branch.clone();
        cx.tracker
            .log
            .audit(
                "slipway",
                AuditEvent::Push {
                    branch,
                    commit: cx.commit.clone(),
                    to: p.location.clone(),
                },
            )
            .await?;
        if p.opened {
            cx.tracker
                .log
                .audit(
                    "slipway",
                    AuditEvent::PrOpened {
                        pr: p.pr_url.clone(),
                    },
                )
                .await?;
        }
        cx.tracker
            .emit(RunEvent::Published {
                pr_url: p.pr_url.clone(),
                location: p.location.clone(),
            })
            .await;
        Ok(Outcome::ok(p.location))
    }
}
