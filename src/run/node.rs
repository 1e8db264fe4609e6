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

/// How a node ended normally: `ok` and a one-line `detail` for the node record, the Slack
/// status line and the audit log. A failure that must stop the run is an `Err` instead.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// False when the node did not succeed.
    pub ok: bool,
    /// One line for records, status messages and the audit log.
    pub detail: String,
}

impl Outcome {
    /// A node that did its job.
    pub fn ok(detail: impl Into<String>) -> Self {
        Self {
            ok: true,
            detail: detail.into(),
        }
    }

    /// A node that ended but did not succeed (the run goes on: e.g. a failing check).
    pub fn failed(detail: impl Into<String>) -> Self {
        Self {
            ok: false,
            detail: detail.into(),
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

    /// Does the node's work. `Err` stops the run: the node is recorded as failed with
    /// [`FlowError::node_detail`], and the run ends with a failure report.
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

/// One node with its bookkeeping: skipped, or started → run → finished (also on an error
/// once the run is recorded).
async fn run_node(node: &dyn Node, cx: &mut RunCtx<'_>) -> Result<(), FlowError> {
    if cx.cancel.is_cancelled() {
        return Err(FlowError::Cancelled);
    }
    if node.skip(cx) {
        return Ok(());
    }
    let timer = cx.tracker.start(node.name(), node.kind()).await;
    let result = node.run(cx).await;
    let (ok, detail) = match &result {
        Ok(o) => (o.ok, o.detail.clone()),
        // Before the run is recorded, a failure leaves no node record: the run never was.
        Err(_) if !cx.tracker.persist => return result.map(|_| ()),
        Err(e) => (false, e.node_detail()),
    };
    let ms = cx.tracker.finish(timer, ok, detail).await?;
    cx.add_timing(node.name(), ms);
    result.map(|_| ())
}
