//! Time, from tokio's clock, so `tokio::time::pause()` drives every timer of this crate.
//!
//! Every layer reads time through [`now`], which is `tokio::time::Instant::now()`; the rate
//! limiter reads it through [`TokioClock`], governor's clock trait over the same source.

use std::time::Duration;
use tokio::time::Instant;

/// The current instant on tokio's clock (the paused clock in tests).
///
/// ```
/// let before = resilience::clock::now();
/// assert!(resilience::clock::now() >= before);
/// ```
#[inline]
pub fn now() -> Instant {
    Instant::now()
}

/// A [`governor`] clock backed by tokio's clock: instants are the time elapsed since the
/// clock was made, so a paused tokio runtime drives the rate limiter too.
///
/// ```
/// use governor::clock::Clock;
/// let clock = resilience::clock::TokioClock::new();
/// assert!(clock.now() <= clock.now());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: Instant,
}

impl TokioClock {
    /// A clock whose zero is the current instant.
    ///
    /// ```
    /// let _clock = resilience::clock::TokioClock::new();
    /// ```
    pub fn new() -> Self {
        TokioClock { origin: now() }
    }

    /// The tokio instant a reading of this clock stands for.
    ///
    /// ```
    /// use governor::clock::Clock;
    /// let clock = resilience::clock::TokioClock::new();
    /// let reading = clock.now();
    /// assert!(clock.instant_of(reading) <= resilience::clock::now());
    /// ```
    pub fn instant_of(&self, reading: Duration) -> Instant {
        self.origin + reading
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl governor::clock::Clock for TokioClock {
    type Instant = Duration;

    #[inline]
    fn now(&self) -> Duration {
        now().saturating_duration_since(self.origin)
    }
}

impl governor::clock::ReasonablyRealtime for TokioClock {}
