//! Test helpers: a real PostgreSQL in a temp dir (started by the runner's own
//! `setup::postgres`, as an experiment's `setup` starts it), the real `game-server`
//! binary on a free port, and small HTTP helpers.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use chaos_runner::spec::PostgresSetup;
use chaos_runner::sys::supervisor::{Launch, SupervisedCommand, Supervisor};

/// A fresh temporary directory, removed on drop.
pub struct TempDir(PathBuf);

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
            let dir =
                std::env::temp_dir().join(format!("game-{tag}-{}-{nanos}-{n}", std::process::id()));
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

// The runner's tests' port picker: below the kernel's ephemeral range, never the same
// port twice in one process.
#[path = "../../../../chaos-runner/tests/support/ports.rs"]
mod ports;
pub use ports::free_port;

/// `false` (skip) when a server is missing outside CI; a failure under `CI=true`.
pub fn require(found: Result<(), String>) -> bool {
    match found {
        Ok(()) => true,
        Err(why) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{why} (scripts/test installs it)"
            );
            eprintln!("\n\n*** SKIPPING: {why}. Run scripts/test to install it. ***\n\n");
            false
        }
    }
}

/// A PostgreSQL server in a temp dir, started with the runner's own `setup::postgres`
/// code (initdb as the `postgres` user when root, trust authentication on 127.0.0.1);
/// can be stopped (fast shutdown: clients are cut, the port closes) and started again on
/// the same port and data directory.
pub struct Postgres {
    pub port: u16,
    command: SupervisedCommand,
    launch: Launch,
    supervisor: Option<Supervisor>,
    _dir: TempDir,
}

impl Postgres {
    /// initdb + start, or None (skip) when PostgreSQL is not installed outside CI.
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
            database: "postgres".into(),
            version: None,
        };
        let dir = TempDir::new("pg");
        let (command, launch) = postgres::prepare(
            "game-test-postgres",
            &setup,
            dir.path(),
            Duration::from_secs(60),
        )
        .expect("initdb");
        let mut pg = Postgres {
            port: setup.port,
            command,
            launch,
            supervisor: None,
            _dir: dir,
        };
        pg.run();
        Some(pg)
    }

    fn run(&mut self) {
        let supervisor = Supervisor::start_with(self.command.clone(), self.launch.clone())
            .expect("postgres starts");
        self.supervisor = Some(supervisor);
    }

    /// Fast shutdown (SIGINT): clients are disconnected, the port closes.
    pub fn stop(&mut self) {
        if let Some(supervisor) = self.supervisor.take() {
            supervisor.stop();
        }
    }

    /// Starts the stopped server again (same port, same data).
    pub async fn restart(&mut self) {
        self.run();
        self.ready().await;
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub async fn client(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, conn) = tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout=5",
                self.port
            ),
            tokio_postgres::NoTls,
        )
        .await?;
        tokio::spawn(conn);
        Ok(client)
    }

    /// Waits until the server answers a query.
    pub async fn ready(&self) {
        let start = Instant::now();
        loop {
            if let Ok(c) = self.client().await {
                if c.simple_query("SELECT 1").await.is_ok() {
                    return;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "postgres did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The real `game-server` binary on a free loopback port.
pub struct GameServer {
    child: Option<Child>,
    pub base: String,
    pub log: PathBuf,
}

/// Test settings: a breaker that opens after 3 calls and probes every 300 ms, short
/// flush pauses and shutdown bounds. `extra` is appended (top-level keys).
pub fn test_config(spool: &Path, extra: &str) -> String {
    let policy = |name: &str| {
        format!(
            "  {name}:\n    name: {name}\n    timeout: {{ per_attempt: 200ms, overall: 400ms }}\n    retry: {{ max_attempts: 2, base_backoff: 10ms, max_backoff: 50ms }}\n    circuit_breaker:\n      window: {{ kind: count, size: 10 }}\n      failure_rate_threshold: 50\n      minimum_calls: 3\n      half_open_permits: 1\n      open_backoff: {{ kind: constant, duration: 300ms }}\n"
        )
    };
    format!(
        "spool_dir: {}\nwrite_behind: {{ max_queued: 1000, flush_batch: 64, retry_interval: 100ms }}\nshutdown: {{ drain_timeout: 2s, flush_timeout: 1s }}\npolicies:\n{}{}{}{extra}",
        spool.display(),
        policy("save_writes"),
        policy("save_reads"),
        policy("matchmaking"),
    )
}

impl GameServer {
    /// Writes `config` to `dir/game.yaml`, starts the binary with `GAME_LISTEN` on a free
    /// port and `GAME_DATABASE_URL = database_url`, waits for `/healthz`.
    pub async fn start(dir: &Path, config: &str, database_url: &str) -> GameServer {
        let path = dir.join("game.yaml");
        std::fs::write(&path, config).unwrap();
        let port = free_port();
        let log = dir.join(format!("game-server-{port}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_game-server"))
            .arg("--config")
            .arg(&path)
            .env("GAME_LISTEN", format!("127.0.0.1:{port}"))
            .env("GAME_DATABASE_URL", database_url)
            .env("RUST_LOG", "info,game_server=debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let server = GameServer {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        let start = Instant::now();
        loop {
            if let Ok(r) = client().get(server.url("/healthz")).send().await {
                if r.status() == 200 {
                    return server;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "game-server did not start: {}",
                server.log_text()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits (up to `limit`) for the exit status.
    pub fn terminate(&mut self, limit: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("server running");
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "game-server did not exit within {limit:?}: {}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for GameServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// Status, `Retry-After` and JSON body of a response.
pub async fn parts(response: reqwest::Response) -> (u16, Option<String>, serde_json::Value) {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, retry_after, body)
}

/// Waits until `ok().await` or panics after `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut ok: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if ok().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

/// A loopback URL where nothing listens (a database that is down).
pub fn closed_port_url() -> String {
    format!("postgres://postgres@127.0.0.1:{}/postgres", free_port())
}
