//! The lookup as one call: scan a tree's manifests, read its Renovate rules, ask the
//! registries about each candidate dependency (a few at a time), and plan the groups
//! (`plan::plan`). Used by the `lookup` node (on the run's tree) and by the triggers (on a
//! tree of the base, to split a request into one task per group).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use futures::StreamExt;

use super::plan::{Plan, PlanInput, same_name};
use super::registry::{LookupError, Registries};
use super::{AdvisoryInput, DepsRequest, Ecosystem, Group, PackageInfo, ReleaseNotes};

/// Registry lookups at once.
const PARALLEL: usize = 8;
/// Artifact downloads for release notes at once (each up to 64 MiB in memory).
pub const NOTES_AT_ONCE: usize = 3;

/// What a lookup needs besides the tree: the registries (as setup sees them) and the
/// server's release-age cooldown.
#[derive(Debug, Clone)]
pub struct Lookup {
    pub registries: Registries,
    /// `[policy] min_release_age_days`.
    pub min_release_age_days: u32,
}

/// Why no plan could be made. Each message names the file or registry and what to do.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A manifest or lockfile that does not parse.
    #[error(transparent)]
    Scan(#[from] super::scan::ScanError),
    /// An invalid `renovate.json`.
    #[error(transparent)]
    Rules(#[from] super::renovate::RenovateError),
    /// The tree could not be read (the blocking reader did not finish).
    #[error("the repo's files could not be read: {0}")]
    Read(String),
    /// Every lookup failed because a registry could not be reached: nothing can be proposed
    /// now; the next run or schedule slot tries again.
    #[error(transparent)]
    Registry(LookupError),
}

/// The plan for the tree at `root` and `request`, now.
///
/// Errors: [`PlanError`]. A lookup that fails for one package (not found, a bad answer) is
/// not an error: the plan holds it as skipped, with the registry's message.
pub async fn plan_tree(
    root: &Path,
    request: &DepsRequest,
    lookup: &Lookup,
) -> Result<Plan, PlanError> {
    // Reading the tree is blocking file I/O: off the async workers.
    let dir = root.to_path_buf();
    let read = tokio::task::spawn_blocking(move || {
        super::scan::scan(&dir)
            .map_err(PlanError::from)
            .and_then(|scan| Ok((scan, super::renovate::load(&dir)?)))
    })
    .await
    .map_err(|e| PlanError::Read(e.to_string()))?;
    let (scan, rules) = read?;
    let advised = match &request.advisory {
        Some(AdvisoryInput::Known {
            package, ecosystem, ..
        }) => Some((*ecosystem, package.as_str())),
        _ => None,
    };
    let wanted: BTreeSet<(Ecosystem, String)> = scan
        .deps
        .iter()
        .filter(|d| request.only.is_empty() || request.only.iter().any(|o| same_name(d, o)))
        .filter(|d| advised.is_none_or(|(e, p)| d.ecosystem == e && same_name(d, p)))
        .map(|d| (d.ecosystem, d.name.clone()))
        .collect();
    let results: Vec<((Ecosystem, String), Result<PackageInfo, LookupError>)> =
        futures::stream::iter(wanted)
            .map(|(eco, name)| async move {
                let r = lookup.registries.package(eco, &name).await;
                ((eco, name), r)
            })
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
    let all_unreachable = !results.is_empty()
        && results
            .iter()
            .all(|(_, r)| matches!(r, Err(LookupError::Unreachable { .. })));
    let mut infos: BTreeMap<(Ecosystem, String), Result<PackageInfo, String>> = BTreeMap::new();
    let mut first_error = None;
    for (k, r) in results {
        match r {
            Ok(info) => {
                infos.insert(k, Ok(info));
            }
            Err(e) => {
                infos.insert(k, Err(e.to_string()));
                first_error.get_or_insert(e);
            }
        }
    }
    if all_unreachable && let Some(e) = first_error {
        return Err(PlanError::Registry(e));
    }
    let mut plan = super::plan::plan(&PlanInput {
        deps: &scan.deps,
        infos: &infos,
        rules: &rules,
        request,
        min_release_age_days: lookup.min_release_age_days,
        now_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    });
    let mut warnings = scan.warnings;
    warnings.extend(rules.warnings.iter().cloned());
    warnings.append(&mut plan.warnings);
    plan.warnings = warnings;
    Ok(plan)
}

/// Release notes of every update in `group` (registry failures become "no notes", logged),
/// at most [`NOTES_AT_ONCE`] downloads at a time.
pub async fn release_notes(lookup: &Lookup, group: &Group) -> Vec<ReleaseNotes> {
    let asks: Vec<(Ecosystem, String, String, String)> = group
        .updates
        .iter()
        .map(|u| {
            (
                u.dep.ecosystem,
                u.dep.name.clone(),
                u.dep.current.clone(),
                u.to.clone(),
            )
        })
        .collect();
    let registries = &lookup.registries;
    futures::stream::iter(asks)
        .map(|(eco, name, from, to)| async move {
            let excerpt = match registries.changelog(eco, &name, &from, &to).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(package = name, error = %e, "no release notes");
                    None
                }
            };
            ReleaseNotes {
                name,
                from,
                to,
                excerpt,
            }
        })
        .buffered(NOTES_AT_ONCE)
        .collect()
        .await
}
