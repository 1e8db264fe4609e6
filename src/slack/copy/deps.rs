//! What the thread says about dependency updates.

use super::quoted;
use crate::actions::deps::GroupTask;
use crate::deps::plan::Plan;
use crate::task::Task;

/// Held-back lines shown in Slack, at most.
const MAX_HELD: usize = 8;

/// A dependency request where this bot was not given what the lookups need.
pub const DEPS_UNAVAILABLE: &str = "Dependency updates are not enabled on this slipway: an operator wires the dependency planner into `slipway serve`.";

/// The request routed to `dependency_update`; the lookup starts.
pub fn deps_looking(repo: &str, why: &str) -> String {
    format!(
        "🔎 Looking up dependency updates for `{repo}`: routed to `dependency_update` because {why}. The bumps are made with the ecosystems' own tools; the agent runs only if a bump breaks the checks."
    )
}

/// The lookup failed (a manifest, `renovate.json`, the registry).
pub fn deps_failed(repo: &str, error: &dyn std::fmt::Display) -> String {
    format!(
        "❌ I could not look up dependency updates for `{repo}`: {}. Nothing was started.",
        quoted(error)
    )
}

fn held_lines(plan: &Plan) -> String {
    let mut s = String::new();
    for k in plan.skipped.iter().take(MAX_HELD) {
        s.push_str(&format!(
            "\n• held back `{}` {}: {}",
            k.name,
            k.version,
            quoted(&k.reason)
        ));
    }
    if plan.skipped.len() > MAX_HELD {
        s.push_str(&format!("\n• … and {} more", plan.skipped.len() - MAX_HELD));
    }
    for w in plan.warnings.iter().take(MAX_HELD) {
        s.push_str(&format!("\n• ⚠️ {}", quoted(w)));
    }
    s
}

/// Nothing to update.
pub fn deps_nothing(repo: &str, plan: &Plan) -> String {
    format!(
        "✅ Nothing to update in `{repo}`: every dependency asked for is at its newest allowed version.{}",
        held_lines(plan)
    )
}

/// The plan: one line per group, and what was held back.
pub fn deps_planned(groups: &[GroupTask], plan: &Plan) -> String {
    let mut s = format!("📦 {} update group(s), one PR each:", groups.len());
    for (i, g) in groups.iter().enumerate() {
        let line = match g {
            GroupTask::New(t) if i == 0 => format!("{} (in this thread)", t.title()),
            GroupTask::New(t) => format!("{} (in a new thread)", t.title()),
            GroupTask::Open { task, .. } => format!(
                "{} (already task `{}`: rerun on its branch and PR)",
                task.title(),
                task.id
            ),
        };
        s.push_str(&format!("\n• {}", quoted(&line)));
    }
    s.push_str(&held_lines(plan));
    s
}

/// The top-level message that opens a group's own thread.
pub fn deps_group_thread(task: &Task, asked_in: Option<&str>) -> String {
    let link = asked_in
        .map(|u| format!(" (asked for <{u}|here>)"))
        .unwrap_or_default();
    format!(
        "📦 Dependency update for `{}`: {}{link}",
        task.repo.name,
        quoted(&task.title())
    )
}
