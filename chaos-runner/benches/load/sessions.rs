//! Idle WebSocket sessions: how many the generator holds on this machine, and the client
//! memory each costs.
//!
//! The server is this bench binary again, in processes of its own (`--lobby-server`,
//! sharing one port with SO_REUSEPORT, as many as their open-file limit needs), so its
//! memory is not the client's: a lobby answering `{"type":"ping","id":X}` with a pong. The
//! client is the load generator itself (`spec.load.websocket`): `sessions` sessions, each
//! with a heartbeat every 10 s, opened at 2,000 per second from as many loopback source
//! addresses as the ports need, in `chaos-runner load-worker` processes when one process
//! may not hold them all. Memory per session is the growth of the resident sets of the
//! bench process and its workers from before the sessions to all of them held and idle,
//! divided by the sessions.

use futures_util::{SinkExt, StreamExt};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use chaos_runner::load::LoadGenerator;
use chaos_runner::spec::scenario::LoadPlan;
use chaos_runner::spec::{LoadSli, LoadSpec};

/// What one measure found.
pub struct SessionFigures {
    /// Sessions wanted.
    pub wanted: u32,
    /// Sessions held at the end.
    pub held: f64,
    /// How long opening them all took.
    pub ramp: Duration,
    /// Client memory per held session, in bytes.
    pub bytes_per_session: f64,
    /// Heartbeat latency p95 over the last 10 s, in ms.
    pub heartbeat_p95_ms: Option<f64>,
}

/// Runs the lobby server when this process was started as one: prints its port, serves
/// until its stdin closes. `true` when it did.
pub fn serve_if_asked() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let Some(at) = args.iter().position(|a| a == "--lobby-server") else {
        return false;
    };
    // The port to share, or 0 for the first server.
    let port: u16 = args.get(at + 1).and_then(|p| p.parse().ok()).unwrap_or(0);
    chaos_runner::load::websocket::raise_fd_limit(250_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket.set_reuseport(true).expect("SO_REUSEPORT");
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        socket
            .bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            .expect("the port");
        let listener = socket.listen(4096).expect("listening");
        println!("{}", listener.local_addr().expect("an address").port());
        // Stop when the bench closes our stdin.
        tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            std::process::exit(0);
        });
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let config = WebSocketConfig::default()
                    .read_buffer_size(1024)
                    .write_buffer_size(0);
                let Ok(mut ws) =
                    tokio_tungstenite::accept_async_with_config(stream, Some(config)).await
                else {
                    return;
                };
                while let Some(Ok(Message::Text(text))) = ws.next().await {
                    let v: serde_json::Value =
                        serde_json::from_str(text.as_str()).unwrap_or_default();
                    let pong = serde_json::json!({"type": "pong", "id": v["id"]});
                    if ws
                        .send(Message::Text(pong.to_string().into()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    true
}

fn resident_of(pid: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb * 1024.0)
}

/// The resident set of this process and of its `load-worker` children.
fn client_resident_bytes() -> f64 {
    let me = std::process::id().to_string();
    let mut total = resident_of("self");
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The parent pid is the 2nd field after the command (in parentheses).
        let parent = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().nth(1));
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if parent == Some(me.as_str()) && cmdline.contains("load-worker") {
            total += resident_of(&pid);
        }
    }
    total
}

struct Servers(Vec<Child>);

impl Drop for Servers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `n` lobby servers on one port; returns them and the port.
fn lobby_servers(n: u32) -> (Servers, u16) {
    let mut servers = Servers(Vec::new());
    let mut port = 0u16;
    for _ in 0..n.max(1) {
        let mut child = Command::new(std::env::current_exe().expect("this binary"))
            .arg("--lobby-server")
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("a lobby server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("its stdout"))
            .read_line(&mut line)
            .expect("its port");
        port = line.trim().parse().expect("a port number");
        servers.0.push(child);
    }
    (servers, port)
}

/// Holds `sessions` idle sessions for a while and measures them.
pub fn measure(sessions: u32) -> SessionFigures {
    // Each server process holds what its open-file limit allows, less a margin for the
    // uneven spread of connections over them.
    let per_server = chaos_runner::load::websocket::sessions_per_process(sessions, 0);
    let (_servers, port) = lobby_servers((sessions + sessions / 10).div_ceil(per_server));
    // Workers, when the sessions need them, run the runner's own binary.
    std::env::set_var("CHAOS_RUNNER_BIN", env!("CARGO_BIN_EXE_chaos-runner"));
    let url = format!("http://127.0.0.1:{port}");
    let spec: LoadSpec = serde_json::from_value(serde_json::json!({
        "target": url, "seed": 1, "timeout": "10s",
        "websocket": {
            "path": "/lobby?player={{player}}", "sessions": sessions, "connectRate": 2000,
            "messages": [{ "name": "heartbeat", "every": "10s",
                           "json": { "type": "ping", "id": "{{seq}}" }, "replyMatch": "/id" }]
        }
    }))
    .expect("a load spec");
    let plan = LoadPlan::from_spec(spec).expect("valid sessions");
    let before = client_resident_bytes();
    let started = Instant::now();
    let mut load = LoadGenerator::start(&plan, started, Duration::from_secs(10)).expect("start");
    let stats = load.stats();
    let window = Duration::from_secs(10);
    let limit = Duration::from_secs(60) + Duration::from_millis(u64::from(sessions) / 2);
    while stats.sli(LoadSli::SessionsHeld, None, None, window) != Some(1.0)
        && started.elapsed() < limit
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let ramp = started.elapsed();
    // Idle: each heartbeat has gone out and been answered at least once.
    std::thread::sleep(Duration::from_secs(11));
    let held = stats
        .sli(LoadSli::SessionsHeld, None, None, window)
        .unwrap_or(0.0);
    let after = client_resident_bytes();
    let heartbeat_p95_ms = stats.sli(LoadSli::LatencyP95, Some("heartbeat"), None, window);
    let report = load.stop();
    if let Some(s) = report.sessions {
        eprintln!(
            "sessions: {} wanted, {} established, {} failed, {} lost, {} held at most",
            s.wanted, s.established, s.failed, s.lost, s.held_max
        );
    }
    let held_sessions = (held * f64::from(sessions)).max(1.0);
    SessionFigures {
        wanted: sessions,
        held,
        ramp,
        bytes_per_session: (after - before) / held_sessions,
        heartbeat_p95_ms,
    }
}
