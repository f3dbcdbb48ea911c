//! The route table: path patterns, most-specific matching, and the load-time
//! proof that no two routes of equal specificity can claim one request.
//!
//! Patterns are `/`-separated segments: literals, `{param}` (exactly one
//! non-empty segment) and a final `*` (zero or more segments). Requests are
//! matched on the normalized path (see [`crate::path`]).
//!
//! Specificity, compared in this order: a route naming a host beats one that
//! does not; then the pattern, segment by segment, where a literal beats a
//! parameter, a parameter beats the end of the pattern, and the end beats `*`;
//! then a route listing methods beats one accepting any method.

use std::{cmp::Ordering, fmt, sync::Arc};

use http::Method;

use crate::auth::{AuthPolicy, ScopeValue};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Literal(Box<str>),
    Param(Box<str>),
    /// Only ever the last segment.
    Wildcard,
}

impl Segment {
    /// Rank used for specificity: higher is more specific. `End` sits between
    /// `Param` and `Wildcard`.
    fn rank(&self) -> u8 {
        match self {
            Segment::Literal(_) => 4,
            Segment::Param(_) => 3,
            Segment::Wildcard => 1,
        }
    }
}
const END_RANK: u8 = 2;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    segments: Vec<Segment>,
    /// The text the operator wrote, for messages and `check` output.
    source: Box<str>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatternError {
    #[error("must start with '/'")]
    NotAbsolute,
    #[error("'*' is only allowed as the whole last segment")]
    MisplacedWildcard,
    #[error("parameter name {0:?} must match [A-Za-z_][A-Za-z0-9_]*")]
    BadParam(String),
    #[error("parameter {0:?} appears twice")]
    DuplicateParam(String),
    #[error("empty segment (use a single '/')")]
    EmptySegment,
    #[error("segment {0:?} is not in normalized form (it would never match)")]
    NotNormalized(String),
}

impl Pattern {
    pub fn parse(src: &str) -> Result<Self, PatternError> {
        let rest = src.strip_prefix('/').ok_or(PatternError::NotAbsolute)?;
        let mut segments = Vec::new();
        if !rest.is_empty() {
            let parts: Vec<&str> = rest.split('/').collect();
            let last = parts.len() - 1;
            for (i, part) in parts.iter().enumerate() {
                let seg = if *part == "*" {
                    if i != last {
                        return Err(PatternError::MisplacedWildcard);
                    }
                    Segment::Wildcard
                } else if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}'))
                {
                    let valid = name
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    if !valid {
                        return Err(PatternError::BadParam(name.to_string()));
                    }
                    if segments
                        .iter()
                        .any(|s| matches!(s, Segment::Param(p) if &**p == name))
                    {
                        return Err(PatternError::DuplicateParam(name.to_string()));
                    }
                    Segment::Param(name.into())
                } else if part.is_empty() {
                    // A trailing slash is allowed at the end only, and
                    // means nothing: matching ignores one on the path, so
                    // `/v2/admin/` is `/v2/admin` (kept as a segment, it
                    // could never match a normalized path).
                    if i != last {
                        return Err(PatternError::EmptySegment);
                    }
                    continue;
                } else {
                    if part.contains(['*', '{', '}']) {
                        return Err(PatternError::MisplacedWildcard);
                    }
                    let probe = format!("/{part}");
                    match crate::path::normalize(&probe) {
                        Ok(n) if n == probe => {}
                        _ => return Err(PatternError::NotNormalized(part.to_string())),
                    }
                    Segment::Literal((*part).into())
                };
                segments.push(seg);
            }
        }
        Ok(Self {
            segments,
            source: src.into(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Names of the `{param}` segments.
    pub fn params(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(p) => Some(&**p),
            _ => None,
        })
    }

    pub fn has_wildcard(&self) -> bool {
        matches!(self.segments.last(), Some(Segment::Wildcard))
    }

    fn ranks(&self) -> impl Iterator<Item = u8> + '_ {
        self.segments
            .iter()
            .map(Segment::rank)
            .chain(std::iter::once(END_RANK))
    }

    /// Compares specificity of two patterns; `Greater` means `self` is more specific.
    fn cmp_specificity(&self, other: &Self) -> Ordering {
        self.ranks().cmp(other.ranks())
    }

    /// Matches a normalized path, returning the captured parameters.
    /// Literal segments match in any ASCII case and one trailing `/` is
    /// ignored, because many backends route `/v2/Private/` as `/v2/private`
    /// (Express, ASP.NET): such a spelling must meet the same route here,
    /// not fall through to a more lenient one.
    pub fn matches<'p>(&self, path: &'p str) -> Option<Params<'p>> {
        let path = match path.strip_suffix('/') {
            Some(p) if !p.is_empty() => p,
            _ => path,
        };
        let mut params = Params::default();
        let mut rest = path.strip_prefix('/')?;
        let mut at_end = path == "/";
        for seg in &self.segments {
            if let Segment::Wildcard = seg {
                return Some(params);
            }
            if at_end {
                return None;
            }
            let (head, tail) = match rest.find('/') {
                Some(i) => (&rest[..i], Some(&rest[i + 1..])),
                None => (rest, None),
            };
            match seg {
                Segment::Literal(l) if l.eq_ignore_ascii_case(head) => {}
                Segment::Param(name) if !head.is_empty() => params.0.push((name.clone(), head)),
                _ => return None,
            }
            match tail {
                Some(t) => rest = t,
                None => at_end = true,
            }
        }
        at_end.then_some(params)
    }
}

/// Parameters captured by `{name}` segments, borrowed from the request path.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Params<'p>(pub Vec<(Box<str>, &'p str)>);

impl<'p> Params<'p> {
    pub fn get(&self, name: &str) -> Option<&'p str> {
        self.0.iter().find(|(n, _)| &**n == name).map(|(_, v)| *v)
    }
}

/// One compiled route.
#[derive(Debug)]
pub struct Route {
    pub name: Arc<str>,
    /// The name, proven safe to send as `X-Scope-Route`.
    pub scope_value: ScopeValue,
    /// Lower-case host without port; `None` matches any host.
    pub host: Option<Box<str>>,
    /// Empty means any method.
    pub methods: Vec<Method>,
    pub pattern: Pattern,
    pub auth: AuthPolicy,
    /// Index into [`crate::config::Config::upstreams`].
    pub upstream: usize,
    /// That upstream's name, for `check` output and logs.
    pub upstream_name: Box<str>,
    /// Prepended to the matched path toward the upstream; no trailing `/`.
    pub upstream_path_prefix: Box<str>,
    /// Signed search: allowed `search` fields besides the signed one.
    pub search_fields: Option<Vec<String>>,
    /// Apps whose tokens this route accepts; `None` accepts all.
    pub apps: Option<Vec<String>>,
    /// Send the app's upstream credential instead of the upstream's.
    pub app_credential: bool,
    /// What an API key must grant (api-key routes).
    pub require: Option<crate::auth::api_key::Requirement>,
    /// Cross-origin calls from browsers; `None`: no CORS.
    pub cors: Option<crate::cors::RouteCors>,
}

impl Route {
    fn accepts_method(&self, m: &Method) -> bool {
        self.methods.is_empty() || self.methods.contains(m)
    }

    fn cmp_specificity(&self, other: &Self) -> Ordering {
        self.host
            .is_some()
            .cmp(&other.host.is_some())
            .then_with(|| self.pattern.cmp_specificity(&other.pattern))
            .then_with(|| (!self.methods.is_empty()).cmp(&!other.methods.is_empty()))
    }

    /// Can one request match both routes?
    fn overlaps(&self, other: &Self) -> bool {
        let hosts = match (&self.host, &other.host) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        let methods = self.methods.is_empty()
            || other.methods.is_empty()
            || self.methods.iter().any(|m| other.methods.contains(m));
        hosts && methods && patterns_can_share_a_path(&self.pattern, &other.pattern)
    }
}

/// For patterns of equal specificity (same rank sequence) a shared path exists
/// exactly when their literals agree position by position.
fn patterns_can_share_a_path(a: &Pattern, b: &Pattern) -> bool {
    a.segments.len() == b.segments.len()
        && a.segments
            .iter()
            .zip(&b.segments)
            .all(|(x, y)| match (x, y) {
                (Segment::Literal(x), Segment::Literal(y)) => x.eq_ignore_ascii_case(y),
                _ => x.rank() == y.rank(),
            })
}

/// Two routes that can match one request with the same specificity.
#[derive(Debug)]
pub struct Ambiguity {
    pub first: usize,
    pub second: usize,
}

/// What the table says about one request.
#[derive(Debug)]
pub enum Lookup<'t, 'p> {
    Found(&'t Route, Params<'p>),
    /// Some route matches the path but none the method.
    MethodNotAllowed(Vec<Method>),
    NotFound,
}

/// Routes sorted most-specific first, so the first match wins.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// Builds the table; refuses tables where two routes are ambiguous. The
    /// indices in [`Ambiguity`] refer to `routes` as given.
    pub fn new(routes: Vec<Route>) -> Result<Self, Vec<Ambiguity>> {
        let mut problems = Vec::new();
        for i in 0..routes.len() {
            for j in i + 1..routes.len() {
                let (a, b) = (&routes[i], &routes[j]);
                if a.cmp_specificity(b) == Ordering::Equal && a.overlaps(b) {
                    problems.push(Ambiguity {
                        first: i,
                        second: j,
                    });
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut routes = routes;
        routes.sort_by(|a, b| b.cmp_specificity(a));
        Ok(Self { routes })
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// `host` is lower-case without port, when the request named one.
    pub fn lookup<'t, 'p>(
        &'t self,
        host: Option<&str>,
        method: &Method,
        path: &'p str,
    ) -> Lookup<'t, 'p> {
        let mut allowed: Vec<Method> = Vec::new();
        for route in &self.routes {
            if let Some(h) = &route.host {
                if host != Some(&**h) {
                    continue;
                }
            }
            let Some(params) = route.pattern.matches(path) else {
                continue;
            };
            if route.accepts_method(method) {
                return Lookup::Found(route, params);
            }
            for m in &route.methods {
                if !allowed.contains(m) {
                    allowed.push(m.clone());
                }
            }
        }
        if allowed.is_empty() {
            Lookup::NotFound
        } else {
            Lookup::MethodNotAllowed(allowed)
        }
    }
}

impl fmt::Display for RouteTable {
    /// The table as `scopegate check` prints it, in matching order, each
    /// column as wide as its widest cell.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rows = vec![[
            "route".to_string(),
            "host".into(),
            "methods".into(),
            "path".into(),
            "auth".into(),
            "upstream".into(),
        ]];
        for r in &self.routes {
            let methods = if r.methods.is_empty() {
                "*".to_string()
            } else {
                r.methods
                    .iter()
                    .map(Method::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            };
            rows.push([
                r.name.to_string(),
                r.host.as_deref().unwrap_or("*").to_string(),
                methods,
                r.pattern.as_str().to_string(),
                r.auth.to_string(),
                format!("{}{}", r.upstream_name, r.upstream_path_prefix),
            ]);
        }
        let mut widths = [0usize; 6];
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for row in &rows {
            let mut line = String::new();
            for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<w$}  "));
                }
            }
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).unwrap()
    }

    fn route(name: &str, host: Option<&str>, methods: &[&str], path: &str) -> Route {
        Route {
            name: name.into(),
            scope_value: ScopeValue::new(name).unwrap(),
            host: host.map(Into::into),
            methods: methods.iter().map(|m| m.parse().unwrap()).collect(),
            pattern: p(path),
            auth: AuthPolicy::Public,
            upstream: 0,
            upstream_name: "u".into(),
            upstream_path_prefix: "".into(),
            search_fields: None,
            apps: None,
            app_credential: false,
            require: None,
            cors: None,
        }
    }

    fn found(t: &RouteTable, host: Option<&str>, m: &str, path: &str) -> Option<String> {
        match t.lookup(host, &m.parse().unwrap(), path) {
            Lookup::Found(r, _) => Some(r.name.to_string()),
            _ => None,
        }
    }

    #[test]
    fn patterns_match_literals_params_and_tails() {
        assert!(p("/v2/bookings").matches("/v2/bookings").is_some());
        // One trailing slash and the case of literals do not make another path.
        assert!(p("/v2/bookings").matches("/v2/bookings/").is_some());
        assert!(p("/v2/bookings").matches("/v2/BOOKINGS").is_some());
        assert!(p("/v2/bookings").matches("/v2/bookings//").is_none());
        assert!(p("/v2/bookings").matches("/v2/bookingsx").is_none());
        let m = p("/v2/bookings/{id}/{action}")
            .matches("/v2/bookings/b1/cancel")
            .unwrap();
        assert_eq!(m.get("id"), Some("b1"));
        assert_eq!(m.get("action"), Some("cancel"));
        assert!(p("/v2/bookings/{id}").matches("/v2/bookings/").is_none());
        assert!(p("/v2/*").matches("/v2").is_some());
        assert!(p("/v2/*").matches("/v2/a/b/c").is_some());
        assert!(p("/v2/*").matches("/v3").is_none());
        assert!(p("/*").matches("/").is_some());
        assert!(p("/").matches("/").is_some());
        assert!(p("/").matches("/a").is_none());
        // A pattern's trailing slash is the same pattern.
        assert_eq!(p("/v2/admin/").segments, p("/v2/admin").segments);
        assert!(p("/v2/admin/").matches("/v2/admin").is_some());
        assert!(p("/v2/admin/").matches("/v2/ADMIN/").is_some());
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert_eq!(Pattern::parse("v2"), Err(PatternError::NotAbsolute));
        assert_eq!(
            Pattern::parse("/a/*/b"),
            Err(PatternError::MisplacedWildcard)
        );
        assert_eq!(Pattern::parse("/a*"), Err(PatternError::MisplacedWildcard));
        assert!(matches!(
            Pattern::parse("/{1x}"),
            Err(PatternError::BadParam(_))
        ));
        assert!(matches!(
            Pattern::parse("/{a}/{a}"),
            Err(PatternError::DuplicateParam(_))
        ));
        assert_eq!(Pattern::parse("/a//b"), Err(PatternError::EmptySegment));
        assert!(matches!(
            Pattern::parse("/a/../b"),
            Err(PatternError::NotNormalized(_))
        ));
        assert!(matches!(
            Pattern::parse("/%62"),
            Err(PatternError::NotNormalized(_))
        ));
    }

    #[test]
    fn most_specific_route_wins() {
        let t = RouteTable::new(vec![
            route("any", None, &[], "/*"),
            route("v2", None, &[], "/v2/*"),
            route("one", None, &[], "/v2/bookings/{id}"),
            route("list", None, &[], "/v2/bookings"),
            route("get-list", None, &["GET"], "/v2/bookings"),
            route("hosted", Some("api.example.com"), &[], "/*"),
        ])
        .unwrap();
        assert_eq!(
            found(&t, None, "GET", "/v2/bookings").as_deref(),
            Some("get-list")
        );
        assert_eq!(
            found(&t, None, "POST", "/v2/bookings").as_deref(),
            Some("list")
        );
        assert_eq!(
            found(&t, None, "GET", "/v2/bookings/7").as_deref(),
            Some("one")
        );
        assert_eq!(
            found(&t, None, "GET", "/v2/bookings/7/x").as_deref(),
            Some("v2")
        );
        assert_eq!(found(&t, None, "GET", "/v3").as_deref(), Some("any"));
        assert_eq!(
            found(&t, Some("api.example.com"), "GET", "/v2/bookings").as_deref(),
            Some("hosted")
        );
    }

    #[test]
    fn exact_end_beats_wildcard_and_param_beats_end() {
        let t = RouteTable::new(vec![
            route("tail", None, &[], "/a/*"),
            route("exact", None, &[], "/a"),
        ])
        .unwrap();
        assert_eq!(found(&t, None, "GET", "/a").as_deref(), Some("exact"));
        assert_eq!(found(&t, None, "GET", "/a/b").as_deref(), Some("tail"));
    }

    #[test]
    fn method_mismatch_is_reported_separately() {
        let t = RouteTable::new(vec![route("r", None, &["GET", "HEAD"], "/a")]).unwrap();
        match t.lookup(None, &Method::DELETE, "/a") {
            Lookup::MethodNotAllowed(m) => assert_eq!(m, vec![Method::GET, Method::HEAD]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            t.lookup(None, &Method::GET, "/b"),
            Lookup::NotFound
        ));
    }

    #[test]
    fn equal_specificity_overlaps_are_refused() {
        let e = RouteTable::new(vec![
            route("a", None, &[], "/v2/bookings/{id}"),
            route("b", None, &[], "/v2/bookings/{booking}"),
        ])
        .unwrap_err();
        assert_eq!((e[0].first, e[0].second), (0, 1));
        assert!(RouteTable::new(vec![
            route("a", None, &["GET"], "/x/*"),
            route("b", None, &["GET", "POST"], "/x/*"),
        ])
        .is_err());
        // Disjoint methods, hosts or literals are fine.
        assert!(RouteTable::new(vec![
            route("a", None, &["GET"], "/x/*"),
            route("b", None, &["POST"], "/x/*"),
            route("c", Some("a.example"), &[], "/y"),
            route("d", Some("b.example"), &[], "/y"),
            route("e", None, &[], "/z/{id}"),
            route("f", None, &[], "/w/{id}"),
        ])
        .is_ok());
    }
}
