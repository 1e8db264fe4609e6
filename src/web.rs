//! The web server of `slipway serve` (axum, `--listen`, default 127.0.0.1:8080):
//! - `GET /healthz`: JSON with the Socket Mode connection, ack latency and the queue; 200
//!   while the socket is connected, 503 otherwise (for a Kubernetes readiness probe);
//! - `GET /metrics`: the same numbers in the Prometheus text format (version 0.0.4), then
//!   the operator metrics of [`crate::metrics`] (runs, node durations, tokens, queue age);
//! - `POST /webhooks/github` (only with `GITHUB_WEBHOOK_SECRET`): verified GitHub deliveries;
//!   check and status events wake the CI waits, so CI is read at once instead of at the next
//!   poll. Polling stays the source of truth: a lost delivery only costs latency.
//!
//! Owns the routes and their rendering. Reads only the handles in [`AppState`], built at
//! wiring time (`slack::serve::Service::web_state`); must not reach into the bot, the
//! queue's runner or the config. Stops gracefully on the future given to [`serve_until`].
#![warn(missing_docs)]

use std::future::Future;
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

use crate::forge::Forge;
use crate::metrics::{Metrics, QueueGauges};
use crate::queue::Queue;
use crate::slack::handlers::mention::MentionsSeen;
use crate::slack::socket::SocketStats;

/// What the routes read, and nothing else. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Queue status (running and queued task IDs).
    pub queue: Queue,
    /// Socket Mode connection and ack numbers.
    pub stats: Arc<SocketStats>,
    /// Mentions acknowledged with 👀.
    pub mentions: MentionsSeen,
    /// `POST /webhooks/github`.
    pub github: GithubWebhook,
    /// The operator metrics folded from the queue's events (`GET /metrics`).
    pub metrics: Metrics,
}

/// The GitHub webhook's handles: the shared secret (`GITHUB_WEBHOOK_SECRET`; without it
/// the route answers 404) and the forge whose CI waits a delivery wakes (`None` without
/// GitHub credentials). Its `Debug` never shows the secret.
#[derive(Clone, Default)]
pub struct GithubWebhook {
    secret: Option<Arc<str>>,
    ci_wake: Option<Arc<dyn Forge>>,
}

impl GithubWebhook {
    /// A webhook verified with `secret`, nudging `github`'s CI waits.
    pub fn new(secret: Option<String>, github: Option<Arc<dyn Forge>>) -> Self {
        Self {
            secret: secret.map(Arc::from),
            ci_wake: github,
        }
    }
}

impl std::fmt::Debug for GithubWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubWebhook")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("ci_wake", &self.ci_wake.is_some())
            .finish()
    }
}

/// The routes (a factory, so tests can drive them with `oneshot`, no socket).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .route("/webhooks/github", post(github_webhook))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then stops accepting connections and finishes the
/// requests in flight (axum's graceful shutdown). Errors are logged.
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    if let Err(e) = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "web server stopped");
    }
    tracing::debug!("web server stopped gracefully");
}

async fn github_webhook(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let hook = &s.github;
    let Some(secret) = hook.secret.as_deref() else {
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
        && let Some(gh) = &hook.ci_wake
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

async fn health(State(s): State<AppState>) -> impl IntoResponse {
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

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let (p50, p99) = s.stats.ack_latency_us().unwrap_or((0, 0));
    let (running, queued) = s
        .queue
        .status()
        .map(|q| (q.running.len(), q.queued.len()))
        .unwrap_or((0, 0));
    let oldest_age_s = match s.queue.oldest_waiting_ms() {
        Ok(Some(ms)) => crate::task::now_ms().saturating_sub(ms) as f64 / 1000.0,
        Ok(None) => 0.0,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: could not read the queue");
            0.0
        }
    };
    let mut body = format!(
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
        s.mentions.get(),
    );
    s.metrics.render(
        QueueGauges {
            depth: queued,
            oldest_age_s,
        },
        &mut body,
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
