//! `[[schedules]]`: cron schedules that start tasks, once per slot, across restarts and
//! with several processes sharing one store in mind (`DESIGN.md` §5).
//!
//! Owns the section's shape and its validation ([`ScheduleConfig`], checked when the
//! config is parsed; [`validate`] adds the cross-checks against `[[repos]]`), the slot
//! arithmetic ([`slots`]: which slot is due, in the schedule's time zone, DST included) and
//! the loop that fires due slots ([`Scheduler`]). It does not know how a task is started:
//! a front end implements [`Starter`] (Slack: `crate::slack::schedule`). Each slot is
//! claimed in the store (`Store::claim_schedule_slot`, a compare-and-swap) *before* its
//! start, so a restart or a second process never fires it twice; a failed start is not
//! retried for its slot, the next slot is the retry.
//!
//! Crates: `croner` parses the five-field expression and finds occurrences in a
//! `chrono-tz` zone; its DST rules are Vixie cron's (a fixed-time job in a spring-forward
//! gap runs at the first instant after the gap; on a fall-back overlap it runs once, at
//! the earlier instant; interval jobs run on both instants). The `cron` crate was the
//! alternative: it wants six or seven fields (seconds first), not the five the contract
//! names.
#![warn(missing_docs)]

mod config;
mod scheduler;
pub mod slots;

pub use config::{ScheduleConfig, ScheduleConfigError, ScheduleSpec, validate};
pub use scheduler::{
    CATCH_UP_WINDOW_MS, Clock, Fired, RECHECK_MS, Scheduler, StartError, Starter, SystemClock,
};
