//! Policy as data: the server's `[policy]` plus a repo's `.slipway/policy.toml`, merged into
//! the [`EffectivePolicy`] of one run. A repo may only tighten: a looser repo value is
//! ignored and the report says so. Both are validated once, with errors naming the file
//! and key. The repo file is read from the commit the run starts from, before the agent
//! runs, so the agent cannot change the rules it is judged by.
//!
//! Owns loading, validating and merging policy; it must not evaluate gates or decide.

use std::path::Path;

use globset::Glob;
use serde::Deserialize;

use crate::report::{Classification, GateName};
use serde::Serialize;

/// Paths no change may touch, whatever the config says: slipway's own policy files (and a
/// `.slipway` that is itself a file or symlink, which `.slipway/**` does not match).
pub const ALWAYS_FORBIDDEN: &[&str] = &[".slipway", ".slipway/**"];

/// Paths whose change always needs a person: the instructions agents read.
pub const ALWAYS_REVIEW: &[&str] = &[
    "AGENTS.md",
    "**/AGENTS.md",
    "CLAUDE.md",
    "**/CLAUDE.md",
    ".cursor/**",
];

/// A policy problem, naming where and what.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid {file}: {key}: {message}")]
pub struct PolicyError {
    pub file: String,
    pub key: String,
    pub message: String,
}

/// `[checks]` of a repo's policy file: the repo's own commands.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoChecks {
    pub test: Option<String>,
    pub lint: Option<String>,
    pub format: Option<String>,
    /// Prints a total coverage percentage (the last `NN%` or `NN.N%` in its output).
    pub coverage: Option<String>,
}

/// `[setup]` of a repo's policy file: how the environment's setup may install (`crate::env`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepoSetup {
    /// Package install scripts (npm/pnpm/yarn lifecycle scripts such as `postinstall`) run
    /// during detected setup. Default false: `--ignore-scripts`. Setup reads this from the
    /// base commit, and `.slipway/**` is never published by an agent, so only people opt in.
    pub allow_scripts: bool,
}

/// A repo's `.slipway/policy.toml`. Every key optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepoPolicy {
    pub forbidden_paths: Vec<String>,
    pub review_paths: Vec<String>,
    pub max_files: Option<usize>,
    pub max_lines: Option<usize>,
    pub auto_merge: Option<Vec<String>>,
    pub required_gates: Vec<String>,
    pub denied_commands: Vec<String>,
    pub checks: Option<RepoChecks>,
    /// `[setup]`: how setup may install.
    pub setup: RepoSetup,
}

/// Where a repo's policy file lives, relative to its root.
pub const REPO_POLICY_PATH: &str = ".slipway/policy.toml";

impl RepoPolicy {
    /// Reads and validates `root/.slipway/policy.toml`; `Ok(None)` when there is none.
    pub fn load(root: &Path) -> Result<Option<Self>, PolicyError> {
        if std::fs::symlink_metadata(root.join(".slipway")).is_ok_and(|m| !m.is_dir()) {
            return Err(PolicyError {
                file: ".slipway".into(),
                key: "(file)".into(),
                message: "must be a directory, not a link or a file".into(),
            });
        }
        let path = root.join(REPO_POLICY_PATH);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            return Ok(None);
        };
        let err = |key: &str, message: String| PolicyError {
            file: REPO_POLICY_PATH.into(),
            key: key.into(),
            message,
        };
        if !meta.is_file() {
            return Err(err(
                "(file)",
                "must be a regular file, not a link or directory".into(),
            ));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| err("(file)", e.to_string()))?;
        let p: RepoPolicy =
            toml::from_str(&text).map_err(|e| err("(syntax)", e.message().to_string()))?;
        validate_globs(REPO_POLICY_PATH, "forbidden_paths", &p.forbidden_paths)?;
        validate_globs(REPO_POLICY_PATH, "review_paths", &p.review_paths)?;
        if let Some(classes) = &p.auto_merge {
            validate_classes(REPO_POLICY_PATH, classes)?;
        }
        validate_gates(REPO_POLICY_PATH, &p.required_gates)?;
        Ok(Some(p))
    }
}

fn validate_globs(file: &str, key: &str, globs: &[String]) -> Result<(), PolicyError> {
    for g in globs {
        Glob::new(g).map_err(|e| PolicyError {
            file: file.into(),
            key: key.into(),
            message: format!("{g:?} is not a valid glob: {e}"),
        })?;
    }
    Ok(())
}

/// Parses a contract class name (`docs`, `dependency_update`, …).
pub fn parse_class(s: &str) -> Option<Classification> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
}

fn validate_classes(file: &str, classes: &[String]) -> Result<(), PolicyError> {
    for c in classes {
        if parse_class(c).is_none() {
            return Err(PolicyError {
                file: file.into(),
                key: "auto_merge".into(),
                message: format!(
                    "{c:?} is not a classification; use dependency_update, docs, tests, formatting, refactor, feature, config, infra, migration or security"
                ),
            });
        }
    }
    Ok(())
}

fn validate_gates(file: &str, gates: &[String]) -> Result<(), PolicyError> {
    for g in gates {
        g.parse::<GateName>().map_err(|e| PolicyError {
            file: file.into(),
            key: "required_gates".into(),
            message: e.to_string(),
        })?;
    }
    Ok(())
}

/// Validates the server's `[policy]`; `file` names the config file for the message.
pub fn validate_server(file: &str, p: &PolicyConfig) -> Result<(), PolicyError> {
    validate_globs(file, "[policy] forbidden_paths", &p.forbidden_paths)?;
    validate_globs(file, "[policy] review_paths", &p.review_paths)?;
    validate_classes(file, &p.auto_merge).map_err(|e| PolicyError {
        key: "[policy] auto_merge".into(),
        ..e
    })?;
    validate_gates(file, &p.required_gates).map_err(|e| PolicyError {
        key: "[policy] required_gates".into(),
        ..e
    })
}

/// The policy one run is judged by.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectivePolicy {
    pub forbidden_paths: Vec<String>,
    pub review_paths: Vec<String>,
    pub max_files: usize,
    pub max_lines: usize,
    pub auto_merge: Vec<Classification>,
    pub required_gates: Vec<String>,
    pub denied_commands: Vec<String>,
    /// What the repo policy tightened, and what looser settings were ignored.
    pub notes: Vec<String>,
    /// True when the repo tried to loosen something.
    pub loosening_ignored: bool,
}

fn union(a: &[String], b: &[String]) -> Vec<String> {
    let mut out = a.to_vec();
    for x in b {
        if !out.contains(x) {
            out.push(x.clone());
        }
    }
    out
}

/// Server policy tightened by the repo's. Classes in `server.auto_merge` were validated at
/// load; an unparsable one is dropped (fail closed: it can only remove auto-merges).
pub fn effective(server: &PolicyConfig, repo: Option<&RepoPolicy>) -> EffectivePolicy {
    let server_classes: Vec<Classification> = server
        .auto_merge
        .iter()
        .filter_map(|c| parse_class(c))
        .collect();
    let mut p = EffectivePolicy {
        forbidden_paths: union(
            &server.forbidden_paths,
            &ALWAYS_FORBIDDEN
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        ),
        review_paths: union(
            &server.review_paths,
            &ALWAYS_REVIEW
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        ),
        max_files: server.max_files,
        max_lines: server.max_lines,
        auto_merge: server_classes.clone(),
        required_gates: server.required_gates.clone(),
        denied_commands: server.denied_commands.clone(),
        notes: Vec::new(),
        loosening_ignored: false,
    };
    let Some(r) = repo else { return p };
    let mut ignored = Vec::new();
    let added = |what: &str, extra: &[String], base: &[String]| -> Option<String> {
        let new: Vec<&String> = extra.iter().filter(|x| !base.contains(x)).collect();
        (!new.is_empty()).then(|| {
            format!(
                "repo policy adds {what}: {}",
                new.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    };
    p.notes.extend(added(
        "forbidden_paths",
        &r.forbidden_paths,
        &p.forbidden_paths,
    ));
    p.forbidden_paths = union(&p.forbidden_paths, &r.forbidden_paths);
    p.notes
        .extend(added("review_paths", &r.review_paths, &p.review_paths));
    p.review_paths = union(&p.review_paths, &r.review_paths);
    p.notes.extend(added(
        "required_gates",
        &r.required_gates,
        &p.required_gates,
    ));
    p.required_gates = union(&p.required_gates, &r.required_gates);
    p.notes.extend(added(
        "denied_commands",
        &r.denied_commands,
        &p.denied_commands,
    ));
    p.denied_commands = union(&p.denied_commands, &r.denied_commands);
    for (key, repo_value, server_value, slot) in [
        ("max_files", r.max_files, server.max_files, &mut p.max_files),
        ("max_lines", r.max_lines, server.max_lines, &mut p.max_lines),
    ] {
        match repo_value {
            Some(v) if v < server_value => {
                *slot = v;
                p.notes.push(format!("repo policy lowers {key} to {v}"));
            }
            Some(v) if v > server_value => {
                ignored.push(format!("{key} = {v} (server allows {server_value})"))
            }
            _ => {}
        }
    }
    if let Some(classes) = &r.auto_merge {
        let wanted: Vec<Classification> = classes.iter().filter_map(|c| parse_class(c)).collect();
        let extra: Vec<&str> = wanted
            .iter()
            .filter(|c| !server_classes.contains(c))
            .map(|c| c.as_str())
            .collect();
        if !extra.is_empty() {
            ignored.push(format!(
                "auto_merge of {} (server does not allow it)",
                extra.join(", ")
            ));
        }
        p.auto_merge = server_classes
            .iter()
            .copied()
            .filter(|c| wanted.contains(c))
            .collect();
        if p.auto_merge.len() < server_classes.len() {
            p.notes.push("repo policy narrows auto_merge".into());
        }
    }
    if !ignored.is_empty() {
        p.loosening_ignored = true;
        p.notes.push(format!(
            "repo policy tried to loosen server policy; ignored: {}",
            ignored.join("; ")
        ));
    }
    p
}

/// `[policy]`: server-wide guardrails. A repo's `.slipway/policy.toml` may only tighten them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Globs the change may never touch; touching one halts the run.
    pub forbidden_paths: Vec<String>,
    /// Globs whose change always needs a human approval.
    pub review_paths: Vec<String>,
    /// Most files one change may touch before it needs approval.
    pub max_files: usize,
    /// Most changed lines (added + deleted) before it needs approval.
    pub max_lines: usize,
    /// Classifications that may merge without approval when every gate passes.
    pub auto_merge: Vec<String>,
    /// Gates that must pass (not warn, not skip) before anything auto-merges.
    pub required_gates: Vec<String>,
    /// Command prefixes the agent's `run` tool refuses (beside the built-in denials).
    pub denied_commands: Vec<String>,
    /// `dependency_update`: releases younger than this many days are not proposed (a
    /// supply-chain cooldown; a repo's `renovate.json` `minimumReleaseAge` may only make it
    /// longer). Security fixes are exempt. 0 = off.
    pub min_release_age_days: u32,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            forbidden_paths: vec![
                ".github/workflows/**".into(),
                "**/migrations/**".into(),
                "**/.env*".into(),
            ],
            review_paths: vec!["**/auth/**".into(), "**/payments/**".into()],
            max_files: 15,
            max_lines: 500,
            auto_merge: Vec::new(),
            required_gates: vec!["tests".into()],
            denied_commands: Vec::new(),
            min_release_age_days: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> PolicyConfig {
        PolicyConfig {
            auto_merge: vec!["docs".into(), "tests".into()],
            ..Default::default()
        }
    }

    #[test]
    fn a_repo_can_tighten_but_never_loosen() {
        let repo = RepoPolicy {
            max_files: Some(40),
            max_lines: Some(100),
            auto_merge: Some(vec!["docs".into(), "feature".into()]),
            forbidden_paths: vec!["secrets/**".into()],
            ..Default::default()
        };
        let p = effective(&server(), Some(&repo));
        assert_eq!(p.max_files, 15, "looser max_files ignored");
        assert_eq!(p.max_lines, 100, "tighter max_lines applied");
        assert_eq!(p.auto_merge, vec![Classification::Docs]);
        assert!(p.forbidden_paths.contains(&"secrets/**".to_string()));
        assert!(p.forbidden_paths.contains(&".slipway/**".to_string()));
        assert!(p.loosening_ignored);
        let note = p.notes.iter().find(|n| n.contains("ignored")).unwrap();
        assert!(
            note.contains("max_files = 40") && note.contains("auto_merge of feature"),
            "{note}"
        );
    }

    #[test]
    fn without_a_repo_policy_the_server_policy_applies() {
        let p = effective(&server(), None);
        assert_eq!(
            p.auto_merge,
            vec![Classification::Docs, Classification::Tests]
        );
        assert!(p.notes.is_empty());
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join(".slipway")).unwrap();
        let write = |t: &str| std::fs::write(d.path().join(REPO_POLICY_PATH), t).unwrap();
        write("auto_merge = [\"everything\"]\n");
        let e = RepoPolicy::load(d.path()).unwrap_err().to_string();
        assert!(
            e.contains(".slipway/policy.toml")
                && e.contains("auto_merge")
                && e.contains("everything"),
            "{e}"
        );
        write("forbidden_paths = [\"a/[\"]\n");
        assert!(
            RepoPolicy::load(d.path())
                .unwrap_err()
                .to_string()
                .contains("forbidden_paths")
        );
        write("max_filez = 3\n");
        assert!(
            RepoPolicy::load(d.path())
                .unwrap_err()
                .to_string()
                .contains("max_filez")
        );
        write("[checks]\ntest = \"make t\"\n");
        assert_eq!(
            RepoPolicy::load(d.path())
                .unwrap()
                .unwrap()
                .checks
                .unwrap()
                .test
                .as_deref(),
            Some("make t")
        );
        let bad = PolicyConfig {
            required_gates: vec!["vibes".into()],
            ..Default::default()
        };
        let e = validate_server("slipway.toml", &bad)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("slipway.toml") && e.contains("[policy] required_gates"),
            "{e}"
        );
    }
}
