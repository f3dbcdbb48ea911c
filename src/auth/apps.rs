//! Timekit apps: the keys their tokens are signed with and their revocations.
//! Shared by signed search and action links.

use std::collections::{HashMap, HashSet};

use super::jwt::{AppKey, AppPolicy};

pub struct App {
    pub keys: Vec<AppKey>,
    pub revoked_before: Option<u64>,
    pub revoked_jti: HashSet<String>,
}

/// Apps by slug.
#[derive(Default)]
pub struct Apps(pub HashMap<String, App>);

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
        self.0.get(slug).map(|a| AppPolicy {
            keys: &a.keys,
            revoked_before: a.revoked_before,
            revoked_jti: &a.revoked_jti,
        })
    }
}
