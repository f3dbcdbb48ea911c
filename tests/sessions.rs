//! Session tokens (TimeTap) through real listeners: the handshake, bearer
//! use with sliding and capped expiry on a clock the test moves, logout,
//! revocation, and two instances sharing a real redis-server.

mod common;

use std::time::{Duration, Instant};

use common::{redis::RedisServer, *};
use http::Request;
use http_body_util::Full;
use scopegate::clock::Clock;

const PRIVATE_KEY: &str = "pk_live_9f8e7d6c5b4a";
const HMAC_KEY: &str = "pk_hmac_0a1b2c3d4e5f";

fn routes(store: &str) -> String {
    format!(
        r#"
[[business]]
id = "biz-1"
api_key = "12345"
private_key = "{PRIVATE_KEY}"
idle = "4h"
max_lifetime = "10h"

[[business]]
id = "biz-2"
api_key = "67890"
private_key = "{HMAC_KEY}"
signature = "hmac-sha256"
accept_query_token = true

[[route]]
name = "appointments"
path = "/v2/appointments/*"
auth = ["session"]
upstream = "backend"

[[route]]
name = "open"
path = "/open"
auth = ["public"]
upstream = "backend"
{store}
"#
    )
}

fn md5_hex(s: &str) -> String {
    use md5::{Digest, Md5};
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn hmac_hex(key: &str, msg: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    m.update(msg.as_bytes());
    m.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn handshake_md5(ts: &str) -> String {
    format!(
        "/sessionToken?apiKey=12345&timestamp={ts}&signature={}",
        md5_hex(&format!("12345{PRIVATE_KEY}"))
    )
}

fn handshake_hmac(ts: &str) -> String {
    format!(
        "/sessionToken?apiKey=67890&timestamp={ts}&signature={}",
        hmac_hex(HMAC_KEY, &format!("67890:{ts}"))
    )
}

async fn bearer(gate: &Gate, path: &str, token: &str) -> Reply {
    send(
        Request::get(gate.url(path))
            .header("authorization", format!("Bearer {token}"))
            .body(Full::default())
            .unwrap(),
    )
    .await
}

async fn issue(gate: &Gate, target: &str) -> String {
    let r = get(&gate.url(target)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.headers["cache-control"], "no-store");
    r.json()["sessionToken"].as_str().unwrap().to_string()
}

struct Setup {
    up: Upstream,
    gate: Gate,
    clock: Clock,
}

async fn setup() -> Setup {
    let up = Upstream::start(Behavior::Ok).await;
    let clock = Clock::system();
    let gate = Gate::start_with_clock(&config(up.addr, &routes("")), clock.clone()).await;
    Setup { up, gate, clock }
}

fn now_secs(clock: &Clock) -> u64 {
    clock.now()
}

#[tokio::test]
async fn the_vendor_handshake_issues_a_token_the_upstream_never_sees() {
    let s = setup().await;
    let token = issue(&s.gate, &handshake_md5(&now_secs(&s.clock).to_string())).await;
    let hex = token.strip_prefix("st:api:api:").unwrap();
    assert!(
        hex.len() == 32
            && hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(s.up.count(), 0, "the handshake is scopegate's own");

    let r = bearer(&s.gate, "/v2/appointments/1", &token).await;
    assert_eq!(r.status, 200);
    let rec = s.up.single();
    assert_eq!(rec.one("x-scope-credential").unwrap(), "session");
    assert_eq!(rec.one("x-scope-business").unwrap(), "biz-1");
    assert!(
        rec.one("authorization").is_none(),
        "the bearer never reaches the upstream"
    );
    assert!(!rec.target.contains("st:api"));
}

#[tokio::test]
async fn timestamps_in_seconds_milliseconds_and_fractions_are_read() {
    let s = setup().await;
    let now_ms = s.clock.now_ms();
    for ts in [
        (now_ms / 1000).to_string(),
        now_ms.to_string(),
        format!("{}.{:03}", now_ms / 1000, now_ms % 1000),
    ] {
        issue(&s.gate, &handshake_md5(&ts)).await;
    }
    // Upper-case hex is the same signature.
    let upper = format!(
        "/sessionToken?apiKey=12345&timestamp={}&signature={}",
        now_ms / 1000,
        md5_hex(&format!("12345{PRIVATE_KEY}")).to_uppercase()
    );
    issue(&s.gate, &upper).await;
}

#[tokio::test]
async fn every_refused_handshake_gets_the_same_401() {
    let s = setup().await;
    let now = now_secs(&s.clock);
    let good_sig = md5_hex(&format!("12345{PRIVATE_KEY}"));
    let cases = [
        format!(
            "/sessionToken?apiKey=12345&timestamp={now}&signature={}",
            md5_hex("12345wrong")
        ),
        format!("/sessionToken?apiKey=99999&timestamp={now}&signature={good_sig}"),
        format!(
            "/sessionToken?apiKey=12345&timestamp={}&signature={good_sig}",
            now - 301
        ),
        format!(
            "/sessionToken?apiKey=12345&timestamp={}&signature={good_sig}",
            now + 301
        ),
        format!("/sessionToken?apiKey=12345&timestamp=yesterday&signature={good_sig}"),
        format!("/sessionToken?apiKey=12345&timestamp={now}&signature=zz"),
        format!(
            "/sessionToken?apiKey=12345&timestamp={now}&signature={}",
            &good_sig[..30]
        ),
    ];
    let mut uniform = Uniform401::default();
    for target in &cases {
        uniform.check(target, &get_raw(&s.gate, target, "").await);
    }
    // A malformed request is a 400, and other methods a 405.
    for target in [
        format!("/sessionToken?apiKey=12345&timestamp={now}"),
        format!("/sessionToken?apiKey=12345&apiKey=12345&timestamp={now}&signature={good_sig}"),
    ] {
        assert_eq!(get(&s.gate.url(&target)).await.status, 400, "{target}");
    }
    let post = send(
        Request::post(s.gate.url("/sessionToken"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(post.status, 405);
    assert_eq!(s.up.count(), 0);
}

#[tokio::test]
async fn an_hmac_handshake_is_accepted_once() {
    let s = setup().await;
    let target = handshake_hmac(&now_secs(&s.clock).to_string());
    issue(&s.gate, &target).await;
    let replay = get(&s.gate.url(&target)).await;
    assert_eq!(replay.status, 401);
    // The vendor's md5 signature does not open an hmac business.
    let md5 = format!(
        "/sessionToken?apiKey=67890&timestamp={}&signature={}",
        now_secs(&s.clock),
        md5_hex(&format!("67890{HMAC_KEY}"))
    );
    assert_eq!(get(&s.gate.url(&md5)).await.status, 401);
}

#[tokio::test]
async fn use_slides_the_idle_expiry_and_the_lifetime_cap_never_slides() {
    let s = setup().await;
    let token = issue(&s.gate, &handshake_md5(&now_secs(&s.clock).to_string())).await;
    // Used every 3 h: idle (4 h) never runs out...
    for _ in 0..3 {
        s.clock.advance(Duration::from_secs(3 * 3600));
        assert_eq!(
            bearer(&s.gate, "/v2/appointments/x", &token).await.status,
            200
        );
    }
    // ...but the 10 h lifetime does (9 h so far).
    s.clock.advance(Duration::from_secs(3600 + 1));
    let r = bearer(&s.gate, "/v2/appointments/x", &token).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.headers["www-authenticate"], "Bearer realm=\"scopegate\"");

    // 4 h without use ends another session.
    let t2 = issue(&s.gate, &handshake_md5(&now_secs(&s.clock).to_string())).await;
    s.clock.advance(Duration::from_secs(4 * 3600 - 5));
    assert_eq!(bearer(&s.gate, "/v2/appointments/x", &t2).await.status, 200);
    s.clock.advance(Duration::from_secs(4 * 3600 + 5));
    assert_eq!(bearer(&s.gate, "/v2/appointments/x", &t2).await.status, 401);
    // Expired stays expired.
    assert_eq!(bearer(&s.gate, "/v2/appointments/x", &t2).await.status, 401);
    assert_eq!(s.up.count(), 4);
}

#[tokio::test]
async fn unknown_malformed_and_missing_tokens_get_the_same_401() {
    let s = setup().await;
    let mut uniform = Uniform401::default();
    for extra in [
        "Authorization: Bearer st:api:api:00000000000000000000000000000000\r\n",
        "Authorization: Bearer st:api:api:XYZ\r\n",
        "Authorization: Bearer \r\n",
        "",
    ] {
        uniform.check(extra, &get_raw(&s.gate, "/v2/appointments/1", extra).await);
    }
    assert_eq!(s.up.count(), 0);
}

#[tokio::test]
async fn logout_and_revocation_end_sessions() {
    let s = setup().await;
    let now = now_secs(&s.clock).to_string();
    let (a, b) = (
        issue(&s.gate, &handshake_md5(&now)).await,
        issue(&s.gate, &handshake_md5(&now)).await,
    );
    let logout = send(
        Request::delete(s.gate.url("/sessionToken"))
            .header("authorization", format!("Bearer {a}"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(logout.status, 204);
    assert_eq!(bearer(&s.gate, "/v2/appointments/x", &a).await.status, 401);
    assert_eq!(bearer(&s.gate, "/v2/appointments/x", &b).await.status, 200);

    // Revoking the business ends every session issued before, not later ones.
    let admin = s.gate.admin.unwrap();
    let r = send(
        Request::post(format!("http://{admin}/sessions/revoke?business=biz-1"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(bearer(&s.gate, "/v2/appointments/x", &b).await.status, 401);
    let c = issue(&s.gate, &handshake_md5(&now_secs(&s.clock).to_string())).await;
    assert_eq!(bearer(&s.gate, "/v2/appointments/x", &c).await.status, 200);
    let unknown = send(
        Request::post(format!("http://{admin}/sessions/revoke?business=nope"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn a_query_token_is_accepted_only_where_configured_and_never_forwarded() {
    let s = setup().await;
    let hmac = issue(&s.gate, &handshake_hmac(&now_secs(&s.clock).to_string())).await;
    let md5 = issue(&s.gate, &handshake_md5(&now_secs(&s.clock).to_string())).await;
    let ok = get(&s
        .gate
        .url(&format!("/v2/appointments/x?a=1&sessionToken={hmac}")))
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(s.up.single().target, "/v2/appointments/x?a=1");
    assert_eq!(s.up.single().one("x-scope-business").unwrap(), "biz-2");
    let refused = get(&s
        .gate
        .url(&format!("/v2/appointments/x?sessionToken={md5}")))
    .await;
    assert_eq!(refused.status, 401, "biz-1 does not accept query tokens");
    // A session bearer sent to a public route does not travel either.
    let r = bearer(&s.gate, "/open", &md5).await;
    assert_eq!(r.status, 200);
    assert!(s.up.records()[1].one("authorization").is_none());
}

#[tokio::test]
async fn many_requests_at_the_expiry_boundary_are_each_200_or_401() {
    let s = setup().await;
    let token = issue(&s.gate, &handshake_md5(&now_secs(&s.clock).to_string())).await;
    s.clock.advance(Duration::from_secs(4 * 3600 - 1));
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let (url, token, clock) = (
                s.gate.url("/v2/appointments/x"),
                token.clone(),
                s.clock.clone(),
            );
            tokio::spawn(async move {
                if i == 32 {
                    clock.advance(Duration::from_secs(2 * 3600));
                }
                let r = send(
                    Request::get(url)
                        .header("authorization", format!("Bearer {token}"))
                        .body(Full::default())
                        .unwrap(),
                )
                .await;
                r.status.as_u16()
            })
        })
        .collect();
    for t in tasks {
        let status = t.await.unwrap();
        assert!(status == 200 || status == 401, "{status}");
    }
}

// ---- shared across instances through Redis ----

#[tokio::test]
async fn two_instances_share_sessions_through_redis() {
    let mut redis = RedisServer::start().await;
    let up = Upstream::start(Behavior::Ok).await;
    let store = format!(
        "\n[store]\nbackend = \"redis\"\nurl = \"{}\"\ntimeout = \"300ms\"\n",
        redis.url()
    );
    let toml = config(up.addr, &routes(&store));
    let (a, b) = (Gate::start(&toml).await, Gate::start(&toml).await);
    let now = unix_now().to_string();

    let token = issue(&a, &handshake_md5(&now)).await;
    assert_eq!(
        bearer(&b, "/v2/appointments/x", &token).await.status,
        200,
        "issued on A, accepted on B"
    );
    let logout = send(
        Request::delete(b.url("/sessionToken"))
            .header("authorization", format!("Bearer {token}"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(logout.status, 204);
    assert_eq!(
        bearer(&a, "/v2/appointments/x", &token).await.status,
        401,
        "logged out on B, refused on A"
    );

    // Revocation on A's admin listener ends sessions used on B.
    let t2 = issue(&b, &handshake_md5(&now)).await;
    let r = send(
        Request::post(format!(
            "http://{}/sessions/revoke?business=biz-1",
            a.admin.unwrap()
        ))
        .body(Full::default())
        .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(bearer(&b, "/v2/appointments/x", &t2).await.status, 401);

    // Redis gone: 503, fail closed, nothing forwarded; back: works again.
    let t3 = issue(&a, &handshake_md5(&now)).await;
    let before = up.count();
    redis.kill();
    let started = Instant::now();
    let down = bearer(&a, "/v2/appointments/x", &t3).await;
    assert_eq!(down.status, 503);
    assert_eq!(down.error_code(), "store_unavailable");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(get(&a.url(&handshake_md5(&now))).await.status, 503);
    assert_eq!(up.count(), before);
    redis.restart().await;
    // The restarted Redis is empty: old sessions are gone, new ones work.
    let deadline = Instant::now() + Duration::from_secs(10);
    let fresh = loop {
        let r = get(&a.url(&handshake_md5(&now))).await;
        if r.status == 200 {
            break r.json()["sessionToken"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "still {}", r.status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(bearer(&b, "/v2/appointments/x", &fresh).await.status, 200);
}

#[tokio::test]
async fn a_private_key_change_ends_the_sessions_issued_under_the_old_key() {
    let redis = RedisServer::start().await;
    let up = Upstream::start(Behavior::Ok).await;
    let store = format!(
        "\n[store]\nbackend = \"redis\"\nurl = \"{}\"\n",
        redis.url()
    );
    let old = config(up.addr, &routes(&store));
    // The same deployment after the business's private key was rotated.
    let new = old.replace(PRIVATE_KEY, "pk_live_rotated_1a2b3c");
    let (before, after) = (Gate::start(&old).await, Gate::start(&new).await);
    let now = unix_now().to_string();
    let token = issue(&before, &handshake_md5(&now)).await;
    assert_eq!(
        bearer(&before, "/v2/appointments/x", &token).await.status,
        200
    );
    assert_eq!(
        bearer(&after, "/v2/appointments/x", &token).await.status,
        401,
        "issued under the old key"
    );
    // The old signature no longer opens a session; the new one does.
    assert_eq!(get(&after.url(&handshake_md5(&now))).await.status, 401);
    let rotated = format!(
        "/sessionToken?apiKey=12345&timestamp={now}&signature={}",
        md5_hex("12345pk_live_rotated_1a2b3c")
    );
    let fresh = issue(&after, &rotated).await;
    assert_eq!(
        bearer(&after, "/v2/appointments/x", &fresh).await.status,
        200
    );
}
