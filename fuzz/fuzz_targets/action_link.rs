//! The action-link verifier (`scopegate::auth::action_link`, through
//! `scopegate::auth::authenticate`): a fuzzed path and query as the request
//! target, routed and verified as the proxy does against a fixed config
//! (fixtures/action_link.toml: one app, one action). Nothing may panic; an
//! accepted link names the configured action and the path's booking, and the
//! request loses its query; stripping credentials leaves no `signature`.
#![no_main]

use std::sync::LazyLock;

use http::Method;
use libfuzzer_sys::fuzz_target;
use scopegate::{
    auth::{self, action_link, AuthPolicy, Principal, RouteAuth, Scheme},
    path,
    routes::Lookup,
    Config,
};

/// 2027-01-15T08:00:00Z.
const NOW: u64 = 1_800_000_000;

static CONFIG: LazyLock<Config> = LazyLock::new(|| {
    Config::from_toml(include_str!("../fixtures/action_link.toml"))
        .expect("fixtures/action_link.toml")
});
static POLICY: LazyLock<AuthPolicy> = LazyLock::new(|| AuthPolicy::AnyOf(vec![Scheme::ActionLink]));

fuzz_target!(|data: &[u8]| {
    // First byte: the method; the rest: the request target (path and query).
    let Some((&m, target)) = data.split_first() else {
        return;
    };
    let method = match m % 4 {
        0 | 1 => Method::GET,
        2 => Method::POST,
        _ => Method::HEAD,
    };
    let Ok(req) = http::Request::builder()
        .method(method.clone())
        .uri(target)
        .body(())
    else {
        return;
    };
    let (parts, ()) = req.into_parts();
    let config = &*CONFIG;

    // As the proxy does: normalize, route, take {id} and {action}.
    let Ok(normalized) = path::normalize(parts.uri.path()) else {
        return;
    };
    let normalized = normalized.into_owned();
    let (apps, params) = match config.routes.lookup(None, &method, &normalized) {
        Lookup::Found(route, params) => (route.apps.as_deref(), Some(params)),
        _ => (None, None),
    };
    let action_path = params
        .as_ref()
        .and_then(|p| p.get("id").zip(p.get("action")));
    let route = RouteAuth {
        apps,
        action_path,
        has_body: m & 0x80 != 0,
        ..RouteAuth::default()
    };

    let mut verified = parts.clone();
    match auth::authenticate(&POLICY, &route, &mut verified, &config.auth, NOW) {
        Ok(Principal::Customer(c)) => {
            let grant = c.action.as_ref().expect("an action link grants an action");
            let (id, action) = action_path.expect("accepted without {id} and {action}");
            assert_eq!(grant.booking_id.header_value().as_bytes(), id.as_bytes());
            assert_eq!(grant.action.header_value().as_bytes(), action.as_bytes());
            assert_eq!(action, "cancel_by_customer");
            assert_eq!(c.app_slug, "shop");
            assert!(grant.once.is_some(), "the action is single-use");
            if let Some(r) = &grant.redirect {
                assert!(matches!(r.scheme(), "http" | "https"));
            }
            assert_eq!(
                verified.uri.query(),
                None,
                "query kept after an accepted link"
            );
        }
        Ok(other) => panic!("action-link policy produced {other:?}"),
        Err(_) => {}
    }

    let mut stripped = parts;
    auth::strip_credentials(&mut stripped, &config.auth);
    assert!(
        !action_link::present(&stripped),
        "signature left in {:?}",
        stripped.uri
    );
});
