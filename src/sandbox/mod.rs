//! Sandboxes: where every command of a run executes (setup, the agent's `run` tool, checks).
//!
//! One policy, [`SandboxPolicy`], is decided here and enforced by both backends:
//! - network: none, except for the setup step ([`NetworkAccess::Setup`]), which gets a
//!   network of its own, never the host's namespace, fenced from the host and from cloud
//!   metadata ([`fence`]); setup alone also gets the operator's CA bundle and allowlisted
//!   proxy variables ([`setup_env`], [`SandboxPolicy::for_setup`]);
//! - identity: an unprivileged uid and gid ([`user`]), never root; the directories it
//!   writes are given to it on the host;
//! - environment: built from scratch by [`sandbox_env`]; no host variable is inherited, so no
//!   host secret gets in;
//! - the run's work tree read-write at `/workspace`, its git directory read-only at
//!   `/workspace/.git`; everything else read-only; `/tmp` a tmpfs;
//! - every process a command starts ends with it (no background process outlives its
//!   command, so nothing the agent runs is alive while the host reads or writes the clone);
//! - memory, CPU and process limits; a per-command timeout and an output cap.
//!
//! Backends: [`docker::DockerSandbox`] (bollard, any Docker-compatible engine, Podman
//! included) and [`bwrap::BwrapSandbox`] (bubblewrap namespaces). This module must not know
//! about agents, tools or git.

pub mod bwrap;
pub mod docker;
pub mod fence;
pub mod image;
mod output;
mod owned;
pub mod reap;
pub mod settings;
pub mod setup_env;
mod slirp;
pub mod user;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::sandbox::settings::SandboxBackendChoice;
use crate::sandbox::settings::SandboxConfig;

pub use output::CappedOutput;

/// Sandbox failures. `NoBackend`, `ImageMissing` and `EngineUnavailable` are the operator's
/// to fix (the message says how); the others stop the run.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "no sandbox available: no Docker-compatible engine answered{detail} and bubblewrap is not installed; start Podman (podman system service) and set DOCKER_HOST, or apt-get install bubblewrap"
    )]
    NoBackend { detail: String },
    #[error(
        "container engine unavailable at {host}: {message}; start it or set DOCKER_HOST, or set SLIPWAY_SANDBOX=bwrap"
    )]
    EngineUnavailable { host: String, message: String },
    #[error("sandbox image {0} is missing; build it with `slipway sandbox build`")]
    ImageMissing(String),
    #[error("container engine error: {0}")]
    Engine(String),
    /// `slipway sandbox build` failed at `step` (a tool's name, e.g. `mmdebstrap`); the
    /// message ends with the tool's last lines of stderr or what to install.
    #[error("building the sandbox image failed at {step}: {message}")]
    ImageBuild { step: &'static str, message: String },
    #[error("cannot start the sandbox: {0}")]
    Spawn(String),
    #[error("the run was cancelled")]
    Cancelled,
    #[error("{0}")]
    Unsupported(String),
    /// A repo's image is not in the engine and pulling it failed.
    #[error(
        "the image {image} could not be pulled: {message}; check the image name ([[repos]] image or the devcontainer's image) and the engine's registry access, or load it into the engine"
    )]
    ImagePull { image: String, message: String },
    #[error(
        "building {dockerfile} failed: {message}; fix the Dockerfile (its build has no network: fetch dependencies in the devcontainer's setup commands, or build the image yourself and name it in [[repos]] image)"
    )]
    Build { dockerfile: String, message: String },
    /// Setup would need network, and a separate, fenced one cannot be had here: setup is
    /// refused rather than run on the host's network. The operator's to fix.
    #[error("setup refused: {0}")]
    SetupNetwork(#[from] fence::FenceError),
    /// `[sandbox] ca_bundle` names a file that is not there.
    #[error(
        "the CA bundle {path} ([sandbox] ca_bundle) does not exist; fix the path, or set ca_bundle = \"none\""
    )]
    CaBundleMissing { path: PathBuf },
    /// A directory the sandbox writes could not be given to the sandbox user
    /// ([`user::hand_over`]); the run stops rather than run the sandbox as root.
    #[error(
        "cannot give {path} to the sandbox user (uid {uid}): {detail}; slipway must run as root to sandbox as another user, or own its data directory",
        uid = user::SANDBOX_UID
    )]
    Ownership { path: PathBuf, detail: String },
}

pub type Result<T, E = SandboxError> = std::result::Result<T, E>;

/// Which backend ran (the report's `sandbox.backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Docker,
    Bwrap,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Docker => "docker",
            Self::Bwrap => "bwrap",
        }
    }
}

/// Network a sandbox gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkAccess {
    /// Loopback only: the agent loop and the checks.
    None,
    /// Only the setup step (dependency fetch), never with secrets: a network namespace of its
    /// own with outbound access (docker: the engine's bridge; bwrap: slirp4netns), fenced by
    /// blackhole routes from the host's addresses and cloud metadata ([`fence`]) before the
    /// command starts. Where that cannot be had, starting the sandbox fails with
    /// [`SandboxError::SetupNetwork`].
    Setup,
}

/// Resource limits of one sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// MiB.
    pub memory_mb: u64,
    /// Cores.
    pub cpus: f64,
    /// Processes.
    pub pids: u32,
    /// Longest one command may run; it is killed then.
    pub command_timeout: Duration,
    /// Output bytes kept per command (head and tail).
    pub output_cap_bytes: usize,
    /// MiB of `/tmp`; also the largest single file a command may write.
    pub tmp_mb: u64,
}

/// The whole policy one sandbox enforces. Built by [`SandboxPolicy::for_run`]; never
/// assembled piecemeal elsewhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxPolicy {
    pub network: NetworkAccess,
    /// The complete environment inside; nothing else is inherited.
    pub env: BTreeMap<String, String>,
    pub limits: Limits,
    /// Extra host paths bound read-only (bwrap only; e.g. a toolchain outside `/usr`).
    pub extra_ro_paths: Vec<PathBuf>,
}

impl SandboxPolicy {
    /// The policy for a run's sandbox with the given network.
    pub fn for_run(cfg: &SandboxConfig, network: NetworkAccess) -> Self {
        Self {
            network,
            env: sandbox_env(&cfg.bwrap_ro_paths),
            limits: Limits {
                memory_mb: cfg.memory_mb,
                cpus: cfg.cpus,
                pids: cfg.pids,
                command_timeout: Duration::from_secs(cfg.command_timeout_s),
                output_cap_bytes: cfg.output_cap_bytes,
                tmp_mb: cfg.tmp_mb,
            },
            extra_ro_paths: cfg.bwrap_ro_paths.clone(),
        }
    }
}

/// What the setup sandbox gets: its policy and the extra mounts (the CA bundle) to append to
/// [`SandboxSpec::mounts`].
#[derive(Debug, Clone, PartialEq)]
pub struct SetupSandbox {
    pub policy: SandboxPolicy,
    pub mounts: Vec<Mount>,
}

impl SandboxPolicy {
    /// The policy of the setup sandbox: the run policy with [`NetworkAccess::Setup`], plus
    /// the CA bundle `[sandbox] ca_bundle` names (bound read-only at
    /// [`setup_env::SETUP_CA_BUNDLE`], named by every [`setup_env::CA_ENV`] variable) and the
    /// host variables captured from `[sandbox] setup_env`. The only place setup's extras are
    /// decided; no other sandbox gets them.
    ///
    /// Errors: [`SandboxError::CaBundleMissing`] when a configured bundle is not a file.
    pub fn for_setup(cfg: &SandboxConfig, host: &setup_env::SetupHostEnv) -> Result<SetupSandbox> {
        let mut policy = Self::for_run(cfg, NetworkAccess::Setup);
        // One setup command may take as long as the whole setup may (a long `npm ci`).
        policy.limits.command_timeout = Duration::from_secs(cfg.setup_timeout_s);
        let mut mounts = Vec::new();
        let ca = setup_env::CaBundle::of(cfg);
        if let Some(path) = ca.path() {
            if !path.is_file() {
                return Err(SandboxError::CaBundleMissing {
                    path: path.to_path_buf(),
                });
            }
            mounts.push(Mount::ro(path, setup_env::SETUP_CA_BUNDLE));
            for var in setup_env::CA_ENV {
                policy
                    .env
                    .insert(var.to_string(), setup_env::SETUP_CA_BUNDLE.to_string());
            }
        }
        for (k, v) in host.vars() {
            // `capture` refused slipway's own names; never let a host value replace one.
            policy.env.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Ok(SetupSandbox { policy, mounts })
    }
}

/// The first of the system directories holding an executable `name`.
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    ["/usr/bin", "/bin", "/usr/local/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// The environment inside every sandbox, built from constants: no host value is copied.
/// `HOME` is the run's own persistent home ([`HOME`]), so what the setup step fetched
/// (pip `--user`, cargo and npm caches) is there for the offline agent and checks. `bin` directories of extra read-only paths go on `PATH`.
pub fn sandbox_env(extra_ro_paths: &[PathBuf]) -> BTreeMap<String, String> {
    let mut path = String::new();
    for p in extra_ro_paths {
        let bin = p.join("bin");
        path.push_str(&bin.display().to_string());
        path.push(':');
    }
    path.push_str("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    [
        ("PATH", path.as_str()),
        ("HOME", HOME),
        ("TMPDIR", "/tmp"),
        ("LANG", "C.UTF-8"),
        ("LC_ALL", "C.UTF-8"),
        ("TERM", "dumb"),
        ("CI", "true"),
        ("PYTHONDONTWRITEBYTECODE", "1"),
        ("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
        ("XDG_CACHE_HOME", "/home/sandbox/.cache"),
        ("NO_COLOR", "1"),
        // The clone's git directory is owned by the host's user, not the sandbox's: without
        // this, git inside refuses the repository ("dubious ownership"). Command-scope
        // configuration (what `git -c` passes to its children), which git honours for
        // safe.directory.
        ("GIT_CONFIG_PARAMETERS", "'safe.directory'='*'"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// What a sandbox is started for.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    /// Host path of the run's clone, mounted at [`WORKSPACE`].
    pub workspace: PathBuf,
    pub policy: SandboxPolicy,
    /// Host path of the clone's git directory, mounted read-only at `/workspace/.git`.
    pub git_dir: PathBuf,
    /// Host path of the run's home directory, mounted read-write at [`HOME`]; shared by the
    /// setup sandbox and the offline one.
    pub home: PathBuf,
    /// Labels the container (and names it) for cleanup.
    pub run_id: String,
    /// The image this sandbox runs (docker backend): a repo's own image or its environment
    /// snapshot. `None` is the backend's default (`[sandbox] image`). bwrap ignores it: it
    /// always runs the host's read-only `/usr`.
    pub image: Option<String>,
    /// Extra bind mounts, applied in order after the work tree and its git directory (so a
    /// target inside `/workspace` lands on top of the clone): the environment snapshot at
    /// [`ENV_DIR`], `node_modules`, a CA bundle.
    pub mounts: Vec<Mount>,
    /// The repo whose warm pool this sandbox belongs to (docker: the `slipway.pool` label);
    /// `None` for a run's own sandbox. See `crate::env::pool`.
    pub pool: Option<String>,
}

/// One bind mount of a host path into a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Absolute host path (file or directory); it must exist.
    pub host: PathBuf,
    /// Absolute path inside the sandbox.
    pub target: String,
    /// Read-write when true; read-only otherwise.
    pub writable: bool,
}

impl Mount {
    /// A read-only bind of `host` at `target`.
    pub fn ro(host: impl Into<PathBuf>, target: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            target: target.into(),
            writable: false,
        }
    }

    /// A read-write bind of `host` at `target`.
    pub fn rw(host: impl Into<PathBuf>, target: impl Into<String>) -> Self {
        Self {
            writable: true,
            ..Self::ro(host, target)
        }
    }
}

/// Where the run's clone appears inside the sandbox.
pub const WORKSPACE: &str = "/workspace";
/// The run's home inside the sandbox.
pub const HOME: &str = "/home/sandbox";
/// Where a repo's environment (the setup's outputs: venv, caches, toolchain homes) appears
/// inside the sandbox: read-write for the setup that builds it, read-only for everything else.
pub const ENV_DIR: &str = "/env";

/// The result of one command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecOutput {
    /// `None` when the command was killed (timeout) before it exited.
    pub exit_code: Option<i64>,
    /// stdout and stderr, interleaved as they arrived, capped (head and tail kept).
    pub output: String,
    /// Bytes dropped from the middle by the cap.
    pub omitted_bytes: usize,
    pub timed_out: bool,
    pub duration_ms: u64,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }

    /// The output as the model and reports see it: the text (terminal control sequences
    /// stripped, whoever built this output), then a line that states the exit, any timeout
    /// and the cap.
    pub fn render(&self, cap: usize) -> String {
        let mut s = crate::untrusted::strip_controls(&self.output);
        if !s.is_empty() && !s.ends_with('\n') {
            s.push('\n');
        }
        if self.timed_out {
            s.push_str("[killed: the command hit its timeout]\n");
        }
        match self.exit_code {
            Some(c) => s.push_str(&format!("[exit code {c}]")),
            None => s.push_str("[no exit code: killed]"),
        }
        if self.omitted_bytes > 0 {
            s.push_str(&format!(
                "\n[output capped at {cap} bytes: {} bytes omitted from the middle]",
                self.omitted_bytes
            ));
        }
        s
    }
}

/// A long-running process in a sandbox with its stdio piped (an MCP server). Its stderr is
/// discarded. Dropping it ends the process (bwrap) or leaves it to the sandbox's close
/// (docker).
pub struct StdioProcess {
    pub stdout: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    pub stdin: Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
    pub guard: Box<dyn std::any::Any + Send + Sync>,
}

/// A sandbox backend.
#[async_trait]
pub trait Sandbox: Send + Sync {
    fn backend(&self) -> Backend;
    /// What the report names as the image.
    fn image(&self) -> String;
    /// Checks, before a run stores anything, that sandboxes can start (e.g. the image
    /// exists).
    async fn preflight(&self) -> Result<()>;
    /// Starts a sandbox for `spec`. Errors leave nothing running.
    async fn start(&self, spec: &SandboxSpec) -> Result<Box<dyn Session>>;
    /// What identifies the root file system `image` (`None`: the default) gives a sandbox,
    /// for environment snapshot keys: the engine's image ID (`sha256:…`, a content digest)
    /// for docker; for bwrap, the host's OS release and package database state.
    async fn image_identity(&self, image: Option<&str>) -> Result<String>;
    /// Makes sure `image` (a repo's `[[repos]] image` or devcontainer `image`) is in the
    /// engine, pulling it when missing. bwrap has nothing to pull and answers
    /// [`SandboxError::Unsupported`].
    async fn ensure_image(&self, image: &str) -> Result<()>;
    /// Builds a Dockerfile (a devcontainer's `build`) into `tag` unless `tag` exists.
    /// `context` is a host directory; `dockerfile` is relative to it. Docker only: bwrap
    /// answers [`SandboxError::Unsupported`].
    async fn build_image(
        &self,
        context: &std::path::Path,
        dockerfile: &str,
        args: &BTreeMap<String, String>,
        tag: &str,
    ) -> Result<()>;
}

/// A started sandbox. Close it when done; dropping it unclosed also cleans up, in the
/// background.
#[async_trait]
pub trait Session: Send + Sync {
    /// Runs `command` with `sh -c` in `/workspace`. Killed at `timeout` (capped by the
    /// policy) or when `cancel` fires (then `Err(Cancelled)`).
    async fn exec(
        &self,
        command: &str,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<ExecOutput>;
    /// Starts `argv` (no shell) with stdio piped, under the same policy, with no timeout: for
    /// MCP servers that live as long as the run.
    async fn spawn_stdio(&self, argv: &[String]) -> Result<StdioProcess>;
    /// Ends every process [`Session::spawn_stdio`] started and returns once none of them
    /// runs, leaving the sandbox usable for `exec` (bwrap). The docker backend runs its
    /// stdio servers in a sidecar of their own, which is closed whole instead: its default
    /// does nothing.
    async fn stop_stdio(&self) -> Result<()> {
        Ok(())
    }
    /// Stops and removes everything the sandbox started.
    async fn close(&self) -> Result<()>;
    /// The engine's container ID (docker), for reports and tests; `None` for bwrap.
    fn container_id(&self) -> Option<String> {
        None
    }
}

/// Picks the backend for `choice`: `auto` means a Docker-compatible engine when one answers,
/// else bubblewrap.
pub async fn select(
    choice: SandboxBackendChoice,
    cfg: &SandboxConfig,
    docker_host: Option<&str>,
) -> Result<Arc<dyn Sandbox>> {
    match choice {
        SandboxBackendChoice::Docker => {
            let d = docker::DockerSandbox::connect(docker_host, &cfg.image).await?;
            Ok(Arc::new(d))
        }
        SandboxBackendChoice::Bwrap => Ok(Arc::new(bwrap::BwrapSandbox::detect()?)),
        SandboxBackendChoice::Auto => {
            match docker::DockerSandbox::connect(docker_host, &cfg.image).await {
                Ok(d) => Ok(Arc::new(d)),
                Err(docker_err) => match bwrap::BwrapSandbox::detect() {
                    Ok(b) => {
                        tracing::info!(reason = %docker_err, "no container engine; using bwrap");
                        Ok(Arc::new(b))
                    }
                    Err(_) => Err(SandboxError::NoBackend {
                        detail: format!(" ({docker_err})"),
                    }),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_holds_no_host_value() {
        let env = sandbox_env(&[]);
        assert!(!env.contains_key("GITHUB_TOKEN"));
        assert_eq!(env["HOME"], HOME);
        assert!(
            env.keys()
                .all(|k| !k.contains("TOKEN") && !k.contains("KEY"))
        );
    }

    #[test]
    fn rendering_states_the_cap_and_the_timeout() {
        let o = ExecOutput {
            exit_code: None,
            output: "x".into(),
            omitted_bytes: 10,
            timed_out: true,
            duration_ms: 1,
        };
        let r = o.render(100);
        assert!(r.contains("timeout"));
        assert!(r.contains("capped at 100 bytes: 10 bytes omitted"));
        assert!(!o.success());
    }

    #[test]
    fn the_model_sees_no_terminal_control_sequences() {
        let o = ExecOutput {
            exit_code: Some(1),
            output: "\x1b[1;31mE\x1b[0m assert 1 == 2\x1b]0;owned\x07\x08\n".into(),
            omitted_bytes: 0,
            timed_out: false,
            duration_ms: 1,
        };
        assert_eq!(o.render(100), "E assert 1 == 2\n[exit code 1]");
    }
}
