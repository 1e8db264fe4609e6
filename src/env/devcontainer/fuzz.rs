//! Property-based tests of the devcontainer.json (JSON with comments) reader
//! ([`super::load`]): any bytes give a plan or a typed error, never a panic; a syntax error
//! names a line and column inside the file; comments and trailing commas, which the Dev
//! Containers templates use, never make valid JSON fail. Cases: `PROPTEST_CASES` (256 by
//! default; `scripts/fuzz.sh` runs many more).

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::super::{EnvError, Tree};
use super::{Devcontainer, load};
use crate::fuzz_support::any_json;

const REL: &str = ".devcontainer/devcontainer.json";

thread_local! {
    /// One repo per test thread, its devcontainer.json rewritten for each case: a fresh
    /// directory per case made the file system most of the cost.
    static REPO: Option<tempfile::TempDir> = tempfile::tempdir().ok().filter(|d| {
        std::fs::create_dir_all(d.path().join(".devcontainer")).is_ok()
    });
}

/// Loads `bytes` as a repo's devcontainer.json.
fn load_bytes(bytes: &[u8]) -> std::result::Result<Devcontainer, EnvError> {
    REPO.with(|d| {
        let Some(d) = d else {
            return Err(EnvError::Read {
                file: "tempdir".into(),
                source: std::io::Error::other("no temporary directory"),
            });
        };
        std::fs::write(d.path().join(REL), bytes).map_err(|e| EnvError::Read {
            file: REL.into(),
            source: e,
        })?;
        load(&Tree::new(d.path()), REL)
    })
}

/// A syntax error points inside the text: a 1-based line that exists and a 1-based column
/// at most one past that line's end.
fn points_inside(text: &str, line: usize, column: usize) -> std::result::Result<(), TestCaseError> {
    // jsonc-parser breaks lines at `\n` and at a lone `\r` (which also ends a `//` comment).
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = normalized.split('\n').collect();
    prop_assert!(
        line >= 1 && line <= lines.len(),
        "line {} of {}",
        line,
        lines.len()
    );
    let width = lines[line - 1].chars().count();
    prop_assert!(
        column >= 1 && column <= width + 1,
        "column {} of a line of {}",
        column,
        width
    );
    Ok(())
}

/// A comment's text: no line break (`\n`, `\r`, which end a `//` comment in JSONC as in
/// JavaScript), never closing a block comment.
fn comment() -> impl Strategy<Value = String> {
    "[^\n\r*]{0,10}"
}

/// `obj` pretty-printed, with a line comment after and a block comment before each line,
/// and a trailing comma after each last member, as the Dev Containers templates write.
fn jsonc(obj: &Map<String, Value>, line_comments: &[String], block_comments: &[String]) -> String {
    let pretty = serde_json::to_string_pretty(obj).unwrap_or_default();
    let lines: Vec<&str> = pretty.lines().collect();
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        let next_closes = lines
            .get(i + 1)
            .is_some_and(|n| n.trim_start().starts_with(['}', ']']));
        let opens = l.trim_end().ends_with(['{', '[']);
        let comma = if next_closes && !opens { "," } else { "" };
        let block = &block_comments[i % block_comments.len()];
        let line = &line_comments[i % line_comments.len()];
        out.push_str(&format!("/*{block}*/ {l}{comma} //{line}\n"));
    }
    out
}

fn object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec((".{0,8}", any_json()), 0..6).prop_map(|kv| kv.into_iter().collect())
}

proptest! {
    #[test]
    fn any_bytes_give_a_plan_or_a_typed_error(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        match load_bytes(&bytes) {
            Err(EnvError::Syntax { line, column, .. }) => {
                let text = String::from_utf8_lossy(&bytes);
                points_inside(&text, line, column)?;
            }
            Err(EnvError::Read { .. }) => prop_assert!(std::str::from_utf8(&bytes).is_err()),
            _ => {}
        }
    }

    #[test]
    fn any_text_gives_a_plan_or_a_typed_error(text in "[{}\\[\\]\":,/*\n a-z0-9.\\\\-]{0,120}") {
        if let Err(EnvError::Syntax { line, column, .. }) = load_bytes(text.as_bytes()) {
            points_inside(&text, line, column)?;
        }
    }

    /// Comments and trailing commas never turn a JSON object into a syntax error.
    #[test]
    fn comments_and_trailing_commas_are_read(
        obj in object(),
        line_comments in prop::collection::vec(comment(), 1..4),
        block_comments in prop::collection::vec(comment(), 1..4),
    ) {
        let text = jsonc(&obj, &line_comments, &block_comments);
        let r = load_bytes(text.as_bytes());
        prop_assert!(!matches!(r, Err(EnvError::Syntax { .. })), "{:?}\n{}", r, text);
    }

    /// The container's own `PATH` in a `PATH` value is never added as a directory: what is
    /// added in front of the sandbox's `PATH` is directories, each without `:` or NUL.
    #[test]
    fn path_entries_are_directories(
        parts in prop::collection::vec(prop::sample::select(&[
            "${containerEnv:PATH}", "${PATH}", "$PATH", "/usr/local/bin", ":", "/x", "y",
            "${localEnv:HOME}", "${localEnv:X:/d}", "${containerWorkspaceFolder}", "${", "}",
        ][..]), 0..8),
        key in prop::sample::select(&["containerEnv", "remoteEnv"][..]),
    ) {
        let value = parts.concat();
        let text = serde_json::json!({ "image": "debian", key: { "PATH": value } }).to_string();
        let dc = load_bytes(text.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
        for p in &dc.path_prefix {
            prop_assert!(!p.is_empty() && !p.contains(['\0', ':']), "{:?} from {:?}", p, value);
        }
        prop_assert!(!dc.env.contains_key("PATH"));
    }

    /// A file cut short (before its closing brace) is a syntax error at a line and column
    /// inside what is there.
    #[test]
    fn a_truncated_file_is_a_syntax_error_with_a_position(
        obj in object(),
        line_comments in prop::collection::vec(comment(), 1..4),
        block_comments in prop::collection::vec(comment(), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let text = jsonc(&obj, &line_comments, &block_comments);
        // Inside the object: after its `{`, before its `}`.
        // Block comments hold no `*`, so these find the object's own braces.
        let Some(open) = text.find("*/ {").map(|i| i + 4) else {
            return Err(TestCaseError::fail("no object"));
        };
        // `{}` when the object is empty: its `}` is at `open`.
        let close = text.rfind("*/ }").map_or(open, |i| i + 3);
        let boundaries: Vec<usize> = (open..=close).filter(|i| text.is_char_boundary(*i)).collect();
        let at = boundaries[cut.index(boundaries.len())];
        let cut_text = &text[..at];
        match load_bytes(cut_text.as_bytes()) {
            Err(EnvError::Syntax { line, column, .. }) => points_inside(cut_text, line, column)?,
            other => prop_assert!(false, "{:?} for {:?}", other, cut_text),
        }
    }
}
