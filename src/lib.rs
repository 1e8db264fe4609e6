//! slipway turns a Slack thread into a reviewed pull request: deterministic code runs the
//! flow (checkout, checks, gates, push, PR, merge); an LLM agent gets only the part that
//! needs judgement, inside an offline sandbox with a budget. See `DESIGN.md` for the map.

#![deny(clippy::print_stdout)]

pub mod access;
pub mod actions;
pub mod agent;
pub mod blueprints;
pub mod budget;
pub mod config;
pub mod deps;
pub mod doctor;
pub mod env;
pub mod forge;
#[cfg(test)]
mod fuzz_support;
pub mod gates;
pub mod metrics;
pub mod nodes;
pub mod queue;
pub mod redact;
pub mod report;
pub mod repos;
pub mod run;
pub mod runner;
pub mod sandbox;
pub mod schedule;
pub mod slack;
pub mod store;
pub mod sweep;
pub mod task;
pub mod text;
pub mod tls;
pub mod tools;
pub mod untrusted;
pub mod web;
pub mod workspace;
