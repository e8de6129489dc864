//! The last known save of each player (read from or written to the database, or queued),
//! for reads while the database is unavailable. Bounded: when full, an entry that is not
//! waiting in the write-behind queue is evicted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One player's last known save.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedSave {
    /// The save as JSON text (an object).
    pub data: Arc<str>,
    /// Its version (for a queued save: the version it will get when flushed, at least).
    pub version: i64,
    /// True while the save waits in the write-behind queue (never evicted then).
    pub queued: bool,
}

/// Last known saves by player id.
///
/// ```
/// use game_server::cache::{SaveCache, CachedSave};
/// let cache = SaveCache::new(2);
/// cache.put("p1", CachedSave { data: "{}".into(), version: 1, queued: false });
/// assert_eq!(cache.get("p1").unwrap().version, 1);
/// assert!(cache.get("p2").is_none());
/// ```
#[derive(Debug, Clone)]
pub struct SaveCache {
    entries: Arc<Mutex<HashMap<String, CachedSave>>>,
    max_entries: usize,
}

impl SaveCache {
    /// An empty cache holding at most `max_entries` players.
    ///
    /// ```
    /// let _ = game_server::cache::SaveCache::new(1000);
    /// ```
    pub fn new(max_entries: usize) -> SaveCache {
        SaveCache {
            entries: Arc::default(),
            max_entries: max_entries.max(1),
        }
    }

    /// The player's last known save.
    ///
    /// ```
    /// let cache = game_server::cache::SaveCache::new(10);
    /// assert!(cache.get("p9").is_none());
    /// ```
    pub fn get(&self, player: &str) -> Option<CachedSave> {
        self.entries.lock().ok()?.get(player).cloned()
    }

    /// Records `save` as the player's last known save. A database read never replaces a
    /// queued save (the database is behind it).
    ///
    /// ```
    /// use game_server::cache::{SaveCache, CachedSave};
    /// let cache = SaveCache::new(1);
    /// cache.put("p1", CachedSave { data: "{}".into(), version: 1, queued: true });
    /// cache.put("p2", CachedSave { data: "{}".into(), version: 1, queued: false });
    /// assert!(cache.get("p1").is_some()); // queued entries are never evicted
    /// ```
    pub fn put(&self, player: &str, save: CachedSave) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if !entries.contains_key(player) && entries.len() >= self.max_entries {
            let victim = entries
                .iter()
                .find(|(_, s)| !s.queued)
                .map(|(k, _)| k.clone());
            match victim {
                Some(victim) => {
                    entries.remove(&victim);
                }
                None if !save.queued => return, // everything cached is queued: keep it
                None => {}
            }
        }
        entries.insert(player.to_owned(), save);
    }

    /// Records a save read from the database, unless a newer queued save is cached.
    ///
    /// ```
    /// use game_server::cache::{SaveCache, CachedSave};
    /// let cache = SaveCache::new(10);
    /// cache.put("p1", CachedSave { data: "{\"a\":2}".into(), version: 2, queued: true });
    /// cache.put_from_database("p1", "{\"a\":1}".into(), 1);
    /// assert_eq!(&*cache.get("p1").unwrap().data, "{\"a\":2}");
    /// ```
    pub fn put_from_database(&self, player: &str, data: Arc<str>, version: i64) {
        if self.get(player).is_some_and(|s| s.queued) {
            return;
        }
        self.put(
            player,
            CachedSave {
                data,
                version,
                queued: false,
            },
        );
    }

    /// Marks the player's cached save as flushed with `version`, if it is still the save
    /// with `data` (a later queued save stays queued).
    ///
    /// ```
    /// use game_server::cache::{SaveCache, CachedSave};
    /// let cache = SaveCache::new(10);
    /// cache.put("p1", CachedSave { data: "{}".into(), version: 1, queued: true });
    /// cache.mark_flushed("p1", "{}", 4);
    /// let s = cache.get("p1").unwrap();
    /// assert!(!s.queued);
    /// assert_eq!(s.version, 4);
    /// ```
    pub fn mark_flushed(&self, player: &str, data: &str, version: i64) {
        if let Ok(mut entries) = self.entries.lock() {
            if let Some(entry) = entries.get_mut(player) {
                if &*entry.data == data {
                    entry.queued = false;
                    entry.version = version;
                }
            }
        }
    }

    /// Players cached.
    ///
    /// ```
    /// assert_eq!(game_server::cache::SaveCache::new(3).len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    /// True when nothing is cached.
    ///
    /// ```
    /// assert!(game_server::cache::SaveCache::new(3).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
