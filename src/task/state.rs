//! The task state machine: the one table of which [`TaskState`] may follow which. Every
//! state change in the store goes through it (`Store::transition`,
//! `Store::transact_task`), so a late writer (a run ending after a merge, a revision
//! dispatched during one, a second ⏪) cannot overwrite a state it did not expect.

use super::TaskState;

impl TaskState {
    /// Whether a task in this state may move to `to`:
    ///
    /// | from | to |
    /// |---|---|
    /// | Queued | Queued (a refinement), Running (dispatched), Cancelled, Failed (could not start) |
    /// | Running | Running, Queued (interrupted, rerun), Ready, Halted, Failed, Cancelled, Merging (auto-merge) |
    /// | Ready, Halted | Queued (refine, 🔁), Running (a queued revision behind the run), Merging (✅), Cancelled |
    /// | Failed | Queued, Running, Cancelled |
    /// | Merging | Merged only; when the forge did not merge, the intent is undone (back to the state it names: `MergeIntent::from`), the one exit outside this table |
    /// | Merged | Merged only (a revert is a new task) |
    /// | Cancelled | Cancelled, Queued (🔁 after ❌) |
    pub fn can_become(self, to: TaskState) -> bool {
        use TaskState::*;
        match self {
            Queued => matches!(to, Queued | Running | Cancelled | Failed),
            Running => matches!(
                to,
                Running | Queued | Ready | Halted | Failed | Cancelled | Merging
            ),
            Ready | Halted => matches!(to, Queued | Running | Merging | Cancelled),
            Failed => matches!(to, Queued | Running | Cancelled),
            Merging => matches!(to, Merged),
            Merged => matches!(to, Merged),
            Cancelled => matches!(to, Cancelled | Queued),
        }
    }

    /// Every state, for exhaustive checks.
    pub const ALL: [TaskState; 8] = [
        TaskState::Queued,
        TaskState::Running,
        TaskState::Ready,
        TaskState::Halted,
        TaskState::Failed,
        TaskState::Merging,
        TaskState::Merged,
        TaskState::Cancelled,
    ];
}

#[cfg(test)]
mod tests {
    use super::TaskState::{self, *};

    /// The allowed moves, written out once more by hand: the table above must say exactly
    /// these, all 64 pairs checked.
    const ALLOWED: &[(TaskState, TaskState)] = &[
        (Queued, Queued),
        (Queued, Running),
        (Queued, Cancelled),
        (Queued, Failed),
        (Running, Running),
        (Running, Queued),
        (Running, Ready),
        (Running, Halted),
        (Running, Failed),
        (Running, Cancelled),
        (Running, Merging),
        (Ready, Queued),
        (Ready, Running),
        (Ready, Merging),
        (Ready, Cancelled),
        (Halted, Queued),
        (Halted, Running),
        (Halted, Merging),
        (Halted, Cancelled),
        (Failed, Queued),
        (Failed, Running),
        (Failed, Cancelled),
        (Merging, Merged),
        (Merged, Merged),
        (Cancelled, Cancelled),
        (Cancelled, Queued),
    ];

    #[test]
    fn the_table_allows_exactly_the_listed_moves() {
        for from in TaskState::ALL {
            for to in TaskState::ALL {
                assert_eq!(
                    from.can_become(to),
                    ALLOWED.contains(&(from, to)),
                    "{from:?} → {to:?}"
                );
            }
        }
    }

    #[test]
    fn nothing_leaves_merged_and_nothing_runs_while_merging() {
        for to in TaskState::ALL {
            assert_eq!(Merged.can_become(to), to == Merged);
        }
        assert!(!Merging.can_become(Queued));
        assert!(!Merging.can_become(Running));
        assert!(!Merging.can_become(Cancelled));
        // Only a merge moves a task to Merged.
        for from in TaskState::ALL {
            assert_eq!(from.can_become(Merged), matches!(from, Merging | Merged));
        }
    }
}
