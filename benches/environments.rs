//! Environment benchmark on real projects (issue "Environments", "Measure and report"):
//! for each project of `tests/support/real_projects.rs` and each backend its toolchain allows,
//! - mention → sandbox ready, cold (no snapshot: setup runs) and warm (snapshot hit), as the
//!   sum of the `workspace`, `setup` and `sandbox` node durations of a run through the
//!   blueprint workspace → setup → sandbox (median of `BENCH_RUNS`, default 5, warm runs);
//! - the whole run's own overhead, warm: a `code_change` run replaying the upstream fix
//!   (scripted model on loopback), total minus the checks' time minus the agent nodes' time
//!   (the fake model answers in about a millisecond; the agent nodes also hold the file
//!   writes, so this overstates nothing).
//!
//! `cargo bench --bench environments` (all projects), or `BENCH_PROJECTS=pyproject-api,walkdir`.
//! Needs what the tests need (`scripts/test-env.sh`). Prints one Markdown table.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(unused_imports)]
#[path = "../tests/support/mod.rs"]
mod support;

use slipway::agent::llm::settings::LlmProvider;
use slipway::nodes::{Sandbox, Setup, Workspace};
use slipway::run::{Blueprint, Step};
use slipway::sandbox::Backend;
use slipway::task::BlueprintId;
use support::Harness;
use support::real_projects::{self, RealProject};
use tokio_util::sync::CancellationToken;

/// Workspace → setup → sandbox: "the sandbox is ready for the agent".
fn ready_blueprint() -> Blueprint {
    Blueprint {
        id: BlueprintId::ChecksOnly,
        steps: vec![
            Step::node(Workspace),
            Step::node(Setup),
            Step::node(Sandbox),
        ],
    }
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// ms of the named nodes in the stored run.
fn node_ms(h: &Harness, run_id: &str, names: &[&str]) -> u64 {
    let run = h.runner.store.get_run(run_id).unwrap().unwrap();
    run.nodes
        .iter()
        .filter(|n| names.contains(&n.node.as_str()))
        .map(|n| n.duration_ms)
        .sum()
}

struct Row {
    project: &'static str,
    backend: &'static str,
    cold_ms: u64,
    warm_ms: u64,
    /// Median with `[sandbox] warm = 1` (docker only).
    pool_ms: Option<u64>,
    setup_detail: String,
    overhead_ms: u64,
    total_ms: u64,
    checks_ms: u64,
}

/// One run to "sandbox ready": its ms and the setup gate's detail.
async fn ready(h: &Harness, p: &RealProject) -> (u64, String) {
    let mut task = h.task(p.request);
    let report = h
        .runner
        .run_blueprint(
            &mut task,
            &ready_blueprint(),
            CancellationToken::new(),
            None,
        )
        .await
        .unwrap();
    let setup = report
        .gates
        .iter()
        .find(|g| g.name == "setup")
        .map(|g| g.detail.clone())
        .unwrap_or_default();
    (
        node_ms(h, &report.run_id, &["workspace", "setup", "sandbox"]),
        setup,
    )
}

async fn measure(p: RealProject, backend: Backend, runs: usize) -> Row {
    let h = Harness::with_repo(
        backend,
        LlmProvider::Anthropic,
        real_projects::fix_script(&p),
        |dir| real_projects::base_repo(&p, dir),
        |cfg| cfg.file.sandbox.command_timeout_s = 900,
    )
    .await;
    h.fake.repeat_forever(real_projects::finish_turn(&p));
    let (cold_ms, _) = ready(&h, &p).await;
    let mut warm = Vec::new();
    let mut setup_detail = String::new();
    for _ in 0..runs {
        let (ms, detail) = ready(&h, &p).await;
        warm.push(ms);
        setup_detail = detail;
    }
    // With a warm pool: one run fills it, then each run takes the slot the last one refilled.
    let pool_ms = if backend == Backend::Docker {
        let hp = Harness::with_repo(
            backend,
            LlmProvider::Anthropic,
            Vec::new(),
            |dir| real_projects::base_repo(&p, dir),
            |cfg| {
                cfg.file.sandbox.command_timeout_s = 900;
                cfg.file.sandbox.warm = 1;
            },
        )
        .await;
        ready(&hp, &p).await;
        let mut v = Vec::new();
        for _ in 0..runs {
            hp.runner.pool.settled().await;
            v.push(ready(&hp, &p).await.0);
        }
        hp.runner.pool.shutdown().await;
        Some(median(v))
    } else {
        None
    };
    let mut task = h.task(p.request);
    let report = h
        .runner
        .run(
            &mut task,
            BlueprintId::CodeChange.as_str(),
            CancellationToken::new(),
            None,
        )
        .await
        .unwrap();
    let t = &report.timings_ms;
    Row {
        project: p.package,
        backend: backend.as_str(),
        cold_ms,
        warm_ms: median(warm),
        pool_ms,
        setup_detail,
        overhead_ms: t.total.saturating_sub(t.checks + t.agent),
        total_ms: t.total,
        checks_ms: t.checks,
    }
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let only = std::env::var("BENCH_PROJECTS").ok();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut rows = Vec::new();
    for p in real_projects::ALL {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|x| x == p.package))
        {
            continue;
        }
        // bwrap runs the host's toolchains: this host has Python (with uv) and Node.
        let backends: &[Backend] = match p.package {
            "pyproject-api" | "sonic-boom" => &[Backend::Docker, Backend::Bwrap],
            _ => &[Backend::Docker],
        };
        for &b in backends {
            eprintln!("measuring {} on {}…", p.package, b.as_str());
            rows.push(rt.block_on(measure(p, b, runs)));
        }
    }
    println!(
        "| project | backend | ready, cold (ms) | ready, warm (ms, median of {runs}) | cold/warm | ready, warm pool (ms) | overhead, warm (ms) | run total (ms) | checks (ms) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {:.0}× | {} | {} | {} | {} |",
            r.project,
            r.backend,
            r.cold_ms,
            r.warm_ms,
            r.cold_ms as f64 / r.warm_ms.max(1) as f64,
            r.pool_ms
                .map_or("n/a (bwrap)".to_string(), |m| m.to_string()),
            r.overhead_ms,
            r.total_ms,
            r.checks_ms
        );
    }
    for r in &rows {
        eprintln!(
            "{} {}: setup gate: {}",
            r.project, r.backend, r.setup_detail
        );
    }
}
