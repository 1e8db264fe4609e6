//! Load on the real `slipway serve` binary (issue #14, "Prove it: Load"), against the loopback
//! fake Slack, GitHub and model (`tests/support/serve_child.rs`). `benches/slack.rs` measures
//! the front door in-process with no load; this one measures it while the service is busy.
//!
//! One scenario covers both load claims at once:
//! - `LOAD_MENTIONS` (default 200) mentions are sent at once, each as `LOAD_COPIES` (default 5)
//!   envelopes: the `app_mention`, the `message` Slack also sends for it, and redeliveries
//!   (`retry_attempt` 1, 2, …, new envelope ids) of both: 1,000 envelopes by default. The
//!   counts must show exactly one task, one run and one report per mention.
//! - `[queue] concurrency = 2`, while the fake Slack rate-limits `chat.postMessage`,
//!   `chat.update` and `reactions.add` to `LOAD_RATE` calls per second each (default 4; HTTP
//!   429 with `Retry-After: 1`, as Slack documents); every report must reach its thread.
//!
//! Reported: p50/p99 ack latency (fake sends the envelope → fake reads the ack) and
//! mention → 👀 latency (fake sends the `app_mention` → `reactions.add` arrives), under that
//! load; wall time to the last report.
//!
//! Run: `cargo bench --bench slack_load` (bubblewrap). Knobs: `LOAD_MENTIONS`, `LOAD_COPIES`,
//! `LOAD_RATE`, `LOAD_FORGE` (`local`, default, or `github`), `LOAD_CAP_S` (the longest wait
//! for the reports, default 3600), `LOAD_PACE_MS` (a pause between mentions; default 0, all
//! at once), `LOAD_WARMUP_MS` (a pause after connecting). Exits 1 when a count is off.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use support::fake_slack::FakeSlack;
use support::serve_child::{DEV, REQUESTER, World, WorldOpts, pct, thread_of};

fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn load() -> bool {
    let mentions: usize = var("LOAD_MENTIONS", 200);
    let copies: usize = var("LOAD_COPIES", 5).max(2);
    let rate: usize = var("LOAD_RATE", 4);
    let cap = Duration::from_secs(var("LOAD_CAP_S", 3600));
    let pace = Duration::from_millis(var("LOAD_PACE_MS", 0));
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_slipway"));
    let mut w = World::new(
        bin,
        WorldOpts {
            backend: "bwrap".into(),
            concurrency: 2,
            forge: var("LOAD_FORGE", "local".to_string()),
        },
    )
    .await;
    w.spawn().await;
    if let Some(ms) = std::env::var("LOAD_WARMUP_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    for m in ["chat.postMessage", "chat.update", "reactions.add"] {
        w.slack.set_rate_limit(m, rate);
    }
    println!(
        "load: {mentions} mentions × {copies} envelopes = {} envelopes (mentions {} ms apart), concurrency 2, Slack writes limited to {rate}/s per method, forge {}",
        mentions * copies,
        pace.as_millis(),
        w.opts.forge
    );
    let started = Instant::now();
    let mut roots = Vec::new();
    let mut sent_at = HashMap::new();
    let mut firsts = Vec::new();
    for i in 0..mentions {
        let p = w.slack.say(
            DEV,
            REQUESTER,
            &format!("<@U0BOT> load task {i}: add a note"),
            None,
        );
        let at = Instant::now();
        let a = w.slack.push(FakeSlack::mention_event(&p)).await;
        let b = w.slack.push(FakeSlack::message_event(&p)).await;
        sent_at.insert(p.ts.clone(), at);
        if pace > Duration::ZERO {
            tokio::time::sleep(pace).await;
        }
        firsts.push(a);
        firsts.push(b);
        roots.push(p);
    }
    // Slack's retries of the same events (new envelope ids, same event ids).
    let mut sent = mentions * 2;
    let mut attempt = 1;
    while sent < mentions * copies {
        for env in &firsts {
            if sent == mentions * copies {
                break;
            }
            w.slack.send(&FakeSlack::redelivery(env, attempt)).await;
            sent += 1;
        }
        attempt += 1;
    }
    let sending = started.elapsed();
    // Wait for a report in every thread (or the cap).
    let mut done = false;
    let mut next_progress = Duration::from_secs(15);
    while started.elapsed() < cap {
        if started.elapsed() >= next_progress {
            next_progress += Duration::from_secs(15);
            eprintln!(
                "  {:>4} s: {} acks, {} reactions.add, {} chat.postMessage, {} chat.update, {} answered 429, {} threads reported",
                started.elapsed().as_secs(),
                w.slack.acks().len(),
                w.slack.calls("reactions.add").len(),
                w.slack.calls("chat.postMessage").len(),
                w.slack.calls("chat.update").len(),
                w.slack.rate_limited(),
                roots
                    .iter()
                    .filter(|r| !w.slack.reports(DEV, &r.ts).is_empty())
                    .count()
            );
        }
        if roots
            .iter()
            .all(|r| !w.slack.reports(DEV, &r.ts).is_empty())
        {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let wall = started.elapsed();
    // Anything that should not happen (a second run, a second report) gets a moment.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let acks = w.slack.acks();
    let ack_ms: Vec<f64> = acks.iter().map(|(_, d)| d.as_secs_f64() * 1e3).collect();
    let reactions = w.slack.calls("reactions.add");
    let seen_ms: Vec<f64> = roots
        .iter()
        .filter_map(|r| {
            let c = reactions
                .iter()
                .find(|c| c.params["timestamp"] == r.ts.as_str())?;
            Some((c.at - sent_at[&r.ts]).as_secs_f64() * 1e3)
        })
        .collect();
    let reports: Vec<usize> = roots
        .iter()
        .map(|r| w.slack.reports(DEV, &r.ts).len())
        .collect();
    let limited = w.slack.rate_limited();
    let exit = w.stop(Duration::from_secs(60)).await;
    let tasks = w.tasks().await;
    let mut per_thread: HashMap<String, usize> = HashMap::new();
    let mut runs_per_task = Vec::new();
    for t in &tasks {
        if let Some(th) = thread_of(t) {
            *per_thread.entry(th).or_default() += 1;
        }
        runs_per_task.push(t["runs"].as_array().map_or(0, Vec::len));
    }
    let no_task = roots
        .iter()
        .filter(|r| !per_thread.contains_key(&r.ts))
        .count();
    let extra_tasks: usize = per_thread.values().map(|n| n - 1).sum();
    let extra_runs: usize = runs_per_task.iter().map(|n| n.saturating_sub(1)).sum();
    let no_run = runs_per_task.iter().filter(|n| **n == 0).count();
    let no_report = reports.iter().filter(|n| **n == 0).count();
    let extra_reports: usize = reports.iter().map(|n| n.saturating_sub(1)).sum();
    println!(
        "sent {} envelopes in {:.1} s; {} acked; {} Slack calls answered 429",
        mentions * copies,
        sending.as_secs_f64(),
        acks.len(),
        limited
    );
    println!(
        "ack latency (fake send → ack read) over {} envelopes: p50 {:.2} ms, p99 {:.2} ms",
        ack_ms.len(),
        pct(ack_ms.clone(), 0.5),
        pct(ack_ms, 0.99)
    );
    println!(
        "mention → 👀 over {} of {mentions} mentions: p50 {:.0} ms, p99 {:.0} ms",
        seen_ms.len(),
        pct(seen_ms.clone(), 0.5),
        pct(seen_ms, 0.99)
    );
    println!(
        "{} in {:.0} s: {} tasks, {} runs; threads without a task {no_task}, extra tasks {extra_tasks}, tasks without a run {no_run}, extra runs {extra_runs}, threads without a report {no_report}, extra reports {extra_reports}; SIGTERM exit {exit:?} (None: still running 60 s after SIGTERM, killed)",
        if done {
            "all reports posted"
        } else {
            "cap reached"
        },
        wall.as_secs_f64(),
        tasks.len(),
        runs_per_task.iter().sum::<usize>(),
    );
    done && no_task + extra_tasks + no_run + extra_runs + no_report + extra_reports == 0
}

fn main() -> std::process::ExitCode {
    slipway::tls::ensure_provider();
    let rt = tokio::runtime::Runtime::new().unwrap();
    if rt.block_on(load()) {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
