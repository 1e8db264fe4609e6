//! A mention routed to `dependency_update` (`crate::deps::intent`): the request is planned
//! on the repo's base, then one task per update group: the first in the asking thread, each
//! further one in a new top-level thread of the same channel (its own report, its own ✅),
//! and a group that already has an open task is rerun there (same branch, same PR).
//!
//! Idempotent on a replayed envelope: each group's task is created with the idempotency
//! key `<channel>/<ts>#<group>`, checked before its thread is opened.

use std::sync::Arc;

use super::{HandlerError, SlackGroups};
use crate::actions::deps::{DepsPlanner, GroupTask};
use crate::actions::{Actions, Settings};
use crate::deps::DepsRequest;
use crate::queue::{Queue, Submitted};
use crate::slack::api::WebApi;
use crate::slack::bindings::Bindings;
use crate::slack::copy;
use crate::slack::egress::Egress;
use crate::store::{AuditEvent, Store};
use crate::task::{Origin, RepoRef, Task};

/// Where a request was made: its channel, the message's own `ts` (the idempotency key's
/// root), its thread and who asked (`slipway` for a schedule).
pub struct Asked<'a> {
    /// Channel ID.
    pub channel: &'a str,
    /// The asking message's `ts` (a schedule: its announcement's).
    pub ts: &'a str,
    /// The thread the first group runs in.
    pub thread_ts: &'a str,
    /// Who asked (a Slack user ID, or `slipway`).
    pub user: &'a str,
}

/// Starts dependency updates in Slack, for mentions and schedules alike. Cheap to clone.
#[derive(Clone)]
pub struct DepsStart {
    /// New threads and permalinks.
    pub api: WebApi,
    /// Thread messages and status messages.
    pub egress: Egress,
    /// Thread → task.
    pub bindings: Bindings,
    /// Stores and queues the tasks.
    pub queue: Queue,
    /// Idempotency records.
    pub store: Store,
    /// Reruns a group's open task.
    pub actions: Actions,
    /// Approvers (a rerun asked by a person is checked like 🔁).
    pub settings: Arc<Settings>,
    /// Plans the request.
    pub planner: DepsPlanner,
}

impl DepsStart {
    /// Plans `request` on `repo` and starts one task per group. `why` says how the request
    /// was routed (echoed in the thread); `system` is true for a schedule, whose rerun of a
    /// group's open task needs no person's authority. Returns false when nothing could be
    /// looked up (said in the thread).
    pub async fn start(
        &self,
        at: Asked<'_>,
        repo: RepoRef,
        request: &DepsRequest,
        why: &str,
        system: bool,
    ) -> Result<bool, HandlerError> {
        let Asked {
            channel,
            ts,
            thread_ts,
            user,
        } = at;
        let egress = &self.egress;
        let planner = &self.planner;
        // Keyed by the asking message: a replayed envelope says each line once.
        let said = |what: &str| format!("deps/{channel}/{ts}/{what}");
        egress
            .say_once(
                channel,
                thread_ts,
                &said("looking"),
                &copy::deps_looking(&repo.name, why),
            )
            .await;
        let origin = Origin::Slack {
            channel: channel.into(),
            thread_ts: thread_ts.into(),
        };
        let started = match planner.start(&repo, user, &origin, request).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(repo = repo.name, error = %e, "dependency lookup failed");
                egress
                    .say_once(
                        channel,
                        thread_ts,
                        &said("failed"),
                        &copy::deps_failed(&repo.name, &e),
                    )
                    .await;
                return Ok(false);
            }
        };
        if started.groups.is_empty() {
            egress
                .say_once(
                    channel,
                    thread_ts,
                    &said("nothing"),
                    &copy::deps_nothing(&repo.name, &started.plan),
                )
                .await;
            return Ok(true);
        }
        egress
            .say_once(
                channel,
                thread_ts,
                &said("planned"),
                &copy::deps_planned(&started.groups, &started.plan),
            )
            .await;
        let asked_url = self.api.permalink(channel, thread_ts).await.ok();
        let mut here = true;
        for g in started.groups {
            // A group's rerun is claimed by this request once: a replay does not rerun it again.
            if let GroupTask::Open { task, group } = &g {
                let key = format!("deps-rerun/{channel}/{ts}#{}", group.slug);
                if self.store.claim_binding(&key, &task.id).await?.is_some() {
                    continue;
                }
            }
            match g {
                GroupTask::Open { task, .. } if system => {
                    // A schedule's rerun: the queue's own rerun, audited as slipway's.
                    if let crate::queue::Refined::Queued(t) = self.queue.rerun(&task.id).await? {
                        egress
                            .audit(
                                &t.id,
                                user,
                                AuditEvent::Rerun {
                                    revision: t.current().number,
                                },
                            )
                            .await;
                    }
                }
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
                    self.queue_group(channel, &thread, user, &key, why, &mut task)
                        .await?;
                }
            }
        }
        Ok(true)
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
