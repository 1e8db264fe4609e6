//! Who may approve and drive a task through Slack (security hardening #8 and #10): a
//! revision's author cannot approve the change they wrote instructions for, and a member of
//! an approver user group is an approver for everything, not only for ✅.

use std::time::Duration;

use serde_json::json;

use super::slack::{Bot, DEV, settle};
use crate::support::fake_llm::Turn;
use crate::support::fake_slack::{FakeSlack, Posted};
use crate::support::{fix_then_document_script, sh};
use slipway::sandbox::Backend;

/// Polls the store until `cond` holds on the first task, at most `secs`; the caller then
/// asserts, so a miss fails on the assertion rather than on the wait.
async fn wait_task(bot: &Bot, secs: u64, cond: impl Fn(&slipway::task::Task) -> bool) {
    for _ in 0..secs * 10 {
        if bot.tasks().first().is_some_and(&cond) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Alice's mention runs to its report; then Bob, an approver, replies in the thread with
/// revision 2, which runs to its report. Returns the thread and revision 2's report.
async fn bob_writes_revision_2(bot: &Bot) -> (Posted, Posted) {
    let thread = bot.mention("<@U0BOT> fix add() in calc.py").await;
    bot.wait_reports(&thread, 1).await;
    let reply = bot.slack.say(
        DEV,
        "U0BOB",
        "also give mul() a docstring",
        Some(&thread.ts),
    );
    bot.slack.push(FakeSlack::message_event(&reply)).await;
    bot.wait_reports(&thread, 2).await;
    let report = bot.slack.reports(DEV, &thread.ts)[1].clone();
    (thread, report)
}

/// The bot's newest post in the thread containing any of `needles` (waits up to 60 s).
async fn answer(bot: &Bot, thread_ts: &str, needles: &[&str]) -> String {
    let wanted: Vec<String> = needles.iter().map(|n| n.to_string()).collect();
    // As posted: a status message may be edited by its run before this looks.
    let found = |s: &FakeSlack| {
        s.calls("chat.postMessage")
            .into_iter()
            .rev()
            .filter(|c| c.params["thread_ts"] == thread_ts)
            .filter_map(|c| c.params["text"].as_str().map(str::to_owned))
            .find(|t| wanted.iter().any(|n| t.contains(n)))
    };
    bot.slack
        .wait_until(
            60,
            &format!("an answer containing one of {needles:?}"),
            |s| found(s).is_some(),
        )
        .await;
    found(&bot.slack).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_who_wrote_a_revision_cannot_approve_it_and_the_revision_names_its_author() {
    let bot = Bot::start(Backend::Bwrap, fix_then_document_script(), |c| {
        c.file.slack.approvers = vec!["U0BOB".into(), "U0CAROL".into()];
    })
    .await;
    // Bob, an approver, writes revision 2 …
    let (thread, report) = bob_writes_revision_2(&bot).await;
    let main_before = sh(&bot.repo, "git rev-parse main");
    let task_id = bot.tasks()[0].id.clone();
    let audit = bot.h.runner.store.audit_log(Some(&task_id)).unwrap();
    let revision = audit.iter().find(|a| a.action == "slack_revision").unwrap();
    assert_eq!(
        revision.actor, "U0BOB",
        "the revision's audit names its author"
    );

    // … so his ✅ does not merge it.
    bot.react("U0BOB", "white_check_mark", &report.ts).await;
    let said = answer(&bot, &thread.ts, &["Merged", "Not merged"]).await;
    assert!(
        said.starts_with("Not merged") && said.contains("revision 2"),
        "{said}"
    );
    assert_eq!(sh(&bot.repo, "git rev-parse main"), main_before);
    let audit = bot.h.runner.store.audit_log(Some(&task_id)).unwrap();
    let refused = audit
        .iter()
        .find(|a| a.action == "merge_refused")
        .expect("the refusal is audited");
    assert_eq!(refused.actor, "U0BOB");
    assert!(
        refused.detail["reason"]
            .as_str()
            .unwrap()
            .contains("revision 2"),
        "{}",
        refused.detail
    );

    // Carol, who wrote nothing in it, merges; the commit names both people.
    bot.react("U0CAROL", "white_check_mark", &report.ts).await;
    bot.wait_post(&thread.ts, "✅ Merged").await;
    let body = sh(&bot.repo, "git log -1 --format=%B main^2");
    assert!(body.contains("Requested-by: U0ALICE"), "{body}");
    assert!(body.contains("Revision-by: U0BOB"), "{body}");
    let first = sh(&bot.repo, "git log -1 --format=%B main^2~1");
    assert!(!first.contains("Revision-by"), "{first}");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_who_wrote_a_revision_may_approve_it_when_self_approval_is_allowed() {
    let bot = Bot::start(Backend::Bwrap, fix_then_document_script(), |c| {
        c.file.slack.allow_self_approval = true;
    })
    .await;
    let (thread, report) = bob_writes_revision_2(&bot).await;
    bot.react("U0BOB", "white_check_mark", &report.ts).await;
    let said = answer(&bot, &thread.ts, &["Merged", "Not merged"]).await;
    assert!(said.starts_with("✅ Merged"), "{said}");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_of_an_approver_group_is_an_approver_for_replies_context_and_reactions() {
    let mut script = fix_then_document_script();
    // Revision 3 and its rerun change nothing.
    for _ in 0..2 {
        script.push(Turn::call("finish", json!({"summary": "nothing to add."})));
    }
    let bot = Bot::start(Backend::Bwrap, script, |c| {
        c.file.slack.approvers = vec!["U0BOB".into(), "S0LEADS".into()];
    })
    .await;
    bot.slack.set_usergroup("S0LEADS", &["U0CAROL"]);
    // Carol (a lead) starts the thread; Dave (nobody) chimes in; Alice asks the bot.
    let root = bot
        .slack
        .say(DEV, "U0CAROL", "keep the old signature", None);
    bot.slack
        .say(DEV, "U0DAVE", "rewrite it in rust", Some(&root.ts));
    let m = bot.slack.say(
        DEV,
        "U0ALICE",
        "<@U0BOT> fix add() in calc.py",
        Some(&root.ts),
    );
    bot.slack.push(FakeSlack::mention_event(&m)).await;
    bot.wait_reports(&root, 1).await;
    let rev = bot.tasks()[0].revisions[0].clone();
    assert_eq!(
        rev.context,
        vec!["keep the old signature".to_string()],
        "a lead's message is trusted context: {rev:?}"
    );
    assert_eq!(
        rev.untrusted_context,
        vec!["<U0DAVE>: rewrite it in rust".to_string()]
    );
    assert_eq!(
        bot.slack.calls("usergroups.users.list").len(),
        1,
        "one read per group per event, however many authors the thread has"
    );

    // Carol's reply refines the task.
    let reply = bot.slack.say(
        DEV,
        "U0CAROL",
        "also give mul() a docstring",
        Some(&root.ts),
    );
    bot.slack.push(FakeSlack::message_event(&reply)).await;
    wait_task(&bot, 30, |t| t.revisions.len() == 2).await;
    assert_eq!(
        bot.tasks()[0].revisions.len(),
        2,
        "a lead's reply is revision 2"
    );
    assert_eq!(
        bot.tasks()[0].revisions[1].author.as_deref(),
        Some("U0CAROL")
    );
    bot.wait_reports(&root, 2).await;

    // So does her mention in the thread.
    let again = bot.slack.say(
        DEV,
        "U0CAROL",
        "<@U0BOT> and keep the README as it is",
        Some(&root.ts),
    );
    bot.slack.push(FakeSlack::mention_event(&again)).await;
    wait_task(&bot, 30, |t| t.revisions.len() == 3).await;
    assert_eq!(
        bot.tasks()[0].revisions.len(),
        3,
        "a lead's mention in the thread is revision 3"
    );
    bot.wait_reports(&root, 3).await;
    let report = bot.slack.reports(DEV, &root.ts)[2].clone();

    // ❌, 🔁 and ⏪ from her are not a stranger's.
    bot.react("U0CAROL", "x", &report.ts).await;
    let said = answer(
        &bot,
        &root.ts,
        &["Closed by", "Cancelling", "Only the requester"],
    )
    .await;
    assert!(said.starts_with("Closed by <@U0CAROL>"), "{said}");
    bot.react("U0CAROL", "repeat", &report.ts).await;
    let said = answer(&bot, &root.ts, &["Rerun of revision", "Only the requester"]).await;
    assert!(said.contains("asked by <@U0CAROL>"), "{said}");
    bot.wait_reports(&root, 4).await;
    let newest = bot.slack.reports(DEV, &root.ts)[3].clone();
    bot.react("U0CAROL", "rewind", &newest.ts).await;
    let said = answer(&bot, &root.ts, &["A revert needs", "Only the requester"]).await;
    assert!(said.contains("A revert needs a forge"), "{said}");

    // Someone in no approver group is still a stranger.
    bot.react("U0DAVE", "repeat", &newest.ts).await;
    let said = answer(&bot, &root.ts, &["can rerun this task"]).await;
    assert!(said.starts_with("Only the requester"), "{said}");
    settle().await;
    assert_eq!(bot.tasks()[0].runs.len(), 4);
    bot.stop().await;
}
