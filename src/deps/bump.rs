//! Applying updates with each ecosystem's own tool, so manifests and lockfiles stay
//! consistent: never a lockfile edited as text. The commands run in the setup sandbox (network,
//! no secrets) over the base commit's tree, before any agent (`crate::nodes::bump`).
//!
//! | ecosystem | in range of the requirement | outside it (a major) | lockfile maintenance |
//! |---|---|---|---|
//! | npm | `npm install --package-lock-only --ignore-scripts NAME@TO` | the same (npm rewrites the range) | `npm update --package-lock-only --ignore-scripts` |
//! | PyPI + `uv.lock` | `uv lock --upgrade-package NAME==TO` | `uv add --no-sync 'NAME>=TO'` | `uv lock --upgrade` |
//! | PyPI pins | the `NAME==FROM` line of `requirements*.txt` becomes `NAME==TO` (a manifest, not a lockfile) | the same | — |
//! | Cargo | `cargo update -p NAME@FROM --precise TO` | `cargo add NAME@TO`, then the same | `cargo update` |
//! | Go | `go get MODULE@vTO` | — (a Go major is a new module path) | `go get -u=patch ./...` |
//!
//! npm runs with `--ignore-scripts`: a bump never runs a package's install scripts.

use super::{Dependency, Ecosystem, Update, UpdateType};

/// One command to run from `dir` (relative to the repo root; `.` for the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A shell command, already quoted.
    Run { dir: String, command: String },
    /// A pinned line of a requirements file rewritten: `NAME==FROM` → `NAME==TO` (the
    /// manifest is the only record of the version; there is no lockfile).
    Repin {
        file: String,
        name: String,
        from: String,
        to: String,
    },
}

/// Why an update cannot be applied by a tool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BumpError {
    /// A Go major version lives at a new module path (`…/v2`): that is a code change.
    #[error(
        "{name} {to} is a new major version: Go puts it at a new module path ({name}/v{major}), which means changing every import; ask for it as a code change"
    )]
    GoMajor {
        name: String,
        to: String,
        major: String,
    },
    /// A name, version or directory that cannot be quoted for the shell (a NUL byte).
    #[error(
        "{0:?} cannot be passed to a shell command; the manifest or registry holds an invalid name"
    )]
    Unquotable(String),
    /// The dependency has neither a lockfile nor a pinned manifest line a tool can update.
    #[error("{name} is declared in {manifest} without a lockfile or an exact pin: nothing to bump")]
    NothingToBump { name: String, manifest: String },
}

/// `s` quoted for `sh`; a value with a NUL byte cannot be, and is refused.
fn q(s: &str) -> Result<String, BumpError> {
    shlex::try_quote(s)
        .map(|c| c.into_owned())
        .map_err(|_| BumpError::Unquotable(s.escape_debug().to_string()))
}

fn dir_of(path: &str) -> String {
    match path.rsplit_once('/') {
        Some((d, _)) if !d.is_empty() => d.to_string(),
        _ => ".".into(),
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The steps that apply `u`. `in_range` says whether the manifest's requirement already
/// admits the new version (the caller knows from `deps::version`); `None` is treated as
/// "no" for majors and "yes" otherwise.
pub fn steps(u: &Update, in_range: Option<bool>) -> Result<Vec<Step>, BumpError> {
    let d = &u.dep;
    let dir = dir_of(&d.manifest);
    let in_range = in_range.unwrap_or(u.update_type != UpdateType::Major);
    let run = |command: String| Step::Run {
        dir: dir.clone(),
        command,
    };
    Ok(match d.ecosystem {
        Ecosystem::Npm => {
            let mut cmd = String::from(
                "npm install --package-lock-only --ignore-scripts --no-audit --no-fund",
            );
            match d.requirement.as_deref().map(str::trim) {
                Some(r) if r.starts_with('~') => cmd.push_str(" --save-prefix=~"),
                Some(r) if r.chars().next().is_some_and(|c| c.is_ascii_digit()) => {
                    cmd.push_str(" --save-exact")
                }
                _ => {}
            }
            if d.dev {
                cmd.push_str(" --save-dev");
            }
            cmd.push(' ');
            cmd.push_str(&q(&format!("{}@{}", d.name, u.to))?);
            vec![run(cmd)]
        }
        Ecosystem::Pypi => match d.lockfile.as_deref().map(file_name) {
            Some("uv.lock") if in_range => vec![run(format!(
                "uv lock --upgrade-package {}",
                q(&format!("{}=={}", d.name, u.to))?
            ))],
            Some("uv.lock") => vec![run(format!(
                "uv add --no-sync{} {}",
                if d.dev { " --dev" } else { "" },
                q(&format!("{}>={}", d.name, u.to))?
            ))],
            _ if file_name(&d.manifest).starts_with("requirements") => vec![Step::Repin {
                file: d.manifest.clone(),
                name: d.name.clone(),
                from: d.current.clone(),
                to: u.to.clone(),
            }],
            _ => {
                return Err(BumpError::NothingToBump {
                    name: d.name.clone(),
                    manifest: d.manifest.clone(),
                });
            }
        },
        Ecosystem::Cargo => {
            let mut v = Vec::new();
            if !in_range {
                v.push(run(format!(
                    "cargo add{} {}",
                    if d.dev { " --dev" } else { "" },
                    q(&format!("{}@{}", d.name, u.to))?
                )));
            }
            v.push(run(format!(
                "cargo update -p {} --precise {}",
                q(&format!("{}@{}", d.name, d.current))?,
                q(&u.to)?
            )));
            v
        }
        Ecosystem::Go => {
            if u.update_type == UpdateType::Major && !u.to.contains("+incompatible") {
                return Err(BumpError::GoMajor {
                    name: d.name.clone(),
                    to: u.to.clone(),
                    major: u
                        .to
                        .trim_start_matches('v')
                        .split('.')
                        .next()
                        .unwrap_or("")
                        .to_string(),
                });
            }
            let to = if u.to.starts_with('v') {
                u.to.clone()
            } else {
                format!("v{}", u.to)
            };
            vec![run(format!("go get {}", q(&format!("{}@{to}", d.name))?))]
        }
    })
}

/// Lockfile maintenance for every manifest directory of `deps`: refresh the locked
/// versions within the manifests' ranges, one command per (ecosystem, directory).
pub fn lockfile_maintenance(deps: &[Dependency]) -> Vec<(Ecosystem, Step)> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for d in deps {
        let Some(lock) = d.lockfile.as_deref() else {
            continue;
        };
        let dir = dir_of(&d.manifest);
        if !seen.insert((d.ecosystem, dir.clone())) {
            continue;
        }
        let command = match (d.ecosystem, file_name(lock)) {
            (Ecosystem::Npm, _) => {
                "npm update --package-lock-only --ignore-scripts --no-audit --no-fund"
            }
            (Ecosystem::Pypi, "uv.lock") => "uv lock --upgrade",
            (Ecosystem::Pypi, _) => continue,
            (Ecosystem::Cargo, _) => "cargo update",
            (Ecosystem::Go, _) => "go get -u=patch ./...",
        };
        out.push((
            d.ecosystem,
            Step::Run {
                dir,
                command: command.into(),
            },
        ));
    }
    out
}

/// `text` (a requirements file) with the pin `name==from` replaced by `name==to`, matching the
/// name as PEP 503 normalises it and keeping extras, markers and comments. `None` when no
/// such pin is there.
pub fn repin(text: &str, name: &str, from: &str, to: &str) -> Option<String> {
    let norm = |s: &str| {
        s.to_ascii_lowercase()
            .replace(['_', '.'], "-")
            .trim()
            .to_string()
    };
    let want = norm(name);
    let mut found = false;
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let end = &line[body.len()..];
        if !found
            && let Some((lhs, rest)) = body.split_once("==")
            && norm(lhs.split('[').next().unwrap_or(lhs)) == want
        {
            let ver_end = rest
                .find(|c: char| c.is_whitespace() || c == ';' || c == '#' || c == ',')
                .unwrap_or(rest.len());
            if rest[..ver_end].trim() == from {
                found = true;
                out.push_str(lhs);
                out.push_str("==");
                out.push_str(to);
                out.push_str(&rest[ver_end..]);
                out.push_str(end);
                continue;
            }
        }
        out.push_str(line);
    }
    found.then_some(out)
}

/// The manifest and lockfile names each ecosystem's tools may change: after a bump, only
/// these files (beside the dependency's manifest) are carried into the work tree.
pub fn touched_files(eco: Ecosystem) -> &'static [&'static str] {
    match eco {
        Ecosystem::Npm => &["package.json", "package-lock.json", "npm-shrinkwrap.json"],
        Ecosystem::Pypi => &["pyproject.toml", "uv.lock"],
        Ecosystem::Cargo => &["Cargo.toml", "Cargo.lock"],
        Ecosystem::Go => &["go.mod", "go.sum"],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(
        eco: Ecosystem,
        name: &str,
        manifest: &str,
        lock: Option<&str>,
        req: &str,
    ) -> Dependency {
        Dependency {
            name: name.into(),
            ecosystem: eco,
            current: "1.0.0".into(),
            requirement: Some(req.into()),
            manifest: manifest.into(),
            lockfile: lock.map(String::from),
            dev: false,
            indirect: false,
        }
    }

    fn up(d: Dependency, to: &str, t: UpdateType) -> Update {
        Update {
            dep: d,
            to: to.into(),
            update_type: t,
            released_ms: None,
            changelog_url: None,
            advisory: None,
        }
    }

    #[test]
    fn each_ecosystem_bumps_with_its_own_tool() {
        let npm = up(
            dep(
                Ecosystem::Npm,
                "@acme/ui",
                "web/package.json",
                Some("web/package-lock.json"),
                "~1.0.0",
            ),
            "1.0.1",
            UpdateType::Patch,
        );
        assert_eq!(
            steps(&npm, None).unwrap(),
            vec![Step::Run {
                dir: "web".into(),
                command: "npm install --package-lock-only --ignore-scripts --no-audit --no-fund --save-prefix=~ @acme/ui@1.0.1".into()
            }]
        );
        let uv = up(
            dep(
                Ecosystem::Pypi,
                "toy-lib",
                "pyproject.toml",
                Some("uv.lock"),
                ">=1,<2",
            ),
            "2.0.0",
            UpdateType::Major,
        );
        assert_eq!(
            steps(&uv, Some(false)).unwrap(),
            vec![Step::Run {
                dir: ".".into(),
                command: "uv add --no-sync 'toy-lib>=2.0.0'".into()
            }]
        );
        let cargo = up(
            dep(
                Ecosystem::Cargo,
                "toy",
                "Cargo.toml",
                Some("Cargo.lock"),
                "1",
            ),
            "1.1.0",
            UpdateType::Minor,
        );
        assert_eq!(
            steps(&cargo, Some(true)).unwrap(),
            vec![Step::Run {
                dir: ".".into(),
                command: "cargo update -p toy@1.0.0 --precise 1.1.0".into()
            }]
        );
        let go = up(
            dep(
                Ecosystem::Go,
                "example.com/toy",
                "go.mod",
                Some("go.sum"),
                "v1.0.0",
            ),
            "v2.0.0",
            UpdateType::Major,
        );
        assert!(matches!(steps(&go, None), Err(BumpError::GoMajor { .. })));
    }

    #[test]
    fn a_requirements_pin_is_rewritten_in_place_and_nothing_else() {
        let text = "# deps\nToy_Lib[fast]==1.0.0 ; python_version>'3' # pinned\nother==1.0.0\n";
        let out = repin(text, "toy-lib", "1.0.0", "1.1.0").unwrap();
        assert_eq!(
            out,
            "# deps\nToy_Lib[fast]==1.1.0 ; python_version>'3' # pinned\nother==1.0.0\n"
        );
        assert_eq!(repin(text, "toy-lib", "0.9", "1.1.0"), None);
        assert_eq!(repin(text, "missing", "1.0.0", "1.1.0"), None);
    }
}
