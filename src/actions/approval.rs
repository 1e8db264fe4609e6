//! Who may merge: one pure function deciding whether a person's approval (✅ in Slack)
//! merges, with the reason told to them when it does not. Fails closed. Owns only the rule
//! and the [`ApproverGroups`] seam; it must not read the store, the forge or Slack (the
//! caller resolves user groups).
//!
//! The rule: an approver is a user listed in `[slack] approvers`, or a member of a user
//! group (`S…`) listed there. That one definition holds for every approver right: ✅, and
//! also replies (revisions, trusted context), ❌, 🔁 and ⏪ (`super::Settings::is_trusted`).
//! Nobody who wrote instructions in the change (the requester, or the author of any of its
//! revisions) approves it, unless `[slack] allow_self_approval = true`.
#![warn(missing_docs)]

use async_trait::async_trait;

use crate::config::SlackConfig;
use crate::report::Decision;
use crate::task::Task;

/// The answer to a ✅.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    /// Merge.
    Merge,
    /// Not merged; the message for the thread.
    Refuse(String),
    /// Not merged: the approver wrote revision `revision` of the change (not revision 1:
    /// that is the requester's, refused with [`Approval::Refuse`]) and `[slack]
    /// allow_self_approval` is off. Worded by the front end.
    OwnRevision {
        /// The newest revision the approver wrote.
        revision: u32,
    },
}

/// Resolves the user groups (`S…` approvers) a user belongs to. The Slack front end asks
/// Slack; it is called only once the cheap checks (requester, listed user ID) said no.
#[async_trait]
pub trait ApproverGroups: Send + Sync {
    /// The configured approver groups `user` is in; empty when unknown or on failure.
    async fn groups_of(&self, user: &str) -> Vec<String>;
}

/// Whether `user` is an approver: listed in `approvers` by user ID, or a member of a listed
/// user group among `user_groups` (what [`ApproverGroups::groups_of`] answered).
pub fn is_approver(user: &str, user_groups: &[String], approvers: &[String]) -> bool {
    approvers
        .iter()
        .any(|a| a == user || user_groups.contains(a))
}

/// Who wrote instructions in the change an approval would merge: its requester and the
/// author of each revision. A bare `&str` is a change only its requester wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authors<'a> {
    /// The task's requester (wrote revision 1).
    pub requester: &'a str,
    /// `(revision number, author)` of every revision, oldest first.
    pub revisions: Vec<(u32, &'a str)>,
}

impl<'a> Authors<'a> {
    /// Every author of `task`: a merge includes all its revisions.
    pub fn of(task: &'a Task) -> Self {
        Self {
            requester: &task.requester,
            revisions: task
                .revisions
                .iter()
                .map(|r| (r.number, task.author_of(r)))
                .collect(),
        }
    }

    /// The newest revision `user` wrote, if any.
    fn newest_by(&self, user: &str) -> Option<u32> {
        self.revisions
            .iter()
            .rev()
            .find(|(_, a)| *a == user)
            .map(|(n, _)| *n)
    }
}

impl<'a> From<&'a str> for Authors<'a> {
    fn from(requester: &'a str) -> Self {
        Self {
            requester,
            revisions: vec![(1, requester)],
        }
    }
}

/// Whether `reactor`'s ✅ on a report with `decision` merges a change written by `authors`
/// (see [`Authors`]). `reactor_groups` are the user-group IDs (`S…`) the reactor belongs
/// to; approvers may be users or groups ([`is_approver`], the same rule every other
/// approver right uses). In order: a halted change never merges; its requester, then the
/// author of any of its revisions, may not approve it unless `allow_self_approval`; only an
/// approver merges.
pub fn authorize<'a>(
    reactor: &str,
    reactor_groups: &[String],
    authors: impl Into<Authors<'a>>,
    slack: &SlackConfig,
    decision: Decision,
) -> Approval {
    let authors = authors.into();
    if decision == Decision::Halt {
        return Approval::Refuse("this change halted on its gates, so it cannot be merged; reply in the thread to refine it".into());
    }
    // The requester and revision authors hear the rule that applies to them, approver or not.
    if reactor == authors.requester && !slack.allow_self_approval {
        return Approval::Refuse(
            "the requester cannot approve their own change; ask an approver".into(),
        );
    }
    if !slack.allow_self_approval
        && let Some(revision) = authors.newest_by(reactor)
    {
        return Approval::OwnRevision { revision };
    }
    if !is_approver(reactor, reactor_groups, &slack.approvers) {
        return Approval::Refuse(format!(
            "only approvers can merge (<@{reactor}> is not in [slack] approvers)"
        ));
    }
    Approval::Merge
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(self_ok: bool) -> SlackConfig {
        SlackConfig {
            approvers: vec!["U0BOB".into(), "S0LEADS".into(), "U0ALICE".into()],
            allow_self_approval: self_ok,
        }
    }

    #[test]
    fn only_an_approver_who_is_not_the_requester_merges_a_change_that_did_not_halt() {
        assert_eq!(
            authorize(
                "U0BOB",
                &[],
                "U0ALICE",
                &cfg(false),
                Decision::NeedsApproval
            ),
            Approval::Merge
        );
        assert_eq!(
            authorize(
                "U0CAROL",
                &["S0LEADS".into()],
                "U0ALICE",
                &cfg(false),
                Decision::NeedsApproval
            ),
            Approval::Merge,
            "via a user group"
        );
        assert!(
            matches!(authorize("U0EVE", &[], "U0ALICE", &cfg(false), Decision::NeedsApproval), Approval::Refuse(r) if r.contains("only approvers"))
        );
        assert!(
            matches!(authorize("U0ALICE", &[], "U0ALICE", &cfg(false), Decision::NeedsApproval), Approval::Refuse(r) if r.contains("requester cannot approve"))
        );
        assert_eq!(
            authorize(
                "U0ALICE",
                &[],
                "U0ALICE",
                &cfg(true),
                Decision::NeedsApproval
            ),
            Approval::Merge
        );
        assert!(
            matches!(authorize("U0BOB", &[], "U0ALICE", &cfg(false), Decision::Halt), Approval::Refuse(r) if r.contains("halted"))
        );
    }

    #[test]
    fn nobody_who_wrote_a_revision_approves_it_unless_self_approval_is_allowed() {
        let authors = || Authors {
            requester: "U0ALICE",
            revisions: vec![(1, "U0ALICE"), (2, "U0BOB"), (3, "U0CAROL"), (4, "U0BOB")],
        };
        assert_eq!(
            authorize(
                "U0BOB",
                &[],
                authors(),
                &cfg(false),
                Decision::NeedsApproval
            ),
            Approval::OwnRevision { revision: 4 }
        );
        assert_eq!(
            authorize(
                "U0CAROL",
                &["S0LEADS".into()],
                authors(),
                &cfg(false),
                Decision::NeedsApproval
            ),
            Approval::OwnRevision { revision: 3 },
            "a group approver who wrote a revision"
        );
        assert!(matches!(
            authorize("U0ALICE", &[], authors(), &cfg(false), Decision::NeedsApproval),
            Approval::Refuse(r) if r.contains("requester cannot approve")
        ));
        assert_eq!(
            authorize("U0BOB", &[], authors(), &cfg(true), Decision::NeedsApproval),
            Approval::Merge
        );
        let mut slack = cfg(false);
        slack.approvers.push("U0DAN".into());
        assert_eq!(
            authorize("U0DAN", &[], authors(), &slack, Decision::NeedsApproval),
            Approval::Merge,
            "an approver who wrote nothing in it"
        );
    }

    #[test]
    fn an_approver_is_a_listed_user_or_a_member_of_a_listed_group() {
        let approvers = cfg(false).approvers;
        assert!(is_approver("U0BOB", &[], &approvers));
        assert!(is_approver("U0CAROL", &["S0LEADS".into()], &approvers));
        assert!(!is_approver("U0CAROL", &["S0OTHER".into()], &approvers));
        assert!(!is_approver("U0EVE", &[], &approvers));
    }
}
