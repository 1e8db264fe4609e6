//! `merge`: on `auto_merge`, the forge merges the exact tested commit without a reaction,
//! through the same action a ✅ uses (`actions::merge_tested`: state and audit written
//! there). A failed auto-merge leaves the change published and waiting for an approval.

use async_trait::async_trait;

use crate::actions::merge::merge_request;
use crate::actions::{ActionError, MergeAuthority, merge_tested};
use crate::report::Decision;
use crate::run::{FlowError, NodeName, Outcome, RunCtx, RunError};
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
        let svc = cx.svc;
        let tested = cx.commit.clone().unwrap_or_default();
        let req = merge_request(
            &svc.cfg.file.repos,
            cx.task,
            &tested,
            "slipway ([policy] auto_merge)",
        );
        let authority = MergeAuthority::AutoMerge { run_id: &cx.run_id };
        let merged = merge_tested(forge.as_ref(), &svc.store, cx.task, &req, authority).await;
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
                let detail = m.sha.clone();
                cx.merged = Some(m);
                Ok(Outcome::ok(detail))
            }
            Err(ActionError::Forge(e)) => {
                // The change stays published; a person decides.
                judged.decision = Decision::NeedsApproval;
                judged.reasons.push(format!(
                    "auto-merge failed, so it waits for an approval: {e}"
                ));
                Ok(Outcome::failed(e.to_string()))
            }
            Err(ActionError::Store(e)) => Err(RunError::Store(e).into()),
            Err(other) => Err(RunError::Internal(format!("auto-merge: {other}")).into()),
        }
    }
}
