//! Action links end to end through real listeners: what the upstream receives
//! for a followed link, single use, redirects, the uniform 401, and listings
//! enriched with `customer_action_links`.

mod common;

use std::time::Duration;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::Full;
use scopegate::{actions::Link, auth::jwt, Config};
use serde_json::{json, Value};

const KEY: &str = "live_api_key_shop_7nzvc7wsBQQISLeFSVhROys9V1bUJ1z7";
const OTHER_KEY: &str = "live_api_key_other_Q2hQoVtE0bYw9aDz";
const BASE: &str = "https://api.example.com";

fn routes() -> String {
    format!(
        r#"
[[app]]
slug = "shop"
revoked_jti = ["burned"]
[[app.key]]
key = "{KEY}"
[app.upstream_credential]
type = "app-key"

[[app]]
slug = "other"
[[app.key]]
key = "{OTHER_KEY}"
[app.upstream_credential]
type = "header"
name = "X-Api-Key"
value = "other-legacy-key"

[[route]]
name = "actions"
methods = ["GET", "POST"]
path = "/v2/bookings/{{id}}/external_action/{{action}}"
auth = ["action-link"]
upstream = "backend"
upstream_credential = "app"

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
max_listing_bytes = "4KiB"
max_bookings = 10

[[action]]
name = "cancel_by_customer"
upstream = "PUT /v2/bookings/{{id}}/cancel_by_customer"
single_use = true
ttl = "1h"

[[action]]
name = "reschedule_by_customer"
methods = ["POST"]
upstream = "PUT /v2/bookings/{{id}}/reschedule_by_customer"

[[action]]
name = "confirm"
upstream = "PUT /v2/bookings/{{id}}/confirm"
require_exp = true

[[action]]
name = "decline"
upstream = "PUT /v2/bookings/{{id}}/decline"
"#
    )
}

struct Setup {
    up: Upstream,
    gate: Gate,
    /// The same configuration, for minting links as the gate would.
    config: Config,
}

async fn setup_with(behavior: Behavior) -> Setup {
    let up = Upstream::start(behavior).await;
    let toml = config(up.addr, &routes());
    let gate = Gate::start(&toml).await;
    Setup {
        up,
        gate,
        config: Config::from_toml(&toml).unwrap(),
    }
}

async fn setup() -> Setup {
    setup_with(Behavior::Ok).await
}

impl Setup {
    /// A link as scopegate mints it, as a path and query on the gate.
    fn link(&self, booking: &str, action: &str, email: Option<&str>) -> String {
        let links = &self.config.auth.actions;
        let url = links
            .mint(
                &self.config.auth.apps,
                &Link {
                    app: "shop",
                    booking_id: booking,
                    action: links.get(action).unwrap(),
                    subject: email.map(|e| ("customer.email", e)),
                    ttl: None,
                },
                unix_now(),
            )
            .unwrap();
        url.strip_prefix(BASE).unwrap().to_string()
    }
}

fn token(claims: Value, key: &str) -> String {
    jwt::sign(claims.as_object().unwrap(), key.as_bytes())
}

fn at(id: &str, action: &str, token: &str) -> String {
    format!("/v2/bookings/{id}/external_action/{action}?signature={token}")
}

#[tokio::test]
async fn a_followed_link_becomes_the_configured_upstream_call() {
    let s = setup().await;
    let target = s.link("b-17", "cancel_by_customer", Some("marty@example.com"));
    let reply = get(&s.gate.url(&target)).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);

    let rec = s.up.single();
    assert_eq!(rec.method, "PUT");
    assert_eq!(rec.target, "/v2/bookings/b-17/cancel_by_customer");
    assert_eq!(rec.body_len, 0);
    assert_eq!(rec.one("x-scope-credential").unwrap(), "action-link");
    assert_eq!(rec.one("x-scope-app").unwrap(), "shop");
    assert_eq!(rec.one("x-scope-booking-id").unwrap(), "b-17");
    assert_eq!(rec.one("x-scope-action").unwrap(), "cancel_by_customer");
    assert_eq!(
        rec.one("x-scope-subject").unwrap(),
        "customer.email=marty@example.com"
    );
    assert_eq!(
        rec.one("x-scope-customer-email").unwrap(),
        "marty@example.com"
    );
    assert_eq!(rec.one("x-scope-route").unwrap(), "actions");
    // The app's legacy credential: HTTP Basic, empty user, the app key.
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(":{KEY}"))
    );
    assert_eq!(rec.one("authorization").unwrap(), basic);
    // The token went nowhere upstream.
    let sig = target.rsplit('.').next().unwrap();
    for (name, value) in &rec.headers {
        assert!(
            !value.to_str().unwrap_or("").contains(sig),
            "{name} carries the token"
        );
    }
}

#[tokio::test]
async fn a_vendor_minted_link_without_app_slug_finds_its_app() {
    let s = setup().await;
    // Exactly the vendor's payload: booking_id and action only, no exp.
    let t = token(json!({"booking_id": "b-9", "action": "decline"}), OTHER_KEY);
    let reply = get(&s.gate.url(&at("b-9", "decline", &t))).await;
    assert_eq!(reply.status, 200);
    let rec = s.up.single();
    assert_eq!(rec.one("x-scope-app").unwrap(), "other");
    assert_eq!(rec.one("x-api-key").unwrap(), "other-legacy-key");
    assert!(rec.one("authorization").is_none());
    // No subject claim: no subject headers.
    assert!(rec.one("x-scope-subject").is_none());
    assert!(rec.one("x-scope-customer-email").is_none());
}

#[tokio::test]
async fn a_single_use_link_answers_409_the_second_time() {
    let s = setup().await;
    let target = s.link("b-1", "cancel_by_customer", None);
    assert_eq!(get(&s.gate.url(&target)).await.status, 200);
    let again = get(&s.gate.url(&target)).await;
    assert_eq!(again.status, 409);
    assert_eq!(again.error_code(), "link_already_used");
    assert_eq!(s.up.count(), 1);

    // A token without jti is single use by its hash.
    let t = token(
        json!({"booking_id": "b-2", "action": "cancel_by_customer", "iat": unix_now()}),
        KEY,
    );
    let target = at("b-2", "cancel_by_customer", &t);
    assert_eq!(get(&s.gate.url(&target)).await.status, 200);
    assert_eq!(get(&s.gate.url(&target)).await.status, 409);
    assert_eq!(s.up.count(), 2);

    // A single-use link must end: without exp its end is iat + ttl, and one
    // with neither (the vendor's own) is refused, or its mark could be
    // forgotten before it and the link replayed.
    for claims in [
        json!({"booking_id": "b-4", "action": "cancel_by_customer"}),
        json!({"booking_id": "b-4", "action": "cancel_by_customer", "iat": unix_now() - 3700}),
    ] {
        let t = token(claims.clone(), KEY);
        let reply = get(&s.gate.url(&at("b-4", "cancel_by_customer", &t))).await;
        assert_eq!(reply.status, 401, "{claims}");
    }
    assert_eq!(s.up.count(), 2);

    // Links that are not single use can be followed again.
    let r = s.link("b-3", "reschedule_by_customer", None);
    let post = |t: &str| {
        Request::post(s.gate.url(t))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(
                br#"{"start":"2027-01-01T10:00:00Z","end":"2027-01-01T11:00:00Z"}"#,
            )))
            .unwrap()
    };
    assert_eq!(send(post(&r)).await.status, 200);
    assert_eq!(send(post(&r)).await.status, 200);
    let recs = s.up.records();
    assert_eq!(recs[3].target, "/v2/bookings/b-3/reschedule_by_customer");
    assert_eq!(
        &recs[3].body[..],
        br#"{"start":"2027-01-01T10:00:00Z","end":"2027-01-01T11:00:00Z"}"#
    );
}

#[tokio::test]
async fn concurrent_uses_of_a_single_use_link_reach_the_upstream_once() {
    let s = setup_with(Behavior::Delay(Duration::from_millis(100))).await;
    let url = s.gate.url(&s.link("b-1", "cancel_by_customer", None));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { get(&url).await.status.as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, [200, 409, 409, 409, 409, 409, 409, 409]);
    assert_eq!(s.up.count(), 1);
}

#[tokio::test]
async fn a_failed_upstream_releases_the_mark_and_a_refusal_keeps_it() {
    let s = setup_with(Behavior::canned(vec![
        Canned::json(503, &json!({"error": "down"})),
        Canned::json(200, &json!({"data": {"state": "cancelled"}})),
        Canned::json(409, &json!({"error": "invalid_transition"})),
    ]))
    .await;
    let target = s.link("b-1", "cancel_by_customer", None);
    assert_eq!(get(&s.gate.url(&target)).await.status, 503);
    // The action did not happen: the customer can retry.
    assert_eq!(get(&s.gate.url(&target)).await.status, 200);
    assert_eq!(get(&s.gate.url(&target)).await.status, 409);
    assert_eq!(s.up.count(), 2);

    let other = s.link("b-2", "cancel_by_customer", None);
    let refused = get(&s.gate.url(&other)).await;
    assert_eq!(refused.status, 409);
    assert_eq!(
        refused.json()["error"],
        "invalid_transition",
        "the backend's own answer"
    );
    assert_eq!(
        get(&s.gate.url(&other)).await.error_code(),
        "link_already_used"
    );
    assert_eq!(s.up.count(), 3);
}

#[tokio::test]
async fn every_verification_failure_gets_the_same_401_and_the_upstream_sees_nothing() {
    let s = setup().await;
    let good = s.link("b-1", "cancel_by_customer", Some("marty@example.com"));
    let good_token = good.split("signature=").nth(1).unwrap().to_string();
    let (h, rest) = good_token.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let tampered = format!(
        "{h}.{}.{sig}",
        URL_SAFE_NO_PAD
            .encode(r#"{"app_slug":"shop","booking_id":"b-2","action":"cancel_by_customer"}"#)
    );
    let none_alg = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(r#"{"booking_id":"b-1","action":"cancel_by_customer"}"#)
    );
    let claims = |extra: Value| {
        let mut c =
            json!({"app_slug": "shop", "booking_id": "b-1", "action": "cancel_by_customer"});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c
    };
    let cases: Vec<(&str, String)> = vec![
        // Replayed on another booking, or for another action.
        (
            "another booking",
            at("b-2", "cancel_by_customer", &good_token),
        ),
        (
            "another action",
            format!(
                "/v2/bookings/b-1/external_action/confirm?signature={}",
                token(
                    json!({"app_slug": "shop", "booking_id": "b-1", "action": "cancel_by_customer", "exp": unix_now() + 60}),
                    KEY
                )
            ),
        ),
        ("tampered", at("b-2", "cancel_by_customer", &tampered)),
        (
            "wrong key",
            at(
                "b-1",
                "cancel_by_customer",
                &token(claims(json!({})), "wrong key"),
            ),
        ),
        (
            "wrong key, no app_slug",
            at(
                "b-1",
                "cancel_by_customer",
                &token(
                    json!({"booking_id": "b-1", "action": "cancel_by_customer"}),
                    "wrong key",
                ),
            ),
        ),
        (
            "unknown app",
            at(
                "b-1",
                "cancel_by_customer",
                &token(claims(json!({"app_slug": "nope"})), KEY),
            ),
        ),
        ("alg none", at("b-1", "cancel_by_customer", &none_alg)),
        (
            "expired",
            at(
                "b-1",
                "cancel_by_customer",
                &token(claims(json!({"exp": 1})), KEY),
            ),
        ),
        (
            "string exp",
            at(
                "b-1",
                "cancel_by_customer",
                &token(claims(json!({"exp": "9999999999"})), KEY),
            ),
        ),
        (
            "revoked jti",
            at(
                "b-1",
                "cancel_by_customer",
                &token(claims(json!({"jti": "burned"})), KEY),
            ),
        ),
        (
            "numeric booking id claim",
            at(
                "1",
                "cancel_by_customer",
                &token(claims(json!({"booking_id": 1})), KEY),
            ),
        ),
        (
            "require_exp",
            at(
                "b-1",
                "confirm",
                &token(
                    json!({"app_slug": "shop", "booking_id": "b-1", "action": "confirm"}),
                    KEY,
                ),
            ),
        ),
        (
            "a signed-search token",
            at(
                "b-1",
                "cancel_by_customer",
                &token(
                    json!({"app_slug": "shop", "customer.email": "marty@example.com"}),
                    KEY,
                ),
            ),
        ),
        (
            "two subject claims",
            at(
                "b-1",
                "cancel_by_customer",
                &token(
                    claims(json!({"customer.email": "a@b.c", "meta.id": "7"})),
                    KEY,
                ),
            ),
        ),
        ("garbage", at("b-1", "cancel_by_customer", "not-a-token")),
        (
            "no token",
            "/v2/bookings/b-1/external_action/cancel_by_customer".into(),
        ),
    ];
    let mut uniform = Uniform401::default();
    for (what, target) in &cases {
        uniform.check(what, &get_raw(&s.gate, target, "").await);
    }
    assert_eq!(s.up.count(), 0);

    // The reverse: an action-link token is never a signed-search token.
    let as_search = get(&s.gate.url(&format!(
        "/v2/bookings?search=customer.email:marty@example.com&signed_search={good_token}"
    )))
    .await;
    assert_eq!(as_search.status, 401);
    assert_eq!(s.up.count(), 0);
}

#[tokio::test]
async fn redirects_go_only_to_allowed_or_signed_targets() {
    let s = setup().await;
    let enc = |u: &str| form_urlencoded::byte_serialize(u.as_bytes()).collect::<String>();

    let link = s.link("b-1", "cancel_by_customer", None);
    let to = "https://shop.example.com/bookings?done=1";
    let reply = get(&s.gate.url(&format!("{link}&redirect={}", enc(to)))).await;
    assert_eq!(reply.status, 302);
    assert_eq!(reply.headers["location"], to);
    assert!(reply.body.is_empty());
    assert_eq!(s.up.count(), 1, "the action happened before the redirect");

    for bad in [
        "https://evil.example/",
        "https://shop.example.com.evil.example/",
        "https://shop.example.com@evil.example/",
        "//evil.example/",
        "javascript:alert(1)",
        "http://shop.example.com/",
    ] {
        let link = s.link("b-2", "cancel_by_customer", None);
        let reply = get(&s.gate.url(&format!("{link}&redirect={}", enc(bad)))).await;
        assert_eq!(reply.status, 400, "{bad}");
        assert_eq!(reply.error_code(), "redirect_not_allowed");
    }
    assert_eq!(s.up.count(), 1, "a refused redirect forwards nothing");

    // A signed redirect claim is followed even outside the allow-list, and
    // only that one.
    let signed = token(
        json!({"app_slug": "shop", "booking_id": "b-5", "action": "cancel_by_customer",
               "exp": unix_now() + 60, "redirect": "https://partner.example/thanks"}),
        KEY,
    );
    let reply = get(&s.gate.url(&at("b-5", "cancel_by_customer", &signed))).await;
    assert_eq!(reply.status, 302);
    assert_eq!(reply.headers["location"], "https://partner.example/thanks");
    let signed2 = token(
        json!({"app_slug": "shop", "booking_id": "b-6", "action": "cancel_by_customer",
               "exp": unix_now() + 60, "redirect": "https://partner.example/thanks"}),
        KEY,
    );
    let other = format!(
        "{}&redirect={}",
        at("b-6", "cancel_by_customer", &signed2),
        enc("https://shop.example.com/")
    );
    assert_eq!(get(&s.gate.url(&other)).await.status, 400);
    assert_eq!(s.up.count(), 2);
}

#[tokio::test]
async fn a_refused_action_is_not_redirected() {
    let s = setup_with(Behavior::canned(vec![Canned::json(
        409,
        &json!({"error": "invalid_transition"}),
    )]))
    .await;
    let link = s.link("b-1", "cancel_by_customer", None);
    let reply = get(&s.gate.url(&format!(
        "{link}&redirect=https%3A%2F%2Fshop.example.com%2F"
    )))
    .await;
    assert_eq!(reply.status, 409);
    assert!(reply.headers.get("location").is_none());
    assert_eq!(reply.json()["error"], "invalid_transition");
}

#[tokio::test]
async fn methods_actions_and_query_shapes_are_checked_before_the_token() {
    let s = setup().await;
    let link = s.link("b-1", "cancel_by_customer", None);
    let post = send(
        Request::post(s.gate.url(&link))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(post.status, 405);
    assert_eq!(post.headers["allow"], "GET");

    let unknown = get(&s
        .gate
        .url("/v2/bookings/b-1/external_action/delete_everything?signature=x"))
    .await;
    assert_eq!(unknown.status, 404);

    let token = link.split("signature=").nth(1).unwrap();
    for q in [
        format!("signature={token}&signature={token}"),
        format!("signature={token}&Signature=x"),
        format!("signature={token}&redirect=a&redirect=b"),
        format!("signature={token}&x=%zz"),
        format!("signature={token};redirect=x"),
    ] {
        let reply = get(&s.gate.url(&format!(
            "/v2/bookings/b-1/external_action/cancel_by_customer?{q}"
        )))
        .await;
        assert_eq!(reply.status, 400, "{q}");
    }
    assert_eq!(s.up.count(), 0);
    // The link was never used: it still works.
    assert_eq!(get(&s.gate.url(&link)).await.status, 200);
}

#[tokio::test]
async fn the_link_token_never_reaches_a_public_route() {
    let s = setup().await;
    let reply = get(&s.gate.url("/open?a=1&signature=secret&action_token=t&b=2")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(s.up.single().target, "/open?a=1&b=2");
}

// ---- listings ----

fn signed_search(email: &str) -> String {
    let t = token(json!({"app_slug": "shop", "customer.email": email}), KEY);
    format!("/v2/bookings?search=customer.email:{email}&signed_search={t}")
}

fn listing() -> Value {
    json!({
        "data": [
            {"id": "b-1", "state": "confirmed", "possible_actions": ["cancel_by_customer", "confirm", "decline"]},
            {"id": "b-2", "state": "confirmed"},
            {"id": "b-3", "state": "cancelled", "possible_actions": []},
            {"id": "bad/id", "state": "confirmed"},
            {"id": 42, "state": "tentative"},
        ],
        "meta": {"total": 5}
    })
}

#[tokio::test]
async fn a_listing_gets_a_signed_link_per_allowed_action_and_each_link_works() {
    let up_body = listing();
    let s = setup_with(Behavior::canned(vec![
        Canned::json(200, &up_body),
        Canned::json(200, &json!({"data": {"state": "cancelled"}})),
    ]))
    .await;
    let reply = get(&s.gate.url(&format!(
        "{}&include=customer_action_links&limit=5",
        signed_search("marty@example.com")
    )))
    .await;
    assert_eq!(reply.status, 200);
    let rec = &s.up.records()[0];
    assert_eq!(
        rec.target, "/v2/bookings?search=customer.email%3Amarty%40example.com&limit=5",
        "the include value is scopegate's, not the backend's"
    );
    assert_eq!(rec.one("accept-encoding").unwrap(), "identity");

    let body = reply.json();
    assert_eq!(body["meta"], up_body["meta"], "the rest is untouched");
    let links = |i: usize| body["data"][i]["customer_action_links"].clone();
    // possible_actions, intersected with the configured actions.
    let l0 = links(0);
    assert_eq!(
        l0.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["cancel_by_customer", "confirm", "decline"]
    );
    // No possible_actions: the state table (default: confirmed → cancel, reschedule).
    let l1 = links(1);
    assert_eq!(
        l1.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["cancel_by_customer", "reschedule_by_customer"]
    );
    assert_eq!(links(2), json!({}));
    assert_eq!(links(3), json!({}), "an id that cannot be a path segment");
    assert_eq!(
        links(4),
        json!({}),
        "numeric id, no actions in state tentative"
    );
    assert_eq!(
        reply.headers["content-length"],
        reply.body.len().to_string().as_str()
    );

    let cancel = l0["cancel_by_customer"].as_str().unwrap();
    assert!(cancel.starts_with(
        "https://api.example.com/v2/bookings/b-1/external_action/cancel_by_customer?signature="
    ));
    // The link carries the customer who listed it, and expires.
    let tok = cancel.split("signature=").nth(1).unwrap();
    let claims = jwt::check_signature(tok, KEY.as_bytes()).unwrap();
    assert_eq!(claims["customer.email"], "marty@example.com");
    assert_eq!(claims["booking_id"], "b-1");
    assert!(claims["exp"].as_u64().unwrap() > unix_now() + 3000);
    assert!(claims["jti"].is_string());

    // Following it does the action, for that customer.
    let followed = get(&s.gate.url(cancel.strip_prefix(BASE).unwrap())).await;
    assert_eq!(followed.status, 200);
    let rec = &s.up.records()[1];
    assert_eq!(rec.method, "PUT");
    assert_eq!(rec.target, "/v2/bookings/b-1/cancel_by_customer");
    assert_eq!(
        rec.one("x-scope-customer-email").unwrap(),
        "marty@example.com"
    );
    // A link is for its booking only.
    let tok_b2 = l1["cancel_by_customer"]
        .as_str()
        .unwrap()
        .split("signature=")
        .nth(1)
        .unwrap();
    assert_eq!(
        get(&s.gate.url(&at("b-1", "cancel_by_customer", tok_b2)))
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn without_the_include_nothing_is_rewritten() {
    let s = setup_with(Behavior::canned(vec![Canned::json(200, &listing())])).await;
    let reply = get(&s.gate.url(&signed_search("marty@example.com"))).await;
    assert_eq!(reply.json(), listing());
    assert!(s.up.single().one("accept-encoding").is_none());
}

#[tokio::test]
async fn listings_scopegate_cannot_rewrite_pass_through_untouched() {
    let big = json!({"data": [{"id": "b-1", "state": "confirmed", "pad": "x".repeat(5000)}]});
    let cases = vec![
        (
            "not json",
            Canned {
                status: 200,
                headers: vec![("content-type", "text/html".into())],
                body: Bytes::from_static(b"<p>hello</p>"),
            },
        ),
        (
            "invalid json",
            Canned {
                status: 200,
                headers: vec![("content-type", "application/json".into())],
                body: Bytes::from_static(b"{\"data\": [ oops"),
            },
        ),
        (
            "compressed",
            Canned {
                status: 200,
                headers: vec![
                    ("content-type", "application/json".into()),
                    ("content-encoding", "gzip".into()),
                ],
                body: Bytes::from_static(b"\x1f\x8b\x08\x00not-really"),
            },
        ),
        ("too large", Canned::json(200, &big)),
        (
            "not 2xx",
            Canned::json(404, &json!({"data": [{"id": "b-1", "state": "confirmed"}]})),
        ),
        ("other shape", Canned::json(200, &json!({"data": "none"}))),
        ("no pointer", Canned::json(200, &json!({"bookings": []}))),
        (
            "more bookings than max_bookings",
            Canned::json(
                200,
                &json!({"data": (0..11).map(|i| json!({"id": format!("b-{i}"), "state": "confirmed"})).collect::<Vec<_>>()}),
            ),
        ),
    ];
    for (what, answer) in cases {
        let s = setup_with(Behavior::canned(vec![answer.clone()])).await;
        let reply = get(&s.gate.url(&format!(
            "{}&include=customer_action_links",
            signed_search("marty@example.com")
        )))
        .await;
        assert_eq!(reply.status.as_u16(), answer.status, "{what}");
        assert_eq!(reply.body, answer.body, "{what}: body changed");
    }
}

#[tokio::test]
async fn a_single_booking_object_is_enriched_too() {
    let s = setup_with(Behavior::canned(vec![Canned::json(
        200,
        &json!({"data": {"id": "b-1", "state": "confirmed"}}),
    )]))
    .await;
    let reply = get(&s.gate.url(&format!(
        "{}&include=attributes,customer_action_links",
        signed_search("marty@example.com")
    )))
    .await;
    let links = &reply.json()["data"]["customer_action_links"];
    assert!(links["cancel_by_customer"].is_string());
    assert!(s.up.single().target.ends_with("&include=attributes"));
}

// ---- interop vectors (fixed clock, no sockets) ----

#[test]
fn tokens_minted_by_pyjwt_verify_exactly_as_expected() {
    use scopegate::auth::{self, AuthError, Principal, RouteAuth};
    let v: Value = serde_json::from_str(include_str!("vectors/pyjwt_action_links.json")).unwrap();
    let now = v["now"].as_u64().unwrap();
    let config = Config::from_toml(&format!(
        r#"
[[app]]
slug = "my-app-6165"
[[app.key]]
key = "{}"
[[action]]
name = "cancel_by_customer"
upstream = "PUT /v2/bookings/{{id}}/cancel_by_customer"
[[action]]
name = "confirm"
upstream = "PUT /v2/bookings/{{id}}/confirm"
"#,
        v["key"].as_str().unwrap()
    ))
    .unwrap();
    let policy = auth::AuthPolicy::AnyOf(vec![auth::Scheme::ActionLink]);
    let verify = |case: &Value| {
        let (booking, action) = (
            case["booking"].as_str().unwrap(),
            case["action"].as_str().unwrap(),
        );
        let mut parts = Request::get(at(booking, action, case["token"].as_str().unwrap()))
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let route = RouteAuth {
            action_path: Some((booking, action)),
            ..RouteAuth::default()
        };
        auth::authenticate(&policy, &route, &mut parts, &config.auth, now)
    };
    for case in v["accept"].as_array().unwrap() {
        match verify(case) {
            Ok(Principal::Customer(c)) => {
                assert_eq!(
                    c.app_slug,
                    case["app"].as_str().unwrap(),
                    "{}",
                    case["name"]
                );
                let grant = c.action.as_ref().unwrap();
                assert_eq!(
                    grant.booking_id.header_value(),
                    case["booking"].as_str().unwrap()
                );
                assert_eq!(
                    grant.upstream_path,
                    format!(
                        "/v2/bookings/{}/cancel_by_customer",
                        case["booking"].as_str().unwrap()
                    )
                );
                assert_eq!(
                    c.subject.as_ref().map(|s| s
                        .header
                        .header_value()
                        .to_str()
                        .unwrap()
                        .to_string()),
                    case["subject"].as_str().map(String::from),
                    "{}",
                    case["name"]
                );
            }
            other => panic!("{}: {other:?}", case["name"]),
        }
    }
    for case in v["reject"].as_array().unwrap() {
        assert!(
            matches!(verify(case), Err(AuthError::Rejected(_))),
            "{} was not rejected",
            case["name"]
        );
    }
}

#[tokio::test]
async fn a_head_listing_is_never_rewritten() {
    let s = setup_with(Behavior::canned(vec![Canned {
        status: 200,
        headers: vec![
            ("content-type", "application/json".into()),
            ("content-length", "476".into()),
        ],
        body: Bytes::new(),
    }]))
    .await;
    let out = raw(
        s.gate.addr,
        format!(
            "HEAD {}&include=customer_action_links HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            signed_search("marty@example.com")
        )
        .as_bytes(),
        RAW_WAIT,
    )
    .await;
    assert_eq!(statuses(&out), [200], "{out}");
    assert!(
        out.to_ascii_lowercase().contains("content-length: 476"),
        "{out}"
    );
}

// ---- regressions from the security review ----
//
// Each `f*` test reproduces a finding of the review and failed before its
// fix; the `ok_*` tests are probes that held.
mod review {
    use super::*;

    /// Signs `claims` with the shop key, adding `iat` = now when absent
    /// (single-use links must end).
    fn token(claims: Value) -> String {
        let mut claims = claims.as_object().unwrap().clone();
        claims.entry("iat").or_insert_with(|| unix_now().into());
        jwt::sign(&claims, KEY.as_bytes())
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
        let search_exp = unix_now() + 60;
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
            &format!(
                "/v2/bookings/x/../%62-1/./external_action/%63ancel_by_customer?signature={t}"
            ),
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
                format!(
                    "/v2/bookings/b-1%2F..%2Fx/external_action/cancel_by_customer?signature={t}"
                ),
                400,
            ),
            // A trailing slash names the same action: the used link again.
            (
                format!("/v2/bookings/b-1/external_action/cancel_by_customer/?signature={t}"),
                409,
            ),
            (
                format!("/v2/bookings/b-1/external_action/Cancel_By_Customer?signature={t}"),
                404,
            ),
            // Path parameters are refused before anything else.
            (
                format!("/v2/bookings/b-1;x/external_action/cancel_by_customer?signature={t}"),
                400,
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
            let t = token(
                json!({"booking_id": "b-7", "action": "cancel_by_customer", "redirect": scheme}),
            );
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
}

/// A link's URL holds its token, so no answer on the link's route may hand
/// that URL on as a referrer: the forwarded answer, the redirect, and
/// scopegate's own refusals (401, 409, 400, 404) all say `no-referrer`.
#[tokio::test]
async fn every_answer_on_the_link_route_says_no_referrer() {
    let s = setup().await;
    let enc = |u: &str| form_urlencoded::byte_serialize(u.as_bytes()).collect::<String>();
    let policy = |r: &Reply| {
        r.headers
            .get("referrer-policy")
            .map(|v| v.to_str().unwrap().to_string())
    };
    let link = s.link("b-1", "cancel_by_customer", None);
    let first = get(&s.gate.url(&link)).await;
    let again = get(&s.gate.url(&link)).await;
    let bad_redirect = get(&s.gate.url(&format!(
        "{}&redirect={}",
        s.link("b-2", "cancel_by_customer", None),
        enc("https://evil.example/")
    )))
    .await;
    let redirected = get(&s.gate.url(&format!(
        "{}&redirect={}",
        s.link("b-3", "cancel_by_customer", None),
        enc("https://shop.example.com/bookings?done=1")
    )))
    .await;
    let forged = get(&s.gate.url(&at(
        "b-4",
        "cancel_by_customer",
        &token(
            json!({"booking_id": "b-4", "action": "cancel_by_customer"}),
            "not-the-key-0123456789",
        ),
    )))
    .await;
    let unknown = get(&s.gate.url(&at("b-5", "no_such_action", "x.y.z"))).await;
    for (what, r, status) in [
        ("forwarded", &first, 200),
        ("used again", &again, 409),
        ("redirect refused", &bad_redirect, 400),
        ("redirected", &redirected, 302),
        ("forged", &forged, 401),
        ("unknown action", &unknown, 404),
    ] {
        assert_eq!(r.status, status, "{what}: {:?}", r.body);
        assert_eq!(policy(r).as_deref(), Some("no-referrer"), "{what}");
    }
    // Other routes keep the page's own policy.
    assert_eq!(policy(&get(&s.gate.url("/open")).await), None);
}
