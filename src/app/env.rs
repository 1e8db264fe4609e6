//! `slipway env list | prune` (and `build`, which runs the `env_build` blueprint through
//! `cmd_run`): the environment snapshots under `$SLIPWAY_DATA_DIR/envs`.

use std::process::ExitCode;
use std::time::Duration;

use slipway::config::Config;
use slipway::env::snapshot::EnvStore;

/// Snapshots kept per repo by `prune` besides expiry (the newest ones).
const KEEP_PER_REPO: usize = 3;

fn store(cfg: &Config) -> EnvStore {
    EnvStore::new(
        &cfg.data_dir,
        Duration::from_secs(cfg.file.sandbox.env_ttl_h.saturating_mul(3600)),
    )
}

/// `slipway env list [--json]`: one line per snapshot, newest first.
pub fn list(cfg: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let store = store(cfg);
    let snaps = store.list()?;
    if json {
        let v: Vec<serde_json::Value> = snaps
            .iter()
            .map(|s| {
                serde_json::json!({
                    "meta": s.meta,
                    "dir": s.dir,
                    "expired": store.is_expired(s),
                    "age_s": s.age().as_secs(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    if snaps.is_empty() {
        eprintln!(
            "no environment snapshots under {}",
            cfg.data_dir.join("envs").display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<24} {:<12} {:>8} {:>9} {:>9}  source",
        "repo", "key", "age", "size", "setup"
    );
    for s in &snaps {
        let m = &s.meta;
        let age = s.age().as_secs();
        let age = if age >= 3600 {
            format!("{}h", age / 3600)
        } else {
            format!("{}m", age / 60)
        };
        let expired = if store.is_expired(s) {
            " (expired)"
        } else {
            ""
        };
        println!(
            "{:<24} {:<12} {:>8} {:>7}MB {:>8.1}s  {}{expired}",
            m.repo,
            m.key.short(),
            age,
            m.bytes / 1_000_000,
            m.setup_ms as f64 / 1000.0,
            m.source
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `slipway env prune [--all]`.
pub fn prune(cfg: &Config, all: bool) -> anyhow::Result<ExitCode> {
    let removed = store(cfg).prune(all, KEEP_PER_REPO)?;
    let bytes: u64 = removed.iter().map(|m| m.bytes).sum();
    for m in &removed {
        println!("removed {} {} ({})", m.repo, m.key.short(), m.source);
    }
    eprintln!(
        "{} snapshot(s) removed, {} MB freed",
        removed.len(),
        bytes / 1_000_000
    );
    Ok(ExitCode::SUCCESS)
}
