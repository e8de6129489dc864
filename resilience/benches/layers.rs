//! Per-call overhead of each layer against its peers, and of the whole policy stack.
//!
//! Run with `cargo bench -p resilience --bench layers`, then `scripts/bench-report` turns
//! `target/criterion` into Markdown tables and checks the performance targets.
//!
//! Benchmark ids (read by `scripts/bench-report`, keep them stable):
//!
//! * `uncontended/<layer>/<impl>`: one call per iteration on a current-thread runtime, on a
//!   service built once and reused.
//! * `threads2/<layer>/<impl>`: the same service cloned into two tasks on a two-worker
//!   runtime, both calling at once (shared `Arc` state is contended); the figure is wall
//!   time divided by the calls made by both threads together.
//! * `window_fill/<impl>/<n>`: the time-window breaker's per-call cost when the window
//!   already holds `n` calls.
//!
//! Every service answers immediately (`Ok(x)`), so the figures are the layers' own cost.

use std::fmt::Debug;
use std::hint::black_box;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion};
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

use resilience::bulkhead::BulkheadConfig;
use resilience::circuit_breaker::{CircuitBreakerConfig, WindowConfig};
use resilience::rate_limit::RateLimitConfig;
use resilience::retry::RetryConfig;
use resilience::timeout::TimeoutConfig;
use resilience::{
    BulkheadLayer, CircuitBreakerLayer, RateLimitLayer, ResiliencePolicy, RetryLayer, TimeoutLayer,
};

use tower_resilience::bulkhead::BulkheadServiceError;
use tower_resilience::circuitbreaker::{CircuitBreakerLayer as TrCb, SlidingWindowType};
use tower_resilience::ratelimiter::RateLimiterServiceError;
use tower_resilience::timelimiter::TimeLimiterError;

type IoError = std::io::Error;

// ---------------------------------------------------------------------------------------
// Inner service and drivers
// ---------------------------------------------------------------------------------------

/// The wrapped service: answers at once.
fn inner(
) -> impl Service<u64, Response = u64, Error = IoError, Future: Send> + Clone + Send + 'static {
    tower::service_fn(|x: u64| async move { Ok::<u64, IoError>(x) })
}

/// Makes `n` calls one after the other and returns the time they took.
async fn drive<S>(svc: &mut S, start_at: u64, n: u64) -> Duration
where
    S: Service<u64, Response = u64>,
    S::Error: Debug,
{
    let start = Instant::now();
    for i in start_at..start_at + n {
        let out = svc.ready().await.unwrap().call(black_box(i)).await.unwrap();
        black_box(out);
    }
    start.elapsed()
}

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn two_workers() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `uncontended/<layer>/<imp>`: one call per iteration on `rt` (current-thread).
fn uncontended<S>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    layer: &str,
    imp: &str,
    mut svc: S,
) where
    S: Service<u64, Response = u64>,
    S::Error: Debug,
{
    let mut next = 0u64;
    g.bench_function(BenchmarkId::new(layer, imp), |b| {
        b.iter_custom(|iters| {
            let took = rt.block_on(drive(&mut svc, next, iters));
            next = next.wrapping_add(iters);
            took
        })
    });
}

/// `threads2/<layer>/<imp>`: two tasks on a two-worker runtime, each calling its own clone
/// of `svc` `iters / 2` times; returns the wall time for all `iters` calls.
fn threads2<S>(g: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, layer: &str, imp: &str, svc: S)
where
    S: Service<u64, Response = u64> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Debug + Send,
{
    g.bench_function(BenchmarkId::new(layer, imp), |b| {
        b.iter_custom(|iters| {
            let (half_a, half_b) = (iters / 2, iters - iters / 2);
            let (mut a, mut c) = (svc.clone(), svc.clone());
            rt.block_on(async move {
                let start = Instant::now();
                let ta = tokio::spawn(async move { drive(&mut a, 0, half_a).await });
                let tb = tokio::spawn(async move { drive(&mut c, 1 << 40, half_b).await });
                ta.await.unwrap();
                tb.await.unwrap();
                start.elapsed()
            })
        })
    });
}

// ---------------------------------------------------------------------------------------
// failsafe as a tower service (no boxing: its future wraps the inner future directly)
// ---------------------------------------------------------------------------------------

struct Failsafe<S, P> {
    cb: failsafe::StateMachine<P, ()>,
    inner: S,
}

impl<S: Clone, P> Clone for Failsafe<S, P> {
    fn clone(&self) -> Self {
        Failsafe {
            cb: self.cb.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<S, P> Service<u64> for Failsafe<S, P>
where
    S: Service<u64>,
    P: failsafe::FailurePolicy + Send + Sync,
{
    type Response = S::Response;
    type Error = failsafe::Error<S::Error>;
    type Future = failsafe::futures::ResponseFuture<S::Future, P, (), failsafe::Any>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(failsafe::Error::Inner)
    }

    fn call(&mut self, req: u64) -> Self::Future {
        use failsafe::futures::CircuitBreaker as _;
        self.cb.call(self.inner.call(req))
    }
}

fn failsafe_consecutive<S>(inner: S) -> Failsafe<S, impl failsafe::FailurePolicy + Send + Sync> {
    use failsafe::{backoff, failure_policy, Config};
    let cb = Config::new()
        .failure_policy(failure_policy::consecutive_failures(
            3,
            backoff::exponential(Duration::from_secs(10), Duration::from_secs(60)),
        ))
        .build();
    Failsafe { cb, inner }
}

fn failsafe_time_window<S>(inner: S) -> Failsafe<S, impl failsafe::FailurePolicy + Send + Sync> {
    use failsafe::{backoff, failure_policy, Config};
    let cb = Config::new()
        .failure_policy(failure_policy::success_rate_over_time_window(
            0.5,
            100,
            Duration::from_secs(10),
            backoff::exponential(Duration::from_secs(10), Duration::from_secs(60)),
        ))
        .build();
    Failsafe { cb, inner }
}

// ---------------------------------------------------------------------------------------
// tower's own retry needs a policy: retries errors up to 3 attempts, never an Ok
// ---------------------------------------------------------------------------------------

#[derive(Clone)]
struct Attempts(u32);

impl<Res, E> tower::retry::Policy<u64, Res, E> for Attempts {
    type Future = std::future::Ready<()>;

    fn retry(&mut self, _req: &mut u64, result: &mut Result<Res, E>) -> Option<Self::Future> {
        match result {
            Ok(_) => None,
            Err(_) if self.0 + 1 >= 3 => None,
            Err(_) => {
                self.0 += 1;
                Some(std::future::ready(()))
            }
        }
    }

    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

// ---------------------------------------------------------------------------------------
// Our layers and the peers' layers, configured alike
// ---------------------------------------------------------------------------------------

fn our_count_cb() -> CircuitBreakerConfig {
    CircuitBreakerConfig {
        window: WindowConfig::Count { size: 100 },
        failure_rate_threshold: 50.0,
        ..Default::default()
    }
}

fn our_time_cb() -> CircuitBreakerConfig {
    CircuitBreakerConfig {
        window: WindowConfig::Time {
            length: Duration::from_secs(10),
            buckets: 10,
        },
        failure_rate_threshold: 50.0,
        ..Default::default()
    }
}

fn our_retry() -> RetryConfig {
    RetryConfig {
        max_attempts: 3,
        base_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        budget: None,
    }
}

fn our_rate() -> RateLimitConfig {
    RateLimitConfig {
        per_second: 1e9,
        burst: 1_000_000_000,
        max_wait: Duration::ZERO,
    }
}

fn our_bulkhead() -> BulkheadConfig {
    BulkheadConfig {
        max_concurrent: 64,
        max_queue: 0,
        max_wait: None,
    }
}

fn our_policy() -> ResiliencePolicy {
    ResiliencePolicy::builder("bench")
        .circuit_breaker(our_count_cb())
        .retry(our_retry())
        .timeout(TimeoutConfig {
            per_attempt: Some(Duration::from_secs(1)),
            overall: None,
        })
        .rate_limit(our_rate())
        .bulkhead(our_bulkhead())
        .build()
        .unwrap()
}

fn tr_count_cb() -> TrCb {
    TrCb::builder()
        .sliding_window_type(SlidingWindowType::CountBased)
        .sliding_window_size(100)
        .failure_rate_threshold(0.5)
        .build()
        .unwrap()
}

fn tr_time_cb() -> TrCb {
    TrCb::builder()
        .sliding_window_type(SlidingWindowType::TimeBased)
        .sliding_window_duration(Duration::from_secs(10))
        .failure_rate_threshold(0.5)
        .build()
        .unwrap()
}

fn tr_timelimiter() -> tower_resilience::timelimiter::TimeLimiterLayer {
    tower_resilience::timelimiter::TimeLimiterLayer::builder()
        .timeout_duration(Duration::from_secs(1))
        .build()
}

fn tr_ratelimiter() -> tower_resilience::ratelimiter::RateLimiterLayer {
    tower_resilience::ratelimiter::RateLimiterLayer::builder()
        .limit_for_period(1_000_000_000)
        .refresh_period(Duration::from_secs(1))
        .build()
        .unwrap()
}

fn tr_bulkhead() -> tower_resilience::bulkhead::BulkheadLayer {
    tower_resilience::bulkhead::BulkheadLayer::builder()
        .max_concurrent_calls(64)
        .build()
        .unwrap()
}

/// The error the tower-resilience retry sees in the five-layer stack.
type TrBelow = TimeLimiterError<RateLimiterServiceError<BulkheadServiceError<IoError>>>;

/// tower-resilience's five layers, outermost first, in the same order as our policy's
/// breaker → retry → timeout → rate limit → bulkhead (no error conversions in between).
fn tr_stack(
) -> impl Service<u64, Response = u64, Error: Debug + Send, Future: Send> + Clone + Send + 'static {
    ServiceBuilder::new()
        .layer(tr_count_cb())
        .layer(
            tower_resilience::retry::RetryLayer::<u64, u64, TrBelow>::builder()
                .max_attempts(3)
                .exponential_backoff(Duration::from_millis(100))
                .build(),
        )
        .layer(tr_timelimiter())
        .layer(tr_ratelimiter())
        .layer(tr_bulkhead())
        .service(inner())
}

// ---------------------------------------------------------------------------------------
// Groups
// ---------------------------------------------------------------------------------------

fn bench_uncontended(c: &mut Criterion) {
    let rt = current_thread();
    // Some layers (tower's RateLimit) arm a timer when built: build inside the runtime.
    let _enter = rt.enter();
    let mut g = c.benchmark_group("uncontended");

    // Circuit breaker, count window of 100 (failsafe: 3 consecutive failures).
    uncontended(&mut g, &rt, "breaker", "bare", inner());
    uncontended(
        &mut g,
        &rt,
        "breaker",
        "ours",
        CircuitBreakerLayer::new("bench", our_count_cb())
            .unwrap()
            .layer(inner()),
    );
    uncontended(
        &mut g,
        &rt,
        "breaker",
        "failsafe",
        failsafe_consecutive(inner()),
    );
    uncontended(
        &mut g,
        &rt,
        "breaker",
        "tower-resilience",
        tr_count_cb().layer(inner()),
    );

    // Circuit breaker, time window of 10 s.
    uncontended(
        &mut g,
        &rt,
        "breaker_time",
        "ours",
        CircuitBreakerLayer::new("bench", our_time_cb())
            .unwrap()
            .layer(inner()),
    );
    uncontended(
        &mut g,
        &rt,
        "breaker_time",
        "failsafe",
        failsafe_time_window(inner()),
    );
    uncontended(
        &mut g,
        &rt,
        "breaker_time",
        "tower-resilience",
        tr_time_cb().layer(inner()),
    );

    // Retry, 3 attempts (never used: every call succeeds).
    uncontended(
        &mut g,
        &rt,
        "retry",
        "ours",
        RetryLayer::new(our_retry()).unwrap().layer(inner()),
    );
    uncontended(
        &mut g,
        &rt,
        "retry",
        "tower",
        tower::retry::RetryLayer::new(Attempts(0)).layer(inner()),
    );
    uncontended(
        &mut g,
        &rt,
        "retry",
        "tower-resilience",
        tower_resilience::retry::RetryLayer::<u64, u64, IoError>::builder()
            .max_attempts(3)
            .exponential_backoff(Duration::from_millis(100))
            .build()
            .layer(inner()),
    );

    // Timeout of 1 s per attempt (never reached).
    uncontended(
        &mut g,
        &rt,
        "timeout",
        "ours",
        TimeoutLayer::per_attempt(Duration::from_secs(1)).layer(inner()),
    );
    uncontended(
        &mut g,
        &rt,
        "timeout",
        "tower",
        tower::timeout::TimeoutLayer::new(Duration::from_secs(1)).layer(inner()),
    );
    uncontended(
        &mut g,
        &rt,
        "timeout",
        "tower-resilience",
        tr_timelimiter().layer(inner()),
    );

    // Rate limit of 1e9 per second (never reached).
    uncontended(
        &mut g,
        &rt,
        "rate_limit",
        "ours",
        RateLimitLayer::global(our_rate()).unwrap().layer(inner()),
    );
    uncontended(
        &mut g,
        &rt,
        "rate_limit",
        "tower",
        tower::limit::RateLimitLayer::new(1_000_000_000, Duration::from_secs(1)).layer(inner()),
    );
    uncontended(
        &mut g,
        &rt,
        "rate_limit",
        "tower-resilience",
        tr_ratelimiter().layer(inner()),
    );

    // Bulkhead of 64 concurrent calls (never full).
    uncontended(
        &mut g,
        &rt,
        "bulkhead",
        "ours",
        BulkheadLayer::new(our_bulkhead()).unwrap().layer(inner()),
    );
    uncontended(
        &mut g,
        &rt,
        "bulkhead",
        "tower",
        tower::limit::ConcurrencyLimitLayer::new(64).layer(inner()),
    );
    uncontended(
        &mut g,
        &rt,
        "bulkhead",
        "tower-resilience",
        tr_bulkhead().layer(inner()),
    );

    // All five together.
    uncontended(&mut g, &rt, "stack", "ours", our_policy().layer(inner()));
    uncontended(&mut g, &rt, "stack", "tower-resilience", tr_stack());

    g.finish();
}

fn bench_threads2(c: &mut Criterion) {
    let rt = two_workers();
    let _enter = rt.enter();
    let mut g = c.benchmark_group("threads2");

    threads2(&mut g, &rt, "breaker", "bare", inner());
    threads2(
        &mut g,
        &rt,
        "breaker",
        "ours",
        CircuitBreakerLayer::new("bench", our_count_cb())
            .unwrap()
            .layer(inner()),
    );
    threads2(
        &mut g,
        &rt,
        "breaker",
        "failsafe",
        failsafe_consecutive(inner()),
    );
    threads2(
        &mut g,
        &rt,
        "breaker",
        "tower-resilience",
        tr_count_cb().layer(inner()),
    );

    threads2(&mut g, &rt, "stack", "ours", our_policy().layer(inner()));
    threads2(&mut g, &rt, "stack", "tower-resilience", tr_stack());

    g.finish();
}

/// `window_fill/<imp>/<n>`: the time-window breaker's per-call cost once its 10 s window
/// already holds `n` calls.
///
/// Calls held in a time window = call rate × window length, so `n` stands for the call
/// rate: 1 000 / 10 000 / 100 000 calls in 10 s are 100 / 1 000 / 10 000 calls per second.
/// Our window is a ring of 10 fixed buckets of counters: a call adds to the current bucket
/// and reads the sums, so its cost is the same whatever `n` is (a flat line here means the
/// breaker's cost does not grow with traffic). tower-resilience keeps one record per call
/// in a queue and recounts the whole queue on every call, so its cost grows with `n`.
///
/// Each routine run builds a fresh breaker, makes `n` calls untimed, then times at most
/// `n / 2` calls before building and filling a fresh one again, so while being timed the
/// window always holds between `n` and `1.5 n` calls, all made within the last few seconds.
fn window_fill<S, F>(g: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, imp: &str, n: u64, make: F)
where
    F: Fn() -> S,
    S: Service<u64, Response = u64>,
    S::Error: Debug,
{
    let refill_every = (n / 2).max(1);
    let mut current: Option<(S, u64)> = None;
    g.bench_function(BenchmarkId::new(imp, n), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut timed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    if current
                        .as_ref()
                        .is_none_or(|(_, since)| *since >= refill_every)
                    {
                        current = None; // drop the old breaker before filling a new one
                        let mut svc = make();
                        drive(&mut svc, 0, n).await; // untimed
                        current = Some((svc, 0));
                    }
                    let (svc, since) = current.as_mut().unwrap();
                    let chunk = left.min(refill_every - *since);
                    timed += drive(svc, n + *since, chunk).await;
                    *since += chunk;
                    left -= chunk;
                }
                timed
            })
        })
    });
}

fn bench_window_fill(c: &mut Criterion) {
    let rt = current_thread();
    let _enter = rt.enter();
    let mut g = c.benchmark_group("window_fill");
    for n in [1_000u64, 10_000, 100_000] {
        window_fill(&mut g, &rt, "ours", n, || {
            CircuitBreakerLayer::new("bench", our_time_cb())
                .unwrap()
                .layer(inner())
        });
        window_fill(&mut g, &rt, "tower-resilience", n, || {
            tr_time_cb().layer(inner())
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_uncontended, bench_threads2, bench_window_fill
}
criterion_main!(benches);
