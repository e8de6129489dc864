//! The future shared by the admission layers (bulkhead, rate limit): admitted at once,
//! rejected at once, or, on the slow path only, admitted later.

use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::{IntoResilienceError, ResilienceError};

/// A boxed call that waits for admission first (the slow path of an admission layer).
pub(crate) type Deferred<T, E> =
    Pin<Box<dyn Future<Output = Result<T, ResilienceError<E>>> + Send + 'static>>;

pin_project! {
    /// The future of [`Bulkhead`](crate::bulkhead::Bulkhead) and
    /// [`RateLimit`](crate::rate_limit::RateLimit). `H` is held while the inner call runs
    /// (the bulkhead's permit).
    pub struct GateFuture<F, H, T, E> {
        #[pin]
        state: State<F, H, T, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, H, T, E> {
        Admitted { #[pin] future: F, held: H },
        Rejected { error: Option<ResilienceError<E>> },
        Deferred { future: Deferred<T, E> },
    }
}

impl<F, H, T, E> GateFuture<F, H, T, E> {
    pub(crate) fn admitted(future: F, held: H) -> Self {
        GateFuture {
            state: State::Admitted { future, held },
        }
    }

    pub(crate) fn rejected(error: ResilienceError<E>) -> Self {
        GateFuture {
            state: State::Rejected { error: Some(error) },
        }
    }

    pub(crate) fn deferred(future: Deferred<T, E>) -> Self {
        GateFuture {
            state: State::Deferred { future },
        }
    }
}

impl<F, H, T, Err> Future for GateFuture<F, H, T, Err::Inner>
where
    F: Future<Output = Result<T, Err>>,
    Err: IntoResilienceError,
{
    type Output = Result<T, ResilienceError<Err::Inner>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Admitted { future, .. } => future
                .poll(cx)
                .map_err(IntoResilienceError::into_resilience_error),
            StateProj::Rejected { error } => match error.take() {
                Some(error) => Poll::Ready(Err(error)),
                None => panic!("GateFuture polled after completion"),
            },
            StateProj::Deferred { future } => future.as_mut().poll(cx),
        }
    }
}
