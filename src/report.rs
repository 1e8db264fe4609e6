//! The run report: the contract shape (`DESIGN.md` §3, "Run report") that `run --json`, the
//! store, the PR body and Slack all render. Field names and enum spellings here are the
//! contract; change them only on purpose.
//!
//! Owns these types only; it must not import another slipway module (everything else fills
//! or renders it).

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

/// A gate's name. The snake_case spelling (`forbidden_paths`) is the contract: it is what
/// the run report, the store, the PR body, Slack and `required_gates` say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateName {
    /// The agent finished, or why it stopped.
    Agent,
    /// The environment's setup step (`.slipway/setup.sh`).
    Setup,
    /// The repo's format check.
    Format,
    /// The repo's lint check.
    Lint,
    /// The repo's tests.
    Tests,
    /// Whether the run changed anything.
    Diff,
    /// Files and lines changed against the policy's limits and review paths.
    Scope,
    /// Paths no change may touch.
    ForbiddenPaths,
    /// Credentials in the added lines.
    Secrets,
    /// Changed manifests and lockfiles.
    Dependencies,
    /// Coverage before and after the change.
    Coverage,
    /// The forge's CI on the pushed commit.
    Ci,
    /// The policy the run was judged by.
    Policy,
}

impl GateName {
    /// Every gate, in the order `required_gates` errors list them.
    pub const ALL: [GateName; 13] = [
        Self::Agent,
        Self::Setup,
        Self::Format,
        Self::Lint,
        Self::Tests,
        Self::Diff,
        Self::Scope,
        Self::ForbiddenPaths,
        Self::Secrets,
        Self::Dependencies,
        Self::Coverage,
        Self::Ci,
        Self::Policy,
    ];

    /// The contract spelling, e.g. `forbidden_paths`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Setup => "setup",
            Self::Format => "format",
            Self::Lint => "lint",
            Self::Tests => "tests",
            Self::Diff => "diff",
            Self::Scope => "scope",
            Self::ForbiddenPaths => "forbidden_paths",
            Self::Secrets => "secrets",
            Self::Dependencies => "dependencies",
            Self::Coverage => "coverage",
            Self::Ci => "ci",
            Self::Policy => "policy",
        }
    }
}

impl std::fmt::Display for GateName {
    /// The contract spelling; width and alignment flags apply as they do to a `str`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// A name that is not a gate (from `required_gates`); the message lists the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a gate; known: {known}", known = GateName::ALL.map(GateName::as_str).join(", "))]
pub struct UnknownGate(pub String);

impl std::str::FromStr for GateName {
    type Err = UnknownGate;

    /// Parses the contract spelling exactly (no other case or spelling).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| UnknownGate(s.to_string()))
    }
}

impl PartialEq<str> for GateName {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for GateName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One gate with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    /// Which gate (`tests`, `lint`, `scope`, `ci`, … in the JSON).
    pub name: GateName,
    /// Its outcome.
    pub status: GateStatus,
    /// Evidence in one or a few lines.
    pub detail: String,
}

impl Gate {
    /// A gate named `name` with `status` and its evidence.
    pub fn new(name: GateName, status: GateStatus, detail: impl Into<String>) -> Self {
        Self {
            name,
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

/// The words the sandbox node's detail, the report and the Slack status line use for a
/// sandbox taken pre-started from the warm pool (`crate::env::pool`).
pub const WARM_POOL: &str = "warm pool";

/// Which sandbox ran the task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxInfo {
    /// `docker` or `bwrap`.
    pub backend: String,
    /// The image (`docker`), or the host root bound read-only (`bwrap`).
    pub image: String,
    /// Whether the agent loop and checks had network. Always false: it is a policy, shown.
    pub network: bool,
    /// Whether the run's first sandbox came pre-started from the warm pool
    /// (`[sandbox] warm`). Absent when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub warm: bool,
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
        let untested = self
            .gates
            .iter()
            .any(|g| g.name == GateName::Tests && g.status == GateStatus::Skip);
        let mut out = format!(
            "{}{} · {} · {} on {} (revision {})\n",
            self.decision,
            if untested { " (untested)" } else { "" },
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
            "  fix rounds {} · {} steps · {} in / {} out tokens · ${:.4} · {} ms · sandbox {}{}\n",
            self.fix_rounds,
            self.agent.steps,
            self.agent.input_tokens,
            self.agent.output_tokens,
            self.agent.cost_usd,
            self.timings_ms.total,
            self.sandbox.backend,
            if self.sandbox.warm {
                format!(" ({WARM_POOL})")
            } else {
                String::new()
            }
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
            gates: vec![Gate::new(GateName::Tests, GateStatus::Pass, "ok")],
            tools: vec!["read_file".into()],
            fix_rounds: 0,
            agent: AgentTotals::default(),
            timings_ms: Timings::default(),
            sandbox: SandboxInfo {
                backend: "docker".into(),
                image: "i".into(),
                network: false,
                warm: false,
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

    #[test]
    fn gate_names_keep_their_contract_spelling() {
        for g in GateName::ALL {
            assert_eq!(serde_json::to_value(g).unwrap(), g.as_str());
            assert_eq!(g.to_string(), g.as_str());
            assert_eq!(g.as_str().parse::<GateName>(), Ok(g));
            assert!(g == g.as_str());
        }
        assert_eq!(GateName::ForbiddenPaths.as_str(), "forbidden_paths");
        assert_eq!(format!("[{:<8}]", GateName::Ci), "[ci      ]");
        assert_eq!(
            "vibes".parse::<GateName>().unwrap_err().to_string(),
            "\"vibes\" is not a gate; known: agent, setup, format, lint, tests, diff, scope, forbidden_paths, secrets, dependencies, coverage, ci, policy"
        );
    }
}
