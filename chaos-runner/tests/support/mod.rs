//! Test helpers: a metrics server the test controls, a real Prometheus scraping it, temp
//! dirs, and finding hog processes.

#![allow(dead_code)]

pub mod ports;
pub mod proxy_process;
pub mod servers;
pub mod slo_tools;

pub use ports::free_port;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A directory no other test (thread or process) has: named by pid, time and a
    /// process-wide counter, and created with `create_dir`, which fails rather than share.
    pub fn new(tag: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        loop {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("chaos-{tag}-{}-{nanos}-{n}", std::process::id()));
            match std::fs::create_dir(&dir) {
                Ok(()) => return TempDir(dir),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("cannot create {}: {e}", dir.display()),
            }
        }
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Serves `/metrics` with a gauge, `chaos_test_signal`, whose value the test sets, and
/// request counters `chaos_test_requests_total{outcome}` growing by 100 per second, a
/// share of them errors that the test sets.
pub struct MetricsServer {
    pub addr: String,
    value: Arc<AtomicU64>,
    error_share: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl MetricsServer {
    pub fn start() -> MetricsServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        listener.set_nonblocking(true).unwrap();
        let value = Arc::new(AtomicU64::new(0f64.to_bits()));
        let error_share = Arc::new(AtomicU64::new(0f64.to_bits()));
        let stop = Arc::new(AtomicBool::new(false));
        let (v, e, s) = (value.clone(), error_share.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut ok, mut errors, mut last) = (0.0f64, 0.0f64, Instant::now());
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let requests = 100.0 * last.elapsed().as_secs_f64();
                        last = Instant::now();
                        let share = f64::from_bits(e.load(Ordering::Relaxed));
                        errors += requests * share;
                        ok += requests * (1.0 - share);
                        let body = format!(
                            "# TYPE chaos_test_signal gauge\nchaos_test_signal {}\n# TYPE chaos_test_requests_total counter\nchaos_test_requests_total{{outcome=\"ok\"}} {ok}\nchaos_test_requests_total{{outcome=\"error\"}} {errors}\n",
                            f64::from_bits(v.load(Ordering::Relaxed))
                        );
                        serve(stream, &body);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        MetricsServer {
            addr,
            value,
            error_share,
            stop,
        }
    }

    /// Sets the share of requests (0 to 1) counted as errors from now on.
    pub fn set_error_share(&self, share: f64) {
        self.error_share.store(share.to_bits(), Ordering::Relaxed);
    }

    pub fn set(&self, value: f64) {
        self.value.store(value.to_bits(), Ordering::Relaxed);
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(mut stream: TcpStream, body: &str) {
    let _ = stream.set_nonblocking(false);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        line.clear();
    }
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// A real Prometheus on a free port, scraping `target` every second; killed on drop.
pub struct PrometheusServer {
    pub url: String,
    child: Child,
    _dir: TempDir,
}

impl PrometheusServer {
    /// Starts Prometheus, or returns None when it is not installed (outside CI only: under
    /// CI=true a missing binary fails the test).
    pub fn start(target: &str) -> Option<PrometheusServer> {
        PrometheusServer::start_with_rules(target, &[])
    }

    /// Starts Prometheus evaluating `rule_files` as well.
    pub fn start_with_rules(target: &str, rule_files: &[PathBuf]) -> Option<PrometheusServer> {
        if Command::new("prometheus")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var_os("CI").is_none(),
                "prometheus is not installed (scripts/test installs it)"
            );
            eprintln!("skipping: prometheus is not installed (run scripts/test to install it)");
            return None;
        }
        let dir = TempDir::new("prometheus");
        let config = dir.path().join("prometheus.yml");
        let rules: String = rule_files
            .iter()
            .map(|f| format!("  - '{}'\n", f.display()))
            .collect();
        let rules = if rules.is_empty() {
            rules
        } else {
            format!("rule_files:\n{rules}")
        };
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n{rules}scrape_configs:\n  - job_name: target\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let data = dir.path().join("data");
        let server = PrometheusServer::spawn(dir, &config, &data, &[]);
        server.wait_until(Duration::from_secs(30), |p| {
            p.query("up{job=\"target\"}") == Some(1.0)
        });
        Some(server)
    }

    /// Prometheus on a free port with `config` and its TSDB in `data` (both in `dir`, which
    /// it keeps until dropped).
    fn spawn(dir: TempDir, config: &Path, data: &Path, extra: &[&str]) -> PrometheusServer {
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        PrometheusServer {
            url: format!("http://127.0.0.1:{port}"),
            child,
            _dir: dir,
        }
    }

    /// Starts Prometheus on history: `openmetrics` (a file in OpenMetrics text with
    /// timestamps) backfilled into a fresh TSDB with `promtool tsdb create-blocks-from
    /// openmetrics`, scraping nothing, keeping everything. `None` (skip) when Prometheus or
    /// promtool is missing outside CI; a failure under CI=true.
    pub fn start_on_history(openmetrics: &Path) -> Option<PrometheusServer> {
        let found = ["prometheus", "promtool"]
            .iter()
            .find(|tool| Command::new(tool).arg("--version").output().is_err());
        if let Some(missing) = found {
            assert!(
                std::env::var_os("CI").is_none(),
                "{missing} is not installed (scripts/test installs it)"
            );
            eprintln!("skipping: {missing} is not installed (run scripts/test to install it)");
            return None;
        }
        let dir = TempDir::new("prometheus-history");
        let data = dir.path().join("data");
        let backfill = Command::new("promtool")
            // Blocks of up to 40 days, not 2 hours: hundreds of small blocks take promtool
            // a minute to write and Prometheus a compaction to merge.
            .args([
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                "--max-block-duration=960h",
            ])
            .arg(openmetrics)
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            backfill.status.success(),
            "promtool backfill: {}",
            String::from_utf8_lossy(&backfill.stderr)
        );
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, "global:\n  evaluation_interval: 1m\n").unwrap();
        let server = PrometheusServer::spawn(
            dir,
            &config,
            &data,
            &["--storage.tsdb.retention.time=3650d"],
        );
        server.wait_until(Duration::from_secs(60), |p| {
            p.query("vector(1)") == Some(1.0)
        });
        Some(server)
    }

    /// Instant query through curl-free plain HTTP: the first sample, if any.
    pub fn query(&self, promql: &str) -> Option<f64> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", self.url),
            &[("query", promql)],
        )
        .ok()?;
        let body = http_get(url.as_str())?;
        let doc: serde_json::Value = serde_json::from_str(&body).ok()?;
        doc["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }

    pub fn wait_until(&self, limit: Duration, mut ok: impl FnMut(&Self) -> bool) -> Instant {
        let start = Instant::now();
        while start.elapsed() < limit {
            if ok(self) {
                return Instant::now();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("prometheus condition not met within {limit:?}");
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One HTTP call with an optional bearer token and JSON body: its status and body, error
/// statuses included.
pub fn http_call(
    method: &str,
    url: &str,
    token: Option<&str>,
    json: Option<&str>,
) -> (u16, String) {
    let mut request = ureq::request(method, url).timeout(Duration::from_secs(60));
    if let Some(token) = token {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    let result = match json {
        Some(b) => request
            .set("Content-Type", "application/json")
            .send_string(b),
        None => request.call(),
    };
    match result {
        Ok(r) => (r.status(), r.into_string().expect("a text body")),
        Err(ureq::Error::Status(c, r)) => (c, r.into_string().expect("a text body")),
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

/// A minimal HTTP/1.1 GET over a plain socket (tests avoid an async client).
pub fn http_get(url: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).ok()?;
    let addr = format!("{}:{}", url.host_str()?, url.port()?);
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stream, &mut text).ok()?;
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
}

/// Hog processes started for fault `fault` (by command line).
pub fn hogs(fault: &str) -> Vec<u32> {
    chaos_runner::sys::proc::pids()
        .into_iter()
        .filter(|pid| {
            chaos_runner::sys::proc::cmdline(*pid).is_some_and(|a| {
                a.get(1).is_some_and(|s| s == "stress")
                    && a.windows(2).any(|w| w[0] == "--fault" && w[1] == fault)
            }) && chaos_runner::sys::proc::stat(*pid).is_some_and(|(s, _)| s != 'Z')
        })
        .collect()
}

/// Writes an experiment with a CPU hog named `fault` and an abort condition on the test
/// signal; returns its path.
pub fn experiment(
    dir: &Path,
    prometheus: &str,
    fault: &str,
    duration: &str,
    interval: &str,
) -> PathBuf {
    let path = dir.join("experiment.yaml");
    std::fs::write(
        &path,
        format!(
            r#"apiVersion: chaos.game-resilience.dev/v1
kind: Experiment
metadata:
  name: test-{fault}
  description: test
spec:
  target: {{ backend: local }}
  prometheus: {{ url: "{prometheus}", timeout: 2s, failAfter: 3 }}
  steadyState:
    - name: target-up
      prometheus: {{ query: 'up{{job="target"}}', breachWhen: "<", threshold: 1 }}
  faults:
    - name: {fault}
      type: cpu-hog
      selector: {{ host: localhost }}
      parameters: {{ workers: 1, load: 10 }}
      duration: {duration}
  abortWhen:
    - name: signal-raised
      prometheus: {{ query: 'max(chaos_test_signal)', breachWhen: ">", threshold: 0 }}
  checkInterval: {interval}
  report:
    dir: {}
"#,
            dir.join("reports").display()
        ),
    )
    .unwrap();
    path
}

/// Starts `chaos-runner run` on `experiment` with its own state dir.
pub fn start_run(experiment: &Path, state: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_chaos-runner"))
        .args(["--output", "json", "run"])
        .arg(experiment)
        .arg("--state-dir")
        .arg(state)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `ok()` or panics after `limit`.
pub fn wait_for(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) -> Instant {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ok() {
            return Instant::now();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out waiting for {what}");
}

/// Waits (10 s at most) until a hog of fault `fault` runs.
pub fn wait_for_hog(fault: &str) -> Instant {
    wait_for(Duration::from_secs(10), "the hog to start", || {
        !hogs(fault).is_empty()
    })
}

/// Runs `chaos-runner run` on `experiment` (state in `state`) to its end.
pub fn run_to_end(experiment: &Path, state: &Path) -> std::process::Output {
    start_run(experiment, state).wait_with_output().unwrap()
}

/// Asserts the runner exited with `code`, showing its output otherwise.
pub fn assert_exit(out: &std::process::Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The JSON summary the runner printed on stdout.
pub fn summary_of(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Asserts the summary's `reason` contains `text`.
pub fn assert_reason_contains(summary: &serde_json::Value, text: &str) {
    assert!(
        summary["reason"].as_str().unwrap().contains(text),
        "{summary}"
    );
}

/// Replaces `from` with `to` in the file at `path`.
pub fn edit_file(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap().replace(from, to);
    std::fs::write(path, text).unwrap();
}

/// A metrics server and a real Prometheus scraping it, or `None` where Prometheus is
/// missing (and not required: see `PrometheusServer::start`).
pub fn metrics_and_prometheus() -> Option<(MetricsServer, PrometheusServer)> {
    let metrics = MetricsServer::start();
    let prom = PrometheusServer::start(&metrics.addr)?;
    Some((metrics, prom))
}

/// The first report the summary names (the JSON one), parsed.
pub fn first_report(summary: &serde_json::Value) -> serde_json::Value {
    let path = summary["reports"][0].as_str().unwrap();
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// What headless Chromium made of a page.
pub struct Rendered {
    /// The screenshot (PNG).
    pub png: Vec<u8>,
    /// The page's DOM once loaded.
    pub dom: String,
    /// What the page wrote to the console (errors included), one message per entry.
    pub console: Vec<String>,
}

/// Renders `page` in headless Chromium (Debian's `chromium`), `width` x `height` pixels:
/// a screenshot, the DOM after load and the console's messages. `None` when Chromium is
/// not installed, outside CI only: under CI=true that fails the test. A canary page that
/// writes to the console is rendered first, so an empty console means something.
pub fn chromium(page: &Path, dir: &Path, width: u32, height: u32) -> Option<Rendered> {
    if !Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is not installed (scripts/test installs it)"
        );
        eprintln!("skipping: chromium is not installed (run scripts/test to install it)");
        return None;
    }
    let run = |name: &str, url: &Path, extra: &[String]| {
        let mut command = Command::new("chromium");
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
            ])
            .args(["--disable-dev-shm-usage", "--no-first-run"])
            .args(["--enable-logging=stderr", "--v=0"])
            // A profile per launch: a lingering one's lock would hand this launch over.
            .arg(format!(
                "--user-data-dir={}",
                dir.join(format!("chromium-{name}")).display()
            ))
            .arg(format!("--window-size={width},{height}"))
            .args(extra)
            .arg(format!("file://{}", url.display()));
        let out = output_within(command, Duration::from_secs(120));
        assert!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let console = |out: &Output| -> Vec<String> {
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.contains(":CONSOLE"))
            .map(str::to_owned)
            .collect()
    };
    let canary = dir.join("canary.html");
    std::fs::write(&canary, "<script>console.error('chromium-canary')</script>").unwrap();
    let seen = console(&run("canary", &canary, &["--dump-dom".into()]));
    assert!(
        seen.iter().any(|l| l.contains("chromium-canary")),
        "this chromium does not log the console to stderr: {seen:?}"
    );
    let shot = dir.join("screenshot.png");
    let first = run("shot", page, &[format!("--screenshot={}", shot.display())]);
    let second = run("dom", page, &["--dump-dom".into()]);
    let mut messages = console(&first);
    messages.extend(console(&second));
    Some(Rendered {
        png: std::fs::read(&shot).unwrap(),
        dom: String::from_utf8_lossy(&second.stdout).into_owned(),
        console: messages,
    })
}

/// Runs `command` to its end and returns its output, killing it (and failing the test)
/// when it takes longer than `limit`.
pub fn output_within(mut command: Command, limit: Duration) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err, &mut buf);
        buf
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} took over {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}
