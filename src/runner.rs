//! The runner: one path for every task. `slipway run`, Slack and tests all call
//! [`Runner::run`] and observe the same [`RunEvent`](crate::blueprint::RunEvent)s.
//!
//! Owns the services a run needs (store, workspaces, sandbox, model, forge), built once in
//! `main` (or by a test) and shared. Failures before anything is stored (bad repo, empty
//! task, missing image) come back as [`RunError`] and leave nothing behind; failures after
//! that end the run with a `halt` report that says what happened.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::agent::llm::{Llm, LlmError};
use crate::blueprint::{RunEvent, code_change};
use crate::config::Config;
use crate::forge::{ForgeError, Forges};
use crate::gates::policy::PolicyError;
use crate::report::RunReport;
use crate::sandbox::{Sandbox, SandboxError};
use crate::store::{Store, StoreError};
use crate::task::Task;
use crate::workspace::{WorkspaceError, Workspaces};

/// Why a run could not happen or could not finish.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the task is empty: say what to change")]
    EmptyTask,
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error("{0}; fix the file in the repo")]
    RepoPolicy(#[from] PolicyError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Forge(#[from] ForgeError),
    #[error("unknown blueprint {0:?}; known: code_change")]
    UnknownBlueprint(String),
}

impl RunError {
    /// True for mistakes the user or operator fixes (exit status 2), false for failures.
    pub fn is_usage(&self) -> bool {
        match self {
            Self::EmptyTask | Self::UnknownBlueprint(_) | Self::RepoPolicy(_) => true,
            Self::Workspace(e) => matches!(
                e,
                WorkspaceError::NotFound(_)
                    | WorkspaceError::Empty(_)
                    | WorkspaceError::UnknownBase { .. }
            ),
            Self::Sandbox(e) => matches!(
                e,
                SandboxError::NoBackend { .. }
                    | SandboxError::ImageMissing(_)
                    | SandboxError::EngineUnavailable { .. }
            ),
            Self::Llm(e) => matches!(e, LlmError::NotConfigured(_) | LlmError::MissingKey { .. }),
            Self::Store(_) | Self::Forge(_) => false,
        }
    }
}

/// The services of a run.
#[derive(Clone)]
pub struct Runner {
    pub cfg: Arc<Config>,
    pub store: Store,
    pub workspaces: Workspaces,
    pub sandbox: Arc<dyn Sandbox>,
    pub llm: Arc<dyn Llm>,
    /// The forge of each repo (`[[repos]] forge`).
    pub forges: Forges,
    /// Built-ins, catalogs and host-side MCP servers, discovered at start-up.
    pub registry: Arc<crate::tools::registry::Registry>,
    /// Connections to the host-side MCP servers.
    pub mcp: crate::tools::mcp::McpHub,
}

impl Runner {
    /// Runs the task's current revision through `blueprint`. `events` (bounded) receives
    /// progress; `cancel` stops the run and its sandbox.
    pub async fn run(
        &self,
        task: &mut Task,
        blueprint: &str,
        cancel: CancellationToken,
        events: Option<mpsc::Sender<RunEvent>>,
    ) -> Result<RunReport, RunError> {
        if task.current().instructions.trim().is_empty() {
            return Err(RunError::EmptyTask);
        }
        match blueprint {
            code_change::NAME => code_change::run(self, task, cancel, events).await,
            other => Err(RunError::UnknownBlueprint(other.to_string())),
        }
    }
}
