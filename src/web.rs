//! The web server of `slipway serve` (axum, `--listen`, default 127.0.0.1:8080):
//! - `GET /healthz`: JSON with the Socket Mode connection, ack latency and the queue; 200
//!   while the socket is connected, 503 otherwise (for a Kubernetes readiness probe);
//! - `GET /metrics`: the same numbers in the Prometheus text format (version 0.0.4).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use serde_json::json;

use crate::queue::Queue;
use crate::slack::bot::Bot;
use crate::slack::socket::SocketStats;

/// What the routes read.
#[derive(Clone)]
pub struct WebState {
    pub queue: Queue,
    pub stats: Arc<SocketStats>,
    pub bot: Bot,
}

/// The routes.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Serves until the task is aborted. Errors are logged.
pub async fn serve(listener: tokio::net::TcpListener, state: WebState) {
    if let Err(e) = axum::serve(listener, router(state)).await {
        tracing::error!(error = %e, "web server stopped");
    }
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
