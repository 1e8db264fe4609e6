//! The file list the gates judge: every path the branch changes against its base, with how
//! it changed and how many lines.
//!
//! The list comes from git's NUL-separated `--raw` output, never from the unified diff's
//! `---`/`+++` lines: those are missing for an empty file added or deleted and for a
//! mode-only change, and they end a path holding a space with a TAB. The line counts come
//! from the unified diff (see [`Workspaces::diff`]), the same text the other gates read.
//!
//! Owns reading that list; it must not change the clone.

use super::diff::unquote_path;
use super::git::wt_git_bytes;
use super::{ChangeKind, FileChange, Result, WorkspaceError, Workspaces, Worktree};

impl Workspaces {
    /// Every file the branch changes against its base (`base...HEAD`, as
    /// [`Workspaces::diff`]), one entry per path, in git's path order.
    ///
    /// Path, kind and modes come from `git diff --raw --numstat -z --no-renames`, so added or
    /// deleted empty files, mode-only changes, symlinks and any file name are listed exactly;
    /// `binary` is git's `-` in `--numstat`. `diff` must be [`Workspaces::diff`] of `wt`:
    /// the added and deleted lines are counted in it, so that neither a `.gitattributes`
    /// `-diff` nor a NUL byte hides lines from the scope gate. Each of its `diff --git`
    /// sections must name the path listed at that position (a type change has two).
    ///
    /// Fails closed: [`WorkspaceError::NonUtf8Path`] for a name that is not UTF-8,
    /// [`WorkspaceError::UnreadableChanges`] when the list and `diff` disagree.
    pub async fn changes(&self, wt: &Worktree, diff: &str) -> Result<Vec<FileChange>> {
        let range = format!("{}...HEAD", wt.base_sha);
        let listing = wt_git_bytes(
            wt,
            &[
                "diff",
                "--no-ext-diff",
                "--no-textconv",
                // A `.gitmodules` the agent wrote may say `ignore = all`: show every gitlink.
                "--ignore-submodules=none",
                "--no-renames",
                "--no-color",
                "--raw",
                "--numstat",
                "-z",
                &range,
            ],
        )
        .await?;
        let mut listed = listed(&listing)?;
        count_lines(&mut listed, &sections(diff)?)?;
        Ok(listed)
    }
}

fn unreadable(detail: impl Into<String>) -> WorkspaceError {
    WorkspaceError::UnreadableChanges(detail.into())
}

fn utf8_path(bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| WorkspaceError::NonUtf8Path(String::from_utf8_lossy(bytes).into_owned()))
}

/// Parses `--raw --numstat -z` output: first a `:<old mode> <new mode> <old sha> <new sha>
/// <status>` record and its path per file, then an `<added>\t<deleted>\t<path>` record per
/// file in the same order. Counts are left at 0 (see [`count_lines`]).
fn listed(out: &[u8]) -> Result<Vec<FileChange>> {
    let mut records = out.split(|b| *b == 0).filter(|r| !r.is_empty());
    let mut files = Vec::new();
    let mut numstat = 0;
    while let Some(record) = records.next() {
        if let Some(raw) = record.strip_prefix(b":") {
            let raw =
                std::str::from_utf8(raw).map_err(|_| unreadable("a raw record is not text"))?;
            let path = records
                .next()
                .ok_or_else(|| unreadable(format!("no path after `:{raw}`")))?;
            files.push(raw_record(raw, utf8_path(path)?)?);
            continue;
        }
        // `<added>\t<deleted>\t<path>`; the path may hold tabs itself.
        let mut fields = record.splitn(3, |b| *b == b'\t');
        let (Some(added), Some(_), Some(path)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(unreadable("a numstat record without three fields"));
        };
        let path = utf8_path(path)?;
        let file = files
            .get_mut(numstat)
            .filter(|f| f.path == path)
            .ok_or_else(|| unreadable(format!("numstat lists {path:?} out of order")))?;
        file.binary = added == b"-";
        numstat += 1;
    }
    if numstat != files.len() {
        return Err(unreadable(format!(
            "{} files listed, {numstat} counted",
            files.len()
        )));
    }
    Ok(files)
}

/// One `--raw` record (`<old mode> <new mode> <old sha> <new sha> <status>`, colon removed).
fn raw_record(raw: &str, path: String) -> Result<FileChange> {
    let bad = || unreadable(format!("unexpected raw record `:{raw}` for {path:?}"));
    let fields: Vec<&str> = raw.split(' ').collect();
    let [old_mode, new_mode, _, _, status] = fields[..] else {
        return Err(bad());
    };
    let mode = |m: &str| u32::from_str_radix(m, 8).map_err(|_| bad());
    let kind = match status {
        "A" => ChangeKind::Added,
        "D" => ChangeKind::Deleted,
        "M" => ChangeKind::Modified,
        "T" => ChangeKind::TypeChanged,
        _ => return Err(bad()),
    };
    Ok(FileChange {
        kind,
        old_mode: mode(old_mode)?,
        new_mode: mode(new_mode)?,
        path,
        added: 0,
        deleted: 0,
        binary: false,
    })
}

/// One `diff --git` section of a unified diff: the path its header names and the lines its
/// hunks add and delete.
#[derive(Debug, PartialEq)]
struct Section {
    path: String,
    added: usize,
    deleted: usize,
}

/// The sections of `diff`. Headers run from `diff --git` to the first `@@`; after it every
/// line starts with `+`, `-`, ` ` or `\`, so a line of content never reads as a header.
fn sections(diff: &str) -> Result<Vec<Section>> {
    let mut out: Vec<Section> = Vec::new();
    let mut in_header = false;
    for line in diff.lines() {
        if let Some(names) = line.strip_prefix("diff --git ") {
            let path = header_path(names)
                .ok_or_else(|| unreadable(format!("cannot read the header `{line}`")))?;
            out.push(Section {
                path,
                added: 0,
                deleted: 0,
            });
            in_header = true;
        } else if in_header {
            in_header = !line.starts_with("@@");
        } else if let Some(last) = out.last_mut() {
            if line.starts_with('+') {
                last.added += 1;
            } else if line.starts_with('-') {
                last.deleted += 1;
            }
        }
    }
    Ok(out)
}

/// The path of a `diff --git a/<path> b/<path>` header (both names are the same path: no
/// renames). Each name is C-quoted when it holds a control character, `"` or `\`; unquoted,
/// the two halves have the same length, which finds the split even if the path holds ` b/`.
fn header_path(names: &str) -> Option<String> {
    let (a, b) = if names.starts_with('"') {
        let bytes = names.as_bytes();
        let mut i = 1;
        while i < bytes.len() && bytes[i] != b'"' {
            i += if bytes[i] == b'\\' { 2 } else { 1 };
        }
        let a = names.get(..=i)?;
        let b = names.get(i + 1..)?.strip_prefix(' ')?;
        (unquote_path(a), unquote_path(b))
    } else {
        let half = names.len().checked_sub(1)? / 2;
        let (a, b) = (names.get(..half)?, names.get(half..)?.strip_prefix(' ')?);
        (a.to_string(), b.to_string())
    };
    let a = a.strip_prefix("a/")?;
    (b.strip_prefix("b/")? == a).then(|| a.to_string())
}

/// Adds each section's counts to the file listed at its position. Every file must have at
/// least one section and every section a file.
fn count_lines(files: &mut [FileChange], sections: &[Section]) -> Result<()> {
    let mut rest = sections.iter().peekable();
    for file in files.iter_mut() {
        let mut found = false;
        while let Some(s) = rest.next_if(|s| s.path == file.path) {
            file.added += s.added;
            file.deleted += s.deleted;
            found = true;
        }
        if !found {
            return Err(unreadable(format!(
                "the diff has no section for {:?}",
                file.path
            )));
        }
    }
    match rest.next() {
        Some(s) => Err(unreadable(format!(
            "the diff has a section for {:?}, which is not listed",
            s.path
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    use super::super::{FileChange, Workspaces, Worktree};
    use super::*;

    fn sh(dir: &Path, script: &str) {
        let out = Command::new("sh")
            .args(["-c", script])
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "`{script}`: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A repo with `before` committed as the base, then `change` run and committed as HEAD;
    /// returns the changes the gates would judge.
    async fn changes_after(before: &str, change: &str) -> Vec<FileChange> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        sh(
            p,
            "git init -q -b main . && git config user.email t@example.com && git config user.name t",
        );
        sh(p, before);
        sh(p, "git add -A && git commit -qm base --allow-empty");
        sh(p, change);
        sh(p, "git add -A && git commit -qm change");
        let rev = |r: &str| {
            let out = Command::new("git")
                .args(["rev-parse", r])
                .current_dir(p)
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        let wt = Worktree {
            path: p.to_path_buf(),
            git_dir: p.join(".git"),
            branch: "main".into(),
            base_sha: rev("HEAD~1"),
            start_sha: rev("HEAD~1"),
            replaces: None,
        };
        let ws = Workspaces::new(p);
        let diff = ws.diff(&wt).await.unwrap();
        ws.changes(&wt, &diff).await.unwrap()
    }

    fn paths(c: &[FileChange]) -> Vec<&str> {
        c.iter().map(|c| c.path.as_str()).collect()
    }

    #[tokio::test]
    async fn an_added_empty_file_is_listed() {
        let c = changes_after("mkdir -p .slipway", "touch .slipway/setup.sh").await;
        assert_eq!(paths(&c), [".slipway/setup.sh"]);
        assert_eq!(
            (c[0].kind, c[0].old_mode, c[0].new_mode, c[0].added),
            (ChangeKind::Added, 0, 0o100644, 0)
        );
        assert!(c[0].is_structural());
    }

    /// Security review: a `.gitmodules` with `ignore = all` hid a gitlink from `git diff`,
    /// so a submodule at a forbidden path reached no gate.
    #[tokio::test]
    async fn a_gitlink_hidden_by_gitmodules_ignore_all_is_listed() {
        let c = changes_after(
            "true",
            "mkdir -p infra/prod && cd infra/prod && git init -q -b main . \
             && git -c user.email=t@e -c user.name=t commit -q --allow-empty -m x && cd ../.. \
             && printf '[submodule \"prod\"]\\n\\tpath = infra/prod\\n\\turl = https://evil.example/x\\n\\tignore = all\\n' > .gitmodules",
        )
        .await;
        let gitlink = c.iter().find(|c| c.path == "infra/prod");
        assert!(gitlink.is_some(), "{:?}", paths(&c));
        assert_eq!(gitlink.map(|g| g.new_mode), Some(0o160000));
        assert!(paths(&c).contains(&".gitmodules"));
    }

    #[tokio::test]
    async fn a_deleted_empty_file_is_listed() {
        let c = changes_after("touch empty.txt", "rm empty.txt").await;
        assert_eq!(paths(&c), ["empty.txt"]);
        assert_eq!((c[0].kind, c[0].new_mode), (ChangeKind::Deleted, 0));
    }

    #[tokio::test]
    async fn a_mode_only_change_is_listed() {
        let c = changes_after("echo 'echo hi' > run.sh", "chmod +x run.sh").await;
        assert_eq!(paths(&c), ["run.sh"]);
        assert_eq!(
            (c[0].kind, c[0].old_mode, c[0].new_mode),
            (ChangeKind::Modified, 0o100644, 0o100755)
        );
        assert_eq!((c[0].added, c[0].deleted), (0, 0));
        assert!(c[0].is_structural());
    }

    #[tokio::test]
    async fn a_path_with_a_space_is_exact() {
        let c = changes_after("mkdir certs", "echo key > 'certs/a b.pem'").await;
        assert_eq!(paths(&c), ["certs/a b.pem"]);
        assert_eq!((c[0].added, c[0].deleted), (1, 0));
        assert_eq!(c[0].kind, ChangeKind::Added);
    }

    #[tokio::test]
    async fn paths_with_a_tab_or_a_newline_are_exact() {
        let c = changes_after(
            "true",
            "printf 'x\\n' > \"$(printf 'a\\tb.pem')\" && printf 'y\\ny\\n' > \"$(printf 'c\\nd.sql')\"",
        )
        .await;
        assert_eq!(paths(&c), ["a\tb.pem", "c\nd.sql"]);
        assert_eq!((c[0].added, c[1].added), (1, 2));
    }

    #[tokio::test]
    async fn an_added_symlink_is_listed() {
        let c = changes_after("echo x > target.txt", "ln -s target.txt link").await;
        assert_eq!(paths(&c), ["link"]);
        assert_eq!((c[0].kind, c[0].new_mode), (ChangeKind::Added, 0o120000));
        let c = changes_after("ln -s a link", "rm link && echo data > link").await;
        assert_eq!(paths(&c), ["link"], "a type change is one entry");
        assert_eq!(
            (
                c[0].kind,
                c[0].old_mode,
                c[0].new_mode,
                c[0].added,
                c[0].deleted
            ),
            (ChangeKind::TypeChanged, 0o120000, 0o100644, 1, 1)
        );
    }

    #[tokio::test]
    async fn a_binary_file_is_listed_and_its_lines_still_count() {
        let c = changes_after("true", "printf 'a\\0b\\nc\\n' > blob.bin").await;
        assert_eq!(paths(&c), ["blob.bin"]);
        assert_eq!(
            c[0].added, 2,
            "lines count as text, as the scope gate reads them"
        );
        assert!(c[0].binary);
    }

    #[test]
    fn changes_count_from_the_diff_with_unusual_names() {
        let diff = "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1,2 +1,3 @@\n-x\n+y\n+++z\n ctx\ndiff --git \"a/.github/workflows/\\303\\251.yml\" \"b/.github/workflows/\\303\\251.yml\"\nnew file mode 100644\n--- /dev/null\n+++ \"b/.github/workflows/\\303\\251.yml\"\n@@ -0,0 +1 @@\n+on: push\ndiff --git a/gone.txt b/gone.txt\ndeleted file mode 100644\n--- a/gone.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n";
        let c = sections(diff).unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(
            (c[0].path.as_str(), c[0].added, c[0].deleted),
            ("a.py", 2, 1)
        );
        assert_eq!(c[1].path, ".github/workflows/é.yml");
        assert_eq!((c[2].path.as_str(), c[2].deleted), ("gone.txt", 1));
    }

    #[tokio::test]
    async fn a_path_that_is_not_utf8_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        sh(
            p,
            "git init -q -b main . && git config user.email t@example.com && git config user.name t && git commit -qm base --allow-empty && touch \"$(printf 'a\\377.pem')\" && git add -A && git commit -qm change",
        );
        let wt = Worktree {
            path: p.to_path_buf(),
            git_dir: p.join(".git"),
            branch: "main".into(),
            base_sha: "HEAD~1".into(),
            start_sha: "HEAD~1".into(),
            replaces: None,
        };
        let ws = Workspaces::new(p);
        let diff = ws.diff(&wt).await.unwrap();
        let err = ws.changes(&wt, &diff).await.unwrap_err();
        assert!(matches!(err, WorkspaceError::NonUtf8Path(_)), "{err}");
    }

    #[test]
    fn headers_split_where_the_two_names_are_equal() {
        assert_eq!(header_path("a/x b/y b/x b/y").as_deref(), Some("x b/y"));
        assert_eq!(
            header_path("a/a b.pem b/a b.pem").as_deref(),
            Some("a b.pem")
        );
        assert_eq!(
            header_path(r#""a/q\"u\\o" "b/q\"u\\o""#).as_deref(),
            Some("q\"u\\o")
        );
        assert_eq!(header_path("a/x b/y"), None, "two different paths");
    }

    #[test]
    fn a_list_and_a_diff_that_disagree_are_refused() {
        let mut files = vec![FileChange::modified("a.py", 0, 0)];
        let other = [Section {
            path: "b.py".into(),
            added: 1,
            deleted: 0,
        }];
        assert!(matches!(
            count_lines(&mut files, &other),
            Err(WorkspaceError::UnreadableChanges(_))
        ));
        assert!(
            count_lines(&mut files, &[]).is_err(),
            "a file with no section"
        );
        assert!(listed(b"1\t0\ta.py\0").is_err(), "counted but not listed");
    }

    /// The input the header property (`fuzz.rs`) shrank to before the fix: git writes BEL as `\a` (and
    /// BS, VT, FF as `\b`, `\v`, `\f`), which was read back as the letter.
    #[test]
    fn control_characters_git_writes_by_letter_are_read_back() {
        assert_eq!(header_path(r#""a/\a" "b/\a""#).as_deref(), Some("\u{7}"));
        assert_eq!(
            header_path(r#""a/x\by\vz\f" "b/x\by\vz\f""#).as_deref(),
            Some("x\u{8}y\u{b}z\u{c}")
        );
    }
}
