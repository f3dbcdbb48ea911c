//! The embedded store's sessions: a bounded table, split into shards each
//! behind its own lock, so that uses of different sessions from many threads
//! rarely wait on one another.
//!
//! A shard keeps its sessions in a slab of fixed-size slots (no allocation
//! per session, except an SSO session's customer), the business and key ids
//! interned per shard, and finds them through an open-addressing index of
//! 8-byte buckets (slot number and hash tag). Per live session that is 96
//! bytes of slot, 4 of metadata and 11 to 22 of index (between 3/8 and 3/4
//! of the buckets are used).
//!
//! Bound: one count of the sessions held, across shards (changed by puts and
//! removals, never by uses). A put that finds the store full makes room in
//! its own shard, where a CLOCK hand picks the session to drop (an eviction
//! only logs a client out): sessions used since the hand last passed get a
//! second chance, so the ones dropped are among the least recently used of
//! that shard, and a session put is never the next one dropped. The store
//! holds `max_sessions` before it drops any, however the keys spread.
//!
//! Expiry: whether a session has ended is decided by the caller's clock
//! ([`ended`]), when it is used. Besides, every slot carries a deadline on
//! the store's own (monotonic, whole seconds) clock, its idle time plus a
//! second after its last put or use; a sweep cursor walks each shard a few
//! slots per operation and frees the slots past their deadline, so sessions
//! nobody uses again are reclaimed by the traffic of others.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc, Mutex, PoisonError,
    },
    time::Instant,
};

use super::{Key, SessionRecord, Slide};

/// A store split this fine holds at least this many sessions per shard.
const MIN_PER_SHARD: u64 = 1024;
const MAX_SHARDS: u64 = 64;
/// Slot numbers and index tags stay well inside 32 bits.
const MAX_PER_SHARD: u32 = 1 << 30;

/// Slots the sweep examines per put, and per use or delete.
const PUT_SWEEP: u32 = 8;
const USE_SWEEP: u32 = 2;

/// Metadata of a slot: 0 when free; else the deadline (store seconds, never
/// 0) in the low bits and whether it was used since the hand last passed.
const USED: u32 = 1 << 31;
const DEADLINE: u32 = USED - 1;

/// Whether a session has ended at `now_ms` (the caller's clock): idle too
/// long, or past its cap.
pub(super) fn ended(expires_ms: u64, last_used_ms: u64, idle_ms: u64, now_ms: u64) -> bool {
    now_ms > expires_ms || now_ms.saturating_sub(last_used_ms) > idle_ms
}

/// The sessions of the embedded store.
pub(super) struct Sessions {
    shards: Box<[Padded]>,
    /// The store's own clock, for its deadlines.
    started: Instant,
    seed: u64,
}

/// One shard's lock on its own cache lines.
#[repr(align(128))]
struct Padded(Mutex<Shard>);

impl Sessions {
    pub(super) fn new(max_sessions: u64) -> Self {
        let shards = (max_sessions / MIN_PER_SHARD).clamp(1, MAX_SHARDS);
        // A power of two, so a shard is picked by a mask.
        let shards = 1u64 << (63 - shards.leading_zeros());
        let seed = rand::random();
        let bound = Arc::new(Bound {
            live: AtomicU64::new(0),
            max: max_sessions,
        });
        let shards = (0..shards)
            .map(|_| Padded(Mutex::new(Shard::new(bound.clone(), seed))))
            .collect();
        Self {
            shards,
            started: Instant::now(),
            seed,
        }
    }

    /// Store seconds (from 1).
    fn now_s(&self) -> u32 {
        (self.started.elapsed().as_secs() + 1).min(u64::from(DEADLINE) / 2) as u32
    }

    fn shard(&self, h: u64) -> std::sync::MutexGuard<'_, Shard> {
        let i = (h as usize) & (self.shards.len() - 1);
        self.shards[i]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores a session (replacing one under the same key).
    pub(super) fn put(&self, key: &Key, rec: &SessionRecord) {
        let (h, now_s) = (hash(self.seed, key), self.now_s());
        self.shard(h).put(key, h, rec, now_s);
    }

    /// The session as it was before this use at `now_ms`, which it records;
    /// `None` when unknown or ended (then removed).
    pub(super) fn touch(&self, key: &Key, now_ms: u64, slide: Slide) -> Option<SessionRecord> {
        let (h, now_s) = (hash(self.seed, key), self.now_s());
        self.shard(h).touch(key, h, now_ms, now_s, slide)
    }

    /// Removes a session; `true` when there was one.
    pub(super) fn delete(&self, key: &Key) -> bool {
        let (h, now_s) = (hash(self.seed, key), self.now_s());
        self.shard(h).delete(key, h, now_s)
    }

    /// Live sessions (including ended ones not yet reclaimed).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        let live = self
            .shards
            .iter()
            .map(|s| s.0.lock().unwrap().live as usize)
            .sum();
        assert_eq!(self.shards[0].0.lock().unwrap().bound.live(), live);
        live
    }
}

/// The count of sessions held by all shards, and its limit.
struct Bound {
    live: AtomicU64,
    max: u64,
}

impl Bound {
    #[cfg(test)]
    fn live(&self) -> usize {
        self.live.load(Relaxed) as usize
    }
}

/// Mixes the whole key with the store's seed. The low bits pick the shard,
/// the high 32 are the index tag (and its home bucket).
fn hash(seed: u64, key: &Key) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = seed;
    for w in key.chunks_exact(8) {
        let w = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        h = (h ^ w).wrapping_mul(K);
        h ^= h >> 29;
    }
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^ (h >> 32)
}

/// A session as a slot holds it.
struct Slot {
    key: Key,
    created_ms: u64,
    expires_ms: u64,
    last_used_ms: u64,
    generation: u64,
    idle_ms: u64,
    customer: Option<Box<str>>,
    business: u32,
    key_id: u32,
}

/// Strings shared by the sessions of a shard (business and key ids), each
/// stored once and counted; forgotten with the last session naming it.
#[derive(Default)]
struct Names {
    ids: HashMap<Arc<str>, u32>,
    names: Vec<(Arc<str>, u32)>,
    unused: Vec<u32>,
}

impl Names {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            self.names[id as usize].1 += 1;
            return id;
        }
        let name: Arc<str> = Arc::from(s);
        let id = match self.unused.pop() {
            Some(id) => {
                self.names[id as usize] = (name.clone(), 1);
                id
            }
            None => {
                self.names.push((name.clone(), 1));
                (self.names.len() - 1) as u32
            }
        };
        self.ids.insert(name, id);
        id
    }

    fn release(&mut self, id: u32) {
        let (name, refs) = &mut self.names[id as usize];
        *refs -= 1;
        if *refs == 0 {
            self.ids.remove(&**name);
            *name = Arc::from("");
            self.unused.push(id);
        }
    }

    fn get(&self, id: u32) -> &str {
        &self.names[id as usize].0
    }
}

struct Shard {
    /// Shared by all shards.
    bound: Arc<Bound>,
    seed: u64,
    /// As long as this shard's most sessions at once; a free slot keeps its
    /// old numbers.
    slots: Vec<Slot>,
    /// Per slot: see [`USED`].
    meta: Vec<u32>,
    /// Free slots below `slots.len()`.
    free: Vec<u32>,
    /// Linear probing; a bucket is 0 (empty) or `tag << 32 | slot + 1`.
    index: Vec<u64>,
    bits: u32,
    live: u32,
    /// The eviction hand and the sweep cursor, slot numbers.
    hand: u32,
    sweep: u32,
    names: Names,
}

impl Shard {
    fn new(bound: Arc<Bound>, seed: u64) -> Self {
        Self {
            bound,
            seed,
            slots: Vec::new(),
            meta: Vec::new(),
            free: Vec::new(),
            index: vec![0; 16],
            bits: 4,
            live: 0,
            hand: 0,
            sweep: 0,
            names: Names::default(),
        }
    }

    fn mask(&self) -> usize {
        self.index.len() - 1
    }

    /// The home bucket of a tag.
    fn home(&self, tag: u32) -> usize {
        (tag >> (32 - self.bits)) as usize
    }

    /// The bucket and slot of `key`.
    fn find(&self, key: &Key, h: u64) -> Option<(usize, usize)> {
        let tag = (h >> 32) as u32;
        let mut b = self.home(tag);
        loop {
            let v = self.index[b];
            if v == 0 {
                return None;
            }
            if (v >> 32) as u32 == tag {
                let slot = (v as u32 - 1) as usize;
                if self.slots[slot].key == *key {
                    return Some((b, slot));
                }
            }
            b = (b + 1) & self.mask();
        }
    }

    fn index_insert(&mut self, tag: u32, slot: usize) {
        let mut b = self.home(tag);
        while self.index[b] != 0 {
            b = (b + 1) & self.mask();
        }
        self.index[b] = u64::from(tag) << 32 | (slot as u64 + 1);
    }

    /// Empties bucket `b`, shifting back the entries after it that probed past it.
    fn index_remove(&mut self, mut b: usize) {
        let mask = self.mask();
        let mut j = b;
        loop {
            j = (j + 1) & mask;
            let v = self.index[j];
            if v == 0 {
                break;
            }
            let home = self.home((v >> 32) as u32);
            // The entry at j may move to b unless its home lies in (b, j].
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(b) & mask) {
                self.index[b] = v;
                b = j;
            }
        }
        self.index[b] = 0;
    }

    /// Doubles the index once it would be more than three quarters full.
    fn index_reserve(&mut self) {
        if (self.live as usize + 1) * 4 <= self.index.len() * 3 {
            return;
        }
        let doubled = vec![0; self.index.len() * 2];
        let old = std::mem::replace(&mut self.index, doubled);
        self.bits += 1;
        for v in old.into_iter().filter(|&v| v != 0) {
            self.index_insert((v >> 32) as u32, (v as u32 - 1) as usize);
        }
    }

    /// A free slot, growing the slab when there is none.
    fn free_slot(&mut self) -> usize {
        if let Some(i) = self.free.pop() {
            return i as usize;
        }
        let len = self.slots.len();
        self.slots.push(Slot {
            key: [0; 32],
            created_ms: 0,
            expires_ms: 0,
            last_used_ms: 0,
            generation: 0,
            idle_ms: 0,
            customer: None,
            business: 0,
            key_id: 0,
        });
        self.meta.push(0);
        len
    }

    /// Frees slot `i`, found at bucket `b`.
    fn remove_at(&mut self, b: usize, i: usize) {
        self.index_remove(b);
        let s = &mut self.slots[i];
        s.customer = None;
        let (business, key_id) = (s.business, s.key_id);
        self.names.release(business);
        self.names.release(key_id);
        self.meta[i] = 0;
        self.free.push(i as u32);
        self.live -= 1;
        self.bound.live.fetch_sub(1, Relaxed);
    }

    fn remove_slot(&mut self, i: usize) {
        let key = self.slots[i].key;
        let h = hash(self.seed, &key);
        let (b, _) = self.find(&key, h).expect("a live slot is indexed");
        self.remove_at(b, i);
    }

    /// Frees up to `n` slots' worth of sessions past their deadline.
    fn sweep(&mut self, n: u32, now_s: u32) {
        if self.live == 0 {
            return;
        }
        let len = self.slots.len() as u32;
        for _ in 0..n {
            let i = self.sweep % len;
            self.sweep = i + 1;
            let m = self.meta[i as usize];
            if m != 0 && m & DEADLINE < now_s {
                self.remove_slot(i as usize);
            }
        }
    }

    /// Drops one session: the first past its deadline or not used since the
    /// hand last passed it.
    fn evict(&mut self, now_s: u32) {
        let len = self.slots.len() as u32;
        while self.live > 0 {
            let i = (self.hand % len) as usize;
            self.hand = i as u32 + 1;
            let m = self.meta[i];
            if m == 0 {
                continue;
            }
            if m & USED != 0 && m & DEADLINE >= now_s {
                self.meta[i] = m & !USED;
                continue;
            }
            self.remove_slot(i);
            return;
        }
    }

    fn put(&mut self, key: &Key, h: u64, rec: &SessionRecord, now_s: u32) {
        self.sweep(PUT_SWEEP, now_s);
        let found = self.find(key, h);
        if found.is_none() && self.bound.max == 0 {
            return;
        }
        // Interned before the old names are released: a session put again
        // under the same names does not make them forgotten and re-made.
        let (business, key_id) = (
            self.names.intern(&rec.business),
            self.names.intern(&rec.key_id),
        );
        let i = match found {
            Some((_, i)) => {
                let s = &self.slots[i];
                let (old_business, old_key_id) = (s.business, s.key_id);
                self.names.release(old_business);
                self.names.release(old_key_id);
                i
            }
            None => {
                // Counted before it is in: racing puts in other shards see it.
                let held = self.bound.live.fetch_add(1, Relaxed) + 1;
                if held > self.bound.max || self.live >= MAX_PER_SHARD {
                    // Full: room is made here (also for any excess racing
                    // puts left where they could not, in empty shards).
                    while self.live > 0
                        && (self.bound.live.load(Relaxed) > self.bound.max
                            || self.live >= MAX_PER_SHARD)
                    {
                        self.evict(now_s);
                    }
                }
                self.index_reserve();
                let i = self.free_slot();
                self.index_insert((h >> 32) as u32, i);
                self.live += 1;
                i
            }
        };
        let idle_ms = rec.idle.as_millis().min(u128::from(u64::MAX)) as u64;
        self.slots[i] = Slot {
            key: *key,
            created_ms: rec.created_ms,
            expires_ms: rec.expires_ms,
            last_used_ms: rec.last_used_ms,
            generation: rec.generation,
            idle_ms,
            customer: rec.customer.as_deref().map(Box::from),
            business,
            key_id,
        };
        self.meta[i] = deadline(now_s, idle_ms) | USED;
    }

    fn touch(
        &mut self,
        key: &Key,
        h: u64,
        now_ms: u64,
        now_s: u32,
        slide: Slide,
    ) -> Option<SessionRecord> {
        self.sweep(USE_SWEEP, now_s);
        let (b, i) = self.find(key, h)?;
        let s = &self.slots[i];
        if self.meta[i] & DEADLINE < now_s || ended(s.expires_ms, s.last_used_ms, s.idle_ms, now_ms)
        {
            self.remove_at(b, i);
            return None;
        }
        let before = SessionRecord {
            business: self.names.get(s.business).to_owned(),
            created_ms: s.created_ms,
            expires_ms: s.expires_ms,
            last_used_ms: s.last_used_ms,
            generation: s.generation,
            idle: std::time::Duration::from_millis(s.idle_ms),
            key_id: self.names.get(s.key_id).to_owned(),
            customer: s.customer.as_deref().map(str::to_owned),
        };
        if slide.allows(&before.business) {
            let s = &mut self.slots[i];
            s.last_used_ms = s.last_used_ms.max(now_ms);
            self.meta[i] = deadline(now_s, s.idle_ms) | USED;
        }
        Some(before)
    }

    fn delete(&mut self, key: &Key, h: u64, now_s: u32) -> bool {
        self.sweep(USE_SWEEP, now_s);
        match self.find(key, h) {
            Some((b, i)) => {
                self.remove_at(b, i);
                true
            }
            None => false,
        }
    }
}

/// The store deadline of a session put or used at `now_s`: its idle time,
/// rounded up to seconds, and one more.
fn deadline(now_s: u32, idle_ms: u64) -> u32 {
    let idle_s = idle_ms.div_ceil(1000) + 1;
    (u64::from(now_s) + idle_s).min(u64::from(DEADLINE)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn k(i: u64) -> Key {
        super::super::key("t", &[&i.to_le_bytes()])
    }

    fn rec(business: &str, idle_s: u64) -> SessionRecord {
        SessionRecord {
            business: business.into(),
            created_ms: 1,
            expires_ms: u64::MAX,
            last_used_ms: 1,
            generation: 3,
            idle: Duration::from_secs(idle_s),
            key_id: format!("key-of-{business}"),
            customer: None,
        }
    }

    fn put(s: &mut Shard, i: u64, r: &SessionRecord, now_s: u32) {
        let key = k(i);
        s.put(&key, hash(s.seed, &key), r, now_s);
    }

    fn touch(s: &mut Shard, i: u64, now_s: u32) -> Option<SessionRecord> {
        let key = k(i);
        s.touch(&key, hash(s.seed, &key), 2, now_s, Slide::Any)
    }

    fn delete(s: &mut Shard, i: u64, now_s: u32) -> bool {
        let key = k(i);
        s.delete(&key, hash(s.seed, &key), now_s)
    }

    /// Every live slot is found through the index, and the counts agree.
    fn check(s: &Shard) {
        let live: Vec<usize> = (0..s.slots.len()).filter(|&i| s.meta[i] != 0).collect();
        assert_eq!(live.len(), s.live as usize);
        assert_eq!(live.len() + s.free.len(), s.slots.len());
        assert!(s.live as u64 <= s.bound.max);
        assert_eq!(s.index.iter().filter(|&&v| v != 0).count(), live.len());
        for i in live {
            let key = s.slots[i].key;
            assert_eq!(s.find(&key, hash(s.seed, &key)).map(|f| f.1), Some(i));
        }
        let refs: u32 = s.names.names.iter().map(|n| n.1).sum();
        assert_eq!(refs, 2 * s.live);
    }

    fn shard(max: u64) -> Shard {
        Shard::new(
            Arc::new(Bound {
                live: AtomicU64::new(0),
                max,
            }),
            7,
        )
    }

    #[test]
    fn a_store_holds_max_sessions_however_they_spread() {
        for max in [0, 1, 100, 1023, 20_000] {
            let s = Sessions::new(max);
            assert!(s.shards.len().is_power_of_two());
            assert!(s.shards.len() == 1 || max / s.shards.len() as u64 >= MIN_PER_SHARD);
            for i in 0..max {
                s.put(&k(i), &rec("a", 60));
            }
            assert_eq!(s.len() as u64, max);
            for i in max..max + 100 {
                s.put(&k(i), &rec("a", 60));
            }
            assert_eq!(s.len() as u64, max, "{max}");
            for i in (max..max + 100).rev().take(max as usize) {
                assert!(s.touch(&k(i), 2, Slide::Any).is_some(), "newest {i} kept");
            }
        }
        assert_eq!(Sessions::new(1_000_000).shards.len(), 64);
    }

    #[test]
    fn a_full_shard_drops_the_oldest_unused_and_keeps_what_was_used() {
        let mut s = shard(100);
        for i in 0..=100 {
            put(&mut s, i, &rec("a", 60), 1);
        }
        // The hand went round once (everything was new) and dropped 0.
        assert!(touch(&mut s, 0, 1).is_none());
        // Used since: a second chance.
        for i in [1, 2] {
            assert!(touch(&mut s, i, 1).is_some());
        }
        for i in 101..=150 {
            put(&mut s, i, &rec("a", 60), 1);
            check(&s);
        }
        assert_eq!(s.live, 100);
        for i in [1, 2] {
            assert!(touch(&mut s, i, 1).is_some(), "used {i} kept");
        }
        for i in 3..=52 {
            assert!(touch(&mut s, i, 1).is_none(), "oldest {i} dropped");
        }
        for i in 53..=150 {
            assert!(touch(&mut s, i, 1).is_some(), "{i} kept");
        }
    }

    #[test]
    fn a_replaced_session_takes_no_more_room() {
        let mut s = shard(4);
        for _ in 0..10 {
            put(&mut s, 1, &rec("a", 60), 1);
            put(&mut s, 2, &rec("b", 60), 1);
        }
        put(&mut s, 2, &rec("c", 60), 1);
        check(&s);
        assert_eq!(s.live, 2);
        assert_eq!(touch(&mut s, 2, 1).unwrap().business, "c");
        assert!(!s.names.ids.contains_key("b"), "b forgotten");
    }

    #[test]
    fn sessions_past_their_deadline_are_swept_without_being_used() {
        let mut s = shard(1000);
        for i in 0..500 {
            put(&mut s, i, &rec("short", 10), 1);
        }
        for i in 500..600 {
            put(&mut s, i, &rec("long", 3600), 1);
        }
        // Later (store clock), other sessions' traffic reclaims them.
        for _ in 0..300 {
            put(&mut s, 1000, &rec("other", 3600), 100);
            check(&s);
        }
        assert_eq!(s.live, 101);
        assert!(!s.names.ids.contains_key("short"));
        for i in 500..600 {
            assert!(touch(&mut s, i, 100).is_some());
        }
        // A use slides the deadline: not swept.
        put(&mut s, 700, &rec("short", 10), 100);
        for t in (100..200).step_by(5) {
            assert!(touch(&mut s, 700, t).is_some(), "at {t}");
            for _ in 0..400 {
                assert!(!delete(&mut s, 5000, t));
            }
        }
        assert!(touch(&mut s, 700, 200).is_some());
        check(&s);
    }

    #[test]
    fn a_session_past_its_store_deadline_reads_as_absent() {
        let mut s = shard(10);
        put(&mut s, 1, &rec("a", 10), 1);
        assert!(touch(&mut s, 1, 12).is_some(), "idle 10 s, + 1 s");
        assert!(touch(&mut s, 1, 24).is_none());
        assert_eq!(s.live, 0);
    }

    #[test]
    fn an_ended_session_is_removed_when_used() {
        let mut s = shard(10);
        let key = k(1);
        let h = hash(7, &key);
        s.put(&key, h, &rec("a", 60), 1);
        assert!(s.touch(&key, h, 60_001, 1, Slide::Any).is_some());
        assert!(
            s.touch(&key, h, 120_002, 1, Slide::Any).is_none(),
            "idle > 60 s"
        );
        assert_eq!(s.live, 0);
        let capped = SessionRecord {
            expires_ms: 100,
            ..rec("a", 60)
        };
        s.put(&key, h, &capped, 1);
        assert!(
            s.touch(&key, h, 101, 1, Slide::Any).is_none(),
            "past its cap"
        );
        check(&s);
    }

    #[test]
    fn records_come_back_as_they_were_put() {
        let mut s = shard(10);
        let r = SessionRecord {
            business: "sso:acme".into(),
            created_ms: 1_700_000_000_123,
            expires_ms: 1_700_086_400_123,
            last_used_ms: 1_700_000_000_456,
            generation: u64::MAX,
            idle: Duration::from_millis(1_234_567),
            key_id: "v2:k1".into(),
            customer: Some(r#"{"id":"c-1"}"#.into()),
        };
        let key = k(9);
        let h = hash(7, &key);
        s.put(&key, h, &r, 1);
        assert_eq!(
            s.touch(&key, h, 1_700_000_000_400, 1, Slide::Any),
            Some(r.clone())
        );
        let again = s.touch(&key, h, 1_700_000_000_500, 1, Slide::Any).unwrap();
        assert_eq!(again.last_used_ms, 1_700_000_000_456, "never moved back");
        assert_eq!(
            s.touch(&key, h, 1, 1, Slide::Any).unwrap().last_used_ms,
            1_700_000_000_500
        );
    }

    #[test]
    fn a_store_without_room_keeps_nothing() {
        let s = Sessions::new(0);
        s.put(&k(1), &rec("a", 60));
        assert!(s.touch(&k(1), 2, Slide::Any).is_none());
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn threads_share_the_store() {
        let s = Arc::new(Sessions::new(100_000));
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000 {
                        let key = k(t * 1_000_000 + i);
                        s.put(&key, &rec("a", 60));
                        assert!(s.touch(&key, 2, Slide::Any).is_some());
                        if i % 2 == 0 {
                            assert!(s.delete(&key));
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(s.len(), 10_000);
        for p in s.shards.iter() {
            check(&p.0.lock().unwrap());
        }
    }

    /// After any inserts and removals, every entry is reachable from its
    /// home bucket without crossing an empty one (what `find` relies on).
    #[test]
    fn removals_keep_every_probe_chain_whole() {
        use proptest::{prelude::*, test_runner::TestRunner};
        let ops = proptest::collection::vec((any::<bool>(), 0u32..8, 0usize..64), 1..200);
        TestRunner::default()
            .run(&ops, |ops| {
                let mut s = shard(1000);
                // Few distinct homes (tags share their top bits), so chains collide.
                let mut present: Vec<(u32, usize)> = Vec::new();
                for (next, (insert, home, pick)) in ops.into_iter().enumerate() {
                    if insert || present.is_empty() {
                        let tag = (home << 29) | next as u32;
                        s.live += 1;
                        s.index_reserve();
                        s.index_insert(tag, next);
                        present.push((tag, next));
                    } else {
                        let (tag, slot) = present.swap_remove(pick % present.len());
                        let v = u64::from(tag) << 32 | (slot as u64 + 1);
                        let b = s.index.iter().position(|&x| x == v).expect("indexed");
                        s.index_remove(b);
                        s.live -= 1;
                    }
                    for &(tag, slot) in &present {
                        let v = u64::from(tag) << 32 | (slot as u64 + 1);
                        let mut b = s.home(tag);
                        while s.index[b] != v {
                            prop_assert!(s.index[b] != 0, "chain broken");
                            b = (b + 1) & s.mask();
                        }
                    }
                    prop_assert_eq!(s.index.iter().filter(|&&x| x != 0).count(), present.len());
                }
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn racing_puts_keep_the_store_within_its_bound() {
        let s = Arc::new(Sessions::new(4096));
        assert_eq!(s.shards.len(), 4);
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000 {
                        s.put(&k(t * 1_000_000 + i), &rec("a", 60));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Two puts that meet may both make room: at most one less each.
        let live = s.len();
        assert!((4096 - 4..=4096).contains(&live), "{live}");
    }

    mod model {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Put(u8, u8),
            Touch(u8),
            Delete(u8),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (0u8..40, 0u8..3).prop_map(|(k, b)| Op::Put(k, b)),
                (0u8..40).prop_map(Op::Touch),
                (0u8..40).prop_map(Op::Delete),
            ]
        }

        proptest! {
            /// Without evictions or expiry, the shard answers like a map; and
            /// with a small cap it never holds more than the cap.
            #[test]
            fn a_shard_behaves_like_a_map(ops in proptest::collection::vec(op(), 1..300), cap in 1u64..48) {
                let mut s = shard(cap);
                let mut big = shard(1000);
                let mut model: HashMap<u8, String> = HashMap::new();
                for op in ops {
                    match op {
                        Op::Put(i, b) => {
                            let r = rec(&format!("b{b}"), 60);
                            put(&mut s, u64::from(i), &r, 1);
                            put(&mut big, u64::from(i), &r, 1);
                            model.insert(i, r.business);
                        }
                        Op::Touch(i) => {
                            let got = touch(&mut big, u64::from(i), 1).map(|r| r.business);
                            prop_assert_eq!(got, model.get(&i).cloned());
                            touch(&mut s, u64::from(i), 1);
                        }
                        Op::Delete(i) => {
                            prop_assert_eq!(delete(&mut big, u64::from(i), 1), model.remove(&i).is_some());
                            delete(&mut s, u64::from(i), 1);
                        }
                    }
                    check(&s);
                    check(&big);
                    prop_assert!(u64::from(s.live) <= cap);
                    prop_assert_eq!(s.bound.live(), s.live as usize);
                    prop_assert_eq!(big.bound.live(), big.live as usize);
                }
            }
        }
    }
}
