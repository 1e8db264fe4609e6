//! `merge`: on `auto_merge`, the forge merges the exact tested commit without a reaction.
//! A failed auto-merge leaves the change published and waiting for an approval.

use async_trait::async_trait;
use serde_json::json;

use crate::forge::MergeRequest;
use crate::report::Decision;
use crate::run::{FlowError, NodeName, Outcome, RunCtx};
use crate::task::short_sha;

/// The merge node; runs only on an `auto_merge` decision with a tested commit.
pub struct Merge;

#[async_trait]
impl crate::run::Node for Merge {
    fn name(&self) -> NodeName {
        NodeName::Merge
    }

    fn skip(&self, cx: &RunCtx<'_>) -> bool {
        cx.commit.is_none()
            || cx
                .judged
                .as_ref()
                .is_none_or(|j| j.decision != Decision::AutoMerge)
    }

    async fn run(&self, cx: &mut RunCtx<'_>) -> Result<Outcome, FlowError> {
        let forge = cx.forge()?;
        let cfg = &cx.svc.cfg;
        let tested = cx.commit.clone().unwrap_or_default();
        let req = MergeRequest {
            tested: &tested,
            method: cfg.merge_method(&cx.task.repo.name),
            approver: "slipway ([policy] auto_merge)",
            thread_url: cx.task.thread_url.as_deref(),
            delete_branch: cfg.repo(&cx.task.repo.name).is_none_or(|r| r.delete_branch),
        };
        let merged = forge.merge(cx.task, &req).await;
        let base = cx.task.repo.base.clone();
        let Some(judged) = cx.judged.as_mut() else {
            return Ok(Outcome::failed("nothing was judged"));
        };
        match merged {
            Ok(m) => {
                judged.reasons.push(format!(
                    "merged automatically into {base} as {}",
                    short_sha(&m.sha)
                ));
                cx.tracker
                    .log
                    .audit("merge", "slipway", json!({"decision": "auto_merge", "tested": tested, "merge_commit": m.sha, "method": req.method}))
                    .await?;
                let detail = m.sha.clone();
                cx.merged = Some(m);
                Ok(Outcome::ok(detail))
            }
            Err(e) => {
                // The change stays published; a person decides.
                judged.decision = Decision::NeedsApproval;
                judged.reasons.push(format!(
                    "auto-merge failed, so it waits for an approval: {e}"
                ));
                cx.tracker
                    .log
                    .audit("merge_failed", "slipway", json!({"error": e.to_string()}))
                    .await?;
                Ok(Outcome::failed(e.to_string()))
            }
        }
    }
}
