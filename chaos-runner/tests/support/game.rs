//! A small game server implementing the GAME-API.md routes on a real socket, with an
//! error share and a latency the test controls.

#![allow(dead_code)]

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Game {
    /// Share of requests answered 503, per mille.
    error_permille: AtomicU32,
    /// Share of requests answered 429, per mille.
    limited_permille: AtomicU32,
    /// Delay before every answer.
    latency_ms: AtomicU32,
    requests: AtomicU64,
    next_id: AtomicU64,
    waiting: Mutex<Option<(String, String)>>,
    tickets: Mutex<HashMap<String, Option<String>>>,
    matches: Mutex<HashSet<String>>,
    saves: Mutex<HashMap<String, Value>>,
}

type Shared = Arc<Game>;

/// The running server; stops when dropped (its runtime thread ends with the test).
pub struct GameServer {
    pub url: String,
    game: Shared,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl GameServer {
    pub fn start() -> GameServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let game: Shared = Arc::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(game.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        GameServer {
            url,
            game,
            _shutdown: tx,
        }
    }

    pub fn set_error_share(&self, share: f64) {
        self.game
            .error_permille
            .store((share * 1000.0) as u32, Ordering::Relaxed);
    }

    pub fn set_rate_limited_share(&self, share: f64) {
        self.game
            .limited_permille
            .store((share * 1000.0) as u32, Ordering::Relaxed);
    }

    pub fn set_latency(&self, latency: Duration) {
        self.game
            .latency_ms
            .store(latency.as_millis() as u32, Ordering::Relaxed);
    }

    pub fn requests(&self) -> u64 {
        self.game.requests.load(Ordering::Relaxed)
    }
}

fn router(game: Shared) -> Router {
    Router::new()
        .route("/v1/matchmaking/queue", post(queue))
        .route("/v1/matchmaking/tickets/{ticket}", get(poll))
        .route("/v1/sessions/{id}/join", post(join))
        .route("/v1/sessions/{id}/leave", post(leave))
        .route("/v1/sessions", get(sessions))
        .route("/v1/players/{id}/save", get(read_save).put(write_save))
        .route("/healthz", get(|| async { "ok" }))
        .layer(axum::middleware::from_fn_with_state(game.clone(), degrade))
        .with_state(game)
}

async fn degrade(
    State(game): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let n = game.requests.fetch_add(1, Ordering::Relaxed);
    let latency = game.latency_ms.load(Ordering::Relaxed);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(u64::from(latency))).await;
    }
    let errors = u64::from(game.error_permille.load(Ordering::Relaxed));
    let limited = u64::from(game.limited_permille.load(Ordering::Relaxed));
    let slot = (n * 619) % 1000;
    if slot < errors {
        return (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "1")]).into_response();
    }
    if slot < errors + limited {
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")]).into_response();
    }
    next.run(request).await
}

fn matched(match_id: &str) -> Value {
    json!({"status": "matched", "match_id": match_id, "players": [], "skill_band": 100})
}

async fn queue(State(game): State<Shared>, Json(body): Json<Value>) -> Response {
    let Some(player) = body["player_id"].as_str().map(str::to_owned) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let id = game.next_id.fetch_add(1, Ordering::Relaxed);
    let mut waiting = game.waiting.lock().unwrap();
    match waiting.take() {
        Some((other, ticket)) if other != player => {
            let match_id = format!("m-{id}");
            game.matches.lock().unwrap().insert(match_id.clone());
            game.tickets
                .lock()
                .unwrap()
                .insert(ticket, Some(match_id.clone()));
            (StatusCode::OK, Json(matched(&match_id))).into_response()
        }
        _ => {
            let ticket = format!("t-{id}");
            game.tickets.lock().unwrap().insert(ticket.clone(), None);
            *waiting = Some((player, ticket.clone()));
            (
                StatusCode::ACCEPTED,
                Json(json!({"status": "queued", "ticket": ticket})),
            )
                .into_response()
        }
    }
}

async fn poll(State(game): State<Shared>, Path(ticket): Path<String>) -> Response {
    match game.tickets.lock().unwrap().get(&ticket) {
        None => StatusCode::NOT_FOUND.into_response(),
        Some(None) => (
            StatusCode::ACCEPTED,
            Json(json!({"status": "queued", "ticket": ticket})),
        )
            .into_response(),
        Some(Some(m)) => (StatusCode::OK, Json(matched(m))).into_response(),
    }
}

async fn join(State(game): State<Shared>, Path(id): Path<String>) -> Response {
    if game.matches.lock().unwrap().contains(&id) {
        (
            StatusCode::OK,
            Json(json!({"session": id, "active_players": 1})),
        )
            .into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

async fn leave(State(game): State<Shared>, Path(id): Path<String>) -> Response {
    if game.matches.lock().unwrap().contains(&id) {
        StatusCode::OK.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

async fn sessions(State(game): State<Shared>) -> Json<Value> {
    let n = game.matches.lock().unwrap().len();
    Json(json!({"active_sessions": n, "active_players": n * 2}))
}

async fn write_save(
    State(game): State<Shared>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Json<Value> {
    game.saves.lock().unwrap().insert(id, body);
    Json(json!({"stored": "database"}))
}

async fn read_save(State(game): State<Shared>, Path(id): Path<String>) -> Response {
    match game.saves.lock().unwrap().get(&id) {
        Some(data) => {
            Json(json!({"data": data, "version": 1, "source": "database"})).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
