//! The write-behind queue: saves acknowledged while the database is unavailable.
//!
//! A save is appended to a local spool file and fsync'd *before* it is acknowledged, then
//! queued in memory. A background task writes the queue to PostgreSQL in order, through the
//! save-writes policy, when the database is back; after each round the written saves leave
//! the spool (the file is truncated when the queue is empty, otherwise rewritten atomically
//! with what is left). On start-up the spool is replayed, so an acknowledged save survives a
//! crash or a shutdown that could not flush.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::cache::{CachedSave, SaveCache};
use crate::db::{Call, Guarded};

/// File name of the spool inside the spool directory.
pub const SPOOL_FILE: &str = "saves.spool";

/// One save to write: the player and the save's JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveWrite {
    /// Player id.
    pub player_id: String,
    /// The save, JSON text of an object.
    pub data: Arc<str>,
}

/// A save waiting in the queue, as spooled (one JSON line each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedSave {
    /// What to write.
    pub save: SaveWrite,
    /// The version readers see until it is flushed (the database assigns the final one).
    pub version: i64,
}

impl QueuedSave {
    /// The spool line (without the newline).
    ///
    /// ```
    /// use game_server::write_behind::{QueuedSave, SaveWrite};
    /// let q = QueuedSave { save: SaveWrite { player_id: "p1".into(), data: "{\"a\":1}".into() }, version: 2 };
    /// assert_eq!(QueuedSave::from_line(&q.to_line()).unwrap(), q);
    /// ```
    pub fn to_line(&self) -> String {
        let player = serde_json::Value::String(self.save.player_id.clone());
        format!(
            "{{\"player_id\":{player},\"version\":{},\"data\":{}}}",
            self.version, self.save.data
        )
    }

    /// Parses a spool line.
    ///
    /// ```
    /// assert!(game_server::write_behind::QueuedSave::from_line("{\"player_id\":\"p1\"").is_none());
    /// ```
    pub fn from_line(line: &str) -> Option<QueuedSave> {
        let value: serde_json::Value = serde_json::from_str(line).ok()?;
        let player_id = value.get("player_id")?.as_str()?.to_owned();
        let version = value.get("version")?.as_i64()?;
        let data = value.get("data")?;
        if !data.is_object() {
            return None;
        }
        Some(QueuedSave {
            save: SaveWrite {
                player_id,
                data: data.to_string().into(),
            },
            version,
        })
    }
}

/// Why a save could not be queued.
///
/// ```
/// let e = game_server::write_behind::EnqueueError::Full;
/// assert!(e.to_string().contains("full"));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// The queue holds `max_queued` saves.
    #[error("write-behind queue is full")]
    Full,
    /// The spool file could not be written or synced: the save is not acknowledged.
    #[error("cannot write the spool: {0}")]
    Spool(#[from] std::io::Error),
}

/// Opening the spool failed.
#[derive(Debug, thiserror::Error)]
#[error("spool {path}: {source}")]
pub struct SpoolError {
    /// The spool file or directory.
    pub path: String,
    /// Why.
    pub source: std::io::Error,
}

struct Spool {
    file: File,
    len: u64,
}

#[derive(Default)]
struct Queue {
    entries: VecDeque<QueuedSave>,
    pending: HashMap<String, usize>,
}

struct Inner {
    // Lock order: spool, then queue. The queue lock is never held across I/O.
    spool: Mutex<Spool>,
    queue: Mutex<Queue>,
    path: PathBuf,
    dir: PathBuf,
    max_queued: usize,
    cache: SaveCache,
    depth: prometheus_client::metrics::gauge::Gauge,
    work: Notify,
    spool_ok: std::sync::atomic::AtomicBool,
}

/// The write-behind queue with its spool. Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use game_server::write_behind::{WriteBehind, QueuedSave, SaveWrite};
/// let dir = std::env::temp_dir().join(format!("wb-doc-{}", std::process::id()));
/// let cache = game_server::cache::SaveCache::new(10);
/// let wb = WriteBehind::open(&dir, 10, cache.clone(), Default::default()).unwrap();
/// let save = QueuedSave { save: SaveWrite { player_id: "p1".into(), data: "{}".into() }, version: 1 };
/// wb.enqueue(save.clone()).await.unwrap();
/// assert!(wb.has_pending("p1"));
/// // A restart replays the spool.
/// let again = WriteBehind::open(&dir, 10, cache, Default::default()).unwrap();
/// assert_eq!(again.len(), 1);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # }
/// ```
#[derive(Clone)]
pub struct WriteBehind {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WriteBehind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBehind")
            .field("path", &self.inner.path)
            .field("queued", &self.len())
            .finish()
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl WriteBehind {
    /// Opens (creating it if needed) the spool in `dir` and replays what it holds into the
    /// queue and `cache`. `depth` is set to the queue length from then on.
    pub fn open(
        dir: &Path,
        max_queued: usize,
        cache: SaveCache,
        depth: prometheus_client::metrics::gauge::Gauge,
    ) -> Result<WriteBehind, SpoolError> {
        let err = |path: &Path| {
            let path = path.display().to_string();
            move |source| SpoolError { path, source }
        };
        std::fs::create_dir_all(dir).map_err(err(dir))?;
        let path = dir.join(SPOOL_FILE);
        let mut queue = Queue::default();
        let mut skipped = 0usize;
        if path.exists() {
            let reader = BufReader::new(File::open(&path).map_err(err(&path))?);
            for line in reader.lines() {
                let line = line.map_err(err(&path))?;
                if line.trim().is_empty() {
                    continue;
                }
                match QueuedSave::from_line(&line) {
                    Some(saved) => {
                        *queue
                            .pending
                            .entry(saved.save.player_id.clone())
                            .or_default() += 1;
                        queue.entries.push_back(saved);
                    }
                    // Only a line cut by a crash before its fsync (never acknowledged).
                    None => skipped += 1,
                }
            }
        }
        for saved in &queue.entries {
            cache.put(
                &saved.save.player_id,
                CachedSave {
                    data: saved.save.data.clone(),
                    version: saved.version,
                    queued: true,
                },
            );
        }
        if !queue.entries.is_empty() || skipped > 0 {
            tracing::info!(
                spool = %path.display(),
                replayed = queue.entries.len(),
                skipped,
                "write-behind spool replayed"
            );
        }
        let wb = WriteBehind {
            inner: Arc::new(Inner {
                spool: Mutex::new(Spool {
                    file: OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .map_err(err(&path))?,
                    len: 0,
                }),
                queue: Mutex::new(queue),
                path: path.clone(),
                dir: dir.to_owned(),
                max_queued,
                cache,
                depth,
                work: Notify::new(),
                spool_ok: std::sync::atomic::AtomicBool::new(true),
            }),
        };
        // Rewrite the spool with exactly what was replayed (drops a cut last line).
        {
            let mut spool = wb.inner.spool.lock().map_err(|_| SpoolError {
                path: path.display().to_string(),
                source: std::io::Error::other("spool lock poisoned"),
            })?;
            let remaining: Vec<QueuedSave> = wb
                .inner
                .queue
                .lock()
                .map(|q| q.entries.iter().cloned().collect())
                .unwrap_or_default();
            wb.rewrite(&mut spool, &remaining).map_err(err(&path))?;
        }
        wb.publish_depth();
        if !wb.is_empty() {
            wb.inner.work.notify_one();
        }
        Ok(wb)
    }

    /// Saves waiting.
    pub fn len(&self) -> usize {
        self.inner
            .queue
            .lock()
            .map(|q| q.entries.len())
            .unwrap_or(0)
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when the queue can take another save and the spool was writable last time.
    pub fn is_armed(&self) -> bool {
        self.len() < self.inner.max_queued
            && self
                .inner
                .spool_ok
                .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// True when saves of `player` wait in the queue (a new save of theirs must queue
    /// behind them, so that the last write wins).
    pub fn has_pending(&self, player: &str) -> bool {
        self.inner
            .queue
            .lock()
            .map(|q| q.pending.contains_key(player))
            .unwrap_or(false)
    }

    fn publish_depth(&self) {
        self.inner.depth.set(self.len() as i64);
    }

    /// Spools (fsync'd) and queues `saved`, and records it in the cache; only then may the
    /// caller acknowledge it.
    pub async fn enqueue(&self, saved: QueuedSave) -> Result<(), EnqueueError> {
        let this = self.clone();
        let result = tokio::task::spawn_blocking(move || this.enqueue_blocking(saved))
            .await
            .map_err(|e| EnqueueError::Spool(std::io::Error::other(e.to_string())))?;
        self.publish_depth();
        if result.is_ok() {
            self.inner.work.notify_one();
        }
        result
    }

    fn enqueue_blocking(&self, saved: QueuedSave) -> Result<(), EnqueueError> {
        let mut spool = self
            .inner
            .spool
            .lock()
            .map_err(|_| std::io::Error::other("spool lock poisoned"))?;
        if self.len() >= self.inner.max_queued {
            return Err(EnqueueError::Full);
        }
        let mut line = saved.to_line();
        line.push('\n');
        let written = spool
            .file
            .write_all(line.as_bytes())
            .and_then(|()| spool.file.sync_data());
        if let Err(e) = written {
            // Cut what may have been written so the next line starts clean.
            let len = spool.len;
            let _ = spool.file.set_len(len);
            self.inner
                .spool_ok
                .store(false, std::sync::atomic::Ordering::Relaxed);
            tracing::error!(spool = %self.inner.path.display(), error = %e, "spool write failed");
            return Err(EnqueueError::Spool(e));
        }
        self.inner
            .spool_ok
            .store(true, std::sync::atomic::Ordering::Relaxed);
        spool.len += line.len() as u64;
        if let Ok(mut queue) = self.inner.queue.lock() {
            *queue
                .pending
                .entry(saved.save.player_id.clone())
                .or_default() += 1;
            queue.entries.push_back(saved.clone());
        }
        self.inner.cache.put(
            &saved.save.player_id,
            CachedSave {
                data: saved.save.data,
                version: saved.version,
                queued: true,
            },
        );
        Ok(())
    }

    /// Replaces the spool's content by `remaining` (truncates when empty); keeps the
    /// append handle valid.
    fn rewrite(&self, spool: &mut Spool, remaining: &[QueuedSave]) -> std::io::Result<()> {
        if remaining.is_empty() {
            spool.file.set_len(0)?;
            spool.file.sync_all()?;
            spool.len = 0;
            return Ok(());
        }
        let tmp = self.inner.dir.join(format!("{SPOOL_FILE}.tmp"));
        let mut text = String::new();
        for saved in remaining {
            text.push_str(&saved.to_line());
            text.push('\n');
        }
        {
            let mut file = File::create(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, &self.inner.path)?;
        sync_dir(&self.inner.dir)?;
        spool.file = OpenOptions::new().append(true).open(&self.inner.path)?;
        spool.len = text.len() as u64;
        Ok(())
    }

    /// Removes the first `flushed.len()` saves (written to the database with the given
    /// versions) from the queue and the spool.
    async fn commit(&self, flushed: Vec<(SaveWrite, i64)>) -> std::io::Result<()> {
        let this = self.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut spool = this
                .inner
                .spool
                .lock()
                .map_err(|_| std::io::Error::other("spool lock poisoned"))?;
            let remaining: Vec<QueuedSave> = {
                let mut queue = this
                    .inner
                    .queue
                    .lock()
                    .map_err(|_| std::io::Error::other("queue lock poisoned"))?;
                for (save, _) in &flushed {
                    queue.entries.pop_front();
                    if let Some(n) = queue.pending.get_mut(&save.player_id) {
                        *n -= 1;
                        if *n == 0 {
                            queue.pending.remove(&save.player_id);
                        }
                    }
                }
                queue.entries.iter().cloned().collect()
            };
            for (save, version) in &flushed {
                this.inner
                    .cache
                    .mark_flushed(&save.player_id, &save.data, *version);
            }
            this.rewrite(&mut spool, &remaining)
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
        self.publish_depth();
        result
    }

    /// Writes the first saves (up to `batch`) in order through `writer`. Returns how many
    /// were written, and whether a write failed (the database is still unavailable).
    pub async fn flush_round(
        &self,
        writer: &Guarded<SaveWrite, i64>,
        batch: usize,
    ) -> (usize, bool) {
        let front: Vec<QueuedSave> = match self.inner.queue.lock() {
            Ok(q) => q.entries.iter().take(batch).cloned().collect(),
            Err(_) => return (0, true),
        };
        let mut flushed = Vec::with_capacity(front.len());
        let mut failed = false;
        for saved in front {
            match writer.clone().oneshot(Call::new(saved.save.clone())).await {
                Ok(version) => flushed.push((saved.save, version)),
                Err(e) => {
                    tracing::debug!(error = %e, "write-behind flush paused");
                    failed = true;
                    break;
                }
            }
        }
        let written = flushed.len();
        if written > 0 {
            if let Err(e) = self.commit(flushed).await {
                // The saves are in the database; the spool still lists them, so a restart
                // would write them again (same data, last write still wins).
                tracing::error!(spool = %self.inner.path.display(), error = %e, "spool rewrite failed");
            }
            tracing::info!(written, left = self.len(), "write-behind flushed");
        }
        (written, failed)
    }

    /// The background flusher: waits for queued saves and writes them when the database
    /// takes them, pausing `retry_interval` after a failed round; ends on `cancel`.
    pub async fn run_flusher(
        self,
        writer: Guarded<SaveWrite, i64>,
        batch: usize,
        retry_interval: Duration,
        cancel: CancellationToken,
    ) {
        loop {
            if self.is_empty() {
                tokio::select! {
                    _ = self.inner.work.notified() => continue,
                    _ = cancel.cancelled() => return,
                }
            }
            let (_, failed) = tokio::select! {
                r = self.flush_round(&writer, batch) => r,
                _ = cancel.cancelled() => return,
            };
            if failed {
                tokio::select! {
                    _ = tokio::time::sleep(retry_interval) => {}
                    _ = cancel.cancelled() => return,
                }
            }
        }
    }

    /// Flushes until the queue is empty or `limit` has passed (at shutdown). Returns the
    /// number of saves left in the queue (and in the spool).
    pub async fn flush_for(
        &self,
        writer: &Guarded<SaveWrite, i64>,
        batch: usize,
        retry_interval: Duration,
        limit: Duration,
    ) -> usize {
        let until = tokio::time::Instant::now() + limit;
        while !self.is_empty() && tokio::time::Instant::now() < until {
            let round = tokio::time::timeout_at(until, self.flush_round(writer, batch)).await;
            match round {
                Ok((_, false)) => {}
                Ok((_, true)) => {
                    tokio::time::sleep_until(
                        until.min(tokio::time::Instant::now() + retry_interval),
                    )
                    .await
                }
                Err(_) => break,
            }
        }
        self.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        std::env::temp_dir().join(format!("game-wb-{tag}-{}-{nanos}", std::process::id()))
    }

    fn saved(player: &str, n: i64) -> QueuedSave {
        QueuedSave {
            save: SaveWrite {
                player_id: player.into(),
                data: format!("{{\"n\":{n}}}").into(),
            },
            version: n,
        }
    }

    #[tokio::test]
    async fn full_queue_refuses_and_cut_line_is_dropped_on_replay() {
        let d = dir("full");
        let cache = SaveCache::new(10);
        let wb = WriteBehind::open(&d, 2, cache.clone(), Default::default()).unwrap();
        wb.enqueue(saved("p1", 1)).await.unwrap();
        wb.enqueue(saved("p2", 1)).await.unwrap();
        assert!(matches!(
            wb.enqueue(saved("p3", 1)).await,
            Err(EnqueueError::Full)
        ));
        assert!(!wb.is_armed());
        drop(wb);
        // A crash in the middle of an (unacknowledged) append leaves a cut line.
        let mut f = OpenOptions::new()
            .append(true)
            .open(d.join(SPOOL_FILE))
            .unwrap();
        f.write_all(b"{\"player_id\":\"p4\",\"vers").unwrap();
        drop(f);
        let again = WriteBehind::open(&d, 10, SaveCache::new(10), Default::default()).unwrap();
        assert_eq!(again.len(), 2);
        again.enqueue(saved("p1", 2)).await.unwrap();
        let text = std::fs::read_to_string(d.join(SPOOL_FILE)).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(
            text.lines().all(|l| QueuedSave::from_line(l).is_some()),
            "{text}"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
