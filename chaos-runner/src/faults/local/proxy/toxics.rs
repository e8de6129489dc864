//! Toxic types and their attributes, in toxiproxy's v2 JSON shape
//! (`{"name", "type", "stream", "toxicity", "attributes": {...}}`), plus our own `loss`.
//!
//! Attribute units follow toxiproxy: milliseconds for `latency`, `jitter`, `delay`
//! (`slow_close`), `timeout`; KB/s for `rate`; microseconds for the slicer's `delay`; bytes
//! for `limit_data`. Unknown attributes are refused so a typo never silently means "no
//! effect".

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A toxic or proxy request that cannot be accepted, with the HTTP status toxiproxy gives.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status (400, 404, 409, 500).
    pub status: u16,
    /// What is wrong, naming the field.
    pub message: String,
}

impl ApiError {
    /// A 400 naming what is wrong.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            message: message.into(),
        }
    }
    /// A 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 404,
            message: message.into(),
        }
    }
    /// A 409.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 409,
            message: message.into(),
        }
    }
}

/// Which way a toxic acts: `upstream` (client to server) or `downstream` (server to client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Client to server.
    Upstream,
    /// Server to client (toxiproxy's default).
    #[default]
    Downstream,
}

impl Stream {
    /// `upstream` or `downstream`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }
}

/// What a toxic does, with its attributes.
#[derive(Debug, Clone, PartialEq)]
pub enum ToxicKind {
    /// Delays every chunk by `latency` plus a uniform random amount in `[-jitter, jitter]`.
    Latency {
        /// Added delay.
        latency: Duration,
        /// Random spread.
        jitter: Duration,
    },
    /// Limits throughput to `rate` KB/s (0 = no limit, as in toxiproxy).
    Bandwidth {
        /// KB (1000 bytes) per second.
        rate: u64,
    },
    /// Delays the close of the connection by `delay` after the source closed.
    SlowClose {
        /// Delay of the close.
        delay: Duration,
    },
    /// Holds all data; with a non-zero `timeout`, closes the connection after it. With 0 the
    /// data is held until the toxic is removed (a partition), then delivered.
    Timeout {
        /// Time before the connection is closed (0 = never).
        timeout: Duration,
    },
    /// Resets the connection (TCP RST) after `timeout`.
    ResetPeer {
        /// Time before the reset (0 = at once).
        timeout: Duration,
    },
    /// Cuts chunks into slices of `average_size +/- size_variation` bytes, `delay` apart.
    Slicer {
        /// Mean slice size in bytes (at least 1).
        average_size: u64,
        /// Spread of the slice size in bytes (below `average_size`).
        size_variation: u64,
        /// Pause between slices.
        delay: Duration,
    },
    /// Closes the connection once `bytes` bytes have passed.
    LimitData {
        /// Bytes let through.
        bytes: u64,
    },
    /// Ours: drops each chunk with `probability`, or, with a non-zero `delay`, delays it.
    Loss {
        /// Share of chunks hit (0 to 1).
        probability: f64,
        /// 0 = drop the chunk; else delay it by this much.
        delay: Duration,
    },
}

impl ToxicKind {
    /// The toxiproxy type name (`latency`, `bandwidth`, ..., and our `loss`).
    pub fn type_name(&self) -> &'static str {
        match self {
            ToxicKind::Latency { .. } => "latency",
            ToxicKind::Bandwidth { .. } => "bandwidth",
            ToxicKind::SlowClose { .. } => "slow_close",
            ToxicKind::Timeout { .. } => "timeout",
            ToxicKind::ResetPeer { .. } => "reset_peer",
            ToxicKind::Slicer { .. } => "slicer",
            ToxicKind::LimitData { .. } => "limit_data",
            ToxicKind::Loss { .. } => "loss",
        }
    }

    /// The attributes as toxiproxy writes them.
    pub fn attributes(&self) -> serde_json::Value {
        let ms = |d: &Duration| d.as_millis() as u64;
        match self {
            ToxicKind::Latency { latency, jitter } => {
                serde_json::json!({ "latency": ms(latency), "jitter": ms(jitter) })
            }
            ToxicKind::Bandwidth { rate } => serde_json::json!({ "rate": rate }),
            ToxicKind::SlowClose { delay } => serde_json::json!({ "delay": ms(delay) }),
            ToxicKind::Timeout { timeout } => serde_json::json!({ "timeout": ms(timeout) }),
            ToxicKind::ResetPeer { timeout } => serde_json::json!({ "timeout": ms(timeout) }),
            ToxicKind::Slicer {
                average_size,
                size_variation,
                delay,
            } => serde_json::json!({
                "average_size": average_size,
                "size_variation": size_variation,
                "delay": delay.as_micros() as u64,
            }),
            ToxicKind::LimitData { bytes } => serde_json::json!({ "bytes": bytes }),
            ToxicKind::Loss { probability, delay } => {
                serde_json::json!({ "probability": probability, "delay": ms(delay) })
            }
        }
    }

    /// Parses `attributes` for toxic type `type_name`. Missing attributes take toxiproxy's
    /// zero defaults; unknown ones and out-of-range values are refused with a 400 that
    /// names the attribute.
    ///
    /// ```
    /// use chaos_runner::faults::local::proxy::toxics::ToxicKind;
    /// let k = ToxicKind::parse("latency", &serde_json::json!({"latency": 100})).unwrap();
    /// assert_eq!(k.attributes()["latency"], 100);
    /// assert!(ToxicKind::parse("latency", &serde_json::json!({"latncy": 1})).is_err());
    /// assert!(ToxicKind::parse("nope", &serde_json::json!({})).is_err());
    /// ```
    pub fn parse(type_name: &str, attributes: &serde_json::Value) -> Result<ToxicKind, ApiError> {
        let empty = serde_json::Map::new();
        let map = match attributes {
            serde_json::Value::Object(m) => m,
            serde_json::Value::Null => &empty,
            _ => return Err(ApiError::bad_request("attributes: must be an object")),
        };
        let allowed: &[&str] = match type_name {
            "latency" => &["latency", "jitter"],
            "bandwidth" => &["rate"],
            "slow_close" => &["delay"],
            "timeout" | "reset_peer" => &["timeout"],
            "slicer" => &["average_size", "size_variation", "delay"],
            "limit_data" => &["bytes"],
            "loss" => &["probability", "delay"],
            other => {
                return Err(ApiError::bad_request(format!(
                    "invalid toxic type `{other}` (known: latency, bandwidth, slow_close, \
                     timeout, reset_peer, slicer, limit_data, loss)"
                )))
            }
        };
        if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ApiError::bad_request(format!(
                "attributes.{unknown}: not an attribute of {type_name} (it takes: {})",
                allowed.join(", ")
            )));
        }
        let int = |key: &str| -> Result<u64, ApiError> {
            match map.get(key) {
                None | Some(serde_json::Value::Null) => Ok(0),
                Some(v) => v
                    .as_u64()
                    .or_else(|| {
                        v.as_f64()
                            .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 1e15)
                            .map(|f| f as u64)
                    })
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "attributes.{key}: must be a non-negative integer, got {v}"
                        ))
                    }),
            }
        };
        let ms = |key: &str| int(key).map(Duration::from_millis);
        let kind = match type_name {
            "latency" => ToxicKind::Latency {
                latency: ms("latency")?,
                jitter: ms("jitter")?,
            },
            "bandwidth" => ToxicKind::Bandwidth { rate: int("rate")? },
            "slow_close" => ToxicKind::SlowClose {
                delay: ms("delay")?,
            },
            "timeout" => ToxicKind::Timeout {
                timeout: ms("timeout")?,
            },
            "reset_peer" => ToxicKind::ResetPeer {
                timeout: ms("timeout")?,
            },
            "slicer" => {
                let average_size = int("average_size")?;
                let size_variation = int("size_variation")?;
                if average_size == 0 {
                    return Err(ApiError::bad_request(
                        "attributes.average_size: must be at least 1",
                    ));
                }
                if size_variation >= average_size {
                    return Err(ApiError::bad_request(
                        "attributes.size_variation: must be below average_size",
                    ));
                }
                ToxicKind::Slicer {
                    average_size,
                    size_variation,
                    delay: Duration::from_micros(int("delay")?),
                }
            }
            "limit_data" => ToxicKind::LimitData {
                bytes: int("bytes")?,
            },
            _ => {
                let probability = match map.get("probability") {
                    None => 0.0,
                    Some(v) => v
                        .as_f64()
                        .filter(|p| (0.0..=1.0).contains(p))
                        .ok_or_else(|| {
                            ApiError::bad_request(format!(
                                "attributes.probability: must be a number from 0 to 1, got {v}"
                            ))
                        })?,
                };
                ToxicKind::Loss {
                    probability,
                    delay: ms("delay")?,
                }
            }
        };
        Ok(kind)
    }
}

/// One toxic on a proxy.
#[derive(Debug, Clone, PartialEq)]
pub struct Toxic {
    /// Unique on its proxy.
    pub name: String,
    /// Which way it acts.
    pub stream: Stream,
    /// Probability (0 to 1) that it applies to a given connection.
    pub toxicity: f64,
    /// What it does.
    pub kind: ToxicKind,
    /// Changes whenever the toxic is created or updated; connections roll their toxicity
    /// dice once per id.
    pub id: u64,
}

/// A toxic as the API reads and writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToxicJson {
    /// Name (default `<type>_<stream>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Toxic type.
    #[serde(rename = "type", default)]
    pub toxic_type: String,
    /// `upstream` or `downstream` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// Probability per connection (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toxicity: Option<f64>,
    /// Type-specific attributes.
    #[serde(default)]
    pub attributes: serde_json::Value,
}

impl Toxic {
    /// Builds a toxic from its API form, applying toxiproxy's defaults.
    ///
    /// ```
    /// use chaos_runner::faults::local::proxy::toxics::{Stream, Toxic, ToxicJson};
    /// let t = Toxic::from_json(&ToxicJson {
    ///     name: None, toxic_type: "timeout".into(), stream: None, toxicity: None,
    ///     attributes: serde_json::json!({"timeout": 0}),
    /// }, 1).unwrap();
    /// assert_eq!(t.name, "timeout_downstream");
    /// assert_eq!(t.stream, Stream::Downstream);
    /// ```
    pub fn from_json(json: &ToxicJson, id: u64) -> Result<Toxic, ApiError> {
        if json.toxic_type.is_empty() {
            return Err(ApiError::bad_request("type: missing required field"));
        }
        let stream = match json.stream.as_deref() {
            None | Some("") | Some("downstream") => Stream::Downstream,
            Some("upstream") => Stream::Upstream,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "stream: `{other}` is invalid, can be either upstream or downstream"
                )))
            }
        };
        let toxicity = json.toxicity.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&toxicity) {
            return Err(ApiError::bad_request(format!(
                "toxicity: must be from 0 to 1, got {toxicity}"
            )));
        }
        let kind = ToxicKind::parse(&json.toxic_type, &json.attributes)?;
        let name = match json.name.as_deref() {
            Some(n) if !n.is_empty() => n.to_owned(),
            _ => format!("{}_{}", json.toxic_type, stream.as_str()),
        };
        Ok(Toxic {
            name,
            stream,
            toxicity,
            kind,
            id,
        })
    }

    /// The API form of this toxic.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "type": self.kind.type_name(),
            "stream": self.stream.as_str(),
            "toxicity": self.toxicity,
            "attributes": self.kind.attributes(),
        })
    }
}
