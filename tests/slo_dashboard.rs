//! End to end: the SLO file's rules and dashboard against a real Prometheus.
//!
//! Real parts: PostgreSQL, the example game server under the runner's load, a standalone
//! proxy before the database, `chaos-runner exporter` over the run's journals, and
//! Prometheus scraping the game server and the exporter while evaluating the rules
//! `chaos-runner slo rules` wrote from the shipped SLO file.
//! Expected: while the fault is live the exporter's series marks the run (the dashboard's
//! "Chaos runs" annotation has data); afterwards every panel query of
//! `chaos-runner slo dashboard` returns data, and every annotation query is valid PromQL.

use crate::support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{
    free_port, wait_for, GameConfig, GameServer, Postgres, Prometheus, Proxy, Run, Service,
};

const EXPERIMENT: &str = r#"
apiVersion: chaos.game-resilience.dev/v1
kind: Experiment
metadata:
  name: e2e-slo-dashboard
  description: A short slow database under load, for the dashboard to show
spec:
  target: { backend: local }
  sloFile: @SLO_FILE@
  prometheus: { url: "@PROM@" }
  load: { target: "@GAME@", scenarioFile: "@SCENARIO@", players: 20, rate: 40, warmup: 2s }
  faults:
    - name: slow-database
      type: proxy-latency
      selector: { proxy: { api: "@ADMIN@", name: postgres } }
      parameters: { latency: 50ms, stream: downstream }
      duration: 8s
  checkInterval: 500ms
  report: { dir: "@REPORT_DIR@", formats: [json] }
"#;

/// Runs `chaos-runner slo SUBCOMMAND slo-file -o out` on the shipped SLO file without its
/// maintenance window (see `support::slo_text_any_hour`).
fn generate(subcommand: &str, out: &Path) {
    let shipped = out.with_file_name("slo.yaml");
    std::fs::write(&shipped, support::slo_text_any_hour()).expect("write the SLO file");
    let done = Command::new(support::binary("chaos-runner"))
        .args(["slo", subcommand])
        .arg(&shipped)
        .arg("-o")
        .arg(out)
        .output()
        .expect("run chaos-runner slo");
    assert!(
        done.status.success(),
        "slo {subcommand}: {}",
        String::from_utf8_lossy(&done.stderr)
    );
}

#[test]
fn every_dashboard_query_returns_data_from_the_rules_and_the_game_server() {
    let _alone = support::alone();
    let Some(pg) = Postgres::start() else {
        return;
    };
    let proxy = Proxy::start("postgres", pg.port);
    let game = GameServer::start(&GameConfig {
        port: free_port(),
        database_url: pg.url_via(proxy.listen_port),
        write_behind: true,
    });
    let files = tempfile::Builder::new()
        .prefix("e2e-slo-files-")
        .tempdir()
        .expect("a temp dir");
    let rules = files.path().join("rules.yaml");
    let dashboard_file = files.path().join("dashboard.json");
    generate("rules", &rules);
    generate("dashboard", &dashboard_file);
    let exporter_port = free_port();
    let game_target = format!("127.0.0.1:{}", game.port);
    let exporter_target = format!("127.0.0.1:{exporter_port}");
    let Some(prometheus) = Prometheus::start_with(
        &[
            ("game-server", game_target.as_str()),
            ("chaos-runner", exporter_target.as_str()),
        ],
        std::slice::from_ref(&rules),
    ) else {
        return;
    };

    let run = Run::start(
        &EXPERIMENT
            .replace("@PROM@", &prometheus.url)
            .replace("@GAME@", &game.url)
            .replace("@SCENARIO@", &support::game_scenario())
            .replace("@ADMIN@", &proxy.admin),
    );
    let mut exporter = Command::new(support::binary("chaos-runner"));
    exporter
        .arg("exporter")
        .arg("--listen")
        .arg(&exporter_target)
        .arg("--state-dir")
        .arg(run.state_dir());
    let _exporter = Service::spawn(exporter, files.path().join("exporter.log"));
    // While the fault is live, the run is on the time axis.
    wait_for(
        Duration::from_secs(30),
        "the run's live fault in Prometheus",
        || {
            prometheus
                .query_all("chaos_runner_faults_live{experiment=\"e2e-slo-dashboard\"} > 0")
                .is_ok_and(|samples| !samples.is_empty())
        },
    );
    let done = run.finish(Duration::from_secs(120));
    assert!(
        matches!(done.status.code(), Some(0 | 1)),
        "the run ended badly; stderr:\n{}",
        done.stderr
    );
    // Reverted: the exporter's series is gone again.
    wait_for(Duration::from_secs(30), "the run's series to go", || {
        prometheus
            .query_all("chaos_runner_faults_live > 0")
            .is_ok_and(|samples| samples.is_empty())
    });

    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&dashboard_file).expect("the dashboard"))
            .expect("the dashboard is JSON");
    let mut panel_queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a target's expr").to_owned();
            panel_queries.push((panel["title"].as_str().unwrap_or("").to_owned(), expr));
        }
    }
    assert!(panel_queries.len() > 30, "{panel_queries:?}");
    // The recorded windows fill within a few evaluations of the last traffic.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let missing = loop {
        let missing: Vec<_> = panel_queries
            .iter()
            .filter(|(_, expr)| prometheus.query_all(expr).map_or(true, |s| s.is_empty()))
            .collect();
        if missing.is_empty() || std::time::Instant::now() > deadline {
            break missing;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        missing.is_empty(),
        "no data from these panels' queries: {missing:#?}"
    );
    for annotation in dashboard["annotations"]["list"]
        .as_array()
        .expect("annotations")
    {
        let Some(expr) = annotation["expr"].as_str() else {
            continue; // Grafana's own
        };
        if let Err(e) = prometheus.query_all(expr) {
            panic!("annotation {}: {expr}: {e}", annotation["name"]);
        }
    }
}
