//! `slipway doctor`: checks what a run needs and says, for each missing piece, what to do.
//! Prints to stderr, one line per check; the exit status is 0 only when a run can start.

use std::process::ExitCode;
use std::time::Duration;

use crate::config::Config;
use crate::sandbox;

/// One check's outcome.
enum Status {
    Ok(String),
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
    lines.push(("sandbox", sandbox_status(cfg).await));
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

async fn sandbox_status(cfg: &Config) -> Status {
    match sandbox::select(
        cfg.file.sandbox.backend,
        &cfg.file.sandbox,
        cfg.docker_host.as_deref(),
    )
    .await
    {
        Ok(s) => match s.preflight().await {
            Ok(()) => Status::Ok(format!("{} ({})", s.backend().as_str(), s.image())),
            Err(e) => Status::Problem(e.to_string()),
        },
        Err(e) => Status::Problem(e.to_string()),
    }
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
