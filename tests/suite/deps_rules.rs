//! The dependency lane's pure half on real files from real public projects
//! (`tests/fixtures/deps/README.md` says where each came from): what each repo depends on,
//! what its Renovate config says, and the plan over real crates.io release data (the
//! crates.io index entries cargo keeps in `~/.cargo/registry/index/*/.cache`, with their
//! `yanked` flags and `pubtime`s).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use slipway::deps::plan::{PlanInput, plan};
use slipway::deps::renovate::{self, RenovateConfig};
use slipway::deps::scan::{Scan, scan};
use slipway::deps::{
    Dependency, DepsRequest, Ecosystem, PackageInfo, Release, UpdateType, version,
};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/deps")
        .join(name)
}

fn by_manifest(s: &Scan) -> BTreeMap<&str, usize> {
    let mut m = BTreeMap::new();
    for d in &s.deps {
        *m.entry(d.manifest.as_str()).or_default() += 1;
    }
    m
}

fn find<'a>(s: &'a Scan, manifest: &str, name: &str) -> &'a Dependency {
    s.deps
        .iter()
        .find(|d| d.manifest == manifest && d.name == name)
        .unwrap_or_else(|| panic!("{name} not found in {manifest}"))
}

/// Every locked version satisfies the requirement its manifest wrote: the scan picked the
/// lockfile entry that belongs to the declaration, and the requirement grammar is read.
fn locked_versions_satisfy_requirements(s: &Scan) {
    for d in &s.deps {
        if let Some(req) = &d.requirement {
            assert_eq!(
                version::satisfies(d.ecosystem, req, &d.current),
                Some(true),
                "{} {} does not satisfy {req} ({})",
                d.name,
                d.current,
                d.manifest
            );
        }
    }
}

#[test]
fn rover_cargo_workspace_reads_every_member_and_cargo_lock() {
    let s = scan(&fixture("rover@0.41.0")).unwrap();
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    assert!(s.deps.iter().all(|d| d.ecosystem == Ecosystem::Cargo
        && d.lockfile.as_deref() == Some("Cargo.lock")));
    let m = by_manifest(&s);
    // Most members inherit every dependency (`{ workspace = true }`), which is listed once
    // with [workspace.dependencies]; these four declare some of their own.
    assert_eq!(
        m.keys().copied().collect::<Vec<_>>(),
        [
            "Cargo.toml",
            "crates/rover-http/Cargo.toml",
            "installers/binstall/Cargo.toml",
            "regressions/Cargo.toml"
        ],
    );

    let anyhow = find(&s, "Cargo.toml", "anyhow");
    assert_eq!(
        (anyhow.current.as_str(), anyhow.requirement.as_deref()),
        ("1.0.104", Some("1"))
    );
    let pinned = find(&s, "Cargo.toml", "apollo-federation-types");
    assert_eq!(
        (pinned.current.as_str(), pinned.requirement.as_deref()),
        ("0.17.8", Some("=0.17.8"))
    );
    // Workspace members depend on each other by path; those are not registry packages.
    assert!(
        !s.deps
            .iter()
            .any(|d| d.name == "houston" || d.name == "rover-client")
    );
    // `{ workspace = true }` is listed once, with [workspace.dependencies].
    assert!(s.deps.iter().filter(|d| d.name == "anyhow").count() <= 2);
    assert!(s.deps.iter().any(|d| d.dev), "dev-dependencies are read");
    locked_versions_satisfy_requirements(&s);
}

#[test]
fn axios_package_lock_v2_gives_the_installed_versions() {
    let s = scan(&fixture("axios@1.7.9")).unwrap();
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    assert_eq!(s.deps.iter().filter(|d| !d.dev).count(), 3);
    assert_eq!(s.deps.len(), 60);
    let fr = find(&s, "package.json", "follow-redirects");
    assert_eq!(
        (fr.current.as_str(), fr.requirement.as_deref()),
        ("1.15.6", Some("^1.15.6"))
    );
    assert_eq!(fr.lockfile.as_deref(), Some("package-lock.json"));
    let babel = find(&s, "package.json", "@babel/core");
    assert!(babel.dev && babel.current == "7.23.9");
    locked_versions_satisfy_requirements(&s);
}

#[test]
fn pydantic_uv_workspace_reads_groups_and_skips_workspace_and_git_sources() {
    let s = scan(&fixture("pydantic@2.14.0b1")).unwrap();
    let m = by_manifest(&s);
    assert_eq!(
        m.keys().copied().collect::<Vec<_>>(),
        ["pydantic-core/pyproject.toml", "pyproject.toml"]
    );
    let te = find(&s, "pyproject.toml", "typing-extensions");
    assert_eq!(
        (te.current.as_str(), te.requirement.as_deref(), te.dev),
        ("4.15.0", Some(">=4.15.0"), false)
    );
    assert_eq!(
        te.lockfile.as_deref(),
        Some("uv.lock"),
        "the member uses the root's uv.lock"
    );
    let pytest = find(&s, "pyproject.toml", "pytest");
    assert!(pytest.dev, "[dependency-groups] are dev");
    assert!(
        !find(&s, "pyproject.toml", "email-validator").dev,
        "extras are not dev"
    );
    assert!(
        !s.deps
            .iter()
            .any(|d| d.name == "pydantic-core" || d.name == "pydantic-docs")
    );
    assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
    assert!(s.warnings[0].contains("`pydantic-core` comes from a workspace member"));
    locked_versions_satisfy_requirements(&s);
}

#[test]
fn fzf_go_mod_marks_indirect_requirements() {
    let s = scan(&fixture("fzf@0.74")).unwrap();
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    assert_eq!(s.deps.len(), 11);
    assert_eq!(s.deps.iter().filter(|d| d.indirect).count(), 4);
    let tcell = find(&s, "go.mod", "github.com/gdamore/tcell/v2");
    assert_eq!(
        (tcell.current.as_str(), tcell.lockfile.as_deref()),
        ("v2.9.0", Some("go.sum"))
    );
    let pseudo = find(&s, "go.mod", "github.com/junegunn/go-shellwords");
    assert!(
        version::is_prerelease(Ecosystem::Go, &pseudo.current),
        "a pseudo-version"
    );
    assert!(find(&s, "go.mod", "golang.org/x/text").indirect);
    locked_versions_satisfy_requirements(&s);
}

#[test]
fn rover_renovate_json5_rules_apply_and_the_rest_is_named() {
    let cfg = renovate::load(&fixture("rover@0.41.0")).unwrap();
    assert_eq!(cfg.file.as_deref(), Some(".github/renovate.json5"));
    assert!(cfg.lock_file_maintenance);
    let w = cfg.warnings.join("\n");
    for expected in [
        "extends `github>Turbo87/renovate-config//rust/updateToolchain` is a preset slipway does not fetch",
        "key `customManagers` is not supported by slipway and is ignored",
        "key `platformAutomerge` is not supported",
        "key `packageRules[2].matchCurrentValue` is a matcher slipway does not support",
    ] {
        assert!(w.contains(expected), "missing {expected:?} in\n{w}");
    }
    assert!(
        cfg.warnings
            .iter()
            .all(|l| l.starts_with(".github/renovate.json5: "))
    );

    let s = scan(&fixture("rover@0.41.0")).unwrap();
    let anyhow = find(&s, "Cargo.toml", "anyhow");
    // `:automergeStableNonMajor`: minor and patch of versions from 1.0 auto-merge.
    assert_eq!(
        cfg.settings(anyhow, Some(UpdateType::Minor)).automerge,
        Some(true)
    );
    assert_eq!(
        cfg.settings(anyhow, Some(UpdateType::Major)).automerge,
        None
    );
    let ariadne = find(&s, "Cargo.toml", "ariadne");
    assert_eq!(
        cfg.settings(ariadne, Some(UpdateType::Patch)).automerge,
        None,
        "0.6.0 is not stable"
    );
    // `matchPackageNames: ["apollographql/federation-rs"], automerge: false` (a GitHub
    // release to Renovate; slipway applies it to any package of that name), after the preset.
    let federation = Dependency {
        name: "apollographql/federation-rs".into(),
        ..anyhow.clone()
    };
    assert_eq!(
        cfg.settings(&federation, Some(UpdateType::Patch)).automerge,
        Some(false)
    );
}

#[test]
fn renovate_github_action_config_gives_warnings_not_errors() {
    let cfg = renovate::load(&fixture("renovate-github-action@2e028a9e15ec")).unwrap();
    assert_eq!(cfg.file.as_deref(), Some(".github/renovate.json"));
    assert_eq!(cfg.package_rules.len(), 6);
    let w = cfg.warnings.join("\n");
    assert!(
        w.contains(
            ".github/renovate.json: key `customManagers` is not supported by slipway and is ignored"
        ),
        "{w}"
    );
    assert!(
        w.contains("key `packageRules[0].semanticCommitType` is not supported"),
        "{w}"
    );
    assert!(
        w.contains("`lockFileMaintenance` is not an update type slipway handles"),
        "{w}"
    );
    assert!(
        w.contains("extends `:pinDependencies` is a preset slipway does not fetch"),
        "{w}"
    );
    // `matchPackageNames: ["@vercel/ncc", "typescript"]` with only ignored settings: no effect.
    let ts = Dependency {
        name: "typescript".into(),
        ecosystem: Ecosystem::Npm,
        current: "5.9.2".into(),
        requirement: Some("5.9.2".into()),
        manifest: "package.json".into(),
        lockfile: None,
        dev: true,
        indirect: false,
    };
    let s = cfg.settings(&ts, Some(UpdateType::Minor));
    assert!(s.enabled && s.automerge.is_none() && s.group_name.is_none());
}

/// Copies a fixture to a temp dir with one file replaced.
fn broken_copy(name: &str, file: &str, edit: impl Fn(&str) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture(name);
    for e in walkdir::WalkDir::new(&src)
        .into_iter()
        .filter_map(Result::ok)
    {
        let rel = e.path().strip_prefix(&src).unwrap();
        let dst = dir.path().join(rel);
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&dst).unwrap();
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
    let path = dir.path().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(&text)).unwrap();
    dir
}

#[test]
fn invalid_renovate_json_is_an_error_naming_file_and_line() {
    let dir = broken_copy(
        "renovate-github-action@2e028a9e15ec",
        ".github/renovate.json",
        |t| t.replacen("\"packageRules\": [", "\"packageRules\": [[", 1),
    );
    let err = renovate::load(dir.path()).unwrap_err().to_string();
    assert!(
        err.starts_with(".github/renovate.json is not valid JSON"),
        "{err}"
    );
    assert!(err.contains("line "), "{err}");
}

#[test]
fn a_manifest_that_cannot_be_parsed_is_an_error_naming_the_file() {
    let dir = broken_copy("axios@1.7.9", "package.json", |t| {
        t.replacen("\"dependencies\": {", "\"dependencies\": {{", 1)
    });
    let err = scan(dir.path()).unwrap_err().to_string();
    assert!(err.starts_with("package.json cannot be parsed"), "{err}");
    assert!(
        err.contains("line ") && err.contains("Fix package.json"),
        "{err}"
    );

    let dir = broken_copy("rover@0.41.0", "crates/houston/Cargo.toml", |t| {
        t.replacen("[dependencies]", "[dependencies", 1)
    });
    let err = scan(dir.path()).unwrap_err().to_string();
    assert!(
        err.starts_with("crates/houston/Cargo.toml cannot be parsed"),
        "{err}"
    );

    let dir = broken_copy("fzf@0.74", "go.mod", |t| t.replacen("v1.0.14", "", 1));
    let err = scan(dir.path()).unwrap_err().to_string();
    assert!(
        err.starts_with("go.mod cannot be parsed") && err.contains("line 4"),
        "{err}"
    );
}

/// The crates.io index entry of `name` as cargo cached it: NUL-separated, one JSON object
/// per version (`vers`, `yanked`, `pubtime`). `Err` when the index cache has no entry.
fn crates_io(index: &Path, name: &str) -> Result<PackageInfo, String> {
    let lower = name.to_ascii_lowercase();
    let rel = match lower.len() {
        1 => format!("1/{lower}"),
        2 => format!("2/{lower}"),
        3 => format!("3/{}/{lower}", &lower[..1]),
        _ => format!("{}/{}/{lower}", &lower[..2], &lower[2..4]),
    };
    let bytes = std::fs::read(index.join(".cache").join(rel))
        .map_err(|_| format!("crate `{name}` is not in the crates.io index"))?;
    let releases = bytes
        .split(|b| *b == 0)
        .filter(|s| s.first() == Some(&b'{'))
        .filter_map(|s| serde_json::from_slice::<serde_json::Value>(s).ok())
        .map(|v| Release {
            version: v["vers"].as_str().unwrap_or_default().to_string(),
            released_ms: v["pubtime"].as_str().and_then(|t| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .ok()
                    .map(|d| d.timestamp_millis() as u64)
            }),
            yanked: v["yanked"].as_bool().unwrap_or(false),
        })
        .collect();
    Ok(PackageInfo {
        releases,
        repository: None,
        changelog_url: None,
    })
}

fn cargo_index() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
    std::fs::read_dir(home.join("registry/index"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("index.crates.io")
        })
        .expect("cargo's crates.io index cache (this crate's own build fills it)")
}

#[test]
fn rover_plan_over_the_real_crates_io_index() {
    let index = cargo_index();
    let s = scan(&fixture("rover@0.41.0")).unwrap();
    let rules = renovate::load(&fixture("rover@0.41.0")).unwrap();
    let mut deps: Vec<Dependency> = s
        .deps
        .iter()
        .filter(|d| d.manifest == "Cargo.toml")
        .cloned()
        .collect();
    deps.push(Dependency {
        name: "slipway-no-such-crate".into(),
        requirement: Some("1".into()),
        current: "1.0.0".into(),
        ..deps[0].clone()
    });
    let infos: BTreeMap<_, _> = deps
        .iter()
        .map(|d| ((d.ecosystem, d.name.clone()), crates_io(&index, &d.name)))
        .collect();
    let looked_up = infos.values().filter(|i| i.is_ok()).count();
    assert!(
        looked_up >= 10,
        "only {looked_up} of rover's crates are in the index cache"
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let days = 3;
    let request = DepsRequest::default();
    let input = PlanInput {
        deps: &deps,
        infos: &infos,
        rules: &rules,
        request: &request,
        min_release_age_days: days,
        now_ms,
    };
    let p = plan(&input);
    // rover's Cargo.lock is from August 2026; cargo's index cache is as new as the last
    // resolve on this machine, so some patch or minor releases are newer than the lock.
    assert!(!p.groups.is_empty(), "no update proposed: {:?}", p.skipped);

    // An oracle written apart from the planner: the newest non-yanked, non-prerelease
    // patch or minor release past the cooldown.
    let limit = u64::from(days) * 86_400_000;
    for d in deps
        .iter()
        .filter(|d| infos[&(d.ecosystem, d.name.clone())].is_ok())
    {
        let info = infos[&(d.ecosystem, d.name.clone())].as_ref().unwrap();
        let best = info
            .releases
            .iter()
            .filter(|r| !r.yanked && !version::is_prerelease(Ecosystem::Cargo, &r.version))
            .filter(|r| {
                r.released_ms
                    .is_some_and(|t| now_ms.saturating_sub(t) >= limit)
            })
            .filter(|r| {
                matches!(
                    version::update_type(Ecosystem::Cargo, &d.current, &r.version),
                    Some(UpdateType::Patch | UpdateType::Minor)
                )
            })
            .max_by(|a, b| version::cmp(Ecosystem::Cargo, &a.version, &b.version).unwrap())
            .map(|r| r.version.clone());
        let proposed = p
            .groups
            .iter()
            .flat_map(|g| &g.updates)
            .find(|u| u.dep.name == d.name && u.dep.manifest == d.manifest)
            .map(|u| u.to.clone());
        assert_eq!(proposed, best, "{} {}", d.name, d.current);
    }
    for g in &p.groups {
        assert_eq!(
            g.slug,
            format!("cargo-{}", g.updates[0].dep.name.replace('_', "-"))
        );
        let u = &g.updates[0];
        // rover's `:automergeStableNonMajor`: auto-merge exactly when the current is >= 1.0.
        let stable = !u.dep.current.starts_with("0.");
        assert_eq!(g.automerge, stable.then_some(true), "{}", g.slug);
    }
    let missing = p
        .skipped
        .iter()
        .find(|s| s.name == "slipway-no-such-crate")
        .unwrap();
    assert_eq!(
        missing.reason,
        "crate `slipway-no-such-crate` is not in the crates.io index"
    );
    for s in &p.skipped {
        if infos[&(Ecosystem::Cargo, s.name.clone())].is_ok() {
            assert!(
                s.reason.contains("the minimum release age is 3 days"),
                "{s:?}"
            );
        }
    }

    // A version that does not exist, and one that does.
    let ask = |v: &str| {
        plan(&PlanInput {
            request: &DepsRequest {
                only: vec!["anyhow".into()],
                version: Some(v.into()),
                ..Default::default()
            },
            min_release_age_days: 0,
            ..input
        })
    };
    let p = ask("1.0.999");
    assert!(p.groups.is_empty());
    assert_eq!(
        p.skipped[0].reason,
        "version 1.0.999 of anyhow does not exist in the cargo registry"
    );
    let p = ask("1.0.50");
    assert_eq!(
        p.skipped[0].reason,
        "1.0.50 is not newer than the current 1.0.104 of anyhow"
    );
}

#[test]
fn no_config_means_renovate_defaults() {
    let cfg = renovate::load(&fixture("axios@1.7.9")).unwrap();
    assert!(cfg.file.is_none() && cfg.enabled && cfg.package_rules.is_empty());
    let d = RenovateConfig::default();
    assert!(d.separate_major_minor && d.warnings.is_empty());
}
