//! Busy polling for a connection in conversation: for a short window after bytes moved in
//! either direction, the pass-through ([`read_with`]) and the protocol relays
//! ([`BusyRead`]) look for the next bytes with non-blocking reads between yields instead of
//! going to sleep on the reactor, so a request/reply exchange through the proxy pays no
//! thread wake-up per hop.
//!
//! The reads go to the socket itself (`recv` with `MSG_DONTWAIT`), not through tokio's
//! cached readiness, which only the reactor updates, when its thread polls it (an
//! `epoll_wait` per look would cost more than the `recv`). Once the window has passed with nothing
//! to read, the pipe waits on the reactor as usual, so an idle connection costs nothing.
//! A bulk transfer (spliced in full chunks) neither spins nor counts as an exchange, so
//! neither direction polls while one streams: on a small machine the sender and the
//! receiver need those cores.
//! The window is set per registry ([`crate::ProxyRegistry::set_busy_poll`], the
//! `--busy-poll` flag of `chaos-runner proxy`; 0 turns it off); what it costs is CPU: a
//! connection keeps its relay thread busy for up to the window after each exchange. So it
//! spins only while no other connection moved bytes within the window (see
//! [`read_with`]): with several conversations at once, the cores are worth more to the
//! clients and servers than a saved wake-up. That check costs no shared write while many
//! connections are active: each relay thread keeps its own record, and only a connection
//! alone on its thread looks at the other threads.

use std::cell::Cell;
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

/// Nanoseconds since the process's first use of this module, never 0 (0 means "never"
/// below).
fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    // Saturates after 584 years.
    u64::try_from(epoch.elapsed().as_nanos())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Whether `at` (0: never) lies within `window` before `now`.
fn within(at: u64, now: u64, window: u64) -> bool {
    at != 0 && now.saturating_sub(at) < window
}

/// When a connection last moved bytes (shared by both directions of one connection).
#[derive(Debug)]
pub(crate) struct Activity {
    /// This connection, for telling it from the others (never 0).
    id: u64,
    last_ns: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Activity {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            last_ns: AtomicU64::new(0),
        }
    }
}

impl Activity {
    /// Bytes moved now.
    pub(crate) fn touch(&self) {
        let now = now_ns();
        self.last_ns.store(now, Ordering::Relaxed);
        RECENT.with(|recent| {
            let mut r = recent.get();
            r.touch(self.id, now);
            recent.set(r);
        });
    }

    /// Whether bytes moved within `window` before `now` (never with a zero window, or
    /// before the first bytes).
    fn within(&self, window: u64, now: u64) -> bool {
        within(self.last_ns.load(Ordering::Relaxed), now, window)
    }
}

/// The connections that moved bytes last on one thread: the latest, and the latest other
/// than it, which is enough to tell any connection when another one last moved bytes.
#[derive(Clone, Copy, Default)]
struct Recent {
    latest_id: u64,
    latest_ns: u64,
    /// When a connection other than `latest_id` last moved bytes (0: never).
    other_ns: u64,
}

impl Recent {
    fn touch(&mut self, id: u64, now: u64) {
        if self.latest_id != id {
            self.other_ns = self.latest_ns;
            self.latest_id = id;
        }
        self.latest_ns = now;
    }

    /// When a connection other than `id` last moved bytes on this thread (0: never).
    fn other_than(&self, id: u64) -> u64 {
        if self.latest_id == id {
            self.other_ns
        } else {
            self.latest_ns
        }
    }
}

thread_local! {
    static RECENT: Cell<Recent> = const { Cell::new(Recent { latest_id: 0, latest_ns: 0, other_ns: 0 }) };
}

/// Across threads: the connection alone on its thread that last wanted to spin, when, and
/// when one on another thread last wanted to as well. Written only by connections alone on
/// their thread, so never while many connections are active.
#[derive(Default)]
struct Lone {
    id: AtomicU64,
    at: AtomicU64,
    contended_at: AtomicU64,
}

static LONE: Lone = Lone {
    id: AtomicU64::new(0),
    at: AtomicU64::new(0),
    contended_at: AtomicU64::new(0),
};

impl Lone {
    /// Whether connection `id` may spin at `now`: `recent` (its thread's record) has no
    /// other connection moving bytes within `window`, and no connection alone on another
    /// thread wants to spin too (then neither does).
    fn may_spin(&self, recent: Recent, id: u64, now: u64, window: u64) -> bool {
        if within(recent.other_than(id), now, window) {
            return false;
        }
        let lone = self.id.load(Ordering::Relaxed);
        if lone != id && within(self.at.load(Ordering::Relaxed), now, window) {
            self.contended_at.store(now, Ordering::Relaxed);
            return false;
        }
        if lone != id {
            self.id.store(id, Ordering::Relaxed);
        }
        self.at.store(now, Ordering::Relaxed);
        !within(self.contended_at.load(Ordering::Relaxed), now, window)
    }
}

/// Whether no connection but `activity`'s moved bytes on this thread within `window`
/// (its thread's record; the threads of a multi-thread runtime each keep their own).
pub(crate) fn alone(activity: &Activity, window: Duration) -> bool {
    let window = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
    let other = RECENT.with(|recent| recent.get().other_than(activity.id));
    !within(other, now_ns(), window)
}

/// Runs `read` (a non-blocking read of `src`'s descriptor: bytes taken, 0 at the end,
/// or `WouldBlock`) until it takes something: straight on the socket between yields while
/// `activity` moved bytes within `window` and no other connection did (neither on this
/// thread nor alone on another), then after the reactor reports `src` readable.
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
    let window = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
    if window > 0 {
        loop {
            let now = now_ns();
            let recent = RECENT.with(Cell::get);
            if !activity.within(window, now) || !LONE.may_spin(recent, activity.id, now, window) {
                break;
            }
            match read(fd) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tokio::task::yield_now().await;
                }
                other => return other,
            }
        }
    }
    loop {
        // The stream's own reader slot, not `readable()`'s list of waiters: no lock and
        // no list to walk per message (the splice drain of the other direction uses the
        // writer slot's counterpart, `writable()`, on the other socket).
        std::future::poll_fn(|cx| src.as_ref().poll_read_ready(cx)).await?;
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

/// The read half of a connection relayed message by message (the protocol relays), with
/// the pass-through's busy polling: while the connection is in conversation and may spin
/// (as [`read_with`] decides), a read looks for bytes on the socket itself and, finding
/// none, yields the task instead of sleeping on the reactor. Both directions of one
/// connection share its [`Activity`]; every read that brings bytes touches it.
pub(crate) struct BusyRead {
    inner: OwnedReadHalf,
    activity: std::sync::Arc<Activity>,
    window: u64,
}

impl BusyRead {
    /// `inner` read with a busy-poll `window` (zero: always through the reactor).
    pub(crate) fn new(
        inner: OwnedReadHalf,
        activity: std::sync::Arc<Activity>,
        window: Duration,
    ) -> BusyRead {
        BusyRead {
            inner,
            activity,
            window: u64::try_from(window.as_nanos()).unwrap_or(u64::MAX),
        }
    }
}

impl tokio::io::AsyncRead for BusyRead {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::task::Poll;
        let this = &mut *self;
        if this.window > 0 {
            let now = now_ns();
            let recent = RECENT.with(Cell::get);
            if this.activity.within(this.window, now)
                && LONE.may_spin(recent, this.activity.id, now, this.window)
            {
                let fd = this.inner.as_ref().as_raw_fd();
                // SAFETY: recv writes at most `unfilled.len()` bytes into the unfilled
                // part of the buffer, which is valid for writes (possibly uninitialized).
                let unfilled = unsafe { buf.unfilled_mut() };
                let n = unsafe {
                    libc::recv(
                        fd,
                        unfilled.as_mut_ptr().cast(),
                        unfilled.len(),
                        libc::MSG_DONTWAIT,
                    )
                };
                if n >= 0 {
                    let n = n as usize;
                    // SAFETY: recv initialized the first `n` bytes of the unfilled part.
                    unsafe { buf.assume_init(n) };
                    buf.advance(n);
                    if n > 0 {
                        this.activity.touch();
                    }
                    return Poll::Ready(Ok(()));
                }
                let e = io::Error::last_os_error();
                if !matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) {
                    return Poll::Ready(Err(e));
                }
                // Nothing yet: run the other tasks, then look again.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.touch();
        }
        polled
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
        assert!(!activity.within(200_000, now_ns()));
        activity.touch();
        assert!(activity.within(60_000_000_000, now_ns()));
        assert!(!activity.within(0, now_ns()));
    }

    #[test]
    fn the_record_tells_each_connection_when_another_last_moved_bytes() {
        let mut recent = Recent::default();
        assert_eq!(recent.other_than(1), 0, "never");
        recent.touch(1, 100);
        assert_eq!(recent.other_than(1), 0);
        assert_eq!(recent.other_than(2), 100);
        recent.touch(2, 150);
        recent.touch(2, 170);
        assert_eq!(recent.other_than(2), 100, "connection 1, not its own 150");
        assert_eq!(recent.other_than(1), 170);
        recent.touch(3, 180);
        assert_eq!(recent.other_than(3), 170);
        assert_eq!(recent.other_than(1), 180);
    }

    const WINDOW: u64 = 200_000;

    #[test]
    fn a_lone_conversation_spins_and_another_on_its_thread_stops_it() {
        let lone = Lone::default();
        let mut recent = Recent::default();
        recent.touch(1, 1_000_000);
        assert!(lone.may_spin(recent, 1, 1_000_100, WINDOW), "alone: spins");
        recent.touch(2, 1_000_200);
        assert!(
            !lone.may_spin(recent, 1, 1_000_300, WINDOW),
            "2 moved bytes just now"
        );
        assert!(!lone.may_spin(recent, 2, 1_000_300, WINDOW), "nor does 2");
        // 2 went idle: once its window passed, 1 spins again.
        recent.touch(1, 1_300_000);
        assert!(lone.may_spin(recent, 1, 1_300_100, WINDOW));
    }

    #[test]
    fn lone_conversations_on_two_threads_both_wait_until_one_ends() {
        let lone = Lone::default();
        let (mut here, mut there) = (Recent::default(), Recent::default());
        here.touch(1, 1_000_000);
        assert!(lone.may_spin(here, 1, 1_000_010, WINDOW));
        there.touch(2, 1_000_020);
        assert!(
            !lone.may_spin(there, 2, 1_000_030, WINDOW),
            "1 is in conversation"
        );
        assert!(!lone.may_spin(here, 1, 1_000_040, WINDOW), "so is 2 now");
        // 2 stays quiet: a window after it last wanted to spin, 1 may again.
        here.touch(1, 1_100_000);
        assert!(!lone.may_spin(here, 1, 1_100_010, WINDOW));
        here.touch(1, 1_250_000);
        assert!(lone.may_spin(here, 1, 1_250_010, WINDOW));
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

    /// Three connections in conversation on one thread: none spins (each sees the others
    /// in its thread's record), and each still gets its bytes from the reactor.
    #[tokio::test]
    async fn several_conversations_on_one_thread_wait_on_the_reactor_and_still_read() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut clients = Vec::new();
        let mut reads = Vec::new();
        for _ in 0..3 {
            let client = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            clients.push(client);
            let src = server.into_split().0;
            let activity = Activity::default();
            activity.touch();
            reads.push(tokio::spawn(async move {
                let mut buf = [0u8; 16];
                let n = read_with(&src, &activity, Duration::from_secs(30), Some(16), |fd| {
                    recv(fd, &mut buf)
                })
                .await
                .unwrap();
                buf[..n].to_vec()
            }));
        }
        // All three wait (in conversation, none alone) before any bytes come.
        tokio::time::sleep(Duration::from_millis(20)).await;
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

    /// The protocol relays' reader: bytes while hot (spinning on the socket) and cold
    /// (through the reactor), each read touching the connection's activity, and the end.
    #[tokio::test]
    async fn busy_read_reads_hot_and_cold_and_touches_the_activity() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let activity = std::sync::Arc::new(Activity::default());
        let mut read = BusyRead::new(server.into_split().0, activity.clone(), DEFAULT_WINDOW);
        let mut buf = [0u8; 16];
        client.write_all(b"cold").await.unwrap();
        let n = read.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"cold");
        assert!(
            activity.within(60_000_000_000, now_ns()),
            "the read touched it"
        );
        // Hot: the window is open; bytes written a little later still come.
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            client.write_all(b"hot").await.unwrap();
            client
        });
        let mut hot = BusyRead::new(read.inner, activity.clone(), Duration::from_secs(5));
        activity.touch();
        let n = hot.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hot");
        drop(writer.await.unwrap());
        activity.touch();
        assert_eq!(hot.read(&mut buf).await.unwrap(), 0, "the end reads as 0");
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
