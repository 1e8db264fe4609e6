//! The Slack front door's pure parts: ingress normalisation ([`ingress`]), thread → task
//! ([`thread`]) and who may merge ([`approval`]). The Socket Mode listener and Web API
//! client build on these (issue "Slack front door"); Block Kit rendering lives in
//! [`crate::gates::render`].

pub mod approval;
pub mod ingress;
pub mod thread;
