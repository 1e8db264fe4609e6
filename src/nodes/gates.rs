//! `gates`: evidence → gates → classification → decision (`gates::decide`, failing closed).
//! A halted change is kept in the transcript and never published.

use async_trait::async_trait;
use serde_json::json;

use crate::agent::AgentEnd;
use crate::gates::{self, Evidence, classify, secrets};
use crate::report::{Decision, Gate, GateName, GateStatus};
use crate::run::{FlowError, Judged, NodeName, Outcome, RunCtx};
use crate::store::{AuditEvent, SecretFinding};

/// The gates node.
pub struct Gates;

#[async_trait]
impl crate::run::Node for Gates {
    fn name(&self) -> NodeName {
        NodeName::Gates
    }

    async fn run(&self, cx: &mut RunCtx<'_>) -> Result<Outcome, FlowError> {
        let ev = &cx.evidence;
        let mut all = cx.extra_gates.clone();
        let findings = secrets::Scanner::new().scan_diff(&ev.diff);
        let added_lines = ev.changes.iter().map(|c| c.added).sum();
        if !findings.is_empty() {
            cx.tracker
                .log
                .audit(
                    "slipway",
                    AuditEvent::SecretFound {
                        findings: findings
                            .iter()
                            .map(|f| SecretFinding {
                                rule: f.rule.to_string(),
                                path: f.path.clone(),
                                line: f.line,
                            })
                            .collect(),
                    },
                )
                .await?;
        }
        let has_ci = cx.forge()?.has_ci();
        let stopped = AgentEnd::Stopped {
            text: String::new(),
        };
        all.extend(gates::evaluate(&Evidence {
            checks: &cx.results,
            commands: &cx.check_cmds,
            changes: &ev.changes,
            agent_end: cx.end.as_ref().unwrap_or(&stopped),
            fix_rounds: cx.fix_rounds,
            policy: &cx.policy,
            secrets: &findings,
            added_lines,
            committed: cx.commit.is_some(),
            dependencies: ev.dependencies.clone(),
            coverage: ev.coverage.clone(),
            // The forge's CI runs after the push; its verdict replaces this gate.
            ci: has_ci.then(|| {
                Gate::new(
                    GateName::Ci,
                    GateStatus::Skip,
                    "not run yet: CI runs on the pushed commit",
                )
            }),
        }));
        let classified = classify::classify(&ev.changes, ev.whitespace_only, &ev.diff);
        let judged = Judged::new(all, classified, &cx.policy);
        let halt = judged.decision == Decision::Halt;
        let detail = judged.decision.to_string();
        if halt && cx.commit.is_some() {
            // Keep the halted diff for the audit trail; the branch is not published.
            cx.tracker
                .log
                .transcript(
                    "halted_diff",
                    0,
                    json!({"diff": crate::task::truncate_chars(&cx.evidence.diff, 200_000)}),
                )
                .await?;
        }
        cx.judged = Some(judged);
        Ok(Outcome {
            ok: !halt,
            detail,
            stop: None,
        })
    }
}
