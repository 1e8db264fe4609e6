//! Node bookkeeping for one run: [`RunEvent`]s for observers, node records in the store and
//! `node_finished` audit entries. Owned by the run lifecycle ([`crate::run`]); nodes never
//! call it directly, so every start has exactly one finish.

use std::time::Instant;

use tokio::sync::mpsc;

use super::events::{NodeKind, NodeName, RunEvent};
use crate::report::RunReport;
use crate::store::{AuditEvent, NodeRecord, RunLog, RunRecord, RunState, StoreError};
use crate::task::now_ms;

/// Node bookkeeping for one run: emits events, appends node records, persists the run
/// record after every node.
pub struct Tracker {
    /// Transcript and audit writer of this run (redacting).
    pub log: RunLog,
    /// The run record, stored after every node once `persist`.
    pub record: RunRecord,
    events: Option<mpsc::Sender<RunEvent>>,
    /// Whether the run record may be written yet (false until the task is stored).
    pub persist: bool,
}

/// A started node; hand it back to [`Tracker::finish`].
pub struct NodeTimer {
    name: NodeName,
    kind: NodeKind,
    started: Instant,
    started_ms: u64,
}

impl Tracker {
    /// Bookkeeping for the run `record`, reporting to `events` (bounded) when given.
    pub fn new(log: RunLog, record: RunRecord, events: Option<mpsc::Sender<RunEvent>>) -> Self {
        Self {
            log,
            record,
            events,
            persist: false,
        }
    }

    /// The observers' channel, for parts of the run that report on their own (the spend
    /// meter).
    pub fn events(&self) -> Option<mpsc::Sender<RunEvent>> {
        self.events.clone()
    }

    /// Sends an event; a closed or slow observer never blocks the run beyond the channel's
    /// bound.
    pub async fn emit(&self, e: RunEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(e).await;
        }
    }

    /// Announces `name` as started.
    pub async fn start(&self, name: NodeName, kind: NodeKind) -> NodeTimer {
        self.emit(RunEvent::NodeStarted {
            node: name.to_string(),
            kind,
        })
        .await;
        NodeTimer {
            name,
            kind,
            started: Instant::now(),
            started_ms: now_ms(),
        }
    }

    /// Records the node's end; returns its duration in ms.
    pub async fn finish(
        &mut self,
        t: NodeTimer,
        ok: bool,
        detail: impl Into<String>,
    ) -> Result<u64, StoreError> {
        let duration_ms = t.started.elapsed().as_millis() as u64;
        let detail = detail.into();
        self.record.nodes.push(NodeRecord {
            node: t.name.to_string(),
            kind: t.kind.as_str().to_string(),
            ok,
            detail: detail.clone(),
            started_ms: t.started_ms,
            duration_ms,
        });
        if self.persist {
            self.log.store.put_run(&self.record).await?;
            self.log
                .audit(
                    "slipway",
                    AuditEvent::NodeFinished {
                        node: t.name.to_string(),
                        kind: t.kind.as_str().to_string(),
                        ok,
                        duration_ms,
                    },
                )
                .await?;
        }
        self.emit(RunEvent::NodeFinished {
            node: t.name.to_string(),
            kind: t.kind,
            ok,
            detail,
            duration_ms,
        })
        .await;
        Ok(duration_ms)
    }

    /// Marks the run ended and stores it.
    pub async fn close(
        &mut self,
        state: RunState,
        report: Option<RunReport>,
        error: Option<String>,
    ) -> Result<(), StoreError> {
        self.record.state = state;
        self.record.report = report;
        self.record.error = error;
        self.record.finished_ms = Some(now_ms());
        if self.persist {
            self.log.store.put_run(&self.record).await?;
        }
        Ok(())
    }
}
