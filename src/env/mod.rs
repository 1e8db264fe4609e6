//! A repo's environment: where it comes from (config, devcontainer, `.slipway/setup.sh`,
//! detection) and the snapshots that let later runs start warm.

pub mod build;
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

/// How the setup gate names a source: `slipway.toml`, `.devcontainer/devcontainer.json`,
/// `.slipway/setup.sh`, `detected (python, node)` or `none`.
pub fn describe_source(source: &EnvSource) -> String {
    match source {
        EnvSource::Config => "slipway.toml [[repos]]".into(),
        EnvSource::Devcontainer { path } => path.clone(),
        EnvSource::SetupScript => ".slipway/setup.sh".into(),
        EnvSource::Detected { what } => format!("detected ({})", what.join(", ")),
        EnvSource::None => "none".into(),
    }
}

/// Interim resolution (replaced by the resolution module): `[[repos]] setup`, else the old
/// detection.
pub fn resolve_interim(root: &std::path::Path, setup: Option<&str>) -> EnvPlan {
    let mut plan = EnvPlan {
        source: EnvSource::None,
        image: ImageSpec::Default,
        setup: Vec::new(),
        env: BTreeMap::new(),
        offline_env: BTreeMap::new(),
        path_prefix: Vec::new(),
        carry: Vec::new(),
        inputs: Vec::new(),
        notes: Vec::new(),
    };
    if let Some(s) = setup {
        plan.source = EnvSource::Config;
        plan.setup = vec![s.to_string()];
    } else if let Some(c) = crate::gates::checks::detect_setup(root) {
        plan.source = if c.source == ".slipway/setup.sh" {
            EnvSource::SetupScript
        } else {
            EnvSource::Detected {
                what: vec![c.source.clone()],
            }
        };
        plan.inputs = vec![c.source.clone()];
        plan.setup = vec![c.command];
    }
    plan
}
