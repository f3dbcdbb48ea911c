//! `[failures]` through real listeners: counts shared by two scopegate
//! instances through a real `redis-server` (spawned on a free port), what
//! Redis holds, limiting on without Redis, and counts kept across a reload.
//!
//! Clients are told apart by `X-Forwarded-For` (the loopback peer is a
//! trusted proxy). A failure is an action link signed with a key the gate
//! does not have; a valid link is served on every gate.

mod common;

use std::time::{Duration, Instant};

use common::{redis::RedisServer, *};
use http::Request;
use http_body_util::Full;
use scopegate::{actions::Link, Config};

const KEY: &str = "live_api_key_shop_7nzvc7wsBQQISLeFSVhROys9V1bUJ1z7";
const WRONG_KEY: &str = "live_api_key_shop_WRONGwsBQQISLeFSVhROys9V1bUJ1z7";
const LIMIT: usize = 5;
const PREFIX: &str = "sgtest:";

/// Action links (not single use: serving one needs no store) behind a
/// trusted proxy, `LIMIT` failures a minute, and `store`.
fn routes(key: &str, store: &str, failures: &str) -> String {
    format!(
        r#"
[proxy]
trusted_proxies = ["127.0.0.1/32"]

[[app]]
slug = "shop"
[[app.key]]
key = "{key}"

[[route]]
name = "actions"
path = "/v2/bookings/{{id}}/external_action/{{action}}"
auth = ["action-link"]
upstream = "backend"

[[action]]
name = "cancel_by_customer"
upstream = "PUT /v2/bookings/{{id}}/cancel_by_customer"
ttl = "1h"

[failures]
limit = {LIMIT}
window = "1m"
{failures}

{store}
"#
    )
}

fn redis_store(redis: &RedisServer) -> String {
    format!(
        "[store]\nbackend = \"redis\"\nurl = \"{}\"\nkey_prefix = \"{PREFIX}\"\ntimeout = \"300ms\"\n",
        redis.url()
    )
}

/// A link for booking `b-1` signed with `key`.
fn link(key: &str) -> String {
    let config = Config::from_toml(&config(
        "127.0.0.1:1".parse().unwrap(),
        &routes(key, "", ""),
    ))
    .unwrap();
    let links = &config.auth.actions;
    links
        .mint(
            &config.auth.apps,
            &Link {
                app: "shop",
                booking_id: "b-1",
                action: links.get("cancel_by_customer").unwrap(),
                subject: None,
                ttl: None,
            },
            unix_now(),
        )
        .unwrap()
}

/// One request from `client`.
async fn from(gate: &Gate, client: &str, target: &str) -> Reply {
    send(
        Request::get(gate.url(target))
            .header("x-forwarded-for", client)
            .body(Full::default())
            .unwrap(),
    )
    .await
}

/// `client` tries `bad` on each gate in turn until every gate has refused
/// it twice in a row (at most 40 tries). Returns the statuses in order.
async fn guess_until_limited(gates: &[&Gate], client: &str, bad: &str) -> Vec<u16> {
    let mut statuses = Vec::new();
    let mut refused_in_a_row = 0;
    for i in 0..40 {
        let r = from(gates[i % gates.len()], client, bad).await;
        match r.status.as_u16() {
            401 => refused_in_a_row = 0,
            429 => {
                assert_eq!(r.error_code(), "too_many_failures");
                let after: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
                assert!((1..=60).contains(&after), "Retry-After {after}");
                refused_in_a_row += 1;
            }
            other => panic!("try {i}: unexpected {other}"),
        }
        statuses.push(r.status.as_u16());
        if refused_in_a_row == 2 * gates.len() {
            break;
        }
    }
    statuses
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

async fn redis_conn(redis: &RedisServer) -> ::redis::aio::MultiplexedConnection {
    ::redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Script calls Redis has run so far (`EVAL` and `EVALSHA`), not counting
/// failed ones (the first `EVALSHA` of a script Redis has not seen yet).
async fn script_calls(conn: &mut ::redis::aio::MultiplexedConnection) -> u64 {
    let info: String = ::redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    let field = |l: &str, name: &str| -> u64 {
        l.split([':', ','])
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
            .unwrap_or(0)
    };
    info.lines()
        .filter(|l| l.starts_with("cmdstat_eval:") || l.starts_with("cmdstat_evalsha:"))
        .map(|l| field(l, "calls") - field(l, "failed_calls"))
        .sum()
}

/// Two gates sharing one Redis: failures on A and on B add up, and the
/// client is refused on both after `LIMIT + 1` failures (each other replica
/// lets one more through before it learns). The same two gates without
/// sharing let `2 * LIMIT` through. A valid credential from another client
/// is served on both, and costs Redis nothing. Redis holds no credential.
#[tokio::test]
async fn failures_on_two_gates_add_up_through_redis() {
    let redis = RedisServer::start().await;
    let up = Upstream::start(Behavior::Ok).await;
    let (good, bad) = (link(KEY), link(WRONG_KEY));
    let toml = config(up.addr, &routes(KEY, &redis_store(&redis), ""));
    let (a, b) = (Gate::start(&toml).await, Gate::start(&toml).await);
    let mut conn = redis_conn(&redis).await;

    // Success costs no Redis call.
    let before = script_calls(&mut conn).await;
    for i in 0..10 {
        let gate = if i % 2 == 0 { &a } else { &b };
        assert_eq!(from(gate, "198.51.100.9", &good).await.status, 200);
    }
    assert_eq!(script_calls(&mut conn).await, before, "no Redis call");

    let shared = guess_until_limited(&[&a, &b], "198.51.100.1", &bad).await;
    eprintln!("shared through Redis, two gates, limit {LIMIT}: {shared:?}");
    assert_eq!(count(&shared, 401), LIMIT + 1, "{shared:?}");
    assert_eq!(shared[..LIMIT + 1], [401; LIMIT + 1]);
    assert_eq!(
        script_calls(&mut conn).await,
        before + LIMIT as u64 + 1,
        "one call per failure, none per refusal"
    );
    // The limited client is refused before its credential is looked at...
    assert_eq!(from(&a, "198.51.100.1", &good).await.status, 429);
    assert_eq!(from(&b, "198.51.100.1", &good).await.status, 429);
    // ...while another client is served on both.
    assert_eq!(from(&a, "198.51.100.9", &good).await.status, 200);
    assert_eq!(from(&b, "198.51.100.9", &good).await.status, 200);
    assert_eq!(up.count(), 12);

    // What Redis holds: one counter per client address, named by the
    // address, holding a number: no token, signature or key.
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys, [format!("{PREFIX}fail:198.51.100.1/32")]);
    let value: String = ::redis::cmd("GET")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(value, (LIMIT + 1).to_string());
    let ttl: i64 = ::redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 50_000 && ttl <= 60_000, "{ttl}");
    let token = |l: &str| l.split("signature=").nth(1).unwrap().to_string();
    for held in [&keys[0], &value] {
        for secret in [token(&good), token(&bad), KEY.into(), WRONG_KEY.into()] {
            for piece in secret.as_bytes().chunks(12) {
                let piece = std::str::from_utf8(piece).unwrap();
                assert!(!held.contains(piece), "{held:?} holds {piece:?}");
            }
        }
    }

    // The same two gates counting alone.
    let alone = config(
        up.addr,
        &routes(KEY, &redis_store(&redis), "shared = false"),
    );
    let (c, d) = (Gate::start(&alone).await, Gate::start(&alone).await);
    let separate = guess_until_limited(&[&c, &d], "198.51.100.2", &bad).await;
    eprintln!("not shared, two gates, limit {LIMIT}: {separate:?}");
    assert_eq!(count(&separate, 401), 2 * LIMIT, "{separate:?}");
}

/// Redis gone: failures are still limited, by each gate alone, and no
/// request fails because the counter store is down (a failed credential is
/// a quick 401, then 429; a valid one is served). The lost calls are in
/// the metrics. Redis back: counts are shared again without a restart.
#[tokio::test]
async fn without_redis_each_gate_limits_alone_and_nothing_fails() {
    let mut redis = RedisServer::start().await;
    let up = Upstream::start(Behavior::Ok).await;
    let (good, bad) = (link(KEY), link(WRONG_KEY));
    let toml = config(up.addr, &routes(KEY, &redis_store(&redis), ""));
    let (a, b) = (Gate::start(&toml).await, Gate::start(&toml).await);
    redis.kill();

    let mut slowest = Duration::ZERO;
    let mut statuses = Vec::new();
    for _ in 0..LIMIT + 3 {
        let started = Instant::now();
        statuses.push(from(&a, "198.51.100.3", &bad).await.status.as_u16());
        slowest = slowest.max(started.elapsed());
    }
    eprintln!("Redis down, one gate, limit {LIMIT}: {statuses:?}, slowest {slowest:?}");
    assert_eq!(statuses[..LIMIT], [401; LIMIT]);
    assert_eq!(statuses[LIMIT..], [429; 3]);
    assert!(slowest < Duration::from_secs(1), "slowest {slowest:?}");
    assert_eq!(from(&a, "198.51.100.9", &good).await.status, 200);
    assert_eq!(from(&b, "198.51.100.9", &good).await.status, 200);
    assert_eq!(up.count(), 2);
    let metrics = get(&format!("http://{}/metrics", a.admin.unwrap())).await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.lines().any(|l| l.starts_with(
            "scopegate_store_operations_total{op=\"failure_count\",result=\"error\"}"
        )),
        "{text}"
    );

    redis.restart().await;
    // Past the second each gate waits before trying Redis again.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let shared = guess_until_limited(&[&a, &b], "198.51.100.4", &bad).await;
    eprintln!("Redis back, two gates, limit {LIMIT}: {shared:?}");
    assert_eq!(count(&shared, 401), LIMIT + 1, "{shared:?}");
}

/// A reload builds a new limiter; it goes on with the running counts. A
/// raised limit applies at once.
#[tokio::test]
async fn failure_counts_survive_a_reload() {
    let up = Upstream::start(Behavior::Ok).await;
    let bad = link(WRONG_KEY);
    let toml = config(up.addr, &routes(KEY, "", ""));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scopegate.toml");
    std::fs::write(&path, &toml).unwrap();
    let gate = Gate::start(&toml).await;

    let before = guess_until_limited(&[&gate], "198.51.100.5", &bad).await;
    assert_eq!(count(&before, 401), LIMIT, "{before:?}");
    gate.reload(&path).unwrap();
    assert_eq!(from(&gate, "198.51.100.5", &bad).await.status, 429);

    std::fs::write(
        &path,
        toml.replace(
            &format!("limit = {LIMIT}"),
            &format!("limit = {}", LIMIT + 2),
        ),
    )
    .unwrap();
    gate.reload(&path).unwrap();
    let after = guess_until_limited(&[&gate], "198.51.100.5", &bad).await;
    eprintln!("after raising the limit by 2 on reload: {after:?}");
    assert_eq!(after[..3], [401, 401, 429], "{after:?}");
}

/// `shared` defaults to on with the Redis store and cannot be asked for
/// without it.
#[test]
fn sharing_needs_the_redis_store() {
    let upstream = "127.0.0.1:1".parse().unwrap();
    let redis = "[store]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:1/\"\n";
    let limiter = |store: &str, failures: &str| {
        let c = Config::from_toml(&config(upstream, &routes(KEY, store, failures))).unwrap();
        format!("{:?}", c.auth.failures.unwrap())
    };
    assert!(limiter(redis, "").contains("shared: true"));
    assert!(limiter(redis, "shared = false").contains("shared: false"));
    assert!(limiter("", "").contains("shared: false"));
    let e = Config::from_toml(&config(upstream, &routes(KEY, "", "shared = true")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("failures.shared") && e.contains("redis"), "{e}");
}

/// The two credential checks scopegate answers itself, the session
/// handshake (a signature over the business's private key) and
/// `apikeyinfo` (an application's secret key), are limited like routes: a
/// guess counts, past the limit the client is refused even with the right
/// secret, and every other client is served. A logout is never refused.
#[tokio::test]
async fn the_session_handshake_and_apikeyinfo_are_limited_like_routes() {
    use md5::{Digest, Md5};
    const PRIVATE_KEY: &str = "pk_live_9f8e7d6c5b4a3210";
    const SECRET: &str = "sk-frontdesk-5c1e9a07d3b24f68";
    const API_KEY: &str = "KEY0BOOKINGS0RW0ALL0000000000001";
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::start(&config(
        up.addr,
        &format!(
            r#"
[proxy]
trusted_proxies = ["127.0.0.1/32"]

[failures]
limit = {LIMIT}
window = "1m"

[[business]]
id = "biz-1"
api_key = "12345"
private_key = "{PRIVATE_KEY}"

[[application]]
id = "app-1"
name = "Front desk"
secret_key = "{SECRET}"

[[api_key]]
key = "{API_KEY}"
application = "app-1"
business = "biz-1"
permissions = ["bookings_rw_all"]

[[route]]
name = "bookings"
path = "/v2/bookings/*"
auth = ["session"]
upstream = "backend"
"#
        ),
    ))
    .await;
    let md5 = |s: String| -> String {
        Md5::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let now = unix_now();
    let handshake =
        |sig: &str| format!("/sessionToken?apiKey=12345&timestamp={now}&signature={sig}");
    let good_handshake = handshake(&md5(format!("12345{PRIVATE_KEY}")));
    let info =
        |secret: &str| format!("/v2/settings/apikeyinfo?apiKey={API_KEY}&secretKey={secret}");
    let good_info = info(SECRET);

    // Handshake guesses from one client: LIMIT 401s, then 429 even for the
    // right signature; another client still gets its session.
    let mut statuses = Vec::new();
    for i in 0..LIMIT + 2 {
        let sig = md5(format!("guess-{i}"));
        statuses.push(
            from(&gate, "198.51.100.20", &handshake(&sig))
                .await
                .status
                .as_u16(),
        );
    }
    eprintln!("handshake guesses, limit {LIMIT}: {statuses:?}");
    assert_eq!(statuses[..LIMIT], [401; LIMIT], "{statuses:?}");
    assert_eq!(statuses[LIMIT..], [429; 2], "{statuses:?}");
    let refused = from(&gate, "198.51.100.20", &good_handshake).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.error_code(), "too_many_failures");
    assert!(refused.headers.contains_key("retry-after"));
    let served = from(&gate, "198.51.100.21", &good_handshake).await;
    assert_eq!(served.status, 200, "{:?}", served.body);
    let token = served.json()["sessionToken"].as_str().unwrap().to_owned();

    // The limited client can still log out (a logout is not a guess).
    let logout = send(
        Request::delete(gate.url("/sessionToken"))
            .header("x-forwarded-for", "198.51.100.20")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(logout.status.as_u16() / 100, 2, "logout: {}", logout.status);

    // apikeyinfo guesses, from a third client: the same.
    let mut statuses = Vec::new();
    for i in 0..LIMIT + 2 {
        let r = from(&gate, "198.51.100.22", &info(&format!("sk-guess-{i}"))).await;
        statuses.push(r.status.as_u16());
    }
    eprintln!("apikeyinfo guesses, limit {LIMIT}: {statuses:?}");
    assert_eq!(statuses[..LIMIT], [401; LIMIT], "{statuses:?}");
    assert_eq!(statuses[LIMIT..], [429; 2], "{statuses:?}");
    assert_eq!(from(&gate, "198.51.100.22", &good_info).await.status, 429);
    assert_eq!(from(&gate, "198.51.100.23", &good_info).await.status, 200);
    // Asking without a key is not a guess: it is never counted.
    for _ in 0..LIMIT + 2 {
        let r = from(&gate, "198.51.100.24", "/v2/settings/apikeyinfo").await;
        assert_eq!(r.status, 401);
    }
    assert_eq!(from(&gate, "198.51.100.24", &good_info).await.status, 200);
    // None of it reached the backend.
    assert_eq!(up.count(), 0);
}
