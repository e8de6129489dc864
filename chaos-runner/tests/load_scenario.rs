//! A user-defined scenario for an API that is not the game's: a shop's carts, on a real
//! socket. Templates (per-player and per-call variables, headers, JSON and text bodies),
//! captures feeding later steps, a step repeated while the answer says so, a weighted call
//! whose 404 counts as success, and group SLIs, all checked from the server's side.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chaos_runner::load::LoadGenerator;
use chaos_runner::spec::scenario::LoadPlan;
use chaos_runner::spec::{LoadSli, LoadSpec};

#[derive(Default)]
struct Shop {
    next: AtomicU64,
    /// Cart id to how many times it was read.
    carts: Mutex<HashMap<String, u32>>,
    /// What the server found wrong in what it was sent.
    wrong: Mutex<Vec<String>>,
    items: AtomicU64,
    ready_reads: AtomicU64,
    deleted: AtomicU64,
    notes: AtomicU64,
}

type Shared = Arc<Shop>;

impl Shop {
    fn wrong(&self, what: String) {
        self.wrong.lock().unwrap().push(what);
    }
}

fn router(shop: Shared) -> Router {
    Router::new()
        .route("/api/carts", post(create))
        .route("/api/carts/{id}", get(read).delete(delete))
        .route("/api/carts/{id}/items", post(add_item))
        .route("/api/carts/{id}/note", post(note))
        .route("/api/promo", get(|| async { StatusCode::NOT_FOUND }))
        .with_state(shop)
}

async fn create(
    State(shop): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !["k-eu", "k-us"].contains(&key) {
        shop.wrong(format!("api key `{key}`"));
    }
    if !body["customer"]
        .as_str()
        .is_some_and(|c| c.starts_with('p'))
    {
        shop.wrong(format!("customer in {body}"));
    }
    let id = format!("c-{}", shop.next.fetch_add(1, Ordering::Relaxed));
    shop.carts.lock().unwrap().insert(id.clone(), 0);
    (StatusCode::CREATED, Json(json!({ "cart": { "id": id } }))).into_response()
}

async fn add_item(
    State(shop): State<Shared>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> StatusCode {
    if !shop.carts.lock().unwrap().contains_key(&id) {
        shop.wrong(format!("items for unknown cart `{id}`"));
        return StatusCode::NOT_FOUND;
    }
    match body["qty"].as_i64() {
        Some(q) if (1..=5).contains(&q) => {}
        _ => shop.wrong(format!("qty in {body}")),
    }
    shop.items.fetch_add(1, Ordering::Relaxed);
    StatusCode::OK
}

async fn read(State(shop): State<Shared>, Path(id): Path<String>) -> Response {
    let mut carts = shop.carts.lock().unwrap();
    let Some(reads) = carts.get_mut(&id) else {
        shop.wrong(format!("read of unknown cart `{id}`"));
        return StatusCode::NOT_FOUND.into_response();
    };
    *reads += 1;
    // Pending for two reads, then ready.
    let state = if *reads > 2 { "ready" } else { "pending" };
    if state == "ready" {
        shop.ready_reads.fetch_add(1, Ordering::Relaxed);
    }
    Json(json!({ "state": state })).into_response()
}

async fn note(
    State(shop): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let typed = headers.get("content-type").and_then(|v| v.to_str().ok()) == Some("text/plain");
    let text = String::from_utf8_lossy(&body);
    if !typed || text != format!("gift wrap for {id}") {
        shop.wrong(format!("note `{text}` (text/plain: {typed})"));
    }
    shop.notes.fetch_add(1, Ordering::Relaxed);
    StatusCode::ACCEPTED
}

async fn delete(State(shop): State<Shared>, Path(id): Path<String>) -> StatusCode {
    match shop.carts.lock().unwrap().remove(&id) {
        Some(reads) if reads >= 3 => {
            shop.deleted.fetch_add(1, Ordering::Relaxed);
            StatusCode::NO_CONTENT
        }
        Some(reads) => {
            shop.wrong(format!(
                "cart `{id}` deleted after {reads} reads, before it was ready"
            ));
            StatusCode::NO_CONTENT
        }
        None => StatusCode::NOT_FOUND,
    }
}

fn start(shop: Shared) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/api", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, router(shop))
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
    });
    (url, tx)
}

const SCENARIO: &str = r#"
variables:
  region: { oneOf: [eu, us] }
  qty: { range: [1, 5], per: call }
operations:
  createCart:
    method: POST
    path: /carts
    headers: { x-api-key: "k-{{region}}" }
    json: { customer: "{{player}}", note: "call {{seq}}" }
    success: [201]
    group: checkout
    capture: { cart: /cart/id }
  addItem:
    method: POST
    path: "/carts/{{cart}}/items"
    json: { sku: "sku-{{playerNumber}}", qty: "{{qty}}" }
    group: checkout
  waitReady:
    path: "/carts/{{cart}}"
    group: checkout
  giftNote:
    method: POST
    path: "/carts/{{cart}}/note"
    text: "gift wrap for {{cart}}"
    group: checkout
  deleteCart:
    method: DELETE
    path: "/carts/{{cart}}"
    success: [2xx]
    group: checkout
  promo:
    path: /promo
    success: [2xx, 404]
    weight: 1
flows:
  checkout:
    weight: 4
    steps:
      - call: createCart
      - call: addItem
      - call: waitReady                     # a first read, whatever addItem answered
      - call: waitReady                     # then again while it says pending
        repeatWhile: { at: /state, equals: pending }
        maxRepeats: 5
      - call: waitReady
        think: 20ms
      - call: giftNote
      - call: deleteCart
"#;

#[test]
fn a_scenario_for_another_api_drives_it_as_written() {
    let shop: Shared = Arc::default();
    let (url, _stop) = start(shop.clone());
    let scenario: Value = serde_yaml::from_str(SCENARIO).unwrap();
    let spec: LoadSpec = serde_json::from_value(json!({
        "target": url, "rate": 150, "players": 20, "seed": 3, "scenario": scenario,
    }))
    .unwrap();
    let plan = LoadPlan::from_spec(spec).unwrap_or_else(|p| panic!("{p:?}"));
    let mut load = LoadGenerator::start(&plan, Instant::now(), Duration::from_secs(10)).unwrap();
    let stats = load.stats();
    std::thread::sleep(Duration::from_secs(4));
    let window = Duration::from_secs(10);
    assert_eq!(
        stats.sli(LoadSli::Availability, None, Some("checkout"), window),
        Some(1.0)
    );
    assert_eq!(
        stats.sli(LoadSli::Availability, Some("promo"), None, window),
        Some(1.0)
    );
    let report = load.stop();
    let wrong = shop.wrong.lock().unwrap().clone();
    assert!(wrong.is_empty(), "the server was sent: {wrong:?}");
    let count = |op: &str| {
        report
            .totals
            .iter()
            .find(|t| t.operation == op)
            .map_or(0, |t| t.success)
    };
    for op in [
        "createCart",
        "addItem",
        "waitReady",
        "giftNote",
        "deleteCart",
        "promo",
    ] {
        assert!(count(op) > 0, "no successful {op}: {:?}", report.totals);
    }
    // Each cart is read until ready (twice pending, then ready), then once more: the
    // repeated step ran as often as the answers said, and no more.
    assert!(
        count("waitReady") >= 3 * count("deleteCart"),
        "{:?}",
        report.totals
    );
    assert_eq!(shop.deleted.load(Ordering::Relaxed), count("deleteCart"));
    assert_eq!(shop.items.load(Ordering::Relaxed), count("addItem"));
    let all = report.totals.last().unwrap();
    assert_eq!((all.errors, all.rate_limited), (0, 0), "{all:?}");
}

#[test]
fn a_failed_step_ends_the_flow_and_the_next_call_starts_another() {
    let shop: Shared = Arc::default();
    let (url, _stop) = start(shop.clone());
    // `createCart` expects 200 but the shop answers 201: every cart creation fails, so no
    // later step of the flow (which needs the cart) is ever called.
    let scenario: Value =
        serde_yaml::from_str(&SCENARIO.replace("success: [201]", "success: [200]")).unwrap();
    let spec: LoadSpec = serde_json::from_value(json!({
        "target": url, "rate": 100, "players": 10, "seed": 3, "scenario": scenario,
    }))
    .unwrap();
    let plan = LoadPlan::from_spec(spec).unwrap_or_else(|p| panic!("{p:?}"));
    let mut load = LoadGenerator::start(&plan, Instant::now(), Duration::from_secs(10)).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let report = load.stop();
    let of = |op: &str| report.totals.iter().find(|t| t.operation == op).cloned();
    let create = of("createCart").expect("carts were created");
    assert_eq!(create.errors, create.count, "{create:?}");
    assert!(of("addItem").is_none(), "{:?}", report.totals);
    assert!(of("promo").is_some_and(|p| p.errors == 0));
    assert!(shop.wrong.lock().unwrap().is_empty());
}
