//! No secret, token, signature, decrypted payload or full email in any log
//! line at any level. The real binary runs at `trace` (every crate's logging,
//! hyper's included) while every scheme is used successfully and
//! unsuccessfully, in every carrier, with an upstream credential configured;
//! then its whole stderr is searched for every secret the run used, as sent
//! and as decoded.

mod common;

use std::time::Duration;

use common::{
    process::{Launch, Proc},
    *,
};
use http::Request;
use http_body_util::Full;
use scopegate::auth::{
    jwt,
    sso::{mint_legacy, mint_v2, Keys},
};
use serde_json::json;

const APP_KEY: &str = "appkey_LEAKCHECK_5c2f9e71ab30d4";
const PRIVATE_KEY: &str = "pk_LEAKCHECK_8d1c44e0f7a2";
const SECURE_KEY: &str = "sk_LEAKCHECK_0a9b8c7d6e5f";
const API_KEY: &str = "APIKEYLEAKCHECK0123456789ABCDEFG";
const SECRET_KEY: &str = "secret_LEAKCHECK_b7e3a1f09c";
const UPSTREAM_PASSWORD: &str = "upw_LEAKCHECK_33f1e9d2";
const EMAIL: &str = "leak.check.customer@example.com";

fn md5_hex(s: &str) -> String {
    use md5::{Digest, Md5};
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn sha256_hex(s: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn toml(upstream: std::net::SocketAddr) -> String {
    format!(
        r#"
[listen]
address = "127.0.0.1:0"
[admin]
address = "127.0.0.1:0"

[[upstream]]
name = "backend"
url = "http://{upstream}"
[upstream.credential]
type = "basic"
username = "gate"
password = "{UPSTREAM_PASSWORD}"

[[route]]
name = "search"
path = "/v2/bookings"
auth = ["signed-search"]
upstream = "backend"

[[route]]
name = "links"
path = "/v2/bookings/{{id}}/external_action/{{action}}"
auth = ["action-link"]
upstream = "backend"

[[route]]
name = "by-id"
path = "/v2/bookings/{{id}}"
auth = ["session"]
upstream = "backend"

[[route]]
name = "widget"
path = "/v2/me/*"
auth = ["sso"]
upstream = "backend"

[[route]]
name = "partner"
path = "/v2/partner/*"
auth = ["api-key"]
upstream = "backend"
require = "bookings"

[[app]]
slug = "leak-app"
[[app.key]]
key = "{APP_KEY}"

[[action]]
name = "cancel_by_customer"
upstream = "PUT /v2/bookings/{{id}}/cancel_by_customer"
single_use = true

[[business]]
id = "leak-biz"
api_key = "777"
private_key = "{PRIVATE_KEY}"

[sso.session]
handout = "cookie"

[[sso_company]]
company_id = "37000"
secure_key = "{SECURE_KEY}"

[[application]]
id = "leak-partner"
secret_key = "{SECRET_KEY}"

[[api_key]]
key = "{API_KEY}"
application = "leak-partner"
business = "leak-biz"
permissions = ["bookings_rw_all"]
"#
    )
}

async fn call(p: &Proc, method: &str, target: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{}{target}", p.addr));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(req.body(Full::default()).unwrap()).await
}

#[tokio::test]
async fn no_secret_token_or_email_reaches_any_log_line_at_trace_level() {
    let up = Upstream::start(Behavior::Ok).await;
    let p = Proc::launch(
        &toml(up.addr),
        Launch {
            env: &[("RUST_LOG", "trace")],
            ..Launch::default()
        },
    )
    .await;
    let now = unix_now();
    let mut secrets: Vec<String> = [
        APP_KEY,
        PRIVATE_KEY,
        SECURE_KEY,
        API_KEY,
        SECRET_KEY,
        UPSTREAM_PASSWORD,
        EMAIL,
    ]
    .map(String::from)
    .to_vec();

    // Signed search: accepted, then refused for another customer.
    let search_token = jwt::sign(
        json!({"app_slug": "leak-app", "customer.email": EMAIL})
            .as_object()
            .unwrap(),
        APP_KEY.as_bytes(),
    );
    let search = format!("search=customer.email:{EMAIL}");
    let r = call(
        &p,
        "GET",
        &format!("/v2/bookings?{search}&signed_search={search_token}"),
        &[],
    )
    .await;
    assert_eq!(r.status, 200);
    let r = call(
        &p,
        "GET",
        &format!("/v2/bookings?search=customer.email:x@example.com&signed_search={search_token}"),
        &[],
    )
    .await;
    assert_eq!(r.status, 401);
    secrets.push(search_token);

    // Action link: followed once, then again (409), then tampered (401).
    let link_token = jwt::sign(
        json!({"app_slug": "leak-app", "booking_id": "b-1", "action": "cancel_by_customer",
               "customer.email": EMAIL, "exp": now + 600, "jti": "leak-jti-1"})
        .as_object()
        .unwrap(),
        APP_KEY.as_bytes(),
    );
    let link =
        format!("/v2/bookings/b-1/external_action/cancel_by_customer?signature={link_token}");
    assert_eq!(call(&p, "GET", &link, &[]).await.status, 200);
    assert_eq!(call(&p, "GET", &link, &[]).await.status, 409);
    assert_eq!(call(&p, "GET", &format!("{link}x"), &[]).await.status, 401);
    secrets.push(link_token);

    // Session: handshake (the md5 signature is a static secret), use, logout, reuse.
    let signature = md5_hex(&format!("777{PRIVATE_KEY}"));
    let r = call(
        &p,
        "GET",
        &format!("/sessionToken?apiKey=777&timestamp={now}&signature={signature}"),
        &[],
    )
    .await;
    assert_eq!(r.status, 200);
    let session = r.json()["sessionToken"].as_str().unwrap().to_string();
    let bearer = format!("Bearer {session}");
    assert_eq!(
        call(&p, "GET", "/v2/bookings/b-1", &[("authorization", &bearer)])
            .await
            .status,
        200
    );
    assert_eq!(
        call(&p, "DELETE", "/sessionToken", &[("authorization", &bearer)])
            .await
            .status,
        204
    );
    assert_eq!(
        call(&p, "GET", "/v2/bookings/b-1", &[("authorization", &bearer)])
            .await
            .status,
        401
    );
    secrets.extend([signature, session]);

    // SSO: legacy in the query, v2 in the header, the session cookie, a forgery.
    let expires = chrono::DateTime::from_timestamp(now as i64 + 600, 0)
        .unwrap()
        .to_rfc3339();
    let payload = json!({"first_name": "Leaky", "last_name": "Checkerson", "email": EMAIL,
                         "reference": "ref-LEAKCHECK-42", "expires": expires})
    .to_string();
    let keys = Keys::derive(SECURE_KEY.as_bytes(), "37000");
    let legacy = mint_legacy(payload.as_bytes(), &keys.legacy);
    let v2 = mint_v2(payload.as_bytes(), &keys.v2);
    let r = call(
        &p,
        "GET",
        &format!("/v2/me/bookings?sso-token={legacy}"),
        &[],
    )
    .await;
    assert_eq!(r.status, 200);
    let cookie = r.headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        call(&p, "GET", "/v2/me/bookings", &[("x-sso-token", &v2)])
            .await
            .status,
        200
    );
    assert_eq!(
        call(&p, "GET", "/v2/me/bookings", &[("cookie", &cookie)])
            .await
            .status,
        200
    );
    // Another last character (one of 64 tokens already ends in `A`).
    let last = if v2.ends_with('A') { 'B' } else { 'A' };
    let forged = format!("{}{last}", &v2[..v2.len() - 1]);
    assert_eq!(
        call(&p, "GET", "/v2/me/bookings", &[("x-sso-token", &forged)])
            .await
            .status,
        401
    );
    let decoded_legacy = percent_encoding::percent_decode_str(&legacy)
        .decode_utf8()
        .unwrap()
        .into_owned();
    secrets.extend([
        legacy,
        decoded_legacy,
        v2,
        cookie.split_once('=').unwrap().1.to_string(),
        "ref-LEAKCHECK-42".into(),
        "Checkerson".into(),
        payload,
    ]);

    // API key: headers, query, wrong secret, apikeyinfo.
    let key_headers = [
        ("x-bookeo-apikey", API_KEY),
        ("x-bookeo-secretkey", SECRET_KEY),
    ];
    assert_eq!(
        call(&p, "PUT", "/v2/partner/b-1", &key_headers)
            .await
            .status,
        200
    );
    assert_eq!(
        call(
            &p,
            "GET",
            &format!("/v2/partner/x?apiKey={API_KEY}&secretKey={SECRET_KEY}"),
            &[]
        )
        .await
        .status,
        200
    );
    assert_eq!(
        call(
            &p,
            "GET",
            "/v2/partner/x",
            &[
                ("x-bookeo-apikey", API_KEY),
                ("x-bookeo-secretkey", "wrong-LEAKCHECK")
            ]
        )
        .await
        .status,
        401
    );
    assert_eq!(
        call(
            &p,
            "GET",
            &format!("/v2/settings/apikeyinfo?apiKey={API_KEY}&secretKey={SECRET_KEY}"),
            &[]
        )
        .await
        .status,
        200
    );
    secrets.extend(["wrong-LEAKCHECK".to_string(), sha256_hex(API_KEY)]);

    // A page of a foreign origin: refused, and the refusal is in the log.
    let r = call(
        &p,
        "GET",
        "/v2/me/bookings",
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(r.status, 403);

    // A control character where a client controls the text: escaped, never raw.
    let r = call(&p, "GET", "/v2/me/x", &[("x-request-id", "evil\tid")]).await;
    assert_eq!(r.status, 401);

    // Let the last access records reach stderr.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = p.stderr();
    assert!(
        log.iter().any(|l| l.contains(r#""level":"TRACE""#)),
        "trace logging is on"
    );
    let access = log
        .iter()
        .filter(|l| l.contains("scopegate::access"))
        .count();
    assert!(access >= 19, "{access} access records");
    // The access record names who, as ids and hashes.
    assert!(
        log.iter().any(|l| l.contains("\"scheme\":\"sso\"")
            && l.contains("\"business\":\"37000\"")
            && l.contains("\"subject\":\"")),
        "no sso access record with its business and subject hash"
    );

    assert!(
        log.iter()
            .any(|l| l.contains("\"outcome\":\"origin_not_allowed\"")
                && l.contains("https://evil.example")),
        "the CORS refusal is not in the access record"
    );
    let mut leaks = Vec::new();
    for s in &secrets {
        for line in &log {
            if line.contains(s.as_str()) {
                leaks.push(format!("{s:.24}… in: {line:.300}"));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "secrets in the log:\n{}",
        leaks.join("\n")
    );
    // JSON lines: every one parses, so no raw control character split one.
    for line in &log {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not a JSON log line: {line:.200}"
        );
    }
}
