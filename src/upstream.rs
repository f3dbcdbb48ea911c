//! Upstreams: a pooled HTTP client per backend, the credential scopegate injects
//! toward it, and the mapping of transport failures to statuses.
//!
//! Requests are never retried: hyper-util's retry of requests on a pooled
//! connection that closed is turned off, so a non-idempotent request reaches the
//! backend at most once.

use std::{error::Error as StdError, io, time::Duration};

use http::{uri::Authority, HeaderName, HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::{TokioExecutor, TokioTimer},
};

use crate::{
    body::{RequestBody, RequestBodyError},
    error::GateError,
};

/// One configured backend.
pub struct Upstream {
    pub name: Box<str>,
    authority: Authority,
    host: HeaderValue,
    /// Path prefix of the base URL, without trailing `/` (may be empty).
    base_path: Box<str>,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    credential: Option<(HeaderName, HeaderValue)>,
    client: Client<HttpConnector, RequestBody>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
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
            "{:<12} http://{}{}",
            self.name, self.authority, self.base_path
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
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(s.connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(true);
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
            .scheme("http")
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|_| GateError::BadPath(crate::path::PathError::BadEscape))
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
            Ok(Err(e)) => Err(classify(&e)),
        }
    }
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
    if e.is_connect() {
        GateError::UpstreamUnavailable
    } else {
        GateError::UpstreamProtocol
    }
}
