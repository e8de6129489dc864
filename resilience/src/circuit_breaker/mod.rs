//! Circuit breaker: stops calling a dependency that is failing or slow, then probes it.
//!
//! States: closed (calls flow, outcomes recorded in a sliding window), open (calls are
//! rejected with [`ResilienceError::CircuitOpen`] for the open duration), half-open (a
//! bounded number of probe calls decide between closed and open), plus forced-open and
//! disabled, set through a [`CircuitBreakerHandle`].
//!
//! The call path takes no lock and allocates nothing: one atomic load to admit, one ring
//! slot or bucket update to record. See the module docs of the window for the details.

mod config;
mod state;

pub use config::{CircuitBreakerConfig, OpenBackoff, WindowConfig};

/// What a breaker's window holds at one moment (see [`CircuitBreakerHandle::window_rates`]).
///
/// ```
/// let rates = resilience::circuit_breaker::WindowRates { failure_rate: 50.0, slow_call_rate: 0.0, calls: 10 };
/// assert!(rates.failure_rate >= 50.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowRates {
    /// Failed calls, in percent of the calls in the window.
    pub failure_rate: f64,
    /// Slow calls, in percent of the calls in the window.
    pub slow_call_rate: f64,
    /// Calls in the window.
    pub calls: u64,
}

use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

use crate::classify::{is_own_refusal, Classifier, ErrorsAreFailures, Verdict};
use crate::config::ConfigError;
use crate::error::{IntoResilienceError, ResilienceError};
use crate::metrics::PolicyMetrics;
use state::{Admission, BreakerCore, CoreRef};

/// A circuit breaker's state.
///
/// ```
/// use resilience::CircuitState;
/// assert_eq!(CircuitState::HalfOpen.to_string(), "half_open");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CircuitState {
    /// Calls flow and are recorded.
    Closed = 0,
    /// Calls are rejected until the open duration passes.
    Open = 1,
    /// A bounded number of probe calls are let through.
    HalfOpen = 2,
    /// Rejects every call until released through the handle.
    ForcedOpen = 3,
    /// Lets every call through and records nothing until released through the handle.
    Disabled = 4,
}

impl CircuitState {
    pub(crate) const ALL: [CircuitState; 5] = [
        CircuitState::Closed,
        CircuitState::Open,
        CircuitState::HalfOpen,
        CircuitState::ForcedOpen,
        CircuitState::Disabled,
    ];

    fn from_bits(bits: u64) -> CircuitState {
        match bits {
            1 => CircuitState::Open,
            2 => CircuitState::HalfOpen,
            3 => CircuitState::ForcedOpen,
            4 => CircuitState::Disabled,
            _ => CircuitState::Closed,
        }
    }
}

impl std::fmt::Display for CircuitState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
            CircuitState::ForcedOpen => "forced_open",
            CircuitState::Disabled => "disabled",
        })
    }
}

/// A state change, as passed to listeners registered with
/// [`CircuitBreakerLayer::on_state_change`].
///
/// ```
/// use resilience::{CircuitState, StateChange};
/// let change = StateChange { policy: "saves".into(), from: CircuitState::Closed, to: CircuitState::Open };
/// assert_eq!(change.to, CircuitState::Open);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    /// The breaker's name.
    pub policy: Arc<str>,
    /// State before.
    pub from: CircuitState,
    /// State after.
    pub to: CircuitState,
}

pub(crate) type StateListener = Arc<dyn Fn(&StateChange) + Send + Sync>;

/// Builds circuit breakers. All services made by one layer share one breaker (clone the
/// layer's [`handle`](CircuitBreakerLayer::handle) to watch or steer it).
///
/// ```
/// use resilience::{CircuitBreakerLayer, CircuitState};
/// use resilience::circuit_breaker::CircuitBreakerConfig;
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = CircuitBreakerLayer::new("inventory", CircuitBreakerConfig::default()).unwrap();
/// let handle = layer.handle();
/// let svc = layer.layer(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n * 2) }));
/// assert_eq!(svc.oneshot(21).await.unwrap(), 42);
/// assert_eq!(handle.state(), CircuitState::Closed);
/// # }
/// ```
#[derive(Clone)]
pub struct CircuitBreakerLayer<C = ErrorsAreFailures> {
    core: CoreRef,
    classifier: C,
}

impl std::fmt::Debug for CircuitBreakerLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("core", &self.core)
            .finish_non_exhaustive()
    }
}

impl CircuitBreakerLayer<ErrorsAreFailures> {
    /// A breaker named `name` (the label of its metrics and events), after checking `config`.
    ///
    /// ```
    /// use resilience::{CircuitBreakerLayer, circuit_breaker::CircuitBreakerConfig};
    /// let bad = CircuitBreakerConfig { minimum_calls: 0, ..Default::default() };
    /// assert!(CircuitBreakerLayer::new("x", bad).is_err());
    /// ```
    pub fn new(name: &str, config: CircuitBreakerConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(CircuitBreakerLayer {
            core: CoreRef::new(BreakerCore::new(name.into(), &config)),
            classifier: ErrorsAreFailures,
        })
    }
}

impl<C> CircuitBreakerLayer<C> {
    /// Uses `classifier` to decide which results count as failures. The breaker stays the
    /// same one: handles taken earlier still watch and steer it.
    ///
    /// ```
    /// use resilience::{CircuitBreakerLayer, ResilienceError, Verdict};
    /// # let layer = CircuitBreakerLayer::new("x", Default::default()).unwrap();
    /// let layer = layer.classifier(|r: &Result<u16, ResilienceError<()>>| match r {
    ///     Ok(s) if *s >= 500 => Verdict::Failure,
    ///     Ok(_) => Verdict::Success,
    ///     Err(_) => Verdict::Failure,
    /// });
    /// # let _ = layer;
    /// ```
    pub fn classifier<C2>(self, classifier: C2) -> CircuitBreakerLayer<C2> {
        CircuitBreakerLayer {
            core: self.core,
            classifier,
        }
    }

    /// Calls `listener` on every state change of this layer's breaker (every clone of the
    /// layer, and every service it made, shares it).
    ///
    /// ```
    /// use resilience::CircuitBreakerLayer;
    /// # let layer = CircuitBreakerLayer::new("x", Default::default()).unwrap();
    /// let layer = layer.on_state_change(|c| eprintln!("{}: {} -> {}", c.policy, c.from, c.to));
    /// # let _ = layer;
    /// ```
    pub fn on_state_change(self, listener: impl Fn(&StateChange) + Send + Sync + 'static) -> Self {
        self.listener(Arc::new(listener))
    }

    pub(crate) fn listener(self, listener: StateListener) -> Self {
        self.core.add_listener(listener);
        self
    }

    /// Records this breaker's transitions and state in `metrics`, from its current state on.
    ///
    /// ```
    /// use resilience::{CircuitBreakerLayer, metrics::ResilienceMetrics};
    /// # let layer = CircuitBreakerLayer::new("x", Default::default()).unwrap();
    /// let layer = layer.metrics(ResilienceMetrics::default().policy("x"));
    /// # let _ = layer;
    /// ```
    pub fn metrics(self, metrics: PolicyMetrics) -> Self {
        self.core.set_metrics(metrics);
        self
    }

    /// A handle on the shared breaker: read its state, force it open, disable or reset it.
    ///
    /// ```
    /// # let layer = resilience::CircuitBreakerLayer::new("x", Default::default()).unwrap();
    /// let handle = layer.handle();
    /// handle.force_open();
    /// assert_eq!(handle.state(), resilience::CircuitState::ForcedOpen);
    /// ```
    pub fn handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle {
            core: self.core.clone(),
        }
    }
}

impl<S, C: Clone> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreaker<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker {
            inner,
            core: self.core.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

/// A handle on a breaker shared by every service of its layer.
///
/// ```
/// # let layer = resilience::CircuitBreakerLayer::new("x", Default::default()).unwrap();
/// let handle = layer.handle();
/// handle.disable();
/// assert_eq!(handle.state(), resilience::CircuitState::Disabled);
/// handle.reset();
/// assert_eq!(handle.state(), resilience::CircuitState::Closed);
/// ```
#[derive(Debug, Clone)]
pub struct CircuitBreakerHandle {
    core: CoreRef,
}

impl CircuitBreakerHandle {
    /// The current state.
    ///
    /// ```
    /// # let layer = resilience::CircuitBreakerLayer::new("x", Default::default()).unwrap();
    /// assert_eq!(layer.handle().state(), resilience::CircuitState::Closed);
    /// ```
    pub fn state(&self) -> CircuitState {
        self.core.state()
    }

    /// The breaker's name.
    ///
    /// ```
    /// # let layer = resilience::CircuitBreakerLayer::new("x", Default::default()).unwrap();
    /// assert_eq!(layer.handle().name(), "x");
    /// ```
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// What the window holds now: its failure and slow-call rates and its number of calls.
    ///
    /// ```
    /// # let layer = resilience::CircuitBreakerLayer::new("x", Default::default()).unwrap();
    /// let rates = layer.handle().window_rates();
    /// assert_eq!((rates.failure_rate, rates.slow_call_rate, rates.calls), (0.0, 0.0, 0));
    /// ```
    pub fn window_rates(&self) -> WindowRates {
        let (failure_rate, slow_call_rate, calls) = self.core.rates();
        WindowRates {
            failure_rate,
            slow_call_rate,
            calls,
        }
    }

    /// Rejects every call until [`reset`](Self::reset) or [`disable`](Self::disable).
    ///
    /// ```
    /// # let layer = resilience::CircuitBreakerLayer::new("x", Default::default()).unwrap();
    /// layer.handle().force_open();
    /// ```
    pub fn force_open(&self) {
        self.core.force(CircuitState::ForcedOpen)
    }

    /// Lets every call through unrecorded until [`reset`](Self::reset) or
    /// [`force_open`](Self::force_open).
    ///
    /// ```
    /// # let layer = resilience::CircuitBreakerLayer::new("x", Default::default()).unwrap();
    /// layer.handle().disable();
    /// ```
    pub fn disable(&self) {
        self.core.force(CircuitState::Disabled)
    }

    /// Closes the breaker with an empty window and the open backoff started over.
    ///
    /// ```
    /// # let layer = resilience::CircuitBreakerLayer::new("x", Default::default()).unwrap();
    /// layer.handle().reset();
    /// ```
    pub fn reset(&self) {
        self.core.reset()
    }
}

/// The service made by [`CircuitBreakerLayer`]. Clones share the breaker.
#[derive(Debug, Clone)]
pub struct CircuitBreaker<S, C = ErrorsAreFailures> {
    inner: S,
    core: CoreRef,
    classifier: C,
}

impl<S, C> CircuitBreaker<S, C> {
    /// A handle on this service's breaker.
    ///
    /// ```
    /// use tower::Layer;
    /// # let layer = resilience::CircuitBreakerLayer::new("x", Default::default()).unwrap();
    /// let svc = layer.layer(tower::service_fn(|_: ()| async { Ok::<_, std::io::Error>(()) }));
    /// assert_eq!(svc.handle().state(), resilience::CircuitState::Closed);
    /// ```
    pub fn handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle {
            core: self.core.clone(),
        }
    }
}

impl<S, C, Req> Service<Req> for CircuitBreaker<S, C>
where
    S: Service<Req>,
    S::Error: IntoResilienceError,
    C: Classifier<S::Response, <S::Error as IntoResilienceError>::Inner> + Clone,
{
    type Response = S::Response;
    type Error = ResilienceError<<S::Error as IntoResilienceError>::Inner>;
    type Future = CircuitBreakerFuture<S::Future, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(IntoResilienceError::into_resilience_error)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        match self.core.admit() {
            Ok(admission) => CircuitBreakerFuture {
                kind: Kind::Running {
                    start: self.core.start_mark(),
                    future: self.inner.call(req),
                    permit: Permit {
                        core: self.core.clone(),
                        admission,
                    },
                    classifier: self.classifier.clone(),
                },
            },
            Err(rejected) => CircuitBreakerFuture {
                kind: Kind::Rejected {
                    retry_after_nanos: retry_after_nanos(rejected.retry_after),
                },
            },
        }
    }
}

/// An admitted call's claim on the breaker. Dropping it unfinished (the caller gave up on
/// the call) gives a probe permit back.
struct Permit {
    core: CoreRef,
    admission: Admission,
}

impl Drop for Permit {
    #[inline]
    fn drop(&mut self) {
        if let Some(generation) = self.admission.probe_generation() {
            self.core.return_probe(generation);
        }
    }
}

impl Permit {
    /// Records the call's verdict; `start` is its start mark (see `BreakerCore::start_mark`).
    #[inline]
    fn complete(&mut self, verdict: Verdict, start: u64) {
        let admission = std::mem::replace(&mut self.admission, Admission::NONE);
        let slow = self.core.was_slow(start);
        self.core.complete(admission, verdict, slow);
    }
}

pin_project! {
    /// The future of [`CircuitBreaker`]: a rejection, or the inner call and its permit.
    pub struct CircuitBreakerFuture<F, C> {
        #[pin]
        kind: Kind<F, C>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, C> {
        Running {
            #[pin]
            future: F,
            permit: Permit,
            start: u64,
            classifier: C,
        },
        Rejected {
            // `retry_after` in nanoseconds, `NO_RETRY_AFTER` for none (or already taken).
            // A plain integer keeps `Duration`'s niche out of the bytes the running variant
            // uses: sharing them made the compiler write the inner future's fields in halves,
            // which stalled the wide loads that read them back.
            retry_after_nanos: u64,
        },
    }
}

impl<F, C, Res, Err> Future for CircuitBreakerFuture<F, C>
where
    F: Future<Output = Result<Res, Err>>,
    Err: IntoResilienceError,
    C: Classifier<Res, Err::Inner>,
{
    type Output = Result<Res, ResilienceError<Err::Inner>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Running {
                future,
                permit,
                start,
                classifier,
            } => {
                let result = std::task::ready!(future.poll(cx))
                    .map_err(IntoResilienceError::into_resilience_error);
                let verdict = match &result {
                    Err(err) if is_own_refusal(err) => Verdict::Ignored,
                    _ => classifier.classify(&result),
                };
                permit.complete(verdict, *start);
                Poll::Ready(result)
            }
            KindProj::Rejected { retry_after_nanos } => {
                Poll::Ready(Err(take_rejection(retry_after_nanos)))
            }
        }
    }
}

const NO_RETRY_AFTER: u64 = u64::MAX;

#[cold]
fn retry_after_nanos(retry_after: Option<std::time::Duration>) -> u64 {
    retry_after.map_or(NO_RETRY_AFTER, |d| {
        u64::try_from(d.as_nanos()).unwrap_or(NO_RETRY_AFTER - 1)
    })
}

#[cold]
#[inline(never)]
fn take_rejection<E>(retry_after_nanos: &mut u64) -> ResilienceError<E> {
    let nanos = std::mem::replace(retry_after_nanos, NO_RETRY_AFTER);
    ResilienceError::CircuitOpen {
        retry_after: (nanos != NO_RETRY_AFTER).then(|| std::time::Duration::from_nanos(nanos)),
    }
}
