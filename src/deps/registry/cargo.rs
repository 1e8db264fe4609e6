//! Cargo through a sparse index (RFC 2789; cargo's "Registry index" reference): the index file
//! of a crate is `GET <index>/<prefix>/<name>` with the name lower-cased and the prefix
//! `1`, `2`, `3/<first char>` or `<first two>/<next two>` by its length; one JSON object a
//! line, one line per version: `name`, `vers`, `cksum`, `yanked`, `deps`, `features`.
//! `<index>/config.json` gives `dl`, the download URL (template markers `{crate}`,
//! `{version}`, `{prefix}`, `{lowerprefix}`, `{sha256-checksum}`; without markers
//! `/{crate}/{version}/download` is appended).
//!
//! A sparse index has no publish times and names no repository: those stay `None`.

use serde::Deserialize;

use super::archive::Layout;
use super::{LookupError, Registries, Result, join};
use crate::deps::{Ecosystem, PackageInfo, Release};

/// The index path of a crate (`serde` → `se/rd/serde`, `syn` → `3/s/syn`).
pub fn index_path(name: &str) -> String {
    let n = name.to_ascii_lowercase();
    match n.len() {
        0..=2 => format!("{}/{n}", n.len()),
        3 => format!("3/{}/{n}", &n[..1]),
        _ => format!("{}/{}/{n}", &n[..2], &n[2..4]),
    }
}

/// The `$CARGO_HOME/config.toml` the setup home needs so that cargo uses the crates.io
/// replacement the setup variables name, or `None` when they name none.
///
/// Cargo reads `CARGO_REGISTRIES_<NAME>_INDEX` from the environment, but not
/// `[source.crates-io] replace-with` (checked with cargo 1.96 in the docker sandbox image;
/// cargo issues #12724, #5416): with the variables alone it still asks crates.io. So setup
/// writes this file (one table, naming the registry; the index URL stays in the
/// environment) into the sandbox home's `.cargo/`, and the repo is never edited. The
/// name must be a cargo registry name (letters, digits, `-`, `_`).
pub fn home_config(vars: impl Fn(&str) -> Option<String>) -> Option<String> {
    let name = vars("CARGO_SOURCE_CRATES_IO_REPLACE_WITH")?;
    let name = name.trim();
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return None;
    }
    let mut out = format!("[source.crates-io]\nreplace-with = \"{name}\"\n");
    // The index too, so the offline sandbox (which gets no setup variables) still knows the
    // registry its cached crates came from. A URL with quotes or controls is left out.
    let var = format!(
        "CARGO_REGISTRIES_{}_INDEX",
        name.to_ascii_uppercase().replace('-', "_")
    );
    if let Some(index) = vars(&var)
        && !index
            .chars()
            .any(|c| c == '"' || c == '\\' || c.is_control())
    {
        out.push_str(&format!(
            "\n[registries.{name}]\nindex = \"{}\"\n",
            index.trim()
        ));
    }
    Some(out)
}

/// Writes [`home_config`] as `<cargo_home>/config.toml` when the variables name a crates.io
/// replacement; returns whether it wrote one. `cargo_home` is a host directory the sandbox
/// sees as its `CARGO_HOME` (created when missing).
pub fn write_home_config(
    cargo_home: &std::path::Path,
    vars: impl Fn(&str) -> Option<String>,
) -> std::io::Result<bool> {
    let Some(config) = home_config(vars) else {
        return Ok(false);
    };
    std::fs::create_dir_all(cargo_home)?;
    std::fs::write(cargo_home.join("config.toml"), config)?;
    Ok(true)
}

#[derive(Deserialize)]
struct Line {
    vers: String,
    #[serde(default)]
    cksum: String,
    #[serde(default)]
    yanked: bool,
}

async fn lines(reg: &Registries, name: &str) -> Result<Vec<Line>> {
    if name.is_empty() || !name.is_ascii() {
        return Err(not_found(reg, name));
    }
    let url = join(&reg.cargo, &index_path(name));
    let Some((_, body)) = reg.get_text(&url, "*/*").await? else {
        return Err(not_found(reg, name));
    };
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|e| LookupError::Malformed {
                url: url.clone(),
                detail: format!("index line {l:?}: {e}"),
            })
        })
        .collect()
}

fn not_found(reg: &Registries, name: &str) -> LookupError {
    LookupError::NotFound {
        ecosystem: Ecosystem::Cargo,
        name: name.into(),
        registry: reg.cargo.clone(),
    }
}

pub(super) async fn package(reg: &Registries, name: &str) -> Result<PackageInfo> {
    let releases = lines(reg, name)
        .await?
        .into_iter()
        .map(|l| Release {
            version: l.vers,
            released_ms: None,
            yanked: l.yanked,
        })
        .collect();
    Ok(PackageInfo {
        releases,
        repository: None,
        changelog_url: None,
    })
}

#[derive(Deserialize)]
struct Config {
    dl: String,
}

/// The download URL of `name` `version` from the `dl` template.
pub fn download_url(dl: &str, name: &str, version: &str, cksum: &str) -> String {
    let markers = [
        "{crate}",
        "{version}",
        "{prefix}",
        "{lowerprefix}",
        "{sha256-checksum}",
    ];
    if !markers.iter().any(|m| dl.contains(m)) {
        return join(dl, &format!("{name}/{version}/download"));
    }
    let prefix = index_path(name);
    let prefix = prefix.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
    // `{prefix}` keeps the name's case; the index path above is lower-cased.
    let cased = if name.len() > 3 {
        format!("{}/{}", &name[..2], &name[2..4])
    } else if name.len() == 3 {
        format!("3/{}", &name[..1])
    } else {
        name.len().to_string()
    };
    dl.replace("{crate}", name)
        .replace("{version}", version)
        .replace("{lowerprefix}", prefix)
        .replace("{prefix}", &cased)
        .replace("{sha256-checksum}", cksum)
}

pub(super) async fn artifact(
    reg: &Registries,
    name: &str,
    version: &str,
) -> Result<(String, Layout)> {
    let lines = lines(reg, name).await?;
    let Some(line) = lines.iter().find(|l| l.vers == version) else {
        return Err(not_found(reg, &format!("{name}@{version}")));
    };
    let url = join(&reg.cargo, "config.json");
    let Some((_, body)) = reg.get_text(&url, "application/json").await? else {
        return Err(LookupError::Malformed {
            url,
            detail: "the sparse index has no config.json".into(),
        });
    };
    let config: Config = serde_json::from_str(&body).map_err(|e| LookupError::Malformed {
        url,
        detail: e.to_string(),
    })?;
    Ok((
        download_url(&config.dl, name, version, &line.cksum),
        Layout::TarGzTopDir,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_home_config_names_the_replacement() {
        let vars = |k: &str| {
            (k == "CARGO_SOURCE_CRATES_IO_REPLACE_WITH").then(|| "corp-mirror".to_string())
        };
        assert_eq!(
            home_config(vars).as_deref(),
            Some("[source.crates-io]\nreplace-with = \"corp-mirror\"\n")
        );
        assert_eq!(home_config(|_| Some("a\"b".into())), None);
        assert_eq!(home_config(|_| None), None);
    }

    #[test]
    fn index_paths_follow_cargos_layout() {
        assert_eq!(index_path("a"), "1/a");
        assert_eq!(index_path("ab"), "2/ab");
        assert_eq!(index_path("abc"), "3/a/abc");
        assert_eq!(index_path("Serde"), "se/rd/serde");
    }

    #[test]
    fn download_urls_fill_the_template() {
        assert_eq!(
            download_url("https://static.crates.io/crates", "serde", "1.0.0", "x"),
            "https://static.crates.io/crates/serde/1.0.0/download"
        );
        assert_eq!(
            download_url(
                "https://d/{lowerprefix}/{crate}/{crate}-{version}.crate?{sha256-checksum}",
                "Serde",
                "1.0.0",
                "ab"
            ),
            "https://d/se/rd/Serde/Serde-1.0.0.crate?ab"
        );
    }
}
