//! Routing on the wire: default deny, path normalization, most-specific match,
//! and the promise that the upstream receives exactly the path that matched.

mod common;

use common::*;

#[tokio::test]
async fn a_request_no_route_matches_is_refused_and_never_forwarded() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, "").await;
    let r = get(&gate.url("/admin/users")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "not_found");
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn an_empty_route_table_denies_everything() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::start(&config(up.addr, "")).await;
    assert_eq!(get(&gate.url("/")).await.status, 404);
    assert_eq!(get(&gate.url("/v2/bookings")).await.status, 404);
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn a_method_the_route_does_not_accept_gets_405_with_allow() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::start(&config(
        up.addr,
        r#"
[[route]]
name = "read"
methods = ["GET", "HEAD"]
path = "/v2/bookings"
auth = ["public"]
upstream = "backend"
"#,
    ))
    .await;
    let out = raw(
        gate.addr,
        b"DELETE /v2/bookings HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        RAW_WAIT,
    )
    .await;
    assert_eq!(statuses(&out), [405]);
    assert!(
        out.to_ascii_lowercase().contains("allow: get, head"),
        "{out}"
    );
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn dot_segments_are_resolved_before_matching_and_forwarding() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, "").await;
    let out = get_raw(&gate, "/open/../v2/./bookings//list/%7Euser?x=1&y=%2F", "").await;
    assert_eq!(statuses(&out), [200], "{out}");
    let rec = up.single();
    assert_eq!(rec.target, "/v2/bookings/list/~user?x=1&y=%2F");
    assert_eq!(rec.all("x-scope-route"), ["v2"]);
}

#[tokio::test]
async fn traversal_out_of_a_public_prefix_cannot_reach_an_unrouted_path() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, "").await;
    for target in [
        "/v2/../admin",
        "/v2/%2e%2e/admin",
        "/v2/%2E%2e/%2e%2e/admin",
        "/v2/.%2e/admin",
    ] {
        let out = get_raw(&gate, target, "").await;
        assert_eq!(statuses(&out), [404], "{target}: {out}");
    }
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn encoded_separators_nul_and_dot_parameters_are_refused() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, "").await;
    for target in [
        "/v2/a%2Fb",
        "/v2/a%2fb",
        "/v2/a%5Cb",
        "/v2/a%5cb",
        "/v2/a%00b",
        "/v2/..;/admin",
        "/v2/a%zz",
        "/v2/a\\b",
    ] {
        let out = get_raw(&gate, target, "").await;
        assert_eq!(statuses(&out), [400], "{target}: {out}");
    }
    assert_eq!(up.count(), 0);
}

/// The HTTP parser (the `http` crate) truncates a raw `#` and everything after
/// it before scopegate sees the target, so it cannot be refused; what matters
/// is that routing and the upstream see the same truncated path.
#[tokio::test]
async fn a_raw_fragment_never_reaches_the_upstream() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, "").await;
    let out = get_raw(&gate, "/open#/../admin?x=1", "").await;
    assert_eq!(statuses(&out), [200], "{out}");
    assert_eq!(up.single().target, "/open");
    let out = get_raw(&gate, "/admin#/open", "").await;
    assert_eq!(statuses(&out), [404], "{out}");
}

#[tokio::test]
async fn bad_path_errors_are_json_from_scopegate() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, "").await;
    let r = get(&gate.url("/v2/a%2Fb")).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "bad_path");
}

#[tokio::test]
async fn the_most_specific_route_wins() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::start(&config(
        up.addr,
        r#"
[[route]]
name = "tail"
path = "/v2/*"
auth = ["public"]
upstream = "backend"

[[route]]
name = "one"
path = "/v2/bookings/{id}"
auth = ["public"]
upstream = "backend"

[[route]]
name = "list-get"
methods = ["GET"]
path = "/v2/bookings"
auth = ["public"]
upstream = "backend"

[[route]]
name = "hosted"
host = "partner.example.com"
path = "/v2/*"
auth = ["public"]
upstream = "backend"

[[route]]
name = "admin"
path = "/v2/admin/"
auth = ["public"]
upstream = "backend"
"#,
    ))
    .await;
    for (method, target, host, route) in [
        ("GET", "/v2/bookings", "api.example.com", "list-get"),
        ("GET", "/v2/bookings/b-1", "api.example.com", "one"),
        ("GET", "/v2/bookings/b-1/cancel", "api.example.com", "tail"),
        ("GET", "/v2/bookings", "Partner.Example.com:8443", "hosted"),
        // Spellings of those that must not fall through to `tail`: a HEAD
        // on a GET route, a host's absolute form, a pattern written with a
        // trailing slash (with the path's own slash or without).
        ("HEAD", "/v2/bookings", "api.example.com", "list-get"),
        ("GET", "/v2/bookings", "partner.example.com.", "hosted"),
        ("GET", "/v2/admin/", "api.example.com", "admin"),
        ("GET", "/v2/admin", "api.example.com", "admin"),
    ] {
        let req =
            format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        raw(gate.addr, req.as_bytes(), RAW_WAIT).await;
        assert_eq!(
            up.records().last().unwrap().all("x-scope-route"),
            [route],
            "{method} {target} {host}"
        );
    }
}

#[tokio::test]
async fn the_upstream_receives_base_path_and_prefix_before_the_matched_path() {
    let up = Upstream::start(Behavior::Ok).await;
    let toml = format!(
        r#"
[listen]
address = "127.0.0.1:0"

[[upstream]]
name = "backend"
url = "http://{}/api/"

[[route]]
name = "legacy"
path = "/v2/*"
auth = ["public"]
upstream = "backend"
upstream_path_prefix = "/legacy"
"#,
        up.addr
    );
    let gate = Gate::start(&toml).await;
    get_raw(&gate, "/v2/bookings?search=state:confirmed", "").await;
    assert_eq!(
        up.single().target,
        "/api/legacy/v2/bookings?search=state:confirmed"
    );
}

#[tokio::test]
async fn absolute_form_targets_are_routed_on_their_path_and_sent_to_the_configured_upstream() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, "").await;
    let out = raw(
        gate.addr,
        b"GET http://evil.example/v2/x HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
        RAW_WAIT,
    )
    .await;
    assert_eq!(statuses(&out), [200], "{out}");
    let rec = up.single();
    assert_eq!(rec.target, "/v2/x");
    assert_eq!(rec.all("host"), [up.addr.to_string()]);
    assert_eq!(rec.all("x-forwarded-host"), ["evil.example"]);
}

#[tokio::test]
async fn conflicting_or_duplicate_hosts_are_refused() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, "").await;
    for req in [
        &b"GET http://a.example/v2/x HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n"[..],
        b"GET /v2/x HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n",
        b"GET /v2/x HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\nConnection: close\r\n\r\n",
    ] {
        let out = raw(gate.addr, req, RAW_WAIT).await;
        assert_eq!(statuses(&out), [400], "{out}");
    }
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn asterisk_and_authority_form_targets_are_refused() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, "").await;
    for req in [
        &b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"[..],
        b"CONNECT internal.example:443 HTTP/1.1\r\nHost: internal.example:443\r\nConnection: close\r\n\r\n",
    ] {
        let out = raw(gate.addr, req, RAW_WAIT).await;
        let s = statuses(&out);
        assert!(s == [400] || s == [404], "{out}");
    }
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn pipelined_requests_are_each_routed_on_their_own() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, "").await;
    let out = raw(
        gate.addr,
        b"GET /open HTTP/1.1\r\nHost: x\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\nGET /v2/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        RAW_WAIT,
    )
    .await;
    assert_eq!(statuses(&out), [200, 404, 200], "{out}");
    let targets: Vec<_> = up.records().into_iter().map(|r| r.target).collect();
    assert_eq!(targets, ["/open", "/v2/a"]);
}
