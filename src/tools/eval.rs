//! `slipway tools eval`: how good prefetch is, as numbers (contract: `DESIGN.md` §3).
//!
//! An evaluation file is JSON Lines, `{"query": "…", "tools": ["gold", …]}`. A gold name
//! may be bare (`read_file`: found when any picked tool has that name on its server) or
//! namespaced (`server__tool`). Over the top k picks:
//! - recall: the mean share of gold tools found;
//! - completeness: the share of queries whose whole gold set was found;
//! - mrr: the mean reciprocal rank of the first gold tool found (0 when none is);
//! - ndcg: binary-relevance nDCG@k.

use serde::{Deserialize, Serialize};

use super::prefetch::{Index, Request};
use super::registry::Registry;

/// One labelled query.
#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    pub query: String,
    pub tools: Vec<String>,
}

/// A file that cannot be evaluated: the line and why.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("{file}:{line}: {message}")]
    Line {
        file: String,
        line: usize,
        message: String,
    },
}

/// Parses an evaluation file.
pub fn read_cases(path: &std::path::Path) -> Result<Vec<Case>, EvalError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::Read(file.clone(), e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let c: Case = serde_json::from_str(line).map_err(|e| EvalError::Line {
            file: file.clone(),
            line: i + 1,
            message: e.to_string(),
        })?;
        if c.tools.is_empty() {
            return Err(EvalError::Line {
                file: file.clone(),
                line: i + 1,
                message: "no gold tools".into(),
            });
        }
        out.push(c);
    }
    Ok(out)
}

/// The metrics (contract: `tools eval --json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    pub k: usize,
    pub queries: usize,
    pub recall: f64,
    pub completeness: f64,
    pub mrr: f64,
    pub ndcg: f64,
}

/// Whether picked tool `picked` (exposed name, name on its server) satisfies gold `gold`.
/// A namespaced gold also matches a tool exposed bare (unique in the loaded set) whose
/// exposed name is `server__original`; the eval passes that as the exposed name.
fn matches(gold: &str, picked: (&str, &str)) -> bool {
    gold == picked.0 || (!gold.contains("__") && gold == picked.1)
}

/// Scores one ranked list against one gold set: (recall, complete, reciprocal rank, ndcg).
pub fn score_one(gold: &[String], ranked: &[(String, String)], k: usize) -> (f64, bool, f64, f64) {
    let top = &ranked[..ranked.len().min(k)];
    let found = gold
        .iter()
        .filter(|g| top.iter().any(|(n, o)| matches(g, (n, o))))
        .count();
    let recall = found as f64 / gold.len() as f64;
    let rr = top
        .iter()
        .position(|(n, o)| gold.iter().any(|g| matches(g, (n, o))))
        .map(|p| 1.0 / (p as f64 + 1.0))
        .unwrap_or(0.0);
    // Each gold tool counts once, at the first rank that satisfies it.
    let mut used = vec![false; gold.len()];
    let mut dcg = 0.0;
    for (i, (n, o)) in top.iter().enumerate() {
        if let Some(g) = (0..gold.len()).find(|&g| !used[g] && matches(&gold[g], (n, o))) {
            used[g] = true;
            dcg += 1.0 / ((i as f64) + 2.0).log2();
        }
    }
    let ideal: f64 = (0..gold.len().min(k))
        .map(|i| 1.0 / ((i as f64) + 2.0).log2())
        .sum();
    (
        recall,
        found == gold.len(),
        rr,
        if ideal > 0.0 { dcg / ideal } else { 0.0 },
    )
}

/// Evaluates prefetch (as the `code_change` blueprint runs it: built-ins always in) on
/// `cases` over `registry`.
pub fn evaluate(registry: &Registry, cases: &[Case], k: usize, always: &[&str]) -> Metrics {
    let index = Index::new(registry);
    let (mut r, mut c, mut m, mut n) = (0.0, 0usize, 0.0, 0.0);
    for case in cases {
        let sel = index.select(&Request {
            task: &case.query,
            k,
            always,
            ..Default::default()
        });
        let ranked: Vec<(String, String)> = sel
            .picks
            .iter()
            .map(|p| {
                let e = registry.get(&p.name);
                let original = e
                    .map(|e| e.original.clone())
                    .unwrap_or_else(|| p.name.clone());
                // Compare namespaced gold with the qualified name, whether or not the tool
                // had to be namespaced in this registry.
                let qualified = match e.and_then(|e| e.server.as_ref()) {
                    Some(server) => format!("{server}__{original}"),
                    None => p.name.clone(),
                };
                (qualified, original)
            })
            .collect();
        let (recall, complete, rr, ndcg) = score_one(&case.tools, &ranked, k);
        r += recall;
        c += usize::from(complete);
        m += rr;
        n += ndcg;
    }
    let q = cases.len().max(1) as f64;
    let round = |x: f64| (x * 10_000.0).round() / 10_000.0;
    Metrics {
        k,
        queries: cases.len(),
        recall: round(r / q),
        completeness: round(c as f64 / q),
        mrr: round(m / q),
        ndcg: round(n / q),
    }
}

/// Estimated tokens of the tool definitions sent to the model (name, description and JSON
/// schema), as characters ÷ 4: for `names`, or for every tool when `names` is `None`.
pub fn definition_tokens(registry: &Registry, names: Option<&[String]>) -> usize {
    registry
        .entries()
        .iter()
        .filter(|e| names.is_none_or(|n| n.contains(&e.name)))
        .map(|e| {
            serde_json::to_string(&super::spec_of(e))
                .map(|s| s.chars().count())
                .unwrap_or(0)
        })
        .sum::<usize>()
        / 4
}

/// Mean estimated definition tokens per query with prefetch at `k`.
pub fn mean_prefetch_tokens(
    registry: &Registry,
    cases: &[Case],
    k: usize,
    always: &[&str],
) -> usize {
    let index = Index::new(registry);
    let total: usize = cases
        .iter()
        .map(|c| {
            let names = index
                .select(&Request {
                    task: &c.query,
                    k,
                    always,
                    ..Default::default()
                })
                .names();
            definition_tokens(registry, Some(&names))
        })
        .sum();
    total / cases.len().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranked(names: &[&str]) -> Vec<(String, String)> {
        names
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    n.rsplit("__").next().unwrap_or(n).to_string(),
                )
            })
            .collect()
    }

    /// A tiny case computed by hand.
    #[test]
    fn metrics_match_a_hand_computed_case() {
        // Query 1: gold {a, b}; ranking [x, a, y, b]; k = 3 → found a only.
        //   recall 1/2, incomplete, rr 1/2, dcg = 1/log2(3) = 0.6309, idcg = 1 + 0.6309 → 0.3869
        let (r, c, rr, n) = score_one(&["a".into(), "b".into()], &ranked(&["x", "a", "y", "b"]), 3);
        assert_eq!((r, c, rr), (0.5, false, 0.5));
        assert!((n - 0.386853).abs() < 1e-5, "{n}");
        // Query 2: gold {srv__c} (namespaced) and bare {d}; ranking [srv__c, other__d]; k = 3.
        //   both found at ranks 1 and 2: recall 1, complete, rr 1, ndcg 1.
        let (r, c, rr, n) = score_one(
            &["srv__c".into(), "d".into()],
            &ranked(&["srv__c", "other__d"]),
            3,
        );
        assert_eq!((r, c, rr), (1.0, true, 1.0));
        assert!((n - 1.0).abs() < 1e-9);
        // A namespaced gold is not satisfied by a same-named tool of another server.
        let (r, ..) = score_one(&["srv__c".into()], &ranked(&["other__c"]), 3);
        assert_eq!(r, 0.0);
    }
}
