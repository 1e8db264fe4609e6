//! What the setup sandbox gets that no other sandbox does, decided in one place
//! ([`SandboxPolicy::for_setup`](super::SandboxPolicy::for_setup)): the operator's CA bundle
//! and the host variables `[sandbox] setup_env` allows (proxies, index URLs). Never a secret:
//! a name that looks like one is a configuration error, and so is a value that contains one
//! of slipway's own secret values. The offline sandboxes (agent, checks) get none of this.
//!
//! The CA bundle is bound read-only at [`SETUP_CA_BUNDLE`] and named by the variable each
//! ecosystem reads ([`CA_ENV`]): OpenSSL and Python `ssl` and uv (`SSL_CERT_FILE`), requests
//! (`REQUESTS_CA_BUNDLE`), pip (`PIP_CERT`), curl (`CURL_CA_BUNDLE`), Node
//! (`NODE_EXTRA_CA_CERTS`), npm (`npm_config_cafile`), cargo (`CARGO_HTTP_CAINFO`), git
//! (`GIT_SSL_CAINFO`, the same as `http.sslCAInfo`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::settings::SandboxConfig;

/// Where the setup sandbox sees the CA bundle (a path no image or host `/etc` provides, so
/// both backends can bind a file there).
pub const SETUP_CA_BUNDLE: &str = "/run/slipway/ca-bundle.crt";

/// The host's system bundle (Debian's `ca-certificates`, plus what the operator added with
/// `update-ca-certificates`): the default `[sandbox] ca_bundle`.
pub const HOST_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Variables that point each ecosystem's TLS client at [`SETUP_CA_BUNDLE`].
pub const CA_ENV: &[&str] = &[
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "PIP_CERT",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "npm_config_cafile",
    "CARGO_HTTP_CAINFO",
    "GIT_SSL_CAINFO",
];

/// Proxy variables: tools disagree on their case (curl reads only lower-case `http_proxy`;
/// requests and pip read both), so setup gets both spellings of each one listed.
const PROXY_VARS: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "FTP_PROXY",
];

/// Parts of a variable name that mark it as a credential (compared upper-cased); they cover
/// every one of slipway's own secret variables (a test in `config` checks it). A registry
/// token stays out of the sandbox; authenticated registries are a later step (a host-side
/// proxy).
const SECRET_MARKERS: &[&str] = &[
    "TOKEN",
    "KEY",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "AUTH",
    "CREDENTIAL",
    "COOKIE",
    "SESSION",
    "PRIVATE",
];

/// A `[sandbox] setup_env` entry slipway refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupEnvError {
    #[error(
        "{name} looks like a secret (its name contains {marker}); setup never gets secrets: remove it from [sandbox] setup_env"
    )]
    SecretName { name: String, marker: &'static str },
    #[error(
        "{name} is set by slipway itself inside the sandbox; remove it from [sandbox] setup_env"
    )]
    Reserved { name: String },
    #[error(
        "{name:?} is not a variable name (letters, digits and _ only); fix [sandbox] setup_env"
    )]
    BadName { name: String },
    #[error(
        "the value of {name} contains one of slipway's secrets (a token or API key); setup never gets secrets: take the secret out of {name} or remove {name} from [sandbox] setup_env"
    )]
    SecretValue { name: String },
    #[error(
        "the value of {name} is a URL with credentials in it (user:password@); setup runs third-party code with network and never gets credentials: use a proxy or index that needs none, or remove {name} from [sandbox] setup_env"
    )]
    Credentials { name: String },
}

/// Whether `value` holds a URL with userinfo (`scheme://user[:password]@host`).
fn has_userinfo(value: &str) -> bool {
    value.split_whitespace().any(|part| {
        part.split_once("://").is_some_and(|(_, rest)| {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            authority.contains('@')
        })
    })
}

/// The host values of the `[sandbox] setup_env` variables, captured once when the
/// configuration loads. Its `Debug` prints names only (a proxy URL may carry a password).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SetupHostEnv(BTreeMap<String, String>);

impl std::fmt::Debug for SetupHostEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SetupHostEnv")
            .field(&self.0.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SetupHostEnv {
    /// Checks every name in `names` and copies the set ones through `lookup` (the host
    /// environment). A proxy variable is looked up in the spelling given, then in the other
    /// case, and is copied in both. Fails on a name that looks like a secret, a name slipway
    /// sets itself, and a value containing any of `secrets` (slipway's own secret values).
    pub fn capture(
        names: &[String],
        lookup: impl Fn(&str) -> Option<String>,
        secrets: &[String],
    ) -> Result<Self, SetupEnvError> {
        let mut vars = BTreeMap::new();
        for name in names {
            check_name(name)?;
            let upper = name.to_ascii_uppercase();
            let spellings: Vec<String> = if PROXY_VARS.contains(&upper.as_str()) {
                vec![name.clone(), upper.clone(), name.to_ascii_lowercase()]
            } else {
                vec![name.clone()]
            };
            let Some(value) = spellings.iter().find_map(|s| lookup(s)) else {
                continue;
            };
            if secrets
                .iter()
                .any(|s| !s.is_empty() && value.contains(s.as_str()))
            {
                return Err(SetupEnvError::SecretValue { name: name.clone() });
            }
            if has_userinfo(&value) {
                return Err(SetupEnvError::Credentials { name: name.clone() });
            }
            if PROXY_VARS.contains(&upper.as_str()) {
                vars.insert(upper, value.clone());
                vars.insert(name.to_ascii_lowercase(), value);
            } else {
                vars.insert(name.clone(), value);
            }
        }
        Ok(Self(vars))
    }

    /// The variables and values setup gets.
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

/// Refuses names that are not variable names, look like secrets, or are slipway's own.
pub fn check_name(name: &str) -> Result<(), SetupEnvError> {
    if name.is_empty()
        || name.starts_with(|c: char| c.is_ascii_digit())
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(SetupEnvError::BadName { name: name.into() });
    }
    let upper = name.to_ascii_uppercase();
    if let Some(marker) = SECRET_MARKERS.iter().find(|m| upper.contains(*m)) {
        return Err(SetupEnvError::SecretName {
            name: name.into(),
            marker,
        });
    }
    let reserved = super::sandbox_env(&[])
        .into_keys()
        .chain(CA_ENV.iter().map(|s| s.to_string()))
        .any(|k| k.eq_ignore_ascii_case(name));
    if reserved {
        return Err(SetupEnvError::Reserved { name: name.into() });
    }
    Ok(())
}

/// Which CA bundle setup gets (`[sandbox] ca_bundle`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaBundle {
    /// `""`: the host's system bundle ([`HOST_CA_BUNDLE`]), which exists.
    Host(PathBuf),
    /// A path the operator named.
    Configured(PathBuf),
    /// `"none"`, or `""` on a host without a system bundle: the image's own trust store.
    None,
}

impl CaBundle {
    /// The bundle `cfg` names; `""` checks whether the host's system bundle exists.
    pub fn of(cfg: &SandboxConfig) -> Self {
        match cfg.ca_bundle.trim() {
            "" if std::path::Path::new(HOST_CA_BUNDLE).is_file() => {
                Self::Host(PathBuf::from(HOST_CA_BUNDLE))
            }
            "" | "none" => Self::None,
            path => Self::Configured(PathBuf::from(path)),
        }
    }

    /// The host file to bind, if any.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Self::Host(p) | Self::Configured(p) => Some(p),
            Self::None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_that_look_like_secrets_are_refused() {
        for bad in [
            "NPM_TOKEN",
            "PIP_INDEX_AUTH",
            "AWS_SECRET_ACCESS_KEY",
            "api_key",
            "GITHUB_TOKEN",
            "DB_PASSWORD",
        ] {
            let e = SetupHostEnv::capture(&names(&[bad]), |_| None, &[]).unwrap_err();
            assert!(matches!(e, SetupEnvError::SecretName { .. }), "{bad}: {e}");
            assert!(e.to_string().contains(bad), "{e}");
        }
        for bad in ["PATH", "HOME", "SSL_CERT_FILE", "npm_config_cafile"] {
            let e = SetupHostEnv::capture(&names(&[bad]), |_| None, &[]).unwrap_err();
            assert!(matches!(e, SetupEnvError::Reserved { .. }), "{bad}: {e}");
        }
        let e = SetupHostEnv::capture(&names(&["A-B"]), |_| None, &[]).unwrap_err();
        assert!(matches!(e, SetupEnvError::BadName { .. }));
    }

    #[test]
    fn the_default_allowlist_is_accepted() {
        let cfg = SandboxConfig::default();
        assert!(SetupHostEnv::capture(&cfg.setup_env, |_| None, &[]).is_ok());
    }

    #[test]
    fn proxies_are_copied_in_both_spellings_and_unset_names_are_skipped() {
        let host = |k: &str| match k {
            "https_proxy" => Some("http://proxy.corp:3128".to_string()),
            "PIP_INDEX_URL" => Some("https://pypi.corp/simple".to_string()),
            _ => None,
        };
        let env = SetupHostEnv::capture(
            &names(&["HTTPS_PROXY", "PIP_INDEX_URL", "NO_PROXY"]),
            host,
            &[],
        )
        .unwrap();
        assert_eq!(env.vars()["HTTPS_PROXY"], "http://proxy.corp:3128");
        assert_eq!(env.vars()["https_proxy"], "http://proxy.corp:3128");
        assert_eq!(env.vars()["PIP_INDEX_URL"], "https://pypi.corp/simple");
        assert!(!env.vars().contains_key("NO_PROXY"));
        assert!(!format!("{env:?}").contains("proxy.corp"));
    }

    #[test]
    fn a_value_holding_a_slipway_secret_is_refused() {
        let secret = "xoxb-1234567890".to_string();
        let host = |_: &str| Some("https://user:xoxb-1234567890@pypi.corp/simple".to_string());
        let e = SetupHostEnv::capture(&names(&["PIP_INDEX_URL"]), host, &[secret]).unwrap_err();
        assert_eq!(
            e,
            SetupEnvError::SecretValue {
                name: "PIP_INDEX_URL".into()
            }
        );
        assert!(!e.to_string().contains("xoxb"));
    }

    #[test]
    fn a_proxy_or_index_url_with_credentials_is_refused() {
        for v in [
            "http://svc:P4ss@proxy:3128",
            "https://user:tok@artifactory.example/api/pypi/simple",
            "https://tok@host/x",
        ] {
            let err = SetupHostEnv::capture(&["HTTPS_PROXY".to_string()], |_| Some(v.into()), &[])
                .unwrap_err();
            assert!(matches!(err, SetupEnvError::Credentials { .. }), "{v}");
        }
        let ok = SetupHostEnv::capture(
            &["HTTPS_PROXY".to_string()],
            |_| Some("http://proxy:3128".into()),
            &[],
        )
        .unwrap();
        assert_eq!(ok.vars()["HTTPS_PROXY"], "http://proxy:3128");
    }
}
