//! The toxiproxy v2 JSON forms of toxics and proxies, and their conversion to and from the
//! typed [`Toxic`]: the only place where a toxic is JSON.
//!
//! Attribute units follow toxiproxy: milliseconds for `latency`, `jitter`, `delay`
//! (`slow_close`, `loss`), `timeout`; KB/s for `rate`; microseconds for the slicer's
//! `delay`; bytes for `limit_data`. Unknown attributes are refused so a typo never silently
//! means "no effect".

use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::toxics::{check_slicer, Stream, Toxic, ToxicError, ToxicKind};
use crate::{ApiError, Protocol, ProxyView};

/// A toxic as the API reads and writes it.
///
/// ```
/// use fault_proxy::api::ToxicJson;
/// use fault_proxy::toxics::Stream;
/// let json: ToxicJson = serde_json::from_str(r#"{"type": "timeout", "attributes": {"timeout": 0}}"#).unwrap();
/// let t = json.to_toxic().unwrap();
/// assert_eq!(t.name, "timeout_downstream");
/// assert_eq!(t.stream, Stream::Downstream);
/// ```
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

impl ToxicJson {
    /// The typed toxic, applying toxiproxy's defaults; a 400 naming the field when it
    /// cannot be one.
    pub fn to_toxic(&self) -> Result<Toxic, ApiError> {
        if self.toxic_type.is_empty() {
            return Err(ApiError::bad_request("type: missing required field"));
        }
        let stream = match self.stream.as_deref() {
            None | Some("") | Some("downstream") => Stream::Downstream,
            Some("upstream") => Stream::Upstream,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "stream: `{other}` is invalid, can be either upstream or downstream"
                )))
            }
        };
        let toxicity = self.toxicity.unwrap_or(1.0);
        // The toxicity is checked before the attributes, as toxiproxy does.
        if !(0.0..=1.0).contains(&toxicity) {
            return Err(ToxicError::Toxicity(toxicity).into());
        }
        let kind = parse_kind(&self.toxic_type, &self.attributes)?;
        let name = match self.name.as_deref() {
            Some(n) if !n.is_empty() => n.to_owned(),
            _ => format!("{}_{}", self.toxic_type, stream.as_str()),
        };
        let toxic = Toxic {
            name,
            stream,
            toxicity,
            kind,
        };
        toxic.check()?;
        Ok(toxic)
    }

    /// The JSON form of `toxic`.
    pub fn from_toxic(toxic: &Toxic) -> ToxicJson {
        ToxicJson {
            name: Some(toxic.name.clone()),
            toxic_type: toxic.kind.type_name().to_owned(),
            stream: Some(toxic.stream.as_str().to_owned()),
            toxicity: Some(toxic.toxicity),
            attributes: attributes(&toxic.kind),
        }
    }
}

/// The toxic as the API shows it (every field present).
///
/// ```
/// use fault_proxy::toxics::{Toxic, ToxicKind};
/// let t = Toxic::new("lat", ToxicKind::Latency { latency: std::time::Duration::from_millis(10), jitter: Default::default() });
/// let v = fault_proxy::api::toxic_value(&t);
/// assert_eq!(v["attributes"]["latency"], 10);
/// assert_eq!(v["stream"], "downstream");
/// ```
pub fn toxic_value(toxic: &Toxic) -> serde_json::Value {
    serde_json::json!({
        "name": toxic.name,
        "type": toxic.kind.type_name(),
        "stream": toxic.stream.as_str(),
        "toxicity": toxic.toxicity,
        "attributes": attributes(&toxic.kind),
    })
}

/// `old` updated by `patch` (toxiproxy's `POST /proxies/{p}/toxics/{t}`): the given
/// attributes, `toxicity` and `stream` replace the old ones, the rest stay.
pub fn merge(old: &Toxic, patch: &ToxicJson) -> Result<Toxic, ApiError> {
    let mut attributes = attributes(&old.kind);
    if let (Some(into), serde_json::Value::Object(new)) =
        (attributes.as_object_mut(), &patch.attributes)
    {
        for (k, v) in new {
            into.insert(k.clone(), v.clone());
        }
    }
    ToxicJson {
        name: Some(old.name.clone()),
        toxic_type: old.kind.type_name().to_owned(),
        stream: Some(
            patch
                .stream
                .clone()
                .unwrap_or_else(|| old.stream.as_str().to_owned()),
        ),
        toxicity: Some(patch.toxicity.unwrap_or(old.toxicity)),
        attributes,
    }
    .to_toxic()
}

/// The attributes of `kind` as toxiproxy writes them.
pub fn attributes(kind: &ToxicKind) -> serde_json::Value {
    let ms = |d: &Duration| d.as_millis() as u64;
    match kind {
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
/// zero defaults; unknown ones and out-of-range values are refused with a 400 that names
/// the attribute.
///
/// ```
/// use fault_proxy::api::{attributes, parse_kind};
/// let k = parse_kind("latency", &serde_json::json!({"latency": 100})).unwrap();
/// assert_eq!(attributes(&k)["latency"], 100);
/// assert!(parse_kind("latency", &serde_json::json!({"latncy": 1})).is_err());
/// assert!(parse_kind("nope", &serde_json::json!({})).is_err());
/// ```
pub fn parse_kind(type_name: &str, attributes: &serde_json::Value) -> Result<ToxicKind, ApiError> {
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
            check_slicer(average_size, size_variation)?;
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

/// A proxy as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProxyJson {
    /// Name.
    pub name: String,
    /// The address it listens on (the bound port when `:0` was asked).
    pub listen: String,
    /// Upstream `host:port`.
    pub upstream: String,
    /// Accepting connections.
    pub enabled: bool,
    /// Relay protocol.
    pub protocol: Protocol,
    /// Its toxics, in toxiproxy's JSON.
    pub toxics: Vec<serde_json::Value>,
}

impl From<&ProxyView> for ProxyJson {
    fn from(view: &ProxyView) -> ProxyJson {
        ProxyJson {
            name: view.name.clone(),
            listen: view.listen.clone(),
            upstream: view.upstream.clone(),
            enabled: view.enabled,
            protocol: view.protocol,
            toxics: view.toxics.iter().map(toxic_value).collect(),
        }
    }
}
