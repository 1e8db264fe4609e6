//! A repo's Renovate configuration, read so that users moving from Renovate keep their
//! rules. Parsing only; [`RenovateConfig::settings`] answers what the rules say of one
//! update, and `crate::deps::plan` acts on it.
//!
//! Protocol facts (Renovate docs, "Configuration options" and "Upgrade best practices"):
//! the config file is the first of [`CONFIG_FILES`] that exists, else `package.json`'s
//! `renovate` key; files are JSON or JSON5 (comments, trailing commas, unquoted keys);
//! `packageRules` apply in order, each matching rule overriding what earlier ones set;
//! `extends` presets are merged before the file's own settings.
//!
//! What is honoured is listed in [`RenovateConfig`] and [`PackageRule`]; every other key
//! is a warning ("key `foo` is not supported by slipway and is ignored"), never an error.

mod presets;
mod rules;

use std::path::Path;

use serde_json::{Map, Value};

pub use presets::parse_duration_ms;
pub use rules::{DepKind, NameMatcher, PackageRule, version_matches};

use super::{Dependency, UpdateType};

/// Where Renovate looks for its config, in its own order (first found wins).
pub const CONFIG_FILES: &[&str] = &[
    "renovate.json",
    "renovate.json5",
    ".github/renovate.json",
    ".github/renovate.json5",
    ".gitlab/renovate.json",
    ".gitlab/renovate.json5",
    ".renovaterc",
    ".renovaterc.json",
    ".renovaterc.json5",
];

/// A repo's Renovate rules as slipway applies them. `Default` is "no config": enabled, no
/// rules.
#[derive(Debug, Clone)]
pub struct RenovateConfig {
    /// The file it came from, relative to the repo root (`.github/renovate.json5`, or
    /// `package.json` for its `renovate` key); `None`: the repo has none.
    pub file: Option<String>,
    /// `enabled: false` turns every update off.
    pub enabled: bool,
    /// `ignoreDeps`: exact package names never updated.
    pub ignore_deps: Vec<String>,
    /// Top-level `minimumReleaseAge` (or legacy `stabilityDays`), in ms.
    pub minimum_release_age_ms: Option<u64>,
    /// Top-level `automerge`.
    pub automerge: Option<bool>,
    /// Top-level `groupName` / `groupSlug`: everything in one group.
    pub group_name: Option<String>,
    pub group_slug: Option<String>,
    /// `separateMajorMinor` (default true): majors travel apart from minor and patch.
    pub separate_major_minor: bool,
    /// `lockFileMaintenance.enabled`.
    pub lock_file_maintenance: bool,
    /// `packageRules`, presets' first, in order.
    pub package_rules: Vec<PackageRule>,
    /// One sentence per key or value ignored, naming the file.
    pub warnings: Vec<String>,
}

impl Default for RenovateConfig {
    fn default() -> Self {
        Self {
            file: None,
            enabled: true,
            ignore_deps: Vec::new(),
            minimum_release_age_ms: None,
            automerge: None,
            group_name: None,
            group_slug: None,
            separate_major_minor: true,
            lock_file_maintenance: false,
            package_rules: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

/// A config that cannot be read. The message names the file and says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum RenovateError {
    /// Not JSON/JSON5. `line` and `column` are 1-based.
    #[error(
        "{file} is not valid JSON: {detail} at line {line}, column {column}. Fix {file} (Renovate would reject it too) and run again."
    )]
    Syntax {
        file: String,
        detail: String,
        line: usize,
        column: usize,
    },
    /// Valid JSON whose top level is not an object.
    #[error("{file} must hold a JSON object ({{ \"packageRules\": [...] }}), not {found}")]
    NotAnObject { file: String, found: &'static str },
    #[error("{file} cannot be read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
}

/// What the rules say of one dependency's update: the top level, then every matching
/// package rule in order, later ones overriding. One deliberate difference from Renovate's
/// key-by-key merge: a rule that sets `groupName` without `groupSlug` drops the slug an
/// earlier rule set (Renovate would keep `all-minor-patch` from `group:allNonMajor` under
/// the later group's name, so two groups would share a branch).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    /// `false` when `enabled: false` applies or the package is in `ignoreDeps`.
    pub enabled: bool,
    pub automerge: Option<bool>,
    /// `minimumReleaseAge` in ms.
    pub minimum_release_age_ms: Option<u64>,
    /// `groupName`, when one applies.
    pub group_name: Option<String>,
    /// `groupSlug`, when one applies.
    pub group_slug: Option<String>,
    /// `allowedVersions` (a range in the ecosystem's syntax, or `/regex/`).
    pub allowed_versions: Option<String>,
}

/// Reads the repo's Renovate config: the first of [`CONFIG_FILES`] under `root`, else
/// `package.json`'s `renovate` key, else [`RenovateConfig::default`].
///
/// Errors: [`RenovateError::Syntax`] naming the file, line and column when it is not
/// JSON/JSON5; [`RenovateError::Io`] when it cannot be read.
pub fn load(root: &Path) -> Result<RenovateConfig, RenovateError> {
    for file in CONFIG_FILES {
        match std::fs::read_to_string(root.join(file)) {
            Ok(text) => return parse(file, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(RenovateError::Io {
                    file: file.to_string(),
                    source,
                });
            }
        }
    }
    // package.json's `renovate` key (deprecated by Renovate, still read by it).
    if let Ok(text) = std::fs::read_to_string(root.join("package.json"))
        && let Ok(Value::Object(pkg)) = serde_json::from_str::<Value>(&text)
        && let Some(Value::Object(cfg)) = pkg.get("renovate")
    {
        return Ok(from_object("package.json", cfg));
    }
    Ok(RenovateConfig::default())
}

/// Parses one config file's text (JSON or JSON5); `file` is the name used in messages.
pub fn parse(file: &str, text: &str) -> Result<RenovateConfig, RenovateError> {
    let value: Value =
        jsonc_parser::parse_to_serde_value(text, &jsonc_parser::ParseOptions::default()).map_err(
            |e| RenovateError::Syntax {
                file: file.to_string(),
                detail: e.kind().to_string(),
                line: e.line_display(),
                column: e.column_display(),
            },
        )?;
    match &value {
        Value::Object(o) => Ok(from_object(file, o)),
        other => Err(RenovateError::NotAnObject {
            file: file.to_string(),
            found: kind(other),
        }),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Collects warnings for one file while its keys are read.
pub(crate) struct Warn<'a> {
    file: &'a str,
    out: Vec<String>,
}

impl Warn<'_> {
    fn unsupported(&mut self, key: &str) {
        self.out.push(format!(
            "{}: key `{key}` is not supported by slipway and is ignored",
            self.file
        ));
    }

    fn bad(&mut self, key: &str, want: &str, got: &Value) {
        self.out.push(format!(
            "{}: key `{key}` should be {want}, not {}; ignored",
            self.file,
            kind(got)
        ));
    }

    fn note(&mut self, msg: String) {
        self.out.push(format!("{}: {msg}", self.file));
    }

    pub(crate) fn bool(&mut self, key: &str, v: &Value) -> Option<bool> {
        v.as_bool().or_else(|| {
            self.bad(key, "true or false", v);
            None
        })
    }

    pub(crate) fn string(&mut self, key: &str, v: &Value) -> Option<String> {
        v.as_str().map(String::from).or_else(|| {
            self.bad(key, "a string", v);
            None
        })
    }

    /// A string list (a lone string is taken as a list of one, as Renovate does).
    pub(crate) fn strings(&mut self, key: &str, v: &Value) -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|x| {
                    x.as_str().map(String::from).or_else(|| {
                        self.bad(key, "a list of strings", v);
                        None
                    })
                })
                .collect(),
            _ => {
                self.bad(key, "a list of strings", v);
                Vec::new()
            }
        }
    }

    /// `minimumReleaseAge` and friends: a duration string, or `null` to unset.
    pub(crate) fn age(&mut self, key: &str, v: &Value) -> Option<u64> {
        match v {
            Value::Null => None,
            Value::String(s) => parse_duration_ms(s).or_else(|| {
                self.note(format!(
                    "key `{key}` value {s:?} is not a duration slipway reads (write \"3 days\", \"1 week\", \"12 hours\"); ignored"
                ));
                None
            }),
            other => {
                self.bad(key, "a duration string such as \"3 days\"", other);
                None
            }
        }
    }
}

fn from_object(file: &str, o: &Map<String, Value>) -> RenovateConfig {
    let mut w = Warn {
        file,
        out: Vec::new(),
    };
    let mut cfg = RenovateConfig {
        file: Some(file.to_string()),
        ..RenovateConfig::default()
    };
    // Presets first: the file's own settings override them.
    if let Some(v) = o.get("extends") {
        for preset in w.strings("extends", v) {
            presets::apply(&preset, &mut cfg, &mut w);
        }
    }
    for (key, v) in o {
        match key.as_str() {
            "extends" | "$schema" | "description" => {}
            "enabled" => cfg.enabled = w.bool(key, v).unwrap_or(cfg.enabled),
            "ignoreDeps" => cfg.ignore_deps.extend(w.strings(key, v)),
            "minimumReleaseAge" => cfg.minimum_release_age_ms = w.age(key, v),
            "stabilityDays" => match v.as_u64() {
                Some(d) => cfg.minimum_release_age_ms = Some(d * presets::DAY_MS),
                None => w.bad(key, "a number of days", v),
            },
            "automerge" => cfg.automerge = w.bool(key, v).or(cfg.automerge),
            "groupName" => cfg.group_name = w.string(key, v),
            "groupSlug" => cfg.group_slug = w.string(key, v),
            "separateMajorMinor" => {
                cfg.separate_major_minor = w.bool(key, v).unwrap_or(true);
            }
            "schedule" => w.note(
                "key `schedule` is ignored: slipway's `[[schedules]]` in slipway.toml decide when updates run".into(),
            ),
            "timezone" => {}
            "lockFileMaintenance" => lock_file_maintenance(v, &mut cfg, &mut w),
            "packageRules" => match v {
                Value::Array(rules) => {
                    for (i, r) in rules.iter().enumerate() {
                        match r {
                            Value::Object(r) => cfg.package_rules.push(rules::parse(i, r, &mut w)),
                            other => w.bad(&format!("packageRules[{i}]"), "an object", other),
                        }
                    }
                }
                other => w.bad(key, "a list of rules", other),
            },
            _ => w.unsupported(key),
        }
    }
    cfg.warnings = w.out;
    cfg
}

fn lock_file_maintenance(v: &Value, cfg: &mut RenovateConfig, w: &mut Warn) {
    let Value::Object(o) = v else {
        return w.bad("lockFileMaintenance", "an object", v);
    };
    for (key, v) in o {
        let full = format!("lockFileMaintenance.{key}");
        match key.as_str() {
            "enabled" => cfg.lock_file_maintenance = w.bool(&full, v).unwrap_or(false),
            "schedule" => w.note(format!(
                "key `{full}` is ignored: slipway's `[[schedules]]` decide when lockfile maintenance runs"
            )),
            _ => w.unsupported(&full),
        }
    }
}

impl RenovateConfig {
    /// Whether `ignoreDeps` names the package (exact, case-insensitive).
    pub fn is_ignored(&self, name: &str) -> bool {
        self.ignore_deps
            .iter()
            .any(|d| d.eq_ignore_ascii_case(name))
    }

    /// What the rules say of updating `dep` by `update` (`None`: the type is not known yet;
    /// rules with `matchUpdateTypes` then do not match).
    pub fn settings(&self, dep: &Dependency, update: Option<UpdateType>) -> Settings {
        let mut s = Settings {
            enabled: self.enabled && !self.is_ignored(&dep.name),
            automerge: self.automerge,
            minimum_release_age_ms: self.minimum_release_age_ms,
            group_name: self.group_name.clone(),
            group_slug: self.group_slug.clone(),
            allowed_versions: None,
        };
        for rule in self.package_rules.iter().filter(|r| r.matches(dep, update)) {
            if let Some(e) = rule.enabled {
                s.enabled = e && !self.is_ignored(&dep.name) && self.enabled;
            }
            s.automerge = rule.automerge.or(s.automerge);
            if rule.minimum_release_age_ms.is_some() {
                s.minimum_release_age_ms = rule.minimum_release_age_ms;
            }
            if rule.group_name.is_some() {
                s.group_name = rule.group_name.clone();
                s.group_slug = rule.group_slug.clone();
            } else if rule.group_slug.is_some() {
                s.group_slug = rule.group_slug.clone();
            }
            if rule.allowed_versions.is_some() {
                s.allowed_versions = rule.allowed_versions.clone();
            }
        }
        s
    }
}

#[cfg(test)]
mod tests;
