//! Counting failed credentials per client, and what happens past the limit.
//!
//! A failure is counted in several buckets, and a request is held back when
//! any of them is full:
//! - the client's network: an IPv4 address, or an IPv6 /64 (one host usually
//!   holds a whole /64);
//! - for IPv6 also the /48 around it, at 16 times the limit, so a site's
//!   65,536 /64s do not each get a full budget;
//! - a credential family, when the scheme names one (for legacy SSO tokens
//!   the last ciphertext block, which every bit-flip forgery of one genuine
//!   token shares), from any address.
//!
//! Windows are fixed: a bucket's count starts at its first failure and is
//! forgotten `window` later. Only failures count, so a client holding a valid
//! credential is never slowed by using it. With the `delay` penalty, a
//! client past its limit gets one attempt per `delay` (each request takes the
//! next free slot, so concurrency does not multiply the rate), and is refused
//! once its queue is ten slots long.
//!
//! **Shared counts.** With the Redis store (and `failures.shared`, its
//! default there) each failure is also counted in Redis, one Lua call per
//! failure for all its buckets: `INCR`, and the window as the key's TTL from
//! its first failure. A bucket whose shared count reaches its limit is marked
//! full in this process until the shared key expires. Deciding whether a
//! request may go on stays local, so a request that does not fail makes no
//! Redis call; the price is that each other replica lets one more failure
//! through before it learns (sequential attempts: at most `limit + replicas -
//! 1` per window). Local counts are kept as well, so when Redis does not
//! answer each process goes on limiting on its own (and retries Redis a
//! second later); a failed credential is never turned into an error because
//! the counter store is down. Keys are `<prefix>fail:<address>/<prefix
//! length>` and `<prefix>fail:family:<SHA-256 hex>`: no credential.
//!
//! **Reload.** The counts belong to the running scopegate, not to one
//! configuration: the limiter a reload builds goes on with them. A changed
//! limit or penalty applies at once; a changed window to counts started after
//! the reload.

use std::{
    net::IpAddr,
    sync::{
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
        Arc, Mutex, OnceLock, Weak,
    },
    time::{Duration, Instant},
};

use moka::{sync::Cache, Expiry};

use crate::{metrics::Metrics, store::Store};

/// Most buckets tracked at once; past it the least recently seen are forgotten.
const MAX_BUCKETS: u64 = 200_000;
/// An IPv6 /48 may fail this many times the per-client limit.
const SITE_FACTOR: u32 = 16;
/// With the delay penalty, the longest queue of slots before a refusal.
const MAX_QUEUED_SLOTS: u32 = 10;
/// After Redis failed to count, how long to count in this process only.
const SHARED_RETRY: Duration = Duration::from_secs(1);
/// At most one warning per this long that shared counting is down.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// What a client past its limit gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Penalty {
    /// 429 with `Retry-After`, without looking at the credential.
    Reject,
    /// One attempt per this long; the credential is checked in its slot.
    Delay(Duration),
}

/// Whether a client may go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Go,
    /// Refuse; the client may retry after this long.
    Refuse(Duration),
    /// Go on after waiting this long.
    Wait(Duration),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Bucket {
    /// A masked address and its prefix length.
    Net(IpAddr, u8),
    Family([u8; 16]),
}

impl Bucket {
    /// Its Redis key: the masked address as text (an operator can read and
    /// delete it), or a hash of the family (part of a token: never sent).
    fn shared_key(&self, prefix: &str) -> String {
        match self {
            Bucket::Net(ip, bits) => format!("{prefix}fail:{ip}/{bits}"),
            Bucket::Family(f) => format!(
                "{prefix}fail:family:{}",
                crate::store::hex(&crate::store::key("failure-family", &[f]))
            ),
        }
    }
}

/// Failures of one bucket in this process, within its window.
struct Count {
    failures: AtomicU32,
    /// Delay penalty: the next free slot, ms since the counters' epoch.
    next_slot_ms: AtomicU64,
    /// The window when the count started (its lifetime).
    window: Duration,
}

/// A bucket the shared count found full.
struct Block {
    /// Until the shared count expires, ms since the counters' epoch.
    until_ms: AtomicU64,
    /// Delay penalty: the next free slot, ms since the counters' epoch.
    next_slot_ms: AtomicU64,
}

/// Entry lifetimes: a count lives for its window, a block until its end.
struct Lifetimes {
    epoch: Instant,
}

impl Expiry<Bucket, Arc<Count>> for Lifetimes {
    fn expire_after_create(&self, _: &Bucket, c: &Arc<Count>, _: Instant) -> Option<Duration> {
        Some(c.window)
    }
}

impl Lifetimes {
    fn until(&self, b: &Block, now: Instant) -> Duration {
        (self.epoch + Duration::from_millis(b.until_ms.load(Ordering::Relaxed)))
            .saturating_duration_since(now)
    }
}

impl Expiry<Bucket, Arc<Block>> for Lifetimes {
    fn expire_after_create(&self, _: &Bucket, b: &Arc<Block>, now: Instant) -> Option<Duration> {
        Some(self.until(b, now))
    }
    fn expire_after_update(
        &self,
        _: &Bucket,
        b: &Arc<Block>,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.until(b, now))
    }
}

/// The counts of one running scopegate: they outlive its configurations.
/// Slack on `Counters::live_until_ms` over an entry's own expiry (the
/// caches' clock and ours are read at slightly different moments).
const LIVE_MARGIN_MS: u64 = 1000;

struct Counters {
    counts: Cache<Bucket, Arc<Count>>,
    /// Buckets full by their shared count, until it expires.
    blocked: Cache<Bucket, Arc<Block>>,
    /// No entry of either cache lives past this (ms since epoch, with a
    /// second to spare): until a failure, `admit` needs no lookup at all.
    live_until_ms: AtomicU64,
    epoch: Instant,
    /// Redis failed to count: local counts only until then (ms since epoch).
    shared_retry_ms: AtomicU64,
    /// When shared counting was last said to be down (ms since epoch + 1; 0 never).
    warned_ms: AtomicU64,
    /// Shared counting is down (for the one line when it is back).
    shared_down: AtomicBool,
}

impl Counters {
    fn new() -> Self {
        let epoch = Instant::now();
        Self {
            counts: Cache::builder()
                .max_capacity(MAX_BUCKETS)
                .expire_after(Lifetimes { epoch })
                .build(),
            blocked: Cache::builder()
                .max_capacity(MAX_BUCKETS)
                .expire_after(Lifetimes { epoch })
                .build(),
            live_until_ms: AtomicU64::new(0),
            epoch,
            shared_retry_ms: AtomicU64::new(0),
            warned_ms: AtomicU64::new(0),
            shared_down: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Called before an entry that may live until `until_ms` is made.
    fn lives_until(&self, until_ms: u64) {
        self.live_until_ms
            .fetch_max(until_ms + LIVE_MARGIN_MS, Ordering::Release);
    }

    /// Whether no count or block can be live now (no failure for a window).
    fn quiet(&self) -> bool {
        self.now_ms() >= self.live_until_ms.load(Ordering::Acquire)
    }

    /// Marks `bucket` full for `remaining` (what is left of its shared count).
    fn block(&self, bucket: Bucket, remaining: Duration) {
        let until = self.now_ms() + remaining.as_millis() as u64;
        self.lives_until(until);
        self.blocked.entry(bucket).and_upsert_with(|old| match old {
            Some(e) => {
                let b = e.into_value();
                b.until_ms.fetch_max(until, Ordering::Relaxed);
                b
            }
            None => Arc::new(Block {
                until_ms: AtomicU64::new(until),
                next_slot_ms: AtomicU64::new(0),
            }),
        });
    }

    /// Shared counting failed: count locally for a while, and say so (at
    /// most once per [`WARN_EVERY`]).
    fn shared_failed(&self, why: &str) {
        let now = self.now_ms();
        self.shared_retry_ms
            .store(now + SHARED_RETRY.as_millis() as u64, Ordering::Relaxed);
        self.shared_down.store(true, Ordering::Relaxed);
        let last = self.warned_ms.load(Ordering::Relaxed);
        let due = last == 0 || now + 1 >= last + WARN_EVERY.as_millis() as u64;
        if due
            && self
                .warned_ms
                .compare_exchange(last, now + 1, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                error = why,
                "failure counters: Redis did not count; each process limits on its own until it answers"
            );
        }
    }

    fn shared_ok(&self) {
        if self.shared_down.swap(false, Ordering::Relaxed) {
            tracing::info!("failure counters: shared through Redis again");
        }
    }
}

/// The counters of each running scopegate, found by its metrics registry
/// (one per running instance, attached to its store for its whole life), so
/// that the limiter a reload builds goes on with the counts of the one it
/// replaces. Entries of stopped instances are dropped at the next lookup.
static RUNNING: Mutex<Vec<(Weak<Metrics>, Arc<Counters>)>> = Mutex::new(Vec::new());

fn counters_of(instance: &Arc<Metrics>) -> Arc<Counters> {
    let mut running = RUNNING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    running.retain(|(m, _)| m.strong_count() > 0);
    if let Some((_, c)) = running
        .iter()
        .find(|(m, _)| std::ptr::eq(m.as_ptr(), Arc::as_ptr(instance)))
    {
        return Arc::clone(c);
    }
    let c = Arc::new(Counters::new());
    running.push((Arc::downgrade(instance), Arc::clone(&c)));
    c
}

pub struct FailureLimiter {
    limit: u32,
    window: Duration,
    penalty: Penalty,
    /// Also count in the Redis store, when the store is Redis.
    shared: bool,
    /// The running scopegate's counts, found at first use.
    counters: OnceLock<Arc<Counters>>,
}

impl std::fmt::Debug for FailureLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailureLimiter")
            .field("limit", &self.limit)
            .field("window", &self.window)
            .field("penalty", &self.penalty)
            .field("shared", &self.shared)
            .finish()
    }
}

fn masked_v6(ip: std::net::Ipv6Addr, bits: u8) -> IpAddr {
    let v = u128::from(ip) & (u128::MAX << (128 - u32::from(bits)));
    IpAddr::V6(v.into())
}

/// The buckets a failure of `client` (and `family`) counts in, with the
/// limit of each.
fn buckets(client: IpAddr, family: Option<[u8; 16]>, limit: u32) -> Vec<(Bucket, u32)> {
    let mut out = Vec::with_capacity(3);
    match client {
        IpAddr::V4(v4) => out.push((Bucket::Net(IpAddr::V4(v4), 32), limit)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => out.push((Bucket::Net(IpAddr::V4(v4), 32), limit)),
            None => {
                out.push((Bucket::Net(masked_v6(v6, 64), 64), limit));
                out.push((
                    Bucket::Net(masked_v6(v6, 48), 48),
                    limit.saturating_mul(SITE_FACTOR),
                ));
            }
        },
    }
    if let Some(f) = family {
        out.push((Bucket::Family(f), limit));
    }
    out
}

/// Counts one failure in each of `keys` (one round trip, atomic): `INCR`,
/// and the window as TTL from the first failure (or if the key has lost its
/// TTL). Returns each key's count and remaining lifetime in ms.
/// KEYS: the buckets; ARGV[1]: the window in ms.
const COUNT: &str = r"
local out = {}
for i, k in ipairs(KEYS) do
  local n = redis.call('INCR', k)
  local t = redis.call('PTTL', k)
  if n == 1 or t < 0 then
    redis.call('PEXPIRE', k, ARGV[1])
    t = tonumber(ARGV[1])
  end
  out[2 * i - 1] = n
  out[2 * i] = t
end
return out
";

/// Each key's count and remaining lifetime (ms), or why not (the error
/// kind only: a Redis error can echo arguments).
async fn count_shared(
    conn: redis::aio::ConnectionManager,
    keys: &[String],
    window: Duration,
    timeout: Duration,
) -> Result<Vec<(u64, u64)>, String> {
    // Hashed (SHA-1, for EVALSHA) once, like the session store's script.
    static SCRIPT: std::sync::LazyLock<redis::Script> =
        std::sync::LazyLock::new(|| redis::Script::new(COUNT));
    let script = &*SCRIPT;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut retried = false;
    loop {
        let mut inv = script.prepare_invoke();
        for k in keys {
            inv.key(k);
        }
        inv.arg(window.as_millis().max(1) as u64);
        let mut conn = conn.clone();
        match tokio::time::timeout_at(deadline, inv.invoke_async::<Vec<u64>>(&mut conn)).await {
            Ok(Ok(v)) if v.len() == 2 * keys.len() => {
                return Ok(v.chunks(2).map(|p| (p[0], p[1])).collect())
            }
            Ok(Ok(_)) => return Err("unexpected answer".into()),
            // A connection found dropped (Redis restarted) is re-made by
            // the manager: try once more on it.
            Ok(Err(e)) if !retried && (e.is_connection_dropped() || e.is_io_error()) => {
                retried = true;
            }
            Ok(Err(e)) => return Err(format!("{:?}", e.kind())),
            Err(_) => return Err("timeout".into()),
        }
    }
}

impl FailureLimiter {
    /// `limit` failures per `window`; both non-zero (the config checks).
    /// `shared`: also count in the store when it is Redis.
    pub fn new(limit: u32, window: Duration, penalty: Penalty, shared: bool) -> Self {
        Self {
            limit,
            window,
            penalty,
            shared,
            counters: OnceLock::new(),
        }
    }

    /// The counts of the scopegate `store` serves (its own ones when the
    /// store belongs to no running scopegate).
    fn counters(&self, store: &Store) -> &Counters {
        self.counters.get_or_init(|| match store.metrics() {
            Some(instance) => counters_of(instance),
            None => Arc::new(Counters::new()),
        })
    }

    /// Whether `client`, presenting a credential of `family`, may go on now.
    /// Local only: no Redis call.
    pub fn admit(&self, store: &Store, client: IpAddr, family: Option<[u8; 16]>) -> Admission {
        let c = self.counters(store);
        // The common case, a gate no one has failed at lately: no lookups.
        if c.quiet() {
            return Admission::Go;
        }
        let buckets = buckets(client, family, self.limit);
        // A bucket the shared count found full, then one full here.
        let blocked = buckets.iter().find_map(|(b, _)| c.blocked.get(b));
        if let Some(block) = blocked {
            return match self.penalty {
                Penalty::Reject => {
                    let now = c.now_ms();
                    let left = block.until_ms.load(Ordering::Relaxed).saturating_sub(now);
                    // Whole seconds, rounded up (Retry-After).
                    Admission::Refuse(Duration::from_secs(left.div_ceil(1000).max(1)))
                }
                Penalty::Delay(delay) => slot(&block.next_slot_ms, c.now_ms(), delay),
            };
        }
        let full = buckets.iter().find_map(|(b, limit)| {
            c.counts
                .get(b)
                .filter(|n| n.failures.load(Ordering::Relaxed) >= *limit)
        });
        let Some(count) = full else {
            return Admission::Go;
        };
        match self.penalty {
            Penalty::Reject => Admission::Refuse(self.window),
            Penalty::Delay(delay) => slot(&count.next_slot_ms, c.now_ms(), delay),
        }
    }

    /// Admits `client` as [`admit`](Self::admit) does, waiting out a delay
    /// here; a refusal gives the time after which the client may retry.
    pub async fn enter(
        &self,
        store: &Store,
        client: IpAddr,
        family: Option<[u8; 16]>,
    ) -> Result<(), Duration> {
        match self.admit(store, client, family) {
            Admission::Go => Ok(()),
            Admission::Refuse(after) => Err(after),
            Admission::Wait(d) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
        }
    }

    /// Counts one failure of `client` (and of `family`): here, and in Redis
    /// when counts are shared (one round trip; a Redis failure only leaves
    /// the count local).
    pub async fn fail(&self, store: &Store, client: IpAddr, family: Option<[u8; 16]>) {
        let c = self.counters(store);
        let buckets = buckets(client, family, self.limit);
        // A count lives a window from its first failure; this is later.
        c.lives_until(c.now_ms() + self.window.as_millis() as u64);
        for (b, _) in &buckets {
            c.counts
                .get_with(*b, || {
                    Arc::new(Count {
                        failures: AtomicU32::new(0),
                        next_slot_ms: AtomicU64::new(0),
                        window: self.window,
                    })
                })
                .failures
                .fetch_add(1, Ordering::Relaxed);
        }
        if !self.shared || c.now_ms() < c.shared_retry_ms.load(Ordering::Relaxed) {
            return;
        }
        let Some((conn, prefix, timeout)) = store.redis() else {
            return;
        };
        let keys: Vec<String> = buckets.iter().map(|(b, _)| b.shared_key(prefix)).collect();
        let counted = count_shared(conn, &keys, self.window, timeout).await;
        if let Some(m) = store.metrics() {
            m.store_operation("failure_count", counted.is_ok());
        }
        match counted {
            Ok(shared) => {
                c.shared_ok();
                for ((b, limit), (n, left_ms)) in buckets.iter().zip(shared) {
                    if n >= u64::from(*limit) {
                        c.block(*b, Duration::from_millis(left_ms));
                    }
                }
            }
            Err(why) => c.shared_failed(&why),
        }
    }
}

/// The delay penalty: each request takes the slot one `delay` after the
/// last one taken (or after now): at least `delay` of waiting, and one
/// attempt per `delay` however many run at once; refused past the queue.
fn slot(next_slot_ms: &AtomicU64, now: u64, delay: Duration) -> Admission {
    let step = delay.as_millis().max(1) as u64;
    let taken = next_slot_ms.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
        let slot = last.max(now) + step;
        (slot - now <= step * u64::from(MAX_QUEUED_SLOTS)).then_some(slot)
    });
    match taken {
        Ok(last) => Admission::Wait(Duration::from_millis(last.max(now) + step - now)),
        Err(last) => Admission::Refuse(Duration::from_millis(last.saturating_sub(now))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        Store::memory(10, 10)
    }

    #[tokio::test]
    async fn a_client_is_refused_past_its_limit_and_others_are_not() {
        let l = FailureLimiter::new(3, Duration::from_secs(60), Penalty::Reject, false);
        let s = store();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(l.admit(&s, a, None), Admission::Go);
            l.fail(&s, a, None).await;
        }
        assert_eq!(
            l.admit(&s, a, None),
            Admission::Refuse(Duration::from_secs(60))
        );
        assert_eq!(l.admit(&s, b, None), Admission::Go);
    }

    #[tokio::test]
    async fn ipv6_clients_count_per_64_and_mapped_v4_as_v4() {
        let l = FailureLimiter::new(
            1,
            Duration::from_secs(60),
            Penalty::Delay(Duration::from_secs(1)),
            false,
        );
        let s = store();
        l.fail(&s, "2001:db8:1:2::1".parse().unwrap(), None).await;
        assert_eq!(
            l.admit(&s, "2001:db8:1:2:ffff::9".parse().unwrap(), None),
            Admission::Wait(Duration::from_secs(1))
        );
        assert_eq!(
            l.admit(&s, "2001:db8:1:2:ffff::9".parse().unwrap(), None),
            Admission::Wait(Duration::from_secs(2))
        );
        assert_eq!(
            l.admit(&s, "2001:db8:1:3::1".parse().unwrap(), None),
            Admission::Go
        );
        l.fail(&s, "::ffff:192.0.2.7".parse().unwrap(), None).await;
        assert_ne!(
            l.admit(&s, "192.0.2.7".parse().unwrap(), None),
            Admission::Go
        );
    }

    #[tokio::test]
    async fn counts_are_forgotten_after_the_window() {
        let l = FailureLimiter::new(1, Duration::from_millis(50), Penalty::Reject, false);
        let s = store();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        l.fail(&s, a, None).await;
        assert_ne!(l.admit(&s, a, None), Admission::Go);
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(l.admit(&s, a, None), Admission::Go);
    }

    /// The fast path: with no failure in a window (plus the margin), admit
    /// looks nothing up; a failure or a shared block ends it at once.
    #[tokio::test]
    async fn admit_is_lookup_free_only_while_nothing_can_be_live() {
        let l = FailureLimiter::new(1, Duration::from_millis(50), Penalty::Reject, false);
        let s = store();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(l.counters(&s).quiet());
        l.fail(&s, a, None).await;
        assert!(!l.counters(&s).quiet());
        assert_ne!(l.admit(&s, a, None), Admission::Go);
        tokio::time::sleep(Duration::from_millis(50 + LIVE_MARGIN_MS + 100)).await;
        assert!(l.counters(&s).quiet());
        assert_eq!(l.admit(&s, a, None), Admission::Go);
        l.counters(&s)
            .block(Bucket::Net(a, 32), Duration::from_secs(30));
        assert!(!l.counters(&s).quiet());
        assert_ne!(l.admit(&s, a, None), Admission::Go);
    }

    #[tokio::test]
    async fn one_ipv6_site_shares_a_bigger_budget() {
        let l = FailureLimiter::new(20, Duration::from_secs(60), Penalty::Reject, false);
        let s = store();
        let mut admitted = 0u32;
        for subnet in 0u16..1000 {
            let ip: IpAddr = format!("2001:db8:77:{subnet:x}::1").parse().unwrap();
            for _ in 0..20 {
                if l.admit(&s, ip, None) == Admission::Go {
                    admitted += 1;
                    l.fail(&s, ip, None).await;
                }
            }
        }
        assert_eq!(admitted, 20 * SITE_FACTOR);
    }

    #[tokio::test]
    async fn a_credential_family_is_limited_from_any_address() {
        let l = FailureLimiter::new(5, Duration::from_secs(60), Penalty::Reject, false);
        let s = store();
        let family = Some([7u8; 16]);
        for i in 0..5u8 {
            let ip = IpAddr::from([192, 0, 2, i]);
            assert_eq!(l.admit(&s, ip, family), Admission::Go);
            l.fail(&s, ip, family).await;
        }
        let fresh = IpAddr::from([198, 51, 100, 1]);
        assert_ne!(l.admit(&s, fresh, family), Admission::Go);
        assert_eq!(l.admit(&s, fresh, Some([8u8; 16])), Admission::Go);
    }

    #[tokio::test]
    async fn the_delay_penalty_hands_out_one_slot_per_delay_then_refuses() {
        let d = Duration::from_secs(1);
        let l = FailureLimiter::new(1, Duration::from_secs(60), Penalty::Delay(d), false);
        let s = store();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        l.fail(&s, a, None).await;
        let mut waits = Vec::new();
        for _ in 0..11 {
            waits.push(l.admit(&s, a, None));
        }
        for (i, w) in waits.iter().take(10).enumerate() {
            let Admission::Wait(w) = w else {
                panic!("{i}: {w:?}")
            };
            let expected = d * (i as u32 + 1);
            assert!(
                w.abs_diff(expected) < Duration::from_millis(50),
                "{i}: {w:?}"
            );
        }
        assert!(matches!(waits[10], Admission::Refuse(_)), "{:?}", waits[10]);
    }

    #[tokio::test]
    async fn a_new_limiter_of_the_same_scopegate_goes_on_with_its_counts() {
        let s = store();
        s.observe(Metrics::new());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let first = FailureLimiter::new(3, Duration::from_secs(60), Penalty::Reject, false);
        for _ in 0..3 {
            first.fail(&s, a, None).await;
        }
        assert_ne!(first.admit(&s, a, None), Admission::Go);
        // A reload: a new limiter, a raised limit.
        let reloaded = FailureLimiter::new(4, Duration::from_secs(60), Penalty::Reject, false);
        assert_eq!(reloaded.admit(&s, a, None), Admission::Go);
        reloaded.fail(&s, a, None).await;
        assert_ne!(reloaded.admit(&s, a, None), Admission::Go);
        // Another scopegate has counts of its own.
        let other = store();
        other.observe(Metrics::new());
        let fresh = FailureLimiter::new(4, Duration::from_secs(60), Penalty::Reject, false);
        assert_eq!(fresh.admit(&other, a, None), Admission::Go);
    }

    #[tokio::test]
    async fn a_bucket_full_by_its_shared_count_is_held_until_it_expires() {
        let s = store();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let l = FailureLimiter::new(3, Duration::from_secs(60), Penalty::Reject, true);
        l.counters(&s)
            .block(Bucket::Net(a, 32), Duration::from_millis(1500));
        assert_eq!(
            l.admit(&s, a, None),
            Admission::Refuse(Duration::from_secs(2))
        );
        assert_eq!(
            l.admit(&s, "192.0.2.2".parse().unwrap(), None),
            Admission::Go
        );
        let d = Duration::from_millis(300);
        let slow = FailureLimiter::new(3, Duration::from_secs(60), Penalty::Delay(d), true);
        slow.counters(&s)
            .block(Bucket::Net(a, 32), Duration::from_millis(100));
        assert!(matches!(slow.admit(&s, a, None), Admission::Wait(w) if w <= d));
        assert!(matches!(slow.admit(&s, a, None), Admission::Wait(w) if w > d));
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(slow.admit(&s, a, None), Admission::Go);
    }

    #[test]
    fn shared_keys_name_addresses_and_hash_families() {
        let v4 = Bucket::Net("192.0.2.1".parse().unwrap(), 32);
        assert_eq!(v4.shared_key("p:"), "p:fail:192.0.2.1/32");
        let v6 = Bucket::Net(masked_v6("2001:db8:1:2::7".parse().unwrap(), 64), 64);
        assert_eq!(v6.shared_key("p:"), "p:fail:2001:db8:1:2::/64");
        let family = [0xabu8; 16];
        let k = Bucket::Family(family).shared_key("p:");
        assert!(k.starts_with("p:fail:family:") && k.len() == "p:fail:family:".len() + 64);
        assert!(!k.contains(&crate::store::hex(&family[..4])), "{k}");
    }
}
