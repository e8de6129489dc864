//! Matchmaking: a player queues with a skill; the stored rating (PostgreSQL, through the
//! matchmaking policy) decides whom they are paired with, within a skill band. When ratings
//! cannot be read (open circuit, timeout, database down) matchmaking degrades to the
//! client-supplied skill and a wider band instead of failing. Matches are recorded in the
//! database on a best-effort basis.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::config::MatchmakingConfig;
use crate::db::{guard, Call, Database, Guarded};
use crate::metrics::{MatchResult, Metrics};
use crate::sessions::Sessions;

/// A match made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    /// `m-...`.
    pub match_id: String,
    /// Its players, the one who waited first.
    pub players: Vec<String>,
    /// The skill band the pairing used (wider when degraded).
    pub skill_band: u32,
}

/// What queueing (or polling a ticket) answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Paired.
    Matched(Arc<Matched>),
    /// Waiting; poll the ticket.
    Queued {
        /// `t-...`.
        ticket: String,
    },
}

/// Queueing was refused.
///
/// ```
/// assert!(game_server::matchmaking::MatchError::PoolFull.to_string().contains("full"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    /// Too many players are waiting.
    #[error("matchmaking pool is full")]
    PoolFull,
}

struct Waiting {
    ticket: String,
    player: String,
    skill: i32,
    band: u32,
}

enum Ticket {
    Queued {
        expires: Instant,
    },
    Matched {
        matched: Arc<Matched>,
        expires: Instant,
    },
}

#[derive(Default)]
struct Pool {
    waiting: Vec<Waiting>,
    tickets: HashMap<String, Ticket>,
    next_id: u64,
}

impl Pool {
    fn expire(&mut self, now: Instant) {
        self.tickets.retain(|_, t| match t {
            Ticket::Queued { expires, .. } | Ticket::Matched { expires, .. } => *expires > now,
        });
        let tickets = &self.tickets;
        self.waiting.retain(|w| tickets.contains_key(&w.ticket));
    }
}

/// A rating look-up: player id and the client's skill (stored on first sight).
type RatingCall = (String, i32);
/// A match record: id, players, band.
type MatchRecord = (String, Vec<String>, i32);

/// The matchmaker.
#[derive(Clone)]
pub struct Matchmaker {
    rating: Guarded<RatingCall, i32>,
    record: Guarded<MatchRecord, ()>,
    pool: Arc<Mutex<Pool>>,
    config: MatchmakingConfig,
    sessions: Sessions,
    metrics: Metrics,
    id_prefix: String,
}

impl std::fmt::Debug for Matchmaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matchmaker").finish_non_exhaustive()
    }
}

impl Matchmaker {
    /// A matchmaker reading ratings and recording matches through `policy`.
    pub fn new(
        db: &Database,
        policy: &resilience::ResiliencePolicy,
        config: MatchmakingConfig,
        sessions: Sessions,
        metrics: Metrics,
    ) -> Matchmaker {
        let rating = guard(policy, db, |db: Database, c: Arc<RatingCall>| async move {
            db.rating(&c.0, c.1).await
        });
        let record = guard(policy, db, |db: Database, r: Arc<MatchRecord>| async move {
            db.record_match(&r.0, &r.1, r.2).await
        });
        // Ids unique across restarts (the matches table's key): start time, then a counter.
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        Matchmaker {
            rating,
            record,
            pool: Arc::default(),
            config,
            sessions,
            metrics,
            id_prefix: format!("{started:x}"),
        }
    }

    /// Queues `player` with the client's `skill`: paired with the closest waiting player
    /// within the band, or given a ticket.
    pub async fn queue(&self, player: &str, skill: i32) -> Result<Outcome, MatchError> {
        let (rating, band) = match self
            .rating
            .clone()
            .oneshot(Call::new((player.to_owned(), skill)))
            .await
        {
            Ok(rating) => (rating, self.config.skill_band),
            Err(e) => {
                tracing::debug!(player, error = %e, "ratings unavailable: degraded matchmaking");
                (skill, self.config.degraded_skill_band)
            }
        };
        let outcome = self.pair(player, rating, band);
        self.metrics.count_match(match &outcome {
            Ok(Outcome::Matched(_)) => MatchResult::Matched,
            Ok(Outcome::Queued { .. }) => MatchResult::Queued,
            Err(_) => MatchResult::Failed,
        });
        if let Ok(Outcome::Matched(m)) = &outcome {
            self.sessions.register(&m.match_id);
            let record = self.record.clone();
            let call = Call::new((m.match_id.clone(), m.players.clone(), m.skill_band as i32));
            tokio::spawn(async move {
                if let Err(e) = record.oneshot(call).await {
                    tracing::debug!(error = %e, "match not recorded");
                }
            });
        }
        outcome
    }

    fn pair(&self, player: &str, skill: i32, band: u32) -> Result<Outcome, MatchError> {
        let mut pool = self.pool.lock().map_err(|_| MatchError::PoolFull)?;
        let now = Instant::now();
        pool.expire(now);
        // Already waiting: the same ticket.
        if let Some(w) = pool.waiting.iter().find(|w| w.player == player) {
            return Ok(Outcome::Queued {
                ticket: w.ticket.clone(),
            });
        }
        let best = pool
            .waiting
            .iter()
            .enumerate()
            .filter(|(_, w)| {
                let diff = (i64::from(w.skill) - i64::from(skill)).unsigned_abs();
                diff <= u64::from(band.max(w.band))
            })
            .min_by_key(|(_, w)| (i64::from(w.skill) - i64::from(skill)).unsigned_abs())
            .map(|(i, _)| i);
        pool.next_id += 1;
        let id = pool.next_id;
        let expires = now + self.config.ticket_ttl;
        match best {
            Some(index) => {
                let other = pool.waiting.swap_remove(index);
                let matched = Arc::new(Matched {
                    match_id: format!("m-{}-{id}", self.id_prefix),
                    players: vec![other.player, player.to_owned()],
                    skill_band: band.max(other.band),
                });
                pool.tickets.insert(
                    other.ticket,
                    Ticket::Matched {
                        matched: matched.clone(),
                        expires,
                    },
                );
                Ok(Outcome::Matched(matched))
            }
            None => {
                if pool.waiting.len() >= self.config.max_waiting {
                    return Err(MatchError::PoolFull);
                }
                let ticket = format!("t-{}-{id}", self.id_prefix);
                pool.waiting.push(Waiting {
                    ticket: ticket.clone(),
                    player: player.to_owned(),
                    skill,
                    band,
                });
                pool.tickets
                    .insert(ticket.clone(), Ticket::Queued { expires });
                Ok(Outcome::Queued { ticket })
            }
        }
    }

    /// The state of a ticket, `None` when unknown or expired.
    pub fn ticket(&self, ticket: &str) -> Option<Outcome> {
        let mut pool = self.pool.lock().ok()?;
        pool.expire(Instant::now());
        match pool.tickets.get(ticket)? {
            Ticket::Queued { .. } => Some(Outcome::Queued {
                ticket: ticket.to_owned(),
            }),
            Ticket::Matched { matched, .. } => Some(Outcome::Matched(matched.clone())),
        }
    }

    /// Drops expired tickets (called periodically).
    pub fn sweep(&self) {
        if let Ok(mut pool) = self.pool.lock() {
            pool.expire(Instant::now());
        }
    }

    /// Players waiting.
    pub fn waiting(&self) -> usize {
        self.pool.lock().map(|p| p.waiting.len()).unwrap_or(0)
    }

    /// How long tickets live.
    pub fn ticket_ttl(&self) -> Duration {
        self.config.ticket_ttl
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matchmaker() -> Matchmaker {
        let db = crate::config::DatabaseConfig {
            url: "host=127.0.0.1 port=1 user=x".into(),
            ..Default::default()
        };
        let db = Database::new(&db).unwrap();
        let policy = resilience::ResiliencePolicy::builder("t").build().unwrap();
        let metrics = Metrics::new();
        Matchmaker::new(
            &db,
            &policy,
            MatchmakingConfig::default(),
            Sessions::new(metrics.active_sessions.clone()),
            metrics,
        )
    }

    #[tokio::test]
    async fn pairs_closest_within_band_and_not_with_self() {
        let m = matchmaker();
        let Ok(Outcome::Queued { ticket }) = m.pair("p1", 1500, 100) else {
            panic!("first player waits")
        };
        assert_eq!(
            m.pair("p1", 1500, 100),
            Ok(Outcome::Queued {
                ticket: ticket.clone()
            })
        );
        assert!(matches!(
            m.pair("p2", 1700, 100),
            Ok(Outcome::Queued { .. })
        ));
        let Ok(Outcome::Matched(matched)) = m.pair("p3", 1560, 100) else {
            panic!("p3 pairs with p1")
        };
        assert_eq!(matched.players, vec!["p1".to_owned(), "p3".to_owned()]);
        assert_eq!(m.ticket(&ticket), Some(Outcome::Matched(matched)));
        assert_eq!(m.waiting(), 1);
        assert!(m.ticket("t-nope").is_none());
    }
}
