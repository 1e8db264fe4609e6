//! `[budgets]`: model spend limits per task (all revisions), per requester per UTC day and
//! per repo per UTC day, and the one decision over them, [`assess`]: at 80% of a limit the
//! thread is warned, at 100% the running agent stops at its next step (the run halts with
//! reason `budget`) and a new task over a daily limit is refused before it is queued.
//!
//! A leaf: the section, the limit names and pure functions over spend figures. The ledger
//! lives in the store (`store/spend.rs`), the stop in the agent loop (`agent::SpendGuard`,
//! implemented by the run), the refusal in `crate::access`'s callers.
#![warn(missing_docs)]

use serde::{Deserialize, Serialize};

/// Share of a limit at which the thread is warned (once per run per limit).
pub const WARN_AT: f64 = 0.8;

/// `[budgets]` (DESIGN §5): 0 = no limit. USD is priced with `[llm]`'s per-million-token
/// prices; tokens are input plus output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetsConfig {
    /// USD one task may spend, all its revisions together.
    pub task_usd: f64,
    /// USD one requester's tasks may spend per UTC day.
    pub requester_daily_usd: f64,
    /// USD one repo's tasks may spend per UTC day.
    pub repo_daily_usd: f64,
    /// Tokens one task may spend, all its revisions together.
    pub task_tokens: u64,
}

/// A `[budgets]` value that cannot be a limit.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("[budgets] {key} is {value}: use a number of US dollars ≥ 0 (0 = no limit)")]
pub struct InvalidBudget {
    /// The key, e.g. `task_usd`.
    pub key: &'static str,
    /// The value as written.
    pub value: f64,
}

impl BudgetsConfig {
    /// Rejects negative, NaN and infinite USD limits, naming the key.
    pub fn validate(&self) -> Result<(), InvalidBudget> {
        for (key, value) in [
            ("task_usd", self.task_usd),
            ("requester_daily_usd", self.requester_daily_usd),
            ("repo_daily_usd", self.repo_daily_usd),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(InvalidBudget { key, value });
            }
        }
        Ok(())
    }
}

/// One limit of `[budgets]`; the serde spelling is its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// `task_usd`.
    TaskUsd,
    /// `task_tokens`.
    TaskTokens,
    /// `requester_daily_usd`.
    RequesterDailyUsd,
    /// `repo_daily_usd`.
    RepoDailyUsd,
}

impl Limit {
    /// The `[budgets]` key.
    pub fn key(self) -> &'static str {
        match self {
            Self::TaskUsd => "task_usd",
            Self::TaskTokens => "task_tokens",
            Self::RequesterDailyUsd => "requester_daily_usd",
            Self::RepoDailyUsd => "repo_daily_usd",
        }
    }

    /// A figure of this limit: `$0.0135` for USD, `3300 tokens` for tokens.
    pub fn figure(self, v: f64) -> String {
        match self {
            Self::TaskTokens => format!("{} tokens", v.round() as u64),
            _ => usd(v),
        }
    }
}

/// USD for people: cents from a dollar up, else four decimals (`$5.12`, `$0.0045`).
pub fn usd(v: f64) -> String {
    if v >= 1.0 || v == 0.0 {
        format!("${v:.2}")
    } else {
        format!("${v:.4}")
    }
}

/// Spend of one counter: USD (from `[llm]` prices) and tokens (input + output).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Spend {
    /// US dollars.
    pub usd: f64,
    /// Input plus output tokens.
    pub tokens: u64,
}

/// The counters a budget decision reads, for one UTC day.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SpendTotals {
    /// The task, all revisions, all days.
    pub task: Spend,
    /// The requester, that day, all tasks.
    pub requester_day: Spend,
    /// The repo, that day, all tasks.
    pub repo_day: Spend,
}

/// One set limit and what was spent against it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// Which limit.
    pub limit: Limit,
    /// Spent so far (USD, or tokens for `task_tokens`).
    pub spent: f64,
    /// The limit (same unit).
    pub max: f64,
}

/// Where a reading stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Under 80%.
    Under,
    /// At or over 80%, under 100%: warn.
    Warn,
    /// At or over 100%: stop.
    Over,
}

impl Reading {
    /// Under, warn (≥ [`WARN_AT`]) or over (≥ 100%).
    pub fn level(&self) -> Level {
        if self.spent >= self.max {
            Level::Over
        } else if self.spent >= self.max * WARN_AT {
            Level::Warn
        } else {
            Level::Under
        }
    }
}

impl std::fmt::Display for Reading {
    /// `budget: task_usd $0.0135 of $0.0100`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "budget: {} {} of {}",
            self.limit.key(),
            self.limit.figure(self.spent),
            self.limit.figure(self.max)
        )
    }
}

/// Every set limit (non-zero) with its spend, in the order task_usd, task_tokens,
/// requester_daily_usd, repo_daily_usd.
pub fn assess(cfg: &BudgetsConfig, s: &SpendTotals) -> Vec<Reading> {
    [
        (Limit::TaskUsd, s.task.usd, cfg.task_usd),
        (
            Limit::TaskTokens,
            s.task.tokens as f64,
            cfg.task_tokens as f64,
        ),
        (
            Limit::RequesterDailyUsd,
            s.requester_day.usd,
            cfg.requester_daily_usd,
        ),
        (Limit::RepoDailyUsd, s.repo_day.usd, cfg.repo_daily_usd),
    ]
    .into_iter()
    .filter(|(_, _, max)| *max > 0.0)
    .map(|(limit, spent, max)| Reading { limit, spent, max })
    .collect()
}

/// The first limit at or over 100%: the agent stops.
pub fn over(cfg: &BudgetsConfig, s: &SpendTotals) -> Option<Reading> {
    assess(cfg, s)
        .into_iter()
        .find(|r| r.level() == Level::Over)
}

/// The first daily limit (requester, then repo) at or over 100%: a new task is refused.
pub fn daily_over(cfg: &BudgetsConfig, s: &SpendTotals) -> Option<Reading> {
    assess(cfg, s).into_iter().find(|r| {
        matches!(r.limit, Limit::RequesterDailyUsd | Limit::RepoDailyUsd)
            && r.level() == Level::Over
    })
}

/// Who spent a daily limit's reading: the repo for `repo_daily_usd`, else the requester.
pub fn spender<'a>(r: &Reading, requester: &'a str, repo: &'a str) -> &'a str {
    match r.limit {
        Limit::RepoDailyUsd => repo,
        _ => requester,
    }
}

/// Why a new task is refused for a spent daily limit, with the figure and who can raise
/// it: `requester_daily_usd is $5.00 and U0ALICE spent $5.12 today; an operator raises
/// [budgets] requester_daily_usd in slipway.toml`. `who` is [`spender`].
pub fn refusal_text(r: &Reading, who: &str) -> String {
    format!(
        "{key} is {max} and {who} spent {spent} today; an operator raises [budgets] {key} in slipway.toml",
        key = r.limit.key(),
        max = r.limit.figure(r.max),
        spent = r.limit.figure(r.spent),
    )
}

/// The UTC date of `ms` (unix ms) as `YYYY-MM-DD`: the daily counters' day.
pub fn utc_day(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spent(task_usd: f64, tokens: u64, req: f64, repo: f64) -> SpendTotals {
        SpendTotals {
            task: Spend {
                usd: task_usd,
                tokens,
            },
            requester_day: Spend {
                usd: req,
                tokens: 0,
            },
            repo_day: Spend {
                usd: repo,
                tokens: 0,
            },
        }
    }

    #[test]
    fn eighty_percent_warns_and_a_hundred_stops() {
        let cfg = BudgetsConfig {
            task_usd: 1.0,
            task_tokens: 1000,
            ..Default::default()
        };
        let levels = |s: SpendTotals| -> Vec<(Limit, Level)> {
            assess(&cfg, &s)
                .iter()
                .map(|r| (r.limit, r.level()))
                .collect()
        };
        assert_eq!(
            levels(spent(0.79, 799, 0.0, 0.0)),
            vec![
                (Limit::TaskUsd, Level::Under),
                (Limit::TaskTokens, Level::Under)
            ]
        );
        assert_eq!(
            levels(spent(0.8, 999, 0.0, 0.0)),
            vec![
                (Limit::TaskUsd, Level::Warn),
                (Limit::TaskTokens, Level::Warn)
            ]
        );
        assert_eq!(
            over(&cfg, &spent(0.99, 1000, 0.0, 0.0)).map(|r| r.limit),
            Some(Limit::TaskTokens)
        );
        assert_eq!(
            over(&cfg, &spent(1.0, 0, 0.0, 0.0)).map(|r| r.limit),
            Some(Limit::TaskUsd)
        );
        assert_eq!(over(&cfg, &spent(0.5, 10, 0.0, 0.0)), None);
    }

    #[test]
    fn zero_means_no_limit_and_daily_limits_refuse_new_tasks() {
        let none = BudgetsConfig::default();
        assert!(assess(&none, &spent(1e9, u64::MAX, 1e9, 1e9)).is_empty());
        let cfg = BudgetsConfig {
            task_usd: 0.1,
            requester_daily_usd: 5.0,
            repo_daily_usd: 20.0,
            ..Default::default()
        };
        // A task over its own limit does not stop a new task.
        assert_eq!(daily_over(&cfg, &spent(0.2, 0, 1.0, 1.0)), None);
        let r = daily_over(&cfg, &spent(0.0, 0, 5.12, 21.0)).unwrap();
        assert_eq!(r.limit, Limit::RequesterDailyUsd);
        assert_eq!(r.to_string(), "budget: requester_daily_usd $5.12 of $5.00");
        let r = daily_over(&cfg, &spent(0.0, 0, 1.0, 20.0)).unwrap();
        assert_eq!(r.limit, Limit::RepoDailyUsd);
    }

    #[test]
    fn validation_names_the_key() {
        let bad = BudgetsConfig {
            requester_daily_usd: -1.0,
            ..Default::default()
        };
        let e = bad.validate().unwrap_err();
        assert_eq!(e.key, "requester_daily_usd");
        assert!(e.to_string().contains("[budgets] requester_daily_usd"));
        let nan = BudgetsConfig {
            task_usd: f64::NAN,
            ..Default::default()
        };
        assert_eq!(nan.validate().unwrap_err().key, "task_usd");
        assert!(BudgetsConfig::default().validate().is_ok());
        let parsed: BudgetsConfig = toml::from_str("task_usd = 2.5\ntask_tokens = 100000").unwrap();
        assert_eq!(parsed.task_tokens, 100_000);
        assert!(toml::from_str::<BudgetsConfig>("task_dollars = 1.0").is_err());
    }

    #[test]
    fn slipway_toml_takes_the_section_and_rejects_a_negative_limit_by_name() {
        use crate::config::{Config, Env, FileConfig};
        let env = Env::from_pairs([("SLIPWAY_DATA_DIR", "/tmp/slipway-budget-test")]);
        let file: FileConfig =
            toml::from_str("[budgets]\ntask_usd = 2.5\ntask_tokens = 9").unwrap();
        let cfg = Config::from_parts(file, &env).unwrap();
        assert_eq!(cfg.file.budgets.task_usd, 2.5);
        assert_eq!(cfg.file.budgets.task_tokens, 9);
        let file: FileConfig = toml::from_str("[budgets]\nrepo_daily_usd = -3.0").unwrap();
        let e = Config::from_parts(file, &env).unwrap_err().to_string();
        assert!(e.contains("[budgets] repo_daily_usd"), "{e}");
    }

    #[test]
    fn the_day_is_the_utc_date() {
        // 2026-11-30T23:59:59.999Z and one ms later.
        assert_eq!(utc_day(1_796_083_199_999), "2026-11-30");
        assert_eq!(utc_day(1_796_083_200_000), "2026-12-01");
    }
}
