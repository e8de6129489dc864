//! What the policy counts against its breaker and what it retries: status rules from YAML,
//! the HTTP and gRPC defaults, and predicates in code.

use resilience::circuit_breaker::CircuitBreakerConfig;
use resilience::{
    CircuitState, ResilienceError, ResiliencePolicy, ResiliencePolicyConfig, Verdict,
};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use tower::{Layer, ServiceExt};

/// A service answering with the statuses in `script`, in turn (the last one repeats), with
/// a count of its calls.
fn scripted(
    script: &'static [(u16, Option<&'static str>)],
) -> (
    Arc<AtomicU32>,
    impl tower::Service<
            (),
            Response = http::Response<()>,
            Error = std::io::Error,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static,
) {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let svc = tower::service_fn(move |()| {
        let n = counted.fetch_add(1, Ordering::SeqCst) as usize;
        let (status, grpc) = script[n.min(script.len() - 1)];
        let mut answer = http::Response::builder().status(status);
        if let Some(code) = grpc {
            answer = answer.header("grpc-status", code);
        }
        async move { Ok::<_, std::io::Error>(answer.body(()).expect("a valid answer")) }
    });
    (calls, svc)
}

const POLICY: &str = "\
name: lobby
retry: { max_attempts: 3, base_backoff: 1ms, max_backoff: 2ms }
circuit_breaker:
  window: { kind: count, size: 4 }
  minimum_calls: 4
  failure_rate_threshold: 50
";

fn http_policy(extra: &str) -> resilience::HttpPolicy {
    let config = ResiliencePolicyConfig::from_yaml(&format!("{POLICY}{extra}")).unwrap();
    ResiliencePolicy::from_config_http(&config, None).unwrap()
}

#[tokio::test(start_paused = true)]
async fn http_defaults_retry_a_503_and_neither_retry_nor_count_a_404() {
    let policy = http_policy("");
    let breaker = policy.circuit_breaker().unwrap();

    let (calls, svc) = scripted(&[(503, None), (200, None)]);
    let answer = policy.layer(svc).oneshot(()).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the 503 is retried");

    let (calls, svc) = scripted(&[(404, None)]);
    let svc = policy.layer(svc);
    for _ in 0..6 {
        assert_eq!(svc.clone().oneshot(()).await.unwrap().status(), 404);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 6, "a 404 is not retried");
    assert_eq!(breaker.state(), CircuitState::Closed, "nor counted");
}

#[tokio::test(start_paused = true)]
async fn a_500_counts_against_the_breaker_but_is_not_retried_by_default() {
    let policy = http_policy("");
    let breaker = policy.circuit_breaker().unwrap();
    let (calls, svc) = scripted(&[(500, None)]);
    let svc = policy.layer(svc);
    for _ in 0..4 {
        assert_eq!(svc.clone().oneshot(()).await.unwrap().status(), 500);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(breaker.state(), CircuitState::Open);
    let refused = svc.oneshot(()).await.unwrap_err();
    assert!(
        matches!(refused, ResilienceError::CircuitOpen { .. }),
        "{refused:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn yaml_rules_replace_the_defaults_list_by_list() {
    // 500 retried (idempotent reads); 503 no longer a failure nor retried.
    let policy = http_policy("classify:\n  failure: { http: [500] }\n  retry: { http: [500] }\n");
    let breaker = policy.circuit_breaker().unwrap();
    let (calls, svc) = scripted(&[(500, None), (200, None)]);
    assert_eq!(policy.layer(svc).oneshot(()).await.unwrap().status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let (calls, svc) = scripted(&[(503, None)]);
    let svc = policy.layer(svc);
    for _ in 0..5 {
        assert_eq!(svc.clone().oneshot(()).await.unwrap().status(), 503);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    assert_eq!(breaker.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn grpc_answers_are_judged_by_their_code_not_their_http_200() {
    let policy = http_policy("");
    let breaker = policy.circuit_breaker().unwrap();
    // UNAVAILABLE (14) is retried; NOT_FOUND (5) is neither retried nor counted.
    let (calls, svc) = scripted(&[(200, Some("14")), (200, Some("0"))]);
    let answer = policy.layer(svc).oneshot(()).await.unwrap();
    assert_eq!(answer.headers()["grpc-status"], "0");
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let (calls, svc) = scripted(&[(200, Some("5"))]);
    let svc = policy.layer(svc);
    for _ in 0..5 {
        svc.clone().oneshot(()).await.unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    assert_eq!(breaker.state(), CircuitState::Closed);

    // INTERNAL (13) opens a fresh breaker after its four calls.
    let policy = http_policy("");
    let (_, svc) = scripted(&[(200, Some("13"))]);
    let svc = policy.layer(svc);
    for _ in 0..4 {
        svc.clone().oneshot(()).await.unwrap();
    }
    assert_eq!(
        policy.circuit_breaker().unwrap().state(),
        CircuitState::Open
    );
}

#[test]
fn the_generic_build_refuses_status_rules_it_could_not_apply() {
    let yaml = format!("{POLICY}classify:\n  retry: {{ http: [503] }}\n");
    let config = ResiliencePolicyConfig::from_yaml(&yaml).unwrap();
    let err = ResiliencePolicy::from_config(&config, None).unwrap_err();
    assert_eq!(err.field(), "classify");
    assert!(err.to_string().contains("from_config_http"), "{err}");
}

#[test]
fn bad_rules_in_a_policy_file_name_their_field_and_line() {
    let err = ResiliencePolicyConfig::from_yaml(&format!(
        "{POLICY}classify:\n  failure:\n    http: [5xx, 503]\n"
    ))
    .unwrap_err();
    assert_eq!(err.field(), "classify.failure.http");
    assert_eq!(err.location().map(|(line, _)| line), Some(9), "{err}");
    assert!(
        err.message().contains("503 is already covered by 5xx"),
        "{err}"
    );

    let err = ResiliencePolicyConfig::from_yaml(&format!(
        "{POLICY}classify:\n  retry:\n    grpc: [UNAVAILABLE, Timeout]\n"
    ))
    .unwrap_err();
    assert_eq!(err.field(), "classify.retry.grpc[1]");
    assert_eq!(err.location().map(|(line, _)| line), Some(9), "{err}");
}

#[derive(Debug, Clone, PartialEq)]
enum SaveError {
    Conflict,
    Database,
}

#[tokio::test(start_paused = true)]
async fn predicates_in_code_tell_a_conflict_from_a_database_fault() {
    let breaker_config = CircuitBreakerConfig {
        minimum_calls: 4,
        ..Default::default()
    };
    let not_a_fault = |r: &Result<u64, ResilienceError<SaveError>>| match r {
        Err(ResilienceError::Inner(SaveError::Conflict)) => Verdict::Success,
        Err(e) => resilience::classify::classify_error(e),
        Ok(_) => Verdict::Success,
    };
    let policy = ResiliencePolicy::builder("saves")
        .circuit_breaker(breaker_config)
        .retry(resilience::retry::RetryConfig {
            max_attempts: 3,
            base_backoff: std::time::Duration::from_millis(1),
            max_backoff: std::time::Duration::from_millis(2),
            budget: None,
        })
        .failure_classifier(not_a_fault)
        .retry_classifier(not_a_fault)
        .build()
        .unwrap();
    let breaker = policy.circuit_breaker().unwrap();
    let answers = Arc::new(Mutex::new(vec![SaveError::Conflict; 8]));
    let calls = Arc::new(AtomicU32::new(0));
    let (a, c) = (answers.clone(), calls.clone());
    let save = tower::service_fn(move |_: u64| {
        c.fetch_add(1, Ordering::SeqCst);
        let answer = a.lock().unwrap().pop().unwrap_or(SaveError::Database);
        async move { Err::<u64, _>(answer) }
    });
    let svc = policy.layer(save);
    for _ in 0..8 {
        let err = svc.clone().oneshot(7).await.unwrap_err();
        assert!(matches!(err, ResilienceError::Inner(SaveError::Conflict)));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 8, "conflicts are not retried");
    assert_eq!(breaker.state(), CircuitState::Closed, "nor counted");
    // Database faults are retried and open the breaker.
    let err = svc.clone().oneshot(7).await.unwrap_err();
    assert!(matches!(err, ResilienceError::Inner(SaveError::Database)));
    assert_eq!(calls.load(Ordering::SeqCst), 11);
    for _ in 0..3 {
        let _ = svc.clone().oneshot(7).await;
    }
    assert_ne!(breaker.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn shed_calls_never_count_against_the_breaker_whatever_the_classifier_says() {
    let every_error_counts = |r: &Result<u32, ResilienceError<std::io::Error>>| match r {
        Ok(_) => Verdict::Success,
        Err(_) => Verdict::Failure,
    };
    let policy = ResiliencePolicy::builder("lobby")
        .circuit_breaker(CircuitBreakerConfig {
            minimum_calls: 2,
            ..Default::default()
        })
        .bulkhead(resilience::bulkhead::BulkheadConfig {
            max_concurrent: 1,
            max_queue: 0,
            max_wait: None,
        })
        .failure_classifier(every_error_counts)
        .build()
        .unwrap();
    let breaker = policy.circuit_breaker().unwrap();
    let slow = tower::service_fn(|n: u32| async move {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        Ok::<_, std::io::Error>(n)
    });
    let svc = policy.layer(slow);
    let calls: Vec<_> = (0..10).map(|n| svc.clone().oneshot(n)).collect();
    let results = futures_join_all(calls).await;
    let shed = results
        .iter()
        .filter(|r| matches!(r, Err(ResilienceError::BulkheadFull)))
        .count();
    assert_eq!(shed, 9, "{results:?}");
    assert_eq!(breaker.state(), CircuitState::Closed);
}

async fn futures_join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pending: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    // Every future is polled before any finishes, so they race for the bulkhead together.
    std::future::poll_fn(|cx| {
        let mut all_done = true;
        for (future, slot) in pending.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(output) => *slot = Some(output),
                    std::task::Poll::Pending => all_done = false,
                }
            }
        }
        if all_done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.into_iter().flatten().collect()
}
