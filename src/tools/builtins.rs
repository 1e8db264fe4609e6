//! The built-in agent tools (contract: `DESIGN.md` §3, "Built-in agent tools"): names and
//! JSON arguments exactly as the model sees them.
//!
//! File tools act on the host side of the clone: [`super::paths`] checks a path and explains
//! a refusal, [`super::beneath`] does every open race-free under the root (a live sandboxed
//! MCP server may change the tree meanwhile); `run` goes to the sandbox. A bad call (unknown tool, bad JSON, a path that escapes, zero or several
//! `edit_file` matches) is a [`ToolOutcome::Error`] for the model, never a failed run. So is
//! a file too large for a tool: every read and write is bounded by [`super::files`], whose
//! caps are stated to the model when they apply.

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::ToolSpec;
use super::beneath::{self, Root};
use super::files::{
    self, EDIT_MAX_BYTES, FileError, LINE_MAX_BYTES, LIST_MAX, READ_MAX_BYTES, READ_MAX_LINES,
    SEARCH_FILE_MAX_BYTES, SEARCH_MAX_BYTES, SEARCH_MAX_MATCHES, SEARCH_SKIPPED_SHOWN,
    WRITE_MAX_BYTES,
};
use super::guard::{CommandGuard, Verdict};
use super::paths::{self, Access};
use crate::sandbox::{SandboxError, Session};

pub const READ_FILE: &str = "read_file";
pub const LIST_DIR: &str = "list_dir";
pub const SEARCH: &str = "search";
pub const EDIT_FILE: &str = "edit_file";
pub const WRITE_FILE: &str = "write_file";
pub const RUN: &str = "run";
pub const FINISH: &str = "finish";

/// All built-in names, in the order they are offered.
pub const NAMES: &[&str] = &[
    READ_FILE, LIST_DIR, SEARCH, EDIT_FILE, WRITE_FILE, RUN, FINISH,
];

/// The JSON schemas the model sees.
pub fn specs() -> Vec<ToolSpec> {
    let s = |name: &str, description: &str, schema: Value| ToolSpec {
        name: name.into(),
        description: description.into(),
        input_schema: schema,
    };
    vec![
        s(
            READ_FILE,
            &format!(
                "Read a text file of the repository. Lines are numbered from 1; give start_line and end_line to read part of a large file. One call returns at most {READ_MAX_LINES} lines or {}, and cuts lines longer than {}; a note says so and where to read on.",
                files::human(READ_MAX_BYTES as u64),
                files::human(LINE_MAX_BYTES as u64)
            ),
            json!({"type": "object", "properties": {
              "path": {"type": "string", "description": "Path relative to the repo root"},
              "start_line": {"type": "integer", "minimum": 1},
              "end_line": {"type": "integer", "minimum": 1}},
              "required": ["path"], "additionalProperties": false}),
        ),
        s(
            LIST_DIR,
            "List a directory of the repository; directories end with '/'.",
            json!({"type": "object", "properties": {
              "path": {"type": "string", "description": "Directory relative to the repo root; '.' for the root"}},
              "required": ["path"], "additionalProperties": false}),
        ),
        s(
            SEARCH,
            &format!(
                "Search file contents with a regular expression (ripgrep semantics: .gitignore respected, hidden files skipped). Prints path:line:text. Files over {} are skipped and named.",
                files::human(SEARCH_FILE_MAX_BYTES)
            ),
            json!({"type": "object", "properties": {
              "pattern": {"type": "string", "description": "Regular expression"},
              "path": {"type": "string", "description": "Directory or file to search; default the repo root"},
              "glob": {"type": "string", "description": "Only files matching this glob, e.g. '*.py'"}},
              "required": ["pattern"], "additionalProperties": false}),
        ),
        s(
            EDIT_FILE,
            &format!(
                "Replace old_text with new_text in a file of at most {}. old_text must occur exactly once; include surrounding lines to make it unique.",
                files::human(EDIT_MAX_BYTES)
            ),
            json!({"type": "object", "properties": {
              "path": {"type": "string"},
              "old_text": {"type": "string"},
              "new_text": {"type": "string"}},
              "required": ["path", "old_text", "new_text"], "additionalProperties": false}),
        ),
        s(
            WRITE_FILE,
            &format!(
                "Create or overwrite a file with the given content (at most {}).",
                files::human(WRITE_MAX_BYTES as u64)
            ),
            json!({"type": "object", "properties": {
              "path": {"type": "string"},
              "content": {"type": "string"}},
              "required": ["path", "content"], "additionalProperties": false}),
        ),
        s(
            RUN,
            "Run a shell command in the sandbox. The working directory is the repo root. There is no network. Output is capped; the cap is stated when it applies.",
            json!({"type": "object", "properties": {
              "command": {"type": "string"},
              "timeout_s": {"type": "integer", "minimum": 1, "description": "Seconds before the command is killed (capped by the server)"}},
              "required": ["command"], "additionalProperties": false}),
        ),
        s(
            FINISH,
            "End your work with a short summary of what you changed and why. Call this once the change is complete.",
            json!({"type": "object", "properties": {
              "summary": {"type": "string"}},
              "required": ["summary"], "additionalProperties": false}),
        ),
    ]
}

/// The result of one tool call.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolOutcome {
    /// Output for the model.
    Output(String),
    /// A mistake the model can correct; returned as a tool error and the loop goes on.
    Error(String),
    /// `finish` was called with this summary.
    Finish(String),
    /// Refused by the command guard; told to the model like an error, and audited.
    Denied(String),
    /// A policy violation that ends the run (editing `.slipway/**`).
    Halt(String),
}

/// What a tool call may use.
pub struct ToolContext<'a> {
    /// Canonical host path of the clone.
    pub root: &'a Path,
    pub session: &'a dyn Session,
    pub cancel: &'a CancellationToken,
    /// Ceiling for `run`'s `timeout_s`.
    pub max_timeout: Duration,
    /// The output cap, stated to the model when it applies.
    pub output_cap: usize,
    /// Checks every `run` command before it reaches the sandbox.
    pub guard: &'a CommandGuard,
    /// Live MCP servers and where each offered MCP tool goes.
    pub mcp: Option<&'a super::mcp::McpHub>,
    pub routes: &'a super::Routes,
}

fn parse<T: for<'de> Deserialize<'de>>(args: &str) -> Result<T, ToolOutcome> {
    let args = if args.trim().is_empty() { "{}" } else { args };
    serde_json::from_str(args).map_err(|e| ToolOutcome::Error(format!("invalid arguments: {e}")))
}

/// Runs built-in `name` with raw JSON `args`. `Err` only for sandbox failures, which stop the
/// run.
pub async fn call(
    ctx: &ToolContext<'_>,
    name: &str,
    args: &str,
) -> Result<ToolOutcome, SandboxError> {
    let outcome = match name {
        READ_FILE => read_file(ctx, args),
        LIST_DIR => list_dir(ctx, args),
        SEARCH => search(ctx, args),
        EDIT_FILE => edit_file(ctx, args),
        WRITE_FILE => write_file(ctx, args),
        RUN => return run(ctx, args).await,
        FINISH => finish(args),
        other => Err(ToolOutcome::Error(format!("unknown tool {other:?}"))),
    };
    Ok(outcome.unwrap_or_else(|e| e))
}

type Step = Result<ToolOutcome, ToolOutcome>;

fn path_err(e: paths::PathError) -> ToolOutcome {
    ToolOutcome::Error(e.to_string())
}

/// A file the tool cannot use is the model's to work around, never a failed run.
fn file_err(e: FileError) -> ToolOutcome {
    ToolOutcome::Error(e.to_string())
}

/// The work-tree root, opened for the race-free operations of [`beneath`].
fn open_root(ctx: &ToolContext<'_>) -> Result<Root, ToolOutcome> {
    Root::open(ctx.root).map_err(|e| ToolOutcome::Error(format!("cannot open the repo root: {e}")))
}

/// `full` (from [`paths::resolve`]) relative to the root, as [`beneath`] takes it.
fn rel<'p>(ctx: &ToolContext<'_>, full: &'p Path, shown: &str) -> Result<&'p Path, ToolOutcome> {
    full.strip_prefix(ctx.root)
        .map_err(|_| path_err(paths::PathError::Escapes(shown.to_string())))
}

/// Opens `shown` (resolved to `full`) for reading, beneath the root and through no link.
fn open_read(ctx: &ToolContext<'_>, full: &Path, shown: &str) -> Result<File, ToolOutcome> {
    open_root(ctx)?
        .open_read(rel(ctx, full, shown)?)
        .map_err(|e| file_err(files::open_error(shown, false, e)))
}

/// Creates or truncates `shown` (resolved to `full`) beneath the root and through no link;
/// what this call creates (the file, missing directories) is the sandbox user's, like the
/// rest of the work tree, so the agent's commands can change it.
fn create(ctx: &ToolContext<'_>, full: &Path, shown: &str) -> Result<File, ToolOutcome> {
    let created = open_root(ctx)?
        .create(rel(ctx, full, shown)?)
        .map_err(|e| file_err(files::open_error(shown, true, e)))?;
    let user = crate::sandbox::user::SandboxUser::of_host();
    let handed = created
        .new_dirs
        .iter()
        .try_for_each(|d| beneath::give(d, user))
        .and_then(|()| beneath::give(&created.file, user));
    handed
        .map_err(|e| ToolOutcome::Error(format!("cannot hand {shown} to the sandbox user: {e}")))?;
    Ok(created.file)
}

/// Resolves a path for writing; slipway's own policy files (`.slipway/**`) end the run.
fn writable(root: &Path, path: &str) -> Result<std::path::PathBuf, ToolOutcome> {
    let full = paths::resolve(root, path, Access::Write).map_err(path_err)?;
    let inside = full.strip_prefix(root).unwrap_or(&full);
    if inside.components().next() == Some(std::path::Component::Normal(".slipway".as_ref())) {
        return Err(ToolOutcome::Halt(format!(
            "the agent tried to modify {path}: slipway's policy files (.slipway/**) may not be edited by the agent"
        )));
    }
    Ok(full)
}

fn read_file(ctx: &ToolContext<'_>, args: &str) -> Step {
    #[derive(Deserialize)]
    struct A {
        path: String,
        start_line: Option<usize>,
        end_line: Option<usize>,
    }
    let a: A = parse(args)?;
    let full = paths::resolve(ctx.root, &a.path, Access::Read).map_err(path_err)?;
    if a.end_line == Some(0) {
        return Err(ToolOutcome::Error("end_line counts from 1".into()));
    }
    let start = a.start_line.unwrap_or(1).max(1);
    if let Some(end) = a.end_line
        && end < start
    {
        return Err(ToolOutcome::Error(format!(
            "end_line {end} is before start_line {start}"
        )));
    }
    let file = open_read(ctx, &full, &a.path)?;
    let text = files::read_window(file, &a.path, start, a.end_line).map_err(file_err)?;
    Ok(ToolOutcome::Output(text))
}

fn list_dir(ctx: &ToolContext<'_>, args: &str) -> Step {
    #[derive(Deserialize)]
    struct A {
        #[serde(default)]
        path: String,
    }
    let a: A = parse(args)?;
    let full = paths::resolve(ctx.root, &a.path, Access::Read).map_err(path_err)?;
    let cannot = |e: std::io::Error| ToolOutcome::Error(format!("cannot list {:?}: {e}", a.path));
    let dir = open_root(ctx)?
        .open_dir(rel(ctx, &full, &a.path)?)
        .map_err(cannot)?;
    let entries = rustix::fs::Dir::read_from(&dir).map_err(|e| cannot(e.into()))?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| !matches!(e.file_name().to_bytes(), b"." | b".."))
        .map(|e| {
            let mut n = String::from_utf8_lossy(e.file_name().to_bytes()).into_owned();
            let is_dir = match e.file_type() {
                rustix::fs::FileType::Unknown => {
                    rustix::fs::statat(&dir, e.file_name(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                        .is_ok_and(|st| {
                            rustix::fs::FileType::from_raw_mode(st.st_mode)
                                == rustix::fs::FileType::Directory
                        })
                }
                t => t == rustix::fs::FileType::Directory,
            };
            if is_dir {
                n.push('/');
            }
            n
        })
        .collect();
    names.sort();
    let total = names.len();
    names.truncate(LIST_MAX);
    let mut out = names.join("\n");
    if total > LIST_MAX {
        out.push_str(&format!("\n[{} more entries not shown]", total - LIST_MAX));
    }
    if total == 0 {
        out = "[empty directory]".into();
    }
    Ok(ToolOutcome::Output(out))
}

fn search(ctx: &ToolContext<'_>, args: &str) -> Step {
    #[derive(Deserialize)]
    struct A {
        pattern: String,
        path: Option<String>,
        glob: Option<String>,
    }
    let a: A = parse(args)?;
    let re = regex::Regex::new(&a.pattern)
        .map_err(|e| ToolOutcome::Error(format!("invalid regular expression: {e}")))?;
    let start = paths::resolve(ctx.root, a.path.as_deref().unwrap_or(""), Access::Read)
        .map_err(path_err)?;
    // The walk lists names by path (the `ignore` crate); every file is then opened beneath
    // the root through no link, and sized on its descriptor, so a directory swapped for a
    // link mid-walk yields names at most, never contents, sizes or a shown path.
    let root = open_root(ctx)?;
    let mut walk = ignore::WalkBuilder::new(&start);
    walk.require_git(false);
    if let Some(g) = &a.glob {
        let mut ob = ignore::overrides::OverrideBuilder::new(&start);
        ob.add(g)
            .map_err(|e| ToolOutcome::Error(format!("invalid glob: {e}")))?;
        let ov = ob
            .build()
            .map_err(|e| ToolOutcome::Error(format!("invalid glob: {e}")))?;
        walk.overrides(ov);
    }
    let mut out = String::new();
    let mut count = 0usize;
    // Files over the size cap, named in the output (the first few) so the model knows.
    let mut skipped: Vec<String> = Vec::new();
    let mut skipped_count = 0usize;
    'files: for entry in walk.build().filter_map(Result::ok) {
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let shown = paths::display(ctx.root, entry.path());
        let Ok(inside) = entry.path().strip_prefix(ctx.root) else {
            continue;
        };
        let Ok(file) = root.open_read(inside) else {
            continue;
        };
        let Ok(meta) = file.metadata() else {
            continue;
        };
        if meta.len() > SEARCH_FILE_MAX_BYTES {
            skipped_count += 1;
            if skipped.len() < SEARCH_SKIPPED_SHOWN {
                skipped.push(format!("{shown} ({})", files::human(meta.len())));
            }
            continue;
        }
        let limit = SEARCH_MAX_MATCHES + 1 - count;
        let Ok(files::Scan::Text { matches }) = files::scan(file, &shown, &re, limit) else {
            continue;
        };
        for (n, line) in matches {
            count += 1;
            if count > SEARCH_MAX_MATCHES {
                out.push_str(&format!(
                    "[stopped after {SEARCH_MAX_MATCHES} matches; narrow the pattern or path]\n"
                ));
                break 'files;
            }
            let line = format!("{shown}:{n}:{line}\n");
            if out.len() + line.len() > SEARCH_MAX_BYTES {
                out.push_str(&format!(
                    "[stopped at {SEARCH_MAX_BYTES} bytes of matches; narrow the pattern or path]\n"
                ));
                break 'files;
            }
            out.push_str(&line);
        }
    }
    if count == 0 {
        out = "no matches".into();
    }
    if skipped_count > 0 {
        if count == 0 {
            out.push('\n');
        }
        let more = skipped_count - skipped.len();
        out.push_str(&format!(
            "[skipped {skipped_count} files over {}: {}{}; use `run` to search them]\n",
            files::human(SEARCH_FILE_MAX_BYTES),
            skipped.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    Ok(ToolOutcome::Output(out))
}

fn edit_file(ctx: &ToolContext<'_>, args: &str) -> Step {
    #[derive(Deserialize)]
    struct A {
        path: String,
        old_text: String,
        new_text: String,
    }
    let a: A = parse(args)?;
    if a.old_text.is_empty() {
        return Err(ToolOutcome::Error(
            "old_text is empty; use write_file to create a file".into(),
        ));
    }
    // Like write_file: an edit of slipway's policy files ends the run.
    let full = writable(ctx.root, &a.path)?;
    let text = files::read_for_edit(open_read(ctx, &full, &a.path)?, &a.path).map_err(file_err)?;
    let n = count_overlapping(&text, &a.old_text);
    match n {
        0 => Err(ToolOutcome::Error(format!(
            "old_text does not occur in {}; read the file and copy the exact text, whitespace included",
            a.path
        ))),
        1 => {
            let size = (text.len() - a.old_text.len() + a.new_text.len()) as u64;
            if size > EDIT_MAX_BYTES {
                return Err(file_err(FileError::TooLarge {
                    path: a.path,
                    tool: "edit_file",
                    size,
                    cap: EDIT_MAX_BYTES,
                }));
            }
            let new = text.replacen(&a.old_text, &a.new_text, 1);
            let file = create(ctx, &full, &a.path)?;
            files::write(file, &a.path, new.as_bytes()).map_err(file_err)?;
            Ok(ToolOutcome::Output(format!("edited {}", a.path)))
        }
        n => Err(ToolOutcome::Error(format!(
            "old_text occurs {n} times in {}; include more surrounding lines so it matches exactly once",
            a.path
        ))),
    }
}

/// Occurrences of `needle` in `hay`, overlapping ones included ("aa" is in "aaa" twice), so
/// an ambiguous edit is refused rather than applied to the first match.
fn count_overlapping(hay: &str, needle: &str) -> usize {
    let mut count = 0;
    let mut start = 0;
    while let Some(i) = hay[start..].find(needle) {
        count += 1;
        let step = hay[start + i..].chars().next().map_or(1, char::len_utf8);
        start += i + step;
    }
    count
}

fn write_file(ctx: &ToolContext<'_>, args: &str) -> Step {
    #[derive(Deserialize)]
    struct A {
        path: String,
        content: String,
    }
    let a: A = parse(args)?;
    if a.content.len() > WRITE_MAX_BYTES {
        return Err(ToolOutcome::Error(format!(
            "content is {}; write_file writes at most {}: generate a large file with `run`",
            files::human(a.content.len() as u64),
            files::human(WRITE_MAX_BYTES as u64)
        )));
    }
    let full = writable(ctx.root, &a.path)?;
    let file = create(ctx, &full, &a.path)?;
    files::write(file, &a.path, a.content.as_bytes()).map_err(file_err)?;
    Ok(ToolOutcome::Output(format!(
        "wrote {} ({} bytes)",
        a.path,
        a.content.len()
    )))
}

async fn run(ctx: &ToolContext<'_>, args: &str) -> Result<ToolOutcome, SandboxError> {
    #[derive(Deserialize)]
    struct A {
        command: String,
        timeout_s: Option<u64>,
    }
    let a: A = match parse(args) {
        Ok(a) => a,
        Err(e) => return Ok(e),
    };
    if a.command.trim().is_empty() {
        return Ok(ToolOutcome::Error("command is empty".into()));
    }
    if let Verdict::Deny(reason) = ctx.guard.check(&a.command) {
        return Ok(ToolOutcome::Denied(reason));
    }
    let timeout = a
        .timeout_s
        .map(Duration::from_secs)
        .unwrap_or(ctx.max_timeout)
        .min(ctx.max_timeout)
        .max(Duration::from_secs(1));
    let out = ctx.session.exec(&a.command, timeout, ctx.cancel).await?;
    Ok(ToolOutcome::Output(out.render(ctx.output_cap)))
}

fn finish(args: &str) -> Step {
    #[derive(Deserialize)]
    struct A {
        summary: String,
    }
    let a: A = parse(args)?;
    Ok(ToolOutcome::Finish(a.summary))
}

#[cfg(test)]
mod tests;
