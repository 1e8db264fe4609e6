//! The short chaos run (issue #14): the real `slipway serve` binary against the loopback
//! fakes, killed with SIGKILL 5 times at chosen points (after a mention, on its ack, at node
//! boundaries, mid-push, mid-PR, mid-merge, mid-egress) and restarted on the same data dir.
//! Every count in the table must be 0. The long run is `cargo bench --bench chaos`.

use crate::support::chaos::{self, ChaosOpts};

// Ignored until #14 item 6 (a startup sweep of worktrees, git dirs and homes left by a
// SIGKILL) lands: at merge of main 0b059f9 every other count is 0 and this one is 5. Run it
// with `cargo test --test all chaos -- --ignored --nocapture`.
#[ignore = "fails until the post-crash sweep (#14 item 6) lands: leaked worktrees/homes > 0"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_kills_lose_nothing_double_nothing_and_leave_nothing_behind() {
    let opts = ChaosOpts {
        kills: std::env::var("CHAOS_KILLS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
        seed: std::env::var("CHAOS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(14),
        verbose: true,
        ..ChaosOpts::default()
    };
    let counts = chaos::run(std::path::Path::new(env!("CARGO_BIN_EXE_slipway")), opts).await;
    eprintln!("{}", counts.table());
    assert!(counts.mentions > 0, "the workload ran");
    assert_eq!(counts.total(), 0, "\n{}", counts.table());
}
