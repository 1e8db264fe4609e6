//! `workspace`: the mirror cache → a fresh work tree on the task's branch; the repo's policy
//! and check commands, read from the commit the run starts from, before the agent runs.

use async_trait::async_trait;

use crate::env::{self, RepoEnvConfig};
use crate::gates::checks;
use crate::gates::policy::{self, RepoPolicy};
use crate::run::ctx::RunDirs;
use crate::run::{FlowError, NodeName, Outcome, RunCtx, RunError};
use crate::task::{RepoRef, short_sha};
use crate::tools::guard::CommandGuard;

/// The workspace node.
pub struct Workspace;

#[async_trait]
impl crate::run::Node for Workspace {
    fn name(&self) -> NodeName {
        NodeName::Workspace
    }

    async fn run(&self, cx: &mut RunCtx<'_>) -> Result<Outcome, FlowError> {
        let svc = cx.svc;
        let forge = svc.forges.of(cx.task)?.clone();
        // GitHub: the API's clone URL (also what git credentials are scoped to).
        let repo = RepoRef {
            source: forge.clone_url(&cx.task.repo).await?,
            ..cx.task.repo.clone()
        };
        let revision = cx.task.current().number;
        // A warm pool slot of the repo, when one is ready: the clone goes into its
        // directories, which its running container already binds.
        let mut slot = svc.pool.take(&cx.task.repo.name);
        let mut wt = None;
        if let Some(s) = &slot {
            match svc
                .workspaces
                .prepare_at(
                    &repo,
                    &cx.task.branch,
                    &cx.run_id,
                    revision,
                    &s.ws(),
                    &s.git(),
                )
                .await
            {
                Ok(w) => wt = Some(w),
                Err(e) => {
                    tracing::warn!(error = %e, "could not clone into the warm sandbox; starting one the usual way");
                    if let Some(s) = slot.take() {
                        svc.pool.discard(s);
                    }
                }
            }
        }
        let wt = match wt {
            Some(w) => w,
            None => {
                svc.workspaces
                    .prepare(&repo, &cx.task.branch, &cx.run_id, revision)
                    .await?
            }
        };
        // A dependency update always starts from the base (its bump is redone, never built
        // on): so the policy and checks below are read from the base too, not from an
        // earlier run's agent commits on the branch.
        let mut wt = wt;
        if cx.blueprint == crate::task::BlueprintId::DependencyUpdate
            && let Err(e) = svc.workspaces.reset_to_base(&mut wt).await
        {
            svc.workspaces.remove(&wt);
            return Err(e.into());
        }
        // From here every exit removes the run's directories (the slot's, when taken).
        cx.dirs = Some(RunDirs {
            workspaces: svc.workspaces.clone(),
            wt: wt.clone(),
            home: slot.as_ref().map_or_else(|| cx.home(), |s| s.home()),
            base_tree: cx.base_tree(),
            slot_root: slot.as_ref().map(|s| s.root.clone()),
        });
        cx.warm = slot;
        // The repo's policy, read before the agent runs (and `.slipway/**` can never be
        // published by an agent, so later revisions see only what people committed).
        let repo_policy = RepoPolicy::load(&wt.path).map_err(RunError::from)?;
        cx.check_cmds = checks::detect(&wt.path, repo_policy.as_ref());
        // The environment comes from the base commit, never from files an agent changed.
        let base_tree = cx.base_tree();
        crate::sweep::remove_tree(&base_tree);
        std::fs::create_dir_all(&base_tree)
            .map_err(|e| RunError::Internal(format!("creating {}: {e}", base_tree.display())))?;
        svc.workspaces.export_base(&wt, &base_tree).await?;
        let repo_env = svc
            .cfg
            .file
            .repos
            .iter()
            .find(|r| r.name == cx.task.repo.name)
            .map(RepoEnvConfig::from)
            .unwrap_or_default();
        // Bad environment input (an invalid devcontainer.json, a setup script that is a link)
        // is the repo's to fix: the setup node halts with it, before the agent.
        match env::resolve(&base_tree, &repo_env) {
            Ok(plan) => cx.env_plan = Some(plan),
            Err(e) => cx.env_error = Some(e.to_string()),
        }
        cx.policy = policy::effective(&svc.cfg.file.policy, repo_policy.as_ref());
        cx.coverage_cmd = repo_policy
            .as_ref()
            .and_then(|p| p.checks.as_ref())
            .and_then(|c| c.coverage.clone());
        cx.guard = CommandGuard::new(&cx.policy.denied_commands);
        cx.forge = Some(forge);
        cx.task.repo.source = repo.source;
        Ok(Outcome::ok(format!(
            "{} at {}",
            wt.branch,
            short_sha(&wt.start_sha)
        )))
    }
}
