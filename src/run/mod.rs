//! Runs: the lifecycle every blueprint shares, the [`Node`] trait and the [`RunCtx`] nodes
//! work on. `slipway run`, the queue (Slack, later the web) and tests all go through
//! [`Runner::run`] and observe the same [`RunEvent`]s.
//!
//! Owns: the run record, task state during a run, run directories, cancellation between
//! nodes, the failure report. Must not know any particular blueprint or node: those are
//! data handed in ([`Blueprint`]) by `crate::blueprints`.

pub mod ctx;
pub mod error;
pub mod events;
pub mod lifecycle;
pub mod node;
pub mod spend;
pub mod tracker;

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use ctx::{Judged, RunCtx};
pub use error::{FlowError, RunError};
pub use events::{NodeKind, NodeName, RunEvent};
pub use node::{Blueprint, Node, Outcome, Step};

use crate::agent::llm::Llm;
use crate::config::Config;
use crate::forge::Forges;
use crate::report::RunReport;
use crate::sandbox::Sandbox;
use crate::store::Store;
use crate::task::Task;
use crate::workspace::Workspaces;

/// The services of a run, built once in `main` (or by a test) and shared. Cheap to clone.
#[derive(Clone)]
pub struct Runner {
    /// The whole configuration (nodes read their own sections).
    pub cfg: Arc<Config>,
    /// Tasks, runs, transcripts, audit.
    pub store: Store,
    /// Git mirrors and work trees.
    pub workspaces: Workspaces,
    /// The sandbox backend (docker or bwrap).
    pub sandbox: Arc<dyn Sandbox>,
    /// The model.
    pub llm: Arc<dyn Llm>,
    /// The forge of each repo (`[[repos]] forge`).
    pub forges: Forges,
    /// Built-ins, catalogs and host-side MCP servers, discovered at start-up.
    pub registry: Arc<crate::tools::registry::Registry>,
    /// Connections to the host-side MCP servers.
    pub mcp: crate::tools::mcp::McpHub,
    /// Pre-started sandboxes per recently used repo (`[sandbox] warm`); off at 0.
    pub pool: crate::env::pool::WarmPool,
}

impl Runner {
    /// Runs the task's current revision through `blueprint` (see [`lifecycle::execute`]).
    pub async fn run_blueprint(
        &self,
        task: &mut Task,
        blueprint: &Blueprint,
        cancel: CancellationToken,
        events: Option<mpsc::Sender<RunEvent>>,
    ) -> Result<RunReport, RunError> {
        lifecycle::execute(self, task, blueprint, cancel, events).await
    }
}
