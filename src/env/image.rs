//! The image a repo's environment runs in: the default, a named one (pulled when missing),
//! or a devcontainer Dockerfile built once per content, with no network and no remote
//! sources.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::build::PrepareError;
use super::{EnvPlan, ImageSpec};
use crate::sandbox::Sandbox;

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
    let digest = hex::encode(&h.finalize()[..8]);
    format!("localhost/slipway-env-{slug}:{digest}")
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
pub async fn resolve(
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
