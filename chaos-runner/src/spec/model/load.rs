//! The built-in load generator (`spec.load`) and the checks that read its SLIs.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::*;

/// The longest window a `load` check may look back over (the load generator keeps this
/// much history).
pub const MAX_LOAD_WINDOW: Duration = Duration::from_secs(300);

/// The built-in load generator (`spec.load`): `players` virtual players send `rate`
/// requests per second in total (open loop) to the game API at `target`, in the
/// proportions of `mix`.
///
/// ```
/// let l: chaos_runner::spec::LoadSpec =
///     serde_json::from_value(serde_json::json!({"target": "http://127.0.0.1:18080", "rate": 100})).unwrap();
/// assert_eq!(l.players, 50);
/// assert_eq!(l.mix.save_write, 0.3);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadSpec {
    /// Base URL of the game API (`http://127.0.0.1:18080`); a loopback host unless
    /// `allowRemote` is set.
    pub target: String,
    /// Allow a target that is not on this machine.
    #[serde(default)]
    pub allow_remote: bool,
    /// Virtual players (1 to 100000). Each has at most one request in flight, so this is
    /// also the bound on requests in flight: a due request with no free player is counted
    /// as an error (`overflow`). Against an `http://` target each player keeps a connection
    /// of its own.
    #[serde(default = "default_players")]
    pub players: u32,
    /// Requests per second, all players together (1 to 100000).
    pub rate: u32,
    /// Relative weights of the request kinds.
    #[serde(default)]
    pub mix: LoadMix,
    /// Timeout of one request (10ms to 60s); a timeout is an error.
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

fn default_players() -> u32 {
    50
}

fn default_warmup() -> Duration {
    Duration::from_secs(2)
}

/// Relative weights of the request kinds of the load generator (each >= 0, sum > 0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadMix {
    /// Queue for a match, or poll the player's ticket.
    #[serde(default)]
    pub matchmaking: f64,
    /// Join the matched session, leave it, or list sessions.
    #[serde(default)]
    pub session: f64,
    /// Write the player's save.
    #[serde(default)]
    pub save_write: f64,
    /// Read the player's save (a player who never saved writes first).
    #[serde(default)]
    pub save_read: f64,
}

impl Default for LoadMix {
    fn default() -> Self {
        LoadMix {
            matchmaking: 0.3,
            session: 0.2,
            save_write: 0.3,
            save_read: 0.2,
        }
    }
}

/// Client-side SLIs of the load generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum LoadSli {
    /// Share of requests not failed (2xx and 429 count as available), 0 to 1.
    Availability,
    /// Share of requests failed (not 2xx, not 429, timeouts, overflow), 0 to 1.
    ErrorRate,
    /// 95th percentile latency in milliseconds, measured from the scheduled send time.
    LatencyP95,
    /// 99th percentile latency in milliseconds, measured from the scheduled send time.
    LatencyP99,
    /// Availability of the matchmaking calls (queue, poll ticket).
    MatchmakingSuccess,
    /// Availability of the save calls (write, read).
    SaveSuccess,
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
            LoadSli::LatencyP95 => "latencyP95",
            LoadSli::LatencyP99 => "latencyP99",
            LoadSli::MatchmakingSuccess => "matchmakingSuccess",
            LoadSli::SaveSuccess => "saveSuccess",
        }
    }
}

/// The game API calls the load generator makes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum LoadOperation {
    /// `POST /v1/matchmaking/queue`
    Queue,
    /// `GET /v1/matchmaking/tickets/{ticket}`
    PollTicket,
    /// `POST /v1/sessions/{match}/join`
    Join,
    /// `POST /v1/sessions/{match}/leave`
    Leave,
    /// `GET /v1/sessions`
    Sessions,
    /// `PUT /v1/players/{player}/save`
    SaveWrite,
    /// `GET /v1/players/{player}/save`
    SaveRead,
}

impl LoadOperation {
    /// Every operation, in report order.
    pub const ALL: [LoadOperation; 7] = [
        LoadOperation::Queue,
        LoadOperation::PollTicket,
        LoadOperation::Join,
        LoadOperation::Leave,
        LoadOperation::Sessions,
        LoadOperation::SaveWrite,
        LoadOperation::SaveRead,
    ];

    /// Position in [`LoadOperation::ALL`].
    ///
    /// ```
    /// use chaos_runner::spec::LoadOperation;
    /// assert_eq!(LoadOperation::ALL[LoadOperation::Join.index()], LoadOperation::Join);
    /// ```
    pub fn index(self) -> usize {
        self as usize
    }

    /// The name as written (`saveWrite`).
    ///
    /// ```
    /// assert_eq!(chaos_runner::spec::LoadOperation::PollTicket.name(), "pollTicket");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            LoadOperation::Queue => "queue",
            LoadOperation::PollTicket => "pollTicket",
            LoadOperation::Join => "join",
            LoadOperation::Leave => "leave",
            LoadOperation::Sessions => "sessions",
            LoadOperation::SaveWrite => "saveWrite",
            LoadOperation::SaveRead => "saveRead",
        }
    }
}

/// A check over the load generator's client-side SLIs: `sli <breachWhen> threshold` over
/// the last `window` is the bad state.
///
/// ```
/// let c: chaos_runner::spec::LoadCheck = serde_json::from_value(serde_json::json!(
///     {"sli": "errorRate", "window": "10s", "breachWhen": ">", "threshold": 0.01})).unwrap();
/// assert_eq!(c.sli, chaos_runner::spec::LoadSli::ErrorRate);
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
    /// Only this operation (not with `matchmakingSuccess` or `saveSuccess`).
    #[serde(default)]
    pub operation: Option<LoadOperation>,
    /// The comparison that means "breached".
    pub breach_when: Comparison,
    /// The threshold compared with (a share for availability and error rate, ms for
    /// latencies).
    pub threshold: f64,
    /// What a window without any request means.
    #[serde(default)]
    pub on_empty: OnEmpty,
}

fn default_load_window() -> Duration {
    Duration::from_secs(10)
}
