//! Listeners: accepting within the connection cap, TLS termination when
//! `[listen.tls]` is set (ALPN `h2` / `http/1.1`), HTTP/1.1 and HTTP/2 (h2c by
//! prior knowledge on a plain listener) per connection, timeouts, and
//! graceful shutdown.
//!
//! Invariants:
//! - a connection holds one permit of the cap from accept to close, so at most
//!   `max_connections` are open and draining waits for exactly those;
//! - HTTP/1 header reads are always timed (a timer is installed, and the
//!   header-read timeout also bounds a keep-alive wait for the next request);
//! - a connection with no request in flight for `idle_timeout` is closed;
//! - on shutdown the listener closes first, then every connection finishes its
//!   in-flight requests until the drain deadline;
//! - a TLS handshake is bounded by the header-read timeout and holds a permit;
//!   the certificate is re-read on reload and when its files change, and an
//!   unusable new one never replaces the served one.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use http::{Request, Response, StatusCode};

use crate::{clock::Clock, store::Store};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{watch, Semaphore},
    task::JoinHandle,
    time::Instant,
};
use tokio_rustls::TlsAcceptor;

use crate::{
    body::ResponseBody,
    config::Config,
    error::GateError,
    metrics::{ConnectionGuard, Metrics},
    proxy::{Proxy, SharedConfig},
    tls::{CertResolver, Polled},
};

/// The scheme the client connected with: `"https"` on a TLS listener, else
/// `"http"`. The listener puts it in every request's extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientScheme(pub &'static str);

/// How often the certificate and key files are checked for changes.
const CERT_WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// A running scopegate: its bound addresses and the handle to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    config: SharedConfig,
    /// The configuration it started with: what a reload cannot change is
    /// compared with this, not with the previous reload.
    started: Arc<Config>,
    metrics: Arc<Metrics>,
    stop: watch::Sender<Phase>,
    ready: Arc<AtomicBool>,
    proxy_task: JoinHandle<()>,
    admin_task: Option<JoinHandle<()>>,
    /// The listener's certificate, when it speaks TLS.
    certs: Option<Arc<CertResolver>>,
    cert_task: Option<JoinHandle<()>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Serving,
    /// Stop accepting; let connections finish in-flight requests.
    Draining,
    /// Drain deadline passed: drop whatever is left.
    Halt,
}

/// Binds the listeners of `config` and starts serving.
pub async fn start(config: Config) -> std::io::Result<Running> {
    start_with_clock(config, Clock::system()).await
}

/// [`start`] with a clock the caller controls (tests of hours-long expiries).
pub async fn start_with_clock(config: Config, clock: Clock) -> std::io::Result<Running> {
    let config = Arc::new(config);
    let store = Arc::new(Store::new(&config.store).map_err(std::io::Error::other)?);
    // The error names the listener and its address: "Address already in
    // use" alone does not say which.
    let bind = |key: &'static str, addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("{key} {addr}: {e}")))
    };
    let listener = bind("listen.address", config.listen).await?;
    let addr = listener.local_addr()?;
    let admin = match config.admin {
        Some(a) => Some(bind("admin.address", a).await?),
        None => None,
    };
    let admin_addr = admin.as_ref().map(TcpListener::local_addr).transpose()?;
    let (stop, stop_rx) = watch::channel(Phase::Serving);
    let ready = Arc::new(AtomicBool::new(true));
    let metrics = Metrics::for_store(&config.store);
    store.observe(Arc::clone(&metrics));
    let shared: SharedConfig = Arc::new(arc_swap::ArcSwap::new(Arc::clone(&config)));
    let certs = config.tls.as_ref().map(CertResolver::new);
    let acceptor =
        config.tls.as_ref().zip(certs.as_ref()).map(|(t, r)| {
            TlsAcceptor::from(crate::tls::server_config(Arc::clone(r), t.min_version))
        });
    let cert_task = certs
        .as_ref()
        .map(|r| tokio::spawn(watch_certificate(Arc::clone(r), stop_rx.clone())));

    let admin_state = Admin {
        ready: Arc::clone(&ready),
        config: Arc::clone(&shared),
        store: Arc::clone(&store),
        metrics: Arc::clone(&metrics),
    };
    let proxy = Arc::new(Proxy::new(
        Arc::clone(&shared),
        store,
        clock,
        Arc::clone(&metrics),
    ));
    let proxy_task = tokio::spawn(accept_loop(
        listener,
        acceptor,
        Arc::clone(&config),
        proxy,
        Arc::clone(&metrics),
        stop_rx.clone(),
    ));
    let admin_task = admin.map(|a| tokio::spawn(admin_loop(a, admin_state, stop_rx)));
    tracing::info!(%addr, admin = ?admin_addr, tls = config.tls.is_some(), routes = config.routes.routes().len(), "scopegate listening");
    Ok(Running {
        addr,
        admin_addr,
        config: shared,
        started: config,
        metrics,
        stop,
        ready,
        proxy_task,
        admin_task,
        certs,
        cert_task,
    })
}

/// Re-reads the certificate and key when their content changes, until shutdown.
async fn watch_certificate(certs: Arc<CertResolver>, mut stop: watch::Receiver<Phase>) {
    let mut tick = tokio::time::interval(CERT_WATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let r = Arc::clone(&certs);
        // File reads and parsing stay off the request threads.
        match tokio::task::spawn_blocking(move || r.poll()).await {
            Ok(Polled::Unchanged) | Err(_) => {}
            Ok(Polled::Reloaded) => {
                tracing::info!(
                    "TLS certificate files changed: new handshakes present the new certificate"
                )
            }
            Ok(Polled::Refused(e)) => {
                tracing::error!(problem = %e, "TLS certificate files changed but cannot be used; the served certificate stays")
            }
        }
    }
}

impl Running {
    /// The files the running configuration was built from besides the
    /// configuration file itself (secret files), for the reload watcher.
    pub fn config_files(&self) -> Vec<std::path::PathBuf> {
        self.config.load().files.clone()
    }

    /// Loads `path` and, when it is valid, makes it the configuration of
    /// every request that starts from now on (requests in flight finish on
    /// theirs). An invalid file changes nothing; its problems are returned
    /// and logged. Settings bound at start (see [`bound_at_start`]) keep
    /// the values they started with until a restart; a file that differs
    /// from them there is logged as a warning, naming the keys. The listener's certificate and
    /// key, read and checked by the load, are served from now on.
    pub fn reload(&self, path: &std::path::Path) -> Result<(), crate::config::ConfigError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        match Config::load(path) {
            Ok(new) => {
                let restart = bound_at_start(&self.started, &new);
                if !restart.is_empty() {
                    tracing::warn!(keys = ?restart, "reload: these settings take effect at the next restart");
                }
                for w in &new.warnings {
                    tracing::warn!("{w}");
                }
                if let (Some(certs), Some(tls)) = (&self.certs, &new.tls) {
                    // Read and checked by the load above.
                    certs.replace(tls);
                }
                self.config.store(Arc::new(new));
                self.metrics.reload(true, now);
                tracing::info!(config = %path.display(), "configuration reloaded");
                Ok(())
            }
            Err(e) => {
                self.metrics.reload(false, now);
                tracing::error!(config = %path.display(), problems = %e, "reload refused; the running configuration stays");
                Err(e)
            }
        }
    }

    /// Stops accepting, lets in-flight requests finish until `deadline`, then
    /// drops what is left. Returns once every listener task has ended.
    pub async fn shutdown(self, deadline: Duration) {
        self.ready.store(false, Ordering::SeqCst);
        let _ = self.stop.send(Phase::Draining);
        let stop = self.stop.clone();
        let halt = tokio::spawn(async move {
            tokio::time::sleep(deadline).await;
            let _ = stop.send(Phase::Halt);
        });
        let _ = self.proxy_task.await;
        halt.abort();
        // The admin listener answers `/readyz` with 503 until the very end.
        let _ = self.stop.send(Phase::Halt);
        if let Some(t) = self.admin_task {
            let _ = t.await;
        }
        if let Some(t) = self.cert_task {
            let _ = t.await;
        }
    }
}

/// Per-connection bookkeeping for the idle timeout.
struct Activity {
    in_flight: AtomicUsize,
    /// Milliseconds since `epoch` of the last request start or response end.
    last: AtomicU64,
    /// Whether a request head has ever arrived on this connection.
    spoke: AtomicBool,
    epoch: Instant,
}

impl Activity {
    fn touch(&self) {
        self.last
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Until a first request arrives, the connection gets only the header-read
    /// timeout: hyper's own timer starts after protocol detection, so a silent
    /// or half-sent preface would otherwise hold a connection slot for the
    /// whole idle timeout.
    fn idle_deadline(&self, idle: Duration, header_read: Duration) -> Instant {
        let allowed = if self.spoke.load(Ordering::Relaxed) {
            idle
        } else {
            idle.min(header_read)
        };
        self.epoch + Duration::from_millis(self.last.load(Ordering::Relaxed)) + allowed
    }
}

/// One request in flight. Dropped with the response body, or with the request
/// future when the client cancels (an HTTP/2 reset) before any response exists.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::SeqCst);
        activity.spoke.store(true, Ordering::Relaxed);
        activity.touch();
        Self(Arc::clone(activity))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The keys of `new` that differ from `started` but cannot change under a
/// running process. The request-level limits (`max_body_bytes`,
/// `request_timeout`, and the head limits up to the parser's caps set at
/// start: `max_headers` + [`HEADER_SLACK`], twice the byte limits) apply on reload and are not listed.
fn bound_at_start(started: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let mut differs = |changed: bool, key: &'static str| {
        if changed {
            keys.push(key);
        }
    };
    let (a, b) = (&started.limits, &new.limits);
    differs(new.listen != started.listen, "listen.address");
    let min = |c: &Config| c.tls.as_ref().map(|t| t.min_version);
    differs(min(new) != min(started), "listen.tls");
    differs(
        new.drain_timeout != started.drain_timeout,
        "listen.drain_timeout",
    );
    differs(new.admin != started.admin, "admin.address");
    differs(new.log != started.log, "log");
    differs(new.store != started.store, "store");
    differs(
        b.max_connections != a.max_connections,
        "limits.max_connections",
    );
    differs(b.max_in_flight != a.max_in_flight, "limits.max_in_flight");
    differs(
        b.header_read_timeout != a.header_read_timeout,
        "limits.header_read_timeout",
    );
    differs(b.idle_timeout != a.idle_timeout, "limits.idle_timeout");
    differs(
        b.max_headers > a.max_headers + HEADER_SLACK,
        "limits.max_headers (raised past the parser's cap set at start)",
    );
    let head = |l: &crate::config::Limits| l.max_header_bytes + l.max_uri_length;
    differs(
        head(b) > 2 * head(a),
        "limits.max_header_bytes + max_uri_length (raised past twice their start value)",
    );
    keys
}

/// Connection builders: by detection (plain listener, or TLS without ALPN),
/// and one per protocol a TLS client negotiated with ALPN.
struct Builders {
    auto: auto::Builder<TokioExecutor>,
    http1: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
}

impl Builders {
    fn new(config: &Config) -> Self {
        let auto = http_builder(config);
        Self {
            http1: auto.clone().http1_only(),
            http2: auto.clone().http2_only(),
            auto,
        }
    }

    fn for_alpn(&self, protocol: Option<&[u8]>) -> &auto::Builder<TokioExecutor> {
        match protocol {
            Some(b"h2") => &self.http2,
            Some(b"http/1.1") => &self.http1,
            _ => &self.auto,
        }
    }
}

/// How many header fields over `limits.max_headers` still reach scopegate's
/// own 431 rather than the parser's bare one.
const HEADER_SLACK: usize = 16;

fn http_builder(config: &Config) -> auto::Builder<TokioExecutor> {
    let l = &config.limits;
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        // One buffer, one write per response (as toward the upstream).
        .writev(false)
        .header_read_timeout(l.header_read_timeout)
        // Our own checks answer a head over the limits with a JSON 431/414
        // (logged and counted); hyper's caps, above the limits, are only
        // the backstop (a bare 431 and a closed connection), so that a head
        // just over a limit still gets the documented answer. Measured
        // cost: past 100 fields hyper parses into heap slots instead of a
        // stack array, about 440 instructions per request (callgrind), with
        // the default limit of 100; accepted for the logged JSON answer.
        .max_headers(l.max_headers.saturating_add(HEADER_SLACK))
        .max_buf_size(
            (l.max_header_bytes + l.max_uri_length)
                .saturating_mul(2)
                .saturating_add(1024)
                .max(8192),
        );
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(128)
        .max_header_list_size(
            u32::try_from(l.max_header_bytes + l.max_uri_length).unwrap_or(u32::MAX),
        )
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10));
    b
}

/// The next connection of `listener`. A failed accept (EMFILE and friends)
/// is retried after a pause instead of in a busy loop. Cancel-safe.
async fn accept(listener: &TcpListener, name: &'static str) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(x) => return x,
            Err(e) => {
                tracing::warn!(listener = name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Accepts connections for `proxy`. Connection settings come from the
/// configuration the listener started with.
async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    config: Arc<Config>,
    proxy: Arc<Proxy>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<Phase>,
) {
    let cap = config.limits.max_connections;
    let permits = Arc::new(Semaphore::new(cap));
    let builders = Arc::new(Builders::new(&config));
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => p.expect("semaphore is never closed"),
            _ = stop.changed() => break,
        };
        let (stream, peer) = tokio::select! {
            x = accept(&listener, "public") => x,
            _ = stop.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let (builders, proxy, stop) = (Arc::clone(&builders), Arc::clone(&proxy), stop.clone());
        let timeouts = (
            config.limits.idle_timeout,
            config.limits.header_read_timeout,
        );
        let counted = ConnectionGuard::new(&metrics);
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => {
                    let b = &builders.auto;
                    serve_connection(stream, peer, b, proxy, timeouts, stop, ClientScheme("http"))
                        .await
                }
                Some(acceptor) => {
                    if let Some(stream) =
                        handshake(&acceptor, stream, peer, timeouts.1, &stop).await
                    {
                        let b = builders.for_alpn(stream.get_ref().1.alpn_protocol());
                        let https = ClientScheme("https");
                        serve_connection(stream, peer, b, proxy, timeouts, stop, https).await
                    }
                }
            }
            drop(counted);
            drop(permit);
        });
    }
    drop(listener);
    // Draining: wait until every connection has returned its permit, or halt.
    let all = u32::try_from(cap).unwrap_or(u32::MAX);
    tokio::select! {
        _ = permits.acquire_many(all) => {}
        _ = wait_for(&mut stop, Phase::Halt) => {
            tracing::warn!(open = cap - permits.available_permits(), "drain deadline passed; closing remaining connections");
        }
    }
}

async fn wait_for(stop: &mut watch::Receiver<Phase>, phase: Phase) {
    let _ = stop.wait_for(|p| *p == phase).await;
}

/// The TLS handshake of a new connection, within the header-read timeout;
/// abandoned when shutdown begins (no request is in flight yet).
async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    limit: Duration,
    stop: &watch::Receiver<Phase>,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let mut stop = stop.clone();
    tokio::select! {
        r = tokio::time::timeout(limit, acceptor.accept(stream)) => match r {
            Ok(Ok(s)) => Some(s),
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                None
            }
        },
        _ = stop.wait_for(|p| *p != Phase::Serving) => None,
    }
}

async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    builder: &auto::Builder<TokioExecutor>,
    proxy: Arc<Proxy>,
    (idle, header_read): (Duration, Duration),
    mut stop: watch::Receiver<Phase>,
    scheme: ClientScheme,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity {
        in_flight: AtomicUsize::new(0),
        last: AtomicU64::new(0),
        spoke: AtomicBool::new(false),
        epoch: Instant::now(),
    });
    let act = Arc::clone(&activity);
    let service = service_fn(move |mut req: Request<Incoming>| {
        let proxy = Arc::clone(&proxy);
        let guard = InFlight::begin(&act);
        req.extensions_mut().insert(scheme);
        async move {
            let mut resp = proxy.handle(req, peer).await;
            resp.body_mut().on_done(Box::new(move || drop(guard)));
            Ok::<_, Infallible>(resp)
        }
    });
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut draining = *stop.borrow() != Phase::Serving;
    if draining {
        conn.as_mut().graceful_shutdown();
    }
    // After an idle close was started: the moment it is forced. A polite
    // close waits for the peer (an h2 GOAWAY and its PING), and a peer that
    // never answers must not keep the connection.
    let mut close_by: Option<Instant> = None;
    loop {
        tokio::select! {
            // The connection first: nearly every wake-up is its socket, and
            // a fixed order needs no random draw per poll.
            biased;
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.changed() => {
                match *stop.borrow_and_update() {
                    Phase::Halt => return,
                    Phase::Draining if !draining => {
                        draining = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    _ => {}
                }
            }
            _ = tokio::time::sleep_until(activity.idle_deadline(idle, header_read)), if !draining => {
                let quiet = activity.in_flight.load(Ordering::SeqCst) == 0;
                if quiet && Instant::now() >= activity.idle_deadline(idle, header_read) {
                    draining = true;
                    close_by = Some(Instant::now() + header_read);
                    conn.as_mut().graceful_shutdown();
                } else if !quiet {
                    activity.touch();
                }
            }
            _ = tokio::time::sleep_until(close_by.unwrap_or_else(Instant::now)), if close_by.is_some() => {
                if activity.in_flight.load(Ordering::SeqCst) == 0 {
                    tracing::debug!(%peer, "closing an idle connection that did not close");
                    return;
                }
                close_by = Some(Instant::now() + header_read);
            }
        }
    }
}

/// Connections the admin listener serves at once; more wait to be accepted.
pub const ADMIN_MAX_CONNECTIONS: usize = 64;

/// What the admin listener serves from.
struct Admin {
    ready: Arc<AtomicBool>,
    config: SharedConfig,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
}

/// The admin listener: `/healthz` (alive), `/readyz` (accepting traffic),
/// `/metrics`, and `POST /sessions/revoke?business=<id>` (ends every session
/// of a business) or `?company=<id>` (every SSO session of a company).
/// With `admin.token`, `/metrics` and `/sessions/revoke` require it as a
/// bearer token (the probes stay open); without, it is for a private network.
async fn admin_loop(listener: TcpListener, admin: Admin, mut stop: watch::Receiver<Phase>) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // A client that never finishes its head, or keeps a connection open
    // idle, is let go (the public listener's default, 10 s).
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(crate::config::raw::DEFAULT_HEADER_READ_TIMEOUT.0);
    let builder = Arc::new(builder);
    let admin = Arc::new(admin);
    // Probes and a scraper need few connections: a flood of them waits in
    // the backlog instead of taking the file descriptors the public
    // listener needs.
    let permits = Arc::new(Semaphore::new(ADMIN_MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => p.expect("semaphore is never closed"),
            _ = wait_for(&mut stop, Phase::Halt) => return,
        };
        let stream = tokio::select! {
            (s, _) = accept(&listener, "admin") => s,
            _ = wait_for(&mut stop, Phase::Halt) => return,
        };
        let (builder, admin) = (Arc::clone(&builder), Arc::clone(&admin));
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req: Request<Incoming>| {
                let admin = Arc::clone(&admin);
                async move { Ok::<_, Infallible>(admin_serve(&admin, &req).await) }
            });
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Whether `req` may use a guarded admin endpoint: always without
/// `admin.token`, else only with `Authorization: Bearer <token>`. The
/// comparison is of SHA-256 digests in constant time, so neither the
/// token's bytes nor its length show in the timing.
fn admin_allows(config: &Config, req: &Request<Incoming>) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let Some(token) = &config.admin_token else {
        return true;
    };
    let Some(given) = crate::auth::session::bearer(req.headers()) else {
        return false;
    };
    Sha256::digest(given.as_bytes())
        .ct_eq(&Sha256::digest(token.expose()))
        .into()
}

/// The one refusal of a guarded admin endpoint, whatever was wrong.
fn admin_unauthorized() -> Response<ResponseBody> {
    let mut resp = ResponseBody::json(
        StatusCode::UNAUTHORIZED,
        r#"{"error":{"code":"unauthorized","message":"this admin endpoint needs the admin token"}}"#,
    );
    resp.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer"),
    );
    resp
}

/// The admin listener's endpoints.
#[derive(Clone, Copy)]
enum Endpoint {
    Healthz,
    Readyz,
    Metrics,
    Revoke,
}

impl Endpoint {
    fn of(path: &str) -> Option<Self> {
        Some(match path {
            "/healthz" => Self::Healthz,
            "/readyz" => Self::Readyz,
            "/metrics" => Self::Metrics,
            "/sessions/revoke" => Self::Revoke,
            _ => return None,
        })
    }

    /// Whether `admin.token`, when set, is needed (the probes stay open).
    fn guarded(self) -> bool {
        matches!(self, Self::Metrics | Self::Revoke)
    }

    /// The methods it answers: the probes and the scraper only read, so
    /// one that POSTs is told so, not answered as if it had asked.
    fn methods(self) -> &'static [http::Method] {
        const READ: &[http::Method] = &[http::Method::GET, http::Method::HEAD];
        const WRITE: &[http::Method] = &[http::Method::POST];
        match self {
            Self::Revoke => WRITE,
            _ => READ,
        }
    }
}

/// One admin request: an unknown path is 404, then the token (for a
/// guarded endpoint), then the method, then the endpoint itself.
async fn admin_serve(admin: &Admin, req: &Request<Incoming>) -> Response<ResponseBody> {
    let Some(endpoint) = Endpoint::of(req.uri().path()) else {
        return ResponseBody::json(
            StatusCode::NOT_FOUND,
            r#"{"error":{"code":"not_found","message":"no such admin endpoint"}}"#,
        );
    };
    if endpoint.guarded() && !admin_allows(&admin.config.load(), req) {
        return admin_unauthorized();
    }
    if !endpoint.methods().contains(req.method()) {
        return GateError::MethodNotAllowed(endpoint.methods().to_vec()).into_response();
    }
    match endpoint {
        Endpoint::Healthz => ResponseBody::json(StatusCode::OK, r#"{"status":"ok"}"#),
        Endpoint::Readyz if admin.ready.load(Ordering::SeqCst) => {
            ResponseBody::json(StatusCode::OK, r#"{"status":"ready"}"#)
        }
        Endpoint::Readyz => {
            ResponseBody::json(StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"draining"}"#)
        }
        Endpoint::Metrics => {
            let mut resp = Response::new(ResponseBody::full(admin.metrics.render()));
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            resp
        }
        Endpoint::Revoke => revoke(admin, req).await,
    }
}

/// `POST /sessions/revoke?business=<id>` or `?company=<id>`.
async fn revoke(admin: &Admin, req: &Request<Incoming>) -> Response<ResponseBody> {
    let param = |name: &str| {
        req.uri().query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        })
    };
    let config = admin.config.load();
    let auth = &config.auth;
    // SSO sessions are revoked per company, under their own generation.
    let known = match (param("business"), param("company")) {
        (Some(b), None) => auth.sessions.by_id(&b).is_some().then_some(b),
        (None, Some(c)) => auth.sso.company(&c).is_some().then(|| format!("sso:{c}")),
        _ => None,
    };
    let Some(business) = known.as_deref() else {
        return ResponseBody::json(
            StatusCode::NOT_FOUND,
            r#"{"error":{"code":"unknown_business","message":"no such business or company"}}"#,
        );
    };
    match admin.store.revoke_business(business).await {
        Ok(generation) => {
            tracing::info!(business, generation, "revoked every session of a business");
            ResponseBody::json(
                StatusCode::OK,
                serde_json::json!({"revoked": business, "generation": generation}).to_string(),
            )
        }
        Err(_) => GateError::StoreUnavailable.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        Config::from_toml(&format!(
            r#"
[listen]
address = "127.0.0.1:0"
drain_timeout = "5s"

[[upstream]]
name = "backend"
url = "http://127.0.0.1:1"

[[route]]
name = "open"
path = "/open"
auth = ["public"]
upstream = "backend"

{extra}
"#
        ))
        .unwrap()
    }

    /// What a reload is told waits for a restart: the connection-level
    /// limits, drain and log settings by name; the request-level limits
    /// apply at once and are not listed, unless raised past the parser's caps.
    #[test]
    fn a_reload_names_exactly_the_settings_bound_at_start() {
        let start = config("[limits]\nmax_body_bytes = \"1MiB\"\n");
        assert!(bound_at_start(&start, &config("")).is_empty());
        let request_level = config(
            "[limits]\nmax_body_bytes = \"100\"\nrequest_timeout = \"5s\"\nmax_headers = 110\nmax_header_bytes = \"20KiB\"\n",
        );
        assert!(bound_at_start(&start, &request_level).is_empty());
        let bound = config(
            "[limits]\nmax_connections = 10\nidle_timeout = \"5s\"\nmax_headers = 500\n[log]\nlevel = \"warn\"\n",
        );
        let mut drained = config("");
        drained.drain_timeout += Duration::from_secs(1);
        assert_eq!(
            bound_at_start(&start, &bound),
            [
                "log",
                "limits.max_connections",
                "limits.idle_timeout",
                "limits.max_headers (raised past the parser's cap set at start)"
            ]
        );
        assert_eq!(bound_at_start(&start, &drained), ["listen.drain_timeout"]);
    }
}
