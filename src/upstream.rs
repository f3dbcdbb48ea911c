//! Upstreams: a pooled HTTP/1.1 client per backend (plain, or TLS for an
//! `https` URL), the credential scopegate injects toward it, and the mapping
//! of transport failures to statuses.
//!
//! `connect_timeout` bounds the TCP connect and the TLS handshake together.
//! A failed handshake (an untrusted certificate, a refused client
//! certificate) is a connect failure: 502 `upstream_unavailable`.
//!
//! Requests are never retried: hyper-util's retry of requests on a pooled
//! connection that closed is turned off, so a non-idempotent request reaches the
//! backend at most once.

use std::{
    error::Error as StdError,
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use http::{uri::Authority, HeaderName, HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::{TokioExecutor, TokioIo, TokioTimer},
};

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
    client: Client<Connector, RequestBody>,
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
        let connector = Connector {
            inner: match s.tls {
                Some(tls) => HttpsConnector::new(http, tls, true, resolver),
                None => {
                    HttpsConnector::new(http, crate::tls::unused_client_config(), false, resolver)
                }
            },
            timeout: s.connect_timeout,
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(s.pool_idle_timeout)
            .pool_max_idle_per_host(s.pool_max_idle_per_host)
            .retry_canceled_requests(false)
            .set_host(false)
            .build(connector);
        let host = HeaderValue::from_str(s.authority.as_str())
            .expect("an Authority is always a valid header value");
        Self {
            name: s.name.into(),
            https,
            authority: s.authority,
            host,
            base_path: s.base_path.into(),
            connect_timeout: s.connect_timeout,
            response_timeout: s.response_timeout,
            credential: s.credential,
            client,
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

    /// Sends the request and waits for the response head, at most until `deadline`.
    pub async fn send(
        &self,
        req: Request<RequestBody>,
        deadline: tokio::time::Instant,
    ) -> Result<Response<Incoming>, GateError> {
        match tokio::time::timeout_at(deadline, self.client.request(req)).await {
            Err(_) => Err(GateError::UpstreamTimeout),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => {
                if let Some(tls) = tls_error(&e) {
                    tracing::warn!(upstream = %self.name, error = %tls, "TLS handshake with the upstream failed");
                }
                Err(classify(&e))
            }
        }
    }
}

type BoxError = Box<dyn StdError + Send + Sync>;

/// The connector of one upstream: TCP (and TLS for `https`), the whole of it
/// bounded by `connect_timeout`.
#[derive(Clone)]
struct Connector {
    /// `https` only, for an `https` upstream; else plain `http` only (the
    /// unused TLS configuration trusts nothing).
    inner: HttpsConnector<HttpConnector>,
    timeout: Duration,
}

impl tower_service::Service<Uri> for Connector {
    type Response = MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let connecting = self.inner.call(dst);
        let limit = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(limit, connecting).await {
                Ok(r) => r,
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connect and TLS handshake timed out",
                )
                .into()),
            }
        })
    }
}

/// The TLS error behind a client error, if there is one. `io::Error` hides
/// its payload from `source()`, so payloads are opened explicitly.
fn tls_error(e: &hyper_util::client::legacy::Error) -> Option<&rustls::Error> {
    fn within<'a>(mut source: Option<&'a (dyn StdError + 'static)>) -> Option<&'a rustls::Error> {
        while let Some(s) = source {
            if let Some(t) = s.downcast_ref::<rustls::Error>() {
                return Some(t);
            }
            if let Some(inner) = s.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
                if let Some(t) = within(Some(inner as &(dyn StdError + 'static))) {
                    return Some(t);
                }
            }
            source = s.source();
        }
        None
    }
    within(e.source())
}

/// Maps a client error to the status the client sees, by fault.
fn classify(e: &hyper_util::client::legacy::Error) -> GateError {
    let mut source: Option<&(dyn StdError + 'static)> = e.source();
    while let Some(s) = source {
        if let Some(b) = s.downcast_ref::<RequestBodyError>() {
            return match b {
                RequestBodyError::TooLarge => GateError::BodyTooLarge,
                RequestBodyError::Client(_) => GateError::ClientBody,
            };
        }
        if let Some(io) = s.downcast_ref::<io::Error>() {
            if io.kind() == io::ErrorKind::TimedOut {
                return if e.is_connect() {
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
        tls_error(e),
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
    if e.is_connect() || refused_identity {
        GateError::UpstreamUnavailable
    } else {
        GateError::UpstreamProtocol
    }
}
