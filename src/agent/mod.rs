//! The agent loop: the only part of a run that needs judgement, run inside walls.
//!
//! The loop asks the model for a turn, dispatches its tool calls (only the prefetched ones),
//! returns the results, and stops at `finish`, at a budget (steps per node; tokens and wall
//! time per run), at cancellation, or on a provider or sandbox failure. A bad tool call is
//! the model's to fix and never ends the run. Every request, response and tool call is
//! written to the transcript with its timing, and every tool call to the audit log.

pub mod disk;
pub mod llm;
pub mod prompt;
pub mod settings;
pub mod spend;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::sandbox::SandboxError;
use crate::store::{AuditEvent, RunLog, StoreError};
use crate::tools::builtins::{ToolContext, ToolOutcome};
use llm::{Block, CompletionRequest, Llm, LlmError, Message, Role, ToolSpec, Usage};
pub use spend::SpendGuard;

/// Most bytes of one tool result sent back to the model (the `run` tool caps its own
/// output earlier; this bounds the file tools).
const TOOL_RESULT_CAP: usize = 64 * 1024;
/// Model turns in a row without a tool call before the node ends.
const MAX_IDLE_TURNS: u32 = 2;

/// Failures that stop the run (not the model's to fix).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error(transparent)]
    Sandbox(SandboxError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the run was cancelled")]
    Cancelled,
}

impl From<SandboxError> for AgentError {
    fn from(e: SandboxError) -> Self {
        match e {
            SandboxError::Cancelled => Self::Cancelled,
            other => Self::Sandbox(other),
        }
    }
}

/// Which budget ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetKind {
    Steps,
    Tokens,
    Time,
}

/// Budgets of one run (`[agent]`). Steps count per agent node; tokens and time per run.
/// `spend`, when set, also checks `[budgets]` before each model call.
#[derive(Debug)]
pub struct Budget {
    pub max_steps_per_node: u32,
    pub max_tokens: u64,
    pub deadline: Instant,
    /// Model turns so far, all nodes.
    pub steps: u32,
    pub usage: Usage,
    /// The run's `[budgets]` guard (ledger and warnings); `None`: none checked.
    pub spend: Option<Box<dyn SpendGuard>>,
}

impl Budget {
    pub fn new(max_steps_per_node: u32, max_tokens: u64, max_time: Duration) -> Self {
        Self {
            max_steps_per_node,
            max_tokens,
            deadline: Instant::now() + max_time,
            steps: 0,
            usage: Usage::default(),
            spend: None,
        }
    }

    /// The same budget, checking `[budgets]` through `guard`.
    pub fn with_spend(mut self, guard: Box<dyn SpendGuard>) -> Self {
        self.spend = Some(guard);
        self
    }

    /// A sentence for reports: which budget and its size.
    pub fn describe(&self, kind: BudgetKind) -> String {
        match kind {
            BudgetKind::Steps => format!(
                "step budget exhausted ({} model turns in one node)",
                self.max_steps_per_node
            ),
            BudgetKind::Tokens => format!(
                "token budget exhausted ({} of {} tokens)",
                self.usage.input_tokens + self.usage.output_tokens,
                self.max_tokens
            ),
            BudgetKind::Time => "time budget exhausted ([agent] max_minutes)".into(),
        }
    }
}

/// How an agent node ended (all normal endings; failures are [`AgentError`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "end", rename_all = "snake_case")]
pub enum AgentEnd {
    Finished {
        summary: String,
    },
    Budget {
        kind: BudgetKind,
    },
    /// The model stopped calling tools without calling `finish`.
    Stopped {
        text: String,
    },
    /// The agent broke a rule that ends the run (e.g. editing `.slipway/**`).
    PolicyViolation {
        reason: String,
    },
    /// A `[budgets]` limit was spent: the agent stopped before its next model call.
    /// Displayed (gate, node detail, halt reason) as `budget: task_usd $X of $Y`.
    OverBudget {
        reading: crate::budget::Reading,
    },
}

/// One tool call, for reports and PR bodies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallRecord {
    pub name: String,
    pub ok: bool,
    pub duration_ms: u64,
}

/// A conversation that lives across the implement node and its fix rounds, so the model
/// keeps what it learned.
pub struct Conversation {
    pub system: String,
    pub messages: Vec<Message>,
    /// How many messages were already written to the transcript.
    recorded: usize,
    pub tool_calls: Vec<ToolCallRecord>,
}

impl Conversation {
    pub fn new(system: String) -> Self {
        Self {
            system,
            messages: Vec::new(),
            recorded: 0,
            tool_calls: Vec::new(),
        }
    }
}

/// What one agent node may use.
pub struct AgentNode<'a> {
    pub llm: &'a dyn Llm,
    pub tools: &'a [ToolSpec],
    pub ctx: ToolContext<'a>,
    pub log: &'a RunLog,
    pub max_output_tokens: u32,
    /// This process's secret values: every tool result is redacted with them before the
    /// model (or the transcript) sees it, as transcripts are.
    pub secrets: &'a crate::redact::SecretValues,
    /// The host disk the run's sandbox may fill, measured after every turn's tool calls;
    /// `None`: no limit.
    pub disk: Option<disk::DiskLimit>,
}

impl AgentNode<'_> {
    /// Runs the node: `instruction` is appended as a user turn, then the loop goes until an
    /// [`AgentEnd`].
    pub async fn run(
        &self,
        conv: &mut Conversation,
        budget: &mut Budget,
        instruction: String,
    ) -> Result<AgentEnd, AgentError> {
        conv.messages.push(Message::user_text(instruction));
        let mut node_steps = 0u32;
        let mut idle = 0u32;
        loop {
            if self.ctx.cancel.is_cancelled() {
                return Err(AgentError::Cancelled);
            }
            if node_steps >= budget.max_steps_per_node {
                return Ok(AgentEnd::Budget {
                    kind: BudgetKind::Steps,
                });
            }
            if budget.usage.input_tokens + budget.usage.output_tokens >= budget.max_tokens {
                return Ok(AgentEnd::Budget {
                    kind: BudgetKind::Tokens,
                });
            }
            let Some(remaining) = budget.deadline.checked_duration_since(Instant::now()) else {
                return Ok(AgentEnd::Budget {
                    kind: BudgetKind::Time,
                });
            };
            if let Some(guard) = budget.spend.as_mut()
                && let Some(reading) = guard.over().await?
            {
                return Ok(AgentEnd::OverBudget { reading });
            }
            let req = CompletionRequest {
                system: conv.system.clone(),
                messages: conv.messages.clone(),
                tools: self.tools.to_vec(),
                max_tokens: self.max_output_tokens,
            };
            self.log
                .transcript(
                    "llm_request",
                    0,
                    json!({
                        "step": budget.steps + 1,
                        "new_messages": &conv.messages[conv.recorded..],
                        "tools": self.tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
                    }),
                )
                .await?;
            conv.recorded = conv.messages.len();
            let t0 = Instant::now();
            let completion = tokio::select! {
                r = tokio::time::timeout(remaining, self.llm.complete(&req)) => match r {
                    Ok(r) => r?,
                    Err(_) => return Ok(AgentEnd::Budget { kind: BudgetKind::Time }),
                },
                _ = self.ctx.cancel.cancelled() => return Err(AgentError::Cancelled),
            };
            let llm_ms = t0.elapsed().as_millis() as u64;
            node_steps += 1;
            budget.steps += 1;
            budget.usage.input_tokens += completion.usage.input_tokens;
            budget.usage.output_tokens += completion.usage.output_tokens;
            if let Some(guard) = budget.spend.as_mut() {
                guard.spent(budget.steps, completion.usage).await?;
            }
            self.log
                .transcript(
                    "llm_response",
                    llm_ms,
                    serde_json::to_value(&completion).unwrap_or_default(),
                )
                .await?;
            conv.messages.push(Message {
                role: Role::Assistant,
                content: completion.content.clone(),
            });
            conv.recorded = conv.messages.len();

            let calls: Vec<(String, String, String)> = completion
                .content
                .iter()
                .filter_map(|b| match b {
                    Block::ToolUse {
                        id,
                        name,
                        arguments,
                    } => Some((id.clone(), name.clone(), arguments.clone())),
                    _ => None,
                })
                .collect();
            if calls.is_empty() {
                idle += 1;
                let text = llm::text_of(&completion.content);
                if idle >= MAX_IDLE_TURNS {
                    return Ok(AgentEnd::Stopped { text });
                }
                conv.messages.push(Message::user_text(
                    "Continue with the tools, or call `finish` with a summary if the change is complete.",
                ));
                continue;
            }
            idle = 0;
            let mut results = Vec::new();
            let mut finished = None;
            let mut violation: Option<String> = None;
            for (id, name, arguments) in calls {
                if violation.is_some() {
                    // The run is halted: the remaining calls of this turn do not run, but each
                    // still gets a result (the APIs require one per call).
                    results.push(Block::ToolResult {
                        tool_use_id: id,
                        content: "not run: the run is halted".into(),
                        is_error: true,
                    });
                    continue;
                }
                let t = Instant::now();
                let outcome = if self.tools.iter().any(|t| t.name == name) {
                    crate::tools::dispatch(&self.ctx, &name, &arguments).await?
                } else {
                    let offered: Vec<&str> = self.tools.iter().map(|t| t.name.as_str()).collect();
                    ToolOutcome::Error(format!(
                        "unknown tool {name:?}; available: {}",
                        offered.join(", ")
                    ))
                };
                let duration_ms = t.elapsed().as_millis() as u64;
                let (content, is_error) = match &outcome {
                    ToolOutcome::Output(s) => (crate::task::cap_bytes(s, TOOL_RESULT_CAP), false),
                    ToolOutcome::Error(s) => (s.clone(), true),
                    ToolOutcome::Finish(s) => {
                        finished = Some(s.clone());
                        ("finished".to_string(), false)
                    }
                    ToolOutcome::Denied(reason) => {
                        self.log
                            .audit(
                                "agent",
                                AuditEvent::ToolDenied {
                                    tool: name.clone(),
                                    arguments: crate::task::truncate_chars(&arguments, 2000),
                                    reason: reason.clone(),
                                },
                            )
                            .await?;
                        (reason.clone(), true)
                    }
                    ToolOutcome::Halt(reason) => {
                        self.log
                            .audit(
                                "agent",
                                AuditEvent::PolicyViolation {
                                    tool: name.clone(),
                                    arguments: crate::task::truncate_chars(&arguments, 2000),
                                    reason: reason.clone(),
                                },
                            )
                            .await?;
                        violation = Some(reason.clone());
                        (format!("{reason}. The run is halted."), true)
                    }
                };
                // A file or command output the agent can reach may hold a secret of this
                // process: the model never gets it back.
                let content = self.secrets.redact(&content);
                conv.tool_calls.push(ToolCallRecord {
                    name: name.clone(),
                    ok: !is_error,
                    duration_ms,
                });
                let shown_args = crate::task::truncate_chars(&arguments, 4000);
                self.log
                    .transcript(
                        "tool_call",
                        duration_ms,
                        json!({"id": id, "name": name, "arguments": shown_args, "is_error": is_error, "result": crate::task::truncate_chars(&content, 8000)}),
                    )
                    .await?;
                self.log
                    .audit(
                        "agent",
                        AuditEvent::ToolCall {
                            tool: name.clone(),
                            ok: !is_error,
                            duration_ms,
                        },
                    )
                    .await?;
                results.push(Block::ToolResult {
                    tool_use_id: id,
                    content,
                    is_error,
                });
            }
            conv.messages.push(Message {
                role: Role::User,
                content: results,
            });
            if violation.is_none()
                && let Some(limit) = &self.disk
                && let Some(reason) = limit.check().await
            {
                self.log
                    .audit(
                        "agent",
                        AuditEvent::PolicyViolation {
                            tool: "disk".into(),
                            arguments: String::new(),
                            reason: reason.clone(),
                        },
                    )
                    .await?;
                violation = Some(reason);
            }
            if let Some(reason) = violation {
                return Ok(AgentEnd::PolicyViolation { reason });
            }
            if let Some(summary) = finished {
                return Ok(AgentEnd::Finished { summary });
            }
        }
    }
}
