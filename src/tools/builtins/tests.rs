//! Unit tests of the built-in tools, called as the agent calls them (`call`), on temp dirs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{ToolContext, ToolOutcome, call};
use crate::sandbox::{ExecOutput, Result, Session, StdioProcess};
use crate::tools::guard::CommandGuard;

/// File tools never reach the sandbox.
struct NoSandbox;

#[async_trait::async_trait]
impl Session for NoSandbox {
    async fn exec(&self, _: &str, _: Duration, _: &CancellationToken) -> Result<ExecOutput> {
        panic!("file tools do not run commands")
    }
    async fn spawn_stdio(&self, _: &[String]) -> Result<StdioProcess> {
        panic!("file tools do not start processes")
    }
    async fn close(&self) -> Result<()> {
        Ok(())
    }
}

fn tool(root: &Path, name: &str, args: Value) -> ToolOutcome {
    let guard = CommandGuard::new(&[]);
    let routes = crate::tools::Routes::new();
    let cancel = CancellationToken::new();
    let ctx = ToolContext {
        root,
        session: &NoSandbox,
        cancel: &cancel,
        max_timeout: Duration::from_secs(1),
        output_cap: 1024,
        guard: &guard,
        mcp: None,
        routes: &routes,
    };
    futures::executor::block_on(call(&ctx, name, &args.to_string())).unwrap()
}

fn repo() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let r = std::fs::canonicalize(d.path()).unwrap();
    (d, r)
}

/// A sparse file of `len` zero bytes: instant, and no disk is used.
fn sparse(path: &Path, len: u64) {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
}

/// A file of `len` bytes, all `byte`, written in 1 MiB chunks.
fn filled(path: &Path, byte: u8, len: usize) {
    let chunk = vec![byte; 1 << 20];
    let mut f = std::fs::File::create(path).unwrap();
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len());
        f.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
}

fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Serialises the tests that measure peak memory: the high-water mark is per process.
static MEMORY: Mutex<()> = Mutex::new(());

/// Most memory ever resident during `f`, over what was resident before it, in bytes: the
/// process's high-water mark (VmHWM) is reset first (`/proc/self/clear_refs`, 5).
fn peak_growth<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let _one = MEMORY.lock().unwrap_or_else(|e| e.into_inner());
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = status_kib("VmRSS:");
    let out = f();
    let peak = status_kib("VmHWM:");
    (out, peak.saturating_sub(before) * 1024)
}

/// Runs the memory-measuring test `name` alone in a fresh process of this test binary (the
/// peak is the whole process's, and other tests allocate meanwhile): true in that process,
/// where the test goes on; false in the parent, after asserting the child passed.
fn in_own_process(name: &str) -> bool {
    if std::env::var_os("SLIPWAY_MEMORY_TEST").is_some() {
        return true;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            &format!("tools::builtins::tests::{name}"),
            "--exact",
            "--test-threads=1",
        ])
        .env("SLIPWAY_MEMORY_TEST", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{name} in its own process:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

/// Any file tool may hold a few buffers, never a file.
/// Whole-process peak of a process running that one test ([`in_own_process`]); loading
/// the files these tests make would take 80 MiB to 2 GiB.
const PEAK: u64 = 64 << 20;

fn output(o: ToolOutcome) -> String {
    match o {
        ToolOutcome::Output(s) => s,
        other => panic!("expected output, got {other:?}"),
    }
}

fn error(o: ToolOutcome) -> String {
    match o {
        ToolOutcome::Error(s) => s,
        other => panic!("expected a tool error, got {other:?}"),
    }
}

#[test]
fn read_file_shows_a_window_of_a_huge_file_of_newlines_in_bounded_memory() {
    if !in_own_process("read_file_shows_a_window_of_a_huge_file_of_newlines_in_bounded_memory") {
        return;
    }
    let (_d, r) = repo();
    filled(&r.join("nl.txt"), b'\n', 48 << 20);
    let (out, peak) = peak_growth(|| tool(&r, "read_file", json!({"path": "nl.txt"})));
    let out = output(out);
    assert!(peak < PEAK, "read_file used {peak} bytes");
    assert!(
        out.contains("nl.txt is 48.0 MiB; showing lines 1–2000") && out.contains("start_line 2001"),
        "{}",
        &out[out.len().saturating_sub(300)..]
    );
    assert_eq!(out.lines().filter(|l| l.ends_with('\t')).count(), 2000);
    // Deep in the file: only the lines asked for, still bounded.
    let (out, peak) = peak_growth(|| {
        tool(
            &r,
            "read_file",
            json!({"path": "nl.txt", "start_line": 40_000_000, "end_line": 40_000_001}),
        )
    });
    assert!(peak < PEAK, "read_file used {peak} bytes");
    assert_eq!(output(out), "40000000\t\n40000001\t\n");
    let past = error(tool(
        &r,
        "read_file",
        json!({"path": "nl.txt", "start_line": 60_000_000}),
    ));
    assert!(past.contains("past the end (50331648 lines)"), "{past}");
}

#[test]
fn read_file_refuses_a_sparse_2_gib_file_without_loading_it() {
    if !in_own_process("read_file_refuses_a_sparse_2_gib_file_without_loading_it") {
        return;
    }
    let (_d, r) = repo();
    sparse(&r.join("big.bin"), 2 << 30);
    let (out, peak) = peak_growth(|| tool(&r, "read_file", json!({"path": "big.bin"})));
    assert!(peak < PEAK, "read_file used {peak} bytes");
    let e = error(out);
    assert!(e.contains("binary") && e.contains("2.0 GiB"), "{e}");
}

#[test]
fn read_file_cuts_a_very_long_line_with_a_note() {
    if !in_own_process("read_file_cuts_a_very_long_line_with_a_note") {
        return;
    }
    let (_d, r) = repo();
    filled(&r.join("min.js"), b'x', 40 << 20);
    let (out, peak) = peak_growth(|| tool(&r, "read_file", json!({"path": "min.js"})));
    assert!(peak < PEAK, "read_file used {peak} bytes");
    let out = output(out);
    assert!(out.len() < 16 * 1024, "{} bytes returned", out.len());
    assert!(
        out.contains("[line 1 cut at 8192 bytes"),
        "{}",
        &out[8000..]
    );
}

#[test]
fn search_skips_files_over_the_size_cap_and_names_them() {
    if !in_own_process("search_skips_files_over_the_size_cap_and_names_them") {
        return;
    }
    let (_d, r) = repo();
    std::fs::write(r.join("small.txt"), "a needle here\n").unwrap();
    sparse(&r.join("big.bin"), 2 << 30);
    filled(&r.join("nl.txt"), b'\n', 48 << 20);
    for i in 0..12 {
        sparse(&r.join(format!("z{i:02}.dat")), 64 << 20);
    }
    let (out, peak) = peak_growth(|| tool(&r, "search", json!({"pattern": "needle"})));
    assert!(peak < PEAK, "search used {peak} bytes");
    let out = output(out);
    assert!(out.contains("small.txt:1:a needle here"), "{out}");
    assert!(
        out.contains("skipped 14 files over 8.0 MiB") && out.contains("and 4 more"),
        "{out}"
    );
    assert!(
        out.lines().count() < 20,
        "the skipped list is bounded: {out}"
    );
}

#[test]
fn search_caps_its_output_bytes() {
    let (_d, r) = repo();
    let line = format!("needle {}\n", "y".repeat(290));
    std::fs::write(r.join("many.txt"), line.repeat(150)).unwrap();
    let out = output(tool(&r, "search", json!({"pattern": "needle"})));
    assert!(out.len() <= 33 * 1024, "{} bytes", out.len());
    assert!(
        out.contains("[stopped at 32768 bytes of matches"),
        "{}",
        &out[out.len() - 200..]
    );
}

#[test]
fn edit_file_refuses_a_file_over_the_cap_and_leaves_it_alone() {
    if !in_own_process("edit_file_refuses_a_file_over_the_cap_and_leaves_it_alone") {
        return;
    }
    let (_d, r) = repo();
    sparse(&r.join("big.bin"), 2 << 30);
    let args = json!({"path": "big.bin", "old_text": "a", "new_text": "b"});
    let (out, peak) = peak_growth(|| tool(&r, "edit_file", args));
    assert!(peak < PEAK, "edit_file used {peak} bytes");
    let e = error(out);
    assert!(
        e.contains("big.bin is 2.0 GiB") && e.contains("4.0 MiB"),
        "{e}"
    );
    assert_eq!(std::fs::metadata(r.join("big.bin")).unwrap().len(), 2 << 30);
}

#[test]
fn write_file_refuses_oversized_content() {
    let (_d, r) = repo();
    let content = "z".repeat(5 << 20);
    let e = error(tool(
        &r,
        "write_file",
        json!({"path": "huge.txt", "content": content}),
    ));
    assert!(e.contains("5.0 MiB") && e.contains("4.0 MiB"), "{e}");
    assert!(!r.join("huge.txt").exists());
}

#[test]
fn file_tools_refuse_a_fifo_instead_of_blocking() {
    let (_d, r) = repo();
    let made = std::process::Command::new("mkfifo")
        .arg(r.join("pipe"))
        .status()
        .unwrap();
    assert!(made.success());
    for (name, args) in [
        ("read_file", json!({"path": "pipe"})),
        (
            "edit_file",
            json!({"path": "pipe", "old_text": "a", "new_text": "b"}),
        ),
        ("write_file", json!({"path": "pipe", "content": "x"})),
    ] {
        let (tx, rx) = std::sync::mpsc::channel();
        let root = r.clone();
        std::thread::spawn(move || tx.send(tool(&root, name, args)));
        let out = rx.recv_timeout(Duration::from_secs(10));
        let e = error(out.unwrap_or_else(|_| panic!("{name} blocked on a FIFO")));
        assert!(e.contains("not a regular file"), "{name}: {e}");
    }
}

#[test]
fn overlapping_matches_count() {
    assert_eq!(super::count_overlapping("aaa", "aa"), 2);
    assert_eq!(super::count_overlapping("a-b a-b", "a-b"), 2);
    assert_eq!(super::count_overlapping("ünï ünï", "ï ü"), 1);
    assert_eq!(super::count_overlapping("x", "y"), 0);
}

#[test]
fn editing_slipway_policy_files_halts_the_run_like_writing_them() {
    let (_d, root) = repo();
    std::fs::create_dir_all(root.join(".slipway")).unwrap();
    std::fs::write(root.join(".slipway/policy.toml"), "max_files = 5\n").unwrap();
    let out = tool(
        &root,
        "edit_file",
        json!({"path": ".slipway/policy.toml", "old_text": "max_files = 5", "new_text": "max_files = 500"}),
    );
    assert!(
        matches!(&out, ToolOutcome::Halt(m) if m.contains(".slipway/**")),
        "{out:?}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join(".slipway/policy.toml")).unwrap(),
        "max_files = 5\n"
    );
}

#[test]
fn what_write_file_creates_belongs_to_the_sandbox_user() {
    use crate::sandbox::user::SandboxUser;
    use std::os::unix::fs::MetadataExt;
    let user = SandboxUser::of_host();
    let (_d, r) = repo();
    tool(
        &r,
        "write_file",
        json!({"path": "new/dir/f.txt", "content": "x\n"}),
    );
    for p in ["new", "new/dir", "new/dir/f.txt"] {
        let m = std::fs::metadata(r.join(p)).unwrap();
        assert_eq!((m.uid(), m.gid()), (user.uid, user.gid), "{p}");
    }
}

/// Issue #13 item 3: a sandboxed MCP server keeps `/workspace` writable while the host file
/// tools run, and can swap a directory for a symlink out of the repo between any check and
/// any use. A thread does exactly that, atomically (`RENAME_EXCHANGE` of `d` with the link
/// `d_alt`), while every file tool works on `d/…` over and over: nothing outside the root is
/// ever written, edited, read, listed or searched.
#[test]
fn file_tools_never_cross_a_directory_swapped_for_a_symlink_mid_call() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    /// Calls of each tool; the old check-then-open code crossed within a few hundred here.
    const ROUNDS: usize = 4000;
    let (_d, r) = repo();
    let outside_dir = tempfile::tempdir().unwrap();
    let out = std::fs::canonicalize(outside_dir.path()).unwrap();
    std::fs::write(out.join("secret.txt"), "OUTSIDE-SECRET\n").unwrap();
    std::fs::write(out.join("edit.txt"), "count\n").unwrap();
    std::fs::write(out.join("outside-only-name"), "x\n").unwrap();
    std::fs::create_dir(r.join("d")).unwrap();
    std::fs::write(r.join("d/secret.txt"), "inside\n").unwrap();
    std::os::unix::fs::symlink(&out, r.join("d_alt")).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let swapper = {
        let (stop, swaps, r) = (stop.clone(), swaps.clone(), r.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                rustix::fs::renameat_with(
                    rustix::fs::CWD,
                    r.join("d"),
                    rustix::fs::CWD,
                    r.join("d_alt"),
                    rustix::fs::RenameFlags::EXCHANGE,
                )
                .unwrap();
                swaps.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    // What crossed the root, by tool, with the first example of each.
    let mut crossed = std::collections::BTreeMap::new();
    let mut wrote_inside = 0;
    for i in 0..ROUNDS {
        let w = tool(
            &r,
            "write_file",
            json!({"path": format!("d/new/f{}.txt", i % 7), "content": "payload\n"}),
        );
        if matches!(w, ToolOutcome::Output(_)) {
            wrote_inside += 1;
        }
        tool(
            &r,
            "edit_file",
            json!({"path": "d/edit.txt", "old_text": "count", "new_text": "EDITED"}),
        );
        let seen = [
            (
                "read_file",
                tool(&r, "read_file", json!({"path": "d/secret.txt"})),
            ),
            ("list_dir", tool(&r, "list_dir", json!({"path": "d"}))),
            (
                "search",
                tool(&r, "search", json!({"pattern": "SECRET", "path": "d"})),
            ),
        ];
        for (name, o) in seen {
            let text = format!("{o:?}");
            if text.contains("OUTSIDE-SECRET") || text.contains("outside-only-name") {
                crossed.entry(name).or_insert(format!("round {i}: {text}"));
            }
        }
        if out.join("new").exists() {
            crossed
                .entry("write_file")
                .or_insert(format!("round {i}: wrote outside"));
        }
        if std::fs::read_to_string(out.join("edit.txt")).unwrap() != "count\n" {
            crossed
                .entry("edit_file")
                .or_insert(format!("round {i}: edited outside"));
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    assert!(crossed.is_empty(), "{crossed:#?}");
    assert!(
        swaps.load(Ordering::Relaxed) > ROUNDS as u64,
        "the swap ran"
    );
    assert!(
        wrote_inside > 0,
        "some writes landed inside while the swap ran"
    );
    assert!(!out.join("new").exists());
    assert_eq!(
        std::fs::read_to_string(out.join("edit.txt")).unwrap(),
        "count\n"
    );
}
