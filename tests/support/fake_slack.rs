//! A fake Slack on loopback that speaks the real wire formats: the Web API (JSON over HTTP,
//! `{"ok": …}` bodies, HTTP 429 with `Retry-After`) and Socket Mode (a websocket sending
//! `hello`, `events_api` envelopes and `disconnect` frames, and reading acks). Payload shapes
//! follow `shared/fixtures/slack`. It keeps the threads it was told about and every message
//! the bot posted, so `conversations.replies` answers like Slack does.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

pub const BOT_USER: &str = "U0BOT";
pub const BOT_ID: &str = "B0BOT";
pub const APP_TOKEN: &str = "xapp-1-A0APP-1-fakeapptokenvalue";
pub const BOT_TOKEN: &str = "xoxb-1-fakebottokenvalue";

/// One Web API call the bot made.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    /// Body (JSON or form) and query parameters, merged.
    pub params: Value,
    pub auth: String,
    pub at: Instant,
}

/// A canned failure for the next call of a method.
#[derive(Clone, Debug)]
pub struct Failure {
    pub status: u16,
    pub body: Value,
    pub retry_after_s: Option<u64>,
}

/// A message in a thread, as `conversations.replies` returns it.
#[derive(Clone, Debug)]
pub struct Posted {
    pub channel: String,
    pub ts: String,
    pub thread_ts: String,
    pub user: String,
    pub text: String,
    pub blocks: Option<Value>,
    pub bot: bool,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    failures: HashMap<String, VecDeque<Failure>>,
    messages: Vec<Posted>,
    /// Envelope id → when it was sent, and when it was acked.
    sent: HashMap<String, Instant>,
    acks: Vec<(String, Duration)>,
    /// The live socket's outbox.
    socket: Option<mpsc::UnboundedSender<String>>,
    connections: usize,
    next_ts: u64,
    next_event: u64,
    usergroups: HashMap<String, Vec<String>>,
    /// Whether the bot's own posts come back as `message` events (as in a real channel).
    echo: bool,
    /// Method → (calls allowed per second, when the allowed calls in the last second came).
    limits: HashMap<String, (usize, VecDeque<Instant>)>,
    /// Calls answered 429 by a rate limit.
    limited: usize,
}

/// Handle to a running fake. Cheap to clone.
#[derive(Clone)]
pub struct FakeSlack {
    inner: Arc<Mutex<Inner>>,
    pub api_url: String,
    ws_addr: SocketAddr,
}

impl FakeSlack {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            // Slack's `ts` is the Unix time of the post (seconds.microseconds): start at now,
            // one second apart, so `ts` order is post order and comparable with the clock.
            next_ts: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(1_700_000_100),
            ..Default::default()
        }));
        let ws = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ws_addr = ws.local_addr().unwrap();
        tokio::spawn(accept_sockets(ws, inner.clone()));
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = http.local_addr().unwrap();
        let state = (inner.clone(), ws_addr);
        let app = Router::new()
            .route("/api/{method}", any(web_api))
            .with_state(state);
        tokio::spawn(async move { axum::serve(http, app).await.unwrap() });
        Self {
            inner,
            api_url: format!("http://{addr}/api/"),
            ws_addr,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    /// The environment `serve` needs to reach this fake.
    pub fn endpoint(&self) -> slipway::config::SlackEndpoint {
        slipway::config::SlackEndpoint {
            api_url: self.api_url.clone(),
            app_token: Some(APP_TOKEN.into()),
            bot_token: Some(BOT_TOKEN.into()),
        }
    }

    pub fn set_echo(&self, on: bool) {
        self.lock().echo = on;
    }

    pub fn set_usergroup(&self, group: &str, users: &[&str]) {
        self.lock()
            .usergroups
            .insert(group.into(), users.iter().map(|u| u.to_string()).collect());
    }

    /// The next call of `method` fails this way (queued; one per call).
    pub fn fail_next(&self, method: &str, f: Failure) {
        self.lock()
            .failures
            .entry(method.into())
            .or_default()
            .push_back(f);
    }

    /// From now on `method` allows `per_second` calls in any sliding second; calls beyond
    /// that get HTTP 429 with `Retry-After: 1` and `{"ok": false, "error": "ratelimited"}`,
    /// as Slack documents (`shared/fixtures/slack/socket_mode.md`, "Rate limits"; posting is
    /// about 1 message per second per channel).
    pub fn set_rate_limit(&self, method: &str, per_second: usize) {
        self.lock()
            .limits
            .insert(method.into(), (per_second, VecDeque::new()));
    }

    /// Calls answered 429 by [`FakeSlack::set_rate_limit`] so far.
    pub fn rate_limited(&self) -> usize {
        self.lock().limited
    }

    /// Every message in a thread (people's and the bot's), in the order they were posted.
    pub fn thread(&self, channel: &str, thread_ts: &str) -> Vec<Posted> {
        self.lock()
            .messages
            .iter()
            .filter(|m| m.channel == channel && m.thread_ts == thread_ts)
            .cloned()
            .collect()
    }

    /// A fresh ts, ascending.
    pub fn ts(&self) -> String {
        let mut i = self.lock();
        i.next_ts += 1;
        format!("{}.000100", i.next_ts)
    }

    /// Records a person's message in a thread (so `conversations.replies` returns it) and
    /// returns its ts. `thread_ts` None starts a thread.
    pub fn say(&self, channel: &str, user: &str, text: &str, thread_ts: Option<&str>) -> Posted {
        let ts = self.ts();
        let p = Posted {
            channel: channel.into(),
            ts: ts.clone(),
            thread_ts: thread_ts.unwrap_or(&ts).into(),
            user: user.into(),
            text: text.into(),
            blocks: None,
            bot: false,
        };
        self.lock().messages.push(p.clone());
        p
    }

    /// The `message` event of `p` (Events API shape).
    pub fn message_event(p: &Posted) -> Value {
        let mut e = json!({"type": "message", "user": p.user, "text": p.text, "ts": p.ts, "channel": p.channel, "channel_type": "channel", "event_ts": p.ts});
        if p.thread_ts != p.ts {
            e["thread_ts"] = json!(p.thread_ts);
            e["parent_user_id"] = json!("U0ALICE");
        }
        e
    }

    /// The `app_mention` event of `p`.
    pub fn mention_event(p: &Posted) -> Value {
        let mut e = Self::message_event(p);
        e["type"] = json!("app_mention");
        e.as_object_mut().unwrap().remove("channel_type");
        e
    }

    /// A `reaction_added` event; each has its own `event_ts`, as Slack's do.
    pub fn reaction_event(user: &str, reaction: &str, channel: &str, item_ts: &str) -> Value {
        static EVENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = EVENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        json!({"type": "reaction_added", "user": user, "reaction": reaction, "item_user": BOT_USER, "item": {"type": "message", "channel": channel, "ts": item_ts}, "event_ts": format!("1700009{n:03}.000500")})
    }

    /// An `events_api` envelope around `event`, with a fresh `event_id`.
    pub fn envelope(&self, event: Value) -> Value {
        let n = {
            let mut i = self.lock();
            i.next_event += 1;
            i.next_event
        };
        json!({
            "envelope_id": format!("env-{n}-{}", uuid::Uuid::new_v4()),
            "type": "events_api",
            "accepts_response_payload": false,
            "retry_attempt": 0,
            "retry_reason": "",
            "payload": {
                "token": "XXYYZZ", "team_id": "T0TEAM", "api_app_id": "A0APP",
                "type": "event_callback", "event_id": format!("Ev{n:04}"), "event_time": 1_700_000_000 + n,
                "authorizations": [{"team_id": "T0TEAM", "user_id": BOT_USER, "is_bot": true, "is_enterprise_install": false}],
                "event": event,
            }
        })
    }

    /// The same envelope as Slack redelivers it: a new envelope id, `retry_attempt` n.
    pub fn redelivery(envelope: &Value, attempt: u64) -> Value {
        let mut e = envelope.clone();
        e["envelope_id"] = json!(format!("retry-{attempt}-{}", uuid::Uuid::new_v4()));
        e["retry_attempt"] = json!(attempt);
        e["retry_reason"] = json!("timeout");
        e
    }

    /// Sends a frame on the live socket (waits for one to be connected).
    pub async fn send(&self, frame: &Value) {
        let tx = self.wait_socket().await;
        if let Some(id) = frame.get("envelope_id").and_then(Value::as_str) {
            self.lock().sent.insert(id.to_string(), Instant::now());
        }
        tx.send(frame.to_string()).unwrap();
    }

    /// Wraps `event` in an envelope and sends it; returns the envelope.
    pub async fn push(&self, event: Value) -> Value {
        let env = self.envelope(event);
        self.send(&env).await;
        env
    }

    async fn wait_socket(&self) -> mpsc::UnboundedSender<String> {
        for _ in 0..600 {
            if let Some(tx) = self.lock().socket.clone()
                && !tx.is_closed()
            {
                return tx;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the bot never connected to the fake Socket Mode");
    }

    /// Sends `{"type":"disconnect","reason":…}`.
    pub async fn disconnect(&self, reason: &str) {
        let tx = self.wait_socket().await;
        let _ = tx.send(
            json!({"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake"}})
                .to_string(),
        );
    }

    pub fn connections(&self) -> usize {
        self.lock().connections
    }

    pub fn socket_open(&self) -> bool {
        self.lock().socket.as_ref().is_some_and(|t| !t.is_closed())
    }

    /// Envelope ids acked, with send → ack latency.
    pub fn acks(&self) -> Vec<(String, Duration)> {
        self.lock().acks.clone()
    }

    pub fn calls(&self, method: &str) -> Vec<Call> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }

    /// The bot's posts in a thread, oldest first.
    pub fn bot_posts(&self, channel: &str, thread_ts: &str) -> Vec<Posted> {
        self.lock()
            .messages
            .iter()
            .filter(|m| m.bot && m.channel == channel && m.thread_ts == thread_ts)
            .cloned()
            .collect()
    }

    /// Every bot message in `channel`, any thread, oldest first.
    pub fn bot_posts_in(&self, channel: &str) -> Vec<Posted> {
        self.lock()
            .messages
            .iter()
            .filter(|m| m.bot && m.channel == channel)
            .cloned()
            .collect()
    }

    /// The bot's top-level messages in `channel` (each starts a thread), oldest first.
    pub fn top_level(&self, channel: &str) -> Vec<Posted> {
        self.lock()
            .messages
            .iter()
            .filter(|m| m.bot && m.channel == channel && m.thread_ts == m.ts)
            .cloned()
            .collect()
    }

    /// The bot's current text of message `ts` (after edits).
    pub fn text_of(&self, channel: &str, ts: &str) -> Option<String> {
        self.lock()
            .messages
            .iter()
            .find(|m| m.channel == channel && m.ts == ts)
            .map(|m| m.text.clone())
    }

    /// Polls `cond` until true, at most `secs`; panics with `what` otherwise.
    pub async fn wait_until(&self, secs: u64, what: &str, cond: impl Fn(&FakeSlack) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if cond(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let posts: Vec<String> = self
            .lock()
            .messages
            .iter()
            .map(|m| {
                format!(
                    "{} {} (thread {}): {}",
                    m.channel, m.ts, m.thread_ts, m.text
                )
            })
            .collect();
        panic!(
            "timed out waiting for {what}; messages:\n{}",
            posts.join("\n")
        );
    }

    /// Report posts (those with Block Kit) in a thread.
    pub fn reports(&self, channel: &str, thread_ts: &str) -> Vec<Posted> {
        self.bot_posts(channel, thread_ts)
            .into_iter()
            .filter(|p| p.blocks.is_some())
            .collect()
    }
}

type AppState = (Arc<Mutex<Inner>>, SocketAddr);

fn params(query: Option<String>, body: &Bytes) -> Value {
    let mut v = serde_json::from_slice::<Value>(body).unwrap_or_else(|_| json!({}));
    if !v.is_object() {
        v = json!({});
    }
    let form = String::from_utf8_lossy(body).to_string();
    for part in [query.unwrap_or_default(), form] {
        for (k, val) in url_pairs(&part) {
            v[k] = json!(val);
        }
    }
    v
}

fn url_pairs(s: &str) -> Vec<(String, String)> {
    if s.trim_start().starts_with('{') {
        return Vec::new();
    }
    s.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn text_of(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}

async fn web_api(
    State((inner, ws_addr)): State<AppState>,
    Path(method): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params(query, &body);
    let auth = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut i = inner.lock().unwrap();
    i.calls.push(Call {
        method: method.clone(),
        params: p.clone(),
        auth: auth.clone(),
        at: Instant::now(),
    });
    if let Some(f) = i.failures.get_mut(&method).and_then(VecDeque::pop_front) {
        let mut r = (StatusCode::from_u16(f.status).unwrap(), axum::Json(f.body)).into_response();
        if let Some(s) = f.retry_after_s {
            r.headers_mut()
                .insert("retry-after", s.to_string().parse().unwrap());
        }
        return r;
    }
    if let Some((per_second, recent)) = i.limits.get_mut(&method) {
        let now = Instant::now();
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            recent.pop_front();
        }
        if recent.len() >= *per_second {
            i.limited += 1;
            let mut r = (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(json!({"ok": false, "error": "ratelimited"})),
            )
                .into_response();
            r.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("1"));
            return r;
        }
        recent.push_back(now);
    }
    let want = if method == "apps.connections.open" {
        format!("Bearer {APP_TOKEN}")
    } else {
        format!("Bearer {BOT_TOKEN}")
    };
    if auth != want {
        return axum::Json(json!({"ok": false, "error": "invalid_auth"})).into_response();
    }
    let body = match method.as_str() {
        "auth.test" => {
            json!({"ok": true, "url": "https://acme.slack.com/", "team": "Acme", "user": "slipway", "team_id": "T0TEAM", "user_id": BOT_USER, "bot_id": BOT_ID, "is_enterprise_install": false})
        }
        "apps.connections.open" => {
            i.next_event += 1;
            json!({"ok": true, "url": format!("ws://{ws_addr}/link/?ticket={}&app_id=A0APP", i.next_event)})
        }
        "conversations.replies" => {
            let (channel, ts) = (text_of(&p, "channel"), text_of(&p, "ts"));
            let limit = p
                .get("limit")
                .and_then(|l| l.as_str().and_then(|s| s.parse().ok()).or(l.as_u64()))
                .unwrap_or(100) as usize;
            let start: usize = text_of(&p, "cursor").parse().unwrap_or(0);
            let all: Vec<&Posted> = i
                .messages
                .iter()
                .filter(|m| m.channel == channel && (m.thread_ts == ts || m.ts == ts))
                .collect();
            if all.is_empty() {
                return axum::Json(json!({"ok": false, "error": "thread_not_found"}))
                    .into_response();
            }
            let page: Vec<Value> = all
                .iter()
                .skip(start)
                .take(limit)
                .map(|m| {
                    let mut v = json!({"type": "message", "user": m.user, "text": m.text, "ts": m.ts, "thread_ts": m.thread_ts});
                    if m.bot {
                        v["bot_id"] = json!(BOT_ID);
                    }
                    v
                })
                .collect();
            let next = if start + limit < all.len() {
                (start + limit).to_string()
            } else {
                String::new()
            };
            json!({"ok": true, "messages": page, "has_more": !next.is_empty(), "response_metadata": {"next_cursor": next}})
        }
        "chat.postMessage" => {
            i.next_ts += 1;
            let ts = format!("{}.000200", i.next_ts);
            let channel = text_of(&p, "channel");
            let text = text_of(&p, "text");
            let thread_ts = match text_of(&p, "thread_ts") {
                t if t.is_empty() => ts.clone(),
                t => t,
            };
            let blocks = p.get("blocks").cloned().map(|b| match b {
                Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::Null),
                other => other,
            });
            i.messages.push(Posted {
                channel: channel.clone(),
                ts: ts.clone(),
                thread_ts: thread_ts.clone(),
                user: BOT_USER.into(),
                text: text.clone(),
                blocks,
                bot: true,
            });
            if i.echo
                && let Some(tx) = &i.socket
            {
                let echo = json!({"envelope_id": format!("echo-{ts}"), "type": "events_api", "accepts_response_payload": false, "retry_attempt": 0, "retry_reason": "",
                    "payload": {"type": "event_callback", "event_id": format!("EvEcho{ts}"), "event": {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "text": text, "ts": ts, "thread_ts": thread_ts, "channel": channel, "event_ts": ts}}});
                let _ = tx.send(echo.to_string());
            }
            json!({"ok": true, "channel": channel, "ts": ts, "message": {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "text": text, "ts": ts}})
        }
        "chat.update" => {
            let (channel, ts) = (text_of(&p, "channel"), text_of(&p, "ts"));
            let text = text_of(&p, "text");
            match i
                .messages
                .iter_mut()
                .find(|m| m.channel == channel && m.ts == ts)
            {
                Some(m) => {
                    m.text = text.clone();
                    json!({"ok": true, "channel": channel, "ts": ts, "text": text, "message": {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "text": text, "ts": ts}})
                }
                None => json!({"ok": false, "error": "message_not_found"}),
            }
        }
        "reactions.add" => json!({"ok": true}),
        "chat.getPermalink" => {
            json!({"ok": true, "channel": text_of(&p, "channel"), "permalink": format!("https://acme.slack.com/archives/{}/p{}", text_of(&p, "channel"), text_of(&p, "message_ts").replace('.', ""))})
        }
        "usergroups.users.list" => {
            let users = i
                .usergroups
                .get(&text_of(&p, "usergroup"))
                .cloned()
                .unwrap_or_default();
            json!({"ok": true, "users": users})
        }
        _ => json!({"ok": false, "error": "unknown_method"}),
    };
    axum::Json(body).into_response()
}

async fn accept_sockets(listener: tokio::net::TcpListener, inner: Arc<Mutex<Inner>>) {
    while let Ok((stream, _)) = listener.accept().await {
        // Frames go out as they are sent (no Nagle delay on the fake's side), so ack
        // latencies measured here are the bot's.
        let _ = stream.set_nodelay(true);
        let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
            continue;
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        {
            let mut i = inner.lock().unwrap();
            i.connections += 1;
            i.socket = Some(tx);
        }
        let inner = inner.clone();
        tokio::spawn(async move {
            let (mut w, mut r) = ws.split();
            let hello = json!({"type": "hello", "num_connections": 1, "debug_info": {"host": "applink-fake", "build_number": 10, "approximate_connection_time": 18060}, "connection_info": {"app_id": "A0APP"}});
            if w.send(Message::Text(hello.to_string().into()))
                .await
                .is_err()
            {
                return;
            }
            loop {
                tokio::select! {
                    out = rx.recv() => match out {
                        Some(text) => {
                            let disconnect = text.contains("\"disconnect\"");
                            if w.send(Message::Text(text.into())).await.is_err() { break; }
                            if disconnect {
                                // Slack closes the link after a disconnect frame.
                                tokio::time::sleep(Duration::from_millis(100)).await;
                                let _ = w.close().await;
                                break;
                            }
                        }
                        None => break,
                    },
                    incoming = r.next() => match incoming {
                        Some(Ok(Message::Text(t))) => {
                            if let Ok(v) = serde_json::from_str::<Value>(t.as_str())
                                && let Some(id) = v.get("envelope_id").and_then(Value::as_str)
                            {
                                let mut i = inner.lock().unwrap();
                                let sent = i.sent.get(id).copied();
                                let lat = sent.map(|s| s.elapsed()).unwrap_or_default();
                                i.acks.push((id.to_string(), lat));
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    },
                }
            }
            rx.close();
        });
    }
}
