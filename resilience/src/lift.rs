//! Small adapters that bring a service's error into [`ResilienceError`].

use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower::Service;

use crate::error::{IntoResilienceError, ResilienceError};

/// Wraps every error of a plain service in [`ResilienceError::Inner`], whatever its type.
/// [`ResiliencePolicy`](crate::ResiliencePolicy) puts it around your service.
///
/// ```
/// use resilience::{lift::LiftInner, ResilienceError};
/// use tower::ServiceExt;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// #[derive(Debug)] struct DbError;
/// let svc = LiftInner::new(tower::service_fn(|_: ()| async { Err::<(), _>(DbError) }));
/// assert!(matches!(svc.oneshot(()).await, Err(ResilienceError::Inner(DbError))));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct LiftInner<S> {
    inner: S,
}

impl<S> LiftInner<S> {
    /// Wraps `inner`.
    ///
    /// ```
    /// let _ = resilience::lift::LiftInner::new(tower::service_fn(|_: ()| async { Ok::<_, ()>(()) }));
    /// ```
    pub fn new(inner: S) -> Self {
        LiftInner { inner }
    }
}

impl<S: Service<Req>, Req> Service<Req> for LiftInner<S> {
    type Response = S::Response;
    type Error = ResilienceError<S::Error>;
    type Future = LiftInnerFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(ResilienceError::Inner)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        LiftInnerFuture {
            future: self.inner.call(req),
        }
    }
}

pin_project! {
    /// Future of [`LiftInner`].
    pub struct LiftInnerFuture<F> {
        #[pin]
        future: F,
    }
}

impl<F: Future<Output = Result<T, E>>, T, E> Future for LiftInnerFuture<F> {
    type Output = Result<T, ResilienceError<E>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project()
            .future
            .poll(cx)
            .map_err(ResilienceError::Inner)
    }
}

/// Converts a service's errors with [`IntoResilienceError`]: the identity for services of
/// this crate, [`ResilienceError::Inner`] for plain error types.
///
/// ```
/// use resilience::{lift::Lifted, ResilienceError};
/// use tower::ServiceExt;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let svc = Lifted::new(tower::service_fn(|_: ()| async { Err::<(), _>(std::io::Error::other("x")) }));
/// assert!(matches!(svc.oneshot(()).await, Err(ResilienceError::Inner(_))));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Lifted<S> {
    inner: S,
}

impl<S> Lifted<S> {
    /// Wraps `inner`.
    ///
    /// ```
    /// let _ = resilience::lift::Lifted::new(tower::service_fn(|_: ()| async { Ok::<_, std::io::Error>(()) }));
    /// ```
    pub fn new(inner: S) -> Self {
        Lifted { inner }
    }
}

impl<S, Req> Service<Req> for Lifted<S>
where
    S: Service<Req>,
    S::Error: IntoResilienceError,
{
    type Response = S::Response;
    type Error = ResilienceError<<S::Error as IntoResilienceError>::Inner>;
    type Future = LiftedFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(IntoResilienceError::into_resilience_error)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        LiftedFuture {
            future: self.inner.call(req),
        }
    }
}

pin_project! {
    /// Future of [`Lifted`].
    pub struct LiftedFuture<F> {
        #[pin]
        future: F,
    }
}

impl<F> LiftedFuture<F> {
    pub(crate) fn new(future: F) -> Self {
        LiftedFuture { future }
    }
}

impl<F: Future<Output = Result<T, E>>, T, E: IntoResilienceError> Future for LiftedFuture<F> {
    type Output = Result<T, ResilienceError<E::Inner>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project()
            .future
            .poll(cx)
            .map_err(IntoResilienceError::into_resilience_error)
    }
}
