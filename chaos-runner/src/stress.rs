//! `chaos-runner stress cpu`: the CPU hog's own process. It asks the kernel to kill it when
//! its parent (the runner) dies, and it exits by itself when its duration is up.

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
    // Block the signals and wait for them synchronously: no handler runs at a random point.
    // SAFETY: sigset manipulation on a local, initialised set; prctl/getppid take no pointers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong);
        if libc::getppid() != 1 {
            let deadline = Instant::now() + after;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                let timeout = libc::timespec {
                    tv_sec: left.as_secs() as libc::time_t,
                    tv_nsec: libc::c_long::from(left.subsec_nanos() as i32),
                };
                let got = libc::sigtimedwait(&set, std::ptr::null_mut(), &timeout);
                if got > 0 {
                    tracing::info!(signal = got, "watchdog signalled: removing the fault");
                    break;
                }
                // -1: EAGAIN (time is up, the loop ends) or EINTR (wait again).
            }
        }
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
