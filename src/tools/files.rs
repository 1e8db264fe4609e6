//! Bounded file access for the built-in file tools (issue "Security hardening" #4).
//!
//! The agent can make any file in the worktree from the sandbox (up to the fsize limit,
//! `[sandbox] tmp_mb`: a 1 GiB file of newlines, a sparse file of zeros, a FIFO), and the file
//! tools run in the slipway process, next to every other run and the bot. So every file is
//! opened without blocking, checked with `fstat` on the open descriptor to be a regular file,
//! and read through a bounded buffer: nothing here holds more of a file than its caps allow,
//! and every cap is stated to the model when it applies.
//!
//! This module owns the caps (all of them below, with their units) and the reading and
//! writing of open files; it does not resolve paths (that is [`super::paths`]), open them
//! (that is [`super::beneath`], race-free under the root) or shape the tools' arguments
//! (that is [`super::builtins`]).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};

/// Most bytes `read_file` returns in one call (numbered lines and notes). The agent loop cuts
/// any tool result at the same size, so a window never loses its "read on" note to that cut.
pub const READ_MAX_BYTES: usize = 64 * 1024;
/// Most lines `read_file` returns in one call: a screenful a model can use, and a bound on
/// the work for a file of empty lines.
pub const READ_MAX_LINES: usize = 2000;
/// Longest line `read_file` shows, bytes; the rest of the line is cut with a note.
pub const LINE_MAX_BYTES: usize = 8 * 1024;
/// Size of the read buffer, bytes.
const BUFFER_BYTES: usize = 64 * 1024;
/// Largest file `search` reads, bytes; larger files are skipped and named. Source files are
/// far smaller; this bounds the time and memory one match search spends on one file.
pub const SEARCH_FILE_MAX_BYTES: u64 = 8 << 20;
/// Most matches `search` returns.
pub const SEARCH_MAX_MATCHES: usize = 200;
/// Most bytes of matches `search` returns (below the agent's tool-result cut).
pub const SEARCH_MAX_BYTES: usize = 32 * 1024;
/// Longest matched line `search` prints, characters.
pub const SEARCH_LINE_CHARS: usize = 300;
/// Most skipped files `search` names; the rest are counted.
pub const SEARCH_SKIPPED_SHOWN: usize = 10;
/// Largest file `edit_file` loads, and the largest it writes back, bytes.
pub const EDIT_MAX_BYTES: u64 = 4 << 20;
/// Largest `content` `write_file` accepts, bytes (a model's output is far smaller).
pub const WRITE_MAX_BYTES: usize = 4 << 20;
/// Most entries `list_dir` returns.
pub const LIST_MAX: usize = 500;

/// Why a file could not be used; the message goes back to the model, which can correct the
/// call (a narrower range, `run` for a huge file). Never a failed run.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: io::Error },
    #[error("{0} is a directory; use list_dir")]
    Directory(String),
    #[error(
        "{0} is not a regular file (a FIFO, socket or device); the file tools read only regular files"
    )]
    NotRegular(String),
    #[error("{path} is a binary file ({})", human(*size))]
    Binary { path: String, size: u64 },
    #[error("{path} is {}; {tool} works on files up to {}: use `run` (sed, a script) for larger ones", human(*size), human(*cap))]
    TooLarge {
        path: String,
        tool: &'static str,
        size: u64,
        cap: u64,
    },
    #[error("{path} is not UTF-8 text")]
    NotUtf8 { path: String },
    #[error("start_line {start} is past the end ({lines} lines)")]
    PastEnd { start: usize, lines: usize },
}

/// `bytes` for people and models: `512 bytes`, `8.0 KiB`, `48.0 MiB`, `2.0 GiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Checks `file` (opened without blocking by [`super::beneath::Root`], so a FIFO never waits
/// for a writer) on its descriptor: a regular file, and its size in bytes.
fn regular(file: File, shown: &str) -> Result<(File, u64), FileError> {
    let meta = file.metadata().map_err(|source| FileError::Read {
        path: shown.into(),
        source,
    })?;
    if meta.is_dir() {
        return Err(FileError::Directory(shown.into()));
    }
    if !meta.is_file() {
        return Err(FileError::NotRegular(shown.into()));
    }
    Ok((file, meta.len()))
}

/// Maps a failed open of `shown` for `tool` to what the model is told.
pub fn open_error(shown: &str, write: bool, source: io::Error) -> FileError {
    match source.raw_os_error() {
        Some(libc::EISDIR) => FileError::Directory(shown.into()),
        // ENXIO: a FIFO without a reader, opened for writing without blocking.
        Some(libc::ENXIO) => FileError::NotRegular(shown.into()),
        _ if write => FileError::Write {
            path: shown.into(),
            source,
        },
        _ => FileError::Read {
            path: shown.into(),
            source,
        },
    }
}

/// Writes `bytes` to `file`, just opened (created or truncated) by
/// [`super::beneath::Root::create`]; refused unless it is a regular file.
pub fn write(mut file: File, shown: &str, bytes: &[u8]) -> Result<(), FileError> {
    let err = |source| FileError::Write {
        path: shown.into(),
        source,
    };
    if !file.metadata().map_err(err)?.is_file() {
        return Err(FileError::NotRegular(shown.into()));
    }
    file.write_all(bytes).map_err(err)
}

/// What [`Lines::next`] found.
enum Next {
    /// A line; `cut` when it was longer than the cap (the rest was skipped, not kept).
    Line { cut: bool },
    /// A NUL byte: the file is binary.
    Nul,
    /// End of input.
    End,
}

/// Lines of a reader, each kept up to `cap` bytes: memory stays at the buffer plus one
/// capped line, however long the lines or the file. Lines split on `\n`, with a `\r` before
/// it dropped, as `str::lines` does.
struct Lines<R> {
    inner: R,
    cap: usize,
}

impl<R: BufRead> Lines<R> {
    /// Reads the next line into `buf` (cleared first) when `keep`, else skips it.
    fn next(&mut self, buf: &mut Vec<u8>, keep: bool) -> io::Result<Next> {
        buf.clear();
        let mut any = false;
        let mut cut = false;
        loop {
            let chunk = match self.inner.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                return Ok(if any { Next::Line { cut } } else { Next::End });
            }
            any = true;
            let newline = memchr::memchr(b'\n', chunk);
            let part = &chunk[..newline.unwrap_or(chunk.len())];
            if memchr::memchr(0, part).is_some() {
                return Ok(Next::Nul);
            }
            if keep {
                let room = self.cap - buf.len();
                if part.len() > room {
                    cut = true;
                }
                buf.extend_from_slice(&part[..part.len().min(room)]);
            }
            let used = newline.map_or(chunk.len(), |i| i + 1);
            self.inner.consume(used);
            if newline.is_some() {
                if !cut && buf.last() == Some(&b'\r') {
                    buf.pop();
                }
                return Ok(Next::Line { cut });
            }
        }
    }
}

/// Lines of the regular file `file`, each capped at `line_cap` bytes, never reading past the
/// size `fstat` gave (a file that grows meanwhile is read as it was). Also returns the size.
fn lines_of(
    file: File,
    shown: &str,
    line_cap: usize,
) -> Result<(Lines<impl BufRead>, u64), FileError> {
    let (file, size) = regular(file, shown)?;
    let inner = BufReader::with_capacity(BUFFER_BYTES, file.take(size));
    Ok((
        Lines {
            inner,
            cap: line_cap,
        },
        size,
    ))
}

/// `bytes` as text; a character the cut split at the end is dropped, anything else invalid is
/// replaced.
fn text_of(bytes: &[u8], cut: bool) -> std::borrow::Cow<'_, str> {
    let mut end = bytes.len();
    if cut
        && let Err(e) = std::str::from_utf8(bytes)
        && e.error_len().is_none()
    {
        end = e.valid_up_to();
    }
    String::from_utf8_lossy(&bytes[..end])
}

/// `read_file`: lines `start..=end` (from 1) of `file`, numbered, within [`READ_MAX_LINES`]
/// and [`READ_MAX_BYTES`]; when a cap stops it, a note gives the size and where to read on.
pub fn read_window(
    file: File,
    shown: &str,
    start: usize,
    end: Option<usize>,
) -> Result<String, FileError> {
    let (mut lines, size) = lines_of(file, shown, LINE_MAX_BYTES)?;
    let read_err = |source| FileError::Read {
        path: shown.into(),
        source,
    };
    let mut buf = Vec::with_capacity(LINE_MAX_BYTES);
    let mut out = String::new();
    let mut n = 0usize;
    let mut listed = 0usize;
    let mut read_on = None;
    loop {
        match lines.next(&mut buf, n + 1 >= start).map_err(read_err)? {
            Next::End => break,
            Next::Nul => {
                return Err(FileError::Binary {
                    path: shown.into(),
                    size,
                });
            }
            Next::Line { cut } => {
                n += 1;
                if n < start {
                    continue;
                }
                let mut line = format!("{n:>5}\t{}", text_of(&buf, cut));
                if cut {
                    line.push_str(&format!(
                        "… [line {n} cut at {LINE_MAX_BYTES} bytes; use `run` to see all of it]"
                    ));
                }
                line.push('\n');
                if listed == READ_MAX_LINES || out.len() + line.len() > READ_MAX_BYTES {
                    read_on = Some(n);
                    break;
                }
                out.push_str(&line);
                listed += 1;
                if end == Some(n) {
                    break;
                }
            }
        }
    }
    if let Some(next) = read_on {
        out.push_str(&format!(
            "[{shown} is {}; showing lines {start}–{}; read on with start_line {next} (at most {READ_MAX_LINES} lines or {} per call)]\n",
            human(size),
            next - 1,
            human(READ_MAX_BYTES as u64)
        ));
    } else if n == 0 {
        out.push_str("[empty file]");
    } else if n < start {
        return Err(FileError::PastEnd { start, lines: n });
    }
    Ok(out)
}

/// What `search` found in one file.
pub enum Scan {
    /// The file holds a NUL byte: binary, skipped like ripgrep does.
    Binary,
    /// Up to `limit` matches (line number from 1, the line cut at [`SEARCH_LINE_CHARS`]).
    Text { matches: Vec<(usize, String)> },
}

/// Matches of `re` in the regular file `file`, at most `limit` of them. The caller skips
/// files over [`SEARCH_FILE_MAX_BYTES`] first; reading is capped there too, so a file that
/// grew since is read no further. After `limit` matches the rest is still read (bounded, and
/// no longer matched), so a binary file is never reported by its first lines.
pub fn scan(file: File, shown: &str, re: &regex::Regex, limit: usize) -> Result<Scan, FileError> {
    let cap = SEARCH_FILE_MAX_BYTES as usize;
    let (file, _) = regular(file, shown)?;
    let inner = BufReader::with_capacity(BUFFER_BYTES, file.take(SEARCH_FILE_MAX_BYTES));
    let mut lines = Lines { inner, cap };
    let mut buf = Vec::new();
    let mut matches = Vec::new();
    let mut n = 0usize;
    loop {
        let keep = matches.len() < limit;
        let next = lines
            .next(&mut buf, keep)
            .map_err(|source| FileError::Read {
                path: shown.into(),
                source,
            })?;
        match next {
            Next::End => return Ok(Scan::Text { matches }),
            Next::Nul => return Ok(Scan::Binary),
            Next::Line { .. } => {
                n += 1;
                if !keep {
                    continue;
                }
                let line = String::from_utf8_lossy(&buf);
                if re.is_match(&line) {
                    matches.push((n, crate::task::truncate_chars(&line, SEARCH_LINE_CHARS)));
                }
            }
        }
    }
}

/// The text of the regular file `file` for `edit_file`: refused over [`EDIT_MAX_BYTES`]
/// before anything is read, and never read past it.
pub fn read_for_edit(file: File, shown: &str) -> Result<String, FileError> {
    let (file, size) = regular(file, shown)?;
    let too_large = |size| FileError::TooLarge {
        path: shown.into(),
        tool: "edit_file",
        size,
        cap: EDIT_MAX_BYTES,
    };
    if size > EDIT_MAX_BYTES {
        return Err(too_large(size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(EDIT_MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| FileError::Read {
            path: shown.into(),
            source,
        })?;
    if bytes.len() as u64 > EDIT_MAX_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|_| FileError::NotUtf8 { path: shown.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_in(text: &[u8], cap: usize) -> Vec<(String, bool)> {
        let mut l = Lines {
            inner: BufReader::with_capacity(4, text),
            cap,
        };
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            match l.next(&mut buf, true).unwrap() {
                Next::Line { cut } => out.push((String::from_utf8(buf.clone()).unwrap(), cut)),
                Next::End => return out,
                Next::Nul => panic!("NUL"),
            }
        }
    }

    #[test]
    fn lines_split_like_str_lines_and_are_capped() {
        for t in ["", "a", "a\n", "a\r\nb", "\n\n", "x\ry\n"] {
            let want: Vec<(String, bool)> = t.lines().map(|s| (s.to_string(), false)).collect();
            assert_eq!(lines_in(t.as_bytes(), 100), want, "{t:?}");
        }
        assert_eq!(
            lines_in(b"abcdefghij\nxy\n", 4),
            [("abcd".to_string(), true), ("xy".to_string(), false)]
        );
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(human(512), "512 bytes");
        assert_eq!(human(8 * 1024), "8.0 KiB");
        assert_eq!(human(48 << 20), "48.0 MiB");
        assert_eq!(human(2 << 30), "2.0 GiB");
    }

    #[test]
    fn a_cut_in_the_middle_of_a_character_drops_it() {
        assert_eq!(text_of(&"ab\u{e9}".as_bytes()[..3], true), "ab");
        assert_eq!(text_of(b"a\xffb", false), "a\u{fffd}b");
    }
}
