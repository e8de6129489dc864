//! Idle WebSocket sessions: how many the generator holds on this machine, and the client
//! memory each costs.
//!
//! The server is this bench binary again, in a process of its own (`--lobby-server`), so
//! its memory is not the client's: a lobby answering `{"type":"ping","id":X}` with a pong.
//! The client is the load generator itself (`spec.load.websocket`): `sessions` sessions,
//! each with a heartbeat every 10 s, opened at 5,000 per second from as many loopback
//! source addresses as the ports need. Memory per session is the growth of the bench
//! process's resident set from before the sessions to all of them held and idle, divided
//! by the sessions.

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
    if !std::env::args().any(|a| a == "--lobby-server") {
        return false;
    }
    chaos_runner::load::websocket::raise_fd_limit(250_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
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

fn resident_bytes() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb * 1024.0)
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Holds `sessions` idle sessions for a while and measures them.
pub fn measure(sessions: u32) -> SessionFigures {
    let mut child = Command::new(std::env::current_exe().expect("this binary"))
        .arg("--lobby-server")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the lobby server");
    let mut port = String::new();
    BufReader::new(child.stdout.take().expect("its stdout"))
        .read_line(&mut port)
        .expect("its port");
    let _server = Server(child);
    let url = format!("http://127.0.0.1:{}", port.trim());
    let spec: LoadSpec = serde_json::from_value(serde_json::json!({
        "target": url, "seed": 1, "timeout": "10s",
        "websocket": {
            "path": "/lobby?player={{player}}", "sessions": sessions, "connectRate": 5000,
            "messages": [{ "name": "heartbeat", "every": "10s",
                           "json": { "type": "ping", "id": "{{seq}}" }, "replyMatch": "/id" }]
        }
    }))
    .expect("a load spec");
    let plan = LoadPlan::from_spec(spec).expect("valid sessions");
    let before = resident_bytes();
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
    let after = resident_bytes();
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
