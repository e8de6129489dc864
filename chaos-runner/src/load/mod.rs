//! The built-in load generator (`spec.load`): virtual players drive the game API at a
//! fixed rate for the whole run, and what they see becomes client-side SLIs that `load`
//! checks compare with thresholds, exactly like Prometheus queries.
//!
//! Open loop: requests are due at fixed times (`rate` per second), whatever the server
//! does, and latency is measured from the scheduled send time, so a stalled server shows
//! its full delay (no coordinated omission). Each player has at most one request in
//! flight; a request that falls due while every player is busy is counted as an error
//! (`overflow`) instead of being sent late.
//!
//! The generator runs on its own thread and runtime, so the engine's blocking work
//! (injecting, reverting) never delays a send.

pub mod player;
pub mod recorder;
pub mod transport;

use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::spec::{LoadMix, LoadOperation, LoadSli, LoadSpec};
use player::{Kind, Player};
use recorder::{OperationTotals, Outcome, Recorder, SliceSummary};
use transport::{PlayerConnection, Transport};

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
    /// Empty statistics whose slices count from `run_started`, keeping windows up to
    /// `longest_window`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let stats = chaos_runner::load::LoadStats::new(Instant::now(), Duration::from_secs(10));
    /// assert_eq!(stats.sli(chaos_runner::spec::LoadSli::Availability, None, Duration::from_secs(10)), None);
    /// ```
    pub fn new(run_started: Instant, longest_window: Duration) -> LoadStats {
        LoadStats(Arc::new(Mutex::new(Recorder::new(
            run_started,
            longest_window,
        ))))
    }

    fn lock(&self) -> MutexGuard<'_, Recorder> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records one request (see [`Recorder::record`]).
    pub fn record(&self, op: LoadOperation, outcome: Outcome, latency: Duration, at: Instant) {
        self.lock().record(op, outcome, latency, at);
    }

    /// The SLI over the last `window`, now (see [`Recorder::sli`]).
    pub fn sli(
        &self,
        sli: LoadSli,
        operation: Option<LoadOperation>,
        window: Duration,
    ) -> Option<f64> {
        self.lock().sli(sli, operation, window, Instant::now())
    }

    /// Requests per second over the last `window` of whole slices.
    pub fn rate(&self, window: Duration) -> f64 {
        self.lock().rate(window, Instant::now())
    }

    /// One line for progress output: rate, availability and p95 over the last 5 s.
    pub fn progress(&self) -> String {
        let window = Duration::from_secs(5);
        let r = self.lock();
        let now = Instant::now();
        let avail = r.sli(LoadSli::Availability, None, window, now);
        let p95 = r.sli(LoadSli::LatencyP95, None, window, now);
        format!(
            "load {:.0} rps avail {} p95 {}",
            r.rate(window, now),
            avail.map_or("-".into(), |v| format!("{v:.4}")),
            p95.map_or("-".into(), |v| format!("{v:.0}ms")),
        )
    }
}

/// What the load generator did, for the report (a section of its own, next to the
/// timeline of checks).
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// Base URL driven.
    pub target: String,
    /// Requests per second asked for.
    pub requested_rate: u32,
    /// Requests per second counted over the time it ran.
    pub achieved_rate: f64,
    /// Virtual players.
    pub players: u32,
    /// Seed of the players' choices (repeat a run with `seed`).
    pub seed: u64,
    /// When it started, in milliseconds since the run started.
    pub started_at_ms: u64,
    /// How long it ran, in milliseconds.
    pub duration_ms: u64,
    /// Totals per operation, then `all`.
    pub totals: Vec<OperationTotals>,
    /// One entry per 1 s slice.
    pub timeline: Vec<SliceSummary>,
}

/// The running load generator; stops (and waits for its requests) on [`stop`] or drop.
///
/// [`stop`]: LoadGenerator::stop
#[derive(Debug)]
pub struct LoadGenerator {
    spec: LoadSpec,
    seed: u64,
    stats: LoadStats,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    run_started: Instant,
    started: Instant,
    ran_for: Option<Duration>,
}

/// The cumulative mix weights, in [`Kind`] order.
fn kinds(mix: &LoadMix) -> Vec<(f64, Kind)> {
    let mut sum = 0.0;
    [
        (mix.matchmaking, Kind::Matchmaking),
        (mix.session, Kind::Session),
        (mix.save_write, Kind::SaveWrite),
        (mix.save_read, Kind::SaveRead),
    ]
    .into_iter()
    .filter(|(w, _)| *w > 0.0)
    .map(|(w, k)| {
        sum += w;
        (sum, k)
    })
    .collect()
}

fn pick(cumulative: &[(f64, Kind)], rng: &mut impl Rng) -> Kind {
    let total = cumulative.last().map_or(0.0, |(s, _)| *s);
    let r = rng.random::<f64>() * total;
    cumulative
        .iter()
        .find(|(s, _)| r < *s)
        .or(cumulative.last())
        .map_or(Kind::SaveWrite, |(_, k)| *k)
}

/// The operation an overflowed request of `kind` is counted under.
fn overflow_operation(kind: Kind) -> LoadOperation {
    match kind {
        Kind::Matchmaking => LoadOperation::Queue,
        Kind::Session => LoadOperation::Sessions,
        Kind::SaveWrite => LoadOperation::SaveWrite,
        Kind::SaveRead => LoadOperation::SaveRead,
    }
}

impl LoadGenerator {
    /// Starts driving `spec.target` now. `run_started` anchors the slices (so they line up
    /// with the run's timeline); `longest_window` is the longest check window.
    pub fn start(
        spec: &LoadSpec,
        run_started: Instant,
        longest_window: Duration,
    ) -> Result<LoadGenerator, LoadError> {
        let seed = spec.seed.unwrap_or_else(rand::random);
        let stats = LoadStats::new(run_started, longest_window);
        let stop = Arc::new(AtomicBool::new(false));
        let transport =
            Transport::for_target(&spec.target, spec.players).map_err(LoadError::Start)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| LoadError::Start(e.to_string()))?;
        let thread = {
            let (spec, stats, stop) = (spec.clone(), stats.clone(), stop.clone());
            std::thread::Builder::new()
                .name("load".into())
                .spawn(move || runtime.block_on(drive(spec, seed, transport, stats, stop)))
                .map_err(|e| LoadError::Start(e.to_string()))?
        };
        tracing::info!(url = %spec.target, rate = spec.rate, players = spec.players, seed, "load generator started");
        Ok(LoadGenerator {
            spec: spec.clone(),
            seed,
            stats,
            stop,
            thread: Some(thread),
            run_started,
            started: Instant::now(),
            ran_for: None,
        })
    }

    /// The statistics so far.
    pub fn stats(&self) -> LoadStats {
        self.stats.clone()
    }

    /// Stops sending, waits for the requests in flight (at most their timeout) and
    /// returns the report. Calling it again returns the same report.
    pub fn stop(&mut self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
            self.ran_for = Some(self.started.elapsed());
            tracing::info!(url = %self.spec.target, "load generator stopped");
        }
        let ran_for = self.ran_for.unwrap_or_else(|| self.started.elapsed());
        let r = self.stats.lock();
        let totals = r.totals();
        let count = totals.last().map_or(0, |t| t.count);
        LoadReport {
            target: self.spec.target.clone(),
            requested_rate: self.spec.rate,
            achieved_rate: count as f64 / ran_for.as_secs_f64().max(1e-3),
            players: self.spec.players,
            seed: self.seed,
            started_at_ms: self
                .started
                .saturating_duration_since(self.run_started)
                .as_millis() as u64,
            duration_ms: ran_for.as_millis() as u64,
            totals,
            timeline: r.timeline(),
        }
    }
}

impl Drop for LoadGenerator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The rate (requests per second) from which the driver issues requests continuously.
const CONTINUOUS_RATE: f64 = 5_000.0;

/// The driver loop: issues every due request, each from a free player, until `stop`.
async fn drive(
    spec: LoadSpec,
    seed: u64,
    transport: Transport,
    stats: LoadStats,
    stop: Arc<AtomicBool>,
) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let cumulative = kinds(&spec.mix);
    let rate = f64::from(spec.rate.max(1));
    let players = spec.players.max(1) as usize;
    // Each player with its own connection, which travels with it.
    let mut free: Vec<(Player, PlayerConnection)> = (1..=spec.players.max(1))
        .map(|n| (Player::new(n), PlayerConnection::default()))
        .collect();
    let (back, mut returned) = tokio::sync::mpsc::unbounded_channel::<(Player, PlayerConnection)>();
    let transport = Arc::new(transport);
    let tick = Duration::from_secs_f64(1.0 / rate)
        .clamp(Duration::from_millis(1), Duration::from_millis(10));
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // From this rate on, requests are issued as they fall due rather than in a burst per
    // millisecond tick (the timer's resolution): the thread is busy anyway, and bursts
    // would hold players longer and overflow sooner.
    let continuous = rate >= CONTINUOUS_RATE;
    let start = tokio::time::Instant::now();
    let mut issued: u64 = 0;
    loop {
        if continuous {
            tokio::task::yield_now().await;
            while let Ok(p) = returned.try_recv() {
                free.push(p);
            }
        } else {
            tokio::select! {
                biased;
                Some(p) = returned.recv() => {
                    free.push(p);
                    continue;
                }
                _ = ticker.tick() => {}
            }
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let due = (start.elapsed().as_secs_f64() * rate) as u64 + 1;
        while issued < due {
            let scheduled = (start + Duration::from_secs_f64(issued as f64 / rate)).into_std();
            issued += 1;
            let kind = pick(&cumulative, &mut rng);
            if free.is_empty() {
                stats.record(
                    overflow_operation(kind),
                    Outcome::Overflow,
                    Duration::ZERO,
                    Instant::now(),
                );
                continue;
            }
            let (mut player, mut connection) = free.swap_remove(rng.random_range(0..free.len()));
            let step = player.next(kind);
            let (transport, stats, back) = (transport.clone(), stats.clone(), back.clone());
            let timeout = spec.timeout;
            tokio::spawn(async move {
                let result = transport.send(&mut connection, &step, timeout).await;
                let done = Instant::now();
                let outcome = match &result {
                    Ok((status, body)) => {
                        player.advance(&step, *status, body);
                        player::classify(*status)
                    }
                    Err(e) => {
                        tracing::debug!(operation = step.operation.name(), error = %e, "load request failed");
                        Outcome::Error
                    }
                };
                stats.record(
                    step.operation,
                    outcome,
                    done.saturating_duration_since(scheduled),
                    done,
                );
                let _ = back.send((player, connection));
            });
        }
    }
    // Let the requests in flight finish (each ends by its timeout).
    let deadline = tokio::time::Instant::now() + spec.timeout + Duration::from_secs(1);
    while free.len() < players {
        tokio::select! {
            Some(p) = returned.recv() => free.push(p),
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_is_followed() {
        let mix = LoadMix {
            matchmaking: 1.0,
            session: 0.0,
            save_write: 3.0,
            save_read: 0.0,
        };
        let cumulative = kinds(&mix);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let writes = (0..10_000)
            .filter(|_| pick(&cumulative, &mut rng) == Kind::SaveWrite)
            .count();
        assert!((7_200..=7_800).contains(&writes), "{writes}");
    }
}
