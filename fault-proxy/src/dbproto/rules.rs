//! Fault rules: what to match, what to do, how often.

use regex::Regex;
use std::time::Duration;

/// The wire protocol a [`super::DbFaults`] speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// PostgreSQL frontend/backend protocol 3.0.
    Postgres,
    /// Redis RESP2/RESP3 (requests as arrays of bulk strings or inline commands).
    Redis,
}

impl Protocol {
    /// The protocol's name (`postgres`, `redis`).
    ///
    /// ```
    /// assert_eq!(fault_proxy::dbproto::Protocol::Redis.name(), "redis");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Postgres => "postgres",
            Protocol::Redis => "redis",
        }
    }
}

/// Severity of an injected PostgreSQL error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// `ERROR`: the statement fails, the session stays.
    Error,
    /// `FATAL`: the server ends the session after the error (as for 57P01).
    Fatal,
}

impl Severity {
    /// As written in the ErrorResponse `S` and `V` fields.
    ///
    /// ```
    /// assert_eq!(fault_proxy::dbproto::Severity::Fatal.as_str(), "FATAL");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        }
    }
}

/// A PostgreSQL error to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgError {
    /// Five characters `[0-9A-Z]`, e.g. `40001`.
    pub sqlstate: String,
    /// `ERROR` or `FATAL`.
    pub severity: Severity,
    /// The primary message (`M` field).
    pub message: String,
}

/// What a matching rule does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Holds the request this long before forwarding it.
    Delay(Duration),
    /// PostgreSQL: answers the statement with this ErrorResponse instead of running it.
    PgError(PgError),
    /// Redis: answers the command with this error line (without `-` and CRLF, e.g.
    /// `READONLY You can't write against a read only replica.`) instead of running it.
    RedisError(String),
    /// Forwards the request, then resets the client connection (TCP RST) before the reply.
    Reset,
    /// PostgreSQL, at connection start: answers the startup message with a `FATAL`
    /// ErrorResponse carrying this SQLSTATE and message (e.g. 53300, 57P03), then closes.
    Refuse {
        /// SQLSTATE.
        sqlstate: String,
        /// Message.
        message: String,
    },
    /// At connection start: closes the connection without a word.
    Drop,
}

/// When a rule is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Once per connection, at startup. PostgreSQL matches the pattern against
    /// `user=<u> database=<d> application_name=<a>`; Redis against the empty string.
    Connect,
    /// Per statement (PostgreSQL: simple Query text, or the text of the prepared
    /// statement a Bind executes) or per command (Redis: `NAME arg1 arg2 ...`, the name
    /// upper-cased).
    Request,
}

impl Action {
    /// When the action applies.
    ///
    /// ```
    /// use fault_proxy::dbproto::{Action, Phase};
    /// assert_eq!(Action::Drop.phase(), Phase::Connect);
    /// assert_eq!(Action::Reset.phase(), Phase::Request);
    /// ```
    pub fn phase(&self) -> Phase {
        match self {
            Action::Refuse { .. } | Action::Drop => Phase::Connect,
            _ => Phase::Request,
        }
    }
}

/// A rule could not be made or does not fit the protocol.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RuleError {
    /// The pattern is not a valid regular expression.
    #[error("pattern is not a valid regular expression: {0}")]
    Pattern(String),
    /// The rate is not within 0..=1.
    #[error("rate must be between 0 and 1, got {0}")]
    Rate(f64),
    /// The SQLSTATE is not five characters `[0-9A-Z]`.
    #[error("sqlstate must be five characters 0-9 or A-Z, got {0:?}")]
    SqlState(String),
    /// The Redis error line is not acceptable.
    #[error(transparent)]
    RedisError(#[from] RedisLineError),
    /// A message or name contains characters the protocol cannot carry.
    #[error("{0}")]
    Text(String),
    /// The action does not exist for this protocol.
    #[error("{action} is not a {protocol} action")]
    Unsupported {
        /// The action.
        action: &'static str,
        /// The protocol.
        protocol: &'static str,
    },
}

/// A Redis error line that cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisLineError {
    /// The line holds a CR or LF (it would end the reply early).
    #[error("the error line must not contain CR or LF")]
    LineBreak,
    /// The line does not start with an error prefix Redis uses.
    #[error("the error line must start with one of {prefixes} (got {0:?})", prefixes = REDIS_ERROR_PREFIXES.join(", "))]
    Prefix(String),
}

/// The error prefixes a `redis-error` may use, as Redis itself sends them.
pub const REDIS_ERROR_PREFIXES: &[&str] = &[
    "ERR",
    "LOADING",
    "READONLY",
    "BUSY",
    "MASTERDOWN",
    "NOSCRIPT",
    "OOM",
    "MISCONF",
    "NOREPLICAS",
    "EXECABORT",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "CROSSSLOT",
    "WRONGTYPE",
    "NOAUTH",
    "NOPERM",
];

/// Whether `code` is a SQLSTATE: five characters `[0-9A-Z]`.
///
/// ```
/// use fault_proxy::dbproto::valid_sqlstate;
/// assert!(valid_sqlstate("40001"));
/// assert!(valid_sqlstate("57P01"));
/// assert!(!valid_sqlstate("4001"));
/// assert!(!valid_sqlstate("40o01"));
/// ```
pub fn valid_sqlstate(code: &str) -> bool {
    code.len() == 5
        && code
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}

/// Checks a Redis error line (`PREFIX message`): the prefix must be one of
/// [`REDIS_ERROR_PREFIXES`] and the line must hold no CR or LF.
///
/// ```
/// use fault_proxy::dbproto::check_redis_error;
/// assert!(check_redis_error("READONLY You can't write against a read only replica.").is_ok());
/// assert!(check_redis_error("NOPE x").is_err());
/// assert!(check_redis_error("ERR a\r\nb").is_err());
/// ```
pub fn check_redis_error(line: &str) -> Result<(), RedisLineError> {
    if line.contains(['\r', '\n']) {
        return Err(RedisLineError::LineBreak);
    }
    let prefix = line.split(' ').next().unwrap_or_default();
    if !REDIS_ERROR_PREFIXES.contains(&prefix) {
        return Err(RedisLineError::Prefix(prefix.to_owned()));
    }
    Ok(())
}

fn check_text(what: &str, text: &str) -> Result<(), RuleError> {
    if text.contains('\0') {
        return Err(RuleError::Text(format!("{what} must not contain NUL")));
    }
    Ok(())
}

/// One named fault rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub(crate) name: String,
    pub(crate) pattern: Option<Regex>,
    pub(crate) action: Action,
    pub(crate) rate: f64,
}

impl Rule {
    /// A rule named `name` doing `action` on requests (or connections, see [`Phase`])
    /// matching `pattern` (all of them when `None`), with probability `rate`.
    ///
    /// ```
    /// use fault_proxy::dbproto::{Action, Rule};
    /// let rule = Rule::new("slow-saves", Some("(?i)^update saves"), Action::Delay(std::time::Duration::from_millis(200)), 0.5).unwrap();
    /// assert_eq!(rule.name(), "slow-saves");
    /// assert!(Rule::new("bad", Some("("), Action::Reset, 1.0).is_err());
    /// assert!(Rule::new("bad", None, Action::Reset, 1.5).is_err());
    /// ```
    pub fn new(
        name: &str,
        pattern: Option<&str>,
        action: Action,
        rate: f64,
    ) -> Result<Rule, RuleError> {
        let pattern = pattern
            .map(Regex::new)
            .transpose()
            .map_err(|e| RuleError::Pattern(e.to_string()))?;
        if !(0.0..=1.0).contains(&rate) {
            return Err(RuleError::Rate(rate));
        }
        match &action {
            Action::PgError(e) => {
                if !valid_sqlstate(&e.sqlstate) {
                    return Err(RuleError::SqlState(e.sqlstate.clone()));
                }
                check_text("message", &e.message)?;
            }
            Action::Refuse { sqlstate, message } => {
                if !valid_sqlstate(sqlstate) {
                    return Err(RuleError::SqlState(sqlstate.clone()));
                }
                check_text("message", message)?;
            }
            Action::RedisError(line) => check_redis_error(line)?,
            Action::Delay(_) | Action::Reset | Action::Drop => {}
        }
        Ok(Rule {
            name: name.to_owned(),
            pattern,
            action,
            rate,
        })
    }

    /// The rule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it does.
    pub fn action(&self) -> &Action {
        &self.action
    }

    /// Its probability per match.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Its pattern, as written.
    pub fn pattern(&self) -> Option<&str> {
        self.pattern.as_ref().map(Regex::as_str)
    }

    /// Checks that the action exists for `protocol`.
    pub(crate) fn fits(&self, protocol: Protocol) -> Result<(), RuleError> {
        let bad = match (&self.action, protocol) {
            (Action::PgError(_), Protocol::Redis) => Some("a PostgreSQL error"),
            (Action::Refuse { .. }, Protocol::Redis) => Some("refuse"),
            (Action::RedisError(_), Protocol::Postgres) => Some("a Redis error"),
            _ => None,
        };
        match bad {
            Some(action) => Err(RuleError::Unsupported {
                action,
                protocol: protocol.name(),
            }),
            None => Ok(()),
        }
    }

    /// Whether the rule fires for `text` in `phase` (pattern match, then the rate's dice).
    pub(crate) fn fires(&self, phase: Phase, text: &str) -> bool {
        self.action.phase() == phase
            && self.pattern.as_ref().is_none_or(|p| p.is_match(text))
            && (self.rate >= 1.0 || (self.rate > 0.0 && rand::random::<f64>() < self.rate))
    }
}
