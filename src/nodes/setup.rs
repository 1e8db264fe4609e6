//! `setup`: makes the repo's environment ready before the agent starts: its image, then a
//! snapshot reused from an earlier run or built by the setup commands, which run from the
//! base commit's tree with network and no secrets (`env::build`). A failure halts the run
//! with no model spend, and names the file or command to fix.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use crate::env::EnvSource;
use crate::env::build::{PrepareError, PrepareRequest, Prepared, SetupFailure};
use crate::env::snapshot::EnvStore;
use crate::report::{Gate, GateName, GateStatus};
use crate::run::{FlowError, NodeName, Outcome, RunCtx, RunError, RunEvent};
use crate::sandbox::{SandboxError, SandboxPolicy};

/// The setup node; skipped when the repo declares no environment and nothing is detected.
pub struct Setup;

/// Exit status of a shell whose command was not found.
const COMMAND_NOT_FOUND: i64 = 127;

#[async_trait]
impl crate::run::Node for Setup {
    fn name(&self) -> NodeName {
        NodeName::Setup
    }

    fn skip(&self, cx: &RunCtx<'_>) -> bool {
        cx.env_error.is_none()
            && cx
                .env_plan
                .as_ref()
                .is_none_or(|p| p.source == EnvSource::None)
    }

    async fn run(&self, cx: &mut RunCtx<'_>) -> Result<Outcome, FlowError> {
        if let Some(e) = cx.env_error.clone() {
            return Ok(stop(cx, e));
        }
        let Some(plan) = cx.env_plan.clone() else {
            return Ok(Outcome::ok("nothing to set up"));
        };
        let svc = cx.svc;
        let cfg = &svc.cfg.file.sandbox;
        let store = EnvStore::new(
            &svc.cfg.data_dir,
            Duration::from_secs(cfg.env_ttl_h.saturating_mul(3600)),
        );
        let source = plan.source.to_string();
        let (on_miss, missed) = tokio::sync::oneshot::channel();
        let wt = cx.wt()?.clone();
        // The network, CA bundle and proxy variables of setup alone.
        let setup = SandboxPolicy::for_setup(cfg, &svc.cfg.setup_env).map_err(RunError::from)?;
        let base_tree = cx.base_tree();
        let req = PrepareRequest {
            repo: &cx.task.repo.name,
            wt: &wt,
            workspaces: &svc.workspaces,
            base_tree: base_tree.clone(),
            base_index: base_tree.with_extension("index"),
            plan: &plan,
            setup_policy: setup.policy,
            setup_mounts: setup.mounts,
            run_id: &cx.run_id,
            timeout: Duration::from_secs(cfg.setup_timeout_s),
            cancel: &cx.cancel,
            on_miss: Some(on_miss),
        };
        let tracker = &cx.tracker;
        let announce = async {
            if missed.await.is_ok() {
                tracker
                    .emit(RunEvent::NodeProgress {
                        node: NodeName::Setup.as_str().into(),
                        detail: format!(
                            "building the environment for this repo, first run ({source})"
                        ),
                    })
                    .await;
            }
        };
        let (result, ()) = tokio::join!(
            crate::env::build::prepare(svc.sandbox.as_ref(), &store, req),
            announce
        );
        // A hit leaves the exported tree behind; a miss moved it into the snapshot.
        if base_tree.exists() {
            crate::sweep::remove_tree(&base_tree);
        }
        let _ = std::fs::remove_file(base_tree.with_extension("index"));
        let cap = cfg.output_cap_bytes;
        let prepared = match result {
            Ok(Ok(p)) => p,
            Ok(Err(failure)) => {
                transcript(cx, &failure.steps, cap).await?;
                return Ok(stop(cx, failed_detail(&source, &failure)));
            }
            Err(PrepareError::Sandbox(SandboxError::Cancelled)) => {
                return Err(FlowError::Cancelled);
            }
            Err(PrepareError::Image(msg)) => return Ok(stop(cx, format!("{source}: {msg}"))),
            Err(PrepareError::Sandbox(
                e @ (SandboxError::Build { .. }
                | SandboxError::ImageMissing(_)
                | SandboxError::ImagePull { .. }
                | SandboxError::Unsupported(_)
                | SandboxError::SetupNetwork(_)
                | SandboxError::CaBundleMissing { .. }),
            )) => return Ok(stop(cx, format!("{source}: {e}"))),
            Err(e) => {
                return Err(RunError::Setup {
                    detail: format!("the environment could not be prepared: {e}"),
                }
                .into());
            }
        };
        transcript(cx, &prepared.steps, cap).await?;
        // What setup generated in the tree (a version file of an editable install) belongs
        // in the checks' tree too; it is git-ignored, so no commit picks it up.
        prepared
            .place_generated(&wt.path)
            .map_err(|e| RunError::RunDir(format!("copying setup's generated files: {e}")))?;
        let detail = passed_detail(&source, &prepared);
        cx.extra_gates
            .push(Gate::new(GateName::Setup, GateStatus::Pass, detail.clone()));
        cx.environment = Some(prepared);
        Ok(Outcome::ok(detail))
    }
}

/// Records each setup command and its output in the run's transcript.
async fn transcript(
    cx: &RunCtx<'_>,
    steps: &[crate::env::build::SetupStep],
    cap: usize,
) -> Result<(), FlowError> {
    for s in steps {
        cx.tracker
            .log
            .transcript(
                "setup",
                s.output.duration_ms,
                json!({"command": s.command, "output": s.output.render(cap)}),
            )
            .await?;
    }
    Ok(())
}

/// The gate line of a ready environment: source, commands, cache state and notes.
fn passed_detail(source: &str, p: &Prepared) -> String {
    let mut d = format!("{source}; {}", p.status());
    if let Some(k) = &p.key {
        d.push_str(&format!(" (snapshot {})", k.short()));
    }
    if let Some(img) = &p.image {
        d.push_str(&format!("; image {img}"));
    }
    for n in &p.plan.notes {
        d.push_str("; ");
        d.push_str(n);
    }
    d
}

/// The gate line of a failed setup: the command, why, and what to do.
fn failed_detail(source: &str, f: &SetupFailure) -> String {
    let Some(last) = f.steps.last() else {
        return format!("{source}: `{}` failed", f.command);
    };
    let out = &last.output;
    let lines = || out.output.lines().rev();
    let last_line = lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    // stdout and stderr arrive on two pipes, so the shell's "not found" need not be last.
    let not_found = lines()
        .find(|l| l.contains("not found"))
        .map(str::trim)
        .unwrap_or(last_line);
    if out.timed_out {
        format!(
            "{source}: `{}` timed out; raise [sandbox] setup_timeout_s or make the setup faster",
            f.command
        )
    } else if out.exit_code == Some(COMMAND_NOT_FOUND) {
        // A setup that cannot start is a setup failure, not a warning: the agent would
        // work without the repo's dependencies.
        format!(
            "{source}: `{}` cannot run: a program it needs is not in the sandbox ({not_found}); add the toolchain to the image or .slipway/setup.sh",
            f.command
        )
    } else {
        format!("{source}: `{}` failed: {last_line}", f.command)
    }
}

/// Records the failed `setup` gate and ends the run before the agent (no model spend).
fn stop(cx: &mut RunCtx<'_>, detail: String) -> Outcome {
    cx.halt_at_setup(detail.clone(), detail)
}
