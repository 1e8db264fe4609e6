//! A mention (or a DM to the bot): 👀 at once, then a command (`help`, `status`,
//! `cancel`), a refinement of the thread's task, or a new task (the repo from the text or
//! the channel, the whole thread read as context). Must not act on reactions or render
//! queue events.
//!
//! A new task first passes `crate::access::decide_start` (the repo's channels and
//! requesters, the per-user rate limit). A refusal is answered in the thread, audited as
//! `task_refused` and starts nothing; the 👀 stays, since it only says the mention was seen.
//! `status` names only the tasks started in the conversation it is asked in.
#![warn(missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::reply::Reply;
use super::{HandlerError, SlackGroups, read_thread};
use crate::access::{StartDecision, StartRefusal, StartRequest, decide_start};
use crate::actions::{Actions, Settings};
use crate::queue::{Queue, Submitted};
use crate::repos::ForgeKind;
use crate::repos::RepoConfig;
use crate::slack::api::WebApi;
use crate::slack::bindings::Bindings;
use crate::slack::copy;
use crate::slack::egress::Egress;
use crate::slack::thread::{
    Command, RepoChoice, choose_repo, parse_command, revision_from_thread, strip_mentions,
};
use crate::store::{AuditEvent, Store};
use crate::task::{Origin, RepoRef, Revision, Task, now_ms};

/// The bot's acknowledgement on a mention.
pub const SEEN: &str = "eyes";

/// Mentions acknowledged with 👀 since start: a counter shared with `/metrics`. Cheap to
/// clone.
#[derive(Debug, Clone, Default)]
pub struct MentionsSeen(Arc<AtomicU64>);

impl MentionsSeen {
    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    fn bump(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// What one mention is about.
pub struct MentionEvent<'a> {
    /// Channel ID.
    pub channel: &'a str,
    /// The mention's own `ts`.
    pub ts: &'a str,
    /// Its thread (its own `ts` when it starts one).
    pub thread_ts: &'a str,
    /// Who mentioned the bot.
    pub user: &'a str,
    /// The message text, mentions included.
    pub text: &'a str,
    /// When the envelope arrived (for the 👀 latency).
    pub received: Instant,
}

/// The mention handler's handles. Cheap to clone.
#[derive(Clone)]
pub struct Mention {
    /// 👀, the thread, the permalink.
    pub api: WebApi,
    /// Posts and status messages.
    pub egress: Egress,
    /// Thread → task.
    pub bindings: Bindings,
    /// Submits new tasks; `status`.
    pub queue: Queue,
    /// Task titles for `status`.
    pub store: Store,
    /// `cancel`.
    pub actions: Actions,
    /// A trusted mention in a task's thread refines it.
    pub reply: Reply,
    /// `[[repos]]` and approvers (groups resolved through `api`).
    pub settings: Arc<Settings>,
    /// `[queue] concurrency`, for `status`.
    pub concurrency: usize,
    /// `[queue] max_tasks_per_user_per_hour` (0 = no limit), for new tasks.
    pub max_tasks_per_user_per_hour: u32,
    /// Whether GitHub credentials are configured (`forge = "github"` repos need them).
    pub github_configured: bool,
    /// Bumped on every 👀.
    pub seen: MentionsSeen,
    /// Starts `dependency_update` requests; `None` answers that they are not enabled.
    pub deps: Option<super::deps::DepsStart>,
}

impl Mention {
    /// Handles one mention.
    pub async fn run(&self, m: MentionEvent<'_>) -> Result<(), HandlerError> {
        let MentionEvent {
            channel,
            ts,
            thread_ts,
            user,
            text,
            received,
        } = m;
        // 👀 at once; if Slack refuses it (a rate limit that outlasts the retries), it goes
        // through the outbox and waits its turn instead of being lost.
        match self.api.react(channel, ts, SEEN).await {
            Ok(()) => {
                self.seen.bump();
                tracing::debug!(
                    ms = received.elapsed().as_millis() as u64,
                    "mention acknowledged with 👀"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, advice = e.advice(), "could not add 👀 now; queued");
                match self
                    .egress
                    .outbox()
                    .react(channel, thread_ts, ts, SEEN)
                    .await
                {
                    Ok(()) => self.seen.bump(),
                    Err(e) => tracing::error!(error = %e, "could not queue 👀"),
                }
            }
        }
        let existing = self.bindings.task_for_thread(channel, thread_ts)?;
        match parse_command(text) {
            Command::Help => {
                self.egress.say(channel, thread_ts, copy::HELP).await;
            }
            Command::Status => {
                let text = self.status_text(channel)?;
                self.egress.say(channel, thread_ts, &text).await;
            }
            Command::Cancel => match existing {
                Some(task) => {
                    let groups = SlackGroups::new(&self.api, &self.settings);
                    super::reaction::close(
                        &self.actions,
                        &self.egress,
                        channel,
                        thread_ts,
                        &task,
                        user,
                        &groups,
                    )
                    .await?
                }
                None => {
                    self.egress
                        .say(channel, thread_ts, copy::NO_TASK_TO_CANCEL)
                        .await;
                }
            },
            Command::Empty => {
                self.egress
                    .say(channel, thread_ts, copy::EMPTY_MENTION)
                    .await;
            }
            Command::Task(_) => match existing {
                Some(task) => {
                    let groups = SlackGroups::new(&self.api, &self.settings);
                    if self.settings.is_trusted(user, &task, &groups).await {
                        self.reply
                            .refine(channel, ts, thread_ts, user, &task, &groups)
                            .await?;
                    } else {
                        self.egress
                            .say(channel, thread_ts, &copy::context_only(&task.requester))
                            .await;
                    }
                }
                None => self.start(channel, ts, thread_ts, user, text).await?,
            },
        }
        Ok(())
    }

    /// The queue as seen from `channel`: counts over the whole queue, titles only of tasks
    /// whose thread is in `channel` (a DM sees its own tasks only).
    fn status_text(&self, channel: &str) -> Result<String, HandlerError> {
        let s = self.queue.status()?;
        let here = |ids: &[String]| -> Result<(Vec<Task>, usize), HandlerError> {
            let mut mine = Vec::new();
            for id in ids {
                mine.extend(self.store.get_task(id)?.filter(
                    |t| matches!(&t.origin, Origin::Slack { channel: c, .. } if c == channel),
                ));
            }
            let elsewhere = ids.len() - mine.len();
            Ok((mine, elsewhere))
        };
        let (running, running_elsewhere) = here(&s.running)?;
        let (queued, queued_elsewhere) = here(&s.queued)?;
        let running = copy::task_lines(&running, running_elsewhere);
        let queued = copy::task_lines(&queued, queued_elsewhere);
        Ok(copy::queue_status(
            (s.running.len(), &running),
            self.concurrency,
            (s.queued.len(), &queued),
        ))
    }

    /// Asks `crate::access` whether `user` may start a task on `repo` from `channel`. On a
    /// refusal, answers in the thread, audits `task_refused` and returns false.
    async fn may_start(
        &self,
        repo: &RepoConfig,
        channel: &str,
        ts: &str,
        thread_ts: &str,
        user: &str,
    ) -> Result<bool, HandlerError> {
        let limit = self.max_tasks_per_user_per_hour;
        // Counted from the store, so a restart forgets nothing; read only when limited.
        let created: Vec<u64> = if limit > 0 {
            self.store
                .list_tasks()?
                .into_iter()
                .filter(|t| t.requester == user)
                .map(|t| t.created_ms)
                .collect()
        } else {
            Vec::new()
        };
        let now = now_ms();
        let refusal = match decide_start(&StartRequest {
            repo,
            channel,
            user,
            created_by_user_ms: &created,
            max_per_hour: limit,
            now_ms: now,
        }) {
            StartDecision::Allow => match self.daily_budget_spent(repo, user)? {
                None => return Ok(true),
                Some(r) => r,
            },
            StartDecision::Refuse(r) => r,
        };
        tracing::info!(
            repo = repo.name,
            channel,
            user,
            reason = ?refusal.reason(),
            "new task refused"
        );
        self.egress
            .say(
                channel,
                thread_ts,
                &copy::start_refused(&refusal, &repo.name, now),
            )
            .await;
        self.store
            .audit_now(
                None,
                None,
                user,
                AuditEvent::TaskRefused {
                    reason: refusal.reason(),
                    repo: repo.name.clone(),
                    channel: channel.to_string(),
                    ts: ts.to_string(),
                },
            )
            .await?;
        Ok(false)
    }

    /// A `[budgets]` daily limit `user` or `repo` has spent today (the store's ledger), as
    /// a refusal.
    fn daily_budget_spent(
        &self,
        repo: &RepoConfig,
        user: &str,
    ) -> Result<Option<StartRefusal>, HandlerError> {
        let keys = crate::store::SpendKeys {
            task_id: String::new(),
            requester: user.into(),
            repo: repo.name.clone(),
        };
        let totals = self.store.spend(&keys, &crate::budget::utc_day(now_ms()))?;
        Ok(
            crate::budget::daily_over(&self.settings.budgets, &totals).map(|reading| {
                StartRefusal::Budget {
                    who: crate::budget::spender(&reading, user, &repo.name).to_string(),
                    reading,
                }
            }),
        )
    }

    async fn start(
        &self,
        channel: &str,
        ts: &str,
        thread_ts: &str,
        user: &str,
        text: &str,
    ) -> Result<(), HandlerError> {
        let repos = &self.settings.repos;
        let egress = &self.egress;
        let repo = match choose_repo(text, channel, repos) {
            RepoChoice::Named(r) | RepoChoice::ChannelDefault(r) => r,
            RepoChoice::Unknown(name) => {
                egress
                    .say(channel, thread_ts, &copy::unknown_repo(&name, repos))
                    .await;
                return Ok(());
            }
            RepoChoice::Missing => {
                egress
                    .say(channel, thread_ts, &copy::missing_repo(repos))
                    .await;
                return Ok(());
            }
        };
        if !self.may_start(&repo, channel, ts, thread_ts, user).await? {
            return Ok(());
        }
        let instruction = instruction_without_repo(text, &repo.name);
        if instruction.is_empty() {
            egress
                .say(channel, thread_ts, &copy::no_instruction(&repo.name))
                .await;
            return Ok(());
        }
        let source = match repo_source(&repo) {
            Ok(_) if repo.forge == ForgeKind::Github && !self.github_configured => {
                egress
                    .say(channel, thread_ts, &copy::github_not_configured(&repo.name))
                    .await;
                return Ok(());
            }
            Ok(s) => s,
            Err(msg) => {
                egress.say(channel, thread_ts, &msg).await;
                return Ok(());
            }
        };
        if let Some(routed) = crate::deps::intent::route(&instruction) {
            let repo_ref = RepoRef::of(&repo, source);
            let at = super::deps::Asked {
                channel,
                ts,
                thread_ts,
                user,
            };
            let Some(deps) = &self.deps else {
                self.egress
                    .say(channel, thread_ts, copy::DEPS_UNAVAILABLE)
                    .await;
                return Ok(());
            };
            deps.start(at, repo_ref, &routed.request, &routed.why, false)
                .await?;
            return Ok(());
        }
        let (messages, read_error) =
            read_thread(&self.api, channel, thread_ts, ts, Some(text), user).await;
        // Approvers (user groups expanded) among the thread's authors are trusted context.
        let groups = SlackGroups::new(&self.api, &self.settings);
        let authors: Vec<&str> = messages
            .iter()
            .filter(|m| !m.from_bot)
            .map(|m| m.user.as_str())
            .collect();
        let approvers = self.settings.approvers_among(&authors, &groups).await;
        let Some(revision) = revision_from_thread(&messages, ts, user, &approvers) else {
            egress
                .say(channel, thread_ts, copy::MENTION_NOT_FOUND)
                .await;
            return Ok(());
        };
        let repo_ref = RepoRef::of(&repo, source);
        let origin = Origin::Slack {
            channel: channel.into(),
            thread_ts: thread_ts.into(),
        };
        let instructions = strip_repo_prefix(&revision.instructions, &repo.name);
        let mut task = Task::new(repo_ref, user, origin, &instructions);
        // For the PR body and the merge comment; a task without it only lacks the link.
        task.thread_url = match self.api.permalink(channel, thread_ts).await {
            Ok(u) => Some(u),
            Err(e) => {
                tracing::warn!(error = %e, "no permalink for the thread");
                None
            }
        };
        task.revisions[0] = Revision {
            number: 1,
            instructions,
            author: Some(user.to_string()),
            ..revision
        };
        // Bind before queueing, so the run's first event finds its thread.
        self.bindings
            .bind_thread(channel, thread_ts, &task.id)
            .await?;
        egress
            .bind_task_thread(channel, thread_ts, &task.id)
            .await?;
        // Stored (task, queue item and this message's record, in one write) before anything
        // says "Queued"; the dispatcher wakes only once the thread was told.
        match self
            .queue
            .store_new(&mut task, Some(&format!("{channel}/{ts}")))
            .await
        {
            Ok(Submitted::Queued(_)) => {}
            Ok(Submitted::Exists(id)) => {
                tracing::info!(task_id = id, ts, "this mention created its task before");
                self.bindings.bind_thread(channel, thread_ts, &id).await?;
                return Ok(());
            }
            Err(e) => {
                egress
                    .say(channel, thread_ts, &copy::queue_failed(&e))
                    .await;
                return Err(e.into());
            }
        }
        let note = read_error
            .map(|e| copy::thread_unread_note(&e, e.advice()))
            .unwrap_or_default();
        let status_text = copy::task_queued(&task, &note);
        let announced = egress
            .new_status(channel, thread_ts, &task.id, 1, &status_text)
            .await;
        self.queue.wake();
        announced?;
        egress
            .audit(
                &task.id,
                user,
                AuditEvent::SlackTaskCreated {
                    channel: channel.to_string(),
                    ts: ts.to_string(),
                    repo: task.repo.name.clone(),
                },
            )
            .await;
        Ok(())
    }
}

/// A task's instruction with the mention, the repo name and filler words removed: empty
/// means the mention named only a repo.
fn instruction_without_repo(text: &str, repo: &str) -> String {
    let t = strip_mentions(text);
    // ASCII lowering keeps byte offsets, so the index is valid in `t`.
    let lower = t.to_ascii_lowercase();
    let without = match lower.find(&repo.to_ascii_lowercase()) {
        Some(i) => format!("{}{}", &t[..i], &t[i + repo.len()..]),
        None => t,
    };
    without
        .split_whitespace()
        .filter(|w| {
            let core = w.to_lowercase();
            let core = core.trim_matches(|c: char| c.is_ascii_punctuation());
            !matches!(core, "" | "in" | "on" | "for" | "repo")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The instruction without a leading "in owner/name:" (the repo is the task's, not part of
/// what to change).
fn strip_repo_prefix(text: &str, repo: &str) -> String {
    let t = text.trim_start();
    let lower = t.to_ascii_lowercase();
    let after_in = ["in ", "on ", "for "]
        .iter()
        .find_map(|p| lower.strip_prefix(p).map(|_| p.len()))
        .unwrap_or(0);
    if lower[after_in..].starts_with(&repo.to_ascii_lowercase()) {
        let rest = &t[after_in + repo.len()..];
        let rest = rest.trim_start_matches([':', ',', '-', ' ']);
        if !rest.trim().is_empty() {
            return rest.trim().to_string();
        }
    }
    text.trim().to_string()
}

/// Where a configured repo is fetched from, or the message for the thread. A GitHub repo's
/// clone URL comes from the API at each run; this is only its placeholder.
pub(crate) fn repo_source(repo: &RepoConfig) -> Result<String, String> {
    if repo.forge == ForgeKind::Github {
        return Ok(format!("https://github.com/{}.git", repo.name));
    }
    let Some(url) = &repo.url else {
        return Err(copy::repo_without_url(&repo.name));
    };
    crate::workspace::Workspaces::resolve_source(url)
        .map(|(source, _)| source)
        .map_err(|e| copy::repo_unreachable(&repo.name, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repo_prefix_is_not_part_of_the_instruction() {
        assert_eq!(
            strip_repo_prefix("in acme/api: fix it", "acme/api"),
            "fix it"
        );
        assert_eq!(strip_repo_prefix("acme/api, fix it", "acme/api"), "fix it");
        assert_eq!(
            strip_repo_prefix("fix acme/api retries", "acme/api"),
            "fix acme/api retries"
        );
    }

    #[test]
    fn a_mention_holding_only_a_repo_has_no_instruction() {
        assert_eq!(
            instruction_without_repo("<@U0BOT> acme/api", "acme/api"),
            ""
        );
        assert_eq!(
            instruction_without_repo("<@U0BOT> in acme/api:", "acme/api"),
            ""
        );
        assert_eq!(
            instruction_without_repo("<@U0BOT> in acme/api: fix the retries 🚀", "acme/api"),
            "fix the retries 🚀"
        );
        assert_eq!(
            instruction_without_repo("<@U0BOT> in Acme/API: ünïcode", "acme/api"),
            "ünïcode"
        );
    }
}
