//! Ending a sandboxed process tree and waiting until it is gone (issue "Security hardening"
//! #13, item 3: a sandboxed MCP server must not write into the work tree once the checks
//! start).
//!
//! A bwrap sandbox is a chain of processes (prlimit → bwrap → bwrap as the pid namespace's
//! init → setpriv → the command); killing the first one reaches the rest only through
//! `--die-with-parent`, asynchronously. So the whole tree is collected from
//! `/proc/<pid>/task/<tid>/children` (Linux 3.5+, proc(5)), every member is sent SIGKILL,
//! and the caller waits until each is gone or a zombie (a zombie runs no code).
//!
//! This module owns the kill-and-wait; it does not know which processes a session started.

use std::time::Duration;

/// How long to wait between looks at whether the killed processes are gone.
const POLL: Duration = Duration::from_millis(10);
/// Most looks before giving up with a warning (500 × 10 ms: a killed process is gone in
/// microseconds unless it is stuck in the kernel).
const POLLS: usize = 500;

/// `pid` and all its descendants, parents first.
fn tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for t in tasks.filter_map(Result::ok) {
                let Ok(kids) = std::fs::read_to_string(t.path().join("children")) else {
                    continue;
                };
                out.extend(
                    kids.split_whitespace()
                        .filter_map(|k| k.parse::<u32>().ok()),
                );
            }
        }
        i += 1;
    }
    out
}

/// Whether `pid` still runs code: it exists and is not a zombie (`Z`) or dead (`X`).
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may hold spaces.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z") | Some("X") | None)
}

/// Sends SIGKILL to each of `pids` and all their descendants, then waits until none of
/// them runs. Returns the processes still alive after the wait (empty when all are gone).
pub async fn kill_trees(pids: &[u32]) -> Vec<u32> {
    let all: Vec<u32> = pids.iter().flat_map(|p| tree(*p)).collect();
    if all.is_empty() {
        return all;
    }
    let _ = tokio::process::Command::new("kill")
        .arg("-KILL")
        .args(all.iter().map(u32::to_string))
        .stderr(std::process::Stdio::null())
        .status()
        .await;
    for _ in 0..POLLS {
        if !all.iter().any(|p| alive(*p)) {
            return Vec::new();
        }
        tokio::time::sleep(POLL).await;
    }
    all.into_iter().filter(|p| alive(*p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tree_with_a_background_child_is_gone_when_this_returns() {
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", "sleep 1000 & sleep 1000; wait"])
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        // Wait until the shell has started both sleeps.
        while tree(pid).len() < 3 {
            tokio::task::yield_now().await;
        }
        let members = tree(pid);
        assert!(kill_trees(&[pid]).await.is_empty());
        for p in members {
            assert!(!alive(p), "{p} still runs");
        }
        let _ = child.wait().await;
    }
}
