//! The scopegate binary: parses the command line, sets up logging, loads the
//! configuration and hands over to the library.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand, ValueEnum};
use scopegate::{clock::Clock, config::LogFormat, Config};

/// mimalloc: per-thread free lists instead of glibc's arenas; a proxied
/// request makes a few dozen small allocations (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "scopegate",
    version,
    about = "Authentication sidecar for booking APIs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `--config`, shared by every command that reads a configuration.
#[derive(clap::Args)]
struct ConfigArg {
    #[arg(
        long = "config",
        short = 'c',
        env = "SCOPEGATE_CONFIG",
        default_value = "config/scopegate.toml"
    )]
    path: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Serve traffic until SIGTERM or SIGINT, then drain.
    Run {
        #[command(flatten)]
        config: ConfigArg,
        /// Overrides `log.format` from the configuration.
        #[arg(long, value_enum)]
        log_format: Option<Format>,
        /// Worker threads (default: one per core). `1` serves everything
        /// on one thread, for a side-by-side comparison at equal resources.
        #[arg(long, env = "SCOPEGATE_WORKERS", value_parser = clap::value_parser!(u16).range(1..=1024))]
        workers: Option<u16>,
    },
    /// Validate a configuration and print its route table.
    Check {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Mint a token with the keys of a configuration (for operators and tests).
    Token {
        #[command(subcommand)]
        kind: TokenKind,
    },
    /// Show what scopegate would do with one request (route, credential,
    /// headers removed and sent, upstream URL) without contacting the
    /// upstream. Exit 0: forwarded or answered; 3: refused.
    Explain {
        #[command(flatten)]
        config: ConfigArg,
        /// e.g. GET
        method: String,
        /// e.g. 'https://api.example.com/v2/bookings?search=...'
        url: String,
        /// A request header, `Name: value` (repeatable).
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// The client address (for trusted proxies and failure limits).
        #[arg(long, default_value = "127.0.0.1")]
        peer: std::net::IpAddr,
    },
    /// API keys (Bookeo).
    Key {
        #[command(subcommand)]
        action: KeyAction,
    },
}

#[derive(Subcommand)]
enum KeyAction {
    /// A fresh API key for one business: prints the key once (stdout, first
    /// line) and the `[[api_key]]` stanza holding only its SHA-256.
    New {
        /// The application id (`[[application]] id`).
        #[arg(long)]
        application: String,
        /// The business (account) id.
        #[arg(long)]
        business: String,
        /// Granted permissions, comma separated, e.g. `bookings_rw_own,customers_r_all`.
        #[arg(long, value_delimiter = ',', required = true)]
        permissions: Vec<String>,
        /// Also check that the application is configured there.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum TokenKind {
    /// A signed-search token for one customer: prints the token, and on
    /// stderr the `search` value it must be used with.
    SignedSearch {
        #[command(flatten)]
        config: ConfigArg,
        /// The app slug (`[[app]] slug`).
        #[arg(long)]
        app: String,
        /// The customer's email (`customer.email` subject).
        #[arg(long, conflicts_with = "meta", required_unless_present = "meta")]
        email: Option<String>,
        /// A meta subject as `name=value` (`meta.<name>`).
        #[arg(long)]
        meta: Option<String>,
        /// Adds an `exp` this far ahead (e.g. `30d`); vendor tokens have none.
        #[arg(long)]
        ttl: Option<humantime::Duration>,
    },
    /// An action link for one action on one booking: prints the URL (under
    /// `action_links.public_base_url` when set, else the path alone).
    ActionLink {
        #[command(flatten)]
        config: ConfigArg,
        /// The app slug (`[[app]] slug`).
        #[arg(long)]
        app: String,
        /// The booking id.
        #[arg(long)]
        booking: String,
        /// The action (`[[action]] name`), e.g. `cancel_by_customer`.
        #[arg(long)]
        action: String,
        /// Link lifetime (default: the action's `ttl`).
        #[arg(long)]
        ttl: Option<humantime::Duration>,
        /// The customer's email, added as the `customer.email` claim.
        #[arg(long, conflicts_with = "meta")]
        email: Option<String>,
        /// A meta subject as `name=value`.
        #[arg(long)]
        meta: Option<String>,
        /// Appended as `redirect=`; must be of an allowed origin to be followed.
        #[arg(long)]
        redirect: Option<String>,
    },
    /// An SSO token for one customer of a company (`[[sso_company]]`), as a
    /// business's website would mint it: `v2` by default, or `--legacy`
    /// (the vendor's format, URL-encoded as its generators print it).
    Sso {
        #[command(flatten)]
        config: ConfigArg,
        /// The company id (`[[sso_company]] company_id`).
        #[arg(long)]
        company: String,
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "Demo")]
        first_name: String,
        #[arg(long, default_value = "Customer")]
        last_name: String,
        #[arg(long)]
        reference: Option<String>,
        #[arg(long)]
        mobile: Option<String>,
        /// How long the token is valid (`expires`).
        #[arg(long, default_value = "1h")]
        ttl: humantime::Duration,
        /// The vendor's unauthenticated format instead of `v2`.
        #[arg(long)]
        legacy: bool,
    },
    /// The session handshake query a legacy client would send now, signed
    /// with the business's private key: `apiKey=..&timestamp=..&signature=..`.
    SessionSignature {
        #[command(flatten)]
        config: ConfigArg,
        /// The business id (`[[business]] id`).
        #[arg(long)]
        business: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Human,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config.path),
        Command::Run {
            config,
            log_format,
            workers,
        } => run(&config.path, log_format, workers),
        Command::Token { kind } => token(kind),
        Command::Explain {
            config,
            method,
            url,
            headers,
            peer,
        } => explain(&config.path, &method, &url, &headers, peer),
        Command::Key {
            action:
                KeyAction::New {
                    application,
                    business,
                    permissions,
                    config,
                },
        } => new_key(&application, &business, &permissions, config.as_deref()),
    }
}

fn explain(
    config: &std::path::Path,
    method: &str,
    url: &str,
    headers: &[String],
    peer: std::net::IpAddr,
) -> ExitCode {
    use scopegate::explain::Verdict;
    let config = match load(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let runtime = match runtime(false, None) {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(scopegate::explain::explain(
        &config, method, url, headers, peer,
    )) {
        Ok((text, verdict)) => {
            print!("{text}");
            match verdict {
                Verdict::Forwarded | Verdict::Answered => ExitCode::SUCCESS,
                Verdict::Refused => ExitCode::from(3),
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn new_key(
    application: &str,
    business: &str,
    permissions: &[String],
    config: Option<&std::path::Path>,
) -> ExitCode {
    use scopegate::auth::api_key::{self, Permission};
    for p in permissions {
        if let Err(e) = p.trim().parse::<Permission>() {
            eprintln!("error: --permissions: {e}");
            return ExitCode::from(2);
        }
    }
    if scopegate::auth::ScopeValue::new(business).is_err() {
        eprintln!("error: --business: {business:?} cannot be sent as a header");
        return ExitCode::from(2);
    }
    if let Some(path) = config {
        let config = match load(path) {
            Ok(c) => c,
            Err(code) => return code,
        };
        let apps = &config.auth.api_keys.applications;
        if !apps.iter().any(|a| a.id == application) {
            let known: Vec<&str> = apps.iter().map(|a| a.id.as_str()).collect();
            eprintln!("error: no [[application]] with id {application:?} (configured: {known:?})");
            return ExitCode::from(1);
        }
    }
    let key = api_key::new_key();
    let hash = scopegate::store::hex(&api_key::key_hash(&key));
    let list: Vec<String> = permissions
        .iter()
        .map(|p| format!("{:?}", p.trim()))
        .collect();
    println!("{key}");
    println!();
    println!("# Give the key above to the application once; it is not stored anywhere.");
    println!("[[api_key]]");
    println!("key_sha256 = \"{hash}\"");
    println!("application = {application:?}");
    println!("business = {business:?}");
    println!("permissions = [{}]", list.join(", "));
    println!(
        "created = \"{}\"",
        chrono::DateTime::from_timestamp(Clock::system().now() as i64, 0)
            .expect("now is within chrono's range")
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    ExitCode::SUCCESS
}

/// The subject claim given as `--email` or `--meta name=value`.
fn subject_arg(
    email: Option<String>,
    meta: Option<String>,
) -> Result<Option<(String, String)>, ExitCode> {
    let (field, value) = match (email, meta) {
        (Some(e), _) => ("customer.email".to_string(), e),
        (None, Some(m)) => match m.split_once('=') {
            Some((name, v)) if scopegate::auth::is_meta_name(name) => {
                (format!("meta.{name}"), v.to_string())
            }
            _ => {
                eprintln!("error: --meta must be name=value, the name of [A-Za-z0-9_]");
                return Err(ExitCode::from(2));
            }
        },
        (None, None) => return Ok(None),
    };
    // The rule the verifier binds by: a token it would refuse is not minted.
    if !scopegate::auth::search_query::searchable_claim(&value) {
        eprintln!(
            "error: the subject value must be non-empty, unpadded, without ';', '*', '%' or control characters"
        );
        return Err(ExitCode::from(2));
    }
    Ok(Some((field, value)))
}

fn token(kind: TokenKind) -> ExitCode {
    match kind {
        TokenKind::SignedSearch {
            config,
            app,
            email,
            meta,
            ttl,
        } => signed_search_token(&config.path, &app, email, meta, ttl),
        TokenKind::Sso {
            config,
            company,
            email,
            first_name,
            last_name,
            reference,
            mobile,
            ttl,
            legacy,
        } => {
            let mut payload = serde_json::Map::new();
            payload.insert("first_name".into(), first_name.into());
            payload.insert("last_name".into(), last_name.into());
            payload.insert("email".into(), email.into());
            if let Some(m) = mobile {
                payload.insert("mobile".into(), m.into());
            }
            if let Some(r) = reference {
                payload.insert("reference".into(), r.into());
            }
            sso_token(&config.path, &company, payload, ttl.into(), legacy)
        }
        TokenKind::SessionSignature { config, business } => {
            session_signature(&config.path, &business)
        }
        TokenKind::ActionLink {
            config,
            app,
            booking,
            action,
            ttl,
            email,
            meta,
            redirect,
        } => {
            let subject = match subject_arg(email, meta) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let config = match load(&config.path) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let links = &config.auth.actions;
            let Some(a) = links.get(&action) else {
                let known: Vec<&str> = links.actions.iter().map(|a| a.name.as_str()).collect();
                eprintln!("error: no [[action]] named {action:?} (configured: {known:?})");
                return ExitCode::from(1);
            };
            let subject = subject.as_ref().map(|(f, v)| (f.as_str(), v.as_str()));
            let link = scopegate::actions::Link {
                app: &app,
                booking_id: &booking,
                action: a,
                subject,
                ttl: ttl.map(Into::into),
            };
            match links.mint(&config.auth.apps, &link, Clock::system().now()) {
                Ok(mut url) => {
                    if let Some(r) = redirect {
                        url.push_str("&redirect=");
                        url.extend(form_urlencoded::byte_serialize(r.as_bytes()));
                    }
                    println!("{url}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

fn sso_token(
    config: &std::path::Path,
    company: &str,
    mut payload: serde_json::Map<String, serde_json::Value>,
    ttl: std::time::Duration,
    legacy: bool,
) -> ExitCode {
    use scopegate::auth::sso;
    let config = match load(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let companies = &config.auth.sso.companies;
    let Some(c) = config.auth.sso.company(company) else {
        let known: Vec<&str> = companies.iter().map(|c| c.id.as_str()).collect();
        eprintln!("error: no [[sso_company]] with company_id {company:?} (configured: {known:?})");
        return ExitCode::from(1);
    };
    let now = Clock::system().now();
    let expires = chrono::DateTime::from_timestamp((now + ttl.as_secs()) as i64, 0)
        .expect("a time within chrono's range")
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    payload.insert("expires".into(), expires.into());
    let json = serde_json::Value::Object(payload).to_string();
    let keys = &c.keys[0].keys;
    let token = if legacy {
        sso::mint_legacy(json.as_bytes(), &keys.legacy)
    } else {
        sso::mint_v2(json.as_bytes(), &keys.v2)
    };
    // The rule the verifier reads by: a token it would refuse is not printed.
    let received: String = form_urlencoded::parse(format!("t={token}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if let Err(e) = sso::token::decode(&received, keys, true, c.rules, now as i64) {
        eprintln!("error: scopegate would refuse this token: {e}");
        return ExitCode::from(2);
    }
    if legacy && !c.accept_legacy {
        eprintln!("warning: company {company:?} has accept_legacy = false: scopegate will refuse this token");
    }
    println!("{token}");
    ExitCode::SUCCESS
}

fn session_signature(config: &std::path::Path, business: &str) -> ExitCode {
    let config = match load(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let sessions = &config.auth.sessions;
    let Some(b) = sessions.by_id(business) else {
        let mut known: Vec<&str> = sessions
            .by_api_key
            .values()
            .map(|b| b.id.as_str())
            .collect();
        known.sort_unstable();
        eprintln!("error: no [[business]] with id {business:?} (configured: {known:?})");
        return ExitCode::from(1);
    };
    let ts = Clock::system().now().to_string();
    println!("{}", scopegate::auth::session::handshake_query(b, &ts));
    eprintln!("use with: GET {}?<query>", sessions.path);
    ExitCode::SUCCESS
}

fn signed_search_token(
    config: &std::path::Path,
    app: &str,
    email: Option<String>,
    meta: Option<String>,
    ttl: Option<humantime::Duration>,
) -> ExitCode {
    let (field, value) = match subject_arg(email, meta) {
        Ok(Some(s)) => s,
        Ok(None) => unreachable!("clap requires --email or --meta"),
        Err(code) => return code,
    };
    let config = match load(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let now = Clock::system().now();
    let mut claims = serde_json::Map::new();
    claims.insert(field.clone(), value.clone().into());
    claims.insert("iat".into(), now.into());
    if let Some(ttl) = ttl {
        claims.insert("exp".into(), (now + ttl.as_secs()).into());
    }
    match config.auth.apps.mint(app, claims, now) {
        Ok(t) => {
            println!("{t}");
            let search: String =
                form_urlencoded::byte_serialize(format!("{field}:{value}").as_bytes()).collect();
            eprintln!("use with: ?search={search}&signed_search=<token>");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("error: {} is not a valid configuration:", path.display());
        for p in &e.problems {
            eprintln!("  {p}");
        }
        ExitCode::from(1)
    })
}

fn check(path: &std::path::Path) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "{}: OK ({} routes, {} upstreams)\n",
        path.display(),
        config.routes.routes().len(),
        config.upstreams.len()
    );
    print!("{}", config.routes);
    println!();
    for u in &config.upstreams {
        println!("upstream {u}");
    }
    ExitCode::SUCCESS
}

fn run(path: &std::path::Path, log_format: Option<Format>, workers: Option<u16>) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let format = match log_format {
        Some(Format::Json) => LogFormat::Json,
        Some(Format::Human) => LogFormat::Human,
        None => config.log.format,
    };
    let _log = scopegate::telemetry::init(format, &config.log.level);
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let runtime = match runtime(true, workers) {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let drain = config.drain_timeout;
        let running = match scopegate::start(config).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot bind listeners");
                return ExitCode::from(1);
            }
        };
        serve_until_stopped(&running, path).await;
        tracing::info!(deadline = ?drain, "shutting down: draining in-flight requests");
        running.shutdown(drain).await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// A tokio runtime: every core (or `workers` threads) for `run`, one thread
/// for one-shot commands.
fn runtime(multi_thread: bool, workers: Option<u16>) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut builder = match (multi_thread, workers) {
        // One worker: the current-thread scheduler, so a request, its
        // upstream connection and the timers never cross threads.
        (false, _) | (true, Some(1)) => tokio::runtime::Builder::new_current_thread(),
        (true, n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = n {
                b.worker_threads(usize::from(n));
            }
            b
        }
    };
    builder.enable_all().build().map_err(|e| {
        eprintln!("error: cannot start the runtime: {e}");
        ExitCode::from(1)
    })
}

/// How often the configuration file is checked for changes.
const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// The content hash of the configuration file and of the secret files it
/// names (`None`: the configuration file is unreadable).
fn fingerprint(path: &std::path::Path, files: &[std::path::PathBuf]) -> Option<[u8; 32]> {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(std::fs::read(path).ok()?);
    for f in files {
        // A missing file hashes as empty: its return is a change too.
        h.update(f.as_os_str().as_encoded_bytes());
        h.update(std::fs::read(f).unwrap_or_default());
    }
    Some(h.finalize().into())
}

/// Serves until SIGTERM or SIGINT, reloading the configuration on SIGHUP and
/// whenever the content of the file, or of a secret file it names, changes
/// (checked every two seconds; a Kubernetes ConfigMap or Secret update swaps
/// files in place). A change is applied once two checks in a row see the
/// same content, so a file caught mid-write is not loaded.
async fn serve_until_stopped(running: &scopegate::Running, path: &std::path::Path) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
    let current = || fingerprint(path, &running.config_files());
    let mut last = current();
    let mut pending = None;
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the configuration");
                let _ = running.reload(path);
                last = current();
                pending = None;
            }
            _ = tick.tick() => {
                let now = current();
                if now.is_none() || now == last {
                    pending = None;
                } else if now == pending {
                    tracing::info!("configuration changed: reloading");
                    let _ = running.reload(path);
                    // Hashed again: a reload may name other secret files.
                    last = current();
                    pending = None;
                } else {
                    pending = now;
                }
            }
        }
    }
}
