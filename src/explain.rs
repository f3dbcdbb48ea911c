//! `scopegate explain`: what scopegate would do with one request, without
//! contacting the upstream. The request goes through the same
//! [`crate::proxy::prepare`] as live traffic, against an empty in-process
//! store (so nothing is claimed or shared, and a session token issued by a
//! running scopegate is unknown here).

use std::{fmt::Write as _, net::IpAddr};

use http::{HeaderName, HeaderValue, Method, Request, Uri};

use crate::{
    clock::Clock,
    config::Config,
    error::GateError,
    proxy::{prepare, Decision, Trace},
    store::Store,
};

/// Why a request could not even be built.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("invalid method {0:?}")]
    Method(String),
    #[error("invalid URL {0:?}: {1}")]
    Url(String, String),
    #[error("invalid header {0:?} (expected \"Name: value\")")]
    Header(String),
}

/// The outcome of an explained request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Forwarded,
    Answered,
    Refused,
}

fn parse_headers(raw: &[String]) -> Result<Vec<(HeaderName, HeaderValue)>, ExplainError> {
    raw.iter()
        .map(|h| {
            let (name, value) = h
                .split_once(':')
                .ok_or_else(|| ExplainError::Header(h.clone()))?;
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| ExplainError::Header(h.clone()))?;
            let value =
                HeaderValue::from_str(value.trim()).map_err(|_| ExplainError::Header(h.clone()))?;
            Ok((name, value))
        })
        .collect()
}

fn query_names(query: Option<&str>) -> Vec<String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, _)| k.into_owned())
        .collect()
}

/// Explains `method url` with `headers` (`"Name: value"`) from `peer`.
pub async fn explain(
    config: &Config,
    method: &str,
    url: &str,
    headers: &[String],
    peer: IpAddr,
) -> Result<(String, Verdict), ExplainError> {
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| ExplainError::Method(method.to_string()))?;
    let uri: Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| ExplainError::Url(url.to_string(), e.to_string()))?;
    let headers = parse_headers(headers)?;
    let mut builder = Request::builder().method(method.clone()).uri(uri.clone());
    if let Some(a) = uri.authority() {
        builder = builder.header(http::header::HOST, a.as_str());
    }
    for (n, v) in &headers {
        builder = builder.header(n, v);
    }
    let (mut parts, ()) = builder
        .body(())
        .map_err(|e| ExplainError::Url(url.to_string(), e.to_string()))?
        .into_parts();
    let sent_names: Vec<HeaderName> = parts.headers.keys().cloned().collect();
    let sent_params = query_names(uri.query());

    let store = Store::memory(10_000, 10_000);
    let clock = Clock::system();
    let request_id = HeaderValue::from_static("explain");
    let mut trace = Trace::default();
    let decision = prepare(
        config,
        &store,
        &clock,
        &mut parts,
        false,
        std::net::SocketAddr::new(peer, 0),
        &request_id,
        &mut trace,
    )
    .await;

    let mut out = String::new();
    let _ = writeln!(out, "request     {method} {uri}");
    let route = trace.route.as_deref().unwrap_or("(none)");
    let _ = writeln!(
        out,
        "path        {}",
        trace.path.as_deref().unwrap_or("(not reached)")
    );
    let auth = config
        .routes
        .routes()
        .iter()
        .find(|r| &*r.name == route)
        .map(|r| format!(" (auth: {})", r.auth))
        .unwrap_or_default();
    let _ = writeln!(out, "route       {route}{auth}");
    let verdict = match decision {
        Err(ref e) => {
            let _ = writeln!(
                out,
                "decision    refused: {} {}{}",
                e.status().as_u16(),
                e.code(),
                e.cause().map(|c| format!(" ({c})")).unwrap_or_default()
            );
            if let Some(why) = why_refused(config, e, trace.path.as_deref()) {
                let _ = writeln!(out, "why         {why}");
            }
            let _ = writeln!(out, "upstream    not contacted");
            Verdict::Refused
        }
        Ok(Decision::Answer(resp)) => {
            let _ = writeln!(
                out,
                "decision    answered by scopegate: {}",
                resp.status().as_u16()
            );
            Verdict::Answered
        }
        Ok(Decision::Forward(p)) => {
            match p.principal.credential() {
                Some(c) => writeln!(out, "credential  {c}: verified"),
                None => writeln!(out, "credential  none needed (public route)"),
            }
            .ok();
            let mut removed: Vec<String> = p.stripped.iter().map(|n| n.to_string()).collect();
            for n in &sent_names {
                if !p.headers.contains_key(n) && !removed.contains(&n.to_string()) {
                    removed.push(n.to_string());
                }
            }
            let kept = query_names(p.target.query());
            let dropped: Vec<&String> = sent_params.iter().filter(|n| !kept.contains(n)).collect();
            let _ = writeln!(
                out,
                "removed     headers: {}; query: {}",
                list(removed.iter()),
                list(dropped.into_iter())
            );
            let upstream = &config.upstreams[p.upstream];
            let secret = upstream.credential().map(|(n, _)| n.clone());
            let _ = writeln!(
                out,
                "upstream    {} {} ({})",
                p.method, p.target, upstream.name
            );
            let mut names: Vec<&HeaderName> = p.headers.keys().collect();
            names.sort_by_key(|n| n.as_str());
            names.dedup();
            for n in names {
                for v in p.headers.get_all(n) {
                    // Configured credentials are marked sensitive.
                    let shown = if *n == http::header::AUTHORIZATION
                        || Some(n) == secret.as_ref()
                        || v.is_sensitive()
                    {
                        "<redacted>".to_string()
                    } else {
                        String::from_utf8_lossy(v.as_bytes()).into_owned()
                    };
                    let _ = writeln!(out, "  {n}: {shown}");
                }
            }
            if p.wants_links {
                let _ = writeln!(out, "response    the listing gets customer_action_links");
            }
            Verdict::Forwarded
        }
    };
    Ok((out, verdict))
}

/// Why routing refused a request, in an operator's words.
fn why_refused(config: &Config, e: &GateError, path: Option<&str>) -> Option<String> {
    match e {
        GateError::MethodNotAllowed(allowed) => {
            let names: Vec<&str> = allowed.iter().map(Method::as_str).collect();
            Some(format!(
                "the path matches, the method does not (allowed: {})",
                names.join(", ")
            ))
        }
        GateError::NotFound => {
            let path = path?;
            let hosts: Vec<String> = config
                .routes
                .routes()
                .iter()
                .filter(|r| r.pattern.matches(path).is_some())
                .map(|r| format!("{} (host {})", r.name, r.host.as_deref().unwrap_or("*")))
                .collect();
            Some(if hosts.is_empty() {
                format!("no route's path matches {path}")
            } else {
                format!(
                    "routes match the path but not the host: {}",
                    hosts.join(", ")
                )
            })
        }
        _ => None,
    }
}

fn list<'a>(items: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = items.map(String::as_str).collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(", ")
    }
}
