//! The shared store on a real `redis-server` (spawned by the test on a free
//! port): two scopegate instances share single-use marks; Redis gone is a 503
//! (fail closed) and Redis back works again without a restart.

mod common;

use std::time::{Duration, Instant};

use common::{redis::RedisServer, *};
use scopegate::{
    actions::Link,
    store::{key, SessionRecord, Slide, Store, StoreSettings},
    Config,
};

const KEY: &str = "live_api_key_shop_7nzvc7wsBQQISLeFSVhROys9V1bUJ1z7";

fn routes(redis_url: &str) -> String {
    format!(
        r#"
[[app]]
slug = "shop"
[[app.key]]
key = "{KEY}"

[[route]]
name = "actions"
path = "/v2/bookings/{{id}}/external_action/{{action}}"
auth = ["action-link"]
upstream = "backend"

[[route]]
name = "open"
path = "/open"
auth = ["public"]
upstream = "backend"

[[action]]
name = "cancel_by_customer"
upstream = "PUT /v2/bookings/{{id}}/cancel_by_customer"
single_use = true
ttl = "1h"

[store]
backend = "redis"
url = "{redis_url}"
timeout = "300ms"
"#
    )
}

fn link(config: &Config, booking: &str) -> String {
    let links = &config.auth.actions;
    links
        .mint(
            &config.auth.apps,
            &Link {
                app: "shop",
                booking_id: booking,
                action: links.get("cancel_by_customer").unwrap(),
                subject: None,
                ttl: None,
            },
            unix_now(),
        )
        .unwrap()
}

#[tokio::test]
async fn a_link_used_on_one_instance_is_used_on_the_other() {
    let redis = RedisServer::start().await;
    let up = Upstream::start(Behavior::Ok).await;
    let toml = config(up.addr, &routes(&redis.url()));
    let (a, b) = (Gate::start(&toml).await, Gate::start(&toml).await);
    let target = link(&Config::from_toml(&toml).unwrap(), "b-1");

    assert_eq!(get(&a.url(&target)).await.status, 200);
    let replay = get(&b.url(&target)).await;
    assert_eq!(replay.status, 409);
    assert_eq!(replay.error_code(), "link_already_used");
    assert_eq!(get(&a.url(&target)).await.status, 409);
    assert_eq!(up.count(), 1);

    // Concurrent uses across both instances: one reaches the upstream.
    let target = link(&Config::from_toml(&toml).unwrap(), "b-2");
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let url = if i % 2 == 0 {
                a.url(&target)
            } else {
                b.url(&target)
            };
            tokio::spawn(async move { get(&url).await.status.as_u16() })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => ok += 1,
            409 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(up.count(), 2);
}

#[tokio::test]
async fn redis_gone_is_a_503_and_redis_back_works_without_a_restart() {
    let mut redis = RedisServer::start().await;
    let up = Upstream::start(Behavior::Ok).await;
    let toml = config(up.addr, &routes(&redis.url()));
    let gate = Gate::start(&toml).await;
    let cfg = Config::from_toml(&toml).unwrap();
    assert_eq!(get(&gate.url(&link(&cfg, "b-0"))).await.status, 200);

    redis.kill();
    let target = link(&cfg, "b-1");
    let started = Instant::now();
    let down = get(&gate.url(&target)).await;
    assert_eq!(down.status, 503);
    assert_eq!(down.error_code(), "store_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(up.count(), 1, "nothing is forwarded without the mark");
    // Routes that need no store keep working.
    assert_eq!(get(&gate.url("/open")).await.status, 200);

    redis.restart().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let s = get(&gate.url(&target)).await.status.as_u16();
        if s != 503 || Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        status, 200,
        "the link was never marked while Redis was down"
    );
    assert_eq!(get(&gate.url(&target)).await.status, 409);
}

#[tokio::test]
async fn a_gate_starts_while_redis_is_down_and_serves_once_it_is_up() {
    let mut redis = RedisServer::start().await;
    redis.kill();
    let up = Upstream::start(Behavior::Ok).await;
    let toml = config(up.addr, &routes(&redis.url()));
    let gate = Gate::start(&toml).await;
    let target = link(&Config::from_toml(&toml).unwrap(), "b-1");
    assert_eq!(get(&gate.url(&target)).await.status, 503);
    redis.restart().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = get(&gate.url(&target)).await.status.as_u16();
        if s == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "still {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn sessions_slide_and_are_revoked_per_business_in_redis() {
    let redis = RedisServer::start().await;
    let store = Store::new(&StoreSettings::Redis {
        url: redis.url(),
        key_prefix: "t:".into(),
        timeout: Duration::from_millis(500),
        local_cache: None,
    })
    .unwrap();
    let k = key("session", &[b"st:api:api:0164ebb6d9c74d87b4b6edd9544166ec"]);
    assert_eq!(store.session_touch(&k, 1_000, Slide::Any).await, Ok(None));
    let rec = SessionRecord {
        business: "biz-1".into(),
        created_ms: 1_000,
        expires_ms: 1_000 + 86_400_000,
        last_used_ms: 1_000,
        generation: store.generation("biz-1").await.unwrap(),
        idle: Duration::from_secs(4 * 3600),
        key_id: "0011223344556677".into(),
        customer: None,
    };
    store.session_put(&k, &rec).await.unwrap();
    let found = store
        .session_touch(&k, 2_000, Slide::Any)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.record, rec, "the record as it was before this use");
    assert_eq!(found.generation, 0);
    let found = store
        .session_touch(&k, 3_000, Slide::Any)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.record.last_used_ms, 2_000, "each use slides");

    // The server-side TTL follows the idle time (a store dump holds no token).
    let mut conn = ::redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg("t:s:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1);
    assert!(!keys[0].contains("0164ebb6"), "{keys:?}");
    let ttl: i64 = ::redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        ttl > 4 * 3600 * 1000 - 5_000 && ttl <= 4 * 3600 * 1000,
        "{ttl}"
    );

    assert_eq!(store.revoke_business("biz-1").await, Ok(1));
    let found = store
        .session_touch(&k, 4_000, Slide::Any)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.generation, 1, "revoked: generation moved on");
    store.session_delete(&k).await.unwrap();
    assert_eq!(store.session_touch(&k, 5_000, Slide::Any).await, Ok(None));
}

/// Redis stopped and restarted under load: single-use links are followed by
/// 4 clients all along. While Redis is gone every answer is a quick 503
/// (fail closed, nothing forwarded without its mark); once it is back the
/// same load is served again without a restart. Prints the figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_under_load_fails_closed_then_recovers() {
    let mut redis = RedisServer::start().await;
    let up = Upstream::start(Behavior::Ok).await;
    let toml = config(up.addr, &routes(&redis.url()));
    let gate = Gate::start(&toml).await;
    let cfg = std::sync::Arc::new(Config::from_toml(&toml).unwrap());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (cfg, stop, base) = (cfg.clone(), stop.clone(), gate.url(""));
            tokio::spawn(async move {
                let (mut ok, mut unavailable, mut other) = (0, 0, 0);
                let mut slowest = Duration::ZERO;
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    let url = format!("{base}{}", link(&cfg, &format!("w{w}-{i}")));
                    let t = Instant::now();
                    match get(&url).await.status.as_u16() {
                        200 => ok += 1,
                        503 => unavailable += 1,
                        _ => other += 1,
                    }
                    slowest = slowest.max(t.elapsed());
                }
                (ok, unavailable, other, slowest)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.restart().await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut unavailable, mut other, mut slowest) = (0, 0, 0, Duration::ZERO);
    for w in workers {
        let (o, u, x, s) = w.await.unwrap();
        ok += o;
        unavailable += u;
        other += x;
        slowest = slowest.max(s);
    }
    eprintln!(
        "redis restart under load: {ok} served, {unavailable} x 503 while down, {other} other, slowest {slowest:?}"
    );
    assert_eq!(other, 0, "only 200 or 503");
    assert!(unavailable > 0, "Redis down was noticed");
    assert!(ok > 20, "{ok} served");
    assert!(slowest < Duration::from_secs(3), "slowest {slowest:?}");
    // Served ones reached the upstream once each; refused ones never did.
    assert_eq!(up.count(), ok);
    // And the last requests were served again.
    let url = gate.url(&link(&cfg, "after"));
    assert_eq!(get(&url).await.status, 200);
}

/// A Redis user limited to scopegate's keys, with no channel rights (Redis
/// 7's default for new users): without `local_cache` nothing is published,
/// so sessions work as they always did; with it, the cache needs the
/// channel, and asks for it loudly (503) rather than serving unrevocable
/// entries.
#[tokio::test]
async fn a_user_without_channel_rights_needs_no_channel_unless_the_cache_is_on() {
    let redis = RedisServer::start().await;
    let mut admin = ::redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = ::redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "gate",
            "on",
            ">gate-pw",
            "~t:*",
            "+@all",
            "resetchannels",
        ])
        .query_async(&mut admin)
        .await
        .unwrap();
    let url = format!("redis://gate:gate-pw@{}/", redis.addr);
    let store = |local_cache| {
        Store::new(&StoreSettings::Redis {
            url: url.clone(),
            key_prefix: "t:".into(),
            timeout: Duration::from_millis(500),
            local_cache,
        })
        .unwrap()
    };
    let rec = SessionRecord {
        business: "biz-1".into(),
        created_ms: 1_000,
        expires_ms: 1_000 + 86_400_000,
        last_used_ms: 1_000,
        generation: 0,
        idle: Duration::from_secs(3600),
        key_id: "0011223344556677".into(),
        customer: None,
    };
    let k = key("session", &[b"st:api:api:5d41402abc4b2a76b9719d911017c592"]);

    let plain = store(None);
    plain.session_put(&k, &rec).await.unwrap();
    assert!(plain
        .session_touch(&k, 2_000, Slide::Any)
        .await
        .unwrap()
        .is_some());
    assert_eq!(plain.session_delete(&k).await, Ok(true));
    assert_eq!(plain.revoke_business("biz-1").await, Ok(1));

    let cached = store(Some(Duration::from_secs(1)));
    cached.session_put(&k, &rec).await.unwrap();
    assert!(cached
        .session_touch(&k, 2_000, Slide::Any)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        cached.session_delete(&k).await,
        Err(scopegate::store::StoreError::Unavailable),
        "the logout cannot be published: refused, not half done"
    );
    assert!(
        cached
            .session_touch(&k, 3_000, Slide::Any)
            .await
            .unwrap()
            .is_some(),
        "the session was not deleted without its message"
    );
}
