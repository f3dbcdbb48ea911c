//! Prometheus metrics, served by the admin listener at `GET /metrics` in the
//! OpenMetrics text format. One registry per running scopegate (so tests and
//! embedders with several instances never mix counts).
//!
//! Labels are bounded by the configuration (route names, schemes, upstream
//! names) or by code (outcomes, error kinds): no client input becomes a label.

use std::sync::{
    atomic::{AtomicI64, AtomicU64},
    Arc,
};

use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet, EncodeLabelValue, LabelValueEncoder},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
        info::Info,
    },
    registry::Registry,
};

/// A label value: a name fixed in the code, or one from the configuration
/// (route, upstream) shared with it, so counting a request allocates nothing.
/// Equal by content, whichever form it has.
#[derive(Clone, Debug)]
pub enum Label {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Label {
    pub fn as_str(&self) -> &str {
        match self {
            Label::Static(s) => s,
            Label::Shared(s) => s,
        }
    }
}

impl PartialEq for Label {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Label {}

impl std::hash::Hash for Label {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl From<&'static str> for Label {
    fn from(s: &'static str) -> Self {
        Label::Static(s)
    }
}

impl From<Arc<str>> for Label {
    fn from(s: Arc<str>) -> Self {
        Label::Shared(s)
    }
}

impl EncodeLabelValue for Label {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The matched route, or `-`.
    pub route: Label,
    /// The scheme that decided (`signed-search`, ..., `public`), or `-`.
    pub scheme: Label,
    /// `forwarded`, `answered`, or the error code (`unauthorized`, ...).
    pub outcome: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SchemeLabels {
    pub scheme: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    pub upstream: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamErrorLabels {
    pub upstream: Label,
    /// `unavailable`, `timeout`, `connect_timeout`, `protocol`.
    pub kind: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreLabels {
    /// `claim_once`, `release`, `session_put`, `session_touch`, ...
    pub op: Label,
    /// `ok` or `error`.
    pub result: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `ok` or `error`.
    pub result: Label,
}

/// Every metric scopegate exports.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub verify_seconds: Family<SchemeLabels, Histogram>,
    pub upstream_seconds: Family<UpstreamLabels, Histogram>,
    pub upstream_errors: Family<UpstreamErrorLabels, Counter>,
    pub store_errors: Counter,
    pub store_operations: Family<StoreLabels, Counter>,
    pub open_connections: Gauge<i64, AtomicI64>,
    pub reloads: Family<ResultLabels, Counter>,
    /// 1 when the last reload was applied, 0 when it was refused.
    pub last_reload_ok: Gauge<i64, AtomicI64>,
    pub last_reload_seconds: Gauge<f64, AtomicU64>,
    /// With `store.local_cache`: 1 while the cache is subscribed to
    /// invalidations (and so serves), 0 while it is off.
    pub local_cache_live: Option<Gauge<i64, AtomicI64>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn latency_histogram() -> Histogram {
    // 10 µs .. ~10 s.
    Histogram::new(exponential_buckets(0.000_01, 2.0, 20))
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Self::build(false)
    }

    /// The metrics of a scopegate running on `store`: with its local cache,
    /// they include whether that cache is live.
    pub fn for_store(store: &crate::store::StoreSettings) -> Arc<Self> {
        Self::build(matches!(
            store,
            crate::store::StoreSettings::Redis {
                local_cache: Some(_),
                ..
            }
        ))
    }

    fn build(local_cache: bool) -> Arc<Self> {
        let mut registry = Registry::with_prefix("scopegate");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests by route, deciding scheme and outcome",
            requests.clone(),
        );
        let verify_seconds =
            Family::<SchemeLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        registry.register(
            "verify_seconds",
            "Time to verify a credential, by scheme",
            verify_seconds.clone(),
        );
        let upstream_seconds = Family::<UpstreamLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> _,
        );
        registry.register(
            "upstream_seconds",
            "Time from sending a request upstream to its response head",
            upstream_seconds.clone(),
        );
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Upstream failures by kind",
            upstream_errors.clone(),
        );
        let store_errors = Counter::default();
        registry.register(
            "store_errors",
            "Requests refused because the store did not answer",
            store_errors.clone(),
        );
        let store_operations = Family::<StoreLabels, Counter>::default();
        registry.register(
            "store_operations",
            "Store operations (single-use marks, sessions, revocations) by result",
            store_operations.clone(),
        );
        let open_connections = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "open_connections",
            "Client connections open on the public listener",
            open_connections.clone(),
        );
        let reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration reloads by result",
            reloads.clone(),
        );
        let last_reload_ok = Gauge::<i64, AtomicI64>::default();
        last_reload_ok.set(1);
        registry.register(
            "config_last_reload_ok",
            "1 when the last reload was applied (or none was tried), 0 when it was refused",
            last_reload_ok.clone(),
        );
        let last_reload_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "config_last_reload_timestamp_seconds",
            "Unix time of the last reload attempt",
            last_reload_seconds.clone(),
        );
        let local_cache_live = local_cache.then(|| {
            let g = Gauge::<i64, AtomicI64>::default();
            registry.register(
                "store_local_cache_live",
                "1 while the local session cache is subscribed to invalidations and serves, 0 while it is off",
                g.clone(),
            );
            g
        });
        registry.register(
            "build",
            "The running build",
            Info::new(vec![(
                "version".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            )]),
        );
        Arc::new(Self {
            registry,
            requests,
            verify_seconds,
            upstream_seconds,
            upstream_errors,
            store_errors,
            store_operations,
            open_connections,
            reloads,
            last_reload_ok,
            last_reload_seconds,
            local_cache_live,
        })
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    pub fn request(&self, route: Label, scheme: &'static str, outcome: &'static str) {
        self.requests
            .get_or_create(&RequestLabels {
                route,
                scheme: scheme.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    pub fn store_operation(&self, op: &'static str, ok: bool) {
        self.store_operations
            .get_or_create(&StoreLabels {
                op: op.into(),
                result: if ok { "ok" } else { "error" }.into(),
            })
            .inc();
    }

    pub fn reload(&self, ok: bool, unix_seconds: f64) {
        self.reloads
            .get_or_create(&ResultLabels {
                result: if ok { "ok" } else { "error" }.into(),
            })
            .inc();
        self.last_reload_ok.set(i64::from(ok));
        self.last_reload_seconds.set(unix_seconds);
    }
}

/// Counts a client connection for as long as it lives.
pub struct ConnectionGuard(Arc<Metrics>);

impl ConnectionGuard {
    pub fn new(m: &Arc<Metrics>) -> Self {
        m.open_connections.inc();
        Self(Arc::clone(m))
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.open_connections.dec();
    }
}
