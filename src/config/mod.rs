//! Configuration: load (TOML file + `SCOPEGATE_*` environment), then validate
//! into the compiled [`Config`] the request path trusts.
//!
//! Validation is pure and reports every problem at once, each with the key path
//! that caused it (`route[3].upstream: no upstream named "legacy"`).
//!
//! Environment overrides use `__` for nesting: `SCOPEGATE_LISTEN__ADDRESS`,
//! `SCOPEGATE_LIMITS__MAX_BODY_BYTES`, `SCOPEGATE_LOG__FORMAT`. Variables
//! without `__` are not overrides, so secrets referenced by `*_env` may be
//! named `SCOPEGATE_SOMETHING` freely.

use std::{fmt, net::SocketAddr, path::Path, sync::Arc, time::Duration};

use figment::{
    providers::{Env, Format, Toml},
    Figment,
};
use http::{uri::Authority, HeaderName, HeaderValue, Method, Uri};
use ipnet::IpNet;

use crate::{
    auth::{AuthContext, AuthPolicy, Scheme, ScopeValue},
    routes::{Pattern, Route, RouteTable},
    scope::HeaderPolicy,
    secret::SecretSource,
    upstream::{Upstream, UpstreamSettings},
};

mod api_key;
pub mod raw;
mod sso;
mod timekit;
mod tls;
pub mod units;

use raw::{RawConfig, RawUpstreamCredential};

/// One problem found in a configuration, with the key path that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem of a configuration that cannot be used.
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    fn one(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            problems: vec![Problem {
                path: path.into(),
                message: message.into(),
            }],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub max_uri_length: usize,
    pub max_body_bytes: u64,
    pub max_connections: usize,
    /// Requests handled at once; past it, 503 with `Retry-After` at once.
    pub max_in_flight: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
}

/// A validated configuration. Nothing in it needs re-checking on the request path.
#[derive(Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// `[listen.tls]`: the public listener speaks only TLS.
    pub tls: Option<crate::tls::ListenTls>,
    pub drain_timeout: Duration,
    pub admin: Option<SocketAddr>,
    /// `admin.token*`: what the admin listener's `/metrics` and
    /// `/sessions/revoke` require as `Authorization: Bearer`; reloadable.
    pub admin_token: Option<crate::secret::Secret>,
    pub log: LogSettings,
    pub limits: Limits,
    pub headers: Arc<HeaderPolicy>,
    pub upstreams: Vec<Upstream>,
    pub routes: RouteTable,
    pub auth: AuthContext,
    pub store: crate::store::StoreSettings,
    /// Accepted but discouraged settings (inline secrets, an empty route table).
    pub warnings: Vec<String>,
    /// Secret files the configuration read (`*_file`): a change to one is a
    /// change to the configuration, for the reload watcher.
    pub files: Vec<std::path::PathBuf>,
}

impl Config {
    /// Loads a file plus `SCOPEGATE_*__*` environment overrides.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        if !path.exists() {
            return Err(ConfigError::one(
                "",
                format!("config file {} does not exist", path.display()),
            ));
        }
        let figment = Figment::new().merge(Toml::file_exact(path)).merge(
            Env::prefixed("SCOPEGATE_")
                .filter(|k| k.as_str().contains("__"))
                .split("__"),
        );
        let base = path.parent().map(Path::to_path_buf);
        Self::from_figment(figment, base)
    }

    /// Loads from TOML text only (no environment); for tests and tools.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Self::from_figment(Figment::new().merge(Toml::string(text)), None)
    }

    /// `base`: the config file's directory, against which relative `*_file`
    /// paths are resolved (the working directory when `None`).
    fn from_figment(f: Figment, base: Option<std::path::PathBuf>) -> Result<Self, ConfigError> {
        let named = |e| name_env_sources(&f, e);
        compile(extract(&f).map_err(named)?, base).map_err(named)
    }
}

/// Says which variable set a value that is wrong, when one did: an operator
/// reading `limits.max_body_bytes: ...` would otherwise look in the file.
fn name_env_sources(f: &Figment, mut err: ConfigError) -> ConfigError {
    for p in &mut err.problems {
        let Ok(value) = f.find_value(&p.path) else {
            continue;
        };
        let from_env = f
            .get_metadata(value.tag())
            .is_some_and(|m| m.name.contains("environment"));
        if from_env {
            let var = p.path.to_ascii_uppercase().replace('.', "__");
            p.message.push_str(&format!(" (set by SCOPEGATE_{var})"));
        }
    }
    err
}

/// Deserializes table by table and array element by array element, so that a
/// file with several typos reports all of them (serde stops at the first).
fn extract(f: &Figment) -> Result<RawConfig, ConfigError> {
    use figment::value::Value;
    use std::collections::BTreeMap;

    let top: BTreeMap<String, Value> = f.extract().map_err(|e| figment_problems(e, ""))?;
    let mut raw = RawConfig::default();
    let mut problems = Vec::new();
    fn one<T: serde::de::DeserializeOwned>(
        v: &Value,
        path: &str,
        problems: &mut Vec<Problem>,
    ) -> Option<T> {
        v.deserialize()
            .map_err(|e| problems.extend(figment_problems(e, path).problems))
            .ok()
    }
    fn many<T: serde::de::DeserializeOwned>(
        v: &Value,
        key: &str,
        problems: &mut Vec<Problem>,
    ) -> Vec<T> {
        match v.as_array() {
            Some(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| one(item, &format!("{key}[{i}]"), problems))
                .collect(),
            None => {
                problems.push(Problem {
                    path: key.into(),
                    message: format!("must be an array of tables ([[{key}]])"),
                });
                Vec::new()
            }
        }
    }
    for (key, value) in &top {
        match key.as_str() {
            "listen" => raw.listen = one(value, key, &mut problems).unwrap_or_default(),
            "admin" => raw.admin = one(value, key, &mut problems),
            "log" => raw.log = one(value, key, &mut problems).unwrap_or_default(),
            "limits" => raw.limits = one(value, key, &mut problems).unwrap_or_default(),
            "proxy" => raw.proxy = one(value, key, &mut problems).unwrap_or_default(),
            "upstream" => raw.upstream = many(value, key, &mut problems),
            "route" => raw.route = many(value, key, &mut problems),
            "app" => raw.app = many(value, key, &mut problems),
            "signed_search" => {
                raw.signed_search = one(value, key, &mut problems).unwrap_or_default()
            }
            "action_links" => {
                raw.action_links = one(value, key, &mut problems).unwrap_or_default()
            }
            "action" => raw.action = many(value, key, &mut problems),
            "store" => raw.store = one(value, key, &mut problems).unwrap_or_default(),
            "session" => raw.session = one(value, key, &mut problems).unwrap_or_default(),
            "business" => raw.business = many(value, key, &mut problems),
            "sso" => raw.sso = one(value, key, &mut problems).unwrap_or_default(),
            "failures" => raw.failures = one(value, key, &mut problems).unwrap_or_default(),
            "sso_company" => raw.sso_company = many(value, key, &mut problems),
            "api_keys" => raw.api_keys = one(value, key, &mut problems).unwrap_or_default(),
            "application" => raw.application = many(value, key, &mut problems),
            "api_key" => raw.api_key = many(value, key, &mut problems),
            _ => problems.push(Problem {
                path: key.clone(),
                message:
                    "unknown key (expected listen, admin, log, limits, proxy, upstream, route, app, signed_search, action_links, action, store, session, business, sso, sso_company, api_keys, application, api_key or failures)"
                        .into(),
            }),
        }
    }
    if problems.is_empty() {
        Ok(raw)
    } else {
        Err(ConfigError { problems })
    }
}

fn figment_problems(err: figment::Error, base: &str) -> ConfigError {
    let problems = err
        .into_iter()
        .map(|e| {
            let mut path = base.to_string();
            for part in &e.path {
                if part.bytes().all(|b| b.is_ascii_digit()) {
                    path.push_str(&format!("[{part}]"));
                } else {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(part);
                }
            }
            // The kind alone: figment's Display repeats the path and profile.
            let message = match &e.kind {
                figment::error::Kind::UnknownField(field, expected) => {
                    format!(
                        "unknown key {field:?} (expected one of: {})",
                        expected.join(", ")
                    )
                }
                // A syntax error's message quotes the offending line, which
                // may hold an inline secret: keep the position and the reason.
                figment::error::Kind::Message(m) if m.contains('|') => {
                    let lines: Vec<&str> = m.lines().collect();
                    let position = lines.first().copied().unwrap_or("syntax error");
                    let reason = lines
                        .iter()
                        .rev()
                        .find(|l| !l.trim().is_empty() && !l.contains('|'))
                        .copied()
                        .filter(|r| *r != position)
                        .unwrap_or("");
                    if reason.is_empty() {
                        position.to_string()
                    } else {
                        format!("{position}: {reason}")
                    }
                }
                kind => kind.to_string(),
            };
            Problem { path, message }
        })
        .collect();
    ConfigError { problems }
}

/// Collects problems while validating, so one run reports them all.
#[derive(Default)]
struct Checker {
    base: Option<std::path::PathBuf>,
    problems: Vec<Problem>,
    warnings: Vec<String>,
    files: Vec<std::path::PathBuf>,
}

impl Checker {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    fn addr(&mut self, path: &str, v: &str) -> Option<SocketAddr> {
        v.parse()
            .map_err(|_| {
                self.err(
                    path,
                    format!("invalid socket address {v:?} (expected e.g. \"127.0.0.1:8080\")"),
                )
            })
            .ok()
    }

    fn header_name(&mut self, path: &str, v: &str) -> Option<HeaderName> {
        HeaderName::from_bytes(v.as_bytes())
            .map_err(|_| self.err(path, format!("invalid header name {v:?}")))
            .ok()
    }

    /// An upper-case HTTP method such as `GET`.
    fn method(&mut self, path: &str, m: &str) -> Option<Method> {
        match Method::from_bytes(m.as_bytes()) {
            Ok(parsed) if m.bytes().all(|b| b.is_ascii_uppercase()) => Some(parsed),
            _ => {
                self.err(
                    path,
                    format!("invalid method {m:?} (upper-case, e.g. \"GET\")"),
                );
                None
            }
        }
    }

    fn nonzero<T: PartialEq + Default + Copy>(&mut self, path: &str, v: T) -> T {
        if v == T::default() {
            self.err(path, "must be greater than zero");
        }
        v
    }

    /// Resolves a `<field>` / `<field>_env` / `<field>_file` triple.
    fn secret(
        &mut self,
        path: &str,
        field: &str,
        inline: &Option<String>,
        env: &Option<String>,
        file: &Option<std::path::PathBuf>,
    ) -> Option<crate::secret::Secret> {
        let resolved: std::path::PathBuf;
        let source = match (inline, env, file) {
            (Some(v), None, None) => {
                self.warnings.push(format!(
                    "{path}.{field}: secret written inline in the config; prefer {field}_env or {field}_file"
                ));
                SecretSource::Inline(v)
            }
            (None, Some(e), None) => SecretSource::Env(e),
            (None, None, Some(p)) => {
                resolved = match &self.base {
                    Some(b) if p.is_relative() => b.join(p),
                    _ => p.clone(),
                };
                self.files.push(resolved.clone());
                SecretSource::File(&resolved)
            }
            (None, None, None) => {
                self.err(
                    path,
                    format!("one of {field}_env, {field}_file or {field} is required"),
                );
                return None;
            }
            _ => {
                self.err(
                    path,
                    format!("give only one of {field}_env, {field}_file or {field}"),
                );
                return None;
            }
        };
        let key = match source {
            SecretSource::Inline(_) => field.to_string(),
            SecretSource::Env(_) => format!("{field}_env"),
            SecretSource::File(_) => format!("{field}_file"),
        };
        source
            .resolve()
            .map_err(|e| self.err(format!("{path}.{key}"), e.to_string()))
            .ok()
    }
}

fn compile(raw: RawConfig, base: Option<std::path::PathBuf>) -> Result<Config, ConfigError> {
    let mut c = Checker {
        base,
        ..Checker::default()
    };

    let listen = c.addr("listen.address", &raw.listen.address);
    let listen_tls = tls::compile_listen(&mut c, raw.listen.tls.as_ref());
    let admin = raw
        .admin
        .as_ref()
        .and_then(|a| c.addr("admin.address", &a.address));
    if let (Some(l), Some(a)) = (listen, admin) {
        if l == a && l.port() != 0 {
            c.err("admin.address", "must differ from listen.address");
        }
    }
    let admin_token = raw
        .admin
        .as_ref()
        .and_then(|a| compile_admin_token(&mut c, a, admin));

    let format = match raw.log.format.as_str() {
        "human" => LogFormat::Human,
        "json" => LogFormat::Json,
        other => {
            c.err(
                "log.format",
                format!("unknown format {other:?} (expected \"human\" or \"json\")"),
            );
            LogFormat::Human
        }
    };
    if tracing_subscriber::EnvFilter::try_new(&raw.log.level).is_err() {
        c.err("log.level", format!("invalid filter {:?}", raw.log.level));
    }

    let l = &raw.limits;
    let limits = Limits {
        max_header_bytes: c.nonzero("limits.max_header_bytes", l.max_header_bytes.0) as usize,
        max_headers: c.nonzero("limits.max_headers", l.max_headers),
        max_uri_length: c.nonzero("limits.max_uri_length", l.max_uri_length.0) as usize,
        max_body_bytes: l.max_body_bytes.0,
        max_connections: c.nonzero("limits.max_connections", l.max_connections),
        max_in_flight: c.nonzero("limits.max_in_flight", l.max_in_flight),
        header_read_timeout: c.nonzero("limits.header_read_timeout", l.header_read_timeout.0),
        idle_timeout: c.nonzero("limits.idle_timeout", l.idle_timeout.0),
        request_timeout: c.nonzero("limits.request_timeout", l.request_timeout.0),
    };
    if limits.max_connections > u32::MAX as usize / 2 {
        c.err("limits.max_connections", "is unreasonably large");
    }
    if limits.max_uri_length > 65_000 {
        c.err(
            "limits.max_uri_length",
            "must be at most 65000 bytes (the HTTP parser's own cap)",
        );
    }

    let headers = compile_headers(&mut c, &raw.proxy);
    let upstreams = compile_upstreams(&mut c, &raw.upstream);
    let routes = compile_routes(&mut c, &raw.route, &raw.upstream);
    let mut auth = AuthContext {
        apps: timekit::compile_apps(&mut c, &raw.app),
        leeway: raw.signed_search.leeway.0.as_secs(),
        actions: timekit::compile_actions(&mut c, &raw.action_links, &raw.action),
        sessions: compile_sessions(&mut c, &raw.session, &raw.business),
        sso: sso::compile(&mut c, &raw.sso, &raw.sso_company),
        api_keys: api_key::compile(&mut c, &raw.api_keys, &raw.application, &raw.api_key),
        failures: None,
    };
    needs_configured(
        &mut c,
        &raw,
        "api-key",
        !raw.api_key.is_empty(),
        "[[api_key]]",
    );
    needs_configured(
        &mut c,
        &raw,
        "sso",
        !raw.sso_company.is_empty(),
        "[[sso_company]]",
    );
    needs_configured(
        &mut c,
        &raw,
        "session",
        !raw.business.is_empty(),
        "[[business]]",
    );
    timekit::check_routes(&mut c, &raw, &auth);
    check_session_routes(&mut c, routes.as_ref(), &auth.sessions);
    if let Some(routes) = &routes {
        timekit::check_link_path(&mut c, routes, &auth);
    }
    let store = compile_store(&mut c, &raw.store);
    check_local_cache(&mut c, &store, &raw);
    auth.failures = compile_failures(&mut c, &raw.failures, &store);
    if matches!(store, crate::store::StoreSettings::Memory { .. })
        && auth.actions.actions.iter().any(|a| a.single_use)
    {
        c.warnings.push(
            "store.backend = \"memory\": single-use marks are per process; a restart or another replica accepts a used link again (use \"redis\" with several replicas)".into(),
        );
    }

    if raw.route.is_empty() {
        c.warnings
            .push("route: no routes are configured; every request will be refused".into());
    }

    if !c.problems.is_empty() {
        return Err(ConfigError {
            problems: c.problems,
        });
    }
    let (Some(listen), Some(headers), Some(routes)) = (listen, headers, routes) else {
        unreachable!("every None above recorded a problem");
    };
    Ok(Config {
        listen,
        tls: listen_tls,
        drain_timeout: raw.listen.drain_timeout.0,
        admin,
        admin_token,
        log: LogSettings {
            format,
            level: raw.log.level,
        },
        limits,
        headers: Arc::new(headers),
        upstreams,
        routes,
        auth,
        store,
        warnings: c.warnings,
        files: c.files,
    })
}

/// Routes that list `scheme` need something configured to verify against.
fn needs_configured(c: &mut Checker, raw: &RawConfig, scheme: &str, configured: bool, what: &str) {
    for (i, r) in raw.route.iter().enumerate() {
        if !configured && r.auth.iter().any(|a| a == scheme) {
            c.err(
                format!("route[{i}].auth"),
                format!("{scheme} needs at least one {what}"),
            );
        }
    }
}

/// Routes at or over the session handshake path.
fn check_session_routes(
    c: &mut Checker,
    routes: Option<&RouteTable>,
    sessions: &crate::auth::session::Sessions,
) {
    let (Some(routes), true) = (routes, sessions.enabled()) else {
        return;
    };
    let path = &sessions.path;
    for r in routes.routes() {
        if r.pattern.as_str() == path.as_str() {
            c.err(
                "session.path",
                format!(
                    "{path:?} is the session handshake, so route {:?} at the same path would never be reached",
                    &*r.name
                ),
            );
        } else if r.pattern.matches(path).is_some() {
            c.warnings.push(format!(
                "session.path: requests to {path:?} go to the session handshake, not to route {:?}",
                &*r.name
            ));
        }
    }
}

fn compile_sessions(
    c: &mut Checker,
    s: &raw::RawSession,
    raw: &[raw::RawBusiness],
) -> crate::auth::session::Sessions {
    use crate::auth::session::{Business, SignatureMode};
    let mut by_api_key = std::collections::HashMap::new();
    for (i, b) in raw.iter().enumerate() {
        let path = format!("business[{i}]");
        let id = ScopeValue::new(&b.id)
            .map_err(|e| {
                c.err(
                    format!("{path}.id"),
                    format!("{:?} cannot be sent as a header: {e}", b.id),
                )
            })
            .ok();
        if raw[..i].iter().any(|o| o.id == b.id) {
            c.err(
                format!("{path}.id"),
                format!("duplicate business id {:?}", b.id),
            );
        }
        if b.api_key.is_empty() || b.api_key.len() > 128 || b.api_key.chars().any(char::is_control)
        {
            c.err(
                format!("{path}.api_key"),
                "must be 1-128 characters without control characters",
            );
        }
        if raw[..i].iter().any(|o| o.api_key == b.api_key) {
            c.err(format!("{path}.api_key"), "duplicate api_key");
        }
        let mode = match b.signature.as_str() {
            "md5" => Some(SignatureMode::Md5),
            "hmac-sha256" => Some(SignatureMode::HmacSha256),
            other => {
                c.err(
                    format!("{path}.signature"),
                    format!("unknown mode {other:?} (expected \"md5\" or \"hmac-sha256\")"),
                );
                None
            }
        };
        let window = c.nonzero(&format!("{path}.timestamp_window"), b.timestamp_window.0);
        let idle = c.nonzero(&format!("{path}.idle"), b.idle.0);
        let max_lifetime = c.nonzero(&format!("{path}.max_lifetime"), b.max_lifetime.0);
        if max_lifetime < idle {
            c.err(format!("{path}.max_lifetime"), "must be at least idle");
        }
        let key = c.secret(
            &path,
            "private_key",
            &b.private_key,
            &b.private_key_env,
            &b.private_key_file,
        );
        if let (Some(id), Some(mode), Some(private_key)) = (id, mode, key) {
            let key_id = Business::key_id_of(private_key.expose());
            by_api_key.insert(
                b.api_key.clone(),
                Business {
                    id: b.id.clone(),
                    id_value: id,
                    api_key: b.api_key.clone(),
                    private_key,
                    mode,
                    window,
                    idle,
                    max_lifetime,
                    accept_query_token: b.accept_query_token,
                    key_id,
                },
            );
        }
    }
    let path_ok = s.path.starts_with('/')
        && crate::path::normalize(&s.path).is_ok_and(|n| n == s.path)
        && !s.path.contains('?');
    if !path_ok {
        c.err(
            "session.path",
            format!("{:?} must be a normalized absolute path", s.path),
        );
    }
    crate::auth::session::Sessions {
        path: s.path.clone(),
        by_api_key,
    }
}

/// The longest a replica may serve a session from its local cache.
const MAX_LOCAL_CACHE: std::time::Duration = std::time::Duration::from_secs(10);

/// The shortest admin token accepted: long enough that guessing it is out
/// of the question (a random 16-byte value written as hex is 32).
const MIN_ADMIN_TOKEN: usize = 16;

/// `admin.token*`, when one is given; without one, a warning if the admin
/// listener is reachable from beyond this host.
fn compile_admin_token(
    c: &mut Checker,
    a: &raw::RawAdmin,
    address: Option<SocketAddr>,
) -> Option<crate::secret::Secret> {
    if a.token.is_none() && a.token_env.is_none() && a.token_file.is_none() {
        if address.is_some_and(|addr| !addr.ip().is_loopback()) {
            c.warnings.push(
                "admin.address is not a loopback address and admin.token is not set: anyone who \
                 reaches it can read /metrics and end every session of a business with \
                 POST /sessions/revoke; set admin.token_env or admin.token_file"
                    .into(),
            );
        }
        return None;
    }
    let token = c.secret("admin", "token", &a.token, &a.token_env, &a.token_file)?;
    let t = token.expose();
    if t.len() < MIN_ADMIN_TOKEN || t.len() > 4096 || !t.iter().all(|b| b.is_ascii_graphic()) {
        c.err(
            "admin.token",
            format!(
                "must be {MIN_ADMIN_TOKEN}-4096 visible ASCII characters (it is sent as a bearer token)"
            ),
        );
        return None;
    }
    Some(token)
}

/// Warns of sessions whose idle timeout is not longer than the local cache:
/// Redis's idle timer is slid once per cache lifetime, so such a session can
/// expire while it is in constant use (it fails closed: the client must start
/// a new session).
fn check_local_cache(c: &mut Checker, store: &crate::store::StoreSettings, raw: &raw::RawConfig) {
    let crate::store::StoreSettings::Redis {
        local_cache: Some(cache),
        ..
    } = store
    else {
        return;
    };
    let sso = (raw.sso.session.handout != "none" && !raw.sso_company.is_empty())
        .then(|| ("sso.session.idle".to_string(), raw.sso.session.idle.0));
    let idles = raw
        .business
        .iter()
        .enumerate()
        .map(|(i, b)| (format!("business[{i}].idle"), b.idle.0))
        .chain(sso);
    for (key, idle) in idles {
        if !idle.is_zero() && idle <= *cache {
            c.warnings.push(format!(
                "{key} ({}) is not longer than store.local_cache ({}): Redis's idle timer is \
                 slid once per cache lifetime, so a session in constant use can expire; make \
                 the cache shorter than the idle timeout",
                humantime::format_duration(idle),
                humantime::format_duration(*cache),
            ));
        }
    }
}

fn compile_store(c: &mut Checker, s: &raw::RawStore) -> crate::store::StoreSettings {
    use crate::store::StoreSettings;
    let timeout = c.nonzero("store.timeout", s.timeout.0);
    match s.backend.as_str() {
        "memory" => {
            if s.url.is_some() || s.url_env.is_some() || s.url_file.is_some() {
                c.err("store", "a URL only applies to backend = \"redis\"");
            }
            if s.local_cache.is_some() {
                c.err(
                    "store.local_cache",
                    "only applies to backend = \"redis\" (the memory store is local already)",
                );
            }
            StoreSettings::Memory {
                max_marks: c.nonzero("store.max_marks", s.max_marks),
                max_sessions: c.nonzero("store.max_sessions", s.max_sessions),
            }
        }
        "redis" => {
            let url = c
                .secret("store", "url", &s.url, &s.url_env, &s.url_file)
                .and_then(|u| {
                    let u = String::from_utf8(u.expose().to_vec()).ok()?;
                    let u = u.trim().to_string();
                    match redis::Client::open(u.as_str()) {
                        Ok(_) => Some(u),
                        Err(_) => {
                            // The URL may hold a password: never echo it.
                            c.err("store.url", "not a valid Redis URL (redis://host:port/db)");
                            None
                        }
                    }
                })
                .unwrap_or_default();
            let local_cache = s.local_cache.map(|d| d.0);
            if local_cache.is_some_and(|d| d.is_zero() || d > MAX_LOCAL_CACHE) {
                c.err(
                    "store.local_cache",
                    "must be between 1ms and 10s (it bounds how late a revocation can reach \
                     a replica whose subscription missed it); leave it unset for no cache",
                );
            }
            StoreSettings::Redis {
                url,
                key_prefix: s.key_prefix.clone(),
                timeout,
                local_cache,
            }
        }
        other => {
            c.err(
                "store.backend",
                format!("unknown backend {other:?} (expected \"memory\" or \"redis\")"),
            );
            StoreSettings::default()
        }
    }
}

fn compile_headers(c: &mut Checker, p: &raw::RawProxy) -> Option<HeaderPolicy> {
    let mut trusted = Vec::new();
    for (i, t) in p.trusted_proxies.iter().enumerate() {
        let net = t
            .parse::<IpNet>()
            .or_else(|_| t.parse::<std::net::IpAddr>().map(IpNet::from));
        match net {
            Ok(n) => trusted.push(n),
            Err(_) => c.err(
                format!("proxy.trusted_proxies[{i}]"),
                format!("invalid CIDR or address {t:?}"),
            ),
        }
    }
    let prefix = &p.scope_header_prefix;
    let prefix_ok = prefix.len() >= 3
        && prefix.ends_with('-')
        && HeaderName::from_bytes(prefix.as_bytes()).is_ok();
    if !prefix_ok {
        c.err(
            "proxy.scope_header_prefix",
            format!("{prefix:?} must be a header-name prefix ending in '-', e.g. \"X-Scope-\""),
        );
    }
    let overrides: Vec<HeaderName> = p
        .strip_headers
        .iter()
        .enumerate()
        .filter_map(|(i, h)| c.header_name(&format!("proxy.strip_headers[{i}]"), h))
        .collect();
    let request_id = c.header_name("proxy.request_id_header", &p.request_id_header)?;
    if prefix_ok
        && request_id
            .as_str()
            .replace('_', "-")
            .starts_with(&prefix.to_ascii_lowercase())
    {
        c.err(
            "proxy.request_id_header",
            "must not use the scope header prefix",
        );
    }
    if !prefix_ok {
        return None;
    }
    HeaderPolicy::new(prefix, &overrides, trusted, request_id).ok()
}

fn compile_upstreams(c: &mut Checker, raw: &[raw::RawUpstream]) -> Vec<Upstream> {
    let mut out = Vec::new();
    for (i, u) in raw.iter().enumerate() {
        let path = format!("upstream[{i}]");
        if u.name.is_empty() {
            c.err(format!("{path}.name"), "must not be empty");
        }
        if raw[..i].iter().any(|o| o.name == u.name) {
            c.err(
                format!("{path}.name"),
                format!("duplicate upstream name {:?}", u.name),
            );
        }
        let parsed = compile_upstream_url(c, &format!("{path}.url"), &u.url);
        let credential = u
            .credential
            .as_ref()
            .and_then(|cred| compile_credential(c, &format!("{path}.credential"), cred, None));
        let client_tls = parsed
            .as_ref()
            .and_then(|(https, ..)| tls::compile_upstream(c, &path, u, *https));
        if let Some((_, authority, base_path)) = parsed {
            out.push(Upstream::new(UpstreamSettings {
                name: u.name.clone(),
                tls: client_tls,
                authority,
                base_path,
                connect_timeout: c.nonzero(&format!("{path}.connect_timeout"), u.connect_timeout.0),
                response_timeout: c
                    .nonzero(&format!("{path}.response_timeout"), u.response_timeout.0),
                pool_idle_timeout: u.pool_idle_timeout.0,
                pool_max_idle_per_host: u.pool_max_idle_per_host,
                credential,
            }));
        }
    }
    out
}

/// A credential toward the upstream, as the header to send. `app_key` is
/// `Some` when the credential belongs to an `[[app]]`: that app's current key,
/// or `None` when it could not be loaded (already reported).
fn compile_credential(
    c: &mut Checker,
    cpath: &str,
    cred: &RawUpstreamCredential,
    app_key: Option<Option<&crate::secret::Secret>>,
) -> Option<(HeaderName, HeaderValue)> {
    let basic = |username: &str, password: &[u8]| {
        let mut userpass = username.as_bytes().to_vec();
        userpass.push(b':');
        userpass.extend_from_slice(password);
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode(userpass);
        let mut v = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
        v.set_sensitive(true);
        Some((http::header::AUTHORIZATION, v))
    };
    match cred {
        RawUpstreamCredential::Basic {
            username,
            password,
            password_env,
            password_file,
        } => {
            if username.contains(':') {
                c.err(format!("{cpath}.username"), "must not contain ':'");
            }
            let secret = c.secret(cpath, "password", password, password_env, password_file)?;
            basic(username, secret.expose())
        }
        RawUpstreamCredential::Header {
            name,
            value,
            value_env,
            value_file,
        } => {
            let name = c.header_name(&format!("{cpath}.name"), name)?;
            let secret = c.secret(cpath, "value", value, value_env, value_file)?;
            match HeaderValue::from_bytes(secret.expose()) {
                Ok(mut v) => {
                    v.set_sensitive(true);
                    Some((name, v))
                }
                Err(_) => {
                    c.err(cpath, "the secret is not a valid header value");
                    None
                }
            }
        }
        RawUpstreamCredential::AppKey {} => match app_key {
            Some(Some(key)) => basic("", key.expose()),
            Some(None) => None,
            None => {
                c.err(
                    format!("{cpath}.type"),
                    "\"app-key\" is only available under [[app]]",
                );
                None
            }
        },
    }
}

/// Whether the URL is `https`, its authority and its base path.
fn compile_upstream_url(
    c: &mut Checker,
    path: &str,
    url: &str,
) -> Option<(bool, Authority, String)> {
    let uri: Uri = match url.parse() {
        Ok(u) => u,
        Err(_) => {
            c.err(path, format!("invalid URL {url:?}"));
            return None;
        }
    };
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => {
            c.err(
                path,
                format!("URL {url:?} must start with http:// or https://"),
            );
            return None;
        }
    };
    let Some(authority) = uri.authority().cloned() else {
        c.err(path, format!("URL {url:?} has no host"));
        return None;
    };
    if authority.as_str().contains('@') {
        c.err(
            path,
            "credentials in the URL are not allowed; use credential",
        );
        return None;
    }
    if uri.query().is_some() {
        c.err(path, "the URL must not have a query");
        return None;
    }
    let base = uri.path().trim_end_matches('/').to_string();
    Some((https, authority, base))
}

/// `[failures]`: what a client failing credentials too often gets. Counts
/// are shared through the store when it is Redis, unless `shared = false`.
fn compile_failures(
    c: &mut Checker,
    f: &raw::RawFailures,
    store: &crate::store::StoreSettings,
) -> Option<crate::limit::FailureLimiter> {
    use crate::limit::{FailureLimiter, Penalty};
    let redis = matches!(store, crate::store::StoreSettings::Redis { .. });
    if f.shared == Some(true) && !redis {
        c.err(
            "failures.shared",
            "needs store.backend = \"redis\" (counts are shared through the store)",
        );
    }
    (f.limit > 0).then(|| {
        let window = c.nonzero("failures.window", f.window.0);
        let penalty = match f.penalty.as_str() {
            "reject" => Penalty::Reject,
            "delay" => Penalty::Delay(c.nonzero("failures.delay", f.delay.0)),
            other => {
                c.err(
                    "failures.penalty",
                    format!("unknown penalty {other:?} (expected \"reject\" or \"delay\")"),
                );
                Penalty::Reject
            }
        };
        FailureLimiter::new(f.limit, window, penalty, f.shared.unwrap_or(redis))
    })
}

/// CORS origins (`scheme://host[:port]`, or `https://*.example.com`).
fn cors_origins(c: &mut Checker, path: &str, list: &[String]) -> Vec<crate::cors::OriginPattern> {
    list.iter()
        .enumerate()
        .filter_map(|(i, o)| {
            crate::cors::OriginPattern::parse(o)
                .map_err(|e| c.err(format!("{path}[{i}]"), e))
                .ok()
        })
        .collect()
}

/// A route's `[route.cors]`; `methods` defaults to the route's own.
fn route_cors(
    c: &mut Checker,
    path: &str,
    raw: &raw::RawCors,
    route_methods: &[Method],
) -> crate::cors::RouteCors {
    let methods = match &raw.methods {
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(i, m)| c.method(&format!("{path}.methods[{i}]"), m))
            .collect(),
        None if route_methods.is_empty() => vec![Method::GET, Method::HEAD, Method::POST],
        None => route_methods.to_vec(),
    };
    let headers = raw
        .headers
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            c.header_name(&format!("{path}.headers[{i}]"), &h.to_ascii_lowercase())
        })
        .collect();
    let expose: Vec<String> = raw
        .expose
        .iter()
        .enumerate()
        .filter_map(|(i, h)| c.header_name(&format!("{path}.expose[{i}]"), h))
        .map(|h| h.as_str().to_string())
        .collect();
    crate::cors::RouteCors {
        methods,
        headers,
        expose: (!expose.is_empty())
            .then(|| HeaderValue::from_str(&expose.join(", ")).ok())
            .flatten(),
        max_age: raw.max_age.0,
        origins: cors_origins(c, &format!("{path}.origins"), &raw.origins),
    }
}

fn compile_routes(
    c: &mut Checker,
    raw: &[raw::RawRoute],
    upstreams: &[raw::RawUpstream],
) -> Option<RouteTable> {
    let mut routes = Vec::new();
    let mut ok = true;
    for (i, r) in raw.iter().enumerate() {
        let path = format!("route[{i}]");
        let before = c.problems.len();
        let scope_value = match ScopeValue::new(&r.name) {
            Ok(v) => Some(v),
            Err(e) => {
                c.err(
                    format!("{path}.name"),
                    format!("{:?} cannot be sent as a header: {e}", r.name),
                );
                None
            }
        };
        if raw[..i].iter().any(|o| o.name == r.name) {
            c.err(
                format!("{path}.name"),
                format!("duplicate route name {:?}", r.name),
            );
        }
        let host = r.host.as_ref().map(|h| {
            let h = h.to_ascii_lowercase();
            if h.is_empty() || h.parse::<Authority>().is_err() || h.contains(['@', '/']) {
                c.err(format!("{path}.host"), format!("invalid host {h:?}"));
            } else if h.contains(':') && !h.starts_with('[') {
                c.err(format!("{path}.host"), "give the host without a port");
            }
            h.into_boxed_str()
        });
        let mut methods = Vec::new();
        for (j, m) in r.methods.iter().enumerate() {
            if let Some(parsed) = c.method(&format!("{path}.methods[{j}]"), m) {
                if !methods.contains(&parsed) {
                    methods.push(parsed)
                }
            }
        }
        // A HEAD is a GET without the body, and backends answer it with the
        // GET handler: it must meet the GET route's credential, not fall
        // through to a broader route.
        if methods.contains(&Method::GET) && !methods.contains(&Method::HEAD) {
            methods.push(Method::HEAD);
        }
        let pattern = Pattern::parse(&r.path)
            .map_err(|e| c.err(format!("{path}.path"), format!("{:?}: {e}", r.path)))
            .ok();
        let auth = compile_auth(c, &format!("{path}.auth"), &r.auth);
        let upstream = upstreams.iter().position(|u| u.name == r.upstream);
        if upstream.is_none() {
            c.err(
                format!("{path}.upstream"),
                format!("no upstream named {:?}", r.upstream),
            );
        }
        let prefix = r.upstream_path_prefix.clone().unwrap_or_default();
        if !prefix.is_empty() {
            let valid = prefix.starts_with('/')
                && !prefix.ends_with('/')
                && crate::path::normalize(&prefix).is_ok_and(|n| n == prefix);
            if !valid {
                c.err(
                    format!("{path}.upstream_path_prefix"),
                    format!("{prefix:?} must start with '/', not end with '/', and be normalized"),
                );
            }
        }
        let lists_api_key = r.auth.iter().any(|a| a == "api-key");
        let require = match (&r.require, lists_api_key) {
            (Some(req), true) => crate::auth::api_key::Requirement::parse(req)
                .map_err(|e| c.err(format!("{path}.require"), e.to_string()))
                .ok(),
            (None, true) => {
                c.err(
                    format!("{path}.require"),
                    "an api-key route must say what it needs, e.g. \"bookings\" (rights by method) or \"bookings:rw\"",
                );
                None
            }
            (Some(_), false) => {
                c.err(format!("{path}.require"), "only applies to api-key routes");
                None
            }
            (None, false) => None,
        };
        let cors = r
            .cors
            .as_ref()
            .map(|raw| route_cors(c, &format!("{path}.cors"), raw, &methods));
        if c.problems.len() != before {
            ok = false;
            continue;
        }
        let (Some(scope_value), Some(pattern), Some(auth), Some(upstream)) =
            (scope_value, pattern, auth, upstream)
        else {
            unreachable!("every None above recorded a problem");
        };
        routes.push(Route {
            name: r.name.as_str().into(),
            scope_value,
            host,
            methods,
            pattern,
            auth,
            upstream,
            upstream_name: r.upstream.as_str().into(),
            upstream_path_prefix: prefix.into(),
            search_fields: r.search_fields.clone(),
            apps: r.apps.clone(),
            app_credential: r.upstream_credential.as_deref() == Some("app"),
            require,
            cors,
        });
    }
    if !ok {
        return None;
    }
    match RouteTable::new(routes) {
        Ok(t) => Some(t),
        Err(ambiguities) => {
            for a in ambiguities {
                c.err(
                    format!("route[{}]", a.second),
                    format!(
                        "ambiguous with route[{}] ({:?}): same specificity and both can match one request (path {:?})",
                        a.first, raw[a.first].name, raw[a.second].path
                    ),
                );
            }
            None
        }
    }
}

/// Unix seconds of an RFC 3339 time.
fn rfc3339(c: &mut Checker, path: &str, v: &str) -> Option<u64> {
    humantime::parse_rfc3339_weak(v)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .or_else(|| {
            c.err(
                path,
                format!("invalid time {v:?} (expected RFC 3339, e.g. \"2027-01-01T00:00:00Z\")"),
            );
            None
        })
}

fn compile_auth(c: &mut Checker, path: &str, names: &[String]) -> Option<AuthPolicy> {
    if names.is_empty() {
        c.err(path, "must list the accepted schemes, or [\"public\"]");
        return None;
    }
    if names.iter().any(|n| n == "public") {
        if names.len() > 1 {
            c.err(path, "\"public\" cannot be combined with other schemes");
            return None;
        }
        return Some(AuthPolicy::Public);
    }
    let mut schemes = Vec::new();
    for (i, n) in names.iter().enumerate() {
        match Scheme::parse(n) {
            Some(s) if !schemes.contains(&s) => schemes.push(s),
            Some(_) => c.err(
                format!("{path}[{i}]"),
                format!("scheme {n:?} is listed twice"),
            ),
            None if Scheme::PLANNED.contains(&n.as_str()) => c.err(
                format!("{path}[{i}]"),
                format!("scheme {n:?} is not available in this version"),
            ),
            None => c.err(
                format!("{path}[{i}]"),
                format!(
                    "unknown scheme {n:?} (known: public, {})",
                    Scheme::PLANNED.join(", ")
                ),
            ),
        }
    }
    (schemes.len() == names.len()).then_some(AuthPolicy::AnyOf(schemes))
}
