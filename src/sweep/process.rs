//! Who owns a sandbox container: the identity of a slipway process, and whether it still
//! runs.
//!
//! A process is `(boot id, pid namespace, pid, start time)`:
//! - the boot id (`/proc/sys/kernel/random/boot_id`, proc(5)) changes at every boot, so a
//!   label from an earlier boot names a dead process;
//! - the start time is field 22 of `/proc/<pid>/stat` (clock ticks since boot, proc(5)), so
//!   a pid reused by another process does not pass for the owner;
//! - the pid namespace (the inode of `/proc/self/ns/pid`, namespaces(7)) says whether a pid
//!   means anything here: slipway as PID 1 in a container sees only its own namespace, and a
//!   label written from another namespace can be judged neither alive nor dead, so it is
//!   left alone (never removing what a live process on the same engine still uses).

use std::fmt;

/// One slipway process, as written in a container's `slipway.owner` label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessId {
    /// `/proc/sys/kernel/random/boot_id`, trimmed.
    pub boot: String,
    /// The inode number of the process's pid namespace.
    pub pidns: u64,
    /// The pid, in that namespace.
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat`: start time after boot, in clock ticks.
    pub start: u64,
}

/// What a label says about its owner, judged from this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// The owner runs: keep what it owns.
    Alive,
    /// The owner is gone (another boot, no such pid, or the pid was reused).
    Dead,
    /// The owner lives in another pid namespace: nothing here can tell; keep.
    Unknown,
}

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}",
            self.boot, self.pidns, self.pid, self.start
        )
    }
}

impl ProcessId {
    /// This process, read from `/proc/self`; `None` without a readable `/proc`.
    pub fn current() -> Option<Self> {
        Some(Self {
            boot: boot_id()?,
            pidns: pid_namespace()?,
            pid: std::process::id(),
            start: start_time("self")?,
        })
    }

    /// Parses a label written by [`fmt::Display`].
    pub fn parse(label: &str) -> Option<Self> {
        let mut it = label.split(':');
        let id = Self {
            boot: it.next()?.to_string(),
            pidns: it.next()?.parse().ok()?,
            pid: it.next()?.parse().ok()?,
            start: it.next()?.parse().ok()?,
        };
        it.next().is_none().then_some(id)
    }

    /// Whether this owner still runs, judged by `me` (this process) with `start_of`, which
    /// reads a pid's start time (`None`: no such process).
    pub fn judge(&self, me: &ProcessId, start_of: impl Fn(u32) -> Option<u64>) -> Liveness {
        if self.boot != me.boot {
            return Liveness::Dead;
        }
        if self.pidns != me.pidns {
            return Liveness::Unknown;
        }
        match start_of(self.pid) {
            Some(start) if start == self.start => Liveness::Alive,
            _ => Liveness::Dead,
        }
    }

    /// [`Self::judge`] against this machine's `/proc`.
    pub fn liveness(&self, me: &ProcessId) -> Liveness {
        self.judge(me, |pid| start_time(&pid.to_string()))
    }
}

fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(id.trim().to_string())
}

fn pid_namespace() -> Option<u64> {
    let link = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let link = link.to_str()?;
    link.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
}

/// Field 22 of `/proc/<pid>/stat` (`pid` may be `self`). The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its last `)`.
pub fn start_time(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start(&stat)
}

fn parse_start(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is the first after the name, so field 22 is the 20th.
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> ProcessId {
        ProcessId {
            boot: "b1".into(),
            pidns: 7,
            pid: 100,
            start: 5000,
        }
    }

    #[test]
    fn a_label_round_trips() {
        let id = me();
        assert_eq!(ProcessId::parse(&id.to_string()), Some(id));
        assert_eq!(ProcessId::parse("b:1:2"), None);
        assert_eq!(ProcessId::parse("b:1:2:3:4"), None);
        assert_eq!(ProcessId::parse("b:x:2:3"), None);
    }

    #[test]
    fn a_reused_pid_is_a_dead_owner() {
        let owner = ProcessId {
            pid: 42,
            start: 1234,
            ..me()
        };
        assert_eq!(owner.judge(&me(), |_| Some(1234)), Liveness::Alive);
        // Same pid, another process (started later): the owner is gone.
        assert_eq!(owner.judge(&me(), |_| Some(9999)), Liveness::Dead);
        assert_eq!(owner.judge(&me(), |_| None), Liveness::Dead);
    }

    #[test]
    fn another_boot_is_dead_and_another_namespace_is_unknown() {
        let earlier_boot = ProcessId {
            boot: "b0".into(),
            ..me()
        };
        assert_eq!(earlier_boot.judge(&me(), |_| Some(5000)), Liveness::Dead);
        // PID 1 of another container: /proc here says nothing about it.
        let other_ns = ProcessId {
            pidns: 8,
            pid: 1,
            ..me()
        };
        assert_eq!(other_ns.judge(&me(), |_| None), Liveness::Unknown);
    }

    #[test]
    fn this_process_is_alive() {
        let me = ProcessId::current().expect("/proc is readable");
        assert_eq!(me.liveness(&me), Liveness::Alive);
        let stat = "12 (a b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 777 20";
        assert_eq!(parse_start(stat), Some(777));
    }
}
