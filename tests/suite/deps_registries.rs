//! The registry lookups against real registries (pypiserver, verdaccio, a Cargo sparse index
//! and a GOPROXY tree, `support::registries`), and those registries from inside the fenced
//! setup sandbox on both backends, where the ecosystems' own clients install from them.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::support::registries::{
    self, TOY, TOY_GO, TOY_NPM_SCOPED, TestRegistries, as_refs, publish::toy_files, standard_set,
};
use crate::support::{self, python_repo};
use slipway::deps::Ecosystem;
use slipway::deps::registry::{LookupError, Registries};
use slipway::sandbox::settings::SandboxConfig;
use slipway::sandbox::setup_env::SetupHostEnv;
use slipway::sandbox::{Backend, SandboxPolicy, SandboxSpec};

/// The versions of a lookup, sorted as strings (the toy versions sort that way too).
fn versions(info: &slipway::deps::PackageInfo) -> Vec<String> {
    let mut v: Vec<String> = info.releases.iter().map(|r| r.version.clone()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn lookups_in_every_ecosystem_return_the_published_versions() {
    let r = standard_set().await;
    let reg = r.lookup();
    let all = ["1.0.0", "1.0.1", "1.1.0", "2.0.0"];

    // PyPI: pypiserver serves PEP 503 HTML only: no times. Any spelling of the name works.
    let py = reg.package(Ecosystem::Pypi, "Slipway_Toy").await.unwrap();
    assert_eq!(versions(&py), all);
    assert!(
        py.releases
            .iter()
            .all(|r| r.released_ms.is_none() && !r.yanked)
    );

    // npm: times and the repository from the packument; a scoped name too.
    let before = chrono::Utc::now().timestamp_millis() as u64;
    for name in [TOY, TOY_NPM_SCOPED] {
        let npm = reg.package(Ecosystem::Npm, name).await.unwrap();
        assert_eq!(versions(&npm), all, "{name}");
        for rel in &npm.releases {
            let t = rel.released_ms.unwrap_or_else(|| panic!("{name} {rel:?}"));
            assert!(t <= before && t > before - 3_600_000, "{name} {rel:?}");
        }
        assert!(
            npm.repository
                .as_deref()
                .is_some_and(|u| u.starts_with("https://github.com/slipway-tests/")),
            "{:?}",
            npm.repository
        );
    }

    // Cargo: a sparse index has no times.
    let krate = reg.package(Ecosystem::Cargo, TOY).await.unwrap();
    assert_eq!(versions(&krate), all);
    assert!(krate.releases.iter().all(|r| r.released_ms.is_none()));

    // Go: v2 is another module; `.info` gives the times; the capital is case-encoded.
    let go = reg.package(Ecosystem::Go, TOY_GO).await.unwrap();
    assert_eq!(versions(&go), ["v1.0.0", "v1.0.1", "v1.1.0"]);
    assert!(go.releases.iter().all(|r| r.released_ms.is_some()));
    let go2 = reg
        .package(Ecosystem::Go, &format!("{TOY_GO}/v2"))
        .await
        .unwrap();
    assert_eq!(versions(&go2), ["v2.0.0"]);
}

/// A yanked crate and a deprecated npm version are both reported yanked (never proposed).
#[tokio::test]
async fn yanked_crates_and_deprecated_npm_versions_are_reported_yanked() {
    let r = registries::registries().await;
    let files = toy_files("cargo", "0.1.0");
    for v in ["0.1.0", "0.1.1"] {
        r.publish_crate("slipway-yank", v, &as_refs(&files));
    }
    r.yank_crate("slipway-yank", "0.1.1");
    let info = r
        .lookup()
        .package(Ecosystem::Cargo, "slipway-yank")
        .await
        .unwrap();
    let yanked: Vec<(&str, bool)> = info
        .releases
        .iter()
        .map(|r| (r.version.as_str(), r.yanked))
        .collect();
    assert_eq!(yanked, [("0.1.0", false), ("0.1.1", true)]);

    let files = toy_files("npm", "0.1.0");
    for v in ["0.1.0", "0.1.1"] {
        r.publish_npm("slipway-deprecated", v, &as_refs(&files));
    }
    r.deprecate_npm("slipway-deprecated", "0.1.1", "broken, use 0.1.0");
    let info = r
        .lookup()
        .package(Ecosystem::Npm, "slipway-deprecated")
        .await
        .unwrap();
    let yanked: Vec<(&str, bool)> = info
        .releases
        .iter()
        .map(|r| (r.version.as_str(), r.yanked))
        .collect();
    assert_eq!(yanked, [("0.1.0", false), ("0.1.1", true)]);
}

#[tokio::test]
async fn an_unknown_package_is_not_found_in_every_ecosystem() {
    let r = standard_set().await;
    let reg = r.lookup();
    for (eco, name) in [
        (Ecosystem::Pypi, "no-such-package"),
        (Ecosystem::Npm, "no-such-package"),
        (Ecosystem::Npm, "@slipway/no-such-package"),
        (Ecosystem::Cargo, "no-such-package"),
        (Ecosystem::Go, "example.com/no/such"),
    ] {
        let e = reg.package(eco, name).await.unwrap_err();
        assert!(
            matches!(&e, LookupError::NotFound { ecosystem, name: n, .. } if *ecosystem == eco && n == name),
            "{eco} {name}: {e}"
        );
        assert!(e.to_string().contains(name), "{e}");
    }
    // A version that is not there, for a changelog.
    let e = reg
        .changelog(Ecosystem::Cargo, TOY, "1.0.0", "9.9.9")
        .await
        .unwrap_err();
    assert!(matches!(e, LookupError::NotFound { .. }), "{e}");
}

#[tokio::test]
async fn a_closed_port_is_unreachable_and_the_message_names_the_url() {
    // A port that was just free: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}/");
    let reg = Registries::from_env(|k| match k {
        "PIP_INDEX_URL" | "npm_config_registry" | "GOPROXY" => Some(base.clone()),
        "CARGO_SOURCE_CRATES_IO_REPLACE_WITH" => Some("down".into()),
        "CARGO_REGISTRIES_DOWN_INDEX" => Some(format!("sparse+{base}")),
        _ => None,
    });
    for eco in Ecosystem::ALL {
        let e = reg.package(*eco, "anything").await.unwrap_err();
        let LookupError::Unreachable { url, .. } = &e else {
            panic!("{eco}: {e}");
        };
        assert!(url.starts_with(&base), "{eco}: {url}");
        let msg = e.to_string();
        assert!(
            msg.contains(url.as_str()) && msg.contains("may be down") && msg.contains("try again"),
            "{msg}"
        );
    }
}

#[tokio::test]
async fn the_changelog_from_1_0_0_to_1_1_0_holds_the_patch_and_the_minor() {
    let r = standard_set().await;
    let reg = r.lookup();
    for (eco, name, from, to) in [
        (Ecosystem::Pypi, TOY, "1.0.0", "1.1.0"),
        (Ecosystem::Npm, TOY, "1.0.0", "1.1.0"),
        (Ecosystem::Npm, TOY_NPM_SCOPED, "1.0.0", "1.1.0"),
        (Ecosystem::Cargo, TOY, "1.0.0", "1.1.0"),
        (Ecosystem::Go, TOY_GO, "v1.0.0", "v1.1.0"),
    ] {
        let text = reg
            .changelog(eco, name, from, to)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{eco} {name}: no changelog"));
        assert!(
            text.contains("## 1.1.0") && text.contains("## 1.0.1"),
            "{eco}: {text}"
        );
        assert!(text.contains("optional punctuation"), "{eco}: {text}");
        assert!(
            !text.contains("## 1.0.0") && !text.contains("First release"),
            "{eco}: {text}"
        );
        assert!(!text.contains("2.0.0"), "{eco}: {text}");
    }
    // Across the major: only 2.0.0's section, which says what broke.
    let text = reg
        .changelog(Ecosystem::Cargo, TOY, "1.1.0", "2.0.0")
        .await
        .unwrap()
        .unwrap();
    assert!(
        text.starts_with("## 2.0.0") && text.contains("renamed `salute`"),
        "{text}"
    );
    assert!(!text.contains("## 1.1.0"), "{text}");
}

/// A setup sandbox whose `[sandbox] setup_env` copies the registry variables from `host`.
async fn setup_sandbox(
    backend: Backend,
    r: &'static TestRegistries,
) -> (Box<dyn slipway::sandbox::Session>, Vec<tempfile::TempDir>) {
    let ws = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    python_repo(ws.path());
    let cfg = SandboxConfig {
        command_timeout_s: 300,
        setup_env: r.setup_vars().iter().map(|(k, _)| k.to_string()).collect(),
        ..Default::default()
    };
    let host = SetupHostEnv::capture(&cfg.setup_env, |k| r.setup_env(k), &[]).unwrap();
    let setup = SandboxPolicy::for_setup(&cfg, &host).unwrap();
    let spec = SandboxSpec {
        workspace: ws.path().to_path_buf(),
        git_dir: ws.path().join(".git"),
        home: home.path().to_path_buf(),
        policy: setup.policy,
        run_id: slipway::task::new_id(),
        image: None,
        mounts: setup.mounts,
        pool: None,
    };
    let session = support::sandbox(backend).await.start(&spec).await.unwrap();
    (session, vec![ws, home])
}

async fn exec(s: &dyn slipway::sandbox::Session, cmd: &str) -> slipway::sandbox::ExecOutput {
    s.exec(cmd, Duration::from_secs(300), &CancellationToken::new())
        .await
        .unwrap()
}

/// Plain HTTP fetches of each registry's own documents from inside (`OK <status> <what>`),
/// and connections to the host's addresses (the veth end included), which must stay fenced.
fn probe(r: &TestRegistries, host_targets: &[(String, u16)]) -> String {
    let urls = [
        ("pypi", format!("{}slipway-toy/", r.pypi)),
        ("npm", format!("{}slipway-toy", r.npm)),
        ("cargo", format!("{}sl/ip/slipway-toy", r.cargo)),
        ("go", format!("{}/example.com/!slipway/toy/@v/list", r.go)),
    ];
    let urls: Vec<String> = urls
        .iter()
        .map(|(w, u)| format!("('{w}', '{u}')"))
        .collect();
    let hosts: Vec<String> = host_targets
        .iter()
        .map(|(h, p)| format!("('{h}', {p})"))
        .collect();
    format!(
        "python3 -c \"
import socket, urllib.request
for what, url in [{}]:
    try:
        r = urllib.request.urlopen(url, timeout=30); print('OK', r.status, what, len(r.read()))
    except Exception as e:
        print('FAILED', what, repr(e))
for h, p in [{}]:
    try:
        socket.create_connection((h, p), timeout=3).close(); print('HOST OPEN', h, p)
    except Exception as e:
        print('host closed', h, p, repr(e))
\"",
        urls.join(", "),
        hosts.join(", ")
    )
}

/// Every registry answers from inside the setup sandbox, with the fence intact: the host's
/// own addresses (a `0.0.0.0` listener, reached through the main address and through the
/// veth end of the registries' namespace) stay closed.
async fn setup_reaches_every_registry(
    backend: Backend,
) -> (Box<dyn slipway::sandbox::Session>, Vec<tempfile::TempDir>) {
    let r = standard_set().await;
    let any = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = any.local_addr().unwrap().port();
    let mut targets = vec![(r.ns.host_addr.to_string(), port)];
    let ip = std::path::Path::new("/usr/sbin/ip");
    for a in slipway::sandbox::fence::host_addresses(ip).await.unwrap() {
        if a.is_ipv4() && !a.is_loopback() {
            targets.push((a.to_string(), port));
        }
    }
    // The listener is real: the host itself reaches it on the veth end.
    std::net::TcpStream::connect((r.ns.host_addr, port)).unwrap();
    let (s, dirs) = setup_sandbox(backend, r).await;
    let out = exec(s.as_ref(), &probe(r, &targets)).await;
    assert_eq!(out.output.matches("OK 200").count(), 4, "{}", out.output);
    assert_eq!(
        out.output.matches("host closed").count(),
        targets.len(),
        "{}",
        out.output
    );
    assert!(!out.output.contains("HOST OPEN"), "{}", out.output);
    (s, dirs)
}

/// uv and npm (present on both backends) install from the test registries inside setup.
async fn uv_and_npm_install(s: &dyn slipway::sandbox::Session) {
    let out = exec(
        s,
        "cd /tmp && uv venv -q v && VIRTUAL_ENV=/tmp/v uv pip install 'slipway-toy==1.1.0' 2>&1 && /tmp/v/bin/python -c 'import slipway_toy; print(\"py\", slipway_toy.greet(\"x\"))'",
    )
    .await;
    assert!(out.output.contains("py hello x"), "{}", out.output);
    let out = exec(
        s,
        "mkdir -p /tmp/n && cd /tmp/n && echo '{}' > package.json && npm install --no-audit --no-fund slipway-toy@^1.0.0 @slipway/toy@2 2>&1 && node -e 'console.log(\"js\", require(\"slipway-toy\").greet(\"x\"), require(\"@slipway/toy\").salute(\"y\"))' && grep -o '\"version\": \"1.1.0\"' package-lock.json | head -1",
    )
    .await;
    assert!(out.output.contains("js hello x hello y"), "{}", out.output);
    assert!(
        out.output.contains("\"version\": \"1.1.0\""),
        "{}",
        out.output
    );
}

#[tokio::test]
async fn docker_setup_installs_from_every_test_registry() {
    let r = standard_set().await;
    let (s, _dirs) = setup_reaches_every_registry(Backend::Docker).await;
    uv_and_npm_install(s.as_ref()).await;
    // cargo 1.96: source replacement is not read from the environment (cargo reads
    // `CARGO_REGISTRIES_<NAME>_INDEX` there, but not `[source.crates-io] replace-with`), so
    // with the variables alone it still asks crates.io ...
    let lock = r#"cd /tmp/c && rm -f Cargo.lock && cargo generate-lockfile 2>&1 && cargo fetch 2>&1 && grep -A2 'name = "slipway-toy"' Cargo.lock"#;
    let out = exec(
        s.as_ref(),
        &format!(r#"cd /tmp && cargo new -q --lib c && cd c && echo 'slipway-toy = "1.0"' >> Cargo.toml; {lock}"#),
    )
    .await;
    assert!(
        !out.output.contains("version = \"1.1.0\""),
        "{}",
        out.output
    );
    assert!(out.output.contains("crates.io index"), "{}", out.output);
    // ... and one table in the setup home's cargo config, naming the registry whose index the
    // environment gives, is what points it at the mirror (the repo is untouched).
    let config = slipway::deps::registry::cargo_home_config(|k| r.setup_env(k)).unwrap();
    let out = exec(
        s.as_ref(),
        &format!("mkdir -p ~/.cargo && cat > ~/.cargo/config.toml <<'EOF'\n{config}EOF\n{lock}"),
    )
    .await;
    assert!(out.output.contains("version = \"1.1.0\""), "{}", out.output);
    assert!(
        out.output
            .contains("registry+https://github.com/rust-lang/crates.io-index"),
        "the lockfile still names crates.io: {}",
        out.output
    );
    // go 1.27 through GOPROXY, no checksum database.
    let out = exec(
        s.as_ref(),
        "mkdir -p /tmp/g && cd /tmp/g && go mod init example.com/app 2>&1 && go get example.com/Slipway/toy@v1.1.0 2>&1 && cat go.mod",
    )
    .await;
    assert!(
        out.output.contains("example.com/Slipway/toy v1.1.0"),
        "{}",
        out.output
    );
    s.close().await.unwrap();
}

#[tokio::test]
async fn bwrap_setup_installs_from_every_test_registry() {
    let (s, _dirs) = setup_reaches_every_registry(Backend::Bwrap).await;
    uv_and_npm_install(s.as_ref()).await;
    s.close().await.unwrap();
}
