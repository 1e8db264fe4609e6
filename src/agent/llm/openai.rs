//! OpenAI Chat Completions (`POST {base}/chat/completions`, base including `/v1`): `tools`
//! in the request, `tool_calls` in the reply, `role: tool` messages back. Any compatible
//! server works (vLLM, Ollama, llama.cpp, LiteLLM); the API key is optional for those.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{
    Block, Completion, CompletionRequest, HttpCore, Llm, LlmError, Role, StopReason, Usage,
};

pub struct OpenAi {
    http: HttpCore,
}

impl OpenAi {
    pub fn new(http: HttpCore) -> Self {
        Self { http }
    }
}

/// The request body for `req` and `model`. `completion_tokens_field`: send the reply limit as
/// `max_completion_tokens` (api.openai.com, which rejects `max_tokens` for newer models)
/// rather than `max_tokens` (what compatible servers accept).
pub fn request_body(model: &str, req: &CompletionRequest, completion_tokens_field: bool) -> Value {
    let mut messages = vec![json!({"role": "system", "content": req.system})];
    for m in &req.messages {
        match m.role {
            Role::Assistant => {
                let text = super::text_of(&m.content);
                let calls: Vec<Value> = m
                    .content
                    .iter()
                    .filter_map(|b| match b {
                        Block::ToolUse {
                            id,
                            name,
                            arguments,
                        } => Some(json!({
                            "id": id,
                            "type": "function",
                            "function": {"name": name, "arguments": arguments},
                        })),
                        _ => None,
                    })
                    .collect();
                // `content` may be null only beside tool calls; an empty turn sends "".
                let content = if text.is_empty() && !calls.is_empty() {
                    Value::Null
                } else {
                    Value::String(text)
                };
                let mut msg = json!({"role": "assistant", "content": content});
                if !calls.is_empty() {
                    msg["tool_calls"] = Value::Array(calls);
                }
                messages.push(msg);
            }
            Role::User => {
                // Tool results become `role: tool` messages, in order; text stays a user turn.
                let mut text = Vec::new();
                for b in &m.content {
                    match b {
                        Block::ToolResult {
                            tool_use_id,
                            content,
                            is_error,
                        } => {
                            let content = if *is_error {
                                format!("ERROR: {content}")
                            } else {
                                content.clone()
                            };
                            messages.push(json!({"role": "tool", "tool_call_id": tool_use_id, "content": content}));
                        }
                        Block::Text { text: t } => text.push(t.as_str()),
                        Block::ToolUse { .. } => {}
                    }
                }
                if !text.is_empty() {
                    messages.push(json!({"role": "user", "content": text.join("\n")}));
                }
            }
        }
    }
    let tools: Vec<Value> = req
        .tools
        .iter()
        .map(|t| {
            json!({"type": "function", "function": {
                "name": t.name, "description": t.description, "parameters": t.input_schema,
            }})
        })
        .collect();
    let mut body = json!({"model": model, "messages": messages});
    let field = if completion_tokens_field {
        "max_completion_tokens"
    } else {
        "max_tokens"
    };
    body[field] = json!(req.max_tokens);
    if !tools.is_empty() {
        body["tools"] = Value::Array(tools);
    }
    body
}

/// Parses a Chat Completions response.
pub fn parse_response(v: &Value) -> Result<Completion, LlmError> {
    let choice = v
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or_else(|| LlmError::Decode("no `choices[0]`".into()))?;
    let msg = &choice["message"];
    let mut content = Vec::new();
    if let Some(text) = msg.get("content").and_then(Value::as_str)
        && !text.is_empty()
    {
        content.push(Block::Text {
            text: text.to_string(),
        });
    }
    if let Some(calls) = msg.get("tool_calls").and_then(Value::as_array) {
        for (i, c) in calls.iter().enumerate() {
            let arguments = match &c["function"]["arguments"] {
                Value::String(s) => s.clone(),
                Value::Null => "{}".into(),
                // Some servers send an object instead of a string.
                other => other.to_string(),
            };
            content.push(Block::ToolUse {
                id: c["id"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("call_{i}")),
                name: c["function"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                arguments,
            });
        }
    }
    let stop_reason = match choice.get("finish_reason").and_then(Value::as_str) {
        Some("stop") => StopReason::EndTurn,
        Some("tool_calls") | Some("function_call") => StopReason::ToolUse,
        Some("length") => StopReason::MaxTokens,
        _ => StopReason::Other,
    };
    let usage = Usage {
        input_tokens: v["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
        output_tokens: v["usage"]["completion_tokens"].as_u64().unwrap_or(0),
    };
    Ok(Completion {
        content,
        stop_reason,
        usage,
    })
}

#[async_trait]
impl Llm for OpenAi {
    fn describe(&self) -> String {
        format!("openai/{}", self.http.endpoint().model)
    }

    async fn complete(&self, req: &CompletionRequest) -> Result<Completion, LlmError> {
        let ep = self.http.endpoint();
        let url = format!("{}/chat/completions", ep.base_url);
        let mut headers = Vec::new();
        if let Some(key) = &ep.api_key {
            headers.push(("authorization", format!("Bearer {key}")));
        }
        let v = self
            .http
            .post_json(
                &url,
                &headers,
                &request_body(&ep.model, req, ep.base_url.contains("api.openai.com")),
            )
            .await?;
        parse_response(&v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::llm::Message;

    #[test]
    fn tool_results_become_tool_messages() {
        let req = CompletionRequest {
            system: "sys".into(),
            messages: vec![
                Message::user_text("hi"),
                Message {
                    role: Role::Assistant,
                    content: vec![Block::ToolUse {
                        id: "c1".into(),
                        name: "run".into(),
                        arguments: "{not json".into(),
                    }],
                },
                Message {
                    role: Role::User,
                    content: vec![Block::ToolResult {
                        tool_use_id: "c1".into(),
                        content: "bad".into(),
                        is_error: true,
                    }],
                },
            ],
            tools: vec![],
            max_tokens: 10,
        };
        let b = request_body("gpt", &req, false);
        assert_eq!(b["max_tokens"], 10);
        assert_eq!(request_body("gpt", &req, true)["max_completion_tokens"], 10);
        assert_eq!(b["messages"][0]["role"], "system");
        assert_eq!(
            b["messages"][2]["tool_calls"][0]["function"]["arguments"],
            "{not json"
        );
        assert_eq!(b["messages"][3]["role"], "tool");
        assert!(b.get("tools").is_none());
        let c = parse_response(&json!({
            "choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [
                {"id": "x", "type": "function", "function": {"name": "finish", "arguments": "{\"summary\":\"s\"}"}}
            ]}, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3}
        }))
        .unwrap();
        assert_eq!(c.usage.output_tokens, 3);
        assert_eq!(c.stop_reason, StopReason::ToolUse);
    }
}
