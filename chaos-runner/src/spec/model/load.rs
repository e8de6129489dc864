//! The built-in load generator (`spec.load`): its scenario of HTTP calls, its WebSocket
//! sessions, and the checks that read its SLIs.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

use super::*;

/// The longest window a `load` check may look back over (the load generator keeps this
/// much history).
pub const MAX_LOAD_WINDOW: Duration = Duration::from_secs(300);

/// The built-in load generator (`spec.load`): `players` virtual players walk the flows of
/// a scenario against the API at `target`, `rate` calls per second in total (open loop),
/// and/or hold `websocket` sessions open.
///
/// ```
/// let l: chaos_runner::spec::LoadSpec = serde_json::from_value(serde_json::json!({
///     "target": "http://127.0.0.1:18080", "rate": 100,
///     "scenarioFile": "../load/game-api.yaml"})).unwrap();
/// assert_eq!(l.players, 50);
/// assert_eq!(l.rate, Some(100));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadSpec {
    /// Base URL of the API (`http://127.0.0.1:18080`); a loopback host unless
    /// `allowRemote` is set.
    pub target: String,
    /// Allow a target that is not on this machine.
    #[serde(default)]
    pub allow_remote: bool,
    /// Virtual players making HTTP calls (1 to 100000). Each has at most one call in
    /// flight, so this is also the bound on calls in flight: a due call with no free player
    /// is counted as an error (`overflow`). Against an `http://` target each player keeps
    /// a connection of its own.
    #[serde(default = "default_players")]
    pub players: u32,
    /// HTTP calls per second, all players together (1 to 100000); needed with a scenario.
    #[serde(default)]
    pub rate: Option<u32>,
    /// The HTTP calls, written here.
    #[serde(default)]
    pub scenario: Option<ScenarioSpec>,
    /// Or a `kind: LoadScenario` file holding them, relative to the experiment file
    /// (`experiments/load/game-api.yaml` is the example game server's).
    #[serde(default)]
    pub scenario_file: Option<String>,
    /// WebSocket sessions held open for the whole run.
    #[serde(default)]
    pub websocket: Option<WebSocketSpec>,
    /// Timeout of one call (10ms to 60s) unless its operation sets one; a timeout is an
    /// error.
    #[serde(default = "default_query_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub timeout: Duration,
    /// How long the load runs before the steady-state checks (0 to 10m), so their
    /// windows hold data.
    #[serde(default = "default_warmup", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub warmup: Duration,
    /// Seed of the players' random choices (a run is repeatable with the same seed).
    #[serde(default)]
    pub seed: Option<u64>,
}

/// The default `load.timeout`.
pub(crate) fn default_load_timeout() -> Duration {
    default_query_timeout()
}

fn default_players() -> u32 {
    50
}

fn default_warmup() -> Duration {
    Duration::from_secs(2)
}

/// A load scenario file (`kind: LoadScenario`): a scenario shared by experiments.
///
/// ```
/// let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../experiments/load/game-api.yaml")).unwrap();
/// let doc = chaos_runner::spec::parse_scenario_file("game-api.yaml", &text).unwrap();
/// assert!(doc.spec.operations.contains_key("queue"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScenarioFile {
    /// Must be `chaos.game-resilience.dev/v1`.
    pub api_version: String,
    /// Must be `LoadScenario`.
    pub kind: String,
    /// Name and description.
    pub metadata: Metadata,
    /// The scenario.
    pub spec: ScenarioSpec,
}

/// What the players call: named operations, and how players walk them (weighted flows,
/// or operations called on their own by `weight`).
///
/// ```
/// let s: chaos_runner::spec::ScenarioSpec = serde_json::from_value(serde_json::json!({
///     "operations": {"health": {"path": "/healthz", "weight": 1}}})).unwrap();
/// assert_eq!(s.operations["health"].method, "GET");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScenarioSpec {
    /// Per-player (or per-call) values the templates use as `{{name}}`.
    #[serde(default)]
    pub variables: BTreeMap<String, VariableSpec>,
    /// The calls, by name (letters, digits, `_`, `-`).
    pub operations: BTreeMap<String, OperationSpec>,
    /// Ordered walks through operations, by name; a player starts the next one (drawn by
    /// weight, together with the operations that have a `weight`) when one ends.
    #[serde(default)]
    pub flows: BTreeMap<String, FlowSpec>,
}

/// A template variable: a random whole number in `range` (both ends included) or one of
/// `oneOf`, drawn once per player or for every call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VariableSpec {
    /// `[low, high]`, both included.
    #[serde(default)]
    pub range: Option<[i64; 2]>,
    /// Values to pick from, evenly.
    #[serde(default)]
    pub one_of: Option<Vec<serde_json::Value>>,
    /// Drawn once per `player` (the default) or for every `call`.
    #[serde(default)]
    pub per: VariableScope,
}

/// How often a variable is drawn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum VariableScope {
    /// Once per player, for the whole run.
    #[default]
    Player,
    /// Anew for every call.
    Call,
}

/// One HTTP call. Templates (`path`, header values, `json` strings, `text`) take
/// `{{player}}` (`p<n>`), `{{playerNumber}}`, `{{seq}}` (the player's call count), the
/// scenario's variables and values captured by earlier steps of the flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperationSpec {
    /// HTTP method (`GET` unless given).
    #[serde(default = "default_method")]
    pub method: String,
    /// Path under the target, a template starting with `/`.
    pub path: String,
    /// Request headers; values are templates.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A JSON body; string values are templates (a string that is only `{{name}}` takes
    /// the value's own type, so a number stays a number).
    #[serde(default)]
    pub json: Option<serde_json::Value>,
    /// A text body (a template).
    #[serde(default)]
    pub text: Option<String>,
    /// Weight when called on its own, outside flows (0: only in flows).
    #[serde(default)]
    pub weight: f64,
    /// The group whose SLIs it counts in (`matchmaking`, `save`, ...).
    #[serde(default)]
    pub group: Option<String>,
    /// Statuses that count as success: codes (`404`) or classes (`2xx`); default `2xx`.
    /// A 429 not listed here is counted apart, as rate limited.
    #[serde(default = "default_success")]
    pub success: Vec<StatusMatch>,
    /// Timeout of this call (default: `load.timeout`).
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
    /// Values to keep from a successful JSON answer for later steps of the flow: name to
    /// JSON pointer (`ticket: /ticket`). A pointer the answer lacks leaves the value unset.
    #[serde(default)]
    pub capture: BTreeMap<String, String>,
}

fn default_method() -> String {
    "GET".to_owned()
}

fn default_success() -> Vec<StatusMatch> {
    vec![StatusMatch::Class("2xx".to_owned())]
}

/// A status code (`404`) or class (`2xx`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum StatusMatch {
    /// One code.
    Code(u16),
    /// A class: `1xx` to `5xx`.
    Class(String),
}

/// An ordered walk through operations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlowSpec {
    /// Relative weight among flows and weighted operations (default 1).
    #[serde(default = "default_weight")]
    pub weight: f64,
    /// The steps. A failed step (or one whose captured value is missing) ends the flow.
    pub steps: Vec<StepSpec>,
}

fn default_weight() -> f64 {
    1.0
}

/// One step of a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StepSpec {
    /// The operation called.
    pub call: String,
    /// The player waits this long before the call (it holds no call in flight meanwhile,
    /// but is not free for another).
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub think: Option<Duration>,
    /// Call this step (again) while the player's last answer matches; skipped when it does
    /// not (e.g. poll a ticket while the answer says `queued`).
    #[serde(default)]
    pub repeat_while: Option<AnswerMatch>,
    /// At most this many calls of a repeated step (default 10).
    #[serde(default = "default_max_repeats")]
    pub max_repeats: u32,
}

fn default_max_repeats() -> u32 {
    10
}

/// The JSON answer has `equals` at pointer `at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnswerMatch {
    /// A JSON pointer (`/status`).
    pub at: String,
    /// The value there.
    pub equals: serde_json::Value,
}

/// WebSocket sessions: `sessions` players each open a WebSocket at `path` (a template on
/// the target, `ws://` for `http://`), hold it for the whole run and send `messages` on
/// their schedules, timing each answer matched by a field.
///
/// ```
/// let w: chaos_runner::spec::WebSocketSpec = serde_json::from_value(serde_json::json!({
///     "path": "/v1/lobby/ws?player={{player}}", "sessions": 100,
///     "messages": [{"name": "heartbeat", "every": "5s",
///                   "json": {"type": "ping", "id": "{{seq}}"}, "replyMatch": "/id"}]})).unwrap();
/// assert_eq!(w.connect_rate, 1000);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebSocketSpec {
    /// Path under the target, a template (`{{player}}`, `{{playerNumber}}`, variables).
    pub path: String,
    /// Sessions to hold (1 to 200000).
    pub sessions: u32,
    /// New sessions opened per second while ramping up (1 to 100000; default 1000).
    #[serde(default = "default_connect_rate")]
    pub connect_rate: u32,
    /// Per-session values the templates use (as in a scenario; `per: call` draws one for
    /// every message).
    #[serde(default)]
    pub variables: BTreeMap<String, VariableSpec>,
    /// Messages each session sends on a schedule.
    #[serde(default)]
    pub messages: Vec<WebSocketMessageSpec>,
    /// Local addresses to connect from, in turn (each gives about 28,000 ports towards one
    /// target); default: the runner picks 127.0.0.1 up to 127.0.0.N for a loopback IPv4
    /// target with more sessions than one address has ports.
    #[serde(default)]
    pub source_addresses: Vec<std::net::IpAddr>,
    /// The group message SLIs count in (default `websocket`).
    #[serde(default = "default_ws_group")]
    pub group: String,
}

fn default_connect_rate() -> u32 {
    1000
}

fn default_ws_group() -> String {
    "websocket".to_owned()
}

/// A message a session sends every `every`, timed until the answer whose `replyMatch`
/// field equals the one sent (no `replyMatch`: sent, not timed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebSocketMessageSpec {
    /// Name (its operation in the SLIs and the report).
    pub name: String,
    /// Interval (100ms to 1h); each session starts at a random point of it.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub every: Duration,
    /// A JSON text message (string values are templates; `{{seq}}` counts the session's
    /// messages).
    #[serde(default)]
    pub json: Option<serde_json::Value>,
    /// Or a text message (a template).
    #[serde(default)]
    pub text: Option<String>,
    /// JSON pointer of the field matching the answer to the message (`/id`).
    #[serde(default)]
    pub reply_match: Option<String>,
    /// No answer within this long is an error (default: `load.timeout`).
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
}

/// Client-side SLIs of the load generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum LoadSli {
    /// Share of calls (or timed messages) not failed (2xx and 429 count as available), 0
    /// to 1.
    Availability,
    /// Share of calls failed (not a success status, not 429, timeouts, overflow), 0 to 1.
    ErrorRate,
    /// Median latency in milliseconds, measured from the scheduled send time.
    LatencyP50,
    /// 95th percentile latency in milliseconds, measured from the scheduled send time.
    LatencyP95,
    /// 99th percentile latency in milliseconds, measured from the scheduled send time.
    LatencyP99,
    /// Share of WebSocket connection attempts in the window that were established, 0 to 1.
    SessionsEstablished,
    /// Share of the wanted WebSocket sessions open now, 0 to 1.
    SessionsHeld,
    /// WebSocket sessions lost in the window (closed by the server or broken).
    Disconnects,
}

impl LoadSli {
    /// The name as written.
    ///
    /// ```
    /// assert_eq!(chaos_runner::spec::LoadSli::LatencyP95.name(), "latencyP95");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            LoadSli::Availability => "availability",
            LoadSli::ErrorRate => "errorRate",
            LoadSli::LatencyP50 => "latencyP50",
            LoadSli::LatencyP95 => "latencyP95",
            LoadSli::LatencyP99 => "latencyP99",
            LoadSli::SessionsEstablished => "sessionsEstablished",
            LoadSli::SessionsHeld => "sessionsHeld",
            LoadSli::Disconnects => "disconnects",
        }
    }

    /// Whether it reads the WebSocket sessions (not calls, so no `operation` or `group`).
    pub fn is_session(self) -> bool {
        matches!(
            self,
            LoadSli::SessionsEstablished | LoadSli::SessionsHeld | LoadSli::Disconnects
        )
    }
}

/// A check over the load generator's client-side SLIs: `sli <breachWhen> threshold` over
/// the last `window` is the bad state; for one `operation` or `group` of the scenario (or
/// the WebSocket messages) or all calls.
///
/// ```
/// let c: chaos_runner::spec::LoadCheck = serde_json::from_value(serde_json::json!(
///     {"sli": "availability", "group": "matchmaking", "window": "10s", "breachWhen": "<", "threshold": 0.95})).unwrap();
/// assert_eq!(c.group.as_deref(), Some("matchmaking"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadCheck {
    /// Which SLI.
    pub sli: LoadSli,
    /// Look-back window, in whole 1 s slices (1s to 5m; default 10s), plus the slice under
    /// way.
    #[serde(default = "default_load_window", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub window: Duration,
    /// Only this operation of the scenario (or WebSocket message).
    #[serde(default)]
    pub operation: Option<String>,
    /// Only the operations of this group.
    #[serde(default)]
    pub group: Option<String>,
    /// The comparison that means "breached".
    pub breach_when: Comparison,
    /// The threshold compared with (a share for availability and error rate, ms for
    /// latencies).
    pub threshold: f64,
    /// What a window without any request means.
    #[serde(default)]
    pub on_empty: OnEmpty,
}

impl LoadCheck {
    /// What it is computed over, for people: `` of `queue` ``, `` of group `save` `` or
    /// nothing for every call.
    ///
    /// ```
    /// let c: chaos_runner::spec::LoadCheck = serde_json::from_value(serde_json::json!(
    ///     {"sli": "availability", "group": "save", "breachWhen": "<", "threshold": 0.99})).unwrap();
    /// assert_eq!(c.scope_text(), " of group `save`");
    /// ```
    pub fn scope_text(&self) -> String {
        match (&self.operation, &self.group) {
            (Some(op), _) => format!(" of `{op}`"),
            (None, Some(g)) => format!(" of group `{g}`"),
            (None, None) => String::new(),
        }
    }
}

fn default_load_window() -> Duration {
    Duration::from_secs(10)
}
