//! Never two GameDay runs at once: an exclusive `flock` on `gameday.lock` in the state
//! directory (where the run journals live, so every GameDay sharing it waits its turn, and
//! none reverts another's faults with `--recover`), held for the whole run and released by
//! the kernel when the process ends, however it ends (no stale lock after a crash). The
//! holder writes its pid and start into the file so a skipped run can say who holds it.

use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The lock, held or not.
#[derive(Debug)]
pub enum Locked {
    /// This process holds it until dropped.
    Held(std::fs::File),
    /// Another process holds it: who.
    Busy(String),
}

/// Takes the lock of a state directory.
pub struct GameDayLock;

/// The lock file cannot be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the GameDay lock {path}: {source}")]
pub struct LockError {
    /// The lock file.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

impl GameDayLock {
    /// Tries the lock of the state directory `state_dir` without waiting.
    ///
    /// ```
    /// # use chaos_runner::gameday::lock::*;
    /// let dir = std::env::temp_dir().join(format!("lock-doc-{}", std::process::id()));
    /// let first = GameDayLock::take(&dir).unwrap();
    /// assert!(matches!(first, Locked::Held(_)));
    /// assert!(matches!(GameDayLock::take(&dir).unwrap(), Locked::Busy(_)));
    /// drop(first);
    /// assert!(matches!(GameDayLock::take(&dir).unwrap(), Locked::Held(_)));
    /// # std::fs::remove_dir_all(dir).unwrap();
    /// ```
    pub fn take(state_dir: &Path) -> Result<Locked, LockError> {
        let path = state_dir.join("gameday.lock");
        let err = |source| LockError {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(err)?;
        // SAFETY: flock on a descriptor this function owns; no memory is passed.
        let taken = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if !taken {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Ok(Locked::Busy(if holder.is_empty() {
                format!("lock {}", path.display())
            } else {
                holder.to_owned()
            }));
        }
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(
            file,
            "pid {} since {}",
            std::process::id(),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        let _ = file.flush();
        Ok(Locked::Held(file))
    }
}
