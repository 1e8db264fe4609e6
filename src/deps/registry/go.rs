//! Go through a module proxy (the GOPROXY protocol, `go help goproxy`): `GET
//! <proxy>/<module>/@v/list` lists the tagged versions one a line, and `GET
//! <proxy>/<module>/@v/<version>.info` gives `{"Version", "Time"}` (RFC 3339). Module paths
//! and versions are case-encoded: every capital letter becomes `!` and its lower case
//! (`github.com/Azure/x` → `github.com/!azure/x`). A module's zip is `@v/<version>.zip`,
//! every path under `<module>@<version>/`.
//!
//! Versions are as Go writes them (`v1.2.3`). A major version from v2 on is another module
//! (`…/v2`) and is looked up by that path. Retractions (`retract` in the latest go.mod) are
//! not read yet: nothing is reported yanked. A `github.com/owner/repo/…` module path gives
//! the repository.

use futures::StreamExt;
use serde::Deserialize;

use super::archive::Layout;
use super::{LookupError, Registries, Result, join, parse_time_ms};
use crate::deps::{Ecosystem, PackageInfo, Release};

/// How many `.info` requests run at once.
const INFO_CONCURRENCY: usize = 8;

/// The proxy's case encoding of a module path or version (`!` before each lower-cased
/// capital).
pub fn escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c.is_ascii_uppercase() {
            out.push('!');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[derive(Deserialize)]
struct Info {
    #[serde(rename = "Time", default)]
    time: Option<String>,
}

fn not_found(reg: &Registries, name: &str) -> LookupError {
    LookupError::NotFound {
        ecosystem: Ecosystem::Go,
        name: name.into(),
        registry: reg.go.clone(),
    }
}

async fn list(reg: &Registries, module: &str) -> Result<Vec<String>> {
    let url = join(&reg.go, &format!("{}/@v/list", escape(module)));
    let Some((_, body)) = reg.get_text(&url, "text/plain").await? else {
        return Err(not_found(reg, module));
    };
    Ok(body
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// The repository of a `github.com/owner/repo[/…]` module.
pub fn repository(module: &str) -> Option<String> {
    let mut parts = module.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("github.com"), Some(owner), Some(repo)) => {
            Some(format!("https://github.com/{owner}/{repo}"))
        }
        _ => None,
    }
}

pub(super) async fn package(reg: &Registries, module: &str) -> Result<PackageInfo> {
    let versions = list(reg, module).await?;
    let esc = escape(module);
    let infos: Vec<Result<Release>> = futures::stream::iter(versions)
        .map(|v| {
            let url = join(&reg.go, &format!("{esc}/@v/{}.info", escape(&v)));
            async move {
                let released_ms = match reg.get_text(&url, "application/json").await? {
                    Some((_, body)) => serde_json::from_str::<Info>(&body)
                        .map_err(|e| LookupError::Malformed {
                            url: url.clone(),
                            detail: e.to_string(),
                        })?
                        .time
                        .as_deref()
                        .and_then(parse_time_ms),
                    None => None,
                };
                Ok(Release {
                    version: v,
                    released_ms,
                    yanked: false,
                })
            }
        })
        .buffered(INFO_CONCURRENCY)
        .collect()
        .await;
    Ok(PackageInfo {
        releases: infos.into_iter().collect::<Result<_>>()?,
        repository: repository(module),
        changelog_url: None,
    })
}

pub(super) async fn artifact(
    reg: &Registries,
    module: &str,
    version: &str,
) -> Result<(String, Layout)> {
    if !list(reg, module).await?.iter().any(|v| v == version) {
        return Err(not_found(reg, &format!("{module}@{version}")));
    }
    let url = join(
        &reg.go,
        &format!("{}/@v/{}.zip", escape(module), escape(version)),
    );
    Ok((url, Layout::ZipUnder(format!("{module}@{version}/"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capitals_are_escaped() {
        assert_eq!(
            escape("github.com/Azure/azure-sdk"),
            "github.com/!azure/azure-sdk"
        );
        assert_eq!(
            escape("example.com/Slipway/toy"),
            "example.com/!slipway/toy"
        );
        assert_eq!(escape("v1.0.0-RC"), "v1.0.0-!r!c");
    }

    #[test]
    fn github_modules_name_their_repository() {
        assert_eq!(
            repository("github.com/a/b/v2").as_deref(),
            Some("https://github.com/a/b")
        );
        assert_eq!(repository("golang.org/x/net"), None);
    }
}
