//! The typed parameters of the protocol-aware database faults (`postgres-*`, `redis-*`):
//! the same fields whether they come from an experiment's `parameters` or from a rule's
//! `attributes` on the admin API, checked by the same code, and the relay [`Rule`] each
//! one sets.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::{
    valid_sqlstate, Action, PgError, Protocol, Rule, RuleError, Severity, REDIS_ERROR_PREFIXES,
};

/// A protocol-aware database fault type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DbFaultType {
    /// `postgres-error`: statements fail with a SQLSTATE.
    PostgresError,
    /// `postgres-latency`: statements are delayed.
    PostgresLatency,
    /// `postgres-reset`: the connection is reset mid-statement.
    PostgresReset,
    /// `postgres-refuse`: new connections are refused (or dropped).
    PostgresRefuse,
    /// `redis-error`: commands fail with a RESP error.
    RedisError,
    /// `redis-latency`: commands are delayed.
    RedisLatency,
}

impl DbFaultType {
    /// Every type, PostgreSQL's first.
    pub const ALL: [DbFaultType; 6] = [
        DbFaultType::PostgresError,
        DbFaultType::PostgresLatency,
        DbFaultType::PostgresReset,
        DbFaultType::PostgresRefuse,
        DbFaultType::RedisError,
        DbFaultType::RedisLatency,
    ];

    /// The type's name (`postgres-error`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DbFaultType::PostgresError => "postgres-error",
            DbFaultType::PostgresLatency => "postgres-latency",
            DbFaultType::PostgresReset => "postgres-reset",
            DbFaultType::PostgresRefuse => "postgres-refuse",
            DbFaultType::RedisError => "redis-error",
            DbFaultType::RedisLatency => "redis-latency",
        }
    }

    /// The type named `name`.
    ///
    /// ```
    /// use fault_proxy::dbproto::{params::DbFaultType, Protocol};
    /// let t = DbFaultType::from_name("redis-error").unwrap();
    /// assert_eq!((t.name(), t.protocol()), ("redis-error", Protocol::Redis));
    /// assert!(DbFaultType::from_name("redis").is_none());
    /// ```
    pub fn from_name(name: &str) -> Option<DbFaultType> {
        DbFaultType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The protocol its proxy must speak.
    pub fn protocol(self) -> Protocol {
        match self {
            DbFaultType::RedisError | DbFaultType::RedisLatency => Protocol::Redis,
            _ => Protocol::Postgres,
        }
    }
}

/// One problem of a fault's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamProblem {
    /// The field, relative to the parameters (`delay`, `sqlstate`; empty for the
    /// parameters as a whole).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl ParamProblem {
    /// The field's path under `at` (`spec.faults[0].parameters.delay`; `at` itself for
    /// the parameters as a whole).
    pub fn at(&self, at: &str) -> String {
        if self.field.is_empty() {
            at.to_owned()
        } else {
            format!("{at}.{}", self.field)
        }
    }
}

/// A fault's parameters could not be parsed, or are out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.iter().map(|p| format!("{}: {}", p.at("parameters"), p.message)).collect::<Vec<_>>().join("; "))]
pub struct ParamsError {
    /// Every problem found, in field order (at least one).
    pub problems: Vec<ParamProblem>,
}

fn one() -> f64 {
    1.0
}

fn check_pattern(pattern: Option<&str>, problems: &mut Found) {
    if let Some(p) = pattern {
        if let Err(e) = regex::Regex::new(p) {
            problems.check(
                false,
                "pattern",
                format!("is not a valid regular expression: {e}"),
            );
        }
    }
}

fn check_rate(rate: f64, problems: &mut Found) {
    problems.check(
        (0.0..=1.0).contains(&rate),
        "rate",
        "must be between 0 and 1 (the share of matching requests hit)",
    );
}

fn check_sqlstate(code: &str, problems: &mut Found) {
    problems.check(
        valid_sqlstate(code),
        "sqlstate",
        "must be a SQLSTATE: five characters 0-9 or A-Z (e.g. 40001, 57P01, 53300)",
    );
}

fn check_delay(delay: Duration, problems: &mut Found) {
    problems.check(
        delay > Duration::ZERO && delay <= Duration::from_secs(600),
        "delay",
        "must be more than 0 and at most 10m",
    );
}

fn check_message(message: Option<&str>, problems: &mut Found) {
    problems.check(
        message.is_none_or(|m| !m.contains(['\0', '\r', '\n'])),
        "message",
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
/// let p: fault_proxy::dbproto::params::PostgresErrorParams = serde_json::from_value(serde_json::json!({"pattern": "^UPDATE"})).unwrap();
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
    pub fn protocol(&self) -> Protocol {
        self.fault_type().protocol()
    }

    /// The fault type these are the parameters of.
    pub fn fault_type(&self) -> DbFaultType {
        match self {
            DbParams::PostgresError(_) => DbFaultType::PostgresError,
            DbParams::PostgresLatency(_) => DbFaultType::PostgresLatency,
            DbParams::PostgresReset(_) => DbFaultType::PostgresReset,
            DbParams::PostgresRefuse(_) => DbFaultType::PostgresRefuse,
            DbParams::RedisError(_) => DbFaultType::RedisError,
            DbParams::RedisLatency(_) => DbFaultType::RedisLatency,
        }
    }

    /// Parses and checks the parameters of `fault_type` from `value` (an experiment's
    /// `parameters`, an API rule's `attributes`); every problem found, by field.
    ///
    /// ```
    /// use fault_proxy::dbproto::params::{DbFaultType, DbParams};
    /// let p = DbParams::parse(DbFaultType::RedisLatency, serde_json::json!({"pattern": "^GET ", "delay": "5ms"})).unwrap();
    /// assert_eq!(p.fault_type(), DbFaultType::RedisLatency);
    /// let e = DbParams::parse(DbFaultType::RedisLatency, serde_json::json!({"pattern": "(", "delay": "0s"})).unwrap_err();
    /// assert_eq!(e.problems.len(), 2);
    /// assert_eq!(e.problems[1].at("attributes"), "attributes.delay");
    /// ```
    pub fn parse(
        fault_type: DbFaultType,
        value: serde_json::Value,
    ) -> Result<DbParams, ParamsError> {
        fn typed<T: serde::de::DeserializeOwned + ParamChecks>(
            fault_type: DbFaultType,
            value: serde_json::Value,
        ) -> Result<T, ParamsError> {
            let params: T = serde_path_to_error::deserialize(value).map_err(|e| {
                let path = e.path().to_string();
                let field = if path == "." { String::new() } else { path };
                ParamsError {
                    problems: vec![ParamProblem {
                        field,
                        message: format!("{} parameters: {}", fault_type.name(), e.inner()),
                    }],
                }
            })?;
            let problems = params.problems();
            if problems.is_empty() {
                Ok(params)
            } else {
                Err(ParamsError { problems })
            }
        }
        Ok(match fault_type {
            DbFaultType::PostgresError => DbParams::PostgresError(typed(fault_type, value)?),
            DbFaultType::PostgresLatency => DbParams::PostgresLatency(typed(fault_type, value)?),
            DbFaultType::PostgresReset => DbParams::PostgresReset(typed(fault_type, value)?),
            DbFaultType::PostgresRefuse => DbParams::PostgresRefuse(typed(fault_type, value)?),
            DbFaultType::RedisError => DbParams::RedisError(typed(fault_type, value)?),
            DbFaultType::RedisLatency => DbParams::RedisLatency(typed(fault_type, value)?),
        })
    }

    /// A one-line summary (`SQLSTATE 40001 on /^UPDATE/ at 50%`).
    ///
    /// ```
    /// use fault_proxy::dbproto::params::{DbParams, RedisLatencyParams};
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
    /// use fault_proxy::dbproto::params::{DbParams, RedisErrorParams};
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

/// Range and consistency checks of a parameter struct (what serde cannot rule out).
pub trait ParamChecks {
    /// Every problem of `self`, by field (relative to the parameters).
    fn problems(&self) -> Vec<ParamProblem>;
}

/// Collects problems as the checks run.
#[derive(Default)]
struct Found(Vec<ParamProblem>);

impl Found {
    fn check(&mut self, ok: bool, field: &str, message: impl Into<String>) {
        if !ok {
            self.0.push(ParamProblem {
                field: field.to_owned(),
                message: message.into(),
            });
        }
    }
}

macro_rules! checks {
    ($($ty:ty => |$p:ident, $found:ident| $body:block)*) => {
        $(impl ParamChecks for $ty {
            fn problems(&self) -> Vec<ParamProblem> {
                let $p = self;
                let mut $found = Found::default();
                $body
                $found.0
            }
        })*
    };
}

checks! {
    PostgresErrorParams => |p, found| {
        check_pattern(Some(&p.pattern), &mut found);
        check_sqlstate(&p.sqlstate, &mut found);
        check_message(p.message.as_deref(), &mut found);
        check_rate(p.rate, &mut found);
    }
    PostgresLatencyParams => |p, found| {
        check_pattern(Some(&p.pattern), &mut found);
        check_delay(p.delay, &mut found);
        check_rate(p.rate, &mut found);
    }
    PostgresResetParams => |p, found| {
        check_pattern(Some(&p.pattern), &mut found);
        check_rate(p.rate, &mut found);
    }
    PostgresRefuseParams => |p, found| {
        check_pattern(p.pattern.as_deref(), &mut found);
        check_sqlstate(&p.sqlstate, &mut found);
        check_message(p.message.as_deref(), &mut found);
        check_rate(p.rate, &mut found);
    }
    RedisErrorParams => |p, found| {
        check_pattern(Some(&p.pattern), &mut found);
        found.check(
            REDIS_ERROR_PREFIXES.contains(&p.prefix.as_str()),
            "prefix",
            format!("must be one of {}", REDIS_ERROR_PREFIXES.join(", ")),
        );
        check_message(p.message.as_deref(), &mut found);
        check_rate(p.rate, &mut found);
    }
    RedisLatencyParams => |p, found| {
        check_pattern(Some(&p.pattern), &mut found);
        check_delay(p.delay, &mut found);
        check_rate(p.rate, &mut found);
    }
}

impl ParamChecks for DbParams {
    fn problems(&self) -> Vec<ParamProblem> {
        match self {
            DbParams::PostgresError(p) => p.problems(),
            DbParams::PostgresLatency(p) => p.problems(),
            DbParams::PostgresReset(p) => p.problems(),
            DbParams::PostgresRefuse(p) => p.problems(),
            DbParams::RedisError(p) => p.problems(),
            DbParams::RedisLatency(p) => p.problems(),
        }
    }
}
