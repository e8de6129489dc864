//! The threads that relay connections. Each runs a single-threaded tokio runtime of its
//! own and owns the connections handed to it, as haproxy's threads own theirs: a
//! connection's reads, writes and wake-ups all happen on one thread, and no thread wakes
//! another to share out work. On a multi-thread runtime (tokio's work stealing) every
//! batch of ready connections woke a second thread to steal part of it; with many
//! connections in small request/response exchanges (a game's database pool) those
//! wake-ups, not the relaying, were most of the proxy's CPU time.
//!
//! Connections are handed out in turn as they are accepted, so long-lived pools spread
//! evenly.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

/// A fixed set of relay threads, each with its own runtime; stopped by
/// [`RelayThreads::shutdown`] (or when dropped).
#[derive(Debug)]
pub(crate) struct RelayThreads {
    handles: Vec<Handle>,
    next: AtomicUsize,
    stop: CancellationToken,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl RelayThreads {
    /// Starts `count` (at least one) relay threads.
    pub(crate) fn start(count: usize) -> std::io::Result<RelayThreads> {
        let stop = CancellationToken::new();
        let mut handles = Vec::new();
        let mut threads = Vec::new();
        for i in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(runtime.handle().clone());
            let token = stop.clone();
            let thread = std::thread::Builder::new()
                .name(format!("chaos-proxy-relay-{i}"))
                .spawn(move || {
                    runtime.block_on(token.cancelled());
                    runtime.shutdown_timeout(Duration::from_secs(1));
                });
            match thread {
                Ok(t) => threads.push(t),
                Err(e) => {
                    stop.cancel();
                    for t in threads {
                        let _ = t.join();
                    }
                    return Err(e);
                }
            }
        }
        Ok(RelayThreads {
            handles,
            next: AtomicUsize::new(0),
            stop,
            threads: Mutex::new(threads),
        })
    }

    /// How many relay threads there are.
    #[cfg(test)]
    pub(crate) fn count(&self) -> usize {
        self.handles.len()
    }

    /// Runs `task` on the next relay thread in turn.
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[i].spawn(task);
    }

    /// Stops every thread (dropping the connections they relay) and waits for them.
    pub(crate) fn shutdown(&self) {
        self.stop.cancel();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for thread in threads {
            // Dropped from one of its own tasks, a thread must not wait for itself.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for RelayThreads {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_go_to_every_thread_in_turn_and_stop_with_them() {
        let threads = RelayThreads::start(3).unwrap();
        assert_eq!(threads.count(), 3);
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..6 {
            let tx = tx.clone();
            threads.spawn(async move {
                let name = std::thread::current().name().map(str::to_owned);
                tx.send(name).unwrap();
            });
        }
        let mut names: Vec<_> = (0..6).map(|_| rx.recv().unwrap().unwrap()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "chaos-proxy-relay-0",
                "chaos-proxy-relay-0",
                "chaos-proxy-relay-1",
                "chaos-proxy-relay-1",
                "chaos-proxy-relay-2",
                "chaos-proxy-relay-2"
            ]
        );
        // A task still pending is dropped at shutdown, which returns.
        let (held_tx, held_rx) = tokio::sync::oneshot::channel::<()>();
        threads.spawn(async move {
            let _ = held_rx.await;
        });
        threads.shutdown();
        assert!(held_tx.is_closed());
    }
}
