//! The `slipway` command line (contract: `DESIGN.md` §3, "CLI"). Parses arguments, loads the
//! configuration once, builds the services and renders results. Progress and logs go to
//! stderr; `--json` output goes to stdout. Exit status: 0 ok, 1 failed or halted, 2 usage or
//! configuration error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use slipway::config::{Config, Env};

mod app;
use app::{cmd_run, cmd_sandbox_build, cmd_serve, cmd_tasks, cmd_tools};
use slipway::doctor;

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
        /// Print the run report as JSON on stdout (dependency_update: one report per line,
        /// one per group).
        #[arg(long)]
        json: bool,
        /// dependency_update: only this package (repeatable).
        #[arg(long)]
        only: Vec<String>,
        /// dependency_update: which update types, comma-separated (patch,minor,major);
        /// default patch,minor (majors when --only names the package).
        #[arg(long)]
        update_types: Option<String>,
        /// dependency_update: fix the advisory in this OSV JSON file (bump to its first
        /// fixed version, no release-age cooldown).
        #[arg(long)]
        osv: Option<std::path::PathBuf>,
        /// What to change (optional for dependency_update: `bump NAME to VERSION`,
        /// `lockfile maintenance`, `fix GHSA-…`).
        #[arg(num_args = 0..)]
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
    /// Cached environments (snapshots) per repo.
    Env {
        #[command(subcommand)]
        action: EnvAction,
    },
    /// Configured `[[schedules]]`: last and next slot.
    Schedules {
        #[command(subcommand)]
        action: SchedulesAction,
    },
}

#[derive(Subcommand)]
enum SchedulesAction {
    /// One line (or JSON object) per schedule.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum EnvAction {
    /// Every snapshot: repo, key, source, age, size, setup time.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Build (or find cached) the environment of a repo, so its next run starts warm.
    Build {
        /// Local path or clone URL, or the name of a [[repos]] entry.
        #[arg(long)]
        repo: String,
        /// Base branch (default: the [[repos]] entry's base, else main).
        #[arg(long)]
        base: Option<String>,
    },
    /// Remove expired snapshots, all but the newest 3 per repo, and interrupted builds.
    Prune {
        /// Remove every snapshot.
        #[arg(long)]
        all: bool,
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
                only,
                update_types,
                osv,
                task,
            } => {
                if blueprint == "dependency_update" {
                    let args = app::deps::DepsArgs {
                        only,
                        update_types,
                        osv,
                    };
                    return app::deps::cmd_run_deps(
                        cfg,
                        &repo,
                        base,
                        json,
                        &task.join(" "),
                        &args,
                        &requester,
                    )
                    .await;
                }
                if !only.is_empty() || update_types.is_some() || osv.is_some() {
                    return app::usage(
                        "--only, --update-types and --osv belong to --blueprint dependency_update",
                    );
                }
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
            Command::Schedules {
                action: SchedulesAction::List { json },
            } => app::schedules::list(&cfg, json),
            Command::Env { action } => match action {
                EnvAction::List { json } => app::env::list(&cfg, json),
                EnvAction::Prune { all } => app::env::prune(&cfg, all),
                EnvAction::Build { repo, base } => {
                    cmd_run(
                        cfg,
                        &repo,
                        base,
                        "env_build",
                        false,
                        "prebuild the environment",
                        &requester,
                    )
                    .await
                }
            },
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
