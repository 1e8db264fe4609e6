//! The `checks_only` blueprint: workspace → setup → sandbox → checks → report. No agent and
//! nothing published: it answers "does this repo set up and pass its own checks in the
//! sandbox?", and it is the proof that a blueprint is only a list of steps.

use crate::nodes::{Checks, Sandbox, Setup, Workspace};
use crate::run::{Blueprint, Step};
use crate::task::BlueprintId;

/// The steps of `checks_only`.
pub fn blueprint() -> Blueprint {
    Blueprint {
        id: BlueprintId::ChecksOnly,
        steps: vec![
            Step::node(Workspace),
            Step::node(Setup),
            Step::node(Sandbox),
            Step::node(Checks),
        ],
    }
}
