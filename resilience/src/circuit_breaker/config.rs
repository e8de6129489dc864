//! Circuit breaker settings, in code or from YAML.

use rand::Rng;
use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::config::{check, ConfigError};

/// The sliding window the failure and slow-call rates are computed over.
///
/// ```
/// use resilience::circuit_breaker::WindowConfig;
/// use std::time::Duration;
/// let last_100 = WindowConfig::Count { size: 100 };
/// let last_10s = WindowConfig::Time { length: Duration::from_secs(10), buckets: 10 };
/// # let _ = (last_100, last_10s);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", try_from = "RawWindow")]
pub enum WindowConfig {
    /// The last `size` calls.
    Count {
        /// Number of calls in the window (1 to 1,000,000).
        size: u32,
    },
    /// The calls of the last `length`, kept in `buckets` equal buckets.
    Time {
        /// How far back the window reaches (100 ms to 1 h).
        #[serde(with = "humantime_serde")]
        length: Duration,
        /// Number of buckets (1 to 1,000); the window slides by `length / buckets`.
        #[serde(default = "default_buckets")]
        buckets: u32,
    },
}

fn default_buckets() -> u32 {
    10
}

/// The kinds of window, as written in YAML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum WindowKind {
    Count,
    Time,
}

/// A window as written: every kind's fields side by side, so the parser keeps the path and
/// line of each (a tagged enum buffers its content and loses them); [`WindowConfig`] is
/// made from it, checking each field belongs to the kind.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    kind: WindowKind,
    size: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    length: Option<Duration>,
    buckets: Option<u32>,
}

impl TryFrom<RawWindow> for WindowConfig {
    type Error = FieldError;

    fn try_from(raw: RawWindow) -> Result<Self, FieldError> {
        match raw.kind {
            WindowKind::Count => {
                only_for(raw.length.is_some(), "length", "kind: time")?;
                only_for(raw.buckets.is_some(), "buckets", "kind: time")?;
                Ok(WindowConfig::Count {
                    size: raw.size.ok_or(FieldError::missing("size", "kind: count"))?,
                })
            }
            WindowKind::Time => {
                only_for(raw.size.is_some(), "size", "kind: count")?;
                Ok(WindowConfig::Time {
                    length: raw
                        .length
                        .ok_or(FieldError::missing("length", "kind: time"))?,
                    buckets: raw.buckets.unwrap_or_else(default_buckets),
                })
            }
        }
    }
}

/// A problem with one field of a section whose shape depends on its `kind`, reported by the
/// YAML loader at that field's own path and line (see `config::from_yaml`).
#[derive(Debug)]
pub(crate) struct FieldError {
    field: &'static str,
    message: String,
}

impl FieldError {
    fn missing(field: &'static str, kind: &str) -> FieldError {
        FieldError {
            field,
            message: format!("`{field}` is required with {kind}"),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}{}: {}",
            crate::config::FIELD_MARK,
            self.field,
            self.message
        )
    }
}

/// Refuses `field` when `present`: it belongs to `kind`, not to the one given.
fn only_for(present: bool, field: &'static str, kind: &str) -> Result<(), FieldError> {
    if present {
        return Err(FieldError {
            field,
            message: format!("`{field}` applies to {kind} only"),
        });
    }
    Ok(())
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig::Count { size: 100 }
    }
}

/// How long the breaker stays open after a trip. Repeated trips (a failed half-open probe)
/// take the next value, so they back off; closing again starts over. Durations keep their
/// sub-second part.
///
/// ```
/// use resilience::circuit_breaker::OpenBackoff;
/// use std::time::Duration;
/// let backoff = OpenBackoff::Exponential { start: Duration::from_secs(5), max: Duration::from_secs(60) };
/// # let _ = backoff;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", try_from = "RawBackoff")]
pub enum OpenBackoff {
    /// Always the same duration.
    Constant {
        /// Open duration.
        #[serde(with = "humantime_serde")]
        duration: Duration,
    },
    /// Doubling from `start` (at least 1 ms) up to `max`, to the nanosecond.
    Exponential {
        /// First open duration.
        #[serde(with = "humantime_serde")]
        start: Duration,
        /// Longest open duration.
        #[serde(with = "humantime_serde")]
        max: Duration,
    },
    /// Like `exponential`, with half of each step jittered so that many instances do not
    /// probe a recovering dependency at the same moment: each open duration is between
    /// half the step and the step ("equal jitter"), so never shorter than `start / 2`.
    Jittered {
        /// First open duration.
        #[serde(with = "humantime_serde")]
        start: Duration,
        /// Longest open duration.
        #[serde(with = "humantime_serde")]
        max: Duration,
    },
}

/// The kinds of open backoff, as written in YAML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum BackoffKind {
    Constant,
    Exponential,
    Jittered,
}

/// An open backoff as written (see [`RawWindow`] for why).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackoff {
    kind: BackoffKind,
    #[serde(default, with = "humantime_serde")]
    duration: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    start: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    max: Option<Duration>,
}

impl TryFrom<RawBackoff> for OpenBackoff {
    type Error = FieldError;

    fn try_from(raw: RawBackoff) -> Result<Self, FieldError> {
        const DOUBLING: &str = "kind: exponential or jittered";
        match raw.kind {
            BackoffKind::Constant => {
                only_for(raw.start.is_some(), "start", DOUBLING)?;
                only_for(raw.max.is_some(), "max", DOUBLING)?;
                Ok(OpenBackoff::Constant {
                    duration: raw
                        .duration
                        .ok_or(FieldError::missing("duration", "kind: constant"))?,
                })
            }
            BackoffKind::Exponential | BackoffKind::Jittered => {
                only_for(raw.duration.is_some(), "duration", "kind: constant")?;
                let kind = if raw.kind == BackoffKind::Exponential {
                    "kind: exponential"
                } else {
                    "kind: jittered"
                };
                let start = raw.start.ok_or(FieldError::missing("start", kind))?;
                let max = raw.max.ok_or(FieldError::missing("max", kind))?;
                Ok(if raw.kind == BackoffKind::Exponential {
                    OpenBackoff::Exponential { start, max }
                } else {
                    OpenBackoff::Jittered { start, max }
                })
            }
        }
    }
}

impl Default for OpenBackoff {
    fn default() -> Self {
        OpenBackoff::Exponential {
            start: Duration::from_secs(5),
            max: Duration::from_secs(60),
        }
    }
}

impl OpenBackoff {
    pub(crate) fn iter(&self) -> BackoffIter {
        match *self {
            OpenBackoff::Constant { duration } => BackoffIter::Constant(duration),
            OpenBackoff::Exponential { start, max } => BackoffIter::Doubling {
                step: start,
                max,
                jitter: false,
            },
            OpenBackoff::Jittered { start, max } => BackoffIter::Doubling {
                step: start,
                max,
                jitter: true,
            },
        }
    }

    fn validate(&self, field: &str) -> Result<(), ConfigError> {
        match *self {
            OpenBackoff::Constant { duration } => check(
                !duration.is_zero() && duration <= Duration::from_secs(86_400),
                format!("{field}.duration"),
                "must be between 1 ns and 24 h",
            ),
            OpenBackoff::Exponential { start, max } | OpenBackoff::Jittered { start, max } => {
                check(
                    start >= Duration::from_millis(1),
                    format!("{field}.start"),
                    "must be at least 1ms",
                )?;
                check(
                    max >= start && max <= Duration::from_secs(86_400),
                    format!("{field}.max"),
                    "must be at least `start` and at most 24 h",
                )
            }
        }
    }
}

/// A running open-duration sequence, to the nanosecond. (failsafe's exponential iterators
/// count whole seconds: a jittered backoff starting at 1 s halved its step to 0 s and
/// opened the breaker for no time at all.)
#[derive(Debug, Clone)]
pub(crate) enum BackoffIter {
    Constant(Duration),
    /// `step` is the next step; it doubles up to `max`.
    Doubling {
        step: Duration,
        max: Duration,
        jitter: bool,
    },
}

impl BackoffIter {
    /// The next open duration: never zero for a validated backoff.
    pub(crate) fn next_duration(&mut self) -> Duration {
        match self {
            BackoffIter::Constant(duration) => *duration,
            BackoffIter::Doubling { step, max, jitter } => {
                let this = *step;
                *step = step.saturating_mul(2).min(*max);
                if !*jitter {
                    return this;
                }
                // Equal jitter: half the step, plus a random share of the other half.
                let half = this / 2;
                let spread = u64::try_from((this - half).as_nanos()).unwrap_or(u64::MAX);
                half + Duration::from_nanos(rand::rng().random_range(0..=spread))
            }
        }
    }
}

/// Circuit breaker settings. Rates are percentages (0 < rate <= 100).
///
/// ```
/// use resilience::circuit_breaker::{CircuitBreakerConfig, WindowConfig};
/// use std::time::Duration;
///
/// let config = CircuitBreakerConfig {
///     window: WindowConfig::Time { length: Duration::from_secs(10), buckets: 10 },
///     failure_rate_threshold: 50.0,
///     slow_call_rate_threshold: Some(80.0),
///     slow_call_duration: Some(Duration::from_millis(400)),
///     minimum_calls: 20,
///     ..CircuitBreakerConfig::default()
/// };
/// config.validate().unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CircuitBreakerConfig {
    /// The sliding window the rates are computed over.
    pub window: WindowConfig,
    /// Trip when at least this share of the window's calls failed (percent).
    pub failure_rate_threshold: f64,
    /// Trip when at least this share of the window's calls were slow (percent); off if unset.
    pub slow_call_rate_threshold: Option<f64>,
    /// A call lasting at least this long is slow.
    #[serde(with = "humantime_serde")]
    pub slow_call_duration: Option<Duration>,
    /// The rates are not acted on before the window holds this many calls.
    pub minimum_calls: u32,
    /// Also trip after this many failures in a row, whatever the rate; off if unset.
    pub consecutive_failures: Option<u32>,
    /// Probe calls admitted while half-open; their results decide between closed and open.
    pub half_open_permits: u32,
    /// How long the breaker stays open after each trip.
    pub open_backoff: OpenBackoff,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        CircuitBreakerConfig {
            window: WindowConfig::default(),
            failure_rate_threshold: 50.0,
            slow_call_rate_threshold: None,
            slow_call_duration: None,
            minimum_calls: 20,
            consecutive_failures: None,
            half_open_permits: 5,
            open_backoff: OpenBackoff::default(),
        }
    }
}

impl CircuitBreakerConfig {
    /// Checks every field; the error names the first field out of range.
    ///
    /// ```
    /// use resilience::circuit_breaker::CircuitBreakerConfig;
    /// let bad = CircuitBreakerConfig { failure_rate_threshold: 150.0, ..Default::default() };
    /// let err = bad.validate().unwrap_err();
    /// assert_eq!(err.field(), "circuit_breaker.failure_rate_threshold");
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_at("circuit_breaker")
    }

    pub(crate) fn validate_at(&self, at: &str) -> Result<(), ConfigError> {
        match self.window {
            WindowConfig::Count { size } => check(
                (1..=1_000_000).contains(&size),
                format!("{at}.window.size"),
                "must be between 1 and 1000000",
            )?,
            WindowConfig::Time { length, buckets } => {
                check(
                    length >= Duration::from_millis(100) && length <= Duration::from_secs(3600),
                    format!("{at}.window.length"),
                    "must be between 100ms and 1h",
                )?;
                check(
                    (1..=1000).contains(&buckets),
                    format!("{at}.window.buckets"),
                    "must be between 1 and 1000",
                )?;
            }
        }
        check(
            self.failure_rate_threshold > 0.0 && self.failure_rate_threshold <= 100.0,
            format!("{at}.failure_rate_threshold"),
            "must be a percentage above 0 and at most 100",
        )?;
        if let Some(rate) = self.slow_call_rate_threshold {
            check(
                rate > 0.0 && rate <= 100.0,
                format!("{at}.slow_call_rate_threshold"),
                "must be a percentage above 0 and at most 100",
            )?;
            check(
                self.slow_call_duration.is_some_and(|d| !d.is_zero()),
                format!("{at}.slow_call_duration"),
                "must be set (and above zero) when slow_call_rate_threshold is set",
            )?;
        }
        check(
            self.minimum_calls >= 1,
            format!("{at}.minimum_calls"),
            "must be at least 1",
        )?;
        if let WindowConfig::Count { size } = self.window {
            check(
                self.minimum_calls <= size,
                format!("{at}.minimum_calls"),
                "must not exceed window.size (the breaker could never trip)",
            )?;
        }
        if let Some(n) = self.consecutive_failures {
            check(
                n >= 1,
                format!("{at}.consecutive_failures"),
                "must be at least 1",
            )?;
        }
        check(
            (1..=10_000).contains(&self.half_open_permits),
            format!("{at}.half_open_permits"),
            "must be between 1 and 10000",
        )?;
        self.open_backoff.validate(&format!("{at}.open_backoff"))
    }
}
