//! A fake model server on loopback that speaks both wire formats slipway uses:
//! Anthropic Messages (`POST /v1/messages`) and OpenAI Chat Completions
//! (`POST /v1/chat/completions`). It replays scripted turns, records every request, and
//! checks invariants on each (every tool call answered, in order) so a test can assert the
//! conversation was well formed.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use slipway::agent::llm::settings::LlmEndpoint;
use slipway::agent::llm::settings::LlmProvider;

/// One scripted reply.
#[derive(Clone, Debug)]
pub enum Turn {
    /// Tool calls: (name, raw JSON arguments).
    Tools(Vec<(String, String)>),
    /// Plain text, no tool call.
    Text(String),
    /// An HTTP error with optional `Retry-After` seconds.
    Status(u16, Option<u32>),
}

impl Turn {
    /// One tool call with JSON arguments.
    pub fn call(name: &str, args: Value) -> Self {
        Self::Tools(vec![(name.to_string(), args.to_string())])
    }
}

/// A recorded request.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// When the request arrived.
    pub at: std::time::Instant,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

/// Makes a reply from the request's number (1-based) and its JSON body.
pub type Responder = Arc<dyn Fn(u64, &Value) -> Turn + Send + Sync>;

#[derive(Default)]
struct Inner {
    script: VecDeque<Turn>,
    /// Replayed forever once the script is empty (for "endless tool calls").
    fallback: Option<Turn>,
    /// Makes the reply once the script is empty, from the request's number (1-based) and
    /// body; wins over `fallback`.
    responder: Option<Responder>,
    requests: Vec<Recorded>,
    violations: Vec<String>,
    counter: u64,
}

/// Handle to a running fake.
#[derive(Clone)]
pub struct FakeLlm {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl FakeLlm {
    /// Starts a fake on 127.0.0.1 with `script`.
    pub async fn start(script: Vec<Turn>) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            script: script.into(),
            ..Default::default()
        }));
        let app = Router::new()
            .route("/v1/messages", post(anthropic))
            .route("/v1/chat/completions", post(openai))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, inner }
    }

    /// Replays `turn` forever after the script runs out.
    pub fn repeat_forever(&self, turn: Turn) {
        self.inner.lock().unwrap().fallback = Some(turn);
    }

    /// Answers every request after the script with `f(request number, body)`: a model for
    /// many concurrent conversations (each reply may depend on its own conversation).
    pub fn respond_with(&self, f: impl Fn(u64, &Value) -> Turn + Send + Sync + 'static) {
        self.inner.lock().unwrap().responder = Some(Arc::new(f));
    }

    /// The endpoint config for `provider` pointing at this fake.
    pub fn endpoint(&self, provider: LlmProvider) -> LlmEndpoint {
        let base_url = match provider {
            LlmProvider::Anthropic => format!("http://{}", self.addr),
            LlmProvider::Openai => format!("http://{}/v1", self.addr),
        };
        LlmEndpoint {
            provider,
            base_url,
            model: "scripted-model".into(),
            api_key: Some("sk-test-fake-llm-key".into()),
            api_key_var: "SLIPWAY_LLM_API_KEY",
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.lock().unwrap().requests.clone()
    }

    pub fn violations(&self) -> Vec<String> {
        self.inner.lock().unwrap().violations.clone()
    }

    /// Scripted turns not yet replayed.
    pub fn remaining(&self) -> usize {
        self.inner.lock().unwrap().script.len()
    }
}

fn next(
    inner: &Arc<Mutex<Inner>>,
    path: &str,
    headers: HeaderMap,
    body: Value,
    violations: Vec<String>,
) -> (Option<Turn>, u64) {
    let mut g = inner.lock().unwrap();
    g.requests.push(Recorded {
        at: std::time::Instant::now(),
        path: path.to_string(),
        headers,
        body,
    });
    g.violations.extend(violations);
    g.counter += 1;
    let n = g.counter;
    let turn = g.script.pop_front().or_else(|| {
        let body = &g.requests[g.requests.len() - 1].body;
        match &g.responder {
            Some(f) => Some(f(n, body)),
            None => g.fallback.clone(),
        }
    });
    (turn, g.counter)
}

fn error(status: u16, retry_after: Option<u32>) -> Response {
    let mut resp = (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(json!({"type": "error", "error": {"type": "overloaded_error", "message": "scripted error"}})),
    )
        .into_response();
    if let Some(s) = retry_after {
        resp.headers_mut()
            .insert("retry-after", s.to_string().parse().unwrap());
    }
    resp
}

fn exhausted() -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": {"message": "fake LLM script exhausted"}})),
    )
        .into_response()
}

/// Anthropic invariant: each assistant `tool_use` is answered by a `tool_result` with the
/// same id in the very next user message.
fn check_anthropic(body: &Value) -> Vec<String> {
    let mut v = Vec::new();
    let msgs = body["messages"].as_array().cloned().unwrap_or_default();
    if body["model"].as_str().is_none() || body["max_tokens"].as_u64().is_none() {
        v.push("request lacks model or max_tokens".into());
    }
    for (i, m) in msgs.iter().enumerate() {
        if m["role"] != "assistant" {
            continue;
        }
        let ids: Vec<&str> = m["content"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|b| b["type"] == "tool_use")
            .filter_map(|b| b["id"].as_str())
            .collect();
        if ids.is_empty() {
            continue;
        }
        let Some(next) = msgs.get(i + 1) else {
            v.push(format!(
                "tool_use in message {i} has no following user message"
            ));
            continue;
        };
        let results: Vec<&str> = next["content"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|b| b["type"] == "tool_result")
            .filter_map(|b| b["tool_use_id"].as_str())
            .collect();
        if results != ids {
            v.push(format!(
                "message {i}: tool_use ids {ids:?} answered by {results:?}"
            ));
        }
    }
    v
}

/// OpenAI invariant: each `tool_calls` id is answered by a `role: tool` message, in order,
/// right after the assistant message.
fn check_openai(body: &Value) -> Vec<String> {
    let mut v = Vec::new();
    let msgs = body["messages"].as_array().cloned().unwrap_or_default();
    if msgs.first().map(|m| m["role"] != "system").unwrap_or(true) {
        v.push("first message is not the system prompt".into());
    }
    for (i, m) in msgs.iter().enumerate() {
        let ids: Vec<&str> = m["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["id"].as_str())
            .collect();
        for (j, id) in ids.iter().enumerate() {
            match msgs.get(i + 1 + j) {
                Some(t) if t["role"] == "tool" && t["tool_call_id"] == *id => {}
                _ => v.push(format!("message {i}: tool call {id} not answered in order")),
            }
        }
    }
    v
}

async fn anthropic(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut violations = check_anthropic(&body);
    if headers.get("anthropic-version").is_none() || headers.get("x-api-key").is_none() {
        violations.push("missing anthropic-version or x-api-key".into());
    }
    let (turn, n) = next(&inner, "/v1/messages", headers, body, violations);
    let usage = json!({"input_tokens": 1000, "output_tokens": 100});
    match turn {
        None => exhausted(),
        Some(Turn::Status(s, ra)) => error(s, ra),
        Some(Turn::Text(t)) => axum::Json(json!({
            "id": format!("msg_{n}"), "type": "message", "role": "assistant", "model": "scripted-model",
            "content": [{"type": "text", "text": t}], "stop_reason": "end_turn", "usage": usage,
        }))
        .into_response(),
        Some(Turn::Tools(calls)) => {
            let content: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(i, (name, args))| {
                    let input: Value = serde_json::from_str(args).unwrap_or_else(|_| json!({"_raw": args}));
                    json!({"type": "tool_use", "id": format!("toolu_{n}_{i}"), "name": name, "input": input})
                })
                .collect();
            axum::Json(json!({
                "id": format!("msg_{n}"), "type": "message", "role": "assistant", "model": "scripted-model",
                "content": content, "stop_reason": "tool_use", "usage": usage,
            }))
            .into_response()
        }
    }
}

async fn openai(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let violations = check_openai(&body);
    let (turn, n) = next(&inner, "/v1/chat/completions", headers, body, violations);
    let usage = json!({"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100});
    match turn {
        None => exhausted(),
        Some(Turn::Status(s, ra)) => error(s, ra),
        Some(Turn::Text(t)) => axum::Json(json!({
            "id": format!("chatcmpl-{n}"), "object": "chat.completion", "model": "scripted-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}],
            "usage": usage,
        }))
        .into_response(),
        Some(Turn::Tools(calls)) => {
            let tool_calls: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(i, (name, args))| json!({"id": format!("call_{n}_{i}"), "type": "function", "function": {"name": name, "arguments": args}}))
                .collect();
            axum::Json(json!({
                "id": format!("chatcmpl-{n}"), "object": "chat.completion", "model": "scripted-model",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": tool_calls}, "finish_reason": "tool_calls"}],
                "usage": usage,
            }))
            .into_response()
        }
    }
}
