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
//! connection keeps one worker busy for up to the window after each exchange. So it spins
//! only while no other connection is in conversation ([`SPIN_WHILE_CONVERSING`]): with
//! several, the cores are worth more to the clients and servers than a saved wake-up.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
    /// Reads of this connection waiting in conversation (see [`Conversing`]).
    waiting: AtomicUsize,
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

    /// What is left of `window` since bytes last moved (`None` when nothing is).
    fn left(&self, window: Duration) -> Option<Duration> {
        let last = self.last_ns.load(Ordering::Relaxed);
        let window = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        let since = now_ns().saturating_sub(last);
        (last != 0 && since < window).then(|| Duration::from_nanos(window - since))
    }

    /// Whether bytes moved within `window` (never with a zero window, or before the first
    /// bytes).
    fn within(&self, window: Duration) -> bool {
        self.left(window).is_some()
    }
}

/// How many connections may be in conversation (a read waiting within the window after
/// bytes moved) for any of them to spin. One conversation gains a hop without a wake-up
/// per exchange; with several, spinning takes the cores the clients and the servers need
/// (pgbench through the proxy on 2 cores: 8 connections lost a fifth of their throughput
/// to it, even with one of them spinning at a time), so then every read waits on the
/// reactor.
pub const SPIN_WHILE_CONVERSING: usize = 1;

/// Connections with a read waiting that began within the window.
static CONVERSING: AtomicUsize = AtomicUsize::new(0);

/// A read of a connection in conversation: the connection counts in [`CONVERSING`] while
/// one of its reads holds this (given back on drop, also when the read is cancelled).
struct Conversing<'a> {
    activity: &'a Activity,
}

impl<'a> Conversing<'a> {
    fn enter(activity: &'a Activity) -> Conversing<'a> {
        if activity.waiting.fetch_add(1, Ordering::AcqRel) == 0 {
            CONVERSING.fetch_add(1, Ordering::AcqRel);
        }
        Conversing { activity }
    }

    /// Whether spinning is worth it: no other connection is in conversation.
    fn may_spin(&self) -> bool {
        CONVERSING.load(Ordering::Acquire) <= SPIN_WHILE_CONVERSING
    }
}

impl Drop for Conversing<'_> {
    fn drop(&mut self) {
        if self.activity.waiting.fetch_sub(1, Ordering::AcqRel) == 1 {
            CONVERSING.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Runs `read` (a non-blocking read of `src`'s descriptor: bytes taken, 0 at the end,
/// or `WouldBlock`) until it takes something: straight on the socket between yields while
/// `activity` is within `window` and no other connection is in conversation
/// ([`SPIN_WHILE_CONVERSING`]), then after the reactor reports `src` readable.
///
/// `want` is what `read` asks for: a read that takes less through the reactor drained the
/// socket (epoll reports edges), so the reactor's readiness is cleared there and then, as
/// tokio's own reads do; the next read waits for new bytes instead of paying a `recv` that
/// finds none (a third of the system calls of a request/reply exchange). Pass `None` for
/// a read that can stop short with bytes still waiting (a splice into a pipe that fills
/// up).
///
/// Cancel-safe: bytes are only taken by a `read` that returns at once, never across an
/// await.
pub(crate) async fn read_with(
    src: &OwnedReadHalf,
    activity: &Activity,
    window: Duration,
    want: Option<usize>,
    mut read: impl FnMut(RawFd) -> io::Result<usize>,
) -> io::Result<usize> {
    let fd = src.as_ref().as_raw_fd();
    let mut conversing = activity.within(window).then(|| Conversing::enter(activity));
    loop {
        if let Some(c) = &conversing {
            while c.may_spin() && activity.within(window) {
                match read(fd) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        tokio::task::yield_now().await;
                    }
                    other => return other,
                }
            }
        }
        // The stream's own reader slot, not `readable()`'s list of waiters: no lock and
        // no list to walk per message (the splice drain of the other direction uses the
        // writer slot's counterpart, `writable()`, on the other socket).
        let ready = std::future::poll_fn(|cx| src.as_ref().poll_read_ready(cx));
        match (&conversing, activity.left(window)) {
            // Still in conversation: counted until the window ends, then no longer (an
            // idle connection must not keep the others from spinning).
            (Some(_), Some(left)) => {
                tokio::pin!(ready);
                tokio::select! {
                    biased;
                    r = &mut ready => r?,
                    () = tokio::time::sleep(left) => {
                        conversing = None;
                        ready.await?;
                    }
                }
            }
            _ => {
                conversing = None;
                ready.await?;
            }
        }
        // Through `try_io`, so a `WouldBlock` clears the reactor's readiness only when it
        // is current: readiness that came after the read began is kept. A short read is
        // reported to `try_io` as `WouldBlock` for that clearing, and returned from here.
        let mut short = None;
        let result = src.as_ref().try_io(Interest::READABLE, || match read(fd) {
            Ok(n) if want.is_some_and(|want| n > 0 && n < want) => {
                short = Some(n);
                Err(io::ErrorKind::WouldBlock.into())
            }
            other => other,
        });
        match (result, short) {
            (_, Some(n)) => return Ok(n),
            (Err(e), None) if e.kind() == io::ErrorKind::WouldBlock => continue,
            (other, None) => return other,
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

    /// Small messages one after another, each read through the reactor (no spinning): a
    /// short read clears the readiness, and none of the messages written meanwhile is left
    /// waiting for an edge that already came.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn short_reads_clear_readiness_without_losing_a_message() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (src, _write) = server.into_split();
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for i in 0..2_000u32 {
                client.write_all(&i.to_le_bytes()).await.unwrap();
                if i % 7 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            client
        });
        let activity = Activity::default();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while got.len() < 8_000 {
            let n = tokio::time::timeout(
                Duration::from_secs(10),
                read_with(&src, &activity, Duration::ZERO, Some(buf.len()), |fd| {
                    recv(fd, &mut buf)
                }),
            )
            .await
            .expect("a message written was not read: a lost wake-up")
            .unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        let expected: Vec<u8> = (0..2_000u32).flat_map(u32::to_le_bytes).collect();
        assert_eq!(got, expected);
        drop(writer.await.unwrap());
    }

    /// Three connections in conversation: none spins, and each still gets its bytes from
    /// the reactor.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn several_conversations_wait_on_the_reactor_and_still_read() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut pairs = Vec::new();
        for _ in 0..3 {
            let client = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            pairs.push((client, server.into_split().0));
        }
        let mut reads = Vec::new();
        let mut clients = Vec::new();
        for (client, src) in pairs {
            clients.push(client);
            reads.push(tokio::spawn(async move {
                let activity = Activity::default();
                activity.touch();
                let mut buf = [0u8; 16];
                let n = read_with(&src, &activity, Duration::from_secs(30), Some(16), |fd| {
                    recv(fd, &mut buf)
                })
                .await
                .unwrap();
                buf[..n].to_vec()
            }));
        }
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert!(
                CONVERSING.load(Ordering::Acquire) >= 3,
                "all three wait in conversation"
            );
        }
        use tokio::io::AsyncWriteExt;
        for (i, client) in clients.iter_mut().enumerate() {
            client.write_all(&[i as u8; 3]).await.unwrap();
        }
        for (i, read) in reads.into_iter().enumerate() {
            let got = tokio::time::timeout(Duration::from_secs(10), read)
                .await
                .expect("a waiting read got its bytes")
                .unwrap();
            assert_eq!(got, vec![i as u8; 3]);
        }
    }

    /// A connection whose conversation ended (its window passed while its read waits)
    /// no longer counts: the next conversation may spin.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_connection_stops_counting_when_its_window_ends() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (src, _write) = server.into_split();
        let before = CONVERSING.load(Ordering::Acquire);
        let idle = tokio::spawn(async move {
            let activity = Activity::default();
            activity.touch();
            let mut buf = [0u8; 16];
            read_with(&src, &activity, Duration::from_millis(50), Some(16), |fd| {
                recv(fd, &mut buf)
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(
            CONVERSING.load(Ordering::Acquire) > before,
            "counted in its window"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            CONVERSING.load(Ordering::Acquire),
            before,
            "its window ended: no longer in conversation"
        );
        idle.abort();
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
        let n = read_with(&src, &activity, DEFAULT_WINDOW, Some(16), |fd| {
            recv(fd, &mut buf)
        })
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
        let n = read_with(&src, &activity, hot, Some(16), |fd| recv(fd, &mut buf))
            .await
            .unwrap();
        assert_eq!(&buf[..n], b"hot");
        // The end of the stream reads as 0, hot or not.
        drop(writer.await.unwrap());
        activity.touch();
        let end = read_with(&src, &activity, hot, Some(16), |fd| recv(fd, &mut buf));
        assert_eq!(end.await.unwrap(), 0);
    }
}
