//! The store behind single-use credentials (action links now; sessions and
//! replay protection use it too once they exist).
//!
//! Keys are SHA-256 digests computed by the caller, so no token is ever held
//! in memory or sent to an external store in the clear. The embedded backend
//! is a `moka` cache with a per-entry lifetime and **no** size-based eviction:
//! a mark that is silently evicted would let a single-use link be replayed.
//! Instead, when [`Store::max_entries`] is reached, new marks are refused
//! (fail closed: the caller answers 503).

use std::time::{Duration, Instant};

use moka::{sync::Cache, Expiry};

/// A store key: the SHA-256 of a domain-separated credential identifier.
pub type Key = [u8; 32];

/// The hash of `parts`, each length-prefixed so no two inputs collide by concatenation.
pub fn key(domain: &str, parts: &[&[u8]]) -> Key {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update((domain.len() as u64).to_be_bytes());
    h.update(domain.as_bytes());
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store holds as many live marks as it may; nothing new is accepted.
    #[error("store is full")]
    Full,
}

/// Each entry lives for the duration stored as its value.
struct PerEntry;

impl Expiry<Key, Duration> for PerEntry {
    fn expire_after_create(&self, _: &Key, ttl: &Duration, _: Instant) -> Option<Duration> {
        Some(*ttl)
    }
}

/// Marks with a lifetime, shared by every connection of a process.
pub struct Store {
    marks: Cache<Key, Duration>,
    max_entries: u64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &"memory")
            .field("max_entries", &self.max_entries)
            .finish()
    }
}

impl Default for Store {
    fn default() -> Self {
        Self::memory(1_000_000)
    }
}

impl Store {
    /// The embedded store, holding at most `max_entries` live marks.
    pub fn memory(max_entries: u64) -> Self {
        Self {
            marks: Cache::builder().expire_after(PerEntry).build(),
            max_entries,
        }
    }

    pub fn max_entries(&self) -> u64 {
        self.max_entries
    }

    /// Records `key` for `ttl`. `Ok(true)` when this call recorded it,
    /// `Ok(false)` when a live mark already existed (a replay). Concurrent
    /// claims of one key: exactly one gets `true`.
    pub async fn claim_once(&self, key: Key, ttl: Duration) -> Result<bool, StoreError> {
        if self.marks.contains_key(&key) {
            return Ok(false);
        }
        if self.marks.entry_count() >= self.max_entries {
            // The count is eventually consistent; settle it before refusing.
            self.marks.run_pending_tasks();
            if self.marks.entry_count() >= self.max_entries {
                return Err(StoreError::Full);
            }
        }
        let entry = self.marks.entry(key).or_insert_with(|| ttl);
        Ok(entry.is_fresh())
    }

    /// Forgets a mark (the action it guarded did not happen).
    pub async fn release(&self, key: &Key) {
        self.marks.invalidate(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_mark_is_claimed_once_until_it_expires() {
        let s = Store::memory(10);
        let k = key("t", &[b"a"]);
        assert_eq!(s.claim_once(k, Duration::from_millis(200)).await, Ok(true));
        assert_eq!(s.claim_once(k, Duration::from_millis(200)).await, Ok(false));
        s.release(&k).await;
        assert_eq!(s.claim_once(k, Duration::from_millis(50)).await, Ok(true));
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(s.claim_once(k, Duration::from_secs(5)).await, Ok(true));
    }

    #[tokio::test]
    async fn a_full_store_refuses_rather_than_forgets() {
        let s = Store::memory(3);
        for i in 0u8..3 {
            assert_eq!(
                s.claim_once(key("t", &[&[i]]), Duration::from_secs(60))
                    .await,
                Ok(true)
            );
        }
        s.marks.run_pending_tasks();
        assert_eq!(
            s.claim_once(key("t", &[b"x"]), Duration::from_secs(60))
                .await,
            Err(StoreError::Full)
        );
        // Existing marks still answer as replays.
        assert_eq!(
            s.claim_once(key("t", &[&[0]]), Duration::from_secs(60))
                .await,
            Ok(false)
        );
    }

    #[test]
    fn keys_are_domain_separated_and_length_prefixed() {
        assert_ne!(key("a", &[b"bc"]), key("ab", &[b"c"]));
        assert_ne!(key("a", &[b"b", b"c"]), key("a", &[b"bc"]));
    }

    #[tokio::test]
    async fn concurrent_claims_of_one_key_have_one_winner() {
        let s = std::sync::Arc::new(Store::memory(100));
        let k = key("t", &[b"race"]);
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.claim_once(k, Duration::from_secs(60)).await })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            if t.await.unwrap() == Ok(true) {
                wins += 1;
            }
        }
        assert_eq!(wins, 1);
    }
}
