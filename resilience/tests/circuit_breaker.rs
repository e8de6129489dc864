//! Circuit breaker behaviour on tokio's paused clock.

use resilience::circuit_breaker::{CircuitBreakerConfig, OpenBackoff, WindowConfig};
use resilience::{CircuitBreakerLayer, CircuitState, ResilienceError, Verdict};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::{Layer, Service, ServiceExt};

#[derive(Debug, Clone, Copy)]
enum Call {
    Ok,
    Fail,
    Slow(u64),
    Reject,
}

type Err = ResilienceError<std::io::Error>;

fn backend() -> impl Service<
    Call,
    Response = (),
    Error = Err,
    Future = impl std::future::Future<Output = Result<(), Err>> + Send,
> + Clone {
    tower::service_fn(|call: Call| async move {
        match call {
            Call::Ok => Ok(()),
            Call::Fail => Err(ResilienceError::Inner(std::io::Error::other("db down"))),
            Call::Slow(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(())
            }
            Call::Reject => Err(ResilienceError::BulkheadFull),
        }
    })
}

fn config(window: u32, min_calls: u32) -> CircuitBreakerConfig {
    CircuitBreakerConfig {
        window: WindowConfig::Count { size: window },
        failure_rate_threshold: 50.0,
        minimum_calls: min_calls,
        half_open_permits: 2,
        open_backoff: OpenBackoff::Constant {
            duration: Duration::from_secs(5),
        },
        ..CircuitBreakerConfig::default()
    }
}

async fn run<S>(svc: &S, call: Call) -> Result<(), Err>
where
    S: Service<Call, Response = (), Error = Err> + Clone,
{
    svc.clone().oneshot(call).await
}

fn is_open(result: &Result<(), Err>) -> bool {
    matches!(result, Err(ResilienceError::CircuitOpen { .. }))
}

#[tokio::test(start_paused = true)]
async fn trips_on_failure_rate_only_after_minimum_calls() {
    let layer = CircuitBreakerLayer::new("t", config(10, 10)).unwrap();
    let handle = layer.handle();
    let svc = layer.layer(backend());
    for _ in 0..5 {
        run(&svc, Call::Fail).await.unwrap_err();
    }
    for _ in 0..4 {
        run(&svc, Call::Ok).await.unwrap();
    }
    // 5 of 9 failed, but 9 calls are fewer than the minimum of 10.
    assert_eq!(handle.state(), CircuitState::Closed);
    // The tenth call reaches the minimum with 5 of 10 failed (50%): it trips, even though
    // that call itself succeeded.
    run(&svc, Call::Ok).await.unwrap();
    assert_eq!(handle.state(), CircuitState::Open);
    let rejected = run(&svc, Call::Ok).await;
    assert!(is_open(&rejected));
    assert_eq!(
        rejected.unwrap_err().retry_after(),
        Some(Duration::from_secs(5))
    );
}

#[tokio::test(start_paused = true)]
async fn count_window_really_slides() {
    // The tower-resilience 0.13 failure: after 10,000 successes its count window needed
    // 10,001 failures to open. Ours holds only the last 10 calls.
    let layer = CircuitBreakerLayer::new("t", config(10, 10)).unwrap();
    let handle = layer.handle();
    let svc = layer.layer(backend());
    for _ in 0..10_000 {
        run(&svc, Call::Ok).await.unwrap();
    }
    for n in 1..=5 {
        run(&svc, Call::Fail).await.unwrap_err();
        let expected = if n < 5 {
            CircuitState::Closed
        } else {
            CircuitState::Open
        };
        assert_eq!(handle.state(), expected, "after {n} failures");
    }
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_bounded_probes_then_closes() {
    let layer = CircuitBreakerLayer::new("t", config(4, 4)).unwrap();
    let handle = layer.handle();
    let svc = layer.layer(backend());
    for _ in 0..4 {
        run(&svc, Call::Fail).await.unwrap_err();
    }
    assert_eq!(handle.state(), CircuitState::Open);
    assert!(is_open(&run(&svc, Call::Ok).await));
    tokio::time::advance(Duration::from_secs(5)).await;

    // Two probes in flight at once; a third call is rejected.
    let mut a = svc.clone();
    let mut b = svc.clone();
    let probe_a = a.ready().await.unwrap().call(Call::Slow(100));
    let probe_b = b.ready().await.unwrap().call(Call::Slow(100));
    assert_eq!(handle.state(), CircuitState::HalfOpen);
    assert!(is_open(&run(&svc, Call::Ok).await));
    probe_a.await.unwrap();
    assert_eq!(handle.state(), CircuitState::HalfOpen);
    probe_b.await.unwrap();
    assert_eq!(handle.state(), CircuitState::Closed);
    // The window was emptied on closing: old failures do not count again.
    assert_eq!(handle.window_rates().calls, 0);
}

#[tokio::test(start_paused = true)]
async fn dropped_probe_gives_its_permit_back() {
    let cfg = CircuitBreakerConfig {
        half_open_permits: 1,
        ..config(2, 2)
    };
    let layer = CircuitBreakerLayer::new("t", cfg).unwrap();
    let handle = layer.handle();
    let svc = layer.layer(backend());
    run(&svc, Call::Fail).await.unwrap_err();
    run(&svc, Call::Fail).await.unwrap_err();
    tokio::time::advance(Duration::from_secs(5)).await;

    let mut probe_svc = svc.clone();
    let probe = probe_svc.ready().await.unwrap().call(Call::Ok);
    assert!(
        is_open(&run(&svc, Call::Ok).await),
        "the only permit is taken"
    );
    drop(probe); // the caller gave up: the permit returns
    run(&svc, Call::Ok).await.unwrap();
    assert_eq!(handle.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn failed_probes_reopen_with_growing_open_time() {
    let cfg = CircuitBreakerConfig {
        half_open_permits: 1,
        open_backoff: OpenBackoff::Exponential {
            start: Duration::from_secs(1),
            max: Duration::from_secs(8),
        },
        ..config(2, 2)
    };
    let layer = CircuitBreakerLayer::new("t", cfg).unwrap();
    let handle = layer.handle();
    let svc = layer.layer(backend());
    run(&svc, Call::Fail).await.unwrap_err();
    run(&svc, Call::Fail).await.unwrap_err();
    let mut open_for = Vec::new();
    for _ in 0..3 {
        let mut waited = Duration::ZERO;
        while is_open(&run(&svc, Call::Fail).await) {
            tokio::time::advance(Duration::from_millis(250)).await;
            waited += Duration::from_millis(250);
        }
        // That call was the probe, and it failed: open again.
        assert_eq!(handle.state(), CircuitState::Open);
        open_for.push(waited);
    }
    assert!(
        open_for.windows(2).all(|w| w[1] > w[0]),
        "open durations should grow: {open_for:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn slow_calls_trip_the_breaker() {
    let cfg = CircuitBreakerConfig {
        slow_call_rate_threshold: Some(50.0),
        slow_call_duration: Some(Duration::from_millis(100)),
        ..config(4, 4)
    };
    let layer = CircuitBreakerLayer::new("t", cfg).unwrap();
    let handle = layer.handle();
    let svc = layer.layer(backend());
    run(&svc, Call::Ok).await.unwrap();
    run(&svc, Call::Ok).await.unwrap();
    run(&svc, Call::Slow(150)).await.unwrap();
    assert_eq!(handle.state(), CircuitState::Closed);
    run(&svc, Call::Slow(150)).await.unwrap();
    assert_eq!(handle.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_trip_before_the_minimum() {
    let cfg = CircuitBreakerConfig {
        consecutive_failures: Some(3),
        ..config(100, 100)
    };
    let layer = CircuitBreakerLayer::new("t", cfg).unwrap();
    let handle = layer.handle();
    let svc = layer.layer(backend());
    run(&svc, Call::Fail).await.unwrap_err();
    run(&svc, Call::Fail).await.unwrap_err();
    run(&svc, Call::Ok).await.unwrap(); // resets the streak
    run(&svc, Call::Fail).await.unwrap_err();
    run(&svc, Call::Fail).await.unwrap_err();
    assert_eq!(handle.state(), CircuitState::Closed);
    run(&svc, Call::Fail).await.unwrap_err();
    assert_eq!(handle.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn time_window_forgets_old_failures() {
    let cfg = CircuitBreakerConfig {
        window: WindowConfig::Time {
            length: Duration::from_secs(10),
            buckets: 10,
        },
        ..config(4, 4)
    };
    let layer = CircuitBreakerLayer::new("t", cfg).unwrap();
    let handle = layer.handle();
    let svc = layer.layer(backend());
    for _ in 0..3 {
        run(&svc, Call::Fail).await.unwrap_err();
    }
    assert_eq!(handle.window_rates().calls, 3);
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(handle.window_rates().calls, 0, "old calls left the window");
    for _ in 0..3 {
        run(&svc, Call::Ok).await.unwrap();
    }
    run(&svc, Call::Fail).await.unwrap_err();
    assert_eq!(handle.state(), CircuitState::Closed, "1 of 4 failed");
}

#[tokio::test(start_paused = true)]
async fn events_handle_and_rejections_from_inner_layers() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let layer = CircuitBreakerLayer::new("saves", config(2, 2))
        .unwrap()
        .on_state_change(move |c| log.lock().unwrap().push((c.from, c.to)));
    let handle = layer.handle();
    let svc = layer.layer(backend());

    // Our own rejections from inner layers are not the dependency failing.
    for _ in 0..10 {
        run(&svc, Call::Reject).await.unwrap_err();
    }
    assert_eq!(handle.state(), CircuitState::Closed);
    assert_eq!(handle.window_rates().calls, 0);

    handle.force_open();
    assert!(is_open(&run(&svc, Call::Ok).await));
    handle.disable();
    run(&svc, Call::Fail).await.unwrap_err();
    run(&svc, Call::Fail).await.unwrap_err();
    assert_eq!(
        handle.state(),
        CircuitState::Disabled,
        "disabled records nothing"
    );
    handle.reset();
    run(&svc, Call::Fail).await.unwrap_err();
    run(&svc, Call::Fail).await.unwrap_err();
    assert_eq!(handle.state(), CircuitState::Open);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            (CircuitState::Closed, CircuitState::ForcedOpen),
            (CircuitState::ForcedOpen, CircuitState::Disabled),
            (CircuitState::Disabled, CircuitState::Closed),
            (CircuitState::Closed, CircuitState::Open),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn caller_classifier_decides_what_fails() {
    let layer = CircuitBreakerLayer::new("t", config(4, 4))
        .unwrap()
        .classifier(|r: &Result<u16, ResilienceError<std::io::Error>>| match r {
            Ok(code) if *code >= 500 => Verdict::Failure,
            Ok(_) => Verdict::Success,
            Err(_) => Verdict::Failure,
        });
    let handle = layer.handle();
    let svc = layer.layer(tower::service_fn(|code: u16| async move {
        Ok::<_, std::io::Error>(code)
    }));
    svc.clone().oneshot(404).await.unwrap();
    svc.clone().oneshot(503).await.unwrap();
    svc.clone().oneshot(200).await.unwrap();
    assert_eq!(handle.state(), CircuitState::Closed, "1 of 3 failed");
    svc.clone().oneshot(500).await.unwrap();
    assert_eq!(handle.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn clones_share_one_breaker() {
    let layer = CircuitBreakerLayer::new("t", config(2, 2)).unwrap();
    let a = layer.layer(backend());
    let b = a.clone();
    run(&a, Call::Fail).await.unwrap_err();
    run(&b, Call::Fail).await.unwrap_err();
    assert!(is_open(&run(&a, Call::Ok).await));
    assert_eq!(a.handle().state(), CircuitState::Open);
}

/// `reset()` on a closed breaker empties its window and its consecutive-failure count, as
/// it does from any other state: failures before a reset do not count after it.
#[tokio::test(start_paused = true)]
async fn reset_on_a_closed_breaker_empties_its_window() {
    let layer = CircuitBreakerLayer::new(
        "reset",
        CircuitBreakerConfig {
            consecutive_failures: Some(5),
            ..config(10, 5)
        },
    )
    .unwrap();
    let svc = layer.layer(backend());
    for _ in 0..4 {
        assert!(!is_open(&run(&svc, Call::Fail).await));
    }
    let handle = layer.handle();
    assert_eq!(handle.state(), CircuitState::Closed);
    handle.reset();
    assert_eq!(handle.state(), CircuitState::Closed);
    // Four failures again: with the old four still counted, the fifth call (a failure)
    // would reach both the minimum of 5 calls at 100% and 5 failures in a row.
    for _ in 0..4 {
        assert!(!is_open(&run(&svc, Call::Fail).await));
    }
    assert_eq!(
        handle.state(),
        CircuitState::Closed,
        "the window held failures from before the reset"
    );
    // The window itself counts again from the reset: the fifth failure after it opens.
    let _ = run(&svc, Call::Fail).await;
    assert_eq!(handle.state(), CircuitState::Open);
}

/// Trips `svc`'s breaker with five failures (window 10, minimum 5 calls at 50%).
async fn trip<S>(svc: &S)
where
    S: Service<Call, Response = (), Error = Err> + Clone,
{
    for _ in 0..5 {
        let _ = run(svc, Call::Fail).await;
    }
}

/// An open breaker stays open for a while, however the backoff is configured: a jittered
/// backoff starting at 1 s keeps it open (it opened for 0 s, every first trip), and open
/// durations keep their sub-second part (1.5 s is not cut to 1 s).
#[tokio::test(start_paused = true)]
async fn open_durations_are_never_zero_nor_cut_to_whole_seconds() {
    for trial in 0..20 {
        let layer = CircuitBreakerLayer::new(
            "jittered",
            CircuitBreakerConfig {
                open_backoff: OpenBackoff::Jittered {
                    start: Duration::from_secs(1),
                    max: Duration::from_secs(30),
                },
                ..config(10, 5)
            },
        )
        .unwrap();
        let svc = layer.layer(backend());
        trip(&svc).await;
        assert!(
            is_open(&run(&svc, Call::Ok).await),
            "trial {trial}: a call right after the trip was let through"
        );
        // Equal jitter: between half the step and the step.
        tokio::time::advance(Duration::from_millis(499)).await;
        assert!(
            is_open(&run(&svc, Call::Ok).await),
            "trial {trial}: open under 0.5 s"
        );
        tokio::time::advance(Duration::from_millis(502)).await;
        assert!(
            !is_open(&run(&svc, Call::Ok).await),
            "trial {trial}: open over 1 s"
        );
    }
    let layer = CircuitBreakerLayer::new(
        "exponential",
        CircuitBreakerConfig {
            open_backoff: OpenBackoff::Exponential {
                start: Duration::from_millis(1_500),
                max: Duration::from_secs(30),
            },
            ..config(10, 5)
        },
    )
    .unwrap();
    let svc = layer.layer(backend());
    trip(&svc).await;
    tokio::time::advance(Duration::from_millis(1_200)).await;
    assert!(is_open(&run(&svc, Call::Ok).await), "1.5 s cut to 1 s");
    tokio::time::advance(Duration::from_millis(301)).await;
    assert!(!is_open(&run(&svc, Call::Ok).await), "open beyond 1.5 s");
}

/// Start values the backoff cannot honour are refused with the field named.
#[test]
fn a_backoff_start_below_a_millisecond_is_refused() {
    let err = CircuitBreakerLayer::new(
        "x",
        CircuitBreakerConfig {
            open_backoff: OpenBackoff::Jittered {
                start: Duration::from_micros(10),
                max: Duration::from_secs(30),
            },
            ..config(10, 5)
        },
    )
    .unwrap_err();
    assert_eq!(err.field(), "circuit_breaker.open_backoff.start");
}

/// A handle taken before the layer's builder calls (classifier, listener, metrics) still
/// steers and watches the breaker its services use: the calls configure the same breaker.
#[tokio::test(start_paused = true)]
async fn builder_calls_keep_the_breaker_a_handle_was_taken_from() {
    let layer = CircuitBreakerLayer::new("saves", config(10, 5)).unwrap();
    let early = layer.handle();
    let changes = Arc::new(Mutex::new(Vec::new()));
    let seen = changes.clone();
    let metrics = resilience::metrics::ResilienceMetrics::default();
    let layer = layer
        .on_state_change(move |c| seen.lock().unwrap().push((c.from, c.to)))
        .metrics(metrics.policy("saves"))
        .classifier(|r: &Result<(), Err>| match r {
            Err(ResilienceError::Inner(_)) => Verdict::Failure,
            _ => Verdict::Success,
        });
    let svc = layer.layer(backend());
    early.force_open();
    assert!(
        is_open(&run(&svc, Call::Ok).await),
        "the early handle steers another breaker"
    );
    early.reset();
    trip(&svc).await;
    assert_eq!(
        early.state(),
        CircuitState::Open,
        "the early handle watches another breaker"
    );
    assert_eq!(
        changes.lock().unwrap().last().copied(),
        Some((CircuitState::Closed, CircuitState::Open)),
        "the listener added later hears the breaker's changes"
    );
}
