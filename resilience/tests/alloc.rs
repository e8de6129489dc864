//! The happy path of the full policy (breaker closed, no retry, quota available, bulkhead
//! free, timeouts armed) allocates nothing per call, measured with a counting allocator.

use resilience::bulkhead::BulkheadConfig;
use resilience::circuit_breaker::{CircuitBreakerConfig, WindowConfig};
use resilience::rate_limit::RateLimitConfig;
use resilience::retry::{BudgetConfig, RetryConfig};
use resilience::timeout::TimeoutConfig;
use resilience::ResiliencePolicy;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tower::{Layer, Service, ServiceExt};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn full_policy_happy_path_allocates_nothing() {
    // tokio's clock paused: on a loaded machine a stall of the real clock past the
    // per-attempt timeout would send a call down the timeout and retry path (which may
    // allocate), and this test is about the happy path. The timers are still armed and
    // dropped on every call; they just cannot fire.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    // The counter itself works: a boxed value is one allocation.
    COUNTING.store(true, Ordering::SeqCst);
    let boxed = std::hint::black_box(Box::new(7u64));
    COUNTING.store(false, Ordering::SeqCst);
    assert!(ALLOCATIONS.load(Ordering::SeqCst) >= 1);
    drop(boxed);

    runtime.block_on(async {
        let metrics = resilience::metrics::ResilienceMetrics::default();
        for window in [
            WindowConfig::Count { size: 100 },
            WindowConfig::Time {
                length: Duration::from_secs(10),
                buckets: 10,
            },
        ] {
            let policy = ResiliencePolicy::builder("alloc")
                .metrics(&metrics)
                .circuit_breaker(CircuitBreakerConfig {
                    window,
                    slow_call_rate_threshold: Some(80.0),
                    slow_call_duration: Some(Duration::from_millis(500)),
                    ..CircuitBreakerConfig::default()
                })
                .retry(RetryConfig {
                    max_attempts: 3,
                    base_backoff: Duration::from_millis(10),
                    max_backoff: Duration::from_millis(100),
                    budget: Some(BudgetConfig::default()),
                })
                .timeout(TimeoutConfig {
                    per_attempt: Some(Duration::from_millis(200)),
                    overall: Some(Duration::from_millis(500)),
                })
                .rate_limit(RateLimitConfig {
                    per_second: 1e9,
                    burst: 1_000_000,
                    max_wait: Duration::ZERO,
                })
                .bulkhead(BulkheadConfig {
                    max_concurrent: 64,
                    max_queue: 16,
                    max_wait: None,
                })
                .build()
                .expect("policy");
            let mut svc = policy.layer(tower::service_fn(|player: u64| async move {
                Ok::<_, std::io::Error>(player + 1)
            }));
            // Warm up: thread-locals, timer wheel levels, governor and arc-swap slots.
            for i in 0..1_000 {
                svc.ready().await.unwrap().call(i).await.unwrap();
            }
            ALLOCATIONS.store(0, Ordering::SeqCst);
            COUNTING.store(true, Ordering::SeqCst);
            for i in 0..10_000u64 {
                let answer = svc.ready().await.unwrap().call(i).await.unwrap();
                assert_eq!(answer, i + 1);
            }
            COUNTING.store(false, Ordering::SeqCst);
            let allocations = ALLOCATIONS.load(Ordering::SeqCst);
            assert_eq!(
                allocations, 0,
                "{window:?}: {allocations} allocations in 10,000 calls"
            );
        }
    });
}
