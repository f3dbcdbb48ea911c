//! Validation of the Timekit settings: `[[app]]`, `[action_links]`,
//! `[[action]]`, and the route settings that depend on them.

use std::collections::HashMap;

use http::Method;

use super::{compile_credential, raw, rfc3339, Checker};
use crate::{
    actions::{parse_origin, Action, ActionLinks, ListingSettings, PathTemplate},
    auth::{jwt::AppKey, AuthContext, ScopeValue},
    auth::{AuthPolicy, Scheme},
    routes::{Lookup, RouteTable},
};

pub(super) fn compile_apps(c: &mut Checker, raw: &[raw::RawApp]) -> crate::auth::Apps {
    let mut apps = crate::auth::Apps::default();
    for (i, a) in raw.iter().enumerate() {
        let path = format!("app[{i}]");
        if ScopeValue::new(&a.slug).is_err() {
            c.err(
                format!("{path}.slug"),
                format!("{:?} cannot be sent as a header", a.slug),
            );
        }
        if apps.0.contains_key(&a.slug) {
            c.err(
                format!("{path}.slug"),
                format!("duplicate app slug {:?}", a.slug),
            );
        }
        if a.key.is_empty() {
            c.err(
                format!("{path}.key"),
                "at least one [[app.key]] is required",
            );
        }
        let mut keys = Vec::new();
        for (j, k) in a.key.iter().enumerate() {
            let kpath = format!("{path}.key[{j}]");
            let not_after = k
                .not_after
                .as_deref()
                .and_then(|t| rfc3339(c, &format!("{kpath}.not_after"), t));
            if let Some(secret) = c.secret(&kpath, "key", &k.key, &k.key_env, &k.key_file) {
                keys.push(AppKey::new(secret, not_after));
            }
        }
        let revoked_before = a
            .revoked_before
            .as_deref()
            .and_then(|t| rfc3339(c, &format!("{path}.revoked_before"), t));
        // The key listed first is the current one (as for minting).
        let upstream_credential = a.upstream_credential.as_ref().and_then(|cred| {
            compile_credential(
                c,
                &format!("{path}.upstream_credential"),
                cred,
                Some(keys.first().map(|k| &k.secret)),
            )
        });
        apps.0.insert(
            a.slug.clone(),
            crate::auth::apps::App {
                keys,
                revoked_before,
                revoked_jti: a.revoked_jti.iter().cloned().collect(),
                upstream_credential,
                cors_origins: super::cors_origins(
                    c,
                    &format!("{path}.cors_origins"),
                    &a.cors_origins,
                ),
            },
        );
    }
    apps
}

fn origins(c: &mut Checker, path: &str, list: &[String]) -> Vec<url::Origin> {
    list.iter()
        .enumerate()
        .filter_map(|(i, o)| {
            parse_origin(o)
                .map_err(|e| c.err(format!("{path}[{i}]"), e))
                .ok()
        })
        .collect()
}

/// Names usable in a path segment and a header: the vendor's action names.
fn valid_action_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 64 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

pub(super) fn compile_actions(
    c: &mut Checker,
    links: &raw::RawActionLinks,
    raw: &[raw::RawAction],
) -> ActionLinks {
    let defaults = ActionLinks::default();
    let mut actions = Vec::new();
    for (i, a) in raw.iter().enumerate() {
        let path = format!("action[{i}]");
        if !valid_action_name(&a.name) {
            c.err(
                format!("{path}.name"),
                format!("{:?} must be 1-64 characters of [A-Za-z0-9_]", a.name),
            );
        }
        if raw[..i].iter().any(|o| o.name == a.name) {
            c.err(
                format!("{path}.name"),
                format!("duplicate action {:?}", a.name),
            );
        }
        if a.methods.is_empty() {
            c.err(format!("{path}.methods"), "must list at least one method");
        }
        let methods: Vec<Method> = a
            .methods
            .iter()
            .enumerate()
            .filter_map(|(j, m)| c.method(&format!("{path}.methods[{j}]"), m))
            .collect();
        let upstream = a.upstream.split_once(' ').and_then(|(m, p)| {
            let m = c.method(&format!("{path}.upstream"), m)?;
            let p = PathTemplate::parse(p)
                .map_err(|e| c.err(format!("{path}.upstream"), format!("{p:?}: {e}")))
                .ok()?;
            Some((m, p))
        });
        if !a.upstream.contains(' ') {
            c.err(
                format!("{path}.upstream"),
                format!(
                    "{:?} must be a method and a path, e.g. \"PUT /v2/bookings/{{id}}/cancel_by_customer\"",
                    a.upstream
                ),
            );
        }
        let ttl = c.nonzero(&format!("{path}.ttl"), a.ttl.0);
        let redirect_origins = a
            .redirect_origins
            .as_ref()
            .map(|o| origins(c, &format!("{path}.redirect_origins"), o));
        if let Some((upstream_method, upstream_path)) = upstream {
            actions.push(Action {
                name: a.name.clone(),
                methods,
                upstream_method,
                upstream_path,
                single_use: a.single_use,
                ttl,
                require_exp: a.require_exp,
                redirect_origins,
            });
        }
    }

    let public_base = links.public_base_url.as_ref().and_then(|b| {
        let ok = url::Url::parse(b).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host().is_some()
                && u.username().is_empty()
                && u.query().is_none()
                && u.fragment().is_none()
        });
        if ok {
            Some(b.trim_end_matches('/').to_string())
        } else {
            c.err(
                "action_links.public_base_url",
                format!(
                    "{b:?} must be an http(s) URL without query, e.g. \"https://api.example.com\""
                ),
            );
            None
        }
    });
    let link_path = match PathTemplate::parse(&links.link_path) {
        Ok(t) if t.as_str().contains("{action}") => t,
        Ok(_) => {
            c.err("action_links.link_path", "must contain {action}");
            defaults.link_path.clone()
        }
        Err(e) => {
            c.err(
                "action_links.link_path",
                format!("{:?}: {e}", links.link_path),
            );
            defaults.link_path.clone()
        }
    };
    if !links.bookings_pointer.is_empty() && !links.bookings_pointer.starts_with('/') {
        c.err(
            "action_links.bookings_pointer",
            "must be a JSON pointer: empty (the whole body) or starting with '/'",
        );
    }
    let state_actions: HashMap<String, Vec<String>> = match &links.state_actions {
        Some(table) => {
            for (state, names) in table {
                for (j, n) in names.iter().enumerate() {
                    if !actions.iter().any(|a| &a.name == n) && !raw.iter().any(|a| &a.name == n) {
                        c.err(
                            format!("action_links.state_actions.{state}[{j}]"),
                            format!("no [[action]] named {n:?}"),
                        );
                    }
                }
            }
            table.clone().into_iter().collect()
        }
        None => defaults.listing.state_actions,
    };
    if public_base.is_none() && !actions.is_empty() && links.public_base_url.is_none() {
        c.warnings.push(
            "action_links.public_base_url is not set: listings asking for customer_action_links get none".into(),
        );
    }
    let max_bytes = c.nonzero("action_links.max_listing_bytes", links.max_listing_bytes.0);
    ActionLinks {
        actions,
        public_base,
        link_path,
        redirect_origins: origins(c, "action_links.redirect_origins", &links.redirect_origins),
        listing: ListingSettings {
            pointer: links.bookings_pointer.clone(),
            max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
            max_bookings: c.nonzero("action_links.max_bookings", links.max_bookings),
            forward_include: links.forward_include,
            id_field: links.id_field.clone(),
            state_field: links.state_field.clone(),
            possible_actions_field: links.possible_actions_field.clone(),
            state_actions,
        },
    }
}

/// Route settings that depend on the apps and actions.
pub(super) fn check_routes(c: &mut Checker, raw: &raw::RawConfig, auth: &AuthContext) {
    for (i, r) in raw.route.iter().enumerate() {
        let path = format!("route[{i}]");
        let uses = |s: &str| r.auth.iter().any(|a| a == s);
        let timekit = uses("signed-search") || uses("action-link");
        if timekit && raw.app.is_empty() {
            c.err(
                format!("{path}.auth"),
                "signed-search and action-link need at least one [[app]]",
            );
        }
        if r.search_fields.is_some() && !uses("signed-search") {
            c.err(
                format!("{path}.search_fields"),
                "only applies to routes accepting signed-search",
            );
        }
        if let Some(apps) = &r.apps {
            if !timekit {
                c.err(
                    format!("{path}.apps"),
                    "only applies to routes accepting signed-search or action-link",
                );
            }
            for (j, a) in apps.iter().enumerate() {
                if !raw.app.iter().any(|x| &x.slug == a) {
                    c.err(
                        format!("{path}.apps[{j}]"),
                        format!("no [[app]] with slug {a:?}"),
                    );
                }
            }
        }
        if uses("action-link") {
            if r.auth.len() > 1 {
                c.err(
                    format!("{path}.auth"),
                    "action-link rewrites the request, so it cannot share a route with other schemes",
                );
            }
            if raw.action.is_empty() {
                c.err(
                    format!("{path}.auth"),
                    "action-link needs at least one [[action]]",
                );
            }
            if let Ok(p) = crate::routes::Pattern::parse(&r.path) {
                let params: Vec<&str> = p.params().collect();
                if !params.contains(&"id") || !params.contains(&"action") || p.has_wildcard() {
                    c.err(
                        format!("{path}.path"),
                        "an action-link route needs {id} and {action} and no '*', e.g. \"/v2/bookings/{id}/external_action/{action}\"",
                    );
                }
            }
        }
        match r.upstream_credential.as_deref() {
            None | Some("upstream") => {}
            Some("app") => {
                if !timekit {
                    c.err(
                        format!("{path}.upstream_credential"),
                        "\"app\" needs a route accepting signed-search or action-link",
                    );
                }
                let missing: Vec<&str> = auth
                    .apps
                    .0
                    .iter()
                    .filter(|(slug, a)| {
                        r.apps.as_ref().is_none_or(|o| o.contains(slug))
                            && a.upstream_credential.is_none()
                    })
                    .map(|(slug, _)| slug.as_str())
                    .collect();
                if !missing.is_empty() {
                    c.err(
                        format!("{path}.upstream_credential"),
                        format!(
                            "\"app\" needs an upstream_credential on every app the route accepts; missing on {missing:?}"
                        ),
                    );
                }
            }
            Some(other) => c.err(
                format!("{path}.upstream_credential"),
                format!("{other:?} is not one of \"upstream\" or \"app\""),
            ),
        }
    }
}

/// Minted links must land on an action-link route, or every one would 404.
/// A warning only: a front proxy may map `public_base_url` elsewhere.
pub(super) fn check_link_path(c: &mut Checker, routes: &RouteTable, auth: &AuthContext) {
    let links = &auth.actions;
    let Some(action) = links.actions.first() else {
        return;
    };
    if links.public_base.is_none() {
        return;
    }
    let path = links.link_path.render("booking-id", &action.name);
    let served = action
        .methods
        .iter()
        .all(|m| match routes.lookup(None, m, &path) {
            Lookup::Found(route, _) => {
                matches!(&route.auth, AuthPolicy::AnyOf(s) if s.contains(&Scheme::ActionLink))
            }
            _ => false,
        });
    if !served {
        c.warnings.push(format!(
            "action_links.link_path: minted links such as {path:?} match no action-link route accepting {:?}",
            action.methods.iter().map(Method::as_str).collect::<Vec<_>>()
        ));
    }
}
