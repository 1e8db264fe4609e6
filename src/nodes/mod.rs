//! The nodes blueprints are made of, one small file each. A node does one job on the
//! [`RunCtx`]; it never starts or finishes itself (the run loop does), never chooses what
//! runs next (the blueprint does) and never writes the task's final state (the lifecycle
//! does).

pub mod bump;
pub mod checks;
pub mod ci;
pub mod commit;
pub mod deps_fix;
pub mod fix;
pub mod gates;
pub mod implement;
pub mod lookup;
pub mod merge;
pub mod prefetch;
pub mod probe;
pub mod publish;
pub mod revert;
pub mod sandbox;
pub mod sandbox_gates;
pub mod setup;
pub mod sidecar;
pub mod workspace;

pub use bump::Bump;
pub use checks::Checks;
pub use ci::Ci;
pub use commit::Commit;
pub use deps_fix::{DepsFix, PrefetchForFix};
pub use fix::{CiFix, Fix};
pub use gates::Gates;
pub use implement::Implement;
pub use lookup::Lookup;
pub use merge::Merge;
pub use prefetch::Prefetch;
pub use publish::Publish;
pub use revert::Revert;
pub use sandbox::Sandbox;
pub use sandbox_gates::SandboxGates;
pub use setup::Setup;
pub use workspace::Workspace;

use crate::agent::{AgentEnd, AgentNode, Budget, Conversation};
use crate::report::Decision;
use crate::run::{FlowError, RunCtx, RunError};
use crate::tools::builtins::ToolContext;

/// One agent round on the run's conversation: `text` as the next user turn, the offered
/// tools, the pass's sandbox and the run's budget. The conversation is created on first use.
pub(crate) async fn agent_round(cx: &mut RunCtx<'_>, text: String) -> Result<AgentEnd, FlowError> {
    let root = std::fs::canonicalize(&cx.wt()?.path)
        .map_err(|e| RunError::RunDir(format!("worktree vanished: {e}")))?;
    let svc = cx.svc;
    let cfg = &svc.cfg;
    let mut conv = cx
        .conv
        .take()
        .unwrap_or_else(|| Conversation::new(crate::agent::prompt::system(&root)));
    let session = cx
        .session
        .as_deref()
        .ok_or_else(|| RunError::Internal("no sandbox: the sandbox node has not run".into()))?;
    let none = crate::tools::Routes::new();
    let (specs, routes, hub) = match &cx.offered {
        Some(o) => (o.specs.as_slice(), &o.routes, Some(&o.hub)),
        None => (&[][..], &none, None),
    };
    let agent = AgentNode {
        llm: svc.llm.as_ref(),
        tools: specs,
        ctx: ToolContext {
            root: &root,
            session,
            cancel: &cx.cancel,
            max_timeout: cfg.command_timeout(),
            output_cap: cfg.file.sandbox.output_cap_bytes,
            guard: &cx.guard,
            mcp: hub,
            routes,
        },
        log: &cx.tracker.log,
        max_output_tokens: cfg.file.agent.max_output_tokens,
        secrets: &cfg.secret_values,
        disk: (cfg.file.sandbox.max_disk_mb > 0).then(|| crate::agent::disk::DiskLimit {
            dirs: vec![root.clone(), cx.home()],
            max_bytes: cfg.file.sandbox.max_disk_mb << 20,
        }),
    };
    let end = agent.run(&mut conv, &mut cx.budget, text).await;
    cx.conv = Some(conv);
    Ok(end?)
}

/// A node detail for how an agent round ended.
pub(crate) fn end_detail(e: &AgentEnd, budget: &Budget) -> String {
    match e {
        AgentEnd::Finished { summary } => crate::task::truncate_chars(summary, 200),
        AgentEnd::Budget { kind } => budget.describe(*kind),
        AgentEnd::Stopped { .. } => "the agent stopped without calling finish".into(),
        AgentEnd::PolicyViolation { reason } => reason.clone(),
        AgentEnd::OverBudget { reading } => reading.to_string(),
    }
}

/// True when the run's judgement is `halt` or there is no commit: nothing may leave
/// slipway's data dir.
pub(crate) fn nothing_to_publish(cx: &RunCtx<'_>) -> bool {
    cx.commit.is_none()
        || cx
            .judged
            .as_ref()
            .is_none_or(|j| j.decision == Decision::Halt)
}
