//! `chaos-runner gate` and `gate serve` on real history: 31 days of request counters with
//! known error ratios (budget 41%, 57% and 88% spent, errors only in maintenance, errors
//! only at the peak, a fast burn in the last 90 minutes, no traffic at all), backfilled into
//! a Prometheus TSDB with `promtool tsdb create-blocks-from openmetrics`, read by the real
//! Prometheus. Each figure is checked against a model of the same arithmetic, each decision
//! and exit code, the HTTP answers, and the fail-closed path once Prometheus is gone.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::support::slo_tools::said;
use super::support::{free_port, http_call as call, PrometheusServer, TempDir};

const DAY: i64 = 86_400;
/// Asia/Seoul: UTC+9 all year.
const KST: i64 = 9 * 3600;
/// Requests per minute of every busy service.
const PER_MINUTE: f64 = 1000.0;
/// Every SLO's error budget (99.9%).
const BUDGET: f64 = 0.001;

/// A service of the history: its error ratio at a local weekday (Sunday 0) and minute of
/// the day, `before` minutes before the history's "now" (negative: after it).
struct Service {
    name: &'static str,
    busy: bool,
    ratio: fn(u32, u32, i64) -> f64,
}

/// The weekday of the maintenance (02:00-06:00 Seoul): three days from the test's, so
/// "now" is never in it (nothing burns in maintenance, by design) whenever the test runs.
static MAINTENANCE_DAY: AtomicU32 = AtomicU32::new(2);

fn maintenance_day() -> u32 {
    MAINTENANCE_DAY.load(Ordering::Relaxed)
}

fn in_maintenance(day: u32, minute: u32) -> bool {
    day == maintenance_day() && (120..360).contains(&minute)
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

fn in_peak(minute: u32) -> bool {
    (18 * 60..22 * 60).contains(&minute)
}

fn services() -> Vec<Service> {
    let s = |name, ratio: fn(u32, u32, i64) -> f64| Service {
        name,
        busy: true,
        ratio,
    };
    vec![
        s("forty", |_, _, _| 0.0004),
        s("fifty-five", |_, _, _| 0.00055),
        s("eighty-five", |_, _, _| 0.00085),
        // Half the requests fail, but only in the maintenance: spends nothing.
        s("maintenance", |d, m, _| {
            if in_maintenance(d, m) {
                0.5
            } else {
                0.0001
            }
        }),
        // 45% of the budget unweighted, all of it at the peak, where it counts 1.2 times.
        s("peak-burn", |_, m, _| if in_peak(m) { 0.0027 } else { 0.0 }),
        // 20x the budget's pace for the last 90 minutes: a page alert, little budget.
        s(
            "fast-burn",
            |_, _, before| if before < 90 { 0.02 } else { 0.0001 },
        ),
        Service {
            name: "quiet",
            busy: false,
            ratio: |_, _, _| 0.0,
        },
    ]
}

fn local(t: i64) -> (u32, u32) {
    let l = t + KST;
    // 1970-01-01 was a Thursday.
    let weekday = (l.div_euclid(DAY) + 4).rem_euclid(7) as u32;
    let minute = (l.rem_euclid(DAY) / 60) as u32;
    (weekday, minute)
}

/// The history: one sample a minute from 31 days before `now` to 15 minutes after it (so
/// "now" stays covered while the test runs).
fn write_history(path: &Path, now: i64) {
    let (start, end) = (now - 31 * DAY, now + 15 * 60);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(out, "# TYPE gate_requests counter").unwrap();
    for svc in services() {
        for outcome in ["all", "error"] {
            let mut count = 0.0;
            let mut line = String::new();
            for t in (start..=end).step_by(60) {
                let (day, minute) = local(t);
                if svc.busy {
                    count += match outcome {
                        "all" => PER_MINUTE,
                        _ => PER_MINUTE * (svc.ratio)(day, minute, (now - t) / 60),
                    };
                }
                line.clear();
                writeln!(
                    line,
                    "gate_requests_total{{svc=\"{}\",outcome=\"{outcome}\"}} {count} {t}",
                    svc.name
                )
                .unwrap();
                out.write_all(line.as_bytes()).unwrap();
            }
        }
    }
    writeln!(out, "# EOF").unwrap();
    out.flush().unwrap();
}

/// The SLO set over that history: one SLO per service, and `frozen` (forty's SLI) with a
/// peak-hour freeze.
fn slo_set() -> String {
    let slo = |name: &str, svc: &str, policy: &str| {
        let total =
            format!("sum(rate(gate_requests_total{{svc=\"{svc}\",outcome=\"all\"}}[$window]))");
        let bad =
            format!("sum(rate(gate_requests_total{{svc=\"{svc}\",outcome=\"error\"}}[$window]))");
        format!(
            "    - name: {name}\n      objective: 99.9\n      period: 30d\n{policy}      sli:\n        ratio:\n          good: '{total} - {bad}'\n          total: '{total}'\n"
        )
    };
    let mut text = "apiVersion: chaos.game-resilience.dev/v1\nkind: SLOSet\nmetadata: { name: gate-history }\nspec:\n  calendar:\n    timeZone: Asia/Seoul\n    peak: [{ from: \"18:00\", to: \"22:00\", factor: 1.2 }]\n    maintenance: [{ days: [MAINTENANCE_DAY], from: \"02:00\", to: \"06:00\" }]\n  slos:\n".replace("MAINTENANCE_DAY", WEEKDAYS[maintenance_day() as usize]);
    for svc in services() {
        text.push_str(&slo(svc.name, svc.name, ""));
    }
    text.push_str(&slo("frozen", "forty", "      policy: { freeze: true }\n"));
    text
}

/// The budget spent at `at` as the rules count it, from the same per-minute ratios (the
/// history goes on past `at`, as a live service's would): the mean over the period's
/// 5-minute slices of each slice's error ratio over the budget,
/// times 1.2 when the slice ends at the peak; slices touching maintenance left out.
fn model_spent(svc: &Service, now: i64, at: i64) -> f64 {
    let (mut sum, mut n) = (0.0, 0.0);
    // The slices end at the first 5-minute mark at or after `at`.
    let end = (at + 299).div_euclid(300) * 300;
    for t in (end - 30 * DAY + 300..=end).step_by(300) {
        let touched = (0..=5).any(|k| {
            let (d, m) = local(t - 60 * k);
            in_maintenance(d, m)
        });
        if touched {
            continue;
        }
        let ratio: f64 = (0..5)
            .map(|k| {
                let m = t - 60 * k;
                let (d, minute) = local(m);
                (svc.ratio)(d, minute, (now - m) / 60)
            })
            .sum::<f64>()
            / 5.0;
        let divisor = if in_peak(local(t).1) { 1.2 } else { 1.0 };
        sum += ratio * divisor / BUDGET;
        n += 1.0;
    }
    100.0 * sum / n
}

fn gate(file: &Path, url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chaos-runner"))
        .arg("gate")
        .arg(file)
        .args(["--prometheus", url])
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", said(out)))
}

fn slo<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["slos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no SLO {name} in {report}"))
}

/// An instant `hours` after the last midnight (Seoul) before `now`, at least a day back.
fn seoul_time(now: i64, hour: i64, minute: i64) -> i64 {
    let local_midnight = (now + KST).div_euclid(DAY) * DAY - KST;
    local_midnight - DAY + hour * 3600 + minute * 60
}

struct GateServer {
    child: Child,
    url: String,
}

impl Drop for GateServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(file: &Path, prometheus: &str, token_file: &Path) -> GateServer {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chaos-runner"))
        .args(["gate", "serve"])
        .arg(file)
        .args(["--prometheus", prometheus])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--token-file")
        .arg(token_file)
        .args(["--cache", "1s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    assert!(first.starts_with("gate serving http://"), "{first}");
    GateServer {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

fn flagger_body(slos: &str) -> String {
    format!(
        r#"{{"name":"game-server","namespace":"live","phase":"Progressing","metadata":{{"slos":"{slos}"}}}}"#
    )
}

#[test]
fn the_gate_decides_on_backfilled_history_and_fails_closed_without_prometheus() {
    let dir = TempDir::new("gate-history");
    let now = chrono::Utc::now().timestamp().div_euclid(60) * 60;
    MAINTENANCE_DAY.store((local(now).0 + 3) % 7, Ordering::Relaxed);
    let history = dir.path().join("history.om");
    write_history(&history, now);
    let Some(mut prometheus) = PrometheusServer::start_on_history(&history) else {
        return;
    };
    let file = dir.path().join("slos.yaml");
    std::fs::write(&file, slo_set()).unwrap();
    let url = prometheus.url.clone();

    // The whole set now: the worst SLO decides.
    let out = gate(&file, &url, &["--output", "json"]);
    let report = json_of(&out);
    assert_eq!(out.status.code(), Some(2), "{}", said(&out));
    assert_eq!(report["decision"], "rollback");
    assert_eq!(report["exitCode"], 2);
    assert!(
        report["reason"]
            .as_str()
            .unwrap()
            .starts_with("eighty-five: "),
        "{report}"
    );
    let expected = [
        ("forty", "proceed"),
        ("fifty-five", "pause"),
        ("eighty-five", "rollback"),
        ("maintenance", "proceed"),
        ("peak-burn", "pause"),
        ("fast-burn", "pause"),
        ("quiet", "unknown"),
    ];
    let at = report["at"].as_str().unwrap();
    let at = chrono::DateTime::parse_from_rfc3339(at)
        .unwrap()
        .timestamp();
    for (svc, (name, decision)) in services().iter().zip(expected) {
        let s = slo(&report, name);
        assert_eq!(s["decision"], decision, "{name}: {s}");
        if !svc.busy {
            assert!(s["budgetSpentPercent"].is_null(), "{s}");
            assert!(
                s["reason"].as_str().unwrap().contains("no events over 30d"),
                "{s}"
            );
            continue;
        }
        let spent = s["budgetSpentPercent"].as_f64().unwrap();
        let model = model_spent(svc, now, at);
        assert!(
            (spent - model).abs() < 1.0,
            "{name}: the gate says {spent:.2}% spent, the model {model:.2}%"
        );
    }
    // Errors in maintenance cost nothing; errors at the peak cost 1.2 times.
    let spent = |name| slo(&report, name)["budgetSpentPercent"].as_f64().unwrap();
    assert!(spent("maintenance") < 12.0, "{}", spent("maintenance"));
    let peak = slo(&report, "peak-burn");
    let unweighted = (100.0 - peak["sliPercent"].as_f64().unwrap()) / 100.0 / BUDGET * 100.0;
    assert!(
        unweighted < 50.0 && (spent("peak-burn") / unweighted - 1.2).abs() < 0.02,
        "{unweighted:.1}% unweighted, {:.1}% at the peak's weight",
        spent("peak-burn")
    );
    let fast = slo(&report, "fast-burn");
    assert!(fast["reason"]
        .as_str()
        .unwrap()
        .contains("(page alert at 14.4x)"));
    assert_eq!(fast["alerts"][0]["firing"], true, "{fast}");
    assert!(fast["alerts"][0]["longBurnRate"].as_f64().unwrap() > 14.4);

    // Each decision alone, with its exit code and the table a CI log shows.
    let out = gate(&file, &url, &["--slo", "forty"]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("PROCEED: SLO set gate-history"), "{text}");
    assert!(text.contains("forty: 41."), "{text}");
    assert!(text.contains("SLO    decision  spent"), "{text}");
    assert_eq!(
        gate(&file, &url, &["--slo", "forty,fifty-five"])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        gate(&file, &url, &["--slo", "forty", "--slo", "eighty-five"])
            .status
            .code(),
        Some(2)
    );
    let out = gate(&file, &url, &["--slo", "quiet"]);
    assert_eq!(out.status.code(), Some(4), "{}", said(&out));
    assert!(said(&out).contains("UNKNOWN"), "{}", said(&out));

    // `--at`: three hours ago the fast burn had not started.
    let earlier = (now - 3 * 3600).to_string();
    let out = gate(&file, &url, &["--slo", "fast-burn", "--at", &earlier]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));

    // The freeze: at yesterday's peak (19:00 Seoul) a healthy SLO pauses unless forced;
    // at 10:00 it proceeds.
    let peak = seoul_time(now, 19, 0).to_string();
    let out = gate(
        &file,
        &url,
        &["--slo", "frozen", "--at", &peak, "--output", "json"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    let frozen = json_of(&out);
    assert!(frozen["reason"]
        .as_str()
        .unwrap()
        .starts_with("deploy freeze in peak hours 18:00-22:00 (Asia/Seoul)"));
    assert_eq!(frozen["freeze"]["active"], true);
    let out = gate(&file, &url, &["--slo", "frozen", "--at", &peak, "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    assert!(
        said(&out).contains("overridden by --force"),
        "{}",
        said(&out)
    );
    let morning = seoul_time(now, 10, 0).to_string();
    assert_eq!(
        gate(&file, &url, &["--slo", "frozen", "--at", &morning])
            .status
            .code(),
        Some(0)
    );

    // The same decisions over HTTP.
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-gate-token\n").unwrap();
    let server = start_server(&file, &url, &token_file);
    let token = Some("s3cret-gate-token");
    let base = &server.url;
    let (code, _) = call("GET", &format!("{base}/v1/decision"), None, None);
    assert_eq!(code, 401, "no token");
    let (code, _) = call("GET", &format!("{base}/v1/decision"), Some("wrong"), None);
    assert_eq!(code, 401, "a wrong token");
    let (code, body) = call("GET", &format!("{base}/healthz"), None, None);
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    let (code, body) = call("GET", &format!("{base}/v1/decision"), token, None);
    assert_eq!(code, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        answer["decision"], "rollback",
        "Argo's jsonPath {{$.decision}}"
    );
    let (code, body) = call("GET", &format!("{base}/v1/decision?slo=forty"), token, None);
    assert_eq!(code, 200);
    assert!(body.contains("\"decision\":\"proceed\""), "{body}");
    let (code, body) = call("GET", &format!("{base}/v1/decision?slo=nope"), token, None);
    assert_eq!(code, 400);
    assert!(body.contains("no such SLO"), "{body}");
    let hook = |name: &str, slos: &str| {
        call(
            "POST",
            &format!("{base}/v1/flagger/{name}"),
            token,
            Some(&flagger_body(slos)),
        )
        .0
    };
    assert_eq!(hook("confirm-rollout", "forty"), 200);
    assert_eq!(hook("confirm-promotion", "forty,maintenance"), 200);
    assert_eq!(hook("confirm-rollout", "fifty-five"), 409);
    assert_eq!(hook("confirm-promotion", "eighty-five"), 409);
    assert_eq!(hook("confirm-rollout", "quiet"), 503);
    assert_eq!(
        hook("rollback", "eighty-five"),
        200,
        "rolls the canary back"
    );
    assert_eq!(
        hook("rollback", "fifty-five"),
        409,
        "a pause is no rollback"
    );
    let (code, _) = call(
        "POST",
        &format!("{base}/v1/flagger/confirm-rollout"),
        token,
        Some("{not json"),
    );
    assert_eq!(code, 400);
    let (code, metrics) = call("GET", &format!("{base}/metrics"), token, None);
    assert_eq!(code, 200);
    assert!(
        metrics.contains(
            "chaos_gate_decisions_total{endpoint=\"confirm-rollout\",decision=\"proceed\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "chaos_gate_budget_spent_percent{slo_set=\"gate-history\",slo=\"forty\"} 41."
        ),
        "{metrics}"
    );

    check_examples(base, token);
    check_ci_script(&url, &file);

    // Prometheus gone: unknown, never proceed; the CLI exits 4, the hooks hold.
    prometheus.kill();
    let out = gate(&file, &url, &["--slo", "forty"]);
    assert_eq!(out.status.code(), Some(4), "{}", said(&out));
    assert!(
        said(&out).contains("prometheus unreachable"),
        "{}",
        said(&out)
    );
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(hook("confirm-rollout", "forty"), 503);
    assert_eq!(
        hook("rollback", "forty"),
        409,
        "blind is no reason to roll back"
    );
    let (_, body) = call("GET", &format!("{base}/v1/decision?slo=forty"), token, None);
    assert!(body.contains("\"decision\":\"unknown\""), "{body}");
}

#[test]
fn bad_gate_input_is_refused_with_exit_3() {
    let dir = TempDir::new("gate-input");
    let file = dir.path().join("slos.yaml");
    std::fs::write(&file, slo_set()).unwrap();
    let url = "http://127.0.0.1:9";
    let out = gate(&file, url, &["--slo", "nope"]);
    assert_eq!(out.status.code(), Some(3), "{}", said(&out));
    assert!(
        said(&out).contains("--slo nope: no such SLO"),
        "{}",
        said(&out)
    );
    let out = gate(&file, url, &["--at", "last tuesday"]);
    assert_eq!(out.status.code(), Some(3), "{}", said(&out));
    let out = gate(&file, url, &["--at", "300000000000"]);
    assert_eq!(out.status.code(), Some(3), "{}", said(&out));
    assert!(
        said(&out).contains("outside 1970-01-01 to 9999-12-31"),
        "{}",
        said(&out)
    );
    let out = gate(&file, url, &["--query-timeout", "0s"]);
    assert_eq!(out.status.code(), Some(3), "{}", said(&out));
    assert!(said(&out).contains("must be above zero"), "{}", said(&out));
    let out = gate(&file, "ftp://prometheus", &[]);
    assert_eq!(out.status.code(), Some(3), "{}", said(&out));
    assert!(
        said(&out).contains("must be http or https"),
        "{}",
        said(&out)
    );
    // A policy that rolls back before it pauses, and a freeze without peak hours.
    let broken = slo_set()
        .replace(
            "  slos:\n",
            "  policy: { pauseAt: 90, rollbackAt: 80 }\n  slos:\n",
        )
        .replace(
            "    peak: [{ from: \"18:00\", to: \"22:00\", factor: 1.2 }]\n",
            "",
        );
    std::fs::write(&file, &broken).unwrap();
    let out = gate(&file, url, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", said(&out));
    let text = said(&out);
    assert!(
        text.contains("spec.policy.pauseAt: the set would pause at 90% of the budget spent but roll back at 80%"),
        "{text}"
    );
    assert!(
        text.contains("spec.slos[7].policy.freeze: needs `spec.calendar.peak`"),
        "{text}"
    );
    let port = free_port().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_chaos-runner"))
        .args(["gate", "serve"])
        .arg(&file)
        .args([
            "--prometheus",
            url,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", said(&out));
}

/// The YAML documents of a shipped example under `deploy/gate/`.
fn example(name: &str) -> Vec<serde_yaml::Value> {
    use serde::Deserialize;
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/gate")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde_yaml::Value::deserialize(doc).unwrap())
        .collect()
}

/// The shipped examples call what the server serves, with arguments the CLI takes.
fn check_examples(server: &str, token: Option<&str>) {
    use clap::Parser;
    let cluster = "http://chaos-gate.chaos.svc:9466";
    let parses = |args: &serde_yaml::Value| {
        let args: Vec<String> = args
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().replace("{{args.slos}}", "forty"))
            .collect();
        let parsed = chaos_runner::cli::Cli::try_parse_from(
            std::iter::once("chaos-runner".to_owned()).chain(args.clone()),
        );
        assert!(parsed.is_ok(), "{args:?}: {}", parsed.unwrap_err());
    };
    for doc in example("gate-server.yaml") {
        if doc["kind"] == "Deployment" {
            let container = &doc["spec"]["template"]["spec"]["containers"][0];
            parses(&container["args"]);
            let probe = container["readinessProbe"]["httpGet"]["path"]
                .as_str()
                .unwrap();
            assert_eq!(call("GET", &format!("{server}{probe}"), None, None).0, 200);
        }
    }
    let mut kinds = Vec::new();
    for doc in example("argo-rollouts.yaml") {
        kinds.push(doc["kind"].as_str().unwrap().to_owned());
        if doc["kind"] != "AnalysisTemplate" {
            continue;
        }
        let metric = &doc["spec"]["metrics"][0];
        let provider = &metric["provider"];
        if let Some(web) = provider.get("web") {
            assert_eq!(web["jsonPath"], "{$.decision}");
            assert_eq!(metric["successCondition"], "result == \"proceed\"");
            assert_eq!(metric["failureCondition"], "result == \"rollback\"");
            let url = web["url"]
                .as_str()
                .unwrap()
                .replace(cluster, server)
                .replace("{{args.slos}}", "forty");
            let (code, body) = call("GET", &url, token, None);
            assert_eq!(code, 200, "{url}: {body}");
            let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(answer["decision"], "proceed");
        } else {
            let container = &provider["job"]["spec"]["template"]["spec"]["containers"][0];
            parses(&container["args"]);
        }
    }
    assert_eq!(kinds, ["AnalysisTemplate", "AnalysisTemplate", "Rollout"]);
    let canary = &example("flagger-canary.yaml")[0];
    let hooks = canary["spec"]["analysis"]["webhooks"]
        .as_sequence()
        .unwrap();
    assert_eq!(hooks.len(), 3);
    for hook in hooks {
        let url = hook["url"].as_str().unwrap().replace(cluster, server);
        // The example's own SLOs are the game's; this history has `forty`.
        let mut metadata = hook["metadata"].clone();
        metadata["slos"] = "forty".into();
        let body = serde_json::json!({ "name": "game-server", "namespace": "games", "phase": "Progressing", "metadata": metadata });
        let (code, answer) = call("POST", &url, token, Some(&body.to_string()));
        let expected = if hook["type"] == "rollback" { 409 } else { 200 };
        assert_eq!(
            code,
            expected,
            "{} {url}: {answer}",
            hook["type"].as_str().unwrap()
        );
    }
}

/// The CI step script, run as a pipeline would.
fn check_ci_script(prometheus: &str, file: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/gate/ci/deploy-gate.sh");
    let run = |url: Option<&str>, slo: &str| {
        let mut command = Command::new(&script);
        command
            .arg(file)
            .args(["--slo", slo])
            .env("CHAOS_RUNNER", env!("CARGO_BIN_EXE_chaos-runner"))
            .env_remove("PROMETHEUS_URL")
            .env_remove("PROMETHEUS_TOKEN");
        if let Some(url) = url {
            command.env("PROMETHEUS_URL", url);
        }
        command.output().unwrap()
    };
    let out = run(Some(prometheus), "forty");
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    assert!(
        said(&out).contains("deploy gate: proceed"),
        "{}",
        said(&out)
    );
    let out = run(Some(prometheus), "eighty-five");
    assert_eq!(out.status.code(), Some(2), "{}", said(&out));
    assert!(
        said(&out).contains("deploy gate: rollback"),
        "{}",
        said(&out)
    );
    let out = run(None, "forty");
    assert_eq!(out.status.code(), Some(3), "{}", said(&out));
    assert!(
        said(&out).contains("PROMETHEUS_URL is not set"),
        "{}",
        said(&out)
    );
}
