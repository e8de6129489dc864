//! The fault proxy in front of real databases, as a run uses it: many client connections in
//! small request/response exchanges, no fault active. Side by side in one run with a
//! direct connection and with haproxy (Debian's package, tcp mode, its default threads):
//!
//! - clients: `pgbench -S` (select-only transactions) against PostgreSQL, and
//!   `redis-benchmark -t get,set` against redis-server, both started by the bench in a temp
//!   dir on free ports;
//! - paths: direct; `chaos-runner proxy` (this workspace's binary, one process serving
//!   every proxy, at its defaults) in tcp mode and in protocol mode (`protocol: postgres` /
//!   `redis`, parsing every message, no rule set); haproxy;
//! - 1, 8 and 64 connections;
//! - beside each figure, the proxy process's CPU time per request (all its threads,
//!   `/proc/PID/task/*/schedstat`);
//! - the toxic row: our tcp-mode proxies' throughput at 8 connections while another proxy
//!   of the same process carries 8 pgbench connections at a fixed rate, with and without a
//!   50 ms latency toxic on it (and with nothing else, for reference), in the same round.
//!
//! Every path, client and connection count is measured once per round, in an order that
//! rotates each round, so a busy moment of the machine hits every path alike; each figure
//! is the median over rounds. The markdown table goes to stdout, a JSON summary to
//! `target/db-proxy-bench.json`.
//!
//! Run: `cargo bench -p chaos-runner --bench db_proxy` (5 rounds; `DB_PROXY_BENCH_ROUNDS`
//! sets another count). `cargo test` runs a smoke pass (every path once, short) that
//! proves the set-up works. Needs PostgreSQL (with pgbench), redis-server with
//! redis-benchmark, and haproxy (`scripts/test` installs them): without one the bench says
//! what is missing and stops, and under `CI=true` it fails instead.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chaos_runner::setup::postgres;
use chaos_runner::spec::PostgresSetup;
use chaos_runner::sys::supervisor::Supervisor;

/// How much to measure.
struct Scale {
    rounds: usize,
    /// How long each pgbench run lasts.
    pg_run: Duration,
    /// Connection counts.
    connections: &'static [usize],
    /// redis-benchmark requests per test (GET and SET each) per connection count: a run
    /// of a few seconds at the rates seen here.
    redis_requests: fn(usize) -> usize,
}

const FULL: Scale = Scale {
    rounds: 5,
    pg_run: Duration::from_secs(5),
    connections: &[1, 8, 64],
    redis_requests: |connections| match connections {
        1 => 40_000,
        2..=16 => 120_000,
        _ => 160_000,
    },
};

const SMOKE: Scale = Scale {
    rounds: 1,
    pg_run: Duration::from_secs(1),
    connections: &[8],
    redis_requests: |_| 5_000,
};

/// Connections of the toxic row (on the measured proxy and through the toxic one).
const TOXIC_ROW_CONNECTIONS: usize = 8;

/// What the toxic row measures ours under: nothing else; connections through another proxy
/// of the same process at a fixed rate; the same with a toxic on that proxy. The second
/// is the control: the toxic's own cost is the third against it.
const TOXIC_ROW_CONDITIONS: [&str; 3] = [
    "quiet",
    "another proxy loaded",
    "another proxy loaded, with a toxic",
];

/// The rate of the other proxy's connections (`pgbench -R`): one that 8 connections reach
/// through a 50 ms toxic both ways (80 round trips per second at most).
const BACKGROUND_TPS: u32 = 60;

/// Kills the child when dropped, so nothing outlives the bench.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A temp dir removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn wait_listening(port: u16, what: &str) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} does not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// CPU time used by every thread of process `pid`.
fn process_cpu(pid: u32) -> Duration {
    let nanos: u64 = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .flatten()
                .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
                .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Duration::from_nanos(nanos)
}

/// `program` in `PATH` or in one of `dirs`.
fn find(program: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    dirs.iter()
        .cloned()
        .chain(std::env::split_paths(&path))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// The programs the bench drives.
struct Tools {
    pgbench: PathBuf,
    redis_server: PathBuf,
    redis_benchmark: PathBuf,
    haproxy: PathBuf,
}

impl Tools {
    fn find() -> Result<Tools, String> {
        let pg_bin = postgres::bin_dir(None).map_err(|e| e.to_string())?;
        let sbin = [PathBuf::from("/usr/sbin")];
        let need = |program: &str, dirs: &[PathBuf], package: &str| {
            find(program, dirs).ok_or_else(|| format!("{program} is not installed ({package})"))
        };
        Ok(Tools {
            pgbench: need("pgbench", &[pg_bin], "postgresql")?,
            redis_server: need("redis-server", &[], "redis-server")?,
            redis_benchmark: need("redis-benchmark", &[], "redis-tools")?,
            haproxy: need("haproxy", &sbin, "haproxy")?,
        })
    }
}

/// One way to reach PostgreSQL and Redis.
struct Route {
    name: &'static str,
    pg: u16,
    redis: u16,
    /// The proxy process (none for direct).
    pid: Option<u32>,
}

/// One client run.
#[derive(Clone, Copy, Default)]
struct Sample {
    per_second: f64,
    /// Proxy CPU time per request, in microseconds.
    cpu_us: Option<f64>,
}

#[derive(Clone, Copy, PartialEq)]
enum Client {
    Pgbench,
    RedisBenchmark,
}

impl Client {
    fn name(self) -> &'static str {
        match self {
            Client::Pgbench => "pgbench -S, TPS",
            Client::RedisBenchmark => "redis-benchmark -t get,set, rps",
        }
    }
}

fn pgbench(tools: &Tools, port: u16, connections: usize, run: Duration) -> (f64, u64) {
    let output = Command::new(&tools.pgbench)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-S",
        ])
        .args(["-c", &connections.to_string()])
        .args(["-j", &connections.min(2).to_string()])
        .args(["-T", &run.as_secs().to_string(), "postgres"])
        .output()
        .expect("run pgbench");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "pgbench through port {port} failed: {}{}",
        text,
        String::from_utf8_lossy(&output.stderr)
    );
    let field = |prefix: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("pgbench printed no `{prefix}`: {text}"))
    };
    let tps = field("tps = ");
    let transactions = field("number of transactions actually processed: ") as u64;
    (tps, transactions)
}

/// Requests per second over GET and SET together, and the requests made.
fn redis_benchmark(tools: &Tools, port: u16, connections: usize, requests: usize) -> (f64, u64) {
    let output = Command::new(&tools.redis_benchmark)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", "get,set"])
        .args(["-c", &connections.to_string(), "-n", &requests.to_string()])
        .arg("--csv")
        .output()
        .expect("run redis-benchmark");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "redis-benchmark through port {port} failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seconds: f64 = ["\"SET\"", "\"GET\""]
        .iter()
        .map(|test| {
            let rps = text
                .lines()
                .find_map(|line| line.strip_prefix(test))
                .and_then(|rest| rest.split(',').nth(1))
                .and_then(|rps| rps.trim_matches('"').parse::<f64>().ok())
                .unwrap_or_else(|| panic!("redis-benchmark printed no {test} line: {text}"));
            requests as f64 / rps
        })
        .sum();
    let total = 2 * requests as u64;
    (total as f64 / seconds, total)
}

fn measure(
    tools: &Tools,
    scale: &Scale,
    client: Client,
    path: &Route,
    connections: usize,
) -> Sample {
    let before = path.pid.map(process_cpu);
    let (per_second, requests) = match client {
        Client::Pgbench => pgbench(tools, path.pg, connections, scale.pg_run),
        Client::RedisBenchmark => redis_benchmark(
            tools,
            path.redis,
            connections,
            (scale.redis_requests)(connections),
        ),
    };
    let cpu_us = before
        .zip(path.pid.map(process_cpu))
        .map(|(b, a)| (a - b).as_secs_f64() * 1e6 / requests as f64);
    Sample { per_second, cpu_us }
}

/// PostgreSQL (initdb, started, a pgbench database) and redis-server.
struct Databases {
    pg_port: u16,
    redis_port: u16,
    _postgres: Supervisor,
    _redis: ChildGuard,
}

fn start_databases(tools: &Tools, dir: &Path) -> Databases {
    let setup = PostgresSetup {
        port: free_port(),
        database: "postgres".into(),
        version: None,
    };
    let pg_dir = dir.join("pg");
    std::fs::create_dir_all(&pg_dir).expect("pg dir");
    let (command, launch) =
        postgres::prepare("bench-postgres", &setup, &pg_dir, Duration::from_secs(60))
            .expect("initdb");
    let supervisor = Supervisor::start_with(command, launch).expect("postgres starts");
    // Its port opens before it accepts connections (pg_isready says when it does).
    let pg_isready = postgres::bin_dir(None)
        .expect("postgres bin")
        .join("pg_isready");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !Command::new(&pg_isready)
        .args([
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            &setup.port.to_string(),
            "-t",
            "1",
        ])
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(
            Instant::now() < deadline,
            "postgres does not accept connections"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let init = Command::new(&tools.pgbench)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &setup.port.to_string(),
            "-U",
            "postgres",
        ])
        .args(["-i", "-q", "-s", "1", "postgres"])
        .output()
        .expect("pgbench -i");
    assert!(
        init.status.success(),
        "pgbench -i failed: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let redis_port = free_port();
    let redis = Command::new(&tools.redis_server)
        .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("start redis-server");
    let redis = ChildGuard(redis);
    wait_listening(redis_port, "redis-server");
    Databases {
        pg_port: setup.port,
        redis_port,
        _postgres: supervisor,
        _redis: redis,
    }
}

/// haproxy in tcp mode in front of both databases.
fn start_haproxy(tools: &Tools, dir: &Path, db: &Databases) -> (ChildGuard, Route) {
    let (pg, redis) = (free_port(), free_port());
    let config = format!(
        "global\n    maxconn 4096\ndefaults\n    mode tcp\n    timeout connect 5s\n    timeout client 1h\n    timeout server 1h\n\
         listen pg\n    bind 127.0.0.1:{pg}\n    server pg 127.0.0.1:{}\n\
         listen redis\n    bind 127.0.0.1:{redis}\n    server redis 127.0.0.1:{}\n",
        db.pg_port, db.redis_port
    );
    let file = dir.join("haproxy.cfg");
    std::fs::write(&file, config).expect("write haproxy.cfg");
    let child = Command::new(&tools.haproxy)
        .arg("-db")
        .arg("-f")
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start haproxy");
    let pid = child.id();
    let guard = ChildGuard(child);
    wait_listening(pg, "haproxy");
    wait_listening(redis, "haproxy");
    let path = Route {
        name: "haproxy 2.6, tcp mode",
        pg,
        redis,
        pid: Some(pid),
    };
    (guard, path)
}

/// `chaos-runner proxy` with a tcp-mode and a protocol-mode proxy per database, and the
/// toxic row's PostgreSQL proxy.
struct Ours {
    tcp: Route,
    protocol: Route,
    api: SocketAddr,
    toxic_pg: u16,
    _process: ChildGuard,
}

fn start_ours(dir: &Path, db: &Databases) -> Ours {
    let api = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let ports: Vec<u16> = (0..5).map(|_| free_port()).collect();
    let pg = format!("127.0.0.1:{}", db.pg_port);
    let redis = format!("127.0.0.1:{}", db.redis_port);
    let proxy = |name: &str, port: u16, upstream: &str, protocol: &str| {
        serde_json::json!({ "name": name, "listen": format!("127.0.0.1:{port}"),
            "upstream": upstream, "protocol": protocol, "enabled": true })
    };
    let config = serde_json::json!([
        proxy("pg-tcp", ports[0], &pg, "tcp"),
        proxy("redis-tcp", ports[1], &redis, "tcp"),
        proxy("pg-protocol", ports[2], &pg, "postgres"),
        proxy("redis-protocol", ports[3], &redis, "redis"),
        proxy("pg-toxic", ports[4], &pg, "tcp"),
    ]);
    let file = dir.join("proxies.json");
    std::fs::write(&file, config.to_string()).expect("write proxies.json");
    let child = Command::new(env!("CARGO_BIN_EXE_chaos-runner"))
        .args(["proxy", "--listen", &api.to_string(), "--config"])
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .env("NO_COLOR", "1")
        .spawn()
        .expect("start chaos-runner proxy");
    let pid = child.id();
    let guard = ChildGuard(child);
    for port in std::iter::once(api.port()).chain(ports.iter().copied()) {
        wait_listening(port, "chaos-runner proxy");
    }
    Ours {
        tcp: Route {
            name: "ours, tcp mode",
            pg: ports[0],
            redis: ports[1],
            pid: Some(pid),
        },
        protocol: Route {
            name: "ours, protocol mode",
            pg: ports[2],
            redis: ports[3],
            pid: Some(pid),
        },
        api,
        toxic_pg: ports[4],
        _process: guard,
    }
}

/// `pgbench -S` at [`BACKGROUND_TPS`] through `port` for `run`, until dropped.
fn background_load(tools: &Tools, port: u16, run: Duration) -> ChildGuard {
    let child = Command::new(&tools.pgbench)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-S",
        ])
        .args(["-c", &TOXIC_ROW_CONNECTIONS.to_string(), "-j", "2"])
        .args(["-R", &BACKGROUND_TPS.to_string()])
        .args(["-T", &run.as_secs().to_string(), "postgres"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start pgbench through the other proxy");
    ChildGuard(child)
}

/// Adds a 50 ms latency toxic (both ways) to the toxic row's proxy, through the admin API.
fn add_toxic(api: SocketAddr) {
    for stream in ["upstream", "downstream"] {
        let body = serde_json::json!({ "name": format!("slow-{stream}"), "type": "latency",
            "stream": stream, "attributes": { "latency": 50 } });
        let status = ureq::post(&format!("http://{api}/proxies/pg-toxic/toxics"))
            .send_json(body)
            .map(|r| r.status())
            .unwrap_or_else(|e| panic!("add the toxic: {e}"));
        assert_eq!(status, 200, "add the toxic");
    }
}

/// Removes what [`add_toxic`] added.
fn remove_toxic(api: SocketAddr) {
    for stream in ["upstream", "downstream"] {
        let status = ureq::delete(&format!(
            "http://{api}/proxies/pg-toxic/toxics/slow-{stream}"
        ))
        .call()
        .map(|r| r.status())
        .unwrap_or_else(|e| panic!("remove the toxic: {e}"));
        assert_eq!(status, 204, "remove the toxic");
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn median_cpu(samples: &[Sample]) -> Option<f64> {
    let cpu: Vec<f64> = samples.iter().filter_map(|s| s.cpu_us).collect();
    (!cpu.is_empty()).then(|| median(cpu))
}

fn cpu_text(us: Option<f64>) -> String {
    us.map_or_else(|| "-".to_owned(), |us| format!("{us:.1} us"))
}

fn main() {
    // cargo-nextest lists a binary's tests first: the smoke pass is this binary's one test.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            println!("smoke: test");
        }
        return;
    }
    let benching = args.iter().any(|a| a == "--bench");
    let mut scale = if benching { FULL } else { SMOKE };
    if let Some(rounds) = std::env::var("DB_PROXY_BENCH_ROUNDS")
        .ok()
        .filter(|_| benching)
    {
        scale.rounds = rounds
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .expect("DB_PROXY_BENCH_ROUNDS: a count above zero");
    }
    let tools = match Tools::find() {
        Ok(tools) => tools,
        Err(why) => {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "{why} (scripts/test installs it)"
            );
            eprintln!("db_proxy bench: SKIPPED: {why}; scripts/test installs it");
            return;
        }
    };
    let dir = TempDir(std::env::temp_dir().join(format!("db-proxy-bench-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).expect("temp dir");
    let db = start_databases(&tools, &dir.0);
    let (_haproxy, haproxy) = start_haproxy(&tools, &dir.0, &db);
    let ours = start_ours(&dir.0, &db);
    let direct = Route {
        name: "direct",
        pg: db.pg_port,
        redis: db.redis_port,
        pid: None,
    };
    let paths = [&direct, &ours.tcp, &ours.protocol, &haproxy];
    let clients = [Client::Pgbench, Client::RedisBenchmark];
    // samples[client][connections][path]
    let mut samples =
        vec![vec![vec![Vec::<Sample>::new(); paths.len()]; scale.connections.len()]; clients.len()];
    // The toxic row: toxic_row[client][condition].
    let mut toxic_row = vec![vec![Vec::<Sample>::new(); TOXIC_ROW_CONDITIONS.len()]; clients.len()];
    for round in 0..scale.rounds {
        for (c, &client) in clients.iter().enumerate() {
            for (n, &connections) in scale.connections.iter().enumerate() {
                for k in 0..paths.len() {
                    let p = (k + round) % paths.len();
                    let sample = measure(&tools, &scale, client, paths[p], connections);
                    eprintln!(
                        "round {}/{} {:<34} {:>2} conns {:<26} {:>9.0}/s  proxy CPU {}/request",
                        round + 1,
                        scale.rounds,
                        client.name(),
                        connections,
                        paths[p].name,
                        sample.per_second,
                        cpu_text(sample.cpu_us),
                    );
                    samples[c][n][p].push(sample);
                }
            }
        }
        // The toxic row: quiet; 8 connections at a fixed rate through the other proxy;
        // the same with the toxic on it (in an order that rotates each round).
        for k in 0..TOXIC_ROW_CONDITIONS.len() {
            let condition = (k + round) % TOXIC_ROW_CONDITIONS.len();
            let toxic = condition == 2;
            if toxic {
                add_toxic(ours.api);
            }
            let background = (condition > 0).then(|| {
                let run = scale.pg_run * 2 + Duration::from_secs(20);
                let load = background_load(&tools, ours.toxic_pg, run);
                // Its connections are open (and in the toxic) before the measurement.
                std::thread::sleep(Duration::from_millis(500));
                load
            });
            for (c, &client) in clients.iter().enumerate() {
                let sample = measure(&tools, &scale, client, &ours.tcp, TOXIC_ROW_CONNECTIONS);
                eprintln!(
                    "round {}/{} {:<34} {:>2} conns ours, tcp mode, {:<38} {:>9.0}/s  proxy CPU {}/request",
                    round + 1,
                    scale.rounds,
                    client.name(),
                    TOXIC_ROW_CONNECTIONS,
                    TOXIC_ROW_CONDITIONS[condition],
                    sample.per_second,
                    cpu_text(sample.cpu_us),
                );
                toxic_row[c][condition].push(sample);
            }
            drop(background);
            if toxic {
                remove_toxic(ours.api);
            }
        }
    }
    if !benching {
        eprintln!(
            "smoke pass done (run `cargo bench -p chaos-runner --bench db_proxy` to measure)"
        );
        return;
    }

    println!("\n| client | connections | direct | ours, tcp mode | ours, protocol mode | haproxy 2.6, tcp mode | ours tcp / haproxy | ours protocol / haproxy | proxy CPU per request: ours tcp, ours protocol, haproxy |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut rows = Vec::new();
    let mut at_least_haproxy = true;
    for (c, &client) in clients.iter().enumerate() {
        for (n, &connections) in scale.connections.iter().enumerate() {
            let rate = |p: usize| median(samples[c][n][p].iter().map(|s| s.per_second).collect());
            let cpu = |p: usize| median_cpu(&samples[c][n][p]);
            let (d, tcp, protocol, peer) = (rate(0), rate(1), rate(2), rate(3));
            at_least_haproxy &= tcp >= peer && protocol >= peer;
            println!(
                "| `{}` | {connections} | {d:.0} | {tcp:.0} ({:.2}x) | {protocol:.0} ({:.2}x) | {peer:.0} ({:.2}x) | **{:.2}x** | **{:.2}x** | {}, {}, {} |",
                client.name(),
                tcp / d,
                protocol / d,
                peer / d,
                tcp / peer,
                protocol / peer,
                cpu_text(cpu(1)),
                cpu_text(cpu(2)),
                cpu_text(cpu(3)),
            );
            rows.push(serde_json::json!({
                "client": client.name(), "connections": connections,
                "direct": d, "ours_tcp": tcp, "ours_protocol": protocol, "haproxy": peer,
                "cpu_us_per_request": { "ours_tcp": cpu(1), "ours_protocol": cpu(2), "haproxy": cpu(3) },
            }));
        }
    }
    let mut toxic_json = Vec::new();
    println!("\nOurs in tcp mode at {TOXIC_ROW_CONNECTIONS} connections while another proxy of the same process carries {TOXIC_ROW_CONNECTIONS} pgbench connections at {BACKGROUND_TPS} TPS, with and without a 50 ms latency toxic (both ways) on it:");
    println!("\n| client | quiet | other proxy loaded | other proxy loaded, with the toxic | toxic / loaded | proxy CPU per request: quiet, loaded, toxic |");
    println!("|---|---:|---:|---:|---:|---|");
    for (c, &client) in clients.iter().enumerate() {
        let rate = |k: usize| median(toxic_row[c][k].iter().map(|s| s.per_second).collect());
        let cpu = |k: usize| median_cpu(&toxic_row[c][k]);
        let (quiet, loaded, toxic) = (rate(0), rate(1), rate(2));
        println!(
            "| `{}` | {quiet:.0} | {loaded:.0} | {toxic:.0} | **{:.2}x** | {}, {}, {} |",
            client.name(),
            toxic / loaded,
            cpu_text(cpu(0)),
            cpu_text(cpu(1)),
            cpu_text(cpu(2)),
        );
        toxic_json.push(serde_json::json!({
            "client": client.name(), "quiet": quiet, "loaded": loaded, "toxic": toxic,
            "cpu_us_per_request": { "quiet": cpu(0), "loaded": cpu(1), "toxic": cpu(2) },
        }));
    }
    println!("\nours at least haproxy in every row: {at_least_haproxy}");
    let summary = serde_json::json!({
        "rounds": scale.rounds,
        "pgbench_seconds": scale.pg_run.as_secs(),
        "rows": rows,
        "toxic_on_another_proxy": toxic_json,
        "at_least_haproxy_everywhere": at_least_haproxy,
    });
    let out = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("db-proxy-bench.json");
    if let Err(e) = std::fs::write(&out, summary.to_string()) {
        eprintln!("cannot write {}: {e}", out.display());
    }
}
