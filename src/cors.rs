//! CORS, so that a customer's browser can call the booking API directly.
//!
//! Which origins may call is configured per app (`[[app]] cors_origins`),
//! per SSO company, and per route for credentials that name neither
//! (`[route.cors] origins`); which methods and headers, per route
//! (`[route.cors]`). A route without `[route.cors]` has no CORS at all.
//!
//! - A preflight is answered by scopegate, without a credential and without
//!   the upstream, when the origin may call the route at all (it is allowed
//!   for an app or company the route accepts, or by the route) and the
//!   method and headers asked for are allowed.
//! - An actual request from another origin is checked twice: before
//!   authentication against the same set, and after it against the app (or
//!   company) the credential names, so one app's page cannot call with
//!   another app's tokens. A refusal is 403 `origin_not_allowed`, logged,
//!   with no CORS header, and the upstream is never asked.
//! - Allowed responses carry `Access-Control-Allow-Origin: <the origin>` and
//!   `Access-Control-Allow-Credentials: true` (never `*`), and every response
//!   of a CORS route carries `Vary: Origin`.

use std::time::Duration;

use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};

use crate::body::ResponseBody;

/// An allowed origin: exact (`https://shop.example.com`, `http://127.0.0.1:8090`)
/// or every subdomain of a domain (`https://*.example.com`, the domain itself
/// not included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPattern {
    Exact(String),
    Subdomains {
        scheme: String,
        /// `.example.com`
        suffix: String,
        /// `:8443`, or empty.
        port: String,
    },
}

impl OriginPattern {
    /// Parses an origin as a browser sends it: `scheme://host[:port]`, no
    /// path, no trailing `/`, lower case. `*` and `null` are refused.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("{s:?} is not an origin (expected scheme://host[:port])"))?;
        if !matches!(scheme, "http" | "https") {
            return Err(format!("{s:?}: the scheme must be http or https"));
        }
        if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
            return Err(format!("{s:?} is not an origin (no path, query or user)"));
        }
        if s != s.to_ascii_lowercase() {
            return Err(format!("{s:?}: origins are compared in lower case"));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("{s:?}: invalid port"));
                }
                (h, format!(":{p}"))
            }
            _ => (rest, String::new()),
        };
        match host.strip_prefix("*.") {
            Some(domain) => {
                if domain.is_empty() || domain.contains('*') || !domain.contains('.') {
                    return Err(format!(
                        "{s:?}: a pattern must name a domain, e.g. https://*.example.com"
                    ));
                }
                Ok(OriginPattern::Subdomains {
                    scheme: scheme.into(),
                    suffix: format!(".{domain}"),
                    port,
                })
            }
            None if host.contains('*') => Err(format!(
                "{s:?}: '*' only as the first label (https://*.example.com); never alone"
            )),
            None => Ok(OriginPattern::Exact(s.to_string())),
        }
    }

    pub fn matches(&self, origin: &str) -> bool {
        match self {
            OriginPattern::Exact(o) => o == origin,
            OriginPattern::Subdomains {
                scheme,
                suffix,
                port,
            } => {
                let Some(rest) = origin
                    .strip_prefix(scheme.as_str())
                    .and_then(|r| r.strip_prefix("://"))
                else {
                    return false;
                };
                // The port must be exactly the pattern's (none when it has none).
                let host = if port.is_empty() {
                    if rest.contains(':') {
                        return false;
                    }
                    rest
                } else {
                    match rest.strip_suffix(port.as_str()) {
                        Some(h) if !h.contains(':') => h,
                        _ => return false,
                    }
                };
                host.len() > suffix.len()
                    && host.ends_with(suffix.as_str())
                    && host[..host.len() - suffix.len()]
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                    && !host.starts_with('.')
            }
        }
    }
}

/// Whether any of `patterns` allows `origin`.
pub fn allowed(patterns: &[OriginPattern], origin: &str) -> bool {
    patterns.iter().any(|p| p.matches(origin))
}

/// A route's CORS settings.
#[derive(Debug, Clone)]
pub struct RouteCors {
    pub methods: Vec<Method>,
    /// Lower case.
    pub headers: Vec<HeaderName>,
    /// `Access-Control-Expose-Headers`, when any.
    pub expose: Option<HeaderValue>,
    pub max_age: Duration,
    /// For credentials that name no app or company (public, session, API key).
    pub origins: Vec<OriginPattern>,
}

/// Request headers a browser never lists in a preflight's
/// `Access-Control-Request-Headers` because they are always allowed.
const SAFELISTED: &[&str] = &[
    "accept",
    "accept-language",
    "content-language",
    "content-type",
];

impl RouteCors {
    /// Whether the preflight's requested headers are all allowed.
    pub fn headers_allowed(&self, requested: &str) -> bool {
        requested
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .all(|h| {
                SAFELISTED.contains(&h.as_str()) || self.headers.iter().any(|a| a.as_str() == h)
            })
    }

    /// The answer to an allowed preflight.
    pub fn preflight(&self, origin: &HeaderValue) -> Response<ResponseBody> {
        let mut resp = Response::new(ResponseBody::empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let h = resp.headers_mut();
        self.allow(h, origin);
        let methods: Vec<&str> = self.methods.iter().map(Method::as_str).collect();
        if let Ok(v) = HeaderValue::from_str(&methods.join(", ")) {
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
        }
        if !self.headers.is_empty() {
            let names: Vec<&str> = self.headers.iter().map(HeaderName::as_str).collect();
            if let Ok(v) = HeaderValue::from_str(&names.join(", ")) {
                h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
            }
        }
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(self.max_age.as_secs()),
        );
        h.append(
            header::VARY,
            HeaderValue::from_static(
                "Access-Control-Request-Method, Access-Control-Request-Headers",
            ),
        );
        resp
    }

    /// Marks a response as readable by `origin`.
    pub fn allow(&self, h: &mut HeaderMap, origin: &HeaderValue) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        if let Some(e) = &self.expose {
            h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, e.clone());
        }
        vary_origin(h);
    }
}

/// Adds `Vary: Origin` once.
pub fn vary_origin(h: &mut HeaderMap) {
    let present = h.get_all(header::VARY).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("origin"))
        })
    });
    if !present {
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

/// The request's single `Origin`, when it has one that can be compared.
pub fn origin(headers: &HeaderMap) -> Option<&HeaderValue> {
    let mut all = headers.get_all(header::ORIGIN).iter();
    match (all.next(), all.next()) {
        (Some(o), None) => Some(o),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_subdomain_patterns() {
        let exact = OriginPattern::parse("http://127.0.0.1:8090").unwrap();
        assert!(exact.matches("http://127.0.0.1:8090"));
        assert!(!exact.matches("http://127.0.0.1:8091"));
        assert!(!exact.matches("https://127.0.0.1:8090"));
        let sub = OriginPattern::parse("https://*.example.com").unwrap();
        assert!(sub.matches("https://shop.example.com"));
        assert!(sub.matches("https://a.b.example.com"));
        assert!(!sub.matches("https://example.com"));
        assert!(!sub.matches("https://evilexample.com"));
        assert!(!sub.matches("https://shop.example.com.evil.net"));
        assert!(!sub.matches("http://shop.example.com"));
        assert!(!sub.matches("https://shop.example.com:8443"));
        let sub_port = OriginPattern::parse("https://*.example.com:8443").unwrap();
        assert!(sub_port.matches("https://shop.example.com:8443"));
        assert!(!sub_port.matches("https://shop.example.com"));
        for bad in [
            "*",
            "null",
            "https://*",
            "https://*.com.*",
            "https://a.*.example.com",
            "https://shop.example.com/",
            "https://Shop.example.com",
            "ftp://x.example.com",
            "https://x.example.com:port",
        ] {
            assert!(OriginPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn requested_headers_are_checked_case_insensitively() {
        let cors = RouteCors {
            methods: vec![Method::GET],
            headers: vec![HeaderName::from_static("x-sso-token")],
            expose: None,
            max_age: Duration::from_secs(600),
            origins: vec![],
        };
        assert!(cors.headers_allowed("X-SSO-Token, content-type"));
        assert!(cors.headers_allowed(""));
        assert!(!cors.headers_allowed("x-sso-token, authorization"));
    }
}
