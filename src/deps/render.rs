//! The dependency part of a `dependency_update` PR body: the updates table (package, from,
//! to, update type, release age, changelog link), the release notes collapsed, what the
//! agent changed apart from the bump, and what was held back. Registry text is untrusted:
//! every cell is escaped (`crate::untrusted`), notes are fenced, and a link is kept only when
//! it is a plain `https://` URL.

use super::{DepsRun, Update};
use crate::untrusted::{markdown_block, markdown_code, markdown_inline};

/// Milliseconds per day.
const DAY_MS: u64 = 86_400_000;
/// Bytes of release notes one PR body carries at most.
const NOTES_BUDGET: usize = 24 * 1024;
/// GitHub's limit on a PR body, in characters (a longer one is refused with 422).
pub const GITHUB_BODY_MAX: usize = 65_536;

/// A registry-given URL, kept only when it is a plain `https://` link with no character
/// that could end a Markdown link early.
fn safe_url(url: &str) -> Option<&str> {
    (url.starts_with("https://")
        && url.len() < 500
        && !url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "()<>[]\"'`\\".contains(c)))
    .then_some(url)
}

/// `3 days`, `5 hours`, or `unknown`.
pub fn age(released_ms: Option<u64>, now_ms: u64) -> String {
    match released_ms {
        None => "unknown".into(),
        Some(t) => {
            let ms = now_ms.saturating_sub(t);
            match ms / DAY_MS {
                0 => format!("{} hours", ms / 3_600_000),
                1 => "1 day".into(),
                d => format!("{d} days"),
            }
        }
    }
}

fn row(u: &Update, now_ms: u64) -> String {
    let link = u
        .changelog_url
        .as_deref()
        .and_then(safe_url)
        .map_or_else(|| "—".to_string(), |l| format!("[changelog]({l})"));
    let security = u
        .advisory
        .as_ref()
        .map(|a| format!(" · fixes {}", markdown_inline(&a.id, true)))
        .unwrap_or_default();
    format!(
        "| {} ({}) | {} | {} | {}{security} | {} | {link} |\n",
        markdown_inline(&u.dep.name, true),
        u.dep.ecosystem,
        markdown_inline(&u.dep.current, true),
        markdown_inline(&u.to, true),
        u.update_type.as_str(),
        age(u.released_ms, now_ms),
    )
}

/// The Markdown section for `run` (placed before the gate report), at `now_ms`.
/// `agent_summary` is the agent's `finish` summary when it ran.
pub fn pr_section(run: &DepsRun, agent_summary: Option<&str>, now_ms: u64) -> String {
    let mut s = String::from("## Dependency updates\n\n");
    for u in run.updates() {
        if let Some(a) = &u.advisory {
            s.push_str(&format!(
                "> **Security patch:** {} — {} (fixed in {})\n\n",
                markdown_inline(&a.id, false),
                markdown_inline(&a.summary, false),
                markdown_inline(&a.fixed, false)
            ));
        }
    }
    s.push_str("| Package | From | To | Update | Release age | Changelog |\n");
    s.push_str("|---|---|---|---|---|---|\n");
    for u in run.updates() {
        s.push_str(&row(u, now_ms));
    }
    s.push('\n');
    let mut notes_left = NOTES_BUDGET;
    for n in &run.notes {
        if let Some(text) = &n.excerpt {
            if notes_left < text.len().min(4096) {
                s.push_str(&format!(
                    "(more release notes left out: the PR body stays under GitHub's {GITHUB_BODY_MAX} characters)\n\n"
                ));
                break;
            }
            notes_left -= text.len().min(4096);
            s.push_str(&format!(
                "<details><summary>Release notes: {} {} → {}</summary>\n\n{}\n</details>\n\n",
                markdown_inline(&n.name, false),
                markdown_inline(&n.from, false),
                markdown_inline(&n.to, false),
                markdown_block(&crate::text::cap_bytes(text, 4096))
            ));
        }
    }
    s.push_str("### What the agent changed\n\n");
    if run.agent_files.is_empty() {
        s.push_str("Nothing: the bump alone passes the checks (no model calls).\n\n");
    } else {
        s.push_str(
            "The bump broke the checks; after it, in a separate commit, the agent changed:\n\n",
        );
        for f in &run.agent_files {
            s.push_str(&format!("- {}\n", markdown_code(f)));
        }
        if let Some(summary) = agent_summary {
            s.push_str(&format!("\n{}\n", markdown_block(summary)));
        }
        s.push('\n');
    }
    if !run.skipped.is_empty() {
        s.push_str("### Held back\n\n");
        for k in &run.skipped {
            s.push_str(&format!(
                "- {} {}: {}\n",
                markdown_code(&k.name),
                markdown_inline(&k.version, false),
                markdown_inline(&k.reason, false)
            ));
        }
        s.push('\n');
    }
    if !run.warnings.is_empty() {
        s.push_str("### Warnings\n\n");
        for w in &run.warnings {
            s.push_str(&format!("- {}\n", markdown_inline(w, false)));
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deps::{Dependency, Ecosystem, Group, ReleaseNotes, UpdateType};

    #[test]
    fn the_table_escapes_registry_text_and_keeps_only_plain_https_links() {
        let u = Update {
            dep: Dependency {
                name: "evil|<img src=x>".into(),
                ecosystem: Ecosystem::Npm,
                current: "1.0.0".into(),
                requirement: None,
                manifest: "package.json".into(),
                lockfile: None,
                dev: false,
                indirect: false,
            },
            to: "2.0.0".into(),
            update_type: UpdateType::Major,
            released_ms: Some(0),
            changelog_url: Some("javascript:alert(1)".into()),
            advisory: None,
        };
        let run = DepsRun {
            group: Some(Group {
                slug: "x".into(),
                title: "x".into(),
                updates: vec![u.clone()],
                automerge: None,
            }),
            notes: vec![ReleaseNotes {
                name: "evil".into(),
                from: "1.0.0".into(),
                to: "2.0.0".into(),
                excerpt: Some("```\n<script>alert(1)</script>".into()),
            }],
            ..Default::default()
        };
        let md = pr_section(&run, None, 3 * DAY_MS);
        assert!(md.contains("| major | 3 days | — |"), "{md}");
        assert!(!md.contains("javascript:"), "{md}");
        assert!(!md.contains("<img"), "{md}");
        assert!(md.contains("````text\n```\n<script>"), "{md}");
        assert!(md.contains("Nothing: the bump alone passes the checks"));
        let mut good = u;
        good.changelog_url = Some("https://github.com/a/b/compare/v1.0.0...v2.0.0".into());
        assert!(
            row(&good, 0).contains("[changelog](https://github.com/a/b/compare/v1.0.0...v2.0.0)")
        );
    }
}
