//! `slipway doctor`: checks what a run needs and says, for each missing piece, what to do.
//! Prints to stderr, one line per check; the exit status is 0 only when a run can start.

use std::process::ExitCode;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::sandbox::image::Freshness;
use crate::sandbox::settings::SandboxBackendChoice;
use crate::sandbox::{self, NetworkAccess, Sandbox, SandboxPolicy, SandboxSpec};

/// One check's outcome.
enum Status {
    Ok(String),
    /// Works, but should be fixed (the message says how); does not fail `doctor`.
    Warn(String),
    /// Not needed for `slipway run` (e.g. Slack).
    Optional(String),
    Problem(String),
}

/// Runs every check and prints them.
pub async fn run(cfg: &Config) -> ExitCode {
    let mut lines: Vec<(&str, Status)> = Vec::new();
    lines.push((
        "config",
        Status::Ok(format!("loaded; data dir {}", cfg.data_dir.display())),
    ));
    lines.push((
        "git",
        match tokio::process::Command::new("git")
            .arg("--version")
            .output()
            .await
        {
            Ok(o) if o.status.success() => {
                Status::Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
            }
            _ => Status::Problem("git is not installed: apt-get install git".into()),
        },
    ));
    let (status, chosen) = sandbox_status(cfg).await;
    lines.push(("sandbox", status));
    if let Some(image) = image_status(cfg).await {
        lines.push(("image", image));
    }
    if let Some(s) = chosen {
        lines.push(("setup", setup_status(s.as_ref(), cfg).await));
    }
    if let Some(fallback) = bwrap_fallback_status(cfg).await {
        lines.push(("bwrap", fallback));
    }
    lines.push(("llm", llm_status(cfg).await));
    let slack = match (&cfg.slack.app_token, &cfg.slack.bot_token) {
        (Some(_), Some(_)) => slack_status(cfg).await,
        _ => Status::Optional(
            "not configured (set SLACK_APP_TOKEN and SLACK_BOT_TOKEN for `slipway serve`)".into(),
        ),
    };
    lines.push(("slack", slack));
    let github = if cfg.has_credential("GITHUB_TOKEN") || cfg.has_credential("GITHUB_APP_ID") {
        Status::Ok("credentials set".into())
    } else {
        Status::Optional("not configured (the local forge needs none)".into())
    };
    lines.push(("github", github));
    let mut ok = true;
    for (name, status) in &lines {
        let (mark, text) = match status {
            Status::Ok(t) => ("ok  ", t),
            Status::Warn(t) => ("warn", t),
            Status::Optional(t) => ("--  ", t),
            Status::Problem(t) => {
                ok = false;
                ("FAIL", t)
            }
        };
        eprintln!("{mark} {name:<8} {text}");
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The configured backend, proved by use: a real sandbox (a container with the docker
/// backend, namespaces with bwrap) is started under the run policy, runs one command with no
/// network, and is removed. A preflight alone said `ok` on machines where no container could
/// start (Podman without `catatonit`). Also returns the backend when it works, for the
/// setup check.
async fn sandbox_status(cfg: &Config) -> (Status, Option<std::sync::Arc<dyn Sandbox>>) {
    let chosen = sandbox::select(
        cfg.file.sandbox.backend,
        &cfg.file.sandbox,
        cfg.docker_host.as_deref(),
    )
    .await;
    let s = match chosen {
        Ok(s) => s,
        Err(e) => return (Status::Problem(e.to_string()), None),
    };
    if let Err(e) = s.preflight().await {
        return (Status::Problem(e.to_string()), None);
    }
    match smoke(s.as_ref(), cfg, NetworkAccess::None).await {
        Ok(ms) => (
            Status::Ok(format!(
                "{} ({}): a sandbox started, ran a command with no network, and was removed ({ms} ms)",
                s.backend().as_str(),
                s.image()
            )),
            Some(s),
        ),
        Err(e) => {
            // Podman's container init is only a Recommends of its Debian package.
            let hint = if e.contains("container-init binary not found") {
                "; install Podman's init: apt-get install catatonit"
            } else {
                ""
            };
            (
                Status::Problem(format!(
                    "{} ({}) cannot start a sandbox: {e}{hint}",
                    s.backend().as_str(),
                    s.image()
                )),
                None,
            )
        }
    }
}

/// The setup sandbox, proved by use: started under the setup policy, which on either backend
/// means its own network namespace fenced from the host and from cloud metadata (the start
/// fails otherwise), with the CA bundle and the allowlisted variables; then removed.
async fn setup_status(s: &dyn Sandbox, cfg: &Config) -> Status {
    let how = match s.backend() {
        sandbox::Backend::Docker => "the engine's bridge".to_string(),
        sandbox::Backend::Bwrap => match crate::sandbox::which("slirp4netns") {
            Some(p) => format!("slirp4netns ({})", p.display()),
            None => "slirp4netns (missing)".into(),
        },
    };
    let ca = match sandbox::setup_env::CaBundle::of(&cfg.file.sandbox).path() {
        Some(p) => format!("CA bundle {}", p.display()),
        None => "no CA bundle".into(),
    };
    let vars: Vec<&String> = cfg.setup_env.vars().keys().collect();
    match smoke(s, cfg, NetworkAccess::Setup).await {
        Ok(ms) => Status::Ok(format!(
            "network of its own via {how}, fenced from the host and cloud metadata; {ca}; host variables {vars:?} ({ms} ms)"
        )),
        Err(e) => Status::Problem(format!("setup cannot run: {e}")),
    }
}

/// Whether the docker backend's image was built from this slipway's inputs
/// (`deploy/sandbox/`): a stale default image still runs, with older toolchains, so this
/// warns. `None` when the docker backend is not in use or its image is missing (the
/// `sandbox` line says so).
async fn image_status(cfg: &Config) -> Option<Status> {
    if cfg.file.sandbox.backend == SandboxBackendChoice::Bwrap {
        return None;
    }
    let image = &cfg.file.sandbox.image;
    let engine = sandbox::docker::DockerSandbox::connect(cfg.docker_host.as_deref(), image)
        .await
        .ok()?;
    Some(match sandbox::image::freshness(&engine, image).await {
        Ok(None) => return None,
        Ok(Some(Freshness::Current)) => Status::Ok(format!(
            "{image} was built from this slipway's deploy/sandbox inputs"
        )),
        Ok(Some(Freshness::Stale { found })) => Status::Warn(format!(
            "{image} was built from other inputs ({} {}, expected {}), so its toolchains may be older than this slipway expects; rebuild it with `slipway sandbox build`",
            sandbox::image::INPUTS_LABEL,
            found.as_deref().unwrap_or("missing"),
            sandbox::image::inputs_stamp()
        )),
        Ok(Some(Freshness::Foreign)) => {
            Status::Optional(format!("{image} is your own image; not checked"))
        }
        Err(e) => Status::Warn(format!("cannot inspect {image}: {e}")),
    })
}

/// bwrap as the fallback backend, when it is installed and not the one chosen: the same
/// smoke run. Not required, so a failure is reported but does not fail `doctor`.
async fn bwrap_fallback_status(cfg: &Config) -> Option<Status> {
    if cfg.file.sandbox.backend == SandboxBackendChoice::Bwrap {
        return None;
    }
    let bwrap = sandbox::bwrap::BwrapSandbox::detect().ok()?;
    Some(match smoke(&bwrap, cfg, NetworkAccess::None).await {
        Ok(ms) => Status::Ok(format!(
            "fallback: a sandbox started, ran a command with no network, and was removed ({ms} ms)"
        )),
        Err(e) => Status::Optional(format!("fallback unusable: {e}")),
    })
}

/// Starts a sandbox with `network` on empty directories under the data dir, runs `echo` in
/// it and removes it and the directories; the wall time in ms, or what failed.
async fn smoke(s: &dyn Sandbox, cfg: &Config, network: NetworkAccess) -> Result<u64, String> {
    let started = std::time::Instant::now();
    let id = format!("doctor-{}", crate::task::new_id());
    let root = cfg.data_dir.join("doctor").join(&id);
    let (policy, mounts) = match network {
        NetworkAccess::Setup => {
            let setup = SandboxPolicy::for_setup(&cfg.file.sandbox, &cfg.setup_env)
                .map_err(|e| e.to_string())?;
            (setup.policy, setup.mounts)
        }
        NetworkAccess::None => (
            SandboxPolicy::for_run(&cfg.file.sandbox, network),
            Vec::new(),
        ),
    };
    let spec = SandboxSpec {
        workspace: root.join("workspace"),
        git_dir: root.join("git"),
        home: root.join("home"),
        policy,
        run_id: id,
        image: None,
        mounts,
        pool: None,
    };
    let result = async {
        for dir in [&spec.workspace, &spec.home] {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        // The sandbox mounts a run's git dir read-only: give it a real (empty) one.
        let init = tokio::process::Command::new("git")
            .args(["init", "-q", "--bare"])
            .arg(&spec.git_dir)
            .output()
            .await
            .map_err(|e| format!("git init: {e}"))?;
        if !init.status.success() {
            return Err(format!(
                "git init failed: {}",
                String::from_utf8_lossy(&init.stderr).trim()
            ));
        }
        let session = s.start(&spec).await.map_err(|e| e.to_string())?;
        let out = session
            .exec(
                "echo slipway-doctor",
                Duration::from_secs(60),
                &CancellationToken::new(),
            )
            .await;
        let closed = session.close().await;
        let out = out.map_err(|e| e.to_string())?;
        closed.map_err(|e| format!("it ran, but could not be removed: {e}"))?;
        if !out.success() || !out.output.contains("slipway-doctor") {
            return Err(format!(
                "a command in it failed (exit {:?}): {}",
                out.exit_code,
                out.output.trim()
            ));
        }
        Ok(())
    }
    .await;
    if let Err(e) = std::fs::remove_dir_all(&root)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %root.display(), error = %e, "could not remove the doctor's directories");
    }
    result.map(|()| started.elapsed().as_millis() as u64)
}

/// The model endpoint answers HTTP at all (any status): reachability, not credentials.
async fn llm_status(cfg: &Config) -> Status {
    let ep = match &cfg.llm {
        Ok(ep) => ep,
        Err(msg) => return Status::Problem(msg.to_string()),
    };
    crate::tls::ensure_provider();
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => return Status::Problem(format!("cannot build an HTTP client: {e}")),
    };
    match client.get(&ep.base_url).send().await {
        Ok(r) => Status::Ok(
            format!(
                "{:?} {} at {} (HTTP {})",
                ep.provider,
                ep.model,
                ep.base_url,
                r.status().as_u16()
            )
            .to_lowercase(),
        ),
        Err(e) => Status::Problem(format!(
            "{} is unreachable: {e}; check SLIPWAY_LLM_BASE_URL",
            ep.base_url
        )),
    }
}

/// `auth.test` with the bot token, and `apps.connections.open` with the app token (the URL it
/// returns is single-use and simply expires unused).
async fn slack_status(cfg: &Config) -> Status {
    let api = match crate::slack::api::WebApi::new(&cfg.slack) {
        Ok(a) => a,
        Err(e) => return Status::Problem(format!("{e}; {}", e.advice())),
    };
    let me = match api.auth_test().await {
        Ok(me) => me,
        Err(e) => return Status::Problem(format!("{e}; {}", e.advice())),
    };
    match api.open_socket_url().await {
        Ok(_) => Status::Ok(format!(
            "bot <@{}> reachable at {}; Socket Mode open",
            me.user_id, cfg.slack.api_url
        )),
        Err(e) => Status::Problem(format!(
            "the bot token works, but Socket Mode does not: {e}; turn Socket Mode on and give SLACK_APP_TOKEN connections:write"
        )),
    }
}
