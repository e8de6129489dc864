//! `chaos-runner stress ...`: the processes faults run as children of the runner (CPU
//! hog, memory hog, disk filler, pause watchdog). Each asks the kernel for a signal when
//! its parent (the runner) dies, and each ends by itself when its duration is up.

use std::path::Path;
use std::time::{Duration, Instant};

/// Burns CPU: `workers` threads, each busy `load` percent of every 100 ms, for `duration`.
/// Returns when the time is up.
pub fn cpu(workers: u32, load: u8, duration: Duration) {
    die_with_parent();
    let deadline = Instant::now() + duration;
    let slice = Duration::from_millis(100);
    let busy = slice * u32::from(load.min(100)) / 100;
    for _ in 0..workers {
        std::thread::spawn(move || {
            let mut spin: u64 = 0;
            while Instant::now() < deadline {
                let start = Instant::now();
                while start.elapsed() < busy {
                    spin = std::hint::black_box(
                        spin.wrapping_mul(6364136223846793005).wrapping_add(1),
                    );
                }
                let rest = slice.saturating_sub(start.elapsed());
                if !rest.is_zero() {
                    std::thread::sleep(
                        rest.min(deadline.saturating_duration_since(Instant::now())),
                    );
                }
            }
        });
    }
    std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
}

/// Parent-death signal: SIGKILL this process when the thread that started it exits. If
/// the parent is already gone (we were re-parented), exit now.
fn die_with_parent() {
    // SAFETY: prctl(PR_SET_PDEATHSIG) and getppid() take no pointers.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        if libc::getppid() == 1 {
            std::process::exit(0);
        }
    }
}

/// Blocks SIGTERM, SIGINT and SIGHUP (so [`wait_for_signal`] can take them), asks for
/// SIGTERM when the parent dies, and says whether the parent is already gone.
fn guard_with_parent_term() -> bool {
    // SAFETY: sigset manipulation on a local, zeroed set; prctl/getppid take no pointers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong);
        libc::getppid() == 1
    }
}

/// Waits until `deadline` or one of the blocked signals (SIGTERM, SIGINT, SIGHUP) arrives.
fn wait_for_signal(deadline: Instant) {
    // SAFETY: as above; sigtimedwait writes into the local siginfo.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            let ts = libc::timespec {
                tv_sec: left.as_secs() as libc::time_t,
                tv_nsec: left.subsec_nanos() as libc::c_long,
            };
            let mut info: libc::siginfo_t = std::mem::zeroed();
            if libc::sigtimedwait(&set, &mut info, &ts) > 0 {
                return;
            }
        }
    }
}

/// Holds `bytes` of anonymous memory (every page written when `touch`) for `duration`.
/// Dies with its parent (SIGKILL: nothing to clean up).
///
/// ```no_run
/// chaos_runner::stress::memory(64 << 20, true, std::time::Duration::from_secs(5)).unwrap();
/// ```
pub fn memory(bytes: u64, touch: bool, duration: Duration) -> Result<(), String> {
    die_with_parent();
    let deadline = Instant::now() + duration;
    let len = usize::try_from(bytes).map_err(|_| format!("{bytes} bytes do not fit in memory"))?;
    // SAFETY: a fresh private anonymous mapping of `len` bytes; we only write inside it.
    unsafe {
        let ptr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        );
        if ptr == libc::MAP_FAILED {
            return Err(format!(
                "mmap {len} bytes: {}",
                std::io::Error::last_os_error()
            ));
        }
        if touch {
            let page = usize::try_from(libc::sysconf(libc::_SC_PAGESIZE)).unwrap_or(4096);
            let base = ptr.cast::<u8>();
            let mut offset = 0;
            while offset < len {
                std::ptr::write_volatile(base.add(offset), 1);
                offset += page;
            }
        }
    }
    std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
    Ok(())
}

/// Creates `file` (which must not exist) with `bytes` allocated, unless that would leave
/// less than `keep_free` bytes free; holds it for `duration` or until SIGTERM (which its
/// parent's death sends), then deletes it.
///
/// ```no_run
/// let f = std::path::Path::new("/tmp/.chaos-fill-doc");
/// chaos_runner::stress::disk(f, 1 << 20, 1 << 30, std::time::Duration::from_secs(1)).unwrap();
/// ```
pub fn disk(file: &Path, bytes: u64, keep_free: u64, duration: Duration) -> Result<(), String> {
    let orphan = guard_with_parent_term();
    let deadline = Instant::now() + duration;
    if orphan {
        return Ok(());
    }
    let dir = file.parent().unwrap_or(Path::new("/"));
    let (free, _) = crate::faults::local::disk_fill::space(dir)
        .map_err(|e| format!("statvfs {}: {e}", dir.display()))?;
    if free.saturating_sub(bytes) < keep_free {
        return Err(format!(
            "{bytes} bytes would leave {} free, below the floor of {keep_free}",
            free.saturating_sub(bytes)
        ));
    }
    let result = fill(file, bytes);
    if result.is_ok() {
        wait_for_signal(deadline);
    }
    let removed = match std::fs::remove_file(file) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("deleting {}: {e}", file.display()))
        }
        _ => Ok(()),
    };
    result.and(removed)
}

fn fill(file: &Path, bytes: u64) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .map_err(|e| format!("creating {}: {e}", file.display()))?;
    let len = libc::off_t::try_from(bytes).map_err(|_| format!("{bytes} bytes is too large"))?;
    // SAFETY: fallocate on a file descriptor we own.
    let rc = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, len) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
            return Err(format!("fallocate {}: {e}", file.display()));
        }
        // No fallocate on this filesystem: write zeros.
        let chunk = vec![0u8; 1 << 20];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            f.write_all(&chunk[..n])
                .map_err(|e| format!("writing {}: {e}", file.display()))?;
            left -= n as u64;
        }
    }
    f.sync_all()
        .map_err(|e| format!("syncing {}: {e}", file.display()))
}

/// The pause watchdog: waits `after` or until SIGTERM (sent when its parent, the runner,
/// dies), then resumes `pid` with SIGCONT if it is still the process that started at
/// `start_ticks`.
///
/// ```no_run
/// chaos_runner::stress::resume(12345, 678, std::time::Duration::from_secs(10));
/// ```
pub fn resume(pid: u32, start_ticks: u64, after: Duration) {
    let orphan = guard_with_parent_term();
    if !orphan {
        wait_for_signal(Instant::now() + after);
    }
    if crate::faults::local::proc::is_running(pid, start_ticks) {
        crate::faults::local::proc::signal(pid, libc::SIGCONT);
    }
}

/// `chaos-runner stress expire-net`: the watchdog of a kernel network fault. Kernel rules
/// do not expire, so this process removes `target` in `netns` when `after` has passed, when
/// it gets SIGTERM/SIGINT/SIGHUP, or when its parent (the runner) dies (parent-death
/// signal SIGTERM). Returns whether the target is gone.
pub fn expire_net(
    netns: Option<&str>,
    target: &crate::faults::local::netcmd::WatchTarget,
    after: Duration,
) -> bool {
    use crate::faults::local::{netcmd::WatchTarget, nftables, tc};
    let orphan = guard_with_parent_term();
    if !orphan {
        wait_for_signal(Instant::now() + after);
    }
    for attempt in 0..5 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(200));
        }
        let result = match target {
            WatchTarget::Table(table) => nftables::delete_table(netns, table),
            WatchTarget::Qdisc { interface, handle } => tc::delete_qdisc(netns, interface, *handle),
        };
        match result {
            Ok(()) => return true,
            Err(e) => eprintln!("chaos-runner watchdog: cannot remove {target:?}: {e}"),
        }
    }
    false
}
