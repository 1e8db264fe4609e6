//! The `dependency_update` blueprint (being built).

use crate::nodes::{Checks, Sandbox, Setup, Workspace};
use crate::run::{Blueprint, Step};
use crate::task::BlueprintId;

/// The steps of `dependency_update`.
pub fn blueprint() -> Blueprint {
    Blueprint {
        id: BlueprintId::DependencyUpdate,
        steps: vec![
            Step::node(Workspace),
            Step::node(Setup),
            Step::node(Sandbox),
            Step::node(Checks),
        ],
    }
}
