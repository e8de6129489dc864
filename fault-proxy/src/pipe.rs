//! One direction of one proxied connection: reads from one socket, applies the current
//! toxics of its direction, writes to the other.
//!
//! The toxic list arrives through a `watch` channel, so adding, changing or removing a toxic
//! reaches open connections at once. With no toxic in effect the pipe relays with
//! `splice(2)` through a kernel pipe (no copy through user space; see [`crate::splice`]),
//! or, where that is unavailable, copies from a 64 KiB buffer (no per-chunk allocation). With toxics it keeps a queue of chunks
//! stamped with their arrival time and releases each when the toxics allow; a toxic that
//! goes away only changes *when* queued bytes are written, never *whether*, so removing
//! toxics loses nothing in flight (only `loss` drops data, by design).

use prometheus_client::metrics::counter::Counter;
use rand::Rng;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::busy_poll::{self, Activity};
use crate::splice::KernelPipe;
use crate::toxics::{Armed, Stream, ToxicKind};

/// Read buffer size.
const BUFFER: usize = 64 * 1024;
/// What the pass-through reads before deciding between copying and `splice` (and the
/// least a `splice` fill must take to stay on it).
const PROBE: usize = 4 * 1024;
/// The last stretch before a deadline that is waited by yielding instead of the timer,
/// while no other connection on the relay thread moves bytes (see [`busy_poll::alone`]).
/// The timer wheel has millisecond ticks and rounds up, so a toxic's delay waited on the
/// timer alone ends up to a tick late; the yields spend CPU that other connections on a
/// busy proxy need more than this one needs the last millisecond.
const SPIN: Duration = Duration::from_micros(1500);
/// Most bytes a pipe holds back before it stops reading (back-pressure on the sender).
const MAX_QUEUED: usize = 8 * 1024 * 1024;

/// What both directions of one connection share.
#[derive(Debug)]
pub(crate) struct Connection {
    /// Cancelled to close the whole connection (both directions).
    pub cut: CancellationToken,
    /// The close is a TCP reset (`reset_peer`).
    pub reset: AtomicBool,
    /// When bytes last moved in either direction.
    pub activity: Activity,
    /// How the pass-through relays: its busy-poll window after bytes moved (see
    /// [`busy_poll`]) and its bulk yield.
    pub relaying: Relaying,
}

impl Connection {
    pub(crate) fn new(cut: CancellationToken, relaying: Relaying) -> Arc<Connection> {
        Arc::new(Connection {
            cut,
            reset: AtomicBool::new(false),
            activity: Activity::default(),
            relaying,
        })
    }
}

/// How a proxy's pass-through relays, fixed for each connection when it is accepted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Relaying {
    /// The busy-poll window after each exchange.
    pub busy_poll: Duration,
    /// Yield the core after each spliced chunk of a bulk transfer (see
    /// [`crate::ProxyRegistry::set_bulk_yield`]).
    pub bulk_yield: bool,
}

/// A chunk waiting in a toxic pipe.
struct Chunk {
    arrival: Instant,
    data: Vec<u8>,
    written: usize,
    /// This chunk's draw of the latency jitter, in [-1, 1].
    jitter: f64,
    /// Extra delay from `loss` (delay mode).
    extra: Duration,
}

/// Per-toxic state on this pipe: whether it applies (toxicity dice, rolled once per toxic
/// id), when it took effect and the byte count at that time.
#[derive(Clone, Copy)]
struct Roll {
    applies: bool,
    since: Instant,
    written_at_start: u64,
}

/// The effect of the toxics in force on this pipe.
#[derive(Default)]
struct Effects {
    any: bool,
    latency: Duration,
    jitter: Duration,
    rate: Option<u64>,
    slicer: Option<(u64, u64, Duration)>,
    slow_close: Option<Duration>,
    hold: bool,
    close_at: Option<Instant>,
    reset_at: Option<Instant>,
    /// Bytes still allowed by `limit_data`.
    limit_left: Option<u64>,
    loss: Option<(f64, Duration)>,
}

/// One direction's pipe.
pub(crate) struct Pipe {
    pub src: OwnedReadHalf,
    pub dst: OwnedWriteHalf,
    pub stream: Stream,
    pub toxics: watch::Receiver<Arc<Vec<Armed>>>,
    pub conn: Arc<Connection>,
    pub bytes: Counter,
}

/// The next change of the toxics, and the receiver to watch for the one after.
async fn next_change(
    mut toxics: watch::Receiver<Arc<Vec<Armed>>>,
) -> (
    Result<(), watch::error::RecvError>,
    watch::Receiver<Arc<Vec<Armed>>>,
) {
    let result = toxics.changed().await;
    (result, toxics)
}

enum Step {
    Continue,
    Done,
    Cut,
}

impl Pipe {
    /// Runs until the source ends (and the rest is delivered) or the connection is cut.
    pub(crate) async fn run(mut self) {
        let mut buf = vec![0u8; BUFFER];
        let mut rolls: HashMap<u64, Roll> = HashMap::new();
        let mut written: u64 = 0;
        let mut queue: VecDeque<Chunk> = VecDeque::new();
        let mut queued = 0usize;
        let mut eof_at: Option<Instant> = None;
        let mut pace_at = Instant::now();
        let snapshot = self.toxics.borrow_and_update().clone();
        let mut effects = self.effects(&snapshot, &mut rolls, written);
        // Made once and polled by every turn of the loop: a future made per message
        // would register and unregister a waiter (under a lock) each time.
        let cancelled = self.conn.cut.clone().cancelled_owned();
        tokio::pin!(cancelled);
        let mut changed = Box::pin(next_change(self.toxics.clone()));
        let mut kernel = KernelPipe::new().ok();
        // Once a full probe came: splice from then on, until a short fill.
        let mut bulk = false;
        loop {
            if !effects.any && queue.is_empty() {
                if eof_at.is_some() {
                    let _ = self.dst.shutdown().await;
                    return;
                }
                // Fast path: straight copy.
                tokio::select! {
                    biased;
                    _ = &mut cancelled => return self.cut(),
                    (result, mut toxics) = &mut changed => {
                        if result.is_err() {
                            return self.cut();
                        }
                        let snapshot = toxics.borrow_and_update().clone();
                        effects = self.effects(&snapshot, &mut rolls, written);
                        changed.set(next_change(toxics));
                    }
                    // In a bulk transfer the next bytes come from a sender that is
                    // busy anyway: wait on the reactor and leave the cores to it.
                    read = busy_poll::read_with(&self.src, &self.conn.activity, if bulk { Duration::ZERO } else { self.conn.relaying.busy_poll }, match (&kernel, bulk) {
                        // A splice can stop short at a full pipe with bytes still waiting.
                        (Some(_), true) => None,
                        (Some(_), false) => Some(PROBE),
                        (None, _) => Some(buf.len()),
                    }, |fd| match (&kernel, bulk) {
                        (Some(relay), true) => relay.fill(fd),
                        // A probe when splice can take over a bulk transfer, else the
                        // whole buffer.
                        (Some(_), false) => busy_poll::recv(fd, &mut buf[..PROBE]),
                        (None, _) => busy_poll::recv(fd, &mut buf),
                    }) => {
                        let moved = match (read, kernel.as_ref()) {
                            (Ok(0), _) => Ok(0),
                            // splice refused these descriptors before taking anything:
                            // copy through user space from now on.
                            (Err(e), Some(_)) if bulk && e.raw_os_error() == Some(libc::EINVAL) => {
                                (kernel, bulk) = (None, false);
                                continue;
                            }
                            (Err(e), _) => Err(e),
                            (Ok(n), Some(relay)) if bulk => {
                                // A short fill is the end of a bulk transfer: the next read
                                // is a probe again.
                                bulk = n >= PROBE;
                                let drained = relay.drain(self.dst.as_ref(), n).await.map(|()| n);
                                if self.conn.relaying.bulk_yield {
                                    // The chunk just woke the receiver, and the sender may
                                    // be waiting for a core too: let them run before the
                                    // next fill, which then takes a bigger chunk (fewer
                                    // wake-ups and system calls per MiB on every side).
                                    std::thread::yield_now();
                                }
                                drained
                            }
                            (Ok(n), relay) => {
                                // A small message takes one read and one write (splice
                                // would pay three calls); a full probe is the start of a
                                // bulk transfer, which goes on with splice.
                                bulk = relay.is_some() && n == PROBE;
                                self.dst.write_all(&buf[..n]).await.map(|()| n)
                            }
                        };
                        match moved {
                            Ok(0) => eof_at = Some(Instant::now()),
                            Ok(n) => {
                                // Only a message (or the short fill that ends a bulk
                                // transfer) is an exchange worth spinning for: bytes of
                                // a transfer still going on must not keep the other
                                // direction polling its idle socket.
                                if !bulk {
                                    self.conn.activity.touch();
                                }
                                self.bytes.inc_by(n as u64);
                                written += n as u64;
                            }
                            Err(_) => return self.fail(),
                        }
                    }
                }
                continue;
            }
            // Toxic path: the next thing to do, and when.
            let now = Instant::now();
            let mut deadline: Option<(Instant, Action)> = None;
            let mut consider = |at: Instant, action: Action| {
                if deadline.as_ref().is_none_or(|(d, _)| at < *d) {
                    deadline = Some((at, action));
                }
            };
            if let Some(at) = effects.reset_at {
                consider(at, Action::Reset);
            }
            if let Some(at) = effects.close_at {
                consider(at, Action::Close);
            }
            if let Some(front) = queue.front() {
                if !effects.hold {
                    let jitter = effects.jitter.mul_f64(front.jitter.abs());
                    let base = front.arrival + effects.latency + front.extra;
                    let release = if front.jitter < 0.0 {
                        base.checked_sub(jitter).unwrap_or(base)
                    } else {
                        base + jitter
                    };
                    consider(release.max(pace_at), Action::Write);
                }
            } else if let Some(eof) = eof_at {
                consider(eof + effects.slow_close.unwrap_or_default(), Action::Finish);
            }
            let can_read = eof_at.is_none() && queued < MAX_QUEUED;
            let sleep_until = deadline.as_ref().map_or(now, |(at, _)| *at);
            let spin = if busy_poll::alone(&self.conn.activity, SPIN) {
                SPIN
            } else {
                Duration::ZERO
            };
            tokio::select! {
                biased;
                _ = &mut cancelled => return self.cut(),
                (result, mut toxics) = &mut changed => {
                    if result.is_err() {
                        return self.cut();
                    }
                    let snapshot = toxics.borrow_and_update().clone();
                    effects = self.effects(&snapshot, &mut rolls, written);
                    changed.set(next_change(toxics));
                }
                _ = tokio::time::sleep_until(sleep_until.checked_sub(spin).unwrap_or(sleep_until)), if deadline.is_some() => {
                    let Some((at, action)) = deadline else { continue };
                    // The timer wheel has millisecond ticks and rounds up: finish the last
                    // stretch by yielding, so a 100 ms latency is 100 ms, not 101 (when
                    // the connection spins: else the timer fired at or after `at`).
                    while Instant::now() < at {
                        tokio::task::yield_now().await;
                    }
                    match self.act(action, &mut queue, &mut queued, &mut effects, &mut written, &mut pace_at).await {
                        Step::Continue => {}
                        Step::Done => return,
                        Step::Cut => return self.cut(),
                    }
                }
                // While the connection is in conversation (the other direction just
                // moved bytes), look for the answer on the socket itself, as the
                // pass-through does: the reactor may be held by a worker that is polling.
                read = busy_poll::read_with(&self.src, &self.conn.activity, self.conn.relaying.busy_poll, Some(buf.len()), |fd| busy_poll::recv(fd, &mut buf)), if can_read => match read {
                    Ok(0) => eof_at = Some(Instant::now()),
                    Ok(n) => {
                        let mut rng = rand::rng();
                        let mut extra = Duration::ZERO;
                        if let Some((p, delay)) = effects.loss {
                            if rng.random_bool(p) {
                                if delay.is_zero() {
                                    continue; // dropped
                                }
                                extra = delay;
                            }
                        }
                        queued += n;
                        queue.push_back(Chunk {
                            arrival: Instant::now(),
                            data: buf[..n].to_vec(),
                            written: 0,
                            jitter: if effects.jitter.is_zero() { 0.0 } else { rng.random_range(-1.0..=1.0) },
                            extra,
                        });
                    }
                    Err(_) => return self.fail(),
                },
            }
        }
    }

    async fn act(
        &mut self,
        action: Action,
        queue: &mut VecDeque<Chunk>,
        queued: &mut usize,
        effects: &mut Effects,
        written: &mut u64,
        pace_at: &mut Instant,
    ) -> Step {
        match action {
            Action::Reset => {
                self.conn.reset.store(true, Ordering::SeqCst);
                Step::Cut
            }
            Action::Close => Step::Cut,
            Action::Finish => {
                let _ = self.dst.shutdown().await;
                Step::Done
            }
            Action::Write => {
                let Some(front) = queue.front_mut() else {
                    return Step::Continue;
                };
                let left = front.data.len() - front.written;
                let mut size = left;
                if let Some((average, variation, _)) = effects.slicer {
                    let low = average.saturating_sub(variation).max(1);
                    let high = average + variation;
                    size = size.min(rand::rng().random_range(low..=high) as usize);
                }
                if let Some(rate) = effects.rate {
                    // At most 100 ms worth of data per write.
                    size = size.min((rate as usize * 100).max(1));
                }
                if let Some(limit) = effects.limit_left {
                    if limit == 0 {
                        return Step::Cut;
                    }
                    size = size.min(limit as usize);
                }
                let slice = &front.data[front.written..front.written + size];
                if self.dst.write_all(slice).await.is_err() {
                    return Step::Cut;
                }
                self.bytes.inc_by(size as u64);
                *written += size as u64;
                front.written += size;
                if front.written == front.data.len() {
                    *queued -= front.data.len();
                    queue.pop_front();
                    // A delivered message is an exchange: its answer may come at once.
                    self.conn.activity.touch();
                }
                let now = Instant::now();
                if let Some((_, _, delay)) = effects.slicer {
                    *pace_at = now + delay;
                }
                if let Some(rate) = effects.rate {
                    let cost = Duration::from_secs_f64(size as f64 / (rate as f64 * 1000.0));
                    *pace_at = (*pace_at).max(now) + cost;
                }
                if let Some(limit) = effects.limit_left.as_mut() {
                    *limit -= size as u64;
                    if *limit == 0 {
                        return Step::Cut;
                    }
                }
                Step::Continue
            }
        }
    }

    /// The effect of `toxics` on this pipe; rolls the toxicity dice for new toxics.
    fn effects(&self, toxics: &[Armed], rolls: &mut HashMap<u64, Roll>, written: u64) -> Effects {
        let now = Instant::now();
        rolls.retain(|id, _| toxics.iter().any(|t| t.id == *id));
        let mut e = Effects::default();
        for Armed { toxic, id } in toxics.iter().filter(|t| t.toxic.stream == self.stream) {
            let roll = *rolls.entry(*id).or_insert_with(|| Roll {
                applies: toxic.toxicity >= 1.0
                    || (toxic.toxicity > 0.0 && rand::rng().random_bool(toxic.toxicity)),
                since: now,
                written_at_start: written,
            });
            if !roll.applies {
                continue;
            }
            e.any = true;
            match &toxic.kind {
                ToxicKind::Latency { latency, jitter } => {
                    e.latency += *latency;
                    e.jitter += *jitter;
                }
                ToxicKind::Bandwidth { rate } => {
                    if *rate > 0 {
                        e.rate = Some(e.rate.map_or(*rate, |r| r.min(*rate)));
                    }
                }
                ToxicKind::SlowClose { delay } => {
                    e.slow_close = Some(e.slow_close.unwrap_or_default().max(*delay));
                }
                ToxicKind::Timeout { timeout } => {
                    e.hold = true;
                    if !timeout.is_zero() {
                        let at = roll.since + *timeout;
                        e.close_at = Some(e.close_at.map_or(at, |c| c.min(at)));
                    }
                }
                ToxicKind::ResetPeer { timeout } => {
                    let at = roll.since + *timeout;
                    e.reset_at = Some(e.reset_at.map_or(at, |c| c.min(at)));
                }
                ToxicKind::Slicer {
                    average_size,
                    size_variation,
                    delay,
                } => e.slicer = Some((*average_size, *size_variation, *delay)),
                ToxicKind::LimitData { bytes } => {
                    let used = written - roll.written_at_start;
                    let left = bytes.saturating_sub(used);
                    e.limit_left = Some(e.limit_left.map_or(left, |l| l.min(left)));
                }
                ToxicKind::Loss { probability, delay } => {
                    if e.loss.is_none() {
                        e.loss = Some((*probability, *delay));
                    }
                }
            }
        }
        e
    }

    /// Closes the whole connection (a reset when `reset_peer` asked for one: zero linger
    /// and no FIN first, so the peer sees ECONNRESET).
    fn cut(self) {
        self.conn.cut.cancel();
        if self.conn.reset.load(Ordering::SeqCst) {
            #[allow(deprecated)]
            let _ = self.dst.as_ref().set_linger(Some(Duration::ZERO));
            self.dst.forget();
        }
    }

    /// An I/O error on either side: close the whole connection.
    fn fail(self) {
        self.conn.cut.cancel();
    }
}

#[derive(Clone, Copy)]
enum Action {
    Write,
    Close,
    Reset,
    Finish,
}
