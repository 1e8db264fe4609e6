//! Node: the lockfile picks the package manager (`packageManager` in `package.json` breaks
//! a tie); pnpm and yarn run through corepack, at the version `packageManager` pins.
//! `node_modules` is made in the base copy's `/workspace` and carried into the checks; its
//! `.bin` goes on `PATH`. Install scripts do not run unless the repo opts in with
//! `.slipway/policy.toml` `[setup] allow_scripts = true`.
//!
//! - `package-lock.json` / `npm-shrinkwrap.json` → `npm ci` (fails when out of sync);
//! - `pnpm-lock.yaml` → `pnpm install --frozen-lockfile`;
//! - `yarn.lock` → yarn 1: `--frozen-lockfile`; yarn 2+ (`.yarnrc.yml`, a `packageManager`
//!   of `yarn@2` or later, or a lockfile with `__metadata`): `--immutable`, with the
//!   `node-modules` linker so there is a `node_modules` to carry;
//! - no lockfile → `npm install` (versions chosen at setup; noted).

use super::{Ecosystem, Options};
use crate::env::{Result, Tree, WORKSPACE};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Manager {
    Npm,
    Pnpm,
    Yarn,
}

/// Lockfiles in the order they are preferred when `packageManager` does not decide.
const LOCKS: [(&str, Manager); 4] = [
    ("package-lock.json", Manager::Npm),
    ("npm-shrinkwrap.json", Manager::Npm),
    ("pnpm-lock.yaml", Manager::Pnpm),
    ("yarn.lock", Manager::Yarn),
];

/// The Node ecosystem, when the tree has a `package.json`.
pub(super) fn detect(tree: &Tree<'_>, opts: Options) -> Result<Option<Ecosystem>> {
    let Some(pkg) = tree.json("package.json")? else {
        return Ok(None);
    };
    // `packageManager`: "pnpm@9.12.0+sha512…" → (pnpm, major 9).
    let declared = pkg["packageManager"].as_str().and_then(|s| {
        let (name, version) = s.split_once('@')?;
        let manager = match name {
            "npm" => Manager::Npm,
            "pnpm" => Manager::Pnpm,
            "yarn" => Manager::Yarn,
            _ => return None,
        };
        let major = version.split('.').next()?.parse::<u32>().ok();
        Some((manager, major))
    });
    let mut present = Vec::new();
    for (file, m) in LOCKS {
        if tree.is_file(file)? {
            present.push((file, m));
        }
    }
    let chosen = declared
        .and_then(|(m, _)| present.iter().find(|(_, pm)| *pm == m))
        .or(present.first())
        .copied();
    let mut e = Ecosystem::default().env(&[
        // corepack fetches the pinned pnpm/yarn without asking, whatever `packageManager` says.
        ("COREPACK_ENABLE_DOWNLOAD_PROMPT", "0"),
        ("COREPACK_ENABLE_STRICT", "0"),
    ]);
    e.carry.push("node_modules".into());
    e.path_prefix.push(format!("{WORKSPACE}/node_modules/.bin"));
    e.inputs.push("package.json".into());
    let no_scripts = !opts.allow_scripts;
    let flag = |on: bool, f: &str| if on { format!(" {f}") } else { String::new() };
    let command = match chosen {
        Some((file, Manager::Npm)) => {
            e.inputs.push(file.into());
            format!(
                "npm ci{} --no-audit --no-fund",
                flag(no_scripts, "--ignore-scripts")
            )
        }
        Some((file, Manager::Pnpm)) => {
            e.inputs.push(file.into());
            format!(
                "corepack pnpm install --frozen-lockfile{}",
                flag(no_scripts, "--ignore-scripts")
            )
        }
        Some((file, Manager::Yarn)) => {
            e.inputs.push(file.into());
            let declared_major = declared
                .filter(|(m, _)| *m == Manager::Yarn)
                .and_then(|(_, major)| major);
            let berry = tree.is_file(".yarnrc.yml")?
                || declared_major.is_some_and(|m| m >= 2)
                || tree
                    .read("yarn.lock")?
                    .is_some_and(|t| t.contains("__metadata:"));
            if berry {
                e.notes.push(
                    "node: yarn runs with the node-modules linker (not Plug'n'Play) so checks find node_modules"
                        .into(),
                );
                let skip_build = no_scripts && declared_major != Some(2);
                format!(
                    "YARN_NODE_LINKER=node-modules{} corepack yarn install --immutable{}",
                    flag(no_scripts, "YARN_ENABLE_SCRIPTS=false"),
                    flag(skip_build, "--mode=skip-build")
                )
            } else {
                format!(
                    "corepack yarn install --frozen-lockfile --non-interactive{}",
                    flag(no_scripts, "--ignore-scripts")
                )
            }
        }
        None => {
            e.notes
                .push("node: no lockfile, so npm chooses dependency versions at setup".into());
            format!(
                "npm install{} --no-audit --no-fund",
                flag(no_scripts, "--ignore-scripts")
            )
        }
    };
    e.label = format!("node ({})", chosen.map_or("package.json", |(f, _)| f));
    if present.len() > 1
        && let Some((file, _)) = chosen
    {
        e.notes.push(format!(
            "node: several lockfiles ({}); {file} is used",
            present
                .iter()
                .map(|(f, _)| *f)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if chosen.is_none() && (tree.is_file("bun.lock")? || tree.is_file("bun.lockb")?) {
        e.notes
            .push("node: bun lockfiles are not supported; npm install is used".into());
    }
    if opts.allow_scripts {
        e.notes
            .push("node: install scripts run (.slipway/policy.toml [setup] allow_scripts)".into());
    }
    e.inputs_if_present(tree, &[".npmrc", ".yarnrc.yml", "pnpm-workspace.yaml"])?;
    e.setup.push(command);
    Ok(Some(e))
}

#[cfg(test)]
mod tests {
    use super::super::tests::write;
    use super::*;

    fn node(root: &std::path::Path, allow_scripts: bool) -> Ecosystem {
        detect(
            &Tree::new(root),
            Options {
                allow_scripts,
                needs_pytest: false,
            },
        )
        .unwrap()
        .unwrap()
    }

    const PACKAGE_JSON: &str = r#"{
  "name": "undici-like",
  "version": "7.0.0",
  "engines": { "node": ">=22" },
  "scripts": { "test": "node --test", "prepare": "husky" },
  "devDependencies": { "borp": "^0.19.0" }
}"#;

    #[test]
    fn npm_ci_without_scripts_and_node_modules_carried() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "package.json", PACKAGE_JSON);
        write(d.path(), "package-lock.json", r#"{"lockfileVersion": 3}"#);
        let e = node(d.path(), false);
        assert_eq!(e.label, "node (package-lock.json)");
        assert_eq!(e.setup, ["npm ci --ignore-scripts --no-audit --no-fund"]);
        assert_eq!(e.carry, ["node_modules"]);
        assert_eq!(e.path_prefix, ["/workspace/node_modules/.bin"]);
        assert_eq!(e.inputs, ["package.json", "package-lock.json"]);
        // The repo opts in to install scripts.
        let e = node(d.path(), true);
        assert_eq!(e.setup, ["npm ci --no-audit --no-fund"]);
    }

    #[test]
    fn pnpm_and_both_yarns_run_frozen_through_corepack() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "package.json",
            r#"{"name": "x", "packageManager": "pnpm@9.12.3+sha512.cce0f9de9c5a7c95bef944169cc5dfe8741abfb145078c0d508b868056848a87c81e626246cb60967cbd7fd29a6c062ef73ff840d96b3c86c40ac92cf4a813ee"}"#,
        );
        write(d.path(), "pnpm-lock.yaml", "lockfileVersion: '9.0'\n");
        write(d.path(), "package-lock.json", "{}");
        let e = node(d.path(), false);
        // packageManager decides between two lockfiles.
        assert_eq!(e.label, "node (pnpm-lock.yaml)");
        assert_eq!(
            e.setup,
            ["corepack pnpm install --frozen-lockfile --ignore-scripts"]
        );
        assert!(e.notes[0].contains("several lockfiles"), "{:?}", e.notes);

        let d = tempfile::tempdir().unwrap();
        write(d.path(), "package.json", r#"{"name": "x"}"#);
        write(
            d.path(),
            "yarn.lock",
            "# yarn lockfile v1\n\n\"left-pad@^1.3.0\":\n  version \"1.3.0\"\n",
        );
        assert_eq!(
            node(d.path(), false).setup,
            ["corepack yarn install --frozen-lockfile --non-interactive --ignore-scripts"]
        );
        write(d.path(), ".yarnrc.yml", "nodeLinker: pnp\n");
        let e = node(d.path(), false);
        assert_eq!(
            e.setup,
            [
                "YARN_NODE_LINKER=node-modules YARN_ENABLE_SCRIPTS=false corepack yarn install --immutable --mode=skip-build"
            ]
        );
        assert_eq!(e.inputs, ["package.json", "yarn.lock", ".yarnrc.yml"]);
        assert_eq!(
            node(d.path(), true).setup,
            ["YARN_NODE_LINKER=node-modules corepack yarn install --immutable"]
        );
    }

    #[test]
    fn no_lockfile_installs_and_says_so() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "package.json", PACKAGE_JSON);
        let e = node(d.path(), false);
        assert_eq!(e.label, "node (package.json)");
        assert_eq!(
            e.setup,
            ["npm install --ignore-scripts --no-audit --no-fund"]
        );
        assert!(e.notes[0].contains("no lockfile"));
    }

    #[test]
    fn an_invalid_package_json_names_the_line() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "package.json", "{\n  \"name\": \"x\",\n}\n");
        let err = detect(&Tree::new(d.path()), Options::default()).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid package.json: line 3"),
            "{err}"
        );
    }
}
