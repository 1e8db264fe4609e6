use super::*;
use crate::schedule::ScheduleSpec;

fn schedule(cron: &str, timezone: &str) -> ScheduleConfig {
    ScheduleConfig::new(ScheduleSpec {
        cron: cron.into(),
        timezone: timezone.into(),
        repo: "acme/api".into(),
        blueprint: "checks_only".into(),
        args: vec![],
        channel: "C0DEPS".into(),
    })
    .unwrap()
}

/// Unix ms of a UTC wall clock time.
fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> u64 {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .unwrap()
        .timestamp_millis() as u64
}

const MIN: u64 = 60_000;
const HOUR: u64 = 60 * MIN;

fn seen_long_ago(last: Option<u64>) -> ScheduleRecord {
    ScheduleRecord {
        first_seen_ms: 0,
        last_slot_ms: last,
    }
}

#[test]
fn monday_six_in_berlin_follows_the_zone_offset_through_the_year() {
    let s = schedule("0 6 * * MON", "Europe/Berlin");
    // Winter (CET, +01:00): 05:00 UTC; summer (CEST, +02:00): 04:00 UTC.
    assert_eq!(
        next_slot(&s, utc(2026, 11, 29, 12, 0)),
        Some(utc(2026, 11, 30, 5, 0))
    );
    assert_eq!(
        next_slot(&s, utc(2026, 5, 31, 12, 0)),
        Some(utc(2026, 6, 1, 4, 0))
    );
    assert_eq!(
        latest_slot(&s, utc(2026, 11, 30, 5, 0)),
        Some(utc(2026, 11, 30, 5, 0))
    );
    assert_eq!(
        latest_slot(&s, utc(2026, 11, 30, 4, 59)),
        Some(utc(2026, 11, 23, 5, 0))
    );
    assert_eq!(
        rfc3339(&s, utc(2026, 11, 30, 5, 0)),
        "2026-11-30T06:00:00+01:00"
    );
    assert_eq!(
        label(&s, utc(2026, 6, 1, 4, 0)),
        "2026-06-01 06:00 Europe/Berlin"
    );
}

/// 2026-03-29 in Berlin: 02:00 CET jumps to 03:00 CEST, so 02:30 does not exist. The
/// daily 02:30 job runs once that day, at the first instant after the gap (03:00 CEST,
/// 01:00 UTC), and at 02:30 on the days around it.
#[test]
fn on_the_spring_forward_day_a_slot_in_the_gap_runs_once_right_after_it() {
    let s = schedule("30 2 * * *", "Europe/Berlin");
    let before = utc(2026, 3, 28, 1, 30); // 02:30 CET
    let gap_day = utc(2026, 3, 29, 1, 0); // 03:00 CEST
    let after = utc(2026, 3, 30, 0, 30); // 02:30 CEST
    assert_eq!(next_slot(&s, before), Some(gap_day));
    assert_eq!(next_slot(&s, gap_day), Some(after));
    assert_eq!(latest_slot(&s, gap_day + 10 * MIN), Some(gap_day));
    assert_eq!(rfc3339(&s, gap_day), "2026-03-29T03:00:00+02:00");
    // Fired at the gap-day slot: nothing else is due until the next day's.
    let fired = seen_long_ago(Some(gap_day));
    assert_eq!(
        due(&s, &fired, gap_day + 59 * MIN, HOUR),
        Due::Fired { slot_ms: gap_day }
    );
}

/// 2026-10-25 in Berlin: 03:00 CEST falls back to 02:00 CET, so 02:30 happens twice
/// (00:30 and 01:30 UTC). A fixed-time job runs once, at the first; a restart during the
/// repeated hour sees that slot as the latest and does not fire again.
#[test]
fn on_the_fall_back_day_a_repeated_time_runs_once() {
    let s = schedule("30 2 * * *", "Europe/Berlin");
    let first = utc(2026, 10, 25, 0, 30); // 02:30 CEST
    let second = utc(2026, 10, 25, 1, 30); // 02:30 CET, the same wall clock time
    assert_eq!(next_slot(&s, first - MIN), Some(first));
    assert_eq!(next_slot(&s, first), Some(utc(2026, 10, 26, 1, 30)));
    assert_eq!(latest_slot(&s, second + 15 * MIN), Some(first));
    let fired = seen_long_ago(Some(first));
    assert_eq!(
        due(&s, &fired, second + 15 * MIN, HOUR),
        Due::Fired { slot_ms: first }
    );
    // An every-minute job runs in both hours: its slots are instants, not wall clock times.
    let m = schedule("* * * * *", "Europe/Berlin");
    assert_eq!(latest_slot(&m, first + 30_000), Some(first));
    assert_eq!(latest_slot(&m, second + 30_000), Some(second));
}

#[test]
fn of_the_slots_missed_while_down_only_the_latest_fires_within_the_window() {
    let s = schedule("0 * * * *", "UTC");
    let three_hours_ago_fired = seen_long_ago(Some(utc(2026, 11, 30, 3, 0)));
    // Down from 03:00 to 06:20: 04:00, 05:00 and 06:00 were missed; 06:00 fires, once.
    let now = utc(2026, 11, 30, 6, 20);
    assert_eq!(
        due(&s, &three_hours_ago_fired, now, HOUR),
        Due::Fire {
            slot_ms: utc(2026, 11, 30, 6, 0)
        }
    );
    // At exactly the window's edge it still fires; a millisecond later it does not.
    let daily = schedule("0 6 * * *", "UTC");
    let slot = utc(2026, 11, 30, 6, 0);
    let last = seen_long_ago(Some(utc(2026, 11, 29, 6, 0)));
    assert_eq!(
        due(&daily, &last, slot + HOUR, HOUR),
        Due::Fire { slot_ms: slot }
    );
    assert_eq!(
        due(&daily, &last, slot + HOUR + 1, HOUR),
        Due::TooOld { slot_ms: slot }
    );
    // Never fired at all (first seen long ago): the latest slot within the window fires.
    assert_eq!(
        due(&daily, &seen_long_ago(None), slot + 5 * MIN, HOUR),
        Due::Fire { slot_ms: slot }
    );
}

#[test]
fn a_new_or_edited_schedule_fires_nothing_from_before_it_was_first_seen() {
    let s = schedule("* * * * *", "UTC");
    let seen_at = utc(2026, 11, 30, 6, 0) + 30_000; // mid-minute
    let fresh = ScheduleRecord {
        first_seen_ms: seen_at,
        last_slot_ms: None,
    };
    assert_eq!(
        due(&s, &fresh, seen_at, HOUR),
        Due::BeforeFirstSeen {
            slot_ms: utc(2026, 11, 30, 6, 0)
        }
    );
    // The next minute fires.
    let next = utc(2026, 11, 30, 6, 1);
    assert_eq!(due(&s, &fresh, next, HOUR), Due::Fire { slot_ms: next });
    assert_eq!(
        due(&s, &fresh, next + 59_999, HOUR),
        Due::Fire { slot_ms: next }
    );
}
