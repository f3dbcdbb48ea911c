//! CORS through real listeners: preflights answered by scopegate (no
//! credential, no upstream), actual requests readable by allowed pages only,
//! a page of one app refused with another app's token, SSO companies'
//! origins, route-level origins for credentials that name no app, same-origin
//! requests untouched, and refusals counted in the metrics.

mod common;

use common::*;
use http::Request;
use http_body_util::Full;
use scopegate::auth::{
    jwt,
    sso::{mint_v2, Keys},
};
use serde_json::json;

const KEY_A: &str = "app_a_key_0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const KEY_B: &str = "app_b_key_9a8b7c6d5e4f30211203f4e5d6c7b8a9";
const SSO_KEY: &str = "sk_cors_company_5e6f7a8b";
const PAGE_A: &str = "http://127.0.0.1:8090";
const PAGE_B: &str = "https://shop.b-example.com";
const PAGE_SSO: &str = "http://localhost:8090";

const ROUTES: &str = r#"
[[app]]
slug = "app-a"
cors_origins = ["http://127.0.0.1:8090"]
[[app.key]]
key = "app_a_key_0f1e2d3c4b5a69788796a5b4c3d2e1f0"

[[app]]
slug = "app-b"
cors_origins = ["https://*.b-example.com"]
[[app.key]]
key = "app_b_key_9a8b7c6d5e4f30211203f4e5d6c7b8a9"

[[sso_company]]
company_id = "37000"
secure_key = "sk_cors_company_5e6f7a8b"
cors_origins = ["http://localhost:8090"]

[[route]]
name = "bookings-list"
methods = ["GET", "HEAD"]
path = "/v2/bookings"
auth = ["signed-search"]
upstream = "backend"
[route.cors]
headers = ["X-Requested-With"]
expose = ["X-Request-Id"]
max_age = "10m"

[[route]]
name = "widget"
path = "/v2/me/*"
auth = ["sso"]
upstream = "backend"
[route.cors]
methods = ["GET", "POST"]
headers = ["X-SSO-Token"]

[[route]]
name = "resources"
path = "/v2/resources/*"
auth = ["public"]
upstream = "backend"
[route.cors]
origins = ["https://catalog.example.org"]

[[route]]
name = "no-cors"
path = "/v2/private/*"
auth = ["public"]
upstream = "backend"
"#;

async fn setup() -> (Upstream, Gate) {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::start(&config(up.addr, ROUTES)).await;
    (up, gate)
}

fn search_token(key: &str, app: &str) -> String {
    jwt::sign(
        json!({"app_slug": app, "customer.email": "ada@example.com"})
            .as_object()
            .unwrap(),
        key.as_bytes(),
    )
}

fn listing(token: &str) -> String {
    format!("/v2/bookings?search=customer.email:ada@example.com&signed_search={token}")
}

async fn request(gate: &Gate, method: &str, target: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = Request::builder().method(method).uri(gate.url(target));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(req.body(Full::default()).unwrap()).await
}

fn header<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
    r.headers.get(name).and_then(|v| v.to_str().ok())
}

fn assert_refused(r: &Reply) {
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.error_code(), "origin_not_allowed");
    assert!(header(r, "access-control-allow-origin").is_none(), "{r:?}");
}

#[tokio::test]
async fn a_preflight_is_answered_by_scopegate_without_a_credential() {
    let (up, gate) = setup().await;
    let r = request(
        &gate,
        "OPTIONS",
        "/v2/bookings",
        &[
            ("origin", PAGE_A),
            ("access-control-request-method", "GET"),
            (
                "access-control-request-headers",
                "x-requested-with, content-type",
            ),
        ],
    )
    .await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(header(&r, "access-control-allow-origin"), Some(PAGE_A));
    assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
    assert_eq!(
        header(&r, "access-control-allow-methods"),
        Some("GET, HEAD")
    );
    assert_eq!(
        header(&r, "access-control-allow-headers"),
        Some("x-requested-with")
    );
    assert_eq!(header(&r, "access-control-max-age"), Some("600"));
    let vary: Vec<_> = r.headers.get_all("vary").iter().collect();
    assert!(
        vary.iter().any(|v| v.to_str().unwrap().contains("Origin")),
        "{vary:?}"
    );
    assert_eq!(up.count(), 0);

    // A subdomain pattern, for the other app.
    let r = request(
        &gate,
        "OPTIONS",
        "/v2/bookings",
        &[("origin", PAGE_B), ("access-control-request-method", "GET")],
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(header(&r, "access-control-allow-origin"), Some(PAGE_B));
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn preflights_from_other_origins_or_for_other_methods_or_headers_are_refused() {
    let (up, gate) = setup().await;
    for (origin, method, headers) in [
        ("https://evil.example", "GET", ""),
        ("https://b-example.com", "GET", ""), // the pattern covers subdomains only
        ("http://127.0.0.1:8091", "GET", ""), // another port is another origin
        ("null", "GET", ""),
        (PAGE_A, "DELETE", ""),           // not a route method
        (PAGE_A, "POST", ""),             // not a CORS method of the route
        (PAGE_A, "GET", "authorization"), // not an allowed header
        (PAGE_SSO, "GET", ""),            // a company's origin, on an app route
    ] {
        let mut h = vec![
            ("origin", origin),
            ("access-control-request-method", method),
        ];
        if !headers.is_empty() {
            h.push(("access-control-request-headers", headers));
        }
        let r = request(&gate, "OPTIONS", "/v2/bookings", &h).await;
        assert_refused(&r);
    }
    // A route without [route.cors]: no CORS at all.
    let r = request(
        &gate,
        "OPTIONS",
        "/v2/private/x",
        &[("origin", PAGE_A), ("access-control-request-method", "GET")],
    )
    .await;
    assert_refused(&r);
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn an_allowed_page_reads_the_response_and_its_errors() {
    let (up, gate) = setup().await;
    let r = request(
        &gate,
        "GET",
        &listing(&search_token(KEY_A, "app-a")),
        &[("origin", PAGE_A)],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(header(&r, "access-control-allow-origin"), Some(PAGE_A));
    assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
    assert_eq!(
        header(&r, "access-control-expose-headers"),
        Some("x-request-id")
    );
    assert_eq!(up.single().one("x-scope-app").as_deref(), Some("app-a"));

    // A bad token from an allowed page: the page can read the 401.
    let r = request(
        &gate,
        "GET",
        &listing(&format!("{}x", search_token(KEY_A, "app-a"))),
        &[("origin", PAGE_A)],
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(header(&r, "access-control-allow-origin"), Some(PAGE_A));
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn one_apps_page_cannot_call_with_another_apps_token() {
    let (up, gate) = setup().await;
    // App B's token from app A's page, and app A's token from app B's page.
    for (token, origin) in [
        (search_token(KEY_B, "app-b"), PAGE_A),
        (search_token(KEY_A, "app-a"), PAGE_B),
    ] {
        let r = request(&gate, "GET", &listing(&token), &[("origin", origin)]).await;
        assert_refused(&r);
    }
    assert_eq!(up.count(), 0);
    // Each from its own page works.
    let r = request(
        &gate,
        "GET",
        &listing(&search_token(KEY_B, "app-b")),
        &[("origin", PAGE_B)],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(header(&r, "access-control-allow-origin"), Some(PAGE_B));

    // The refusals are counted.
    let m = get(&format!("http://{}/metrics", gate.admin.unwrap())).await;
    let text = String::from_utf8(m.body.to_vec()).unwrap();
    assert!(
        text.contains(
            r#"scopegate_requests_total{route="bookings-list",scheme="signed-search",outcome="origin_not_allowed"} 2"#
        ),
        "{text}"
    );
}

#[tokio::test]
async fn sso_companies_and_route_origins() {
    let (up, gate) = setup().await;
    let expires = chrono::DateTime::from_timestamp(unix_now() as i64 + 600, 0)
        .unwrap()
        .to_rfc3339();
    let payload = json!({"first_name": "Ada", "last_name": "L", "email": "ada@example.com",
                         "expires": expires})
    .to_string();
    let token = mint_v2(
        payload.as_bytes(),
        &Keys::derive(SSO_KEY.as_bytes(), "37000").v2,
    );
    let target = format!("/v2/me/bookings?sso-token={token}");
    let r = request(&gate, "GET", &target, &[("origin", PAGE_SSO)]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(header(&r, "access-control-allow-origin"), Some(PAGE_SSO));
    // An app's page may not use the company's tokens.
    assert_refused(&request(&gate, "GET", &target, &[("origin", PAGE_A)]).await);
    // The preflight for the header carrier.
    let r = request(
        &gate,
        "OPTIONS",
        "/v2/me/bookings",
        &[
            ("origin", PAGE_SSO),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "x-sso-token"),
        ],
    )
    .await;
    assert_eq!(r.status, 204);

    // A public route: the route's own origins.
    let r = request(
        &gate,
        "GET",
        "/v2/resources/r1",
        &[("origin", "https://catalog.example.org")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://catalog.example.org")
    );
    assert_refused(&request(&gate, "GET", "/v2/resources/r1", &[("origin", PAGE_A)]).await);
    // No CORS on the route: a foreign page is refused; no Origin at all is a
    // plain (non-browser) request.
    assert_refused(&request(&gate, "GET", "/v2/private/x", &[("origin", PAGE_A)]).await);
    let r = request(&gate, "GET", "/v2/private/x", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(up.count(), 3);
}

#[tokio::test]
async fn same_origin_requests_need_no_cors() {
    let (up, gate) = setup().await;
    let own = format!("http://{}", gate.addr);
    let r = request(
        &gate,
        "GET",
        &listing(&search_token(KEY_A, "app-a")),
        &[("origin", &own)],
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(header(&r, "access-control-allow-origin").is_none());
    assert!(r
        .headers
        .get_all("vary")
        .iter()
        .any(|v| v.to_str().unwrap().contains("Origin")));
    assert_eq!(up.count(), 1);
}

#[test]
fn bad_origins_are_configuration_errors() {
    for (origin, fragment) in [
        ("*", "not an origin"),
        ("https://*", "never alone"),
        ("https://*.com.*", "must name a domain"),
        ("https://shop.example.com/", "no path"),
        ("https://Shop.example.com", "lower case"),
    ] {
        let toml = format!(
            "[[upstream]]\nname = \"b\"\nurl = \"http://127.0.0.1:9\"\n[[app]]\nslug = \"a\"\ncors_origins = [\"{origin}\"]\n[[app.key]]\nkey = \"k\"\n"
        );
        let e = scopegate::Config::from_toml(&toml).unwrap_err().to_string();
        assert!(
            e.contains("app[0].cors_origins[0]") && e.contains(fragment),
            "{origin}: {e}"
        );
    }
}

/// Behind a trusted proxy that terminates TLS, the page of the API's own
/// https origin is same-origin (`X-Forwarded-Proto`); from anyone else the
/// header changes nothing.
#[tokio::test]
async fn same_origin_behind_a_tls_terminating_trusted_proxy() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::start(&config(
        up.addr,
        &format!("{ROUTES}\n[proxy]\ntrusted_proxies = [\"127.0.0.1/32\"]\n"),
    ))
    .await;
    let r = request(
        &gate,
        "POST",
        "/v2/private/x",
        &[
            ("host", "api.example.com"),
            ("x-forwarded-proto", "https"),
            ("origin", "https://api.example.com"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = request(
        &gate,
        "POST",
        "/v2/private/x",
        &[
            ("host", "api.example.com"),
            ("origin", "https://api.example.com"),
        ],
    )
    .await;
    assert_refused(&r);
    assert_eq!(up.count(), 1);
}
