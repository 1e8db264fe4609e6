//! A repo's environment: where it comes from (config, devcontainer, `.slipway/setup.sh`,
//! detection) and the snapshots that let later runs start warm.

pub mod snapshot;

// Interim types (the resolution module replaces this block with its own, same shapes).
use std::collections::BTreeMap;

/// Where a repo's environment came from (the `setup` gate names it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvSource {
    Config,
    Devcontainer { path: String },
    SetupScript,
    Detected { what: Vec<String> },
    None,
}

/// Which image the docker backend runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSpec {
    Default,
    Named(String),
    Dockerfile {
        dockerfile: String,
        context: String,
        args: BTreeMap<String, String>,
    },
}

/// A repo's environment, resolved from its base commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvPlan {
    pub source: EnvSource,
    pub image: ImageSpec,
    pub setup: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub offline_env: BTreeMap<String, String>,
    pub path_prefix: Vec<String>,
    pub carry: Vec<String>,
    pub inputs: Vec<String>,
    pub notes: Vec<String>,
}
