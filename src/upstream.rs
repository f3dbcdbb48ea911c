//! Upstreams: a pool of HTTP/1.1 connections per backend (plain, or TLS for
//! an `https` URL), the credential scopegate injects toward it, and the
//! mapping of transport failures to statuses.
//!
//! The pool is scopegate's own, on hyper's connection-level client: a request
//! takes an idle connection (the most recently used), or opens one, and its
//! response body puts the connection back when it ends. hyper-util's pooled
//! client did the same with a pool key per request, a checkout future raced
//! against a connect future, and a task spawned per response to wait for the
//! connection to become idle again; that was a sizeable part of the
//! per-request cost (see BENCHMARKS.md).
//!
//! `connect_timeout` bounds the TCP connect and the TLS handshake together.
//! A failed handshake (an untrusted certificate, a refused client
//! certificate) is a connect failure: 502 `upstream_unavailable`.
//!
//! A request reaches the backend at most once. The only retry is of a request
//! that never left: a pooled connection the backend had closed hands the
//! request back unsent, and it goes on the next idle connection or a new one.

use std::{
    error::Error as StdError,
    io,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{uri::Authority, HeaderName, HeaderValue, Request, Response, Uri};
use http_body::{Body as _, Frame, SizeHint};
use hyper::{body::Incoming, client::conn::http1};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::{client::legacy::connect::HttpConnector, rt::TokioIo};
use tokio::time::Instant;

use crate::{
    body::{RequestBody, RequestBodyError},
    error::GateError,
};

/// One configured backend.
pub struct Upstream {
    pub name: Arc<str>,
    /// `https` (TLS) or `http`.
    https: bool,
    authority: Authority,
    host: HeaderValue,
    /// Path prefix of the base URL, without trailing `/` (may be empty).
    base_path: Box<str>,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    credential: Option<(HeaderName, HeaderValue)>,
    connector: HttpsConnector<HttpConnector>,
    /// `scheme://authority/`, what the connector is asked for.
    origin: Uri,
    pool: Arc<Pool>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("https", &self.https)
            .field("authority", &self.authority)
            .field("base_path", &self.base_path)
            .field("credential", &self.credential.as_ref().map(|(n, _)| n))
            .finish_non_exhaustive()
    }
}

impl std::fmt::Display for Upstream {
    /// Name and target, never the credential's value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<12} {}://{}{}",
            self.name,
            self.scheme(),
            self.authority,
            self.base_path
        )?;
        if let Some((name, _)) = &self.credential {
            write!(f, " (adds {name})")?;
        }
        write!(
            f,
            " connect {:?}, response {:?}",
            self.connect_timeout, self.response_timeout
        )
    }
}

pub struct UpstreamSettings {
    pub name: String,
    /// The TLS client configuration of an `https` upstream; `None`: `http`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub authority: Authority,
    pub base_path: String,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle_per_host: usize,
    /// Marked sensitive by the caller.
    pub credential: Option<(HeaderName, HeaderValue)>,
}

impl Upstream {
    pub fn new(s: UpstreamSettings) -> Self {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(s.connect_timeout));
        http.set_nodelay(true);
        // The TLS connector checks the scheme: `https` only when TLS is configured.
        http.enforce_http(false);
        let https = s.tls.is_some();
        let resolver = Arc::new(hyper_rustls::DefaultServerNameResolver::default());
        // `https` only for an `https` upstream; else plain `http` only (the
        // unused TLS configuration trusts nothing).
        let connector = match s.tls {
            Some(tls) => HttpsConnector::new(http, tls, true, resolver),
            None => HttpsConnector::new(http, crate::tls::unused_client_config(), false, resolver),
        };
        let host = HeaderValue::from_str(s.authority.as_str())
            .expect("an Authority is always a valid header value");
        let origin = Uri::builder()
            .scheme(if https { "https" } else { "http" })
            .authority(s.authority.clone())
            .path_and_query("/")
            .build()
            .expect("scheme, authority and / make a URI");
        Self {
            name: s.name.into(),
            https,
            authority: s.authority,
            host,
            base_path: s.base_path.into(),
            connect_timeout: s.connect_timeout,
            response_timeout: s.response_timeout,
            credential: s.credential,
            connector,
            origin,
            pool: Arc::new(Pool {
                idle: Mutex::new(Vec::new()),
                max_idle: s.pool_max_idle_per_host,
                idle_timeout: s.pool_idle_timeout,
                epoch: Instant::now(),
            }),
        }
    }

    /// The upstream target: base path + route prefix + normalized path + query.
    pub fn target(&self, prefix: &str, path: &str, query: Option<&str>) -> Result<Uri, GateError> {
        let mut pq = String::with_capacity(
            self.base_path.len() + prefix.len() + path.len() + 1 + query.map_or(0, str::len),
        );
        pq.push_str(&self.base_path);
        pq.push_str(prefix);
        pq.push_str(path);
        if let Some(q) = query {
            pq.push('?');
            pq.push_str(q);
        }
        Uri::builder()
            .scheme(self.scheme())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|_| GateError::BadPath(crate::path::PathError::BadEscape))
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        if self.https {
            "https"
        } else {
            "http"
        }
    }

    pub fn host_header(&self) -> &HeaderValue {
        &self.host
    }

    /// The credential to add toward this upstream, if one is configured.
    pub fn credential(&self) -> Option<&(HeaderName, HeaderValue)> {
        self.credential.as_ref()
    }

    /// Sends the request and waits for the response head, at most until
    /// `deadline`. The request line is sent in origin form (`/path?query`),
    /// whatever form `req`'s URI has.
    pub async fn send(
        &self,
        mut req: Request<RequestBody>,
        deadline: Instant,
    ) -> Result<Response<UpstreamBody>, GateError> {
        if req.uri().scheme().is_some() {
            let pq = req.uri().path_and_query().cloned();
            *req.uri_mut() = pq.map_or_else(|| Uri::from_static("/"), Uri::from);
        }
        match tokio::time::timeout_at(deadline, self.exchange(req)).await {
            Err(_) => Err(GateError::UpstreamTimeout),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => {
                if let Some(tls) = tls_error(e.source_error()) {
                    tracing::warn!(upstream = %self.name, error = %tls, "TLS handshake with the upstream failed");
                }
                Err(classify(&e))
            }
        }
    }

    /// One request on a pooled connection, or on a new one when none is idle
    /// (or every idle one turns out to be closed before the request left).
    async fn exchange(
        &self,
        mut req: Request<RequestBody>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        loop {
            let (mut lease, pooled) = match self.pool.checkout() {
                Some(lease) => (lease, true),
                None => (self.connect().await?, false),
            };
            match lease.sender.try_send_request(req).await {
                Ok(resp) => {
                    return Ok(resp.map(|body| UpstreamBody {
                        inner: body,
                        lease: Some(lease),
                    }))
                }
                Err(mut e) => match e.take_message() {
                    // Never written: the connection had closed while idle.
                    Some(unsent) if pooled => req = unsent,
                    _ => return Err(SendError::Exchange(e.into_error())),
                },
            }
        }
    }

    /// A new connection: TCP (and TLS), within `connect_timeout`, then the
    /// HTTP/1.1 handshake. Its task ends when the connection closes, when the
    /// pool drops it, or when it has been idle for `pool_idle_timeout`.
    async fn connect(&self) -> Result<Lease, SendError> {
        let mut connector = self.connector.clone();
        let connecting = async {
            std::future::poll_fn(|cx| tower_service::Service::poll_ready(&mut connector, cx))
                .await?;
            tower_service::Service::call(&mut connector, self.origin.clone()).await
        };
        let io: MaybeHttpsStream<TokioIo<tokio::net::TcpStream>> =
            match tokio::time::timeout(self.connect_timeout, connecting).await {
                Ok(Ok(io)) => io,
                Ok(Err(e)) => return Err(SendError::Connect(e)),
                Err(_) => return Err(SendError::ConnectTimeout),
            };
        let (sender, conn) = http1::Builder::new()
            // Head and body copied into one buffer and written with one
            // write: cheaper than queueing them for writev at the sizes
            // of booking API messages (see BENCHMARKS.md, sixth pass).
            .writev(false)
            .handshake(io)
            .await
            .map_err(|e| SendError::Connect(e.into()))?;
        let idle = Arc::new(AtomicU64::new(LEASED));
        let task = tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        // The idle timer lives in a task of its own, so the connection's
        // task does not poll it on every wake-up (twice per request).
        tokio::spawn(
            self.pool
                .close_when_idle(Arc::clone(&idle), task.abort_handle()),
        );
        Ok(Lease {
            sender,
            idle,
            pool: Arc::clone(&self.pool),
        })
    }
}

/// `idle` value of a connection in use.
const LEASED: u64 = u64::MAX;

/// The idle connections of one upstream.
struct Pool {
    /// Most recently returned last.
    idle: Mutex<Vec<Lease>>,
    max_idle: usize,
    idle_timeout: Duration,
    /// Origin of the milliseconds in each connection's `idle` mark.
    epoch: Instant,
}

impl Pool {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The most recently used connection that can take a request now.
    /// Closed ones are dropped on the way.
    fn checkout(&self) -> Option<Lease> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(lease) = idle.pop() {
            if lease.sender.is_ready() {
                lease.idle.store(LEASED, Ordering::Relaxed);
                return Some(lease);
            }
        }
        None
    }

    /// Back into the pool, unless it is full. A connection still writing the
    /// request body (the upstream answered early) goes back once it is done.
    fn checkin(&self, mut lease: Lease) {
        if lease.sender.is_closed() {
            return;
        }
        if !lease.sender.is_ready() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if lease.sender.ready().await.is_ok() {
                        let pool = Arc::clone(&lease.pool);
                        pool.checkin(lease);
                    }
                });
            }
            return;
        }
        lease.idle.store(self.now_ms(), Ordering::Relaxed);
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        // Closed ones are only found at checkout; make room from the oldest.
        if idle.len() >= self.max_idle {
            idle.retain(|l| !l.sender.is_closed());
            if idle.len() >= self.max_idle {
                return;
            }
        }
        idle.push(lease);
    }

    /// Ends the connection (aborts its task) once the connection marked by
    /// `idle` has been idle for the pool's idle timeout; completes by itself
    /// at most one timeout after the connection ended otherwise.
    fn close_when_idle(
        &self,
        idle: Arc<AtomicU64>,
        conn: tokio::task::AbortHandle,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (epoch, limit) = (self.epoch, self.idle_timeout);
        async move {
            loop {
                if conn.is_finished() {
                    return;
                }
                let since = idle.load(Ordering::Relaxed);
                let due = if since == LEASED {
                    Instant::now() + limit
                } else {
                    epoch + Duration::from_millis(since) + limit
                };
                if since != LEASED && Instant::now() >= due {
                    conn.abort();
                    return;
                }
                tokio::time::sleep_until(due).await;
            }
        }
    }
}

/// A connection taken from the pool (or new) for one exchange.
struct Lease {
    sender: http1::SendRequest<RequestBody>,
    /// Milliseconds since the pool's epoch when it was last returned, or
    /// [`LEASED`]; read by the connection's idle timer (`close_when_idle`).
    idle: Arc<AtomicU64>,
    pool: Arc<Pool>,
}

/// An upstream response body. The connection goes back to the pool when the
/// body has been read to its end; dropped earlier, the connection is closed.
pub struct UpstreamBody {
    inner: Incoming,
    lease: Option<Lease>,
}

impl UpstreamBody {
    fn release(&mut self) {
        if let Some(lease) = self.lease.take() {
            let pool = Arc::clone(&lease.pool);
            pool.checkin(lease);
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // A body hyper never had to poll (empty, HEAD, 204, 304) is complete.
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let out = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        match &out {
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Err(_))) => self.lease = None,
            _ => {}
        }
        out
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

type BoxError = Box<dyn StdError + Send + Sync>;

/// Why an exchange failed.
#[derive(Debug)]
enum SendError {
    /// TCP connect, TLS handshake or the HTTP/1.1 handshake failed.
    Connect(BoxError),
    ConnectTimeout,
    /// The request or response failed on an established connection.
    Exchange(hyper::Error),
}

impl SendError {
    fn source_error(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            SendError::Connect(e) => Some(&**e),
            SendError::ConnectTimeout => None,
            SendError::Exchange(e) => Some(e),
        }
    }
}

/// The TLS error behind a client error, if there is one. `io::Error` hides
/// its payload from `source()`, so payloads are opened explicitly.
fn tls_error<'a>(mut source: Option<&'a (dyn StdError + 'static)>) -> Option<&'a rustls::Error> {
    while let Some(s) = source {
        if let Some(t) = s.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        if let Some(inner) = s.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            if let Some(t) = tls_error(Some(inner as &(dyn StdError + 'static))) {
                return Some(t);
            }
        }
        source = s.source();
    }
    None
}

/// Maps a client error to the status the client sees, by fault.
fn classify(e: &SendError) -> GateError {
    let connect = match e {
        SendError::ConnectTimeout => return GateError::UpstreamConnectTimeout,
        SendError::Connect(_) => true,
        SendError::Exchange(_) => false,
    };
    let mut source = e.source_error();
    while let Some(s) = source {
        if let Some(b) = s.downcast_ref::<RequestBodyError>() {
            return match b {
                RequestBodyError::TooLarge => GateError::BodyTooLarge,
                RequestBodyError::Client(_) => GateError::ClientBody,
            };
        }
        if let Some(io) = s.downcast_ref::<io::Error>() {
            if io.kind() == io::ErrorKind::TimedOut {
                return if connect {
                    GateError::UpstreamConnectTimeout
                } else {
                    GateError::UpstreamTimeout
                };
            }
        }
        source = s.source();
    }
    // TLS 1.3 ends the client's handshake before the server has checked the
    // client certificate: its refusal arrives as an alert on the first read.
    let refused_identity = matches!(
        tls_error(e.source_error()),
        Some(rustls::Error::AlertReceived(
            rustls::AlertDescription::CertificateRequired
                | rustls::AlertDescription::BadCertificate
                | rustls::AlertDescription::UnsupportedCertificate
                | rustls::AlertDescription::CertificateRevoked
                | rustls::AlertDescription::CertificateExpired
                | rustls::AlertDescription::CertificateUnknown
                | rustls::AlertDescription::UnknownCA
                | rustls::AlertDescription::AccessDenied
                | rustls::AlertDescription::HandshakeFailure
        ))
    );
    if connect || refused_identity {
        GateError::UpstreamUnavailable
    } else {
        GateError::UpstreamProtocol
    }
}
