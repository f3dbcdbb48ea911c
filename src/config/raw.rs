//! The configuration exactly as an operator writes it (TOML plus `SCOPEGATE_*`
//! environment overrides). Nothing here is trusted by the request path: these
//! structs only exist to be validated into [`super::Config`].
//!
//! Every struct denies unknown keys, so a typo is a load error, not a silently
//! ignored setting.

use std::path::PathBuf;

use serde::Deserialize;

use super::units::{HumanDuration, HumanSize};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub listen: RawListen,
    pub admin: Option<RawAdmin>,
    pub log: RawLog,
    pub limits: RawLimits,
    pub proxy: RawProxy,
    pub upstream: Vec<RawUpstream>,
    pub route: Vec<RawRoute>,
    pub app: Vec<RawApp>,
    pub signed_search: RawSignedSearch,
    pub action_links: RawActionLinks,
    pub action: Vec<RawAction>,
    pub store: RawStore,
    pub session: RawSession,
    pub business: Vec<RawBusiness>,
    pub sso: RawSso,
    pub sso_company: Vec<RawSsoCompany>,
    pub api_keys: RawApiKeys,
    pub application: Vec<RawApplication>,
    pub api_key: Vec<RawApiKey>,
    pub failures: RawFailures,
}

/// Where API keys (Bookeo) are read, and the info endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawApiKeys {
    pub api_key_param: String,
    pub secret_key_param: String,
    pub api_key_header: String,
    pub secret_key_header: String,
    /// Answered by scopegate (GET): the key's account, permissions, application.
    pub info_path: String,
}

impl Default for RawApiKeys {
    fn default() -> Self {
        Self {
            api_key_param: "apiKey".into(),
            secret_key_param: "secretKey".into(),
            api_key_header: "X-Bookeo-apiKey".into(),
            secret_key_header: "X-Bookeo-secretKey".into(),
            info_path: "/v2/settings/apikeyinfo".into(),
        }
    }
}

/// An application registered with the vendor; its secret key is in every call.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApplication {
    /// `X-Scope-App`.
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, deserialize_with = "secret_field::inline")]
    pub secret_key: Option<String>,
    pub secret_key_env: Option<String>,
    pub secret_key_file: Option<PathBuf>,
}

/// One installation of an application in one business account.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApiKey {
    /// The key's SHA-256 as hex: the configuration then holds no usable key.
    pub key_sha256: Option<String>,
    #[serde(default, deserialize_with = "secret_field::inline")]
    pub key: Option<String>,
    pub key_env: Option<String>,
    pub key_file: Option<PathBuf>,
    pub application: String,
    /// `X-Scope-Business` (the vendor's `accountId`).
    pub business: String,
    pub permissions: Vec<String>,
    #[serde(default)]
    pub disabled: bool,
    /// RFC 3339; `creationTime` in apikeyinfo.
    pub created: Option<String>,
}

/// Where SSO tokens are read, what a client failing too often gets, and the
/// session an SSO token can open.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSso {
    /// Query parameter carrying the token.
    pub param: String,
    /// Header carrying the token (URL-decoded once); `""` turns it off.
    pub header: String,
    /// Cookie carrying the token (URL-decoded once); `""` turns it off.
    pub cookie: String,
    /// A header naming the company whose keys to try; `""` turns it off.
    pub company_header: String,
    /// A query parameter naming the company (off unless set).
    pub company_param: Option<String>,
    pub session: RawSsoSession,
}

impl Default for RawSso {
    fn default() -> Self {
        Self {
            param: "sso-token".into(),
            header: "X-SSO-Token".into(),
            cookie: "sso-token".into(),
            company_header: "X-SSO-Company".into(),
            company_param: None,
            session: RawSsoSession::default(),
        }
    }
}

/// Failed credentials counted per client address and per credential.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawFailures {
    /// Failures a client may have per window; 0 turns counting off.
    pub limit: u32,
    pub window: HumanDuration,
    /// `reject` (429 with Retry-After) or `delay`.
    pub penalty: String,
    /// How long a client past the limit waits, with `penalty = "delay"`.
    pub delay: HumanDuration,
    /// Count in the Redis store too, so replicas add up; default: when the
    /// store is Redis.
    pub shared: Option<bool>,
}

impl Default for RawFailures {
    fn default() -> Self {
        Self {
            limit: 20,
            window: HumanDuration::secs(60),
            penalty: "reject".into(),
            delay: HumanDuration::secs(2),
            shared: None,
        }
    }
}

/// The session a valid SSO token opens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSsoSession {
    /// `none`, `cookie` or `header`.
    pub handout: String,
    pub cookie_name: String,
    pub cookie_path: String,
    /// Response header carrying the token with `handout = "header"`; the
    /// client sends it back as `Authorization: Bearer <token>`.
    pub header: String,
    pub idle: HumanDuration,
    pub max_lifetime: HumanDuration,
}

impl Default for RawSsoSession {
    fn default() -> Self {
        Self {
            handout: "none".into(),
            cookie_name: "scopegate_sso".into(),
            cookie_path: "/".into(),
            header: "X-SSO-Session".into(),
            idle: HumanDuration::secs(4 * 3600),
            max_lifetime: HumanDuration::secs(12 * 3600),
        }
    }
}

/// A company (parent, child or affiliate id) whose website mints SSO tokens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSsoCompany {
    pub company_id: String,
    /// The current secure key (the shorthand for one `[[sso_company.key]]`).
    #[serde(default, deserialize_with = "secret_field::inline")]
    pub secure_key: Option<String>,
    pub secure_key_env: Option<String>,
    pub secure_key_file: Option<PathBuf>,
    /// More keys, accepted as well (a rotation).
    #[serde(default)]
    pub key: Vec<RawSsoKey>,
    /// `email` or `reference`: which field is `X-Scope-Subject`.
    #[serde(default = "defaults::identity")]
    pub identity: String,
    /// How an `expires` without a zone is read: `UTC`, `+01:00`, or an IANA
    /// name such as `Europe/London`.
    #[serde(default = "defaults::timezone")]
    pub timezone: String,
    #[serde(default = "defaults::sso_leeway")]
    pub leeway: HumanDuration,
    /// Accept the vendor's unauthenticated format, or only `v2`.
    #[serde(default = "defaults::yes")]
    pub accept_legacy: bool,
    /// Also send `X-Scope-Customer-First-Name` and `-Last-Name`.
    #[serde(default)]
    pub forward_names: bool,
    /// Origins whose pages may call with this company's tokens (CORS).
    #[serde(default)]
    pub cors_origins: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSsoKey {
    #[serde(default, deserialize_with = "secret_field::inline")]
    pub secure_key: Option<String>,
    pub secure_key_env: Option<String>,
    pub secure_key_file: Option<PathBuf>,
}

/// The session handshake (TimeTap).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSession {
    /// Path of the handshake on the public listener (GET issues, DELETE logs out).
    pub path: String,
}

impl Default for RawSession {
    fn default() -> Self {
        Self {
            path: "/sessionToken".into(),
        }
    }
}

/// A business whose legacy clients hold an `apiKey` and a `privateKey`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBusiness {
    /// Sent upstream as `X-Scope-Business`.
    pub id: String,
    /// The public key id clients send as `apiKey`.
    pub api_key: String,
    #[serde(default, deserialize_with = "secret_field::inline")]
    pub private_key: Option<String>,
    pub private_key_env: Option<String>,
    pub private_key_file: Option<PathBuf>,
    /// `md5` (the vendor's: md5_hex(apiKey + privateKey)) or `hmac-sha256`
    /// (hmac_sha256_hex(privateKey, apiKey + ":" + timestamp), single use).
    #[serde(default = "defaults::signature")]
    pub signature: String,
    #[serde(default = "defaults::timestamp_window")]
    pub timestamp_window: HumanDuration,
    /// A session ends after this long without use.
    #[serde(default = "defaults::idle")]
    pub idle: HumanDuration,
    /// ... and this long after it was issued, used or not.
    #[serde(default = "defaults::max_lifetime")]
    pub max_lifetime: HumanDuration,
    /// Also accept the token as a `sessionToken` query parameter.
    #[serde(default)]
    pub accept_query_token: bool,
}

/// Where single-use marks (and sessions) live.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStore {
    /// `memory` (one process) or `redis` (shared by every replica).
    pub backend: String,
    /// Redis URL (`redis://host:port/db`), usually from `url_env`.
    #[serde(default, deserialize_with = "secret_field::inline")]
    pub url: Option<String>,
    pub url_env: Option<String>,
    pub url_file: Option<PathBuf>,
    pub key_prefix: String,
    /// Deadline of one Redis operation; past it the request gets 503.
    pub timeout: HumanDuration,
    /// Memory: live single-use marks; past it new marks are refused (503).
    pub max_marks: u64,
    /// Memory: sessions kept; past it the least recently used are dropped.
    pub max_sessions: u64,
    /// Redis: how long a replica may serve a session it read without asking
    /// Redis again (at most 10 s); unset: every use asks.
    pub local_cache: Option<HumanDuration>,
}

impl Default for RawStore {
    fn default() -> Self {
        Self {
            backend: "memory".into(),
            url: None,
            url_env: None,
            url_file: None,
            key_prefix: "scopegate:".into(),
            timeout: HumanDuration(std::time::Duration::from_millis(500)),
            max_marks: 1_000_000,
            max_sessions: 1_000_000,
            local_cache: None,
        }
    }
}

/// A Timekit app whose tokens scopegate verifies.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApp {
    pub slug: String,
    /// One or more keys; several at once during a rotation.
    pub key: Vec<RawAppKey>,
    /// RFC 3339 time: tokens issued (`iat`) before it, or without `iat`, are refused.
    pub revoked_before: Option<String>,
    #[serde(default)]
    pub revoked_jti: Vec<String>,
    /// Sent upstream for this app on routes with `upstream_credential = "app"`.
    pub upstream_credential: Option<RawUpstreamCredential>,
    /// Origins whose pages may call with this app's tokens (CORS).
    #[serde(default)]
    pub cors_origins: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAppKey {
    #[serde(default, deserialize_with = "secret_field::inline")]
    pub key: Option<String>,
    pub key_env: Option<String>,
    pub key_file: Option<PathBuf>,
    /// RFC 3339 time after which this key verifies nothing (retired).
    pub not_after: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSignedSearch {
    /// Clock leeway for `exp`/`nbf`.
    pub leeway: HumanDuration,
}

impl Default for RawSignedSearch {
    fn default() -> Self {
        Self {
            leeway: HumanDuration::secs(30),
        }
    }
}

/// Action links: where generated links point, where a link may redirect to,
/// and how bookings are found in a listing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawActionLinks {
    /// Scheme, host and optional path prefix of generated links, e.g.
    /// `https://api.example.com`. Without it, listings are not enriched.
    pub public_base_url: Option<String>,
    pub link_path: String,
    /// Origins a link's `redirect` may point to (per action: `action[].redirect_origins`).
    pub redirect_origins: Vec<String>,
    /// JSON pointer to the bookings in a listing response.
    pub bookings_pointer: String,
    pub max_listing_bytes: HumanSize,
    /// Listings with more bookings pass through without links.
    pub max_bookings: usize,
    /// Also send `include=customer_action_links` to the upstream.
    pub forward_include: bool,
    pub id_field: String,
    pub state_field: String,
    pub possible_actions_field: String,
    /// State → actions, for bookings without `possible_actions`.
    pub state_actions: Option<std::collections::BTreeMap<String, Vec<String>>>,
}

impl Default for RawActionLinks {
    fn default() -> Self {
        Self {
            public_base_url: None,
            link_path: "/v2/bookings/{id}/external_action/{action}".into(),
            redirect_origins: Vec::new(),
            bookings_pointer: "/data".into(),
            max_listing_bytes: HumanSize(1024 * 1024),
            max_bookings: 500,
            forward_include: false,
            id_field: "id".into(),
            state_field: "state".into(),
            possible_actions_field: "possible_actions".into(),
            state_actions: None,
        }
    }
}

/// One action a link may carry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAction {
    pub name: String,
    /// Methods the link is accepted with.
    #[serde(default = "defaults::action_methods")]
    pub methods: Vec<String>,
    /// The upstream call it becomes: `"PUT /v2/bookings/{id}/cancel_by_customer"`.
    pub upstream: String,
    #[serde(default)]
    pub single_use: bool,
    /// Lifetime of minted links.
    #[serde(default = "defaults::action_ttl")]
    pub ttl: HumanDuration,
    #[serde(default)]
    pub require_exp: bool,
    pub redirect_origins: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawListen {
    pub address: String,
    /// How long in-flight requests may run after SIGTERM before they are cut.
    pub drain_timeout: HumanDuration,
    /// When present, the public listener speaks only TLS.
    pub tls: Option<RawListenTls>,
}

impl Default for RawListen {
    fn default() -> Self {
        Self {
            address: "127.0.0.1:8080".into(),
            drain_timeout: HumanDuration::secs(30),
            tls: None,
        }
    }
}

/// TLS termination on the public listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListenTls {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, RSA or SEC1 EC).
    pub key_file: PathBuf,
    /// `"1.2"` (default) or `"1.3"`.
    pub min_version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub address: String,
    /// Bearer token `/metrics` and `/sessions/revoke` require; `/healthz`
    /// and `/readyz` stay open (probes). None: no authentication.
    #[serde(default, deserialize_with = "secret_field::inline")]
    pub token: Option<String>,
    pub token_env: Option<String>,
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    /// `human` or `json`.
    pub format: String,
    /// A `tracing` filter directive such as `info` or `scopegate=debug`.
    pub level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            format: "human".into(),
            level: "info".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimits {
    pub max_header_bytes: HumanSize,
    pub max_headers: usize,
    pub max_uri_length: HumanSize,
    pub max_body_bytes: HumanSize,
    pub max_connections: usize,
    pub max_in_flight: usize,
    pub header_read_timeout: HumanDuration,
    pub idle_timeout: HumanDuration,
    pub request_timeout: HumanDuration,
}

/// `limits.header_read_timeout` when unset; the admin listener, which has
/// no limits of its own, uses it too.
pub const DEFAULT_HEADER_READ_TIMEOUT: HumanDuration = HumanDuration::secs(10);

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            max_header_bytes: HumanSize(16 * 1024),
            max_headers: 100,
            max_uri_length: HumanSize(8 * 1024),
            max_body_bytes: HumanSize(10 * 1024 * 1024),
            max_connections: 4096,
            max_in_flight: 2048,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: HumanDuration::secs(60),
            request_timeout: HumanDuration::secs(60),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawProxy {
    /// Peers whose `Forwarded` / `X-Forwarded-*` / `X-Real-IP` are kept.
    pub trusted_proxies: Vec<String>,
    /// Prefix of the trusted scope headers (`X-Scope-`).
    pub scope_header_prefix: String,
    /// Headers that let a client steer routing in some backends; always removed.
    pub strip_headers: Vec<String>,
    pub request_id_header: String,
}

impl Default for RawProxy {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            scope_header_prefix: "X-Scope-".into(),
            strip_headers: [
                "X-Original-URL",
                "X-Rewrite-URL",
                "X-HTTP-Method-Override",
                "X-HTTP-Method",
                "X-Method-Override",
            ]
            .map(String::from)
            .to_vec(),
            request_id_header: "X-Request-Id".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub name: String,
    pub url: String,
    #[serde(default = "defaults::connect_timeout")]
    pub connect_timeout: HumanDuration,
    #[serde(default = "defaults::response_timeout")]
    pub response_timeout: HumanDuration,
    #[serde(default = "defaults::pool_idle_timeout")]
    pub pool_idle_timeout: HumanDuration,
    #[serde(default = "defaults::pool_max_idle")]
    pub pool_max_idle_per_host: usize,
    pub credential: Option<RawUpstreamCredential>,
    /// `https` upstreams: trust only this CA (PEM) instead of the Mozilla roots.
    pub ca_file: Option<PathBuf>,
    /// `https` upstreams: the client certificate chain (PEM) for mTLS.
    pub client_cert_file: Option<PathBuf>,
    /// `https` upstreams: its private key (PEM).
    pub client_key_file: Option<PathBuf>,
}

/// Inline secrets: a string, and an error that never shows the value (serde's
/// own "invalid type: found signed int `98765432123`" would print a numeric
/// key into the load error).
mod secret_field {
    use std::fmt;

    use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

    const NOT_A_STRING: &str = "must be a string (the value is not shown)";

    struct Inline;

    impl<'de> Visitor<'de> for Inline {
        type Value = Option<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(Inline)
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(E::custom(NOT_A_STRING))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(E::custom(NOT_A_STRING))
        }
        fn visit_i128<E: de::Error>(self, _: i128) -> Result<Self::Value, E> {
            Err(E::custom(NOT_A_STRING))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(E::custom(NOT_A_STRING))
        }
        fn visit_u128<E: de::Error>(self, _: u128) -> Result<Self::Value, E> {
            Err(E::custom(NOT_A_STRING))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(E::custom(NOT_A_STRING))
        }
        fn visit_char<E: de::Error>(self, v: char) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(de::Error::custom(NOT_A_STRING))
        }
        fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(de::Error::custom(NOT_A_STRING))
        }
    }

    pub fn inline<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(Inline)
    }
}

mod defaults {
    use super::HumanDuration;
    pub fn connect_timeout() -> HumanDuration {
        HumanDuration::secs(2)
    }
    pub fn response_timeout() -> HumanDuration {
        HumanDuration::secs(30)
    }
    pub fn pool_idle_timeout() -> HumanDuration {
        HumanDuration::secs(30)
    }
    pub fn pool_max_idle() -> usize {
        64
    }
    pub fn signature() -> String {
        "md5".into()
    }
    pub fn timestamp_window() -> HumanDuration {
        HumanDuration::secs(300)
    }
    pub fn idle() -> HumanDuration {
        HumanDuration::secs(4 * 3600)
    }
    pub fn max_lifetime() -> HumanDuration {
        HumanDuration::secs(24 * 3600)
    }
    pub fn action_methods() -> Vec<String> {
        vec!["GET".into()]
    }
    pub fn cors_max_age() -> HumanDuration {
        HumanDuration::secs(600)
    }
    pub fn identity() -> String {
        "email".into()
    }
    pub fn timezone() -> String {
        "UTC".into()
    }
    pub fn sso_leeway() -> HumanDuration {
        HumanDuration::secs(30)
    }
    pub fn yes() -> bool {
        true
    }
    pub fn action_ttl() -> HumanDuration {
        HumanDuration::secs(7 * 86_400)
    }
}

/// The credential scopegate adds toward a legacy backend that expects one.
/// Secrets are given as `*_env` (variable name) or `*_file` (path); the inline
/// form is accepted with a warning so that examples stay short.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum RawUpstreamCredential {
    /// HTTP Basic; the vendor's legacy API takes an empty user and the key as password.
    Basic {
        #[serde(default)]
        username: String,
        #[serde(default, deserialize_with = "secret_field::inline")]
        password: Option<String>,
        password_env: Option<String>,
        password_file: Option<PathBuf>,
    },
    /// A fixed header such as `X-Api-Key`.
    Header {
        name: String,
        #[serde(default, deserialize_with = "secret_field::inline")]
        value: Option<String>,
        value_env: Option<String>,
        value_file: Option<PathBuf>,
    },
    /// Under `[[app]]` only: HTTP Basic with an empty user name and the app's
    /// current key as password (the vendor's legacy API).
    AppKey {},
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: String,
    pub host: Option<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    pub path: String,
    /// Accepted schemes, or `["public"]`. Required: no route is open by omission.
    pub auth: Vec<String>,
    pub upstream: String,
    pub upstream_path_prefix: Option<String>,
    /// Signed search: the `search` fields a request may use besides the signed one.
    pub search_fields: Option<Vec<String>>,
    /// Apps whose tokens this route accepts (default: every configured app).
    pub apps: Option<Vec<String>>,
    /// `"upstream"` (default): the upstream's credential; `"app"`: the
    /// credential of the app whose token the request carried.
    pub upstream_credential: Option<String>,
    /// API key routes: what the key must grant, `bookings` (rights by
    /// method) or `bookings:rw`.
    pub require: Option<String>,
    /// Cross-origin calls from browsers; none without it.
    pub cors: Option<RawCors>,
}

/// A route's CORS settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCors {
    /// Methods a page may use (default: the route's, or GET, HEAD and POST).
    pub methods: Option<Vec<String>>,
    /// Request headers a page may send besides the safelisted ones.
    #[serde(default)]
    pub headers: Vec<String>,
    /// Response headers a page may read besides the safelisted ones.
    #[serde(default)]
    pub expose: Vec<String>,
    #[serde(default = "defaults::cors_max_age")]
    pub max_age: HumanDuration,
    /// Origins for credentials that name no app or company.
    #[serde(default)]
    pub origins: Vec<String>,
}
