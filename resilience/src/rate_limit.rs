//! Rate limiting with governor (GCRA): direct (one quota for all calls) or keyed (one quota
//! per key, e.g. per player), weighted costs, reject at once with a retry-after or wait up to
//! a bound, bounded keyed state, and a quota that can be changed at runtime.

use arc_swap::ArcSwap;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Layer, Service, ServiceExt};

use crate::clock::TokioClock;
use crate::config::{check, ConfigError};
use crate::error::{IntoResilienceError, ResilienceError};
use crate::gate::GateFuture;
use crate::metrics::PolicyMetrics;

/// Rate limit settings.
///
/// ```
/// use resilience::rate_limit::RateLimitConfig;
/// use std::time::Duration;
/// // 20 saves per second per player, bursts of 5, callers may wait up to 50 ms.
/// let config = RateLimitConfig { per_second: 20.0, burst: 5, max_wait: Duration::from_millis(50) };
/// assert!(config.quota().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained rate (calls, or cost units, per second).
    pub per_second: f64,
    /// Calls (cost units) that may arrive at once on top of the rate.
    pub burst: u32,
    /// How long a call may wait for quota; zero rejects at once.
    #[serde(default, with = "humantime_serde")]
    pub max_wait: Duration,
}

impl RateLimitConfig {
    /// Checks the settings and builds the governor quota.
    ///
    /// ```
    /// use resilience::rate_limit::RateLimitConfig;
    /// let bad = RateLimitConfig { per_second: 0.0, burst: 1, max_wait: Default::default() };
    /// assert_eq!(bad.quota().unwrap_err().field(), "rate_limit.per_second");
    /// ```
    pub fn quota(&self) -> Result<Quota, ConfigError> {
        check(
            self.per_second.is_finite() && self.per_second >= 1e-6 && self.per_second <= 1e9,
            "rate_limit.per_second",
            "must be between 0.000001 and 1000000000",
        )?;
        check(
            self.max_wait <= Duration::from_secs(60),
            "rate_limit.max_wait",
            "must be at most 60s",
        )?;
        let burst = NonZeroU32::new(self.burst)
            .ok_or_else(|| ConfigError::new("rate_limit.burst", "must be at least 1"))?;
        let period = Duration::from_secs_f64(1.0 / self.per_second);
        let quota = Quota::with_period(period)
            .ok_or_else(|| ConfigError::new("rate_limit.per_second", "is too high"))?;
        Ok(quota.allow_burst(burst))
    }
}

type DirectLimiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>;
type KeyedLimiter<K> =
    RateLimiter<K, DefaultKeyedStateStore<K>, TokioClock, NoOpMiddleware<Duration>>;

/// Why a call was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The quota would admit it after this long.
    Wait(Duration),
    /// Its cost exceeds the burst: it can never be admitted.
    Never,
}

/// Admission under a quota: implemented by [`Global`] and [`PerKey`].
pub trait Limiter<Req>: Send + Sync + 'static {
    /// Takes `cost` units for `req`, or says why not.
    fn try_take(&self, req: &Req, cost: NonZeroU32) -> Result<(), Denied>;
}

/// A quota that can be replaced at runtime.
pub trait SetQuota: Send + Sync {
    /// Replaces the quota; state starts afresh (everyone gets a full burst).
    fn set_quota(&self, quota: Quota);
}

fn outcome<T>(
    clock: &TokioClock,
    checked: Result<Result<(), governor::NotUntil<Duration>>, T>,
) -> Result<(), Denied> {
    use governor::clock::Clock;
    match checked {
        Ok(Ok(())) => Ok(()),
        Ok(Err(not_until)) => Err(Denied::Wait(not_until.wait_time_from(clock.now()))),
        Err(_) => Err(Denied::Never),
    }
}

/// One quota shared by all calls.
pub struct Global {
    limiter: ArcSwap<DirectLimiter>,
    clock: TokioClock,
}

impl Global {
    fn new(quota: Quota) -> Self {
        let clock = TokioClock::new();
        Global {
            limiter: ArcSwap::from_pointee(RateLimiter::direct_with_clock(quota, clock)),
            clock,
        }
    }
}

impl<Req> Limiter<Req> for Global {
    #[inline]
    fn try_take(&self, _req: &Req, cost: NonZeroU32) -> Result<(), Denied> {
        let limiter = self.limiter.load();
        let checked = if cost.get() == 1 {
            Ok(limiter.check())
        } else {
            limiter.check_n(cost)
        };
        outcome(&self.clock, checked)
    }
}

impl SetQuota for Global {
    fn set_quota(&self, quota: Quota) {
        self.limiter
            .store(Arc::new(RateLimiter::direct_with_clock(quota, self.clock)));
    }
}

/// One quota per key, with the key taken from the request by `F`.
///
/// Keys are dropped once their quota has fully refilled (governor's `retain_recent`), every
/// `housekeeping` interval and whenever more than `max_keys` are tracked, so memory stays
/// bounded by the keys active within one refill period.
pub struct PerKey<K: Hash + Eq + Clone, F> {
    limiter: ArcSwap<KeyedLimiter<K>>,
    key_of: F,
    clock: TokioClock,
    next_housekeeping: AtomicU64,
    calls: AtomicU64,
    /// Settable while the limiter is shared (`RateLimitLayer::housekeeping`).
    housekeeping_nanos: AtomicU64,
    max_keys: AtomicUsize,
}

impl<K, F> PerKey<K, F>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    fn new(quota: Quota, key_of: F) -> Self {
        let clock = TokioClock::new();
        PerKey {
            limiter: ArcSwap::from_pointee(RateLimiter::new(
                quota,
                DefaultKeyedStateStore::default(),
                clock,
            )),
            key_of,
            clock,
            next_housekeeping: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            housekeeping_nanos: AtomicU64::new(10_000_000_000),
            max_keys: AtomicUsize::new(100_000),
        }
    }

    /// Sets how often idle keys are dropped and how many keys trigger an early clean-up;
    /// the next clean-up is due one new interval from now.
    fn set_housekeeping(&self, every: Duration, max_keys: usize) {
        use governor::clock::Clock;
        let every = u64::try_from(every.as_nanos()).unwrap_or(u64::MAX);
        self.housekeeping_nanos.store(every, Ordering::Relaxed);
        self.max_keys.store(max_keys, Ordering::Relaxed);
        let now = self.clock.now().as_nanos() as u64;
        self.next_housekeeping
            .store(now.saturating_add(every), Ordering::Relaxed);
    }

    /// Number of keys currently tracked.
    pub fn tracked_keys(&self) -> usize {
        self.limiter.load().len()
    }

    fn maybe_housekeep(&self, limiter: &KeyedLimiter<K>) {
        use governor::clock::Clock;
        let now = self.clock.now().as_nanos() as u64;
        let due = self.next_housekeeping.load(Ordering::Relaxed);
        // Every 4096 calls, also look at the size so a burst of new keys cannot grow the map
        // for a whole interval.
        let sample = self.calls.fetch_add(1, Ordering::Relaxed) % 4096 == 0;
        let crowded = sample && limiter.len() > self.max_keys.load(Ordering::Relaxed);
        if (now >= due || crowded)
            && self
                .next_housekeeping
                .compare_exchange(
                    due,
                    now.saturating_add(self.housekeeping_nanos.load(Ordering::Relaxed)),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

impl<Req, K, F> Limiter<Req> for PerKey<K, F>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    F: Fn(&Req) -> K + Send + Sync + 'static,
{
    #[inline]
    fn try_take(&self, req: &Req, cost: NonZeroU32) -> Result<(), Denied> {
        let key = (self.key_of)(req);
        let limiter = self.limiter.load();
        self.maybe_housekeep(&limiter);
        outcome(&self.clock, limiter.check_key_n(&key, cost))
    }
}

impl<K, F> SetQuota for PerKey<K, F>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    F: Send + Sync,
{
    fn set_quota(&self, quota: Quota) {
        self.limiter.store(Arc::new(RateLimiter::new(
            quota,
            DefaultKeyedStateStore::default(),
            self.clock,
        )));
    }
}

/// The cost of one request in quota units.
pub trait Cost<Req>: Send + Sync + 'static {
    /// Units this request takes (0 is treated as 1).
    fn cost(&self, req: &Req) -> u32;
}

/// Every request costs one unit.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnitCost;

impl<Req> Cost<Req> for UnitCost {
    #[inline]
    fn cost(&self, _req: &Req) -> u32 {
        1
    }
}

impl<Req, F: Fn(&Req) -> u32 + Send + Sync + 'static> Cost<Req> for F {
    #[inline]
    fn cost(&self, req: &Req) -> u32 {
        self(req)
    }
}

/// Changes a running limiter's quota.
///
/// ```
/// use resilience::{RateLimitLayer, rate_limit::RateLimitConfig};
/// use std::time::Duration;
/// let layer = RateLimitLayer::global(RateLimitConfig { per_second: 100.0, burst: 10, max_wait: Duration::ZERO }).unwrap();
/// let handle = layer.handle();
/// handle.set(RateLimitConfig { per_second: 500.0, burst: 50, max_wait: Duration::ZERO }).unwrap();
/// ```
#[derive(Clone)]
pub struct RateLimitHandle {
    target: Arc<dyn SetQuota>,
}

impl std::fmt::Debug for RateLimitHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RateLimitHandle")
    }
}

impl RateLimitHandle {
    /// Replaces the quota after checking `config` (its `max_wait` is not changed here).
    ///
    /// ```
    /// # use resilience::{RateLimitLayer, rate_limit::RateLimitConfig};
    /// # let layer = RateLimitLayer::global(RateLimitConfig { per_second: 1.0, burst: 1, max_wait: Default::default() }).unwrap();
    /// let bad = RateLimitConfig { per_second: -1.0, burst: 1, max_wait: Default::default() };
    /// assert!(layer.handle().set(bad).is_err());
    /// ```
    pub fn set(&self, config: RateLimitConfig) -> Result<(), ConfigError> {
        self.target.set_quota(config.quota()?);
        Ok(())
    }
}

/// Builds rate limiters. Every service made by one layer shares its quota.
///
/// ```
/// use resilience::{RateLimitLayer, ResilienceError, rate_limit::RateLimitConfig};
/// use std::time::Duration;
/// use tower::{Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// // Per player: 1 call per second, no burst beyond one.
/// let layer = RateLimitLayer::keyed(
///     RateLimitConfig { per_second: 1.0, burst: 1, max_wait: Duration::ZERO },
///     |player: &u64| *player,
/// ).unwrap();
/// let svc = layer.layer(tower::service_fn(|p: u64| async move { Ok::<_, std::io::Error>(p) }));
/// assert!(svc.clone().oneshot(7).await.is_ok());
/// assert!(svc.clone().oneshot(8).await.is_ok()); // another player has their own quota
/// let err = svc.clone().oneshot(7).await.unwrap_err();
/// assert!(matches!(err, ResilienceError::RateLimited { .. }));
/// # }
/// ```
pub struct RateLimitLayer<L, W = UnitCost> {
    limiter: Arc<L>,
    cost: Arc<W>,
    max_wait: Duration,
    metrics: Option<PolicyMetrics>,
}

impl<L, W> Clone for RateLimitLayer<L, W> {
    fn clone(&self) -> Self {
        RateLimitLayer {
            limiter: self.limiter.clone(),
            cost: self.cost.clone(),
            max_wait: self.max_wait,
            metrics: self.metrics.clone(),
        }
    }
}

impl<L, W> std::fmt::Debug for RateLimitLayer<L, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("max_wait", &self.max_wait)
            .finish_non_exhaustive()
    }
}

impl RateLimitLayer<Global> {
    /// One quota for every call.
    ///
    /// ```
    /// use resilience::{RateLimitLayer, rate_limit::RateLimitConfig};
    /// let layer = RateLimitLayer::global(RateLimitConfig { per_second: 1000.0, burst: 100, max_wait: Default::default() });
    /// assert!(layer.is_ok());
    /// ```
    pub fn global(config: RateLimitConfig) -> Result<Self, ConfigError> {
        let quota = config.quota()?;
        Ok(RateLimitLayer {
            limiter: Arc::new(Global::new(quota)),
            cost: Arc::new(UnitCost),
            max_wait: config.max_wait,
            metrics: None,
        })
    }
}

impl<K, F> RateLimitLayer<PerKey<K, F>>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    F: Send + Sync + 'static,
{
    /// One quota per key, the key taken from each request by `key_of`.
    ///
    /// ```
    /// use resilience::{RateLimitLayer, rate_limit::RateLimitConfig};
    /// let per_player = RateLimitLayer::keyed(
    ///     RateLimitConfig { per_second: 5.0, burst: 5, max_wait: Default::default() },
    ///     |req: &(u64, String)| req.0,
    /// );
    /// assert!(per_player.is_ok());
    /// ```
    pub fn keyed<Req>(config: RateLimitConfig, key_of: F) -> Result<Self, ConfigError>
    where
        F: Fn(&Req) -> K,
    {
        let quota = config.quota()?;
        Ok(RateLimitLayer {
            limiter: Arc::new(PerKey::new(quota, key_of)),
            cost: Arc::new(UnitCost),
            max_wait: config.max_wait,
            metrics: None,
        })
    }
}

impl<K, F, W> RateLimitLayer<PerKey<K, F>, W>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    F: Send + Sync + 'static,
{
    /// Sets how often idle keys are dropped and how many keys trigger an early clean-up.
    ///
    /// ```
    /// # use resilience::{RateLimitLayer, rate_limit::RateLimitConfig};
    /// # use std::time::Duration;
    /// let layer = RateLimitLayer::keyed(
    ///     RateLimitConfig { per_second: 5.0, burst: 5, max_wait: Default::default() },
    ///     |player: &u64| *player,
    /// ).unwrap().housekeeping(Duration::from_secs(30), 10_000);
    /// assert_eq!(layer.tracked_keys(), 0);
    /// ```
    pub fn housekeeping(self, every: Duration, max_keys: usize) -> Self {
        // The limiter is shared by every clone of the layer and every service it made: they
        // all take the new settings.
        self.limiter.set_housekeeping(every, max_keys);
        self
    }

    /// Number of keys currently tracked.
    ///
    /// ```
    /// # use resilience::{RateLimitLayer, rate_limit::RateLimitConfig};
    /// # let layer = RateLimitLayer::keyed(RateLimitConfig { per_second: 5.0, burst: 5, max_wait: Default::default() }, |p: &u64| *p).unwrap();
    /// assert_eq!(layer.tracked_keys(), 0);
    /// ```
    pub fn tracked_keys(&self) -> usize {
        self.limiter.tracked_keys()
    }
}

impl<L, W> RateLimitLayer<L, W> {
    /// Charges each request `cost(req)` units instead of one.
    ///
    /// ```
    /// # use resilience::{RateLimitLayer, rate_limit::RateLimitConfig};
    /// let layer = RateLimitLayer::global(RateLimitConfig { per_second: 100.0, burst: 100, max_wait: Default::default() })
    ///     .unwrap()
    ///     .cost(|batch: &Vec<u64>| batch.len() as u32);
    /// # let _ = layer;
    /// ```
    pub fn cost<W2>(self, cost: W2) -> RateLimitLayer<L, W2> {
        RateLimitLayer {
            limiter: self.limiter,
            cost: Arc::new(cost),
            max_wait: self.max_wait,
            metrics: self.metrics,
        }
    }

    /// Counts rejected calls in `metrics`.
    ///
    /// ```
    /// # use resilience::{RateLimitLayer, rate_limit::RateLimitConfig, metrics::ResilienceMetrics};
    /// let layer = RateLimitLayer::global(RateLimitConfig { per_second: 1.0, burst: 1, max_wait: Default::default() })
    ///     .unwrap()
    ///     .metrics(ResilienceMetrics::default().policy("saves"));
    /// # let _ = layer;
    /// ```
    pub fn metrics(mut self, metrics: PolicyMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

impl<L: SetQuota + 'static, W> RateLimitLayer<L, W> {
    /// A handle to change the quota at runtime.
    ///
    /// ```
    /// # use resilience::{RateLimitLayer, rate_limit::RateLimitConfig};
    /// # let layer = RateLimitLayer::global(RateLimitConfig { per_second: 1.0, burst: 1, max_wait: Default::default() }).unwrap();
    /// let _handle = layer.handle();
    /// ```
    pub fn handle(&self) -> RateLimitHandle {
        RateLimitHandle {
            target: self.limiter.clone(),
        }
    }
}

impl<S, L, W> Layer<S> for RateLimitLayer<L, W> {
    type Service = RateLimit<S, L, W>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::optional(Some(self), inner)
    }
}

/// The service made by [`RateLimitLayer`].
pub struct RateLimit<S, L, W = UnitCost> {
    inner: S,
    /// `None`: switched off (a policy without a rate limit): calls pass straight through.
    layer: Option<RateLimitLayer<L, W>>,
}

impl<S, L, W> RateLimit<S, L, W> {
    /// `layer`'s limit around `inner`, or, without a layer, `inner` unchanged behind the
    /// same type (as the timeout's `optional` does, and for the same reason).
    pub(crate) fn optional(layer: Option<&RateLimitLayer<L, W>>, inner: S) -> Self {
        RateLimit {
            inner,
            layer: layer.cloned(),
        }
    }
}

impl<S: Clone, L, W> Clone for RateLimit<S, L, W> {
    fn clone(&self) -> Self {
        RateLimit {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: std::fmt::Debug, L, W> std::fmt::Debug for RateLimit<S, L, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, L, W, Req> Service<Req> for RateLimit<S, L, W>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send + 'static,
    S::Error: IntoResilienceError,
    <S::Error as IntoResilienceError>::Inner: Send + 'static,
    L: Limiter<Req>,
    W: Cost<Req>,
    Req: Send + 'static,
{
    type Response = S::Response;
    type Error = ResilienceError<<S::Error as IntoResilienceError>::Inner>;
    type Future = GateFuture<S::Future, (), S::Response, <S::Error as IntoResilienceError>::Inner>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(IntoResilienceError::into_resilience_error)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let Some(layer) = &self.layer else {
            return GateFuture::admitted(self.inner.call(req), ());
        };
        let cost = NonZeroU32::new(layer.cost.cost(&req)).unwrap_or(NonZeroU32::MIN);
        let wait = match layer.limiter.try_take(&req, cost) {
            Ok(()) => return GateFuture::admitted(self.inner.call(req), ()),
            Err(Denied::Wait(wait)) if wait <= layer.max_wait => wait,
            Err(denied) => {
                if let Some(m) = &layer.metrics {
                    m.record_rate_limited();
                }
                return GateFuture::rejected(match denied {
                    Denied::Wait(retry_after) => ResilienceError::RateLimited { retry_after },
                    Denied::Never => ResilienceError::OverCapacity { cost: cost.get() },
                });
            }
        };
        // Slow path: wait for quota, up to `max_wait` in all, then call.
        let clone = self.inner.clone();
        let svc = std::mem::replace(&mut self.inner, clone);
        let limiter = layer.limiter.clone();
        let metrics = layer.metrics.clone();
        let give_up_at = crate::clock::now() + layer.max_wait;
        GateFuture::deferred(Box::pin(async move {
            let mut wait = wait;
            loop {
                tokio::time::sleep(wait).await;
                match limiter.try_take(&req, cost) {
                    Ok(()) => break,
                    Err(Denied::Wait(next))
                        if crate::clock::now()
                            .checked_add(next)
                            .is_some_and(|at| at <= give_up_at) =>
                    {
                        wait = next
                    }
                    Err(denied) => {
                        if let Some(m) = &metrics {
                            m.record_rate_limited();
                        }
                        return Err(match denied {
                            Denied::Wait(retry_after) => {
                                ResilienceError::RateLimited { retry_after }
                            }
                            Denied::Never => ResilienceError::OverCapacity { cost: cost.get() },
                        });
                    }
                }
            }
            svc.oneshot(req)
                .await
                .map_err(IntoResilienceError::into_resilience_error)
        }))
    }
}
