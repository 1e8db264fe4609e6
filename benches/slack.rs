//! Slack front-door figures, against the loopback fake Slack the tests use:
//! 1. ack latency over 1,000 `events_api` envelopes: frame read → ack written (the client's
//!    view) and frame sent → ack received (the fake's view), p50 and p99;
//! 2. mention → 👀 latency through the whole service (dedupe in sled, normalisation,
//!    `reactions.add`), over 50 mentions;
//! 3. resident memory of an idle `slipway serve` (the release binary), and how long it
//!    takes to stop on SIGTERM.
//!
//! Run: `cargo bench --bench slack` (needs bubblewrap for the service part).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "../tests/support/fake_slack.rs"]
#[allow(dead_code)]
mod fake_slack;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_slack::FakeSlack;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn pct(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1]
}

async fn ack_latency() {
    let slack = FakeSlack::start().await;
    let api = slipway::slack::api::WebApi::new(&slack.endpoint()).unwrap();
    let stats = Arc::new(slipway::slack::socket::SocketStats::default());
    let (tx, mut rx) = mpsc::channel(8192);
    let stop = CancellationToken::new();
    // Every envelope is written to the store's inbox and flushed before its ack.
    let inbox_dir = tempfile::tempdir().unwrap();
    let inbox = slipway::store::Store::open(inbox_dir.path()).unwrap();
    let listener = tokio::spawn({
        let (stats, stop) = (stats.clone(), stop.clone());
        async move { slipway::slack::socket::listen(&api, &inbox, tx, stop, stats).await }
    });
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let n = 1000;
    for i in 0..n {
        let p = slack.say("C0DEV", "U0ALICE", &format!("<@U0BOT> task {i}"), None);
        slack.push(FakeSlack::mention_event(&p)).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    while slack.acks().len() < n {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (p50, p99) = stats.ack_latency_us().unwrap();
    let wire: Vec<f64> = slack
        .acks()
        .iter()
        .map(|(_, d)| d.as_secs_f64() * 1e6)
        .collect();
    println!(
        "ack latency over {n} envelopes: read → ack written p50 {p50} µs, p99 {p99} µs; fake send → ack received p50 {:.0} µs, p99 {:.0} µs",
        pct(wire.clone(), 0.5),
        pct(wire, 0.99)
    );
    stop.cancel();
    let _ = listener.await;
}

async fn seen_latency() {
    let slack = FakeSlack::start().await;
    let data = tempfile::tempdir().unwrap();
    let mut cfg = slipway::config::Config::for_test(
        data.path(),
        Some(slipway::agent::llm::settings::LlmEndpoint {
            provider: slipway::agent::llm::settings::LlmProvider::Openai,
            base_url: "http://127.0.0.1:9/v1".into(),
            model: "unused".into(),
            api_key: None,
            api_key_var: "OPENAI_API_KEY",
        }),
    );
    cfg.slack = slack.endpoint();
    let cfg = Arc::new(cfg);
    let (forges, workspaces) =
        slipway::forge::Forges::build(&cfg, slipway::workspace::Workspaces::new(data.path()))
            .unwrap();
    let (registry, mcp) = slipway::tools::load_registry(&cfg, &[], true).await;
    let sandbox: Arc<dyn slipway::sandbox::Sandbox> =
        Arc::new(slipway::sandbox::bwrap::BwrapSandbox::detect().unwrap());
    let runner = slipway::runner::Runner {
        cfg: cfg.clone(),
        store: slipway::store::Store::open(&data.path().join("store")).unwrap(),
        workspaces,
        pool: slipway::env::pool::WarmPool::off(data.path(), sandbox.clone()),
        sandbox,
        llm: slipway::agent::llm::from_config(&cfg.llm, &cfg.file.llm).unwrap(),
        forges,
        registry: Arc::new(registry),
        mcp,
    };
    let service = slipway::slack::serve::Service::start(cfg, runner)
        .await
        .unwrap();
    let n = 50;
    let mut sent = Vec::new();
    for i in 0..n {
        let p = slack.say("C0DEV", "U0ALICE", "<@U0BOT> help", None);
        let at = Instant::now();
        slack.push(FakeSlack::mention_event(&p)).await;
        sent.push((p.ts, at));
        while slack.calls("reactions.add").len() <= i {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    let calls = slack.calls("reactions.add");
    let lat: Vec<f64> = sent
        .iter()
        .map(|(ts, at)| {
            let c = calls
                .iter()
                .find(|c| c.params["timestamp"] == ts.as_str())
                .unwrap();
            (c.at - *at).as_secs_f64() * 1000.0
        })
        .collect();
    println!(
        "mention → 👀 over {n} mentions (fake send → reactions.add received): p50 {:.2} ms, p99 {:.2} ms",
        pct(lat.clone(), 0.5),
        pct(lat, 0.99)
    );
    service.shutdown(Duration::from_secs(10)).await;
}

async fn idle_memory() {
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/slipway");
    if !bin.exists() {
        println!("idle memory: skipped (build the release binary first: cargo build --release)");
        return;
    }
    let slack = FakeSlack::start().await;
    let data = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(&bin)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SLACK_API_URL", &slack.api_url)
        .env("SLACK_APP_TOKEN", fake_slack::APP_TOKEN)
        .env("SLACK_BOT_TOKEN", fake_slack::BOT_TOKEN)
        .env("SLIPWAY_DATA_DIR", data.path())
        .env("SLIPWAY_SANDBOX", "bwrap")
        .env("SLIPWAY_LLM_PROVIDER", "openai")
        .env("SLIPWAY_LLM_BASE_URL", "http://127.0.0.1:9/v1")
        .env("SLIPWAY_LLM_MODEL", "unused")
        .current_dir(data.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    while !slack.socket_open() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
            .unwrap_or_default()
    };
    let stopping = Instant::now();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let code = child.wait().await.unwrap();
    println!(
        "idle `slipway serve`: VmRSS {} kB (peak VmHWM {} kB) after 5 s connected; SIGTERM → exit {:?} in {} ms",
        rss("VmRSS:"),
        rss("VmHWM:"),
        code.code(),
        stopping.elapsed().as_millis()
    );
}

fn main() {
    slipway::tls::ensure_provider();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        ack_latency().await;
        seen_latency().await;
        idle_memory().await;
    });
}
