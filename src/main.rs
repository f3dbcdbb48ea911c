//! The scopegate binary: parses the command line, sets up logging, loads the
//! configuration and hands over to the library.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand, ValueEnum};
use scopegate::{config::LogFormat, Config};

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

#[derive(Subcommand)]
enum Command {
    /// Serve traffic until SIGTERM or SIGINT, then drain.
    Run {
        #[arg(
            long,
            short,
            env = "SCOPEGATE_CONFIG",
            default_value = "config/scopegate.toml"
        )]
        config: PathBuf,
        /// Overrides `log.format` from the configuration.
        #[arg(long, value_enum)]
        log_format: Option<Format>,
    },
    /// Validate a configuration and print its route table.
    Check {
        #[arg(
            long,
            short,
            env = "SCOPEGATE_CONFIG",
            default_value = "config/scopegate.toml"
        )]
        config: PathBuf,
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
        Command::Check { config } => check(&config),
        Command::Run { config, log_format } => run(&config, log_format),
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

fn run(path: &std::path::Path, log_format: Option<Format>) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let format = match log_format {
        Some(Format::Json) => LogFormat::Json,
        Some(Format::Human) => LogFormat::Human,
        None => config.log.format,
    };
    scopegate::telemetry::init(format, &config.log.level);
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
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
        shutdown_signal().await;
        tracing::info!(deadline = ?drain, "shutting down: draining in-flight requests");
        running.shutdown(drain).await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
