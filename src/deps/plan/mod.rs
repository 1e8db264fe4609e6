//! From what a repo depends on, what its registries hold and what its rules allow, to the
//! groups of updates to propose (one branch and PR each) and the updates held back.
//! A pure function of its input ([`plan`]); the clock comes in as `now_ms`.
//!
//! Grouping follows Renovate's defaults: one group per package, its major updates apart
//! from its minor and patch ones (`<eco>-<name>` and `<eco>-<name>-major`); a `groupName`
//! rule merges packages into one group (slug: `groupSlug`, else the slugified name), and
//! a major in such a group still goes to its own `<slug>-major` group, as Renovate puts
//! grouped majors on their own `major-<slug>` branch whenever `separateMajorMinor` is on
//! (the default), whether or not the rule named `major`. `separateMajorMinor: false`
//! keeps them together.

mod choose;

use std::collections::BTreeMap;

use super::renovate::RenovateConfig;
use super::{
    AdvisoryInput, Dependency, DepsRequest, Ecosystem, Group, PackageInfo, Skipped, Update,
    UpdateType,
};

/// Everything [`plan`] decides from.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    /// The repo's dependencies (`crate::deps::scan::scan`).
    pub deps: &'a [Dependency],
    /// Registry lookups by (ecosystem, package name); `Err` holds the lookup's message
    /// (`package \`nope\` does not exist on the npm registry`), shown as is.
    pub infos: &'a BTreeMap<(Ecosystem, String), Result<PackageInfo, String>>,
    /// The repo's Renovate rules (`Default` when it has none).
    pub rules: &'a RenovateConfig,
    pub request: &'a DepsRequest,
    /// `[policy] min_release_age_days`: the cooldown floor; a rule's `minimumReleaseAge`
    /// may raise it, never lower it.
    pub min_release_age_days: u32,
    /// Now, unix ms.
    pub now_ms: u64,
}

/// What to propose and what not.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Sorted by slug; updates in a group by (ecosystem, name, manifest).
    pub groups: Vec<Group>,
    /// Updates held back, with the reason; sorted by (name, version), no duplicates.
    pub skipped: Vec<Skipped>,
    /// Request-level notes (`version given for two packages; ignored`).
    pub warnings: Vec<String>,
}

const DAY_MS: u64 = 86_400_000;

/// Decides the plan. Rules, in order:
/// - `ignoreDeps` and rules with `enabled: false` exclude a package (a `Skipped` only when
///   the request names it); `request.only` keeps the named packages (exact names, PyPI
///   names normalized), and a named package that no manifest declares is `Skipped`;
/// - allowed update types: `request.update_types`, else patch and minor, plus major for a
///   package that `request.only` names;
/// - the candidate is the highest allowed release newer than `current` that is neither
///   yanked nor a prerelease, passes the rules' `allowedVersions`, and is at least the
///   cooldown old: max(`min_release_age_days`, the matching rule's `minimumReleaseAge`).
///   A newer release held back by the cooldown is also `Skipped` with its age; a release
///   whose time is unknown counts as too young when the cooldown is not zero;
/// - `request.version` (with exactly one `only` package) asks for exactly that version;
/// - `request.advisory` (`Known`) bumps its package to the smallest release at or above
///   the advisory's `fixed`, with no cooldown, in group `security-<id>`;
/// - `request.lockfile_maintenance` gives one group `lock-file-maintenance` holding, per
///   locked dependency, the newest release its manifest requirement already allows;
/// - `request.group` keeps only the group with that slug (a `-major` slug allows majors).
pub fn plan(input: &PlanInput) -> Plan {
    let mut out = Plan::default();
    let mut planned: Vec<Planned> = Vec::new();
    let req = input.request;
    let wanted = choose::Wanted::new(req, &mut out.warnings);

    let mut named_found = vec![false; req.only.len()];
    let advisory = match &req.advisory {
        Some(AdvisoryInput::Known {
            advisory,
            package,
            ecosystem,
        }) => Some((advisory, package.as_str(), *ecosystem)),
        Some(AdvisoryInput::Ghsa { id }) => {
            out.warnings.push(format!(
                "advisory {id} has not been looked up yet; resolve it to its package and fixed version first"
            ));
            return out;
        }
        None => None,
    };
    let mut advisory_found = false;
    // A rerun of a major group (`npm-lodash-major`) asks for majors again.
    let major_group = req.group.as_deref().is_some_and(|g| g.ends_with("-major"));
    if !input.rules.enabled {
        out.warnings.push(disabled_reason(input.rules, ""));
    }

    for dep in input.deps {
        let named = req.only.iter().position(|n| same_name(dep, n));
        if let Some(i) = named {
            named_found[i] = true;
        }
        if !req.only.is_empty() && named.is_none() {
            continue;
        }
        if let Some((_, package, eco)) = advisory {
            if dep.ecosystem != eco || !same_name(dep, package) {
                continue;
            }
            advisory_found = true;
        }
        let explicit = named.is_some() || advisory.is_some();
        if !input.rules.settings(dep, None).enabled {
            if explicit {
                out.skipped
                    .push(skip(dep, "", &disabled_reason(input.rules, &dep.name)));
            }
            continue;
        }
        let info = match input.infos.get(&(dep.ecosystem, dep.name.clone())) {
            Some(Ok(info)) => info,
            Some(Err(msg)) => {
                out.skipped.push(skip(dep, "", msg));
                continue;
            }
            None => {
                out.skipped.push(skip(
                    dep,
                    "",
                    &format!(
                        "{} was not looked up on the {} registry",
                        dep.name, dep.ecosystem
                    ),
                ));
                continue;
            }
        };
        let ctx = choose::Ctx {
            input,
            dep,
            info,
            explicit,
        };
        let result = if let Some((adv, _, _)) = advisory {
            ctx.advisory(adv)
        } else if req.lockfile_maintenance {
            ctx.lockfile()
        } else if let Some(v) = wanted.version.as_deref() {
            ctx.exact(v)
        } else {
            ctx.newest(&wanted.types(named.is_some() || major_group))
        };
        out.skipped.extend(result.skipped);
        planned.extend(result.planned);
    }

    for (i, n) in req.only.iter().enumerate() {
        if !named_found[i] {
            out.skipped.push(Skipped {
                name: n.clone(),
                version: req.version.clone().unwrap_or_default(),
                reason: format!("{n} is not a dependency of this repo (no manifest declares it)"),
            });
        }
    }
    if let Some((adv, package, eco)) = advisory
        && !advisory_found
    {
        out.skipped.push(Skipped {
            name: package.to_string(),
            version: adv.fixed.clone(),
            reason: format!(
                "{package} ({eco}) is not a dependency of this repo, so {} does not affect it",
                adv.id
            ),
        });
    }

    out.groups = group(planned, input.rules.separate_major_minor);
    if let Some(slug) = &req.group {
        out.groups.retain(|g| &g.slug == slug);
        if out.groups.is_empty() {
            out.warnings
                .push(format!("group {slug} has no update to propose now"));
        }
    }
    out.skipped
        .sort_by(|a, b| (&a.name, &a.version, &a.reason).cmp(&(&b.name, &b.version, &b.reason)));
    out.skipped.dedup();
    out
}

/// An update with where it goes, before grouping.
struct Planned {
    update: Update,
    /// `Some((name, slug))` from a `groupName` rule, or a fixed group (security, lockfile).
    group: GroupKey,
    automerge: Option<bool>,
}

enum GroupKey {
    /// Renovate's default: the package alone.
    Package,
    /// A `groupName` rule: (title, slug).
    Named(String, String),
    /// Not split by update type: security fixes and lockfile maintenance.
    Fixed(String, String),
}

fn group(planned: Vec<Planned>, separate_major: bool) -> Vec<Group> {
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for p in planned {
        let major = p.update.update_type == UpdateType::Major && separate_major;
        let (slug, title) = match &p.group {
            GroupKey::Package => (
                package_slug(p.update.dep.ecosystem, &p.update.dep.name),
                p.update.dep.name.clone(),
            ),
            GroupKey::Named(title, slug) => (slug.clone(), title.clone()),
            GroupKey::Fixed(title, slug) => {
                let g = groups
                    .entry(slug.clone())
                    .or_insert_with(|| empty(slug, title));
                add(g, p);
                continue;
            }
        };
        let (slug, title) = if major {
            (format!("{slug}-major"), format!("{title} (major)"))
        } else {
            (slug, title)
        };
        let g = groups
            .entry(slug.clone())
            .or_insert_with(|| empty(&slug, &title));
        add(g, p);
    }
    let mut out: Vec<Group> = groups.into_values().collect();
    for g in &mut out {
        g.updates.sort_by(|a, b| {
            (a.dep.ecosystem, &a.dep.name, &a.dep.manifest).cmp(&(
                b.dep.ecosystem,
                &b.dep.name,
                &b.dep.manifest,
            ))
        });
    }
    out
}

fn empty(slug: &str, title: &str) -> Group {
    Group {
        slug: slug.to_string(),
        title: title.to_string(),
        updates: Vec::new(),
        automerge: Some(true),
    }
}

/// A group auto-merges only when every update's rules say so: `Some(false)` when any says
/// no, `None` when none says no but some say nothing.
fn add(g: &mut Group, p: Planned) {
    g.automerge = match (g.automerge, p.automerge) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    };
    g.updates.push(p.update);
}

/// The slug of a package's own group: `<eco>-<name>` slugified, plus 6 hex characters of a
/// SHA-256 of the name when slugifying changed it, so two packages never share a branch
/// (`@slipway/toy` and `slipway-toy` would both be `slipway-toy`). PyPI names are compared
/// as PEP 503 normalises them and crate names with `_` as `-`, so spellings of one package
/// share their slug.
pub fn package_slug(eco: Ecosystem, name: &str) -> String {
    use sha2::Digest;
    let name = match eco {
        Ecosystem::Pypi => super::scan::normalize_pypi(name),
        // crates.io treats `-` and `_` as one name.
        Ecosystem::Cargo => name.replace('_', "-"),
        _ => name.to_string(),
    };
    let slug = slugify(&name);
    let base = slugify(&format!("{eco}-{name}"));
    if slug == name {
        base
    } else {
        let digest = sha2::Sha256::digest(name.as_bytes());
        format!("{base}-{}", &hex::encode(digest)[..6])
    }
}

/// `[a-z0-9-]`, runs of anything else as one `-`, no leading or trailing `-`
/// (`@types/node` → `types-node`).
pub fn slugify(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// Whether `dep` is the package `name` (PyPI names compared as PEP 503 normalises them).
pub fn same_name(dep: &Dependency, name: &str) -> bool {
    match dep.ecosystem {
        Ecosystem::Pypi => {
            super::scan::normalize_pypi(name) == super::scan::normalize_pypi(&dep.name)
        }
        _ => dep.name == name,
    }
}

fn disabled_reason(rules: &RenovateConfig, name: &str) -> String {
    let file = rules.file.as_deref().unwrap_or("the Renovate config");
    if !rules.enabled {
        format!("{file} sets `enabled: false`; nothing is updated")
    } else if rules.is_ignored(name) {
        format!("{name} is in `ignoreDeps` of {file}")
    } else {
        format!("a packageRules entry in {file} disables updates of {name}")
    }
}

fn skip(dep: &Dependency, version: &str, reason: &str) -> Skipped {
    Skipped {
        name: dep.name.clone(),
        version: version.to_string(),
        reason: reason.to_string(),
    }
}

/// `n days`/`n hours`, for reasons.
fn age(ms: u64) -> String {
    if ms >= DAY_MS {
        let d = ms / DAY_MS;
        format!("{d} day{}", if d == 1 { "" } else { "s" })
    } else {
        let h = ms / 3_600_000;
        format!("{h} hour{}", if h == 1 { "" } else { "s" })
    }
}

/// The changelog page, else a GitHub compare view between the two tags
/// (`https://github.com/o/r/compare/v1.0.0...v2.0.0`; Go versions keep their own `v`).
pub fn changelog_url(info: &PackageInfo, eco: Ecosystem, from: &str, to: &str) -> Option<String> {
    if let Some(c) = &info.changelog_url {
        return Some(c.clone());
    }
    let repo = github_repo(info.repository.as_deref()?)?;
    let tag = |v: &str| {
        if eco == Ecosystem::Go {
            v.to_string()
        } else {
            format!("v{v}")
        }
    };
    Some(format!(
        "https://github.com/{repo}/compare/{}...{}",
        tag(from),
        tag(to)
    ))
}

/// `owner/name` of a GitHub repository URL in any of the forms registries carry
/// (`git+https://github.com/o/r.git`, `git://…`, `ssh://git@github.com/o/r`,
/// `github:o/r`, `https://github.com/o/r/tree/main/pkg`).
fn github_repo(url: &str) -> Option<String> {
    let u = url.trim();
    let rest = u
        .strip_prefix("github:")
        .or_else(|| u.split_once("github.com/").map(|(_, r)| r))
        .or_else(|| u.split_once("github.com:").map(|(_, r)| r))?;
    let mut parts = rest.split(['/', '#', '?']).filter(|p| !p.is_empty());
    let owner = parts.next()?;
    let name = parts.next()?.trim_end_matches(".git");
    (!owner.is_empty() && !name.is_empty()).then(|| format!("{owner}/{name}"))
}

#[cfg(test)]
mod tests;
