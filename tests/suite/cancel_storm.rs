//! The cancel storm (issue #14): runs cancelled at random points, on both sandbox backends,
//! leave no container, no per-run directory and no process behind.
//!
//! CI runs [`a_cancel_storm_leaves_nothing_behind`] (10 runs). The long storm is
//! `SLIPWAY_STORM_RUNS=100 cargo test --test all cancel_storm_long -- --ignored --nocapture`
//! (`SLIPWAY_STORM_SEED` picks another sequence of points).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use slipway::agent::llm::settings::LlmProvider;
use slipway::run::events::RunEvent;
use slipway::sandbox::Backend;
use tokio_util::sync::CancellationToken;

use crate::support::fake_llm::Turn;
use crate::support::{self, Harness, git_repo};

/// Where a run is cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Point {
    /// While the workspace node clones (before any sandbox exists).
    Workspace,
    /// While the sandbox starts.
    SandboxStart,
    /// During the agent's `run` tool call (`sleep 5`).
    ToolCall,
    /// During the checks (`sleep 5` before the tests).
    Checks,
}

const POINTS: [Point; 4] = [
    Point::Workspace,
    Point::SandboxStart,
    Point::ToolCall,
    Point::Checks,
];

/// xorshift64*: a reproducible sequence of delays without a dependency.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// The calc repo whose test command sleeps first, so a cancel can land during the checks.
fn slow_checks_repo(dir: &Path) {
    git_repo(
        dir,
        &[
            ("calc.py", support::CALC_BUGGY),
            ("test_calc.py", support::TEST_CALC),
            (
                ".slipway/policy.toml",
                "[checks]\ntest = \"sleep 5; python3 -m unittest\"\n",
            ),
        ],
    );
}

/// Processes (not zombies) whose command line names `data`, and their descendants: the
/// bwrap processes of a run bind its directories, and everything inside descends from them.
fn processes_under(data: &Path) -> Vec<(u32, String)> {
    let needle = data.display().to_string();
    let mut parent = std::collections::HashMap::new();
    let mut cmd = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next().unwrap_or("");
        let ppid: u32 = f.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if state == "Z" || state == "X" {
            continue;
        }
        let line = std::fs::read(e.path().join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        parent.insert(pid, ppid);
        cmd.insert(pid, line);
    }
    let roots: Vec<u32> = cmd
        .iter()
        .filter(|(_, c)| c.contains(&needle))
        .map(|(p, _)| *p)
        .collect();
    let mut out = Vec::new();
    for (&pid, line) in &cmd {
        let mut p = pid;
        for _ in 0..64 {
            if roots.contains(&p) {
                out.push((pid, line.clone()));
                break;
            }
            match parent.get(&p) {
                Some(&pp) if pp > 1 => p = pp,
                _ => break,
            }
        }
    }
    out
}

/// Entries in every per-run place under the data dir (and claims), after a run.
fn leftovers(data: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = slipway::sweep::SWEPT
        .iter()
        .flat_map(|(place, prefix)| {
            std::fs::read_dir(data.join(place))
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .filter(move |e| e.file_name().to_string_lossy().starts_with(prefix))
                .map(|e| e.path())
        })
        .collect();
    out.extend(
        std::fs::read_dir(data.join("claims"))
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path()),
    );
    out
}

/// What one cancelled run left behind.
#[derive(Debug, Default)]
struct Left {
    containers: Vec<String>,
    dirs: Vec<PathBuf>,
    processes: Vec<(u32, String)>,
}

/// Runs one task on `backend` and cancels it at `point`, `delay_ms` after reaching it.
async fn one_cancelled_run(backend: Backend, point: Point, delay_ms: u64) -> (Left, bool, bool) {
    let script = vec![
        Turn::call("run", json!({"command": "sleep 5"})),
        Turn::call(
            "edit_file",
            json!({"path": "calc.py", "old_text": "return a - b", "new_text": "return a + b"}),
        ),
        Turn::call("finish", json!({"summary": "fixed add"})),
    ];
    let h = Harness::with_repo(
        backend,
        LlmProvider::Openai,
        script,
        slow_checks_repo,
        |_| {},
    )
    .await;
    let cancel = CancellationToken::new();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<RunEvent>(256);
    let trigger = cancel.clone();
    let fake = h.fake.clone();
    let watcher = tokio::spawn(async move {
        let mut run_id = None;
        let mut reached = false;
        while let Some(ev) = rx.recv().await {
            let hit = match &ev {
                RunEvent::RunStarted { run_id: id, .. } => {
                    run_id = Some(id.clone());
                    false
                }
                RunEvent::NodeStarted { node, .. } => matches!(
                    (point, node.as_str()),
                    (Point::Workspace, "workspace")
                        | (Point::SandboxStart, "sandbox")
                        | (Point::ToolCall, "implement")
                        | (Point::Checks, "checks")
                ),
                _ => false,
            };
            if hit && !reached {
                reached = true;
                let t = trigger.clone();
                let fake = fake.clone();
                tokio::spawn(async move {
                    if point == Point::ToolCall {
                        // The model has answered with the `run` call once it was asked.
                        while fake.requests().is_empty() && !t.is_cancelled() {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                    t.cancel();
                });
            }
        }
        (run_id, reached)
    });
    let mut task = h.task("fix add()");
    let result = h
        .runner
        .run(&mut task, "code_change", cancel.clone(), Some(tx))
        .await;
    cancel.cancel();
    let (run_id, reached) = watcher.await.unwrap();
    let run_id = run_id.or_else(|| result.as_ref().ok().map(|r| r.run_id.clone()));
    // Cancelled, or finished before the cancel landed (a late point on a fast machine).
    let cancelled = match &result {
        Ok(r) => r.reasons.iter().any(|x| x.contains("cancelled")),
        Err(e) => e.to_string().contains("cancel"),
    };
    let mut left = Left {
        containers: match &run_id {
            Some(id) => support::containers_of(id).await,
            None => Vec::new(),
        },
        dirs: leftovers(h.data.path()),
        processes: processes_under(h.data.path()),
    };
    // SIGKILL is delivered at once but a process takes a moment to exit (a pid namespace's
    // members are killed when its init dies): look again a few times before counting one.
    for _ in 0..50 {
        if left.processes.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left.processes = processes_under(h.data.path());
    }
    (left, reached, cancelled)
}

/// Runs `n` cancelled runs, alternating backends and cycling through the points, with
/// delays from `seed`; prints a table and returns every leftover found.
async fn storm(n: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng(seed | 1);
    let mut problems = Vec::new();
    let mut tally = std::collections::BTreeMap::<(String, Point, bool, bool), usize>::new();
    for i in 0..n {
        let backend = if i % 2 == 0 {
            Backend::Docker
        } else {
            Backend::Bwrap
        };
        let point = POINTS[(i / 2) % POINTS.len()];
        let delay = match point {
            Point::Workspace | Point::SandboxStart => rng.below(400),
            Point::ToolCall | Point::Checks => rng.below(4500),
        };
        let (left, reached, cancelled) = one_cancelled_run(backend, point, delay).await;
        *tally
            .entry((format!("{backend:?}"), point, reached, cancelled))
            .or_default() += 1;
        let total = left.containers.len() + left.dirs.len() + left.processes.len();
        if total > 0 {
            problems.push(format!(
                "run {i} ({backend:?}, {point:?} +{delay} ms): {} containers, dirs {:?}, processes {:?}",
                left.containers.len(),
                left.dirs,
                left.processes
            ));
        }
    }
    eprintln!("cancel storm: {n} runs, seed {seed}");
    for ((backend, point, reached, cancelled), count) in &tally {
        eprintln!(
            "  {backend:7} {point:12?} {count:3} runs (point reached: {reached}, run cancelled: {cancelled})"
        );
    }
    eprintln!("  leftovers: {} runs with any", problems.len());
    for p in &problems {
        eprintln!("  {p}");
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_storm_leaves_nothing_behind() {
    let problems = storm(10, 0x5EED_0014).await;
    assert!(problems.is_empty(), "{problems:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the long storm: SLIPWAY_STORM_RUNS=100 cargo test --test all cancel_storm_long -- --ignored --nocapture"]
async fn cancel_storm_long() {
    let n = std::env::var("SLIPWAY_STORM_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let seed = std::env::var("SLIPWAY_STORM_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED_0014);
    let problems = storm(n, seed).await;
    assert!(problems.is_empty(), "{problems:#?}");
}

/// A bwrap command cancelled the moment it is spawned: killing bwrap before its namespace
/// child has armed `--die-with-parent` used to leave that child blocked forever (found by
/// the storm: 1 of 100 runs, cancelled 26 ms into the sandbox node, during the checks probe).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bwrap_command_cancelled_as_it_starts_leaves_no_process() {
    use slipway::sandbox::settings::SandboxConfig;
    use slipway::sandbox::{NetworkAccess, SandboxPolicy, SandboxSpec};
    let ws = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    support::python_repo(ws.path());
    let cfg = SandboxConfig {
        command_timeout_s: 30,
        ..Default::default()
    };
    let spec = SandboxSpec {
        workspace: ws.path().to_path_buf(),
        git_dir: ws.path().join(".git"),
        home: home.path().to_path_buf(),
        policy: SandboxPolicy::for_run(&cfg, NetworkAccess::None),
        run_id: slipway::task::new_id(),
        image: None,
        mounts: Vec::new(),
        pool: None,
    };
    let session = support::sandbox(Backend::Bwrap)
        .await
        .start(&spec)
        .await
        .unwrap();
    let cancelled = CancellationToken::new();
    cancelled.cancel();
    for _ in 0..200 {
        let r = session
            .exec("sleep 30", Duration::from_secs(30), &cancelled)
            .await;
        assert!(r.is_err(), "a cancelled exec does not run: {r:?}");
    }
    session.close().await.unwrap();
    let mut left = processes_under(ws.path());
    for _ in 0..50 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = processes_under(ws.path());
    }
    let count = left.len();
    for (pid, _) in &left {
        // Leave nothing behind for the other tests, whatever the outcome.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    assert_eq!(count, 0, "bwrap processes left: {left:?}");
}
