//! Credential schemes and the pipeline they plug into.
//!
//! Each scheme lives in its own module and exposes the same surface: find its
//! credential in the request, verify it, and return a [`Principal`] or a
//! [`Rejection`]. A route's [`AuthPolicy`] names the schemes it accepts; a new
//! scheme is one new module and one [`Scheme`] variant.
//!
//! The pipeline runs after untrusted headers are stripped and before the
//! trusted scope headers are written, so a scheme can never see (or be fooled
//! by) a client-sent `X-Scope-*` header.

use std::fmt;

use http::request::Parts;

pub mod principal;

pub use principal::{Principal, ScopeValue};

/// A credential scheme scopegate can verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {}

impl Scheme {
    /// Every scheme name a route may list, including ones a later release adds,
    /// so the error for a name this build does not have is precise.
    pub const PLANNED: &'static [&'static str] =
        &["signed-search", "action-link", "session", "sso", "api-key"];

    /// No scheme ships yet: every name is either planned or unknown.
    pub fn parse(_name: &str) -> Option<Self> {
        None
    }

    pub fn name(self) -> &'static str {
        match self {}
    }
}

/// What a route accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthPolicy {
    /// No credential is checked; scope headers are still stripped.
    Public,
    /// The first scheme whose credential is present decides; none present is a 401.
    AnyOf(Vec<Scheme>),
}

impl fmt::Display for AuthPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthPolicy::Public => f.write_str("public"),
            AuthPolicy::AnyOf(s) => {
                let names: Vec<_> = s.iter().map(|s| s.name()).collect();
                f.write_str(&names.join("|"))
            }
        }
    }
}

/// A uniform refusal. The cause is for the log only; the client sees the same
/// status, body and headers for every cause within one scheme.
#[derive(Debug)]
pub struct Rejection {
    pub scheme: Option<Scheme>,
    /// Short machine-readable cause for logs and metrics, never sent to the client.
    pub cause: &'static str,
}

/// Runs the route's policy against the request.
pub fn authenticate(policy: &AuthPolicy, _req: &mut Parts) -> Result<Principal, Rejection> {
    match policy {
        AuthPolicy::Public => Ok(Principal::Anonymous),
        AuthPolicy::AnyOf(schemes) => match schemes.first() {
            None => Err(Rejection {
                scheme: None,
                cause: "no scheme configured",
            }),
            Some(s) => match *s {},
        },
    }
}
