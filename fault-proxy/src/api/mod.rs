//! The HTTP admin API, compatible with toxiproxy's v2 API (so its Python, Node, Go and
//! Chaos Toolkit clients drive it unchanged), plus `GET /metrics`.
//!
//! | Route | Answer |
//! |---|---|
//! | `GET /proxies` | 200, `{name: proxy}` |
//! | `POST /proxies` | 201 proxy; 409 exists; 400 bad body |
//! | `POST /populate` | 201 `{"proxies": [..]}` |
//! | `GET/POST/DELETE /proxies/{p}` | 200 proxy / 200 updated / 204; 404 |
//! | `GET/POST /proxies/{p}/toxics` | 200 list / 200 toxic; 409 exists |
//! | `GET/POST/DELETE /proxies/{p}/toxics/{t}` | 200 / 200 updated / 204; 404 |
//! | `GET/POST /proxies/{p}/dbfaults` | 200 list / 200 rule set (replaces one of the same name); 400 on a tcp proxy or a bad rule |
//! | `GET/DELETE /proxies/{p}/dbfaults/{r}` | 200 / 204; 404 |
//! | `POST /reset` | 204 (toxics and database fault rules removed, proxies enabled) |
//! | `GET /version` | 200, `{"version": ..}` |
//! | `GET /metrics` | Prometheus text |
//!
//! Errors are `{"error": message, "status": code}`.
//!
//! This module is the JSON edge: requests are parsed into the typed forms here (see
//! [`ToxicJson`]) and answers written from them; the registry behind it takes typed
//! toxics.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use std::sync::Arc;

mod json;

pub use json::{attributes, merge, parse_kind, toxic_value, ProxyJson, ToxicJson};

use crate::db_rules::DbFaultInput;
use crate::{ApiError, ProxyInput, ProxyRegistry};

/// The version `GET /version` reports (toxiproxy API level 2).
pub const VERSION: &str = concat!("2.12.0-chaos-runner-", env!("CARGO_PKG_VERSION"));

type Shared = State<Arc<ProxyRegistry>>;

/// The admin API routes over `registry`.
///
/// ```
/// let registry = fault_proxy::server::ProxyServer::start(None).unwrap().registry().clone();
/// let app: axum::Router = fault_proxy::api::router(registry);
/// # drop(app);
/// ```
pub fn router(registry: Arc<ProxyRegistry>) -> Router {
    Router::new()
        .route("/proxies", get(list).post(create))
        .route("/populate", post(populate))
        .route("/reset", post(reset))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .route("/proxies/{proxy}", get(show).post(update).delete(delete))
        .route("/proxies/{proxy}/toxics", get(toxics).post(add_toxic))
        .route(
            "/proxies/{proxy}/toxics/{toxic}",
            get(show_toxic).post(update_toxic).delete(remove_toxic),
        )
        .route(
            "/proxies/{proxy}/dbfaults",
            get(db_faults).post(set_db_fault),
        )
        .route(
            "/proxies/{proxy}/dbfaults/{rule}",
            get(show_db_fault).delete(remove_db_fault),
        )
        .with_state(registry)
}

fn error(e: ApiError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        axum::Json(serde_json::json!({ "error": e.message, "status": e.status })),
    )
        .into_response()
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    (status, axum::Json(value)).into_response()
}

fn answer<T: serde::Serialize>(status: StatusCode, result: Result<T, ApiError>) -> Response {
    match result {
        Ok(value) => json(status, &value),
        Err(e) => error(e),
    }
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let text = if body.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        &body[..]
    };
    serde_json::from_slice(text)
        .map_err(|e| ApiError::bad_request(format!("bad request body: {e}")))
}

/// Runs a registry call that may wait briefly for a listener to close, without stalling
/// the runtime's other tasks.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

async fn list(State(r): Shared) -> Response {
    let proxies: std::collections::BTreeMap<String, ProxyJson> = r
        .list()
        .iter()
        .map(|(name, view)| (name.clone(), ProxyJson::from(view)))
        .collect();
    json(StatusCode::OK, &proxies)
}

async fn create(State(r): Shared, body: Bytes) -> Response {
    let result = parse::<ProxyInput>(&body)
        .and_then(|input| blocking(|| r.create(input)))
        .map(|view| ProxyJson::from(&view));
    answer(StatusCode::CREATED, result)
}

async fn populate(State(r): Shared, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Body {
        List(Vec<ProxyInput>),
        Wrapped { proxies: Vec<ProxyInput> },
    }
    let result = parse::<Body>(&body)
        .map(|b| match b {
            Body::List(l) | Body::Wrapped { proxies: l } => l,
        })
        .and_then(|inputs| blocking(|| r.populate(inputs)))
        .map(|views| {
            let proxies: Vec<ProxyJson> = views.iter().map(ProxyJson::from).collect();
            serde_json::json!({ "proxies": proxies })
        });
    answer(StatusCode::CREATED, result)
}

async fn reset(State(r): Shared) -> Response {
    match blocking(|| r.reset()) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(e),
    }
}

async fn version() -> Response {
    json(StatusCode::OK, &serde_json::json!({ "version": VERSION }))
}

async fn metrics(State(r): Shared) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        r.metrics().encode(),
    )
        .into_response()
}

async fn show(State(r): Shared, Path(proxy): Path<String>) -> Response {
    answer(
        StatusCode::OK,
        r.get(&proxy).map(|view| ProxyJson::from(&view)),
    )
}

async fn update(State(r): Shared, Path(proxy): Path<String>, body: Bytes) -> Response {
    let result = parse::<ProxyInput>(&body)
        .and_then(|input| blocking(|| r.update(&proxy, input)))
        .map(|view| ProxyJson::from(&view));
    answer(StatusCode::OK, result)
}

async fn delete(State(r): Shared, Path(proxy): Path<String>) -> Response {
    match blocking(|| r.delete(&proxy)) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(e),
    }
}

async fn toxics(State(r): Shared, Path(proxy): Path<String>) -> Response {
    let result = r
        .toxics(&proxy)
        .map(|toxics| toxics.iter().map(toxic_value).collect::<Vec<_>>());
    answer(StatusCode::OK, result)
}

async fn add_toxic(State(r): Shared, Path(proxy): Path<String>, body: Bytes) -> Response {
    let result = parse::<ToxicJson>(&body)
        .and_then(|t| t.to_toxic())
        .and_then(|t| r.add_toxic(&proxy, t))
        .map(|t| toxic_value(&t));
    answer(StatusCode::OK, result)
}

async fn show_toxic(State(r): Shared, Path((proxy, toxic)): Path<(String, String)>) -> Response {
    answer(
        StatusCode::OK,
        r.toxic(&proxy, &toxic).map(|t| toxic_value(&t)),
    )
}

async fn update_toxic(
    State(r): Shared,
    Path((proxy, toxic)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let result = parse::<ToxicJson>(&body)
        .and_then(|patch| r.update_toxic(&proxy, &toxic, |old| merge(old, &patch)))
        .map(|t| toxic_value(&t));
    answer(StatusCode::OK, result)
}

async fn remove_toxic(State(r): Shared, Path((proxy, toxic)): Path<(String, String)>) -> Response {
    match r.remove_toxic(&proxy, &toxic) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(e),
    }
}

async fn db_faults(State(r): Shared, Path(proxy): Path<String>) -> Response {
    answer(StatusCode::OK, r.db_faults(&proxy))
}

async fn set_db_fault(State(r): Shared, Path(proxy): Path<String>, body: Bytes) -> Response {
    let result = parse::<DbFaultInput>(&body).and_then(|f| r.set_db_fault(&proxy, &f));
    answer(StatusCode::OK, result)
}

async fn show_db_fault(State(r): Shared, Path((proxy, rule)): Path<(String, String)>) -> Response {
    answer(StatusCode::OK, r.db_fault(&proxy, &rule))
}

async fn remove_db_fault(
    State(r): Shared,
    Path((proxy, rule)): Path<(String, String)>,
) -> Response {
    match r.remove_db_fault(&proxy, &rule) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(e),
    }
}
