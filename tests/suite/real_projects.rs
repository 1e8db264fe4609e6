//! Real public projects, one per shape (Python, Node, Rust, Go): a scripted model replays a
//! real upstream fix through the agent's file tools and the repo's own tests must pass in the
//! sandbox. Open issue "Environments" (Tests): these need setup to build each project's
//! environment (venv, node_modules, cargo fetch, Go toolchain) and fail until it does.

use slipway::agent::llm::settings::LlmProvider;
use slipway::report::{GateStatus, RunReport};
use slipway::sandbox::Backend;

use crate::support::real_projects::{
    self, GO_PATRICIA, PLATFORMATIC_METRICS, PYPROJECT_API, RealProject, WALKDIR,
};
use crate::support::{Harness, sh};

fn gate<'a>(r: &'a RunReport, name: &str) -> &'a slipway::report::Gate {
    r.gates.iter().find(|g| g.name == name).unwrap_or_else(|| {
        panic!(
            "no {name} gate; decision {:?}, reasons {:?}, gates {:?}",
            r.decision, r.reasons, r.gates
        )
    })
}

/// The end of the last message the model got: in a fix round, the failing checks' output.
fn last_request_tail(h: &Harness) -> String {
    let body = h
        .fake
        .requests()
        .last()
        .map(|r| {
            r.body["messages"]
                .as_array()
                .and_then(|m| m.last())
                .map(|m| m.to_string())
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let start = body.len().saturating_sub(3000);
    let start = (start..body.len())
        .find(|&i| body.is_char_boundary(i))
        .unwrap_or(body.len());
    body[start..].to_string()
}

/// Unpacks X, replays X+1's fix files through `write_file`, runs the one-shot path, and
/// checks that the `tests` gate passes and the `setup` gate names where the environment came from.
async fn replays_the_upstream_fix(p: RealProject, backend: Backend) {
    let script = real_projects::fix_script(&p);
    let fixes = real_projects::fix_contents(&p);
    let h = Harness::with_repo(
        backend,
        LlmProvider::Anthropic,
        script,
        |dir| real_projects::base_repo(&p, dir),
        // Real installs and test suites take minutes, not the calc repo's seconds.
        |cfg| cfg.file.sandbox.command_timeout_s = 900,
    )
    .await;
    // A fix round (the checks failed) gets "finish" again, so the run still reports its gates.
    h.fake.repeat_forever(real_projects::finish_turn(&p));
    let repo = h.repo_path();
    let mut task = h.task(p.request);
    let report = h.run(&mut task).await.unwrap();

    let setup = gate(&report, "setup");
    assert_eq!(setup.status, GateStatus::Pass, "setup: {}", setup.detail);
    assert!(
        p.setup_sources.iter().any(|f| setup.detail.contains(f)),
        "the setup gate should name its source (one of {:?}): {}",
        p.setup_sources,
        setup.detail
    );
    let tests = gate(&report, "tests");
    assert_eq!(
        tests.status,
        GateStatus::Pass,
        "{} {} with the fix from {}: {}\nwhat the last fix round showed the model: {}",
        p.package,
        p.buggy.version,
        p.fixed.version,
        tests.detail,
        last_request_tail(&h)
    );
    // The branch holds the upstream fix, byte for byte.
    for (path, content) in &fixes {
        let got = sh(&repo, &format!("git show {}:{path}", report.branch));
        assert_eq!(&got, content, "{path} on {}", report.branch);
    }
    assert!(h.fake.violations().is_empty(), "{:?}", h.fake.violations());
    assert!(h.leftovers().is_empty(), "{:?}", h.leftovers());
}

#[tokio::test]
async fn real_python_src_layout_pyproject_api_fix_passes_its_tests_docker() {
    replays_the_upstream_fix(PYPROJECT_API, Backend::Docker).await;
}

#[tokio::test]
async fn real_node22_platformatic_metrics_fix_passes_its_tests_docker() {
    replays_the_upstream_fix(PLATFORMATIC_METRICS, Backend::Docker).await;
}

#[tokio::test]
async fn real_rust_walkdir_fix_passes_its_tests_docker() {
    replays_the_upstream_fix(WALKDIR, Backend::Docker).await;
}

#[tokio::test]
async fn real_go_patricia_fix_passes_its_tests_docker() {
    replays_the_upstream_fix(GO_PATRICIA, Backend::Docker).await;
}

/// The pinned artifacts are what the registries serve, and each fix is the small one
/// described in tests/REAL_PROJECTS.md (needs only the network, no sandbox).
#[test]
fn real_project_artifacts_match_their_pins() {
    for p in real_projects::ALL {
        let fixes = real_projects::fix_contents(&p);
        assert_eq!(fixes.len(), p.fix_files.len(), "{}", p.package);
        let (_keep, root) = real_projects::unpack(&p, &p.buggy);
        assert!(
            root.join(p.manifest).is_file(),
            "{}: no {}",
            p.package,
            p.manifest
        );
        for (path, content) in fixes {
            let before = std::fs::read_to_string(root.join(&path)).unwrap_or_default();
            assert_ne!(
                before, content,
                "{} {path}: X and X+1 are the same",
                p.package
            );
        }
    }
}

// bwrap runs the host's toolchains (`/usr`, and `/usr/local/bin/uv` from test-env.sh): the
// Python project runs there too. The host's Node is 20 and the Node project needs >= 22.19, the
// host's Rust is under ~/.cargo and it has no Go, so those three run on the docker backend only.

#[tokio::test]
async fn real_python_src_layout_pyproject_api_fix_passes_its_tests_bwrap() {
    replays_the_upstream_fix(PYPROJECT_API, Backend::Bwrap).await;
}
