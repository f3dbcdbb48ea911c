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

impl Apps {
    pub fn policy(&self, slug: &str) -> Option<AppPolicy<'_>> {
        self.0.get(slug).map(|a| AppPolicy {
            keys: &a.keys,
            revoked_before: a.revoked_before,
            revoked_jti: &a.revoked_jti,
        })
    }
}
