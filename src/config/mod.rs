//! Configuration: `slipway.toml` plus environment variables, loaded once into [`Config`]
//! and passed down. Nothing else in the crate reads the process environment: `main` builds an
//! [`Env`] from it, tests build one from pairs (or call [`Config::for_test`]).
//!
//! The file keys and the variables are contracts (`shared/DESIGN.md` §3): every key is
//! optional, unknown keys are rejected with the file and key named, and secrets never come
//! from the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod env;
pub use env::Env;
use env::{github_endpoint, llm_endpoint, slack_endpoint};

use crate::agent::llm::settings::{LlmEndpoint, LlmPrices, NoModel};
use crate::agent::settings::AgentConfig;
use crate::forge::github::settings::{GithubConfig, GithubEndpoint};
use crate::gates::policy::PolicyConfig;
use crate::repos::RepoConfig;
use crate::sandbox::settings::SandboxConfig;
use crate::tools::settings::{McpEnv, McpServerConfig, PrefetchConfig};

/// A configuration problem the operator can fix. Each message names the file, key or
/// variable to change. Maps to exit status 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid value{} for {name}: {expected}", if value.is_empty() { String::new() } else { format!(" {value:?}") })]
    Invalid {
        name: String,
        value: String,
        expected: String,
    },
}

/// Result alias for configuration loading.
pub type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// `[slack]`: who the approvers are.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlackConfig {
    /// Slack user IDs (`U…`) or user-group IDs (`S…`): the approvers. A member of a listed
    /// group is an approver like a listed user, for merges (✅), replies and trusted
    /// context, ❌, 🔁 and ⏪ alike (the actions module's `Settings` holds the rule).
    pub approvers: Vec<String>,
    /// May someone who wrote instructions in a change (its requester, or the author of any
    /// of its revisions) approve its merge?
    pub allow_self_approval: bool,
}

/// The file as written; every key optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    pub slack: SlackConfig,
    pub repos: Vec<RepoConfig>,
    pub policy: PolicyConfig,
    pub sandbox: SandboxConfig,
    pub agent: AgentConfig,
    pub llm: LlmPrices,
    pub prefetch: PrefetchConfig,
    pub mcp_servers: Vec<McpServerConfig>,
    /// (added) `[queue]`: how many runs go at once.
    pub queue: QueueConfig,
    /// (added) `[github]`: CI waiting and API retries for the GitHub forge.
    pub github: GithubConfig,
    /// (added) `[[schedules]]`: cron schedules that start tasks (`crate::schedule`).
    #[serde(default)]
    pub schedules: Vec<crate::schedule::ScheduleConfig>,
    /// (added) `[budgets]`: model spend limits that warn at 80% and stop runs at 100%.
    #[serde(default)]
    pub budgets: crate::budget::BudgetsConfig,
}

/// The whole configuration, loaded once.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: FileConfig,
    /// Where the store, mirrors, worktrees and logs live (`SLIPWAY_DATA_DIR`).
    pub data_dir: PathBuf,
    /// The configured model, or why there is none (a message naming the variable).
    pub llm: std::result::Result<LlmEndpoint, NoModel>,
    /// `DOCKER_HOST`, when set.
    pub docker_host: Option<String>,
    /// Values of the host's secret variables ([`SECRET_VARS`]), for redaction.
    pub secret_values: SecretValues,
    /// Names of credential variables that are set (values never kept here), for `doctor`.
    pub credentials_present: Vec<&'static str>,
    /// PATH, HOME, LANG and the variables `[[mcp_servers]] env` names: all a host-side MCP
    /// server may receive. Its `Debug` prints names only.
    pub mcp_env: McpEnv,
    /// The host values of `[sandbox] setup_env`, checked and captured once here: what the
    /// setup sandbox alone receives (`SandboxPolicy::for_setup`). Its `Debug` prints names.
    pub setup_env: crate::sandbox::setup_env::SetupHostEnv,
    /// Slack endpoints and tokens (`SLACK_API_URL`, `SLACK_APP_TOKEN`, `SLACK_BOT_TOKEN`).
    pub slack: SlackEndpoint,
    /// GitHub endpoint and credentials (`GITHUB_*`).
    pub github: GithubEndpoint,
}

/// `[queue]` (added): bounded concurrency of runs, and how many tasks one person may start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Runs at once (each holds a sandbox).
    pub concurrency: usize,
    /// How long a seen Slack event is remembered for deduplication, seconds.
    pub dedupe_ttl_s: u64,
    /// (added) New tasks one Slack user may start in any 60 minutes, all repos together
    /// (a sliding window counted from the stored tasks, so a restart forgets nothing);
    /// 0 = no limit. Refinements and reruns are not counted (`crate::access`).
    pub max_tasks_per_user_per_hour: u32,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            concurrency: 2,
            dedupe_ttl_s: 24 * 3600,
            max_tasks_per_user_per_hour: 0,
        }
    }
}

/// Where Slack is and the tokens to reach it. Its `Debug` never prints a token.
#[derive(Clone)]
pub struct SlackEndpoint {
    /// Web API base, with a trailing slash (`SLACK_API_URL`; default `https://slack.com/api/`).
    /// `apps.connections.open` goes through it too.
    pub api_url: String,
    /// `xapp-…`, app-level token with `connections:write` (Socket Mode).
    pub app_token: Option<String>,
    /// `xoxb-…`, the bot token for Web API calls.
    pub bot_token: Option<String>,
}

impl Default for SlackEndpoint {
    fn default() -> Self {
        Self {
            api_url: DEFAULT_SLACK_API_URL.into(),
            app_token: None,
            bot_token: None,
        }
    }
}

/// Slack's Web API base (`DESIGN.md` §3, `SLACK_API_URL`).
pub const DEFAULT_SLACK_API_URL: &str = "https://slack.com/api/";

impl std::fmt::Debug for SlackEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackEndpoint")
            .field("api_url", &self.api_url)
            .field("app_token", &self.app_token.as_ref().map(|_| "<redacted>"))
            .field("bot_token", &self.bot_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

pub use crate::redact::SecretValues;

/// Variables whose values are secrets. Their values are redacted wherever slipway writes
/// text (logs, store, reports) and never enter a sandbox.
pub const SECRET_VARS: &[&str] = &[
    "SLACK_APP_TOKEN",
    "SLACK_BOT_TOKEN",
    "GITHUB_TOKEN",
    "GITHUB_APP_PRIVATE_KEY",
    "GITHUB_WEBHOOK_SECRET",
    "SLIPWAY_LLM_API_KEY",
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
];

/// Creates the data directory (`SLIPWAY_DATA_DIR`) and makes it `0700`: it holds the
/// store, the clones, and what sandboxes wrote, and no other local user may enter it.
/// Tightens an existing directory too.
pub fn ensure_data_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

impl Config {
    /// Loads `path` (when given) and the environment. A missing default `slipway.toml` is
    /// fine; a named file that is missing is an error.
    pub fn load(path: Option<&Path>, env: &Env) -> Result<Self> {
        let file = match path {
            Some(p) => Self::read_file(p)?,
            None => {
                let default = Path::new("slipway.toml");
                if default.exists() {
                    Self::read_file(default)?
                } else {
                    FileConfig::default()
                }
            }
        };
        Self::from_parts(file, env)
    }

    fn read_file(path: &Path) -> Result<FileConfig> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim().replace('\n', " "),
        })
    }

    /// Combines a parsed file with the environment, validating the policy.
    pub fn from_parts(mut file: FileConfig, env: &Env) -> Result<Self> {
        crate::gates::policy::validate_server("slipway.toml", &file.policy).map_err(|e| {
            ConfigError::Invalid {
                name: e.key.clone(),
                value: String::new(),
                expected: e.message.clone(),
            }
        })?;
        // Each schedule names a configured repo (its cron, zone and arguments were checked
        // as the file parsed).
        crate::schedule::validate(&file.schedules, &file.repos).map_err(|e| {
            ConfigError::Invalid {
                name: "[[schedules]]".into(),
                value: String::new(),
                expected: e.to_string(),
            }
        })?;
        file.budgets.validate().map_err(|e| ConfigError::Invalid {
            name: format!("[budgets] {}", e.key),
            value: e.value.to_string(),
            expected: "a number ≥ 0 (0 = no limit)".into(),
        })?;
        if let Some(choice) = env.get("SLIPWAY_SANDBOX") {
            file.sandbox.backend =
                choice
                    .parse()
                    .map_err(|e: crate::sandbox::settings::UnknownBackend| {
                        ConfigError::Invalid {
                            name: "SLIPWAY_SANDBOX".into(),
                            value: e.0,
                            expected: "one of auto, docker, bwrap".into(),
                        }
                    })?;
        }
        // Absolute from here on: git runs in other directories, and engines need absolute
        // bind-mount sources.
        let data_dir = std::path::absolute(env.get("SLIPWAY_DATA_DIR").unwrap_or("./.slipway"))
            .map_err(|e| ConfigError::Invalid {
                name: "SLIPWAY_DATA_DIR".into(),
                value: env.get("SLIPWAY_DATA_DIR").unwrap_or("./.slipway").into(),
                expected: format!("a usable path ({e})"),
            })?;
        if file.prefetch.k < crate::tools::builtins::NAMES.len() {
            return Err(ConfigError::Invalid {
                name: "[prefetch] k".into(),
                value: file.prefetch.k.to_string(),
                expected: format!(
                    "at least {}: every run needs {}",
                    crate::tools::builtins::NAMES.len(),
                    crate::tools::builtins::NAMES.join(", ")
                ),
            });
        }
        let llm = llm_endpoint(env)?;
        let secret_values = SecretValues(
            SECRET_VARS
                .iter()
                .filter_map(|v| env.get(v))
                .filter(|v| v.len() >= 8)
                .map(str::to_owned)
                .collect(),
        );
        let credentials_present = SECRET_VARS
            .iter()
            .chain(["GITHUB_APP_ID"].iter())
            .copied()
            .filter(|v| env.get(v).is_some())
            .collect();
        let mcp_env = McpEnv(
            ["PATH", "HOME", "LANG"]
                .iter()
                .map(|s| s.to_string())
                .chain(file.mcp_servers.iter().flat_map(|m| m.env.iter().cloned()))
                .filter_map(|k| env.get(&k).map(|v| (k.clone(), v.to_string())))
                .collect(),
        );
        let setup_env = crate::sandbox::setup_env::SetupHostEnv::capture(
            &file.sandbox.setup_env,
            |k| env.get(k).map(str::to_owned),
            &secret_values.0,
        )
        .map_err(|e| ConfigError::Invalid {
            name: "[sandbox] setup_env".into(),
            value: String::new(),
            expected: e.to_string(),
        })?;
        if let crate::sandbox::setup_env::CaBundle::Configured(path) =
            crate::sandbox::setup_env::CaBundle::of(&file.sandbox)
            && !(path.is_absolute() && path.is_file())
        {
            return Err(ConfigError::Invalid {
                name: "[sandbox] ca_bundle".into(),
                value: path.display().to_string(),
                expected: "\"\" (the host's system bundle), \"none\", or the absolute path of an existing PEM file".into(),
            });
        }
        Ok(Self {
            file,
            data_dir,
            llm,
            docker_host: env.get("DOCKER_HOST").map(str::to_owned),
            secret_values,
            credentials_present,
            mcp_env,
            setup_env,
            slack: slack_endpoint(env)?,
            github: github_endpoint(env)?,
        })
    }

    /// A configuration for tests: data under `data_dir`, the given model endpoint, fast
    /// retries. Reads nothing from the process environment.
    pub fn for_test(data_dir: &Path, llm: Option<LlmEndpoint>) -> Self {
        let mut file = FileConfig::default();
        file.llm.retry_base_ms = 10;
        file.sandbox.command_timeout_s = 120;
        Self {
            file,
            data_dir: data_dir.to_path_buf(),
            llm: llm.ok_or_else(|| NoModel("no model configured".into())),
            docker_host: None,
            secret_values: SecretValues::default(),
            credentials_present: Vec::new(),
            mcp_env: McpEnv::default(),
            setup_env: Default::default(),
            slack: SlackEndpoint::default(),
            github: GithubEndpoint::default(),
        }
    }

    /// The per-command timeout.
    pub fn command_timeout(&self) -> Duration {
        Duration::from_secs(self.file.sandbox.command_timeout_s)
    }

    /// Whether credential variable `name` is set.
    pub fn has_credential(&self, name: &str) -> bool {
        self.credentials_present.contains(&name)
    }

    /// What the dependency lookups use: the registries named by the variables the setup
    /// sandbox receives (`[sandbox] setup_env`), so lookups and bumps see the same
    /// registries, and `[policy] min_release_age_days`.
    pub fn deps_lookup(&self) -> crate::deps::lookup::Lookup {
        let vars = self.setup_env.vars();
        crate::deps::lookup::Lookup {
            registries: crate::deps::registry::Registries::from_env(|k| vars.get(k).cloned()),
            min_release_age_days: self.file.policy.min_release_age_days,
        }
    }

    /// Replaces every known secret value in `text` with `<redacted>`.
    pub fn redact(&self, text: &str) -> String {
        self.secret_values.redact(text)
    }
}

impl<'a> From<&'a Config> for crate::tools::RegistrySources<'a> {
    fn from(cfg: &'a Config) -> Self {
        Self {
            catalogs: &cfg.file.prefetch.catalogs,
            servers: &cfg.file.mcp_servers,
            env: &cfg.mcp_env,
            secrets: &cfg.secret_values.0,
        }
    }
}

impl<'a> From<&'a Config> for crate::forge::ForgeSettings<'a> {
    fn from(cfg: &'a Config) -> Self {
        Self {
            endpoint: &cfg.github,
            github: &cfg.file.github,
        }
    }
}

impl<'a> From<&'a std::sync::Arc<Config>> for crate::tools::RegistrySources<'a> {
    fn from(cfg: &'a std::sync::Arc<Config>) -> Self {
        Self::from(cfg.as_ref())
    }
}

impl<'a> From<&'a std::sync::Arc<Config>> for crate::forge::ForgeSettings<'a> {
    fn from(cfg: &'a std::sync::Arc<Config>) -> Self {
        Self::from(cfg.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repos::ForgeKind;

    #[test]
    fn the_data_dir_is_private_to_slipway() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        ensure_data_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        ensure_data_dir(&tmp.path().join("fresh")).unwrap();
        let mode = std::fs::metadata(tmp.path().join("fresh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::from_parts(FileConfig::default(), &Env::default()).unwrap();
        assert_eq!(c.file.prefetch.k, 15);
        assert_eq!(c.file.sandbox.image, "slipway-sandbox:local");
        assert_eq!(c.file.agent.max_steps, 40);
        assert!(c.data_dir.is_absolute() && c.data_dir.ends_with(".slipway"));
        assert!(c.llm.unwrap_err().contains("SLIPWAY_LLM_PROVIDER"));
    }

    #[test]
    fn the_contract_example_file_parses() {
        let text = r#"
[slack]
approvers = ["U0BOB"]
allow_self_approval = false
[[repos]]
name = "acme/calc"
channels = ["C0DEV"]
forge = "github"
url = "/srv/git/calc.git"
base = "main"
merge_method = "squash"
[policy]
forbidden_paths = [".github/workflows/**", "**/migrations/**", "**/.env*"]
review_paths = ["**/auth/**", "**/payments/**"]
max_files = 15
max_lines = 500
auto_merge = []
[sandbox]
backend = "auto"
image = "slipway-sandbox:local"
memory_mb = 4096
cpus = 2
command_timeout_s = 600
[agent]
max_steps = 40
max_tokens = 400000
max_minutes = 30
[llm]
input_usd_per_mtok = 3.0
output_usd_per_mtok = 15.0
[prefetch]
k = 15
catalogs = ["prompts/tools/*.json"]
[[mcp_servers]]
name = "github"
command = ["github-mcp-server", "stdio"]
host_side = false
"#;
        let f: FileConfig = toml::from_str(text).unwrap();
        assert_eq!(f.repos[0].forge, ForgeKind::Github);
        assert_eq!(f.sandbox.cpus, 2.0);
        assert_eq!(f.mcp_servers[0].command.len(), 2);
    }

    #[test]
    fn an_unknown_key_is_named() {
        let err = toml::from_str::<FileConfig>("[agent]\nmax_stepz = 3\n").unwrap_err();
        assert!(err.to_string().contains("max_stepz"), "{err}");
    }

    #[test]
    fn the_vendor_key_is_a_fallback_and_never_printed() {
        let env = Env::from_pairs([
            ("SLIPWAY_LLM_PROVIDER", "anthropic"),
            ("SLIPWAY_LLM_MODEL", "m"),
            ("ANTHROPIC_API_KEY", "sk-ant-secret-value"),
        ]);
        let c = Config::from_parts(FileConfig::default(), &env).unwrap();
        let llm = c.llm.as_ref().unwrap();
        assert_eq!(llm.api_key_var, "ANTHROPIC_API_KEY");
        assert_eq!(llm.base_url, "https://api.anthropic.com");
        assert!(!format!("{c:?}").contains("sk-ant-secret-value"));
        assert_eq!(c.redact("key=sk-ant-secret-value"), "key=<redacted>");
    }

    #[test]
    fn a_bad_sandbox_choice_names_the_variable() {
        let env = Env::from_pairs([("SLIPWAY_SANDBOX", "vm")]);
        let err = Config::from_parts(FileConfig::default(), &env).unwrap_err();
        assert!(err.to_string().contains("SLIPWAY_SANDBOX"));
    }

    /// Errors are escaped for Slack before egress redacts them: a secret holding `&`, `<` or
    /// `>` must be found in its escaped spelling too.
    #[test]
    fn a_secret_escaped_for_slack_is_still_redacted() {
        let secrets = SecretValues(vec!["hunter&2<x>".into()]);
        let said =
            crate::slack::copy::run_failed("clone of https://u:hunter&2<x>@git.example failed");
        let posted = secrets.redact(&said);
        assert!(!posted.contains("hunter"), "{posted}");
    }

    #[test]
    fn setup_env_refuses_every_secret_variable_and_names_it() {
        for var in SECRET_VARS {
            assert!(
                crate::sandbox::setup_env::check_name(var).is_err(),
                "{var} accepted"
            );
        }
        let mut file = FileConfig::default();
        file.sandbox.setup_env.push("NPM_TOKEN".into());
        let e = Config::from_parts(file, &Env::from_pairs([("NPM_TOKEN", "x")])).unwrap_err();
        assert!(e.to_string().contains("NPM_TOKEN"), "{e}");
        assert!(e.to_string().contains("[sandbox] setup_env"), "{e}");
    }
}
