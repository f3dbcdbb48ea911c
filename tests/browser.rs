//! The customer overview page (`examples/customer-overview/`) in a real
//! browser: headless Chromium, driven through chromedriver (WebDriver), in
//! front of the demo stack (the demo booking backend, scopegate with the
//! shipped configuration, the page served on an allowed and on a refused
//! origin), all on loopback with ephemeral ports.
//!
//! It checks that the page lists only the demo customer's bookings, cancels
//! one through its action link button and shows the new state, reschedules
//! one (a POST with a JSON body: a preflight), is refused from an origin the
//! configuration does not allow (the page says so, the backend is untouched),
//! and signs in with an SSO token and then uses only the session cookie.
//! Screenshots go to `target/browser-artifacts/`.
//!
//! Without chromium or chromedriver the test says so loudly and passes;
//! `.ci/run` installs both and sets `SCOPEGATE_REQUIRE_BROWSER=1`, which
//! turns a missing browser into a failure. `SCOPEGATE_CHROMIUM` and
//! `SCOPEGATE_CHROMEDRIVER` name other binaries.

mod common;

#[allow(dead_code)]
#[path = "../examples/demo/backend.rs"]
mod backend;
#[allow(dead_code)]
#[path = "../examples/demo/site.rs"]
mod site;

use std::{
    io::Write,
    net::SocketAddr,
    panic::AssertUnwindSafe,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use hyper_util::client::legacy::connect::HttpConnector;
use scopegate::{actions::Link, auth::sso, clock::Clock, Config};
use serde_json::{json, Value};

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/scopegate.toml");
const PAGE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/customer-overview");
const CUSTOMER: &str = "ada@example.com";
/// How long the page may take to show what a step expects.
const PATIENCE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_overview_in_chromium() {
    let Some((chromium, chromedriver)) = browser() else {
        return;
    };
    let artifacts = artifacts_dir();
    let _ = std::fs::remove_file(artifacts.join("failure.png"));
    let stack = Stack::start().await;
    let driver = Driver::spawn(&chromedriver, &artifacts);
    let profile = tempfile::tempdir().unwrap();
    let client = connect(&driver, &chromium, profile.path()).await;

    // Whatever happens, end the browser session, so no Chromium outlives the test.
    let outcome = AssertUnwindSafe(scenario(&client, &stack, &artifacts))
        .catch_unwind()
        .await;
    if outcome.is_err() {
        if let Ok(png) = client.screenshot().await {
            let _ = std::fs::write(artifacts.join("failure.png"), png);
        }
        eprintln!(
            "browser test failed; chromedriver's log and a screenshot are in {}",
            artifacts.display()
        );
    }
    let _ = client.close().await;
    drop(driver);
    stack.shutdown().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn scenario(client: &Client, stack: &Stack, artifacts: &Path) {
    signed_search_overview(client, stack, artifacts).await;
    refused_origin(client, stack, artifacts).await;
    sso_sign_in(client, stack, artifacts).await;
}

/// The overview from a signed-search token: her bookings only, with buttons;
/// a cancel through its link; a reschedule (POST + JSON: a preflight).
async fn signed_search_overview(client: &Client, stack: &Stack, artifacts: &Path) {
    let page = format!(
        "{}/#gate={}&signed_search={}",
        stack.allowed.origin(),
        stack.gate,
        stack.token
    );
    open(client, &page).await;
    loaded(client, "the signed-search overview").await;
    let who = client.find(Locator::Id("who")).await.unwrap();
    assert_eq!(who.text().await.unwrap(), format!("Bookings of {CUSTOMER}"));
    assert_eq!(
        rows(client).await,
        json!([
            {"id": "b-1001", "state": "confirmed", "actions": ["cancel_by_customer", "reschedule_by_customer"]},
            {"id": "b-1002", "state": "tentative", "actions": ["cancel_by_customer", "reschedule_by_customer"]},
            {"id": "b-1003", "state": "cancelled", "actions": []},
        ]),
        "only {CUSTOMER}'s bookings, each with the actions its state allows"
    );

    // Cancel b-1001 through its action link button.
    client
        .find(Locator::Css(
            r#"tr[data-booking-id="b-1001"] button[data-action="cancel_by_customer"]"#,
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(
        client,
        "b-1001 shown as cancelled",
        r#"return document.body.dataset.state === "ready"
            && document.querySelector('tr[data-booking-id="b-1001"] [data-field=state]')?.textContent === "cancelled";"#,
    )
    .await;
    let status = client.find(Locator::Id("status")).await.unwrap();
    assert!(
        status
            .text()
            .await
            .unwrap()
            .starts_with("Booking b-1001 is now cancelled."),
        "the page reports the new state"
    );
    assert_eq!(stack.state_of("b-1001").await, "cancelled");
    // The refreshed listing offers no action on a cancelled booking.
    assert_eq!(rows(client).await[0]["actions"], json!([]));
    screenshot(client, artifacts, "overview.png").await;

    // Reschedule b-1002: the form, then a POST with Content-Type: application/json.
    client
        .find(Locator::Css(
            r#"tr[data-booking-id="b-1002"] button[data-action="reschedule_by_customer"]"#,
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .execute(
            r#"const form = document.querySelector('tr[data-booking-id="b-1002"] form');
               form.elements.start.value = "2030-02-01T09:00";
               form.elements.end.value = "2030-02-01T10:30";"#,
            vec![],
        )
        .await
        .unwrap();
    client
        .find(Locator::Css(
            r#"tr[data-booking-id="b-1002"] form button[type="submit"]"#,
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(
        client,
        "b-1002 shown at its new time",
        r#"return document.body.dataset.state === "ready"
            && document.querySelector('tr[data-booking-id="b-1002"] td:nth-child(2)')?.textContent === "2030-02-01 09:00 – 10:30";"#,
    )
    .await;
    let b = stack.booking("b-1002").await;
    assert_eq!(
        (b["state"].as_str(), b["start"].as_str()),
        (Some("tentative"), Some("2030-02-01T09:00:00Z"))
    );
}

/// The same page on an origin no app allows: the page shows a clear error,
/// and a valid action link followed from there never reaches the backend.
async fn refused_origin(client: &Client, stack: &Stack, artifacts: &Path) {
    let page = format!(
        "{}/#gate={}&signed_search={}",
        stack.refused.origin(),
        stack.gate,
        stack.token
    );
    open(client, &page).await;
    let state = settle(client, "the page on the refused origin").await;
    assert_eq!(
        state, "error",
        "the listing must fail from a refused origin"
    );
    let error = client.find(Locator::Id("error")).await.unwrap();
    assert!(error.is_displayed().await.unwrap());
    let text = error.text().await.unwrap();
    assert!(
        text.contains(&format!(
            "This page ({}) cannot use the booking service",
            stack.refused.origin()
        )) && text.contains("refused this page's origin"),
        "a clear error: {text}"
    );
    assert!(rows(client).await.as_array().unwrap().is_empty());
    screenshot(client, artifacts, "refused.png").await;

    // A valid cancel link for b-1002, followed from the refused page: a simple
    // GET, so the browser sends it without a preflight; scopegate must refuse
    // it before the backend, as the browser would hide any answer anyway.
    let followed = fetch(client, &stack.cancel_b1002, "omit").await;
    assert_eq!(followed, "TypeError", "the browser sees a CORS failure");
    assert_eq!(
        stack.state_of("b-1002").await,
        "tentative",
        "the backend untouched"
    );
    assert_eq!(
        stack.origin_refusals("bookings-list").await,
        1,
        "scopegate refused the listing"
    );
    assert_eq!(
        stack.origin_refusals("action-links").await,
        1,
        "scopegate refused the link"
    );

    // The refusal did not use up the single-use link: from the allowed page it works.
    open(
        client,
        &format!("{}/#gate={}", stack.allowed.origin(), stack.gate),
    )
    .await;
    let followed = fetch(client, &stack.cancel_b1002, "omit").await;
    assert_eq!(followed, "200 cancelled");
    assert_eq!(stack.state_of("b-1002").await, "cancelled");
}

/// The SSO variant: the token once, then only scopegate's session cookie.
async fn sso_sign_in(client: &Client, stack: &Stack, artifacts: &Path) {
    let page = format!(
        "{}/#gate={}&sso-token={}",
        stack.allowed.origin(),
        stack.gate,
        stack.sso_token
    );
    open(client, &page).await;
    loaded(client, "the SSO sign-in").await;
    let ids = |rows: &Value| {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&rows(client).await), ["b-1001", "b-1002", "b-1003"]);
    let url = client.current_url().await.unwrap();
    assert!(
        !url.as_str().contains("sso-token") && url.as_str().contains("session=sso"),
        "the token left the address: {url}"
    );
    let cookie = client.get_named_cookie("scopegate_sso").await.unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.secure(), Some(true));

    // Refresh with the cookie alone: empty the table first, so only a new
    // answer can fill it.
    client
        .execute(
            "document.querySelector('#bookings tbody').replaceChildren();",
            vec![],
        )
        .await
        .unwrap();
    client
        .find(Locator::Id("refresh"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(
        client,
        "the list again, through the session",
        r#"return document.body.dataset.state === "ready"
            && document.querySelectorAll('#bookings tbody tr').length === 3;"#,
    )
    .await;
    screenshot(client, artifacts, "sso.png").await;

    // The session from the refused origin: the browser sends the cookie
    // (same site), scopegate refuses the origin.
    open(
        client,
        &format!(
            "{}/#gate={}&session=sso",
            stack.refused.origin(),
            stack.gate
        ),
    )
    .await;
    assert_eq!(
        settle(client, "the session on the refused origin").await,
        "error"
    );
    assert_eq!(stack.origin_refusals("my-bookings").await, 1);
}

// ------------------------------------------------------------- the stack --

/// The demo stack on ephemeral loopback ports, and what the test minted.
struct Stack {
    backend: backend::Backend,
    gate_running: scopegate::Running,
    allowed: site::Site,
    refused: site::Site,
    /// `http://127.0.0.1:<port>`
    gate: String,
    admin: SocketAddr,
    /// A signed-search token for the customer.
    token: String,
    /// An SSO token (v2) of the configured company for the customer.
    sso_token: String,
    /// A cancel link for her b-1002.
    cancel_b1002: String,
    _dir: tempfile::TempDir,
}

impl Stack {
    async fn start() -> Self {
        let backend = backend::start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        // The listing's links and the page's CSP name the gate, and the gate's
        // configuration names the page: reserve the gate's port first (and
        // try again in the unlikely case that another process takes it).
        let mut attempt = 0;
        loop {
            attempt += 1;
            let gate_addr = free_addr();
            let gate = format!("http://{gate_addr}");
            let allowed = site::start(free_addr(), PAGE_DIR.into(), &gate)
                .await
                .unwrap();
            let refused = site::start(free_addr(), PAGE_DIR.into(), &gate)
                .await
                .unwrap();
            let dir = tempfile::tempdir().unwrap();
            let config = demo_config(&dir, gate_addr, backend.addr, &allowed.origin());
            let now = Clock::system().now();
            let minted = mint(&config, now);
            match scopegate::start(config).await {
                Ok(running) => {
                    let (token, sso_token, cancel_b1002) = minted;
                    return Self {
                        backend,
                        admin: running
                            .admin_addr
                            .expect("the shipped config has an admin listener"),
                        gate_running: running,
                        allowed,
                        refused,
                        gate,
                        token,
                        sso_token,
                        cancel_b1002,
                        _dir: dir,
                    };
                }
                Err(e) if attempt < 3 => {
                    eprintln!("gate port {gate_addr} taken ({e}); trying another");
                    allowed.shutdown();
                    refused.shutdown();
                }
                Err(e) => panic!("cannot start scopegate: {e}"),
            }
        }
    }

    /// A booking as the backend has it (bypassing scopegate).
    async fn booking(&self, id: &str) -> Value {
        let reply = common::get(&format!("http://{}/v2/bookings/{id}", self.backend.addr)).await;
        reply.json()["data"].clone()
    }

    async fn state_of(&self, id: &str) -> String {
        self.booking(id).await["state"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// How many requests on `route` scopegate refused with 403
    /// origin_not_allowed (its metrics).
    async fn origin_refusals(&self, route: &str) -> u64 {
        let metrics = common::get(&format!("http://{}/metrics", self.admin)).await;
        let route = format!("route=\"{route}\"");
        String::from_utf8_lossy(&metrics.body)
            .lines()
            .filter(|l| l.starts_with("scopegate_requests_total{"))
            .filter(|l| l.contains(&route) && l.contains("outcome=\"origin_not_allowed\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    async fn shutdown(self) {
        self.allowed.shutdown();
        self.refused.shutdown();
        self.gate_running.shutdown(Duration::from_secs(2)).await;
        self.backend.shutdown(Duration::from_secs(2)).await;
    }
}

/// The shipped configuration, moved to this test's addresses: the gate, its
/// admin listener, the backend and the allowed page origin; key files from
/// `config/`.
fn demo_config(
    dir: &tempfile::TempDir,
    gate: SocketAddr,
    backend: SocketAddr,
    page: &str,
) -> Config {
    let mut text = std::fs::read_to_string(SHIPPED).unwrap();
    let config_dir = Path::new(SHIPPED).parent().unwrap().display().to_string();
    for (from, to) in [
        ("http://127.0.0.1:8081", format!("http://{backend}")),
        ("http://127.0.0.1:8080", format!("http://{gate}")),
        ("\"127.0.0.1:8080\"", format!("\"{gate}\"")),
        ("\"127.0.0.1:9090\"", "\"127.0.0.1:0\"".into()),
        ("http://127.0.0.1:8090", page.into()),
        ("_file = \"demo-", format!("_file = \"{config_dir}/demo-")),
    ] {
        assert!(
            text.contains(from),
            "the shipped config no longer has {from}: update tests/browser.rs"
        );
        text = text.replace(from, &to);
    }
    let path = dir.path().join("scopegate.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(&path).unwrap_or_else(|e| panic!("the shipped config, moved, does not load:\n{e}"))
}

/// A signed-search token and an SSO token for the customer, and a cancel
/// link for her b-1002, as the demo mints them.
fn mint(config: &Config, now: u64) -> (String, String, String) {
    let mut claims = serde_json::Map::new();
    claims.insert("customer.email".into(), CUSTOMER.into());
    let token = config.auth.apps.mint("demo-app", claims, now).unwrap();
    let company = config.auth.sso.companies.first().expect("an SSO company");
    let expires = chrono::DateTime::from_timestamp(now as i64 + 3600, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let payload = json!({
        "first_name": "Ada", "last_name": "Lovelace", "email": CUSTOMER, "expires": expires,
    })
    .to_string();
    let sso_token = sso::mint_v2(payload.as_bytes(), &company.keys[0].keys.v2);
    let actions = &config.auth.actions;
    let link = Link {
        app: "demo-app",
        booking_id: "b-1002",
        action: actions
            .get("cancel_by_customer")
            .expect("the cancel action"),
        subject: Some(("customer.email", CUSTOMER)),
        ttl: None,
    };
    let cancel = actions.mint(&config.auth.apps, &link, now).unwrap();
    (token, sso_token, cancel)
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

// ------------------------------------------------------------ the browser --

/// Chromium and chromedriver, or `None` (and a loud message) when missing.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let find = |var: &str, names: &[&str]| -> Option<PathBuf> {
        if let Some(p) = std::env::var_os(var) {
            return Some(PathBuf::from(p)).filter(|p| p.is_file());
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        names.iter().find_map(|name| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
    };
    let chromium = find(
        "SCOPEGATE_CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    );
    let chromedriver = find("SCOPEGATE_CHROMEDRIVER", &["chromedriver"]);
    if let (Some(c), Some(d)) = (&chromium, &chromedriver) {
        return Some((c.clone(), d.clone()));
    }
    let missing = [
        ("chromium", chromium.is_none()),
        ("chromedriver", chromedriver.is_none()),
    ]
    .iter()
    .filter(|(_, m)| *m)
    .map(|(n, _)| *n)
    .collect::<Vec<_>>()
    .join(" and ");
    let banner = "=".repeat(76);
    // Straight to the process's stderr: the test harness captures eprintln!
    // of a passing test, and this must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "\n{banner}\n  SKIPPED tests/browser.rs: {missing} not found.\n  \
         The customer overview page was NOT tested in a browser.\n  \
         Install them (Debian: apt-get install chromium chromium-driver; .ci/run does),\n  \
         or name them with SCOPEGATE_CHROMIUM / SCOPEGATE_CHROMEDRIVER.\n{banner}\n"
    );
    assert!(
        std::env::var_os("SCOPEGATE_REQUIRE_BROWSER").is_none(),
        "SCOPEGATE_REQUIRE_BROWSER is set, and {missing} is missing"
    );
    None
}

fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("browser-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn spawn(chromedriver: &Path, artifacts: &Path) -> Self {
        let port = free_addr().port();
        let log = std::fs::File::create(artifacts.join("chromedriver.log")).unwrap();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A WebDriver session in headless Chromium (retried while chromedriver starts).
async fn connect(driver: &Driver, chromium: &Path, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            // As this machine's notes say: headless, as root, and without
            // the background connections a closed network refuses.
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1100,760",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let deadline = Instant::now() + PATIENCE;
    loop {
        match ClientBuilder::new(HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&driver.url)
            .await
        {
            Ok(client) => return client,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!(
                "no WebDriver session from chromedriver at {}: {e}",
                driver.url
            ),
        }
    }
}

/// Loads `url` as a new document (a link that differs from the current
/// address only in its fragment would otherwise not reload the page).
async fn open(client: &Client, url: &str) {
    client.goto("about:blank").await.unwrap();
    client.goto(url).await.unwrap();
}

/// Polls `script` (a function body returning a boolean) until it is true.
async fn wait_for(client: &Client, what: &str, script: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if client.execute(script, vec![]).await.unwrap() == json!(true) {
            return;
        }
        if Instant::now() >= deadline {
            let page = client
                .execute("return document.body.innerText;", vec![])
                .await
                .unwrap_or_default();
            panic!("timed out waiting for {what}; the page shows:\n{page}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the page has finished loading; its outcome, `ready` or `error`.
async fn settle(client: &Client, what: &str) -> Value {
    wait_for(
        client,
        what,
        r#"return ["ready", "error"].includes(document.body.dataset.state);"#,
    )
    .await;
    client
        .execute("return document.body.dataset.state;", vec![])
        .await
        .unwrap()
}

/// Waits until the page has loaded its list; fails with the page's error.
async fn loaded(client: &Client, what: &str) {
    if settle(client, what).await != "ready" {
        let error = client
            .execute(
                "return document.getElementById('error').textContent;",
                vec![],
            )
            .await
            .unwrap();
        panic!("{what}: the page shows an error: {error}");
    }
}

/// The listed bookings: id, state and offered actions.
async fn rows(client: &Client) -> Value {
    client
        .execute(
            r##"return [...document.querySelectorAll("#bookings tbody tr")].map((tr) => ({
                 id: tr.dataset.bookingId,
                 state: tr.querySelector("[data-field=state]").textContent,
                 actions: [...tr.querySelectorAll("button[data-action]")].map((b) => b.dataset.action),
               }));"##,
            vec![],
        )
        .await
        .unwrap()
}

/// `fetch(url)` from the current page: `"<status> <data.state>"`, or the
/// error's name when the browser refuses the answer.
async fn fetch(client: &Client, url: &str, credentials: &str) -> String {
    let out = client
        .execute_async(
            r#"const [url, credentials, done] = arguments;
               fetch(url, { credentials })
                 .then(async (r) => done(`${r.status} ${(await r.json())?.data?.state}`))
                 .catch((e) => done(e.name));"#,
            vec![json!(url), json!(credentials)],
        )
        .await
        .unwrap();
    out.as_str().unwrap_or_default().to_string()
}

async fn screenshot(client: &Client, artifacts: &Path, name: &str) {
    let png = client.screenshot().await.unwrap();
    std::fs::write(artifacts.join(name), png).unwrap();
}
