//! Parameters of the TCP fault proxy faults (`proxy-*`): the toxic's attributes (durations
//! as humantime strings), plus `stream` (`upstream` | `downstream`, default downstream) and
//! `toxicity` (0 to 1, default 1), and the `proxy` selector check.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::{only, typed, CheckParams, Problems};
use crate::spec::model::{FaultType, ProxyProtocol, Selector};

/// Which way a proxy toxic acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyStream {
    /// Client to server.
    Upstream,
    /// Server to client.
    #[default]
    Downstream,
}

impl ProxyStream {
    /// `upstream` or `downstream`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyStream::Upstream => "upstream",
            ProxyStream::Downstream => "downstream",
        }
    }
}

/// What a proxy fault does.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "toxic", rename_all = "snake_case")]
pub enum ProxyAction {
    /// Delay each chunk.
    Latency {
        /// Added delay.
        #[serde(with = "humantime_serde")]
        latency: Duration,
        /// Random spread (+/-).
        #[serde(with = "humantime_serde")]
        jitter: Duration,
    },
    /// Throughput cap in KB/s.
    Bandwidth {
        /// KB (1000 bytes) per second.
        rate: u64,
    },
    /// Delay the close.
    SlowClose {
        /// Delay of the close.
        #[serde(with = "humantime_serde")]
        delay: Duration,
    },
    /// Hold data; 0 = until reverted (partition), else close after `timeout`.
    Timeout {
        /// 0 or time before the close.
        #[serde(with = "humantime_serde")]
        timeout: Duration,
    },
    /// Reset connections after `timeout`.
    ResetPeer {
        /// Time before the reset.
        #[serde(with = "humantime_serde")]
        timeout: Duration,
    },
    /// Small delayed slices.
    Slicer {
        /// Mean slice size in bytes.
        average_size: u64,
        /// Spread of the slice size in bytes.
        size_variation: u64,
        /// Pause between slices.
        #[serde(with = "humantime_serde")]
        delay: Duration,
    },
    /// Close after `bytes`.
    LimitData {
        /// Bytes let through per connection.
        bytes: u64,
    },
    /// Drop (or delay) a share of chunks.
    Loss {
        /// Share of chunks hit.
        probability: f64,
        /// None = drop; else delay by this much.
        #[serde(with = "humantime_serde")]
        delay: Option<Duration>,
    },
    /// The proxy refuses new connections and cuts open ones.
    Down,
}

/// The typed parameters of a `proxy-*` fault.
///
/// ```
/// use chaos_runner::spec::{params, FaultParams, FaultType, Problems};
/// let mut problems = Problems::default();
/// let p = params::parse(FaultType::ProxyLatency, "p", serde_json::json!({"latency": "200ms"}), &mut problems);
/// let Some(FaultParams::Proxy(p)) = p else { panic!("{problems:?}") };
/// assert_eq!(p.toxicity, 1.0);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProxyParams {
    /// The toxic (or `down`).
    pub action: ProxyAction,
    /// Direction.
    pub stream: ProxyStream,
    /// Probability per connection.
    pub toxicity: f64,
}

impl ProxyParams {
    /// One line for plans (`latency 200ms +/- 0s downstream`).
    pub fn summary(&self) -> String {
        let d = |d: &Duration| humantime::format_duration(*d).to_string();
        let what = match &self.action {
            ProxyAction::Latency { latency, jitter } => {
                format!("latency {} +/- {}", d(latency), d(jitter))
            }
            ProxyAction::Bandwidth { rate } => format!("bandwidth {rate} KB/s"),
            ProxyAction::SlowClose { delay } => format!("close delayed {}", d(delay)),
            ProxyAction::Timeout { timeout } if timeout.is_zero() => {
                "partition (data held until revert)".to_owned()
            }
            ProxyAction::Timeout { timeout } => format!("data held, closed after {}", d(timeout)),
            ProxyAction::ResetPeer { timeout } => format!("reset after {}", d(timeout)),
            ProxyAction::Slicer {
                average_size,
                size_variation,
                delay,
            } => format!(
                "slices of {average_size}+/-{size_variation} bytes {} apart",
                d(delay)
            ),
            ProxyAction::LimitData { bytes } => format!("closed after {bytes} bytes"),
            ProxyAction::Loss {
                probability,
                delay: None,
            } => format!("{:.1}% of chunks dropped", probability * 100.0),
            ProxyAction::Loss {
                probability,
                delay: Some(delay),
            } => format!("{:.1}% of chunks delayed {}", probability * 100.0, d(delay)),
            ProxyAction::Down => return "proxy down".to_owned(),
        };
        if self.toxicity < 1.0 {
            format!(
                "{what} {} on {:.0}% of connections",
                self.stream.as_str(),
                self.toxicity * 100.0
            )
        } else {
            format!("{what} {}", self.stream.as_str())
        }
    }
}

fn one() -> f64 {
    1.0
}

fn check_common(stream_toxicity: f64, at: &str, problems: &mut Problems) {
    problems.check(
        (0.0..=1.0).contains(&stream_toxicity),
        format!("{at}.toxicity"),
        "must be from 0 to 1",
    );
}

fn check_duration(d: Duration, max: Duration, field: String, problems: &mut Problems) {
    problems.check(
        d <= max,
        field,
        format!("must be at most {}", humantime::format_duration(max)),
    );
}

const HOUR: Duration = Duration::from_secs(3600);

macro_rules! raw {
    ($(#[$m:meta])* $name:ident { $($body:tt)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub(super) struct $name {
            $($body)*
            #[serde(default)]
            stream: ProxyStream,
            #[serde(default = "one")]
            toxicity: f64,
        }
    };
}

raw!(
    /// `proxy-latency`.
    Latency {
        #[serde(with = "humantime_serde")]
        latency: Duration,
        #[serde(default, with = "humantime_serde")]
        jitter: Duration,
    }
);
raw!(
    /// `proxy-bandwidth`.
    Bandwidth { rate: u64, }
);
raw!(
    /// `proxy-slow-close`.
    SlowClose {
        #[serde(with = "humantime_serde")]
        delay: Duration,
    }
);
raw!(
    /// `proxy-timeout`.
    Timeout {
        #[serde(default, with = "humantime_serde")]
        timeout: Duration,
    }
);
raw!(
    /// `proxy-reset-peer`.
    ResetPeer {
        #[serde(default, with = "humantime_serde")]
        timeout: Duration,
    }
);
raw!(
    /// `proxy-slicer`.
    Slicer {
        average_size: u64,
        #[serde(default)]
        size_variation: u64,
        #[serde(default, with = "humantime_serde")]
        delay: Duration,
    }
);
raw!(
    /// `proxy-limit-data`.
    LimitData { bytes: u64, }
);
raw!(
    /// `proxy-loss`.
    Loss {
        probability: f64,
        #[serde(default, with = "humantime_serde")]
        delay: Option<Duration>,
    }
);

/// `proxy-down`: no parameters.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Down {}

impl CheckParams for Latency {
    fn check(&self, at: &str, problems: &mut Problems) {
        check_common(self.toxicity, at, problems);
        problems.check(
            self.latency >= Duration::from_millis(1),
            format!("{at}.latency"),
            "must be at least 1ms",
        );
        check_duration(self.latency, HOUR, format!("{at}.latency"), problems);
        check_duration(self.jitter, HOUR, format!("{at}.jitter"), problems);
    }
}

impl CheckParams for Bandwidth {
    fn check(&self, at: &str, problems: &mut Problems) {
        check_common(self.toxicity, at, problems);
        problems.check(
            (1..=10_000_000).contains(&self.rate),
            format!("{at}.rate"),
            "must be from 1 to 10000000 KB/s",
        );
    }
}

impl CheckParams for SlowClose {
    fn check(&self, at: &str, problems: &mut Problems) {
        check_common(self.toxicity, at, problems);
        problems.check(
            self.delay >= Duration::from_millis(1),
            format!("{at}.delay"),
            "must be at least 1ms",
        );
        check_duration(self.delay, HOUR, format!("{at}.delay"), problems);
    }
}

impl CheckParams for Timeout {
    fn check(&self, at: &str, problems: &mut Problems) {
        check_common(self.toxicity, at, problems);
        check_duration(self.timeout, HOUR, format!("{at}.timeout"), problems);
    }
}

impl CheckParams for ResetPeer {
    fn check(&self, at: &str, problems: &mut Problems) {
        check_common(self.toxicity, at, problems);
        check_duration(self.timeout, HOUR, format!("{at}.timeout"), problems);
    }
}

impl CheckParams for Slicer {
    fn check(&self, at: &str, problems: &mut Problems) {
        check_common(self.toxicity, at, problems);
        problems.check(
            (1..=1_048_576).contains(&self.average_size),
            format!("{at}.averageSize"),
            "must be from 1 to 1048576 bytes",
        );
        problems.check(
            self.size_variation < self.average_size.max(1),
            format!("{at}.sizeVariation"),
            "must be below averageSize",
        );
        check_duration(
            self.delay,
            Duration::from_secs(10),
            format!("{at}.delay"),
            problems,
        );
    }
}

impl CheckParams for LimitData {
    fn check(&self, at: &str, problems: &mut Problems) {
        check_common(self.toxicity, at, problems);
    }
}

impl CheckParams for Loss {
    fn check(&self, at: &str, problems: &mut Problems) {
        check_common(self.toxicity, at, problems);
        problems.check(
            self.probability > 0.0 && self.probability <= 1.0,
            format!("{at}.probability"),
            "must be above 0 and at most 1",
        );
        if let Some(delay) = self.delay {
            problems.check(
                delay >= Duration::from_millis(1),
                format!("{at}.delay"),
                "must be at least 1ms (omit it to drop chunks)",
            );
            check_duration(delay, HOUR, format!("{at}.delay"), problems);
        }
    }
}

impl CheckParams for Down {
    fn check(&self, _at: &str, _problems: &mut Problems) {}
}

/// Parses the parameters of proxy fault `fault_type`.
pub(super) fn parse(
    fault_type: FaultType,
    at: &str,
    value: serde_json::Value,
    problems: &mut Problems,
) -> Option<ProxyParams> {
    let p = |action, stream, toxicity| ProxyParams {
        action,
        stream,
        toxicity,
    };
    match fault_type {
        FaultType::ProxyLatency => typed::<Latency>(fault_type, at, value, problems).map(|r| {
            p(
                ProxyAction::Latency {
                    latency: r.latency,
                    jitter: r.jitter,
                },
                r.stream,
                r.toxicity,
            )
        }),
        FaultType::ProxyBandwidth => typed::<Bandwidth>(fault_type, at, value, problems).map(|r| {
            p(
                ProxyAction::Bandwidth { rate: r.rate },
                r.stream,
                r.toxicity,
            )
        }),
        FaultType::ProxySlowClose => typed::<SlowClose>(fault_type, at, value, problems).map(|r| {
            p(
                ProxyAction::SlowClose { delay: r.delay },
                r.stream,
                r.toxicity,
            )
        }),
        FaultType::ProxyTimeout => typed::<Timeout>(fault_type, at, value, problems).map(|r| {
            p(
                ProxyAction::Timeout { timeout: r.timeout },
                r.stream,
                r.toxicity,
            )
        }),
        FaultType::ProxyResetPeer => typed::<ResetPeer>(fault_type, at, value, problems).map(|r| {
            p(
                ProxyAction::ResetPeer { timeout: r.timeout },
                r.stream,
                r.toxicity,
            )
        }),
        FaultType::ProxySlicer => typed::<Slicer>(fault_type, at, value, problems).map(|r| {
            p(
                ProxyAction::Slicer {
                    average_size: r.average_size,
                    size_variation: r.size_variation,
                    delay: r.delay,
                },
                r.stream,
                r.toxicity,
            )
        }),
        FaultType::ProxyLimitData => typed::<LimitData>(fault_type, at, value, problems).map(|r| {
            p(
                ProxyAction::LimitData { bytes: r.bytes },
                r.stream,
                r.toxicity,
            )
        }),
        FaultType::ProxyLoss => typed::<Loss>(fault_type, at, value, problems).map(|r| {
            p(
                ProxyAction::Loss {
                    probability: r.probability,
                    delay: r.delay,
                },
                r.stream,
                r.toxicity,
            )
        }),
        FaultType::ProxyDown => typed::<Down>(fault_type, at, value, problems)
            .map(|_| p(ProxyAction::Down, ProxyStream::Downstream, 1.0)),
        _ => None,
    }
}

/// TCP toxics (every proxy fault but `proxy-down`) act on the bytes of a plain TCP proxy;
/// a `protocol: postgres|redis` proxy hands its connections to the protocol relay, which
/// applies the `postgres-*`/`redis-*` rules and no toxic, so such a fault is refused.
pub(super) fn check_toxic_protocol(selector: &Selector, at: &str, problems: &mut Problems) {
    let protocol = selector.proxy.as_ref().and_then(|p| p.protocol);
    problems.check(
        matches!(protocol, None | Some(ProxyProtocol::Tcp)),
        format!("{at}.proxy.protocol"),
        "TCP toxics act only on a `protocol: tcp` proxy (a postgres/redis proxy relays \
         through its protocol rules and would ignore the toxic); drop `protocol`, or use \
         a postgres-*/redis-* fault",
    );
}

/// Proxy faults need `proxy:` with either `listen` + `upstream` (+ `protocol`) or `name`
/// (+ `api`), and nothing else.
pub(super) fn check_proxy_selector(selector: &Selector, at: &str, problems: &mut Problems) {
    only(selector, at, &["proxy"], problems);
    let Some(p) = &selector.proxy else {
        problems.check(
            false,
            at.to_owned(),
            "needs `proxy:` with `listen` + `upstream` (a proxy the run starts) or `name` \
             (+ `api`) of a running proxy server",
        );
        return;
    };
    let at = format!("{at}.proxy");
    let in_run = p.listen.is_some() || p.upstream.is_some() || p.protocol.is_some();
    let remote = p.name.is_some() || p.api.is_some();
    if in_run && remote {
        problems.check(
            false,
            at,
            "give either `listen` + `upstream` (in-run proxy) or `name` + `api` (running \
             proxy server), not both",
        );
        return;
    }
    if remote {
        problems.check(
            p.name.as_deref().is_some_and(valid_name),
            format!("{at}.name"),
            "needs the proxy's name on the server (letters, digits, `-`, `_`, `.`)",
        );
        if let Some(api) = &p.api {
            problems.check(
                api.strip_prefix("http://")
                    .is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace)),
                format!("{at}.api"),
                "must be an http:// URL (e.g. http://127.0.0.1:8474)",
            );
        }
        return;
    }
    match p.listen.as_deref() {
        None => {
            problems.check(
                false,
                format!("{at}.listen"),
                "needs the address the run's proxy listens on (e.g. 127.0.0.1:15432)",
            );
        }
        Some(l) => {
            problems.check(
                l.parse::<std::net::SocketAddr>()
                    .is_ok_and(|a| a.port() != 0),
                format!("{at}.listen"),
                "must be an IP address and a non-zero port (e.g. 127.0.0.1:15432)",
            );
        }
    }
    match p.upstream.as_deref() {
        None => {
            problems.check(
                false,
                format!("{at}.upstream"),
                "needs the address the proxy forwards to (e.g. 127.0.0.1:5432)",
            );
        }
        Some(u) => {
            problems.check(
                u.rsplit_once(':').is_some_and(|(host, port)| {
                    !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0)
                }),
                format!("{at}.upstream"),
                "must be host:port",
            );
        }
    }
    if let (Some(l), Some(u)) = (&p.listen, &p.upstream) {
        problems.check(
            l != u,
            format!("{at}.upstream"),
            "must differ from listen (the proxy would connect to itself)",
        );
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
