//! The header contract on the wire: what the upstream receives after a client
//! tried every known way to smuggle identity or routing information.

mod common;

use common::*;

#[tokio::test]
async fn client_scope_headers_never_reach_the_upstream_in_any_spelling() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, "").await;
    let req = "GET /v2/bookings HTTP/1.1\r\nHost: api.example.com\r\n\
         X-Scope-App: evil\r\nx-scope-app: evil2\r\nX_SCOPE_APP: evil3\r\nx-scope_subject: customer.email=a@b.c\r\n\
         X-Scope-Customer-Email: a@b.c, b@c.d\r\nX-Scope-Route: admin\r\nX_Scope_Credential: api-key\r\n\
         X-Scopex: kept\r\nConnection: close\r\n\r\n";
    let out = raw(gate.addr, req.as_bytes(), RAW_WAIT).await;
    assert_eq!(statuses(&out), [200], "{out}");
    let rec = up.single();
    assert_eq!(rec.names_with_prefix("x-scope-"), ["x-scope-route"]);
    // The only scope header is scopegate's own, exactly once, with the route name.
    assert_eq!(rec.all("x-scope-route"), ["v2"]);
    assert_eq!(rec.one("x-scopex").as_deref(), Some("kept"));
}

#[tokio::test]
async fn scope_headers_are_stripped_on_public_routes_too() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, "").await;
    let out = raw(
        gate.addr,
        b"GET /open HTTP/1.1\r\nHost: x\r\nX-Scope-Business: 42\r\nConnection: close\r\n\r\n",
        RAW_WAIT,
    )
    .await;
    assert_eq!(statuses(&out), [200]);
    let rec = up.single();
    assert!(rec.all("x-scope-business").is_empty());
    assert_eq!(rec.all("x-scope-route"), ["open"]);
}

#[tokio::test]
async fn connection_cannot_remove_headers_scopegate_sets() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, "").await;
    let out = raw(
        gate.addr,
        b"GET /open HTTP/1.1\r\nHost: x\r\nConnection: close, X-Forwarded-For, x-scope-route, X-Request-Id, X-Custom\r\n\
          X-Custom: dropped\r\nX-Request-Id: req-1\r\nX-Other: kept\r\n\r\n",
        RAW_WAIT,
    )
    .await;
    assert_eq!(statuses(&out), [200]);
    let rec = up.single();
    assert_eq!(rec.all("x-scope-route"), ["open"]);
    assert_eq!(rec.all("x-forwarded-for"), ["127.0.0.1"]);
    assert!(
        rec.all("x-custom").is_empty(),
        "Connection-named header forwarded"
    );
    assert_eq!(rec.all("x-other"), ["kept"]);
    // The request id is scopegate's to set: nominating it does not remove it.
    assert_eq!(rec.all("x-request-id"), ["req-1"]);
}

/// A `Connection` value with a byte that is not text still names the
/// tokens around it: the list is read as bytes, not skipped whole.
#[tokio::test]
async fn a_connection_value_that_is_not_text_still_removes_what_it_names() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, "").await;
    let out = raw(
        gate.addr,
        b"GET /open HTTP/1.1\r\nHost: x\r\nConnection: x-internal, \xff\r\nX-Internal: 1\r\n\
          X-Other: kept\r\nConnection: close, x-also\r\nX-Also: 2\r\n\r\n",
        RAW_WAIT,
    )
    .await;
    assert_eq!(statuses(&out), [200]);
    let rec = up.single();
    assert!(
        rec.all("x-internal").is_empty(),
        "{:?}",
        rec.all("x-internal")
    );
    assert!(rec.all("x-also").is_empty());
    assert_eq!(rec.all("x-other"), ["kept"]);
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_both_ways() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, "").await;
    let out = raw(
        gate.addr,
        b"GET /open HTTP/1.1\r\nHost: x\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: h2c\r\n\
          HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nProxy-Connection: keep-alive\r\n\
          Connection: close, Upgrade, HTTP2-Settings\r\n\r\n",
        RAW_WAIT,
    )
    .await;
    // The h2c upgrade is not honoured: a plain HTTP/1.1 answer, no 101.
    assert_eq!(statuses(&out), [200], "{out}");
    let rec = up.single();
    for h in [
        "keep-alive",
        "te",
        "upgrade",
        "http2-settings",
        "proxy-authorization",
        "proxy-connection",
    ] {
        assert!(rec.all(h).is_empty(), "{h} forwarded");
    }
    // The upstream's Connection-named response header is dropped as well.
    assert!(
        !out.to_ascii_lowercase().contains("x-upstream-private"),
        "{out}"
    );
}

#[tokio::test]
async fn forged_forwarding_headers_from_an_untrusted_peer_are_replaced() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, "").await;
    let out = raw(
        gate.addr,
        b"GET /open HTTP/1.1\r\nHost: api.example.com\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\n\
          X_Forwarded_For: 10.0.0.3\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: admin.internal\r\n\
          X-Forwarded-Uri: /admin\r\nForwarded: for=10.0.0.1;proto=https\r\nX-Real-IP: 10.0.0.1\r\n\
          X-Original-URL: /admin\r\nX_Rewrite_URL: /admin\r\nX-HTTP-Method-Override: DELETE\r\nConnection: close\r\n\r\n",
        RAW_WAIT,
    )
    .await;
    assert_eq!(statuses(&out), [200]);
    let rec = up.single();
    assert_eq!(rec.all("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(rec.all("x-forwarded-proto"), ["http"]);
    assert_eq!(rec.all("x-forwarded-host"), ["api.example.com"]);
    assert!(rec.names_with_prefix("x-forwarded-uri").is_empty());
    for h in [
        "forwarded",
        "x-real-ip",
        "x-original-url",
        "x_rewrite_url",
        "x-rewrite-url",
        "x-http-method-override",
    ] {
        assert!(rec.all(h).is_empty(), "{h} forwarded");
    }
}

#[tokio::test]
async fn a_trusted_proxy_extends_the_forwarding_chain() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, "[proxy]\ntrusted_proxies = [\"127.0.0.0/8\"]").await;
    raw(
        gate.addr,
        b"GET /open HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n",
        RAW_WAIT,
    )
    .await;
    let rec = up.single();
    assert_eq!(rec.all("x-forwarded-for"), ["203.0.113.7, 127.0.0.1"]);
    assert_eq!(rec.all("x-forwarded-proto"), ["https"]);
}

#[tokio::test]
async fn scope_headers_in_chunked_trailers_are_dropped() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, "").await;
    let out = raw(
        gate.addr,
        b"POST /open HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Scope-App, X-Checksum\r\nConnection: close\r\n\r\n\
          5\r\nhello\r\n0\r\nX-Scope-App: evil\r\nx_scope_subject: evil\r\nX-Checksum: abc\r\n\r\n",
        RAW_WAIT,
    )
    .await;
    assert_eq!(statuses(&out), [200], "{out}");
    let rec = up.single();
    assert_eq!(&rec.body[..], b"hello");
    assert_eq!(rec.names_with_prefix("x-scope-"), ["x-scope-route"]);
    if let Some(t) = &rec.trailers {
        assert!(
            t.keys()
                .all(|k| !k.as_str().replace('_', "-").starts_with("x-scope-")),
            "{t:?}"
        );
    }
}

#[tokio::test]
async fn request_id_is_kept_when_sane_and_echoed() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, "").await;
    let out = raw(
        gate.addr,
        b"GET /open HTTP/1.1\r\nHost: x\r\nX-Request-Id: abc-123\r\nConnection: close\r\n\r\n",
        RAW_WAIT,
    )
    .await;
    assert!(
        out.to_ascii_lowercase().contains("x-request-id: abc-123"),
        "{out}"
    );
    assert_eq!(up.single().all("x-request-id"), ["abc-123"]);
}

#[tokio::test]
async fn upstream_host_replaces_the_client_host() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, "").await;
    raw(
        gate.addr,
        b"GET /open HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n",
        RAW_WAIT,
    )
    .await;
    assert_eq!(up.single().all("host"), [up.addr.to_string()]);
}

/// A gate whose upstream carries `credential` (the body of `[upstream.credential]`),
/// the secret written to a file named `secret` in the returned directory.
async fn gate_with_credential(
    up: &Upstream,
    secret: &str,
    credential: &str,
) -> (Gate, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    std::fs::write(&file, secret).unwrap();
    let toml = format!(
        r#"
[listen]
address = "127.0.0.1:0"

[[upstream]]
name = "backend"
url = "http://{}"
[upstream.credential]
{}

[[route]]
name = "open"
path = "/open"
auth = ["public"]
upstream = "backend"
"#,
        up.addr,
        credential.replace("{file}", &file.display().to_string())
    );
    (Gate::start(&toml).await, dir)
}

#[tokio::test]
async fn the_upstream_credential_replaces_the_clients_and_comes_from_a_file() {
    let up = Upstream::start(Behavior::Ok).await;
    let (gate, _dir) = gate_with_credential(
        &up,
        "live_api_key_123\n",
        "type = \"basic\"\nusername = \"\"\npassword_file = \"{file}\"",
    )
    .await;
    raw(
        gate.addr,
        b"GET /open HTTP/1.1\r\nHost: x\r\nAuthorization: Basic Zm9yZ2VkOmZvcmdlZA==\r\nConnection: close\r\n\r\n",
        RAW_WAIT,
    )
    .await;
    // base64(":live_api_key_123"): empty user, the key as password, trailing newline dropped.
    assert_eq!(
        up.single().all("authorization"),
        ["Basic OmxpdmVfYXBpX2tleV8xMjM="]
    );
}

#[tokio::test]
async fn a_header_credential_is_added_once_whatever_the_client_sent() {
    let up = Upstream::start(Behavior::Ok).await;
    let (gate, _dir) = gate_with_credential(
        &up,
        "s3cret",
        "type = \"header\"\nname = \"X-Api-Key\"\nvalue_file = \"{file}\"",
    )
    .await;
    raw(
        gate.addr,
        b"GET /open HTTP/1.1\r\nHost: x\r\nX-Api-Key: forged\r\nX-Api-Key: forged2\r\nX_API_KEY: forged3\r\nConnection: close\r\n\r\n",
        RAW_WAIT,
    )
    .await;
    let rec = up.single();
    assert_eq!(rec.all("x-api-key"), ["s3cret"]);
    assert!(rec.all("x_api_key").is_empty());
}

#[tokio::test]
async fn an_http10_upstream_does_not_downgrade_the_client() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = vec![0u8; 8192];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await;
        }
    });
    let gate = Gate::start(&config(addr, PUBLIC_ROUTES)).await;
    let out = raw(
        gate.addr,
        b"GET /open HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        RAW_WAIT,
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}
