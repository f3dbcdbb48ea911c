//! Limits on the wire: every oversized or slow request is answered (or cut)
//! by scopegate itself, promptly, and the upstream never sees it.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Small limits so that every one of them is easy to cross. hyper's own
/// header buffer is then max(2KiB + 1KiB + 1KiB, 8KiB) = 8KiB.
const LIMITS: &str = r#"
[limits]
max_header_bytes = "2KiB"
max_headers = 20
max_uri_length = "1KiB"
max_body_bytes = "1KiB"
"#;

/// What a raw client saw on one connection.
struct Seen {
    text: String,
    /// The server closed (EOF or reset) rather than going quiet.
    closed: bool,
    /// From the end of our write to the close or the last byte.
    elapsed: Duration,
}

impl Seen {
    fn statuses(&self) -> Vec<u16> {
        statuses(&self.text)
    }

    /// The JSON body of the first response.
    fn json(&self) -> serde_json::Value {
        let body = self.text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        serde_json::from_str(body).unwrap_or_else(|_| panic!("not a JSON body: {}", self.text))
    }

    fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// Writes `bytes` (a write error is fine: the server may have closed already),
/// keeps the write side open, and reads until the server closes or `wait`
/// passes without data.
async fn exchange(addr: std::net::SocketAddr, bytes: &[u8], wait: Duration) -> Seen {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(bytes).await;
    let start = Instant::now();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let closed = loop {
        match tokio::time::timeout(wait, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    Seen {
        text: String::from_utf8_lossy(&out).into_owned(),
        closed,
        elapsed: start.elapsed(),
    }
}

/// Reads exactly one response with a Content-Length from a keep-alive connection.
async fn read_response(s: &mut TcpStream) -> (u16, String) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed before a response head");
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("no content-length: {head}"));
    while data.len() < head_end + len {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed mid-body");
        data.extend_from_slice(&buf[..n]);
    }
    assert_eq!(data.len(), head_end + len, "bytes beyond one response");
    (head[9..12].parse().unwrap(), head)
}

/// `n` header lines of `len` value bytes each.
fn filler_headers(n: usize, len: usize) -> String {
    (0..n)
        .map(|i| format!("X-Filler-{i}: {}\r\n", "a".repeat(len)))
        .collect()
}

const WAIT: Duration = Duration::from_secs(5);

/// `config()` with a longer upstream response timeout (the harness uses 2s).
fn with_response_timeout(toml: String, timeout: &str) -> String {
    let from = "response_timeout = \"2s\"";
    assert!(toml.contains(from), "the harness config changed:\n{toml}");
    toml.replace(from, &format!("response_timeout = \"{timeout}\""))
}

#[tokio::test]
async fn requests_within_every_limit_are_forwarded() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, LIMITS).await;
    // ~1.5 KiB of headers in 15 fields, a ~900 byte target, a 1 KiB body.
    let req = format!(
        "POST /v2/{} HTTP/1.1\r\nHost: x\r\nContent-Length: 1024\r\n{}Connection: close\r\n\r\n{}",
        "p".repeat(900),
        filler_headers(12, 100),
        "b".repeat(1024)
    );
    let seen = exchange(gate.addr, req.as_bytes(), WAIT).await;
    assert_eq!(seen.statuses(), [200], "{}", seen.text);
    let rec = up.single();
    assert_eq!(rec.body_len, 1024);
    assert_eq!(rec.all("x-filler-11").len(), 1);
}

#[tokio::test]
async fn headers_over_the_configured_limit_get_a_json_431_and_upstream_sees_nothing() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, LIMITS).await;
    // 4 KiB of headers: over max_header_bytes, under hyper's 8 KiB buffer,
    // so scopegate's own check answers.
    let req = format!(
        "GET /v2/x HTTP/1.1\r\nHost: x\r\n{}\r\n",
        filler_headers(4, 1000)
    );
    let seen = exchange(gate.addr, req.as_bytes(), WAIT).await;
    assert_eq!(seen.statuses(), [431], "{}", seen.text);
    assert_eq!(seen.error_code(), "headers_too_large");
    assert!(
        seen.closed,
        "the connection of an oversized request must close"
    );
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn headers_beyond_the_parser_buffer_get_431_and_upstream_sees_nothing() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, LIMITS).await;
    // 64 KiB of headers: hyper's buffer cap answers before scopegate sees a request.
    let req = format!(
        "GET /v2/x HTTP/1.1\r\nHost: x\r\n{}\r\n",
        filler_headers(16, 4000)
    );
    let seen = exchange(gate.addr, req.as_bytes(), WAIT).await;
    assert_eq!(seen.statuses(), [431], "{}", seen.text);
    assert!(seen.closed);
    assert!(
        seen.elapsed < Duration::from_secs(3),
        "took {:?}",
        seen.elapsed
    );
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn too_many_header_fields_get_431_and_upstream_sees_nothing() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, LIMITS).await;
    // 30 tiny fields (~300 bytes): only the count is over the limit of 20.
    let req = format!(
        "GET /v2/x HTTP/1.1\r\nHost: x\r\n{}\r\n",
        filler_headers(30, 1)
    );
    let seen = exchange(gate.addr, req.as_bytes(), WAIT).await;
    assert_eq!(seen.statuses(), [431], "{}", seen.text);
    // scopegate's own answer, not the parser's bare one: hyper's count cap
    // is 16 over the limit (30 fields against 20).
    assert_eq!(seen.error_code(), "headers_too_large");
    assert!(seen.closed);
    // Far past it (100 fields), the parser's cap answers, bare but closed.
    let req = format!(
        "GET /v2/x HTTP/1.1\r\nHost: x\r\n{}\r\n",
        filler_headers(100, 1)
    );
    let seen = exchange(gate.addr, req.as_bytes(), WAIT).await;
    assert_eq!(seen.statuses(), [431], "{}", seen.text);
    assert!(seen.closed);
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn a_uri_over_the_configured_length_gets_a_json_414_and_upstream_sees_nothing() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, LIMITS).await;
    let req = format!("GET /v2/{} HTTP/1.1\r\nHost: x\r\n\r\n", "u".repeat(2000));
    let seen = exchange(gate.addr, req.as_bytes(), WAIT).await;
    assert_eq!(seen.statuses(), [414], "{}", seen.text);
    assert_eq!(seen.error_code(), "uri_too_long");
    assert!(seen.closed);
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn a_long_query_string_counts_toward_the_uri_limit() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, LIMITS).await;
    let req = format!(
        "GET /v2/x?q={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "q".repeat(2000)
    );
    let seen = exchange(gate.addr, req.as_bytes(), WAIT).await;
    assert_eq!(seen.statuses(), [414], "{}", seen.text);
    assert_eq!(seen.error_code(), "uri_too_long");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn a_declared_content_length_over_the_limit_gets_413_before_the_body_is_sent() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, LIMITS).await;
    // 10 MB promised, 3 bytes sent: an answer can only come from the head.
    let seen = exchange(
        gate.addr,
        b"POST /v2/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\nabc",
        WAIT,
    )
    .await;
    assert_eq!(seen.statuses(), [413], "{}", seen.text);
    assert_eq!(seen.error_code(), "body_too_large");
    assert!(seen.closed, "scopegate waited for a body it will not read");
    assert!(
        seen.elapsed < Duration::from_secs(3),
        "took {:?}",
        seen.elapsed
    );
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn a_declared_oversized_body_with_expect_continue_gets_413_and_no_100_continue() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, LIMITS).await;
    let seen = exchange(
        gate.addr,
        b"POST /v2/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\nExpect: 100-continue\r\n\r\n",
        WAIT,
    )
    .await;
    assert_eq!(seen.statuses(), [413], "{}", seen.text);
    assert!(seen.closed);
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn a_chunked_body_growing_past_the_limit_is_refused_and_never_reaches_the_upstream_whole() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, LIMITS).await;
    let chunk = format!("200\r\n{}\r\n", "c".repeat(0x200));
    let req = format!(
        "POST /v2/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{}0\r\n\r\n",
        chunk.repeat(8)
    );
    let seen = exchange(gate.addr, req.as_bytes(), WAIT).await;
    // A 413, or at worst an aborted exchange: never a success.
    let statuses = seen.statuses();
    assert!(
        statuses == [413] || (statuses.is_empty() && seen.closed),
        "{}",
        seen.text
    );
    if statuses == [413] {
        assert_eq!(seen.error_code(), "body_too_large");
    }
    // The upstream may have seen the start of the body (streaming), never all of it.
    // Give an aborted upstream exchange a moment to be recorded before judging it.
    up.wait_for_request(Duration::from_secs(1)).await;
    for rec in up.records() {
        assert!(
            rec.body_len <= 1024,
            "upstream received {} body bytes",
            rec.body_len
        );
    }
}

#[tokio::test]
async fn a_client_stalling_mid_head_is_disconnected_by_the_header_read_timeout() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, "[limits]\nheader_read_timeout = \"1s\"").await;
    let seen = exchange(
        gate.addr,
        b"GET /v2/x HTTP/1.1\r\nHost: x\r\n",
        Duration::from_secs(10),
    )
    .await;
    assert!(seen.closed, "still open after {:?}", seen.elapsed);
    assert!(
        seen.elapsed < Duration::from_secs(5),
        "took {:?}",
        seen.elapsed
    );
    assert!(
        seen.elapsed >= Duration::from_millis(800),
        "closed early: {:?}",
        seen.elapsed
    );
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_an_open_one_closes() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, "[limits]\nmax_connections = 2").await;
    const REQ: &[u8] = b"GET /open HTTP/1.1\r\nHost: x\r\n\r\n";

    // Two keep-alive connections, each proven served, then left open and idle.
    let mut first = TcpStream::connect(gate.addr).await.unwrap();
    let mut second = TcpStream::connect(gate.addr).await.unwrap();
    for s in [&mut first, &mut second] {
        s.write_all(REQ).await.unwrap();
        assert_eq!(read_response(s).await.0, 200);
    }

    // A third connects (the kernel backlog takes it) but is not served.
    let mut third = TcpStream::connect(gate.addr).await.unwrap();
    third.write_all(REQ).await.unwrap();
    let mut buf = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "third connection answered while the cap was full: {early:?}"
    );
    assert_eq!(up.count(), 2);

    // One closes: the third is accepted and answered.
    drop(first);
    let (status, _) = tokio::time::timeout(WAIT, read_response(&mut third))
        .await
        .expect("third connection answered after one closed");
    assert_eq!(status, 200);
    assert_eq!(up.count(), 3);

    // The other open connection still works.
    second.write_all(REQ).await.unwrap();
    assert_eq!(read_response(&mut second).await.0, 200);
}

/// The admin listener serves a fixed number of connections at once: a flood
/// of them waits in the backlog, the public listener goes on serving, and
/// a waiting probe is answered as soon as one closes.
#[tokio::test]
async fn admin_connections_beyond_its_cap_wait_and_the_public_side_is_unaffected() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, "").await;
    let admin = gate.admin.unwrap();
    const PROBE: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

    let mut held = Vec::new();
    for _ in 0..scopegate::server::ADMIN_MAX_CONNECTIONS {
        let mut s = TcpStream::connect(admin).await.unwrap();
        s.write_all(PROBE).await.unwrap();
        assert_eq!(read_response(&mut s).await.0, 200);
        held.push(s);
    }
    let mut waiting = TcpStream::connect(admin).await.unwrap();
    waiting.write_all(PROBE).await.unwrap();
    let mut buf = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(500), waiting.read(&mut buf)).await;
    assert!(early.is_err(), "answered beyond the cap: {early:?}");
    assert_eq!(get(&gate.url("/open")).await.status, 200);

    drop(held.pop());
    let (status, _) = tokio::time::timeout(WAIT, read_response(&mut waiting))
        .await
        .expect("answered once a connection closed");
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_by_the_idle_timeout() {
    let up = Upstream::start(Behavior::Ok).await;
    // A long header-read timeout, so only the idle timeout can close the connection.
    let gate = Gate::public(
        &up,
        "[limits]\nidle_timeout = \"1s\"\nheader_read_timeout = \"30s\"",
    )
    .await;
    let mut s = TcpStream::connect(gate.addr).await.unwrap();
    s.write_all(b"GET /open HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (status, head) = read_response(&mut s).await;
    assert_eq!(status, 200);
    assert!(
        !head.contains("connection: close"),
        "not a keep-alive response: {head}"
    );

    let start = Instant::now();
    let mut buf = [0u8; 64];
    let r = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("idle connection closed by the server");
    assert!(matches!(r, Ok(0) | Err(_)), "unexpected bytes: {r:?}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn a_request_in_flight_is_not_cut_by_the_idle_timeout() {
    let up = Upstream::start(Behavior::Delay(Duration::from_millis(2500))).await;
    let toml = with_response_timeout(config(up.addr, PUBLIC_ROUTES), "10s");
    let gate = Gate::start(&format!("{toml}\n[limits]\nidle_timeout = \"1s\"")).await;
    let seen = exchange(
        gate.addr,
        b"GET /open HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(seen.statuses(), [200], "{}", seen.text);
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn h2c_prior_knowledge_is_proxied_with_the_scope_route_header() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, "").await;
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let req = Request::get(gate.url("/v2/bookings?page=2"))
        .header("x-scope-app", "evil")
        .body(Full::default())
        .unwrap();
    let resp = tokio::time::timeout(WAIT, client.request(req))
        .await
        .expect("h2c answer in time")
        .expect("h2c request succeeds");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), Version::HTTP_2);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], br#"{"data":[{"id":"b1"}]}"#);
    let rec = up.single();
    assert_eq!(rec.method, "GET");
    assert_eq!(rec.target, "/v2/bookings?page=2");
    assert_eq!(rec.names_with_prefix("x-scope-"), ["x-scope-route"]);
    assert_eq!(rec.all("x-scope-route"), ["v2"]);
}

#[tokio::test]
async fn a_keep_alive_wait_is_bounded_by_the_header_read_timeout() {
    let up = Upstream::start(Behavior::Ok).await;
    // A long idle timeout, so only the header-read timeout can close the connection.
    let gate = Gate::public(
        &up,
        "[limits]\nheader_read_timeout = \"1s\"\nidle_timeout = \"60s\"",
    )
    .await;
    let mut s = TcpStream::connect(gate.addr).await.unwrap();
    s.write_all(b"GET /open HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut s).await.0, 200);
    let start = Instant::now();
    let mut buf = [0u8; 64];
    let r = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("keep-alive connection closed by the server");
    assert!(matches!(r, Ok(0) | Err(_)), "unexpected bytes: {r:?}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
}

/// Opens a connection, sends `bytes`, then stalls: the server must close it
/// within a few seconds under `limits` (a one-second timeout).
async fn assert_stalled_connection_closed(limits: &str, bytes: &[u8]) {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, limits).await;
    let seen = exchange(gate.addr, bytes, Duration::from_secs(10)).await;
    assert!(seen.closed, "still open after {:?}", seen.elapsed);
    assert!(
        seen.elapsed < Duration::from_secs(5),
        "took {:?}",
        seen.elapsed
    );
}

#[tokio::test]
async fn a_silent_connection_is_closed_by_the_idle_timeout() {
    assert_stalled_connection_closed(
        "[limits]\nidle_timeout = \"1s\"\nheader_read_timeout = \"30s\"",
        b"",
    )
    .await;
}

/// A long idle timeout, so only the header-read timeout can close these.
#[tokio::test]
async fn a_silent_connection_is_closed_by_the_header_read_timeout() {
    assert_stalled_connection_closed(
        "[limits]\nheader_read_timeout = \"1s\"\nidle_timeout = \"60s\"",
        b"",
    )
    .await;
}

#[tokio::test]
async fn a_stalled_partial_h2_preface_is_closed_by_the_header_read_timeout() {
    assert_stalled_connection_closed(
        "[limits]\nheader_read_timeout = \"1s\"\nidle_timeout = \"60s\"",
        b"PRI * HTTP/2.0\r\n",
    )
    .await;
}

/// An HTTP/2 (prior knowledge) connection whose driver task ends when the
/// server closes the connection.
async fn h2_connection(
    addr: std::net::SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    tokio::task::JoinHandle<()>,
) {
    let io = hyper_util::rt::TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    (
        send,
        tokio::spawn(async move {
            let _ = conn.await;
        }),
    )
}

#[tokio::test]
async fn an_idle_h2_connection_is_closed_by_the_idle_timeout() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, "[limits]\nidle_timeout = \"1s\"").await;
    let (mut send, conn) = h2_connection(gate.addr).await;
    let req = Request::get(gate.url("/open"))
        .body(Full::default())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.into_body().collect().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("idle h2 connection closed by the server")
        .unwrap();
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn an_h2_connection_whose_request_was_cancelled_is_still_closed_by_the_idle_timeout() {
    let up = Upstream::start(Behavior::Delay(Duration::from_secs(30))).await;
    let toml = with_response_timeout(config(up.addr, PUBLIC_ROUTES), "20s");
    let gate = Gate::start(&format!("{toml}\n[limits]\nidle_timeout = \"1s\"")).await;
    let (mut send, conn) = h2_connection(gate.addr).await;
    let req = Request::get(gate.url("/open"))
        .body(Full::default())
        .unwrap();
    let pending = tokio::spawn(send.send_request(req));
    // Once the upstream holds the request, cancel it (RST_STREAM).
    assert!(
        up.wait_for_request(Duration::from_secs(5)).await,
        "request never reached the upstream"
    );
    pending.abort();
    let _ = pending.await;
    // Nothing is in flight any more: the connection is idle and must be closed.
    tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("h2 connection with no request in flight closed by the idle timeout")
        .unwrap();
}

/// Load shedding: past `limits.max_in_flight` requests in progress, a request
/// is refused at once with 503 and `Retry-After` instead of queueing.
#[tokio::test]
async fn past_the_in_flight_cap_requests_are_shed_at_once() {
    let up = Upstream::start(Behavior::Delay(std::time::Duration::from_millis(600))).await;
    let gate = Gate::start(&config(
        up.addr,
        &format!("{PUBLIC_ROUTES}\n[limits]\nmax_in_flight = 2\n"),
    ))
    .await;
    let url = gate.url("/v2/slow");
    let started = std::time::Instant::now();
    let all: Vec<_> = (0..5)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { get(&url).await })
        })
        .collect();
    let mut ok = 0;
    let mut shed = Vec::new();
    for h in all {
        let r = h.await.unwrap();
        match r.status.as_u16() {
            200 => ok += 1,
            503 => shed.push(r),
            other => panic!("{other}"),
        }
    }
    assert_eq!(ok, 2);
    assert_eq!(shed.len(), 3);
    for r in &shed {
        assert_eq!(r.error_code(), "overloaded");
        assert_eq!(r.headers["retry-after"], "1");
    }
    assert_eq!(up.count(), 2);
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    // Capacity comes back once those finish.
    assert_eq!(get(&url).await.status, 200);
}
