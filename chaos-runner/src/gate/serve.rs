//! `chaos-runner gate serve`: the gate's decision over HTTP for rollout controllers.
//!
//! - `GET /v1/decision[?slo=NAME...]`: the [`GateReport`] as JSON, always `200` when the
//!   gate could answer (an Argo Rollouts Web metric reads `{$.decision}`:
//!   `successCondition: result == "proceed"`, `failureCondition: result == "rollback"`, so
//!   pause and unknown are inconclusive and pause the rollout).
//! - `POST /v1/flagger/confirm-rollout`, `POST /v1/flagger/confirm-promotion`: `200` to
//!   proceed; `409` for pause and rollback, `503` for unknown (Flagger holds on anything
//!   but 2xx). The webhook's `metadata.slos` (`"a,b"`) picks the SLOs.
//! - `POST /v1/flagger/rollback`: `200` when the decision is rollback (Flagger then rolls
//!   the canary back), `409` otherwise.
//! - `GET /metrics`: `chaos_gate_decisions_total{endpoint,decision}` and the budget spent
//!   per SLO at the last answer (`chaos_gate_budget_spent_percent{slo_set,slo}`).
//! - `GET /healthz`: `200 ok`, never behind the token.
//!
//! With a token every other endpoint wants `Authorization: Bearer <token>` (`401`
//! otherwise). Answers are cached for `--cache` per set of SLOs asked, so many rollouts
//! polling at once cost Prometheus one evaluation each period.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

use super::{evaluate, select, Decision, GateOptions, GateReport};
use crate::spec::SloSet;
use crate::watch::prometheus::Prometheus;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where to listen (loopback by default).
    pub listen: SocketAddr,
    /// The bearer token every endpoint but `/healthz` wants, if any.
    pub token: Option<String>,
    /// How long an answer is reused for the same SLOs.
    pub cache: Duration,
}

/// The labels of a decision counted.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    endpoint: String,
    decision: String,
}

/// The labels of an SLO's figure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SloLabels {
    slo_set: String,
    slo: String,
}

struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    spent: Family<SloLabels, Gauge<f64, AtomicU64>>,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::default();
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "chaos_gate_decisions",
            "Decisions the gate answered, by endpoint and decision",
            decisions.clone(),
        );
        let spent = Family::<SloLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "chaos_gate_budget_spent_percent",
            "Percent of the error budget spent over the SLO's period, at the last answer",
            spent.clone(),
        );
        Metrics {
            registry,
            decisions,
            spent,
        }
    }
}

/// The last answer to one question, when it was given, behind its own lock.
type Answer = Mutex<Option<(Instant, GateReport)>>;

/// The server's state.
struct Gate {
    set: SloSet,
    prometheus: Prometheus,
    token: Option<String>,
    cache_for: Duration,
    /// Per set of SLOs asked, the last answer, behind its own lock: callers asking the
    /// same question wait for one evaluation, callers asking another do not wait.
    cache: std::sync::Mutex<HashMap<Vec<String>, Arc<Answer>>>,
    metrics: Metrics,
}

/// A request the gate cannot answer: its SLOs are wrong, the body is not JSON, the token
/// is missing or wrong.
#[derive(Debug)]
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl Gate {
    fn authorise(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if constant_time_eq(given.as_bytes(), token.as_bytes()) {
            Ok(())
        } else {
            Err(Refusal(
                StatusCode::UNAUTHORIZED,
                "a bearer token is required (Authorization: Bearer ...)".into(),
            ))
        }
    }

    /// The answer for `slos` (checked), from the cache while it is fresh.
    async fn answer(&self, slos: Vec<String>, endpoint: &str) -> Result<GateReport, Refusal> {
        let mut key = slos.clone();
        key.sort();
        key.dedup();
        let picked =
            select(&self.set, &key).map_err(|e| Refusal(StatusCode::BAD_REQUEST, e.to_string()))?;
        let entry = {
            let mut cache = self
                .cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(cache.entry(key).or_default())
        };
        // One evaluation per question at a time: many controllers polling the same SLOs
        // wait for one answer instead of each asking Prometheus.
        let mut slot = entry.lock().await;
        let fresh = slot
            .as_ref()
            .filter(|(when, _)| when.elapsed() < self.cache_for)
            .map(|(_, report)| report.clone());
        let report = match fresh {
            Some(report) => report,
            None => {
                let report = evaluate(
                    &self.set,
                    &picked,
                    &self.prometheus,
                    &GateOptions::default(),
                )
                .await;
                *slot = Some((Instant::now(), report.clone()));
                report
            }
        };
        drop(slot);
        self.metrics
            .decisions
            .get_or_create(&DecisionLabels {
                endpoint: endpoint.to_owned(),
                decision: report.decision.name().to_owned(),
            })
            .inc();
        for slo in &report.slos {
            let labels = SloLabels {
                slo_set: report.slo_set.clone(),
                slo: slo.name.clone(),
            };
            match slo.budget_spent_percent {
                Some(spent) => {
                    self.metrics.spent.get_or_create(&labels).set(spent);
                }
                None => {
                    self.metrics.spent.remove(&labels);
                }
            }
        }
        Ok(report)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `?slo=a&slo=b` (also `?slo=a,b`).
fn slos_of_query(pairs: &[(String, String)]) -> Result<Vec<String>, Refusal> {
    let mut slos = Vec::new();
    for (key, value) in pairs {
        if key != "slo" {
            return Err(Refusal(
                StatusCode::BAD_REQUEST,
                format!("unknown query parameter `{key}` (only `slo`)"),
            ));
        }
        slos.extend(split_names(value));
    }
    Ok(slos)
}

fn split_names(value: &str) -> impl Iterator<Item = String> + '_ {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The SLOs a Flagger webhook body asks for: `metadata.slos`, comma-separated. An empty
/// body asks for all; a body that is not a Flagger payload is refused.
fn slos_of_flagger_body(body: &[u8]) -> Result<Vec<String>, Refusal> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let bad = |why: String| Refusal(StatusCode::BAD_REQUEST, why);
    let doc: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "the body is not JSON (a Flagger webhook payload): {e}"
        ))
    })?;
    let Some(object) = doc.as_object() else {
        return Err(bad(
            "the body must be a JSON object (a Flagger webhook payload)".into(),
        ));
    };
    match object.get("metadata").and_then(|m| m.get("slos")) {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(serde_json::Value::String(names)) => Ok(split_names(names).collect()),
        Some(other) => Err(bad(format!(
            "metadata.slos must be a string of SLO names separated by commas, not {other}"
        ))),
    }
}

async fn decision(
    State(gate): State<Arc<Gate>>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<GateReport>, Refusal> {
    gate.authorise(&headers)?;
    let slos = slos_of_query(&pairs)?;
    Ok(Json(gate.answer(slos, "decision").await?))
}

/// What a Flagger hook answers for a decision.
#[derive(Clone, Copy)]
enum Hook {
    /// `confirm-rollout` and `confirm-promotion`: 2xx lets the canary go on.
    Confirm,
    /// `rollback`: 2xx rolls the canary back.
    Rollback,
}

async fn flagger(
    gate: Arc<Gate>,
    headers: HeaderMap,
    body: Bytes,
    hook: Hook,
    endpoint: &str,
) -> Response {
    if let Err(refusal) = gate.authorise(&headers) {
        return refusal.into_response();
    }
    let report = match slos_of_flagger_body(&body) {
        Ok(slos) => gate.answer(slos, endpoint).await,
        Err(refusal) => Err(refusal),
    };
    let report = match report {
        Ok(report) => report,
        Err(refusal) => return refusal.into_response(),
    };
    let status = match (hook, report.decision) {
        (Hook::Confirm, Decision::Proceed) => StatusCode::OK,
        (Hook::Confirm, Decision::Unknown) => StatusCode::SERVICE_UNAVAILABLE,
        (Hook::Confirm, _) => StatusCode::CONFLICT,
        (Hook::Rollback, Decision::Rollback) => StatusCode::OK,
        (Hook::Rollback, _) => StatusCode::CONFLICT,
    };
    (status, Json(report)).into_response()
}

async fn metrics(State(gate): State<Arc<Gate>>, headers: HeaderMap) -> Response {
    if let Err(refusal) = gate.authorise(&headers) {
        return refusal.into_response();
    }
    let mut page = String::new();
    match prometheus_client::encoding::text::encode(&mut page, &gate.metrics.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            page,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The router over `set` and `prometheus` (what [`serve`] listens with; tests drive it).
fn router(set: SloSet, prometheus: Prometheus, options: &ServeOptions) -> Router {
    let gate = Arc::new(Gate {
        set,
        prometheus,
        token: options.token.clone(),
        cache_for: options.cache,
        cache: std::sync::Mutex::new(HashMap::new()),
        metrics: Metrics::new(),
    });
    Router::new()
        .route("/v1/decision", get(decision))
        .route(
            "/v1/flagger/confirm-rollout",
            post(|State(g), h, b| flagger(g, h, b, Hook::Confirm, "confirm-rollout")),
        )
        .route(
            "/v1/flagger/confirm-promotion",
            post(|State(g), h, b| flagger(g, h, b, Hook::Confirm, "confirm-promotion")),
        )
        .route(
            "/v1/flagger/rollback",
            post(|State(g), h, b| flagger(g, h, b, Hook::Rollback, "rollback")),
        )
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(gate)
}

/// Serves until SIGINT/SIGTERM; prints the address it listens on first.
pub async fn serve(
    set: SloSet,
    prometheus: Prometheus,
    options: ServeOptions,
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| ServeError::Bind(options.listen, e))?;
    let bound = listener.local_addr().unwrap_or(options.listen);
    let app = router(set, prometheus, &options);
    println!(
        "gate serving http://{bound}/v1/decision (Flagger: /v1/flagger/confirm-rollout, \
         /v1/flagger/confirm-promotion, /v1/flagger/rollback; /metrics){}",
        if options.token.is_some() {
            "; bearer token required"
        } else {
            ""
        }
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(crate::exporter::shutdown())
        .await
        .map_err(ServeError::Serve)
}

/// The server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address cannot be bound.
    #[error("--listen: cannot listen on {0}: {1}")]
    Bind(SocketAddr, #[source] std::io::Error),
    /// Serving failed.
    #[error("the gate server stopped: {0}")]
    Serve(#[source] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flagger_body_picks_slos_from_its_metadata() {
        let body = br#"{"name":"game","namespace":"prod","phase":"Progressing","metadata":{"slos":"saves, matchmaking"}}"#;
        assert_eq!(
            slos_of_flagger_body(body).unwrap(),
            ["saves", "matchmaking"]
        );
        assert!(slos_of_flagger_body(b"").unwrap().is_empty());
        assert!(slos_of_flagger_body(br#"{"name":"game"}"#)
            .unwrap()
            .is_empty());
        let e = slos_of_flagger_body(b"{nope").unwrap_err();
        assert_eq!(e.0, StatusCode::BAD_REQUEST);
        let e = slos_of_flagger_body(br#"{"metadata":{"slos":["a"]}}"#).unwrap_err();
        assert!(e.1.contains("metadata.slos"), "{}", e.1);
    }

    #[test]
    fn query_parameters_other_than_slo_are_refused() {
        let pairs = vec![
            ("slo".to_owned(), "a,b".to_owned()),
            ("slo".to_owned(), "c".to_owned()),
        ];
        assert_eq!(slos_of_query(&pairs).unwrap(), ["a", "b", "c"]);
        let e = slos_of_query(&[("force".to_owned(), "true".to_owned())]).unwrap_err();
        assert!(e.1.contains("`force`"), "{}", e.1);
    }

    #[test]
    fn the_token_is_compared_whole() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret-longer"));
    }
}
