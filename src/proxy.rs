//! The request path, top to bottom:
//!
//! limits → host → normalize path → match route → strip untrusted headers →
//! authenticate → write scope headers → forward → access record.
//!
//! Every step is a plain function; the order here is the order a request sees.

use std::{net::SocketAddr, sync::Arc, time::Instant};

use http::{
    header, request::Parts, uri::Authority, HeaderMap, HeaderValue, Request, Response, Version,
};
use hyper::body::Incoming;

use crate::{
    auth,
    body::{RequestBody, ResponseBody},
    clock::Clock,
    config::Config,
    error::GateError,
    metrics::Metrics,
    path,
    routes::Lookup,
    scope::HeaderPolicy,
    store::Store,
};

/// What the access record needs to know about a request's way through.
#[derive(Default)]
pub struct Trace {
    /// The normalized path, once known.
    pub path: Option<String>,
    /// The matched route (or the handshake / info endpoint).
    pub route: Option<Arc<str>>,
    pub upstream_status: Option<u16>,
    /// The scheme that decided (or refused), `public`, or none yet.
    pub scheme: Option<&'static str>,
    /// How long verifying the credential took.
    pub verify: Option<std::time::Duration>,
    /// The upstream asked, and how long its response head took.
    pub upstream: Option<(Arc<str>, std::time::Duration)>,
    /// scopegate answered itself (handshake, apikeyinfo).
    pub answered: bool,
    /// Who the request proved to be, in the access record's form.
    pub who: Who,
    /// A cross-origin request's origin and its route's CORS: the response
    /// may be read by that page.
    pub cors: Option<(HeaderValue, crate::cors::RouteCors)>,
    /// The route has CORS: every response varies by `Origin`.
    pub vary_origin: bool,
    /// The `Origin` of a cross-origin request, for the access record.
    pub origin: Option<String>,
    /// The route takes action links, whose URLs hold their token: every
    /// answer on it, scopegate's own refusals too, gets
    /// `Referrer-Policy: no-referrer`.
    pub no_referrer: bool,
}

/// The access record's view of a principal: configuration ids as they are
/// (app, business), the customer only as a short hash.
#[derive(Default)]
pub struct Who {
    pub app: Option<String>,
    pub business: Option<String>,
    /// 12 hex digits of SHA-256 over the subject (`customer.email=...`): it
    /// correlates one customer's requests without writing who it is. Not
    /// anonymization: a guessed email can be hashed and compared.
    pub subject: Option<String>,
}

impl Who {
    fn of(p: &auth::Principal) -> Self {
        use sha2::Digest as _;
        let hash = |s: &[u8]| crate::store::hex(&sha2::Sha256::digest(s)[..6]);
        let text = |v: &auth::ScopeValue| {
            String::from_utf8_lossy(v.header_value().as_bytes()).into_owned()
        };
        match p {
            auth::Principal::Anonymous => Who::default(),
            auth::Principal::Customer(c) => Who {
                app: Some(c.app_slug.clone()),
                business: None,
                subject: c
                    .subject
                    .as_ref()
                    .map(|s| hash(s.header.header_value().as_bytes())),
            },
            auth::Principal::Business { business, .. } => Who {
                business: Some(text(business)),
                ..Who::default()
            },
            auth::Principal::Sso(c) => Who {
                app: None,
                business: Some(text(&c.company)),
                subject: Some(hash(c.subject.header.header_value().as_bytes())),
            },
            auth::Principal::ApiKey(k) => Who {
                app: Some(text(&k.application)),
                business: Some(text(&k.business)),
                subject: None,
            },
        }
    }
}

/// The configuration in force: swapped whole on reload, while each request
/// keeps the one it started with.
pub type SharedConfig = Arc<arc_swap::ArcSwap<Config>>;

/// The proxy service shared by every connection of a listener.
pub struct Proxy {
    config: SharedConfig,
    /// Single-use marks and sessions; outlives any one configuration.
    store: Arc<Store>,
    clock: Clock,
    metrics: Arc<Metrics>,
    /// One permit per request in progress (`limits.max_in_flight`, fixed at start).
    in_flight: Arc<tokio::sync::Semaphore>,
}

impl Proxy {
    pub fn new(
        config: SharedConfig,
        store: Arc<Store>,
        clock: Clock,
        metrics: Arc<Metrics>,
    ) -> Self {
        let in_flight = Arc::new(tokio::sync::Semaphore::new(
            config.load().limits.max_in_flight,
        ));
        Self {
            config,
            store,
            clock,
            metrics,
            in_flight,
        }
    }

    /// Handles one request. Never fails: every refusal is a rendered response.
    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<ResponseBody> {
        let started = Instant::now();
        let config = &*self.config.load_full();
        let (mut parts, body) = req.into_parts();
        let request_id = request_id(&parts.headers, config.headers.request_id_header());
        let mut trace = Trace::default();

        // Load shedding: past the cap a request is refused at once rather
        // than queued behind the others.
        let result = match Arc::clone(&self.in_flight).try_acquire_owned() {
            Err(_) => Err(GateError::Overloaded),
            Ok(_permit) => {
                forward(
                    config,
                    &self.store,
                    &self.clock,
                    &mut parts,
                    body,
                    peer,
                    &request_id,
                    &mut trace,
                    started,
                )
                .await
            }
        };
        let (mut resp, outcome, cause) = match result {
            Ok(resp) if trace.answered => (resp, "answered", None),
            Ok(resp) => (resp, "forwarded", None),
            Err(e) => {
                let code = e.code();
                let cause = e.cause();
                (e.into_response(), code, cause)
            }
        };
        resp.headers_mut().insert(
            config.headers.request_id_header().clone(),
            request_id.clone(),
        );
        if let Some((origin, cors)) = &trace.cors {
            cors.allow(resp.headers_mut(), origin);
        } else if trace.vary_origin {
            crate::cors::vary_origin(resp.headers_mut());
        }
        if trace.no_referrer {
            resp.headers_mut().insert(REFERRER_POLICY, NO_REFERRER);
        }

        if crate::telemetry::access_on() {
            crate::telemetry::access(&crate::telemetry::Access {
                request_id: request_id.to_str().unwrap_or("-"),
                peer: peer.ip(),
                method: parts.method.as_str(),
                path: trace.path.as_deref().unwrap_or("-"),
                route: trace.route.as_deref().unwrap_or("-"),
                status: resp.status().as_u16(),
                scheme: trace.scheme.unwrap_or("-"),
                outcome,
                cause: cause.as_deref().unwrap_or("-"),
                origin: trace.origin.as_deref().unwrap_or("-"),
                app: trace.who.app.as_deref().unwrap_or("-"),
                business: trace.who.business.as_deref().unwrap_or("-"),
                subject: trace.who.subject.as_deref().unwrap_or("-"),
                upstream_status: trace.upstream_status.unwrap_or(0),
                verify_micros: trace.verify.map_or(0, |d| d.as_micros() as u64),
                upstream_micros: trace
                    .upstream
                    .as_ref()
                    .map_or(0, |(_, d)| d.as_micros() as u64),
                micros: started.elapsed().as_micros() as u64,
            });
        }
        self.record(&trace, outcome);
        resp
    }
}

impl Proxy {
    /// The request's metrics, from its trace.
    fn record(&self, trace: &Trace, outcome: &'static str) {
        let m = &self.metrics;
        let scheme = trace.scheme.unwrap_or("-");
        let route = match &trace.route {
            Some(r) => crate::metrics::Label::Shared(Arc::clone(r)),
            None => crate::metrics::Label::Static("-"),
        };
        m.request(route, scheme, outcome);
        if let (Some(d), Some(s)) = (trace.verify, trace.scheme) {
            m.verify_seconds
                .get_or_create(&crate::metrics::SchemeLabels { scheme: s.into() })
                .observe(d.as_secs_f64());
        }
        if let Some((name, d)) = &trace.upstream {
            m.upstream_seconds
                .get_or_create(&crate::metrics::UpstreamLabels {
                    upstream: Arc::clone(name).into(),
                })
                .observe(d.as_secs_f64());
            let kind = match outcome {
                "upstream_unavailable" => Some("unavailable"),
                "upstream_timeout" | "request_timeout" => Some("timeout"),
                "upstream_error" => Some("protocol"),
                _ => None,
            };
            if let Some(kind) = kind {
                m.upstream_errors
                    .get_or_create(&crate::metrics::UpstreamErrorLabels {
                        upstream: Arc::clone(name).into(),
                        kind: kind.into(),
                    })
                    .inc();
            }
        }
        if outcome == "store_unavailable" {
            m.store_errors.inc();
        }
    }
}

/// What scopegate decided for a request before anything left for the
/// upstream: an answer of its own, or the exact request to forward.
pub enum Decision {
    /// Answered by scopegate (the session handshake, apikeyinfo).
    Answer(Box<Response<ResponseBody>>),
    Forward(Box<Prepared>),
}

/// A request ready to go upstream, as `explain` shows it.
pub struct Prepared {
    pub route: Arc<str>,
    pub principal: auth::Principal,
    /// Index into [`Config::upstreams`].
    pub upstream: usize,
    pub method: http::Method,
    pub target: http::Uri,
    /// Exactly the headers the upstream gets.
    pub headers: HeaderMap,
    /// Client headers removed by the header contract (names only).
    pub stripped: Vec<http::HeaderName>,
    /// A signed-search listing to enrich with action links.
    pub wants_links: bool,
    /// Unix seconds when it was decided.
    pub now: u64,
}

/// `[failures]` around a credential check scopegate answers itself (the
/// session handshake, `apikeyinfo`), as `auth::authenticate_with` does for
/// routes: a client past its limit is refused or slowed before the check, and
/// a 401 that `counts` is counted against it.
async fn limited<T>(
    config: &Config,
    store: &Store,
    client: std::net::IpAddr,
    counts: fn(&auth::Rejection) -> bool,
    check: impl std::future::Future<Output = Result<T, GateError>>,
) -> Result<T, GateError> {
    let Some(l) = &config.auth.failures else {
        return check.await;
    };
    l.enter(store, client, None)
        .await
        .map_err(GateError::TooManyFailures)?;
    let result = check.await;
    if let Err(GateError::Unauthorized(r)) = &result {
        if counts(r) {
            l.fail(store, client, None).await;
        }
    }
    result
}

/// Everything a request goes through before it is sent: limits, host, path,
/// route, header hygiene, authentication, the scope headers, the upstream
/// target. Side effects are those of verifying (a session slides, an SSO
/// session opens); nothing is claimed or sent.
#[allow(clippy::too_many_arguments)]
pub async fn prepare(
    config: &Config,
    store: &Store,
    clock: &Clock,
    parts: &mut Parts,
    has_body: bool,
    peer: SocketAddr,
    request_id: &HeaderValue,
    trace: &mut Trace,
) -> Result<Decision, GateError> {
    check_limits(config, parts)?;
    let host = request_host(parts)?;
    // A cheap clone (shared bytes): authentication rewrites `parts.uri`'s query.
    let uri = parts.uri.clone();
    let path = path::normalize(uri.path()).map_err(GateError::BadPath)?;
    trace.path = Some(path.clone().into_owned());

    let sessions = &config.auth.sessions;
    if sessions.enabled() && *path == *sessions.path {
        trace.route = Some("session-handshake".into());
        trace.scheme = Some(auth::Scheme::Session.name());
        trace.answered = true;
        let now_ms = clock.now_ms();
        let answer = if parts.method == http::Method::GET {
            // A handshake proves a secret (the signature): a failure counts.
            let client = config.headers.client_ip(&parts.headers, peer.ip());
            let handshake = auth::session::handshake(parts, sessions, store, now_ms);
            limited(
                config,
                store,
                client,
                |r| !r.cause.starts_with("no "),
                handshake,
            )
            .await?
        } else {
            // A logout ends a session; it is never refused for past failures.
            auth::session::handshake(parts, sessions, store, now_ms).await?
        };
        return Ok(Decision::Answer(Box::new(answer)));
    }

    let api_keys = &config.auth.api_keys;
    if api_keys.enabled() && *path == *api_keys.info_path {
        trace.route = Some("apikeyinfo".into());
        trace.scheme = Some(auth::Scheme::ApiKey.name());
        trace.answered = true;
        let client = config.headers.client_ip(&parts.headers, peer.ip());
        let info = std::future::ready(api_keys.info(parts));
        let answer = limited(config, store, client, auth::Rejection::is_probe, info).await?;
        return Ok(Decision::Answer(Box::new(answer)));
    }

    // `admin.example.com.` (the absolute form of the name) is the same
    // host: it must meet the same routes, not skip a host-bound one.
    let hostname = host
        .as_ref()
        .map(|a| a.host().trim_end_matches('.').to_ascii_lowercase());
    let policy = &config.headers;
    let trusted = policy.is_trusted(peer.ip());
    // The scheme the browser used: this connection's, or behind a trusted
    // proxy that terminates TLS, the one it forwards.
    let forwarded_proto = trusted
        .then(|| parts.headers.get("x-forwarded-proto"))
        .flatten()
        .and_then(|v| match v.as_bytes() {
            b"https" => Some("https"),
            b"http" => Some("http"),
            _ => None,
        });
    let scheme = forwarded_proto.unwrap_or_else(|| {
        parts
            .extensions
            .get::<crate::server::ClientScheme>()
            .map_or("http", |s| s.0)
    });
    // A browser page of another origin (the gate's own origin needs no CORS).
    let cross_origin = crate::cors::origin(&parts.headers)
        .filter(|o| {
            host.as_ref().is_none_or(|h| {
                o.as_bytes() != format!("{scheme}://{}", h.as_str().to_ascii_lowercase()).as_bytes()
            })
        })
        .cloned();
    // A preflight asks for the route of the method it announces.
    let preflight = match (&cross_origin, parts.method == http::Method::OPTIONS) {
        (Some(_), true) => parts
            .headers
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| http::Method::from_bytes(m.as_bytes()).ok()),
        _ => None,
    };
    let lookup_method = preflight.as_ref().unwrap_or(&parts.method);
    let (route, params) = match config
        .routes
        .lookup(hostname.as_deref(), lookup_method, &path)
    {
        Lookup::Found(route, params) => (route, params),
        Lookup::MethodNotAllowed(_) if preflight.is_some() => {
            return Err(GateError::OriginNotAllowed);
        }
        Lookup::MethodNotAllowed(allowed) => return Err(GateError::MethodNotAllowed(allowed)),
        Lookup::NotFound => return Err(GateError::NotFound),
    };
    trace.route = Some(route.name.clone());
    trace.vary_origin = route.cors.is_some();
    trace.no_referrer =
        matches!(&route.auth, auth::AuthPolicy::AnyOf(s) if s.contains(&auth::Scheme::ActionLink));
    if let Some(origin) = &cross_origin {
        trace.origin = Some(String::from_utf8_lossy(origin.as_bytes()).into_owned());
        let Some(cors) = route.cors.as_ref() else {
            return Err(GateError::OriginNotAllowed);
        };
        let text = origin.to_str().unwrap_or("");
        if !may_call(config, route, cors, text) {
            return Err(GateError::OriginNotAllowed);
        }
        if let Some(method) = &preflight {
            let asked = parts
                .headers
                .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            if !cors.methods.contains(method) || !cors.headers_allowed(asked) {
                return Err(GateError::OriginNotAllowed);
            }
            trace.answered = true;
            return Ok(Decision::Answer(Box::new(cors.preflight(origin))));
        }
        trace.cors = Some((origin.clone(), cors.clone()));
    }

    let stripped = policy.strip_request(&mut parts.headers, trusted);
    if !stripped.names.is_empty() {
        tracing::debug!(removed = ?stripped.names, "stripped client headers");
    }

    let route_auth = auth::RouteAuth {
        search_fields: route.search_fields.as_deref(),
        apps: route.apps.as_deref(),
        has_body,
        action_path: params.get("id").zip(params.get("action")),
        client: Some(policy.client_ip(&parts.headers, peer.ip())),
        require: route.require,
        form_body: has_body && is_form(&parts.headers),
    };
    let now_ms = clock.now_ms();
    let verifying = Instant::now();
    let verified =
        auth::authenticate_with(&route.auth, &route_auth, parts, &config.auth, store, now_ms).await;
    trace.verify = Some(verifying.elapsed());
    trace.scheme = match &verified {
        Ok(p) => Some(p.credential().unwrap_or("public")),
        Err(auth::AuthError::Rejected(r)) => r.scheme.map(auth::Scheme::name),
        Err(_) => None,
    };
    if let Ok(p) = &verified {
        // Only the access record reads it (a hash of the subject).
        if crate::telemetry::access_on() {
            trace.who = Who::of(p);
        }
        // The page's origin must be one the credential's own app allows.
        if let Some((origin, cors)) = &trace.cors {
            if !credential_allows(config, p, cors, origin.to_str().unwrap_or("")) {
                trace.cors = None;
                return Err(GateError::OriginNotAllowed);
            }
        }
    }
    let principal = verified.map_err(|e| match e {
        auth::AuthError::Rejected(r) => GateError::Unauthorized(r),
        auth::AuthError::BadQuery(q) => GateError::BadQuery(q),
        auth::AuthError::Redirect => GateError::BadRedirect,
        auth::AuthError::NotFound => GateError::NotFound,
        auth::AuthError::Method(m) => GateError::MethodNotAllowed(m),
        auth::AuthError::Store => GateError::StoreUnavailable,
        auth::AuthError::Ambiguous => GateError::AmbiguousCredential,
        auth::AuthError::Throttled(after) => GateError::TooManyFailures(after),
        auth::AuthError::Forbidden(need) => GateError::Forbidden(need),
    })?;
    // Credentials never travel upstream, whatever the route accepted.
    auth::strip_credentials(parts, &config.auth);
    config.auth.sso.strip(&mut parts.headers);
    config.auth.api_keys.strip(&mut parts.headers);
    strip_session_authorization(&mut parts.headers, &principal);

    let customer = principal.customer();
    let grant = customer.and_then(|c| c.action.as_deref());
    let links = &config.auth.actions;
    // HEAD asks too, but its empty body is never rewritten.
    let wants_links = customer.is_some_and(|c| c.credential == auth::Scheme::SignedSearch)
        && links.can_mint()
        && crate::listing::take_include(parts, links.listing.forward_include)
        && parts.method == http::Method::GET;

    // An action link becomes the upstream call its action is configured as.
    let (method, upstream_path) = match grant {
        Some(g) => (g.upstream_method.clone(), g.upstream_path.as_str()),
        None => (parts.method.clone(), &*path),
    };
    let upstream = &config.upstreams[route.upstream];
    let target = upstream.target(
        &route.upstream_path_prefix,
        upstream_path,
        parts.uri.query(),
    )?;
    let mut headers = std::mem::take(&mut parts.headers);
    policy.write_forwarding(
        &mut headers,
        peer.ip(),
        trusted,
        parts
            .extensions
            .get::<crate::server::ClientScheme>()
            .map_or("http", |s| s.0),
        host.as_ref().map(Authority::as_str),
    );
    policy.write_scope(&mut headers, &principal, route.scope_value.header_value());
    headers.insert(header::HOST, upstream.host_header().clone());
    let credential = match customer {
        Some(c) if route.app_credential => config
            .auth
            .apps
            .0
            .get(&c.app_slug)
            .and_then(|a| a.upstream_credential.as_ref()),
        _ => upstream.credential(),
    };
    if let Some((name, value)) = credential {
        HeaderPolicy::remove_spellings(&mut headers, name);
        headers.insert(name.clone(), value.clone());
    }
    headers.insert(policy.request_id_header().clone(), request_id.clone());
    if wants_links {
        // The listing is read and rewritten, so it must come uncompressed.
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
    }
    Ok(Decision::Forward(Box::new(Prepared {
        route: route.name.clone(),
        upstream: route.upstream,
        method,
        target,
        headers,
        stripped: stripped.names,
        wants_links,
        now: now_ms / 1000,
        principal,
    })))
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    config: &Config,
    store: &Store,
    clock: &Clock,
    parts: &mut Parts,
    body: Incoming,
    peer: SocketAddr,
    request_id: &HeaderValue,
    trace: &mut Trace,
    started: Instant,
) -> Result<Response<ResponseBody>, GateError> {
    let has_body = !http_body::Body::is_end_stream(&body);
    let p = match prepare(
        config, store, clock, parts, has_body, peer, request_id, trace,
    )
    .await?
    {
        Decision::Answer(resp) => return Ok(*resp),
        Decision::Forward(p) => p,
    };
    let Prepared {
        principal,
        upstream,
        method,
        target,
        headers,
        wants_links,
        now,
        ..
    } = *p;
    let customer = principal.customer();
    let grant = customer.and_then(|c| c.action.as_deref());
    let links = &config.auth.actions;
    let policy = &config.headers;
    let upstream = &config.upstreams[upstream];

    // A single-use link is marked before it is forwarded, so two concurrent
    // uses cannot both pass; the mark is released if the action did not happen.
    let once = grant.and_then(|g| g.once);
    if let Some((key, ttl)) = once {
        match store.claim_once(key, ttl).await {
            Ok(true) => {}
            Ok(false) => return Err(GateError::AlreadyUsed),
            Err(e) => {
                tracing::error!(error = %e, "single-use store refused a mark");
                return Err(GateError::StoreUnavailable);
            }
        }
    }

    let mut req = Request::new(RequestBody::new(
        body,
        config.limits.max_body_bytes,
        Arc::clone(policy),
    ));
    *req.method_mut() = method;
    *req.uri_mut() = target;
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = headers;

    let upstream_deadline = tokio::time::Instant::now() + upstream.response_timeout;
    let request_deadline = tokio::time::Instant::from_std(started) + config.limits.request_timeout;
    let sending = Instant::now();
    let sent = upstream
        .send(req, upstream_deadline.min(request_deadline))
        .await;
    trace.upstream = Some((upstream.name.clone(), sending.elapsed()));
    let sent = match sent {
        Err(GateError::UpstreamTimeout) if request_deadline < upstream_deadline => {
            Err(GateError::RequestTimeout)
        }
        other => other,
    };
    // The mark is released only when the action certainly did not happen:
    // the request never left, or the upstream answered a status that means
    // "not processed, try again" (408, 425, 429, 503). A timeout or another
    // 5xx may come after the backend acted, so the mark stays.
    if let Some((key, _)) = once {
        let not_done = match &sent {
            Err(e) => e.undelivered(),
            Ok(r) => matches!(r.status().as_u16(), 408 | 425 | 429 | 503),
        };
        if not_done {
            store.release(&key).await;
        }
    }
    let mut resp = sent?;
    trace.upstream_status = Some(resp.status().as_u16());
    // The client gets its own protocol version, not the upstream's (an
    // HTTP/1.0 backend must not downgrade an HTTP/1.1 client).
    *resp.version_mut() = parts.version;
    HeaderPolicy::strip_response(resp.headers_mut());

    // (Referrer-Policy for the link's route is set on every answer, in
    // `Proxy::handle`.)
    if let Some(g) = grant {
        if let Some(to) = &g.redirect {
            if resp.status().is_success() {
                return Ok(redirect(to));
            }
        }
    }
    if wants_links {
        if let Some(c) = customer {
            if let Some(subject) = &c.subject {
                let ctx = crate::listing::LinkContext {
                    links,
                    apps: &config.auth.apps,
                    app: &c.app_slug,
                    subject,
                    now,
                    until: c.expires,
                };
                return crate::listing::enrich(resp, &ctx, request_deadline).await;
            }
        }
    }
    let (mut rparts, rbody) = resp.into_parts();
    if let auth::Principal::Sso(c) = &principal {
        if let Some(token) = &c.opened {
            config.auth.sso.hand_out(&mut rparts.headers, token);
        }
    }
    Ok(Response::from_parts(rparts, ResponseBody::upstream(rbody)))
}

const REFERRER_POLICY: http::HeaderName = http::HeaderName::from_static("referrer-policy");
const NO_REFERRER: HeaderValue = HeaderValue::from_static("no-referrer");

/// Sends the browser on after a successful action.
fn redirect(to: &url::Url) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::empty());
    *resp.status_mut() = http::StatusCode::FOUND;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(to.as_str()) {
        h.insert(header::LOCATION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(REFERRER_POLICY, NO_REFERRER);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    resp
}

/// A session token never reaches the upstream: on a session-authenticated
/// request `Authorization` goes entirely (the upstream credential, if any,
/// replaces it); elsewhere only values that carry a session token (of the
/// session scheme or an SSO session) go.
fn strip_session_authorization(headers: &mut HeaderMap, principal: &auth::Principal) {
    let session = match principal {
        auth::Principal::Business { credential, .. } => *credential == auth::Scheme::Session,
        auth::Principal::Sso(c) => c.via_session,
        _ => false,
    };
    if session {
        headers.remove(header::AUTHORIZATION);
        return;
    }
    let carries = |v: &HeaderValue| {
        auth::session::is_session_authorization(v) || auth::sso::is_session_authorization(v)
    };
    if !headers.get_all(header::AUTHORIZATION).iter().any(carries) {
        return;
    }
    let all: Vec<HeaderValue> = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .cloned()
        .collect();
    headers.remove(header::AUTHORIZATION);
    for v in all {
        if !carries(&v) {
            headers.append(header::AUTHORIZATION, v);
        }
    }
}

/// Whether `origin` may call `route` at all: allowed for an app or company
/// the route accepts, or by the route itself.
fn may_call(
    config: &Config,
    route: &crate::routes::Route,
    cors: &crate::cors::RouteCors,
    origin: &str,
) -> bool {
    use crate::cors::allowed;
    if allowed(&cors.origins, origin) {
        return true;
    }
    let auth::AuthPolicy::AnyOf(schemes) = &route.auth else {
        return false;
    };
    let timekit = schemes
        .iter()
        .any(|s| matches!(s, auth::Scheme::SignedSearch | auth::Scheme::ActionLink));
    let apps_ok = timekit
        && config.auth.apps.0.iter().any(|(slug, app)| {
            route.apps.as_ref().is_none_or(|a| a.contains(slug))
                && allowed(&app.cors_origins, origin)
        });
    let companies_ok = schemes.contains(&auth::Scheme::Sso)
        && config
            .auth
            .sso
            .companies
            .iter()
            .any(|c| allowed(&c.cors_origins, origin));
    apps_ok || companies_ok
}

/// Whether the credential that was proven allows `origin`: its app's or
/// company's origins; the route's for credentials that name neither.
fn credential_allows(
    config: &Config,
    p: &auth::Principal,
    cors: &crate::cors::RouteCors,
    origin: &str,
) -> bool {
    use crate::cors::allowed;
    match p {
        auth::Principal::Customer(c) => config
            .auth
            .apps
            .0
            .get(&c.app_slug)
            .is_some_and(|a| allowed(&a.cors_origins, origin)),
        auth::Principal::Sso(c) => {
            let id = c.company.header_value().to_str().unwrap_or("");
            config
                .auth
                .sso
                .company(id)
                .is_some_and(|co| allowed(&co.cors_origins, origin))
        }
        auth::Principal::Anonymous
        | auth::Principal::Business { .. }
        | auth::Principal::ApiKey(_) => allowed(&cors.origins, origin),
    }
}

/// Whether a request body may be read as a form (which some backends read a
/// `_method` override from): urlencoded or multipart, and also a body with no
/// or an empty `Content-Type` (Rack reads that as a form).
fn is_form(headers: &HeaderMap) -> bool {
    let types: Vec<String> = headers
        .get_all(header::CONTENT_TYPE)
        .iter()
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .trim()
                .to_ascii_lowercase()
        })
        .collect();
    types.iter().all(String::is_empty)
        || types
            .iter()
            .any(|v| v.contains("application/x-www-form-urlencoded") || v.contains("multipart/"))
}

/// Limits the HTTP parser does not enforce at the configured values, and
/// request shapes it accepts that backends read differently.
fn check_limits(config: &Config, parts: &Parts) -> Result<(), GateError> {
    // Methods are case-sensitive, but some frameworks upper-case them: a
    // `delete` would miss a DELETE route here and be a DELETE there.
    if parts
        .method
        .as_str()
        .bytes()
        .any(|b| b.is_ascii_lowercase())
    {
        return Err(GateError::BadMethod);
    }
    // `_method=DELETE` makes many frameworks (Laravel, Symfony, Rack) run a
    // POST as a DELETE: it would meet the POST's route here and the DELETE's
    // there, so it is refused on every route, as its headers are stripped.
    if parts
        .uri
        .query()
        .is_some_and(crate::auth::search_query::names_method_override)
    {
        return Err(GateError::BadQuery(
            crate::auth::search_query::QueryError::MethodOverride,
        ));
    }
    let limits = &config.limits;
    let target_len = match parts.uri.path_and_query() {
        Some(pq) => pq.as_str().len() + parts.uri.authority().map_or(0, |a| a.as_str().len()),
        None => 0,
    };
    if target_len > limits.max_uri_length {
        return Err(GateError::UriTooLong);
    }
    if parts.headers.len() > limits.max_headers {
        return Err(GateError::HeadersTooLarge);
    }
    // Name, ": ", value and CRLF, as on the wire.
    let header_bytes: usize = parts
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > limits.max_header_bytes {
        return Err(GateError::HeadersTooLarge);
    }
    if let Some(len) = parts.headers.get(header::CONTENT_LENGTH) {
        // hyper has already refused malformed or conflicting lengths.
        let len: u64 = len
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(u64::MAX);
        if len > limits.max_body_bytes {
            return Err(GateError::BodyTooLarge);
        }
    }
    Ok(())
}

/// The host the client addressed: the absolute-form or `:authority` target,
/// else the single `Host` header. Disagreement or repetition is refused.
fn request_host(parts: &Parts) -> Result<Option<Authority>, GateError> {
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    let header_host = hosts.next();
    if hosts.next().is_some() {
        return Err(GateError::BadHost);
    }
    // A host is a name, an IPv4 or a bracketed IPv6 address, and a port:
    // nothing a backend could split into a list (`evil,api`) or a user.
    let plain = |a: &Authority| {
        a.as_str()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
    };
    let header_host = match header_host {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.parse::<Authority>().ok())
                .filter(plain)
                .ok_or(GateError::BadHost)?,
        ),
        None => None,
    };
    if parts.uri.authority().is_some_and(|a| !plain(a)) {
        return Err(GateError::BadHost);
    }
    match (parts.uri.authority(), header_host) {
        (Some(target), Some(h)) if !target.as_str().eq_ignore_ascii_case(h.as_str()) => {
            Err(GateError::BadHost)
        }
        (Some(target), _) if target.as_str().contains('@') => Err(GateError::BadHost),
        (Some(target), _) => Ok(Some(target.clone())),
        (None, h) => Ok(h),
    }
}

/// Keeps a client's request id when it is one reasonable token, else makes one.
fn request_id(headers: &HeaderMap, name: &http::HeaderName) -> HeaderValue {
    let mut values = headers.get_all(name).iter();
    if let (Some(v), None) = (values.next(), values.next()) {
        let ok = (1..=128).contains(&v.len())
            && v.as_bytes()
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if ok {
            return v.clone();
        }
    }
    let id: u128 = rand::random();
    let mut buf = [0u8; 32];
    let hex =
        base16ct::lower::encode(&id.to_be_bytes(), &mut buf).expect("32 bytes hold 16 in hex");
    HeaderValue::from_bytes(hex).expect("hex is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, hosts: &[&str]) -> Parts {
        let mut b = Request::builder().uri(uri);
        for h in hosts {
            b = b.header(header::HOST, *h);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn host_comes_from_target_or_single_header() {
        assert_eq!(
            request_host(&parts("/x", &["Api.Example.com:8080"]))
                .unwrap()
                .unwrap()
                .host(),
            "Api.Example.com"
        );
        assert_eq!(
            request_host(&parts("http://a.example/x", &["a.example"]))
                .unwrap()
                .unwrap()
                .as_str(),
            "a.example"
        );
        assert!(request_host(&parts("/x", &[])).unwrap().is_none());
    }

    #[test]
    fn conflicting_or_repeated_hosts_are_refused() {
        assert!(matches!(
            request_host(&parts("/x", &["a", "b"])),
            Err(GateError::BadHost)
        ));
        assert!(matches!(
            request_host(&parts("/x", &["a", "a"])),
            Err(GateError::BadHost)
        ));
        assert!(matches!(
            request_host(&parts("http://a/x", &["b"])),
            Err(GateError::BadHost)
        ));
        assert!(matches!(
            request_host(&parts("/x", &["u@a"])),
            Err(GateError::BadHost)
        ));
        assert!(matches!(
            request_host(&parts("/x", &["a b"])),
            Err(GateError::BadHost)
        ));
    }

    #[test]
    fn request_ids_are_kept_only_when_sane() {
        let name = http::HeaderName::from_static("x-request-id");
        let mut h = HeaderMap::new();
        h.insert(&name, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&h, &name), "abc-123");
        h.insert(&name, HeaderValue::from_static("bad value"));
        assert_eq!(request_id(&h, &name).len(), 32);
        h.insert(&name, HeaderValue::from_static("a"));
        h.append(&name, HeaderValue::from_static("b"));
        assert_eq!(request_id(&h, &name).len(), 32);
    }
}
