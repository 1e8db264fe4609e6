//! A bound on the host disk a run's agent may fill (issue "Security hardening" #13, item 4).
//!
//! The work tree and the sandbox home are host directories the sandbox writes. The fsize
//! limit (`[sandbox] tmp_mb`) bounds one file, not how many; a runaway agent could fill the
//! host disk and take every run and the bot with it. So after every agent turn's tool calls
//! the loop measures both directories ([`measure`]) and ends the run when they hold more
//! than `[sandbox] max_disk_mb` (default 2 GiB). One command can still write up to its own
//! limits before the next measurement; the bound is the limit plus that.
//!
//! The measurement counts allocated blocks (`st_blocks` × 512 bytes, stat(2)), so a sparse
//! file counts what it really uses; each inode once (hard links); without following links
//! or crossing into other file systems. It is bounded: it stops as soon as the limit or
//! [`MAX_ENTRIES`] entries are passed.
//!
//! This module owns the measurement and the verdict; the agent loop decides when to ask.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// Most directory entries one measurement visits; more counts as over the limit (so many
/// files are a runaway of their own, and bound the time one measurement takes).
pub const MAX_ENTRIES: u64 = 1_000_000;

/// The host directories a run's sandbox writes, and how much they may hold.
#[derive(Debug, Clone)]
pub struct DiskLimit {
    /// The work tree and the sandbox home (and any other writable mount).
    pub dirs: Vec<PathBuf>,
    /// Bytes all of `dirs` may hold together (`[sandbox] max_disk_mb` × 2^20).
    pub max_bytes: u64,
}

/// What one measurement found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Usage {
    /// Within the limit: bytes in use.
    Within(u64),
    /// Over it: bytes counted when the measurement stopped (at least the limit).
    OverBytes(u64),
    /// More than [`MAX_ENTRIES`] entries.
    OverEntries,
}

/// Measures `limit.dirs` (blocking: call it from `spawn_blocking`).
pub fn measure(limit: &DiskLimit) -> Usage {
    let mut bytes = 0u64;
    let mut entries = 0u64;
    let mut seen = HashSet::new();
    for dir in &limit.dirs {
        let walk = walkdir::WalkDir::new(dir)
            .follow_links(false)
            .same_file_system(true);
        for entry in walk.into_iter().filter_map(Result::ok) {
            entries += 1;
            if entries > MAX_ENTRIES {
                return Usage::OverEntries;
            }
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.nlink() > 1 && !meta.is_dir() && !seen.insert((meta.dev(), meta.ino())) {
                continue;
            }
            bytes = bytes.saturating_add(meta.blocks().saturating_mul(512));
            if bytes > limit.max_bytes {
                return Usage::OverBytes(bytes);
            }
        }
    }
    Usage::Within(bytes)
}

impl DiskLimit {
    /// Why the run ends, for the report and the thread; `None` while within the limit.
    pub async fn check(&self) -> Option<String> {
        let limit = self.clone();
        let usage = tokio::task::spawn_blocking(move || measure(&limit))
            .await
            .unwrap_or(Usage::Within(0));
        let cap = crate::tools::files::human(self.max_bytes);
        match usage {
            Usage::Within(_) => None,
            Usage::OverBytes(b) => Some(format!(
                "disk limit: the work tree and sandbox home hold more than {cap} (at least {}; [sandbox] max_disk_mb)",
                crate::tools::files::human(b)
            )),
            Usage::OverEntries => Some(format!(
                "disk limit: the work tree and sandbox home hold more than {MAX_ENTRIES} files"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocated_bytes_count_and_sparse_files_do_not() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a"), vec![1u8; 256 * 1024]).unwrap();
        std::fs::hard_link(d.path().join("a"), d.path().join("a2")).unwrap();
        std::fs::File::create(d.path().join("sparse"))
            .unwrap()
            .set_len(1 << 30)
            .unwrap();
        let limit = |max_bytes| DiskLimit {
            dirs: vec![d.path().to_path_buf()],
            max_bytes,
        };
        match measure(&limit(1 << 20)) {
            // 256 KiB once (the hard link is the same inode), plus directory blocks.
            Usage::Within(b) => assert!((256 * 1024..512 * 1024).contains(&b), "{b}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(measure(&limit(100 * 1024)), Usage::OverBytes(_)));
    }
}
