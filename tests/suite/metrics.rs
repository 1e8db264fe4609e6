//! `GET /metrics` of a real `slipway serve` (loopback fakes for Slack, GitHub and the model):
//! after two tasks, one queued behind the other, the operator metrics show the runs by
//! blueprint and decision, node duration buckets, the model's tokens and USD, sandbox starts
//! and the queue's depth and age.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::fake_slack::FakeSlack;
use crate::support::serve_child::{DEV, REQUESTER, World, WorldOpts};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_slipway"))
}

/// The address `slipway serve` bound (its "is up" log line names it).
fn listen_addr(w: &World) -> String {
    let log = std::fs::read_to_string(w.log_path()).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("slipway serve is up"))
        .unwrap_or_else(|| panic!("no 'is up' line in:\n{log}"));
    let re = regex::Regex::new(r"127\.0\.0\.1:[1-9][0-9]*").unwrap();
    re.find(line)
        .unwrap_or_else(|| panic!("no bound address in {line:?}"))
        .as_str()
        .to_string()
}

/// `GET /metrics` over plain HTTP/1.0: the body.
async fn scrape(addr: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.0 200"), "{resp}");
    resp.split_once("\r\n\r\n").unwrap().1.to_string()
}

/// The value of the sample line `series` (name and labels exactly as rendered).
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_runs_nodes_tokens_sandboxes_and_the_queue() {
    let mut w = World::new(
        bin(),
        WorldOpts {
            forge: "local".into(),
            concurrency: 1,
            ..WorldOpts::default()
        },
    )
    .await;
    w.spawn().await;
    let addr = listen_addr(&w);
    let before = scrape(&addr).await;
    assert!(
        before.contains("# TYPE slipway_runs_total counter\n"),
        "{before}"
    );
    assert_eq!(
        sample(&before, "slipway_queue_depth"),
        Some(0.0),
        "{before}"
    );

    // Two tasks with one run at a time: the second waits in the queue.
    let mut threads = Vec::new();
    for text in ["<@U0BOT> add a note", "<@U0BOT> add another note"] {
        let p = w.slack.say(DEV, REQUESTER, text, None);
        w.slack.push(FakeSlack::mention_event(&p)).await;
        threads.push(p.ts);
    }
    let (mut max_depth, mut max_age) = (0.0f64, 0.0f64);
    for i in 0.. {
        let body = scrape(&addr).await;
        max_depth = max_depth.max(sample(&body, "slipway_queue_depth").unwrap());
        max_age = max_age.max(sample(&body, "slipway_queue_oldest_age_seconds").unwrap());
        if threads.iter().all(|t| !w.slack.reports(DEV, t).is_empty()) {
            break;
        }
        assert!(i < 12_000, "no reports; see {}", w.log_path().display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(max_depth >= 1.0, "the second task was never seen queued");
    assert!(max_age > 0.0, "the queued task never aged");

    // The metrics observe the same broadcast as the Slack egress: wait for both runs.
    let runs = |body: &str| -> f64 {
        body.lines()
            .filter(|l| l.starts_with("slipway_runs_total{blueprint=\"code_change\",decision=\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let mut body = scrape(&addr).await;
    for _ in 0..500 {
        if runs(&body) >= 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        body = scrape(&addr).await;
    }
    w.stop(Duration::from_secs(30)).await;
    assert_eq!(runs(&body), 2.0, "{body}");
    assert!(
        !body.contains("decision=\"failed\""),
        "no run failed: {body}"
    );
    // Each run's nodes: two `implement` durations, every bucket line of the histogram.
    assert_eq!(
        sample(
            &body,
            "slipway_node_duration_seconds_bucket{node=\"implement\",le=\"+Inf\"}"
        ),
        Some(2.0),
        "{body}"
    );
    assert_eq!(
        sample(
            &body,
            "slipway_node_duration_seconds_count{node=\"workspace\"}"
        ),
        Some(2.0),
        "{body}"
    );
    assert!(
        body.contains("slipway_node_duration_seconds_bucket{node=\"checks\",le=\"0.1\"} "),
        "{body}"
    );
    // The fake model answers with 1000 input and 100 output tokens per request.
    let input = sample(
        &body,
        "slipway_model_tokens_total{repo=\"acme/calc\",direction=\"input\"}",
    )
    .unwrap_or(0.0);
    let output = sample(
        &body,
        "slipway_model_tokens_total{repo=\"acme/calc\",direction=\"output\"}",
    )
    .unwrap_or(0.0);
    assert!(input >= 2000.0 && input == output * 10.0, "{body}");
    assert!(
        body.contains("slipway_model_cost_usd_total{repo=\"acme/calc\"} "),
        "{body}"
    );
    let starts: f64 = ["cold", "warm"]
        .iter()
        .filter_map(|k| {
            sample(
                &body,
                &format!("slipway_sandbox_starts_total{{kind=\"{k}\"}}"),
            )
        })
        .sum();
    assert!(starts >= 2.0, "{body}");
    assert_eq!(sample(&body, "slipway_queue_depth"), Some(0.0), "{body}");
}
