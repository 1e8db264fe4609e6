//! Prefetch latency (criterion): one request ranked over registries of about 500 and 5,000
//! tools, built from the fixture catalogs (copied under new server names to reach 5,000),
//! index build included and excluded.
//!
//! Run: `cargo bench --bench prefetch`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};

use slipway::tools::builtins;
use slipway::tools::prefetch::{Index, Request};
use slipway::tools::registry::{Registry, ServerTools, ToolSource, expand_globs, read_catalog};

fn registry_of(target: usize) -> Registry {
    let mut problems = Vec::new();
    let glob = format!(
        "{}/../shared/fixtures/tools/*.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let base: Vec<ServerTools> = expand_globs(&[glob], &mut problems)
        .iter()
        .filter_map(|p| read_catalog(p, &mut problems))
        .collect();
    let mut servers = Vec::new();
    let mut count = 0;
    let mut copy = 0;
    while count < target {
        for s in &base {
            if count >= target {
                break;
            }
            let take = s.tools.len().min(target - count);
            servers.push(ServerTools {
                server: format!("{}-{copy}", s.server),
                source: ToolSource::Live,
                host_side: false,
                tools: s.tools[..take].to_vec(),
            });
            count += take;
        }
        copy += 1;
    }
    Registry::load(&[], servers)
}

const TASK: &str = "the nightly buildkite pipeline for payments-api is red again, grab the failed job logs and open a PR that fixes the flaky retry test";

fn prefetch(c: &mut Criterion) {
    let mut g = c.benchmark_group("prefetch");
    for n in [500, 5000] {
        let reg = registry_of(n);
        let index = Index::new(&reg);
        let req = Request {
            task: TASK,
            k: 15,
            always: builtins::NAMES,
            ..Default::default()
        };
        g.bench_function(format!("rank_{n}_tools"), |b| {
            b.iter(|| assert!(index.select(&req).picks.len() <= 15))
        });
        g.bench_function(format!("index_and_rank_{n}_tools"), |b| {
            b.iter(|| {
                let index = Index::new(&reg);
                assert!(index.select(&req).picks.len() <= 15)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, prefetch);
criterion_main!(benches);
