//! Socket Mode: one websocket to Slack, every envelope written to the store's inbox (and
//! flushed) the moment it arrives, then acked, then handed on. The connection URL comes from `apps.connections.open` through slack-morphism's
//! Web API client ([`WebApi::open_socket_url`]); the websocket itself runs on
//! tokio-tungstenite.
//!
//! Why not slack-morphism's Socket Mode listener: it reconnects on every `disconnect` frame,
//! `link_disabled` included (a loop the issue forbids), it hides `retry_attempt`, and it acks
//! only after the callback returns. The protocol facts this follows
//! (`shared/fixtures/slack/socket_mode.md`):
//! - ack `{"envelope_id": …}` within 3 s, or Slack redelivers with `retry_attempt` 1, 2, 3;
//! - each URL is single-use: every reconnect calls `apps.connections.open` again;
//! - `disconnect` `warning` (closes in about 10 s) and `refresh_requested`: reconnect now;
//!   `link_disabled`: Socket Mode was turned off, so stop and say so, never loop;
//! - a half-open socket shows only as silence: ping every [`PING_EVERY`] and reconnect after
//!   [`SILENCE_LIMIT`] without any frame or pong.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::api::{SlackError, WebApi};
use crate::store::{InboxEntry, Store};
use crate::task::now_ms;

/// Ping interval (slack-morphism and Slack's SDKs use 15 s too).
pub const PING_EVERY: Duration = Duration::from_secs(15);
/// Silence after which the socket counts as dead.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(45);
/// Longest wait between failed connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Ack latencies kept for percentiles (the newest ones).
const LATENCY_WINDOW: usize = 10_000;

/// One `events_api` envelope, in the inbox and acked already.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Its inbox key (`Store::inbox_put`): the handler removes it when done.
    pub inbox_key: u64,
    pub envelope_id: String,
    /// 0 for the first delivery; 1, 2, 3 for Slack's redeliveries.
    pub retry_attempt: u64,
    /// `timeout` and the like, empty on the first delivery.
    pub retry_reason: String,
    /// The event callback (`{"type": "event_callback", "event_id", "event": {…}}`).
    pub payload: Value,
    /// When the frame was read off the socket.
    pub received: Instant,
}

/// Why the listener stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketEnd {
    /// The shutdown token fired.
    Shutdown,
    /// Slack sent `disconnect` `link_disabled`: Socket Mode is off for the app.
    LinkDisabled,
}

/// Counters for health and measurement. Shared with the web server.
#[derive(Debug, Default)]
pub struct SocketStats {
    pub connected: AtomicBool,
    /// Successful connections (the first and every reconnect).
    pub connects: AtomicU64,
    /// Envelopes acked.
    pub acks: AtomicU64,
    /// Frame read → ack written, µs, the newest [`LATENCY_WINDOW`].
    latencies_us: Mutex<VecDeque<u64>>,
}

impl SocketStats {
    fn record(&self, us: u64) {
        self.acks.fetch_add(1, Ordering::Relaxed);
        let mut l = self.latencies_us.lock().unwrap_or_else(|p| p.into_inner());
        if l.len() == LATENCY_WINDOW {
            l.pop_front();
        }
        l.push_back(us);
    }

    /// `(p50, p99)` of the ack latency, µs; `None` before the first ack.
    pub fn ack_latency_us(&self) -> Option<(u64, u64)> {
        let mut l: Vec<u64> = self
            .latencies_us
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        if l.is_empty() {
            return None;
        }
        l.sort_unstable();
        let at = |q: f64| l[((l.len() as f64 * q).ceil() as usize).clamp(1, l.len()) - 1];
        Some((at(0.50), at(0.99)))
    }
}

/// A frame from Slack, as far as slipway cares.
#[derive(Debug, PartialEq)]
enum Frame {
    Hello,
    Disconnect(String),
    /// An envelope: its id (to ack), type, retry and payload.
    Envelope {
        id: String,
        kind: String,
        retry_attempt: u64,
        retry_reason: String,
        payload: Value,
    },
    Other(String),
}

fn parse(text: &str) -> Frame {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return Frame::Other("not JSON".into());
    };
    let kind = v
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if let Some(id) = v.get("envelope_id").and_then(Value::as_str) {
        return Frame::Envelope {
            id: id.to_string(),
            kind,
            retry_attempt: v.get("retry_attempt").and_then(Value::as_u64).unwrap_or(0),
            retry_reason: v
                .get("retry_reason")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            payload: v.get("payload").cloned().unwrap_or(Value::Null),
        };
    }
    match kind.as_str() {
        "hello" => Frame::Hello,
        "disconnect" => Frame::Disconnect(
            v.get("reason")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        ),
        _ => Frame::Other(kind),
    }
}

/// Errors that end the listener: the app-level token is missing, wrong or revoked.
fn fatal(e: &SlackError) -> bool {
    matches!(e, SlackError::MissingToken(_))
        || matches!(
            e.code(),
            Some(
                "invalid_auth"
                    | "not_authed"
                    | "not_allowed_token_type"
                    | "token_revoked"
                    | "account_inactive"
            )
        )
}

/// How one connection ended.
enum Ended {
    Reconnect(&'static str),
    Stop(SocketEnd),
}

/// Runs Socket Mode until `shutdown` fires or Slack disables the link. Every `events_api`
/// envelope is written to `inbox` (flushed), then acked, then sent to `out`; one that cannot
/// be stored is not acked, so Slack redelivers it. Other envelope types (`interactive`,
/// `slash_commands`) are acked and dropped with a log line. Reconnects with backoff (1 s
/// doubling to 30 s) on network failures. Errors: a missing, wrong or revoked app token.
pub async fn listen(
    api: &WebApi,
    inbox: &Store,
    out: mpsc::Sender<Envelope>,
    shutdown: CancellationToken,
    stats: Arc<SocketStats>,
) -> Result<SocketEnd, SlackError> {
    let mut backoff = Duration::from_secs(1);
    loop {
        if shutdown.is_cancelled() {
            return Ok(SocketEnd::Shutdown);
        }
        let url = match api.open_socket_url().await {
            Ok(u) => u,
            Err(e) if fatal(&e) => {
                tracing::error!(error = %e, advice = e.advice(), "Socket Mode cannot connect");
                return Err(e);
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_s = backoff.as_secs(), "apps.connections.open failed");
                if back_off(&shutdown, &mut backoff).await {
                    return Ok(SocketEnd::Shutdown);
                }
                continue;
            }
        };
        let ws = match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((ws, _)) => ws,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_s = backoff.as_secs(), "Socket Mode websocket did not open");
                if back_off(&shutdown, &mut backoff).await {
                    return Ok(SocketEnd::Shutdown);
                }
                continue;
            }
        };
        stats.connects.fetch_add(1, Ordering::Relaxed);
        let ended = serve_connection(ws, inbox, &out, &shutdown, &stats, &mut backoff).await;
        let said_hello = stats.connected.swap(false, Ordering::Relaxed);
        match ended {
            Ended::Stop(end) => return Ok(end),
            Ended::Reconnect(why) => tracing::info!(reason = why, "Socket Mode reconnecting"),
        }
        // A link that dies before `hello` is not a refresh: back off, don't hammer Slack.
        if !said_hello && back_off(&shutdown, &mut backoff).await {
            return Ok(SocketEnd::Shutdown);
        }
    }
}

/// Sleeps `backoff` unless shutdown comes first (true on shutdown), then doubles it up to
/// [`MAX_BACKOFF`].
async fn back_off(shutdown: &CancellationToken, backoff: &mut Duration) -> bool {
    let stop = tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(*backoff) => false,
    };
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    stop
}

async fn serve_connection<S>(
    mut ws: tokio_tungstenite::WebSocketStream<S>,
    inbox: &Store,
    out: &mpsc::Sender<Envelope>,
    shutdown: &CancellationToken,
    stats: &SocketStats,
    backoff: &mut Duration,
) -> Ended
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut heard = Instant::now();
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => {
                let _ = ws.close(None).await;
                return Ended::Stop(SocketEnd::Shutdown);
            }
            _ = ping.tick() => {
                if heard.elapsed() > SILENCE_LIMIT {
                    return Ended::Reconnect("no frame or pong within the silence limit");
                }
                if ws.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return Ended::Reconnect("ping failed");
                }
                continue;
            }
            m = ws.next() => m,
        };
        let received = Instant::now();
        heard = received;
        let text = match msg {
            None => return Ended::Reconnect("socket closed"),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "Socket Mode read failed");
                return Ended::Reconnect("read error");
            }
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(_))) => return Ended::Reconnect("closed by Slack"),
            Some(Ok(_)) => continue,
        };
        match parse(text.as_str()) {
            Frame::Hello => {
                stats.connected.store(true, Ordering::Relaxed);
                *backoff = Duration::from_secs(1);
                tracing::info!("Socket Mode connected");
            }
            Frame::Disconnect(reason) => match reason.as_str() {
                "link_disabled" => {
                    tracing::error!(
                        "Slack disabled Socket Mode for this app (disconnect: link_disabled); not reconnecting. Turn Socket Mode on in the app settings and restart slipway"
                    );
                    let _ = ws.close(None).await;
                    return Ended::Stop(SocketEnd::LinkDisabled);
                }
                _ => {
                    let _ = ws.close(None).await;
                    return Ended::Reconnect(if reason == "warning" {
                        "disconnect warning"
                    } else {
                        "disconnect refresh_requested"
                    });
                }
            },
            Frame::Envelope {
                id,
                kind,
                retry_attempt,
                retry_reason,
                payload,
            } => {
                // Stored, then acked: the work behind it may take minutes, Slack waits 3 s
                // and never redelivers an acked envelope.
                let inbox_key = if kind == "events_api" {
                    let entry = InboxEntry {
                        envelope_id: id.clone(),
                        retry_attempt,
                        retry_reason: retry_reason.clone(),
                        payload: payload.clone(),
                        received_ms: now_ms(),
                    };
                    match inbox.inbox_put(&entry).await {
                        Ok(k) => Some(k),
                        Err(e) => {
                            tracing::error!(error = %e, envelope = id, "could not store the envelope; not acking it, so Slack redelivers it");
                            continue;
                        }
                    }
                } else {
                    None
                };
                let ack = json!({ "envelope_id": id }).to_string();
                let acked = ws.send(Message::Text(ack.into())).await.is_ok();
                if acked {
                    stats.record(received.elapsed().as_micros() as u64);
                }
                let Some(inbox_key) = inbox_key else {
                    if !acked {
                        return Ended::Reconnect("ack failed");
                    }
                    tracing::info!(kind, "Socket Mode envelope of a type slipway does not use");
                    continue;
                };
                let env = Envelope {
                    inbox_key,
                    envelope_id: id,
                    retry_attempt,
                    retry_reason,
                    payload,
                    received,
                };
                // Stored already: handled now even if the ack failed (a redelivery is a
                // duplicate the bot's dedupe drops).
                if out.send(env).await.is_err() {
                    return Ended::Stop(SocketEnd::Shutdown);
                }
                if !acked {
                    return Ended::Reconnect("ack failed");
                }
            }
            Frame::Other(kind) => tracing::debug!(kind, "Socket Mode frame ignored"),
        }
    }
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slacks_documented_frames_parse() {
        assert_eq!(
            parse(
                r#"{"type":"hello","num_connections":1,"debug_info":{"host":"applink-xxxxx","build_number":10,"approximate_connection_time":18060},"connection_info":{"app_id":"A0APP"}}"#
            ),
            Frame::Hello
        );
        for reason in ["warning", "refresh_requested", "link_disabled"] {
            assert_eq!(
                parse(&format!(
                    r#"{{"type":"disconnect","reason":"{reason}","debug_info":{{"host":"applink-xxxxx"}}}}"#
                )),
                Frame::Disconnect(reason.into())
            );
        }
        let env = parse(
            r#"{"envelope_id":"dbdd0ef3-1543-4f94-bfb4-133d0e6c1545","type":"events_api","accepts_response_payload":false,"retry_attempt":2,"retry_reason":"timeout","payload":{"type":"event_callback","event_id":"Ev01"}}"#,
        );
        assert!(
            matches!(&env, Frame::Envelope { id, kind, retry_attempt: 2, retry_reason, payload } if id == "dbdd0ef3-1543-4f94-bfb4-133d0e6c1545" && kind == "events_api" && retry_reason == "timeout" && payload["event_id"] == "Ev01"),
            "{env:?}"
        );
        assert_eq!(
            parse(r#"{"type":"brand_new"}"#),
            Frame::Other("brand_new".into())
        );
        assert_eq!(parse("garbage"), Frame::Other("not JSON".into()));
    }

    #[test]
    fn percentiles_come_from_the_recorded_acks() {
        let s = SocketStats::default();
        assert_eq!(s.ack_latency_us(), None);
        for us in 1..=100 {
            s.record(us);
        }
        assert_eq!(s.ack_latency_us(), Some((50, 99)));
        assert_eq!(s.acks.load(Ordering::Relaxed), 100);
    }
}
