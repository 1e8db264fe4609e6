//! The [`Node`] trait, the [`Step`] list a blueprint is made of, and the one loop that runs
//! it. Start and finish of every node happen here, once, around [`Node::run`]: a node never
//! touches the tracker.
//!
//! A blueprint is data ([`Blueprint`]): an ordered `Vec<Step>`. The only combinator is
//! [`Step::Rounds`], the shape "check, then fix and check again while it fails, at most N
//! rounds", which serves both checks ⇄ fix and CI ⇄ fix.

use async_trait::async_trait;
use futures::future::BoxFuture;

use super::ctx::RunCtx;
use super::error::FlowError;
use super::events::{NodeKind, NodeName};
use crate::task::BlueprintId;

/// How a node ended: `ok` and a one-line `detail` for the node record, the Slack status
/// line and the audit log; `stop` when the run must end here (the node is still recorded,
/// e.g. a failed setup or a push the forge refused). A node that returns `Err` instead
/// leaves no record: the error alone ends the run.
#[derive(Debug)]
pub struct Outcome {
    /// False when the node did not succeed.
    pub ok: bool,
    /// One line for records, status messages and the audit log.
    pub detail: String,
    /// Ends the run after the node is recorded.
    pub stop: Option<FlowError>,
}

impl Outcome {
    /// A node that did its job.
    pub fn ok(detail: impl Into<String>) -> Self {
        Self {
            ok: true,
            detail: detail.into(),
            stop: None,
        }
    }

    /// A node that ended but did not succeed (the run goes on: e.g. a failing check).
    pub fn failed(detail: impl Into<String>) -> Self {
        Self {
            ok: false,
            detail: detail.into(),
            stop: None,
        }
    }

    /// A node that failed with `error` and ends the run; its record shows the error's text.
    pub fn stopped(error: impl Into<FlowError>) -> Self {
        let error = error.into();
        Self {
            ok: false,
            detail: error.to_string(),
            stop: Some(error),
        }
    }

    /// A node that failed, recorded with `detail`, and ends the run with `error`.
    pub fn stopped_with(detail: impl Into<String>, error: impl Into<FlowError>) -> Self {
        Self {
            ok: false,
            detail: detail.into(),
            stop: Some(error.into()),
        }
    }
}

/// One step of a run. Implementations are small, stateless values (one file each under
/// `src/nodes/`); everything a run accumulates lives in [`RunCtx`].
#[async_trait]
pub trait Node: Send + Sync {
    /// The node's name in records, events and the audit log.
    fn name(&self) -> NodeName;

    /// Deterministic code or an agent loop.
    fn kind(&self) -> NodeKind {
        NodeKind::Deterministic
    }

    /// True when the node does not apply to this run (e.g. `setup` with nothing to set up,
    /// `publish` after a `halt`). A skipped node leaves no record and sends no event.
    fn skip(&self, _cx: &RunCtx<'_>) -> bool {
        false
    }

    /// Does the node's work. An [`Outcome`] is recorded (and may stop the run); `Err` stops
    /// the run without a record of this node.
    async fn run(&self, cx: &mut RunCtx<'_>) -> Result<Outcome, FlowError>;
}

/// One entry of a blueprint.
pub enum Step {
    /// Run one node.
    Node(Box<dyn Node>),
    /// Run `check`; then, while `again` says the result needs fixing and fewer than `max`
    /// rounds were spent (`rounds` counts them in the context), count a round, run `fix`,
    /// and run `check` again.
    Rounds {
        /// Run first, and again after each fix.
        check: Vec<Step>,
        /// Run when `again` holds and rounds are left.
        fix: Vec<Step>,
        /// Whether the last `check` asks for a fix.
        again: fn(&RunCtx<'_>) -> bool,
        /// The context's counter of rounds spent.
        rounds: for<'c, 'a> fn(&'c mut RunCtx<'a>) -> &'c mut u32,
        /// At most this many rounds (the counter may already hold some).
        max: u32,
    },
}

impl Step {
    /// A step that runs `node`.
    pub fn node(node: impl Node + 'static) -> Self {
        Self::Node(Box::new(node))
    }
}

/// A blueprint: its id and its steps, in order.
pub struct Blueprint {
    /// Its name (the report's `blueprint`).
    pub id: BlueprintId,
    /// What runs, in order.
    pub steps: Vec<Step>,
}

/// Runs `steps` in order on `cx`; stops at the first error. A cancelled run stops before
/// its next node.
pub fn run_steps<'s, 'c, 'a>(
    steps: &'s [Step],
    cx: &'c mut RunCtx<'a>,
) -> BoxFuture<'c, Result<(), FlowError>>
where
    's: 'c,
{
    Box::pin(async move {
        for step in steps {
            match step {
                Step::Node(node) => run_node(node.as_ref(), cx).await?,
                Step::Rounds {
                    check,
                    fix,
                    again,
                    rounds,
                    max,
                } => {
                    run_steps(check, cx).await?;
                    while again(cx) && *rounds(cx) < *max {
                        *rounds(cx) += 1;
                        run_steps(fix, cx).await?;
                        run_steps(check, cx).await?;
                    }
                }
            }
        }
        Ok(())
    })
}

/// One node with its bookkeeping: skipped, or started → run → finished. A cancelled run
/// stops before its next node, once it is recorded (before that, the workspace node cannot
/// be interrupted and the first node after it ends the run as cancelled).
async fn run_node(node: &dyn Node, cx: &mut RunCtx<'_>) -> Result<(), FlowError> {
    if cx.tracker.persist && cx.cancel.is_cancelled() {
        return Err(FlowError::Cancelled);
    }
    if node.skip(cx) {
        return Ok(());
    }
    let timer = cx.tracker.start(node.name(), node.kind()).await;
    let outcome = node.run(cx).await?;
    let ms = cx.tracker.finish(timer, outcome.ok, outcome.detail).await?;
    cx.add_timing(node.name(), ms);
    match outcome.stop {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
