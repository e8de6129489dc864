//! Deciding what counts as a failure: for the circuit breaker's window and for retries.

use crate::error::{ResilienceError, TimeoutScope};

/// What a finished call means to the circuit breaker and the retry policy.
///
/// ```
/// use resilience::Verdict;
/// assert_ne!(Verdict::Success, Verdict::Failure);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The call succeeded.
    Success,
    /// The call failed: it counts against the breaker and may be retried.
    Failure,
    /// The call tells nothing about the dependency's health (e.g. our own rejection): it is
    /// not recorded and not retried.
    Ignored,
}

/// Classifies a call's result. Implemented by closures
/// `Fn(&Result<Res, ResilienceError<E>>) -> Verdict` and by the ready-made classifiers
/// [`ErrorsAreFailures`] and [`StatusClassifier`](crate::status::StatusClassifier) (HTTP
/// statuses and gRPC codes).
///
/// ```
/// use resilience::{Classifier, ResilienceError, Verdict};
///
/// // Saves: a conflict answer is not the database being unhealthy.
/// let classify = |r: &Result<u16, ResilienceError<std::io::Error>>| match r {
///     Ok(409) => Verdict::Success,
///     Ok(status) if *status >= 500 => Verdict::Failure,
///     Ok(_) => Verdict::Success,
///     Err(e) if e.is_rejection() && !matches!(e, ResilienceError::Timeout { .. }) => Verdict::Ignored,
///     Err(_) => Verdict::Failure,
/// };
/// assert_eq!(classify.classify(&Ok(503)), Verdict::Failure);
/// ```
pub trait Classifier<Res, E> {
    /// The verdict on one result.
    fn classify(&self, result: &Result<Res, ResilienceError<E>>) -> Verdict;
}

impl<F, Res, E> Classifier<Res, E> for F
where
    F: Fn(&Result<Res, ResilienceError<E>>) -> Verdict,
{
    #[inline]
    fn classify(&self, result: &Result<Res, ResilienceError<E>>) -> Verdict {
        self(result)
    }
}

/// The default classifier: any response is a success; the inner service's errors and
/// per-attempt timeouts are failures; this crate's own rejections (open circuit, rate limit,
/// full bulkhead) and an expired overall deadline are ignored.
///
/// ```
/// use resilience::{Classifier, ErrorsAreFailures, ResilienceError, Verdict};
/// let c = ErrorsAreFailures;
/// assert_eq!(c.classify(&Ok::<_, ResilienceError<()>>(1)), Verdict::Success);
/// assert_eq!(c.classify(&Err::<u8, _>(ResilienceError::Inner(()))), Verdict::Failure);
/// assert_eq!(c.classify(&Err::<u8, _>(ResilienceError::<()>::BulkheadFull)), Verdict::Ignored);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorsAreFailures;

impl<Res, E> Classifier<Res, E> for ErrorsAreFailures {
    #[inline]
    fn classify(&self, result: &Result<Res, ResilienceError<E>>) -> Verdict {
        match result {
            Ok(_) => Verdict::Success,
            Err(err) => classify_error(err),
        }
    }
}

/// The default verdict on an error (see [`ErrorsAreFailures`]).
///
/// ```
/// use resilience::{classify::classify_error, ResilienceError, TimeoutScope, Verdict};
/// use std::time::Duration;
/// let t: ResilienceError<()> = ResilienceError::Timeout {
///     after: Duration::from_millis(100),
///     scope: TimeoutScope::Attempt,
/// };
/// assert_eq!(classify_error(&t), Verdict::Failure);
/// ```
#[inline]
pub fn classify_error<E>(err: &ResilienceError<E>) -> Verdict {
    if is_own_refusal(err) {
        Verdict::Ignored
    } else {
        Verdict::Failure
    }
}

/// Whether `err` is one of this crate's own refusals (open circuit, rate limit, a call over
/// capacity, full bulkhead, expired overall deadline): it says nothing about the
/// dependency, so the breaker never counts it and the retry never repeats it, whatever the
/// classifier says. A per-attempt timeout is not one: it is the dependency hanging.
///
/// ```
/// use resilience::{classify::is_own_refusal, ResilienceError, TimeoutScope};
/// use std::time::Duration;
/// assert!(is_own_refusal(&ResilienceError::<()>::BulkheadFull));
/// let hung: ResilienceError<()> = ResilienceError::Timeout { after: Duration::from_millis(100), scope: TimeoutScope::Attempt };
/// assert!(!is_own_refusal(&hung));
/// assert!(!is_own_refusal(&ResilienceError::Inner(())));
/// ```
#[inline]
pub fn is_own_refusal<E>(err: &ResilienceError<E>) -> bool {
    err.is_rejection()
        && !matches!(
            err,
            ResilienceError::Timeout {
                scope: TimeoutScope::Attempt,
                ..
            }
        )
}
