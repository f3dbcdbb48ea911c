//! Strict HS256 compact JWS, for the Timekit tokens (signed search, action links).
//!
//! The header may hold only `alg` (exactly `HS256`) and `typ` (`JWT`): every
//! other member (`jwk`, `jku`, `x5u`, `x5c`, `kid`, `crit`, ...) is refused, so
//! no token can choose its own key, algorithm or processing rules. The
//! signature is checked with each live key of the app named in the payload,
//! by the `hmac` crate from a state keyed once at load (constant-time tag
//! comparison); `jsonwebtoken` verifies the interop vectors and mints. Time
//! claims are checked here against an injected clock: `exp`/`nbf`/`iat`, when
//! present, must be JSON numbers (string-typed times are refused, not
//! skipped).

use std::collections::HashSet;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use hmac::{Hmac, Mac as _};
use jsonwebtoken::{crypto, Algorithm, DecodingKey};
use serde_json::{Map, Value};
use sha2::Sha256;

/// Longest token accepted; vendor tokens are a few hundred bytes.
pub const MAX_TOKEN_LEN: usize = 4096;

/// One signing key of an app.
pub struct AppKey {
    /// HMAC-SHA256 already keyed: verifying a token clones this state
    /// instead of hashing the key again.
    pub mac: Hmac<Sha256>,
    /// The same key, for minting tokens (`scopegate token`).
    pub secret: crate::secret::Secret,
    /// Unix seconds after which the key no longer verifies anything.
    pub not_after: Option<u64>,
}

impl AppKey {
    pub fn new(secret: crate::secret::Secret, not_after: Option<u64>) -> Self {
        let mac = Hmac::<Sha256>::new_from_slice(secret.expose())
            .expect("HMAC takes a key of any length");
        Self {
            mac,
            secret,
            not_after,
        }
    }

    /// Whether `signature` (base64url, no padding) is this key's HMAC of
    /// `input`; the comparison is constant-time (`hmac`'s `verify_slice`).
    fn signed(&self, input: &[u8], signature: &str) -> bool {
        let mut tag = [0u8; 32];
        match URL_SAFE_NO_PAD.decode_slice(signature, &mut tag) {
            Ok(32) => {}
            _ => return false,
        }
        let mut mac = self.mac.clone();
        mac.update(input);
        mac.verify_slice(&tag).is_ok()
    }
}

/// Why a token failed. Only for logs: every cause gets the same 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("token malformed")]
    Malformed,
    #[error("token header not allowed")]
    Header,
    #[error("unknown app")]
    UnknownApp,
    #[error("bad signature or retired key")]
    Signature,
    #[error("time claim is not a number")]
    ClaimType,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token revoked")]
    Revoked,
}

impl JwtError {
    /// The cause as the access log records it.
    pub fn cause(self) -> &'static str {
        match self {
            JwtError::Malformed => "token malformed",
            JwtError::Header => "token header not allowed",
            JwtError::UnknownApp => "unknown app",
            JwtError::Signature => "bad signature",
            JwtError::ClaimType => "time claim not a number",
            JwtError::Expired => "expired",
            JwtError::NotYetValid => "not yet valid",
            JwtError::Revoked => "revoked",
        }
    }
}

/// A token whose signature verified; claims still need the scheme's checks.
#[derive(Debug)]
pub struct Verified {
    pub app_slug: String,
    pub claims: Claims,
}

/// The claims scopegate reads, collected while the payload is parsed: no map
/// of the whole payload is built, every other member is skipped unread. A
/// name scopegate reads, given twice, makes the token malformed (a parser
/// that keeps the first and one that keeps the last would disagree on it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claims {
    pub app_slug: Option<Value>,
    pub exp: Option<Value>,
    pub nbf: Option<Value>,
    pub iat: Option<Value>,
    pub jti: Option<Value>,
    pub booking_id: Option<Value>,
    pub action: Option<Value>,
    pub redirect: Option<Value>,
    /// The first member named `customer.email` or `meta.<name>`.
    pub subject: Option<(String, Value)>,
    /// More than one such member.
    pub more_subjects: bool,
}

/// Whether a claim name is a Timekit subject: `customer.email` or
/// `meta.<name>` with `<name>` in `[A-Za-z0-9_]+`.
pub fn is_subject_name(k: &str) -> bool {
    k == "customer.email" || k.strip_prefix("meta.").is_some_and(super::is_meta_name)
}

impl Claims {
    /// The value of a claim scopegate reads (`None` for every other name).
    pub fn get(&self, name: &str) -> Option<&Value> {
        match name {
            "app_slug" => self.app_slug.as_ref(),
            "exp" => self.exp.as_ref(),
            "nbf" => self.nbf.as_ref(),
            "iat" => self.iat.as_ref(),
            "jti" => self.jti.as_ref(),
            "booking_id" => self.booking_id.as_ref(),
            "action" => self.action.as_ref(),
            "redirect" => self.redirect.as_ref(),
            n => self
                .subject
                .as_ref()
                .filter(|(k, _)| k == n)
                .map(|(_, v)| v),
        }
    }

    fn slot(&mut self, name: &str) -> Option<&mut Option<Value>> {
        Some(match name {
            "app_slug" => &mut self.app_slug,
            "exp" => &mut self.exp,
            "nbf" => &mut self.nbf,
            "iat" => &mut self.iat,
            "jti" => &mut self.jti,
            "booking_id" => &mut self.booking_id,
            "action" => &mut self.action,
            "redirect" => &mut self.redirect,
            _ => return None,
        })
    }
}

impl<'de> serde::Deserialize<'de> for Claims {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Collect;
        impl<'de> serde::de::Visitor<'de> for Collect {
            type Value = Claims;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Claims, A::Error> {
                use serde::de::Error as _;
                let mut c = Claims::default();
                while let Some(Name(k)) = m.next_key::<Name<'de>>()? {
                    if let Some(slot) = c.slot(&k) {
                        if slot.replace(m.next_value()?).is_some() {
                            return Err(A::Error::custom("repeated claim"));
                        }
                    } else if is_subject_name(&k) {
                        let v: Value = m.next_value()?;
                        if c.subject.as_ref().is_some_and(|(first, _)| **first == *k) {
                            return Err(A::Error::custom("repeated claim"));
                        }
                        if c.subject.is_some() {
                            c.more_subjects = true;
                        } else {
                            c.subject = Some((k.into_owned(), v));
                        }
                    } else {
                        m.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(c)
            }
        }
        d.deserialize_map(Collect)
    }
}

/// A member name, borrowed from the payload when it has no escapes.
struct Name<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Name<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Name<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a member name")
            }

            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(s.into()))
            }

            fn visit_str<E>(self, s: &str) -> Result<Name<'de>, E> {
                Ok(Name(s.to_owned().into()))
            }

            fn visit_string<E>(self, s: String) -> Result<Name<'de>, E> {
                Ok(Name(s.into()))
            }
        }
        d.deserialize_str(V)
    }
}

/// A compact JWS split and decoded, nothing trusted yet.
struct Unverified<'t> {
    /// The header holds only what [`HeaderCheck`] allows.
    header_ok: bool,
    claims: Claims,
    /// The decoded payload, for [`check_signature`]'s whole map.
    payload: Vec<u8>,
    signing_input: &'t str,
    signature: &'t str,
}

/// Splits and decodes without trusting anything yet.
fn parts(token: &str) -> Result<Unverified<'_>, JwtError> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::Malformed);
    }
    // Exactly three segments, found by memchr (`split('.')` walks chars).
    let mut dots = memchr::memchr_iter(b'.', token.as_bytes());
    let (Some(a), Some(b), None) = (dots.next(), dots.next(), dots.next()) else {
        return Err(JwtError::Malformed);
    };
    let (h, p, s) = (&token[..a], &token[a + 1..b], &token[b + 1..]);
    if h.is_empty() || p.is_empty() || s.is_empty() {
        return Err(JwtError::Malformed);
    }
    // The header is small: decoded on the stack (a longer one is no header
    // scopegate accepts, but it is judged the same way).
    let mut small = [0u8; 192];
    let header: HeaderCheck = match URL_SAFE_NO_PAD.decode_slice(h, &mut small) {
        Ok(n) => serde_json::from_slice(&small[..n]),
        Err(_) => {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).map_err(|_| JwtError::Malformed)?)
        }
    }
    .map_err(|_| JwtError::Malformed)?;
    let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| JwtError::Malformed)?;
    let claims = serde_json::from_slice(&payload).map_err(|_| JwtError::Malformed)?;
    Ok(Unverified {
        header_ok: header.0,
        claims,
        payload,
        signing_input: &token[..h.len() + 1 + p.len()],
        signature: s,
    })
}

fn check_header(t: &Unverified<'_>) -> Result<(), JwtError> {
    if t.header_ok {
        Ok(())
    } else {
        Err(JwtError::Header)
    }
}

/// A JOSE header, judged while it is read (no map is built): only `alg`
/// (exactly `HS256`, and required) and `typ` (`JWT`) may appear, and every
/// occurrence of a repeated name must pass. Not a JSON object: an error.
struct HeaderCheck(bool);

impl<'de> serde::Deserialize<'de> for HeaderCheck {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Judge;
        impl<'de> serde::de::Visitor<'de> for Judge {
            type Value = HeaderCheck;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<HeaderCheck, A::Error> {
                let (mut ok, mut alg) = (true, false);
                while let Some(k) = m.next_key::<String>()? {
                    let v: Value = m.next_value()?;
                    ok &= match k.as_str() {
                        "alg" => {
                            alg = true;
                            v.as_str() == Some("HS256")
                        }
                        "typ" => matches!(v.as_str(), Some("JWT") | Some("jwt")),
                        _ => false,
                    };
                }
                Ok(HeaderCheck(ok && alg))
            }
        }
        d.deserialize_map(Judge)
    }
}

/// A numeric time claim: absent is fine, present must be a JSON number.
fn time_claim(claim: &Option<Value>) -> Result<Option<f64>, JwtError> {
    match claim {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(Some).ok_or(JwtError::ClaimType),
        Some(_) => Err(JwtError::ClaimType),
    }
}

/// The policy of one app: its keys and revocations.
pub struct AppPolicy<'a> {
    pub keys: &'a [AppKey],
    /// Tokens whose `iat` is before this (or that carry no `iat`) are refused.
    pub revoked_before: Option<u64>,
    pub revoked_jti: &'a HashSet<String>,
}

/// Verifies `token` at time `now` (unix seconds). `lookup` maps an `app_slug`
/// to that app's policy; a token without `app_slug` is malformed.
pub fn verify<'a>(
    token: &str,
    now: u64,
    leeway: u64,
    lookup: impl Fn(&str) -> Option<AppPolicy<'a>>,
) -> Result<Verified, JwtError> {
    verify_or_search(token, now, leeway, lookup, std::iter::empty())
}

/// Like [`verify`], but a token without `app_slug` (the vendor's own action
/// links carry none) is tried against each of `candidates` in turn, and
/// belongs to the first whose live key verifies it. Costs one HMAC per
/// candidate key.
pub fn verify_or_search<'a>(
    token: &str,
    now: u64,
    leeway: u64,
    lookup: impl Fn(&str) -> Option<AppPolicy<'a>>,
    candidates: impl IntoIterator<Item = (&'a str, AppPolicy<'a>)>,
) -> Result<Verified, JwtError> {
    let t = parts(token)?;
    check_header(&t)?;
    let (slug, app) = match &t.claims.app_slug {
        Some(Value::String(s)) if !s.is_empty() => {
            let app = lookup(s).ok_or(JwtError::UnknownApp)?;
            if !signed_by(&t, &app, now) {
                return Err(JwtError::Signature);
            }
            (s.clone(), app)
        }
        None => {
            let mut tried = false;
            let mut found = None;
            for (slug, app) in candidates {
                tried = true;
                if signed_by(&t, &app, now) {
                    found = Some((slug.to_string(), app));
                    break;
                }
            }
            match found {
                Some(f) => f,
                None if tried => return Err(JwtError::Signature),
                None => return Err(JwtError::Malformed),
            }
        }
        Some(_) => return Err(JwtError::Malformed),
    };
    // Only now, with an authentic payload, do the claims mean anything.
    check_claims(&t.claims, &app, now, leeway)?;
    Ok(Verified {
        app_slug: slug,
        claims: t.claims,
    })
}

/// Whether one of the app's live keys signed the token.
fn signed_by(t: &Unverified<'_>, app: &AppPolicy<'_>, now: u64) -> bool {
    app.keys
        .iter()
        .filter(|k| k.not_after.is_none_or(|end| now <= end))
        .any(|k| k.signed(t.signing_input.as_bytes(), t.signature))
}

/// Time claims and revocations of an authentic token.
fn check_claims(
    claims: &Claims,
    app: &AppPolicy<'_>,
    now: u64,
    leeway: u64,
) -> Result<(), JwtError> {
    let now_f = now as f64;
    let leeway_f = leeway as f64;
    if let Some(exp) = time_claim(&claims.exp)? {
        if now_f > exp + leeway_f {
            return Err(JwtError::Expired);
        }
    }
    if let Some(nbf) = time_claim(&claims.nbf)? {
        if nbf > now_f + leeway_f {
            return Err(JwtError::NotYetValid);
        }
    }
    let iat = time_claim(&claims.iat)?;
    // A future `iat` (often milliseconds written as seconds) would escape `revoked_before`.
    if iat.is_some_and(|iat| iat > now_f + leeway_f) {
        return Err(JwtError::NotYetValid);
    }
    if let Some(before) = app.revoked_before {
        if iat.is_none_or(|iat| iat < before as f64) {
            return Err(JwtError::Revoked);
        }
    }
    match &claims.jti {
        None => Ok(()),
        Some(Value::String(j)) if !app.revoked_jti.contains(j) => Ok(()),
        Some(Value::String(_)) => Err(JwtError::Revoked),
        Some(_) => Err(JwtError::Malformed),
    }
}

/// Checks header rules and the signature against one key, returning the
/// claims unchecked. For interop vectors that are not Timekit tokens.
pub fn check_signature(token: &str, key: &[u8]) -> Result<Map<String, Value>, JwtError> {
    let t = parts(token)?;
    check_header(&t)?;
    let (signing_input, signature) = (t.signing_input, t.signature);
    let Ok(Value::Object(claims)) = serde_json::from_slice(&t.payload) else {
        return Err(JwtError::Malformed);
    };
    match crypto::verify(
        signature,
        signing_input.as_bytes(),
        &DecodingKey::from_secret(key),
        Algorithm::HS256,
    ) {
        Ok(true) => Ok(claims),
        _ => Err(JwtError::Signature),
    }
}

/// Signs claims with HS256 (for tests and the token minting command).
pub fn sign(claims: &Map<String, Value>, key: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(Value::Object(claims.clone()).to_string());
    let input = format!("{header}.{payload}");
    let sig = crypto::sign(
        input.as_bytes(),
        &jsonwebtoken::EncodingKey::from_secret(key),
        Algorithm::HS256,
    )
    .expect("HS256 signing with an HMAC key cannot fail");
    format!("{input}.{sig}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &[u8] = b"live_api_key_7nzvc7wsBQQISLeFSVhROys9V1bUJ1z7";

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn keys() -> Vec<AppKey> {
        vec![AppKey::new(crate::secret::Secret::new(KEY), None)]
    }

    fn check(
        token: &str,
        now: u64,
        keys: &[AppKey],
        revoked_before: Option<u64>,
    ) -> Result<Verified, JwtError> {
        let revoked: HashSet<String> = ["burned".to_string()].into();
        verify(token, now, 30, |slug| {
            (slug == "my-app").then_some(AppPolicy {
                keys,
                revoked_before,
                revoked_jti: &revoked,
            })
        })
    }

    fn tok(v: Value) -> String {
        sign(&claims(v), KEY)
    }

    fn with_header(header: &str, payload: Value) -> String {
        let h = URL_SAFE_NO_PAD.encode(header);
        let p = URL_SAFE_NO_PAD.encode(payload.to_string());
        let input = format!("{h}.{p}");
        let sig = crypto::sign(
            input.as_bytes(),
            &jsonwebtoken::EncodingKey::from_secret(KEY),
            Algorithm::HS256,
        )
        .unwrap();
        format!("{input}.{sig}")
    }

    #[test]
    fn a_vendor_style_token_without_exp_verifies() {
        let t = tok(json!({"app_slug": "my-app", "customer.email": "marty@example.com"}));
        let v = check(&t, 1_800_000_000, &keys(), None).unwrap();
        assert_eq!(v.app_slug, "my-app");
        assert_eq!(
            v.claims.get("customer.email"),
            Some(&Value::from("marty@example.com"))
        );
    }

    #[test]
    fn tampering_wrong_key_and_unknown_app_fail() {
        let t = tok(json!({"app_slug": "my-app", "customer.email": "a@b.c"}));
        let (head, rest) = t.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let forged = format!(
            "{head}.{}.{sig}",
            URL_SAFE_NO_PAD.encode(r#"{"app_slug":"my-app","customer.email":"victim@b.c"}"#)
        );
        assert_eq!(
            check(&forged, 0, &keys(), None).unwrap_err(),
            JwtError::Signature
        );
        let other = sign(&claims(json!({"app_slug": "my-app"})), b"another key");
        assert_eq!(
            check(&other, 0, &keys(), None).unwrap_err(),
            JwtError::Signature
        );
        let unknown = tok(json!({"app_slug": "nope"}));
        assert_eq!(
            check(&unknown, 0, &keys(), None).unwrap_err(),
            JwtError::UnknownApp
        );
    }

    #[test]
    fn headers_that_choose_keys_or_algorithms_are_refused() {
        let p = json!({"app_slug": "my-app"});
        for h in [
            r#"{"alg":"none"}"#,
            r#"{"alg":"None"}"#,
            r#"{"alg":"HS512"}"#,
            r#"{"alg":"RS256"}"#,
            r#"{"alg":"HS256","kid":"../../dev/null"}"#,
            r#"{"alg":"HS256","jku":"https://evil.example/jwks"}"#,
            r#"{"alg":"HS256","jwk":{"kty":"oct","k":"AA"}}"#,
            r#"{"alg":"HS256","x5u":"https://evil.example/c"}"#,
            r#"{"alg":"HS256","crit":["exp"]}"#,
            r#"{"typ":"JWT"}"#,
            r#"{"typ":null,"alg":"HS256"}"#,
            r#"{"alg":["HS256"]}"#,
            // A repeated name: every occurrence must pass, not only the last.
            r#"{"alg":"none","alg":"HS256"}"#,
            r#"{"alg":"HS256","typ":"JWT","typ":"JWE"}"#,
        ] {
            assert_eq!(
                check(&with_header(h, p.clone()), 0, &keys(), None).unwrap_err(),
                JwtError::Header,
                "{h}"
            );
        }
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(p.to_string())
        );
        assert_eq!(
            check(&unsigned, 0, &keys(), None).unwrap_err(),
            JwtError::Malformed
        );
    }

    #[test]
    fn time_claims_are_enforced_when_present_and_must_be_numbers() {
        let now = 1_800_000_000u64;
        let exp = |v: Value| tok(json!({"app_slug": "my-app", "exp": v}));
        assert!(check(&exp(json!(now + 60)), now, &keys(), None).is_ok());
        assert!(
            check(&exp(json!(now - 10)), now, &keys(), None).is_ok(),
            "within leeway"
        );
        assert_eq!(
            check(&exp(json!(now - 31)), now, &keys(), None).unwrap_err(),
            JwtError::Expired
        );
        assert_eq!(
            check(&exp(json!("1")), now, &keys(), None).unwrap_err(),
            JwtError::ClaimType
        );
        let nbf = tok(json!({"app_slug": "my-app", "nbf": now + 3600}));
        assert_eq!(
            check(&nbf, now, &keys(), None).unwrap_err(),
            JwtError::NotYetValid
        );
        let nbf_s = tok(json!({"app_slug": "my-app", "nbf": "0"}));
        assert_eq!(
            check(&nbf_s, now, &keys(), None).unwrap_err(),
            JwtError::ClaimType
        );
    }

    #[test]
    fn retired_keys_and_revocations_refuse() {
        let now = 1_800_000_000u64;
        let retired = vec![AppKey::new(crate::secret::Secret::new(KEY), Some(now - 1))];
        let t = tok(json!({"app_slug": "my-app"}));
        assert_eq!(
            check(&t, now, &retired, None).unwrap_err(),
            JwtError::Signature
        );
        assert_eq!(
            check(&t, now, &keys(), Some(now)).unwrap_err(),
            JwtError::Revoked,
            "no iat"
        );
        let old = tok(json!({"app_slug": "my-app", "iat": now - 100}));
        assert_eq!(
            check(&old, now, &keys(), Some(now - 50)).unwrap_err(),
            JwtError::Revoked
        );
        let fresh = tok(json!({"app_slug": "my-app", "iat": now - 10}));
        assert!(check(&fresh, now, &keys(), Some(now - 50)).is_ok());
        let burned = tok(json!({"app_slug": "my-app", "jti": "burned"}));
        assert_eq!(
            check(&burned, now, &keys(), None).unwrap_err(),
            JwtError::Revoked
        );
        let future = tok(json!({"app_slug": "my-app", "iat": now * 1000}));
        assert_eq!(
            check(&future, now, &keys(), None).unwrap_err(),
            JwtError::NotYetValid
        );
        let iat_s = tok(json!({"app_slug": "my-app", "iat": "0"}));
        assert_eq!(
            check(&iat_s, now, &keys(), None).unwrap_err(),
            JwtError::ClaimType
        );
    }

    /// The payload as raw JSON text, signed (no map in between, so names can repeat).
    fn raw_payload(json: &str) -> String {
        let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
        let input = format!("{h}.{}", URL_SAFE_NO_PAD.encode(json));
        let sig = crypto::sign(
            input.as_bytes(),
            &jsonwebtoken::EncodingKey::from_secret(KEY),
            Algorithm::HS256,
        )
        .unwrap();
        format!("{input}.{sig}")
    }

    #[test]
    fn a_claim_scopegate_reads_given_twice_is_malformed() {
        let now = 1_800_000_000u64;
        for json in [
            r#"{"app_slug":"my-app","app_slug":"my-app"}"#,
            r#"{"app_slug":"my-app","exp":1,"exp":9999999999}"#,
            r#"{"app_slug":"my-app","jti":"burned","jti":"fresh"}"#,
            r#"{"app_slug":"my-app","customer.email":"a@x.io","customer.email":"v@x.io"}"#,
            r#"{"app_slug":"my-app","booking_id":"b-1","booking_id":"b-2"}"#,
        ] {
            assert_eq!(
                check(&raw_payload(json), now, &keys(), None).unwrap_err(),
                JwtError::Malformed,
                "{json}"
            );
        }
        // Names scopegate does not read may repeat, and are not kept.
        let v = check(
            &raw_payload(
                r#"{"app_slug":"my-app","x":1,"x":{"y":[1,2]},"customer.email":"a@x.io"}"#,
            ),
            now,
            &keys(),
            None,
        )
        .unwrap();
        assert_eq!(v.claims.get("x"), None);
        assert_eq!(
            v.claims.subject,
            Some(("customer.email".into(), "a@x.io".into()))
        );
        assert!(!v.claims.more_subjects);
    }

    #[test]
    fn escaped_names_and_two_subjects_are_read_as_json_means_them() {
        let now = 1_800_000_000u64;
        // `\u0065` is `e`: the name is `exp` however it is spelled.
        let expired = raw_payload(r#"{"app_slug":"my-app","\u0065xp":1}"#);
        assert_eq!(
            check(&expired, now, &keys(), None).unwrap_err(),
            JwtError::Expired
        );
        let two = check(
            &raw_payload(r#"{"app_slug":"my-app","customer.email":"a@x.io","meta.id":"7"}"#),
            now,
            &keys(),
            None,
        )
        .unwrap();
        assert!(two.claims.more_subjects);
        assert_eq!(
            crate::auth::subject_claim(&two.claims),
            Err("more than one subject claim")
        );
        let numeric = check(
            &raw_payload(r#"{"app_slug":"my-app","meta.id":7}"#),
            now,
            &keys(),
            None,
        )
        .unwrap();
        assert_eq!(
            crate::auth::subject_claim(&numeric.claims),
            Err("subject claim is not a string")
        );
        // `meta.` with a name outside [A-Za-z0-9_] is no subject at all.
        let odd = check(
            &raw_payload(r#"{"app_slug":"my-app","meta.a b":"x"}"#),
            now,
            &keys(),
            None,
        )
        .unwrap();
        assert_eq!(crate::auth::subject_claim(&odd.claims), Ok(None));
    }

    #[test]
    fn structural_garbage_is_malformed() {
        for t in [
            "",
            "a",
            "a.b",
            "a.b.c.d",
            "..",
            "e30.e30.",
            &"x".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert_eq!(
                check(t, 0, &keys(), None).unwrap_err(),
                JwtError::Malformed,
                "{t:.20}"
            );
        }
    }

    /// `AppKey::signed` (dd89f9b) pinned to what it replaced,
    /// `jsonwebtoken::crypto::verify(.., HS256).unwrap_or(false)`.
    mod hmac_equivalence {
        use super::super::*;
        use proptest::prelude::*;

        const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

        fn reference(key: &[u8], input: &[u8], sig: &str) -> bool {
            crypto::verify(sig, input, &DecodingKey::from_secret(key), Algorithm::HS256)
                .unwrap_or(false)
        }

        fn genuine(key: &[u8], input: &[u8]) -> String {
            crypto::sign(
                input,
                &jsonwebtoken::EncodingKey::from_secret(key),
                Algorithm::HS256,
            )
            .unwrap()
        }

        /// What is done to the genuine signature before it is checked.
        #[derive(Debug, Clone)]
        enum Sig {
            Genuine,
            /// One character replaced by another of the alphabet.
            Tampered(usize, usize),
            /// `=` padding (one or two).
            Padded(usize),
            Appended(String),
            Truncated(usize),
            /// The last character's two unused bits set (1..=3): the same
            /// 32 bytes, a non-canonical spelling.
            TrailingBits(usize),
            /// `-`/`_` spelled `+`/`/` (the standard alphabet).
            StandardAlphabet,
            /// Whitespace or a line break inserted.
            Spaced(usize, char),
            /// The genuine signature of the input under another key.
            OtherKey(Vec<u8>),
            /// Not derived from the genuine signature at all.
            Garbage(String),
        }

        fn sig() -> impl Strategy<Value = Sig> {
            prop_oneof![
                3 => Just(Sig::Genuine),
                3 => (0..43usize, 1..64usize).prop_map(|(i, d)| Sig::Tampered(i, d)),
                1 => (1..3usize).prop_map(Sig::Padded),
                1 => "[A-Za-z0-9_=+/-]{1,4}".prop_map(Sig::Appended),
                1 => (1..43usize).prop_map(Sig::Truncated),
                2 => (1..4usize).prop_map(Sig::TrailingBits),
                1 => Just(Sig::StandardAlphabet),
                1 => (0..44usize, prop_oneof![Just(' '), Just('\n'), Just('\t'), Just('\r')])
                    .prop_map(|(i, c)| Sig::Spaced(i, c)),
                1 => prop::collection::vec(any::<u8>(), 0..70).prop_map(Sig::OtherKey),
                2 => prop_oneof![
                    "[A-Za-z0-9_-]{43}",
                    "[A-Za-z0-9_-]{40,46}",
                    "[A-Za-z0-9_=+/. -]{0,64}",
                    any::<String>(),
                ]
                .prop_map(Sig::Garbage),
            ]
        }

        fn apply(sig: &Sig, key: &[u8], input: &[u8]) -> String {
            let good = genuine(key, input);
            assert_eq!(good.len(), 43);
            let pos = |c: u8| B64URL.iter().position(|&a| a == c).unwrap();
            match sig {
                Sig::Genuine => good,
                Sig::Tampered(i, d) => {
                    let mut b = good.into_bytes();
                    b[*i] = B64URL[(pos(b[*i]) + d) % 64];
                    String::from_utf8(b).unwrap()
                }
                Sig::Padded(n) => good + &"=".repeat(*n),
                Sig::Appended(tail) => good + tail,
                Sig::Truncated(n) => good[..43 - n].to_string(),
                Sig::TrailingBits(t) => {
                    let mut b = good.into_bytes();
                    b[42] = B64URL[(pos(b[42]) & !3) | t];
                    String::from_utf8(b).unwrap()
                }
                Sig::StandardAlphabet => good.replace('-', "+").replace('_', "/"),
                Sig::Spaced(i, c) => {
                    let mut s = good;
                    s.insert(*i, *c);
                    s
                }
                Sig::OtherKey(other) => genuine(other, input),
                Sig::Garbage(g) => g.clone(),
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4096))]

            #[test]
            fn signed_agrees_with_jsonwebtoken(
                key in prop::collection::vec(any::<u8>(), 0..100),
                input in prop::collection::vec(any::<u8>(), 0..200),
                how in sig(),
            ) {
                let sig = apply(&how, &key, &input);
                let expected = reference(&key, &input, &sig);
                let app_key = AppKey::new(crate::secret::Secret::new(key.clone()), None);
                prop_assert_eq!(app_key.signed(&input, &sig), expected, "{:?} {:?}", how, sig);
                // The generator does what it says: only the genuine spelling verifies.
                if matches!(how, Sig::Genuine) {
                    prop_assert!(expected);
                }
                if matches!(how, Sig::TrailingBits(_) | Sig::Padded(_) | Sig::Truncated(_)
                    | Sig::Appended(_) | Sig::Spaced(..) | Sig::Tampered(..)) {
                    prop_assert!(!expected);
                }
            }
        }
    }
}
