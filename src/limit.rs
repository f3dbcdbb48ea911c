//! Counting failed credentials per client, and what happens past the limit.
//!
//! A client is its address, except that IPv6 clients are counted per /64
//! (one host usually holds a whole /64, so counting single addresses would
//! give it 2^64 budgets). Windows are fixed: a client's count starts at its
//! first failure and is forgotten `window` later. Only failures count, so a
//! client holding a valid credential is never slowed by using it; one that
//! probes (bad padding, guessed tokens) is.
//!
//! The counters are per process (embedded, bounded); several replicas each
//! allow `limit` per window.

use std::{
    net::IpAddr,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::Duration,
};

use moka::sync::Cache;

/// Most clients tracked at once; past it the least recently seen are forgotten.
const MAX_CLIENTS: u64 = 100_000;

/// What a client past its limit gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Penalty {
    /// 429 with `Retry-After`, without looking at the credential.
    Reject,
    /// The credential is checked after this delay.
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

pub struct FailureLimiter {
    counts: Cache<IpAddr, Arc<AtomicU32>>,
    limit: u32,
    window: Duration,
    penalty: Penalty,
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

/// The address a client is counted under.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::V6(s.into())
            }
        },
    }
}

impl FailureLimiter {
    /// `limit` failures per `window`; both non-zero (the config checks).
    pub fn new(limit: u32, window: Duration, penalty: Penalty) -> Self {
        Self {
            counts: Cache::builder()
                .max_capacity(MAX_CLIENTS)
                .time_to_live(window)
                .build(),
            limit,
            window,
            penalty,
        }
    }

    /// Whether `client` may present a credential now.
    pub fn admit(&self, client: IpAddr) -> Admission {
        let over = self
            .counts
            .get(&bucket(client))
            .is_some_and(|c| c.load(Ordering::Relaxed) >= self.limit);
        match (over, self.penalty) {
            (false, _) => Admission::Go,
            (true, Penalty::Reject) => Admission::Refuse(self.window),
            (true, Penalty::Delay(d)) => Admission::Wait(d),
        }
    }

    /// Counts one failure of `client`.
    pub fn fail(&self, client: IpAddr) {
        self.counts
            .get_with(bucket(client), || Arc::new(AtomicU32::new(0)))
            .fetch_add(1, Ordering::Relaxed);
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
            assert_eq!(l.admit(a), Admission::Go);
            l.fail(a);
        }
        assert_eq!(l.admit(a), Admission::Refuse(Duration::from_secs(60)));
        assert_eq!(l.admit(b), Admission::Go);
    }

    #[test]
    fn ipv6_clients_count_per_64_and_mapped_v4_as_v4() {
        let l = FailureLimiter::new(
            1,
            Duration::from_secs(60),
            Penalty::Delay(Duration::from_secs(1)),
        );
        l.fail("2001:db8:1:2::1".parse().unwrap());
        assert_eq!(
            l.admit("2001:db8:1:2:ffff::9".parse().unwrap()),
            Admission::Wait(Duration::from_secs(1))
        );
        assert_eq!(l.admit("2001:db8:1:3::1".parse().unwrap()), Admission::Go);
        l.fail("::ffff:192.0.2.7".parse().unwrap());
        assert_ne!(l.admit("192.0.2.7".parse().unwrap()), Admission::Go);
    }

    #[test]
    fn counts_are_forgotten_after_the_window() {
        let l = FailureLimiter::new(1, Duration::from_millis(50), Penalty::Reject);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        l.fail(a);
        assert_ne!(l.admit(a), Admission::Go);
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(l.admit(a), Admission::Go);
    }
}
