//! Every refusal scopegate answers itself, and the one function that renders it.
//!
//! Bodies are always `{"error":{"code":"...","message":"..."}}` with a fixed
//! message per code: no internal address, no upstream detail and no echo of
//! client input ever reaches an error body. Causes go to the log.

use http::{header, HeaderValue, Method, Response, StatusCode};

use crate::{auth::Rejection, body::ResponseBody, path::PathError};

/// A request scopegate refuses or cannot complete.
#[derive(Debug)]
pub enum GateError {
    BadPath(PathError),
    BadHost,
    /// A method in lower case (`delete`): refused rather than routed apart.
    BadMethod,
    BadQuery(crate::auth::search_query::QueryError),
    UriTooLong,
    HeadersTooLarge,
    BodyTooLarge,
    NotFound,
    MethodNotAllowed(Vec<Method>),
    Unauthorized(Rejection),
    /// An action link's `redirect` points outside the allowed origins.
    BadRedirect,
    /// A single-use action link was already used.
    AlreadyUsed,
    /// A valid credential that does not grant what the route needs (the need).
    Forbidden(String),
    /// A browser page whose origin may not call this route (CORS).
    OriginNotAllowed,
    /// More requests in flight than `limits.max_in_flight`: shed at once.
    Overloaded,
    /// The credential is given in more than one place.
    AmbiguousCredential,
    /// The client failed to authenticate too often; it may retry after this long.
    TooManyFailures(std::time::Duration),
    /// The single-use store cannot take a mark (full or unreachable): fail closed.
    StoreUnavailable,
    RequestTimeout,
    UpstreamUnavailable,
    UpstreamTimeout,
    /// The upstream could not be reached in time: the request never left.
    UpstreamConnectTimeout,
    UpstreamProtocol,
    /// The client's own request body failed mid-stream (disconnect, bad chunking).
    ClientBody,
}

impl GateError {
    pub fn status(&self) -> StatusCode {
        use GateError::*;
        match self {
            BadPath(_) | BadHost | BadMethod | BadQuery(_) | ClientBody | BadRedirect
            | AmbiguousCredential => StatusCode::BAD_REQUEST,
            AlreadyUsed => StatusCode::CONFLICT,
            Forbidden(_) | OriginNotAllowed => StatusCode::FORBIDDEN,
            TooManyFailures(_) => StatusCode::TOO_MANY_REQUESTS,
            StoreUnavailable | Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            UriTooLong => StatusCode::URI_TOO_LONG,
            HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Unauthorized(_) => StatusCode::UNAUTHORIZED,
            RequestTimeout | UpstreamTimeout | UpstreamConnectTimeout => {
                StatusCode::GATEWAY_TIMEOUT
            }
            UpstreamUnavailable | UpstreamProtocol => StatusCode::BAD_GATEWAY,
        }
    }

    /// The machine-readable code; also the `outcome` of the access log.
    pub fn code(&self) -> &'static str {
        use GateError::*;
        match self {
            BadPath(_) => "bad_path",
            BadHost => "bad_host",
            BadMethod => "bad_method",
            BadQuery(_) => "bad_query",
            ClientBody => "bad_request_body",
            UriTooLong => "uri_too_long",
            HeadersTooLarge => "headers_too_large",
            BodyTooLarge => "body_too_large",
            NotFound => "not_found",
            MethodNotAllowed(_) => "method_not_allowed",
            Unauthorized(_) => "unauthorized",
            BadRedirect => "redirect_not_allowed",
            AlreadyUsed => "link_already_used",
            AmbiguousCredential => "ambiguous_credential",
            Forbidden(_) => "permission_denied",
            OriginNotAllowed => "origin_not_allowed",
            TooManyFailures(_) => "too_many_failures",
            StoreUnavailable => "store_unavailable",
            Overloaded => "overloaded",
            RequestTimeout => "request_timeout",
            UpstreamTimeout | UpstreamConnectTimeout => "upstream_timeout",
            UpstreamUnavailable => "upstream_unavailable",
            UpstreamProtocol => "upstream_error",
        }
    }

    fn message(&self) -> &'static str {
        use GateError::*;
        match self {
            BadPath(_) => "the request path is not acceptable",
            BadHost => "the request host is missing, repeated or malformed",
            BadMethod => "the method must be upper case",
            BadQuery(_) => "the query string is malformed or ambiguous",
            ClientBody => "the request body could not be read",
            UriTooLong => "the request target is too long",
            HeadersTooLarge => "the request headers are too large",
            BodyTooLarge => "the request body is too large",
            NotFound => "no route matches this request",
            MethodNotAllowed(_) => "the method is not allowed on this route",
            Unauthorized(_) => "a valid credential is required",
            BadRedirect => "the redirect target is not allowed",
            AlreadyUsed => "this link has already been used",
            AmbiguousCredential => "the credential is given more than once",
            Forbidden(_) => "the credential does not grant what this route needs",
            OriginNotAllowed => "this origin may not call this route",
            TooManyFailures(_) => "too many failed attempts; retry later",
            StoreUnavailable => "the service is temporarily unavailable",
            Overloaded => "too many requests in progress; retry shortly",
            RequestTimeout => "the request took too long",
            UpstreamTimeout | UpstreamConnectTimeout => "the upstream did not answer in time",
            UpstreamUnavailable => "the upstream is unavailable",
            UpstreamProtocol => "the upstream answered with an error",
        }
    }

    /// Whether the request certainly never reached the upstream (so nothing
    /// it asked for can have happened).
    pub fn undelivered(&self) -> bool {
        matches!(
            self,
            GateError::UpstreamUnavailable | GateError::UpstreamConnectTimeout
        )
    }

    /// A detail for the log (never for the client).
    pub fn cause(&self) -> Option<String> {
        match self {
            GateError::BadPath(e) => Some(e.to_string()),
            GateError::BadQuery(e) => Some(e.to_string()),
            GateError::Unauthorized(r) => Some(r.cause.to_string()),
            _ => None,
        }
    }

    pub fn into_response(self) -> Response<ResponseBody> {
        let mut body = serde_json::json!({
            "error": { "code": self.code(), "message": self.message() }
        });
        if let GateError::Forbidden(need) = &self {
            // From the configuration (an area and rights), never client input.
            body["error"]["needed"] = need.as_str().into();
        }
        let mut resp = ResponseBody::json(self.status(), body.to_string());
        let h = resp.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let GateError::Unauthorized(r) = &self {
            if r.scheme == Some(crate::auth::Scheme::Session) {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"scopegate\""),
                );
            }
        }
        if matches!(self, GateError::Overloaded) {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let GateError::TooManyFailures(after) = &self {
            h.insert(
                header::RETRY_AFTER,
                HeaderValue::from(after.as_secs().max(1)),
            );
        }
        if let GateError::MethodNotAllowed(methods) = &self {
            let allow: Vec<&str> = methods.iter().map(Method::as_str).collect();
            if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
                h.insert(header::ALLOW, v);
            }
        }
        if matches!(
            self,
            GateError::UriTooLong | GateError::HeadersTooLarge | GateError::BodyTooLarge
        ) {
            // The rest of an oversized request is not read; the connection must not be reused.
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}
