//! Policy configuration from YAML: good files load, bad ones are refused with the field
//! path and the line, and no input makes the parser panic.

use proptest::prelude::*;
use resilience::{ResiliencePolicy, ResiliencePolicyConfig};
use std::time::Duration;

const GOOD: &str = r#"
name: player-saves
timeout:
  per_attempt: 150ms
  overall: 450ms
retry:
  max_attempts: 3
  base_backoff: 20ms
  max_backoff: 200ms
  budget: { ratio: 0.2, min_per_second: 10, window: 10s }
circuit_breaker:
  window: { kind: time, length: 10s, buckets: 10 }
  failure_rate_threshold: 50
  slow_call_rate_threshold: 80
  slow_call_duration: 400ms
  minimum_calls: 20
  consecutive_failures: 5
  half_open_permits: 3
  open_backoff: { kind: jittered, start: 2s, max: 30s }
bulkhead: { max_concurrent: 64, max_queue: 128, max_wait: 100ms }
rate_limit: { per_second: 500, burst: 100, max_wait: 10ms }
"#;

#[test]
fn a_full_policy_file_loads_and_builds() {
    let config = ResiliencePolicyConfig::from_yaml(GOOD).unwrap();
    assert_eq!(config.name, "player-saves");
    assert_eq!(
        config.timeout.unwrap().overall,
        Some(Duration::from_millis(450))
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let policy = ResiliencePolicy::from_config(&config, None).unwrap();
        assert!(policy.circuit_breaker().is_some());
        assert!(policy.rate_limit().is_some());
    });
}

fn error_of(yaml: &str) -> resilience::ConfigError {
    ResiliencePolicyConfig::from_yaml(yaml).unwrap_err()
}

#[test]
fn unknown_fields_are_refused_with_path_and_line() {
    let err = error_of("name: x\nretry:\n  max_attempts: 2\n  max_attemps: 3\n");
    assert_eq!(err.field(), "retry.max_attemps");
    assert_eq!(err.location().map(|l| l.0), Some(4));
    assert!(err.message().contains("max_attemps"), "{err}");
    assert!(err.to_string().contains("line 4"), "{err}");
}

#[test]
fn wrong_types_name_the_field() {
    let err = error_of("bulkhead:\n  max_concurrent: lots\n");
    assert_eq!(err.field(), "bulkhead.max_concurrent");
    assert_eq!(err.location().map(|l| l.0), Some(2));
    let err = error_of("timeout:\n  overall: soon\n");
    assert_eq!(err.field(), "timeout.overall");
}

#[test]
fn out_of_range_values_name_the_field_and_line() {
    let cases = [
        (
            "circuit_breaker:\n  failure_rate_threshold: 0\n",
            "circuit_breaker.failure_rate_threshold",
            2,
        ),
        (
            "circuit_breaker:\n  window: { kind: count, size: 10 }\n  minimum_calls: 20\n",
            "circuit_breaker.minimum_calls",
            3,
        ),
        (
            "circuit_breaker:\n  open_backoff: { kind: exponential, start: 500us, max: 1s }\n",
            "circuit_breaker.open_backoff.start",
            2,
        ),
        (
            "circuit_breaker:\n  slow_call_rate_threshold: 50\n",
            "circuit_breaker.slow_call_duration",
            0,
        ),
        ("retry:\n  max_attempts: 0\n", "retry.max_attempts", 2),
        (
            "retry:\n  max_attempts: 2\n  budget:\n    ratio: -1\n",
            "retry.budget.ratio",
            4,
        ),
        (
            "timeout:\n  per_attempt: 2s\n  overall: 1s\n",
            "timeout.per_attempt",
            2,
        ),
        (
            "rate_limit:\n  per_second: 10\n  burst: 0\n",
            "rate_limit.burst",
            3,
        ),
        ("name: '   '\n", "name", 1),
    ];
    for (yaml, field, line) in cases {
        let err = error_of(yaml);
        assert_eq!(err.field(), field, "{yaml}");
        if line > 0 {
            assert_eq!(err.location().map(|l| l.0), Some(line), "{yaml}: {err}");
        }
    }
}

#[test]
fn files_are_named_in_errors() {
    let dir = std::env::temp_dir().join(format!("resilience-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.yaml");
    std::fs::write(&path, "bulkhead:\n  max_concurrent: 0\n").unwrap();
    let err = ResiliencePolicyConfig::from_file(&path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.yaml"), "{err}");
    assert!(err.contains("bulkhead.max_concurrent"), "{err}");
    assert!(err.contains("line 2"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn mutate(text: &str, cut: usize, insert: &str) -> String {
    let mut cut = cut.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{}{}", &text[..cut], insert, &text[cut..])
}

proptest! {
    #[test]
    fn random_text_never_panics(text in "\\PC{0,300}") {
        let _ = ResiliencePolicyConfig::from_yaml(&text);
    }

    #[test]
    fn mutated_good_files_never_panic(
        cut in 0usize..GOOD.len(),
        insert in prop_oneof![
            Just(": ".to_owned()), Just("\n  - ".to_owned()), Just("{".to_owned()),
            Just("-1".to_owned()), Just("99999999999999999999".to_owned()), Just("0ms".to_owned()),
            Just("\t".to_owned()), Just("&a *a".to_owned()), "\\PC{0,10}",
        ],
        drop in 0usize..40,
    ) {
        let mutated = mutate(GOOD, cut, &insert);
        let end = (cut + drop).min(mutated.len());
        let mut shortened = mutated.clone();
        if let (true, true) = (mutated.is_char_boundary(cut.min(mutated.len())), mutated.is_char_boundary(end)) {
            shortened.replace_range(cut.min(mutated.len())..end, "");
        }
        for candidate in [mutated, shortened] {
            if let Ok(config) = ResiliencePolicyConfig::from_yaml(&candidate) {
                // Whatever parses and validates also builds.
                let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
                runtime.block_on(async { ResiliencePolicy::from_config(&config, None).unwrap(); });
            }
        }
    }
}

/// Errors inside `window` and `open_backoff` (one shape per `kind`) name their own field
/// and line, not the first key of the enclosing block.
#[test]
fn errors_inside_window_and_open_backoff_name_their_own_field_and_line() {
    let cases = [
        // A typo.
        (
            "name: x\ncircuit_breaker:\n  failure_rate_threshold: 50\n  window:\n    kind: count\n    sise: 10\n",
            "circuit_breaker.window.sise",
            6,
            "sise",
        ),
        // A wrong type.
        (
            "circuit_breaker:\n  window:\n    kind: time\n    length: 10s\n    buckets: many\n",
            "circuit_breaker.window.buckets",
            5,
            "invalid type",
        ),
        // An unknown kind.
        (
            "circuit_breaker:\n  window:\n    kind: sliding\n    size: 10\n",
            "circuit_breaker.window.kind",
            3,
            "sliding",
        ),
        // A field of the other kind.
        (
            "circuit_breaker:\n  window:\n    kind: count\n    size: 10\n    buckets: 5\n",
            "circuit_breaker.window.buckets",
            5,
            "kind: time",
        ),
        // A field its kind needs, missing.
        (
            "circuit_breaker:\n  window: { kind: time }\n",
            "circuit_breaker.window.length",
            2,
            "length",
        ),
        (
            "circuit_breaker:\n  open_backoff:\n    kind: exponential\n    start: 1s\n    maks: 30s\n",
            "circuit_breaker.open_backoff.maks",
            5,
            "maks",
        ),
        (
            "circuit_breaker:\n  open_backoff:\n    kind: constant\n    duration: soon\n",
            "circuit_breaker.open_backoff.duration",
            4,
            "soon",
        ),
        (
            "circuit_breaker:\n  open_backoff:\n    kind: constant\n    duration: 2s\n    max: 30s\n",
            "circuit_breaker.open_backoff.max",
            5,
            "kind: exponential",
        ),
    ];
    for (yaml, field, line, words) in cases {
        let err = error_of(yaml);
        assert_eq!(err.field(), field, "{yaml}\n{err}");
        assert_eq!(err.location().map(|l| l.0), Some(line), "{yaml}\n{err}");
        assert!(err.message().contains(words), "{yaml}\n{err}");
        // The path is said once, not again inside the message.
        assert!(!err.message().contains("circuit_breaker"), "{err}");
    }
    // Anywhere: the message does not repeat the path the error already names.
    let err = error_of("name: x\nretry:\n  max_attempts: 2\n  base_backof: 1s\n");
    assert_eq!(err.field(), "retry.base_backof");
    assert!(!err.message().starts_with("retry"), "{err}");
    // Both shapes still load, block and flow style.
    let ok = ResiliencePolicyConfig::from_yaml(
        "circuit_breaker:\n  window: { kind: time, length: 10s }\n  open_backoff:\n    kind: jittered\n    start: 1s\n    max: 30s\n",
    )
    .unwrap();
    let cb = ok.circuit_breaker.unwrap();
    assert_eq!(
        cb.window,
        resilience::circuit_breaker::WindowConfig::Time {
            length: Duration::from_secs(10),
            buckets: 10
        }
    );
}
