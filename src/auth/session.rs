//! Session tokens (TimeTap): a handshake at `session.path` issues a token,
//! then `Authorization: Bearer <token>` proves the business on each request.
//!
//! Handshake: `GET /sessionToken?apiKey=<id>&timestamp=<t>&signature=<hex>`.
//! `md5` mode checks the vendor's `md5_hex(apiKey + privateKey)`, which
//! ignores the timestamp, so scopegate enforces a window around it;
//! `hmac-sha256` mode checks `hmac_sha256_hex(privateKey, apiKey + ":" + t)`
//! (with `t` exactly as sent) and accepts each (apiKey, timestamp, signature)
//! once. Hex is compared as bytes in constant time, in either case.
//!
//! Tokens are `st:api:api:` + 128 random bits from the OS as lowercase hex.
//! The store keeps only their SHA-256. A session ends after `idle` without
//! use (each use slides it), at `max_lifetime` after issue (never slides), or
//! when its business is revoked.

use std::{collections::HashMap, time::Duration};

use hmac::{Hmac, Mac};
use http::{header, request::Parts, HeaderValue, Method, Response, StatusCode};
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

use super::{search_query as q, AuthError, Principal, Rejection, Scheme, ScopeValue};
use crate::{
    body::ResponseBody,
    error::GateError,
    store::{self, hex, unhex, SessionRecord, Slide, Store, StoreError},
};

/// Prefix of every token, as the vendor issues them.
pub const TOKEN_PREFIX: &str = "st:api:api:";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureMode {
    Md5,
    HmacSha256,
}

pub struct Business {
    pub id: String,
    pub id_value: ScopeValue,
    pub api_key: String,
    pub private_key: crate::secret::Secret,
    pub mode: SignatureMode,
    pub window: Duration,
    pub idle: Duration,
    pub max_lifetime: Duration,
    pub accept_query_token: bool,
    /// A short hash of the private key: sessions issued under another key
    /// (before a key change) are refused.
    pub key_id: String,
}

impl Business {
    /// The `key_id` of a private key: 8 bytes of SHA-256, as hex. It names
    /// the key without revealing anything usable about it.
    pub fn key_id_of(private_key: &[u8]) -> String {
        use sha2::Digest as _;
        hex(&sha2::Sha256::digest(private_key)[..8])
    }
}

/// Every configured business, by `apiKey`.
#[derive(Default)]
pub struct Sessions {
    pub path: String,
    pub by_api_key: HashMap<String, Business>,
}

impl std::fmt::Debug for Sessions {
    /// Ids only; keys never appear in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("path", &self.path)
            .field(
                "businesses",
                &self.by_api_key.values().map(|b| &b.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Sessions {
    pub fn enabled(&self) -> bool {
        !self.by_api_key.is_empty()
    }

    /// The business with this `id` (`X-Scope-Business`).
    pub fn by_id(&self, id: &str) -> Option<&Business> {
        self.by_api_key.values().find(|b| b.id == id)
    }

    /// The businesses that accept `?sessionToken=`.
    fn query_token_ids(&self) -> impl Iterator<Item = &str> {
        self.by_api_key
            .values()
            .filter(|b| b.accept_query_token)
            .map(|b| b.id.as_str())
    }

    fn any_query_token(&self) -> bool {
        self.query_token_ids().next().is_some()
    }
}

fn reject(cause: &'static str) -> Rejection {
    Rejection {
        scheme: Some(Scheme::Session),
        cause,
    }
}

/// The expected signature of a handshake, as lowercase hex.
pub fn signature(b: &Business, timestamp: &str) -> String {
    match b.mode {
        SignatureMode::Md5 => {
            let mut h = Md5::new();
            h.update(b.api_key.as_bytes());
            h.update(b.private_key.expose());
            hex(&h.finalize())
        }
        SignatureMode::HmacSha256 => {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b.private_key.expose())
                .expect("HMAC takes keys of any length");
            mac.update(b.api_key.as_bytes());
            mac.update(b":");
            mac.update(timestamp.as_bytes());
            hex(&mac.finalize().into_bytes())
        }
    }
}

/// The handshake query a legacy client of `b` sends at `timestamp`:
/// `apiKey=..&timestamp=..&signature=..`.
pub fn handshake_query(b: &Business, timestamp: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("apiKey", &b.api_key)
        .append_pair("timestamp", timestamp)
        .append_pair("signature", &signature(b, timestamp))
        .finish()
}

/// Unix milliseconds of a timestamp in seconds, milliseconds, or seconds
/// with a fraction (`1700000000`, `1700000000123`, `1700000000.5`).
pub fn parse_timestamp(t: &str) -> Option<u64> {
    if t.is_empty() || t.len() > 24 {
        return None;
    }
    let (int, frac) = match t.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (t, None),
    };
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if frac.is_some_and(|f| f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let whole: u64 = int.parse().ok()?;
    // Past year 5138 in seconds, so this many digits means milliseconds.
    if whole >= 100_000_000_000 {
        return frac.is_none().then_some(whole);
    }
    let ms_frac = frac.map_or(0, |f| {
        let digits: String = f.chars().chain("000".chars()).take(3).collect();
        digits.parse::<u64>().unwrap_or(0)
    });
    whole.checked_mul(1000)?.checked_add(ms_frac)
}

/// A fresh token: 128 bits from the OS CSPRNG.
pub fn new_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex(&bytes))
}

fn well_formed(token: &str) -> bool {
    prefixed_hex128(token, TOKEN_PREFIX)
}

/// Whether `token` is `prefix` and 128 bits as 32 lowercase hex digits, the
/// shape of every session token scopegate issues.
pub(crate) fn prefixed_hex128(token: &str, prefix: &str) -> bool {
    token.strip_prefix(prefix).is_some_and(|h| {
        h.len() == 32
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn token_key(token: &str) -> store::Key {
    store::key("session", &[token.as_bytes()])
}

/// The bearer token of `Authorization`, when there is exactly one such header
/// (the scheme's name in any case, RFC 9110 11.1).
pub(crate) fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(v), None) = (values.next(), values.next()) else {
        return None;
    };
    let v = v.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn query_token(parts: &Parts) -> Option<String> {
    let mut found = q::values(parts.uri.query()?, "sessionToken");
    (found.len() == 1).then(|| found.remove(0))
}

/// Whether a session credential is present (a bearer header, or the query
/// parameter when some business accepts it).
pub fn present(parts: &Parts, sessions: &Sessions) -> bool {
    // An SSO session's bearer belongs to the SSO scheme.
    bearer(&parts.headers).is_some_and(|t| !t.starts_with(super::sso::SESSION_PREFIX))
        || (sessions.any_query_token() && query_token(parts).is_some())
}

/// Whether an `Authorization` value carries a session token anywhere, in any
/// case (after a tab, inside a comma list): removed from every forwarded
/// request, whatever the route.
pub fn is_session_authorization(v: &HeaderValue) -> bool {
    v.as_bytes()
        .windows(TOKEN_PREFIX.len())
        .any(|w| w.eq_ignore_ascii_case(TOKEN_PREFIX.as_bytes()))
}

fn store_error(e: StoreError) -> AuthError {
    tracing::error!(error = %e, "session store unavailable");
    AuthError::Store
}

/// Deletes a session that can no longer be used, and says why.
async fn end(store: &Store, key: &store::Key, cause: &'static str) -> AuthError {
    match store.session_delete(key).await {
        Ok(_) => AuthError::Rejected(reject(cause)),
        Err(e) => store_error(e),
    }
}

/// Verifies a bearer session and slides it.
pub async fn verify(
    parts: &Parts,
    sessions: &Sessions,
    store: &Store,
    now_ms: u64,
) -> Result<Principal, AuthError> {
    let (token, from_query) = match bearer(&parts.headers) {
        Some(t) => (t.to_string(), false),
        None => match query_token(parts) {
            Some(t) => (t, true),
            None => return Err(AuthError::Rejected(reject("no session token"))),
        },
    };
    if !well_formed(&token) {
        return Err(AuthError::Rejected(reject("malformed session token")));
    }
    let key = token_key(&token);
    // A query token is refused for a business that takes only the header:
    // such a use must not slide the session it names.
    let takes_query: Vec<&str>;
    let slide = if from_query {
        takes_query = sessions.query_token_ids().collect();
        Slide::Only(&takes_query)
    } else {
        Slide::Any
    };
    let Some(found) = store
        .session_touch(&key, now_ms, slide)
        .await
        .map_err(store_error)?
    else {
        return Err(AuthError::Rejected(reject("unknown or expired session")));
    };
    // Idle and lifetime expiry were decided by the store, atomically with
    // this use; what is left depends on the configuration.
    let r = &found.record;
    let Some(business) = sessions.by_id(&r.business) else {
        return Err(end(store, &key, "business no longer configured").await);
    };
    if found.generation != r.generation {
        return Err(end(store, &key, "business sessions revoked").await);
    }
    if business.key_id != r.key_id {
        return Err(end(store, &key, "business key changed since the handshake").await);
    }
    if from_query && !business.accept_query_token {
        return Err(AuthError::Rejected(reject("query token not accepted")));
    }
    Ok(Principal::Business {
        credential: Scheme::Session,
        business: business.id_value.clone(),
    })
}

fn unauthorized(cause: &'static str) -> GateError {
    GateError::Unauthorized(reject(cause))
}

/// The handshake path: GET issues a session, DELETE ends the presented one.
pub async fn handshake(
    parts: &Parts,
    sessions: &Sessions,
    store: &Store,
    now_ms: u64,
) -> Result<Response<ResponseBody>, GateError> {
    match parts.method {
        Method::GET => issue(parts, sessions, store, now_ms).await,
        Method::DELETE => logout(parts, store).await,
        _ => Err(GateError::MethodNotAllowed(vec![
            Method::GET,
            Method::DELETE,
        ])),
    }
}

/// The three handshake parameters, each exactly once.
fn handshake_params(query: &str) -> Result<(String, String, String), GateError> {
    let all = q::params(query);
    if all.len() > q::MAX_PARAMS {
        return Err(GateError::BadQuery(q::QueryError::TooManyParams));
    }
    let (mut api_key, mut ts, mut sig) = (None, None, None);
    for p in all {
        q::check_param(&p).map_err(GateError::BadQuery)?;
        let slot = match &*p.name {
            "apiKey" => &mut api_key,
            "timestamp" => &mut ts,
            "signature" => &mut sig,
            _ => continue,
        };
        if slot.replace(p.value().into_owned()).is_some() {
            return Err(GateError::BadQuery(q::QueryError::Repeated));
        }
    }
    match (api_key, ts, sig) {
        (Some(a), Some(t), Some(s)) => Ok((a, t, s)),
        _ => Err(GateError::BadQuery(q::QueryError::Missing)),
    }
}

async fn issue(
    parts: &Parts,
    sessions: &Sessions,
    store: &Store,
    now_ms: u64,
) -> Result<Response<ResponseBody>, GateError> {
    let (api_key, ts, sig) = handshake_params(parts.uri.query().unwrap_or(""))?;
    let Some(b) = sessions.by_api_key.get(&api_key) else {
        return Err(unauthorized("unknown apiKey"));
    };
    let Some(ts_ms) = parse_timestamp(&ts) else {
        return Err(unauthorized("unreadable timestamp"));
    };
    if ts_ms.abs_diff(now_ms) > b.window.as_millis() as u64 {
        return Err(unauthorized("timestamp outside the window"));
    }
    let expected = unhex(&signature(b, &ts)).unwrap_or_default();
    let given = unhex(&sig).unwrap_or_default();
    if !bool::from(expected.ct_eq(&given)) || given.is_empty() {
        return Err(unauthorized("bad signature"));
    }
    // Each signed hmac request once, for as long as its timestamp is acceptable.
    let mark = (b.mode == SignatureMode::HmacSha256)
        .then(|| store::key("handshake", &[b.api_key.as_bytes(), ts.as_bytes(), &given]));
    if let Some(mark) = mark {
        if !store
            .claim_once(mark, b.window * 2 + Duration::from_secs(1))
            .await
            .map_err(|_| GateError::StoreUnavailable)?
        {
            return Err(unauthorized("handshake replayed"));
        }
    }
    let token = new_token();
    let opened = async {
        let record = SessionRecord {
            business: b.id.clone(),
            created_ms: now_ms,
            expires_ms: now_ms + b.max_lifetime.as_millis() as u64,
            last_used_ms: now_ms,
            generation: store.generation(&b.id).await?,
            idle: b.idle,
            key_id: b.key_id.clone(),
            customer: None,
        };
        store.session_put(&token_key(&token), &record).await
    }
    .await;
    if opened.is_err() {
        // No session was opened: the client may retry the same signed request.
        if let Some(mark) = mark {
            store.release(&mark).await;
        }
        return Err(GateError::StoreUnavailable);
    }
    let mut resp = ResponseBody::json(
        StatusCode::OK,
        serde_json::json!({ "sessionToken": token }).to_string(),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

async fn logout(parts: &Parts, store: &Store) -> Result<Response<ResponseBody>, GateError> {
    let Some(token) = bearer(&parts.headers).filter(|t| well_formed(t)) else {
        return Err(unauthorized("no session token to log out"));
    };
    let existed = store
        .session_delete(&token_key(token))
        .await
        .map_err(|_| GateError::StoreUnavailable)?;
    if !existed {
        return Err(unauthorized("unknown session"));
    }
    let mut resp = Response::new(ResponseBody::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_seconds_milliseconds_and_fractions() {
        assert_eq!(parse_timestamp("1700000000"), Some(1_700_000_000_000));
        assert_eq!(parse_timestamp("1700000000123"), Some(1_700_000_000_123));
        assert_eq!(parse_timestamp("1700000000.5"), Some(1_700_000_000_500));
        assert_eq!(
            parse_timestamp("1700000000.123456"),
            Some(1_700_000_000_123)
        );
        for bad in [
            "",
            "-1",
            "1e9",
            "17000.",
            ".5",
            "0x10",
            " 1",
            "1700000000123.5",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn tokens_have_the_vendor_shape_and_128_random_bits() {
        let t = new_token();
        assert!(well_formed(&t), "{t}");
        assert_eq!(t.len(), TOKEN_PREFIX.len() + 32);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100_000 {
            assert!(seen.insert(new_token()));
        }
        for bad in [
            "st:api:api:0164EBB6D9C74D87B4B6EDD9544166EC",
            "st:api:api:0164ebb6",
            "0164ebb6d9c74d87b4b6edd9544166ec",
        ] {
            assert!(!well_formed(bad), "{bad}");
        }
    }

    fn business(mode: SignatureMode) -> Business {
        Business {
            id: "biz".into(),
            id_value: ScopeValue::new("biz").unwrap(),
            api_key: "12345".into(),
            private_key: crate::secret::Secret::new(b"private-key"),
            mode,
            window: Duration::from_secs(300),
            idle: Duration::from_secs(4 * 3600),
            max_lifetime: Duration::from_secs(24 * 3600),
            accept_query_token: false,
            key_id: Business::key_id_of(b"private-key"),
        }
    }

    #[test]
    fn signatures_match_independent_computations() {
        // md5("12345" + "private-key") and HMAC-SHA256("private-key", "12345:1700000000"),
        // computed with Python's hashlib/hmac.
        assert_eq!(
            signature(&business(SignatureMode::Md5), "ignored"),
            "ebdd2065f5daece79c6ff06b9671b08d"
        );
        assert_eq!(
            signature(&business(SignatureMode::HmacSha256), "1700000000"),
            "c86d7209998bff6bb92f0c1206e3172a036a378db6740c080812111c84960ca8"
        );
    }
}
