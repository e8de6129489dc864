//! Resilience middleware for game services, as [tower] layers.
//!
//! | layer | what it does |
//! |---|---|
//! | [`CircuitBreakerLayer`] | stops calling a failing or slow dependency, then probes it |
//! | [`RetryLayer`] | retries with jittered backoff, within a budget and the deadline |
//! | [`TimeoutLayer`] | per-attempt and overall timeouts; the deadline rides on the request |
//! | [`RateLimitLayer`] | governor quotas, global or per key (player), weighted |
//! | [`BulkheadLayer`] | caps concurrent calls, sheds beyond a bounded queue |
//! | [`FallbackLayer`] | answers chosen failures from a fallback service |
//! | [`ResiliencePolicy`] | all of the above in one documented order, from code or YAML |
//!
//! Every service is `Clone` with its state behind an `Arc`, so it drops into axum, tonic and
//! hyper stacks unchanged. Every layer fails with one error type, [`ResilienceError`].
//! All timers read tokio's clock, so `tokio::time::pause()` makes tests deterministic.
//!
//! ```
//! use resilience::{ResiliencePolicy, ResilienceError};
//! use resilience::circuit_breaker::CircuitBreakerConfig;
//! use resilience::timeout::TimeoutConfig;
//! use std::time::Duration;
//! use tower::{Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let policy = ResiliencePolicy::builder("matchmaking")
//!     .circuit_breaker(CircuitBreakerConfig::default())
//!     .timeout(TimeoutConfig { per_attempt: Some(Duration::from_millis(200)), overall: None })
//!     .build()
//!     .unwrap();
//! let find_match = tower::service_fn(|skill: u32| async move { Ok::<_, std::io::Error>(skill / 100) });
//! let svc = policy.layer(find_match);
//! assert_eq!(svc.oneshot(1250).await.unwrap(), 12);
//! # }
//! ```

#![warn(missing_docs)]

pub mod bulkhead;
pub mod circuit_breaker;
pub mod classify;
pub mod clock;
pub mod config;
pub mod deadline;
pub mod error;
pub mod fallback;
mod gate;
#[cfg(feature = "http")]
pub mod http;
pub mod lift;
pub mod metrics;
pub mod policy;
pub mod rate_limit;
pub mod retry;
mod sliding_window;
pub mod status;
pub mod timeout;

pub use bulkhead::BulkheadLayer;
pub use circuit_breaker::{CircuitBreakerHandle, CircuitBreakerLayer, CircuitState, StateChange};
pub use classify::{Classifier, ErrorsAreFailures, Verdict};
pub use config::ConfigError;
pub use deadline::{CarriesDeadline, Deadline};
pub use error::{ErrorKind, IntoResilienceError, ResilienceError, TimeoutScope};
pub use fallback::{FallbackLayer, FallbackRequest};
pub use gate::GateFuture;
pub use policy::{HttpPolicy, PolicyService, ResiliencePolicy, ResiliencePolicyConfig};
pub use rate_limit::RateLimitLayer;
pub use retry::RetryLayer;
pub use timeout::TimeoutLayer;
