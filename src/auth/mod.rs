//! Credential schemes and the pipeline they plug into.
//!
//! Each scheme lives in its own module and exposes the same surface: find its
//! credential in the request, verify it, and return a [`Principal`] or a
//! [`Rejection`]. A route's [`AuthPolicy`] names the schemes it accepts; a new
//! scheme is one new module and one [`Scheme`] variant.
//!
//! The pipeline runs after untrusted headers are stripped and before the
//! trusted scope headers are written, so a scheme can never see (or be fooled
//! by) a client-sent `X-Scope-*` header.

use std::fmt;

use http::{request::Parts, uri::PathAndQuery, Uri};

pub mod action_link;
pub mod api_key;
pub mod apps;
pub mod jwt;
pub mod principal;
pub mod search_query;
pub mod session;
pub mod signed_search;
pub mod sso;

pub use apps::Apps;
pub use principal::{ActionGrant, Customer, Principal, ScopeValue, Subject};

/// A credential scheme scopegate can verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    SignedSearch,
    ActionLink,
    Session,
    Sso,
    ApiKey,
}

impl Scheme {
    /// Every scheme name a route may list, including ones a later release adds,
    /// so the error for a name this build does not have is precise.
    pub const PLANNED: &'static [&'static str] =
        &["signed-search", "action-link", "session", "sso", "api-key"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "signed-search" => Some(Scheme::SignedSearch),
            "action-link" => Some(Scheme::ActionLink),
            "session" => Some(Scheme::Session),
            "sso" => Some(Scheme::Sso),
            "api-key" => Some(Scheme::ApiKey),
            _ => None,
        }
    }

    /// The config name, also the value of `X-Scope-Credential`.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::SignedSearch => "signed-search",
            Scheme::ActionLink => "action-link",
            Scheme::Session => "session",
            Scheme::Sso => "sso",
            Scheme::ApiKey => "api-key",
        }
    }

    fn present(self, parts: &Parts, ctx: &AuthContext) -> bool {
        match self {
            Scheme::SignedSearch => signed_search::present(parts),
            Scheme::ActionLink => action_link::present(parts),
            Scheme::Session => session::present(parts, &ctx.sessions),
            Scheme::Sso => ctx.sso.present(parts),
            Scheme::ApiKey => ctx.api_keys.present(parts),
        }
    }

    fn verify(
        self,
        parts: &mut Parts,
        route: &RouteAuth<'_>,
        ctx: &AuthContext,
        now: u64,
    ) -> Result<Principal, AuthError> {
        match self {
            Scheme::SignedSearch => signed_search::verify(parts, route, ctx, now),
            Scheme::ActionLink => action_link::verify(parts, route, ctx, now),
            Scheme::ApiKey => ctx.api_keys.verify(parts, route.require, route.form_body),
            // Need the store: see `authenticate_with`.
            Scheme::Session | Scheme::Sso => Err(AuthError::Rejected(Rejection {
                scheme: Some(self),
                cause: "this scheme needs the store",
            })),
        }
    }
}

/// What a route accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthPolicy {
    /// No credential is checked; scope headers are still stripped.
    Public,
    /// The first scheme whose credential is present decides; none present is a 401.
    AnyOf(Vec<Scheme>),
}

impl fmt::Display for AuthPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthPolicy::Public => f.write_str("public"),
            AuthPolicy::AnyOf(s) => {
                let names: Vec<_> = s.iter().map(|s| s.name()).collect();
                f.write_str(&names.join("|"))
            }
        }
    }
}

/// A uniform refusal. The cause is for the log only; the client sees the same
/// status, body and headers for every cause within one scheme.
#[derive(Debug)]
pub struct Rejection {
    pub scheme: Option<Scheme>,
    /// Short machine-readable cause for logs and metrics, never sent to the client.
    pub cause: &'static str,
}

impl Rejection {
    /// Whether the refusal counts as a failed guess. A session lookup (an
    /// expired session polled by a widget) does not: session ids are 128
    /// random bits, not worth guessing, and counting them would lock out
    /// well-behaved clients. Neither does a request with no credential.
    pub fn is_probe(&self) -> bool {
        self.scheme != Some(Scheme::Session)
            && !self.cause.starts_with("sso session")
            && !self.cause.starts_with("no ")
    }
}

/// What the schemes share, compiled from the configuration.
#[derive(Debug, Default)]
pub struct AuthContext {
    pub apps: Apps,
    /// Clock leeway for `exp`/`nbf`, seconds.
    pub leeway: u64,
    pub actions: crate::actions::ActionLinks,
    pub sessions: session::Sessions,
    pub sso: sso::Sso,
    pub api_keys: api_key::ApiKeys,
    /// Failed credentials counted per client and per credential (`[failures]`).
    pub failures: Option<crate::limit::FailureLimiter>,
}

/// The per-route settings a scheme may need.
#[derive(Debug, Default)]
pub struct RouteAuth<'a> {
    /// Allowed `search` fields (signed search); `None` allows any.
    pub search_fields: Option<&'a [String]>,
    /// Apps whose tokens the route accepts; `None` accepts every configured app.
    pub apps: Option<&'a [String]>,
    /// Whether the request carries a body (signed search refuses one).
    pub has_body: bool,
    /// The `{id}` and `{action}` path parameters (action links).
    pub action_path: Option<(&'a str, &'a str)>,
    /// The client's address, for per-client failure limits.
    pub client: Option<std::net::IpAddr>,
    /// What an API key must grant on this route.
    pub require: Option<api_key::Requirement>,
    /// The request has a form-encoded or multipart body.
    pub form_body: bool,
}

/// Why authentication did not produce a principal.
#[derive(Debug)]
pub enum AuthError {
    /// A verification failure: the scheme's uniform 401.
    Rejected(Rejection),
    /// The request is malformed in a way that is not about the credential: 400.
    BadQuery(search_query::QueryError),
    /// An action link's `redirect` is not allowed: 400.
    Redirect,
    /// An action link names an action that is not configured: 404.
    NotFound,
    /// The action does not accept this method: 405.
    Method(Vec<http::Method>),
    /// The store needed to decide did not answer: 503.
    Store,
    /// The credential is given in more than one place: 400.
    Ambiguous,
    /// The client failed too often; it may retry after this long: 429.
    Throttled(std::time::Duration),
    /// The credential is valid but does not grant this (the need): 403.
    Forbidden(String),
}

/// Whether `n` can name a `meta.<n>` subject: `[A-Za-z0-9_]+`.
pub fn is_meta_name(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The subject claim of a Timekit token: at most one of `customer.email` /
/// `meta.<name>`, a string. The error is a log cause.
pub(crate) fn subject_claim(claims: &jwt::Claims) -> Result<Option<(&str, &str)>, &'static str> {
    match &claims.subject {
        None => Ok(None),
        Some((_, v)) if !v.is_string() => Err("subject claim is not a string"),
        Some(_) if claims.more_subjects => Err("more than one subject claim"),
        Some((k, v)) => Ok(v.as_str().map(|v| (k.as_str(), v))),
    }
}

/// The principal of a verified Timekit token (signed search, action link).
/// The error is a log cause for the scheme's uniform 401.
pub(crate) fn customer(
    credential: Scheme,
    v: jwt::Verified,
    subject: Option<Subject>,
    action: Option<ActionGrant>,
) -> Result<Principal, &'static str> {
    let app = ScopeValue::new(&v.app_slug).map_err(|_| "app slug not sendable")?;
    let expires = v
        .claims
        .exp
        .as_ref()
        .and_then(serde_json::Value::as_f64)
        .map(|e| e.max(0.0) as u64);
    Ok(Principal::Customer(Box::new(Customer {
        credential,
        app_slug: v.app_slug,
        app,
        subject,
        action: action.map(Box::new),
        expires,
    })))
}

/// Replaces the query of the request.
pub(crate) fn set_query(parts: &mut Parts, query: Option<&str>) {
    let path = parts.uri.path();
    let mut pq = String::with_capacity(path.len() + query.map_or(0, |q| q.len() + 1));
    pq.push_str(path);
    if let Some(q) = query {
        pq.push('?');
        pq.push_str(q);
    }
    let mut uri = std::mem::take(&mut parts.uri).into_parts();
    uri.path_and_query = PathAndQuery::try_from(pq).ok();
    if let Ok(u) = Uri::from_parts(uri) {
        parts.uri = u;
    }
}

/// Query parameters that carry credentials, removed from every forwarded
/// request (`signature` is the action-link token): `signed_search`,
/// `signature`, `action_token`, `sessionToken`, folded and without `_`.
/// `sso-token` is here as well as its configured name (see [`strip_credentials`]).
const CREDENTIAL_PARAMS: &[&str] = &[
    "signedsearch",
    "signature",
    "actiontoken",
    "sessiontoken",
    "ssotoken",
    "apikey",
    "secretkey",
];

/// A parameter name as [`carries_credential`] compares it: folded, no `_`.
pub(crate) fn squash(name: &str) -> String {
    let mut out = String::new();
    squash_into(name, &mut out);
    out
}

/// [`squash`] into a reused buffer.
fn squash_into(name: &str, out: &mut String) {
    out.clear();
    out.extend(squashed(name).map(char::from));
}

/// The bytes of [`squash`]: `fold` without its `_`s is the name's ASCII
/// letters and digits, lower-cased, up to a NUL (bytes of multi-byte
/// characters are never ASCII alphanumerics).
fn squashed(name: &str) -> impl Iterator<Item = u8> + '_ {
    name.bytes()
        .take_while(|&b| b != 0)
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| b.to_ascii_lowercase())
}

/// Whether a raw `&`-separated parameter carries a credential in a spelling
/// some backend reads as one: any `;`-separated piece whose name, decoded
/// and folded (see [`search_query::fold`]), whole or cut at `[`
/// (`signature[x]`, `signed_search[]`), is a credential parameter.
/// `buf` is scratch space.
fn carries_credential(raw: &str, extra: &[&str], buf: &mut String) -> bool {
    raw.split(';')
        .filter(|piece| !piece.is_empty())
        .any(|piece| {
            // The name as `form_urlencoded` reads it.
            let name = search_query::decode(piece.split_once('=').map_or(piece, |(n, _)| n));
            // Both readings: `signed[search` (PHP folds a lone `[` to `_`)
            // and `signature[x]` (an array named `signature`).
            // `_` dropped as well: `session_token` and `signedSearch`
            // read as the credential in snake/camel-mapping backends.
            let base = name.split('[').next().unwrap_or("");
            [&*name, base].iter().any(|n| {
                squash_into(n, buf);
                CREDENTIAL_PARAMS.contains(&buf.as_str())
                    || extra.iter().any(|e| squashed(e).eq(buf.bytes()))
            })
        })
}

/// Removes credential parameters a route did not consume (public routes, or a
/// scheme other than the one the parameter belongs to), in every spelling a
/// lenient backend would read as the credential. Other bytes are untouched.
/// The configured names of the SSO token and API key parameters count as
/// credentials too.
pub fn strip_credentials(parts: &mut Parts, ctx: &AuthContext) {
    let Some(query) = parts.uri.query() else {
        return;
    };
    // Configured names, squashed as they are compared (no allocation).
    let extra = [
        ctx.sso.param.as_str(),
        ctx.api_keys.api_key_param.as_str(),
        ctx.api_keys.secret_key_param.as_str(),
    ];
    let mut buf = String::new();
    let mut all = 0;
    let kept: Vec<&str> = search_query::raw_params(query)
        .inspect(|_| all += 1)
        .filter(|raw| !carries_credential(raw, &extra, &mut buf))
        .collect();
    if kept.len() != all {
        let rest = (!kept.is_empty()).then(|| kept.join("&"));
        set_query(parts, rest.as_deref());
    }
}

/// The scheme that decides a request under `policy`: the first listed one
/// whose credential is present. `Ok(None)`: a public route. A 401 of the
/// first scheme when none is present.
fn deciding_scheme(
    policy: &AuthPolicy,
    parts: &Parts,
    ctx: &AuthContext,
) -> Result<Option<Scheme>, AuthError> {
    match policy {
        AuthPolicy::Public => Ok(None),
        AuthPolicy::AnyOf(schemes) => match schemes.iter().find(|s| s.present(parts, ctx)) {
            Some(s) => Ok(Some(*s)),
            None => Err(AuthError::Rejected(Rejection {
                scheme: schemes.first().copied(),
                cause: "no credential",
            })),
        },
    }
}

/// Runs the route's policy against the request with the schemes that need
/// no store (see [`authenticate_with`] for all of them).
pub fn authenticate(
    policy: &AuthPolicy,
    route: &RouteAuth<'_>,
    parts: &mut Parts,
    ctx: &AuthContext,
    now: u64,
) -> Result<Principal, AuthError> {
    match deciding_scheme(policy, parts, ctx)? {
        None => Ok(Principal::Anonymous),
        Some(s) => s.verify(parts, route, ctx, now),
    }
}

/// Runs the route's policy against the request, every scheme included
/// (sessions need the store). `now_ms` is unix milliseconds.
pub async fn authenticate_with(
    policy: &AuthPolicy,
    route: &RouteAuth<'_>,
    parts: &mut Parts,
    ctx: &AuthContext,
    store: &crate::store::Store,
    now_ms: u64,
) -> Result<Principal, AuthError> {
    let Some(scheme) = deciding_scheme(policy, parts, ctx)? else {
        return Ok(Principal::Anonymous);
    };
    // Failure limits: a client (or a credential family) past its limit is
    // refused or slowed before anything is verified. Deciding is local; only
    // a failure may be counted in Redis (see `crate::limit`).
    let client = route
        .client
        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
    // A family limit would let anyone who knows an API key (it is not the
    // secret) lock its holder out, and secrets are not guessable anyway; a
    // legacy SSO token's family is known only to its holder and forgers.
    let family = match scheme {
        Scheme::Sso => ctx.sso.family(parts),
        _ => None,
    };
    if let Some(l) = &ctx.failures {
        l.enter(store, client, family)
            .await
            .map_err(AuthError::Throttled)?;
    }
    let result = match scheme {
        Scheme::Session => session::verify(parts, &ctx.sessions, store, now_ms).await,
        Scheme::Sso => ctx.sso.verify(parts, store, now_ms).await,
        s => s.verify(parts, route, ctx, now_ms / 1000),
    };
    if let (Err(AuthError::Rejected(r)), Some(l)) = (&result, &ctx.failures) {
        if r.is_probe() {
            l.fail(store, client, family).await;
        }
    }
    result
}
