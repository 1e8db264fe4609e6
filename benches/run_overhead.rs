//! Run overhead, measured (not asserted):
//! - `exec_true/*`: one `run` tool call of `true` through each sandbox backend, beside the
//!   engine CLI's own floor (`podman exec`, and a bare `bwrap … true`);
//! - `first_llm_request/*`: from `Runner::run` to the model's first request with a warm mirror
//!   (workspace + sandbox ready), per backend.
//!
//! Needs the same environment as the tests (`bash scripts/test-env.sh`).
//! Run: `cargo bench --bench run_overhead`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use slipway::agent::llm::settings::LlmProvider;
use slipway::sandbox::settings::SandboxConfig;
use slipway::sandbox::{Backend, NetworkAccess, SandboxPolicy, SandboxSpec};
use support::fake_llm::Turn;

fn exec_true(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ws = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    support::python_repo(ws.path());
    let mut group = c.benchmark_group("exec_true");
    group.sample_size(30);
    for backend in [Backend::Docker, Backend::Bwrap] {
        let session = rt.block_on(async {
            let spec = SandboxSpec {
                workspace: ws.path().to_path_buf(),
                git_dir: ws.path().join(".git"),
                home: home.path().to_path_buf(),
                policy: SandboxPolicy::for_run(&SandboxConfig::default(), NetworkAccess::None),
                run_id: format!("bench-{}", backend.as_str()),
                image: None,
                mounts: Vec::new(),
                pool: None,
            };
            support::sandbox(backend).await.start(&spec).await.unwrap()
        });
        let cancel = CancellationToken::new();
        group.bench_function(format!("slipway_{}", backend.as_str()), |b| {
            b.to_async(&rt).iter(|| async {
                let out = session
                    .exec("true", Duration::from_secs(30), &cancel)
                    .await
                    .unwrap();
                assert!(out.success());
            })
        });
        rt.block_on(session.close()).unwrap();
    }
    // Floors: the engine CLI per call, and a bare bubblewrap start.
    let id = String::from_utf8(
        Command::new("podman")
            .args([
                "--runtime",
                "/usr/sbin/runc",
                "run",
                "-d",
                "--rm",
                "--network",
                "none",
                "--ulimit",
                "nofile=4096:4096",
                "--ulimit",
                "nproc=4096:4096",
                support::IMAGE,
                "sleep",
                "infinity",
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    group.bench_function("podman_exec_cli", |b| {
        b.iter(|| {
            assert!(
                Command::new("podman")
                    .args(["exec", &id, "true"])
                    .status()
                    .unwrap()
                    .success()
            )
        })
    });
    let _ = Command::new("podman").args(["rm", "-f", &id]).output();
    group.bench_function("bwrap_cli", |b| {
        b.iter(|| {
            let ok = Command::new("bwrap")
                .args([
                    "--ro-bind",
                    "/",
                    "/",
                    "--dev",
                    "/dev",
                    "--proc",
                    "/proc",
                    "--unshare-all",
                    "--die-with-parent",
                    "true",
                ])
                .status()
                .unwrap()
                .success();
            assert!(ok)
        })
    });
    group.finish();
}

fn first_llm_request(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut group = c.benchmark_group("first_llm_request");
    group.sample_size(10);
    for backend in [Backend::Docker, Backend::Bwrap] {
        let h = rt.block_on(support::Harness::new(backend, LlmProvider::Openai, vec![]));
        h.fake
            .repeat_forever(Turn::call("finish", json!({"summary": "nothing"})));
        // Warm the mirror cache once.
        rt.block_on(async {
            let mut t = h.task("warm up");
            h.run(&mut t).await.unwrap();
        });
        group.bench_function(backend.as_str(), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let h = &h;
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let before = h.fake.requests().len();
                        let mut t = h.task("measure");
                        let start = Instant::now();
                        h.run(&mut t).await.unwrap();
                        let first = h.fake.requests()[before].at;
                        total += first.duration_since(start);
                    }
                    total
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, exec_true, first_llm_request);
criterion_main!(benches);
