//! Property-based tests of the change-list parser: `git diff --raw --numstat -z` records
//! ([`super::listed`]) and `diff --git` sections ([`super::sections`],
//! [`super::header_path`], [`super::count_lines`]). Records and headers are formatted the
//! way git formats them (git's `quote.c`: `quote_c_style` quotes a name holding a control
//! character, `"`, `\`, DEL or a non-ASCII byte, with `\a \b \t \n \v \f \r \" \\` and
//! octal for the rest; checked against git 2.39 on this machine). Cases: `PROPTEST_CASES`
//! (256 by default; `scripts/fuzz.sh` runs many more).

use proptest::prelude::*;

use super::super::{ChangeKind, FileChange};
use super::*;

/// A path git can store: any characters but NUL, never empty. Weighted towards the ones
/// that break parsers: blanks, newlines, quotes, backslashes, leading dashes, ` b/`,
/// control characters and non-ASCII.
fn path() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        3 => "[a-z0-9._/-]{1,6}",
        1 => prop::sample::select(&[
            " ", "\t", "\n", "\r", "\"", "\\", "-", "--", " b/", "a/", "\u{7}", "\u{8}", "\u{b}",
            "\u{c}", "\u{1b}", "\u{7f}", "é", "日本", "🚀", ":", "\\303", "@@",
        ][..]).prop_map(str::to_string),
        1 => "[^\u{0}]{1,3}",
    ];
    prop::collection::vec(part, 1..6).prop_map(|p| p.concat())
}

/// A path as git's `quote_c_style` writes it in a `diff --git` header (with its `a/` or
/// `b/` prefix inside the quotes).
fn git_quoted(prefixed: &str) -> String {
    let needs = prefixed
        .bytes()
        .any(|b| b < 0x20 || b == b'"' || b == b'\\' || b >= 0x7f);
    if !needs {
        return prefixed.to_string();
    }
    let mut out = String::from("\"");
    for b in prefixed.bytes() {
        match b {
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            0x0b => out.push_str("\\v"),
            0x0c => out.push_str("\\f"),
            b'\r' => out.push_str("\\r"),
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b if !(0x20..0x7f).contains(&b) => out.push_str(&format!("\\{b:03o}")),
            b => out.push(char::from(b)),
        }
    }
    out.push('"');
    out
}

fn kind_and_modes() -> impl Strategy<Value = (ChangeKind, u32, u32)> {
    prop_oneof![
        Just((ChangeKind::Added, 0, 0o100644)),
        Just((ChangeKind::Added, 0, 0o120000)),
        Just((ChangeKind::Added, 0, 0o160000)),
        Just((ChangeKind::Deleted, 0o100755, 0)),
        Just((ChangeKind::Modified, 0o100644, 0o100755)),
        Just((ChangeKind::Modified, 0o100644, 0o100644)),
        Just((ChangeKind::TypeChanged, 0o120000, 0o100644)),
    ]
}

/// Distinct files, in the order git lists them.
fn files() -> impl Strategy<Value = Vec<FileChange>> {
    prop::collection::vec((path(), kind_and_modes(), any::<bool>()), 0..6).prop_map(|v| {
        let mut seen = std::collections::HashSet::new();
        v.into_iter()
            .filter(|(p, _, _)| seen.insert(p.clone()))
            .map(|(path, (kind, old_mode, new_mode), binary)| FileChange {
                path,
                kind,
                old_mode,
                new_mode,
                added: 0,
                deleted: 0,
                binary,
            })
            .collect()
    })
}

/// `git diff --raw --numstat -z` output for `files`: every raw record, then every numstat.
fn raw_numstat_z(files: &[FileChange]) -> Vec<u8> {
    let letter = |k: ChangeKind| match k {
        ChangeKind::Added => 'A',
        ChangeKind::Deleted => 'D',
        ChangeKind::Modified => 'M',
        ChangeKind::TypeChanged => 'T',
    };
    let mut out = Vec::new();
    for f in files {
        out.extend(
            format!(
                ":{:06o} {:06o} {} {} {}\0{}\0",
                f.old_mode,
                f.new_mode,
                "1".repeat(40),
                "2".repeat(40),
                letter(f.kind),
                f.path
            )
            .bytes(),
        );
    }
    for f in files {
        let counts = if f.binary { "-\t-" } else { "3\t1" };
        out.extend(format!("{counts}\t{}\0", f.path).bytes());
    }
    out
}

/// A content line of a hunk: anything but a newline, after its `+`, `-` or ` `.
fn content() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("diff --git a/x b/x".to_string()),
        Just("@@ -1 +1 @@".to_string()),
        Just("++ b/x".to_string()),
        Just("-- a/x".to_string()),
        "[^\n]{0,12}",
    ]
}

proptest! {
    /// Any path, in a record formatted as git formats it, comes back exactly, with its
    /// kind, modes and binary flag.
    #[test]
    fn raw_records_round_trip_any_path(files in files()) {
        let parsed = listed(&raw_numstat_z(&files));
        prop_assert_eq!(parsed.ok(), Some(files));
    }

    #[test]
    fn any_bytes_are_listed_or_refused(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = listed(&bytes);
    }

    /// A `diff --git` header names the path git wrote in it, quoted or not.
    #[test]
    fn headers_round_trip_any_path(p in path()) {
        let header = format!("{} {}", git_quoted(&format!("a/{p}")), git_quoted(&format!("b/{p}")));
        prop_assert_eq!(header_path(&header), Some(p));
    }

    #[test]
    fn any_text_splits_into_sections_or_is_refused(text in "[^\u{0}]{0,200}") {
        let _ = sections(&text);
        if let Some(names) = text.strip_prefix("diff --git ") {
            let _ = header_path(names.lines().next().unwrap_or(""));
        }
    }

    /// The lines a diff adds and deletes are counted for the file its header names, whatever
    /// the content lines look like.
    #[test]
    fn diff_sections_count_each_files_lines(
        files in files(),
        hunks in prop::collection::vec((prop::collection::vec(content(), 0..4), prop::collection::vec(content(), 0..4), prop::collection::vec(content(), 0..3)), 6),
    ) {
        let mut diff = String::new();
        let mut expected = files.clone();
        for (f, (added, deleted, context)) in expected.iter_mut().zip(&hunks) {
            diff.push_str(&format!(
                "diff --git {} {}\nindex 1111111..2222222 100644\n--- {}\n+++ {}\n@@ -1,{} +1,{} @@\n",
                git_quoted(&format!("a/{}", f.path)),
                git_quoted(&format!("b/{}", f.path)),
                git_quoted(&format!("a/{}", f.path)),
                git_quoted(&format!("b/{}", f.path)),
                deleted.len() + context.len(),
                added.len() + context.len(),
            ));
            for l in context {
                diff.push_str(&format!(" {l}\n"));
            }
            for l in deleted {
                diff.push_str(&format!("-{l}\n"));
            }
            for l in added {
                diff.push_str(&format!("+{l}\n"));
            }
            diff.push_str("\\ No newline at end of file\n");
            f.added = added.len();
            f.deleted = deleted.len();
        }
        let mut counted = files.clone();
        let s = sections(&diff);
        prop_assert!(s.is_ok(), "{:?}", s);
        let r = count_lines(&mut counted, &s.unwrap_or_default());
        prop_assert!(r.is_ok(), "{:?}", r);
        prop_assert_eq!(counted, expected);
    }
}
