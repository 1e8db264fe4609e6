//! Who may start tasks, from where and how often, and what `status` tells whom (security
//! hardening #9): a repo restricted to its channels refuses DMs and other channels, a repo
//! with `requesters` refuses everyone else, a user over `[queue] max_tasks_per_user_per_hour`
//! is refused with the figure and the reset, and `status` names only the tasks of the
//! conversation it is asked in. Every refusal is answered in the thread, audited, and starts
//! nothing.

use serde_json::json;

use super::slack::{Bot, DEV, settle};
use crate::support::fake_llm::Turn;
use crate::support::fake_slack::{FakeSlack, Posted};
use slipway::sandbox::Backend;
use slipway::store::AuditRecord;
use slipway::task::{Origin, RepoRef, Task, now_ms};

const OTHER: &str = "C0OTHER";
const DM: &str = "D0ALICE";

/// `user` writes `text` at the top of a new thread in `channel`: an `app_mention` in a
/// channel, a `message.im` in a DM (Slack sends no mention event there).
async fn ask(bot: &Bot, channel: &str, user: &str, text: &str) -> Posted {
    let p = bot.slack.say(channel, user, text, None);
    let mut event = if channel.starts_with('D') {
        FakeSlack::message_event(&p)
    } else {
        FakeSlack::mention_event(&p)
    };
    if channel.starts_with('D') {
        event["channel_type"] = json!("im");
    }
    bot.slack.push(event).await;
    p
}

/// The bot's first post in `p`'s thread containing `needle` (waits up to 60 s).
async fn answer(bot: &Bot, p: &Posted, needle: &str) -> String {
    let (channel, ts) = (p.channel.clone(), p.ts.clone());
    let find = |s: &FakeSlack| {
        s.bot_posts(&channel, &ts)
            .into_iter()
            .find(|m| m.text.contains(needle))
    };
    bot.slack
        .wait_until(60, &format!("an answer containing {needle:?}"), |s| {
            find(s).is_some()
        })
        .await;
    find(&bot.slack).map(|m| m.text).unwrap_or_default()
}

/// Waits (up to 60 s) until the store holds `n` tasks.
async fn wait_tasks(bot: &Bot, n: usize) {
    for _ in 0..600 {
        if bot.tasks().len() >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{n} task(s) never appeared");
}

fn refusals(bot: &Bot) -> Vec<AuditRecord> {
    bot.h
        .runner
        .store
        .audit_log(None)
        .unwrap()
        .into_iter()
        .filter(|a| a.action == "task_refused")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restricted_repo_takes_tasks_only_from_its_channels_and_listed_requesters() {
    let bot = Bot::start(Backend::Bwrap, vec![], |c| {
        c.file.repos[0].restrict_to_channels = true;
        c.file.repos[0].requesters = vec!["U0ALICE".into()];
    })
    .await;
    // A DM naming the repo, and a mention in another channel naming it.
    let dm = ask(&bot, DM, "U0ALICE", "in acme/calc: fix add() in calc.py").await;
    let said = answer(&bot, &dm, "🚫").await;
    assert!(said.contains("only from <#C0DEV>"), "{said}");
    let other = ask(
        &bot,
        OTHER,
        "U0ALICE",
        "<@U0BOT> in acme/calc: fix add() in calc.py",
    )
    .await;
    let said = answer(&bot, &other, "🚫").await;
    assert!(said.contains("only from <#C0DEV>"), "{said}");
    // Its own channel, but someone the repo does not list.
    let mallory = ask(&bot, DEV, "U0MALLORY", "<@U0BOT> fix add() in calc.py").await;
    let said = answer(&bot, &mallory, "🚫").await;
    assert!(said.contains("`requesters` of `acme/calc`"), "{said}");
    settle().await;

    assert!(bot.tasks().is_empty(), "a refusal starts nothing");
    assert!(
        bot.slack.calls("conversations.replies").is_empty(),
        "a refused thread is not even read"
    );
    // 👀 is the "seen" ack and stays on every mention; the answer says why nothing runs.
    assert_eq!(bot.slack.calls("reactions.add").len(), 3);
    let audited: Vec<_> = refusals(&bot)
        .iter()
        .map(|a| {
            (
                a.actor.clone(),
                a.detail["reason"].as_str().unwrap().to_string(),
                a.detail["channel"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("U0ALICE", "channel", DM),
        ("U0ALICE", "channel", OTHER),
        ("U0MALLORY", "requester", DEV),
    ]
    .map(|(u, r, c)| (u.to_string(), r.to_string(), c.to_string()));
    assert_eq!(audited, expected);
    assert!(
        refusals(&bot)
            .iter()
            .all(|a| a.task_id.is_none() && a.detail["repo"] == "acme/calc")
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_over_the_hourly_limit_is_refused_with_the_figure_and_the_reset() {
    let bot = Bot::start(Backend::Bwrap, vec![], |c| {
        c.file.queue.max_tasks_per_user_per_hour = 2;
    })
    .await;
    // Alice's earlier tasks, as a previous slipway process stored them: two in the last
    // hour (10 and 30 minutes ago), one two hours ago.
    let minute = 60_000;
    for (ago, what) in [(10, "first"), (30, "second"), (120, "long ago")] {
        let repo = RepoRef {
            name: "acme/calc".into(),
            source: bot.repo.display().to_string(),
            base: "main".into(),
            forge: Default::default(),
        };
        let origin = Origin::Slack {
            channel: DEV.into(),
            thread_ts: format!("1600000{ago:03}.000100"),
        };
        let mut t = Task::new(repo, "U0ALICE", origin, what);
        t.created_ms = now_ms() - ago * minute;
        bot.h.runner.store.put_task(&t).await.unwrap();
    }
    let p = ask(&bot, DEV, "U0ALICE", "<@U0BOT> fix add() in calc.py").await;
    let said = answer(&bot, &p, "🚫").await;
    assert!(
        said.contains("You started 2 tasks in the last hour"),
        "{said}"
    );
    assert!(
        said.contains("max_tasks_per_user_per_hour"),
        "names the key: {said}"
    );
    // The 30-minute-old task leaves the window in 30 minutes (29 to 30, rounded up).
    assert!(
        said.contains("in 30 min") || said.contains("in 29 min"),
        "{said}"
    );
    settle().await;
    assert_eq!(bot.tasks().len(), 3, "nothing new was started");
    let refused = refusals(&bot);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].detail["reason"], "rate_limit");
    assert_eq!(refused[0].actor, "U0ALICE");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_names_only_the_tasks_of_the_conversation_it_is_asked_in() {
    let bot = Bot::start(Backend::Bwrap, vec![], |c| c.file.queue.concurrency = 1).await;
    // The first run's agent sleeps, so it stays running and the second stays queued.
    bot.h
        .fake
        .repeat_forever(Turn::call("run", json!({"command": "sleep 600"})));
    let dm = ask(
        &bot,
        DM,
        "U0ALICE",
        "in acme/calc: rotate the payroll signing key",
    )
    .await;
    wait_tasks(&bot, 1).await;
    ask(&bot, DEV, "U0BOB", "<@U0BOT> fix add() in calc.py").await;
    wait_tasks(&bot, 2).await;

    let status = |channel: &'static str| {
        let bot = &bot;
        async move {
            let p = ask(bot, channel, "U0ALICE", "<@U0BOT> status").await;
            answer(bot, &p, "*Queued*").await
        }
    };
    let elsewhere = status(OTHER).await;
    assert!(
        !elsewhere.contains("payroll") && !elsewhere.contains("fix add"),
        "no titles from other conversations: {elsewhere}"
    );
    assert!(
        elsewhere.contains("*Running* (1 of at most 1)") && elsewhere.contains("*Queued* (1)"),
        "the counts stay: {elsewhere}"
    );
    assert!(
        elsewhere.contains("1 from other conversations"),
        "{elsewhere}"
    );
    let in_dev = status(DEV).await;
    assert!(in_dev.contains("fix add() in calc.py"), "{in_dev}");
    assert!(
        !in_dev.contains("payroll"),
        "a DM's task is private: {in_dev}"
    );
    let in_dm = status(DM).await;
    assert!(in_dm.contains("rotate the payroll signing key"), "{in_dm}");
    assert!(!in_dm.contains("fix add"), "{in_dm}");

    // Stop the sleeping run before shutting down.
    let stop = bot
        .slack
        .say(DM, "U0ALICE", "<@U0BOT> cancel", Some(&dm.ts));
    let mut event = FakeSlack::message_event(&stop);
    event["channel_type"] = json!("im");
    bot.slack.push(event).await;
    settle().await;
    bot.stop().await;
}
