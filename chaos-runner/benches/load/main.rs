//! The load generator's capacity beside `wrk`, in the same run, on the same endpoint.
//!
//! A minimal HTTP server in this process answers `GET /v1/sessions` (the game API's
//! session list, which a scenario of that one call makes).
//!
//! First idle WebSocket sessions: 100,000 held, and the client memory each costs (see
//! `sessions.rs`). Then rounds, each measuring in turn:
//! - `wrk` (closed loop: each of 64 connections sends its next request when the last one
//!   is answered) at its maximum;
//! - the generator (open loop: requests due at fixed times, latency from the due time;
//!   1,024 players) at the highest rate it holds, found by bisection: each step a 1 s
//!   warm-up, then 5 s measured, held when under 0.1% of the due requests overflow (no
//!   free player) or fail and it achieves 99% of the rate asked;
//!
//! each with the CPU time the client and the server's thread spent per request. Then the
//! abort reaction: `chaos-runner run` with load on the same server and an abort on the
//! load's error rate checked every 100 ms; from the server's first failing answer to the
//! fault (a CPU hog) gone, seen from outside the runner.
//!
//! `cargo bench -p chaos-runner --bench load` measures (3 rounds, the medians; 7 abort
//! runs). `LOAD_BENCH_ONLY=capacity` stops after the rounds, `=sessions` measures only the
//! sessions, `=rate` runs the generator at `LOAD_BENCH_RATE` for 10 s. `cargo test` runs a
//! smoke pass (one short step of each, one abort run) and prints nothing to compare.

mod sessions;

use std::process::Command;
use std::time::{Duration, Instant};

use chaos_runner::load::LoadGenerator;
use chaos_runner::spec::scenario::LoadPlan;
use chaos_runner::spec::{LoadSli, LoadSpec};

/// How much to measure.
struct Scale {
    rounds: usize,
    /// How long wrk runs, and each bisection step of the generator.
    step: Duration,
    /// Bisection steps.
    steps: usize,
}

const FULL: Scale = Scale {
    rounds: 3,
    step: Duration::from_secs(5),
    steps: 7,
};

/// The smoke pass: one step of each, no rounds, no bisection.
const SMOKE: Scale = Scale {
    rounds: 0,
    step: Duration::from_secs(1),
    steps: 0,
};

/// wrk's connections (closed loop: each always has a request in flight).
const IN_FLIGHT: u32 = 64;

/// The generator's players by default: requests in flight at most. An open loop needs
/// headroom a closed loop does not: when the server or the generator stalls (the two cores
/// are shared), the requests that fell due meanwhile all go at once, and any beyond the
/// free players overflow. An idle player costs a parked task and its connection.
const PLAYERS: u32 = 1024;

/// The generator's players (`LOAD_BENCH_PLAYERS`, default [`PLAYERS`]).
fn players() -> u32 {
    std::env::var("LOAD_BENCH_PLAYERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(PLAYERS)
}

/// The share of due requests that may overflow or fail for a rate to count as held.
const MAX_LOST: f64 = 0.001;

/// The server's switch: answer 503 from now on, and when the first 503 went out.
#[derive(Default)]
struct Failing {
    on: std::sync::atomic::AtomicBool,
    first: std::sync::Mutex<Option<Instant>>,
}

/// Starts the server on its own thread and runtime (one worker); returns its base URL.
fn server(failing: std::sync::Arc<Failing>) -> String {
    // A queue of 1,024 connections waiting to be accepted, as tokio's and most servers'
    // (std's 128 drops the SYNs of a thousand players connecting at once).
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("address"))
        .expect("bind");
    let url = format!("http://{}", socket.local_addr().expect("address"));
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(SERVER_THREAD)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = socket.listen(1024).expect("listen");
            let app = axum::Router::new().route(
                "/v1/sessions",
                axum::routing::get(move || {
                    let failing = failing.clone();
                    async move {
                        let status = if failing.on.load(std::sync::atomic::Ordering::SeqCst) {
                            let mut first = failing.first.lock().expect("lock");
                            first.get_or_insert_with(Instant::now);
                            http::StatusCode::SERVICE_UNAVAILABLE
                        } else {
                            http::StatusCode::OK
                        };
                        (
                            status,
                            [(http::header::CONTENT_TYPE, "application/json")],
                            r#"{"sessions":[]}"#,
                        )
                    }
                }),
            );
            axum::serve(listener, app).await.expect("serve");
        });
    });
    // Answering before anything measures it: connects to a listener nobody accepts on yet
    // fill its queue, and the SYNs past it are sent again only a second later.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ureq::get(&format!("{url}/v1/sessions")).call().is_err() {
        assert!(
            Instant::now() < deadline,
            "the bench's server never answered"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    url
}

/// What one tool achieved at one setting.
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    /// Answered requests per second.
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// The share of due requests that overflowed or failed (the generator only).
    lost: f64,
    /// CPU time the client (wrk's process, the generator's thread) spent per request.
    client_cpu_us: f64,
    /// CPU time the server's thread spent per request.
    server_cpu_us: f64,
}

/// The name of the server's one worker thread.
const SERVER_THREAD: &str = "bench-server";

/// CPU time (user and system) so far of this process's thread named `name`.
fn thread_cpu(name: &str) -> Duration {
    let ticks = |stat: &str| -> Option<u64> {
        // The fields after `(comm) `: state first, utime and stime the 12th and 13th.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
    };
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let total: u64 = std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .filter_map(|t| ticks(&std::fs::read_to_string(t.path().join("stat")).ok()?))
        .sum();
    Duration::from_secs_f64(total as f64 / hz)
}

/// CPU time (user and system) so far of the children that ended (wrk's runs).
fn children_cpu() -> Duration {
    // SAFETY: getrusage fills the struct it is given, which is plain data.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Microseconds of `cpu` per request of `requests`.
fn per_request_us(cpu: Duration, requests: f64) -> f64 {
    cpu.as_secs_f64() * 1e6 / requests.max(1.0)
}

/// wrk at its maximum for `duration`.
fn wrk(url: &str, duration: Duration) -> Option<Figures> {
    let (client, server) = (children_cpu(), thread_cpu(SERVER_THREAD));
    let out = Command::new("wrk")
        .args(["-t1", &format!("-c{IN_FLIGHT}")])
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg("--latency")
        .arg(format!("{url}/v1/sessions"))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rate = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))?
        .trim()
        .parse()
        .ok()?;
    let percentile = |p: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(p))
            .and_then(|v| wrk_ms(v.trim()))
    };
    let requests: f64 = text
        .lines()
        .find_map(|l| l.split_once(" requests in "))?
        .0
        .trim()
        .parse()
        .ok()?;
    Some(Figures {
        rate,
        p50_ms: percentile("50%")?,
        p99_ms: percentile("99%")?,
        lost: 0.0,
        client_cpu_us: per_request_us(children_cpu() - client, requests),
        server_cpu_us: per_request_us(thread_cpu(SERVER_THREAD) - server, requests),
    })
}

/// wrk's durations: `512.00us`, `1.20ms`, `2.01s`.
fn wrk_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    match unit {
        "us" => Some(value / 1000.0),
        "ms" => Some(value),
        "s" => Some(value * 1000.0),
        "m" => Some(value * 60_000.0),
        _ => None,
    }
}

/// How long the generator runs at a rate before its figures count: the server and the
/// generator each set up a connection's buffers on its first calls (a run's `warmup`
/// does the same before the preflight checks).
const WARMUP: Duration = Duration::from_secs(1);

/// The generator at `rate` for `duration` after [`WARMUP`]: what it achieved over
/// `duration` (whole seconds), and whether it held.
fn generator(url: &str, rate: u32, duration: Duration) -> (Figures, bool) {
    let spec: LoadSpec = serde_json::from_value(serde_json::json!({
        "target": url,
        "rate": rate,
        "players": players(),
        "scenario": { "operations": { "sessions": { "path": "/v1/sessions", "weight": 1 } } },
        "timeout": "2s",
        "seed": 1,
    }))
    .expect("a load spec");
    let plan = LoadPlan::from_spec(spec).expect("a valid scenario");
    let window = Duration::from_secs(duration.as_secs().max(1));
    let started = Instant::now();
    let mut load = LoadGenerator::start(&plan, started, window).expect("start");
    std::thread::sleep((started + WARMUP).saturating_duration_since(Instant::now()));
    let (client, server) = (thread_cpu("load"), thread_cpu(SERVER_THREAD));
    // Just past the window's last whole second: the window's slices are then those after
    // the warm-up (and the second under way, a few milliseconds old).
    std::thread::sleep(
        (started + WARMUP + window + Duration::from_millis(5))
            .saturating_duration_since(Instant::now()),
    );
    let (client, server) = (
        thread_cpu("load") - client,
        thread_cpu(SERVER_THREAD) - server,
    );
    let stats = load.stats();
    let sli = |sli| stats.sli(sli, None, None, window);
    let lost = sli(LoadSli::ErrorRate).unwrap_or(1.0);
    let requests = stats.rate(window) * window.as_secs_f64();
    let figures = Figures {
        rate: stats.rate(window) * (1.0 - lost),
        p50_ms: sli(LoadSli::LatencyP50).unwrap_or(f64::NAN),
        p99_ms: sli(LoadSli::LatencyP99).unwrap_or(f64::NAN),
        lost,
        client_cpu_us: per_request_us(client, requests),
        server_cpu_us: per_request_us(server, requests),
    };
    let report = load.stop();
    if lost > 0.0 {
        let per_second: Vec<u64> = report.timeline.iter().map(|s| s.errors).collect();
        eprintln!("    lost per second (the first is the warm-up's): {per_second:?}");
    }
    let held = lost < MAX_LOST && figures.rate >= 0.99 * f64::from(rate);
    (figures, held)
}

/// The highest rate the generator holds, by bisection between 0 and `ceiling`.
fn generator_max(url: &str, ceiling: f64, scale: &Scale) -> (u32, Figures) {
    let (mut low, mut high) = (0.0f64, ceiling.max(100.0));
    let mut best = (0, Figures::default());
    for _ in 0..scale.steps {
        let rate = ((low + high) / 2.0).round() as u32;
        let (figures, held) = generator(url, rate.max(1), scale.step);
        eprintln!(
            "  generator at {rate}/s: answered {:.0}/s, lost {:.3}%, p99 {:.2} ms, {}",
            figures.rate,
            figures.lost * 100.0,
            figures.p99_ms,
            if held { "held" } else { "not held" }
        );
        if held {
            low = f64::from(rate);
            best = (rate, figures);
        } else {
            high = f64::from(rate);
        }
    }
    best
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Sessions held by the full measure (`LOAD_BENCH_SESSIONS` to change).
const SESSIONS: u32 = 100_000;

fn main() {
    if sessions::serve_if_asked() {
        return;
    }
    // cargo-nextest lists a binary's tests first, then runs each by name: the smoke pass
    // is this binary's one test.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            println!("smoke: test");
        }
        return;
    }
    let benching = args.iter().any(|a| a == "--bench");
    let scale = if benching { FULL } else { SMOKE };
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let failing = std::sync::Arc::new(Failing::default());
    let url = server(failing.clone());
    let have_wrk = Command::new("wrk").arg("--version").output().is_ok();
    assert!(
        have_wrk || !ci,
        "wrk is not installed (scripts/test installs it)"
    );
    if !benching {
        // One short step of each: both run and answer; no figures.
        if have_wrk {
            let peer = wrk(&url, scale.step).expect("wrk's figures");
            assert!(peer.rate > 0.0, "wrk answered nothing");
        }
        // Both ways of issuing: on the millisecond tick, and as requests fall due.
        for rate in [200, 6_000] {
            let (figures, _) = generator(&url, rate, scale.step);
            assert!(
                figures.rate > 0.0,
                "the generator answered nothing at {rate}/s"
            );
        }
        let reaction = abort_reaction(&url, &failing);
        eprintln!("abort reaction: {reaction:?}");
        let held = sessions::measure(200);
        assert_eq!(held.held, 1.0, "200 sessions not all held");
        eprintln!("smoke pass done (run `cargo bench -p chaos-runner --bench load` to measure)");
        return;
    }
    let only = std::env::var("LOAD_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "sessions" {
        let wanted = std::env::var("LOAD_BENCH_SESSIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(SESSIONS);
        let f = sessions::measure(wanted);
        println!(
            "\nidle WebSocket sessions: {} wanted, {:.1}% held after a {:.1} s ramp; client memory \
             {:.1} KiB per session (goal: under 10 KiB); heartbeat p95 {}",
            f.wanted,
            f.held * 100.0,
            f.ramp.as_secs_f64(),
            f.bytes_per_session / 1024.0,
            f.heartbeat_p95_ms.map_or("-".into(), |v| format!("{v:.1} ms")),
        );
        if only == "sessions" {
            return;
        }
    }
    if only == "rate" {
        // One rate for 10 s, to profile the generator (`perf record -p`).
        let rate = std::env::var("LOAD_BENCH_RATE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(30_000);
        let (f, held) = generator(&url, rate, Duration::from_secs(10));
        println!(
            "generator at {rate}/s: answered {:.0}/s, p99 {:.2} ms, held: {held}; CPU per \
             request {:.1} µs (generator), {:.1} µs (server)",
            f.rate, f.p99_ms, f.client_cpu_us, f.server_cpu_us
        );
        return;
    }
    let mut wrk_runs = Vec::new();
    let mut ours = Vec::new();
    for round in 0..scale.rounds {
        let peer = if have_wrk {
            wrk(&url, scale.step)
        } else {
            None
        };
        if let Some(f) = peer {
            eprintln!(
                "round {round}: wrk {:.0}/s p50 {:.2} ms p99 {:.2} ms, CPU per request {:.1} µs \
                 (wrk), {:.1} µs (server)",
                f.rate, f.p50_ms, f.p99_ms, f.client_cpu_us, f.server_cpu_us
            );
            wrk_runs.push(f);
        }
        // Bisect up to a little over wrk's maximum (or a fixed ceiling without it).
        let ceiling = peer.map_or(20_000.0, |f| f.rate * 1.2);
        let (rate, figures) = generator_max(&url, ceiling, &scale);
        eprintln!("round {round}: generator holds {rate}/s");
        ours.push((f64::from(rate), figures));
    }
    let wrk_rate = median(wrk_runs.iter().map(|f| f.rate).collect());
    let our_rate = median(ours.iter().map(|(r, _)| *r).collect());
    let of =
        |runs: &[Figures], field: fn(&Figures) -> f64| median(runs.iter().map(field).collect());
    let ours_figures: Vec<Figures> = ours.iter().map(|(_, f)| *f).collect();
    println!("\n| tool | loop | rate held | p50 | p99 | client CPU per request | server CPU per request |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    println!(
        "| wrk 4.1 (`-t1 -c{IN_FLIGHT}`) | closed | {wrk_rate:.0}/s | {:.2} ms | {:.2} ms | {:.1} µs | {:.1} µs |",
        of(&wrk_runs, |f| f.p50_ms),
        of(&wrk_runs, |f| f.p99_ms),
        of(&wrk_runs, |f| f.client_cpu_us),
        of(&wrk_runs, |f| f.server_cpu_us),
    );
    println!(
        "| chaos-runner load ({} players) | open, latency from the due time | {our_rate:.0}/s | {:.2} ms | {:.2} ms | {:.1} µs | {:.1} µs |",
        players(),
        of(&ours_figures, |f| f.p50_ms),
        of(&ours_figures, |f| f.p99_ms),
        of(&ours_figures, |f| f.client_cpu_us),
        of(&ours_figures, |f| f.server_cpu_us),
    );
    println!(
        "\ngenerator / wrk: {:.2}x (goal: at least 0.8x)",
        our_rate / wrk_rate
    );
    if only == "capacity" {
        return;
    }

    // The abort on a built-in SLI: from the first failing answer to the fault gone.
    let mut reactions: Vec<f64> = (0..REACTION_ROUNDS)
        .map(|round| {
            let took = abort_reaction(&url, &failing);
            eprintln!("abort reaction round {round}: {took:?}");
            took.as_secs_f64() * 1000.0
        })
        .collect();
    reactions.sort_by(f64::total_cmp);
    println!(
        "\nabort reaction (checkInterval 100ms, errorRate over 1s > 5%), {REACTION_ROUNDS} runs: \
         median {:.0} ms, max {:.0} ms (goal: at most 200 ms)",
        median(reactions.clone()),
        reactions.last().copied().unwrap_or(f64::NAN)
    );
}

/// Runs of the abort-reaction measure.
const REACTION_ROUNDS: usize = 7;

/// One run of `chaos-runner run`: load on the server, a CPU hog as the fault, an abort on
/// the load's error rate checked every 100 ms. Once the hog is live the server starts
/// failing; the time from its first failing answer to the hog's process gone, seen from
/// here (polling its `/proc` entry every millisecond).
fn abort_reaction(url: &str, failing: &Failing) -> Duration {
    use std::sync::atomic::Ordering;
    failing.on.store(false, Ordering::SeqCst);
    *failing.first.lock().expect("lock") = None;
    let dir = std::env::temp_dir().join(format!("load-bench-abort-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let fault = format!("bench-hog-{}", std::process::id());
    let experiment = dir.join("experiment.yaml");
    std::fs::write(
        &experiment,
        format!(
            r#"apiVersion: chaos.game-resilience.dev/v1
kind: Experiment
metadata: {{ name: load-bench-abort }}
spec:
  target: {{ backend: local }}
  load: {{ target: "{url}", rate: 400, players: 50, warmup: 1s,
          scenario: {{ operations: {{ sessions: {{ path: /v1/sessions, weight: 1 }} }} }} }}
  faults:
    - name: {fault}
      type: cpu-hog
      selector: {{ host: localhost }}
      parameters: {{ workers: 1, load: 1 }}
      duration: 60s
  abortWhen:
    - name: errors
      load: {{ sli: errorRate, window: 1s, breachWhen: ">", threshold: 0.05 }}
  checkInterval: 100ms
  report: {{ dir: "{}", formats: [json] }}
"#,
            dir.join("reports").display()
        ),
    )
    .expect("write the experiment");
    let mut runner = Command::new(env!("CARGO_BIN_EXE_chaos-runner"))
        .args(["--output", "json", "run"])
        .arg(&experiment)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .stdout(std::fs::File::create(dir.join("stdout.log")).expect("a log file"))
        .stderr(std::fs::File::create(dir.join("stderr.log")).expect("a log file"))
        .spawn()
        .expect("start chaos-runner run");
    let said = || {
        ["stdout.log", "stderr.log"]
            .map(|f| std::fs::read_to_string(dir.join(f)).unwrap_or_default())
            .join("\n")
    };
    let Some(hog) = wait(Duration::from_secs(30), || hog_pid(&fault)) else {
        let _ = runner.kill();
        panic!("the hog never started; the run said:\n{}", said());
    };
    // A second of healthy load with the fault live, then the server fails, at a moment
    // drawn within the check interval: the hog starts in step with the checks, and a fixed
    // delay would always land just after one (the worst case, every time).
    let offset = Duration::from_micros(rand::random_range(0..100_000));
    std::thread::sleep(Duration::from_secs(1) + offset);
    failing.on.store(true, Ordering::SeqCst);
    let gone = wait(Duration::from_secs(30), || (!alive(hog)).then(Instant::now))
        .expect("the run removes the hog");
    let status = runner.wait().expect("the run ends");
    failing.on.store(false, Ordering::SeqCst);
    assert_eq!(
        status.code(),
        Some(2),
        "the run aborts; it said:\n{}",
        said()
    );
    let first = failing
        .first
        .lock()
        .expect("lock")
        .expect("a failing answer");
    let _ = std::fs::remove_dir_all(&dir);
    gone.saturating_duration_since(first)
}

/// Polls `found` every millisecond until it gives a value or `limit` passes.
fn wait<T>(limit: Duration, mut found: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(value) = found() {
            return Some(value);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

/// The hog process of `fault`, if running.
fn hog_pid(fault: &str) -> Option<u32> {
    use chaos_runner::sys::proc;
    proc::pids().into_iter().find(|pid| {
        proc::cmdline(*pid).is_some_and(|a| {
            a.get(1).is_some_and(|s| s == "stress")
                && a.windows(2).any(|w| w[0] == "--fault" && w[1] == fault)
        }) && alive(*pid)
    })
}

/// Whether `pid` runs (a zombie does not).
fn alive(pid: u32) -> bool {
    chaos_runner::sys::proc::stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}
