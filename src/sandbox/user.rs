//! Who a sandboxed command runs as, and handing it the host directories it writes.
//!
//! Every command of a run (setup, the agent's `run`, checks, MCP servers) runs as one fixed
//! unprivileged identity, never as root: [`SANDBOX_UID`]:[`SANDBOX_GID`] (65532, the
//! conventional "nonroot"/"sandbox" id of distroless images; no host account needs to
//! exist). On the host the files a sandbox writes are owned by that uid, so a setuid bit it
//! sets grants nothing (and `no-new-privileges` holds inside as well).
//!
//! When slipway itself is not root it cannot give files away: the sandbox then runs as
//! slipway's own (already unprivileged) uid and gid, and [`hand_over`] changes nothing.
//!
//! The host never executes a file the sandbox wrote: host git runs with hooks and fsmonitor
//! off (`workspace::git`), and nothing else on the host runs a path under the work tree,
//! the home or an environment snapshot.
//!
//! This module owns the identity and the ownership hand-over; it must not know which
//! directories a run has (the backends pass them in from [`SandboxSpec`]).

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{SandboxError, SandboxSpec};

/// The uid every sandboxed command runs as when slipway is root.
pub const SANDBOX_UID: u32 = 65532;
/// The gid every sandboxed command runs as when slipway is root.
pub const SANDBOX_GID: u32 = 65532;

/// RLIMIT_NPROC of every sandbox, both backends. The kernel counts it per uid across the
/// whole host (threads included), and every sandbox runs as the same uid, so it cannot be a
/// per-sandbox limit (docker's `pids_limit` is one): it is a ceiling shared by all of them,
/// well above what one sandbox is allowed, so concurrent runs do not starve each other.
pub const SHARED_NPROC: u32 = 16384;

/// The identity a sandboxed command runs as on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxUser {
    pub uid: u32,
    pub gid: u32,
    /// Whether slipway runs as root, and so must switch to `uid` and give files away.
    pub host_is_root: bool,
}

impl SandboxUser {
    /// [`SANDBOX_UID`]:[`SANDBOX_GID`] when this process is root, else this process's own
    /// uid and gid (read from `/proc/self`, which the kernel owns by the effective ids).
    pub fn of_host() -> Self {
        match std::fs::metadata("/proc/self") {
            Ok(m) if m.uid() != 0 => Self {
                uid: m.uid(),
                gid: m.gid(),
                host_is_root: false,
            },
            _ => Self {
                uid: SANDBOX_UID,
                gid: SANDBOX_GID,
                host_is_root: true,
            },
        }
    }

    /// `uid:gid`, as container engines take it.
    pub fn spec(&self) -> String {
        format!("{}:{}", self.uid, self.gid)
    }
}

/// Makes every directory a sandbox of `spec` writes (the work tree, the home, each writable
/// mount) owned by the sandbox user, so it can write there and nowhere else. Entries already
/// owned are left alone; symlinks are changed themselves, never followed; a tree is not
/// followed onto another filesystem. A no-op when slipway is not root.
pub fn hand_over_spec(spec: &SandboxSpec) -> Result<(), SandboxError> {
    let user = SandboxUser::of_host();
    hand_over(&spec.workspace, user)?;
    hand_over(&spec.home, user)?;
    for m in spec.mounts.iter().filter(|m| m.writable) {
        hand_over(&m.host, user)?;
    }
    Ok(())
}

/// [`hand_over_spec`] on a blocking thread (a work tree can hold many files).
pub async fn hand_over_spec_async(spec: &SandboxSpec) -> Result<(), SandboxError> {
    let spec = spec.clone();
    tokio::task::spawn_blocking(move || hand_over_spec(&spec))
        .await
        .map_err(|e| SandboxError::Spawn(format!("handing the sandbox its directories: {e}")))?
}

/// Gives the tree at `root` to `user` (see [`hand_over_spec`]).
///
/// Race-free against a sandbox process that swaps directories for symlinks while the walk
/// runs: every directory is opened relative to its already-open parent with `O_NOFOLLOW`,
/// and every entry is changed with `fchownat(…, AT_SYMLINK_NOFOLLOW)` on that parent's
/// descriptor, so no path is ever resolved through a link (a walk by path names, which a
/// swapped component redirects, could give any host file away).
pub fn hand_over(root: &Path, user: SandboxUser) -> Result<(), SandboxError> {
    if !user.host_is_root {
        return Ok(());
    }
    use rustix::fs::{AtFlags, Mode, OFlags};
    let failed = |path: &Path, e: std::io::Error| SandboxError::Ownership {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let dir = match rustix::fs::open(root, flags, Mode::empty()) {
        Ok(d) => d,
        // Not a directory (or a link): hand over the entry itself, never what it points to.
        Err(rustix::io::Errno::NOTDIR) | Err(rustix::io::Errno::LOOP) => {
            return rustix::fs::chownat(
                rustix::fs::CWD,
                root,
                Some(rustix::fs::Uid::from_raw(user.uid)),
                Some(rustix::fs::Gid::from_raw(user.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| failed(root, e.into()));
        }
        Err(e) => return Err(failed(root, e.into())),
    };
    let dev = rustix::fs::fstat(&dir)
        .map_err(|e| failed(root, e.into()))?
        .st_dev;
    give_dir(&dir, root, dev, user, flags).map_err(|(p, e)| failed(&p, e))
}

/// Gives the open directory `dir` (at `path`, for messages) and everything below it on the
/// file system `dev` to `user`.
fn give_dir(
    dir: &rustix::fd::OwnedFd,
    path: &Path,
    dev: u64,
    user: SandboxUser,
    flags: rustix::fs::OFlags,
) -> Result<(), (std::path::PathBuf, std::io::Error)> {
    use rustix::fs::{AtFlags, FileType, Mode};
    let uid = Some(rustix::fs::Uid::from_raw(user.uid));
    let gid = Some(rustix::fs::Gid::from_raw(user.gid));
    let err = |p: &Path, e: rustix::io::Errno| (p.to_path_buf(), std::io::Error::from(e));
    let st = rustix::fs::fstat(dir).map_err(|e| err(path, e))?;
    if st.st_uid != user.uid || st.st_gid != user.gid {
        rustix::fs::fchown(dir, uid, gid).map_err(|e| err(path, e))?;
    }
    let entries = rustix::fs::Dir::read_from(dir).map_err(|e| err(path, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| err(path, e))?;
        let name = entry.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        let child = path.join(std::ffi::OsStr::from_bytes(name.to_bytes()));
        let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) => continue,
            Err(e) => return Err(err(&child, e)),
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            if st.st_dev != dev {
                continue; // another file system mounted here
            }
            match rustix::fs::openat(dir, name, flags, Mode::empty()) {
                Ok(sub) => give_dir(&sub, &child, dev, user, flags)?,
                // Swapped for a link or a file since the stat: nothing to follow.
                Err(rustix::io::Errno::NOTDIR)
                | Err(rustix::io::Errno::LOOP)
                | Err(rustix::io::Errno::NOENT) => {}
                Err(e) => return Err(err(&child, e)),
            }
        } else if st.st_uid != user.uid || st.st_gid != user.gid {
            match rustix::fs::chownat(dir, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                Err(e) => return Err(err(&child, e)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_root_a_tree_is_given_to_the_sandbox_user_without_following_symlinks() {
        let user = SandboxUser::of_host();
        if !user.host_is_root {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/f"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        hand_over(dir.path(), user).unwrap();
        for p in ["", "a", "a/b", "a/b/f", "link"] {
            let m = std::fs::symlink_metadata(dir.path().join(p)).unwrap();
            assert_eq!((m.uid(), m.gid()), (SANDBOX_UID, SANDBOX_GID), "{p}");
        }
        assert_eq!(std::fs::metadata(outside.path()).unwrap().uid(), 0);
    }

    #[test]
    fn a_link_to_a_directory_outside_is_changed_itself_never_followed() {
        use std::os::unix::fs::MetadataExt;
        let user = SandboxUser::of_host();
        if !user.host_is_root {
            return; // nothing is given away when slipway is not root
        }
        let tmp = tempfile::tempdir().unwrap();
        let tree = tmp.path().join("tree");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("sub/escape")).unwrap();
        hand_over(&tree, user).unwrap();
        assert_eq!(
            std::fs::metadata(tree.join("sub")).unwrap().uid(),
            SANDBOX_UID
        );
        assert_eq!(
            std::fs::symlink_metadata(tree.join("sub/escape"))
                .unwrap()
                .uid(),
            SANDBOX_UID,
            "the link itself"
        );
        assert_eq!(
            std::fs::metadata(&outside).unwrap().uid(),
            0,
            "never followed"
        );
        assert_eq!(std::fs::metadata(outside.join("secret")).unwrap().uid(), 0);
    }
}
