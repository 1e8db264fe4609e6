//! Who may start a task on which repo, from where, and how often (security hardening #9):
//! the one decision a front end asks before it creates a task, [`decide_start`], and its
//! typed refusals.
//!
//! The rules, checked in this order; the first that fails refuses (an allow never
//! overrides a deny, and nothing unknown allows):
//! 1. **Channel.** A repo with `restrict_to_channels = true` takes new tasks only from the
//!    conversations in its `channels`; a DM or any other channel is refused. With `false`
//!    (the default) `channels` only chooses the default repo, as before.
//! 2. **Requester.** A repo with a non-empty `requesters` list takes new tasks only from the
//!    Slack user IDs listed there; empty means anyone.
//! 3. **Rate.** With `[queue] max_tasks_per_user_per_hour = n` (0 = no limit), a user who
//!    created `n` tasks in the last 60 minutes (a sliding window, all repos together) is
//!    refused until the oldest of those is an hour old. The count comes from the stored
//!    tasks, so a restart forgets nothing.
//!
//! Only new tasks are decided here. A reply or a mention in a task's thread refines that
//! task (the requester and approvers only, `crate::actions::Settings::is_trusted`) and ⏪
//! reverts are started by those same trusted people; neither is counted.
//!
//! A leaf: pure functions over `[[repos]]` entries and numbers, no I/O; it imports only
//! `repos` and `budget` (both leaves), so the store's audit vocabulary may name [`RefusalReason`].
#![warn(missing_docs)]

use serde::{Deserialize, Serialize};

use crate::repos::RepoConfig;

/// The rate window: one hour, in ms.
pub const RATE_WINDOW_MS: u64 = 60 * 60 * 1000;

/// Why a new task was refused, as the audit log spells it (`task_refused {"reason"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// The repo takes tasks only from its `channels`.
    Channel,
    /// The repo takes tasks only from its `requesters`.
    Requester,
    /// The user reached `[queue] max_tasks_per_user_per_hour`.
    RateLimit,
    /// A `[budgets]` daily limit (the requester's or the repo's) is spent.
    Budget,
}

/// A refused start, with what the thread is told.
#[derive(Debug, Clone, PartialEq)]
pub enum StartRefusal {
    /// `restrict_to_channels = true` and the conversation is not one of the repo's
    /// `channels`.
    Channel {
        /// The repo's `channels`, to point the user at.
        allowed: Vec<String>,
    },
    /// The repo's `requesters` does not list the user.
    Requester,
    /// The user created `limit` tasks in the last hour.
    RateLimit {
        /// `[queue] max_tasks_per_user_per_hour`.
        limit: u32,
        /// When the oldest counted task leaves the window (unix ms): one more may start then.
        resets_at_ms: u64,
    },
    /// A `[budgets]` daily limit is spent (`crate::budget::daily_over`, asked by the
    /// front end after [`decide_start`] allowed, as it reads the store's ledger).
    Budget {
        /// The limit and its spend.
        reading: crate::budget::Reading,
        /// Who spent it: the requester, or the repo for `repo_daily_usd`.
        who: String,
    },
}

impl StartRefusal {
    /// The audited reason.
    pub fn reason(&self) -> RefusalReason {
        match self {
            Self::Channel { .. } => RefusalReason::Channel,
            Self::Requester => RefusalReason::Requester,
            Self::RateLimit { .. } => RefusalReason::RateLimit,
            Self::Budget { .. } => RefusalReason::Budget,
        }
    }
}

/// The answer to "may this task start?".
#[derive(Debug, Clone, PartialEq)]
pub enum StartDecision {
    /// Every rule passed.
    Allow,
    /// The first rule that failed.
    Refuse(StartRefusal),
}

/// One request to start a task, as [`decide_start`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct StartRequest<'a> {
    /// The repo the task would run on.
    pub repo: &'a RepoConfig,
    /// The conversation asked in (a channel ID, or a DM's `D…` ID).
    pub channel: &'a str,
    /// Who asked (a Slack user ID).
    pub user: &'a str,
    /// When each task `user` created was created (unix ms), in any order; older ones are
    /// ignored. Only read when a limit is set.
    pub created_by_user_ms: &'a [u64],
    /// `[queue] max_tasks_per_user_per_hour`; 0 = no limit.
    pub max_per_hour: u32,
    /// Now (unix ms).
    pub now_ms: u64,
}

/// Decides whether a new task may start (the rules in the module docs, in order).
pub fn decide_start(req: &StartRequest<'_>) -> StartDecision {
    let repo = req.repo;
    if repo.restrict_to_channels && !repo.channels.iter().any(|c| c == req.channel) {
        return StartDecision::Refuse(StartRefusal::Channel {
            allowed: repo.channels.clone(),
        });
    }
    if !repo.requesters.is_empty() && !repo.requesters.iter().any(|u| u == req.user) {
        return StartDecision::Refuse(StartRefusal::Requester);
    }
    if req.max_per_hour > 0 {
        let since = req.now_ms.saturating_sub(RATE_WINDOW_MS);
        let mut recent: Vec<u64> = req
            .created_by_user_ms
            .iter()
            .copied()
            .filter(|&t| t > since)
            .collect();
        if recent.len() >= req.max_per_hour as usize {
            // The window frees a slot when the oldest of the newest `limit` tasks ages out.
            recent.sort_unstable_by(|a, b| b.cmp(a));
            let oldest_counted = recent[req.max_per_hour as usize - 1];
            return StartDecision::Refuse(StartRefusal::RateLimit {
                limit: req.max_per_hour,
                resets_at_ms: oldest_counted + RATE_WINDOW_MS,
            });
        }
    }
    StartDecision::Allow
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(channels: &[&str], restrict: bool, requesters: &[&str]) -> RepoConfig {
        let mut r: RepoConfig = toml::from_str("name = \"acme/calc\"").unwrap();
        r.channels = channels.iter().map(|s| s.to_string()).collect();
        r.restrict_to_channels = restrict;
        r.requesters = requesters.iter().map(|s| s.to_string()).collect();
        r
    }

    fn ask<'a>(repo: &'a RepoConfig, channel: &'a str, user: &'a str) -> StartRequest<'a> {
        StartRequest {
            repo,
            channel,
            user,
            created_by_user_ms: &[],
            max_per_hour: 0,
            now_ms: 10 * RATE_WINDOW_MS,
        }
    }

    #[test]
    fn the_defaults_allow_anyone_anywhere() {
        let r = repo(&["C0DEV"], false, &[]);
        assert_eq!(decide_start(&ask(&r, "D0DM", "U0X")), StartDecision::Allow);
        assert_eq!(
            decide_start(&ask(&r, "C0OTHER", "U0X")),
            StartDecision::Allow
        );
    }

    #[test]
    fn a_restricted_repo_starts_only_from_its_channels() {
        let r = repo(&["C0DEV"], true, &[]);
        assert_eq!(decide_start(&ask(&r, "C0DEV", "U0X")), StartDecision::Allow);
        for elsewhere in ["C0OTHER", "D0DM"] {
            assert_eq!(
                decide_start(&ask(&r, elsewhere, "U0X")),
                StartDecision::Refuse(StartRefusal::Channel {
                    allowed: vec!["C0DEV".into()]
                })
            );
        }
        // Restricted with no channels: nowhere (fails closed).
        let none = repo(&[], true, &[]);
        assert!(matches!(
            decide_start(&ask(&none, "C0DEV", "U0X")),
            StartDecision::Refuse(StartRefusal::Channel { .. })
        ));
    }

    #[test]
    fn listed_requesters_only_and_the_channel_rule_comes_first() {
        let r = repo(&["C0DEV"], true, &["U0ALICE"]);
        assert_eq!(
            decide_start(&ask(&r, "C0DEV", "U0ALICE")),
            StartDecision::Allow
        );
        assert_eq!(
            decide_start(&ask(&r, "C0DEV", "U0MALLORY")),
            StartDecision::Refuse(StartRefusal::Requester)
        );
        assert_eq!(
            decide_start(&ask(&r, "D0DM", "U0MALLORY")).clone(),
            StartDecision::Refuse(StartRefusal::Channel {
                allowed: vec!["C0DEV".into()]
            })
        );
    }

    #[test]
    fn the_rate_limit_counts_the_last_hour_and_says_when_it_resets() {
        let r = repo(&[], false, &[]);
        let now = 10 * RATE_WINDOW_MS;
        let min = 60_000;
        // Two in the window (10 and 50 minutes ago), one outside it (61 minutes ago).
        let created = [now - 50 * min, now - 61 * min, now - 10 * min];
        let with = |limit| StartRequest {
            created_by_user_ms: &created,
            max_per_hour: limit,
            ..ask(&r, "C0DEV", "U0ALICE")
        };
        assert_eq!(decide_start(&with(0)), StartDecision::Allow, "0 = no limit");
        assert_eq!(decide_start(&with(3)), StartDecision::Allow);
        assert_eq!(
            decide_start(&with(2)),
            StartDecision::Refuse(StartRefusal::RateLimit {
                limit: 2,
                resets_at_ms: now + 10 * min
            }),
            "the older of the two counted frees the slot"
        );
        assert_eq!(
            decide_start(&with(1)),
            StartDecision::Refuse(StartRefusal::RateLimit {
                limit: 1,
                resets_at_ms: now + 50 * min
            }),
            "with one allowed, the newest must age out"
        );
    }

    #[test]
    fn refusals_are_audited_with_their_serde_spelling() {
        let spell = |r: RefusalReason| serde_json::to_value(r).unwrap();
        assert_eq!(spell(RefusalReason::Channel), "channel");
        assert_eq!(spell(RefusalReason::Requester), "requester");
        assert_eq!(spell(RefusalReason::RateLimit), "rate_limit");
        assert_eq!(StartRefusal::Requester.reason(), RefusalReason::Requester);
    }
}
