//! Adversarial requests: one test per class of attack on auth proxies in
//! `threats.md` that no other suite covers, sending raw bytes (or raw HTTP/2
//! frames) where the class is about parsing, and asserting on what a
//! recording upstream received: how many requests, which target, which
//! headers (no client scope header, exactly one trusted value), which body,
//! no secret. For request smuggling the upstream is [`RawUpstream`], which
//! keeps the bytes scopegate wrote, so a forwarded `Content-Length` beside a
//! `Transfer-Encoding` shows even though hyper would hide it.
//!
//! Every class of `threats.md` and the tests that cover it ("this file":
//! this file; others are `file::test`, `src` ones are unit tests):
//!
//! - **Identity header spoofing** —
//!   headers::client_scope_headers_never_reach_the_upstream_in_any_spelling
//!   (`_`, case, copies, lists), headers::scope_headers_are_stripped_on_public_routes_too,
//!   headers::scope_headers_in_chunked_trailers_are_dropped,
//!   limits::h2c_prior_knowledge_is_proxied_with_the_scope_route_header,
//!   api_keys::an_own_key_reaches_own_and_forged_scope_headers_are_replaced,
//!   signed_search::a_valid_signed_search_is_forwarded_scoped_and_without_its_token,
//!   sso::a_legacy_query_token_becomes_exact_scope_headers_and_nothing_else_changes;
//!   this file: identity_headers_hidden_by_folding_bare_cr_lf_or_nul_never_arrive,
//!   scope_headers_over_h2_in_any_spelling_or_in_trailers_are_stripped,
//!   forged_scope_headers_on_an_authenticated_route_leave_exactly_one_trusted_value.
//! - **Duplicate and list values** —
//!   routing::conflicting_or_duplicate_hosts_are_refused,
//!   sessions::review::held_token_format_and_header_spellings (a second
//!   `Authorization`), sessions::review::held_no_session_token_reaches_the_upstream_from_query_or_duplicates,
//!   api_keys::keys_in_two_places_or_twice_or_half_given_are_refused_before_the_upstream,
//!   sso::a_token_in_two_places_or_twice_is_ambiguous,
//!   signed_search::a_malformed_or_ambiguous_query_gets_400_and_the_upstream_sees_nothing,
//!   action_links::methods_actions_and_query_shapes_are_checked_before_the_token,
//!   headers::a_header_credential_is_added_once_whatever_the_client_sent;
//!   this file: hosts_with_user_info_lists_or_a_disagreeing_target_are_refused,
//!   content_length_with_transfer_encoding_never_desynchronises_the_upstream
//!   (repeated and listed lengths).
//! - **`Connection`-nominated headers** —
//!   headers::connection_cannot_remove_headers_scopegate_sets,
//!   headers::hop_by_hop_headers_are_removed_both_ways;
//!   this file: connection_cannot_drop_trusted_headers_or_framing_on_an_authenticated_route.
//! - **Forwarding headers trusted** —
//!   headers::forged_forwarding_headers_from_an_untrusted_peer_are_replaced,
//!   headers::a_trusted_proxy_extends_the_forwarding_chain,
//!   sso::clients_behind_a_trusted_proxy_are_counted_apart,
//!   routing::absolute_form_targets_are_routed_on_their_path_and_sent_to_the_configured_upstream,
//!   api_keys::override_headers_are_stripped_and_the_real_method_is_checked.
//! - **Path confusion** —
//!   routing::dot_segments_are_resolved_before_matching_and_forwarding,
//!   routing::traversal_out_of_a_public_prefix_cannot_reach_an_unrouted_path,
//!   routing::encoded_separators_nul_and_dot_parameters_are_refused,
//!   routing::a_raw_fragment_never_reaches_the_upstream,
//!   action_links::review::ok_path_spellings_map_to_the_signed_booking_only;
//!   this file: spellings_of_an_authenticated_path_never_pass_through_a_public_wildcard,
//!   the_upstream_gets_exactly_the_matched_path_and_never_a_second_decoding,
//!   a_method_in_another_case_does_not_skip_a_method_bound_authenticated_route,
//!   a_method_parameter_does_not_skip_a_method_bound_authenticated_route.
//! - **Request smuggling** —
//!   routing::pipelined_requests_are_each_routed_on_their_own,
//!   routing::asterisk_and_authority_form_targets_are_refused,
//!   headers::hop_by_hop_headers_are_removed_both_ways (no 101 for h2c),
//!   limits::a_declared_content_length_over_the_limit_gets_413_before_the_body_is_sent,
//!   limits::a_declared_oversized_body_with_expect_continue_gets_413_and_no_100_continue,
//!   limits::a_chunked_body_growing_past_the_limit_is_refused_and_never_reaches_the_upstream_whole,
//!   limits::headers_beyond_the_parser_buffer_get_431_and_upstream_sees_nothing,
//!   signed_search::a_body_or_a_write_method_cannot_carry_a_second_search;
//!   this file: content_length_with_transfer_encoding_never_desynchronises_the_upstream
//!   (CL+TE both orders, TE obfuscations, lengths),
//!   obfuscated_chunking_is_decoded_exactly_or_refused,
//!   a_request_inside_a_body_is_body_and_never_a_second_request,
//!   expect_100_continue_races_never_turn_a_body_into_a_request,
//!   h2c_and_websocket_upgrades_never_open_a_tunnel,
//!   an_h2_preface_in_the_middle_of_an_http1_connection_is_not_served,
//!   oversized_header_tricks_hide_nothing.
//! - **Generated header injection** —
//!   sso::every_bad_token_gets_the_same_401_and_nothing_is_forwarded (a
//!   control character in a name), headers::request_id_is_kept_when_sane_and_echoed;
//!   this file: credential_values_that_would_split_or_list_a_header_are_refused_whole.
//! - **HTTP/2 floods and slow clients** —
//!   limits::a_client_stalling_mid_head_is_disconnected_by_the_header_read_timeout,
//!   limits::a_keep_alive_wait_is_bounded_by_the_header_read_timeout,
//!   limits::a_silent_connection_is_closed_by_the_header_read_timeout,
//!   limits::a_stalled_partial_h2_preface_is_closed_by_the_header_read_timeout,
//!   limits::an_idle_h2_connection_is_closed_by_the_idle_timeout,
//!   limits::an_h2_connection_whose_request_was_cancelled_is_still_closed_by_the_idle_timeout,
//!   limits::past_the_in_flight_cap_requests_are_shed_at_once;
//!   this file: an_h2_rapid_reset_flood_is_cut_off_and_barely_reaches_the_upstream,
//!   an_h2_continuation_flood_is_cut_off_before_it_is_read,
//!   an_h2_empty_data_flood_is_cut_off,
//!   an_h2_header_block_left_open_is_closed_by_the_header_read_timeout.
//! - **JWT verification** —
//!   signed_search::every_verification_failure_gets_the_same_401_and_the_upstream_sees_nothing
//!   (`alg: none`, other key, `exp` as a string),
//!   action_links::every_verification_failure_gets_the_same_401_and_the_upstream_sees_nothing,
//!   action_links::review::ok_alternate_base64_signature_encoding_is_refused,
//!   signed_search::the_rfc_7515_a1_example_verifies_and_a_flipped_bit_does_not,
//!   signed_search::tokens_minted_by_pyjwt_verify_exactly_as_expected (jsonwebtoken
//!   verifies with its `rust_crypto` backend, no panic),
//!   src auth::jwt::tests::headers_that_choose_keys_or_algorithms_are_refused and
//!   time_claims_are_enforced_when_present_and_must_be_numbers;
//!   this file: tokens_that_choose_their_key_or_algorithm_get_the_uniform_401_on_the_wire,
//!   blank_secrets_are_refused_at_load.
//! - **Unauthenticated CBC** —
//!   sso_forgery::legacy_accepts_the_found_forgery_and_refuses_the_naive_one,
//!   sso_forgery::a_company_accepting_only_v2_refuses_the_forgery,
//!   sso_forgery::v2_refuses_the_same_flip_and_every_flipped_nonce_or_tag_bit,
//!   sso_forgery::random_single_block_flips_of_a_legacy_token_are_refused,
//!   sso::every_bad_token_gets_the_same_401_and_nothing_is_forwarded (padding and
//!   decoding failures alike), sso::past_the_failure_limit_even_a_valid_token_gets_429.
//! - **Query parsing differences** —
//!   signed_search::the_upstream_query_cannot_be_split_differently_by_the_backend,
//!   signed_search::lookalike_names_escapes_and_parameter_floods_get_400,
//!   signed_search::an_encoded_search_is_bound_after_one_decoding,
//!   signed_search::no_spelling_of_signed_search_survives_to_the_upstream_of_a_public_route,
//!   action_links::review::f5_lenient_spellings_of_credentials_are_stripped_on_public_routes,
//!   api_keys::keys_in_the_query_are_removed_in_every_spelling_and_the_rest_is_kept,
//!   api_keys::a_method_parameter_in_the_query_is_refused_even_for_a_key_that_could,
//!   api_keys::folded_method_parameters_are_refused_too,
//!   sessions::review::f7_snake_case_session_token_params_are_stripped,
//!   sso::cookie_spellings_lenient_backends_read_as_the_token_are_stripped.
//! - **Cache keyed too loosely** —
//!   action_links::review::ok_token_kinds_do_not_cross,
//!   signed_search::subject_variants_padded_claims_and_other_apps_get_the_uniform_401
//!   (`route[].apps`), sso::a_header_session_is_sent_back_as_a_bearer_that_never_reaches_the_upstream,
//!   sessions::a_private_key_change_ends_the_sessions_issued_under_the_old_key,
//!   sessions::logout_and_revocation_end_sessions;
//!   this file: a_session_of_one_scheme_is_no_credential_on_another_schemes_route.
//! - **Open redirects** —
//!   action_links::redirects_go_only_to_allowed_or_signed_targets (`//evil`,
//!   userinfo, other origins), action_links::review::ok_redirect_bypass_attempts_are_refused
//!   (`/\evil`, `#@`, CRLF), action_links::a_refused_action_is_not_redirected.
//! - **Secrets in logs** —
//!   log_leaks::no_secret_token_or_email_reaches_any_log_line_at_trace_level,
//!   faults::error_bodies_never_name_the_upstream_address,
//!   cli::explain_never_prints_a_configured_credential,
//!   cli::a_syntax_error_does_not_quote_the_line,
//!   cli::a_secret_in_a_scopegate_prefixed_variable_is_used_and_never_printed;
//!   this file, toward the upstream: a_session_of_one_scheme_is_no_credential_on_another_schemes_route
//!   and forged_scope_headers_on_an_authenticated_route_leave_exactly_one_trusted_value
//!   (no bearer forwarded).

mod common;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use common::*;
use scopegate::auth::{jwt, sso};
use serde_json::{json, Value};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

// ---------------------------------------------------------------------------
// Gates: the public routes of the harness plus authenticated neighbours

const API_KEY: &str = "31337";
const PRIVATE_KEY: &str = "pk_adversarial_5e1f9a";

/// Added to [`PUBLIC_ROUTES`] (`/v2/*` and `/open`, public): a business for
/// session tokens, an authenticated path right beside the public wildcard, and
/// a method-bound authenticated route under it.
const PRIVATE_ROUTES: &str = r#"
[[business]]
id = "biz-1"
api_key = "31337"
private_key = "pk_adversarial_5e1f9a"

[[route]]
name = "private"
path = "/v2/private"
auth = ["session"]
upstream = "backend"

[[route]]
name = "delete-booking"
methods = ["DELETE"]
path = "/v2/bookings/{id}"
auth = ["session"]
upstream = "backend"
"#;

/// A recording upstream behind [`PUBLIC_ROUTES`] + [`PRIVATE_ROUTES`] + `extra`.
async fn setup(extra: &str) -> (Upstream, Gate) {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(&up, &format!("{PRIVATE_ROUTES}\n{extra}")).await;
    (up, gate)
}

fn md5_hex(s: &str) -> String {
    use md5::{Digest, Md5};
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fresh session bearer token from the vendor's (md5) handshake.
async fn session_token(gate: &Gate) -> String {
    let sig = md5_hex(&format!("{API_KEY}{PRIVATE_KEY}"));
    let r = get(&gate.url(&format!(
        "/sessionToken?apiKey={API_KEY}&timestamp={}&signature={sig}",
        unix_now()
    )))
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.json()["sessionToken"].as_str().unwrap().to_string()
}

/// A request hidden where only a desynchronised parser would find it. It
/// names a public route, so if anything ever parsed it as a request it would
/// be forwarded, and the upstream would show it.
const HIDDEN: &str = "GET /open?smuggled=1 HTTP/1.1\r\nHost: x\r\n\r\n";

fn assert_nothing_smuggled(up: &Upstream) {
    for r in up.records() {
        assert!(
            !r.target.contains("smuggled"),
            "a hidden request reached the upstream: {} {}",
            r.method,
            r.target
        );
    }
}

// ---------------------------------------------------------------------------
// A raw client connection

struct Wire(TcpStream);

impl Wire {
    async fn open(addr: SocketAddr) -> Self {
        Self(TcpStream::connect(addr).await.unwrap())
    }

    /// Writes; a failure is fine (the server may have closed already).
    async fn send(&mut self, bytes: &[u8]) {
        let _ = self.0.write_all(bytes).await;
    }

    /// Reads until the server closes (true) or `quiet` passes without data.
    async fn read(&mut self, quiet: Duration) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match tokio::time::timeout(quiet, self.0.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
                Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
                Err(_) => return (out, false),
            }
        }
    }
}

impl Wire {
    /// Reads until `needle` has arrived, the server closes, or `within` passes.
    async fn read_until(&mut self, needle: &[u8], within: Duration) -> String {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let deadline = tokio::time::Instant::now() + within;
        while find(&out, needle).is_none() {
            match tokio::time::timeout_at(deadline, self.0.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Sends `bytes` on a new connection; everything read until close or quiet.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut w = Wire::open(addr).await;
    w.send(bytes).await;
    String::from_utf8_lossy(&w.read(RAW_WAIT).await.0).into_owned()
}

// ---------------------------------------------------------------------------
// A byte-level recording upstream
//
// The harness's upstream is hyper, which, like scopegate, drops a
// Content-Length that comes with Transfer-Encoding: it can never show that
// both were forwarded. This one keeps the bytes scopegate wrote, and frames
// them itself (chunked if any Transfer-Encoding, else Content-Length), so
// the tests can assert on the exact head and body a lenient backend would get.

#[derive(Debug, Clone)]
struct RawRequest {
    /// Request line and header lines, as received.
    head: String,
    body: Vec<u8>,
    /// False when the connection ended inside the message.
    complete: bool,
}

impl RawRequest {
    fn request_line(&self) -> &str {
        self.head.lines().next().unwrap_or("")
    }

    /// Header names lower-cased, values trimmed, in order.
    fn headers(&self) -> Vec<(String, String)> {
        self.head
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string()))
            .collect()
    }
}

struct RawUpstream {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<RawRequest>>>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A chunked body (strict CRLF), returning it and the bytes it used, or
/// `None` while incomplete.
fn dechunk(b: &[u8]) -> Option<(Vec<u8>, usize)> {
    let (mut i, mut out) = (0, Vec::new());
    loop {
        let end = i + find(&b[i..], b"\r\n")?;
        let line = std::str::from_utf8(&b[i..end]).ok()?;
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        i = end + 2;
        if size == 0 {
            loop {
                let end = i + find(&b[i..], b"\r\n")?;
                let empty = end == i;
                i = end + 2;
                if empty {
                    return Some((out, i));
                }
            }
        }
        if b.len() < i + size + 2 {
            return None;
        }
        out.extend_from_slice(&b[i..i + size]);
        i += size + 2;
    }
}

/// One complete message at the start of `buf` and its length.
fn parse_message(buf: &[u8]) -> Option<(RawRequest, usize)> {
    let end = find(buf, b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end - 4]).into_owned();
    let mut req = RawRequest {
        head,
        body: Vec::new(),
        complete: true,
    };
    let headers = req.headers();
    if headers.iter().any(|(n, _)| n == "transfer-encoding") {
        let (body, used) = dechunk(&buf[end..])?;
        req.body = body;
        return Some((req, end + used));
    }
    let len = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    if buf.len() < end + len {
        return None;
    }
    req.body = buf[end..end + len].to_vec();
    Some((req, end + len))
}

impl RawUpstream {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let reqs = Arc::clone(&requests);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let reqs = Arc::clone(&reqs);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = vec![0u8; 64 * 1024];
                    loop {
                        while let Some((req, used)) = parse_message(&buf) {
                            buf.drain(..used);
                            reqs.lock().unwrap().push(req);
                            let _ = s
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                                .await;
                        }
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    if !buf.is_empty() {
                        let cut = find(&buf, b"\r\n\r\n").unwrap_or(buf.len());
                        reqs.lock().unwrap().push(RawRequest {
                            head: String::from_utf8_lossy(&buf[..cut]).into_owned(),
                            body: buf[cut.min(buf.len())..].to_vec(),
                            complete: false,
                        });
                    }
                });
            }
        });
        Self { addr, requests }
    }

    fn requests(&self) -> Vec<RawRequest> {
        self.requests.lock().unwrap().clone()
    }
}

/// Why the framing a lenient backend could misread is there, if it is: more
/// than one of `Content-Length` / `Transfer-Encoding` in any spelling (`_`
/// for `-`, any case), `Transfer-Encoding` other than `chunked` alone, a
/// length other than the body's, a hidden request.
fn framing_problem(r: &RawRequest) -> Option<String> {
    let headers = r.headers();
    let named = |name: &str| -> Vec<&(String, String)> {
        headers
            .iter()
            .filter(|(n, _)| n.replace('_', "-") == name)
            .collect()
    };
    let (te, cl) = (named("transfer-encoding"), named("content-length"));
    if te.len() + cl.len() > 1 {
        return Some(format!("ambiguous framing forwarded:\n{}", r.head));
    }
    if let Some((n, v)) = te.first() {
        if (n.as_str(), v.as_str()) != ("transfer-encoding", "chunked") {
            return Some(format!("forwarded {n}: {v}"));
        }
    }
    if let Some((n, v)) = cl.first() {
        if n != "content-length" || v.parse::<usize>().ok() != Some(r.body.len()) {
            return Some(format!(
                "forwarded {n}: {v} with {} body bytes",
                r.body.len()
            ));
        }
    }
    r.head
        .contains("smuggled")
        .then(|| format!("hidden request forwarded:\n{}", r.head))
}

/// What scopegate may do with one framing shape.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// Never forwarded whole: a 4xx or a closed connection, and the upstream
    /// has no complete request.
    Refused,
    /// Forwarded once with exactly this body.
    Body(&'static [u8]),
    /// Either of the two.
    BodyOrRefused(&'static [u8]),
}

/// Sends each case on its own connection to a gate in front of a
/// [`RawUpstream`] and checks the outcome and every byte the upstream got.
/// Fails once, listing every case that went wrong.
async fn framing_cases(cases: &[(&str, String, Want)]) {
    let up = RawUpstream::start().await;
    let gate = Gate::start(&config(up.addr, PUBLIC_ROUTES)).await;
    let mut failures = Vec::new();
    for (what, bytes, want) in cases {
        let before = up.requests().len();
        let out = exchange(gate.addr, bytes.as_bytes()).await;
        // An aborted upstream exchange is recorded when its connection ends.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let new: Vec<RawRequest> = up.requests().split_off(before);
        let st = statuses(&out);
        for r in &new {
            let problem = if r.complete {
                framing_problem(r)
            } else {
                r.head
                    .contains("smuggled")
                    .then(|| format!("hidden request forwarded:\n{}", r.head))
            };
            if let Some(p) = problem {
                failures.push(format!("{what}: {p}"));
            }
        }
        let complete: Vec<&RawRequest> = new.iter().filter(|r| r.complete).collect();
        let refused = complete.is_empty() && st.iter().all(|s| !(200..300).contains(s));
        let forwarded = |body: &[u8]| {
            st == [200] && complete.len() == 1 && complete[0].body == body && new.len() == 1
        };
        let ok = match want {
            Want::Refused => refused,
            Want::Body(b) => forwarded(b),
            Want::BodyOrRefused(b) => refused || forwarded(b),
        };
        if !ok {
            failures.push(format!(
                "{what}: wanted {want:?}; client saw {st:?}; upstream got {:?}",
                new.iter()
                    .map(|r| (
                        r.request_line().to_string(),
                        String::from_utf8_lossy(&r.body).into_owned(),
                        r.complete
                    ))
                    .collect::<Vec<_>>()
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// A POST to the public `/open` with the given framing header lines and body.
fn post(framing: &str, body: &str) -> String {
    format!("POST /open HTTP/1.1\r\nHost: x\r\n{framing}\r\n{body}")
}

// ---------------------------------------------------------------------------
// Raw HTTP/2 frames (prior knowledge), for the flood and preface tests

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ENHANCE_YOUR_CALM: u32 = 0xb;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = len.to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK integer with a 7-bit prefix (string lengths, no Huffman).
fn hpack_len(n: usize, out: &mut Vec<u8>) {
    if n < 127 {
        out.push(n as u8);
        return;
    }
    out.push(127);
    let mut rest = n - 127;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

/// A header block of literal fields without indexing, new names.
fn hpack(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in fields {
        out.push(0);
        hpack_len(n.len(), &mut out);
        out.extend_from_slice(n.as_bytes());
        hpack_len(v.len(), &mut out);
        out.extend_from_slice(v.as_bytes());
    }
    out
}

fn request_block(method: &str, path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut fields = vec![
        (":method", method),
        (":scheme", "http"),
        (":authority", "x"),
        (":path", path),
    ];
    fields.extend_from_slice(extra);
    hpack(&fields)
}

/// The preface and an empty SETTINGS frame.
fn h2_start() -> Vec<u8> {
    let mut b = PREFACE.to_vec();
    b.extend(frame(SETTINGS, 0, 0, &[]));
    b
}

/// Frames in a server's byte stream: (type, flags, stream, payload).
fn h2_frames(mut b: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut out = Vec::new();
    while b.len() >= 9 {
        let len = u32::from_be_bytes([0, b[0], b[1], b[2]]) as usize;
        if b.len() < 9 + len {
            break;
        }
        let stream = u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff;
        out.push((b[3], b[4], stream, b[9..9 + len].to_vec()));
        b = &b[9 + len..];
    }
    out
}

/// The error code of the server's GOAWAY, if it sent one.
fn goaway_code(frames: &[(u8, u8, u32, Vec<u8>)]) -> Option<u32> {
    frames
        .iter()
        .find(|f| f.0 == GOAWAY && f.3.len() >= 8)
        .map(|f| u32::from_be_bytes([f.3[4], f.3[5], f.3[6], f.3[7]]))
}

/// Writes `bytes` from a task (the server may stop reading) and reads what
/// the server answers until it closes or `within` passes. Returns the frames,
/// whether it closed, and how long that took.
async fn h2_flood(
    addr: SocketAddr,
    bytes: Vec<u8>,
    within: Duration,
) -> (Vec<(u8, u8, u32, Vec<u8>)>, bool, Duration) {
    let (mut rd, mut wr) = TcpStream::connect(addr).await.unwrap().into_split();
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        for piece in bytes.chunks(16 * 1024) {
            if wr.write_all(piece).await.is_err() {
                return;
            }
        }
        // Keep the write side open: a half-close is not part of the attack.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(wr);
    });
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + within;
    let closed = loop {
        match tokio::time::timeout_at(deadline, rd.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    let took = start.elapsed();
    writer.abort();
    (h2_frames(&got), closed, took)
}

// ===========================================================================
// Identity header spoofing

/// Header lines a lenient parser might read differently (folded, bare CR or
/// LF, NUL, whitespace before the colon) never smuggle a client identity
/// header in: each request is refused whole, or forwarded without any client
/// scope header and with scopegate's own exactly once.
#[tokio::test]
async fn identity_headers_hidden_by_folding_bare_cr_lf_or_nul_never_arrive() {
    let (up, gate) = setup("").await;
    let cases: &[&[u8]] = &[
        // obs-fold: a continuation line that a folding parser joins, a
        // non-folding one reads as a header of its own.
        b"GET /open HTTP/1.1\r\nHost: x\r\nX-Note: a\r\n X-Scope-App: evil\r\nConnection: close\r\n\r\n",
        b"GET /open HTTP/1.1\r\nHost: x\r\nX-Note: a\r\n\tX-Scope-Business: evil\r\nConnection: close\r\n\r\n",
        // Bare CR inside a value: a header of its own for some parsers.
        b"GET /open HTTP/1.1\r\nHost: x\r\nX-Note: a\rX-Scope-App: evil\r\nConnection: close\r\n\r\n",
        // Bare LF line endings throughout.
        b"GET /open HTTP/1.1\nHost: x\nX-Scope-App: evil\nx_scope_business: evil\nConnection: close\n\n",
        // Bare LF in the middle of CRLF lines.
        b"GET /open HTTP/1.1\r\nHost: x\r\nX-Note: a\nX-Scope-App: evil\r\nConnection: close\r\n\r\n",
        // NUL in a value and in a name.
        b"GET /open HTTP/1.1\r\nHost: x\r\nX-Note: a\x00X-Scope-App: evil\r\nConnection: close\r\n\r\n",
        b"GET /open HTTP/1.1\r\nHost: x\r\nX-Scope-App\x00: evil\r\nConnection: close\r\n\r\n",
        // Whitespace between name and colon (RFC 9112 §5.1: must be refused).
        b"GET /open HTTP/1.1\r\nHost: x\r\nX-Scope-App : evil\r\nConnection: close\r\n\r\n",
        b"GET /open HTTP/1.1\r\nHost: x\r\nX-Scope-App\t: evil\r\nConnection: close\r\n\r\n",
        // A name with a trailing dot or a non-token byte after the prefix.
        b"GET /open HTTP/1.1\r\nHost: x\r\nX-Scope-App.: evil\r\nX-Scope-\xc3\xa4pp: evil\r\nConnection: close\r\n\r\n",
    ];
    for req in cases {
        let what = String::from_utf8_lossy(req);
        let before = up.count();
        let out = exchange(gate.addr, req).await;
        let st = statuses(&out);
        match st.as_slice() {
            [400] => assert_eq!(up.count(), before, "{what:?}: refused but forwarded"),
            [200] => {
                let rec = up.records().pop().unwrap();
                assert_eq!(
                    rec.names_with_prefix("x-scope-"),
                    ["x-scope-route"],
                    "{what:?}"
                );
                assert_eq!(rec.all("x-scope-route"), ["open"], "{what:?}");
                for (n, v) in &rec.headers {
                    let v = String::from_utf8_lossy(v.as_bytes()).to_ascii_lowercase();
                    assert!(
                        !v.contains("x-scope") && !v.contains("evil"),
                        "{what:?}: {n}: {v}"
                    );
                }
            }
            _ => panic!("{what:?}: {st:?}\n{out}"),
        }
    }
}

/// HTTP/2 allows `_` in names and carries trailers: neither lets a client
/// scope header through to the (HTTP/1.1) upstream.
#[tokio::test]
async fn scope_headers_over_h2_in_any_spelling_or_in_trailers_are_stripped() {
    let (up, gate) = setup("").await;
    let mut b = h2_start();
    let block = request_block(
        "POST",
        "/open",
        &[
            ("x_scope_app", "evil"),
            ("x-scope_business", "evil"),
            ("x-scope-route", "admin"),
            ("x-scope-credential", "api-key"),
            ("te", "trailers"),
        ],
    );
    b.extend(frame(HEADERS, END_HEADERS, 1, &block));
    b.extend(frame(DATA, 0, 1, b"hello"));
    let trailers = hpack(&[("x-scope-app", "evil"), ("x_scope_subject", "evil")]);
    b.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &trailers));
    let (frames, _, _) = h2_flood(gate.addr, b, Duration::from_secs(2)).await;
    assert!(
        frames.iter().any(|f| f.0 == HEADERS && f.2 == 1),
        "no response: {frames:?}"
    );
    let rec = up.single();
    assert_eq!(&rec.body[..], b"hello");
    assert_eq!(rec.names_with_prefix("x-scope-"), ["x-scope-route"]);
    assert_eq!(rec.all("x-scope-route"), ["open"]);
    if let Some(t) = &rec.trailers {
        assert!(
            t.keys()
                .all(|k| !k.as_str().replace('_', "-").starts_with("x-scope-")),
            "{t:?}"
        );
    }
}

/// On an authenticated route, forged copies in every spelling leave exactly
/// one trusted value of each header scopegate writes.
#[tokio::test]
async fn forged_scope_headers_on_an_authenticated_route_leave_exactly_one_trusted_value() {
    let (up, gate) = setup("").await;
    let token = session_token(&gate).await;
    let req = format!(
        "GET /v2/private HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer {token}\r\n\
         X-Scope-Business: biz-2\r\nx_scope_business: biz-3\r\nX-SCOPE-BUSINESS: biz-4, biz-5\r\n\
         X-Scope-Credential: api-key\r\nX-Scope-Route: public\r\nX-Scope-Permissions: bookings_rwd_all\r\n\
         X_Scope_Reach: all\r\nConnection: close\r\n\r\n"
    );
    let out = exchange(gate.addr, req.as_bytes()).await;
    assert_eq!(statuses(&out), [200], "{out}");
    let rec = up.single();
    let mut names = rec.names_with_prefix("x-scope-");
    names.sort();
    assert_eq!(
        names,
        ["x-scope-business", "x-scope-credential", "x-scope-route"]
    );
    assert_eq!(rec.all("x-scope-business"), ["biz-1"]);
    assert_eq!(rec.all("x-scope-credential"), ["session"]);
    assert_eq!(rec.all("x-scope-route"), ["private"]);
    assert!(rec.all("authorization").is_empty(), "the bearer travelled");
}

// ===========================================================================
// Duplicate and list values

/// The request host is one authority: a `Host` with user info, a list, a
/// second `Host`, or an absolute-form target that disagrees is refused, and
/// whatever is forwarded carries exactly one `X-Forwarded-Host` without a
/// list in it.
#[tokio::test]
async fn hosts_with_user_info_lists_or_a_disagreeing_target_are_refused() {
    let (up, gate) = setup("").await;
    let refused: &[&str] = &[
        "GET /open HTTP/1.1\r\nHost: evil.example@api.example.com\r\n",
        "GET /open HTTP/1.1\r\nHost: user:pw@api.example.com\r\n",
        "GET http://user@api.example.com/open HTTP/1.1\r\nHost: user@api.example.com\r\n",
        "GET http://api.example.com@evil.example/open HTTP/1.1\r\nHost: evil.example\r\n",
        "GET http://evil.example/open HTTP/1.1\r\nHost: api.example.com\r\n",
        "GET http://api.example.com:8443/open HTTP/1.1\r\nHost: api.example.com\r\n",
        "GET /open HTTP/1.1\r\nHost: api.example.com\r\nhost: evil.example\r\n",
        "GET /open HTTP/1.1\r\nHost: api.example.com\r\nHOST: api.example.com\r\n",
        "GET /open HTTP/1.1\r\nHost: api.example.com evil.example\r\n",
        "GET /open HTTP/1.1\r\nHost: api.example.com/evil\r\n",
        "GET /open HTTP/1.1\r\nHost: api.example.com\r\nHost:\r\n",
    ];
    let mut failures = Vec::new();
    for head in refused {
        let out = exchange(
            gate.addr,
            format!("{head}Connection: close\r\n\r\n").as_bytes(),
        )
        .await;
        if statuses(&out) != [400] {
            failures.push(format!("{head:?}: {:?}", statuses(&out)));
        }
    }
    assert!(failures.is_empty(), "not refused:\n{}", failures.join("\n"));
    assert_eq!(up.count(), 0);

    // A comma is legal in a reg-name, but a comma in X-Forwarded-Host is a
    // list to every backend that reads it.
    for host in [
        "evil.example,api.example.com",
        "api.example.com, evil.example",
    ] {
        let before = up.count();
        let req = format!("GET /open HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let out = exchange(gate.addr, req.as_bytes()).await;
        match statuses(&out).as_slice() {
            [400] => assert_eq!(up.count(), before),
            [200] => {
                let xfh = up.records().pop().unwrap().all("x-forwarded-host");
                assert!(
                    xfh.len() <= 1 && xfh.iter().all(|v| !v.contains(',')),
                    "{host}: X-Forwarded-Host {xfh:?}"
                );
            }
            other => panic!("{host}: {other:?}\n{out}"),
        }
    }
}

// ===========================================================================
// Connection-nominated headers

/// On an authenticated route a client names scopegate's headers (and the
/// framing) in `Connection`, in one list or several, after `keep-alive`:
/// each trusted header still arrives exactly once, and the body intact.
#[tokio::test]
async fn connection_cannot_drop_trusted_headers_or_framing_on_an_authenticated_route() {
    let (up, gate) = setup("").await;
    let token = session_token(&gate).await;
    for connection in [
        "Connection: keep-alive, X-Forwarded-For\r\n",
        "Connection: X-Scope-Credential, x-scope-business, X-Scope-Route\r\n",
        "Connection: keep-alive\r\nConnection: x_scope_business, X-Forwarded-Host, X-Forwarded-Proto\r\n",
        "Connection: Content-Length, X-Request-Id, Host\r\n",
    ] {
        let before = up.count();
        let req = format!(
            "POST /v2/private HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer {token}\r\n\
             {connection}X-Request-Id: req-7\r\nContent-Length: 5\r\n\r\nhello"
        );
        let out = exchange(gate.addr, req.as_bytes()).await;
        assert_eq!(statuses(&out), [200], "{connection:?}: {out}");
        let recs = up.records();
        assert_eq!(recs.len(), before + 1, "{connection:?}");
        let rec = recs.last().unwrap();
        assert_eq!(rec.all("x-scope-credential"), ["session"], "{connection:?}");
        assert_eq!(rec.all("x-scope-business"), ["biz-1"], "{connection:?}");
        assert_eq!(rec.all("x-scope-route"), ["private"], "{connection:?}");
        assert_eq!(rec.all("x-forwarded-for"), ["127.0.0.1"], "{connection:?}");
        assert_eq!(rec.all("x-forwarded-proto"), ["http"], "{connection:?}");
        assert_eq!(
            rec.all("x-forwarded-host"),
            ["api.example.com"],
            "{connection:?}"
        );
        assert_eq!(rec.all("x-request-id"), ["req-7"], "{connection:?}");
        assert_eq!(rec.all("host"), [up.addr.to_string()], "{connection:?}");
        assert_eq!(&rec.body[..], b"hello", "{connection:?}");
        assert!(rec.all("connection").is_empty(), "{connection:?}");
    }
}

// ===========================================================================
// Path confusion

/// Spellings of an authenticated path that a backend may read as that path
/// never reach the upstream through the public wildcard beside it: each is
/// refused, or matched to the authenticated route (401 without a credential).
#[tokio::test]
async fn spellings_of_an_authenticated_path_never_pass_through_a_public_wildcard() {
    let (up, gate) = setup("").await;
    let mut forwarded = Vec::new();
    for target in [
        "/v2/private",
        "/v2/./private",
        "/v2/x/../private",
        "/v2/x/%2e%2e/private",
        "/v2/x/%2E%2e/private",
        "/v2/x/.%2e/private",
        "/v2//private",
        "//v2/private",
        "/v2/%70rivate",
        "/v2/x/..;/private",
        "/v2/x/..%3B/private",
        "/v2/x%2F..%2Fprivate",
        "/v2/x%5C..%5Cprivate",
        "/v2/x\\..\\private",
        "/v2/x/%c0%ae%c0%ae/private",
        "/v2/x/%C0%AE./private",
        "/v2/x/%e0%80%ae%e0%80%ae/private",
        // Tomcat and Spring drop `;` path parameters before matching.
        "/v2/private;x=1",
        "/v2/private;",
        "/v2/private;/",
        "/v2/private;jsessionid=0",
        // Express (non-strict routing) and Spring < 6 ignore a trailing slash;
        // Express and ASP.NET match paths case-insensitively.
        "/v2/private/",
        "/v2/private/.",
        "/v2/PRIVATE",
        "/v2/Private",
        "/v2/private#/../open",
        "/v2/private?/../open",
        "/v2/private?x=/open",
        "/v2/private%00",
        "/v2/private%09",
    ] {
        let before = up.count();
        let out = get_raw(&gate, target, "").await;
        let st = statuses(&out);
        if up.count() != before {
            let rec = up.records().pop().unwrap();
            forwarded.push(format!(
                "{target} -> {st:?}, upstream got {} (route {:?})",
                rec.target,
                rec.all("x-scope-route")
            ));
        } else {
            assert!(
                st == [400] || st == [401] || st == [404],
                "{target}: {st:?}\n{out}"
            );
        }
    }
    assert!(
        forwarded.is_empty(),
        "reached the upstream past the authenticated route:\n{}",
        forwarded.join("\n")
    );
}

/// A path the public wildcard may forward is sent exactly as it was matched:
/// no escape decoded twice, no overlong sequence turned into a dot.
#[tokio::test]
async fn the_upstream_gets_exactly_the_matched_path_and_never_a_second_decoding() {
    let (up, gate) = setup("").await;
    for (target, forwarded) in [
        ("/v2/a%252e%252e/b", "/v2/a%252e%252e/b"),
        ("/v2/%41%42c/d", "/v2/ABc/d"),
        ("/v2/a%2a/b?q=%2e%2e", "/v2/a%2A/b?q=%2e%2e"),
        ("/v2/%7e/./x//y/", "/v2/~/x/y/"),
    ] {
        let out = get_raw(&gate, target, "").await;
        match statuses(&out).as_slice() {
            [200] => {
                let rec = up.records().pop().unwrap();
                assert_eq!(rec.target, forwarded, "{target}");
                assert_eq!(rec.all("x-scope-route"), ["v2"], "{target}");
            }
            [400] => {}
            other => panic!("{target}: {other:?}\n{out}"),
        }
    }
}

/// Methods are case-sensitive tokens, but backends that upper-case them
/// (Symfony, Laravel) read `delete` as DELETE: a method-bound authenticated
/// route cannot be skipped by spelling its method in another case.
#[tokio::test]
async fn a_method_in_another_case_does_not_skip_a_method_bound_authenticated_route() {
    let (up, gate) = setup("").await;
    let mut seen = Vec::new();
    for method in ["DELETE", "delete", "Delete", "dELETE"] {
        let req =
            format!("{method} /v2/bookings/b-1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let out = exchange(gate.addr, req.as_bytes()).await;
        seen.push(format!("{method} -> {:?}", statuses(&out)));
    }
    let forwarded: Vec<String> = up
        .records()
        .iter()
        .map(|r| {
            format!(
                "{} {} (route {:?})",
                r.method,
                r.target,
                r.all("x-scope-route")
            )
        })
        .collect();
    assert!(
        forwarded.is_empty(),
        "forwarded without a credential: {forwarded:?}; answers: {seen:?}"
    );
}

/// `_method=DELETE` in the query makes Laravel, Symfony and Rack run a POST
/// as a DELETE: a POST that misses the DELETE route (session) must not
/// reach the public catch-all with it, in any spelling a backend decodes.
#[tokio::test]
async fn a_method_parameter_does_not_skip_a_method_bound_authenticated_route() {
    let (up, gate) = setup("").await;
    for query in [
        "_method=DELETE",
        "a=1&_METHOD=DELETE",
        "a=1;_method=DELETE",
        "%5Fmethod=DELETE",
        "_%6Dethod=DELETE",
        "_method[]=DELETE",
        ".method=DELETE",
    ] {
        let req = format!(
            "POST /v2/bookings/b-1?{query} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let out = exchange(gate.addr, req.as_bytes()).await;
        assert_eq!(statuses(&out), [400], "{query}: {out}");
        assert!(out.contains("bad_query"), "{query}: {out}");
    }
    assert_eq!(up.count(), 0, "forwarded: {:?}", up.records());
    // Names that only contain the word pass.
    let ok = "POST /v2/bookings/b-1?method=x&x_method=y HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    assert_eq!(statuses(&exchange(gate.addr, ok.as_bytes()).await), [200]);
    assert_eq!(up.count(), 1);
}

// ===========================================================================
// Request smuggling

/// Content-Length and Transfer-Encoding together, in both orders, with the
/// Transfer-Encoding obfuscated every way parsers have disagreed on. The
/// upstream (bytes, not a parser's view) gets one unambiguous framing and the
/// body as RFC 9112 reads it, and the request after the body is never read:
/// a message with both headers must end its connection.
#[tokio::test]
async fn content_length_with_transfer_encoding_never_desynchronises_the_upstream() {
    let chunked_empty = format!("0\r\n\r\n{HIDDEN}");
    let cl = chunked_empty.len();
    let hello = "5\r\nhello\r\n0\r\n\r\n";
    let cases = vec![
        (
            "CL then TE",
            post(
                &format!("Content-Length: {cl}\r\nTransfer-Encoding: chunked\r\n"),
                &chunked_empty,
            ),
            Want::BodyOrRefused(b""),
        ),
        (
            "TE then CL",
            post(
                &format!("Transfer-Encoding: chunked\r\nContent-Length: {cl}\r\n"),
                &chunked_empty,
            ),
            Want::BodyOrRefused(b""),
        ),
        (
            "TE then a short CL",
            post(
                "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
                &format!("{hello}{HIDDEN}"),
            ),
            Want::BodyOrRefused(b"hello"),
        ),
        (
            "TE: chunked, identity",
            post(
                &format!("Content-Length: {cl}\r\nTransfer-Encoding: chunked, identity\r\n"),
                &chunked_empty,
            ),
            Want::Refused,
        ),
        (
            "TE: identity",
            post(
                &format!("Content-Length: {cl}\r\nTransfer-Encoding: identity\r\n"),
                &chunked_empty,
            ),
            Want::Refused,
        ),
        (
            "TE: xchunked",
            post(
                &format!("Content-Length: {cl}\r\nTransfer-Encoding: xchunked\r\n"),
                &chunked_empty,
            ),
            Want::Refused,
        ),
        (
            "TE: chunkedx",
            post(
                &format!("Content-Length: {cl}\r\nTransfer-Encoding: chunkedx\r\n"),
                &chunked_empty,
            ),
            Want::Refused,
        ),
        (
            "TE: \"chunked\"",
            post(
                &format!("Content-Length: {cl}\r\nTransfer-Encoding: \"chunked\"\r\n"),
                &chunked_empty,
            ),
            Want::Refused,
        ),
        (
            "TE with extra spaces",
            post(
                &format!("Content-Length: {cl}\r\nTransfer-Encoding:   chunked  \r\n"),
                &chunked_empty,
            ),
            Want::BodyOrRefused(b""),
        ),
        (
            "TE after a tab",
            post(
                &format!("Content-Length: {cl}\r\nTransfer-Encoding:\tchunked\r\n"),
                &chunked_empty,
            ),
            Want::BodyOrRefused(b""),
        ),
        (
            "TE upper case",
            post(
                &format!("Content-Length: {cl}\r\nTransfer-Encoding: CHUNKED\r\n"),
                &chunked_empty,
            ),
            Want::BodyOrRefused(b""),
        ),
        (
            "TE chunked then identity in two lines",
            post(
                &format!(
                    "Content-Length: {cl}\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n"
                ),
                &chunked_empty,
            ),
            Want::Refused,
        ),
        (
            "TE identity then chunked in two lines",
            post(
                &format!(
                    "Content-Length: {cl}\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n"
                ),
                &chunked_empty,
            ),
            Want::BodyOrRefused(b""),
        ),
        (
            "TE twice",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                hello,
            ),
            Want::BodyOrRefused(b"hello"),
        ),
        (
            "TE folded onto the next line",
            post(
                &format!("Content-Length: {cl}\r\nTransfer-Encoding:\r\n chunked\r\n"),
                &chunked_empty,
            ),
            Want::Refused,
        ),
        (
            "TE with a space before the colon",
            post(
                &format!("Content-Length: {cl}\r\nTransfer-Encoding : chunked\r\n"),
                &chunked_empty,
            ),
            Want::Refused,
        ),
        (
            "TE spelt with an underscore",
            post(
                &format!("Content-Length: {}\r\nTransfer_Encoding: chunked\r\n", hello.len()),
                hello,
            ),
            Want::BodyOrRefused(hello.as_bytes()),
        ),
        (
            "CL spelt with an underscore beside the real one",
            post("Content_Length: 0\r\nContent-Length: 5\r\n", "hello"),
            Want::BodyOrRefused(b"hello"),
        ),
        (
            "TE on HTTP/1.0",
            format!(
                "POST /open HTTP/1.0\r\nHost: x\r\nContent-Length: {cl}\r\nTransfer-Encoding: chunked\r\n\r\n{chunked_empty}"
            ),
            Want::Refused,
        ),
        (
            "two different lengths",
            post("Content-Length: 5\r\nContent-Length: 6\r\n", &format!("hello!{HIDDEN}")),
            Want::Refused,
        ),
        (
            "a length list",
            post("Content-Length: 5, 6\r\n", &format!("hello!{HIDDEN}")),
            Want::Refused,
        ),
        (
            "an equal length list",
            post("Content-Length: 5, 5\r\n", "hello"),
            Want::BodyOrRefused(b"hello"),
        ),
        (
            "a signed length",
            post("Content-Length: +5\r\n", &format!("hello{HIDDEN}")),
            Want::Refused,
        ),
        (
            "a hex length",
            post("Content-Length: 0x5\r\n", &format!("hello{HIDDEN}")),
            Want::Refused,
        ),
        (
            "a negative length",
            post("Content-Length: -1\r\n", &format!("hello{HIDDEN}")),
            Want::Refused,
        ),
        (
            "a length past u64",
            post(
                "Content-Length: 18446744073709551621\r\n",
                &format!("hello{HIDDEN}"),
            ),
            Want::Refused,
        ),
        (
            "leading zeros in the length",
            post("Content-Length: 0005\r\n", "hello"),
            Want::BodyOrRefused(b"hello"),
        ),
    ];
    framing_cases(&cases).await;
}

/// Chunk sizes and chunk framing in shapes parsers have read differently.
/// Valid ones arrive with their exact body; the rest are never forwarded
/// whole, and nothing after them is read as a request.
#[tokio::test]
async fn obfuscated_chunking_is_decoded_exactly_or_refused() {
    let te = "Transfer-Encoding: chunked\r\n";
    let bad = |body: &str| post(te, &format!("{body}{HIDDEN}"));
    let cases = vec![
        (
            "plain",
            post(te, "5\r\nhello\r\n0\r\n\r\n"),
            Want::Body(b"hello"),
        ),
        (
            "leading zeros",
            post(te, "0005\r\nhello\r\n000\r\n\r\n"),
            Want::BodyOrRefused(b"hello"),
        ),
        (
            "an extension",
            post(te, "5;name=value\r\nhello\r\n0;x\r\n\r\n"),
            Want::BodyOrRefused(b"hello"),
        ),
        (
            "a quoted extension with a CRLF-looking value",
            post(te, "5;x=\"0\\r\\n\"\r\nhello\r\n0\r\n\r\n"),
            Want::BodyOrRefused(b"hello"),
        ),
        (
            "a trailer",
            post(te, "5\r\nhello\r\n0\r\nX-Checksum: 1\r\n\r\n"),
            Want::BodyOrRefused(b"hello"),
        ),
        (
            "a 0x prefix",
            bad("0x5\r\nhello\r\n0\r\n\r\n"),
            Want::Refused,
        ),
        (
            "a negative size",
            bad("-5\r\nhello\r\n0\r\n\r\n"),
            Want::Refused,
        ),
        (
            "a plus sign",
            bad("+5\r\nhello\r\n0\r\n\r\n"),
            Want::Refused,
        ),
        (
            "a size past u64",
            bad("1ffffffffffffffff5\r\nhello\r\n0\r\n\r\n"),
            Want::Refused,
        ),
        (
            "an empty size",
            bad("\r\nhello\r\n0\r\n\r\n"),
            Want::Refused,
        ),
        (
            "a non-hex size",
            bad("5g\r\nhello\r\n0\r\n\r\n"),
            Want::Refused,
        ),
        (
            "data longer than its size",
            bad("3\r\nhello\r\n0\r\n\r\n"),
            Want::Refused,
        ),
        (
            "data shorter than its size",
            bad("8\r\nhello\r\n0\r\n\r\n"),
            Want::Refused,
        ),
        (
            "no CRLF after the data",
            bad("5\r\nhello0\r\n\r\n"),
            Want::Refused,
        ),
        (
            "a bare CR after the size",
            bad("5\rhello\r\n0\r\n\r\n"),
            Want::Refused,
        ),
        (
            "bare LF line endings",
            post(te, "5\nhello\n0\n\n"),
            Want::BodyOrRefused(b"hello"),
        ),
        (
            "whitespace before the extension",
            post(te, "5 ;x\r\nhello\r\n0\r\n\r\n"),
            Want::BodyOrRefused(b"hello"),
        ),
        (
            "a NUL in an extension",
            post(te, "5;x\x00y\r\nhello\r\n0\r\n\r\n"),
            Want::BodyOrRefused(b"hello"),
        ),
    ];
    framing_cases(&cases).await;
}

/// A whole request inside a body, sized exactly, on a forwarded route, a GET,
/// a refused route and an unrouted one: it is body, never a second request.
#[tokio::test]
async fn a_request_inside_a_body_is_body_and_never_a_second_request() {
    let (up, gate) = setup("").await;
    let body = HIDDEN;
    let n = body.len();
    let chunked = format!("{n:x}\r\n{body}\r\n0\r\n\r\n");
    // Forwarded: the upstream gets it once, as body.
    let out = exchange(
        gate.addr,
        format!("POST /open HTTP/1.1\r\nHost: x\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n{body}").as_bytes(),
    )
    .await;
    assert_eq!(statuses(&out), [200], "{out}");
    let rec = up.single();
    assert_eq!(&rec.body[..], body.as_bytes());
    // A GET with a body (sized or chunked) gets one answer; nothing else runs.
    for framing in [
        format!("Content-Length: {n}\r\n\r\n{body}"),
        format!("Transfer-Encoding: chunked\r\n\r\n{chunked}"),
    ] {
        let req = format!("GET /open HTTP/1.1\r\nHost: x\r\n{framing}");
        let out = exchange(gate.addr, req.as_bytes()).await;
        assert_eq!(statuses(&out), [200], "{req:?}\n{out}");
    }
    // Refused before the body is read (401, 404, 405): the body is drained or
    // the connection closed, never parsed as a request.
    for target in ["/v2/private", "/admin", "/sessionToken"] {
        for framing in [
            format!("Content-Length: {n}\r\n\r\n{body}"),
            format!("Transfer-Encoding: chunked\r\n\r\n{chunked}"),
        ] {
            let req = format!("PUT {target} HTTP/1.1\r\nHost: x\r\n{framing}");
            let out = exchange(gate.addr, req.as_bytes()).await;
            let st = statuses(&out);
            assert!(st.len() == 1 && st[0] >= 400, "{req:?}: {st:?}\n{out}");
        }
    }
    assert_eq!(up.count(), 3);
    assert_nothing_smuggled(&up);
}

/// `Expect: 100-continue` on a refused request: no 100 is sent, and a client
/// that sends its body anyway (at once, or after the final answer) has it
/// taken as body or discarded, never as a request. On a forwarded request the
/// expectation is scopegate's to answer and never reaches the upstream.
#[tokio::test]
async fn expect_100_continue_races_never_turn_a_body_into_a_request() {
    let (up, gate) = setup("").await;
    let n = HIDDEN.len();
    let head = format!(
        "POST /v2/private HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {n}\r\n\r\n"
    );
    // Head and body together.
    let out = exchange(gate.addr, format!("{head}{HIDDEN}").as_bytes()).await;
    assert_eq!(statuses(&out), [401], "{out}");
    // Head, the final answer, then the body anyway, then another request.
    let mut w = Wire::open(gate.addr).await;
    w.send(head.as_bytes()).await;
    let (first, _) = w.read(RAW_WAIT).await;
    let first = String::from_utf8_lossy(&first).into_owned();
    assert_eq!(statuses(&first), [401], "{first}");
    w.send(HIDDEN.as_bytes()).await;
    w.send(HIDDEN.as_bytes()).await;
    let (rest, _) = w.read(RAW_WAIT).await;
    let rest = String::from_utf8_lossy(&rest).into_owned();
    assert!(
        statuses(&rest).iter().all(|s| *s != 200),
        "a body sent after the refusal was served as a request: {rest}"
    );
    assert_eq!(up.count(), 0);
    assert_nothing_smuggled(&up);

    // Forwarded: 100 Continue comes from scopegate once the body is wanted;
    // the upstream gets the body and no Expect.
    let mut w = Wire::open(gate.addr).await;
    w.send(
        b"POST /open HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
    )
    .await;
    let cont = w.read_until(b"\r\n\r\n", Duration::from_secs(2)).await;
    assert_eq!(statuses(&cont), [100], "{cont}");
    w.send(b"hello").await;
    let (done, _) = w.read(RAW_WAIT).await;
    assert_eq!(statuses(&String::from_utf8_lossy(&done)), [200]);
    let rec = up.single();
    assert_eq!(&rec.body[..], b"hello");
    assert!(rec.all("expect").is_empty());
}

/// h2c upgrades (RFC 7540 §3.2, gone from RFC 9113) are never honoured: no
/// 101, no `Upgrade` or `HTTP2-Settings` upstream, and HTTP/2 frames sent as
/// if the upgrade had happened are never served as a request, neither are a
/// WebSocket upgrade's frames.
#[tokio::test]
async fn h2c_and_websocket_upgrades_never_open_a_tunnel() {
    let (up, gate) = setup("").await;
    let mut smuggled_h2 = h2_start();
    smuggled_h2.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &request_block("GET", "/open?smuggled=1", &[]),
    ));
    for upgrade in [
        "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nConnection: Upgrade, HTTP2-Settings\r\n",
        "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nConnection: keep-alive\r\n",
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
    ] {
        let before = up.count();
        let mut w = Wire::open(gate.addr).await;
        let mut req = format!("GET /open HTTP/1.1\r\nHost: x\r\n{upgrade}\r\n").into_bytes();
        req.extend_from_slice(&smuggled_h2);
        w.send(&req).await;
        let (out, _) = w.read(RAW_WAIT).await;
        let out = String::from_utf8_lossy(&out).into_owned();
        let st = statuses(&out);
        assert_eq!(st.first(), Some(&200), "{upgrade:?}: {out}");
        assert!(!st.contains(&101), "{upgrade:?}: switched protocols: {out}");
        assert!(st[1..].iter().all(|s| *s >= 400), "{upgrade:?}: {out}");
        let recs = up.records();
        assert_eq!(recs.len(), before + 1, "{upgrade:?}");
        let rec = recs.last().unwrap();
        assert_eq!(rec.target, "/open");
        for h in ["upgrade", "http2-settings", "connection"] {
            assert!(rec.all(h).is_empty(), "{upgrade:?}: {h} forwarded");
        }
    }
    assert_nothing_smuggled(&up);
}

/// The HTTP/2 connection preface after an HTTP/1.1 request on the same
/// connection (prior knowledge is only detected at its start) is an HTTP/1
/// parse error, and the frames behind it are never served.
#[tokio::test]
async fn an_h2_preface_in_the_middle_of_an_http1_connection_is_not_served() {
    let (up, gate) = setup("").await;
    let mut req = b"GET /open HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    req.extend(h2_start());
    req.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &request_block("GET", "/open?smuggled=1", &[]),
    ));
    let out = exchange(gate.addr, &req).await;
    let st = statuses(&out);
    assert_eq!(st.first(), Some(&200), "{out}");
    assert!(st[1..].iter().all(|s| *s >= 400), "{out}");
    assert_eq!(up.single().target, "/open");
}

/// Oversized heads: a request over the header limit is answered 431 and its
/// connection closed, so a request hidden behind it is never read; a pile of
/// client scope headers within the limits is stripped whole.
#[tokio::test]
async fn oversized_header_tricks_hide_nothing() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::public(
        &up,
        "[limits]\nmax_header_bytes = \"2KiB\"\nmax_headers = 40\n",
    )
    .await;
    // Over max_header_bytes in one value; then over max_headers; each with a
    // request behind it.
    let big = format!(
        "GET /open HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n{HIDDEN}",
        "a".repeat(3000)
    );
    let many = format!(
        "GET /open HTTP/1.1\r\nHost: x\r\n{}\r\n{HIDDEN}",
        (0..50)
            .map(|i| format!("X-F{i}: 1\r\n"))
            .collect::<String>()
    );
    for req in [big, many] {
        let out = exchange(gate.addr, req.as_bytes()).await;
        assert_eq!(statuses(&out), [431], "{out}");
    }
    assert_eq!(up.count(), 0);

    // 35 copies and spellings of scope headers, one 1.5 KiB: all gone.
    let forged: String = (0..34)
        .map(|i| {
            let name = [
                "X-Scope-App",
                "x_scope_app",
                "X-SCOPE-BUSINESS",
                "X_Scope_Route",
            ][i % 4];
            format!("{name}: forged-{i}\r\n")
        })
        .collect();
    let req = format!(
        "GET /open HTTP/1.1\r\nHost: x\r\n{forged}X-Scope-Subject: {}\r\nConnection: close\r\n\r\n",
        "s".repeat(1000)
    );
    let out = exchange(gate.addr, req.as_bytes()).await;
    assert_eq!(statuses(&out), [200], "{out}");
    let rec = up.single();
    assert_eq!(rec.names_with_prefix("x-scope-"), ["x-scope-route"]);
    assert_eq!(rec.all("x-scope-route"), ["open"]);
    assert_nothing_smuggled(&up);
}

// ===========================================================================
// Generated header injection

const SEARCH_KEY: &str = "live_api_key_adversarial_Zq81";
const SSO_COMPANY: &str = "37000";
const SSO_KEY: &str = "sk_adversarial_7f3a9c1e";

fn injection_config() -> String {
    format!(
        r#"
[[app]]
slug = "shop"
[[app.key]]
key = "{SEARCH_KEY}"

[[route]]
name = "bookings"
methods = ["GET"]
path = "/v2/bookings"
auth = ["signed-search"]
upstream = "backend"

[[sso_company]]
company_id = "{SSO_COMPANY}"
secure_key = "{SSO_KEY}"
forward_names = true

[[route]]
name = "widget"
path = "/v2/me/*"
auth = ["sso"]
upstream = "backend"

[failures]
limit = 0
"#
    )
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn utc(unix: u64) -> String {
    chrono::DateTime::from_timestamp(unix as i64, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A validly signed or encrypted credential whose claims carry line breaks,
/// NUL, commas (a list where one value is meant) or too many bytes is refused
/// whole: the upstream never gets a header made of them, split, escaped or
/// truncated. The same credentials with clean values pass, so the refusals
/// are the values'.
#[tokio::test]
async fn credential_values_that_would_split_or_list_a_header_are_refused_whole() {
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::start(&config(up.addr, &injection_config())).await;
    let search = |field: &str, value: &str| {
        let mut claims = serde_json::Map::new();
        claims.insert("app_slug".into(), json!("shop"));
        claims.insert(field.into(), json!(value));
        let t = jwt::sign(&claims, SEARCH_KEY.as_bytes());
        format!(
            "/v2/bookings?search={}&signed_search={t}",
            enc(&format!("{field}:{value}"))
        )
    };
    let sso_token = |fields: Value| {
        let mut p = json!({
            "first_name": "Ann", "last_name": "Lee", "email": "ann@example.com",
            "reference": "C-1001", "expires": utc(unix_now() + 3600),
        });
        p.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        let keys = sso::Keys::derive(SSO_KEY.as_bytes(), SSO_COMPANY);
        format!(
            "/v2/me/bookings?sso-token={}",
            sso::mint_v2(p.to_string().as_bytes(), &keys.v2)
        )
    };

    // Clean values go through.
    for target in [search("meta.customer_id", "12345"), sso_token(json!({}))] {
        let out = get_raw(&gate, &target, "").await;
        assert_eq!(statuses(&out), [200], "{target}: {out}");
    }
    assert_eq!(up.count(), 2);

    let long = "a".repeat(600);
    let mut refused = vec![
        search("meta.customer_id", "1\r\nX-Scope-App: admin"),
        search("meta.customer_id", "1\nX-Scope-App: admin"),
        search("meta.customer_id", "1\rX"),
        search("meta.customer_id", "1\u{0}2"),
        search("meta.customer_id", "1\u{85}2"),
        search("meta.customer_id", "12345,67890"),
        search("meta.customer_id", &long),
        search("customer.email", "ann@example.com,eve@example.com"),
        search("customer.email", "ann@example.com\r\nX-Scope-App: admin"),
    ];
    for fields in [
        json!({"reference": "C-1\r\nX-Scope-Business: 1"}),
        json!({"reference": "C-1,C-2"}),
        json!({"reference": "C-1\u{0}"}),
        json!({"reference": long}),
        json!({"first_name": "Ann\r\nX-Scope-Business: 1"}),
        json!({"last_name": "Lee\nX"}),
        json!({"first_name": "Ann,Eve"}),
        json!({"email": "ann@example.com,eve@example.com"}),
        json!({"email": "ann@example.com\r\nX-Scope-Business: 1"}),
    ] {
        refused.push(sso_token(fields));
    }
    for target in &refused {
        let out = get_raw(&gate, target, "").await;
        let st = statuses(&out);
        assert!(st == [400] || st == [401], "{target}: {st:?}\n{out}");
    }
    assert_eq!(up.count(), 2, "a refused credential reached the upstream");
    for rec in up.records() {
        for (n, v) in &rec.headers {
            let v = v.as_bytes();
            let control = v.iter().any(|b| *b < 0x20 && *b != b'\t');
            let list = n.as_str().starts_with("x-scope-") && v.contains(&b',');
            assert!(!control && !list, "{n}: {v:?}");
        }
    }
}

// ===========================================================================
// HTTP/2 floods and slow clients

/// Rapid reset (CVE-2023-44487): thousands of streams opened and cancelled at
/// once. The server sends GOAWAY (ENHANCE_YOUR_CALM) or closes, the upstream
/// sees a small fraction of them, and a new client is served right after.
#[tokio::test]
async fn an_h2_rapid_reset_flood_is_cut_off_and_barely_reaches_the_upstream() {
    let (up, gate) = setup("").await;
    const STREAMS: u32 = 2000;
    let mut b = h2_start();
    let block = request_block("GET", "/open", &[]);
    for i in 0..STREAMS {
        let id = 2 * i + 1;
        b.extend(frame(HEADERS, END_HEADERS | END_STREAM, id, &block));
        b.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
    }
    let (frames, closed, took) = h2_flood(gate.addr, b, Duration::from_secs(10)).await;
    assert!(
        closed || goaway_code(&frames).is_some(),
        "the flood went on for {took:?} without GOAWAY or close"
    );
    if let Some(code) = goaway_code(&frames) {
        assert_eq!(code, ENHANCE_YOUR_CALM, "{frames:?}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reached = up.count();
    assert!(
        reached < (STREAMS / 10) as usize,
        "{reached} of {STREAMS} cancelled requests reached the upstream"
    );
    let r = get(&gate.url("/open")).await;
    assert_eq!(r.status, 200);
}

/// CONTINUATION flood (RUSTSEC-2024-0332): a header block that never ends,
/// in small frames and in full ones. The connection is closed within a few
/// frames' worth, long before the megabytes are sent, and nothing is
/// forwarded.
#[tokio::test]
async fn an_h2_continuation_flood_is_cut_off_before_it_is_read() {
    let (up, gate) = setup("").await;
    for pad in [0usize, 1, 16_000] {
        let mut b = h2_start();
        b.extend(frame(
            HEADERS,
            END_STREAM,
            1,
            &request_block("GET", "/open", &[]),
        ));
        let piece = hpack(&[("x-pad", &"p".repeat(pad))]);
        let piece = if pad == 0 { Vec::new() } else { piece };
        let count = if pad == 0 { 50_000 } else { 2_000 };
        for _ in 0..count {
            b.extend(frame(CONTINUATION, 0, 1, &piece));
        }
        let (frames, closed, took) = h2_flood(gate.addr, b, Duration::from_secs(10)).await;
        assert_eq!(
            goaway_code(&frames),
            Some(ENHANCE_YOUR_CALM),
            "pad {pad}: closed {closed} after {took:?}"
        );
        assert!(took < Duration::from_secs(5), "pad {pad}: took {took:?}");
    }
    assert_eq!(up.count(), 0);
    assert_eq!(get(&gate.url("/open")).await.status, 200);
}

/// Empty DATA frames (RUSTSEC-2026-0258): a request body made of tens of
/// thousands of zero-length frames is cut off with GOAWAY, and the body it
/// pretends to carry never reaches the upstream whole.
#[tokio::test]
async fn an_h2_empty_data_flood_is_cut_off() {
    let (up, gate) = setup("").await;
    let mut b = h2_start();
    b.extend(frame(
        HEADERS,
        END_HEADERS,
        1,
        &request_block("POST", "/open", &[]),
    ));
    for _ in 0..50_000 {
        b.extend(frame(DATA, 0, 1, &[]));
    }
    b.extend(frame(DATA, END_STREAM, 1, b"hello"));
    let (frames, closed, took) = h2_flood(gate.addr, b, Duration::from_secs(10)).await;
    assert_eq!(
        goaway_code(&frames),
        Some(ENHANCE_YOUR_CALM),
        "closed {closed} after {took:?}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        up.records().iter().all(|r| &r.body[..] != b"hello"),
        "the flooded body was forwarded whole"
    );
}

/// An HTTP/2 header block that never completes is a request head that never
/// arrives: the connection is closed by the header-read timeout, not held
/// for the idle timeout.
#[tokio::test]
async fn an_h2_header_block_left_open_is_closed_by_the_header_read_timeout() {
    let (up, gate) =
        setup("[limits]\nheader_read_timeout = \"1s\"\nidle_timeout = \"60s\"\n").await;
    let mut b = h2_start();
    b.extend(frame(
        HEADERS,
        END_STREAM,
        1,
        &request_block("GET", "/open", &[]),
    ));
    let (frames, closed, took) = h2_flood(gate.addr, b, Duration::from_secs(10)).await;
    assert!(
        closed,
        "still open after {took:?} (GOAWAY {:?}): the server waits for the \
         client to answer its shutdown PING",
        goaway_code(&frames)
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(up.count(), 0);
}

// ===========================================================================
// JWT verification

/// Tokens whose header picks the key or the algorithm (an embedded `jwk`
/// signed with the attacker's key, `jku`, `kid` path tricks, HS512 or RS256
/// with the app key as the secret, a lower-case or empty `alg`, `crit`,
/// unencoded payloads), sent through a real gate: each gets the one uniform
/// 401, and none reaches the upstream. A control token with the same claims
/// passes.
#[tokio::test]
async fn tokens_that_choose_their_key_or_algorithm_get_the_uniform_401_on_the_wire() {
    use hmac::{Hmac, Mac};
    let up = Upstream::start(Behavior::Ok).await;
    let gate = Gate::start(&config(up.addr, &injection_config())).await;
    let payload = json!({"app_slug": "shop", "customer.email": "ann@example.com"});
    let target =
        |t: &str| format!("/v2/bookings?search=customer.email:ann@example.com&signed_search={t}");
    let b64 = |v: &[u8]| URL_SAFE_NO_PAD.encode(v);
    let signed = |header: Value, key: &[u8], sha512: bool| {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(payload.to_string().as_bytes())
        );
        let sig = if sha512 {
            let mut m = Hmac::<sha2::Sha512>::new_from_slice(key).unwrap();
            m.update(input.as_bytes());
            m.finalize().into_bytes().to_vec()
        } else {
            let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
            m.update(input.as_bytes());
            m.finalize().into_bytes().to_vec()
        };
        format!("{input}.{}", b64(&sig))
    };
    let app = SEARCH_KEY.as_bytes();
    let mine = b"attacker-chosen-key";

    let control = signed(json!({"alg": "HS256", "typ": "JWT"}), app, false);
    let out = get_raw(&gate, &target(&control), "").await;
    assert_eq!(statuses(&out), [200], "{out}");
    assert_eq!(up.count(), 1);

    let real_sig = control.rsplit('.').next().unwrap().to_string();
    let cases: Vec<(&str, String)> = vec![
        (
            "embedded jwk",
            signed(
                json!({"alg": "HS256", "jwk": {"kty": "oct", "k": b64(mine)}}),
                mine,
                false,
            ),
        ),
        (
            "jku",
            signed(
                json!({"alg": "HS256", "jku": "http://127.0.0.1:9/jwks"}),
                mine,
                false,
            ),
        ),
        (
            "x5u",
            signed(
                json!({"alg": "HS256", "x5u": "http://127.0.0.1:9/c"}),
                mine,
                false,
            ),
        ),
        (
            "kid at an empty file",
            signed(
                json!({"alg": "HS256", "kid": "../../../../dev/null"}),
                b"",
                false,
            ),
        ),
        (
            "kid at the app key",
            signed(json!({"alg": "HS256", "kid": "shop"}), app, false),
        ),
        ("HS512", signed(json!({"alg": "HS512"}), app, true)),
        (
            "RS256 keyed with the app key",
            signed(json!({"alg": "RS256", "typ": "JWT"}), app, false),
        ),
        (
            "lower-case alg",
            signed(json!({"alg": "hs256"}), app, false),
        ),
        ("empty alg", signed(json!({"alg": ""}), app, false)),
        ("no alg", signed(json!({"typ": "JWT"}), app, false)),
        (
            "crit",
            signed(json!({"alg": "HS256", "crit": ["exp"]}), app, false),
        ),
        (
            "b64 false",
            signed(json!({"alg": "HS256", "b64": false}), app, false),
        ),
        (
            "alg none with the real signature",
            format!(
                "{}.{}.{real_sig}",
                b64(br#"{"alg":"none"}"#),
                b64(payload.to_string().as_bytes())
            ),
        ),
        (
            "alg none unsigned",
            format!(
                "{}.{}.",
                b64(br#"{"alg":"none"}"#),
                b64(payload.to_string().as_bytes())
            ),
        ),
        ("empty key", signed(json!({"alg": "HS256"}), b"", false)),
        ("padded base64", format!("{control}=")),
    ];
    let mut uniform = Uniform401::default();
    for (what, t) in &cases {
        uniform.check(what, &get_raw(&gate, &target(t), "").await);
    }
    assert_eq!(up.count(), 1, "a forged token reached the upstream");
}

/// A blank secret (empty, or a file holding only a newline) never becomes a
/// key anyone could sign with: the configuration is refused at load.
#[test]
fn blank_secrets_are_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blank.key");
    std::fs::write(&file, "\n").unwrap();
    let up: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let route = "[[route]]\nname = \"b\"\npath = \"/b\"\nauth = [\"signed-search\"]\nupstream = \"backend\"\n";
    for app in [
        "[[app]]\nslug = \"shop\"\n[[app.key]]\nkey = \"\"\n".to_string(),
        format!(
            "[[app]]\nslug = \"shop\"\n[[app.key]]\nkey_file = \"{}\"\n",
            file.display()
        ),
    ] {
        let toml = config(up, &format!("{app}\n{route}"));
        assert!(
            scopegate::Config::from_toml(&toml).is_err(),
            "accepted a blank key:\n{app}"
        );
    }
    let company = "[[sso_company]]\ncompany_id = \"1\"\nsecure_key = \"\"\n";
    let toml = config(
        up,
        &format!("{company}\n[[route]]\nname = \"w\"\npath = \"/w\"\nauth = [\"sso\"]\nupstream = \"backend\"\n"),
    );
    assert!(
        scopegate::Config::from_toml(&toml).is_err(),
        "accepted a blank key:\n{company}"
    );
}

// ===========================================================================
// Cache keyed too loosely

/// Sessions are scopegate's cached verifications. One opened by a TimeTap
/// handshake is no credential on an SSO route, and an SSO session none on a
/// session route, whatever carrier they come in: the upstream sees neither.
#[tokio::test]
async fn a_session_of_one_scheme_is_no_credential_on_another_schemes_route() {
    let up = Upstream::start(Behavior::Ok).await;
    let extra = format!(
        r#"
[[business]]
id = "biz-1"
api_key = "{API_KEY}"
private_key = "{PRIVATE_KEY}"

[[route]]
name = "appointments"
path = "/v2/appointments/*"
auth = ["session"]
upstream = "backend"

[[sso_company]]
company_id = "{SSO_COMPANY}"
secure_key = "{SSO_KEY}"

[[route]]
name = "widget"
path = "/v2/me/*"
auth = ["sso"]
upstream = "backend"

[sso.session]
handout = "header"
"#
    );
    let gate = Gate::start(&config(up.addr, &extra)).await;
    let timetap = session_token(&gate).await;
    let payload = json!({
        "first_name": "Ann", "last_name": "Lee", "email": "ann@example.com",
        "expires": utc(unix_now() + 3600),
    });
    let keys = sso::Keys::derive(SSO_KEY.as_bytes(), SSO_COMPANY);
    let token = sso::mint_v2(payload.to_string().as_bytes(), &keys.v2);
    let r = get(&gate.url(&format!("/v2/me/x?sso-token={token}"))).await;
    assert_eq!(r.status, 200);
    let sso_session = r.headers["x-sso-session"].to_str().unwrap().to_string();

    // Each on its own route works.
    for (path, bearer) in [("/v2/appointments/1", &timetap), ("/v2/me/x", &sso_session)] {
        let out = get_raw(&gate, path, &format!("Authorization: Bearer {bearer}\r\n")).await;
        assert_eq!(statuses(&out), [200], "{path}: {out}");
    }
    let before = up.count();
    for (path, extra) in [
        ("/v2/me/x", format!("Authorization: Bearer {timetap}\r\n")),
        ("/v2/me/x", format!("X-SSO-Token: {timetap}\r\n")),
        ("/v2/me/x", format!("Cookie: scopegate_sso={timetap}\r\n")),
        (
            "/v2/appointments/1",
            format!("Authorization: Bearer {sso_session}\r\n"),
        ),
        (
            "/v2/appointments/1",
            format!("Cookie: scopegate_sso={sso_session}\r\n"),
        ),
        (
            "/v2/appointments/1",
            format!("Authorization: Bearer {token}\r\n"),
        ),
    ] {
        let out = get_raw(&gate, path, &extra).await;
        assert_eq!(statuses(&out), [401], "{path} {extra:?}: {out}");
    }
    assert_eq!(up.count(), before);
    for rec in up.records() {
        let all = format!("{:?} {}", rec.headers, rec.target);
        for secret in [&timetap, &sso_session, &token] {
            assert!(
                !all.contains(secret.as_str()),
                "a credential reached the upstream: {all}"
            );
        }
    }
}
