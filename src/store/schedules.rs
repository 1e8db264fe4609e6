//! What the store remembers of each schedule (`crate::schedule`), keyed by its id: when
//! it was first seen and the last slot fired. A slot is claimed by a compare-and-swap
//! before anything is started for it, so of two schedulers sharing this store (a restart
//! racing its predecessor, or future replicas on a shared backend) exactly one fires each
//! slot. The `schedules` tree is opened on first use.

use serde::{Deserialize, Serialize};

use super::{Result, Store};

/// One schedule's record (stored as `{"v":1,"data":…}` under its id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleRecord {
    /// When this process (or an earlier one) first saw the schedule, unix ms: slots before
    /// it are never fired.
    pub first_seen_ms: u64,
    /// The newest slot claimed, unix ms (its start may have failed: it is not retried).
    pub last_slot_ms: Option<u64>,
}

impl Store {
    fn schedules(&self) -> Result<sled::Tree> {
        Ok(self.db.open_tree("schedules")?)
    }

    /// Schedule `id`'s record, if it was ever seen.
    pub fn schedule_record(&self, id: &str) -> Result<Option<ScheduleRecord>> {
        self.schedules()?
            .get(id.as_bytes())?
            .map(|b| Self::decode(&format!("schedule {id}"), &b))
            .transpose()
    }

    /// Schedule `id`'s record, created (first seen at `now_ms`, nothing fired) and flushed
    /// if there is none. Of two callers racing, both get the one record stored.
    pub async fn schedule_seen(&self, id: &str, now_ms: u64) -> Result<ScheduleRecord> {
        let tree = self.schedules()?;
        let fresh = ScheduleRecord {
            first_seen_ms: now_ms,
            last_slot_ms: None,
        };
        match tree.compare_and_swap(
            id.as_bytes(),
            None as Option<&[u8]>,
            Some(Self::encode(&fresh)),
        )? {
            Ok(()) => {
                self.flush().await?;
                Ok(fresh)
            }
            Err(e) => match e.current {
                Some(b) => Self::decode(&format!("schedule {id}"), &b),
                None => Ok(fresh),
            },
        }
    }

    /// Claims slot `slot_ms` of schedule `id`: true (stored and flushed) only when the
    /// stored last slot is older, or there is none; false when this slot or a newer one
    /// was claimed already. Atomic (a compare-and-swap loop): of any number of callers
    /// claiming one slot, one gets true.
    pub async fn claim_schedule_slot(&self, id: &str, slot_ms: u64) -> Result<bool> {
        let tree = self.schedules()?;
        loop {
            let current = tree.get(id.as_bytes())?;
            let record = match &current {
                Some(b) => Self::decode::<ScheduleRecord>(&format!("schedule {id}"), b)?,
                None => ScheduleRecord {
                    first_seen_ms: slot_ms,
                    last_slot_ms: None,
                },
            };
            if record.last_slot_ms.is_some_and(|last| last >= slot_ms) {
                return Ok(false);
            }
            let claimed = ScheduleRecord {
                last_slot_ms: Some(slot_ms),
                ..record
            };
            if tree
                .compare_and_swap(id.as_bytes(), current, Some(Self::encode(&claimed)))?
                .is_ok()
            {
                self.flush().await?;
                return Ok(true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slot_is_claimed_once_and_never_after_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let seen = store.schedule_seen("abc", 1_000).await.unwrap();
        assert_eq!(seen.last_slot_ms, None);
        // A second sighting keeps the first.
        assert_eq!(store.schedule_seen("abc", 9_000).await.unwrap(), seen);
        assert!(store.claim_schedule_slot("abc", 60_000).await.unwrap());
        assert!(!store.claim_schedule_slot("abc", 60_000).await.unwrap());
        assert!(store.claim_schedule_slot("abc", 120_000).await.unwrap());
        assert!(!store.claim_schedule_slot("abc", 60_000).await.unwrap());
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        let r = store.schedule_record("abc").unwrap().unwrap();
        assert_eq!((r.first_seen_ms, r.last_slot_ms), (1_000, Some(120_000)));
        assert_eq!(store.schedule_record("other").unwrap(), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn of_many_racing_claims_of_one_slot_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let claims = (0..32).map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_schedule_slot("s", 60_000).await.unwrap() })
        });
        let won = futures::future::join_all(claims)
            .await
            .into_iter()
            .filter(|r| *r.as_ref().unwrap())
            .count();
        assert_eq!(won, 1);
    }
}
