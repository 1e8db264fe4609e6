//! `lookup` (`dependency_update`): the repo's dependencies (from the base commit's
//! manifests and lockfiles), their registries' releases and the repo's `renovate.json` →
//! this task's group of updates, with what was held back and why, and each package's
//! release notes. Deterministic, on the host, no model.

use async_trait::async_trait;

use super::bump::halt;
use crate::deps::DepsRun;
use crate::run::{FlowError, NodeName, Outcome, RunCtx};

/// The lookup node; skipped outside `dependency_update`.
pub struct Lookup;

#[async_trait]
impl crate::run::Node for Lookup {
    fn name(&self) -> NodeName {
        NodeName::Lookup
    }

    fn skip(&self, cx: &RunCtx<'_>) -> bool {
        cx.blueprint != crate::task::BlueprintId::DependencyUpdate
    }

    async fn run(&self, cx: &mut RunCtx<'_>) -> Result<Outcome, FlowError> {
        let svc = cx.svc;
        let request = cx.task.deps.clone().unwrap_or_default();
        // The base commit's tree (exported by the workspace node): on a rerun the work tree
        // is still at the branch's tip, whose manifests hold the earlier bump.
        let root = cx.base_tree();
        let lookup = svc.cfg.deps_lookup();
        let plan = match crate::deps::lookup::plan_tree(&root, &request, &lookup).await {
            Ok(p) => p,
            Err(e) => return Ok(halt(cx, e.to_string())),
        };
        let wanted = request.group.as_deref();
        let group = plan
            .groups
            .iter()
            .find(|g| wanted.is_none_or(|w| g.slug == w))
            .cloned();
        let Some(group) = group else {
            let held: Vec<String> = plan
                .skipped
                .iter()
                .map(|s| format!("{} {}: {}", s.name, s.version, s.reason))
                .collect();
            let what = wanted.map_or_else(|| "this repo".to_string(), |w| format!("group {w}"));
            let detail = if held.is_empty() {
                format!(
                    "nothing to update for {what}: every dependency is at its newest allowed version"
                )
            } else {
                format!(
                    "nothing to update for {what}; held back: {}",
                    held.join("; ")
                )
            };
            return Ok(halt(cx, detail));
        };
        let notes = crate::deps::lookup::release_notes(&lookup, &group).await;
        let detail = format!(
            "{}: {}{}",
            group.title,
            group
                .updates
                .iter()
                .map(|u| format!("{} ({})", u.change(), u.update_type.as_str()))
                .collect::<Vec<_>>()
                .join(", "),
            if plan.skipped.is_empty() {
                String::new()
            } else {
                format!("; {} held back", plan.skipped.len())
            }
        );
        for w in &plan.warnings {
            tracing::warn!(task = %cx.task.id, "{w}");
        }
        cx.deps = Some(DepsRun {
            group: Some(group),
            skipped: plan.skipped,
            warnings: plan.warnings,
            notes,
            bump_commit: None,
            agent_files: Vec::new(),
        });
        Ok(Outcome::ok(detail))
    }
}
