//! Detection: the setup each ecosystem in the tree needs, from its manifests and lockfiles,
//! and the sandbox conventions its tools follow (where the venv, caches and `node_modules`
//! live; what the offline checks must be told).
//!
//! Commands are the strict ones: a lockfile out of sync with its manifest fails setup
//! (`npm ci`, `uv sync --locked`, `poetry install`, `cargo fetch --locked`, `go list` in
//! its default read-only module mode) rather than being silently re-resolved. Install
//! scripts are off unless the repo opts in (`.slipway/policy.toml` `[setup]
//! allow_scripts = true`).
//!
//! Python and Node have their own files (`python.rs`, `node.rs`); Rust and Go are here.
//! Owns what each ecosystem needs; it must not choose between sources (that is `resolve`).

mod node;
mod python;

use std::collections::BTreeMap;

use super::{ENV_DIR, Result, Tree};

/// What detection is told about the repo beyond its files.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Options {
    /// Install scripts may run (`[setup] allow_scripts = true` in the repo's policy).
    pub allow_scripts: bool,
    /// A check command runs pytest, so the venv must have it even when the project does
    /// not declare it.
    pub needs_pytest: bool,
}

/// One ecosystem found in the tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Ecosystem {
    /// Its name and the file that decided its setup: `python (uv.lock)`.
    pub label: String,
    /// Shell commands, in order.
    pub setup: Vec<String>,
    /// Environment for setup, checks and the agent.
    pub env: BTreeMap<String, String>,
    /// Environment for the offline checks and the agent only.
    pub offline_env: BTreeMap<String, String>,
    /// Directories in front of `PATH`.
    pub path_prefix: Vec<String>,
    /// Work-tree directories setup makes that checks need.
    pub carry: Vec<String>,
    /// Repo-relative files that decided the above.
    pub inputs: Vec<String>,
    /// Remarks for the setup gate.
    pub notes: Vec<String>,
}

impl Ecosystem {
    fn env(mut self, pairs: &[(&str, &str)]) -> Self {
        self.env
            .extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self
    }

    fn offline(mut self, pairs: &[(&str, &str)]) -> Self {
        self.offline_env
            .extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self
    }

    /// Adds each file of `files` that exists to the inputs.
    fn inputs_if_present(&mut self, tree: &Tree<'_>, files: &[&str]) -> Result<()> {
        for f in files {
            if tree.is_file(f)? {
                self.inputs.push(f.to_string());
            }
        }
        Ok(())
    }
}

/// Every ecosystem in the tree, in a stable order: Python, Node, Rust, Go.
pub(super) fn detect(tree: &Tree<'_>, opts: Options) -> Result<Vec<Ecosystem>> {
    let mut out = Vec::new();
    out.extend(python::detect(tree, opts)?);
    out.extend(node::detect(tree, opts)?);
    out.extend(rust(tree)?);
    out.extend(go(tree)?);
    Ok(out)
}

/// Rust: the registry and git sources go to `CARGO_HOME` (`/env/cargo`) so the offline
/// checks build from them. `--locked` when there is a `Cargo.lock`, so a stale lock fails.
fn rust(tree: &Tree<'_>) -> Result<Option<Ecosystem>> {
    if !tree.is_file("Cargo.toml")? {
        return Ok(None);
    }
    let locked = tree.is_file("Cargo.lock")?;
    let mut e = Ecosystem {
        label: format!(
            "rust ({})",
            if locked { "Cargo.lock" } else { "Cargo.toml" }
        ),
        setup: vec![if locked {
            "cargo fetch --locked".into()
        } else {
            "cargo fetch".into()
        }],
        ..Default::default()
    }
    .env(&[("CARGO_HOME", &format!("{ENV_DIR}/cargo"))])
    .offline(&[("CARGO_NET_OFFLINE", "true")]);
    if !locked {
        e.notes
            .push("rust: no Cargo.lock, so dependency versions are chosen at setup".into());
    }
    e.inputs_if_present(tree, &["Cargo.toml", "Cargo.lock"])?;
    Ok(Some(e))
}

/// Go: modules go to `/env/go/mod`; `go list` over the packages and their tests then
/// fails when `go.mod`/`go.sum` are out of date (its default `-mod=readonly`) and fetches
/// what tests import. A vendored module needs nothing fetched.
fn go(tree: &Tree<'_>) -> Result<Option<Ecosystem>> {
    if !tree.is_file("go.mod")? {
        return Ok(None);
    }
    let base = Ecosystem::default()
        .env(&[
            ("GOMODCACHE", &format!("{ENV_DIR}/go/mod")),
            ("GOPATH", &format!("{ENV_DIR}/go")),
            // The image's Go, never one downloaded at setup that checks could not use.
            ("GOTOOLCHAIN", "local"),
        ])
        .offline(&[("GOPROXY", "off")]);
    let mut e = if tree.is_file("vendor/modules.txt")? {
        Ecosystem {
            label: "go (vendor/modules.txt)".into(),
            ..base
        }
        .offline(&[("GOFLAGS", "-mod=vendor")])
    } else {
        Ecosystem {
            label: format!(
                "go ({})",
                if tree.is_file("go.sum")? {
                    "go.sum"
                } else {
                    "go.mod"
                }
            ),
            setup: vec![
                "go mod download".into(),
                "go list -deps -test ./... > /dev/null".into(),
            ],
            ..base
        }
        .offline(&[("GOFLAGS", "-mod=mod")])
    };
    e.inputs_if_present(
        tree,
        &[
            "go.mod",
            "go.sum",
            "go.work",
            "go.work.sum",
            "vendor/modules.txt",
        ],
    )?;
    Ok(Some(e))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub fn write(root: &std::path::Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn only(root: &std::path::Path) -> Ecosystem {
        let mut all = detect(&Tree::new(root), Options::default()).unwrap();
        assert_eq!(all.len(), 1, "{all:#?}");
        all.remove(0)
    }

    #[test]
    fn a_rust_crate_fetches_into_the_env_dir_and_checks_run_offline() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "Cargo.toml",
            "[package]\nname = \"semver\"\nversion = \"1.0.26\"\nedition = \"2018\"\n\n[dev-dependencies]\nserde = { version = \"1.0\", features = [\"derive\"] }\n",
        );
        let e = only(d.path());
        assert_eq!(e.label, "rust (Cargo.toml)");
        assert_eq!(e.setup, ["cargo fetch"]);
        write(d.path(), "Cargo.lock", "version = 4\n");
        let e = only(d.path());
        assert_eq!(e.label, "rust (Cargo.lock)");
        assert_eq!(e.setup, ["cargo fetch --locked"]);
        assert_eq!(e.env["CARGO_HOME"], "/env/cargo");
        assert_eq!(e.offline_env["CARGO_NET_OFFLINE"], "true");
        assert_eq!(e.inputs, ["Cargo.toml", "Cargo.lock"]);
    }

    #[test]
    fn a_go_module_downloads_and_lists_its_test_imports() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "go.mod",
            "module github.com/google/uuid\n\ngo 1.21\n\nrequire github.com/stretchr/testify v1.9.0\n",
        );
        write(d.path(), "go.sum", "");
        let e = only(d.path());
        assert_eq!(e.label, "go (go.sum)");
        assert_eq!(
            e.setup,
            ["go mod download", "go list -deps -test ./... > /dev/null"]
        );
        assert_eq!(e.env["GOMODCACHE"], "/env/go/mod");
        assert_eq!(e.env["GOPATH"], "/env/go");
        assert_eq!(e.env["GOTOOLCHAIN"], "local");
        assert_eq!(e.offline_env["GOPROXY"], "off");
        assert_eq!(e.offline_env["GOFLAGS"], "-mod=mod");
        assert_eq!(e.inputs, ["go.mod", "go.sum"]);
        // Vendored: nothing to fetch, and the checks build from vendor/.
        write(
            d.path(),
            "vendor/modules.txt",
            "# github.com/stretchr/testify v1.9.0\n",
        );
        let e = only(d.path());
        assert!(e.setup.is_empty());
        assert_eq!(e.offline_env["GOFLAGS"], "-mod=vendor");
    }

    #[test]
    fn a_monorepo_sets_up_each_ecosystem_in_a_stable_order() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "go.mod", "module example.com/x\n\ngo 1.22\n");
        write(
            d.path(),
            "package.json",
            r#"{"name": "web", "scripts": {"test": "vitest"}}"#,
        );
        write(d.path(), "package-lock.json", "{}");
        write(d.path(), "requirements.txt", "requests==2.32.3\n");
        let all = detect(&Tree::new(d.path()), Options::default()).unwrap();
        let labels: Vec<&str> = all.iter().map(|e| e.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "python (requirements.txt)",
                "node (package-lock.json)",
                "go (go.mod)"
            ]
        );
    }
}
