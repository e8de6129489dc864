//! Retry: a `tower::retry::Policy` with a maximum number of attempts, exponential backoff
//! with full jitter, a retry budget, and a classifier of retryable outcomes.
//!
//! Never retried, whatever the classifier says: an open circuit, a rate limit, a full
//! bulkhead, an expired overall deadline, or a retry whose backoff would end after the
//! request's deadline.

use rand::Rng;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Sleep;
use tower::Layer;

use crate::classify::{is_own_refusal, Classifier, ErrorsAreFailures, Verdict};
use crate::config::{check, ConfigError};
use crate::deadline::CarriesDeadline;
use crate::error::ResilienceError;
use crate::lift::Lifted;
use crate::metrics::PolicyMetrics;
use crate::sliding_window::TimeBuckets;

/// Retry settings.
///
/// ```
/// use resilience::retry::{RetryConfig, BudgetConfig};
/// use std::time::Duration;
/// let config = RetryConfig {
///     max_attempts: 3,
///     base_backoff: Duration::from_millis(20),
///     max_backoff: Duration::from_millis(200),
///     budget: Some(BudgetConfig { ratio: 0.2, min_per_second: 10, window: Duration::from_secs(10) }),
/// };
/// config.validate().unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts in all, the first included (1 = no retry).
    pub max_attempts: u32,
    /// Backoff before the first retry is drawn from `[0, base_backoff]`, then doubles.
    #[serde(with = "humantime_serde", default = "default_base")]
    pub base_backoff: Duration,
    /// Cap on the backoff ceiling.
    #[serde(with = "humantime_serde", default = "default_max")]
    pub max_backoff: Duration,
    /// Limits retries to a share of traffic; unlimited if unset.
    #[serde(default)]
    pub budget: Option<BudgetConfig>,
}

fn default_base() -> Duration {
    Duration::from_millis(25)
}

fn default_max() -> Duration {
    Duration::from_secs(1)
}

/// A retry budget: over the last `window`, retries may be at most `ratio` times the first
/// attempts, plus `min_per_second` per second so that low traffic can still retry.
///
/// ```
/// use resilience::retry::BudgetConfig;
/// let budget = BudgetConfig::default();
/// assert_eq!(budget.ratio, 0.2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    /// Retries allowed per first attempt (0.2 = 20% extra load at most).
    pub ratio: f64,
    /// Retries always allowed per second, whatever the traffic.
    pub min_per_second: u32,
    /// How far back the budget looks.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            ratio: 0.2,
            min_per_second: 10,
            window: Duration::from_secs(10),
        }
    }
}

impl RetryConfig {
    /// Checks the settings.
    ///
    /// ```
    /// use resilience::retry::RetryConfig;
    /// use std::time::Duration;
    /// let bad = RetryConfig { max_attempts: 0, base_backoff: Duration::from_millis(1), max_backoff: Duration::from_secs(1), budget: None };
    /// assert_eq!(bad.validate().unwrap_err().field(), "retry.max_attempts");
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(
            (1..=100).contains(&self.max_attempts),
            "retry.max_attempts",
            "must be between 1 and 100",
        )?;
        check(
            self.base_backoff <= Duration::from_secs(60),
            "retry.base_backoff",
            "must be at most 60s",
        )?;
        check(
            self.max_backoff >= self.base_backoff && self.max_backoff <= Duration::from_secs(300),
            "retry.max_backoff",
            "must be at least base_backoff and at most 300s",
        )?;
        if let Some(budget) = &self.budget {
            check(
                budget.ratio.is_finite() && (0.0..=10.0).contains(&budget.ratio),
                "retry.budget.ratio",
                "must be between 0 and 10",
            )?;
            check(
                budget.window >= Duration::from_secs(1)
                    && budget.window <= Duration::from_secs(600),
                "retry.budget.window",
                "must be between 1s and 600s",
            )?;
        }
        Ok(())
    }
}

/// The retry budget's bookkeeping: first attempts and retries over a sliding window.
#[derive(Debug)]
pub struct RetryBudget {
    counts: TimeBuckets<2>,
    ratio: f64,
    floor: f64,
}

const FIRST_ATTEMPTS: usize = 0;
const RETRIES: usize = 1;

impl RetryBudget {
    /// A budget with `config`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let budget = resilience::retry::RetryBudget::new(&Default::default());
    /// budget.deposit();
    /// assert!(budget.withdraw()); // the per-second floor allows it
    /// # }
    /// ```
    pub fn new(config: &BudgetConfig) -> Self {
        RetryBudget {
            counts: TimeBuckets::new(config.window, 10),
            ratio: config.ratio,
            floor: f64::from(config.min_per_second) * config.window.as_secs_f64(),
        }
    }

    /// Records a first attempt.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// resilience::retry::RetryBudget::new(&Default::default()).deposit();
    /// # }
    /// ```
    #[inline]
    pub fn deposit(&self) {
        self.counts.add(FIRST_ATTEMPTS, crate::clock::now());
    }

    /// Takes one retry from the budget if it allows one.
    ///
    /// ```
    /// use resilience::retry::{BudgetConfig, RetryBudget};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let none = RetryBudget::new(&BudgetConfig { ratio: 0.0, min_per_second: 0, ..Default::default() });
    /// none.deposit();
    /// assert!(!none.withdraw());
    /// # }
    /// ```
    pub fn withdraw(&self) -> bool {
        let now = crate::clock::now();
        let [firsts, retries] = self.counts.sums(now);
        let allowed = self.floor + self.ratio * firsts as f64;
        if (retries as f64) + 1.0 <= allowed {
            self.counts.add(RETRIES, now);
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
struct Shared {
    config: RetryConfig,
    max_attempts: u32,
    base_backoff: Duration,
    max_backoff: Duration,
    budget: Option<RetryBudget>,
    metrics: Option<PolicyMetrics>,
}

/// The retry policy (a [`tower::retry::Policy`]). Cloned per request; attempts are counted
/// per request, the budget is shared.
#[derive(Debug, Clone)]
pub struct RetryPolicy<C = ErrorsAreFailures> {
    shared: Arc<Shared>,
    classifier: C,
    attempts: u32,
}

impl<C> RetryPolicy<C> {
    /// The backoff before retry number `retry` (1-based): uniform in `[0, ceiling]` where the
    /// ceiling doubles from `base_backoff` up to `max_backoff` ("full jitter").
    fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self
            .shared
            .base_backoff
            .saturating_mul(1u32 << (retry - 1).min(20))
            .min(self.shared.max_backoff);
        if ceiling.is_zero() {
            return ceiling;
        }
        let nanos = rand::rng().random_range(0..=ceiling.as_nanos() as u64);
        Duration::from_nanos(nanos)
    }
}

impl<Req, Res, E, C> tower::retry::Policy<Req, Res, ResilienceError<E>> for RetryPolicy<C>
where
    Req: Clone + CarriesDeadline,
    C: Classifier<Res, E>,
{
    type Future = Sleep;

    fn retry(
        &mut self,
        req: &mut Req,
        result: &mut Result<Res, ResilienceError<E>>,
    ) -> Option<Self::Future> {
        if matches!(result, Err(err) if is_own_refusal(err)) {
            return None; // open circuit, rate limit, full bulkhead, overall deadline
        }
        if self.classifier.classify(result) != Verdict::Failure {
            return None;
        }
        self.attempts += 1;
        if self.attempts >= self.shared.max_attempts {
            return None;
        }
        let backoff = self.backoff(self.attempts);
        if let Some(deadline) = req.deadline() {
            if deadline.remaining() <= backoff {
                return None; // the retry could not finish in time
            }
        }
        if let Some(budget) = &self.shared.budget {
            if !budget.withdraw() {
                if let Some(m) = &self.shared.metrics {
                    m.record_budget_exhausted();
                }
                return None;
            }
        }
        if let Some(m) = &self.shared.metrics {
            m.record_retry();
        }
        Some(tokio::time::sleep(backoff))
    }

    #[inline]
    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        if self.attempts == 0 {
            if let Some(budget) = &self.shared.budget {
                budget.deposit();
            }
        }
        Some(req.clone())
    }
}

/// Builds retrying services: `tower::retry::Retry` driven by [`RetryPolicy`].
///
/// ```
/// use resilience::{RetryLayer, retry::RetryConfig};
/// use std::sync::{Arc, atomic::{AtomicU32, Ordering}};
/// use std::time::Duration;
/// use tower::{Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let calls = Arc::new(AtomicU32::new(0));
/// let seen = calls.clone();
/// let flaky = tower::service_fn(move |n: u32| {
///     let attempt = seen.fetch_add(1, Ordering::SeqCst);
///     async move { if attempt < 2 { Err(std::io::Error::other("flaky")) } else { Ok(n) } }
/// });
/// let layer = RetryLayer::new(RetryConfig {
///     max_attempts: 3, base_backoff: Duration::from_millis(10), max_backoff: Duration::from_millis(100), budget: None,
/// }).unwrap();
/// assert_eq!(layer.layer(flaky).oneshot(5).await.unwrap(), 5);
/// assert_eq!(calls.load(Ordering::SeqCst), 3);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RetryLayer<C = ErrorsAreFailures> {
    policy: RetryPolicy<C>,
}

impl RetryLayer<ErrorsAreFailures> {
    /// A retry layer with `config`, after checking it.
    ///
    /// ```
    /// use resilience::{RetryLayer, retry::RetryConfig};
    /// use std::time::Duration;
    /// let ok = RetryLayer::new(RetryConfig { max_attempts: 2, base_backoff: Duration::from_millis(5), max_backoff: Duration::from_millis(50), budget: None });
    /// assert!(ok.is_ok());
    /// ```
    pub fn new(config: RetryConfig) -> Result<Self, ConfigError> {
        Self::build(config, None)
    }

    pub(crate) fn build(
        config: RetryConfig,
        metrics: Option<PolicyMetrics>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(RetryLayer {
            policy: RetryPolicy {
                shared: Arc::new(Shared {
                    config,
                    max_attempts: config.max_attempts,
                    base_backoff: config.base_backoff,
                    max_backoff: config.max_backoff,
                    budget: config.budget.as_ref().map(RetryBudget::new),
                    metrics,
                }),
                classifier: ErrorsAreFailures,
                attempts: 0,
            },
        })
    }
}

impl<C> RetryLayer<C> {
    /// Retries only results `classifier` calls failures (rejections are never retried).
    ///
    /// ```
    /// use resilience::{RetryLayer, ResilienceError, Verdict, retry::RetryConfig};
    /// # use std::time::Duration;
    /// # let layer = RetryLayer::new(RetryConfig { max_attempts: 2, base_backoff: Duration::from_millis(5), max_backoff: Duration::from_millis(50), budget: None }).unwrap();
    /// // Retry 503 answers as well as errors.
    /// let layer = layer.classifier(|r: &Result<u16, ResilienceError<std::io::Error>>| match r {
    ///     Ok(503) | Err(_) => Verdict::Failure,
    ///     Ok(_) => Verdict::Success,
    /// });
    /// # let _ = layer;
    /// ```
    pub fn classifier<C2>(self, classifier: C2) -> RetryLayer<C2> {
        RetryLayer {
            policy: RetryPolicy {
                shared: self.policy.shared,
                classifier,
                attempts: 0,
            },
        }
    }

    /// Counts retries and refusals by the budget in `metrics`.
    ///
    /// ```
    /// use resilience::{RetryLayer, retry::RetryConfig, metrics::ResilienceMetrics};
    /// # use std::time::Duration;
    /// # let layer = RetryLayer::new(RetryConfig { max_attempts: 2, base_backoff: Duration::from_millis(5), max_backoff: Duration::from_millis(50), budget: None }).unwrap();
    /// let layer = layer.metrics(ResilienceMetrics::default().policy("saves"));
    /// # let _ = layer;
    /// ```
    pub fn metrics(self, metrics: PolicyMetrics) -> Self {
        let RetryLayer { policy } = self;
        let fresh = RetryLayer::build(policy.shared.config, Some(metrics))
            .expect("configuration was validated when the layer was built");
        fresh.classifier(policy.classifier)
    }

    /// The policy, for use with `tower::retry::Retry` directly.
    ///
    /// ```
    /// # use resilience::{RetryLayer, retry::RetryConfig};
    /// # use std::time::Duration;
    /// # let layer = RetryLayer::new(RetryConfig { max_attempts: 2, base_backoff: Duration::from_millis(5), max_backoff: Duration::from_millis(50), budget: None }).unwrap();
    /// let _policy = layer.policy();
    /// ```
    pub fn policy(&self) -> &RetryPolicy<C> {
        &self.policy
    }
}

impl<S, C: Clone> Layer<S> for RetryLayer<C> {
    type Service = tower::retry::Retry<RetryPolicy<C>, Lifted<S>>;

    fn layer(&self, inner: S) -> Self::Service {
        tower::retry::Retry::new(self.policy.clone(), Lifted::new(inner))
    }
}
