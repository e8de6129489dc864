//! Prometheus metrics (prometheus-client) per policy name.
//!
//! [`ResilienceMetrics::register`] adds the metric families to a registry once;
//! [`ResilienceMetrics::policy`] resolves one policy's counters up front so that recording on
//! the hot path is a single atomic add, with no label lookup, lock or allocation.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::fmt::Write as _;
use std::sync::Arc;

use crate::circuit_breaker::CircuitState;
use crate::error::{ErrorKind, TimeoutScope};

/// How a call through a policy ended, as counted by `resilience_calls_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    /// The inner service answered.
    Success,
    /// The inner service failed.
    Failure,
    /// Rejected by an open circuit.
    CircuitOpen,
    /// Rejected by the rate limiter.
    RateLimited,
    /// Timed out.
    Timeout,
    /// Shed by a full bulkhead.
    BulkheadFull,
    /// Failed, and the fallback answered instead.
    Fallback,
}

impl CallOutcome {
    const ALL: [CallOutcome; 7] = [
        CallOutcome::Success,
        CallOutcome::Failure,
        CallOutcome::CircuitOpen,
        CallOutcome::RateLimited,
        CallOutcome::Timeout,
        CallOutcome::BulkheadFull,
        CallOutcome::Fallback,
    ];

    /// The outcome that counts an error of this kind.
    ///
    /// ```
    /// use resilience::{metrics::CallOutcome, ErrorKind};
    /// assert_eq!(CallOutcome::of_error(ErrorKind::Timeout), CallOutcome::Timeout);
    /// ```
    pub fn of_error(kind: ErrorKind) -> CallOutcome {
        match kind {
            ErrorKind::CircuitOpen => CallOutcome::CircuitOpen,
            // Refused by the rate limiter for good: counted with its other refusals.
            ErrorKind::RateLimited | ErrorKind::OverCapacity => CallOutcome::RateLimited,
            ErrorKind::Timeout => CallOutcome::Timeout,
            ErrorKind::BulkheadFull => CallOutcome::BulkheadFull,
            ErrorKind::Inner => CallOutcome::Failure,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum StateLabel {
    Closed,
    Open,
    HalfOpen,
    ForcedOpen,
    Disabled,
}

impl From<CircuitState> for StateLabel {
    fn from(state: CircuitState) -> Self {
        match state {
            CircuitState::Closed => StateLabel::Closed,
            CircuitState::Open => StateLabel::Open,
            CircuitState::HalfOpen => StateLabel::HalfOpen,
            CircuitState::ForcedOpen => StateLabel::ForcedOpen,
            CircuitState::Disabled => StateLabel::Disabled,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ScopeLabel {
    Attempt,
    Overall,
}

// Label values in Prometheus' usual snake_case.
impl EncodeLabelValue for CallOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            CallOutcome::Success => "success",
            CallOutcome::Failure => "failure",
            CallOutcome::CircuitOpen => "circuit_open",
            CallOutcome::RateLimited => "rate_limited",
            CallOutcome::Timeout => "timeout",
            CallOutcome::BulkheadFull => "bulkhead_full",
            CallOutcome::Fallback => "fallback",
        })
    }
}

impl EncodeLabelValue for StateLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            StateLabel::Closed => "closed",
            StateLabel::Open => "open",
            StateLabel::HalfOpen => "half_open",
            StateLabel::ForcedOpen => "forced_open",
            StateLabel::Disabled => "disabled",
        })
    }
}

impl EncodeLabelValue for ScopeLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            ScopeLabel::Attempt => "attempt",
            ScopeLabel::Overall => "overall",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PolicyLabels {
    policy: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CallLabels {
    policy: String,
    outcome: CallOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabels {
    policy: String,
    state: StateLabel,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TransitionLabels {
    policy: String,
    from: StateLabel,
    to: StateLabel,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ScopeLabels {
    policy: String,
    scope: ScopeLabel,
}

/// The metric families of this crate, registered once in a prometheus-client [`Registry`].
///
/// ```
/// use prometheus_client::registry::Registry;
/// let mut registry = Registry::default();
/// let metrics = resilience::metrics::ResilienceMetrics::register(&mut registry);
/// let saves = metrics.policy("player-saves");
/// saves.record_retry();
/// let mut text = String::new();
/// prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
/// assert!(text.contains(r#"resilience_retries_total{policy="player-saves"} 1"#));
/// ```
#[derive(Debug, Clone, Default)]
pub struct ResilienceMetrics {
    calls: Family<CallLabels, Counter>,
    circuit_state: Family<StateLabels, Gauge>,
    transitions: Family<TransitionLabels, Counter>,
    retries: Family<PolicyLabels, Counter>,
    retry_budget_exhausted: Family<PolicyLabels, Counter>,
    rate_limited: Family<PolicyLabels, Counter>,
    timeouts: Family<ScopeLabels, Counter>,
    fallbacks: Family<PolicyLabels, Counter>,
    shed: Family<PolicyLabels, Counter>,
}

impl ResilienceMetrics {
    /// Registers every family under the `resilience_` prefix.
    ///
    /// ```
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let _metrics = resilience::metrics::ResilienceMetrics::register(&mut registry);
    /// ```
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = ResilienceMetrics::default();
        let r = registry.sub_registry_with_prefix("resilience");
        r.register(
            "calls",
            "Calls through a resilience policy by outcome",
            metrics.calls.clone(),
        );
        r.register(
            "circuit_state",
            "1 for the circuit breaker's current state, 0 for the others",
            metrics.circuit_state.clone(),
        );
        r.register(
            "circuit_transitions",
            "Circuit breaker state transitions",
            metrics.transitions.clone(),
        );
        r.register(
            "retries",
            "Retries issued (not counting first attempts)",
            metrics.retries.clone(),
        );
        r.register(
            "retry_budget_exhausted",
            "Retries refused because the retry budget was spent",
            metrics.retry_budget_exhausted.clone(),
        );
        r.register(
            "rate_limited",
            "Calls rejected by the rate limiter",
            metrics.rate_limited.clone(),
        );
        r.register(
            "timeouts",
            "Timeouts by scope (attempt or overall)",
            metrics.timeouts.clone(),
        );
        r.register(
            "fallbacks",
            "Calls answered by the fallback",
            metrics.fallbacks.clone(),
        );
        r.register(
            "bulkhead_shed",
            "Calls shed by a full bulkhead",
            metrics.shed.clone(),
        );
        metrics
    }

    /// Resolves the counters of one policy.
    ///
    /// ```
    /// let metrics = resilience::metrics::ResilienceMetrics::default();
    /// let matchmaking = metrics.policy("matchmaking");
    /// assert_eq!(matchmaking.name(), "matchmaking");
    /// ```
    pub fn policy(&self, name: &str) -> PolicyMetrics {
        let policy = || PolicyLabels {
            policy: name.to_owned(),
        };
        let calls = CallOutcome::ALL.map(|outcome| {
            self.calls
                .get_or_create(&CallLabels {
                    policy: name.to_owned(),
                    outcome,
                })
                .clone()
        });
        let state = CircuitState::ALL.map(|state| {
            self.circuit_state
                .get_or_create(&StateLabels {
                    policy: name.to_owned(),
                    state: state.into(),
                })
                .clone()
        });
        let scope = |scope| {
            self.timeouts
                .get_or_create(&ScopeLabels {
                    policy: name.to_owned(),
                    scope,
                })
                .clone()
        };
        PolicyMetrics(Arc::new(Resolved {
            name: name.into(),
            calls,
            state,
            transitions: self.transitions.clone(),
            retries: self.retries.get_or_create(&policy()).clone(),
            retry_budget_exhausted: self.retry_budget_exhausted.get_or_create(&policy()).clone(),
            rate_limited: self.rate_limited.get_or_create(&policy()).clone(),
            timeouts: [scope(ScopeLabel::Attempt), scope(ScopeLabel::Overall)],
            fallbacks: self.fallbacks.get_or_create(&policy()).clone(),
            shed: self.shed.get_or_create(&policy()).clone(),
        }))
    }
}

#[derive(Debug)]
struct Resolved {
    name: Box<str>,
    calls: [Counter; 7],
    state: [Gauge; 5],
    transitions: Family<TransitionLabels, Counter>,
    retries: Counter,
    retry_budget_exhausted: Counter,
    rate_limited: Counter,
    timeouts: [Counter; 2],
    fallbacks: Counter,
    shed: Counter,
}

/// One policy's counters, resolved up front; cheap to clone (one `Arc`).
///
/// ```
/// let metrics = resilience::metrics::ResilienceMetrics::default().policy("saves");
/// metrics.record_call(resilience::metrics::CallOutcome::Success);
/// ```
#[derive(Debug, Clone)]
pub struct PolicyMetrics(Arc<Resolved>);

impl PolicyMetrics {
    /// The policy name these counters are labelled with.
    ///
    /// ```
    /// let m = resilience::metrics::ResilienceMetrics::default().policy("a");
    /// assert_eq!(m.name(), "a");
    /// ```
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Counts one finished call.
    ///
    /// ```
    /// # let m = resilience::metrics::ResilienceMetrics::default().policy("a");
    /// m.record_call(resilience::metrics::CallOutcome::Timeout);
    /// ```
    #[inline]
    pub fn record_call(&self, outcome: CallOutcome) {
        self.0.calls[outcome as usize].inc();
    }

    /// Records a circuit breaker transition and sets the state gauge.
    ///
    /// ```
    /// # let m = resilience::metrics::ResilienceMetrics::default().policy("a");
    /// use resilience::CircuitState;
    /// m.record_transition(CircuitState::Closed, CircuitState::Open);
    /// ```
    pub fn record_transition(&self, from: CircuitState, to: CircuitState) {
        self.0
            .transitions
            .get_or_create(&TransitionLabels {
                policy: self.0.name.to_string(),
                from: from.into(),
                to: to.into(),
            })
            .inc();
        self.set_state(to);
    }

    /// Sets the circuit state gauge (1 for `state`, 0 for the others).
    ///
    /// ```
    /// # let m = resilience::metrics::ResilienceMetrics::default().policy("a");
    /// m.set_state(resilience::CircuitState::Closed);
    /// ```
    pub fn set_state(&self, state: CircuitState) {
        for (candidate, gauge) in CircuitState::ALL.iter().zip(self.0.state.iter()) {
            gauge.set(i64::from(*candidate == state));
        }
    }

    /// Counts one retry.
    ///
    /// ```
    /// # let m = resilience::metrics::ResilienceMetrics::default().policy("a");
    /// m.record_retry();
    /// ```
    #[inline]
    pub fn record_retry(&self) {
        self.0.retries.inc();
    }

    /// Counts one retry refused by the retry budget.
    ///
    /// ```
    /// # let m = resilience::metrics::ResilienceMetrics::default().policy("a");
    /// m.record_budget_exhausted();
    /// ```
    #[inline]
    pub fn record_budget_exhausted(&self) {
        self.0.retry_budget_exhausted.inc();
    }

    /// Counts one call rejected by the rate limiter.
    ///
    /// ```
    /// # let m = resilience::metrics::ResilienceMetrics::default().policy("a");
    /// m.record_rate_limited();
    /// ```
    #[inline]
    pub fn record_rate_limited(&self) {
        self.0.rate_limited.inc();
    }

    /// Counts one timeout.
    ///
    /// ```
    /// # let m = resilience::metrics::ResilienceMetrics::default().policy("a");
    /// m.record_timeout(resilience::TimeoutScope::Attempt);
    /// ```
    #[inline]
    pub fn record_timeout(&self, scope: TimeoutScope) {
        self.0.timeouts[scope as usize].inc();
    }

    /// Counts one call answered by a fallback.
    ///
    /// ```
    /// # let m = resilience::metrics::ResilienceMetrics::default().policy("a");
    /// m.record_fallback();
    /// ```
    #[inline]
    pub fn record_fallback(&self) {
        self.0.fallbacks.inc();
    }

    /// Counts one call shed by a full bulkhead.
    ///
    /// ```
    /// # let m = resilience::metrics::ResilienceMetrics::default().policy("a");
    /// m.record_shed();
    /// ```
    #[inline]
    pub fn record_shed(&self) {
        self.0.shed.inc();
    }
}
