//! Regression tests from the security review of action links and listing
//! enrichment, through real listeners. `f*` tests reproduce a finding (each
//! failed before its fix); `ok_*` tests are probes that held.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::Full;
use scopegate::auth::jwt;
use serde_json::{json, Value};

const KEY: &str = "live_api_key_shop_7nzvc7wsBQQISLeFSVhROys9V1bUJ1z7";
const BASE: &str = "https://api.example.com";

fn routes() -> String {
    format!(
        r#"
[[app]]
slug = "shop"
[[app.key]]
key = "{KEY}"

[[route]]
name = "actions"
methods = ["GET", "POST"]
path = "/v2/bookings/{{id}}/external_action/{{action}}"
auth = ["action-link"]
upstream = "backend"

[[route]]
name = "bookings"
methods = ["GET", "HEAD"]
path = "/v2/bookings"
auth = ["signed-search"]
upstream = "backend"

[[route]]
name = "open"
path = "/open"
auth = ["public"]
upstream = "backend"

[action_links]
public_base_url = "{BASE}"
redirect_origins = ["https://shop.example.com"]

[[action]]
name = "cancel_by_customer"
upstream = "PUT /v2/bookings/{{id}}/cancel_by_customer"
single_use = true
ttl = "1h"

[[action]]
name = "quick_cancel"
upstream = "PUT /v2/bookings/{{id}}/cancel_by_customer"
single_use = true
ttl = "1s"
"#
    )
}

struct Setup {
    up: Upstream,
    gate: Gate,
}

async fn setup_with(behavior: Behavior) -> Setup {
    let up = Upstream::start(behavior).await;
    let toml = config(up.addr, &routes());
    let gate = Gate::start(&toml).await;
    Setup { up, gate }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Signs `claims`, adding `iat` = now when absent (single-use links must end).
fn token(claims: Value) -> String {
    let mut claims = claims.as_object().unwrap().clone();
    claims.entry("iat").or_insert_with(|| now().into());
    jwt::sign(&claims, KEY.as_bytes())
}

fn at(id: &str, action: &str, token: &str) -> String {
    format!("/v2/bookings/{id}/external_action/{action}?signature={token}")
}

/// A vendor-style link: booking_id and action (and iat), no exp, no jti.
fn vendor(id: &str, action: &str) -> String {
    at(
        id,
        action,
        &token(json!({"booking_id": id, "action": action})),
    )
}

fn signed_search_with(claims: Value, email: &str) -> String {
    format!(
        "/v2/bookings?search=customer.email:{email}&signed_search={}",
        token(claims)
    )
}

fn signed_search(email: &str) -> String {
    signed_search_with(json!({"app_slug": "shop", "customer.email": email}), email)
}

fn enc(u: &str) -> String {
    form_urlencoded::byte_serialize(u.as_bytes()).collect()
}

// ---------------------------------------------------------------- findings

/// F2, before its fix: a response timeout releases the mark although the upstream had already
/// received (and, here, performed) the action, so the link runs twice.
#[tokio::test]
async fn f2_a_timed_out_action_keeps_its_mark() {
    // response_timeout is 2s in the common config.
    let s = setup_with(Behavior::Delay(Duration::from_millis(2300))).await;
    let link = vendor("b-3", "cancel_by_customer");
    let first = get(&s.gate.url(&link)).await;
    assert!(first.status.is_server_error(), "{:?}", first.status);
    assert_eq!(s.up.count(), 1, "the action was delivered to the backend");
    let _second = get(&s.gate.url(&link)).await;
    assert_eq!(
        s.up.count(),
        1,
        "the single-use action was delivered to the backend twice"
    );
}

/// F3, before its fix: a 4xx that means "not done" (429 rate limited) burns the single-use link.
#[tokio::test]
async fn f3_a_429_from_the_backend_releases_the_mark() {
    let s = setup_with(Behavior::canned(vec![
        Canned::json(429, &json!({"error": "slow down"})),
        Canned::json(200, &json!({"data": {"state": "cancelled"}})),
    ]))
    .await;
    let link = vendor("b-4", "cancel_by_customer");
    assert_eq!(get(&s.gate.url(&link)).await.status, 429);
    let retry = get(&s.gate.url(&link)).await;
    assert_eq!(
        retry.status, 200,
        "retry after 429 refused: {:?}",
        retry.body
    );
}

/// F4, before its fix: a GET link carries a client-chosen body into the upstream PUT (sent
/// with scopegate's scope headers / app credential).
#[tokio::test]
async fn f4_a_get_link_with_a_body_is_refused() {
    let s = setup_with(Behavior::Ok).await;
    let link = vendor("b-5", "cancel_by_customer");
    let req = Request::get(s.gate.url(&link))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"notify_customer":false,"refund":"full","state":"confirmed"}"#,
        )))
        .unwrap();
    let reply = send(req).await;
    assert_eq!(reply.status, 400, "a body on a GET link is refused");
    assert_eq!(s.up.count(), 0);
}

/// F5, before its fix: on public routes `strip_credentials` misses spellings that common
/// backends read as the credential: `;`-separated params and `signature[x]`.
#[tokio::test]
async fn f5_lenient_spellings_of_credentials_are_stripped_on_public_routes() {
    let s = setup_with(Behavior::Ok).await;
    for q in [
        "a=1;signature=TOKEN",
        "signature[x]=TOKEN",
        "signed_search[0]=TOKEN",
    ] {
        let reply = get(&s.gate.url(&format!("/open?{q}"))).await;
        assert_eq!(reply.status, 200, "{q}");
    }
    let leaked: Vec<String> =
        s.up.records()
            .into_iter()
            .map(|r| r.target)
            .filter(|t| t.contains("TOKEN"))
            .collect();
    assert!(
        leaked.is_empty(),
        "credential reached the upstream: {leaked:?}"
    );
}

/// F6, before its fix: `take_include` only matches the exact name `include`; a case variant
/// reaches the backend (which may then produce its own links).
#[tokio::test]
async fn f6_a_case_variant_of_include_never_reaches_the_backend() {
    let s = setup_with(Behavior::canned(vec![Canned::json(
        200,
        &json!({"data": [{"id": "b-1", "state": "confirmed"}]}),
    )]))
    .await;
    let reply = get(&s.gate.url(&format!(
        "{}&Include=customer_action_links",
        signed_search("marty@example.com")
    )))
    .await;
    assert_eq!(reply.status, 200);
    let target = s.up.single().target;
    assert!(
        !target
            .to_ascii_lowercase()
            .contains("customer_action_links"),
        "backend received {target}"
    );
}

/// F7, before its fix: HEAD with `include=customer_action_links` answers Content-Length: 0
/// instead of the upstream's length (the empty HEAD body is "enriched").
#[tokio::test]
async fn f7_a_head_listing_keeps_its_content_length() {
    let body = json!({"data": [{"id": "b-1", "state": "confirmed"}]});
    let s = setup_with(Behavior::canned(vec![Canned::json(200, &body)])).await;
    let url = s.gate.url(&format!(
        "{}&include=customer_action_links",
        signed_search("marty@example.com")
    ));
    let plain = send(
        Request::head(s.gate.url(&signed_search("marty@example.com")))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    let enriched = send(Request::head(url).body(Full::default()).unwrap()).await;
    assert_eq!(plain.status, 200);
    assert_eq!(enriched.status, 200);
    assert_eq!(
        enriched.headers.get("content-length"),
        plain.headers.get("content-length"),
        "HEAD content-length rewritten"
    );
}

/// F8, before its fix: enrichment re-serializes the whole document through serde_json's
/// BTreeMap/f64 model: keys are re-ordered and numbers outside u64/i64 or with
/// a non-canonical form are changed, in fields scopegate does not own.
#[tokio::test]
async fn f8_enrichment_keeps_key_order_and_numbers() {
    let raw = r#"{"meta":{"zeta":1,"alpha":2,"account_id":18446744073709551617,"price":19.90},"data":[{"id":"b-1","state":"confirmed"}]}"#;
    let s = setup_with(Behavior::canned(vec![Canned {
        status: 200,
        headers: vec![("content-type", "application/json".into())],
        body: Bytes::from_static(raw.as_bytes()),
    }]))
    .await;
    let reply = get(&s.gate.url(&format!(
        "{}&include=customer_action_links",
        signed_search("marty@example.com")
    )))
    .await;
    assert_eq!(reply.status, 200);
    let out = String::from_utf8_lossy(&reply.body).into_owned();
    assert!(out.contains("customer_action_links"), "enriched: {out}");
    assert!(
        out.contains(r#""account_id":18446744073709551617"#),
        "big integer changed: {out}"
    );
    assert!(
        out.contains(r#"{"zeta":1,"alpha":2"#),
        "key order changed: {out}"
    );
}

/// F9, before its fix: an enriched listing (bearer links in the body) keeps the upstream's
/// shared-cache policy.
#[tokio::test]
async fn f9_an_enriched_listing_is_not_publicly_cacheable() {
    let mut answer = Canned::json(200, &json!({"data": [{"id": "b-1", "state": "confirmed"}]}));
    answer
        .headers
        .push(("cache-control", "public, max-age=600".into()));
    let s = setup_with(Behavior::canned(vec![answer])).await;
    let reply = get(&s.gate.url(&format!(
        "{}&include=customer_action_links",
        signed_search("marty@example.com")
    )))
    .await;
    assert!(reply.json()["data"][0]["customer_action_links"]["cancel_by_customer"].is_string());
    let cc = reply
        .headers
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(
        cc.contains("no-store") || cc.contains("private"),
        "response with credentials is cacheable: cache-control={cc:?}"
    );
}

/// F10, before its fix: a short-lived (or later revoked) signed-search token yields action
/// links that live for the action's full ttl, beyond the token's own `exp`.
#[tokio::test]
async fn f10_minted_links_end_with_the_signed_search_token() {
    let s = setup_with(Behavior::canned(vec![Canned::json(
        200,
        &json!({"data": [{"id": "b-1", "state": "confirmed"}]}),
    )]))
    .await;
    let search_exp = now() + 60;
    let reply = get(&s.gate.url(&format!(
        "{}&include=customer_action_links",
        signed_search_with(
            json!({"app_slug": "shop", "customer.email": "marty@example.com", "exp": search_exp}),
            "marty@example.com"
        )
    )))
    .await;
    let link = reply.json()["data"][0]["customer_action_links"]["cancel_by_customer"]
        .as_str()
        .unwrap()
        .to_string();
    let tok = link.split("signature=").nth(1).unwrap();
    let claims = jwt::check_signature(tok, KEY.as_bytes()).unwrap();
    let link_exp = claims["exp"].as_u64().unwrap();
    assert!(
        link_exp <= search_exp,
        "link exp {link_exp} > search token exp {search_exp} (+{}s)",
        link_exp - search_exp
    );
}

// ---------------------------------------------------------------- probes that hold

#[tokio::test]
async fn ok_alternate_base64_signature_encoding_is_refused() {
    let s = setup_with(Behavior::Ok).await;
    let t = token(json!({"booking_id": "b-9", "action": "cancel_by_customer"}));
    let (input, sig) = t.rsplit_once('.').unwrap();
    // Flip the 2 unused trailing bits of the 43-char signature.
    let last = sig.as_bytes()[42];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let idx = alphabet.iter().position(|&c| c == last).unwrap();
    let mut variants = Vec::new();
    for d in 1..4 {
        let c = alphabet[(idx & !3) | ((idx + d) & 3)] as char;
        variants.push(format!("{input}.{}{c}", &sig[..42]));
    }
    // Padded / standard-alphabet spellings of the same bytes.
    variants.push(format!("{t}="));
    for v in &variants {
        let r = get(&s.gate.url(&at("b-9", "cancel_by_customer", &enc(v)))).await;
        assert_eq!(r.status, 401, "{v}");
    }
    assert_eq!(s.up.count(), 0);
    assert_eq!(
        get(&s.gate.url(&at("b-9", "cancel_by_customer", &t)))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn ok_path_spellings_map_to_the_signed_booking_only() {
    let s = setup_with(Behavior::Ok).await;
    let t = token(json!({"booking_id": "b-1", "action": "cancel_by_customer", "jti": "x1"}));
    // Equivalent spellings are normalized before comparison; the upstream
    // path comes from the claim.
    let r = get_raw(
        &s.gate,
        &format!("/v2/bookings/x/../%62-1/./external_action/%63ancel_by_customer?signature={t}"),
        "",
    )
    .await;
    assert_eq!(statuses(&r), [200], "{r}");
    assert_eq!(s.up.single().target, "/v2/bookings/b-1/cancel_by_customer");
    for (target, want) in [
        (
            format!("/v2/bookings/B-1/external_action/cancel_by_customer?signature={t}"),
            401,
        ),
        (
            format!("/v2/bookings/b-1%2F..%2Fx/external_action/cancel_by_customer?signature={t}"),
            400,
        ),
        (
            format!("/v2/bookings/b-1/external_action/cancel_by_customer/?signature={t}"),
            404,
        ),
        (
            format!("/v2/bookings/b-1/external_action/Cancel_By_Customer?signature={t}"),
            404,
        ),
        (
            format!("/v2/bookings/b-1;x/external_action/cancel_by_customer?signature={t}"),
            401,
        ),
    ] {
        let r = get_raw(&s.gate, &target, "").await;
        assert_eq!(statuses(&r), [want], "{target}");
    }
    // booking_id claims that are not path-safe never verify.
    for bad in ["../admin", "a/b", "b-1?x=1", "..", "b%2D1"] {
        let t = token(json!({"booking_id": bad, "action": "cancel_by_customer"}));
        let path_id = enc(bad);
        let r = get_raw(
            &s.gate,
            &format!("/v2/bookings/{path_id}/external_action/cancel_by_customer?signature={t}"),
            "",
        )
        .await;
        let st = statuses(&r);
        assert!(st == [401] || st == [400] || st == [404], "{bad}: {st:?}");
    }
    assert_eq!(s.up.count(), 1);
}

#[tokio::test]
async fn ok_redirect_bypass_attempts_are_refused() {
    let s = setup_with(Behavior::Ok).await;
    for bad in [
        "https://evil.example#@shop.example.com/",
        "https://evil.example?@shop.example.com/",
        "https://shop.example.com%2F@evil.example/",
        "https://shop.example.com./",
        "https://shop.example.com\u{3002}evil.example/",
        "https://shop.example.com:443@evil.example/",
        "https://shop.example.com\t.evil.example/",
        "https://shop.example.com/\r\nSet-Cookie:a=b",
        "https:/\\evil.example",
        "http://shop.example.com:443/",
        "HTTPS://evil.example/",
        "data:text/html,hi",
    ] {
        let t = token(json!({"booking_id": "b-1", "action": "cancel_by_customer"}));
        let r = get(&s.gate.url(&format!(
            "{}&redirect={}",
            at("b-1", "cancel_by_customer", &t),
            enc(bad)
        )))
        .await;
        assert_eq!(r.status, 400, "{bad:?}");
    }
    // Encoded CRLF stays encoded in Location; IDNA-equivalent host is the same origin.
    for (given, want) in [
        (
            "https://shop.example.com/%0D%0ASet-Cookie:a=b",
            "https://shop.example.com/%0D%0ASet-Cookie:a=b",
        ),
        (
            "https://ＳＨＯＰ.example.com/x",
            "https://shop.example.com/x",
        ),
    ] {
        let id = format!("r{}", s.up.count());
        let t = token(json!({"booking_id": id, "action": "cancel_by_customer"}));
        let r = get(&s.gate.url(&format!(
            "{}&redirect={}",
            at(&id, "cancel_by_customer", &t),
            enc(given)
        )))
        .await;
        assert_eq!(r.status, 302, "{given}");
        assert_eq!(r.headers["location"], want);
        assert!(r.headers.get("set-cookie").is_none());
    }
    // Signed javascript:/data: redirects are refused too.
    for scheme in ["javascript:alert(1)", "data:text/html,x"] {
        let t =
            token(json!({"booking_id": "b-7", "action": "cancel_by_customer", "redirect": scheme}));
        let r = get(&s.gate.url(&at("b-7", "cancel_by_customer", &t))).await;
        assert_eq!(r.status, 400, "{scheme}");
    }
    assert_eq!(s.up.count(), 2);
}

#[tokio::test]
async fn ok_token_kinds_do_not_cross() {
    let s = setup_with(Behavior::Ok).await;
    // A signed-search token (even with a matching-looking extra claim) is no action link.
    let t = token(json!({"app_slug": "shop", "customer.email": "a@b.c", "bookingid": "b-1"}));
    let r = get(&s.gate.url(&at("b-1", "cancel_by_customer", &t))).await;
    assert_eq!(r.status, 401);
    // An action-link token with a subject is no signed-search token.
    let t = token(
        json!({"app_slug": "shop", "customer.email": "a@b.c", "booking_id": "b-1", "action": "cancel_by_customer"}),
    );
    let r = get(&s.gate.url(&format!(
        "/v2/bookings?search=customer.email:a@b.c&signed_search={t}"
    )))
    .await;
    assert_eq!(r.status, 401);
    // Enrichment needs a signed-search principal: an action link with include gets none.
    let t = token(json!({"booking_id": "b-2", "action": "cancel_by_customer"}));
    let r = get(&s.gate.url(&format!(
        "{}&include=customer_action_links",
        at("b-2", "cancel_by_customer", &t)
    )))
    .await;
    assert_eq!(r.status, 200);
    assert!(!String::from_utf8_lossy(&r.body).contains("customer_action_links"));
    assert_eq!(s.up.single().target, "/v2/bookings/b-2/cancel_by_customer");
}
