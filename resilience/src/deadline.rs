//! The overall deadline of a call, carried with the request so retries and inner layers see
//! the time left.

use tokio::time::Instant;

/// The overall deadline of a call, as stored in an `http::Request`'s extensions.
///
/// ```
/// use resilience::Deadline;
/// let d = Deadline(resilience::clock::now());
/// assert!(d.remaining().is_zero());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(pub Instant);

impl Deadline {
    /// Time left until the deadline, zero once it has passed.
    ///
    /// ```
    /// # use resilience::Deadline;
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let d = Deadline(resilience::clock::now() + Duration::from_secs(1));
    /// assert!(d.remaining() <= Duration::from_secs(1));
    /// # }
    /// ```
    pub fn remaining(&self) -> std::time::Duration {
        self.0.saturating_duration_since(crate::clock::now())
    }
}

/// A request that can carry an overall [`Deadline`].
///
/// `http::Request` carries it in its extensions (so it crosses every tower/axum/tonic layer).
/// For your own request types, implement the two methods over a field; the default methods
/// carry nothing, which still lets timeouts fire but hides the deadline from retries.
///
/// ```
/// use resilience::{CarriesDeadline, Deadline};
///
/// #[derive(Clone)]
/// struct SaveRequest { player: u64, deadline: Option<Deadline> }
///
/// impl CarriesDeadline for SaveRequest {
///     fn deadline(&self) -> Option<Deadline> { self.deadline }
///     fn set_deadline(&mut self, deadline: Deadline) { self.deadline = Some(deadline) }
/// }
/// ```
pub trait CarriesDeadline {
    /// The deadline this request carries, if any.
    fn deadline(&self) -> Option<Deadline> {
        None
    }
    /// Records the deadline on this request.
    fn set_deadline(&mut self, deadline: Deadline) {
        let _ = deadline;
    }
}

#[cfg(feature = "http")]
impl<B> CarriesDeadline for http::Request<B> {
    fn deadline(&self) -> Option<Deadline> {
        self.extensions().get::<Deadline>().copied()
    }
    fn set_deadline(&mut self, deadline: Deadline) {
        self.extensions_mut().insert(deadline);
    }
}

macro_rules! carries_no_deadline {
    ($($ty:ty),+) => { $(impl CarriesDeadline for $ty {})+ };
}

carries_no_deadline!(
    (),
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    bool,
    String,
    &'static str
);

impl<T> CarriesDeadline for Vec<T> {}
impl<T: ?Sized> CarriesDeadline for std::sync::Arc<T> {}
