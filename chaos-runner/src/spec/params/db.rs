//! Parameters of the protocol-aware database faults (`postgres-*`, `redis-*`), which act
//! on the run's own proxy with `protocol: postgres` or `protocol: redis`.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::{only, CheckParams, Problems};
use crate::faults::local::dbproto::{
    valid_sqlstate, Action, PgError, Rule, RuleError, Severity, REDIS_ERROR_PREFIXES,
};
use crate::spec::model::{FaultType, ProxyProtocol, Selector};

fn one() -> f64 {
    1.0
}

fn check_pattern(pattern: Option<&str>, at: &str, problems: &mut Problems) {
    if let Some(p) = pattern {
        if let Err(e) = regex::Regex::new(p) {
            problems.check(
                false,
                format!("{at}.pattern"),
                format!("is not a valid regular expression: {e}"),
            );
        }
    }
}

fn check_rate(rate: f64, at: &str, problems: &mut Problems) {
    problems.check(
        (0.0..=1.0).contains(&rate),
        format!("{at}.rate"),
        "must be between 0 and 1 (the share of matching requests hit)",
    );
}

fn check_sqlstate(code: &str, at: &str, problems: &mut Problems) {
    problems.check(
        valid_sqlstate(code),
        format!("{at}.sqlstate"),
        "must be a SQLSTATE: five characters 0-9 or A-Z (e.g. 40001, 57P01, 53300)",
    );
}

fn check_delay(delay: Duration, at: &str, problems: &mut Problems) {
    problems.check(
        delay > Duration::ZERO && delay <= Duration::from_secs(600),
        format!("{at}.delay"),
        "must be more than 0 and at most 10m",
    );
}

fn check_message(message: Option<&str>, at: &str, problems: &mut Problems) {
    problems.check(
        message.is_none_or(|m| !m.contains(['\0', '\r', '\n'])),
        format!("{at}.message"),
        "must be one line without NUL",
    );
}

/// Severity of an injected PostgreSQL error, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PgSeverity {
    /// The statement fails; the session stays.
    #[default]
    #[serde(rename = "ERROR")]
    Error,
    /// The session ends after the error (as an admin shutdown, 57P01, does).
    #[serde(rename = "FATAL")]
    Fatal,
}

/// `postgres-error`: statements matching `pattern` fail with `sqlstate`.
///
/// ```
/// let p: chaos_runner::spec::PostgresErrorParams = serde_json::from_value(serde_json::json!({"pattern": "^UPDATE"})).unwrap();
/// assert_eq!(p.sqlstate, "40001");
/// assert_eq!(p.rate, 1.0);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresErrorParams {
    /// Regular expression over the SQL text (simple Query, or the prepared statement a
    /// Bind executes).
    pub pattern: String,
    /// SQLSTATE of the error (default 40001, serialization failure).
    #[serde(default = "serialization_failure")]
    pub sqlstate: String,
    /// `ERROR` (default) or `FATAL` (the session ends).
    #[serde(default)]
    pub severity: PgSeverity,
    /// Message (default: `injected by chaos-runner (SQLSTATE <code>)`).
    #[serde(default)]
    pub message: Option<String>,
    /// Share of matching statements that fail, 0 to 1 (default 1).
    #[serde(default = "one")]
    pub rate: f64,
}

fn serialization_failure() -> String {
    "40001".to_owned()
}

/// `postgres-latency`: statements matching `pattern` are held `delay` before they reach
/// the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresLatencyParams {
    /// Regular expression over the SQL text.
    pub pattern: String,
    /// Added delay (humantime, more than 0, at most 10m).
    #[serde(with = "humantime_serde")]
    pub delay: Duration,
    /// Share of matching statements delayed, 0 to 1 (default 1).
    #[serde(default = "one")]
    pub rate: f64,
}

/// `postgres-reset`: a statement matching `pattern` is sent, then the client's
/// connection is reset (TCP RST) before any reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresResetParams {
    /// Regular expression over the SQL text.
    pub pattern: String,
    /// Share of matching statements whose connection is reset, 0 to 1 (default 1).
    #[serde(default = "one")]
    pub rate: f64,
}

/// `postgres-refuse`: new connections are refused at startup with a `FATAL` error
/// (`sqlstate`, default 53300 too many connections; 57P03 cannot connect now), or
/// dropped without a word (`drop: true`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresRefuseParams {
    /// Regular expression over `user=<u> database=<d> application_name=<a>` (all
    /// connections when absent).
    #[serde(default)]
    pub pattern: Option<String>,
    /// SQLSTATE of the refusal (default 53300).
    #[serde(default = "too_many_connections")]
    pub sqlstate: String,
    /// Message (default: `sorry, too many clients already` for 53300).
    #[serde(default)]
    pub message: Option<String>,
    /// Close the connection without an ErrorResponse instead.
    #[serde(default)]
    pub drop: bool,
    /// Share of new connections refused, 0 to 1 (default 1).
    #[serde(default = "one")]
    pub rate: f64,
}

fn too_many_connections() -> String {
    "53300".to_owned()
}

/// `redis-error`: commands matching `pattern` get `-<prefix> <message>` instead of
/// running.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisErrorParams {
    /// Regular expression over `NAME arg1 arg2 ...` (name upper-cased), e.g. `^SET `.
    pub pattern: String,
    /// Error prefix: ERR (default), LOADING, READONLY, BUSY, MASTERDOWN, OOM, ...
    #[serde(default = "err")]
    pub prefix: String,
    /// Message after the prefix (default: what Redis itself says for that prefix).
    #[serde(default)]
    pub message: Option<String>,
    /// Share of matching commands failed, 0 to 1 (default 1).
    #[serde(default = "one")]
    pub rate: f64,
}

fn err() -> String {
    "ERR".to_owned()
}

/// `redis-latency`: commands matching `pattern` are held `delay` before they reach the
/// server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisLatencyParams {
    /// Regular expression over `NAME arg1 arg2 ...`.
    pub pattern: String,
    /// Added delay (humantime, more than 0, at most 10m).
    #[serde(with = "humantime_serde")]
    pub delay: Duration,
    /// Share of matching commands delayed, 0 to 1 (default 1).
    #[serde(default = "one")]
    pub rate: f64,
}

impl CheckParams for PostgresErrorParams {
    fn check(&self, at: &str, problems: &mut Problems) {
        check_pattern(Some(&self.pattern), at, problems);
        check_sqlstate(&self.sqlstate, at, problems);
        check_message(self.message.as_deref(), at, problems);
        check_rate(self.rate, at, problems);
    }
}

impl CheckParams for PostgresLatencyParams {
    fn check(&self, at: &str, problems: &mut Problems) {
        check_pattern(Some(&self.pattern), at, problems);
        check_delay(self.delay, at, problems);
        check_rate(self.rate, at, problems);
    }
}

impl CheckParams for PostgresResetParams {
    fn check(&self, at: &str, problems: &mut Problems) {
        check_pattern(Some(&self.pattern), at, problems);
        check_rate(self.rate, at, problems);
    }
}

impl CheckParams for PostgresRefuseParams {
    fn check(&self, at: &str, problems: &mut Problems) {
        check_pattern(self.pattern.as_deref(), at, problems);
        check_sqlstate(&self.sqlstate, at, problems);
        check_message(self.message.as_deref(), at, problems);
        check_rate(self.rate, at, problems);
    }
}

impl CheckParams for RedisErrorParams {
    fn check(&self, at: &str, problems: &mut Problems) {
        check_pattern(Some(&self.pattern), at, problems);
        problems.check(
            REDIS_ERROR_PREFIXES.contains(&self.prefix.as_str()),
            format!("{at}.prefix"),
            format!("must be one of {}", REDIS_ERROR_PREFIXES.join(", ")),
        );
        check_message(self.message.as_deref(), at, problems);
        check_rate(self.rate, at, problems);
    }
}

impl CheckParams for RedisLatencyParams {
    fn check(&self, at: &str, problems: &mut Problems) {
        check_pattern(Some(&self.pattern), at, problems);
        check_delay(self.delay, at, problems);
        check_rate(self.rate, at, problems);
    }
}

/// The parameters of one protocol-aware database fault.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum DbParams {
    /// `postgres-error`.
    PostgresError(PostgresErrorParams),
    /// `postgres-latency`.
    PostgresLatency(PostgresLatencyParams),
    /// `postgres-reset`.
    PostgresReset(PostgresResetParams),
    /// `postgres-refuse`.
    PostgresRefuse(PostgresRefuseParams),
    /// `redis-error`.
    RedisError(RedisErrorParams),
    /// `redis-latency`.
    RedisLatency(RedisLatencyParams),
}

impl DbParams {
    /// The protocol the fault needs its proxy to speak.
    pub fn protocol(&self) -> ProxyProtocol {
        match self {
            DbParams::RedisError(_) | DbParams::RedisLatency(_) => ProxyProtocol::Redis,
            _ => ProxyProtocol::Postgres,
        }
    }

    /// A one-line summary (`SQLSTATE 40001 on /^UPDATE/ at 50%`).
    ///
    /// ```
    /// use chaos_runner::spec::{DbParams, RedisLatencyParams};
    /// let p = DbParams::RedisLatency(RedisLatencyParams { pattern: "^GET ".into(), delay: std::time::Duration::from_millis(200), rate: 0.5 });
    /// assert_eq!(p.summary(), "+200ms on /^GET / at 50%");
    /// ```
    pub fn summary(&self) -> String {
        let pct = |r: f64| format!("{}%", (r * 100.0).round());
        let on = |p: &str| format!("/{p}/");
        let d = |d: &Duration| humantime::format_duration(*d).to_string();
        match self {
            DbParams::PostgresError(p) => format!(
                "SQLSTATE {} ({}) on {} at {}",
                p.sqlstate,
                match p.severity {
                    PgSeverity::Error => "ERROR",
                    PgSeverity::Fatal => "FATAL",
                },
                on(&p.pattern),
                pct(p.rate)
            ),
            DbParams::PostgresLatency(p) => {
                format!("+{} on {} at {}", d(&p.delay), on(&p.pattern), pct(p.rate))
            }
            DbParams::PostgresReset(p) => {
                format!("reset on {} at {}", on(&p.pattern), pct(p.rate))
            }
            DbParams::PostgresRefuse(p) => format!(
                "{} new connections{} at {}",
                if p.drop {
                    "drop".to_owned()
                } else {
                    format!("refuse ({})", p.sqlstate)
                },
                p.pattern
                    .as_deref()
                    .map(|x| format!(" matching {}", on(x)))
                    .unwrap_or_default(),
                pct(p.rate)
            ),
            DbParams::RedisError(p) => {
                format!("-{} on {} at {}", p.prefix, on(&p.pattern), pct(p.rate))
            }
            DbParams::RedisLatency(p) => {
                format!("+{} on {} at {}", d(&p.delay), on(&p.pattern), pct(p.rate))
            }
        }
    }

    /// The relay rule named `name` that this fault sets.
    ///
    /// ```
    /// use chaos_runner::spec::{DbParams, RedisErrorParams};
    /// let p = DbParams::RedisError(RedisErrorParams { pattern: "^SET ".into(), prefix: "READONLY".into(), message: None, rate: 1.0 });
    /// let rule = p.rule("chaos-r1-ro").unwrap();
    /// assert_eq!(rule.pattern(), Some("^SET "));
    /// ```
    pub fn rule(&self, name: &str) -> Result<Rule, RuleError> {
        match self {
            DbParams::PostgresError(p) => Rule::new(
                name,
                Some(&p.pattern),
                Action::PgError(PgError {
                    sqlstate: p.sqlstate.clone(),
                    severity: match p.severity {
                        PgSeverity::Error => Severity::Error,
                        PgSeverity::Fatal => Severity::Fatal,
                    },
                    message: p.message.clone().unwrap_or_else(|| {
                        format!("injected by chaos-runner (SQLSTATE {})", p.sqlstate)
                    }),
                }),
                p.rate,
            ),
            DbParams::PostgresLatency(p) => {
                Rule::new(name, Some(&p.pattern), Action::Delay(p.delay), p.rate)
            }
            DbParams::PostgresReset(p) => Rule::new(name, Some(&p.pattern), Action::Reset, p.rate),
            DbParams::PostgresRefuse(p) => {
                let action = if p.drop {
                    Action::Drop
                } else {
                    Action::Refuse {
                        sqlstate: p.sqlstate.clone(),
                        message: p
                            .message
                            .clone()
                            .unwrap_or_else(|| match p.sqlstate.as_str() {
                                "53300" => "sorry, too many clients already".to_owned(),
                                "57P03" => "the database system is starting up".to_owned(),
                                code => {
                                    format!("connection refused by chaos-runner (SQLSTATE {code})")
                                }
                            }),
                    }
                };
                Rule::new(name, p.pattern.as_deref(), action, p.rate)
            }
            DbParams::RedisError(p) => {
                let message = p.message.clone().unwrap_or_else(|| {
                    match p.prefix.as_str() {
                        "READONLY" => "You can't write against a read only replica.",
                        "LOADING" => "Redis is loading the dataset in memory",
                        "BUSY" => "Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
                        "MASTERDOWN" => "Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
                        "OOM" => "command not allowed when used memory > 'maxmemory'.",
                        _ => "injected by chaos-runner",
                    }
                    .to_owned()
                });
                Rule::new(
                    name,
                    Some(&p.pattern),
                    Action::RedisError(format!("{} {message}", p.prefix)),
                    p.rate,
                )
            }
            DbParams::RedisLatency(p) => {
                Rule::new(name, Some(&p.pattern), Action::Delay(p.delay), p.rate)
            }
        }
    }
}

/// Parses the parameters of db fault type `fault_type`.
pub(super) fn parse(
    fault_type: FaultType,
    at: &str,
    value: serde_json::Value,
    problems: &mut Problems,
) -> Option<DbParams> {
    use super::typed;
    match fault_type {
        FaultType::PostgresError => {
            typed(fault_type, at, value, problems).map(DbParams::PostgresError)
        }
        FaultType::PostgresLatency => {
            typed(fault_type, at, value, problems).map(DbParams::PostgresLatency)
        }
        FaultType::PostgresReset => {
            typed(fault_type, at, value, problems).map(DbParams::PostgresReset)
        }
        FaultType::PostgresRefuse => {
            typed(fault_type, at, value, problems).map(DbParams::PostgresRefuse)
        }
        FaultType::RedisError => typed(fault_type, at, value, problems).map(DbParams::RedisError),
        FaultType::RedisLatency => {
            typed(fault_type, at, value, problems).map(DbParams::RedisLatency)
        }
        _ => None,
    }
}

/// Database faults on the local backend act on the run's own proxy, which must speak
/// their protocol (`proxy: {listen, upstream, protocol: postgres|redis}`), or on a proxy
/// of a running `chaos-runner proxy` (`proxy: {name, api}`).
pub(super) fn check_db_selector(
    fault_type: FaultType,
    selector: &Selector,
    at: &str,
    problems: &mut Problems,
) {
    let want = match fault_type {
        FaultType::RedisError | FaultType::RedisLatency => ProxyProtocol::Redis,
        _ => ProxyProtocol::Postgres,
    };
    let word = match want {
        ProxyProtocol::Redis => "redis",
        _ => "postgres",
    };
    problems.check(
        selector.service.is_none(),
        format!("{at}.service"),
        format!(
            "`service` is the kubernetes backend's; on the local backend give \
             `proxy: {{listen, upstream, protocol: {word}}}`"
        ),
    );
    let Some(p) = &selector.proxy else {
        only(selector, at, &["proxy", "service"], problems);
        problems.check(
            false,
            at.to_owned(),
            format!(
                "needs `proxy: {{listen, upstream, protocol: {word}}}` (the run's own proxy) \
                 or `proxy: {{name, api}}` (a `protocol: {word}` proxy of a running \
                 `chaos-runner proxy`)"
            ),
        );
        return;
    };
    super::proxy::check_proxy_selector(selector, at, problems);
    if p.name.is_some() || p.api.is_some() {
        // A running proxy server's proxy: its protocol is checked against the server
        // before the run touches anything (preflight).
        return;
    }
    problems.check(
        p.protocol == Some(want),
        format!("{at}.proxy.protocol"),
        format!("must be `{word}` for {}", fault_type.name()),
    );
}
