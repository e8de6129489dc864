//! `game-server [--config FILE]`: the example game service. Environment overrides:
//! `GAME_LISTEN`, `GAME_DATABASE_URL`, `GAME_SPOOL_DIR`; log filter in `RUST_LOG`
//! (default `info`). At start-up the open-file limit is raised (see
//! [`game_server::fd_limit`]) and logged. Exit status: 0 after a clean shutdown
//! (SIGTERM/SIGINT), 2 for an invalid configuration, 1 for any other failure.

use clap::Parser;
use game_server::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "game-server",
    about = "Example game service: matchmaking, sessions and player saves on PostgreSQL behind resilience policies"
)]
struct Args {
    /// YAML configuration file (see game-server.yaml); defaults built in when absent.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

fn load(args: &Args) -> Result<Config, game_server::config::ConfigError> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    config.apply_env(|name| std::env::var(name).ok())?;
    Ok(config)
}

/// Installs SIGTERM and SIGINT handlers now (so an early signal is not fatal) and returns
/// a future resolving at the first of them.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}

/// Raises `RLIMIT_NOFILE` (every lobby session is a socket) and logs what it got; a limit
/// that cannot hold `max_sessions` sockets is a warning, not a failure.
fn raise_fd_limit(max_sessions: usize) {
    match game_server::fd_limit::raise_nofile_limit() {
        Ok(limit) => {
            tracing::info!(
                soft = limit.soft,
                hard = limit.hard,
                soft_before = limit.soft_before,
                hard_before = limit.hard_before,
                hard_refused = ?limit.hard_refused,
                "open file limit (RLIMIT_NOFILE)"
            );
            // Room for the sessions plus the database pool, the spool, the listener, logs.
            let wanted = u64::try_from(max_sessions)
                .unwrap_or(u64::MAX)
                .saturating_add(1024);
            if limit.soft < wanted {
                tracing::warn!(
                    soft = limit.soft,
                    lobby_max_sessions = max_sessions,
                    "open file limit is below lobby.maxSessions + 1024: sessions beyond it fail to be accepted"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "open file limit not raised"),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match load(&args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("game-server: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    raise_fd_limit(config.lobby.max_sessions);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("game-server: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        let signals = shutdown_signal().map_err(game_server::ServeError::Io)?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| {
                game_server::ServeError::Io(std::io::Error::new(
                    e.kind(),
                    format!("cannot listen on {}: {e}", config.listen),
                ))
            })?;
        game_server::serve(config, listener, signals).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "game-server failed");
            eprintln!("game-server: {e}");
            ExitCode::from(1)
        }
    }
}
