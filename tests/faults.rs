//! Upstream faults and process-level behaviour: dead, slow and misbehaving
//! upstreams, no retries of non-idempotent requests, error bodies that reveal
//! nothing internal, streaming of huge bodies in flat memory (the real binary),
//! and the SIGTERM drain.

mod common;

use std::{
    convert::Infallible,
    net::SocketAddr,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use common::{process::Proc, *};
use http::{header, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::{
    client::legacy::Client,
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

const MIB: u64 = 1024 * 1024;
/// The memory a scopegate process may reach while moving 100 MiB.
const RSS_CEILING: u64 = 64 * MIB;

/// A gate config in front of `upstream` with the given upstream timeouts,
/// [`PUBLIC_ROUTES`] and `extra`.
fn gate_toml(upstream: SocketAddr, connect: &str, response: &str, extra: &str) -> String {
    gate_toml_with_drain(upstream, connect, response, "10s", extra)
}

fn gate_toml_with_drain(
    upstream: SocketAddr,
    connect: &str,
    response: &str,
    drain: &str,
    extra: &str,
) -> String {
    format!(
        r#"
[listen]
address = "127.0.0.1:0"
drain_timeout = "{drain}"

[admin]
address = "127.0.0.1:0"

[[upstream]]
name = "backend"
url = "http://{upstream}"
connect_timeout = "{connect}"
response_timeout = "{response}"

{PUBLIC_ROUTES}
{extra}
"#
    )
}

/// A loopback port with nothing listening on it.
async fn dead_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}

/// An error reply must not name the upstream: no loopback address, no port.
fn assert_reveals_nothing(reply: &Reply, upstream: SocketAddr) {
    let body = String::from_utf8_lossy(&reply.body);
    let port = upstream.port().to_string();
    assert!(!body.contains("127.0.0.1"), "address in body: {body}");
    assert!(!body.contains(&port), "upstream port in body: {body}");
    for (name, value) in &reply.headers {
        let v = String::from_utf8_lossy(value.as_bytes());
        assert!(
            !v.contains("127.0.0.1") && !v.contains(&port),
            "{name}: {v}"
        );
    }
    // Only the fixed error shape.
    let json = reply.json();
    let error = json["error"].as_object().expect("an error object");
    assert_eq!(json.as_object().unwrap().len(), 1, "{json}");
    assert_eq!(error.len(), 2, "{json}");
}

/// A body of `left` zero bytes in 64 KiB frames, with an exact size hint.
struct Zeros {
    left: u64,
    chunk: Bytes,
}

impl Zeros {
    fn new(len: u64) -> Self {
        Self {
            left: len,
            chunk: Bytes::from(vec![0u8; 64 * 1024]),
        }
    }
}

impl Body for Zeros {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(self.chunk.len() as u64);
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n as usize)))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

/// An upstream answering every request with `len` zero bytes, streamed.
async fn big_response_upstream(len: u64) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = service_fn(move |_req| async move {
                    Ok::<_, Infallible>(Response::new(Zeros::new(len)))
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// An upstream that reads each request head, counts it, and closes the
/// connection without answering.
async fn closing_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&heads);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                // Counted before closing: whoever sees the close has been counted.
                counter.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            });
        }
    });
    (addr, heads)
}

#[tokio::test]
async fn a_dead_upstream_gets_a_502_well_within_the_connect_timeout() {
    let dead = dead_port().await;
    let gate = Gate::start(&gate_toml(dead, "10s", "10s", "")).await;
    let start = Instant::now();
    let reply = get(&gate.url("/v2/bookings")).await;
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.error_code(), "upstream_unavailable");
    assert_reveals_nothing(&reply, dead);
}

#[tokio::test]
async fn a_slow_upstream_gets_a_504_after_the_response_timeout() {
    let up = Upstream::start(Behavior::Delay(Duration::from_secs(10))).await;
    let gate = Gate::start(&gate_toml(up.addr, "1s", "1s", "")).await;
    let start = Instant::now();
    let reply = get(&gate.url("/v2/bookings")).await;
    let took = start.elapsed();
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(reply.error_code(), "upstream_timeout");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "took {took:?}"
    );
    assert_reveals_nothing(&reply, up.addr);
    // The request did reach the upstream: the timeout is about its answer.
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn error_bodies_never_name_the_upstream_address() {
    // Refused connection.
    let dead = dead_port().await;
    let gate = Gate::start(&gate_toml(dead, "1s", "1s", "")).await;
    let reply = get(&gate.url("/open")).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_reveals_nothing(&reply, dead);

    // No answer in time.
    let slow = Upstream::start(Behavior::Delay(Duration::from_secs(10))).await;
    let gate = Gate::start(&gate_toml(slow.addr, "1s", "1s", "")).await;
    let reply = get(&gate.url("/open")).await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_reveals_nothing(&reply, slow.addr);

    // Connection dropped without an answer.
    let (closing, _) = closing_upstream().await;
    let gate = Gate::start(&gate_toml(closing, "1s", "1s", "")).await;
    let reply = get(&gate.url("/open")).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_reveals_nothing(&reply, closing);
}

#[tokio::test]
async fn an_upstream_reset_mid_body_aborts_the_client_response() {
    let up = Upstream::start(Behavior::ResetMidBody).await;
    let gate = Gate::public(&up, "").await;
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let resp = tokio::time::timeout(
        Duration::from_secs(5),
        client.get(gate.url("/v2/bookings").parse().unwrap()),
    )
    .await
    .expect("head in time")
    .expect("head received");
    // The head was already on its way; what matters is that the body is not
    // passed off as complete.
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_LENGTH], "1000000");
    let body = tokio::time::timeout(Duration::from_secs(5), resp.into_body().collect())
        .await
        .expect("body ends in time");
    assert!(body.is_err(), "a truncated body was delivered as complete");
}

#[tokio::test]
async fn an_upstream_reset_mid_body_leaves_a_short_body_and_a_closed_connection_on_the_wire() {
    let up = Upstream::start(Behavior::ResetMidBody).await;
    let gate = Gate::public(&up, "").await;
    let mut s = TcpStream::connect(gate.addr).await.unwrap();
    s.write_all(b"GET /v2/bookings HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!("connection left open after the upstream reset"),
        }
    }
    let end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-length: 1000000"), "{head}");
    let body = &out[end..];
    assert!(body.len() < 1_000_000, "got a full body");
    assert!(
        body.starts_with(b"partial-data") || body.is_empty(),
        "{:?}",
        String::from_utf8_lossy(body)
    );
}

#[tokio::test]
async fn a_post_is_not_retried_when_the_upstream_drops_the_connection() {
    let (addr, heads) = closing_upstream().await;
    let gate = Gate::start(&gate_toml(addr, "1s", "5s", "")).await;
    let reply = send(
        Request::post(gate.url("/v2/bookings"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(br#"{"slot":"9:00"}"#)))
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.error_code(), "upstream_error");
    // Every attempt is counted before its connection is closed, and the gate
    // can only answer after the last attempt failed: the count is final.
    assert_eq!(
        heads.load(Ordering::SeqCst),
        1,
        "the POST was sent more than once"
    );
}

#[tokio::test]
async fn a_100_mib_request_body_streams_through_the_binary_with_flat_memory() {
    let up = Upstream::start(Behavior::CountOnly).await;
    let proc = Proc::start(&gate_toml(
        up.addr,
        "1s",
        "30s",
        "[limits]\nmax_body_bytes = \"200MiB\"",
    ))
    .await;
    let before = proc.peak_rss();
    let client: Client<_, Zeros> = Client::builder(TokioExecutor::new()).build_http();
    let req = Request::post(format!("http://{}/v2/upload", proc.addr))
        .body(Zeros::new(100 * MIB))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(30), client.request(req))
        .await
        .expect("upload finished in time")
        .expect("upload succeeds");
    assert_eq!(resp.status(), StatusCode::OK);
    resp.into_body().collect().await.unwrap();
    let rec = up.single();
    assert_eq!(rec.body_len, 100 * MIB);
    let peak = proc.peak_rss();
    assert!(
        peak < RSS_CEILING,
        "peak RSS {} MiB (before the upload: {} MiB)",
        peak / MIB,
        before / MIB
    );
}

#[tokio::test]
async fn a_100_mib_response_body_streams_through_the_binary_with_flat_memory() {
    let up = big_response_upstream(100 * MIB).await;
    let proc = Proc::start(&gate_toml(up, "1s", "30s", "")).await;
    let before = proc.peak_rss();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        client.get(format!("http://{}/v2/download", proc.addr).parse().unwrap()),
    )
    .await
    .expect("head in time")
    .expect("head received");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()[header::CONTENT_LENGTH],
        (100 * MIB).to_string()
    );
    let mut body = resp.into_body();
    let mut received = 0u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while let Some(frame) = tokio::time::timeout_at(deadline, body.frame())
        .await
        .expect("download in time")
    {
        if let Ok(data) = frame.expect("body intact").into_data() {
            received += data.len() as u64;
        }
    }
    assert_eq!(received, 100 * MIB);
    let peak = proc.peak_rss();
    assert!(
        peak < RSS_CEILING,
        "peak RSS {} MiB (before the download: {} MiB)",
        peak / MIB,
        before / MIB
    );
}

#[tokio::test]
async fn sigterm_drains_the_in_flight_request_refuses_new_connections_and_exits_zero() {
    let up = Upstream::start(Behavior::Delay(Duration::from_secs(2))).await;
    let mut proc = Proc::start(&gate_toml(up.addr, "1s", "10s", "")).await;
    assert_eq!(proc.readyz().await, Some(200));

    let url = format!("http://{}/open", proc.addr);
    let in_flight = tokio::spawn(async move { get(&url).await });
    // The upstream records a request before delaying its answer: once it is
    // recorded, the request is in flight inside scopegate.
    assert!(
        up.wait_for_request(Duration::from_secs(5)).await,
        "request never reached the upstream"
    );

    proc.signal("TERM");

    // Not ready while draining.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match proc.readyz().await {
            Some(503) => break,
            Some(200) => {}
            other => panic!("/readyz answered {other:?} while draining"),
        }
        assert!(Instant::now() < deadline, "/readyz never turned 503");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !in_flight.is_finished(),
        "the in-flight request ended before the drain was observed"
    );

    // The listener is closed: new connections are refused.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let last = match TcpStream::connect(proc.addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            // A connect racing the listener's close may fail otherwise; try again.
            Err(e) => e.to_string(),
            Ok(_) => "accepted".to_string(),
        };
        assert!(
            Instant::now() < deadline,
            "new connections not refused while draining (last attempt: {last})"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The in-flight request completes normally.
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(&reply.body[..], br#"{"data":[{"id":"b1"}]}"#);
    assert_eq!(up.count(), 1);

    // And the process exits 0 well within the 10s drain deadline.
    let status = proc
        .wait_exit(Duration::from_secs(8))
        .await
        .expect("exited after draining");
    assert!(status.success(), "exit status {status:?}");
    let log = proc.stderr().join("\n");
    assert!(log.contains("shutting down"), "{log}");
}

#[tokio::test]
async fn an_upstream_reset_mid_body_aborts_an_h2_client_response_too() {
    let up = Upstream::start(Behavior::ResetMidBody).await;
    let gate = Gate::public(&up, "").await;
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let resp = tokio::time::timeout(
        Duration::from_secs(5),
        client.get(gate.url("/v2/bookings").parse().unwrap()),
    )
    .await
    .expect("head in time")
    .expect("head received");
    assert_eq!(resp.status(), StatusCode::OK);
    let body = tokio::time::timeout(Duration::from_secs(5), resp.into_body().collect())
        .await
        .expect("body ends in time");
    assert!(
        body.is_err(),
        "a truncated h2 body was delivered as complete"
    );
}

#[tokio::test]
async fn the_request_timeout_caps_the_wait_for_the_upstream() {
    let up = Upstream::start(Behavior::Delay(Duration::from_secs(10))).await;
    let gate = Gate::start(&gate_toml(
        up.addr,
        "1s",
        "10s",
        "[limits]\nrequest_timeout = \"1s\"",
    ))
    .await;
    let start = Instant::now();
    let reply = get(&gate.url("/v2/bookings")).await;
    let took = start.elapsed();
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(reply.error_code(), "request_timeout");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "took {took:?}"
    );
    assert_reveals_nothing(&reply, up.addr);
}

#[tokio::test]
async fn sigterm_with_only_idle_connections_exits_promptly() {
    let up = Upstream::start(Behavior::Ok).await;
    // A 10s drain deadline that idle connections must not use up.
    let mut proc = Proc::start(&gate_toml(up.addr, "1s", "5s", "")).await;

    // An idle HTTP/1.1 keep-alive connection, after one request.
    let mut h1 = TcpStream::connect(proc.addr).await.unwrap();
    h1.write_all(b"GET /open HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let mut head = Vec::new();
    // The upstream's small JSON body ends the response.
    while !head.ends_with(b"}]}") {
        let n = h1.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed early");
        head.extend_from_slice(&buf[..n]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    // An idle h2 connection, after one request (its driver answers pings).
    let h2: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let resp = h2
        .get(format!("http://{}/open", proc.addr).parse().unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.into_body().collect().await.unwrap();
    // A connection that has not sent anything yet.
    let _silent = TcpStream::connect(proc.addr).await.unwrap();
    proc.wait_healthy(Duration::from_secs(5)).await;

    let start = Instant::now();
    proc.signal("TERM");
    let status = proc
        .wait_exit(Duration::from_secs(8))
        .await
        .expect("exited");
    assert!(status.success(), "exit status {status:?}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "idle connections held the drain for {:?}",
        start.elapsed()
    );
    // The keep-alive connection was closed, not left dangling.
    let r = tokio::time::timeout(Duration::from_secs(2), h1.read(&mut buf))
        .await
        .expect("closed");
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    assert_eq!(up.count(), 2);
}

#[tokio::test]
async fn a_request_outliving_the_drain_deadline_is_cut_and_the_process_still_exits() {
    let up = Upstream::start(Behavior::Delay(Duration::from_secs(30))).await;
    let toml = gate_toml_with_drain(up.addr, "1s", "60s", "1s", "");
    let mut proc = Proc::start(&toml).await;
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri = format!("http://{}/open", proc.addr).parse().unwrap();
    let in_flight = tokio::spawn(async move { client.get(uri).await });
    assert!(
        up.wait_for_request(Duration::from_secs(5)).await,
        "request never reached the upstream"
    );

    let start = Instant::now();
    proc.signal("TERM");
    let status = proc
        .wait_exit(Duration::from_secs(8))
        .await
        .expect("exited after the drain deadline");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "took {took:?}"
    );
    assert!(status.success(), "exit status {status:?}");
    // The cut request did not turn into a success.
    let outcome = tokio::time::timeout(Duration::from_secs(5), in_flight)
        .await
        .expect("client done")
        .unwrap();
    assert!(
        outcome
            .as_ref()
            .map_or(true, |r| r.status() != StatusCode::OK),
        "{outcome:?}"
    );
}
