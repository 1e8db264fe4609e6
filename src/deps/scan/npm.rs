//! npm: `package.json` at the root and in its `workspaces`, versions from
//! `package-lock.json`.
//!
//! Protocol facts (npm docs, "package-lock.json"): lockfileVersion 2 and 3 list installed
//! packages under `packages` keyed by path (`node_modules/<name>`, a workspace's own
//! `<dir>/node_modules/<name>` when not hoisted); version 1 has `dependencies.<name>.version`.
//! `workspaces` is an array of globs, or `{ "packages": [...] }` (yarn's form).

use serde_json::Value;

use super::{Ctx, Scan, ScanError};
use crate::deps::{Dependency, Ecosystem, version};

pub(super) fn scan(ctx: &Ctx, out: &mut Scan) -> Result<(), ScanError> {
    let Some(root) = ctx.json("package.json")? else {
        return Ok(());
    };
    let lock = match ctx.json("package-lock.json")? {
        Some(v) => Some(v),
        None => {
            let other = ["yarn.lock", "pnpm-lock.yaml", "bun.lock"]
                .into_iter()
                .find(|f| ctx.exists(f));
            out.warnings.push(match other {
                Some(f) => format!(
                    "package.json: {f} is not read (only package-lock.json is); only exact version pins are updated"
                ),
                None => "package.json: no package-lock.json; only exact version pins are updated (run `npm install` and commit package-lock.json to cover the rest)".to_string(),
            });
            None
        }
    };
    let patterns: Vec<String> = match root.get("workspaces") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        Some(Value::Object(o)) => o
            .get("packages")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let members = ctx.members("", &patterns, &[], "package.json");
    let mut manifests = vec![(String::new(), root)];
    for dir in members {
        if let Some(m) = ctx.json(&Ctx::rel(&dir, "package.json"))? {
            manifests.push((dir, m));
        }
    }
    // Workspace packages depend on each other by name; those are not registry packages.
    let local: Vec<String> = manifests
        .iter()
        .filter_map(|(_, m)| m.get("name").and_then(Value::as_str).map(String::from))
        .collect();
    for (dir, manifest) in &manifests {
        package(dir, manifest, lock.as_ref(), &local, out);
    }
    Ok(())
}

fn package(dir: &str, manifest: &Value, lock: Option<&Value>, local: &[String], out: &mut Scan) {
    let file = Ctx::rel(dir, "package.json");
    for (field, dev) in [
        ("dependencies", false),
        ("optionalDependencies", false),
        ("devDependencies", true),
    ] {
        let Some(deps) = manifest.get(field).and_then(Value::as_object) else {
            continue;
        };
        for (name, spec) in deps {
            let Some(spec) = spec.as_str() else { continue };
            if local.contains(name) {
                continue;
            }
            if spec.contains(':') || (spec.contains('/') && !spec.starts_with('@')) {
                out.warnings.push(format!(
                    "{file}: `{name}` is not a registry dependency ({spec}); not updated"
                ));
                continue;
            }
            let locked = lock.and_then(|l| locked_version(l, dir, name));
            let current = match locked {
                Some(v) => v,
                None if version::is_valid(Ecosystem::Npm, spec) && !spec.contains(' ') => {
                    spec.trim_start_matches(['=', 'v']).to_string()
                }
                None => {
                    if lock.is_some() {
                        out.warnings.push(format!(
                            "{file}: `{name}` is not in package-lock.json (run `npm install`); skipped"
                        ));
                    }
                    continue;
                }
            };
            out.deps.push(Dependency {
                name: name.clone(),
                ecosystem: Ecosystem::Npm,
                current,
                requirement: Some(spec.to_string()),
                manifest: file.clone(),
                lockfile: lock.map(|_| "package-lock.json".to_string()),
                dev,
                indirect: false,
            });
        }
    }
}

/// The version the lockfile installs for `name` as seen from workspace `dir`.
pub(super) fn locked_version(lock: &Value, dir: &str, name: &str) -> Option<String> {
    let v = |x: &Value| x.get("version").and_then(Value::as_str).map(String::from);
    if let Some(pkgs) = lock.get("packages").and_then(Value::as_object) {
        if !dir.is_empty()
            && let Some(x) = pkgs.get(&format!("{dir}/node_modules/{name}")).and_then(v)
        {
            return Some(x);
        }
        if let Some(x) = pkgs.get(&format!("node_modules/{name}")).and_then(v) {
            return Some(x);
        }
    }
    lock.get("dependencies")
        .and_then(|d| d.get(name))
        .and_then(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockfile_versions_v1_v3_and_workspaces() {
        let v3 = serde_json::json!({"lockfileVersion": 3, "packages": {
            "": {}, "node_modules/a": {"version": "1.0.0"},
            "web/node_modules/a": {"version": "2.0.0"}}});
        assert_eq!(locked_version(&v3, "", "a").as_deref(), Some("1.0.0"));
        assert_eq!(locked_version(&v3, "web", "a").as_deref(), Some("2.0.0"));
        assert_eq!(locked_version(&v3, "api", "a").as_deref(), Some("1.0.0"));
        let v1 =
            serde_json::json!({"lockfileVersion": 1, "dependencies": {"a": {"version": "0.1.0"}}});
        assert_eq!(locked_version(&v1, "", "a").as_deref(), Some("0.1.0"));
        assert_eq!(locked_version(&v1, "", "b"), None);
    }

    #[test]
    fn non_registry_specs_are_skipped_with_a_warning() {
        let m = serde_json::json!({"dependencies": {
            "a": "^1.0.0", "b": "git+https://x/y.git", "c": "file:../c", "d": "user/repo",
            "@s/e": "2.0.0", "f": "npm:g@1"}});
        let mut out = Scan::default();
        package("", &m, None, &[], &mut out);
        let names: Vec<_> = out
            .deps
            .iter()
            .map(|d| (d.name.as_str(), d.current.as_str()))
            .collect();
        assert_eq!(names, [("@s/e", "2.0.0")], "a has no lock and no exact pin");
        assert_eq!(out.warnings.len(), 4, "{:?}", out.warnings);
    }
}
