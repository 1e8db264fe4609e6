//! The Slack front door. Pure parts: ingress normalisation ([`ingress`]), thread → task
//! ([`thread`]) and the words ([`copy`]). Wired parts: the Web API ([`api`], through
//! slack-morphism), Socket Mode ([`socket`]), intake ([`bot`]: dedupe → thread lock →
//! handler), one handler per ingress kind ([`handlers`]), thread writes ([`egress`]), the
//! store records ([`bindings`]) and the service ([`serve`]). Domain actions (merge, close,
//! rerun, revert) live in [`crate::actions`]; Block Kit rendering in [`crate::gates::render`].
//!
//! Must not reach through the queue into the runner: [`serve`] hands each part the handles
//! it uses.

pub mod api;
pub mod bindings;
pub mod bot;
pub mod copy;
pub mod egress;
pub mod handlers;
pub mod ingress;
pub mod outbox;
pub mod schedule;
pub mod serve;
pub mod socket;
pub mod thread;
