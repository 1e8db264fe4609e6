//! Parsing and rule semantics on small configs written here.

use super::*;
use crate::deps::{Dependency, Ecosystem};

fn dep(name: &str, eco: Ecosystem, dev: bool) -> Dependency {
    Dependency {
        name: name.into(),
        ecosystem: eco,
        current: "1.0.0".into(),
        requirement: None,
        manifest: "web/package.json".into(),
        lockfile: Some("package-lock.json".into()),
        dev,
        indirect: false,
    }
}

#[test]
fn json5_with_comments_and_every_supported_key() {
    let cfg = parse(
        "renovate.json5",
        r#"{
          // JSON5: comments, unquoted keys, trailing commas
          extends: ["config:recommended", "group:allNonMajor"],
          enabled: true,
          ignoreDeps: ["left-pad"],
          minimumReleaseAge: "3 days",
          automerge: false,
          lockFileMaintenance: { enabled: true },
          packageRules: [
            { matchPackageNames: ["@types/*", "/^eslint/"], groupName: "Lint & types", automerge: true, },
            { matchUpdateTypes: ["major"], matchManagers: ["npm"], minimumReleaseAge: "1 week", automerge: false },
          ],
        }"#,
    )
    .unwrap();
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    assert_eq!(cfg.file.as_deref(), Some("renovate.json5"));
    assert!(cfg.lock_file_maintenance);
    assert_eq!(
        cfg.package_rules.len(),
        3,
        "group:allNonMajor's rule comes first"
    );
    assert!(cfg.is_ignored("left-pad"));

    let types = dep("@types/node", Ecosystem::Npm, true);
    let s = cfg.settings(&types, Some(UpdateType::Minor));
    assert_eq!(
        s.group_name.as_deref(),
        Some("Lint & types"),
        "the later rule wins"
    );
    assert_eq!(
        s.group_slug, None,
        "groupName resets groupSlug set by an earlier rule"
    );
    assert_eq!(s.automerge, Some(true));
    assert_eq!(s.minimum_release_age_ms, Some(3 * 86_400_000));
    let s = cfg.settings(&types, Some(UpdateType::Major));
    assert_eq!(s.automerge, Some(false));
    assert_eq!(s.minimum_release_age_ms, Some(7 * 86_400_000));

    let react = dep("react", Ecosystem::Npm, false);
    let s = cfg.settings(&react, Some(UpdateType::Patch));
    assert_eq!(s.group_slug.as_deref(), Some("all-minor-patch"));
    assert_eq!(s.automerge, Some(false));
    assert!(
        !cfg.settings(&dep("left-pad", Ecosystem::Npm, false), None)
            .enabled
    );
}

#[test]
fn unknown_keys_are_warnings_naming_the_file_and_key() {
    let cfg = parse(
        ".github/renovate.json",
        r#"{"labels": ["deps"], "schedule": ["before 6am"], "extends": ["github>acme/presets", "schedule:weekly"],
            "packageRules": [{"matchPackageNames": ["x"], "semanticCommitType": "build", "matchSourceUrls": ["https://github.com/x/**"]},
                             {"matchManagers": ["github-actions"], "enabled": false}]}"#,
    )
    .unwrap();
    let w = cfg.warnings.join("\n");
    assert!(
        w.contains(
            ".github/renovate.json: key `labels` is not supported by slipway and is ignored"
        ),
        "{w}"
    );
    assert!(
        w.contains("key `packageRules[0].semanticCommitType` is not supported"),
        "{w}"
    );
    assert!(
        w.contains("`packageRules[0].matchSourceUrls` is a matcher slipway does not support"),
        "{w}"
    );
    assert!(w.contains("`github-actions` is not a manager"), "{w}");
    assert!(
        w.contains("extends `github>acme/presets` is a preset slipway does not fetch"),
        "{w}"
    );
    assert!(w.contains("extends `schedule:weekly` is ignored"), "{w}");
    assert!(w.contains("key `schedule` is ignored"), "{w}");
    assert_eq!(cfg.warnings.len(), 7, "{w}");
    // A rule for an ecosystem slipway does not update never disables npm packages, and a
    // rule with an unknown matcher is not applied.
    let x = dep("x", Ecosystem::Npm, false);
    assert!(cfg.settings(&x, Some(UpdateType::Patch)).enabled);
    assert!(!cfg.package_rules[0].matches(&x, Some(UpdateType::Patch)));
}

#[test]
fn invalid_json_names_the_file_and_position() {
    let err = parse(
        "renovate.json",
        "{\n  \"extends\": [\"config:recommended\"\n  \"packageRules\": [}\n",
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("renovate.json is not valid JSON"), "{msg}");
    assert!(msg.contains("line 3"), "{msg}");
    let err = parse(".renovaterc", "[1, 2]").unwrap_err();
    assert!(
        err.to_string()
            .contains(".renovaterc must hold a JSON object"),
        "{err}"
    );
}

#[test]
fn name_patterns_follow_renovate() {
    let cfg = parse(
        "renovate.json",
        r#"{"packageRules": [
            {"matchPackageNames": ["*", "!/^@angular\\//", "!typescript"], "groupName": "all-but"},
            {"matchPackagePatterns": ["^serde"], "excludePackageNames": ["serde_yaml"], "groupName": "serde"},
            {"matchPackageNames": ["golang.org/x/**"], "matchDatasources": ["go"], "groupName": "x"},
            {"matchDepTypes": ["devDependencies"], "automerge": true},
            {"matchFileNames": ["web/**"], "minimumReleaseAge": "5 days"}
        ]}"#,
    )
    .unwrap();
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    let group = |name: &str, eco| cfg.settings(&dep(name, eco, false), None).group_name;
    assert_eq!(group("lodash", Ecosystem::Npm).as_deref(), Some("all-but"));
    assert_eq!(group("@angular/core", Ecosystem::Npm), None);
    assert_eq!(
        group("TypeScript", Ecosystem::Npm),
        None,
        "exact names ignore case"
    );
    assert_eq!(
        group("serde_json", Ecosystem::Cargo).as_deref(),
        Some("serde")
    );
    assert_eq!(
        group("serde_yaml", Ecosystem::Cargo).as_deref(),
        Some("all-but")
    );
    assert_eq!(
        group("golang.org/x/sys", Ecosystem::Go).as_deref(),
        Some("x")
    );
    assert_eq!(
        group("golang.org/x/sys", Ecosystem::Npm).as_deref(),
        Some("all-but")
    );
    assert_eq!(
        cfg.settings(&dep("a", Ecosystem::Npm, true), None)
            .automerge,
        Some(true)
    );
    assert_eq!(
        cfg.settings(&dep("a", Ecosystem::Npm, false), None)
            .automerge,
        None
    );
    assert_eq!(
        cfg.settings(&dep("a", Ecosystem::Npm, false), None)
            .minimum_release_age_ms,
        Some(5 * 86_400_000),
        "matchFileNames sees web/package.json"
    );
}

#[test]
fn load_follows_renovates_file_order() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        load(dir.path()).unwrap().file.is_none(),
        "no config: defaults"
    );
    std::fs::write(
        dir.path().join("package.json"),
        r#"{"renovate": {"automerge": true}}"#,
    )
    .unwrap();
    assert_eq!(
        load(dir.path()).unwrap().file.as_deref(),
        Some("package.json")
    );
    std::fs::create_dir(dir.path().join(".github")).unwrap();
    std::fs::write(
        dir.path().join(".github/renovate.json"),
        r#"{"automerge": false}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join(".renovaterc"), r#"{"enabled": false}"#).unwrap();
    let cfg = load(dir.path()).unwrap();
    assert_eq!(cfg.file.as_deref(), Some(".github/renovate.json"));
    assert_eq!(cfg.automerge, Some(false));
}

#[test]
fn version_patterns_and_the_stable_non_major_preset() {
    use crate::deps::renovate::version_matches;
    assert!(version_matches(Ecosystem::Npm, "!/^0/", "1.2.0"));
    assert!(!version_matches(Ecosystem::Npm, "!/^0/", "0.2.0"));
    assert!(version_matches(Ecosystem::Cargo, "<2", "1.9.0"));
    assert!(!version_matches(Ecosystem::Cargo, "<2", "2.0.0"));
    assert!(
        !version_matches(Ecosystem::Cargo, "not a range", "2.0.0"),
        "fails closed"
    );
    let cfg = parse(
        "renovate.json",
        r#"{"extends": [":automergeStableNonMajor"]}"#,
    )
    .unwrap();
    assert!(cfg.warnings.is_empty());
    let mut d = dep("x", Ecosystem::Npm, false);
    assert_eq!(
        cfg.settings(&d, Some(UpdateType::Minor)).automerge,
        Some(true)
    );
    assert_eq!(cfg.settings(&d, Some(UpdateType::Major)).automerge, None);
    d.current = "0.4.1".into();
    assert_eq!(cfg.settings(&d, Some(UpdateType::Minor)).automerge, None);
}
