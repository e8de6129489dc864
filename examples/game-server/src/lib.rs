//! An example game service: matchmaking, sessions and player saves on PostgreSQL, every
//! database call behind a [`resilience`] policy, with degraded modes instead of failures:
//!
//! - save writes fall back to a spooled (fsync'd) write-behind queue, answered 202;
//! - save reads fall back to the last known save, answered with `"source":"cache"`;
//! - matchmaking falls back to the client's skill with a wider skill band.
//!
//! [`serve`] runs it on a listener until a shutdown future resolves; the `game-server`
//! binary wraps it with a config file, environment overrides and signal handling.
//!
//! ```no_run
//! # async fn demo() -> Result<(), game_server::ServeError> {
//! let config = game_server::config::Config::default();
//! let listener = tokio::net::TcpListener::bind(config.listen).await.map_err(game_server::ServeError::Io)?;
//! game_server::serve(config, listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod cache;
pub mod config;
pub mod db;
pub mod fd_limit;
pub mod lobby;
pub mod matchmaking;
pub mod metrics;
pub mod routes;
pub mod saves;
pub mod sessions;
pub mod write_behind;

use resilience::{ResiliencePolicy, ResiliencePolicyConfig};
use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::cache::SaveCache;
use crate::config::Config;
use crate::db::Database;
use crate::lobby::Lobby;
use crate::matchmaking::Matchmaker;
use crate::metrics::Metrics;
use crate::routes::AppState;
use crate::saves::Saves;
use crate::sessions::Sessions;
use crate::write_behind::WriteBehind;

/// The service could not start or stopped on an error.
///
/// ```
/// let e = game_server::ServeError::Io(std::io::Error::other("x"));
/// assert!(e.to_string().contains("x"));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A policy could not be built from its settings.
    #[error("policy: {0}")]
    Policy(#[from] resilience::ConfigError),
    /// The spool could not be opened or replayed.
    #[error(transparent)]
    Spool(#[from] write_behind::SpoolError),
    /// The database settings are unusable.
    #[error(transparent)]
    Database(#[from] db::DbError),
    /// Serving failed.
    #[error("server: {0}")]
    Io(std::io::Error),
}

/// Builds a policy from its settings, with metrics and breaker transitions logged.
///
/// ```
/// let metrics = game_server::metrics::Metrics::new();
/// let config = resilience::ResiliencePolicyConfig::from_yaml("name: saves\nretry: { max_attempts: 2 }\n").unwrap();
/// let policy = game_server::build_policy(&config, &metrics).unwrap();
/// assert_eq!(policy.name(), "saves");
/// ```
pub fn build_policy(
    config: &ResiliencePolicyConfig,
    metrics: &Metrics,
) -> Result<ResiliencePolicy, resilience::ConfigError> {
    ResiliencePolicy::builder_from(config)
        .metrics(&metrics.resilience)
        .on_state_change(
            |c| tracing::warn!(policy = %c.policy, from = %c.from, to = %c.to, "circuit breaker"),
        )
        .build()
}

/// Runs the service on `listener` until `shutdown` resolves, then drains in-flight requests
/// (bounded by `shutdown.drain_timeout`), closes the lobby's WebSocket sessions with code
/// 1001 (waiting for them at most `shutdown.drain_timeout` too), flushes the write-behind
/// queue for at most `shutdown.flush_timeout` (what is left stays in the fsync'd spool) and
/// returns.
pub async fn serve(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let metrics = Metrics::new();
    let db = Database::new(&config.database)?;
    let write_policy = build_policy(&config.policies.save_writes, &metrics)?;
    let read_policy = build_policy(&config.policies.save_reads, &metrics)?;
    let match_policy = build_policy(&config.policies.matchmaking, &metrics)?;
    let limiter = routes::player_limiter(config.player_rate_limit, &metrics)?;

    let cache = SaveCache::new(config.cache.max_entries);
    let write_behind = WriteBehind::open(
        &config.spool_dir,
        config.write_behind.max_queued,
        cache.clone(),
        metrics.save_queue_depth.clone(),
    )?;
    let saves = Arc::new(Saves::new(
        &db,
        &write_policy,
        &read_policy,
        write_behind.clone(),
        config.write_behind.enabled,
        cache,
        metrics.clone(),
    ));
    let sessions = Sessions::new(metrics.active_sessions.clone());
    let matchmaker = Arc::new(Matchmaker::new(
        &db,
        &match_policy,
        config.matchmaking.clone(),
        sessions.clone(),
        metrics.clone(),
    ));

    match tokio::time::timeout(Duration::from_secs(2), db.ping()).await {
        Ok(Ok(())) => tracing::info!(database = %db.target(), "database reachable"),
        Ok(Err(e)) => {
            tracing::warn!(database = %db.target(), error = %e, "database unavailable at start-up; fallbacks armed")
        }
        Err(_) => {
            tracing::warn!(database = %db.target(), "database did not answer at start-up; fallbacks armed")
        }
    }

    let background = CancellationToken::new();
    let flusher = tokio::spawn(write_behind.clone().run_flusher(
        saves.writer_service(),
        config.write_behind.flush_batch,
        config.write_behind.retry_interval,
        background.clone(),
    ));
    let sweeper = {
        let matchmaker = matchmaker.clone();
        let sessions = sessions.clone();
        let cancel = background.clone();
        let idle = config.matchmaking.ticket_ttl;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        matchmaker.sweep();
                        sessions.sweep(idle);
                    }
                    _ = cancel.cancelled() => return,
                }
            }
        })
    };

    // Cancelled when the shutdown begins: the lobby's sessions close with 1001 and new
    // upgrades are refused.
    let stopping = CancellationToken::new();
    let lobby = Lobby::new(&config.lobby, metrics.clone(), stopping.clone());
    let state = AppState {
        saves: saves.clone(),
        matchmaker,
        sessions,
        metrics,
        limiter,
        db: db.clone(),
        queue_retry_after: config
            .write_behind
            .retry_interval
            .max(Duration::from_secs(1)),
        lobby: lobby.clone(),
    };
    let app = routes::router(state);
    let local = listener.local_addr().map_err(ServeError::Io)?;
    tracing::info!(listen = %local, database = %db.target(), spool = %config.spool_dir.display(), "game-server listening");

    let signalled = stopping.clone();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections, finishing in-flight requests");
            signalled.cancel();
        })
        .into_future();
    let mut server = tokio::spawn(server);
    let drain = config.shutdown.drain_timeout;
    let served = tokio::select! {
        result = &mut server => result,
        _ = async { stopping.cancelled().await; tokio::time::sleep(drain).await } => {
            tracing::warn!(?drain, "in-flight requests did not finish in time; closing them");
            server.abort();
            server.await
        }
    };
    let served = match served {
        Ok(result) => result.map_err(ServeError::Io),
        Err(e) if e.is_cancelled() => Ok(()),
        Err(e) => Err(ServeError::Io(std::io::Error::other(e.to_string()))),
    };
    // Upgraded connections are not the HTTP server's any more: the lobby closes its own
    // (also when the server stopped on an error).
    stopping.cancel();
    let open = lobby.sessions();
    if open > 0 {
        tracing::info!(sessions = open, "closing lobby sessions (1001, going away)");
        if tokio::time::timeout(drain, lobby.all_closed())
            .await
            .is_err()
        {
            tracing::warn!(
                left = lobby.sessions(),
                ?drain,
                "lobby sessions did not close in time; dropping them"
            );
        }
    }

    background.cancel();
    let _ = sweeper.await;
    let _ = flusher.await;
    let left = write_behind
        .flush_for(
            &saves.writer_service(),
            config.write_behind.flush_batch,
            config.write_behind.retry_interval,
            config.shutdown.flush_timeout,
        )
        .await;
    if left == 0 {
        tracing::info!("write-behind queue flushed");
    } else {
        tracing::warn!(
            left,
            spool = %config.spool_dir.display(),
            "saves left in the spool; replayed at the next start"
        );
    }
    served
}
