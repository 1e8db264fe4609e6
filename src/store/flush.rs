//! Durable writes without sled's `flush_async`: in sled 0.34, concurrent `flush_async` calls
//! deadlock (sled issue #1308, fixed on its main branch but never released; measured here:
//! 16 concurrent mentions left every `sled-io` thread in `iobuf::flush` →
//! `make_stable_inner` and the service stopped). So every flush is the blocking
//! `Db::flush`, on tokio's blocking pool, one at a time, as a group commit: a caller whose
//! writes were made before a flush started is covered by that flush and does not start
//! another.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Result, Store, StoreError};

/// Flush bookkeeping shared by every clone of a [`Store`].
#[derive(Default)]
pub(super) struct Flushes {
    /// Flush requests so far (a ticket per call).
    requested: AtomicU64,
    /// The highest ticket a finished flush covered.
    done: AtomicU64,
    /// One flush at a time.
    one: tokio::sync::Mutex<()>,
}

impl Store {
    /// Makes every write this caller made so far durable (sled's `Db::flush`, group
    /// committed). Errors: sled's I/O error, or the blocking task failing.
    pub(super) async fn flush(&self) -> Result<()> {
        let f: &Arc<Flushes> = &self.flushes;
        // Writes made before this ticket are covered by any flush that starts after it.
        let ticket = f.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let _one = f.one.lock().await;
        if f.done.load(Ordering::SeqCst) >= ticket {
            return Ok(());
        }
        let covers = f.requested.load(Ordering::SeqCst);
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(StoreError::Join)??;
        f.done.fetch_max(covers, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// sled #1308's shape: many tasks writing and flushing at once on a multi-threaded
    /// runtime. With `flush_async` this hangs; every write must be stored and the calls
    /// return (the timeout only turns a hang into a failure, it measures nothing).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn many_concurrent_flushes_all_return() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for round in 0..5 {
            let writes = (0..64).map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .put_binding(&format!("k/{round}/{i}"), &i)
                        .await
                        .unwrap()
                })
            });
            let all = futures::future::join_all(writes);
            tokio::time::timeout(std::time::Duration::from_secs(120), all)
                .await
                .expect("concurrent flushes hung");
        }
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        for round in 0..5 {
            for i in 0..64 {
                let v: Option<i32> = store.binding(&format!("k/{round}/{i}")).unwrap();
                assert_eq!(v, Some(i));
            }
        }
    }
}
