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
//! The counters are per process (embedded, bounded); several replicas each
//! allow `limit` per window.

use std::{
    net::IpAddr,
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use moka::sync::Cache;

/// Most buckets tracked at once; past it the least recently seen are forgotten.
const MAX_BUCKETS: u64 = 200_000;
/// An IPv6 /48 may fail this many times the per-client limit.
const SITE_FACTOR: u32 = 16;
/// With the delay penalty, the longest queue of slots before a refusal.
const MAX_QUEUED_SLOTS: u32 = 10;

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

#[derive(Default)]
struct Count {
    failures: AtomicU32,
    /// Delay penalty: the next free slot, ms since the limiter's epoch.
    next_slot_ms: AtomicU64,
}

pub struct FailureLimiter {
    counts: Cache<Bucket, Arc<Count>>,
    limit: u32,
    window: Duration,
    penalty: Penalty,
    epoch: Instant,
}

impl std::fmt::Debug for FailureLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailureLimiter")
            .field("limit", &self.limit)
            .field("window", &self.window)
            .field("penalty", &self.penalty)
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

impl FailureLimiter {
    /// `limit` failures per `window`; both non-zero (the config checks).
    pub fn new(limit: u32, window: Duration, penalty: Penalty) -> Self {
        Self {
            counts: Cache::builder()
                .max_capacity(MAX_BUCKETS)
                .time_to_live(window)
                .build(),
            limit,
            window,
            penalty,
            epoch: Instant::now(),
        }
    }

    /// Whether `client`, presenting a credential of `family`, may go on now.
    pub fn admit(&self, client: IpAddr, family: Option<[u8; 16]>) -> Admission {
        let full: Vec<Arc<Count>> = buckets(client, family, self.limit)
            .into_iter()
            .filter_map(|(b, limit)| {
                self.counts
                    .get(&b)
                    .filter(|c| c.failures.load(Ordering::Relaxed) >= limit)
            })
            .collect();
        let Some(count) = full.first() else {
            return Admission::Go;
        };
        match self.penalty {
            Penalty::Reject => Admission::Refuse(self.window),
            Penalty::Delay(delay) => {
                let now = self.epoch.elapsed().as_millis() as u64;
                let step = delay.as_millis().max(1) as u64;
                // Each request takes the slot one `delay` after the last
                // one taken (or after now): at least `delay` of waiting, and
                // one attempt per `delay` however many run at once.
                let taken =
                    count
                        .next_slot_ms
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
                            let slot = last.max(now) + step;
                            (slot - now <= step * u64::from(MAX_QUEUED_SLOTS)).then_some(slot)
                        });
                match taken {
                    Ok(last) => Admission::Wait(Duration::from_millis(last.max(now) + step - now)),
                    Err(last) => Admission::Refuse(Duration::from_millis(last.saturating_sub(now))),
                }
            }
        }
    }

    /// Counts one failure of `client` (and of `family`).
    pub fn fail(&self, client: IpAddr, family: Option<[u8; 16]>) {
        for (b, _) in buckets(client, family, self.limit) {
            self.counts
                .get_with(b, || Arc::new(Count::default()))
                .failures
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_refused_past_its_limit_and_others_are_not() {
        let l = FailureLimiter::new(3, Duration::from_secs(60), Penalty::Reject);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(l.admit(a, None), Admission::Go);
            l.fail(a, None);
        }
        assert_eq!(l.admit(a, None), Admission::Refuse(Duration::from_secs(60)));
        assert_eq!(l.admit(b, None), Admission::Go);
    }

    #[test]
    fn ipv6_clients_count_per_64_and_mapped_v4_as_v4() {
        let l = FailureLimiter::new(
            1,
            Duration::from_secs(60),
            Penalty::Delay(Duration::from_secs(1)),
        );
        l.fail("2001:db8:1:2::1".parse().unwrap(), None);
        assert_eq!(
            l.admit("2001:db8:1:2:ffff::9".parse().unwrap(), None),
            Admission::Wait(Duration::from_secs(1))
        );
        assert_eq!(
            l.admit("2001:db8:1:2:ffff::9".parse().unwrap(), None),
            Admission::Wait(Duration::from_secs(2))
        );
        assert_eq!(
            l.admit("2001:db8:1:3::1".parse().unwrap(), None),
            Admission::Go
        );
        l.fail("::ffff:192.0.2.7".parse().unwrap(), None);
        assert_ne!(l.admit("192.0.2.7".parse().unwrap(), None), Admission::Go);
    }

    #[test]
    fn counts_are_forgotten_after_the_window() {
        let l = FailureLimiter::new(1, Duration::from_millis(50), Penalty::Reject);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        l.fail(a, None);
        assert_ne!(l.admit(a, None), Admission::Go);
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(l.admit(a, None), Admission::Go);
    }

    #[test]
    fn one_ipv6_site_shares_a_bigger_budget() {
        let l = FailureLimiter::new(20, Duration::from_secs(60), Penalty::Reject);
        let mut admitted = 0u32;
        for subnet in 0u16..1000 {
            let ip: IpAddr = format!("2001:db8:77:{subnet:x}::1").parse().unwrap();
            for _ in 0..20 {
                if l.admit(ip, None) == Admission::Go {
                    admitted += 1;
                    l.fail(ip, None);
                }
            }
        }
        assert_eq!(admitted, 20 * SITE_FACTOR);
    }

    #[test]
    fn a_credential_family_is_limited_from_any_address() {
        let l = FailureLimiter::new(5, Duration::from_secs(60), Penalty::Reject);
        let family = Some([7u8; 16]);
        for i in 0..5u8 {
            let ip = IpAddr::from([192, 0, 2, i]);
            assert_eq!(l.admit(ip, family), Admission::Go);
            l.fail(ip, family);
        }
        let fresh = IpAddr::from([198, 51, 100, 1]);
        assert_ne!(l.admit(fresh, family), Admission::Go);
        assert_eq!(l.admit(fresh, Some([8u8; 16])), Admission::Go);
    }

    #[test]
    fn the_delay_penalty_hands_out_one_slot_per_delay_then_refuses() {
        let d = Duration::from_secs(1);
        let l = FailureLimiter::new(1, Duration::from_secs(60), Penalty::Delay(d));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        l.fail(a, None);
        let mut waits = Vec::new();
        for _ in 0..11 {
            waits.push(l.admit(a, None));
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
}
