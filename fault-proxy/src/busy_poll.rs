//! Busy polling for a connection in conversation: for a short window after bytes moved in
//! either direction, the pass-through looks for the next bytes with non-blocking reads
//! between yields instead of going to sleep on the reactor, so a request/reply exchange
//! through the proxy pays no thread wake-up per hop.
//!
//! The reads go to the socket itself (`recv` with `MSG_DONTWAIT`), not through tokio's
//! cached readiness, which only the reactor updates; a reactor held by another worker
//! would otherwise hide the bytes until it wakes. Once the window has passed with nothing
//! to read, the pipe waits on the reactor as usual, so an idle connection costs nothing.
//! A bulk transfer (spliced in full chunks) neither spins nor counts as an exchange, so
//! neither direction polls while one streams: on a small machine the sender and the
//! receiver need those cores.
//! The window is set per registry ([`crate::ProxyRegistry::set_busy_poll`], the
//! `--busy-poll` flag of `chaos-runner proxy`; 0 turns it off); what it costs is CPU: a
//! connection keeps one worker busy for up to the window after each exchange.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::io::Interest;
use tokio::net::tcp::OwnedReadHalf;

/// The default window: a little over the round trip of a loopback exchange on a busy
/// machine, so a reply that comes back at once is caught without sleeping.
///
/// ```
/// use fault_proxy::busy_poll::DEFAULT_WINDOW;
/// assert_eq!(DEFAULT_WINDOW, std::time::Duration::from_micros(200));
/// ```
pub const DEFAULT_WINDOW: Duration = Duration::from_micros(200);

/// When a connection last moved bytes, in nanoseconds since the process's first use of
/// this module (shared by both directions of one connection).
#[derive(Debug, Default)]
pub(crate) struct Activity {
    last_ns: AtomicU64,
}

fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    // Saturates after 584 years.
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

impl Activity {
    /// Bytes moved now.
    pub(crate) fn touch(&self) {
        self.last_ns.store(now_ns(), Ordering::Relaxed);
    }

    /// Whether bytes moved within `window` (never with a zero window, or before the first
    /// bytes).
    fn within(&self, window: Duration) -> bool {
        let last = self.last_ns.load(Ordering::Relaxed);
        !window.is_zero()
            && last != 0
            && now_ns().saturating_sub(last) <= u64::try_from(window.as_nanos()).unwrap_or(0)
    }
}

/// Runs `read` (a non-blocking read of `src`'s descriptor: bytes taken, 0 at the end,
/// or `WouldBlock`) until it takes something: straight on the socket between yields while
/// `activity` is within `window`, then after the reactor reports `src` readable.
///
/// Cancel-safe: bytes are only taken by a `read` that returns at once, never across an
/// await.
pub(crate) async fn read_with(
    src: &OwnedReadHalf,
    activity: &Activity,
    window: Duration,
    mut read: impl FnMut(RawFd) -> io::Result<usize>,
) -> io::Result<usize> {
    let fd = src.as_ref().as_raw_fd();
    loop {
        if activity.within(window) {
            match read(fd) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tokio::task::yield_now().await;
                    continue;
                }
                other => return other,
            }
        }
        src.readable().await?;
        // Through `try_io`, so a `WouldBlock` clears the reactor's readiness only when it
        // is current.
        match src.as_ref().try_io(Interest::READABLE, || read(fd)) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

/// One non-blocking `recv` into `buf` straight on socket `fd` (a read for
/// [`read_with`]).
pub(crate) fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: the caller's descriptor is open for the duration of the call and `buf`
        // is valid for `buf.len()` bytes of writing.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_window_or_no_activity_never_spins() {
        let activity = Activity::default();
        assert!(!activity.within(DEFAULT_WINDOW));
        activity.touch();
        assert!(activity.within(Duration::from_secs(60)));
        assert!(!activity.within(Duration::ZERO));
    }

    #[tokio::test]
    async fn reads_bytes_while_hot_and_after_the_window() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (src, _write) = server.into_split();
        let activity = Activity::default();
        let mut buf = [0u8; 16];
        use tokio::io::AsyncWriteExt;
        // Cold: waits on the reactor.
        client.write_all(b"cold").await.unwrap();
        let n = read_with(&src, &activity, DEFAULT_WINDOW, |fd| recv(fd, &mut buf))
            .await
            .unwrap();
        assert_eq!(&buf[..n], b"cold");
        // Hot: spins, and still gets bytes written later.
        activity.touch();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            client.write_all(b"hot").await.unwrap();
            client
        });
        let hot = Duration::from_secs(5);
        let n = read_with(&src, &activity, hot, |fd| recv(fd, &mut buf))
            .await
            .unwrap();
        assert_eq!(&buf[..n], b"hot");
        // The end of the stream reads as 0, hot or not.
        drop(writer.await.unwrap());
        activity.touch();
        let end = read_with(&src, &activity, hot, |fd| recv(fd, &mut buf));
        assert_eq!(end.await.unwrap(), 0);
    }
}
