//! The built-in load generator (`spec.load`): virtual players walk a scenario's flows of
//! HTTP calls at a fixed rate for the whole run, and hold WebSocket sessions; what they see
//! becomes client-side SLIs that `load` checks compare with thresholds, exactly like
//! Prometheus queries. See `docs/load.md`.
//!
//! Open loop: requests are due at fixed times (`rate` per second), whatever the server
//! does, and latency is measured from the scheduled send time, so a stalled server shows
//! its full delay (no coordinated omission). Each player has at most one request in
//! flight; a request that falls due while every player is busy is counted as an error
//! (`overflow`) instead of being sent late.
//!
//! The calls and the sessions each run on a thread and runtime of their own (sessions past
//! the open-file limit in worker processes), so the engine's blocking work (injecting,
//! reverting) never delays a send.

mod driver;
pub mod http1;
pub mod player;
pub mod recorder;
pub mod transport;
pub mod websocket;
pub mod worker;

use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::spec::scenario::LoadPlan;
use crate::spec::LoadSli;
use driver::Driver;
use recorder::{Catalog, OperationTotals, Outcome, Recorder, Scope, SessionTotals, SliceSummary};
use transport::Transport;

/// The longest window a `load` check may look back over.
pub const MAX_WINDOW: Duration = crate::spec::MAX_LOAD_WINDOW;

/// The load generator could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Its HTTP client, runtime or thread could not be created.
    #[error("cannot start the load generator: {0}")]
    Start(String),
}

/// A handle on what the load generator has seen so far (cheap to clone).
#[derive(Debug, Clone)]
pub struct LoadStats(Arc<Mutex<Recorder>>);

impl LoadStats {
    /// Empty statistics of the operations of `catalog`, whose slices count from
    /// `run_started`, keeping windows up to `longest_window`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use chaos_runner::load::{recorder::Catalog, LoadStats};
    /// let stats = LoadStats::new(Instant::now(), Duration::from_secs(10), Catalog::default());
    /// assert_eq!(stats.sli(chaos_runner::spec::LoadSli::Availability, None, None, Duration::from_secs(10)), None);
    /// ```
    pub fn new(run_started: Instant, longest_window: Duration, catalog: Catalog) -> LoadStats {
        LoadStats(Arc::new(Mutex::new(Recorder::new(
            run_started,
            longest_window,
            catalog,
        ))))
    }

    fn lock(&self) -> MutexGuard<'_, Recorder> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records one call of operation `op` (see [`Recorder::record`]).
    pub fn record(&self, op: usize, outcome: Outcome, latency: Duration, at: Instant) {
        self.lock().record(op, outcome, latency, at);
    }

    /// Records a WebSocket session event.
    pub fn session(&self, event: recorder::SessionEvent, at: Instant) {
        self.lock().session(event, at);
    }

    /// Sets how many WebSocket sessions are wanted.
    pub fn want_sessions(&self, wanted: u64) {
        self.lock().want_sessions(wanted);
    }

    /// The SLI over the last `window`, now, for one operation or group (by name) or all
    /// (see [`Recorder::sli`]); `None` also for a name the load does not have.
    pub fn sli(
        &self,
        sli: LoadSli,
        operation: Option<&str>,
        group: Option<&str>,
        window: Duration,
    ) -> Option<f64> {
        let r = self.lock();
        let scope = match (operation, group) {
            (Some(op), _) => Scope::Operation(r.catalog().operation(op)?),
            (None, Some(g)) => Scope::Group(r.catalog().group(g)?),
            (None, None) => Scope::All,
        };
        r.sli(sli, scope, window, Instant::now())
    }

    /// Calls per second over the last `window` of whole slices.
    pub fn rate(&self, window: Duration) -> f64 {
        self.lock().rate(window, Instant::now())
    }

    /// One line for progress output: rate, availability and p95 over the last 5 s, and
    /// the sessions held.
    pub fn progress(&self) -> String {
        let window = Duration::from_secs(5);
        let r = self.lock();
        let now = Instant::now();
        let avail = r.sli(LoadSli::Availability, Scope::All, window, now);
        let p95 = r.sli(LoadSli::LatencyP95, Scope::All, window, now);
        let mut line = format!(
            "load {:.0} rps avail {} p95 {}",
            r.rate(window, now),
            avail.map_or("-".into(), |v| format!("{v:.4}")),
            p95.map_or("-".into(), |v| format!("{v:.0}ms")),
        );
        if let Some(s) = r.session_totals() {
            line.push_str(&format!(" sessions {}/{}", s.held_at_end, s.wanted));
        }
        line
    }
}

/// What the load generator did, for the report (a section of its own, next to the
/// timeline of checks).
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// Base URL driven.
    pub target: String,
    /// Calls per second asked for (0 without a scenario).
    pub requested_rate: u32,
    /// Calls per second counted over the time it ran.
    pub achieved_rate: f64,
    /// Virtual players making calls.
    pub players: u32,
    /// Seed of the players' choices (repeat a run with `seed`).
    pub seed: u64,
    /// When it started, in milliseconds since the run started.
    pub started_at_ms: u64,
    /// How long it ran, in milliseconds.
    pub duration_ms: u64,
    /// Totals per operation, then `all`.
    pub totals: Vec<OperationTotals>,
    /// WebSocket sessions, when there were any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<SessionTotals>,
    /// One entry per 1 s slice.
    pub timeline: Vec<SliceSummary>,
}

impl LoadReport {
    /// The WebSocket sessions in one sentence, for the Markdown and HTML reports.
    ///
    /// ```
    /// let r = chaos_runner::load::LoadReport { target: "http://x".into(), requested_rate: 0,
    ///     achieved_rate: 0.0, players: 0, seed: 1, started_at_ms: 0, duration_ms: 0,
    ///     totals: vec![], timeline: vec![], sessions: None };
    /// assert_eq!(r.sessions_text(), None);
    /// ```
    pub fn sessions_text(&self) -> Option<String> {
        self.sessions.map(|s| {
            format!(
                "WebSocket sessions: {} wanted, {} opened, {} failed to open, {} lost, {} held at most, {} open when the run ended",
                s.wanted, s.established, s.failed, s.lost, s.held_max, s.held_at_end
            )
        })
    }
}

/// The running load generator; stops (and waits for its calls) on [`stop`] or drop.
///
/// [`stop`]: LoadGenerator::stop
#[derive(Debug)]
pub struct LoadGenerator {
    plan: LoadPlan,
    seed: u64,
    stats: LoadStats,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    run_started: Instant,
    started: Instant,
    ran_for: Option<Duration>,
}

/// The operations and groups of a plan: the scenario's, then the WebSocket messages'.
fn catalog(plan: &LoadPlan) -> Catalog {
    let mut groups: Vec<String> = plan
        .scenario
        .as_ref()
        .map(|s| s.groups.clone())
        .unwrap_or_default();
    let mut operations: Vec<(String, Option<usize>)> = plan
        .scenario
        .iter()
        .flat_map(|s| s.operations.iter().map(|o| (o.name.clone(), o.group)))
        .collect();
    if let Some(ws) = &plan.websocket {
        let group = match groups.iter().position(|g| *g == ws.group) {
            Some(i) => i,
            None => {
                groups.push(ws.group.clone());
                groups.len() - 1
            }
        };
        operations.extend(ws.messages.iter().map(|m| (m.name.clone(), Some(group))));
    }
    Catalog::new(operations, groups)
}

impl LoadGenerator {
    /// Starts the calls and sessions of `plan` now. `run_started` anchors the slices (so
    /// they line up with the run's timeline); `longest_window` is the longest check window.
    pub fn start(
        plan: &LoadPlan,
        run_started: Instant,
        longest_window: Duration,
    ) -> Result<LoadGenerator, LoadError> {
        let spec = &plan.spec;
        let seed = spec.seed.unwrap_or_else(rand::random);
        let stats = LoadStats::new(run_started, longest_window, catalog(plan));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        if let (Some(scenario), Some(rate)) = (&plan.scenario, spec.rate) {
            let transport =
                Transport::for_target(&spec.target, spec.players).map_err(LoadError::Start)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| LoadError::Start(e.to_string()))?;
            let driver = Driver {
                scenario: scenario.clone(),
                rate,
                players: spec.players,
                seed,
                transport,
                stats: stats.clone(),
                stop: stop.clone(),
            };
            threads.push(
                std::thread::Builder::new()
                    .name("load".into())
                    .spawn(move || runtime.block_on(driver.drive()))
                    .map_err(|e| LoadError::Start(e.to_string()))?,
            );
            tracing::info!(url = %spec.target, rate, players = spec.players, seed, "load generator started");
        }
        if let Some(ws) = &plan.websocket {
            let first_op = plan.scenario.as_ref().map_or(0, |s| s.operations.len());
            threads.push(websocket::start(
                ws.clone(),
                spec,
                first_op,
                seed,
                stats.clone(),
                stop.clone(),
            )?);
            tracing::info!(url = %spec.target, sessions = ws.sessions, "websocket sessions starting");
        }
        Ok(LoadGenerator {
            plan: plan.clone(),
            seed,
            stats,
            stop,
            threads,
            run_started,
            started: Instant::now(),
            ran_for: None,
        })
    }

    /// The statistics so far.
    pub fn stats(&self) -> LoadStats {
        self.stats.clone()
    }

    /// Stops sending, waits for the calls in flight (at most their timeout), closes the
    /// sessions and returns the report. Calling it again returns the same report.
    pub fn stop(&mut self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        if !self.threads.is_empty() {
            for thread in self.threads.drain(..) {
                let _ = thread.join();
            }
            self.ran_for = Some(self.started.elapsed());
            tracing::info!(url = %self.plan.spec.target, "load generator stopped");
        }
        let ran_for = self.ran_for.unwrap_or_else(|| self.started.elapsed());
        let r = self.stats.lock();
        let totals = r.totals();
        let count = totals.last().map_or(0, |t| t.count);
        LoadReport {
            target: self.plan.spec.target.clone(),
            requested_rate: self.plan.spec.rate.unwrap_or(0),
            achieved_rate: count as f64 / ran_for.as_secs_f64().max(1e-3),
            players: self.plan.spec.players,
            seed: self.seed,
            started_at_ms: self
                .started
                .saturating_duration_since(self.run_started)
                .as_millis() as u64,
            duration_ms: ran_for.as_millis() as u64,
            totals,
            sessions: r.session_totals(),
            timeline: r.timeline(),
        }
    }
}

impl Drop for LoadGenerator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
