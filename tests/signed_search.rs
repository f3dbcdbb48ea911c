//! Signed search end to end: interop vectors through the verifier with a fixed
//! clock, then real requests through a gate, asserting what the upstream got.

mod common;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use common::*;
use scopegate::auth::{self, jwt, AuthError, Principal, RouteAuth};
use serde_json::{json, Value};

const KEY: &str = "live_api_key_7nzvc7wsBQQISLeFSVhROys9V1bUJ1z7";

fn app_config(key_file: &std::path::Path) -> String {
    format!(
        r#"
[[app]]
slug = "my-app-6165"
[[app.key]]
key_file = "{}"

[[route]]
name = "bookings"
methods = ["GET"]
path = "/v2/bookings"
auth = ["signed-search"]
upstream = "backend"

[[route]]
name = "limited"
methods = ["GET"]
path = "/v2/limited"
auth = ["signed-search"]
upstream = "backend"
search_fields = ["state"]

[[route]]
name = "only-other"
methods = ["GET"]
path = "/v2/other"
auth = ["signed-search"]
upstream = "backend"
apps = ["other-app"]

[[app]]
slug = "other-app"
[[app.key]]
key_file = "{}"

[[route]]
name = "open"
path = "/open"
auth = ["public"]
upstream = "backend"
"#,
        key_file.display(),
        key_file.display()
    )
}

struct Setup {
    up: Upstream,
    gate: Gate,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("app.key");
    std::fs::write(&key, format!("{KEY}\n")).unwrap();
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::start(&config(up.addr, &app_config(&key))).await;
    Setup {
        up,
        gate,
        _dir: dir,
    }
}

fn token(claims: Value) -> String {
    jwt::sign(claims.as_object().unwrap(), KEY.as_bytes())
}

fn marty() -> String {
    token(json!({"app_slug": "my-app-6165", "customer.email": "marty@example.com"}))
}

// ---- interop vectors (fixed clock, no sockets) ----

fn parts_for(query: &str) -> http::request::Parts {
    http::Request::get(format!("/v2/bookings?{query}"))
        .body(())
        .unwrap()
        .into_parts()
        .0
}

fn verify_at(query: &str, now: u64) -> Result<Principal, AuthError> {
    let config = scopegate::Config::from_toml(&format!(
        "[[app]]\nslug = \"my-app-6165\"\n[[app.key]]\nkey = \"{KEY}\"\n"
    ))
    .unwrap();
    let policy = auth::AuthPolicy::AnyOf(vec![auth::Scheme::SignedSearch]);
    auth::authenticate(
        &policy,
        &RouteAuth::default(),
        &mut parts_for(query),
        &config.auth,
        now,
    )
}

fn form(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[test]
fn tokens_minted_by_pyjwt_verify_exactly_as_expected() {
    let v: Value = serde_json::from_str(include_str!("vectors/pyjwt_signed_search.json")).unwrap();
    let now = v["now"].as_u64().unwrap();
    for case in v["accept"].as_array().unwrap() {
        let q = format!(
            "search={}&signed_search={}",
            form(case["search"].as_str().unwrap()),
            case["token"].as_str().unwrap()
        );
        match verify_at(&q, now) {
            Ok(Principal::Customer(c)) => {
                assert_eq!(
                    c.subject.as_ref().unwrap().header.header_value(),
                    case["subject"].as_str().unwrap(),
                    "{}",
                    case["name"]
                );
                assert_eq!(c.app.header_value(), "my-app-6165");
            }
            other => panic!("{}: {other:?}", case["name"]),
        }
    }
    for case in v["reject"].as_array().unwrap() {
        let q = format!(
            "search={}&signed_search={}",
            form(case["search"].as_str().unwrap()),
            case["token"].as_str().unwrap()
        );
        assert!(
            matches!(verify_at(&q, now), Err(AuthError::Rejected(_))),
            "{} was accepted",
            case["name"]
        );
    }
}

/// RFC 7515 appendix A.1: the HS256 example JWS with its JWK key.
#[test]
fn the_rfc_7515_a1_example_verifies_and_a_flipped_bit_does_not() {
    let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9\
                 .eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ\
                 .dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let key = URL_SAFE_NO_PAD
        .decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
        .unwrap();
    let claims = jwt::check_signature(token, &key).unwrap();
    assert_eq!(claims["iss"], "joe");
    assert_eq!(claims["exp"], 1300819380);
    let tampered = token.replace("dBjftJeZ4CVP", "dBjftJeZ4CVQ");
    assert!(jwt::check_signature(&tampered, &key).is_err());
}

// ---- through a real gate ----

#[tokio::test]
async fn a_valid_signed_search_is_forwarded_scoped_and_without_its_token() {
    let s = setup().await;
    let q = format!(
        "search=customer.email:marty@example.com;state:confirmed&signed_search={}&limit=5",
        marty()
    );
    let out = get_raw(
        &s.gate,
        &format!("/v2/bookings?{q}"),
        "X-Scope-Subject: customer.email=victim@example.com\r\nX_Scope_App: other\r\n",
    )
    .await;
    assert_eq!(statuses(&out), [200], "{out}");
    let rec = s.up.single();
    // Re-serialized: no raw `;` or `:` for a backend to split differently.
    assert_eq!(
        rec.target,
        "/v2/bookings?search=customer.email%3Amarty%40example.com%3Bstate%3Aconfirmed&limit=5"
    );
    assert_eq!(rec.all("x-scope-credential"), ["signed-search"]);
    assert_eq!(rec.all("x-scope-app"), ["my-app-6165"]);
    assert_eq!(
        rec.all("x-scope-subject"),
        ["customer.email=marty@example.com"]
    );
    assert_eq!(rec.all("x-scope-customer-email"), ["marty@example.com"]);
    assert_eq!(rec.all("x-scope-route"), ["bookings"]);
    let mut names = rec.names_with_prefix("x-scope-");
    names.sort();
    assert_eq!(
        names,
        [
            "x-scope-app",
            "x-scope-credential",
            "x-scope-customer-email",
            "x-scope-route",
            "x-scope-subject"
        ]
    );
}

#[tokio::test]
async fn a_meta_subject_is_forwarded_without_an_email_header() {
    let s = setup().await;
    let t = token(json!({"app_slug": "my-app-6165", "meta.customer_id": "12345"}));
    let out = get_raw(
        &s.gate,
        &format!("/v2/bookings?search=meta.customer_id:12345&signed_search={t}"),
        "",
    )
    .await;
    assert_eq!(statuses(&out), [200], "{out}");
    let rec = s.up.single();
    assert_eq!(rec.all("x-scope-subject"), ["meta.customer_id=12345"]);
    assert!(rec.all("x-scope-customer-email").is_empty());
}

/// The 401 of every verification failure, minus the per-request headers.
#[tokio::test]
async fn every_verification_failure_gets_the_same_401_and_the_upstream_sees_nothing() {
    let s = setup().await;
    let good = marty();
    let (h, rest) = good.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let tampered = format!(
        "{h}.{}.{sig}",
        URL_SAFE_NO_PAD
            .encode(r#"{"app_slug":"my-app-6165","customer.email":"victim@example.com"}"#)
    );
    let none_alg = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD
            .encode(r#"{"app_slug":"my-app-6165","customer.email":"marty@example.com"}"#)
    );
    let cases = [
        ("customer.email:victim@example.com", tampered),
        (
            "customer.email:marty@example.com",
            jwt::sign(
                json!({"app_slug": "my-app-6165", "customer.email": "marty@example.com"})
                    .as_object()
                    .unwrap(),
                b"wrong key",
            ),
        ),
        (
            "customer.email:marty@example.com",
            token(json!({"app_slug": "nope", "customer.email": "marty@example.com"})),
        ),
        ("customer.email:marty@example.com", none_alg),
        (
            "customer.email:marty@example.com",
            token(
                json!({"app_slug": "my-app-6165", "customer.email": "marty@example.com", "exp": "9999999999"}),
            ),
        ),
        (
            "customer.email:marty@example.com",
            token(
                json!({"app_slug": "my-app-6165", "customer.email": "marty@example.com", "exp": 1}),
            ),
        ),
        ("state:confirmed", good.clone()),
        ("customer.email:victim@example.com", good.clone()),
        (
            "customer.email:marty@example.com;customer.email:marty@example.com",
            good.clone(),
        ),
        (
            "customer.email:marty@example.com;customer.email:victim@example.com",
            good.clone(),
        ),
        (
            "customer.email:marty@example.com",
            token(
                json!({"app_slug": "my-app-6165", "customer.email": "marty@example.com", "booking_id": "b-1", "action": "cancel"}),
            ),
        ),
        (
            "customer.email:a",
            token(json!({"app_slug": "my-app-6165", "customer.email": "a;state:x"})),
        ),
        (
            "customer.email:marty@example.com",
            "not-a-token".to_string(),
        ),
    ];
    let mut uniform = Uniform401::default();
    for (search, tok) in &cases {
        let target = format!("/v2/bookings?search={search}&signed_search={tok}");
        uniform.check(search, &get_raw(&s.gate, &target, "").await);
    }
    // No credential at all is the same refusal.
    let target = "/v2/bookings?search=customer.email:marty@example.com";
    uniform.check("no credential", &get_raw(&s.gate, target, "").await);
    assert_eq!(s.up.count(), 0);
}

#[tokio::test]
async fn a_malformed_or_ambiguous_query_gets_400_and_the_upstream_sees_nothing() {
    let s = setup().await;
    let t = marty();
    for q in [
        format!("search=customer.email:marty@example.com&search=state:confirmed&signed_search={t}"),
        format!("search=customer.email:marty@example.com&%73earch=customer.email:victim@example.com&signed_search={t}"),
        format!("search[]=customer.email:marty@example.com&signed_search={t}"),
        format!("search=customer.email:marty@example.com&signed_search={t}&signed_search={t}"),
        format!("search=customer.email:marty@example.com&x=1;search=customer.email:victim@example.com&signed_search={t}"),
        format!("search=customer.email:marty@example.com;;state:x&signed_search={t}"),
        format!("search=customer.email:marty@example.com;state&signed_search={t}"),
    ] {
        let out = get_raw(&s.gate, &format!("/v2/bookings?{q}"), "").await;
        assert_eq!(statuses(&out), [400], "{q}: {out}");
        assert!(out.contains("bad_query"), "{out}");
    }
    assert_eq!(s.up.count(), 0);
}

#[tokio::test]
async fn a_route_allow_list_limits_the_search_fields() {
    let s = setup().await;
    let t = marty();
    let ok = get_raw(
        &s.gate,
        &format!(
            "/v2/limited?search=customer.email:marty@example.com;state:confirmed&signed_search={t}"
        ),
        "",
    )
    .await;
    assert_eq!(statuses(&ok), [200], "{ok}");
    let no = get_raw(
        &s.gate,
        &format!(
            "/v2/limited?search=customer.email:marty@example.com;resource:room-a&signed_search={t}"
        ),
        "",
    )
    .await;
    assert_eq!(statuses(&no), [400], "{no}");
    assert_eq!(s.up.count(), 1);
}

#[tokio::test]
async fn a_signed_search_token_never_travels_upstream_on_a_public_route() {
    let s = setup().await;
    let out = get_raw(
        &s.gate,
        &format!("/open?a=1&signed_search={}&b=2", marty()),
        "",
    )
    .await;
    assert_eq!(statuses(&out), [200], "{out}");
    let rec = s.up.single();
    assert_eq!(rec.target, "/open?a=1&b=2");
    assert!(rec.names_with_prefix("x-scope-credential").is_empty());
}

#[tokio::test]
async fn an_encoded_search_is_bound_after_one_decoding() {
    let s = setup().await;
    let t = token(json!({"app_slug": "my-app-6165", "customer.email": "a+b@example.com"}));
    // `+` in a form value is a space, so the email must be sent as %2B.
    let bad = get_raw(
        &s.gate,
        &format!("/v2/bookings?search=customer.email:a+b@example.com&signed_search={t}"),
        "",
    )
    .await;
    assert_eq!(statuses(&bad), [401], "{bad}");
    let good = get_raw(
        &s.gate,
        &format!("/v2/bookings?search=customer.email%3Aa%2Bb%40example.com&signed_search={t}"),
        "",
    )
    .await;
    assert_eq!(statuses(&good), [200], "{good}");
    assert_eq!(
        s.up.single().all("x-scope-customer-email"),
        ["a+b@example.com"]
    );
}

// ---- regressions from the security review: query-parsing differentials ----

/// The upstream's query, decoded as every backend decodes it (split on `&`).
fn upstream_search(rec: &Recorded) -> Vec<String> {
    let query = rec.target.split_once('?').map_or("", |(_, q)| q);
    assert!(
        !query.contains(';'),
        "raw ';' reached the upstream: {query}"
    );
    form_urlencoded::parse(query.as_bytes())
        .filter(|(n, _)| n == "search")
        .map(|(_, v)| v.into_owned())
        .collect()
}

#[tokio::test]
async fn the_upstream_query_cannot_be_split_differently_by_the_backend() {
    let s = setup().await;
    let t = marty();
    for (q, search) in [
        (
            format!("search=state:confirmed;customer.email:marty@example.com&signed_search={t}"),
            "state:confirmed;customer.email:marty@example.com",
        ),
        (
            format!("search=customer.email:marty@example.com&signed_search={t}&x=1;search"),
            "customer.email:marty@example.com",
        ),
    ] {
        let out = get_raw(&s.gate, &format!("/v2/bookings?{q}"), "").await;
        assert_eq!(statuses(&out), [200], "{q}: {out}");
        assert_eq!(upstream_search(s.up.records().last().unwrap()), [search]);
    }
}

#[tokio::test]
async fn lookalike_names_escapes_and_parameter_floods_get_400() {
    let s = setup().await;
    let t = marty();
    let base = format!("search=customer.email:marty@example.com&signed_search={t}");
    let flood = "a=1&".repeat(40);
    for q in [
        format!("{base}&+search=state:confirmed"),
        format!("{base}&search%00=customer.email:victim@example.com"),
        format!("{base}&search]=customer.email:victim@example.com"),
        format!("{base}&Search=customer.email:victim@example.com"),
        format!("{base}&signed.search=x"),
        format!("search=customer.email:marty@example.com%3Bstate:%zz&signed_search={t}"),
        format!("search=customer.email:marty@example.com;state:x%253Bcustomer.email:victim@example.com&signed_search={t}"),
        format!("{flood}{base}"),
    ] {
        let out = get_raw(&s.gate, &format!("/v2/bookings?{q}"), "").await;
        assert_eq!(statuses(&out), [400], "{q}: {out}");
    }
    assert_eq!(s.up.count(), 0);
}

#[tokio::test]
async fn a_body_or_a_write_method_cannot_carry_a_second_search() {
    let s = setup().await;
    let target = format!(
        "/v2/bookings?search=customer.email:marty@example.com&signed_search={}",
        marty()
    );
    let body = "search=customer.email%3Avictim%40example.com";
    let req = format!(
        "GET {target} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(
        statuses(&raw(s.gate.addr, req.as_bytes(), RAW_WAIT).await),
        [400]
    );
    let chunked = format!(
        "GET {target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    assert_eq!(
        statuses(&raw(s.gate.addr, chunked.as_bytes(), RAW_WAIT).await),
        [400]
    );
    assert_eq!(s.up.count(), 0);
}

#[tokio::test]
async fn subject_variants_padded_claims_and_other_apps_get_the_uniform_401() {
    let s = setup().await;
    let t = marty();
    let padded = token(json!({"app_slug": "my-app-6165", "customer.email": " victim@example.com"}));
    for q in [
        format!("search=customer.email:marty@example.com;Customer.Email:victim@example.com&signed_search={t}"),
        format!("search=customer.email:+victim@example.com&signed_search={padded}"),
    ] {
        let out = get_raw(&s.gate, &format!("/v2/bookings?{q}"), "").await;
        assert_eq!(statuses(&out), [401], "{q}: {out}");
    }
    // A route that accepts only other-app refuses my-app's valid token.
    let out = get_raw(
        &s.gate,
        &format!("/v2/other?search=customer.email:marty@example.com&signed_search={t}"),
        "",
    )
    .await;
    assert_eq!(statuses(&out), [401], "{out}");
    assert_eq!(s.up.count(), 0);
}

#[tokio::test]
async fn a_malformed_search_answers_the_same_whether_the_token_is_valid_or_not() {
    let s = setup().await;
    let good = get_raw(
        &s.gate,
        &format!("/v2/bookings?search=x&signed_search={}", marty()),
        "",
    )
    .await;
    let bad = get_raw(&s.gate, "/v2/bookings?search=x&signed_search=a.b.c", "").await;
    assert_eq!(statuses(&good), statuses(&bad));
    assert_eq!(normalized_401(&good), normalized_401(&bad));
}

#[tokio::test]
async fn no_spelling_of_signed_search_survives_to_the_upstream_of_a_public_route() {
    let s = setup().await;
    let t = marty();
    let out = get_raw(
        &s.gate,
        &format!("/open?a=1&signed.search={t}&signed+search={t}&Signed_search={t}&signed_search%00={t}&signed[search={t}&b=2"),
        "",
    )
    .await;
    assert_eq!(statuses(&out), [200], "{out}");
    assert_eq!(s.up.single().target, "/open?a=1&b=2");
}
