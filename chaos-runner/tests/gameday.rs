//! `chaos-runner gameday`: `plan` and `run` at chosen instants (peak hours, maintenance,
//! too late, budget low, budget fine, a run that reaches the peak, another run holding the
//! lock) against the real Prometheus on backfilled history; the history and its report in
//! headless Chromium; the generated CronJobs read back as the Kubernetes types and the
//! generated systemd units checked by `systemd-analyze verify` and `calendar`; bad files.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::support::slo_tools::said;
use super::support::{chromium, hogs, PrometheusServer, TempDir};

const DAY: i64 = 86_400;
/// Asia/Seoul: UTC+9 all year.
const KST: i64 = 9 * 3600;

fn runner(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chaos-runner"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", said(out)))
}

fn rfc(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339()
}

/// The last instant before `now` (at least `before` seconds before it) that is `hh:mm` in
/// Seoul, on a local weekday `day` (Sunday 0) if given.
fn last_seoul(now: i64, before: i64, day: Option<i64>, hh: i64, mm: i64) -> i64 {
    let mut t = (now + KST).div_euclid(DAY) * DAY - KST + hh * 3600 + mm * 60;
    while t > now - before
        || day.is_some_and(|d| ((t + KST).div_euclid(DAY) + 4).rem_euclid(7) != d)
    {
        t -= DAY;
    }
    t
}

/// Three days of one-minute request counters for two services: `fine` fails 0.02% of
/// requests (a fifth of a 99.9% budget), `low` 0.08% (four fifths).
fn write_history(path: &Path, now: i64) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(out, "# TYPE gd_requests counter").unwrap();
    for (svc, ratio) in [("fine", 0.0002), ("low", 0.0008)] {
        for outcome in ["all", "error"] {
            let mut count = 0.0;
            for t in (now - 3 * DAY..=now + 900).step_by(60) {
                count += if outcome == "all" {
                    1000.0
                } else {
                    1000.0 * ratio
                };
                writeln!(
                    out,
                    "gd_requests_total{{svc=\"{svc}\",outcome=\"{outcome}\"}} {count} {t}"
                )
                .unwrap();
            }
        }
    }
    writeln!(out, "# EOF").unwrap();
    out.flush().unwrap();
}

fn slo_file(dir: &Path) -> PathBuf {
    let slo = |name: &str| {
        let total =
            format!("sum(rate(gd_requests_total{{svc=\"{name}\",outcome=\"all\"}}[$window]))");
        let bad =
            format!("sum(rate(gd_requests_total{{svc=\"{name}\",outcome=\"error\"}}[$window]))");
        format!(
            "    - name: {name}\n      objective: 99.9\n      period: 1d\n      sli:\n        ratio:\n          good: '{total} - {bad}'\n          total: '{total}'\n"
        )
    };
    let path = dir.join("slos.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: chaos.game-resilience.dev/v1\nkind: SLOSet\nmetadata: {{ name: gd }}\nspec:\n  calendar:\n    timeZone: Asia/Seoul\n    peak: [{{ from: \"18:00\", to: \"22:00\", factor: 1.2 }}]\n    maintenance: [{{ days: [tuesday], from: \"02:00\", to: \"06:00\" }}]\n  slos:\n{}{}",
            slo("fine"),
            slo("low")
        ),
    )
    .unwrap();
    path
}

/// A local experiment: a CPU hog named `fault` for `duration`.
fn experiment(dir: &Path, fault: &str, duration: &str) -> PathBuf {
    let path = dir.join(format!("{fault}.yaml"));
    std::fs::write(
        &path,
        format!(
            "apiVersion: chaos.game-resilience.dev/v1\nkind: Experiment\nmetadata: {{ name: {fault} }}\nspec:\n  target: {{ backend: local }}\n  faults:\n    - name: {fault}\n      type: cpu-hog\n      selector: {{ host: localhost }}\n      parameters: {{ workers: 1, load: 10 }}\n      duration: {duration}\n  report:\n    dir: {}\n",
            dir.join("reports").display()
        ),
    )
    .unwrap();
    path
}

/// A webhook receiver on a free port: each request's body, in arrival order.
fn webhook() -> (String, std::sync::mpsc::Receiver<serde_json::Value>) {
    use std::io::{BufRead, BufReader, Read};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = tx.send(serde_json::from_slice(&body).unwrap_or_default());
        }
    });
    (url, rx)
}

fn gameday_file(dir: &Path, prometheus: &str, entries: &str) -> PathBuf {
    let path = dir.join("gameday.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: chaos.game-resilience.dev/v1\nkind: GameDay\nmetadata: {{ name: test }}\nspec:\n  sloFile: slos.yaml\n  prometheus: {{ url: \"{prometheus}\", timeout: 20s }}\n  budget: {{ minRemainingPercent: 50 }}\n  history: {}\n  notify: {{ webhookEnv: GD_TEST_WEBHOOK }}\n  entries:\n{entries}",
            dir.join("history").display()
        ),
    )
    .unwrap();
    path
}

fn run_at(
    file: &Path,
    state: &Path,
    entry: &str,
    now: i64,
    hook: &str,
) -> (Output, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_chaos-runner"))
        .env("GD_TEST_WEBHOOK", hook)
        .args([
            "--output",
            "json",
            "gameday",
            "run",
            file.to_str().unwrap(),
            "--entry",
            entry,
            "--now",
            &rfc(now),
            "--state-dir",
            state.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let json = json_of(&out);
    (out, json)
}

#[test]
fn plan_and_run_follow_peak_hours_maintenance_and_the_budget() {
    let dir = TempDir::new("gameday");
    let now = chrono::Utc::now().timestamp().div_euclid(60) * 60;
    let history = dir.path().join("history.om");
    write_history(&history, now);
    let Some(prometheus) = PrometheusServer::start_on_history(&history) else {
        return;
    };
    slo_file(dir.path());
    experiment(dir.path(), "gd-short", "2s");
    experiment(dir.path(), "gd-three", "3s");
    let file = gameday_file(
        dir.path(),
        &prometheus.url,
        "    - { name: fine, experiment: gd-short.yaml, schedule: \"* * * * *\", slos: [fine] }\n\
         \x20   - { name: low, experiment: gd-short.yaml, schedule: \"* * * * *\", slos: [low] }\n\
         \x20   - { name: tight, experiment: gd-three.yaml, schedule: \"* * * * *\", slos: [fine], maxDuration: 3s }\n\
         \x20   - { name: daily, experiment: gd-short.yaml, schedule: \"0 11 * * *\", slos: [fine] }\n\
         \x20   - { name: evening, experiment: gd-short.yaml, schedule: \"58 17 * * *\", slos: [fine], maxDuration: 5m }\n",
    );
    let state = dir.path().join("state");
    let (hook, posted) = webhook();
    let eleven = last_seoul(now, 3600, None, 11, 0);

    // The plan of a week from 11:00, budgets read then: each entry's first slot.
    let plan_file = dir.path().join("plan.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let head = &text[..text.find("  entries:").unwrap()];
    std::fs::write(
        &plan_file,
        head.replace("name: test", "name: plan")
            + "  entries:\n\
             \x20   - { name: daily, experiment: gd-short.yaml, schedule: \"0 11 * * *\", slos: [fine] }\n\
             \x20   - { name: evening, experiment: gd-short.yaml, schedule: \"58 17 * * *\", slos: [fine], maxDuration: 5m }\n\
             \x20   - { name: peak, experiment: gd-short.yaml, schedule: \"0 19 * * *\", slos: [fine] }\n\
             \x20   - { name: maintenance, experiment: gd-short.yaml, schedule: \"30 3 * * tue\", slos: [fine] }\n\
             \x20   - { name: low, experiment: gd-short.yaml, schedule: \"0 12 * * *\", slos: [low] }\n",
    )
    .unwrap();
    let plan = runner(&[
        "--output",
        "json",
        "gameday",
        "plan",
        plan_file.to_str().unwrap(),
        "--from",
        &rfc(eleven - 30),
        "--to",
        &rfc(eleven + 7 * DAY),
    ]);
    assert_eq!(plan.status.code(), Some(0), "{}", said(&plan));
    let plan = json_of(&plan);
    let budget = plan["budget"].as_array().unwrap();
    let left = |slo: &str| {
        budget.iter().find(|b| b["slo"] == slo).unwrap()["leftPercent"]
            .as_f64()
            .unwrap()
    };
    // A fifth and four fifths of the budget, the peak's minutes counting 1.2 times.
    assert!(
        (70.0..85.0).contains(&left("fine")) && (5.0..25.0).contains(&left("low")),
        "{budget:?}"
    );
    let slots = plan["slots"].as_array().unwrap();
    assert_eq!(
        slots.len(),
        7 * 4 + 1,
        "seven days of four daily entries and one Tuesday"
    );
    let first = |entry: &str| {
        slots
            .iter()
            .find(|s| s["entry"] == entry)
            .unwrap_or_else(|| panic!("no {entry} slot"))
    };
    assert_eq!(first("daily")["action"], "run", "{}", first("daily"));
    assert_eq!(
        first("daily")["local"].as_str().unwrap().get(11..16),
        Some("11:00")
    );
    assert_eq!(
        first("evening")["skip"]["kind"],
        "overrun",
        "{}",
        first("evening")
    );
    assert!(first("evening")["reason"]
        .as_str()
        .unwrap()
        .contains("peak hours 18:00-22:00"));
    assert_eq!(
        first("peak")["skip"]["kind"],
        "blackout",
        "{}",
        first("peak")
    );
    assert_eq!(
        first("maintenance")["skip"]["kind"],
        "maintenance",
        "{}",
        first("maintenance")
    );
    assert_eq!(first("low")["skip"]["kind"], "budget", "{}", first("low"));
    let text_plan = runner(&[
        "gameday",
        "plan",
        plan_file.to_str().unwrap(),
        "--from",
        &rfc(eleven - 30),
        "--to",
        &rfc(eleven + DAY),
    ]);
    let shown = String::from_utf8_lossy(&text_plan.stdout);
    // Only the daily 11:00 slot runs that day.
    assert!(
        shown.contains("\n1 of ") && shown.contains("skip  overrun: would run into peak hours"),
        "{shown}"
    );

    // Runs at chosen instants.
    let (out, r) = run_at(
        &file,
        &state,
        "fine",
        last_seoul(now, 0, None, 19, 0),
        &hook,
    );
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    assert_eq!(
        (r["action"].as_str(), r["skip"].as_str()),
        (Some("skip"), Some("blackout")),
        "{r}"
    );
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("peak hours 18:00-22:00"),
        "{r}"
    );

    let (_, r) = run_at(
        &file,
        &state,
        "fine",
        last_seoul(now, 0, Some(2), 3, 0),
        &hook,
    );
    assert_eq!(r["skip"], "maintenance", "{r}");

    let (_, r) = run_at(&file, &state, "daily", eleven + 1800, &hook);
    assert_eq!(r["skip"], "late", "{r}");

    let (out, r) = run_at(&file, &state, "low", eleven, &hook);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    assert_eq!(r["skip"], "budget", "{r}");
    let low = r["budgetBefore"]["low"].as_f64().unwrap();
    assert!((5.0..25.0).contains(&low), "{r}");
    assert!(
        hogs("gd-short").is_empty(),
        "a skipped slot injected nothing"
    );

    // Another GameDay run holds the lock.
    let lock = chaos_runner::gameday::lock::GameDayLock::take(&state).unwrap();
    let (_, r) = run_at(&file, &state, "fine", eleven, &hook);
    assert_eq!(r["skip"], "busy", "{r}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("pid {}", std::process::id())),
        "{r}"
    );
    drop(lock);

    // Budget fine, office hours: it runs, passes, and its reports are linked.
    let (out, r) = run_at(&file, &state, "fine", eleven, &hook);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    assert_eq!(
        (r["action"].as_str(), r["verdict"].as_str()),
        (Some("run"), Some("passed")),
        "{r}"
    );
    assert!(
        (r["budgetBefore"]["fine"].as_f64().unwrap() - 80.0).abs() < 3.0,
        "{r}"
    );
    assert!(r["budgetAfter"]["fine"].as_f64().is_some(), "{r}");
    let reports: Vec<&str> = r["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        reports.iter().any(|p| p.ends_with(".json"))
            && reports.iter().all(|p| Path::new(p).exists()),
        "{r}"
    );

    // Started three seconds before the peak with a three-second fault: the peak stops it.
    let (out, r) = run_at(
        &file,
        &state,
        "tight",
        last_seoul(now, 0, None, 18, 0) - 3,
        &hook,
    );
    assert_eq!(out.status.code(), Some(2), "{}", said(&out));
    assert_eq!(r["verdict"], "aborted", "{r}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("reached the window peak hours 18:00-22:00"),
        "{r}"
    );
    assert!(hogs("gd-three").is_empty(), "the hog outlived the run");

    // The history holds every decision, in order; the report shows them.
    let text = std::fs::read_to_string(dir.path().join("history/test.jsonl")).unwrap();
    let kinds: Vec<String> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["skip"]
                .as_str()
                .or(v["verdict"].as_str())
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "blackout",
            "maintenance",
            "late",
            "budget",
            "busy",
            "passed",
            "aborted"
        ]
    );
    // The webhook was told of each, with a line for people.
    let told: Vec<serde_json::Value> = (0..7)
        .map(|_| {
            posted
                .recv_timeout(std::time::Duration::from_secs(10))
                .expect("a webhook post")
        })
        .collect();
    assert_eq!(told[0]["record"]["skip"], "blackout", "{:?}", told[0]);
    let line = told[5]["text"].as_str().unwrap();
    assert!(line.contains("fine") && line.contains("passed"), "{line}");

    let out = runner(&[
        "--output",
        "json",
        "gameday",
        "report",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    // The daily 11:00 slot was only called half an hour late: no record covers it.
    let missed = json_of(&out)["missedSlots"].clone();
    assert!(
        missed
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["entry"] == "daily" && m["slot"] == rfc(eleven)),
        "{missed}"
    );
    let page = dir.path().join("history/test.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("skipped: maintenance") && html.contains("reached the window peak hours"),
        "{html}"
    );
    let md = std::fs::read_to_string(dir.path().join("history/test.md")).unwrap();
    assert_eq!(
        md.lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| When"))
            .count(),
        7,
        "{md}"
    );
    if let Some(rendered) = chromium(&page, dir.path(), 1280, 900) {
        assert!(rendered.png.len() > 10_000, "a blank screenshot");
        assert!(rendered.console.is_empty(), "{:?}", rendered.console);
        assert!(
            rendered.dom.contains("class=\"chip passed\""),
            "{}",
            rendered.dom
        );
    }
}

#[test]
fn install_writes_cronjobs_and_systemd_units_their_tools_accept() {
    use k8s_openapi::api::batch::v1::CronJob;
    use k8s_openapi::api::core::v1::ConfigMap;
    let dir = TempDir::new("gameday-install");
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../experiments/gamedays");

    // Kubernetes: the shipped weekly GameDay.
    let out_dir = dir.path().join("k8s");
    let out = runner(&[
        "gameday",
        "install",
        &format!("{root}/weekly.yaml"),
        "--kubernetes",
        "--dir",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    let text = std::fs::read_to_string(out_dir.join("cronjobs.yaml")).unwrap();
    let jobs: Vec<CronJob> = chaos_runner::spec::yaml_documents(&text).unwrap();
    assert_eq!(jobs.len(), 3);
    let config: ConfigMap = chaos_runner::spec::yaml_documents(
        &std::fs::read_to_string(out_dir.join("configmap.yaml")).unwrap(),
    )
    .unwrap()
    .remove(0);
    let data = config.data.unwrap();
    for job in &jobs {
        let spec = job.spec.as_ref().unwrap();
        assert_eq!(spec.time_zone.as_deref(), Some("Asia/Seoul"));
        assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"));
        assert_eq!(spec.starting_deadline_seconds, Some(300));
        let pod = spec
            .job_template
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap();
        let args = pod.containers[0].args.clone().unwrap();
        assert_eq!(
            &args[..4],
            [
                "--output=json",
                "gameday",
                "run",
                "/gameday/gamedays/weekly.yaml"
            ]
        );
        // Every file the run reads is in the volume, at its relative path.
        let items = pod.volumes.as_ref().unwrap()[0]
            .config_map
            .as_ref()
            .unwrap()
            .items
            .clone()
            .unwrap();
        for path in [
            "gamedays/weekly.yaml",
            "slo/game-services.yaml",
            "kubernetes/game-server-pod-kill.yaml",
        ] {
            let item = items
                .iter()
                .find(|i| i.path == path)
                .unwrap_or_else(|| panic!("{path} missing"));
            assert!(data.contains_key(&item.key));
        }
    }
    assert_eq!(jobs[0].spec.as_ref().unwrap().schedule, "0 14 * * wed");
    let rbac = std::fs::read_to_string(out_dir.join("rbac.yaml")).unwrap();
    let bindings: Vec<k8s_openapi::api::rbac::v1::RoleBinding> =
        chaos_runner::spec::yaml_documents::<serde_json::Value>(&rbac)
            .unwrap()
            .into_iter()
            .filter(|d| d["kind"] == "RoleBinding")
            .map(|d| serde_json::from_value(d).unwrap())
            .collect();
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0].metadata.namespace.as_deref(), Some("games"));

    // A local experiment cannot be a CronJob.
    let out = runner(&[
        "gameday",
        "install",
        &format!("{root}/staging.yaml"),
        "--kubernetes",
        "--dir",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", said(&out));
    assert!(said(&out).contains("--systemd"), "{}", said(&out));

    // systemd: schedules of every shape, each checked against systemd's own calendar.
    let exp = experiment(dir.path(), "gd-unit", "2s");
    let _ = exp;
    slo_file(dir.path());
    let file = dir.path().join("units.yaml");
    std::fs::write(
        &file,
        "apiVersion: chaos.game-resilience.dev/v1\nkind: GameDay\nmetadata: { name: units }\nspec:\n  sloFile: slos.yaml\n  entries:\n\
         \x20   - { name: weekdays, experiment: gd-unit.yaml, schedule: \"0 14 * * mon-fri\" }\n\
         \x20   - { name: steps, experiment: gd-unit.yaml, schedule: \"*/20 10-16/3 * * *\" }\n\
         \x20   - { name: either, experiment: gd-unit.yaml, schedule: \"30 9 1,15 * sat\" }\n\
         \x20   - { name: spring, experiment: gd-unit.yaml, schedule: \"0 0 * mar-may sun\" }\n",
    )
    .unwrap();
    let units = dir.path().join("units");
    let out = runner(&[
        "gameday",
        "install",
        file.to_str().unwrap(),
        "--systemd",
        "--dir",
        units.to_str().unwrap(),
        "--workdir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    let Some(analyze) = systemd_analyze() else {
        return;
    };
    let mut all: Vec<PathBuf> = std::fs::read_dir(&units)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    all.sort();
    assert_eq!(all.len(), 8);
    let verify = Command::new(analyze)
        .arg("verify")
        .args(&all)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "systemd-analyze verify: {}",
        said(&verify)
    );

    // The next five times systemd would start each timer are the plan's next five slots.
    let from = chrono::Utc::now().timestamp();
    let plan = json_of(&runner(&[
        "--output",
        "json",
        "gameday",
        "plan",
        file.to_str().unwrap(),
        "--from",
        &rfc(from),
        "--to",
        &rfc(from + 360 * DAY),
    ]));
    for entry in ["weekdays", "steps", "either", "spring"] {
        let timer =
            std::fs::read_to_string(units.join(format!("chaos-gameday-units-{entry}.timer")))
                .unwrap();
        let mut next: Vec<String> = Vec::new();
        for line in timer.lines().filter_map(|l| l.strip_prefix("OnCalendar=")) {
            let out = Command::new(analyze)
                .args(["calendar", "--iterations=5", line])
                .env("TZ", "UTC")
                .output()
                .unwrap();
            assert!(out.status.success(), "{line}: {}", said(&out));
            for l in String::from_utf8_lossy(&out.stdout).lines() {
                let Some((_, at)) = l.split_once("Next elapse: ").or_else(|| {
                    l.split_once(": ")
                        .filter(|(k, _)| k.trim().starts_with("Iter."))
                }) else {
                    continue;
                };
                let t =
                    chrono::NaiveDateTime::parse_from_str(at.trim(), "%a %Y-%m-%d %H:%M:%S UTC")
                        .unwrap();
                next.push(t.and_utc().to_rfc3339());
            }
        }
        next.sort();
        next.dedup();
        next.truncate(5);
        let planned: Vec<String> = plan["slots"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["entry"] == entry)
            .take(5)
            .map(|s| s["at"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(next, planned, "{entry}: {timer}");
    }
}

/// `systemd-analyze`, or `None` outside CI when it is missing.
fn systemd_analyze() -> Option<&'static str> {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
    {
        return Some("systemd-analyze");
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "systemd-analyze is not installed (scripts/test installs systemd)"
    );
    eprintln!("skipping: systemd-analyze is not installed");
    None
}

#[test]
fn bad_gameday_files_are_refused_with_field_and_line() {
    let dir = TempDir::new("gameday-bad");
    slo_file(dir.path());
    experiment(dir.path(), "gd-bad", "2m");
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: chaos.game-resilience.dev/v1\nkind: GameDay\nmetadata: { name: bad }\nspec:\n  timeZone: Europe/Paris\n  sloFile: slos.yaml\n  budget: { minRemainingPercent: 150 }\n  startingDeadline: 30d\n  blackouts:\n    - { from: \"10:00\", to: \"10:00\" }\n  entries:\n    - { name: a, experiment: gd-bad.yaml, schedule: \"0 25 * * *\" }\n    - { name: b, experiment: gd-bad.yaml, schedule: \"0 1 * * *\", slos: [nope], maxDuration: 1m, backend: kubernetes }\n    - { name: c, experiment: missing.yaml, schedule: \"0 1 * * *\" }\n",
    )
    .unwrap();
    let out = runner(&["--output", "json", "validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", said(&out));
    let v = json_of(&out);
    let errors = v["files"][0]["errors"].as_array().unwrap();
    let at = |field: &str| {
        errors
            .iter()
            .find(|e| e["field"] == field)
            .unwrap_or_else(|| panic!("no error at {field}: {v}"))["line"]
            .as_i64()
    };
    assert_eq!(at("spec.timeZone"), Some(5));
    assert_eq!(at("spec.budget.minRemainingPercent"), Some(7));
    assert_eq!(at("spec.startingDeadline"), Some(8));
    assert_eq!(at("spec.blackouts[0].to"), Some(10));
    assert_eq!(at("spec.entries[0].schedule"), Some(12));
    assert_eq!(at("spec.entries[1].slos[0]"), Some(13));
    assert_eq!(at("spec.entries[1].maxDuration"), Some(13));
    assert_eq!(at("spec.entries[1].backend"), Some(13));
    assert_eq!(at("spec.entries[2].experiment"), Some(14));
    assert!(
        errors
            .iter()
            .any(|e| e["message"].as_str().unwrap().contains("hour")),
        "{v}"
    );

    // The commands refuse it too, before anything runs or is written.
    for args in [
        vec!["plan"],
        vec!["run", "--entry", "a"],
        vec!["report"],
        vec!["install", "--systemd", "--dir"],
    ] {
        let mut full = vec!["gameday", args[0], file.to_str().unwrap()];
        full.extend(&args[1..]);
        if args[0] == "install" {
            full.push(dir.path().to_str().unwrap());
        }
        let out = runner(&full);
        assert_eq!(out.status.code(), Some(3), "{full:?}: {}", said(&out));
    }
    // Bad flags.
    let shipped = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../experiments/gamedays/weekly.yaml"
    );
    let out = runner(&["gameday", "run", shipped]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "several entries and no --entry: {}",
        said(&out)
    );
    assert!(said(&out).contains("pod-kill"), "{}", said(&out));
    let out = runner(&[
        "gameday",
        "plan",
        shipped,
        "--from",
        "2026-12-10T00:00:00Z",
        "--to",
        "2026-12-09T00:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", said(&out));
    let out = runner(&["gameday", "install", shipped, "--dir", "/tmp/x"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "no scheduler named: {}",
        said(&out)
    );
}
