//! The Slack front door. Pure parts: ingress normalisation ([`ingress`]), thread → task
//! ([`thread`]) and who may merge ([`approval`]). Wired parts: the Web API ([`api`], through
//! slack-morphism), Socket Mode ([`socket`]), the bot's handlers and thread messages
//! ([`bot`]) and the service ([`serve`]). Block Kit rendering lives in
//! [`crate::gates::render`].

pub mod api;
pub mod approval;
pub mod bot;
pub mod ingress;
pub mod serve;
pub mod socket;
pub mod thread;
