//! The one error type every layer of this crate returns, and the conversion of an inner
//! service's own error into it.

use std::convert::Infallible;
use std::fmt;
use std::time::Duration;

/// Which timeout fired: one attempt's, or the whole call's deadline (all retries included).
///
/// ```
/// use resilience::TimeoutScope;
/// assert_eq!(TimeoutScope::Overall.to_string(), "overall");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeoutScope {
    /// A single attempt ran longer than the per-attempt timeout.
    Attempt,
    /// The overall deadline carried by the request passed.
    Overall,
}

impl fmt::Display for TimeoutScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutScope::Attempt => "attempt",
            TimeoutScope::Overall => "overall",
        })
    }
}

/// The error of every service in this crate: either one of the resilience decisions
/// (open circuit, rate limit, timeout, full bulkhead) or the inner service's own error.
///
/// ```
/// use resilience::ResilienceError;
/// use std::time::Duration;
///
/// let err: ResilienceError<std::io::Error> =
///     ResilienceError::RateLimited { retry_after: Duration::from_millis(250) };
/// assert_eq!(err.retry_after(), Some(Duration::from_millis(250)));
/// assert_eq!(err.kind(), resilience::ErrorKind::RateLimited);
/// ```
#[derive(Debug, thiserror::Error)]
pub enum ResilienceError<E> {
    /// The circuit breaker is open (or forced open) and rejected the call without running it.
    #[error("circuit breaker is open{}", fmt_retry_after(.retry_after))]
    CircuitOpen {
        /// When the breaker will next let a probe through, if known.
        retry_after: Option<Duration>,
    },
    /// The rate limiter rejected the call; it may succeed after `retry_after`.
    #[error("rate limited; retry after {retry_after:?}")]
    RateLimited {
        /// The earliest time after which the same call would be admitted.
        retry_after: Duration,
    },
    /// The call (or one attempt of it) took longer than allowed.
    #[error("{scope} timeout after {after:?}")]
    Timeout {
        /// The limit that passed.
        after: Duration,
        /// Whether the attempt's or the overall deadline fired.
        scope: TimeoutScope,
    },
    /// The bulkhead's concurrent calls and wait queue were full; the call was shed at once.
    #[error("bulkhead full: call shed")]
    BulkheadFull,
    /// The call costs more rate-limit units than the limit's burst holds, so it can never
    /// be admitted, however long the caller waits: split it, or raise the burst.
    #[error("call costs {cost} rate-limit units, more than the burst: it can never be admitted")]
    OverCapacity {
        /// What the call costs (see `RateLimitLayer::cost`).
        cost: u32,
    },
    /// The inner service failed.
    #[error("inner service error: {0}")]
    Inner(#[source] E),
}

fn fmt_retry_after(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!("; retry after {d:?}"),
        None => String::new(),
    }
}

/// The kind of a [`ResilienceError`], without its payload: used by fallbacks, metrics and
/// classifiers to choose what to react to.
///
/// ```
/// use resilience::{ErrorKind, ResilienceError};
/// let err: ResilienceError<()> = ResilienceError::BulkheadFull;
/// assert_eq!(err.kind(), ErrorKind::BulkheadFull);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// [`ResilienceError::CircuitOpen`].
    CircuitOpen,
    /// [`ResilienceError::RateLimited`].
    RateLimited,
    /// [`ResilienceError::Timeout`].
    Timeout,
    /// [`ResilienceError::BulkheadFull`].
    BulkheadFull,
    /// [`ResilienceError::OverCapacity`].
    OverCapacity,
    /// [`ResilienceError::Inner`].
    Inner,
}

impl<E> ResilienceError<E> {
    /// The kind of this error.
    ///
    /// ```
    /// # use resilience::{ErrorKind, ResilienceError};
    /// assert_eq!(ResilienceError::Inner("db down").kind(), ErrorKind::Inner);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            ResilienceError::CircuitOpen { .. } => ErrorKind::CircuitOpen,
            ResilienceError::RateLimited { .. } => ErrorKind::RateLimited,
            ResilienceError::Timeout { .. } => ErrorKind::Timeout,
            ResilienceError::BulkheadFull => ErrorKind::BulkheadFull,
            ResilienceError::OverCapacity { .. } => ErrorKind::OverCapacity,
            ResilienceError::Inner(_) => ErrorKind::Inner,
        }
    }

    /// How long a caller should wait before trying again, when the error says so.
    ///
    /// ```
    /// # use resilience::ResilienceError;
    /// # use std::time::Duration;
    /// let open: ResilienceError<()> =
    ///     ResilienceError::CircuitOpen { retry_after: Some(Duration::from_secs(2)) };
    /// assert_eq!(open.retry_after(), Some(Duration::from_secs(2)));
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ResilienceError::CircuitOpen { retry_after } => *retry_after,
            ResilienceError::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// The inner service's error, if this is one.
    ///
    /// ```
    /// # use resilience::ResilienceError;
    /// assert_eq!(ResilienceError::Inner(7).inner(), Some(&7));
    /// ```
    pub fn inner(&self) -> Option<&E> {
        match self {
            ResilienceError::Inner(e) => Some(e),
            _ => None,
        }
    }

    /// True when the error is one of this crate's own rejections (the call never reached, or
    /// was cut off from, the inner service) rather than the inner service's error.
    ///
    /// ```
    /// # use resilience::ResilienceError;
    /// assert!(ResilienceError::<()>::BulkheadFull.is_rejection());
    /// assert!(!ResilienceError::Inner(()).is_rejection());
    /// ```
    pub fn is_rejection(&self) -> bool {
        !matches!(self, ResilienceError::Inner(_))
    }
}

/// Converts a service's error into a [`ResilienceError`].
///
/// Layers stack: a layer wrapped around another of this crate's layers sees a
/// `ResilienceError<E>` and passes it through unchanged; a layer wrapped around a plain
/// service wraps its error in [`ResilienceError::Inner`]. Implemented for
/// `ResilienceError<E>` itself and common error types; implement it for your own error type
/// with [`inner_error!`](crate::inner_error), or wrap your service with
/// `tower::ServiceExt::map_err(ResilienceError::Inner)`.
///
/// ```
/// use resilience::{IntoResilienceError, ResilienceError};
/// let io = std::io::Error::other("boom");
/// assert!(matches!(io.into_resilience_error(), ResilienceError::Inner(_)));
/// ```
pub trait IntoResilienceError {
    /// The inner service's error type carried by [`ResilienceError::Inner`].
    type Inner;
    /// Performs the conversion.
    fn into_resilience_error(self) -> ResilienceError<Self::Inner>;
}

impl<E> IntoResilienceError for ResilienceError<E> {
    type Inner = E;
    #[inline]
    fn into_resilience_error(self) -> ResilienceError<E> {
        self
    }
}

/// Implements [`IntoResilienceError`] for error types of your own, so this crate's layers
/// can wrap services that fail with them directly.
///
/// ```
/// #[derive(Debug)]
/// pub struct SaveError;
/// resilience::inner_error!(SaveError);
///
/// use resilience::{IntoResilienceError, ResilienceError};
/// assert!(matches!(SaveError.into_resilience_error(), ResilienceError::Inner(SaveError)));
/// ```
#[macro_export]
macro_rules! inner_error {
    ($($ty:ty),+ $(,)?) => {
        $(
            impl $crate::IntoResilienceError for $ty {
                type Inner = $ty;
                #[inline]
                fn into_resilience_error(self) -> $crate::ResilienceError<$ty> {
                    $crate::ResilienceError::Inner(self)
                }
            }
        )+
    };
}

inner_error!(
    Infallible,
    std::io::Error,
    tower::BoxError,
    String,
    &'static str
);

#[cfg(feature = "http")]
inner_error!(http::Error);
