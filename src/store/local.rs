//! A short local cache of session reads in front of Redis (opt-in:
//! `store.local_cache`), so that a session in steady use costs one Redis
//! round trip per cache lifetime instead of one per request.
//!
//! What it keeps: the record and generation a use read from Redis, and when.
//! A hit is served without Redis only while the record's absolute cap and
//! idle time still hold at the hit's own clock; the idle expiry in Redis is
//! slid again by the first use after the entry's lifetime (so it may end a
//! session up to that lifetime early, never late).
//!
//! Why revocation stays immediate:
//!
//! - Every logout and business revocation is published on a Redis channel
//!   (`<prefix>invalidate`) in the same transaction as the write, by every
//!   replica configured with `local_cache` (all of a deployment's replicas
//!   must be). Each caching replica holds a subscription and drops what a
//!   message names as soon as it arrives: the delay is one push on an open
//!   connection, the same as any reply.
//! - The replica that makes the change drops its own entry before answering.
//! - Entries are served only while the subscription is up (confirmed by a
//!   `PING` every second, answered within 250 ms). A dropped or silent
//!   subscription (then within 1.25 s) stops all serving
//!   from the cache and empties it; it resumes, empty, once resubscribed, so
//!   a message missed while down cannot leave a stale entry.
//! - A read that raced an invalidation does not keep what it read (a counter
//!   of invalidations is checked under a per-key lock the invalidation also
//!   takes; see [`LocalCache::keep`]).
//! - Even a lost message cannot keep a revoked session alive longer than
//!   the entry's lifetime, which the configuration caps at 10 s.

use std::sync::{
    atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::SeqCst},
    Arc, Mutex, Weak,
};
use std::time::Duration;

use futures_util::StreamExt;
use moka::sync::Cache;
use prometheus_client::metrics::gauge::Gauge;

use super::{Found, Key};

/// The message that drops every entry (a business's sessions revoked).
pub(super) const ALL: &str = "*";

/// Sessions kept per replica at most; past it the least recently used go.
const CAPACITY: u64 = 100_000;

/// How often the subscription is checked with a `PING`.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// How long a `PING` on the subscription may take before it counts as dead.
const PONG_WITHIN: Duration = Duration::from_millis(250);

/// One session as a use read it from Redis.
struct Entry {
    found: Found,
    /// When that use happened (unix ms): Redis slid the idle expiry to it.
    touched_ms: u64,
    /// [`LocalCache::epoch`] when kept: `forget_all` outdates it without
    /// relying on the cache's own clock.
    epoch: u64,
}

pub(super) struct LocalCache {
    entries: Cache<Key, Arc<Entry>>,
    /// Subscribed to the invalidation channel: only then are entries served.
    live: AtomicBool,
    /// Where `live` is shown (a metric), set once; the lock orders its
    /// updates with those of `live`.
    gauge: Mutex<Option<Gauge<i64, AtomicI64>>>,
    /// Invalidations applied so far.
    seq: AtomicU64,
    /// `forget_all`s so far.
    epoch: AtomicU64,
    /// A keep and a forget of the same key never interleave (a key picks
    /// its lock by its first byte; keys are hashes).
    stripes: [Mutex<()>; STRIPES],
}

const STRIPES: usize = 64;

impl LocalCache {
    pub(super) fn new(ttl: Duration) -> Arc<Self> {
        Arc::new(Self {
            entries: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(ttl)
                .build(),
            live: AtomicBool::new(false),
            gauge: Mutex::new(None),
            seq: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            stripes: std::array::from_fn(|_| Mutex::new(())),
        })
    }

    fn stripe(&self, key: &Key) -> std::sync::MutexGuard<'_, ()> {
        self.stripes[usize::from(key[0]) % STRIPES]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The session as last read, when it may be served without Redis.
    pub(super) fn get(&self, key: &Key, now_ms: u64) -> Option<Found> {
        if !self.live.load(SeqCst) {
            return None;
        }
        let e = self.entries.get(key)?;
        if e.epoch != self.epoch.load(SeqCst) {
            return None;
        }
        let r = &e.found.record;
        let idle_ms = u64::try_from(r.idle.as_millis()).unwrap_or(u64::MAX);
        // Past either limit, Redis decides (and deletes).
        if now_ms > r.expires_ms || now_ms.saturating_sub(e.touched_ms) > idle_ms {
            return None;
        }
        Some(e.found.clone())
    }

    /// A mark taken before a read from Redis, for [`LocalCache::keep`].
    pub(super) fn begin(&self) -> u64 {
        self.seq.load(SeqCst)
    }

    /// Keeps what a use read from Redis at `touched_ms`, unless an
    /// invalidation arrived since `seen` (then the read may be stale).
    ///
    /// Once a `forget` or `forget_all` has returned, no read that began
    /// before it is served: `forget` counts first, then drops the key under
    /// the key's lock, and this checks the count and inserts under the same
    /// lock, so the insert either precedes the drop or sees the count; the
    /// epoch is read before the count, and `forget_all` counts before it
    /// moves the epoch, so an entry that passed the check carries an epoch
    /// that `forget_all` outdates.
    pub(super) fn keep(&self, key: &Key, found: &Found, touched_ms: u64, seen: u64) {
        let epoch = self.epoch.load(SeqCst);
        let _key = self.stripe(key);
        if !self.live.load(SeqCst) || self.seq.load(SeqCst) != seen {
            return;
        }
        let entry = Arc::new(Entry {
            found: found.clone(),
            touched_ms,
            epoch,
        });
        self.entries.insert(*key, entry);
    }

    /// Drops one session.
    pub(super) fn forget(&self, key: &Key) {
        self.seq.fetch_add(1, SeqCst);
        let _key = self.stripe(key);
        self.entries.invalidate(key);
    }

    /// Drops every session.
    pub(super) fn forget_all(&self) {
        self.seq.fetch_add(1, SeqCst);
        self.epoch.fetch_add(1, SeqCst);
        self.entries.invalidate_all();
    }

    /// Applies one message of the invalidation channel.
    fn apply(&self, payload: &[u8]) {
        let key = std::str::from_utf8(payload)
            .ok()
            .and_then(super::unhex)
            .and_then(|k| Key::try_from(k).ok());
        match key {
            Some(k) => self.forget(&k),
            // "*", or anything this version does not know: drop everything.
            None => self.forget_all(),
        }
    }

    fn set_live(&self, on: bool) {
        let gauge = self.gauge.lock().unwrap_or_else(|p| p.into_inner());
        if on {
            self.forget_all();
            self.live.store(true, SeqCst);
        } else {
            self.live.store(false, SeqCst);
            self.forget_all();
        }
        if let Some(g) = &*gauge {
            g.set(i64::from(on));
        }
    }

    /// Shows from now on whether the cache is live in `gauge`.
    pub(super) fn report_to(&self, gauge: Gauge<i64, AtomicI64>) {
        let mut slot = self.gauge.lock().unwrap_or_else(|p| p.into_inner());
        gauge.set(i64::from(self.live.load(SeqCst)));
        *slot = Some(gauge);
    }
}

/// Keeps `cache` subscribed to `channel` for as long as the cache lives,
/// re-subscribing after any failure. Without a Tokio runtime the cache is
/// never served (there is no subscription to trust).
pub(super) fn subscribe(
    cache: &Arc<LocalCache>,
    client: redis::Client,
    channel: String,
    timeout: Duration,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("store.local_cache is not used: no runtime to keep its subscription");
        return;
    };
    let weak = Arc::downgrade(cache);
    runtime.spawn(async move {
        let mut warned = false;
        while weak.strong_count() > 0 {
            let Err(kind) = listen(&weak, &client, &channel, timeout).await else {
                return;
            };
            let was_live = weak.upgrade().is_some_and(|c| {
                let was = c.live.load(SeqCst);
                c.set_live(false);
                was
            });
            // Once per outage; the kind only (a Redis error can echo arguments).
            if was_live || !warned {
                tracing::warn!(
                    ?kind,
                    "the local session cache is off until its Redis subscription is back"
                );
                warned = true;
            }
            tokio::time::sleep(HEARTBEAT).await;
        }
    });
}

/// One subscription, until it fails (`Err`) or the cache is dropped (`Ok`).
async fn listen(
    weak: &Weak<LocalCache>,
    client: &redis::Client,
    channel: &str,
    timeout: Duration,
) -> Result<(), Option<redis::ErrorKind>> {
    let mut pubsub = within(timeout, client.get_async_pubsub()).await?;
    within(timeout, pubsub.subscribe(channel)).await?;
    let (mut sink, mut stream) = pubsub.split();
    match weak.upgrade() {
        Some(c) => c.set_live(true),
        None => return Ok(()),
    }
    tracing::info!("the local session cache is on (subscribed to invalidations)");
    let mut beat = tokio::time::interval(HEARTBEAT);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else { return Err(None) };
                let Some(c) = weak.upgrade() else { return Ok(()) };
                c.apply(msg.get_payload_bytes());
            }
            _ = beat.tick() => {
                if weak.strong_count() == 0 {
                    return Ok(());
                }
                // Messages arriving meanwhile wait in the stream's queue.
                within(timeout.min(PONG_WITHIN), sink.ping::<redis::Value>()).await?;
            }
        }
    }
}

/// `op` within `limit`; a failure as its error kind (`None`: too late).
async fn within<T>(
    limit: Duration,
    op: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, Option<redis::ErrorKind>> {
    match tokio::time::timeout(limit, op).await {
        Ok(r) => r.map_err(|e| Some(e.kind())),
        Err(_) => Err(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SessionRecord;

    fn found(expires_ms: u64) -> Found {
        Found {
            record: SessionRecord {
                business: "b".into(),
                created_ms: 0,
                expires_ms,
                last_used_ms: 0,
                generation: 0,
                idle: Duration::from_secs(60),
                key_id: "k".into(),
                customer: None,
            },
            generation: 0,
        }
    }

    /// Keeps `f` under `k` as a read that raced nothing would.
    fn kept(c: &LocalCache, k: &Key, f: &Found) {
        let seen = c.begin();
        c.keep(k, f, 1_000, seen);
    }

    #[test]
    fn nothing_is_served_or_kept_without_a_subscription() {
        let c = LocalCache::new(Duration::from_secs(5));
        kept(&c, &[1; 32], &found(10_000));
        c.set_live(true);
        assert_eq!(c.get(&[1; 32], 1_000), None, "kept while not subscribed");
        kept(&c, &[1; 32], &found(10_000));
        assert_eq!(c.get(&[1; 32], 1_500), Some(found(10_000)));
        c.set_live(false);
        assert_eq!(c.get(&[1; 32], 1_500), None);
        c.set_live(true);
        assert_eq!(c.get(&[1; 32], 1_500), None, "emptied when it went down");
    }

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_kept() {
        let c = LocalCache::new(Duration::from_secs(5));
        c.set_live(true);
        let seen = c.begin();
        c.apply(b"*");
        c.keep(&[1; 32], &found(10_000), 1_000, seen);
        assert_eq!(c.get(&[1; 32], 1_000), None);
    }

    /// Races keeps of one session against invalidations of it, on two
    /// threads: once `forget` (or `forget_all`) has returned, no read that
    /// began before it may be served. A kept entry carries the mark its read
    /// began with as its generation; only the invalidating thread moves marks.
    fn no_stale_read_survives(invalidate: fn(&LocalCache, &Key)) {
        const ROUNDS: u64 = 100_000;
        let c = LocalCache::new(Duration::from_secs(5));
        c.set_live(true);
        let k: Key = [7; 32];
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                while !done.load(SeqCst) {
                    let seen = c.begin();
                    let mut f = found(u64::MAX);
                    f.generation = seen;
                    c.keep(&k, &f, 1_000, seen);
                }
            });
            let mut stale = 0;
            for _ in 0..ROUNDS {
                invalidate(&c, &k);
                let after = c.begin();
                if c.get(&k, 1_000).is_some_and(|f| f.generation != after) {
                    stale += 1;
                }
            }
            done.store(true, SeqCst);
            assert_eq!(
                stale, 0,
                "reads from before an invalidation served after it"
            );
        });
    }

    #[test]
    fn a_read_racing_a_forget_is_never_served_after_it() {
        no_stale_read_survives(|c, k| c.forget(k));
    }

    #[test]
    fn a_read_racing_a_forget_all_is_never_served_after_it() {
        no_stale_read_survives(|c, _| c.forget_all());
    }

    #[test]
    fn messages_drop_one_session_or_all() {
        let c = LocalCache::new(Duration::from_secs(5));
        c.set_live(true);
        for k in [[1; 32], [2; 32]] {
            kept(&c, &k, &found(10_000));
        }
        c.apply(crate::store::hex(&[1; 32]).as_bytes());
        assert_eq!(c.get(&[1; 32], 1_000), None);
        assert!(c.get(&[2; 32], 1_000).is_some());
        c.apply(b"something newer");
        assert_eq!(c.get(&[2; 32], 1_000), None, "unknown: everything goes");
    }

    #[test]
    fn a_hit_past_the_cap_or_the_idle_time_goes_to_redis() {
        let c = LocalCache::new(Duration::from_secs(5));
        c.set_live(true);
        kept(&c, &[1; 32], &found(10_000));
        assert!(c.get(&[1; 32], 10_000).is_some());
        assert_eq!(c.get(&[1; 32], 10_001), None, "past the cap");
        kept(&c, &[2; 32], &found(u64::MAX));
        assert!(c.get(&[2; 32], 61_000).is_some());
        assert_eq!(c.get(&[2; 32], 61_001), None, "idle too long");
    }
}
