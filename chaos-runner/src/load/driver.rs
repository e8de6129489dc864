//! The calls' driver: requests fall due at fixed times (`rate` per second) and each goes
//! to a free player, drawn at random; a request due while every player is busy is counted
//! as lost (`overflow`) instead of being sent late.
//!
//! Every player is a task of its own on the driver's thread, holding its connection for the
//! whole run: a call costs a wake of that task, the exchange's own reads and writes, and
//! nothing else (no task, timer or channel message per call). Calls are handed out when a
//! player comes free (so above a few thousand per second they go as they fall due, not in
//! a burst per timer tick) and on a tick of at most 10 ms (the timer's resolution is 1 ms).
//! A call's timeout is a timer each player keeps and moves only when it fires early, not
//! one set per call.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

use super::player::Player;
use super::recorder::Outcome;
use super::transport::{PlayerConnection, SendError, Transport};
use super::LoadStats;
use crate::spec::scenario::Scenario;

/// What the driver thread runs with.
pub(super) struct Driver {
    pub scenario: Arc<Scenario>,
    pub rate: u32,
    pub players: u32,
    pub seed: u64,
    pub transport: Transport,
    pub stats: LoadStats,
    pub stop: Arc<AtomicBool>,
}

/// How long the clock waits for the players' connections.
const CONNECT_WAIT: Duration = Duration::from_secs(1);

/// A player's place: where the driver leaves it a call (its due time) and wakes it.
#[derive(Default)]
struct Seat {
    call: Cell<Option<Instant>>,
    wake: Notify,
}

/// The schedule every player and the tick share (one thread: no lock).
struct Schedule {
    /// When the first request fell due: once the players are connected.
    start: Option<Instant>,
    rate: f64,
    /// Requests handed out or counted lost so far.
    issued: u64,
    /// Free players, by seat.
    free: Vec<usize>,
    /// Players that have joined (connected, or failed to).
    joined: usize,
    rng: StdRng,
    stopped: bool,
}

struct Shared {
    schedule: RefCell<Schedule>,
    /// Woken when the last player joins.
    all_joined: Notify,
    seats: Vec<Seat>,
    scenario: Arc<Scenario>,
    stats: LoadStats,
}

impl Shared {
    /// Hands every request due by `now` to a free player, or counts it lost.
    fn dispatch(&self, now: Instant) {
        let mut schedule = self.schedule.borrow_mut();
        let s = &mut *schedule;
        let Some(start) = s.start.filter(|_| !s.stopped) else {
            return;
        };
        let due = (now.saturating_duration_since(start).as_secs_f64() * s.rate) as u64 + 1;
        while s.issued < due {
            let scheduled = start + Duration::from_secs_f64(s.issued as f64 / s.rate);
            s.issued += 1;
            if s.free.is_empty() {
                // Counted under the first call of the flow a player would have started.
                let flow = &self.scenario.flows[self.scenario.pick_flow(&mut s.rng)];
                self.stats.record(
                    flow.steps[0].operation,
                    Outcome::Overflow,
                    Duration::ZERO,
                    now,
                );
                continue;
            }
            let free = s.free.len();
            let pick = s.rng.random_range(0..free);
            let seat = s.free.swap_remove(pick);
            self.seats[seat].call.set(Some(scheduled));
            self.seats[seat].wake.notify_one();
        }
    }

    /// Player `seat` is free again; anything due goes out now (perhaps to it).
    fn free(&self, seat: usize) {
        self.schedule.borrow_mut().free.push(seat);
        self.dispatch(Instant::now());
    }

    /// Player `seat` is ready for calls (its connection opened, or failed to: its first
    /// call tries again).
    fn join(&self, seat: usize) {
        let mut s = self.schedule.borrow_mut();
        s.joined += 1;
        if s.joined == self.seats.len() {
            self.all_joined.notify_one();
        }
        drop(s);
        self.free(seat);
    }

    fn stopped(&self) -> bool {
        self.schedule.borrow().stopped
    }
}

impl Driver {
    /// Runs the players and the tick until `stop`, then lets the calls in flight finish
    /// (each within its timeout).
    pub(super) async fn drive(self) {
        tokio::task::LocalSet::new()
            .run_until(self.drive_local())
            .await;
    }

    async fn drive_local(self) {
        let Driver {
            scenario,
            rate,
            players,
            seed,
            transport,
            stats,
            stop,
        } = self;
        let rate = f64::from(rate.max(1));
        let players = players.max(1) as usize;
        let shared = Rc::new(Shared {
            schedule: RefCell::new(Schedule {
                start: None,
                rate,
                issued: 0,
                free: Vec::with_capacity(players),
                joined: 0,
                rng: StdRng::seed_from_u64(seed),
                stopped: false,
            }),
            all_joined: Notify::new(),
            seats: (0..players).map(|_| Seat::default()).collect(),
            scenario: scenario.clone(),
            stats,
        });
        let transport = Rc::new(transport);
        let tasks: Vec<_> = (0..players)
            .map(|seat| {
                let player = Player::new(seat as u32 + 1, scenario.clone(), seed);
                tokio::task::spawn_local(play(shared.clone(), seat, player, transport.clone()))
            })
            .collect();
        // The clock starts once the players hold their connections (or after a second,
        // the late ones joining as they connect): a thousand connects in the first
        // milliseconds would otherwise count as requests lost.
        let _ = tokio::time::timeout(CONNECT_WAIT, shared.all_joined.notified()).await;
        shared.schedule.borrow_mut().start = Some(Instant::now());
        let tick = Duration::from_secs_f64(1.0 / rate)
            .clamp(Duration::from_millis(1), Duration::from_millis(10));
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        while !stop.load(Ordering::Relaxed) {
            ticker.tick().await;
            shared.dispatch(Instant::now());
        }
        shared.schedule.borrow_mut().stopped = true;
        for seat in &shared.seats {
            seat.wake.notify_one();
        }
        // Let the calls in flight finish (each ends by its timeout; a thinking player is
        // not waited for beyond that).
        let longest = scenario
            .operations
            .iter()
            .map(|o| o.timeout)
            .max()
            .unwrap_or_default();
        let deadline = tokio::time::Instant::now() + longest + Duration::from_secs(1);
        for task in tasks {
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                break;
            }
        }
    }
}

/// A player's task: connects, then waits in its seat for a call, makes it, records it, thinks, and
/// frees itself, until the driver stops.
async fn play(shared: Rc<Shared>, seat: usize, mut player: Player, transport: Rc<Transport>) {
    let mut connection = PlayerConnection::default();
    if let Transport::Plain(origin) = &*transport {
        let connect = connection.connect(origin);
        if let Ok(Err(e)) = tokio::time::timeout(CONNECT_WAIT, connect).await {
            tracing::debug!(error = %e, "a player could not connect before the load started");
        }
    }
    shared.join(seat);
    // The timeout timer: moved out only when it fires before the current call's deadline
    // (not once per call), moved in when a call's deadline is earlier than it.
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    loop {
        shared.seats[seat].wake.notified().await;
        if shared.stopped() {
            return;
        }
        let Some(scheduled) = shared.seats[seat].call.take() else {
            continue;
        };
        let Some(request) = player.next_call() else {
            shared.free(seat);
            continue;
        };
        let deadline = tokio::time::Instant::now() + request.timeout;
        // A shorter timeout than the call before's: the timer comes in to it.
        if timer.deadline() > deadline {
            timer.as_mut().reset(deadline);
        }
        let result = {
            let exchange = transport.send(&mut connection, &request);
            tokio::pin!(exchange);
            loop {
                tokio::select! {
                    biased;
                    answer = &mut exchange => break answer,
                    () = &mut timer => {
                        if tokio::time::Instant::now() >= deadline {
                            break Err(SendError::Timeout(request.timeout));
                        }
                        timer.as_mut().reset(deadline);
                    }
                }
            }
        };
        let done = Instant::now();
        let outcome = match result {
            Ok((status, body)) => player.answered(&request, status, body),
            Err(e) => {
                if matches!(e, SendError::Timeout(_)) {
                    connection.close();
                }
                tracing::debug!(operation = request.operation, error = %e, "load call failed");
                player.failed();
                Outcome::Error
            }
        };
        shared.stats.record(
            request.operation,
            outcome,
            done.saturating_duration_since(scheduled),
            done,
        );
        let think = player.think();
        if !think.is_zero() {
            tokio::time::sleep(think).await;
        }
        if shared.stopped() {
            return;
        }
        shared.free(seat);
    }
}
