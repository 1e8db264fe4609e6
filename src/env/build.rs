//! Making a repo's environment ready for a run: the image (a devcontainer's Dockerfile is
//! built once per content), then the snapshot: reused when its key matches, else built by
//! running the setup commands from the base commit's tree with network and no secrets.
//!
//! Owns the order and the safety of that: setup only ever sees the base commit's files
//! (mounted at `/workspace`) and writes only to the new snapshot's `/env` and its home; the
//! offline sandboxes that follow get the snapshot read-only ([`Prepared::mounts`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::snapshot::{EnvKey, EnvStore, KeyInputs, Snapshot, SnapshotError, SnapshotMeta};
use super::{EnvPlan, ImageSpec};
use crate::sandbox::{
    ENV_DIR, ExecOutput, HOME, Mount, Sandbox, SandboxError, SandboxPolicy, SandboxSpec, WORKSPACE,
};
use crate::workspace::{Workspaces, Worktree};

/// Why an environment could not be made ready. `SetupFailed` and `Image` are the repo's to
/// fix (the message names the file or the command); the rest are the host's.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("{0}")]
    Image(String),
    #[error(transparent)]
    Workspace(#[from] crate::workspace::WorkspaceError),
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Files that decide what any setup installs, whatever the plan's source: a setup script
/// or a devcontainer command usually installs from these, so a change to one of them on the
/// base is a new environment even when the plan does not name it.
const ALWAYS_KEYED: &[&str] = &[
    ".python-version",
    ".nvmrc",
    ".node-version",
    ".tool-versions",
    "rust-toolchain",
    "rust-toolchain.toml",
    "uv.toml",
    ".npmrc",
    ".yarnrc.yml",
    "Makefile",
    "requirements.txt",
    "requirements-dev.txt",
    "requirements-test.txt",
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "uv.lock",
    "poetry.lock",
    "Pipfile.lock",
    "package.json",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "pnpm-lock.yaml",
    "yarn.lock",
    "Cargo.toml",
    "Cargo.lock",
    "go.mod",
    "go.sum",
];

/// One setup command's result, for the transcript and the gate.
#[derive(Debug, Clone)]
pub struct SetupStep {
    pub command: String,
    pub output: ExecOutput,
}

/// What [`prepare`] needs from the run.
pub struct PrepareRequest<'a> {
    /// The repo's name (snapshots are kept per repo).
    pub repo: &'a str,
    /// The run's work tree: its base commit (`base_sha`) and git directory, from which setup
    /// gets a git directory of the base commit alone.
    pub wt: &'a Worktree,
    pub workspaces: &'a Workspaces,
    /// The base commit's tree (exported; see `Workspaces::export_base`). Moved into the
    /// snapshot being built on a miss; left alone on a hit.
    pub base_tree: PathBuf,
    /// The private index `Workspaces::export_base` left beside the base tree: lists what
    /// setup generated (untracked, git-ignored files) afterwards.
    pub base_index: PathBuf,
    pub plan: &'a EnvPlan,
    /// The setup sandbox's policy (network `Setup`, the operator's CA and proxy settings).
    pub setup_policy: SandboxPolicy,
    /// Mounts the setup sandbox gets besides `/env` (the CA bundle).
    pub setup_mounts: Vec<Mount>,
    pub run_id: &'a str,
    /// Longest the whole setup may take.
    pub timeout: Duration,
    pub cancel: &'a CancellationToken,
    /// Told when the snapshot is missing and setup is about to run (front ends say
    /// "building the environment for this repo, first run").
    pub on_miss: Option<tokio::sync::oneshot::Sender<()>>,
}

/// A ready environment.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub plan: EnvPlan,
    /// The image sandboxes run (`None`: the backend's default).
    pub image: Option<String>,
    /// The snapshot, when the plan has setup commands.
    pub snapshot: Option<Snapshot>,
    /// Whether the snapshot was reused.
    pub cached: bool,
    /// Time to make it ready, ms (a hit: the lookup; a miss: build and setup).
    pub ready_ms: u64,
    /// The setup commands' results (a miss only).
    pub steps: Vec<SetupStep>,
    pub key: Option<EnvKey>,
}

/// Setup ran and one command failed: the environment is not kept.
#[derive(Debug, Clone)]
pub struct SetupFailure {
    pub steps: Vec<SetupStep>,
    /// The failing step (the last of `steps`).
    pub command: String,
}

impl Prepared {
    /// Copies the snapshot's generated files into the run's work tree (never over a file
    /// that is there: the tree's own files win). Returns how many were copied.
    pub fn place_generated(&self, worktree: &Path) -> std::io::Result<usize> {
        let Some(snap) = &self.snapshot else {
            return Ok(0);
        };
        let mut n = 0;
        for rel in &snap.meta.generated {
            // From revision 2 the tree holds agent commits: a directory on the way may be a
            // symlink out of the tree. Never write through one (nor over anything there).
            if !super::generated::plain_path_under(worktree, rel) {
                continue;
            }
            let to = worktree.join(rel);
            if std::fs::symlink_metadata(&to).is_ok() {
                continue;
            }
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(snap.generated_dir().join(rel), &to)?;
            n += 1;
        }
        Ok(n)
    }

    /// The mounts every offline sandbox of the run gets: the snapshot's `/env` and its
    /// carried directories, read-only.
    pub fn mounts(&self) -> Vec<Mount> {
        let Some(snap) = &self.snapshot else {
            return Vec::new();
        };
        let mut m = vec![Mount::ro(snap.env_dir(), ENV_DIR)];
        for name in &snap.meta.carry {
            m.push(Mount::ro(
                snap.carry_dir(name),
                format!("{WORKSPACE}/{name}"),
            ));
        }
        m
    }

    /// Adds the environment's variables to an offline sandbox's policy: the plan's `env` and
    /// `offline_env`, its `PATH` prefix, and the setup home's user site (`pip --user`).
    pub fn apply(&self, policy: &mut SandboxPolicy) {
        apply_env(&self.plan, policy, true);
        if self.snapshot.is_some() {
            policy
                .env
                .insert("PYTHONUSERBASE".into(), format!("{ENV_DIR}/home/.local"));
            prepend_path(policy, &[format!("{ENV_DIR}/home/.local/bin")]);
        }
    }

    /// The status line: `environment: cached, 0.4 s` or `environment: built in 93.1 s`.
    pub fn status(&self) -> String {
        let secs = self.ready_ms as f64 / 1000.0;
        match (&self.snapshot, self.cached) {
            (None, _) => "environment: nothing to set up".into(),
            (Some(_), true) => format!("environment: cached, {secs:.1} s"),
            (Some(_), false) => format!("environment: built in {secs:.1} s (first run)"),
        }
    }
}

fn prepend_path(policy: &mut SandboxPolicy, dirs: &[String]) {
    if dirs.is_empty() {
        return;
    }
    let old = policy.env.get("PATH").cloned().unwrap_or_default();
    let mut path = dirs.join(":");
    if !old.is_empty() {
        path.push(':');
        path.push_str(&old);
    }
    policy.env.insert("PATH".into(), path);
}

/// Variables the dynamic loader or libc read before any program's own code runs: a repo's
/// `containerEnv` never sets them (bwrap's `setpriv` starts as root and would load them).
pub fn loader_variable(name: &str) -> bool {
    name.starts_with("LD_")
        || matches!(
            name,
            "GCONV_PATH"
                | "GLIBC_TUNABLES"
                | "LOCPATH"
                | "NLSPATH"
                | "HOSTALIASES"
                | "RESOLV_HOST_CONF"
        )
}

fn apply_env(plan: &EnvPlan, policy: &mut SandboxPolicy, offline: bool) {
    let offline_vars = offline.then_some(&plan.offline_env).into_iter().flatten();
    for (k, v) in plan.env.iter().chain(offline_vars) {
        if !loader_variable(k) {
            policy.env.insert(k.clone(), v.clone());
        }
    }
    prepend_path(policy, &plan.path_prefix);
}

/// Makes the environment of `req.plan` ready: image, then snapshot hit or setup.
/// `Ok(Err(failure))` is a setup command that failed (the repo's to fix); `Err` is
/// everything else.
pub async fn prepare(
    sandbox: &dyn Sandbox,
    store: &EnvStore,
    req: PrepareRequest<'_>,
) -> Result<Result<Prepared, SetupFailure>, PrepareError> {
    let t0 = Instant::now();
    let plan = req.plan;
    let bwrap = sandbox.backend() == crate::sandbox::Backend::Bwrap;
    let image = if bwrap {
        None
    } else {
        super::image::resolve(sandbox, req.repo, &req.base_tree, plan).await?
    };
    let mut plan_used = plan.clone();
    let refused: Vec<&String> = plan.env.keys().filter(|k| loader_variable(k)).collect();
    if !refused.is_empty() {
        plan_used.notes.push(format!(
            "not set: {} (variables the dynamic loader reads are never taken from the repo)",
            refused
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if bwrap && plan.image != ImageSpec::Default {
        plan_used.notes.push(
            "the bwrap backend runs the host's toolchains: the repo's image is not used (use the docker backend for it)".into(),
        );
    }
    let mut prepared = Prepared {
        plan: plan_used,
        image: image.clone(),
        snapshot: None,
        cached: false,
        ready_ms: 0,
        steps: Vec::new(),
        key: None,
    };
    if plan.setup.is_empty() {
        prepared.ready_ms = t0.elapsed().as_millis() as u64;
        return Ok(Ok(prepared));
    }
    let identity = sandbox.image_identity(image.as_deref()).await?;
    let mut names: Vec<&str> = plan.inputs.iter().map(String::as_str).collect();
    names.extend(ALWAYS_KEYED);
    names.sort_unstable();
    names.dedup();
    let mut files = Vec::new();
    for rel in names {
        let p = req.base_tree.join(rel);
        // A symlinked input is keyed by its link text and by the bytes it points to when
        // that stays inside the tree (never followed out of it).
        let bytes = match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let mut b = std::fs::read_link(&p)
                    .map(|t| t.to_string_lossy().into_owned().into_bytes())
                    .unwrap_or_default();
                let root = req.base_tree.canonicalize().ok();
                if let (Ok(target), Some(root)) = (p.canonicalize(), root)
                    && target.starts_with(&root)
                    && target.is_file()
                {
                    b.extend(std::fs::read(&target).unwrap_or_default());
                }
                Some(b)
            }
            Ok(_) => std::fs::read(&p).ok(),
            Err(_) => None,
        };
        files.push((rel.to_string(), bytes));
    }
    let source = plan.source.to_string();
    // What setup installs also depends on the index and registry it is pointed at.
    let mut keyed_env = plan.env.clone();
    for (k, v) in &req.setup_policy.env {
        let upper = k.to_ascii_uppercase();
        if upper.contains("INDEX") || upper.contains("REGISTRY") || upper.ends_with("PROXY") {
            keyed_env.insert(format!("setup:{k}"), v.clone());
        }
    }
    let key = KeyInputs {
        image: &identity,
        source: &source,
        setup: &plan.setup,
        env: Some(&keyed_env),
        files,
    }
    .key();
    prepared.key = Some(key.clone());
    if let Some(snap) = store.lookup(req.repo, &key) {
        prepared.snapshot = Some(snap);
        prepared.cached = true;
        prepared.ready_ms = t0.elapsed().as_millis() as u64;
        return Ok(Ok(prepared));
    }
    if let Some(tx) = req.on_miss {
        let _ = tx.send(());
    }
    let building = store.begin(req.repo, &key)?;
    let src = building.src_dir();
    std::fs::remove_dir(&src).map_err(|source| PrepareError::Io {
        path: src.clone(),
        source,
    })?;
    std::fs::rename(&req.base_tree, &src).map_err(|source| PrepareError::Io {
        path: req.base_tree.clone(),
        source,
    })?;
    let mut policy = req.setup_policy;
    apply_env(plan, &mut policy, false);
    prepend_path(&mut policy, &[format!("{HOME}/.local/bin")]);
    let mut mounts = vec![Mount::rw(building.env_dir(), ENV_DIR)];
    mounts.extend(req.setup_mounts);
    // Setup sees a git directory of the base commit alone (shallow, HEAD detached at it),
    // never the run's, which holds the agent's commits from revision 2 on.
    let setup_git = building.env_dir().with_file_name("git");
    let git_dir = req
        .workspaces
        .base_git_dir(req.wt, &setup_git, &req.base_index)
        .await?;
    // Cargo takes a crates.io mirror only from a config file: in the setup home, and in the
    // environment's CARGO_HOME when detection put it under /env (the offline sandbox reads
    // that one, and its cached crates came through the mirror).
    let vars = |k: &str| policy.env.get(k).cloned();
    let mut cargo_homes = vec![building.home_dir().join(".cargo")];
    // Only a plain path under /env (the repo's devcontainer.json may set CARGO_HOME: a `..`
    // or a second root must never reach the host's join).
    if let Some(rel) = policy
        .env
        .get("CARGO_HOME")
        .and_then(|h| h.strip_prefix(&format!("{ENV_DIR}/")))
        .map(Path::new)
        .filter(|rel| {
            rel.components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
        })
    {
        cargo_homes.push(building.env_dir().join(rel));
    }
    for dir in cargo_homes {
        crate::deps::registry::write_cargo_home_config(&dir, vars).map_err(|source| {
            PrepareError::Io {
                path: dir.clone(),
                source,
            }
        })?;
    }
    let spec = SandboxSpec {
        workspace: src.clone(),
        git_dir,
        home: building.home_dir(),
        policy,
        run_id: req.run_id.to_string(),
        image: image.clone(),
        mounts,
        pool: None,
    };
    let session = sandbox.start(&spec).await?;
    let deadline = Instant::now() + req.timeout;
    let mut steps = Vec::new();
    let mut failed = None;
    for command in &plan.setup {
        let left = deadline.saturating_duration_since(Instant::now());
        let out = match session.exec(command, left, req.cancel).await {
            Ok(o) => o,
            Err(e) => {
                let _ = session.close().await;
                return Err(e.into());
            }
        };
        let ok = out.success();
        steps.push(SetupStep {
            command: command.clone(),
            output: out,
        });
        if !ok {
            failed = Some(command.clone());
            break;
        }
    }
    session.close().await?;
    if let Some(command) = failed {
        // `building` is dropped here: a failed setup never becomes a cache entry.
        return Ok(Err(SetupFailure { steps, command }));
    }
    let setup_ms = t0.elapsed().as_millis() as u64;
    let ignored = req
        .workspaces
        .ignored_files(req.wt, &src, &req.base_index)
        .await?;
    let (generated, skipped) = super::generated::carried(ignored, &src, &plan.carry);
    if let Some(why) = skipped {
        prepared.plan.notes.push(why);
    }
    let meta = SnapshotMeta {
        key,
        repo: req.repo.to_string(),
        source,
        image: image.unwrap_or_else(|| identity.clone()),
        base_sha: req.wt.base_sha.clone(),
        created_ms: crate::task::now_ms(),
        setup_ms,
        bytes: 0,
        carry: plan.carry.clone(),
        generated,
    };
    let snap = building.commit(meta)?;
    prepared.snapshot = Some(snap);
    prepared.steps = steps;
    prepared.ready_ms = t0.elapsed().as_millis() as u64;
    Ok(Ok(prepared))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repo_never_sets_what_the_dynamic_loader_reads() {
        let mut plan =
            crate::env::resolve(tempfile::tempdir().unwrap().path(), &Default::default()).unwrap();
        plan.env
            .insert("LD_PRELOAD".into(), "/home/sandbox/x.so".into());
        plan.env.insert("GLIBC_TUNABLES".into(), "x".into());
        plan.env.insert("GREETING".into(), "hi".into());
        let mut policy =
            SandboxPolicy::for_run(&Default::default(), crate::sandbox::NetworkAccess::None);
        apply_env(&plan, &mut policy, true);
        assert!(!policy.env.contains_key("LD_PRELOAD"));
        assert!(!policy.env.contains_key("GLIBC_TUNABLES"));
        assert_eq!(policy.env["GREETING"], "hi");
    }
}
