//! Changelogs out of registry artifacts: find the file at the package's root in a zip (wheel,
//! Go module zip, zipped sdist) or a gzipped tar (sdist, npm tarball, `.crate`), and cut out
//! the sections of the versions an update crosses. Pure functions over bytes and text; the
//! downloads are the caller's.

use std::cmp::Ordering;
use std::io::Read;
use std::sync::LazyLock;

/// Changelog file stems looked for at the package root, in order of preference (compared
/// case-insensitively, with `.md`, `.rst`, `.txt`, `.markdown` or no extension).
pub const CHANGELOG_NAMES: &[&str] = &[
    "CHANGELOG",
    "CHANGES",
    "HISTORY",
    "NEWS",
    "RELEASES",
    "RELEASE_NOTES",
    "RELEASE-NOTES",
];

const EXTENSIONS: &[&str] = &["", ".md", ".markdown", ".rst", ".txt"];

/// The most an excerpt holds, bytes (then it is cut at a line and a note says so).
pub const EXCERPT_CAP: usize = 4096;

/// The largest artifact or index document downloaded, bytes (64 MiB).
pub const MAX_DOWNLOAD: usize = 64 * 1024 * 1024;

/// The largest changelog file read out of an archive, bytes (a bigger one is cut; a
/// decompression bomb stops here).
const MAX_FILE: u64 = 4 * 1024 * 1024;

/// Whether an archive is a zip or a gzipped tar, and where its package root is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// A zip whose root is the archive's root (a wheel).
    Zip,
    /// A zip whose entries all start with this prefix (a Go module zip: `module@version/`).
    ZipUnder(String),
    /// A zip whose entries sit in one top directory of any name (a zipped sdist).
    ZipTopDir,
    /// A gzipped tar whose entries sit in one top directory of any name (`package/`,
    /// `name-version/`).
    TarGzTopDir,
}

/// Whether `path` (relative to the package root) names a changelog at the root; its rank in
/// [`CHANGELOG_NAMES`] order.
fn changelog_rank(path: &str) -> Option<usize> {
    if path.contains('/') {
        return None;
    }
    let upper = path.to_ascii_uppercase();
    CHANGELOG_NAMES.iter().position(|stem| {
        EXTENSIONS
            .iter()
            .any(|ext| upper == format!("{stem}{}", ext.to_ascii_uppercase()))
    })
}

/// The changelog in `bytes` laid out as `layout`: `Ok(None)` when there is none; `Err` (a
/// detail) when the archive does not unpack.
pub fn find_changelog(bytes: &[u8], layout: &Layout) -> Result<Option<String>, String> {
    let mut best: Option<(usize, String)> = None;
    let mut consider = |rel: &str, read: &mut dyn Read| -> Result<(), String> {
        let Some(rank) = changelog_rank(rel) else {
            return Ok(());
        };
        if best.as_ref().is_some_and(|(r, _)| *r <= rank) {
            return Ok(());
        }
        let mut buf = Vec::new();
        read.take(MAX_FILE)
            .read_to_end(&mut buf)
            .map_err(|e| format!("cannot read {rel}: {e}"))?;
        best = Some((rank, String::from_utf8_lossy(&buf).into_owned()));
        Ok(())
    };
    match layout {
        Layout::TarGzTopDir => {
            let gz = flate2::read::GzDecoder::new(bytes);
            let mut tar = tar::Archive::new(gz);
            for entry in tar.entries().map_err(|e| format!("not a tar.gz: {e}"))? {
                let mut entry = entry.map_err(|e| format!("bad tar entry: {e}"))?;
                if !entry.header().entry_type().is_file() {
                    continue;
                }
                let path = entry
                    .path()
                    .map_err(|e| format!("bad tar path: {e}"))?
                    .to_string_lossy()
                    .into_owned();
                if let Some((_, rel)) = path.trim_start_matches("./").split_once('/') {
                    let rel = rel.to_string();
                    consider(&rel, &mut entry)?;
                }
            }
        }
        Layout::Zip | Layout::ZipUnder(_) | Layout::ZipTopDir => {
            let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
                .map_err(|e| format!("not a zip: {e}"))?;
            for i in 0..zip.len() {
                let mut file = zip.by_index(i).map_err(|e| format!("bad zip entry: {e}"))?;
                if !file.is_file() {
                    continue;
                }
                let name = file
                    .name()
                    .map_err(|e| format!("bad zip entry name: {e}"))?
                    .to_string();
                let rel = match layout {
                    Layout::ZipUnder(prefix) => name.strip_prefix(prefix.as_str()),
                    Layout::ZipTopDir => name.split_once('/').map(|(_, r)| r),
                    _ => Some(name.as_str()),
                };
                if let Some(rel) = rel {
                    consider(rel, &mut file)?;
                }
            }
        }
    }
    Ok(best.map(|(_, text)| text))
}

/// A version in a heading line: digits with at least one dot, an optional pre-release tail.
static VERSION: LazyLock<Option<regex::Regex>> = LazyLock::new(|| {
    regex::Regex::new(r"(?:^|[^0-9A-Za-z.])v?([0-9]+(?:\.[0-9]+)+(?:[-.]?(?:a|b|rc|alpha|beta|pre|dev)\.?[0-9]*)?)").ok()
});

/// The version a heading names, if `line` (with the `next` line, for reStructuredText
/// underlines) is a heading: Markdown `#`…`######`, a line underlined with `=`, `-`, `~`,
/// `^`, `*` or `+`, or a line that starts with a version (`1.2.0 (2024-05-01)`, `v1.2.0`).
fn heading_version(line: &str, next: Option<&str>) -> Option<String> {
    let t = line.trim();
    if t.is_empty() || t.len() > 120 {
        return None;
    }
    let underlined = next.is_some_and(|n| {
        let n = n.trim();
        n.len() >= 3
            && n.len() + 2 >= t.len()
            && n.chars().all(|c| n.starts_with(c) && "=-~^*+#".contains(c))
    });
    let starts_with_version = t
        .trim_start_matches(['v', 'V', '['])
        .starts_with(|c: char| c.is_ascii_digit());
    if !(t.starts_with('#') || underlined || starts_with_version) {
        return None;
    }
    let re = VERSION.as_ref()?;
    re.captures(t)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_string())
}

/// The sections of `text` whose heading names a version in `(from, to]`, in the file's
/// order, cut to [`EXCERPT_CAP`] bytes; `None` when no heading names such a version. A
/// section runs from its heading to the next heading that names a version.
pub fn excerpt(text: &str, from: &str, to: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    let mut keep = false;
    let mut any = false;
    for (i, line) in lines.iter().enumerate() {
        if let Some(v) = heading_version(line, lines.get(i + 1).copied()) {
            keep = compare(&v, from) == Ordering::Greater && compare(&v, to) != Ordering::Greater;
            any |= keep;
        }
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !any {
        return None;
    }
    let out = out.trim_end().to_string();
    if out.len() <= EXCERPT_CAP {
        return Some(out);
    }
    let note = "\n… (cut at 4096 bytes; the full changelog is in the package)";
    let mut cut = EXCERPT_CAP - note.len();
    while !out.is_char_boundary(cut) {
        cut -= 1;
    }
    let cut = out[..cut].rfind('\n').unwrap_or(cut);
    Some(format!("{}{note}", &out[..cut]))
}

/// Orders two version strings well enough for changelog headings across ecosystems: a
/// leading `v` is ignored, the dotted numbers compare numerically (missing parts are 0), and
/// on equal numbers a pre-release (`1.0.0-rc.1`, `1.0.0rc1`, `1.0.0b2`, `…dev`) sorts
/// before the release; two pre-releases compare by their tails as text. Not a full SemVer or
/// PEP 440 order (local versions and epochs are not handled).
pub fn compare(a: &str, b: &str) -> Ordering {
    fn split(v: &str) -> (Vec<u64>, &str) {
        let v = v.trim().trim_start_matches(['v', 'V']);
        let end = v
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(v.len());
        let nums = v[..end]
            .split('.')
            .filter(|p| !p.is_empty())
            .map(|p| p.parse().unwrap_or(u64::MAX))
            .collect();
        // Build metadata (`+abc`) does not order.
        let tail = v[end..].split('+').next().unwrap_or("");
        (nums, tail.trim_start_matches(['-', '.']))
    }
    let (na, ta) = split(a);
    let (nb, tb) = split(b);
    let len = na.len().max(nb.len());
    for i in 0..len {
        let (x, y) = (
            na.get(i).copied().unwrap_or(0),
            nb.get(i).copied().unwrap_or(0),
        );
        match x.cmp(&y) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    match (ta.is_empty(), tb.is_empty()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => ta.cmp(tb),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MD: &str = "# Changelog\n\n## Unreleased\n\n- wip\n\n## [2.0.0] - 2024-05-01\n\n### Changed\n\n- Breaking: renamed.\n\n## 1.1.0\n\n- Added a thing.\n\n## v1.0.1 (2024-01-02)\n\n- Fixed 2 bugs.\n\n## 1.0.0\n\n- First.\n";

    #[test]
    fn the_sections_after_from_up_to_to_are_kept() {
        let e = excerpt(MD, "1.0.0", "1.1.0").unwrap();
        assert!(e.starts_with("## 1.1.0"), "{e}");
        assert!(
            e.contains("Added a thing") && e.contains("Fixed 2 bugs"),
            "{e}"
        );
        assert!(!e.contains("First.") && !e.contains("Breaking") && !e.contains("wip"));
        let e = excerpt(MD, "1.1.0", "2.0.0").unwrap();
        assert!(e.contains("### Changed") && e.contains("Breaking"), "{e}");
        assert!(!e.contains("Added a thing"));
        assert_eq!(excerpt(MD, "2.0.0", "3.0.0"), None);
    }

    #[test]
    fn rst_headings_and_plain_version_lines_count() {
        let rst = "Changes\n=======\n\n1.2.0 (2024-05-01)\n------------------\n\n* new\n\n1.1.9\n-----\n\n* old\n";
        let e = excerpt(rst, "1.1.9", "1.2.0").unwrap();
        assert!(e.contains("* new") && !e.contains("* old"), "{e}");
    }

    #[test]
    fn long_excerpts_are_cut_with_a_note() {
        let mut md = String::new();
        for i in (0..200).rev() {
            md += &format!("## 1.{i}.0\n\n- {}\n\n", "x".repeat(60));
        }
        let e = excerpt(&md, "1.0.0", "1.199.0").unwrap();
        assert!(e.len() <= EXCERPT_CAP, "{}", e.len());
        assert!(e.ends_with("the full changelog is in the package)"));
    }

    #[test]
    fn versions_order_numerically_and_prereleases_first() {
        assert_eq!(compare("1.10.0", "1.9.0"), Ordering::Greater);
        assert_eq!(compare("v1.2", "1.2.0"), Ordering::Equal);
        assert_eq!(compare("2.0.0-rc.1", "2.0.0"), Ordering::Less);
        assert_eq!(compare("2.0.0rc1", "1.9.9"), Ordering::Greater);
        assert_eq!(compare("1.0.0+build", "1.0.0"), Ordering::Equal);
    }

    #[test]
    fn changelog_names_are_matched_at_the_root_only() {
        assert_eq!(changelog_rank("CHANGELOG.md"), Some(0));
        assert_eq!(changelog_rank("History.rst"), Some(2));
        assert_eq!(changelog_rank("news"), Some(3));
        assert_eq!(changelog_rank("docs/CHANGELOG.md"), None);
        assert_eq!(changelog_rank("CHANGELOG.html"), None);
    }
}
