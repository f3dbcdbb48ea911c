//! The command line of the real binary: `--version`, `check` on good and
//! broken configurations (exit code and key path of every problem),
//! `SCOPEGATE_*__*` environment overrides, and `run --log-format json`.

mod common;

use bytes::Bytes;
use common::{
    process::{run_to_end, ConfigFile, Launch, Proc},
    *,
};
use http::{Request, StatusCode};
use http_body_util::Full;

/// A valid base: one upstream called `backend`, no routes.
const BASE: &str = r#"
[listen]
address = "127.0.0.1:0"

[[upstream]]
name = "backend"
url = "http://127.0.0.1:8081"
"#;

const ROUTE: &str = r#"
[[route]]
name = "v2"
path = "/v2/*"
auth = ["public"]
upstream = "backend"
"#;

/// The shipped configuration (fronting the demo backend).
const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/scopegate.toml");

/// A demo secret next to the shipped configuration, without its newline.
fn demo_key(file: &str) -> String {
    let path = format!("{}/config/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path)
        .unwrap()
        .trim_end()
        .to_string()
}

fn assert_success(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Checked {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Checked {
    /// Asserts exit code 1 and that stderr has a line with every fragment.
    fn fails_with(&self, fragments: &[&str]) {
        assert_eq!(
            self.code,
            Some(1),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        let line = self
            .stderr
            .lines()
            .find(|l| fragments.iter().all(|f| l.contains(f)));
        assert!(
            line.is_some(),
            "no stderr line with all of {fragments:?}:\n{}",
            self.stderr
        );
    }
}

/// `scopegate check --config <file with toml>` with extra environment variables.
fn check_with(toml: &str, env: &[(&str, &str)]) -> Checked {
    let file = ConfigFile::new(toml);
    let out = run_to_end(&["check", "--config", file.path_str()], env);
    Checked {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn check(toml: &str) -> Checked {
    check_with(toml, &[])
}

#[test]
fn version_prints_the_crate_version() {
    let out = run_to_end(&["--version"], &[]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        format!("scopegate {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn check_accepts_the_shipped_config_and_prints_the_route_table() {
    let out = run_to_end(&["check", "--config", SHIPPED], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("OK (7 routes, 1 upstreams)"), "{stdout}");
    for (route, path, auth) in [
        ("booking-actions", "/v2/bookings/{id}/{action}", "api-key"),
        ("my-bookings", "/v2/me/bookings", "sso"),
        ("health", "/v2/health", "public"),
        ("resources", "/v2/resources/*", "public"),
        ("bookings-list", "/v2/bookings", "signed-search"),
        (
            "action-links",
            "/v2/bookings/{id}/external_action/{action}",
            "action-link",
        ),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(route));
        let line = line.unwrap_or_else(|| panic!("route {route} not printed:\n{stdout}"));
        assert!(
            line.contains(path) && line.contains(auth) && line.contains("bookings"),
            "{line}"
        );
    }
    assert!(stdout.contains("http://127.0.0.1:8081"), "{stdout}");
}

#[test]
fn check_of_a_missing_file_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let out = run_to_end(&["check", "--config", missing.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

#[test]
fn an_unknown_key_is_named_with_its_table() {
    check("[listen]\nadress = \"127.0.0.1:0\"\n").fails_with(&["listen", "adress"]);
}

#[test]
fn an_unknown_key_inside_a_basic_credential_is_refused() {
    let toml = format!(
        "{BASE}\n[upstream.credential]\ntype = \"basic\"\npassword = \"k\"\npasword = \"typo\"\n"
    );
    check(&toml).fails_with(&["upstream[0].credential", "pasword"]);
}

#[test]
fn an_unknown_credential_type_is_refused() {
    let toml = format!("{BASE}\n[upstream.credential]\ntype = \"bearer\"\n");
    check(&toml).fails_with(&["upstream[0].credential", "bearer"]);
}

#[test]
fn a_route_to_a_missing_upstream_names_the_route_and_upstream() {
    let toml = format!(
        "{BASE}{ROUTE}\n[[route]]\nname = \"old\"\npath = \"/legacy\"\nauth = [\"public\"]\nupstream = \"legacy\"\n"
    );
    check(&toml).fails_with(&[r#"route[1].upstream: no upstream named "legacy""#]);
}

#[test]
fn ambiguous_routes_name_both_routes() {
    let toml = format!(
        "{BASE}{ROUTE}\n[[route]]\nname = \"v2-again\"\npath = \"/v2/*\"\nauth = [\"public\"]\nupstream = \"backend\"\n"
    );
    check(&toml).fails_with(&["route[1]: ambiguous with route[0]"]);
}

#[test]
fn a_missing_secret_variable_names_the_key_and_variable() {
    let toml = format!(
        "{BASE}\n[upstream.credential]\ntype = \"basic\"\npassword_env = \"SCOPEGATE_TEST_CLI_UNSET_SECRET\"\n"
    );
    check(&toml).fails_with(&[
        r#"upstream[0].credential.password_env: environment variable "SCOPEGATE_TEST_CLI_UNSET_SECRET" is not set"#,
    ]);
}

#[test]
fn a_secret_in_a_scopegate_prefixed_variable_is_used_and_never_printed() {
    let toml = format!("{BASE}\n[upstream.credential]\ntype = \"basic\"\npassword_env = \"SCOPEGATE_LEGACY_KEY\"\n");
    let out = check_with(&toml, &[("SCOPEGATE_LEGACY_KEY", "hunter2-secret")]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("(adds authorization)"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("hunter2") && !out.stderr.contains("hunter2"));
}

#[test]
fn a_bad_duration_names_the_key_and_value() {
    let toml = format!("{BASE}\n[limits]\nidle_timeout = \"soon\"\n");
    check(&toml).fails_with(&["limits.idle_timeout", r#"invalid duration "soon""#]);
}

#[test]
fn a_bad_size_names_the_key_and_value() {
    let toml = format!("{BASE}\n[limits]\nmax_body_bytes = \"lots\"\n");
    check(&toml).fails_with(&["limits.max_body_bytes", r#"invalid size "lots""#]);
}

#[test]
fn a_bad_path_pattern_names_the_route() {
    let toml = format!("{BASE}\n[[route]]\nname = \"r\"\npath = \"v2/x\"\nauth = [\"public\"]\nupstream = \"backend\"\n");
    check(&toml).fails_with(&["route[0].path", r#""v2/x""#, "must start with '/'"]);
}

#[test]
fn an_unknown_auth_scheme_names_the_route_and_scheme() {
    let toml = format!("{BASE}\n[[route]]\nname = \"r\"\npath = \"/v2\"\nauth = [\"magic\"]\nupstream = \"backend\"\n");
    check(&toml).fails_with(&["route[0].auth[0]", r#"unknown scheme "magic""#]);
}

#[test]
fn public_combined_with_another_scheme_is_refused() {
    let toml =
        format!("{BASE}\n[[route]]\nname = \"r\"\npath = \"/v2\"\nauth = [\"public\", \"session\"]\nupstream = \"backend\"\n");
    check(&toml).fails_with(&["route[0].auth", r#""public" cannot be combined"#]);
}

#[test]
fn several_problems_are_reported_at_once() {
    let toml = r#"
[listen]
address = "nowhere"

[log]
format = "xml"

[[upstream]]
name = "backend"
url = "ftp://backend"

[[route]]
name = "r"
path = "v2"
auth = ["public"]
upstream = "legacy"
"#;
    let out = check(toml);
    for fragments in [
        &["listen.address", "nowhere"][..],
        &["log.format", "xml"],
        &["upstream[0].url", "http://"],
        &["route[0].path", "must start with '/'"],
        &["route[0].upstream", "legacy"],
    ] {
        out.fails_with(fragments);
    }
}

#[test]
fn a_variable_without_double_underscore_is_not_an_override() {
    // Every table denies unknown keys: were SCOPEGATE_FOO read, `foo` would be an error.
    let out = check_with(&format!("{BASE}{ROUTE}"), &[("SCOPEGATE_FOO", "1")]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

#[test]
fn a_double_underscore_variable_is_read_as_an_override() {
    // The counterpart of the test above: with `__` the key is read (and here refused).
    let out = check_with(
        &format!("{BASE}{ROUTE}"),
        &[("SCOPEGATE_LISTEN__ADRESS", "127.0.0.1:0")],
    );
    out.fails_with(&["listen", "adress"]);
}

#[test]
fn a_wrong_override_names_its_variable() {
    // One at a time: a value that does not parse hides the semantic checks.
    let text = format!("{BASE}{ROUTE}");
    let out = check_with(&text, &[("SCOPEGATE_LIMITS__MAX_BODY_BYTES", "lots")]);
    out.fails_with(&[
        "limits.max_body_bytes",
        "(set by SCOPEGATE_LIMITS__MAX_BODY_BYTES)",
    ]);
    let out = check_with(&text, &[("SCOPEGATE_LOG__FORMAT", "xml")]);
    out.fails_with(&["log.format", "(set by SCOPEGATE_LOG__FORMAT)"]);
    // A wrong value from the file is not blamed on the environment.
    let file = check(&format!("{BASE}{ROUTE}[log]\nformat = \"xml\"\n"));
    file.fails_with(&["log.format", "xml"]);
    assert!(!file.stderr.contains("set by"), "{}", file.stderr);
}

#[test]
fn run_refuses_a_broken_config_with_exit_1() {
    let file = ConfigFile::new("[listen]\nadress = \"x\"\n");
    let out = run_to_end(&["run", "--config", file.path_str()], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("adress"));
}

#[tokio::test]
async fn an_environment_override_sets_the_body_limit() {
    let up = Upstream::start(Behavior::Ok).await;
    let toml = config(up.addr, PUBLIC_ROUTES);
    let proc = Proc::launch(
        &toml,
        Launch {
            env: &[("SCOPEGATE_LIMITS__MAX_BODY_BYTES", "1KiB")],
            ..Launch::default()
        },
    )
    .await;
    let post = |len: usize| {
        Request::post(format!("http://{}/open", proc.addr))
            .body(Full::new(Bytes::from(vec![b'x'; len])))
            .unwrap()
    };
    let small = send(post(512)).await;
    assert_eq!(small.status, StatusCode::OK);
    let big = send(post(2048)).await;
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(big.error_code(), "body_too_large");
    // Only the small one reached the upstream.
    assert_eq!(up.single().body_len, 512);
}

#[tokio::test]
async fn run_with_log_format_json_writes_json_lines_to_stderr() {
    let up = Upstream::start(Behavior::Ok).await;
    // The file asks for human logs; the flag wins.
    let toml = format!(
        "{}\n[log]\nformat = \"human\"\n",
        config(up.addr, PUBLIC_ROUTES)
    );
    let proc = Proc::start(&toml).await;
    let reply = get(&format!("http://{}/open?token=do-not-log", proc.addr)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(up.count(), 1);

    // The access record is written after the response head; wait for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let lines = loop {
        let lines = proc.stderr();
        if lines.iter().any(|l| l.contains("scopegate::access")) {
            break lines;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no access record:\n{}",
            lines.join("\n")
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string() && v["target"].is_string(),
            "{line}"
        );
    }
    let access: serde_json::Value = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["target"] == "scopegate::access")
        .unwrap();
    assert_eq!(access["method"], "GET");
    assert_eq!(access["path"], "/open");
    assert_eq!(access["route"], "open");
    assert_eq!(access["status"], 200);
    assert!(
        !lines.iter().any(|l| l.contains("do-not-log")),
        "the query string was logged"
    );
}

#[test]
fn typos_in_several_tables_are_reported_at_once() {
    let toml = format!(
        "{BASE}\n[limits]\nmax_body = \"1KiB\"\n\n[log]\nformat = \"json\"\nlevl = \"debug\"\n\n[[route]]\nname = \"r\"\npath = \"/v2\"\nauth = [\"public\"]\nupstream = \"backend\"\nmethod = [\"GET\"]\n"
    );
    let out = check(&toml);
    out.fails_with(&["limits", "max_body"]);
    out.fails_with(&["log", "levl"]);
    out.fails_with(&["route[0]", "method"]);
}

#[test]
fn token_signed_search_mints_a_token_the_configured_key_verifies() {
    let out = run_to_end(
        &[
            "token",
            "signed-search",
            "--config",
            SHIPPED,
            "--app",
            "demo-app",
            "--email",
            "ada@example.com",
            "--ttl",
            "1h",
        ],
        &[],
    );
    assert_success(&out);
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let key = demo_key("demo-app.key");
    let claims = scopegate::auth::jwt::check_signature(&token, key.as_bytes()).unwrap();
    assert_eq!(claims["app_slug"], "demo-app");
    assert_eq!(claims["customer.email"], "ada@example.com");
    assert!(claims["exp"].as_u64().unwrap() > claims["iat"].as_u64().unwrap());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("search=customer.email%3Aada%40example.com")
    );
}

#[test]
fn token_sso_mints_both_formats_the_company_key_opens() {
    use scopegate::auth::sso::{token, Keys, Rules, Zone};
    let keys = Keys::derive(demo_key("demo-sso.key").as_bytes(), "37000");
    let rules = Rules {
        leeway: 0,
        zone: Zone::UTC,
    };
    let now = unix_now() as i64;
    for legacy in [false, true] {
        let mut args = vec![
            "token",
            "sso",
            "--config",
            SHIPPED,
            "--company",
            "37000",
            "--email",
            "ada@example.com",
            "--reference",
            "cust-1815",
            "--ttl",
            "10m",
        ];
        if legacy {
            args.push("--legacy");
        }
        let out = run_to_end(&args, &[]);
        assert_success(&out);
        let printed = String::from_utf8(out.stdout).unwrap().trim().to_string();
        assert_eq!(printed.starts_with("v2."), !legacy, "{printed}");
        // As the query parser hands it over: URL-decoded once.
        let text: String = form_urlencoded::parse(format!("t={printed}").as_bytes())
            .next()
            .unwrap()
            .1
            .into_owned();
        let p = token::decode(&text, &keys, legacy, rules, now).unwrap();
        assert_eq!(p.email, "ada@example.com");
        assert_eq!(p.reference.as_deref(), Some("cust-1815"));
        assert!(
            (now + 540..=now + 660).contains(&p.expires),
            "{}",
            p.expires
        );
    }
    // A company that is not configured, and a payload scopegate would refuse.
    let out = run_to_end(
        &[
            "token",
            "sso",
            "--config",
            SHIPPED,
            "--company",
            "1",
            "--email",
            "a@b.c",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("37000"));
    let out = run_to_end(
        &[
            "token",
            "sso",
            "--config",
            SHIPPED,
            "--company",
            "37000",
            "--email",
            "not-an-email",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn sso_configuration_mistakes_name_their_key() {
    let route =
        "[[route]]\nname = \"w\"\npath = \"/w\"\nauth = [\"sso\"]\nupstream = \"backend\"\n";
    check(&format!("{BASE}\n{route}"))
        .fails_with(&["route[0].auth", "sso needs at least one [[sso_company]]"]);
    let company = |extra: &str| {
        format!(
            "{BASE}\n{route}\n[[sso_company]]\ncompany_id = \"1\"\nsecure_key = \"k\"\n{extra}\n"
        )
    };
    check(&company("timezone = \"Mars/Olympus\""))
        .fails_with(&["sso_company[0].timezone", "Mars/Olympus"]);
    check(&company("identity = \"phone\"")).fails_with(&["sso_company[0].identity", "phone"]);
    check(&company("leeway = \"1h\"")).fails_with(&["sso_company[0].leeway", "at most 10 minutes"]);
    check(&company("[sso.session]\nhandout = \"carrier-pigeon\""))
        .fails_with(&["sso.session.handout", "carrier-pigeon"]);
    check(&company("[failures]\npenalty = \"jail\"")).fails_with(&["failures.penalty", "jail"]);
    check(&company(
        "[sso.session]\nhandout = \"cookie\"\ncookie_name = \"sso-token\"",
    ))
    .fails_with(&["sso.session.cookie_name", "must differ"]);
    let dup = format!(
        "{}[[sso_company]]\ncompany_id = \"1\"\nsecure_key = \"k2\"\n",
        company("")
    );
    check(&dup).fails_with(&["sso_company[1].company_id", "duplicate"]);
    let nokey = format!("{BASE}\n{route}\n[[sso_company]]\ncompany_id = \"1\"\n");
    check(&nokey).fails_with(&["sso_company[0]", "secure_key_env"]);
    // Accepted, with a warning that the legacy format has no MAC.
    let ok = check(&company("timezone = \"Europe/London\""));
    assert_eq!(ok.code, Some(0), "{}", ok.stderr);
    assert!(ok.stderr.contains("no MAC"), "{}", ok.stderr);
    let ok = check(&company("accept_legacy = false\ntimezone = \"+05:30\""));
    assert_eq!(ok.code, Some(0), "{}", ok.stderr);
    assert!(!ok.stderr.contains("no MAC"), "{}", ok.stderr);
}

#[test]
fn key_new_prints_a_key_once_and_a_stanza_that_verifies_it() {
    let out = run_to_end(
        &[
            "key",
            "new",
            "--config",
            SHIPPED,
            "--application",
            "frontdesk",
            "--business",
            "acct-42",
            "--permissions",
            "bookings_rw_own,customers_r_all",
        ],
        &[],
    );
    assert_success(&out);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let key = stdout.lines().next().unwrap().to_string();
    assert_eq!(key.len(), 32);
    let stanza = &stdout[stdout.find("[[api_key]]").unwrap()..];
    assert!(!stanza.contains(&key), "the stanza holds only the hash");
    // The stanza, as printed, is a working configuration.
    let toml = format!(
        "{BASE}\n[[route]]\nname = \"b\"\npath = \"/v2/bookings\"\nauth = [\"api-key\"]\nupstream = \"backend\"\nrequire = \"bookings\"\n[[application]]\nid = \"frontdesk\"\nsecret_key = \"s3cret\"\n{stanza}"
    );
    let config = scopegate::Config::from_toml(&toml).unwrap();
    let parts = Request::get(format!("/v2/bookings?apiKey={key}&secretKey=s3cret"))
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let requirement = scopegate::auth::api_key::Requirement::parse("bookings").ok();
    let principal = config
        .auth
        .api_keys
        .verify(&parts, requirement, false)
        .unwrap();
    let scopegate::auth::Principal::ApiKey(k) = principal else {
        panic!("{principal:?}")
    };
    assert_eq!(k.business.header_value(), "acct-42");
    assert_eq!(k.reach.header_value(), "own:frontdesk");

    // An unknown permission or application is refused, and no key is printed.
    for (args, code) in [
        (
            vec![
                "--application",
                "frontdesk",
                "--business",
                "b",
                "--permissions",
                "bookings_r_own",
            ],
            2,
        ),
        (
            vec![
                "--application",
                "nope",
                "--business",
                "b",
                "--permissions",
                "bookings_r_all",
            ],
            1,
        ),
    ] {
        let mut all = vec!["key", "new", "--config", SHIPPED];
        all.extend(args);
        let out = run_to_end(&all, &[]);
        assert_eq!(out.status.code(), Some(code));
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn token_for_an_unknown_app_or_a_bad_subject_fails() {
    let out = run_to_end(
        &[
            "token",
            "signed-search",
            "--config",
            SHIPPED,
            "--app",
            "nope",
            "--email",
            "a@b.c",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no app with slug \"nope\""));
    let out = run_to_end(
        &[
            "token",
            "signed-search",
            "--config",
            SHIPPED,
            "--app",
            "demo-app",
            "--meta",
            "id=1;state:x",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
}

const APP: &str = r#"
[[app]]
slug = "shop"
[[app.key]]
key = "k"
"#;

const ACTION: &str = r#"
[[action]]
name = "cancel_by_customer"
upstream = "PUT /v2/bookings/{id}/cancel_by_customer"
"#;

fn action_route(path: &str, auth: &str) -> String {
    format!("\n[[route]]\nname = \"a\"\npath = \"{path}\"\nauth = {auth}\nupstream = \"backend\"\n")
}

#[test]
fn action_link_configuration_mistakes_name_their_key() {
    let good_route = action_route(
        "/v2/bookings/{id}/external_action/{action}",
        r#"["action-link"]"#,
    );
    let ok = check(&format!("{BASE}{APP}{ACTION}{good_route}"));
    assert_eq!(ok.code, Some(0), "{}", ok.stderr);
    let action = |name: &str, upstream: &str| {
        format!("\n[[action]]\nname = \"{name}\"\nupstream = \"{upstream}\"\n")
    };
    let cases: Vec<(String, &[&str])> = vec![
        (
            format!(
                "{APP}{ACTION}{}",
                action_route("/v2/bookings/{id}/cancel", r#"["action-link"]"#)
            ),
            &["route[0].path", "{id} and {action}"],
        ),
        (
            format!(
                "{APP}{ACTION}{}",
                action_route(
                    "/v2/bookings/{id}/external_action/{action}",
                    r#"["action-link", "signed-search"]"#
                )
            ),
            &["route[0].auth", "cannot share a route"],
        ),
        (
            format!("{APP}{good_route}"),
            &["route[0].auth", "at least one [[action]]"],
        ),
        (
            format!("{ACTION}{good_route}"),
            &["route[0].auth", "at least one [[app]]"],
        ),
        (
            format!("{APP}{}", action("cancel", "PUT /v2/bookings/cancel")),
            &["action[0].upstream", "{id}"],
        ),
        (
            format!("{APP}{}", action("cancel", "/v2/bookings/{id}")),
            &["action[0].upstream", "method and a path"],
        ),
        (
            format!("{APP}{}", action("can cel", "PUT /v2/{id}")),
            &["action[0].name"],
        ),
        (
            format!(
                "{APP}{ACTION}\n[action_links]\nredirect_origins = [\"https://a.example/path\"]\n"
            ),
            &["action_links.redirect_origins[0]", "origin only"],
        ),
        (
            format!("{APP}{ACTION}\n[action_links]\npublic_base_url = \"api.example.com\"\n"),
            &["action_links.public_base_url"],
        ),
        (
            format!("{APP}{ACTION}\n[action_links.state_actions]\nconfirmed = [\"nuke\"]\n"),
            &["action_links.state_actions.confirmed[0]", "nuke"],
        ),
        (
            "\n[store]\nbackend = \"redis\"\nurl = \"http://not-redis\"\n".to_string(),
            &["store.url", "not a valid Redis URL"],
        ),
        (
            "\n[store]\nbackend = \"disk\"\n".to_string(),
            &["store.backend", "disk"],
        ),
    ];
    for (toml, fragments) in cases {
        check(&format!("{BASE}{toml}")).fails_with(fragments);
    }
}

#[test]
fn links_that_no_route_would_serve_are_warned_about() {
    let route = action_route("/v2/bookings/{id}/do/{action}", r#"["action-link"]"#);
    let out = check(&format!(
        "{BASE}{APP}{ACTION}{route}\n[action_links]\npublic_base_url = \"https://api.example.com\"\n"
    ));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("warning: action_links.link_path")
            && out
                .stderr
                .contains("/v2/bookings/booking-id/external_action/cancel_by_customer"),
        "{}",
        out.stderr
    );
}

#[test]
fn app_credentials_are_checked_where_they_are_used() {
    let route = format!(
        "{}upstream_credential = \"app\"\n",
        action_route(
            "/v2/bookings/{id}/external_action/{action}",
            r#"["action-link"]"#
        )
    );
    check(&format!("{BASE}{APP}{ACTION}{route}"))
        .fails_with(&["route[0].upstream_credential", "missing on [\"shop\"]"]);
    let with_cred = format!("{APP}[app.upstream_credential]\ntype = \"app-key\"\n");
    assert_eq!(
        check(&format!("{BASE}{with_cred}{ACTION}{route}")).code,
        Some(0)
    );
    check(&format!(
        "{BASE}\n[upstream.credential]\ntype = \"app-key\"\n"
    ))
    .fails_with(&[
        "upstream[0].credential.type",
        "only available under [[app]]",
    ]);
    let public = format!(
        "{}upstream_credential = \"app\"\n",
        action_route("/x", r#"["public"]"#)
    );
    check(&format!("{BASE}{public}"))
        .fails_with(&["route[0].upstream_credential", "needs a route"]);
    let apps = format!(
        "{}apps = [\"nope\"]\n",
        action_route(
            "/v2/bookings/{id}/external_action/{action}",
            r#"["action-link"]"#
        )
    );
    check(&format!("{BASE}{APP}{ACTION}{apps}")).fails_with(&["route[0].apps[0]", "nope"]);
}

#[test]
fn token_action_link_mints_a_link_the_configured_key_verifies() {
    let out = run_to_end(
        &[
            "token",
            "action-link",
            "--config",
            SHIPPED,
            "--app",
            "demo-app",
            "--booking",
            "bk-1",
            "--action",
            "cancel_by_customer",
            "--ttl",
            "1h",
            "--email",
            "ada@example.com",
            "--redirect",
            "http://127.0.0.1:8080/done",
        ],
        &[],
    );
    assert_success(&out);
    let url = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let rest = url
        .strip_prefix(
            "http://127.0.0.1:8080/v2/bookings/bk-1/external_action/cancel_by_customer?signature=",
        )
        .unwrap_or_else(|| panic!("{url}"));
    let (token, redirect) = rest.split_once("&redirect=").unwrap();
    assert_eq!(redirect, "http%3A%2F%2F127.0.0.1%3A8080%2Fdone");
    let key = demo_key("demo-app.key");
    let claims = scopegate::auth::jwt::check_signature(token, key.as_bytes()).unwrap();
    assert_eq!(claims["booking_id"], "bk-1");
    assert_eq!(claims["action"], "cancel_by_customer");
    assert_eq!(claims["customer.email"], "ada@example.com");
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 3600);

    for (args, code) in [
        (vec!["--action", "nuke", "--booking", "b"], 1),
        (
            vec!["--action", "cancel_by_customer", "--booking", "a/b"],
            1,
        ),
        (
            vec![
                "--action",
                "cancel_by_customer",
                "--booking",
                "b",
                "--meta",
                "x",
            ],
            2,
        ),
    ] {
        let mut all = vec![
            "token",
            "action-link",
            "--config",
            SHIPPED,
            "--app",
            "demo-app",
        ];
        all.extend(args.iter().copied());
        let out = run_to_end(&all, &[]);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn token_session_signature_prints_the_handshake_query_of_a_legacy_client() {
    use md5::{Digest, Md5};
    let out = run_to_end(
        &[
            "token",
            "session-signature",
            "--config",
            SHIPPED,
            "--business",
            "demo-business",
        ],
        &[],
    );
    assert_success(&out);
    let query = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let params: std::collections::HashMap<String, String> =
        form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
    let key = demo_key("demo-business.key");
    let expected: String = Md5::digest(format!("10001{key}").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(params["apiKey"], "10001");
    assert_eq!(params["signature"], expected);
    let ts: u64 = params["timestamp"].parse().unwrap();
    let now = unix_now();
    assert!(ts.abs_diff(now) < 60);

    let out = run_to_end(
        &[
            "token",
            "session-signature",
            "--config",
            SHIPPED,
            "--business",
            "nope",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("demo-business"));
}

/// `explain` against the shipped configuration, one request per scheme: the
/// route, the decision, what is removed and what the upstream would get.
#[test]
fn explain_shows_the_decision_for_each_scheme_without_the_upstream() {
    let explain = |method: &str, url: &str, headers: &[&str]| {
        let mut args = vec!["explain", "--config", SHIPPED, method, url];
        for h in headers {
            args.extend(["-H", h]);
        }
        let out = run_to_end(&args, &[]);
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let stdout_of = |args: &[&str]| {
        let out = run_to_end(args, &[]);
        assert_success(&out);
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let gate = "http://127.0.0.1:8080";

    // Signed search: forwarded, the token and a forged scope header removed.
    let token = stdout_of(&[
        "token",
        "signed-search",
        "--config",
        SHIPPED,
        "--app",
        "demo-app",
        "--email",
        "ada@example.com",
    ]);
    let (code, out, err) = explain(
        "GET",
        &format!("{gate}/v2/bookings?search=customer.email:ada@example.com&signed_search={token}"),
        &["X-Scope-App: forged"],
    );
    assert_eq!(code, Some(0), "{out}{err}");
    for line in [
        "route       bookings-list (auth: signed-search)",
        "credential  signed-search: verified",
        "removed     headers: x-scope-app; query: signed_search",
        "upstream    GET http://127.0.0.1:8081/v2/bookings?search=customer.email%3Aada%40example.com (bookings)",
        "  x-scope-credential: signed-search",
        "  x-scope-app: demo-app",
        "  x-scope-subject: customer.email=ada@example.com",
    ] {
        assert!(out.contains(line), "{line:?} missing from:\n{out}");
    }
    assert!(!out.contains("forged"), "{out}");

    // The same token for another customer: refused, with the log cause.
    let (code, out, _) = explain(
        "GET",
        &format!("{gate}/v2/bookings?search=customer.email:bob@example.com&signed_search={token}"),
        &[],
    );
    assert_eq!(code, Some(3));
    assert!(
        out.contains("decision    refused: 401 unauthorized ("),
        "{out}"
    );
    assert!(out.contains("upstream    not contacted"), "{out}");

    // Action link (minted by the CLI): becomes the configured upstream call.
    let link = stdout_of(&[
        "token",
        "action-link",
        "--config",
        SHIPPED,
        "--app",
        "demo-app",
        "--booking",
        "b-1001",
        "--action",
        "cancel_by_customer",
    ]);
    let (code, out, _) = explain("GET", &link, &[]);
    assert_eq!(code, Some(0), "{out}");
    for line in [
        "route       action-links (auth: action-link)",
        "credential  action-link: verified",
        "query: signature",
        "upstream    PUT http://127.0.0.1:8081/v2/bookings/b-1001/cancel_by_customer (bookings)",
        "  x-scope-action: cancel_by_customer",
        "  x-scope-booking-id: b-1001",
    ] {
        assert!(out.contains(line), "{line:?} missing from:\n{out}");
    }

    // SSO (v2 minted by the CLI).
    let sso = stdout_of(&[
        "token",
        "sso",
        "--config",
        SHIPPED,
        "--company",
        "37000",
        "--email",
        "ada@example.com",
    ]);
    let (code, out, _) = explain(
        "GET",
        &format!("{gate}/v2/me/bookings?sso-token={sso}"),
        &[],
    );
    assert_eq!(code, Some(0), "{out}");
    for line in [
        "route       my-bookings (auth: sso)",
        "credential  sso: verified",
        "query: sso-token",
        "  x-scope-business: 37000",
        "  x-scope-customer-email: ada@example.com",
    ] {
        assert!(out.contains(line), "{line:?} missing from:\n{out}");
    }

    // API key (the demo's key files), in the headers.
    let key = demo_key("demo-api.key");
    let secret = demo_key("demo-frontdesk-secret.key");
    let (code, out, _) = explain(
        "PUT",
        &format!("{gate}/v2/bookings/b-1002/confirm"),
        &[
            &format!("X-Bookeo-apiKey: {key}"),
            &format!("X-Bookeo-secretKey: {secret}"),
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    for line in [
        "route       booking-actions (auth: api-key)",
        "credential  api-key: verified",
        "removed     headers: x-bookeo-apikey, x-bookeo-secretkey",
        "  x-scope-reach: all",
        "  x-scope-app: frontdesk",
    ] {
        assert!(out.contains(line), "{line:?} missing from:\n{out}");
    }
    assert!(!out.contains(&secret), "{out}");
    // apikeyinfo is answered by scopegate itself.
    let (code, out, _) = explain(
        "GET",
        &format!("{gate}/v2/settings/apikeyinfo?apiKey={key}&secretKey={secret}"),
        &[],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("decision    answered by scopegate: 200"),
        "{out}"
    );

    // A session token explain cannot know (its store is empty): refused.
    let (code, out, _) = explain(
        "GET",
        &format!("{gate}/v2/bookings/b-1001"),
        &["Authorization: Bearer st:api:api:0123456789abcdef0123456789abcdef"],
    );
    assert_eq!(code, Some(3));
    assert!(
        out.contains("route       booking-by-id (auth: session)"),
        "{out}"
    );
    assert!(
        out.contains("401 unauthorized (unknown or expired session)"),
        "{out}"
    );

    // Public, no route, and a bad header argument.
    let (code, out, _) = explain("GET", &format!("{gate}/v2/health"), &[]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("credential  none needed (public route)"),
        "{out}"
    );
    let (code, out, _) = explain("GET", &format!("{gate}/admin"), &[]);
    assert_eq!(code, Some(3));
    assert!(
        out.contains("route       (none)") && out.contains("404 not_found"),
        "{out}"
    );
    assert!(
        out.contains("why         no route's path matches /admin"),
        "{out}"
    );
    let (code, out, _) = explain("DELETE", &format!("{gate}/v2/health"), &[]);
    assert_eq!(code, Some(3));
    assert!(
        out.contains("why         the path matches, the method does not (allowed: GET, HEAD)"),
        "{out}"
    );
    let (code, _, err) = explain("GET", "/v2/health", &["no colon"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("invalid header"), "{err}");
}

/// From the review: credentials scopegate adds toward the upstream (here an
/// app's `upstream_credential` header) are shown as `<redacted>`.
#[tokio::test]
async fn explain_never_prints_a_configured_credential() {
    let config = scopegate::Config::from_toml(
        r#"
[[upstream]]
name = "backend"
url = "http://127.0.0.1:9"
[[app]]
slug = "demo-app"
key = [{ key = "app-signing-key-0123456789abcdef0123456789" }]
upstream_credential = { type = "header", name = "X-Legacy-Key", value = "LEGACY-SECRET-42" }
[[route]]
name = "bookings-list"
path = "/v2/bookings"
auth = ["signed-search"]
upstream = "backend"
upstream_credential = "app"
"#,
    )
    .unwrap();
    let now = unix_now();
    let mut claims = serde_json::Map::new();
    claims.insert("customer.email".into(), "ada@example.com".into());
    claims.insert("iat".into(), now.into());
    let token = config.auth.apps.mint("demo-app", claims, now).unwrap();
    let url = format!(
        "http://127.0.0.1:8080/v2/bookings?search=customer.email%3Aada%40example.com&signed_search={token}"
    );
    let (text, _) =
        scopegate::explain::explain(&config, "GET", &url, &[], "127.0.0.1".parse().unwrap())
            .await
            .unwrap();
    assert!(text.contains("x-legacy-key: <redacted>"), "{text}");
    assert!(!text.contains("LEGACY-SECRET-42"), "{text}");
}

/// From the review: a syntax error's message names the position and the
/// reason, never the line itself (it may hold an inline secret).
#[test]
fn a_syntax_error_does_not_quote_the_line() {
    let out = check("[[application]]\nid = \"app-1\"\nsecret_key = \"sk-live-TOPSECRET-0123\n");
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("TOML parse error at line 3"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("TOPSECRET"), "{}", out.stderr);
}

/// `run --workers 1` serves everything on the main thread (the
/// current-thread scheduler), for comparisons at equal resources; it still
/// serves, and `--workers 2` runs two worker threads beside the main one.
#[tokio::test]
async fn run_with_one_worker_uses_one_thread() {
    let up = Upstream::start(Behavior::Ok).await;
    let proc = Proc::launch(
        &config(up.addr, PUBLIC_ROUTES),
        Launch {
            args: &["--workers", "1"],
            ..Launch::default()
        },
    )
    .await;
    // Every thread but the log writer (which only writes stderr).
    let threads = |pid: u32| -> Vec<String> {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).unwrap())
            .map(|name| name.trim().to_string())
            .filter(|name| name != "scopegate-log")
            .collect()
    };
    let r = get(&format!("http://{}/open", proc.addr)).await;
    assert_eq!(r.status, StatusCode::OK);
    let one = threads(proc.pid());
    assert_eq!(one.len(), 1, "everything on the main thread: {one:?}");
    let two = Proc::launch(
        &config(up.addr, PUBLIC_ROUTES),
        Launch {
            args: &["--workers", "2"],
            ..Launch::default()
        },
    )
    .await;
    let r = get(&format!("http://{}/open", two.addr)).await;
    assert_eq!(r.status, StatusCode::OK);
    let both = threads(two.pid());
    assert_eq!(both.len(), 3, "main + two workers: {both:?}");
    let out = run_to_end(&["run", "--config", "x.toml", "--workers", "0"], &[]);
    assert_eq!(out.status.code(), Some(2));
}
