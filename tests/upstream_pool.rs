//! scopegate's own upstream connection pool: connections are reused, closed
//! when idle past `pool_idle_timeout`, capped by `pool_max_idle_per_host`,
//! never reused after an answer that ends them or a body left unread, and a
//! connection the upstream closed while idle costs the client nothing.
//!
//! The upstream here is raw TCP so that it can see every connection: how many
//! the gate opened, how many requests each carried, and which the gate closed.

mod common;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::{config, get, Gate, PUBLIC_ROUTES};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// What one upstream connection saw.
#[derive(Debug, Clone, Default)]
struct Conn {
    /// Request targets, in order.
    targets: Vec<String>,
    /// The gate closed it (EOF on read).
    closed_by_gate: bool,
    /// Request body bytes read (`/v2/early` only).
    body_bytes: usize,
}

#[derive(Clone, Copy)]
struct Options {
    /// The upstream closes a connection after this long without a request,
    /// silently (no `Connection: close`), as keep-alive timeouts do.
    close_idle_after: Option<Duration>,
}

struct RawUpstream {
    addr: SocketAddr,
    conns: Arc<Mutex<Vec<Conn>>>,
}

impl RawUpstream {
    async fn start(opts: Options) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(Mutex::new(Vec::new()));
        let all = Arc::clone(&conns);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let id = {
                    let mut c = all.lock().unwrap();
                    c.push(Conn::default());
                    c.len() - 1
                };
                tokio::spawn(serve(stream, id, Arc::clone(&all), opts));
            }
        });
        Self { addr, conns }
    }

    fn conns(&self) -> Vec<Conn> {
        self.conns.lock().unwrap().clone()
    }

    fn requests(&self) -> usize {
        self.conns().iter().map(|c| c.targets.len()).sum()
    }

    /// Waits until `pred` holds for the connections, at most `within`.
    async fn wait_until(&self, within: Duration, pred: impl Fn(&[Conn]) -> bool) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if pred(&self.conns()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

const BODY: &str = r#"{"data":[{"id":"b1"}]}"#;

/// Answers by path: `/v2/nocontent` 204, `/v2/close` with `Connection:
/// close`, `/v2/hold` after 200 ms, `/v2/slow` a long body trickling out,
/// `/v2/early` 200 at once and only then reads the request body,
/// anything else 200 with a small JSON body (headers only for HEAD).
async fn serve(mut s: TcpStream, id: usize, conns: Arc<Mutex<Vec<Conn>>>, opts: Options) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // Requests here have no body: each ends at the blank line.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let read = match opts.close_idle_after {
                Some(d) if buf.is_empty() => {
                    match tokio::time::timeout(d, s.read(&mut chunk)).await {
                        Ok(r) => r,
                        Err(_) => return, // idle too long: close silently
                    }
                }
                _ => s.read(&mut chunk).await,
            };
            match read {
                Ok(0) | Err(_) => {
                    conns.lock().unwrap()[id].closed_by_gate = true;
                    return;
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end);
        let mut line = head.split(' ');
        let method = line.next().unwrap_or("").to_string();
        let target = line.next().unwrap_or("").to_string();
        conns.lock().unwrap()[id].targets.push(target.clone());
        let ok = |extra: &str| {
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}\r\n",
                BODY.len()
            )
        };
        let wrote = match target.as_str() {
            "/v2/nocontent" => s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await,
            "/v2/close" => {
                let _ = s
                    .write_all(format!("{}{BODY}", ok("connection: close\r\n")).as_bytes())
                    .await;
                return;
            }
            "/v2/slow" => {
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n")
                    .await;
                for _ in 0..1000 {
                    if s.write_all(&[b'x'; 1000]).await.is_err() {
                        conns.lock().unwrap()[id].closed_by_gate = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                return;
            }
            "/v2/early" => {
                let _ = s.write_all(format!("{}{BODY}", ok("")).as_bytes()).await;
                let declared = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                while buf.len() < declared {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                buf.drain(..declared);
                conns.lock().unwrap()[id].body_bytes += declared;
                Ok(())
            }
            "/v2/hold" => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                s.write_all(format!("{}{BODY}", ok("")).as_bytes()).await
            }
            _ if method == "HEAD" => s.write_all(ok("").as_bytes()).await,
            _ => s.write_all(format!("{}{BODY}", ok("")).as_bytes()).await,
        };
        if wrote.is_err() {
            return;
        }
    }
}

async fn gate(upstream: &RawUpstream, upstream_settings: &str) -> Gate {
    let toml = config(upstream.addr, PUBLIC_ROUTES).replace(
        "response_timeout = \"2s\"",
        &format!("response_timeout = \"2s\"\n{upstream_settings}"),
    );
    Gate::start(&toml).await
}

const DEFAULTS: Options = Options {
    close_idle_after: None,
};

#[tokio::test]
async fn sequential_requests_share_one_upstream_connection() {
    let up = RawUpstream::start(DEFAULTS).await;
    let gate = gate(&up, "").await;
    for i in 0..20 {
        let reply = get(&gate.url(&format!("/v2/bookings?n={i}"))).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, BODY);
    }
    let conns = up.conns();
    assert_eq!(conns.len(), 1, "{conns:?}");
    assert_eq!(conns[0].targets.len(), 20);
    assert_eq!(
        conns[0].targets[7], "/v2/bookings?n=7",
        "origin form, in order"
    );
}

#[tokio::test]
async fn concurrent_requests_reuse_the_connections_they_opened() {
    let up = RawUpstream::start(DEFAULTS).await;
    let gate = gate(&up, "").await;
    for _ in 0..3 {
        let replies = futures_util::future::join_all(
            (0..8).map(|_| async { get(&gate.url("/v2/hold")).await.status }),
        )
        .await;
        assert!(replies.iter().all(|s| *s == 200), "{replies:?}");
    }
    assert_eq!(up.requests(), 24);
    let opened = up.conns().len();
    assert!(opened <= 8, "opened {opened} connections for 8 at a time");
}

#[tokio::test]
async fn answers_without_a_body_keep_the_connection() {
    let up = RawUpstream::start(DEFAULTS).await;
    let gate = gate(&up, "").await;
    for _ in 0..5 {
        assert_eq!(get(&gate.url("/v2/nocontent")).await.status, 204);
        let head = common::send(
            http::Request::head(gate.url("/v2/bookings"))
                .body(Default::default())
                .unwrap(),
        )
        .await;
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
    }
    let conns = up.conns();
    assert_eq!(conns.len(), 1, "{conns:?}");
    assert_eq!(conns[0].targets.len(), 10);
}

#[tokio::test]
async fn an_answer_with_connection_close_is_not_reused() {
    let up = RawUpstream::start(DEFAULTS).await;
    let gate = gate(&up, "").await;
    for _ in 0..5 {
        let reply = get(&gate.url("/v2/close")).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, BODY);
    }
    let conns = up.conns();
    assert_eq!(conns.len(), 5);
    assert!(conns.iter().all(|c| c.targets.len() == 1), "{conns:?}");
}

#[tokio::test]
async fn idle_connections_close_after_pool_idle_timeout() {
    let up = RawUpstream::start(DEFAULTS).await;
    let gate = gate(&up, "pool_idle_timeout = \"300ms\"").await;
    let sent = Instant::now();
    assert_eq!(get(&gate.url("/v2/bookings")).await.status, 200);
    assert!(
        up.wait_until(Duration::from_secs(5), |c| c.len() == 1
            && c[0].closed_by_gate)
            .await,
        "the idle connection stayed open: {:?}",
        up.conns()
    );
    let after = sent.elapsed();
    assert!(
        after >= Duration::from_millis(250),
        "closed after {after:?}"
    );
    // The next request simply opens a new one.
    assert_eq!(get(&gate.url("/v2/bookings")).await.status, 200);
    assert_eq!(up.conns().len(), 2);
}

#[tokio::test]
async fn pool_max_idle_per_host_caps_the_connections_kept() {
    let up = RawUpstream::start(DEFAULTS).await;
    let gate = gate(&up, "pool_max_idle_per_host = 2").await;
    let replies = futures_util::future::join_all(
        (0..6).map(|_| async { get(&gate.url("/v2/hold")).await.status }),
    )
    .await;
    assert!(replies.iter().all(|s| *s == 200), "{replies:?}");
    assert_eq!(up.conns().len(), 6);
    assert!(
        up.wait_until(Duration::from_secs(5), |c| c
            .iter()
            .filter(|c| c.closed_by_gate)
            .count()
            == 4)
            .await,
        "expected 4 of 6 closed: {:?}",
        up.conns()
    );
    // The two kept serve the next requests.
    for _ in 0..4 {
        assert_eq!(get(&gate.url("/v2/bookings")).await.status, 200);
    }
    assert_eq!(up.conns().len(), 6);
}

#[tokio::test]
async fn a_connection_the_upstream_closed_while_idle_is_not_used() {
    let up = RawUpstream::start(Options {
        close_idle_after: Some(Duration::from_millis(100)),
    })
    .await;
    let gate = gate(&up, "").await;
    for _ in 0..3 {
        let reply = get(&gate.url("/v2/bookings")).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Each request went once, each on a fresh connection.
    let conns = up.conns();
    assert_eq!(conns.len(), 3, "{conns:?}");
    assert!(conns.iter().all(|c| c.targets.len() == 1), "{conns:?}");
}

#[tokio::test]
async fn a_body_the_client_abandoned_does_not_leave_its_connection_in_the_pool() {
    let up = RawUpstream::start(DEFAULTS).await;
    let gate = gate(&up, "").await;
    // Read the head of a long, slow body, then hang up.
    let mut s = TcpStream::connect(gate.addr).await.unwrap();
    s.write_all(b"GET /v2/slow HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    drop(s);
    assert!(
        up.wait_until(Duration::from_secs(5), |c| c[0].closed_by_gate
            || c[0].targets.len() > 1)
            .await
    );
    // The half-read connection is gone; a new request gets a whole answer.
    let reply = get(&gate.url("/v2/bookings")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, BODY);
    let conns = up.conns();
    assert_eq!(conns.len(), 2, "{conns:?}");
    assert_eq!(conns[0].targets, ["/v2/slow"]);
}

#[tokio::test]
async fn a_connection_answered_before_the_request_body_ended_returns_once_the_body_is_sent() {
    let up = RawUpstream::start(DEFAULTS).await;
    let gate = gate(&up, "").await;
    // Half the body, then the answer arrives, then the other half.
    let mut s = TcpStream::connect(gate.addr).await.unwrap();
    s.write_all(
        b"POST /v2/early HTTP/1.1\r\nHost: api.example.com\r\ncontent-length: 10\r\n\r\nhello",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains(BODY) {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("the early answer within 5 s")
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200"));
    s.write_all(b"world").await.unwrap();
    assert!(
        up.wait_until(Duration::from_secs(5), |c| c[0].body_bytes == 10)
            .await,
        "{:?}",
        up.conns()
    );
    // The connection went back to the pool once the body was through.
    for _ in 0..3 {
        assert_eq!(get(&gate.url("/v2/bookings")).await.status, 200);
    }
    let conns = up.conns();
    assert_eq!(conns.len(), 1, "{conns:?}");
    assert_eq!(conns[0].targets.len(), 4);
}
