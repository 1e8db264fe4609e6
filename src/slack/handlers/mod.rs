//! One handler per normalised ingress kind (mini-redis `cmd/*` style): [`mention`] (a
//! command or a new task), [`reply`] (a revision from a thread reply) and [`reaction`] (✅
//! ❌ 🔁 ⏪ on our messages). Each handler is a struct holding only the handles it uses,
//! built once when the bot is wired, with one `run` entry point.
//!
//! Handlers decide what to say; the words come from `super::copy`, the domain work from
//! `crate::actions`, and thread writes go through `super::egress`. They must not touch
//! dedupe or locking (`super::bot`) nor render queue events (`super::egress`).
#![warn(missing_docs)]

pub mod mention;
pub mod reaction;
pub mod reply;

use super::api::{SlackError, WebApi};
use super::egress::EgressError;
use super::thread::ThreadMessage;
use crate::actions::ActionError;
use crate::store::StoreError;

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
