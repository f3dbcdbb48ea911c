//! Session tokens (TimeTap) through real listeners: the handshake, bearer
//! use with sliding and capped expiry on a clock the test moves, logout,
//! revocation, and two instances sharing a real redis-server.

mod common;

use std::time::{Duration, Instant};

use common::{redis::RedisServer, *};
use http::Request;
use http_body_util::Full;
use scopegate::{clock::Clock, Config};

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

/// `DELETE /sessionToken` with `token` as the bearer.
async fn logout(gate: &Gate, token: &str) -> Reply {
    send(
        Request::delete(gate.url("/sessionToken"))
            .header("authorization", format!("Bearer {token}"))
            .body(Full::default())
            .unwrap(),
    )
    .await
}

/// `POST /sessions/revoke?business=<business>` on `gate`'s admin listener.
async fn revoke(gate: &Gate, business: &str) -> Reply {
    send(
        Request::post(format!(
            "http://{}/sessions/revoke?business={business}",
            gate.admin.unwrap()
        ))
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
    assert_eq!(logout(&s.gate, &a).await.status, 204);
    assert_eq!(bearer(&s.gate, "/v2/appointments/x", &a).await.status, 401);
    assert_eq!(bearer(&s.gate, "/v2/appointments/x", &b).await.status, 200);

    // Revoking the business ends every session issued before, not later ones.
    let r = revoke(&s.gate, "biz-1").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(bearer(&s.gate, "/v2/appointments/x", &b).await.status, 401);
    let c = issue(&s.gate, &handshake_md5(&now_secs(&s.clock).to_string())).await;
    assert_eq!(bearer(&s.gate, "/v2/appointments/x", &c).await.status, 200);
    let unknown = revoke(&s.gate, "nope").await;
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

/// A use that is refused, a query token for a business that takes only the
/// header, does not keep the session alive: 4 h after its last accepted use
/// (here its issue) it ends, however many refused uses came between. The
/// same for both stores (Redis slides in its Lua script).
async fn refused_query_uses_do_not_slide(s: &Setup) {
    let md5 = issue(&s.gate, &handshake_md5(&now_secs(&s.clock).to_string())).await;
    let query = s
        .gate
        .url(&format!("/v2/appointments/x?sessionToken={md5}"));
    for _ in 0..3 {
        s.clock.advance(Duration::from_secs(3600));
        assert_eq!(get(&query).await.status, 401);
    }
    s.clock.advance(Duration::from_secs(3600 + 5));
    let r = bearer(&s.gate, "/v2/appointments/x", &md5).await;
    assert_eq!(r.status, 401, "4 h after the last accepted use: ended");
    assert_eq!(s.up.count(), 0);
}

#[tokio::test]
async fn a_refused_query_token_does_not_slide_the_session() {
    refused_query_uses_do_not_slide(&setup().await).await;
}

#[tokio::test]
async fn a_refused_query_token_does_not_slide_the_session_in_redis() {
    let redis = RedisServer::start().await;
    let up = Upstream::start(Behavior::Ok).await;
    let clock = Clock::system();
    let store = format!(
        "\n[store]\nbackend = \"redis\"\nurl = \"{}\"\nlocal_cache = \"10s\"\n",
        redis.url()
    );
    let gate = Gate::start_with_clock(&config(up.addr, &routes(&store)), clock.clone()).await;
    refused_query_uses_do_not_slide(&Setup { up, gate, clock }).await;
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

/// A real redis-server, an upstream, and two gates in front of it sharing
/// that Redis as their store, with `extra` lines in `[store]`.
async fn two_gates_on_redis(extra: &str) -> (RedisServer, Upstream, Gate, Gate) {
    let redis = RedisServer::start().await;
    let up = Upstream::start(Behavior::Ok).await;
    let store = format!(
        "\n[store]\nbackend = \"redis\"\nurl = \"{}\"\ntimeout = \"300ms\"\n{extra}",
        redis.url()
    );
    let toml = config(up.addr, &routes(&store));
    let (a, b) = (Gate::start(&toml).await, Gate::start(&toml).await);
    (redis, up, a, b)
}

#[tokio::test]
async fn two_instances_share_sessions_through_redis() {
    let (mut redis, up, a, b) = two_gates_on_redis("").await;
    let now = unix_now().to_string();

    let token = issue(&a, &handshake_md5(&now)).await;
    assert_eq!(
        bearer(&b, "/v2/appointments/x", &token).await.status,
        200,
        "issued on A, accepted on B"
    );
    assert_eq!(cache_live(&b).await, None, "no cache, no cache metric");
    assert_eq!(logout(&b, &token).await.status, 204);
    assert_eq!(
        bearer(&a, "/v2/appointments/x", &token).await.status,
        401,
        "logged out on B, refused on A"
    );

    // Revocation on A's admin listener ends sessions used on B.
    let t2 = issue(&b, &handshake_md5(&now)).await;
    let r = revoke(&a, "biz-1").await;
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

fn redis_cli(redis: &RedisServer, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &redis.addr.port().to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// How many session uses a gate answered from its local cache (its metrics).
async fn cached_uses(gate: &Gate) -> u64 {
    let m = get(&format!("http://{}/metrics", gate.admin.unwrap())).await;
    String::from_utf8_lossy(&m.body)
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                r#"scopegate_store_operations_total{op="session_touch_cached",result="ok"} "#,
            )
        })
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// `scopegate_store_local_cache_live` on `gate`'s metrics (`None`: absent).
async fn cache_live(gate: &Gate) -> Option<u8> {
    let m = get(&format!("http://{}/metrics", gate.admin.unwrap())).await;
    String::from_utf8_lossy(&m.body).lines().find_map(|l| {
        l.strip_prefix("scopegate_store_local_cache_live ")
            .map(|n| n.trim().parse().unwrap())
    })
}

/// Uses `token` on `gate` until a use is answered from its local cache (the
/// cache is on once its subscription is up); panics after 5 s.
async fn until_cached(gate: &Gate, token: &str) {
    let before = cached_uses(gate).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert_eq!(bearer(gate, "/v2/appointments/x", token).await.status, 200);
        if cached_uses(gate).await > before {
            return;
        }
        assert!(Instant::now() < deadline, "the local cache never served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Uses `token` on `gate` until it answers `status`; how long that took.
/// Panics after 3 s: under a third of the cache lifetime these tests
/// configure, so an answer within it came from a pushed invalidation, not
/// from expiry.
async fn until_status(gate: &Gate, token: &str, status: u16) -> Duration {
    let started = Instant::now();
    loop {
        let got = bearer(gate, "/v2/appointments/x", token).await.status;
        if got == status {
            return started.elapsed();
        }
        assert_eq!(got, 200, "neither served nor {status}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "still served after 3 s: the change did not reach the cache"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// `store.local_cache`: a replica serves a session it read recently without
/// asking Redis, and a logout, a revocation, a lost subscription or Redis
/// gone still reach it at once (well inside the cache's 10 s lifetime).
#[tokio::test]
async fn a_local_cache_serves_sessions_and_revocation_still_reaches_every_replica() {
    let (mut redis, up, a, b) = two_gates_on_redis("local_cache = \"10s\"\n").await;
    let now = unix_now().to_string();
    let mut delays = Vec::new();

    // Logout on A: B, which was serving the session from its cache, refuses
    // it, and nothing more reaches the backend for it.
    let token = issue(&a, &handshake_md5(&now)).await;
    until_cached(&b, &token).await;
    assert_eq!(logout(&a, &token).await.status, 204);
    let forwarded = up.count();
    delays.push(until_status(&b, &token, 401).await);
    assert_eq!(bearer(&b, "/v2/appointments/x", &token).await.status, 401);
    assert!(up.count() - forwarded <= 1, "served after the logout");
    assert_eq!(bearer(&a, "/v2/appointments/x", &token).await.status, 401);

    // Revocation on A's admin listener: the same.
    let token = issue(&a, &handshake_md5(&now)).await;
    until_cached(&b, &token).await;
    let r = revoke(&a, "biz-1").await;
    assert_eq!(r.status, 200);
    delays.push(until_status(&b, &token, 401).await);

    // What the cache does serve: a session deleted behind scopegate's back
    // (no message published) is still honoured until its entry expires.
    let token = issue(&a, &handshake_md5(&now)).await;
    until_cached(&b, &token).await;
    let keys = redis_cli(&redis, &["KEYS", "scopegate:s:*"]);
    for k in keys.lines() {
        redis_cli(&redis, &["DEL", k]);
    }
    assert_eq!(bearer(&b, "/v2/appointments/x", &token).await.status, 200);

    // The subscription cut (a message could be missed): the cache is
    // emptied and stops serving, so B asks Redis, which no longer has it.
    assert_ne!(
        redis_cli(&redis, &["CLIENT", "KILL", "TYPE", "pubsub"]),
        "0"
    );
    delays.push(until_status(&b, &token, 401).await);

    // Back by itself, and serving again.
    let token = issue(&a, &handshake_md5(&now)).await;
    until_cached(&b, &token).await;

    // Redis gone: fail closed at once, not served from the cache.
    redis.kill();
    delays.push(until_status(&b, &token, 503).await);
    println!("a change reached the other replica's cache after {delays:?} (logout, revocation, subscription cut, Redis gone)");
}

/// A TCP relay to `target` that can go silent: frozen, it keeps every
/// connection open and reads on, but passes nothing on in either direction
/// (a network path that drops packets without a reset), until thawed.
struct Relay {
    addr: std::net::SocketAddr,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(target: std::net::SocketAddr) -> Self {
        use std::sync::{atomic::AtomicBool, Arc};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let frozen = Arc::new(AtomicBool::new(false));
        let f = Arc::clone(&frozen);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(Self::pass(cr, sw, Arc::clone(&f)));
                tokio::spawn(Self::pass(sr, cw, Arc::clone(&f)));
            }
        });
        Self { addr, frozen, task }
    }

    async fn pass(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) {
        use std::sync::atomic::Ordering::SeqCst;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            while frozen.load(SeqCst) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if to.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }

    fn set_frozen(&self, on: bool) {
        self.frozen.store(on, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A subscription that goes silent (no reset, no end: a path dropping
/// packets) is found out by its heartbeat: the replica stops serving from its
/// cache within about a second and a quarter, so a logout it never heard of
/// ends there too, long before the 10 s entry lifetime. Thawed, it
/// resubscribes and serves from the cache again, without a restart.
#[tokio::test]
async fn a_silent_subscription_stops_the_cache_within_its_heartbeat() {
    let redis = RedisServer::start().await;
    let up = Upstream::start(Behavior::Ok).await;
    let relay = Relay::start(redis.addr).await;
    let store = |url: String| {
        format!(
            "\n[store]\nbackend = \"redis\"\nurl = \"{url}\"\ntimeout = \"300ms\"\nlocal_cache = \"10s\"\n"
        )
    };
    let a = Gate::start(&config(up.addr, &routes(&store(redis.url())))).await;
    let b = Gate::start(&config(
        up.addr,
        &routes(&store(format!("redis://{}/", relay.addr))),
    ))
    .await;
    let now = unix_now().to_string();
    let token = issue(&a, &handshake_md5(&now)).await;
    until_cached(&b, &token).await;
    assert_eq!(cache_live(&b).await, Some(1));

    // B's path to Redis goes silent; the logout on A is published, and B
    // never hears of it.
    relay.set_frozen(true);
    assert_eq!(logout(&a, &token).await.status, 204);
    let frozen = Instant::now();
    let mut served = 0;
    // When the first request that was not served from the cache was sent.
    let ended = loop {
        let sent = frozen.elapsed();
        match bearer(&b, "/v2/appointments/x", &token)
            .await
            .status
            .as_u16()
        {
            200 => served += 1,
            // Off the cache, B asks Redis, which it cannot reach.
            503 => break sent,
            other => panic!("unexpected {other}"),
        }
        assert!(
            frozen.elapsed() < Duration::from_secs(3),
            "still served from the cache {:?} after the subscription went silent",
            frozen.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    // A PING each second, answered within 250 ms, and slack for a busy machine.
    assert!(ended <= Duration::from_millis(2000), "{ended:?}");
    println!("silent subscription: cache off after {ended:?} ({served} uses served meanwhile)");

    assert_eq!(
        cache_live(&b).await,
        Some(0),
        "the metric shows the cache off"
    );

    // Thawed: the logout holds, and the cache comes back by itself.
    relay.set_frozen(false);
    let deadline = Instant::now() + Duration::from_secs(5);
    while bearer(&b, "/v2/appointments/x", &token).await.status != 401 {
        assert!(Instant::now() < deadline, "B never recovered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let token = issue(&a, &handshake_md5(&now)).await;
    until_cached(&b, &token).await;
    assert_eq!(cache_live(&b).await, Some(1));
}

/// `store.local_cache` is for the Redis store only, and bounded: it is how
/// late a revocation may reach a replica whose subscription missed it.
#[test]
fn the_local_cache_is_for_redis_and_at_most_10_seconds() {
    let upstream = "127.0.0.1:1".parse().unwrap();
    let store = |backend: &str, cache: &str| {
        let url = if backend == "redis" {
            "url = \"redis://127.0.0.1:1/\"\n"
        } else {
            ""
        };
        let toml = config(
            upstream,
            &routes(&format!(
                "\n[store]\nbackend = \"{backend}\"\n{url}local_cache = \"{cache}\"\n"
            )),
        );
        Config::from_toml(&toml).map(|c| (format!("{:?}", c.store), c.warnings))
    };
    let (ok, warnings) = store("redis", "2s").unwrap();
    assert!(ok.contains("local_cache: Some(2s)"), "{ok}");
    let about_idle = |w: &Vec<String>| {
        w.iter()
            .filter(|w| w.contains(".idle"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert!(about_idle(&warnings).is_empty(), "{warnings:?}");
    // A business idle (4h here) not longer than the cache is let through with
    // a warning: its sessions can expire while in constant use.
    let toml = config(
        upstream,
        &routes("\n[store]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:1/\"\nlocal_cache = \"5s\"\n"),
    )
    .replace("idle = \"4h\"", "idle = \"5s\"");
    let warnings = about_idle(&Config::from_toml(&toml).unwrap().warnings);
    assert!(
        warnings.len() == 1
            && warnings[0]
                .starts_with("business[0].idle (5s) is not longer than store.local_cache (5s)"),
        "{warnings:?}"
    );
    for (backend, cache, want) in [
        ("memory", "2s", "only applies to backend = \"redis\""),
        ("redis", "11s", "between 1ms and 10s"),
        ("redis", "0s", "between 1ms and 10s"),
    ] {
        let e = store(backend, cache).unwrap_err().to_string();
        assert!(e.contains("store.local_cache") && e.contains(want), "{e}");
    }
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

// ---- regressions from the security review ----
//
// `f*` tests reproduce findings of the review (each failed before its fix);
// `held_*` are probes that held; `demo_*` shows a documented weakness.
mod review {
    use super::*;

    fn md5_sig() -> String {
        md5_hex(&format!("12345{PRIVATE_KEY}"))
    }

    async fn setup() -> Setup {
        setup_with("").await
    }

    async fn setup_with(store: &str) -> Setup {
        let up = Upstream::start(Behavior::Ok).await;
        let clock = Clock::system();
        let gate = Gate::start_with_clock(&config(up.addr, &routes(store)), clock.clone()).await;
        Setup { up, gate, clock }
    }

    fn redis_store(redis: &RedisServer) -> String {
        format!(
            "\n[store]\nbackend = \"redis\"\nurl = \"{}\"\ntimeout = \"500ms\"\n",
            redis.url()
        )
    }

    /// The Redis key of a session, as `store::key("session", [token])` with the
    /// default prefix.
    fn redis_session_key(token: &str) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update((b"session".len() as u64).to_be_bytes());
        h.update(b"session");
        h.update((token.len() as u64).to_be_bytes());
        h.update(token.as_bytes());
        let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        format!("scopegate:s:{hex}")
    }

    /// Fires `n` concurrent bearer requests; returns their statuses.
    async fn burst(gate: &Gate, token: &str, n: usize) -> Vec<u16> {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (url, token) = (gate.url("/v2/appointments/x"), token.to_string());
                tokio::spawn(async move {
                    send(
                        Request::get(url)
                            .header("authorization", format!("Bearer {token}"))
                            .body(Full::default())
                            .unwrap(),
                    )
                    .await
                    .status
                    .as_u16()
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }

    // ===================================================================
    // Findings
    // ===================================================================

    /// F1 (memory): an idle-expired session is let through by concurrent uses
    /// (the first use slides `last_used` before anybody checks idleness), and can
    /// even be resurrected (a touch's Put lands after the expiring request's
    /// delete).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn f1_a_burst_cannot_revive_an_idle_expired_session_memory() {
        // Probabilistic (a race between threads): tries for up to 6 s.
        let s = setup().await;
        let started = std::time::Instant::now();
        let (mut passed, mut resurrected, mut rounds) = (0, 0, 0);
        while started.elapsed() < Duration::from_secs(6) && passed + resurrected == 0 {
            rounds += 1;
            let token = issue(&s.gate, &handshake_md5(&s.clock.now().to_string())).await;
            s.clock.advance(Duration::from_secs(4 * 3600 + 60));
            let statuses = burst(&s.gate, &token, 48).await;
            passed += statuses.iter().filter(|&&c| c == 200).count();
            if bearer(&s.gate, "/v2/appointments/x", &token).await.status == 200 {
                resurrected += 1;
            }
        }
        assert_eq!(
            (passed, resurrected),
            (0, 0),
            "after {rounds} rounds: requests let through on idle-expired sessions / sessions alive again afterwards"
        );
    }

    /// F1 (redis): the same through the shared store: TOUCH slides `l` before the
    /// caller decides the session is idle-expired, so every concurrent request
    /// between that TOUCH and the caller's DEL sees a fresh `l` and passes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn f1_a_burst_cannot_revive_an_idle_expired_session_redis() {
        let redis = RedisServer::start().await;
        let s = setup_with(&redis_store(&redis)).await;
        let mut passed = 0;
        for _ in 0..20 {
            let token = issue(&s.gate, &handshake_md5(&s.clock.now().to_string())).await;
            s.clock.advance(Duration::from_secs(4 * 3600 + 60));
            let statuses = burst(&s.gate, &token, 32).await;
            passed += statuses.iter().filter(|&&c| c == 200).count();
        }
        assert_eq!(passed, 0, "requests let through on idle-expired sessions");
    }

    /// F2 (memory): logout racing a concurrent use. `session_touch` is a moka
    /// `and_compute_with` (read, then Put) and `session_delete` is a plain
    /// `remove` that does not take the compute lock, so a touch that read the
    /// record before the remove writes it back after it: the logout answered 204
    /// but the token keeps working.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn f2_a_use_racing_logout_cannot_resurrect_the_session_memory() {
        // Probabilistic (a race between threads): tries for up to 8 s.
        let s = setup().await;
        let started = std::time::Instant::now();
        let (mut resurrected, mut rounds) = (0, 0);
        while started.elapsed() < Duration::from_secs(8) && resurrected == 0 {
            rounds += 1;
            let token = issue(&s.gate, &handshake_md5(&s.clock.now().to_string())).await;
            let users = {
                let (url, token) = (s.gate.url("/v2/appointments/x"), token.clone());
                tokio::spawn(async move {
                    let tasks: Vec<_> = (0..24)
                        .map(|_| {
                            let (url, token) = (url.clone(), token.clone());
                            tokio::spawn(async move {
                                send(
                                    Request::get(url)
                                        .header("authorization", format!("Bearer {token}"))
                                        .body(Full::default())
                                        .unwrap(),
                                )
                                .await
                            })
                        })
                        .collect();
                    for t in tasks {
                        let _ = t.await;
                    }
                })
            };
            tokio::time::sleep(Duration::from_micros(300)).await;
            let out = logout(&s.gate, &token).await;
            users.await.unwrap();
            if out.status == 204
                && bearer(&s.gate, "/v2/appointments/x", &token).await.status == 200
            {
                resurrected += 1;
            }
        }
        assert_eq!(
            resurrected, 0,
            "after {rounds} rounds: a session alive after a 204 logout"
        );
    }

    /// F3: a session token after `Bearer<TAB>` or inside a comma list was
    /// not recognised and reached the upstream of a route that did not
    /// authenticate it.
    #[tokio::test]
    async fn f3_a_session_bearer_in_any_spelling_never_reaches_the_upstream() {
        let s = setup().await;
        let token = issue(&s.gate, &handshake_md5(&s.clock.now().to_string())).await;
        for value in [
            format!("Bearer\t{token}"),
            format!("Basic Zm9vOmJhcg==, Bearer {token}"),
            format!("bearer {}", token.to_uppercase()),
        ] {
            let out = get_raw(&s.gate, "/open", &format!("Authorization: {value}\r\n")).await;
            assert_eq!(statuses(&out), [200], "{out}");
        }
        for rec in s.up.records() {
            let auth = rec.all("authorization");
            assert!(
                auth.iter()
                    .all(|v| !v.to_ascii_lowercase().contains("st:api:api:")),
                "session token forwarded: {auth:?}"
            );
        }
    }

    /// F4 (redis): a session hash missing a field (or with a non-numeric one) is
    /// meant to be "treated as absent" (store.rs), but the TOUCH script runs
    /// `tonumber(v[4])` / `PEXPIRE .. v[6]` first and errors: the client gets a
    /// 503 (not the uniform 401) for as long as the key lives, and the record is
    /// never cleaned up.
    #[tokio::test]
    async fn f4_a_redis_record_missing_a_field_reads_as_absent() {
        let redis = RedisServer::start().await;
        let s = setup_with(&redis_store(&redis)).await;
        let now = s.clock.now().to_string();

        let t1 = issue(&s.gate, &handshake_md5(&now)).await;
        assert_eq!(bearer(&s.gate, "/v2/appointments/x", &t1).await.status, 200);
        assert_eq!(
            redis_cli(&redis, &["HDEL", &redis_session_key(&t1), "l"]),
            "1"
        );
        let r1 = bearer(&s.gate, "/v2/appointments/x", &t1).await;

        let t2 = issue(&s.gate, &handshake_md5(&now)).await;
        assert_eq!(
            redis_cli(&redis, &["HSET", &redis_session_key(&t2), "i", "x"]),
            "0"
        );
        let r2 = bearer(&s.gate, "/v2/appointments/x", &t2).await;

        assert_eq!(
            (r1.status.as_u16(), r2.status.as_u16()),
            (401, 401),
            "a record this version did not write must read as absent"
        );
    }

    /// F7: `session_token` / `session-token` are not stripped from forwarded
    /// queries: CREDENTIAL_PARAMS is compared after `fold`, which keeps `_`, so
    /// only camel/lower spellings of `sessionToken` match. A backend that maps
    /// snake_case to camelCase (common JSON/param middlewares) reads them as the
    /// session token.
    #[tokio::test]
    async fn f7_snake_case_session_token_params_are_stripped() {
        let s = setup().await;
        let t = issue(&s.gate, &handshake_hmac(&s.clock.now().to_string())).await;
        let q = format!("/open?a=1&session_token={t}&session-token={t}");
        assert_eq!(get(&s.gate.url(&q)).await.status, 200);
        let target = s.up.single().target;
        assert!(!target.contains(&t[11..]), "forwarded: {target}");
    }

    /// F6: a route whose path is `session.path` is accepted by the config and
    /// silently never reached (the handshake is intercepted before routing, on
    /// every host).
    #[tokio::test]
    async fn f8_a_route_at_the_handshake_path_is_refused() {
        let up = Upstream::start(Behavior::Ok).await;
        let toml = config(
            up.addr,
            &format!(
                "{}\n[[route]]\nname = \"vendor-handshake\"\npath = \"/sessionToken\"\nauth = [\"public\"]\nupstream = \"backend\"\n",
                routes("")
            ),
        );
        let parsed = scopegate::Config::from_toml(&toml);
        assert!(
            parsed.is_err(),
            "a route at session.path should be refused (it can never be reached)"
        );
    }

    // ===================================================================
    // Design weakness, demonstrated (passes)
    // ===================================================================

    /// md5 mode: the signature is md5(apiKey + privateKey), independent of the
    /// timestamp, so one observed handshake URL is a permanent credential: the
    /// window adds nothing (the attacker picks a fresh timestamp) and there is no
    /// replay protection even inside the window.
    #[tokio::test]
    async fn demo_md5_signature_is_a_static_reusable_secret() {
        let s = setup().await;
        let captured = md5_sig();
        // Same URL twice in the window: both accepted (no single use in md5 mode).
        let target = handshake_md5(&s.clock.now().to_string());
        issue(&s.gate, &target).await;
        issue(&s.gate, &target).await;
        // 90 days later, with a fresh timestamp and the same signature.
        s.clock.advance(Duration::from_secs(90 * 86400));
        let later = format!(
            "/sessionToken?apiKey=12345&timestamp={}&signature={captured}",
            s.clock.now()
        );
        issue(&s.gate, &later).await;
    }

    // ===================================================================
    // Probes that held
    // ===================================================================

    #[tokio::test]
    async fn held_handshake_parameter_confusion() {
        let s = setup().await;
        let now = s.clock.now();
        let sig = md5_sig();
        // Percent-encoded names count as the parameter: a duplicate is a 400.
        for t in [
            format!("/sessionToken?apiKey=12345&api%4Bey=99999&timestamp={now}&signature={sig}"),
            format!("/sessionToken?apiKey=12345&timestamp={now}&signature={sig}&sign%61ture=00"),
            format!("/sessionToken?apiKey=12345;apiKey=99999&timestamp={now}&signature={sig}"),
            format!("/sessionToken?apiKey=12345&timestamp={now};x=1&signature={sig}"),
            format!("/sessionToken?APIKEY=12345&timestamp={now}&signature={sig}"),
        ] {
            assert_eq!(get(&s.gate.url(&t)).await.status, 400, "{t}");
        }
        // Other spellings are ignored, not read as the parameter.
        let t = format!(
            "/sessionToken?apiKey=12345&APIKEY=99999&Signature=00&timestamp={now}&signature={sig}"
        );
        issue(&s.gate, &t).await;
        assert_eq!(s.up.count(), 0);
    }

    #[tokio::test]
    async fn held_timestamp_edge_cases() {
        let s = setup().await;
        let now_ms = s.clock.now_ms();
        let now = now_ms / 1000;
        let sig = md5_sig();
        let mut uniform = Uniform401::default();
        for ts in [
            "-1".to_string(),
            format!("-{now}"),
            format!("+{now}"),
            format!("{now}e0"),
            "99999999999".to_string(),              // year 5138 in seconds
            "99999999999999999999".to_string(),     // > u64 ms
            "999999999999999999999999".to_string(), // 24 digits
            format!("{}", u64::MAX),
            format!("{now_ms}.5"),               // ms with a fraction
            format!("{}", now_ms / 10),          // ambiguous: 1e11 region
            format!("{now}.{}", "9".repeat(30)), // too long
            format!("{now} "),
            "0".to_string(),
            format!("{}", now - 301),
        ] {
            let target = format!(
                "/sessionToken?apiKey=12345&timestamp={}&signature={sig}",
                ts.replace('+', "%2B").replace(' ', "%20")
            );
            uniform.check(&ts, &get_raw(&s.gate, &target, "").await);
        }
        // Accepted spellings of now.
        for ts in [
            format!("000{now}"),
            format!("{now}.{}", "1".repeat(12)),
            format!("{now_ms}"),
            format!("{}", now + 299),
        ] {
            issue(&s.gate, &handshake_md5(&ts)).await;
        }
    }

    #[tokio::test]
    async fn held_hmac_replay_via_equivalent_encodings() {
        let s = setup().await;
        let ts = s.clock.now().to_string();
        let sig = hmac_hex(HMAC_KEY, &format!("67890:{ts}"));
        issue(&s.gate, &handshake_hmac(&ts)).await;
        // `u8::from_str_radix` takes a leading '+': "+a" is read as 0x0a. The
        // mark is over the decoded bytes, so it is still a replay.
        let plus = match sig.find('0') {
            Some(i) if i % 2 == 0 => format!("{}%2B{}", &sig[..i], &sig[i + 1..]),
            _ => sig.to_uppercase(),
        };
        for s2 in [
            sig.to_uppercase(),
            plus,
            format!("{sig}00"),
            format!("00{sig}"),
        ] {
            let t = format!("/sessionToken?apiKey=67890&timestamp={ts}&signature={s2}");
            assert_eq!(get(&s.gate.url(&t)).await.status, 401, "{t}");
        }
        // Other spellings of the same instant need their own signature.
        for ts2 in [format!("0{ts}"), format!("{ts}000"), format!("{ts}.0")] {
            let t = format!("/sessionToken?apiKey=67890&timestamp={ts2}&signature={sig}");
            assert_eq!(get(&s.gate.url(&t)).await.status, 401, "{t}");
        }
    }

    #[tokio::test]
    async fn held_token_format_and_header_spellings() {
        let s = setup().await;
        let token = issue(&s.gate, &handshake_md5(&s.clock.now().to_string())).await;
        let mut uniform = Uniform401::default();
        for extra in [
            format!("Authorization: Bearer {}\r\n", token.to_uppercase()),
            format!(
                "Authorization: Bearer st:api:api:{}\r\n",
                token[11..].to_uppercase()
            ),
            format!("Authorization: Bearer {token}\r\nAuthorization: Bearer {token}\r\n"),
            format!("Authorization: Bearer\t{token}\r\n"),
            format!("Authorization: Bearer {token}x\r\n"),
            format!("Authorization: Basic {token}\r\n"),
            format!("Authorization: {token}\r\n"),
            format!("Proxy-Authorization: Bearer {token}\r\n"),
            format!("Cookie: sessionToken={token}\r\n"),
        ] {
            uniform.check(
                &extra,
                &get_raw(&s.gate, "/v2/appointments/x", &extra).await,
            );
        }
        for extra in [
            format!("Authorization: bearer {token}\r\n"),
            format!("Authorization: BEARER   {token}  \r\n"),
        ] {
            let out = get_raw(&s.gate, "/v2/appointments/x", &extra).await;
            assert_eq!(statuses(&out), [200], "{extra}");
        }
        for r in s.up.records() {
            assert!(r.all("authorization").is_empty());
        }
    }

    #[tokio::test]
    async fn held_no_session_token_reaches_the_upstream_from_query_or_duplicates() {
        let s = setup().await;
        let hmac = issue(&s.gate, &handshake_hmac(&s.clock.now().to_string())).await;
        let hex = &hmac[11..];
        // Public route: every spelling of the query parameter goes.
        let q = format!(
            "/open?a=1&SESSIONTOKEN={hmac}&sessionToken[]={hmac}&b=2;sessionToken={hmac}&session%54oken={hmac}&%20sessionToken={hmac}&sessionToken%00x={hmac}"
        );
        assert_eq!(get(&s.gate.url(&q)).await.status, 200);
        // Duplicate Authorization headers on a public route.
        let out = get_raw(
            &s.gate,
            "/open",
            &format!("Authorization: Basic Zm9v\r\nAuthorization: bearer  {hmac}\r\n"),
        )
        .await;
        assert_eq!(statuses(&out), [200]);
        // Session route with the query token and a stray header.
        let out = get_raw(
            &s.gate,
            &format!("/v2/appointments/x?sessionToken={hmac}&SessionToken={hmac}"),
            "Authorization: Bearer a\r\nAuthorization: Bearer b\r\n",
        )
        .await;
        assert_eq!(statuses(&out), [200], "{out}");
        for r in s.up.records() {
            assert!(!r.target.contains(hex), "{}", r.target);
            for (_, v) in r.headers.iter() {
                assert!(!String::from_utf8_lossy(v.as_bytes()).contains(hex));
            }
        }
        let recs = s.up.records();
        assert_eq!(recs[1].all("authorization"), ["Basic Zm9v"]);
        assert!(recs[2].all("authorization").is_empty());
    }

    #[tokio::test]
    async fn held_handshake_methods_and_logout() {
        let s = setup().await;
        let a = issue(&s.gate, &handshake_md5(&s.clock.now().to_string())).await;
        let b = issue(&s.gate, &handshake_md5(&s.clock.now().to_string())).await;
        for m in ["HEAD", "OPTIONS", "PUT", "PATCH", "POST"] {
            let r = send(
                Request::builder()
                    .method(m)
                    .uri(s.gate.url(&handshake_md5(&s.clock.now().to_string())))
                    .body(Full::default())
                    .unwrap(),
            )
            .await;
            assert_eq!(r.status, 405, "{m}");
        }
        // Logout needs the bearer itself: query tokens and other tokens do nothing.
        let r = send(
            Request::delete(s.gate.url(&format!("/sessionToken?sessionToken={a}")))
                .body(Full::default())
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 401);
        // DELETE with a body logs out only the presented session.
        let r = send(
            Request::delete(s.gate.url("/sessionToken"))
                .header("authorization", format!("Bearer {b}"))
                .body(Full::from(format!("{{\"sessionToken\":\"{a}\"}}")))
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 204);
        assert_eq!(bearer(&s.gate, "/v2/appointments/x", &a).await.status, 200);
        assert_eq!(bearer(&s.gate, "/v2/appointments/x", &b).await.status, 401);
        assert_eq!(logout(&s.gate, &b).await.status, 401);
        assert_eq!(s.up.count(), 1);
    }

    #[tokio::test]
    async fn held_store_errors_are_503_and_leak_nothing() {
        // A Redis URL with a password, to a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let store = format!(
            "\n[store]\nbackend = \"redis\"\nurl = \"redis://:hunter2secret@127.0.0.1:{port}/\"\ntimeout = \"200ms\"\n"
        );
        let s = setup_with(&store).await;
        let now = s.clock.now().to_string();
        for r in [
            get(&s.gate.url(&handshake_md5(&now))).await,
            get(&s.gate.url(&handshake_hmac(&now))).await,
            bearer(
                &s.gate,
                "/v2/appointments/x",
                "st:api:api:0123456789abcdef0123456789abcdef",
            )
            .await,
            logout(&s.gate, "st:api:api:0123456789abcdef0123456789abcdef").await,
        ] {
            assert_eq!(r.status, 503);
            assert_eq!(r.error_code(), "store_unavailable");
            let body = String::from_utf8_lossy(&r.body).to_lowercase();
            assert!(
                !body.contains("hunter2") && !body.contains("redis"),
                "{body}"
            );
        }
        // A bad signature is still the 401 (checked before the store).
        let bad = format!("/sessionToken?apiKey=12345&timestamp={now}&signature=00");
        assert_eq!(get(&s.gate.url(&bad)).await.status, 401);
        assert_eq!(s.up.count(), 0);
        // Debug output of the settings never prints the URL.
        let cfg = scopegate::Config::from_toml(&config(s.up.addr, &routes(&store))).unwrap();
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(!dbg.contains(PRIVATE_KEY));
    }

    #[tokio::test]
    async fn held_revocation_key_change_and_cap_with_redis() {
        let redis = RedisServer::start().await;
        let s = setup_with(&redis_store(&redis)).await;
        let t = issue(&s.gate, &handshake_md5(&s.clock.now().to_string())).await;
        // The record holds the key id (8 bytes of SHA-256 of the private key), not the key.
        let fields = redis_cli(&redis, &["HGETALL", &redis_session_key(&t)]);
        assert!(
            !fields.contains(PRIVATE_KEY) && !fields.contains(&t),
            "{fields}"
        );
        // Absolute cap never slides, even with uses every 3 h.
        for _ in 0..3 {
            s.clock.advance(Duration::from_secs(3 * 3600));
            assert_eq!(bearer(&s.gate, "/v2/appointments/x", &t).await.status, 200);
        }
        s.clock.advance(Duration::from_secs(3601));
        assert_eq!(bearer(&s.gate, "/v2/appointments/x", &t).await.status, 401);
        // Deleted after the refusal.
        assert_eq!(redis_cli(&redis, &["EXISTS", &redis_session_key(&t)]), "0");
        // Admin revocation: unknown ids are refused; GET is 405.
        let admin = s.gate.admin.unwrap();
        let r = get(&format!("http://{admin}/sessions/revoke?business=biz-1")).await;
        assert_eq!(r.status, 405);
        let r = send(
            Request::post(format!(
                "http://{admin}/sessions/revoke?business=biz-9&business=biz-1"
            ))
            .body(Full::default())
            .unwrap(),
        )
        .await;
        assert_eq!(r.status, 404);
    }
}
