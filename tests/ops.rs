//! Operations: Prometheus metrics scraped from the admin listener after known
//! traffic (exact counts), and configuration reloads (in-process and through
//! the real binary on SIGHUP and on a file change): applied at once, refused
//! whole when invalid, and never failing a request in flight or under load.

mod common;

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use common::{process::Proc, *};
use http::Request;
use http_body_util::Full;

/// Scrapes `/metrics` and returns its lines.
async fn scrape(admin: std::net::SocketAddr) -> Vec<String> {
    let r = get(&format!("http://{admin}/metrics")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    String::from_utf8(r.body.to_vec())
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

/// The value of the sample whose line starts with `series` (name and labels).
fn sample(lines: &[String], series: &str) -> Option<f64> {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

const SSO_ROUTE: &str = r#"
[[route]]
name = "widget"
path = "/widget/*"
auth = ["sso"]
upstream = "backend"

[[sso_company]]
company_id = "37000"
secure_key = "sk_acme_7f3a9c1e5b2d4f60"

[sso.session]
handout = "header"

[[upstream]]
name = "dead"
url = "http://127.0.0.1:1"

[[route]]
name = "gone"
path = "/gone"
auth = ["public"]
upstream = "dead"
"#;

#[tokio::test]
async fn metrics_count_known_traffic_exactly() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, SSO_ROUTE).await;
    let admin = gate.admin.unwrap();
    for _ in 0..3 {
        assert_eq!(get(&gate.url("/v2/x")).await.status, 200);
    }
    for _ in 0..2 {
        assert_eq!(get(&gate.url("/widget/x?sso-token=AAAA")).await.status, 401);
    }
    assert_eq!(get(&gate.url("/nowhere")).await.status, 404);
    // A valid SSO token opens a session: store operations.
    let expires = chrono::DateTime::from_timestamp(unix_now() as i64 + 600, 0)
        .unwrap()
        .to_rfc3339();
    let payload = serde_json::json!({"first_name": "A", "last_name": "B",
        "email": "a@example.com", "expires": expires});
    let keys = scopegate::auth::sso::Keys::derive(b"sk_acme_7f3a9c1e5b2d4f60", "37000");
    let token = scopegate::auth::sso::mint_v2(payload.to_string().as_bytes(), &keys.v2);
    let r = get(&gate.url(&format!("/widget/x?sso-token={token}"))).await;
    assert_eq!(r.status, 200);
    // An upstream nobody listens on: one upstream error.
    assert_eq!(get(&gate.url("/gone")).await.status, 502);

    let m = scrape(admin).await;
    let count = |s: &str| sample(&m, s).unwrap_or_else(|| panic!("{s} missing:\n{}", m.join("\n")));
    assert_eq!(
        count(r#"scopegate_requests_total{route="v2",scheme="public",outcome="forwarded"}"#),
        3.0
    );
    assert_eq!(
        count(r#"scopegate_requests_total{route="widget",scheme="sso",outcome="unauthorized"}"#),
        2.0
    );
    assert_eq!(
        count(r#"scopegate_requests_total{route="-",scheme="-",outcome="not_found"}"#),
        1.0
    );
    assert_eq!(
        count(
            r#"scopegate_requests_total{route="gone",scheme="public",outcome="upstream_unavailable"}"#
        ),
        1.0
    );
    assert_eq!(
        count(r#"scopegate_upstream_errors_total{upstream="dead",kind="unavailable"}"#),
        1.0
    );
    assert_eq!(
        count(r#"scopegate_verify_seconds_count{scheme="sso"}"#),
        3.0
    );
    assert_eq!(
        count(r#"scopegate_store_operations_total{op="generation",result="ok"}"#),
        1.0
    );
    assert_eq!(
        count(r#"scopegate_store_operations_total{op="session_put",result="ok"}"#),
        1.0
    );
    assert_eq!(
        count(r#"scopegate_requests_total{route="widget",scheme="sso",outcome="forwarded"}"#),
        1.0
    );
    assert_eq!(
        count(r#"scopegate_verify_seconds_count{scheme="public"}"#),
        4.0
    );
    assert_eq!(
        count(r#"scopegate_upstream_seconds_count{upstream="backend"}"#),
        4.0
    );
    assert_eq!(
        count(r#"scopegate_upstream_seconds_count{upstream="dead"}"#),
        1.0
    );
    assert_eq!(
        count(&format!(
            r#"scopegate_build_info{{version="{}"}}"#,
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
    assert_eq!(count("scopegate_config_last_reload_ok"), 1.0);
    // Every connection above was closed by its client.
    assert!(count("scopegate_open_connections") <= 1.0);
    assert_eq!(m.last().map(String::as_str), Some("# EOF"));
    // No client input becomes a label.
    assert!(!m
        .iter()
        .any(|l| l.contains("AAAA") || l.contains("nowhere")));
}

fn with_route(up: &Upstream, name: &str, path: &str) -> String {
    config(
        up.addr,
        &format!("{PUBLIC_ROUTES}\n[[route]]\nname = \"{name}\"\npath = \"{path}\"\nauth = [\"public\"]\nupstream = \"backend\"\n"),
    )
}

#[tokio::test]
async fn a_reload_applies_at_once_and_an_invalid_file_changes_nothing() {
    let up = Upstream::start(Behavior::Ok).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scopegate.toml");
    std::fs::write(&path, with_route(&up, "first", "/first")).unwrap();
    let gate = Gate::start(&std::fs::read_to_string(&path).unwrap()).await;
    assert_eq!(get(&gate.url("/first")).await.status, 200);
    assert_eq!(get(&gate.url("/second")).await.status, 404);

    std::fs::write(&path, with_route(&up, "second", "/second")).unwrap();
    gate.reload(&path).unwrap();
    assert_eq!(get(&gate.url("/second")).await.status, 200);
    assert_eq!(get(&gate.url("/first")).await.status, 404);
    assert_eq!(
        up.records().last().unwrap().one("x-scope-route").as_deref(),
        Some("second")
    );

    // Invalid: refused whole, with the key named; the running one stays.
    let broken = with_route(&up, "third", "/third")
        + "\n[[route]]\nname = \"x\"\npath = \"/x\"\nauth = [\"public\"]\nupstream = \"nowhere\"\n";
    std::fs::write(&path, broken).unwrap();
    let e = gate.reload(&path).unwrap_err().to_string();
    assert!(e.contains("route[3].upstream"), "{e}");
    assert_eq!(get(&gate.url("/second")).await.status, 200);
    assert_eq!(get(&gate.url("/third")).await.status, 404);

    let m = scrape(gate.admin.unwrap()).await;
    assert_eq!(
        sample(&m, r#"scopegate_config_reloads_total{result="ok"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, r#"scopegate_config_reloads_total{result="error"}"#),
        Some(1.0)
    );
    assert_eq!(sample(&m, "scopegate_config_last_reload_ok"), Some(0.0));
}

#[tokio::test]
async fn a_request_in_flight_finishes_on_the_configuration_it_started_with() {
    let up = Upstream::start(Behavior::Delay(Duration::from_millis(600))).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scopegate.toml");
    std::fs::write(&path, with_route(&up, "first", "/first")).unwrap();
    let gate = Gate::start(&std::fs::read_to_string(&path).unwrap()).await;
    let url = gate.url("/first");
    let slow = tokio::spawn(async move { get(&url).await });
    assert!(up.wait_for_request(Duration::from_secs(2)).await);
    std::fs::write(&path, with_route(&up, "second", "/second")).unwrap();
    gate.reload(&path).unwrap();
    let r = slow.await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        up.records()[0].one("x-scope-route").as_deref(),
        Some("first")
    );
    assert_eq!(get(&gate.url("/first")).await.status, 404);
}

#[tokio::test]
async fn reloads_under_load_fail_no_request() {
    let up = Upstream::start(Behavior::Ok).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scopegate.toml");
    // Both versions serve /v2/*; they differ in an extra route.
    std::fs::write(&path, with_route(&up, "a", "/a")).unwrap();
    let gate = Gate::start(&std::fs::read_to_string(&path).unwrap()).await;
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let until = Instant::now() + Duration::from_millis(1500);
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (url, ok, failed) = (gate.url("/v2/load"), Arc::clone(&ok), Arc::clone(&failed));
        workers.push(tokio::spawn(async move {
            while Instant::now() < until {
                let r = send(Request::get(&url).body(Full::default()).unwrap()).await;
                if r.status == 200 { &ok } else { &failed }.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut reloads = 0;
    while Instant::now() < until {
        let (name, bad) = if reloads % 3 == 2 {
            ("c", true)
        } else if reloads % 2 == 0 {
            ("b", false)
        } else {
            ("a", false)
        };
        let mut toml = with_route(&up, name, &format!("/{name}"));
        if bad {
            toml.push_str("\n[limits]\nmax_headers = 0\n");
        }
        std::fs::write(&path, toml).unwrap();
        assert_eq!(gate.reload(&path).is_ok(), !bad);
        reloads += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for w in workers {
        w.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("{reloads} reloads under load: {ok} requests served, {failed} failed");
    assert!(reloads >= 20, "{reloads} reloads");
    assert!(ok > 100, "{ok} requests");
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed during {reloads} reloads",
        ok + failed
    );
}

/// The real binary: SIGHUP and a changed file both reload; an invalid file is
/// logged with its key and leaves the running configuration.
#[tokio::test]
async fn the_binary_reloads_on_sighup_and_on_a_file_change() {
    let up = Upstream::start(Behavior::Ok).await;
    let p = Proc::start(&with_route(&up, "first", "/first")).await;
    let url = |path: &str| format!("http://{}{path}", p.addr);
    assert_eq!(get(&url("/second")).await.status, 404);

    // A file change, seen by the watcher (every 2 s).
    std::fs::write(
        p.config_path(),
        with_route(&up, "second", "/second")
            .replace("127.0.0.1:0\"\ndrain", &format!("{}\"\ndrain", p.addr))
            .replace(
                "[admin]\naddress = \"127.0.0.1:0\"",
                &format!("[admin]\naddress = \"{}\"", p.admin),
            ),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(8);
    while get(&url("/second")).await.status != 200 {
        assert!(Instant::now() < deadline, "the change was not picked up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // An invalid file: logged with the key, the running configuration stays.
    let broken = with_route(&up, "third", "/third") + "\n[[route]]\nname = \"bad\"\npath = \"/bad\"\nauth = [\"public\"]\nupstream = \"nowhere\"\n";
    std::fs::write(p.config_path(), &broken).unwrap();
    p.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !p
        .stderr()
        .iter()
        .any(|l| l.contains("reload refused") && l.contains("route[3].upstream"))
    {
        assert!(
            Instant::now() < deadline,
            "no refusal logged:\n{}",
            p.stderr().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get(&url("/second")).await.status, 200);
    assert_eq!(get(&url("/third")).await.status, 404);

    // SIGHUP with a valid file.
    std::fs::write(p.config_path(), with_route(&up, "third", "/third")).unwrap();
    p.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while get(&url("/third")).await.status != 200 {
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        p.stderr()
            .iter()
            .any(|l| l.contains("settings take effect at the next restart")),
        "changed listen addresses are reported:\n{}",
        p.stderr().join("\n")
    );
}

/// From the review: a rotated secret file (`*_file`) is a configuration
/// change: the watcher reloads it, and the old secret stops working.
#[tokio::test]
async fn a_rotated_secret_file_takes_effect_without_a_signal() {
    let up = Upstream::start(Behavior::Ok).await;
    let secrets = tempfile::tempdir().unwrap();
    let secret_file = secrets.path().join("frontdesk.secret");
    std::fs::write(&secret_file, "sk-old-leaked-secret\n").unwrap();
    let key = "FULL0KEY0BOOKINGS0RWD0ALL000003";
    let p = Proc::start(&config(
        up.addr,
        &format!(
            r#"
[[application]]
id = "app-1"
secret_key_file = "{}"
[[api_key]]
key = "{key}"
application = "app-1"
business = "acct-1"
permissions = ["bookings_rwd_all"]
[[route]]
name = "bookings"
path = "/v2/bookings/*"
auth = ["api-key"]
upstream = "backend"
require = "bookings"
"#,
            secret_file.display()
        ),
    ))
    .await;
    let url = |s: &str| {
        format!(
            "http://{}/v2/bookings/b1?apiKey={key}&secretKey={s}",
            p.addr
        )
    };
    assert_eq!(get(&url("sk-old-leaked-secret")).await.status, 200);
    std::fs::write(&secret_file, "sk-new-secret\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&url("sk-old-leaked-secret")).await.status != 401 {
        assert!(Instant::now() < deadline, "the old secret still works");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(get(&url("sk-new-secret")).await.status, 200);
}

/// `admin.token`: `/metrics` and `POST /sessions/revoke` need it as a bearer
/// token, refused alike whatever is wrong; `/healthz` and `/readyz` stay open
/// for probes; a reload rotates it.
#[tokio::test]
async fn the_admin_token_guards_metrics_and_revocation_but_not_the_probes() {
    let up = Upstream::start(Behavior::Ok).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, "adm-4f1c9e0b7d2a6e35\n").unwrap();
    let toml = config(up.addr, PUBLIC_ROUTES).replace(
        "[admin]\naddress = \"127.0.0.1:0\"\n",
        &format!("[admin]\naddress = \"127.0.0.1:0\"\ntoken_file = {token_file:?}\n"),
    );
    assert!(toml.contains("token_file"), "{toml}");
    let path = dir.path().join("scopegate.toml");
    std::fs::write(&path, &toml).unwrap();
    let gate = Gate::start(&toml).await;
    let admin = gate.admin.unwrap();
    let call = |method: &'static str, path: &'static str, auth: Vec<String>| async move {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{admin}{path}"));
        for a in auth {
            req = req.header("authorization", a);
        }
        send(req.body(Full::default()).unwrap()).await
    };
    let bearer = |t: &str| vec![format!("Bearer {t}")];

    for path in ["/healthz", "/readyz"] {
        assert_eq!(call("GET", path, vec![]).await.status, 200, "{path}");
        assert_eq!(call("HEAD", path, vec![]).await.status, 200, "{path}");
        // They only read: a write is refused, and says what would do.
        for method in ["POST", "PUT", "DELETE"] {
            let r = call(method, path, vec![]).await;
            assert_eq!(r.status, 405, "{method} {path}");
            assert_eq!(r.headers["allow"], "GET, HEAD");
        }
    }
    let mut refusals = Vec::new();
    for auth in [
        vec![],
        bearer("adm-4f1c9e0b7d2a6e3"),
        bearer("adm-4f1c9e0b7d2a6e35x"),
        bearer("ADM-4F1C9E0B7D2A6E35"),
        vec!["Basic YWRtOmFkbQ==".to_string()],
        vec!["adm-4f1c9e0b7d2a6e35".to_string()],
        [bearer("adm-4f1c9e0b7d2a6e35"), bearer("other")].concat(),
    ] {
        for (method, path) in [("GET", "/metrics"), ("POST", "/sessions/revoke?business=x")] {
            let r = call(method, path, auth.clone()).await;
            assert_eq!(r.status, 401, "{method} {path} with {auth:?}");
            assert_eq!(r.headers["www-authenticate"], "Bearer");
            refusals.push(r.body);
        }
    }
    assert!(refusals.windows(2).all(|w| w[0] == w[1]), "refusals differ");
    assert!(!String::from_utf8_lossy(&refusals[0]).contains("adm-"));

    let good = bearer("adm-4f1c9e0b7d2a6e35");
    assert_eq!(call("GET", "/metrics", good.clone()).await.status, 200);
    assert_eq!(call("POST", "/metrics", good.clone()).await.status, 405);
    let r = call("GET", "/sessions/revoke?business=x", good.clone()).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.headers["allow"], "POST");
    let shouted = vec!["BEARER adm-4f1c9e0b7d2a6e35".to_string()];
    assert_eq!(
        call("GET", "/metrics", shouted).await.status,
        200,
        "any case of the scheme"
    );
    let r = call("POST", "/sessions/revoke?business=x", good.clone()).await;
    assert_eq!(r.status, 404, "past the token: an unknown business");

    // Rotated by a reload: the old token stops working at once.
    std::fs::write(&token_file, "adm-rotated-90b1c2d3e4f5").unwrap();
    gate.reload(&path).unwrap();
    assert_eq!(call("GET", "/metrics", good).await.status, 401);
    let rotated = bearer("adm-rotated-90b1c2d3e4f5");
    assert_eq!(call("GET", "/metrics", rotated).await.status, 200);
}

/// A short admin token is refused; an admin listener beyond loopback without
/// one is let through with a warning.
#[test]
fn admin_tokens_are_long_and_an_open_admin_listener_is_warned_of() {
    let base = config("127.0.0.1:1".parse().unwrap(), PUBLIC_ROUTES);
    let short = base.replace(
        "[admin]\naddress = \"127.0.0.1:0\"\n",
        "[admin]\naddress = \"127.0.0.1:0\"\ntoken = \"short\"\n",
    );
    let e = scopegate::Config::from_toml(&short)
        .unwrap_err()
        .to_string();
    assert!(e.contains("admin.token") && e.contains("16-4096"), "{e}");
    // A token that TOML reads as a number is refused without being shown.
    let numeric = base.replace(
        "[admin]\naddress = \"127.0.0.1:0\"\n",
        "[admin]\naddress = \"127.0.0.1:0\"\ntoken = 9876543210987654\n",
    );
    let e = scopegate::Config::from_toml(&numeric)
        .unwrap_err()
        .to_string();
    assert!(e.contains("admin.token") && e.contains("not shown"), "{e}");
    assert!(!e.contains("9876543210987654"), "{e}");
    let open = base.replace(
        "[admin]\naddress = \"127.0.0.1:0\"\n",
        "[admin]\naddress = \"0.0.0.0:0\"\n",
    );
    let warnings = scopegate::Config::from_toml(&open).unwrap().warnings;
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("admin.address is not a loopback address")),
        "{warnings:?}"
    );
    let local = scopegate::Config::from_toml(&base).unwrap().warnings;
    assert!(!local.iter().any(|w| w.starts_with("admin.")), "{local:?}");
}

/// A listener that cannot be bound is named with its address in the error
/// (an operator with two listeners must know which port is taken).
#[tokio::test]
async fn a_taken_port_is_named_in_the_bind_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap();
    let toml = config("127.0.0.1:1".parse().unwrap(), PUBLIC_ROUTES);
    let public = toml.replacen("127.0.0.1:0", &port.to_string(), 1);
    let admin = toml.replace(
        "[admin]\naddress = \"127.0.0.1:0\"",
        &format!("[admin]\naddress = \"{port}\""),
    );
    for (toml, key) in [(public, "listen.address"), (admin, "admin.address")] {
        let config = scopegate::Config::from_toml(&toml).unwrap();
        let e = scopegate::start(config)
            .await
            .err()
            .expect("bound a taken port");
        assert!(e.to_string().starts_with(&format!("{key} {port}: ")), "{e}");
        assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
    }
}

/// The admin listener lets go of a client that never finishes its head.
#[tokio::test]
async fn the_admin_listener_drops_a_head_that_never_ends() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, "").await;
    let mut c = tokio::net::TcpStream::connect(gate.admin.unwrap())
        .await
        .unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(Duration::from_secs(20), c.read(&mut buf)).await;
    let waited = started.elapsed();
    // Closed (EOF, hyper's 408, or a reset), and not before the timeout.
    assert!(read.is_ok(), "still open after {waited:?}");
    assert!(waited >= Duration::from_secs(9), "closed after {waited:?}");
}
