//! The BM25F index over a registry: weighted terms of each tool's name, server, description
//! and schema, document frequencies, and the distinctive words of server names.
//!
//! Owns building the index and lexical scoring; it must not choose tools (see `select`).

use std::collections::HashMap;

use crate::tools::registry::Registry;
use crate::tools::text::terms;

/// BM25 saturation and length normalisation (the usual defaults).
const K1: f64 = 1.2;
const B: f64 = 0.75;

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

struct Doc {
    /// term → weighted frequency
    tf: HashMap<String, f64>,
    len: f64,
}

/// A BM25F index over a registry. Build once; rank many requests.
pub struct Index<'r> {
    pub(super) registry: &'r Registry,
    docs: Vec<Doc>,
    df: HashMap<String, usize>,
    avg_len: f64,
    /// Distinctive words of each server's name → server.
    pub(super) server_words: HashMap<String, Vec<String>>,
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
    /// Indexes every entry of `registry`.
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

    pub(super) fn bm25(&self, q: &[(String, f64)]) -> Vec<(f64, Vec<String>)> {
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
}
