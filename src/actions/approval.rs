//! Who may merge: one pure function deciding whether a person's approval (✅ in Slack)
//! merges, with the reason told to them when it does not. Fails closed. Owns only the rule;
//! it must not read the store, the forge or Slack (the caller resolves user groups).
#![warn(missing_docs)]

use crate::config::SlackConfig;
use crate::report::Decision;

/// The answer to a ✅.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    /// Merge.
    Merge,
    /// Not merged; the message for the thread.
    Refuse(String),
}

/// Whether `reactor`'s ✅ on a report with `decision` merges. `reactor_groups` are the
/// user-group IDs (`S…`) the reactor belongs to; approvers may be users or groups.
pub fn authorize(
    reactor: &str,
    reactor_groups: &[String],
    requester: &str,
    slack: &SlackConfig,
    decision: Decision,
) -> Approval {
    if decision == Decision::Halt {
        return Approval::Refuse("this change halted on its gates, so it cannot be merged; reply in the thread to refine it".into());
    }
    // The requester hears the rule that applies to them, approver or not.
    if reactor == requester && !slack.allow_self_approval {
        return Approval::Refuse(
            "the requester cannot approve their own change; ask an approver".into(),
        );
    }
    let approver = slack
        .approvers
        .iter()
        .any(|a| a == reactor || reactor_groups.contains(a));
    if !approver {
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
}
