//! Hot-path micro benchmarks: what every request pays before it is forwarded.
//! Run with `cargo bench --bench hot_paths`.

use std::hint::black_box;

// The binary's allocator, so the figures are the ones a request pays.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use scopegate::{
    auth::{self, jwt, AuthPolicy, RouteAuth, Scheme},
    path,
    routes::Lookup,
    Config,
};

const KEY: &str = "live_api_key_7nzvc7wsBQQISLeFSVhROys9V1bUJ1z7";

const CONFIG: &str = r#"
[[application]]
id = "frontdesk"
secret_key = "sk_frontdesk_4f1e2d3c4b5a69788796a5b4"
[[api_key]]
key = "Q4CKFP9BR62Z5XS9O58BVJKJCSHDNMSK"
application = "frontdesk"
business = "acct-1"
permissions = ["bookings_rw_own", "customers_r_all", "payments_r_all"]

[[app]]
slug = "my-app-6165"
[[app.key]]
key = "live_api_key_7nzvc7wsBQQISLeFSVhROys9V1bUJ1z7"
[[upstream]]
name = "b"
url = "http://127.0.0.1:9"

[[route]]
name = "list"
methods = ["GET"]
path = "/v2/bookings"
auth = ["public"]
upstream = "b"

[[route]]
name = "one"
path = "/v2/bookings/{id}"
auth = ["public"]
upstream = "b"

[[route]]
name = "action"
path = "/v2/bookings/{id}/external_action/{action}"
auth = ["public"]
upstream = "b"

[[route]]
name = "resources"
path = "/v2/resources/*"
auth = ["public"]
upstream = "b"

[[route]]
name = "catch"
path = "/v2/*"
auth = ["public"]
upstream = "b"

[action_links]
public_base_url = "https://api.example.com"

[[action]]
name = "cancel_by_customer"
upstream = "PUT /v2/bookings/{id}/cancel_by_customer"

[[action]]
name = "reschedule_by_customer"
upstream = "PUT /v2/bookings/{id}/reschedule_by_customer"
"#;

fn typical_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "api.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
        ),
        ("accept", "application/json"),
        ("accept-encoding", "gzip, deflate, br"),
        ("accept-language", "en-US,en;q=0.9"),
        ("connection", "keep-alive"),
        ("x-scope-app", "forged"),
        ("x-forwarded-for", "203.0.113.9"),
    ] {
        h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    h
}

fn benches(c: &mut Criterion) {
    c.bench_function("normalize/plain", |b| {
        b.iter(|| {
            path::normalize(black_box(
                "/v2/bookings/b-1001/external_action/cancel_by_customer",
            ))
        })
    });
    c.bench_function("normalize/dirty", |b| {
        b.iter(|| path::normalize(black_box("/v2/./bookings//%62-1001/../b-1002/%7Euser")))
    });

    let config = Config::from_toml(CONFIG).expect("bench config");
    c.bench_function("routes/lookup_param", |b| {
        b.iter(|| {
            let l = config.routes.lookup(
                None,
                &Method::GET,
                black_box("/v2/bookings/b-1001/external_action/cancel"),
            );
            assert!(matches!(l, Lookup::Found(..)));
        })
    });
    c.bench_function("routes/lookup_wildcard", |b| {
        b.iter(|| {
            config
                .routes
                .lookup(None, &Method::GET, black_box("/v2/other/thing"))
        })
    });

    let template = typical_headers();
    c.bench_function("scope/strip_request", |b| {
        b.iter_batched(
            || template.clone(),
            |mut h| {
                config.headers.strip_request(&mut h, false);
                h
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

fn signed_search(c: &mut Criterion) {
    let config = Config::from_toml(CONFIG).expect("bench config");
    let claims =
        serde_json::json!({"app_slug": "my-app-6165", "customer.email": "marty@example.com"});
    let token = jwt::sign(claims.as_object().unwrap(), KEY.as_bytes());
    let uri = format!("/v2/bookings?search=customer.email:marty@example.com;state:confirmed&signed_search={token}");
    let parts = http::Request::get(uri).body(()).unwrap().into_parts().0;
    let policy = AuthPolicy::AnyOf(vec![Scheme::SignedSearch]);
    let route = RouteAuth::default();
    c.bench_function("signed_search/verify_bind_strip", |b| {
        b.iter_batched(
            || parts.clone(),
            |mut p| {
                let principal =
                    auth::authenticate(&policy, &route, &mut p, &config.auth, 1_800_000_000);
                assert!(principal.is_ok());
                auth::strip_credentials(&mut p, &config.auth);
                p
            },
            criterion::BatchSize::SmallInput,
        )
    });

    // The header rewrite of a forwarded request: client headers stripped,
    // X-Forwarded-* and the scope headers of the proven customer written.
    let principal = auth::authenticate(
        &policy,
        &route,
        &mut parts.clone(),
        &config.auth,
        1_800_000_000,
    )
    .expect("a valid token");
    let template = typical_headers();
    let route_value = HeaderValue::from_static("bookings-list");
    let peer: std::net::IpAddr = "203.0.113.7".parse().unwrap();
    c.bench_function("scope/rewrite_signed_search", |b| {
        b.iter_batched(
            || template.clone(),
            |mut h| {
                let policy = &config.headers;
                policy.strip_request(&mut h, false);
                policy.write_forwarding(&mut h, peer, false, "https", Some("api.example.com"));
                policy.write_scope(&mut h, &principal, &route_value);
                h
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

fn action_links(c: &mut Criterion) {
    let config = Config::from_toml(CONFIG).expect("bench config");
    let booking = "58190fc6-1ec0-4ebb-b627-7ce6aa9fc703";
    let policy = AuthPolicy::AnyOf(vec![Scheme::ActionLink]);
    let route = RouteAuth {
        action_path: Some((booking, "cancel_by_customer")),
        ..RouteAuth::default()
    };
    for (name, claims) in [
        (
            "action_link/verify_with_app_slug",
            serde_json::json!({"app_slug": "my-app-6165", "booking_id": booking,
                               "action": "cancel_by_customer", "exp": 1_900_000_000u64}),
        ),
        (
            "action_link/verify_vendor_token",
            serde_json::json!({"booking_id": booking, "action": "cancel_by_customer"}),
        ),
    ] {
        let token = jwt::sign(claims.as_object().unwrap(), KEY.as_bytes());
        let uri =
            format!("/v2/bookings/{booking}/external_action/cancel_by_customer?signature={token}");
        let parts = http::Request::get(uri).body(()).unwrap().into_parts().0;
        c.bench_function(name, |b| {
            b.iter_batched(
                || parts.clone(),
                |mut p| {
                    let principal =
                        auth::authenticate(&policy, &route, &mut p, &config.auth, 1_800_000_000);
                    assert!(principal.is_ok());
                    p
                },
                criterion::BatchSize::SmallInput,
            )
        });
    }

    // A listing of 20 confirmed bookings: 40 links minted and the JSON rewritten.
    let bookings: Vec<_> = (0..20)
        .map(|i| {
            serde_json::json!({"id": format!("booking-{i:04}"), "state": "confirmed",
                                   "customer": {"email": "marty@example.com"}})
        })
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({ "data": bookings })).unwrap();
    let subject = auth::Subject::new("customer.email", "marty@example.com").unwrap();
    let ctx = scopegate::listing::LinkContext {
        links: &config.auth.actions,
        apps: &config.auth.apps,
        app: "my-app-6165",
        subject: &subject,
        now: 1_800_000_000,
        until: None,
    };
    c.bench_function("listing/enrich_20_bookings", |b| {
        b.iter(|| black_box(scopegate::listing::add_links(&body, &ctx).unwrap()))
    });
}

/// SSO decode + verify (decrypt, strict JSON fields, expiry) of a typical
/// widget token, in both formats, with the company's key known.
fn sso(c: &mut Criterion) {
    use scopegate::auth::sso::{self, Keys, Rules, Zone};
    let keys = Keys::derive(b"abcdef0123456789SECUREKEY", "37000");
    let json = br#"{"first_name":"Marty","last_name":"McFly","email":"marty@example.com","mobile":"0123456789","reference":"cust-8812","expires":"2027-01-15T09:00:00Z"}"#;
    let rules = Rules {
        leeway: 30,
        zone: Zone::UTC,
    };
    let legacy = sso::mint_legacy(json, &keys.legacy);
    let legacy: String = percent_encoding::percent_decode_str(&legacy)
        .decode_utf8()
        .unwrap()
        .into_owned();
    let v2 = sso::mint_v2(json, &keys.v2);
    for (name, token) in [
        ("sso/decode_verify_legacy", &legacy),
        ("sso/decode_verify_v2", &v2),
    ] {
        c.bench_function(name, |b| {
            b.iter(|| {
                let p = sso::token::decode(black_box(token), &keys, true, rules, 1_800_000_000);
                assert!(p.is_ok());
                p
            })
        });
    }
    // What each other company's key costs when the company is found by trial.
    let wrong = Keys::derive(b"another company's key", "37001");
    for (name, token) in [("sso/wrong_key_legacy", &legacy), ("sso/wrong_key_v2", &v2)] {
        c.bench_function(name, |b| {
            b.iter(|| {
                let p = sso::token::decode(black_box(token), &wrong, true, rules, 1_800_000_000);
                assert!(p.is_err());
                p
            })
        });
    }
}

/// API key check: both keys from the headers, lookup by SHA-256, secret
/// compared in constant time, permission and reach decided.
fn api_key(c: &mut Criterion) {
    let config = Config::from_toml(CONFIG).expect("bench config");
    let parts = http::Request::get("/v2/bookings/b-1")
        .header("x-bookeo-apikey", "Q4CKFP9BR62Z5XS9O58BVJKJCSHDNMSK")
        .header(
            "x-bookeo-secretkey",
            "sk_frontdesk_4f1e2d3c4b5a69788796a5b4",
        )
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let requirement = scopegate::auth::api_key::Requirement::parse("bookings").ok();
    c.bench_function("api_key/verify", |b| {
        b.iter(|| {
            let p = config
                .auth
                .api_keys
                .verify(black_box(&parts), requirement, false);
            assert!(p.is_ok());
            p
        })
    });
}

criterion_group!(
    hot_paths,
    benches,
    signed_search,
    action_links,
    sso,
    api_key
);
criterion_main!(hot_paths);
