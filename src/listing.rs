//! `include=customer_action_links`: a signed-search listing gets, on every
//! booking, a `customer_action_links` object with one freshly signed link per
//! action the booking allows.
//!
//! The upstream's JSON is read up to `max_listing_bytes`. A response that is
//! not a 2xx, not JSON, compressed, too large or of an unexpected shape is
//! passed through untouched, with a warning in the log: enrichment never
//! turns a good answer into an error.

use std::collections::HashSet;

use bytes::Bytes;
use http::{header, request::Parts, HeaderValue, Response};
use http_body_util::BodyExt;
use serde_json::{Map, Value};

use crate::{
    actions::{valid_booking_id, ActionLinks, Link},
    auth::{search_query as q, Apps, Subject},
    body::ResponseBody,
    error::GateError,
};

/// The `include` value that asks for links.
pub const INCLUDE: &str = "customer_action_links";

/// Whether the query asks for action links. Unless `forward` is set, that
/// value is removed from `include` (and `include` itself when nothing is left).
pub fn take_include(parts: &mut Parts, forward: bool) -> bool {
    let Some(query) = parts.uri.query() else {
        return false;
    };
    // Any spelling a case-insensitive backend reads as `include`.
    let is_include = |p: &q::Param<'_>| q::fold(&p.name) == "include";
    let is_links = |v: &str| v.trim().eq_ignore_ascii_case(INCLUDE);
    let params = q::params(query);
    let asked = params
        .iter()
        .any(|p| is_include(p) && p.value().split(',').any(is_links));
    if !asked || forward {
        return asked;
    }
    let mut out = form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for p in &params {
        if is_include(p) {
            let value = p.value();
            let rest: Vec<&str> = value.split(',').filter(|v| !is_links(v)).collect();
            if rest.iter().all(|v| v.trim().is_empty()) {
                continue;
            }
            out.append_pair("include", &rest.join(","));
        } else {
            out.append_pair(&p.name, &p.value());
        }
        any = true;
    }
    let rewritten = any.then(|| out.finish());
    crate::auth::set_query(parts, rewritten.as_deref());
    true
}

/// Who the links are for.
pub struct LinkContext<'a> {
    pub links: &'a ActionLinks,
    pub apps: &'a Apps,
    pub app: &'a str,
    pub subject: &'a Subject,
    pub now: u64,
    /// The signed-search token's `exp`: no link outlives the token that listed it.
    pub until: Option<u64>,
}

fn is_json(v: Option<&HeaderValue>) -> bool {
    let Some(ct) = v.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Reads, enriches and re-serializes a listing; anything it cannot handle
/// goes through as it came. Fails only when the upstream body itself fails
/// or stalls past `deadline` before scopegate has answered.
pub async fn enrich(
    resp: Response<crate::upstream::UpstreamBody>,
    ctx: &LinkContext<'_>,
    deadline: tokio::time::Instant,
) -> Result<Response<ResponseBody>, GateError> {
    let (mut parts, mut body) = resp.into_parts();
    let pass = |parts, body| Ok(Response::from_parts(parts, ResponseBody::upstream(body)));
    if !parts.status.is_success() {
        return pass(parts, body);
    }
    if !is_json(parts.headers.get(header::CONTENT_TYPE)) {
        tracing::warn!("action links not added: the listing is not JSON");
        return pass(parts, body);
    }
    if parts
        .headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
    {
        tracing::warn!("action links not added: the listing is compressed");
        return pass(parts, body);
    }
    let max = ctx.links.listing.max_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        tracing::warn!(
            max,
            "action links not added: the listing is larger than max_listing_bytes"
        );
        return pass(parts, body);
    }

    let mut chunks: Vec<Bytes> = Vec::new();
    let mut size = 0usize;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(GateError::UpstreamTimeout),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(GateError::UpstreamProtocol),
            Ok(Some(Ok(f))) => f,
        };
        // Trailers of a listing are dropped; only data is kept.
        if let Ok(data) = frame.into_data() {
            size += data.len();
            chunks.push(data);
            if size > max {
                tracing::warn!(
                    max,
                    "action links not added: the listing is larger than max_listing_bytes"
                );
                return Ok(Response::from_parts(
                    parts,
                    ResponseBody::prefixed(chunks, body),
                ));
            }
        }
    }
    let whole: Bytes = if chunks.len() == 1 {
        chunks.pop().unwrap_or_default()
    } else {
        chunks.concat().into()
    };
    let out = match add_links(&whole, ctx) {
        Ok(json) => {
            // The body now holds credentials for one customer: not for a
            // shared cache, and no longer the upstream's representation.
            for h in [
                header::ETAG,
                header::EXPIRES,
                header::LAST_MODIFIED,
                header::AGE,
            ] {
                parts.headers.remove(h);
            }
            parts.headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-store"),
            );
            Bytes::from(json)
        }
        Err(why) => {
            tracing::warn!(reason = why, "action links not added");
            whole
        }
    };
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
    Ok(Response::from_parts(parts, ResponseBody::full(out)))
}

/// The listing with links added, or why it was left alone.
pub fn add_links(body: &[u8], ctx: &LinkContext<'_>) -> Result<Vec<u8>, &'static str> {
    let mut doc: Value = serde_json::from_slice(body).map_err(|_| "the body is not valid JSON")?;
    let settings = &ctx.links.listing;
    let target = doc
        .pointer_mut(&settings.pointer)
        .ok_or("bookings_pointer does not point into the listing")?;
    match target {
        Value::Array(items) if items.len() > settings.max_bookings => {
            return Err("more bookings than action_links.max_bookings");
        }
        Value::Array(items) => {
            for item in items {
                if let Value::Object(booking) = item {
                    add_to_booking(booking, ctx);
                }
            }
        }
        Value::Object(booking) => add_to_booking(booking, ctx),
        _ => return Err("bookings_pointer points to neither an array nor an object"),
    }
    serde_json::to_vec(&doc).map_err(|_| "the listing could not be serialized")
}

fn add_to_booking(booking: &mut Map<String, Value>, ctx: &LinkContext<'_>) {
    let s = &ctx.links.listing;
    let id = match booking.get(&s.id_field) {
        Some(Value::String(id)) => id.clone(),
        Some(Value::Number(n)) if n.is_u64() => n.to_string(),
        _ => String::new(),
    };
    if !valid_booking_id(&id) {
        tracing::warn!("no action links for a booking without an id usable as a path segment");
        booking.insert(INCLUDE.to_string(), Value::Object(Map::new()));
        return;
    }
    let allowed: Vec<&str> = match booking.get(&s.possible_actions_field) {
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => match booking.get(&s.state_field).and_then(Value::as_str) {
            Some(state) => s
                .state_actions
                .get(state)
                .map(|v| v.iter().map(String::as_str).collect())
                .unwrap_or_default(),
            None => Vec::new(),
        },
    };
    let mut seen = HashSet::new();
    let mut links = Map::new();
    for name in allowed {
        // Only configured actions get links, once each, in the booking's order.
        let Some(action) = ctx.links.get(name) else {
            continue;
        };
        if !seen.insert(name) {
            continue;
        }
        let link = Link {
            app: ctx.app,
            booking_id: &id,
            action,
            subject: Some((ctx.subject.field(), ctx.subject.claim())),
            ttl: ctx.until.map(|until| {
                std::time::Duration::from_secs(until.saturating_sub(ctx.now)).min(action.ttl)
            }),
        };
        match ctx.links.mint(ctx.apps, &link, ctx.now) {
            Ok(url) => {
                links.insert(name.to_string(), Value::String(url));
            }
            Err(e) => {
                tracing::warn!(error = %e, "action link not minted");
            }
        }
    }
    booking.insert(INCLUDE.to_string(), Value::Object(links));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str) -> Parts {
        http::Request::builder()
            .uri(uri)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn the_include_value_is_taken_out() {
        let mut p = parts("/v2/bookings?search=a:b&include=customer_action_links");
        assert!(take_include(&mut p, false));
        assert_eq!(p.uri.query(), Some("search=a%3Ab"));

        let mut p = parts("/v2/bookings?include=attributes%2Ccustomer_action_links&x=1");
        assert!(take_include(&mut p, false));
        assert_eq!(p.uri.query(), Some("include=attributes&x=1"));

        let mut p = parts("/v2/bookings?include=customer_action_links");
        assert!(take_include(&mut p, false));
        assert_eq!(p.uri.query(), None);

        let mut p = parts("/v2/bookings?include=customer_action_links");
        assert!(take_include(&mut p, true));
        assert_eq!(p.uri.query(), Some("include=customer_action_links"));

        let mut p = parts("/v2/bookings?include=attributes");
        assert!(!take_include(&mut p, false));
        assert_eq!(p.uri.query(), Some("include=attributes"));
    }

    #[test]
    fn json_content_types() {
        let v = |s: &'static str| Some(HeaderValue::from_static(s));
        assert!(is_json(v("application/json").as_ref()));
        assert!(is_json(v("application/json; charset=utf-8").as_ref()));
        assert!(is_json(v("application/vnd.api+json").as_ref()));
        assert!(!is_json(v("text/html").as_ref()));
        assert!(!is_json(None));
    }
}
