//! Signed search (Timekit): an HS256 JWT in `signed_search` that proves one
//! customer identity (`customer.email` or `meta.<name>`), bound to the
//! `search` filter of the same request.
//!
//! Order: the query shape (400 when malformed), then the token (uniform 401),
//! then the binding (uniform 401: a valid token whose pair is missing from
//! `search` would otherwise list every customer's bookings). The upstream gets
//! the query re-serialized from its decoded parameters, without `signed_search`.

use super::{
    jwt, search_query as q, AuthContext, AuthError, Principal, Rejection, RouteAuth, Scheme,
    Subject,
};
use http::request::Parts;

/// Whether the request carries this scheme's credential at all.
pub fn present(parts: &Parts) -> bool {
    parts
        .uri
        .query()
        .is_some_and(|query| q::iter_params(query).any(|p| p.name == "signed_search"))
}

fn reject(cause: &'static str) -> AuthError {
    AuthError::Rejected(Rejection {
        scheme: Some(Scheme::SignedSearch),
        cause,
    })
}

/// Verifies the request and rewrites its query for the upstream.
///
/// The query's shape is checked before the token, so a 400 never tells a
/// valid token from an invalid one; everything after the token is a 401.
pub fn verify(
    parts: &mut Parts,
    route: &RouteAuth<'_>,
    ctx: &AuthContext,
    now: u64,
) -> Result<Principal, AuthError> {
    if parts.method != http::Method::GET && parts.method != http::Method::HEAD {
        return Err(AuthError::BadQuery(q::QueryError::Method));
    }
    if route.has_body {
        return Err(AuthError::BadQuery(q::QueryError::Body));
    }
    let query = parts.uri.query().unwrap_or("");
    let (search, token) = q::extract(query).map_err(AuthError::BadQuery)?;
    let parsed = q::parse_search(&search, route.search_fields, q::is_subject_field)
        .map_err(AuthError::BadQuery)?;
    let token = token.ok_or_else(|| reject("no signed_search"))?;

    let v = jwt::verify(&token, now, ctx.leeway, |slug| ctx.apps.policy(slug))
        .map_err(|e| reject(e.cause()))?;
    if route.apps.is_some_and(|apps| !apps.contains(&v.app_slug)) {
        return Err(reject("app not accepted on this route"));
    }
    if v.claims.booking_id.is_some() || v.claims.action.is_some() {
        return Err(reject("action-link token used as signed search"));
    }
    let (field, claim) = super::subject_claim(&v.claims)
        .map_err(reject)?
        .ok_or_else(|| reject("no subject claim"))?;
    q::bind(&parsed, field, claim, route.search_fields).map_err(|e| {
        reject(match e {
            q::BindError::Absent => "signed pair absent from search",
            q::BindError::Repeated => "signed pair repeated",
            q::BindError::OtherValue => "other value for the signed field",
            q::BindError::UnsearchableClaim => "claim cannot be searched",
            q::BindError::FieldNotAllowed => "subject field not allowed",
        })
    })?;

    let subject = Subject::new(field, claim).map_err(|_| reject("subject not sendable"))?;

    // The upstream gets a re-serialized query, never the client's bytes.
    let canonical = q::canonical(query, &["signed_search"]);
    super::set_query(parts, canonical.as_deref());
    super::customer(Scheme::SignedSearch, v, Some(subject), None).map_err(reject)
}
