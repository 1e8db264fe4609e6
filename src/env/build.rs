//! Making a repo's environment ready for a run: the image (a devcontainer's Dockerfile is
//! built once per content), then the snapshot: reused when its key matches, else built by
//! running the setup commands from the base commit's tree with network and no secrets.
//!
//! Owns the order and the safety of that: setup only ever sees the base commit's files
//! (mounted at `/workspace`) and writes only to the new snapshot's `/env` and its home; the
//! offline sandboxes that follow get the snapshot read-only ([`Prepared::mounts`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::snapshot::{EnvKey, EnvStore, KeyInputs, Snapshot, SnapshotError, SnapshotMeta};
use super::{EnvPlan, ImageSpec};
use crate::sandbox::{
    ENV_DIR, ExecOutput, HOME, Mount, Sandbox, SandboxError, SandboxPolicy, SandboxSpec, WORKSPACE,
};

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
    /// The base commit the tree was exported from.
    pub base_sha: &'a str,
    /// The base commit's tree (exported; see `Workspaces::export_base`). Moved into the
    /// snapshot being built on a miss; left alone on a hit.
    pub base_tree: PathBuf,
    /// The run's git directory, mounted read-only at `/workspace/.git` during setup (tools
    /// such as setuptools-scm read versions from it).
    pub git_dir: &'a Path,
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
            if !plain_path_under(worktree, rel) {
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

/// Whether every existing component of `rel` under `root` is a real directory (no symlink),
/// and `rel` has no `..` or absolute part: a write there stays inside `root`.
fn plain_path_under(root: &Path, rel: &str) -> bool {
    let rel = Path::new(rel);
    if rel
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return false;
    }
    let mut at = root.to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    for c in &parts[..parts.len().saturating_sub(1)] {
        at.push(c);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return false,
            Err(_) => return true, // the rest is created fresh, as directories
        }
    }
    true
}

/// At most this many generated files are carried into the work tree, each at most
/// [`GENERATED_MAX_BYTES`]; more means setup built something big (a `build/` tree), which
/// the checks should make themselves.
const GENERATED_MAX_FILES: usize = 200;
/// Largest generated file carried, bytes.
const GENERATED_MAX_BYTES: u64 = 1 << 20;

/// The git-ignored files setup generated in the base tree outside the carried directories
/// (a hatch-vcs or setuptools-scm `_version.py`, a compiled `.so` of an editable install),
/// repo-relative; and a note when there were too many to carry. Tracked files and untracked
/// files that are not ignored are never listed (an agent's commit would pick those up).
fn generated_files(
    git_dir: &Path,
    src: &Path,
    index: &Path,
    carry: &[String],
) -> (Vec<String>, Option<String>) {
    let out = std::process::Command::new("git")
        .arg(format!("--git-dir={}", git_dir.display()))
        .arg(format!("--work-tree={}", src.display()))
        .args([
            "ls-files",
            "-z",
            "--others",
            "--ignored",
            "--exclude-standard",
        ])
        .env("GIT_INDEX_FILE", index)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .current_dir(src)
        .output();
    let Some(out) = out.ok().filter(|o| o.status.success()) else {
        return (
            Vec::new(),
            Some("generated files could not be listed".into()),
        );
    };
    let mut files = Vec::new();
    for rel in out.stdout.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        let rel = String::from_utf8_lossy(rel).into_owned();
        let top = rel.split('/').next().unwrap_or("");
        if carry.iter().any(|c| c == top) {
            continue;
        }
        let small = std::fs::symlink_metadata(src.join(&rel))
            .is_ok_and(|m| m.is_file() && m.len() <= GENERATED_MAX_BYTES);
        if small {
            files.push(rel);
        }
    }
    if files.len() > GENERATED_MAX_FILES {
        let n = files.len();
        return (
            Vec::new(),
            Some(format!(
                "setup generated {n} ignored files in the tree (more than {GENERATED_MAX_FILES}): none carried into the checks"
            )),
        );
    }
    files.sort();
    (files, None)
}

/// The image tag a devcontainer Dockerfile builds into: per repo and per content of the
/// build context, Dockerfile and args (so an unchanged Dockerfile is built once).
fn dockerfile_tag(
    repo: &str,
    context: &Path,
    dockerfile: &str,
    args: &BTreeMap<String, String>,
) -> String {
    let mut h = Sha256::new();
    h.update(dockerfile.as_bytes());
    for (k, v) in args {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(context)
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    files.sort();
    for f in files {
        h.update(
            f.strip_prefix(context)
                .unwrap_or(&f)
                .to_string_lossy()
                .as_bytes(),
        );
        h.update([0]);
        h.update(Sha256::digest(std::fs::read(&f).unwrap_or_default()));
    }
    let slug: String = repo
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let digest: String = h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("localhost/slipway-env-{slug}:{digest}")
}

/// Makes `dir/.git`: a git directory holding only `base_sha` (fetched shallow from
/// `from`), HEAD detached at it and `index` (the base tree's) as its index. Returns its path.
fn base_only_git_dir(
    dir: &Path,
    from: &Path,
    base_sha: &str,
    index: &Path,
) -> std::io::Result<PathBuf> {
    let git = |args: &[&str]| -> std::io::Result<()> {
        let out = std::process::Command::new("git")
            .args(args)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "git {}: {}",
                args.first().unwrap_or(&""),
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    };
    let dir_s = dir.display().to_string();
    git(&["init", "-q", "--template=", &dir_s])?;
    let gd = dir.join(".git");
    let gd_arg = format!("--git-dir={}", gd.display());
    let from = from.display().to_string();
    git(&[
        &gd_arg,
        "fetch",
        "-q",
        "--no-tags",
        "--depth=1",
        &from,
        base_sha,
    ])?;
    git(&[&gd_arg, "update-ref", "--no-deref", "HEAD", base_sha])?;
    if index.is_file() {
        std::fs::copy(index, gd.join("index"))?;
    }
    Ok(gd)
}

/// Refuses a Dockerfile whose `ADD` fetches a URL or that has `ONBUILD` triggers: the
/// engine fetches `ADD` URLs itself, from the host's network, where nothing is fenced.
fn refuse_remote_sources(path: &Path, name: &str) -> Result<(), PrepareError> {
    let text = std::fs::read_to_string(path).map_err(|source| PrepareError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    for (i, line) in text.lines().enumerate() {
        let words: Vec<String> = line
            .split_whitespace()
            .map(|w| w.to_ascii_lowercase())
            .collect();
        let remote_add = words.first().is_some_and(|w| w == "add")
            && words.iter().skip(1).any(|w| w.contains("://"));
        let onbuild = words.first().is_some_and(|w| w == "onbuild");
        if remote_add || onbuild {
            return Err(PrepareError::Image(format!(
                "{name} line {}: {} is not supported (the engine would fetch it from the host's network, unfenced); download in the devcontainer's setup commands instead",
                i + 1,
                if onbuild { "ONBUILD" } else { "ADD from a URL" }
            )));
        }
    }
    Ok(())
}

/// The image the plan runs in, built first when it is a Dockerfile.
async fn resolve_image(
    sandbox: &dyn Sandbox,
    repo: &str,
    tree: &Path,
    plan: &EnvPlan,
) -> Result<Option<String>, PrepareError> {
    match &plan.image {
        ImageSpec::Default => Ok(None),
        ImageSpec::Named(name) => {
            sandbox.ensure_image(name).await?;
            Ok(Some(name.clone()))
        }
        ImageSpec::Dockerfile {
            dockerfile,
            context,
            args,
        } => {
            let ctx = tree.join(context);
            let ctx = ctx.canonicalize().map_err(|source| PrepareError::Io {
                path: ctx.clone(),
                source,
            })?;
            let root = tree.canonicalize().map_err(|source| PrepareError::Io {
                path: tree.to_path_buf(),
                source,
            })?;
            if !ctx.starts_with(&root) {
                return Err(PrepareError::Image(format!(
                    "the devcontainer's build.context {context} is outside the repository"
                )));
            }
            let df = tree.join(dockerfile);
            let df = df.canonicalize().map_err(|source| PrepareError::Io {
                path: df.clone(),
                source,
            })?;
            refuse_remote_sources(&df, dockerfile)?;
            let rel = df
                .strip_prefix(&ctx)
                .map(|p| p.to_string_lossy().into_owned())
                .map_err(|_| {
                    PrepareError::Image(format!(
                        "the Dockerfile {dockerfile} must be inside the build context {context}"
                    ))
                })?;
            let tag = dockerfile_tag(repo, &ctx, &rel, args);
            sandbox.build_image(&ctx, &rel, args, &tag).await?;
            Ok(Some(tag))
        }
    }
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
        resolve_image(sandbox, req.repo, &req.base_tree, plan).await?
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
    let git_dir = base_only_git_dir(&setup_git, req.git_dir, req.base_sha, &req.base_index)
        .map_err(|e| PrepareError::Io {
            path: setup_git.clone(),
            source: e,
        })?;
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
    let (generated, skipped) = generated_files(req.git_dir, &src, &req.base_index, &plan.carry);
    if let Some(why) = skipped {
        prepared.plan.notes.push(why);
    }
    let meta = SnapshotMeta {
        key,
        repo: req.repo.to_string(),
        source,
        image: image.unwrap_or_else(|| identity.clone()),
        base_sha: req.base_sha.to_string(),
        created_ms: super::snapshot::now_ms(),
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
    fn generated_files_never_go_through_a_symlink_out_of_the_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let wt = tmp.path().join("wt");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(wt.join("src/ok")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, wt.join("src/pkg")).unwrap();
        assert!(plain_path_under(&wt, "src/ok/_version.py"));
        assert!(plain_path_under(&wt, "src/new/deeper/_version.py"));
        assert!(
            !plain_path_under(&wt, "src/pkg/_version.py"),
            "through a link"
        );
        assert!(!plain_path_under(&wt, "../outside/x.py"));
        assert!(!plain_path_under(&wt, "/etc/passwd"));
    }

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
