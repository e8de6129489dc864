//! Bulkhead: a cap on concurrent calls with a bounded wait queue; beyond it, calls are shed
//! at once with [`ResilienceError::BulkheadFull`].

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service, ServiceExt};

use crate::config::{check, ConfigError};
use crate::error::{IntoResilienceError, ResilienceError};
use crate::gate::GateFuture;
use crate::metrics::PolicyMetrics;

/// Bulkhead settings.
///
/// ```
/// use resilience::bulkhead::BulkheadConfig;
/// let config = BulkheadConfig { max_concurrent: 32, max_queue: 64, max_wait: None };
/// config.validate().unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkheadConfig {
    /// Calls allowed to run at once.
    pub max_concurrent: u32,
    /// Calls allowed to wait for a slot; further calls are shed at once.
    #[serde(default)]
    pub max_queue: u32,
    /// A waiting call is shed after this long; unbounded if unset.
    #[serde(default, with = "humantime_serde")]
    pub max_wait: Option<Duration>,
}

impl BulkheadConfig {
    /// Checks the limits.
    ///
    /// ```
    /// use resilience::bulkhead::BulkheadConfig;
    /// let bad = BulkheadConfig { max_concurrent: 0, max_queue: 0, max_wait: None };
    /// assert_eq!(bad.validate().unwrap_err().field(), "bulkhead.max_concurrent");
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(
            (1..=1_000_000).contains(&self.max_concurrent),
            "bulkhead.max_concurrent",
            "must be between 1 and 1000000",
        )?;
        check(
            self.max_queue <= 1_000_000,
            "bulkhead.max_queue",
            "must be at most 1000000",
        )?;
        check(
            self.max_wait.is_none_or(|d| !d.is_zero()),
            "bulkhead.max_wait",
            "must be above zero (leave it out to wait without limit)",
        )
    }
}

#[derive(Debug)]
struct Shared {
    slots: Arc<Semaphore>,
    queued: AtomicUsize,
    max_queue: usize,
    max_wait: Option<Duration>,
}

/// Builds bulkheads; every service made by one layer shares its slots and queue.
///
/// ```
/// use resilience::{BulkheadLayer, bulkhead::BulkheadConfig};
/// use tower::{Layer, ServiceExt};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = BulkheadLayer::new(BulkheadConfig { max_concurrent: 8, max_queue: 16, max_wait: None }).unwrap();
/// let svc = layer.layer(tower::service_fn(|n: u8| async move { Ok::<_, std::io::Error>(n) }));
/// assert_eq!(svc.oneshot(3).await.unwrap(), 3);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct BulkheadLayer {
    shared: Arc<Shared>,
    metrics: Option<PolicyMetrics>,
}

impl BulkheadLayer {
    /// A bulkhead with `config`, after checking it.
    ///
    /// ```
    /// use resilience::{BulkheadLayer, bulkhead::BulkheadConfig};
    /// assert!(BulkheadLayer::new(BulkheadConfig { max_concurrent: 0, max_queue: 0, max_wait: None }).is_err());
    /// ```
    pub fn new(config: BulkheadConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(BulkheadLayer {
            shared: Arc::new(Shared {
                slots: Arc::new(Semaphore::new(config.max_concurrent as usize)),
                queued: AtomicUsize::new(0),
                max_queue: config.max_queue as usize,
                max_wait: config.max_wait,
            }),
            metrics: None,
        })
    }

    /// Counts shed calls in `metrics`.
    ///
    /// ```
    /// # use resilience::{BulkheadLayer, bulkhead::BulkheadConfig, metrics::ResilienceMetrics};
    /// let layer = BulkheadLayer::new(BulkheadConfig { max_concurrent: 1, max_queue: 0, max_wait: None })
    ///     .unwrap()
    ///     .metrics(ResilienceMetrics::default().policy("saves"));
    /// # let _ = layer;
    /// ```
    pub fn metrics(mut self, metrics: PolicyMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Slots free right now.
    ///
    /// ```
    /// # use resilience::{BulkheadLayer, bulkhead::BulkheadConfig};
    /// let layer = BulkheadLayer::new(BulkheadConfig { max_concurrent: 4, max_queue: 0, max_wait: None }).unwrap();
    /// assert_eq!(layer.available(), 4);
    /// ```
    pub fn available(&self) -> usize {
        self.shared.slots.available_permits()
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = Bulkhead<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Bulkhead::optional(Some(self), inner)
    }
}

/// The service made by [`BulkheadLayer`].
#[derive(Debug, Clone)]
pub struct Bulkhead<S> {
    inner: S,
    /// `None`: switched off (a policy without a bulkhead): calls pass straight through.
    shared: Option<Arc<Shared>>,
    metrics: Option<PolicyMetrics>,
}

impl<S> Bulkhead<S> {
    /// `layer`'s bulkhead around `inner`, or, without a layer, `inner` unchanged behind the
    /// same type (as the timeout's `optional` does, and for the same reason).
    pub(crate) fn optional(layer: Option<&BulkheadLayer>, inner: S) -> Self {
        Bulkhead {
            inner,
            shared: layer.map(|l| l.shared.clone()),
            metrics: layer.and_then(|l| l.metrics.clone()),
        }
    }
}

/// Keeps the queue count right however a waiting call ends.
struct QueueSlot(Arc<Shared>);

impl Drop for QueueSlot {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<S, Req> Service<Req> for Bulkhead<S>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send + 'static,
    S::Error: IntoResilienceError,
    <S::Error as IntoResilienceError>::Inner: Send + 'static,
    Req: Send + 'static,
{
    type Response = S::Response;
    type Error = ResilienceError<<S::Error as IntoResilienceError>::Inner>;
    type Future = GateFuture<
        S::Future,
        Option<OwnedSemaphorePermit>,
        S::Response,
        <S::Error as IntoResilienceError>::Inner,
    >;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(IntoResilienceError::into_resilience_error)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let Some(shared) = &self.shared else {
            return GateFuture::admitted(self.inner.call(req), None);
        };
        if let Ok(permit) = shared.slots.clone().try_acquire_owned() {
            return GateFuture::admitted(self.inner.call(req), Some(permit));
        }
        let queued = shared.queued.fetch_add(1, Ordering::AcqRel);
        let slot = QueueSlot(shared.clone());
        if queued >= shared.max_queue {
            drop(slot);
            if let Some(m) = &self.metrics {
                m.record_shed();
            }
            return GateFuture::rejected(ResilienceError::BulkheadFull);
        }
        // Slow path: wait in line for a slot. The clone takes the place of the service that
        // was made ready, which goes with the waiting call.
        let clone = self.inner.clone();
        let svc = std::mem::replace(&mut self.inner, clone);
        let slots = shared.slots.clone();
        let max_wait = shared.max_wait;
        let metrics = self.metrics.clone();
        GateFuture::deferred(Box::pin(async move {
            let acquire = slots.acquire_owned();
            let permit = match max_wait {
                Some(limit) => tokio::time::timeout(limit, acquire).await.ok(),
                None => Some(acquire.await),
            };
            drop(slot);
            let Some(Ok(permit)) = permit else {
                if let Some(m) = &metrics {
                    m.record_shed();
                }
                return Err(ResilienceError::BulkheadFull);
            };
            let result = svc
                .oneshot(req)
                .await
                .map_err(IntoResilienceError::into_resilience_error);
            drop(permit);
            result
        }))
    }
}
