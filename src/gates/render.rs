//! One gate-report model, three renderings: the JSON contract is the [`RunReport`] itself
//! (serde); [`markdown`] is the PR body; [`block_kit`] is the Slack message, with a
//! plain-text fallback in `text` (Slack: `chat.postMessage` shows `text` in notifications and
//! where blocks cannot render).
//!
//! Owns how a report reads; it must not change the report, compute gates or send anything.

use serde_json::{Value, json};

use crate::report::{Decision, GateStatus, RunReport};

fn decision_line(d: Decision) -> &'static str {
    match d {
        Decision::AutoMerge => {
            "Auto-merge: every required gate passed and policy allows this class"
        }
        Decision::NeedsApproval => "Needs approval: react ✅ on the report to merge",
        Decision::Halt => "Halted: not published for merge",
    }
}

fn gate_mark(s: GateStatus) -> &'static str {
    match s {
        GateStatus::Pass => "✅",
        GateStatus::Fail => "❌",
        GateStatus::Warn => "⚠️",
        GateStatus::Skip => "➖",
    }
}

fn status_word(s: GateStatus) -> &'static str {
    match s {
        GateStatus::Pass => "pass",
        GateStatus::Fail => "fail",
        GateStatus::Warn => "warn",
        GateStatus::Skip => "skip",
    }
}

/// Escapes text for a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The PR body: summary, decision and reasons, the gate table, cost and timings, and the
/// tools and tool calls collapsed. `summary` is the agent's; `thread_url` the Slack thread.
pub fn markdown(
    r: &RunReport,
    summary: Option<&str>,
    thread_url: Option<&str>,
    tool_calls: &[(String, bool)],
) -> String {
    let mut md = String::new();
    if let Some(s) = summary {
        md.push_str(&format!("{}\n\n", s.trim()));
    }
    if let Some(u) = thread_url {
        md.push_str(&format!("Requested in [this Slack thread]({u}).\n\n"));
    }
    md.push_str(&format!(
        "**{}** · `{}` · revision {} · {} fix round(s)\n\n",
        decision_line(r.decision),
        r.classification.as_str(),
        r.revision,
        r.fix_rounds
    ));
    for reason in &r.reasons {
        md.push_str(&format!("- {}\n", reason));
    }
    md.push_str("\n| gate | status | detail |\n|---|---|---|\n");
    for g in &r.gates {
        md.push_str(&format!(
            "| {} | {} {} | {} |\n",
            g.name,
            gate_mark(g.status),
            status_word(g.status),
            cell(&g.detail)
        ));
    }
    md.push_str(&format!(
        "\nAgent: {} steps, {} input / {} output tokens, ${:.4}. Time: {} ms total ({} ms agent, {} ms checks). Sandbox: {} (`{}`), network off.\n",
        r.agent.steps,
        r.agent.input_tokens,
        r.agent.output_tokens,
        r.agent.cost_usd,
        r.timings_ms.total,
        r.timings_ms.agent,
        r.timings_ms.checks,
        r.sandbox.backend,
        r.sandbox.image
    ));
    md.push_str(&format!(
        "\n<details><summary>Tools offered ({})</summary>\n\n{}\n</details>\n",
        r.tools.len(),
        r.tools
            .iter()
            .map(|t| format!("`{t}`"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if !tool_calls.is_empty() {
        md.push_str(&format!(
            "\n<details><summary>Tool calls ({})</summary>\n\n",
            tool_calls.len()
        ));
        for (i, (name, ok)) in tool_calls.iter().enumerate() {
            md.push_str(&format!(
                "{}. `{name}`{}\n",
                i + 1,
                if *ok { "" } else { " (error)" }
            ));
        }
        md.push_str("</details>\n");
    }
    md.push_str(&format!(
        "\n<sub>slipway run `{}` · task `{}` · `{}`</sub>\n",
        r.run_id, r.task_id, r.blueprint
    ));
    md
}

/// Plain text for Slack's `text` fallback and terminals.
pub fn plain_text(r: &RunReport) -> String {
    let failing: Vec<&str> = r
        .gates
        .iter()
        .filter(|g| g.status == GateStatus::Fail)
        .map(|g| g.name.as_str())
        .collect();
    let link = r
        .pr_url
        .clone()
        .unwrap_or_else(|| format!("branch {}", r.branch));
    let mut t = format!(
        "{} · {} · {} · ${:.2}",
        r.decision,
        r.classification.as_str(),
        link,
        r.agent.cost_usd
    );
    if !failing.is_empty() {
        t.push_str(&format!(" · failed: {}", failing.join(", ")));
    }
    t
}

/// Slack Block Kit for the final report: `{"text": fallback, "blocks": [...]}`.
/// Limits (Slack: section text ≤ 3000 chars, ≤ 10 fields) are respected by truncation.
pub fn block_kit(r: &RunReport) -> Value {
    let link = match &r.pr_url {
        Some(u) => format!("<{u}|Pull request>"),
        None => format!("Branch `{}`", r.branch),
    };
    let gates: String = r
        .gates
        .iter()
        .map(|g| {
            format!(
                "{} *{}* {}",
                gate_mark(g.status),
                g.name,
                crate::task::truncate_chars(&g.detail, 140)
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let reasons: String = r
        .reasons
        .iter()
        .map(|x| format!("• {x}"))
        .collect::<Vec<_>>()
        .join("\n");
    let tools = r.tools.join(", ");
    // Slack rejects a section with empty text (`invalid_blocks`).
    let or_dash = |s: String| {
        if s.trim().is_empty() {
            "—".to_string()
        } else {
            s
        }
    };
    let (reasons, gates) = (or_dash(reasons), or_dash(gates));
    json!({
        "text": plain_text(r),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": crate::task::truncate_chars(&format!("*{}*\n{link}", decision_line(r.decision)), 3000)}},
            {"type": "section", "fields": [
                {"type": "mrkdwn", "text": format!("*Class*\n`{}`", r.classification.as_str())},
                {"type": "mrkdwn", "text": format!("*Fix rounds*\n{}", r.fix_rounds)},
                {"type": "mrkdwn", "text": format!("*Cost*\n${:.4} ({} steps)", r.agent.cost_usd, r.agent.steps)},
                {"type": "mrkdwn", "text": format!("*Time*\n{:.1} s", r.timings_ms.total as f64 / 1000.0)},
            ]},
            {"type": "section", "text": {"type": "mrkdwn", "text": crate::task::truncate_chars(&reasons, 3000)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": crate::task::truncate_chars(&gates, 3000)}},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": crate::task::truncate_chars(&format!("Tools: {tools} · sandbox {} · run `{}`", r.sandbox.backend, r.run_id), 3000)},
            ]},
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::*;

    fn report() -> RunReport {
        RunReport {
            task_id: "0123456789ab".into(),
            revision: 2,
            run_id: "ba9876543210".into(),
            repo: "acme/calc".into(),
            base: "main".into(),
            branch: "slipway/01234567-fix-add".into(),
            commit: Some("c0ffee".into()),
            pr_url: Some("https://github.com/acme/calc/pull/7".into()),
            blueprint: "code_change".into(),
            decision: Decision::NeedsApproval,
            reasons: vec!["scope: touches review-required path(s): src/auth/login.py".into()],
            classification: Classification::Security,
            gates: vec![
                Gate::new(
                    GateName::Tests,
                    GateStatus::Pass,
                    "`python3 -m unittest` passed",
                ),
                Gate::new(
                    GateName::Scope,
                    GateStatus::Warn,
                    "touches review-required path(s): src/auth/login.py",
                ),
                Gate::new(
                    GateName::Secrets,
                    GateStatus::Pass,
                    "no credentials in 3 added lines",
                ),
                Gate::new(
                    GateName::Coverage,
                    GateStatus::Skip,
                    "no coverage command | none",
                ),
            ],
            tools: vec![
                "read_file".into(),
                "edit_file".into(),
                "run".into(),
                "finish".into(),
            ],
            fix_rounds: 1,
            agent: AgentTotals {
                steps: 6,
                input_tokens: 12000,
                output_tokens: 800,
                cost_usd: 0.048,
            },
            timings_ms: Timings {
                workspace: 30,
                sandbox: 90,
                agent: 4000,
                checks: 600,
                total: 4800,
            },
            sandbox: SandboxInfo {
                backend: "docker".into(),
                image: "slipway-sandbox:local".into(),
                network: false,
            },
        }
    }

    #[test]
    fn the_pr_body_snapshot() {
        let calls = vec![
            ("read_file".to_string(), true),
            ("edit_file".to_string(), false),
            ("finish".to_string(), true),
        ];
        insta::assert_snapshot!(markdown(
            &report(),
            Some("Fixed the `and`/`or` slip in login."),
            Some("https://acme.slack.com/archives/C0DEV/p1700000000000100"),
            &calls
        ));
    }

    #[test]
    fn the_block_kit_snapshot() {
        insta::assert_json_snapshot!(block_kit(&report()));
    }

    #[test]
    fn the_fallback_names_failures() {
        let mut r = report();
        r.decision = Decision::Halt;
        r.gates[0].status = GateStatus::Fail;
        assert!(plain_text(&r).contains("halt") && plain_text(&r).contains("failed: tests"));
    }
}
