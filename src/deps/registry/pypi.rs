//! PyPI through the simple repository API: `GET <index>/<normalized name>/` asking for PEP 691
//! JSON (`application/vnd.pypi.simple.v1+json`) and accepting PEP 503 HTML.
//!
//! - Names are normalized as PEP 503 says: lower case, runs of `-`, `_`, `.` become one `-`.
//! - Versions come from the file names (wheel `name-ver-…whl`, PEP 427; sdist
//!   `name-ver.tar.gz`/`.zip`, PEP 625), plus PEP 700's `versions` when given.
//! - Yanked: PEP 592 (`data-yanked` in HTML, `yanked` in JSON); a release is yanked when all
//!   of its files are.
//! - Times: PEP 700 `upload-time` (JSON only; pypi.org gives it). pypiserver 2.4 offers only
//!   PEP 503 HTML, so its releases have no time.
//! - The simple API names no repository: `repository` and `changelog_url` stay `None`.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Deserialize;

use super::archive::Layout;
use super::{LookupError, Registries, Result, join, parse_time_ms};
use crate::deps::{Ecosystem, PackageInfo, Release};

/// PEP 691's JSON first, HTML as the fallback.
const ACCEPT: &str = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1";

/// The PEP 503 normalized form of a project name (`Foo.Bar_baz` → `foo-bar-baz`).
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
            continue;
        }
        if sep && !out.is_empty() {
            out.push('-');
        }
        sep = false;
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// One distribution file of a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistFile {
    pub filename: String,
    /// Absolute download URL (fragment removed).
    pub url: String,
    pub version: Option<String>,
    pub yanked: bool,
    /// PEP 700 `upload-time`, unix ms.
    pub uploaded_ms: Option<u64>,
}

/// The version in a distribution file name: a wheel's second dash-separated field; an sdist's
/// text after the last dash (PEP 625's `{name}-{version}.tar.gz`; versions have no dash).
pub fn version_of(filename: &str) -> Option<String> {
    if let Some(stem) = filename.strip_suffix(".whl") {
        return stem.split('-').nth(1).map(str::to_string);
    }
    let stem = [".tar.gz", ".zip", ".tar.bz2", ".tgz"]
        .iter()
        .find_map(|ext| filename.strip_suffix(ext))?;
    stem.rsplit_once('-').map(|(_, v)| v.to_string())
}

/// The project page's files, and PEP 700's version list when the index gives one.
async fn files(reg: &Registries, name: &str) -> Result<(Vec<DistFile>, Vec<String>)> {
    let url = join(&reg.pypi, &format!("{}/", normalize(name)));
    let Some((ctype, body)) = reg.get_text(&url, ACCEPT).await? else {
        return Err(LookupError::NotFound {
            ecosystem: Ecosystem::Pypi,
            name: name.into(),
            registry: reg.pypi.clone(),
        });
    };
    let base = reqwest::Url::parse(&url).map_err(|e| LookupError::Malformed {
        url: url.clone(),
        detail: e.to_string(),
    })?;
    if ctype.starts_with("application/vnd.pypi.simple.v1+json") {
        parse_json(&body, &base).map_err(|detail| LookupError::Malformed { url, detail })
    } else {
        Ok((parse_html(&body, &base), Vec::new()))
    }
}

/// PEP 691 project page.
#[derive(Deserialize)]
struct JsonPage {
    files: Vec<JsonFile>,
    /// PEP 700.
    #[serde(default)]
    versions: Vec<String>,
}

#[derive(Deserialize)]
struct JsonFile {
    filename: String,
    url: String,
    /// `false`, `true` or a reason string (PEP 691).
    #[serde(default)]
    yanked: serde_json::Value,
    #[serde(default, rename = "upload-time")]
    upload_time: Option<String>,
}

fn parse_json(
    body: &str,
    base: &reqwest::Url,
) -> std::result::Result<(Vec<DistFile>, Vec<String>), String> {
    let page: JsonPage = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let files = page
        .files
        .into_iter()
        .map(|f| DistFile {
            version: version_of(&f.filename),
            url: resolve(base, &f.url),
            yanked: !matches!(
                f.yanked,
                serde_json::Value::Null | serde_json::Value::Bool(false)
            ),
            uploaded_ms: f.upload_time.as_deref().and_then(parse_time_ms),
            filename: f.filename,
        })
        .collect();
    Ok((files, page.versions))
}

static ANCHOR: LazyLock<Option<regex::Regex>> =
    LazyLock::new(|| regex::Regex::new(r"(?is)<a\s([^>]*)>([^<]*)</a>").ok());
static HREF: LazyLock<Option<regex::Regex>> =
    LazyLock::new(|| regex::Regex::new(r#"(?i)\bhref\s*=\s*["']([^"']*)["']"#).ok());
static YANKED: LazyLock<Option<regex::Regex>> =
    LazyLock::new(|| regex::Regex::new(r"(?i)\bdata-yanked\b").ok());

/// PEP 503 project page: one anchor per file, the text is the file name.
fn parse_html(body: &str, base: &reqwest::Url) -> Vec<DistFile> {
    let (Some(anchor), Some(href), Some(yanked)) = (&*ANCHOR, &*HREF, &*YANKED) else {
        return Vec::new();
    };
    anchor
        .captures_iter(body)
        .filter_map(|c| {
            let attrs = c.get(1)?.as_str();
            let filename = html_unescape(c.get(2)?.as_str().trim());
            let link = html_unescape(href.captures(attrs)?.get(1)?.as_str());
            Some(DistFile {
                version: version_of(&filename),
                url: resolve(base, &link),
                yanked: yanked.is_match(attrs),
                uploaded_ms: None,
                filename,
            })
        })
        .collect()
}

fn html_unescape(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
}

/// `link` resolved against the page URL, without its `#sha256=…` fragment.
fn resolve(base: &reqwest::Url, link: &str) -> String {
    match base.join(link) {
        Ok(mut u) => {
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => link.to_string(),
    }
}

/// Releases from files: one per version; yanked when every file is; time of the earliest
/// upload. PEP 700 versions without files are listed too (unyanked, no time).
fn releases(files: &[DistFile], versions: &[String]) -> Vec<Release> {
    let mut by: BTreeMap<&str, (bool, Option<u64>)> = BTreeMap::new();
    for f in files {
        let Some(v) = f.version.as_deref() else {
            continue;
        };
        let e = by.entry(v).or_insert((true, None));
        e.0 &= f.yanked;
        e.1 = match (e.1, f.uploaded_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    for v in versions {
        by.entry(v.as_str()).or_insert((false, None));
    }
    by.into_iter()
        .map(|(v, (yanked, t))| Release {
            version: v.to_string(),
            released_ms: t,
            yanked,
        })
        .collect()
}

pub(super) async fn package(reg: &Registries, name: &str) -> Result<PackageInfo> {
    let (files, versions) = files(reg, name).await?;
    Ok(PackageInfo {
        releases: releases(&files, &versions),
        repository: None,
        changelog_url: None,
    })
}

/// `version`'s sdist (it carries the changelog), else a wheel.
pub(super) async fn artifact(
    reg: &Registries,
    name: &str,
    version: &str,
) -> Result<(String, Layout)> {
    let (files, _) = files(reg, name).await?;
    let of = |suffix: &str| {
        files
            .iter()
            .find(|f| f.version.as_deref() == Some(version) && f.filename.ends_with(suffix))
    };
    let pick = of(".tar.gz")
        .map(|f| (f, Layout::TarGzTopDir))
        .or_else(|| of(".zip").map(|f| (f, Layout::ZipTopDir)))
        .or_else(|| of(".whl").map(|f| (f, Layout::Zip)));
    match pick {
        Some((f, layout)) => Ok((f.url.clone(), layout)),
        None => Err(LookupError::NotFound {
            ecosystem: Ecosystem::Pypi,
            name: format!("{name}@{version}"),
            registry: reg.pypi.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized_as_pep_503_says() {
        assert_eq!(normalize("Foo.Bar__baz"), "foo-bar-baz");
        assert_eq!(normalize("slipway-toy"), "slipway-toy");
        assert_eq!(normalize("Slipway_Toy"), "slipway-toy");
    }

    #[test]
    fn versions_come_from_file_names() {
        assert_eq!(
            version_of("slipway_toy-1.0.1-py3-none-any.whl").as_deref(),
            Some("1.0.1")
        );
        assert_eq!(
            version_of("slipway_toy-1.1.0.tar.gz").as_deref(),
            Some("1.1.0")
        );
        assert_eq!(
            version_of("slipway-toy-2.0.0rc1.zip").as_deref(),
            Some("2.0.0rc1")
        );
        assert_eq!(version_of("slipway_toy-1.0.egg"), None);
    }

    #[test]
    fn html_and_json_pages_give_the_same_files() {
        let base = reqwest::Url::parse("http://idx/simple/six/").unwrap();
        let html = r#"<html><body><a href="../../packages/six-1.0.0.tar.gz#sha256=ab">six-1.0.0.tar.gz</a><br>
<a href="https://files/six-1.1.0-py3-none-any.whl" data-yanked="">six-1.1.0-py3-none-any.whl</a></body></html>"#;
        let files = parse_html(html, &base);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].url, "http://idx/packages/six-1.0.0.tar.gz");
        assert!(!files[0].yanked && files[1].yanked);
        let json = r#"{"meta":{"api-version":"1.1"},"name":"six","versions":["1.0.0","1.1.0","1.2.0"],
"files":[{"filename":"six-1.0.0.tar.gz","url":"https://files/six-1.0.0.tar.gz","hashes":{},"upload-time":"2024-01-01T00:00:00.000000Z"},
{"filename":"six-1.1.0-py3-none-any.whl","url":"https://files/six-1.1.0-py3-none-any.whl","hashes":{},"yanked":"broken"}]}"#;
        let (files, versions) = parse_json(json, &base).unwrap();
        let r = releases(&files, &versions);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].released_ms, Some(1_704_067_200_000));
        assert!(r[1].yanked && !r[2].yanked);
    }
}
