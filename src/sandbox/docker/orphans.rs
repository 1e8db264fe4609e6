//! The docker backend's containers of dead slipway processes: the owner labels every
//! container gets, and the reaping of containers whose owner is gone.
//!
//! A container names its owner with `slipway.owner` ([`ProcessId`]: boot id, pid namespace,
//! pid, start time), judged from this process: another boot or a pid now running another
//! process (its start time differs) is a dead owner, another pid namespace is left alone
//! (a live slipway in another container may share the engine). Containers of older
//! slipways carry only `slipway.pid`, judged as before: the pid is gone.

use std::collections::HashMap;

use bollard::query_parameters::ListContainersOptionsBuilder;

use super::{DockerSandbox, engine_err, remove_container};
use crate::sandbox::Result;
use crate::sweep::process::{Liveness, ProcessId};

/// The label naming the owner process.
pub const OWNER_LABEL: &str = "slipway.owner";

/// What a container's labels say about its owner, judged by `me`.
pub fn owner_liveness(labels: &HashMap<String, String>, me: &ProcessId) -> Liveness {
    if let Some(owner) = labels.get(OWNER_LABEL) {
        return match ProcessId::parse(owner) {
            Some(owner) => owner.liveness(me),
            // Unreadable: not ours to judge.
            None => Liveness::Unknown,
        };
    }
    match labels
        .get("slipway.pid")
        .and_then(|p| p.parse::<u32>().ok())
    {
        Some(pid) if std::path::Path::new(&format!("/proc/{pid}")).exists() => Liveness::Alive,
        _ => Liveness::Dead,
    }
}

impl DockerSandbox {
    /// Removes slipway containers whose owning process is gone (`owner_liveness`).
    /// Returns how many were removed; nothing is removed without a readable `/proc/self`.
    pub async fn reap_orphans(&self) -> Result<usize> {
        let Some(me) = ProcessId::current() else {
            return Ok(0);
        };
        let filters: HashMap<&str, Vec<&str>> =
            HashMap::from([("label", vec!["slipway.managed=1"])]);
        let opts = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(engine_err)?;
        let mut removed = 0;
        for c in list {
            let labels = c.labels.unwrap_or_default();
            if owner_liveness(&labels, &me) == Liveness::Dead
                && let Some(id) = c.id
            {
                remove_container(&self.docker, &id).await;
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(
                removed,
                "removed sandbox containers of dead slipway processes"
            );
        }
        Ok(removed)
    }

    /// The labels every container of this process gets.
    /// A warm pool's container also carries `slipway.pool=<repo>`.
    pub(super) fn labels(run_id: &str, pool: Option<&str>) -> HashMap<String, String> {
        let mut l = HashMap::from([
            ("slipway.managed".to_string(), "1".to_string()),
            ("slipway.pid".to_string(), std::process::id().to_string()),
            ("slipway.run".to_string(), run_id.to_string()),
        ]);
        if let Some(me) = ProcessId::current() {
            l.insert(OWNER_LABEL.to_string(), me.to_string());
        }
        if let Some(repo) = pool {
            l.insert("slipway.pool".to_string(), repo.to_string());
        }
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_of_a_reused_pid_is_an_orphan_and_this_process_is_not() {
        let me = ProcessId::current().unwrap();
        let mine = HashMap::from([(OWNER_LABEL.to_string(), me.to_string())]);
        assert_eq!(owner_liveness(&mine, &me), Liveness::Alive);
        // This very pid, but started at another time: the pid was reused.
        let reused = ProcessId {
            start: me.start + 1,
            ..me.clone()
        };
        let theirs = HashMap::from([
            (OWNER_LABEL.to_string(), reused.to_string()),
            ("slipway.pid".to_string(), me.pid.to_string()),
        ]);
        assert_eq!(owner_liveness(&theirs, &me), Liveness::Dead);
    }
}
