//! SSO tokens (BookingBug), legacy format: decoding exactly what the vendor's
//! Ruby, Java and C# generators produce, and refusing everything else.
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
//! This module is the decoder only; the scheme's configuration and wiring
//! come with it in a later step.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
use base64::{engine::general_purpose::STANDARD, Engine as _};
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};

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
/// `Z` (C#), or without a zone (Java), the last read at `naive_offset_secs`
/// east of UTC.
pub fn parse_expires(v: &str, naive_offset_secs: i32) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Some(t.timestamp());
    }
    let naive = chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f"))
        .ok()?;
    Some(naive.and_utc().timestamp() - i64::from(naive_offset_secs))
}

fn string_field<'a>(m: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, SsoError> {
    match m.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(SsoError::Field),
    }
}

/// Decodes and validates a legacy token at `now` (unix seconds), with
/// `leeway` seconds of clock tolerance on `expires`.
pub fn decode_legacy(
    text: &str,
    key: &[u8; 16],
    now: i64,
    leeway: i64,
    naive_offset_secs: i32,
) -> Result<SsoPayload, SsoError> {
    let mut ct = ciphertext(text)?;
    if ct.is_empty() || ct.len() % 16 != 0 {
        return Err(SsoError::Cipher);
    }
    let plain = cbc::Decryptor::<aes::Aes128>::new(key.into(), &[0u8; 16].into())
        .decrypt_padded_mut::<Pkcs7>(&mut ct)
        .map_err(|_| SsoError::Cipher)?;
    let m = match serde_json::from_slice::<Value>(plain) {
        Ok(Value::Object(m)) => m,
        _ => return Err(SsoError::Json),
    };
    let required = |name: &str, max: usize| -> Result<String, SsoError> {
        match string_field(&m, name)? {
            Some(s) if clean(s, max) => Ok(s.to_string()),
            _ => Err(SsoError::Field),
        }
    };
    let optional = |name: &str| -> Result<Option<String>, SsoError> {
        match string_field(&m, name)? {
            None => Ok(None),
            Some(s) if clean(s, MAX_FIELD_LEN) => Ok(Some(s.to_string())),
            Some(_) => Err(SsoError::Field),
        }
    };
    let payload = SsoPayload {
        first_name: required("first_name", MAX_FIELD_LEN)?,
        last_name: required("last_name", MAX_FIELD_LEN)?,
        email: required("email", MAX_EMAIL_LEN)?,
        mobile: optional("mobile")?,
        reference: optional("reference")?,
        expires: {
            let raw = required("expires", 64)?;
            parse_expires(&raw, naive_offset_secs).ok_or(SsoError::Expires)?
        },
    };
    if !valid_email(&payload.email) {
        return Err(SsoError::Field);
    }
    if now > payload.expires + leeway {
        return Err(SsoError::Expired);
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_expires_shapes() {
        let utc = 1_800_003_600; // 2027-01-15T09:00:00Z
        assert_eq!(parse_expires("2027-01-15T09:00:00Z", 0), Some(utc));
        assert_eq!(parse_expires("2027-01-15T10:00:00+01:00", 0), Some(utc));
        assert_eq!(parse_expires("2027-01-15T09:00:00", 0), Some(utc));
        assert_eq!(parse_expires("2027-01-15T10:00:00", 3600), Some(utc));
        assert_eq!(parse_expires("2027-01-15T09:00:00.250Z", 0), Some(utc));
        for bad in [
            "",
            "tomorrow",
            "2027-01-15",
            "2027-13-01T00:00:00Z",
            "1800003600",
        ] {
            assert_eq!(parse_expires(bad, 0), None, "{bad:?}");
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
}
