//! The store shared by the credentials that need state: single-use marks
//! (action links, handshake replay protection) and sessions.
//!
//! Keys are SHA-256 digests computed by the caller ([`key`]), so no token is
//! ever held in memory or sent to Redis in the clear.
//!
//! Two backends:
//!
//! - **memory** (default): in the process. Marks are a `moka` cache with a
//!   per-entry lifetime and **no** size-based eviction (an evicted mark would
//!   let a single-use link be replayed): past `max_marks` new marks are
//!   refused and the caller answers 503. Sessions are a sharded table of
//!   compact records (`store/sessions.rs`, about 120 bytes each), bounded by
//!   `max_sessions` (when full, one of the least recently used is evicted:
//!   that only logs a client out) and reclaimed after their idle time.
//! - **redis**: shared by every replica. Marks are `SET NX PX`; a session is a
//!   hash whose server-side TTL is its idle time, slid by each use in one Lua
//!   script that also reads the business's revocation generation. The
//!   connection is made lazily and re-made after failures; every operation
//!   has a deadline. When Redis cannot answer, operations fail with
//!   [`StoreError::Unavailable`] (the caller answers 503: fail closed) and
//!   work again as soon as it is back.
//!   With `local_cache` set, each replica also keeps the sessions it read
//!   for that long, dropped on every replica by a published message when
//!   one is logged out or its business revoked (`store/local.rs`).
//!
//! Time checks (idle, absolute cap) are made by the caller against its own
//! clock from the record's fields; the backends' own expiry only collects
//! garbage.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use moka::{sync::Cache, Expiry};

mod local;
mod sessions;

/// Which sessions a use slides (records, pushing back their idle expiry).
#[derive(Clone, Copy, Debug)]
pub enum Slide<'a> {
    /// Every session it finds.
    Any,
    /// Only sessions of these businesses: a use that will be refused for
    /// the others (a query token where only the header is accepted) must
    /// not keep them alive.
    Only(&'a [&'a str]),
}

impl Slide<'_> {
    pub fn allows(self, business: &str) -> bool {
        match self {
            Slide::Any => true,
            Slide::Only(ids) => ids.contains(&business),
        }
    }
}

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

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    base16ct::lower::encode_string(bytes)
}

/// The bytes of at most 128 hex digits (either case); `None` for anything else.
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            let pair = s.get(i..i + 2)?;
            if !pair.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            u8::from_str_radix(pair, 16).ok()
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The embedded store holds as many live marks as it may.
    #[error("store is full")]
    Full,
    /// The shared store did not answer in time or answered with an error.
    #[error("store unavailable")]
    Unavailable,
}

/// One session, as stored. Times are unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub business: String,
    pub created_ms: u64,
    /// The absolute cap: never slides.
    pub expires_ms: u64,
    /// The previous use (before the one that read this record).
    pub last_used_ms: u64,
    /// The business's revocation generation when the session was issued.
    pub generation: u64,
    /// How long the session survives without use.
    pub idle: Duration,
    /// Which private key the handshake was checked with (a short hash): a
    /// session outlives no key change.
    pub key_id: String,
    /// The customer a session opened by an SSO token stands for (its scheme
    /// writes and reads this); `None` for a business session.
    pub customer: Option<String>,
}

/// A session as a use finds it: the record and the business's current
/// generation (the session is revoked when they differ).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub record: SessionRecord,
    pub generation: u64,
}

/// How the store is built (from `[store]`).
#[derive(Clone, PartialEq, Eq)]
pub enum StoreSettings {
    Memory {
        max_marks: u64,
        max_sessions: u64,
    },
    Redis {
        url: String,
        key_prefix: String,
        timeout: Duration,
        /// How long a replica may serve a session it read without asking
        /// Redis again (`store/local.rs`); `None`: every use asks.
        local_cache: Option<Duration>,
    },
}

impl std::fmt::Debug for StoreSettings {
    /// Never prints the Redis URL: it may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreSettings::Memory {
                max_marks,
                max_sessions,
            } => f
                .debug_struct("Memory")
                .field("max_marks", max_marks)
                .field("max_sessions", max_sessions)
                .finish(),
            StoreSettings::Redis {
                key_prefix,
                timeout,
                local_cache,
                ..
            } => f
                .debug_struct("Redis")
                .field("key_prefix", key_prefix)
                .field("timeout", timeout)
                .field("local_cache", local_cache)
                .finish_non_exhaustive(),
        }
    }
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings::Memory {
            max_marks: 1_000_000,
            max_sessions: 1_000_000,
        }
    }
}

/// Marks live for the duration their value says.
struct PerEntry;

impl Expiry<Key, Duration> for PerEntry {
    fn expire_after_create(&self, _: &Key, ttl: &Duration, _: Instant) -> Option<Duration> {
        Some(*ttl)
    }
}

struct Memory {
    marks: Cache<Key, Duration>,
    max_marks: u64,
    sessions: sessions::Sessions,
    /// Read by every session use, written by revocations only: a map
    /// replaced whole, so reads take no lock.
    generations: ArcSwap<HashMap<String, u64>>,
}

struct Redis {
    conn: redis::aio::ConnectionManager,
    prefix: String,
    timeout: Duration,
    /// Sessions read recently, when `store.local_cache` is set.
    cache: Option<Arc<local::LocalCache>>,
    /// `<prefix>invalidate`: where session changes are published.
    channel: String,
}

enum Backend {
    Memory(Memory),
    Redis(Redis),
}

/// The store, shared by every connection of a process.
pub struct Store {
    backend: Backend,
    /// Counts operations by result, once a running scopegate attaches them.
    metrics: std::sync::OnceLock<std::sync::Arc<crate::metrics::Metrics>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.backend {
            Backend::Memory(_) => "Store(memory)",
            Backend::Redis(_) => "Store(redis)",
        })
    }
}

/// Reads a session with its business's generation and, in the same atomic
/// step, either ends it (idle too long or past its cap: deleted, `false`) or
/// records this use and slides its TTL. A record with a missing or
/// non-numeric field is deleted and reads as absent.
/// KEYS[1] the session; ARGV: now ms, generation key prefix.
const TOUCH: &str = r"
local v = redis.call('HMGET', KEYS[1], 'b', 'c', 'e', 'l', 'g', 'i', 'k', 'u')
if not v[1] then return false end
local now, c, e, l, g, i = tonumber(ARGV[1]), tonumber(v[2]), tonumber(v[3]), tonumber(v[4]), tonumber(v[5]), tonumber(v[6])
if not (now and c and e and l and g and i and v[7]) then
  redis.call('DEL', KEYS[1])
  return false
end
if now > e or now - l > i then
  redis.call('DEL', KEYS[1])
  return false
end
local slide = ARGV[3] ~= 'only'
for j = 4, #ARGV do
  if ARGV[j] == v[1] then slide = true end
end
if slide then
  if now > l then redis.call('HSET', KEYS[1], 'l', ARGV[1]) end
  redis.call('PEXPIRE', KEYS[1], i)
end
local gen = redis.call('GET', ARGV[2] .. v[1])
v[9] = gen or '0'
return v
";

impl Store {
    /// Attaches the metrics of a running scopegate (once).
    pub fn observe(&self, metrics: std::sync::Arc<crate::metrics::Metrics>) {
        if let (Some(cache), Some(gauge)) = (self.local_cache(), &metrics.local_cache_live) {
            cache.report_to(gauge.clone());
        }
        let _ = self.metrics.set(metrics);
    }

    /// The local session cache, with `store.local_cache` (Redis only).
    fn local_cache(&self) -> Option<&local::LocalCache> {
        match &self.backend {
            Backend::Redis(r) => r.cache.as_deref(),
            Backend::Memory(_) => None,
        }
    }

    fn count<T>(&self, op: &'static str, r: &Result<T, StoreError>) {
        if let Some(m) = self.metrics.get() {
            m.store_operation(op, r.is_ok());
        }
    }

    /// Records `key` for `ttl`. `Ok(true)` when this call recorded it,
    /// `Ok(false)` when a live mark already existed (a replay). Concurrent
    /// claims of one key: exactly one gets `true`.
    pub async fn claim_once(&self, key: Key, ttl: Duration) -> Result<bool, StoreError> {
        let r = self.claim_once_op(key, ttl).await;
        self.count("claim_once", &r);
        r
    }

    /// Stores a new session.
    pub async fn session_put(&self, key: &Key, rec: &SessionRecord) -> Result<(), StoreError> {
        let r = self.session_put_op(key, rec).await;
        self.count("session_put", &r);
        r
    }

    /// Reads a session and, when `slide` allows its business, records this
    /// use at `now_ms` (sliding its idle expiry), atomically with deciding
    /// whether it has ended; see `session_touch_op`.
    pub async fn session_touch(
        &self,
        key: &Key,
        now_ms: u64,
        slide: Slide<'_>,
    ) -> Result<Option<Found>, StoreError> {
        if let Some(found) = self.local_cache().and_then(|c| c.get(key, now_ms)) {
            self.count::<()>("session_touch_cached", &Ok(()));
            return Ok(Some(found));
        }
        let r = self.session_touch_op(key, now_ms, slide).await;
        self.count("session_touch", &r);
        r
    }

    /// Ends a session; `true` when there was one.
    pub async fn session_delete(&self, key: &Key) -> Result<bool, StoreError> {
        let r = self.session_delete_op(key).await;
        self.count("session_delete", &r);
        r
    }

    /// The business's current revocation generation.
    pub async fn generation(&self, business: &str) -> Result<u64, StoreError> {
        let r = self.generation_op(business).await;
        self.count("generation", &r);
        r
    }

    /// Revokes every session of a business (a new generation).
    pub async fn revoke_business(&self, business: &str) -> Result<u64, StoreError> {
        let r = self.revoke_business_op(business).await;
        self.count("revoke_business", &r);
        r
    }

    /// Forgets a mark (the action it guarded did not happen). Best effort.
    pub async fn release(&self, key: &Key) {
        self.release_op(key).await;
        self.count::<()>("release", &Ok(()));
    }
    /// The embedded store.
    pub fn memory(max_marks: u64, max_sessions: u64) -> Self {
        Self {
            metrics: std::sync::OnceLock::new(),
            backend: Backend::Memory(Memory {
                marks: Cache::builder().expire_after(PerEntry).build(),
                max_marks,
                // A full store drops one of the least recently used sessions,
                // never refuses the one a handshake just issued.
                sessions: sessions::Sessions::new(max_sessions),
                generations: ArcSwap::from_pointee(HashMap::new()),
            }),
        }
    }

    /// Builds the configured store. A Redis store connects lazily: it can be
    /// created while Redis is down.
    pub fn new(settings: &StoreSettings) -> Result<Self, String> {
        match settings {
            StoreSettings::Memory {
                max_marks,
                max_sessions,
            } => Ok(Self::memory(*max_marks, *max_sessions)),
            StoreSettings::Redis {
                url,
                key_prefix,
                timeout,
                local_cache,
            } => {
                let client = redis::Client::open(url.as_str())
                    .map_err(|e| format!("invalid Redis URL: {:?}", e.kind()))?;
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(*timeout))
                    .set_response_timeout(Some(*timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_secs(1));
                let conn =
                    redis::aio::ConnectionManager::new_lazy_with_config(client.clone(), config)
                        .map_err(|e| {
                            format!("cannot set up the Redis connection: {:?}", e.kind())
                        })?;
                let channel = format!("{key_prefix}invalidate");
                let cache = local_cache.map(|ttl| {
                    let cache = local::LocalCache::new(ttl);
                    local::subscribe(&cache, client, channel.clone(), *timeout);
                    cache
                });
                Ok(Self {
                    metrics: std::sync::OnceLock::new(),
                    backend: Backend::Redis(Redis {
                        conn,
                        prefix: key_prefix.clone(),
                        timeout: *timeout,
                        cache,
                        channel,
                    }),
                })
            }
        }
    }

    /// Records `key` for `ttl`. `Ok(true)` when this call recorded it,
    /// `Ok(false)` when a live mark already existed (a replay). Concurrent
    /// claims of one key: exactly one gets `true`.
    async fn claim_once_op(&self, key: Key, ttl: Duration) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Memory(m) => {
                if m.marks.contains_key(&key) {
                    return Ok(false);
                }
                if m.marks.entry_count() >= m.max_marks {
                    // The count is eventually consistent; settle it before refusing.
                    m.marks.run_pending_tasks();
                    if m.marks.entry_count() >= m.max_marks {
                        return Err(StoreError::Full);
                    }
                }
                Ok(m.marks.entry(key).or_insert_with(|| ttl).is_fresh())
            }
            Backend::Redis(r) => {
                // The value is this claim's own nonce: if the connection drops
                // after Redis applied the SET, the retry finds the mark and
                // reads it back as ours rather than as a replay.
                let ms = ttl.as_millis().max(1) as u64;
                let nonce = format!("{:032x}", rand::random::<u128>());
                let mark = r.mark(&key);
                let set: Option<String> = r
                    .run(
                        redis::cmd("SET")
                            .arg(&mark)
                            .arg(&nonce)
                            .arg("NX")
                            .arg("PX")
                            .arg(ms),
                    )
                    .await?;
                if set.is_some() {
                    return Ok(true);
                }
                let held: Option<String> = r.run(redis::cmd("GET").arg(&mark)).await?;
                Ok(held.as_deref() == Some(nonce.as_str()))
            }
        }
    }

    /// Forgets a mark (the action it guarded did not happen). Best effort.
    async fn release_op(&self, key: &Key) {
        match &self.backend {
            Backend::Memory(m) => m.marks.invalidate(key),
            Backend::Redis(r) => {
                let _: Result<i64, _> = r.run(redis::cmd("DEL").arg(r.mark(key))).await;
            }
        }
    }

    /// Stores a new session.
    async fn session_put_op(&self, key: &Key, rec: &SessionRecord) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Memory(m) => {
                m.sessions.put(key, rec);
                Ok(())
            }
            Backend::Redis(r) => {
                let k = r.session(key);
                let mut pipe = redis::pipe();
                pipe.atomic()
                    .cmd("HSET")
                    .arg(&k)
                    .arg("b")
                    .arg(&rec.business)
                    .arg("c")
                    .arg(rec.created_ms)
                    .arg("e")
                    .arg(rec.expires_ms)
                    .arg("l")
                    .arg(rec.last_used_ms)
                    .arg("g")
                    .arg(rec.generation)
                    .arg("i")
                    .arg(rec.idle.as_millis() as u64)
                    .arg("k")
                    .arg(&rec.key_id)
                    .arg("u")
                    .arg(rec.customer.as_deref().unwrap_or(""))
                    .ignore()
                    .cmd("PEXPIRE")
                    .arg(&k)
                    .arg(rec.idle.as_millis().max(1) as u64)
                    .ignore();
                // A new random token: in no replica's cache, nothing to publish.
                r.run_pipe(&pipe).await
            }
        }
    }

    /// Reads a session and records this use at `now_ms` (sliding its idle
    /// expiry), atomically with deciding whether it has ended: concurrent uses
    /// of an idle-expired session cannot slide it back to life. `None`:
    /// unknown, collected, or ended (then deleted). The caller checks the
    /// rest (revocation generation, key, business) on the returned record.
    async fn session_touch_op(
        &self,
        key: &Key,
        now_ms: u64,
        slide: Slide<'_>,
    ) -> Result<Option<Found>, StoreError> {
        match &self.backend {
            Backend::Memory(m) => Ok(m.sessions.touch(key, now_ms, slide).map(|record| {
                let generation = m.generation(&record.business);
                Found { record, generation }
            })),
            Backend::Redis(r) => {
                // Hashed (SHA-1, for EVALSHA) once, not on every request.
                static SCRIPT: std::sync::LazyLock<redis::Script> =
                    std::sync::LazyLock::new(|| redis::Script::new(TOUCH));
                let script = &*SCRIPT;
                let (session, gens) = (r.session(key), format!("{}g:", r.prefix));
                let seen = r.cache.as_ref().map(|c| c.begin());
                let v: Option<Vec<Option<String>>> = r
                    .attempt(|mut conn| {
                        let mut inv = script.key(&session);
                        inv.arg(now_ms).arg(&gens);
                        if let Slide::Only(ids) = slide {
                            inv.arg("only").arg(ids);
                        }
                        async move { inv.invoke_async(&mut conn).await }
                    })
                    .await?;
                let Some(v) = v else { return Ok(None) };
                let field = |i: usize| v.get(i).cloned().flatten();
                let num = |i: usize| field(i).and_then(|s| s.parse::<u64>().ok());
                let (
                    Some(business),
                    Some(c),
                    Some(e),
                    Some(l),
                    Some(g),
                    Some(i),
                    Some(key_id),
                    Some(gen),
                ) = (
                    field(0),
                    num(1),
                    num(2),
                    num(3),
                    num(4),
                    num(5),
                    field(6),
                    num(8),
                )
                else {
                    // A record this version did not write: treat as absent.
                    return Ok(None);
                };
                let found = Found {
                    record: SessionRecord {
                        business,
                        created_ms: c,
                        expires_ms: e,
                        last_used_ms: l,
                        generation: g,
                        idle: Duration::from_millis(i),
                        key_id,
                        customer: field(7).filter(|u| !u.is_empty()),
                    },
                    generation: gen,
                };
                // An entry says Redis slid the session to `now_ms`: one
                // this use did not slide is not kept.
                let slid = slide.allows(&found.record.business);
                if let (Some(cache), Some(seen), true) = (&r.cache, seen, slid) {
                    cache.keep(key, &found, now_ms, seen);
                }
                Ok(Some(found))
            }
        }
    }

    /// Ends a session; `true` when there was one.
    async fn session_delete_op(&self, key: &Key) -> Result<bool, StoreError> {
        match &self.backend {
            // Under the same shard lock as `session_touch`, so a use in
            // flight cannot write the session back after it is removed.
            Backend::Memory(m) => Ok(m.sessions.delete(key)),
            Backend::Redis(r) => {
                let n: i64 = r
                    .change(redis::cmd("DEL").arg(r.session(key)), Some(key))
                    .await?;
                Ok(n > 0)
            }
        }
    }

    /// The business's current revocation generation.
    async fn generation_op(&self, business: &str) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Memory(m) => Ok(m.generation(business)),
            Backend::Redis(r) => {
                let g: Option<u64> = r.run(redis::cmd("GET").arg(r.gen(business))).await?;
                Ok(g.unwrap_or(0))
            }
        }
    }

    /// Revokes every session of a business issued so far.
    async fn revoke_business_op(&self, business: &str) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Memory(m) => {
                let before = m.generations.rcu(|g| {
                    let mut g = HashMap::clone(g);
                    *g.entry(business.to_string()).or_insert(0) += 1;
                    Arc::new(g)
                });
                Ok(before.get(business).copied().unwrap_or(0) + 1)
            }
            Backend::Redis(r) => {
                r.change(redis::cmd("INCR").arg(r.gen(business)), None)
                    .await
            }
        }
    }

    /// The Redis connection, key prefix and operation deadline, for counts
    /// kept beside the store (shared failure counters); `None` for the
    /// embedded store.
    pub(crate) fn redis(&self) -> Option<(redis::aio::ConnectionManager, &str, Duration)> {
        match &self.backend {
            Backend::Redis(r) => Some((r.conn.clone(), r.prefix.as_str(), r.timeout)),
            _ => None,
        }
    }

    /// The metrics of the running scopegate this store serves, once attached.
    pub(crate) fn metrics(&self) -> Option<&std::sync::Arc<crate::metrics::Metrics>> {
        self.metrics.get()
    }
}

impl Memory {
    fn generation(&self, business: &str) -> u64 {
        self.generations.load().get(business).copied().unwrap_or(0)
    }
}

impl Redis {
    fn mark(&self, k: &Key) -> String {
        format!("{}m:{}", self.prefix, hex(k))
    }
    fn session(&self, k: &Key) -> String {
        format!("{}s:{}", self.prefix, hex(k))
    }
    fn gen(&self, business: &str) -> String {
        format!("{}g:{business}", self.prefix)
    }

    fn failed(&self, e: redis::RedisError) -> StoreError {
        // The error kind only: a Redis error can echo arguments (keys).
        tracing::error!(kind = ?e.kind(), "the shared store (Redis) failed; answering 503");
        StoreError::Unavailable
    }

    /// Runs one operation within the deadline. A connection found dropped
    /// (Redis restarted) is re-made by the manager, and the operation tried
    /// once more on it, so the first request after an outage does not fail.
    async fn attempt<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: Fn(redis::aio::ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut tried = false;
        loop {
            match tokio::time::timeout_at(deadline, op(self.conn.clone())).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if !tried && (e.is_connection_dropped() || e.is_io_error()) => {
                    tried = true;
                }
                Ok(Err(e)) => return Err(self.failed(e)),
                Err(_) => {
                    tracing::error!(
                        "the shared store (Redis) did not answer in time; answering 503"
                    );
                    return Err(StoreError::Unavailable);
                }
            }
        }
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        self.attempt(|mut conn| {
            let cmd = cmd.clone();
            async move { cmd.query_async(&mut conn).await }
        })
        .await
    }

    async fn run_pipe<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, StoreError> {
        self.attempt(|mut conn| {
            let pipe = pipe.clone();
            async move { pipe.query_async::<T>(&mut conn).await }
        })
        .await
    }

    /// Runs `cmd`, a change that ends a session (`key`) or all of them
    /// (`None`). With `local_cache` it runs in one transaction with the
    /// message that makes every replica's cache drop what it ended, and this
    /// replica's copy is dropped before answering, whatever the outcome.
    /// Without it, the command alone: nothing is published, so a Redis user
    /// without channel rights keeps working as before.
    async fn change<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        key: Option<&Key>,
    ) -> Result<T, StoreError> {
        let Some(cache) = &self.cache else {
            return self.run(cmd).await;
        };
        let what = key.map_or_else(|| local::ALL.to_string(), |k| hex(k));
        let mut pipe = redis::pipe();
        pipe.atomic()
            .add_command(cmd.clone())
            .cmd("PUBLISH")
            .arg(&self.channel)
            .arg(what)
            .ignore();
        let done = self.run_pipe::<(T,)>(&pipe).await;
        match key {
            Some(k) => cache.forget(k),
            None => cache.forget_all(),
        }
        done.map(|(v,)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_mark_is_claimed_once_until_it_expires() {
        let s = Store::memory(10, 10);
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
        let s = Store::memory(3, 10);
        for i in 0u8..3 {
            assert_eq!(
                s.claim_once(key("t", &[&[i]]), Duration::from_secs(60))
                    .await,
                Ok(true)
            );
        }
        if let Backend::Memory(m) = &s.backend {
            m.marks.run_pending_tasks();
        }
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
        let s = std::sync::Arc::new(Store::memory(100, 10));
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_revocations_each_make_a_generation() {
        let s = std::sync::Arc::new(Store::memory(10, 10));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.revoke_business("biz").await.unwrap() })
            })
            .collect();
        let mut seen = Vec::new();
        for t in tasks {
            seen.push(t.await.unwrap());
        }
        seen.sort_unstable();
        assert_eq!(seen, (1..=16).collect::<Vec<u64>>());
        assert_eq!(s.generation("biz").await, Ok(16));
        assert_eq!(s.generation("other").await, Ok(0));
    }

    fn record(business: &str, now: u64) -> SessionRecord {
        SessionRecord {
            business: business.into(),
            created_ms: now,
            expires_ms: now + 1000,
            last_used_ms: now,
            generation: 0,
            idle: Duration::from_secs(60),
            key_id: "k1".into(),
            customer: None,
        }
    }

    #[tokio::test]
    async fn a_full_session_store_drops_the_least_recently_used() {
        let s = Store::memory(10, 100);
        let k = |i: u32| key("s", &[&i.to_be_bytes()]);
        for i in 0..150 {
            s.session_put(&k(i), &record("biz", 1)).await.unwrap();
        }
        for i in 140..150 {
            assert!(
                s.session_touch(&k(i), 2, Slide::Any)
                    .await
                    .unwrap()
                    .is_some(),
                "new session {i} kept"
            );
        }
        assert!(
            s.session_touch(&k(0), 2, Slide::Any)
                .await
                .unwrap()
                .is_none(),
            "oldest dropped"
        );
    }

    #[tokio::test]
    async fn a_use_slides_only_the_businesses_it_is_told() {
        let s = Store::memory(10, 10);
        let k = key("s", &[b"tok"]);
        s.session_put(&k, &record("biz", 1)).await.unwrap();
        let other = s.session_touch(&k, 7, Slide::Only(&["other"])).await;
        assert_eq!(other.unwrap().unwrap().record.last_used_ms, 1, "read");
        let found = s.session_touch(&k, 8, Slide::Only(&["other", "biz"])).await;
        assert_eq!(
            found.unwrap().unwrap().record.last_used_ms,
            1,
            "not slid at 7"
        );
        let found = s.session_touch(&k, 9, Slide::Any).await.unwrap().unwrap();
        assert_eq!(found.record.last_used_ms, 8, "slid at 8");
    }

    #[tokio::test]
    async fn a_session_is_touched_deleted_and_revoked_in_memory() {
        let s = Store::memory(10, 10);
        let k = key("s", &[b"tok"]);
        assert_eq!(s.session_touch(&k, 5, Slide::Any).await, Ok(None));
        s.session_put(&k, &record("biz", 1)).await.unwrap();
        let found = s.session_touch(&k, 7, Slide::Any).await.unwrap().unwrap();
        assert_eq!(found.record.last_used_ms, 1, "the previous use");
        assert_eq!(found.generation, 0);
        let found = s.session_touch(&k, 9, Slide::Any).await.unwrap().unwrap();
        assert_eq!(found.record.last_used_ms, 7);
        assert_eq!(s.revoke_business("biz").await, Ok(1));
        assert_eq!(
            s.session_touch(&k, 10, Slide::Any)
                .await
                .unwrap()
                .unwrap()
                .generation,
            1
        );
        s.session_delete(&k).await.unwrap();
        assert_eq!(s.session_touch(&k, 11, Slide::Any).await, Ok(None));
    }
}
