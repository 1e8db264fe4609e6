//! Cargo: `Cargo.toml` at the root and its `[workspace] members`, versions from the
//! workspace's `Cargo.lock`.
//!
//! Protocol facts (the Cargo book, "Specifying Dependencies" and "Workspaces"): a
//! dependency is a version string or a table with `version`, `path`, `git`, `package`
//! (the real name when renamed), `workspace = true` (inherited from
//! `[workspace.dependencies]`); `[target.'cfg(…)'.dependencies]` tables have the same form.
//! Cargo.lock lists `[[package]] name version source`; a registry package's source starts
//! with `registry+` or `sparse+`, and one name may appear at several versions.

use std::collections::BTreeMap;

use super::{Ctx, Scan, ScanError};
use crate::deps::{Dependency, Ecosystem, version};

const TABLES: [(&str, bool); 3] = [
    ("dependencies", false),
    ("build-dependencies", false),
    ("dev-dependencies", true),
];

pub(super) fn scan(ctx: &Ctx, out: &mut Scan) -> Result<(), ScanError> {
    let Some(root) = ctx.toml("Cargo.toml")? else {
        return Ok(());
    };
    let lock = ctx.toml("Cargo.lock")?.map(|t| locked(&t));
    if lock.is_none() {
        out.warnings.push(
            "Cargo.toml: no Cargo.lock; only exact `=x.y.z` requirements are updated (run `cargo generate-lockfile` and commit Cargo.lock to cover the rest)"
                .to_string(),
        );
    }
    let ws = root.get("workspace");
    if let Some(deps) = ws
        .and_then(|w| w.get("dependencies"))
        .and_then(toml::Value::as_table)
    {
        table("Cargo.toml", deps, false, lock.as_ref(), out);
    }
    crate_manifest("Cargo.toml", &root, lock.as_ref(), out);
    let strings = |key: &str| -> Vec<String> {
        ws.and_then(|w| w.get(key))
            .and_then(toml::Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    for dir in ctx.members("", &strings("members"), &strings("exclude"), "Cargo.toml") {
        let file = Ctx::rel(&dir, "Cargo.toml");
        if let Some(t) = ctx.toml(&file)? {
            crate_manifest(&file, &t, lock.as_ref(), out);
        }
    }
    Ok(())
}

/// Name → registry versions in the lockfile.
type Locked = BTreeMap<String, Vec<String>>;

fn locked(t: &toml::Table) -> Locked {
    let mut m = Locked::new();
    for p in t
        .get("package")
        .and_then(toml::Value::as_array)
        .into_iter()
        .flatten()
    {
        let field = |k: &str| p.get(k).and_then(toml::Value::as_str);
        let registry =
            field("source").is_some_and(|s| s.starts_with("registry+") || s.starts_with("sparse+"));
        if let (true, Some(n), Some(v)) = (registry, field("name"), field("version")) {
            m.entry(n.to_string()).or_default().push(v.to_string());
        }
    }
    m
}

fn crate_manifest(file: &str, t: &toml::Table, lock: Option<&Locked>, out: &mut Scan) {
    for (key, dev) in TABLES {
        if let Some(deps) = t.get(key).and_then(toml::Value::as_table) {
            table(file, deps, dev, lock, out);
        }
    }
    for target in t
        .get("target")
        .and_then(toml::Value::as_table)
        .into_iter()
        .flat_map(|t| t.values())
    {
        for (key, dev) in TABLES {
            if let Some(deps) = target.get(key).and_then(toml::Value::as_table) {
                table(file, deps, dev, lock, out);
            }
        }
    }
}

fn table(file: &str, deps: &toml::Table, dev: bool, lock: Option<&Locked>, out: &mut Scan) {
    for (key, spec) in deps {
        let (name, req) = match spec {
            toml::Value::String(v) => (key.as_str(), v.as_str()),
            toml::Value::Table(t) => {
                // Inherited (`workspace = true`) is listed with the workspace; path and git
                // dependencies are not on a registry.
                if t.contains_key("workspace") || t.contains_key("path") || t.contains_key("git") {
                    continue;
                }
                let Some(v) = t.get("version").and_then(toml::Value::as_str) else {
                    continue;
                };
                let name = t
                    .get("package")
                    .and_then(toml::Value::as_str)
                    .unwrap_or(key);
                (name, v)
            }
            _ => continue,
        };
        if out.deps.iter().any(|d| {
            d.manifest == file
                && d.name == name
                && d.dev == dev
                && d.requirement.as_deref() == Some(req)
        }) {
            continue;
        }
        let current = match lock {
            Some(l) => {
                let Some(vs) = l.get(name) else {
                    out.warnings.push(format!(
                        "{file}: `{name}` is not in Cargo.lock (an optional dependency not enabled, or a stale lockfile); skipped"
                    ));
                    continue;
                };
                let mut fit: Vec<&String> = vs
                    .iter()
                    .filter(|v| version::satisfies(Ecosystem::Cargo, req, v) == Some(true))
                    .collect();
                if fit.is_empty() {
                    fit = vs.iter().collect();
                }
                fit.sort_by(|a, b| {
                    version::cmp(Ecosystem::Cargo, a, b).unwrap_or(std::cmp::Ordering::Equal)
                });
                match fit.last() {
                    Some(v) => (*v).clone(),
                    None => continue,
                }
            }
            None => match req.strip_prefix('=') {
                Some(v) if version::is_valid(Ecosystem::Cargo, v.trim()) => v.trim().to_string(),
                _ => continue,
            },
        };
        out.deps.push(Dependency {
            name: name.to_string(),
            ecosystem: Ecosystem::Cargo,
            current,
            requirement: Some(req.to_string()),
            manifest: file.to_string(),
            lockfile: lock.map(|_| "Cargo.lock".to_string()),
            dev,
            indirect: false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_locked_version_that_fits_the_requirement() {
        let lock: toml::Table = r#"
            [[package]]
            name = "rand"
            version = "0.8.5"
            source = "registry+https://github.com/rust-lang/crates.io-index"
            [[package]]
            name = "rand"
            version = "0.9.2"
            source = "registry+https://github.com/rust-lang/crates.io-index"
            [[package]]
            name = "local"
            version = "0.1.0"
        "#
        .parse()
        .unwrap();
        let lock = locked(&lock);
        let deps: toml::Table = r#"
            rand = "0.8"
            rand09 = { package = "rand", version = "0.9" }
            local = { path = "../local" }
            shared = { workspace = true }
            gitdep = { git = "https://x/y" }
        "#
        .parse()
        .unwrap();
        let mut out = Scan::default();
        table("Cargo.toml", &deps, false, Some(&lock), &mut out);
        let got: Vec<_> = out
            .deps
            .iter()
            .map(|d| (d.name.as_str(), d.current.as_str()))
            .collect();
        assert_eq!(got, [("rand", "0.8.5"), ("rand", "0.9.2")]);
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    }
}
