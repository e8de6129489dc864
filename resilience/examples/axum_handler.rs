//! An axum handler behind a `ResiliencePolicy`.
//!
//! `GET /players/{id}` reads a player profile from a (simulated) database through a policy:
//! per-attempt timeout, retry with budget, circuit breaker, bulkhead, and a fallback that
//! answers from a cache when the circuit is open or the database is too slow. Errors the
//! fallback does not cover become 503 / 429 / 504 responses with `Retry-After`.
//!
//! ```text
//! cargo run -p resilience --example axum_handler            # serves on 127.0.0.1:3000
//! curl localhost:3000/players/7
//! curl -X POST localhost:3000/admin/db/slow                 # make the database hang
//! curl localhost:3000/players/7                             # answered from the cache
//! curl localhost:3000/metrics                               # resilience_* metrics
//! ```
//! `--port N` picks another port. The admin routes listen on loopback only, like the rest.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use prometheus_client::registry::Registry;
use resilience::bulkhead::BulkheadConfig;
use resilience::circuit_breaker::{CircuitBreakerConfig, OpenBackoff, WindowConfig};
use resilience::metrics::ResilienceMetrics;
use resilience::retry::{BudgetConfig, RetryConfig};
use resilience::timeout::TimeoutConfig;
use resilience::{FallbackLayer, FallbackRequest, ResilienceError, ResiliencePolicy};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceExt};

/// The database's error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("database error: {0}")]
struct DbError(String);

/// A simulated profile database that can be told to hang.
#[derive(Clone, Default)]
struct Database {
    slow: Arc<AtomicBool>,
}

impl Database {
    async fn load(&self, player: u64) -> Result<String, DbError> {
        if self.slow.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_secs(5)).await;
        } else {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(format!(
            "{{\"player\":{player},\"level\":{}}}",
            10 + player % 50
        ))
    }
}

type Profiles = BoxCloneSyncService<u64, String, ResilienceError<DbError>>;

#[derive(Clone)]
struct App {
    profiles: Profiles,
    db: Database,
    registry: Arc<Registry>,
}

fn build(registry: &mut Registry) -> Result<(Profiles, Database), resilience::ConfigError> {
    let metrics = ResilienceMetrics::register(registry);
    let db = Database::default();
    let cache: Arc<Mutex<HashMap<u64, String>>> = Arc::default();

    let policy = ResiliencePolicy::builder("profiles")
        .metrics(&metrics)
        .timeout(TimeoutConfig {
            per_attempt: Some(Duration::from_millis(150)),
            overall: Some(Duration::from_millis(400)),
        })
        .retry(RetryConfig {
            max_attempts: 2,
            base_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            budget: Some(BudgetConfig::default()),
        })
        .circuit_breaker(CircuitBreakerConfig {
            window: WindowConfig::Count { size: 20 },
            minimum_calls: 5,
            open_backoff: OpenBackoff::Constant {
                duration: Duration::from_secs(5),
            },
            ..CircuitBreakerConfig::default()
        })
        .bulkhead(BulkheadConfig {
            max_concurrent: 32,
            max_queue: 64,
            max_wait: Some(Duration::from_millis(100)),
        })
        .on_state_change(
            |c| tracing::warn!(policy = %c.policy, from = %c.from, to = %c.to, "breaker"),
        )
        .build()?;

    let fallback_cache = cache.clone();
    let policy = policy.with_fallback(FallbackLayer::new(tower::service_fn(
        move |failed: FallbackRequest<u64, DbError>| {
            let cached = fallback_cache
                .lock()
                .ok()
                .and_then(|c| c.get(&failed.request).cloned());
            async move { cached.ok_or(failed.error) }
        },
    )));

    let loader = db.clone();
    let database = tower::service_fn(move |player: u64| {
        let db = loader.clone();
        let cache = cache.clone();
        async move {
            let profile = db.load(player).await?;
            if let Ok(mut cache) = cache.lock() {
                cache.insert(player, profile.clone());
            }
            Ok::<_, DbError>(profile)
        }
    });
    Ok((BoxCloneSyncService::new(policy.layer(database)), db))
}

async fn get_player(State(app): State<App>, Path(player): Path<u64>) -> Response {
    match app.profiles.oneshot(player).await {
        Ok(profile) => ([("content-type", "application/json")], profile).into_response(),
        Err(err) => {
            let mut response: Response = err.to_response();
            *response.body_mut() = axum::body::Body::from(err.to_string());
            response
        }
    }
}

async fn set_slow(State(app): State<App>, Path(mode): Path<String>) -> StatusCode {
    app.db.slow.store(mode == "slow", Ordering::Relaxed);
    StatusCode::NO_CONTENT
}

async fn metrics(State(app): State<App>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &app.registry) {
        Ok(()) => text.into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn router() -> Result<Router, resilience::ConfigError> {
    let mut registry = Registry::default();
    let (profiles, db) = build(&mut registry)?;
    let app = App {
        profiles,
        db,
        registry: Arc::new(registry),
    };
    Ok(Router::new()
        .route("/players/{id}", get(get_player))
        .route("/admin/db/{mode}", post(set_slow))
        .route("/metrics", get(metrics))
        .with_state(app))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber_init();
    let mut args = std::env::args().skip(1);
    let mut port = 3000u16;
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--port", Some(value)) => {
                port = value.parse().map_err(|e| format!("--port {value}: {e}"))?
            }
            _ => {
                return Err(
                    format!("unknown argument {arg} (usage: axum_handler [--port N])").into(),
                )
            }
        }
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("serving on http://{}", listener.local_addr()?);
    axum::serve(listener, router()?).await?;
    Ok(())
}

fn tracing_subscriber_init() {
    // The example keeps dependencies small: warnings from the breaker go to stderr.
    struct Stderr;
    impl tracing::Subscriber for Stderr {
        fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
            *m.level() <= tracing::Level::WARN
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, e: &tracing::Event<'_>) {
            struct Fields(String);
            impl tracing::field::Visit for Fields {
                fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                    self.0.push_str(&format!(" {}={:?}", f.name(), v));
                }
            }
            let mut fields = Fields(String::new());
            e.record(&mut fields);
            eprintln!("{}{}", e.metadata().level(), fields.0);
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }
    let _ = tracing::subscriber::set_global_default(Stderr);
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;

    async fn get(app: &Router, uri: &str) -> (StatusCode, String) {
        let response = app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test(start_paused = true)]
    async fn slow_database_falls_back_to_cache_then_503() {
        let app = router().unwrap();
        let (status, body) = get(&app, "/players/7").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("\"player\":7"));

        let slow = Request::post("/admin/db/slow").body(Body::empty()).unwrap();
        assert_eq!(
            app.clone().oneshot(slow).await.unwrap().status(),
            StatusCode::NO_CONTENT
        );
        // Player 7 is cached: the timeout falls back to the cached profile.
        let (status, body) = get(&app, "/players/7").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("\"player\":7"));
        // Player 8 is not: the timeout surfaces as 504.
        let (status, _) = get(&app, "/players/8").await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        for _ in 0..5 {
            get(&app, "/players/9").await;
        }
        // The breaker is open now: uncached players get 503 at once, with Retry-After.
        let response = app
            .clone()
            .oneshot(Request::get("/players/10").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key("retry-after"));
        let (_, metrics) = get(&app, "/metrics").await;
        assert!(
            metrics.contains(r#"resilience_circuit_state{policy="profiles",state="open"} 1"#),
            "{metrics}"
        );
        assert!(metrics.contains(r#"resilience_fallbacks_total{policy="profiles"}"#));
    }
}
