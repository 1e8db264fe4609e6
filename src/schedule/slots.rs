//! Slot arithmetic, pure: which occurrence of a schedule ("slot", unix ms) is due at a
//! given time, given what the store remembers of it. No clock and no I/O here, so every
//! rule is tested with fixed instants (DST days included).
//!
//! The rule ([`due`]): the latest slot at or before now fires when it is newer than the
//! last slot fired, not older than the schedule's first sighting (a new or edited
//! schedule does not fire slots that passed before it existed), and no older than the
//! catch-up window. Slots missed while slipway was down are never fired one by one: only
//! the most recent, and only within the window, like Kubernetes CronJob's
//! `startingDeadlineSeconds`.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::ScheduleConfig;
use crate::store::ScheduleRecord;

/// What [`due`] decided for one schedule at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Fire `slot_ms` (claim it first).
    Fire {
        /// The slot, unix ms.
        slot_ms: u64,
    },
    /// The latest slot was fired already (here or by another process).
    Fired {
        /// The slot, unix ms.
        slot_ms: u64,
    },
    /// The latest slot passed before the schedule was first seen.
    BeforeFirstSeen {
        /// The slot, unix ms.
        slot_ms: u64,
    },
    /// The latest slot was missed (slipway was down) longer ago than the catch-up window.
    TooOld {
        /// The slot, unix ms.
        slot_ms: u64,
    },
    /// No slot at or before now (an expression that never matched yet).
    None,
}

/// `ms` (unix) in `zone`, to the second (cron has no finer unit).
fn at(zone: Tz, ms: u64) -> Option<DateTime<Tz>> {
    let secs = i64::try_from(ms / 1000).ok()?;
    Utc.timestamp_opt(secs, 0)
        .single()
        .map(|t| t.with_timezone(&zone))
}

fn ms_of(t: DateTime<Tz>) -> Option<u64> {
    u64::try_from(t.timestamp_millis()).ok()
}

/// The latest slot at or before `now_ms`, unix ms; `None` when there is none (croner
/// searches a bounded range).
pub fn latest_slot(s: &ScheduleConfig, now_ms: u64) -> Option<u64> {
    let now = at(s.zone(), now_ms)?;
    s.cron()
        .find_previous_occurrence(&now, true)
        .ok()
        .and_then(ms_of)
}

/// The first slot after `now_ms`, unix ms.
pub fn next_slot(s: &ScheduleConfig, now_ms: u64) -> Option<u64> {
    let now = at(s.zone(), now_ms)?;
    s.cron()
        .find_next_occurrence(&now, false)
        .ok()
        .and_then(ms_of)
}

/// Whether a slot is due for `s` at `now_ms`, given its stored `record`, with catch-up
/// window `window_ms`.
pub fn due(s: &ScheduleConfig, record: &ScheduleRecord, now_ms: u64, window_ms: u64) -> Due {
    let Some(slot_ms) = latest_slot(s, now_ms) else {
        return Due::None;
    };
    if record.last_slot_ms.is_some_and(|last| last >= slot_ms) {
        Due::Fired { slot_ms }
    } else if slot_ms < record.first_seen_ms {
        Due::BeforeFirstSeen { slot_ms }
    } else if now_ms.saturating_sub(slot_ms) > window_ms {
        Due::TooOld { slot_ms }
    } else {
        Due::Fire { slot_ms }
    }
}

/// `slot_ms` as RFC 3339 in the schedule's zone (`2026-11-30T06:00:00+01:00`).
pub fn rfc3339(s: &ScheduleConfig, slot_ms: u64) -> String {
    at(s.zone(), slot_ms)
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| slot_ms.to_string())
}

/// `slot_ms` for people: `2026-11-30 06:00 Europe/Berlin`.
pub fn label(s: &ScheduleConfig, slot_ms: u64) -> String {
    at(s.zone(), slot_ms)
        .map(|t| format!("{} {}", t.format("%Y-%m-%d %H:%M"), s.zone().name()))
        .unwrap_or_else(|| slot_ms.to_string())
}

#[cfg(test)]
mod tests;
