//! Timeouts per attempt and overall. The overall timeout writes its deadline into the
//! request ([`CarriesDeadline`]) so the retry policy and inner layers see the time left; a
//! per-attempt timeout never outlives that deadline.

use pin_project_lite::pin_project;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

use crate::config::{check, ConfigError};
use crate::deadline::{CarriesDeadline, Deadline};
use crate::error::{IntoResilienceError, ResilienceError, TimeoutScope};
use crate::metrics::PolicyMetrics;

/// Timeout settings for a policy; either may be left out.
///
/// ```
/// use resilience::timeout::TimeoutConfig;
/// use std::time::Duration;
/// let config = TimeoutConfig { per_attempt: Some(Duration::from_millis(150)), overall: Some(Duration::from_millis(450)) };
/// config.validate().unwrap();
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeoutConfig {
    /// Limit of one attempt.
    #[serde(with = "humantime_serde")]
    pub per_attempt: Option<Duration>,
    /// Limit of the whole call, retries and backoff included.
    #[serde(with = "humantime_serde")]
    pub overall: Option<Duration>,
}

impl TimeoutConfig {
    /// Checks both limits (above zero, at most one hour, attempt within overall).
    ///
    /// ```
    /// use resilience::timeout::TimeoutConfig;
    /// use std::time::Duration;
    /// let bad = TimeoutConfig { per_attempt: Some(Duration::ZERO), overall: None };
    /// assert_eq!(bad.validate().unwrap_err().field(), "timeout.per_attempt");
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        let in_range =
            |d: Option<Duration>| d.is_none_or(|d| !d.is_zero() && d <= Duration::from_secs(3600));
        check(
            in_range(self.per_attempt),
            "timeout.per_attempt",
            "must be above zero and at most 1h",
        )?;
        check(
            in_range(self.overall),
            "timeout.overall",
            "must be above zero and at most 1h",
        )?;
        if let (Some(attempt), Some(overall)) = (self.per_attempt, self.overall) {
            check(
                attempt <= overall,
                "timeout.per_attempt",
                "must not exceed timeout.overall",
            )?;
        }
        Ok(())
    }
}

/// A timeout layer, per attempt or overall.
///
/// ```
/// use resilience::{ResilienceError, TimeoutLayer, TimeoutScope};
/// use std::time::Duration;
/// use tower::{Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let slow = tower::service_fn(|_: u32| async {
///     tokio::time::sleep(Duration::from_secs(5)).await;
///     Ok::<_, std::io::Error>(())
/// });
/// let svc = TimeoutLayer::per_attempt(Duration::from_millis(200)).layer(slow);
/// let err = svc.oneshot(1).await.unwrap_err();
/// assert!(matches!(err, ResilienceError::Timeout { scope: TimeoutScope::Attempt, .. }));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TimeoutLayer {
    limit: Duration,
    scope: TimeoutScope,
    metrics: Option<PolicyMetrics>,
}

impl TimeoutLayer {
    /// Limits each attempt to `limit` (and to the request's overall deadline, if sooner).
    ///
    /// ```
    /// let _ = resilience::TimeoutLayer::per_attempt(std::time::Duration::from_millis(100));
    /// ```
    pub fn per_attempt(limit: Duration) -> Self {
        TimeoutLayer {
            limit,
            scope: TimeoutScope::Attempt,
            metrics: None,
        }
    }

    /// Limits the whole call to `limit` and records the deadline on the request.
    ///
    /// ```
    /// let _ = resilience::TimeoutLayer::overall(std::time::Duration::from_millis(450));
    /// ```
    pub fn overall(limit: Duration) -> Self {
        TimeoutLayer {
            limit,
            scope: TimeoutScope::Overall,
            metrics: None,
        }
    }

    /// Counts timeouts in `metrics`.
    ///
    /// ```
    /// # use resilience::{TimeoutLayer, metrics::ResilienceMetrics};
    /// let layer = TimeoutLayer::overall(std::time::Duration::from_secs(1))
    ///     .metrics(ResilienceMetrics::default().policy("saves"));
    /// # let _ = layer;
    /// ```
    pub fn metrics(mut self, metrics: PolicyMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

/// Starts the timer of one call, and for an overall timeout writes its deadline into the
/// request: the sooner of `limit` and the deadline the request already carries.
#[inline]
fn arm<Req: CarriesDeadline>(
    limit: Duration,
    own_scope: TimeoutScope,
    metrics: &Option<PolicyMetrics>,
    req: &mut Req,
) -> Armed {
    let now = crate::clock::now();
    let own = now.checked_add(limit).unwrap_or_else(far_future);
    let carried = req.deadline().map(|d| d.0);
    let (fires_at, scope) = match (own_scope, carried) {
        (_, Some(carried)) if carried <= own => (carried, TimeoutScope::Overall),
        (scope, _) => (own, scope),
    };
    if own_scope == TimeoutScope::Overall {
        req.set_deadline(Deadline(fires_at));
    }
    Armed {
        sleep: tokio::time::sleep_until(fires_at),
        started: now,
        scope,
        metrics: metrics.clone(),
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout {
            inner,
            limit: self.limit,
            scope: self.scope,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service made by [`TimeoutLayer`].
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    limit: Duration,
    scope: TimeoutScope,
    metrics: Option<PolicyMetrics>,
}

impl<S, Req> Service<Req> for Timeout<S>
where
    S: Service<Req>,
    S::Error: IntoResilienceError,
    Req: CarriesDeadline,
{
    type Response = S::Response;
    type Error = ResilienceError<<S::Error as IntoResilienceError>::Inner>;
    type Future = TimeoutFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(IntoResilienceError::into_resilience_error)
    }

    #[inline]
    fn call(&mut self, mut req: Req) -> Self::Future {
        let armed = arm(self.limit, self.scope, &self.metrics, &mut req);
        TimeoutFuture {
            future: self.inner.call(req),
            armed,
        }
    }
}

/// The timeout inside [`ResiliencePolicy`](crate::ResiliencePolicy): a [`Timeout`] that a
/// policy without this section switches off, so calls pass straight through it. The policy
/// keeps one service type whichever sections are configured, and the compiler sees one
/// chain of layers instead of every combination of them. [`Timeout`] itself, always armed,
/// skips the check.
#[derive(Debug, Clone)]
pub struct SwitchableTimeout<S> {
    inner: S,
    /// `None`: switched off.
    limit: Option<Duration>,
    scope: TimeoutScope,
    metrics: Option<PolicyMetrics>,
}

impl<S> SwitchableTimeout<S> {
    /// `layer`'s timeout around `inner`, or, without a layer, `inner` unchanged behind the
    /// same type.
    pub(crate) fn optional(layer: Option<&TimeoutLayer>, inner: S) -> Self {
        match layer {
            Some(layer) => SwitchableTimeout {
                inner,
                limit: Some(layer.limit),
                scope: layer.scope,
                metrics: layer.metrics.clone(),
            },
            None => SwitchableTimeout {
                inner,
                limit: None,
                scope: TimeoutScope::Attempt,
                metrics: None,
            },
        }
    }
}

impl<S, Req> Service<Req> for SwitchableTimeout<S>
where
    S: Service<Req>,
    S::Error: IntoResilienceError,
    Req: CarriesDeadline,
{
    type Response = S::Response;
    type Error = ResilienceError<<S::Error as IntoResilienceError>::Inner>;
    type Future = SwitchableTimeoutFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(IntoResilienceError::into_resilience_error)
    }

    #[inline]
    fn call(&mut self, mut req: Req) -> Self::Future {
        let Some(limit) = self.limit else {
            return SwitchableTimeoutFuture {
                future: self.inner.call(req),
                armed: None,
            };
        };
        let armed = arm(limit, self.scope, &self.metrics, &mut req);
        SwitchableTimeoutFuture {
            future: self.inner.call(req),
            armed: Some(armed),
        }
    }
}

/// An instant so far ahead that a timer set for it never fires in practice (about 30
/// years), for limits whose sum with now would overflow.
#[cold]
#[inline(never)]
fn far_future() -> Instant {
    crate::clock::now() + Duration::from_secs(86_400 * 365 * 30)
}

pin_project! {
    /// Future of [`Timeout`].
    pub struct TimeoutFuture<F> {
        #[pin]
        future: F,
        #[pin]
        armed: Armed,
    }
}

pin_project! {
    /// Future of [`SwitchableTimeout`].
    pub struct SwitchableTimeoutFuture<F> {
        #[pin]
        future: F,
        // `None` when the timeout is switched off.
        #[pin]
        armed: Option<Armed>,
    }
}

pin_project! {
    /// The timer of one call.
    struct Armed {
        #[pin]
        sleep: Sleep,
        started: Instant,
        scope: TimeoutScope,
        metrics: Option<PolicyMetrics>,
    }
}

impl Armed {
    /// Ready with the timeout error once the timer fires (counted in the metrics).
    #[inline]
    fn poll_expired<E>(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ResilienceError<E>> {
        let armed = self.project();
        std::task::ready!(armed.sleep.poll(cx));
        if let Some(metrics) = armed.metrics {
            metrics.record_timeout(*armed.scope);
        }
        Poll::Ready(ResilienceError::Timeout {
            after: armed.started.elapsed(),
            scope: *armed.scope,
        })
    }
}

impl<F, T, E> Future for TimeoutFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: IntoResilienceError,
{
    type Output = Result<T, ResilienceError<E::Inner>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(result) = this.future.poll(cx) {
            return Poll::Ready(result.map_err(IntoResilienceError::into_resilience_error));
        }
        this.armed.poll_expired(cx).map(Err)
    }
}

impl<F, T, E> Future for SwitchableTimeoutFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: IntoResilienceError,
{
    type Output = Result<T, ResilienceError<E::Inner>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(result) = this.future.poll(cx) {
            return Poll::Ready(result.map_err(IntoResilienceError::into_resilience_error));
        }
        match this.armed.as_pin_mut() {
            Some(armed) => armed.poll_expired(cx).map(Err),
            None => Poll::Pending,
        }
    }
}
