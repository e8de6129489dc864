//! What the load generator saw: per operation (of the scenario, or WebSocket message) and
//! per 1 s slice, counts of successes, errors and rate-limited answers and an HDR histogram
//! of latency, and the WebSocket sessions opened, refused and lost, in a ring as long as the
//! longest check window; a summary of every closed slice (the report's timeline) and
//! whole-run totals per operation.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::spec::LoadSli;

/// Length of one slice.
pub const SLICE: Duration = Duration::from_secs(1);

/// Highest latency recorded, in microseconds (longer ones count at this value).
const MAX_LATENCY_US: u64 = 120_000_000;

/// The operations and groups the recorder counts, by index.
///
/// ```
/// let c = chaos_runner::load::recorder::Catalog::new(vec![("queue".into(), Some(0))], vec!["matchmaking".into()]);
/// assert_eq!(c.operation("queue"), Some(0));
/// assert_eq!(c.group("matchmaking"), Some(0));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    operations: Vec<(String, Option<usize>)>,
    groups: Vec<String>,
}

impl Catalog {
    /// Operations (name, group index) and group names.
    pub fn new(operations: Vec<(String, Option<usize>)>, groups: Vec<String>) -> Catalog {
        Catalog { operations, groups }
    }

    /// The index of operation `name`.
    pub fn operation(&self, name: &str) -> Option<usize> {
        self.operations.iter().position(|(n, _)| n == name)
    }

    /// The index of group `name`.
    pub fn group(&self, name: &str) -> Option<usize> {
        self.groups.iter().position(|g| g == name)
    }

    /// How many operations.
    pub fn len(&self) -> usize {
        self.operations.len()
    }

    /// Whether it counts nothing.
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    fn name(&self, op: usize) -> &str {
        self.operations.get(op).map_or("?", |(n, _)| n.as_str())
    }

    fn in_scope(&self, op: usize, scope: Scope) -> bool {
        match scope {
            Scope::All => true,
            Scope::Operation(o) => o == op,
            Scope::Group(g) => self.operations.get(op).and_then(|(_, gr)| *gr) == Some(g),
        }
    }
}

/// Which calls an SLI is computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every operation.
    All,
    /// One operation, by index.
    Operation(usize),
    /// One group, by index.
    Group(usize),
}

/// What happened to a WebSocket session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEvent {
    /// Opened.
    Established,
    /// Could not be opened (refused, failed handshake, timed out).
    Failed,
    /// Was open, and was closed by the server or broke.
    Lost,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
struct SessionCounts {
    established: u64,
    failed: u64,
    lost: u64,
}

impl SessionCounts {
    fn add(&mut self, event: SessionEvent) {
        match event {
            SessionEvent::Established => self.established += 1,
            SessionEvent::Failed => self.failed += 1,
            SessionEvent::Lost => self.lost += 1,
        }
    }

    fn merge(&mut self, other: &SessionCounts) {
        self.established += other.established;
        self.failed += other.failed;
        self.lost += other.lost;
    }
}

/// WebSocket sessions over the whole run, as reported.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SessionTotals {
    /// Sessions wanted.
    pub wanted: u64,
    /// Opened.
    pub established: u64,
    /// Could not be opened.
    pub failed: u64,
    /// Lost after opening.
    pub lost: u64,
    /// Open when the run ended (closed by the runner then).
    pub held_at_end: u64,
    /// Most open at once.
    pub held_max: u64,
}

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Success,
    /// 429: the server shed load on purpose (neither success nor error).
    RateLimited,
    /// Any other status, a timeout or a connection failure.
    Error,
    /// Due while every player was busy: never sent, counted as an error.
    Overflow,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
struct Counts {
    success: u64,
    errors: u64,
    rate_limited: u64,
    overflow: u64,
}

impl Counts {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Success => self.success += 1,
            Outcome::RateLimited => self.rate_limited += 1,
            Outcome::Error => self.errors += 1,
            Outcome::Overflow => {
                self.errors += 1;
                self.overflow += 1;
            }
        }
    }

    fn merge(&mut self, other: &Counts) {
        self.success += other.success;
        self.errors += other.errors;
        self.rate_limited += other.rate_limited;
        self.overflow += other.overflow;
    }

    fn total(&self) -> u64 {
        self.success + self.errors + self.rate_limited
    }
}

fn histogram<T: hdrhistogram::Counter>() -> Histogram<T> {
    // 1 us to 120 s at 2 significant digits; the bounds are constant and valid.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 2)
        .unwrap_or_else(|_| Histogram::new(2).expect("2 significant digits are valid"))
}

#[derive(Debug, Default)]
struct OpSlice {
    counts: Counts,
    /// Allocated on the first answer of this operation in this slice.
    latency: Option<Histogram<u32>>,
}

#[derive(Debug)]
struct Slice {
    index: u64,
    ops: Vec<OpSlice>,
    sessions: SessionCounts,
}

impl Slice {
    fn new(index: u64, operations: usize) -> Slice {
        Slice {
            index,
            ops: (0..operations).map(|_| OpSlice::default()).collect(),
            sessions: SessionCounts::default(),
        }
    }
}

/// One closed slice, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct SliceSummary {
    /// Start of the slice, in milliseconds since the run started.
    pub at_ms: u64,
    /// Requests answered or overflowed in the slice.
    pub requests: u64,
    /// 2xx answers.
    pub success: u64,
    /// Errors (including overflow).
    pub errors: u64,
    /// 429 answers.
    pub rate_limited: u64,
    /// Share not failed, when there were requests.
    pub availability: Option<f64>,
    /// Latency percentiles in milliseconds, when there were answers.
    pub p50_ms: Option<f64>,
    /// 95th percentile.
    pub p95_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// Errors per operation (only operations with errors).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub errors_by_operation: BTreeMap<String, u64>,
    /// Each operation called in the slice: its calls and latency.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<OperationSlice>,
    /// WebSocket sessions opened in the slice (with sessions only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions_established: Option<u64>,
    /// WebSocket sessions that failed to open in the slice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions_failed: Option<u64>,
    /// WebSocket sessions lost in the slice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions_lost: Option<u64>,
}

/// One operation in one slice, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct OperationSlice {
    /// The operation (or WebSocket message).
    pub operation: String,
    /// Calls that ended in the slice (overflow included).
    pub requests: u64,
    /// Of them, errors (overflow included).
    pub errors: u64,
    /// Latency percentiles in milliseconds, when there were answers.
    pub p50_ms: Option<f64>,
    /// 95th percentile.
    pub p95_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
}

/// Whole-run totals of one operation (or of all), as reported.
#[derive(Debug, Clone, Serialize)]
pub struct OperationTotals {
    /// `queue`, `saveWrite`, ... or `all`.
    pub operation: String,
    /// Requests counted (answered, timed out or overflowed).
    pub count: u64,
    /// 2xx answers.
    pub success: u64,
    /// Errors, including overflow.
    pub errors: u64,
    /// 429 answers.
    pub rate_limited: u64,
    /// Due requests never sent because every player was busy.
    pub overflow: u64,
    /// Latency percentiles in milliseconds (from the scheduled send time).
    pub p50_ms: Option<f64>,
    /// 95th percentile.
    pub p95_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// Slowest answer.
    pub max_ms: Option<f64>,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn quantile_ms<T: hdrhistogram::Counter>(h: &Histogram<T>, q: f64) -> Option<f64> {
    (!h.is_empty()).then(|| ms(h.value_at_quantile(q)))
}

/// The recorder shared by the request tasks and the checks.
///
/// ```
/// use std::time::{Duration, Instant};
/// use chaos_runner::load::recorder::{Catalog, Outcome, Recorder, Scope};
/// use chaos_runner::spec::LoadSli;
/// let start = Instant::now();
/// let catalog = Catalog::new(vec![("queue".into(), None)], vec![]);
/// let mut r = Recorder::new(start, Duration::from_secs(10), catalog);
/// r.record(0, Outcome::Success, Duration::from_millis(5), start);
/// r.record(0, Outcome::Error, Duration::from_millis(7), start);
/// assert_eq!(r.sli(LoadSli::ErrorRate, Scope::All, Duration::from_secs(10), start), Some(0.5));
/// ```
#[derive(Debug)]
pub struct Recorder {
    run_started: Instant,
    capacity: usize,
    catalog: Catalog,
    ring: VecDeque<Slice>,
    timeline: Vec<SliceSummary>,
    totals: Vec<Counts>,
    total_latency: Vec<Histogram<u64>>,
    sessions: SessionCounts,
    sessions_wanted: u64,
    held: u64,
    held_max: u64,
}

impl Recorder {
    /// A recorder whose slices count from `run_started`, keeping enough slices for
    /// windows up to `longest_window`.
    pub fn new(run_started: Instant, longest_window: Duration, catalog: Catalog) -> Recorder {
        let ops = catalog.len();
        Recorder {
            run_started,
            capacity: (longest_window.as_secs() as usize).max(60) + 2,
            catalog,
            ring: VecDeque::new(),
            timeline: Vec::new(),
            totals: vec![Counts::default(); ops],
            total_latency: (0..ops).map(|_| histogram()).collect(),
            sessions: SessionCounts::default(),
            sessions_wanted: 0,
            held: 0,
            held_max: 0,
        }
    }

    /// The operations and groups counted.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Sets how many WebSocket sessions are wanted (for `sessionsHeld`).
    pub fn want_sessions(&mut self, wanted: u64) {
        self.sessions_wanted = wanted;
    }

    /// Records a WebSocket session event at `at`.
    pub fn session(&mut self, event: SessionEvent, at: Instant) {
        let index = self.index_at(at);
        self.advance(index);
        self.sessions.add(event);
        match event {
            SessionEvent::Established => {
                self.held += 1;
                self.held_max = self.held_max.max(self.held);
            }
            SessionEvent::Lost => self.held = self.held.saturating_sub(1),
            SessionEvent::Failed => {}
        }
        if let Some(slice) = self.ring.back_mut() {
            slice.sessions.add(event);
        }
    }

    /// WebSocket session totals (`None` without sessions).
    pub fn session_totals(&self) -> Option<SessionTotals> {
        (self.sessions_wanted > 0).then_some(SessionTotals {
            wanted: self.sessions_wanted,
            established: self.sessions.established,
            failed: self.sessions.failed,
            lost: self.sessions.lost,
            held_at_end: self.held,
            held_max: self.held_max,
        })
    }

    fn index_at(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.run_started).as_secs()
    }

    fn summarize(&self, slice: &Slice) -> SliceSummary {
        let mut counts = Counts::default();
        let mut latency = histogram::<u32>();
        let mut errors_by_operation = BTreeMap::new();
        let mut operations = Vec::new();
        for (op, s) in slice.ops.iter().enumerate() {
            counts.merge(&s.counts);
            if s.counts.errors > 0 {
                errors_by_operation.insert(self.catalog.name(op).to_owned(), s.counts.errors);
            }
            if s.counts.total() > 0 {
                let quantile = |q| s.latency.as_ref().and_then(|h| quantile_ms(h, q));
                operations.push(OperationSlice {
                    operation: self.catalog.name(op).to_owned(),
                    requests: s.counts.total(),
                    errors: s.counts.errors,
                    p50_ms: quantile(0.50),
                    p95_ms: quantile(0.95),
                    p99_ms: quantile(0.99),
                });
            }
            if let Some(h) = &s.latency {
                let _ = latency.add(h);
            }
        }
        let requests = counts.total();
        SliceSummary {
            at_ms: slice.index * SLICE.as_millis() as u64,
            requests,
            success: counts.success,
            errors: counts.errors,
            rate_limited: counts.rate_limited,
            availability: (requests > 0).then(|| 1.0 - counts.errors as f64 / requests as f64),
            p50_ms: quantile_ms(&latency, 0.50),
            p95_ms: quantile_ms(&latency, 0.95),
            p99_ms: quantile_ms(&latency, 0.99),
            errors_by_operation,
            operations,
            sessions_established: (self.sessions_wanted > 0).then_some(slice.sessions.established),
            sessions_failed: (self.sessions_wanted > 0).then_some(slice.sessions.failed),
            sessions_lost: (self.sessions_wanted > 0).then_some(slice.sessions.lost),
        }
    }

    /// Opens slices up to `index`, closing (summarizing) the ones before it.
    fn advance(&mut self, index: u64) {
        let next = match self.ring.back() {
            Some(back) if back.index >= index => return,
            Some(back) => back.index + 1,
            None => index,
        };
        // A long gap (nothing recorded for a while) closes at most one ring's worth.
        let first = next.max(index.saturating_sub(self.capacity as u64));
        let ops = self.catalog.len();
        if let Some(back) = self.ring.back() {
            let summary = self.summarize(back);
            self.timeline.push(summary);
        }
        for i in first..=index {
            if i < index {
                let summary = self.summarize(&Slice::new(i, 0));
                self.timeline.push(summary);
            }
            self.ring.push_back(Slice::new(i, ops));
            while self.ring.len() > self.capacity {
                self.ring.pop_front();
            }
        }
    }

    /// Records one request of `op` that ended (or overflowed) at `at`, `latency` after its
    /// scheduled send time.
    pub fn record(&mut self, op: usize, outcome: Outcome, latency: Duration, at: Instant) {
        if op >= self.catalog.len() {
            return;
        }
        let index = self.index_at(at);
        self.advance(index);
        let us = (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US);
        let i = op;
        self.totals[i].add(outcome);
        if outcome != Outcome::Overflow {
            self.total_latency[i].saturating_record(us);
        }
        // A late completion lands in its own slice if still held, else in the newest.
        let Some(pos) = self
            .ring
            .iter()
            .rposition(|s| s.index <= index)
            .or(self.ring.len().checked_sub(1))
        else {
            return;
        };
        let slot = &mut self.ring[pos].ops[i];
        slot.counts.add(outcome);
        if outcome != Outcome::Overflow {
            slot.latency
                .get_or_insert_with(histogram)
                .saturating_record(us);
        }
    }

    /// The value of `sli` over the slices of the last `window` (the current, partial
    /// slice included) as of `now`, for the operations in `scope`; `None` when no request
    /// ended in the window. Latencies are in milliseconds, shares between 0 and 1;
    /// `sessionsHeld` is now, whatever the window.
    pub fn sli(&self, sli: LoadSli, scope: Scope, window: Duration, now: Instant) -> Option<f64> {
        // The current slice is partial (just after a boundary it holds nothing yet), so
        // the window reaches back over `window` whole slices before it as well: between
        // `window` and `window` + 1 s of data, never an empty window under steady load.
        let current = self.index_at(now);
        let slices = window.as_secs().max(1);
        let oldest = current.saturating_sub(slices);
        let mut counts = Counts::default();
        let mut sessions = SessionCounts::default();
        let mut latency = None::<Histogram<u32>>;
        let is_latency = matches!(
            sli,
            LoadSli::LatencyP50 | LoadSli::LatencyP95 | LoadSli::LatencyP99
        );
        for slice in self
            .ring
            .iter()
            .filter(|s| s.index >= oldest && s.index <= current)
        {
            sessions.merge(&slice.sessions);
            for (op, s) in slice.ops.iter().enumerate() {
                if !self.catalog.in_scope(op, scope) {
                    continue;
                }
                counts.merge(&s.counts);
                if let (true, Some(h)) = (is_latency, &s.latency) {
                    let _ = latency.get_or_insert_with(histogram).add(h);
                }
            }
        }
        let total = counts.total();
        match sli {
            LoadSli::LatencyP50 => latency.as_ref().and_then(|h| quantile_ms(h, 0.5)),
            LoadSli::LatencyP95 => latency.as_ref().and_then(|h| quantile_ms(h, 0.95)),
            LoadSli::LatencyP99 => latency.as_ref().and_then(|h| quantile_ms(h, 0.99)),
            LoadSli::ErrorRate => (total > 0).then(|| counts.errors as f64 / total as f64),
            LoadSli::Availability => (total > 0).then(|| 1.0 - counts.errors as f64 / total as f64),
            LoadSli::SessionsEstablished => {
                let tried = sessions.established + sessions.failed;
                (tried > 0).then(|| sessions.established as f64 / tried as f64)
            }
            LoadSli::SessionsHeld => {
                (self.sessions_wanted > 0).then(|| self.held as f64 / self.sessions_wanted as f64)
            }
            LoadSli::Disconnects => (self.sessions_wanted > 0).then_some(sessions.lost as f64),
        }
    }

    /// Requests per second that ended in the last `window` of whole slices before `now`.
    pub fn rate(&self, window: Duration, now: Instant) -> f64 {
        let current = self.index_at(now);
        let slices = window.as_secs().max(1);
        let oldest = current.saturating_sub(slices);
        let n: u64 = self
            .ring
            .iter()
            .filter(|s| s.index >= oldest && s.index < current)
            .flat_map(|s| s.ops.iter().map(|o| o.counts.total()))
            .sum();
        n as f64 / slices as f64
    }

    /// The summaries of every slice so far (the open ones too), oldest first.
    pub fn timeline(&self) -> Vec<SliceSummary> {
        let mut all = self.timeline.clone();
        if let Some(back) = self.ring.back() {
            all.push(self.summarize(back));
        }
        all
    }

    /// Whole-run totals: one row per operation that was used, then `all`.
    pub fn totals(&self) -> Vec<OperationTotals> {
        let row = |name: &str, c: &Counts, h: &Histogram<u64>| OperationTotals {
            operation: name.to_owned(),
            count: c.total(),
            success: c.success,
            errors: c.errors,
            rate_limited: c.rate_limited,
            overflow: c.overflow,
            p50_ms: quantile_ms(h, 0.50),
            p95_ms: quantile_ms(h, 0.95),
            p99_ms: quantile_ms(h, 0.99),
            max_ms: (!h.is_empty()).then(|| ms(h.max())),
        };
        let mut rows = Vec::new();
        let mut all_counts = Counts::default();
        let mut all_latency = histogram::<u64>();
        for (i, c) in self.totals.iter().enumerate() {
            if c.total() == 0 {
                continue;
            }
            all_counts.merge(c);
            let _ = all_latency.add(&self.total_latency[i]);
            rows.push(row(self.catalog.name(i), c, &self.total_latency[i]));
        }
        rows.push(row("all", &all_counts, &all_latency));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUEUE: usize = 0;
    const SAVE_WRITE: usize = 1;

    fn recorder(start: Instant) -> Recorder {
        let catalog = Catalog::new(
            vec![("queue".into(), Some(0)), ("saveWrite".into(), Some(1))],
            vec!["matchmaking".into(), "save".into()],
        );
        Recorder::new(start, Duration::from_secs(10), catalog)
    }

    #[test]
    fn windows_cover_only_their_slices() {
        let start = Instant::now();
        let mut r = recorder(start);
        let at = |s: u64| start + Duration::from_millis(s * 1000 + 500);
        for _ in 0..10 {
            r.record(
                SAVE_WRITE,
                Outcome::Error,
                Duration::from_millis(900),
                at(0),
            );
        }
        for s in 1..=5 {
            for _ in 0..10 {
                r.record(QUEUE, Outcome::Success, Duration::from_millis(10), at(s));
            }
        }
        assert_eq!(
            r.sli(
                LoadSli::Availability,
                Scope::All,
                Duration::from_secs(3),
                at(5)
            ),
            Some(1.0)
        );
        let all = r
            .sli(
                LoadSli::ErrorRate,
                Scope::All,
                Duration::from_secs(10),
                at(5),
            )
            .unwrap();
        assert!((all - 10.0 / 60.0).abs() < 1e-9, "{all}");
        assert_eq!(
            r.sli(
                LoadSli::Availability,
                Scope::Group(1),
                Duration::from_secs(10),
                at(5)
            ),
            Some(0.0)
        );
        let p99 = r
            .sli(
                LoadSli::LatencyP99,
                Scope::All,
                Duration::from_secs(10),
                at(5),
            )
            .unwrap();
        assert!((890.0..=910.0).contains(&p99), "{p99}");
        let p95_queue = r
            .sli(
                LoadSli::LatencyP95,
                Scope::Operation(QUEUE),
                Duration::from_secs(10),
                at(5),
            )
            .unwrap();
        assert!((9.0..=11.0).contains(&p95_queue), "{p95_queue}");
        assert_eq!(
            r.sli(
                LoadSli::Availability,
                Scope::All,
                Duration::from_secs(2),
                at(20)
            ),
            None
        );
        assert_eq!(r.rate(Duration::from_secs(2), at(5)), 10.0);
        let timeline = r.timeline();
        assert_eq!(timeline.len(), 6);
        assert_eq!(timeline[0].errors_by_operation.get("saveWrite"), Some(&10));
        let totals = r.totals();
        assert_eq!(totals.last().map(|t| t.count), Some(60));
    }

    #[test]
    fn a_window_just_after_a_slice_boundary_still_holds_the_last_second() {
        let start = Instant::now();
        let mut r = recorder(start);
        for ms in (0..1000).step_by(10) {
            r.record(
                QUEUE,
                Outcome::Success,
                Duration::from_millis(1),
                start + Duration::from_millis(ms),
            );
        }
        // 1 ms into the next second, nothing has ended yet in it: a 1 s window is the
        // second before, not an empty slice (which an `onEmpty: breach` check would fail).
        let boundary = start + Duration::from_millis(1001);
        assert_eq!(
            r.sli(
                LoadSli::Availability,
                Scope::All,
                Duration::from_secs(1),
                boundary
            ),
            Some(1.0)
        );
    }

    #[test]
    fn overflow_counts_as_error_without_latency() {
        let start = Instant::now();
        let mut r = recorder(start);
        r.record(QUEUE, Outcome::Overflow, Duration::ZERO, start);
        assert_eq!(
            r.sli(
                LoadSli::ErrorRate,
                Scope::All,
                Duration::from_secs(1),
                start
            ),
            Some(1.0)
        );
        assert_eq!(
            r.sli(
                LoadSli::LatencyP95,
                Scope::All,
                Duration::from_secs(1),
                start
            ),
            None
        );
        assert_eq!(r.totals()[0].overflow, 1);
    }

    #[test]
    fn sessions_count_per_window_and_held_is_now() {
        let start = Instant::now();
        let mut r = recorder(start);
        r.want_sessions(4);
        let at = |s: u64| start + Duration::from_millis(s * 1000 + 500);
        for _ in 0..3 {
            r.session(SessionEvent::Established, at(0));
        }
        r.session(SessionEvent::Failed, at(0));
        r.session(SessionEvent::Lost, at(3));
        let w = Duration::from_secs(2);
        assert_eq!(
            r.sli(LoadSli::SessionsEstablished, Scope::All, w, at(1)),
            Some(0.75)
        );
        assert_eq!(
            r.sli(LoadSli::SessionsEstablished, Scope::All, w, at(3)),
            None
        );
        assert_eq!(r.sli(LoadSli::Disconnects, Scope::All, w, at(3)), Some(1.0));
        assert_eq!(r.sli(LoadSli::Disconnects, Scope::All, w, at(9)), Some(0.0));
        assert_eq!(
            r.sli(LoadSli::SessionsHeld, Scope::All, w, at(9)),
            Some(0.5)
        );
        let totals = r.session_totals().unwrap();
        assert_eq!(
            (
                totals.established,
                totals.failed,
                totals.lost,
                totals.held_max
            ),
            (3, 1, 1, 3)
        );
    }
}
