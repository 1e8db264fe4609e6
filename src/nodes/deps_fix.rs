//! `dependency_update`'s agent: only when the bumped versions break the checks. The first
//! round opens the conversation with the updates, the failing output and each package's
//! release notes (fenced as data); the second continues it with the new failures. The
//! blueprint's `Rounds` step stops at [`super::fix::MAX_FIX_ROUNDS`].

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::Prefetch;
use super::fix::MAX_FIX_ROUNDS;
use crate::agent::prompt;
use crate::run::{FlowError, Node, NodeKind, NodeName, Outcome, RunCtx};

/// The prefetch of the first dependency fix round (the tools stay offered for the second).
pub struct PrefetchForFix;

#[async_trait]
impl Node for PrefetchForFix {
    fn name(&self) -> NodeName {
        NodeName::Prefetch
    }

    fn skip(&self, cx: &RunCtx<'_>) -> bool {
        cx.offered.is_some()
    }

    async fn run(&self, cx: &mut RunCtx<'_>) -> Result<Outcome, FlowError> {
        Prefetch.run(cx).await
    }
}

/// A fix round after the bump broke the checks (recorded as `fix`).
pub struct DepsFix;

#[async_trait]
impl Node for DepsFix {
    fn name(&self) -> NodeName {
        NodeName::Fix
    }

    fn kind(&self) -> NodeKind {
        NodeKind::Agent
    }

    async fn run(&self, cx: &mut RunCtx<'_>) -> Result<Outcome, FlowError> {
        let round = cx.fix_rounds;
        let failures = super::fix::failures(cx);
        let text = if cx.conv.is_none() {
            // The agent's wall-clock budget starts with its first round.
            let minutes = cx.svc.cfg.file.agent.max_minutes;
            cx.budget.deadline = Instant::now() + Duration::from_secs(minutes * 60);
            let deps = cx.deps.clone().unwrap_or_default();
            let lines: Vec<String> = deps
                .updates()
                .iter()
                .map(|u| {
                    format!(
                        "{} ({}) {} → {} ({} update)",
                        u.dep.name,
                        u.dep.ecosystem,
                        u.dep.current,
                        u.to,
                        u.update_type.as_str()
                    )
                })
                .collect();
            let secrets = &cx.svc.cfg.secret_values;
            let notes: Vec<_> = deps
                .notes
                .iter()
                .map(|n| crate::deps::ReleaseNotes {
                    excerpt: n.excerpt.as_deref().map(|e| secrets.redact(e)),
                    ..n.clone()
                })
                .collect();
            prompt::dependency_fix(&lines, &notes, round, MAX_FIX_ROUNDS, &failures)
        } else {
            // The checks stopped the sandboxed MCP servers; the agent gets them back.
            super::sidecar::restart(cx).await?;
            prompt::fix(round, MAX_FIX_ROUNDS, &failures)
        };
        super::fix::fix_round(cx, text, format!("round {round}")).await
    }
}
