//! The git-ignored files setup generates in the base tree (a version file of an editable
//! install), which the checks' tree needs too: which ones are carried, and writing them into
//! a run's tree without ever going through a link.

use std::path::Path;

/// Whether every existing component of `rel` under `root` is a real directory (no symlink),
/// and `rel` has no `..` or absolute part: a write there stays inside `root`.
pub fn plain_path_under(root: &Path, rel: &str) -> bool {
    let rel = Path::new(rel);
    if rel
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return false;
    }
    let mut at = root.to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    for c in &parts[..parts.len().saturating_sub(1)] {
        at.push(c);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return false,
            Err(_) => return true, // the rest is created fresh, as directories
        }
    }
    true
}

/// At most this many generated files are carried into the work tree, each at most
/// [`GENERATED_MAX_BYTES`]; more means setup built something big (a `build/` tree), which
/// the checks should make themselves.
const GENERATED_MAX_FILES: usize = 200;
/// Largest generated file carried, bytes.
const GENERATED_MAX_BYTES: u64 = 1 << 20;

/// Of `ignored` (the untracked, git-ignored files setup left in the base tree `src`), the
/// ones carried into each run's tree: outside the carried directories, regular files of at
/// most [`GENERATED_MAX_BYTES`] (a hatch-vcs or setuptools-scm `_version.py`, a compiled
/// `.so` of an editable install), sorted; and a note when there were too many to carry.
/// Tracked files and untracked files that are not ignored are never listed (an agent's
/// commit would pick those up).
pub fn carried(
    ignored: Vec<String>,
    src: &Path,
    carry: &[String],
) -> (Vec<String>, Option<String>) {
    let mut files: Vec<String> = ignored
        .into_iter()
        .filter(|rel| {
            let top = rel.split('/').next().unwrap_or("");
            !carry.iter().any(|c| c == top)
        })
        .filter(|rel| {
            std::fs::symlink_metadata(src.join(rel))
                .is_ok_and(|m| m.is_file() && m.len() <= GENERATED_MAX_BYTES)
        })
        .collect();
    if files.len() > GENERATED_MAX_FILES {
        let n = files.len();
        return (
            Vec::new(),
            Some(format!(
                "setup generated {n} ignored files in the tree (more than {GENERATED_MAX_FILES}): none carried into the checks"
            )),
        );
    }
    files.sort();
    (files, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_files_never_go_through_a_symlink_out_of_the_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let wt = tmp.path().join("wt");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(wt.join("src/ok")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, wt.join("src/pkg")).unwrap();
        assert!(plain_path_under(&wt, "src/ok/_version.py"));
        assert!(plain_path_under(&wt, "src/new/deeper/_version.py"));
        assert!(
            !plain_path_under(&wt, "src/pkg/_version.py"),
            "through a link"
        );
        assert!(!plain_path_under(&wt, "../outside/x.py"));
        assert!(!plain_path_under(&wt, "/etc/passwd"));
    }
}
