//! What a repo depends on: reads manifests and lockfiles (never runs a tool, never touches
//! the network) and lists each declared registry dependency with the version it resolves
//! to today.
//!
//! Covered, at the root and in workspace members where the manifest names them:
//! - Python (`python.rs`): `requirements*.txt` at the root (`name==ver` pins);
//!   `pyproject.toml` PEP 621 `[project] dependencies` / `optional-dependencies`,
//!   `[dependency-groups]` and `[tool.uv] dev-dependencies`, versions from `uv.lock`
//!   (the member's, else the root's); uv workspace members (`[tool.uv.workspace] members`).
//! - npm (`npm.rs`): `package.json` `dependencies` / `optionalDependencies` /
//!   `devDependencies`, versions from `package-lock.json` (v2/v3 `packages`, v1
//!   `dependencies`); npm `workspaces` globs.
//! - Cargo (`cargo.rs`): `[dependencies]`, `[dev-dependencies]`, `[build-dependencies]`
//!   (and their `[target.*]` forms), `[workspace.dependencies]`, versions from
//!   `Cargo.lock`; `[workspace] members` globs. Path and git dependencies are skipped.
//! - Go (`gomod.rs`): `go.mod` `require` (with `// indirect`), `replace`d modules skipped;
//!   `go.work` `use` directories.
//!
//! Not covered: poetry/pdm/pipenv lockfiles, yarn and pnpm lockfiles (their manifests are
//! read; without `package-lock.json` only exact pins are), nested projects that no
//! workspace names.

mod cargo;
mod gomod;
mod npm;
mod python;

use std::path::{Path, PathBuf};

use super::Dependency;

/// What [`scan`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scan {
    /// Every registry dependency found, in file order per manifest, manifests in the order
    /// listed in the module doc (Python, npm, Cargo, Go), root first.
    pub deps: Vec<Dependency>,
    /// What was skipped and why, one sentence each naming the file
    /// (`package.json: \`foo\` is a git dependency (git+https://…); not updated`).
    pub warnings: Vec<String>,
}

/// Why a repo could not be scanned. Both are the user's to fix.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// A manifest or lockfile the parser cannot read. `file` is relative to the repo root;
    /// `detail` is the parser's message with its line and column.
    #[error(
        "{file} cannot be parsed: {detail}\nFix {file} (it must parse with its own tool too) and run again."
    )]
    Parse { file: String, detail: String },
    /// A file that exists but could not be read.
    #[error("{file} cannot be read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
}

/// Lists the dependencies of the repo checked out at `root`.
///
/// Errors: [`ScanError::Parse`] for the first manifest or lockfile that does not parse
/// (TOML, JSON, or go.mod syntax), [`ScanError::Io`] when one cannot be read. A missing
/// lockfile is a warning: the version in use then comes from an exact pin, or the
/// dependency is skipped with a warning.
pub fn scan(root: &Path) -> Result<Scan, ScanError> {
    let mut out = Scan::default();
    let ctx = Ctx { root };
    python::scan(&ctx, &mut out)?;
    npm::scan(&ctx, &mut out)?;
    cargo::scan(&ctx, &mut out)?;
    gomod::scan(&ctx, &mut out)?;
    Ok(out)
}

/// The repo being scanned, and file helpers relative to it.
struct Ctx<'a> {
    root: &'a Path,
}

impl Ctx<'_> {
    /// `dir/name` relative to the root, with `/` separators (`""` dir is the root).
    fn rel(dir: &str, name: &str) -> String {
        if dir.is_empty() {
            name.to_string()
        } else {
            format!("{dir}/{name}")
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn exists(&self, rel: &str) -> bool {
        self.path(rel).is_file()
    }

    /// The file's text, `None` when it does not exist.
    fn read(&self, rel: &str) -> Result<Option<String>, ScanError> {
        match std::fs::read_to_string(self.path(rel)) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ScanError::Io {
                file: rel.to_string(),
                source,
            }),
        }
    }

    fn toml(&self, rel: &str) -> Result<Option<toml::Table>, ScanError> {
        let Some(text) = self.read(rel)? else {
            return Ok(None);
        };
        text.parse::<toml::Table>()
            .map(Some)
            .map_err(|e| ScanError::Parse {
                file: rel.to_string(),
                detail: e.to_string().trim().to_string(),
            })
    }

    fn json(&self, rel: &str) -> Result<Option<serde_json::Value>, ScanError> {
        let Some(text) = self.read(rel)? else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| ScanError::Parse {
                file: rel.to_string(),
                detail: e.to_string(),
            })
    }

    /// Directories (relative to the root, `/`-separated) under `base` that match any of
    /// `patterns` (globs such as `crates/*`, `packages/**`, or plain paths) and none of
    /// `excludes`, holding `marker` (`Cargo.toml`). Sorted; `base` itself excluded.
    fn members(
        &self,
        base: &str,
        patterns: &[String],
        excludes: &[String],
        marker: &str,
    ) -> Vec<String> {
        let set = |pats: &[String]| {
            let mut b = globset::GlobSetBuilder::new();
            for p in pats {
                let p = p.trim_start_matches("./").trim_end_matches('/');
                if let Ok(g) = globset::GlobBuilder::new(p).literal_separator(true).build() {
                    b.add(g);
                }
            }
            b.build().ok()
        };
        let (Some(inc), exc) = (set(patterns), set(excludes)) else {
            return Vec::new();
        };
        let depth = if patterns.iter().any(|p| p.contains("**")) {
            4
        } else {
            patterns
                .iter()
                .map(|p| p.split('/').count())
                .max()
                .unwrap_or(1)
        };
        let base_path = self.path(base);
        let mut found: Vec<String> = walkdir::WalkDir::new(&base_path)
            .min_depth(1)
            .max_depth(depth)
            .into_iter()
            .filter_entry(|e| {
                let n = e.file_name().to_string_lossy();
                !(n.starts_with('.') || n == "node_modules" || n == "target")
            })
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_dir())
            .filter_map(|e| {
                let rel = e.path().strip_prefix(&base_path).ok()?;
                let rel = rel.to_string_lossy().replace('\\', "/");
                let hit = inc.is_match(&rel) && !exc.as_ref().is_some_and(|x| x.is_match(&rel));
                let full = Ctx::rel(base, &rel);
                (hit && self.exists(&Ctx::rel(&full, marker))).then_some(full)
            })
            .collect();
        found.sort();
        found
    }
}

/// PEP 503 normalized name: lowercase, runs of `-`, `_`, `.` as one `-`.
pub(crate) fn normalize_pypi(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests;
