//! npm through the registry's packument: `GET <registry>/<name>` (a scoped name as
//! `@scope%2fname`, as the npm CLI sends it), the full document (`application/json`; the
//! abbreviated one has no `time`).
//!
//! - `versions`: version → manifest; a `deprecated` string marks it deprecated, reported as
//!   yanked (npm cannot unpublish for good, deprecation is how releases are withdrawn).
//! - `time`: version → ISO 8601 publish time (plus `created`/`modified`, ignored).
//! - `repository`: a string or `{type, url}`; normalized to an `https://` URL
//!   (`git+https://…/x.git`, `git://…`, `github:owner/repo` and `owner/repo` shorthands).
//! - A version's tarball: `versions[v].dist.tarball`, a gzipped tar under `package/`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::archive::Layout;
use super::{LookupError, Registries, Result, join, parse_time_ms};
use crate::deps::{Ecosystem, PackageInfo, Release};

/// The URL path of a package: `@scope/name` → `@scope%2fname`.
pub fn encode_name(name: &str) -> String {
    name.replace('/', "%2f")
}

#[derive(Deserialize)]
struct Packument {
    #[serde(default)]
    versions: BTreeMap<String, Manifest>,
    #[serde(default)]
    time: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    repository: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    deprecated: Option<serde_json::Value>,
    #[serde(default)]
    dist: Option<Dist>,
    #[serde(default)]
    repository: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Dist {
    tarball: Option<String>,
}

async fn packument(reg: &Registries, name: &str) -> Result<Packument> {
    let url = join(&reg.npm, &encode_name(name));
    let Some((_, body)) = reg.get_text(&url, "application/json").await? else {
        return Err(LookupError::NotFound {
            ecosystem: Ecosystem::Npm,
            name: name.into(),
            registry: reg.npm.clone(),
        });
    };
    serde_json::from_str(&body).map_err(|e| LookupError::Malformed {
        url,
        detail: e.to_string(),
    })
}

/// A `repository` field as an `https://` URL, when it names one.
pub fn repository_url(field: &serde_json::Value) -> Option<String> {
    let raw = match field {
        serde_json::Value::String(s) => s.as_str(),
        serde_json::Value::Object(o) => o.get("url")?.as_str()?,
        _ => return None,
    }
    .trim();
    let url = if let Some(rest) = raw.strip_prefix("github:") {
        format!("https://github.com/{rest}")
    } else if !raw.contains(':') && raw.split('/').count() == 2 {
        format!("https://github.com/{raw}")
    } else {
        let r = raw.trim_start_matches("git+");
        let r = r
            .strip_prefix("git://")
            .or_else(|| r.strip_prefix("ssh://git@"))
            .map(|rest| format!("https://{rest}"))
            .unwrap_or_else(|| r.to_string());
        match r.strip_prefix("git@") {
            Some(rest) => format!("https://{}", rest.replacen(':', "/", 1)),
            None => r,
        }
    };
    let url = url.trim_end_matches('/').trim_end_matches(".git").replacen(
        "://www.github.com/",
        "://github.com/",
        1,
    );
    (url.starts_with("https://") || url.starts_with("http://")).then_some(url)
}

pub(super) async fn package(reg: &Registries, name: &str) -> Result<PackageInfo> {
    let p = packument(reg, name).await?;
    let releases = p
        .versions
        .iter()
        .map(|(v, m)| Release {
            version: v.clone(),
            released_ms: p
                .time
                .get(v)
                .and_then(|t| t.as_str())
                .and_then(parse_time_ms),
            yanked: m.deprecated.as_ref().is_some_and(|d| {
                !matches!(d, serde_json::Value::Null | serde_json::Value::Bool(false))
                    && d.as_str() != Some("")
            }),
        })
        .collect();
    // The package-level field, else the newest version's.
    let repository = p.repository.as_ref().and_then(repository_url).or_else(|| {
        p.versions
            .values()
            .rev()
            .find_map(|m| m.repository.as_ref().and_then(repository_url))
    });
    Ok(PackageInfo {
        releases,
        repository,
        changelog_url: None,
    })
}

pub(super) async fn artifact(
    reg: &Registries,
    name: &str,
    version: &str,
) -> Result<(String, Layout)> {
    let p = packument(reg, name).await?;
    let tarball = p
        .versions
        .get(version)
        .and_then(|m| m.dist.as_ref())
        .and_then(|d| d.tarball.clone());
    match tarball {
        Some(url) => Ok((url, Layout::TarGzTopDir)),
        None => Err(LookupError::NotFound {
            ecosystem: Ecosystem::Npm,
            name: format!("{name}@{version}"),
            registry: reg.npm.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scoped_names_are_encoded() {
        assert_eq!(encode_name("@acme/ui"), "@acme%2fui");
        assert_eq!(encode_name("lodash"), "lodash");
    }

    #[test]
    fn repository_fields_become_https_urls() {
        for (field, want) in [
            (
                json!("git+https://github.com/a/b.git"),
                "https://github.com/a/b",
            ),
            (
                json!({"type": "git", "url": "git://github.com/a/b.git"}),
                "https://github.com/a/b",
            ),
            (json!("github:a/b"), "https://github.com/a/b"),
            (json!("a/b"), "https://github.com/a/b"),
            (
                json!("https://www.github.com/a/b"),
                "https://github.com/a/b",
            ),
            (json!("git@github.com:a/b.git"), "https://github.com/a/b"),
            (
                json!("git+ssh://git@github.com/a/b.git"),
                "https://github.com/a/b",
            ),
        ] {
            assert_eq!(repository_url(&field).as_deref(), Some(want), "{field}");
        }
        assert_eq!(repository_url(&json!(1)), None);
    }
}
