//! The breaker's state machine: atomics on the call path, a mutex only for transitions.
//!
//! The state and a generation number share one `AtomicU64`, so a caller always sees a
//! consistent pair; every transition bumps the generation, and results of calls admitted
//! under an earlier generation are dropped instead of polluting the new state.

use arc_swap::ArcSwap;
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

use super::config::{BackoffIter, CircuitBreakerConfig, OpenBackoff, WindowConfig};
use super::{CircuitState, StateChange, StateListener};
use crate::classify::Verdict;
use crate::metrics::PolicyMetrics;
use crate::sliding_window::{CountWindow, OutcomeWindow, TimeBuckets, Totals};

const STATE_BITS: u64 = 8;
const STATE_MASK: u64 = (1 << STATE_BITS) - 1;

#[inline]
fn pack(generation: u64, state: CircuitState) -> u64 {
    (generation << STATE_BITS) | state as u64
}

#[inline]
fn unpack(word: u64) -> (u64, CircuitState) {
    (
        word >> STATE_BITS,
        CircuitState::from_bits(word & STATE_MASK),
    )
}

/// Why a call was not admitted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rejected {
    pub retry_after: Option<Duration>,
}

/// The one cache line every admitted call writes: the breaker's reference count (one
/// reference per call in flight) and the count window's cursor. Keeping both on one line
/// means threads sharing a breaker pass one line between them per call instead of two, and
/// the rest of the breaker (status, settings, window slots), which calls only read, stays
/// cached on every core.
#[repr(align(64))]
struct HotLine {
    refs: AtomicUsize,
    cursor: AtomicU32,
}

pub(crate) struct BreakerCore {
    hot: HotLine,
    pub(crate) name: Arc<str>,
    failure_milli: u64,
    slow_milli: Option<u64>,
    pub(crate) slow_call_duration: Option<Duration>,
    minimum_calls: u64,
    consecutive_failures: Option<u32>,
    half_open_permits: u32,
    status: AtomicU64,
    open_until_nanos: AtomicU64,
    origin: Instant,
    window: OutcomeWindow,
    consecutive: AtomicU32,
    probes_left: AtomicU32,
    probe_results: AtomicU32,
    probe_failures: AtomicU32,
    probe_slow: AtomicU32,
    backoff_config: OpenBackoff,
    backoff: Mutex<BackoffIter>,
    /// Read on state changes only; replaced when the layer gains a listener or metrics,
    /// so handles and services already made keep the same breaker.
    observers: ArcSwap<Observers>,
}

/// Who hears of the breaker's state changes.
#[derive(Default)]
struct Observers {
    listeners: Vec<StateListener>,
    metrics: Option<PolicyMetrics>,
}

impl std::fmt::Debug for BreakerCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerCore")
            .field("name", &self.name)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl BreakerCore {
    pub(crate) fn new(name: Arc<str>, config: &CircuitBreakerConfig) -> Self {
        let window = match config.window {
            WindowConfig::Count { size } => OutcomeWindow::Count(CountWindow::new(size as usize)),
            WindowConfig::Time { length, buckets } => {
                OutcomeWindow::Time(TimeBuckets::new(length, buckets as usize))
            }
        };
        BreakerCore {
            hot: HotLine {
                refs: AtomicUsize::new(1),
                cursor: AtomicU32::new(0),
            },
            name,
            failure_milli: (config.failure_rate_threshold * 1000.0).round() as u64,
            slow_milli: config
                .slow_call_rate_threshold
                .map(|t| (t * 1000.0).round() as u64),
            slow_call_duration: config.slow_call_duration,
            minimum_calls: u64::from(config.minimum_calls),
            consecutive_failures: config.consecutive_failures,
            half_open_permits: config.half_open_permits,
            status: AtomicU64::new(pack(0, CircuitState::Closed)),
            open_until_nanos: AtomicU64::new(0),
            origin: crate::clock::now(),
            window,
            consecutive: AtomicU32::new(0),
            probes_left: AtomicU32::new(0),
            probe_results: AtomicU32::new(0),
            probe_failures: AtomicU32::new(0),
            probe_slow: AtomicU32::new(0),
            backoff_config: config.open_backoff,
            backoff: Mutex::new(config.open_backoff.iter()),
            observers: ArcSwap::from_pointee(Observers::default()),
        }
    }

    /// Adds a listener of state changes.
    pub(crate) fn add_listener(&self, listener: StateListener) {
        self.observers.rcu(|now| Observers {
            listeners: now
                .listeners
                .iter()
                .cloned()
                .chain([listener.clone()])
                .collect(),
            metrics: now.metrics.clone(),
        });
    }

    /// Records state changes in `metrics` from now on, starting with the current state.
    pub(crate) fn set_metrics(&self, metrics: PolicyMetrics) {
        metrics.set_state(self.state());
        self.observers.rcu(|now| Observers {
            listeners: now.listeners.clone(),
            metrics: Some(metrics.clone()),
        });
    }

    pub(crate) fn state(&self) -> CircuitState {
        unpack(self.status.load(Ordering::Acquire)).1
    }

    /// A call's start, as one plus the nanoseconds since the breaker was made, when
    /// slow-call detection needs it (0 otherwise).
    #[inline]
    pub(crate) fn start_mark(&self) -> u64 {
        match self.slow_call_duration {
            Some(_) => self.nanos_since_origin(crate::clock::now()) + 1,
            None => 0,
        }
    }

    /// Whether a call that started at `start_mark` was slow.
    #[inline]
    pub(crate) fn was_slow(&self, start_mark: u64) -> bool {
        match self.slow_call_duration {
            Some(limit) if start_mark != 0 => {
                let now = self.nanos_since_origin(crate::clock::now()) + 1;
                now.saturating_sub(start_mark) >= limit.as_nanos() as u64
            }
            _ => false,
        }
    }

    pub(crate) fn nanos_since_origin(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_nanos() as u64
    }

    /// Decides whether a call may run. Never blocks.
    #[inline]
    pub(crate) fn admit(&self) -> Result<Admission, Rejected> {
        loop {
            let word = self.status.load(Ordering::Acquire);
            let (generation, state) = unpack(word);
            match state {
                CircuitState::Closed => return Ok(Admission::closed(generation)),
                CircuitState::Disabled => return Ok(Admission::NONE),
                CircuitState::ForcedOpen => return Err(Rejected { retry_after: None }),
                CircuitState::Open => {
                    let now = crate::clock::now();
                    let until = self.open_until_nanos.load(Ordering::Acquire);
                    let now_nanos = self.nanos_since_origin(now);
                    if now_nanos < until {
                        return Err(Rejected {
                            retry_after: Some(Duration::from_nanos(until - now_nanos)),
                        });
                    }
                    // Open time is over: the first caller to get here moves to half-open;
                    // everyone then competes for the probe permits.
                    self.transition(word, CircuitState::HalfOpen);
                }
                CircuitState::HalfOpen => {
                    let took = self
                        .probes_left
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                            left.checked_sub(1)
                        })
                        .is_ok();
                    // The permits belong to this generation only if the state did not move
                    // while we took one.
                    if took && self.status.load(Ordering::Acquire) != word {
                        // Give it back to whichever half-open round is current (leaving
                        // half-open zeroes the pool, entering refills it) and look again.
                        self.probes_left.fetch_add(1, Ordering::AcqRel);
                        continue;
                    }
                    return if took {
                        Ok(Admission::probe(generation))
                    } else {
                        Err(Rejected { retry_after: None })
                    };
                }
            }
        }
    }

    /// Records the end of an admitted call. Inlined into the response future as a dispatch
    /// on the admission; each kind's work is out of line (probes on a cold path).
    #[inline]
    pub(crate) fn complete(&self, admission: Admission, verdict: Verdict, slow: bool) {
        let generation = admission.generation();
        match admission.0 & 3 {
            CLOSED if verdict != Verdict::Ignored => {
                self.record_closed(generation, verdict == Verdict::Failure, slow)
            }
            PROBE => self.complete_probe(generation, verdict, slow),
            _ => {}
        }
    }

    #[cold]
    #[inline(never)]
    fn complete_probe(&self, generation: u64, verdict: Verdict, slow: bool) {
        if verdict == Verdict::Ignored {
            self.return_probe(generation)
        } else {
            self.record_probe(generation, verdict == Verdict::Failure, slow)
        }
    }

    /// Records a closed-state call. Out of line, and kept a leaf on the common path (a fast
    /// success replacing a fast success): that path only moves the window's cursor.
    #[inline(never)]
    fn record_closed(&self, generation: u64, failed: bool, slow: bool) {
        let word = self.status.load(Ordering::Acquire);
        if word != pack(generation, CircuitState::Closed) {
            return; // the state moved on while this call ran
        }
        let window = match &self.window {
            OutcomeWindow::Count(window) => window,
            OutcomeWindow::Time(buckets) => {
                return self.record_closed_timed(buckets, word, failed, slow)
            }
        };
        let slot = window.next_slot(&self.hot.cursor);
        let outcome = CountWindow::outcome(failed, slow);
        if failed || slow || !CountWindow::holds(slot, outcome) {
            return self.record_closed_change(window, slot, outcome, word, failed, slow);
        }
        // A fast success where the window already held one: the rates cannot rise.
        if self.consecutive_failures.is_some() {
            self.count_consecutive(false);
        }
    }

    /// The rest of a count-window record: the slot changes, or the call failed or was slow.
    #[inline(never)]
    fn record_closed_change(
        &self,
        window: &CountWindow,
        slot: &AtomicU8,
        outcome: u8,
        word: u64,
        failed: bool,
        slow: bool,
    ) {
        let grew = !CountWindow::holds(slot, outcome) && window.replace(slot, outcome);
        let consecutive_trip = self.count_consecutive(failed);
        // A failure, a slow call, or one more call in a window still filling may trip; a
        // fast success replacing an older call can only lower the rates.
        if consecutive_trip || grew || failed || slow {
            self.check_trip(word, consecutive_trip, None);
        }
    }

    /// The closed-state record for a time window: it reads the clock, and old calls leave
    /// the window as time passes, so the rates are checked after every call.
    #[inline(never)]
    fn record_closed_timed(&self, buckets: &TimeBuckets<3>, word: u64, failed: bool, slow: bool) {
        let at = crate::clock::now();
        buckets.record(failed, slow, at);
        let consecutive_trip = self.count_consecutive(failed);
        self.check_trip(word, consecutive_trip, Some(at));
    }

    /// Counts a failure streak, when `consecutive_failures` is set; true when it trips.
    #[inline]
    fn count_consecutive(&self, failed: bool) -> bool {
        match self.consecutive_failures {
            Some(limit) if failed => self.consecutive.fetch_add(1, Ordering::Relaxed) + 1 >= limit,
            Some(_) => {
                // Only write the shared counter when there is a streak to end.
                if self.consecutive.load(Ordering::Relaxed) != 0 {
                    self.consecutive.store(0, Ordering::Relaxed);
                }
                false
            }
            None => false,
        }
    }

    /// Reads the window's rates (at `at` for a time window) and opens the breaker from the
    /// status `word` when they, or `consecutive_trip`, call for it.
    #[inline(never)]
    fn check_trip(&self, word: u64, consecutive_trip: bool, at: Option<Instant>) {
        let totals = self.window.totals(at);
        let rate_trip = totals.calls >= self.minimum_calls
            && (Totals::reaches(totals.failures, totals.calls, self.failure_milli)
                || self
                    .slow_milli
                    .is_some_and(|limit| Totals::reaches(totals.slow, totals.calls, limit)));
        if consecutive_trip || rate_trip {
            self.transition(word, CircuitState::Open);
        }
    }

    fn record_probe(&self, generation: u64, failed: bool, slow: bool) {
        let word = self.status.load(Ordering::Acquire);
        if word != pack(generation, CircuitState::HalfOpen) {
            return;
        }
        if failed {
            self.probe_failures.fetch_add(1, Ordering::AcqRel);
        }
        if slow {
            self.probe_slow.fetch_add(1, Ordering::AcqRel);
        }
        let results = self.probe_results.fetch_add(1, Ordering::AcqRel) + 1;
        if results < self.half_open_permits {
            return;
        }
        let failures = u64::from(self.probe_failures.load(Ordering::Acquire));
        let slow_calls = u64::from(self.probe_slow.load(Ordering::Acquire));
        let total = u64::from(results);
        let reopen = Totals::reaches(failures, total, self.failure_milli)
            || self
                .slow_milli
                .is_some_and(|limit| Totals::reaches(slow_calls, total, limit));
        let next = if reopen {
            CircuitState::Open
        } else {
            CircuitState::Closed
        };
        self.transition(word, next);
    }

    /// Gives a probe permit back (the probe was dropped or its result ignored).
    #[cold]
    pub(crate) fn return_probe(&self, generation: u64) {
        if self.status.load(Ordering::Acquire) == pack(generation, CircuitState::HalfOpen) {
            self.probes_left.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Moves from the exact status word `from` to `to`; does nothing if another thread moved
    /// first. Returns whether this call made the transition.
    pub(crate) fn transition(&self, from: u64, to: CircuitState) -> bool {
        let mut backoff = self.backoff.lock().unwrap_or_else(PoisonError::into_inner);
        if self.status.load(Ordering::Acquire) != from {
            return false;
        }
        let (generation, from_state) = unpack(from);
        match to {
            CircuitState::Open => {
                let open_for = backoff.next_duration();
                let now = crate::clock::now();
                // Bounded by validation (`open_backoff.max`); saturate all the same.
                let until = match now.checked_add(open_for) {
                    Some(at) => self.nanos_since_origin(at),
                    None => u64::MAX,
                };
                self.open_until_nanos.store(until, Ordering::Release);
            }
            CircuitState::HalfOpen => {
                self.probe_results.store(0, Ordering::Release);
                self.probe_failures.store(0, Ordering::Release);
                self.probe_slow.store(0, Ordering::Release);
                self.probes_left
                    .store(self.half_open_permits, Ordering::Release);
            }
            CircuitState::Closed => {
                self.window.clear();
                self.consecutive.store(0, Ordering::Release);
                *backoff = self.backoff_config.iter();
            }
            CircuitState::ForcedOpen | CircuitState::Disabled => {}
        }
        if from_state == CircuitState::HalfOpen && to != CircuitState::HalfOpen {
            self.probes_left.store(0, Ordering::Release);
        }
        self.status
            .store(pack(generation.wrapping_add(1), to), Ordering::Release);
        drop(backoff);
        tracing::info!(policy = %self.name, from = ?from_state, to = ?to, "circuit breaker state change");
        let observers = self.observers.load();
        if let Some(m) = &observers.metrics {
            m.record_transition(from_state, to);
        }
        let change = StateChange {
            policy: self.name.clone(),
            from: from_state,
            to,
        };
        for listener in &observers.listeners {
            listener(&change);
        }
        true
    }

    /// Moves to `to` from whatever state the breaker is in (handle operations).
    pub(crate) fn force(&self, to: CircuitState) {
        loop {
            let word = self.status.load(Ordering::Acquire);
            if unpack(word).1 == to || self.transition(word, to) {
                return;
            }
        }
    }

    /// Closes the breaker with an empty window, no consecutive failures and the open
    /// backoff started over, from any state. Closed already, it is not a state change
    /// (no event, no transition counted), but the window and the counts are emptied all
    /// the same.
    pub(crate) fn reset(&self) {
        loop {
            let word = self.status.load(Ordering::Acquire);
            if unpack(word).1 != CircuitState::Closed {
                if self.transition(word, CircuitState::Closed) {
                    return;
                }
                continue;
            }
            let mut backoff = self.backoff.lock().unwrap_or_else(PoisonError::into_inner);
            if self.status.load(Ordering::Acquire) != word {
                continue; // it moved while we took the lock: look again
            }
            self.window.clear();
            self.consecutive.store(0, Ordering::Release);
            *backoff = self.backoff_config.iter();
            return;
        }
    }

    /// The window's current failure and slow-call rates and call count.
    pub(crate) fn rates(&self) -> (f64, f64, u64) {
        let totals = self.window.totals(None);
        (totals.failure_rate(), totals.slow_rate(), totals.calls)
    }
}

/// A counted reference to a [`BreakerCore`], shared by the layer, its services, handles and
/// every call in flight: `Arc` without the weak count, whose count lives in the breaker's
/// [`HotLine`] next to the window cursor (a `std::sync::Arc` keeps its count on a line of
/// its own, so a call would write two shared lines instead of one).
pub(crate) struct CoreRef {
    ptr: NonNull<BreakerCore>,
    _owns: PhantomData<BreakerCore>,
}

// SAFETY: a `CoreRef` only hands out `&BreakerCore`, which is `Sync` (atomics, a mutex, and
// `Send + Sync` listeners and metrics); dropping the last one drops the core on whichever
// thread that happens, which needs `BreakerCore: Send`. Same reasoning as `Arc<T>`.
unsafe impl Send for CoreRef where BreakerCore: Send + Sync {}
// SAFETY: as above.
unsafe impl Sync for CoreRef where BreakerCore: Send + Sync {}

impl CoreRef {
    pub(crate) fn new(core: BreakerCore) -> Self {
        debug_assert_eq!(core.hot.refs.load(Ordering::Relaxed), 1);
        CoreRef {
            ptr: NonNull::from(Box::leak(Box::new(core))),
            _owns: PhantomData,
        }
    }
}

impl Deref for CoreRef {
    type Target = BreakerCore;

    #[inline]
    fn deref(&self) -> &BreakerCore {
        // SAFETY: the core lives until the last `CoreRef` is dropped, and this one is alive.
        unsafe { self.ptr.as_ref() }
    }
}

impl Clone for CoreRef {
    #[inline]
    fn clone(&self) -> Self {
        // Relaxed, as in `Arc::clone`: a new reference is made from an existing one, so the
        // core cannot be freed meanwhile, and nothing else is published by the count.
        let old = self.hot.refs.fetch_add(1, Ordering::Relaxed);
        if old > isize::MAX as usize {
            // Billions of leaked references: stop before the count can wrap to zero.
            std::process::abort();
        }
        CoreRef {
            ptr: self.ptr,
            _owns: PhantomData,
        }
    }
}

impl Drop for CoreRef {
    #[inline]
    fn drop(&mut self) {
        // Release so that this reference's uses happen before the free; the last one takes
        // an Acquire fence to see every other reference's uses before freeing (as `Arc`).
        if self.hot.refs.fetch_sub(1, Ordering::Release) == 1 {
            self.drop_core();
        }
    }
}

impl CoreRef {
    /// Frees the core; out of line so that dropping a reference inlines to one atomic.
    #[cold]
    #[inline(never)]
    fn drop_core(&mut self) {
        fence(Ordering::Acquire);
        // SAFETY: this was the last reference (the count reached zero, and only a live
        // reference can raise it), and the core was made by `Box::leak` in `CoreRef::new`.
        drop(unsafe { Box::from_raw(self.ptr.as_ptr()) });
    }
}

impl std::fmt::Debug for CoreRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

/// A call's admission, kept by its future until it completes, packed in one word:
/// the generation it was admitted under and its kind in the low two bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Admission(u64);

const PASSTHROUGH: u64 = 0;
const CLOSED: u64 = 1;
const PROBE: u64 = 2;

impl Admission {
    /// An admission that records nothing (disabled breaker, or already completed).
    pub(crate) const NONE: Admission = Admission(PASSTHROUGH);

    fn closed(generation: u64) -> Self {
        Admission((generation << 2) | CLOSED)
    }

    fn probe(generation: u64) -> Self {
        Admission((generation << 2) | PROBE)
    }

    fn generation(self) -> u64 {
        self.0 >> 2
    }

    /// The probe's generation, if this admission is a half-open probe.
    pub(crate) fn probe_generation(self) -> Option<u64> {
        (self.0 & 3 == PROBE).then_some(self.generation())
    }
}
