//! Blueprints as data: each one an ordered list of [`Step`](crate::run::Step)s over the nodes in
//! `crate::nodes`. A new blueprint is a new file here plus, at most, new node files.
//!
//! Must not hold run logic: the lifecycle is `crate::run`, the work is in the nodes.

pub mod checks_only;
pub mod code_change;
pub mod dependency_update;
pub mod env_build;

use crate::run::Blueprint;
use crate::task::BlueprintId;

/// The blueprint for `id`.
pub fn get(id: BlueprintId) -> Blueprint {
    match id {
        BlueprintId::CodeChange => code_change::blueprint(),
        BlueprintId::ChecksOnly => checks_only::blueprint(),
        BlueprintId::EnvBuild => env_build::blueprint(),
        BlueprintId::DependencyUpdate => dependency_update::blueprint(),
    }
}
