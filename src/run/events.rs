//! The typed progress of a run, rendered at each front end's own edge (terminal, Slack, web).
//!
//! Owns [`RunEvent`], [`NodeKind`] and [`NodeName`]; does no I/O. Serde spellings are the
//! stored and contract spellings (`snake_case`), so renaming a variant is a contract change.

use serde::{Deserialize, Serialize};

use crate::report::RunReport;

/// What kind of work a node is (`DESIGN.md` §2: `Deterministic` or `Agent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// Plain code: no model call.
    Deterministic,
    /// An LLM agent loop with its own tools, prompt and budget.
    Agent,
}

impl NodeKind {
    /// The stored spelling (`deterministic`, `agent`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deterministic => "deterministic",
            Self::Agent => "agent",
        }
    }
}

/// Every node a blueprint can run. The spelling is what the store's node records, the audit
/// log's `node_finished` entries and the Slack status lines show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeName {
    /// Mirror cache → fresh work tree; the repo policy and check commands.
    Workspace,
    /// Dependency fetch with network, no secrets, before the agent.
    Setup,
    /// `dependency_update`: the repo's dependencies, their registries' releases and the
    /// repo's rules → the updates of this task's group.
    Lookup,
    /// `dependency_update`: the updates applied with the ecosystems' own tools (network, no
    /// secrets, over the base commit) and committed.
    Bump,
    /// Starts the offline sandbox of one pass.
    Sandbox,
    /// Sandboxed MCP servers started; the ≤ k tools offered.
    Prefetch,
    /// The agent implements the task.
    Implement,
    /// Format, lint and tests in the sandbox.
    Checks,
    /// An agent round after failed checks.
    Fix,
    /// An agent round after failed CI.
    CiFix,
    /// The pass's commit and the diff the gates judge.
    Commit,
    /// Dependencies and coverage gates in the sandbox.
    SandboxGates,
    /// Evidence → gates → decision.
    Gates,
    /// Push, and the PR opened or updated.
    Publish,
    /// The forge's CI on the pushed commit.
    Ci,
    /// The auto-merge of the tested commit.
    Merge,
    /// `git revert` of a merge (revert tasks).
    Revert,
}

impl NodeName {
    /// The stored spelling, e.g. `sandbox_gates`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Workspace => "workspace",
            Self::Setup => "setup",
            Self::Lookup => "lookup",
            Self::Bump => "bump",
            Self::Sandbox => "sandbox",
            Self::Prefetch => "prefetch",
            Self::Implement => "implement",
            Self::Checks => "checks",
            Self::Fix => "fix",
            Self::CiFix => "ci_fix",
            Self::Commit => "commit",
            Self::SandboxGates => "sandbox_gates",
            Self::Gates => "gates",
            Self::Publish => "publish",
            Self::Ci => "ci",
            Self::Merge => "merge",
            Self::Revert => "revert",
        }
    }
}

impl std::fmt::Display for NodeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Typed progress of a run; every front end renders these at its own edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunEvent {
    /// A run of `revision` began on `branch`.
    RunStarted {
        /// The task's id (12 hex characters).
        task_id: String,
        /// This run's id.
        run_id: String,
        /// The revision being run, from 1.
        revision: u32,
        /// The task's branch.
        branch: String,
    },
    /// A node began.
    NodeStarted {
        /// The node's stored spelling ([`NodeName::as_str`]).
        node: String,
        /// Deterministic or agent.
        kind: NodeKind,
    },
    /// A long node says what it is doing (e.g. setup building an environment for the first
    /// time); front ends show it until the node finishes.
    NodeProgress {
        /// The node's stored spelling ([`NodeName::as_str`]).
        node: String,
        /// One line.
        detail: String,
    },
    /// A node ended; `ok` false when it failed.
    NodeFinished {
        /// The node's stored spelling ([`NodeName::as_str`]).
        node: String,
        /// Deterministic or agent.
        kind: NodeKind,
        /// False when the node failed (the run may go on, e.g. a failing check).
        ok: bool,
        /// One line for status messages and records.
        detail: String,
        /// Wall time of the node, ms.
        duration_ms: u64,
    },
    /// The branch was pushed; `pr_url` is its PR when the forge has PRs. Sent before CI, so
    /// the thread can show the PR link at once.
    Published {
        /// The PR, when the forge has pull requests.
        pr_url: Option<String>,
        /// Where the branch went (a path or URL, with the branch).
        location: String,
    },
    /// The run's model spend so far, after each model response (front ends show it with
    /// their next update, not per event).
    Cost {
        /// US dollars, priced with `[llm]`.
        usd: f64,
        /// Input plus output tokens.
        tokens: u64,
    },
    /// A `[budgets]` limit reached 80% (once per run per limit); at 100% the agent stops.
    BudgetWarning {
        /// Which limit.
        limit: crate::budget::Limit,
        /// Spent against it (USD, or tokens for `task_tokens`).
        spent: f64,
        /// The limit.
        max: f64,
    },
    /// The run ended with a report (also `halt`).
    RunFinished {
        /// The run report (the contract's JSON).
        report: Box<RunReport>,
    },
    /// The run failed before it could report; `error` says why.
    RunFailed {
        /// What went wrong and what to do, one sentence.
        error: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_keep_their_stored_spelling() {
        for n in [NodeName::SandboxGates, NodeName::CiFix, NodeName::Workspace] {
            let json = serde_json::to_value(n).unwrap_or_default();
            assert_eq!(json, serde_json::Value::String(n.as_str().into()));
        }
    }
}
