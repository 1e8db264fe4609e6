//! Reliability of the Slack front door across a crash: an envelope acked but not handled
//! survives in the inbox and is handled after the restart, exactly once.

use std::time::Duration;

use crate::support::fake_slack::FakeSlack;
use crate::support::fix_script;
use slipway::sandbox::Backend;
use slipway::slack::serve::Service;
use slipway::store::InboxEntry;

use super::slack::{Bot, DEV};

/// SIGTERM's path, with a short grace.
async fn stop(bot: &mut Bot) {
    bot.service
        .take()
        .unwrap()
        .shutdown(Duration::from_secs(5))
        .await;
}

/// A new `slipway serve` on the same store.
async fn restart(bot: &mut Bot) {
    bot.service = Some(
        Service::start(bot.cfg.clone(), bot.h.runner.clone())
            .await
            .unwrap(),
    );
}

fn entry(envelope: &serde_json::Value) -> InboxEntry {
    InboxEntry {
        envelope_id: envelope["envelope_id"].as_str().unwrap().to_string(),
        retry_attempt: 0,
        retry_reason: String::new(),
        payload: envelope["payload"].clone(),
        received_ms: 1,
    }
}

/// Slack never redelivers an acked envelope. A mention acked (so in the inbox) when slipway
/// died is handled at the next start: one task, "Queued" said, the run reported; its
/// `message` twin and a second copy of the entry start nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envelope_acked_before_a_crash_is_handled_after_the_restart_once() {
    let mut bot = Bot::start(Backend::Bwrap, fix_script(), |_| {}).await;
    stop(&mut bot).await;
    // Acked, then the process died before the handler ran: what the socket stored.
    let p = bot
        .slack
        .say(DEV, "U0ALICE", "<@U0BOT> fix add() in calc.py", None);
    let store = bot.h.runner.store.clone();
    let mention = bot.slack.envelope(FakeSlack::mention_event(&p));
    let message = bot.slack.envelope(FakeSlack::message_event(&p));
    for e in [&mention, &message, &mention] {
        store.inbox_put(&entry(e)).await.unwrap();
    }
    assert_eq!(store.inbox().unwrap().len(), 3);

    restart(&mut bot).await;
    bot.wait_reports(&p, 1).await;
    assert_eq!(bot.tasks().len(), 1, "one task for one mention");
    assert!(store.inbox().unwrap().is_empty(), "every entry handled");
    super::slack::settle().await;
    assert_eq!(bot.slack.reports(DEV, &p.ts).len(), 1, "one report");
    bot.stop().await;
}

/// A run whose end never reached the thread (its `RunFinished` lost to a lagging event
/// stream, or slipway died between the run's end and the post) gets its report posted from
/// the store at the next start, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_whose_event_was_lost_is_posted_at_the_next_start_once() {
    use slipway::slack::bindings::{Bindings, SlackThread};
    use slipway::task::Origin;
    let mut bot = Bot::start(Backend::Bwrap, fix_script(), |_| {}).await;
    let p = bot
        .slack
        .say(DEV, "U0ALICE", "<@U0BOT> fix add() in calc.py", None);
    // The first start recorded since when reports are tracked; the run ends after it.
    stop(&mut bot).await;
    let mut task = bot.h.task("fix add() in calc.py");
    task.origin = Origin::Slack {
        channel: DEV.into(),
        thread_ts: p.ts.clone(),
    };
    let bindings = Bindings::new(bot.h.runner.store.clone());
    bindings.bind_thread(DEV, &p.ts, &task.id).await.unwrap();
    bindings
        .put_slack_thread(&SlackThread {
            task_id: task.id.clone(),
            channel: DEV.into(),
            thread_ts: p.ts.clone(),
            status: None,
            pending: None,
        })
        .await
        .unwrap();
    // The run ends with nobody listening: its events are gone.
    bot.h.run(&mut task).await.unwrap();
    assert!(bot.slack.reports(DEV, &p.ts).is_empty());

    restart(&mut bot).await;
    bot.wait_reports(&p, 1).await;
    // A second start posts nothing more.
    stop(&mut bot).await;
    restart(&mut bot).await;
    super::slack::settle().await;
    assert_eq!(bot.slack.reports(DEV, &p.ts).len(), 1);
    bot.stop().await;
}

/// The outbox after a crash: a message that reached Slack before slipway could record it is
/// found in the thread and not posted again; one that did not is posted, once. Then a 429
/// storm on `chat.postMessage` only delays a report: it arrives, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thread_messages_survive_a_crash_and_a_rate_limit_storm_and_go_out_once() {
    use crate::support::fake_slack::Failure;
    use slipway::slack::outbox::{AfterPost, Message, Outgoing};
    let mut bot = Bot::start(Backend::Bwrap, fix_script(), |_| {}).await;
    stop(&mut bot).await;
    let root = bot.slack.say(DEV, "U0ALICE", "a thread", None);
    let store = bot.h.runner.store.clone();
    let entry = |key: &str, text: &str| Outgoing {
        key: key.into(),
        channel: DEV.into(),
        thread_ts: root.ts.clone(),
        message: Message::Post {
            text: text.into(),
            blocks: None,
            then: AfterPost::Nothing,
        },
        created_ms: slipway::task::now_ms(),
    };
    // Posted by the last process just before it died, so never recorded as sent.
    let api = slipway::slack::api::WebApi::new(&bot.slack.endpoint()).unwrap();
    api.post(DEV, &root.ts, "posted before the crash", None)
        .await
        .unwrap();
    store
        .outbox_push(&entry("say/a", "posted before the crash"))
        .await
        .unwrap();
    store
        .outbox_push(&entry("say/b", "never posted"))
        .await
        .unwrap();
    restart(&mut bot).await;
    bot.slack
        .wait_until(30, "the waiting message", |s| {
            s.bot_posts(DEV, &root.ts)
                .iter()
                .any(|p| p.text == "never posted")
        })
        .await;
    super::slack::settle().await;
    let count = |text: &str| {
        bot.slack
            .bot_posts(DEV, &root.ts)
            .iter()
            .filter(|p| p.text == text)
            .count()
    };
    assert_eq!(count("posted before the crash"), 1, "not posted twice");
    assert_eq!(count("never posted"), 1);
    assert!(store.outbox::<Outgoing>().unwrap().is_empty());

    // A 429 storm: each post is refused several times, with Retry-After.
    for _ in 0..12 {
        bot.slack.fail_next(
            "chat.postMessage",
            Failure {
                status: 429,
                body: serde_json::json!({"ok": false, "error": "ratelimited"}),
                retry_after_s: Some(1),
            },
        );
    }
    let p = bot.mention("<@U0BOT> fix add() in calc.py").await;
    bot.wait_reports(&p, 1).await;
    super::slack::settle().await;
    assert_eq!(bot.slack.reports(DEV, &p.ts).len(), 1, "one report");
    assert!(store.outbox::<Outgoing>().unwrap().is_empty());
    bot.stop().await;
}
