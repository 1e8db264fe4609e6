//! Security advisories as input: an OSV record (the OSV schema, <https://ossf.github.io/osv-schema/>,
//! as `osv.dev`, `pip-audit --format json`'s sources and GitHub's database export it) or a
//! GitHub global advisory (`GET /advisories/{ghsa_id}`, REST API "Global security
//! advisories"). Either becomes "bump this package to its first fixed version", exempt from
//! the release-age cooldown.

use serde_json::Value;

use super::{Advisory, Ecosystem};

/// One affected package of an advisory, with the version that fixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Affected {
    pub ecosystem: Ecosystem,
    pub package: String,
    pub advisory: Advisory,
}

impl Affected {
    /// `base` asking to fix this advisory for this package.
    pub fn request(self, base: &super::DepsRequest) -> super::DepsRequest {
        super::DepsRequest {
            advisory: Some(super::AdvisoryInput::Known {
                advisory: self.advisory,
                package: self.package,
                ecosystem: self.ecosystem,
            }),
            ..base.clone()
        }
    }
}

/// Why an advisory cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdvisoryError {
    #[error("the advisory is not valid JSON: {0}")]
    Json(String),
    /// No affected package of an ecosystem slipway bumps has a fixed version.
    #[error(
        "advisory {id} names no fixed version of a PyPI, npm, crates.io or Go package: nothing to bump to"
    )]
    NoFix { id: String },
}

/// OSV's and GitHub's ecosystem names.
fn ecosystem(name: &str) -> Option<Ecosystem> {
    match name.to_ascii_lowercase().as_str() {
        "pypi" | "pip" => Some(Ecosystem::Pypi),
        "npm" => Some(Ecosystem::Npm),
        "crates.io" | "rust" | "cargo" => Some(Ecosystem::Cargo),
        "go" => Some(Ecosystem::Go),
        _ => None,
    }
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The affected packages of an OSV record with a `fixed` event.
pub fn from_osv(json: &str) -> Result<Vec<Affected>, AdvisoryError> {
    let v: Value = serde_json::from_str(json).map_err(|e| AdvisoryError::Json(e.to_string()))?;
    let id = text(&v, "id");
    let summary = match text(&v, "summary") {
        s if s.is_empty() => crate::text::truncate_chars(&text(&v, "details"), 200),
        s => s,
    };
    let url = v
        .get("references")
        .and_then(Value::as_array)
        .and_then(|r| r.iter().find_map(|x| x.get("url").and_then(Value::as_str)))
        .map(String::from);
    let mut out = Vec::new();
    for a in v
        .get("affected")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let pkg = a.get("package").unwrap_or(&Value::Null);
        let Some(eco) = ecosystem(&text(pkg, "ecosystem")) else {
            continue;
        };
        let fixed = a
            .get("ranges")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .flat_map(|r| {
                r.get("events")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
            })
            .find_map(|e| e.get("fixed").and_then(Value::as_str));
        if let Some(fixed) = fixed {
            out.push(Affected {
                ecosystem: eco,
                package: text(pkg, "name"),
                advisory: Advisory {
                    id: id.clone(),
                    summary: summary.clone(),
                    fixed: fixed.to_string(),
                    url: url.clone(),
                },
            });
        }
    }
    if out.is_empty() {
        return Err(AdvisoryError::NoFix { id });
    }
    Ok(out)
}

/// The affected packages of a GitHub global advisory with a first patched version
/// (`vulnerabilities[].first_patched_version`: a string in the global API, an object with
/// `identifier` in older shapes; both are read).
pub fn from_github(json: &str) -> Result<Vec<Affected>, AdvisoryError> {
    let v: Value = serde_json::from_str(json).map_err(|e| AdvisoryError::Json(e.to_string()))?;
    let id = text(&v, "ghsa_id");
    let url = Some(text(&v, "html_url")).filter(|u| !u.is_empty());
    let mut out = Vec::new();
    for vul in v
        .get("vulnerabilities")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let pkg = vul.get("package").unwrap_or(&Value::Null);
        let Some(eco) = ecosystem(&text(pkg, "ecosystem")) else {
            continue;
        };
        let fixed = match vul.get("first_patched_version") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(o @ Value::Object(_)) => Some(text(o, "identifier")).filter(|s| !s.is_empty()),
            _ => None,
        };
        if let Some(fixed) = fixed {
            out.push(Affected {
                ecosystem: eco,
                package: text(pkg, "name"),
                advisory: Advisory {
                    id: id.clone(),
                    summary: text(&v, "summary"),
                    fixed,
                    url: url.clone(),
                },
            });
        }
    }
    if out.is_empty() {
        return Err(AdvisoryError::NoFix { id });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osv_and_github_records_name_the_package_and_its_fix() {
        // Shape of PYSEC-2023-74 (requests), abridged from osv.dev.
        let osv = r#"{"id":"PYSEC-2023-74","summary":"Proxy-Authorization header leak",
          "affected":[{"package":{"ecosystem":"PyPI","name":"requests"},
            "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"2.3.0"},{"fixed":"2.31.0"}]}]}],
          "references":[{"type":"ADVISORY","url":"https://github.com/psf/requests/security/advisories/GHSA-j8r2-6x86-q33q"}]}"#;
        let a = from_osv(osv).unwrap();
        assert_eq!(a[0].ecosystem, Ecosystem::Pypi);
        assert_eq!(a[0].package, "requests");
        assert_eq!(a[0].advisory.fixed, "2.31.0");
        // Shape of GET /advisories/GHSA-jf85-cpcp-j695 (lodash prototype pollution).
        let gh = r#"{"ghsa_id":"GHSA-jf85-cpcp-j695","summary":"Prototype Pollution in lodash",
          "html_url":"https://github.com/advisories/GHSA-jf85-cpcp-j695",
          "vulnerabilities":[{"package":{"ecosystem":"npm","name":"lodash"},
            "vulnerable_version_range":"< 4.17.12","first_patched_version":"4.17.12"}]}"#;
        let a = from_github(gh).unwrap();
        assert_eq!(
            (a[0].package.as_str(), a[0].advisory.fixed.as_str()),
            ("lodash", "4.17.12")
        );
        assert!(matches!(
            from_osv(r#"{"id":"X","affected":[]}"#),
            Err(AdvisoryError::NoFix { .. })
        ));
        assert!(matches!(from_osv("{"), Err(AdvisoryError::Json(_))));
    }
}
