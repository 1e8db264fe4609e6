//! One `packageRules[]` entry: its matchers and what it sets.
//!
//! Protocol facts (Renovate docs, "Configuration options" → packageRules, and "String
//! pattern matching"): matchers are ANDed; a list matches when any entry does. A name
//! pattern is exact, `/regex/` (flag `i`), or a glob (minimatch, `*` stops at `/`), and a
//! `!` prefix negates (since Renovate 38: the name must match a positive pattern, if any,
//! and no negated one). The legacy `matchPackagePatterns` (regexes) and
//! `matchPackagePrefixes` widen `matchPackageNames`; `excludePackageNames` /
//! `excludePackagePatterns` / `excludePackagePrefixes` remove.

use serde_json::{Map, Value};

use super::Warn;
use crate::deps::{Dependency, Ecosystem, UpdateType};

/// Which manifest section a dependency comes from, as `matchDepTypes` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DepKind {
    /// `dependencies`, `require`, `project.dependencies`, `build-dependencies`, …
    Prod,
    /// `devDependencies`, `dev-dependencies`, `dependency-groups`, …
    Dev,
    /// go.mod `// indirect` (Renovate's depType `indirect`).
    Indirect,
}

impl DepKind {
    /// A dependency's kind.
    pub fn of(dep: &Dependency) -> Self {
        if dep.indirect {
            Self::Indirect
        } else if dep.dev {
            Self::Dev
        } else {
            Self::Prod
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "dependencies"
            | "optionalDependencies"
            | "peerDependencies"
            | "require"
            | "project.dependencies"
            | "project.optional-dependencies"
            | "build-dependencies"
            | "workspace.dependencies"
            | "engines" => Self::Prod,
            "devDependencies"
            | "dev-dependencies"
            | "dependency-groups"
            | "tool.uv.dev-dependencies"
            | "tool.pdm.dev-dependencies" => Self::Dev,
            "indirect" => Self::Indirect,
            _ => return None,
        })
    }
}

/// A list of name patterns with Renovate's semantics (see the module doc).
#[derive(Debug, Clone, Default)]
pub struct NameMatcher {
    positive: Vec<Pattern>,
    negative: Vec<Pattern>,
}

#[derive(Debug, Clone)]
enum Pattern {
    Any,
    Exact(String),
    Prefix(String),
    Regex(regex::Regex),
    Glob(globset::GlobMatcher),
}

impl Pattern {
    fn matches(&self, name: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(e) => e.eq_ignore_ascii_case(name),
            Self::Prefix(p) => name.starts_with(p.as_str()),
            Self::Regex(r) => r.is_match(name),
            Self::Glob(g) => g.is_match(name),
        }
    }

    /// A `matchPackageNames`-style pattern: `/re/`, glob, or exact.
    fn name(p: &str) -> Result<Self, String> {
        if p == "*" || p == "**" {
            return Ok(Self::Any);
        }
        if let Some(body) = p.strip_prefix('/')
            && let Some(end) = body.rfind('/')
        {
            let (re, flags) = (&body[..end], &body[end + 1..]);
            return Self::regex(re, flags.contains('i'));
        }
        if p.contains(['*', '?', '{', '[']) {
            return globset::GlobBuilder::new(p)
                .literal_separator(true)
                .case_insensitive(true)
                .build()
                .map(|g| Self::Glob(g.compile_matcher()))
                .map_err(|e| e.to_string());
        }
        Ok(Self::Exact(p.to_string()))
    }

    fn regex(re: &str, nocase: bool) -> Result<Self, String> {
        if re == "*" || re == ".*" || re == "^.*$" {
            return Ok(Self::Any);
        }
        regex::RegexBuilder::new(re)
            .case_insensitive(nocase)
            .build()
            .map(Self::Regex)
            .map_err(|e| e.to_string())
    }
}

impl NameMatcher {
    /// Whether `name` passes: it matches a positive pattern (when there are any) and no
    /// negated one.
    pub fn matches(&self, name: &str) -> bool {
        (self.positive.is_empty() || self.positive.iter().any(|p| p.matches(name)))
            && !self.negative.iter().any(|p| p.matches(name))
    }

    fn is_empty(&self) -> bool {
        self.positive.is_empty() && self.negative.is_empty()
    }

    fn push(&mut self, key: &str, p: Result<Pattern, String>, negative: bool, w: &mut Warn) {
        match p {
            Ok(p) if negative => self.negative.push(p),
            Ok(p) => self.positive.push(p),
            Err(e) => w.note(format!(
                "key `{key}` has a pattern slipway cannot read ({e}); it is left out"
            )),
        }
    }
}

/// One `packageRules` entry. Matchers left `None` match everything; a list whose entries
/// all name things slipway does not update (a `github-actions` manager) matches nothing.
#[derive(Debug, Clone, Default)]
pub struct PackageRule {
    /// Its index in the file's `packageRules` (presets' rules: `None`), for messages.
    pub index: Option<usize>,
    /// `matchPackageNames` with the legacy patterns, prefixes and excludes folded in.
    pub package_names: Option<NameMatcher>,
    /// `matchDepNames` (slipway's dependency name is the package name).
    pub dep_names: Option<NameMatcher>,
    /// `matchUpdateTypes` (patch, minor, major; others such as `pin` are dropped).
    pub update_types: Option<Vec<UpdateType>>,
    /// `matchManagers`, `matchDatasources` and `matchCategories`, each as ecosystems.
    pub managers: Option<Vec<Ecosystem>>,
    pub datasources: Option<Vec<Ecosystem>>,
    pub categories: Option<Vec<Ecosystem>>,
    /// `matchDepTypes`.
    pub dep_types: Option<Vec<DepKind>>,
    /// `matchCurrentVersion`: a range in the ecosystem's syntax, or `/regex/` (`!` negates),
    /// tested against the version in use.
    pub current_version: Option<String>,
    /// `matchFileNames` (or legacy `matchPaths`): globs over the manifest and lockfile paths.
    pub file_names: Option<globset::GlobSet>,
    /// A matcher slipway does not know was present: the rule never matches.
    pub never: bool,
    pub enabled: Option<bool>,
    pub automerge: Option<bool>,
    /// `minimumReleaseAge` in ms.
    pub minimum_release_age_ms: Option<u64>,
    pub group_name: Option<String>,
    pub group_slug: Option<String>,
    /// `allowedVersions`.
    pub allowed_versions: Option<String>,
}

/// Renovate manager names → ecosystems (`None`: a manager slipway does not run).
fn manager(m: &str) -> Option<Ecosystem> {
    Some(match m {
        "npm" => Ecosystem::Npm,
        "pep621" | "pip_requirements" | "pip-compile" | "pip_setup" | "setup-cfg" | "pipenv"
        | "poetry" | "pep723" => Ecosystem::Pypi,
        "cargo" => Ecosystem::Cargo,
        "gomod" => Ecosystem::Go,
        _ => return None,
    })
}

fn datasource(d: &str) -> Option<Ecosystem> {
    Some(match d {
        "npm" => Ecosystem::Npm,
        "pypi" => Ecosystem::Pypi,
        "crate" => Ecosystem::Cargo,
        "go" => Ecosystem::Go,
        _ => return None,
    })
}

fn category(c: &str) -> Option<Ecosystem> {
    Some(match c {
        "js" => Ecosystem::Npm,
        "python" => Ecosystem::Pypi,
        "rust" => Ecosystem::Cargo,
        "golang" => Ecosystem::Go,
        _ => return None,
    })
}

/// Reads values through `f`; unknown ones are named in one warning.
fn known<T>(
    w: &mut Warn,
    key: &str,
    values: Vec<String>,
    f: impl Fn(&str) -> Option<T>,
    what: &str,
) -> Vec<T> {
    let (mut out, mut unknown) = (Vec::new(), Vec::new());
    for v in values {
        match f(&v) {
            Some(t) => out.push(t),
            None => unknown.push(v),
        }
    }
    if !unknown.is_empty() {
        w.note(format!(
            "key `{key}`: {} {} not {what} slipway handles; the rule does not apply to {}",
            unknown
                .iter()
                .map(|u| format!("`{u}`"))
                .collect::<Vec<_>>()
                .join(", "),
            if unknown.len() == 1 { "is" } else { "are" },
            if unknown.len() == 1 { "it" } else { "them" },
        ));
    }
    out
}

pub(super) fn parse(i: usize, o: &Map<String, Value>, w: &mut Warn) -> PackageRule {
    let mut r = PackageRule {
        index: Some(i),
        ..PackageRule::default()
    };
    let mut names = NameMatcher::default();
    let mut dep_names = NameMatcher::default();
    for (key, v) in o {
        let full = format!("packageRules[{i}].{key}");
        let full = full.as_str();
        match key.as_str() {
            "description" => {}
            "matchPackageNames" | "matchDepNames" => {
                let m = if key == "matchDepNames" {
                    &mut dep_names
                } else {
                    &mut names
                };
                for p in w.strings(full, v) {
                    let (neg, p) = match p.strip_prefix('!') {
                        Some(rest) => (true, rest.to_string()),
                        None => (false, p),
                    };
                    m.push(full, Pattern::name(&p), neg, w);
                }
            }
            "matchPackagePatterns" | "excludePackagePatterns" => {
                for p in w.strings(full, v) {
                    names.push(
                        full,
                        Pattern::regex(&p, false),
                        key.starts_with("exclude"),
                        w,
                    );
                }
            }
            "matchPackagePrefixes" | "excludePackagePrefixes" => {
                for p in w.strings(full, v) {
                    names.push(full, Ok(Pattern::Prefix(p)), key.starts_with("exclude"), w);
                }
            }
            "excludePackageNames" | "excludeDepNames" => {
                for p in w.strings(full, v) {
                    names.push(full, Ok(Pattern::Exact(p)), true, w);
                }
            }
            "matchUpdateTypes" => {
                let all = w.strings(full, v);
                r.update_types = Some(known(w, full, all, |s| s.parse().ok(), "an update type"));
            }
            "matchManagers" => {
                let all = w.strings(full, v);
                r.managers = Some(known(w, full, all, manager, "a manager"));
            }
            "matchDatasources" => {
                let all = w.strings(full, v);
                r.datasources = Some(known(w, full, all, datasource, "a datasource"));
            }
            "matchCategories" => {
                let all = w.strings(full, v);
                r.categories = Some(known(w, full, all, category, "a category"));
            }
            "matchDepTypes" => {
                let all = w.strings(full, v);
                r.dep_types = Some(known(w, full, all, DepKind::parse, "a dependency type"));
            }
            "matchFileNames" | "matchPaths" => {
                let mut b = globset::GlobSetBuilder::new();
                for p in w.strings(full, v) {
                    match globset::Glob::new(&p) {
                        Ok(g) => {
                            b.add(g);
                        }
                        Err(e) => w.note(format!(
                            "key `{full}` pattern {p:?} is not a glob ({e}); left out"
                        )),
                    }
                }
                r.file_names = b.build().ok();
            }
            "enabled" => r.enabled = w.bool(full, v),
            "automerge" => r.automerge = w.bool(full, v),
            "minimumReleaseAge" => r.minimum_release_age_ms = w.age(full, v),
            "stabilityDays" => {
                r.minimum_release_age_ms = v.as_u64().map(|d| d * super::presets::DAY_MS)
            }
            "groupName" => r.group_name = w.string(full, v),
            "groupSlug" => r.group_slug = w.string(full, v),
            "allowedVersions" => r.allowed_versions = w.string(full, v),
            "matchCurrentVersion" => r.current_version = w.string(full, v),
            k if k.starts_with("match") || k.starts_with("exclude") => {
                r.never = true;
                w.note(format!(
                    "key `{full}` is a matcher slipway does not support; this rule is not applied"
                ));
            }
            _ => w.unsupported(full),
        }
    }
    r.package_names = (!names.is_empty()).then_some(names);
    r.dep_names = (!dep_names.is_empty()).then_some(dep_names);
    r
}

impl PackageRule {
    /// Whether every matcher of this rule matches `dep` updated by `update` (a rule with
    /// `matchUpdateTypes` does not match when `update` is `None`).
    pub fn matches(&self, dep: &Dependency, update: Option<UpdateType>) -> bool {
        let eco =
            |l: &Option<Vec<Ecosystem>>| l.as_ref().is_none_or(|l| l.contains(&dep.ecosystem));
        !self.never
            && self
                .package_names
                .as_ref()
                .is_none_or(|m| m.matches(&dep.name))
            && self.dep_names.as_ref().is_none_or(|m| m.matches(&dep.name))
            && self
                .update_types
                .as_ref()
                .is_none_or(|t| update.is_some_and(|u| t.contains(&u)))
            && eco(&self.managers)
            && eco(&self.datasources)
            && eco(&self.categories)
            && self
                .dep_types
                .as_ref()
                .is_none_or(|t| t.contains(&DepKind::of(dep)))
            && self
                .current_version
                .as_deref()
                .is_none_or(|p| version_matches(dep.ecosystem, p, &dep.current))
            && self.file_names.as_ref().is_none_or(|g| {
                g.is_match(&dep.manifest) || dep.lockfile.as_deref().is_some_and(|l| g.is_match(l))
            })
    }

    /// Whether this rule names update types and `t` is one of them.
    pub fn matches_update_type(&self, t: UpdateType) -> bool {
        self.update_types.as_ref().is_some_and(|l| l.contains(&t))
    }
}

/// Renovate's version patterns (`allowedVersions`, `matchCurrentVersion`): `/regex/` or
/// `!/regex/` (flag `i`), else a range in the ecosystem's own syntax. A pattern that does
/// not parse matches nothing (fails closed).
pub fn version_matches(eco: Ecosystem, pattern: &str, version: &str) -> bool {
    let p = pattern.trim();
    let (negated, body) = match p.strip_prefix("!/") {
        Some(rest) => (true, Some(rest)),
        None => (false, p.strip_prefix('/')),
    };
    if let Some(body) = body
        && let Some(end) = body.rfind('/')
    {
        let nocase = body[end + 1..].contains('i');
        return regex::RegexBuilder::new(&body[..end])
            .case_insensitive(nocase)
            .build()
            .is_ok_and(|re| re.is_match(version) != negated);
    }
    crate::deps::version::satisfies(eco, p, version) == Some(true)
}
