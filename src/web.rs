//! The web server of `slipway serve` (axum, `--listen`, default 127.0.0.1:8080):
//! - `GET /healthz`: JSON with the Socket Mode connection, ack latency and the queue; 200
//!   while the socket is connected, 503 otherwise (for a Kubernetes readiness probe);
//! - `GET /metrics`: the same numbers in the Prometheus text format (version 0.0.4);
//! - `POST /webhooks/github` (only with `GITHUB_WEBHOOK_SECRET`): verified GitHub deliveries;
//!   check and status events wake the CI waits, so CI is read at once instead of at the next
//!   poll. Polling stays the source of truth: a lost delivery only costs latency.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json};
use axum::routing::{get, post};
use serde_json::json;

use crate::queue::Queue;
use crate::slack::bot::Bot;
use crate::slack::socket::SocketStats;

/// What the routes read.
#[derive(Clone)]
pub struct WebState {
    pub queue: Queue,
    /// The forges, for webhook nudges.
    pub forges: crate::forge::Forges,
    /// `GITHUB_WEBHOOK_SECRET`; `None` turns the webhook route off.
    pub webhook_secret: Option<String>,
    pub stats: Arc<SocketStats>,
    pub bot: Bot,
}

/// The routes.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .route("/webhooks/github", post(github_webhook))
        .with_state(state)
}

/// Serves until the task is aborted. Errors are logged.
pub async fn serve(listener: tokio::net::TcpListener, state: WebState) {
    if let Err(e) = axum::serve(listener, router(state)).await {
        tracing::error!(error = %e, "web server stopped");
    }
}

async fn github_webhook(
    State(s): State<WebState>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let Some(secret) = s.webhook_secret.as_deref() else {
        return (
            StatusCode::NOT_FOUND,
            "webhooks are off: set GITHUB_WEBHOOK_SECRET",
        );
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(e) =
        crate::forge::github::webhook::verify(secret, &body, header("x-hub-signature-256"))
    {
        tracing::warn!(error = %e, delivery = header("x-github-delivery"), "GitHub webhook refused");
        return (StatusCode::UNAUTHORIZED, "bad signature");
    }
    let event = header("x-github-event").unwrap_or("");
    if crate::forge::github::webhook::is_ci_event(event)
        && let Some(gh) = &s.forges.github
    {
        gh.nudge();
    }
    tracing::debug!(
        event,
        delivery = header("x-github-delivery"),
        "GitHub webhook"
    );
    (StatusCode::ACCEPTED, "ok")
}

async fn health(State(s): State<WebState>) -> impl IntoResponse {
    let connected = s.stats.connected.load(Ordering::Relaxed);
    let (p50, p99) = s.stats.ack_latency_us().unwrap_or((0, 0));
    let queue = s.queue.status().ok();
    let body = json!({
        "ok": connected,
        "socket": {
            "connected": connected,
            "connects": s.stats.connects.load(Ordering::Relaxed),
            "acks": s.stats.acks.load(Ordering::Relaxed),
            "ack_latency_us": {"p50": p50, "p99": p99},
        },
        "queue": queue,
    });
    let code = if connected {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

async fn metrics(State(s): State<WebState>) -> impl IntoResponse {
    let (p50, p99) = s.stats.ack_latency_us().unwrap_or((0, 0));
    let (running, queued) = s
        .queue
        .status()
        .map(|q| (q.running.len(), q.queued.len()))
        .unwrap_or((0, 0));
    let body = format!(
        "# TYPE slipway_socket_connected gauge\nslipway_socket_connected {}\n\
         # TYPE slipway_socket_connects_total counter\nslipway_socket_connects_total {}\n\
         # TYPE slipway_envelopes_acked_total counter\nslipway_envelopes_acked_total {}\n\
         # TYPE slipway_ack_latency_microseconds gauge\nslipway_ack_latency_microseconds{{quantile=\"0.5\"}} {p50}\nslipway_ack_latency_microseconds{{quantile=\"0.99\"}} {p99}\n\
         # TYPE slipway_mentions_seen_total counter\nslipway_mentions_seen_total {}\n\
         # TYPE slipway_runs_running gauge\nslipway_runs_running {running}\n\
         # TYPE slipway_runs_queued gauge\nslipway_runs_queued {queued}\n",
        u8::from(s.stats.connected.load(Ordering::Relaxed)),
        s.stats.connects.load(Ordering::Relaxed),
        s.stats.acks.load(Ordering::Relaxed),
        s.bot.mentions_seen(),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
