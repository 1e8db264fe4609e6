//! Planning over hand-built lookups, with a fixed clock.

use super::*;
use crate::deps::renovate;
use crate::deps::{Advisory, Release};

const NOW: u64 = 1_764_460_800_000; // 2025-11-30T00:00:00Z
const DAY: u64 = DAY_MS;

fn dep(name: &str, eco: Ecosystem, current: &str) -> Dependency {
    Dependency {
        name: name.into(),
        ecosystem: eco,
        current: current.into(),
        requirement: Some(format!("^{current}")),
        manifest: "package.json".into(),
        lockfile: Some("package-lock.json".into()),
        dev: false,
        indirect: false,
    }
}

/// Releases as (version, days ago; None: unknown).
fn info(rels: &[(&str, Option<u64>)]) -> Result<PackageInfo, String> {
    Ok(PackageInfo {
        releases: rels
            .iter()
            .map(|(v, d)| Release {
                version: v.to_string(),
                released_ms: d.map(|d| NOW - d * DAY),
                yanked: false,
            })
            .collect(),
        repository: Some("git+https://github.com/lodash/lodash.git".into()),
        changelog_url: None,
    })
}

struct World {
    deps: Vec<Dependency>,
    infos: BTreeMap<(Ecosystem, String), Result<PackageInfo, String>>,
    rules: RenovateConfig,
    days: u32,
}

impl World {
    fn new() -> Self {
        let lodash = info(&[
            ("4.17.20", Some(900)),
            ("4.17.21", Some(800)),
            ("4.18.0", Some(10)),
            ("5.0.0", Some(5)),
            ("5.1.0-beta.1", Some(1)),
        ]);
        let react = info(&[
            ("18.2.0", Some(700)),
            ("18.3.1", Some(2)),
            ("19.0.0", Some(60)),
        ]);
        let mut infos = BTreeMap::new();
        infos.insert((Ecosystem::Npm, "lodash".to_string()), lodash);
        infos.insert((Ecosystem::Npm, "react".to_string()), react);
        Self {
            deps: vec![
                dep("lodash", Ecosystem::Npm, "4.17.20"),
                dep("react", Ecosystem::Npm, "18.2.0"),
            ],
            infos,
            rules: RenovateConfig::default(),
            days: 0,
        }
    }

    fn plan(&self, request: &DepsRequest) -> Plan {
        plan(&PlanInput {
            deps: &self.deps,
            infos: &self.infos,
            rules: &self.rules,
            request,
            min_release_age_days: self.days,
            now_ms: NOW,
        })
    }
}

fn summary(p: &Plan) -> Vec<(String, Vec<String>)> {
    p.groups
        .iter()
        .map(|g| {
            (
                g.slug.clone(),
                g.updates
                    .iter()
                    .map(|u| format!("{}@{}", u.dep.name, u.to))
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn default_is_patch_and_minor_one_group_per_package() {
    let p = World::new().plan(&DepsRequest::default());
    assert_eq!(
        summary(&p),
        [
            ("npm-lodash".to_string(), vec!["lodash@4.18.0".to_string()]),
            ("npm-react".to_string(), vec!["react@18.3.1".to_string()]),
        ]
    );
    let u = &p.groups[0].updates[0];
    assert_eq!(u.update_type, UpdateType::Minor);
    assert_eq!(
        u.changelog_url.as_deref(),
        Some("https://github.com/lodash/lodash/compare/v4.17.20...v4.18.0")
    );
    assert!(p.skipped.is_empty(), "{:?}", p.skipped);
}

#[test]
fn naming_a_package_allows_its_major_and_majors_group_apart() {
    let p = World::new().plan(&DepsRequest {
        only: vec!["lodash".into()],
        ..Default::default()
    });
    assert_eq!(
        summary(&p),
        [(
            "npm-lodash-major".to_string(),
            vec!["lodash@5.0.0".to_string()]
        )]
    );
    assert_eq!(p.groups[0].title, "lodash (major)");
    let p = World::new().plan(&DepsRequest {
        only: vec!["left-pad".into()],
        ..Default::default()
    });
    assert!(p.groups.is_empty());
    assert_eq!(
        p.skipped[0].reason,
        "left-pad is not a dependency of this repo (no manifest declares it)"
    );
}

#[test]
fn cooldown_takes_the_newest_old_enough_release_and_names_the_held_one() {
    let mut w = World::new();
    w.days = 3;
    let p = w.plan(&DepsRequest::default());
    assert_eq!(
        summary(&p).len(),
        1,
        "react 18.3.1 is 2 days old: {:?}",
        summary(&p)
    );
    assert_eq!(p.skipped.len(), 1);
    assert_eq!(p.skipped[0].name, "react");
    assert_eq!(p.skipped[0].version, "18.3.1");
    assert_eq!(
        p.skipped[0].reason,
        "released 2 days ago; the minimum release age is 3 days"
    );

    // A rule's minimumReleaseAge raises the policy floor for what it matches.
    w.days = 0;
    w.rules = renovate::parse(
        "renovate.json",
        r#"{"packageRules": [{"matchPackageNames": ["lodash"], "minimumReleaseAge": "2 weeks"}]}"#,
    )
    .unwrap();
    let p = w.plan(&DepsRequest::default());
    assert_eq!(summary(&p)[0].1, ["lodash@4.17.21"]);
    assert_eq!(
        p.skipped[0].reason,
        "released 10 days ago; the minimum release age is 14 days"
    );
}

#[test]
fn unknown_release_time_is_held_when_a_cooldown_applies() {
    let mut w = World::new();
    w.infos
        .insert((Ecosystem::Npm, "react".into()), info(&[("18.3.1", None)]));
    w.days = 1;
    let p = w.plan(&DepsRequest::default());
    let r = p.skipped.iter().find(|s| s.name == "react").unwrap();
    assert!(r.reason.starts_with("release time unknown"), "{}", r.reason);
    w.days = 0;
    assert_eq!(
        summary(&w.plan(&DepsRequest::default()))[1].1,
        ["react@18.3.1"]
    );
}

#[test]
fn an_exact_version_that_does_not_exist_is_skipped() {
    let w = World::new();
    let ask = |v: &str| {
        w.plan(&DepsRequest {
            only: vec!["lodash".into()],
            version: Some(v.into()),
            ..Default::default()
        })
    };
    let p = ask("4.17.21");
    assert_eq!(
        summary(&p),
        [("npm-lodash".to_string(), vec!["lodash@4.17.21".to_string()])]
    );
    let p = ask("9.9.9");
    assert!(p.groups.is_empty());
    assert_eq!(
        p.skipped[0].reason,
        "version 9.9.9 of lodash does not exist in the npm registry"
    );
    assert_eq!(p.skipped[0].version, "9.9.9");
    let p = ask("4.17.20");
    assert_eq!(
        p.skipped[0].reason,
        "4.17.20 is not newer than the current 4.17.20 of lodash"
    );
}

#[test]
fn a_failed_lookup_is_skipped_with_its_message() {
    let mut w = World::new();
    w.infos.insert(
        (Ecosystem::Npm, "react".into()),
        Err("package `react` does not exist on the npm registry".into()),
    );
    let p = w.plan(&DepsRequest::default());
    assert_eq!(p.groups.len(), 1);
    assert_eq!(
        p.skipped[0].reason,
        "package `react` does not exist on the npm registry"
    );
}

#[test]
fn group_name_rules_merge_and_majors_split_with_automerge_from_rules() {
    let mut w = World::new();
    w.rules = renovate::parse(
        "renovate.json",
        r#"{"automerge": true, "packageRules": [
            {"matchPackageNames": ["*"], "groupName": "Everything"},
            {"matchUpdateTypes": ["major"], "automerge": false}]}"#,
    )
    .unwrap();
    let p = w.plan(&DepsRequest {
        update_types: vec![UpdateType::Minor, UpdateType::Major],
        ..Default::default()
    });
    assert_eq!(
        summary(&p),
        [(
            "everything-major".to_string(),
            vec!["lodash@5.0.0".to_string(), "react@19.0.0".to_string()]
        ),]
    );
    assert_eq!(p.groups[0].automerge, Some(false));
    let p = w.plan(&DepsRequest::default());
    assert_eq!(summary(&p)[0].0, "everything");
    assert_eq!(p.groups[0].automerge, Some(true));
    assert_eq!(p.groups[0].updates.len(), 2);
}

#[test]
fn ignore_deps_and_allowed_versions() {
    let mut w = World::new();
    w.rules = renovate::parse(
        "renovate.json",
        r#"{"ignoreDeps": ["react"], "packageRules": [{"matchPackageNames": ["lodash"], "allowedVersions": "<4.18"}]}"#,
    )
    .unwrap();
    let p = w.plan(&DepsRequest::default());
    assert_eq!(
        summary(&p),
        [("npm-lodash".to_string(), vec!["lodash@4.17.21".to_string()])]
    );
    assert!(p.skipped.is_empty(), "ignored and not asked for: silent");
    let p = w.plan(&DepsRequest {
        only: vec!["react".into()],
        ..Default::default()
    });
    assert_eq!(
        p.skipped[0].reason,
        "react is in `ignoreDeps` of renovate.json"
    );
}

#[test]
fn an_advisory_takes_the_first_fixed_release_past_the_cooldown() {
    let mut w = World::new();
    w.days = 30;
    let adv = Advisory {
        id: "GHSA-35jh-r3h4-6jhm".into(),
        summary: "Command injection in lodash".into(),
        fixed: "4.17.21".into(),
        url: None,
    };
    let p = w.plan(&DepsRequest {
        advisory: Some(AdvisoryInput::Known {
            advisory: adv.clone(),
            package: "lodash".into(),
            ecosystem: Ecosystem::Npm,
        }),
        ..Default::default()
    });
    assert_eq!(
        summary(&p),
        [(
            "security-ghsa-35jh-r3h4-6jhm".to_string(),
            vec!["lodash@4.17.21".to_string()]
        )]
    );
    assert_eq!(p.groups[0].updates[0].advisory.as_ref(), Some(&adv));

    w.deps[0].current = "4.17.21".into();
    let p = w.plan(&DepsRequest {
        advisory: Some(AdvisoryInput::Known {
            advisory: adv,
            package: "lodash".into(),
            ecosystem: Ecosystem::Npm,
        }),
        ..Default::default()
    });
    assert!(p.groups.is_empty());
    assert!(
        p.skipped[0].reason.starts_with("already at 4.17.21"),
        "{:?}",
        p.skipped
    );
}

#[test]
fn lockfile_maintenance_stays_within_requirements() {
    let w = World::new();
    let p = w.plan(&DepsRequest {
        lockfile_maintenance: true,
        ..Default::default()
    });
    assert_eq!(
        summary(&p),
        [(
            "lock-file-maintenance".to_string(),
            vec!["lodash@4.18.0".to_string(), "react@18.3.1".to_string()]
        )]
    );
}

#[test]
fn rerun_of_a_group_keeps_only_that_group() {
    let p = World::new().plan(&DepsRequest {
        group: Some("npm-react".into()),
        ..Default::default()
    });
    assert_eq!(
        summary(&p),
        [("npm-react".to_string(), vec!["react@18.3.1".to_string()])]
    );
}

#[test]
fn slugs_and_repository_forms() {
    assert_eq!(slugify("npm-@types/node"), "npm-types-node");
    assert_eq!(slugify("Lint & Types!"), "lint-types");
    assert_eq!(
        slugify("go-github.com/Foo/bar.v2"),
        "go-github-com-foo-bar-v2"
    );
    for u in [
        "git+https://github.com/o/r.git",
        "git://github.com/o/r.git",
        "ssh://git@github.com/o/r",
        "github:o/r",
        "https://github.com/o/r/tree/main/packages/x",
        "git@github.com:o/r.git",
    ] {
        assert_eq!(github_repo(u).as_deref(), Some("o/r"), "{u}");
    }
    assert_eq!(github_repo("https://gitlab.com/o/r"), None);
}

#[test]
fn a_disabled_config_proposes_nothing_and_says_so() {
    let mut w = World::new();
    w.rules = renovate::parse("renovate.json", r#"{"enabled": false}"#).unwrap();
    let p = w.plan(&DepsRequest::default());
    assert!(p.groups.is_empty());
    assert_eq!(
        p.warnings,
        ["renovate.json sets `enabled: false`; nothing is updated"]
    );
    let p = w.plan(&DepsRequest {
        only: vec!["lodash".into()],
        ..Default::default()
    });
    assert_eq!(
        p.skipped[0].reason,
        "renovate.json sets `enabled: false`; nothing is updated"
    );
}

#[test]
fn rerun_of_a_major_group_asks_for_majors_again() {
    let p = World::new().plan(&DepsRequest {
        group: Some("npm-lodash-major".into()),
        ..Default::default()
    });
    assert_eq!(
        summary(&p),
        [(
            "npm-lodash-major".to_string(),
            vec!["lodash@5.0.0".to_string()]
        )]
    );
}
