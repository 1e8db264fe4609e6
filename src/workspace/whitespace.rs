//! The formatting-only check: whether a change is nothing but whitespace.
//!
//! Owns this one question for the classifier; it must not change the clone.

use super::diff::GATE_DIFF;
use super::git::wt_git;
use super::{FileChange, Result, Workspaces, Worktree};

impl Workspaces {
    /// True when the change is only formatting: nothing but end-of-line whitespace and blank
    /// lines, or, when no indentation-sensitive file (Python, YAML, Makefile) is touched, no
    /// whitespace at all. Never when a file appears, disappears or changes type or mode
    /// ([`FileChange::is_structural`]): git counts no lines for an empty file or a `chmod`.
    pub async fn whitespace_only(&self, wt: &Worktree, changes: &[FileChange]) -> Result<bool> {
        if changes.iter().any(FileChange::is_structural) {
            return Ok(false);
        }
        let range = format!("{}...HEAD", wt.base_sha);
        let base: Vec<&str> = GATE_DIFF
            .iter()
            .copied()
            .chain(["--numstat", "-z"])
            .collect();
        let strict = wt_git(wt, &[&base[..], &[range.as_str()]].concat()).await?;
        if strict.trim_matches('\0').is_empty() {
            return Ok(false);
        }
        let only_zero = |out: &str| {
            out.split('\0')
                .filter(|r| !r.is_empty())
                .all(|r| r.starts_with("0\t0\t") || !r.contains('\t'))
        };
        let eol = wt_git(
            wt,
            &[
                &base[..],
                &[
                    "--ignore-space-at-eol",
                    "--ignore-blank-lines",
                    "--ignore-cr-at-eol",
                    &range,
                ],
            ]
            .concat(),
        )
        .await?;
        if only_zero(&eol) {
            return Ok(true);
        }
        let sensitive = changes.iter().any(|c| {
            let name = c.path.rsplit('/').next().unwrap_or(&c.path);
            name.ends_with(".py")
                || name.ends_with(".yaml")
                || name.ends_with(".yml")
                || name == "Makefile"
                || name.ends_with(".mk")
        });
        if sensitive {
            return Ok(false);
        }
        let all = wt_git(
            wt,
            &[
                &base[..],
                &["--ignore-all-space", "--ignore-blank-lines", &range],
            ]
            .concat(),
        )
        .await?;
        Ok(only_zero(&all))
    }
}
