//! Environment snapshots: a repo's set-up environment (the setup's outputs), kept on disk
//! and reused by later runs until its inputs change or it expires.
//!
//! A snapshot is a directory `<data>/envs/<repo>/<key>/` holding:
//! - `env/`: mounted at [`crate::sandbox::ENV_DIR`] (`/env`): the venv, `CARGO_HOME`,
//!   `GOPATH`, the setup's home;
//! - `carry/<name>/`: directories setup made inside the work tree (`node_modules`), mounted
//!   back at `/workspace/<name>`;
//! - `meta.json`: [`SnapshotMeta`].
//!
//! The same directory serves both backends (the docker backend's setup container has a
//! read-only root, so nothing outside `/env`, its home and the work tree survives setup; the
//! directory is therefore the whole snapshot). A snapshot is built under `.building/` and
//! renamed into place only when setup succeeded: a failed or timed-out setup never becomes
//! an entry, and a reader never sees half of one.
//!
//! The key ([`EnvKey`]) is the SHA-256 of everything that decides the environment: the
//! image's identity, the setup's source and commands, its environment, and the bytes of
//! every input file (manifests, lockfiles, setup script, devcontainer) at the base commit.

use crate::sweep::remove_tree;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Bumped when the layout or the conventions inside a snapshot change, so old entries are
/// never reused by a slipway that expects another shape.
const FORMAT: &str = "slipway-env-1";

/// Snapshot failures: all are host file-system errors, named with the path.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("environment cache at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("environment cache entry {path} is unreadable: {message}")]
    Meta { path: PathBuf, message: String },
}

type Result<T, E = SnapshotError> = std::result::Result<T, E>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A snapshot's key: 64 lowercase hex characters (SHA-256).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EnvKey(pub String);

impl EnvKey {
    /// The first 12 characters, for messages.
    pub fn short(&self) -> &str {
        &self.0[..12.min(self.0.len())]
    }
}

impl std::fmt::Display for EnvKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Everything the key is computed from.
#[derive(Debug, Clone, Default)]
pub struct KeyInputs<'a> {
    /// The image's identity: the engine's image ID (a content digest) for the docker backend,
    /// `host:<os-release>` for bwrap.
    pub image: &'a str,
    /// Where the setup came from, as the setup gate names it.
    pub source: &'a str,
    /// The setup commands, in order.
    pub setup: &'a [String],
    /// The environment setup runs with (not the host's proxy settings: those do not change
    /// what gets installed).
    pub env: Option<&'a BTreeMap<String, String>>,
    /// Repo-relative input files and their bytes at the base commit (`None`: absent).
    pub files: Vec<(String, Option<Vec<u8>>)>,
}

impl KeyInputs<'_> {
    /// The key: SHA-256 over a length-prefixed encoding of every field, so no two different
    /// inputs can collide by concatenation.
    pub fn key(&self) -> EnvKey {
        let mut h = Sha256::new();
        let mut put = |tag: &str, bytes: &[u8]| {
            h.update(tag.as_bytes());
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        put("format", FORMAT.as_bytes());
        put("image", self.image.as_bytes());
        put("source", self.source.as_bytes());
        for c in self.setup {
            put("setup", c.as_bytes());
        }
        for (k, v) in self.env.into_iter().flatten() {
            put("env-k", k.as_bytes());
            put("env-v", v.as_bytes());
        }
        let mut files = self.files.clone();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        for (path, bytes) in &files {
            put("file", path.as_bytes());
            match bytes {
                Some(b) => put("bytes", &Sha256::digest(b)),
                None => put("absent", b""),
            }
        }
        EnvKey(hex::encode(h.finalize()))
    }
}

/// What is recorded with a snapshot (`meta.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub key: EnvKey,
    /// The repo's name (`owner/name` or the local repo's name).
    pub repo: String,
    /// Where the setup came from (`detected from pyproject.toml`, `.slipway/setup.sh`, …).
    pub source: String,
    /// The image setup ran in (docker), or `host` (bwrap).
    pub image: String,
    /// The base commit whose files built it.
    pub base_sha: String,
    /// Unix time of creation, ms.
    pub created_ms: u64,
    /// How long setup took, ms.
    pub setup_ms: u64,
    /// Size on disk, bytes (measured once, at creation).
    pub bytes: u64,
    /// Directory names carried back into `/workspace` (e.g. `node_modules`).
    pub carry: Vec<String>,
    /// Git-ignored files setup generated in the tree (a hatch-vcs `_version.py`), kept under
    /// `generated/` and copied into each run's work tree, repo-relative.
    #[serde(default)]
    pub generated: Vec<String>,
}

/// A usable snapshot.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    /// The entry's directory (`<data>/envs/<repo>/<key>`).
    pub dir: PathBuf,
}

impl Snapshot {
    /// The directory mounted at `/env`.
    pub fn env_dir(&self) -> PathBuf {
        self.dir.join("env")
    }

    /// The host directory carried back at `/workspace/<name>`.
    pub fn carry_dir(&self, name: &str) -> PathBuf {
        self.dir.join("carry").join(name)
    }

    /// Where the generated files are kept (same relative paths as in the tree).
    pub fn generated_dir(&self) -> PathBuf {
        self.dir.join("generated")
    }

    /// Age now, given the creation time.
    pub fn age(&self) -> Duration {
        Duration::from_millis(crate::task::now_ms().saturating_sub(self.meta.created_ms))
    }
}

/// A snapshot being built: `env/` and `src/` (the base commit's tree, mounted at
/// `/workspace` during setup) under `.building/`. Dropped without [`Building::commit`], it is
/// removed.
#[derive(Debug)]
pub struct Building {
    dir: PathBuf,
    target: PathBuf,
    /// Where a replaced, expired entry goes (`<envs>/.trash`); `prune` empties it later, so
    /// a run still using the old entry keeps its mounts.
    trash: PathBuf,
    ttl: Duration,
    done: bool,
    /// The claim on `.building/<name>` ([`crate::sweep`]); released after `Drop` removed it.
    _claim: Option<crate::sweep::Claim>,
}

impl Building {
    /// The directory mounted at `/env` (read-write) during setup.
    pub fn env_dir(&self) -> PathBuf {
        self.dir.join("env")
    }

    /// The setup's home (inside `env/`, so what `pip install --user` puts there survives).
    pub fn home_dir(&self) -> PathBuf {
        self.dir.join("env").join("home")
    }

    /// The base commit's tree, mounted at `/workspace` during setup.
    pub fn src_dir(&self) -> PathBuf {
        self.dir.join("src")
    }

    /// Keeps the entry: moves each `carry` directory out of the tree, drops the tree and the
    /// home's caches, records `meta` (its `bytes` measured here) and renames the entry into
    /// place. If an entry with the same key appeared meanwhile (a concurrent run built it),
    /// that one wins and this one is removed.
    pub fn commit(mut self, mut meta: SnapshotMeta) -> Result<Snapshot> {
        let carry = self.dir.join("carry");
        std::fs::create_dir_all(&carry).map_err(io(&carry))?;
        let mut kept = Vec::new();
        for name in &meta.carry {
            let from = self.src_dir().join(name);
            if std::fs::symlink_metadata(&from).is_ok_and(|m| m.is_dir()) {
                let to = carry.join(name);
                std::fs::rename(&from, &to).map_err(io(&from))?;
                kept.push(name.clone());
            }
        }
        meta.carry = kept;
        let generated = self.dir.join("generated");
        let mut moved = Vec::new();
        for rel in &meta.generated {
            let from = self.src_dir().join(rel);
            let to = generated.join(rel);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            if std::fs::rename(&from, &to).is_ok() {
                moved.push(rel.clone());
            }
        }
        meta.generated = moved;
        remove_tree(&self.src_dir());
        // Setup's base-only git directory, if it made one.
        remove_tree(&self.dir.join("git"));
        // Download caches are not part of the environment (uv links what it installs).
        remove_tree(&self.home_dir().join(".cache"));
        meta.bytes = du(&self.dir);
        let meta_path = self.dir.join("meta.json");
        let text = serde_json::to_vec_pretty(&meta).map_err(|e| SnapshotError::Meta {
            path: meta_path.clone(),
            message: e.to_string(),
        })?;
        std::fs::write(&meta_path, text).map_err(io(&meta_path))?;
        if let Some(parent) = self.target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        if let Ok(theirs) = read_entry(&self.target) {
            if theirs.age() < self.ttl {
                // Somebody else committed the same key first and it is fresh: theirs is as
                // good, and it is the one on disk.
                remove_tree(&self.dir);
                self.done = true;
                return Ok(theirs);
            }
            // An expired entry of the same key: set it aside (a run may still have it
            // mounted) and put the new one in its place.
            std::fs::create_dir_all(&self.trash).map_err(io(&self.trash))?;
            let aside = self
                .trash
                .join(format!("{}-{}", meta.key.short(), crate::task::new_id()));
            std::fs::rename(&self.target, &aside).map_err(io(&self.target))?;
        }
        match std::fs::rename(&self.dir, &self.target) {
            Ok(()) => {}
            Err(_) if read_entry(&self.target).is_ok() => {
                // Lost a race with a concurrent build of the same key: keep theirs.
                remove_tree(&self.dir);
                self.done = true;
                return read_entry(&self.target);
            }
            Err(e) => return Err(io(&self.target)(e)),
        }
        self.done = true;
        Ok(Snapshot {
            meta,
            dir: self.target.clone(),
        })
    }
}

impl Drop for Building {
    fn drop(&mut self) {
        if !self.done {
            remove_tree(&self.dir);
        }
    }
}

/// The snapshot store under `<data>/envs`.
#[derive(Debug, Clone)]
pub struct EnvStore {
    root: PathBuf,
    ttl: Duration,
}

/// A repo name as a single path component, unique per name: the name made safe plus a hash
/// of the exact name (`acme/calc` → `acme_calc-1a2b3c4d`), so `a/b_c` and `a_b/c` never share.
fn repo_dir(repo: &str) -> String {
    let digest = Sha256::digest(repo.as_bytes());
    let safe: String = repo
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .replace("..", "__");
    format!("{safe}-{}", hex::encode(&digest[..4]))
}

impl EnvStore {
    /// The store under `data_dir/envs`; entries older than `ttl` are not reused.
    pub fn new(data_dir: &Path, ttl: Duration) -> Self {
        Self {
            root: data_dir.join("envs"),
            ttl,
        }
    }

    /// The usable snapshot for `repo` and `key`: present, complete and younger than the TTL.
    pub fn lookup(&self, repo: &str, key: &EnvKey) -> Option<Snapshot> {
        let dir = self.root.join(repo_dir(repo)).join(&key.0);
        let snap = read_entry(&dir).ok()?;
        (snap.meta.key == *key && snap.age() < self.ttl).then_some(snap)
    }

    /// Starts building the snapshot for `repo` and `key`.
    pub fn begin(&self, repo: &str, key: &EnvKey) -> Result<Building> {
        let building = self.root.join(".building");
        std::fs::create_dir_all(&building).map_err(io(&building))?;
        let name = format!("{}-{}", key.short(), crate::task::new_id());
        let claim = self.root.parent().and_then(|data| {
            crate::sweep::Claim::take(data, &name)
                .inspect_err(
                    |e| tracing::warn!(%name, error = %e, "cannot claim a build directory"),
                )
                .ok()
        });
        let dir = building.join(&name);
        for sub in ["env/home", "src"] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).map_err(io(&d))?;
        }
        Ok(Building {
            dir,
            target: self.root.join(repo_dir(repo)).join(&key.0),
            trash: self.root.join(".trash"),
            ttl: self.ttl,
            done: false,
            _claim: claim,
        })
    }

    /// Every complete entry, newest first (expired ones included; see [`Self::is_expired`]).
    pub fn list(&self) -> Result<Vec<Snapshot>> {
        let mut out = Vec::new();
        let Ok(repos) = std::fs::read_dir(&self.root) else {
            return Ok(out);
        };
        for repo in repos.filter_map(|e| e.ok()) {
            if repo.file_name().to_string_lossy().starts_with('.') || !repo.path().is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(repo.path())
                .map_err(io(&repo.path()))?
                .filter_map(|e| e.ok())
            {
                if let Ok(s) = read_entry(&entry.path()) {
                    out.push(s);
                }
            }
        }
        out.sort_by_key(|s| std::cmp::Reverse(s.meta.created_ms));
        Ok(out)
    }

    /// Whether `snap` is past the TTL.
    pub fn is_expired(&self, snap: &Snapshot) -> bool {
        snap.age() >= self.ttl
    }

    /// Removes expired entries, entries a newer one of the same repo replaced (all but the
    /// newest `keep` per repo), and scratch older than an hour (interrupted builds, replaced
    /// entries set aside, exported base trees of crashed runs); with `all`, everything. Returns the entries removed.
    pub fn prune(&self, all: bool, keep: usize) -> Result<Vec<SnapshotMeta>> {
        let mut removed = Vec::new();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for snap in self.list()? {
            let n = seen.entry(snap.meta.repo.clone()).or_default();
            *n += 1;
            if all || self.is_expired(&snap) || *n > keep {
                remove_tree(&snap.dir);
                removed.push(snap.meta);
            }
        }
        for scratch in [".building", ".trash", ".bases"] {
            let building = self.root.join(scratch);
            if let Ok(rd) = std::fs::read_dir(&building) {
                for e in rd.filter_map(|e| e.ok()) {
                    let old = e
                        .metadata()
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > Duration::from_secs(3600));
                    if all || old {
                        remove_tree(&e.path());
                    }
                }
            }
        }
        Ok(removed)
    }
}

fn read_entry(dir: &Path) -> Result<Snapshot> {
    let path = dir.join("meta.json");
    let text = std::fs::read(&path).map_err(io(&path))?;
    let meta: SnapshotMeta = serde_json::from_slice(&text).map_err(|e| SnapshotError::Meta {
        path: path.clone(),
        message: e.to_string(),
    })?;
    Ok(Snapshot {
        meta,
        dir: dir.to_path_buf(),
    })
}

/// Bytes on disk under `dir` (regular files, each hard-linked inode counted once).
fn du(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file() && seen.insert((m.dev(), m.ino())))
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests;
