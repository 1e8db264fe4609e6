//! A replay model server for demos and offline trials: speaks OpenAI Chat Completions on
//! loopback and answers each request with the next recorded turn of a session file
//! (`{"turns": [{"tool": NAME, "args": {...}}, …]}`). It is not a model; it lets the quick
//! start exercise the real runner, sandbox, git and store on a machine with no model access.
//!
//! Usage: `cargo run --example replay_llm -- SESSION.json` prints `http://127.0.0.1:PORT/v1`
//! on stdout, then serves until killed.

use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

struct Replay {
    turns: Vec<Value>,
    next: usize,
}

async fn complete(
    State(state): State<Arc<Mutex<Replay>>>,
    Json(_body): Json<Value>,
) -> Json<Value> {
    let mut r = state.lock().unwrap_or_else(|p| p.into_inner());
    let i = r.next;
    r.next += 1;
    let turn = r
        .turns
        .get(i)
        .cloned()
        .unwrap_or_else(|| json!({"tool": "finish", "args": {"summary": "replay finished"}}));
    let call = json!({
        "id": format!("call_{i}"),
        "type": "function",
        "function": {"name": turn["tool"], "arguments": turn["args"].to_string()},
    });
    Json(json!({
        "id": format!("replay-{i}"),
        "object": "chat.completion",
        "model": "replay",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [call]}, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .context("usage: replay_llm SESSION.json")?;
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let session: Value = serde_json::from_str(&text).with_context(|| format!("parsing {path}"))?;
    let turns = session["turns"]
        .as_array()
        .cloned()
        .context("the session has no `turns` array")?;
    let state = Arc::new(Mutex::new(Replay { turns, next: 0 }));
    let app = Router::new()
        .route("/v1/chat/completions", post(complete))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    #[allow(clippy::print_stdout)]
    {
        println!("http://{}/v1", listener.local_addr()?);
    }
    axum::serve(listener, app).await?;
    Ok(())
}
