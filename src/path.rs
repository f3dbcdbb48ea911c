//! Request path normalization: the one form of the path that routes are matched
//! on and that the upstream receives, so that scopegate and the backend can never
//! disagree about which resource a request names.
//!
//! Invariants of a normalized path:
//! - starts with `/`, has no empty segment except a trailing one (`//` merged);
//! - no `.` or `..` segment (resolved per RFC 3986 §5.2.4, clamped at the root);
//! - percent-escapes of unreserved characters decoded, other escapes upper-case;
//! - never contains `%2F`, `%5C`, `%00`, `\`, `#`, control bytes, or a dot segment
//!   carrying `;` parameters (`..;`, which Tomcat-style backends read as `..`).
//!
//! Normalizing a normalized path returns it unchanged.

use std::borrow::Cow;

/// Why a path was refused. All of these answer 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path must start with '/'")]
    NotAbsolute,
    #[error("encoded slash or backslash in the path")]
    EncodedSeparator,
    #[error("NUL or control character in the path")]
    Control,
    #[error("backslash in the path")]
    Backslash,
    #[error("fragment marker in the path")]
    Fragment,
    #[error("malformed percent-escape in the path")]
    BadEscape,
    #[error("dot segment with parameters in the path")]
    DotSegmentParams,
    #[error("';' (path parameters) in the path")]
    Semicolon,
    #[error("percent-escapes that are not UTF-8 (overlong or invalid sequences)")]
    BadUtf8,
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// True when `raw` is certainly already normalized, so the common case costs one scan.
fn is_plain(raw: &[u8]) -> bool {
    let mut prev = 0u8;
    for (i, &b) in raw.iter().enumerate() {
        match b {
            b'%' | b'\\' | b'#' | b';' => return false,
            b if b < 0x21 || b == 0x7f => return false,
            b'/' if prev == b'/' => return false,
            b'.' if prev == b'/' => {
                // "/." starts a dot segment only if followed by '/', ';', '.' or the end.
                match raw.get(i + 1) {
                    None | Some(b'/') | Some(b'.') | Some(b';') => return false,
                    _ => {}
                }
            }
            _ => {}
        }
        prev = b;
    }
    true
}

/// Normalizes the path component of an origin-form request target.
pub fn normalize(raw: &str) -> Result<Cow<'_, str>, PathError> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    if is_plain(bytes) {
        return Ok(Cow::Borrowed(raw));
    }

    // Path parameters (`;jsessionid=..`, `..;/`) are dropped by some backends
    // before they route (Tomcat, Spring), so a path carrying one names a
    // different resource there: refused, raw or encoded.
    if bytes.contains(&b';') || raw.contains("%3B") || raw.contains("%3b") {
        return Err(PathError::Semicolon);
    }
    // Every escape decoded must leave valid UTF-8: an overlong `%c0%ae` is a
    // `.` to some decoders and not to others.
    if bytes.contains(&b'%') {
        let all: Vec<u8> = percent_encoding::percent_decode(bytes).collect();
        if std::str::from_utf8(&all).is_err() {
            return Err(PathError::BadUtf8);
        }
    }

    // Pass 1: percent-decoding of unreserved characters and refusal of the bytes
    // that backends read as separators or terminators.
    let mut decoded = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let (h, l) = match (bytes.get(i + 1), bytes.get(i + 2)) {
                    (Some(&h), Some(&l)) => (h, l),
                    _ => return Err(PathError::BadEscape),
                };
                let v = match (hex_val(h), hex_val(l)) {
                    (Some(h), Some(l)) => h << 4 | l,
                    _ => return Err(PathError::BadEscape),
                };
                match v {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    v if v < 0x20 || v == 0x7f => return Err(PathError::Control),
                    v if is_unreserved(v) => decoded.push(v as char),
                    v => {
                        decoded.push('%');
                        decoded.push(char::from(b"0123456789ABCDEF"[usize::from(v >> 4)]));
                        decoded.push(char::from(b"0123456789ABCDEF"[usize::from(v & 15)]));
                    }
                }
                i += 3;
                continue;
            }
            b'\\' => return Err(PathError::Backslash),
            b'#' => return Err(PathError::Fragment),
            b if b < 0x21 || b == 0x7f => return Err(PathError::Control),
            _ => {}
        }
        // Multi-byte UTF-8 sequences are copied whole; `raw` is a valid `str`.
        let ch_len = utf8_len(b);
        decoded.push_str(&raw[i..i + ch_len]);
        i += ch_len;
    }

    // Pass 2: segments. Empty segments are merged, dot segments resolved.
    let mut out: Vec<&str> = Vec::new();
    let mut trailing_slash = decoded.ends_with('/');
    for seg in decoded.split('/') {
        let head = seg.split(';').next().unwrap_or(seg);
        let is_dot = head == "." || head == "..";
        if is_dot && head.len() != seg.len() {
            return Err(PathError::DotSegmentParams);
        }
        match seg {
            "" => {}
            "." => trailing_slash = true,
            ".." => {
                out.pop();
                trailing_slash = true;
            }
            s => {
                out.push(s);
                trailing_slash = decoded.ends_with('/');
            }
        }
    }
    let mut norm = String::with_capacity(decoded.len());
    for seg in &out {
        norm.push('/');
        norm.push_str(seg);
    }
    if norm.is_empty() || trailing_slash {
        norm.push('/');
    }
    Ok(Cow::Owned(norm))
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Result<String, PathError> {
        normalize(s).map(|c| c.into_owned())
    }

    #[test]
    fn plain_paths_pass_unchanged_and_borrowed() {
        assert!(matches!(
            normalize("/v2/bookings/abc").unwrap(),
            Cow::Borrowed(_)
        ));
        assert_eq!(n("/").unwrap(), "/");
        assert_eq!(n("/a/b/").unwrap(), "/a/b/");
        assert_eq!(n("/a/.well-known").unwrap(), "/a/.well-known");
    }

    #[test]
    fn dot_segments_are_resolved_and_clamped_at_root() {
        assert_eq!(n("/public/../admin").unwrap(), "/admin");
        assert_eq!(n("/public/%2e%2e/admin").unwrap(), "/admin");
        assert_eq!(n("/public/%2E./admin").unwrap(), "/admin");
        assert_eq!(n("/../../etc").unwrap(), "/etc");
        assert_eq!(n("/a/./b/.").unwrap(), "/a/b/");
        assert_eq!(n("/a/b/..").unwrap(), "/a/");
        assert_eq!(n("/..").unwrap(), "/");
    }

    #[test]
    fn unreserved_escapes_are_decoded_others_uppercased() {
        assert_eq!(n("/v2/%62ookings").unwrap(), "/v2/bookings");
        assert_eq!(n("/a%7eb").unwrap(), "/a~b");
        assert_eq!(n("/a%3fb").unwrap(), "/a%3Fb");
        assert_eq!(n("/a%20b").unwrap(), "/a%20b");
    }

    #[test]
    fn repeated_slashes_are_merged() {
        assert_eq!(n("//v2///bookings").unwrap(), "/v2/bookings");
    }

    #[test]
    fn separators_and_terminators_are_refused() {
        assert_eq!(n("/a%2Fb"), Err(PathError::EncodedSeparator));
        assert_eq!(n("/a%2fb"), Err(PathError::EncodedSeparator));
        assert_eq!(n("/a%5Cb"), Err(PathError::EncodedSeparator));
        assert_eq!(n("/a%00b"), Err(PathError::Control));
        assert_eq!(n("/a\\b"), Err(PathError::Backslash));
        assert_eq!(n("/a#b"), Err(PathError::Fragment));
        assert_eq!(n("/a%zz"), Err(PathError::BadEscape));
        assert_eq!(n("/a%2"), Err(PathError::BadEscape));
        assert_eq!(n("a/b"), Err(PathError::NotAbsolute));
        assert_eq!(n("*"), Err(PathError::NotAbsolute));
    }

    #[test]
    fn path_parameters_and_non_utf8_escapes_are_refused() {
        for p in [
            "/public/..;/admin",
            "/public/.;x/admin",
            "/a;b/c",
            "/a/b;",
            "/a/..%3B/b",
            "/a%3bb",
        ] {
            assert_eq!(n(p), Err(PathError::Semicolon), "{p}");
        }
        for p in ["/x/%c0%ae%c0%ae/y", "/x/%e0%80%ae", "/x/%ff"] {
            assert_eq!(n(p), Err(PathError::BadUtf8), "{p}");
        }
        assert_eq!(n("/x/%C3%A9").unwrap(), "/x/%C3%A9");
    }

    #[test]
    fn normalization_is_idempotent_on_samples() {
        for p in ["/a/../b/./c//d/", "/%41%2e%2E/x", "/x/%7E/%20", "/.../a"] {
            let once = n(p).unwrap();
            assert_eq!(n(&once).unwrap(), once, "{p}");
        }
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// Paths built from what matters to normalization.
        fn path() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                Just("/".to_string()),
                Just(".".to_string()),
                Just("..".to_string()),
                Just("%2e".to_string()),
                Just("%2E".to_string()),
                Just("%41".to_string()),
                Just("%7e".to_string()),
                Just("%20".to_string()),
                Just("%C3%A9".to_string()),
                "[a-zA-Z0-9_~-]{0,3}",
            ];
            prop::collection::vec(piece, 0..12).prop_map(|v| format!("/{}", v.concat()))
        }

        proptest! {
            #[test]
            fn normalization_is_idempotent_and_leaves_no_dot_or_empty_segment(p in path()) {
                if let Ok(once) = normalize(&p) {
                    prop_assert_eq!(normalize(&once).unwrap(), once.clone());
                    prop_assert!(once.starts_with('/'));
                    prop_assert!(!once.contains("//"), "{}", once);
                    let body = once.trim_end_matches('/');
                    prop_assert!(
                        body.split('/').skip(1).all(|seg| seg != "." && seg != ".."),
                        "{}", once
                    );
                    // Unreserved characters never stay encoded.
                    prop_assert!(!once.contains("%41") && !once.contains("%7E") && !once.contains("%2E"), "{}", once);
                }
            }
        }
    }
}
