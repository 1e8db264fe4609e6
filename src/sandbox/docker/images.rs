//! The docker backend's images: whether one exists and its labels, its identity for
//! environment snapshot keys, pulling a repo's image, and building a devcontainer
//! Dockerfile (with no network).

use std::collections::{BTreeMap, HashMap};

use bollard::query_parameters::CreateImageOptionsBuilder;
use futures::StreamExt;

use super::{DockerSandbox, engine_err};
use crate::sandbox::{Result, SandboxError};

impl DockerSandbox {
    /// Whether the image exists in the engine.
    pub async fn image_exists(&self, image: &str) -> Result<bool> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(engine_err(e)),
        }
    }

    /// The labels of `image`, or `None` when the engine has no such image.
    pub async fn image_labels(&self, image: &str) -> Result<Option<HashMap<String, String>>> {
        match self.docker.inspect_image(image).await {
            Ok(info) => Ok(Some(info.config.and_then(|c| c.labels).unwrap_or_default())),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(engine_err(e)),
        }
    }

    /// The image's ID (`sha256:…`), for environment snapshot keys.
    pub(super) async fn identity(&self, image: Option<&str>) -> Result<String> {
        let image = image.unwrap_or(&self.image);
        match self.docker.inspect_image(image).await {
            Ok(i) => Ok(i.id.unwrap_or_else(|| image.to_string())),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Err(SandboxError::ImageMissing(image.to_string())),
            Err(e) => Err(engine_err(e)),
        }
    }

    /// Pulls `image` unless the engine has it.
    pub(super) async fn pull_if_missing(&self, image: &str) -> Result<()> {
        if self.image_exists(image).await? {
            return Ok(());
        }
        let opts = CreateImageOptionsBuilder::new().from_image(image).build();
        let mut progress = self.docker.create_image(Some(opts), None, None);
        let failed = |message: String| SandboxError::ImagePull {
            image: image.to_string(),
            message,
        };
        while let Some(item) = progress.next().await {
            let info = item.map_err(|e| failed(e.to_string()))?;
            if let Some(err) = info.error_detail.and_then(|d| d.message) {
                return Err(failed(err));
            }
        }
        if self.image_exists(image).await? {
            Ok(())
        } else {
            Err(failed(
                "the engine reported no error but has no such image".into(),
            ))
        }
    }

    /// Builds `dockerfile` (relative to `context`) into `tag` unless it exists, with no
    /// network.
    pub(super) async fn build(
        &self,
        context: &std::path::Path,
        dockerfile: &str,
        args: &BTreeMap<String, String>,
        tag: &str,
    ) -> Result<()> {
        if self.image_exists(tag).await? {
            return Ok(());
        }
        let failed = |message: String| SandboxError::Build {
            dockerfile: dockerfile.to_string(),
            message,
        };
        let mut tar = tar::Builder::new(Vec::new());
        tar.follow_symlinks(false);
        tar.append_dir_all(".", context).map_err(|e| {
            failed(format!(
                "reading the build context {}: {e}",
                context.display()
            ))
        })?;
        let body = tar.into_inner().map_err(|e| failed(e.to_string()))?;
        let buildargs: HashMap<String, String> =
            args.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let opts = bollard::query_parameters::BuildImageOptionsBuilder::new()
            .dockerfile(dockerfile)
            .t(tag)
            .buildargs(&buildargs)
            .rm(true)
            .forcerm(true)
            // A build's RUN steps would otherwise get the engine's network, unfenced (cloud
            // metadata, the host): dependencies belong in the fenced setup commands.
            .networkmode("none")
            .build();
        let mut stream = self
            .docker
            .build_image(opts, None, Some(bollard::body_full(body.into())));
        let mut log = String::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(line) = info.stream {
                        log.push_str(&line);
                    }
                    if let Some(err) = info.error_detail.and_then(|d| d.message) {
                        return Err(failed(last_lines(&format!("{log}{err}"), 5)));
                    }
                }
                Err(e) => return Err(failed(last_lines(&format!("{log}{e}"), 5))),
            }
        }
        if !self.image_exists(tag).await? {
            return Err(failed(last_lines(&log, 5)));
        }
        Ok(())
    }
}

/// The last `n` non-empty lines of `text`, joined with ` ⏎ `.
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" ⏎ ")
}
