//! The dependency-update lane's deterministic half: which dependencies a repo has
//! ([`scan`]), which newer releases its registries hold ([`registry`]), which of them the
//! repo's rules allow and how they group ([`renovate`], [`plan`]), and how each is applied
//! with the ecosystem's own tool ([`bump`]). The agent sees none of this unless a bump
//! breaks the checks (`crate::blueprints::dependency_update`).
//!
//! Shapes only here; no I/O.

pub mod advisory;
pub mod bump;
pub mod intent;
pub mod lookup;
pub mod plan;
pub mod registry;
pub mod render;
pub mod renovate;
pub mod request;
pub mod scan;
pub mod version;

pub use request::parse_args;

use serde::{Deserialize, Serialize};

/// A package ecosystem. The serde names are Renovate's manager families, so a
/// `matchManagers`/`matchDatasources` rule reads naturally (`pypi`, `npm`, `cargo`, `go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ecosystem {
    /// Python: `requirements*.txt` pins, `pyproject.toml` (PEP 621) with `uv.lock`.
    Pypi,
    /// Node: `package.json` with `package-lock.json`.
    Npm,
    /// Rust: `Cargo.toml` with `Cargo.lock`.
    Cargo,
    /// Go modules: `go.mod` with `go.sum`.
    Go,
}

impl Ecosystem {
    /// Every ecosystem, in report order.
    pub const ALL: &[Ecosystem] = &[Self::Pypi, Self::Npm, Self::Cargo, Self::Go];

    /// The lowercase name (`pypi`, `npm`, `cargo`, `go`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pypi => "pypi",
            Self::Npm => "npm",
            Self::Cargo => "cargo",
            Self::Go => "go",
        }
    }
}

impl std::fmt::Display for Ecosystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How far an update moves, by semantic versioning (Renovate's `matchUpdateTypes` names).
/// For `0.x` versions a minor move counts as major and a patch move as minor, as Cargo and
/// npm's caret ranges treat them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateType {
    Patch,
    Minor,
    Major,
}

impl UpdateType {
    /// `patch`, `minor` or `major`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Patch => "patch",
            Self::Minor => "minor",
            Self::Major => "major",
        }
    }
}

impl std::str::FromStr for UpdateType {
    type Err = String;

    /// Parses `patch`, `minor` or `major`; the error names the accepted words.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "patch" => Ok(Self::Patch),
            "minor" => Ok(Self::Minor),
            "major" => Ok(Self::Major),
            other => Err(format!(
                "unknown update type {other:?}: use patch, minor or major"
            )),
        }
    }
}

/// One dependency a repo declares, with the version it resolves to today.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    /// The package name as the registry knows it (npm scopes included: `@acme/ui`; a Go
    /// module path).
    pub name: String,
    pub ecosystem: Ecosystem,
    /// The version in use: the lockfile's, else an exact pin in the manifest.
    pub current: String,
    /// The manifest's requirement as written (`^1.2.0`, `>=1,<2`, `1.2`), when there is one.
    pub requirement: Option<String>,
    /// The manifest that declares it, relative to the repo root (`web/package.json`).
    pub manifest: String,
    /// The lockfile that pins it, relative to the repo root, when there is one.
    pub lockfile: Option<String>,
    /// A development-only dependency (`devDependencies`, `[dev-dependencies]`, a dev group).
    pub dev: bool,
    /// Required only by other dependencies, not by the code: go.mod's `// indirect`.
    #[serde(default)]
    pub indirect: bool,
}

/// One published version of a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub version: String,
    /// When it was published, unix ms; `None` when the registry does not say (a sparse
    /// Cargo index, pypiserver's simple index).
    pub released_ms: Option<u64>,
    /// Yanked or deprecated releases are never proposed.
    pub yanked: bool,
}

/// What a registry knows of one package.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PackageInfo {
    /// Every release, any order.
    pub releases: Vec<Release>,
    /// The source repository (`https://github.com/owner/name`), for compare links.
    pub repository: Option<String>,
    /// A changelog or release-notes page, when the registry names one.
    pub changelog_url: Option<String>,
}

/// A security advisory an update fixes (GHSA or OSV).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advisory {
    /// `GHSA-xxxx-xxxx-xxxx` or an OSV id (`PYSEC-…`, `RUSTSEC-…`).
    pub id: String,
    /// One line.
    pub summary: String,
    /// The first version that fixes it.
    pub fixed: String,
    /// Link to the advisory.
    pub url: Option<String>,
}

/// One proposed update: a dependency, the version it moves to and why it may.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    pub dep: Dependency,
    /// The version proposed.
    pub to: String,
    pub update_type: UpdateType,
    /// When `to` was published, unix ms, when known.
    pub released_ms: Option<u64>,
    /// A changelog page, or a compare view (`…/compare/v1.0.0...v2.0.0`), when known.
    pub changelog_url: Option<String>,
    /// Set when the update fixes a security advisory (exempt from the release-age cooldown).
    pub advisory: Option<Advisory>,
}

impl Update {
    /// `name from → to`, as the thread, the reasons and the node records name an update.
    pub fn change(&self) -> String {
        format!("{} {} → {}", self.dep.name, self.dep.current, self.to)
    }
}

/// Updates that travel together in one branch and one PR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Stable across runs: the same group always lands on the same branch
    /// (`slipway/deps-<slug>`), so a rerun updates its PR in place and it never opens twice.
    pub slug: String,
    /// For titles: `lodash`, `all non-major dependencies`, a Renovate `groupName`.
    pub title: String,
    pub updates: Vec<Update>,
    /// What the matching Renovate rules say of auto-merge (`None`: they say nothing).
    pub automerge: Option<bool>,
}

/// An update held back, with the reason (shown in the thread and the PR body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// The package name.
    pub name: String,
    /// The version not proposed (empty when the lookup itself failed).
    pub version: String,
    /// One sentence: `released 2 days ago; minimumReleaseAge is 3 days`.
    pub reason: String,
}

/// What a `dependency_update` task asks for: the CLI's `--only` and `--update-types`, a
/// Slack request's words, a schedule's `args`, or an advisory to fix.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DepsRequest {
    /// Only these packages (empty: every dependency).
    #[serde(default)]
    pub only: Vec<String>,
    /// Only these update types (empty: patch and minor; majors only when asked for or when
    /// `only` names the package).
    #[serde(default)]
    pub update_types: Vec<UpdateType>,
    /// A target version for a single package (`bump lodash to 4.17.21`); `None`: the latest
    /// the rules allow.
    #[serde(default)]
    pub version: Option<String>,
    /// Lockfile maintenance: refresh every locked version within the manifests' ranges.
    #[serde(default)]
    pub lockfile_maintenance: bool,
    /// The advisory to fix: bump its package to the first fixed version (no release-age
    /// cooldown), and label the PR a security patch.
    #[serde(default)]
    pub advisory: Option<AdvisoryInput>,
    /// The group this task is for (its slug), once planned: a rerun proposes that group's
    /// updates again, at their newest allowed versions.
    #[serde(default)]
    pub group: Option<String>,
}

/// An advisory given as input: a GHSA id to look up, or a parsed OSV record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AdvisoryInput {
    /// `GHSA-xxxx-xxxx-xxxx`, looked up on the forge's advisory database.
    Ghsa { id: String },
    /// An advisory already known (from an OSV JSON file): package, ecosystem, first fixed.
    Known {
        advisory: Advisory,
        package: String,
        ecosystem: Ecosystem,
    },
}

/// One bumped package's release notes, for the fix prompt (fenced as data) and the PR body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseNotes {
    pub name: String,
    pub from: String,
    pub to: String,
    /// The changelog's sections for versions in (from, to], capped; `None` when the package
    /// ships no changelog the lookup could read.
    pub excerpt: Option<String>,
}

/// What a `dependency_update` run carries from node to node.
#[derive(Debug, Clone, Default)]
pub struct DepsRun {
    /// The updates this run applies (one group: one branch, one PR).
    pub group: Option<Group>,
    /// Updates held back, with reasons.
    pub skipped: Vec<Skipped>,
    /// Warnings from the repo's rules and manifests (unknown `renovate.json` keys…).
    pub warnings: Vec<String>,
    /// Release notes per bumped package.
    pub notes: Vec<ReleaseNotes>,
    /// The bump's own commit (before any agent change).
    pub bump_commit: Option<String>,
    /// Files the agent changed after the bump (the PR body lists them apart).
    pub agent_files: Vec<String>,
}

impl DepsRun {
    /// The group's updates (none before the lookup node ran).
    pub fn updates(&self) -> &[Update] {
        self.group.as_ref().map_or(&[], |g| g.updates.as_slice())
    }

    /// `name from → to` for every update, comma-separated: how the thread names what broke.
    pub fn named(&self) -> String {
        self.updates()
            .iter()
            .map(Update::change)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `name from → to` of every major update (majors always need an approval).
    pub fn majors(&self) -> Vec<String> {
        self.updates()
            .iter()
            .filter(|u| u.update_type == UpdateType::Major)
            .map(Update::change)
            .collect()
    }

    /// True when some update fixes a security advisory.
    pub fn is_security(&self) -> bool {
        self.updates().iter().any(|u| u.advisory.is_some())
    }
}
