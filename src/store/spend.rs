//! The spend ledger behind `[budgets]` (`crate::budget`): model spend in USD and tokens per
//! task (all its revisions), per requester per UTC day and per repo per UTC day, in the
//! `spend` tree (opened on first use).
//!
//! Spend is recorded after each model response, not at a run's end, so a restart keeps
//! what was spent. One response is one entry: its three counters and an `once/<entry>`
//! marker change in one sled transaction, so a retried record of the same entry (a caller
//! that saw an error after the commit) is not counted twice, and a crash leaves all or
//! none of it.
//!
//! Keys: `task/<task id>`, `requester/<YYYY-MM-DD>/<user>`, `repo/<YYYY-MM-DD>/<repo>`,
//! `once/<entry>`; values `{"v":1,"data":{"usd":…,"tokens":…}}`.

use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::{Result, Store, StoreError};
use crate::budget::{Spend, SpendTotals};

/// Who a spend is counted against: the task, its requester and its repo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendKeys {
    /// The task (all revisions count).
    pub task_id: String,
    /// The requester's Slack user ID (or the CLI's `--requester`).
    pub requester: String,
    /// The repo's configured name (`acme/api`).
    pub repo: String,
}

fn task_key(task_id: &str) -> String {
    format!("task/{task_id}")
}
fn requester_key(day: &str, user: &str) -> String {
    format!("requester/{day}/{user}")
}
fn repo_key(day: &str, repo: &str) -> String {
    format!("repo/{day}/{repo}")
}

impl Store {
    fn spend_tree(&self) -> Result<sled::Tree> {
        Ok(self.db.open_tree("spend")?)
    }

    fn spend_at(tree: &sled::Tree, key: &str) -> Result<Spend> {
        tree.get(key.as_bytes())?
            .map(|b| Self::decode(&format!("spend {key}"), &b))
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// Adds `add` to the task's, the requester's and the repo's counters of `day`
    /// (`YYYY-MM-DD`, UTC) in one transaction, then flushes. `entry` names the spend (a
    /// run id and step): an entry already recorded is not counted again, and the call
    /// returns false.
    pub async fn record_spend(
        &self,
        keys: &SpendKeys,
        day: &str,
        entry: &str,
        add: Spend,
    ) -> Result<bool> {
        let tree = self.spend_tree()?;
        let once = format!("once/{entry}");
        let counters = [
            task_key(&keys.task_id),
            requester_key(day, &keys.requester),
            repo_key(day, &keys.repo),
        ];
        let done = tree.transaction(|tx| {
            if tx.get(once.as_bytes())?.is_some() {
                return Err(ConflictableTransactionError::Abort(None));
            }
            for key in &counters {
                let now: Spend = match tx.get(key.as_bytes())? {
                    Some(b) => Self::decode(&format!("spend {key}"), &b)
                        .map_err(|e| ConflictableTransactionError::Abort(Some(e)))?,
                    None => Spend::default(),
                };
                let next = Spend {
                    usd: now.usd + add.usd,
                    tokens: now.tokens + add.tokens,
                };
                tx.insert(key.as_bytes(), Self::encode(&next))?;
            }
            tx.insert(once.as_bytes(), Self::encode(&true))?;
            Ok(())
        });
        match done {
            Ok(()) => {
                self.flush().await?;
                Ok(true)
            }
            Err(TransactionError::Abort(None)) => Ok(false),
            Err(TransactionError::Abort(Some(e))) => Err(e),
            Err(TransactionError::Storage(e)) => Err(StoreError::Sled(e)),
        }
    }

    /// The task's spend (all days) and the requester's and repo's spend on `day`.
    pub fn spend(&self, keys: &SpendKeys, day: &str) -> Result<SpendTotals> {
        let tree = self.spend_tree()?;
        Ok(SpendTotals {
            task: Self::spend_at(&tree, &task_key(&keys.task_id))?,
            requester_day: Self::spend_at(&tree, &requester_key(day, &keys.requester))?,
            repo_day: Self::spend_at(&tree, &repo_key(day, &keys.repo))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(task: &str) -> SpendKeys {
        SpendKeys {
            task_id: task.into(),
            requester: "U0ALICE".into(),
            repo: "acme/calc".into(),
        }
    }

    const ONE: Spend = Spend {
        usd: 0.25,
        tokens: 1100,
    };

    #[tokio::test]
    async fn spend_survives_a_restart_and_is_counted_once_per_entry() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let k = keys("t1");
            assert!(
                store
                    .record_spend(&k, "2026-11-30", "r1/1", ONE)
                    .await
                    .unwrap()
            );
            assert!(
                store
                    .record_spend(&k, "2026-11-30", "r1/2", ONE)
                    .await
                    .unwrap()
            );
            // The same entry again (a retried write) is not counted.
            assert!(
                !store
                    .record_spend(&k, "2026-11-30", "r1/2", ONE)
                    .await
                    .unwrap()
            );
        }
        let store = Store::open(dir.path()).unwrap();
        let t = store.spend(&keys("t1"), "2026-11-30").unwrap();
        assert_eq!(t.task.tokens, 2200);
        assert!((t.task.usd - 0.5).abs() < 1e-9);
        assert_eq!(t.requester_day, t.task);
        assert_eq!(t.repo_day, t.task);
    }

    #[tokio::test]
    async fn daily_counters_roll_over_at_the_utc_date_and_tasks_add_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .record_spend(&keys("t1"), "2026-11-29", "r1/1", ONE)
            .await
            .unwrap();
        store
            .record_spend(&keys("t2"), "2026-11-30", "r2/1", ONE)
            .await
            .unwrap();
        store
            .record_spend(&keys("t1"), "2026-11-30", "r3/1", ONE)
            .await
            .unwrap();
        let today = store.spend(&keys("t1"), "2026-11-30").unwrap();
        // The task counts every day; the requester and repo only today's two entries.
        assert_eq!(today.task.tokens, 2200);
        assert_eq!(today.requester_day.tokens, 2200);
        assert_eq!(today.repo_day.tokens, 2200);
        let yesterday = store.spend(&keys("t2"), "2026-11-29").unwrap();
        assert_eq!(yesterday.task.tokens, 1100);
        assert_eq!(yesterday.requester_day.tokens, 1100);
        let fresh = store.spend(&keys("t2"), "2026-12-01").unwrap();
        assert_eq!(fresh.requester_day, Spend::default());
    }
}
