//! Registry lookups: which releases a package has ([`Registries::package`]) and what changed
//! between two of them ([`Registries::changelog`]), over each ecosystem's public protocol:
//!
//! - PyPI: the simple repository API, PEP 691 JSON when the index offers it, else PEP 503
//!   HTML ([`pypi`]);
//! - npm: the registry's packument (`GET /<name>`, [`npm`]);
//! - Cargo: a sparse index (`GET /<prefix>/<name>`, one JSON line per version, [`cargo`]);
//! - Go: a module proxy (`/@v/list`, `/@v/<version>.info`, [`go`]).
//!
//! Which registries: the ones the setup sandbox uses, read from the same variables that
//! `[sandbox] setup_env` copies into it ([`Registries::from_env`]), so a repo whose installs
//! go through a mirror is looked up in that mirror. Lookups run on the host, never in a
//! sandbox; they only read. This module must not decide anything about which update to
//! propose (that is `deps::plan`).

pub mod archive;
pub mod cargo;
pub mod go;
pub mod npm;
pub mod pypi;

use std::sync::OnceLock;
use std::time::Duration;

use super::{Ecosystem, PackageInfo};

pub use cargo::home_config as cargo_home_config;
pub use cargo::write_home_config as write_cargo_home_config;
pub use go::escape as go_escape;
pub use pypi::normalize as pypi_normalize;

/// pypi.org's simple index (PEP 503/691).
pub const DEFAULT_PYPI: &str = "https://pypi.org/simple/";
/// The npm registry.
pub const DEFAULT_NPM: &str = "https://registry.npmjs.org/";
/// crates.io's sparse index (RFC 2789; the `sparse+` prefix is cargo's, not part of the URL).
pub const DEFAULT_CARGO: &str = "https://index.crates.io/";
/// The Go module mirror (GOPROXY's default first entry).
pub const DEFAULT_GO: &str = "https://proxy.golang.org";

/// How long one registry request may take by default (connect, headers and body), ms.
pub const DEFAULT_TIMEOUT_MS: u64 = 20_000;

/// Why a lookup failed. None of them is the package's fault; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// Connection refused, DNS failure, TLS failure or timeout. Transient as far as slipway
    /// knows: the lookup is skipped for this run and tried again on the next run or slot.
    #[error(
        "cannot reach {url} ({detail}); the registry may be down or unreachable from this host (check proxies and the index variables); slipway will try again on the next run or scheduled slot"
    )]
    Unreachable { url: String, detail: String },
    /// The registry answered that it has no such package (HTTP 404/410). Not retried: the
    /// name or the registry is wrong.
    #[error(
        "the {ecosystem} registry at {registry} has no package {name:?}; check the name in the manifest, or point the lookup at the registry that has it (see `deps::registry::Registries::from_env`)"
    )]
    NotFound {
        ecosystem: Ecosystem,
        name: String,
        registry: String,
    },
    /// The registry answered with something the protocol does not allow (bad JSON, an
    /// archive that does not unpack, an oversized body). Retrying will not help until the
    /// registry (or mirror) is fixed.
    #[error(
        "cannot read the registry's answer from {url} ({detail}); if this is a mirror, check that it implements the protocol"
    )]
    Malformed { url: String, detail: String },
    /// Any other HTTP status (401/403: the registry wants credentials slipway does not send;
    /// 429/5xx: overloaded or broken, retried on the next run or slot).
    #[error(
        "{url} answered HTTP {code}; 401/403 mean the registry needs credentials slipway does not have, 429 and 5xx that it is overloaded or failing (slipway will try again on the next run or slot)"
    )]
    Status { url: String, code: u16 },
}

/// Result alias of this module.
pub type Result<T, E = LookupError> = std::result::Result<T, E>;

/// Where each ecosystem's registry is, and how long a request may take.
#[derive(Debug, Clone)]
pub struct Registries {
    /// A PEP 503 simple index base (`https://pypi.org/simple/`); `<base>/<normalized name>/`
    /// is a project page.
    pub pypi: String,
    /// An npm registry base (`https://registry.npmjs.org/`).
    pub npm: String,
    /// A Cargo sparse index base, without cargo's `sparse+` prefix
    /// (`https://index.crates.io/`).
    pub cargo: String,
    /// A Go module proxy base (`https://proxy.golang.org`).
    pub go: String,
    /// Per request: connect, response and body together.
    pub timeout: Duration,
    /// One HTTP client for every lookup through this value (built on first use).
    client: OnceLock<reqwest::Client>,
}

impl Default for Registries {
    fn default() -> Self {
        Self {
            pypi: DEFAULT_PYPI.into(),
            npm: DEFAULT_NPM.into(),
            cargo: DEFAULT_CARGO.into(),
            go: DEFAULT_GO.into(),
            timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
            client: OnceLock::new(),
        }
    }
}

impl Registries {
    /// The registries named by the variables the setup sandbox gets through
    /// `[sandbox] setup_env` (pass the same lookup `SetupHostEnv::capture` got, or its
    /// captured values), each falling back to the public registry:
    ///
    /// - PyPI: `UV_INDEX_URL`, else `PIP_INDEX_URL` (uv and pip's index; a PEP 503 base);
    /// - npm: `npm_config_registry` (npm's `registry` setting), else `NPM_CONFIG_REGISTRY`;
    /// - Cargo: crates.io's source replacement as cargo reads it from the environment:
    ///   `CARGO_SOURCE_CRATES_IO_REPLACE_WITH=<name>` plus `CARGO_REGISTRIES_<NAME>_INDEX`
    ///   (or `CARGO_SOURCE_<NAME>_REGISTRY`), `<NAME>` upper-cased with `-` as `_`; the
    ///   `sparse+` prefix is dropped. A git index (no `sparse+`) is not readable here and
    ///   falls back to crates.io's sparse index. Cargo itself reads only the second variable
    ///   from the environment: setup also needs [`cargo_home_config`] in its home;
    /// - Go: the first entry of `GOPROXY` (comma or pipe separated) that is a URL, skipping
    ///   `direct` and `off`.
    pub fn from_env(vars: impl Fn(&str) -> Option<String>) -> Self {
        let set = |k: &str| {
            vars(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let pypi = set("UV_INDEX_URL").or_else(|| set("PIP_INDEX_URL"));
        let npm = set("npm_config_registry").or_else(|| set("NPM_CONFIG_REGISTRY"));
        let cargo = set("CARGO_SOURCE_CRATES_IO_REPLACE_WITH").and_then(|name| {
            let key = name.to_ascii_uppercase().replace('-', "_");
            set(&format!("CARGO_REGISTRIES_{key}_INDEX"))
                .or_else(|| set(&format!("CARGO_SOURCE_{key}_REGISTRY")))
                .and_then(|url| url.strip_prefix("sparse+").map(str::to_string))
        });
        let go = set("GOPROXY").and_then(|list| {
            list.split([',', '|'])
                .map(str::trim)
                .find(|e| e.starts_with("http://") || e.starts_with("https://"))
                .map(str::to_string)
        });
        let d = Self::default();
        Self {
            pypi: pypi.unwrap_or(d.pypi),
            npm: npm.unwrap_or(d.npm),
            cargo: cargo.unwrap_or(d.cargo),
            go: go.unwrap_or(d.go),
            ..d
        }
    }

    /// Every release of `name` the registry lists, with publish times where the registry
    /// gives them (npm's `time`, a Go proxy's `.info`, PEP 700 `upload-time`; not a sparse
    /// Cargo index, not pypiserver), yanked/deprecated flags, and the source repository where
    /// the registry names one (npm's `repository`, a `github.com/…` Go module path).
    ///
    /// Errors: [`LookupError::NotFound`] for an unknown name, [`LookupError::Unreachable`]
    /// when the registry cannot be reached in [`Registries::timeout`], and
    /// [`LookupError::Malformed`]/[`LookupError::Status`] for bad answers.
    pub async fn package(&self, eco: Ecosystem, name: &str) -> Result<PackageInfo> {
        match eco {
            Ecosystem::Pypi => pypi::package(self, name).await,
            Ecosystem::Npm => npm::package(self, name).await,
            Ecosystem::Cargo => cargo::package(self, name).await,
            Ecosystem::Go => go::package(self, name).await,
        }
    }

    /// What changed after `from` up to and including `to`: downloads `to`'s artifact (the
    /// sdist, else the wheel; the npm tarball; the `.crate`; the Go module zip), finds a
    /// changelog at the package root ([`archive::CHANGELOG_NAMES`] with `.md`, `.rst`,
    /// `.txt` or no extension) and returns its sections for versions in `(from, to]`, at most
    /// [`archive::EXCERPT_CAP`] bytes (a note says when it was cut).
    ///
    /// `Ok(None)`: no changelog in the artifact, or none of its headings names a version in
    /// the range. A `to` the registry does not list is [`LookupError::NotFound`] naming
    /// `name@to`.
    pub async fn changelog(
        &self,
        eco: Ecosystem,
        name: &str,
        from: &str,
        to: &str,
    ) -> Result<Option<String>> {
        let (url, layout) = match eco {
            Ecosystem::Pypi => pypi::artifact(self, name, to).await?,
            Ecosystem::Npm => npm::artifact(self, name, to).await?,
            Ecosystem::Cargo => cargo::artifact(self, name, to).await?,
            Ecosystem::Go => go::artifact(self, name, to).await?,
        };
        let bytes = self.download(&url).await?;
        let text =
            archive::find_changelog(&bytes, &layout).map_err(|detail| LookupError::Malformed {
                url: url.clone(),
                detail,
            })?;
        Ok(text.and_then(|t| archive::excerpt(&t, from, to)))
    }

    /// The shared client (the process's rustls provider, system roots and proxies).
    fn client(&self) -> Result<&reqwest::Client> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        crate::tls::ensure_provider();
        // A redirect goes only where a first request may (`fetchable`).
        let hosts = self.registry_hosts();
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 {
                attempt.error("too many redirects")
            } else if fetchable(attempt.url(), &hosts) {
                attempt.follow()
            } else {
                attempt.error("a redirect to a private or non-https address")
            }
        });
        let c = reqwest::Client::builder()
            .timeout(self.timeout)
            .redirect(redirects)
            .user_agent(concat!("slipway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| LookupError::Unreachable {
                url: String::new(),
                detail: format!("cannot build an HTTP client: {e}"),
            })?;
        Ok(self.client.get_or_init(|| c))
    }

    /// `GET url` with `accept`; a 404/410 is `Ok(None)`, any other non-success a
    /// [`LookupError::Status`].
    async fn get(&self, url: &str, accept: &str) -> Result<Option<reqwest::Response>> {
        let resp = self
            .client()?
            .get(url)
            .header(reqwest::header::ACCEPT, accept)
            .send()
            .await
            .map_err(|e| unreachable(url, &e))?;
        match resp.status().as_u16() {
            200..=299 => Ok(Some(resp)),
            404 | 410 => Ok(None),
            code => Err(LookupError::Status {
                url: url.into(),
                code,
            }),
        }
    }

    /// `GET url` as text; `Ok(None)` for 404/410.
    async fn get_text(&self, url: &str, accept: &str) -> Result<Option<(String, String)>> {
        let Some(resp) = self.get(url, accept).await? else {
            return Ok(None);
        };
        let ctype = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = read_capped(url, resp, archive::MAX_DOWNLOAD).await?;
        let text = String::from_utf8(body).map_err(|e| LookupError::Malformed {
            url: url.into(),
            detail: format!("not UTF-8: {e}"),
        })?;
        Ok(Some((ctype, text)))
    }

    /// The `host:port` of each configured registry.
    fn registry_hosts(&self) -> Vec<String> {
        [&self.pypi, &self.npm, &self.cargo, &self.go]
            .iter()
            .filter_map(|u| reqwest::Url::parse(u).ok())
            .filter_map(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
            .collect()
    }

    /// Downloads an artifact (at most [`archive::MAX_DOWNLOAD`] bytes). The URL comes from a
    /// registry's answer, and this request is the host's (outside the setup sandbox's fence):
    /// it goes only to a configured registry's own host, or over https to a host that is not
    /// an internal address (`fetchable`).
    async fn download(&self, url: &str) -> Result<Vec<u8>> {
        let ok = reqwest::Url::parse(url).is_ok_and(|u| fetchable(&u, &self.registry_hosts()));
        if !ok {
            return Err(LookupError::Malformed {
                url: url.into(),
                detail: "the registry points at an artifact on a private or non-https address; slipway does not fetch it".into(),
            });
        }
        let Some(resp) = self.get(url, "*/*").await? else {
            return Err(LookupError::Status {
                url: url.into(),
                code: 404,
            });
        };
        read_capped(url, resp, archive::MAX_DOWNLOAD).await
    }
}

/// Whether the host may fetch `url` from a registry's answer: a configured registry's own
/// `host:port` (any scheme, so an `http://` mirror on the LAN works), else `https` to a
/// name or a public address: never loopback, private, link-local (cloud metadata),
/// shared (100.64/10), unique-local or unspecified IP literals, nor `localhost`. A name that
/// resolves to such an address is not caught here (no resolution is done).
fn fetchable(url: &reqwest::Url, registry_hosts: &[String]) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let here = url.port_or_known_default().map(|p| format!("{host}:{p}"));
    if here.is_some_and(|h| registry_hosts.contains(&h)) {
        return true;
    }
    if url.scheme() != "https" {
        return false;
    }
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
    {
        Err(_) => {
            let d = host.to_ascii_lowercase();
            d != "localhost" && !d.ends_with(".localhost")
        }
        Ok(std::net::IpAddr::V4(ip)) => {
            let [a, b, ..] = ip.octets();
            !(ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || (a == 100 && (64..128).contains(&b)))
        }
        Ok(std::net::IpAddr::V6(ip)) => {
            let first = ip.segments()[0];
            !(ip.is_loopback()
                || ip.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || ip.to_ipv4_mapped().is_some())
        }
    }
}

/// Reads a body, failing past `cap` bytes.
async fn read_capped(url: &str, mut resp: reqwest::Response, cap: usize) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| unreachable(url, &e))? {
        body.extend_from_slice(&chunk);
        if body.len() > cap {
            return Err(LookupError::Malformed {
                url: url.into(),
                detail: format!("the body is larger than {cap} bytes"),
            });
        }
    }
    Ok(body)
}

/// A transport failure as [`LookupError::Unreachable`], with the cause chain in `detail`.
fn unreachable(url: &str, e: &reqwest::Error) -> LookupError {
    let mut detail = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        src = s.source();
    }
    LookupError::Unreachable {
        url: url.into(),
        detail,
    }
}

/// `base` joined with `path` by exactly one `/`.
fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// An RFC 3339 / ISO 8601 timestamp as unix ms (`None` when it does not parse or is before
/// 1970).
fn parse_time_ms(s: &str) -> Option<u64> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .and_then(|t| u64::try_from(t.timestamp_millis()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_are_fetched_only_from_registries_or_public_https() {
        let hosts = vec![
            "10.231.0.2:8080".to_string(),
            "registry.npmjs.org:443".to_string(),
        ];
        let ok = |u: &str| fetchable(&reqwest::Url::parse(u).unwrap(), &hosts);
        assert!(ok("http://10.231.0.2:8080/toy/-/toy-1.0.0.tgz"));
        assert!(ok("https://registry.npmjs.org/lodash/-/lodash-4.17.21.tgz"));
        assert!(ok(
            "https://files.pythonhosted.org/packages/x/six-1.16.0.tar.gz"
        ));
        for bad in [
            "http://169.254.169.254/latest/meta-data/",
            "https://169.254.169.254/latest/meta-data/",
            "http://files.pythonhosted.org/x.tar.gz",
            "https://127.0.0.1/x",
            "https://10.0.0.5/x",
            "https://100.100.100.200/x",
            "https://[::1]/x",
            "https://[fd00:ec2::254]/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://localhost/x",
            "http://10.231.0.2:9999/x",
            "file:///etc/passwd",
        ] {
            assert!(!ok(bad), "{bad}");
        }
    }

    #[test]
    fn the_setup_variables_choose_the_registries() {
        let env = |k: &str| {
            match k {
                "PIP_INDEX_URL" => Some("https://pip.corp/simple/"),
                "npm_config_registry" => Some("https://npm.corp/"),
                "CARGO_SOURCE_CRATES_IO_REPLACE_WITH" => Some("corp-mirror"),
                "CARGO_REGISTRIES_CORP_MIRROR_INDEX" => Some("sparse+https://cargo.corp/index/"),
                "GOPROXY" => Some("direct|https://go.corp,https://proxy.golang.org"),
                _ => None,
            }
            .map(String::from)
        };
        let r = Registries::from_env(env);
        assert_eq!(r.pypi, "https://pip.corp/simple/");
        assert_eq!(r.npm, "https://npm.corp/");
        assert_eq!(r.cargo, "https://cargo.corp/index/");
        assert_eq!(r.go, "https://go.corp");
        let uv_first = |k: &str| match k {
            "UV_INDEX_URL" => Some("https://uv.corp/simple/".to_string()),
            other => env(other),
        };
        assert_eq!(
            Registries::from_env(uv_first).pypi,
            "https://uv.corp/simple/"
        );
        let d = Registries::from_env(|_| None);
        assert_eq!(
            (
                d.pypi.as_str(),
                d.npm.as_str(),
                d.cargo.as_str(),
                d.go.as_str()
            ),
            (DEFAULT_PYPI, DEFAULT_NPM, DEFAULT_CARGO, DEFAULT_GO)
        );
        assert_eq!(d.timeout, Duration::from_secs(20));
        // A git index cannot be read over HTTP: crates.io's sparse index is used instead.
        let git = |k: &str| match k {
            "CARGO_SOURCE_CRATES_IO_REPLACE_WITH" => Some("m".to_string()),
            "CARGO_REGISTRIES_M_INDEX" => Some("https://git.corp/index.git".to_string()),
            _ => None,
        };
        assert_eq!(Registries::from_env(git).cargo, DEFAULT_CARGO);
    }

    #[test]
    fn times_parse_to_unix_ms() {
        assert_eq!(parse_time_ms("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(
            parse_time_ms("2024-03-01T12:00:00+00:00"),
            Some(1_709_294_400_000)
        );
        assert_eq!(parse_time_ms("yesterday"), None);
    }
}
