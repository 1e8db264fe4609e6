//! Schedules in Slack: the [`Starter`] that fires a `[[schedules]]` slot as a new
//! top-level message in the schedule's channel, then a task in that message's thread,
//! created, bound and queued through the same functions a mention uses (the queue's
//! `store_new`, the bindings, egress's status message), so the run reports there like any
//! other Slack task. The requester is `slipway`.
//!
//! The top-level post goes straight through the Web API, not the outbox: its `ts` is the
//! task's thread, needed before the task can be stored, and the outbox's "was it posted
//! already?" lookup reads a thread, which a new top-level message does not have yet.
//! Everything after it goes through egress and the outbox. A start that fails before the
//! post says so in the channel (one top-level message); one that fails after it says so in
//! its thread. Either way the slot stays claimed and the next slot is the retry.
#![warn(missing_docs)]

use super::api::WebApi;
use super::bindings::Bindings;
use super::copy;
use super::egress::Egress;
use super::handlers::mention::repo_source;
use crate::queue::{Queue, Submitted};
use crate::repos::{ForgeKind, RepoConfig};
use crate::schedule::slots;
use crate::schedule::{ScheduleConfig, StartError, Starter};
use crate::store::AuditEvent;
use crate::task::{Origin, RepoRef, Task};

/// The requester of scheduled tasks.
pub const REQUESTER: &str = "slipway";

/// Starts scheduled slots in Slack. Cheap to clone; build it in `serve`.
#[derive(Clone)]
pub struct SlackStarter {
    /// The top-level post and the thread's permalink.
    pub api: WebApi,
    /// The status message, failures, the audit entry.
    pub egress: Egress,
    /// Thread → task.
    pub bindings: Bindings,
    /// Stores and queues the task.
    pub queue: Queue,
    /// `[[repos]]`.
    pub repos: Vec<RepoConfig>,
    /// Whether GitHub credentials are configured (`forge = "github"` repos need them).
    pub github_configured: bool,
    /// `dependency_update` slots: planned per group, one thread each, as a Slack request
    /// is (`None`: such a slot runs as one task, for the plan's first group).
    pub deps: Option<super::handlers::deps::DepsStart>,
}

/// The top-level message that starts a slot's thread.
pub fn announcement(s: &ScheduleConfig, slot_ms: u64) -> String {
    let spec = s.spec();
    let args = if spec.args.is_empty() {
        String::new()
    } else {
        format!(" `{}`", spec.args.join(" "))
    };
    format!(
        "🗓️ Scheduled `{}`{args} for `{}` (schedule `{}`, slot {})",
        spec.blueprint,
        spec.repo,
        s.id(),
        slots::label(s, slot_ms)
    )
}

/// What is said when a slot could not start.
fn start_failed(s: &ScheduleConfig, slot_ms: u64, error: &StartError) -> String {
    format!(
        "⚠️ Scheduled `{}` for `{}` (schedule `{}`, slot {}) could not start: {error}. The next slot tries again.",
        s.spec().blueprint,
        s.spec().repo,
        s.id(),
        slots::label(s, slot_ms)
    )
}

/// The task a slot starts in thread `thread_ts` of `channel`: requester [`REQUESTER`], the
/// schedule's blueprint and instruction, and for `dependency_update` its parsed `args` as
/// `task.deps`.
fn scheduled_task(
    s: &ScheduleConfig,
    repo: &RepoConfig,
    source: String,
    channel: &str,
    thread_ts: &str,
) -> Task {
    let repo_ref = RepoRef::of(repo, source);
    let origin = Origin::Slack {
        channel: channel.into(),
        thread_ts: thread_ts.into(),
    };
    let mut task = Task::new(repo_ref, REQUESTER, origin, &s.instruction());
    task.blueprint = s.blueprint();
    task.deps = s.deps().cloned();
    task
}

impl SlackStarter {
    /// Where the schedule's repo is fetched from, or why it cannot be worked on.
    fn repo(&self, s: &ScheduleConfig) -> Result<(RepoConfig, String), StartError> {
        let name = &s.spec().repo;
        let Some(repo) = self.repos.iter().find(|r| &r.name == name) else {
            return Err(StartError::UnknownRepo { repo: name.clone() });
        };
        if repo.forge == ForgeKind::Github && !self.github_configured {
            return Err(StartError::Repo {
                message: copy::github_not_configured(name),
            });
        }
        let source = repo_source(repo).map_err(|message| StartError::Repo { message })?;
        Ok((repo.clone(), source))
    }

    /// Posts the slot's top-level message, then creates and queues its task in that thread.
    async fn start_in_thread(
        &self,
        s: &ScheduleConfig,
        slot_ms: u64,
        repo: RepoConfig,
        source: String,
    ) -> Result<String, StartError> {
        let channel = s.spec().channel.as_str();
        let thread_ts = self
            .api
            .post_top_level(channel, &announcement(s, slot_ms))
            .await
            .map_err(|e| StartError::Front {
                what: format!("chat.postMessage in {channel}"),
                source: Box::new(e),
            })?;
        if s.blueprint() == crate::task::BlueprintId::DependencyUpdate
            && let (Some(deps), Some(request)) = (&self.deps, s.deps())
        {
            let at = super::handlers::deps::Asked {
                channel,
                ts: &thread_ts,
                thread_ts: &thread_ts,
                user: REQUESTER,
            };
            let repo_ref = RepoRef::of(&repo, source);
            let why = format!("schedule `{}` fired", s.id());
            let looked_up = deps
                .start(at, repo_ref, request, &why, true)
                .await
                .map_err(|e| StartError::Front {
                    what: "starting the dependency update".into(),
                    source: Box::new(e),
                })?;
            if !looked_up {
                return Err(StartError::Repo {
                    message: "the dependency lookup failed (said in the thread); the next slot tries again".into(),
                });
            }
            return Ok(format!("dependency update in {channel}/{thread_ts}"));
        }
        let mut task = scheduled_task(s, &repo, source, channel, &thread_ts);
        task.thread_url = self.api.permalink(channel, &thread_ts).await.ok();
        // As a mention does: bound before queued, so the run's first event finds its
        // thread; stored with its queue item in one write; woken once announced.
        self.bindings
            .bind_thread(channel, &thread_ts, &task.id)
            .await?;
        self.egress
            .bind_task_thread(channel, &thread_ts, &task.id)
            .await
            .map_err(|e| StartError::Front {
                what: "binding the task's thread".into(),
                source: Box::new(e),
            })?;
        let key = format!("schedule/{}/{slot_ms}", s.id());
        match self.queue.store_new(&mut task, Some(&key)).await {
            Ok(Submitted::Queued(_)) => {}
            Ok(Submitted::Exists(id)) => return Ok(format!("task {id} (started before)")),
            Err(e) => {
                self.egress
                    .say(channel, &thread_ts, &copy::queue_failed(&e))
                    .await;
                return Err(e.into());
            }
        }
        let announced = self
            .egress
            .new_status(
                channel,
                &thread_ts,
                &task.id,
                1,
                &copy::task_queued(&task, ""),
            )
            .await;
        self.queue.wake();
        if let Err(e) = announced {
            tracing::error!(task_id = task.id, error = %e, "could not record the status message");
        }
        self.egress
            .audit(
                &task.id,
                REQUESTER,
                AuditEvent::SlackTaskCreated {
                    channel: channel.to_string(),
                    ts: thread_ts.clone(),
                    repo: task.repo.name.clone(),
                },
            )
            .await;
        Ok(format!("task {} in {channel}/{thread_ts}", task.id))
    }
}

#[async_trait::async_trait]
impl Starter for SlackStarter {
    async fn start(&self, s: &ScheduleConfig, slot_ms: u64) -> Result<String, StartError> {
        let (repo, source) = match self.repo(s) {
            Ok(r) => r,
            Err(e) => {
                // No thread yet: said in the channel, once.
                let channel = &s.spec().channel;
                if let Err(post) = self
                    .api
                    .post_top_level(channel, &start_failed(s, slot_ms, &e))
                    .await
                {
                    tracing::error!(channel, error = %post, "could not say in the channel that a schedule failed");
                }
                return Err(e);
            }
        };
        self.start_in_thread(s, slot_ms, repo, source).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::ScheduleSpec;

    fn deps_schedule() -> ScheduleConfig {
        ScheduleConfig::new(ScheduleSpec {
            cron: "0 6 * * MON".into(),
            timezone: "Europe/Berlin".into(),
            repo: "acme/api".into(),
            blueprint: "dependency_update".into(),
            args: vec![
                "--update-types".into(),
                "patch,minor".into(),
                "--only".into(),
                "lodash".into(),
            ],
            channel: "C0DEPS".into(),
        })
        .unwrap()
    }

    #[test]
    fn a_dependency_update_slot_makes_a_task_whose_deps_are_the_schedules_args() {
        let s = deps_schedule();
        let repo: RepoConfig = toml::from_str("name = \"acme/api\"\nbase = \"main\"").unwrap();
        let task = scheduled_task(&s, &repo, "/srv/api.git".into(), "C0DEPS", "1700.000100");
        assert_eq!(task.blueprint, crate::task::BlueprintId::DependencyUpdate);
        assert_eq!(task.requester, REQUESTER);
        let deps = task.deps.expect("dependency_update tasks carry deps");
        assert_eq!(
            deps.update_types,
            vec![
                crate::deps::UpdateType::Patch,
                crate::deps::UpdateType::Minor
            ]
        );
        assert_eq!(deps.only, vec!["lodash"]);
        assert_eq!(
            task.origin,
            Origin::Slack {
                channel: "C0DEPS".into(),
                thread_ts: "1700.000100".into()
            }
        );
        assert_eq!(
            task.revisions[0].instructions,
            "Scheduled dependency_update (--update-types patch,minor --only lodash)"
        );
    }

    #[test]
    fn the_announcement_names_blueprint_repo_schedule_and_slot_in_its_zone() {
        let s = ScheduleConfig::new(ScheduleSpec {
            cron: "0 6 * * MON".into(),
            timezone: "Europe/Berlin".into(),
            repo: "acme/api".into(),
            blueprint: "dependency_update".into(),
            args: vec!["--update-types".into(), "patch,minor".into()],
            channel: "C0DEPS".into(),
        })
        .unwrap();
        // 2026-11-30 05:00 UTC is 06:00 in Berlin (CET, +01:00).
        let slot = 1_796_014_800_000;
        assert_eq!(
            announcement(&s, slot),
            format!(
                "🗓️ Scheduled `dependency_update` `--update-types patch,minor` for `acme/api` (schedule `{}`, slot 2026-11-30 06:00 Europe/Berlin)",
                s.id()
            )
        );
    }
}
