//! SSO tokens (BookingBug) as a scheme: a business's website mints a token
//! for a customer it already knows, and the booking widget calls the API
//! with it (`sso-token=...` in the query, or a header or a cookie).
//!
//! Which company: when the request names one (`company_header`, or the
//! `company_param` query parameter when configured) only its keys are tried.
//! Otherwise every key of every configured company is tried and the token is
//! accepted only when exactly one opens it to a valid payload. The cost is
//! one decryption per key (about 0.3 µs for a typical legacy token, a wrong
//! key failing at the padding check 255 times in 256), so a few dozen
//! companies stay well under the cost of the upstream round trip.
//!
//! After a valid token, an optional session is opened in the store (the one
//! of the session-token scheme, so it is shared across replicas through
//! Redis) and handed out as an `HttpOnly; Secure; SameSite=Lax` cookie or a
//! response header; the widget's later calls carry that instead.
//!
//! Every failure is one uniform 401; failures are counted per client and,
//! past the configured rate, refused with 429 (or slowed) before any
//! decryption is attempted.

pub mod token;

use std::time::Duration;

use http::{header, request::Parts, HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

pub use token::{
    decode_legacy, legacy_key, mint_legacy, mint_v2, v2_key, Keys, Rules, SsoError, SsoPayload,
    Zone,
};

use super::{search_query as q, AuthError, Principal, Rejection, Scheme, ScopeValue, Subject};
use crate::store::{self, hex, SessionRecord, Store};

/// Prefix of SSO session tokens (cannot occur in base64 or a JWT).
pub const SESSION_PREFIX: &str = "sg:sso:";

/// Which payload field names the customer in `X-Scope-Subject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    Email,
    Reference,
}

/// One key of a company, with the short id sessions remember it by.
#[derive(Debug, Clone)]
pub struct CompanyKey {
    pub keys: Keys,
    /// 8 bytes of SHA-256 of the secure key, as hex.
    pub id: String,
}

impl CompanyKey {
    pub fn new(secure_key: &[u8], company_id: &str) -> Self {
        use sha2::Digest as _;
        Self {
            keys: Keys::derive(secure_key, company_id),
            id: hex(&sha2::Sha256::digest(secure_key)[..8]),
        }
    }
}

#[derive(Debug)]
pub struct Company {
    pub id: String,
    /// `X-Scope-Business`.
    pub id_value: ScopeValue,
    /// Every accepted key (several during a rotation).
    pub keys: Vec<CompanyKey>,
    pub identity: Identity,
    pub rules: Rules,
    /// Whether the unauthenticated vendor format is accepted, or only `v2`.
    pub accept_legacy: bool,
    /// Also send `X-Scope-Customer-First-Name` / `-Last-Name`.
    pub forward_names: bool,
    /// Origins whose pages may call with this company's tokens.
    pub cors_origins: Vec<crate::cors::OriginPattern>,
}

/// How an SSO session reaches the widget.
#[derive(Debug, Clone)]
pub enum Handout {
    /// `Set-Cookie: <name>=<token>; Path=<path>; HttpOnly; Secure; SameSite=Lax`.
    Cookie { name: String, path: String },
    /// A response header; the widget sends it back as `Authorization: Bearer`.
    Header(HeaderName),
}

#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub handout: Handout,
    pub idle: Duration,
    pub max_lifetime: Duration,
}

/// The SSO scheme's compiled configuration.
#[derive(Debug)]
pub struct Sso {
    pub companies: Vec<Company>,
    /// Query parameter carrying the token (`sso-token`).
    pub param: String,
    pub header: Option<HeaderName>,
    pub cookie: Option<String>,
    pub company_param: Option<String>,
    pub company_header: Option<HeaderName>,
    pub session: Option<SessionSettings>,
}

impl Default for Sso {
    fn default() -> Self {
        Self {
            companies: Vec::new(),
            param: "sso-token".into(),
            header: None,
            cookie: None,
            company_param: None,
            company_header: None,
            session: None,
        }
    }
}

/// A customer proven by an SSO token or an SSO session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SsoCustomer {
    /// `X-Scope-Business`: the company id.
    pub company: ScopeValue,
    pub subject: Subject,
    /// `X-Scope-Customer-Email`.
    pub email: ScopeValue,
    /// `X-Scope-Customer-Reference`.
    pub reference: Option<ScopeValue>,
    /// First and last name, when the company forwards them.
    pub names: Option<(ScopeValue, ScopeValue)>,
    /// Whether the request carried a session rather than a token.
    pub via_session: bool,
    /// A session this request opened, to hand to the client.
    pub opened: Option<String>,
}

/// What an SSO session remembers of its customer (stored as JSON).
#[derive(Debug, Serialize, Deserialize)]
struct StoredCustomer {
    #[serde(rename = "e")]
    email: String,
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
    #[serde(rename = "f")]
    first_name: String,
    #[serde(rename = "l")]
    last_name: String,
}

fn reject(cause: &'static str) -> AuthError {
    AuthError::Rejected(Rejection {
        scheme: Some(Scheme::Sso),
        cause,
    })
}

impl Sso {
    pub fn enabled(&self) -> bool {
        !self.companies.is_empty()
    }

    pub fn company(&self, id: &str) -> Option<&Company> {
        self.companies.iter().find(|c| c.id == id)
    }

    /// The token text, from its one carrier. `Ok(None)`: none. A token in
    /// more than one place, or twice in one, is ambiguous (400).
    fn token(&self, parts: &Parts) -> Result<Option<String>, AuthError> {
        let mut found: Vec<String> = Vec::new();
        if let Some(query) = parts.uri.query() {
            found.extend(q::values(query, &self.param));
        }
        // Headers and cookies are URL-decoded once here, as the query's
        // parameter was by the query parser.
        let decode = |v: &str| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8()
                .map(|s| s.into_owned())
                .unwrap_or_default()
        };
        if let Some(h) = &self.header {
            for v in parts.headers.get_all(h) {
                found.push(decode(v.to_str().unwrap_or_default().trim()));
            }
        }
        if let Some(name) = &self.cookie {
            found.extend(cookies(&parts.headers, name).map(|v| decode(&v)));
        }
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.pop()),
            _ => Err(AuthError::Ambiguous),
        }
    }

    /// The company the request names, if it names one.
    fn pinned(&self, parts: &Parts) -> Result<Option<&Company>, AuthError> {
        let mut named: Vec<String> = Vec::new();
        if let (Some(p), Some(query)) = (&self.company_param, parts.uri.query()) {
            named.extend(q::values(query, p));
        }
        if let Some(h) = &self.company_header {
            for v in parts.headers.get_all(h) {
                named.push(v.to_str().unwrap_or_default().trim().to_string());
            }
        }
        named.dedup();
        match named.as_slice() {
            [] => Ok(None),
            [one] => self
                .company(one)
                .map(Some)
                .ok_or_else(|| reject("unknown company")),
            _ => Err(AuthError::Ambiguous),
        }
    }

    /// The session token of a request, from the configured handout's carrier.
    fn session_token(&self, parts: &Parts) -> Option<String> {
        let s = self.session.as_ref()?;
        match &s.handout {
            Handout::Cookie { name, .. } => {
                let mut all = cookies(&parts.headers, name);
                let first = all.next()?;
                all.next().is_none().then_some(first)
            }
            Handout::Header(_) => super::session::bearer(&parts.headers)
                .filter(|t| t.starts_with(SESSION_PREFIX))
                .map(str::to_string),
        }
    }

    /// Whether an SSO credential (token or session) is present.
    pub fn present(&self, parts: &Parts) -> bool {
        !matches!(self.token(parts), Ok(None)) || self.session_token(parts).is_some()
    }

    /// Opens a token: the one company and key that decode it to a valid
    /// payload at `now`.
    fn open<'a>(
        &'a self,
        text: &str,
        pinned: Option<&'a Company>,
        now: i64,
    ) -> Result<(&'a Company, &'a CompanyKey, SsoPayload), SsoError> {
        let candidates: Vec<&'a Company> = match pinned {
            Some(c) => vec![c],
            None => self.companies.iter().collect(),
        };
        let mut opened = None;
        let mut last = SsoError::NoCompany;
        for c in candidates {
            for k in &c.keys {
                match token::decode(text, &k.keys, c.accept_legacy, c.rules, now) {
                    Ok(p) if opened.is_none() => opened = Some((c, k, p)),
                    // The same company's other key: a rotation overlap.
                    Ok(_) if opened.as_ref().is_some_and(|(o, _, _)| o.id == c.id) => {}
                    Ok(_) => return Err(SsoError::Ambiguous),
                    Err(e) => last = e,
                }
            }
        }
        opened.ok_or(last)
    }

    /// Verifies the SSO credential of a request: a token, else a session.
    /// (Failures are counted by the pipeline, see [`crate::limit`].)
    pub async fn verify(
        &self,
        parts: &Parts,
        store: &Store,
        now_ms: u64,
    ) -> Result<Principal, AuthError> {
        match self.token(parts)? {
            Some(text) => self.verify_token(&text, parts, store, now_ms).await,
            None => self.verify_session(parts, store, now_ms).await,
        }
    }

    /// The failure-counting family of the request's token: for a legacy
    /// token its last ciphertext block, which every bit-flip forgery of one
    /// genuine token keeps.
    pub fn family(&self, parts: &Parts) -> Option<[u8; 16]> {
        self.token(parts)
            .ok()
            .flatten()
            .as_deref()
            .and_then(token::legacy_family)
    }

    async fn verify_token(
        &self,
        text: &str,
        parts: &Parts,
        store: &Store,
        now_ms: u64,
    ) -> Result<Principal, AuthError> {
        let pinned = self.pinned(parts)?;
        let now = (now_ms / 1000) as i64;
        let (company, key, p) = self.open(text, pinned, now).map_err(|e| {
            reject(match e {
                SsoError::Encoding => "sso token: not base64 or too long",
                SsoError::Cipher => "sso token: wrong length, key, padding or tag",
                SsoError::Json => "sso token: not a UTF-8 JSON object",
                SsoError::Field => "sso token: a field is missing or invalid",
                SsoError::Expires => "sso token: expires is unreadable",
                SsoError::Expired => "sso token: expired",
                SsoError::LegacyRefused => "sso token: legacy format not accepted",
                SsoError::NoCompany => "sso token: no configured company",
                SsoError::Ambiguous => "sso token: opened by several companies",
            })
        })?;
        let stored = StoredCustomer {
            email: p.email,
            reference: p.reference,
            first_name: p.first_name,
            last_name: p.last_name,
        };
        let mut customer = customer_of(company, &stored).map_err(reject)?;
        if let Some(s) = &self.session {
            customer.opened = open_session(s, store, company, key, text, &stored, now_ms).await;
        }
        Ok(Principal::Sso(Box::new(customer)))
    }

    async fn verify_session(
        &self,
        parts: &Parts,
        store: &Store,
        now_ms: u64,
    ) -> Result<Principal, AuthError> {
        let Some(token) = self.session_token(parts) else {
            return Err(reject("no sso credential"));
        };
        if !well_formed(&token) {
            return Err(reject("sso session: malformed token"));
        }
        let key = session_key(&token);
        let found = store
            .session_touch(&key, now_ms, crate::store::Slide::Any)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "session store unavailable");
                AuthError::Store
            })?;
        let Some(found) = found else {
            return Err(reject("sso session: unknown or expired"));
        };
        let r = &found.record;
        let company = r
            .business
            .strip_prefix("sso:")
            .and_then(|id| self.company(id));
        // `<format>:<key id>` of the token that opened it.
        let (format, key_id) = r.key_id.split_once(':').unwrap_or(("", ""));
        let ended = match company {
            None => Some("sso session: company no longer configured"),
            Some(_) if found.generation != r.generation => Some("sso session: revoked"),
            Some(c) if !c.keys.iter().any(|k| k.id == key_id) => {
                Some("sso session: its key was removed")
            }
            Some(c) if format == "legacy" && !c.accept_legacy => {
                Some("sso session: opened by a legacy token, no longer accepted")
            }
            Some(_) if format != "legacy" && format != "v2" => Some("sso session: unknown format"),
            Some(_) => None,
        };
        if let Some(cause) = ended {
            let _ = store.session_delete(&key).await;
            return Err(reject(cause));
        }
        let company = company.expect("checked above");
        let stored: StoredCustomer = r
            .customer
            .as_deref()
            .and_then(|u| serde_json::from_str(u).ok())
            .ok_or_else(|| reject("sso session: no customer"))?;
        let mut customer = customer_of(company, &stored).map_err(reject)?;
        customer.via_session = true;
        Ok(Principal::Sso(Box::new(customer)))
    }

    /// Hands a session this request opened to the client, on the response.
    pub fn hand_out(&self, headers: &mut HeaderMap, token: &str) {
        let Some(s) = &self.session else { return };
        match &s.handout {
            Handout::Cookie { name, path } => {
                let c = cookie::Cookie::build((name.as_str(), token))
                    .path(path.as_str())
                    .http_only(true)
                    .secure(true)
                    .same_site(cookie::SameSite::Lax)
                    .max_age(cookie::time::Duration::seconds(
                        s.max_lifetime.as_secs() as i64
                    ))
                    .build();
                if let Ok(v) = HeaderValue::from_str(&c.to_string()) {
                    headers.append(header::SET_COOKIE, v);
                }
            }
            Handout::Header(name) => {
                if let Ok(v) = HeaderValue::from_str(token) {
                    headers.insert(name.clone(), v);
                }
            }
        }
        // A response carrying a credential must never be stored by a cache.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }

    /// Removes every SSO credential a client sent (the token in each of its
    /// carriers, the session cookie) from headers going upstream: the
    /// configured names and the default ones (also when a carrier is turned
    /// off), the header in every spelling, cookies in every spelling a
    /// lenient backend would read as the same name (`SSO_TOKEN`, `ssoToken`).
    /// The session's carriers are stripped likewise, whichever handout is
    /// configured (a session token echoed in another carrier is no less one).
    pub fn strip(&self, headers: &mut HeaderMap) {
        let handout = self.session.as_ref().map(|s| &s.handout);
        let handout_header = match handout {
            Some(Handout::Header(h)) => h.as_str(),
            _ => "x-sso-token",
        };
        crate::scope::HeaderPolicy::remove_spellings_of(
            headers,
            &[
                "x-sso-token",
                "x-sso-session",
                self.header
                    .as_ref()
                    .map_or("x-sso-token", HeaderName::as_str),
                handout_header,
            ],
        );
        if !headers.contains_key(header::COOKIE) {
            return;
        }
        let mut names: Vec<String> = vec![
            super::squash(DEFAULT_COOKIE),
            super::squash(DEFAULT_SESSION_COOKIE),
        ];
        names.extend(self.cookie.as_deref().map(super::squash));
        if let Some(Handout::Cookie { name, .. }) = handout {
            names.push(super::squash(name));
        }
        remove_cookies(headers, &names);
    }
}

/// The values of every cookie called `name` in the request's `Cookie` headers.
fn cookies<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = String> + 'a {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| cookie::Cookie::split_parse(v).filter_map(Result::ok))
        .filter(move |c| c.name() == name)
        .map(|c| c.value().to_string())
}

/// The token and session cookies' default names, stripped whatever the
/// configuration.
const DEFAULT_COOKIE: &str = "sso-token";
const DEFAULT_SESSION_COOKIE: &str = "scopegate_sso";

/// Removes the cookies whose name reads as one of `squashed` (see
/// [`super::squash`]) from every `Cookie` header, keeping the others as they
/// were sent; a header left empty goes. A name is read as lenient backends
/// read it: percent-decoded (PHP, old Rack), and a `;`-pair is also split
/// at `,` (old Rack), any piece matching dooming the pair.
fn remove_cookies(headers: &mut HeaderMap, squashed: &[String]) {
    let all: Vec<HeaderValue> = headers.get_all(header::COOKIE).iter().cloned().collect();
    if all.is_empty() {
        return;
    }
    headers.remove(header::COOKIE);
    for v in all {
        let Ok(s) = v.to_str() else {
            // Not text: it cannot be read as cookies, so it cannot be trusted either.
            continue;
        };
        let kept: Vec<&str> = s
            .split(';')
            .filter(|pair| {
                !pair.split(',').any(|piece| {
                    let name = piece.split('=').next().unwrap_or("").trim();
                    let decoded = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
                    squashed.contains(&super::squash(&decoded))
                })
            })
            .filter(|pair| !pair.trim().is_empty())
            .collect();
        if kept.is_empty() {
            continue;
        }
        if let Ok(v) = HeaderValue::from_str(kept.join(";").trim()) {
            headers.append(header::COOKIE, v);
        }
    }
}

/// The principal of a proven customer, every header value checked.
fn customer_of(company: &Company, c: &StoredCustomer) -> Result<SsoCustomer, &'static str> {
    let value = |v: &str| ScopeValue::new(v).map_err(|_| "sso: a value cannot be sent");
    let subject = match company.identity {
        Identity::Email => Subject::new("customer.email", &c.email),
        Identity::Reference => match &c.reference {
            Some(r) => Subject::new("customer.reference", r),
            None => return Err("sso: the identity key reference is missing"),
        },
    }
    .map_err(|_| "sso: the subject cannot be sent")?;
    Ok(SsoCustomer {
        company: company.id_value.clone(),
        subject,
        email: value(&c.email)?,
        reference: c.reference.as_deref().map(value).transpose()?,
        names: if company.forward_names {
            Some((value(&c.first_name)?, value(&c.last_name)?))
        } else {
            None
        },
        via_session: false,
        opened: None,
    })
}

fn well_formed(token: &str) -> bool {
    super::session::prefixed_hex128(token, SESSION_PREFIX)
}

fn session_key(token: &str) -> store::Key {
    store::key("sso-session", &[token.as_bytes()])
}

/// The session a token opens: the same for every use of one token, so a
/// replayed token refreshes its session instead of opening another (one
/// token cannot fill the store). 128 bits of HMAC under the company key: not
/// computable without it.
fn session_of(key: &CompanyKey, text: &str) -> String {
    use hmac::{Hmac, Mac};
    let canonical = token::canonical(text).unwrap_or_else(|| text.as_bytes().to_vec());
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(&key.keys.v2).expect("HMAC takes keys of any length");
    mac.update(b"scopegate-sso-session:");
    mac.update(&canonical);
    format!(
        "{SESSION_PREFIX}{}",
        hex(&mac.finalize().into_bytes()[..16])
    )
}

/// Opens (or, for a token used before, refreshes) the session of a customer
/// just proven by a token. A store that does not answer costs the session,
/// not the request: the token was valid.
async fn open_session(
    s: &SessionSettings,
    store: &Store,
    company: &Company,
    key: &CompanyKey,
    text: &str,
    c: &StoredCustomer,
    now_ms: u64,
) -> Option<String> {
    let business = format!("sso:{}", company.id);
    let format = match token::Format::of(text) {
        token::Format::Legacy => "legacy",
        token::Format::V2 => "v2",
    };
    let opened = async {
        let token = session_of(key, text);
        let record = SessionRecord {
            generation: store.generation(&business).await?,
            business,
            created_ms: now_ms,
            expires_ms: now_ms + s.max_lifetime.as_millis() as u64,
            last_used_ms: now_ms,
            idle: s.idle,
            key_id: format!("{format}:{}", key.id),
            customer: Some(serde_json::to_string(c).expect("strings serialize")),
        };
        store.session_put(&session_key(&token), &record).await?;
        Ok::<_, store::StoreError>(token)
    }
    .await;
    match opened {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!(error = %e, "no sso session opened: store unavailable");
            None
        }
    }
}

/// Whether an `Authorization` value carries an SSO session token.
pub fn is_session_authorization(v: &HeaderValue) -> bool {
    v.as_bytes()
        .windows(SESSION_PREFIX.len())
        .any(|w| w.eq_ignore_ascii_case(SESSION_PREFIX.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::super::squash;
    use super::*;

    #[test]
    fn cookies_are_read_and_removed_by_exact_name() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; sso-token=abc%2B; b=2"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("sso-token=x"));
        assert_eq!(
            cookies(&h, "sso-token").collect::<Vec<_>>(),
            ["abc%2B", "x"]
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_static("SSO_TOKEN=1; ssoToken=2; sso-tokens=kept"),
        );
        remove_cookies(&mut h, &[squash("sso-token")]);
        let left: Vec<_> = h.get_all(header::COOKIE).iter().collect();
        assert_eq!(left, ["a=1; b=2", "sso-tokens=kept"]);
        remove_cookies(&mut h, &[squash("a"), squash("b"), squash("sso-tokens")]);
        assert!(h.get(header::COOKIE).is_none());
    }

    #[test]
    fn session_tokens_have_their_own_shape() {
        assert!(well_formed(&format!("{SESSION_PREFIX}{}", "0a".repeat(16))));
        assert!(!well_formed("st:api:api:0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a"));
        assert!(!well_formed(&format!(
            "{SESSION_PREFIX}{}",
            "0A".repeat(16)
        )));
        assert!(is_session_authorization(&HeaderValue::from_static(
            "Bearer SG:SSO:00"
        )));
    }

    const JSON: &str = r#"{"first_name":"Ann","last_name":"Lee","email":"ann@example.com","expires":"2027-01-15T09:00:00Z"}"#;
    const NOW_MS: u64 = 1_800_000_000_000; // 2027-01-15T08:00:00Z

    fn sso(accept_legacy: bool) -> Sso {
        Sso {
            companies: vec![Company {
                id: "37000".into(),
                id_value: ScopeValue::new("37000").unwrap(),
                keys: vec![CompanyKey::new(b"secure", "37000")],
                identity: Identity::Email,
                rules: Rules {
                    leeway: 30,
                    zone: Zone::UTC,
                },
                accept_legacy,
                forward_names: false,
                cors_origins: Vec::new(),
            }],
            session: Some(SessionSettings {
                handout: Handout::Cookie {
                    name: "scopegate_sso".into(),
                    path: "/".into(),
                },
                idle: Duration::from_secs(3600),
                max_lifetime: Duration::from_secs(12 * 3600),
            }),
            ..Sso::default()
        }
    }

    fn req(uri: &str, cookie: Option<&str>) -> Parts {
        let mut b = http::Request::get(uri);
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, c);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn opened(p: Principal) -> String {
        match p {
            Principal::Sso(c) => c.opened.expect("a session was opened"),
            other => panic!("{other:?}"),
        }
    }

    const CLIENT: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    /// Through the pipeline, where failures are counted.
    async fn counted(
        ctx: &crate::auth::AuthContext,
        parts: &Parts,
        store: &Store,
        client: std::net::IpAddr,
    ) -> Result<Principal, AuthError> {
        let mut parts = parts.clone();
        let route = crate::auth::RouteAuth {
            client: Some(client),
            ..crate::auth::RouteAuth::default()
        };
        crate::auth::authenticate_with(
            &crate::auth::AuthPolicy::AnyOf(vec![Scheme::Sso]),
            &route,
            &mut parts,
            ctx,
            store,
            NOW_MS,
        )
        .await
    }

    fn limited(s: Sso, limit: u32) -> crate::auth::AuthContext {
        crate::auth::AuthContext {
            sso: s,
            failures: Some(crate::limit::FailureLimiter::new(
                limit,
                Duration::from_secs(60),
                crate::limit::Penalty::Reject,
                false,
            )),
            ..crate::auth::AuthContext::default()
        }
    }

    /// From the review: a replayed token must not open a session per use
    /// (one customer could fill the store and evict everyone's).
    #[tokio::test]
    async fn one_token_opens_one_session_however_often_it_is_used() {
        let s = sso(true);
        let store = Store::memory(1000, 1_000_000);
        let keys = &s.companies[0].keys[0].keys;
        let legacy = mint_legacy(JSON.as_bytes(), &keys.legacy);
        let mut live = std::collections::HashSet::new();
        for _ in 0..50 {
            let p = s
                .verify(
                    &req(&format!("/v2/b?sso-token={legacy}"), None),
                    &store,
                    NOW_MS,
                )
                .await
                .unwrap();
            live.insert(opened(p));
        }
        assert_eq!(live.len(), 1);
        // Another token (v2, same customer) is another session.
        let v2 = mint_v2(JSON.as_bytes(), &keys.v2);
        let p = s
            .verify(&req(&format!("/v2/b?sso-token={v2}"), None), &store, NOW_MS)
            .await
            .unwrap();
        assert!(!live.contains(&opened(p)));
    }

    /// From the review: after `accept_legacy = false`, sessions that legacy
    /// tokens opened end; those of v2 tokens go on.
    #[tokio::test]
    async fn legacy_sessions_end_when_legacy_is_refused() {
        let store = Store::memory(1000, 1000);
        let before = sso(true);
        let keys = &before.companies[0].keys[0].keys;
        let mut sessions = Vec::new();
        for token in [
            mint_legacy(JSON.as_bytes(), &keys.legacy),
            mint_v2(JSON.as_bytes(), &keys.v2),
        ] {
            let uri = format!("/v2/b?sso-token={token}");
            sessions.push(opened(
                before
                    .verify(&req(&uri, None), &store, NOW_MS)
                    .await
                    .unwrap(),
            ));
        }
        let after = sso(false);
        let with = |sid: &str| req("/v2/b", Some(&format!("scopegate_sso={sid}"))).clone();
        let legacy = after
            .verify(&with(&sessions[0]), &store, NOW_MS + 1000)
            .await;
        assert!(legacy.is_err(), "{legacy:?}");
        let v2 = after
            .verify(&with(&sessions[1]), &store, NOW_MS + 1000)
            .await;
        assert!(v2.is_ok(), "{v2:?}");
    }

    /// From the review: polling with a stale session cookie is not a failed
    /// credential, so it cannot lock its client out of a fresh token.
    #[tokio::test]
    async fn stale_session_polls_do_not_lock_out_a_valid_token() {
        let ctx = limited(sso(true), 20);
        let store = Store::memory(1000, 1000);
        let stale = format!("scopegate_sso={SESSION_PREFIX}{}", "ab".repeat(16));
        for _ in 0..25 {
            assert!(counted(&ctx, &req("/v2/b", Some(&stale)), &store, CLIENT)
                .await
                .is_err());
        }
        let token = mint_legacy(JSON.as_bytes(), &ctx.sso.companies[0].keys[0].keys.legacy);
        let r = counted(
            &ctx,
            &req(&format!("/v2/b?sso-token={token}"), None),
            &store,
            CLIENT,
        )
        .await;
        assert!(r.is_ok(), "valid token refused: {r:?}");
    }

    /// Bit-flip forgeries of one token share a family: limited from any address.
    #[tokio::test]
    async fn forgeries_of_one_token_are_limited_across_addresses() {
        let mut s = sso(true);
        s.session = None;
        let ctx = limited(s, 5);
        let store = Store::memory(10, 10);
        let keys = &ctx.sso.companies[0].keys[0].keys;
        let genuine = token::canonical(
            &percent_encoding::percent_decode_str(&mint_legacy(JSON.as_bytes(), &keys.legacy))
                .decode_utf8()
                .unwrap(),
        )
        .unwrap();
        use base64::Engine as _;
        let mut statuses = Vec::new();
        for i in 0..8u8 {
            let mut forged = genuine.clone();
            forged[i as usize] ^= 0x20; // first block: the second one garbles
            let text = base64::engine::general_purpose::STANDARD.encode(&forged);
            let client = std::net::IpAddr::from([198, 51, 100, i]);
            let uri = format!(
                "/v2/b?sso-token={}",
                percent_encoding::utf8_percent_encode(&text, percent_encoding::NON_ALPHANUMERIC)
            );
            statuses.push(
                match counted(&ctx, &req(&uri, None), &store, client).await {
                    Err(AuthError::Rejected(_)) => 401,
                    Err(AuthError::Throttled(_)) => 429,
                    other => panic!("{other:?}"),
                },
            );
        }
        assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429, 429]);
    }
}
