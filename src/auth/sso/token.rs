//! SSO token formats: the vendor's legacy format (BookingBug), decoded
//! exactly as its Ruby, Java and C# generators produce it, and scopegate's
//! authenticated `v2`; minting both (for `scopegate token sso` and tests).
//!
//! ## Legacy
//!
//! Key: the first 16 bytes of `SHA1(secure_key + company_id)`. Cipher:
//! AES-128-CBC with PKCS#7. The generators XOR the first 16 plaintext bytes
//! with the IV `"OpenSSL for Ruby"` and then encrypt with that same IV, which
//! cancels out: the ciphertext is plain CBC under a zero IV, and is decrypted
//! as such. Text: standard base64, URL-encoded once (the query parser has
//! already decoded it once); newlines, missing padding and `+` turned into a
//! space by a second form-decoding are tolerated, nothing else.
//!
//! The format has no MAC: ciphertext bits can be flipped. So every failure
//! (encoding, length, padding, UTF-8, JSON, fields, expiry) is one error for
//! the caller's uniform 401, and every field is validated strictly.
//!
//! ## v2
//!
//! `"v2." + base64url_nopad(nonce[12] || ciphertext || tag[16])`, where the
//! ciphertext and tag are AES-256-GCM of the same JSON payload under
//! `HMAC-SHA256(secure_key, "scopegate-sso-v2:" + company_id)` with a fresh
//! random 96-bit nonce and no associated data. The tag authenticates every
//! bit: a flipped bit is a refusal, not a different customer. The text is
//! URL-safe and never needs encoding. Random nonces bound a key to well
//! under 2^32 tokens; rotate long before.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use aes_gcm::{aead::Aead, Aes256Gcm};
use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    Engine as _,
};
use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};
use std::borrow::Cow;

/// Longest token text accepted (a payload of a few hundred bytes is ~1 KiB).
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Longest name, mobile or reference.
pub const MAX_FIELD_LEN: usize = 256;
/// Longest email (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// A decoded, validated SSO payload. Unknown fields are dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoPayload {
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub mobile: Option<String>,
    pub reference: Option<String>,
    /// Unix seconds.
    pub expires: i64,
}

/// Marks a `v2` token; legacy tokens are standard base64, which has no `.`.
pub const V2_PREFIX: &str = "v2.";
const V2_LABEL: &[u8] = b"scopegate-sso-v2:";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Which format a token is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Legacy,
    V2,
}

impl Format {
    pub fn of(text: &str) -> Self {
        if text.starts_with(V2_PREFIX) {
            Format::V2
        } else {
            Format::Legacy
        }
    }
}

/// How a zone-less `expires` (the Java generator's) is read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Zone {
    /// A fixed offset east of UTC, in seconds (`UTC` is 0).
    Fixed(i32),
    /// An IANA zone, daylight saving time included.
    Named(chrono_tz::Tz),
}

impl Zone {
    pub const UTC: Zone = Zone::Fixed(0);

    /// `UTC`, `+01:00` / `-05:30`, or an IANA name such as `Europe/London`.
    pub fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("utc") || s == "Z" {
            return Some(Zone::UTC);
        }
        if let Some(rest) = s.strip_prefix(['+', '-']) {
            let (h, m) = rest.split_once(':')?;
            let ok = |v: &str, max: i32| {
                (v.len() == 2 && v.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| v.parse::<i32>().ok())
                    .flatten()
                    .filter(|n| *n <= max)
            };
            let secs = ok(h, 18)? * 3600 + ok(m, 59)? * 60;
            return Some(Zone::Fixed(if s.starts_with('-') { -secs } else { secs }));
        }
        s.parse::<chrono_tz::Tz>().ok().map(Zone::Named)
    }

    /// Unix seconds of a local time in this zone. A time that happens twice
    /// (clocks going back) is read as the earlier instant, the stricter
    /// expiry; one that never happens (clocks going forward) is refused.
    fn timestamp(self, t: chrono::NaiveDateTime) -> Option<i64> {
        use chrono::TimeZone as _;
        match self {
            Zone::Fixed(off) => Some(t.and_utc().timestamp() - i64::from(off)),
            Zone::Named(tz) => tz.from_local_datetime(&t).earliest().map(|d| d.timestamp()),
        }
    }
}

/// How strictly a company's tokens are read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// Seconds of clock tolerance on `expires`.
    pub leeway: i64,
    pub zone: Zone,
}

/// One company key in both formats' derived forms.
#[derive(Clone)]
pub struct Keys {
    pub legacy: [u8; 16],
    pub v2: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<redacted>)")
    }
}

impl Keys {
    pub fn derive(secure_key: &[u8], company_id: &str) -> Self {
        Self {
            legacy: legacy_key(secure_key, company_id),
            v2: v2_key(secure_key, company_id),
        }
    }
}

/// Why a token was refused. For the log only: the client sees one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SsoError {
    #[error("not base64 or too long")]
    Encoding,
    #[error("wrong length, key or padding")]
    Cipher,
    #[error("not a UTF-8 JSON object")]
    Json,
    #[error("a required field is missing or invalid")]
    Field,
    #[error("expires is unreadable")]
    Expires,
    #[error("expired")]
    Expired,
    #[error("legacy format not accepted for this company")]
    LegacyRefused,
    #[error("no configured company opens this token")]
    NoCompany,
    #[error("more than one configured company opens this token")]
    Ambiguous,
}

/// The legacy key of a company.
pub fn legacy_key(secure_key: &[u8], company_id: &str) -> [u8; 16] {
    let mut h = Sha1::new();
    h.update(secure_key);
    h.update(company_id.as_bytes());
    let digest = h.finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// The `v2` key of a company: `HMAC-SHA256(secure_key, "scopegate-sso-v2:" + company_id)`.
pub fn v2_key(secure_key: &[u8], company_id: &str) -> [u8; 32] {
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secure_key).expect("HMAC takes keys of any length");
    mac.update(V2_LABEL);
    mac.update(company_id.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The bytes a token stands for, however its text was spelled (padding,
/// line breaks, spaces for `+`): the ciphertext of a legacy token, nonce +
/// ciphertext + tag of a `v2` one.
pub fn canonical(text: &str) -> Option<Vec<u8>> {
    match Format::of(text) {
        Format::V2 => URL_SAFE_NO_PAD.decode(text.strip_prefix(V2_PREFIX)?).ok(),
        Format::Legacy => ciphertext(text).ok(),
    }
}

/// The family of a legacy token: its last ciphertext block, which every
/// bit-flip forgery of one genuine token keeps (flipping it would scramble
/// the padding). `None` for `v2` tokens, which cannot be forged that way.
pub fn legacy_family(text: &str) -> Option<[u8; 16]> {
    if Format::of(text) != Format::Legacy {
        return None;
    }
    let ct = ciphertext(text).ok()?;
    let tail = ct.len().checked_sub(16)?;
    ct[tail..].try_into().ok()
}

/// The ciphertext of a token text, after the tolerated repairs.
fn ciphertext(text: &str) -> Result<Vec<u8>, SsoError> {
    if text.is_empty() || text.len() > MAX_TOKEN_LEN {
        return Err(SsoError::Encoding);
    }
    let mut b64: String = text
        .chars()
        .filter(|c| !matches!(c, '\r' | '\n'))
        .map(|c| if c == ' ' { '+' } else { c })
        .collect();
    if !b64
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    {
        return Err(SsoError::Encoding);
    }
    let unpadded = b64.trim_end_matches('=').len();
    b64.truncate(unpadded);
    while b64.len() % 4 != 0 {
        b64.push('=');
    }
    STANDARD.decode(&b64).map_err(|_| SsoError::Encoding)
}

fn clean(v: &str, max: usize) -> bool {
    !v.is_empty() && v.len() <= max && !v.chars().any(char::is_control)
}

/// A deliberately plain email check: one `@`, a non-empty local part, a
/// domain with a dot and no empty label, no whitespace or control characters.
pub fn valid_email(e: &str) -> bool {
    if e.len() > MAX_EMAIL_LEN || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && domain.split('.').all(|label| !label.is_empty())
        && !e.contains(['<', '>', ',', ';', '"', '\\'])
}

/// `expires` in the generators' three shapes: with an offset (Ruby), with
/// `Z` (C#), or without a zone (Java), the last read in `zone`.
pub fn parse_expires(v: &str, zone: Zone) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Some(t.timestamp());
    }
    let naive = chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f"))
        .ok()?;
    zone.timestamp(naive)
}

/// One payload member scopegate reads: absent or `null`, a string (borrowed
/// from the plaintext unless it had escapes), or a value of another type.
#[derive(Default)]
enum Member<'a> {
    #[default]
    Absent,
    Text(Cow<'a, str>),
    Wrong,
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Member<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<Member<'a>>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = Member<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or null")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Member<'a>, E> {
                Ok(Member::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Member<'a>, E> {
                Ok(Member::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_unit<E>(self) -> Result<Member<'a>, E> {
                Ok(Member::Absent)
            }
            fn visit_none<E>(self) -> Result<Member<'a>, E> {
                Ok(Member::Absent)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Member<'a>, E> {
                Ok(Member::Wrong)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Member<'a>, E> {
                Ok(Member::Wrong)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Member<'a>, E> {
                Ok(Member::Wrong)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Member<'a>, E> {
                Ok(Member::Wrong)
            }
            // Numbers arrive as a map too (serde_json's arbitrary precision).
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Member<'a>, A::Error> {
                while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Member::Wrong)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Member<'a>, A::Error> {
                while a
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Member::Wrong)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// The members of a payload scopegate reads; any other is skipped unparsed,
/// and a member given twice makes the payload unreadable.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Members<'a> {
    #[serde(borrow)]
    first_name: Member<'a>,
    #[serde(borrow)]
    last_name: Member<'a>,
    #[serde(borrow)]
    email: Member<'a>,
    #[serde(borrow)]
    mobile: Member<'a>,
    #[serde(borrow)]
    reference: Member<'a>,
    #[serde(borrow)]
    expires: Member<'a>,
}

/// Decrypts a legacy token: the plaintext, or a refusal. Anyone holding a
/// token can flip its bits, so a plaintext is only as good as [`payload`]'s
/// checks of it.
pub fn open_legacy(text: &str, key: &[u8; 16]) -> Result<Vec<u8>, SsoError> {
    let mut ct = ciphertext(text)?;
    if ct.is_empty() || ct.len() % 16 != 0 {
        return Err(SsoError::Cipher);
    }
    let n = cbc::Decryptor::<aes::Aes128>::new(key.into(), &[0u8; 16].into())
        .decrypt_padded_mut::<Pkcs7>(&mut ct)
        .map_err(|_| SsoError::Cipher)?
        .len();
    ct.truncate(n);
    Ok(ct)
}

/// Decrypts and authenticates a `v2` token.
pub fn open_v2(text: &str, key: &[u8; 32]) -> Result<Vec<u8>, SsoError> {
    let b64 = text.strip_prefix(V2_PREFIX).ok_or(SsoError::Encoding)?;
    if b64.len() > MAX_TOKEN_LEN {
        return Err(SsoError::Encoding);
    }
    let raw = URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| SsoError::Encoding)?;
    if raw.len() < NONCE_LEN + TAG_LEN + 2 {
        return Err(SsoError::Cipher);
    }
    let (nonce, sealed) = raw.split_at(NONCE_LEN);
    use aes_gcm::KeyInit as _;
    Aes256Gcm::new(key.into())
        .decrypt(nonce.into(), sealed)
        .map_err(|_| SsoError::Cipher)
}

/// Reads a decrypted payload strictly: a JSON object whose required fields
/// are present, strings, bounded and free of control characters, with a
/// plausible email. Unknown fields are dropped. Expiry is not checked here.
pub fn payload(plain: &[u8], zone: Zone) -> Result<SsoPayload, SsoError> {
    // All of it UTF-8, skipped members included: a forged legacy block of
    // random bytes is then far less likely to pass as text.
    let plain = std::str::from_utf8(plain).map_err(|_| SsoError::Json)?;
    // An object only: a struct would also read a JSON array, by position.
    if !plain.trim_start().starts_with('{') {
        return Err(SsoError::Json);
    }
    let m: Members<'_> = serde_json::from_str(plain).map_err(|_| SsoError::Json)?;
    let optional = |m: Member<'_>, max: usize| -> Result<Option<String>, SsoError> {
        match m {
            Member::Absent => Ok(None),
            Member::Text(s) if clean(&s, max) => Ok(Some(s.into_owned())),
            _ => Err(SsoError::Field),
        }
    };
    let required = |m: Member<'_>, max: usize| optional(m, max)?.ok_or(SsoError::Field);
    let payload = SsoPayload {
        first_name: required(m.first_name, MAX_FIELD_LEN)?,
        last_name: required(m.last_name, MAX_FIELD_LEN)?,
        email: required(m.email, MAX_EMAIL_LEN)?,
        mobile: optional(m.mobile, MAX_FIELD_LEN)?,
        reference: optional(m.reference, MAX_FIELD_LEN)?,
        expires: match m.expires {
            Member::Text(raw) if clean(&raw, 64) => {
                parse_expires(&raw, zone).ok_or(SsoError::Expires)?
            }
            _ => return Err(SsoError::Field),
        },
    };
    if !valid_email(&payload.email) {
        return Err(SsoError::Field);
    }
    Ok(payload)
}

/// Whether a payload is still valid at `now` (unix seconds).
pub fn check_expiry(p: &SsoPayload, now: i64, leeway: i64) -> Result<(), SsoError> {
    if now > p.expires.saturating_add(leeway) {
        return Err(SsoError::Expired);
    }
    Ok(())
}

/// Decodes and validates a token of either format at `now` (unix seconds).
/// `legacy` says whether the unauthenticated format is accepted at all.
pub fn decode(
    text: &str,
    keys: &Keys,
    legacy: bool,
    rules: Rules,
    now: i64,
) -> Result<SsoPayload, SsoError> {
    let plain = match Format::of(text) {
        Format::V2 => open_v2(text, &keys.v2)?,
        Format::Legacy if legacy => open_legacy(text, &keys.legacy)?,
        Format::Legacy => return Err(SsoError::LegacyRefused),
    };
    let p = payload(&plain, rules.zone)?;
    check_expiry(&p, now, rules.leeway)?;
    Ok(p)
}

/// Decodes and validates a legacy token at `now` (unix seconds), with
/// `leeway` seconds of clock tolerance on `expires` and zone-less times read
/// at `naive_offset_secs` east of UTC.
pub fn decode_legacy(
    text: &str,
    key: &[u8; 16],
    now: i64,
    leeway: i64,
    naive_offset_secs: i32,
) -> Result<SsoPayload, SsoError> {
    let p = payload(&open_legacy(text, key)?, Zone::Fixed(naive_offset_secs))?;
    check_expiry(&p, now, leeway)?;
    Ok(p)
}

/// Mints a legacy token as the vendor's generators do, URL-encoded once.
pub fn mint_legacy(payload_json: &[u8], key: &[u8; 16]) -> String {
    let ct = cbc::Encryptor::<aes::Aes128>::new(key.into(), &[0u8; 16].into())
        .encrypt_padded_vec_mut::<Pkcs7>(payload_json);
    let b64 = STANDARD.encode(ct);
    percent_encoding::utf8_percent_encode(&b64, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Mints a `v2` token with a fresh random nonce.
pub fn mint_v2(payload_json: &[u8], key: &[u8; 32]) -> String {
    use rand::RngCore as _;
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    mint_v2_with_nonce(payload_json, key, nonce)
}

/// [`mint_v2`] with a given nonce. A nonce must never repeat under one key:
/// this exists for fixed test vectors only.
pub fn mint_v2_with_nonce(payload_json: &[u8], key: &[u8; 32], nonce: [u8; NONCE_LEN]) -> String {
    use aes_gcm::KeyInit as _;
    let sealed = Aes256Gcm::new(key.into())
        .encrypt(&nonce.into(), payload_json)
        .expect("AES-GCM encrypts any payload under 64 GiB");
    let mut raw = nonce.to_vec();
    raw.extend_from_slice(&sealed);
    format!("{V2_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_read_strictly() {
        let read = |json: &str| payload(json.as_bytes(), Zone::UTC);
        let base = r#""first_name":"Marty","last_name":"McFly","email":"marty@example.com","expires":"2027-01-15T09:00:00Z""#;
        let ok = read(&format!("{{{base}}}")).unwrap();
        assert_eq!((ok.first_name.as_str(), ok.mobile), ("Marty", None));
        // Escapes are decoded; unknown members of any type are skipped;
        // null is absent.
        let p = read(&format!(
            r#" {{"mobile":null,"x":1.5e400,"y":[1,{{"z":null}}],"w":{{"a":[]}},{base},"reference":"caf\u00e9 \"7\""}}"#
        ))
        .unwrap();
        assert_eq!(
            (p.mobile, p.reference.as_deref()),
            (None, Some("café \"7\""))
        );
        // Not an object, not JSON, not UTF-8 anywhere (a skipped member too).
        for bad in [format!("[{base}]"), "\"x\"".into(), format!("{{{base}")] {
            assert_eq!(read(&bad), Err(SsoError::Json), "{bad}");
        }
        let mut raw = format!(r#"{{"note":"ab",{base}}}"#).into_bytes();
        raw[10] = 0xff;
        assert_eq!(payload(&raw, Zone::UTC), Err(SsoError::Json));
        // A member given twice is ambiguous: refused, not last-wins.
        let twice = format!(r#"{{{base},"email":"doc@example.com"}}"#);
        assert_eq!(read(&twice), Err(SsoError::Json));
        // A member of the wrong type, or a required one null or missing.
        for bad in [
            base.replace(r#""Marty""#, "7"),
            base.replace(r#""Marty""#, "null"),
            base.replace(r#""Marty""#, r#"["Marty"]"#),
            base.replace(r#""Marty""#, "true"),
            base.replace(r#""2027-01-15T09:00:00Z""#, "1800003600"),
            format!(r#"{base},"mobile":{{"n":1}}"#),
            base.replace(r#""first_name":"Marty","#, ""),
        ] {
            assert_eq!(read(&format!("{{{bad}}}")), Err(SsoError::Field), "{bad}");
        }
    }

    #[test]
    fn the_three_expires_shapes() {
        let utc = 1_800_003_600; // 2027-01-15T09:00:00Z
        let utc0 = Zone::UTC;
        assert_eq!(parse_expires("2027-01-15T09:00:00Z", utc0), Some(utc));
        assert_eq!(parse_expires("2027-01-15T10:00:00+01:00", utc0), Some(utc));
        assert_eq!(parse_expires("2027-01-15T09:00:00", utc0), Some(utc));
        assert_eq!(
            parse_expires("2027-01-15T10:00:00", Zone::Fixed(3600)),
            Some(utc)
        );
        assert_eq!(parse_expires("2027-01-15T09:00:00.250Z", utc0), Some(utc));
        for bad in [
            "",
            "tomorrow",
            "2027-01-15",
            "2027-13-01T00:00:00Z",
            "1800003600",
        ] {
            assert_eq!(parse_expires(bad, Zone::UTC), None, "{bad:?}");
        }
    }

    #[test]
    fn emails_are_checked_plainly() {
        for ok in [
            "smith@example.com",
            "a.b+c@sub.example.co.uk",
            "jöns@exämple.se",
        ] {
            assert!(valid_email(ok), "{ok}");
        }
        for bad in [
            "smith",
            "@example.com",
            "smith@",
            "smith@localhost",
            "a@b@c.d",
            "a b@c.d",
            "a@b..c",
            "a@b.c\n",
            "\"a\"@b.c",
            "a@b.c,d@e.f",
        ] {
            assert!(!valid_email(bad), "{bad:?}");
        }
    }

    #[test]
    fn text_repairs_are_the_tolerated_ones_only() {
        assert_eq!(ciphertext("AAAA").unwrap(), vec![0, 0, 0]);
        assert_eq!(ciphertext("AA").unwrap(), vec![0], "missing padding");
        assert_eq!(ciphertext("AA\r\nAA").unwrap(), vec![0, 0, 0], "newlines");
        assert_eq!(
            ciphertext("++++").unwrap(),
            ciphertext("    ").unwrap(),
            "+ as space"
        );
        for bad in ["", "AA%2B", "AA-_", "AA.A", &"A".repeat(MAX_TOKEN_LEN + 1)] {
            assert_eq!(ciphertext(bad), Err(SsoError::Encoding), "{bad:.10}");
        }
    }

    const JSON: &str = r#"{"first_name":"Ann","last_name":"Lee","email":"ann@example.com","expires":"2027-01-15T09:00:00Z"}"#;
    const NOW: i64 = 1_800_000_000; // 2027-01-15T08:00:00Z
    const RULES: Rules = Rules {
        leeway: 30,
        zone: Zone::UTC,
    };

    #[test]
    fn both_formats_round_trip_and_v2_nonces_are_fresh() {
        let keys = Keys::derive(b"secure", "37000");
        let legacy = mint_legacy(JSON.as_bytes(), &keys.legacy);
        let once = percent_encoding::percent_decode_str(&legacy)
            .decode_utf8()
            .unwrap();
        assert_eq!(
            decode(&once, &keys, true, RULES, NOW).unwrap().email,
            "ann@example.com"
        );
        assert_eq!(
            decode(&once, &keys, false, RULES, NOW),
            Err(SsoError::LegacyRefused)
        );
        let v2 = mint_v2(JSON.as_bytes(), &keys.v2);
        assert!(v2.starts_with("v2.") && !v2.contains(['+', '/', '=', '%']));
        assert_eq!(
            decode(&v2, &keys, false, RULES, NOW).unwrap().email,
            "ann@example.com"
        );
        assert_ne!(v2, mint_v2(JSON.as_bytes(), &keys.v2));
        let other = Keys::derive(b"secure", "37001");
        assert_eq!(
            decode(&v2, &other, false, RULES, NOW),
            Err(SsoError::Cipher)
        );
    }

    #[test]
    fn every_flipped_bit_of_a_v2_token_is_refused() {
        let keys = Keys::derive(b"secure", "37000");
        let v2 = mint_v2(JSON.as_bytes(), &keys.v2);
        let raw = URL_SAFE_NO_PAD.decode(&v2[3..]).unwrap();
        for bit in 0..raw.len() * 8 {
            let mut r = raw.clone();
            r[bit / 8] ^= 1 << (bit % 8);
            let t = format!("v2.{}", URL_SAFE_NO_PAD.encode(&r));
            assert_eq!(
                decode(&t, &keys, false, RULES, NOW),
                Err(SsoError::Cipher),
                "bit {bit}"
            );
        }
    }

    #[test]
    fn zones_read_a_java_expiry_with_daylight_saving_time() {
        let london = Zone::parse("Europe/London").unwrap();
        // Summer: BST is UTC+1.
        assert_eq!(
            parse_expires("2027-07-01T10:00:00", london),
            parse_expires("2027-07-01T09:00:00Z", Zone::UTC)
        );
        // Winter: GMT.
        assert_eq!(
            parse_expires("2027-01-15T10:00:00", london),
            parse_expires("2027-01-15T10:00:00Z", Zone::UTC)
        );
        // 01:30 happens twice on 2027-10-31: the earlier (BST) instant.
        assert_eq!(
            parse_expires("2027-10-31T01:30:00", london),
            parse_expires("2027-10-31T00:30:00Z", Zone::UTC)
        );
        // 01:30 never happens on 2027-03-28.
        assert_eq!(parse_expires("2027-03-28T01:30:00", london), None);
        assert_eq!(Zone::parse("+05:30"), Some(Zone::Fixed(19_800)));
        assert_eq!(Zone::parse("-01:00"), Some(Zone::Fixed(-3600)));
        assert_eq!(Zone::parse("utc"), Some(Zone::UTC));
        for bad in ["+5:30", "+05:60", "+19:00", "Mars/Olympus", ""] {
            assert_eq!(Zone::parse(bad), None, "{bad}");
        }
    }
}
