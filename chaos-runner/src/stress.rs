//! `chaos-runner stress ...`: the processes faults run as children of the runner (CPU
//! hog, memory hog, disk filler, pause watchdog). Each asks the kernel for a signal when
//! its parent (the runner) dies, and each ends by itself when its duration is up.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::exit::Outcome;
use crate::faults::local::netcmd::NetCmdError;
use crate::helper::HelperCommand;

/// A stress helper (`chaos-runner stress ...`) refused its arguments or failed while
/// running. [`StressError::is_bad_input`] tells the two apart (exit 3 or 2).
#[derive(Debug, thiserror::Error)]
pub enum StressError {
    /// The memory size does not fit in this machine's address space.
    #[error("{0} bytes do not fit in memory")]
    TooMuchMemory(u64),
    /// The memory could not be mapped.
    #[error("mmap {len} bytes: {source}")]
    Mmap {
        /// The size asked for.
        len: usize,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The free space of the filesystem could not be read.
    #[error("statvfs {}: {source}", .dir.display())]
    Statvfs {
        /// The directory.
        dir: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The fill would leave less free space than asked to keep.
    #[error("{bytes} bytes would leave {left} free, below the floor of {keep_free}")]
    KeepFree {
        /// The size of the fill.
        bytes: u64,
        /// What it would leave free.
        left: u64,
        /// The floor (`--keep-free`).
        keep_free: u64,
    },
    /// The fill file could not be created (e.g. it exists).
    #[error("creating {}: {source}", .file.display())]
    Create {
        /// The file.
        file: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The fill size does not fit in a file offset.
    #[error("{0} bytes is too large")]
    FileTooLarge(u64),
    /// Allocating the fill file failed.
    #[error("fallocate {}: {source}", .file.display())]
    Fallocate {
        /// The file.
        file: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing the fill file failed.
    #[error("writing {}: {source}", .file.display())]
    Write {
        /// The file.
        file: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Syncing the fill file failed.
    #[error("syncing {}: {source}", .file.display())]
    Sync {
        /// The file.
        file: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Deleting the fill file failed.
    #[error("deleting {}: {source}", .file.display())]
    Delete {
        /// The file.
        file: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The kernel has no netem qdisc.
    #[error("{} ({tc_said})", crate::faults::local::tc::netem_missing_message())]
    NetemMissing {
        /// What tc said.
        tc_said: String,
    },
    /// The netem qdisc could not be added.
    #[error("cannot add netem to {interface}: {source}")]
    NetemAdd {
        /// The interface.
        interface: String,
        /// Why.
        #[source]
        source: NetCmdError,
    },
    /// The netem qdisc could not be removed.
    #[error("cannot remove netem from {interface}: {source}")]
    NetemRemove {
        /// The interface.
        interface: String,
        /// The last failure.
        #[source]
        source: NetCmdError,
    },
    /// A file under `/proc` could not be read.
    #[error("cannot read {path}: {source}")]
    ReadProc {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Helpers still run after SIGTERM and the grace period.
    #[error("helpers still running after SIGTERM: pids {0:?}")]
    HelpersLeft(Vec<u32>),
    /// PID 1 is the pod's `pause` process: signalling it would end the whole pod.
    #[error("PID 1 here is the pod's `pause` process (the pod shares one process namespace): refusing to signal it, that would end the whole pod")]
    PauseInit,
    /// PID 1 would drop the signal (it neither catches nor waits for it).
    #[error("PID 1 (`{comm}`) neither catches nor waits for SIG{signal}: the kernel drops such signals (and SIGKILL) sent to a namespace's init from inside it, so the container would not stop; use `pod-kill`, or a signal it handles")]
    InitDropsSignal {
        /// PID 1's name.
        comm: String,
        /// The signal's name (`TERM`).
        signal: String,
    },
    /// The signal could not be sent.
    #[error("cannot send SIG{signal} to PID 1 (`{comm}`): {source}")]
    Signal {
        /// The signal's name.
        signal: String,
        /// PID 1's name.
        comm: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl StressError {
    /// Whether the helper refused because of its arguments or its target (exit 3), rather
    /// than failing while it ran (exit 2).
    ///
    /// ```
    /// use chaos_runner::stress::StressError;
    /// assert!(StressError::KeepFree { bytes: 10, left: 5, keep_free: 8 }.is_bad_input());
    /// let source = std::io::Error::from_raw_os_error(libc::ENOMEM);
    /// assert!(!StressError::Mmap { len: 10, source }.is_bad_input());
    /// ```
    pub fn is_bad_input(&self) -> bool {
        use std::io::ErrorKind;
        match self {
            StressError::TooMuchMemory(_)
            | StressError::KeepFree { .. }
            | StressError::FileTooLarge(_)
            | StressError::PauseInit
            | StressError::InitDropsSignal { .. } => true,
            // A `--path` that exists, or whose directory does not.
            StressError::Create { source, .. } => {
                matches!(
                    source.kind(),
                    ErrorKind::AlreadyExists | ErrorKind::NotFound
                )
            }
            StressError::Statvfs { source, .. } => source.kind() == ErrorKind::NotFound,
            StressError::Mmap { .. }
            | StressError::Fallocate { .. }
            | StressError::Write { .. }
            | StressError::Sync { .. }
            | StressError::Delete { .. }
            | StressError::NetemMissing { .. }
            | StressError::NetemAdd { .. }
            | StressError::NetemRemove { .. }
            | StressError::ReadProc { .. }
            | StressError::HelpersLeft(_)
            | StressError::Signal { .. } => false,
        }
    }
}

/// Burns CPU: `workers` threads, each busy `load` percent of every 100 ms, for `duration`.
/// Returns when the time is up.
pub fn cpu(workers: u32, load: u8, duration: Duration) {
    cpu_until(workers, load, Instant::now() + duration, false);
}

/// [`cpu`] until `deadline`; with `exit_on_term`, SIGTERM/SIGINT/SIGHUP end it at once
/// (exit status 0), even as the init of a PID namespace, which only takes signals it
/// waits for.
pub fn cpu_until(workers: u32, load: u8, deadline: Instant, exit_on_term: bool) {
    die_with_parent();
    if exit_on_term {
        block_term();
    }
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
    if exit_on_term {
        wait_for_signal(deadline);
    } else {
        std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
    }
}

/// Blocks SIGTERM, SIGINT and SIGHUP in this thread (and the threads it starts later), so
/// [`wait_for_signal`] takes them.
fn block_term() {
    // SAFETY: sigset manipulation on a local, zeroed set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// The deadline of an in-pod helper: `duration` from now, and never after `not_after`
/// (seconds since the Unix epoch, the runner's end of the fault), so a helper that
/// starts late still ends with the fault.
///
/// ```
/// use std::time::{Duration, Instant};
/// let d = chaos_runner::stress::helper_deadline(Duration::from_secs(60), Some(0));
/// assert!(d <= Instant::now());
/// let d = chaos_runner::stress::helper_deadline(Duration::from_secs(60), None);
/// assert!(d > Instant::now() + Duration::from_secs(59));
/// ```
pub fn helper_deadline(duration: Duration, not_after: Option<u64>) -> Instant {
    let now = Instant::now();
    let by_duration = now + duration;
    let Some(not_after) = not_after else {
        return by_duration;
    };
    let epoch_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let left = Duration::from_secs(not_after.saturating_sub(epoch_now));
    by_duration.min(now + left)
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
pub fn memory(bytes: u64, touch: bool, duration: Duration) -> Result<(), StressError> {
    memory_until(bytes, touch, Instant::now() + duration, false)
}

/// [`memory`] until `deadline`; with `exit_on_term`, SIGTERM/SIGINT/SIGHUP end it at once
/// (as for [`cpu_until`]).
pub fn memory_until(
    bytes: u64,
    touch: bool,
    deadline: Instant,
    exit_on_term: bool,
) -> Result<(), StressError> {
    die_with_parent();
    if exit_on_term {
        block_term();
    }
    let len = usize::try_from(bytes).map_err(|_| StressError::TooMuchMemory(bytes))?;
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
            return Err(StressError::Mmap {
                len,
                source: std::io::Error::last_os_error(),
            });
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
    if exit_on_term {
        wait_for_signal(deadline);
    } else {
        std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
    }
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
pub fn disk(
    file: &Path,
    bytes: u64,
    keep_free: u64,
    duration: Duration,
) -> Result<(), StressError> {
    let orphan = guard_with_parent_term();
    let deadline = Instant::now() + duration;
    if orphan {
        return Ok(());
    }
    let dir = file.parent().unwrap_or(Path::new("/"));
    let (free, _) =
        crate::faults::local::disk_fill::space(dir).map_err(|source| StressError::Statvfs {
            dir: dir.to_owned(),
            source,
        })?;
    if free.saturating_sub(bytes) < keep_free {
        return Err(StressError::KeepFree {
            bytes,
            left: free.saturating_sub(bytes),
            keep_free,
        });
    }
    let result = fill(file, bytes);
    if result.is_ok() {
        wait_for_signal(deadline);
    }
    let removed = match std::fs::remove_file(file) {
        Err(source) if source.kind() != std::io::ErrorKind::NotFound => Err(StressError::Delete {
            file: file.to_owned(),
            source,
        }),
        _ => Ok(()),
    };
    result.and(removed)
}

fn fill(file: &Path, bytes: u64) -> Result<(), StressError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .map_err(|source| StressError::Create {
            file: file.to_owned(),
            source,
        })?;
    let len = libc::off_t::try_from(bytes).map_err(|_| StressError::FileTooLarge(bytes))?;
    // SAFETY: fallocate on a file descriptor we own.
    let rc = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, len) };
    if rc != 0 {
        let source = std::io::Error::last_os_error();
        if source.raw_os_error() != Some(libc::EOPNOTSUPP) {
            return Err(StressError::Fallocate {
                file: file.to_owned(),
                source,
            });
        }
        // No fallocate on this filesystem: write zeros.
        let chunk = vec![0u8; 1 << 20];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            f.write_all(&chunk[..n])
                .map_err(|source| StressError::Write {
                    file: file.to_owned(),
                    source,
                })?;
            left -= n as u64;
        }
    }
    f.sync_all().map_err(|source| StressError::Sync {
        file: file.to_owned(),
        source,
    })
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
    if crate::sys::proc::is_running(pid, start_ticks) {
        crate::sys::proc::signal(pid, libc::SIGCONT);
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

/// `chaos-runner stress netem`, the in-pod network helper: adds a netem root qdisc
/// (handle `handle`) to `interface` in its own network namespace (the pod's), holds it
/// until `deadline` or SIGTERM/SIGINT/SIGHUP, then deletes it (only if it is still ours).
///
/// ```no_run
/// use std::time::{Duration, Instant};
/// let netem = chaos_runner::faults::local::tc::netem_args(Duration::from_millis(50), Duration::ZERO, 0.0);
/// chaos_runner::stress::netem("eth0", 0xc001, &netem, Instant::now() + Duration::from_secs(30)).unwrap();
/// ```
pub fn netem(
    interface: &str,
    handle: u16,
    netem: &[String],
    deadline: Instant,
) -> Result<(), StressError> {
    use crate::faults::local::tc;
    block_term();
    tc::add_netem(None, interface, handle, netem).map_err(|source| {
        let text = source.to_string();
        if text.contains("Specified qdisc kind is unknown") {
            StressError::NetemMissing { tc_said: text }
        } else {
            StressError::NetemAdd {
                interface: interface.to_owned(),
                source,
            }
        }
    })?;
    eprintln!(
        "chaos-runner: netem {} on {interface} until the fault ends",
        netem.join(" ")
    );
    wait_for_signal(deadline);
    let mut attempt = 0;
    loop {
        match tc::delete_qdisc(None, interface, handle) {
            Ok(()) => return Ok(()),
            Err(source) if attempt >= 4 => {
                return Err(StressError::NetemRemove {
                    interface: interface.to_owned(),
                    source,
                })
            }
            Err(_) => {}
        }
        attempt += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether `argv` is a helper (`chaos-runner stress <kind> ...`, not `stop`) of
/// `run_id`'s fault `fault`.
///
/// ```
/// let argv: Vec<String> = ["chaos-runner", "stress", "cpu", "--workers", "1", "--load", "50",
///     "--duration", "30s", "--run-id", "r1", "--fault", "burn"]
///     .iter().map(|s| s.to_string()).collect();
/// assert!(chaos_runner::stress::is_helper_of(&argv, "r1", "burn"));
/// assert!(!chaos_runner::stress::is_helper_of(&argv, "r1", "other"));
/// ```
pub fn is_helper_of(argv: &[String], run_id: &str, fault: &str) -> bool {
    HelperCommand::from_cmdline(argv).is_some_and(|helper| helper.works_for(run_id, fault))
}

/// `chaos-runner stress stop`: sends SIGTERM to every helper of `run_id`'s fault `fault`
/// visible in this PID namespace (see [`is_helper_of`]), waits up to `grace` for them to
/// end, and returns how many it stopped. An error names the helpers still running.
pub fn stop_helpers(run_id: &str, fault: &str, grace: Duration) -> Result<usize, StressError> {
    let me = std::process::id();
    let mut found = Vec::new();
    let entries = std::fs::read_dir("/proc").map_err(|source| StressError::ReadProc {
        path: "/proc".to_owned(),
        source,
    })?;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let argv: Vec<String> = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if is_helper_of(&argv, run_id, fault) {
            crate::sys::proc::signal(pid, libc::SIGTERM);
            found.push(pid);
        }
    }
    let deadline = Instant::now() + grace;
    loop {
        let left: Vec<u32> = found
            .iter()
            .copied()
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                    !stat
                        .rsplit(')')
                        .next()
                        .is_some_and(|r| r.trim_start().starts_with('Z'))
                })
            })
            .collect();
        if left.is_empty() {
            return Ok(found.len());
        }
        if Instant::now() >= deadline {
            return Err(StressError::HelpersLeft(left));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether signal `sig` reaches process `status` (the text of `/proc/<pid>/status`) when
/// it is the init of its PID namespace and the sender is inside it: only if it catches
/// the signal (`SigCgt`) or blocks it to wait for it (`SigBlk`); otherwise the kernel
/// drops it.
///
/// ```
/// let status = "Name:\tapp\nSigBlk:\t0000000000000000\nSigCgt:\t0000000000004000\n";
/// assert!(chaos_runner::stress::init_takes(status, libc::SIGTERM));
/// assert!(!chaos_runner::stress::init_takes(status, libc::SIGHUP));
/// ```
pub fn init_takes(status: &str, sig: libc::c_int) -> bool {
    let mask = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0)
    };
    let bit = 1u64 << (sig - 1);
    (mask("SigCgt:") | mask("SigBlk:")) & bit != 0
}

/// Whether process `pid` takes signal `sig` itself rather than leaving it to the default
/// action: it catches or blocks it ([`init_takes`] on `/proc/<pid>/status`), or waits for
/// it in sigtimedwait(2). While a process waits there the kernel shows the waited signals
/// as unblocked (it keeps the blocked set aside) and delivers them, so its `wchan` is read
/// too. An error names the file that could not be read.
///
/// ```
/// // The test harness neither catches nor blocks SIGHUP.
/// assert!(!chaos_runner::stress::process_takes(std::process::id(), libc::SIGHUP).unwrap());
/// ```
pub fn process_takes(pid: u32, sig: libc::c_int) -> Result<bool, StressError> {
    let path = format!("/proc/{pid}/status");
    let status =
        std::fs::read_to_string(&path).map_err(|source| StressError::ReadProc { path, source })?;
    let in_sigwait = std::fs::read_to_string(format!("/proc/{pid}/wchan"))
        .is_ok_and(|w| w.starts_with("do_sigtimedwait"));
    Ok(init_takes(&status, sig) || in_sigwait)
}

/// `chaos-runner stress signal-init`: sends `sig` (named `name`) to PID 1 of this PID
/// namespace (the target container's main process, for a helper joining its process
/// namespace), after checking it would not be dropped ([`process_takes`]) and that PID 1 is
/// not a pod's `pause` process (a pod sharing one process namespace). Returns PID 1's name.
pub fn signal_init(sig: libc::c_int, name: &str) -> Result<String, StressError> {
    let comm = std::fs::read_to_string("/proc/1/comm")
        .map_err(|source| StressError::ReadProc {
            path: "/proc/1/comm".to_owned(),
            source,
        })?
        .trim()
        .to_owned();
    if comm == "pause" {
        return Err(StressError::PauseInit);
    }
    if !process_takes(1, sig)? {
        return Err(StressError::InitDropsSignal {
            comm,
            signal: name.to_owned(),
        });
    }
    if !crate::sys::proc::signal(1, sig) {
        return Err(StressError::Signal {
            signal: name.to_owned(),
            comm,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(comm)
}

/// Runs one helper (`chaos-runner stress ...`) to its end; its exit outcome.
pub fn run(command: HelperCommand) -> Outcome {
    match command {
        HelperCommand::Cpu {
            workers,
            load,
            duration,
            exit_on_term,
            not_after,
            ..
        } => {
            let deadline = helper_deadline(duration, not_after);
            cpu_until(workers, load, deadline, exit_on_term);
            Outcome::Passed
        }
        HelperCommand::Netem {
            interface,
            delay,
            jitter,
            loss,
            duration,
            not_after,
            run_id,
            fault,
        } => {
            let (delay, jitter) = (delay.unwrap_or_default(), jitter.unwrap_or_default());
            if delay.is_zero() && loss.is_none() {
                eprintln!("error: give --delay, --loss or both");
                return Outcome::InvalidInput;
            }
            let args = crate::faults::local::tc::netem_args(delay, jitter, loss.unwrap_or(0.0));
            let handle = crate::faults::local::tc::handle_for(&run_id, &fault);
            let deadline = helper_deadline(duration, not_after);
            match netem(&interface, handle, &args, deadline) {
                Ok(()) => Outcome::Passed,
                Err(e) => {
                    eprintln!("error: {e}");
                    Outcome::NotReverted
                }
            }
        }
        HelperCommand::SignalInit {
            signal, not_after, ..
        } => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            if not_after.is_some_and(|t| now > t) {
                eprintln!("chaos-runner: the fault is over; not signalling");
                return Outcome::Passed;
            }
            match signal_init(signal.number(), signal.name()) {
                Ok(comm) => {
                    eprintln!("chaos-runner: sent SIG{} to PID 1 ({comm})", signal.name());
                    Outcome::Passed
                }
                Err(e) => stress_outcome(Err(e)),
            }
        }
        HelperCommand::Stop {
            run_id,
            fault,
            grace,
        } => match stop_helpers(&run_id, &fault, grace) {
            Ok(n) => {
                eprintln!("chaos-runner: stopped {n} helper(s) of {fault}");
                Outcome::Passed
            }
            Err(e) => {
                eprintln!("error: {e}");
                Outcome::NotReverted
            }
        },
        HelperCommand::ExpireNet {
            after,
            netns,
            table,
            interface,
            handle,
        } => {
            use crate::faults::local::netcmd::WatchTarget;
            let target = match (table, interface, handle) {
                (Some(t), _, _) => WatchTarget::Table(t),
                (None, Some(interface), Some(handle)) => WatchTarget::Qdisc { interface, handle },
                _ => return Outcome::InvalidInput,
            };
            if expire_net(netns.as_deref(), &target, after) {
                Outcome::Passed
            } else {
                Outcome::NotReverted
            }
        }
        HelperCommand::Memory {
            bytes,
            touch,
            duration,
            exit_on_term,
            not_after,
            ..
        } => stress_outcome(memory_until(
            bytes,
            touch,
            helper_deadline(duration, not_after),
            exit_on_term,
        )),
        HelperCommand::Disk {
            path,
            bytes,
            keep_free,
            duration,
            ..
        } => stress_outcome(disk(&path, bytes, keep_free, duration)),
        HelperCommand::Resume {
            pid,
            start_ticks,
            after,
            ..
        } => {
            resume(pid, start_ticks, after);
            Outcome::Passed
        }
    }
}

/// The exit outcome of a helper's result: 3 when it refused its arguments, 2 when the
/// machine failed it while it ran.
fn stress_outcome(result: Result<(), StressError>) -> Outcome {
    match result {
        Ok(()) => Outcome::Passed,
        Err(e) => {
            eprintln!("error: {e}");
            if e.is_bad_input() {
                Outcome::InvalidInput
            } else {
                Outcome::Aborted
            }
        }
    }
}
