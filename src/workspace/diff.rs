//! What the gates read of a change: the branch's diff against its base, forced to text.
//!
//! Owns diff reading and parsing; it must not change the clone.

use super::git::wt_git;
use super::{Result, Workspaces, Worktree};

/// How the gates read a diff: as text (no `.gitattributes -diff`, no external diff drivers
/// or textconv) with paths unquoted, and every submodule (gitlink) shown whatever a
/// `.gitmodules` `ignore =` in the change says.
pub(super) const GATE_DIFF: [&str; 7] = [
    "-c",
    "core.quotePath=false",
    "diff",
    "--text",
    "--no-ext-diff",
    "--no-textconv",
    "--ignore-submodules=none",
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

impl Workspaces {
    /// The unified diff from `from` to `HEAD` (what was committed after `from`), read the
    /// way [`Workspaces::diff`] reads it.
    pub async fn diff_since(&self, wt: &Worktree, from: &str) -> Result<String> {
        let range = format!("{from}..HEAD");
        let args: Vec<&str> = GATE_DIFF
            .iter()
            .copied()
            .chain(["--no-renames", "--no-color", range.as_str()])
            .collect();
        wt_git(wt, &args).await
    }
}

/// A path from a `---`/`+++` line as written: undoes git's C-style quoting
/// (`"a\\303\\251.txt"` → `aé.txt`) and drops the TAB git ends an unquoted name holding a
/// space with (`a b.pem\t` → `a b.pem`; a name that really ends with a TAB is quoted).
pub fn unquote_path(p: &str) -> String {
    let p = p.strip_suffix('\t').unwrap_or(p);
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
            // git's `quote_c_style` (quote.c) writes these six by letter, the rest in octal.
            Some(b'a') => bytes.push(0x07),
            Some(b'b') => bytes.push(0x08),
            Some(b't') => bytes.push(b'\t'),
            Some(b'n') => bytes.push(b'\n'),
            Some(b'v') => bytes.push(0x0b),
            Some(b'f') => bytes.push(0x0c),
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
