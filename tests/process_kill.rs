//! End to end: SIGKILL to the game server, which the runner supervises and restarts.
//!
//! Real parts: PostgreSQL, the example game server started by the runner's process fault
//! (`restart: always`), Prometheus scraping it, the runner binary with its load (calls,
//! and WebSocket sessions in the server's lobby). Expected: the supervisor restarts the
//! server, the report gives the outage length, and it matches the outage this test sees by
//! probing `/healthz` every 2 ms from outside; every lobby session is lost with the process
//! and opened again.

use crate::support;

use std::time::{Duration, Instant};

use support::{GameConfig, GameServer, Postgres, Prometheus, Run};

const EXPERIMENT: &str = r#"
apiVersion: chaos.game-resilience.dev/v1
kind: Experiment
metadata:
  name: e2e-game-server-kill
  description: >-
    A SIGKILLed game server is restarted by its supervisor and answers again within 10 s;
    the report gives the measured outage.
spec:
  target: { backend: local }
  prometheus: { url: "@PROM@" }
  load:
    target: "@GAME@"
    scenarioFile: "@SCENARIO@"
    players: 20
    rate: 40
    warmup: 4s
    websocket:
      path: "/v1/lobby/ws?player={{player}}"
      sessions: 50
      group: lobby
      messages:
        - { name: heartbeat, every: 1s, json: { type: ping, id: "{{seq}}" }, replyMatch: /id }
  steadyState:
    - name: game-server-healthy
      http: { url: "@GAME@/healthz", expectStatus: 200, timeout: 1s }
  faults:
    - name: game-server-crash
      type: process-kill
      selector:
        process:
          command: @ARGV@
          restart: always
          readyPort: @PORT@
          readyHttp: "@GAME@/healthz"
          readyTimeout: 60s
      parameters: { signal: KILL }
      duration: 8s
  abortWhen:
    - name: game-server-down-too-long
      http: { url: "@GAME@/healthz", expectStatus: 200, timeout: 500ms }
      for: 20
  checkInterval: 500ms
  report: { dir: "@REPORT_DIR@", formats: [json, markdown] }
"#;

#[test]
fn process_kill_is_restarted_by_the_supervisor_and_the_outage_is_reported() {
    let _alone = support::alone();
    let Some(pg) = Postgres::start() else { return };
    // The runner starts (and restarts) the server; this only writes its configuration.
    let game = GameServer::configure(&GameConfig {
        port: support::free_port(),
        database_url: pg.url_via(pg.port),
        write_behind: true,
    });
    let Some(prometheus) = Prometheus::start_unchecked(&format!("127.0.0.1:{}", game.port)) else {
        return;
    };
    let argv = serde_json::to_string(&game.argv()).expect("argv as a YAML flow list");
    let run = Run::start(
        &EXPERIMENT
            .replace("@PROM@", &prometheus.url)
            .replace("@GAME@", &game.url)
            .replace("@SCENARIO@", &support::game_scenario())
            .replace("@ARGV@", &argv)
            .replace("@PORT@", &game.port.to_string()),
    );
    // Probe /healthz from outside every 2 ms (a debug build restarts in tens of
    // milliseconds): the stretch of failures after it first answered is the outage as a
    // player would see it.
    let health = format!("{}/healthz", game.url);
    let mut up_once = false;
    let mut down_since = None::<Instant>;
    let mut outages = Vec::new();
    // The coarsest this outside view got: the longest time between two probes (a busy
    // machine can stall the prober as well as the supervisor).
    let mut widest_gap = Duration::ZERO;
    let mut last_probe = None::<Instant>;
    let limit = Instant::now() + Duration::from_secs(120);
    let mut run = run;
    while Instant::now() < limit && matches!(run.child.try_wait(), Ok(None)) {
        let now = Instant::now();
        if let Some(last) = last_probe {
            widest_gap = widest_gap.max(now - last);
        }
        last_probe = Some(now);
        let ok = support::get(&health).is_some_and(|(s, _)| s == 200);
        match (ok, down_since) {
            (true, Some(since)) => {
                outages.push(since.elapsed());
                down_since = None;
            }
            (true, None) => up_once = true,
            (false, None) if up_once => down_since = Some(Instant::now()),
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let done = run.finish(Duration::from_secs(60));
    let report = &done.report;
    assert!(up_once, "the runner never had the game server up");
    // The run passes: its only abort condition is the server staying down for 10 s. (The
    // load's SLOs are not checked here: the server keeps tickets in memory, so players see
    // 404s after a crash; experiments/local/game-server-kill.yaml shows that breach.)
    assert_eq!(
        done.status.code(),
        Some(0),
        "the run did not pass; stderr:\n{}\nreport: {report}",
        done.stderr
    );
    let fault = &report["faults"][0];
    assert_eq!(fault["reverted"], true, "{report}");
    // The lobby sessions: each lost once, with the process, and opened again.
    let sessions = &report["load"]["sessions"];
    assert_eq!(sessions["wanted"], 50, "{sessions}");
    assert_eq!(
        sessions["lost"], 50,
        "every session is lost with the process: {sessions}"
    );
    assert!(
        sessions["established"].as_u64() >= Some(100),
        "every session is opened again: {sessions}"
    );
    assert_eq!(sessions["held_at_end"], 50, "{sessions}");
    let heartbeats = report["load"]["totals"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["operation"] == "heartbeat"))
        .unwrap_or_else(|| panic!("no heartbeat totals in {}", report["load"]));
    assert!(heartbeats["success"].as_u64() > Some(0), "{heartbeats}");
    assert_eq!(fault["revertible"], true, "{report}");
    let outage_ms: u64 = fault["measurements"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == "outage_ms"))
        .and_then(|m| m["value"].as_str())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no outage_ms measurement in {fault}"));
    assert_eq!(
        outages.len(),
        1,
        "the server should be down exactly once (the kill); outages seen: {outages:?}; report: {report}; stderr:\n{}",
        done.stderr
    );
    let seen = outages[0];
    eprintln!(
        "process kill: the runner reports an outage of {outage_ms} ms; probing /healthz saw {seen:?} (widest gap between probes {widest_gap:?}); outcome {} ({})",
        report["outcome"], report["reason"]
    );
    assert!(
        outage_ms > 0 && outage_ms < 10_000,
        "outage {outage_ms} ms is not plausible for a restart"
    );
    let reported = Duration::from_millis(outage_ms);
    let difference = seen.abs_diff(reported);
    // Both sides poll (the supervisor every 10-50 ms, this test every 2 ms plus the
    // probe's own time): they agree within a few polls, and within the widest gap this
    // side's view had.
    let tolerance = Duration::from_millis(300) + widest_gap;
    assert!(
        difference <= tolerance,
        "the reported outage ({reported:?}) and the one seen from outside ({seen:?}) differ by {difference:?}, over {tolerance:?}"
    );
    // Prometheus scraped the restart: the server's counters started again from zero (the
    // 4 s warm-up lets it scrape the first process a few times before the kill).
    let resets = "sum(resets(game_http_requests_total[5m]))";
    let deadline = Instant::now() + Duration::from_secs(10);
    while prometheus.query(resets).is_none_or(|r| r < 1.0) {
        assert!(
            Instant::now() < deadline,
            "Prometheus did not see the restart: {resets} = {:?}, samples of up: {:?}, series: {:?}",
            prometheus.query(resets),
            prometheus.query("count_over_time(up[5m])"),
            prometheus.query("count(game_http_requests_total)")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
