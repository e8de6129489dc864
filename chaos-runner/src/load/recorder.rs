//! What the load generator saw: per operation and per 1 s slice, counts of successes,
//! errors and rate-limited answers and an HDR histogram of latency, in a ring as long as
//! the longest check window; a summary of every closed slice (the report's timeline) and
//! whole-run totals per operation.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::spec::{LoadOperation, LoadSli};

/// Length of one slice.
pub const SLICE: Duration = Duration::from_secs(1);

/// Highest latency recorded, in microseconds (longer ones count at this value).
const MAX_LATENCY_US: u64 = 120_000_000;

const OPS: usize = LoadOperation::ALL.len();

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
    ops: [OpSlice; OPS],
}

impl Slice {
    fn new(index: u64) -> Slice {
        Slice {
            index,
            ops: Default::default(),
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
    pub errors_by_operation: BTreeMap<&'static str, u64>,
}

/// Whole-run totals of one operation (or of all), as reported.
#[derive(Debug, Clone, Serialize)]
pub struct OperationTotals {
    /// `queue`, `saveWrite`, ... or `all`.
    pub operation: &'static str,
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
/// use chaos_runner::load::recorder::{Outcome, Recorder};
/// use chaos_runner::spec::{LoadOperation, LoadSli};
/// let start = Instant::now();
/// let mut r = Recorder::new(start, Duration::from_secs(10));
/// r.record(LoadOperation::Queue, Outcome::Success, Duration::from_millis(5), start);
/// r.record(LoadOperation::Queue, Outcome::Error, Duration::from_millis(7), start);
/// assert_eq!(r.sli(LoadSli::ErrorRate, None, Duration::from_secs(10), start), Some(0.5));
/// ```
#[derive(Debug)]
pub struct Recorder {
    run_started: Instant,
    capacity: usize,
    ring: VecDeque<Slice>,
    timeline: Vec<SliceSummary>,
    totals: [Counts; OPS],
    total_latency: Vec<Histogram<u64>>,
}

impl Recorder {
    /// A recorder whose slices count from `run_started`, keeping enough slices for
    /// windows up to `longest_window`.
    pub fn new(run_started: Instant, longest_window: Duration) -> Recorder {
        Recorder {
            run_started,
            capacity: (longest_window.as_secs() as usize).max(60) + 2,
            ring: VecDeque::new(),
            timeline: Vec::new(),
            totals: [Counts::default(); OPS],
            total_latency: (0..OPS).map(|_| histogram()).collect(),
        }
    }

    fn index_at(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.run_started).as_secs()
    }

    fn summarize(slice: &Slice) -> SliceSummary {
        let mut counts = Counts::default();
        let mut latency = histogram::<u32>();
        let mut errors_by_operation = BTreeMap::new();
        for (op, s) in LoadOperation::ALL.iter().zip(&slice.ops) {
            counts.merge(&s.counts);
            if s.counts.errors > 0 {
                errors_by_operation.insert(op.name(), s.counts.errors);
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
        if let Some(back) = self.ring.back() {
            self.timeline.push(Self::summarize(back));
        }
        for i in first..=index {
            if i < index {
                self.timeline.push(Self::summarize(&Slice::new(i)));
            }
            self.ring.push_back(Slice::new(i));
            while self.ring.len() > self.capacity {
                self.ring.pop_front();
            }
        }
    }

    /// Records one request of `op` that ended (or overflowed) at `at`, `latency` after its
    /// scheduled send time.
    pub fn record(&mut self, op: LoadOperation, outcome: Outcome, latency: Duration, at: Instant) {
        let index = self.index_at(at);
        self.advance(index);
        let us = (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US);
        let i = op.index();
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
    /// slice included) as of `now`, for one operation or all; `None` when no request
    /// ended in the window. Latencies are in milliseconds, shares between 0 and 1.
    pub fn sli(
        &self,
        sli: LoadSli,
        operation: Option<LoadOperation>,
        window: Duration,
        now: Instant,
    ) -> Option<f64> {
        // The current slice is partial (just after a boundary it holds nothing yet), so
        // the window reaches back over `window` whole slices before it as well: between
        // `window` and `window` + 1 s of data, never an empty window under steady load.
        let current = self.index_at(now);
        let slices = window.as_secs().max(1);
        let oldest = current.saturating_sub(slices);
        let wanted = |op: LoadOperation| match sli {
            LoadSli::MatchmakingSuccess => {
                matches!(op, LoadOperation::Queue | LoadOperation::PollTicket)
            }
            LoadSli::SaveSuccess => {
                matches!(op, LoadOperation::SaveWrite | LoadOperation::SaveRead)
            }
            _ => operation.is_none_or(|o| o == op),
        };
        let mut counts = Counts::default();
        let mut latency = None::<Histogram<u32>>;
        let is_latency = matches!(sli, LoadSli::LatencyP95 | LoadSli::LatencyP99);
        for slice in self
            .ring
            .iter()
            .filter(|s| s.index >= oldest && s.index <= current)
        {
            for (op, s) in LoadOperation::ALL.iter().zip(&slice.ops) {
                if !wanted(*op) {
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
            LoadSli::LatencyP95 => latency.as_ref().and_then(|h| quantile_ms(h, 0.95)),
            LoadSli::LatencyP99 => latency.as_ref().and_then(|h| quantile_ms(h, 0.99)),
            LoadSli::ErrorRate => (total > 0).then(|| counts.errors as f64 / total as f64),
            LoadSli::Availability | LoadSli::MatchmakingSuccess | LoadSli::SaveSuccess => {
                (total > 0).then(|| 1.0 - counts.errors as f64 / total as f64)
            }
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
            all.push(Self::summarize(back));
        }
        all
    }

    /// Whole-run totals: one row per operation that was used, then `all`.
    pub fn totals(&self) -> Vec<OperationTotals> {
        let row = |name: &'static str, c: &Counts, h: &Histogram<u64>| OperationTotals {
            operation: name,
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
        for (i, op) in LoadOperation::ALL.iter().enumerate() {
            let c = &self.totals[i];
            if c.total() == 0 {
                continue;
            }
            all_counts.merge(c);
            let _ = all_latency.add(&self.total_latency[i]);
            rows.push(row(op.name(), c, &self.total_latency[i]));
        }
        rows.push(row("all", &all_counts, &all_latency));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_only_their_slices() {
        let start = Instant::now();
        let mut r = Recorder::new(start, Duration::from_secs(10));
        let at = |s: u64| start + Duration::from_millis(s * 1000 + 500);
        for _ in 0..10 {
            r.record(
                LoadOperation::SaveWrite,
                Outcome::Error,
                Duration::from_millis(900),
                at(0),
            );
        }
        for s in 1..=5 {
            for _ in 0..10 {
                r.record(
                    LoadOperation::Queue,
                    Outcome::Success,
                    Duration::from_millis(10),
                    at(s),
                );
            }
        }
        assert_eq!(
            r.sli(LoadSli::Availability, None, Duration::from_secs(3), at(5)),
            Some(1.0)
        );
        let all = r
            .sli(LoadSli::ErrorRate, None, Duration::from_secs(10), at(5))
            .unwrap();
        assert!((all - 10.0 / 60.0).abs() < 1e-9, "{all}");
        assert_eq!(
            r.sli(LoadSli::SaveSuccess, None, Duration::from_secs(10), at(5)),
            Some(0.0)
        );
        let p99 = r
            .sli(LoadSli::LatencyP99, None, Duration::from_secs(10), at(5))
            .unwrap();
        assert!((890.0..=910.0).contains(&p99), "{p99}");
        let p95_queue = r
            .sli(
                LoadSli::LatencyP95,
                Some(LoadOperation::Queue),
                Duration::from_secs(10),
                at(5),
            )
            .unwrap();
        assert!((9.0..=11.0).contains(&p95_queue), "{p95_queue}");
        assert_eq!(
            r.sli(LoadSli::Availability, None, Duration::from_secs(2), at(20)),
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
        let mut r = Recorder::new(start, Duration::from_secs(10));
        for ms in (0..1000).step_by(10) {
            r.record(
                LoadOperation::Sessions,
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
                None,
                Duration::from_secs(1),
                boundary
            ),
            Some(1.0)
        );
    }

    #[test]
    fn overflow_counts_as_error_without_latency() {
        let start = Instant::now();
        let mut r = Recorder::new(start, Duration::from_secs(10));
        r.record(
            LoadOperation::Join,
            Outcome::Overflow,
            Duration::ZERO,
            start,
        );
        assert_eq!(
            r.sli(LoadSli::ErrorRate, None, Duration::from_secs(1), start),
            Some(1.0)
        );
        assert_eq!(
            r.sli(LoadSli::LatencyP95, None, Duration::from_secs(1), start),
            None
        );
        assert_eq!(r.totals()[0].overflow, 1);
    }
}
