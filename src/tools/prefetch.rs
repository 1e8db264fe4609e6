//! Prefetch: the ≤ k tools one run is offered, chosen before the agent starts, by a
//! deterministic ranking whose every point has a reason ([`Pick::evidence`]).
//!
//! Signals, in order of weight:
//! 1. explicit mentions of a tool (its name) or a server (a distinctive word of its name);
//! 2. BM25F over each tool's name (×3), server (×1.5), description (×1), parameter names
//!    (×1), parameter descriptions and enum values (×0.5), nested schemas (`oneOf`, `$defs`)
//!    included; the request's words plus engineering synonyms at half weight, and the
//!    thread's context at 0.3;
//! 3. server-level evidence: tools of one server tend to be needed together, so each tool
//!    gains 0.3 × its server's best score;
//! 4. repo signals: manifests and CI files point at ecosystems (`package.json` → npm,
//!    `pom.xml` → Maven, `.github/workflows` → GitHub, …).
//!
//! Then: the blueprint's built-ins are always in; destructive tools are withheld unless
//! policy allows them; near-identical tools from different servers are kept once; ties
//! break by name, so the ranking is a pure function of its inputs.

use std::collections::HashMap;

use serde::Serialize;

use super::registry::{Registry, ToolEntry};
use super::text::{query_terms, terms};

/// BM25 saturation and length normalisation (the usual defaults).
const K1: f64 = 1.2;
const B: f64 = 0.75;
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

/// Words that appear in server names but say nothing about which server is meant.
const GENERIC_SERVER_WORDS: &[&str] = &[
    "mcp",
    "server",
    "service",
    "remote",
    "tool",
    "tools",
    "the",
    "for",
    "any",
    "up",
    "to",
    "date",
    "code",
    "docs",
    "doc",
    "simple",
    "processing",
    "document",
    "reader",
    "editor",
    "text",
    "file",
    "files",
    "system",
    "types",
    "explorer",
    "dependencies",
    "components",
    "design",
];

/// What the repo looks like, for repo signals.
#[derive(Debug, Clone, Default)]
pub struct RepoSignals {
    /// Top-level file and directory names, plus a few known nested paths that exist.
    pub files: Vec<String>,
}

impl RepoSignals {
    /// Reads signals from a checkout.
    pub fn from_dir(root: &std::path::Path) -> Self {
        let mut files: Vec<String> = std::fs::read_dir(root)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        for nested in [".github/workflows", ".buildkite", "k8s", "helm", "charts"] {
            if root.join(nested).exists() {
                files.push(nested.to_string());
            }
        }
        files.sort();
        Self { files }
    }

    /// (evidence, server-name word) pairs this repo suggests.
    fn hints(&self) -> Vec<(String, &'static str)> {
        const MAP: &[(&str, &str)] = &[
            ("package.json", "npm"),
            ("pom.xml", "maven"),
            ("build.gradle", "maven"),
            ("Dockerfile", "docker"),
            ("docker-compose.yml", "docker"),
            (".github/workflows", "github"),
            (".buildkite", "buildkite"),
            ("k8s", "kubectl"),
            ("helm", "kubectl"),
            ("charts", "kubectl"),
        ];
        let mut out = Vec::new();
        for f in &self.files {
            if let Some((_, server)) = MAP.iter().find(|(k, _)| k == f) {
                out.push((format!("repo has {f}"), *server));
            }
            if f.ends_with(".csproj") || f.ends_with(".sln") {
                out.push((format!("repo has {f}"), "dotnet"));
            }
            if f.ends_with(".sqlite") || f.ends_with(".db") {
                out.push((format!("repo has {f}"), "sqlite"));
            }
        }
        // One hint per ecosystem.
        let mut seen = std::collections::BTreeSet::new();
        out.retain(|(_, w)| seen.insert(*w));
        out
    }
}

/// What prefetch is asked.
#[derive(Clone, Default)]
pub struct Request<'a> {
    pub task: &'a str,
    /// Thread context (weighted lower than the task).
    pub context: &'a str,
    pub repo: Option<&'a RepoSignals>,
    /// Tools offered per run, built-ins included.
    pub k: usize,
    /// Names always included (the blueprint's built-ins).
    pub always: &'a [&'a str],
    pub allow_destructive: bool,
    /// When set, only these names may be offered (tools a run can actually call).
    pub callable: Option<&'a dyn Fn(&ToolEntry) -> bool>,
}

/// One offered tool with its score and the evidence behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pick {
    pub name: String,
    pub server: Option<String>,
    pub score: f64,
    pub evidence: Vec<String>,
}

/// The outcome: offered tools best first, and what was left out and why.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Selection {
    pub picks: Vec<Pick>,
    pub withheld: Vec<(String, String)>,
}

impl Selection {
    pub fn names(&self) -> Vec<String> {
        self.picks.iter().map(|p| p.name.clone()).collect()
    }
}

struct Doc {
    /// term → weighted frequency
    tf: HashMap<String, f64>,
    len: f64,
}

/// A BM25F index over a registry. Build once; rank many requests.
pub struct Index<'r> {
    registry: &'r Registry,
    docs: Vec<Doc>,
    df: HashMap<String, usize>,
    avg_len: f64,
    /// Distinctive words of each server's name → server.
    server_words: HashMap<String, Vec<String>>,
}

fn add_terms(tf: &mut HashMap<String, f64>, text: &str, weight: f64) {
    for t in terms(text) {
        *tf.entry(t).or_default() += weight;
    }
}

/// Parameter names, descriptions and enum values, nested schemas included.
fn add_schema(tf: &mut HashMap<String, f64>, schema: &serde_json::Value, depth: usize) {
    if depth > 6 {
        return;
    }
    let Some(obj) = schema.as_object() else {
        return;
    };
    if let Some(props) = obj.get("properties").and_then(|p| p.as_object()) {
        for (name, p) in props {
            add_terms(tf, name, 1.0);
            if let Some(d) = p.get("description").and_then(|d| d.as_str()) {
                add_terms(tf, d, 0.5);
            }
            if let Some(e) = p.get("enum").and_then(|e| e.as_array()) {
                for v in e.iter().filter_map(|v| v.as_str()) {
                    add_terms(tf, v, 0.5);
                }
            }
            add_schema(tf, p, depth + 1);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(v) = obj.get(key) {
            add_schema(tf, v, depth + 1);
        }
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        for v in obj
            .get(key)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            add_schema(tf, v, depth + 1);
        }
    }
    for key in ["$defs", "definitions"] {
        for v in obj
            .get(key)
            .and_then(|v| v.as_object())
            .into_iter()
            .flat_map(|m| m.values())
        {
            add_schema(tf, v, depth + 1);
        }
    }
}

impl<'r> Index<'r> {
    pub fn new(registry: &'r Registry) -> Self {
        let mut docs = Vec::with_capacity(registry.entries().len());
        let mut df: HashMap<String, usize> = HashMap::new();
        let mut server_words: HashMap<String, Vec<String>> = HashMap::new();
        for e in registry.entries() {
            let mut tf = HashMap::new();
            add_terms(&mut tf, &e.original, 3.0);
            if let Some(s) = &e.server {
                add_terms(&mut tf, s, 1.5);
            }
            add_terms(&mut tf, &e.description, 1.0);
            add_schema(&mut tf, &e.input_schema, 0);
            for t in tf.keys() {
                *df.entry(t.clone()).or_default() += 1;
            }
            // Summed in a fixed order, so the length (and every score) is the same on every run.
            let mut weights: Vec<f64> = tf.values().copied().collect();
            weights.sort_by(f64::total_cmp);
            let len = weights.iter().sum();
            docs.push(Doc { tf, len });
        }
        for s in registry.servers() {
            for w in s.to_lowercase().split(|c: char| !c.is_ascii_alphanumeric()) {
                if w.len() >= 3 && !GENERIC_SERVER_WORDS.contains(&w) {
                    let v = server_words.entry(w.to_string()).or_default();
                    if !v.iter().any(|x| x == s) {
                        v.push(s.to_string());
                    }
                }
            }
        }
        let avg_len = if docs.is_empty() {
            1.0
        } else {
            docs.iter().map(|d| d.len).sum::<f64>() / docs.len() as f64
        };
        Self {
            registry,
            docs,
            df,
            avg_len: avg_len.max(1.0),
            server_words,
        }
    }

    fn bm25(&self, q: &[(String, f64)]) -> Vec<(f64, Vec<String>)> {
        let n = self.docs.len() as f64;
        self.docs
            .iter()
            .map(|d| {
                let mut score = 0.0;
                let mut matched = Vec::new();
                for (t, qw) in q {
                    let Some(&tf) = d.tf.get(t) else { continue };
                    let df = self.df.get(t).copied().unwrap_or(0) as f64;
                    let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
                    let norm = tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * d.len / self.avg_len));
                    score += qw * idf * norm;
                    matched.push(t.clone());
                }
                (score, matched)
            })
            .collect()
    }

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
    use crate::tools::registry::{RawTool, ServerTools, ToolSource};
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
