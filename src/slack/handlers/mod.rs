//! One handler per normalised ingress kind (mini-redis `cmd/*` style): [`mention`] (a
//! command or a new task), [`reply`] (a revision from a thread reply) and [`reaction`] (✅
//! ❌ 🔁 ⏪ on our messages). Each handler is a struct holding only the handles it uses,
//! built once when the bot is wired, with one `run` entry point.
//!
//! Handlers decide what to say; the words come from `super::copy`, the domain work from
//! `crate::actions`, and thread writes go through `super::egress`. They must not touch
//! dedupe or locking (`super::bot`) nor render queue events (`super::egress`).
#![warn(missing_docs)]

pub mod deps;
pub mod mention;
pub mod reaction;
pub mod reply;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use self::mention::{Mention, MentionsSeen};
use self::reaction::Reaction;
use self::reply::Reply;
use super::api::{SlackError, WebApi};
use super::bindings::Bindings;
use super::egress::{Egress, EgressError};
use super::thread::ThreadMessage;
use crate::actions::{ActionError, Actions, ApproverGroups, Settings};
use crate::forge::Forges;
use crate::queue::Queue;
use crate::store::{Store, StoreError};

/// The handles the handlers are built from, chosen at wiring time (`serve`); each handler
/// keeps only its own.
pub struct HandlerParts {
    /// The Slack Web API (bot token).
    pub api: WebApi,
    /// Tasks and bindings.
    pub store: Store,
    /// Submits, refines, reruns and cancels tasks.
    pub queue: Queue,
    /// The forges, for merge, close and revert.
    pub forges: Forges,
    /// `[slack]` and `[[repos]]`.
    pub settings: Arc<Settings>,
    /// The thread voice.
    pub egress: Egress,
    /// `[queue] concurrency`, for `status`.
    pub concurrency: usize,
    /// `[queue] max_tasks_per_user_per_hour`, for new tasks.
    pub max_tasks_per_user_per_hour: u32,
    /// The 👀 counter (shared with `/metrics`).
    pub mentions: MentionsSeen,
    /// Plans `dependency_update` requests.
    pub deps: Option<crate::actions::deps::DepsPlanner>,
}

/// One handler per ingress kind.
pub struct Handlers {
    /// Mentions and DMs.
    pub mention: Mention,
    /// Replies in a task's thread.
    pub reply: Reply,
    /// Reactions on our messages.
    pub reaction: Reaction,
}

impl Handlers {
    /// The handlers over `parts`, with the domain [`Actions`] built on its store, forges
    /// and queue.
    pub fn new(parts: HandlerParts) -> Self {
        let HandlerParts {
            api,
            store,
            queue,
            forges,
            settings,
            egress,
            concurrency,
            max_tasks_per_user_per_hour,
            mentions,
            deps,
        } = parts;
        let bindings = Bindings::new(store.clone());
        let github_configured = forges.github.is_some();
        let actions = Actions::new(
            store.clone(),
            forges,
            Arc::new(queue.clone()),
            settings.clone(),
        );
        let reply = Reply {
            api: api.clone(),
            egress: egress.clone(),
            bindings: bindings.clone(),
            queue: queue.clone(),
            settings: settings.clone(),
        };
        let mention = Mention {
            api: api.clone(),
            egress: egress.clone(),
            bindings: bindings.clone(),
            queue: queue.clone(),
            store: store.clone(),
            actions: actions.clone(),
            reply: reply.clone(),
            settings: settings.clone(),
            concurrency,
            max_tasks_per_user_per_hour,
            github_configured,
            seen: mentions,
            deps: deps.map(|planner| deps::DepsStart {
                api: api.clone(),
                egress: egress.clone(),
                bindings: bindings.clone(),
                queue: queue.clone(),
                store: store.clone(),
                actions: actions.clone(),
                settings: settings.clone(),
                planner,
            }),
        };
        let reaction = Reaction {
            api,
            egress,
            bindings,
            store,
            actions,
            settings,
            answering: Arc::default(),
        };
        Self {
            mention,
            reply,
            reaction,
        }
    }
}

/// Failures a handler could not tell in the thread; the bot logs them.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// A Slack call failed.
    #[error(transparent)]
    Slack(#[from] SlackError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A thread write's binding failed.
    #[error(transparent)]
    Egress(#[from] EgressError),
    /// An action failed in a way not told in the thread (its store).
    #[error(transparent)]
    Action(#[from] ActionError),
}

/// Reads the thread `(channel, thread_ts)`; on failure the trigger's own text (if given,
/// by `user` at `trigger_ts`) stands in and the reason is kept. A trigger missing from the
/// answer (a reply racing the thread's index) is appended.
async fn read_thread(
    api: &WebApi,
    channel: &str,
    thread_ts: &str,
    trigger_ts: &str,
    trigger_text: Option<&str>,
    user: &str,
) -> (Vec<ThreadMessage>, Option<SlackError>) {
    let trigger = trigger_text.map(|t| ThreadMessage {
        user: user.into(),
        text: t.into(),
        ts: trigger_ts.into(),
        files: vec![],
        from_bot: false,
    });
    match api.replies(channel, thread_ts).await {
        Ok(m) if m.iter().any(|x| x.ts == trigger_ts) => (m, None),
        Ok(mut m) => {
            // A reply can race the thread's index; keep it.
            m.extend(trigger);
            (m, None)
        }
        Err(e) => {
            tracing::warn!(error = %e, advice = e.advice(), "could not read the thread");
            (trigger.into_iter().collect(), Some(e))
        }
    }
}

/// Approver groups through Slack (`usergroups.users.list`): the configured `S…` approvers a
/// user is a member of. Built per event, so membership is as fresh as the event; within it
/// each group is read at most once (a thread of 500 authors costs one call per group).
pub struct SlackGroups<'a> {
    api: &'a WebApi,
    settings: &'a Settings,
    /// Group ID → members, filled on first use. A failed read counts as no members for the
    /// rest of the event (fails closed). A std mutex: never held across an await.
    members: Mutex<HashMap<String, Vec<String>>>,
}

impl<'a> SlackGroups<'a> {
    /// Resolves `settings`' approver groups through `api`.
    pub fn new(api: &'a WebApi, settings: &'a Settings) -> Self {
        Self {
            api,
            settings,
            members: Mutex::default(),
        }
    }

    /// The members of `group`, read from Slack once per instance.
    async fn members(&self, group: &str) -> Vec<String> {
        let cached = self
            .members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(group)
            .cloned();
        if let Some(m) = cached {
            return m;
        }
        let members = match self.api.group_members(group).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(group, error = %e, advice = e.advice(), "could not read a user group");
                Vec::new()
            }
        };
        self.members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(group.to_string(), members.clone());
        members
    }
}

#[async_trait]
impl ApproverGroups for SlackGroups<'_> {
    async fn groups_of(&self, user: &str) -> Vec<String> {
        let mut out = Vec::new();
        for g in self
            .settings
            .slack
            .approvers
            .iter()
            .filter(|a| a.starts_with('S'))
        {
            if self.members(g).await.iter().any(|m| m == user) {
                out.push(g.clone());
            }
        }
        out
    }
}
