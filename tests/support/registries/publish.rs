//! Publishing to the test registries: each helper builds the ecosystem's real artifact from a
//! list of `(path, content)` files and a generated manifest, and puts it where the registry
//! serves it from.
//!
//! - PyPI: a pure-Python wheel (zip: the files, `*.dist-info/{METADATA,WHEEL,RECORD}`, PEP 427)
//!   and an sdist (`name-ver/` tar.gz with `PKG-INFO`, `pyproject.toml`), written to
//!   pypiserver's directory. Top-level non-Python files (a changelog) go in the sdist only.
//! - npm: `npm publish` of a generated directory (`package.json` + the files) to verdaccio.
//! - Cargo: a `.crate` (`name-ver/` tar.gz with `Cargo.toml`), its line appended to the sparse
//!   index file (`1/a`, `2/ab`, `3/a/abc`, `ab/cd/abcd`) with `cksum` = its sha256.
//! - Go: `@v/list`, `vX.info` (`Version`, `Time`), `vX.mod` and `vX.zip` (every path under
//!   `module@version/`), under the case-encoded module path (`!x` for `X`).

use std::io::Write;
use std::path::Path;
use std::process::Command;

use base64::Engine;
use sha2::{Digest, Sha256};

use super::TestRegistries;

impl TestRegistries {
    /// Publishes `name` `version` to pypiserver as a wheel and an sdist.
    pub fn publish_pypi(&self, name: &str, version: &str, files: &[(&str, &str)]) {
        let _g = self.publish_lock.lock().unwrap();
        let dist = name.replace(['-', '.'], "_").to_lowercase();
        let metadata = format!(
            "Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: a slipway test package\n"
        );
        // The wheel.
        let info = format!("{dist}-{version}.dist-info");
        let mut entries: Vec<(String, String)> = files
            .iter()
            .filter(|(p, _)| p.contains('/') || p.ends_with(".py"))
            .map(|(p, c)| (p.to_string(), c.to_string()))
            .collect();
        entries.push((format!("{info}/METADATA"), metadata.clone()));
        entries.push((
            format!("{info}/WHEEL"),
            "Wheel-Version: 1.0\nGenerator: slipway-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
                .into(),
        ));
        let mut record = String::new();
        for (p, c) in &entries {
            let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(Sha256::digest(c.as_bytes()));
            record += &format!("{p},sha256={hash},{}\n", c.len());
        }
        record += &format!("{info}/RECORD,,\n");
        entries.push((format!("{info}/RECORD"), record));
        let wheel = zip_bytes(&entries);
        let dir = self.root.join("pypi");
        write_atomic(
            &dir.join(format!("{dist}-{version}-py3-none-any.whl")),
            &wheel,
        );
        // The sdist.
        let prefix = format!("{dist}-{version}");
        let mut sdist: Vec<(String, String)> = files
            .iter()
            .map(|(p, c)| (format!("{prefix}/{p}"), c.to_string()))
            .collect();
        sdist.push((format!("{prefix}/PKG-INFO"), metadata));
        sdist.push((
            format!("{prefix}/pyproject.toml"),
            format!("[project]\nname = \"{name}\"\nversion = \"{version}\"\n"),
        ));
        write_atomic(&dir.join(format!("{prefix}.tar.gz")), &tar_gz(&sdist));
    }

    /// Publishes `name` `version` to verdaccio with `npm publish` (a scoped name works).
    pub fn publish_npm(&self, name: &str, version: &str, files: &[(&str, &str)]) {
        let _g = self.publish_lock.lock().unwrap();
        let work = tempfile::tempdir().unwrap();
        let pkg = work.path().join("pkg");
        let manifest = serde_json::json!({
            "name": name,
            "version": version,
            "main": "index.js",
            "license": "MIT",
            "repository": {"type": "git", "url": format!("git+https://github.com/slipway-tests/{}.git", name.trim_start_matches('@').replace('/', "-"))},
        });
        write_files(
            &pkg,
            files
                .iter()
                .map(|(p, c)| (p.to_string(), c.to_string()))
                .chain([("package.json".to_string(), manifest.to_string())]),
        );
        let npmrc = self.npmrc(work.path());
        let out = Command::new("npm")
            .args(["publish", "--access", "public", "--registry", &self.npm])
            .arg("--userconfig")
            .arg(&npmrc)
            .arg("--cache")
            .arg(work.path().join("cache"))
            .current_dir(&pkg)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "npm publish {name}@{version}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Deprecates `name@version` on verdaccio (`npm deprecate`).
    pub fn deprecate_npm(&self, name: &str, version: &str, message: &str) {
        let _g = self.publish_lock.lock().unwrap();
        let work = tempfile::tempdir().unwrap();
        let npmrc = self.npmrc(work.path());
        let out = Command::new("npm")
            .args(["deprecate", &format!("{name}@{version}"), message])
            .args(["--registry", &self.npm])
            .arg("--userconfig")
            .arg(&npmrc)
            .arg("--cache")
            .arg(work.path().join("cache"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "npm deprecate {name}@{version}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// An npmrc in `dir` with the publishing user's token for verdaccio.
    fn npmrc(&self, dir: &Path) -> std::path::PathBuf {
        let host = self.npm.trim_start_matches("http:");
        let npmrc = dir.join("npmrc");
        std::fs::write(&npmrc, format!("{host}:_authToken={}\n", self.npm_token)).unwrap();
        npmrc
    }

    /// Publishes `name` `version` to the sparse index (`.crate` plus its index line).
    pub fn publish_crate(&self, name: &str, version: &str, files: &[(&str, &str)]) {
        let _g = self.publish_lock.lock().unwrap();
        let cargo = self.root.join("static/cargo");
        let config = cargo.join("config.json");
        if !config.exists() {
            let dl = format!("{}crates/{{crate}}/{{version}}/download", self.cargo);
            write_atomic(
                &config,
                serde_json::json!({ "dl": dl }).to_string().as_bytes(),
            );
        }
        let prefix = format!("{name}-{version}");
        let mut entries: Vec<(String, String)> = files
            .iter()
            .map(|(p, c)| (format!("{prefix}/{p}"), c.to_string()))
            .collect();
        entries.push((
            format!("{prefix}/Cargo.toml"),
            format!(
                "[package]\nname = \"{name}\"\nversion = \"{version}\"\nedition = \"2021\"\nlicense = \"MIT\"\ndescription = \"a slipway test crate\"\nrepository = \"https://github.com/slipway-tests/{name}\"\n"
            ),
        ));
        let krate = tar_gz(&entries);
        let cksum = hex::encode(Sha256::digest(&krate));
        write_atomic(
            &cargo.join(format!("crates/{name}/{version}/download")),
            &krate,
        );
        let line = serde_json::json!({
            "name": name, "vers": version, "deps": [], "cksum": cksum,
            "features": {}, "yanked": false, "links": null,
        });
        let index = cargo.join(cargo_index_path(name));
        std::fs::create_dir_all(index.parent().unwrap()).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(index)
            .unwrap();
        writeln!(f, "{line}").unwrap();
    }

    /// Marks `name` `version` yanked in the sparse index (rewrites its line).
    pub fn yank_crate(&self, name: &str, version: &str) {
        let _g = self.publish_lock.lock().unwrap();
        let index = self.root.join("static/cargo").join(cargo_index_path(name));
        let text = std::fs::read_to_string(&index).unwrap();
        let mut out = String::new();
        for line in text.lines() {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            if v["vers"] == version {
                v["yanked"] = true.into();
            }
            out += &format!("{v}\n");
        }
        write_atomic(&index, out.as_bytes());
    }

    /// Publishes Go module `module` at `version` (`v1.2.3`) to the GOPROXY tree; `go.mod` is
    /// generated.
    pub fn publish_go(&self, module: &str, version: &str, files: &[(&str, &str)]) {
        let _g = self.publish_lock.lock().unwrap();
        let dir = self
            .root
            .join("static/go")
            .join(go_escape(module))
            .join("@v");
        std::fs::create_dir_all(&dir).unwrap();
        let go_mod = format!("module {module}\n\ngo 1.21\n");
        let prefix = format!("{module}@{version}");
        let mut entries: Vec<(String, String)> = files
            .iter()
            .map(|(p, c)| (format!("{prefix}/{p}"), c.to_string()))
            .collect();
        entries.push((format!("{prefix}/go.mod"), go_mod.clone()));
        write_atomic(&dir.join(format!("{version}.zip")), &zip_bytes(&entries));
        write_atomic(&dir.join(format!("{version}.mod")), go_mod.as_bytes());
        let time = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let info = serde_json::json!({"Version": version, "Time": time});
        write_atomic(
            &dir.join(format!("{version}.info")),
            info.to_string().as_bytes(),
        );
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("list"))
            .unwrap();
        writeln!(f, "{version}").unwrap();
    }
}

/// The GOPROXY case encoding (`X` → `!x`), written here independently of the lookup's.
pub fn go_escape(path: &str) -> String {
    path.chars()
        .map(|c| {
            if c.is_ascii_uppercase() {
                format!("!{}", c.to_ascii_lowercase())
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The sparse index path of a crate (cargo's layout, names lower-cased).
pub fn cargo_index_path(name: &str) -> String {
    let n = name.to_lowercase();
    match n.len() {
        1 => format!("1/{n}"),
        2 => format!("2/{n}"),
        3 => format!("3/{}/{n}", &n[..1]),
        _ => format!("{}/{}/{n}", &n[..2], &n[2..4]),
    }
}

/// Creates a verdaccio user and returns its token (`PUT /-/user/org.couchdb.user:NAME`, the
/// CouchDB-style call `npm adduser` makes).
pub fn npm_user_token(registry: &str) -> String {
    let body = serde_json::json!({"name": "slipway", "password": "slipway-test-pw"});
    let out = Command::new("curl")
        .args(["-sS", "--noproxy", "*", "-X", "PUT", "-H"])
        .arg("content-type: application/json")
        .arg("--data")
        .arg(body.to_string())
        .arg(format!("{registry}-/user/org.couchdb.user:slipway"))
        .output()
        .unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verdaccio's adduser reply is not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    reply["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token from verdaccio: {reply}"))
        .to_string()
}

/// The changelog of the toy package at `version`: one section per version up to it, newest
/// first (a version outside the toy set gets one section of its own).
pub fn toy_changelog(version: &str) -> String {
    let notes = [
        ("2.0.0", "- Breaking: `greet` is renamed `salute`."),
        (
            "1.1.0",
            "- Added: an optional punctuation argument to `greet`.",
        ),
        ("1.0.1", "- Fixed: `greet` trims the name."),
        ("1.0.0", "- First release."),
    ];
    let mut s = String::from("# Changelog\n\n");
    let Some(at) = notes.iter().position(|(v, _)| *v == version) else {
        return s + &format!("## {version}\n\n- Release {version}.\n");
    };
    for (v, n) in &notes[at..] {
        s += &format!("## {v}\n\n{n}\n\n");
    }
    s
}

/// The toy package's files for `eco` (`pypi`, `npm`, `cargo`, `go`) at `version`: the main
/// function is `greet` before 2.0.0 and `salute` from 2.0.0 on; always a `CHANGELOG.md`.
pub fn toy_files(eco: &str, version: &str) -> Vec<(String, String)> {
    let f = if version.starts_with("2.") {
        "salute"
    } else {
        "greet"
    };
    let (path, src) = match eco {
        "pypi" => (
            "slipway_toy/__init__.py".to_string(),
            format!("def {f}(name):\n    return f\"hello {{name}}\"\n"),
        ),
        "npm" => (
            "index.js".to_string(),
            format!("exports.{f} = (name) => `hello ${{name}}`;\n"),
        ),
        "cargo" => (
            "src/lib.rs".to_string(),
            format!("pub fn {f}(name: &str) -> String {{\n    format!(\"hello {{name}}\")\n}}\n"),
        ),
        "go" => {
            let upper = format!("{}{}", f[..1].to_uppercase(), &f[1..]);
            (
                "toy.go".to_string(),
                format!(
                    "package toy\n\nfunc {upper}(name string) string {{ return \"hello \" + name }}\n"
                ),
            )
        }
        other => panic!("unknown ecosystem {other}"),
    };
    vec![
        (path, src),
        ("CHANGELOG.md".to_string(), toy_changelog(version)),
    ]
}

fn write_files(dir: &Path, files: impl Iterator<Item = (String, String)>) {
    for (p, c) in files {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, c).unwrap();
    }
}

/// Writes through a temporary name, so a server never serves half a file.
fn write_atomic(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

/// A zip (deflate) of `entries`.
pub fn zip_bytes(entries: &[(String, String)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (p, c) in entries {
        w.start_file(p.as_str(), opts).unwrap();
        w.write_all(c.as_bytes()).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// A gzipped tar of `entries` (regular files, mode 0644).
pub fn tar_gz(entries: &[(String, String)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut t = tar::Builder::new(gz);
    for (p, c) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(c.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        t.append_data(&mut h, p, c.as_bytes()).unwrap();
    }
    t.into_inner().unwrap().finish().unwrap()
}
