//! `slipway schedules list [--json]`: the configured `[[schedules]]`, each with its id, the
//! last slot fired (from the store) and the next slot, in the schedule's time zone.
//!
//! The store is read when it can be opened: while `slipway serve` holds it (sled allows
//! one process per data dir), last slots are unknown and said to be (`last_slot_known`).

use std::process::ExitCode;

use serde_json::{Value, json};

use slipway::config::Config;
use slipway::schedule::{ScheduleConfig, slots};
use slipway::store::{ScheduleRecord, Store};
use slipway::task::now_ms;

/// The JSON of one schedule: `id`, `cron`, `timezone`, `repo`, `blueprint`, `args`,
/// `channel`, `last_slot` and `next_slot` (RFC 3339 in the schedule's zone, or null), and
/// `last_slot_known` (false when the store could not be read).
fn row(s: &ScheduleConfig, record: Option<Option<ScheduleRecord>>, now: u64) -> Value {
    let spec = s.spec();
    let last = record
        .flatten()
        .and_then(|r| r.last_slot_ms)
        .map(|ms| slots::rfc3339(s, ms));
    json!({
        "id": s.id(),
        "cron": spec.cron,
        "timezone": spec.timezone,
        "repo": spec.repo,
        "blueprint": spec.blueprint,
        "args": spec.args,
        "channel": spec.channel,
        "last_slot": last,
        "last_slot_known": record.is_some(),
        "next_slot": slots::next_slot(s, now).map(|ms| slots::rfc3339(s, ms)),
    })
}

/// `slipway schedules list [--json]`. Exit 2 for a schedule naming an unknown repo.
pub fn list(cfg: &Config, json: bool) -> anyhow::Result<ExitCode> {
    if let Err(e) = slipway::schedule::validate(&cfg.file.schedules, &cfg.file.repos) {
        return crate::app::usage(e);
    }
    let schedules = &cfg.file.schedules;
    let dir = cfg.data_dir.join("store");
    // `None`: the store could not be read (last slots unknown).
    let store = if !dir.exists() || schedules.is_empty() {
        Ok(None)
    } else {
        Store::open(&dir).map(Some)
    };
    let store = match store {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("slipway: last slots unknown: {e}");
            None
        }
    };
    let now = now_ms();
    let mut rows = Vec::new();
    for s in schedules {
        let record = match &store {
            Some(Some(st)) => Some(st.schedule_record(s.id())?),
            Some(None) => Some(None),
            None => None,
        };
        rows.push(row(s, record, now));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        eprintln!("no [[schedules]] configured");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<12}  {:<16} {:<16} {:<20} {:<17} {:<25} {:<25} channel",
        "id", "cron", "timezone", "repo", "blueprint", "last slot", "next slot"
    );
    for r in &rows {
        let text = |k: &str| r[k].as_str().unwrap_or("-").to_string();
        let last = if r["last_slot_known"] == false {
            "?".to_string()
        } else {
            text("last_slot")
        };
        println!(
            "{:<12}  {:<16} {:<16} {:<20} {:<17} {:<25} {:<25} {}",
            text("id"),
            text("cron"),
            text("timezone"),
            text("repo"),
            text("blueprint"),
            last,
            text("next_slot"),
            text("channel"),
        );
    }
    Ok(ExitCode::SUCCESS)
}
