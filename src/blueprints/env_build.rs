//! The `env_build` blueprint: workspace → setup. It makes the repo's environment snapshot
//! ready (or finds it cached) and stops: `slipway env build --repo R` prebuilds it so the
//! next mention starts warm. No agent, no checks, nothing published.

use crate::nodes::{Setup, Workspace};
use crate::run::{Blueprint, Step};
use crate::task::BlueprintId;

/// The steps of `env_build`.
pub fn blueprint() -> Blueprint {
    Blueprint {
        id: BlueprintId::EnvBuild,
        steps: vec![Step::node(Workspace), Step::node(Setup)],
    }
}
