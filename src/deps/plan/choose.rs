//! Choosing the version for one dependency: the newest allowed, an exact one, the first
//! that fixes an advisory, or the newest within the manifest's requirement.

use super::{
    DAY_MS, GroupKey, PlanInput, Planned, age, changelog_url, disabled_reason, skip, slugify,
};
use crate::deps::renovate::Settings;
use crate::deps::{
    Advisory, Dependency, DepsRequest, PackageInfo, Release, Skipped, Update, UpdateType, version,
};

/// The request's version and update-type wishes, checked once.
pub(super) struct Wanted {
    /// `request.version`, kept only when exactly one package is named.
    pub version: Option<String>,
    types: Vec<UpdateType>,
}

impl Wanted {
    pub fn new(req: &DepsRequest, warnings: &mut Vec<String>) -> Self {
        let version = match (&req.version, req.only.len()) {
            (Some(v), 1) => Some(v.clone()),
            (Some(v), n) => {
                warnings.push(format!(
                    "version {v} was asked for {n} packages; a version needs exactly one package named, so it is ignored"
                ));
                None
            }
            (None, _) => None,
        };
        Self {
            version,
            types: req.update_types.clone(),
        }
    }

    /// The update types allowed for a package (`named`: the request names it).
    pub fn types(&self, named: bool) -> Vec<UpdateType> {
        if !self.types.is_empty() {
            return self.types.clone();
        }
        let mut t = vec![UpdateType::Patch, UpdateType::Minor];
        if named {
            t.push(UpdateType::Major);
        }
        t
    }
}

/// One dependency being decided.
pub(super) struct Ctx<'a> {
    pub input: &'a PlanInput<'a>,
    pub dep: &'a Dependency,
    pub info: &'a PackageInfo,
    /// The request names this package (or its advisory does): say why nothing is proposed.
    pub explicit: bool,
}

/// What deciding one dependency gave.
#[derive(Default)]
pub(super) struct Choice {
    pub planned: Vec<Planned>,
    pub skipped: Vec<Skipped>,
}

impl Ctx<'_> {
    fn eco(&self) -> crate::deps::Ecosystem {
        self.dep.ecosystem
    }

    /// Non-yanked, non-prerelease releases newer than `current`, newest first.
    fn newer(&self) -> Vec<(&Release, UpdateType)> {
        let mut v: Vec<(&Release, UpdateType)> = self
            .info
            .releases
            .iter()
            .filter(|r| !r.yanked && !version::is_prerelease(self.eco(), &r.version))
            .filter_map(|r| {
                Some((
                    r,
                    version::update_type(self.eco(), &self.dep.current, &r.version)?,
                ))
            })
            .collect();
        v.sort_by(|(a, _), (b, _)| {
            version::cmp(self.eco(), &b.version, &a.version).unwrap_or(std::cmp::Ordering::Equal)
        });
        v
    }

    /// The cooldown for an update under `s`, in ms.
    fn cooldown_ms(&self, s: &Settings) -> u64 {
        let policy = u64::from(self.input.min_release_age_days) * DAY_MS;
        policy.max(s.minimum_release_age_ms.unwrap_or(0))
    }

    /// `Err(reason)` when `r` is younger than `limit_ms` or its age is unknown.
    fn old_enough(&self, r: &Release, limit_ms: u64) -> Result<(), String> {
        if limit_ms == 0 {
            return Ok(());
        }
        let limit = age(limit_ms);
        match r.released_ms {
            None => Err(format!(
                "release time unknown (the registry does not say); the minimum release age is {limit}"
            )),
            Some(t) => {
                let a = self.input.now_ms.saturating_sub(t);
                if a >= limit_ms {
                    Ok(())
                } else {
                    Err(format!(
                        "released {} ago; the minimum release age is {limit}",
                        age(a)
                    ))
                }
            }
        }
    }

    fn allowed(&self, s: &Settings, v: &str) -> bool {
        s.allowed_versions
            .as_deref()
            .is_none_or(|av| crate::deps::renovate::version_matches(self.eco(), av, v))
    }

    fn update(&self, r: &Release, t: UpdateType, advisory: Option<&Advisory>) -> Update {
        Update {
            dep: self.dep.clone(),
            to: r.version.clone(),
            update_type: t,
            released_ms: r.released_ms,
            changelog_url: changelog_url(self.info, self.eco(), &self.dep.current, &r.version),
            advisory: advisory.cloned(),
        }
    }

    fn by_rules(&self, update: Update, s: &Settings) -> Planned {
        let group = match &s.group_name {
            Some(name) => GroupKey::Named(
                name.clone(),
                slugify(s.group_slug.as_deref().unwrap_or(name)),
            ),
            None => GroupKey::Package,
        };
        Planned {
            update,
            group,
            automerge: s.automerge,
        }
    }

    fn settings(&self, t: UpdateType) -> Settings {
        self.input.rules.settings(self.dep, Some(t))
    }

    /// The newest release of an allowed type that the rules allow and that is old enough.
    pub fn newest(&self, types: &[UpdateType]) -> Choice {
        let mut out = Choice::default();
        let mut held: Option<Skipped> = None;
        for (r, t) in self.newer() {
            let s = self.settings(t);
            if !types.contains(&t) || !s.enabled || !self.allowed(&s, &r.version) {
                continue;
            }
            match self.old_enough(r, self.cooldown_ms(&s)) {
                Ok(()) => {
                    out.planned.push(self.by_rules(self.update(r, t, None), &s));
                    break;
                }
                Err(reason) => {
                    held.get_or_insert_with(|| skip(self.dep, &r.version, &reason));
                }
            }
        }
        out.skipped.extend(held);
        if self.explicit && out.planned.is_empty() && out.skipped.is_empty() {
            let kinds: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
            out.skipped.push(skip(
                self.dep,
                "",
                &format!(
                    "no newer {} release of {} than {} that the rules allow",
                    kinds.join("/"),
                    self.dep.name,
                    self.dep.current
                ),
            ));
        }
        out
    }

    /// Exactly version `v`, or a `Skipped` saying why not.
    pub fn exact(&self, v: &str) -> Choice {
        let mut out = Choice::default();
        let eco = self.eco();
        let found = self.info.releases.iter().find(|r| {
            r.version == v || version::cmp(eco, &r.version, v) == Some(std::cmp::Ordering::Equal)
        });
        let reason = match found {
            None => Some(format!(
                "version {v} of {} does not exist in the {eco} registry",
                self.dep.name
            )),
            Some(r) if r.yanked => Some(format!(
                "version {v} of {} is yanked or deprecated",
                self.dep.name
            )),
            Some(r) => match version::update_type(eco, &self.dep.current, &r.version) {
                None => Some(format!(
                    "{v} is not newer than the current {} of {}",
                    self.dep.current, self.dep.name
                )),
                Some(t) => {
                    let s = self.settings(t);
                    if !s.enabled {
                        Some(disabled_reason(self.input.rules, &self.dep.name))
                    } else {
                        match self.old_enough(r, self.cooldown_ms(&s)) {
                            Ok(()) => {
                                out.planned.push(self.by_rules(self.update(r, t, None), &s));
                                None
                            }
                            Err(reason) => Some(reason),
                        }
                    }
                }
            },
        };
        out.skipped.extend(reason.map(|r| skip(self.dep, v, &r)));
        out
    }

    /// The smallest release at or above the advisory's first fixed version; no cooldown.
    pub fn advisory(&self, adv: &Advisory) -> Choice {
        let mut out = Choice::default();
        let eco = self.eco();
        let at_least = |v: &str| {
            version::cmp(eco, v, &adv.fixed).is_some_and(|o| o != std::cmp::Ordering::Less)
        };
        if at_least(&self.dep.current) {
            out.skipped.push(skip(
                self.dep,
                &self.dep.current,
                &format!(
                    "already at {}, which includes the fix for {} (fixed in {})",
                    self.dep.current, adv.id, adv.fixed
                ),
            ));
            return out;
        }
        let mut fixes: Vec<(&Release, UpdateType)> = self
            .info
            .releases
            .iter()
            .filter(|r| !r.yanked && at_least(&r.version))
            .filter(|r| !version::is_prerelease(eco, &r.version) || r.version == adv.fixed)
            .filter_map(|r| Some((r, version::update_type(eco, &self.dep.current, &r.version)?)))
            .collect();
        fixes.sort_by(|(a, _), (b, _)| {
            version::cmp(eco, &a.version, &b.version).unwrap_or(std::cmp::Ordering::Equal)
        });
        let Some((r, t)) = fixes.first() else {
            out.skipped.push(skip(
                self.dep,
                &adv.fixed,
                &format!(
                    "no release at or above {} (the first that fixes {}) exists in the {eco} registry",
                    adv.fixed, adv.id
                ),
            ));
            return out;
        };
        let s = self.settings(*t);
        out.planned.push(Planned {
            update: self.update(r, *t, Some(adv)),
            group: GroupKey::Fixed(
                format!("security fix {} ({})", adv.id, self.dep.name),
                format!("security-{}", slugify(&adv.id)),
            ),
            automerge: s.automerge,
        });
        out
    }

    /// The newest release the manifest's requirement already allows (the lockfile moves,
    /// the manifest does not). Dependencies without a lockfile or a requirement, or whose
    /// requirement is not understood, are left alone.
    pub fn lockfile(&self) -> Choice {
        let mut out = Choice::default();
        let (Some(_), Some(req)) = (&self.dep.lockfile, &self.dep.requirement) else {
            return out;
        };
        let mut held: Option<Skipped> = None;
        for (r, t) in self.newer() {
            if version::satisfies(self.eco(), req, &r.version) != Some(true) {
                continue;
            }
            let s = self.settings(t);
            if !s.enabled {
                continue;
            }
            match self.old_enough(r, self.cooldown_ms(&s)) {
                Ok(()) => {
                    out.planned.push(Planned {
                        update: self.update(r, t, None),
                        group: GroupKey::Fixed(
                            "lock file maintenance".into(),
                            "lock-file-maintenance".into(),
                        ),
                        automerge: s.automerge,
                    });
                    break;
                }
                Err(reason) => {
                    held.get_or_insert_with(|| skip(self.dep, &r.version, &reason));
                }
            }
        }
        out.skipped.extend(held);
        out
    }
}
