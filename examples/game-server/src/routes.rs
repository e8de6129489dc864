//! The HTTP API (the contract in the issue): handlers, JSON bodies, errors as status codes
//! with `Retry-After`, the per-player rate limit and request metrics.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State, WebSocketUpgrade};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tower::{Layer, ServiceExt};

use crate::db::Database;
use crate::lobby::Lobby;
use crate::matchmaking::{MatchError, Matched, Matchmaker, Outcome};
use crate::metrics::Metrics;
use crate::saves::{SaveError, Saves, Source, Stored};
use crate::sessions::Sessions;

/// Largest save accepted (bytes of JSON).
pub const MAX_SAVE_BYTES: usize = 64 * 1024;

/// A per-player admission check: the resilience crate's keyed rate limiter around a no-op.
pub type PlayerLimiter =
    tower::util::BoxCloneSyncService<String, (), resilience::ResilienceError<Infallible>>;

/// Builds the per-player limiter (key = player id), counting rejections in `metrics`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use resilience::rate_limit::RateLimitConfig;
/// use tower::ServiceExt;
/// let metrics = game_server::metrics::Metrics::new();
/// let config = RateLimitConfig { per_second: 1.0, burst: 1, max_wait: Default::default() };
/// let limiter = game_server::routes::player_limiter(config, &metrics).unwrap();
/// assert!(limiter.clone().oneshot("p1".to_owned()).await.is_ok());
/// assert!(limiter.clone().oneshot("p1".to_owned()).await.is_err());
/// assert!(limiter.clone().oneshot("p2".to_owned()).await.is_ok());
/// # }
/// ```
pub fn player_limiter(
    config: resilience::rate_limit::RateLimitConfig,
    metrics: &Metrics,
) -> Result<PlayerLimiter, resilience::ConfigError> {
    let layer = resilience::RateLimitLayer::keyed(config, |player: &String| player.clone())?
        .metrics(metrics.resilience.policy("player_rate_limit"));
    let admit = tower::service_fn(|_: String| async { Ok::<(), Infallible>(()) });
    Ok(tower::util::BoxCloneSyncService::new(layer.layer(admit)))
}

/// Everything the handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Player saves.
    pub saves: Arc<Saves>,
    /// Matchmaking.
    pub matchmaker: Arc<Matchmaker>,
    /// Sessions.
    pub sessions: Sessions,
    /// Metrics registry.
    pub metrics: Metrics,
    /// Per-player rate limit.
    pub limiter: PlayerLimiter,
    /// The database (readiness checks only).
    pub db: Database,
    /// `Retry-After` for a full save queue.
    pub queue_retry_after: Duration,
    /// The WebSocket lobby.
    pub lobby: Lobby,
}

/// An error answer: status, message, optional `Retry-After`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<Duration>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn retry_after(mut self, after: Duration) -> ApiError {
        self.retry_after = Some(after);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, axum::Json(json!({ "error": self.message }))).into_response();
        if let Some(after) = self.retry_after {
            let secs = (after.as_secs() + u64::from(after.subsec_nanos() > 0)).max(1);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Player ids: 1 to 64 characters of `[A-Za-z0-9_.-]` (the contract's ids are `p<number>`).
///
/// ```
/// assert!(game_server::routes::valid_player_id("p42"));
/// assert!(!game_server::routes::valid_player_id(""));
/// assert!(!game_server::routes::valid_player_id("p 1"));
/// ```
pub fn valid_player_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn check_player(id: &str) -> Result<(), ApiError> {
    check_player_named(id, "player_id")
}

fn check_player_named(id: &str, name: &str) -> Result<(), ApiError> {
    if valid_player_id(id) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{name} must be 1 to 64 characters of A-Z a-z 0-9 _ - ."
        )))
    }
}

async fn admit(state: &AppState, player: &str) -> Result<(), ApiError> {
    match state.limiter.clone().oneshot(player.to_owned()).await {
        Ok(()) => Ok(()),
        Err(e) => Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate limited")
            .retry_after(e.retry_after().unwrap_or(Duration::from_secs(1)))),
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueBody {
    player_id: String,
    skill: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlayerBody {
    player_id: String,
}

/// Highest skill accepted.
pub const MAX_SKILL: u32 = 100_000;

fn matched_body(m: &Matched) -> serde_json::Value {
    json!({
        "status": "matched",
        "match_id": m.match_id,
        "players": m.players,
        "skill_band": m.skill_band,
    })
}

fn outcome_response(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Matched(m) => (StatusCode::OK, axum::Json(matched_body(&m))).into_response(),
        Outcome::Queued { ticket } => (
            StatusCode::ACCEPTED,
            axum::Json(json!({ "status": "queued", "ticket": ticket })),
        )
            .into_response(),
    }
}

async fn queue_for_match(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let body: QueueBody = parse_json(&body)?;
    check_player(&body.player_id)?;
    if body.skill > MAX_SKILL {
        return Err(ApiError::bad_request(format!(
            "skill must be at most {MAX_SKILL}"
        )));
    }
    admit(&state, &body.player_id).await?;
    // skill <= MAX_SKILL fits in i32.
    let skill = i32::try_from(body.skill).unwrap_or(i32::MAX);
    match state.matchmaker.queue(&body.player_id, skill).await {
        Ok(outcome) => Ok(outcome_response(outcome)),
        Err(MatchError::PoolFull) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "matchmaking pool is full",
        )
        .retry_after(Duration::from_secs(1))),
    }
}

async fn poll_ticket(
    State(state): State<AppState>,
    Path(ticket): Path<String>,
) -> Result<Response, ApiError> {
    match state.matchmaker.ticket(&ticket) {
        Some(outcome) => Ok(outcome_response(outcome)),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "unknown ticket")),
    }
}

async fn join_session(
    State(state): State<AppState>,
    Path(match_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    session_change(state, match_id, body, true).await
}

async fn leave_session(
    State(state): State<AppState>,
    Path(match_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    session_change(state, match_id, body, false).await
}

async fn session_change(
    state: AppState,
    match_id: String,
    body: Bytes,
    join: bool,
) -> Result<Response, ApiError> {
    let body: PlayerBody = parse_json(&body)?;
    check_player(&body.player_id)?;
    admit(&state, &body.player_id).await?;
    let result = if join {
        state.sessions.join(&match_id, &body.player_id)
    } else {
        state.sessions.leave(&match_id, &body.player_id)
    };
    match result {
        Ok(n) => {
            Ok(axum::Json(json!({ "session": match_id, "active_players": n })).into_response())
        }
        Err(_) => Err(ApiError::new(StatusCode::NOT_FOUND, "unknown match")),
    }
}

async fn list_sessions(State(state): State<AppState>) -> Response {
    let (sessions, players) = state.sessions.counts();
    axum::Json(json!({ "active_sessions": sessions, "active_players": players })).into_response()
}

async fn put_save(
    State(state): State<AppState>,
    Path(player): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_player(&player)?;
    let value: serde_json::Value = parse_json(&body)?;
    if !value.is_object() {
        return Err(ApiError::bad_request("a save must be a JSON object"));
    }
    admit(&state, &player).await?;
    match state.saves.write(&player, value.to_string().into()).await {
        Ok(Stored::Database(version)) => Ok((
            StatusCode::OK,
            axum::Json(json!({ "stored": "database", "version": version })),
        )
            .into_response()),
        Ok(Stored::Queued) => Ok((
            StatusCode::ACCEPTED,
            axum::Json(json!({ "stored": "queued" })),
        )
            .into_response()),
        Err(SaveError::QueueFull) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database unavailable and save queue full",
        )
        .retry_after(state.queue_retry_after)),
        Err(e) => Err(
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
                .retry_after(Duration::from_secs(1)),
        ),
    }
}

async fn get_save(
    State(state): State<AppState>,
    Path(player): Path<String>,
) -> Result<Response, ApiError> {
    check_player(&player)?;
    admit(&state, &player).await?;
    match state.saves.read(&player).await {
        Ok(save) => {
            let source = match save.source {
                Source::Database => "database",
                Source::Cache => "cache",
            };
            // `data` is JSON text this service wrote: embedded as is.
            let body = format!(
                "{{\"data\":{},\"version\":{},\"source\":\"{source}\"}}",
                save.data, save.version
            );
            Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response())
        }
        Err(SaveError::NotFound) => Err(ApiError::new(StatusCode::NOT_FOUND, "never saved")),
        Err(SaveError::Unavailable {
            reason,
            retry_after,
        }) => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, reason)
            .retry_after(retry_after.unwrap_or(Duration::from_secs(1)))),
        Err(e) => Err(
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
                .retry_after(Duration::from_secs(1)),
        ),
    }
}

#[derive(Deserialize)]
struct LobbyQuery {
    player: Option<String>,
}

/// `GET /v1/lobby/ws?player=<id>`: 400 before upgrading without a valid player id, 503
/// with `Retry-After` when the lobby is full or the server is stopping, else the upgrade
/// (see [`crate::lobby`]).
async fn lobby_ws(
    State(state): State<AppState>,
    query: Result<Query<LobbyQuery>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let player = match query {
        Ok(Query(query)) => query.player.unwrap_or_default(),
        Err(e) => return ApiError::bad_request(format!("invalid query: {e}")).into_response(),
    };
    if let Err(e) = check_player_named(&player, "player") {
        return e.into_response();
    }
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let slot = match state.lobby.admit() {
        Ok(slot) => slot,
        Err(refused) => {
            return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, refused.to_string())
                .retry_after(crate::lobby::RETRY_AFTER)
                .into_response()
        }
    };
    let lobby = state.lobby.clone();
    lobby
        .configure(upgrade)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "lobby upgrade failed"))
        .on_upgrade(move |socket| lobby.run(socket, slot))
}

async fn healthz() -> Response {
    axum::Json(json!({ "status": "up" })).into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    let db_up = matches!(
        tokio::time::timeout(Duration::from_millis(300), state.db.ping()).await,
        Ok(Ok(()))
    );
    let armed = state.saves.write_behind().is_armed();
    let status = if db_up || armed {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({
            "database": if db_up { "up" } else { "down" },
            "write_behind": if armed { "armed" } else { "full" },
            "queued_saves": state.saves.write_behind().len(),
        })),
    )
        .into_response()
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    match state.metrics.encode() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Counts every routed request in `game_http_requests_total` and its duration.
async fn track(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    metrics.observe_request(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// The service's router.
pub fn router(state: AppState) -> Router {
    let metrics = state.metrics.clone();
    Router::new()
        .route("/v1/matchmaking/queue", post(queue_for_match))
        .route("/v1/matchmaking/tickets/{ticket}", get(poll_ticket))
        .route("/v1/sessions", get(list_sessions))
        .route("/v1/sessions/{match_id}/join", post(join_session))
        .route("/v1/sessions/{match_id}/leave", post(leave_session))
        .route("/v1/players/{player_id}/save", get(get_save).put(put_save))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/v1/lobby/ws", get(lobby_ws))
        .route_layer(axum::middleware::from_fn_with_state(metrics, track))
        .layer(DefaultBodyLimit::max(MAX_SAVE_BYTES))
        .with_state(state)
}
