//! The default sandbox image (`slipway sandbox build`, `deploy/sandbox/`): the toolchains a
//! repo's checks need are in it, at the versions issue "Environments" asks for, and it says
//! which inputs built it. Started through slipway's own docker backend, under the run policy
//! (no network, read-only root, `/tmp` tmpfs).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::support::{self, IMAGE, python_repo};
use slipway::sandbox::image::{self, Freshness};
use slipway::sandbox::settings::SandboxConfig;
use slipway::sandbox::{Backend, NetworkAccess, SandboxPolicy, SandboxSpec};

/// The first `major.minor` in `text` after `prefix`, e.g. `("go version go", …)`.
fn version_after(text: &str, prefix: &str) -> (u32, u32) {
    let at = text
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix:?} in {text:?}"));
    let rest = &text[at + prefix.len()..];
    let mut parts = rest
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u32>().unwrap());
    (parts.next().unwrap(), parts.next().unwrap())
}

#[tokio::test]
async fn the_default_image_has_current_toolchains() {
    let ws = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    python_repo(ws.path());
    let cfg = SandboxConfig::default();
    assert_eq!(cfg.image, IMAGE);
    let spec = SandboxSpec {
        workspace: ws.path().to_path_buf(),
        git_dir: ws.path().join(".git"),
        home: home.path().to_path_buf(),
        policy: SandboxPolicy::for_run(&cfg, NetworkAccess::None),
        run_id: slipway::task::new_id(),
        image: None,
        mounts: Vec::new(),
        pool: None,
    };
    let session = support::sandbox(Backend::Docker)
        .await
        .start(&spec)
        .await
        .unwrap();
    let run = |cmd: &'static str| {
        let session = &session;
        async move {
            let out = session
                .exec(cmd, Duration::from_secs(120), &CancellationToken::new())
                .await
                .unwrap();
            assert!(out.success(), "`{cmd}`: {}", out.output);
            out.output
        }
    };

    let node = run("node --version").await;
    assert!(version_after(&node, "v").0 >= 22, "{node}");
    let npm = run("npm --version").await;
    assert!(version_after(&npm, "").0 >= 10, "{npm}");
    run("npx --version").await;
    run("corepack --version").await;
    // pnpm and yarn are corepack's shims; corepack fetches them in setup (with network).
    run("test -L /usr/local/bin/pnpm && test -L /usr/local/bin/yarn").await;

    let go = run("go version").await;
    assert!(version_after(&go, "go version go") >= (1, 22), "{go}");
    // The toolchain finds its own GOROOT and standard library from the link.
    run("cd /tmp && printf 'package main\\nfunc main(){println(\"hi\")}\\n' > m.go && GOCACHE=/tmp/gocache go vet m.go").await;

    let rustc = run("rustc --version").await;
    assert!(version_after(&rustc, "rustc ") >= (1, 80), "{rustc}");
    let cargo = run("cargo --version").await;
    assert!(version_after(&cargo, "cargo ") >= (1, 80), "{cargo}");

    let uv = run("uv --version").await;
    assert!(uv.starts_with("uv "), "{uv}");
    run("uvx --version").await;
    let venv =
        run("python3 -m venv /tmp/v && /tmp/v/bin/python -c 'import sys; print(sys.prefix)'").await;
    assert!(venv.contains("/tmp/v"), "{venv}");

    session.close().await.unwrap();
}

#[tokio::test]
async fn the_default_image_is_stamped_with_the_inputs_that_built_it() {
    let engine = support::docker().await;
    // `scripts/test-env.sh` rebuilds an image whose stamp differs, so a stale one fails here.
    assert_eq!(
        image::freshness(&engine, IMAGE).await.unwrap(),
        Some(Freshness::Current),
        "{IMAGE} was built from other inputs than deploy/sandbox/ (stamp {}); run scripts/test-env.sh or `slipway sandbox build`",
        image::inputs_stamp()
    );
}
