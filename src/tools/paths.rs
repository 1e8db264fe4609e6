//! Path confinement for the built-in file tools. A model-supplied path is relative to the
//! repo root; one that escapes it (`..`, absolute, or through a symlink) is refused before
//! any host file is touched. Writes into `.git` are refused too: host git later runs in this
//! clone, and a planted `.git/config` (filters, fsmonitor, pager) would execute on the host.

use std::path::{Component, Path, PathBuf};

/// Why a path was refused; the message goes back to the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path {0:?} is absolute; use a path relative to the repo root")]
    Absolute(String),
    #[error("path {0:?} escapes the repo root")]
    Escapes(String),
    #[error("path {0:?} is inside .git, which tools may not modify")]
    GitDir(String),
}

/// What the caller will do with the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// Resolves `path` under `root` (which must be canonical). Returns the host path.
pub fn resolve(root: &Path, path: &str, access: Access) -> Result<PathBuf, PathError> {
    let trimmed = path.trim();
    let p = Path::new(trimmed);
    if p.is_absolute() {
        return Err(PathError::Absolute(path.to_string()));
    }
    // Lexical normalisation: `..` may never climb above the root.
    let mut rel = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => rel.push(s),
            Component::CurDir => {}
            Component::ParentDir => {
                if !rel.pop() {
                    return Err(PathError::Escapes(path.to_string()));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(PathError::Absolute(path.to_string()));
            }
        }
    }
    let joined = root.join(&rel);
    // Symlinks: canonicalise the deepest existing ancestor (the path itself when it exists)
    // and require it to stay under the root.
    let mut existing = joined.clone();
    let mut rest = Vec::new();
    while !existing.exists() && existing.symlink_metadata().is_err() {
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => break,
        }
    }
    let canonical = match std::fs::canonicalize(&existing) {
        Ok(c) => c,
        // A dangling symlink: refuse, since its target is unknown.
        Err(_) => return Err(PathError::Escapes(path.to_string())),
    };
    if !canonical.starts_with(root) {
        return Err(PathError::Escapes(path.to_string()));
    }
    let mut full = canonical;
    for part in rest.iter().rev() {
        full.push(part);
    }
    if access == Access::Write {
        let inside = full.strip_prefix(root).unwrap_or(&full);
        if inside.components().next() == Some(Component::Normal(".git".as_ref())) {
            return Err(PathError::GitDir(path.to_string()));
        }
    }
    Ok(full)
}

/// `full` shown relative to `root`, for tool output.
pub fn display(root: &Path, full: &Path) -> String {
    full.strip_prefix(root)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| full.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let r = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir_all(r.join("src")).unwrap();
        std::fs::create_dir_all(r.join(".git")).unwrap();
        std::fs::write(r.join("src/a.py"), "x").unwrap();
        (d, r)
    }

    #[test]
    fn relative_paths_resolve_inside() {
        let (_d, r) = root();
        assert_eq!(
            resolve(&r, "src/a.py", Access::Read).unwrap(),
            r.join("src/a.py")
        );
        assert_eq!(
            resolve(&r, "./src/../src/new.py", Access::Write).unwrap(),
            r.join("src/new.py")
        );
        assert_eq!(resolve(&r, "", Access::Read).unwrap(), r);
    }

    #[test]
    fn escapes_are_refused() {
        let (_d, r) = root();
        assert!(matches!(
            resolve(&r, "../../etc/passwd", Access::Read),
            Err(PathError::Escapes(_))
        ));
        assert!(matches!(
            resolve(&r, "src/../../x", Access::Write),
            Err(PathError::Escapes(_))
        ));
        assert!(matches!(
            resolve(&r, "/etc/passwd", Access::Read),
            Err(PathError::Absolute(_))
        ));
    }

    #[test]
    fn symlinks_out_of_the_repo_are_refused() {
        let (_d, r) = root();
        std::os::unix::fs::symlink("/etc", r.join("etc_link")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", r.join("pw")).unwrap();
        std::os::unix::fs::symlink("/nonexistent/x", r.join("dangling")).unwrap();
        assert!(matches!(
            resolve(&r, "etc_link/passwd", Access::Read),
            Err(PathError::Escapes(_))
        ));
        assert!(matches!(
            resolve(&r, "pw", Access::Write),
            Err(PathError::Escapes(_))
        ));
        assert!(matches!(
            resolve(&r, "etc_link/newfile", Access::Write),
            Err(PathError::Escapes(_))
        ));
        assert!(resolve(&r, "dangling", Access::Write).is_err());
        // A symlink that stays inside is fine.
        std::os::unix::fs::symlink(r.join("src"), r.join("src_link")).unwrap();
        assert_eq!(
            resolve(&r, "src_link/a.py", Access::Read).unwrap(),
            r.join("src/a.py")
        );
    }

    #[test]
    fn git_internals_are_read_only() {
        let (_d, r) = root();
        assert!(resolve(&r, ".git/config", Access::Read).is_ok());
        assert!(matches!(
            resolve(&r, ".git/hooks/pre-commit", Access::Write),
            Err(PathError::GitDir(_))
        ));
        std::os::unix::fs::symlink(r.join(".git"), r.join("g")).unwrap();
        assert!(matches!(
            resolve(&r, "g/config", Access::Write),
            Err(PathError::GitDir(_))
        ));
    }
}
