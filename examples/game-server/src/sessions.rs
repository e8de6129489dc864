//! Game sessions: one per match, players join and leave; counts exported as a gauge.
//! In memory (a session lives as long as its game server would).

use prometheus_client::metrics::gauge::Gauge;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The match is not known (never made, or forgotten after it stayed empty too long).
///
/// ```
/// assert_eq!(game_server::sessions::UnknownMatch.to_string(), "unknown match");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown match")]
pub struct UnknownMatch;

struct Session {
    players: HashSet<String>,
    /// When it last became empty (or was created empty).
    empty_since: Option<Instant>,
}

#[derive(Default)]
struct Table {
    sessions: HashMap<String, Session>,
    active: usize,
    players: usize,
}

/// Sessions by match id.
///
/// ```
/// let sessions = game_server::sessions::Sessions::new(Default::default());
/// sessions.register("m-1");
/// assert_eq!(sessions.join("m-1", "p1").unwrap(), 1);
/// assert_eq!(sessions.counts(), (1, 1));
/// assert_eq!(sessions.leave("m-1", "p1").unwrap(), 0);
/// assert_eq!(sessions.counts(), (0, 0));
/// assert!(sessions.join("m-2", "p1").is_err());
/// ```
#[derive(Clone)]
pub struct Sessions {
    table: Arc<Mutex<Table>>,
    gauge: Gauge,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("counts", &self.counts())
            .finish()
    }
}

impl Sessions {
    /// No sessions; `gauge` follows the number of active sessions.
    pub fn new(gauge: Gauge) -> Sessions {
        Sessions {
            table: Arc::default(),
            gauge,
        }
    }

    /// Opens the (empty) session of a new match.
    pub fn register(&self, match_id: &str) {
        if let Ok(mut t) = self.table.lock() {
            t.sessions
                .entry(match_id.to_owned())
                .or_insert_with(|| Session {
                    players: HashSet::new(),
                    empty_since: Some(Instant::now()),
                });
        }
    }

    /// Adds `player` to the session; returns its player count.
    pub fn join(&self, match_id: &str, player: &str) -> Result<usize, UnknownMatch> {
        let mut t = self.table.lock().map_err(|_| UnknownMatch)?;
        let t = &mut *t;
        let session = t.sessions.get_mut(match_id).ok_or(UnknownMatch)?;
        let was_empty = session.players.is_empty();
        if session.players.insert(player.to_owned()) {
            t.players += 1;
            if was_empty {
                t.active += 1;
                session.empty_since = None;
            }
        }
        let n = session.players.len();
        self.gauge.set(t.active as i64);
        Ok(n)
    }

    /// Removes `player` from the session (no-op if absent); returns its player count.
    pub fn leave(&self, match_id: &str, player: &str) -> Result<usize, UnknownMatch> {
        let mut t = self.table.lock().map_err(|_| UnknownMatch)?;
        let t = &mut *t;
        let session = t.sessions.get_mut(match_id).ok_or(UnknownMatch)?;
        if session.players.remove(player) {
            t.players -= 1;
            if session.players.is_empty() {
                t.active -= 1;
                session.empty_since = Some(Instant::now());
            }
        }
        let n = session.players.len();
        self.gauge.set(t.active as i64);
        Ok(n)
    }

    /// `(active sessions, active players)`.
    pub fn counts(&self) -> (usize, usize) {
        self.table
            .lock()
            .map(|t| (t.active, t.players))
            .unwrap_or((0, 0))
    }

    /// Forgets sessions that have been empty for longer than `idle`.
    ///
    /// ```
    /// let sessions = game_server::sessions::Sessions::new(Default::default());
    /// sessions.register("m-1");
    /// sessions.sweep(std::time::Duration::ZERO);
    /// assert!(sessions.join("m-1", "p1").is_err());
    /// ```
    pub fn sweep(&self, idle: Duration) {
        if let Ok(mut t) = self.table.lock() {
            t.sessions
                .retain(|_, s| s.empty_since.is_none_or(|since| since.elapsed() < idle));
        }
    }
}
