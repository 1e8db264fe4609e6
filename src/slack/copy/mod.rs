//! Every sentence the bot says in Slack, so wording lives in one place: help, refusals,
//! status lines, outcomes. Pure functions of typed inputs; no I/O.
//!
//! Owns wording only: must not decide anything (the handlers and `crate::actions` decide)
//! and must not call Slack. Block Kit reports are rendered by `crate::gates::render`. Merge
//! refusal reasons are the `Display` of `crate::actions::MergeRefusal` (they are audited
//! too); [`not_merged`] frames them.
//!
//! Everything quoted into a sentence that slipway did not write (errors, node details, tool
//! output) goes through [`mrkdwn`]: it is text, so `<!channel>` or `<https://…|label>` in it
//! cannot notify anyone or forge a link.
#![warn(missing_docs)]

mod deps;
pub use deps::*;

use crate::access::StartRefusal;
use crate::actions::{ActionError, MergeRefusal};
use crate::forge::ForgeError;
use crate::report::Decision;
use crate::repos::RepoConfig;
use crate::task::{Task, TaskState, short_sha, truncate_chars};
use crate::untrusted::mrkdwn;

/// A quoted error (or any `Display` slipway did not word) as mrkdwn text.
fn quoted(error: &dyn std::fmt::Display) -> String {
    mrkdwn(&error.to_string())
}

/// `@slipway help`.
pub const HELP: &str = "I turn a thread into a reviewed change.\n\
• `@slipway in owner/name: <what to change>` starts a task (in a channel with a default repo, the repo can be left out).\n\
• Reply in the task's thread to refine it: a new commit on the same branch.\n\
• On my report: ✅ merges (approvers only), ❌ cancels a run or closes the change, 🔁 runs it again; ⏪ on a merged change opens a revert PR.\n\
• Dependencies: `bump NAME [to VERSION]`, `update patch and minor dependencies`, `lockfile maintenance`, `fix GHSA-…` (one PR per update group; the agent only fixes a bump that breaks the checks).\n\
• `@slipway status` shows the queue; `@slipway cancel` in a task's thread stops its run.";

/// `@slipway cancel` outside a task's thread.
pub const NO_TASK_TO_CANCEL: &str =
    "There is no task in this thread to cancel. Say `@slipway cancel` in the task's own thread.";

/// A mention with nothing to do.
pub const EMPTY_MENTION: &str = "Tell me what to change, e.g. `@slipway in acme/api: make the retry limit configurable`. Say `@slipway help` for more.";

/// The trigger message is missing from the thread Slack returned.
pub const MENTION_NOT_FOUND: &str =
    "I could not find your message in the thread; mention me again.";

/// A refining reply could not be read back from the thread.
pub const REPLY_NOT_FOUND: &str =
    "I could not read your reply from the thread, so nothing changed. Try again in a moment.";

/// A refinement of a merged task.
pub const REFINE_MERGED: &str =
    "This task is merged already. Start a new thread for a follow-up change.";

/// The first text of a status message posted by egress itself (no pending one).
pub const STARTING: &str = "⏳ Starting…";

/// The status headline of a run stopped by a graceful shutdown.
pub const PAUSED_HEADLINE: &str = "paused: slipway is restarting";

/// Said when a graceful shutdown stopped a run.
pub const RESTARTING: &str =
    "⏸ slipway is restarting, so this run stopped here. It runs again after the restart.";

/// The status headline of a running run.
pub const RUNNING_HEADLINE: &str = "running";

/// The status headline of a failed run.
pub const FAILED_HEADLINE: &str = "failed";

/// A message in a task's thread from someone who is neither its requester nor an approver
/// (listed, or in a listed user group), when they mention the bot.
pub fn context_only(requester: &str) -> String {
    format!(
        "Only the requester (<@{requester}>) or an approver can change this task; your message is passed on as context."
    )
}

/// `@slipway status`: running and queued tasks. `running`/`queued` are the counts over the
/// whole queue and the already rendered bullet lists of this conversation's tasks
/// ([`task_lines`]); `concurrency` is `[queue] concurrency`.
pub fn queue_status(running: (usize, &str), concurrency: usize, queued: (usize, &str)) -> String {
    format!(
        "*Running* ({} of at most {concurrency})\n{}\n*Queued* ({})\n{}",
        running.0, running.1, queued.0, queued.1
    )
}

/// One bullet per task started in this conversation, then how many others there are
/// (counted, never named: their titles belong to other channels and DMs); "• none" when
/// there are neither.
pub fn task_lines(tasks: &[Task], elsewhere: usize) -> String {
    let mut lines: Vec<String> = tasks
        .iter()
        .map(|t| {
            format!(
                "• `{}` {} ({}, rev {})",
                t.id,
                truncate_chars(&t.title(), 60),
                t.repo.name,
                t.current().number
            )
        })
        .collect();
    if elsewhere > 0 {
        lines.push(format!(
            "• {elsewhere} from other conversations (ask there to see them)"
        ));
    }
    if lines.is_empty() {
        return "• none".into();
    }
    lines.join("\n")
}

/// A new task refused by `crate::access`; `repo` is the repo asked for, `now_ms` the time
/// the rate limit's reset is counted from. Nothing was started.
pub fn start_refused(refusal: &StartRefusal, repo: &str, now_ms: u64) -> String {
    match refusal {
        StartRefusal::Channel { allowed } if allowed.is_empty() => format!(
            "🚫 `{repo}` takes tasks only from its own channels, and none is configured, so nothing was started. An operator sets its `channels` in slipway.toml."
        ),
        StartRefusal::Channel { allowed } => {
            let channels = allowed
                .iter()
                .map(|c| format!("<#{c}>"))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "🚫 `{repo}` takes tasks only from {channels}, so nothing was started here. Ask there."
            )
        }
        StartRefusal::Requester => format!(
            "🚫 Only the people listed as `requesters` of `{repo}` in slipway.toml can start tasks on it, so nothing was started. Ask one of them, or an operator to add you."
        ),
        StartRefusal::RateLimit {
            limit,
            resets_at_ms,
        } => {
            let minutes = resets_at_ms.saturating_sub(now_ms).div_ceil(60_000).max(1);
            let secs = resets_at_ms / 1000;
            let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
            format!(
                "🚫 You started {limit} task{} in the last hour, the most `[queue] max_tasks_per_user_per_hour` allows, so nothing was started. You can start another in {minutes} min (<!date^{secs}^{{time}}|{h:02}:{m:02} UTC>).",
                if *limit == 1 { "" } else { "s" }
            )
        }
        StartRefusal::Budget { reading, who } => format!(
            "🚫 Nothing was started: {}.",
            crate::budget::refusal_text(reading, who)
        ),
    }
}

/// The configured repos, for "which repo?" answers.
fn known_repos(repos: &[RepoConfig]) -> String {
    if repos.is_empty() {
        "none yet: an operator adds `[[repos]]` to slipway.toml".to_string()
    } else {
        repos
            .iter()
            .map(|r| format!("`{}`", r.name))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A mention naming a repo that is not configured.
pub fn unknown_repo(name: &str, repos: &[RepoConfig]) -> String {
    format!(
        "I don't know the repo `{name}`. I know: {}. Mention me again with one of those.",
        known_repos(repos)
    )
}

/// A mention without a repo in a channel without a default.
pub fn missing_repo(repos: &[RepoConfig]) -> String {
    format!(
        "Which repo? This channel has no default. Mention me again with `in owner/name: …`; I know: {}.",
        known_repos(repos)
    )
}

/// A mention naming only a repo.
pub fn no_instruction(repo: &str) -> String {
    format!(
        "What should I change in `{repo}`? Mention me again with the change, e.g. `@slipway in {repo}: fix the flaky test`."
    )
}

/// A GitHub repo while slipway has no GitHub credentials.
pub fn github_not_configured(repo: &str) -> String {
    format!(
        "`{repo}` uses forge = \"github\", but slipway has no GitHub credentials. An operator sets GITHUB_TOKEN (or GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY) and restarts slipway; then mention me again."
    )
}

/// A local repo without `url`.
pub fn repo_without_url(repo: &str) -> String {
    format!(
        "`{repo}` has no `url` in slipway.toml, so I cannot fetch it. An operator adds the repo's path or clone URL."
    )
}

/// A local repo whose `url` does not resolve; `error` says why.
pub fn repo_unreachable(repo: &str, error: &dyn std::fmt::Display) -> String {
    format!(
        "I cannot fetch `{repo}`: {}. An operator fixes its `url` in slipway.toml.",
        quoted(error)
    )
}

/// Appended to the first status when the thread could not be read.
pub fn thread_unread_note(error: &dyn std::fmt::Display, advice: &str) -> String {
    format!(
        "\n_(I could not read the rest of the thread: {}; {advice})_",
        quoted(error)
    )
}

/// The first status message of a new task; `note` from [`thread_unread_note`] or empty.
pub fn task_queued(task: &Task, note: &str) -> String {
    format!(
        "⏳ Queued `{}` in `{}` (task `{}`).{note}",
        truncate_chars(&task.title(), 80),
        task.repo.name,
        task.id
    )
}

/// The queue could not store a new task.
pub fn queue_failed(error: &dyn std::fmt::Display) -> String {
    format!(
        "❌ I could not queue this task: {}. Nothing will run; mention me again in a minute, or ask an operator to check slipway's store.",
        quoted(error)
    )
}

/// Revision `n` queued behind the task's running run.
pub fn revision_queued_behind(n: u32) -> String {
    format!("⏳ Revision {n} queued: it runs on the same branch after the current run.")
}

/// Revision `n` queued on `branch`.
pub fn revision_queued(n: u32, branch: &str) -> String {
    format!("⏳ Revision {n} queued on `{branch}`.")
}

/// Someone who is neither requester nor approver tried to `verb` (cancel, rerun, revert).
pub fn not_allowed(requester: &str, verb: &str) -> String {
    format!("Only the requester (<@{requester}>) or an approver can {verb} this task.")
}

/// ⏪ on a task whose forge has no PRs.
pub const REVERT_NEEDS_PRS: &str = "⏪ A revert needs a forge with pull requests (forge = \"github\"); with the local forge, revert the merge commit in the repo.";

/// ⏪ on a task that is not merged (the whole sentence is lower-cased, as it always was).
pub fn revert_not_merged(state: TaskState) -> String {
    format!(
        "⏪ Only a merged task can be reverted; this one is {state:?}. To drop an open PR, react ❌."
    )
    .to_lowercase()
}

/// ⏪ on a task that has a revert already.
pub fn revert_exists(revert_task: &str) -> String {
    format!("⏪ A revert of this task exists already (task `{revert_task}`).")
}

/// The first status of a revert task.
pub fn reverting(of: &Task, merge_commit: &str, user: &str, revert_task: &str) -> String {
    format!(
        "⏪ Reverting `{}` (merge `{}`), asked by <@{user}>: the repo's checks run on the revert before its PR opens (task `{revert_task}`).",
        truncate_chars(&of.title(), 80),
        short_sha(merge_commit),
    )
}

/// A refused approval; `why` is a `MergeRefusal`.
pub fn not_merged(why: &dyn std::fmt::Display) -> String {
    format!("Not merged: {}", quoted(why))
}

/// A refused approval from someone who wrote revision `revision` of the change (a merge
/// includes every revision, so nobody approves instructions they gave).
pub fn own_revision_not_merged(approver: &str, revision: u32) -> String {
    format!(
        "Not merged: <@{approver}> wrote revision {revision} of this change, and nobody approves their own instructions. Ask another approver to react ✅."
    )
}

/// An approval that merged.
pub fn merged(task: &Task, tested: &str, merge_commit: &str, approver: &str) -> String {
    format!(
        "✅ Merged `{}` into `{}` as `{}`: approved by <@{approver}>, requested by <@{}>.",
        short_sha(tested),
        task.repo.base,
        short_sha(merge_commit),
        task.requester
    )
}

/// The forge failed an approved merge; the advice depends on the failure.
pub fn merge_failed(e: &ForgeError) -> String {
    let next = match e {
        ForgeError::HeadMoved { .. }
        | ForgeError::NotMergeable { .. }
        | ForgeError::NotOpen { .. } => "",
        e if e.is_outage() => {
            " GitHub is unavailable; nothing is lost: react ✅ again in a few minutes."
        }
        _ => " Reply in the thread to refine the change, or 🔁 to rerun it on the new base.",
    };
    format!("❌ Not merged: {}.{next}", quoted(e))
}

/// ❌ (or `cancel`) stopped a running run.
pub fn cancelling(user: &str) -> String {
    format!("🛑 Cancelling the run (asked by <@{user}>); its sandbox stops now.")
}

/// ❌ on a merged task.
pub const CLOSE_MERGED: &str =
    "This task is merged; there is nothing to close. To undo it, revert the merge commit.";

/// ❌ closed the task; `pr` is the forge's answer to closing its PR.
pub fn closed(task: &Task, user: &str, pr: &Result<Option<String>, ForgeError>) -> String {
    let what = match (pr, &task.pr_url) {
        (Ok(Some(u)), _) => format!("its pull request {u} is closed"),
        (Err(e), Some(u)) => {
            format!(
                "the pull request {u} could not be closed ({}); close it on GitHub",
                quoted(e)
            )
        }
        (_, Some(u)) => format!("the pull request {u} stays as it is"),
        _ => format!("the branch `{}` stays in the repo", task.branch),
    };
    format!("Closed by <@{user}>: nothing more will run or merge for this task; {what}.")
}

/// 🔁 while a run is queued or running.
pub const RERUN_BUSY: &str = "A run of this task is already queued or running.";

/// 🔁 on a merged task.
pub const RERUN_MERGED: &str = "This task is merged; start a new thread for more changes.";

/// 🔁 queued revision `n` again.
pub fn rerun_queued(n: u32, user: &str) -> String {
    format!("🔁 Rerun of revision {n} queued (asked by <@{user}>).")
}

/// A status message: headline (`state`: running, finished: …, failed, paused…), then one
/// line per finished node.
pub fn status(
    revision: u32,
    run_id: Option<&str>,
    state: &str,
    elapsed_s: f64,
    lines: &[String],
) -> String {
    let run = run_id.map(|r| format!(" · run `{r}`")).unwrap_or_default();
    let mut text = format!("*Revision {revision}*{run} · {state} · {elapsed_s:.1} s");
    for l in lines {
        text.push('\n');
        text.push_str(l);
    }
    text
}

/// A status headline with the run's cost so far appended (`running · $0.0421`), when a
/// model was paid.
pub fn with_cost(state: &str, usd: Option<f64>) -> String {
    match usd {
        Some(v) if v > 0.0 => format!("{state} · {}", crate::budget::usd(v)),
        _ => state.to_string(),
    }
}

/// A `[budgets]` limit reached 80% during a run: once per run per limit.
pub fn budget_warning(limit: crate::budget::Limit, spent: f64, max: f64) -> String {
    let pct = if max > 0.0 {
        spent / max * 100.0
    } else {
        100.0
    };
    format!(
        "⚠️ This run has used {pct:.0}% of `[budgets] {}`: {} of {}. At 100% the agent stops and the run halts with reason `budget`; an operator raises the limit in slipway.toml.",
        limit.key(),
        limit.figure(spent),
        limit.figure(max)
    )
}

/// The status headline of a finished run.
pub fn finished_headline(decision: Decision) -> String {
    format!("finished: {decision}")
}

/// A status line for a finished node; `detail` is shown only when it failed.
pub fn node_line(node: &str, ok: bool, detail: &str, duration_ms: u64) -> String {
    let mark = if ok { "✓" } else { "✗" };
    // Setup's result says whether the environment was cached: worth a line even when ok;
    // so is a sandbox that came pre-started from the warm pool.
    let detail = if ok && node == "sandbox" && detail.contains(crate::report::WARM_POOL) {
        format!(": {}", crate::report::WARM_POOL)
    } else if (ok && node != "setup") || detail.is_empty() {
        String::new()
    } else {
        format!(": {}", mrkdwn(&truncate_chars(detail, 120)))
    };
    format!("{mark} {node} {:.1} s{detail}", duration_ms as f64 / 1000.0)
}

/// A node's progress line, shown until the node finishes (e.g. `⏳ setup: building the
/// environment for this repo, first run`).
pub fn progress_line(node: &str, detail: &str) -> String {
    format!("⏳ {node}: {}", mrkdwn(&truncate_chars(detail, 160)))
}

/// The status line linking the PR as soon as it exists.
pub fn pr_line(url: &str) -> String {
    format!("🔗 <{url}|pull request>")
}

/// A restart interrupted the task's run; `rerun` says whether it runs again.
pub fn interrupted(rerun: bool) -> &'static str {
    if rerun {
        "⚠️ slipway restarted while this task was running. It runs again now, from a fresh checkout."
    } else {
        "⚠️ slipway restarted during this task's run a second time, so it stays stopped. React 🔁 on the last report, or reply in the thread, to try again."
    }
}

/// A run that failed without a report.
pub fn run_failed(error: &str) -> String {
    format!(
        "❌ The run failed: {}\nReply in the thread to refine the task, or react 🔁 here to run it again.",
        mrkdwn(&truncate_chars(error, 1500))
    )
}

/// The words for an action that did not happen, for `verb` (cancel, rerun, revert, merge);
/// `None` for store failures (logged, not shown).
pub fn action_error(e: &ActionError, verb: &str) -> Option<String> {
    match e {
        ActionError::NotTrusted { requester } => Some(not_allowed(requester, verb)),
        ActionError::MergeRefused(MergeRefusal::OwnRevision { approver, revision }) => {
            Some(own_revision_not_merged(approver, *revision))
        }
        ActionError::MergeRefused(r) => Some(not_merged(r)),
        ActionError::Forge(f) => Some(merge_failed(f)),
        ActionError::Store(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_limit_refusal_gives_the_figure_and_when_it_resets() {
        let limit = StartRefusal::RateLimit {
            limit: 3,
            resets_at_ms: 1_700_000_000_000 + 90_000,
        };
        assert_eq!(
            start_refused(&limit, "acme/calc", 1_700_000_000_000),
            "🚫 You started 3 tasks in the last hour, the most `[queue] max_tasks_per_user_per_hour` allows, so nothing was started. You can start another in 2 min (<!date^1700000090^{time}|22:14 UTC>)."
        );
        let channel = StartRefusal::Channel {
            allowed: vec!["C0DEV".into()],
        };
        assert!(start_refused(&channel, "acme/calc", 0).contains("only from <#C0DEV>"));
    }

    #[test]
    fn status_lines_count_other_conversations_without_naming_them() {
        assert_eq!(task_lines(&[], 0), "• none");
        assert_eq!(
            task_lines(&[], 2),
            "• 2 from other conversations (ask there to see them)"
        );
    }

    #[test]
    fn help_names_every_reaction_on_a_report() {
        for r in ["✅", "❌", "🔁", "⏪"] {
            assert!(HELP.contains(r), "help lacks {r}");
        }
    }

    #[test]
    fn a_revert_of_an_unmerged_task_is_answered_in_lower_case_as_before() {
        assert_eq!(
            revert_not_merged(TaskState::Ready),
            "⏪ only a merged task can be reverted; this one is ready. to drop an open pr, react ❌."
        );
    }

    #[test]
    fn a_failed_merge_advises_by_failure_kind() {
        let moved = ForgeError::NotOpen {
            pr: "#1".into(),
            state: "closed".into(),
        };
        assert_eq!(
            merge_failed(&moved),
            "❌ Not merged: #1 is already closed; nothing was merged."
        );
        assert!(merge_failed(&ForgeError::Unsupported("x")).ends_with("on the new base."));
    }

    #[test]
    fn a_sandbox_from_the_warm_pool_says_so_in_the_status_line() {
        let warm = node_line(
            "sandbox",
            true,
            "docker (img), no network; warm pool (container 0123456789ab)",
            120,
        );
        assert_eq!(warm, "✓ sandbox 0.1 s: warm pool");
        assert_eq!(
            node_line("sandbox", true, "docker (img), no network", 900),
            "✓ sandbox 0.9 s"
        );
    }

    #[test]
    fn tool_output_in_a_status_line_or_failure_is_text_not_markup() {
        let line = node_line(
            "checks",
            false,
            "<!channel> see <https://evil.example|logs> & <@U0X>",
            10,
        );
        assert!(
            line.ends_with(
                ": &lt;!channel&gt; see &lt;https://evil.example|logs&gt; &amp; &lt;@U0X&gt;"
            ),
            "{line}"
        );
        let failed = run_failed("git said <!here> & left");
        assert!(
            failed.contains("git said &lt;!here&gt; &amp; left"),
            "{failed}"
        );
        let note = thread_unread_note(&"<!here>", "try again");
        assert!(!note.contains("<!here>"), "{note}");
        assert!(!not_merged(&"<!here>").contains("<!here>"));
    }

    #[test]
    fn a_revision_author_is_told_why_their_approval_did_not_merge() {
        let e = ActionError::MergeRefused(MergeRefusal::OwnRevision {
            approver: "U0BOB".into(),
            revision: 2,
        });
        let said = action_error(&e, "merge").unwrap();
        assert!(
            said.starts_with("Not merged: <@U0BOB> wrote revision 2"),
            "{said}"
        );
        assert!(said.contains("another approver"), "{said}");
        // The audited reason is the refusal's own text.
        assert_eq!(
            MergeRefusal::OwnRevision {
                approver: "U0BOB".into(),
                revision: 2
            }
            .to_string(),
            "U0BOB wrote revision 2 of this change, so cannot approve it."
        );
    }
}
