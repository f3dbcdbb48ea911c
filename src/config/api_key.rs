//! Validation of the API key settings: `[api_keys]`, `[[application]]`,
//! `[[api_key]]`.

use std::collections::HashMap;

use super::{raw, rfc3339, Checker};
use crate::auth::api_key::{key_hash, ApiKey, ApiKeys, Application, Permission};

fn unhex32(s: &str) -> Option<[u8; 32]> {
    crate::store::unhex(s)?.try_into().ok()
}

fn param_name(c: &mut Checker, path: &str, v: &str) {
    if v.is_empty() || crate::auth::squash(v).is_empty() {
        c.err(path, "must be a parameter name");
    }
}

pub(super) fn compile(
    c: &mut Checker,
    s: &raw::RawApiKeys,
    apps: &[raw::RawApplication],
    keys: &[raw::RawApiKey],
) -> ApiKeys {
    param_name(c, "api_keys.api_key_param", &s.api_key_param);
    param_name(c, "api_keys.secret_key_param", &s.secret_key_param);
    if s.api_key_param == s.secret_key_param {
        c.err(
            "api_keys.secret_key_param",
            "must differ from api_key_param",
        );
    }
    let api_key_header = c.header_name("api_keys.api_key_header", &s.api_key_header);
    let secret_key_header = c.header_name("api_keys.secret_key_header", &s.secret_key_header);
    let info_ok = s.info_path.starts_with('/')
        && crate::path::normalize(&s.info_path).is_ok_and(|n| n == s.info_path);
    if !info_ok {
        c.err(
            "api_keys.info_path",
            format!("{:?} must be a normalized absolute path", s.info_path),
        );
    }

    let mut applications = Vec::new();
    let mut app_index = HashMap::new();
    for (i, a) in apps.iter().enumerate() {
        let path = format!("application[{i}]");
        if app_index.contains_key(&a.id) {
            c.err(
                format!("{path}.id"),
                format!("duplicate application id {:?}", a.id),
            );
        }
        let secret = c.secret(
            &path,
            "secret_key",
            &a.secret_key,
            &a.secret_key_env,
            &a.secret_key_file,
        );
        match (
            Application::new(
                &a.id,
                &a.name,
                secret.as_ref().map_or(&[][..], |s| s.expose()),
            ),
            secret,
        ) {
            (Ok(app), Some(_)) => {
                app_index.insert(a.id.clone(), applications.len());
                applications.push(app);
            }
            (Err(e), _) => c.err(
                format!("{path}.id"),
                format!("{:?} cannot be sent as a header: {e}", a.id),
            ),
            (Ok(_), None) => {}
        }
    }

    let mut by_hash = HashMap::new();
    for (i, k) in keys.iter().enumerate() {
        let path = format!("api_key[{i}]");
        let hash = match (&k.key_sha256, &k.key, &k.key_env, &k.key_file) {
            (Some(h), None, None, None) => unhex32(&h.to_ascii_lowercase()).or_else(|| {
                c.err(
                    format!("{path}.key_sha256"),
                    "must be 64 hex digits (SHA-256 of the key)",
                );
                None
            }),
            (None, ..) => c
                .secret(&path, "key", &k.key, &k.key_env, &k.key_file)
                .map(|s| key_hash(&String::from_utf8_lossy(s.expose()))),
            _ => {
                c.err(&path, "give key_sha256 or one of key_env, key_file, key");
                None
            }
        };
        let application = app_index.get(&k.application).copied();
        if application.is_none() && !apps.iter().any(|a| a.id == k.application) {
            c.err(
                format!("{path}.application"),
                format!("no [[application]] with id {:?}", k.application),
            );
        }
        if k.permissions.is_empty() {
            c.err(
                format!("{path}.permissions"),
                "must grant at least one permission",
            );
        }
        let mut granted = Vec::new();
        for (j, p) in k.permissions.iter().enumerate() {
            match p.parse::<Permission>() {
                Ok(p) => granted.push(p),
                Err(e) => c.err(format!("{path}.permissions[{j}]"), e.to_string()),
            }
        }
        let created = k.created.as_deref().and_then(|t| {
            rfc3339(c, &format!("{path}.created"), t)?;
            Some(t.to_string())
        });
        let (Some(hash), Some(application)) = (hash, application) else {
            continue;
        };
        if by_hash.contains_key(&hash) {
            c.err(&path, "the same API key is configured twice");
            continue;
        }
        match ApiKey::new(application, &k.business, granted, k.disabled, created) {
            Ok(key) => {
                by_hash.insert(hash, key);
            }
            Err(e) => c.err(
                format!("{path}.business"),
                format!("{:?} cannot be sent as a header: {e}", k.business),
            ),
        }
    }

    let defaults = ApiKeys::default();
    ApiKeys {
        applications,
        by_hash,
        api_key_param: s.api_key_param.clone(),
        secret_key_param: s.secret_key_param.clone(),
        api_key_header: api_key_header.unwrap_or(defaults.api_key_header),
        secret_key_header: secret_key_header.unwrap_or(defaults.secret_key_header),
        info_path: s.info_path.clone(),
    }
}
