use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{TimeZone, Utc};

use super::*;
use crate::schedule::ScheduleSpec;

/// A clock the test sets.
#[derive(Default)]
struct SetClock(AtomicU64);

impl SetClock {
    fn at(ms: u64) -> Arc<Self> {
        Arc::new(Self(AtomicU64::new(ms)))
    }
    fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for SetClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Records what it was asked to start; fails the slots listed in `fail`.
#[derive(Default)]
struct Recorder {
    started: Mutex<Vec<(String, u64)>>,
    fail: Mutex<Vec<u64>>,
}

#[async_trait::async_trait]
impl Starter for Recorder {
    async fn start(&self, s: &ScheduleConfig, slot_ms: u64) -> Result<String, StartError> {
        // Let a racing scheduler run in between (the claim must already hold).
        tokio::task::yield_now().await;
        self.started
            .lock()
            .unwrap()
            .push((s.id().to_string(), slot_ms));
        if self.fail.lock().unwrap().contains(&slot_ms) {
            return Err(StartError::Repo {
                message: "the registry is down".into(),
            });
        }
        Ok(format!("slot {slot_ms}"))
    }
}

fn every_minute() -> ScheduleConfig {
    ScheduleConfig::new(ScheduleSpec {
        cron: "* * * * *".into(),
        timezone: "Europe/Berlin".into(),
        repo: "acme/api".into(),
        blueprint: "checks_only".into(),
        args: vec![],
        channel: "C0DEV".into(),
    })
    .unwrap()
}

fn utc(h: u32, mi: u32, s: u32) -> u64 {
    Utc.with_ymd_and_hms(2026, 11, 30, h, mi, s)
        .unwrap()
        .timestamp_millis() as u64
}

fn scheduler(store: &Store, starter: &Arc<Recorder>, clock: &Arc<SetClock>) -> Scheduler {
    Scheduler::new(
        vec![every_minute()],
        store.clone(),
        starter.clone(),
        clock.clone(),
    )
}

#[tokio::test]
async fn a_slot_fires_once_and_a_restart_in_the_same_minute_does_not_fire_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let starter = Arc::new(Recorder::default());
    let clock = SetClock::at(utc(6, 0, 30));
    {
        let store = Store::open(dir.path()).unwrap();
        let s = scheduler(&store, &starter, &clock);
        // First seen mid-minute: 06:00 passed before the schedule existed.
        assert!(s.tick().await.is_empty());
        clock.set(utc(6, 1, 0));
        let fired = s.tick().await;
        assert!(
            matches!(&fired[..], [Fired::Started { slot_ms, .. }] if *slot_ms == utc(6, 1, 0)),
            "{fired:?}"
        );
        clock.set(utc(6, 1, 40));
        assert!(s.tick().await.is_empty());
    }
    // A restart on the same store within the minute.
    let store = Store::open(dir.path()).unwrap();
    let s = scheduler(&store, &starter, &clock);
    clock.set(utc(6, 1, 50));
    assert!(s.tick().await.is_empty());
    clock.set(utc(6, 2, 0));
    assert_eq!(s.tick().await.len(), 1);
    let slots: Vec<u64> = starter
        .started
        .lock()
        .unwrap()
        .iter()
        .map(|x| x.1)
        .collect();
    assert_eq!(slots, vec![utc(6, 1, 0), utc(6, 2, 0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_schedulers_sharing_a_store_fire_each_slot_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let starter = Arc::new(Recorder::default());
    let clock = SetClock::at(utc(4, 59, 30));
    let a = Arc::new(scheduler(&store, &starter, &clock));
    let b = Arc::new(scheduler(&store, &starter, &clock));
    assert!(a.tick().await.is_empty()); // both see the schedule first at 04:59:30
    for minute in 1..=20 {
        clock.set(utc(5, minute, 0));
        let (x, y) = tokio::join!(
            tokio::spawn({
                let a = a.clone();
                async move { a.tick().await }
            }),
            tokio::spawn({
                let b = b.clone();
                async move { b.tick().await }
            })
        );
        assert_eq!(x.unwrap().len() + y.unwrap().len(), 1, "minute {minute}");
    }
    assert_eq!(starter.started.lock().unwrap().len(), 20);
}

#[tokio::test]
async fn a_failed_start_is_not_retried_for_its_slot_and_the_next_slot_tries_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let starter = Arc::new(Recorder::default());
    starter.fail.lock().unwrap().push(utc(6, 1, 0));
    let clock = SetClock::at(utc(6, 0, 0));
    let s = scheduler(&store, &starter, &clock);
    s.tick().await;
    clock.set(utc(6, 1, 0));
    let fired = s.tick().await;
    assert!(
        matches!(&fired[..], [Fired::Failed { error, .. }] if error == "the registry is down"),
        "{fired:?}"
    );
    clock.set(utc(6, 1, 30));
    assert!(s.tick().await.is_empty());
    clock.set(utc(6, 2, 0));
    assert!(matches!(&s.tick().await[..], [Fired::Started { .. }]));
}

#[tokio::test]
async fn after_a_long_stop_only_the_latest_missed_slot_fires_and_only_within_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let starter = Arc::new(Recorder::default());
    let clock = SetClock::at(utc(3, 0, 0));
    let s = scheduler(&store, &starter, &clock).with_window(10 * 60_000);
    s.tick().await;
    clock.set(utc(3, 1, 0));
    assert_eq!(s.tick().await.len(), 1);
    // Down from 03:01 to 05:07: 126 slots missed, one fires (05:07).
    clock.set(utc(5, 7, 20));
    let fired = s.tick().await;
    assert!(
        matches!(&fired[..], [Fired::Started { slot_ms, .. }] if *slot_ms == utc(5, 7, 0)),
        "{fired:?}"
    );
    // A daily slot missed by more than the window does not fire at all.
    let daily = ScheduleConfig::new(ScheduleSpec {
        cron: "0 5 * * *".into(),
        timezone: "UTC".into(),
        ..every_minute().spec().clone()
    })
    .unwrap();
    let clock = SetClock::at(utc(4, 0, 0));
    let d = Scheduler::new(vec![daily], store.clone(), starter.clone(), clock.clone())
        .with_window(10 * 60_000);
    d.tick().await;
    clock.set(utc(5, 11, 0));
    assert!(d.tick().await.is_empty());
    clock.set(utc(5, 9, 0) + 24 * 3_600_000);
    assert_eq!(d.tick().await.len(), 1);
}

#[tokio::test]
async fn the_pause_runs_to_the_next_slot_at_most_a_minute_and_run_stops_when_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let starter = Arc::new(Recorder::default());
    let clock = SetClock::at(utc(6, 0, 45));
    let weekly = ScheduleConfig::new(ScheduleSpec {
        cron: "0 6 * * MON".into(),
        ..every_minute().spec().clone()
    })
    .unwrap();
    let s = Scheduler::new(
        vec![every_minute(), weekly],
        store.clone(),
        starter.clone(),
        clock.clone(),
    );
    assert_eq!(s.pause_ms(utc(6, 0, 45)), 15_000);
    let w = Scheduler::new(
        vec![
            ScheduleConfig::new(ScheduleSpec {
                cron: "0 6 * * MON".into(),
                ..every_minute().spec().clone()
            })
            .unwrap(),
        ],
        store.clone(),
        starter.clone(),
        clock.clone(),
    );
    assert_eq!(w.pause_ms(utc(6, 0, 45)), RECHECK_MS);
    let stop = CancellationToken::new();
    let running = tokio::spawn(s.run(stop.clone()));
    stop.cancel();
    running.await.unwrap();
}
