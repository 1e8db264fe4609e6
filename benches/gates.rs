//! Gate costs, measured (not asserted):
//! - `secrets/scan_diff`: scanner throughput over a large synthetic diff (criterion reports
//!   bytes/s);
//! - `gates/host_side`: what the gates add to a run on a medium repo (3,000 files, a 60-file
//!   change): full diff, file list, whitespace check, secrets scan, classification, gates and
//!   the decision. The sandboxed gates (dependencies, coverage) are one command each and show
//!   in a run's `sandbox_gates` node.
//!
//! Run: `cargo bench --bench gates`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use slipway::agent::AgentEnd;
use slipway::gates::policy::PolicyConfig;
use slipway::gates::{self, Evidence, classify, policy, secrets::Scanner};
use slipway::task::RepoRef;
use slipway::workspace::Workspaces;

/// A unified diff of about `mb` MB: realistic code lines, one token-shaped line per 5,000.
fn synthetic_diff(mb: usize) -> String {
    let mut d = String::new();
    let mut n = 0usize;
    while d.len() < mb * 1_000_000 {
        d.push_str(&format!("diff --git a/src/m{n}.py b/src/m{n}.py\n--- a/src/m{n}.py\n+++ b/src/m{n}.py\n@@ -1,40 +1,40 @@\n"));
        for i in 0..40 {
            n += 1;
            if n.is_multiple_of(5000) {
                d.push_str("+GITHUB = 'ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789'\n");
            } else if i % 3 == 0 {
                d.push_str(&format!(
                    "-    total = compute_total(order, discount={i}, currency='EUR')\n"
                ));
            } else {
                d.push_str(&format!("+    result_{i} = self.client.fetch(url=f'{{base}}/items/{n}', timeout=30, retries=3)\n"));
            }
        }
    }
    d
}

fn secrets(c: &mut Criterion) {
    let scanner = Scanner::new();
    let diff = synthetic_diff(20);
    let mut g = c.benchmark_group("secrets");
    g.throughput(Throughput::Bytes(diff.len() as u64));
    g.sample_size(10);
    g.bench_function("scan_diff_20MB", |b| {
        b.iter(|| assert!(!scanner.scan_diff(&diff).is_empty()))
    });
    g.finish();
}

fn sh(dir: &std::path::Path, cmd: &str) {
    let ok = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(dir)
        .status()
        .unwrap()
        .success();
    assert!(ok, "{cmd}");
}

fn host_side_gates(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let src = tempfile::tempdir().unwrap();
    sh(
        src.path(),
        "git init -q -b main . && mkdir -p pkg && for i in $(seq 1 3000); do printf 'def f%s(x):\\n    return x + %s\\n' $i $i > pkg/m$i.py; done && git add -A && git -c user.name=b -c user.email=b@x commit -qm init",
    );
    let data = tempfile::tempdir().unwrap();
    let ws = Workspaces::new(data.path());
    let repo = RepoRef {
        name: "bench/medium".into(),
        source: src.path().display().to_string(),
        base: "main".into(),
        forge: Default::default(),
    };
    let wt = rt
        .block_on(ws.prepare(&repo, "slipway/bench", "bench", 1))
        .unwrap();
    sh(
        &wt.path,
        "for i in $(seq 1 60); do printf 'def g(x):\\n    return x * 2\\n' >> pkg/m$i.py; done",
    );
    rt.block_on(ws.commit(&wt, "bench", "bench", &[])).unwrap();
    let scanner = Scanner::new();
    let policy = policy::effective(&PolicyConfig::default(), None);
    let end = AgentEnd::Finished {
        summary: "s".into(),
    };
    c.bench_function("gates/host_side_3000_files_60_changed", |b| {
        b.to_async(&rt).iter(|| async {
            let diff = ws.diff(&wt).await.unwrap();
            let changes = ws.changes(&wt, &diff).await.unwrap();
            let ws_only = ws.whitespace_only(&wt, &changes).await.unwrap();
            let findings = scanner.scan_diff(&diff);
            let gates = gates::evaluate(&Evidence {
                checks: &[],
                commands: &[],
                changes: &changes,
                agent_end: Some(&end),
                deterministic: &[],
                fix_rounds: 0,
                policy: &policy,
                secrets: &findings,
                added_lines: changes.iter().map(|c| c.added).sum(),
                committed: true,
                dependencies: None,
                coverage: None,
                ci: None,
            });
            let class = classify::classify(&changes, ws_only, &diff);
            let (d, _) = gates::decide(class.class, &gates, &policy);
            assert_eq!(changes.len(), 60);
            d
        })
    });
    ws.remove(&wt);
}

criterion_group!(benches, secrets, host_side_gates);
criterion_main!(benches);
