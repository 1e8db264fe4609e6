//! `[sandbox]`: the sandbox section of `slipway.toml`, owned here with its defaults.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Which sandbox backend runs a task (`SLIPWAY_SANDBOX`, `[sandbox] backend`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxBackendChoice {
    /// A Docker-compatible engine when one answers, else bubblewrap.
    #[default]
    Auto,
    Docker,
    Bwrap,
}

/// A backend name that is none of `auto`, `docker`, `bwrap` (the name as given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a sandbox backend; expected one of auto, docker, bwrap")]
pub struct UnknownBackend(pub String);

impl std::str::FromStr for SandboxBackendChoice {
    type Err = UnknownBackend;
    fn from_str(s: &str) -> Result<Self, UnknownBackend> {
        match s {
            "auto" => Ok(Self::Auto),
            "docker" => Ok(Self::Docker),
            "bwrap" => Ok(Self::Bwrap),
            other => Err(UnknownBackend(other.into())),
        }
    }
}

/// The default image of the `docker` backend, made by `slipway sandbox build`.
pub const DEFAULT_IMAGE: &str = "slipway-sandbox:local";

/// `[sandbox]`: the container every run executes in.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    pub backend: SandboxBackendChoice,
    /// Image for the `docker` backend; `slipway sandbox build` makes the default one.
    pub image: String,
    /// Memory limit, MiB (container memory and swap; bwrap: RLIMIT_DATA).
    pub memory_mb: u64,
    /// CPU limit, cores (docker backend).
    pub cpus: f64,
    /// Process limit inside the sandbox.
    pub pids: u32,
    /// Default timeout of one command, seconds; the model may ask for less, never more.
    pub command_timeout_s: u64,
    /// Bytes of one command's output returned to the model (head and tail are kept).
    pub output_cap_bytes: usize,
    /// Size of the `/tmp` tmpfs, MiB; also the largest file a command may write.
    pub tmp_mb: u64,
    /// Timeout of the setup step (network on, no secrets), seconds.
    pub setup_timeout_s: u64,
    /// Extra host paths the bwrap backend binds read-only (toolchains outside `/usr`).
    pub bwrap_ro_paths: Vec<PathBuf>,
    /// How long an environment snapshot is reused, hours (then it is built again).
    pub env_ttl_h: u64,
    /// Pre-started sandboxes kept per recently used repo (0: none).
    pub warm: u32,
    /// CA bundle (PEM) given to the setup sandbox only, for registries behind a
    /// TLS-inspecting proxy: `""` = the host's system bundle
    /// (`/etc/ssl/certs/ca-certificates.crt`) when it exists; `"none"` = none (the image's own
    /// trust store); else an absolute path. See [`super::setup_env`].
    pub ca_bundle: String,
    /// Host variables copied into the setup sandbox only (proxies, index URLs); a proxy
    /// variable in both cases. A name that looks like a secret (TOKEN, KEY, SECRET, PASSWORD,
    /// AUTH, CREDENTIAL…) is a configuration error.
    pub setup_env: Vec<String>,
    /// Disk the work tree and the sandbox home of one run may use together, MiB; past it
    /// the agent is stopped and the run halts (`agent::disk`). 0 = no limit.
    pub max_disk_mb: u64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            backend: SandboxBackendChoice::Auto,
            image: DEFAULT_IMAGE.into(),
            memory_mb: 4096,
            cpus: 2.0,
            pids: 512,
            command_timeout_s: 600,
            output_cap_bytes: 32 * 1024,
            tmp_mb: 1024,
            setup_timeout_s: 900,
            bwrap_ro_paths: Vec::new(),
            env_ttl_h: 24,
            warm: 0,
            ca_bundle: String::new(),
            setup_env: [
                "HTTPS_PROXY",
                "HTTP_PROXY",
                "NO_PROXY",
                "PIP_INDEX_URL",
                "npm_config_registry",
            ]
            .map(String::from)
            .to_vec(),
            max_disk_mb: 2048,
        }
    }
}
