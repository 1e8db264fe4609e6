//! The wiring: the only place that sees the whole [`Config`]. Builds the services once
//! (store, sandbox, model, registry, forges) and hands each command exactly what it uses.
//! `main.rs` owns the command line; nothing here parses arguments.

pub mod deps;
pub mod env;
pub mod schedules;
mod tools;

pub use tools::cmd_tools;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use slipway::config::Config;
use slipway::forge::Forges;
use slipway::report::Decision;
use slipway::repos::ForgeKind;
use slipway::run::RunEvent;
use slipway::runner::{RunError, Runner};
use slipway::store::Store;
use slipway::task::{BlueprintId, Origin, RepoRef, Task};
use slipway::workspace::Workspaces;
use slipway::{agent, sandbox};

use crate::TasksAction;

/// A usage or configuration error: printed as one line, exit 2.
pub(crate) fn usage(e: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("slipway: {e}");
    Ok(ExitCode::from(2))
}

/// `slipway run`: one task through its blueprint, no Slack; exit 0 when a branch was
/// produced and the decision is not `halt`, 1 when the run failed or halted, 2 for usage.
pub async fn cmd_run(
    cfg: Arc<Config>,
    repo_arg: &str,
    base: Option<String>,
    blueprint: &str,
    json: bool,
    text: &str,
    requester: &str,
) -> anyhow::Result<ExitCode> {
    if text.trim().is_empty() {
        return usage(RunError::EmptyTask);
    }
    let blueprint: BlueprintId = match blueprint.parse() {
        Ok(b) => b,
        Err(name) => return usage(RunError::UnknownBlueprint(name)),
    };
    let repo = match resolve_repo(&cfg, repo_arg, base) {
        Ok(r) => r,
        Err(msg) => return usage(msg),
    };
    let needs_model = blueprint == BlueprintId::CodeChange;
    let runner = match build_runner(&cfg, needs_model, false).await? {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    if let Some(why) = daily_budget_spent(&runner, requester, &repo.name)? {
        return usage(why);
    }
    let mcp = runner.mcp.clone();
    let mut task = Task::new(repo, requester, Origin::Cli, text);
    task.blueprint = blueprint;
    let result = run_with_progress(&runner, &mut task, blueprint, cancel_on_ctrl_c()).await;
    mcp.close().await;
    match result {
        Ok(report) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                eprint!("{}", report.to_text());
            }
            let ok = if blueprint == BlueprintId::EnvBuild {
                // Nothing is committed: success is a ready environment.
                report
                    .gates
                    .iter()
                    .all(|g| g.status != slipway::report::GateStatus::Fail)
            } else {
                report.commit.is_some() && report.decision != Decision::Halt
            };
            Ok(ExitCode::from(if ok { 0 } else { 1 }))
        }
        Err(e) if e.is_usage() => usage(e),
        Err(e) => {
            eprintln!("slipway: run failed: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Why a new task of `requester` on `repo` may not start today: a `[budgets]` daily limit
/// is spent (the same rule and words as Slack's refusal).
fn daily_budget_spent(
    runner: &Runner,
    requester: &str,
    repo: &str,
) -> anyhow::Result<Option<String>> {
    let keys = slipway::store::SpendKeys {
        task_id: String::new(),
        requester: requester.into(),
        repo: repo.into(),
    };
    let day = slipway::budget::utc_day(slipway::task::now_ms());
    let totals = runner.store.spend(&keys, &day)?;
    Ok(
        slipway::budget::daily_over(&runner.cfg.file.budgets, &totals).map(|r| {
            slipway::budget::refusal_text(&r, slipway::budget::spender(&r, requester, repo))
        }),
    )
}

/// The repo `repo_arg` names (a `[[repos]]` entry, a local path or a clone URL), on `base`
/// (else the entry's base, else `main`). The error is a usage message.
pub(crate) fn resolve_repo(
    cfg: &Config,
    repo_arg: &str,
    base: Option<String>,
) -> Result<RepoRef, String> {
    let configured = cfg.file.repos.iter().find(|r| r.name == repo_arg);
    let forge = configured.map(|r| r.forge).unwrap_or_default();
    if forge == ForgeKind::Github && cfg.github.auth.is_none() {
        return Err(format!(
            "{repo_arg} uses forge = \"github\": set GITHUB_TOKEN, or GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY"
        ));
    }
    let (source, derived_name) = if forge == ForgeKind::Github {
        // The clone URL comes from the GitHub API when the run starts.
        (
            format!("https://github.com/{repo_arg}.git"),
            repo_arg.to_string(),
        )
    } else {
        let source_arg = configured
            .and_then(|r| r.url.clone())
            .unwrap_or_else(|| repo_arg.to_string());
        Workspaces::resolve_source(&source_arg).map_err(|e| e.to_string())?
    };
    let name = configured.map(|r| r.name.clone()).unwrap_or(derived_name);
    let base = base
        .or_else(|| configured.map(|r| r.base.clone()))
        .unwrap_or_else(|| "main".into());
    Ok(RepoRef {
        name,
        source,
        base,
        forge,
    })
}

/// A token cancelled by Ctrl-C (the run stops at its next node).
pub(crate) fn cancel_on_ctrl_c() -> CancellationToken {
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("slipway: cancelling…");
            on_signal.cancel();
        }
    });
    cancel
}

/// Runs `task` through `blueprint`, printing progress on stderr.
pub(crate) async fn run_with_progress(
    runner: &Runner,
    task: &mut Task,
    blueprint: BlueprintId,
    cancel: CancellationToken,
) -> Result<slipway::report::RunReport, RunError> {
    let (tx, rx) = mpsc::channel(64);
    let printer = tokio::spawn(print_progress(rx));
    let result = runner.run_id(task, blueprint, cancel, Some(tx)).await;
    let _ = printer.await;
    result
}

/// The services of a run, built once: model, sandbox (checked), store, registry, forge.
/// `Ok(Err(code))` is a usage error already printed.
/// `needs_model` false (a blueprint with no agent) accepts a missing model configuration.
/// `warm_pool` keeps `[sandbox] warm` pre-started sandboxes (a server; not one CLI run).
pub async fn build_runner(
    cfg: &Arc<Config>,
    needs_model: bool,
    warm_pool: bool,
) -> anyhow::Result<Result<Runner, ExitCode>> {
    let llm = match agent::llm::from_config(&cfg.llm, &cfg.file.llm) {
        Ok(l) => l,
        Err(agent::llm::LlmError::NotConfigured(why)) if !needs_model => {
            Arc::new(agent::llm::Unconfigured(why))
        }
        Err(e) => return usage(e).map(Err),
    };
    let sandbox = match sandbox::select(
        cfg.file.sandbox.backend,
        &cfg.file.sandbox,
        cfg.docker_host.as_deref(),
    )
    .await
    {
        Ok(s) => s,
        Err(e) => return usage(e).map(Err),
    };
    if let Err(e) = sandbox.preflight().await {
        return usage(e).map(Err);
    }
    slipway::config::ensure_data_dir(&cfg.data_dir)
        .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    // What a killed slipway left: per-run directories whose claim no live process holds
    // (the sandbox backend already removed such containers when it connected).
    let swept = slipway::sweep::sweep_data_dir(&cfg.data_dir);
    tracing::info!(
        removed = swept.removed,
        kept = swept.kept,
        claims = swept.claims,
        "startup sweep of the data dir"
    );
    let store =
        Store::open(&cfg.data_dir.join("store"))?.with_redaction(cfg.secret_values.0.clone());
    let (forges, workspaces) = match Forges::build(cfg, Workspaces::new(&cfg.data_dir)) {
        Ok(v) => v,
        Err(e) => return usage(e).map(Err),
    };
    let (registry, mcp) = slipway::tools::load_registry(cfg, &[], true).await;
    for p in &registry.problems {
        tracing::warn!(problem = %p, "tool registry");
    }
    let sc = &cfg.file.sandbox;
    // `slipway run` is one run: nothing would take a pre-started sandbox.
    let warm = if warm_pool { sc.warm } else { 0 };
    let pool = slipway::env::pool::WarmPool::new(
        &cfg.data_dir,
        warm,
        std::time::Duration::from_secs(sc.env_ttl_h.saturating_mul(3600)),
        sandbox.clone(),
    );
    Ok(Ok(Runner {
        pool,
        cfg: cfg.clone(),
        store,
        workspaces,
        sandbox,
        llm,
        forges,
        registry: Arc::new(registry),
        mcp,
    }))
}

/// `slipway serve`: the Slack bot until SIGTERM or Ctrl-C, then a graceful stop.
pub async fn cmd_serve(
    cfg: Arc<Config>,
    listen: std::net::SocketAddr,
    grace_s: u64,
) -> anyhow::Result<ExitCode> {
    if cfg.slack.app_token.is_none() || cfg.slack.bot_token.is_none() {
        return usage(
            "`slipway serve` needs SLACK_APP_TOKEN (xapp-…) and SLACK_BOT_TOKEN (xoxb-…); see README \"Install in Slack\"",
        );
    }
    if let Some(r) = cfg.file.repos.iter().find(|r| r.forge == ForgeKind::Github)
        && cfg.github.auth.is_none()
    {
        tracing::warn!(
            repo = r.name,
            "forge = \"github\" without GITHUB_TOKEN or GitHub App credentials; tasks for it are refused in their threads"
        );
    }
    let runner = match build_runner(&cfg, true, true).await? {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    let mcp = runner.mcp.clone();
    let pool = runner.pool.clone();
    // The webhook wakes the GitHub forge's CI waits.
    let github_hook = slipway::web::GithubWebhook::new(
        cfg.github.webhook_secret.clone(),
        runner.forges.github.clone(),
    );
    let mut service = match slipway::slack::serve::Service::start(cfg.clone(), runner).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("slipway: cannot start the Slack bot: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    // The bound address: with port 0 the system picked one.
    let listen = listener.local_addr().unwrap_or(listen);
    let metrics = slipway::metrics::Metrics::new();
    let _observer = metrics.spawn_observer(&service.queue);
    let web = tokio::spawn(slipway::web::serve_until(
        listener,
        slipway::web::AppState {
            queue: service.queue.clone(),
            stats: service.stats.clone(),
            mentions: service.mentions.clone(),
            github: github_hook,
            metrics,
        },
        service.web_shutdown(),
    ));
    tracing::info!(%listen, "slipway serve is up");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let code = tokio::select! {
        _ = term.recv() => { tracing::info!("SIGTERM: stopping"); 0 }
        _ = tokio::signal::ctrl_c() => { tracing::info!("interrupt: stopping"); 0 }
        end = service.socket_ended() => match end {
            Ok(e) => { tracing::error!(end = ?e, "Socket Mode ended; stopping"); 1 }
            Err(e) => { eprintln!("slipway: Socket Mode stopped: {e} ({})", e.advice()); 1 }
        },
    };
    service
        .shutdown(std::time::Duration::from_secs(grace_s))
        .await;
    // No run is left to take a pre-started sandbox: close them all.
    pool.shutdown().await;
    // The web server stops once the service has shut down: in-flight requests finish, for
    // at most another grace period (a stalled client is not waited for beyond it).
    let stop_web = web.abort_handle();
    match tokio::time::timeout(std::time::Duration::from_secs(grace_s), web).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "web server task ended abnormally"),
        Err(_) => {
            tracing::warn!(
                grace_s,
                "web requests still open after the grace period; closing them"
            );
            stop_web.abort();
        }
    }
    mcp.close().await;
    Ok(ExitCode::from(code))
}

/// Renders run events on stderr, one line each.
async fn print_progress(mut rx: mpsc::Receiver<RunEvent>) {
    while let Some(e) = rx.recv().await {
        match e {
            RunEvent::RunStarted {
                task_id,
                run_id,
                revision,
                branch,
            } => {
                eprintln!("▶ task {task_id} run {run_id} (revision {revision}) on {branch}");
            }
            RunEvent::NodeStarted { .. } => {}
            RunEvent::Published {
                pr_url: Some(url), ..
            } => eprintln!("  🔗 {url}"),
            RunEvent::Published { .. } => {}
            RunEvent::NodeProgress { node, detail } => eprintln!("  ⏳ {node:<10} {detail}"),
            RunEvent::NodeFinished {
                node,
                ok,
                detail,
                duration_ms,
                ..
            } => {
                let mark = if ok { "✓" } else { "✗" };
                eprintln!(
                    "  {mark} {node:<10} {duration_ms:>7} ms  {}",
                    slipway::task::truncate_chars(&detail, 120)
                );
            }
            RunEvent::RunFinished { report } => {
                eprintln!("■ {} ({} ms)", report.decision, report.timings_ms.total);
            }
            RunEvent::RunFailed { error } => eprintln!("■ failed: {error}"),
            RunEvent::Cost { .. } => {}
            RunEvent::BudgetWarning { limit, spent, max } => eprintln!(
                "  ⚠ budget: {} at {} of {}",
                limit.key(),
                limit.figure(spent),
                limit.figure(max)
            ),
        }
    }
}

/// `slipway tasks list | show ID`: stored tasks, their runs and audit trail.
pub fn cmd_tasks(cfg: Arc<Config>, action: TasksAction) -> anyhow::Result<ExitCode> {
    let dir = cfg.data_dir.join("store");
    if !dir.exists() {
        eprintln!("no tasks yet ({} has no store)", cfg.data_dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let store = Store::open(&dir)?;
    match action {
        TasksAction::List { json } => {
            let tasks = store.list_tasks()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tasks)?);
                return Ok(ExitCode::SUCCESS);
            }
            for t in tasks {
                let state = serde_json::to_value(t.state)?;
                println!(
                    "{}  {:<9} rev {}  {:<24} {}",
                    t.id,
                    state.as_str().unwrap_or("?"),
                    t.revisions.len(),
                    t.repo.name,
                    t.title()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        TasksAction::Show { id } => {
            let Some(task) = store.get_task(&id)? else {
                return usage(format!("no task {id}; `slipway tasks list` shows the ids"));
            };
            let runs: Vec<_> = task
                .runs
                .iter()
                .filter_map(|r| store.get_run(r).ok().flatten())
                .collect();
            let audit = store.audit_log(Some(&id))?;
            let v = serde_json::json!({"task": task, "runs": runs, "audit": audit});
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `slipway sandbox build`: the default sandbox image, from Debian packages, no registry.
pub async fn cmd_sandbox_build(
    cfg: Arc<Config>,
    image: Option<String>,
) -> anyhow::Result<ExitCode> {
    let image = image.unwrap_or_else(|| cfg.file.sandbox.image.clone());
    let engine =
        match sandbox::docker::DockerSandbox::connect(cfg.docker_host.as_deref(), &image).await {
            Ok(e) => e,
            Err(e) => return usage(e),
        };
    eprintln!(
        "building {image} from Debian packages and PyPI toolchain wheels with the engine at {} (a few minutes)…",
        engine.host()
    );
    let work = cfg.data_dir.join("image-build");
    let summary = sandbox::image::build(&engine, &image, &work).await?;
    eprintln!(
        "built {}: root filesystem {} MB, download_ms {} bootstrap_ms {} import_ms {}; {}={}",
        summary.image,
        summary.rootfs_bytes / 1_000_000,
        summary.download_ms,
        summary.bootstrap_ms,
        summary.import_ms,
        sandbox::image::INPUTS_LABEL,
        summary.stamp
    );
    Ok(ExitCode::SUCCESS)
}
