//! Processes a sandbox session owns, held as pidfds (pidfd_open(2), Linux 5.3), so that a
//! kill at close reaches exactly the process that was spawned, never a process that got
//! its PID after it ended and was reaped (PID reuse).
//!
//! A pidfd names one process for its whole life: `pidfd_send_signal(2)` on it fails with
//! `ESRCH` once that process is gone, whatever runs under the same number by then. The pidfd
//! is opened right after the spawn, while slipway, the parent, has not waited for the child
//! yet, so the PID cannot have been reused in between. Where pidfds are unavailable the
//! process is not tracked: it is still ended by its `kill_on_drop` handle and bwrap's
//! `--die-with-parent`, but never by a bare PID.

use std::os::fd::OwnedFd;
use std::sync::Mutex;

use rustix::process::{Pid, PidfdFlags, Signal};

/// The processes of one session still to be killed at close.
#[derive(Debug, Default)]
pub struct OwnedPids {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    /// Ticket, PID (for walking the process's tree in `/proc`), pidfd.
    live: Vec<(u64, u32, OwnedFd)>,
}

/// One tracked process; give it back to [`OwnedPids::forget`] once the process is reaped.
#[derive(Debug, PartialEq, Eq)]
pub struct Ticket(u64);

impl OwnedPids {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tracks the process `pid`, a child of this process not yet waited for. `None` when no
    /// pidfd can be opened (the process is then not tracked; see the module doc).
    pub fn track(&self, pid: Option<u32>) -> Option<Ticket> {
        let raw = pid?;
        let pid = Pid::from_raw(i32::try_from(raw).ok()?)?;
        let fd = match rustix::process::pidfd_open(pid, PidfdFlags::empty()) {
            Ok(fd) => fd,
            Err(e) => {
                tracing::debug!(pid = pid.as_raw_nonzero().get(), error = %e, "no pidfd: process not tracked");
                return None;
            }
        };
        let mut inner = self.lock();
        inner.next += 1;
        let key = inner.next;
        inner.live.push((key, raw, fd));
        Some(Ticket(key))
    }

    /// Stops tracking a process (it ended and was waited for).
    pub fn forget(&self, ticket: Ticket) {
        self.lock().live.retain(|(k, _, _)| *k != ticket.0);
    }

    /// Stops tracking every process and returns their PIDs, for a caller that ends their
    /// whole process trees (`super::reap::kill_trees`) while they are still children of
    /// this process, not yet waited for (so the PIDs are still theirs).
    pub fn take_pids(&self) -> Vec<u32> {
        std::mem::take(&mut self.lock().live)
            .into_iter()
            .map(|(_, pid, _)| pid)
            .collect()
    }

    /// SIGKILLs every tracked process still alive, and stops tracking them all. Returns how
    /// many were signalled (a process already gone is skipped).
    pub fn kill_all(&self) -> usize {
        let live = std::mem::take(&mut self.lock().live);
        live.iter()
            .filter(|(_, _, fd)| rustix::process::pidfd_send_signal(fd, Signal::KILL).is_ok())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_that_ended_is_not_signalled_and_a_live_one_is() {
        let owned = OwnedPids::default();
        let mut done = std::process::Command::new("true").spawn().unwrap();
        let mut sleeping = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let _t1 = owned.track(Some(done.id())).unwrap();
        let _t2 = owned.track(Some(sleeping.id())).unwrap();
        // `true` ends and is reaped: its PID is free for anyone. A kill by number could hit
        // whoever gets it next; the pidfd reports the process gone instead.
        assert!(done.wait().unwrap().success());
        assert_eq!(owned.kill_all(), 1, "only the live process is signalled");
        let status = sleeping.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9));
        assert_eq!(owned.kill_all(), 0, "nothing is tracked after a kill_all");
    }

    #[test]
    fn a_forgotten_process_is_not_killed() {
        let owned = OwnedPids::default();
        let mut sleeping = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let t = owned.track(Some(sleeping.id())).unwrap();
        owned.forget(t);
        assert_eq!(owned.kill_all(), 0);
        assert!(sleeping.try_wait().unwrap().is_none(), "still running");
        sleeping.kill().unwrap();
        sleeping.wait().unwrap();
    }
}

/// Kills a spawned bwrap's whole process group when dropped, unless [`Self::reaped`] was
/// called. bwrap runs in a process group of its own (`process_group(0)`), which its
/// namespace child joins by inheritance: killing bwrap alone right after the spawn, before
/// that child armed `--die-with-parent` (`PR_SET_PDEATHSIG`, which does not fire for a
/// parent already gone), left the child blocked forever on bwrap's setup handshake.
///
/// The group id is bwrap's PID, and it is signalled only while bwrap is still slipway's
/// unreaped child, so the number cannot have been reused: declare the guard after the
/// `Child` (locals drop in reverse order) so it fires before the child is dropped.
#[derive(Debug)]
pub struct GroupKill(Option<Pid>);

impl GroupKill {
    /// A guard for the group led by the child `pid` (`None`: the child is already gone).
    pub fn new(pid: Option<u32>) -> Self {
        Self(pid.and_then(|p| Pid::from_raw(i32::try_from(p).ok()?)))
    }

    /// The leader was waited for: its PID is free again, so the group is never signalled.
    pub fn reaped(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ = rustix::process::kill_process_group(pgid, Signal::KILL);
        }
    }
}
