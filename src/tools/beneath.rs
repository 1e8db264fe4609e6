//! Race-free host file access under a work tree (issue "Security hardening" #13, item 3).
//!
//! A sandboxed MCP server (the prefetch's "sidecar") keeps `/workspace` writable while the
//! host-side file tools run, so any check of a path followed by a use of the same path is a
//! race: the sandbox can swap a checked directory for a symlink to anywhere in between.
//! [`super::paths::resolve`] stays the check that gives the model clear errors (absolute,
//! `..`, `.git`, a link out of the repo); this module makes the *use* safe on its own. Every
//! open, `mkdir` and `chown` happens relative to a directory descriptor of the work-tree root
//! through `openat2(2)` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`
//! (Linux 5.6+, man 2 openat2): the kernel resolves the whole path in one step and fails
//! (`EXDEV`, `ELOOP`) rather than leave the root or follow any link, whatever changes
//! meanwhile. `resolve` has already replaced the symlinks that were inside the repo by their
//! targets, so refusing every link here refuses only a link that appeared after the check.
//!
//! Descriptors stay valid for directories the sandbox renames afterwards: it cannot move
//! them out of the root, because the root is its own mount in the sandbox and `rename(2)`
//! across mounts fails with `EXDEV`.
//!
//! Why `rustix::fs::openat2` and not `cap-std`: rustix is already a dependency, the calls
//! needed are four (`openat2`, `mkdirat`, `fchown`, `Dir`), and cap-std would bring its own
//! `Dir`/`File` types to every file-tool signature for the same kernel call.
//!
//! This module owns the descriptor-relative operations; it does not decide which paths are
//! allowed (that is `paths`) or how much of a file is read (that is `files`).

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path};

use rustix::fs::{Mode, OFlags, ResolveFlags};

/// How many times an `openat2` that the kernel refused with `EAGAIN` (a rename anywhere on
/// the system during a `RESOLVE_BENEATH` lookup, man 2 openat2) is tried again before the
/// call gives up with that error.
const EAGAIN_TRIES: usize = 64;

/// Mode of a file `write_file` creates, before the umask (as `File::create`).
const FILE_MODE: u32 = 0o666;
/// Mode of a directory `write_file` creates, before the umask (as `create_dir_all`).
const DIR_MODE: u32 = 0o777;

/// An open work-tree root: every operation below resolves relative to it, beneath it, and
/// through no symlink.
pub struct Root {
    fd: OwnedFd,
}

/// What [`Root::create`] made: the file, and whether this call created it and which
/// directories on the way (the caller hands those to the sandbox user).
pub struct Created {
    pub file: File,
    /// Descriptors of the directories this call created, outermost first.
    pub new_dirs: Vec<OwnedFd>,
    /// Whether the file did not exist before.
    pub new_file: bool,
}

fn resolve_flags() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS
}

/// `openat2` with [`resolve_flags`], tried again on `EAGAIN`.
fn open_beneath(dir: impl AsFd, rel: &Path, flags: OFlags, mode: u32) -> io::Result<OwnedFd> {
    let dir = dir.as_fd();
    // openat2 refuses (EINVAL) any flag with O_PATH but O_DIRECTORY, O_NOFOLLOW, O_CLOEXEC.
    let flags = if flags.contains(OFlags::PATH) {
        flags | OFlags::CLOEXEC
    } else {
        flags | OFlags::CLOEXEC | OFlags::NOCTTY
    };
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(dir, rel, flags, Mode::from_raw_mode(mode), resolve_flags()) {
            Err(rustix::io::Errno::AGAIN) if tries < EAGAIN_TRIES => tries += 1,
            r => return r.map_err(io::Error::from),
        }
    }
}

/// `rel` as a relative path of plain names ("." for the root itself); `None` when it holds
/// anything else (`..`, a root), which [`super::paths::resolve`] never returns.
fn plain(rel: &Path) -> Option<&Path> {
    if rel.as_os_str().is_empty() {
        return Some(Path::new("."));
    }
    rel.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        .then_some(rel)
}

fn refused(rel: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{} is not a plain path under the repo root", rel.display()),
    )
}

impl Root {
    /// Opens the work-tree root `root` (canonical, owned by slipway; its parents are not
    /// writable by the sandbox, so opening it by path is not a race).
    pub fn open(root: &Path) -> io::Result<Self> {
        let fd = rustix::fs::open(
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )?;
        Ok(Self { fd })
    }

    /// `rel` opened for reading, without blocking (a FIFO would wait for a writer forever).
    pub fn open_read(&self, rel: &Path) -> io::Result<File> {
        let rel = plain(rel).ok_or_else(|| refused(rel))?;
        open_beneath(&self.fd, rel, OFlags::RDONLY | OFlags::NONBLOCK, 0).map(File::from)
    }

    /// The directory `rel` opened for listing.
    pub fn open_dir(&self, rel: &Path) -> io::Result<OwnedFd> {
        let rel = plain(rel).ok_or_else(|| refused(rel))?;
        open_beneath(&self.fd, rel, OFlags::RDONLY | OFlags::DIRECTORY, 0)
    }

    /// `rel` opened for writing, created (with its missing parent directories) or
    /// truncated, without blocking. A directory at `rel` is `EISDIR`.
    pub fn create(&self, rel: &Path) -> io::Result<Created> {
        let rel = plain(rel).ok_or_else(|| refused(rel))?;
        let (Some(name), parent) = (rel.file_name(), rel.parent()) else {
            return Err(refused(rel));
        };
        let mut new_dirs = Vec::new();
        let mut dir: Option<OwnedFd> = None;
        for part in parent.into_iter().flat_map(Path::components) {
            let Component::Normal(part) = part else {
                continue;
            };
            let base = dir.as_ref().map_or(self.fd.as_fd(), |d| d.as_fd());
            let part = Path::new(part);
            let opened = match open_beneath(base, part, OFlags::PATH | OFlags::DIRECTORY, 0) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    match rustix::fs::mkdirat(base, part, Mode::from_raw_mode(DIR_MODE)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    // Opened again beneath its parent: a link swapped in after the mkdir is
                    // refused like any other.
                    let d = open_beneath(base, part, OFlags::RDONLY | OFlags::DIRECTORY, 0)?;
                    new_dirs.push(d.try_clone()?);
                    d
                }
                r => r?,
            };
            dir = Some(opened);
        }
        let base = dir.as_ref().map_or(self.fd.as_fd(), |d| d.as_fd());
        let name = Path::new(name);
        let write = OFlags::WRONLY | OFlags::NONBLOCK;
        let (fd, new_file) =
            match open_beneath(base, name, write | OFlags::CREATE | OFlags::EXCL, FILE_MODE) {
                Ok(fd) => (fd, true),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    (open_beneath(base, name, write | OFlags::TRUNC, 0)?, false)
                }
                Err(e) => return Err(e),
            };
        Ok(Created {
            file: File::from(fd),
            new_dirs,
            new_file,
        })
    }
}

/// Gives `fd` (something this process just created) to the sandbox user `user`, on the
/// descriptor, so no path is looked up again. Nothing to do when slipway is not root.
pub fn give(fd: impl AsFd, user: crate::sandbox::user::SandboxUser) -> io::Result<()> {
    if !user.host_is_root {
        return Ok(());
    }
    rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(user.uid)),
        Some(rustix::fs::Gid::from_raw(user.gid)),
    )
    .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_escapes_are_refused_by_the_kernel() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir(r.join("sub")).unwrap();
        std::fs::write(r.join("sub/f"), "x").unwrap();
        std::os::unix::fs::symlink("sub", r.join("inside_link")).unwrap();
        std::os::unix::fs::symlink("/etc", r.join("out")).unwrap();
        let root = Root::open(r).unwrap();
        assert!(root.open_read(Path::new("sub/f")).is_ok());
        assert!(root.open_dir(Path::new("")).is_ok());
        for bad in ["inside_link/f", "out/passwd", "../x", "/etc/passwd"] {
            assert!(root.open_read(Path::new(bad)).is_err(), "{bad}");
            assert!(root.create(Path::new(bad)).is_err(), "{bad}");
        }
        assert!(root.create(Path::new("out/new/f")).is_err());
        assert!(!Path::new("/etc/new").exists());
    }

    #[test]
    fn create_makes_parents_and_says_what_it_made() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::open(d.path()).unwrap();
        let c = root.create(Path::new("a/b/f.txt")).unwrap();
        assert_eq!((c.new_dirs.len(), c.new_file), (2, true));
        let c = root.create(Path::new("a/b/f.txt")).unwrap();
        assert_eq!((c.new_dirs.len(), c.new_file), (0, false));
        assert!(d.path().join("a/b/f.txt").is_file());
        let e = root.create(Path::new("a")).err().unwrap();
        assert_eq!(e.raw_os_error(), Some(libc::EISDIR));
    }
}
