//! The run lifecycle, written once for every blueprint: `RunStarted`, the run record, the
//! task's state, the run's directories, cancellation, the final or failure report, and
//! `RunFinished`/`RunFailed`.
//!
//! Blueprints only list steps; nodes only do their work. Until a step has made the run's
//! work tree, a failure leaves nothing behind and comes back as a [`RunError`] (a bad repo
//! or policy file: exit status 2; a forge or store failure: 1). From then on the task and
//! its run are stored, and every failure ends with a `halt` report that says what happened.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Runner;
use super::ctx::RunCtx;
use super::error::{FlowError, RunError};
use super::events::RunEvent;
use super::node::{Blueprint, run_steps};
use super::tracker::Tracker;
use crate::forge::PullRequestContent;
use crate::gates::checks::CheckStatus;
use crate::report::{Decision, Gate, GateStatus, RunReport};
use crate::store::{AuditEvent, RunLog, RunRecord, RunState, TaskTxn};
use crate::task::{Task, TaskState, new_id, now_ms};

/// Runs the current revision of `task` through `blueprint`. `events` (bounded) receives
/// progress; `cancel` stops the run and its sandbox at its next step.
///
/// Errors: a [`RunError`] only when the run failed before it was stored; later failures
/// and cancellation return `Ok` with a `halt` report.
pub async fn execute(
    svc: &Runner,
    task: &mut Task,
    blueprint: &Blueprint,
    cancel: CancellationToken,
    events: Option<mpsc::Sender<RunEvent>>,
) -> Result<RunReport, RunError> {
    if task.current().instructions.trim().is_empty() {
        return Err(RunError::EmptyTask);
    }
    let run_id = new_id();
    let revision = task.current().number;
    let log = RunLog::new(
        svc.store.clone(),
        &task.id,
        &run_id,
        svc.cfg.secret_values.0.clone(),
    );
    let record = RunRecord {
        run_id: run_id.clone(),
        task_id: task.id.clone(),
        revision,
        blueprint: blueprint.id,
        state: RunState::Running,
        nodes: Vec::new(),
        report: None,
        error: None,
        summary: None,
        started_ms: now_ms(),
        finished_ms: None,
    };
    let tracker = Tracker::new(log, record, events);
    tracker
        .emit(RunEvent::RunStarted {
            task_id: task.id.clone(),
            run_id: run_id.clone(),
            revision,
            branch: task.branch.clone(),
        })
        .await;
    let mut cx = RunCtx::new(svc, task, blueprint.id, tracker, cancel);

    // Each top-level step in turn; the run is recorded as soon as it has a work tree.
    let mut outcome: Result<(), FlowError> = Ok(());
    for step in &blueprint.steps {
        outcome = run_steps(std::slice::from_ref(step), &mut cx).await;
        if !cx.tracker.persist {
            if let Err(e) = outcome {
                // Nothing is stored yet: bad input leaves nothing behind.
                cx.close_sandbox().await;
                let e = match e {
                    FlowError::Run(e) => e,
                    FlowError::Cancelled => {
                        RunError::Sandbox(crate::sandbox::SandboxError::Cancelled)
                    }
                };
                cx.tracker
                    .emit(RunEvent::RunFailed {
                        error: e.to_string(),
                    })
                    .await;
                return Err(e);
            }
            if cx.dirs.is_some() {
                record_start(&mut cx).await?;
                // The sandbox home; from here a failure is a stored, reported run.
                let home = cx.home();
                if let Err(e) = std::fs::create_dir_all(&home) {
                    let e = RunError::RunDir(format!("cannot create {}: {e}", home.display()));
                    outcome = Err(e.into());
                }
            }
        }
        if outcome.is_err() {
            break;
        }
    }
    cx.close_sandbox().await;
    cx.close_tools().await;
    let repo = cx.task.repo.name.clone();
    let result = finish(cx, outcome).await;
    // The run's directories are gone: top the repo's warm pool back up, in the background.
    svc.pool.refill(&repo);
    result
}

/// The run now has a work tree: store the task as running and the run record, and audit
/// `run_started`.
async fn record_start(cx: &mut RunCtx<'_>) -> Result<(), RunError> {
    let svc = cx.svc;
    // Only the fields this run owns are written; revisions added meanwhile are kept (and
    // revisions the caller added in memory are stored: the longer list wins).
    let revisions = cx.task.revisions.clone();
    let run_id = cx.run_id.clone();
    let start = |t: &mut Task| {
        if revisions.len() > t.revisions.len() {
            t.revisions = revisions.clone();
        }
        if !t.runs.contains(&run_id) {
            t.runs.push(run_id.clone());
        }
    };
    // A stored task starts only if the state machine allows it (a ❌ or a merge since the
    // queue dispatched it wins); a task not stored yet (`slipway run`) is stored now.
    *cx.task = match svc
        .store
        .transition(&cx.task.id, TaskState::Running, start)
        .await?
    {
        TaskTxn::Done { task, .. } => *task,
        TaskTxn::Refused(why) => return Err(RunError::NotRunnable(why)),
        TaskTxn::Missing | TaskTxn::Duplicate => {
            svc.store
                .update_task(cx.task, |t| {
                    start(t);
                    t.state = TaskState::Running;
                    t.updated_ms = now_ms();
                })
                .await?
        }
    };
    // The run does the revision it was dispatched for (the one `RunStarted` named): a
    // revision added since waits in the queue for its own run. Only this copy is cut; the
    // stored task keeps every revision.
    let dispatched = cx.tracker.record.revision as usize;
    if (1..cx.task.revisions.len()).contains(&dispatched) {
        cx.task.revisions.truncate(dispatched);
    }
    cx.previous_summary = previous_summary(svc, cx.task);
    cx.unrun = unrun_revisions(svc, cx.task);
    cx.tracker.persist = true;
    svc.store.put_run(&cx.tracker.record).await?;
    cx.tracker
        .log
        .audit(
            &cx.task.requester,
            AuditEvent::RunStarted {
                revision: cx.tracker.record.revision,
                branch: cx.task.branch.clone(),
                blueprint: cx.blueprint,
            },
        )
        .await?;
    Ok(())
}

/// The summary of the task's latest run that published a change (a halted run's change is
/// not on the branch, so the model must not be told it is).
fn previous_summary(svc: &Runner, task: &Task) -> Option<String> {
    task.runs
        .iter()
        .rev()
        .filter_map(|id| svc.store.get_run(id).ok().flatten())
        .filter(|r| {
            r.report
                .as_ref()
                .is_some_and(|rep| rep.commit.is_some() && rep.decision != Decision::Halt)
        })
        .find_map(|r| r.summary)
}

/// Revisions before the current one that no run finished: those after the newest
/// revision with a finished run (a run that ended with a report, halted included, or that a
/// person cancelled), before
/// the current one. Such a revision was interrupted or superseded in the queue; without
/// this its instruction would be silently skipped.
fn unrun_revisions(svc: &Runner, task: &Task) -> Vec<crate::task::Revision> {
    let last_done = task
        .runs
        .iter()
        .filter_map(|id| svc.store.get_run(id).ok().flatten())
        // A run a person cancelled (❌) settled its revision too: it is not brought back.
        .filter(|r| matches!(r.state, RunState::Finished | RunState::Cancelled))
        .map(|r| r.revision)
        .max()
        .unwrap_or(0);
    let current = task.current().number;
    task.revisions
        .iter()
        .filter(|r| r.number > last_done && r.number < current)
        .cloned()
        .collect()
}

/// Ends a stored run: report, run record, task state, audit, and the final event.
async fn finish(mut cx: RunCtx<'_>, outcome: Result<(), FlowError>) -> Result<RunReport, RunError> {
    let svc = cx.svc;
    cx.timings.total = cx.started.elapsed().as_millis() as u64;
    let result: Result<RunReport, RunError> = match outcome {
        Ok(()) => {
            let mut report = match cx.judged.as_ref() {
                Some(j) => cx.report(Some(j)),
                None => unjudged_report(&cx),
            };
            report.timings_ms = cx.timings.clone();
            let summary = cx.summary().map(str::to_string);
            // The PR shows the final report (CI's verdict included); a blueprint that judges
            // nothing has no report for a PR.
            if let (Some(number), Ok(forge), true) = (cx.pr_number, cx.forge(), cx.judged.is_some())
            {
                let content = pr_content(&cx, &report);
                let task = Task {
                    pr_number: Some(number),
                    ..cx.task.clone()
                };
                if let Err(e) = forge.describe(&task, &content).await {
                    tracing::warn!(error = %e, "could not update the PR description");
                }
            }
            cx.tracker.record.summary = summary;
            cx.task.state = match report.decision {
                Decision::Halt => TaskState::Halted,
                _ if cx.merged.is_some() => TaskState::Merged,
                _ => TaskState::Ready,
            };
            cx.tracker
                .log
                .audit(
                    "slipway",
                    AuditEvent::Decision {
                        decision: report.decision,
                        reasons: report.reasons.clone(),
                    },
                )
                .await?;
            cx.tracker
                .close(RunState::Finished, Some(report.clone()), None)
                .await?;
            Ok(report)
        }
        Err(e) => {
            let cancelled = matches!(e, FlowError::Cancelled);
            let message = e.to_string();
            cx.task.state = if cancelled {
                TaskState::Cancelled
            } else {
                TaskState::Failed
            };
            let report = failure_report(&cx, &message);
            cx.tracker
                .log
                .audit(
                    "slipway",
                    if cancelled {
                        AuditEvent::RunCancelled {
                            error: message.clone(),
                        }
                    } else {
                        AuditEvent::RunFailed {
                            error: message.clone(),
                        }
                    },
                )
                .await?;
            let state = if cancelled {
                RunState::Cancelled
            } else {
                RunState::Failed
            };
            cx.tracker
                .close(state, Some(report.clone()), Some(message))
                .await?;
            Ok(report)
        }
    };
    let (state, pr_url, merged) = (
        cx.task.state,
        result.as_ref().ok().and_then(|r| r.pr_url.clone()),
        cx.merged.clone(),
    );
    let record = |t: &mut Task| {
        if pr_url.is_some() {
            t.pr_url = pr_url.clone();
        }
        if let Some(m) = &merged {
            t.merge_commit = Some(m.sha.clone());
            t.merged_commits = m.commits;
        }
    };
    // The end state only through the state machine: a task closed or merged meanwhile
    // keeps that state (its PR link is still recorded).
    *cx.task = match svc.store.transition(&cx.task.id, state, record).await? {
        TaskTxn::Done { task, .. } => *task,
        TaskTxn::Refused(why) => {
            tracing::info!(task_id = cx.task.id, reason = %why, "run ended; the task's state moved on and is kept");
            svc.store
                .update_task(cx.task, |t| {
                    record(t);
                    t.updated_ms = now_ms();
                })
                .await?
        }
        TaskTxn::Missing | TaskTxn::Duplicate => {
            svc.store
                .update_task(cx.task, |t| {
                    record(t);
                    t.state = state;
                    t.updated_ms = now_ms();
                })
                .await?
        }
    };
    cx.dirs.take();
    match &result {
        Ok(r) => {
            cx.tracker
                .emit(RunEvent::RunFinished {
                    report: Box::new(r.clone()),
                })
                .await
        }
        Err(e) => {
            cx.tracker
                .emit(RunEvent::RunFailed {
                    error: e.to_string(),
                })
                .await
        }
    }
    result
}

/// The PR's title and body for `report`.
pub fn pr_content(cx: &RunCtx<'_>, report: &RunReport) -> PullRequestContent {
    let calls: Vec<(String, bool)> = cx
        .conv
        .as_ref()
        .map(|c| {
            c.tool_calls
                .iter()
                .map(|t| (t.name.clone(), t.ok))
                .collect()
        })
        .unwrap_or_default();
    let mut body =
        crate::gates::render::markdown(report, cx.summary(), cx.task.thread_url.as_deref(), &calls);
    let title = match &cx.task.revert_of {
        Some(_) => cx.task.title(),
        None => format!("slipway: {}", cx.task.title()),
    };
    let mut labels = Vec::new();
    if let Some(deps) = &cx.deps {
        body = format!(
            "{}\n{body}",
            crate::deps::render::pr_section(deps, cx.summary(), crate::task::now_ms())
        );
        labels.push("dependencies".to_string());
        if deps.is_security() {
            labels.push("security".to_string());
        }
    }
    // GitHub refuses a body over 65,536 characters: keep a margin and say it was cut.
    let max = crate::deps::render::GITHUB_BODY_MAX - 1_000;
    if body.chars().count() > max {
        body = format!(
            "{}\n\n(cut: the full report is in the Slack thread and `slipway tasks show`)",
            crate::task::truncate_chars(&body, max)
        );
    }
    PullRequestContent {
        title,
        body,
        labels,
    }
}

/// The report of a blueprint without a gates node: the checks' gates, and nothing to
/// publish (`needs_approval` when every gate passed, else `halt`).
fn unjudged_report(cx: &RunCtx<'_>) -> RunReport {
    let mut report = cx.report(None);
    report.gates.extend(cx.results.iter().map(|r| {
        let status = match r.status {
            CheckStatus::Pass => GateStatus::Pass,
            CheckStatus::Fail => GateStatus::Fail,
            CheckStatus::Unavailable => GateStatus::Warn,
        };
        Gate::new(
            r.check.kind.gate_name(),
            status,
            format!("`{}`", r.check.command),
        )
    }));
    let failed = report.gates.iter().any(|g| g.status == GateStatus::Fail);
    report.decision = if failed {
        Decision::Halt
    } else {
        Decision::NeedsApproval
    };
    report.reasons = vec![format!(
        "blueprint {} judges no change: {}",
        cx.blueprint.as_str(),
        if failed {
            "a check failed"
        } else {
            "every check passed"
        }
    )];
    report
}

/// The report of a run that failed or was cancelled after it was stored: decision `halt`,
/// the error as the reason.
fn failure_report(cx: &RunCtx<'_>, message: &str) -> RunReport {
    let failed_node = cx
        .tracker
        .record
        .nodes
        .iter()
        .rev()
        .find(|n| !n.ok)
        .map(|n| n.node.clone());
    let mut reasons = vec![format!("run failed: {message}")];
    if let Some(n) = failed_node {
        reasons.push(format!("at node {n}"));
    }
    let mut report = cx.report(None);
    // The judgement, when the run got that far, keeps its classification.
    if let Some(j) = &cx.judged {
        report.classification = j.classified.class;
    }
    report.reasons = reasons;
    report.fix_rounds = cx.fix_rounds;
    report.timings_ms = cx.timings.clone();
    report
}
