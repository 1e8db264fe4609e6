//! The short chaos run (issue #14): the real `slipway serve` binary against the loopback
//! fakes, killed with SIGKILL 5 times at chosen points (after a mention, on its ack, at node
//! boundaries, mid-push, mid-PR, mid-merge, mid-egress) and restarted on the same data dir.
//! Every count in the table must be 0. The long run is `cargo bench --bench chaos`.

use crate::support::chaos::{self, ChaosOpts};

// Ignored until it passes every time. With main 8f5d570 merged (commit c329669), two runs of
// this test: one counted 0 everywhere, the other 1 finished run without a report post. With
// main 0b059f9, leaked dirs were 5; before the #14 fixes, 2 lost tasks, 1 thread without a
// report, 1 unreported run and 5 leaked dirs. Run it with
// `cargo test --test all chaos -- --ignored --nocapture` (`CHAOS_KILLS`, `CHAOS_SEED`).
#[ignore = "not yet 0 on every run: 1 of 2 runs at c329669 had a finished run without a report post"]
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
