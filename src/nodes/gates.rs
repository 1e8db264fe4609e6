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
        let split = match cx.deps.is_some() {
            true => Some(split_update(cx).await?),
            false => None,
        };
        let ev = &cx.evidence;
        let has_ci = cx.forge()?.has_ci();
        let stopped = AgentEnd::Stopped {
            text: String::new(),
        };
        all.extend(gates::evaluate(&Evidence {
            checks: &cx.results,
            commands: &cx.check_cmds,
            changes: &ev.changes,
            // A dependency bump that passed its checks ran no agent; elsewhere a missing
            // ending is an agent that stopped.
            agent_end: match (&cx.end, &cx.deps) {
                (None, Some(_)) => None,
                (end, _) => Some(end.as_ref().unwrap_or(&stopped)),
            },
            fix_rounds: cx.fix_rounds,
            policy: &cx.policy,
            secrets: &findings,
            added_lines,
            committed: cx.commit.is_some(),
            dependencies: ev.dependencies.clone(),
            coverage: ev.coverage.clone(),
            // The forge's CI runs after the push; its verdict replaces this gate.
            deterministic: split.as_ref().map_or(&[][..], |s| s.bump_only.as_slice()),
            ci: has_ci.then(|| {
                Gate::new(
                    GateName::Ci,
                    GateStatus::Skip,
                    "not run yet: CI runs on the pushed commit",
                )
            }),
        }));
        let classified = classify::classify(&ev.changes, ev.whitespace_only, &ev.diff);
        let judged = match split {
            Some(split) => judge_update(cx, all, classified, split),
            None => Judged::new(all, classified, &cx.policy),
        };
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

/// What the bump changed and what the agent changed after it.
struct Split {
    /// Changed by the bump and not touched by the agent since.
    bump_only: Vec<String>,
    /// Changed by the agent after the bump.
    agent_files: Vec<String>,
    /// The agent's part of the diff.
    agent_diff: String,
}

async fn split_update(cx: &RunCtx<'_>) -> Result<Split, FlowError> {
    let svc = cx.svc;
    let wt = cx.wt()?;
    let Some(bump) = cx.deps.as_ref().and_then(|d| d.bump_commit.clone()) else {
        return Ok(Split {
            bump_only: Vec::new(),
            agent_files: Vec::new(),
            agent_diff: String::new(),
        });
    };
    let (mut agent_files, mut agent_diff) = (Vec::new(), String::new());
    if cx.commit.as_deref() != Some(bump.as_str()) {
        agent_files = svc.workspaces.changed_since(wt, &bump).await?;
        agent_diff = svc.workspaces.diff_since(wt, &bump).await?;
    }
    let bumped = svc
        .workspaces
        .changed_between(wt, &wt.base_sha, &bump)
        .await?;
    Ok(Split {
        bump_only: bumped
            .into_iter()
            .filter(|p| !agent_files.contains(p))
            .collect(),
        agent_files,
        agent_diff,
    })
}

/// The judgement of a `dependency_update` change: the bump alone is `dependency_update`;
/// what the agent changed after it is classified on its own and the riskier class decides
/// (`gates::deps`).
fn judge_update(
    cx: &mut RunCtx<'_>,
    gates: Vec<crate::report::Gate>,
    whole: classify::Classified,
    split: Split,
) -> Judged {
    use crate::report::Classification;
    let deps = cx.deps.clone().unwrap_or_default();
    let Split {
        agent_files,
        agent_diff,
        ..
    } = split;
    let mut agent_class = None;
    let classified = if agent_files.is_empty() {
        match whole.class {
            // A bump that only touched manifests and lockfiles; anything else the bump
            // kept is judged as it is.
            Classification::DependencyUpdate | Classification::Config => classify::Classified {
                class: Classification::DependencyUpdate,
                evidence: format!("only manifests and lockfiles changed: {}", deps.named()),
            },
            _ => whole,
        }
    } else {
        let part: Vec<_> = cx
            .evidence
            .changes
            .iter()
            .filter(|c| agent_files.contains(&c.path))
            .cloned()
            .collect();
        let own = classify::classify(&part, false, &agent_diff);
        agent_class = Some(own.class);
        let class = gates::deps::riskier(Classification::DependencyUpdate, own.class);
        classify::Classified {
            class,
            evidence: format!(
                "dependency_update plus the agent's {} change ({}): {}",
                own.class.as_str(),
                agent_files.join(", "),
                own.evidence
            ),
        }
    };
    let facts = gates::deps::GroupFacts {
        named: deps.named(),
        majors: deps.majors(),
        automerge: deps.group.as_ref().and_then(|g| g.automerge),
        fix_rounds: cx.fix_rounds,
        agent_class,
    };
    let (decision, mut reasons) =
        gates::deps::decide_update(classified.class, &gates, &cx.policy, &facts);
    reasons.push(format!(
        "classified {}: {}",
        classified.class.as_str(),
        classified.evidence
    ));
    if let Some(d) = cx.deps.as_mut() {
        d.agent_files = agent_files;
    }
    Judged {
        gates,
        classified,
        decision,
        reasons,
    }
}
