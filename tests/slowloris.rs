//! Slow and idle clients: 500 slowloris connections dripping a request head
//! while normal traffic is served within its latency budget, and 5,000 idle
//! keep-alive connections held within the connection cap while traffic goes
//! on. Both print their figures (requests, errors, p50/p99).

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::{io::AsyncWriteExt, net::TcpStream};

/// The soft limit on open files, from /proc (each connection costs two here:
/// the client's and the gate's end).
fn open_files_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        })
        .unwrap_or(1024)
}

/// Normal traffic from `workers` clients for `duration`: (latencies, errors).
async fn traffic(url: String, workers: usize, duration: Duration) -> (Vec<Duration>, usize) {
    let until = Instant::now() + duration;
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let (mut lat, mut errors) = (Vec::new(), 0);
                while Instant::now() < until {
                    let t = Instant::now();
                    match tokio::time::timeout(Duration::from_secs(2), get(&url)).await {
                        Ok(r) if r.status == 200 => lat.push(t.elapsed()),
                        _ => errors += 1,
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    all.sort();
    (all, errors)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_slowloris_connections_do_not_slow_normal_traffic() {
    if open_files_limit() < 2_000 {
        eprintln!(
            "\n*** SKIPPED: open-files limit {} < 2000 ***\n",
            open_files_limit()
        );
        return;
    }
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::start(&config(
        up.addr,
        &format!(
            "{PUBLIC_ROUTES}\n[limits]\nheader_read_timeout = \"2s\"\nmax_connections = 2000\n"
        ),
    ))
    .await;
    // 500 clients start a request head and add a byte every 300 ms.
    let mut slow = Vec::new();
    for _ in 0..500 {
        let mut s = TcpStream::connect(gate.addr).await.unwrap();
        s.write_all(b"GET /v2/x HTTP/1.1\r\nHost: a\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(s);
    }
    let drip = tokio::spawn(async move {
        let mut cut = 0;
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            for s in slow.iter_mut() {
                if s.write_all(b"a").await.is_err() {
                    cut += 1;
                }
            }
        }
        (cut, slow.len())
    });
    let (lat, errors) = traffic(gate.url("/v2/ok"), 4, Duration::from_secs(3)).await;
    let (p50, p99) = (pct(&lat, 0.5), pct(&lat, 0.99));
    eprintln!(
        "slowloris x500: {} requests served, {errors} errors, p50 {p50:?}, p99 {p99:?}",
        lat.len()
    );
    assert_eq!(errors, 0);
    assert!(lat.len() > 200, "{} requests", lat.len());
    assert!(p99 < Duration::from_millis(250), "p99 {p99:?}");
    // The header-read timeout cut the slow ones, whatever they kept sending.
    let (cut, total) = drip.await.unwrap();
    assert!(
        cut >= total * 9 / 10,
        "{cut} of {total} slow connections cut"
    );
    // None of them reached the upstream.
    assert!(up.records().iter().all(|r| r.target == "/v2/ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_idle_keep_alive_connections_are_held_within_the_cap() {
    if open_files_limit() < 11_000 {
        eprintln!(
            "\n*** SKIPPED: open-files limit {} < 11000 ***\n",
            open_files_limit()
        );
        return;
    }
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::start(&config(
        up.addr,
        &format!("{PUBLIC_ROUTES}\n[limits]\nidle_timeout = \"60s\"\nheader_read_timeout = \"60s\"\nmax_connections = 5200\n"),
    ))
    .await;
    // Each connection sends one request and keeps the connection open.
    let mut idle = Vec::with_capacity(5_000);
    for i in 0..5_000 {
        let mut s = TcpStream::connect(gate.addr).await.unwrap();
        if i % 10 == 0 {
            s.write_all(b"GET /open HTTP/1.1\r\nHost: a\r\n\r\n")
                .await
                .unwrap();
        }
        idle.push(s);
    }
    // The gate counts them all.
    let admin = gate.admin.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let open = loop {
        let m = get(&format!("http://{admin}/metrics")).await;
        let text = String::from_utf8(m.body.to_vec()).unwrap();
        let open: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("scopegate_open_connections "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        if open >= 5_000.0 || Instant::now() > deadline {
            break open;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(open >= 5_000.0, "{open} open connections counted");
    let (lat, errors) = traffic(gate.url("/v2/ok"), 4, Duration::from_secs(2)).await;
    let (p50, p99) = (pct(&lat, 0.5), pct(&lat, 0.99));
    eprintln!(
        "idle keep-alive x5000 (cap 5200): {} requests served, {errors} errors, p50 {p50:?}, p99 {p99:?}",
        lat.len()
    );
    assert_eq!(errors, 0);
    assert!(p99 < Duration::from_millis(250), "p99 {p99:?}");
    drop(idle);
}
