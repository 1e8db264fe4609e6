//! The loop that fires due slots: at start, then sleeping until the next slot of any
//! schedule (re-checking at least every [`RECHECK_MS`], and stopping at once when
//! cancelled). Each due slot is claimed in the store first, then handed to the
//! [`Starter`]; a failed start is logged (the starter says it where it can) and its slot is
//! not retried: the next slot is the retry.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::ScheduleConfig;
use super::slots::{self, Due};
use crate::store::{Store, StoreError};

/// How old a missed slot may be and still fire at start: one hour, in ms. A slot missed
/// for longer (slipway was down) is skipped and the schedule waits for its next slot, as
/// Kubernetes CronJob does past `startingDeadlineSeconds`. An hour covers a deploy or a
/// crash loop without firing yesterday's run at an unexpected time.
pub const CATCH_UP_WINDOW_MS: u64 = 3_600_000;

/// The longest sleep between checks, ms: a wall clock that jumps (NTP, a suspended VM) is
/// noticed within a minute.
pub const RECHECK_MS: u64 = 60_000;

/// The time, injectable: [`SystemClock`] in production, a fixed or stepped clock in tests.
pub trait Clock: Send + Sync {
    /// Now, unix ms.
    fn now_ms(&self) -> u64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        crate::task::now_ms()
    }
}

/// Why a start failed. None is retried for its slot; the next slot starts afresh.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The schedule's repo is not in `[[repos]]` (the config changed under a running
    /// scheduler; `validate` refuses it at start).
    #[error(
        "repo {repo} is not in [[repos]]: add a [[repos]] entry for it, or change the schedule's repo"
    )]
    UnknownRepo {
        /// The schedule's repo.
        repo: String,
    },
    /// The repo cannot be worked on (no URL, unreachable, GitHub not configured): the
    /// message says what to fix.
    #[error("{message}")]
    Repo {
        /// What to fix, for people.
        message: String,
    },
    /// The task could not be stored or queued.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The front end failed (Slack refused or was unreachable): `what` was being done.
    #[error("{what} failed: {source}")]
    Front {
        /// What the starter was doing (`chat.postMessage in C0DEPS`).
        what: String,
        /// The front end's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Starts what a schedule's slot asks for (Slack: a new thread and a queued task).
#[async_trait::async_trait]
pub trait Starter: Send + Sync {
    /// Starts slot `slot_ms` (unix ms) of `s`, already claimed; returns what was started,
    /// for the log (`task 1a2b3c4d5e6f in C0DEPS/1700000000.000100`). Called at most once
    /// per slot and schedule id across all processes sharing the store.
    async fn start(&self, s: &ScheduleConfig, slot_ms: u64) -> Result<String, StartError>;
}

/// What one [`Scheduler::tick`] did for a claimed slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fired {
    /// The starter started it.
    Started {
        /// Schedule id.
        id: String,
        /// The slot, unix ms.
        slot_ms: u64,
        /// What the starter said it started.
        what: String,
    },
    /// The starter failed; the slot stays claimed.
    Failed {
        /// Schedule id.
        id: String,
        /// The slot, unix ms.
        slot_ms: u64,
        /// The error, as logged.
        error: String,
    },
}

/// Fires the configured schedules. Build one per process with [`Scheduler::new`], then
/// [`Scheduler::run`] it; several may share one store.
pub struct Scheduler {
    schedules: Vec<ScheduleConfig>,
    store: Store,
    starter: Arc<dyn Starter>,
    clock: Arc<dyn Clock>,
    window_ms: u64,
}

impl Scheduler {
    /// A scheduler of `schedules` (checked: `crate::schedule::validate`) on `store`,
    /// starting through `starter`, with the catch-up window [`CATCH_UP_WINDOW_MS`].
    pub fn new(
        schedules: Vec<ScheduleConfig>,
        store: Store,
        starter: Arc<dyn Starter>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            schedules,
            store,
            starter,
            clock,
            window_ms: CATCH_UP_WINDOW_MS,
        }
    }

    /// The same scheduler with catch-up window `window_ms`.
    pub fn with_window(mut self, window_ms: u64) -> Self {
        self.window_ms = window_ms;
        self
    }

    /// One pass over every schedule at the clock's now: records first sightings, claims
    /// each due slot and starts it. Returns the slots it claimed. A store failure skips
    /// that schedule (logged) until the next pass.
    pub async fn tick(&self) -> Vec<Fired> {
        let mut fired = Vec::new();
        for s in &self.schedules {
            let now = self.clock.now_ms();
            let id = s.id();
            let record = match self.store.schedule_seen(id, now).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(schedule = id, error = %e, "cannot read the schedule's record; skipped this pass");
                    continue;
                }
            };
            let slot_ms = match slots::due(s, &record, now, self.window_ms) {
                Due::Fire { slot_ms } => slot_ms,
                Due::TooOld { slot_ms } => {
                    tracing::debug!(schedule = id, slot = %slots::label(s, slot_ms), "missed slot older than the catch-up window; not fired");
                    continue;
                }
                other => {
                    tracing::debug!(schedule = id, due = ?other, "nothing due");
                    continue;
                }
            };
            match self.store.claim_schedule_slot(id, slot_ms).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!(schedule = id, slot = %slots::label(s, slot_ms), "slot fired already (another process or before a restart)");
                    continue;
                }
                Err(e) => {
                    tracing::error!(schedule = id, error = %e, "cannot claim the slot; retried on the next pass");
                    continue;
                }
            }
            let spec = s.spec();
            match self.starter.start(s, slot_ms).await {
                Ok(what) => {
                    tracing::info!(schedule = id, slot = %slots::label(s, slot_ms), repo = spec.repo, blueprint = spec.blueprint, started = what, "schedule fired");
                    fired.push(Fired::Started {
                        id: id.to_string(),
                        slot_ms,
                        what,
                    });
                }
                Err(e) => {
                    tracing::error!(schedule = id, slot = %slots::label(s, slot_ms), repo = spec.repo, error = %e, "scheduled start failed; the next slot tries again");
                    fired.push(Fired::Failed {
                        id: id.to_string(),
                        slot_ms,
                        error: e.to_string(),
                    });
                }
            }
        }
        fired
    }

    /// How long to sleep after a pass at `now_ms`: until the next slot of any schedule,
    /// at most [`RECHECK_MS`].
    pub fn pause_ms(&self, now_ms: u64) -> u64 {
        self.schedules
            .iter()
            .filter_map(|s| slots::next_slot(s, now_ms))
            .map(|next| next.saturating_sub(now_ms))
            .min()
            .unwrap_or(RECHECK_MS)
            .min(RECHECK_MS)
    }

    /// Passes until `stop` is cancelled: one at once, then one at each next slot (or
    /// every [`RECHECK_MS`]). A start in flight when `stop` fires finishes first.
    pub async fn run(self, stop: CancellationToken) {
        if self.schedules.is_empty() {
            return;
        }
        tracing::info!(schedules = self.schedules.len(), "scheduler started");
        loop {
            if stop.is_cancelled() {
                return;
            }
            self.tick().await;
            let pause = self.pause_ms(self.clock.now_ms());
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(std::time::Duration::from_millis(pause)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests;
