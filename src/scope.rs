//! The header contract toward the upstream: strip everything a client could use
//! to lie about who it is, then write the trusted values.
//!
//! Stripping is unconditional and happens before routing and authentication,
//! on every route including public ones. Header names are compared in their
//! canonical form (lower case, `_` read as `-`), because CGI, WSGI and PHP
//! backends read `X_Scope_App` as `X-Scope-App`.

use std::net::IpAddr;

use http::{header, HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

use crate::auth::Principal;

/// Headers that only describe one connection (RFC 9110 §7.6.1, plus the legacy
/// and protocol-switching ones). `expect` is answered by scopegate itself.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
    "expect",
];

/// Client-supplied forwarding information, dropped unless the peer is trusted.
const FORWARDING_EXACT: &[&str] = &["forwarded", "x-real-ip"];
const FORWARDING_PREFIX: &str = "x-forwarded-";

/// True when `name` (already lower case, as `HeaderName` stores it) starts with
/// `prefix` (lower case, `-` separated) once `_` is read as `-`.
fn canon_starts_with(name: &str, prefix: &str) -> bool {
    name.len() >= prefix.len()
        && name
            .bytes()
            .zip(prefix.bytes())
            .all(|(n, p)| n == p || (n == b'_' && p == b'-'))
}

/// An address as text, IPv4 without the formatting machinery (it is written
/// on every forwarded request).
fn ip_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let mut s = String::with_capacity(15);
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                if octet >= 100 {
                    s.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    s.push(char::from(b'0' + octet / 10 % 10));
                }
                s.push(char::from(b'0' + octet % 10));
            }
            s
        }
        IpAddr::V6(_) => ip.to_string(),
    }
}

fn canon_eq(name: &str, other: &str) -> bool {
    name.len() == other.len() && canon_starts_with(name, other)
}

/// The compiled header policy of one configuration.
#[derive(Debug, Clone)]
pub struct HeaderPolicy {
    /// Lower case, e.g. `x-scope-`.
    prefix: Box<str>,
    names: ScopeNames,
    overrides: Vec<Box<str>>,
    trusted_proxies: Vec<IpNet>,
    request_id: HeaderName,
}

/// The header names scopegate writes, derived once from the prefix.
#[derive(Debug, Clone)]
struct ScopeNames {
    credential: HeaderName,
    route: HeaderName,
    app: HeaderName,
    subject: HeaderName,
    customer_email: HeaderName,
    customer_reference: HeaderName,
    first_name: HeaderName,
    last_name: HeaderName,
    permissions: HeaderName,
    reach: HeaderName,
    booking_id: HeaderName,
    action: HeaderName,
    business: HeaderName,
}

/// What stripping removed, for the debug log (names only, never values).
#[derive(Debug, Default)]
pub struct Stripped {
    pub names: Vec<HeaderName>,
}

/// The header names listed in `Connection` values. Read as bytes: a value
/// that is not UTF-8 elsewhere (`x-internal, \xff`) still names what it
/// names, as the list is tokens and commas (RFC 9110 7.6.1).
fn connection_names(headers: &HeaderMap) -> impl Iterator<Item = HeaderName> + '_ {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .filter_map(|t| HeaderName::from_bytes(t.trim_ascii()).ok())
}

impl HeaderPolicy {
    /// `prefix` must be a valid header-name prefix such as `X-Scope-`; the
    /// config validator guarantees it.
    pub fn new(
        prefix: &str,
        overrides: &[HeaderName],
        trusted_proxies: Vec<IpNet>,
        request_id: HeaderName,
    ) -> Result<Self, http::header::InvalidHeaderName> {
        let prefix = prefix.to_ascii_lowercase().replace('_', "-");
        let name = |suffix: &str| HeaderName::from_bytes(format!("{prefix}{suffix}").as_bytes());
        Ok(Self {
            names: ScopeNames {
                credential: name("credential")?,
                route: name("route")?,
                app: name("app")?,
                subject: name("subject")?,
                customer_email: name("customer-email")?,
                customer_reference: name("customer-reference")?,
                first_name: name("customer-first-name")?,
                last_name: name("customer-last-name")?,
                permissions: name("permissions")?,
                reach: name("reach")?,
                booking_id: name("booking-id")?,
                action: name("action")?,
                business: name("business")?,
            },
            prefix: prefix.into(),
            overrides: overrides.iter().map(|h| h.as_str().into()).collect(),
            trusted_proxies,
            request_id,
        })
    }

    /// The client's address: the peer, or behind trusted proxies the
    /// nearest `X-Forwarded-For` entry that is not one of them.
    pub fn client_ip(&self, headers: &HeaderMap, peer: IpAddr) -> IpAddr {
        if !self.is_trusted(peer) {
            return peer;
        }
        let chain: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        // From the right: entries our proxies appended, then the client.
        // Some proxies write `ip:port` or `[v6]:port`.
        for entry in chain.into_iter().rev() {
            let entry = entry.trim();
            let parsed = entry
                .parse::<IpAddr>()
                .or_else(|_| entry.parse::<std::net::SocketAddr>().map(|s| s.ip()));
            match parsed {
                Ok(a) if self.is_trusted(a) => continue,
                Ok(a) => return a,
                Err(_) => break,
            }
        }
        peer
    }

    pub fn is_trusted(&self, peer: IpAddr) -> bool {
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(peer),
            v4 => v4,
        };
        self.trusted_proxies.iter().any(|n| n.contains(&peer))
    }

    pub fn request_id_header(&self) -> &HeaderName {
        &self.request_id
    }

    fn is_scope(&self, name: &str) -> bool {
        canon_starts_with(name, &self.prefix)
    }

    fn is_forwarding(name: &str) -> bool {
        canon_starts_with(name, FORWARDING_PREFIX)
            || FORWARDING_EXACT.iter().any(|f| canon_eq(name, f))
    }

    fn is_override(&self, name: &str) -> bool {
        self.overrides.iter().any(|o| canon_eq(name, o))
    }

    /// Removes from a request's headers everything the upstream must not take
    /// from the client. Runs before anything is added, so a `Connection` header
    /// can only remove client headers, never scopegate's own.
    pub fn strip_request(&self, headers: &mut HeaderMap, peer_trusted: bool) -> Stripped {
        // Host and framing are rebuilt by scopegate; the rest named go.
        let mut doomed: Vec<HeaderName> = connection_names(headers)
            .filter(|n| *n != header::HOST)
            .collect();
        for name in headers.keys() {
            let s = name.as_str();
            // `Transfer_Encoding`, `Content_Length`: lookalikes of framing
            // headers that a backend reading `_` as `-` would frame by.
            let lookalike = s.contains('_') && {
                let canon = s.replace('_', "-");
                HOP_BY_HOP.contains(&canon.as_str()) || canon == "content-length"
            };
            if lookalike
                || HOP_BY_HOP.contains(&s)
                || self.is_scope(s)
                || self.is_override(s)
                || (!peer_trusted && Self::is_forwarding(s))
            {
                doomed.push(name.clone());
            }
        }
        for name in &doomed {
            headers.remove(name);
        }
        doomed.dedup();
        Stripped { names: doomed }
    }

    /// Removes every spelling of `name` (any case, `_` for `-`), before
    /// scopegate sets that header itself.
    pub fn remove_spellings(headers: &mut HeaderMap, name: &HeaderName) {
        Self::remove_spellings_of(headers, &[name.as_str()]);
    }

    /// [`Self::remove_spellings`] for several names, in one pass over the
    /// headers (no allocation when none is present).
    pub fn remove_spellings_of(headers: &mut HeaderMap, names: &[&str]) {
        let doomed: Vec<HeaderName> = headers
            .keys()
            .filter(|k| names.iter().any(|n| canon_eq(k.as_str(), n)))
            .cloned()
            .collect();
        for k in &doomed {
            headers.remove(k);
        }
    }

    /// Trailers get the same treatment as headers; no trailer is trusted.
    pub fn strip_trailers(&self, trailers: &mut HeaderMap) {
        self.strip_request(trailers, false);
    }

    /// Removes hop-by-hop and `Connection`-named headers from an upstream response.
    pub fn strip_response(headers: &mut HeaderMap) {
        let listed: Vec<HeaderName> = connection_names(headers).collect();
        // Only the names present are removed: one look at each.
        let doomed: Vec<HeaderName> = headers
            .keys()
            .filter(|k| HOP_BY_HOP.contains(&k.as_str()) || listed.contains(k))
            .cloned()
            .collect();
        for name in &doomed {
            headers.remove(name);
        }
    }

    /// Writes `X-Forwarded-For/-Proto/-Host`. From a trusted proxy the existing
    /// chain is extended; otherwise (headers already stripped) it starts here.
    pub fn write_forwarding(
        &self,
        headers: &mut HeaderMap,
        peer: IpAddr,
        peer_trusted: bool,
        proto: &'static str,
        host: Option<&str>,
    ) {
        const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
        const XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");
        const XFH: HeaderName = HeaderName::from_static("x-forwarded-host");
        let peer_s = ip_text(peer);
        let xff = match headers
            .get_all(&XFF)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
        {
            prior if peer_trusted && !prior.is_empty() => format!("{}, {peer_s}", prior.join(", ")),
            _ => peer_s,
        };
        if let Ok(v) = HeaderValue::from_str(&xff) {
            headers.insert(XFF, v);
        }
        if !(peer_trusted && headers.contains_key(&XFP)) {
            headers.insert(XFP, HeaderValue::from_static(proto));
        }
        if !(peer_trusted && headers.contains_key(&XFH)) {
            match host.map(HeaderValue::from_str) {
                Some(Ok(v)) => {
                    headers.insert(XFH, v);
                }
                _ => {
                    headers.remove(&XFH);
                }
            }
        }
    }

    /// Writes the trusted scope headers for a verified principal. Every value
    /// went through [`crate::auth::ScopeValue`], so none can split a header.
    pub fn write_scope(&self, headers: &mut HeaderMap, principal: &Principal, route: &HeaderValue) {
        headers.insert(self.names.route.clone(), route.clone());
        if let Some(c) = principal.credential() {
            headers.insert(self.names.credential.clone(), HeaderValue::from_static(c));
        }
        match principal {
            Principal::Anonymous => {}
            Principal::Business { business, .. } => {
                headers.insert(self.names.business.clone(), business.header_value().clone());
            }
            Principal::ApiKey(k) => {
                let n = &self.names;
                headers.insert(n.app.clone(), k.application.header_value().clone());
                headers.insert(n.business.clone(), k.business.header_value().clone());
                headers.insert(n.permissions.clone(), k.permissions.header_value().clone());
                headers.insert(n.reach.clone(), k.reach.header_value().clone());
            }
            Principal::Sso(c) => {
                let n = &self.names;
                headers.insert(n.business.clone(), c.company.header_value().clone());
                headers.insert(n.subject.clone(), c.subject.header.header_value().clone());
                headers.insert(n.customer_email.clone(), c.email.header_value().clone());
                if let Some(r) = &c.reference {
                    headers.insert(n.customer_reference.clone(), r.header_value().clone());
                }
                if let Some((first, last)) = &c.names {
                    headers.insert(n.first_name.clone(), first.header_value().clone());
                    headers.insert(n.last_name.clone(), last.header_value().clone());
                }
            }
            Principal::Customer(c) => {
                let n = &self.names;
                headers.insert(n.app.clone(), c.app.header_value().clone());
                if let Some(s) = &c.subject {
                    headers.insert(n.subject.clone(), s.header.header_value().clone());
                    if let Some(e) = &s.email {
                        headers.insert(n.customer_email.clone(), e.header_value().clone());
                    }
                }
                if let Some(a) = &c.action {
                    headers.insert(n.booking_id.clone(), a.booking_id.header_value().clone());
                    headers.insert(n.action.clone(), a.action.header_value().clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_text_matches_display() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.100.255",
            "9.99.199.250",
            "::1",
            "2001:db8::7",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_text(ip), ip.to_string());
        }
        for n in 0..=255u8 {
            let ip = IpAddr::from([n, n / 2, 255 - n, n / 10]);
            assert_eq!(ip_text(ip), ip.to_string());
        }
    }

    fn policy() -> HeaderPolicy {
        HeaderPolicy::new(
            "X-Scope-",
            &[HeaderName::from_static("x-original-url")],
            vec!["10.0.0.0/8".parse().unwrap()],
            HeaderName::from_static("x-request-id"),
        )
        .unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn names(h: &HeaderMap) -> Vec<&str> {
        let mut v: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        v.sort();
        v
    }

    #[test]
    fn every_spelling_of_a_scope_header_is_removed_and_nothing_else() {
        let mut h = headers(&[
            ("x-scope-app", "a"),
            ("X-SCOPE-APP", "b"),
            ("x_scope_app", "c"),
            ("x-scope_subject", "d"),
            ("x_Scope-Customer-Email", "e"),
            ("x-scopex", "kept"),
            ("x-scop", "kept"),
            ("accept", "kept"),
        ]);
        policy().strip_request(&mut h, false);
        assert_eq!(names(&h), ["accept", "x-scop", "x-scopex"]);
    }

    #[test]
    fn connection_named_and_hop_by_hop_headers_are_removed() {
        let mut h = headers(&[
            ("connection", "keep-alive, X-Custom , x-scope-app"),
            ("connection", "Authorization"),
            ("x-custom", "1"),
            ("authorization", "Bearer t"),
            ("keep-alive", "timeout=5"),
            ("upgrade", "h2c"),
            ("te", "trailers"),
            ("proxy-authorization", "x"),
            ("host", "example.com"),
            ("accept", "*/*"),
        ]);
        policy().strip_request(&mut h, false);
        assert_eq!(names(&h), ["accept", "host"]);
    }

    #[test]
    fn forwarding_headers_are_dropped_from_untrusted_peers_only() {
        let pairs = [
            ("x-forwarded-for", "1.2.3.4"),
            ("X_Forwarded_Host", "evil"),
            ("forwarded", "for=1.2.3.4"),
            ("x-real-ip", "1.2.3.4"),
        ];
        let p = policy();
        let mut h = headers(&pairs);
        p.strip_request(&mut h, false);
        assert!(h.is_empty());
        let mut h = headers(&pairs);
        p.strip_request(&mut h, true);
        assert_eq!(h.len(), 4);
    }

    #[test]
    fn routing_overrides_are_removed_in_any_spelling() {
        let mut h = headers(&[("x_original_url", "/admin"), ("X-Original-URL", "/admin")]);
        policy().strip_request(&mut h, true);
        assert!(h.is_empty());
    }

    #[test]
    fn forwarded_for_chain_is_extended_only_for_trusted_peers() {
        let p = policy();
        let peer: IpAddr = "10.1.1.1".parse().unwrap();
        let mut h = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
        ]);
        p.write_forwarding(&mut h, peer, true, "http", Some("api.example.com"));
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 10.1.1.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "api.example.com");
        let mut h = HeaderMap::new();
        p.write_forwarding(&mut h, "192.0.2.7".parse().unwrap(), false, "http", None);
        assert_eq!(h["x-forwarded-for"], "192.0.2.7");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert!(!h.contains_key("x-forwarded-host"));
    }

    #[test]
    fn ipv4_mapped_peers_match_v4_ranges() {
        assert!(policy().is_trusted("::ffff:10.0.0.1".parse().unwrap()));
        assert!(!policy().is_trusted("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn the_client_behind_trusted_proxies_is_the_nearest_untrusted_entry() {
        let p = policy();
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let client = |xff: &str| {
            let h = headers(&[("x-forwarded-for", xff)]);
            p.client_ip(&h, proxy).to_string()
        };
        assert_eq!(client("198.51.100.7"), "198.51.100.7");
        assert_eq!(client("1.2.3.4, 198.51.100.7, 10.0.0.9"), "198.51.100.7");
        assert_eq!(client("203.0.113.9:51234"), "203.0.113.9");
        assert_eq!(client("[2001:db8::1]:443"), "2001:db8::1");
        assert_eq!(client("garbage"), "10.0.0.5");
        let untrusted: IpAddr = "192.0.2.1".parse().unwrap();
        let h = headers(&[("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(p.client_ip(&h, untrusted), untrusted);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// A spelling of a header name: random case, `-` or `_` between words.
        fn spelled(words: &'static [&'static str]) -> impl Strategy<Value = String> {
            (
                prop::collection::vec(any::<bool>(), 32),
                prop::collection::vec(any::<bool>(), 8),
            )
                .prop_map(move |(upper, underscore)| {
                    let mut out = String::new();
                    for (i, w) in words.iter().enumerate() {
                        if i > 0 {
                            out.push(if underscore[i % 8] { '_' } else { '-' });
                        }
                        for (j, c) in w.chars().enumerate() {
                            out.push(if upper[(i * 7 + j) % 32] {
                                c.to_ascii_uppercase()
                            } else {
                                c
                            });
                        }
                    }
                    out
                })
        }

        proptest! {
            #[test]
            fn every_spelling_of_a_scope_header_goes_and_nothing_else(
                scope in prop_oneof![
                    spelled(&["x", "scope", "app"]),
                    spelled(&["x", "scope", "customer", "email"]),
                    spelled(&["x", "scope", "business"]),
                    spelled(&["x", "scope", "reach"]),
                ],
                other in prop_oneof![
                    spelled(&["accept", "language"]),
                    spelled(&["x", "scopes"]),
                    spelled(&["x", "scop", "app"]),
                    spelled(&["authorization"]),
                ],
            ) {
                let mut h = HeaderMap::new();
                h.append(HeaderName::from_bytes(scope.as_bytes()).unwrap(), HeaderValue::from_static("forged"));
                h.append(HeaderName::from_bytes(other.as_bytes()).unwrap(), HeaderValue::from_static("kept"));
                policy().strip_request(&mut h, false);
                let left: Vec<String> = h.keys().map(|k| k.as_str().to_string()).collect();
                prop_assert_eq!(left, vec![other.to_ascii_lowercase()]);
            }
        }
    }

    mod ip_text_properties {
        use super::super::*;
        use proptest::prelude::*;
        use std::net::{Ipv4Addr, Ipv6Addr};

        /// IPv6 groups drawn so that runs of zeros (`::`), IPv4-mapped and
        /// IPv4-compatible forms come up, not only dense addresses.
        fn v6() -> impl Strategy<Value = Ipv6Addr> {
            let group = prop_oneof![Just(0u16), Just(0xffff), Just(1), any::<u16>()];
            prop_oneof![
                prop::array::uniform8(group).prop_map(Ipv6Addr::from),
                any::<u32>().prop_map(|v| Ipv4Addr::from(v).to_ipv6_mapped()),
                any::<u32>().prop_map(|v| Ipv4Addr::from(v).to_ipv6_compatible()),
                any::<u128>().prop_map(Ipv6Addr::from),
            ]
        }

        fn v4() -> impl Strategy<Value = Ipv4Addr> {
            let octet = prop_oneof![
                Just(0u8),
                Just(9),
                Just(10),
                Just(99),
                Just(100),
                Just(255),
                any::<u8>()
            ];
            prop::array::uniform4(octet).prop_map(Ipv4Addr::from)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4096))]

            #[test]
            fn ip_text_is_display(ip in prop_oneof![v4().prop_map(IpAddr::V4), v6().prop_map(IpAddr::V6)]) {
                prop_assert_eq!(ip_text(ip), ip.to_string());
            }
        }
    }

    /// `strip_response` (29218d1: only the names present are removed) pinned
    /// to the version before it: every `Connection`-listed name and every
    /// hop-by-hop name removed unconditionally.
    mod strip_response_properties {
        use super::super::*;
        use proptest::prelude::*;

        fn old_strip_response(headers: &mut HeaderMap) {
            let mut doomed: Vec<HeaderName> = Vec::new();
            // Since the Connection list is read as bytes (a value with a
            // non-UTF-8 byte still names its other tokens), so is this.
            for value in headers.get_all(header::CONNECTION) {
                let list = String::from_utf8_lossy(value.as_bytes());
                doomed.extend(list.split(',').filter_map(|t| {
                    HeaderName::from_bytes(t.trim().to_ascii_lowercase().as_bytes()).ok()
                }));
            }
            doomed.extend(HOP_BY_HOP.iter().map(|h| HeaderName::from_static(h)));
            for name in &doomed {
                headers.remove(name);
            }
        }

        fn name() -> impl Strategy<Value = &'static str> {
            prop::sample::select(vec![
                "connection",
                "keep-alive",
                "keep_alive",
                "te",
                "trailer",
                "transfer-encoding",
                "upgrade",
                "proxy-authenticate",
                "http2-settings",
                "expect",
                "content-type",
                "set-cookie",
                "x-secret",
                "x-other",
            ])
        }

        /// A `Connection` value: names in any case, with spaces, empty
        /// items, invalid tokens, and now and then non-text bytes.
        fn connection_value() -> impl Strategy<Value = Vec<u8>> {
            let item = prop_oneof![
                name().prop_map(str::to_string),
                name().prop_map(str::to_ascii_uppercase),
                name().prop_map(|n| format!("  {n} ")),
                Just(String::new()),
                Just("close".to_string()),
                Just("bad name".to_string()),
            ];
            (prop::collection::vec(item, 0..4), any::<bool>()).prop_map(|(v, binary)| {
                let mut b = v.join(",").into_bytes();
                if binary {
                    b.push(0xff);
                }
                b
            })
        }

        fn rendered(h: &HeaderMap) -> Vec<(String, Vec<u8>)> {
            let mut v: Vec<_> = h
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
                .collect();
            v.sort();
            v
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2048))]

            #[test]
            fn strip_response_is_the_old_one(
                plain in prop::collection::vec(name(), 0..8),
                connection in prop::collection::vec(connection_value(), 0..3),
            ) {
                let mut h = HeaderMap::new();
                for n in plain {
                    h.append(HeaderName::from_static(n), HeaderValue::from_static("v"));
                }
                for c in connection {
                    h.append(header::CONNECTION, HeaderValue::from_bytes(&c).unwrap());
                }
                let mut old = h.clone();
                old_strip_response(&mut old);
                HeaderPolicy::strip_response(&mut h);
                prop_assert_eq!(rendered(&h), rendered(&old));
            }
        }
    }
}
