//! Timekit apps: the keys their tokens are signed with and their revocations.
//! Shared by signed search and action links.

use std::collections::{BTreeMap, HashSet};

use http::{HeaderName, HeaderValue};

use super::jwt::{AppKey, AppPolicy};

pub struct App {
    pub keys: Vec<AppKey>,
    pub revoked_before: Option<u64>,
    pub revoked_jti: HashSet<String>,
    /// What to send upstream for this app on routes with
    /// `upstream_credential = "app"` (the legacy API's own app credential).
    pub upstream_credential: Option<(HeaderName, HeaderValue)>,
    /// Origins whose pages may call with this app's tokens.
    pub cors_origins: Vec<crate::cors::OriginPattern>,
}

/// Apps by slug (ordered, so trying every app is deterministic).
#[derive(Default)]
pub struct Apps(pub BTreeMap<String, App>);

impl std::fmt::Debug for Apps {
    /// Slugs only; keys never appear in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Why a token could not be minted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MintError {
    #[error("no app with slug {0:?} in the configuration")]
    UnknownApp(String),
    #[error("app {0:?} has no live key")]
    NoLiveKey(String),
}

impl Apps {
    /// Signs `claims` (plus `app_slug`) with the app's first live key, in
    /// config order: during a rotation, list the new key first.
    pub fn mint(
        &self,
        slug: &str,
        mut claims: serde_json::Map<String, serde_json::Value>,
        now: u64,
    ) -> Result<String, MintError> {
        let app = self
            .0
            .get(slug)
            .ok_or_else(|| MintError::UnknownApp(slug.into()))?;
        let key = app
            .keys
            .iter()
            .find(|k| k.not_after.is_none_or(|t| now <= t))
            .ok_or_else(|| MintError::NoLiveKey(slug.into()))?;
        claims.insert("app_slug".into(), slug.into());
        Ok(super::jwt::sign(&claims, key.secret.expose()))
    }

    pub fn policy(&self, slug: &str) -> Option<AppPolicy<'_>> {
        self.0.get(slug).map(App::policy)
    }

    /// Every app, or only those in `only`, for tokens that do not name theirs.
    pub fn candidates<'a>(
        &'a self,
        only: Option<&'a [String]>,
    ) -> impl Iterator<Item = (&'a str, AppPolicy<'a>)> + 'a {
        self.0
            .iter()
            .filter(move |(slug, _)| only.is_none_or(|o| o.contains(slug)))
            .map(|(slug, a)| (slug.as_str(), a.policy()))
    }
}

impl App {
    fn policy(&self) -> AppPolicy<'_> {
        AppPolicy {
            keys: &self.keys,
            revoked_before: self.revoked_before,
            revoked_jti: &self.revoked_jti,
        }
    }
}
