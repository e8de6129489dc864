//! WebSocket sessions: each virtual player opens a WebSocket, holds it for the whole run
//! and sends its messages on their schedules; an answer is matched to its message by a
//! field (`replyMatch`) and timed from the scheduled send time. A session that breaks is
//! counted as lost and opened again about a second later, backing off while it fails.
//!
//! Built to hold many idle sessions on one machine: one task per session on one thread,
//! small read and write buffers, the file-descriptor limit raised where allowed, and
//! several loopback source addresses when one address has too few ports.

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::protocol::{
    frame::coding::CloseCode, CloseFrame, WebSocketConfig,
};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::recorder::{Outcome, SessionEvent};
use super::{LoadError, LoadStats};
use crate::spec::scenario::{draw_variables, Body, WsPlan};
use crate::spec::template::Values;

/// Sessions one local address takes towards one target. Linux's default ephemeral range
/// has about 28,000 ports, but `connect` searches it for a free one, and past about a
/// third in use the search dominated the client's CPU (opening 60,000 sessions from 3
/// addresses spent 90% of it in the kernel's port search): an address is used up to 8,000.
const PORTS_PER_ADDRESS: u32 = 8_000;

/// A broken session is opened again after about this long; each failed attempt doubles
/// the pause, up to [`RECONNECT_MAX`], with ±50% jitter, as game clients back off (100,000
/// sessions retrying every second would be a storm of their own).
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// The longest pause between attempts to open a session.
const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// The pause before attempt `failed + 1` to open a session, for a jitter factor in
/// [0.5, 1.5).
///
/// ```
/// use std::time::Duration;
/// use chaos_runner::load::websocket::reconnect_pause;
/// assert_eq!(reconnect_pause(0, 1.0), Duration::from_secs(1));
/// assert_eq!(reconnect_pause(3, 1.0), Duration::from_secs(8));
/// assert_eq!(reconnect_pause(40, 1.0), Duration::from_secs(30));
/// ```
pub fn reconnect_pause(failed: u32, jitter: f64) -> Duration {
    let doubled = RECONNECT_AFTER.saturating_mul(1u32 << failed.min(16));
    doubled.min(RECONNECT_MAX).mul_f64(jitter.clamp(0.5, 1.5))
}

/// Where sessions connect, and from where.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    address: SocketAddr,
    /// `ws://host:port` (the Host the handshake names) and the target's path prefix.
    base: String,
    prefix: String,
    sources: Vec<IpAddr>,
}

/// The local addresses to connect from: the plan's, or for a loopback IPv4 target with
/// more sessions than one address has ports, 127.0.0.1 up to as many as needed.
///
/// ```
/// use chaos_runner::load::websocket::source_addresses;
/// let target = "127.0.0.1:80".parse().unwrap();
/// assert!(source_addresses(&[], target, 1000).is_empty());
/// assert_eq!(source_addresses(&[], target, 100_000).len(), 13);
/// ```
pub fn source_addresses(given: &[IpAddr], target: SocketAddr, sessions: u32) -> Vec<IpAddr> {
    if !given.is_empty() {
        return given.to_vec();
    }
    match target.ip() {
        IpAddr::V4(ip) if ip.is_loopback() && sessions > PORTS_PER_ADDRESS => {
            let n = sessions.div_ceil(PORTS_PER_ADDRESS).min(250) as u8;
            (1..=n)
                .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
                .collect()
        }
        _ => Vec::new(),
    }
}

/// Lets `connect` choose the local port of a socket bound to a source address
/// (`IP_BIND_ADDRESS_NO_PORT`): `bind` alone must find a port free towards every
/// destination, a search that grows with the ports in use and made opening 40,000
/// sessions take minutes of kernel time.
fn defer_port_choice(socket: &tokio::net::TcpSocket) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: sets an integer option on a socket this process owns; the pointer and length
    // describe `on`, which outlives the call.
    let _ = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            std::ptr::addr_of!(on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// Raises this process's open-file limit to hold `wanted` more descriptors: the soft
/// limit up to the hard one, and the hard one too where allowed (as root). Returns the
/// soft limit in force.
///
/// ```
/// assert!(chaos_runner::load::websocket::raise_fd_limit(10) >= 10);
/// ```
pub fn raise_fd_limit(wanted: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write and read the struct given, nothing else.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        let need = wanted.saturating_add(1024);
        if limit.rlim_cur >= need {
            return limit.rlim_cur;
        }
        if limit.rlim_max < need {
            let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .unwrap_or(1_048_576);
            let raised = libc::rlimit {
                rlim_cur: need.min(nr_open),
                rlim_max: need.min(nr_open),
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
        let soft = libc::rlimit {
            rlim_cur: limit.rlim_max.min(need).max(limit.rlim_cur),
            rlim_max: limit.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &soft) == 0 {
            return soft.rlim_cur;
        }
        limit.rlim_cur
    }
}

/// Where sessions report what happens: the run's statistics, or (in a worker process) the
/// batch sent to the runner.
pub trait SessionSink: Clone + Send + Sync + 'static {
    /// A session opened, failed to open, or was lost.
    fn session(&self, event: SessionEvent, at: Instant);
    /// A message's answer (or its failure).
    fn record(&self, op: usize, outcome: Outcome, latency: Duration, at: Instant);
}

impl SessionSink for LoadStats {
    fn session(&self, event: SessionEvent, at: Instant) {
        LoadStats::session(self, event, at);
    }

    fn record(&self, op: usize, outcome: Outcome, latency: Duration, at: Instant) {
        LoadStats::record(self, op, outcome, latency, at);
    }
}

/// Open files a process keeps for other uses than sessions (its HTTP players, logs,
/// journals, the runtime).
const RESERVED_FDS: u64 = 1024;

/// The sessions one process may hold: its open-file limit (raised where allowed) less what
/// it keeps for other uses and `players` connections. `CHAOS_LOAD_SESSIONS_PER_PROCESS`
/// sets a lower bound for tests.
///
/// ```
/// assert!(chaos_runner::load::websocket::sessions_per_process(1000, 0) >= 1);
/// ```
pub fn sessions_per_process(wanted: u32, players: u32) -> u32 {
    let limit = raise_fd_limit(u64::from(wanted) + u64::from(players));
    let room = limit
        .saturating_sub(RESERVED_FDS + u64::from(players))
        .max(1);
    let room = u32::try_from(room).unwrap_or(u32::MAX);
    match std::env::var("CHAOS_LOAD_SESSIONS_PER_PROCESS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        Some(set) => room.min(set.max(1)),
        None => room,
    }
}

/// The target's URL, when sessions can be opened on it (`http://`, so `ws://`).
fn session_target(target: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(target).map_err(|e| e.to_string())?;
    if url.scheme() != "http" {
        return Err(
            "WebSocket sessions need an http:// target (ws://); wss:// is not supported".into(),
        );
    }
    Ok(url)
}

/// The target of a plan's sessions, resolved.
pub(crate) async fn endpoint(target: &str, plan: &WsPlan) -> Result<Endpoint, String> {
    let url = session_target(target)?;
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let address = tokio::net::lookup_host((bare, port))
        .await
        .ok()
        .and_then(|mut found| found.next())
        .ok_or_else(|| format!("cannot resolve `{host}`"))?;
    Ok(Endpoint {
        address,
        base: format!("ws://{host}:{port}"),
        prefix: url.path().trim_end_matches('/').to_owned(),
        sources: source_addresses(&plan.source_addresses, address, plan.sessions),
    })
}

/// Starts the sessions of `plan` against `target`; they close when `stop` is set. Message
/// `i` is recorded as operation `first_op + i`. Sessions that fit this process's open-file
/// limit run on a thread of its own; more run in worker processes (`chaos-runner
/// load-worker`, see [`super::worker`]), each holding a share.
#[allow(clippy::too_many_arguments)]
pub fn start(
    plan: Arc<WsPlan>,
    spec: &crate::spec::LoadSpec,
    first_op: usize,
    seed: u64,
    stats: LoadStats,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, LoadError> {
    let target = spec.target.clone();
    let timeout = spec.timeout;
    session_target(&target).map_err(LoadError::Start)?;
    stats.want_sessions(u64::from(plan.sessions));
    let players = if spec.rate.is_some() { spec.players } else { 0 };
    let per_process = sessions_per_process(plan.sessions, players);
    if plan.sessions > per_process {
        return super::worker::start_workers(plan, spec, per_process, first_op, seed, stats, stop);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| LoadError::Start(e.to_string()))?;
    std::thread::Builder::new()
        .name("load-ws".into())
        .spawn(move || {
            runtime.block_on(async move {
                let endpoint = match endpoint(&target, &plan).await {
                    Ok(e) => Arc::new(e),
                    Err(e) => {
                        tracing::error!(error = %e, "no WebSocket sessions");
                        return;
                    }
                };
                let shard = Shard {
                    first: 1,
                    count: plan.sessions,
                    connect_rate: plan.connect_rate,
                };
                run(plan, endpoint, timeout, first_op, seed, shard, stats, stop).await;
            })
        })
        .map_err(|e| LoadError::Start(e.to_string()))
}

/// The sessions one process holds: numbers `first` to `first + count - 1`, opened at
/// `connect_rate` per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    /// The first session's number.
    pub first: u32,
    /// How many.
    pub count: u32,
    /// New sessions per second.
    pub connect_rate: u32,
}

/// Holds the sessions of `shard` until `stop`, reporting to `sink`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run<S: SessionSink>(
    plan: Arc<WsPlan>,
    endpoint: Arc<Endpoint>,
    timeout: Duration,
    first_op: usize,
    seed: u64,
    shard: Shard,
    sink: S,
    stop: Arc<AtomicBool>,
) {
    let cancel = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    let start = tokio::time::Instant::now();
    let every = Duration::from_secs_f64(1.0 / f64::from(shard.connect_rate.max(1)));
    for i in 0..shard.count {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let due = start + every * i;
        if due > tokio::time::Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        let n = shard.first + i;
        let session = Session {
            number: n,
            id: format!("p{n}"),
            plan: plan.clone(),
            endpoint: endpoint.clone(),
            timeout,
            first_op,
            seed,
            stats: sink.clone(),
            cancel: cancel.clone(),
        };
        tasks.spawn(session.hold());
    }
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    // Each session sends its close and ends; a peer that does not answer the close is
    // not waited for beyond the timeout.
    let _ = tokio::time::timeout(timeout + Duration::from_secs(1), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
}

/// One session's settings.
struct Session<S> {
    number: u32,
    id: String,
    plan: Arc<WsPlan>,
    endpoint: Arc<Endpoint>,
    timeout: Duration,
    first_op: usize,
    seed: u64,
    stats: S,
    cancel: CancellationToken,
}

/// A message sent, awaiting its answer.
struct Pending {
    message: usize,
    key: Value,
    scheduled: Instant,
    deadline: tokio::time::Instant,
}

/// How a connected session ended.
enum Ended {
    /// The run ended.
    Stopped,
    /// The server closed it or it broke.
    Lost,
}

impl<S: SessionSink> Session<S> {
    /// Opens the session, holds it until the run ends, and opens it again when it breaks.
    async fn hold(self) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(
            self.seed ^ u64::from(self.number).wrapping_mul(0x2545_f491_4f6c_dd1d),
        );
        let mut variables = Vec::new();
        draw_variables(&self.plan.variables, &mut variables, false, &mut rng);
        let mut seq = 0u64;
        let mut failed_attempts = 0u32;
        loop {
            let path = self
                .plan
                .path
                .render(&Values {
                    player: &self.id,
                    number: self.number,
                    seq,
                    variables: &variables,
                    captures: &[],
                })
                .unwrap_or_default();
            let opened = tokio::select! {
                _ = self.cancel.cancelled() => return,
                opened = tokio::time::timeout(self.timeout, self.connect(&path)) => opened,
            };
            let ws = match opened {
                Ok(Ok(ws)) => ws,
                failed => {
                    if let Ok(Err(e)) = failed {
                        tracing::debug!(session = self.number, error = %e, "websocket session not opened");
                    }
                    self.stats.session(SessionEvent::Failed, Instant::now());
                    let pause = reconnect_pause(failed_attempts, rng.random_range(0.5..1.5));
                    failed_attempts = failed_attempts.saturating_add(1);
                    if self.pause(pause).await {
                        return;
                    }
                    continue;
                }
            };
            self.stats
                .session(SessionEvent::Established, Instant::now());
            failed_attempts = 0;
            // Each message starts at a random point of its interval, so sessions opened
            // together do not send together.
            let now = tokio::time::Instant::now();
            let mut due: Vec<tokio::time::Instant> = self
                .plan
                .messages
                .iter()
                .map(|m| now + m.every.mul_f64(rng.random::<f64>()))
                .collect();
            match self
                .converse(ws, &mut due, &mut variables, &mut seq, &mut rng)
                .await
            {
                Ended::Stopped => return,
                Ended::Lost => {
                    self.stats.session(SessionEvent::Lost, Instant::now());
                    if self
                        .pause(reconnect_pause(0, rng.random_range(0.5..1.5)))
                        .await
                    {
                        return;
                    }
                }
            }
        }
    }

    /// Waits `pause` before opening again; `true` when the run ended meanwhile.
    async fn pause(&self, pause: Duration) -> bool {
        tokio::select! {
            _ = self.cancel.cancelled() => true,
            _ = tokio::time::sleep(pause) => false,
        }
    }

    async fn connect(
        &self,
        path: &str,
    ) -> Result<
        tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
        Box<dyn std::error::Error + Send + Sync>,
    > {
        let e = &self.endpoint;
        let socket = if e.address.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        if !e.sources.is_empty() {
            let source = e.sources[self.number as usize % e.sources.len()];
            defer_port_choice(&socket);
            socket.bind(SocketAddr::new(source, 0))?;
        }
        let stream = socket.connect(e.address).await?;
        let _ = stream.set_nodelay(true);
        // Small buffers: an idle session holds little (see BENCHMARKS.md, sessions).
        let config = WebSocketConfig::default()
            .read_buffer_size(1024)
            .write_buffer_size(0)
            .max_message_size(Some(1 << 20))
            .max_frame_size(Some(1 << 20));
        let url = format!("{}{}{}", e.base, e.prefix, path);
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await?;
        Ok(ws)
    }

    /// Sends the messages when due and reads the answers, until the run ends or the
    /// session breaks.
    async fn converse(
        &self,
        mut ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
        due: &mut [tokio::time::Instant],
        variables: &mut Vec<Value>,
        seq: &mut u64,
        rng: &mut rand::rngs::SmallRng,
    ) -> Ended {
        let mut pending: Vec<Pending> = Vec::new();
        let far = tokio::time::Instant::now() + Duration::from_secs(86_400);
        loop {
            let next_send = due.iter().copied().min().unwrap_or(far);
            let next_deadline = pending.iter().map(|p| p.deadline).min().unwrap_or(far);
            let wake = next_send.min(next_deadline);
            tokio::select! {
                _ = self.cancel.cancelled() => {
                    // Answers cut off by the end of the run are not failures.
                    pending.clear();
                    let close = CloseFrame { code: CloseCode::Normal, reason: "run ended".into() };
                    let _ = tokio::time::timeout(self.timeout, async {
                        let _ = ws.close(Some(close)).await;
                        while let Some(Ok(_)) = ws.next().await {}
                    }).await;
                    return Ended::Stopped;
                }
                incoming = ws.next() => match incoming {
                    Some(Ok(Message::Text(text))) => self.answer(&mut pending, text.as_str()),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        self.fail_pending(&mut pending);
                        return Ended::Lost;
                    }
                    Some(Ok(_)) => {}
                },
                _ = tokio::time::sleep_until(wake) => {
                    let now = tokio::time::Instant::now();
                    self.expire(&mut pending, now);
                    for (i, at) in due.iter_mut().enumerate() {
                        if *at > now {
                            continue;
                        }
                        let scheduled = at.into_std();
                        let m = &self.plan.messages[i];
                        *at += m.every;
                        if *at <= now {
                            // Far behind (a stalled thread): skip to the next slot.
                            *at = now + m.every;
                        }
                        draw_variables(&self.plan.variables, variables, true, rng);
                        let values = Values { player: &self.id, number: self.number, seq: *seq, variables, captures: &[] };
                        *seq += 1;
                        let (text, json) = match &m.body {
                            Body::Json(t) => match t.render(&values) {
                                Ok(v) => (v.to_string(), Some(v)),
                                Err(_) => continue,
                            },
                            Body::Text(t) => match t.render(&values) {
                                Ok(s) => (s, None),
                                Err(_) => continue,
                            },
                            Body::Empty => continue,
                        };
                        if ws.send(Message::Text(text.into())).await.is_err() {
                            self.fail_pending(&mut pending);
                            return Ended::Lost;
                        }
                        match (&m.reply_match, json) {
                            (Some(pointer), Some(v)) => pending.push(Pending {
                                message: i,
                                key: v.pointer(pointer).cloned().unwrap_or(Value::Null),
                                scheduled,
                                deadline: now + m.timeout,
                            }),
                            _ => self.stats.record(self.first_op + i, Outcome::Success, Instant::now().saturating_duration_since(scheduled), Instant::now()),
                        }
                    }
                }
            }
        }
    }

    /// Matches an answer to the message it answers, by that message's `replyMatch` field.
    fn answer(&self, pending: &mut Vec<Pending>, text: &str) {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let found = pending.iter().position(|p| {
            self.plan.messages[p.message]
                .reply_match
                .as_deref()
                .and_then(|ptr| v.pointer(ptr))
                == Some(&p.key)
        });
        if let Some(i) = found {
            let p = pending.swap_remove(i);
            let now = Instant::now();
            self.stats.record(
                self.first_op + p.message,
                Outcome::Success,
                now.saturating_duration_since(p.scheduled),
                now,
            );
        }
    }

    fn expire(&self, pending: &mut Vec<Pending>, now: tokio::time::Instant) {
        pending.retain(|p| {
            let alive = p.deadline > now;
            if !alive {
                let at = Instant::now();
                self.stats.record(
                    self.first_op + p.message,
                    Outcome::Error,
                    at.saturating_duration_since(p.scheduled),
                    at,
                );
            }
            alive
        });
    }

    fn fail_pending(&self, pending: &mut Vec<Pending>) {
        let at = Instant::now();
        for p in pending.drain(..) {
            self.stats.record(
                self.first_op + p.message,
                Outcome::Error,
                at.saturating_duration_since(p.scheduled),
                at,
            );
        }
    }
}
