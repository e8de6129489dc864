//! End to end: every PostgreSQL reply 300 ms late, with the game server's save fallback on.
//!
//! Real parts: PostgreSQL, the example game server, Prometheus scraping it, a standalone
//! `chaos-runner proxy` between the two, and the runner binary driving load and the fault.
//! Expected: the save breaker opens, saves are answered by the write-behind queue, the
//! availability SLO holds (the run passes), and after the revert the queue drains with every
//! acknowledged save in PostgreSQL.

use crate::support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::Stack;

const EXPERIMENT: &str = r#"
apiVersion: chaos.game-resilience.dev/v1
kind: Experiment
metadata:
  name: e2e-db-latency
  description: >-
    Saves stay available (>= 99.9%) and fast (p95 < 500 ms) while every PostgreSQL reply
    is 300 ms late: the breaker opens and the write-behind queue answers.
spec:
  target: { backend: local }
  sloFile: @SLO_FILE@
  prometheus: { url: "@PROM@" }
  load: { target: "@GAME@", scenarioFile: "@SCENARIO@", players: 40, rate: 80, warmup: 2s }
  steadyState:
    - name: availability
      load: { sli: availability, window: 2s, breachWhen: "<", threshold: 0.999 }
  faults:
    - name: slow-database
      type: proxy-latency
      selector: { proxy: { api: "@ADMIN@", name: postgres } }
      parameters: { latency: 300ms, stream: downstream }
      duration: 15s
  abortWhen:
    - name: availability-slo
      load: { sli: availability, window: 5s, breachWhen: "<", threshold: 0.999 }
      for: 2
    - name: latency-slo-ms
      load: { sli: latencyP95, window: 5s, breachWhen: ">", threshold: 500 }
      for: 2
    - name: availability-burn-rate
      sloBurnRate: { slo: game-availability, window: 1m, maxBurnRate: 14.4 }
      for: 2
  checkInterval: 500ms
  indicators:
    - name: save-breaker
      metricsUrl: "@GAME@/metrics"
      metric: resilience_circuit_state
      labels: { policy: save_writes }
      stateLabel: state
    - name: save-queue
      metricsUrl: "@GAME@/metrics"
      metric: game_save_queue_depth
  report: { dir: "@REPORT_DIR@", formats: [json, markdown, html] }
"#;

/// What the test's own writer saw: the last acknowledged save per player.
#[derive(Default)]
struct Writes {
    acknowledged: BTreeMap<String, u64>,
    stored: u64,
    queued: u64,
    refused: Vec<String>,
    /// How long each acknowledged save took.
    took: Vec<Duration>,
}

impl Writes {
    /// The `q` quantile of the acknowledged saves' times (nearest rank).
    fn quantile(&self, q: f64) -> Duration {
        let mut took = self.took.clone();
        took.sort();
        let rank = ((took.len() as f64 * q).ceil() as usize).clamp(1, took.len().max(1));
        took.get(rank - 1).copied().unwrap_or_default()
    }
}

#[test]
fn db_latency_opens_the_breaker_holds_the_slo_and_drains_every_acknowledged_save() {
    let _alone = support::alone();
    let Some(stack) = Stack::start(true) else {
        return;
    };
    let Stack {
        prometheus,
        game,
        proxy,
        pg,
    } = &stack;

    // The test's own players write saves all through the run and remember what was
    // acknowledged (200 stored or 202 queued).
    let writes = Arc::new(Mutex::new(Writes::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (writes, stop, base) = (writes.clone(), stop.clone(), game.url.clone());
        std::thread::spawn(move || {
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                let player = format!("p9000{}", seq % 10);
                let body = serde_json::json!({ "seq": seq, "level": seq % 60 });
                let answer = support::put_json(&format!("{base}/v1/players/{player}/save"), &body);
                let mut w = writes.lock().unwrap();
                match answer {
                    Some((200, _, took)) | Some((202, _, took)) => {
                        let status = answer.as_ref().map_or(0, |a| a.0);
                        if status == 200 {
                            w.stored += 1;
                        } else {
                            w.queued += 1;
                        }
                        w.took.push(took);
                        w.acknowledged.insert(player, seq);
                    }
                    other => w.refused.push(format!("{player} seq {seq}: {other:?}")),
                }
                drop(w);
                std::thread::sleep(Duration::from_millis(40));
            }
        })
    };

    let run = stack.run(EXPERIMENT);
    let done = run.finish(Duration::from_secs(180));
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("the writer thread");
    let report = &done.report;
    assert_eq!(
        done.status.code(),
        Some(0),
        "the SLOs should hold under a slow database; stderr:\n{}\nreport: {report}",
        done.stderr
    );

    // The breaker opened, live on the run's indicators and as Prometheus saw it.
    let changes = report["indicators"].as_array().cloned().unwrap_or_default();
    assert!(
        changes
            .iter()
            .any(|c| c["indicator"] == "save-breaker" && c["to"] == "open"),
        "the save breaker never showed as open: {changes:?}"
    );
    assert!(
        done.stderr.contains("save-breaker: closed -> open"),
        "the terminal output does not show the breaker opening:\n{}",
        done.stderr
    );
    assert_eq!(
        prometheus.query(
            r#"max_over_time(resilience_circuit_state{policy="save_writes",state="open"}[5m])"#
        ),
        Some(1.0),
        "Prometheus never scraped the save breaker open"
    );
    // The fallback answered: queued saves, seen by Prometheus and by the test's writer.
    let queued = prometheus
        .query(r#"max_over_time(game_saves_total{result="queued"}[5m])"#)
        .unwrap_or(0.0);
    assert!(queued > 0.0, "no save was queued by the fallback");
    let w = writes.lock().unwrap();
    assert!(
        w.refused.is_empty(),
        "saves were refused while the fallback was on: {:?}",
        w.refused
    );
    assert!(
        w.queued > 0 && w.stored > 0,
        "stored {} queued {}",
        w.stored,
        w.queued
    );
    // The latency SLO (p95 under 500 ms) held for the saves; and none hung: the save
    // policy's overall timeout is 400 ms, so every save is answered (the slowest is
    // printed; on a busy machine one answer can be late, but not by seconds).
    let (p95, slowest) = (w.quantile(0.95), w.quantile(1.0));
    eprintln!("db latency: saves p95 {p95:?}, slowest {slowest:?}");
    assert!(
        p95 < Duration::from_millis(500),
        "saves took {p95:?} at p95, over the 500 ms latency SLO"
    );
    assert!(slowest < Duration::from_secs(5), "a save hung: {slowest:?}");
    // The availability SLO held: client side (the runner's load) and server side.
    let totals = report["load"]["totals"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let all = totals
        .iter()
        .find(|t| t["operation"] == "all")
        .unwrap_or_else(|| panic!("no `all` row in the load totals: {totals:?}"));
    let (count, errors) = (
        all["count"].as_u64().unwrap_or(0),
        all["errors"].as_u64().unwrap_or(u64::MAX),
    );
    assert!(count > 1000, "the load sent only {count} requests");
    assert!(
        errors as f64 / count as f64 <= 0.001,
        "client-side availability below 99.9%: {errors} errors in {count}"
    );
    let server_errors = prometheus
        .query(r#"sum(max_over_time(game_http_requests_total{outcome="error"}[5m]))"#)
        .unwrap_or(0.0);
    let server_total = prometheus
        .query(r#"sum(max_over_time(game_http_requests_total[5m]))"#)
        .unwrap_or(0.0);
    assert!(
        server_total > 1000.0 && server_errors / server_total <= 0.001,
        "server-side availability below 99.9%: {server_errors} errors in {server_total}"
    );
    // The fault was reverted (and verified by the runner), and the proxy is clean.
    assert_eq!(report["faults"][0]["reverted"], true, "{report}");
    assert_eq!(proxy.toxics(), Some(Vec::new()), "a toxic was left behind");

    // After the revert the queue drains into PostgreSQL: every acknowledged save is there,
    // at the version the player last had acknowledged.
    support::wait_for(
        Duration::from_secs(60),
        "the write-behind queue to drain",
        || game.metric("game_save_queue_depth", &[]) == Some(0.0),
    );
    let stored: BTreeMap<String, String> = pg
        .rows("SELECT player_id, data->>'seq' FROM player_saves WHERE player_id LIKE 'p9000%'")
        .into_iter()
        .collect();
    for (player, seq) in &w.acknowledged {
        assert_eq!(
            stored.get(player).map(String::as_str),
            Some(seq.to_string().as_str()),
            "player {player}: acknowledged save {seq} is not what PostgreSQL holds"
        );
    }
    eprintln!(
        "db latency: {count} load calls, {errors} errors; writer: {} stored, {} queued, p95 {:?}, slowest {:?}; {} players' last saves all in PostgreSQL",
        w.stored,
        w.queued,
        w.quantile(0.95),
        w.quantile(1.0),
        w.acknowledged.len()
    );
}
