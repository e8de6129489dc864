//! The service's Prometheus metrics (names fixed by the contract in the issue) and the
//! resilience policies' metrics, in one prometheus-client registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use resilience::metrics::ResilienceMetrics;
use std::sync::Arc;

/// Request duration buckets, in seconds (include the SLO's 0.5 s).
pub const DURATION_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TypeLabels {
    r#type: &'static str,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// How a matchmaking request ended (`game_matchmaking_total{result}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchResult {
    /// Paired at once.
    Matched,
    /// Waiting with a ticket.
    Queued,
    /// Refused (pool full).
    Failed,
}

/// How a save write ended (`game_saves_total{result}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveResult {
    /// Written to the database.
    Stored,
    /// Acknowledged into the write-behind queue.
    Queued,
    /// Refused (queue full, spool unwritable).
    Failed,
}

/// What a lobby message was (`game_lobby_messages_total{type}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LobbyMessage {
    /// A `{"type":"ping"}` message, answered with a pong.
    Ping,
    /// A `{"type":"chat"}` message, answered with an ack.
    Chat,
    /// Anything answered with an error reply (not JSON, unknown type, missing id, chat
    /// text too long, a binary message).
    Invalid,
}

impl LobbyMessage {
    /// The `type` label's value: `ping`, `chat` or `invalid`.
    ///
    /// ```
    /// assert_eq!(game_server::metrics::LobbyMessage::Invalid.label(), "invalid");
    /// ```
    pub fn label(self) -> &'static str {
        match self {
            LobbyMessage::Ping => "ping",
            LobbyMessage::Chat => "chat",
            LobbyMessage::Invalid => "invalid",
        }
    }
}

/// Every metric of the service. Cheap to clone.
///
/// ```
/// let metrics = game_server::metrics::Metrics::new();
/// metrics.count_save(game_server::metrics::SaveResult::Stored);
/// let text = metrics.encode().unwrap();
/// assert!(text.contains(r#"game_saves_total{result="stored"} 1"#));
/// ```
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    durations: HistogramFamily,
    matchmaking: Family<ResultLabels, Counter>,
    saves: Family<ResultLabels, Counter>,
    /// Saves waiting in the write-behind queue.
    pub save_queue_depth: Gauge,
    /// Sessions with at least one player.
    pub active_sessions: Gauge,
    /// WebSocket lobby sessions open now (`game_lobby_sessions`).
    pub lobby_sessions: Gauge,
    lobby_messages: Family<TypeLabels, Counter>,
    /// The resilience policies' metric families (same registry).
    pub resilience: ResilienceMetrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every family.
    ///
    /// ```
    /// let _ = game_server::metrics::Metrics::new();
    /// ```
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let resilience = ResilienceMetrics::register(&mut registry);
        let requests = Family::<RequestLabels, Counter>::default();
        let durations: HistogramFamily = Family::new_with_constructor(duration_histogram);
        let matchmaking = Family::<ResultLabels, Counter>::default();
        let saves = Family::<ResultLabels, Counter>::default();
        let save_queue_depth = Gauge::default();
        let active_sessions = Gauge::default();
        let lobby_sessions = Gauge::default();
        let lobby_messages = Family::<TypeLabels, Counter>::default();
        let game = registry.sub_registry_with_prefix("game");
        game.register(
            "http_requests",
            "HTTP requests by route, method and outcome (success, error, rate_limited)",
            requests.clone(),
        );
        game.register(
            "http_request_duration_seconds",
            "HTTP request duration by route",
            durations.clone(),
        );
        game.register(
            "matchmaking",
            "Matchmaking requests by result (matched, queued, failed)",
            matchmaking.clone(),
        );
        game.register(
            "saves",
            "Player save writes by result (stored, queued, failed)",
            saves.clone(),
        );
        game.register(
            "save_queue_depth",
            "Saves waiting in the write-behind queue",
            save_queue_depth.clone(),
        );
        game.register(
            "active_sessions",
            "Sessions with at least one player",
            active_sessions.clone(),
        );
        game.register(
            "lobby_sessions",
            "WebSocket lobby sessions open now",
            lobby_sessions.clone(),
        );
        game.register(
            "lobby_messages",
            "WebSocket lobby messages received, by type (ping, chat, invalid)",
            lobby_messages.clone(),
        );
        // Every documented series exists from the start, at zero.
        for result in ["matched", "queued", "failed"] {
            let _ = matchmaking.get_or_create(&ResultLabels { result });
        }
        for result in ["stored", "queued", "failed"] {
            let _ = saves.get_or_create(&ResultLabels { result });
        }
        for kind in [
            LobbyMessage::Ping,
            LobbyMessage::Chat,
            LobbyMessage::Invalid,
        ] {
            let _ = lobby_messages.get_or_create(&TypeLabels {
                r#type: kind.label(),
            });
        }
        Metrics {
            registry: Arc::new(registry),
            requests,
            durations,
            matchmaking,
            saves,
            save_queue_depth,
            active_sessions,
            lobby_sessions,
            lobby_messages,
            resilience,
        }
    }

    /// Counts one HTTP request: 2xx (and 101, a WebSocket upgrade) is a success, 429 rate
    /// limited, anything else an error.
    ///
    /// ```
    /// let m = game_server::metrics::Metrics::new();
    /// m.observe_request("/v1/sessions", "GET", 200, 0.003);
    /// assert!(m.encode().unwrap().contains(r#"game_http_requests_total{route="/v1/sessions",method="GET",outcome="success"} 1"#));
    /// ```
    pub fn observe_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let outcome = match status {
            101 | 200..=299 => "success",
            429 => "rate_limited",
            _ => "error",
        };
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                outcome,
            })
            .inc();
        self.durations
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// Counts one matchmaking request.
    ///
    /// ```
    /// game_server::metrics::Metrics::new().count_match(game_server::metrics::MatchResult::Queued);
    /// ```
    pub fn count_match(&self, result: MatchResult) {
        let result = match result {
            MatchResult::Matched => "matched",
            MatchResult::Queued => "queued",
            MatchResult::Failed => "failed",
        };
        self.matchmaking
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// Counts one save write.
    ///
    /// ```
    /// game_server::metrics::Metrics::new().count_save(game_server::metrics::SaveResult::Queued);
    /// ```
    pub fn count_save(&self, result: SaveResult) {
        let result = match result {
            SaveResult::Stored => "stored",
            SaveResult::Queued => "queued",
            SaveResult::Failed => "failed",
        };
        self.saves.get_or_create(&ResultLabels { result }).inc();
    }

    /// Counts one message received on a lobby session.
    ///
    /// ```
    /// use game_server::metrics::{LobbyMessage, Metrics};
    /// let m = Metrics::new();
    /// m.count_lobby_message(LobbyMessage::Ping);
    /// assert!(m.encode().unwrap().contains(r#"game_lobby_messages_total{type="ping"} 1"#));
    /// ```
    pub fn count_lobby_message(&self, kind: LobbyMessage) {
        self.lobby_messages
            .get_or_create(&TypeLabels {
                r#type: kind.label(),
            })
            .inc();
    }

    /// The registry in the OpenMetrics text format.
    ///
    /// ```
    /// let text = game_server::metrics::Metrics::new().encode().unwrap();
    /// assert!(text.ends_with("# EOF\n"));
    /// ```
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}
