//! The run report: the contract shape (`DESIGN.md` §3, "Run report") that `run --json`, the
//! store, the PR body and Slack all render. Field names and enum spellings here are the
//! contract; change them only on purpose.

use serde::{Deserialize, Serialize};

/// What happens to the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    AutoMerge,
    NeedsApproval,
    Halt,
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::AutoMerge => "auto_merge",
            Self::NeedsApproval => "needs_approval",
            Self::Halt => "halt",
        })
    }
}

/// The contract's change classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    DependencyUpdate,
    Docs,
    Tests,
    Formatting,
    Refactor,
    Feature,
    Config,
    Infra,
    Migration,
    Security,
}

impl Classification {
    /// The contract spelling, e.g. `dependency_update`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DependencyUpdate => "dependency_update",
            Self::Docs => "docs",
            Self::Tests => "tests",
            Self::Formatting => "formatting",
            Self::Refactor => "refactor",
            Self::Feature => "feature",
            Self::Config => "config",
            Self::Infra => "infra",
            Self::Migration => "migration",
            Self::Security => "security",
        }
    }
}

/// A gate's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateStatus {
    Pass,
    Fail,
    Warn,
    Skip,
}

/// One gate with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    /// `tests`, `lint`, `format`, `diff`, `scope`, `secrets`, `ci`, …
    pub name: String,
    pub status: GateStatus,
    /// Evidence in one or a few lines.
    pub detail: String,
}

impl Gate {
    pub fn new(name: &str, status: GateStatus, detail: impl Into<String>) -> Self {
        Self {
            name: name.to_string(),
            status,
            detail: detail.into(),
        }
    }
}

/// Agent totals for the run: model turns, tokens and cost (USD, from the config price table).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentTotals {
    pub steps: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
}

/// Wall time of each phase, ms.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Mirror fetch and worktree creation.
    pub workspace: u64,
    /// Sandbox start-up and the setup step.
    pub sandbox: u64,
    /// All agent nodes (implement and fix rounds).
    pub agent: u64,
    /// Format, lint and test commands.
    pub checks: u64,
    pub total: u64,
}

/// Which sandbox ran the task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxInfo {
    /// `docker` or `bwrap`.
    pub backend: String,
    /// The image (`docker`), or the host root bound read-only (`bwrap`).
    pub image: String,
    /// Whether the agent loop and checks had network. Always false: it is a policy, shown.
    pub network: bool,
}

/// The run report (contract).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub task_id: String,
    pub revision: u32,
    pub run_id: String,
    pub repo: String,
    pub base: String,
    pub branch: String,
    /// The commit on `branch`, when one was made.
    pub commit: Option<String>,
    pub pr_url: Option<String>,
    pub blueprint: String,
    pub decision: Decision,
    pub reasons: Vec<String>,
    pub classification: Classification,
    pub gates: Vec<Gate>,
    /// Tools offered to the model (the prefetch), built-ins included.
    pub tools: Vec<String>,
    pub fix_rounds: u32,
    pub agent: AgentTotals,
    pub timings_ms: Timings,
    pub sandbox: SandboxInfo,
}

impl RunReport {
    /// The report as plain text for a terminal or a Slack fallback: decision, reasons, gates.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{} · {} · {} on {} (revision {})\n",
            self.decision,
            self.classification.as_str(),
            self.branch,
            self.repo,
            self.revision
        );
        for r in &self.reasons {
            out.push_str(&format!("  reason: {r}\n"));
        }
        for g in &self.gates {
            let mark = match g.status {
                GateStatus::Pass => "pass",
                GateStatus::Fail => "FAIL",
                GateStatus::Warn => "warn",
                GateStatus::Skip => "skip",
            };
            out.push_str(&format!("  [{mark}] {}: {}\n", g.name, g.detail));
        }
        out.push_str(&format!(
            "  fix rounds {} · {} steps · {} in / {} out tokens · ${:.4} · {} ms · sandbox {}\n",
            self.fix_rounds,
            self.agent.steps,
            self.agent.input_tokens,
            self.agent.output_tokens,
            self.agent.cost_usd,
            self.timings_ms.total,
            self.sandbox.backend
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_has_exactly_the_contract_keys() {
        let r = RunReport {
            task_id: "t".into(),
            revision: 1,
            run_id: "r".into(),
            repo: "o/n".into(),
            base: "main".into(),
            branch: "slipway/x".into(),
            commit: None,
            pr_url: None,
            blueprint: "code_change".into(),
            decision: Decision::NeedsApproval,
            reasons: vec![],
            classification: Classification::DependencyUpdate,
            gates: vec![Gate::new("tests", GateStatus::Pass, "ok")],
            tools: vec!["read_file".into()],
            fix_rounds: 0,
            agent: AgentTotals::default(),
            timings_ms: Timings::default(),
            sandbox: SandboxInfo {
                backend: "docker".into(),
                image: "i".into(),
                network: false,
            },
        };
        let v = serde_json::to_value(&r).unwrap();
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        let mut want = vec![
            "task_id",
            "revision",
            "run_id",
            "repo",
            "base",
            "branch",
            "commit",
            "pr_url",
            "blueprint",
            "decision",
            "reasons",
            "classification",
            "gates",
            "tools",
            "fix_rounds",
            "agent",
            "timings_ms",
            "sandbox",
        ];
        want.sort();
        assert_eq!(keys, want);
        assert_eq!(v["decision"], "needs_approval");
        assert_eq!(v["classification"], "dependency_update");
        assert_eq!(v["gates"][0]["status"], "pass");
        let t = v["timings_ms"].as_object().unwrap();
        for k in ["workspace", "sandbox", "agent", "checks", "total"] {
            assert!(t.contains_key(k));
        }
        for k in ["steps", "input_tokens", "output_tokens", "cost_usd"] {
            assert!(v["agent"].as_object().unwrap().contains_key(k));
        }
    }
}
