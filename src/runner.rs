//! The executor the queue and `slipway run` use: picks the task's blueprint and runs it with
//! the services in [`Runner`]. One path for every task: `slipway run`, Slack and tests all
//! come through here and observe the same [`RunEvent`]s.
//!
//! Must not hold run logic (that is `crate::run`) or blueprint steps (`crate::blueprints`).

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::queue::Executor;
use crate::report::RunReport;
use crate::run::RunEvent;
pub use crate::run::{RunError, Runner};
use crate::store::Store;
use crate::task::{BlueprintId, Task};

impl Runner {
    /// Runs the task's current revision through the blueprint named `blueprint`.
    /// `events` (bounded) receives progress; `cancel` stops the run and its sandbox.
    ///
    /// Errors: [`RunError::UnknownBlueprint`] for a name no blueprint has; otherwise as
    /// [`crate::run::lifecycle::execute`].
    pub async fn run(
        &self,
        task: &mut Task,
        blueprint: &str,
        cancel: CancellationToken,
        events: Option<mpsc::Sender<RunEvent>>,
    ) -> Result<RunReport, RunError> {
        let id: BlueprintId = blueprint.parse().map_err(RunError::UnknownBlueprint)?;
        task.blueprint = id;
        self.run_id(task, id, cancel, events).await
    }

    /// Runs the task's current revision through blueprint `id`.
    pub async fn run_id(
        &self,
        task: &mut Task,
        id: BlueprintId,
        cancel: CancellationToken,
        events: Option<mpsc::Sender<RunEvent>>,
    ) -> Result<RunReport, RunError> {
        let blueprint = crate::blueprints::get(id);
        self.run_blueprint(task, &blueprint, cancel, events).await
    }
}

#[async_trait]
impl Executor for Runner {
    fn store(&self) -> &Store {
        &self.store
    }

    async fn execute(
        &self,
        task: &mut Task,
        cancel: CancellationToken,
        events: mpsc::Sender<RunEvent>,
    ) -> Result<RunReport, RunError> {
        let id = task.blueprint;
        self.run_id(task, id, cancel, Some(events)).await
    }
}
