//! Memory of the embedded session store, and its bound.
//!
//! Inserts 1,200,000 sessions into `Store::memory(1_000_000, 1_000_000)`,
//! reports the process RSS (VmRSS) before and after, and the bytes per live
//! session; then checks that at most `max_sessions` of them are still found,
//! that the newest 200,000 all are, and, at full size, that the store's
//! growth stays within 256 MiB (PASS/FAIL, non-zero exit on FAIL). Run with:
//!
//!     cargo bench --bench session_memory
//!
//! Keys are computed on the fly (never held in a Vec), so the RSS growth is the
//! store's own. Sessions idle for an hour: nothing expires during the run.
//!
//! Eviction is an approximate LRU (a CLOCK hand per shard; a put into a full
//! store makes room in its own shard): of sessions never used again the
//! oldest go first, so the first 200,000 are nearly all dropped, but not
//! quite all: a shard that got fewer of the later puts keeps a few of its
//! oldest.

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use scopegate::{
    auth::session::Business,
    store::{key, Key, SessionRecord, Slide, Store},
};

/// The sizes of a run: `cargo bench` uses the real ones; the quick run that
/// `cargo test --all-targets` makes of every bench uses a hundredth.
#[derive(Clone, Copy)]
struct Scale {
    max_sessions: u64,
    inserted: u64,
    /// The reported ranges: the oldest sessions, and the newest.
    edge: u64,
}

const FULL: Scale = Scale {
    max_sessions: 1_000_000,
    inserted: 1_200_000,
    edge: 200_000,
};
const QUICK: Scale = Scale {
    max_sessions: 10_000,
    inserted: 12_000,
    edge: 2_000,
};

fn session_key(i: u64) -> Key {
    key("bench-session", &[&i.to_le_bytes()])
}

/// VmRSS of this process, in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The goal for 1,000,000 live sessions: the store's growth of the resident set.
const BUDGET: u64 = 256 * 1024 * 1024;

async fn run(scale: Scale) -> bool {
    let Scale {
        max_sessions,
        inserted,
        edge,
    } = scale;
    let store = Store::memory(1_000_000, max_sessions);
    let idle = Duration::from_secs(3600);
    let start_ms = now_ms();
    let key_id = Business::key_id_of(b"bench-private-key");
    let record = |i: u64| SessionRecord {
        business: "api".to_string(),
        created_ms: start_ms + i / 1000,
        expires_ms: start_ms + 24 * 3600 * 1000,
        last_used_ms: start_ms + i / 1000,
        generation: 0,
        idle,
        key_id: key_id.clone(),
        customer: None,
    };

    let rss_before = rss_bytes();
    let t = Instant::now();
    for i in 0..inserted {
        store
            .session_put(&session_key(i), &record(i))
            .await
            .expect("the memory store does not fail");
    }
    let insert_time = t.elapsed();
    // Evictions happen within the puts: nothing is left to settle.
    let rss_inserted = rss_bytes();

    let t = Instant::now();
    let (mut first, mut middle, mut last) = (0u64, 0u64, 0u64);
    let now = now_ms();
    for i in 0..inserted {
        if store
            .session_touch(&session_key(i), now, Slide::Any)
            .await
            .expect("the memory store does not fail")
            .is_some()
        {
            if i < edge {
                first += 1;
            } else if i >= inserted - edge {
                last += 1;
            } else {
                middle += 1;
            }
        }
    }
    let count_time = t.elapsed();
    let found = first + middle + last;
    let rss_after = rss_bytes();

    let grown = rss_inserted.saturating_sub(rss_before);
    println!("session_memory: Store::memory(1_000_000, {max_sessions}), {inserted} sessions put");
    println!(
        "  insert time         {:.2} s ({:.0} puts/s)",
        insert_time.as_secs_f64(),
        inserted as f64 / insert_time.as_secs_f64()
    );
    println!("  RSS before          {}", mib(rss_before));
    println!("  RSS after inserts   {}", mib(rss_inserted));
    println!("  RSS after counting  {}", mib(rss_after));
    println!(
        "  bytes/session       {:.0} (RSS growth {} / {found} live), {:.0} per put",
        grown as f64 / found.max(1) as f64,
        mib(grown),
        grown as f64 / inserted as f64
    );
    println!(
        "  sessions found      {found} of {inserted} (first {edge}: {first}, middle: {middle}, last {edge}: {last}), counted in {:.2} s",
        count_time.as_secs_f64()
    );
    // Bounded, the newest sessions all kept, and (at full size) within budget.
    let bounded = found <= max_sessions;
    let newest = last == edge;
    let full = max_sessions == FULL.max_sessions;
    let within = grown <= BUDGET;
    let pass = bounded && newest && (within || !full);
    println!(
        "{}: {found} live sessions {} max_sessions = {max_sessions}; newest {edge} {}; RSS growth {} {} {}{}",
        if pass { "PASS" } else { "FAIL" },
        if bounded { "<=" } else { ">" },
        if newest { "all kept" } else { "NOT all kept" },
        mib(grown),
        if within { "<=" } else { ">" },
        mib(BUDGET),
        if full { "" } else { " (checked at full size only)" }
    );
    pass
}

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not.
    let scale = if std::env::args().any(|a| a == "--bench") {
        FULL
    } else {
        QUICK
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
    if rt.block_on(run(scale)) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
