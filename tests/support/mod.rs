//! The real parts every end-to-end test stands up, each on free ports in its own temp dir
//! and stopped on drop: PostgreSQL (started with the runner's own `setup` code), the
//! example game server binary, Prometheus scraping it, a standalone `chaos-runner proxy`,
//! and the runner binary itself.
//!
//! A missing server binary skips a test on a laptop and fails it under `CI=true`.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use chaos_runner::spec::PostgresSetup;
use chaos_runner::sys::supervisor::Supervisor;

// The runner's tests' port picker: below the kernel's ephemeral range, never the same
// port twice in one process.
#[path = "../../chaos-runner/tests/support/ports.rs"]
mod ports;
pub use ports::free_port;

/// Held for the whole of a scenario, so no two overlap in one process (plain `cargo test`
/// runs a binary's tests on parallel threads; `scripts/test` runs one test at a time).
/// A scenario that failed while holding it does not block the next.
pub fn alone() -> std::sync::MutexGuard<'static, ()> {
    static SCENARIO: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SCENARIO
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `false` (skip) when a server binary is missing outside CI; a failure under CI.
pub fn require(found: Result<(), String>) -> bool {
    match found {
        Ok(()) => true,
        Err(why) => {
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("\n*** SKIPPING: {why} (scripts/test installs it) ***\n");
            false
        }
    }
}

/// Polls `ok` every 20 ms until it holds; panics naming `what` after `limit`.
pub fn wait_for(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) -> Instant {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ok() {
            return Instant::now();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what}: not within {limit:?}");
}

/// The workspace's binaries, next to this test executable (`target/<profile>/`).
/// `cargo test --workspace` builds them; `cargo test -p e2e` alone does not.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build it first (`cargo build -p {name}`; `cargo test --workspace` does)",
        path.display()
    );
    path
}

/// GET `url`: (status, body); `None` when nothing answered.
pub fn get(url: &str) -> Option<(u16, String)> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(2))
        .build();
    match agent.get(url).call() {
        Ok(r) => Some((r.status(), r.into_string().unwrap_or_default())),
        Err(ureq::Error::Status(code, r)) => Some((code, r.into_string().unwrap_or_default())),
        Err(_) => None,
    }
}

/// PUT a JSON body: (status, body, how long it took); `None` when nothing answered.
pub fn put_json(url: &str, body: &serde_json::Value) -> Option<(u16, String, Duration)> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let start = Instant::now();
    match agent.put(url).send_json(body.clone()) {
        Ok(r) => Some((
            r.status(),
            r.into_string().unwrap_or_default(),
            start.elapsed(),
        )),
        Err(ureq::Error::Status(code, r)) => {
            Some((code, r.into_string().unwrap_or_default(), start.elapsed()))
        }
        Err(_) => None,
    }
}

/// The sum of the samples of `metric` whose label text contains every `labels` pair, in
/// a Prometheus text page (`None` when no sample matches).
pub fn metric_value(page: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut total = None;
    for line in page.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = match line.rsplit_once(' ') {
            Some(parts) => parts,
            None => continue,
        };
        let (name, label_text) = series.split_once('{').unwrap_or((series, ""));
        if name != metric {
            continue;
        }
        if labels
            .iter()
            .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")))
        {
            if let Ok(v) = value.parse::<f64>() {
                total = Some(total.unwrap_or(0.0) + v);
            }
        }
    }
    total
}

/// A real PostgreSQL in a temp dir, started by the runner's own `setup` code (as the
/// `postgres` user when the test runs as root); stopped on drop.
pub struct Postgres {
    pub port: u16,
    pub database: String,
    supervisor: Supervisor,
    _dir: tempfile::TempDir,
}

impl Postgres {
    /// Starts PostgreSQL with database `game`; `None` (skip) when it is not installed.
    pub fn start() -> Option<Postgres> {
        use chaos_runner::setup::postgres;
        if !require(
            postgres::bin_dir(None)
                .map(|_| ())
                .map_err(|e| e.to_string()),
        ) {
            return None;
        }
        let setup = PostgresSetup {
            port: free_port(),
            database: "game".into(),
            version: None,
        };
        let dir = tempfile::Builder::new()
            .prefix("e2e-pg-")
            .tempdir()
            .expect("a temp dir");
        let (command, launch) =
            postgres::prepare("e2e-postgres", &setup, dir.path(), Duration::from_secs(60))
                .expect("initdb");
        let supervisor = Supervisor::start_with(command, launch).expect("postgres starts");
        postgres::create_database(&setup, &Default::default()).expect("createdb game");
        Some(Postgres {
            port: setup.port,
            database: setup.database,
            supervisor,
            _dir: dir,
        })
    }

    /// The connection URL (no password: trust authentication on loopback).
    pub fn url_via(&self, port: u16) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/{}", self.database)
    }

    /// Runs a query and returns its rows as (text column 0, text column 1).
    pub fn rows(&self, sql: &str) -> Vec<(String, String)> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let url = self.url_via(self.port);
        runtime.block_on(async move {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("connect to postgres");
            tokio::spawn(connection);
            client
                .query(sql, &[])
                .await
                .expect("query")
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
                .collect()
        })
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.supervisor.stop();
    }
}

/// A child process killed (SIGTERM, then SIGKILL) on drop.
pub struct Service {
    pub child: Child,
    pub log: PathBuf,
}

impl Service {
    pub fn spawn(mut command: Command, log: PathBuf) -> Service {
        let out = std::fs::File::create(&log).expect("a log file");
        let err = out.try_clone().expect("a log file handle");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        Service { child, log }
    }

    /// The last lines of the service's output, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGTERM, then SIGKILL after 5 s.
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        signal(self.child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends `sig` to `pid`.
pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own child's.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// How the example game server is configured for a test.
pub struct GameConfig {
    pub port: u16,
    pub database_url: String,
    /// The write-behind fallback for saves.
    pub write_behind: bool,
}

/// The game server's YAML configuration: the repository's defaults with the test's
/// address, database and spool, and faster breaker recovery so a test sees it close.
pub fn game_config_yaml(config: &GameConfig, spool: &Path) -> String {
    let defaults = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/game-server/game-server.yaml"),
    )
    .expect("examples/game-server/game-server.yaml");
    defaults
        .replace(
            "listen: 127.0.0.1:18080",
            &format!("listen: 127.0.0.1:{}", config.port),
        )
        .replace(
            "  url: postgres://postgres@127.0.0.1:5432/postgres",
            &format!("  url: {}", config.database_url),
        )
        .replace(
            "spool_dir: game-spool",
            &format!("spool_dir: {}", spool.display()),
        )
        .replace(
            "  enabled: true",
            &format!("  enabled: {}", config.write_behind),
        )
}

/// The example game server binary, configured by a file in its own temp dir.
pub struct GameServer {
    pub url: String,
    pub port: u16,
    pub config_file: PathBuf,
    pub service: Option<Service>,
    dir: tempfile::TempDir,
}

impl GameServer {
    /// Writes the configuration (nothing started): for a runner that supervises it.
    pub fn configure(config: &GameConfig) -> GameServer {
        let dir = tempfile::Builder::new()
            .prefix("e2e-game-")
            .tempdir()
            .expect("a temp dir");
        let config_file = dir.path().join("game-server.yaml");
        let yaml = game_config_yaml(config, &dir.path().join("spool"));
        assert!(
            yaml.contains(&format!("127.0.0.1:{}", config.port))
                && yaml.contains(&config.database_url),
            "the game server's default configuration changed shape:\n{yaml}"
        );
        std::fs::write(&config_file, yaml).expect("write the game server's config");
        GameServer {
            url: format!("http://127.0.0.1:{}", config.port),
            port: config.port,
            config_file,
            service: None,
            dir,
        }
    }

    /// Writes the configuration and starts the server; waits for `/healthz`.
    pub fn start(config: &GameConfig) -> GameServer {
        let mut game = GameServer::configure(config);
        let mut command = Command::new(binary("game-server"));
        command.arg("--config").arg(&game.config_file);
        let service = Service::spawn(command, game.dir.path().join("output.log"));
        let url = format!("{}/healthz", game.url);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut service = service;
        loop {
            if get(&url).is_some_and(|(s, _)| s == 200) {
                break;
            }
            let exited = service.child.try_wait().ok().flatten();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "the game server did not become healthy ({exited:?}):\n{}",
                service.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        game.service = Some(service);
        game
    }

    /// The argument vector that starts this server (for a supervised process fault).
    pub fn argv(&self) -> Vec<String> {
        vec![
            binary("game-server").display().to_string(),
            "--config".into(),
            self.config_file.display().to_string(),
        ]
    }

    /// Its `/metrics` page.
    pub fn metrics(&self) -> Option<String> {
        get(&format!("{}/metrics", self.url)).map(|(_, body)| body)
    }

    /// One metric from `/metrics` (see [`metric_value`]).
    pub fn metric(&self, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.metrics()
            .and_then(|page| metric_value(&page, metric, labels))
    }
}

/// A real Prometheus scraping the game server every second; killed on drop.
pub struct Prometheus {
    pub url: String,
    pub scrape_interval: Duration,
    _service: Service,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (`host:port`); `None` (skip) when it is not
    /// installed. Returns once it has scraped the target successfully.
    pub fn start(target: &str) -> Option<Prometheus> {
        let prometheus = Prometheus::start_unchecked(target)?;
        wait_for(
            Duration::from_secs(60),
            "prometheus scraping the game server",
            || prometheus.query("up{job=\"game-server\"}") == Some(1.0),
        );
        Some(prometheus)
    }

    /// Starts Prometheus scraping `target` without waiting for the target to be up (for
    /// a target the runner starts); returns once it has tried a first scrape.
    pub fn start_unchecked(target: &str) -> Option<Prometheus> {
        Prometheus::start_with(&[("game-server", target)], &[])
    }

    /// Starts Prometheus scraping each `(job, target)` and evaluating `rule_files`; returns
    /// once it has tried a first scrape of the first job.
    pub fn start_with(targets: &[(&str, &str)], rule_files: &[PathBuf]) -> Option<Prometheus> {
        let installed = Command::new("prometheus")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|_| ())
            .map_err(|e| format!("prometheus is not installed ({e})"));
        if !require(installed) {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("e2e-prometheus-")
            .tempdir()
            .expect("a temp dir");
        let config = dir.path().join("prometheus.yml");
        let mut text = "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n".to_owned();
        if !rule_files.is_empty() {
            text.push_str("rule_files:\n");
            for file in rule_files {
                text.push_str(&format!("  - '{}'\n", file.display()));
            }
        }
        text.push_str("scrape_configs:\n");
        for (job, target) in targets {
            text.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
            ));
        }
        std::fs::write(&config, text).expect("write prometheus.yml");
        let first_job = targets.first().map_or("game-server", |t| t.0).to_owned();
        let port = free_port();
        let mut command = Command::new("prometheus");
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        let service = Service::spawn(command, dir.path().join("output.log"));
        let prometheus = Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            scrape_interval: Duration::from_secs(1),
            _service: service,
            _dir: dir,
        };
        // Prometheus answers queries seconds before it scrapes anything (its target
        // discovery is throttled): wait for the first scrape, up or down.
        wait_for(Duration::from_secs(60), "prometheus's first scrape", || {
            prometheus
                .query(&format!("up{{job=\"{first_job}\"}}"))
                .is_some()
        });
        Some(prometheus)
    }

    /// An instant query's samples, or the error Prometheus (or the connection) gave.
    pub fn query_all(&self, promql: &str) -> Result<Vec<serde_json::Value>, String> {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(5))
            .build();
        let answer = agent
            .get(&format!("{}/api/v1/query", self.url))
            .query("query", promql)
            .call();
        let body: serde_json::Value = match answer {
            Ok(r) => r.into_json().map_err(|e| e.to_string())?,
            Err(ureq::Error::Status(code, r)) => {
                return Err(format!("{code}: {}", r.into_string().unwrap_or_default()))
            }
            Err(e) => return Err(e.to_string()),
        };
        body["data"]["result"]
            .as_array()
            .cloned()
            .ok_or_else(|| format!("no result in {body}"))
    }

    /// An instant query: its first sample, if any.
    pub fn query(&self, promql: &str) -> Option<f64> {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(2))
            .build();
        let body: serde_json::Value = agent
            .get(&format!("{}/api/v1/query", self.url))
            .query("query", promql)
            .call()
            .ok()?
            .into_json()
            .ok()?;
        body["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }
}

/// A standalone `chaos-runner proxy` (toxiproxy-compatible admin API) relaying `name`
/// from a free port to `upstream`; it outlives the runs that drive it.
pub struct Proxy {
    pub admin: String,
    pub listen_port: u16,
    pub name: String,
    _service: Service,
    _dir: tempfile::TempDir,
}

impl Proxy {
    /// Starts the proxy and waits until its admin API lists `name`.
    pub fn start(name: &str, upstream_port: u16) -> Proxy {
        let dir = tempfile::Builder::new()
            .prefix("e2e-proxy-")
            .tempdir()
            .expect("a temp dir");
        let listen_port = free_port();
        let admin_port = free_port();
        let config = dir.path().join("proxies.json");
        std::fs::write(
            &config,
            serde_json::json!([{
                "name": name,
                "listen": format!("127.0.0.1:{listen_port}"),
                "upstream": format!("127.0.0.1:{upstream_port}"),
            }])
            .to_string(),
        )
        .expect("write the proxy config");
        let mut command = Command::new(binary("chaos-runner"));
        command
            .arg("proxy")
            .arg("--listen")
            .arg(format!("127.0.0.1:{admin_port}"))
            .arg("--config")
            .arg(&config);
        let service = Service::spawn(command, dir.path().join("output.log"));
        let proxy = Proxy {
            admin: format!("http://127.0.0.1:{admin_port}"),
            listen_port,
            name: name.to_owned(),
            _service: service,
            _dir: dir,
        };
        wait_for(Duration::from_secs(30), "the proxy's admin API", || {
            proxy.toxics().is_some()
        });
        proxy
    }

    /// The names of the toxics on the proxy now (`None`: the admin API did not answer).
    pub fn toxics(&self) -> Option<Vec<String>> {
        let (status, body) = get(&format!("{}/proxies/{}/toxics", self.admin, self.name))?;
        if status != 200 {
            return None;
        }
        let list: serde_json::Value = serde_json::from_str(&body).ok()?;
        Some(
            list.as_array()?
                .iter()
                .filter_map(|t| t["name"].as_str().map(str::to_owned))
                .collect(),
        )
    }
}

/// A run of the real runner binary on an experiment written to a temp dir.
pub struct Run {
    pub child: Child,
    dir: Option<tempfile::TempDir>,
    pub started: Instant,
}

impl Drop for Run {
    /// A test that fails mid-run must not leave the runner (and its faults) behind: the
    /// runner reverts on SIGTERM.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            signal(self.child.id(), libc::SIGTERM);
            let _ = self.child.wait();
        }
    }
}

/// What a finished run left.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// The JSON report.
    pub report: serde_json::Value,
    /// Where the reports were written.
    pub report_dir: PathBuf,
    /// The run's temp dir (experiment, state, reports), removed on drop.
    pub dir: tempfile::TempDir,
}

impl Run {
    /// The run's state dir (its journals).
    pub fn state_dir(&self) -> PathBuf {
        self.dir
            .as_ref()
            .map(|d| d.path().join("state"))
            .expect("a running run has its dir")
    }

    /// Writes `experiment` (YAML; `@REPORT_DIR@` and `@SLO_FILE@` are filled in) and starts
    /// `chaos-runner run` on it with its own state dir.
    pub fn start(experiment: &str) -> Run {
        let dir = tempfile::Builder::new()
            .prefix("e2e-run-")
            .tempdir()
            .expect("a temp dir");
        std::fs::write(dir.path().join("slo.yaml"), slo_text_any_hour())
            .expect("write the SLO file");
        let text = experiment
            .replace(
                "@REPORT_DIR@",
                &dir.path().join("reports").display().to_string(),
            )
            .replace("@SLO_FILE@", "slo.yaml");
        let file = dir.path().join("experiment.yaml");
        std::fs::write(&file, text).expect("write the experiment");
        let child = Command::new(binary("chaos-runner"))
            .arg("run")
            .arg(&file)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chaos-runner");
        Run {
            child,
            dir: Some(dir),
            started: Instant::now(),
        }
    }

    /// Waits for the run to end (killing it after `limit`) and reads its JSON report.
    pub fn finish(mut self, limit: Duration) -> Finished {
        let mut stdout = self.child.stdout.take().expect("piped stdout");
        let mut stderr = self.child.stderr.take().expect("piped stderr");
        let out = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text
        });
        let err = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let deadline = self.started + limit;
        let status = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "the run did not end within {limit:?}; stderr:\n{}",
                    err.join().unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        let dir = self.dir.take().expect("a run is finished once");
        let reports = dir.path().join("reports");
        let report_dir = std::fs::read_dir(&reports)
            .ok()
            .and_then(|mut entries| entries.next())
            .and_then(Result::ok)
            .map(|e| e.path())
            .unwrap_or_else(|| {
                panic!(
                    "no report under {}; stdout:\n{stdout}\nstderr:\n{stderr}",
                    reports.display()
                )
            });
        let report: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(report_dir.join("report.json")).expect("report.json"),
        )
        .expect("report.json is JSON");
        Finished {
            status,
            stdout,
            stderr,
            report,
            report_dir,
            dir,
        }
    }
}

/// The stack most scenarios share: PostgreSQL, a standalone proxy `postgres` in front of
/// it, the game server connected through the proxy, and Prometheus scraping the server.
/// Fields drop in order: Prometheus and the server stop before the proxy and the database.
pub struct Stack {
    pub prometheus: Prometheus,
    pub game: GameServer,
    pub proxy: Proxy,
    pub pg: Postgres,
}

impl Stack {
    /// Starts everything; `None` (skip) when PostgreSQL or Prometheus is not installed.
    pub fn start(write_behind: bool) -> Option<Stack> {
        let pg = Postgres::start()?;
        let proxy = Proxy::start("postgres", pg.port);
        let game = GameServer::start(&GameConfig {
            port: free_port(),
            database_url: pg.url_via(proxy.listen_port),
            write_behind,
        });
        let prometheus = Prometheus::start(&format!("127.0.0.1:{}", game.port))?;
        Some(Stack {
            prometheus,
            game,
            proxy,
            pg,
        })
    }

    /// Runs `experiment` with `@PROM@`, `@GAME@` and `@ADMIN@` (the proxy's admin API)
    /// filled in (see [`Run::start`] for the rest).
    pub fn run(&self, experiment: &str) -> Run {
        Run::start(
            &experiment
                .replace("@PROM@", &self.prometheus.url)
                .replace("@GAME@", &self.game.url)
                .replace("@SCENARIO@", &game_scenario())
                .replace("@ADMIN@", &self.proxy.admin),
        )
    }
}

/// The shipped load scenario of the example game server's API, as an absolute path.
pub fn game_scenario() -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../experiments/load/game-api.yaml")
        .display()
        .to_string()
}

/// The shipped SLO file without its maintenance window, so that what a test sees does not
/// depend on the hour it runs: during Tuesday 02:00-06:00 in Seoul (Monday evening in
/// UTC) the shipped file's SLO series are empty by design, as maintenance spends no budget.
/// The windows themselves are tested by `slo test`'s promtool tests.
pub fn slo_text_any_hour() -> String {
    let shipped =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/slo/game-services.yaml");
    let text = std::fs::read_to_string(&shipped).expect("the shipped SLO file");
    let window = "    maintenance:\n      - { days: [tuesday], from: \"02:00\", to: \"06:00\" }\n";
    assert!(
        text.contains(window),
        "the shipped SLO file's maintenance window changed: update slo_text_any_hour"
    );
    text.replace(window, "    maintenance: []\n")
}
