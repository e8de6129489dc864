//! Player saves: writes go to PostgreSQL through the save-writes policy and fall back to the
//! write-behind queue; reads go through the save-reads policy and fall back to the cache.

use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

use crate::cache::{CachedSave, SaveCache};
use crate::db::{guard, Call, Database, Guarded};
use crate::metrics::{Metrics, SaveResult};
use crate::write_behind::{EnqueueError, QueuedSave, SaveWrite, WriteBehind};

/// Where a written save went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Written to the database, with this version.
    Database(i64),
    /// Spooled and queued; flushed when the database is back.
    Queued,
}

/// Where a read save came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The database answered.
    Database,
    /// The database did not (or is behind queued saves): the last known save.
    Cache,
}

/// A save as read.
#[derive(Debug, Clone)]
pub struct ReadSave {
    /// JSON text of the save.
    pub data: Arc<str>,
    /// Its version.
    pub version: i64,
    /// Where it came from.
    pub source: Source,
}

/// A save could not be written or read.
///
/// ```
/// let e = game_server::saves::SaveError::NotFound;
/// assert_eq!(e.to_string(), "no save for this player");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The write-behind queue is full (the database has been unavailable for a while).
    #[error("save queue is full")]
    QueueFull,
    /// The spool could not be written: the save was not acknowledged.
    #[error("save could not be spooled: {0}")]
    Spool(std::io::Error),
    /// The player never saved.
    #[error("no save for this player")]
    NotFound,
    /// The database is unavailable: for a read, nothing is cached for this player; for a
    /// write, the write-behind fallback is off.
    #[error("save unavailable: {reason}")]
    Unavailable {
        /// Why (the policy's error).
        reason: String,
        /// When to come back, when known.
        retry_after: Option<Duration>,
    },
}

/// The saves service.
#[derive(Clone)]
pub struct Saves {
    writer: Guarded<SaveWrite, i64>,
    reader: Guarded<String, Option<(String, i64)>>,
    write_behind: WriteBehind,
    /// Queue saves the database does not take (the write-behind fallback).
    fallback: bool,
    cache: SaveCache,
    metrics: Metrics,
}

impl std::fmt::Debug for Saves {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Saves")
            .field("write_behind", &self.write_behind)
            .finish_non_exhaustive()
    }
}

/// The save-writes call (also used by the write-behind flusher).
pub fn writer(policy: &resilience::ResiliencePolicy, db: &Database) -> Guarded<SaveWrite, i64> {
    guard(
        policy,
        db,
        |db: Database, save: Arc<SaveWrite>| async move {
            db.write_save(&save.player_id, &save.data).await
        },
    )
}

impl Saves {
    /// Puts the saves service together.
    pub fn new(
        db: &Database,
        write_policy: &resilience::ResiliencePolicy,
        read_policy: &resilience::ResiliencePolicy,
        write_behind: WriteBehind,
        fallback: bool,
        cache: SaveCache,
        metrics: Metrics,
    ) -> Saves {
        let reader = guard(
            read_policy,
            db,
            |db: Database, player: Arc<String>| async move { db.read_save(&player).await },
        );
        Saves {
            writer: writer(write_policy, db),
            reader,
            write_behind,
            fallback,
            cache,
            metrics,
        }
    }

    /// Writes a save: to the database if it takes it within the policy, else to the
    /// write-behind queue (spooled before this returns).
    pub async fn write(&self, player: &str, data: Arc<str>) -> Result<Stored, SaveError> {
        let save = SaveWrite {
            player_id: player.to_owned(),
            data,
        };
        // Behind queued saves of the same player: queue too, so the last write wins.
        if !self.write_behind.has_pending(player) {
            match self.writer.clone().oneshot(Call::new(save.clone())).await {
                Ok(version) => {
                    self.cache.put(
                        player,
                        CachedSave {
                            data: save.data,
                            version,
                            queued: false,
                        },
                    );
                    self.metrics.count_save(SaveResult::Stored);
                    return Ok(Stored::Database(version));
                }
                Err(e) if !self.fallback => {
                    self.metrics.count_save(SaveResult::Failed);
                    return Err(SaveError::Unavailable {
                        reason: e.to_string(),
                        retry_after: e.retry_after(),
                    });
                }
                Err(e) => tracing::debug!(player, error = %e, "save write falls back to the queue"),
            }
        }
        let version = self.cache.get(player).map_or(1, |s| s.version + 1);
        match self
            .write_behind
            .enqueue(QueuedSave { save, version })
            .await
        {
            Ok(()) => {
                self.metrics.count_save(SaveResult::Queued);
                Ok(Stored::Queued)
            }
            Err(EnqueueError::Full) => {
                self.metrics.count_save(SaveResult::Failed);
                Err(SaveError::QueueFull)
            }
            Err(EnqueueError::Spool(e)) => {
                self.metrics.count_save(SaveResult::Failed);
                Err(SaveError::Spool(e))
            }
        }
    }

    /// Reads a save: from the database through the policy, else the last known save.
    pub async fn read(&self, player: &str) -> Result<ReadSave, SaveError> {
        let from_cache = |s: CachedSave| ReadSave {
            data: s.data,
            version: s.version,
            source: Source::Cache,
        };
        if self.write_behind.has_pending(player) {
            // The database is behind the queue: the cache holds the acknowledged save.
            if let Some(cached) = self.cache.get(player) {
                return Ok(from_cache(cached));
            }
        }
        match self
            .reader
            .clone()
            .oneshot(Call::new(player.to_owned()))
            .await
        {
            Ok(Some((data, version))) => {
                let data: Arc<str> = data.into();
                self.cache.put_from_database(player, data.clone(), version);
                Ok(ReadSave {
                    data,
                    version,
                    source: Source::Database,
                })
            }
            Ok(None) => Err(SaveError::NotFound),
            Err(e) => match self.cache.get(player) {
                Some(cached) => Ok(from_cache(cached)),
                None => Err(SaveError::Unavailable {
                    reason: e.to_string(),
                    retry_after: e.retry_after(),
                }),
            },
        }
    }

    /// The write-behind queue.
    pub fn write_behind(&self) -> &WriteBehind {
        &self.write_behind
    }

    /// The save-writes call (for the flusher).
    pub fn writer_service(&self) -> Guarded<SaveWrite, i64> {
        self.writer.clone()
    }
}
