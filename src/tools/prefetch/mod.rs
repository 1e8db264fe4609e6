//! Prefetch: the ≤ k tools one run is offered, chosen before the agent starts, by a
//! deterministic ranking whose every point has a reason ([`Pick::evidence`]).
//!
//! Signals, in order of weight:
//! 1. explicit mentions of a tool (its name) or a server (a distinctive word of its name);
//! 2. BM25F over each tool's name (×3), server (×1.5), description (×1), parameter names
//!    (×1), parameter descriptions and enum values (×0.5), nested schemas (`oneOf`, `$defs`)
//!    included; the request's words plus engineering synonyms at half weight, and the
//!    thread's context at 0.3;
//! 3. server-level evidence: tools of one server tend to be needed together, so each tool
//!    gains 0.3 × its server's best score;
//! 4. repo signals: manifests and CI files point at ecosystems (`package.json` → npm,
//!    `pom.xml` → Maven, `.github/workflows` → GitHub, …).
//!
//! Then: the blueprint's built-ins are always in; destructive tools are withheld unless
//! policy allows them; near-identical tools from different servers are kept once; ties
//! break by name, so the ranking is a pure function of its inputs.
//!
//! This file holds what prefetch is asked ([`Request`]) and answers ([`Selection`]);
//! `index` builds the BM25F index, `select` ranks and chooses, `signals` reads the repo.
//! It must not call a tool or a server: it only ranks the registry it is given.

mod index;
mod select;
mod signals;

use serde::Serialize;

use super::registry::ToolEntry;

pub use self::index::Index;
pub use self::signals::RepoSignals;

/// What prefetch is asked.
#[derive(Clone, Default)]
pub struct Request<'a> {
    pub task: &'a str,
    /// Thread context (weighted lower than the task).
    pub context: &'a str,
    pub repo: Option<&'a RepoSignals>,
    /// Tools offered per run, built-ins included.
    pub k: usize,
    /// Names always included (the blueprint's built-ins).
    pub always: &'a [&'a str],
    pub allow_destructive: bool,
    /// When set, only these names may be offered (tools a run can actually call).
    pub callable: Option<&'a dyn Fn(&ToolEntry) -> bool>,
}

/// One offered tool with its score and the evidence behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pick {
    pub name: String,
    pub server: Option<String>,
    pub score: f64,
    pub evidence: Vec<String>,
}

/// The outcome: offered tools best first, and what was left out and why.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Selection {
    pub picks: Vec<Pick>,
    pub withheld: Vec<(String, String)>,
}

impl Selection {
    /// The offered tools' names, best first.
    pub fn names(&self) -> Vec<String> {
        self.picks.iter().map(|p| p.name.clone()).collect()
    }
}
