//! End to end: the game server cut off from PostgreSQL, with its save fallback turned off.
//!
//! Real parts: PostgreSQL, the example game server (`write_behind.enabled: false`),
//! Prometheus scraping it every second, a standalone `chaos-runner proxy` between the two,
//! and the runner binary. Expected: saves fail, the save-success burn-rate abort fires on
//! Prometheus, the runner exits 2, and the partition is gone within one check interval plus
//! one scrape interval of the first failed save (measured here, from outside the runner).

use crate::support;

use std::time::{Duration, Instant};

use support::Stack;

/// The experiment's check interval.
const CHECK_INTERVAL: Duration = Duration::from_millis(500);

const EXPERIMENT: &str = r#"
apiVersion: chaos.game-resilience.dev/v1
kind: Experiment
metadata:
  name: e2e-db-partition
  description: >-
    With no save fallback, a partition between the game server and PostgreSQL burns the
    save-success error budget; the run must abort and heal the partition at once.
spec:
  target: { backend: local }
  sloFile: @SLO_FILE@
  prometheus: { url: "@PROM@" }
  load: { target: "@GAME@", scenarioFile: "@SCENARIO@", players: 40, rate: 80, warmup: 2s }
  steadyState:
    - name: saves-within-budget
      sloBurnRate: { slo: save-success, window: 1m, maxBurnRate: 14.4 }
  faults:
    - name: database-partition
      type: proxy-timeout
      selector: { proxy: { api: "@ADMIN@", name: postgres } }
      parameters: { timeout: 0s, stream: upstream }
      duration: 60s
  abortWhen:
    - name: save-success-burn-rate
      sloBurnRate: { slo: save-success, window: 1m, maxBurnRate: 14.4 }
      for: 1
  checkInterval: 500ms
  report: { dir: "@REPORT_DIR@", formats: [json, junit, markdown] }
"#;

#[test]
fn db_partition_without_fallback_aborts_on_burn_rate_and_heals_within_one_check_and_scrape() {
    let _alone = support::alone();
    let Some(stack) = Stack::start(false) else {
        return;
    };
    let Stack {
        prometheus,
        game,
        proxy,
        ..
    } = &stack;

    let run = stack.run(EXPERIMENT);
    // Watch from outside the runner, every 20 ms: when the partition goes in, when the
    // first save fails (the game server's own counter), and when the partition is gone.
    let mut partitioned_at = None::<Instant>;
    let mut first_failure_at = None::<Instant>;
    let mut healed_at = None::<Instant>;
    let deadline = Instant::now() + Duration::from_secs(120);
    while healed_at.is_none() && Instant::now() < deadline {
        let toxics = proxy.toxics().unwrap_or_default();
        let now = Instant::now();
        match (partitioned_at, toxics.is_empty()) {
            (None, false) => partitioned_at = Some(now),
            (Some(_), true) => healed_at = Some(now),
            _ => {}
        }
        if partitioned_at.is_some() && first_failure_at.is_none() {
            let failed = game.metric("game_saves_total", &[("result", "failed")]);
            if failed.is_some_and(|f| f > 0.0) {
                first_failure_at = Some(Instant::now());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let done = run.finish(Duration::from_secs(60));
    let report = &done.report;

    assert_eq!(
        done.status.code(),
        Some(2),
        "the burn-rate abort should end the run with exit 2; stderr:\n{}\nreport: {report}",
        done.stderr
    );
    assert_eq!(report["outcome"], "aborted", "{report}");
    let reason = report["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("save-success-burn-rate"),
        "aborted for another reason: {reason}"
    );
    assert_eq!(report["faults"][0]["reverted"], true, "{report}");
    assert_eq!(
        proxy.toxics(),
        Some(Vec::new()),
        "the partition was left behind"
    );

    let partitioned_at = partitioned_at.expect("the partition never went in");
    let first_failure_at = first_failure_at.expect("no save failed during the partition");
    let healed_at = healed_at.expect("the partition was never removed");
    let bound = CHECK_INTERVAL + prometheus.scrape_interval;
    // Slack for what neither interval covers (one /metrics poll here, the PromQL query, the
    // DELETE of the toxic) and for a busy 2-core machine running PostgreSQL, Prometheus,
    // the game server, the proxy, the runner and its load at once. The figure is printed.
    let slack = Duration::from_secs(1);
    let took = healed_at.duration_since(first_failure_at);
    eprintln!(
        "db partition: first failed save {:?} after the partition went in; partition removed {:?} after it (bound {:?} + {:?} slack); reason: {reason}",
        first_failure_at.duration_since(partitioned_at),
        took,
        bound,
        slack
    );
    assert!(
        took <= bound + slack,
        "the partition was removed {took:?} after the first failed save; the bound is one check interval plus one scrape interval ({bound:?}) + {slack:?}"
    );
    // The run was cut short: it did not hold the fault for its 60 s.
    assert!(
        healed_at.duration_since(partitioned_at) < Duration::from_secs(20),
        "the abort came late: the partition lasted {:?}",
        healed_at.duration_since(partitioned_at)
    );
    // Prometheus saw the failures that fired the abort.
    let failed = prometheus
        .query(r#"max_over_time(game_saves_total{result="failed"}[5m])"#)
        .unwrap_or(0.0);
    assert!(failed > 0.0, "Prometheus never scraped a failed save");
    // Saves work again once the partition is gone.
    let url = format!("{}/v1/players/p77/save", game.url);
    support::wait_for(
        Duration::from_secs(30),
        "a save stored in the database after the revert",
        || {
            support::put_json(&url, &serde_json::json!({ "after": true }))
                .is_some_and(|(status, _, _)| status == 200)
        },
    );
}
