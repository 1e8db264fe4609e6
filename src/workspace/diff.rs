//! What the gates read of a change: the branch's diff against its base, forced to text, and
//! the per-file counts parsed from it.
//!
//! Owns diff reading and parsing; it must not change the clone.

use super::git::wt_git;
use super::{FileChange, Result, Workspaces, Worktree};

/// How the gates read a diff: as text (no `.gitattributes -diff`, no external diff drivers
/// or textconv) with paths unquoted.
pub(super) const GATE_DIFF: [&str; 6] = [
    "-c",
    "core.quotePath=false",
    "diff",
    "--text",
    "--no-ext-diff",
    "--no-textconv",
];

impl Workspaces {
    /// The unified diff of what the branch adds to the base (`base...HEAD`: from their merge
    /// base, so base commits made since are not shown as reverted). Call after
    /// [`Workspaces::commit`]. Forced to text (`--text`, no external drivers, no textconv)
    /// and with paths unquoted, so neither a `.gitattributes` `-diff` nor an unusual file
    /// name can hide a line from the gates.
    pub async fn diff(&self, wt: &Worktree) -> Result<String> {
        let range = format!("{}...HEAD", wt.base_sha);
        let args: Vec<&str> = GATE_DIFF
            .iter()
            .copied()
            .chain(["--no-renames", "--no-color", range.as_str()])
            .collect();
        wt_git(wt, &args).await
    }
}

/// Undoes git's C-style quoting of a path (`"a\\303\\251.txt"` → `aé.txt`).
pub fn unquote_path(p: &str) -> String {
    let Some(inner) = p.strip_prefix('"').and_then(|q| q.strip_suffix('"')) else {
        return p.to_string();
    };
    let mut bytes = Vec::new();
    let mut it = inner.bytes().peekable();
    while let Some(b) = it.next() {
        if b != b'\\' {
            bytes.push(b);
            continue;
        }
        match it.next() {
            Some(b'n') => bytes.push(b'\n'),
            Some(b't') => bytes.push(b'\t'),
            Some(b'r') => bytes.push(b'\r'),
            Some(d @ b'0'..=b'7') => {
                let mut v = u32::from(d - b'0');
                for _ in 0..2 {
                    if let Some(&n @ b'0'..=b'7') = it.peek() {
                        v = v * 8 + u32::from(n - b'0');
                        it.next();
                    }
                }
                bytes.push(v as u8);
            }
            Some(other) => bytes.push(other),
            None => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Per-file added and deleted lines of a unified diff (`git diff --text` output).
pub fn changes_from_diff(diff: &str) -> Vec<FileChange> {
    let mut out: Vec<FileChange> = Vec::new();
    let mut in_header = false;
    let mut old_path: Option<String> = None;
    for line in diff.lines() {
        if line.starts_with("diff --git ") {
            in_header = true;
            old_path = None;
            continue;
        }
        if in_header {
            if let Some(p) = line.strip_prefix("--- ") {
                old_path = (p != "/dev/null")
                    .then(|| unquote_path(p).trim_start_matches("a/").to_string());
            } else if let Some(p) = line.strip_prefix("+++ ") {
                let path = if p == "/dev/null" {
                    old_path.clone().unwrap_or_default()
                } else {
                    unquote_path(p).trim_start_matches("b/").to_string()
                };
                out.push(FileChange {
                    path,
                    added: 0,
                    deleted: 0,
                    binary: false,
                });
            } else if line.starts_with("Binary files ") {
                // Only without --text; kept for completeness.
                if let Some(rest) = line.strip_prefix("Binary files ") {
                    let path = rest
                        .rsplit(" and ")
                        .next()
                        .unwrap_or("")
                        .trim_end_matches(" differ");
                    out.push(FileChange {
                        path: unquote_path(path).trim_start_matches("b/").to_string(),
                        added: 0,
                        deleted: 0,
                        binary: true,
                    });
                }
            } else if line.starts_with("@@") {
                in_header = false;
            }
            continue;
        }
        if let Some(last) = out.last_mut() {
            if line.starts_with('+') {
                last.added += 1;
            } else if line.starts_with('-') {
                last.deleted += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_count_from_the_diff_with_unusual_names() {
        let diff = "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1,2 +1,3 @@\n-x\n+y\n+++z\n ctx\ndiff --git \"a/.github/workflows/\\303\\251.yml\" \"b/.github/workflows/\\303\\251.yml\"\nnew file mode 100644\n--- /dev/null\n+++ \"b/.github/workflows/\\303\\251.yml\"\n@@ -0,0 +1 @@\n+on: push\ndiff --git a/gone.txt b/gone.txt\ndeleted file mode 100644\n--- a/gone.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n";
        let c = changes_from_diff(diff);
        assert_eq!(c.len(), 3);
        assert_eq!(
            (c[0].path.as_str(), c[0].added, c[0].deleted),
            ("a.py", 2, 1)
        );
        assert_eq!(c[1].path, ".github/workflows/é.yml");
        assert_eq!((c[2].path.as_str(), c[2].deleted), ("gone.txt", 1));
    }
}
