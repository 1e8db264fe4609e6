//! Operator metrics of `slipway serve` beyond the socket gauges: runs by blueprint and
//! decision, node durations, model tokens and USD by repo, and sandbox starts, all folded
//! from the queue's [`QueueEvent`]s in one place ([`Metrics::observe`]); queue depth and age
//! are read at scrape time by the caller and passed to [`Metrics::render`].
//!
//! Rendered in the Prometheus text exposition format, version 0.0.4 ("Exposition formats",
//! prometheus.io: `# HELP`/`# TYPE` lines, `name{label="value"} number`, histograms as
//! cumulative `_bucket{le=…}` series plus `_sum` and `_count`). The encoder is hand-rolled,
//! like the existing gauges in [`crate::web`]: a few families of plain counters need no
//! registry crate, and one format stays in one place.
//!
//! One [`Metrics`] is made at wiring time (`slipway serve`) and shared as a cheap clone;
//! there is no global state. Owns no I/O but the queue subscription of
//! [`Metrics::spawn_observer`].
#![warn(missing_docs)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::queue::{Queue, QueueEvent};
use crate::run::events::RunEvent;

/// Upper bounds of the node duration histogram's buckets, seconds (`+Inf` is added).
pub const NODE_BUCKETS_S: [f64; 13] = [
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// The label of a run that failed before it could report (no decision, no blueprint known).
pub const FAILED: &str = "failed";

/// The operator metrics: a handle on one shared set of families. Cheap to clone; every
/// clone observes into and renders the same numbers.
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Mutex<Families>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The queue's numbers at scrape time, passed to [`Metrics::render`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QueueGauges {
    /// Queue items waiting for a run (not running).
    pub depth: usize,
    /// Age of the oldest waiting item, seconds; 0 when none waits.
    pub oldest_age_s: f64,
}

#[derive(Default)]
struct Histogram {
    /// Per bucket of [`NODE_BUCKETS_S`], not cumulative (made cumulative when rendered).
    buckets: [u64; NODE_BUCKETS_S.len()],
    sum_s: f64,
    count: u64,
}

#[derive(Default)]
struct Families {
    /// (blueprint, decision) → runs.
    runs: BTreeMap<(String, String), u64>,
    /// node → durations.
    nodes: BTreeMap<String, Histogram>,
    /// (repo, direction) → tokens.
    tokens: BTreeMap<(String, &'static str), u64>,
    /// repo → USD.
    cost: BTreeMap<String, f64>,
    /// kind (`cold`/`warm`) → sandbox starts.
    sandboxes: BTreeMap<&'static str, u64>,
    /// Tasks whose run started and has not reported yet.
    open: HashSet<String>,
    /// Task → sandbox starts of its open run (their kind is known from the report).
    pending_sandboxes: HashMap<String, u64>,
}

impl Metrics {
    /// Empty families.
    pub fn new() -> Self {
        Self::default()
    }

    fn families(&self) -> std::sync::MutexGuard<'_, Families> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Folds one queue event in:
    /// - `RunFinished`: `slipway_runs_total{blueprint, decision}` +1, the report's agent
    ///   tokens (`input`/`output`) and USD under its repo, and the run's sandbox starts (the
    ///   first `warm` when the report says it came from the warm pool, the rest `cold`);
    /// - `RunFailed`, or the queue's `Failed` for a started run that never reported:
    ///   `slipway_runs_total{blueprint="unknown", decision="failed"}` +1 (the event names no
    ///   blueprint), its sandbox starts as `cold`;
    /// - `NodeFinished`: its `duration_ms` into `slipway_node_duration_seconds{node}`; a
    ///   successful `sandbox` node is a sandbox start.
    pub fn observe(&self, e: &QueueEvent) {
        let mut f = self.families();
        match e {
            QueueEvent::Run { task_id, event } => match event {
                RunEvent::RunStarted { .. } => {
                    f.open.insert(task_id.clone());
                    f.pending_sandboxes.remove(task_id);
                }
                RunEvent::NodeFinished {
                    node,
                    ok,
                    duration_ms,
                    ..
                } => {
                    let secs = *duration_ms as f64 / 1000.0;
                    let h = f.nodes.entry(node.clone()).or_default();
                    if let Some(i) = NODE_BUCKETS_S.iter().position(|b| secs <= *b) {
                        h.buckets[i] += 1;
                    }
                    h.sum_s += secs;
                    h.count += 1;
                    if *ok && node == crate::run::events::NodeName::Sandbox.as_str() {
                        *f.pending_sandboxes.entry(task_id.clone()).or_default() += 1;
                    }
                }
                RunEvent::RunFinished { report } => {
                    f.open.remove(task_id);
                    *f.runs
                        .entry((report.blueprint.clone(), report.decision.to_string()))
                        .or_default() += 1;
                    let repo = report.repo.clone();
                    *f.tokens.entry((repo.clone(), "input")).or_default() +=
                        report.agent.input_tokens;
                    *f.tokens.entry((repo.clone(), "output")).or_default() +=
                        report.agent.output_tokens;
                    *f.cost.entry(repo).or_default() += report.agent.cost_usd;
                    let starts = f.pending_sandboxes.remove(task_id).unwrap_or(0);
                    let warm = u64::from(report.sandbox.warm && starts > 0);
                    *f.sandboxes.entry("warm").or_default() += warm;
                    *f.sandboxes.entry("cold").or_default() += starts - warm;
                }
                RunEvent::RunFailed { .. } => {
                    f.open.remove(task_id);
                    f.failed(task_id);
                }
                _ => {}
            },
            QueueEvent::Failed { task_id, .. } => {
                if f.open.remove(task_id) {
                    f.failed(task_id);
                }
            }
            QueueEvent::Interrupted { task_id, .. } => {
                f.open.remove(task_id);
                let starts = f.pending_sandboxes.remove(task_id).unwrap_or(0);
                *f.sandboxes.entry("cold").or_default() += starts;
            }
        }
    }

    /// Observes `queue`'s events until it closes its channel. A lagging observer loses the
    /// events it missed (logged), never blocks the queue.
    pub fn spawn_observer(&self, queue: &Queue) -> tokio::task::JoinHandle<()> {
        let mut rx = queue.subscribe();
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(e) => me.observe(&e),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "metrics lagged behind the queue's events");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        })
    }

    /// Appends the families (and `queue`'s gauges) to `out` in the text format, each with
    /// its `# HELP` and `# TYPE` lines; series sorted by label values.
    pub fn render(&self, queue: QueueGauges, out: &mut String) {
        let f = self.families();
        family(
            out,
            "slipway_runs_total",
            "counter",
            "Runs ended, by blueprint and decision (auto_merge, needs_approval, halt, failed).",
        );
        for ((blueprint, decision), n) in &f.runs {
            line(
                out,
                "slipway_runs_total",
                &[("blueprint", blueprint), ("decision", decision)],
                *n,
            );
        }
        family(
            out,
            "slipway_node_duration_seconds",
            "histogram",
            "Wall time of each finished node, seconds.",
        );
        for (node, h) in &f.nodes {
            let mut cumulative = 0;
            for (b, n) in NODE_BUCKETS_S.iter().zip(h.buckets) {
                cumulative += n;
                let le = b.to_string();
                line(
                    out,
                    "slipway_node_duration_seconds_bucket",
                    &[("node", node), ("le", &le)],
                    cumulative,
                );
            }
            line(
                out,
                "slipway_node_duration_seconds_bucket",
                &[("node", node), ("le", "+Inf")],
                h.count,
            );
            line(
                out,
                "slipway_node_duration_seconds_sum",
                &[("node", node)],
                h.sum_s,
            );
            line(
                out,
                "slipway_node_duration_seconds_count",
                &[("node", node)],
                h.count,
            );
        }
        family(
            out,
            "slipway_model_tokens_total",
            "counter",
            "Model tokens of finished runs, by repo and direction (input, output).",
        );
        for ((repo, direction), n) in &f.tokens {
            line(
                out,
                "slipway_model_tokens_total",
                &[("repo", repo), ("direction", direction)],
                *n,
            );
        }
        family(
            out,
            "slipway_model_cost_usd_total",
            "counter",
            "Model spend of finished runs, US dollars priced with [llm], by repo.",
        );
        for (repo, usd) in &f.cost {
            line(out, "slipway_model_cost_usd_total", &[("repo", repo)], *usd);
        }
        family(
            out,
            "slipway_sandbox_starts_total",
            "counter",
            "Sandboxes started by runs, by kind (warm: taken from the warm pool).",
        );
        for (kind, n) in &f.sandboxes {
            line(out, "slipway_sandbox_starts_total", &[("kind", kind)], *n);
        }
        family(
            out,
            "slipway_queue_depth",
            "gauge",
            "Queue items waiting for a run.",
        );
        line(out, "slipway_queue_depth", &[], queue.depth);
        family(
            out,
            "slipway_queue_oldest_age_seconds",
            "gauge",
            "Age of the oldest queue item waiting for a run, seconds (0 when none waits).",
        );
        line(
            out,
            "slipway_queue_oldest_age_seconds",
            &[],
            queue.oldest_age_s,
        );
    }
}

impl Families {
    fn failed(&mut self, task_id: &str) {
        *self
            .runs
            .entry(("unknown".into(), FAILED.into()))
            .or_default() += 1;
        let starts = self.pending_sandboxes.remove(task_id).unwrap_or(0);
        *self.sandboxes.entry("cold").or_default() += starts;
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn line(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape(v));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// A label value as the text format wants it: `\`, `"` and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests;
