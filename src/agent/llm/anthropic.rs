//! Anthropic Messages API (`POST {base}/v1/messages`, `anthropic-version: 2023-06-01`):
//! `tool_use` blocks from the model, `tool_result` blocks back in a user turn.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{
    Block, Completion, CompletionRequest, HttpCore, Llm, LlmError, Role, StopReason, Usage,
};

/// The Messages API version header slipway speaks.
pub const API_VERSION: &str = "2023-06-01";

pub struct Anthropic {
    http: HttpCore,
}

impl Anthropic {
    pub fn new(http: HttpCore) -> Self {
        Self { http }
    }
}

/// The request body for `req` and `model`.
pub fn request_body(model: &str, req: &CompletionRequest) -> Value {
    let messages: Vec<Value> = req
        .messages
        .iter()
        .map(|m| {
            let mut content: Vec<Value> = m
                .content
                .iter()
                .filter(|b| !matches!(b, Block::Text { text } if text.is_empty()))
                .map(|b| match b {
                    Block::Text { text } => json!({"type": "text", "text": text}),
                    Block::ToolUse {
                        id,
                        name,
                        arguments,
                    } => {
                        // The API wants an object; an invalid call is echoed as {}.
                        let input = serde_json::from_str::<Value>(arguments)
                            .ok()
                            .filter(Value::is_object)
                            .unwrap_or_else(|| json!({}));
                        json!({"type": "tool_use", "id": id, "name": name, "input": input})
                    }
                    Block::ToolResult {
                        tool_use_id,
                        content,
                        is_error,
                    } => json!({
                        "type": "tool_result",
                        "tool_use_id": tool_use_id,
                        "content": content,
                        "is_error": is_error,
                    }),
                })
                .collect();
            // The API refuses a message with no content blocks.
            if content.is_empty() {
                content.push(json!({"type": "text", "text": "(no content)"}));
            }
            let role = match m.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            json!({"role": role, "content": content})
        })
        .collect();
    let tools: Vec<Value> = req
        .tools
        .iter()
        .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.input_schema}))
        .collect();
    let mut body = json!({
        "model": model,
        "max_tokens": req.max_tokens,
        "system": req.system,
        "messages": messages,
    });
    if !tools.is_empty() {
        body["tools"] = Value::Array(tools);
    }
    body
}

/// Parses a Messages API response.
pub fn parse_response(v: &Value) -> Result<Completion, LlmError> {
    let blocks = v
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| LlmError::Decode("no `content` array".into()))?;
    let mut content = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            // Empty text blocks are dropped: the API refuses them when they are sent back.
            Some("text") => {
                let text = b["text"].as_str().unwrap_or_default();
                if !text.is_empty() {
                    content.push(Block::Text {
                        text: text.to_string(),
                    });
                }
            }
            Some("tool_use") => content.push(Block::ToolUse {
                id: b["id"].as_str().unwrap_or_default().to_string(),
                name: b["name"].as_str().unwrap_or_default().to_string(),
                arguments: b
                    .get("input")
                    .map(Value::to_string)
                    .unwrap_or_else(|| "{}".into()),
            }),
            // thinking and other block types carry nothing slipway acts on.
            _ => {}
        }
    }
    let stop_reason = match v.get("stop_reason").and_then(Value::as_str) {
        Some("end_turn") | Some("stop_sequence") => StopReason::EndTurn,
        Some("tool_use") => StopReason::ToolUse,
        Some("max_tokens") => StopReason::MaxTokens,
        _ => StopReason::Other,
    };
    let usage = Usage {
        input_tokens: v["usage"]["input_tokens"].as_u64().unwrap_or(0)
            + v["usage"]["cache_read_input_tokens"].as_u64().unwrap_or(0)
            + v["usage"]["cache_creation_input_tokens"]
                .as_u64()
                .unwrap_or(0),
        output_tokens: v["usage"]["output_tokens"].as_u64().unwrap_or(0),
    };
    Ok(Completion {
        content,
        stop_reason,
        usage,
    })
}

#[async_trait]
impl Llm for Anthropic {
    fn describe(&self) -> String {
        format!("anthropic/{}", self.http.endpoint().model)
    }

    async fn complete(&self, req: &CompletionRequest) -> Result<Completion, LlmError> {
        let ep = self.http.endpoint();
        let url = format!("{}/v1/messages", ep.base_url);
        let headers = vec![
            ("x-api-key", ep.api_key.clone().unwrap_or_default()),
            ("anthropic-version", API_VERSION.to_string()),
        ];
        let v = self
            .http
            .post_json(&url, &headers, &request_body(&ep.model, req))
            .await?;
        parse_response(&v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::llm::{Message, ToolSpec};

    #[test]
    fn a_tool_round_trip_has_the_wire_shape() {
        let req = CompletionRequest {
            system: "sys".into(),
            messages: vec![
                Message::user_text("hi"),
                Message {
                    role: Role::Assistant,
                    content: vec![Block::ToolUse {
                        id: "tu1".into(),
                        name: "read_file".into(),
                        arguments: "{\"path\":\"a\"}".into(),
                    }],
                },
                Message {
                    role: Role::User,
                    content: vec![Block::ToolResult {
                        tool_use_id: "tu1".into(),
                        content: "x".into(),
                        is_error: false,
                    }],
                },
            ],
            tools: vec![ToolSpec {
                name: "read_file".into(),
                description: "d".into(),
                input_schema: json!({"type": "object"}),
            }],
            max_tokens: 100,
        };
        let b = request_body("claude", &req);
        assert_eq!(b["messages"][1]["content"][0]["input"]["path"], "a");
        assert_eq!(b["messages"][2]["content"][0]["type"], "tool_result");
        assert_eq!(b["tools"][0]["input_schema"]["type"], "object");
        let c = parse_response(&json!({
            "content": [{"type": "text", "text": "ok"}, {"type": "tool_use", "id": "t", "name": "finish", "input": {"summary": "s"}}],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 10, "output_tokens": 5}
        }))
        .unwrap();
        assert_eq!(c.stop_reason, StopReason::ToolUse);
        assert_eq!(c.usage.input_tokens, 10);
        assert!(
            matches!(&c.content[1], Block::ToolUse { arguments, .. } if arguments.contains("summary"))
        );
    }
}
