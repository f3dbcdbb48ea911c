//! API key + secret key with permissions (Bookeo).
//!
//! An application holds a secret key; each business that installs it grants
//! an API key with a set of permissions. Every call carries both keys, as the
//! `apiKey` / `secretKey` query parameters or the `X-Bookeo-apiKey` /
//! `X-Bookeo-secretKey` headers. scopegate finds the API key by its SHA-256
//! (so the configuration may hold only hashes), compares the secret's SHA-256
//! with the application's in constant time (also for an unknown key, against
//! a dummy, so both cost the same), and decides from the route's requirement
//! and the method whether the granted permissions allow the request, and how
//! far they reach (`own` or `all`).

pub mod permission;

use std::collections::HashMap;

use http::{request::Parts, HeaderName, HeaderValue, Method, Response, StatusCode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use permission::{Area, Need, Permission, PermissionError, Reach, Requirement, Rights};

use super::{search_query as q, AuthError, Principal, Rejection, Scheme, ScopeValue};
use crate::{body::ResponseBody, error::GateError};

/// An application registered with the vendor.
#[derive(Debug)]
pub struct Application {
    pub id: String,
    /// `X-Scope-App`.
    pub id_value: ScopeValue,
    pub name: String,
    /// SHA-256 of the secret key.
    secret: [u8; 32],
    /// `X-Scope-Reach` for own-only grants: `own:<id>`.
    pub own_reach: ScopeValue,
}

impl Application {
    pub fn new(
        id: &str,
        name: &str,
        secret: &[u8],
    ) -> Result<Self, super::principal::ScopeValueError> {
        Ok(Self {
            id: id.into(),
            id_value: ScopeValue::new(id)?,
            name: name.into(),
            secret: Sha256::digest(secret).into(),
            own_reach: ScopeValue::new(&format!("own:{id}"))?,
        })
    }
}

/// One installation of an application in one business account.
#[derive(Debug)]
pub struct ApiKey {
    /// Index into [`ApiKeys::applications`].
    pub application: usize,
    pub business: String,
    /// `X-Scope-Business`.
    pub business_value: ScopeValue,
    /// As configured (and as `apikeyinfo` lists them).
    pub granted: Vec<Permission>,
    /// With everything they imply.
    pub expanded: Vec<Permission>,
    /// `X-Scope-Permissions`: the expanded list.
    pub permissions_value: ScopeValue,
    pub disabled: bool,
    /// RFC 3339, for `apikeyinfo`'s `creationTime`.
    pub created: Option<String>,
}

impl ApiKey {
    pub fn new(
        application: usize,
        business: &str,
        granted: Vec<Permission>,
        disabled: bool,
        created: Option<String>,
    ) -> Result<Self, super::principal::ScopeValueError> {
        let mut expanded: Vec<Permission> = granted.iter().flat_map(|p| p.expand()).collect();
        expanded.sort();
        expanded.dedup();
        let names: Vec<String> = expanded.iter().map(ToString::to_string).collect();
        Ok(Self {
            application,
            business: business.into(),
            business_value: ScopeValue::new(business)?,
            granted,
            permissions_value: ScopeValue::list(&names)?,
            expanded,
            disabled,
            created,
        })
    }
}

/// The SHA-256 of an API key, as the configuration's `key_sha256` holds it.
pub fn key_hash(api_key: &str) -> [u8; 32] {
    Sha256::digest(api_key.as_bytes()).into()
}

/// Every application and API key, and where the keys are read.
#[derive(Debug)]
pub struct ApiKeys {
    pub applications: Vec<Application>,
    pub by_hash: HashMap<[u8; 32], ApiKey>,
    pub api_key_param: String,
    pub secret_key_param: String,
    pub api_key_header: HeaderName,
    pub secret_key_header: HeaderName,
    /// Answered by scopegate: `GET /v2/settings/apikeyinfo`.
    pub info_path: String,
}

impl Default for ApiKeys {
    fn default() -> Self {
        Self {
            applications: Vec::new(),
            by_hash: HashMap::new(),
            api_key_param: "apiKey".into(),
            secret_key_param: "secretKey".into(),
            api_key_header: HeaderName::from_static("x-bookeo-apikey"),
            secret_key_header: HeaderName::from_static("x-bookeo-secretkey"),
            info_path: "/v2/settings/apikeyinfo".into(),
        }
    }
}

/// A business reached through an API key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyHolder {
    /// `X-Scope-App`: the application id.
    pub application: ScopeValue,
    /// `X-Scope-Business`.
    pub business: ScopeValue,
    /// `X-Scope-Permissions`.
    pub permissions: ScopeValue,
    /// `X-Scope-Reach`: `all` or `own:<application>`.
    pub reach: ScopeValue,
}

fn reject(cause: &'static str) -> AuthError {
    AuthError::Rejected(Rejection {
        scheme: Some(Scheme::ApiKey),
        cause,
    })
}

impl ApiKeys {
    pub fn enabled(&self) -> bool {
        !self.by_hash.is_empty()
    }

    /// The (apiKey, secretKey) pair from its one place. `Ok(None)`: neither.
    fn credentials(&self, parts: &Parts) -> Result<Option<(String, String)>, AuthError> {
        let query = parts.uri.query().unwrap_or("");
        let in_query = (
            q::values(query, &self.api_key_param),
            q::values(query, &self.secret_key_param),
        );
        let header = |name: &HeaderName| -> Vec<String> {
            parts
                .headers
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap_or_default().trim().to_string())
                .collect()
        };
        let in_headers = (
            header(&self.api_key_header),
            header(&self.secret_key_header),
        );
        let query_used = !in_query.0.is_empty() || !in_query.1.is_empty();
        let headers_used = !in_headers.0.is_empty() || !in_headers.1.is_empty();
        let (mut api, mut secret) = match (query_used, headers_used) {
            (false, false) => return Ok(None),
            (true, true) => return Err(AuthError::Ambiguous),
            (true, false) => in_query,
            (false, true) => in_headers,
        };
        if api.len() > 1 || secret.len() > 1 {
            return Err(AuthError::Ambiguous);
        }
        match (api.pop(), secret.pop()) {
            (Some(a), Some(s)) => Ok(Some((a, s))),
            _ => Err(AuthError::BadQuery(q::QueryError::Missing)),
        }
    }

    /// Whether any part of an API key credential is present.
    pub fn present(&self, parts: &Parts) -> bool {
        !matches!(self.credentials(parts), Ok(None))
    }

    /// The key a credential pair proves, or the uniform refusal. Both the
    /// lookup and the secret comparison run whether or not the key exists.
    fn check(&self, api_key: &str, secret_key: &str) -> Result<(&ApiKey, &Application), AuthError> {
        const NO_SECRET: [u8; 32] = [0; 32];
        let found = self.by_hash.get(&key_hash(api_key));
        let app = found.and_then(|k| self.applications.get(k.application));
        let expected = app.map_or(&NO_SECRET, |a| &a.secret);
        let given: [u8; 32] = Sha256::digest(secret_key.as_bytes()).into();
        let secret_ok: bool = given.ct_eq(expected).into();
        match (found, app) {
            (Some(k), Some(a)) if secret_ok && !k.disabled => Ok((k, a)),
            (Some(k), Some(_)) if secret_ok && k.disabled => Err(reject("api key disabled")),
            (Some(_), Some(_)) => Err(reject("wrong secret key")),
            _ => Err(reject("unknown api key")),
        }
    }

    /// Verifies the request's keys against the route's requirement.
    /// `form_body`: the request has a form-encoded or multipart body, which
    /// some backends read `_method=` from, so it needs every right.
    pub fn verify(
        &self,
        parts: &Parts,
        requirement: Option<Requirement>,
        form_body: bool,
    ) -> Result<Principal, AuthError> {
        let Some((api_key, secret_key)) = self.credentials(parts)? else {
            return Err(reject("no api key"));
        };
        let (key, app) = self.check(&api_key, &secret_key)?;
        // A method override could make the backend do more than the method
        // scopegate checked: refused outright, in the query and in headers
        // (an operator may have taken them out of `proxy.strip_headers`).
        const OVERRIDE_HEADERS: [&str; 3] = [
            "x-http-method-override",
            "x-http-method",
            "x-method-override",
        ];
        let header_override = parts.headers.keys().any(|k| {
            let canon = k.as_str().replace('_', "-");
            OVERRIDE_HEADERS.contains(&canon.as_str())
        });
        if header_override {
            return Err(AuthError::BadQuery(q::QueryError::MethodOverride));
        }
        // (A `_method` in the query is refused for every route, before any.)
        let Some(requirement) = requirement else {
            return Err(reject("route has no requirement"));
        };
        let mut need = requirement.need(&parts.method);
        // A form body could carry `_method=DELETE`: it needs every right,
        // on fixed routes too (a POST route beside a DELETE route).
        if form_body {
            need.rights = Rights::Rwd;
        }
        let reach = match need.reach_in(&key.expanded) {
            Some(Reach::All) => ScopeValue::new("all").expect("a plain word"),
            Some(Reach::Own) => app.own_reach.clone(),
            None => return Err(AuthError::Forbidden(need.to_string())),
        };
        Ok(Principal::ApiKey(Box::new(KeyHolder {
            application: app.id_value.clone(),
            business: key.business_value.clone(),
            permissions: key.permissions_value.clone(),
            reach,
        })))
    }

    /// `GET /v2/settings/apikeyinfo`, answered in the vendor's shape plus
    /// the application and the implied permissions.
    pub fn info(&self, parts: &Parts) -> Result<Response<ResponseBody>, GateError> {
        if !matches!(parts.method, Method::GET | Method::HEAD) {
            return Err(GateError::MethodNotAllowed(vec![Method::GET, Method::HEAD]));
        }
        let (api_key, secret_key) = match self.credentials(parts) {
            Ok(Some(pair)) => pair,
            Ok(None) => return Err(unauthorized("no api key")),
            Err(AuthError::Ambiguous) => return Err(GateError::AmbiguousCredential),
            Err(AuthError::BadQuery(e)) => return Err(GateError::BadQuery(e)),
            Err(_) => return Err(unauthorized("bad api key")),
        };
        let (key, app) = self.check(&api_key, &secret_key).map_err(|e| match e {
            AuthError::Rejected(r) => GateError::Unauthorized(r),
            _ => GateError::Unauthorized(Rejection {
                scheme: Some(Scheme::ApiKey),
                cause: "bad api key",
            }),
        })?;
        let names = |ps: &[Permission]| ps.iter().map(ToString::to_string).collect::<Vec<_>>();
        let body = serde_json::json!({
            "accountId": key.business,
            "permissions": names(&key.granted),
            "creationTime": key.created,
            "application": { "id": app.id, "name": app.name },
            "impliedPermissions": names(&key.expanded),
        });
        let mut resp = ResponseBody::json(StatusCode::OK, body.to_string());
        resp.headers_mut().insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        Ok(resp)
    }
}

fn unauthorized(cause: &'static str) -> GateError {
    GateError::Unauthorized(Rejection {
        scheme: Some(Scheme::ApiKey),
        cause,
    })
}

impl ApiKeys {
    /// Removes the key headers, in every spelling (the vendor's names and
    /// the configured ones), from headers going upstream.
    pub fn strip(&self, headers: &mut http::HeaderMap) {
        crate::scope::HeaderPolicy::remove_spellings_of(
            headers,
            &[
                "x-bookeo-apikey",
                "x-bookeo-secretkey",
                self.api_key_header.as_str(),
                self.secret_key_header.as_str(),
            ],
        );
    }
}

/// A fresh API key: 32 characters of `[A-Z0-9]` (165 bits) from the OS CSPRNG.
pub fn new_key() -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rngs::OsRng;
    (0..32)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_keys_are_long_and_distinct() {
        let a = new_key();
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
        assert_ne!(a, new_key());
    }
}
