//! Reliability of the Slack front door across a crash: an envelope acked but not handled
//! survives in the inbox and is handled after the restart, exactly once.

use std::time::Duration;

use crate::support::fake_slack::FakeSlack;
use crate::support::fix_script;
use slipway::sandbox::Backend;
use slipway::slack::serve::Service;
use slipway::store::InboxEntry;

use super::slack::{Bot, DEV};

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
    bot.service
        .take()
        .unwrap()
        .shutdown(Duration::from_secs(5))
        .await;
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

    bot.service = Some(
        Service::start(bot.cfg.clone(), bot.h.runner.clone())
            .await
            .unwrap(),
    );
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
    bot.service
        .take()
        .unwrap()
        .shutdown(Duration::from_secs(5))
        .await;
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

    bot.service = Some(
        Service::start(bot.cfg.clone(), bot.h.runner.clone())
            .await
            .unwrap(),
    );
    bot.wait_reports(&p, 1).await;
    // A second start posts nothing more.
    bot.service
        .take()
        .unwrap()
        .shutdown(Duration::from_secs(5))
        .await;
    bot.service = Some(
        Service::start(bot.cfg.clone(), bot.h.runner.clone())
            .await
            .unwrap(),
    );
    super::slack::settle().await;
    assert_eq!(bot.slack.reports(DEV, &p.ts).len(), 1);
    bot.stop().await;
}
