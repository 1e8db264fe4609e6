//! [`RunCtx`]: everything one run carries from node to node: the services, the task, the
//! work tree, the sandbox session, the budget, the policy and the outcome being built.
//!
//! Nodes read and write it; the lifecycle ([`super::lifecycle`]) creates it and turns it
//! into the report. It holds no logic beyond accessors and the report builder.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::Runner;
use super::error::{FlowError, RunError};
use super::events::NodeName;
use super::node::Outcome;
use super::tracker::Tracker;
use crate::agent::llm::{ToolSpec, cost_usd};
use crate::agent::{AgentEnd, Budget, Conversation};
use crate::forge::{Forge, Merged};
use crate::gates::checks::{CheckCommand, CheckResult, CheckStatus};
use crate::gates::classify::Classified;
use crate::gates::policy::EffectivePolicy;
use crate::gates::{self};
use crate::report::{
    AgentTotals, Classification, Decision, Gate, GateName, GateStatus, RunReport, SandboxInfo,
    Timings,
};
use crate::sandbox::{NetworkAccess, SandboxPolicy, SandboxSpec, Session};
use crate::task::{BlueprintId, Task};
use crate::tools::guard::CommandGuard;
use crate::tools::mcp::McpHub;
use crate::workspace::{FileChange, Workspaces, Worktree};

/// The gates node's result: gates and classification → decision and reasons.
#[derive(Debug, Clone)]
pub struct Judged {
    /// Every gate, in report order.
    pub gates: Vec<Gate>,
    /// The change's class and its evidence.
    pub classified: Classified,
    /// `auto_merge`, `needs_approval` or `halt`.
    pub decision: Decision,
    /// Why, one sentence each.
    pub reasons: Vec<String>,
}

impl Judged {
    /// Decides (`gates::decide`, failing closed) and adds the classification's evidence.
    pub fn new(gates: Vec<Gate>, classified: Classified, policy: &EffectivePolicy) -> Self {
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
    pub fn with_ci(mut self, ci: Gate, policy: &EffectivePolicy) -> Self {
        match self.gates.iter_mut().find(|g| g.name == ci.name) {
            Some(g) => *g = ci,
            None => self.gates.push(ci),
        }
        Self::new(self.gates, self.classified, policy)
    }
}

/// What the agent was offered by the prefetch node, for the agent nodes that follow.
pub struct Offered {
    /// The tools offered, built-ins included.
    pub specs: Vec<ToolSpec>,
    /// Which MCP server answers each offered MCP tool.
    pub routes: crate::tools::Routes,
    /// This run's MCP connections; closed once the checks ⇄ fix rounds are over.
    pub hub: McpHub,
}

/// What one sandbox pass produced for the gates.
#[derive(Debug, Clone, Default)]
pub struct PassEvidence {
    /// The unified diff the gates judge, computed once per pass.
    pub diff: String,
    /// Files changed against the base, with line counts.
    pub changes: Vec<FileChange>,
    /// True when the change only touches whitespace.
    pub whitespace_only: bool,
    /// The `dependencies` gate, when a manifest or lockfile changed.
    pub dependencies: Option<Gate>,
    /// The `coverage` gate, with a `[checks] coverage` command.
    pub coverage: Option<Gate>,
}

/// A run's host directories (work tree, git dir, sandbox home), removed on drop, so every
/// exit, `?` included, cleans up.
pub struct RunDirs {
    /// Removes the work tree and git dir.
    pub workspaces: Workspaces,
    /// The run's work tree.
    pub wt: Worktree,
    /// The sandbox home (`$DATA/homes/<run>`).
    pub home: PathBuf,
    /// The base commit's exported tree (`$DATA/envs/.bases/<run>`), gone once setup took it.
    pub base_tree: PathBuf,
    /// The warm pool slot's directory (`$DATA/pool/<repo>/<slot>`) when the run took one:
    /// its `ws`, `git` and `home` are the run's, and it goes last.
    pub slot_root: Option<PathBuf>,
}

impl Drop for RunDirs {
    fn drop(&mut self) {
        self.workspaces.remove(&self.wt);
        if let Err(e) = std::fs::remove_dir_all(&self.home)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.home.display(), error = %e, "could not remove sandbox home");
        }
        if self.base_tree.exists() {
            crate::sweep::remove_tree(&self.base_tree);
        }
        let _ = std::fs::remove_file(self.base_tree.with_extension("index"));
        if let Some(root) = &self.slot_root {
            crate::sweep::remove_tree(root);
        }
    }
}

/// The state of one run, shared by its nodes.
pub struct RunCtx<'a> {
    /// The services (store, workspaces, sandbox, model, forges, tool registry).
    pub svc: &'a Runner,
    /// The task; its stored copy is updated by the lifecycle.
    pub task: &'a mut Task,
    /// The blueprint running (the report's `blueprint`).
    pub blueprint: BlueprintId,
    /// This run's id.
    pub run_id: String,
    /// Node records, events and audit for this run.
    pub tracker: Tracker,
    /// Cancelled by ❌, a timeout or shutdown: the run stops at its next node.
    pub cancel: CancellationToken,
    /// When the run started (the report's `timings_ms.total`).
    pub started: Instant,
    /// The report's `timings_ms`, per bucket.
    pub timings: Timings,

    // Set by the workspace node.
    /// The run's directories, removed when dropped.
    pub dirs: Option<RunDirs>,
    /// The forge of the task's repo.
    pub forge: Option<Arc<dyn Forge>>,
    /// The repo's checks, read from the commit the run starts from.
    pub check_cmds: Vec<CheckCommand>,
    /// The repo's environment, resolved from the base commit's tree.
    pub env_plan: Option<crate::env::EnvPlan>,
    /// Why the environment could not be resolved (an invalid devcontainer.json…): the setup
    /// node halts with it, naming the file.
    pub env_error: Option<String>,
    /// The environment made ready by the setup node (the offline sandboxes use it).
    pub environment: Option<crate::env::build::Prepared>,
    /// The warm pool slot the workspace node cloned into; the sandbox node adopts its
    /// container when it fits the run's sandbox, else closes it.
    pub warm: Option<crate::env::pool::Slot>,
    /// Whether the sandbox node adopted the warm pool's container (the report says so).
    pub warm_used: bool,
    /// Server policy tightened by the repo's.
    pub policy: EffectivePolicy,
    /// The repo's coverage command, when it has one.
    pub coverage_cmd: Option<String>,
    /// The `run` tool's command guard (with `denied_commands`).
    pub guard: CommandGuard,

    // Sandbox and agent.
    /// The offline sandbox of the current pass (started by the `sandbox` node, closed by
    /// `sandbox_gates` or, on an error, by the lifecycle).
    pub session: Option<Box<dyn Session>>,
    /// The docker sidecar that runs this run's sandboxed MCP servers.
    pub mcp_session: Option<Box<dyn Session>>,
    /// The tools offered by the prefetch node.
    pub offered: Option<Offered>,
    /// Steps, tokens and time left for the agent.
    pub budget: Budget,
    /// The agent's conversation, kept for fix and CI fix rounds.
    pub conv: Option<Conversation>,
    /// The summary of the task's last published run, told to the model once.
    pub previous_summary: Option<String>,
    /// Revisions older than the current one that never ran to the end (see
    /// `lifecycle::unrun_revisions`); the first agent turn carries them.
    pub unrun: Vec<crate::task::Revision>,
    /// How the last agent round (or the revert) ended.
    pub end: Option<AgentEnd>,
    /// The last checks' results.
    pub results: Vec<CheckResult>,
    /// Coverage before the change, measured in the first pass.
    pub coverage_baseline: Option<Result<f64, String>>,
    /// Fix rounds after failed checks so far, all passes.
    pub fix_rounds: u32,
    /// CI fix rounds so far.
    pub ci_rounds: u32,
    /// CI's failure text when CI asked for another round; the `ci_fix` node takes it.
    pub ci_failures: Option<String>,
    /// Names of the tools offered (the report's `tools`).
    pub tools: Vec<String>,

    // Outcome.
    /// Gates produced outside the gates node (setup).
    pub extra_gates: Vec<Gate>,
    /// What the last pass produced for the gates.
    pub evidence: PassEvidence,
    /// The latest judgement.
    pub judged: Option<Judged>,
    /// The run's newest commit.
    pub commit: Option<String>,
    /// Whether the checks were probed (once per run, in the first pass's sandbox).
    pub checks_probed: bool,
    /// The commit when the current sandbox pass started (the commit node's "new commit?").
    pub pass_start_commit: Option<String>,
    /// `dependency_update`: the group this run bumps, set by the lookup node.
    pub deps: Option<crate::deps::DepsRun>,
    /// The PR, once published.
    pub pr_url: Option<String>,
    /// The PR's number, once known.
    pub pr_number: Option<u64>,
    /// The auto-merge, when one went through.
    pub merged: Option<Merged>,
    /// This run's claim on its per-run names (`worktrees/<run>`, `homes/<run>`, …), held
    /// until every directory is gone: declared last, so it drops after [`Self::dirs`], and
    /// the startup sweep of another slipway never takes a live run's directories.
    pub claim: Option<crate::sweep::Claim>,
}

impl<'a> RunCtx<'a> {
    /// A fresh context for `task`'s current revision through `blueprint`.
    pub fn new(
        svc: &'a Runner,
        task: &'a mut Task,
        blueprint: BlueprintId,
        tracker: Tracker,
        cancel: CancellationToken,
    ) -> Self {
        let agent = &svc.cfg.file.agent;
        let policy = crate::gates::policy::effective(&svc.cfg.file.policy, None);
        let pr_number = task.pr_number;
        let run_id = tracker.record.run_id.clone();
        let events = tracker.events();
        let budget = Budget::new(
            agent.max_steps,
            agent.max_tokens,
            std::time::Duration::from_secs(agent.max_minutes * 60),
        )
        .with_spend(Box::new(super::spend::Meter::new(
            svc.store.clone(),
            crate::store::SpendKeys {
                task_id: task.id.clone(),
                requester: task.requester.clone(),
                repo: task.repo.name.clone(),
            },
            &run_id,
            svc.cfg.file.budgets,
            svc.cfg.file.llm.clone(),
            events,
        )));
        let claim = match crate::sweep::Claim::take(&svc.cfg.data_dir, &run_id) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(run_id, error = %e, "cannot claim the run's directories");
                None
            }
        };
        Self {
            svc,
            claim,
            run_id,
            task,
            blueprint,
            tracker,
            cancel,
            started: Instant::now(),
            timings: Timings::default(),
            dirs: None,
            forge: None,
            check_cmds: Vec::new(),
            env_plan: None,
            env_error: None,
            environment: None,
            warm: None,
            warm_used: false,
            guard: CommandGuard::new(&policy.denied_commands),
            policy,
            coverage_cmd: None,
            session: None,
            mcp_session: None,
            offered: None,
            budget,
            conv: None,
            previous_summary: None,
            unrun: Vec::new(),
            end: None,
            results: Vec::new(),
            coverage_baseline: None,
            fix_rounds: 0,
            ci_rounds: 0,
            ci_failures: None,
            tools: Vec::new(),
            extra_gates: Vec::new(),
            evidence: PassEvidence::default(),
            judged: None,
            commit: None,
            pass_start_commit: None,
            checks_probed: false,
            deps: None,
            pr_url: None,
            pr_number,
            merged: None,
        }
    }

    /// The run's work tree (the workspace node made it).
    pub fn wt(&self) -> Result<&Worktree, FlowError> {
        self.dirs.as_ref().map(|d| &d.wt).ok_or_else(|| {
            RunError::Internal("no work tree: the workspace node has not run".into()).into()
        })
    }

    /// The sandbox home of this run: `$DATA/homes/<run>`, or the warm pool slot's `home`
    /// once the workspace node took a slot.
    pub fn home(&self) -> PathBuf {
        match &self.dirs {
            Some(d) => d.home.clone(),
            None => self.svc.cfg.data_dir.join("homes").join(&self.run_id),
        }
    }

    /// Ends the run before the agent because its environment is not usable: the report's
    /// `setup` gate fails with `gate_detail` (replacing one already recorded), and the run
    /// halts with `reason` (no model spend).
    pub fn halt_at_setup(&mut self, gate_detail: String, reason: String) -> Outcome {
        let gate = Gate::new(GateName::Setup, GateStatus::Fail, gate_detail.clone());
        match self
            .extra_gates
            .iter_mut()
            .find(|g| g.name == GateName::Setup)
        {
            Some(g) => *g = gate,
            None => self.extra_gates.push(gate),
        }
        Outcome::stopped_with(gate_detail, RunError::Setup { detail: reason })
    }

    /// Where the base commit's tree is exported for environment resolution and setup.
    pub fn base_tree(&self) -> PathBuf {
        self.svc
            .cfg
            .data_dir
            .join("envs")
            .join(".bases")
            .join(&self.run_id)
    }

    /// The forge of the task's repo (the workspace node chose it).
    pub fn forge(&self) -> Result<Arc<dyn Forge>, FlowError> {
        self.forge.clone().ok_or_else(|| {
            RunError::Internal("no forge: the workspace node has not run".into()).into()
        })
    }

    /// The current pass's sandbox session.
    pub fn session(&self) -> Result<&dyn Session, FlowError> {
        self.session.as_deref().ok_or_else(|| {
            RunError::Internal("no sandbox: the sandbox node has not run".into()).into()
        })
    }

    /// The sandbox of this run with `network`.
    pub fn spec(&self, network: NetworkAccess) -> Result<SandboxSpec, FlowError> {
        let wt = self.wt()?;
        let cfg = &self.svc.cfg;
        // Setup alone gets the CA bundle and the allowlisted host variables; the offline
        // sandboxes get the prepared environment (snapshot mounts, variables, image).
        let (mut policy, mut mounts) = match network {
            NetworkAccess::Setup => {
                // Setup runs over the base commit's tree (env::build), never over this work
                // tree, which holds agent commits from revision 2 on.
                return Err(RunError::Internal(
                    "a sandbox with network over the run's work tree was asked for".into(),
                )
                .into());
            }
            NetworkAccess::None => (
                SandboxPolicy::for_run(&cfg.file.sandbox, network),
                Vec::new(),
            ),
        };
        let mut image = None;
        if network == NetworkAccess::None
            && let Some(env) = &self.environment
        {
            env.apply(&mut policy);
            mounts.extend(env.mounts());
            image = env.image.clone();
        }
        Ok(SandboxSpec {
            workspace: wt.path.clone(),
            git_dir: wt.git_dir.clone(),
            home: self.home(),
            policy,
            run_id: self.run_id.clone(),
            image,
            mounts,
            pool: None,
        })
    }

    /// Closes the pass's sandbox and MCP sidecar, whatever happened (a cancelled exec already
    /// removed them).
    pub async fn close_sandbox(&mut self) {
        if let Some(slot) = self.warm.take()
            && let Err(e) = slot.session.close().await
        {
            tracing::warn!(error = %e, "could not close an unused warm sandbox");
        }
        if let Some(session) = self.session.take()
            && let Err(e) = session.close().await
        {
            tracing::warn!(error = %e, "could not close sandbox");
        }
        if let Some(side) = self.mcp_session.take()
            && let Err(e) = side.close().await
        {
            tracing::warn!(error = %e, "could not close the MCP sidecar");
        }
    }

    /// Closes this run's MCP connections (after the last agent round of a pass).
    pub async fn close_tools(&mut self) {
        if let Some(o) = self.offered.take() {
            o.hub.close().await;
        }
    }

    /// True when the agent finished and a check failed: the shape that asks for a fix round.
    pub fn checks_failed_after_finish(&self) -> bool {
        matches!(self.end, Some(AgentEnd::Finished { .. }))
            && self.results.iter().any(|r| r.status == CheckStatus::Fail)
    }

    /// Adds a node's duration to the report's timing bucket for it.
    pub fn add_timing(&mut self, node: NodeName, ms: u64) {
        let t = &mut self.timings;
        match node {
            NodeName::Workspace | NodeName::Lookup => t.workspace += ms,
            NodeName::Setup | NodeName::Sandbox | NodeName::Bump => t.sandbox += ms,
            NodeName::Implement | NodeName::Fix | NodeName::CiFix => t.agent += ms,
            NodeName::Checks | NodeName::SandboxGates => t.checks += ms,
            _ => {}
        }
    }

    /// The agent's steps, tokens and cost so far.
    pub fn totals(&self) -> AgentTotals {
        AgentTotals {
            steps: self.budget.steps,
            input_tokens: self.budget.usage.input_tokens,
            output_tokens: self.budget.usage.output_tokens,
            cost_usd: cost_usd(self.budget.usage, &self.svc.cfg.file.llm),
        }
    }

    /// Which sandbox the run used.
    pub fn sandbox_info(&self) -> SandboxInfo {
        SandboxInfo {
            backend: self.svc.sandbox.backend().as_str().into(),
            image: self.svc.sandbox.image(),
            network: false,
            warm: self.warm_used,
        }
    }

    /// The agent's `finish` summary, when it finished.
    pub fn summary(&self) -> Option<&str> {
        match &self.end {
            Some(AgentEnd::Finished { summary }) => Some(summary),
            _ => None,
        }
    }

    /// The run report for `judged`, or (without a judgement) for a run that ended early.
    pub fn report(&self, judged: Option<&Judged>) -> RunReport {
        let (gates, class, decision, reasons) = match judged {
            Some(j) => (
                j.gates.clone(),
                j.classified.class,
                j.decision,
                j.reasons.clone(),
            ),
            None => (
                self.extra_gates.clone(),
                if self.blueprint == BlueprintId::DependencyUpdate {
                    Classification::DependencyUpdate
                } else {
                    Classification::Refactor
                },
                Decision::Halt,
                Vec::new(),
            ),
        };
        RunReport {
            task_id: self.task.id.clone(),
            revision: self.task.current().number,
            run_id: self.run_id.clone(),
            repo: self.task.repo.name.clone(),
            base: self.task.repo.base.clone(),
            branch: self
                .dirs
                .as_ref()
                .map_or_else(|| self.task.branch.clone(), |d| d.wt.branch.clone()),
            commit: self.commit.clone(),
            pr_url: self.pr_url.clone(),
            blueprint: self.blueprint.as_str().to_string(),
            decision,
            reasons,
            classification: class,
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
}
