//! `[[schedules]]` end to end: the real `slipway serve` child against the loopback fake
//! Slack, with an every-minute schedule, killed with SIGKILL and restarted on the same data
//! dir; and `slipway schedules list` as operators call it.
//!
//! A schedule's first minute never fires (slots before a schedule is first seen are not
//! fired), so the serve test waits for the next minute boundary, then for the one after.
//! The waits are bounds on a hang, not measurements.

use std::path::Path;
use std::process::{Command, Output};

use chrono::Utc;
use serde_json::Value;

use crate::support::fake_slack::FakeSlack;
use crate::support::serve_child::{World, WorldOpts, thread_of};

/// Where the schedule's threads start.
const CHANNEL: &str = "C0SCHED";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_slipway"))
}

/// The bot's top-level posts in `CHANNEL` (each a scheduled slot's thread): `(ts, text)`.
fn top_level(slack: &FakeSlack) -> Vec<(String, String)> {
    slack
        .top_level(CHANNEL)
        .into_iter()
        .map(|p| (p.ts, p.text))
        .collect()
}

/// The slot named in an announcement: `2026-11-30 06:00 Europe/Berlin`.
fn slot_of(text: &str) -> String {
    let after = text.split("slot ").nth(1).unwrap_or_default();
    after.trim_end_matches(')').to_string()
}

/// Now, as a slot label in Berlin.
fn berlin_minute() -> String {
    Utc::now()
        .with_timezone(&chrono_tz::Europe::Berlin)
        .format("%Y-%m-%d %H:%M Europe/Berlin")
        .to_string()
}

fn schedule_toml(cron: &str, repo: &str) -> String {
    format!(
        "\n[[schedules]]\ncron = \"{cron}\"\ntimezone = \"Europe/Berlin\"\nrepo = \"{repo}\"\nblueprint = \"checks_only\"\nchannel = \"{CHANNEL}\"\n"
    )
}

/// `slipway --config <dir>/slipway.toml ARGS` on data dir `data`.
fn cli(dir: &Path, data: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("--config")
        .arg(dir.join("slipway.toml"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("SLIPWAY_DATA_DIR", data)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn list_json(dir: &Path, data: &Path) -> Vec<Value> {
    let out = cli(dir, data, &["schedules", "list", "--json"]);
    assert!(
        out.status.success(),
        "schedules list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .cloned()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_every_minute_schedule_fires_once_per_slot_across_a_kill_9_restart() {
    let mut w = World::new(
        bin(),
        WorldOpts {
            forge: "local".into(),
            ..WorldOpts::default()
        },
    )
    .await;
    let config = w.dir.path().join("slipway.toml");
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str(&schedule_toml("* * * * *", "acme/calc"));
    std::fs::write(&config, toml).unwrap();

    w.spawn().await;
    // The first slot after start: its thread, and the task's status message in it (so the
    // task is stored and queued before the kill).
    w.slack
        .wait_until(150, "the first scheduled post", |s| {
            top_level(s)
                .first()
                .is_some_and(|(ts, _)| s.bot_posts(CHANNEL, ts).len() >= 2)
        })
        .await;
    let (first_ts, first_text) = top_level(&w.slack)[0].clone();
    let first_slot = slot_of(&first_text);
    assert!(
        first_text.starts_with("🗓️ Scheduled `checks_only` for `acme/calc` (schedule `"),
        "{first_text}"
    );
    // Its thread carries the task's status message.
    assert!(
        w.slack
            .bot_posts(CHANNEL, &first_ts)
            .iter()
            .any(|p| p.ts != first_ts),
        "the thread has the task's status message"
    );

    // SIGKILL and a restart within the same minute: the slot is not fired again.
    w.kill9().await;
    w.spawn().await;
    assert_eq!(
        berlin_minute(),
        first_slot,
        "the restart must land in the slot's own minute for this test to mean anything"
    );

    // The next minute fires, once, from the restarted process.
    w.slack
        .wait_until(150, "the second scheduled post", |s| {
            top_level(s).iter().any(|(ts, text)| {
                slot_of(text) != first_slot && s.bot_posts(CHANNEL, ts).len() >= 2
            })
        })
        .await;
    let posts = top_level(&w.slack);
    assert_eq!(
        posts.len(),
        2,
        "one post per slot, none repeated: {posts:#?}"
    );
    let second_slot = slot_of(&posts[1].1);
    assert_ne!(second_slot, first_slot, "the slot fired twice: {posts:#?}");
    w.kill9().await;

    // One task per slot, each in its slot's thread, queued with the schedule's blueprint.
    let tasks = w.tasks().await;
    assert_eq!(tasks.len(), 2, "{tasks:#?}");
    let mut threads: Vec<String> = tasks.iter().filter_map(thread_of).collect();
    threads.sort();
    let mut expected: Vec<String> = posts.iter().map(|(ts, _)| ts.clone()).collect();
    expected.sort();
    assert_eq!(threads, expected);
    for t in &tasks {
        assert_eq!(t["blueprint"], "checks_only", "{t:#}");
        assert_eq!(t["requester"], "slipway", "{t:#}");
        assert_eq!(t["origin"]["channel"], CHANNEL, "{t:#}");
    }

    // `schedules list` reads the last slot back from the store.
    let rows = list_json(w.dir.path(), &w.data_dir());
    assert_eq!(rows.len(), 1);
    let last = rows[0]["last_slot"].as_str().unwrap();
    let minute = second_slot.replace(' ', "T");
    let minute = minute.trim_end_matches("TEurope/Berlin");
    assert!(
        last.starts_with(&format!("{minute}:00+0")),
        "{last} vs {second_slot}"
    );
    assert!(posts[1].1.contains(rows[0]["id"].as_str().unwrap()));
}

#[test]
fn schedules_list_shows_each_schedule_with_its_id_and_next_slot_in_its_zone() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::write(
        dir.path().join("slipway.toml"),
        format!(
            "[[repos]]\nname = \"acme/api\"\nurl = \"/srv/api.git\"\n\n[[schedules]]\ncron = \"0 6 * * MON\"\ntimezone = \"Europe/Berlin\"\nrepo = \"acme/api\"\nblueprint = \"dependency_update\"\nargs = [\"--update-types\", \"patch,minor\"]\nchannel = \"C0DEPS\"\n{}",
            schedule_toml("*/5 * * * *", "acme/api")
        ),
    )
    .unwrap();
    let rows = list_json(dir.path(), &data);
    assert_eq!(rows.len(), 2);
    let r = &rows[0];
    let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    for k in [
        "id",
        "cron",
        "timezone",
        "repo",
        "blueprint",
        "args",
        "channel",
        "last_slot",
        "next_slot",
    ] {
        assert!(keys.contains(&k), "{k} missing from {r:#}");
    }
    assert_eq!(r["cron"], "0 6 * * MON");
    assert_eq!(r["timezone"], "Europe/Berlin");
    assert_eq!(r["repo"], "acme/api");
    assert_eq!(r["blueprint"], "dependency_update");
    assert_eq!(
        r["args"],
        serde_json::json!(["--update-types", "patch,minor"])
    );
    assert_eq!(r["channel"], "C0DEPS");
    assert_eq!(r["last_slot"], Value::Null);
    let id = r["id"].as_str().unwrap();
    assert!(
        id.len() == 12 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    assert_ne!(rows[1]["id"], r["id"]);
    // The next Monday 06:00 in Berlin, with Berlin's offset.
    let next = chrono::DateTime::parse_from_rfc3339(r["next_slot"].as_str().unwrap()).unwrap();
    assert_eq!(next.format("%a %H:%M").to_string(), "Mon 06:00", "{next}");
    assert!(
        [3600, 7200].contains(&next.offset().local_minus_utc()),
        "{next}"
    );
    assert!(next.with_timezone(&Utc) > Utc::now());
    // The table names both.
    let out = cli(dir.path(), &data, &["schedules", "list"]);
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains(id) && table.contains("*/5 * * * *"),
        "{table}"
    );
}

#[test]
fn a_bad_schedule_stops_slipway_with_the_entry_the_key_and_what_to_write() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let write = |schedules: &str| {
        std::fs::write(
            dir.path().join("slipway.toml"),
            format!("[[repos]]\nname = \"acme/api\"\nurl = \"/srv/api.git\"\n{schedules}"),
        )
        .unwrap();
    };
    write(&schedule_toml("0 6 * *", "acme/api"));
    let out = cli(dir.path(), &data, &["schedules", "list"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`cron` of [[schedules]] entry for repo \"acme/api\"")
            && err.contains("0 6 * * MON")
            && err.contains("line"),
        "{err}"
    );
    write(&schedule_toml("0 6 * * *", "acme/wbe"));
    let out = cli(dir.path(), &data, &["schedules", "list"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`repo` of [[schedules]] entry 1 (repo \"acme/wbe\")")
            && err.contains("write one of acme/api"),
        "{err}"
    );
}

/// The Slack starter on a real store and queue (not run: tasks stay queued), talking to
/// the fake Slack, driven by a [`Scheduler`] on a clock the test sets.
mod starter {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::support::Harness;
    use crate::support::fake_slack::Failure;
    use slipway::agent::llm::settings::LlmProvider;
    use slipway::config::SecretValues;
    use slipway::queue::Queue;
    use slipway::repos::RepoConfig;
    use slipway::sandbox::Backend;
    use slipway::schedule::{Clock, Fired, ScheduleConfig, ScheduleSpec, Scheduler};
    use slipway::slack::api::WebApi;
    use slipway::slack::bindings::Bindings;
    use slipway::slack::egress::Egress;
    use slipway::slack::schedule::SlackStarter;

    struct SetClock(AtomicU64);
    impl Clock for SetClock {
        fn now_ms(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn at(h: u32, m: u32) -> u64 {
        Utc.with_ymd_and_hms(2026, 11, 30, h, m, 0)
            .unwrap()
            .timestamp_millis() as u64
    }

    fn deps_schedule(repo: &str) -> ScheduleConfig {
        ScheduleConfig::new(ScheduleSpec {
            cron: "0 * * * *".into(),
            timezone: "UTC".into(),
            repo: repo.into(),
            blueprint: "dependency_update".into(),
            args: vec!["--update-types".into(), "patch,minor".into()],
            channel: CHANNEL.into(),
        })
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slack_refusing_the_post_fails_that_slot_and_the_next_slot_starts_the_task() {
        let h = Harness::new(Backend::Bwrap, LlmProvider::Anthropic, vec![]).await;
        let slack = FakeSlack::start().await;
        let store = h.runner.store.clone();
        let api = WebApi::new(&slack.endpoint()).unwrap();
        let queue = Queue::new(h.runner.clone(), 1);
        let egress = Egress::new(
            api.clone(),
            store.clone(),
            queue.clone(),
            SecretValues::default(),
        );
        let drain = tokio_util::sync::CancellationToken::new();
        tokio::spawn({
            let (outbox, stop) = (egress.outbox().clone(), drain.clone());
            async move { outbox.run(stop).await }
        });
        let repo: RepoConfig = toml::from_str(&format!(
            "name = \"acme/calc\"\nurl = \"{}\"",
            h.repo_path().display()
        ))
        .unwrap();
        let gone: RepoConfig =
            toml::from_str("name = \"acme/gone\"\nurl = \"/nonexistent/gone.git\"").unwrap();
        let starter = Arc::new(SlackStarter {
            api,
            egress,
            bindings: Bindings::new(store.clone()),
            queue,
            repos: vec![repo, gone],
            github_configured: false,
            deps: None,
        });
        let clock = Arc::new(SetClock(AtomicU64::new(at(5, 30))));
        let s = Scheduler::new(
            vec![deps_schedule("acme/calc"), deps_schedule("acme/gone")],
            store.clone(),
            starter,
            clock.clone(),
        );
        assert!(s.tick().await.is_empty()); // first seen at 05:30

        // 06:00: Slack refuses the top-level post of the first schedule; the second's repo
        // is unreachable, which is said in the channel.
        slack.fail_next(
            "chat.postMessage",
            Failure {
                status: 200,
                body: json!({"ok": false, "error": "fatal_error"}),
                retry_after_s: None,
            },
        );
        clock.0.store(at(6, 0), Ordering::SeqCst);
        let fired = s.tick().await;
        assert!(
            matches!(&fired[..], [Fired::Failed { error: a, .. }, Fired::Failed { error: b, .. }]
                if a.contains("chat.postMessage in C0SCHED") && b.contains("acme/gone")),
            "{fired:#?}"
        );
        let said = top_level(&slack);
        assert_eq!(said.len(), 1, "{said:#?}");
        assert!(
            said[0].1.contains("could not start")
                && said[0].1.contains("acme/gone")
                && said[0].1.contains("The next slot tries again"),
            "{said:#?}"
        );
        assert!(store.list_tasks().unwrap().is_empty());
        // Not retried within its slot.
        clock.0.store(at(6, 30), Ordering::SeqCst);
        assert!(s.tick().await.is_empty());

        // 07:00: the first schedule starts its task, in its own thread, with the args as
        // `task.deps`.
        clock.0.store(at(7, 0), Ordering::SeqCst);
        let fired = s.tick().await;
        assert!(matches!(&fired[0], Fired::Started { .. }), "{fired:#?}");
        let tasks = store.list_tasks().unwrap();
        assert_eq!(tasks.len(), 1);
        let t = &tasks[0];
        assert_eq!(t.blueprint, slipway::task::BlueprintId::DependencyUpdate);
        let deps = t.deps.as_ref().unwrap();
        assert_eq!(
            deps.update_types,
            vec![
                slipway::deps::UpdateType::Patch,
                slipway::deps::UpdateType::Minor
            ]
        );
        let slipway::task::Origin::Slack { channel, thread_ts } = &t.origin else {
            panic!("{:?}", t.origin)
        };
        assert_eq!(channel, CHANNEL);
        let post = top_level(&slack)
            .into_iter()
            .find(|(ts, _)| ts == thread_ts)
            .unwrap();
        assert!(post.1.contains("slot 2026-11-30 07:00 UTC"), "{post:?}");
        assert_eq!(store.queued().unwrap().len(), 1, "the task is queued");
        // Its status message reaches the thread through the outbox.
        slack
            .wait_until(30, "the status message", |s| {
                s.bot_posts(CHANNEL, thread_ts).len() >= 2
            })
            .await;
        drain.cancel();
    }
}
