//! A mention routed to `dependency_update` (`crate::deps::intent`): the request is planned
//! on the repo's base, then one task per update group: the first in the asking thread, each
//! further one in a new top-level thread of the same channel (its own report, its own ✅),
//! and a group that already has an open task is rerun there (same branch, same PR).
//!
//! Idempotent on a replayed envelope: each group's task is created with the idempotency
//! key `<channel>/<ts>#<group>`, checked before its thread is opened.

use super::mention::Mention;
use super::{HandlerError, SlackGroups};
use crate::actions::deps::GroupTask;
use crate::deps::intent::Routed;
use crate::queue::Submitted;
use crate::slack::copy;
use crate::store::AuditEvent;
use crate::task::{Origin, RepoRef, Task};

/// Where a mention asked: its channel, its own `ts`, its thread and its author.
pub struct Asked<'a> {
    pub channel: &'a str,
    pub ts: &'a str,
    pub thread_ts: &'a str,
    pub user: &'a str,
}

impl Mention {
    /// Plans and starts the dependency update `routed` asks for on `repo`.
    pub(super) async fn start_deps(
        &self,
        at: Asked<'_>,
        repo: RepoRef,
        routed: Routed,
    ) -> Result<(), HandlerError> {
        let Asked {
            channel,
            ts,
            thread_ts,
            user,
        } = at;
        let egress = &self.egress;
        let Some(planner) = &self.deps else {
            egress.say(channel, thread_ts, copy::DEPS_UNAVAILABLE).await;
            return Ok(());
        };
        egress
            .say(
                channel,
                thread_ts,
                &copy::deps_looking(&repo.name, &routed.why),
            )
            .await;
        let origin = Origin::Slack {
            channel: channel.into(),
            thread_ts: thread_ts.into(),
        };
        let started = match planner.start(&repo, user, &origin, &routed.request).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(repo = repo.name, error = %e, "dependency lookup failed");
                egress
                    .say(channel, thread_ts, &copy::deps_failed(&repo.name, &e))
                    .await;
                return Ok(());
            }
        };
        if started.groups.is_empty() {
            egress
                .say(
                    channel,
                    thread_ts,
                    &copy::deps_nothing(&repo.name, &started.plan),
                )
                .await;
            return Ok(());
        }
        egress
            .say(
                channel,
                thread_ts,
                &copy::deps_planned(&started.groups, &started.plan),
            )
            .await;
        let asked_url = self.api.permalink(channel, thread_ts).await.ok();
        let mut here = true;
        for g in started.groups {
            match g {
                GroupTask::Open { task, .. } => {
                    let groups = SlackGroups::new(&self.api, &self.settings);
                    match self.actions.rerun(&task, user, &groups).await {
                        Ok(_) => {}
                        Err(e) => match copy::action_error(&e, "rerun") {
                            Some(text) => egress.say(channel, thread_ts, &text).await,
                            None => return Err(e.into()),
                        },
                    }
                }
                GroupTask::New(task) => {
                    let mut task = *task;
                    let slug = task
                        .deps
                        .as_ref()
                        .and_then(|d| d.group.clone())
                        .unwrap_or_default();
                    let key = format!("{channel}/{ts}#{slug}");
                    if self.store.created_by(&key)?.is_some() {
                        here = false;
                        continue;
                    }
                    let thread = if here {
                        thread_ts.to_string()
                    } else {
                        match self
                            .api
                            .post_top_level(
                                channel,
                                &copy::deps_group_thread(&task, asked_url.as_deref()),
                            )
                            .await
                        {
                            Ok(ts) => ts,
                            Err(e) => {
                                egress
                                    .say(
                                        channel,
                                        thread_ts,
                                        &copy::deps_failed(&task.repo.name, &e),
                                    )
                                    .await;
                                continue;
                            }
                        }
                    };
                    here = false;
                    self.queue_group(channel, &thread, user, &key, &routed.why, &mut task)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Binds `task` to `thread`, stores and queues it (idempotent on `key`), posts its status
    /// message and audits its creation.
    async fn queue_group(
        &self,
        channel: &str,
        thread: &str,
        user: &str,
        key: &str,
        why: &str,
        task: &mut Task,
    ) -> Result<(), HandlerError> {
        task.origin = Origin::Slack {
            channel: channel.into(),
            thread_ts: thread.into(),
        };
        task.thread_url = self.api.permalink(channel, thread).await.ok();
        self.bindings.bind_thread(channel, thread, &task.id).await?;
        self.egress
            .bind_task_thread(channel, thread, &task.id)
            .await?;
        match self.queue.store_new(task, Some(key)).await {
            Ok(Submitted::Queued(_)) => {}
            Ok(Submitted::Exists(id)) => {
                self.bindings.bind_thread(channel, thread, &id).await?;
                return Ok(());
            }
            Err(e) => {
                self.egress
                    .say(channel, thread, &copy::queue_failed(&e))
                    .await;
                return Err(e.into());
            }
        }
        let note = format!(" Routed to `dependency_update` because {why}.");
        let announced = self
            .egress
            .new_status(
                channel,
                thread,
                &task.id,
                1,
                &copy::task_queued(task, &note),
            )
            .await;
        self.queue.wake();
        announced?;
        self.egress
            .audit(
                &task.id,
                user,
                AuditEvent::SlackTaskCreated {
                    channel: channel.to_string(),
                    ts: thread.to_string(),
                    repo: task.repo.name.clone(),
                },
            )
            .await;
        Ok(())
    }
}
