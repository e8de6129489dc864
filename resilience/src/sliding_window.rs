//! Sliding windows of call outcomes with O(1) bookkeeping per call and no lock.
//!
//! * [`CountWindow`]: the last N calls, as a ring of one-byte slots. Each record swaps its
//!   slot and moves the running totals by the difference, so the totals always equal the
//!   ring's content and old calls really leave the window.
//! * [`TimeBuckets`]: the last `length` of time, split into a fixed number of buckets. Each
//!   counter packs its bucket's epoch with its count into one `AtomicU64`, so a bucket from
//!   an earlier lap is reset by the same atomic operation that counts into it. Recording
//!   touches one bucket; reading sums a fixed number of buckets whatever the call rate.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Totals over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub calls: u64,
    pub failures: u64,
    pub slow: u64,
}

impl Totals {
    /// Whether `part` is at least `threshold_milli` thousandths of a percent of the calls,
    /// in integers (thresholds keep three decimals).
    #[inline]
    pub(crate) fn reaches(part: u64, calls: u64, threshold_milli: u64) -> bool {
        calls > 0 && u128::from(part) * 100_000 >= u128::from(threshold_milli) * u128::from(calls)
    }

    pub(crate) fn failure_rate(&self) -> f64 {
        rate(self.failures, self.calls)
    }
    pub(crate) fn slow_rate(&self) -> f64 {
        rate(self.slow, self.calls)
    }
}

fn rate(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part.min(whole) as f64 * 100.0 / whole as f64
    }
}

const PRESENT: u8 = 1;
const FAILED: u8 = 2;
const SLOW: u8 = 4;

/// The last `size` calls. The cursor (the slot the next call goes to) is kept by the owner
/// and passed to [`next_slot`](Self::next_slot): the breaker keeps it on the cache line every
/// call writes anyway.
///
/// No read-modify-write on the common path: the cursor moves with a plain load and store
/// (two racing threads may share a slot, so under contention the window holds "about" the
/// last N calls), and a slot that already holds the call's outcome is left as is. The totals
/// stay exact either way: they only move by what a `swap` took out of a slot.
#[derive(Debug)]
pub(crate) struct CountWindow {
    slots: Box<[AtomicU8]>,
    calls: AtomicU64,
    failures: AtomicU64,
    slow: AtomicU64,
}

impl CountWindow {
    pub(crate) fn new(size: usize) -> Self {
        let size = size.max(1);
        CountWindow {
            slots: (0..size).map(|_| AtomicU8::new(0)).collect(),
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            slow: AtomicU64::new(0),
        }
    }

    /// Records one call; returns true when the window grew by one call (it was not full).
    #[cfg(test)]
    pub(crate) fn record(&self, cursor: &AtomicU32, failed: bool, slow: bool) -> bool {
        let slot = self.next_slot(cursor);
        let new = Self::outcome(failed, slow);
        if slot.load(Ordering::Relaxed) == new {
            return false;
        }
        self.replace(slot, new)
    }

    /// The slot of the call being recorded; moves `cursor` on by one.
    #[inline]
    pub(crate) fn next_slot(&self, cursor: &AtomicU32) -> &AtomicU8 {
        // Every value stored in `cursor` is below the length (it starts at 0), so `index` is
        // too; a cursor shared with another window would still be bounds-checked.
        let index = cursor.load(Ordering::Relaxed) as usize;
        let following = if index + 1 < self.slots.len() {
            index + 1
        } else {
            0
        };
        cursor.store(following as u32, Ordering::Relaxed);
        &self.slots[index]
    }

    /// A call's outcome as a slot holds it.
    #[inline]
    pub(crate) fn outcome(failed: bool, slow: bool) -> u8 {
        PRESENT | if failed { FAILED } else { 0 } | if slow { SLOW } else { 0 }
    }

    /// Whether `slot` already holds `outcome` (recording it again would change nothing).
    #[inline]
    pub(crate) fn holds(slot: &AtomicU8, outcome: u8) -> bool {
        slot.load(Ordering::Relaxed) == outcome
    }

    /// Puts `new` in `slot` and moves the totals by the difference; true when the slot was
    /// empty. Out of line: the common record (same outcome as N calls ago) does not get here.
    #[inline(never)]
    pub(crate) fn replace(&self, slot: &AtomicU8, new: u8) -> bool {
        let old = slot.swap(new, Ordering::AcqRel);
        self.apply(old, new);
        old & PRESENT == 0
    }

    #[inline]
    fn apply(&self, old: u8, new: u8) {
        Self::shift(&self.calls, old & PRESENT != 0, new & PRESENT != 0);
        Self::shift(&self.failures, old & FAILED != 0, new & FAILED != 0);
        Self::shift(&self.slow, old & SLOW != 0, new & SLOW != 0);
    }

    #[inline]
    fn shift(total: &AtomicU64, was: bool, is: bool) {
        match (was, is) {
            (false, true) => {
                total.fetch_add(1, Ordering::Relaxed);
            }
            (true, false) => {
                total.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    pub(crate) fn totals(&self) -> Totals {
        // The three loads are not one snapshot; under concurrent records they may be off by
        // the calls in flight, which `rate` clamps.
        let calls = self.calls.load(Ordering::Relaxed);
        Totals {
            calls,
            failures: self.failures.load(Ordering::Relaxed).min(calls),
            slow: self.slow.load(Ordering::Relaxed).min(calls),
        }
    }

    /// Empties the window (O(size); runs on state transitions only).
    pub(crate) fn clear(&self) {
        for slot in self.slots.iter() {
            let old = slot.swap(0, Ordering::AcqRel);
            self.apply(old, 0);
        }
    }
}

/// `K` counters over the last `length` of time, in `buckets` buckets.
#[derive(Debug)]
pub(crate) struct TimeBuckets<const K: usize> {
    buckets: Box<[[AtomicU64; K]]>,
    bucket_nanos: u64,
    origin: Instant,
}

const COUNT_MASK: u64 = (1 << 32) - 1;

impl<const K: usize> TimeBuckets<K> {
    pub(crate) fn new(length: Duration, buckets: usize) -> Self {
        let buckets = buckets.max(1);
        let bucket_nanos = (length.as_nanos() / buckets as u128).clamp(1, u64::MAX as u128) as u64;
        TimeBuckets {
            buckets: (0..buckets)
                .map(|_| std::array::from_fn(|_| AtomicU64::new(0)))
                .collect(),
            bucket_nanos,
            origin: crate::clock::now(),
        }
    }

    /// The bucket number of `at`, counted from the window's creation (wraps after 2^32).
    #[inline]
    fn epoch(&self, at: Instant) -> u32 {
        (at.saturating_duration_since(self.origin).as_nanos() as u64 / self.bucket_nanos) as u32
    }

    /// Adds one to counter `counter` at time `at`.
    #[inline]
    pub(crate) fn add(&self, counter: usize, at: Instant) {
        let epoch = self.epoch(at);
        let bucket = &self.buckets[epoch as usize % self.buckets.len()];
        let cell = &bucket[counter];
        let mut current = cell.load(Ordering::Relaxed);
        loop {
            let cell_epoch = (current >> 32) as u32;
            // Same bucket lap, or a later lap already started by another thread whose clock
            // reading was a little ahead: count into it.
            if cell_epoch == epoch || (cell_epoch.wrapping_sub(epoch) as i32) > 0 {
                cell.fetch_add(1, Ordering::Relaxed);
                return;
            }
            // A lap that left the window: restart the count at 1 for this lap.
            let fresh = (u64::from(epoch) << 32) | 1;
            match cell.compare_exchange_weak(current, fresh, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return,
                Err(seen) => current = seen,
            }
        }
    }

    /// The sum of each counter over the buckets still inside the window at `at`.
    pub(crate) fn sums(&self, at: Instant) -> [u64; K] {
        let epoch = self.epoch(at);
        let laps = self.buckets.len() as u32;
        let mut sums = [0u64; K];
        for bucket in self.buckets.iter() {
            for (sum, cell) in sums.iter_mut().zip(bucket.iter()) {
                let value = cell.load(Ordering::Relaxed);
                let age = epoch.wrapping_sub((value >> 32) as u32);
                if value != 0 && age < laps {
                    *sum += value & COUNT_MASK;
                }
            }
        }
        sums
    }

    /// Empties every bucket (O(buckets); runs on state transitions only).
    pub(crate) fn clear(&self) {
        for bucket in self.buckets.iter() {
            for cell in bucket.iter() {
                cell.store(0, Ordering::Relaxed);
            }
        }
    }
}

/// The breaker's window: count-based or time-based.
#[derive(Debug)]
pub(crate) enum OutcomeWindow {
    Count(CountWindow),
    Time(TimeBuckets<3>),
}

const CALLS: usize = 0;
const FAILURES: usize = 1;
const SLOW_CALLS: usize = 2;

impl TimeBuckets<3> {
    /// Records one call's outcome at `at` (a call, and a failure and a slow call if so).
    #[inline]
    pub(crate) fn record(&self, failed: bool, slow: bool, at: Instant) {
        self.add(CALLS, at);
        if failed {
            self.add(FAILURES, at);
        }
        if slow {
            self.add(SLOW_CALLS, at);
        }
    }
}

impl OutcomeWindow {
    pub(crate) fn totals(&self, at: Option<Instant>) -> Totals {
        match self {
            OutcomeWindow::Count(w) => w.totals(),
            OutcomeWindow::Time(w) => {
                let [calls, failures, slow] = w.sums(at.unwrap_or_else(crate::clock::now));
                Totals {
                    calls,
                    failures: failures.min(calls),
                    slow: slow.min(calls),
                }
            }
        }
    }

    pub(crate) fn clear(&self) {
        match self {
            OutcomeWindow::Count(w) => w.clear(),
            OutcomeWindow::Time(w) => w.clear(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_window_slides() {
        let w = CountWindow::new(10);
        let cursor = AtomicU32::new(0);
        for _ in 0..10 {
            assert!(w.record(&cursor, true, false), "filling");
        }
        assert!(!w.record(&cursor, true, false), "full");
        assert_eq!(w.totals().failures, 10);
        // 10,000 successes push every failure out: the window really slides.
        for _ in 0..9_999 {
            w.record(&cursor, false, false);
        }
        let t = w.totals();
        assert_eq!((t.calls, t.failures), (10, 0));
        for _ in 0..5 {
            w.record(&cursor, true, true);
        }
        let t = w.totals();
        assert_eq!((t.calls, t.failures, t.slow), (10, 5, 5));
        w.clear();
        assert_eq!(w.totals(), Totals::default());
    }

    #[tokio::test(start_paused = true)]
    async fn time_buckets_forget_old_laps() {
        let w = TimeBuckets::<2>::new(Duration::from_secs(10), 10);
        let start = crate::clock::now();
        w.add(0, start);
        w.add(1, start);
        assert_eq!(w.sums(start), [1, 1]);
        let later = start + Duration::from_secs(5);
        w.add(0, later);
        assert_eq!(w.sums(later), [2, 1]);
        // 10 s after the first record it has left the window; the second has not.
        let after = start + Duration::from_millis(10_500);
        assert_eq!(w.sums(after), [1, 0]);
        // A whole lap later the same bucket index is reused and restarts from one.
        let lap = start + Duration::from_secs(20);
        w.add(1, lap);
        assert_eq!(w.sums(lap), [0, 1]);
    }
}
