//! Real public projects for the environment tests (open issue "Environments", section Tests).
//!
//! Each [`RealProject`] is a pair of consecutive releases of a real project from a registry:
//! version X has a bug and X+1 fixes it. A test unpacks X into a fresh git repo (one commit,
//! "base", on `main`) and replays the upstream fix with a scripted model that writes X+1's copy
//! of each fix file through the agent's own `write_file` tool, then finishes.
//!
//! Artifacts are fetched at test time with the ordinary clients as this machine has them set
//! up (pip, npm, cargo, and curl on the host's configured Debian mirror), checked against the
//! sha256 pinned here, and cached under `$CARGO_TARGET_DIR/real-projects/` (or
//! `target/real-projects/`). Nothing from them is committed. See `REAL_PROJECTS.md` for why each
//! project was chosen and what was seen on the host.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::fake_llm::Turn;
use super::sh;

/// Which registry an artifact comes from, and so which client fetches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Registry {
    /// A source distribution, via `pip download --no-binary :all:`.
    Pypi,
    /// A package tarball, via `npm pack`.
    Npm,
    /// A `.crate`, via `cargo fetch` on a throwaway manifest with a private `CARGO_HOME`.
    Crates,
    /// A binary package from the Debian pool, via curl on the host's apt mirror.
    Debian,
}

/// One release artifact, pinned.
#[derive(Clone, Copy, Debug)]
pub struct Artifact {
    /// The version as the registry spells it (Debian: the full package version).
    pub version: &'static str,
    /// The artifact's file name as the registry serves it.
    pub file: &'static str,
    /// Lowercase hex sha256 of the artifact's bytes.
    pub sha256: &'static str,
    /// The project root inside the unpacked artifact (relative path, `/`-separated).
    pub root: &'static str,
}

/// A real project with a buggy release and the next one that fixes it.
#[derive(Clone, Copy, Debug)]
pub struct RealProject {
    /// Registry name of the package (PyPI, npm or crate name; Debian binary package name).
    pub package: &'static str,
    /// Where it comes from.
    pub registry: Registry,
    /// Debian only: the pool directory under `pool/main/` (`<initial>/<source package>`, e.g. `g/golang-go-patricia`).
    pub pool_dir: &'static str,
    /// Version X, with the bug.
    pub buggy: Artifact,
    /// Version X+1, with the fix.
    pub fixed: Artifact,
    /// Files (relative to the project root) that make up the upstream fix: source and tests.
    pub fix_files: &'static [&'static str],
    /// What the Slack thread asks for.
    pub request: &'static str,
    /// The project's manifest (e.g. `pyproject.toml`); it is at the project root.
    pub manifest: &'static str,
    /// Files the `setup` gate may name as its source; it must name at least one.
    pub setup_sources: &'static [&'static str],
    /// A `tests` check for `.slipway/policy.toml`, committed with the base, when the detected
    /// one cannot pass on the registry artifact; `None` keeps detection.
    pub test_check: Option<&'static str>,
}

/// pyproject-api 1.9.0 → 1.9.1: legacy build requirements no longer include `wheel`
/// (`src/` layout, hatchling, a `testing` extra with pytest>=8.3.4).
pub const PYPROJECT_API: RealProject = RealProject {
    package: "pyproject-api",
    registry: Registry::Pypi,
    pool_dir: "",
    buggy: Artifact {
        version: "1.9.0",
        file: "pyproject_api-1.9.0.tar.gz",
        sha256: "7e8a9854b2dfb49454fae421cb86af43efbb2b2454e5646ffb7623540321ae6e",
        root: "pyproject_api-1.9.0",
    },
    fixed: Artifact {
        version: "1.9.1",
        file: "pyproject_api-1.9.1.tar.gz",
        sha256: "43c9918f49daab37e302038fc1aed54a8c7a91a9fa935d00b9a485f37e0f5335",
        root: "pyproject_api-1.9.1",
    },
    fix_files: &["src/pyproject_api/_frontend.py", "tests/test_frontend.py"],
    request: "pyproject-api: the legacy backend requirements should not include `wheel` any more",
    manifest: "pyproject.toml",
    setup_sources: &["pyproject.toml"],
    test_check: None,
};

/// @platformatic/metrics 3.36.0 → 3.40.0: HTTP metrics no longer get a default `telemetry_id`
/// label (read from the `x-plt-telemetry-id` header) when no custom labels are configured. Needs
/// Node >= 22.19 (`engines`, and `process.threadCpuUsage`, which Node 20 lacks: its tests fail there).
pub const PLATFORMATIC_METRICS: RealProject = RealProject {
    package: "@platformatic/metrics",
    registry: Registry::Npm,
    pool_dir: "",
    buggy: Artifact {
        version: "3.36.0",
        file: "platformatic-metrics-3.36.0.tgz",
        sha256: "437946d58f792b42f9f538d243e232be948d8737f552c8240cddffc9cff9e81f",
        root: "package",
    },
    fixed: Artifact {
        version: "3.40.0",
        file: "platformatic-metrics-3.40.0.tgz",
        sha256: "549017809103f60e81ebdacc99f7fbbcd472991cf03f06fec6cef1eca345d086",
        root: "package",
    },
    fix_files: &["index.js", "test/index.test.js"],
    request: "@platformatic/metrics: HTTP metrics get a telemetry_id label even when no custom labels are configured",
    manifest: "package.json",
    setup_sources: &["package-lock.json", "package.json"],
    test_check: None,
};

/// walkdir 2.5.0 → 2.5.1: with `follow_links`, a symlink to a directory above the root is
/// reported as a loop instead of being walked forever (dev-dependency `doc-comment`).
pub const WALKDIR: RealProject = RealProject {
    package: "walkdir",
    registry: Registry::Crates,
    pool_dir: "",
    buggy: Artifact {
        version: "2.5.0",
        file: "walkdir-2.5.0.crate",
        sha256: "29790946404f91d9c5d06f9874efddea1dc06c5efe94541a7d6863108e3a5e4b",
        root: "walkdir-2.5.0",
    },
    fixed: Artifact {
        version: "2.5.1",
        file: "walkdir-2.5.1.crate",
        sha256: "b42e295b7452c4604982280d8586001fcad9b8b201cac67bca9771e7a7475403",
        root: "walkdir-2.5.1",
    },
    fix_files: &["src/lib.rs", "src/tests/recursive.rs"],
    request: "walkdir: following a symlink to a directory above the root loops instead of erroring",
    manifest: "Cargo.toml",
    setup_sources: &["Cargo.toml", "Cargo.lock"],
    test_check: None,
};

/// github.com/tchap/go-patricia/v2 2.3.2 → 2.3.3 (Debian's packaging of the module):
/// `compact()` dereferenced a nil first child. Zero dependencies.
pub const GO_PATRICIA: RealProject = RealProject {
    package: "golang-github-tchap-go-patricia-dev",
    registry: Registry::Debian,
    pool_dir: "g/golang-go-patricia",
    buggy: Artifact {
        version: "2.3.2-1",
        file: "golang-github-tchap-go-patricia-dev_2.3.2-1_all.deb",
        sha256: "27c66427a251b890bdda6eaefd35aeb19066f984316e954b36adbe6751c84c00",
        root: "usr/share/gocode/src/github.com/tchap/go-patricia",
    },
    fixed: Artifact {
        version: "2.3.3-2",
        file: "golang-github-tchap-go-patricia-dev_2.3.3-2_all.deb",
        sha256: "4600a0227dd8c5adaf51e3eb2e602b3706fff11ab7494da636916d90d5d3483d",
        root: "usr/share/gocode/src/github.com/tchap/go-patricia",
    },
    fix_files: &["patricia/patricia.go", "patricia/patricia_sparse_test.go"],
    request: "go-patricia: Trie.compact() panics with a nil pointer when the first child is nil",
    manifest: "go.mod",
    setup_sources: &["go.mod"],
    test_check: None,
};

/// All four shapes: Python, Node, Rust, Go.
pub const ALL: [RealProject; 4] = [PYPROJECT_API, PLATFORMATIC_METRICS, WALKDIR, GO_PATRICIA];

/// The download cache: `$CARGO_TARGET_DIR/real-projects/`, else `target/real-projects/`.
pub fn cache_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("real-projects");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The first Debian mirror URI the host's apt sources name (`URIs:` in deb822 files, or a
/// `deb` line), so the tests name no mirror of their own.
fn debian_mirror() -> String {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(rd) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    for f in files {
        let name = f.to_string_lossy();
        if !(name.ends_with(".list") || name.ends_with(".sources")) {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for line in text.lines().map(str::trim) {
            let uri = if let Some(rest) = line.strip_prefix("URIs:") {
                rest.split_whitespace().next()
            } else if let Some(rest) = line.strip_prefix("deb ") {
                rest.split_whitespace().find(|w| w.contains("://"))
            } else {
                None
            };
            if let Some(uri) = uri.filter(|u| u.trim_end_matches('/').ends_with("/debian")) {
                return uri.trim_end_matches('/').to_string();
            }
        }
    }
    panic!("no Debian mirror in the host's apt sources: the Go project comes from Debian's pool")
}

/// Downloads `art` of `p` into a scratch dir with the registry's ordinary client and returns
/// its bytes.
fn download(p: &RealProject, art: &Artifact) -> Vec<u8> {
    let scratch = tempfile::tempdir_in(cache_dir()).unwrap();
    let dir = scratch.path();
    let path = match p.registry {
        Registry::Pypi => {
            run(Command::new("python3")
                .args(["-m", "pip", "download", "--quiet", "--no-deps"])
                .args(["--no-binary", ":all:", "-d"])
                .arg(dir)
                .arg(format!("{}=={}", p.package, art.version)));
            dir.join(art.file)
        }
        Registry::Npm => {
            run(Command::new("npm")
                .args(["pack", "--silent", "--pack-destination"])
                .arg(dir)
                .arg(format!("{}@{}", p.package, art.version))
                .current_dir(dir));
            dir.join(art.file)
        }
        Registry::Crates => {
            let manifest = format!(
                "[package]\nname = \"real-project-fetch\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n\
                 [lib]\npath = \"lib.rs\"\n\n[dependencies]\n{} = \"={}\"\n",
                p.package, art.version
            );
            std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
            std::fs::write(dir.join("lib.rs"), "").unwrap();
            let home = dir.join("cargo-home");
            run(Command::new("cargo")
                .args(["fetch", "--quiet"])
                .env("CARGO_HOME", &home)
                .current_dir(dir));
            let cache = home.join("registry/cache");
            std::fs::read_dir(&cache)
                .unwrap()
                .filter_map(Result::ok)
                .map(|e| e.path().join(art.file))
                .find(|f| f.is_file())
                .unwrap_or_else(|| panic!("cargo fetch left no {} in {cache:?}", art.file))
        }
        Registry::Debian => {
            let url = format!("{}/pool/main/{}/{}", debian_mirror(), p.pool_dir, art.file);
            let out = dir.join(art.file);
            run(Command::new("curl")
                .args(["-fsSL", "--retry", "2", "-o"])
                .arg(&out)
                .arg(&url));
            out
        }
    };
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// The artifact's path in the cache, downloading it first when absent. Panics when the bytes
/// do not match the pinned sha256.
pub fn fetch(p: &RealProject, art: &Artifact) -> PathBuf {
    let cached = cache_dir().join(art.file);
    if let Ok(bytes) = std::fs::read(&cached)
        && sha256_hex(&bytes) == art.sha256
    {
        return cached;
    }
    let bytes = download(p, art);
    let got = sha256_hex(&bytes);
    assert_eq!(
        got, art.sha256,
        "{} {} does not match its pinned sha256",
        p.package, art.file
    );
    let tmp = cached.with_extension("part");
    std::fs::write(&tmp, &bytes).unwrap();
    std::fs::rename(&tmp, &cached).unwrap();
    cached
}

/// Unpacks `art` into a new temp dir and returns (the dir, the project root inside it).
pub fn unpack(p: &RealProject, art: &Artifact) -> (tempfile::TempDir, PathBuf) {
    let file = fetch(p, art);
    let dir = tempfile::tempdir().unwrap();
    match p.registry {
        Registry::Debian => run(Command::new("dpkg-deb")
            .arg("-x")
            .arg(&file)
            .arg(dir.path())),
        _ => run(Command::new("tar")
            .arg("-xzf")
            .arg(&file)
            .arg("-C")
            .arg(dir.path())),
    }
    let root = dir.path().join(art.root);
    assert!(root.is_dir(), "{} has no {}", art.file, art.root);
    (dir, root)
}

/// Lays out version X of `p` at `repo` as a fresh git repo with one commit, "base", on `main`.
/// Node projects get a `package-lock.json` (tarballs carry none), made on the host with
/// `npm install --package-lock-only --ignore-scripts`, committed with the base; a project with a
/// [`RealProject::test_check`] gets a `.slipway/policy.toml` naming it.
pub fn base_repo(p: &RealProject, repo: &Path) {
    let (_keep, root) = unpack(p, &p.buggy);
    std::fs::create_dir_all(repo).unwrap();
    run(Command::new("cp").arg("-a").arg(root.join(".")).arg(repo));
    if let Some(test) = p.test_check {
        std::fs::create_dir_all(repo.join(".slipway")).unwrap();
        std::fs::write(
            repo.join(".slipway/policy.toml"),
            format!("[checks]\ntest = \"{test}\"\n"),
        )
        .unwrap();
    }
    if p.registry == Registry::Npm && !repo.join("package-lock.json").exists() {
        sh(
            repo,
            "npm install --package-lock-only --ignore-scripts --no-audit --no-fund --silent",
        );
    }
    sh(
        repo,
        "git init -q -b main . && git config user.email t@example.com && git config user.name tester \
         && git add -A && git commit -qm base",
    );
}

/// X+1's copy of each fix file, as (path relative to the project root, content).
pub fn fix_contents(p: &RealProject) -> Vec<(String, String)> {
    let (_keep, root) = unpack(p, &p.fixed);
    p.fix_files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(root.join(f))
                .unwrap_or_else(|e| panic!("{} {f}: {e}", p.fixed.file));
            (f.to_string(), text)
        })
        .collect()
}

/// The scripted model session that replays the upstream fix: one `write_file` per fix file
/// (X+1's content), then `finish`.
pub fn fix_script(p: &RealProject) -> Vec<Turn> {
    let mut turns: Vec<Turn> = fix_contents(p)
        .into_iter()
        .map(|(path, content)| Turn::call("write_file", json!({"path": path, "content": content})))
        .collect();
    turns.push(finish_turn(p));
    turns
}

/// The scripted `finish` call that ends the session.
pub fn finish_turn(p: &RealProject) -> Turn {
    Turn::call(
        "finish",
        json!({"summary": format!(
            "Applied the upstream fix from {} {}.",
            p.package, p.fixed.version
        )}),
    )
}
