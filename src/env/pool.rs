//! The warm pool (`[sandbox] warm = N`): N pre-started offline sandboxes per recently used
//! repo, so a mention finds its sandbox already running.
//!
//! A slot is a directory `<data>/pool/<repo>/<slot_id>/{ws,git,home}` plus a started
//! container whose binds are those directories and the repo's environment (snapshot mounts,
//! variables, image: the offline [`SandboxSpec`] of the repo's last run). The container
//! carries `slipway.pool=<repo>` besides the backend's usual labels (`slipway.managed`,
//! `slipway.owner`), so a dead slipway's slots are reaped like any other sandbox.
//!
//! The workspace node [`WarmPool::take`]s a slot and clones into its `ws`/`git` directories
//! (`Workspaces::prepare_at`: the clone fills the existing directories, so the container sees
//! it); the sandbox node adopts the container when the run's offline spec equals the slot's
//! ([`Slot::fits`]), else closes it and starts normally. After a run, [`WarmPool::refill`]
//! tops the repo back up in the background.
//!
//! Owns the `<data>/pool` directory and the slots' containers; it must not touch runs'
//! directories (a taken slot belongs to its run, whose `RunDirs` remove it). Only the docker
//! backend is pooled: bwrap starts a sandbox per command, so it has nothing to pre-start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::sandbox::{
    Backend, Mount, NetworkAccess, Sandbox, SandboxError, SandboxPolicy, SandboxSpec, Session,
};

/// Why a slot could not be made. Never fatal to a run: the pool logs it and the run starts
/// its sandbox the usual way.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("warm pool I/O failed at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("starting a warm sandbox: {0}")]
    Sandbox(#[from] SandboxError),
}

/// What makes two offline sandboxes of a repo the same, apart from their run's own
/// directories: the policy (environment variables included), the image and the extra mounts
/// (the environment snapshot's). A slot is used only when it equals the run's.
#[derive(Debug, Clone, PartialEq)]
pub struct Fingerprint {
    pub policy: SandboxPolicy,
    /// `None`: the backend's default image.
    pub image: Option<String>,
    pub mounts: Vec<Mount>,
}

impl Fingerprint {
    /// The fingerprint of `spec`.
    pub fn of(spec: &SandboxSpec) -> Self {
        Self {
            policy: spec.policy.clone(),
            image: spec.image.clone(),
            mounts: spec.mounts.clone(),
        }
    }
}

/// One pre-started sandbox, taken by a run.
pub struct Slot {
    /// `<data>/pool/<repo>/<id>`; removed with the run's directories.
    pub root: PathBuf,
    /// The container, started and idle.
    pub session: Box<dyn Session>,
    fingerprint: Fingerprint,
    /// The (device, inode) of each mount's host path when the container was started: a
    /// snapshot pruned and rebuilt at the same path has the same spec, but the container
    /// still binds the old, deleted directory.
    mount_ids: Vec<Option<(u64, u64)>>,
    /// When the container was started.
    pub started: Instant,
}

impl Slot {
    /// The work tree's directory (bound at `/workspace`).
    pub fn ws(&self) -> PathBuf {
        self.root.join("ws")
    }

    /// The git directory (bound read-only at `/workspace/.git`).
    pub fn git(&self) -> PathBuf {
        self.root.join("git")
    }

    /// The sandbox home (bound at `/home/sandbox`).
    pub fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    /// Whether the slot's container is the sandbox `spec` asks for (same policy, image and
    /// environment mounts; the directories are the slot's own by construction).
    /// Each host path must also still be the very directory the container binds.
    pub fn fits(&self, spec: &SandboxSpec) -> bool {
        self.fingerprint == Fingerprint::of(spec) && self.mount_ids == mount_ids(&spec.mounts)
    }
}

/// The (device, inode) of each mount's host path; `None` for one that is gone.
fn mount_ids(mounts: &[Mount]) -> Vec<Option<(u64, u64)>> {
    use std::os::unix::fs::MetadataExt;
    mounts
        .iter()
        .map(|m| {
            std::fs::metadata(&m.host)
                .ok()
                .map(|md| (md.dev(), md.ino()))
        })
        .collect()
}

/// A repo's pool: the spec its slots are started from and the idle slots.
struct RepoPool {
    template: Fingerprint,
    /// Last time a run of the repo asked for a slot or finished.
    last_used: Instant,
    idle: Vec<Slot>,
    /// Slots being started now (counted towards N).
    starting: usize,
}

#[derive(Default)]
struct State {
    repos: BTreeMap<String, RepoPool>,
    /// Refills in flight (any repo); [`WarmPool::settled`] waits for 0.
    refilling: usize,
    closed: bool,
}

struct Inner {
    /// `<data>/pool`.
    root: PathBuf,
    /// Slots kept per repo; 0 keeps none.
    size: usize,
    /// A repo with no run for this long is dropped from the pool; a slot older than this
    /// is not used (the env TTL, `[sandbox] env_ttl_h`).
    keep: Duration,
    sandbox: Arc<dyn Sandbox>,
    state: Mutex<State>,
    /// Woken when a refill ends.
    changed: tokio::sync::Notify,
}

/// The pool, owned by the [`crate::run::Runner`]; cheap to clone. Off (every call a no-op)
/// when `size` is 0 or the backend is not docker. Call [`WarmPool::shutdown`] before the
/// process ends; a pool dropped without it leaves its containers to the sessions' own
/// background removal and, failing that, to the next start's orphan reaping, and its
/// directories to the next [`WarmPool::new`].
#[derive(Clone)]
pub struct WarmPool {
    inner: Arc<Inner>,
}

/// A repo name as one path component (`acme/calc` → `acme_calc`).
fn repo_dir(repo: &str) -> String {
    repo.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl WarmPool {
    /// A pool of `size` slots per repo under `data_dir/pool`, with repos and slots kept for
    /// `keep`. Leftover slot directories of an earlier process are removed (their containers
    /// are reaped by the docker backend, their owner being dead).
    pub fn new(data_dir: &Path, size: u32, keep: Duration, sandbox: Arc<dyn Sandbox>) -> Self {
        let root = data_dir.join("pool");
        let size = if sandbox.backend() == Backend::Docker {
            size as usize
        } else {
            if size > 0 {
                tracing::info!(
                    "[sandbox] warm is ignored with the bwrap backend: it has nothing to pre-start"
                );
            }
            0
        };
        crate::sweep::remove_tree(&root);
        Self {
            inner: Arc::new(Inner {
                root,
                size,
                keep,
                sandbox,
                state: Mutex::new(State::default()),
                changed: tokio::sync::Notify::new(),
            }),
        }
    }

    /// A pool that keeps nothing (tests and `slipway run` that want none).
    pub fn off(data_dir: &Path, sandbox: Arc<dyn Sandbox>) -> Self {
        Self::new(data_dir, 0, Duration::ZERO, sandbox)
    }

    /// Whether the pool keeps any slot.
    pub fn enabled(&self) -> bool {
        self.inner.size > 0
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going with it.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An idle slot of `repo`, if one is ready and younger than the keep time. The caller
    /// owns it from here (its directories and container).
    pub fn take(&self, repo: &str) -> Option<Slot> {
        if !self.enabled() {
            return None;
        }
        let keep = self.inner.keep;
        let (slot, stale) = {
            let mut st = self.state();
            let pool = st.repos.get_mut(repo)?;
            pool.last_used = Instant::now();
            let (fresh, stale): (Vec<Slot>, Vec<Slot>) = std::mem::take(&mut pool.idle)
                .into_iter()
                .partition(|s| s.started.elapsed() < keep);
            pool.idle = fresh;
            (pool.idle.pop(), stale)
        };
        for s in stale {
            self.discard(s);
        }
        slot
    }

    /// Closes a slot's container and removes its directories, in the background.
    pub fn discard(&self, slot: Slot) {
        tokio::spawn(async move { close_slot(slot).await });
    }

    /// Records that a run of `repo` used (or would use) the offline sandbox `spec`: the
    /// template its slots are started from. Slots of another template are discarded.
    pub fn remember(&self, repo: &str, spec: &SandboxSpec) {
        // Fail closed: the pool only ever holds offline sandboxes.
        if !self.enabled() || spec.policy.network != NetworkAccess::None {
            return;
        }
        let template = Fingerprint::of(spec);
        let dropped = {
            let mut st = self.state();
            let pool = st
                .repos
                .entry(repo.to_string())
                .or_insert_with(|| RepoPool {
                    template: template.clone(),
                    last_used: Instant::now(),
                    idle: Vec::new(),
                    starting: 0,
                });
            pool.last_used = Instant::now();
            if pool.template == template {
                Vec::new()
            } else {
                pool.template = template;
                std::mem::take(&mut pool.idle)
            }
        };
        for s in dropped {
            self.discard(s);
        }
    }

    /// Tops `repo`'s pool up to N in the background, and forgets repos unused for longer
    /// than the keep time (closing their slots). A no-op for a repo never
    /// [`remember`](Self::remember)ed.
    pub fn refill(&self, repo: &str) {
        if !self.enabled() {
            return;
        }
        let keep = self.inner.keep;
        let (todo, expired) = {
            let mut st = self.state();
            if st.closed {
                return;
            }
            let old: Vec<String> = st
                .repos
                .iter()
                .filter(|(_, p)| p.last_used.elapsed() >= keep)
                .map(|(r, _)| r.clone())
                .collect();
            let expired: Vec<Slot> = old
                .iter()
                .filter_map(|r| st.repos.remove(r))
                .flat_map(|p| p.idle)
                .collect();
            let todo = match st.repos.get_mut(repo) {
                Some(pool) => {
                    let n = self
                        .inner
                        .size
                        .saturating_sub(pool.idle.len() + pool.starting);
                    pool.starting += n;
                    (0..n).map(|_| pool.template.clone()).collect::<Vec<_>>()
                }
                None => Vec::new(),
            };
            st.refilling += todo.len();
            (todo, expired)
        };
        for s in expired {
            self.discard(s);
        }
        for template in todo {
            let (me, repo) = (self.clone(), repo.to_string());
            tokio::spawn(async move {
                let made = me.start_slot(&repo, &template).await;
                let leftover = {
                    let mut st = me.state();
                    st.refilling -= 1;
                    let closed = st.closed;
                    match (made, st.repos.get_mut(&repo)) {
                        (Ok(slot), Some(pool)) if !closed && pool.template == template => {
                            pool.starting -= 1;
                            pool.idle.push(slot);
                            None
                        }
                        (Ok(slot), pool) => {
                            if let Some(p) = pool {
                                p.starting -= 1;
                            }
                            Some(slot)
                        }
                        (Err(e), pool) => {
                            if let Some(p) = pool {
                                p.starting -= 1;
                            }
                            tracing::warn!(repo, error = %e, "could not start a warm sandbox");
                            None
                        }
                    }
                };
                if let Some(slot) = leftover {
                    close_slot(slot).await;
                }
                me.inner.changed.notify_waiters();
            });
        }
    }

    /// Makes the slot directories and starts the container.
    async fn start_slot(&self, repo: &str, template: &Fingerprint) -> Result<Slot, PoolError> {
        let id = crate::task::new_id();
        let root = self.inner.root.join(repo_dir(repo)).join(&id);
        for sub in ["ws", "git", "home"] {
            let d = root.join(sub);
            std::fs::create_dir_all(&d).map_err(|source| PoolError::Io { path: d, source })?;
        }
        let spec = SandboxSpec {
            workspace: root.join("ws"),
            git_dir: root.join("git"),
            home: root.join("home"),
            policy: template.policy.clone(),
            run_id: format!("pool-{id}"),
            image: template.image.clone(),
            mounts: template.mounts.clone(),
            pool: Some(repo.to_string()),
        };
        let ids = mount_ids(&spec.mounts);
        match self.inner.sandbox.start(&spec).await {
            Ok(session) => Ok(Slot {
                root,
                session,
                fingerprint: template.clone(),
                mount_ids: ids,
                started: Instant::now(),
            }),
            Err(e) => {
                crate::sweep::remove_tree(&root);
                Err(e.into())
            }
        }
    }

    /// Idle slots of `repo` now.
    pub fn idle(&self, repo: &str) -> usize {
        self.state().repos.get(repo).map_or(0, |p| p.idle.len())
    }

    /// Waits until no refill is in flight.
    pub async fn settled(&self) {
        loop {
            let notified = self.inner.changed.notified();
            if self.state().refilling == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Empties the pool for good: waits for refills in flight, then closes every slot and
    /// removes `<data>/pool`. Later refills do nothing.
    pub async fn shutdown(&self) {
        self.state().closed = true;
        self.settled().await;
        let slots: Vec<Slot> = {
            let mut st = self.state();
            std::mem::take(&mut st.repos)
                .into_values()
                .flat_map(|p| p.idle)
                .collect()
        };
        for s in slots {
            close_slot(s).await;
        }
        crate::sweep::remove_tree(&self.inner.root);
    }
}

async fn close_slot(slot: Slot) {
    if let Err(e) = slot.session.close().await {
        tracing::warn!(error = %e, "could not close a warm sandbox");
    }
    crate::sweep::remove_tree(&slot.root);
}
