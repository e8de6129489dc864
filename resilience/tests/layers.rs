//! Retry, timeout, bulkhead, rate limit, fallback and metrics, alone and stacked.

use prometheus_client::registry::Registry;
use resilience::bulkhead::BulkheadConfig;
use resilience::circuit_breaker::CircuitBreakerConfig;
use resilience::fallback::ErrorKinds;
use resilience::metrics::ResilienceMetrics;
use resilience::rate_limit::RateLimitConfig;
use resilience::retry::RetryConfig;
use resilience::timeout::TimeoutConfig;
use resilience::{
    BulkheadLayer, CarriesDeadline, CircuitBreakerLayer, ErrorKind, FallbackLayer, FallbackRequest,
    RateLimitLayer, ResilienceError, ResiliencePolicy, RetryLayer, TimeoutLayer, TimeoutScope,
};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tower::retry::Policy;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

fn retry_config(max_attempts: u32) -> RetryConfig {
    RetryConfig {
        max_attempts,
        base_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(10),
        budget: None,
    }
}

fn counting_failures(
    count: Arc<AtomicU32>,
) -> impl Service<u32, Response = u32, Error = std::io::Error, Future: Send> + Clone {
    tower::service_fn(move |n: u32| {
        count.fetch_add(1, Ordering::SeqCst);
        async move { Err::<u32, _>(std::io::Error::other(format!("fail {n}"))) }
    })
}

#[tokio::test(start_paused = true)]
async fn retry_stops_at_max_attempts() {
    let count = Arc::new(AtomicU32::new(0));
    let svc = RetryLayer::new(retry_config(4))
        .unwrap()
        .layer(counting_failures(count.clone()));
    let err = svc.oneshot(1).await.unwrap_err();
    assert!(matches!(err, ResilienceError::Inner(_)));
    assert_eq!(count.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn open_circuit_and_rate_limit_are_never_retried() {
    let count = Arc::new(AtomicU32::new(0));
    let breaker = CircuitBreakerLayer::new("cb", CircuitBreakerConfig::default()).unwrap();
    breaker.handle().force_open();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(retry_config(5)).unwrap())
        .layer(breaker)
        .service(counting_failures(count.clone()));
    let start = Instant::now();
    let err = svc.oneshot(1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CircuitOpen);
    assert_eq!(start.elapsed(), Duration::ZERO, "no backoff was slept");

    let limiter = RateLimitLayer::global(RateLimitConfig {
        per_second: 1.0,
        burst: 1,
        max_wait: Duration::ZERO,
    })
    .unwrap();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(retry_config(5)).unwrap())
        .layer(limiter)
        .service(counting_failures(count.clone()));
    // Takes the only token and fails; its retry meets the rate limit and stops there.
    let err = svc.clone().oneshot(1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "the retry met the rate limit"
    );
    let start = Instant::now();
    let err = svc.oneshot(2).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn no_retry_when_the_deadline_is_nearer_than_the_backoff() {
    let layer = RetryLayer::new(retry_config(5)).unwrap();
    let mut policy = layer.policy().clone();
    let mut req = http::Request::new(());
    req.set_deadline(resilience::Deadline(
        Instant::now() + Duration::from_micros(1),
    ));
    let mut result: Result<(), ResilienceError<std::io::Error>> =
        Err(ResilienceError::Inner(std::io::Error::other("x")));
    assert!(policy.retry(&mut req, &mut result).is_none());
    // Same failure with plenty of time left is retried.
    let mut req = http::Request::new(());
    req.set_deadline(resilience::Deadline(
        Instant::now() + Duration::from_secs(60),
    ));
    assert!(policy.retry(&mut req, &mut result).is_some());
}

#[tokio::test(start_paused = true)]
async fn overall_deadline_reaches_the_inner_service_and_caps_attempts() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let inner = tower::service_fn(move |req: http::Request<()>| {
        log.lock()
            .unwrap()
            .push(req.deadline().map(|d| d.remaining()));
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok::<_, std::io::Error>(())
        }
    });
    let policy = ResiliencePolicy::builder("deadline")
        .timeout(TimeoutConfig {
            per_attempt: Some(Duration::from_millis(200)),
            overall: Some(Duration::from_millis(500)),
        })
        .retry(RetryConfig {
            max_attempts: 5,
            base_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
            budget: None,
        })
        .build()
        .unwrap();
    let start = Instant::now();
    let err = policy
        .layer(inner)
        .oneshot(http::Request::new(()))
        .await
        .unwrap_err();
    let elapsed = start.elapsed();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0], Some(Duration::from_millis(500)));
    assert!(
        seen.iter()
            .all(|d| d.is_some_and(|d| d <= Duration::from_millis(500))),
        "{seen:?}"
    );
    // Attempts of 200 ms each: the third is cut short by the overall deadline.
    assert_eq!(seen.len(), 3);
    assert!(matches!(
        err,
        ResilienceError::Timeout {
            scope: TimeoutScope::Overall,
            ..
        }
    ));
    assert_eq!(elapsed, Duration::from_millis(500));
}

#[tokio::test(start_paused = true)]
async fn bulkhead_queues_then_sheds_at_once() {
    let layer = BulkheadLayer::new(BulkheadConfig {
        max_concurrent: 1,
        max_queue: 1,
        max_wait: Some(Duration::from_secs(2)),
    })
    .unwrap();
    let svc = layer.layer(tower::service_fn(|ms: u64| async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok::<_, std::io::Error>(ms)
    }));
    let running = tokio::spawn(svc.clone().oneshot(1000));
    tokio::task::yield_now().await;
    let queued = tokio::spawn(svc.clone().oneshot(10));
    tokio::task::yield_now().await;
    let start = Instant::now();
    let shed = svc.clone().oneshot(10).await.unwrap_err();
    assert_eq!(shed.kind(), ErrorKind::BulkheadFull);
    assert_eq!(start.elapsed(), Duration::ZERO, "shed at once");
    assert_eq!(running.await.unwrap().unwrap(), 1000);
    assert_eq!(queued.await.unwrap().unwrap(), 10);
    assert_eq!(layer.available(), 1);

    // A waiter that outlives max_wait is shed too.
    let long = tokio::spawn(svc.clone().oneshot(5000));
    tokio::task::yield_now().await;
    let start = Instant::now();
    let err = svc.clone().oneshot(1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BulkheadFull);
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    long.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn rate_limit_waits_up_to_its_bound_and_reports_retry_after() {
    let layer = RateLimitLayer::global(RateLimitConfig {
        per_second: 10.0,
        burst: 1,
        max_wait: Duration::from_millis(150),
    })
    .unwrap();
    let svc = layer.layer(tower::service_fn(|_: ()| async {
        Ok::<_, std::io::Error>(Instant::now())
    }));
    let start = Instant::now();
    svc.clone().oneshot(()).await.unwrap();
    let second = svc.clone().oneshot(()).await.unwrap();
    assert_eq!(
        second - start,
        Duration::from_millis(100),
        "waited for quota"
    );

    let strict = RateLimitLayer::global(RateLimitConfig {
        per_second: 2.0,
        burst: 1,
        max_wait: Duration::ZERO,
    })
    .unwrap();
    let svc = strict.layer(tower::service_fn(|_: ()| async {
        Ok::<_, std::io::Error>(())
    }));
    svc.clone().oneshot(()).await.unwrap();
    let err = svc.clone().oneshot(()).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_millis(500)));
}

#[tokio::test(start_paused = true)]
async fn weighted_keyed_limits_and_runtime_quota_change() {
    let layer = RateLimitLayer::keyed(
        RateLimitConfig {
            per_second: 1.0,
            burst: 10,
            max_wait: Duration::ZERO,
        },
        |req: &(u64, u32)| req.0,
    )
    .unwrap()
    .cost(|req: &(u64, u32)| req.1)
    .housekeeping(Duration::from_secs(1), 1_000);
    let handle = layer.handle();
    let svc = layer.layer(tower::service_fn(|req: (u64, u32)| async move {
        Ok::<_, std::io::Error>(req)
    }));
    svc.clone().oneshot((1, 8)).await.unwrap();
    let err = svc.clone().oneshot((1, 8)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited, "player 1 spent 8 of 10");
    svc.clone().oneshot((2, 8)).await.unwrap();
    let never = svc.clone().oneshot((3, 11)).await.unwrap_err();
    assert!(
        matches!(never, ResilienceError::OverCapacity { cost: 11 }),
        "cost above the burst: {never:?}"
    );
    assert_eq!(
        never.retry_after(),
        None,
        "never admitted: no time to come back"
    );

    handle
        .set(RateLimitConfig {
            per_second: 100.0,
            burst: 100,
            max_wait: Duration::ZERO,
        })
        .unwrap();
    svc.clone().oneshot((1, 50)).await.unwrap();
    assert!(layer_keys_drop_when_idle(svc).await);
}

async fn layer_keys_drop_when_idle<S>(svc: S) -> bool
where
    S: Service<(u64, u32), Response = (u64, u32)> + Clone,
    S::Error: std::fmt::Debug,
{
    // 500 players call once; once their quota has refilled, housekeeping forgets them.
    let layer = RateLimitLayer::keyed(
        RateLimitConfig {
            per_second: 10.0,
            burst: 1,
            max_wait: Duration::ZERO,
        },
        |req: &u64| *req,
    )
    .unwrap()
    .housekeeping(Duration::from_secs(1), 1_000);
    let players = layer.clone().layer(tower::service_fn(|p: u64| async move {
        Ok::<_, std::io::Error>(p)
    }));
    for p in 0..500 {
        players.clone().oneshot(p).await.unwrap();
    }
    let before = layer.tracked_keys();
    tokio::time::advance(Duration::from_secs(2)).await;
    players.clone().oneshot(9_999).await.unwrap();
    let after = layer.tracked_keys();
    drop(svc);
    before == 500 && after <= 1
}

#[tokio::test(start_paused = true)]
async fn fallback_answers_chosen_errors_only() {
    let cache = tower::service_fn(|f: FallbackRequest<u64, std::io::Error>| async move {
        Ok::<_, ResilienceError<std::io::Error>>(format!(
            "cached {} after {:?}",
            f.request,
            f.error.kind()
        ))
    });
    let breaker = CircuitBreakerLayer::new("reads", CircuitBreakerConfig::default()).unwrap();
    let handle = breaker.handle();
    let failing = tower::service_fn(|id: u64| async move {
        if id == 0 {
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "down",
            ))
        } else {
            Err(std::io::Error::other("bad row"))
        }
    });
    let svc = ServiceBuilder::new()
        .layer(
            FallbackLayer::new(cache)
                .on_kinds(ErrorKinds::NONE.with(ErrorKind::CircuitOpen))
                .on_inner(|e: &std::io::Error| e.kind() == std::io::ErrorKind::ConnectionRefused),
        )
        .layer(breaker)
        .service(failing);
    assert_eq!(
        svc.clone().oneshot(0).await.unwrap(),
        "cached 0 after Inner"
    );
    let passed = svc.clone().oneshot(1).await.unwrap_err();
    assert_eq!(
        passed.kind(),
        ErrorKind::Inner,
        "not chosen: passed through"
    );
    handle.force_open();
    assert_eq!(
        svc.clone().oneshot(7).await.unwrap(),
        "cached 7 after CircuitOpen"
    );
}

#[tokio::test(start_paused = true)]
async fn policy_metrics_count_outcomes_and_transitions() {
    let mut registry = Registry::default();
    let metrics = ResilienceMetrics::register(&mut registry);
    let policy = ResiliencePolicy::builder("saves")
        .metrics(&metrics)
        .circuit_breaker(CircuitBreakerConfig {
            minimum_calls: 2,
            ..CircuitBreakerConfig::default()
        })
        .retry(RetryConfig {
            max_attempts: 2,
            base_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
            budget: None,
        })
        .timeout(TimeoutConfig {
            per_attempt: Some(Duration::from_millis(50)),
            overall: None,
        })
        .build()
        .unwrap();
    let svc = policy.layer(tower::service_fn(|ms: u64| async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok::<_, std::io::Error>(())
    }));
    svc.clone().oneshot(1).await.unwrap();
    let err = svc.clone().oneshot(100).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::CircuitOpen,
        "the retry met the open circuit"
    );
    let err = svc.clone().oneshot(1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CircuitOpen);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for line in [
        r#"resilience_calls_total{policy="saves",outcome="success"} 1"#,
        r#"resilience_calls_total{policy="saves",outcome="circuit_open"} 2"#,
        r#"resilience_retries_total{policy="saves"} 1"#,
        r#"resilience_timeouts_total{policy="saves",scope="attempt"} 1"#,
        r#"resilience_circuit_state{policy="saves",state="open"} 1"#,
        r#"resilience_circuit_transitions_total{policy="saves",from="closed",to="open"} 1"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}

#[tokio::test(start_paused = true)]
async fn per_attempt_timeout_alone() {
    let svc = TimeoutLayer::per_attempt(Duration::from_millis(30)).layer(tower::service_fn(
        |_: u8| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, std::io::Error>(())
        },
    ));
    let start = Instant::now();
    let err = svc.oneshot(0).await.unwrap_err();
    assert!(matches!(
        err,
        ResilienceError::Timeout {
            scope: TimeoutScope::Attempt,
            after
        } if after == Duration::from_millis(30)
    ));
    assert_eq!(start.elapsed(), Duration::from_millis(30));
}

/// A policy with no sections is a pass-through: no deadline, no retry, no shedding, no
/// limit, errors as `Inner` (every layer is in the stack, switched off).
#[tokio::test(start_paused = true)]
async fn a_policy_without_sections_passes_calls_straight_through() {
    let policy = ResiliencePolicy::builder("bare").build().unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let svc = policy.layer(tower::service_fn(move |n: u32| {
        seen.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(Duration::from_secs(3_600)).await;
            if n % 2 == 0 {
                Ok(n)
            } else {
                Err(std::io::Error::other("odd"))
            }
        }
    }));
    let started = Instant::now();
    let answers = futures_join(svc, 0..1_000).await;
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(3_600),
        "no timeout cut a call short"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1_000,
        "one attempt each: no retry, none shed"
    );
    for (n, answer) in (0..1_000u32).zip(answers) {
        match answer {
            Ok(value) => assert_eq!(value, n),
            Err(ResilienceError::Inner(e)) => assert_eq!((n % 2, e.to_string()), (1, "odd".into())),
            Err(other) => panic!("call {n}: {other:?}"),
        }
    }
}

/// Each section alone works with the others switched off beside it.
#[tokio::test(start_paused = true)]
async fn each_section_alone_takes_effect() {
    let slow = || {
        tower::service_fn(|n: u32| async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, std::io::Error>(n)
        })
    };
    let overall = ResiliencePolicy::builder("overall")
        .timeout(TimeoutConfig {
            per_attempt: None,
            overall: Some(Duration::from_millis(100)),
        })
        .build()
        .unwrap();
    let err = overall.layer(slow()).oneshot(1).await.unwrap_err();
    assert!(
        matches!(
            err,
            ResilienceError::Timeout {
                scope: TimeoutScope::Overall,
                ..
            }
        ),
        "{err:?}"
    );

    let attempt = ResiliencePolicy::builder("attempt")
        .timeout(TimeoutConfig {
            per_attempt: Some(Duration::from_millis(100)),
            overall: None,
        })
        .build()
        .unwrap();
    let err = attempt.layer(slow()).oneshot(1).await.unwrap_err();
    assert!(
        matches!(
            err,
            ResilienceError::Timeout {
                scope: TimeoutScope::Attempt,
                ..
            }
        ),
        "{err:?}"
    );

    let bulkhead = ResiliencePolicy::builder("bulkhead")
        .bulkhead(BulkheadConfig {
            max_concurrent: 1,
            max_queue: 0,
            max_wait: None,
        })
        .build()
        .unwrap();
    let mut svc = bulkhead.layer(slow());
    // The slot is taken when the call is made, and held until its future ends.
    let first = svc.ready().await.unwrap().call(1);
    let err = svc.clone().oneshot(2).await.unwrap_err();
    assert!(matches!(err, ResilienceError::BulkheadFull), "{err:?}");
    assert_eq!(first.await.unwrap(), 1);
    assert_eq!(svc.oneshot(3).await.unwrap(), 3, "the slot is free again");

    let limited = ResiliencePolicy::builder("limited")
        .rate_limit(RateLimitConfig {
            per_second: 1.0,
            burst: 1,
            max_wait: Duration::ZERO,
        })
        .build()
        .unwrap();
    // An instant service: a slow one would let the quota refill between the calls.
    let svc = limited.layer(tower::service_fn(|n: u32| async move {
        Ok::<_, std::io::Error>(n)
    }));
    assert_eq!(svc.clone().oneshot(1).await.unwrap(), 1);
    let err = svc.clone().oneshot(2).await.unwrap_err();
    assert!(
        matches!(err, ResilienceError::RateLimited { .. }),
        "{err:?}"
    );
}

/// The policy's service type names your service a bounded number of times, whatever the
/// configuration: optional layers are switched off at run time, not left out with
/// `Either` (seven nested `Either`s held the service 128 times over, and one program using
/// the policy took minutes to `cargo check`: 351 s for tests/alloc.rs, now 3.3 s).
#[test]
fn the_policy_type_holds_the_service_a_bounded_number_of_times() {
    #[derive(Clone)]
    struct PlayerStore;
    impl Service<u64> for PlayerStore {
        type Response = u64;
        type Error = std::io::Error;
        type Future = std::future::Ready<Result<u64, std::io::Error>>;
        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn call(&mut self, n: u64) -> Self::Future {
            std::future::ready(Ok(n))
        }
    }
    fn name_of<T>(_: &T) -> &'static str {
        std::any::type_name::<T>()
    }
    let policy = ResiliencePolicy::builder("saves").build().unwrap();
    let mut svc = policy.layer(PlayerStore);
    let service = name_of(&svc);
    let future = svc.call(1);
    let future = name_of(&future);
    // The retry and the breaker are still optional by type (2 x 2).
    assert!(service.matches("PlayerStore").count() <= 4, "{service}");
    assert!(future.matches("PlayerStore").count() <= 4, "{future}");
}

/// Drives `svc` for every request at once and collects the answers in order.
async fn futures_join<S>(svc: S, requests: std::ops::Range<u32>) -> Vec<Result<u32, S::Error>>
where
    S: Service<u32, Response = u32> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    let handles: Vec<_> = requests
        .map(|n| tokio::spawn(svc.clone().oneshot(n)))
        .collect();
    let mut answers = Vec::with_capacity(handles.len());
    for handle in handles {
        answers.push(handle.await.expect("call task"));
    }
    answers
}

/// A weighted call that costs more than the burst can never be admitted: it gets its own
/// error, which answers 413 with no `Retry-After` (a retry can never pass), is not retried,
/// and prints no absurd wait. No duration arithmetic overflows on the way.
#[tokio::test(start_paused = true)]
async fn a_call_costing_more_than_the_burst_is_refused_for_good() {
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let batches = tower::service_fn(move |batch: Vec<u64>| {
        seen.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, std::io::Error>(batch.len()) }
    });
    let layer = RateLimitLayer::global(RateLimitConfig {
        per_second: 100.0,
        burst: 5,
        max_wait: Duration::from_millis(50),
    })
    .unwrap()
    .cost(|batch: &Vec<u64>| batch.len() as u32);
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(retry_config(3)).unwrap())
        .layer(layer)
        .service(batches);
    assert_eq!(svc.clone().oneshot(vec![1; 5]).await.unwrap(), 5);
    let err = svc.clone().oneshot(vec![1; 10]).await.unwrap_err();
    assert!(
        matches!(err, ResilienceError::OverCapacity { cost: 10 }),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::OverCapacity);
    assert!(err.is_rejection());
    assert_eq!(err.retry_after(), None);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the batch of 10 never ran, nor was retried"
    );
    let text = err.to_string();
    assert!(text.contains("10") && text.contains("never"), "{text}");
    let response: http::Response<()> = err.to_response();
    assert_eq!(response.status(), http::StatusCode::PAYLOAD_TOO_LARGE);
    assert!(response.headers().get("retry-after").is_none());

    // The longest wait there is still makes a valid answer (no overflow, no wrap to 1 s).
    let longest: ResilienceError<()> = ResilienceError::RateLimited {
        retry_after: Duration::MAX,
    };
    let response: http::Response<()> = longest.to_response();
    assert_eq!(response.status(), 429);
    assert_eq!(
        response.headers()["retry-after"],
        u64::MAX.to_string().as_str()
    );
}

/// `housekeeping` takes effect whenever it is called: also on a layer already cloned or
/// already wrapping services, which share its limiter (it was silently ignored there).
#[tokio::test(start_paused = true)]
async fn housekeeping_applies_to_a_layer_already_in_use() {
    let layer = RateLimitLayer::keyed(
        RateLimitConfig {
            per_second: 10.0,
            burst: 1,
            max_wait: Duration::ZERO,
        },
        |req: &u64| *req,
    )
    .unwrap();
    let players = layer.layer(tower::service_fn(|p: u64| async move {
        Ok::<_, std::io::Error>(p)
    }));
    let kept = layer.clone();
    let layer = layer.housekeeping(Duration::from_secs(1), 1_000);
    for p in 0..500 {
        players.clone().oneshot(p).await.unwrap();
    }
    assert_eq!(layer.tracked_keys(), 500);
    // The default interval is 10 s: only the new 1 s interval forgets them after 2 s.
    tokio::time::advance(Duration::from_secs(2)).await;
    players.clone().oneshot(9_999).await.unwrap();
    assert!(
        kept.tracked_keys() <= 1,
        "{} keys still tracked",
        kept.tracked_keys()
    );
}
