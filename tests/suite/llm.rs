//! The providers against a real HTTP server: retries honour `Retry-After`, and mistakes a
//! user can fix come back naming the variable.

use crate::support::fake_llm::{FakeLlm, Turn};
use serde_json::json;
use slipway::agent::llm::settings::LlmPrices;
use slipway::agent::llm::settings::LlmProvider;
use slipway::agent::llm::{self, Block, CompletionRequest, LlmError, Message};

fn prices() -> LlmPrices {
    LlmPrices {
        retry_base_ms: 5,
        max_retries: 3,
        ..Default::default()
    }
}

fn request() -> CompletionRequest {
    CompletionRequest {
        system: "s".into(),
        messages: vec![Message::user_text("hi")],
        tools: vec![],
        max_tokens: 10,
    }
}

#[tokio::test]
async fn busy_answers_are_retried_for_both_wire_formats() {
    for provider in [LlmProvider::Anthropic, LlmProvider::Openai] {
        let fake = FakeLlm::start(vec![
            Turn::Status(529, Some(0)),
            Turn::Status(429, Some(0)),
            Turn::Status(502, None),
            Turn::call("finish", json!({"summary": "ok"})),
        ])
        .await;
        let model = llm::from_config(&Ok(fake.endpoint(provider)), &prices()).unwrap();
        let c = model.complete(&request()).await.unwrap();
        assert!(matches!(&c.content[0], Block::ToolUse { name, .. } if name == "finish"));
        assert_eq!(c.usage.output_tokens, 100);
        assert_eq!(fake.requests().len(), 4);
    }
}

#[tokio::test]
async fn retries_give_up_with_the_last_status() {
    let fake = FakeLlm::start(vec![Turn::Status(503, Some(0)); 5]).await;
    let model = llm::from_config(&Ok(fake.endpoint(LlmProvider::Openai)), &prices()).unwrap();
    let e = model.complete(&request()).await.unwrap_err();
    assert!(
        matches!(
            e,
            LlmError::RetriesExhausted {
                attempts: 4,
                status: 503,
                ..
            }
        ),
        "{e}"
    );
}

#[tokio::test]
async fn user_fixable_errors_name_the_variable() {
    let fake = FakeLlm::start(vec![Turn::Status(401, None), Turn::Status(404, None)]).await;
    let model = llm::from_config(&Ok(fake.endpoint(LlmProvider::Anthropic)), &prices()).unwrap();
    let e = model.complete(&request()).await.unwrap_err().to_string();
    assert!(e.contains("SLIPWAY_LLM_API_KEY"), "{e}");
    let e = model.complete(&request()).await.unwrap_err().to_string();
    assert!(
        e.contains("SLIPWAY_LLM_MODEL") && e.contains("scripted-model"),
        "{e}"
    );

    // Nothing listens on this port once the listener is dropped.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let mut ep = fake.endpoint(LlmProvider::Openai);
    ep.base_url = format!("http://127.0.0.1:{port}/v1");
    let model = llm::from_config(
        &Ok(ep),
        &LlmPrices {
            max_retries: 0,
            ..prices()
        },
    )
    .unwrap();
    let e = model.complete(&request()).await.unwrap_err().to_string();
    assert!(
        e.contains("SLIPWAY_LLM_BASE_URL") && e.contains("unreachable"),
        "{e}"
    );
}

#[tokio::test]
async fn the_key_travels_in_each_vendors_header() {
    let fake = FakeLlm::start(vec![Turn::Text("a".into()), Turn::Text("b".into())]).await;
    for provider in [LlmProvider::Anthropic, LlmProvider::Openai] {
        let model = llm::from_config(&Ok(fake.endpoint(provider)), &prices()).unwrap();
        model.complete(&request()).await.unwrap();
    }
    let r = fake.requests();
    assert_eq!(r[0].headers["x-api-key"], "sk-test-fake-llm-key");
    assert_eq!(r[0].headers["anthropic-version"], "2023-06-01");
    assert_eq!(r[1].headers["authorization"], "Bearer sk-test-fake-llm-key");
}
