//! The long chaos run (issue #14, "Prove it"): the real `slipway serve` binary against the
//! loopback fake Slack, GitHub and model, killed with SIGKILL at chosen points and restarted
//! on the same data dir, then settled and counted (`tests/support/chaos.rs`).
//!
//! Run: `cargo bench --bench chaos` (50 kills, bubblewrap). Knobs (environment):
//! `CHAOS_KILLS` (default 50), `CHAOS_SEED` (14), `CHAOS_BACKEND` (`bwrap` or `docker`;
//! docker also counts leaked containers), `CHAOS_KEEP=1` keeps the data dir and log.
//! Exits 1 when any count is above 0.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "../tests/support/mod.rs"]
mod support;

use support::chaos::{self, ChaosOpts};
use support::serve_child::WorldOpts;

fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> std::process::ExitCode {
    slipway::tls::ensure_provider();
    // `cargo bench` passes `--bench`; there is nothing to filter here.
    let opts = ChaosOpts {
        kills: var("CHAOS_KILLS", 50),
        seed: var("CHAOS_SEED", 14),
        world: WorldOpts {
            backend: var("CHAOS_BACKEND", "bwrap".to_string()),
            ..WorldOpts::default()
        },
        verbose: true,
        ..ChaosOpts::default()
    };
    println!(
        "chaos: {} kills, seed {}, backend {}",
        opts.kills, opts.seed, opts.world.backend
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_slipway"));
    let counts = rt.block_on(chaos::run(bin, opts));
    println!("{}", counts.table());
    if counts.total() == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
