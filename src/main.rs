//! The `slipway` command line (contract: `DESIGN.md` §3, "CLI"). Parses arguments, loads the
//! configuration once, builds the services and renders results. Progress and logs go to
//! stderr; `--json` output goes to stdout. Exit status: 0 ok, 1 failed or halted, 2 usage or
//! configuration error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use slipway::config::{Config, Env};
use slipway::forge::Forges;
use slipway::report::Decision;
use slipway::repos::ForgeKind;
use slipway::run::RunEvent;
use slipway::runner::{RunError, Runner};
use slipway::store::Store;
use slipway::task::{BlueprintId, Origin, RepoRef, Task};
use slipway::workspace::Workspaces;
use slipway::{agent, doctor, sandbox};

#[derive(Parser)]
#[command(
    name = "slipway",
    version,
    about = "Turns a Slack thread into a reviewed pull request"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    /// Configuration file (default: ./slipway.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// The Slack bot (Socket Mode) plus health and metrics on --listen.
    Serve {
        /// Address of the web server (health, metrics).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Seconds to let running runs checkpoint on SIGTERM before exiting.
        #[arg(long, default_value_t = 60)]
        grace_s: u64,
    },
    /// Run one task, no Slack.
    Run {
        /// Local path or clone URL, or the name of a [[repos]] entry.
        #[arg(long)]
        repo: String,
        /// Base branch (default: the [[repos]] entry's base, else main).
        #[arg(long)]
        base: Option<String>,
        #[arg(long, default_value = "code_change")]
        blueprint: String,
        /// Print the run report as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// What to change.
        #[arg(required = true, num_args = 1..)]
        task: Vec<String>,
    },
    /// The tool registry and prefetch.
    Tools {
        #[command(subcommand)]
        action: ToolsAction,
    },
    /// Stored tasks.
    Tasks {
        #[command(subcommand)]
        action: Option<TasksAction>,
    },
    /// Check config, container engine, git and model reachability.
    Doctor,
    /// The sandbox image.
    Sandbox {
        #[command(subcommand)]
        action: SandboxAction,
    },
}

#[derive(Subcommand)]
enum ToolsAction {
    /// Every known tool: built-ins, catalogs and live MCP servers.
    List {
        #[arg(long)]
        json: bool,
        /// Catalog files or globs instead of [prefetch] catalogs.
        #[arg(long = "catalog")]
        catalogs: Vec<String>,
    },
    /// The tools prefetch picks for a task, with scores and the evidence behind each.
    Explain {
        #[arg(long = "catalog")]
        catalogs: Vec<String>,
        #[arg(long)]
        k: Option<usize>,
        #[arg(long)]
        json: bool,
        #[arg(required = true, num_args = 1..)]
        task: Vec<String>,
    },
    /// recall@k, completeness, MRR and nDCG@k of prefetch on a labelled JSONL file.
    Eval {
        file: PathBuf,
        #[arg(long = "catalog")]
        catalogs: Vec<String>,
        #[arg(long)]
        k: Option<usize>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TasksAction {
    /// One line per task, newest first.
    List {
        #[arg(long)]
        json: bool,
    },
    /// A task with its runs, reports and audit trail, as JSON.
    Show { id: String },
}

#[derive(Subcommand)]
enum SandboxAction {
    /// Build the default sandbox image with the local engine; no registry needed.
    Build {
        /// Image name (default: [sandbox] image).
        #[arg(long)]
        image: Option<String>,
    },
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLIPWAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("slipway=info,warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.with_target(false).init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    // One rustls crypto provider for the whole process (FIELD_NOTES: "TLS").
    slipway::tls::ensure_provider();
    let cli = Cli::parse();
    init_logs(cli.log_format);
    let env = Env::from_process();
    let cfg = match Config::load(cli.config.as_deref(), &env) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("slipway: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("slipway: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let requester = env.get("USER").unwrap_or("cli").to_string();
    let result = rt.block_on(async move {
        match cli.command {
            Command::Tools { action } => cmd_tools(cfg, action).await,
            Command::Serve { listen, grace_s } => cmd_serve(cfg, listen, grace_s).await,
            Command::Run {
                repo,
                base,
                blueprint,
                json,
                task,
            } => {
                cmd_run(
                    cfg,
                    &repo,
                    base,
                    &blueprint,
                    json,
                    &task.join(" "),
                    &requester,
                )
                .await
            }
            Command::Tasks { action } => {
                cmd_tasks(cfg, action.unwrap_or(TasksAction::List { json: false }))
            }
            Command::Doctor => Ok(doctor::run(&cfg).await),
            Command::Sandbox {
                action: SandboxAction::Build { image },
            } => cmd_sandbox_build(cfg, image).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("slipway: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// A usage or configuration error: printed as one line, exit 2.
fn usage(e: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("slipway: {e}");
    Ok(ExitCode::from(2))
}

async fn cmd_run(
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
    let configured = cfg.file.repos.iter().find(|r| r.name == repo_arg);
    let forge = configured.map(|r| r.forge).unwrap_or_default();
    if forge == ForgeKind::Github && cfg.github.auth.is_none() {
        return usage(format!(
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
        match Workspaces::resolve_source(&source_arg) {
            Ok(v) => v,
            Err(e) => return usage(e),
        }
    };
    let name = configured.map(|r| r.name.clone()).unwrap_or(derived_name);
    let base = base
        .or_else(|| configured.map(|r| r.base.clone()))
        .unwrap_or_else(|| "main".into());
    let runner = match build_runner(&cfg).await? {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    let mcp = runner.mcp.clone();
    let repo = RepoRef {
        name,
        source,
        base,
        forge,
    };
    let mut task = Task::new(repo, requester, Origin::Cli, text);
    task.blueprint = blueprint;
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("slipway: cancelling…");
            on_signal.cancel();
        }
    });
    let (tx, rx) = mpsc::channel(64);
    let printer = tokio::spawn(print_progress(rx));
    let result = runner.run_id(&mut task, blueprint, cancel, Some(tx)).await;
    let _ = printer.await;
    mcp.close().await;
    match result {
        Ok(report) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                eprint!("{}", report.to_text());
            }
            let ok = report.commit.is_some() && report.decision != Decision::Halt;
            Ok(ExitCode::from(if ok { 0 } else { 1 }))
        }
        Err(e) if e.is_usage() => usage(e),
        Err(e) => {
            eprintln!("slipway: run failed: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// The services of a run, built once: model, sandbox (checked), store, registry, forge.
/// `Ok(Err(code))` is a usage error already printed.
async fn build_runner(cfg: &Arc<Config>) -> anyhow::Result<Result<Runner, ExitCode>> {
    let llm = match agent::llm::from_config(&cfg.llm, &cfg.file.llm) {
        Ok(l) => l,
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
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let store = Store::open(&cfg.data_dir.join("store"))?;
    let (forges, workspaces) = match Forges::build(cfg, Workspaces::new(&cfg.data_dir)) {
        Ok(v) => v,
        Err(e) => return usage(e).map(Err),
    };
    let (registry, mcp) = slipway::tools::load_registry(cfg, &[], true).await;
    for p in &registry.problems {
        tracing::warn!(problem = %p, "tool registry");
    }
    Ok(Ok(Runner {
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
async fn cmd_serve(
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
    let runner = match build_runner(&cfg).await? {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    let mcp = runner.mcp.clone();
    let forges = runner.forges.clone();
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
    let web = tokio::spawn(slipway::web::serve(
        listener,
        slipway::web::WebState {
            queue: service.queue.clone(),
            forges,
            webhook_secret: cfg.github.webhook_secret.clone(),
            stats: service.stats.clone(),
            bot: service.bot.clone(),
        },
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
    web.abort();
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
        }
    }
}

fn cmd_tasks(cfg: Arc<Config>, action: TasksAction) -> anyhow::Result<ExitCode> {
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

async fn cmd_tools(cfg: Arc<Config>, action: ToolsAction) -> anyhow::Result<ExitCode> {
    use slipway::tools::{builtins, eval, prefetch};
    let k_given = match &action {
        ToolsAction::Explain { k, .. } | ToolsAction::Eval { k, .. } => *k,
        ToolsAction::List { .. } => None,
    };
    if let Some(k) = k_given
        && k < builtins::NAMES.len()
    {
        return usage(format!(
            "--k {k} is too small: the {} built-ins are always offered",
            builtins::NAMES.len()
        ));
    }
    match action {
        ToolsAction::List { json, catalogs } => {
            let (reg, hub) = slipway::tools::load_registry(&cfg, &catalogs, true).await;
            hub.close().await;
            for p in &reg.problems {
                eprintln!("warning: {p}");
            }
            if json {
                println!("{}", serde_json::to_string_pretty(reg.entries())?);
            } else {
                for e in reg.entries() {
                    let mut flags = Vec::new();
                    if e.read_only == Some(true) {
                        flags.push("read-only");
                    }
                    if e.is_destructive() {
                        flags.push("destructive");
                    }
                    let first = e.description.lines().next().unwrap_or("");
                    println!(
                        "{:<48} {:<28} {:<22} {}",
                        e.name,
                        e.server.as_deref().unwrap_or("(built-in)"),
                        flags.join(","),
                        slipway::task::truncate_chars(first, 80)
                    );
                }
                eprintln!(
                    "{} tools from {} servers",
                    reg.entries().len(),
                    reg.servers().len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ToolsAction::Explain {
            catalogs,
            k,
            json,
            task,
        } => {
            let (reg, hub) = slipway::tools::load_registry(&cfg, &catalogs, true).await;
            hub.close().await;
            let text = task.join(" ");
            let signals = std::env::current_dir()
                .map(|d| prefetch::RepoSignals::from_dir(&d))
                .unwrap_or_default();
            let index = prefetch::Index::new(&reg);
            let sel = index.select(&prefetch::Request {
                task: &text,
                repo: Some(&signals),
                k: k.unwrap_or(cfg.file.prefetch.k),
                always: builtins::NAMES,
                allow_destructive: cfg.file.prefetch.allow_destructive,
                ..Default::default()
            });
            if json {
                println!("{}", serde_json::to_string_pretty(&sel)?);
                return Ok(ExitCode::SUCCESS);
            }
            for (i, p) in sel.picks.iter().enumerate() {
                println!(
                    "{:>2}. {:<44} {:>7.2}  {}",
                    i + 1,
                    p.name,
                    p.score,
                    p.server.as_deref().unwrap_or("(built-in)")
                );
                for e in &p.evidence {
                    println!("      · {e}");
                }
            }
            for (name, why) in &sel.withheld {
                println!("    withheld {name}: {why}");
            }
            Ok(ExitCode::SUCCESS)
        }
        ToolsAction::Eval {
            file,
            catalogs,
            k,
            json,
        } => {
            let cases = match eval::read_cases(&file) {
                Ok(c) => c,
                Err(e) => return usage(e),
            };
            let (reg, _) = slipway::tools::load_registry(&cfg, &catalogs, false).await;
            for p in &reg.problems {
                eprintln!("warning: {p}");
            }
            let m = eval::evaluate(
                &reg,
                &cases,
                k.unwrap_or(cfg.file.prefetch.k),
                builtins::NAMES,
            );
            if json {
                println!("{}", serde_json::to_string(&m)?);
            } else {
                let k = m.k;
                let with = eval::mean_prefetch_tokens(&reg, &cases, k, builtins::NAMES);
                let all = eval::definition_tokens(&reg, None);
                eprintln!(
                    "tool definitions per request (characters ÷ 4): {with} tokens with prefetch at k={k}, {all} with all {} tools ({:.0}% fewer)",
                    reg.entries().len(),
                    100.0 * (1.0 - with as f64 / all.max(1) as f64)
                );
                println!(
                    "k={} queries={} recall={:.4} completeness={:.4} mrr={:.4} ndcg={:.4} ({} tools)",
                    m.k,
                    m.queries,
                    m.recall,
                    m.completeness,
                    m.mrr,
                    m.ndcg,
                    reg.entries().len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn cmd_sandbox_build(cfg: Arc<Config>, image: Option<String>) -> anyhow::Result<ExitCode> {
    let image = image.unwrap_or_else(|| cfg.file.sandbox.image.clone());
    let engine =
        match sandbox::docker::DockerSandbox::connect(cfg.docker_host.as_deref(), &image).await {
            Ok(e) => e,
            Err(e) => return usage(e),
        };
    eprintln!(
        "building {image} from Debian packages with the engine at {} (a few minutes)…",
        engine.host()
    );
    let work = cfg.data_dir.join("image-build");
    let summary = sandbox::image::build(&engine, &image, &work).await?;
    eprintln!(
        "built {}: root filesystem {} MB, bootstrap {} ms, import {} ms",
        summary.image,
        summary.rootfs_bytes / 1_000_000,
        summary.bootstrap_ms,
        summary.import_ms
    );
    Ok(ExitCode::SUCCESS)
}
