//! The run's stop signals (SIGINT, SIGTERM) as a flag that blocking code can read.
//!
//! Tokio's signal streams learn of a signal only when the runtime's driver runs, and the
//! driver does not run while the engine blocks in a setup service's readiness wait
//! (`readyTimeout` may be minutes). The flag here is set inside the signal handler itself,
//! so such a wait stops within one poll and the run ends as interrupted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use signal_hook::SigId;

#[derive(Debug)]
struct Handlers {
    /// The signal seen first (0 while none).
    seen: Arc<AtomicUsize>,
    /// Our registrations, removed when the last clone is dropped.
    ids: Vec<SigId>,
}

impl Drop for Handlers {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// Whether SIGINT or SIGTERM has come since [`Interrupt::install`]. Clones share the flag;
/// the default one never fires (for code run outside an experiment).
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    handlers: Option<Arc<Handlers>>,
}

impl Interrupt {
    /// Starts watching SIGINT and SIGTERM. Handlers installed by others (tokio's signal
    /// streams) keep running; only the first signal is kept.
    pub fn install() -> std::io::Result<Interrupt> {
        let seen = Arc::new(AtomicUsize::new(0));
        let mut handlers = Handlers {
            seen: seen.clone(),
            ids: Vec::new(),
        };
        for signal in [libc::SIGINT, libc::SIGTERM] {
            let flag = seen.clone();
            // SAFETY: the action only does a compare-and-swap on an atomic, which is
            // async-signal-safe; it allocates nothing and takes no lock.
            let id = unsafe {
                signal_hook::low_level::register(signal, move || {
                    let _ = flag.compare_exchange(
                        0,
                        signal as usize,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    );
                })
            }?;
            handlers.ids.push(id);
        }
        Ok(Interrupt {
            handlers: Some(Arc::new(handlers)),
        })
    }

    /// The first signal seen, if any.
    pub fn signal(&self) -> Option<libc::c_int> {
        let seen = self.handlers.as_ref()?.seen.load(Ordering::SeqCst);
        (seen != 0).then_some(seen as libc::c_int)
    }

    /// Whether a stop signal has come.
    pub fn is_set(&self) -> bool {
        self.signal().is_some()
    }

    /// Waits until a stop signal has come (checking every 10 ms); the run's end reason.
    /// Never ends for the default flag.
    pub async fn raised(&self) -> String {
        loop {
            if let Some(why) = self.reason() {
                return why;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// The run's end reason for the signal seen: `interrupted (SIGINT)` or
    /// `terminated (SIGTERM)`.
    pub fn reason(&self) -> Option<String> {
        self.signal().map(reason)
    }
}

/// The run's end reason for a stop signal, as the report says it.
pub fn reason(signal: libc::c_int) -> String {
    match signal {
        libc::SIGINT => "interrupted (SIGINT)".into(),
        libc::SIGTERM => "terminated (SIGTERM)".into(),
        other => format!("stopped by signal {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raised_signal_sets_the_flag_and_the_first_one_wins() {
        let interrupt = Interrupt::install().expect("handlers");
        assert_eq!(interrupt.signal(), None);
        // SAFETY: raise sends a signal to this thread; our handler replaces the default
        // action, so the test process lives on.
        assert_eq!(unsafe { libc::raise(libc::SIGTERM) }, 0);
        assert_eq!(interrupt.signal(), Some(libc::SIGTERM));
        assert_eq!(unsafe { libc::raise(libc::SIGINT) }, 0);
        assert_eq!(interrupt.reason().as_deref(), Some("terminated (SIGTERM)"));
        assert!(interrupt.clone().is_set());
        assert!(!Interrupt::default().is_set());
    }
}

/// The examples that were this module's documentation (tested here: the module is
/// internal to the crate).
#[cfg(test)]
mod examples {
    #[test]
    fn interrupt_example_0() {
        use crate::interrupt::Interrupt;

        let never = Interrupt::default();
        assert_eq!(never.reason(), None);
        let run = Interrupt::install().expect("signal handlers");
        assert!(!run.is_set());
    }

    #[test]
    fn reason_example_1() {
        assert_eq!(
            crate::interrupt::reason(libc::SIGTERM),
            "terminated (SIGTERM)"
        );
    }
}
