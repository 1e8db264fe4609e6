//! The ranking and the choice: lexical score, explicit mentions, repo signals and server
//! evidence, then the blueprint's built-ins, the destructive-tool policy, near-duplicates
//! and k.
//!
//! Owns [`Index::select`]; it must not change the index.

use std::collections::HashMap;

use super::{Index, Pick, Request, Selection};
use crate::tools::registry::ToolEntry;
use crate::tools::text::{query_terms, terms};

/// Query terms kept from a request (bounds the cost of a huge task text).
const MAX_QUERY_TERMS: usize = 256;
/// Boosts.
const TOOL_MENTION: f64 = 12.0;
const SERVER_MENTION: f64 = 4.0;
const SERVER_EVIDENCE: f64 = 0.3;
const REPO_SIGNAL: f64 = 0.75;
const CONTEXT_WEIGHT: f64 = 0.3;
/// A candidate must reach this share of the best score to be offered.
const MIN_SHARE: f64 = 0.05;

impl Index<'_> {
    /// Ranks the registry for `req` and selects at most `req.k` tools.
    pub fn select(&self, req: &Request<'_>) -> Selection {
        let entries = self.registry.entries();
        let mut q = query_terms(req.task, MAX_QUERY_TERMS);
        for (t, w) in query_terms(req.context, MAX_QUERY_TERMS / 2) {
            if !q.iter().any(|(x, _)| *x == t) {
                q.push((t, w * CONTEXT_WEIGHT));
            }
        }
        let lexical = self.bm25(&q);
        let raw = req.task.to_lowercase();
        let query_words: std::collections::HashSet<String> = raw
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '-')
            .map(str::to_owned)
            .collect();
        let mut scores: Vec<(f64, Vec<String>)> = lexical
            .into_iter()
            .map(|(s, matched)| {
                let ev = if matched.is_empty() {
                    vec![]
                } else {
                    vec![format!("bm25 {s:.2} on {}", matched.join(", "))]
                };
                (s, ev)
            })
            .collect();
        // Explicit mentions.
        for (i, e) in entries.iter().enumerate() {
            let named = ((e.name.contains('_') || e.name.contains('-'))
                && query_words.contains(&e.name.to_lowercase()))
                || (e.original.contains('_') && query_words.contains(&e.original.to_lowercase()));
            if named {
                scores[i].0 += TOOL_MENTION;
                scores[i].1.push(format!(
                    "tool {} named in the task (+{TOOL_MENTION})",
                    e.original
                ));
            }
        }
        let mut mentioned_servers: Vec<String> = Vec::new();
        for (word, servers) in &self.server_words {
            if query_words.contains(word) {
                mentioned_servers.extend(servers.iter().cloned());
            }
        }
        for (i, e) in entries.iter().enumerate() {
            if let Some(s) = &e.server
                && mentioned_servers.contains(s)
            {
                scores[i].0 += SERVER_MENTION;
                scores[i]
                    .1
                    .push(format!("server {s} named in the task (+{SERVER_MENTION})"));
            }
        }
        // Repo signals.
        if let Some(repo) = req.repo {
            for (why, word) in repo.hints() {
                if let Some(servers) = self.server_words.get(word) {
                    for (i, e) in entries.iter().enumerate() {
                        if e.server.as_ref().is_some_and(|s| servers.contains(s))
                            && scores[i].0 > 0.0
                        {
                            scores[i].0 += REPO_SIGNAL;
                            scores[i].1.push(format!("{why} (+{REPO_SIGNAL})"));
                        }
                    }
                }
            }
        }
        // Server-level evidence.
        let mut best: HashMap<&str, f64> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            if let Some(s) = e.server.as_deref() {
                let b = best.entry(s).or_default();
                *b = b.max(scores[i].0);
            }
        }
        for (i, e) in entries.iter().enumerate() {
            if let Some(s) = e.server.as_deref()
                && scores[i].0 > 0.0
            {
                let bonus = SERVER_EVIDENCE * best.get(s).copied().unwrap_or(0.0);
                if bonus > 0.01 {
                    scores[i].0 += bonus;
                    scores[i]
                        .1
                        .push(format!("server {s} is relevant (+{bonus:.2})"));
                }
            }
        }

        let mut order: Vec<usize> = (0..entries.len()).collect();
        order.sort_by(|&a, &b| {
            scores[b]
                .0
                .total_cmp(&scores[a].0)
                .then_with(|| entries[a].name.cmp(&entries[b].name))
        });
        let top = order.first().map(|&i| scores[i].0).unwrap_or(0.0);
        let mut sel = Selection::default();
        let mut chosen: Vec<usize> = Vec::new();
        for &name in req.always {
            if let Some(i) = entries.iter().position(|e| e.name == name) {
                chosen.push(i);
                scores[i].1.insert(0, "always included (blueprint)".into());
            }
        }
        let slots = req.k.saturating_sub(chosen.len());
        let mut taken = 0;
        for i in order {
            if taken >= slots {
                break;
            }
            let e = &entries[i];
            if chosen.contains(&i) || scores[i].0 <= 0.0 || scores[i].0 < top * MIN_SHARE {
                continue;
            }
            if let Some(ok) = req.callable
                && !ok(e)
            {
                sel.withheld
                    .push((e.name.clone(), "no live server provides it".into()));
                continue;
            }
            if e.withheld_by_default() && !req.allow_destructive {
                let why = if e.is_destructive() {
                    "destructive (destructiveHint) and policy does not allow destructive tools"
                } else {
                    "host-side and not marked readOnlyHint: it may write with credentials; allow with [prefetch] allow_destructive"
                };
                sel.withheld.push((e.name.clone(), why.into()));
                continue;
            }
            let named = scores[i].1.iter().any(|x| x.contains("named in the task"));
            if !named
                && let Some(&twin) = chosen.iter().find(|&&j| {
                    entries[j].server.is_some()
                        && entries[j].server != e.server
                        && near_duplicate(&entries[j], e)
                })
            {
                sel.withheld.push((
                    e.name.clone(),
                    format!("near-duplicate of {}", entries[twin].name),
                ));
                continue;
            }
            chosen.push(i);
            taken += 1;
        }
        chosen.sort_by(|&a, &b| {
            scores[b]
                .0
                .total_cmp(&scores[a].0)
                .then_with(|| entries[a].name.cmp(&entries[b].name))
        });
        sel.picks = chosen
            .into_iter()
            .map(|i| Pick {
                name: entries[i].name.clone(),
                server: entries[i].server.clone(),
                score: (scores[i].0 * 100.0).round() / 100.0,
                evidence: std::mem::take(&mut scores[i].1),
            })
            .collect();
        sel
    }
}

/// Same tool on two servers: the same name, or nearly the same description words.
fn near_duplicate(a: &ToolEntry, b: &ToolEntry) -> bool {
    let ta: std::collections::BTreeSet<String> = terms(&a.description).into_iter().collect();
    let tb: std::collections::BTreeSet<String> = terms(&b.description).into_iter().collect();
    if ta.is_empty() || tb.is_empty() {
        return a.original == b.original && ta.is_empty() && tb.is_empty();
    }
    let inter = ta.intersection(&tb).count() as f64;
    let union = ta.union(&tb).count() as f64;
    let similarity = inter / union;
    // The same name only makes a duplicate when the descriptions agree too: GitHub's and
    // Buildkite's `get_job_logs` are different products.
    (a.original == b.original && similarity >= 0.5)
        || (ta.len() >= 4 && tb.len() >= 4 && similarity >= 0.8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::registry::{RawTool, Registry, ServerTools, ToolSource};
    use serde_json::json;

    fn raw(name: &str, desc: &str) -> RawTool {
        RawTool {
            name: name.into(),
            description: desc.into(),
            input_schema: json!({"type": "object"}),
            read_only: None,
            destructive: None,
        }
    }

    fn registry() -> Registry {
        Registry::load(
            &[],
            vec![
                ServerTools {
                    server: "github".into(),
                    source: ToolSource::Live,
                    host_side: false,
                    tools: vec![
                        raw(
                            "create_pull_request",
                            "Open a new pull request in a repository",
                        ),
                        raw("list_issues", "List issues in a repository"),
                        RawTool {
                            destructive: Some(true),
                            ..raw("delete_repository", "Delete a repository")
                        },
                    ],
                },
                ServerTools {
                    server: "sentry-remote".into(),
                    source: ToolSource::Live,
                    host_side: false,
                    tools: vec![raw(
                        "get_issue_details",
                        "Get details of a Sentry error issue with its stack trace",
                    )],
                },
                ServerTools {
                    server: "fs-one".into(),
                    source: ToolSource::Live,
                    host_side: false,
                    tools: vec![raw("move_file", "Move or rename a file in the file system")],
                },
                ServerTools {
                    server: "fs-two".into(),
                    source: ToolSource::Live,
                    host_side: false,
                    tools: vec![raw("move_file", "Move or rename a file in the file system")],
                },
            ],
        )
    }

    fn select(task: &str, allow_destructive: bool) -> Selection {
        let r = registry();
        let idx = Index::new(&r);
        idx.select(&Request {
            task,
            k: 9,
            always: &["read_file", "finish"],
            allow_destructive,
            ..Default::default()
        })
    }

    #[test]
    fn the_right_tools_rank_first_with_evidence() {
        let s = select("open a PR for the fix", false);
        let first_mcp = s.picks.iter().find(|p| p.server.is_some()).unwrap();
        assert_eq!(first_mcp.name, "create_pull_request");
        assert!(first_mcp.evidence.iter().any(|e| e.starts_with("bm25")));
        assert!(s.names().contains(&"finish".to_string()), "always included");
        let s = select(
            "sentry says prod is crashing, look at the latest issue",
            false,
        );
        let p = s
            .picks
            .iter()
            .find(|p| p.name == "get_issue_details")
            .unwrap();
        assert!(
            p.evidence
                .iter()
                .any(|e| e.contains("server sentry-remote named")),
            "{:?}",
            p.evidence
        );
    }

    #[test]
    fn destructive_tools_are_withheld_unless_allowed() {
        let s = select("delete the old repository", false);
        assert!(!s.names().contains(&"delete_repository".to_string()));
        assert!(
            s.withheld
                .iter()
                .any(|(n, why)| n == "delete_repository" && why.contains("destructive"))
        );
        assert!(
            select("delete the old repository", true)
                .names()
                .contains(&"delete_repository".to_string())
        );
    }

    #[test]
    fn near_duplicates_from_two_servers_are_offered_once() {
        let s = select("rename the config file", false);
        let moves: Vec<String> = s
            .names()
            .into_iter()
            .filter(|n| n.ends_with("move_file"))
            .collect();
        assert_eq!(moves.len(), 1, "{:?}", s.names());
        assert!(
            s.withheld
                .iter()
                .any(|(_, why)| why.contains("near-duplicate"))
        );
    }

    #[test]
    fn ranking_is_deterministic_and_bounded() {
        let a = select("list the issues and open a pull request", false);
        let b = select("list the issues and open a pull request", false);
        assert_eq!(a.picks, b.picks);
        assert!(a.picks.len() <= 9);
        let empty = select("", false);
        assert_eq!(
            empty.names(),
            vec!["finish".to_string(), "read_file".to_string()]
        );
        // A huge task is cut to its first query terms, not refused.
        let huge = format!(
            "open a pull request {}",
            "lorem ipsum dolor ".repeat(100_000)
        );
        assert!(
            select(&huge, false)
                .names()
                .contains(&"create_pull_request".to_string())
        );
    }
}
