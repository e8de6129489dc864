//! Zero-copy relay for a pipe with no toxic in effect: `splice(2)` moves bytes from the
//! source socket into a kernel pipe and from there into the destination socket, so the
//! data never crosses into this process (the pass-through costs two system calls per
//! chunk and no copy through user space).
//!
//! Every chunk taken from the source ([`KernelPipe::fill`]) is written to the destination
//! ([`KernelPipe::drain`]) before the next read, so the kernel pipe is empty whenever the
//! caller looks at its toxics again: switching to the toxic path never strands bytes in
//! the kernel.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Most bytes moved per `splice` call (also the kernel pipe's requested capacity).
const CHUNK: usize = 1024 * 1024;

/// A kernel pipe used as the relay's buffer.
#[derive(Debug)]
pub(crate) struct KernelPipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl KernelPipe {
    /// A non-blocking pipe sized for [`CHUNK`] (or the system's cap, whichever is lower).
    pub(crate) fn new() -> io::Result<KernelPipe> {
        let mut fds = [0; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // A bigger pipe means fewer calls per megabyte; the default (64 KiB) still works.
        // SAFETY: F_SETPIPE_SZ on an open pipe descriptor; failure is harmless.
        unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, CHUNK as libc::c_int) };
        Ok(KernelPipe { read, write })
    }

    /// Takes what `src` (a socket descriptor) has, up to [`CHUNK`] bytes, into the pipe
    /// with one non-blocking `splice`: the bytes taken, 0 at the end of `src`, or
    /// `WouldBlock`. Follow every successful fill with [`KernelPipe::drain`] of what it
    /// took, so the pipe is empty between calls.
    pub(crate) fn fill(&self, src: RawFd) -> io::Result<usize> {
        splice(src, self.write.as_raw_fd(), CHUNK)
    }

    /// Writes the `len` bytes the last [`KernelPipe::fill`] took out to `dst`.
    ///
    /// Not cancel-safe: await it outside `select!`.
    pub(crate) async fn drain(&self, dst: &TcpStream, len: usize) -> io::Result<()> {
        let mut left = len;
        while left > 0 {
            dst.writable().await?;
            match dst.try_io(Interest::WRITABLE, || {
                splice(self.read.as_raw_fd(), dst.as_raw_fd(), left)
            }) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => left -= n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// One non-blocking `splice` of at most `len` bytes from `from` to `to`.
fn splice(from: i32, to: i32, len: usize) -> io::Result<usize> {
    // SAFETY: both descriptors are open for the duration of the call; null offsets are
    // required for pipes and sockets.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}
