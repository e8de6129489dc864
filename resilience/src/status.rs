//! Classifying answers by their HTTP status or gRPC code: which ones count against the
//! circuit breaker, and which ones are retried. The `classify` section of a policy's YAML.
//!
//! ```yaml
//! classify:
//!   failure: { http: [5xx, 429], grpc: [UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL] }
//!   retry:   { http: [502, 503, 504], grpc: [UNAVAILABLE] }
//! ```
//!
//! A list left out keeps its default (see [`StatusRules`]); an empty list (`http: []`) means
//! no status of that kind. An answer carrying a `grpc-status` header is judged by its gRPC
//! code, any other by its HTTP status. Errors of the inner service (a refused connection)
//! and per-attempt timeouts are failures and are retried whatever the rules say; this
//! crate's own refusals never are.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

use crate::classify::{classify_error, Classifier, Verdict};
use crate::config::{check, ConfigError};
use crate::error::ResilienceError;

/// What an answer says about itself: its HTTP status, its gRPC code. Implemented for
/// `http::Response<B>` (feature `http`); implement it for your own response type to judge it
/// with [`StatusRules`]. Both methods answer `None` unless overridden.
///
/// ```
/// use resilience::status::{CallStatus, GrpcCode};
/// struct SaveAck { status: u16 }
/// impl CallStatus for SaveAck {
///     fn http_status(&self) -> Option<u16> { Some(self.status) }
/// }
/// assert_eq!(SaveAck { status: 503 }.http_status(), Some(503));
/// assert_eq!(SaveAck { status: 200 }.grpc_code(), None::<GrpcCode>);
/// ```
pub trait CallStatus {
    /// The HTTP status of the answer, if it has one.
    fn http_status(&self) -> Option<u16> {
        None
    }
    /// The gRPC status code of the answer, if it has one.
    fn grpc_code(&self) -> Option<GrpcCode> {
        None
    }
}

#[cfg(feature = "http")]
impl<B> CallStatus for http::Response<B> {
    fn http_status(&self) -> Option<u16> {
        Some(self.status().as_u16())
    }

    /// The `grpc-status` header: a server answers an error before any message with the code
    /// in the headers (a "trailers-only" answer). A code sent in trailers after a streamed
    /// body is not seen here: judge such calls with a predicate in code.
    fn grpc_code(&self) -> Option<GrpcCode> {
        let value = self.headers().get("grpc-status")?.to_str().ok()?;
        Some(GrpcCode::from_number(value.trim().parse().ok()?))
    }
}

/// A gRPC status code (the seventeen of the gRPC specification).
///
/// ```
/// use resilience::status::GrpcCode;
/// assert_eq!(GrpcCode::from_number(14), GrpcCode::Unavailable);
/// assert_eq!(GrpcCode::from_number(99), GrpcCode::Unknown);
/// assert_eq!(GrpcCode::Unavailable.name(), "UNAVAILABLE");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum GrpcCode {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

const GRPC_CODES: [(GrpcCode, &str); 17] = [
    (GrpcCode::Ok, "OK"),
    (GrpcCode::Cancelled, "CANCELLED"),
    (GrpcCode::Unknown, "UNKNOWN"),
    (GrpcCode::InvalidArgument, "INVALID_ARGUMENT"),
    (GrpcCode::DeadlineExceeded, "DEADLINE_EXCEEDED"),
    (GrpcCode::NotFound, "NOT_FOUND"),
    (GrpcCode::AlreadyExists, "ALREADY_EXISTS"),
    (GrpcCode::PermissionDenied, "PERMISSION_DENIED"),
    (GrpcCode::ResourceExhausted, "RESOURCE_EXHAUSTED"),
    (GrpcCode::FailedPrecondition, "FAILED_PRECONDITION"),
    (GrpcCode::Aborted, "ABORTED"),
    (GrpcCode::OutOfRange, "OUT_OF_RANGE"),
    (GrpcCode::Unimplemented, "UNIMPLEMENTED"),
    (GrpcCode::Internal, "INTERNAL"),
    (GrpcCode::Unavailable, "UNAVAILABLE"),
    (GrpcCode::DataLoss, "DATA_LOSS"),
    (GrpcCode::Unauthenticated, "UNAUTHENTICATED"),
];

impl GrpcCode {
    /// The code numbered `number`; numbers outside the specification are `Unknown`, as the
    /// specification asks clients to read them.
    ///
    /// ```
    /// assert_eq!(resilience::status::GrpcCode::from_number(4).name(), "DEADLINE_EXCEEDED");
    /// ```
    pub fn from_number(number: i64) -> GrpcCode {
        usize::try_from(number)
            .ok()
            .and_then(|n| GRPC_CODES.get(n))
            .map_or(GrpcCode::Unknown, |(code, _)| *code)
    }

    /// The code's name as the specification spells it (`UNAVAILABLE`).
    ///
    /// ```
    /// assert_eq!(resilience::status::GrpcCode::NotFound.name(), "NOT_FOUND");
    /// ```
    pub fn name(self) -> &'static str {
        GRPC_CODES[self as usize].1
    }

    /// The code named `name`, in any case (`UNAVAILABLE`, `unavailable`, `Unavailable`;
    /// `DeadlineExceeded` as tonic prints it).
    ///
    /// ```
    /// use resilience::status::GrpcCode;
    /// assert_eq!(GrpcCode::from_name("deadline_exceeded"), Some(GrpcCode::DeadlineExceeded));
    /// assert_eq!(GrpcCode::from_name("DeadlineExceeded"), Some(GrpcCode::DeadlineExceeded));
    /// assert_eq!(GrpcCode::from_name("TIMEOUT"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<GrpcCode> {
        let wanted: String = name
            .chars()
            .filter(|c| *c != '_')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        GRPC_CODES
            .iter()
            .find(|(_, spelled)| spelled.replace('_', "") == wanted)
            .map(|(code, _)| *code)
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for GrpcCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for GrpcCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for GrpcCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CodeVisitor;
        impl Visitor<'_> for CodeVisitor {
            type Value = GrpcCode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a gRPC code name such as UNAVAILABLE, or its number 0-16")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<GrpcCode, E> {
                match GRPC_CODES.get(n as usize) {
                    Some((code, _)) if n <= 16 => Ok(*code),
                    _ => Err(E::custom(format!(
                        "gRPC code {n} does not exist: the codes are 0 (OK) to 16 (UNAUTHENTICATED)"
                    ))),
                }
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<GrpcCode, E> {
                match u64::try_from(n) {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::custom(format!(
                        "gRPC code {n} does not exist: the codes are 0 (OK) to 16 (UNAUTHENTICATED)"
                    ))),
                }
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<GrpcCode, E> {
                GrpcCode::from_name(name).ok_or_else(|| {
                    let names: Vec<&str> = GRPC_CODES.iter().map(|(_, n)| *n).collect();
                    E::custom(format!(
                        "unknown gRPC code `{name}`; the codes are {}",
                        names.join(", ")
                    ))
                })
            }
        }
        deserializer.deserialize_any(CodeVisitor)
    }
}

/// One entry of an `http` list: a status (`503`) or a class (`5xx`).
///
/// ```
/// use resilience::status::HttpStatusMatch;
/// assert!(HttpStatusMatch::Class(5).matches(503));
/// assert!(!HttpStatusMatch::Code(503).matches(502));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpStatusMatch {
    /// Every status of a class: `5` is 500-599.
    Class(u8),
    /// One status, 100-599.
    Code(u16),
}

impl HttpStatusMatch {
    /// Whether `status` is matched.
    ///
    /// ```
    /// assert!(resilience::status::HttpStatusMatch::Code(429).matches(429));
    /// ```
    pub fn matches(self, status: u16) -> bool {
        match self {
            HttpStatusMatch::Class(class) => status / 100 == u16::from(class),
            HttpStatusMatch::Code(code) => status == code,
        }
    }
}

impl fmt::Display for HttpStatusMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpStatusMatch::Class(class) => write!(f, "{class}xx"),
            HttpStatusMatch::Code(code) => write!(f, "{code}"),
        }
    }
}

impl Serialize for HttpStatusMatch {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            HttpStatusMatch::Code(code) => serializer.serialize_u16(*code),
            class => serializer.serialize_str(&class.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for HttpStatusMatch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MatchVisitor;
        const EXPECTED: &str = "an HTTP status 100-599 (503) or a class 1xx-5xx (5xx)";
        impl Visitor<'_> for MatchVisitor {
            type Value = HttpStatusMatch;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<HttpStatusMatch, E> {
                match u16::try_from(n) {
                    Ok(code) if (100..=599).contains(&code) => Ok(HttpStatusMatch::Code(code)),
                    _ => Err(E::custom(format!("{n} is not {EXPECTED}"))),
                }
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<HttpStatusMatch, E> {
                match u64::try_from(n) {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::custom(format!("{n} is not {EXPECTED}"))),
                }
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<HttpStatusMatch, E> {
                let class = text
                    .strip_suffix("xx")
                    .or_else(|| text.strip_suffix("XX"))
                    .and_then(|digit| digit.parse::<u8>().ok())
                    .filter(|class| (1..=5).contains(class));
                if let Some(class) = class {
                    return Ok(HttpStatusMatch::Class(class));
                }
                match text.parse::<u64>() {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::custom(format!("`{text}` is not {EXPECTED}"))),
                }
            }
        }
        deserializer.deserialize_any(MatchVisitor)
    }
}

/// The statuses of one verdict: HTTP statuses and gRPC codes. A list left out keeps the
/// default of its verdict.
///
/// ```
/// use resilience::status::{StatusSet, HttpStatusMatch};
/// let set = StatusSet { http: Some(vec![HttpStatusMatch::Code(503)]), grpc: None };
/// assert_eq!(set.http.unwrap().len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusSet {
    /// HTTP statuses and classes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Vec<HttpStatusMatch>>,
    /// gRPC codes, by name or number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<Vec<GrpcCode>>,
}

/// Which answers count against the circuit breaker (`failure`) and which are retried
/// (`retry`). The defaults, for HTTP and gRPC services:
///
/// | | HTTP | gRPC |
/// |---|---|---|
/// | `failure` | 5xx, 429 | UNKNOWN, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL, UNAVAILABLE, DATA_LOSS |
/// | `retry` | 408, 429, 502, 503, 504 | UNAVAILABLE, RESOURCE_EXHAUSTED |
///
/// A 404 or an INVALID_ARGUMENT is the caller's mistake, not the dependency's ill health: it
/// neither opens the breaker nor is retried. A 500 opens the breaker but is not retried (the
/// request may have done part of its work); list it under `retry` if your calls are
/// idempotent.
///
/// ```
/// use resilience::status::StatusRules;
/// use resilience::{Classifier, ResilienceError, Verdict};
/// let rules = StatusRules::default();
/// let answer = |code: u16| Ok::<_, ResilienceError<()>>(http::Response::builder().status(code).body(()).unwrap());
/// assert_eq!(rules.failures().classify(&answer(500)), Verdict::Failure);
/// assert_eq!(rules.retries().classify(&answer(500)), Verdict::Success);
/// assert_eq!(rules.retries().classify(&answer(503)), Verdict::Failure);
/// assert_eq!(rules.failures().classify(&answer(404)), Verdict::Success);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusRules {
    /// What counts against the breaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<StatusSet>,
    /// What is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<StatusSet>,
}

const DEFAULT_FAILURE_HTTP: &[HttpStatusMatch] =
    &[HttpStatusMatch::Class(5), HttpStatusMatch::Code(429)];
const DEFAULT_FAILURE_GRPC: &[GrpcCode] = &[
    GrpcCode::Unknown,
    GrpcCode::DeadlineExceeded,
    GrpcCode::ResourceExhausted,
    GrpcCode::Internal,
    GrpcCode::Unavailable,
    GrpcCode::DataLoss,
];
const DEFAULT_RETRY_HTTP: &[HttpStatusMatch] = &[
    HttpStatusMatch::Code(408),
    HttpStatusMatch::Code(429),
    HttpStatusMatch::Code(502),
    HttpStatusMatch::Code(503),
    HttpStatusMatch::Code(504),
];
const DEFAULT_RETRY_GRPC: &[GrpcCode] = &[GrpcCode::Unavailable, GrpcCode::ResourceExhausted];

impl StatusRules {
    /// Checks the rules: no list names a status twice, and `OK` is never a failure nor
    /// retried.
    ///
    /// ```
    /// let rules: resilience::status::StatusRules =
    ///     resilience::config::from_yaml("retry: { grpc: [OK] }").unwrap();
    /// assert_eq!(rules.validate().unwrap_err().field(), "retry.grpc");
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (verdict, set) in [("failure", &self.failure), ("retry", &self.retry)] {
            let Some(set) = set else { continue };
            if let Some(http) = &set.http {
                for (i, entry) in http.iter().enumerate() {
                    let overlap = http[..i].iter().find(|earlier| match (earlier, entry) {
                        (HttpStatusMatch::Class(c), HttpStatusMatch::Code(s))
                        | (HttpStatusMatch::Code(s), HttpStatusMatch::Class(c)) => {
                            HttpStatusMatch::Class(*c).matches(*s)
                        }
                        (a, b) => *a == b,
                    });
                    if let Some(earlier) = overlap {
                        return Err(ConfigError::new(
                            format!("{verdict}.http"),
                            format!("{entry} is already covered by {earlier} in this list"),
                        ));
                    }
                }
            }
            if let Some(grpc) = &set.grpc {
                check(
                    !grpc.contains(&GrpcCode::Ok),
                    format!("{verdict}.grpc"),
                    "OK is a success: it cannot be listed here",
                )?;
                for (i, code) in grpc.iter().enumerate() {
                    check(
                        !grpc[..i].contains(code),
                        format!("{verdict}.grpc"),
                        format!("{code} is listed twice"),
                    )?;
                }
            }
        }
        Ok(())
    }

    /// The classifier for the circuit breaker: answers in the `failure` lists are failures.
    ///
    /// ```
    /// let failures = resilience::status::StatusRules::default().failures();
    /// assert!(failures.matches_http(503) && !failures.matches_http(404));
    /// ```
    pub fn failures(&self) -> StatusClassifier {
        StatusClassifier::new(
            self.failure.as_ref(),
            DEFAULT_FAILURE_HTTP,
            DEFAULT_FAILURE_GRPC,
        )
    }

    /// The classifier for the retry: answers in the `retry` lists are retried.
    ///
    /// ```
    /// let retries = resilience::status::StatusRules::default().retries();
    /// assert!(retries.matches_http(503) && !retries.matches_http(500));
    /// ```
    pub fn retries(&self) -> StatusClassifier {
        StatusClassifier::new(self.retry.as_ref(), DEFAULT_RETRY_HTTP, DEFAULT_RETRY_GRPC)
    }
}

/// One verdict's statuses, compiled for a lookup per call: a bit per HTTP status 100-599
/// and per gRPC code. `Copy`, so the retry's per-request clone costs no allocation.
///
/// Answers whose [`CallStatus`] names a listed status are `Failure`, other answers
/// `Success`; errors as [`ErrorsAreFailures`](crate::ErrorsAreFailures).
///
/// ```
/// use resilience::status::{StatusRules, StatusClassifier};
/// let c: StatusClassifier = StatusRules::default().failures();
/// assert!(c.matches_http(429));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusClassifier {
    /// Bit `status - 100` for each HTTP status 100-599.
    http: [u64; 8],
    /// Bit `code` for each gRPC code.
    grpc: u32,
}

impl StatusClassifier {
    fn new(
        set: Option<&StatusSet>,
        default_http: &[HttpStatusMatch],
        default_grpc: &[GrpcCode],
    ) -> Self {
        let http = set.and_then(|s| s.http.as_deref()).unwrap_or(default_http);
        let grpc = set.and_then(|s| s.grpc.as_deref()).unwrap_or(default_grpc);
        let mut classifier = StatusClassifier {
            http: [0; 8],
            grpc: 0,
        };
        for status in 100..=599u16 {
            if http.iter().any(|entry| entry.matches(status)) {
                let bit = usize::from(status - 100);
                classifier.http[bit / 64] |= 1 << (bit % 64);
            }
        }
        for code in grpc {
            classifier.grpc |= code.bit();
        }
        classifier
    }

    /// Whether HTTP `status` is listed.
    ///
    /// ```
    /// assert!(resilience::status::StatusRules::default().failures().matches_http(500));
    /// ```
    pub fn matches_http(&self, status: u16) -> bool {
        match status.checked_sub(100).map(usize::from) {
            Some(bit) if bit < 500 => self.http[bit / 64] & (1 << (bit % 64)) != 0,
            _ => false,
        }
    }

    /// Whether gRPC `code` is listed.
    ///
    /// ```
    /// use resilience::status::{GrpcCode, StatusRules};
    /// assert!(StatusRules::default().retries().matches_grpc(GrpcCode::Unavailable));
    /// ```
    pub fn matches_grpc(&self, code: GrpcCode) -> bool {
        self.grpc & code.bit() != 0
    }
}

impl<Res: CallStatus, E> Classifier<Res, E> for StatusClassifier {
    #[inline]
    fn classify(&self, result: &Result<Res, ResilienceError<E>>) -> Verdict {
        let answer = match result {
            Ok(answer) => answer,
            Err(err) => return classify_error(err),
        };
        let listed = match answer.grpc_code() {
            Some(code) => self.matches_grpc(code),
            None => answer
                .http_status()
                .is_some_and(|status| self.matches_http(status)),
        };
        if listed {
            Verdict::Failure
        } else {
            Verdict::Success
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(yaml: &str) -> Result<StatusRules, ConfigError> {
        let rules: StatusRules = crate::config::from_yaml(yaml)?;
        rules.validate()?;
        Ok(rules)
    }

    #[test]
    fn a_list_left_out_keeps_its_default_and_an_empty_list_matches_nothing() {
        let r = rules("failure: { http: [500] }\nretry: { http: [] }").unwrap();
        assert!(r.failures().matches_http(500));
        assert!(!r.failures().matches_http(503));
        assert!(r.failures().matches_grpc(GrpcCode::Unavailable));
        assert!(!r.retries().matches_http(503));
        assert!(r.retries().matches_grpc(GrpcCode::Unavailable));
    }

    #[test]
    fn classes_codes_and_names_are_read_in_every_spelling() {
        let r = rules(
            "failure: { http: [4xx, \"503\", 5XX], grpc: [unavailable, 4, DeadlineExceeded] }",
        )
        .unwrap_err();
        // 503 is inside 5XX: the overlap is refused, at the list.
        assert_eq!(r.field(), "failure.http");
        let r = rules("failure: { http: [4xx, 5XX], grpc: [unavailable, 13, DeadlineExceeded] }")
            .unwrap();
        let f = r.failures();
        assert!(f.matches_http(404) && f.matches_http(599) && !f.matches_http(399));
        assert!(f.matches_grpc(GrpcCode::Internal) && f.matches_grpc(GrpcCode::DeadlineExceeded));
        assert!(!f.matches_grpc(GrpcCode::NotFound));
    }

    #[test]
    fn bad_entries_name_their_place_and_what_is_allowed() {
        let err = rules("failure:\n  http: [500, 600]\n").unwrap_err();
        assert_eq!(err.field(), "failure.http[1]");
        assert_eq!(err.location().map(|(line, _)| line), Some(2));
        assert!(err.message().contains("100-599"), "{err}");
        let err = rules("retry:\n  grpc: [UNAVAILABLE, TIMEOUT]\n").unwrap_err();
        assert_eq!(err.field(), "retry.grpc[1]");
        assert!(err.message().contains("DEADLINE_EXCEEDED"), "{err}");
        let err = rules("retry:\n  grpc: [17]\n").unwrap_err();
        assert!(err.message().contains("0 (OK) to 16"), "{err}");
        let err = rules("retry:\n  htp: [503]\n").unwrap_err();
        assert_eq!(err.field(), "retry.htp");
        let err = rules("failure: { http: [6xx] }").unwrap_err();
        assert!(err.message().contains("1xx-5xx"), "{err}");
        let err = rules("failure: { grpc: [UNAVAILABLE, unavailable] }").unwrap_err();
        assert_eq!(err.field(), "failure.grpc");
        assert!(err.message().contains("twice"), "{err}");
    }

    #[test]
    fn rules_survive_a_round_trip_through_yaml() {
        let r =
            rules("failure: { http: [5xx, 429], grpc: [INTERNAL] }\nretry: { http: [] }").unwrap();
        let text = serde_yaml::to_string(&r).unwrap();
        assert_eq!(rules(&text).unwrap(), r);
    }

    #[test]
    fn statuses_outside_the_table_are_never_listed() {
        let all = rules("failure: { http: [1xx, 2xx, 3xx, 4xx, 5xx] }")
            .unwrap()
            .failures();
        assert!(all.matches_http(100) && all.matches_http(599));
        for status in [0, 99, 600, 999, u16::MAX] {
            assert!(!all.matches_http(status), "{status}");
        }
    }
}
