//! Why a run could not happen or could not finish ([`RunError`]), and the narrower error of
//! a flow that is under way ([`FlowError`], which adds cancellation).

use crate::agent::AgentError;
use crate::agent::llm::LlmError;
use crate::env::EnvError;
use crate::forge::ForgeError;
use crate::gates::policy::PolicyError;
use crate::sandbox::SandboxError;
use crate::store::StoreError;
use crate::workspace::WorkspaceError;

/// Why a run could not happen or could not finish. Failures before anything is stored
/// (bad repo, empty task, missing image) leave nothing behind; later ones end the run with a
/// `halt` report whose reason is this error's text.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the task is empty: say what to change")]
    /// The instruction is empty.
    EmptyTask,
    #[error(transparent)]
    /// Git: the repo, its base branch, a clone or a push.
    Workspace(#[from] WorkspaceError),
    #[error("{0}; fix the file in the repo")]
    /// The repo's `.slipway/policy.toml` is invalid.
    RepoPolicy(#[from] PolicyError),
    #[error("{0}; fix the file in the repo")]
    /// The repo's environment cannot be resolved (an invalid devcontainer.json, a linked
    /// `.slipway/setup.sh`, a manifest that does not parse).
    Env(#[from] EnvError),
    #[error(transparent)]
    /// The sandbox could not start or run a command.
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    /// The model endpoint failed or is not configured.
    Llm(#[from] LlmError),
    #[error(transparent)]
    /// The store could not be read or written.
    Store(#[from] StoreError),
    /// The stored task moved on (closed, merging or merged) before this run could start:
    /// the state machine refused `Running`.
    #[error("the run did not start: {0}")]
    NotRunnable(#[from] crate::store::IllegalTransition),
    #[error(transparent)]
    /// The forge (GitHub or local) refused or failed.
    Forge(#[from] ForgeError),
    /// The environment could not be set up, so the agent never started (no model spend).
    /// `detail` names the command and its last output line.
    #[error(
        "setup failed, so the agent did not start: {detail}; fix the file or command named in the repo, then react 🔁 or reply to run again"
    )]
    Setup {
        /// The command and its last output line.
        detail: String,
    },
    /// `dependency_update` could not propose or apply its updates (nothing newer, a registry
    /// down, a bump its tool refused); `detail` says which package and what to do.
    #[error("dependency update: {detail}")]
    Deps {
        /// The package, versions and cause.
        detail: String,
    },
    /// The run's host directories could not be made or vanished under it.
    #[error("{0}")]
    /// A run directory could not be made, or the work tree vanished.
    RunDir(String),
    /// A blueprint whose steps are out of order (a node ran before the one that prepares
    /// what it needs), or an outcome the contract rules out: a slipway bug, not the user's.
    #[error("internal error: {0}; this is a slipway bug, please report it")]
    Internal(String),
    #[error("unknown blueprint {0:?}; known: {known}", known = crate::task::BlueprintId::known())]
    /// `--blueprint` named no blueprint; the name as given.
    UnknownBlueprint(String),
}

impl RunError {
    /// True for mistakes the user or operator fixes (exit status 2), false for failures.
    pub fn is_usage(&self) -> bool {
        match self {
            Self::EmptyTask | Self::UnknownBlueprint(_) | Self::RepoPolicy(_) | Self::Env(_) => {
                true
            }
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
            Self::Store(_)
            | Self::Forge(_)
            | Self::Setup { .. }
            | Self::Deps { .. }
            | Self::RunDir(_)
            | Self::NotRunnable(_)
            | Self::Internal(_) => false,
        }
    }
}

/// Failures inside a flow that is under way: a [`RunError`], or cancellation (❌, a
/// timeout or shutdown).
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("the run was cancelled")]
    /// ❌, `cancel`, Ctrl-C or shutdown stopped the run.
    Cancelled,
    #[error(transparent)]
    /// Any other failure.
    Run(#[from] RunError),
}

impl From<AgentError> for FlowError {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::Cancelled => Self::Cancelled,
            AgentError::Llm(e) => Self::Run(e.into()),
            AgentError::Sandbox(e) => Self::Run(e.into()),
            AgentError::Store(e) => Self::Run(e.into()),
        }
    }
}

impl From<SandboxError> for FlowError {
    fn from(e: SandboxError) -> Self {
        match e {
            SandboxError::Cancelled => Self::Cancelled,
            other => Self::Run(other.into()),
        }
    }
}

impl From<StoreError> for FlowError {
    fn from(e: StoreError) -> Self {
        Self::Run(e.into())
    }
}

impl From<WorkspaceError> for FlowError {
    fn from(e: WorkspaceError) -> Self {
        Self::Run(e.into())
    }
}

impl From<ForgeError> for FlowError {
    fn from(e: ForgeError) -> Self {
        Self::Run(e.into())
    }
}
