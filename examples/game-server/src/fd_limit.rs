//! The open-file limit (`RLIMIT_NOFILE`), raised at start-up.
//!
//! Every WebSocket lobby session holds a socket, and the lobby is meant to carry 100,000
//! idle sessions on one machine, far above the usual soft limit of 1,024. At start-up the
//! `game-server` binary calls [`raise_nofile_limit`]:
//!
//! - the soft limit is raised to the hard limit;
//! - as root (effective uid 0) the hard limit is raised first, to `/proc/sys/fs/nr_open`
//!   (the kernel's ceiling) but not above [`HARD_LIMIT_CAP`] (1,048,576, the kernel's
//!   default ceiling); when the kernel refuses (a container without `CAP_SYS_RESOURCE`),
//!   the soft limit is raised to the hard limit it has;
//! - a limit is never lowered.
//!
//! The binary logs the limits it got (and warns when they cannot hold `lobby.maxSessions`).
//!
//! ```
//! let limit = game_server::fd_limit::raise_nofile_limit().unwrap();
//! assert!(limit.soft >= limit.soft_before);
//! assert!(limit.hard >= limit.hard_before);
//! ```

use std::io;

/// The highest hard limit asked for as root, even when `/proc/sys/fs/nr_open` allows more
/// (some distributions set it near 2^30): 1,048,576 descriptors.
pub const HARD_LIMIT_CAP: u64 = 1_048_576;

const NR_OPEN: &str = "/proc/sys/fs/nr_open";

/// The limits before and after [`raise_nofile_limit`].
///
/// ```
/// let l = game_server::fd_limit::NofileLimit {
///     soft: 4096, hard: 4096, soft_before: 1024, hard_before: 4096, hard_refused: None,
/// };
/// assert!(l.raised());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    /// The soft limit now (what `open`, `accept` and `socket` are held to).
    pub soft: u64,
    /// The hard limit now.
    pub hard: u64,
    /// The soft limit found at start.
    pub soft_before: u64,
    /// The hard limit found at start.
    pub hard_before: u64,
    /// The hard limit asked for as root and refused by the kernel (no `CAP_SYS_RESOURCE`).
    pub hard_refused: Option<u64>,
}

impl NofileLimit {
    /// Whether either limit went up.
    ///
    /// ```
    /// let l = game_server::fd_limit::NofileLimit {
    ///     soft: 1024, hard: 4096, soft_before: 1024, hard_before: 4096, hard_refused: None,
    /// };
    /// assert!(!l.raised());
    /// ```
    pub fn raised(&self) -> bool {
        self.soft > self.soft_before || self.hard > self.hard_before
    }
}

/// `getrlimit` or `setrlimit` failed.
///
/// ```
/// let e = game_server::fd_limit::FdLimitError::Get(std::io::Error::other("x"));
/// assert!(e.to_string().contains("RLIMIT_NOFILE"));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum FdLimitError {
    /// The current limits could not be read.
    #[error("cannot read RLIMIT_NOFILE: {0}")]
    Get(io::Error),
    /// The soft limit could not be raised to the hard limit.
    #[error("cannot set RLIMIT_NOFILE to soft {soft}, hard {hard}: {source}")]
    Set {
        /// The soft limit asked for.
        soft: u64,
        /// The hard limit asked for.
        hard: u64,
        /// Why.
        source: io::Error,
    },
}

/// The current `(soft, hard)` limits.
///
/// ```
/// let (soft, hard) = game_server::fd_limit::nofile_limit().unwrap();
/// assert!(soft <= hard);
/// ```
pub fn nofile_limit() -> Result<(u64, u64), FdLimitError> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the rlimit we own.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if rc != 0 {
        return Err(FdLimitError::Get(io::Error::last_os_error()));
    }
    Ok((limit.rlim_cur, limit.rlim_max))
}

fn set_nofile_limit(soft: u64, hard: u64) -> Result<(), FdLimitError> {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads the rlimit we own.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    if rc != 0 {
        return Err(FdLimitError::Set {
            soft,
            hard,
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// The hard limit root may ask for: `/proc/sys/fs/nr_open`, at most [`HARD_LIMIT_CAP`]
/// (also when the file cannot be read).
fn root_ceiling() -> u64 {
    std::fs::read_to_string(NR_OPEN)
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .map_or(HARD_LIMIT_CAP, |nr_open| nr_open.min(HARD_LIMIT_CAP))
}

/// Raises the soft open-file limit to the hard limit, and as root the hard limit (see the
/// module's documentation); returns the limits before and after.
///
/// ```
/// let limit = game_server::fd_limit::raise_nofile_limit().unwrap();
/// assert_eq!(game_server::fd_limit::nofile_limit().unwrap(), (limit.soft, limit.hard));
/// ```
pub fn raise_nofile_limit() -> Result<NofileLimit, FdLimitError> {
    let (soft_before, hard_before) = nofile_limit()?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let mut raised_hard = false;
    let mut hard_refused = None;
    if root {
        let ceiling = root_ceiling();
        if ceiling > hard_before && hard_before != libc::RLIM_INFINITY {
            // Refused (no CAP_SYS_RESOURCE): the soft limit still goes up to the old hard one.
            raised_hard = set_nofile_limit(ceiling, ceiling).is_ok();
            if !raised_hard {
                hard_refused = Some(ceiling);
            }
        }
    }
    if !raised_hard && soft_before < hard_before {
        // An unlimited hard limit (not on Linux, where nr_open bounds it) is not a soft
        // limit the kernel takes: ask for the ceiling instead.
        let soft = if hard_before == libc::RLIM_INFINITY {
            root_ceiling()
        } else {
            hard_before
        };
        if soft > soft_before {
            set_nofile_limit(soft, hard_before)?;
        }
    }
    let (soft, hard) = nofile_limit()?;
    Ok(NofileLimit {
        soft,
        hard,
        soft_before,
        hard_before,
        hard_refused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_reaches_hard_and_nothing_is_lowered() {
        let (soft0, hard0) = nofile_limit().unwrap();
        let limit = raise_nofile_limit().unwrap();
        assert_eq!((limit.soft_before, limit.hard_before), (soft0, hard0));
        assert!(limit.hard >= hard0);
        assert_eq!(limit.soft, limit.hard, "{limit:?}");
        // A second call finds nothing left to raise.
        let again = raise_nofile_limit().unwrap();
        assert_eq!((again.soft, again.hard), (limit.soft, limit.hard));
    }

    #[test]
    fn root_ceiling_is_capped() {
        assert!(root_ceiling() <= HARD_LIMIT_CAP);
        assert!(root_ceiling() > 0);
    }
}
