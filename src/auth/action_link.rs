//! Action links (Timekit): `/v2/bookings/{id}/external_action/{action}?signature=<JWT>&redirect=<url>`,
//! a token that allows one action on one booking.
//!
//! Order: the action named in the path must be configured (404) and accept
//! the method (405); the query shape (400); then the token (uniform 401),
//! whose `booking_id` and `action` must equal the path's; then the redirect
//! (400 when its origin is not allowed). The upstream receives the call the
//! action is configured to become, with no query.
//!
//! `redirect` is outside the vendor's signature, so it is followed only to an
//! allowed origin, or when it equals a signed `redirect` claim.

use http::request::Parts;
use serde_json::Value;

use super::{
    jwt, search_query as q, ActionGrant, AuthContext, AuthError, Principal, Rejection, RouteAuth,
    Scheme, ScopeValue, Subject,
};
use crate::actions::{check_redirect, valid_booking_id};

/// The query parameter carrying the token.
pub const PARAM: &str = "signature";

pub fn present(parts: &Parts) -> bool {
    parts
        .uri
        .query()
        .is_some_and(|query| q::iter_params(query).any(|p| p.name == PARAM))
}

fn reject(cause: &'static str) -> AuthError {
    AuthError::Rejected(Rejection {
        scheme: Some(Scheme::ActionLink),
        cause,
    })
}

/// The `signature` and `redirect` values of a well-formed query.
fn extract(query: &str) -> Result<(Option<String>, Option<String>), q::QueryError> {
    let all = q::params(query);
    if all.len() > q::MAX_PARAMS {
        return Err(q::QueryError::TooManyParams);
    }
    let (mut signature, mut redirect) = (None, None);
    for p in all {
        q::check_param(&p)?;
        let folded = q::fold(&p.name);
        let slot = match folded.as_str() {
            "signature" => &mut signature,
            "redirect" => &mut redirect,
            _ => continue,
        };
        if p.name != folded {
            return Err(q::QueryError::LookalikeName);
        }
        if slot.replace(p.value().into_owned()).is_some() {
            return Err(q::QueryError::Repeated);
        }
    }
    Ok((signature, redirect))
}

pub fn verify(
    parts: &mut Parts,
    route: &RouteAuth<'_>,
    ctx: &AuthContext,
    now: u64,
) -> Result<Principal, AuthError> {
    let Some((path_id, path_action)) = route.action_path else {
        return Err(AuthError::NotFound);
    };
    let action = ctx.actions.get(path_action).ok_or(AuthError::NotFound)?;
    if !action.methods.contains(&parts.method) {
        return Err(AuthError::Method(action.methods.clone()));
    }
    // A link a browser follows has no body; a crafted one must not smuggle
    // fields into the upstream call.
    if route.has_body && matches!(parts.method, http::Method::GET | http::Method::HEAD) {
        return Err(AuthError::BadQuery(q::QueryError::Body));
    }
    let (token, redirect) =
        extract(parts.uri.query().unwrap_or("")).map_err(AuthError::BadQuery)?;
    let token = token.ok_or_else(|| reject("no signature"))?;

    let v = jwt::verify_or_search(
        &token,
        now,
        ctx.leeway,
        |slug| ctx.apps.policy(slug),
        ctx.apps.candidates(route.apps),
    )
    .map_err(|e| reject(e.cause()))?;
    if route.apps.is_some_and(|apps| !apps.contains(&v.app_slug)) {
        return Err(reject("app not accepted on this route"));
    }
    fn claim(c: &Option<Value>) -> Result<Option<&str>, AuthError> {
        match c {
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            None => Ok(None),
            Some(_) => Err(reject("claim is not a string")),
        }
    }
    let (Some(booking_id), Some(claimed_action)) =
        (claim(&v.claims.booking_id)?, claim(&v.claims.action)?)
    else {
        return Err(reject("not an action-link token"));
    };
    if booking_id != path_id || !valid_booking_id(booking_id) {
        return Err(reject("booking id differs from the path"));
    }
    if claimed_action != path_action {
        return Err(reject("action differs from the path"));
    }
    if action.require_exp && v.claims.exp.is_none() {
        return Err(reject("no exp"));
    }
    let subject = match super::subject_claim(&v.claims).map_err(reject)? {
        Some((field, value)) => {
            Some(Subject::new(field, value).map_err(|_| reject("subject not sendable"))?)
        }
        None => None,
    };

    let redirect = match (claim(&v.claims.redirect)?, redirect) {
        (Some(signed), given) => {
            if given.as_deref().is_some_and(|g| g != signed) {
                return Err(AuthError::Redirect);
            }
            Some(url::Url::parse(signed).map_err(|_| reject("signed redirect is not a URL"))?)
        }
        (None, Some(given)) => {
            Some(check_redirect(&given, ctx.actions.origins(action)).ok_or(AuthError::Redirect)?)
        }
        (None, None) => None,
    };
    if redirect
        .as_ref()
        .is_some_and(|u| !matches!(u.scheme(), "http" | "https"))
    {
        return Err(AuthError::Redirect);
    }

    // A single-use link must expire, or its mark could be forgotten before it
    // and the link replayed: its end is `exp`, else `iat` + the action's ttl.
    let once = if action.single_use {
        let number = |c: &Option<Value>| c.as_ref().and_then(Value::as_f64);
        let end = match (number(&v.claims.exp), number(&v.claims.iat)) {
            (Some(exp), _) => exp,
            (None, Some(iat)) => iat + action.ttl.as_secs_f64(),
            (None, None) => return Err(reject("single-use link without exp or iat")),
        };
        let left = end + ctx.leeway as f64 - now as f64;
        if left <= 0.0 {
            return Err(reject("single-use link past iat + ttl"));
        }
        let id = match &v.claims.jti {
            Some(Value::String(j)) => j.as_bytes(),
            _ => token.as_bytes(),
        };
        Some((
            crate::store::key("action-link", &[v.app_slug.as_bytes(), id]),
            // Kept until the token could no longer be used anyway.
            std::time::Duration::from_secs(left.clamp(1.0, 10.0 * 365.0 * 86_400.0).ceil() as u64),
        ))
    } else {
        None
    };

    let grant = ActionGrant {
        booking_id: ScopeValue::new(booking_id).map_err(|_| reject("booking id not sendable"))?,
        action: ScopeValue::new(&action.name).map_err(|_| reject("action not sendable"))?,
        upstream_method: action.upstream_method.clone(),
        upstream_path: action.upstream_path.render(booking_id, &action.name),
        redirect,
        once,
    };
    super::set_query(parts, None);
    super::customer(Scheme::ActionLink, v, subject, Some(grant)).map_err(reject)
}
