//! `bump` (`dependency_update`): the group's updates applied with each ecosystem's own tool
//! (`deps::bump`), then committed on their own, before any agent.
//!
//! The tools need the registries, so they run in a sandbox with the setup network (fenced:
//! no host, no metadata; `[sandbox] setup_env` and the CA bundle; no secrets) over the run's
//! work tree **at the base commit**: the node first resets the tree to the base, so no
//! earlier run's commit, and nothing an agent wrote, is ever in front of a networked tool.
//! Only the ecosystems' manifests and lockfiles are kept from what the tools wrote; the
//! rest is discarded. The changed files are copied into the exported base tree as well, so
//! the `setup` node that follows installs the bumped versions.

use std::path::Path;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::json;

use crate::deps::bump::{self, Step};
use crate::report::{Gate, GateName, GateStatus};
use crate::run::{FlowError, NodeName, Outcome, RunCtx, RunError};
use crate::sandbox::{SandboxError, SandboxPolicy, SandboxSpec};
use crate::tools::beneath::Root;

/// The bump node; skipped outside `dependency_update`.
pub struct Bump;

/// Output lines of a failed bump command quoted in the thread.
const TAIL_LINES: usize = 6;

#[async_trait]
impl crate::run::Node for Bump {
    fn name(&self) -> NodeName {
        NodeName::Bump
    }

    fn skip(&self, cx: &RunCtx<'_>) -> bool {
        cx.deps.as_ref().is_none_or(|d| d.group.is_none())
    }

    async fn run(&self, cx: &mut RunCtx<'_>) -> Result<Outcome, FlowError> {
        let svc = cx.svc;
        let updates = cx
            .deps
            .as_ref()
            .map(|d| d.updates().to_vec())
            .unwrap_or_default();
        let dirs = cx
            .dirs
            .as_mut()
            .ok_or_else(|| RunError::Internal("no work tree before bump".into()))?;
        svc.workspaces.reset_to_base(&mut dirs.wt).await?;
        let wt = dirs.wt.clone();

        let mut steps = Vec::new();
        for u in &updates {
            // Whether the manifest's requirement already admits the new version decides
            // between a lockfile-only update and a requirement change.
            let in_range = u
                .dep
                .requirement
                .as_deref()
                .and_then(|r| crate::deps::version::satisfies(u.dep.ecosystem, r, &u.to));
            match bump::steps(u, in_range) {
                Ok(s) => steps.extend(s),
                Err(e) => return Ok(halt(cx, e.to_string())),
            }
        }
        let mut runs = Vec::new();
        for step in steps {
            match step {
                Step::Repin {
                    file,
                    name,
                    from,
                    to,
                } => {
                    if let Err(why) = repin_file(&wt.path, &file, &name, &from, &to) {
                        return Ok(halt(cx, why));
                    }
                }
                Step::Run { dir, command } => runs.push((dir, command)),
            }
        }
        if !runs.is_empty() {
            let cfg = &svc.cfg.file.sandbox;
            let setup =
                SandboxPolicy::for_setup(cfg, &svc.cfg.setup_env).map_err(RunError::from)?;
            let home = cx.home();
            std::fs::create_dir_all(&home)
                .map_err(|e| RunError::RunDir(format!("creating {}: {e}", home.display())))?;
            // Cargo takes a crates.io mirror only from a config file (`deps::registry`).
            let vars = &setup.policy.env;
            crate::deps::registry::write_cargo_home_config(&home.join(".cargo"), |k| {
                vars.get(k).cloned()
            })
            .map_err(|e| RunError::RunDir(format!("writing the cargo config: {e}")))?;
            let spec = SandboxSpec {
                workspace: wt.path.clone(),
                git_dir: wt.git_dir.clone(),
                home,
                policy: setup.policy,
                run_id: cx.run_id.clone(),
                image: None,
                mounts: setup.mounts,
                pool: None,
            };
            let session = match svc.sandbox.start(&spec).await {
                Ok(s) => s,
                Err(SandboxError::Cancelled) => return Err(FlowError::Cancelled),
                Err(e) => return Ok(halt(cx, format!("the bump sandbox did not start: {e}"))),
            };
            let deadline = Instant::now() + Duration::from_secs(cfg.setup_timeout_s);
            let mut failed = None;
            for (dir, command) in &runs {
                let line = if dir == "." {
                    command.clone()
                } else {
                    match shlex::try_quote(dir) {
                        Ok(d) => format!("cd {d} && {command}"),
                        Err(_) => {
                            let _ = session.close().await;
                            return Ok(halt(cx, format!("{dir:?} cannot be passed to a shell")));
                        }
                    }
                };
                let left = deadline.saturating_duration_since(Instant::now());
                let out = match session.exec(&line, left, &cx.cancel).await {
                    Ok(o) => o,
                    Err(e) => {
                        let _ = session.close().await;
                        return Err(RunError::from(e).into());
                    }
                };
                cx.tracker
                    .log
                    .transcript(
                        "bump",
                        out.duration_ms,
                        json!({"command": line, "output": out.render(cfg.output_cap_bytes)}),
                    )
                    .await?;
                if !out.success() {
                    failed = Some((line, tail(&out.output)));
                    break;
                }
            }
            if let Err(e) = session.close().await {
                tracing::warn!(error = %e, "could not close the bump sandbox");
            }
            if let Some((line, tail)) = failed {
                let names = cx.deps.as_ref().map(|d| d.named()).unwrap_or_default();
                return Ok(halt(cx, format!("`{line}` failed for {names}: {tail}")));
            }
        }

        // Keep only what the ecosystems' tools may change; discard the rest.
        let dirty = svc.workspaces.dirty_paths(&wt).await?;
        let (kept, other): (Vec<String>, Vec<String>) =
            dirty.into_iter().partition(|p| allowed(p, &updates));
        svc.workspaces.discard(&wt, &other).await?;
        if kept.is_empty() {
            let names = cx.deps.as_ref().map(|d| d.named()).unwrap_or_default();
            return Ok(halt(
                cx,
                format!(
                    "the ecosystem's tool changed no manifest or lockfile for {names}: it may already be at that version"
                ),
            ));
        }
        // Setup installs from the base tree: give it the bumped manifests and lockfiles.
        // Both sides are opened beneath their roots through no link: a tool (or a package's
        // build code run by it) that leaves a link behind is refused, never followed on the
        // host, and so is a link committed in the base.
        let base_tree = cx.base_tree();
        if !base_tree.is_dir() {
            return Err(RunError::Internal(
                "the base tree is missing before bump: the workspace node exports it".into(),
            )
            .into());
        }
        for p in &kept {
            if let Err(e) = copy_beneath(&wt.path, &base_tree, p) {
                return Ok(halt(
                    cx,
                    format!(
                        "the bump left {p} in a state slipway will not carry to setup ({e}); only regular files are kept"
                    ),
                ));
            }
        }
        let title = cx.task.title();
        let body = updates
            .iter()
            .map(|u| {
                format!(
                    "- {} {} → {} ({}, {})",
                    u.dep.name,
                    u.dep.current,
                    u.to,
                    u.update_type.as_str(),
                    u.dep.ecosystem
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        let rev = cx.task.current().number.to_string();
        let trailers = [
            ("Requested-by", cx.task.requester.as_str()),
            ("Slipway-Task", cx.task.id.as_str()),
            ("Slipway-Run", cx.run_id.as_str()),
            ("Slipway-Revision", rev.as_str()),
        ];
        let commit = svc.workspaces.commit(&wt, &title, &body, &trailers).await?;
        cx.commit = commit.clone();
        if let Some(d) = cx.deps.as_mut() {
            d.bump_commit = commit;
        }
        Ok(Outcome::ok(format!(
            "{} ({})",
            cx.deps.as_ref().map(|d| d.named()).unwrap_or_default(),
            kept.join(", ")
        )))
    }
}

/// Ends a `dependency_update` run before its checks: the `dependencies` gate fails with
/// `detail`, which names the package and what to do, and the thread says it.
pub(crate) fn halt(cx: &mut RunCtx<'_>, detail: String) -> Outcome {
    cx.extra_gates.push(Gate::new(
        GateName::Dependencies,
        GateStatus::Fail,
        detail.clone(),
    ));
    Outcome::stopped_with(detail.clone(), RunError::Deps { detail })
}

/// True for a manifest or lockfile an update's ecosystem tool may change, in that
/// dependency's manifest directory (a requirements file is its own manifest).
fn allowed(path: &str, updates: &[crate::deps::Update]) -> bool {
    let (dir, name) = match path.rsplit_once('/') {
        Some((d, n)) => (d, n),
        None => ("", path),
    };
    updates.iter().any(|u| {
        let mdir = u.dep.manifest.rsplit_once('/').map_or("", |(d, _)| d);
        path == u.dep.manifest
            || u.dep.lockfile.as_deref() == Some(path)
            || (mdir == dir && bump::touched_files(u.dep.ecosystem).contains(&name))
    })
}

/// Reads `rel` beneath `root` through no link (`tools::beneath`): a regular file only.
fn read_beneath(root: &Path, rel: &str) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = Root::open(root)?.open_read(Path::new(rel))?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Writes `bytes` to `rel` beneath `root` through no link, creating missing directories,
/// as the agent's `write_file` does (`tools::files::write`: a regular file only).
fn write_beneath(root: &Path, rel: &str, bytes: &[u8]) -> std::io::Result<()> {
    let file = Root::open(root)?.create(Path::new(rel))?.file;
    crate::tools::files::write(file, rel, bytes).map_err(std::io::Error::other)
}

/// Copies `rel` from the work tree to the base tree, both beneath their roots.
fn copy_beneath(wt: &Path, base: &Path, rel: &str) -> std::io::Result<()> {
    write_beneath(base, rel, &read_beneath(wt, rel)?)
}

/// Rewrites the pin in `root/file`, read and written beneath the root through no link (the
/// tree is the repo's, and the write happens on the host).
fn repin_file(root: &Path, file: &str, name: &str, from: &str, to: &str) -> Result<(), String> {
    let bytes = read_beneath(root, file).map_err(|e| format!("{file}: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| format!("{file} is not UTF-8 text"))?;
    let Some(new) = bump::repin(&text, name, from, to) else {
        return Err(format!("{file} has no `{name}=={from}` pin to update"));
    };
    write_beneath(root, file, new.as_bytes()).map_err(|e| format!("{file}: {e}"))
}

/// The last lines of a command's output, joined for one line of Slack.
fn tail(output: &str) -> String {
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    crate::task::truncate_chars(&lines[start..].join(" ⏎ "), 600)
}
