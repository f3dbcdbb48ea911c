//! The embedded store's session use (`Store::session_touch`, what every
//! session request pays): a live session among 100k and among 1M, an unknown
//! one, and live ones from 2 threads at once (the time is per use, so its
//! inverse is the throughput of both). Run with `cargo bench --bench store`.
//!
//! Sessions are used in a shuffled order, so the store's memory is read as
//! requests would read it, not in the order it was written.

use std::{hint::black_box, time::Duration};

use criterion::{BenchmarkId, Criterion, Throughput};
use futures_util::FutureExt;
use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
use scopegate::store::{key, Key, SessionRecord, Store};

const NOW_MS: u64 = 1_700_000_000_000;

fn record() -> SessionRecord {
    SessionRecord {
        business: "api".into(),
        created_ms: NOW_MS,
        expires_ms: NOW_MS + 24 * 3600 * 1000,
        last_used_ms: NOW_MS,
        generation: 0,
        idle: Duration::from_secs(3600),
        key_id: "4f1e2d3c4b5a".into(),
        customer: None,
    }
}

/// The memory backend never waits: one poll finishes every operation.
fn touch(store: &Store, k: &Key) -> bool {
    store
        .session_touch(k, NOW_MS, scopegate::store::Slide::Any)
        .now_or_never()
        .expect("the memory store answers at once")
        .expect("the memory store does not fail")
        .is_some()
}

/// A store holding `n` live sessions, and their keys in a shuffled order.
fn filled(n: u64) -> (Store, Vec<Key>) {
    let store = Store::memory(1000, n);
    let mut keys: Vec<Key> = (0..n)
        .map(|i| key("bench-store", &[&i.to_le_bytes()]))
        .collect();
    let r = record();
    for k in &keys {
        store
            .session_put(k, &r)
            .now_or_never()
            .expect("the memory store answers at once")
            .expect("the memory store does not fail");
    }
    keys.shuffle(&mut StdRng::seed_from_u64(7));
    (store, keys)
}

fn label(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1000 && n % 1000 == 0 => format!("{}k", n / 1000),
        n => n.to_string(),
    }
}

fn session_touch(c: &mut Criterion, sizes: &[u64]) {
    let mut g = c.benchmark_group("session_touch");
    g.throughput(Throughput::Elements(1));
    for &n in sizes {
        let (store, keys) = filled(n);
        let mut i = 0;
        g.bench_function(BenchmarkId::new("hit", label(n)), |b| {
            b.iter(|| {
                i = (i + 1) % keys.len();
                assert!(touch(&store, black_box(&keys[i])));
            })
        });
        if n != *sizes.last().expect("sizes") {
            continue;
        }
        let unknown: Vec<Key> = (0..4096u64)
            .map(|i| key("bench-store-unknown", &[&i.to_le_bytes()]))
            .collect();
        let mut i = 0;
        g.bench_function(BenchmarkId::new("miss", label(n)), |b| {
            b.iter(|| {
                i = (i + 1) % unknown.len();
                assert!(!touch(&store, black_box(&unknown[i])));
            })
        });
        // Each thread uses its own half of the sessions, in its own order.
        g.bench_function(BenchmarkId::new("hit_2_threads", label(n)), |b| {
            b.iter_custom(|iters| {
                let start = std::time::Instant::now();
                std::thread::scope(|s| {
                    for half in keys.chunks(keys.len().div_ceil(2)) {
                        let store = &store;
                        s.spawn(move || {
                            for j in 0..iters.div_ceil(2) as usize {
                                assert!(touch(store, black_box(&half[j % half.len()])));
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
    }
    g.finish();
}

fn main() {
    // `cargo bench` passes `--bench`; the quick run `cargo test --all-targets`
    // makes of every bench does not, and gets small stores.
    let sizes: &[u64] = if std::env::args().any(|a| a == "--bench") {
        &[100_000, 1_000_000]
    } else {
        &[1_000, 10_000]
    };
    let mut c = Criterion::default().configure_from_args();
    session_touch(&mut c, sizes);
    c.final_summary();
}
