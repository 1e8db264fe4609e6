//! `slipway run --blueprint dependency_update`: plan the request on the repo's base, then
//! run one task per group, one after the other. With `--json`, one run report per line
//! (JSON Lines): a single group prints exactly one report, as for other blueprints.

use std::process::ExitCode;
use std::sync::Arc;

use slipway::actions::deps::{DepsPlanner, GroupTask};
use slipway::config::Config;
use slipway::deps::{DepsRequest, advisory, intent};
use slipway::report::Decision;
use slipway::task::{BlueprintId, Origin};

use super::{build_runner, cancel_on_ctrl_c, resolve_repo, run_with_progress, usage};

/// The dependency flags of `slipway run`.
pub struct DepsArgs {
    /// `--only NAME`, repeatable.
    pub only: Vec<String>,
    /// `--update-types patch,minor,major`.
    pub update_types: Option<String>,
    /// `--osv FILE`: an OSV advisory to fix.
    pub osv: Option<std::path::PathBuf>,
}

/// The request from the flags and the optional words (`bump lodash to 4.17.21`,
/// `lockfile maintenance`, `fix GHSA-…`). Errors are usage messages.
fn request(args: &DepsArgs, text: &str) -> Result<Vec<DepsRequest>, String> {
    let mut req = if text.trim().is_empty() {
        DepsRequest::default()
    } else {
        intent::route(text).map(|r| r.request).ok_or_else(|| {
            format!(
                "{text:?} does not read as a dependency request; say `bump NAME [to VERSION]`, `update patch and minor dependencies`, `lockfile maintenance` or `fix GHSA-…`, or use --only and --update-types"
            )
        })?
    };
    req.only.extend(args.only.iter().cloned());
    if let Some(types) = &args.update_types {
        req.update_types.clear();
        slipway::deps::request::add_update_types(types, &mut req.update_types)?;
    }
    let Some(path) = &args.osv else {
        return Ok(vec![req]);
    };
    let json = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the OSV file {}: {e}", path.display()))?;
    let affected = advisory::from_osv(&json).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(affected.into_iter().map(|a| a.request(&req)).collect())
}

/// Runs the request; exit 0 when every group produced a branch that is not `halt` (or there
/// was nothing to update), 1 when a run failed or halted or the lookup failed, 2 for usage.
pub async fn cmd_run_deps(
    cfg: Arc<Config>,
    repo_arg: &str,
    base: Option<String>,
    json: bool,
    text: &str,
    args: &DepsArgs,
    requester: &str,
) -> anyhow::Result<ExitCode> {
    let requests = match request(args, text) {
        Ok(r) => r,
        Err(msg) => return usage(msg),
    };
    let repo = match resolve_repo(&cfg, repo_arg, base) {
        Ok(r) => r,
        Err(msg) => return usage(msg),
    };
    // The agent runs only when a bump breaks the checks: a missing model is said then.
    let runner = match build_runner(&cfg, false, false).await? {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    let planner = DepsPlanner {
        workspaces: runner.workspaces.clone(),
        forges: runner.forges.clone(),
        store: runner.store.clone(),
        lookup: cfg.deps_lookup(),
    };
    let mut started = None;
    for req in &requests {
        match planner.start(&repo, requester, &Origin::Cli, req).await {
            Ok(s) if s.groups.is_empty() => started = Some(s),
            Ok(s) => {
                started = Some(s);
                break;
            }
            Err(e) => {
                eprintln!("slipway: dependency lookup failed: {e}");
                return Ok(ExitCode::from(1));
            }
        }
    }
    let Some(started) = started else {
        return usage("nothing to look up");
    };
    for w in &started.plan.warnings {
        eprintln!("warning: {w}");
    }
    for s in &started.plan.skipped {
        eprintln!("held back: {} {}: {}", s.name, s.version, s.reason);
    }
    if started.groups.is_empty() {
        eprintln!("nothing to update in {}", repo.name);
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "{} group(s): {}",
        started.groups.len(),
        started
            .groups
            .iter()
            .map(|g| match g {
                GroupTask::New(t) => t.title(),
                GroupTask::Open { task, .. } =>
                    format!("{} (rerun of task {})", task.title(), task.id),
            })
            .collect::<Vec<_>>()
            .join("; ")
    );
    let cancel = cancel_on_ctrl_c();
    let mut all_ok = true;
    for g in started.groups {
        let mut task = match g {
            GroupTask::New(t) => *t,
            GroupTask::Open { task, .. } => *task,
        };
        let result = run_with_progress(
            &runner,
            &mut task,
            BlueprintId::DependencyUpdate,
            cancel.clone(),
        )
        .await;
        match result {
            Ok(report) => {
                if json {
                    println!("{}", serde_json::to_string(&report)?);
                } else {
                    eprint!("{}", report.to_text());
                }
                all_ok &= report.commit.is_some() && report.decision != Decision::Halt;
            }
            Err(e) => {
                eprintln!("slipway: run failed: {e}");
                all_ok = false;
            }
        }
        if cancel.is_cancelled() {
            break;
        }
    }
    runner.mcp.close().await;
    Ok(ExitCode::from(if all_ok { 0 } else { 1 }))
}
