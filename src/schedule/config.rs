//! The `[[schedules]]` section: its shape as written ([`ScheduleSpec`]), checked into a
//! [`ScheduleConfig`] while the file is parsed (so a bad cron, time zone, blueprint or
//! argument stops `slipway` at start with the line named by the TOML parser), and
//! [`validate`], the checks that need the rest of the file (`[[repos]]`, duplicates).

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::deps::DepsRequest;
use crate::repos::RepoConfig;
use crate::task::BlueprintId;

/// Hex characters of a schedule id.
const ID_LEN: usize = 12;

/// One `[[schedules]]` entry as written (`DESIGN.md` §5). `timezone` defaults to `UTC`
/// and `args` to none; the other keys are required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Five fields: minute hour day-of-month month day-of-week (`0 6 * * MON`). Day of
    /// month and day of week combine with OR, as in Vixie cron.
    pub cron: String,
    /// IANA time zone the expression is read in (`Europe/Berlin`); default `UTC`.
    #[serde(default = "utc")]
    pub timezone: String,
    /// `owner/name` of a `[[repos]]` entry.
    pub repo: String,
    /// A blueprint name (`dependency_update`, `checks_only`, `code_change`, `env_build`).
    pub blueprint: String,
    /// The blueprint's arguments: `dependency_update` takes the CLI's flags
    /// (`--update-types patch,minor`, `--only NAME`, …), `code_change` the instruction's
    /// words; the others take none.
    #[serde(default)]
    pub args: Vec<String>,
    /// Slack channel ID (`C…`) where each firing starts a new thread.
    pub channel: String,
}

fn utc() -> String {
    "UTC".into()
}

/// A `[[schedules]]` entry that cannot work. Names the entry (its 1-based position when
/// known, and its repo), the key, the value and what to write instead. Maps to exit 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {value:?} for `{field}` of [[schedules]] {at}: {problem}; {fix}", at = self.at())]
pub struct ScheduleConfigError {
    /// 1-based position among `[[schedules]]`, when known (not while TOML parses one
    /// entry: the parser's message names its line instead).
    pub index: Option<usize>,
    /// The entry's `repo`.
    pub repo: Box<str>,
    /// The key at fault.
    pub field: &'static str,
    /// Its value as written.
    pub value: Box<str>,
    /// What is wrong.
    pub problem: Box<str>,
    /// What to write.
    pub fix: Box<str>,
}

impl ScheduleConfigError {
    fn at(&self) -> String {
        match self.index {
            Some(i) => format!("entry {i} (repo {:?})", self.repo),
            None => format!("entry for repo {:?}", self.repo),
        }
    }
}

/// A checked `[[schedules]]` entry: its expression parsed, zone known, blueprint and
/// arguments valid. Serialises back to its [`ScheduleSpec`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "ScheduleSpec", into = "ScheduleSpec")]
pub struct ScheduleConfig {
    spec: ScheduleSpec,
    id: String,
    cron: croner::Cron,
    zone: chrono_tz::Tz,
    blueprint: BlueprintId,
    /// Set for `dependency_update`: the parsed `args`.
    deps: Option<DepsRequest>,
}

impl From<ScheduleConfig> for ScheduleSpec {
    fn from(s: ScheduleConfig) -> Self {
        s.spec
    }
}

impl TryFrom<ScheduleSpec> for ScheduleConfig {
    type Error = ScheduleConfigError;
    fn try_from(spec: ScheduleSpec) -> Result<Self, Self::Error> {
        Self::new(spec)
    }
}

impl ScheduleConfig {
    /// Checks `spec`. Errors: a cron expression that is not five valid fields, an unknown
    /// time zone, an unknown blueprint, arguments the blueprint does not take, an empty
    /// repo, a channel that is not a channel ID.
    pub fn new(spec: ScheduleSpec) -> Result<Self, ScheduleConfigError> {
        let err =
            |field: &'static str, value: &str, problem: String, fix: &str| ScheduleConfigError {
                index: None,
                repo: spec.repo.as_str().into(),
                field,
                value: value.into(),
                problem: problem.into(),
                fix: fix.into(),
            };
        if spec.repo.trim().is_empty() {
            return Err(err(
                "repo",
                &spec.repo,
                "it is empty".into(),
                "write the `name` of a [[repos]] entry, e.g. \"acme/api\"",
            ));
        }
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Disallowed)
            .year(croner::parser::Year::Disallowed)
            .build()
            .parse(&spec.cron)
            .map_err(|e| {
                err(
                    "cron",
                    &spec.cron,
                    format!("not a five-field cron expression ({e})"),
                    "write minute hour day-of-month month day-of-week, e.g. \"0 6 * * MON\" (06:00 every Monday)",
                )
            })?;
        let zone = chrono_tz::Tz::from_str(&spec.timezone).map_err(|_| {
            err(
                "timezone",
                &spec.timezone,
                "not an IANA time zone name".into(),
                "write a name such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\"",
            )
        })?;
        let blueprint = BlueprintId::from_str(&spec.blueprint).map_err(|_| {
            err(
                "blueprint",
                &spec.blueprint,
                "not a blueprint".into(),
                &format!("write one of {}", BlueprintId::known()),
            )
        })?;
        let args = spec.args.join(" ");
        let deps = match blueprint {
            BlueprintId::DependencyUpdate => {
                Some(crate::deps::parse_args(&spec.args).map_err(|problem| {
                    err(
                        "args",
                        &args,
                        problem,
                        "write e.g. [\"--update-types\", \"patch,minor\"] or [\"--only\", \"lodash\"]",
                    )
                })?)
            }
            BlueprintId::CodeChange if args.trim().is_empty() => {
                return Err(err(
                    "args",
                    &args,
                    "code_change needs an instruction".into(),
                    "write its words, e.g. [\"Update the copyright year in LICENSE\"]",
                ));
            }
            BlueprintId::CodeChange => None,
            BlueprintId::ChecksOnly | BlueprintId::EnvBuild if !spec.args.is_empty() => {
                return Err(err(
                    "args",
                    &args,
                    format!("{blueprint} takes no arguments"),
                    "remove `args`",
                ));
            }
            BlueprintId::ChecksOnly | BlueprintId::EnvBuild => None,
        };
        let channel_ok = !spec.channel.is_empty()
            && spec.channel.chars().all(|c| c.is_ascii_alphanumeric())
            && spec.channel.starts_with(|c: char| c.is_ascii_uppercase());
        if !channel_ok {
            return Err(err(
                "channel",
                &spec.channel,
                "not a Slack channel ID".into(),
                "write the channel's ID, e.g. \"C0DEPS\" (in Slack: channel details, at the bottom), not its #name",
            ));
        }
        let id = schedule_id(&spec);
        Ok(Self {
            spec,
            id,
            cron,
            zone,
            blueprint,
            deps,
        })
    }

    /// The entry as written.
    pub fn spec(&self) -> &ScheduleSpec {
        &self.spec
    }

    /// Its stable id: the first 12 hex characters of the SHA-256 of its fields (cron,
    /// timezone, repo, blueprint, args, channel). Editing any field makes a new schedule,
    /// which starts with no slot fired and fires nothing before it was first seen.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its blueprint.
    pub fn blueprint(&self) -> BlueprintId {
        self.blueprint
    }

    /// The zone its expression is read in.
    pub fn zone(&self) -> chrono_tz::Tz {
        self.zone
    }

    /// The parsed expression.
    pub(crate) fn cron(&self) -> &croner::Cron {
        &self.cron
    }

    /// For `dependency_update`: its `args` parsed (`task.deps` of each task it starts).
    pub fn deps(&self) -> Option<&DepsRequest> {
        self.deps.as_ref()
    }

    /// The instruction of the tasks it starts: `code_change`'s words, else a line naming
    /// the blueprint and its arguments.
    pub fn instruction(&self) -> String {
        let args = self.spec.args.join(" ");
        match self.blueprint {
            BlueprintId::CodeChange => args,
            b if args.is_empty() => format!("Scheduled {b}"),
            b => format!("Scheduled {b} ({args})"),
        }
    }
}

/// The id of `spec` ([`ScheduleConfig::id`]). The fields are hashed as a JSON array, so
/// no two different specs share an encoding.
fn schedule_id(spec: &ScheduleSpec) -> String {
    let canonical = serde_json::json!([
        spec.cron,
        spec.timezone,
        spec.repo,
        spec.blueprint,
        spec.args,
        spec.channel
    ]);
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    hex::encode(digest)[..ID_LEN].to_string()
}

/// The checks that need the rest of the file (`schedules` and `repos` are its
/// `[[schedules]]` and `[[repos]]`): every schedule's `repo` is a `[[repos]]` entry (and,
/// for a repo with `restrict_to_channels`, its `channel` one of the repo's), and no two
/// entries are identical (they would share an id and fire once). Errors name the entry
/// by its 1-based position.
pub fn validate(
    schedules: &[ScheduleConfig],
    repos: &[RepoConfig],
) -> Result<(), ScheduleConfigError> {
    for (i, s) in schedules.iter().enumerate() {
        let at =
            |field: &'static str, value: &str, problem: String, fix: String| ScheduleConfigError {
                index: Some(i + 1),
                repo: s.spec.repo.as_str().into(),
                field,
                value: value.into(),
                problem: problem.into(),
                fix: fix.into(),
            };
        let repo = repos.iter().find(|r| r.name == s.spec.repo);
        if let Some(r) = repo
            && r.restrict_to_channels
            && !r.channels.contains(&s.spec.channel)
        {
            return Err(at(
                "channel",
                &s.spec.channel,
                format!(
                    "{} has restrict_to_channels = true and this channel is not among its `channels`",
                    r.name
                ),
                format!(
                    "write one of {}, or add {:?} to the repo's `channels`",
                    r.channels.join(", "),
                    s.spec.channel
                ),
            ));
        }
        if repo.is_none() {
            let known: Vec<&str> = repos.iter().map(|r| r.name.as_str()).collect();
            let fix = if known.is_empty() {
                format!(
                    "add a [[repos]] entry with name = {:?}, or remove the schedule",
                    s.spec.repo
                )
            } else {
                format!(
                    "write one of {}, or add a [[repos]] entry with name = {:?}",
                    known.join(", "),
                    s.spec.repo
                )
            };
            return Err(at(
                "repo",
                &s.spec.repo,
                "not a configured repo".into(),
                fix,
            ));
        }
        if let Some(j) = schedules[..i].iter().position(|o| o.id == s.id) {
            return Err(at(
                "cron",
                &s.spec.cron,
                format!("the entry is identical to entry {}", j + 1),
                "remove one of them".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
