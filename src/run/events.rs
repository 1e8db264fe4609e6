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
    Deterministic,
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
    Workspace,
    Setup,
    Sandbox,
    Prefetch,
    Implement,
    Checks,
    Fix,
    CiFix,
    Commit,
    SandboxGates,
    Gates,
    Publish,
    Ci,
    Merge,
    Revert,
}

impl NodeName {
    /// The stored spelling, e.g. `sandbox_gates`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Workspace => "workspace",
            Self::Setup => "setup",
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
    RunStarted {
        task_id: String,
        run_id: String,
        revision: u32,
        branch: String,
    },
    NodeStarted {
        node: String,
        kind: NodeKind,
    },
    NodeFinished {
        node: String,
        kind: NodeKind,
        ok: bool,
        detail: String,
        /// Wall time of the node, ms.
        duration_ms: u64,
    },
    /// The branch was pushed; `pr_url` is its PR when the forge has PRs. Sent before CI, so
    /// the thread can show the PR link at once.
    Published {
        pr_url: Option<String>,
        location: String,
    },
    RunFinished {
        report: Box<RunReport>,
    },
    RunFailed {
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
