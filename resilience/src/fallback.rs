//! Fallback: when a call fails with a chosen kind of error, answer from a fallback service
//! instead (a cache, a default, a degraded mode).

use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower::util::Oneshot;
use tower::{Layer, Service, ServiceExt};

use crate::error::{ErrorKind, IntoResilienceError, ResilienceError};
use crate::metrics::{CallOutcome, PolicyMetrics};

/// What the fallback service receives: the original request and the error it met.
///
/// ```
/// use resilience::{FallbackRequest, ResilienceError};
/// let f = FallbackRequest { request: 7u64, error: ResilienceError::<()>::BulkheadFull };
/// assert_eq!(f.request, 7);
/// ```
#[derive(Debug)]
pub struct FallbackRequest<Req, E> {
    /// The request that failed.
    pub request: Req,
    /// Why it failed.
    pub error: ResilienceError<E>,
}

/// A predicate over the inner service's error: which inner errors fall back.
pub trait InnerErrorFilter<E> {
    /// Whether `error` should be answered by the fallback.
    fn matches(&self, error: &E) -> bool;

    /// True when this filter matches no error at all (lets the layer skip saving the
    /// request when no rejection kind is chosen either).
    fn matches_nothing(&self) -> bool {
        false
    }
}

/// No inner error falls back (only the chosen rejection kinds do).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoInnerErrors;

impl<E> InnerErrorFilter<E> for NoInnerErrors {
    #[inline]
    fn matches(&self, _error: &E) -> bool {
        false
    }

    fn matches_nothing(&self) -> bool {
        true
    }
}

impl<E, F: Fn(&E) -> bool> InnerErrorFilter<E> for F {
    #[inline]
    fn matches(&self, error: &E) -> bool {
        self(error)
    }
}

/// The error kinds that fall back, as a small set.
///
/// ```
/// use resilience::{ErrorKind, fallback::ErrorKinds};
/// let kinds = ErrorKinds::NONE.with(ErrorKind::Timeout).with(ErrorKind::CircuitOpen);
/// assert!(kinds.contains(ErrorKind::Timeout));
/// assert!(!kinds.contains(ErrorKind::RateLimited));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorKinds(u8);

impl ErrorKinds {
    /// No kind.
    pub const NONE: ErrorKinds = ErrorKinds(0);
    /// Open circuit, rate limit, timeout, full bulkhead and a call over the rate limit's
    /// capacity: every rejection of this crate.
    pub const REJECTIONS: ErrorKinds = ErrorKinds(0b10_1111);

    fn bit(kind: ErrorKind) -> u8 {
        ErrorKinds::NONE.with(kind).0
    }

    /// This set plus `kind`.
    ///
    /// ```
    /// use resilience::{ErrorKind, fallback::ErrorKinds};
    /// assert!(ErrorKinds::NONE.with(ErrorKind::Inner).contains(ErrorKind::Inner));
    /// ```
    pub const fn with(self, kind: ErrorKind) -> ErrorKinds {
        let bit = match kind {
            ErrorKind::CircuitOpen => 1,
            ErrorKind::RateLimited => 2,
            ErrorKind::Timeout => 4,
            ErrorKind::BulkheadFull => 8,
            ErrorKind::Inner => 16,
            ErrorKind::OverCapacity => 32,
        };
        ErrorKinds(self.0 | bit)
    }

    /// Whether `kind` is in the set.
    ///
    /// ```
    /// use resilience::{ErrorKind, fallback::ErrorKinds};
    /// assert!(ErrorKinds::REJECTIONS.contains(ErrorKind::BulkheadFull));
    /// ```
    pub fn contains(self, kind: ErrorKind) -> bool {
        self.0 & Self::bit(kind) != 0
    }
}

/// Where a fallback answer comes from: implemented by [`ServiceFallback`] (a tower service
/// over [`FallbackRequest`]) and [`NoFallback`].
pub trait FallbackHandler<Req, E, Res>: Clone {
    /// The fallback's future.
    type Future: Future<Output = Result<Res, ResilienceError<E>>>;
    /// Answers a failed request.
    fn answer(self, request: FallbackRequest<Req, E>) -> Self::Future;
}

/// No fallback: the error is passed on ([`ResiliencePolicy`](crate::ResiliencePolicy)
/// without a fallback).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFallback;

impl<Req, E, Res> FallbackHandler<Req, E, Res> for NoFallback {
    type Future = std::future::Ready<Result<Res, ResilienceError<E>>>;

    fn answer(self, request: FallbackRequest<Req, E>) -> Self::Future {
        std::future::ready(Err(request.error))
    }
}

/// A tower service used as the fallback (see [`FallbackLayer::new`]).
#[derive(Debug, Clone, Copy)]
pub struct ServiceFallback<F>(F);

impl<F, Req, E, Res> FallbackHandler<Req, E, Res> for ServiceFallback<F>
where
    F: Service<FallbackRequest<Req, E>, Response = Res> + Clone,
    F::Error: IntoResilienceError<Inner = E>,
{
    type Future = crate::lift::LiftedFuture<Oneshot<F, FallbackRequest<Req, E>>>;

    fn answer(self, request: FallbackRequest<Req, E>) -> Self::Future {
        crate::lift::LiftedFuture::new(self.0.oneshot(request))
    }
}

/// Builds fallbacks.
///
/// ```
/// use resilience::{FallbackLayer, FallbackRequest, ResilienceError, TimeoutLayer};
/// use std::time::Duration;
/// use tower::{Layer, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// // Player profile reads: on timeout, answer from the cache.
/// let cache = tower::service_fn(|f: FallbackRequest<u64, std::io::Error>| async move {
///     Ok::<_, ResilienceError<std::io::Error>>(format!("cached profile {}", f.request))
/// });
/// let db = tower::service_fn(|id: u64| async move {
///     tokio::time::sleep(Duration::from_secs(3)).await;
///     Ok::<_, std::io::Error>(format!("profile {id}"))
/// });
/// let svc = ServiceBuilder::new()
///     .layer(FallbackLayer::new(cache))
///     .layer(TimeoutLayer::per_attempt(Duration::from_millis(100)))
///     .service(db);
/// assert_eq!(svc.oneshot(9).await.unwrap(), "cached profile 9");
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct FallbackLayer<F, P = NoInnerErrors> {
    fallback: F,
    kinds: ErrorKinds,
    inner_errors: P,
    metrics: Option<PolicyMetrics>,
}

impl<F> FallbackLayer<ServiceFallback<F>, NoInnerErrors> {
    /// Answers from `fallback` on every rejection (open circuit, rate limit, timeout, full
    /// bulkhead). Inner errors pass through unless [`on_inner`](Self::on_inner) says so.
    ///
    /// ```
    /// use resilience::{FallbackLayer, FallbackRequest, ResilienceError};
    /// let layer = FallbackLayer::new(tower::service_fn(|_: FallbackRequest<u8, ()>| async {
    ///     Ok::<_, ResilienceError<()>>(0u8)
    /// }));
    /// # let _ = layer;
    /// ```
    pub fn new(fallback: F) -> Self {
        FallbackLayer {
            fallback: ServiceFallback(fallback),
            kinds: ErrorKinds::REJECTIONS,
            inner_errors: NoInnerErrors,
            metrics: None,
        }
    }
}

impl FallbackLayer<NoFallback, NoInnerErrors> {
    /// No fallback: errors pass through (the layer still counts call outcomes when given
    /// metrics).
    ///
    /// ```
    /// let _ = resilience::FallbackLayer::none();
    /// ```
    pub fn none() -> Self {
        FallbackLayer {
            fallback: NoFallback,
            kinds: ErrorKinds::NONE,
            inner_errors: NoInnerErrors,
            metrics: None,
        }
    }
}

impl<F, P> FallbackLayer<F, P> {
    /// Falls back on exactly these rejection kinds.
    ///
    /// ```
    /// use resilience::{ErrorKind, FallbackLayer, fallback::ErrorKinds};
    /// let layer = FallbackLayer::none().on_kinds(ErrorKinds::NONE.with(ErrorKind::CircuitOpen));
    /// # let _ = layer;
    /// ```
    pub fn on_kinds(mut self, kinds: ErrorKinds) -> Self {
        self.kinds = kinds;
        self
    }

    /// Also falls back on inner errors for which `filter` returns true.
    ///
    /// ```
    /// use resilience::FallbackLayer;
    /// let layer = FallbackLayer::none().on_inner(|e: &std::io::Error| e.kind() == std::io::ErrorKind::ConnectionRefused);
    /// # let _ = layer;
    /// ```
    pub fn on_inner<P2>(self, filter: P2) -> FallbackLayer<F, P2> {
        FallbackLayer {
            fallback: self.fallback,
            kinds: self.kinds,
            inner_errors: filter,
            metrics: self.metrics,
        }
    }

    /// Counts call outcomes and fallbacks in `metrics`.
    ///
    /// ```
    /// use resilience::{FallbackLayer, metrics::ResilienceMetrics};
    /// let layer = FallbackLayer::none().metrics(ResilienceMetrics::default().policy("saves"));
    /// # let _ = layer;
    /// ```
    pub fn metrics(mut self, metrics: PolicyMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

impl<S, F: Clone, P: Clone> Layer<S> for FallbackLayer<F, P> {
    type Service = Fallback<S, F, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Fallback {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`FallbackLayer`].
#[derive(Debug, Clone)]
pub struct Fallback<S, F, P = NoInnerErrors> {
    inner: S,
    layer: FallbackLayer<F, P>,
}

impl<S, F, P, Req> Service<Req> for Fallback<S, F, P>
where
    S: Service<Req>,
    S::Error: IntoResilienceError,
    F: FallbackHandler<Req, <S::Error as IntoResilienceError>::Inner, S::Response>,
    P: InnerErrorFilter<<S::Error as IntoResilienceError>::Inner> + Clone,
    Req: Clone,
{
    type Response = S::Response;
    type Error = ResilienceError<<S::Error as IntoResilienceError>::Inner>;
    type Future =
        FallbackFuture<S::Future, Req, F, P, <S::Error as IntoResilienceError>::Inner, S::Response>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(IntoResilienceError::into_resilience_error)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let active = self.layer.kinds != ErrorKinds::NONE
            || !InnerErrorFilter::<<S::Error as IntoResilienceError>::Inner>::matches_nothing(
                &self.layer.inner_errors,
            );
        let saved = if active {
            Some((
                req.clone(),
                self.layer.fallback.clone(),
                self.layer.inner_errors.clone(),
            ))
        } else {
            None
        };
        FallbackFuture {
            state: State::Primary {
                future: self.inner.call(req),
                saved,
                kinds: self.layer.kinds,
            },
            metrics: self.layer.metrics.clone(),
        }
    }
}

pin_project! {
    /// Future of [`Fallback`].
    pub struct FallbackFuture<Fut, Req, F, P, E, T>
    where
        F: FallbackHandler<Req, E, T>,
    {
        #[pin]
        state: State<Fut, Req, F, P, E, T>,
        metrics: Option<PolicyMetrics>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<Fut, Req, F, P, E, T>
    where
        F: FallbackHandler<Req, E, T>,
    {
        Primary { #[pin] future: Fut, saved: Option<(Req, F, P)>, kinds: ErrorKinds },
        Fallback { #[pin] future: F::Future },
    }
}

impl<Fut, Req, F, P, T, Err> Future for FallbackFuture<Fut, Req, F, P, Err::Inner, T>
where
    Fut: Future<Output = Result<T, Err>>,
    Err: IntoResilienceError,
    F: FallbackHandler<Req, Err::Inner, T>,
    P: InnerErrorFilter<Err::Inner>,
{
    type Output = Result<T, ResilienceError<Err::Inner>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Primary {
                    future,
                    saved,
                    kinds,
                } => {
                    let result = std::task::ready!(future.poll(cx))
                        .map_err(IntoResilienceError::into_resilience_error);
                    let error = match result {
                        Ok(response) => {
                            if let Some(m) = this.metrics {
                                m.record_call(CallOutcome::Success);
                            }
                            return Poll::Ready(Ok(response));
                        }
                        Err(error) => error,
                    };
                    let falls_back = match (&error, saved.as_ref()) {
                        (_, None) => false,
                        (ResilienceError::Inner(inner), Some((_, _, filter))) => {
                            kinds.contains(ErrorKind::Inner) || filter.matches(inner)
                        }
                        (other, Some(_)) => kinds.contains(other.kind()),
                    };
                    let Some((request, fallback, _)) = saved.take().filter(|_| falls_back) else {
                        if let Some(m) = this.metrics {
                            m.record_call(CallOutcome::of_error(error.kind()));
                        }
                        return Poll::Ready(Err(error));
                    };
                    tracing::debug!(error = ?error.kind(), "answering from fallback");
                    let future = fallback.answer(FallbackRequest { request, error });
                    this.state.set(State::Fallback { future });
                }
                StateProj::Fallback { future } => {
                    let result = std::task::ready!(future.poll(cx));
                    if let Some(m) = this.metrics {
                        match &result {
                            Ok(_) => {
                                m.record_call(CallOutcome::Fallback);
                                m.record_fallback();
                            }
                            Err(e) => m.record_call(CallOutcome::of_error(e.kind())),
                        }
                    }
                    return Poll::Ready(result);
                }
            }
        }
    }
}
