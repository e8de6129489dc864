//! One policy stacking every layer in a fixed, documented order, built in code or from YAML.
//!
//! Outermost to innermost:
//!
//! 1. **fallback**: sees every failure below, answers chosen ones; counts call outcomes;
//! 2. **rate limit**: refuses excess calls before they use anything; never retried;
//! 3. **overall timeout**: one deadline for the call, written into the request;
//! 4. **retry**: re-runs failed attempts within the deadline and the budget;
//! 5. **circuit breaker**: records each attempt; an open circuit stops retries;
//! 6. **bulkhead**: each attempt takes a slot; shed calls are not counted as failures;
//! 7. **per-attempt timeout**: frees the slot of an attempt that hangs;
//! 8. your service.
//!
//! A section the configuration leaves out is switched off where it stands: calls pass
//! straight through it, and the policy's service has the same type whatever is
//! configured (which keeps the compile time of every service using it in seconds).

use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::util::Either;
use tower::{Layer, Service};

use crate::bulkhead::{Bulkhead, BulkheadConfig, BulkheadLayer};
use crate::circuit_breaker::{
    CircuitBreaker, CircuitBreakerConfig, CircuitBreakerHandle, CircuitBreakerLayer, StateChange,
    StateListener,
};
use crate::classify::ErrorsAreFailures;
use crate::config::{from_yaml, locate, ConfigError};
use crate::fallback::{Fallback, FallbackLayer, NoFallback, NoInnerErrors};
use crate::lift::{LiftInner, Lifted};
use crate::metrics::{PolicyMetrics, ResilienceMetrics};
use crate::rate_limit::{Global, RateLimit, RateLimitConfig, RateLimitHandle, RateLimitLayer};
use crate::retry::{RetryConfig, RetryLayer, RetryPolicy};
use crate::status::{StatusClassifier, StatusRules};
use crate::timeout::{SwitchableTimeout, TimeoutConfig, TimeoutLayer};

/// A policy's settings: every section is optional; a missing section leaves its layer out.
///
/// ```
/// let yaml = r#"
/// name: player-saves
/// timeout: { per_attempt: 150ms, overall: 450ms }
/// retry: { max_attempts: 3, base_backoff: 20ms, max_backoff: 200ms }
/// circuit_breaker:
///   window: { kind: time, length: 10s, buckets: 10 }
///   failure_rate_threshold: 50
///   minimum_calls: 20
///   open_backoff: { kind: exponential, start: 2s, max: 30s }
/// bulkhead: { max_concurrent: 64, max_queue: 128 }
/// rate_limit: { per_second: 500, burst: 100 }
/// "#;
/// let config = resilience::ResiliencePolicyConfig::from_yaml(yaml).unwrap();
/// assert_eq!(config.name, "player-saves");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResiliencePolicyConfig {
    /// The policy's name: the `policy` label of its metrics.
    #[serde(default = "default_name")]
    pub name: String,
    /// Circuit breaker settings.
    #[serde(default)]
    pub circuit_breaker: Option<CircuitBreakerConfig>,
    /// Retry settings.
    #[serde(default)]
    pub retry: Option<RetryConfig>,
    /// Per-attempt and overall timeouts.
    #[serde(default)]
    pub timeout: Option<TimeoutConfig>,
    /// Global rate limit (keyed limits are set up in code).
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// Concurrency cap and wait queue.
    #[serde(default)]
    pub bulkhead: Option<BulkheadConfig>,
    /// Which HTTP statuses and gRPC codes count against the breaker and are retried (see
    /// [`StatusRules`]); honoured by [`ResiliencePolicy::from_config_http`], refused by the
    /// generic [`ResiliencePolicy::from_config`], whose answers carry no status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classify: Option<StatusRules>,
}

fn default_name() -> String {
    "default".to_owned()
}

impl Default for ResiliencePolicyConfig {
    fn default() -> Self {
        ResiliencePolicyConfig {
            name: default_name(),
            circuit_breaker: None,
            retry: None,
            timeout: None,
            rate_limit: None,
            bulkhead: None,
            classify: None,
        }
    }
}

/// Reading a policy file failed.
#[derive(Debug, thiserror::Error)]
pub enum PolicyFileError {
    /// The file could not be read.
    #[error("cannot read policy file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file's content is not a valid policy.
    #[error("{path}: {source}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, with the field and line.
        source: ConfigError,
    },
}

impl ResiliencePolicyConfig {
    /// Parses and checks YAML text. Unknown fields are refused; errors name the field path
    /// and its line.
    ///
    /// ```
    /// let err = resilience::ResiliencePolicyConfig::from_yaml(
    ///     "name: saves\nbulkhead:\n  max_concurrent: 0\n",
    /// ).unwrap_err();
    /// assert_eq!(err.field(), "bulkhead.max_concurrent");
    /// assert_eq!(err.location(), Some((3, 3)));
    /// ```
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let config: ResiliencePolicyConfig = from_yaml(text)?;
        config.validate().map_err(|err| {
            let location = locate(text, err.field());
            err.at(location)
        })?;
        Ok(config)
    }

    /// Reads, parses and checks a YAML policy file.
    ///
    /// ```
    /// let err = resilience::ResiliencePolicyConfig::from_file("/nonexistent/policy.yaml").unwrap_err();
    /// assert!(err.to_string().contains("/nonexistent/policy.yaml"));
    /// ```
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, PolicyFileError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PolicyFileError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::from_yaml(&text).map_err(|source| PolicyFileError::Invalid {
            path: shown,
            source,
        })
    }

    /// Checks every section.
    ///
    /// ```
    /// let config = resilience::ResiliencePolicyConfig::default();
    /// config.validate().unwrap();
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.trim().is_empty() || self.name.len() > 128 {
            return Err(ConfigError::new(
                "name",
                "must be 1 to 128 characters, not blank",
            ));
        }
        if let Some(cb) = &self.circuit_breaker {
            cb.validate()?;
        }
        if let Some(retry) = &self.retry {
            retry.validate()?;
        }
        if let Some(timeout) = &self.timeout {
            timeout.validate()?;
        }
        if let Some(rate) = &self.rate_limit {
            rate.quota()?;
        }
        if let Some(bulkhead) = &self.bulkhead {
            bulkhead.validate()?;
        }
        if let Some(rules) = &self.classify {
            rules.validate().map_err(|err| err.under("classify"))?;
        }
        Ok(())
    }
}

/// Builds a [`ResiliencePolicy`] in code.
///
/// ```
/// use resilience::{ResiliencePolicy, retry::RetryConfig, timeout::TimeoutConfig};
/// use std::time::Duration;
/// let policy = ResiliencePolicy::builder("matchmaking")
///     .timeout(TimeoutConfig { per_attempt: Some(Duration::from_millis(100)), overall: Some(Duration::from_millis(400)) })
///     .retry(RetryConfig { max_attempts: 3, base_backoff: Duration::from_millis(10), max_backoff: Duration::from_millis(100), budget: None })
///     .build()
///     .unwrap();
/// # let _ = policy;
/// ```
pub struct ResiliencePolicyBuilder<C = ErrorsAreFailures, R = ErrorsAreFailures> {
    config: ResiliencePolicyConfig,
    metrics: Option<ResilienceMetrics>,
    listeners: Vec<StateListener>,
    failures: C,
    retries: R,
}

impl<C, R> ResiliencePolicyBuilder<C, R> {
    /// Adds a circuit breaker.
    ///
    /// ```
    /// let b = resilience::ResiliencePolicy::builder("x").circuit_breaker(Default::default());
    /// # let _ = b;
    /// ```
    pub fn circuit_breaker(mut self, config: CircuitBreakerConfig) -> Self {
        self.config.circuit_breaker = Some(config);
        self
    }

    /// Adds retries.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let b = resilience::ResiliencePolicy::builder("x").retry(resilience::retry::RetryConfig {
    ///     max_attempts: 2, base_backoff: Duration::from_millis(5), max_backoff: Duration::from_millis(50), budget: None,
    /// });
    /// # let _ = b;
    /// ```
    pub fn retry(mut self, config: RetryConfig) -> Self {
        self.config.retry = Some(config);
        self
    }

    /// Adds per-attempt and/or overall timeouts.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let b = resilience::ResiliencePolicy::builder("x").timeout(resilience::timeout::TimeoutConfig {
    ///     per_attempt: Some(Duration::from_millis(100)), overall: None,
    /// });
    /// # let _ = b;
    /// ```
    pub fn timeout(mut self, config: TimeoutConfig) -> Self {
        self.config.timeout = Some(config);
        self
    }

    /// Adds a global rate limit.
    ///
    /// ```
    /// let b = resilience::ResiliencePolicy::builder("x").rate_limit(resilience::rate_limit::RateLimitConfig {
    ///     per_second: 100.0, burst: 10, max_wait: Default::default(),
    /// });
    /// # let _ = b;
    /// ```
    pub fn rate_limit(mut self, config: RateLimitConfig) -> Self {
        self.config.rate_limit = Some(config);
        self
    }

    /// Adds a bulkhead.
    ///
    /// ```
    /// let b = resilience::ResiliencePolicy::builder("x").bulkhead(resilience::bulkhead::BulkheadConfig {
    ///     max_concurrent: 16, max_queue: 32, max_wait: None,
    /// });
    /// # let _ = b;
    /// ```
    pub fn bulkhead(mut self, config: BulkheadConfig) -> Self {
        self.config.bulkhead = Some(config);
        self
    }

    /// Records metrics for this policy, labelled with its name.
    ///
    /// ```
    /// let metrics = resilience::metrics::ResilienceMetrics::default();
    /// let b = resilience::ResiliencePolicy::builder("x").metrics(&metrics);
    /// # let _ = b;
    /// ```
    pub fn metrics(mut self, metrics: &ResilienceMetrics) -> Self {
        self.metrics = Some(metrics.clone());
        self
    }

    /// Calls `listener` on every circuit breaker state change.
    ///
    /// ```
    /// let b = resilience::ResiliencePolicy::builder("x").on_state_change(|c| println!("{c:?}"));
    /// # let _ = b;
    /// ```
    pub fn on_state_change(
        mut self,
        listener: impl Fn(&StateChange) + Send + Sync + 'static,
    ) -> Self {
        self.listeners.push(Arc::new(listener));
        self
    }

    /// Decides in code which results count against the circuit breaker: a closure
    /// `Fn(&Result<Res, ResilienceError<E>>) -> Verdict` or any [`Classifier`](crate::Classifier).
    /// Without one, every answer is a success and every error of your service a failure.
    ///
    /// ```
    /// use resilience::{ResiliencePolicy, ResilienceError, Verdict};
    /// #[derive(Debug)]
    /// enum SaveError { Conflict, Database }
    /// let policy = ResiliencePolicy::builder("saves")
    ///     .circuit_breaker(Default::default())
    ///     // A conflict is the player's stale save, not the database failing.
    ///     .failure_classifier(|r: &Result<u64, ResilienceError<SaveError>>| match r {
    ///         Err(ResilienceError::Inner(SaveError::Conflict)) => Verdict::Success,
    ///         Err(e) => resilience::classify::classify_error(e),
    ///         Ok(_) => Verdict::Success,
    ///     })
    ///     .build()
    ///     .unwrap();
    /// # let _ = policy;
    /// ```
    pub fn failure_classifier<C2>(self, classifier: C2) -> ResiliencePolicyBuilder<C2, R> {
        ResiliencePolicyBuilder {
            config: self.config,
            metrics: self.metrics,
            listeners: self.listeners,
            failures: classifier,
            retries: self.retries,
        }
    }

    /// Decides in code which results are retried (those it calls
    /// [`Verdict::Failure`](crate::Verdict::Failure)); this crate's own refusals (open circuit,
    /// rate limit, full bulkhead, expired deadline) never are. Without one, every error of
    /// your service is retried.
    ///
    /// ```
    /// use resilience::{ResiliencePolicy, ResilienceError, Verdict};
    /// # use std::time::Duration;
    /// let policy = ResiliencePolicy::builder("matchmaking")
    ///     .retry(resilience::retry::RetryConfig { max_attempts: 3, base_backoff: Duration::from_millis(10), max_backoff: Duration::from_millis(100), budget: None })
    ///     // Retry only errors that say so.
    ///     .retry_classifier(|r: &Result<u32, ResilienceError<std::io::Error>>| match r {
    ///         Err(ResilienceError::Inner(e)) if e.kind() == std::io::ErrorKind::InvalidInput => Verdict::Success,
    ///         Err(e) => resilience::classify::classify_error(e),
    ///         Ok(_) => Verdict::Success,
    ///     })
    ///     .build()
    ///     .unwrap();
    /// # let _ = policy;
    /// ```
    pub fn retry_classifier<R2>(self, classifier: R2) -> ResiliencePolicyBuilder<C, R2> {
        ResiliencePolicyBuilder {
            config: self.config,
            metrics: self.metrics,
            listeners: self.listeners,
            failures: self.failures,
            retries: classifier,
        }
    }

    /// Sets the `classify` section: which HTTP statuses and gRPC codes count against the
    /// breaker and are retried. Built with [`build_http`](ResiliencePolicyBuilder::build_http).
    ///
    /// ```
    /// use resilience::status::{HttpStatusMatch, StatusRules, StatusSet};
    /// let rules = StatusRules {
    ///     retry: Some(StatusSet { http: Some(vec![HttpStatusMatch::Code(503)]), grpc: None }),
    ///     ..Default::default()
    /// };
    /// let policy = resilience::ResiliencePolicy::builder("lobby").classify(rules).build_http().unwrap();
    /// # let _ = policy;
    /// ```
    pub fn classify(mut self, rules: StatusRules) -> Self {
        self.config.classify = Some(rules);
        self
    }

    /// Checks the settings and builds the policy. A `classify` section is refused here: its
    /// rules judge answers by their HTTP status or gRPC code, so a policy with them is built
    /// with [`build_http`](ResiliencePolicyBuilder::build_http).
    ///
    /// ```
    /// let policy = resilience::ResiliencePolicy::builder("x").build().unwrap();
    /// # let _ = policy;
    /// let with_rules = resilience::ResiliencePolicy::builder("x").classify(Default::default()).build();
    /// assert_eq!(with_rules.unwrap_err().field(), "classify");
    /// ```
    pub fn build(self) -> Result<ResiliencePolicy<NoFallback, NoInnerErrors, C, R>, ConfigError> {
        if self.config.classify.is_some() {
            return Err(ConfigError::new(
                "classify",
                "status rules judge answers by their HTTP status or gRPC code: build this \
                 policy with `build_http()` (or `ResiliencePolicy::from_config_http`), or \
                 decide in code with `failure_classifier` and `retry_classifier`",
            ));
        }
        self.assemble()
    }

    fn assemble(self) -> Result<ResiliencePolicy<NoFallback, NoInnerErrors, C, R>, ConfigError> {
        let config = self.config;
        config.validate()?;
        let metrics = self.metrics.as_ref().map(|m| m.policy(&config.name));
        let breaker = match &config.circuit_breaker {
            Some(cb) => {
                let mut layer =
                    CircuitBreakerLayer::new(&config.name, cb.clone())?.classifier(self.failures);
                for listener in self.listeners {
                    layer = layer.listener(listener);
                }
                if let Some(m) = metrics.clone() {
                    layer = layer.metrics(m);
                }
                Some(layer)
            }
            None => None,
        };
        let retry = config
            .retry
            .map(|r| RetryLayer::build(r, metrics.clone()))
            .transpose()?
            .map(|layer| layer.classifier(self.retries));
        let timeout = config.timeout.unwrap_or_default();
        let timeout_layer = |layer: TimeoutLayer| match &metrics {
            Some(m) => layer.metrics(m.clone()),
            None => layer,
        };
        let rate_limit = match config.rate_limit {
            Some(r) => {
                let layer = RateLimitLayer::global(r)?;
                Some(match &metrics {
                    Some(m) => layer.metrics(m.clone()),
                    None => layer,
                })
            }
            None => None,
        };
        let bulkhead = match config.bulkhead {
            Some(b) => {
                let layer = BulkheadLayer::new(b)?;
                Some(match &metrics {
                    Some(m) => layer.metrics(m.clone()),
                    None => layer,
                })
            }
            None => None,
        };
        let fallback = match &metrics {
            Some(m) => FallbackLayer::none().metrics(m.clone()),
            None => FallbackLayer::none(),
        };
        Ok(ResiliencePolicy {
            name: config.name.as_str().into(),
            fallback,
            rate_limit,
            overall: timeout
                .overall
                .map(TimeoutLayer::overall)
                .map(timeout_layer),
            retry,
            breaker,
            bulkhead,
            attempt: timeout
                .per_attempt
                .map(TimeoutLayer::per_attempt)
                .map(timeout_layer),
            metrics,
        })
    }
}

impl ResiliencePolicyBuilder {
    /// Builds the policy for a service whose answers carry an HTTP status or a gRPC code
    /// (`http::Response`, or your type implementing [`CallStatus`](crate::status::CallStatus)),
    /// judged by the `classify` section's rules, or by the HTTP and gRPC defaults when it has
    /// none: 5xx and 429 open the breaker, 408, 429, 502, 503 and 504 are retried, 404 neither
    /// (see [`StatusRules`]).
    ///
    /// ```
    /// use resilience::{ResiliencePolicy, ResilienceError};
    /// use std::sync::{Arc, atomic::{AtomicU32, Ordering}};
    /// use tower::{Layer, ServiceExt};
    /// # use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let policy = ResiliencePolicy::builder("lobby")
    ///     .retry(resilience::retry::RetryConfig { max_attempts: 3, base_backoff: Duration::from_millis(1), max_backoff: Duration::from_millis(5), budget: None })
    ///     .build_http()
    ///     .unwrap();
    /// let calls = Arc::new(AtomicU32::new(0));
    /// let counted = calls.clone();
    /// let lobby = tower::service_fn(move |_: ()| {
    ///     let status = if counted.fetch_add(1, Ordering::Relaxed) == 0 { 503 } else { 200 };
    ///     async move { Ok::<_, std::io::Error>(http::Response::builder().status(status).body(()).unwrap()) }
    /// });
    /// let answer = policy.layer(lobby).oneshot(()).await.unwrap();
    /// assert_eq!(answer.status(), 200); // the 503 was retried
    /// assert_eq!(calls.load(Ordering::Relaxed), 2);
    /// # }
    /// ```
    pub fn build_http(self) -> Result<HttpPolicy, ConfigError> {
        let rules = self.config.classify.clone().unwrap_or_default();
        let failures = rules.failures();
        let retries = rules.retries();
        self.failure_classifier(failures)
            .retry_classifier(retries)
            .assemble()
    }
}

/// A policy judging answers by their HTTP status or gRPC code (see
/// [`ResiliencePolicyBuilder::build_http`]).
///
/// ```
/// let policy: resilience::policy::HttpPolicy =
///     resilience::ResiliencePolicy::builder("lobby").build_http().unwrap();
/// # let _ = policy;
/// ```
pub type HttpPolicy<F = NoFallback, P = NoInnerErrors> =
    ResiliencePolicy<F, P, StatusClassifier, StatusClassifier>;

/// Every layer of this crate, stacked in the documented order (see the [module docs](self)).
///
/// ```
/// use resilience::{ResiliencePolicy, ResiliencePolicyConfig, ResilienceError};
/// use tower::{Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let config = ResiliencePolicyConfig::from_yaml(
///     "name: saves\ntimeout: { per_attempt: 100ms }\nretry: { max_attempts: 2 }\n",
/// ).unwrap();
/// let policy = ResiliencePolicy::from_config(&config, None).unwrap();
/// #[derive(Debug)] struct DbError;
/// let save = tower::service_fn(|player: u64| async move { Ok::<_, DbError>(player) });
/// let svc = policy.layer(save);
/// assert_eq!(svc.oneshot(42).await.unwrap(), 42);
/// # }
/// ```
#[derive(Clone)]
pub struct ResiliencePolicy<
    F = NoFallback,
    P = NoInnerErrors,
    C = ErrorsAreFailures,
    R = ErrorsAreFailures,
> {
    name: Arc<str>,
    fallback: FallbackLayer<F, P>,
    rate_limit: Option<RateLimitLayer<Global>>,
    overall: Option<TimeoutLayer>,
    retry: Option<RetryLayer<R>>,
    breaker: Option<CircuitBreakerLayer<C>>,
    bulkhead: Option<BulkheadLayer>,
    attempt: Option<TimeoutLayer>,
    metrics: Option<PolicyMetrics>,
}

impl<F, P, C, R> std::fmt::Debug for ResiliencePolicy<F, P, C, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResiliencePolicy")
            .field("name", &self.name)
            .field("rate_limit", &self.rate_limit.is_some())
            .field("overall_timeout", &self.overall.is_some())
            .field("retry", &self.retry.is_some())
            .field("circuit_breaker", &self.breaker.is_some())
            .field("bulkhead", &self.bulkhead.is_some())
            .field("attempt_timeout", &self.attempt.is_some())
            .finish_non_exhaustive()
    }
}

impl ResiliencePolicy {
    /// Starts building a policy named `name`.
    ///
    /// ```
    /// let _ = resilience::ResiliencePolicy::builder("saves");
    /// ```
    pub fn builder(name: &str) -> ResiliencePolicyBuilder {
        ResiliencePolicyBuilder {
            config: ResiliencePolicyConfig {
                name: name.to_owned(),
                ..ResiliencePolicyConfig::default()
            },
            metrics: None,
            listeners: Vec::new(),
            failures: ErrorsAreFailures,
            retries: ErrorsAreFailures,
        }
    }

    /// Builds a policy from settings (e.g. read with [`ResiliencePolicyConfig::from_file`]),
    /// for any service: every answer is a success, every error of your service a failure.
    /// A `classify` section is refused (see [`from_config_http`](Self::from_config_http)).
    ///
    /// ```
    /// let config = resilience::ResiliencePolicyConfig::default();
    /// let policy = resilience::ResiliencePolicy::from_config(&config, None).unwrap();
    /// # let _ = policy;
    /// ```
    pub fn from_config(
        config: &ResiliencePolicyConfig,
        metrics: Option<&ResilienceMetrics>,
    ) -> Result<ResiliencePolicy, ConfigError> {
        Self::with_metrics(config, metrics).build()
    }

    /// Starts building from settings (e.g. read from a file), to add what YAML cannot say:
    /// metrics, a state-change listener, classifiers in code. Every section of `config` is
    /// kept, none is dropped.
    ///
    /// ```
    /// let config = resilience::ResiliencePolicyConfig::from_yaml("name: saves\nretry: { max_attempts: 2 }\n").unwrap();
    /// let policy = resilience::ResiliencePolicy::builder_from(&config)
    ///     .on_state_change(|c| eprintln!("{}: {} -> {}", c.policy, c.from, c.to))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(policy.name(), "saves");
    /// ```
    pub fn builder_from(config: &ResiliencePolicyConfig) -> ResiliencePolicyBuilder {
        Self::with_metrics(config, None)
    }

    /// Builds a policy from settings for a service answering with an HTTP status or a gRPC
    /// code: the `classify` section's rules, or the HTTP and gRPC defaults (see
    /// [`ResiliencePolicyBuilder::build_http`]).
    ///
    /// ```
    /// let config = resilience::ResiliencePolicyConfig::from_yaml(
    ///     "name: lobby\nclassify:\n  retry: { http: [503] }\n",
    /// ).unwrap();
    /// let policy = resilience::ResiliencePolicy::from_config_http(&config, None).unwrap();
    /// # let _ = policy;
    /// ```
    pub fn from_config_http(
        config: &ResiliencePolicyConfig,
        metrics: Option<&ResilienceMetrics>,
    ) -> Result<HttpPolicy, ConfigError> {
        Self::with_metrics(config, metrics).build_http()
    }

    fn with_metrics(
        config: &ResiliencePolicyConfig,
        metrics: Option<&ResilienceMetrics>,
    ) -> ResiliencePolicyBuilder {
        ResiliencePolicyBuilder {
            config: config.clone(),
            metrics: metrics.cloned(),
            listeners: Vec::new(),
            failures: ErrorsAreFailures,
            retries: ErrorsAreFailures,
        }
    }
}

impl<F, P, C, R> ResiliencePolicy<F, P, C, R> {
    /// The policy's name.
    ///
    /// ```
    /// let p = resilience::ResiliencePolicy::builder("saves").build().unwrap();
    /// assert_eq!(p.name(), "saves");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The circuit breaker's handle, if the policy has one.
    ///
    /// ```
    /// let p = resilience::ResiliencePolicy::builder("x").circuit_breaker(Default::default()).build().unwrap();
    /// assert!(p.circuit_breaker().is_some());
    /// ```
    pub fn circuit_breaker(&self) -> Option<CircuitBreakerHandle> {
        self.breaker.as_ref().map(CircuitBreakerLayer::handle)
    }

    /// The rate limit's handle (to change the quota at runtime), if the policy has one.
    ///
    /// ```
    /// let p = resilience::ResiliencePolicy::builder("x").build().unwrap();
    /// assert!(p.rate_limit().is_none());
    /// ```
    pub fn rate_limit(&self) -> Option<RateLimitHandle> {
        self.rate_limit.as_ref().map(RateLimitLayer::handle)
    }

    /// Answers failures from `fallback` (see [`FallbackLayer`]); call outcomes are still
    /// counted in the policy's metrics.
    ///
    /// ```
    /// use resilience::{FallbackLayer, FallbackRequest, ResilienceError, ResiliencePolicy};
    /// let policy = ResiliencePolicy::builder("reads").build().unwrap().with_fallback(FallbackLayer::new(
    ///     tower::service_fn(|_: FallbackRequest<u64, std::io::Error>| async { Ok::<_, ResilienceError<std::io::Error>>(0u64) }),
    /// ));
    /// # let _ = policy;
    /// ```
    pub fn with_fallback<F2, P2>(
        self,
        fallback: FallbackLayer<F2, P2>,
    ) -> ResiliencePolicy<F2, P2, C, R> {
        let fallback = match &self.metrics {
            Some(m) => fallback.metrics(m.clone()),
            None => fallback,
        };
        ResiliencePolicy {
            name: self.name,
            fallback,
            rate_limit: self.rate_limit,
            overall: self.overall,
            retry: self.retry,
            breaker: self.breaker,
            bulkhead: self.bulkhead,
            attempt: self.attempt,
            metrics: self.metrics,
        }
    }
}

// The stack is one chain of types whatever the configuration: the timeouts, the bulkhead
// and the rate limit are switched off at run time (a branch per call) rather than left out
// with `Either`. Each `Either` holds its inner stack twice, and seven of them nested made
// the compiler check 2^7 copies of the service: minutes of `cargo check` for one policy
// (see docs/BENCHMARKS.md, "Compile time"). Two remain, where leaving the layer out saves
// work on every call: the retry (which clones the stack below it per call) and the breaker.
type Attempt<S> = SwitchableTimeout<LiftInner<S>>;
type Bulk<S> = Bulkhead<Attempt<S>>;
type Breaker<S, C> = Either<CircuitBreaker<Bulk<S>, C>, Bulk<S>>;
type Retried<S, C, R> =
    Either<tower::retry::Retry<RetryPolicy<R>, Lifted<Breaker<S, C>>>, Breaker<S, C>>;
type OverallTimeout<S, C, R> = SwitchableTimeout<Retried<S, C, R>>;
type Limited<S, C, R> = RateLimit<OverallTimeout<S, C, R>, Global>;
type Stack<S, F, P, C, R> = Fallback<Limited<S, C, R>, F, P>;

/// The service made by [`ResiliencePolicy`]: your service behind every configured layer.
/// Its error is `ResilienceError<E>` where `E` is your service's error.
pub struct PolicyService<
    S,
    F = NoFallback,
    P = NoInnerErrors,
    C = ErrorsAreFailures,
    R = ErrorsAreFailures,
> {
    inner: Stack<S, F, P, C, R>,
}

impl<S: Clone, F: Clone, P: Clone, C: Clone, R: Clone> Clone for PolicyService<S, F, P, C, R> {
    fn clone(&self) -> Self {
        PolicyService {
            inner: self.inner.clone(),
        }
    }
}

impl<S, F, P, C, R> std::fmt::Debug for PolicyService<S, F, P, C, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PolicyService")
    }
}

impl<S, F: Clone, P: Clone, C: Clone, R: Clone> Layer<S> for ResiliencePolicy<F, P, C, R> {
    type Service = PolicyService<S, F, P, C, R>;

    fn layer(&self, service: S) -> Self::Service {
        let attempt = SwitchableTimeout::optional(self.attempt.as_ref(), LiftInner::new(service));
        let bulk = Bulkhead::optional(self.bulkhead.as_ref(), attempt);
        let breaker = match &self.breaker {
            Some(layer) => Either::Left(layer.layer(bulk)),
            None => Either::Right(bulk),
        };
        let retried = match &self.retry {
            Some(layer) => Either::Left(layer.layer(breaker)),
            None => Either::Right(breaker),
        };
        let overall = SwitchableTimeout::optional(self.overall.as_ref(), retried);
        let limited = RateLimit::optional(self.rate_limit.as_ref(), overall);
        PolicyService {
            inner: self.fallback.layer(limited),
        }
    }
}

impl<S, F, P, C, R, Req> Service<Req> for PolicyService<S, F, P, C, R>
where
    Stack<S, F, P, C, R>: Service<Req>,
{
    type Response = <Stack<S, F, P, C, R> as Service<Req>>::Response;
    type Error = <Stack<S, F, P, C, R> as Service<Req>>::Error;
    type Future = <Stack<S, F, P, C, R> as Service<Req>>::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        self.inner.call(req)
    }
}
