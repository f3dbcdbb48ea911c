//! API keys (Bookeo) through real listeners: `own` against `all` reach, every
//! kind of route requirement, both carriers (query and headers, also under
//! configured names), ambiguity, one uniform 401 for every bad key, method
//! overrides that never widen what a key may do, keys configured by hash or
//! from the environment, the `apikeyinfo` endpoint scopegate answers itself,
//! and configuration errors. Each test asserts what the upstream received,
//! or that it received nothing.
//!
//! Keys are configured by their SHA-256 (computed here with `sha2`, not with
//! the library), so the configuration holds no usable key.

mod common;

use common::*;
use http::Request;
use http_body_util::Full;
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------
// Applications, keys, routes

const APP1_SECRET: &str = "sk-frontdesk-5c1e9a07d3b24f68";
const APP2_SECRET: &str = "sk-channelmgr-0f4d8b2a6e917c35";

/// `bookings_rw_own` (configured by an upper-case hash).
const OWN: &str = "OWN0KEY0BOOKINGS0RW0OWN000000001";
/// `bookings_r_all` + `bookings_rw_own`.
const MIXED: &str = "MIXED0KEY0R0ALL0RW0OWN000000002";
/// `bookings_rwd_all`.
const FULL: &str = "FULL0KEY0BOOKINGS0RWD0ALL000003";
/// `bookings_r_all`: read-only.
const READ: &str = "READ0KEY0BOOKINGS0R0ALL00000004";
/// `bookings_rw_all`: no delete.
const RW: &str = "RW0KEY0BOOKINGS0RW0ALL000000005";
/// `payments_r_all`.
const PAY_R: &str = "PAYR0KEY0PAYMENTS0R0ALL00000006";
/// `payments_rw_own`.
const PAY_RW: &str = "PAYRW0KEY0PAYMENTS0RW0OWN000007";
/// `availability_r`.
const AVAIL: &str = "AVAIL0KEY0AVAILABILITY0R0000008";
/// `subaccounts_rw`.
const SUB: &str = "SUB0KEY0SUBACCOUNTS0RW000000009";
/// `bookings_rwd_all`, disabled.
const DISABLED: &str = "DISABLED0KEY0RWD0ALL00000000010";
/// app-2's key with `bookings_rwd_all`.
const APP2_KEY: &str = "APP20KEY0BOOKINGS0RWD0ALL000011";

const EVERY_KEY: [&str; 11] = [
    OWN, MIXED, FULL, READ, RW, PAY_R, PAY_RW, AVAIL, SUB, DISABLED, APP2_KEY,
];

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An `[[api_key]]` table configured by hash.
fn key_entry(key: &str, app: &str, business: &str, perms: &[&str], extra: &str) -> String {
    let perms: Vec<String> = perms.iter().map(|p| format!("{p:?}")).collect();
    format!(
        "[[api_key]]\nkey_sha256 = \"{}\"\napplication = \"{app}\"\nbusiness = \"{business}\"\npermissions = [{}]\n{extra}\n",
        sha256_hex(key),
        perms.join(", ")
    )
}

const APPLICATIONS: &str = r#"
[[application]]
id = "app-1"
name = "Front desk"
secret_key = "sk-frontdesk-5c1e9a07d3b24f68"

[[application]]
id = "app-2"
name = "Channel manager"
secret_key = "sk-channelmgr-0f4d8b2a6e917c35"
"#;

fn keys() -> String {
    let own = key_entry(OWN, "app-1", "acct-1", &["bookings_rw_own"], "")
        .replace(&sha256_hex(OWN), &sha256_hex(OWN).to_ascii_uppercase());
    [
        own,
        key_entry(
            MIXED,
            "app-1",
            "acct-2",
            &["bookings_r_all", "bookings_rw_own"],
            "created = \"2026-01-01T00:00:00Z\"",
        ),
        key_entry(FULL, "app-1", "acct-3", &["bookings_rwd_all"], ""),
        key_entry(READ, "app-1", "acct-4", &["bookings_r_all"], ""),
        key_entry(RW, "app-1", "acct-5", &["bookings_rw_all"], ""),
        key_entry(PAY_R, "app-1", "acct-6", &["payments_r_all"], ""),
        key_entry(PAY_RW, "app-1", "acct-6", &["payments_rw_own"], ""),
        key_entry(AVAIL, "app-1", "acct-7", &["availability_r"], ""),
        key_entry(SUB, "app-1", "acct-7", &["subaccounts_rw"], ""),
        key_entry(
            DISABLED,
            "app-1",
            "acct-8",
            &["bookings_rwd_all"],
            "disabled = true",
        ),
        key_entry(APP2_KEY, "app-2", "acct-9", &["bookings_rwd_all"], ""),
    ]
    .concat()
}

/// One route per kind of requirement, plus a public catch-all under
/// `/v2/settings` (so an `apikeyinfo` scopegate failed to answer would reach
/// the upstream instead of a 404).
const ROUTES: &str = r#"
[[route]]
name = "bookings"
path = "/v2/bookings/*"
auth = ["api-key"]
upstream = "backend"
require = "bookings"

[[route]]
name = "customers"
path = "/v2/customers/*"
auth = ["api-key"]
upstream = "backend"
require = "customers"

[[route]]
name = "payments"
path = "/v2/payments/*"
auth = ["api-key"]
upstream = "backend"
require = "payments:rw"

[[route]]
name = "availability"
path = "/v2/availability/*"
auth = ["api-key"]
upstream = "backend"
require = "availability"

[[route]]
name = "subaccounts"
path = "/v2/subaccounts/*"
auth = ["api-key"]
upstream = "backend"
require = "subaccounts"

[[route]]
name = "settings"
path = "/v2/settings/*"
auth = ["public"]
upstream = "backend"
"#;

struct Setup {
    up: Upstream,
    gate: Gate,
}

/// A gate with [`ROUTES`], both applications, every key and `extra`.
async fn setup(extra: &str) -> Setup {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::start(&config(
        up.addr,
        &format!("{ROUTES}\n{APPLICATIONS}\n{}\n{extra}", keys()),
    ))
    .await;
    Setup { up, gate }
}

// ---------------------------------------------------------------------------
// Requests and assertions

/// `apiKey=<key>&secretKey=<secret>`.
fn creds(key: &str, secret: &str) -> String {
    format!("apiKey={key}&secretKey={secret}")
}

/// A request with extra headers and a body, through hyper.
async fn call(
    gate: &Gate,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut req = Request::builder().method(method).uri(gate.url(target));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(req.body(Full::from(body.to_string())).unwrap()).await
}

/// `method` on `path` with an app-1 key in the query.
async fn with_key(gate: &Gate, method: &str, path: &str, key: &str) -> Reply {
    call(
        gate,
        method,
        &format!("{path}?{}", creds(key, APP1_SECRET)),
        &[],
        "",
    )
    .await
}

/// The last request the upstream received.
fn last(up: &Upstream) -> Recorded {
    up.records().pop().expect("the upstream received a request")
}

/// Exactly the key holder's scope headers, and no other scope header.
fn assert_holder(rec: &Recorded, route: &str, app: &str, business: &str, perms: &str, reach: &str) {
    assert_eq!(rec.one("x-scope-credential").as_deref(), Some("api-key"));
    assert_eq!(rec.one("x-scope-route").as_deref(), Some(route));
    assert_eq!(rec.one("x-scope-app").as_deref(), Some(app));
    assert_eq!(rec.one("x-scope-business").as_deref(), Some(business));
    assert_eq!(rec.one("x-scope-permissions").as_deref(), Some(perms));
    assert_eq!(rec.one("x-scope-reach").as_deref(), Some(reach));
    let mut names = rec.names_with_prefix("x-scope-");
    names.sort();
    assert_eq!(
        names,
        [
            "x-scope-app",
            "x-scope-business",
            "x-scope-credential",
            "x-scope-permissions",
            "x-scope-reach",
            "x-scope-route",
        ]
    );
}

/// No key, no secret and no carrier of either reached the upstream: not in
/// the target (any spelling), not in a header name or value.
fn assert_no_keys(rec: &Recorded) {
    let target = rec.target.to_ascii_lowercase();
    for word in ["apikey", "api_key", "secretkey", "secret_key"] {
        assert!(
            !target.contains(word),
            "{word} in the target: {}",
            rec.target
        );
    }
    for secret in EVERY_KEY.iter().chain(&[APP1_SECRET, APP2_SECRET]) {
        assert!(
            !rec.target.contains(secret),
            "a key in the target: {}",
            rec.target
        );
    }
    for (name, value) in &rec.headers {
        let canon = name.as_str().replace('_', "-");
        assert!(
            !canon.starts_with("x-bookeo-"),
            "key header reached the upstream: {name}"
        );
        let v = String::from_utf8_lossy(value.as_bytes());
        for secret in EVERY_KEY.iter().chain(&[APP1_SECRET, APP2_SECRET]) {
            assert!(!v.contains(secret), "a key in upstream header {name}: {v}");
        }
    }
}

/// The exact 403 body for a missing permission.
fn assert_forbidden(reply: &Reply, needed: &str) {
    assert_eq!(reply.status.as_u16(), 403, "{reply:?}");
    assert_eq!(
        reply.json(),
        serde_json::json!({"error": {
            "code": "permission_denied",
            "message": "the credential does not grant what this route needs",
            "needed": needed,
        }})
    );
}

const ALL_BOOKINGS: &str =
    "bookings_r_all,bookings_rw_own,bookings_rw_all,bookings_rwd_own,bookings_rwd_all";

// ---------------------------------------------------------------------------
// 1. own against all

#[tokio::test]
async fn an_own_key_reaches_own_and_forged_scope_headers_are_replaced() {
    let s = setup("").await;
    let r = call(
        &s.gate,
        "GET",
        &format!("/v2/bookings/b1?{}", creds(OWN, APP1_SECRET)),
        &[
            ("X-Scope-Reach", "all"),
            ("x_scope_permissions", "bookings_rwd_all"),
            ("X-Scope-Business", "acct-9"),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let rec = s.up.single();
    assert_eq!(rec.method, "GET");
    assert_eq!(rec.target, "/v2/bookings/b1");
    assert_holder(
        &rec,
        "bookings",
        "app-1",
        "acct-1",
        "bookings_rw_own",
        "own:app-1",
    );
    assert_no_keys(&rec);

    // rw_own covers writes, own only; not deletes.
    let r = with_key(&s.gate, "PATCH", "/v2/bookings/b1", OWN).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        last(&s.up).one("x-scope-reach").as_deref(),
        Some("own:app-1")
    );
    let r = with_key(&s.gate, "DELETE", "/v2/bookings/b1", OWN).await;
    assert_forbidden(&r, "bookings:rwd");
    assert_eq!(s.up.count(), 2);
}

#[tokio::test]
async fn read_all_with_write_own_reaches_all_for_reads_and_own_for_writes() {
    let s = setup("").await;
    let perms = "bookings_r_all,bookings_rw_own";

    let r = with_key(&s.gate, "GET", "/v2/bookings/b1", MIXED).await;
    assert_eq!(r.status, 200, "{r:?}");
    let rec = last(&s.up);
    assert_holder(&rec, "bookings", "app-1", "acct-2", perms, "all");
    assert_no_keys(&rec);

    // r_all does not cover writes: the write is allowed through rw_own only.
    let r = with_key(&s.gate, "PUT", "/v2/bookings/b1", MIXED).await;
    assert_eq!(r.status, 200, "{r:?}");
    let rec = last(&s.up);
    assert_eq!(rec.method, "PUT");
    assert_holder(&rec, "bookings", "app-1", "acct-2", perms, "own:app-1");

    let r = with_key(&s.gate, "DELETE", "/v2/bookings/b1", MIXED).await;
    assert_forbidden(&r, "bookings:rwd");
    assert_eq!(s.up.count(), 2, "the refused DELETE reached the upstream");
}

#[tokio::test]
async fn an_rwd_all_key_deletes_with_reach_all_and_every_implied_permission() {
    let s = setup("").await;
    let r = with_key(&s.gate, "DELETE", "/v2/bookings/b1", FULL).await;
    assert_eq!(r.status, 200, "{r:?}");
    let rec = s.up.single();
    assert_eq!(rec.method, "DELETE");
    assert_holder(&rec, "bookings", "app-1", "acct-3", ALL_BOOKINGS, "all");
    assert_no_keys(&rec);
}

// ---------------------------------------------------------------------------
// 2. Route requirements

#[tokio::test]
async fn a_fixed_requirement_ignores_the_method() {
    let s = setup("").await;
    // payments:rw even for a GET: payments_r_all is not enough.
    let r = with_key(&s.gate, "GET", "/v2/payments/p1", PAY_R).await;
    assert_forbidden(&r, "payments:rw");
    assert_eq!(s.up.count(), 0);

    // payments_rw_own is, for a GET as for a POST (reach own).
    for method in ["GET", "POST"] {
        let r = with_key(&s.gate, method, "/v2/payments/p1", PAY_RW).await;
        assert_eq!(r.status, 200, "{method}: {r:?}");
        let rec = last(&s.up);
        assert_eq!(rec.method, method);
        assert_holder(
            &rec,
            "payments",
            "app-1",
            "acct-6",
            "payments_rw_own",
            "own:app-1",
        );
        assert_no_keys(&rec);
    }
    // Nor does a fixed rw need more for DELETE.
    let r = with_key(&s.gate, "DELETE", "/v2/payments/p1", PAY_RW).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(s.up.count(), 3);
}

#[tokio::test]
async fn availability_r_reads_availability_and_nothing_else() {
    let s = setup("").await;
    let r = with_key(&s.gate, "GET", "/v2/availability/slots", AVAIL).await;
    assert_eq!(r.status, 200, "{r:?}");
    let rec = s.up.single();
    // Without a reach of its own, the permission reaches all.
    assert_holder(
        &rec,
        "availability",
        "app-1",
        "acct-7",
        "availability_r",
        "all",
    );
    assert_no_keys(&rec);

    let r = with_key(&s.gate, "POST", "/v2/availability/slots", AVAIL).await;
    assert_forbidden(&r, "availability:rw");
    let r = with_key(&s.gate, "GET", "/v2/bookings/b1", AVAIL).await;
    assert_forbidden(&r, "bookings:r");
    assert_eq!(s.up.count(), 1);
}

#[tokio::test]
async fn subaccounts_rw_reads_and_writes_but_does_not_delete() {
    let s = setup("").await;
    for method in ["GET", "POST"] {
        let r = with_key(&s.gate, method, "/v2/subaccounts/s1", SUB).await;
        assert_eq!(r.status, 200, "{method}: {r:?}");
        let rec = last(&s.up);
        assert_eq!(rec.method, method);
        assert_holder(
            &rec,
            "subaccounts",
            "app-1",
            "acct-7",
            "subaccounts_rw",
            "all",
        );
    }
    let r = with_key(&s.gate, "DELETE", "/v2/subaccounts/s1", SUB).await;
    assert_forbidden(&r, "subaccounts:rwd");
    assert_eq!(s.up.count(), 2);
}

#[tokio::test]
async fn a_bookings_key_gets_nothing_from_customers() {
    let s = setup("").await;
    for (method, needed) in [
        ("GET", "customers:r"),
        ("POST", "customers:rw"),
        ("DELETE", "customers:rwd"),
    ] {
        let r = with_key(&s.gate, method, "/v2/customers/c1", FULL).await;
        assert_forbidden(&r, needed);
    }
    assert_eq!(s.up.count(), 0);
}

// ---------------------------------------------------------------------------
// 3. Carriers and ambiguity

#[tokio::test]
async fn keys_in_the_query_are_removed_in_every_spelling_and_the_rest_is_kept() {
    let s = setup("").await;
    let target = format!(
        "/v2/bookings/b1?date=2027-01-15&q=a%20b+c%2B&{}&api_key=x1&APIKEY=x2&secret_key=x3&SECRETKEY=x4&Api-Key={FULL}&page=2",
        creds(READ, APP1_SECRET)
    );
    let out = get_raw(
        &s.gate,
        &target,
        &format!("X_Bookeo_ApiKey: {FULL}\r\nx_bookeo_secretkey: {APP1_SECRET}\r\n"),
    )
    .await;
    assert_eq!(statuses(&out), [200], "{out}");
    let rec = s.up.single();
    assert_eq!(
        rec.target,
        "/v2/bookings/b1?date=2027-01-15&q=a%20b+c%2B&page=2"
    );
    assert_holder(&rec, "bookings", "app-1", "acct-4", "bookings_r_all", "all");
    assert_no_keys(&rec);
    assert!(rec.all("x_bookeo_apikey").is_empty());
}

#[tokio::test]
async fn keys_in_headers_are_removed_in_every_spelling() {
    let s = setup("").await;
    let out = get_raw(
        &s.gate,
        "/v2/bookings/b1?page=2",
        &format!(
            "X-Bookeo-apiKey: {MIXED}\r\nX-Bookeo-secretKey: {APP1_SECRET}\r\n\
             X_Bookeo_ApiKey: {FULL}\r\nx_bookeo_secretkey: {APP2_SECRET}\r\n"
        ),
    )
    .await;
    assert_eq!(statuses(&out), [200], "{out}");
    let rec = s.up.single();
    assert_eq!(rec.target, "/v2/bookings/b1?page=2");
    assert_holder(
        &rec,
        "bookings",
        "app-1",
        "acct-2",
        "bookings_r_all,bookings_rw_own",
        "all",
    );
    assert_no_keys(&rec);
}

#[tokio::test]
async fn configured_names_carry_the_keys_and_the_vendors_names_are_still_removed() {
    let s = setup(
        r#"
[api_keys]
api_key_param = "key"
secret_key_param = "secret"
api_key_header = "X-Api-Key"
secret_key_header = "X-Api-Secret"
"#,
    )
    .await;

    // Configured headers; the vendor's headers and parameters come along and go.
    let out = get_raw(
        &s.gate,
        &format!("/v2/bookings/b1?page=1&apiKey={FULL}&secretKey={APP1_SECRET}"),
        &format!(
            "X-Api-Key: {READ}\r\nX-Api-Secret: {APP1_SECRET}\r\n\
             X-Bookeo-apiKey: {FULL}\r\nX_Bookeo_SecretKey: {APP1_SECRET}\r\n"
        ),
    )
    .await;
    assert_eq!(statuses(&out), [200], "{out}");
    let rec = s.up.single();
    assert_eq!(rec.target, "/v2/bookings/b1?page=1");
    assert_holder(&rec, "bookings", "app-1", "acct-4", "bookings_r_all", "all");
    assert_no_keys(&rec);
    assert!(rec.all("x-api-key").is_empty() && rec.all("x-api-secret").is_empty());

    // Configured parameters, also in other spellings.
    let out = get_raw(
        &s.gate,
        &format!("/v2/bookings/b2?key={MIXED}&secret={APP1_SECRET}&KEY=x&Secret=y&page=2"),
        "X_Api_Key: stray\r\n",
    )
    .await;
    assert_eq!(statuses(&out), [200], "{out}");
    let rec = last(&s.up);
    assert_eq!(rec.target, "/v2/bookings/b2?page=2");
    assert_eq!(rec.one("x-scope-business").as_deref(), Some("acct-2"));
    assert!(rec.names_with_prefix("x-api-").is_empty(), "{rec:?}");
    assert_no_keys(&rec);

    // The vendor's names alone no longer carry a credential.
    let r = get(&s
        .gate
        .url(&format!("/v2/bookings/b1?{}", creds(FULL, APP1_SECRET))))
    .await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(s.up.count(), 2);
}

/// What a case is, its target and headers, and the error code it must get.
type Refusal = (
    &'static str,
    String,
    Vec<(&'static str, &'static str)>,
    &'static str,
);

#[tokio::test]
async fn keys_in_two_places_or_twice_or_half_given_are_refused_before_the_upstream() {
    let s = setup("").await;
    let q = creds(FULL, APP1_SECRET);
    let h = |k: &'static str, v: &'static str| (k, v);
    let cases: Vec<Refusal> = vec![
        (
            "query and headers",
            format!("/v2/bookings/b1?{q}"),
            vec![
                h("X-Bookeo-apiKey", FULL),
                h("X-Bookeo-secretKey", APP1_SECRET),
            ],
            "ambiguous_credential",
        ),
        (
            "apiKey in the query, secretKey in a header",
            format!("/v2/bookings/b1?apiKey={FULL}"),
            vec![h("X-Bookeo-secretKey", APP1_SECRET)],
            "ambiguous_credential",
        ),
        (
            "apiKey twice, same value",
            format!("/v2/bookings/b1?{q}&apiKey={FULL}"),
            vec![],
            "ambiguous_credential",
        ),
        (
            "apiKey twice, another key",
            format!("/v2/bookings/b1?{q}&apiKey={READ}"),
            vec![],
            "ambiguous_credential",
        ),
        (
            "secretKey twice",
            format!("/v2/bookings/b1?{q}&secretKey={APP2_SECRET}"),
            vec![],
            "ambiguous_credential",
        ),
        (
            "the key header twice",
            "/v2/bookings/b1".into(),
            vec![
                h("X-Bookeo-apiKey", FULL),
                h("X-Bookeo-apiKey", READ),
                h("X-Bookeo-secretKey", APP1_SECRET),
            ],
            "ambiguous_credential",
        ),
        (
            "only apiKey",
            format!("/v2/bookings/b1?apiKey={FULL}"),
            vec![],
            "bad_query",
        ),
        (
            "only secretKey",
            format!("/v2/bookings/b1?secretKey={APP1_SECRET}"),
            vec![],
            "bad_query",
        ),
        (
            "only the key header",
            "/v2/bookings/b1".into(),
            vec![h("X-Bookeo-apiKey", FULL)],
            "bad_query",
        ),
    ];
    for (what, target, headers, code) in cases {
        let r = call(&s.gate, "GET", &target, &headers, "").await;
        assert_eq!(r.status, 400, "{what}: {r:?}");
        assert_eq!(r.error_code(), code, "{what}");
    }
    assert_eq!(s.up.count(), 0);
}

// ---------------------------------------------------------------------------
// 4. One 401 for every bad key

#[tokio::test]
async fn every_bad_key_gets_the_same_401_and_the_upstream_nothing() {
    let s = setup("").await;
    let mut uniform = Uniform401::default();
    let route = "/v2/bookings/b1";
    let cases = [
        ("no credential", route.to_string()),
        (
            "unknown key",
            format!(
                "{route}?{}",
                creds("NO0SUCH0KEY0000000000000000000", APP1_SECRET)
            ),
        ),
        (
            "wrong secret",
            format!("{route}?{}", creds(FULL, "sk-guess")),
        ),
        ("empty secret", format!("{route}?apiKey={FULL}&secretKey=")),
        (
            "another app's secret",
            format!("{route}?{}", creds(FULL, APP2_SECRET)),
        ),
        (
            "disabled key",
            format!("{route}?{}", creds(DISABLED, APP1_SECRET)),
        ),
        (
            "app-2's key with app-1's secret",
            format!("{route}?{}", creds(APP2_KEY, APP1_SECRET)),
        ),
        (
            "the key's hash as the key",
            format!("{route}?{}", creds(&sha256_hex(FULL), APP1_SECRET)),
        ),
        (
            "another route",
            format!("/v2/customers/c1?{}", creds(FULL, "sk-guess")),
        ),
    ];
    for (what, target) in &cases {
        uniform.check(what, &get_raw(&s.gate, target, "").await);
    }
    // The same through headers.
    let out = get_raw(
        &s.gate,
        route,
        &format!("X-Bookeo-apiKey: {DISABLED}\r\nX-Bookeo-secretKey: {APP1_SECRET}\r\n"),
    )
    .await;
    uniform.check("disabled key in headers", &out);
    assert_eq!(s.up.count(), 0);

    // The same keys are good ones with the right secret.
    let r = get(&s
        .gate
        .url(&format!("{route}?{}", creds(APP2_KEY, APP2_SECRET))))
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let rec = s.up.single();
    assert_holder(&rec, "bookings", "app-2", "acct-9", ALL_BOOKINGS, "all");
    assert_no_keys(&rec);
}

// ---------------------------------------------------------------------------
// 5. Method overrides never widen a key

#[tokio::test]
async fn override_headers_are_stripped_and_the_real_method_is_checked() {
    let s = setup("").await;
    let out = get_raw(
        &s.gate,
        &format!("/v2/bookings/b1?{}", creds(READ, APP1_SECRET)),
        "X-HTTP-Method-Override: DELETE\r\nX-HTTP-Method: DELETE\r\n\
         X-Method-Override: DELETE\r\nx_http_method_override: DELETE\r\n",
    )
    .await;
    assert_eq!(statuses(&out), [200], "{out}");
    let rec = s.up.single();
    assert_eq!(rec.method, "GET");
    let overrides: Vec<_> = rec
        .headers
        .keys()
        .filter(|k| k.as_str().contains("method"))
        .collect();
    assert!(
        overrides.is_empty(),
        "override headers forwarded: {overrides:?}"
    );
    assert_holder(&rec, "bookings", "app-1", "acct-4", "bookings_r_all", "all");

    // The other way round: a POST dressed as a GET is still a write.
    let r = call(
        &s.gate,
        "POST",
        &format!("/v2/bookings/b1?{}", creds(READ, APP1_SECRET)),
        &[("content-type", "application/json")],
        "{}",
    )
    .await;
    assert_forbidden(&r, "bookings:rw");
    assert_eq!(s.up.count(), 1);
}

/// From the review: with the override headers taken out of
/// `proxy.strip_headers`, they are refused on API key requests rather than
/// forwarded; a body without a type is a form to Rack, so it needs every right.
#[tokio::test]
async fn override_headers_are_refused_when_not_stripped_and_untyped_bodies_are_forms() {
    let s = setup("[proxy]\nstrip_headers = [\"X-Debug-User\"]\n").await;
    let target = format!("/v2/bookings/b1?{}", creds(RW, APP1_SECRET));
    for h in [
        "X-HTTP-Method-Override",
        "x_http_method",
        "X-Method-Override",
    ] {
        let r = call(
            &s.gate,
            "POST",
            &target,
            &[(h, "DELETE"), ("content-type", "application/json")],
            "{}",
        )
        .await;
        assert_eq!(r.status, 400, "{h}: {r:?}");
        assert_eq!(r.error_code(), "bad_query");
    }
    // No Content-Type (or an empty one): Rack reads `_method` from the body.
    for headers in [vec![], vec![("content-type", "")]] {
        let r = call(&s.gate, "POST", &target, &headers, "_method=DELETE").await;
        assert_forbidden(&r, "bookings:rwd");
    }
    // `_method` cut at NUL by PHP.
    let r = call(
        &s.gate,
        "POST",
        &format!("{target}&_method%00=DELETE"),
        &[("content-type", "application/json")],
        "{}",
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(s.up.count(), 0);
}

#[tokio::test]
async fn a_method_parameter_in_the_query_is_refused_even_for_a_key_that_could() {
    let s = setup("").await;
    for key in [READ, FULL] {
        for param in [
            "_method=DELETE",
            "_METHOD=delete",
            "__Method=DELETE",
            "%5Fmethod=DELETE",
            "_method=GET",
        ] {
            for method in ["GET", "POST"] {
                let target = format!("/v2/bookings/b1?{}&{param}", creds(key, APP1_SECRET));
                let r = call(&s.gate, method, &target, &[], "").await;
                assert_eq!(r.status, 400, "{method} {param}: {r:?}");
                assert_eq!(r.error_code(), "bad_query", "{method} {param}");
            }
        }
    }
    assert_eq!(s.up.count(), 0);
    // Not a method override: forwarded as is.
    let r = with_key(&s.gate, "GET", "/v2/bookings/b1", READ).await;
    assert_eq!(r.status, 200);
    let target = format!(
        "/v2/bookings/b1?method=x&x_method=y&{}",
        creds(READ, APP1_SECRET)
    );
    let r = get(&s.gate.url(&target)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(last(&s.up).target, "/v2/bookings/b1?method=x&x_method=y");
}

/// Spellings of `_method` that lenient backends read as `_method` (PHP turns
/// a leading `.` or space into `_`; `;`-splitting backends see `;_method=`),
/// the same readings `strip_credentials` already guards against for keys.
#[tokio::test]
async fn folded_method_parameters_are_refused_too() {
    let s = setup("").await;
    let mut through = Vec::new();
    for param in [
        ".method=DELETE",
        "%20_method=DELETE",
        "+_method=DELETE",
        "a=1;_method=DELETE",
    ] {
        // A write key POSTs; the backend would run a DELETE.
        let target = format!("/v2/bookings/b1?{}&{param}", creds(RW, APP1_SECRET));
        let r = call(&s.gate, "POST", &target, &[], "{}").await;
        if r.status != 400 {
            through.push((param, r.status.as_u16(), last(&s.up).target));
        }
    }
    assert!(through.is_empty(), "forwarded: {through:#?}");
}

#[tokio::test]
async fn a_form_body_needs_every_right_on_a_by_method_route() {
    let s = setup("").await;
    let target = format!("/v2/bookings/b1?{}", creds(RW, APP1_SECRET));
    for ct in [
        "application/x-www-form-urlencoded",
        "Application/X-WWW-Form-Urlencoded; charset=utf-8",
        "multipart/form-data; boundary=x",
    ] {
        for method in ["POST", "PUT", "GET"] {
            let r = call(
                &s.gate,
                method,
                &target,
                &[("content-type", ct)],
                "_method=DELETE",
            )
            .await;
            assert_forbidden(&r, "bookings:rwd");
        }
    }
    assert_eq!(s.up.count(), 0);

    // A JSON body is a plain write.
    let r = call(
        &s.gate,
        "POST",
        &target,
        &[("content-type", "application/json")],
        r#"{"_method":"DELETE"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let rec = s.up.single();
    assert_eq!(rec.method, "POST");
    assert_eq!(&rec.body[..], br#"{"_method":"DELETE"}"#);
    assert_holder(
        &rec,
        "bookings",
        "app-1",
        "acct-5",
        "bookings_r_all,bookings_rw_own,bookings_rw_all",
        "all",
    );

    // A key with every right may send the form.
    let target = format!("/v2/bookings/b1?{}", creds(FULL, APP1_SECRET));
    let r = call(
        &s.gate,
        "POST",
        &target,
        &[("content-type", "application/x-www-form-urlencoded")],
        "_method=DELETE",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let rec = last(&s.up);
    assert_eq!(rec.method, "POST");
    assert_eq!(&rec.body[..], b"_method=DELETE");
    assert_eq!(rec.one("x-scope-reach").as_deref(), Some("all"));

    // A fixed requirement is no exception (a POST route beside a DELETE
    // route of the same path): a form needs every right there too, and
    // payments have no delete right, so a payment form is refused.
    let target = format!("/v2/payments/p1?{}", creds(PAY_RW, APP1_SECRET));
    let r = call(
        &s.gate,
        "POST",
        &target,
        &[("content-type", "application/x-www-form-urlencoded")],
        "amount=10",
    )
    .await;
    assert_forbidden(&r, "payments:rwd");
    assert_eq!(s.up.count(), 2);
}

// ---------------------------------------------------------------------------
// 6. Where a key is configured

#[tokio::test]
async fn keys_from_a_hash_the_environment_or_a_file_all_work() {
    const ENV_KEY: &str = "ENV0KEY0FROM0THE0ENVIRONMENT012";
    const FILE_KEY: &str = "FILE0KEY0FROM0A0FILE00000000013";
    const VAR: &str = "SCOPEGATE_TEST_API_KEYS_ENV_KEY_5E2B";
    const SECRET_VAR: &str = "SCOPEGATE_TEST_API_KEYS_APP_SECRET_5E2B";
    std::env::set_var(VAR, ENV_KEY);
    std::env::set_var(SECRET_VAR, "sk-from-env");
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("api.key");
    std::fs::write(&key_file, format!("{FILE_KEY}\n")).unwrap();

    let up = Upstream::start(Behavior::Ok).await;
    let extra = format!(
        r#"{ROUTES}
[[application]]
id = "app-env"
name = "From the environment"
secret_key_env = "{SECRET_VAR}"

{}
[[api_key]]
key_env = "{VAR}"
application = "app-env"
business = "acct-env"
permissions = ["bookings_rw_all"]

[[api_key]]
key_file = {:?}
application = "app-env"
business = "acct-file"
permissions = ["customers_r_all"]
"#,
        key_entry(OWN, "app-env", "acct-hash", &["bookings_rwd_own"], ""),
        key_file.display().to_string(),
    );
    let gate = Gate::start(&config(up.addr, &extra)).await;

    let cases = [
        (
            OWN,
            "/v2/bookings/b1",
            "acct-hash",
            "bookings_rw_own,bookings_rwd_own",
            "own:app-env",
        ),
        (
            ENV_KEY,
            "/v2/bookings/b1",
            "acct-env",
            "bookings_r_all,bookings_rw_own,bookings_rw_all",
            "all",
        ),
        (
            FILE_KEY,
            "/v2/customers/c1",
            "acct-file",
            "customers_r_all",
            "all",
        ),
    ];
    for (i, (key, path, business, perms, reach)) in cases.iter().enumerate() {
        let r = get(&gate.url(&format!("{path}?{}", creds(key, "sk-from-env")))).await;
        assert_eq!(r.status, 200, "{business}: {r:?}");
        let rec = last(&up);
        assert_eq!(up.count(), i + 1);
        let route = &path[4..path.rfind('/').unwrap()];
        assert_holder(&rec, route, "app-env", business, perms, reach);
        assert!(!rec.target.contains(key) && !rec.target.contains("sk-from-env"));
    }
    // The file's trailing newline is not part of the key; the env var's name is not a key.
    for key in [format!("{FILE_KEY}%0A"), VAR.to_string()] {
        let r = get(&gate.url(&format!("/v2/customers/c1?{}", creds(&key, "sk-from-env")))).await;
        assert_eq!(r.status, 401, "{key}: {r:?}");
    }
    assert_eq!(up.count(), 3);
}

// ---------------------------------------------------------------------------
// 7. apikeyinfo

const INFO: &str = "/v2/settings/apikeyinfo";

#[tokio::test]
async fn apikeyinfo_is_answered_by_scopegate_in_the_vendors_shape() {
    let s = setup("").await;
    let r = get(&s.gate.url(&format!("{INFO}?{}", creds(MIXED, APP1_SECRET)))).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        std::str::from_utf8(&r.body).unwrap(),
        r#"{"accountId":"acct-2","permissions":["bookings_r_all","bookings_rw_own"],"creationTime":"2026-01-01T00:00:00Z","application":{"id":"app-1","name":"Front desk"},"impliedPermissions":["bookings_r_all","bookings_rw_own"]}"#
    );
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["cache-control"], "no-store");

    // Through headers; a key without `created`; implied permissions expanded.
    let r = call(
        &s.gate,
        "GET",
        INFO,
        &[
            ("X-Bookeo-apiKey", APP2_KEY),
            ("X-Bookeo-secretKey", APP2_SECRET),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.json(),
        serde_json::json!({
            "accountId": "acct-9",
            "permissions": ["bookings_rwd_all"],
            "creationTime": null,
            "application": {"id": "app-2", "name": "Channel manager"},
            "impliedPermissions": ALL_BOOKINGS.split(',').collect::<Vec<_>>(),
        })
    );
    // The path as clients may spell it still reaches scopegate, not the upstream.
    let r = get(&s.gate.url(&format!(
        "/v2/settings/./apikeyinfo?{}",
        creds(OWN, APP1_SECRET)
    )))
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["accountId"], "acct-1");
    assert_eq!(s.up.count(), 0, "apikeyinfo reached the upstream");

    // Other methods.
    let r = call(
        &s.gate,
        "POST",
        &format!("{INFO}?{}", creds(MIXED, APP1_SECRET)),
        &[],
        "{}",
    )
    .await;
    assert_eq!(r.status, 405, "{r:?}");
    assert_eq!(r.error_code(), "method_not_allowed");
    assert_eq!(r.headers["allow"], "GET, HEAD");
    let r = call(
        &s.gate,
        "DELETE",
        &format!("{INFO}?{}", creds(FULL, APP1_SECRET)),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 405, "{r:?}");

    // Ambiguous and half-given keys, as on a route.
    let r = get(&s.gate.url(&format!(
        "{INFO}?{}&apiKey={READ}",
        creds(MIXED, APP1_SECRET)
    )))
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.error_code(), "ambiguous_credential");
    let r = get(&s.gate.url(&format!("{INFO}?apiKey={MIXED}"))).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.error_code(), "bad_query");
    assert_eq!(s.up.count(), 0, "apikeyinfo reached the upstream");

    // The public route next to it does reach the upstream.
    let r = get(&s.gate.url("/v2/settings/other")).await;
    assert_eq!(r.status, 200);
    assert_eq!(s.up.single().target, "/v2/settings/other");
}

#[tokio::test]
async fn apikeyinfo_refuses_bad_keys_with_the_routes_401() {
    let s = setup("").await;
    let mut uniform = Uniform401::default();
    uniform.check(
        "route, wrong secret",
        &get_raw(
            &s.gate,
            &format!("/v2/bookings/b1?{}", creds(FULL, "sk-guess")),
            "",
        )
        .await,
    );
    let cases = [
        ("no credential", INFO.to_string()),
        (
            "unknown key",
            format!("{INFO}?{}", creds("NO0SUCH0KEY", APP1_SECRET)),
        ),
        (
            "wrong secret",
            format!("{INFO}?{}", creds(FULL, "sk-guess")),
        ),
        (
            "disabled key",
            format!("{INFO}?{}", creds(DISABLED, APP1_SECRET)),
        ),
        (
            "app-2's key, app-1's secret",
            format!("{INFO}?{}", creds(APP2_KEY, APP1_SECRET)),
        ),
    ];
    for (what, target) in &cases {
        uniform.check(
            &format!("apikeyinfo, {what}"),
            &get_raw(&s.gate, target, "").await,
        );
    }
    assert_eq!(s.up.count(), 0);
}

// ---------------------------------------------------------------------------
// 8. Configuration errors

/// The error text of a configuration with [`APPLICATIONS`] and `extra`.
fn config_error(extra: &str) -> String {
    let toml = config(
        "127.0.0.1:9".parse().unwrap(),
        &format!("{APPLICATIONS}\n{extra}"),
    );
    match scopegate::Config::from_toml(&toml) {
        Ok(_) => panic!("accepted:\n{extra}"),
        Err(e) => e.to_string(),
    }
}

const PUBLIC_FIRST: &str = r#"
[[route]]
name = "open"
path = "/open"
auth = ["public"]
upstream = "backend"
"#;

fn one_key(perms: &[&str]) -> String {
    key_entry(FULL, "app-1", "acct-1", perms, "")
}

#[test]
fn the_test_configuration_itself_is_valid() {
    let toml = config(
        "127.0.0.1:9".parse().unwrap(),
        &format!("{ROUTES}\n{APPLICATIONS}\n{}", keys()),
    );
    scopegate::Config::from_toml(&toml).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn an_api_key_route_must_say_what_it_requires() {
    let e = config_error(&format!(
        r#"{PUBLIC_FIRST}
[[route]]
name = "bookings"
path = "/v2/bookings/*"
auth = ["api-key"]
upstream = "backend"
{}"#,
        one_key(&["bookings_r_all"])
    ));
    assert!(e.contains("route[1].require"), "{e}");
}

#[test]
fn require_only_applies_to_api_key_routes() {
    let e = config_error(&format!(
        r#"
[[route]]
name = "open"
path = "/open"
auth = ["public"]
upstream = "backend"
require = "bookings"
{}"#,
        one_key(&["bookings_r_all"])
    ));
    assert!(e.contains("route[0].require"), "{e}");
    assert!(e.contains("only applies to api-key routes"), "{e}");
}

#[test]
fn a_requirement_must_name_an_area_and_rights() {
    for (require, reason) in [
        ("rooms", "unknown area \"rooms\""),
        ("bookings:w", "unknown rights \"w\""),
    ] {
        let e = config_error(&format!(
            r#"{PUBLIC_FIRST}
[[route]]
name = "bookings"
path = "/v2/bookings/*"
auth = ["api-key"]
upstream = "backend"
require = "{require}"
{}"#,
            one_key(&["bookings_r_all"])
        ));
        assert!(e.contains("route[1].require"), "{require}: {e}");
        assert!(e.contains(reason), "{require}: {e}");
    }
}

#[test]
fn unknown_permissions_are_named_with_the_reason() {
    for (perm, reason) in [
        ("bookings_rw_mine", "unknown reach \"mine\""),
        ("rooms_r_all", "unknown area \"rooms\""),
        ("bookings_w_all", "unknown rights \"w\""),
        (
            "bookings_r_own",
            "\"bookings_r_own\" is not a permission the vendor offers",
        ),
        (
            "payments_rwd_all",
            "\"payments_rwd_all\" is not a permission the vendor offers",
        ),
        ("bookings_rw", "\"bookings_rw\" is not of the form"),
    ] {
        let e = config_error(&one_key(&["bookings_r_all", perm]));
        assert!(e.contains("api_key[0].permissions[1]"), "{perm}: {e}");
        assert!(e.contains(reason), "{perm}: {e}");
    }
}

#[test]
fn a_key_hash_must_be_64_hex_digits() {
    let good = sha256_hex(FULL);
    for bad in [
        good.replace(|c: char| c.is_ascii_digit(), "z"),
        good[..63].to_string(),
        format!("{good}0"),
        String::new(),
    ] {
        let e = config_error(&one_key(&["bookings_r_all"]).replace(&good, &bad));
        assert!(e.contains("api_key[0].key_sha256"), "{bad}: {e}");
        assert!(e.contains("64 hex digits"), "{bad}: {e}");
    }
}

/// Failed secrets count per client address: one address guessing is
/// refused past the limit, the key's holder elsewhere is not (an API key is
/// not a secret: a per-key limit would let anyone lock its holder out).
#[tokio::test]
async fn failed_secrets_are_limited_per_client_not_per_key() {
    let s = setup(
        "[proxy]\ntrusted_proxies = [\"127.0.0.1/32\"]\n[failures]\nlimit = 3\nwindow = \"1m\"\n",
    )
    .await;
    let guess = format!("/v2/bookings/b1?{}", creds(FULL, "sk-guess"));
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = call(
            &s.gate,
            "GET",
            &guess,
            &[("x-forwarded-for", "198.51.100.1")],
            "",
        )
        .await;
        statuses.push(r.status.as_u16());
        if r.status == 429 {
            assert_eq!(r.error_code(), "too_many_failures");
            assert_eq!(r.headers["retry-after"], "60");
        }
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    // The limited address is refused even with the right secret...
    let right = format!("/v2/bookings/b1?{}", creds(FULL, APP1_SECRET));
    let r = call(
        &s.gate,
        "GET",
        &right,
        &[("x-forwarded-for", "198.51.100.1")],
        "",
    )
    .await;
    assert_eq!(r.status, 429);
    // ...while the key's holder elsewhere is served.
    let r = call(
        &s.gate,
        "GET",
        &right,
        &[("x-forwarded-for", "198.51.100.9")],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    // A missing secret (400) and no credential at all are not failed guesses.
    for _ in 0..5 {
        let r = call(
            &s.gate,
            "GET",
            "/v2/bookings/b1",
            &[("x-forwarded-for", "198.51.100.7")],
            "",
        )
        .await;
        assert_eq!(r.status, 401);
    }
    let r = call(
        &s.gate,
        "GET",
        &right,
        &[("x-forwarded-for", "198.51.100.7")],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(s.up.count(), 2);
}
