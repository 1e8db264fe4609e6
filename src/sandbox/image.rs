//! `slipway sandbox build`: the default sandbox image, made on a machine with no registry.
//!
//! A Debian root filesystem is built from Debian's packages with `mmdebstrap` (or
//! `debootstrap` plus tar), then imported into the engine through its API
//! (`POST /images/create?fromSrc=-`, which Docker and Podman both implement). The package
//! list is `deploy/sandbox/packages.txt`, shared with `deploy/sandbox/Dockerfile`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use bollard::query_parameters::CreateImageOptionsBuilder;
use futures::StreamExt;
use tokio::process::Command;

use super::docker::DockerSandbox;
use super::{Result, SandboxError};

/// The packages, one per line, `#` comments allowed.
pub const PACKAGES: &str = include_str!("../../deploy/sandbox/packages.txt");

/// The package names from [`PACKAGES`].
pub fn packages() -> Vec<&'static str> {
    PACKAGES
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// What a build did.
#[derive(Debug)]
pub struct BuildSummary {
    pub image: String,
    pub rootfs_bytes: u64,
    pub bootstrap_ms: u64,
    pub import_ms: u64,
}

fn host_suite() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
                .map(|s| s.trim_matches('"').to_string())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "bookworm".into())
}

async fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .output()
        .await
        .map_err(|e| SandboxError::Spawn(format!("{what}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: String = err
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        Err(SandboxError::Spawn(format!("{what} failed: {tail}")))
    }
}

/// Builds the root filesystem tarball at `tar`.
async fn bootstrap(tar: &Path, work: &Path) -> Result<()> {
    let suite = host_suite();
    let include = packages().join(",");
    if Path::new("/usr/bin/mmdebstrap").exists() {
        return run(
            Command::new("mmdebstrap")
                .arg("--variant=minbase")
                .arg(format!("--include={include}"))
                .arg(&suite)
                .arg(tar),
            "mmdebstrap",
        )
        .await;
    }
    if Path::new("/usr/sbin/debootstrap").exists() {
        let root = work.join("rootfs");
        run(
            Command::new("debootstrap")
                .arg("--variant=minbase")
                .arg(format!("--include={include}"))
                .arg(&suite)
                .arg(&root),
            "debootstrap",
        )
        .await?;
        let res = run(
            Command::new("tar")
                .arg("-C")
                .arg(&root)
                .arg("-cf")
                .arg(tar)
                .arg("."),
            "tar",
        )
        .await;
        let _ = std::fs::remove_dir_all(&root);
        return res;
    }
    Err(SandboxError::Spawn(
        "neither mmdebstrap nor debootstrap is installed; apt-get install mmdebstrap".into(),
    ))
}

/// Builds `image` into the engine behind `engine`. `work` holds the temporary tarball,
/// removed afterwards whatever happens.
pub async fn build(engine: &DockerSandbox, image: &str, work: &Path) -> Result<BuildSummary> {
    std::fs::create_dir_all(work).map_err(|e| SandboxError::Spawn(e.to_string()))?;
    let tar: PathBuf = work.join(format!("rootfs-{}.tar", crate::task::new_id()));
    let result = build_from(engine, image, &tar, work).await;
    let _ = std::fs::remove_file(&tar);
    result
}

async fn build_from(
    engine: &DockerSandbox,
    image: &str,
    tar: &Path,
    work: &Path,
) -> Result<BuildSummary> {
    let t0 = Instant::now();
    bootstrap(tar, work).await?;
    let bootstrap_ms = t0.elapsed().as_millis() as u64;
    let rootfs_bytes = std::fs::metadata(tar).map(|m| m.len()).unwrap_or(0);
    let t1 = Instant::now();
    let file = tokio::fs::File::open(tar)
        .await
        .map_err(|e| SandboxError::Spawn(e.to_string()))?;
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
    let opts = CreateImageOptionsBuilder::new()
        .from_src("-")
        // The full reference goes in `repo` (Docker allows a tag there); Podman's
        // compatible API ignores a separate `tag`.
        .repo(image)
        .changes(vec![
            "WORKDIR /workspace".into(),
            "CMD [\"sleep\", \"infinity\"]".into(),
        ])
        .build();
    let mut progress =
        engine
            .client()
            .create_image(Some(opts), Some(bollard::body_try_stream(stream)), None);
    while let Some(item) = progress.next().await {
        let info = item.map_err(|e| SandboxError::Engine(format!("image import: {e}")))?;
        if let Some(err) = info.error_detail.and_then(|d| d.message) {
            return Err(SandboxError::Engine(format!("image import: {err}")));
        }
    }
    if !engine.image_exists(image).await? {
        return Err(SandboxError::Engine(format!(
            "the engine accepted the import but has no image {image}"
        )));
    }
    Ok(BuildSummary {
        image: image.to_string(),
        rootfs_bytes,
        bootstrap_ms,
        import_ms: t1.elapsed().as_millis() as u64,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_package_list_has_the_basics() {
        let p = super::packages();
        for want in ["git", "python3", "build-essential"] {
            assert!(p.contains(&want));
        }
    }
}
