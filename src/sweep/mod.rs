//! Leftovers of dead slipway processes: who owns a per-run directory or a container, and
//! the startup sweep that removes what a `kill -9` left behind.
//!
//! Directories. A process that makes a per-run directory under the data dir first takes a
//! [`Claim`] named like it (`<data>/claims/<name>`): a lock file held with `flock(2)` for as
//! long as the directory is in use. The kernel drops the lock when the process dies, however
//! it dies, so a held lock means a live owner, whatever its pid, pid namespace (slipway as
//! PID 1 in a container) or a reused pid say. Every other slipway process sharing the data
//! dir sees the same lock. [`sweep_data_dir`] removes each swept entry whose claim is not
//! held (or was never taken: a leftover of a slipway that took none).
//!
//! Containers carry the owner's [`process::ProcessId`] instead (engines are shared by
//! processes with other data dirs); the docker backend judges them with it.
//!
//! Owns `<data>/claims`; removes entries only in the per-run places listed in [`SWEPT`],
//! never mirrors, snapshots or the store.

pub mod process;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

/// Where the claims live, under the data dir.
const CLAIMS: &str = "claims";

/// Per-run places swept at startup: a directory under the data dir, and the prefix an
/// entry's name must have there (`""`: every entry). An entry's claim is its name without
/// an `.index` extension (`envs/.bases/<run>.index` goes with `<run>`).
pub const SWEPT: &[(&str, &str)] = &[
    ("worktrees", ""),
    ("gitdirs", ""),
    ("homes", ""),
    ("envs/.bases", ""),
    ("envs/.building", ""),
    ("mirrors", ".tmp-"),
];

/// A held claim on a per-run name; dropping it removes the claim file and releases the lock.
/// Drop it only after the directories it covers are gone.
#[derive(Debug)]
pub struct Claim {
    path: PathBuf,
    _file: File,
}

impl Claim {
    /// Claims `name` in `data_dir` for this process. The lock is taken on a fresh file that
    /// is then renamed into place, so no other process ever sees the claim unlocked.
    ///
    /// Errors: the claims directory or file cannot be made, or the name is already claimed
    /// by a live process (`WouldBlock`).
    pub fn take(data_dir: &Path, name: &str) -> io::Result<Self> {
        let dir = data_dir.join(CLAIMS);
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(name);
        if is_held(&path) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let fresh = dir.join(format!(".new-{}", uuid::Uuid::new_v4().simple()));
        let file = File::create(&fresh)?;
        rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive)?;
        if let Err(e) = std::fs::rename(&fresh, &path) {
            let _ = std::fs::remove_file(&fresh);
            return Err(e);
        }
        Ok(Self { path, _file: file })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether a live process holds the claim file at `path` (a missing file is no claim).
fn is_held(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    // flock locks belong to open file descriptions: this process's own claims conflict too.
    match rustix::fs::flock(&file, FlockOperation::NonBlockingLockShared) {
        Ok(()) => false,
        Err(e) => e == rustix::io::Errno::WOULDBLOCK,
    }
}

/// Whether `name` is claimed by a live process in `data_dir`.
pub fn is_claimed(data_dir: &Path, name: &str) -> bool {
    is_held(&data_dir.join(CLAIMS).join(name))
}

/// What one sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Entries removed from the places in [`SWEPT`].
    pub removed: usize,
    /// Entries kept because a live process claims them.
    pub kept: usize,
    /// Claim files removed (their owners are dead).
    pub claims: usize,
}

/// Removes the per-run leftovers of dead owners under `data_dir` (see [`SWEPT`]), without
/// following symlinks, and the dead owners' claim files.
pub fn sweep_data_dir(data_dir: &Path) -> Swept {
    let mut out = Swept::default();
    for (place, prefix) in SWEPT {
        let Ok(rd) = std::fs::read_dir(data_dir.join(place)) else {
            continue;
        };
        for e in rd.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with(prefix) {
                continue;
            }
            let key = name.strip_suffix(".index").unwrap_or(&name);
            if is_claimed(data_dir, key) {
                out.kept += 1;
                continue;
            }
            remove_entry(&e.path());
            out.removed += 1;
        }
    }
    if let Ok(rd) = std::fs::read_dir(data_dir.join(CLAIMS)) {
        for e in rd.filter_map(|e| e.ok()) {
            if !is_held(&e.path()) && std::fs::remove_file(e.path()).is_ok() {
                out.claims += 1;
            }
        }
    }
    out
}

/// Removes a file, a symlink (never what it points at) or a directory tree.
fn remove_entry(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => remove_tree(path),
        Ok(_) => {
            if let Err(e) = std::fs::remove_file(path) {
                tracing::warn!(path = %path.display(), error = %e, "could not remove a leftover");
            }
        }
        Err(_) => {}
    }
}

/// Removes a directory tree, first making every directory in it writable (a read-only
/// directory, as Go's module cache makes, cannot otherwise be emptied). Symlinks are
/// removed, never followed: `remove_dir_all` unlinks them (std documents it, and opens each
/// directory with `O_NOFOLLOW`), the walk does not follow them, and each directory is
/// opened with `O_NOFOLLOW` before its mode changes, so a link planted by the sandbox user
/// in a work tree or home cannot turn the sweep on a host path.
pub fn remove_tree(dir: &Path) {
    if std::fs::remove_dir_all(dir).is_ok() || std::fs::symlink_metadata(dir).is_err() {
        return;
    }
    for e in walkdir::WalkDir::new(dir)
        .follow_links(false)
        .into_iter()
        .filter_map(|e| e.ok())
    {
        if e.file_type().is_dir() {
            use rustix::fs::{Mode, OFlags};
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            if let Ok(fd) = rustix::fs::open(e.path(), flags, Mode::empty()) {
                let _ = rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o755));
            }
        }
    }
    if let Err(e) = std::fs::remove_dir_all(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "could not remove a directory tree");
    }
}

#[cfg(test)]
mod tests;
