//! The outbox: messages a front end must send (a Slack post or edit), written and flushed
//! *before* anything tries to send them, and removed only once sent. One drain task sends
//! them in order (`crate::slack::outbox`), so a lagging event stream, a 429 storm or a
//! restart loses nothing. Each entry has an idempotency key; a sent key is remembered with
//! what the front end answered (a Slack `ts`), in the same transaction that removes the
//! entry, so nothing is sent twice and an edit can name the post it edits by key.
//!
//! The store keeps entries as opaque JSON: their shape belongs to the front end.

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::Transactional;
use sled::transaction::TransactionError;

use super::inbox::key_u64;
use super::{Result, Store, StoreError};

impl Store {
    /// Appends `entry` to the outbox and flushes; returns its key (monotonic: the drain
    /// order).
    pub async fn outbox_push<T: Serialize>(&self, entry: &T) -> Result<u64> {
        let id = self.db.generate_id()?;
        self.outbox.insert(id.to_be_bytes(), Self::encode(entry))?;
        self.flush().await?;
        Ok(id)
    }

    /// Replaces outbox entry `id` (it was not sent yet: a newer text for the same edit),
    /// then flushes. False when the entry is gone (sent meanwhile).
    pub async fn outbox_replace<T: Serialize>(&self, id: u64, entry: &T) -> Result<bool> {
        let key = id.to_be_bytes();
        let Some(current) = self.outbox.get(key)? else {
            return Ok(false);
        };
        let swapped = self
            .outbox
            .compare_and_swap(key, Some(current), Some(Self::encode(entry)))?
            .is_ok();
        if swapped {
            self.flush().await?;
        }
        Ok(swapped)
    }

    /// The outbox, oldest first.
    pub fn outbox<T: DeserializeOwned>(&self) -> Result<Vec<(u64, T)>> {
        self.outbox
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                Ok((key_u64(&k), Self::decode("outbox entry", &v)?))
            })
            .collect()
    }

    /// Entry `id` was sent and the front end answered `answer` (a Slack `ts`) in `place` (a
    /// channel): removes the entry and remembers its idempotency key `key` (when given) with
    /// the answer, and the answer's key ([`Store::sent_as`]), in one transaction, then
    /// flushes.
    pub async fn outbox_sent(
        &self,
        id: u64,
        key: Option<&str>,
        place: &str,
        answer: &str,
    ) -> Result<()> {
        let sent_key = key.map(|k| format!("sent/{k}"));
        let owner_key = format!("sent-at/{place}/{answer}");
        let done = (&self.outbox, &self.bindings).transaction(|(outbox, b)| {
            outbox.remove(&id.to_be_bytes())?;
            if let (Some(k), Some(key)) = (&sent_key, key) {
                b.insert(k.as_bytes(), Self::encode(&answer))?;
                // And the other way round: this answer (a message) is that key's.
                b.insert(owner_key.as_bytes(), Self::encode(&key))?;
            }
            Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
        });
        match done {
            Ok(()) => self.flush().await,
            Err(TransactionError::Storage(e)) => Err(StoreError::Sled(e)),
            Err(TransactionError::Abort(())) => Ok(()),
        }
    }

    /// Removes entry `id` unsent (it can never be sent: the channel is gone), then flushes.
    pub async fn outbox_drop(&self, id: u64) -> Result<()> {
        self.outbox.remove(id.to_be_bytes())?;
        self.flush().await
    }

    /// The idempotency key of the message the front end answered `answer` for in `place`:
    /// some entry's message, so not another entry's lost post.
    pub fn sent_as(&self, place: &str, answer: &str) -> Result<Option<String>> {
        self.binding(&format!("sent-at/{place}/{answer}"))
    }

    /// What the front end answered when the message with idempotency key `key` was sent.
    pub fn sent(&self, key: &str) -> Result<Option<String>> {
        self.binding(&format!("sent/{key}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_wait_in_order_until_sent_and_a_sent_key_is_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = {
            let store = Store::open(dir.path()).unwrap();
            let a = store.outbox_push(&"post A".to_string()).await.unwrap();
            let b = store.outbox_push(&"edit A".to_string()).await.unwrap();
            assert!(
                store
                    .outbox_replace(b, &"edit A, newer".to_string())
                    .await
                    .unwrap()
            );
            (a, b)
        };
        let store = Store::open(dir.path()).unwrap();
        let left: Vec<(u64, String)> = store.outbox().unwrap();
        assert_eq!(
            left,
            vec![(a, "post A".to_string()), (b, "edit A, newer".to_string())]
        );
        store
            .outbox_sent(a, Some("k/a"), "C1", "1700.1")
            .await
            .unwrap();
        assert_eq!(store.sent("k/a").unwrap().as_deref(), Some("1700.1"));
        assert_eq!(
            store.sent_as("C1", "1700.1").unwrap().as_deref(),
            Some("k/a")
        );
        assert_eq!(store.outbox::<String>().unwrap().len(), 1);
        assert!(!store.outbox_replace(a, &"x".to_string()).await.unwrap());
    }
}
