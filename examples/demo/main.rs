//! `cargo run --example demo`: scopegate in front of a toy legacy booking API.
//!
//! Starts the in-memory booking backend (`backend.rs`) on 127.0.0.1:8081, then
//! scopegate with `config/scopegate.toml`, then the customer overview page
//! (`examples/customer-overview/`, served by `site.rs`) on 127.0.0.1:8090, an
//! origin the configuration allows, and on 127.0.0.1:8091, one it does not;
//! and prints curl lines and the page's addresses to try. The backend echoes the `X-Scope-*` headers it received, so every response shows
//! what scopegate let through and what it added. Ctrl-C or SIGTERM stops both:
//! scopegate drains first (`listen.drain_timeout`), then the backend.
//!
//! ```text
//! cargo run --example demo
//! cargo run --example demo -- --config my.toml
//! cargo run --example demo -- --backend-only --listen 127.0.0.1:18081   # benches/load.sh
//! ```

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    process::ExitCode,
    time::Duration,
};

use clap::Parser;
use http::Method;
use scopegate::{
    actions::Link,
    auth::{AuthPolicy, Scheme},
    clock::Clock,
    config::LogFormat,
    routes::Lookup,
    Config,
};

mod backend;
mod site;

#[derive(Parser)]
#[command(
    name = "demo",
    about = "scopegate in front of a toy legacy booking API"
)]
struct Args {
    /// scopegate configuration; its upstream should point at --listen.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/config/scopegate.toml"))]
    config: PathBuf,
    /// Run only the booking backend, without scopegate.
    #[arg(long, conflicts_with = "config")]
    backend_only: bool,
    /// Address of the booking backend.
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// Where the customer overview page is served: an origin the
    /// configuration's cors_origins allow.
    #[arg(long, default_value = "127.0.0.1:8090")]
    page: SocketAddr,
    /// The same page on an origin the configuration does not allow.
    #[arg(long, default_value = "127.0.0.1:8091")]
    refused_page: SocketAddr,
}

/// The customer overview page's files.
const PAGE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/customer-overview");

/// How long the backend lets open connections finish once asked to stop.
const BACKEND_DRAIN: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if args.backend_only {
        let _log = scopegate::telemetry::init(LogFormat::Human, "info");
        return backend_only(args.listen).await;
    }

    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "error: {} is not a valid configuration:",
                args.config.display()
            );
            for p in &e.problems {
                eprintln!("  {p}");
            }
            return ExitCode::FAILURE;
        }
    };
    let _log = scopegate::telemetry::init(config.log.format, &config.log.level);
    for w in &config.warnings {
        tracing::warn!("{w}");
    }

    let backend = match backend::start(args.listen).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(addr = %args.listen, error = %e, "cannot start the demo backend");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(addr = %backend.addr, "demo backend listening");

    // `start` takes the config, so work out the curl lines first.
    let tries = plan(&config);
    let session = session_try(&config, Clock::system().now());
    let sso = sso_try(&config, Clock::system().now());
    let api_key = api_key_try(&args.config);
    let page_token = demo_token(&config, Clock::system().now());
    let drain = config.drain_timeout;
    let running = match scopegate::start(config).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start scopegate");
            backend.shutdown(Duration::ZERO).await;
            return ExitCode::FAILURE;
        }
    };
    print_tries(&tries, running.addr, running.admin_addr, backend.addr);
    if let Some(s) = &session {
        print_session(s, running.addr, running.admin_addr);
    }
    if let Some(s) = &sso {
        print_sso(s, running.addr, running.admin_addr);
    }
    if let Some((key, secret)) = &api_key {
        print_api_key(key, secret, running.addr);
    }
    let gate = format!("http://{}", reachable(running.addr));
    let mut sites = Vec::new();
    for addr in [args.page, args.refused_page] {
        match site::start(addr, PAGE_DIR.into(), &gate).await {
            Ok(s) => sites.push(s),
            Err(e) => {
                tracing::error!(%addr, error = %e, "cannot serve the customer overview page");
                running.shutdown(Duration::ZERO).await;
                backend.shutdown(Duration::ZERO).await;
                return ExitCode::FAILURE;
            }
        }
    }
    print_pages(
        &gate,
        &sites[0],
        &sites[1],
        page_token.as_deref(),
        sso.as_ref(),
    );
    println!("Ctrl-C stops them all.");

    shutdown_signal().await;
    tracing::info!(deadline = ?drain, "shutting down: scopegate drains, then the backend");
    sites.into_iter().for_each(site::Site::shutdown);
    running.shutdown(drain).await;
    backend.shutdown(BACKEND_DRAIN).await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

async fn backend_only(listen: SocketAddr) -> ExitCode {
    let backend = match backend::start(listen).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(addr = %listen, error = %e, "cannot start the demo backend");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(addr = %backend.addr, "demo backend listening (backend only)");
    shutdown_signal().await;
    backend.shutdown(BACKEND_DRAIN).await;
    ExitCode::SUCCESS
}

/// Requests worth trying through scopegate: what it shows, extra curl flags,
/// request target.
#[rustfmt::skip]
const TRIES: &[(&str, &str, &str)] = &[
    ("liveness", "", "/v2/health"),
    ("the resource list", "", "/v2/resources"),
    ("one resource", "", "/v2/resources/room-a"),
    ("all bookings, with no credential", "", "/v2/bookings"),
    (
        "forged scope headers are stripped: the echo shows only scopegate's x-scope-route",
        "-i -H 'X-Scope-App: forged' -H 'X_Scope_Customer_Email: mallory@example.com' ",
        "/v2/health",
    ),
    ("one booking, with no credential (its route wants a session)", "", "/v2/bookings/b-1001"),
    ("not a backend path at all", "", "/admin"),
];

/// The demo app and customer of the signed-search and action-link lines.
const DEMO_APP: &str = "demo-app";
const DEMO_CUSTOMER: &str = "ada@example.com";
/// The action of the action-link lines, and two of the demo customer's
/// bookings in the backend (`Store::seeded`) that she may take it on.
const DEMO_ACTION: &str = "cancel_by_customer";
const DEMO_CONFIRMED: &str = "b-1001";
const DEMO_TENTATIVE: &str = "b-1002";

/// One line to try: what it shows, curl flags, target, and what the
/// configured route table will do with it.
type Planned = (String, &'static str, String, String);

/// A signed-search token for the demo customer, minted from the configured
/// demo app key; `None` when the configuration has no such app.
fn demo_token(config: &Config, now: u64) -> Option<String> {
    let mut claims = serde_json::Map::new();
    claims.insert("customer.email".into(), DEMO_CUSTOMER.into());
    config.auth.apps.mint(DEMO_APP, claims, now).ok()
}

/// Signed-search lines, with a token minted from the configured demo app key.
fn signed_search_tries(config: &Config, now: u64) -> Vec<(String, &'static str, String)> {
    let Some(token) = demo_token(config, now) else {
        return Vec::new();
    };
    let mut tries = vec![
        (
            format!("{DEMO_CUSTOMER}'s confirmed bookings: a signed search, scoped by scopegate"),
            "",
            format!("/v2/bookings?search=customer.email:{DEMO_CUSTOMER};state:confirmed&signed_search={token}"),
        ),
        (
            "the same token with another customer's email: 401, never forwarded".into(),
            "",
            format!("/v2/bookings?search=customer.email:grace@example.com&signed_search={token}"),
        ),
    ];
    if config.auth.actions.can_mint() {
        tries.push((
            format!(
                "{DEMO_CUSTOMER}'s overview: every booking gets customer_action_links, \
                 one signed link per action it allows ({{}} for none)"
            ),
            "",
            format!("/v2/bookings?search=customer.email:{DEMO_CUSTOMER}&include=customer_action_links&signed_search={token}"),
        ));
    }
    tries
}

/// A freshly signed `DEMO_ACTION` link for one of the demo customer's
/// bookings, as a request target on scopegate (path and query; the host of
/// `action_links.public_base_url` is left out). `None` when the configuration
/// has no such action, or no route that takes the link with GET.
fn action_link(config: &Config, booking_id: &str, now: u64) -> Option<String> {
    let links = &config.auth.actions;
    let action = links.get(DEMO_ACTION)?;
    let path = links.link_path.render(booking_id, DEMO_ACTION);
    let routed = match config.routes.lookup(None, &Method::GET, &path) {
        Lookup::Found(route, _) => {
            matches!(&route.auth, AuthPolicy::AnyOf(s) if s.contains(&Scheme::ActionLink))
        }
        _ => false,
    };
    if !routed || !action.methods.contains(&Method::GET) {
        return None;
    }
    let link = Link {
        app: DEMO_APP,
        booking_id,
        action,
        subject: Some(("customer.email", DEMO_CUSTOMER)),
        ttl: None,
    };
    let url = links.mint(&config.auth.apps, &link, now).ok()?;
    let (_, query) = url.split_once('?')?;
    Some(format!("{path}?{query}"))
}

/// Action-link lines: links minted at start, as the overview hands them out.
fn action_link_tries(config: &Config, now: u64) -> Vec<(String, &'static str, String)> {
    let Some(link) = action_link(config, DEMO_CONFIRMED, now) else {
        return Vec::new();
    };
    let mut tries = vec![
        (
            format!("follow a cancel link for {DEMO_CUSTOMER}'s confirmed {DEMO_CONFIRMED}: the backend's answer, state cancelled"),
            "-i ",
            link.clone(),
        ),
        (
            "the same link again: single use, 409 link_already_used, never forwarded".into(),
            "-i ",
            link,
        ),
    ];
    // A used link answers 409 before its redirect counts, so the redirect
    // lines take a fresh link, for a booking that can still be cancelled.
    let Some(fresh) = action_link(config, DEMO_TENTATIVE, now) else {
        return tries;
    };
    tries.push((
        format!("a fresh cancel link for {DEMO_TENTATIVE} with a redirect outside redirect_origins: 400 redirect_not_allowed, the link stays unused"),
        "-i ",
        format!("{fresh}&redirect=https://evil.example/"),
    ));
    let action = config.auth.actions.get(DEMO_ACTION);
    if let Some(origin) = action.and_then(|a| config.auth.actions.origins(a).first()) {
        tries.push((
            format!("the same link with an allowed redirect: 302 to it once the backend has cancelled {DEMO_TENTATIVE}"),
            "-i ",
            format!("{fresh}&redirect={}/v2/health", origin.ascii_serialization()),
        ));
    }
    tries
}

fn plan(config: &Config) -> Vec<Planned> {
    let now = Clock::system().now();
    let fixed = TRIES
        .iter()
        .map(|&(what, flags, target)| (what.to_string(), flags, target.to_string()));
    fixed
        .chain(signed_search_tries(config, now))
        .chain(action_link_tries(config, now))
        .map(|(what, flags, target)| {
            let path = target.split_once('?').map_or(target.as_str(), |(p, _)| p);
            let verdict = match config.routes.lookup(None, &Method::GET, path) {
                Lookup::Found(route, _) => match &route.auth {
                    AuthPolicy::Public => format!("route {}, public", route.name),
                    auth => format!(
                        "route {} needs {auth}: 401 without a credential",
                        route.name
                    ),
                },
                Lookup::MethodNotAllowed(_) => "no GET route: scopegate answers 405".into(),
                Lookup::NotFound => "no route: scopegate answers 404, never forwarded".into(),
            };
            (what, flags, target, verdict)
        })
        .collect()
}

/// An address a local curl can reach (a wildcard bind is reached via loopback).
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        ip if ip.is_unspecified() => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port()),
        _ => addr,
    }
}

fn print_tries(
    tries: &[Planned],
    gate: SocketAddr,
    admin: Option<SocketAddr>,
    backend: SocketAddr,
) {
    let gate = reachable(gate);
    println!("\nscopegate is listening on http://{gate}; try:\n");
    for (what, flags, target, verdict) in tries {
        println!("  # {what} ({verdict})");
        println!("  curl -s {flags}'http://{gate}{target}'\n");
    }
    if let Some(admin) = admin.map(reachable) {
        println!("  # admin listener: alive / accepting traffic");
        println!("  curl -s http://{admin}/healthz");
        println!("  curl -s http://{admin}/readyz\n");
    }
    let backend = reachable(backend);
    println!("  # the backend itself, bypassing scopegate: it believes any X-Scope-* header");
    println!("  curl -s -H 'X-Scope-App: forged' http://{backend}/v2/bookings/b-1006");
    println!("  curl -s -X PUT http://{backend}/v2/bookings/b-1006/confirm\n");
}

/// A legacy client's session flow: the business id, the handshake path and
/// query (signed now), and a path on a session route.
struct SessionTry {
    business: String,
    handshake: String,
    route_path: Option<String>,
}

fn session_try(config: &Config, now: u64) -> Option<SessionTry> {
    let sessions = &config.auth.sessions;
    let mut businesses: Vec<_> = sessions.by_api_key.values().collect();
    businesses.sort_by(|a, b| a.id.cmp(&b.id));
    let b = businesses.first()?;
    let ts = now.to_string();
    let query = scopegate::auth::session::handshake_query(b, &ts);
    // A booking of the demo backend, if a session route serves it.
    let path = "/v2/bookings/b-1001";
    let route_path =
        served_by(config, path, scopegate::auth::Scheme::Session).then(|| path.to_string());
    Some(SessionTry {
        business: b.id.clone(),
        handshake: format!("{}?{query}", sessions.path),
        route_path,
    })
}

/// Whether a GET of `path` reaches a route that accepts `scheme`.
fn served_by(config: &Config, path: &str, scheme: scopegate::auth::Scheme) -> bool {
    matches!(
        config.routes.lookup(None, &Method::GET, path),
        Lookup::Found(route, _) if matches!(&route.auth, AuthPolicy::AnyOf(s) if s.contains(&scheme))
    )
}

fn print_session(s: &SessionTry, gate: SocketAddr, admin: Option<SocketAddr>) {
    let gate = reachable(gate);
    println!(
        "  # A legacy client of business {}: the handshake (signed at start, valid for the",
        s.business
    );
    println!("  # timestamp window; `scopegate token session-signature --business {}` signs a fresh one),", s.business);
    println!("  # then the bearer token; the backend sees x-scope-business, never the token.");
    println!(
        "  TOKEN=$(curl -s 'http://{gate}{}' | sed -E 's/.*\"(st:[^\"]+)\".*/\\1/')",
        s.handshake
    );
    if let Some(p) = &s.route_path {
        println!("  curl -s -H \"Authorization: Bearer $TOKEN\" http://{gate}{p}");
    }
    println!("  curl -s -X DELETE -H \"Authorization: Bearer $TOKEN\" http://{gate}/sessionToken   # logout: 204");
    if let Some(admin) = admin.map(reachable) {
        println!(
            "  curl -s -X POST 'http://{admin}/sessions/revoke?business={}'   # every session of it",
            s.business
        );
    }
    println!();
}

/// A booking widget's SSO flow: tokens minted now for the demo customer by
/// the first configured company, and a path on an SSO route.
struct SsoTry {
    company: String,
    v2: String,
    legacy: String,
    path: &'static str,
}

fn sso_try(config: &Config, now: u64) -> Option<SsoTry> {
    use scopegate::auth::sso;
    let c = config.auth.sso.companies.first()?;
    let path = "/v2/me/bookings";
    if !served_by(config, path, scopegate::auth::Scheme::Sso) {
        return None;
    }
    let expires = chrono::DateTime::from_timestamp(now as i64 + 3600, 0)?
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let payload = serde_json::json!({
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "reference": "cust-1815",
        "expires": expires,
    })
    .to_string();
    let keys = &c.keys.first()?.keys;
    Some(SsoTry {
        company: c.id.clone(),
        v2: sso::mint_v2(payload.as_bytes(), &keys.v2),
        legacy: sso::mint_legacy(payload.as_bytes(), &keys.legacy),
        path,
    })
}

fn print_sso(s: &SsoTry, gate: SocketAddr, admin: Option<SocketAddr>) {
    let gate = reachable(gate);
    println!(
        "  # A customer signed in on the website of company {} (BookingBug SSO, minted at start,",
        s.company
    );
    println!(
        "  # valid 1 h; `scopegate token sso --company {} --email ...` mints a fresh one): her own",
        s.company
    );
    println!("  # bookings; the backend sees x-scope-credential: sso, x-scope-customer-email, x-scope-business.");
    println!("  curl -s -i 'http://{gate}{}?sso-token={}'", s.path, s.v2);
    println!(
        "  curl -s 'http://{gate}{}?sso-token={}'   # the vendor's (legacy) format",
        s.path, s.legacy
    );
    println!("  # The first answer set a session cookie (Set-Cookie: scopegate_sso=...); later calls carry only it:");
    println!(
        "  curl -s -H 'Cookie: scopegate_sso=<value from Set-Cookie>' http://{gate}{}",
        s.path
    );
    println!(
        "  curl -s 'http://{gate}{}?sso-token=v2.AAAA'   # a forged token: 401",
        s.path
    );
    if let Some(admin) = admin.map(reachable) {
        println!(
            "  curl -s -X POST 'http://{admin}/sessions/revoke?company={}'   # every SSO session of it",
            s.company
        );
    }
    println!();
}

/// The customer overview page's addresses: the page reads the gate and the
/// credential from the fragment, which the browser never sends to a server.
fn print_pages(
    gate: &str,
    allowed: &site::Site,
    refused: &site::Site,
    token: Option<&str>,
    sso: Option<&SsoTry>,
) {
    let (page, other) = (allowed.origin(), refused.origin());
    println!(
        "  # The customer overview page (examples/customer-overview/), served on its own origin,"
    );
    println!("  # {page}: it calls scopegate from the browser, which the configuration allows");
    println!(
        "  # for that origin (cors_origins of demo-app and of company 37000). Open in a browser:"
    );
    if let Some(token) = token {
        println!("  # {DEMO_CUSTOMER}'s bookings (a signed search), a button per action link they carry:");
        println!("  {page}/#gate={gate}&signed_search={token}");
    }
    if let Some(s) = sso {
        println!("  # signed in with an SSO token of company {} (valid 1 h); the answer sets scopegate's", s.company);
        println!("  # session cookie (Secure: kept on http://127.0.0.1 and http://localhost; the page and");
        println!(
            "  # scopegate must share the host, as SameSite=Lax withholds it from other sites),"
        );
        println!(
            "  # and the page takes the token out of its address: Refresh sends only the cookie."
        );
        println!("  {page}/#gate={gate}&sso-token={}", s.v2);
    }
    if let Some(token) = token {
        println!("  # The same page on {other}, an origin no app allows: scopegate answers 403");
        println!(
            "  # origin_not_allowed without CORS headers and forwards nothing; the page says so."
        );
        println!("  {other}/#gate={gate}&signed_search={token}");
    }
    println!();
}

/// The demo partner application's keys, read from the files the shipped
/// configuration names (a real configuration would hold only the key's hash).
fn api_key_try(config: &std::path::Path) -> Option<(String, String)> {
    let dir = config.parent()?;
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .ok()
            .map(|s| s.trim_end().to_string())
    };
    Some((read("demo-api.key")?, read("demo-frontdesk-secret.key")?))
}

fn print_api_key(key: &str, secret: &str, gate: SocketAddr) {
    let gate = reachable(gate);
    println!("  # A partner application installed by demo-business (Bookeo API key + secret key,");
    println!("  # granted bookings_rw_all): confirm a tentative booking; the backend sees");
    println!(
        "  # x-scope-credential: api-key, x-scope-app, x-scope-reach: all, x-scope-permissions."
    );
    println!("  curl -s -X PUT -H 'X-Bookeo-apiKey: {key}' -H 'X-Bookeo-secretKey: {secret}' http://{gate}/v2/bookings/b-1006/confirm");
    println!("  curl -s 'http://{gate}/v2/settings/apikeyinfo?apiKey={key}&secretKey={secret}'   # answered by scopegate");
    println!("  curl -s -X PUT -H 'X-Bookeo-apiKey: {key}' -H 'X-Bookeo-secretKey: wrong' http://{gate}/v2/bookings/b-1006/confirm   # 401");
    println!();
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(config: &Config) -> Vec<String> {
        plan(config).into_iter().map(|(_, _, t, _)| t).collect()
    }

    #[test]
    fn the_shipped_config_plans_the_customer_overview() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/scopegate.toml");
        let config = Config::load(path.as_ref()).expect("the shipped config loads");
        let tries = plan(&config);
        let find = |needle: &str| tries.iter().filter(|t| t.2.contains(needle)).count();
        assert_eq!(find("&include=customer_action_links&signed_search="), 1);
        // The cancel link of b-1001 twice (the second use is the 409), then
        // one fresh link for b-1002 with a refused and an allowed redirect.
        let cancel = "/v2/bookings/b-1001/external_action/cancel_by_customer?signature=";
        let first = tries.iter().position(|t| t.2.starts_with(cancel)).unwrap();
        assert_eq!(tries[first].2, tries[first + 1].2);
        assert!(tries[first].3.starts_with("route action-links"));
        let fresh = "/v2/bookings/b-1002/external_action/cancel_by_customer?signature=";
        assert!(tries[first + 2].2.starts_with(fresh));
        assert!(tries[first + 2]
            .2
            .ends_with("&redirect=https://evil.example/"));
        assert!(tries[first + 3]
            .2
            .ends_with("&redirect=http://127.0.0.1:8080/v2/health"));
        assert_eq!(find("&redirect="), 2);
    }

    #[test]
    fn without_action_links_those_lines_are_left_out() {
        let config = Config::from_toml(
            r#"
            [[upstream]]
            name = "bookings"
            url = "http://127.0.0.1:8081"
            [[route]]
            name = "bookings-list"
            path = "/v2/bookings"
            auth = ["signed-search"]
            upstream = "bookings"
            [[app]]
            slug = "demo-app"
            [[app.key]]
            key = "not-a-secret"
            "#,
        )
        .expect("a config without action links loads");
        let targets = targets(&config);
        assert!(targets.iter().any(|t| t.contains("signed_search=")));
        assert!(!targets
            .iter()
            .any(|t| t.contains("include=") || t.contains("external_action")));
    }
}
