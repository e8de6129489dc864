//! Sloth and OpenSLO files read as SLO sets: the shipped examples in
//! `experiments/slo/imported/` convert to the SLOs they say (names, objectives, periods,
//! PromQL), `validate` and `slo rules` take them as they take `kind: SLOSet` files, an
//! experiment can name one as its `sloFile`, and every construct that cannot be carried is
//! refused by name, at its field and line in the source file.

use crate::support::slo_tools::{promtool, promtool_passes, slo_rules, slo_test};
use crate::support::TempDir;

use chaos_runner::spec::{self, calendar::SloAlerting, SloSet};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn runner() -> Command {
    Command::new(env!("CARGO_BIN_EXE_chaos-runner"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn imported(name: &str) -> PathBuf {
    repo().join("experiments/slo/imported").join(name)
}

fn invalid(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/invalid")
        .join(name)
}

fn load(path: &Path) -> SloSet {
    spec::load_slo_set(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const DAY: u64 = 86_400;

#[test]
fn the_shipped_sloth_file_becomes_an_slo_set() {
    let set = load(&imported("sloth-game-api.yaml"));
    assert_eq!(set.kind, "SLOSet");
    assert_eq!(set.metadata.name, "game-api");
    let names: Vec<&str> = set.spec.slos.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["requests-availability", "requests-not-limited"]);

    let availability = &set.spec.slos[0];
    assert_eq!(availability.objective, 99.9);
    assert_eq!(availability.period, Duration::from_secs(30 * DAY));
    assert_eq!(
        availability.description,
        "Requests answered without a server error"
    );
    let ratio = availability.sli.ratio.as_ref().expect("a ratio SLI");
    assert_eq!(
        ratio.good,
        r#"(sum(rate(game_http_requests_total[$window]))) - (sum(rate(game_http_requests_total{outcome="error"}[$window])))"#
    );
    assert_eq!(ratio.total, "sum(rate(game_http_requests_total[$window]))");
    // The error ratio the rules record is Sloth's error / total.
    assert_eq!(
        availability
            .error_ratio_query(Duration::from_secs(300))
            .unwrap(),
        r#"(1 - (((sum(rate(game_http_requests_total[5m]))) - (sum(rate(game_http_requests_total{outcome="error"}[5m])))) / (sum(rate(game_http_requests_total[5m])))))"#
    );
    assert_eq!(
        availability.alerting,
        Some(SloAlerting {
            labels: BTreeMap::from([("category".into(), "availability".into())]),
            annotations: BTreeMap::from([(
                "runbook_url".into(),
                "https://runbooks.example/game-api/availability".into()
            )]),
        })
    );

    // A block scalar with `{{ .window }}`: trimmed, the window the runner's.
    let limited = &set.spec.slos[1];
    assert_eq!(limited.objective, 99.0);
    let ratio = limited.sli.ratio.as_ref().expect("a ratio SLI");
    assert_eq!(
        ratio.good,
        r#"(sum(rate(game_http_requests_total[$window]))) - (sum(rate(game_http_requests_total{outcome="rate_limited"}[$window])))"#
    );
    // The SLO's own labels go on its alerts.
    assert_eq!(
        limited.alerting.as_ref().map(|a| a.labels.clone()),
        Some(BTreeMap::from([("category".into(), "rate-limits".into())]))
    );

    // The set's labels and Sloth's four alerts, with the file's severity labels.
    let alerting = set.spec.alerting.as_ref().expect("the set's alerting");
    assert_eq!(
        alerting.labels,
        BTreeMap::from([("team".into(), "game-backend".into())])
    );
    let alerts: Vec<(&str, f64, u64, u64)> = alerting
        .alerts
        .iter()
        .map(|a| {
            (
                a.severity.as_str(),
                a.factor,
                a.long.as_secs(),
                a.short.as_secs(),
            )
        })
        .collect();
    assert_eq!(
        alerts,
        [
            ("critical", 14.4, 3600, 300),
            ("critical", 6.0, 6 * 3600, 1800),
            ("warning", 3.0, DAY, 2 * 3600),
            ("warning", 1.0, 3 * DAY, 6 * 3600),
        ]
    );
}

#[test]
fn the_shipped_openslo_file_becomes_an_slo_set() {
    let set = load(&imported("openslo-saves.yaml"));
    assert_eq!(set.metadata.name, "game-saves");
    assert_eq!(set.spec.alerting, None, "the runner's default alerts");
    let names: Vec<&str> = set.spec.slos.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["save-success", "save-stored"]);

    // `bad` and `total` counter selectors: good is total - bad, each a rate over $window.
    let success = &set.spec.slos[0];
    assert_eq!(success.objective, 99.9);
    assert_eq!(success.period, Duration::from_secs(28 * DAY));
    assert_eq!(
        success.description,
        "99.9% of player saves are stored or queued"
    );
    let ratio = success.sli.ratio.as_ref().expect("a ratio SLI");
    assert_eq!(
        ratio.good,
        r#"(sum(rate(game_saves_total[$window]))) - (sum(rate(game_saves_total{result="failed"}[$window])))"#
    );
    assert_eq!(ratio.total, "sum(rate(game_saves_total[$window]))");

    // `indicatorRef` to the file's kind: SLI document, `targetPercent`, a 7-day window.
    let stored = &set.spec.slos[1];
    assert_eq!(stored.objective, 95.0);
    assert_eq!(stored.period, Duration::from_secs(7 * DAY));
    let ratio = stored.sli.ratio.as_ref().expect("a ratio SLI");
    assert_eq!(
        ratio.good,
        r#"sum(rate(game_saves_total{result="stored"}[$window]))"#
    );
    assert_eq!(ratio.total, "sum(rate(game_saves_total[$window]))");
}

/// Each refused construct: the fixture, the field path in the source's own terms, the line.
const REFUSED: &[(&str, &str, usize)] = &[
    ("sloth-sli-plugin.yaml", "slos[0].sli.plugin", 8),
    ("sloth-raw-sli.yaml", "slos[1].sli.raw", 14),
    ("sloth-slo-plugins.yaml", "slo_plugins", 4),
    (
        "sloth-page-alert-label.yaml",
        "slos[0].alerting.page_alert.labels.routing_key",
        16,
    ),
    (
        "sloth-alerts-differ.yaml",
        "slos[1].alerting.ticket_alert",
        19,
    ),
    (
        "sloth-query-without-window.yaml",
        "slos[0].sli.events.error_query",
        9,
    ),
    ("sloth-objective-100.yaml", "slos[0].objective", 6),
    ("sloth-kubernetes-resource.yaml", "apiVersion", 2),
    (
        "openslo-threshold-metric.yaml",
        "spec.indicator.spec.thresholdMetric",
        18,
    ),
    ("openslo-timeslices.yaml", "spec.budgetingMethod", 8),
    (
        "openslo-calendar-window.yaml",
        "spec.timeWindow[0].isRolling",
        11,
    ),
    (
        "openslo-window-in-months.yaml",
        "spec.timeWindow[0].duration",
        10,
    ),
    ("openslo-two-objectives.yaml", "spec.objectives[1]", 14),
    (
        "openslo-datadog-source.yaml",
        "spec.indicator.spec.ratioMetric.bad.metricSource.type",
        22,
    ),
    ("openslo-alert-policies.yaml", "spec.alertPolicies", 30),
    (
        "openslo-query-with-range.yaml",
        "spec.indicator.spec.ratioMetric.total.metricSource.spec.query",
        29,
    ),
    (
        "openslo-indicator-ref-missing.yaml",
        "spec.indicatorRef",
        14,
    ),
    ("openslo-v1alpha.yaml", "apiVersion", 2),
    // Checked after the conversion, reported in the second document.
    ("openslo-bad-name-second-document.yaml", "metadata.name", 34),
];

#[test]
fn each_refused_construct_is_named_with_its_field_and_line() {
    for (fixture, field, line) in REFUSED {
        let path = invalid(fixture);
        let errors = match spec::load_slo_set(&path) {
            Ok(_) => panic!("{fixture}: accepted"),
            Err(errors) => errors,
        };
        let found = errors.0.iter().find(|e| e.field == *field);
        let Some(error) = found else {
            panic!("{fixture}: no error at `{field}` in:\n{errors}");
        };
        assert_eq!(
            error.location.map(|(l, _)| l),
            Some(*line),
            "{fixture}: {error}"
        );
        assert_eq!(error.file, path.display().to_string());
        assert!(!error.message.is_empty());
    }
}

#[test]
fn the_messages_say_what_to_do_instead() {
    let message = |fixture: &str| {
        spec::load_slo_set(&invalid(fixture))
            .unwrap_err()
            .to_string()
    };
    assert!(message("sloth-sli-plugin.yaml")
        .contains("Sloth SLI plugins are not supported; write the SLI as sli.events"));
    assert!(message("openslo-query-with-range.yaml").contains("with `$window` as the range"));
    assert!(message("openslo-timeslices.yaml").contains("`Timeslices` is not supported"));
    assert!(message("sloth-objective-100.yaml").contains("below 100"));
}

#[test]
fn several_refusals_are_reported_in_one_pass() {
    let dir = TempDir::new("slo-import-many");
    let path = dir.path().join("sloth.yaml");
    std::fs::write(
        &path,
        "version: prometheus/v1\n\
         service: game-api\n\
         slos:\n  \
           - name: a\n    objective: 99\n    plugins: { chain: [] }\n    \
             sli: { raw: { error_ratio_query: x } }\n  \
           - name: B\n    objective: 99\n    \
             sli: { plugin: { id: x } }\n",
    )
    .unwrap();
    let errors = spec::load_slo_set(&path).unwrap_err();
    let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        ["slos[0].plugins", "slos[0].sli.raw", "slos[1].sli.plugin"],
        "{errors}"
    );
}

#[test]
fn a_typo_is_refused_at_its_line() {
    let dir = TempDir::new("slo-import-typo");
    let path = dir.path().join("sloth.yaml");
    std::fs::write(
        &path,
        "version: prometheus/v1\nservice: game-api\nslos:\n  - name: a\n    objectiv: 99\n",
    )
    .unwrap();
    let error = spec::load_slo_set(&path).unwrap_err().0.remove(0);
    assert_eq!(error.field, "slos[0].objectiv");
    assert_eq!(error.location.map(|l| l.0), Some(5));
}

#[test]
fn validate_takes_the_imported_files_and_refuses_the_bad_ones_with_exit_3() {
    let out = runner()
        .arg("validate")
        .arg(imported("sloth-game-api.yaml"))
        .arg(imported("openslo-saves.yaml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("ok: ") && stdout.contains("openslo-saves.yaml"),
        "{stdout}"
    );

    for (fixture, field, line) in REFUSED {
        let path = invalid(fixture);
        let out = runner().arg("validate").arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{fixture}: {stderr}");
        let at = format!("{}:{line}:", path.display());
        assert!(
            stderr.contains(&at) && stderr.contains(&format!(": {field}: ")),
            "{fixture}: expected `{at}` and `{field}` in: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{fixture}: {stderr}");
    }
}

#[test]
fn slo_rules_writes_rules_from_the_sloth_file() {
    let dir = TempDir::new("slo-import-rules");
    let rules = dir.path().join("rules.yaml");
    slo_rules(&imported("sloth-game-api.yaml"), &rules);
    let text = std::fs::read_to_string(&rules).unwrap();
    // Two SLOs with Sloth's four alerts each, named by the file's severities.
    assert_eq!(text.matches("- alert: ").count(), 8, "{text}");
    assert!(text.contains("alert: SLOBurnRateCritical1h"), "{text}");
    assert!(text.contains("alert: SLOBurnRateWarning3d"), "{text}");
    assert!(
        text.contains(r#"sum(rate(game_http_requests_total{outcome="error"}[5m]))"#),
        "{text}"
    );
    assert!(text.contains("slo_set: game-api"), "{text}");
    assert!(text.contains("runbook_url: https://runbooks.example/game-api/availability"));
    let Some(promtool) = promtool() else { return };
    promtool_passes(promtool, dir.path(), &["check", "rules", "rules.yaml"]);
}

#[test]
fn the_rules_of_both_imported_files_pass_their_promtool_tests() {
    let Some(promtool) = promtool() else { return };
    for file in ["sloth-game-api.yaml", "openslo-saves.yaml"] {
        let dir = TempDir::new("slo-import-promtool");
        slo_test(&imported(file), dir.path());
        promtool_passes(promtool, dir.path(), &["test", "rules", "slo-tests.yaml"]);
    }
}

#[test]
fn an_experiment_can_name_an_imported_slo_file() {
    let dir = TempDir::new("slo-import-experiment");
    std::fs::copy(
        imported("openslo-saves.yaml"),
        dir.path().join("openslo-saves.yaml"),
    )
    .unwrap();
    let experiment = dir.path().join("experiment.yaml");
    std::fs::write(
        &experiment,
        r#"apiVersion: chaos.game-resilience.dev/v1
kind: Experiment
metadata:
  name: saves-cpu-hog
spec:
  target:
    backend: local
  sloFile: openslo-saves.yaml
  prometheus:
    url: http://127.0.0.1:9090
  faults:
    - name: cpu-pressure
      type: cpu-hog
      selector:
        host: localhost
      parameters:
        workers: 1
        load: 50
      duration: 10s
  abortWhen:
    - name: saves-burning
      sloBurnRate: { slo: save-success, window: 5m, maxBurnRate: 14.4 }
"#,
    )
    .unwrap();
    let loaded = spec::load_experiment(&experiment).unwrap_or_else(|e| panic!("{e}"));
    let slos = loaded.slos.expect("the SLO set");
    assert_eq!(slos.metadata.name, "game-saves");
    // An unknown SLO is still refused against the imported set.
    let text = std::fs::read_to_string(&experiment)
        .unwrap()
        .replace("slo: save-success", "slo: save-sucess");
    std::fs::write(&experiment, text).unwrap();
    let errors = spec::load_experiment(&experiment).unwrap_err().to_string();
    assert!(
        errors.contains("unknown SLO `save-sucess` (known: save-success, save-stored)"),
        "{errors}"
    );
}
