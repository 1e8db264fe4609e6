//! The `code_change` blueprint:
//! workspace → setup → prefetch → implement (agent) → checks ⇄ fix (agent, ≤ 2 rounds) →
//! commit → gates → publish → report.
//!
//! Deterministic nodes do everything that needs no judgement. The agent gets the repo in an
//! offline sandbox with the prefetched tools and a budget. Nothing the agent does decides
//! what is pushed: the gates do.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{NodeKind, RunEvent, Tracker};
use crate::agent::llm::cost_usd;
use crate::agent::{AgentEnd, AgentError, AgentNode, Budget, Conversation, prompt};
use crate::forge::{CiOutcome, Forge, MergeRequest, Merged, PullRequestContent};
use crate::gates::checks::{self, CheckCommand, CheckResult, CheckStatus};
use crate::gates::policy::{self, EffectivePolicy, RepoPolicy};
use crate::gates::{self, Evidence, classify, sandboxed, secrets};
use crate::report::{
    AgentTotals, Classification, Decision, Gate, GateName, GateStatus, RunReport, SandboxInfo,
    Timings,
};
use crate::runner::{RunError, Runner};
use crate::sandbox::{NetworkAccess, SandboxPolicy, SandboxSpec, Session};
use crate::store::{RunLog, RunRecord, RunState};
use crate::task::{Task, TaskState, new_id, now_ms};
use crate::tools::builtins::ToolContext;
use crate::tools::guard::CommandGuard;
use crate::tools::mcp::{self, McpHub};
use crate::tools::prefetch::{Index, RepoSignals, Request};
use crate::tools::registry::ToolEntry;
use crate::workspace::Worktree;
use std::sync::Arc;

/// The blueprint's name (the report's `blueprint`).
pub const NAME: &str = "code_change";
/// Fix rounds after failed checks (the contract's "at most two").
pub const MAX_FIX_ROUNDS: u32 = 2;
/// Agent rounds after failed CI, per revision (issue 4: "at most 2 CI rounds").
pub const MAX_CI_ROUNDS: u32 = 2;

/// The gates node's result.
struct Judged {
    gates: Vec<Gate>,
    classified: classify::Classified,
    decision: Decision,
    reasons: Vec<String>,
}

impl Judged {
    /// Gates and classification → decision and reasons.
    fn new(gates: Vec<Gate>, classified: classify::Classified, policy: &EffectivePolicy) -> Self {
        let (decision, mut reasons) = gates::decide(classified.class, &gates, policy);
        reasons.push(format!(
            "classified {}: {}",
            classified.class.as_str(),
            classified.evidence
        ));
        Self {
            gates,
            classified,
            decision,
            reasons,
        }
    }

    /// The same judgement with CI's verdict in place of the `ci` gate: nothing else is
    /// evaluated again.
    fn with_ci(mut self, ci: Gate, policy: &EffectivePolicy) -> Self {
        match self.gates.iter_mut().find(|g| g.name == ci.name) {
            Some(g) => *g = ci,
            None => self.gates.push(ci),
        }
        Self::new(self.gates, self.classified, policy)
    }
}

/// Runs the current revision of `task`.
pub async fn run(
    runner: &Runner,
    task: &mut Task,
    cancel: CancellationToken,
    events: Option<mpsc::Sender<RunEvent>>,
) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let run_id = new_id();
    let revision = task.current().number;
    let log = RunLog::new(
        runner.store.clone(),
        &task.id,
        &run_id,
        runner.cfg.secret_values.0.clone(),
    );
    let record = RunRecord {
        run_id: run_id.clone(),
        task_id: task.id.clone(),
        revision,
        blueprint: NAME.into(),
        state: RunState::Running,
        nodes: Vec::new(),
        report: None,
        error: None,
        summary: None,
        started_ms: now_ms(),
        finished_ms: None,
    };
    let mut tracker = Tracker::new(log, record, events);
    tracker
        .emit(RunEvent::RunStarted {
            task_id: task.id.clone(),
            run_id: run_id.clone(),
            revision,
            branch: task.branch.clone(),
        })
        .await;

    // workspace: nothing is stored until it succeeds, so bad input leaves nothing behind.
    let node = tracker.start("workspace", NodeKind::Deterministic).await;
    let prepared = async {
        let forge = runner.forges.of(task)?.clone();
        // GitHub: the API's clone URL (also what git credentials are scoped to).
        let repo = crate::task::RepoRef {
            source: forge.clone_url(&task.repo).await?,
            ..task.repo.clone()
        };
        let wt = runner
            .workspaces
            .prepare(&repo, &task.branch, &run_id, revision)
            .await?;
        // The repo's policy, read before the agent runs (and `.slipway/**` can never be
        // published by an agent, so later revisions see only what people committed).
        let repo_policy = match RepoPolicy::load(&wt.path) {
            Ok(p) => p,
            Err(e) => {
                runner.workspaces.remove(&wt);
                return Err(RunError::from(e));
            }
        };
        let checks = checks::detect(&wt.path, repo_policy.as_ref());
        Ok::<_, RunError>((wt, checks, repo_policy, forge, repo.source))
    }
    .await;
    let (wt, check_cmds, repo_policy, forge, source) = match prepared {
        Ok(v) => v,
        Err(e) => {
            tracker
                .emit(RunEvent::RunFailed {
                    error: e.to_string(),
                })
                .await;
            return Err(e);
        }
    };
    task.repo.source = source;
    // From here every exit, `?` included, removes the run's directories.
    let home = runner.cfg.data_dir.join("homes").join(&run_id);
    let dirs = RunDirs {
        workspaces: runner.workspaces.clone(),
        wt: wt.clone(),
        home: home.clone(),
    };
    let setup_cmd = checks::detect_setup(&wt.path);
    let workspace_ms = tracker
        .finish(
            node,
            true,
            format!("{} at {}", wt.branch, crate::task::short_sha(&wt.start_sha)),
        )
        .await?;

    let previous_summary = previous_summary(runner, task);
    // Only the fields this run owns are written; revisions added meanwhile are kept (and
    // revisions the caller added in memory are stored: the longer list wins).
    let revisions = task.revisions.clone();
    *task = runner
        .store
        .update_task(task, |t| {
            if revisions.len() > t.revisions.len() {
                t.revisions = revisions.clone();
            }
            t.state = TaskState::Running;
            if !t.runs.contains(&run_id) {
                t.runs.push(run_id.clone());
            }
            t.updated_ms = now_ms();
        })
        .await?;
    tracker.persist = true;
    runner.store.put_run(&tracker.record).await?;
    tracker
        .log
        .audit(
            "run_started",
            &task.requester,
            json!({"revision": revision, "branch": task.branch, "blueprint": NAME}),
        )
        .await?;

    let policy = policy::effective(&runner.cfg.file.policy, repo_policy.as_ref());
    let coverage_cmd = repo_policy
        .as_ref()
        .and_then(|p| p.checks.as_ref())
        .and_then(|c| c.coverage.clone());
    let guard = CommandGuard::new(&policy.denied_commands);
    let mut flow = Flow {
        runner,
        cancel,
        wt,
        home,
        check_cmds,
        policy,
        coverage_cmd,
        guard,
        merged: None,
        forge,
        conv: None,
        coverage_baseline: None,
        ci_rounds: 0,
        pr_number: task.pr_number,
        started,
        mcp_session: None,
        timings: Timings {
            workspace: workspace_ms,
            ..Timings::default()
        },
        fix_rounds: 0,
        tools: Vec::new(),
        budget: Budget::new(
            runner.cfg.file.agent.max_steps,
            runner.cfg.file.agent.max_tokens,
            Duration::from_secs(runner.cfg.file.agent.max_minutes * 60),
        ),
        extra_gates: Vec::new(),
        commit: None,
        pr_url: None,
    };
    let outcome = flow
        .execute(task, &mut tracker, setup_cmd, previous_summary)
        .await;
    flow.timings.total = started.elapsed().as_millis() as u64;
    let result: Result<RunReport, RunError> = match outcome {
        Ok((report, summary)) => {
            tracker.record.summary = summary;
            task.state = match report.decision {
                Decision::Halt => TaskState::Halted,
                _ if flow.merged.is_some() => TaskState::Merged,
                _ => TaskState::Ready,
            };
            let mut report = report;
            report.timings_ms = flow.timings.clone();
            tracker
                .log
                .audit(
                    "decision",
                    "slipway",
                    json!({"decision": report.decision, "reasons": report.reasons}),
                )
                .await?;
            tracker
                .close(RunState::Finished, Some(report.clone()), None)
                .await?;
            Ok(report)
        }
        Err(e) => {
            let cancelled = matches!(e, FlowError::Cancelled);
            let message = e.to_string();
            task.state = if cancelled {
                TaskState::Cancelled
            } else {
                TaskState::Failed
            };
            let report = flow.failure_report(task, &run_id, &message, &tracker);
            tracker
                .log
                .audit(
                    if cancelled {
                        "run_cancelled"
                    } else {
                        "run_failed"
                    },
                    "slipway",
                    json!({"error": message}),
                )
                .await?;
            tracker
                .close(
                    if cancelled {
                        RunState::Cancelled
                    } else {
                        RunState::Failed
                    },
                    Some(report.clone()),
                    Some(message),
                )
                .await?;
            Ok(report)
        }
    };
    let (state, pr_url, merged) = (
        task.state,
        result.as_ref().ok().and_then(|r| r.pr_url.clone()),
        flow.merged.clone(),
    );
    *task = runner
        .store
        .update_task(task, |t| {
            t.state = state;
            if pr_url.is_some() {
                t.pr_url = pr_url.clone();
            }
            if let Some(m) = &merged {
                t.merge_commit = Some(m.sha.clone());
                t.merged_commits = m.commits;
            }
            t.updated_ms = now_ms();
        })
        .await?;
    drop(dirs);
    match &result {
        Ok(r) => {
            tracker
                .emit(RunEvent::RunFinished {
                    report: Box::new(r.clone()),
                })
                .await
        }
        Err(e) => {
            tracker
                .emit(RunEvent::RunFailed {
                    error: e.to_string(),
                })
                .await
        }
    }
    result
}

/// A run's host directories (work tree, git dir, sandbox home), removed on drop.
struct RunDirs {
    workspaces: crate::workspace::Workspaces,
    wt: Worktree,
    home: std::path::PathBuf,
}

impl Drop for RunDirs {
    fn drop(&mut self) {
        self.workspaces.remove(&self.wt);
        if let Err(e) = std::fs::remove_dir_all(&self.home)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.home.display(), error = %e, "could not remove sandbox home");
        }
    }
}

/// The summary of the task's latest run that has one.
/// The summary of the task's latest run that published a change (a halted run's change is
/// not on the branch, so the model must not be told it is).
fn previous_summary(runner: &Runner, task: &Task) -> Option<String> {
    task.runs
        .iter()
        .rev()
        .filter_map(|id| runner.store.get_run(id).ok().flatten())
        .filter(|r| {
            r.report
                .as_ref()
                .is_some_and(|rep| rep.commit.is_some() && rep.decision != Decision::Halt)
        })
        .find_map(|r| r.summary)
}

/// Failures inside the flow, after the task is stored.
#[derive(Debug, thiserror::Error)]
enum FlowError {
    #[error("the run was cancelled")]
    Cancelled,
    #[error(transparent)]
    Run(#[from] RunError),
}

impl From<AgentError> for FlowError {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::Cancelled => Self::Cancelled,
            AgentError::Llm(e) => Self::Run(e.into()),
            AgentError::Sandbox(e) => Self::Run(e.into()),
            AgentError::Store(e) => Self::Run(e.into()),
        }
    }
}

impl From<crate::sandbox::SandboxError> for FlowError {
    fn from(e: crate::sandbox::SandboxError) -> Self {
        match e {
            crate::sandbox::SandboxError::Cancelled => Self::Cancelled,
            other => Self::Run(other.into()),
        }
    }
}

impl From<crate::store::StoreError> for FlowError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Run(e.into())
    }
}

impl From<crate::workspace::WorkspaceError> for FlowError {
    fn from(e: crate::workspace::WorkspaceError) -> Self {
        Self::Run(e.into())
    }
}

/// What the sandboxed part of a run produced.
struct Sandboxed {
    end: AgentEnd,
    results: Vec<CheckResult>,
    /// The unified diff the gates judge, computed once per run.
    diff: String,
    changes: Vec<crate::workspace::FileChange>,
    whitespace_only: bool,
    dependencies: Option<Gate>,
    coverage: Option<Gate>,
}

/// State of one run after the workspace exists.
struct Flow<'a> {
    runner: &'a Runner,
    cancel: CancellationToken,
    wt: Worktree,
    home: std::path::PathBuf,
    check_cmds: Vec<CheckCommand>,
    /// Server policy tightened by the repo's.
    policy: EffectivePolicy,
    /// The repo's coverage command, when it has one.
    coverage_cmd: Option<String>,
    guard: CommandGuard,
    /// The auto-merge, when one went through.
    merged: Option<Merged>,
    /// The forge of the task's repo.
    forge: Arc<dyn Forge>,
    /// The agent's conversation, kept for CI fix rounds.
    conv: Option<Conversation>,
    /// Coverage before the change, measured in the first pass.
    coverage_baseline: Option<Result<f64, String>>,
    /// CI fix rounds so far (at most [`MAX_CI_ROUNDS`]).
    ci_rounds: u32,
    pr_number: Option<u64>,
    /// When the run started (the report's `timings_ms.total`).
    started: Instant,
    /// The docker sidecar that runs this run's sandboxed MCP servers.
    mcp_session: Option<Box<dyn Session>>,
    timings: Timings,
    fix_rounds: u32,
    tools: Vec<String>,
    budget: Budget,
    /// Gates produced outside [`gates::evaluate`] (setup).
    extra_gates: Vec<Gate>,
    commit: Option<String>,
    pr_url: Option<String>,
}

impl Flow<'_> {
    fn spec(&self, network: NetworkAccess, run_id: &str) -> SandboxSpec {
        SandboxSpec {
            workspace: self.wt.path.clone(),
            git_dir: self.wt.git_dir.clone(),
            home: self.home.clone(),
            policy: SandboxPolicy::for_run(&self.runner.cfg.file.sandbox, network),
            run_id: run_id.to_string(),
        }
    }

    fn sandbox_info(&self) -> SandboxInfo {
        SandboxInfo {
            backend: self.runner.sandbox.backend().as_str().into(),
            image: self.runner.sandbox.image(),
            network: false,
        }
    }

    fn totals(&self) -> AgentTotals {
        AgentTotals {
            steps: self.budget.steps,
            input_tokens: self.budget.usage.input_tokens,
            output_tokens: self.budget.usage.output_tokens,
            cost_usd: cost_usd(self.budget.usage, &self.runner.cfg.file.llm),
        }
    }

    async fn execute(
        &mut self,
        task: &Task,
        tracker: &mut Tracker,
        setup_cmd: Option<CheckCommand>,
        previous_summary: Option<String>,
    ) -> Result<(RunReport, Option<String>), FlowError> {
        let run_id = tracker.record.run_id.clone();
        let cfg = &self.runner.cfg;
        std::fs::create_dir_all(&self.home).map_err(|e| {
            RunError::Sandbox(crate::sandbox::SandboxError::Spawn(format!(
                "cannot create {}: {e}",
                self.home.display()
            )))
        })?;

        // setup: network on, no secrets, before the agent.
        let t_sandbox = Instant::now();
        if let Some(setup) = setup_cmd {
            let node = tracker.start("setup", NodeKind::Deterministic).await;
            let session = self
                .runner
                .sandbox
                .start(&self.spec(NetworkAccess::Setup, &run_id))
                .await?;
            let timeout = Duration::from_secs(cfg.file.sandbox.setup_timeout_s);
            let out = session.exec(&setup.command, timeout, &self.cancel).await;
            session.close().await?;
            let out = out?;
            let gate = if out.success() {
                Gate::new(
                    GateName::Setup,
                    GateStatus::Pass,
                    format!("`{}` ({})", setup.command, setup.source),
                )
            } else if out.exit_code == Some(127) {
                Gate::new(
                    GateName::Setup,
                    GateStatus::Warn,
                    format!(
                        "`{}` could not run: command not found in the sandbox",
                        setup.command
                    ),
                )
            } else {
                Gate::new(
                    GateName::Setup,
                    GateStatus::Fail,
                    format!(
                        "`{}` failed: {}",
                        setup.command,
                        out.output.lines().last().unwrap_or("")
                    ),
                )
            };
            tracker.log.transcript("setup", out.duration_ms, json!({"command": setup.command, "output": out.render(cfg.file.sandbox.output_cap_bytes)})).await?;
            let ok = gate.status != GateStatus::Fail;
            tracker.finish(node, ok, gate.detail.clone()).await?;
            let detail = gate.detail.clone();
            self.extra_gates.push(gate);
            if !ok {
                // Without its dependencies the agent would only burn tokens.
                return Err(RunError::Sandbox(crate::sandbox::SandboxError::Spawn(format!(
                    "setup failed, so the agent did not start: {detail}; fix .slipway/setup.sh or the dependency manifest"
                )))
                .into());
            }
        }
        self.timings.sandbox += t_sandbox.elapsed().as_millis() as u64;
        let mut previous_summary = previous_summary;
        let mut ci_failures: Option<String> = None;
        let (sandboxed, judged) = loop {
            let sandboxed = self
                .sandbox_pass(
                    task,
                    tracker,
                    &run_id,
                    previous_summary.take(),
                    ci_failures.take(),
                )
                .await?;
            let judged = self.judge(tracker, &sandboxed).await?;
            if self.cancel.is_cancelled() {
                return Err(FlowError::Cancelled);
            }
            // publish: only a change that may go on leaves slipway's data dir.
            if judged.decision == Decision::Halt || self.commit.is_none() {
                if self.commit.is_some() {
                    // Keep the halted diff for the audit trail; the branch is not published.
                    tracker
                        .log
                        .transcript(
                            "halted_diff",
                            0,
                            json!({"diff": crate::task::truncate_chars(&sandboxed.diff, 200_000)}),
                        )
                        .await?;
                }
                break (sandboxed, judged);
            }
            self.publish(task, tracker, &run_id, &sandboxed, &judged)
                .await?;
            // ci: the forge's CI on the pushed commit; a failure goes back to the agent.
            let (Some(sha), true) = (self.commit.clone(), self.forge.has_ci()) else {
                break (sandboxed, judged);
            };
            let node = tracker.start("ci", NodeKind::Deterministic).await;
            let outcome = self.forge.wait_ci(task, &sha, &self.cancel).await;
            if self.cancel.is_cancelled() {
                return Err(FlowError::Cancelled);
            }
            let outcome = match outcome {
                Ok(o) => o,
                Err(e) => {
                    tracker.finish(node, false, e.to_string()).await?;
                    return Err(RunError::from(e).into());
                }
            };
            let rounds = |n: u32| match n {
                0 => String::new(),
                1 => " after 1 CI fix round".to_string(),
                n => format!(" after {n} CI fix rounds"),
            };
            let (gate, retry) = match outcome {
                CiOutcome::NoCi { detail } => {
                    (Gate::new(GateName::Ci, GateStatus::Skip, detail), None)
                }
                CiOutcome::Passed { detail } => (
                    Gate::new(
                        GateName::Ci,
                        GateStatus::Pass,
                        format!("{detail}{}", rounds(self.ci_rounds)),
                    ),
                    None,
                ),
                CiOutcome::TimedOut { detail } => {
                    (Gate::new(GateName::Ci, GateStatus::Warn, detail), None)
                }
                CiOutcome::Failed { detail, failures } => {
                    tracker
                        .log
                        .transcript(
                            "ci_failure",
                            0,
                            json!({"commit": sha, "failures": failures}),
                        )
                        .await?;
                    let may_fix = self.ci_rounds < MAX_CI_ROUNDS
                        && task.revert_of.is_none()
                        && matches!(sandboxed.end, AgentEnd::Finished { .. });
                    let detail = if may_fix {
                        detail
                    } else {
                        format!("{detail}{}; no CI fix rounds left", rounds(self.ci_rounds))
                    };
                    (
                        Gate::new(GateName::Ci, GateStatus::Fail, detail),
                        may_fix.then_some(failures),
                    )
                }
            };
            tracker
                .finish(node, gate.status != GateStatus::Fail, gate.detail.clone())
                .await?;
            tracker
                .log
                .audit(
                    "ci",
                    "slipway",
                    json!({"commit": sha, "status": gate.status, "detail": gate.detail}),
                )
                .await?;
            if let Some(failures) = retry {
                self.ci_rounds += 1;
                ci_failures = Some(failures);
                continue;
            }
            break (sandboxed, judged.with_ci(gate, &self.policy));
        };
        let Judged {
            gates,
            classified,
            mut decision,
            mut reasons,
        } = judged;

        // auto_merge: the forge merges the tested commit without a reaction.
        if self.cancel.is_cancelled() {
            return Err(FlowError::Cancelled);
        }
        if decision == Decision::AutoMerge
            && let Some(tested) = self.commit.clone()
        {
            let node = tracker.start("merge", NodeKind::Deterministic).await;
            let req = MergeRequest {
                tested: &tested,
                method: self.runner.cfg.merge_method(&task.repo.name),
                approver: "slipway ([policy] auto_merge)",
                thread_url: task.thread_url.as_deref(),
                delete_branch: self
                    .runner
                    .cfg
                    .repo(&task.repo.name)
                    .is_none_or(|r| r.delete_branch),
            };
            match self.forge.merge(task, &req).await {
                Ok(m) => {
                    self.merged = Some(m.clone());
                    reasons.push(format!(
                        "merged automatically into {} as {}",
                        task.repo.base,
                        crate::task::short_sha(&m.sha)
                    ));
                    tracker.log.audit("merge", "slipway", json!({"decision": "auto_merge", "tested": tested, "merge_commit": m.sha, "method": req.method})).await?;
                    tracker.finish(node, true, m.sha).await?;
                }
                Err(e) => {
                    // The change stays published; a person decides.
                    decision = Decision::NeedsApproval;
                    reasons.push(format!(
                        "auto-merge failed, so it waits for an approval: {e}"
                    ));
                    tracker
                        .log
                        .audit("merge_failed", "slipway", json!({"error": e.to_string()}))
                        .await?;
                    tracker.finish(node, false, e.to_string()).await?;
                }
            }
        }

        let report = self.report(task, &run_id, gates, &classified, decision, reasons);
        let summary = match sandboxed.end {
            AgentEnd::Finished { summary } => Some(summary),
            _ => None,
        };
        // The PR shows the final report (CI's verdict included).
        if let Some(number) = self.pr_number {
            let content = self.pr_content(task, &report, summary.as_deref());
            let task = Task {
                pr_number: Some(number),
                ..task.clone()
            };
            if let Err(e) = self.forge.describe(&task, &content).await {
                tracing::warn!(error = %e, "could not update the PR description");
            }
        }
        Ok((report, summary))
    }

    /// One pass in a fresh offline sandbox: the agent (implementing, or fixing what CI
    /// reported), the checks ⇄ fix loop, the commit and the sandboxed gates.
    async fn sandbox_pass(
        &mut self,
        task: &Task,
        tracker: &mut Tracker,
        run_id: &str,
        previous_summary: Option<String>,
        ci_failures: Option<String>,
    ) -> Result<Sandboxed, FlowError> {
        let t_sandbox = Instant::now();
        let node = tracker.start("sandbox", NodeKind::Deterministic).await;
        let session = self
            .runner
            .sandbox
            .start(&self.spec(NetworkAccess::None, run_id))
            .await?;
        tracker
            .finish(
                node,
                true,
                format!(
                    "{} ({}), no network",
                    self.runner.sandbox.backend().as_str(),
                    self.runner.sandbox.image()
                ),
            )
            .await?;
        self.timings.sandbox += t_sandbox.elapsed().as_millis() as u64;

        let result = self
            .in_sandbox(
                task,
                tracker,
                session.as_ref(),
                previous_summary,
                ci_failures,
                run_id,
            )
            .await;
        // The sandbox goes whatever happened; a cancelled exec already removed it.
        if let Err(e) = session.close().await {
            tracing::warn!(error = %e, "could not close sandbox");
        }
        if let Some(side) = self.mcp_session.take()
            && let Err(e) = side.close().await
        {
            tracing::warn!(error = %e, "could not close the MCP sidecar");
        }
        result
    }

    /// The gates node: evidence → gates → decision.
    async fn judge(&self, tracker: &mut Tracker, s: &Sandboxed) -> Result<Judged, FlowError> {
        let node = tracker.start("gates", NodeKind::Deterministic).await;
        let mut gates = self.extra_gates.clone();
        let findings = secrets::Scanner::new().scan_diff(&s.diff);
        let added_lines = s.changes.iter().map(|c| c.added).sum();
        if !findings.is_empty() {
            tracker
                .log
                .audit("secret_found", "slipway", json!({"findings": findings.iter().map(|f| json!({"rule": f.rule, "path": f.path, "line": f.line})).collect::<Vec<_>>()}))
                .await?;
        }
        gates.extend(gates::evaluate(&Evidence {
            checks: &s.results,
            commands: &self.check_cmds,
            changes: &s.changes,
            agent_end: &s.end,
            fix_rounds: self.fix_rounds,
            policy: &self.policy,
            secrets: &findings,
            added_lines,
            committed: self.commit.is_some(),
            dependencies: s.dependencies.clone(),
            coverage: s.coverage.clone(),
            // The forge's CI runs after the push; its verdict replaces this gate.
            ci: self.forge.has_ci().then(|| {
                Gate::new(
                    GateName::Ci,
                    GateStatus::Skip,
                    "not run yet: CI runs on the pushed commit",
                )
            }),
        }));
        let classified = classify::classify(&s.changes, s.whitespace_only, &s.diff);
        let judged = Judged::new(gates, classified, &self.policy);
        tracker
            .finish(
                node,
                judged.decision != Decision::Halt,
                format!("{}", judged.decision),
            )
            .await?;
        Ok(judged)
    }

    /// The publish node: push the branch and open or update the PR with the report so far.
    async fn publish(
        &mut self,
        task: &Task,
        tracker: &mut Tracker,
        run_id: &str,
        s: &Sandboxed,
        judged: &Judged,
    ) -> Result<(), FlowError> {
        let node = tracker.start("publish", NodeKind::Deterministic).await;
        let report = self.report(
            task,
            run_id,
            judged.gates.clone(),
            &judged.classified,
            judged.decision,
            judged.reasons.clone(),
        );
        let summary = match &s.end {
            AgentEnd::Finished { summary } => Some(summary.as_str()),
            _ => None,
        };
        let content = self.pr_content(task, &report, summary);
        match self.forge.publish(&self.wt, task, &content).await {
            Ok(p) => {
                self.pr_url = p.pr_url.clone();
                self.pr_number = p.pr_number;
                // Stored at once: a crash after this point finds the same PR.
                if p.pr_number.is_some() {
                    let (url, number) = (p.pr_url.clone(), p.pr_number);
                    self.runner
                        .store
                        .update_task(task, |t| {
                            t.pr_url = url.clone();
                            t.pr_number = number;
                        })
                        .await?;
                }
                tracker
                    .log
                    .audit(
                        "push",
                        "slipway",
                        json!({"branch": self.wt.branch, "commit": self.commit, "to": p.location}),
                    )
                    .await?;
                if p.opened {
                    tracker
                        .log
                        .audit("pr_opened", "slipway", json!({"pr": p.pr_url}))
                        .await?;
                }
                tracker
                    .emit(RunEvent::Published {
                        pr_url: p.pr_url.clone(),
                        location: p.location.clone(),
                    })
                    .await;
                tracker.finish(node, true, p.location).await?;
                Ok(())
            }
            Err(e) => {
                tracker.finish(node, false, e.to_string()).await?;
                Err(RunError::from(e).into())
            }
        }
    }

    /// The PR's title and body for `report`.
    fn pr_content(
        &self,
        task: &Task,
        report: &RunReport,
        summary: Option<&str>,
    ) -> PullRequestContent {
        let calls: Vec<(String, bool)> = self
            .conv
            .as_ref()
            .map(|c| {
                c.tool_calls
                    .iter()
                    .map(|t| (t.name.clone(), t.ok))
                    .collect()
            })
            .unwrap_or_default();
        PullRequestContent {
            title: match &task.revert_of {
                Some(_) => task.title(),
                None => format!("slipway: {}", task.title()),
            },
            body: crate::gates::render::markdown(
                report,
                summary,
                task.thread_url.as_deref(),
                &calls,
            ),
        }
    }

    fn report(
        &self,
        task: &Task,
        run_id: &str,
        gates: Vec<Gate>,
        classified: &classify::Classified,
        decision: Decision,
        reasons: Vec<String>,
    ) -> RunReport {
        RunReport {
            task_id: task.id.clone(),
            revision: task.current().number,
            run_id: run_id.to_string(),
            repo: task.repo.name.clone(),
            base: task.repo.base.clone(),
            branch: self.wt.branch.clone(),
            commit: self.commit.clone(),
            pr_url: self.pr_url.clone(),
            blueprint: NAME.into(),
            decision,
            reasons,
            classification: classified.class,
            gates,
            tools: self.tools.clone(),
            fix_rounds: self.fix_rounds + self.ci_rounds,
            agent: self.totals(),
            timings_ms: Timings {
                total: self.started.elapsed().as_millis() as u64,
                ..self.timings.clone()
            },
            sandbox: self.sandbox_info(),
        }
    }

    /// Everything that needs the offline sandbox: a coverage baseline, the agent and its
    /// checks, the commit, and the gates that run the repo's own tools.
    async fn in_sandbox(
        &mut self,
        task: &Task,
        tracker: &mut Tracker,
        session: &dyn Session,
        previous_summary: Option<String>,
        ci_failures: Option<String>,
        run_id: &str,
    ) -> Result<Sandboxed, FlowError> {
        let cfg = &self.runner.cfg;
        let timeout = cfg.command_timeout();
        if self.coverage_baseline.is_none()
            && let Some(cmd) = &self.coverage_cmd
        {
            self.coverage_baseline =
                Some(sandboxed::coverage_percent(session, cmd, timeout, &self.cancel).await?);
        }
        let before = self.commit.clone();
        let (end, results) = match &task.revert_of {
            Some(of) => self.revert_and_check(task, tracker, session, of).await?,
            None => {
                self.agent_and_checks(task, tracker, session, previous_summary, ci_failures)
                    .await?
            }
        };

        let node = tracker.start("commit", NodeKind::Deterministic).await;
        let rev = task.current();
        let subject = if rev.number == 1 {
            task.title()
        } else {
            format!("{} (revision {})", task.title(), rev.number)
        };
        let body = match &end {
            AgentEnd::Finished { summary } => summary.clone(),
            AgentEnd::Budget { kind } => format!("Unfinished: {}", self.budget.describe(*kind)),
            AgentEnd::Stopped { text } => format!("Unfinished: the agent stopped. {text}"),
            AgentEnd::PolicyViolation { reason } => format!("Halted: {reason}"),
        };
        let rev_s = rev.number.to_string();
        let trailers = [
            ("Requested-by", task.requester.as_str()),
            ("Slipway-Task", task.id.as_str()),
            ("Slipway-Run", run_id),
            ("Slipway-Revision", rev_s.as_str()),
        ];
        // A pass that changes nothing keeps the commit it started from.
        if let Some(c) = self
            .runner
            .workspaces
            .commit(&self.wt, &subject, &body, &trailers)
            .await?
        {
            self.commit = Some(c);
        }
        let diff = self.runner.workspaces.diff(&self.wt).await?;
        let changes = crate::workspace::changes_from_diff(&diff);
        let whitespace_only = self
            .runner
            .workspaces
            .whitespace_only(&self.wt, &changes)
            .await?;
        let detail = match &self.commit {
            Some(c) if self.commit != before => {
                format!("{} ({} files)", crate::task::short_sha(c), changes.len())
            }
            _ => "nothing to commit".into(),
        };
        tracker.finish(node, true, detail).await?;

        let node = tracker
            .start("sandbox_gates", NodeKind::Deterministic)
            .await;
        let t = Instant::now();
        let dependencies =
            sandboxed::dependencies(session, &changes, timeout, &self.cancel).await?;
        let coverage = match (&self.coverage_cmd, self.coverage_baseline.clone()) {
            (Some(cmd), Some(before)) => {
                let after =
                    sandboxed::coverage_percent(session, cmd, timeout, &self.cancel).await?;
                Some(sandboxed::coverage_gate(before, after))
            }
            _ => None,
        };
        self.timings.checks += t.elapsed().as_millis() as u64;
        let detail: Vec<String> = [&dependencies, &coverage]
            .into_iter()
            .flatten()
            .map(|g| format!("{} {:?}", g.name, g.status).to_lowercase())
            .collect();
        tracker
            .finish(
                node,
                true,
                if detail.is_empty() {
                    "nothing to check".into()
                } else {
                    detail.join(", ")
                },
            )
            .await?;
        Ok(Sandboxed {
            end,
            results,
            diff,
            changes,
            whitespace_only,
            dependencies,
            coverage,
        })
    }

    /// prefetch → implement → checks ⇄ fix.
    async fn agent_and_checks(
        &mut self,
        task: &Task,
        tracker: &mut Tracker,
        session: &dyn Session,
        previous_summary: Option<String>,
        ci_failures: Option<String>,
    ) -> Result<(AgentEnd, Vec<CheckResult>), FlowError> {
        let runner = self.runner;
        let cfg = &runner.cfg;
        let cancel = self.cancel.clone();
        let log = tracker.log.clone();
        let guard = self.guard.clone();
        let node = tracker.start("prefetch", NodeKind::Deterministic).await;
        let (specs, routes, hub, prefetch_detail) = self.prefetch(task, tracker, session).await?;
        self.tools = specs.iter().map(|s| s.name.clone()).collect();
        tracker.finish(node, true, prefetch_detail).await?;

        let root = std::fs::canonicalize(&self.wt.path).map_err(|e| {
            RunError::Sandbox(crate::sandbox::SandboxError::Spawn(format!(
                "worktree vanished: {e}"
            )))
        })?;
        let agent = AgentNode {
            llm: runner.llm.as_ref(),
            tools: &specs,
            ctx: ToolContext {
                root: &root,
                session,
                cancel: &cancel,
                max_timeout: cfg.command_timeout(),
                output_cap: cfg.file.sandbox.output_cap_bytes,
                guard: &guard,
                mcp: Some(&hub),
                routes: &routes,
            },
            log: &log,
            max_output_tokens: cfg.file.agent.max_output_tokens,
        };
        // A CI fix round continues the conversation: the model remembers what it did.
        let (mut conv, first, node_name) = match (self.conv.take(), ci_failures) {
            (Some(conv), Some(f)) => (
                conv,
                prompt::ci_fix(self.ci_rounds, MAX_CI_ROUNDS, &f),
                "ci_fix",
            ),
            (conv, _) => {
                // The agent's wall-clock budget starts now, not before setup.
                self.budget.deadline =
                    Instant::now() + Duration::from_secs(cfg.file.agent.max_minutes * 60);
                (
                    conv.unwrap_or_else(|| Conversation::new(prompt::system(&root))),
                    prompt::task(task.current(), previous_summary.as_deref()),
                    "implement",
                )
            }
        };
        let node = tracker.start(node_name, NodeKind::Agent).await;
        let t = Instant::now();
        let mut end = agent.run(&mut conv, &mut self.budget, first).await;
        self.timings.agent += t.elapsed().as_millis() as u64;
        let detail = match &end {
            Ok(e) if node_name == "ci_fix" => {
                format!(
                    "CI round {}: {}",
                    self.ci_rounds,
                    end_detail(e, &self.budget)
                )
            }
            Ok(e) => end_detail(e, &self.budget),
            Err(e) => e.to_string(),
        };
        tracker
            .finish(node, matches!(end, Ok(AgentEnd::Finished { .. })), detail)
            .await?;
        let mut end_v = end?;

        let mut results = self.checks(tracker, session).await?;
        while matches!(end_v, AgentEnd::Finished { .. })
            && results.iter().any(|r| r.status == CheckStatus::Fail)
            && self.fix_rounds < MAX_FIX_ROUNDS
        {
            self.fix_rounds += 1;
            let node = tracker.start("fix", NodeKind::Agent).await;
            let t = Instant::now();
            let text = prompt::fix(
                self.fix_rounds,
                MAX_FIX_ROUNDS,
                &checks::failures_text(&results),
            );
            end = agent.run(&mut conv, &mut self.budget, text).await;
            self.timings.agent += t.elapsed().as_millis() as u64;
            let detail = match &end {
                Ok(e) => format!("round {}: {}", self.fix_rounds, end_detail(e, &self.budget)),
                Err(e) => e.to_string(),
            };
            tracker
                .finish(node, matches!(end, Ok(AgentEnd::Finished { .. })), detail)
                .await?;
            end_v = end?;
            results = self.checks(tracker, session).await?;
        }
        hub.close().await;
        self.conv = Some(conv);
        Ok((end_v, results))
    }

    /// A revert task's pass: `git revert` of the merge on the host (no agent), then the
    /// repo's checks in the sandbox, before anything is published.
    async fn revert_and_check(
        &mut self,
        task: &Task,
        tracker: &mut Tracker,
        session: &dyn Session,
        of: &crate::task::RevertOf,
    ) -> Result<(AgentEnd, Vec<CheckResult>), FlowError> {
        let node = tracker.start("revert", NodeKind::Deterministic).await;
        let what = of
            .pr_url
            .clone()
            .unwrap_or_else(|| format!("task {}", of.task_id));
        let summary = format!(
            "Reverts {what} (merge commit {}), as asked in Slack by {}.",
            crate::task::short_sha(&of.merge_commit),
            task.requester
        );
        let message = format!(
            "{}\n\n{summary}\n\nRequested-by: {}\nSlipway-Task: {}\nSlipway-Reverts: {}\n",
            task.title(),
            task.requester,
            task.id,
            of.task_id
        );
        match self
            .runner
            .workspaces
            .revert(&self.wt, &of.merge_commit, of.commits, &message)
            .await
        {
            Ok(c) => {
                tracker
                    .finish(node, true, crate::task::short_sha(&c).to_string())
                    .await?;
                self.commit = Some(c);
            }
            Err(e) => {
                tracker.finish(node, false, e.to_string()).await?;
                return Err(RunError::from(e).into());
            }
        }
        let results = self.checks(tracker, session).await?;
        Ok((AgentEnd::Finished { summary }, results))
    }

    /// The prefetch node: start this run's sandboxed MCP servers, then rank the registry.
    /// Returns the specs offered, their routes, the run's MCP hub and a one-line summary.
    async fn prefetch(
        &mut self,
        task: &Task,
        tracker: &mut Tracker,
        session: &dyn Session,
    ) -> Result<
        (
            Vec<crate::agent::llm::ToolSpec>,
            crate::tools::Routes,
            McpHub,
            String,
        ),
        FlowError,
    > {
        let runner = self.runner;
        let cfg = &runner.cfg;
        let hub = runner.mcp.fork().await;
        let sandboxed: Vec<_> = cfg
            .file
            .mcp_servers
            .iter()
            .filter(|c| !mcp::runs_on_host(c))
            .cloned()
            .collect();
        let mut registry = runner.registry.clone();
        if !sandboxed.is_empty() {
            // Docker: a sidecar container under the same policy, because every command in the
            // agent's container ends the processes it leaves behind. bwrap: its own namespace.
            let host: &dyn Session = if runner.sandbox.backend() == crate::sandbox::Backend::Docker
            {
                let side = runner
                    .sandbox
                    .start(&self.spec(NetworkAccess::None, &tracker.record.run_id))
                    .await?;
                self.mcp_session = Some(side);
                self.mcp_session.as_deref().unwrap_or(session)
            } else {
                session
            };
            let (tools, problems) = hub.connect_sandboxed(host, &sandboxed).await;
            for p in &problems {
                tracing::warn!(problem = %p, "MCP server");
            }
            registry = Arc::new(runner.registry.extended(tools, problems));
        }
        let live = hub.servers().await;
        let callable = |e: &ToolEntry| e.server.as_ref().is_none_or(|s| live.contains(s));
        let rev = task.current();
        let mut context = rev.context.join("\n");
        context.push('\n');
        context.push_str(&rev.links.join("\n"));
        let signals = RepoSignals::from_dir(&self.wt.path);
        let index = Index::new(&registry);
        let selection = index.select(&Request {
            task: &rev.instructions,
            context: &context,
            repo: Some(&signals),
            k: cfg.file.prefetch.k,
            always: crate::tools::builtins::NAMES,
            allow_destructive: cfg.file.prefetch.allow_destructive,
            callable: Some(&callable),
        });
        tracker
            .log
            .transcript("prefetch", 0, json!({"picks": selection.picks, "withheld": selection.withheld, "problems": registry.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>()}))
            .await?;
        let mut specs = Vec::new();
        let mut routes = crate::tools::Routes::new();
        for p in &selection.picks {
            if let Some(e) = registry.get(&p.name) {
                specs.push(crate::tools::spec_of(e));
                if let Some(server) = &e.server {
                    routes.insert(e.name.clone(), (server.clone(), e.original.clone()));
                }
            }
        }
        let detail = format!(
            "{} tools ({} MCP) of {} known",
            specs.len(),
            routes.len(),
            registry.entries().len()
        );
        Ok((specs, routes, hub, detail))
    }

    async fn checks(
        &mut self,
        tracker: &mut Tracker,
        session: &dyn Session,
    ) -> Result<Vec<CheckResult>, FlowError> {
        let cfg = &self.runner.cfg;
        let node = tracker.start("checks", NodeKind::Deterministic).await;
        let t = Instant::now();
        let results = checks::run_all(
            session,
            &self.check_cmds,
            cfg.command_timeout(),
            cfg.file.sandbox.output_cap_bytes,
            &self.cancel,
        )
        .await?;
        self.timings.checks += t.elapsed().as_millis() as u64;
        for r in &results {
            tracker
                .log
                .transcript("check", r.duration_ms, json!({"kind": r.check.kind, "command": r.check.command, "status": r.status, "output": r.output}))
                .await?;
        }
        let summary: Vec<String> = results
            .iter()
            .map(|r| format!("{} {:?}", r.check.kind.gate_name(), r.status).to_lowercase())
            .collect();
        let ok = results.iter().all(|r| r.status != CheckStatus::Fail);
        let detail = if summary.is_empty() {
            "no checks configured or detected".to_string()
        } else {
            summary.join(", ")
        };
        tracker.finish(node, ok, detail).await?;
        Ok(results)
    }

    /// The report of a run that failed or was cancelled after it was stored: decision `halt`,
    /// the error as the reason.
    fn failure_report(
        &self,
        task: &Task,
        run_id: &str,
        message: &str,
        tracker: &Tracker,
    ) -> RunReport {
        let failed_node = tracker
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
        RunReport {
            task_id: task.id.clone(),
            revision: task.current().number,
            run_id: run_id.to_string(),
            repo: task.repo.name.clone(),
            base: task.repo.base.clone(),
            branch: self.wt.branch.clone(),
            commit: self.commit.clone(),
            pr_url: self.pr_url.clone(),
            blueprint: NAME.into(),
            decision: Decision::Halt,
            reasons,
            classification: Classification::Refactor,
            gates: self.extra_gates.clone(),
            tools: self.tools.clone(),
            fix_rounds: self.fix_rounds,
            agent: self.totals(),
            timings_ms: self.timings.clone(),
            sandbox: self.sandbox_info(),
        }
    }
}

fn end_detail(e: &AgentEnd, budget: &Budget) -> String {
    match e {
        AgentEnd::Finished { summary } => crate::task::truncate_chars(summary, 200),
        AgentEnd::Budget { kind } => budget.describe(*kind),
        AgentEnd::Stopped { .. } => "the agent stopped without calling finish".into(),
        AgentEnd::PolicyViolation { reason } => reason.clone(),
    }
}
