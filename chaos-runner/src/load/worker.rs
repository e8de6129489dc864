//! WebSocket sessions in worker processes, for more sessions than one process may hold open
//! files: the runner starts `chaos-runner load-worker` once per share, sends it its order
//! (one JSON line on stdin: the load spec, its share of session numbers), and reads back a
//! batch of what its sessions saw every 200 ms (one JSON line on stdout), which it records
//! as its own. Closing a worker's stdin ends its sessions; it flushes and exits.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::recorder::{Outcome, SessionEvent};
use super::websocket::{self, SessionSink, Shard};
use super::{LoadError, LoadStats};
use crate::spec::scenario::{LoadPlan, WsPlan};
use crate::spec::LoadSpec;

/// How often a worker sends its batch.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// What a worker is told to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerOrder {
    /// The run's `spec.load` (its sessions; a scenario is ignored).
    pub spec: LoadSpec,
    /// This worker's sessions.
    pub shard: Shard,
    /// The operation index of the first message.
    pub first_op: usize,
    /// The run's seed.
    pub seed: u64,
}

/// What a worker's sessions saw since its last batch.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Batch {
    /// Sessions opened.
    pub established: u64,
    /// Sessions that failed to open.
    pub failed: u64,
    /// Sessions lost.
    pub lost: u64,
    /// Messages: operation, answered in time, latency in microseconds.
    pub messages: Vec<(usize, bool, u64)>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.established == 0 && self.failed == 0 && self.lost == 0 && self.messages.is_empty()
    }

    /// Records the batch in the run's statistics, as of `at`.
    fn apply(&self, stats: &LoadStats, at: Instant) {
        for (event, n) in [
            (SessionEvent::Established, self.established),
            (SessionEvent::Failed, self.failed),
            (SessionEvent::Lost, self.lost),
        ] {
            for _ in 0..n {
                stats.session(event, at);
            }
        }
        for (op, ok, us) in &self.messages {
            let outcome = if *ok {
                Outcome::Success
            } else {
                Outcome::Error
            };
            stats.record(*op, outcome, Duration::from_micros(*us), at);
        }
    }
}

/// A worker's sink: collects into the next batch.
#[derive(Debug, Clone, Default)]
struct Collector(Arc<Mutex<Batch>>);

impl Collector {
    fn take(&self) -> Batch {
        std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

impl SessionSink for Collector {
    fn session(&self, event: SessionEvent, _at: Instant) {
        let mut b = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match event {
            SessionEvent::Established => b.established += 1,
            SessionEvent::Failed => b.failed += 1,
            SessionEvent::Lost => b.lost += 1,
        }
    }

    fn record(&self, op: usize, outcome: Outcome, latency: Duration, _at: Instant) {
        let ok = outcome == Outcome::Success;
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .messages
            .push((op, ok, us));
    }
}

/// A worker could not run.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// Its order was missing or malformed.
    #[error("bad order on stdin: {0}")]
    Order(String),
    /// Its runtime could not start, or its target could not be resolved.
    #[error("{0}")]
    Start(String),
}

/// Runs a worker: reads its order from `input`, holds its sessions, writes batches to
/// `output` until `input` ends.
pub fn serve(
    input: impl std::io::Read + Send + 'static,
    mut output: impl Write + Send + 'static,
) -> Result<(), WorkerError> {
    let mut input = BufReader::new(input);
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|e| WorkerError::Order(e.to_string()))?;
    let order: WorkerOrder =
        serde_json::from_str(&line).map_err(|e| WorkerError::Order(e.to_string()))?;
    let mut spec = order.spec;
    spec.scenario = None;
    spec.scenario_file = None;
    let plan = LoadPlan::from_spec(spec).map_err(|p| WorkerError::Order(format!("{p:?}")))?;
    let ws: Arc<WsPlan> = plan
        .websocket
        .ok_or_else(|| WorkerError::Order("the order has no websocket sessions".into()))?;
    websocket::raise_fd_limit(u64::from(order.shard.count));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| WorkerError::Start(e.to_string()))?;
    let stop = Arc::new(AtomicBool::new(false));
    // The runner closes our stdin to stop us.
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut rest = String::new();
            while input.read_line(&mut rest).is_ok_and(|n| n > 0) {
                rest.clear();
            }
            stop.store(true, Ordering::Relaxed);
        });
    }
    let collector = Collector::default();
    let flushing = Arc::new(AtomicBool::new(true));
    let flusher = {
        let (collector, flushing) = (collector.clone(), flushing.clone());
        std::thread::spawn(move || loop {
            let last = !flushing.load(Ordering::Relaxed);
            std::thread::sleep(if last { Duration::ZERO } else { FLUSH_EVERY });
            let batch = collector.take();
            if !batch.is_empty() {
                let text = serde_json::to_string(&batch).unwrap_or_default();
                if writeln!(output, "{text}")
                    .and_then(|_| output.flush())
                    .is_err()
                {
                    return;
                }
            }
            if last {
                return;
            }
        })
    };
    let target = plan.spec.target.clone();
    let timeout = plan.spec.timeout;
    let result = runtime.block_on(async {
        let endpoint = Arc::new(
            websocket::endpoint(&target, &ws)
                .await
                .map_err(WorkerError::Start)?,
        );
        websocket::run(
            ws,
            endpoint,
            timeout,
            order.first_op,
            order.seed,
            order.shard,
            collector,
            stop,
        )
        .await;
        Ok(())
    });
    flushing.store(false, Ordering::Relaxed);
    let _ = flusher.join();
    result
}

/// The program workers run: `CHAOS_RUNNER_BIN`, or this program when it is the runner.
fn worker_program() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHAOS_RUNNER_BIN") {
        return Some(PathBuf::from(path));
    }
    let me = std::env::current_exe().ok()?;
    me.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("chaos-runner"))
        .then_some(me)
}

struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    reader: JoinHandle<()>,
}

/// Starts `ceil(sessions / per_process)` workers, each with its share of the sessions and
/// of the connect rate; the returned thread stops them when `stop` is set.
pub(crate) fn start_workers(
    plan: Arc<WsPlan>,
    spec: &LoadSpec,
    per_process: u32,
    first_op: usize,
    seed: u64,
    stats: LoadStats,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, LoadError> {
    let program = worker_program().ok_or_else(|| {
        LoadError::Start(format!(
            "{} WebSocket sessions are more than this process may hold open ({per_process}): \
             they run in `chaos-runner load-worker` processes, and this program is not \
             chaos-runner; set CHAOS_RUNNER_BIN to its path",
            plan.sessions
        ))
    })?;
    let shards = plan.sessions.div_ceil(per_process.max(1));
    let mut workers = Vec::new();
    let mut first = 1;
    for i in 0..shards {
        let count = plan
            .sessions
            .div_ceil(shards)
            .min(plan.sessions + 1 - first);
        let order = WorkerOrder {
            spec: spec.clone(),
            shard: Shard {
                first,
                count,
                connect_rate: plan.connect_rate.div_ceil(shards).max(1),
            },
            first_op,
            seed,
        };
        first += count;
        let mut child = Command::new(&program)
            .arg("load-worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| LoadError::Start(format!("cannot start a load worker: {e}")))?;
        let mut stdin = child.stdin.take();
        let text = serde_json::to_string(&order).unwrap_or_default();
        if let Some(pipe) = stdin.as_mut() {
            writeln!(pipe, "{text}")
                .and_then(|_| pipe.flush())
                .map_err(|e| LoadError::Start(format!("cannot order load worker {i}: {e}")))?;
        }
        let stdout = child.stdout.take();
        let stats = stats.clone();
        let reader = std::thread::spawn(move || {
            let Some(stdout) = stdout else { return };
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                match serde_json::from_str::<Batch>(&line) {
                    Ok(batch) => batch.apply(&stats, Instant::now()),
                    Err(e) => tracing::warn!(worker = i, error = %e, "unreadable batch"),
                }
            }
        });
        workers.push(Worker {
            child,
            stdin,
            reader,
        });
    }
    tracing::info!(
        workers = shards,
        per_process,
        "websocket sessions in worker processes"
    );
    let timeout = spec.timeout;
    std::thread::Builder::new()
        .name("load-ws-workers".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
            for w in &mut workers {
                drop(w.stdin.take());
            }
            // Each closes its sessions (bounded by the timeout) and exits.
            let deadline = Instant::now() + timeout + Duration::from_secs(3);
            for mut w in workers {
                while Instant::now() < deadline && matches!(w.child.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                if matches!(w.child.try_wait(), Ok(None)) {
                    let _ = w.child.kill();
                }
                let _ = w.child.wait();
                let _ = w.reader.join();
            }
        })
        .map_err(|e| LoadError::Start(e.to_string()))
}
