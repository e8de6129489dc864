//! HTTP integration (feature `http`): errors as 503 / 429 / 413 / 504 responses with
//! `Retry-After` where there is a time to come back. HTTP answers are judged by their
//! status with [`StatusRules`](crate::status::StatusRules).

use http::{header, HeaderValue, Response, StatusCode};

use crate::error::ResilienceError;

impl<E> ResilienceError<E> {
    /// The HTTP status this error answers with: 503 for an open circuit or a full bulkhead,
    /// 429 for a rate limit, 413 for a call too large for the rate limit ever to admit (a
    /// retry cannot pass), 504 for a timeout, 500 for the inner service's own error.
    ///
    /// ```
    /// use resilience::ResilienceError;
    /// use std::time::Duration;
    /// let e: ResilienceError<()> = ResilienceError::RateLimited { retry_after: Duration::from_secs(1) };
    /// assert_eq!(e.status_code(), http::StatusCode::TOO_MANY_REQUESTS);
    /// ```
    pub fn status_code(&self) -> StatusCode {
        match self {
            ResilienceError::CircuitOpen { .. } | ResilienceError::BulkheadFull => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ResilienceError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ResilienceError::OverCapacity { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ResilienceError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ResilienceError::Inner(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// An empty response with [`status_code`](Self::status_code) and, when the error knows
    /// when to come back, a `Retry-After` header in whole seconds (rounded up).
    ///
    /// ```
    /// use resilience::ResilienceError;
    /// use std::time::Duration;
    /// let e: ResilienceError<()> = ResilienceError::RateLimited { retry_after: Duration::from_millis(1200) };
    /// let res: http::Response<String> = e.to_response();
    /// assert_eq!(res.status(), 429);
    /// assert_eq!(res.headers()["retry-after"], "2");
    /// ```
    pub fn to_response<B: Default>(&self) -> Response<B> {
        let mut response = Response::new(B::default());
        *response.status_mut() = self.status_code();
        if let Some(after) = self.retry_after() {
            let secs = after
                .as_secs()
                .saturating_add(u64::from(after.subsec_nanos() > 0));
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}
