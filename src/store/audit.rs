//! The audit log's vocabulary: [`AuditEvent`], what a writer says happened, and
//! [`AuditRecord`], what the store keeps and readers get back.
//!
//! Writers hand [`super::Store::audit_now`] or [`super::RunLog::audit`] an [`AuditEvent`];
//! nothing else can append to the log, so every action spelling lives in this file. The
//! serde mapping is the contract: the variant's snake_case name is the stored `action` and
//! its fields are the stored `detail` object, byte for byte what the log held when writers
//! still passed strings and `json!` payloads. Readers (the CLI, the web page, tests) keep
//! reading [`AuditRecord`]'s `action: String` and `detail: Value`, so old logs stay readable.
//!
//! Owns these types only. It must not import a module that depends on the store (`run`,
//! `gates`, `slack`, …): field types come from leaves (`report`, `repos`, `task`) or are plain
//! strings and numbers.

use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::access::RefusalReason;
use crate::report::{Decision, GateStatus};
use crate::repos::MergeMethod;
use crate::task::BlueprintId;

/// One stored audit entry. The log is append-only: there is no API to change or delete one.
///
/// Shape: `{"at_ms", "task_id", "run_id", "action", "actor", "detail"}`, where `action` and
/// `detail` are an [`AuditEvent`]'s serde tag and content.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditRecord {
    pub at_ms: u64,
    pub task_id: Option<String>,
    pub run_id: Option<String>,
    /// What happened: an [`AuditEvent`] variant's spelling (`run_started`, `node_finished`,
    /// `tool_call`, `merged`, …).
    pub action: String,
    /// Who did it: a Slack user ID, `slipway` or `agent`.
    pub actor: String,
    /// The event's fields, as a JSON object.
    pub detail: serde_json::Value,
}

/// What happened, as written to the audit log. Each variant is one `action`; its fields are
/// the `detail` object (shapes given per variant as `action {"key", …}`).
///
/// Stored as `{"action": "<snake_case variant>", "detail": {<fields>}}`; a field renamed
/// with `#[serde(rename)]` keeps its historical key. Field-less variants are braced (`{}`)
/// so their detail is `{}`, not absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", content = "detail", rename_all = "snake_case")]
pub enum AuditEvent {
    /// `run_started {"revision", "branch", "blueprint"}`: a revision's run began (actor: the
    /// requester).
    RunStarted {
        revision: u32,
        branch: String,
        blueprint: BlueprintId,
    },
    /// `node_finished {"node", "kind", "ok", "duration_ms"}`: a blueprint node ended. `node`
    /// is the node's stored spelling (`sandbox_gates`), `kind` `deterministic` or `agent`.
    NodeFinished {
        node: String,
        kind: String,
        ok: bool,
        duration_ms: u64,
    },
    /// `decision {"decision", "reasons"}`: a run finished with the gates' decision.
    Decision {
        decision: Decision,
        reasons: Vec<String>,
    },
    /// `run_failed {"error"}`: a run failed before it could decide.
    RunFailed { error: String },
    /// `run_cancelled {"error"}`: a run was cancelled (❌, timeout or shutdown).
    RunCancelled { error: String },
    /// `run_interrupted {"rerun"}`: a restart found the run unfinished; `rerun` says whether
    /// it was queued again.
    RunInterrupted { rerun: bool },
    /// `push {"branch", "commit", "to"}`: the branch was published to `to` (a location).
    Push {
        branch: String,
        commit: Option<String>,
        to: String,
    },
    /// `pr_opened {"pr"}`: publishing opened a pull request (its URL, if the forge has one).
    PrOpened { pr: Option<String> },
    /// `ci {"commit", "status", "detail"}`: the forge's CI result for the tested commit.
    Ci {
        commit: String,
        status: GateStatus,
        detail: String,
    },
    /// `secret_found {"findings": [{"rule", "path", "line"}]}`: the diff holds secrets.
    SecretFound { findings: Vec<SecretFinding> },
    /// `tool_call {"tool", "ok", "duration_ms"}`: the agent called a tool.
    ToolCall {
        tool: String,
        ok: bool,
        duration_ms: u64,
    },
    /// `tool_denied {"tool", "arguments", "reason"}`: a tool call was refused and the run
    /// went on. `arguments` is the call's raw argument text, truncated.
    ToolDenied {
        tool: String,
        arguments: String,
        reason: String,
    },
    /// `policy_violation {"tool", "arguments", "reason"}`: a tool call broke policy and the
    /// run halts. `arguments` as in [`AuditEvent::ToolDenied`].
    PolicyViolation {
        tool: String,
        arguments: String,
        reason: String,
    },
    /// `merged {"tested", "merge_commit", "requester", "approver"}`: a person's approval
    /// merged the tested commit.
    Merged {
        #[serde(rename = "tested")]
        tested_sha: String,
        merge_commit: String,
        requester: String,
        approver: String,
    },
    /// `merge {"decision", "tested", "merge_commit", "method"}`: the blueprint merged on its
    /// own; `decision` is always `auto_merge`.
    #[serde(rename = "merge")]
    AutoMerged {
        decision: Decision,
        #[serde(rename = "tested")]
        tested_sha: String,
        merge_commit: String,
        method: MergeMethod,
    },
    /// `merge_failed {"error"}`: the forge refused or failed the merge.
    MergeFailed { error: String },
    /// `merge_refused {"reason"}`: an approval did not pass the checks before a merge.
    MergeRefused { reason: String },
    /// `revert_requested {"revert_task", "merge_commit"}`: a revert task was queued for the
    /// merged commit (on the merged task).
    RevertRequested {
        revert_task: String,
        merge_commit: String,
    },
    /// `rerun {"revision"}`: the task's current revision was queued again.
    Rerun { revision: u32 },
    /// `cancel_requested {}`: a running run was asked to stop.
    CancelRequested {},
    /// `closed {"pr_closed", "error"}`: the task was closed; `pr_closed` is what the forge
    /// closed, `error` why closing the PR failed.
    Closed {
        pr_closed: Option<String>,
        error: Option<String>,
    },
    /// `slack_task_created {"channel", "ts", "repo"}`: a mention created a task.
    SlackTaskCreated {
        channel: String,
        ts: String,
        repo: String,
    },
    /// `task_refused {"reason", "repo", "channel", "ts"}`: a mention asking for a new task
    /// on `repo` in `channel` was refused (`crate::access`) and started nothing; the actor is
    /// who asked. Stored without a task ID (no task exists).
    TaskRefused {
        reason: RefusalReason,
        repo: String,
        channel: String,
        ts: String,
    },
    /// `slack_revision {"revision", "ts"}`: a thread reply queued a new revision.
    SlackRevision { revision: u32, ts: String },
    /// `slack_report {"ts", "decision"}`: a run's report was posted as message `ts`.
    SlackReport { ts: String, decision: Decision },
    /// `slack_reaction {"reaction", "message_ts"}`: someone reacted (✅ ❌ 🔁 ↩) to one of
    /// our messages; `reaction` is Slack's name without colons.
    SlackReaction {
        reaction: String,
        message_ts: String,
    },
}

/// Where a secret was found, as `secret_found` stores it: `{"rule", "path", "line"}`. The
/// secret itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretFinding {
    /// The scanner rule that matched.
    pub rule: String,
    pub path: String,
    /// Line number in the new file.
    pub line: usize,
}

impl AuditEvent {
    /// The stored `action` spelling, e.g. `merged` (for logging before the event is moved;
    /// the store takes the spelling from serde, and a test keeps the two equal).
    pub fn action(&self) -> &'static str {
        match self {
            Self::RunStarted { .. } => "run_started",
            Self::NodeFinished { .. } => "node_finished",
            Self::Decision { .. } => "decision",
            Self::RunFailed { .. } => "run_failed",
            Self::RunCancelled { .. } => "run_cancelled",
            Self::RunInterrupted { .. } => "run_interrupted",
            Self::Push { .. } => "push",
            Self::PrOpened { .. } => "pr_opened",
            Self::Ci { .. } => "ci",
            Self::SecretFound { .. } => "secret_found",
            Self::ToolCall { .. } => "tool_call",
            Self::ToolDenied { .. } => "tool_denied",
            Self::PolicyViolation { .. } => "policy_violation",
            Self::Merged { .. } => "merged",
            Self::AutoMerged { .. } => "merge",
            Self::MergeFailed { .. } => "merge_failed",
            Self::MergeRefused { .. } => "merge_refused",
            Self::RevertRequested { .. } => "revert_requested",
            Self::Rerun { .. } => "rerun",
            Self::CancelRequested {} => "cancel_requested",
            Self::Closed { .. } => "closed",
            Self::SlackTaskCreated { .. } => "slack_task_created",
            Self::TaskRefused { .. } => "task_refused",
            Self::SlackRevision { .. } => "slack_revision",
            Self::SlackReport { .. } => "slack_report",
            Self::SlackReaction { .. } => "slack_reaction",
        }
    }

    /// The stored `(action, detail)` pair: serde's tag and content. Fails (with
    /// [`StoreError::Encode`]) only if a field cannot be expressed as JSON, which none of ours
    /// can; the store reports it rather than writing a wrong entry.
    pub(super) fn into_parts(self) -> super::Result<(String, serde_json::Value)> {
        self.tag_and_content().map_err(|source| StoreError::Encode {
            what: "audit event".to_string(),
            source,
        })
    }

    fn tag_and_content(self) -> Result<(String, serde_json::Value), serde_json::Error> {
        use serde::de::Error as _;
        let serde_json::Value::Object(mut tagged) = serde_json::to_value(self)? else {
            return Err(serde_json::Error::custom(
                "an audit event is not a JSON object",
            ));
        };
        let action = match tagged.remove("action") {
            Some(serde_json::Value::String(a)) => a,
            _ => return Err(serde_json::Error::custom("an audit event has no action")),
        };
        let detail = tagged
            .remove("detail")
            .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
        Ok((action, detail))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::store::{RunLog, Store};

    /// Every variant with the `action` and `detail` its call site wrote before the enum, as
    /// the `json!` it used (the old spellings, from the call sites at the last string-typed
    /// commit).
    fn every_variant() -> Vec<(AuditEvent, &'static str, Value)> {
        let sha = "a".repeat(40);
        let merge_commit = "b".repeat(40);
        let pr = Some("https://github.com/o/n/pull/7".to_string());
        let none: Option<String> = None;
        vec![
            (
                AuditEvent::RunStarted {
                    revision: 2,
                    branch: "slipway/fix-add".into(),
                    blueprint: BlueprintId::CodeChange,
                },
                "run_started",
                json!({"revision": 2u32, "branch": "slipway/fix-add", "blueprint": BlueprintId::CodeChange.as_str()}),
            ),
            (
                AuditEvent::NodeFinished {
                    node: "sandbox_gates".into(),
                    kind: "deterministic".into(),
                    ok: true,
                    duration_ms: 12,
                },
                "node_finished",
                json!({"node": "sandbox_gates", "kind": "deterministic", "ok": true, "duration_ms": 12u64}),
            ),
            (
                AuditEvent::Decision {
                    decision: Decision::NeedsApproval,
                    reasons: vec!["tests: changed".into()],
                },
                "decision",
                json!({"decision": Decision::NeedsApproval, "reasons": ["tests: changed"]}),
            ),
            (
                AuditEvent::RunFailed {
                    error: "boom".into(),
                },
                "run_failed",
                json!({"error": "boom"}),
            ),
            (
                AuditEvent::RunCancelled {
                    error: "cancelled".into(),
                },
                "run_cancelled",
                json!({"error": "cancelled"}),
            ),
            (
                AuditEvent::RunInterrupted { rerun: true },
                "run_interrupted",
                json!({"rerun": true}),
            ),
            (
                AuditEvent::Push {
                    branch: "slipway/fix-add".into(),
                    commit: Some(sha.clone()),
                    to: "origin".into(),
                },
                "push",
                json!({"branch": "slipway/fix-add", "commit": Some(&sha), "to": "origin"}),
            ),
            (
                AuditEvent::Push {
                    branch: "b".into(),
                    commit: None,
                    to: "/tmp/x".into(),
                },
                "push",
                json!({"branch": "b", "commit": none, "to": "/tmp/x"}),
            ),
            (
                AuditEvent::PrOpened { pr: pr.clone() },
                "pr_opened",
                json!({"pr": pr}),
            ),
            (
                AuditEvent::PrOpened { pr: None },
                "pr_opened",
                json!({"pr": none}),
            ),
            (
                AuditEvent::Ci {
                    commit: sha.clone(),
                    status: GateStatus::Warn,
                    detail: "timed out".into(),
                },
                "ci",
                json!({"commit": sha, "status": GateStatus::Warn, "detail": "timed out"}),
            ),
            (
                AuditEvent::SecretFound {
                    findings: vec![SecretFinding {
                        rule: "aws_access_key".into(),
                        path: "src/x.py".into(),
                        line: 3,
                    }],
                },
                "secret_found",
                json!({"findings": [json!({"rule": "aws_access_key", "path": "src/x.py", "line": 3usize})]}),
            ),
            (
                AuditEvent::ToolCall {
                    tool: "read_file".into(),
                    ok: false,
                    duration_ms: 4,
                },
                "tool_call",
                json!({"tool": "read_file", "ok": false, "duration_ms": 4u64}),
            ),
            (
                AuditEvent::ToolDenied {
                    tool: "run".into(),
                    arguments: r#"{"cmd":"git push"}"#.into(),
                    reason: "refused by policy".into(),
                },
                "tool_denied",
                json!({"tool": "run", "arguments": r#"{"cmd":"git push"}"#, "reason": "refused by policy"}),
            ),
            (
                AuditEvent::PolicyViolation {
                    tool: "run".into(),
                    arguments: "{}".into(),
                    reason: "network tool".into(),
                },
                "policy_violation",
                json!({"tool": "run", "arguments": "{}", "reason": "network tool"}),
            ),
            (
                AuditEvent::Merged {
                    tested_sha: sha.clone(),
                    merge_commit: merge_commit.clone(),
                    requester: "U0ALICE".into(),
                    approver: "U0BOB".into(),
                },
                "merged",
                json!({"tested": sha, "merge_commit": merge_commit, "requester": "U0ALICE", "approver": "U0BOB"}),
            ),
            (
                AuditEvent::AutoMerged {
                    decision: Decision::AutoMerge,
                    tested_sha: sha.clone(),
                    merge_commit: merge_commit.clone(),
                    method: MergeMethod::Squash,
                },
                "merge",
                json!({"decision": "auto_merge", "tested": sha, "merge_commit": merge_commit, "method": MergeMethod::Squash}),
            ),
            (
                AuditEvent::MergeFailed {
                    error: "no merge today".into(),
                },
                "merge_failed",
                json!({"error": "no merge today"}),
            ),
            (
                AuditEvent::MergeRefused {
                    reason: "it is merged already.".into(),
                },
                "merge_refused",
                json!({"reason": "it is merged already."}),
            ),
            (
                AuditEvent::RevertRequested {
                    revert_task: "t2".into(),
                    merge_commit: merge_commit.clone(),
                },
                "revert_requested",
                json!({"revert_task": "t2", "merge_commit": merge_commit}),
            ),
            (
                AuditEvent::Rerun { revision: 3 },
                "rerun",
                json!({"revision": 3u32}),
            ),
            (
                AuditEvent::CancelRequested {},
                "cancel_requested",
                json!({}),
            ),
            (
                AuditEvent::Closed {
                    pr_closed: pr.clone(),
                    error: None,
                },
                "closed",
                json!({"pr_closed": pr, "error": none}),
            ),
            (
                AuditEvent::Closed {
                    pr_closed: None,
                    error: Some("forge down".into()),
                },
                "closed",
                json!({"pr_closed": none, "error": Some("forge down")}),
            ),
            (
                AuditEvent::SlackTaskCreated {
                    channel: "C0DEV".into(),
                    ts: "1700000000.000100".into(),
                    repo: "o/n".into(),
                },
                "slack_task_created",
                json!({"channel": "C0DEV", "ts": "1700000000.000100", "repo": "o/n"}),
            ),
            (
                AuditEvent::TaskRefused {
                    reason: RefusalReason::RateLimit,
                    repo: "o/n".into(),
                    channel: "D0DM".into(),
                    ts: "1700000000.000100".into(),
                },
                "task_refused",
                json!({"reason": "rate_limit", "repo": "o/n", "channel": "D0DM", "ts": "1700000000.000100"}),
            ),
            (
                AuditEvent::SlackRevision {
                    revision: 2,
                    ts: "1700000000.000200".into(),
                },
                "slack_revision",
                json!({"revision": 2u32, "ts": "1700000000.000200"}),
            ),
            (
                AuditEvent::SlackReport {
                    ts: "1700000000.000300".into(),
                    decision: Decision::Halt,
                },
                "slack_report",
                json!({"ts": "1700000000.000300", "decision": Decision::Halt}),
            ),
            (
                AuditEvent::SlackReaction {
                    reaction: "white_check_mark".into(),
                    message_ts: "1700000000.000300".into(),
                },
                "slack_reaction",
                json!({"reaction": "white_check_mark", "message_ts": "1700000000.000300"}),
            ),
        ]
    }

    #[test]
    fn every_variant_is_stored_with_its_historical_action_and_detail() {
        let cases = every_variant();
        // One case at least per variant (`action()` is exhaustive, so a new variant
        // without a case shows up as a missing spelling here).
        let spellings: std::collections::BTreeSet<_> = cases.iter().map(|c| c.1).collect();
        assert_eq!(spellings.len(), 26, "{spellings:?}");
        for (event, action, detail) in cases {
            assert_eq!(event.action(), action, "action() agrees with serde");
            let (stored_action, stored_detail) = event.clone().into_parts().unwrap();
            assert_eq!(stored_action, action);
            assert_eq!(
                stored_detail.to_string(),
                detail.to_string(),
                "{action}: byte for byte"
            );
            let back: AuditEvent =
                serde_json::from_value(json!({"action": action, "detail": detail})).unwrap();
            assert_eq!(back, event, "{action}: readable back");
        }
    }

    #[tokio::test]
    async fn events_round_trip_through_the_store_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let log = RunLog::new(store.clone(), "t1", "r1", vec![]);
        let cases = every_variant();
        for (i, (event, _, _)) in cases.iter().enumerate() {
            if i % 2 == 0 {
                store
                    .audit_now(Some("t1"), None, "U0ALICE", event.clone())
                    .await
                    .unwrap();
            } else {
                log.audit("slipway", event.clone()).await.unwrap();
            }
        }
        store
            .audit_now(Some("t2"), None, "U0BOB", AuditEvent::CancelRequested {})
            .await
            .unwrap();
        let records = store.audit_log(Some("t1")).unwrap();
        assert_eq!(records.len(), cases.len());
        for (i, (record, (event, action, detail))) in records.iter().zip(cases).enumerate() {
            assert_eq!(record.action, action);
            assert_eq!(record.detail, detail);
            assert_eq!(record.task_id.as_deref(), Some("t1"));
            let (run_id, actor) = if i % 2 == 0 {
                (None, "U0ALICE")
            } else {
                (Some("r1"), "slipway")
            };
            assert_eq!(record.run_id.as_deref(), run_id);
            assert_eq!(record.actor, actor);
            let back: AuditEvent =
                serde_json::from_value(json!({"action": record.action, "detail": record.detail}))
                    .unwrap();
            assert_eq!(back, event);
        }
        // The stored value: the versioned envelope around the record's shape.
        let raw = store.audit.iter().next().unwrap().unwrap().1;
        let v: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(v["v"], 1);
        assert_eq!(v["data"]["action"], "run_started");
        assert_eq!(v["data"]["detail"]["blueprint"], "code_change");
        assert_eq!(store.audit_log(None).unwrap().len(), records.len() + 1);
    }

    #[tokio::test]
    async fn a_run_log_redacts_secrets_from_the_detail() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let log = RunLog::new(store.clone(), "t1", "r1", vec!["hunter2-token".into()]);
        log.audit(
            "agent",
            AuditEvent::ToolDenied {
                tool: "run".into(),
                arguments: r#"{"cmd":"curl -H 'x: hunter2-token'"}"#.into(),
                reason: "network tool".into(),
            },
        )
        .await
        .unwrap();
        let records = store.audit_log(Some("t1")).unwrap();
        assert_eq!(records[0].action, "tool_denied");
        assert_eq!(
            records[0].detail["arguments"],
            r#"{"cmd":"curl -H 'x: <redacted>'"}"#
        );
        assert!(!records[0].detail.to_string().contains("hunter2"));
    }
}
