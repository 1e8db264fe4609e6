//! A repo's environment: which image runs it, which setup commands fetch its dependencies,
//! and what the offline checks and the agent need to find them (`DESIGN.md` §5
//! "Environment resolution").
//!
//! [`resolve`] is pure logic over a directory holding the **base commit's** tree: it reads
//! manifests, lockfiles, `.slipway/setup.sh` and the devcontainer, and returns an
//! [`EnvPlan`]. It runs nothing, starts no sandbox and uses no network; the `setup` node
//! runs the plan and the snapshot store keys it (`snapshot.rs`, `pool.rs`).
//!
//! Sources, first match wins: `[[repos]] image`/`setup` in `slipway.toml`, then
//! `.devcontainer/devcontainer.json` (or `.devcontainer.json`), then `.slipway/setup.sh`, then
//! detection from manifests (Python, Node, Rust, Go). The image and the setup commands are
//! each taken from the first source that names them, so a config `image` with no config
//! `setup` still runs the devcontainer's commands, the setup script or the detected ones.
//!
//! Sandbox conventions every plan follows (the setup node and the backends rely on them):
//! the work tree is at `/workspace`, the environment directory at [`ENV_DIR`] (`/env`): the
//! Python venv at [`VENV`], Cargo's home at `/env/cargo`, Go's module cache at `/env/go/mod`;
//! Node's `node_modules` stays in the work tree and is carried into the checks.
//!
//! Owns choosing the environment; it must not run commands, read the host's environment
//! variables, or decide what a failed setup means (that is the `setup` node).

pub mod build;
mod detect;
mod devcontainer;
mod generated;
mod image;
pub mod pool;
mod resolve;
pub mod snapshot;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::gates::policy::PolicyError;
use crate::repos::RepoConfig;

pub use resolve::resolve;

/// Where the environment directory is mounted in the sandbox (read-write during setup,
/// read-only for checks and the agent). Same value as `sandbox::ENV_DIR`.
pub const ENV_DIR: &str = "/env";

/// The Python virtual environment detected setup creates and checks run from.
pub const VENV: &str = "/env/venv";

/// Where the work tree (or, during setup, the base commit's copy) is mounted.
pub const WORKSPACE: &str = "/workspace";

/// The `[[repos]]` keys that shape a repo's environment (`slipway.toml`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoEnvConfig {
    /// `[[repos]] image`: the docker image, over the devcontainer's and the default image.
    pub image: Option<String>,
    /// `[[repos]] setup`: one shell command, over the devcontainer's commands,
    /// `.slipway/setup.sh` and detection. `Some("")` means "nothing to set up".
    pub setup: Option<String>,
}

impl From<&RepoConfig> for RepoEnvConfig {
    fn from(r: &RepoConfig) -> Self {
        Self {
            image: r.image.clone(),
            setup: r.setup.clone(),
        }
    }
}

/// Where a repo's environment came from: the first source, in the documented order, that
/// supplied anything (the `setup` gate names it; [`EnvPlan::notes`] say where the other
/// parts came from when they fell through to a later source).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EnvSource {
    /// `[[repos]] image` and/or `setup` in `slipway.toml`.
    Config,
    /// A devcontainer file; `path` is repo-relative (`.devcontainer/devcontainer.json`).
    Devcontainer {
        /// The file used, relative to the repo root.
        path: String,
    },
    /// `.slipway/setup.sh`.
    SetupScript,
    /// Detection from manifests and lockfiles; one entry per ecosystem in setup order, each
    /// naming the file that decided it (`python (uv.lock)`, `node (package-lock.json)`).
    Detected {
        /// The ecosystems found, in the order their setup runs.
        what: Vec<String>,
    },
    /// Nothing to set up and no image named: the default image as it is.
    None,
}

impl std::fmt::Display for EnvSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Config => f.write_str("slipway.toml [[repos]]"),
            Self::Devcontainer { path } => f.write_str(path),
            Self::SetupScript => f.write_str(resolve::SETUP_SCRIPT),
            Self::Detected { what } => write!(f, "detected: {}", what.join(", ")),
            Self::None => f.write_str("nothing to set up"),
        }
    }
}

/// Which image the docker backend runs (bwrap always runs the host's toolchains).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ImageSpec {
    /// `[sandbox] image`.
    Default,
    /// An image by reference (`ghcr.io/acme/dev:latest`), pulled when missing.
    Named(String),
    /// Built from a Dockerfile in the repo. Both paths are relative to the repo root and stay
    /// inside it (`.` is the root itself).
    Dockerfile {
        /// The Dockerfile, e.g. `.devcontainer/Dockerfile`.
        dockerfile: String,
        /// The build context directory, e.g. `.` or `.devcontainer`.
        context: String,
        /// `--build-arg` values, by name.
        args: BTreeMap<String, String>,
    },
}

/// What the sandbox needs for one repo: the image, the setup commands and what the checks
/// must see afterwards. Built by [`resolve`]; every field is deterministic for one tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvPlan {
    /// Where it came from.
    pub source: EnvSource,
    /// Which image the docker backend runs.
    pub image: ImageSpec,
    /// Shell commands run in order in `/workspace` (the base copy) with network, each with
    /// `sh -c`; empty = nothing to set up.
    pub setup: Vec<String>,
    /// Environment for setup AND checks/agent (containerEnv, `VIRTUAL_ENV`, `CARGO_HOME`…).
    /// Never holds `PATH`: see [`EnvPlan::path_prefix`].
    pub env: BTreeMap<String, String>,
    /// Only for the offline checks/agent (`GOPROXY=off`, `CARGO_NET_OFFLINE=true`, …).
    pub offline_env: BTreeMap<String, String>,
    /// Directories under `/workspace` that setup produces and checks need (`node_modules`).
    pub carry: Vec<String>,
    /// Directories prepended to the sandbox `PATH`, first one first (`/env/venv/bin`).
    pub path_prefix: Vec<String>,
    /// Repo-relative files whose bytes key the snapshot (manifests, lockfiles, setup.sh,
    /// devcontainer, Dockerfile), sorted, no duplicates.
    pub inputs: Vec<String>,
    /// Human notes for the setup gate (ignored devcontainer keys, `remoteUser` handling…).
    pub notes: Vec<String>,
}

/// Why a repo's environment cannot be resolved. None of these is retryable as is: the repo's
/// files (at the base commit) must change, so each names the file and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// A file that decides the environment does not parse (JSON with comments, TOML, JSON).
    #[error("invalid {file}: line {line}, column {column}: {message}")]
    Syntax {
        /// Repo-relative path.
        file: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// A file parses but a key has the wrong shape (`build.dockerfile` is not a string, a
    /// Dockerfile that does not exist…).
    #[error("invalid {file}: {key}: {message}")]
    Invalid {
        /// Repo-relative path.
        file: String,
        /// The key, dotted (`build.args.VERSION`).
        key: String,
        /// What is wrong and what is expected.
        message: String,
    },
    /// A path that is a link where a regular file must be, or that leads out of the repo.
    #[error("refused {file}: {reason}")]
    Unsafe {
        /// Repo-relative path.
        file: String,
        /// Why it is refused.
        reason: String,
    },
    /// A file exists but cannot be read.
    #[error("cannot read {file}: {source}")]
    Read {
        /// Repo-relative path.
        file: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `.slipway/policy.toml` (its `[setup]` table says whether install scripts may run).
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

/// Result alias for this module.
pub type Result<T, E = EnvError> = std::result::Result<T, E>;

/// 1-based line and column of byte `offset` in `text` (columns count characters).
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

/// `rel` (a `/`-separated repo-relative path) without `.` and `..` parts; `None` when it
/// leaves the repo or is absolute.
fn normalize(rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    })
}

/// The repo's file tree, read safely: only files that resolve inside the root, so a link
/// in the base commit cannot make slipway read (or echo in an error) a host file.
struct Tree<'a> {
    root: &'a Path,
}

impl<'a> Tree<'a> {
    fn new(root: &'a Path) -> Self {
        Self { root }
    }

    /// Where `rel` really is, when it exists and resolves inside the root.
    fn inside(&self, rel: &str) -> Result<Option<PathBuf>> {
        let path = self.root.join(rel);
        if std::fs::symlink_metadata(&path).is_err() {
            return Ok(None);
        }
        let (Ok(real), Ok(root)) = (path.canonicalize(), self.root.canonicalize()) else {
            // A dangling link: nothing there.
            return Ok(None);
        };
        if !real.starts_with(&root) {
            return Err(EnvError::Unsafe {
                file: rel.into(),
                reason: "it is a link that leads out of the repository".into(),
            });
        }
        Ok(Some(real))
    }

    /// Whether `rel` is a regular file inside the repo.
    fn is_file(&self, rel: &str) -> Result<bool> {
        Ok(self.inside(rel)?.is_some_and(|p| p.is_file()))
    }

    /// Whether `rel` is a directory inside the repo.
    fn is_dir(&self, rel: &str) -> Result<bool> {
        Ok(self.inside(rel)?.is_some_and(|p| p.is_dir()))
    }

    /// The text of `rel`; `None` when there is no such file.
    fn read(&self, rel: &str) -> Result<Option<String>> {
        match self.inside(rel)? {
            Some(p) if p.is_file() => {
                std::fs::read_to_string(&p)
                    .map(Some)
                    .map_err(|source| EnvError::Read {
                        file: rel.into(),
                        source,
                    })
            }
            _ => Ok(None),
        }
    }

    /// Names of the regular files directly in directory `rel` (`""` for the root), sorted.
    fn files_in(&self, rel: &str) -> Result<Vec<String>> {
        let dir = if rel.is_empty() { "." } else { rel };
        let Some(path) = self.inside(dir)? else {
            return Ok(Vec::new());
        };
        let Ok(rd) = std::fs::read_dir(&path) else {
            return Ok(Vec::new());
        };
        let mut out: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Parses `rel` as TOML; `None` when there is no such file.
    fn toml(&self, rel: &str) -> Result<Option<toml::Table>> {
        let Some(text) = self.read(rel)? else {
            return Ok(None);
        };
        toml::from_str::<toml::Table>(&text).map(Some).map_err(|e| {
            let (line, column) = line_col(&text, e.span().map_or(0, |s| s.start));
            EnvError::Syntax {
                file: rel.into(),
                line,
                column,
                message: e.message().to_string(),
            }
        })
    }

    /// Parses `rel` as strict JSON; `None` when there is no such file.
    fn json(&self, rel: &str) -> Result<Option<serde_json::Value>> {
        let Some(text) = self.read(rel)? else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| EnvError::Syntax {
                file: rel.into(),
                line: e.line(),
                column: e.column(),
                message: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized_and_kept_inside_the_repo() {
        assert_eq!(
            normalize(".devcontainer/../Dockerfile").unwrap(),
            "Dockerfile"
        );
        assert_eq!(normalize(".devcontainer/.").unwrap(), ".devcontainer");
        assert_eq!(normalize(".").unwrap(), ".");
        assert_eq!(normalize(".devcontainer/.."), Some(".".into()));
        assert_eq!(normalize("../x"), None);
        assert_eq!(normalize("/etc/passwd"), None);
    }

    #[test]
    fn a_link_out_of_the_repo_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), d.path().join("package.json"))
            .unwrap();
        let err = Tree::new(d.path()).read("package.json").unwrap_err();
        assert!(err.to_string().contains("refused package.json"), "{err}");
        // A link inside the repo is fine.
        std::fs::write(d.path().join("base.txt"), "requests\n").unwrap();
        std::os::unix::fs::symlink("base.txt", d.path().join("requirements.txt")).unwrap();
        assert_eq!(
            Tree::new(d.path())
                .read("requirements.txt")
                .unwrap()
                .unwrap(),
            "requests\n"
        );
    }

    #[test]
    fn repos_image_and_setup_come_from_slipway_toml() {
        let r: RepoConfig = toml::from_str(
            "name = \"acme/api\"\nimage = \"ghcr.io/acme/dev:latest\"\nsetup = \"make deps\"\n",
        )
        .unwrap();
        assert_eq!(
            RepoEnvConfig::from(&r),
            RepoEnvConfig {
                image: Some("ghcr.io/acme/dev:latest".into()),
                setup: Some("make deps".into()),
            }
        );
        let r: RepoConfig = toml::from_str("name = \"acme/api\"").unwrap();
        assert_eq!(RepoEnvConfig::from(&r), RepoEnvConfig::default());
    }

    #[test]
    fn line_and_column_count_from_one() {
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("ab", 0), (1, 1));
    }
}
