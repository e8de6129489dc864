//! End to end: SIGTERM to the runner while a proxy fault slows the game server's database.
//!
//! Real parts: PostgreSQL, the example game server, Prometheus scraping it, a standalone
//! `chaos-runner proxy` (which outlives the run), and the runner binary. Expected: the
//! runner removes the toxic before it exits, exits 2, writes its report, and the proxy is a
//! clean pass-through again: a query through it is fast and saves reach PostgreSQL.

use crate::support;

use std::time::{Duration, Instant};

use support::{Postgres, Stack};

const EXPERIMENT: &str = r#"
apiVersion: chaos.game-resilience.dev/v1
kind: Experiment
metadata:
  name: e2e-sigterm-during-proxy-fault
  description: A long database latency fault that an operator stops with SIGTERM.
spec:
  target: { backend: local }
  prometheus: { url: "@PROM@" }
  load: { target: "@GAME@", scenarioFile: "@SCENARIO@", players: 20, rate: 40, warmup: 1s }
  steadyState:
    - name: game-server-up
      prometheus: { query: 'up{job="game-server"}', breachWhen: "<", threshold: 1 }
  faults:
    - name: slow-database
      type: proxy-latency
      selector: { proxy: { api: "@ADMIN@", name: postgres } }
      parameters: { latency: 400ms, stream: downstream }
      duration: 5m
  abortWhen:
    - name: game-server-up
      prometheus: { query: 'up{job="game-server"}', breachWhen: "<", threshold: 1 }
  checkInterval: 500ms
  report: { dir: "@REPORT_DIR@", formats: [json, junit, markdown, html] }
"#;

/// How long one `SELECT 1` through the proxy takes, on a fresh connection.
fn query_through(pg: &Postgres, port: u16) -> Duration {
    let url = pg.url_via(port);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async move {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect through the proxy");
        tokio::spawn(connection);
        let start = Instant::now();
        client.simple_query("SELECT 1").await.expect("SELECT 1");
        start.elapsed()
    })
}

#[test]
fn sigterm_during_a_proxy_fault_restores_pass_through_exits_2_and_writes_the_report() {
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

    let run = stack.run(EXPERIMENT);
    support::wait_for(
        Duration::from_secs(60),
        "the latency toxic to go in",
        || proxy.toxics().is_some_and(|t| !t.is_empty()),
    );
    let slow = query_through(pg, proxy.listen_port);
    assert!(
        slow >= Duration::from_millis(380),
        "the fault is live, yet a query through the proxy took only {slow:?}"
    );
    // Let the game server feel it (its save breaker opens), then stop the runner.
    std::thread::sleep(Duration::from_secs(3));
    let stats_before = prometheus
        .query(r#"max_over_time(game_saves_total{result="stored"}[5m])"#)
        .unwrap_or(0.0);
    support::signal(run.child.id(), libc::SIGTERM);
    let signalled = Instant::now();
    let done = run.finish(Duration::from_secs(60));
    let exited_after = signalled.elapsed();
    let report = &done.report;

    assert_eq!(
        done.status.code(),
        Some(2),
        "SIGTERM mid-fault should exit 2; stderr:\n{}",
        done.stderr
    );
    assert_eq!(report["outcome"], "aborted", "{report}");
    assert!(
        report["reason"]
            .as_str()
            .is_some_and(|r| r.contains("SIGTERM")),
        "{report}"
    );
    assert_eq!(report["faults"][0]["reverted"], true, "{report}");
    for file in ["report.json", "junit.xml", "summary.md", "report.html"] {
        assert!(
            done.report_dir.join(file).exists(),
            "{file} was not written"
        );
    }
    // Pass-through is back the moment the runner is gone: no toxic, and a query through
    // the proxy is fast again.
    assert_eq!(
        proxy.toxics(),
        Some(Vec::new()),
        "the toxic was left behind"
    );
    // A toxic still in place would make every query take at least its 400 ms; the fastest
    // of three shows it is gone even while the game server, catching up, keeps the
    // machine busy.
    let fast = (0..3)
        .map(|_| query_through(pg, proxy.listen_port))
        .min()
        .expect("three queries");
    assert!(
        fast < Duration::from_millis(400),
        "a query through the proxy still takes {fast:?} after the revert"
    );
    // The game server recovers: its saves reach PostgreSQL again (breaker closed, queue
    // drained), as Prometheus sees it.
    let url = format!("{}/v1/players/p4242/save", game.url);
    support::wait_for(
        Duration::from_secs(30),
        "a save stored in PostgreSQL",
        || {
            support::put_json(&url, &serde_json::json!({ "after": "sigterm" }))
                .is_some_and(|(status, _, _)| status == 200)
        },
    );
    support::wait_for(Duration::from_secs(30), "the save queue to drain", || {
        game.metric("game_save_queue_depth", &[]) == Some(0.0)
    });
    support::wait_for(
        Duration::from_secs(10),
        "Prometheus to scrape stored saves after the revert",
        || {
            prometheus
                .query(r#"game_saves_total{result="stored"}"#)
                .is_some_and(|v| v > stats_before)
        },
    );
    let stored =
        pg.rows("SELECT player_id, data->>'after' FROM player_saves WHERE player_id = 'p4242'");
    assert_eq!(stored, vec![("p4242".to_owned(), "sigterm".to_owned())]);
    eprintln!(
        "sigterm: query through the proxy {slow:?} during the fault, {fast:?} after; runner exited {exited_after:?} after SIGTERM"
    );
}
