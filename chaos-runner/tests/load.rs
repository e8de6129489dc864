//! The built-in load generator against a real game server on a real socket (the
//! GAME-API.md routes, with an error share and a latency the test sets): achieved rate,
//! latency in p95, and `load` checks through the real `chaos-runner run`.

#[path = "support/game.rs"]
mod game;
use crate::support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chaos_runner::load::LoadGenerator;
use chaos_runner::spec::scenario::LoadPlan;
use chaos_runner::spec::{LoadSli, LoadSpec};
use game::GameServer;
use support::{hogs, start_run, wait_for, TempDir};

/// The shipped scenario of the example game server's API.
fn game_scenario() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/load/game-api.yaml")
}

fn spec(url: &str, rate: u32) -> LoadPlan {
    let spec = LoadSpec {
        target: url.to_owned(),
        allow_remote: false,
        players: 50,
        rate: Some(rate),
        scenario: None,
        scenario_file: None,
        websocket: None,
        timeout: Duration::from_secs(2),
        warmup: Duration::ZERO,
        seed: Some(42),
    };
    LoadPlan {
        spec,
        scenario: Some(std::sync::Arc::new(
            chaos_runner::spec::load_scenario(&game_scenario()).unwrap(),
        )),
        websocket: None,
    }
}

#[test]
fn achieved_rate_is_within_ten_percent_and_every_journey_step_runs() {
    let server = GameServer::start();
    let started = Instant::now();
    let mut load =
        LoadGenerator::start(&spec(&server.url, 200), started, Duration::from_secs(10)).unwrap();
    let stats = load.stats();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        stats.sli(LoadSli::Availability, None, None, Duration::from_secs(10)),
        Some(1.0)
    );
    assert_eq!(
        stats.sli(
            LoadSli::Availability,
            None,
            Some("matchmaking"),
            Duration::from_secs(10)
        ),
        Some(1.0)
    );
    let report = load.stop();
    let served = server.requests();
    let rate = served as f64 / (report.duration_ms as f64 / 1000.0);
    eprintln!(
        "load at 200/s: the server saw {rate:.1}/s, the generator reports {:.1}/s",
        report.achieved_rate
    );
    // Open loop: a call sent late is still sent, so the rate holds over the run; the
    // bounds leave room for a busy machine to lose the last moments of the run.
    assert!(
        (160.0..=240.0).contains(&rate),
        "server saw {served} requests in {} ms: {rate:.1}/s",
        report.duration_ms
    );
    assert!(
        (160.0..=240.0).contains(&report.achieved_rate),
        "{}",
        report.achieved_rate
    );
    let all = report.totals.last().unwrap();
    assert_eq!(all.operation, "all");
    assert_eq!(all.count, served, "every request the server saw is counted");
    assert_eq!(all.errors, 0);
    for op in [
        "queue",
        "pollTicket",
        "join",
        "leave",
        "saveWrite",
        "saveRead",
    ] {
        let row = report.totals.iter().find(|t| t.operation == op);
        assert!(
            row.is_some_and(|r| r.success > 0),
            "no successful {op}: {:?}",
            report.totals
        );
    }
    assert!(report.timeline.len() >= 4, "{:?}", report.timeline);
}

#[test]
fn injected_latency_shows_in_p95_from_the_scheduled_time() {
    let server = GameServer::start();
    let mut load = LoadGenerator::start(
        &spec(&server.url, 100),
        Instant::now(),
        Duration::from_secs(10),
    )
    .unwrap();
    let stats = load.stats();
    std::thread::sleep(Duration::from_millis(2500));
    let before = stats
        .sli(LoadSli::LatencyP95, None, None, Duration::from_secs(2))
        .unwrap();
    server.set_latency(Duration::from_millis(200));
    std::thread::sleep(Duration::from_millis(3500));
    let after = stats
        .sli(LoadSli::LatencyP95, None, None, Duration::from_secs(2))
        .unwrap();
    eprintln!("p95 {before} ms healthy, {after} ms with 200 ms injected");
    // The injected latency shows in full (every call takes at least 200 ms), on top of
    // whatever the healthy p95 was; the healthy figure itself is the machine's.
    assert!(after >= 200.0, "p95 with 200 ms injected: {after} ms");
    assert!(
        after - before >= 150.0,
        "p95 rose only from {before} ms to {after} ms with 200 ms injected"
    );
    assert!(after < 2_000.0, "p95 with 200 ms injected: {after} ms");
    // 100/s at 200 ms each needs ~20 of 50 players: no overflow beyond what a stalled
    // moment of a busy machine can cause.
    let report = load.stop();
    let all = report.totals.last().unwrap();
    assert!(
        all.overflow * 100 <= all.count,
        "{} of {} calls overflowed",
        all.overflow,
        all.count
    );
}

/// The game server's session list, `rate` calls per second by `players` players, each
/// call timing out after `timeout`.
fn sessions_plan(url: &str, rate: u32, players: u32, timeout: &str) -> LoadPlan {
    let spec: LoadSpec = serde_json::from_value(serde_json::json!({
        "target": url, "rate": rate, "players": players, "timeout": timeout, "seed": 3,
        "scenario": { "operations": { "sessions": { "path": "/v1/sessions", "weight": 1 } } },
    }))
    .unwrap();
    LoadPlan::from_spec(spec).unwrap()
}

#[test]
fn calls_past_their_timeout_fail_calls_due_with_every_player_busy_overflow_and_players_recover() {
    let server = GameServer::start();
    server.set_latency(Duration::from_secs(5));
    // 2 players each held 300 ms by a timeout take at most ~7 of the 20 calls due each
    // second: the rest overflow.
    let mut load = LoadGenerator::start(
        &sessions_plan(&server.url, 20, 2, "300ms"),
        Instant::now(),
        Duration::from_secs(10),
    )
    .unwrap();
    let stats = load.stats();
    let window = Duration::from_secs(1);
    wait_for(Duration::from_secs(10), "calls to fail", || {
        stats.sli(LoadSli::ErrorRate, None, None, window) == Some(1.0)
    });
    // Without the delay the players answer again, on connections opened anew (a timeout
    // closes the one it abandoned half way).
    server.set_latency(Duration::ZERO);
    wait_for(Duration::from_secs(20), "calls to succeed again", || {
        stats.sli(LoadSli::Availability, None, None, window) == Some(1.0)
    });
    let report = load.stop();
    let all = report.totals.last().unwrap();
    let timed_out = all.errors - all.overflow;
    assert!(timed_out >= 2, "calls timed out: {all:?}");
    assert!(all.overflow >= 1, "calls overflowed: {all:?}");
    assert!(all.success >= 1, "calls answered: {all:?}");
    assert_eq!(
        all.count,
        all.success + all.errors + all.rate_limited,
        "{all:?}"
    );
}

/// A server on its own thread: `/fast` answers at once, `/hang` never does.
fn fast_and_hanging_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let app = axum::Router::new()
                .route("/fast", axum::routing::get(|| async { "ok" }))
                .route(
                    "/hang",
                    axum::routing::get(|| async {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        "late"
                    }),
                );
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    url
}

#[test]
fn a_short_timeout_after_a_long_one_still_ends_its_call_in_time() {
    let url = fast_and_hanging_server();
    // One player walks `fast` (timeout 30 s, answered at once) then `hang` (timeout
    // 300 ms, never answered): each `hang` must end after 300 ms, not when the 30 s of
    // the call before would have.
    let spec: LoadSpec = serde_json::from_value(serde_json::json!({
        "target": url, "rate": 10, "players": 1, "seed": 1,
        "scenario": {
            "operations": {
                "fast": { "path": "/fast", "timeout": "30s" },
                "hang": { "path": "/hang", "timeout": "300ms" }
            },
            "flows": { "walk": { "steps": [ { "call": "fast" }, { "call": "hang" } ] } }
        }
    }))
    .unwrap();
    let plan = LoadPlan::from_spec(spec).unwrap();
    let mut load = LoadGenerator::start(&plan, Instant::now(), Duration::from_secs(10)).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let report = load.stop();
    let hang = report
        .totals
        .iter()
        .find(|t| t.operation == "hang")
        .unwrap();
    // ~3 walks a second for 3 s; with the 30 s deadline kept, at most one would end.
    assert!(hang.errors >= 3 && hang.success == 0, "{hang:?}");
}

#[test]
fn a_429_is_rate_limited_not_an_error() {
    let server = GameServer::start();
    server.set_rate_limited_share(0.2);
    let mut load = LoadGenerator::start(
        &spec(&server.url, 100),
        Instant::now(),
        Duration::from_secs(10),
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let stats = load.stats();
    assert_eq!(
        stats.sli(LoadSli::ErrorRate, None, None, Duration::from_secs(10)),
        Some(0.0)
    );
    let report = load.stop();
    let all = report.totals.last().unwrap();
    let share = all.rate_limited as f64 / all.count as f64;
    assert!((0.15..=0.25).contains(&share), "{share}");
}

fn experiment(dir: &Path, target: &str, fault: &str, duration: &str, checks: &str) -> PathBuf {
    let path = dir.join("experiment.yaml");
    std::fs::write(
        &path,
        format!(
            r#"apiVersion: chaos.game-resilience.dev/v1
kind: Experiment
metadata:
  name: load-{fault}
  description: the game keeps serving players while the host is a little busy
spec:
  target: {{ backend: local }}
  load:
    target: "{target}"
    scenarioFile: "{scenario}"
    players: 50
    rate: 100
    timeout: 1s
    warmup: 2s
    seed: 7
{checks}
  faults:
    - name: {fault}
      type: cpu-hog
      selector: {{ host: localhost }}
      parameters: {{ workers: 1, load: 10 }}
      duration: {duration}
  checkInterval: 500ms
  report:
    dir: {}
    formats: [json, junit, markdown, html]
"#,
            dir.join("reports").display(),
            scenario = game_scenario().display(),
        ),
    )
    .unwrap();
    path
}

fn report_of(stdout: &[u8]) -> (serde_json::Value, serde_json::Value) {
    let summary: serde_json::Value = serde_json::from_slice(stdout).unwrap();
    let path = summary["reports"][0].as_str().unwrap();
    let report = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    (summary, report)
}

#[test]
fn steady_state_load_checks_pass_on_a_healthy_server() {
    let server = GameServer::start();
    let dir = TempDir::new("load-steady");
    let exp = experiment(
        dir.path(),
        &server.url,
        "hog-load-steady",
        "3s",
        r#"  steadyState:
    - name: players-served
      load: { sli: availability, window: 2s, breachWhen: "<", threshold: 0.99 }
    - name: saves-fast
      load: { sli: latencyP95, operation: saveWrite, window: 2s, breachWhen: ">", threshold: 500 }
  abortWhen:
    - name: errors
      load: { sli: errorRate, window: 2s, breachWhen: ">", threshold: 0.05 }"#,
    );
    let out = start_run(&exp, &dir.path().join("state"))
        .wait_with_output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, report) = report_of(&out.stdout);
    let timeline = report["timeline"].as_array().unwrap();
    for phase in ["preflight", "after"] {
        let seen = timeline
            .iter()
            .find(|o| o["check"] == "players-served" && o["phase"] == phase)
            .unwrap_or_else(|| panic!("no {phase} check: {report}"));
        assert_eq!(seen["verdict"], "ok");
        assert_eq!(seen["value"], 1.0);
    }
    assert!(timeline
        .iter()
        .any(|o| o["check"] == "errors" && o["phase"] == "hold"));
    let load = &report["load"];
    let all = load["totals"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(all["operation"], "all");
    assert_eq!(all["errors"], 0);
    assert!(all["count"].as_u64().unwrap() >= 400, "{all}");
    assert!(all["p95_ms"].as_f64().is_some());
    assert!(load["timeline"].as_array().unwrap().len() >= 5);
    let (summary, _) = report_of(&out.stdout);
    let md = std::fs::read_to_string(summary["reports"][2].as_str().unwrap()).unwrap();
    assert!(md.contains("Load (client side)"), "{md}");
    assert!(hogs("hog-load-steady").is_empty());
}

#[test]
fn an_error_rate_breach_aborts_the_run_with_exit_2() {
    let server = GameServer::start();
    let dir = TempDir::new("load-abort");
    let exp = experiment(
        dir.path(),
        &server.url,
        "hog-load-abort",
        "60s",
        r#"  abortWhen:
    - name: too-many-errors
      load: { sli: errorRate, window: 2s, breachWhen: ">", threshold: 0.05 }
      for: 2"#,
    );
    let runner = start_run(&exp, &dir.path().join("state"));
    wait_for(Duration::from_secs(15), "the hog to start", || {
        !hogs("hog-load-abort").is_empty()
    });
    std::thread::sleep(Duration::from_secs(1));
    server.set_error_share(0.3);
    let broke = Instant::now();
    wait_for(Duration::from_secs(10), "the hog to stop", || {
        hogs("hog-load-abort").is_empty()
    });
    let lag = broke.elapsed();
    // Two breaches in a row at a 500 ms interval, each needing the 2 s window to pass 5%.
    assert!(
        lag < Duration::from_secs(4),
        "aborted {lag:?} after the errors began"
    );
    let out = runner.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (summary, report) = report_of(&out.stdout);
    assert!(
        summary["reason"]
            .as_str()
            .unwrap()
            .contains("too-many-errors"),
        "{summary}"
    );
    assert_eq!(report["faults"][0]["reverted"], true);
    // The HTML report: the verdict first, each check before/during/after, a chart per
    // check with the fault window shaded and the abort marked; one file, nothing fetched.
    let page = PathBuf::from(summary["reports"][3].as_str().unwrap());
    let html = std::fs::read_to_string(&page).unwrap();
    let verdict = html
        .find("class=\"verdict fail\">aborted<")
        .expect("the verdict");
    let table = html
        .find("Checks before, during and after")
        .expect("the check table");
    assert!(verdict < table, "the verdict comes first");
    assert!(html.contains("<h3>too-many-errors <span"), "{html}");
    for text in ["abort", "seconds since the run started", "threshold 0.05"] {
        assert!(html.contains(text), "{text} in the charts");
    }
    assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("url("));
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    // Headless Chromium renders it: no console message, every chart in the page.
    if let Some(rendered) = support::chromium(&page, dir.path(), 1000, 2400) {
        assert!(rendered.console.is_empty(), "{:?}", rendered.console);
        assert!(rendered.png.starts_with(b"\x89PNG") && rendered.png.len() > 20_000);
        let charts = html.matches("<svg").count();
        assert!(charts >= 8, "{charts} charts");
        assert_eq!(
            rendered.dom.matches("<svg").count(),
            charts,
            "the charts in the DOM"
        );
        assert!(rendered.dom.contains("Load (what the players saw)"));
    }
    assert!(report["aborted_at_ms"].as_u64().is_some(), "{report}");
    let slices = report["load"]["timeline"].as_array().unwrap();
    assert!(
        slices.iter().any(|s| s["errors"].as_u64().unwrap() > 0),
        "{slices:?}"
    );
}
