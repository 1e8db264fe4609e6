//! What the chaos harness counts, and the table it prints.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde_json::Value;

use super::{Chaos, DEV, thread_of};

/// What the harness counts. Every field but the `info_*` ones should be 0.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub kills: usize,
    pub kills_by_point: BTreeMap<String, (usize, usize)>,
    pub mentions: usize,
    pub replies: usize,
    pub approvals: usize,
    pub reverts: usize,
    pub redeliveries: usize,
    pub lost_merge_replies: usize,
    /// Mentions with at least one acked delivery, and no task for their thread.
    pub lost_tasks: usize,
    /// Mentions never acked, even after Slack's redeliveries.
    pub never_acked: usize,
    /// Acked refining replies whose text is in no revision.
    pub lost_revisions: usize,
    /// Threads with more than one (non-revert) task: the extra ones.
    pub duplicate_tasks: usize,
    /// Extra finished runs for one (task, revision).
    pub duplicate_runs: usize,
    /// Extra PRs for one head branch, and extra revert tasks for one merged task.
    pub duplicate_prs: usize,
    /// `PUT …/merge` calls that reached a PR GitHub had merged already.
    pub merge_retries_after_merge: usize,
    /// PRs merged on GitHub whose task is not `merged` with a `merge_commit` in the store.
    pub lost_merges: usize,
    /// Threads whose task exists but that never got a report.
    pub threads_without_report: usize,
    /// Finished runs (with a report in the store) beyond the reports posted in their thread.
    pub unreported_runs: usize,
    /// Tasks not in a terminal state after settling.
    pub stuck: usize,
    /// Containers of this data dir's runs, running or not, after the final stop.
    pub leaked_containers: usize,
    /// Entries under worktrees/, gitdirs/, homes/, envs/.bases, envs/.building, and
    /// `.tmp-*` / `merge-*` anywhere in the data dir, after the final stop.
    pub leaked_dirs: usize,
    pub info_tasks_by_state: BTreeMap<String, usize>,
    pub info_runs: usize,
    pub info_prs: usize,
    pub info_merged_prs: usize,
    /// Threads without a report, by their task's final state.
    pub info_unreported_by_state: BTreeMap<String, usize>,
    pub info_settled: bool,
    pub info_final_exit: Option<i32>,
}

impl Counts {
    /// The failure counts, by name.
    pub fn failures(&self) -> Vec<(&'static str, usize)> {
        vec![
            ("lost tasks (acked mention, no task)", self.lost_tasks),
            ("mentions never acked", self.never_acked),
            ("lost revisions (acked reply)", self.lost_revisions),
            ("duplicate tasks", self.duplicate_tasks),
            (
                "duplicate runs (finished, same revision)",
                self.duplicate_runs,
            ),
            ("duplicate PRs", self.duplicate_prs),
            ("merge PUTs on a merged PR", self.merge_retries_after_merge),
            (
                "lost merges (merged on GitHub, not in store)",
                self.lost_merges,
            ),
            ("threads without a report", self.threads_without_report),
            ("finished runs without a report post", self.unreported_runs),
            ("stuck tasks", self.stuck),
            ("leaked containers", self.leaked_containers),
            ("leaked worktrees/homes/temp dirs", self.leaked_dirs),
        ]
    }

    /// The sum of the failure counts.
    pub fn total(&self) -> usize {
        self.failures().iter().map(|(_, n)| n).sum()
    }

    /// A plain-text table of the workload and the counts.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "workload: {} mentions, {} replies, {} ✅, {} ⏪; {} SIGKILLs; {} redeliveries; {} merge replies lost (502)",
            self.mentions,
            self.replies,
            self.approvals,
            self.reverts,
            self.kills,
            self.redeliveries,
            self.lost_merge_replies
        );
        let _ = writeln!(s, "kill points (reached / armed):");
        for (k, (hit, armed)) in &self.kills_by_point {
            let _ = writeln!(s, "  {k:<14} {hit:>3} / {armed}");
        }
        let _ = writeln!(
            s,
            "store: {} tasks {:?}, {} runs; GitHub: {} PRs, {} merged; settled: {}; final SIGTERM exit (None: killed after 120 s): {:?}",
            self.info_tasks_by_state.values().sum::<usize>(),
            self.info_tasks_by_state,
            self.info_runs,
            self.info_prs,
            self.info_merged_prs,
            self.info_settled,
            self.info_final_exit
        );
        let _ = writeln!(
            s,
            "threads without a report, by task state: {:?}",
            self.info_unreported_by_state
        );
        let _ = writeln!(s, "| count | value |");
        let _ = writeln!(s, "|---|---|");
        for (name, n) in self.failures() {
            let _ = writeln!(s, "| {name} | {n} |");
        }
        let _ = writeln!(s, "| **total** | {} |", self.total());
        s
    }
}

/// Entries a stopped service should not leave in its data dir.
fn leaked_dirs(data: &std::path::Path) -> usize {
    let scratch = [
        "worktrees",
        "gitdirs",
        "homes",
        "envs/.bases",
        "envs/.building",
    ]
    .iter()
    .flat_map(|d| std::fs::read_dir(data.join(d)).into_iter().flatten())
    .count();
    let temps = walkdir::WalkDir::new(data)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name().to_string_lossy();
            e.file_type().is_dir() && (n.starts_with(".tmp-") || n.starts_with("merge-"))
        })
        .count();
    scratch + temps
}

impl Chaos {
    /// Reads the store (through the CLI), the fakes and the engine, and fills the counts.
    pub(super) async fn count(&mut self) {
        let acked = self.acked_ids();
        let tasks = self.w.tasks().await;
        let mut shows = Vec::new();
        for t in &tasks {
            shows.push(self.w.show(t["id"].as_str().unwrap()).await);
        }
        let c = &mut self.counts;
        for t in &tasks {
            let state = t["state"].as_str().unwrap_or("?").to_string();
            *c.info_tasks_by_state.entry(state.clone()).or_default() += 1;
            if !["ready", "halted", "failed", "merged", "cancelled"].contains(&state.as_str()) {
                c.stuck += 1;
            }
        }
        // Tasks by thread (revert tasks apart).
        let mut by_thread: HashMap<String, Vec<&Value>> = HashMap::new();
        let mut reverts_of: HashMap<String, usize> = HashMap::new();
        for t in &tasks {
            if let Some(of) = t["revert_of"]["task_id"].as_str() {
                *reverts_of.entry(of.to_string()).or_default() += 1;
            } else if let Some(th) = thread_of(t) {
                by_thread.entry(th).or_default().push(t);
            }
        }
        c.duplicate_prs += reverts_of.values().map(|n| n - 1).sum::<usize>();
        for e in self.events.values() {
            let Some(th) = &e.mention_of else { continue };
            // Judge each thread once, on its app_mention.
            if e.last["payload"]["event"]["type"].as_str() != Some("app_mention") {
                continue;
            }
            let thread_acked = self
                .events
                .values()
                .filter(|x| x.mention_of.as_deref() == Some(th))
                .any(|x| x.envelopes.iter().any(|id| acked.contains(id)));
            match (
                thread_acked,
                by_thread.get(th).is_some_and(|v| !v.is_empty()),
            ) {
                (true, false) => c.lost_tasks += 1,
                (false, _) => c.never_acked += 1,
                _ => {}
            }
        }
        for v in by_thread.values() {
            c.duplicate_tasks += v.len().saturating_sub(1);
        }
        for (ix, token, id) in &self.reply_events {
            let was_acked = self.events[id].envelopes.iter().any(|x| acked.contains(x));
            let th = &self.threads[*ix].root.ts;
            let found = by_thread.get(th).is_some_and(|v| {
                v.iter().any(|t| {
                    t["revisions"].as_array().is_some_and(|rs| {
                        rs.iter().any(|r| {
                            r["instructions"]
                                .as_str()
                                .is_some_and(|s| s.contains(token.as_str()))
                        })
                    })
                })
            });
            if was_acked && !found {
                c.lost_revisions += 1;
            }
        }
        // Runs: duplicates per revision; finished runs against report posts per thread.
        let mut finished_in_thread: HashMap<String, usize> = HashMap::new();
        let mut run_ids = Vec::new();
        for s in &shows {
            let mut per_rev: HashMap<u64, usize> = HashMap::new();
            for r in s["runs"].as_array().into_iter().flatten() {
                c.info_runs += 1;
                run_ids.push(r["run_id"].as_str().unwrap_or("").to_string());
                if r["state"] == "finished" && !r["report"].is_null() {
                    *per_rev
                        .entry(r["revision"].as_u64().unwrap_or(0))
                        .or_default() += 1;
                    if let Some(th) = thread_of(&s["task"]) {
                        *finished_in_thread.entry(th).or_default() += 1;
                    }
                }
            }
            c.duplicate_runs += per_rev.values().map(|n| n.saturating_sub(1)).sum::<usize>();
        }
        for t in &self.threads {
            let posted = self.w.slack.reports(DEV, &t.root.ts).len();
            let has_task = by_thread.contains_key(&t.root.ts);
            if has_task && posted == 0 {
                c.threads_without_report += 1;
                for t in &by_thread[&t.root.ts] {
                    let state = t["state"].as_str().unwrap_or("?").to_string();
                    *c.info_unreported_by_state.entry(state).or_default() += 1;
                }
            }
            let finished = finished_in_thread.get(&t.root.ts).copied().unwrap_or(0);
            c.unreported_runs += finished.saturating_sub(posted);
        }
        // GitHub: PRs per head branch, merges, and the store's view of them.
        let pulls = self.w.github.pulls();
        c.info_prs = pulls.len();
        let mut per_head: HashMap<String, usize> = HashMap::new();
        for p in &pulls {
            *per_head
                .entry(p["head"]["ref"].as_str().unwrap_or("").to_string())
                .or_default() += 1;
        }
        c.duplicate_prs += per_head.values().map(|n| n - 1).sum::<usize>();
        let merged = self.w.github.merged_pulls();
        c.info_merged_prs = merged.len();
        let calls = self.w.github.calls();
        for n in &merged {
            let suffix = format!("/pulls/{n}/merge");
            let puts: Vec<_> = calls
                .iter()
                .filter(|x| x.method == "PUT" && x.path.ends_with(&suffix))
                .collect();
            // Calls after the one that merged (200, or a merged-then-lost 502).
            let first = puts.iter().position(|x| x.status == 200 || x.status == 502);
            if let Some(f) = first {
                c.merge_retries_after_merge += puts.len() - f - 1;
            }
            let task = tasks
                .iter()
                .find(|t| t["pr_number"].as_u64() == Some(*n))
                .or_else(|| {
                    let head = pulls
                        .iter()
                        .find(|p| p["number"].as_u64() == Some(*n))
                        .and_then(|p| p["head"]["ref"].as_str());
                    tasks.iter().find(|t| t["branch"].as_str() == head)
                });
            let recorded =
                task.is_some_and(|t| t["state"] == "merged" && !t["merge_commit"].is_null());
            if !recorded {
                c.lost_merges += 1;
            }
        }
        // Leaks.
        if self.opts.world.backend == "docker" {
            for id in run_ids.iter().filter(|id| !id.is_empty()) {
                c.leaked_containers +=
                    crate::support::containers_labelled(&format!("slipway.run={id}"))
                        .await
                        .len();
            }
        }
        c.leaked_dirs = leaked_dirs(&self.w.data_dir());
    }
}
