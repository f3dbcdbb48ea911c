//! Test harness: a real scopegate on an ephemeral loopback port in front of a
//! real recording upstream, plus clients that speak HTTP (hyper) or raw bytes.
//!
//! Every test reads as: start upstream → start gate with a TOML config → send →
//! assert on what the upstream recorded.
#![allow(dead_code)]

pub mod process;
pub mod redis;

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    client::legacy::Client,
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query exactly as received.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub body_len: u64,
    pub trailers: Option<HeaderMap>,
}

impl Recorded {
    /// Every value of a header, in order.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }

    pub fn one(&self, name: &str) -> Option<String> {
        let all = self.all(name);
        assert!(
            all.len() <= 1,
            "header {name} received {} times: {all:?}",
            all.len()
        );
        all.into_iter().next()
    }

    /// Header names (lower case) starting with `prefix` after `_` → `-`.
    pub fn names_with_prefix(&self, prefix: &str) -> Vec<String> {
        self.headers
            .keys()
            .map(|k| k.as_str().to_string())
            .filter(|k| k.replace('_', "-").starts_with(prefix))
            .collect()
    }
}

/// How the upstream answers.
#[derive(Clone, Debug)]
pub enum Behavior {
    /// 200 with a small JSON body, after recording the request (body read fully).
    Ok,
    /// Counts body bytes without keeping them (for huge bodies).
    CountOnly,
    /// Waits this long before answering.
    Delay(Duration),
    /// Sends headers declaring a long body, some bytes, then resets the connection.
    ResetMidBody,
    /// The n-th request gets the n-th answer (the last one repeats).
    Canned(Arc<Vec<Canned>>),
}

/// A fixed answer of the upstream.
#[derive(Clone, Debug)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl Canned {
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.to_string().into(),
        }
    }
}

impl Behavior {
    pub fn canned(answers: Vec<Canned>) -> Self {
        Behavior::Canned(Arc::new(answers))
    }
}

pub struct Upstream {
    pub addr: SocketAddr,
    records: Arc<Mutex<Vec<Recorded>>>,
}

impl Upstream {
    pub async fn start(behavior: Behavior) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let records = Arc::new(Mutex::new(Vec::new()));
        let recs = Arc::clone(&records);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (recs, behavior) = (Arc::clone(&recs), behavior.clone());
                tokio::spawn(async move {
                    if let Behavior::ResetMidBody = behavior {
                        reset_mid_body(stream).await;
                        return;
                    }
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (recs, behavior) = (Arc::clone(&recs), behavior.clone());
                        async move { Ok::<_, Infallible>(record(req, recs, behavior).await) }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self { addr, records }
    }

    pub fn records(&self) -> Vec<Recorded> {
        self.records.lock().unwrap().clone()
    }

    /// The only request received; fails if there were none or several.
    pub fn single(&self) -> Recorded {
        let r = self.records();
        assert_eq!(r.len(), 1, "upstream received {} requests", r.len());
        r.into_iter().next().unwrap()
    }

    pub fn count(&self) -> usize {
        self.records.lock().unwrap().len()
    }

    /// Waits until a request has been recorded (the upstream records before it
    /// answers, so the request is then in flight inside scopegate). False if
    /// none arrived within `within`.
    pub async fn wait_for_request(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while self.count() == 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}

async fn record(
    req: Request<Incoming>,
    recs: Arc<Mutex<Vec<Recorded>>>,
    behavior: Behavior,
) -> Response<Full<Bytes>> {
    let (parts, mut body) = req.into_parts();
    let mut kept = Vec::new();
    let mut len = 0u64;
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        match frame.into_data() {
            Ok(d) => {
                len += d.len() as u64;
                if !matches!(behavior, Behavior::CountOnly) {
                    kept.extend_from_slice(&d);
                }
            }
            Err(f) => trailers = f.into_trailers().ok(),
        }
    }
    let nth = {
        let mut all = recs.lock().unwrap();
        all.push(Recorded {
            method: parts.method.to_string(),
            target: parts
                .uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            headers: parts.headers,
            body: kept.into(),
            body_len: len,
            trailers,
        });
        all.len() - 1
    };
    if let Behavior::Delay(d) = behavior {
        tokio::time::sleep(d).await;
    }
    if let Behavior::Canned(answers) = &behavior {
        let a = &answers[nth.min(answers.len() - 1)];
        let mut resp = Response::new(Full::new(a.body.clone()));
        *resp.status_mut() = StatusCode::from_u16(a.status).unwrap();
        for (k, v) in &a.headers {
            resp.headers_mut().append(*k, v.parse().unwrap());
        }
        return resp;
    }
    let mut resp = Response::new(Full::new(Bytes::from_static(br#"{"data":[{"id":"b1"}]}"#)));
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    // Hop-by-hop headers from the upstream must not reach the client.
    resp.headers_mut()
        .insert("x-upstream-private", "1".parse().unwrap());
    resp.headers_mut()
        .insert("connection", "x-upstream-private".parse().unwrap());
    resp
}

/// Reads the request head, then promises 1 MB and dies after a few bytes.
async fn reset_mid_body(mut stream: TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut seen = Vec::new();
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    let _ = stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\ncontent-type: text/plain\r\n\r\npartial-data")
        .await;
    let _ = stream.flush().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// A scopegate running in-process.
pub struct Gate {
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    running: Option<scopegate::Running>,
}

/// A minimal config with one upstream called `backend` and the given routes
/// (TOML `[[route]]` tables). `{upstream}` in `extra` is replaced too.
pub fn config(upstream: SocketAddr, extra: &str) -> String {
    format!(
        r#"
[listen]
address = "127.0.0.1:0"
drain_timeout = "5s"

[admin]
address = "127.0.0.1:0"

[[upstream]]
name = "backend"
url = "http://{upstream}"
connect_timeout = "1s"
response_timeout = "2s"

{}
"#,
        extra.replace("{upstream}", &upstream.to_string())
    )
}

/// Routes most tests use: a public catch-all under /v2 and a public /open.
pub const PUBLIC_ROUTES: &str = r#"
[[route]]
name = "v2"
path = "/v2/*"
auth = ["public"]
upstream = "backend"

[[route]]
name = "open"
path = "/open"
auth = ["public"]
upstream = "backend"
"#;

impl Gate {
    pub async fn start(toml: &str) -> Self {
        Self::start_with_clock(toml, scopegate::clock::Clock::system()).await
    }

    /// A gate whose credential checks read `clock` (tests move it forward).
    pub async fn start_with_clock(toml: &str, clock: scopegate::clock::Clock) -> Self {
        let config =
            scopegate::Config::from_toml(toml).unwrap_or_else(|e| panic!("bad test config:\n{e}"));
        let running = scopegate::start_with_clock(config, clock).await.unwrap();
        Self {
            addr: running.addr,
            admin: running.admin_addr,
            running: Some(running),
        }
    }

    /// A gate in front of `upstream` with [`PUBLIC_ROUTES`] plus `extra`.
    pub async fn public(upstream: &Upstream, extra: &str) -> Self {
        Self::start(&config(upstream.addr, &format!("{PUBLIC_ROUTES}\n{extra}"))).await
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    /// Reloads the configuration from `path` (see `Running::reload`).
    pub fn reload(&self, path: &std::path::Path) -> Result<(), scopegate::config::ConfigError> {
        self.running.as_ref().expect("running").reload(path)
    }

    pub async fn shutdown(mut self, deadline: Duration) {
        if let Some(r) = self.running.take() {
            r.shutdown(deadline).await;
        }
    }
}

/// A response read fully.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {:?}", self.body))
    }

    /// The `error.code` of a scopegate error body.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// Sends a request with hyper's client (HTTP/1.1) and reads the whole reply.
pub async fn send(req: Request<Full<Bytes>>) -> Reply {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .expect("reply within 10s")
        .expect("request succeeds at the HTTP level");
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub async fn get(url: &str) -> Reply {
    send(Request::get(url).body(Full::default()).unwrap()).await
}

/// Writes raw bytes, then reads until the server closes or `wait` passes
/// without new data. Returns everything read, lossily as text.
///
/// The first byte gets at least [`FIRST_BYTE_WAIT`]: on a machine busy with a
/// parallel build a refusal can take longer than `wait` to come, and a test
/// reading an empty answer would fail for the wrong reason.
pub async fn raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let wait = if out.is_empty() {
            wait.max(FIRST_BYTE_WAIT)
        } else {
            wait
        };
        match tokio::time::timeout(wait, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status codes of every response in a raw HTTP/1 byte stream, in order.
pub fn statuses(raw: &str) -> Vec<u16> {
    raw.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| raw.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

pub const RAW_WAIT: Duration = Duration::from_millis(500);

/// How long [`raw`] waits for the first byte of an answer.
pub const FIRST_BYTE_WAIT: Duration = Duration::from_secs(10);

/// A GET with exact bytes (no client-side normalization), read to the end.
pub async fn get_raw(gate: &Gate, target: &str, extra: &str) -> String {
    let req = format!(
        "GET {target} HTTP/1.1\r\nHost: api.example.com\r\n{extra}Connection: close\r\n\r\n"
    );
    raw(gate.addr, req.as_bytes(), RAW_WAIT).await
}

/// A raw response without the lines that differ per request (date, request id),
/// to compare refusals byte for byte.
pub fn normalized_401(out: &str) -> String {
    out.lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            !l.starts_with("date:") && !l.starts_with("x-request-id:")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Collects refusals and asserts each is a 401 byte-identical to the first
/// (date and request id aside): a uniform error tells no cause from another.
#[derive(Default)]
pub struct Uniform401(Option<String>);

impl Uniform401 {
    pub fn check(&mut self, what: &str, out: &str) {
        assert_eq!(statuses(out), [401], "{what}: {out}");
        let norm = normalized_401(out);
        match &self.0 {
            None => self.0 = Some(norm),
            Some(first) => assert_eq!(&norm, first, "401 differs for {what}"),
        }
    }
}

/// Unix seconds, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
