//! Property tests: the breaker against a reference model, and the bounds the rate limiter,
//! the retry policy and the overall timeout promise. All on tokio's paused clock.

use proptest::prelude::*;
use resilience::circuit_breaker::{CircuitBreakerConfig, OpenBackoff, WindowConfig};
use resilience::rate_limit::RateLimitConfig;
use resilience::retry::{BudgetConfig, RetryConfig};
use resilience::timeout::TimeoutConfig;
use resilience::{
    CircuitBreakerLayer, CircuitState, RateLimitLayer, ResilienceError, ResiliencePolicy,
    RetryLayer,
};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower::{Layer, Service, ServiceExt};

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime")
}

// ---------------------------------------------------------------------------------------
// Circuit breaker vs a reference model
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Op {
    Success,
    Failure,
    /// A successful call that takes longer than the slow-call duration.
    Slow,
    /// Time passes between calls.
    Advance(u64),
    /// A call is started and dropped before it completes.
    Dropped,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Success),
        4 => Just(Op::Failure),
        2 => Just(Op::Slow),
        2 => (1u64..3000).prop_map(Op::Advance),
        1 => Just(Op::Dropped),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ModelState {
    Closed,
    Open { until_ms: u64 },
    HalfOpen,
}

/// A deliberately simple breaker: a `VecDeque` as the window, plain fields for the rest.
struct Model {
    size: usize,
    min_calls: usize,
    failure_threshold: f64,
    slow_threshold: f64,
    consecutive_limit: u32,
    permits: u32,
    open_ms: u64,
    state: ModelState,
    window: VecDeque<(bool, bool)>,
    consecutive: u32,
    left: u32,
    results: u32,
    probe_failures: u32,
    probe_slow: u32,
}

#[derive(Debug, PartialEq, Clone, Copy)]
enum Admit {
    Closed,
    Probe,
    Rejected,
}

impl Model {
    fn admit(&mut self, now_ms: u64) -> Admit {
        if let ModelState::Open { until_ms } = self.state {
            if now_ms < until_ms {
                return Admit::Rejected;
            }
            self.state = ModelState::HalfOpen;
            self.left = self.permits;
            self.results = 0;
            self.probe_failures = 0;
            self.probe_slow = 0;
        }
        match self.state {
            ModelState::Closed => Admit::Closed,
            ModelState::HalfOpen if self.left > 0 => {
                self.left -= 1;
                Admit::Probe
            }
            _ => Admit::Rejected,
        }
    }

    fn rate(part: usize, whole: usize) -> f64 {
        part as f64 * 100.0 / whole as f64
    }

    fn complete(&mut self, admit: Admit, failed: bool, slow: bool, now_ms: u64) {
        match admit {
            Admit::Closed => {
                self.window.push_back((failed, slow));
                if self.window.len() > self.size {
                    self.window.pop_front();
                }
                self.consecutive = if failed { self.consecutive + 1 } else { 0 };
                let calls = self.window.len();
                let failures = self.window.iter().filter(|c| c.0).count();
                let slows = self.window.iter().filter(|c| c.1).count();
                let trip = (failed && self.consecutive >= self.consecutive_limit)
                    || (calls >= self.min_calls
                        && (Self::rate(failures, calls) >= self.failure_threshold
                            || Self::rate(slows, calls) >= self.slow_threshold));
                if trip {
                    self.state = ModelState::Open {
                        until_ms: now_ms + self.open_ms,
                    };
                }
            }
            Admit::Probe => {
                self.results += 1;
                self.probe_failures += u32::from(failed);
                self.probe_slow += u32::from(slow);
                if self.results >= self.permits {
                    let n = self.results as usize;
                    let reopen = Self::rate(self.probe_failures as usize, n)
                        >= self.failure_threshold
                        || Self::rate(self.probe_slow as usize, n) >= self.slow_threshold;
                    if reopen {
                        self.state = ModelState::Open {
                            until_ms: now_ms + self.open_ms,
                        };
                    } else {
                        self.state = ModelState::Closed;
                        self.window.clear();
                        self.consecutive = 0;
                    }
                }
            }
            Admit::Rejected => {}
        }
    }

    fn observed(&self) -> CircuitState {
        match self.state {
            ModelState::Closed => CircuitState::Closed,
            ModelState::Open { .. } => CircuitState::Open,
            ModelState::HalfOpen => CircuitState::HalfOpen,
        }
    }
}

const SLOW_MS: u64 = 100;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn breaker_matches_reference_model(
        size in 1usize..12,
        min_calls_seed in 1usize..12,
        failure_threshold in prop_oneof![Just(25.0), Just(50.0), Just(100.0)],
        slow_threshold in prop_oneof![Just(50.0), Just(100.0)],
        consecutive_limit in 2u32..6,
        permits in 1u32..4,
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let min_calls = min_calls_seed.min(size);
        let config = CircuitBreakerConfig {
            window: WindowConfig::Count { size: size as u32 },
            failure_rate_threshold: failure_threshold,
            slow_call_rate_threshold: Some(slow_threshold),
            slow_call_duration: Some(Duration::from_millis(SLOW_MS)),
            minimum_calls: min_calls as u32,
            consecutive_failures: Some(consecutive_limit),
            half_open_permits: permits,
            open_backoff: OpenBackoff::Constant { duration: Duration::from_secs(1) },
        };
        let mut model = Model {
            size, min_calls, failure_threshold, slow_threshold, consecutive_limit, permits,
            open_ms: 1000, state: ModelState::Closed, window: VecDeque::new(), consecutive: 0,
            left: 0, results: 0, probe_failures: 0, probe_slow: 0,
        };
        paused_runtime().block_on(async move {
            let layer = CircuitBreakerLayer::new("model", config).unwrap();
            let handle = layer.handle();
            let svc = layer.layer(tower::service_fn(|op: Op| async move {
                match op {
                    Op::Failure => Err(std::io::Error::other("fail")),
                    Op::Slow => {
                        tokio::time::sleep(Duration::from_millis(SLOW_MS)).await;
                        Ok(())
                    }
                    _ => Ok(()),
                }
            }));
            let start = tokio::time::Instant::now();
            let now_ms = || start.elapsed().as_millis() as u64;
            for (step, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Advance(ms) => tokio::time::advance(Duration::from_millis(ms)).await,
                    Op::Dropped => {
                        let expected = model.admit(now_ms());
                        let mut s = svc.clone();
                        let fut = s.ready().await.unwrap().call(Op::Success);
                        drop(fut);
                        if expected == Admit::Probe {
                            model.left += 1; // the permit comes back
                        }
                    }
                    Op::Success | Op::Failure | Op::Slow => {
                        let expected = model.admit(now_ms());
                        let result = svc.clone().oneshot(op).await;
                        let rejected = matches!(result, Err(ResilienceError::CircuitOpen { .. }));
                        prop_assert_eq!(rejected, expected == Admit::Rejected, "step {}: {:?}", step, op);
                        model.complete(expected, matches!(op, Op::Failure), matches!(op, Op::Slow), now_ms());
                    }
                }
                prop_assert_eq!(handle.state(), model.observed(), "step {}: {:?}", step, op);
            }
            Ok(())
        })?;
    }
}

// ---------------------------------------------------------------------------------------
// Rate limiter: never more than burst + rate x elapsed
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn rate_limiter_never_admits_more_than_burst_plus_rate(
        per_second in 1u32..200,
        burst in 1u32..50,
        steps in proptest::collection::vec((0u64..200, 0u32..20), 1..60),
    ) {
        paused_runtime().block_on(async move {
            let layer = RateLimitLayer::global(RateLimitConfig {
                per_second: f64::from(per_second),
                burst,
                max_wait: Duration::ZERO,
            }).unwrap();
            let svc = layer.layer(tower::service_fn(|_: ()| async { Ok::<_, std::io::Error>(()) }));
            let start = tokio::time::Instant::now();
            let mut admitted = 0u64;
            for (advance_ms, calls) in steps {
                tokio::time::advance(Duration::from_millis(advance_ms)).await;
                for _ in 0..calls {
                    match svc.clone().oneshot(()).await {
                        Ok(()) => admitted += 1,
                        Err(ResilienceError::RateLimited { retry_after }) => {
                            prop_assert!(retry_after > Duration::ZERO);
                        }
                        Err(other) => prop_assert!(false, "unexpected {:?}", other),
                    }
                }
                let elapsed = start.elapsed().as_secs_f64();
                let bound = f64::from(burst) + f64::from(per_second) * elapsed;
                prop_assert!(admitted as f64 <= bound + 1e-9, "admitted {} > bound {}", admitted, bound);
            }
            Ok(())
        })?;
    }
}

// ---------------------------------------------------------------------------------------
// Retry: attempts never exceed the maximum or the budget
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn retries_stay_within_max_attempts_and_budget(
        max_attempts in 1u32..6,
        ratio in prop_oneof![Just(0.0), Just(0.1), Just(0.5)],
        min_per_second in 0u32..3,
        requests in 1usize..80,
        fail_every in 1u32..4,
    ) {
        paused_runtime().block_on(async move {
            let attempts = Arc::new(AtomicU32::new(0));
            let counter = attempts.clone();
            // Fails whenever the attempt number is not a multiple of `fail_every`... or
            // always, when fail_every == 1.
            let svc = tower::service_fn(move |_: u64| {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    if fail_every == 1 || n % fail_every != 0 {
                        Err(std::io::Error::other("flaky"))
                    } else {
                        Ok(())
                    }
                }
            });
            let window = Duration::from_secs(10);
            let layer = RetryLayer::new(RetryConfig {
                max_attempts,
                base_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(5),
                budget: Some(BudgetConfig { ratio, min_per_second, window }),
            }).unwrap();
            let svc = layer.layer(svc);
            for i in 0..requests {
                let before = attempts.load(Ordering::SeqCst);
                let _ = svc.clone().oneshot(i as u64).await;
                let used = attempts.load(Ordering::SeqCst) - before;
                prop_assert!(used >= 1 && used <= max_attempts, "request {} used {} attempts", i, used);
            }
            // Everything ran well inside one budget window (backoffs are a few ms).
            let retries = f64::from(attempts.load(Ordering::SeqCst)) - requests as f64;
            let budget = f64::from(min_per_second) * window.as_secs_f64() + ratio * requests as f64;
            prop_assert!(retries <= budget + 1e-9, "{} retries > budget {}", retries, budget);
            Ok(())
        })?;
    }
}

// ---------------------------------------------------------------------------------------
// Overall timeout: always fires within the deadline
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn overall_timeout_fires_within_the_deadline(
        overall_ms in 10u64..2000,
        attempt_ms in 1u64..2000,
        latencies in proptest::collection::vec(0u64..3000, 1..6),
        max_attempts in 1u32..5,
    ) {
        let attempt_ms = attempt_ms.min(overall_ms);
        paused_runtime().block_on(async move {
            let latencies = Arc::new(latencies);
            let attempt = Arc::new(AtomicU32::new(0));
            let svc = {
                let latencies = latencies.clone();
                let attempt = attempt.clone();
                tower::service_fn(move |_: http::Request<()>| {
                    let n = attempt.fetch_add(1, Ordering::SeqCst) as usize;
                    let delay = latencies[n % latencies.len()];
                    async move {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                        // Odd latencies fail, so retries happen.
                        if delay % 2 == 1 { Err(std::io::Error::other("fail")) } else { Ok(()) }
                    }
                })
            };
            let policy = ResiliencePolicy::builder("deadline")
                .timeout(TimeoutConfig {
                    per_attempt: Some(Duration::from_millis(attempt_ms)),
                    overall: Some(Duration::from_millis(overall_ms)),
                })
                .retry(RetryConfig {
                    max_attempts,
                    base_backoff: Duration::from_millis(10),
                    max_backoff: Duration::from_millis(100),
                    budget: None,
                })
                .build()
                .unwrap();
            let svc = policy.layer(svc);
            let start = tokio::time::Instant::now();
            let _ = svc.oneshot(http::Request::new(())).await;
            let elapsed = start.elapsed();
            prop_assert!(elapsed <= Duration::from_millis(overall_ms), "took {:?} > {} ms", elapsed, overall_ms);
            Ok(())
        })?;
    }
}
