//! SSO tokens (BookingBug) through real listeners: every carrier (query,
//! header, cookie) and both formats, the three `expires` shapes on a clock the
//! test moves, one uniform 401 for every bad token, company selection,
//! ambiguity, the per-client failure limit, the optional session (cookie or
//! header, idle, lifetime cap, revocation), two instances sharing sessions
//! through a real redis-server, and key rotation. Each test asserts what the
//! upstream received, not only the status.
//!
//! Tokens are minted with the library (`mint_legacy`, `mint_v2`); their
//! `expires` is computed from the gate's clock.

mod common;

use std::time::{Duration, Instant};

use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    Engine as _,
};
use common::{redis::RedisServer, *};
use http::Request;
use http_body_util::Full;
use scopegate::{
    auth::sso::{mint_legacy, mint_v2, Keys},
    clock::Clock,
};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// Companies, routes, setup

const ACME: &str = "37000";
const ACME_KEY: &str = "sk_acme_7f3a9c1e5b2d4f60";
const GLOBEX: &str = "37001";
const GLOBEX_KEY: &str = "sk_globex_0b1c2d3e4f5a6978";

/// Two companies with the defaults: legacy accepted, zone-less `expires` read
/// as UTC, 30 s leeway, identity `email`, no names forwarded.
const COMPANIES: &str = r#"
[[sso_company]]
company_id = "37000"
secure_key = "sk_acme_7f3a9c1e5b2d4f60"

[[sso_company]]
company_id = "37001"
secure_key = "sk_globex_0b1c2d3e4f5a6978"
"#;

/// The widget's API behind SSO.
const ROUTES: &str = r#"
[[route]]
name = "widget"
path = "/v2/*"
auth = ["sso"]
upstream = "backend"
"#;

/// Every scope header a customer with a reference gets, nothing else.
/// A public route, where no scheme consumes a credential.
const PUBLIC_ROUTE: &str = r#"
[[route]]
name = "open"
path = "/open/*"
auth = ["public"]
upstream = "backend"
"#;

const SCOPE_HEADERS: [&str; 6] = [
    "x-scope-business",
    "x-scope-credential",
    "x-scope-customer-email",
    "x-scope-customer-reference",
    "x-scope-route",
    "x-scope-subject",
];

const LEEWAY: u64 = 30;

struct Setup {
    up: Upstream,
    gate: Gate,
    clock: Clock,
}

/// A gate with [`ROUTES`], [`COMPANIES`] and `extra` (more companies,
/// `[sso.*]`, `[proxy]`, `[store]`) on a clock the test moves.
async fn setup(extra: &str) -> Setup {
    let up = Upstream::start(Behavior::Ok).await;
    let clock = Clock::system();
    let gate = Gate::start_with_clock(&toml(&up, extra), clock.clone()).await;
    Setup { up, gate, clock }
}

fn toml(up: &Upstream, extra: &str) -> String {
    config(up.addr, &format!("{ROUTES}\n{COMPANIES}\n{extra}"))
}

// ---------------------------------------------------------------------------
// Tokens

/// `expires` as the C# generator writes it: UTC with `Z`.
fn utc(unix: u64) -> String {
    chrono::DateTime::from_timestamp(unix as i64, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A customer's payload, expiring at `expires`.
fn claims(email: &str, expires: &str) -> Value {
    json!({
        "first_name": "Ann",
        "last_name": "Lee",
        "email": email,
        "mobile": "07700900123",
        "reference": "C-1001",
        "expires": expires,
    })
}

/// Ann's payload, valid for an hour from the clock's now.
fn ann(clock: &Clock) -> Value {
    claims("ann@example.com", &utc(clock.now() + 3600))
}

fn keys(company: &str, secure_key: &str) -> Keys {
    Keys::derive(secure_key.as_bytes(), company)
}

/// A legacy token, URL-encoded once (fit for a query, header or cookie).
fn legacy(company: &str, secure_key: &str, payload: &Value) -> String {
    legacy_bytes(company, secure_key, payload.to_string().as_bytes())
}

fn legacy_bytes(company: &str, secure_key: &str, plain: &[u8]) -> String {
    mint_legacy(plain, &keys(company, secure_key).legacy)
}

/// A `v2` token (URL-safe as it is).
fn v2(company: &str, secure_key: &str, payload: &Value) -> String {
    mint_v2(
        payload.to_string().as_bytes(),
        &keys(company, secure_key).v2,
    )
}

/// Ciphertext bytes as a legacy token's text: base64, URL-encoded once.
fn legacy_text(ciphertext: &[u8]) -> String {
    percent_encoding::utf8_percent_encode(
        &STANDARD.encode(ciphertext),
        percent_encoding::NON_ALPHANUMERIC,
    )
    .to_string()
}

/// `blocks` encrypted with a company's legacy key and no padding added, so
/// that decryption finds whatever padding the last block ends with.
fn legacy_unpadded(company: &str, secure_key: &str, blocks: &[u8]) -> String {
    use aes::cipher::{block_padding::NoPadding, BlockEncryptMut, KeyIvInit};
    let key = keys(company, secure_key).legacy;
    let ct = cbc::Encryptor::<aes::Aes128>::new(&key.into(), &[0u8; 16].into())
        .encrypt_padded_vec_mut::<NoPadding>(blocks);
    legacy_text(&ct)
}

// ---------------------------------------------------------------------------
// Requests and assertions

/// A GET with extra headers, through hyper.
async fn get_with(gate: &Gate, target: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = Request::get(gate.url(target));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(req.body(Full::default()).unwrap()).await
}

/// A GET carrying `token` in the query.
async fn with_token(gate: &Gate, token: &str) -> Reply {
    get(&gate.url(&format!("/v2/bookings?sso-token={token}"))).await
}

/// `POST /sessions/revoke?company=<id>` on a gate's admin listener.
async fn revoke(gate: &Gate, company: &str) -> Reply {
    let admin = gate.admin.expect("admin listener");
    send(
        Request::post(format!("http://{admin}/sessions/revoke?company={company}"))
            .body(Full::default())
            .unwrap(),
    )
    .await
}

/// The customer headers the upstream got, by email identity.
fn assert_customer(rec: &Recorded, company: &str, email: &str) {
    assert_eq!(rec.one("x-scope-credential").as_deref(), Some("sso"));
    assert_eq!(rec.one("x-scope-business").as_deref(), Some(company));
    assert_eq!(rec.one("x-scope-customer-email").as_deref(), Some(email));
    assert_eq!(
        rec.one("x-scope-subject"),
        Some(format!("customer.email={email}"))
    );
    assert_eq!(rec.one("x-scope-route").as_deref(), Some("widget"));
}

/// Neither the token (as sent or decoded) nor any carrier of it reached the
/// upstream: not in the target, not in a header name or value.
fn assert_no_token(rec: &Recorded, token: &str) {
    let decoded = percent_encoding::percent_decode_str(token)
        .decode_utf8()
        .unwrap()
        .into_owned();
    let target = rec.target.to_ascii_lowercase();
    assert!(
        !target.contains("sso") && !rec.target.contains(token) && !rec.target.contains(&decoded),
        "token in the upstream target: {}",
        rec.target
    );
    for (name, value) in &rec.headers {
        let v = String::from_utf8_lossy(value.as_bytes());
        assert!(
            !v.contains(token) && !v.contains(&decoded) && !v.contains("sso-token"),
            "token in upstream header {name}: {v}"
        );
        assert_ne!(name.as_str().replace('_', "-"), "x-sso-token");
    }
}

/// The last request the upstream received.
fn last(up: &Upstream) -> Recorded {
    up.records().pop().expect("the upstream received a request")
}

// ---------------------------------------------------------------------------
// 1–2. Carriers, formats, what the upstream gets

#[tokio::test]
async fn a_legacy_query_token_becomes_exact_scope_headers_and_nothing_else_changes() {
    let s = setup("").await;
    let token = legacy(ACME, ACME_KEY, &ann(&s.clock));
    // Other parameters in shapes a re-encoding would change; the token in
    // its own spelling and in others a lenient backend would read.
    let target = format!(
        "/v2/bookings?date=2027-01-15&q=a%20b+c%2B&sso-token={token}&ssoToken=x&SSO_TOKEN=y&empty=&page=2"
    );
    let out = get_raw(
        &s.gate,
        &target,
        "X-Scope-Business: 99999\r\n\
         X-Scope-Customer-Email: mallory@example.com\r\n\
         x_scope_subject: customer.email=mallory@example.com\r\n\
         X-Scope-Customer-First-Name: Mallory\r\n\
         Cookie: theme=dark;  lang=en-GB\r\n",
    )
    .await;
    assert_eq!(statuses(&out), [200], "{out}");

    let rec = s.up.single();
    assert_eq!(
        rec.target,
        "/v2/bookings?date=2027-01-15&q=a%20b+c%2B&empty=&page=2"
    );
    assert_customer(&rec, ACME, "ann@example.com");
    assert_eq!(
        rec.one("x-scope-customer-reference").as_deref(),
        Some("C-1001")
    );
    let mut scope = rec.names_with_prefix("x-scope-");
    scope.sort();
    assert_eq!(scope, SCOPE_HEADERS, "client-sent scope headers are gone");
    assert_eq!(rec.all("cookie"), ["theme=dark;  lang=en-GB"]);
    assert_no_token(&rec, &token);
    assert!(!out.to_ascii_lowercase().contains("set-cookie"));
}

#[tokio::test]
async fn the_header_and_cookie_carriers_and_a_v2_query_token() {
    let s = setup("").await;

    // Header: the value is URL-decoded once, as the query's.
    let token = legacy(ACME, ACME_KEY, &ann(&s.clock));
    let r = get_with(
        &s.gate,
        "/v2/bookings?page=1",
        &[("x-sso-token", &token), ("x-other", "kept")],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let rec = last(&s.up);
    assert_customer(&rec, ACME, "ann@example.com");
    assert_eq!(rec.target, "/v2/bookings?page=1");
    assert_eq!(rec.one("x-other").as_deref(), Some("kept"));
    assert_no_token(&rec, &token);

    // Cookie: the token's cookie goes, the others stay as sent.
    let token = legacy(GLOBEX, GLOBEX_KEY, &ann(&s.clock));
    let r = get_with(
        &s.gate,
        "/v2/bookings",
        &[("cookie", &format!("a=1; sso-token={token}; b=two"))],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let rec = last(&s.up);
    assert_customer(&rec, GLOBEX, "ann@example.com");
    assert_eq!(rec.all("cookie"), ["a=1; b=two"]);
    assert_no_token(&rec, &token);

    // A cookie header holding only the token goes entirely.
    let token = legacy(ACME, ACME_KEY, &ann(&s.clock));
    let r = get_with(
        &s.gate,
        "/v2/bookings",
        &[("cookie", &format!("sso-token={token}"))],
    )
    .await;
    assert_eq!(r.status, 200);
    let rec = last(&s.up);
    assert!(rec.all("cookie").is_empty());

    // v2 in the query.
    let token = v2(GLOBEX, GLOBEX_KEY, &ann(&s.clock));
    assert!(token.starts_with("v2."));
    let r = with_token(&s.gate, &token).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let rec = last(&s.up);
    assert_customer(&rec, GLOBEX, "ann@example.com");
    assert_eq!(rec.target, "/v2/bookings");
    assert_no_token(&rec, &token);
    assert_eq!(s.up.count(), 4);
}

/// Spellings of the token's cookie and header that a lenient backend reads as
/// the same name are stripped too, and so are the default carriers when the
/// configuration turns them off (they still carry a credential).
#[tokio::test]
async fn lookalike_cookie_names_and_switched_off_carriers_are_stripped() {
    let s = setup("[sso]\nheader = \"\"\ncookie = \"\"\n").await;
    let token = legacy(ACME, ACME_KEY, &ann(&s.clock));
    let r = get_with(
        &s.gate,
        &format!("/v2/bookings?sso-token={token}"),
        &[
            (
                "cookie",
                &format!("SSO-TOKEN={token}; sso_token={token}; ssoToken={token}; keep=1"),
            ),
            ("X_SSO_Token", &token),
            ("x-sso-token", &token),
        ],
    )
    .await;
    // The carriers are off, so only the query counts: no ambiguity.
    assert_eq!(r.status, 200, "{:?}", r.body);
    let rec = last(&s.up);
    assert_customer(&rec, ACME, "ann@example.com");
    assert_eq!(rec.all("cookie"), ["keep=1"]);
    assert_no_token(&rec, &token);
}

/// From the review: cookie spellings that old Rack (`,` as a separator,
/// unescaped names) and PHP (URL-decoded names) read as `sso-token`, on a
/// public route where nothing consumes the credential.
#[tokio::test]
async fn cookie_spellings_lenient_backends_read_as_the_token_are_stripped() {
    let s = setup(PUBLIC_ROUTE).await;
    let token = legacy(ACME, ACME_KEY, &ann(&s.clock));
    for cookie in [
        format!("theme=dark, sso-token={token}"),
        format!("sso%2Dtoken={token}"),
        format!("sso%2dtoken={token}; a=1"),
        format!("SSO_Token={token}; a=1"),
    ] {
        let r = get_with(&s.gate, "/open/x", &[("cookie", &cookie)]).await;
        assert_eq!(r.status, 200);
        let rec = last(&s.up);
        assert_no_token(&rec, &token);
    }
    assert_eq!(last(&s.up).all("cookie"), ["a=1"]);
}

/// From the review: an SSO session token in the carrier scopegate does not
/// read (the handout header sent as a request header, the default session
/// cookie under `handout = "header"`) is stripped all the same.
#[tokio::test]
async fn a_session_token_in_another_carrier_is_stripped() {
    let s = setup(&format!(
        "{PUBLIC_ROUTE}\n[sso.session]\nhandout = \"header\"\n"
    ))
    .await;
    let r = with_token(&s.gate, &legacy(ACME, ACME_KEY, &ann(&s.clock))).await;
    assert_eq!(r.status, 200);
    let session = r.headers["x-sso-session"].to_str().unwrap().to_string();
    let r = get_with(
        &s.gate,
        "/open/x",
        &[
            ("x-sso-session", &session),
            ("X_SSO_Session", &session),
            ("cookie", &format!("scopegate_sso={session}; keep=1")),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let rec = last(&s.up);
    assert!(
        !format!("{:?}", rec.headers).contains(&session),
        "session token reached the upstream: {:?}",
        rec.headers
    );
    assert_eq!(rec.all("cookie"), ["keep=1"]);
}

// ---------------------------------------------------------------------------
// 3. expires

#[tokio::test]
async fn the_three_expires_shapes_are_read_in_the_right_zone() {
    // Zones without daylight saving time, one on each side of UTC, so that a
    // zone-less time misread as UTC is refused now (west) or accepted too
    // long (east).
    let s = setup(
        r#"
[[sso_company]]
company_id = "37010"
secure_key = "sk_west"
timezone = "-03:00"

[[sso_company]]
company_id = "37011"
secure_key = "sk_east"
timezone = "Asia/Kolkata"
"#,
    )
    .await;
    let expires = s.clock.now() + 3600;
    let at = chrono::DateTime::from_timestamp(expires as i64, 0).unwrap();
    let naive = |offset_secs: i32| {
        at.with_timezone(&chrono::FixedOffset::east_opt(offset_secs).unwrap())
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string()
    };
    let kolkata = at
        .with_timezone(&chrono_tz::Asia::Kolkata)
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let plus_0530 = at
        .with_timezone(&chrono::FixedOffset::east_opt(19_800).unwrap())
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string();
    assert!(plus_0530.ends_with("+05:30"));

    let cases = [
        ("Z", ACME, ACME_KEY, utc(expires)),
        ("+05:30 offset", ACME, ACME_KEY, plus_0530),
        ("zone-less, company in UTC", GLOBEX, GLOBEX_KEY, naive(0)),
        (
            "zone-less, company at -03:00",
            "37010",
            "sk_west",
            naive(-3 * 3600),
        ),
        (
            "zone-less, company in Asia/Kolkata",
            "37011",
            "sk_east",
            kolkata,
        ),
    ];
    let tokens: Vec<(&str, &str, String)> = cases
        .iter()
        .map(|(what, company, key, exp)| {
            let payload = claims("ann@example.com", exp);
            (*what, *company, legacy(company, key, &payload))
        })
        .collect();

    let check = |want: u16| {
        let (gate, up, tokens) = (&s.gate, &s.up, &tokens);
        async move {
            for (what, company, token) in tokens {
                let before = up.count();
                let r = with_token(gate, token).await;
                assert_eq!(r.status, want, "{what}: {:?}", r.body);
                if want == 200 {
                    assert_eq!(last(up).one("x-scope-business").as_deref(), Some(*company));
                } else {
                    assert_eq!(up.count(), before, "{what}: forwarded");
                }
            }
        }
    };
    check(200).await;
    // Within the leeway after expiry: still accepted.
    s.clock.advance(Duration::from_secs(3600 + LEEWAY - 5));
    check(200).await;
    // Past it: refused.
    s.clock.advance(Duration::from_secs(10));
    check(401).await;
}

// ---------------------------------------------------------------------------
// 4. One 401 for every bad token

#[tokio::test]
async fn every_bad_token_gets_the_same_401_and_nothing_is_forwarded() {
    let s = setup(
        r#"
[[sso_company]]
company_id = "38000"
secure_key = "sk_v2only"
accept_legacy = false

# Counting is tested on its own; here every cause must reach the decoder.
[failures]
limit = 0
"#,
    )
    .await;
    let now = s.clock.now();
    let good = ann(&s.clock);
    let with = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut p = good.clone();
        f(p.as_object_mut().unwrap());
        legacy(ACME, ACME_KEY, &p)
    };
    let flipped = {
        let t = v2(ACME, ACME_KEY, &good);
        let mut raw = URL_SAFE_NO_PAD.decode(&t[3..]).unwrap();
        raw[20] ^= 0x01;
        format!("v2.{}", URL_SAFE_NO_PAD.encode(raw))
    };
    let mut last_block = [b'x'; 16];
    last_block[15] = 0; // PKCS#7 never pads with 0

    let cases: Vec<(&str, String, &str)> = vec![
        ("not base64", "not_base64%21".into(), ""),
        ("not a multiple of 16 bytes", legacy_text(&[7u8; 20]), ""),
        (
            "bad padding",
            legacy_unpadded(ACME, ACME_KEY, &last_block),
            "",
        ),
        (
            "bad UTF-8 plaintext",
            legacy_bytes(ACME, ACME_KEY, b"{\"email\":\"\xff\xfe\"}"),
            "",
        ),
        (
            "not JSON",
            legacy_bytes(ACME, ACME_KEY, b"first_name=Ann"),
            "",
        ),
        (
            "a JSON array",
            legacy_bytes(ACME, ACME_KEY, b"[\"ann@example.com\"]"),
            "",
        ),
        (
            "no email",
            with(&|m| {
                m.remove("email");
            }),
            "",
        ),
        (
            "email not a string",
            with(&|m| {
                m.insert("email".into(), json!(5));
            }),
            "",
        ),
        (
            "control character in a name",
            with(&|m| {
                m.insert("first_name".into(), json!("An\u{7}n"));
            }),
            "",
        ),
        (
            "expired",
            with(&|m| {
                m.insert("expires".into(), json!(utc(now - 3600)));
            }),
            "",
        ),
        (
            "unknown company named",
            legacy(ACME, ACME_KEY, &good),
            "X-SSO-Company: 99999\r\n",
        ),
        ("another company's key", legacy(ACME, GLOBEX_KEY, &good), ""),
        (
            "legacy token to a v2-only company",
            legacy("38000", "sk_v2only", &good),
            "X-SSO-Company: 38000\r\n",
        ),
        (
            "legacy token to a v2-only company, by trial",
            legacy("38000", "sk_v2only", &good),
            "",
        ),
        ("v2 token with a flipped bit", flipped, ""),
        ("empty token", String::new(), ""),
    ];

    let mut uniform = Uniform401::default();
    for (what, token, extra) in &cases {
        let out = get_raw(&s.gate, &format!("/v2/bookings?sso-token={token}"), extra).await;
        uniform.check(what, &out);
        assert!(out.contains(r#""code":"unauthorized""#), "{what}: {out}");
    }
    // The same refusal through the other carriers and with none at all.
    let token = legacy(ACME, GLOBEX_KEY, &good);
    for (what, extra) in [
        (
            "bad token in the header",
            format!("X-SSO-Token: {token}\r\n"),
        ),
        (
            "bad token in a cookie",
            format!("Cookie: sso-token={token}\r\n"),
        ),
        ("no token", String::new()),
    ] {
        uniform.check(what, &get_raw(&s.gate, "/v2/bookings", &extra).await);
    }
    assert_eq!(s.up.count(), 0, "the upstream received nothing");

    // And the unmodified token does open (the cases fail for their cause).
    assert_eq!(
        with_token(&s.gate, &legacy(ACME, ACME_KEY, &good))
            .await
            .status,
        200
    );
}

// ---------------------------------------------------------------------------
// 5–6. Company selection, identity, names

#[tokio::test]
async fn the_company_is_found_by_trial_or_pinned_by_the_company_header() {
    let s = setup("").await;
    let payload = ann(&s.clock);
    for (company, key, other) in [(ACME, ACME_KEY, GLOBEX), (GLOBEX, GLOBEX_KEY, ACME)] {
        for token in [legacy(company, key, &payload), v2(company, key, &payload)] {
            // By trial: every key of every company.
            let r = with_token(&s.gate, &token).await;
            assert_eq!(r.status, 200);
            assert_customer(&last(&s.up), company, "ann@example.com");

            // Named: only that company's keys.
            let before = s.up.count();
            let r = get_with(
                &s.gate,
                &format!("/v2/bookings?sso-token={token}"),
                &[("x-sso-company", company)],
            )
            .await;
            assert_eq!(r.status, 200);
            let rec = last(&s.up);
            assert_customer(&rec, company, "ann@example.com");
            assert_eq!(s.up.count(), before + 1);

            // Naming the other company: its keys do not open the token.
            let r = get_with(
                &s.gate,
                &format!("/v2/bookings?sso-token={token}"),
                &[("x-sso-company", other)],
            )
            .await;
            assert_eq!(r.status, 401);
            assert_eq!(r.error_code(), "unauthorized");
            assert_eq!(s.up.count(), before + 1);
        }
    }
}

#[tokio::test]
async fn reference_identity_and_forwarded_names() {
    let s = setup(
        r#"
[[sso_company]]
company_id = "37020"
secure_key = "sk_by_reference"
identity = "reference"

[[sso_company]]
company_id = "37021"
secure_key = "sk_with_names"
forward_names = true
"#,
    )
    .await;
    let payload = ann(&s.clock);

    let r = with_token(&s.gate, &legacy("37020", "sk_by_reference", &payload)).await;
    assert_eq!(r.status, 200);
    let rec = last(&s.up);
    assert_eq!(
        rec.one("x-scope-subject").as_deref(),
        Some("customer.reference=C-1001")
    );
    assert_eq!(
        rec.one("x-scope-customer-reference").as_deref(),
        Some("C-1001")
    );
    assert_eq!(
        rec.one("x-scope-customer-email").as_deref(),
        Some("ann@example.com")
    );
    assert_eq!(rec.one("x-scope-business").as_deref(), Some("37020"));
    assert!(rec.one("x-scope-customer-first-name").is_none());

    // The identity key missing from the token: refused.
    let mut no_ref = payload.clone();
    no_ref.as_object_mut().unwrap().remove("reference");
    let before = s.up.count();
    let r = with_token(&s.gate, &legacy("37020", "sk_by_reference", &no_ref)).await;
    assert_eq!(r.status, 401);
    assert_eq!(s.up.count(), before);
    // ...but fine where the identity is the email, without a reference header.
    let r = with_token(&s.gate, &v2(ACME, ACME_KEY, &no_ref)).await;
    assert_eq!(r.status, 200);
    let rec = last(&s.up);
    assert_customer(&rec, ACME, "ann@example.com");
    assert!(rec.one("x-scope-customer-reference").is_none());

    // Names forwarded where configured.
    let r = with_token(&s.gate, &legacy("37021", "sk_with_names", &payload)).await;
    assert_eq!(r.status, 200);
    let rec = last(&s.up);
    assert_customer(&rec, "37021", "ann@example.com");
    assert_eq!(
        rec.one("x-scope-customer-first-name").as_deref(),
        Some("Ann")
    );
    assert_eq!(
        rec.one("x-scope-customer-last-name").as_deref(),
        Some("Lee")
    );
}

// ---------------------------------------------------------------------------
// 7. Ambiguity

#[tokio::test]
async fn a_token_in_two_places_or_twice_is_ambiguous() {
    let s = setup("").await;
    let t = legacy(ACME, ACME_KEY, &ann(&s.clock));
    let (bare, in_query, twice) = (
        "/v2/bookings".to_string(),
        format!("/v2/bookings?sso-token={t}"),
        format!("/v2/bookings?sso-token={t}&sso-token={t}"),
    );
    let (header, cookie) = (
        format!("X-SSO-Token: {t}\r\n"),
        format!("Cookie: sso-token={t}\r\n"),
    );
    let cases = [
        ("query and header", &in_query, header.clone()),
        ("query and cookie", &in_query, cookie.clone()),
        ("header and cookie", &bare, header + &cookie),
        ("twice in the query", &twice, String::new()),
        (
            "twice in the cookies",
            &bare,
            format!("Cookie: sso-token={t}; sso-token={t}\r\n"),
        ),
    ];
    for (what, target, extra) in &cases {
        let out = get_raw(&s.gate, target, extra).await;
        assert_eq!(statuses(&out), [400], "{what}: {out}");
        assert!(
            out.contains(r#""code":"ambiguous_credential""#),
            "{what}: {out}"
        );
    }
    assert_eq!(s.up.count(), 0);
}

// ---------------------------------------------------------------------------
// 8. Failure limit

#[tokio::test]
async fn past_the_failure_limit_even_a_valid_token_gets_429() {
    let s = setup("[failures]\nlimit = 3\nwindow = \"1m\"\npenalty = \"reject\"\n").await;
    let good = legacy(ACME, ACME_KEY, &ann(&s.clock));
    let bad = legacy(ACME, GLOBEX_KEY, &ann(&s.clock));

    // Only failures count: a client using a valid token is never limited.
    for _ in 0..5 {
        assert_eq!(with_token(&s.gate, &good).await.status, 200);
    }
    for _ in 0..3 {
        assert_eq!(with_token(&s.gate, &bad).await.status, 401);
    }
    for token in [&good, &bad] {
        let r = with_token(&s.gate, token).await;
        assert_eq!(r.status, 429);
        assert_eq!(r.error_code(), "too_many_failures");
        assert_eq!(r.headers["retry-after"], "60");
    }
    assert_eq!(s.up.count(), 5, "nothing forwarded past the limit");
}

#[tokio::test]
async fn clients_behind_a_trusted_proxy_are_counted_apart() {
    let s = setup(
        r#"
[proxy]
trusted_proxies = ["127.0.0.1/32"]

[failures]
limit = 3
window = "1m"
"#,
    )
    .await;
    let good = legacy(ACME, ACME_KEY, &ann(&s.clock));
    // Distinct bad tokens: one token's forgeries share a family budget of
    // their own (src/limit.rs); here only addresses are counted.
    let mut n = 0;
    let mut bad = || {
        n += 1;
        legacy(
            ACME,
            GLOBEX_KEY,
            &claims(&format!("ann{n}@example.com"), &utc(s.clock.now() + 3600)),
        )
    };
    let from = |xff: &'static str, token: &str| {
        let target = format!("/v2/bookings?sso-token={token}");
        let gate = &s.gate;
        async move { get_with(gate, &target, &[("x-forwarded-for", xff)]).await }
    };

    for _ in 0..3 {
        assert_eq!(from("198.51.100.7", &bad()).await.status, 401);
    }
    assert_eq!(from("198.51.100.7", &good).await.status, 429);
    // Prepending another address does not make another client: the nearest
    // untrusted entry is.
    assert_eq!(from("198.51.100.8, 198.51.100.7", &good).await.status, 429);
    assert_eq!(s.up.count(), 0);

    let r = from("198.51.100.8", &good).await;
    assert_eq!(r.status, 200);
    let rec = s.up.single();
    assert_customer(&rec, ACME, "ann@example.com");
    assert_eq!(
        rec.one("x-forwarded-for").as_deref(),
        Some("198.51.100.8, 127.0.0.1")
    );

    // IPv6 clients are counted per /64: another address of the same /64 is
    // the same client, one of the next /64 is not.
    for _ in 0..3 {
        assert_eq!(from("2001:db8:1:2::1", &bad()).await.status, 401);
    }
    assert_eq!(from("2001:db8:1:2:ffff::9", &good).await.status, 429);
    assert_eq!(from("2001:db8:1:3::1", &good).await.status, 200);
    assert_eq!(s.up.count(), 2);
}

#[tokio::test]
async fn the_delay_penalty_answers_later_instead_of_refusing() {
    const DELAY: Duration = Duration::from_millis(300);
    let s = setup("[failures]\nlimit = 1\npenalty = \"delay\"\ndelay = \"300ms\"\n").await;
    let good = legacy(ACME, ACME_KEY, &ann(&s.clock));
    let bad = legacy(ACME, GLOBEX_KEY, &ann(&s.clock));

    assert_eq!(with_token(&s.gate, &bad).await.status, 401);
    for (token, want) in [(&good, 200), (&bad, 401)] {
        let started = Instant::now();
        let r = with_token(&s.gate, token).await;
        let took = started.elapsed();
        assert_eq!(r.status, want);
        assert!(took >= DELAY, "answered after {took:?}");
        assert!(took < Duration::from_secs(5), "answered after {took:?}");
    }
    let rec = s.up.single();
    assert_customer(&rec, ACME, "ann@example.com");
}

// ---------------------------------------------------------------------------
// 9–10. Sessions

const COOKIE_SESSION: &str = r#"
[sso.session]
handout = "cookie"
idle = "1h"
max_lifetime = "3h"
"#;

/// Sends a token, checks the handed-out session cookie, returns its value.
async fn open_cookie_session(s: &Setup, company: &str, key: &str) -> String {
    let before = s.up.count();
    let r = with_token(&s.gate, &legacy(company, key, &ann(&s.clock))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(s.up.count(), before + 1);
    assert_eq!(r.headers["cache-control"], "no-store");
    let cookies: Vec<_> = r.headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let cookie = cookies[0].to_str().unwrap();
    let mut parts = cookie.split("; ");
    let value = parts
        .next()
        .unwrap()
        .strip_prefix("scopegate_sso=")
        .unwrap_or_else(|| panic!("{cookie}"))
        .to_string();
    let mut attributes: Vec<_> = parts.collect();
    attributes.sort();
    assert_eq!(
        attributes,
        [
            "HttpOnly",
            "Max-Age=10800",
            "Path=/",
            "SameSite=Lax",
            "Secure"
        ],
        "{cookie}"
    );
    let hex = value.strip_prefix("sg:sso:").unwrap();
    assert!(
        hex.len() == 32
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    value
}

async fn with_session_cookie(s: &Setup, session: &str) -> Reply {
    get_with(
        &s.gate,
        "/v2/bookings?page=3",
        &[("cookie", &format!("scopegate_sso={session}; other=1"))],
    )
    .await
}

#[tokio::test]
async fn a_cookie_session_stands_in_for_the_token_then_idles_out() {
    let s = setup(COOKIE_SESSION).await;
    let session = open_cookie_session(&s, ACME, ACME_KEY).await;
    let first = last(&s.up);
    assert_customer(&first, ACME, "ann@example.com");

    let r = with_session_cookie(&s, &session).await;
    assert_eq!(r.status, 200);
    assert!(r.headers.get("set-cookie").is_none(), "no second session");
    let rec = last(&s.up);
    assert_customer(&rec, ACME, "ann@example.com");
    assert_eq!(
        rec.one("x-scope-customer-reference").as_deref(),
        Some("C-1001")
    );
    assert_eq!(rec.target, "/v2/bookings?page=3");
    assert_eq!(rec.all("cookie"), ["other=1"]);
    assert!(!format!("{:?}", rec.headers).contains(&session));

    // Each use slides the idle expiry (1 h)...
    for _ in 0..2 {
        s.clock.advance(Duration::from_secs(3600 - 60));
        assert_eq!(with_session_cookie(&s, &session).await.status, 200);
    }
    // ...and an hour without use ends the session.
    s.clock.advance(Duration::from_secs(3600 + 1));
    let before = s.up.count();
    let r = with_session_cookie(&s, &session).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code(), "unauthorized");
    assert_eq!(s.up.count(), before);
}

#[tokio::test]
async fn a_cookie_session_ends_at_its_lifetime_cap_and_on_revocation() {
    let s = setup(COOKIE_SESSION).await;

    // Used every 50 minutes, the session never idles out but ends at 3 h.
    let capped = open_cookie_session(&s, ACME, ACME_KEY).await;
    for _ in 0..3 {
        s.clock.advance(Duration::from_secs(50 * 60));
        assert_eq!(with_session_cookie(&s, &capped).await.status, 200);
    }
    s.clock.advance(Duration::from_secs(35 * 60));
    assert_eq!(with_session_cookie(&s, &capped).await.status, 401);

    // Revoking a company ends its sessions, not another company's, and not
    // the ones opened afterwards.
    let acme = open_cookie_session(&s, ACME, ACME_KEY).await;
    let globex = open_cookie_session(&s, GLOBEX, GLOBEX_KEY).await;
    let r = revoke(&s.gate, ACME).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json()["revoked"], "sso:37000");
    let before = s.up.count();
    assert_eq!(with_session_cookie(&s, &acme).await.status, 401);
    assert_eq!(s.up.count(), before);
    assert_eq!(with_session_cookie(&s, &globex).await.status, 200);
    assert_customer(&last(&s.up), GLOBEX, "ann@example.com");
    let fresh = open_cookie_session(&s, ACME, ACME_KEY).await;
    assert_eq!(with_session_cookie(&s, &fresh).await.status, 200);
    assert_customer(&last(&s.up), ACME, "ann@example.com");

    assert_eq!(revoke(&s.gate, "99999").await.status, 404);
    // A forged or unknown session id: the same 401.
    for forged in [
        "sg:sso:00000000000000000000000000000000".to_string(),
        "sg:sso:zz".to_string(),
        fresh.to_ascii_uppercase(),
    ] {
        assert_eq!(with_session_cookie(&s, &forged).await.status, 401);
    }
}

#[tokio::test]
async fn a_header_session_is_sent_back_as_a_bearer_that_never_reaches_the_upstream() {
    let s = setup("[sso.session]\nhandout = \"header\"\n").await;
    let r = with_token(&s.gate, &v2(GLOBEX, GLOBEX_KEY, &ann(&s.clock))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["cache-control"], "no-store");
    assert!(r.headers.get("set-cookie").is_none());
    let session = r.headers["x-sso-session"].to_str().unwrap().to_string();
    assert!(session.starts_with("sg:sso:") && session.len() == 7 + 32);
    assert!(s.up.single().one("authorization").is_none());

    let r = get_with(
        &s.gate,
        "/v2/bookings",
        &[("authorization", &format!("Bearer {session}"))],
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        r.headers.get("x-sso-session").is_none(),
        "no second session"
    );
    let rec = last(&s.up);
    assert_customer(&rec, GLOBEX, "ann@example.com");
    assert!(rec.all("authorization").is_empty());
    assert!(!format!("{:?}", rec.headers).contains(&session));

    // The session scheme's cookie is not read with a header handout.
    let before = s.up.count();
    let r = get_with(
        &s.gate,
        "/v2/bookings",
        &[("cookie", &format!("scopegate_sso={session}"))],
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(s.up.count(), before);
}

// ---------------------------------------------------------------------------
// 11. Shared store

#[tokio::test]
async fn two_instances_share_sso_sessions_through_redis() {
    let redis = RedisServer::start().await;
    let up = Upstream::start(Behavior::Ok).await;
    let toml = toml(
        &up,
        &format!(
            "{COOKIE_SESSION}\n[store]\nbackend = \"redis\"\nurl = \"{}\"\ntimeout = \"500ms\"\n",
            redis.url()
        ),
    );
    let (a, b) = (Gate::start(&toml).await, Gate::start(&toml).await);
    let cookie = |r: &Reply| {
        let c = r.headers["set-cookie"].to_str().unwrap();
        c.split(';')
            .next()
            .unwrap()
            .strip_prefix("scopegate_sso=")
            .unwrap()
            .to_string()
    };
    let use_on = |gate: &Gate, session: &str| {
        let header = format!("scopegate_sso={session}; other=1");
        let url = gate.url("/v2/bookings");
        async move {
            send(
                Request::get(url)
                    .header("cookie", header)
                    .body(Full::default())
                    .unwrap(),
            )
            .await
        }
    };

    let payload = claims("ann@example.com", &utc(unix_now() + 3600));
    let r = get(&a.url(&format!(
        "/v2/bookings?sso-token={}",
        legacy(ACME, ACME_KEY, &payload)
    )))
    .await;
    assert_eq!(r.status, 200);
    let session = cookie(&r);

    let r = use_on(&b, &session).await;
    assert_eq!(r.status, 200, "opened on A, accepted on B");
    let rec = last(&up);
    assert_customer(&rec, ACME, "ann@example.com");
    assert_eq!(rec.all("cookie"), ["other=1"]);

    let r = revoke(&a, ACME).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let before = up.count();
    assert_eq!(
        use_on(&b, &session).await.status,
        401,
        "revoked on A, ended on B"
    );
    assert_eq!(use_on(&a, &session).await.status, 401);
    assert_eq!(up.count(), before);
}

// ---------------------------------------------------------------------------
// 12. Key rotation

#[tokio::test]
async fn during_a_rotation_tokens_of_the_old_and_the_new_key_are_accepted() {
    let s = setup(
        r#"
[[sso_company]]
company_id = "37030"
secure_key = "sk_new_2027"

[[sso_company.key]]
secure_key = "sk_old_2026"
"#,
    )
    .await;
    let payload = ann(&s.clock);
    for key in ["sk_new_2027", "sk_old_2026"] {
        for token in [legacy("37030", key, &payload), v2("37030", key, &payload)] {
            let r = get_with(
                &s.gate,
                &format!("/v2/bookings?sso-token={token}"),
                &[("x-sso-company", "37030")],
            )
            .await;
            assert_eq!(r.status, 200, "{key}");
            assert_customer(&last(&s.up), "37030", "ann@example.com");
            assert_eq!(
                with_token(&s.gate, &token).await.status,
                200,
                "{key}, by trial"
            );
            assert_customer(&last(&s.up), "37030", "ann@example.com");
        }
    }
    let before = s.up.count();
    let retired = legacy("37030", "sk_older_2025", &payload);
    assert_eq!(with_token(&s.gate, &retired).await.status, 401);
    assert_eq!(s.up.count(), before);
}
