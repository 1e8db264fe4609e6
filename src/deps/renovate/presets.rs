//! `extends` presets and duration strings.
//!
//! Presets are never fetched. The few that only set what slipway honours are expanded
//! here, from their definitions in Renovate's docs ("Default presets", "Group presets"):
//! `:automergeAll`/`:automergeMajor` (automerge everything), `:automergeMinor` (minor and
//! patch), `:automergeStableNonMajor` (minor and patch of versions from 1.0),
//! `:automergePatch`, `:automergeDisabled`, `:disableRenovate`,
//! `:enableRenovate`, `group:allNonMajor`, `:maintainLockFilesWeekly` /
//! `:maintainLockFilesMonthly` (lockfile maintenance on), and
//! `security:minimumReleaseAgeNpm` (3 days for npm). Presets that change nothing slipway
//! does (commit style, dashboards, PR limits, `config:recommended`'s monorepo groups) are
//! accepted silently; `schedule:*` and every other preset get a warning.

use super::{PackageRule, RenovateConfig, Warn};
use crate::deps::{Ecosystem, UpdateType};

pub(crate) const DAY_MS: u64 = 86_400_000;

/// Presets accepted without a word: they govern what slipway does not do (or decides
/// itself), or, like `config:recommended`, group only monorepos whose lists live in
/// Renovate.
const SILENT: &[&str] = &[
    "config:recommended",
    "config:base",
    "config:best-practices",
    "config:js-app",
    "config:js-lib",
    ":dependencyDashboard",
    ":disableDependencyDashboard",
    ":semanticCommits",
    ":semanticCommitsDisabled",
    ":semanticPrefixFixDepsChoreOthers",
    ":semanticPrefixChore",
    ":semanticPrefixFix",
    "group:monorepos",
    "group:recommended",
    ":ignoreModulesAndTests",
    ":ignoreUnstable",
    ":prHourlyLimitNone",
    ":prHourlyLimit1",
    ":prHourlyLimit2",
    ":prHourlyLimit4",
    ":prConcurrentLimitNone",
    ":prConcurrentLimit10",
    ":prConcurrentLimit20",
    ":prImmediately",
    ":prNotPending",
    ":rebaseStalePrs",
    ":separateMajorReleases",
    ":separatePatchReleases",
    ":combinePatchMinorReleases",
    ":updateNotScheduled",
    ":enableVulnerabilityAlerts",
    ":enableVulnerabilityAlertsWithLabel",
    ":gitSignOff",
    ":label",
    ":labels",
    ":preserveSemverRanges",
    ":widenPeerDependencies",
    "helpers:pinGitHubActionDigests",
    "helpers:pinGitHubActionDigestsToSemver",
    "replacements:all",
    "workarounds:all",
    "mergeConfidence:all-badges",
    "mergeConfidence:age-confidence-badges",
    "abandonments:recommended",
    "security:openssf-scorecard",
    "docker:enableMajor",
    "docker:pinDigests",
];

pub(super) fn apply(preset: &str, cfg: &mut RenovateConfig, w: &mut Warn) {
    // `:label(foo)` and other parameterised forms: the name before the arguments.
    let name = preset.split('(').next().unwrap_or(preset);
    let rule = |types: &[UpdateType], f: &dyn Fn(&mut PackageRule)| {
        let mut r = PackageRule {
            update_types: (!types.is_empty()).then(|| types.to_vec()),
            ..PackageRule::default()
        };
        f(&mut r);
        r
    };
    use UpdateType::*;
    match name {
        ":automergeAll" | ":automergeMajor" => cfg.automerge = Some(true),
        ":automergeDisabled" => cfg.automerge = Some(false),
        ":automergeMinor" => cfg
            .package_rules
            .push(rule(&[Minor, Patch], &|r| r.automerge = Some(true))),
        ":automergeStableNonMajor" => cfg.package_rules.push(rule(&[Minor, Patch], &|r| {
            r.current_version = Some("!/^0/".into());
            r.automerge = Some(true);
        })),
        ":automergePatch" => cfg
            .package_rules
            .push(rule(&[Patch], &|r| r.automerge = Some(true))),
        ":disableRenovate" => cfg.enabled = false,
        ":enableRenovate" => cfg.enabled = true,
        ":maintainLockFilesWeekly" | ":maintainLockFilesMonthly" => cfg.lock_file_maintenance = true,
        "group:allNonMajor" => cfg.package_rules.push(rule(&[Minor, Patch], &|r| {
            r.group_name = Some("all non-major dependencies".into());
            r.group_slug = Some("all-minor-patch".into());
        })),
        "security:minimumReleaseAgeNpm" => cfg.package_rules.push(rule(&[], &|r| {
            r.datasources = Some(vec![Ecosystem::Npm]);
            r.minimum_release_age_ms = Some(3 * DAY_MS);
        })),
        n if SILENT.contains(&n) => {}
        n if n.starts_with("schedule:") => w.note(format!(
            "extends `{preset}` is ignored: slipway's `[[schedules]]` in slipway.toml decide when updates run"
        )),
        _ => w.note(format!(
            "extends `{preset}` is a preset slipway does not fetch; its rules are not applied (copy the ones you need into this file)"
        )),
    }
}

/// Parses a Renovate duration (`"3 days"`, `"1 week"`, `"12 hours"`, `"0 days"`,
/// `"30 minutes"`, `"2h"`, `"1 month"` = 30 days, `"1 year"` = 365 days) to ms. `None`
/// when it is not one.
pub fn parse_duration_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (num, unit) = (s[..split].trim(), s[split..].trim().to_ascii_lowercase());
    let n: f64 = num.parse().ok()?;
    let unit_ms: f64 = match unit.as_str() {
        "ms" | "millisecond" | "milliseconds" => 1.0,
        "s" | "sec" | "secs" | "second" | "seconds" => 1e3,
        "m" | "min" | "mins" | "minute" | "minutes" => 60e3,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600e3,
        "d" | "day" | "days" => 86_400e3,
        "w" | "week" | "weeks" => 7.0 * 86_400e3,
        "mo" | "month" | "months" => 30.0 * 86_400e3,
        "y" | "year" | "years" => 365.0 * 86_400e3,
        _ => return None,
    };
    let ms = n * unit_ms;
    (ms.is_finite() && ms >= 0.0).then_some(ms.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("3 days"), Some(3 * DAY_MS));
        assert_eq!(parse_duration_ms("1 week"), Some(7 * DAY_MS));
        assert_eq!(parse_duration_ms("12 hours"), Some(DAY_MS / 2));
        assert_eq!(parse_duration_ms("0 days"), Some(0));
        assert_eq!(parse_duration_ms("2h"), Some(7_200_000));
        assert_eq!(parse_duration_ms("1 day"), Some(DAY_MS));
        assert_eq!(parse_duration_ms("soon"), None);
        assert_eq!(parse_duration_ms("3 fortnights"), None);
        assert_eq!(parse_duration_ms("days"), None);
    }
}
